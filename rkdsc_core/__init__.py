"""rkdsc_core: the PyTorch/numpy side of gr-rkdsc (RKD-SC, arXiv 2508.02148). Never imports GNU Radio."""

__version__ = "0.1.0"
