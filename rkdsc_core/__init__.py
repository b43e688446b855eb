"""rkdsc_core: the PyTorch/numpy side of gr-rkdsc (RKD-SC, arXiv 2508.02148).

Never imports GNU Radio: the blocks in `rkdsc_gr` adapt this package to flowgraphs.
"""

__version__ = "0.1.0"
