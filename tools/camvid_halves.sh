#!/usr/bin/env bash
# The CamVid check of docs/RESULTS.md "Choosing on one split, reporting on another": the validation
# frames split into two contiguous halves of the drive (valA: the first 50 frames, valB: the other
# 51; neighbouring frames are near duplicates, so alternating frames would not be unseen), networks
# trained with the CamVid comparison's recipe for each seed and mode, each calibrated on valA (the
# query table picks there), then every budget's pick scored on valA (what a table built and read on
# one split claims) and on valB (what it gives on frames that played no part). Writes OUT/summary.md.
#
#   tools/camvid_halves.sh CAMVID_ROOT OUT ITERATIONS SEED...
#
# CAMVID_ROOT holds CamVid/{train,trainannot,val,valannot} (e.g. ../shared/data/camvid); OUT gets a
# root of symbolic links (nothing is copied or written next to the data). MN: the mutualnet binary;
# MODES: the modes to train (default "mutualnet usnet independent"). "independent" trains two
# networks, widths 1.0 and 0.35, calibrated at the input scales 1, 0.75, 0.571 as well (TEST_SCALES),
# and at each budget takes the one whose pick scores higher on valA; "usnet" gets the same extra
# calibration as the mode "usnet+scales". Every finished run is calibrated on valB too (the best
# choice there within each budget: the last column, what choosing on valA cost). Runs one job at a
# time; a finished step is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
src=$(cd "$1" && pwd) out=$2 iters=$3
shift 3
seeds=("$@")
mn=${MN:-./build/tools/mutualnet}
modes=${MODES:-mutualnet usnet independent}
test_scales=${TEST_SCALES:-1,0.75,0.571}
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

score() { # dir checkpoint tag: every budget's pick of the checkpoint's table, scored on both halves
  local dir=$1 ckpt=$2 tag=$3 b split
  for b in "${budgets[@]}"; do
    for split in valA valB; do
      $mn eval --checkpoint "$dir/$ckpt" --budget "$b" --split "$split" > "$dir/${tag}${split}_$b.json" \
        2> /dev/null || echo '{"none": true}' > "$dir/${tag}${split}_$b.json"
    done
  done
}

run() { # dir scaled(0|1) train-args...: train, calibrate on valA, score; scaled adds the TEST_SCALES table
  local dir=$1 scaled=$2
  shift 2
  if [ ! -e "$dir/done" ]; then
    echo "== $dir" >&2
    $mn train --config configs/seg_camvid_acceptance.json --set data.root="$out/root" --set data.val_split=valA \
      "$@" --set train.iterations="$iters" --set train.checkpoint_every="$iters" --set train.out_dir="$dir" --overwrite
    $mn calibrate --checkpoint "$dir/last.safetensors" --width-step 0.15 --split valA > "$dir/table.txt"
    score "$dir" calibrated.safetensors ""
    touch "$dir/done"
  fi
  if [ "$scaled" = 1 ] && [ ! -e "$dir/scaled_done" ]; then
    echo "== $dir at input scales $test_scales" >&2
    $mn calibrate --checkpoint "$dir/last.safetensors" --width-step 0.15 --split valA --scales "$test_scales" \
      --out "$dir/scaled.safetensors" > "$dir/table_scaled.txt"
    score "$dir" scaled.safetensors scaled_
    touch "$dir/scaled_done"
  fi
}

for seed in "${seeds[@]}"; do
  for mode in $modes; do
    case $mode in
      independent)
        for w in 1.00 0.35; do
          run "$out/independent_w${w}_s$seed" 1 --set mutual.mode=independent --set mutual.width="$w" \
            --set train.seed="$seed"
        done ;;
      usnet) run "$out/usnet_s$seed" 1 --set mutual.mode=usnet --set train.seed="$seed" ;;
      *) run "$out/${mode}_s$seed" 0 --set mutual.mode="$mode" --set train.seed="$seed" ;;
    esac
  done
done

