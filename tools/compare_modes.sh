#!/usr/bin/env bash
# The mutual-learning comparison of docs/RESULTS.md: for each seed, trains the same configuration as
# independent networks (full width and the narrowest width), as a US-Net (widths only) and as a
# MutualNet (widths x input scales) for the same number of iterations, calibrates every run's
# query table, and writes OUT/summary.md: every configuration's mean and spread over the seeds, and the
# best score within each budget per seed (the frontier each mode offers), with MutualNet minus US-Net.
#
#   tools/compare_modes.sh CONFIG OUT ITERATIONS SEED... [-- --set KEY=VALUE...]
#
# Environment: WMIN (narrow width, default 0.35), WIDTH_STEP (calibration grid, default 0.15),
# CALIB_ARGS (more calibrate flags), MN (the mutualnet binary), TEST_SCALES (e.g. 1,0.75,0.571: also
# calibrate the independent and US-Net runs at these input scales (include 1), into table_scaled.txt, so they
# too may spend a budget on smaller inputs; the summary lists them as "independent+scales", "usnet+scales").
# Runs one job at a time (OpenMP jobs sharing cores slow each other far more than 2x).
# A finished run (its calibrated table present) is skipped, so an interrupted comparison resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
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

scaled() { # name seed: the run calibrated again at TEST_SCALES (the input sizes it was not trained at)
  local dir="$out/${1}_s$2"
  if [ -z "${TEST_SCALES:-}" ] || [ -s "$dir/table_scaled.txt" ]; then return; fi
  echo "== $dir at input scales $TEST_SCALES" >&2
  $mn calibrate --checkpoint "$dir/last.safetensors" --out "$dir/scaled.safetensors" --width-step "$step" \
    --scales "$TEST_SCALES" ${calib_args[@]+"${calib_args[@]}"} > "$dir/table_scaled.tmp"
  mv "$dir/table_scaled.tmp" "$dir/table_scaled.txt"
}

for seed in "${seeds[@]}"; do
  run independent_w1.00 "$seed" --set mutual.mode=independent --set mutual.width=1.0
  run "independent_w$wmin" "$seed" --set mutual.mode=independent --set mutual.width="$wmin"
  run usnet "$seed" --set mutual.mode=usnet --set mutual.width_min="$wmin"
  for name in independent_w1.00 "independent_w$wmin" usnet; do scaled "$name" "$seed"; done
  run mutualnet "$seed" --set mutual.mode=mutualnet --set mutual.width_min="$wmin"
done

# every calibrated row as: mode seed width input GMACs score
rows() {
  for f in "$out"/*_s*/table.txt "$out"/*_s*/table_scaled.txt; do
    [ -e "$f" ] || continue
    name=$(basename "$(dirname "$f")") tag=
    [ "$(basename "$f")" = table_scaled.txt ] && tag=+scales
    # table rows: width, [short/max,] input, MACs, score% (the detector's table has one more column)
    awk -v mode="${name%_s*}$tag" -v seed="${name##*_s}" '$1 ~ /^[0-9]+\.[0-9]+$/ && $0 ~ /G +[0-9.]+%/ {
        for (i = 2; i <= NF; i++) if ($i ~ /G$/) { macs = $i; score = $(i + 1); input = $(i - 1); break }
        sub(/G$/, "", macs); sub(/%$/, "", score); print mode, seed, $1, input, macs, score }' "$f"
  done
}

{
  # 1. every configuration of every mode: mean, min and max over the seeds
  echo "| mode | width | input | GMACs | seeds | mean | min | max | spread |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  rows | sort -k1,1 -k5,5g | awk '
    { key = $1 " " $3 " " $4; if (!(key in n)) { order[++k] = key; macs[key] = $5 }
      n[key]++; s[key] += $6; if (!(key in lo) || $6 < lo[key]) lo[key] = $6; if (!(key in hi) || $6 > hi[key]) hi[key] = $6 }
    END { for (i = 1; i <= k; i++) { key = order[i]; split(key, p, " ")
      printf "| %s | %s | %s | %.3f | %d | %.2f | %.2f | %.2f | %.2f |\n", p[1], p[2], p[3], macs[key], n[key],
             s[key] / n[key], lo[key], hi[key], hi[key] - lo[key] } }'
  echo
  # 2. at each budget (the US-Net grid's costs and the cheapest configuration of any run), the best score
  #    of the configurations that fit, per seed; then mean (min-max) over the seeds. The two independent
  #    networks count as one mode: the better of those that fit.
  scaled_cols=
  compgen -G "$out/*_s*/table_scaled.txt" > /dev/null && scaled_cols=1
  if [ -n "$scaled_cols" ]; then
    echo "| budget (GMACs) | independent | independent+scales | usnet | usnet+scales | mutualnet | mutualnet - usnet per seed | mutualnet - (usnet+scales) per seed |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  else
    echo "| budget (GMACs) | independent | usnet | mutualnet | mutualnet - usnet per seed |"
    echo "| --- | --- | --- | --- | --- |"
  fi
  rows | awk -v scaled="$scaled_cols" '
    { mode = $1; sub(/_w[0-9.]*/, "", mode); seed = $2; macs = $5 + 0; score = $6 + 0
      n++; m[n] = mode; sd[n] = seed; c[n] = macs; v[n] = score; seeds[seed] = 1
      if (mode == "usnet") budget[sprintf("%.3f", macs)] = 1
      if (!lowest_set || macs < lowest) { lowest = macs; lowest_set = 1 } }
    END {
      budget[sprintf("%.3f", lowest)] = 1
      nb = 0; for (b in budget) list[++nb] = b + 0
      for (i = 2; i <= nb; i++) for (j = i; j > 1 && list[j - 1] > list[j]; j--) { t = list[j]; list[j] = list[j - 1]; list[j - 1] = t }
      nm = split(scaled ? "independent independent+scales usnet usnet+scales mutualnet" : "independent usnet mutualnet", modes, " ")
      ns = 0; for (s in seeds) order[++ns] = s + 0 # seeds in numeric order, for the per-seed column
      for (i = 2; i <= ns; i++) for (j = i; j > 1 && order[j - 1] > order[j]; j--) { t = order[j]; order[j] = order[j - 1]; order[j - 1] = t }
      for (i = 1; i <= nb; i++) {
        b = list[i]; line = sprintf("| %.3f", b); delete best
        for (r = 1; r <= n; r++) if (c[r] <= b + 5e-4) {
          key = m[r] SUBSEP sd[r]; if (!(key in best) || v[r] > best[key]) best[key] = v[r] }
        for (k = 1; k <= nm; k++) {
          cnt = 0; sum = 0; lo = ""; hi = ""
          for (q = 1; q <= ns; q++) if ((modes[k], order[q]) in best) { s = order[q]; x = best[modes[k], s]; cnt++; sum += x
            if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x }
          line = line (cnt ? sprintf(" | %.1f (%.1f-%.1f)%s", sum / cnt, lo, hi, cnt < ns ? " [" cnt " seeds]" : "") : " | -")
        }
        for (d = 1; d <= (scaled ? 2 : 1); d++) { # MutualNet minus each US-Net column, seed by seed
          ref = d == 1 ? "usnet" : "usnet+scales"; diff = ""
          for (q = 1; q <= ns; q++) if (("mutualnet", s = order[q]) in best && (ref, s) in best)
            diff = diff (diff == "" ? "" : ", ") "s" s ": " sprintf("%+.1f", best["mutualnet", s] - best[ref, s])
          line = line " | " (diff == "" ? "-" : diff)
        }
        print line " |"
      } }'
} > "$out/summary.md"
cat "$out/summary.md"
