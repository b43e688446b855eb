#!/usr/bin/env bash
# Baselines of issue 11 next to RKD-SC, one JSON + plot per channel, at the README's SNRs; every
# point with a 95% Wilson interval and each baseline's paired McNemar p-value against RKD-SC.
# Usage: scripts/run_baselines.sh [BUNDLE] [N] [OUTDIR]   (defaults: default, all test images, results/baselines)
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-default}
N=${2:-}
OUT=${3:-results/baselines}
mkdir -p "$OUT"
for CH in awgn rayleigh; do
  .venv/bin/rkdsc eval --bundle "$BUNDLE" --channel "$CH" --baselines all --rate 16 \
    --snr=-10,-6,-4,-2,0,4,10,24 \
    ${N:+--n "$N"} --json "$OUT/baselines_${CH}_k16.json" --plot "$OUT/baselines_${CH}_k16.png"
done
.venv/bin/python scripts/results_tables.py "$OUT"/baselines_{awgn,rayleigh}_k16.json --readme README.md
