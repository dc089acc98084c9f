#!/usr/bin/env bash
# Makes tools/demo/pretrained_mbv2_shapes.safetensors, the weights the demo starts from: a DeepLabV3+
# segmenter with a MobileNetV2 backbone trained with mutual learning (widths 0.35-1.0, scales
# 1/0.75/0.5) on a synthetic set of its own (all five shapes, seed 7, 3000 images of 128x128, 90% of
# every object visible: none of them is a demo image), in three stages of 1500 iterations (each
# starts from the previous one's weights, with a new warm-up and cosine schedule), stored as F16:
# the backbone under torchvision's names (the demo's detector takes only these) and the segmentation
# head under its own (the demo's segmenter takes all but its 3-class classifier, which differs from
# this 5-class one). About 30 minutes on two cores.
# Needs a build (tools/setup.sh) and Debian's python3 with numpy (python3-numpy). A stage whose
# weights exist is skipped, so an interrupted run resumes.
#
#   tools/demo/make_pretrained.sh [WORK_DIR]      (default: runs/demo_pretrained)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-runs/demo_pretrained}
mn=./build/tools/mutualnet
[ -s "$work/shapes/classes.txt" ] || $mn synth --out "$work/shapes" --images 3000 --val 0.05 --size 128x128 --seed 7 --max-objects 3 --large-objects \
  --min-visible 0.9 --force
init=""
for stage in 1 2 3; do
  if [ -s "$work/pretrained$stage.safetensors" ]; then init=$work/pretrained$stage.safetensors; continue; fi
  [ -e "$work/seg$stage/done" ] || $mn train --config configs/seg_shapes_mbv2.json --set data.root="$work/shapes" --set train.out_dir="$work/seg$stage" \
    --set train.iterations=1500 --set train.checkpoint_every=250 --set train.eval_every=500 \
    --set model.init="$init" --overwrite
  touch "$work/seg$stage/done"
  /usr/bin/python3 tools/demo/to_f16.py "$work/seg$stage/last.safetensors" "$work/pretrained$stage.safetensors"
  init=$work/pretrained$stage.safetensors
done
cp "$init" tools/demo/pretrained_mbv2_shapes.safetensors
