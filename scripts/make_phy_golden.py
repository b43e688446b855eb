"""Regenerate the PHY golden vectors in tests/core/data/ (run only when the frame format changes on
purpose, and say so in the commit): header bits and QPSK symbols as text, the burst as complex64
.npy. The header is a version 3 increment header (issue 18's fields set); phy_golden_v2.json and
phy_golden_v2_burst.npy are the version 2 vectors this script wrote before, kept so that the
receiver is checked to read frames recorded before version 3.

    .venv/bin/python scripts/make_phy_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rkdsc_core.phy import FrameConfig, FrameModulator, Header, encode_header, header_bits

OUT = Path(__file__).resolve().parents[1] / "tests" / "core" / "data"
HEADER = Header(
    rate=16,
    images=1,
    frame_index=0x34,
    image_index=0x0ABCDE,
    bundle_id=0xBEEF,
    increment=1,
    final=1,
    offset=48,
)
# a fixed unit-power payload that needs no random generator
PAYLOAD = (np.exp(1j * 2.399963 * np.arange(16)) * (1 + 0.5 * np.cos(np.arange(16)))).astype(
    np.complex64
)
PAYLOAD /= np.sqrt(np.mean(np.abs(PAYLOAD) ** 2)).astype(np.float32)


def main() -> None:
    cfg = FrameConfig()
    burst = FrameModulator(cfg).modulate(HEADER, PAYLOAD)
    meta = {
        "what": "rkdsc PHY golden vectors (scripts/make_phy_golden.py)",
        "frame_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "header": {k: getattr(HEADER, k) for k in HEADER.__dataclass_fields__},
        "header_bits": "".join(map(str, header_bits(HEADER))),
        "header_qpsk": "".join(
            ("+" if s.real > 0 else "-") + ("+" if s.imag > 0 else "-")
            for s in encode_header(HEADER)
        ),
        "payload_re": [float(v) for v in PAYLOAD.real],
        "payload_im": [float(v) for v in PAYLOAD.imag],
        "burst_file": "phy_golden_burst.npy",
        "burst_clipped": burst.clipped,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "phy_golden.json").write_text(json.dumps(meta, indent=1) + "\n")
    np.save(OUT / "phy_golden_burst.npy", burst.samples)
    print(
        f"wrote {OUT / 'phy_golden.json'} and {meta['burst_file']} ({len(burst.samples)} samples)"
    )


if __name__ == "__main__":
    main()
