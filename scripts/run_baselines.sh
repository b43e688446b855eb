#!/usr/bin/env bash
# Baselines of issue 11 next to RKD-SC, one JSON + plot per channel.
# Usage: scripts/run_baselines.sh [BUNDLE] [N] [OUTDIR]   (defaults: default, all test images, results/baselines)
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-default}
N=${2:-}
OUT=${3:-results/baselines}
mkdir -p "$OUT"
for CH in awgn rayleigh; do
  .venv/bin/rkdsc eval --bundle "$BUNDLE" --channel "$CH" --baselines all --rate 16 \
    ${N:+--n "$N"} --json "$OUT/baselines_${CH}_k16.json" --plot "$OUT/baselines_${CH}_k16.png"
done
