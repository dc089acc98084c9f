#!/usr/bin/env bash
# `meson install` into a staging folder gives what an outside program needs: the example
# (examples/infer_example.c) is compiled out of tree from the installed pkg-config file alone,
# linked against the shared library and against the static one, and both builds print exactly
# what the example built in the tree prints, on tiny checkpoints of the three tasks at the
# default configuration, at a budget of MACs, at one of milliseconds and at a width and size.
#
#   tests/install_check.sh BUILD_DIR SOURCE_ROOT INFER_FIXTURE INFER_EXAMPLE SANITIZE OPENBLAS_DIR
set -euo pipefail
build=$1 src=$2 fixture=$(realpath "$3") intree=$(realpath "$4") sanitize=$5 blas_dir=$6
work=$(mktemp -d /tmp/mn_install_XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "install check: $*" >&2; exit 1; }

stage=$work/stage
meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "meson install failed"; }
pc=$(find "$stage" -name mutualnet.pc)
[[ -n $pc ]] || fail "no mutualnet.pc installed"
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
pc_args=(--define-variable=prefix="$stage$prefix")
libdir=$(pkg-config "${pc_args[@]}" --variable=libdir mutualnet)
incdir=$(pkg-config "${pc_args[@]}" --variable=includedir mutualnet)
for f in "$libdir"/libmutualnet.so "$libdir"/libmutualnet.a "$incdir"/mn/infer.h "$incdir"/mn/error.h; do
  [[ -e $f ]] || fail "$f is not installed"
done
[[ $(readelf -d "$libdir"/libmutualnet.so | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p') == libmutualnet.so.0 ]] ||
  fail "the shared library's soname is not libmutualnet.so.0"
# installed, it still finds the OpenMP build of OpenBLAS rather than whichever the system's alternative names:
# its run path names that folder (read from the file), and the loader resolves it there (ldd; not in sanitizer
# builds, where ldd of sanitizer-linked objects failed now and then in CI while the file was right)
readelf -d "$libdir"/libmutualnet.so | grep -E 'R(UN)?PATH' | grep -q "$blas_dir" ||
  fail "the installed library's run path does not name $blas_dir"
if [[ $sanitize == none ]]; then
  env -u LD_LIBRARY_PATH ldd "$libdir"/libmutualnet.so | grep -q "libopenblas.so.0 => $blas_dir/" ||
    fail "the installed library does not load OpenBLAS from $blas_dir"
fi

# out of tree: a copy of the example in an empty folder, the flags from pkg-config only
mkdir "$work/ex"
cp "$src/examples/infer_example.c" "$work/ex/"
san=()
[[ $sanitize != none ]] && san=(-fsanitize="$sanitize")
cc=${CC:-cc}
cd "$work/ex"
"$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" infer_example.c -o infer_shared \
  $(pkg-config "${pc_args[@]}" --cflags --libs mutualnet) || fail "the example does not build against the shared library"
static_libs=$(pkg-config "${pc_args[@]}" --static --libs mutualnet)
"$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" infer_example.c -o infer_static \
  $(pkg-config "${pc_args[@]}" --cflags mutualnet) ${static_libs/-lmutualnet/-l:libmutualnet.a} ||
  fail "the example does not build against the static library"
readelf -d infer_shared | grep -q 'NEEDED.*libmutualnet.so.0' || fail "infer_shared does not load libmutualnet.so.0"
! readelf -d infer_static | grep -q 'NEEDED.*libmutualnet' || fail "infer_static still loads libmutualnet.so"
# the test runner points LD_LIBRARY_PATH at the build folder: the shared build must load the staged library
if [[ $sanitize == none ]]; then
  LD_LIBRARY_PATH=$libdir ldd infer_shared | grep -q "libmutualnet.so.0 => $libdir/libmutualnet.so.0" ||
    fail "infer_shared does not load the installed libmutualnet.so.0"
fi

"$fixture" "$work" >"$work/macs.txt" || fail "the fixtures were not written"
n_runs=0
while read -r task m0 m1 m2; do
  for args in "" "--budget $m1" "--budget-ms 5" "--width 0.35 --size 48"; do
    # a detector's input is a short side; the others take HxW
    [[ $args == *--size* && $task != det ]] && args="--width 0.35 --size 48x32"
    ckpt=$work/$task.safetensors
    "$intree" "$ckpt" "$work/image.png" $args >"$work/want.txt" 2>&1 || { cat "$work/want.txt" >&2; fail "the in-tree example failed on $task $args"; }
    LD_LIBRARY_PATH=$libdir ./infer_shared "$ckpt" "$work/image.png" $args >"$work/shared.txt" 2>&1 ||
      { cat "$work/shared.txt" >&2; fail "infer_shared failed on $task $args"; }
    ./infer_static "$ckpt" "$work/image.png" $args >"$work/static.txt" 2>&1 ||
      { cat "$work/static.txt" >&2; fail "infer_static failed on $task $args"; }
    diff "$work/want.txt" "$work/shared.txt" >&2 || fail "infer_shared printed something else on $task $args"
    diff "$work/want.txt" "$work/static.txt" >&2 || fail "infer_static printed something else on $task $args"
    grep -q "^mutualnet API 100 (header 100)$" "$work/want.txt" || fail "the version line is missing"
    case $args in
      --budget*) grep -q "^selected: width 0.70, input 48x" "$work/want.txt" || fail "$args did not pick entry 1" ;;
      --width*) grep -q "^selected: width 0.35, input 48x" "$work/want.txt" || fail "--width/--size were not applied" ;;
    esac
    n_runs=$((n_runs + 1))
    echo "== $task $args"
    cat "$work/want.txt"
  done
done <"$work/macs.txt"
((n_runs == 12)) || fail "$n_runs runs instead of 12"
echo "install check: the example built from the installed pkg-config file (shared and static) agrees on $n_runs runs"
