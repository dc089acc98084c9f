#!/usr/bin/env bash
# kill -9 a training run at random moments and resume it each time, then compare it with the same
# run left alone: every iteration must be logged once, with the same losses, the same final
# evaluation and the same weights, bit for bit (the checkpoints' headers differ only in out_dir).
#
#   tools/kill_resume_check.sh [KILLS]     (default 15; a few minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
kills_wanted=${1:-15}
M=build/tools/mutualnet
[ -x $M ] || tools/setup.sh >/dev/null
work=$(mktemp -d /tmp/mn_kill_XXXXXX)
trap 'rm -rf "$work"' EXIT
$M synth --out "$work/shapes" --images 24 --size 64x64 --format png >/dev/null 2>&1
cat >"$work/seg.json" <<JSON
{"task": "segmentation",
 "data": {"kind": "folder", "root": "$work/shapes", "crop": [64, 64], "eval_size": [64, 64], "workers": 1},
 "model": {"aspp_channels": 16, "low_level_channels": 16},
 "mutual": {"num_subnets": 3, "scales": [1, 0.5]},
 "train": {"batch_size": 2, "iterations": 30, "log_every": 1, "checkpoint_every": 4}}
JSON
$M train --config "$work/seg.json" --set train.out_dir="$work/straight" 2>/dev/null
kills=0
while :; do
  args=(--config "$work/seg.json" --set train.out_dir="$work/killed")
  [ -f "$work/killed/last.safetensors" ] && args+=(--resume "$work/killed/last.safetensors") || args+=(--overwrite)
  $M train "${args[@]}" 2>/dev/null &
  pid=$!
  if ((kills < kills_wanted)); then
    sleep "$((RANDOM % 3)).$((RANDOM % 10))"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
  fi
  rc=0
  wait $pid 2>/dev/null || rc=$?
  ((rc == 0)) && break
done
echo "kill -9 $kills times, then finished"
# the metrics without their timings, and the tensors after each file's header
strip() { sed 's/, "seconds": [0-9.]*//' "$1/metrics.jsonl"; }
data() { python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(b[8+struct.unpack("<Q",b[:8])[0]:])' "$1"; }
if cmp -s <(strip "$work/straight") <(strip "$work/killed"); then
  echo "metrics.jsonl: the same lines, each iteration once ($(wc -l <"$work/killed/metrics.jsonl") lines)"
else
  echo "metrics.jsonl differs:"; diff <(strip "$work/straight") <(strip "$work/killed") | sed -n 1,10p; exit 1
fi
if cmp -s <(data "$work/straight/last.safetensors") <(data "$work/killed/last.safetensors"); then
  echo "last.safetensors: the same tensors, bit for bit"
else
  echo "last.safetensors: the tensors differ"; exit 1
fi
