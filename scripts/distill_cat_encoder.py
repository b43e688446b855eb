"""Shrink the transmitter (issue 19): distil the bundle's CAT encoder into a light one.

The light encoder (`CATConfig.enc_d_model` / `enc_ff_mult` / `enc_out="token"`) is trained to emit
the symbols the shipped encoder emits, every nested prefix K in the bundle's rates after its own
power normalisation, from the frozen student's clean features, with the SNR unknown for half the
samples and U[-10, 20] dB for the rest (stage 2's mix); the decoder and head stay as shipped.
Then both codecs are scored as stage 2 scores its epochs (held-out last 2,000 training images,
AWGN 0 / -5 dB and Rayleigh 5 dB at K = 16, SNR unknown at the encoder, seed 0) and the light one
is written as a bundle next to the shipped components, with its rate table re-measured as the
export stage measures it.

Usage: python scripts/distill_cat_encoder.py --out runs/smallenc [--epochs 30] [--train 20000]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from rkdsc_core.bundle import count_params, load_component, read_manifest, save_bundle
from rkdsc_core.channels import make_channel, normalize_power
from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.data.subsets import balanced_subset, validation_split
from rkdsc_core.data.transforms import map_images
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle

log = logging.getLogger("distill_cat_encoder")


def features(bundle, images: np.ndarray) -> torch.Tensor:
    return map_images(lambda x: bundle.student(x)[0], images, bundle.norm)


def prefixes(raw: torch.Tensor, rates) -> list[torch.Tensor]:
    """Each nested prefix of raw encoder outputs complex [B, K_max], power-normalised alone."""
    return [normalize_power(raw[:, :k]) for k in rates]


@torch.no_grad()
def validate(cat, head, feats, labels, seed: int = 0) -> dict:
    """stages.stage2.validate's three points (K = 16, SNR unknown at the encoder)."""
    res = {}
    for name, snr in (("awgn", 0.0), ("awgn", -5.0), ("rayleigh", 5.0)):
        g = torch.Generator().manual_seed(seed)
        x = cat.encode(feats, 16, None)[:, :16]
        out = make_channel(name)(x, torch.full((len(x),), snr), generator=g)
        z = cat.decode_received(out.symbols, out.snr_eff_db)
        res[f"{name}_{snr:g}dB_K16"] = float((head(z).argmax(1) == labels).float().mean())
    res["score"] = float(np.mean(list(res.values())))
    return res


def editable_bundle(path) -> tuple[dict, dict]:
    """(manifest without its file list and format version, {component: module}) of the bundle at
    `path`, ready to be changed and written again with `save_bundle`."""
    manifest = read_manifest(path)
    modules = {name: load_component(path, name, manifest) for name in manifest["files"]}
    return {k: v for k, v in manifest.items() if k not in ("files", "format_version")}, modules


def refresh_rate_table(path: Path, seed: int = 0) -> dict:
    """Re-measure the bundle's `rate_table` and IR stopping rule (as the export stage does, on
    the validation images stage 2 held out; the rule takes ~20 min on 2 cores) and its CAT
    metrics for the new encoder; rewrites the manifest in place."""
    from rkdsc_core.eval.adaptive import calibrate_stop_rule, rate_table, validation_images

    bundle = load_bundle(path)
    val = validation_images(bundle)
    table = rate_table(bundle, val, ("awgn", "rayleigh"), (-10, -5, 0, 5, 10, 15, 20), seed)
    manifest, modules = editable_bundle(path)
    manifest["rate_table"] = table
    manifest["ir_stop_rule"] = calibrate_stop_rule(bundle, val, seed=seed + 1).to_dict()
    manifest["metrics"] = {**manifest["metrics"], "cat_params": count_params(bundle.cat)}
    save_bundle(path, manifest, modules)
    return table


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=20000, help="training images used")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--enc-d-model", type=int, default=32)
    ap.add_argument("--enc-layers", type=int, default=2)
    ap.add_argument("--enc-ff-mult", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--refresh-only", action="store_true", help="only re-measure <out>/bundle's rate table"
    )
    return ap.parse_args()