# every finished run calibrated on valB as well: the best choice there within each budget, which no
# table built beforehand could know, measures what choosing on valA cost
for d in "$out"/*_s*; do
  [ -e "$d/done" ] || continue
  if [ ! -e "$d/table_valB.txt" ]; then
    echo "== $d on valB" >&2
    $mn calibrate --checkpoint "$d/last.safetensors" --width-step 0.15 --split valB \
      --out "$d/calibrated_valB.safetensors" > "$d/table_valB.tmp"
    mv "$d/table_valB.tmp" "$d/table_valB.txt"
  fi
  if [ -e "$d/scaled_done" ] && [ ! -e "$d/table_scaled_valB.txt" ]; then
    echo "== $d on valB at input scales $test_scales" >&2
    $mn calibrate --checkpoint "$d/last.safetensors" --width-step 0.15 --split valB --scales "$test_scales" \
      --out "$d/scaled_valB.safetensors" > "$d/table_scaled_valB.tmp"
    mv "$d/table_scaled_valB.tmp" "$d/table_scaled_valB.txt"
  fi
done

/usr/bin/env python3 - "$out" "${budgets[*]}" "$modes" <<'PY'
import glob, json, os, statistics, sys
out, budgets, modes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
# (row name, run-directory prefix, file tag): the independent pair is one row, its better valA pick wins
rows = []
for m in modes:
    if m == "independent":
        rows.append(("independent (1.0 or 0.35, + test scales)", "independent_w*", "scaled_"))
    elif m == "usnet":
        rows += [("usnet", "usnet", ""), ("usnet + test scales", "usnet", "scaled_")]
    else:
        rows.append((m, m, ""))
def table(path):
    """(GMACs, mIoU %) of every row of a calibrate table."""
    rows = []
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[2].endswith("G") and f[3].endswith("%"):
            rows.append((float(f[2][:-1]), float(f[3][:-1])))
    return rows


def gmacs(b):
    return float(b[:-1])


def signed(x):
    """+1.2 / -0.3, and +0.0 rather than -0.0 for a difference that rounds to nothing."""
    return f"{round(x, 1) + 0.0:+.1f}"


unseen = {}  # (row name, budget, seed) -> the valA pick's mIoU on valB
lines = ["| mode | budget | picks (seed: width @ size) | mIoU on valA (chosen there) | mIoU on valB (unseen) "
         "| valB - valA per seed | valB: pick - best per seed |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for name, prefix, tag in rows:
    runs = {}
    for d in sorted(glob.glob(f"{out}/{prefix}_s*")):
        if os.path.exists(f"{d}/{tag}done"):
            runs.setdefault(int(d.rsplit("_s", 1)[1]), []).append(d)
    for b in budgets:
        a, v, picks, diffs, regret = [], [], [], [], []
        for seed in sorted(runs):
            best = None
            for d in runs[seed]:
                ra = json.load(open(f"{d}/{tag}valA_{b}.json"))
                if not ra.get("none") and (best is None or ra["mIoU"] > best[0]["mIoU"]):
                    best = (ra, json.load(open(f"{d}/{tag}valB_{b}.json")))
            if best is None:
                continue
            ra, rb = best
            unseen[name, b, seed] = 100 * rb["mIoU"]
            a.append(100 * ra["mIoU"]); v.append(100 * rb["mIoU"])
            picks.append(f"{seed}: {ra['width']:.2f} @ {ra['size'][0]}x{ra['size'][1]}")
            diffs.append(signed(v[-1] - a[-1]))
            tables = [f"{d}/table_{tag}valB.txt" for d in runs[seed]]
            if all(os.path.exists(t) for t in tables):
                top = max(s for t in tables for g, s in table(t) if g <= gmacs(b) + 5e-4)
                regret.append(signed(v[-1] - top))
        if not a:
            lines.append(f"| {name} | {b} | no configuration fits | | | | |")
            continue
        f = lambda x: f"{statistics.mean(x):.1f} ({min(x):.1f}-{max(x):.1f})"
        lines.append(f"| {name} | {b} | {'; '.join(picks)} | {f(a)} | {f(v)} | {', '.join(diffs)} "
                     f"| {', '.join(regret)} |")
# the modes side by side on valB, and MutualNet minus each other mode seed by seed
names = [r[0] for r in rows]
seeds = sorted({k[2] for k in unseen})
lines += ["", "| budget | " + " | ".join(f"{n} on valB" for n in names) + " | "
          + " | ".join(f"mutualnet - {n} per seed" for n in names if n != "mutualnet") + " |",
          "| --- " * (2 * len(names)) + "|"]
for b in budgets:
    cells = []
    for n in names:
        got = [unseen[n, b, s] for s in seeds if (n, b, s) in unseen]
        cells.append(f"{statistics.mean(got):.1f}" + (f" [{len(got)} seeds]" if len(got) < len(seeds) else "")
                     if got else "-")
    for n in names:
        if n == "mutualnet":
            continue
        d = [signed(unseen["mutualnet", b, s] - unseen[n, b, s]) for s in seeds
             if ("mutualnet", b, s) in unseen and (n, b, s) in unseen]
        cells.append(", ".join(d) if d else "-")
    lines.append(f"| {b} | " + " | ".join(cells) + " |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
