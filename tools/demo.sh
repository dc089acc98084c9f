#!/usr/bin/env bash
# The README's first command: set-up, then the whole MutualNet story on the embedded synthetic
# shapes data set, in a few minutes on two cores. Everything it writes goes under demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

out=demo-out
mn=./build/tools/mutualnet
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/7 synthetic shapes data set (COCO JSON, label PNGs, splits)"
$mn synth --out "$out/shapes" --images 1200 --val 0.15 --size 128x128 --seed 1 \
  --classes circle,square,triangle --max-objects 4 --force

step "2/7 mutual learning: one segmenter trained at widths 0.35..1.0 and input scales 1, 0.75, 0.5"
$mn train --config configs/seg_shapes_mbv2.json --set data.root="$out/shapes" --set train.out_dir="$out/seg"

step "3/7 BN calibration and accuracy for every (width, size): the query table"
$mn calibrate --checkpoint "$out/seg/last.safetensors" --out "$out/seg/calibrated.safetensors"

step "4/7 the same weights at two budgets (0.3 and 0.04 GMACs per image)"
for budget in 0.3G 0.04G; do
  $mn eval --checkpoint "$out/seg/calibrated.safetensors" --budget "$budget" > "$out/seg/eval_$budget.json"
  cat "$out/seg/eval_$budget.json"
done

step "5/7 overlays of validation images at both budgets"
# sed reads to the end: head would exit early and, under pipefail, fail the step with SIGPIPE
imgs=$(ls "$out"/shapes/images/val/*.jpg | sed -n 1,4p)
for budget in 0.3G 0.04G; do
  $mn predict --checkpoint "$out/seg/calibrated.safetensors" --budget "$budget" --out "$out/seg/overlays_$budget" $imgs
done

step "6/7 charts"
$mn plot --run "$out/seg" --checkpoint "$out/seg/calibrated.safetensors" --budget 0.3G --budget 0.04G

step "7/7 the same story for a detector: Faster R-CNN + FPN on the same shapes (COCO JSON), then its table"
$mn train --config configs/det_shapes_mbv2.json --set data.root="$out/shapes" --set train.out_dir="$out/det" \
  --set train.iterations=500
$mn calibrate --checkpoint "$out/det/last.safetensors" --out "$out/det/calibrated.safetensors"
for budget in 0.2G 0.05G; do
  $mn eval --checkpoint "$out/det/calibrated.safetensors" --budget "$budget" \
    --results "$out/det/results_$budget.json" > "$out/det/eval_$budget.json"
  cat "$out/det/eval_$budget.json"
  $mn predict --checkpoint "$out/det/calibrated.safetensors" --budget "$budget" --score-threshold 0.3 \
    --out "$out/det/overlays_$budget" $imgs
done
$mn plot --run "$out/det" --checkpoint "$out/det/calibrated.safetensors" --budget 0.2G --budget 0.05G

step "done: outputs"
cat >&2 <<TXT
  data set            $out/shapes/ (images/, labels/, annotations/instances_{train,val}.json, classes.txt)
  segmenter           $out/seg/last.safetensors (trained), $out/seg/calibrated.safetensors (+ query table)
  training log        $out/seg/metrics.jsonl
  evaluations         $out/seg/eval_0.3G.json, $out/seg/eval_0.04G.json
  overlays            $out/seg/overlays_0.3G/, $out/seg/overlays_0.04G/
  charts              $out/seg/loss.png|svg, $out/seg/accuracy_flops.png|svg
  detector            $out/det/last.safetensors, $out/det/calibrated.safetensors, $out/det/metrics.jsonl
  detections          $out/det/results_0.2G.json, $out/det/results_0.05G.json (COCO results), eval_*.json
  detector overlays   $out/det/overlays_0.2G/, $out/det/overlays_0.05G/
  detector charts     $out/det/loss.png|svg, $out/det/loss_parts.png|svg, $out/det/accuracy_flops.png|svg
TXT
