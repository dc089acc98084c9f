#!/usr/bin/env bash
# Installs the Debian packages mutualnet needs (only those missing), then configures and
# builds it in ./build. Safe to run again: it does only what is left to do.
set -euo pipefail
cd "$(dirname "$0")/.."

# protobuf-c and libonnx-dev (its onnx.proto) are for ONNX export, OpenMPI for data-parallel jobs; without
# them the build leaves those out
packages=(gcc meson ninja-build pkg-config libopenblas-openmp-dev libcjson-dev libstb-dev libcriterion-dev
          protobuf-c-compiler libprotobuf-c-dev libonnx-dev libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "mutualnet: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

builddir=${MN_BUILD_DIR:-build}
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" ${MN_MESON_ARGS:-}
fi
meson compile -C "$builddir"
