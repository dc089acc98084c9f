#!/usr/bin/env bash
# The mutual-learning comparison of docs/RESULTS.md: for each seed, trains the same configuration as
# independent networks (full width and the narrowest width), as a US-Net (widths only) and as a
# MutualNet (widths x input scales) for the same number of iterations, calibrates every run's
# query table, and writes OUT/summary.md (mean and spread over the seeds at every configuration).
#
#   tools/compare_modes.sh CONFIG OUT ITERATIONS SEED... [-- --set KEY=VALUE...]
#
# Environment: WMIN (narrow width, default 0.35), WIDTH_STEP (calibration grid, default 0.15),
# CALIB_ARGS (more calibrate flags), MN (the mutualnet binary).
# Runs one job at a time (OpenMP jobs sharing cores slow each other far more than 2x).
# A finished run (its calibrated table present) is skipped, so an interrupted comparison resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
config=$1 out=$2 iters=$3
shift 3
seeds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do seeds+=("$1"); shift; done
[ $# -gt 0 ] && shift
extra=("$@")
mn=${MN:-./build/tools/mutualnet}
step=${WIDTH_STEP:-0.15}         # calibration grid's width step
read -r -a calib_args <<< "${CALIB_ARGS:-}" # e.g. CALIB_ARGS="--max-val-images 400"
mkdir -p "$out"

# the narrow independent network's width: mutual.width_min of the comparison (WMIN, default 0.35)
wmin=${WMIN:-0.35}

run() { # name seed mode-args...
  local name=$1 seed=$2
  shift 2
  local dir="$out/${name}_s$seed"
  if [ -s "$dir/table.txt" ]; then echo "== $dir done, skipped" >&2; return; fi
  echo "== $dir" >&2
  local t0=$SECONDS
  $mn train --config "$config" "${extra[@]}" "$@" --set train.seed="$seed" --set train.iterations="$iters" \
    --set train.out_dir="$dir" --set train.checkpoint_every="$iters"
  local t1=$SECONDS
  $mn calibrate --checkpoint "$dir/last.safetensors" --width-step "$step" ${calib_args[@]+"${calib_args[@]}"} \
    > "$dir/table.tmp"
  mv "$dir/table.tmp" "$dir/table.txt"
  echo "train_seconds $((t1 - t0)) calibrate_seconds $((SECONDS - t1))" > "$dir/time.txt"
}

for seed in "${seeds[@]}"; do
  run independent_w1.00 "$seed" --set mutual.mode=independent --set mutual.width=1.0
  run "independent_w$wmin" "$seed" --set mutual.mode=independent --set mutual.width="$wmin"
  run usnet "$seed" --set mutual.mode=usnet --set mutual.width_min="$wmin"
  run mutualnet "$seed" --set mutual.mode=mutualnet --set mutual.width_min="$wmin"
done

# summary: one row per (mode, width, input) with MACs and the score's mean, min and max over seeds
{
  echo "| mode | width | input | GMACs | seeds | mean | min | max | spread |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for f in "$out"/*_s*/table.txt; do
    mode=$(basename "$(dirname "$f")"); mode=${mode%_s*}
    # table rows: width, [short/max,] input, MACs, score% (the detector's table has one more column)
    awk -v mode="$mode" '$1 ~ /^[0-9]+\.[0-9]+$/ && $0 ~ /G +[0-9.]+%/ {
        for (i = 2; i <= NF; i++) if ($i ~ /G$/) { macs = $i; score = $(i + 1); input = $(i - 1); break }
        sub(/G$/, "", macs); sub(/%$/, "", score); print mode, $1, input, macs, score }' "$f"
  done | sort -k1,1 -k4,4g | awk '
    { key = $1 " " $2 " " $3; if (!(key in n)) { order[++k] = key; macs[key] = $4 }
      n[key]++; s[key] += $5; if (!(key in lo) || $5 < lo[key]) lo[key] = $5; if (!(key in hi) || $5 > hi[key]) hi[key] = $5 }
    END { for (i = 1; i <= k; i++) { key = order[i]; split(key, p, " ")
      printf "| %s | %s | %s | %.3f | %d | %.2f | %.2f | %.2f | %.2f |\n", p[1], p[2], p[3], macs[key], n[key],
             s[key] / n[key], lo[key], hi[key], hi[key] - lo[key] } }'
} > "$out/summary.md"
cat "$out/summary.md"
