"""The radio link's control plane, measured through GNU Radio: preamble miss rate and header error
rate versus Es/N0 with the acceptance impairments (CFO 1e-3 cycles/sample, +50 ppm sample clock,
the 3-tap channel), the streaming receiver's CFO range (noiseless, CFO swept), and false frames on
noise alone. Random unit-power payloads (no model): K = 16, one image per frame.

    ota_tx → ota_channel → ota_rx    (rkdsc_gr blocks, as every loopback and radio flowgraph)

A frame counts as *detected* when the receiver found its preamble (it was decoded, or rejected at
the header CRC); the header error rate is over detected frames.

    .venv/bin/python scripts/phy_link.py [--frames 300] [--snr=-12,-10,-8,-6,-5,-4,-2,0]
        [--images-per-frame N]
        [--cfo-sweep] [--noise-samples 1e8] [--json results/phy_link.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pmt
from gnuradio import analog, blocks, gr

from rkdsc_core.provenance import provenance
from rkdsc_gr._pdu import make_pdu
from rkdsc_gr.ota_channel import DEFAULT_TAPS, ota_channel
from rkdsc_gr.ota_loopback import received_all
from rkdsc_gr.ota_rx import ota_rx
from rkdsc_gr.ota_tx import ota_tx

PORT_IN = pmt.intern("in")


def payloads(n: int, k: int = 16, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = rng.normal(size=k) + 1j * rng.normal(size=k)
        p = (p / np.sqrt(np.mean(np.abs(p) ** 2))).astype(np.complex64)
        out.append(
            make_pdu(pmt.dict_add(pmt.make_dict(), pmt.intern("index"), pmt.from_long(i)), p)
        )
    return out


def run_link(
    n: int, snr_db: float, cfo: float, sco_ppm: float, taps, seed: int, images: int = 1
) -> dict:
    """n frames of `images` images each through the channel; the receiver's counts."""
    tb = gr.top_block()
    tx = ota_tx(max_queue=n * images + 16, images_per_frame=images, flush_s=3600.0)
    rx = ota_rx()
    tb.connect(tx, ota_channel(snr_db, cfo, sco_ppm, taps, seed=seed), rx)
    tb.start()
    for pdu in payloads(n * images, seed=seed):
        tx.framer.to_basic_block()._post(PORT_IN, pdu)
    tx.flush()
    deadline = time.monotonic() + 120 + n * images / 10
    while time.monotonic() < deadline:
        if tx.frames_sent() == n and received_all(tx, rx, sco_ppm):
            break
        time.sleep(0.05)
    tb.stop()
    tb.wait()
    s = rx.stats()
    detected = s["frames"] + s["header_crc"]
    return {
        "frames_sent": n,
        "frames_decoded": s["frames"],
        "header_crc_failures": s["header_crc"],
        "preamble_miss_rate": 1.0 - min(detected, n) / n,
        "header_error_rate": s["header_crc"] / detected if detected else None,
        "frame_success": s["frames"] / n,
        "hits": s["hits"],
        "no_preamble": s["no_preamble"],
    }


def false_frames(samples: int, seed: int = 5) -> dict:
    """Noise alone (unit power: the receiver is gain-invariant) into ota_rx: valid frames out."""
    tb = gr.top_block()
    src = analog.noise_source_c(analog.GR_GAUSSIAN, 1.0, seed)
    head = blocks.head(gr.sizeof_gr_complex, int(samples))
    rx = ota_rx()
    tb.connect(src, head, rx)
    t0 = time.monotonic()
    tb.run()
    s = rx.stats()
    return {
        "samples": int(samples),
        "valid_frames": s["frames"],
        "hits": s["hits"],
        "no_preamble": s["no_preamble"],
        "header_crc": s["header_crc"],
        "seconds": time.monotonic() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--snr", default="-12,-11,-10,-9,-8,-7,-6,-5,-4,-2,0")
    ap.add_argument("--cfo-sweep", action="store_true", help="noiseless, CFO 0 … 4e-3")
    ap.add_argument("--noise-samples", type=float, default=0, help="false-frame run (e.g. 1e8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images-per-frame", type=int, default=1, help="N images per frame")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out: dict = {
        "frames_per_point": args.frames,
        "rate": 16,
        "images_per_frame": args.images_per_frame,
    }
    out["impairments"] = {"cfo": 1e-3, "sco_ppm": 50.0, "taps": [str(t) for t in DEFAULT_TAPS]}
    points = []
    for snr in (float(s) for s in args.snr.split(",") if s):
        link = run_link(
            args.frames, snr, 1e-3, 50.0, DEFAULT_TAPS, args.seed, args.images_per_frame
        )
        p = {"snr_db": snr, **link}
        points.append(p)
        her = p["header_error_rate"]
        print(
            f"{snr:6.1f} dB: preamble miss {p['preamble_miss_rate']:.4f}, header error "
            f"{'n/a' if her is None else f'{her:.4f}'}, "
            f"decoded {p['frames_decoded']}/{p['frames_sent']}",
            flush=True,
        )
    out["snr_points"] = points
    if args.cfo_sweep:
        sweep = []
        for cfo in (0.0, 1e-3, 2e-3, 2.5e-3, 3e-3, 3.5e-3, 3.8e-3, -3.8e-3, -3e-3, -2e-3):
            r = run_link(50, 60.0, cfo, 50.0, DEFAULT_TAPS, args.seed)
            sweep.append({"cfo": cfo, **r})
            print(f"CFO {cfo:+.1e}: decoded {r['frames_decoded']}/{r['frames_sent']}", flush=True)
        out["cfo_sweep"] = sweep
    if args.noise_samples:
        out["noise_only"] = false_frames(int(args.noise_samples))
        print("noise only:", out["noise_only"], flush=True)
    out["provenance"] = provenance(config=vars(args), seed=args.seed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
