"""The DARTS candidate ops in their search-space order (the columns of α). Imports nothing, so the
torch-free config can default to it; `rkdsc_core.nas.ops.OPS` builds each by name."""

DARTS_PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
