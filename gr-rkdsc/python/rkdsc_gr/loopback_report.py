"""What the symbol-level (`loopback`) and waveform (`ota_loopback`) loopbacks share: checking the
request against the bundle and its dataset, and the loopback JSON of DESIGN.md §5. Imports no
GNU Radio, and neither loopback module."""

from __future__ import annotations

from rkdsc_core.bundle import bundle_ref
from rkdsc_core.errors import RkdscError
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle


def resolve_request(
    bundle: str, device: str, rate: int, n: int | None, split: str, data_root: str | None
):
    """Load the bundle and check K and n against it and its dataset split (one-line errors);
    returns (bundle, dataset name, n) with n = the whole split when None."""
    from rkdsc_core.data.datasets import load_dataset

    bun = load_bundle(bundle, device)
    try:
        bun.check_rate(rate)
    except ValueError as exc:
        raise RkdscError(str(exc)) from None
    ds = bun.manifest["dataset"]["name"]
    total = len(load_dataset(ds, split, data_root))
    n = total if n is None else int(n)
    if not 1 <= n <= total:
        raise RkdscError(f"--n {n}: the {ds} {split} split has {total} images")
    return bun, ds, n


def loopback_report(
    bun,
    split: str,
    n: int,
    channel: str,
    rate: int,
    phy: str,
    points: list,
    config: dict,
    seed: int,
) -> dict:
    """The loopback JSON of DESIGN.md §5 (points carry frames_sent / frames_detected)."""
    metrics = bun.manifest.get("metrics", {})
    return {
        "bundle": bundle_ref(bun.path),
        "dataset": bun.manifest["dataset"]["name"],
        "split": split,
        "n": n,
        "channel": channel,
        "rate": int(rate),
        "phy": phy,
        "clean_accuracy": metrics.get("clean_accuracy"),
        "teacher_accuracy": metrics.get("teacher_accuracy"),
        "clean_source": "bundle manifest metrics (measured at export)",
        "points": points,
        "baselines": {},
        "provenance": provenance(config=config, seed=seed),
    }
