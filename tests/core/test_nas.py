"""KDL-DARTS: mixed op, derive, cost penalty, genotype YAML, derived student, architect."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from core_helpers import tiny_genotype

from rkdsc_core.nas.cost import build_cost_table, cost_penalty, op_cost
from rkdsc_core.nas.genotype import Genotype, derive
from rkdsc_core.nas.ops import OPS, make_op
from rkdsc_core.nas.plots import plot_genotype
from rkdsc_core.nas.primitives import DARTS_PRIMITIVES
from rkdsc_core.nas.reference import HandCNN, hand_cnn_spec
from rkdsc_core.nas.student import build_student, student_from_spec, student_spec
from rkdsc_core.nas.supernet import Macro, MixedOp, SearchSpace, Supernet
from rkdsc_core.torch_utils import count_params

SPACE = SearchSpace(nodes=2)
MACRO = Macro(in_channels=1, num_classes=10, feature_dim=16, init_channels=4, layers=3)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_halves_odd_maps(name, stride):
    x = torch.randn(2, 4, 7, 7)
    assert make_op(name, 4, stride)(x).shape == (
        2,
        4,
        4 if stride == 2 else 7,
        7 if stride == 1 else 4,
    )


def test_mixed_op_weights_sum_to_one_and_one_hot_selects_the_op():
    torch.manual_seed(0)
    net = Supernet(SPACE, MACRO)
    with torch.no_grad():
        net.alpha_normal.normal_(0, 3)
        net.alpha_reduce.normal_(0, 3)
    seen = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.append(args[1].detach()))
        for m in net.modules()
        if isinstance(m, MixedOp)
    ]
    net(torch.randn(2, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert len(seen) == MACRO.layers * SPACE.num_edges
    w = torch.stack(seen)
    assert torch.allclose(w.sum(-1), torch.ones(len(w)), atol=1e-6) and (w > 0).all()
    mixed = MixedOp(DARTS_PRIMITIVES, 4, 1).eval()
    x = torch.randn(2, 4, 7, 7)
    o = DARTS_PRIMITIVES.index("sep_conv_3x3")
    one_hot = F.one_hot(torch.tensor(o), len(DARTS_PRIMITIVES)).float()
    assert torch.allclose(mixed(x, one_hot), mixed.ops[o](x))


def test_derive_matches_a_hand_computedtiny_genotype():
    prims = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    # nodes=2 → edges (node0: in0, in1), (node1: in0, in1, in2); rows are softmax probabilities
    normal = np.array(
        [
            [0.70, 0.10, 0.10, 0.10],  # n0←0: strongest non-none 0.10 (max_pool, first of ties)
            [0.10, 0.05, 0.25, 0.60],  # n0←1: sep_conv 0.60
            [0.05, 0.50, 0.30, 0.15],  # n1←0: max_pool 0.50
            [0.90, 0.02, 0.05, 0.03],  # n1←1: skip 0.05 (none ignored even though largest)
            [0.10, 0.10, 0.60, 0.20],  # n1←2: skip 0.60
        ]
    )
    reduce = np.array(
        [
            [0.10, 0.20, 0.30, 0.40],
            [0.40, 0.30, 0.20, 0.10],
            [0.25, 0.25, 0.25, 0.25],
            [0.10, 0.15, 0.05, 0.70],
            [0.40, 0.35, 0.15, 0.10],
        ]
    )
    g = derive(np.log(normal), np.log(reduce), prims, nodes=2)
    assert g.normal == (
        (("max_pool_3x3", 0), ("sep_conv_3x3", 1)),
        (("max_pool_3x3", 0), ("skip_connect", 2)),
    )
    assert g.reduce == (
        (("sep_conv_3x3", 0), ("max_pool_3x3", 1)),
        (("sep_conv_3x3", 1), ("max_pool_3x3", 2)),
    )
    assert g.normal_concat == g.reduce_concat == (2, 3) and g.primitives == prims
    # torch tensors give the same answer, and derive is pure (inputs unchanged)
    a = torch.log(torch.tensor(normal))
    assert derive(a, a, prims, 2).normal == g.normal and torch.allclose(
        a.exp(), torch.tensor(normal)
    )


def test_genotype_yaml_and_json_round_trip(tmp_path):
    g = tiny_genotype()
    assert Genotype.from_yaml(g.to_yaml()) == g
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert Genotype.load(g.save(tmp_path / "g.yaml")) == g
    assert plot_genotype(g, tmp_path / "g.png").stat().st_size > 1000
    bad = g.to_dict() | {"extra": 1}
    with pytest.raises(ValueError, match="extra"):
        Genotype.from_dict(bad)
    with pytest.raises(ValueError, match="not in primitives"):
        Genotype(("none",), ((("sep_conv_3x3", 0),),), (2,), ((("none", 0),),), (2,))


def test_cost_table_matches_instantiated_ops_and_is_one_at_uniform_alpha():
    table = build_cost_table(SPACE, MACRO, 28, "params")
    none, sep3 = DARTS_PRIMITIVES.index("none"), DARTS_PRIMITIVES.index("sep_conv_3x3")
    # one normal cell (layer 0, C=4): edge 0 (node0←input0) costs exactly the op's parameters
    assert table.normal[0, none] == 0
    assert table.normal[0, sep3] == count_params(make_op("sep_conv_3x3", 4, 1))
    assert op_cost("sep_conv_3x3", 4, 1, 14, "flops") > op_cost("max_pool_3x3", 4, 1, 14, "flops")
    zeros = torch.zeros(SPACE.num_edges, len(DARTS_PRIMITIVES))
    assert float(cost_penalty(table, zeros, zeros)) == pytest.approx(1.0)
    assert float(cost_penalty(table, zeros, zeros, budget=10 * table.reference)) == 0.0


def test_penalty_gradient_reaches_alpha_and_lowers_cost():
    table = build_cost_table(SPACE, MACRO, 28, "flops")
    a_n = torch.zeros(SPACE.num_edges, len(DARTS_PRIMITIVES), requires_grad=True)
    a_r = torch.zeros_like(a_n, requires_grad=True)
    cost_penalty(table, a_n, a_r).backward()
    assert a_n.grad.abs().sum() > 0 and a_r.grad.abs().sum() > 0
    conv = DARTS_PRIMITIVES.index("sep_conv_5x5")
    assert (a_n.grad[:, conv] > 0).all()  # the expensive op is pushed down
    with torch.no_grad():
        after = cost_penalty(table, a_n - 10 * a_n.grad, a_r - 10 * a_r.grad)
    assert float(after) < 1.0


def test_derived_student_forward_backward_and_spec_round_trip():
    g = tiny_genotype()
    arch = dict(in_channels=1, num_classes=10, feature_dim=24, init_channels=4, layers=4)
    net = build_student(g, **arch)
    net.set_drop_path(0.2)
    x = torch.randn(3, 1, 28, 28)
    feature, logits = net(x)
    assert feature.shape == (3, 24) and logits.shape == (3, 10) and feature.dtype == torch.float32
    assert isinstance(net.head, torch.nn.Linear)
    net.eval()
    f, lg = net(x)
    assert torch.allclose(lg, net.head(f))
    net.train()
    (feature.pow(2).mean() + logits.logsumexp(-1).mean()).backward()
    assert all(p.grad is not None for p in net.parameters())
    spec = json.loads(json.dumps(student_spec(g, **arch)))
    clone = student_from_spec(spec)
    clone.load_state_dict(net.state_dict())
    clone.eval()
    assert torch.allclose(clone(x)[1], lg)
    with pytest.raises(TypeError, match="width"):
        build_student(g, width=3)


def test_hand_cnn_spec_round_trip():
    spec = json.loads(json.dumps(hand_cnn_spec(feature_dim=16, widths=(8, 16, 24))))
    net = student_from_spec(spec)
    assert isinstance(net, HandCNN)
    f, lg = net(torch.randn(2, 1, 28, 28))
    assert f.shape == (2, 16) and lg.shape == (2, 10)


def test_arch_and_weight_parameters_are_disjoint_and_complete():
    net = Supernet(SPACE, MACRO)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert len(arch) == 2 and not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
