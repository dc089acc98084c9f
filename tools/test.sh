#!/usr/bin/env bash
# Set-up (tools/setup.sh), then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# The ONNX export test runs the exported models in onnxruntime (Node.js package onnxruntime-node 1.16.3,
# which carries its own binary); without node or the package that test says so and skips.
if ! command -v npm > /dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm ||
    echo "mutualnet: could not install nodejs and npm; the ONNX runtime test will skip"
fi
if command -v npm > /dev/null && [ ! -d tests/onnx/node_modules/onnxruntime-node ]; then
  (cd tests/onnx && npm install --no-audit --no-fund --loglevel=error) ||
    echo "mutualnet: could not install onnxruntime-node; the ONNX runtime test will skip"
fi
meson test -C "${MN_BUILD_DIR:-build}" --print-errorlogs "$@"
