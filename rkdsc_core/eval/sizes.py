"""What runs at each end of the link, in parameters and FLOPs per image (issue 19).

The transmitter is the student + the CAT encoder (what a device must hold and run before it can
send); the receiver is the CAT decoder + the head. The same split is given for each baseline.
FLOPs are counted by torch's FlopCounterMode for one image (a multiply-add counts 2); the CAT
decoder and heads at K symbols per image (the encoder always computes K_max outputs).
"""

from __future__ import annotations

import torch

from rkdsc_core.runtime import Bundle
from rkdsc_core.torch_utils import count_params


def flops_per_image(module, *inputs) -> int:
    """Forward FLOPs for one sample, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(*inputs)
    return int(counter.get_total_flops())


def _image(bundle: Bundle) -> torch.Tensor:
    h, w, c = bundle.image_shape
    return torch.zeros(1, c, h, w)


def cat_flops(cat, k: int) -> tuple[int, int]:
    """(encoder, decoder) FLOPs of a CAT codec for one image, the decoder reading k symbols."""
    feat = torch.zeros(1, cat.cfg.feature_dim)
    enc = flops_per_image(lambda f: cat.encode(f, k, 0.0), feat)
    dec = flops_per_image(
        lambda y: cat.decode_received(y, torch.zeros(1, k)),
        torch.zeros(1, k, dtype=torch.complex64),
    )
    return enc, dec


def model_flops(bundle: Bundle) -> dict:
    """FLOPs per image of each component (CAT decoder at K_max)."""
    x, cat = _image(bundle), bundle.cat
    enc, dec = cat_flops(cat, cat.cfg.k_max)
    return {
        "teacher_flops": flops_per_image(bundle.teacher.logits, x),
        "student_flops": flops_per_image(bundle.student, x),
        "cat_encoder_flops": enc,
        "cat_decoder_flops": dec,
        "head_flops": flops_per_image(bundle.head, torch.zeros(1, cat.cfg.feature_dim)),
    }


def link_sizes(bundle: Bundle, flops: dict | None = None) -> dict:
    """Transmitter / receiver parameters and FLOPs of RKD-SC, and their share of the teacher."""
    flops = flops or model_flops(bundle)
    tx = count_params(bundle.student) + count_params(bundle.cat.encoder)
    rx = count_params(bundle.cat.decoder) + count_params(bundle.head)
    teacher = count_params(bundle.teacher)
    return {
        "cat_encoder_params": count_params(bundle.cat.encoder),
        "cat_decoder_params": count_params(bundle.cat.decoder),
        "transmitter_params": tx,
        "receiver_params": rx,
        "transmitter_param_ratio": tx / teacher,
        "transmitter_flops": flops["student_flops"] + flops["cat_encoder_flops"],
        "receiver_flops": flops["cat_decoder_flops"] + flops["head_flops"],
        "sizes_note": "transmitter = student + CAT encoder; receiver = CAT decoder + head; "
        "FLOPs per image by torch FlopCounterMode (CAT decoder at K_max)",
    }


def _split(tx_mods, rx_mods, tx_flops: int, rx_flops: int, **extra) -> dict:
    return {
        "transmitter_params": sum(count_params(m) for m in tx_mods),
        "receiver_params": sum(count_params(m) for m in rx_mods),
        "transmitter_flops": tx_flops,
        "receiver_flops": rx_flops,
        **extra,
    }


def baseline_sizes(bundle: Bundle) -> dict:
    """{name: transmitter/receiver params and FLOPs} of the learned baselines the bundle ships,
    at their trained K; the analytic and digital baselines' sizes are stated in words."""
    from rkdsc_core.eval.learned_baselines import trained_baseline

    out: dict = {}
    x = _image(bundle)
    entries = bundle.manifest.get("baselines", {})
    for name, entry in entries.items():
        k = int(entry["rate"])
        got = trained_baseline(bundle, name, k)
        if got is None:
            continue
        mods = got[0]
        if name == "deepjscc-cnn":
            m = mods["model"]
            y = [torch.zeros(1, k, dtype=torch.complex64)]
            if m.snr_input:  # its decoder also reads each symbol's SNR
                y.append(torch.zeros(1, k))
            tx_f, rx_f = flops_per_image(m.encode, x), flops_per_image(m.decode, *y)
            out[name] = _split([m.encoder], [m.decoder], tx_f, rx_f)
        elif "cat" in mods:
            cat, head = mods["cat"], mods["head"]
            enc, dec = cat_flops(cat, k)
            head_f = flops_per_image(head, torch.zeros(1, cat.cfg.feature_dim))
            if "student" in mods:
                front, front_f = mods["student"], flops_per_image(mods["student"], x)
            else:  # teacher-over-channel: the transmitter runs the frozen teacher
                front, front_f = bundle.teacher, flops_per_image(bundle.teacher.embed, x)
            out[name] = _split(
                [front, cat.encoder], [cat.decoder, head], front_f + enc, dec + head_f
            )
        out[name]["rate"] = k
    s = count_params(bundle.student)
    out["no-cat"] = {
        "transmitter_params": s,
        "receiver_params": count_params(bundle.student.head),
        "note": "plus a PCA table (2K x D + D numbers) at each end, fitted, not learned",
    }
    for name in ("label-digital", "feature-digital", "feature-digital-16qam"):
        out[name] = {
            "transmitter_params": s,
            "receiver_params": count_params(bundle.student.head) if "feature" in name else 0,
            "note": "plus the channel code (no parameters)"
            + ("; feature ones a PCA + quantiser table at each end" if "feature" in name else ""),
        }
    out["image-digital"] = {
        "transmitter_params": 0,
        "receiver_params": s,
        "note": "JPEG + LDPC at the transmitter; the receiver classifies the decoded image",
    }
    return out