def stage2_features(bundle, n_train: int, out: Path):
    """Student features of `n_train` class-balanced training images and of stage 2's held-out
    validation images (the bundle's resolved config: seeded, class-stratified; issue 20), cached
    in `out/features.pt`: (train [N, D], validation [M, D], validation labels int64 [M])."""
    data = bundle.dataset.load("train")
    run_cfg = bundle.manifest.get("provenance", {}).get("config") or {}
    fit, val = validation_split(
        data.labels,
        run_cfg.get("data", {}).get("val_fraction", 0.1),
        run_cfg.get("seed", 0),
        limit=run_cfg.get("stage2", {}).get("val_limit", 2000),
    )
    fit = fit[balanced_subset(data.labels[fit], n_train)]
    cache = out / "features.pt"
    if cache.is_file():
        ftr, fva = torch.load(cache, weights_only=True)
    else:
        t0 = time.time()
        ftr, fva = features(bundle, data.images[fit]), features(bundle, data.images[val])
        torch.save((ftr, fva), cache)
        log.info("student features of %d + %d images: %.0f s", len(fit), len(val), time.time() - t0)
    return ftr, fva, torch.from_numpy(data.labels[val].astype(np.int64))


def light_codec(old: CATCodec, args: argparse.Namespace) -> CATCodec:
    """A CAT with the light encoder of `args` and `old`'s decoder, frozen."""
    cfg = CATConfig.from_dict(
        {
            **old.cfg.to_dict(),
            "enc_d_model": args.enc_d_model,
            "enc_layers": args.enc_layers,
            "enc_ff_mult": args.enc_ff_mult,
            "enc_out": "token",
        }
    )
    new = CATCodec(cfg)
    new.decoder.load_state_dict(old.decoder.state_dict())
    for p in new.decoder.parameters():
        p.requires_grad_(False)
    return new


def distil(new: CATCodec, old: CATCodec, head, ftr, fva, yva, args) -> list[dict]:
    """Train `new.encoder` to emit `old`'s power-normalised prefixes; the per-epoch history."""
    rates, n_tr = new.cfg.rates, len(ftr)
    opt = torch.optim.AdamW(new.encoder.parameters(), lr=args.lr, weight_decay=1e-4)
    bs, steps = 256, args.epochs * -(-n_tr // 256)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    for epoch in range(args.epochs):
        new.encoder.train()
        order = torch.randperm(n_tr, generator=gen)
        total = 0.0
        for i in range(0, n_tr, bs):
            f = ftr[order[i : i + bs]]
            snr = torch.rand(len(f), generator=gen) * 30 - 10
            snr[torch.rand(len(f), generator=gen) < 0.5] = float("nan")
            with torch.no_grad():
                want = prefixes(old.encoder(f, snr), rates)
            got = prefixes(new.encoder(f, snr), rates)
            loss = sum((g - w).abs().square().mean() for g, w in zip(got, want)) / len(rates)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(f)
        new.eval()
        val = validate(new, head, fva, yva)
        history.append({"epoch": epoch, "mse": total / n_tr, "val": val})
        log.info("epoch %d: symbol MSE %.4f, val %s", epoch, total / n_tr, val)
    return history


def main() -> None:
    args = parse_args()
    if args.refresh_only:
        print(json.dumps(refresh_rate_table(Path(args.out) / "bundle", args.seed)))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    old, head = bundle.cat.eval(), bundle.head.eval()
    ftr, fva, yva = stage2_features(bundle, args.train, out)
    new = light_codec(old, args)
    t0 = time.time()
    history = distil(new, old, head, ftr, fva, yva, args)
    train_s = time.time() - t0
    shipped = validate(old, head, fva, yva)
    log.info("shipped CAT: %s", shipped)
    manifest, modules = editable_bundle(bundle.path)
    modules["cat"] = new
    manifest["cat"] = {**manifest["cat"], "spec": new.cfg.to_dict(), "params": count_params(new)}
    report = {
        "shipped_val": shipped,
        "light_val": history[-1]["val"],
        "encoder_params": {
            "shipped": count_params(old.encoder),
            "light": count_params(new.encoder),
        },
        "train_images": len(ftr),
        "epochs": args.epochs,
        "train_seconds": round(train_s, 1),
        "history": history,
        "args": vars(args),
        "provenance": provenance(config=vars(args), seed=args.seed),
    }
    manifest["cat_encoder_distillation"] = {k: v for k, v in report.items() if k != "history"}
    save_bundle(out / "bundle", manifest, modules)
    refresh_rate_table(out / "bundle", args.seed)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("shipped_val", "light_val", "encoder_params")}))


if __name__ == "__main__":
    main()
