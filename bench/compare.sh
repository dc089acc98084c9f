#!/usr/bin/env bash
# Backbone speed against PyTorch on this machine, in one run: `mutualnet bench`, then
# tools/bench_torch.py with the same thread count and the same options, ROUNDS times in turn;
# then one table with the median of each row over the rounds, the ratio ours / PyTorch and
# whether ours is at or below PyTorch's time.
#
#   bench/compare.sh [--quick] [--reps N] [--model M] [--width W] [--size S] [--only forward|train]
#
# Environment: OMP_NUM_THREADS (default: nproc), ROUNDS (default 1), MN_BUILD (the build
# directory holding tools/mutualnet, default build), MAX_OTHER (default 5: see below).
# OPENBLAS_CORETYPE is passed through as set (mutualnet picks OpenBLAS's AVX-512 kernels
# itself only when it is unset).
#
# Other processes on the cores distort every figure, badly: with more runnable threads than
# cores, a thread that waits at a barrier for a preempted team mate loses a whole time slice,
# and both programs synchronise their threads after every layer. So each run is watched: the
# CPU time that other processes took while it ran (from /proc/stat, less the run's own) is
# printed as a share of all CPUs, and the summary uses only rounds in which both runs stayed
# under MAX_OTHER percent (all rounds, flagged, when none did).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
export MN_BENCH_ROUNDS=${ROUNDS:-1} MN_BENCH_MAX_OTHER=${MAX_OTHER:-5}
export MN_BENCH_EXE=./${MN_BUILD:-build}/tools/mutualnet

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
echo "== OMP_NUM_THREADS=$threads OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" \
     "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
"$MN_BENCH_EXE" --version | sed 's/^/   /'

exec python3 - "$@" <<'EOF'
import os
import resource
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
rounds, max_other = int(os.environ["MN_BENCH_ROUNDS"]), float(os.environ["MN_BENCH_MAX_OTHER"])
threads = os.environ["OMP_NUM_THREADS"]
ncpu, hz = os.cpu_count(), os.sysconf("SC_CLK_TCK")


def busy_seconds():
    """CPU seconds spent outside idle and iowait by all processes, from /proc/stat."""
    f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / hz


def run(cmd):
    """Runs cmd, echoes its output; returns (output, share of all CPUs other processes used)."""
    r0, b0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_seconds(), time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    r1, b1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_seconds(), time.monotonic()
    own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    other = max(0.0, (b1 - b0) - own) / ((t1 - t0) * ncpu) * 100
    print(out, end="")
    print(f"   (other processes used {other:.1f} % of the {ncpu} CPUs meanwhile)")
    return out, other


def rows(text):
    """{(width, size): (forward, train)} from a bench table; '-' cells become None."""
    got = {}
    for line in text.splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) >= 4 and c[0][:1].isdigit():
            got[(c[0], c[1])] = tuple(None if v == "-" else float(v) for v in c[-2:])
    return got


results = []
for r in range(1, rounds + 1):
    print(f"\n== round {r} of {rounds}, load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print("-- mutualnet")
    ours, o1 = run([os.environ["MN_BENCH_EXE"], "bench"] + args)
    print("-- PyTorch")
    torch, o2 = run(["/usr/bin/python3", "tools/bench_torch.py", "--threads", threads] + args)
    results.append((rows(ours), rows(torch), max(o1, o2)))

clean = [x for x in results if x[2] <= max_other]
print(f"\n== load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}\n")
if clean:
    print(f"Medians over the {len(clean)} of {rounds} round(s) in which other processes used at most "
          f"{max_other:g} % of the CPUs, ms")
else:
    clean = results
    print(f"WARNING: other processes used more than {max_other:g} % of the CPUs in every round; "
          f"medians over all {rounds} round(s), ms")
print("(ratio = ours / PyTorch; met = ours <= PyTorch):\n")
print("| width | size | ours fwd b=1 | PyTorch fwd b=1 | ratio | met | ours train b=8 | PyTorch train b=8 | ratio | met |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|---|")
for key in clean[0][0]:
    cells = list(key)
    for col, fmt in ((0, "{:.2f}"), (1, "{:.1f}")):
        a = [x[0][key][col] for x in clean if key in x[0] and x[0][key][col] is not None]
        b = [x[1][key][col] for x in clean if key in x[1] and x[1][key][col] is not None]
        if not a or not b:
            cells += ["-"] * 4
            continue
        a, b = statistics.median(a), statistics.median(b)
        cells += [fmt.format(a), fmt.format(b), f"{a / b:.2f}", "yes" if a <= b else "**no**"]
    print("| " + " | ".join(cells) + " |")
EOF
