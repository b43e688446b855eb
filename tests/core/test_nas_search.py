"""KDL-DARTS bilevel step and the search / stage-1 stages on synthetic teacher targets."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from core_helpers import tiny_genotype

from rkdsc_core.config import Config, DataConfig, SearchConfig, Stage1Config
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.targets import TeacherTargets
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.distill.batches import KDData, iterate
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.nas.architect import Architect, ArchOptimConfig
from rkdsc_core.nas.cost import build_cost_table
from rkdsc_core.nas.genotype import Genotype
from rkdsc_core.nas.objective import SearchObjective
from rkdsc_core.nas.supernet import Macro, SearchSpace, Supernet
from rkdsc_train.context import StageContext

D = 16
TINY_SEARCH = SearchConfig(
    epochs=2,
    batch_size=16,
    init_channels=4,
    layers=2,
    nodes=2,
    train_limit=64,
    eval_limit=32,
    lambda_cost=0.5,
    kd_kl_weight=0.5,
)
TINY_STAGE1 = Stage1Config(epochs=1, batch_size=32, init_channels=4, layers=3)


def synthetic_data(split: str, n: int) -> KDData:
    """fmnist_subset images with random (but fixed) teacher targets of width D."""
    arrays = load_dataset("fmnist_subset", split, limit=n)
    rng = np.random.default_rng(1)
    targets = TeacherTargets(
        rng.normal(size=(n, D)).astype(np.float32), rng.normal(size=(n, 10)).astype(np.float32)
    )
    return KDData(arrays, targets, Normalisation.for_dataset("fmnist_subset"))


def _objective(space, macro, lam):
    return SearchObjective(KDWeights(1.0, 0.5, 1.0, 4.0), build_cost_table(space, macro, 28), lam)


@pytest.mark.parametrize("second_order", [False, True])
def test_architect_step_moves_alpha_only(second_order):
    torch.manual_seed(0)
    space, macro = SearchSpace(nodes=2), Macro(feature_dim=D, init_channels=4, layers=2)
    net = Supernet(space, macro)
    data = synthetic_data("train", 32)
    batches = list(iterate(data, np.arange(32), 16))
    w_before = [p.detach().clone() for p in net.weight_parameters()]
    a_before = [a.detach().clone() for a in net.arch_parameters()]
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    arch = Architect(
        net, _objective(space, macro, 1.0), ArchOptimConfig(lr=0.05, second_order=second_order)
    )
    terms = arch.step(batches[0], batches[1], 0.01, w_opt)
    assert {"loss", "loss_feature", "loss_kl", "loss_ce", "loss_cost"} <= set(terms)
    assert all(not torch.equal(a, b) for a, b in zip(net.arch_parameters(), a_before))
    assert all(torch.equal(w, b) for w, b in zip(net.weight_parameters(), w_before))


def test_cost_penalty_alone_drives_alpha_to_cheap_ops():
    space, macro = SearchSpace(nodes=2), Macro(feature_dim=D, init_channels=4, layers=2)
    net = Supernet(space, macro)
    objective = _objective(space, macro, 1.0)
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.1)
    start = objective.expected_cost(net)
    for _ in range(20):
        opt.zero_grad()
        objective.penalty(net).backward()
        opt.step()
    assert objective.expected_cost(net) < 0.5 * start


def _ctx(tmp_path, name, resume=False, **search):
    cfg = Config(
        out_dir=str(tmp_path),
        data=DataConfig(name="fmnist_subset"),
        search=dataclasses.replace(TINY_SEARCH, **search),
        stage1=TINY_STAGE1,
    )
    return StageContext(cfg, name, resume=resume)


def test_search_stage_writes_outputs_and_resumes(tmp_path):
    from rkdsc_train.stages.search import search

    data = synthetic_data("train", 96)
    first = search(_ctx(tmp_path, "search", epochs=1), data)
    assert len(first["expected_cost_per_epoch"]) == 1
    resumed = search(_ctx(tmp_path, "search", resume=True), data)  # continues with epoch 2
    assert [r["epoch"] for r in resumed["history"]] == [0, 1]
    assert resumed["history"][0] == first["history"][0]
    out = tmp_path / "search"
    g = Genotype.load(out / "genotype.yaml")
    assert g.to_dict() == resumed["genotype"] and g.nodes == 2
    alphas = json.loads((out / "alpha_history.json").read_text())
    assert [e["epoch"] for e in alphas["epochs"]] == [-1, 0, 1]
    assert (out / "search_curves.png").exists() and (out / "genotype.png").exists()
    assert resumed["derived"]["params"] > 0


def test_stage1_trains_the_searched_student_and_the_loader_reads_it(tmp_path):
    from rkdsc_core.nas.student import student_spec
    from rkdsc_train.stages.search import student_arch
    from rkdsc_train.stages.stage1 import train_student

    ctx = _ctx(tmp_path, "stage1")
    train, test = synthetic_data("train", 96), synthetic_data("test", 40)
    g = Genotype.from_dict(json.loads(json.dumps(tiny_genotype().to_dict())))
    spec = student_spec(g, **student_arch(ctx.cfg, train))
    m = train_student(ctx, spec, train, test, {"test_accuracy": 0.9, "params": 10**6})
    assert m["test_n"] == 40 and 0.0 <= m["test_accuracy"] <= 1.0 and m["flops"] > 0
    assert m["param_ratio"] == m["params"] / 10**6
    (tmp_path / "stage1" / "metrics.json").write_text(json.dumps(m))
    from rkdsc_train.artifacts import load_stage1_student

    student, entry = load_stage1_student(tmp_path)
    assert entry["params"] == m["params"] and entry["feature_dim"] == D
    f, logits = student(torch.zeros(2, 1, 28, 28))
    assert f.shape == (2, D) and logits.shape == (2, 10)


def test_stage1_stem_stride_sets_the_students_resolution(tmp_path):
    from rkdsc_core.config import ConfigError, load_config
    from rkdsc_train.stages.search import derived_size, student_arch

    data, g = synthetic_data("train", 8), tiny_genotype().to_dict()
    sizes = {}
    for stride in (1, 2):
        ctx = _ctx(tmp_path, "stage1")
        ctx.cfg.stage1 = dataclasses.replace(TINY_STAGE1, stem_stride=stride)
        arch = student_arch(ctx.cfg, data)
        assert arch["stem_stride"] == stride
        sizes[stride] = derived_size(g, arch, 28)
    assert sizes[1]["params"] == sizes[2]["params"]  # same weights, cells at 28×28 vs 14×14
    assert sizes[1]["flops"] > 3 * sizes[2]["flops"]
    with pytest.raises(ConfigError, match="'stage1.stem_stride' expects one of 1, 2, got 3"):
        load_config(None, ["stage1.stem_stride=3"])  # refused when the config loads
    assert load_config(None, ["stage1.stem_stride=1"]).stage1.stem_stride == 1


def test_stored_views_shift_images_and_switch_targets(tmp_path):
    from rkdsc_core.distill.batches import StoredViews
    from rkdsc_core.nas.student import student_spec
    from rkdsc_train.stages.search import student_arch
    from rkdsc_train.stages.stage1 import train_student

    base = synthetic_data("train", 64)
    rng = np.random.default_rng(3)
    params = np.zeros((2, 64, 3), np.int8)
    params[1, :, 1] = 2  # view 1: every image shifted 2 px
    emb = np.stack([base.targets.embeddings, rng.normal(size=(64, D)).astype(np.float32)])
    logits = np.stack([base.targets.logits, rng.normal(size=(64, 10)).astype(np.float32)])
    data = dataclasses.replace(base, views=StoredViews(emb, logits, params, pad=2))
    idx = np.arange(4)
    clean, shifted = data.batch(idx, np.zeros(4, int)), data.batch(idx, np.ones(4, int))
    assert torch.equal(clean.x, base.batch(idx).x)
    assert torch.equal(shifted.x[..., :-2], clean.x[..., 2:])
    assert torch.equal(shifted.t_feature, torch.from_numpy(emb[1, :4]))
    cfg = dataclasses.replace(TINY_STAGE1, augment=True)
    ctx = _ctx(tmp_path, "stage1")
    ctx.cfg = dataclasses.replace(ctx.cfg, stage1=cfg)
    spec = student_spec(tiny_genotype(), **student_arch(ctx.cfg, data))
    assert train_student(ctx, spec, data, synthetic_data("test", 16))["test_n"] == 16
