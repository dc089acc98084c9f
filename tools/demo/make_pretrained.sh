#!/usr/bin/env bash
# Makes tools/demo/backbone_mbv2_shapes.safetensors, the pretrained backbone the demo starts from:
# a MobileNetV2 trained with mutual learning (widths 0.35-1.0, scales 1/0.75/0.5) as the backbone of
# a DeepLabV3+ segmenter on a synthetic set of its own (all five shapes, seed 7, 3000 images of
# 128x128: none of them is a demo image), in three stages of 1500 iterations (each starts from the
# previous one's backbone, with a new warm-up and cosine schedule), then its backbone tensors stored
# as F16. About 30 minutes on two cores.
# Needs a build (tools/setup.sh) and python3 with numpy.
#
#   tools/demo/make_backbone.sh [WORK_DIR]      (default: runs/demo_backbone)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-runs/demo_backbone}
mn=./build/tools/mutualnet
$mn synth --out "$work/shapes" --images 3000 --val 0.05 --size 128x128 --seed 7 --max-objects 3 --large-objects --force
init=""
for stage in 1 2 3; do
  $mn train --config configs/seg_shapes_mbv2.json --set data.root="$work/shapes" --set train.out_dir="$work/seg$stage" \
    --set train.iterations=1500 --set train.checkpoint_every=250 --set train.eval_every=500 \
    --set model.init="$init" --overwrite
  python3 tools/demo/backbone_f16.py "$work/seg$stage/last.safetensors" "$work/backbone$stage.safetensors"
  init=$work/backbone$stage.safetensors
done
cp "$init" tools/demo/backbone_mbv2_shapes.safetensors
