"""KD losses (pure functions) and the stage-1 Distiller."""

import math

import numpy as np
import pytest
import torch

from rkdsc_core.distill.batches import Batch
from rkdsc_core.distill.distiller import Distiller
from rkdsc_core.distill.losses import KDWeights, cross_entropy, feature_mse, kd_kl, kd_objective
from rkdsc_core.nas.reference import HandCNN


def test_feature_mse_is_the_mean_square_and_checks_widths():
    s, t = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert float(feature_mse(s, t)) == pytest.approx((1 + 4 + 0 + 4) / 4)
    with pytest.raises(ValueError, match="project"):
        feature_mse(torch.zeros(2, 3), torch.zeros(2, 4))


def test_kd_kl_matches_the_definition_times_t_squared():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 10, generator=g), torch.randn(5, 10, generator=g)
    T = 3.0
    p_t, p_s = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
    manual = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * T * T
    assert float(kd_kl(s, t, T)) == pytest.approx(float(manual), rel=1e-5)
    assert float(kd_kl(t, t, T)) == pytest.approx(0.0, abs=1e-6)
    assert float(cross_entropy(s, torch.zeros(5, dtype=torch.long))) > 0


def test_kd_objective_weights_and_sums_terms():
    g = torch.Generator().manual_seed(1)
    f, tf = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    lg, tl = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    y = torch.tensor([0, 1, 2, 0])
    terms = kd_objective(f, lg, y, tf, tl, KDWeights(2.0, 0.0, 0.5, 2.0))
    assert set(terms) == {"loss", "loss_feature", "loss_ce"}
    assert float(terms["loss_feature"]) == pytest.approx(2 * float(feature_mse(f, tf)))
    assert float(terms["loss_ce"]) == pytest.approx(0.5 * float(cross_entropy(lg, y)))
    assert float(terms["loss"]) == pytest.approx(float(terms["loss_feature"] + terms["loss_ce"]))
    with pytest.raises(ValueError):
        KDWeights(feature=-1.0)


def test_distiller_learns_stored_targets_and_needs_them():
    torch.manual_seed(0)
    student = HandCNN(feature_dim=8, widths=(8, 16), depth=1)
    distiller = Distiller(student, KDWeights(1.0, 1.0, 0.5, 4.0))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 1, 28, 28, generator=g)
    y = torch.arange(16) % 4  # a coherent teacher: class prototypes and confident logits
    batch = Batch(x, y, torch.randn(4, 8, generator=g)[y], 4.0 * torch.eye(10)[y])
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        terms = distiller.forward_train(batch)
        assert {"loss", "loss_feature", "loss_kl", "loss_ce"} == set(terms)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0] and all(map(math.isfinite, losses))
    assert distiller.forward_test(x).shape == (16, 10)
    with pytest.raises(ValueError, match="teacher targets"):
        distiller.forward_train(Batch(x, batch.y, None, None))
    assert np.isfinite(losses).all()
