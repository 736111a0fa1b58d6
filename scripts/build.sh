#!/usr/bin/env bash
# Configures and builds imagefs into build/ (or $IMAGEFS_BUILD_DIR). Extra arguments go
# to cmake's configure step, e.g. -DIMAGEFS_SANITIZE=address,undefined. With
# $IMAGEFS_BUILD_TARGETS (space-separated) only those targets are built.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${IMAGEFS_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
# shellcheck disable=SC2086
cmake --build "$build_dir" -j"$(nproc)" ${IMAGEFS_BUILD_TARGETS:+--target $IMAGEFS_BUILD_TARGETS}
