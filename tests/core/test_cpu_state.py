"""cpu_state: what every safetensors file of the pipeline is written from."""

from __future__ import annotations

import torch

from rkdsc_core.torch_utils import cpu_state


def test_cpu_state_is_detached_contiguous_cpu_and_complete():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    m[0].weight.data = m[0].weight.data.t().contiguous().t()  # a non-contiguous parameter
    assert not m[0].weight.is_contiguous()
    state = cpu_state(m)
    assert set(state) == set(m.state_dict())  # buffers (BatchNorm statistics) included
    for k, v in state.items():
        assert v.device.type == "cpu" and v.is_contiguous() and not v.requires_grad, k
        assert torch.equal(v, m.state_dict()[k])
