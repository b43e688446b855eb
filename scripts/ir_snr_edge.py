"""The IR stopping rule's SNR bins (issue 18): offline on 1,000 validation images (keyed AWGN
draws), IR at exactly 0 and 10 dB against an SNR a hair below (what the waveform receiver
estimates): accuracy, mean symbols, requests per image.

    .venv/bin/python scripts/ir_snr_edge.py
"""

import rkdsc_core.eval.adaptive as A
from rkdsc_core.runtime import load_bundle

b = load_bundle("default")
data = A.validation_images(b)
imgs, labels = data.images[:1000], data.labels[:1000]
raw = A.encode_raw_all(b, imgs)
for snr in (0.0, -0.05, 10.0, 9.95):
    p = A.simulate_point(b, raw, labels, "awgn", snr, "ir", 64, 4, seed=0)
    print(
        snr,
        round(p["accuracy"], 4),
        round(p["mean_channel_uses"], 2),
        round(p["requests_per_image"], 3),
        flush=True,
    )
