"""Baselines next to RKD-SC (issue 11): no-CAT analog features, learned baselines, separate
source/channel coding, and the capacity bound for the label.

Every baseline is registered in `BASELINES` (`registry.py`: name → runner; `--baselines all` runs
them in that order). Modules, by concern:

- `modem`: Gray M-QAM, max-log LLR demapping, one coded frame per image through the keyed channel;
- `source_coding`: bit packing, JPEG with shared tables, PCA + scalar quantiser of features;
- `features`: student features and head classes (cached within one `run_baselines` call);
- `analog` (`no-cat`), `digital` (label / feature / image links), `capacity` (the label bound);
  the learned ones train in `rkdsc_core.eval.learned_baselines`.

Pure numpy / Pillow / torch. The forward error correction itself (GNU Radio's `gnuradio.fec`) lives
in `rkdsc_gr.digital_baselines` and comes in as a `BlockCode` factory from the `rkdsc` command, so
that this layer never imports gnuradio (DESIGN.md §2). Conventions:

- symbols are complex64 [N, K] with unit average power (DESIGN.md §3); a digital link sends each
  image's frame through the same `rkdsc_core.channels` channel as RKD-SC, equalised with perfect
  CSI (zero forcing, so that the constellation is not scaled), with the effective per-symbol N0
  handed to the soft demapper;
- LLRs are log P(b=0)/P(b=1) (positive means bit 0), float32 [N, nbits];
- bits are uint8 0/1 arrays.
"""

from rkdsc_core.eval.baselines.analog import no_cat
from rkdsc_core.eval.baselines.capacity import capacity_bound_curve, capacity_snr_db
from rkdsc_core.eval.baselines.digital import (
    choose_quantizer,
    feature_digital,
    image_digital,
    label_digital,
)
from rkdsc_core.eval.baselines.features import (
    classify_images,
    feature_cache,
    student_features,
    student_head_classes,
)
from rkdsc_core.eval.baselines.modem import BlockCode, CodeFactory, coded_link
from rkdsc_core.eval.baselines.registry import (
    ALL,
    BASELINES,
    DIGITAL,
    KNOWN,
    Baseline,
    BaselineRun,
    run_baselines,
)
from rkdsc_core.eval.baselines.source_coding import FeatureQuantizer, Pca

__all__ = [
    "ALL",
    "BASELINES",
    "DIGITAL",
    "KNOWN",
    "Baseline",
    "BaselineRun",
    "BlockCode",
    "CodeFactory",
    "FeatureQuantizer",
    "Pca",
    "capacity_bound_curve",
    "capacity_snr_db",
    "choose_quantizer",
    "classify_images",
    "coded_link",
    "feature_cache",
    "feature_digital",
    "image_digital",
    "label_digital",
    "no_cat",
    "run_baselines",
    "student_features",
    "student_head_classes",
]
