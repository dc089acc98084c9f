#!/usr/bin/env bash
# Backbone speed against PyTorch on this machine, in one run: `mutualnet bench`, then
# tools/bench_torch.py with the same thread count and the same options, ROUNDS times in turn;
# then one table with the median of each row over the rounds, the ratio ours / PyTorch and
# whether ours is at or below PyTorch's time. The load average is printed before every round:
# other processes on the cores distort every figure.
#
#   bench/compare.sh [--quick] [--reps N] [--model M] [--width W] [--size S] [--only forward|train]
#
# Environment: OMP_NUM_THREADS (default: nproc), ROUNDS (default 1), MN_BUILD (the build
# directory holding tools/mutualnet, default build). OPENBLAS_CORETYPE is passed through as set
# (mutualnet picks OpenBLAS's AVX-512 kernels itself only when it is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
rounds=${ROUNDS:-1}
exe=./${MN_BUILD:-build}/tools/mutualnet
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
echo "== OMP_NUM_THREADS=$threads OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" \
     "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
"$exe" --version | sed 's/^/   /'
for r in $(seq "$rounds"); do
    echo
    echo "== round $r of $rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "-- mutualnet"
    "$exe" bench "$@" | tee -a "$log"
    echo "-- PyTorch"
    /usr/bin/python3 tools/bench_torch.py --threads "$threads" "$@" | tee -a "$log"
done
echo
echo "== after the last round: load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# Median per row and column over the rounds (the two tables differ in their column count:
# ours has an MMACs column).
python3 - "$log" "$rounds" <<'EOF'
import statistics
import sys

ours, torch = {}, {}
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 4 or not cells[0][:1].isdigit():
        continue
    key = (cells[0], cells[1])
    fwd, step = cells[-2], cells[-1]
    table = ours if len(cells) == 5 else torch
    for col, v in ((0, fwd), (1, step)):
        if v != "-":
            table.setdefault(key, ([], []))[col].append(float(v))

def med(table, key, col):
    v = table.get(key, ([], []))[col]
    return statistics.median(v) if v else None

print(f"Medians over {sys.argv[2]} round(s), ms (ratio = ours / PyTorch; met = ours <= PyTorch):\n")
print("| width | size | ours fwd b=1 | PyTorch fwd b=1 | ratio | met | ours train b=8 | PyTorch train b=8 | ratio | met |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|---|")
for key in ours:
    row = [key[0], key[1]]
    for col, fmt in ((0, "{:.2f}"), (1, "{:.1f}")):
        a, b = med(ours, key, col), med(torch, key, col)
        if a is None or b is None:
            row += ["-", "-", "-", "-"]
        else:
            row += [fmt.format(a), fmt.format(b), f"{a / b:.2f}", "yes" if a <= b else "**no**"]
    print("| " + " | ".join(row) + " |")
EOF
