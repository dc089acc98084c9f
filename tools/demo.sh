#!/usr/bin/env bash
# The README's first command: set-up, then the whole MutualNet story on the embedded synthetic
# shapes data set, in a few minutes on two cores. Everything it writes goes under demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

out=demo-out
mn=./build/tools/mutualnet
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/6 synthetic shapes data set (COCO JSON, label PNGs, splits)"
$mn synth --out "$out/shapes" --images 400 --size 128x128 --seed 1 --classes circle,square,triangle \
  --max-objects 4 --force

step "2/6 mutual learning: one segmenter trained at widths 0.35..1.0 and input scales 1, 0.75, 0.5"
$mn train --config configs/seg_shapes_mbv2.json --set data.root="$out/shapes" --set train.out_dir="$out/seg"

step "3/6 BN calibration and accuracy for every (width, size): the query table"
$mn calibrate --checkpoint "$out/seg/last.safetensors" --out "$out/seg/calibrated.safetensors"

step "4/6 the same weights at two budgets (0.3 and 0.04 GMACs per image)"
for budget in 0.3G 0.04G; do
  $mn eval --checkpoint "$out/seg/calibrated.safetensors" --budget "$budget" > "$out/seg/eval_$budget.json"
  cat "$out/seg/eval_$budget.json"
done

step "5/6 overlays of validation images at both budgets"
imgs=$(ls "$out"/shapes/images/val/*.jpg | head -n 4)
if $mn help | grep -q '^  predict'; then
  for budget in 0.3G 0.04G; do
    $mn predict --checkpoint "$out/seg/calibrated.safetensors" --budget "$budget" --out "$out/seg/overlays_$budget" $imgs
  done
fi

step "6/6 charts"
if $mn help | grep -q '^  plot'; then
  $mn plot --run "$out/seg" --checkpoint "$out/seg/calibrated.safetensors"
fi

step "done: outputs"
cat >&2 <<TXT
  data set            $out/shapes/ (images/, labels/, annotations/instances_{train,val}.json, classes.txt)
  segmenter           $out/seg/last.safetensors (trained), $out/seg/calibrated.safetensors (+ query table)
  training log        $out/seg/metrics.jsonl
  evaluations         $out/seg/eval_0.3G.json, $out/seg/eval_0.04G.json
  overlays            $out/seg/overlays_0.3G/, $out/seg/overlays_0.04G/
  charts              $out/seg/loss.png|svg, $out/seg/accuracy_flops.png|svg
TXT
