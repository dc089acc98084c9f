#!/usr/bin/env bash
# Builds the libFuzzer targets with clang under AddressSanitizer + UndefinedBehaviorSanitizer,
# replays the seed corpora and the regression files, then fuzzes each target for SECONDS.
#
#   fuzz/run.sh [SECONDS]        SECONDS per target (default 30; 0: replay only)
#
# Environment: MN_FUZZ_TARGETS (space-separated subset, default all), MN_FUZZ_BUILD_DIR (default
# build-fuzz). New corpus entries go to $MN_FUZZ_BUILD_DIR/corpus/<target> (the committed seeds in
# fuzz/corpus/ are only read), crashes to $MN_FUZZ_BUILD_DIR/artifacts/<target>/, logs to
# $MN_FUZZ_BUILD_DIR/logs/<target>.log. A crash fails the script: copy the artifact into
# fuzz/regressions/<target>/ once it is fixed, so every later run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
builddir=${MN_FUZZ_BUILD_DIR:-build-fuzz}
targets=${MN_FUZZ_TARGETS:-config coco_gt coco_dets coco_dataset safetensors classes splits labels image}

# clang brings libFuzzer; libomp-dev is clang's OpenMP (the gcc build uses libgomp)
packages=(clang libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$builddir/build.ninja" ]; then
  CC=clang meson setup "$builddir" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized -Dnative=false -Dtests=disabled
fi
meson compile -C "$builddir"

# malloc'd memory filled with 0xff whatever its size: a read of memory never written behaves the
# same in every run (deterministic replays), and wrongly (stb's undefined Huffman tables)
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:max_malloc_fill_size=1048576:malloc_fill_byte=255
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# one thread: OpenMP's pool is not needed by any parser and would only add noise
export OMP_NUM_THREADS=1
export MUTUALNET_LOG=error

status=0
for t in $targets; do
  exe="$builddir/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  work="$builddir/corpus/$t" art="$builddir/artifacts/$t" log="$builddir/logs/$t.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  opts=(-timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 -artifact_prefix="$art/" "${dict[@]}")

  # the committed seeds, the corpus grown so far and every regression file, each run once
  replay=("fuzz/corpus/$t" "$work")
  [ -d "fuzz/regressions/$t" ] && replay+=("fuzz/regressions/$t")
  if ! "$exe" "${opts[@]}" -runs=0 "${replay[@]}" >"$log" 2>&1; then
    echo "fuzz: $t: replay FAILED (see $log)" >&2
    tail -n 30 "$log" >&2
    status=1
    continue
  fi
  echo "fuzz: $t: replayed $(tail -n 5 "$log" | grep -o 'Done [0-9]* runs' || echo '?')"
  ((seconds > 0)) || continue

  if "$exe" "${opts[@]}" -max_total_time="$seconds" -print_final_stats=1 "$work" "fuzz/corpus/$t" >>"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || echo '?')
    corp=$(grep ' DONE ' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' || echo '?')
    echo "fuzz: $t: ${seconds}s, $execs executions, $corp, no finding"
  else
    echo "fuzz: $t: FINDING (see $log; inputs in $art/)" >&2
    grep -m 20 -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" >&2 || true # -m: head would SIGPIPE grep under pipefail
    status=1
  fi
done
exit $status
