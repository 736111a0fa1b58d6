#!/usr/bin/env bash
# Configures and builds imagefs into build/ (or $IMAGEFS_BUILD_DIR). Extra arguments go
# to cmake's configure step, e.g. -DIMAGEFS_SANITIZE=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${IMAGEFS_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
