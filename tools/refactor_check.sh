#!/usr/bin/env bash
# A fingerprint of everything the three tasks compute, to show that a refactor changed no output:
# train (straight, and stopped then resumed), calibrate, eval at a budget and predict, for a
# segmenter, a detector and a classifier on small synthetic sets. Prints one "sha256  what" line
# per output (metrics without their timings; checkpoints as their tensors and metadata).
#
#   tools/refactor_check.sh > before.txt   ...refactor...   tools/refactor_check.sh | diff before.txt -
#
# A few minutes on 2 cores. MN=path/to/mutualnet picks another binary (default build/tools/mutualnet).
set -euo pipefail
cd "$(dirname "$0")/.."
mn=${MN:-build/tools/mutualnet}
work=${MN_CHECK_DIR:-/tmp/mn_refactor_check}
rm -rf "$work"
mkdir -p "$work"
export MUTUALNET_LOG=error OMP_NUM_THREADS=2

$mn synth --out "$work/shapes" --images 40 --size 64x64 --seed 3 --format png >/dev/null 2>&1
$mn synth --out "$work/cls" --images 60 --size 48x48 --seed 4 --format png --classification >/dev/null 2>&1

common=(--set train.iterations=6 --set train.log_every=1 --set train.checkpoint_every=3 --set data.workers=1
        --set calibrate.batches=1 --set calibrate.width_step=0.325)
seg=(--config configs/seg_shapes_mbv2.json --set data.root="$work/shapes" --set "data.crop=[64,64]"
     --set "data.eval_size=[64,64]" --set train.batch_size=4 --set model.aspp_channels=16
     --set model.low_level_channels=16 "${common[@]}")
det=(--config configs/det_shapes_mbv2.json --set data.root="$work/shapes" --set det.short_side=96 --set det.anchor_size=16
     --set det.max_side=160 --set train.batch_size=2 --set det.fpn_channels=32 --set det.box_hidden=64 "${common[@]}")
cls=(--config configs/cls_shapes_mbv2.json --set data.root="$work/cls" --set "data.crop=[48,48]"
     --set "data.eval_size=[48,48]" --set train.batch_size=8 "${common[@]}")

# a safetensors file as two fingerprints: its tensors with the metadata other than the stored
# configuration (whatever the order of the header's keys), then that configuration, so that a
# change which only adds configuration keys shows on the second line alone
ckpt() { python3 - "$1" <<'PY'
import hashlib, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
config = h.get("__metadata__", {}).pop("config", "")
print(hashlib.sha256(json.dumps(h, sort_keys=True).encode() + b[8 + n:]).hexdigest())
print(hashlib.sha256(config.encode()).hexdigest())
PY
}
say() { printf '%s  %s\n' "$1" "$2"; }
say_ckpt() {
  local h
  h=($(ckpt "$1"))
  say "${h[0]}" "$2 tensors"
  say "${h[1]}" "$2 configuration"
}

for task in seg det cls; do
  declare -n args=$task
  run="$work/run_$task"
  $mn train "${args[@]}" --set train.out_dir="$run/straight" 2>/dev/null
  # previous.safetensors is the checkpoint of iteration 3: resume it in another folder, to 6
  $mn train "${args[@]}" --set train.out_dir="$run/resumed" --resume "$run/straight/previous.safetensors" 2>/dev/null
  for r in straight resumed; do
    say "$(sed 's/, "seconds": [0-9.]*//' "$run/$r/metrics.jsonl" | sha256sum | cut -c1-64)" "$task $r metrics"
    say_ckpt "$run/$r/last.safetensors" "$task $r checkpoint"
  done
  $mn calibrate --checkpoint "$run/straight/last.safetensors" --out "$run/cal.safetensors" >/dev/null 2>&1
  say_ckpt "$run/cal.safetensors" "$task calibrated checkpoint"
  $mn eval --checkpoint "$run/cal.safetensors" > "$run/eval_full.json" 2>/dev/null
  say "$(sha256sum < "$run/eval_full.json" | cut -c1-64)" "$task eval full width"
  $mn eval --checkpoint "$run/cal.safetensors" --width 0.35 $([ $task = det ] && echo "--size 48" || echo "--size 32x32") \
    > "$run/eval_small.json" 2>/dev/null
  say "$(sha256sum < "$run/eval_small.json" | cut -c1-64)" "$task eval width 0.35"
  imgs=$(find "$work/$([ $task = cls ] && echo cls/val || echo shapes/images/val)" -type f | sort | sed -n 1,3p)
  $mn predict --checkpoint "$run/cal.safetensors" --out "$run/pred" $imgs >/dev/null 2>&1
  for f in $(find "$run/pred" -type f | sort); do say "$(sha256sum < "$f" | cut -c1-64)" "$task predict $(basename "$f")"; done
done
