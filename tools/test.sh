#!/usr/bin/env bash
# Set-up (tools/setup.sh), then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
meson test -C "${MN_BUILD_DIR:-build}" --print-errorlogs "$@"
