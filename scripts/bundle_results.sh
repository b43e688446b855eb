#!/usr/bin/env bash
# Regenerate every results/ file that depends on the default bundle (the figures in the README),
# after the bundle changes. Each command records itself, the git sha and its settings in its JSON.
# Usage: scripts/bundle_results.sh [BUNDLE]    (default: the shipped bundle; ~35 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-default}
R=.venv/bin/rkdsc
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
set -x
$R eval --bundle "$B" --clean --n 10000 --json results/eval_clean.json
$R eval --bundle "$B" --channel awgn --channel rayleigh --rate 16 --n 2000 --rate-snr 0 \
  --json results/eval_k16.json --plot results/eval_k16.png
$R eval --bundle "$B" --channel awgn --channel rayleigh --snr=-5,0,5 --rate 16 --n 10000 \
  --json results/eval_criteria_k16.json
$R loopback --bundle "$B" --phy symbol --channel awgn --snr 10,0 --rate 16 --n 1000 \
  --json results/loopback_symbol_k16.json
.venv/bin/python scripts/bench_loopback.py --bundle "$B" --n 5000 --json results/bench_loopback.json
$R loopback --bundle "$B" --phy waveform --channel awgn --snr=-10,-5,0,10 --rate 16 --n 1000 \
  --json results/loopback_waveform_k16.json
$R loopback --bundle "$B" --phy symbol --channel awgn --snr=-10,-5,0,10 --rate 16 --n 1000 \
  --json results/loopback_symbol_k16_sweep.json
$R loopback --bundle "$B" --phy waveform --channel awgn --snr=0 --rate 16 --n 2048 \
  --images-per-frame 512 --json results/loopback_waveform_k16_n512.json
$R demo --bundle "$B"
scripts/run_baselines.sh "$B" 10000
# the CAT's ablations and stage 2's training-seed spread (issue 19; trains 10 short runs, ~2 h on
# the shared 2 cores; resumable from runs/ablations)
.venv/bin/python scripts/cat_ablations.py --bundle "$B" --work runs/ablations \
  --json results/cat_ablations.json \
  --steps 300 --batch 128 --train-images 12000 --seeds 0,1,2 --reference-seeds 0,1,2
.venv/bin/python scripts/results_tables.py --ablations results/cat_ablations.json --readme README.md
