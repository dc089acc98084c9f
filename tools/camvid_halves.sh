#!/usr/bin/env bash
# The CamVid check of docs/RESULTS.md "Choosing on one split, reporting on another": the validation
# frames split into two contiguous halves of the drive (valA: the first 50 frames, valB: the other
# 51; neighbouring frames are near duplicates, so alternating frames would not be unseen), a
# MutualNet and a US-Net trained with the CamVid comparison's recipe for each seed, each calibrated on
# valA (the query table picks there), then every budget's pick scored on valA (what a table built
# and read on one split claims) and on valB (what it gives on frames that played no part).
# Writes OUT/summary.md.
#
#   tools/camvid_halves.sh CAMVID_ROOT OUT ITERATIONS SEED...
#
# CAMVID_ROOT holds CamVid/{train,trainannot,val,valannot} (e.g. ../shared/data/camvid); OUT gets a
# root of symbolic links (nothing is copied or written next to the data). MN: the mutualnet binary;
# MODES: the modes to train (default "mutualnet usnet").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
src=$(cd "$1" && pwd) out=$2 iters=$3
shift 3
seeds=("$@")
mn=${MN:-./build/tools/mutualnet}
budgets=(0.07G 0.25G 0.5G 0.8G 1.6G)
root=$out/root/CamVid
mkdir -p "$root"
for d in train trainannot; do ln -sfn "$src/CamVid/$d" "$root/$d"; done
if [ ! -d "$root/valB" ]; then
  mkdir -p "$root/valA" "$root/valAannot" "$root/valB" "$root/valBannot"
  mapfile -t frames < <(cd "$src/CamVid/val" && ls)
  half=$(( ${#frames[@]} / 2 ))
  for i in "${!frames[@]}"; do
    f=${frames[$i]} part=valB
    [ "$i" -lt "$half" ] && part=valA
    ln -sfn "$src/CamVid/val/$f" "$root/$part/$f"
    ln -sfn "$src/CamVid/valannot/$f" "$root/${part}annot/$f"
  done
fi

for seed in "${seeds[@]}"; do
  for mode in ${MODES:-mutualnet usnet}; do
    dir=$out/${mode}_s$seed
    [ -e "$dir/done" ] && continue
    $mn train --config configs/seg_camvid_acceptance.json --set data.root="$out/root" --set data.val_split=valA \
      --set mutual.mode="$mode" --set train.seed="$seed" --set train.iterations="$iters" \
      --set train.checkpoint_every="$iters" --set train.out_dir="$dir" --overwrite
    $mn calibrate --checkpoint "$dir/last.safetensors" --width-step 0.15 --split valA > "$dir/table.txt"
    for b in "${budgets[@]}"; do
      for split in valA valB; do
        $mn eval --checkpoint "$dir/calibrated.safetensors" --budget "$b" --split "$split" > "$dir/${split}_$b.json" \
          2> /dev/null || echo '{"none": true}' > "$dir/${split}_$b.json"
      done
    done
    touch "$dir/done"
  done
done

python3 - "$out" "${budgets[*]}" "${MODES:-mutualnet usnet}" <<'PY'
import glob, json, os, statistics, sys
out, budgets, modes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
lines = ["| mode | budget | picks (seed: width @ size) | mIoU on valA (chosen there) | mIoU on valB (unseen) | valB - valA per seed |",
         "| --- | --- | --- | --- | --- | --- |"]
for mode in modes:
    for b in budgets:
        a, v, picks, diffs = [], [], [], []
        for d in sorted(x for x in glob.glob(f"{out}/{mode}_s*") if os.path.exists(f"{x}/done")):
            ra, rb = json.load(open(f"{d}/valA_{b}.json")), json.load(open(f"{d}/valB_{b}.json"))
            if ra.get("none"):
                continue
            seed = d.rsplit("_s", 1)[1]
            a.append(100 * ra["mIoU"]); v.append(100 * rb["mIoU"])
            picks.append(f"{seed}: {ra['width']:.2f} @ {ra['size'][0]}x{ra['size'][1]}")
            diffs.append(f"{v[-1] - a[-1]:+.1f}")
        if not a:
            lines.append(f"| {mode} | {b} | no configuration fits | | | |")
            continue
        f = lambda x: f"{statistics.mean(x):.1f} ({min(x):.1f}-{max(x):.1f})"
        lines.append(f"| {mode} | {b} | {'; '.join(picks)} | {f(a)} | {f(v)} | {', '.join(diffs)} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
