"""Where the GRC block YAMLs live (for GRC_BLOCKS_PATH); importable without GNU Radio."""

from pathlib import Path


def grc_path() -> Path:
    """Folder holding the `rkdsc_*.block.yml` files, installed (wheel) or in the source tree."""
    here = Path(__file__).resolve().parent
    for cand in (here / "grc", here.parents[1] / "grc"):
        if any(cand.glob("rkdsc_*.block.yml")) or (cand / "__init__.py").exists():
            return cand
    return here.parents[1] / "grc"
