"""What the symbol-level (`loopback`) and waveform (`ota_loopback`) loopbacks share: their rate
adaptation options (`Adapt`) and the blocks they configure (the adaptive encoder, the feedback
link), checking the request against the bundle and its dataset, and the loopback JSON of
DESIGN.md §5. Imports neither loopback module, and GNU Radio only inside the block builders."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from rkdsc_core.bundle import bundle_ref
from rkdsc_core.data.subsets import selection_record
from rkdsc_core.errors import RkdscError
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle


@dataclass(frozen=True)
class Adapt:
    """The rate adaptation of a loopback (`rkdsc loopback --adapt …`)."""

    mode: str = "none"
    k0: int = 4
    step: int | None = None
    confidence: float = 0.98
    target: float = 0.99
    feedback_delay: int = 0
    feedback_loss: float = 0.0
    timeout_s: float = 10.0  # the receiver decides an image whose increment is this late


NO_ADAPT = Adapt()  # fixed K, no feedback


@dataclass(frozen=True)
class LoopbackRequest:
    """One loopback run (`rkdsc loopback`): the first `n` images of the bundle's `split` (all
    when None) through `channel` at each SNR of `snrs`, K = `rate`; what both PHYs share."""

    bundle: str = "default"
    channel: str = "awgn"
    snrs: tuple[float, ...] = (10.0,)
    rate: int = 16
    n: int | None = None
    split: str = "test"
    data_root: str | None = None
    seed: int = 0
    device: str = "cpu"
    fd_ts: float = 0.01  # Doppler of "rayleigh_fast"
    k_factor: float = 4.0  # K-factor of "rician"
    timeout_s: float | None = None  # per SNR point; None: from n
    adapt: Adapt = NO_ADAPT

    def resolve(self):
        """`resolve_request` for this request: (bundle, its `DatasetSpec`, the request with `n`
        the number of images to send)."""
        bun, spec, n = resolve_request(
            self.bundle, self.device, self.rate, self.n, self.split, self.data_root
        )
        return bun, spec, replace(self, n=n)

    def config(self, **extra) -> dict:
        """The channel and adaptation settings recorded in the report's provenance."""
        return {
            "channel": self.channel,
            "fd_ts": self.fd_ts,
            "k_factor": self.k_factor,
            "device": self.device,
            **extra,
            "adapt": asdict(self.adapt),
        }

    def report(self, bun, phy: str, points: list, config: dict) -> dict:
        """The loopback JSON of this (resolved) request's `points`."""
        rep = loopback_report(
            bun, self.split, self.n, self.channel, self.rate, phy, points, config, self.seed
        )
        rep["adapt"] = self.adapt.mode
        return rep


def adaptive_encoder(bundle: str, rate: int, device: str, adapt: Adapt, channel: str):
    """`rkdsc_semantic_tx` at K = `rate` with `adapt`'s rate adaptation; SNR feedback reads the
    bundle's rate table of `channel` ("awgn", else "rayleigh")."""
    from rkdsc_gr.semantic_tx import semantic_tx

    return semantic_tx(
        bundle,
        rate,
        device,
        adapt=adapt.mode,
        k0=adapt.k0,
        step=adapt.step or 0,
        target=adapt.target,
        table_channel="awgn" if channel == "awgn" else "rayleigh",
    )


def feedback_path(adapt: Adapt, seed: int):
    """The simulated feedback link of `adapt` (delay, loss; seeded `seed + 7`)."""
    from rkdsc_gr.feedback_link import feedback_link

    return feedback_link(adapt.feedback_delay, adapt.feedback_loss, seed=seed + 7)


#: (bundle folder, split, n) → the JSON record of the images resolve_request selected, which
#: loopback_report adds to the report (both run in the one process of a loopback command)
_SELECTED: dict[tuple[str, str, int], dict] = {}


def resolve_request(
    bundle: str, device: str, rate: int, n: int | None, split: str, data_root: str | None
):
    """Load the bundle and check K, n and the data at `data_root` against it and its dataset
    spec (one-line errors); returns (bundle, its `DatasetSpec`, n) with n = the whole split when
    None. `rkdsc_image_source` given that spec and n sends the images `rkdsc eval --n` scores."""
    bun = load_bundle(bundle, device)
    try:
        bun.check_rate(rate)
    except ValueError as exc:
        raise RkdscError(str(exc)) from None
    data = bun.dataset.load(split, data_root, n)
    n = len(data)
    _SELECTED[(str(bun.path), split, n)] = selection_record(data.index, data.labels, data.total)
    return bun, bun.dataset, n


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
        "images": _SELECTED.get((str(bun.path), split, n)),
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
