#!/usr/bin/env bash
# How OpenMP's idle-wait setting costs on an idle machine and on one shared with another CPU-heavy
# program: a short segmentation training run (20 iterations, batch 8 at 128x128, MutualNet sandwich)
# timed with each setting, alone and beside two busy loops, 3 runs each, median wall seconds.
#
#   bench/wait_policy.sh [RUNS [SETTING...]]   (after tools/setup.sh; about 1.5 minutes a setting at 3 runs)
#
# SETTING is an environment assignment (default: libgomp's default spin, mutualnet's, passive).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
settings=("$@")
[[ ${#settings[@]} -gt 0 ]] || settings=(GOMP_SPINCOUNT=300000 GOMP_SPINCOUNT=1000 OMP_WAIT_POLICY=passive)
mn=./build/tools/mutualnet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
$mn synth --out "$work/shapes" --images 80 --size 128x128 --seed 1 --large-objects >/dev/null 2>&1

one_run() { # env settings...: prints wall seconds of one training run
  local t0 t1
  t0=$(date +%s.%N)
  env "$@" MUTUALNET_LOG=error $mn train --config configs/seg_shapes_mbv2.json --set data.root="$work/shapes" \
    --set train.out_dir="$work/run" --set train.iterations=20 --set train.log_every=20 --set train.eval_every=0 \
    --set data.workers=1 --overwrite >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-34s %10s %12s\n' "setting" "alone (s)" "shared (s)"
for setting in "${settings[@]}"; do
  alone=$(for i in $(seq "$runs"); do one_run "$setting"; done | median)
  # two busy loops: another program that wants both cores
  (while :; do :; done) & h1=$!
  (while :; do :; done) & h2=$!
  shared=$(for i in $(seq "$runs"); do one_run "$setting"; done | median)
  kill $h1 $h2 2>/dev/null; wait $h1 $h2 2>/dev/null || true
  label=$setting
  [[ $setting == GOMP_SPINCOUNT=300000 ]] && label="$setting (libgomp's default)"
  [[ $setting == GOMP_SPINCOUNT=1000 ]] && label="$setting (mutualnet's default)"
  printf '%-34s %10.2f %12.2f\n' "$label" "$alone" "$shared"
done
