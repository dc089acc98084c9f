#!/usr/bin/env bash
# The paper's two-stage protocol at small scale (docs/RESULTS.md "Two-stage protocol"):
#  1. pretrain a MobileNetV2 on the synthetic classification set three ways: independent (full width),
#     US-Net (widths) and MutualNet (widths x input scales);
#  2. fine-tune a DeepLabV3+ segmenter and a Faster R-CNN detector on a shapes set from each backbone,
#     each in the mode it was pretrained with, plus a from-scratch control (MutualNet mode, no init),
#     for every seed;
#  3. calibrate every fine-tuned model on the validation split (the query table picks there) and score
#     the configuration each budget picks on a test split that played no part in training or choice.
# Writes OUT/summary.md (mean and min-max over the seeds at each budget) and OUT/rows.tsv.
#
#   tools/two_stage.sh OUT SEED...
#
# Environment: PRETRAIN_ITERS (default 1500), SEG_ITERS (default 150), DET_ITERS (default 150),
# WIDTH_STEP (calibration grid, default 0.325), MN (the mutualnet binary).
# One job at a time; a finished step is skipped, so an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
out=$1
shift
seeds=("$@")
mn=${MN:-./build/tools/mutualnet}
pre_iters=${PRETRAIN_ITERS:-1500} seg_iters=${SEG_ITERS:-150} det_iters=${DET_ITERS:-150}
step=${WIDTH_STEP:-0.325}
seg_budgets=(0.28G 0.1G 0.04G 0.012G)
det_budgets=(0.3G 0.1G 0.03G)
mkdir -p "$out"

# ---- data: a classification set, and a shapes set with train / val (choice) / test (report) splits
if [ ! -s "$out/cls_data/classes.txt" ]; then
  $mn synth --out "$out/cls_data" --classification --images 2400 --size 64x64 --seed 3 --force
fi
shapes=$out/shapes
if [ ! -s "$shapes/annotations/instances_test.json" ]; then
  common=(--size 128x128 --classes circle,square,triangle --max-objects 3 --large-objects --min-visible 0.9 --force)
  $mn synth --out "$shapes" --images 900 --val 0.2 --seed 21 "${common[@]}"
  # the test split: the val split of another draw (seed 22), under its own split name
  $mn synth --out "$out/shapes_other" --images 900 --val 0.2 --seed 22 "${common[@]}"
  mkdir -p "$shapes/images/test" "$shapes/labels/test"
  cp "$out"/shapes_other/images/val/* "$shapes/images/test/"
  cp "$out"/shapes_other/labels/val/* "$shapes/labels/test/"
  cp "$out/shapes_other/splits/val.txt" "$shapes/splits/test.txt"
  cp "$out/shapes_other/annotations/instances_val.json" "$shapes/annotations/instances_test.json"
  rm -rf "$out/shapes_other"
fi

mode_args() { # mode: the mutual.* settings of a mode
  case $1 in
    independent) echo "--set mutual.mode=independent --set mutual.width=1.0" ;;
    usnet) echo "--set mutual.mode=usnet" ;;
    mutualnet | scratch) echo "--set mutual.mode=mutualnet" ;;
  esac
}

# ---- stage 1: classification pretraining (seed 1), one per mode
for mode in independent usnet mutualnet; do
  dir=$out/pretrain_$mode
  [ -e "$dir/done" ] && continue
  # shellcheck disable=SC2046
  $mn train --config configs/cls_shapes_mbv2.json --set data.root="$out/cls_data" --set train.out_dir="$dir" \
    --set train.iterations="$pre_iters" --set train.checkpoint_every="$pre_iters" --set train.eval_every="$pre_iters" \
    $(mode_args $mode) --overwrite
  $mn eval --checkpoint "$dir/last.safetensors" > "$dir/eval.json"
  touch "$dir/done"
done

# ---- stage 2 and 3: fine-tune, calibrate on val, score each budget's choice on test
finetune() { # task mode seed
  local task=$1 mode=$2 seed=$3 config iters budgets init=""
  local dir=$out/${task}_${mode}_s$seed
  [ -e "$dir/done" ] && return
  if [ "$task" = seg ]; then config=configs/seg_shapes_mbv2.json iters=$seg_iters budgets=("${seg_budgets[@]}")
  else config=configs/det_shapes_mbv2.json iters=$det_iters budgets=("${det_budgets[@]}"); fi
  [ "$mode" != scratch ] && init=$out/pretrain_$mode/last.safetensors
  # shellcheck disable=SC2046
  $mn train --config "$config" --set data.root="$shapes" --set train.out_dir="$dir" --set train.seed="$seed" \
    --set train.iterations="$iters" --set train.checkpoint_every="$iters" --set model.init="$init" \
    $(mode_args "$mode") --overwrite
  $mn calibrate --checkpoint "$dir/last.safetensors" --width-step "$step" > "$dir/table.txt"
  for b in "${budgets[@]}"; do
    # a budget below the cheapest configuration (an independent network has one) is recorded as such
    if $mn eval --checkpoint "$dir/calibrated.safetensors" --budget "$b" --split test > "$dir/test_$b.json" 2> "$dir/err"; then :
    else echo '{"none": true}' > "$dir/test_$b.json"; fi
  done
  touch "$dir/done"
}

for seed in "${seeds[@]}"; do
  for mode in scratch independent usnet mutualnet; do
    finetune seg "$mode" "$seed"
    finetune det "$mode" "$seed"
  done
done

python3 - "$out" "${seg_budgets[*]}" "${det_budgets[*]}" <<'PY'
import glob, json, os, statistics, sys
out, seg_b, det_b = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
modes = ["scratch", "independent", "usnet", "mutualnet"]
lines, rows = [], []
pre = {m: json.load(open(f"{out}/pretrain_{m}/eval.json")) for m in ["independent", "usnet", "mutualnet"]}
lines.append("Stage 1, classification pretraining (full width, val top-1): " +
             ", ".join(f"{m} {100 * pre[m]['top1']:.1f} %" for m in pre) + "\n")
for task, budgets, keys in [("seg", seg_b, ["mIoU"]), ("det", det_b, ["AP50", "AP"])]:
    for key in keys:
        lines.append(f"| {task} {key} on test, init | " + " | ".join(f"budget {b}" for b in budgets) + " |")
        lines.append("| --- |" + " --- |" * len(budgets))
        for m in modes:
            cells = []
            for b in budgets:
                vals, picks = [], set()
                for d in sorted(glob.glob(f"{out}/{task}_{m}_s*")):
                    r = json.load(open(f"{d}/test_{b}.json"))
                    seed = d.rsplit("_s", 1)[1]
                    if r.get("none"):
                        rows.append((task, m, seed, b, key, "none", "", ""))
                        continue
                    v = 100 * r[key]
                    size = r.get("size", r.get("short_side"))
                    vals.append(v)
                    picks.add(f"{r['width']:.2f}")
                    rows.append((task, m, seed, b, key, f"{v:.2f}", f"{r['width']:.3f}", json.dumps(size)))
                if not vals:
                    cells.append("no configuration fits")
                else:
                    cells.append(f"{statistics.mean(vals):.1f} ({min(vals):.1f}-{max(vals):.1f}, n={len(vals)})")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
with open(f"{out}/rows.tsv", "w") as f:
    f.write("task\tinit\tseed\tbudget\tmetric\tscore\twidth\tsize\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
print("\n".join(lines))
PY
