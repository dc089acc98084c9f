#!/usr/bin/env bash
# Whole-model speed against PyTorch on this machine: DeepLabV3+ and Faster R-CNN as the run
# configurations build them, `mutualnet bench --model M` against bench/models_torch.py
# (torchvision's modules at the same configuration), one job at a time, the same thread count.
# Row by row, ours then PyTorch's, ROUNDS times, so that each ratio comes from one stretch of
# time on a shared machine; then one table per model with the median over rounds, the ratio
# ours / PyTorch and the share of the machine's peak each side reaches end to end.
#
#   bench/compare_models.sh [--model deeplabv3plus|faster_rcnn|all] [--quick] [--reps N] [--batch B]
#                           [--only forward|train|sandwich] [--size HxW] [--config FILE] [--classes K]
#                           [--at HxW (segmenter) | --short-side S (detector): rows at that size instead]
#
# Environment: OMP_NUM_THREADS (default: nproc), ROUNDS (default 1), MN_BUILD (build directory,
# default build), PEAK_GFLOPS (default 480: this machine's measured FMA peak, docs/BENCHMARKS.md),
# MAX_OTHER (default 5: runs during which other processes used more than this percent of the
# CPUs are flagged, as bench/compare.sh does), BEFORE (another mutualnet binary, e.g. built from an
# earlier commit: each row times it too, just before ours, so a change is measured before and after
# in the same run). OPENBLAS_CORETYPE is passed through as set.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
export MN_BENCH_ROUNDS=${ROUNDS:-1} MN_BENCH_MAX_OTHER=${MAX_OTHER:-5} MN_BENCH_PEAK=${PEAK_GFLOPS:-480}
export MN_BENCH_EXE=./${MN_BUILD:-build}/tools/mutualnet MN_BENCH_BEFORE=${BEFORE:-}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs," \
     "$(free -g | awk '/^Mem:/ {print $2}') GiB"
echo "== OMP_NUM_THREADS=$threads OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" \
     "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-unset}"
"$MN_BENCH_EXE" --version | sed 's/^/   /'
if [ -n "${BEFORE:-}" ]; then echo "== before: $BEFORE"; "$BEFORE" --version | sed 's/^/   /'; fi

exec /usr/bin/python3 - "$@" <<'EOF'
import os
import resource
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
models = ["deeplabv3plus", "faster_rcnn"]
if "--model" in args:
    i = args.index("--model")
    if args[i + 1] != "all":
        models = [args[i + 1]]
    del args[i:i + 2]
rounds, max_other = int(os.environ["MN_BENCH_ROUNDS"]), float(os.environ["MN_BENCH_MAX_OTHER"])
peak, exe, threads = float(os.environ["MN_BENCH_PEAK"]), os.environ["MN_BENCH_EXE"], os.environ["OMP_NUM_THREADS"]
before = os.environ["MN_BENCH_BEFORE"]
ncpu, hz = os.cpu_count(), os.sysconf("SC_CLK_TCK")


def busy_seconds():
    """CPU seconds spent outside idle and iowait by all processes, from /proc/stat."""
    f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / hz


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def run(cmd):
    """Runs cmd; returns (output, share of all CPUs other processes used meanwhile, %)."""
    r0, b0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_seconds(), time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    r1, b1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_seconds(), time.monotonic()
    own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return out, max(0.0, (b1 - b0) - own) / ((t1 - t0) * ncpu) * 100


def table(text):
    """[(row, input, batch, cells...)] from a bench table."""
    got = []
    for line in text.splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) >= 4 and c[0] in ("forward", "train", "sandwich"):
            got.append(c)
    return got


for model in models:
    listing = run([exe, "bench", "--model", model, "--list"] + args)[0]
    print("\n" + listing.splitlines()[0])
    if len(listing.splitlines()) > 1 and listing.splitlines()[1].startswith("sandwich"):
        print(listing.splitlines()[1])
    rows = table(listing)
    res = {}
    for r in range(1, rounds + 1):
        print(f"== {model}, round {r} of {rounds}, load average {loadavg()}")
        for c in rows:
            key = (c[0], c[1], c[2])
            sel = ["--only", c[0], "--size", c[1]]
            old, o0 = run([before, "bench", "--model", model] + args + sel) if before else ("", 0.0)
            ours, o1 = run([exe, "bench", "--model", model] + args + sel)
            torch, o2 = run(["/usr/bin/python3", "bench/models_torch.py", "--model", model, "--threads", threads]
                            + args + sel)
            if r == 1 and c is rows[0]:
                print("   " + torch.splitlines()[0])
            a, b = float(table(ours)[0][4]), float(table(torch)[0][3])
            z = float(table(old)[0][4]) if before else float("nan")
            was = f"before {z:.1f} ms (others {o0:.1f} % CPU), " if before else ""
            print(f"   {c[0]} {c[1]} b={c[2]}: {was}ours {a:.1f} ms (others {o1:.1f} % CPU), PyTorch {b:.1f} ms "
                  f"(others {o2:.1f} %), ratio {a / b:.2f}", flush=True)
            res.setdefault(key, []).append((a, b, max(o0, o1, o2), float(c[3]), z))
    print(f"== load average at the end: {loadavg()}\n")
    print(f"{model}: medians over rounds (ms; ratio = ours / PyTorch; GMACs per step as forward passes; "
          f"% peak = end-to-end GFLOP/s over {peak:g}, training counted as 3 forward passes)\n")
    head = "| before | before / PyTorch " if before else ""
    print(f"| row | input | batch | GMACs {head}| ours | PyTorch | ratio | ours % peak | PyTorch % peak | others' CPU % |")
    print("|---|---|---:|---:" + ("|---:|---:" if before else "") + "|---:|---:|---:|---:|---:|---:|")
    for key, v in res.items():
        a, b = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
        z = statistics.median(x[4] for x in v)
        other = max(x[2] for x in v)
        flops = 2 * v[0][3] * 1e9 * (1 if key[0] == "forward" else 3)
        flag = "" if other <= max_other else " (loaded)"
        was = f"{z:.1f} | {z / b:.2f} | " if before else ""
        print(f"| {key[0]} | {key[1]} | {key[2]} | {v[0][3]:.1f} | {was}{a:.1f} | {b:.1f} | {a / b:.2f} | "
              f"{100 * flops / (a * 1e6) / peak:.1f} | {100 * flops / (b * 1e6) / peak:.1f} | {other:.0f}{flag} |")
EOF
