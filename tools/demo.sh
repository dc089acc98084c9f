#!/usr/bin/env bash
# The README's first command: set-up, then the whole MutualNet story on the embedded synthetic
# shapes data set, in a few minutes on two cores. Everything it writes goes under demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

out=demo-out
mn=./build/tools/mutualnet
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

init=tools/demo/pretrained_mbv2_shapes.safetensors # made by tools/demo/make_pretrained.sh on shapes of its own
seg_budgets=(0.28G 0.1G 0.04G 0.012G)
det_budgets=(0.3G 0.1G 0.03G)

step "1/8 synthetic shapes data set (COCO JSON, label PNGs, splits): 3 shapes, large objects, 90% visible"
$mn synth --out "$out/shapes" --images 1200 --val 0.15 --size 128x128 --seed 1 \
  --classes circle,square,triangle --max-objects 3 --large-objects --min-visible 0.9 --force

step "2/8 mutual learning: one segmenter trained at widths 0.35..1.0 and input scales 1, 0.75, 0.5"
$mn train --config configs/seg_shapes_mbv2.json --set data.root="$out/shapes" --set train.out_dir="$out/seg" \
  --set model.init="$init" --overwrite

step "3/8 BN calibration and accuracy for every (width, size): the query table"
$mn calibrate --checkpoint "$out/seg/last.safetensors" --out "$out/seg/calibrated.safetensors"

step "4/8 the same weights at four budgets (${seg_budgets[*]} MACs per image)"
for budget in "${seg_budgets[@]}"; do
  $mn eval --checkpoint "$out/seg/calibrated.safetensors" --budget "$budget" > "$out/seg/eval_$budget.json"
  cat "$out/seg/eval_$budget.json"
done

step "5/8 overlays and the story picture: validation images at each budget side by side"
# sed reads to the end: head would exit early and, under pipefail, fail the step with SIGPIPE
imgs=$(ls "$out"/shapes/images/val/*.jpg | sed -n 1,4p)
for budget in "${seg_budgets[0]}" "${seg_budgets[2]}"; do
  $mn predict --checkpoint "$out/seg/calibrated.safetensors" --budget "$budget" --out "$out/seg/overlays_$budget" $imgs
done
story=()
for budget in "${seg_budgets[@]}"; do story+=(--budget "$budget"); done
$mn story --checkpoint "$out/seg/calibrated.safetensors" "${story[@]}" --out "$out/seg/story.png" $imgs

step "6/8 charts"
$mn plot --run "$out/seg" --checkpoint "$out/seg/calibrated.safetensors" --budget "${seg_budgets[0]}" \
  --budget "${seg_budgets[2]}"

step "7/8 the same story for a detector: Faster R-CNN + FPN on the same shapes (COCO JSON), then its table"
$mn train --config configs/det_shapes_mbv2.json --set data.root="$out/shapes" --set train.out_dir="$out/det" \
  --set model.init="$init" --set train.iterations=500 --overwrite
$mn calibrate --checkpoint "$out/det/last.safetensors" --out "$out/det/calibrated.safetensors"
for budget in "${det_budgets[@]}"; do
  $mn eval --checkpoint "$out/det/calibrated.safetensors" --budget "$budget" \
    --results "$out/det/results_$budget.json" > "$out/det/eval_$budget.json"
  cat "$out/det/eval_$budget.json"
done
$mn predict --checkpoint "$out/det/calibrated.safetensors" --budget "${det_budgets[0]}" --score-threshold 0.5 \
  --out "$out/det/overlays_${det_budgets[0]}" $imgs
story=()
for budget in "${det_budgets[@]}"; do story+=(--budget "$budget"); done
$mn story --checkpoint "$out/det/calibrated.safetensors" "${story[@]}" --score-threshold 0.5 \
  --out "$out/det/story.png" $imgs

step "8/8 detector charts"
$mn plot --run "$out/det" --checkpoint "$out/det/calibrated.safetensors" --budget "${det_budgets[0]}" \
  --budget "${det_budgets[2]}"

step "done: outputs"
cat >&2 <<TXT
  THE STORY           $out/seg/story.png and $out/det/story.png: the same images at each budget, one set of weights
  data set            $out/shapes/ (images/, labels/, annotations/instances_{train,val}.json, classes.txt)
  segmenter           $out/seg/last.safetensors (trained), $out/seg/calibrated.safetensors (+ query table)
  training log        $out/seg/metrics.jsonl
  evaluations         $out/seg/eval_<budget>.json for ${seg_budgets[*]}
  overlays            $out/seg/overlays_${seg_budgets[0]}/, $out/seg/overlays_${seg_budgets[2]}/
  charts              $out/seg/loss.png|svg, $out/seg/accuracy_flops.png|svg
  detector            $out/det/last.safetensors, $out/det/calibrated.safetensors, $out/det/metrics.jsonl
  detections          $out/det/results_<budget>.json (COCO results), eval_<budget>.json for ${det_budgets[*]}
  detector overlays   $out/det/overlays_${det_budgets[0]}/
  detector charts     $out/det/loss.png|svg, $out/det/loss_parts.png|svg, $out/det/accuracy_flops.png|svg
  (both models start from $init, made by tools/demo/make_pretrained.sh on shapes of its own:
   the segmenter takes its backbone and head, the detector its backbone)
TXT
