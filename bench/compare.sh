#!/usr/bin/env bash
# Backbone speed against PyTorch on this machine, in one run: mutualnet bench, then
# tools/bench_torch.py with the same thread count. Usage: bench/compare.sh [--quick] [--model M]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
echo "== mutualnet ($(lscpu | sed -n 's/^Model name: *//p'), $threads threads)"
./build/tools/mutualnet bench "$@"
echo
echo "== PyTorch"
/usr/bin/python3 tools/bench_torch.py --threads "$threads" "$@"
