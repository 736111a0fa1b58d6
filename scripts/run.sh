#!/usr/bin/env bash
# The main job: set up, build, and show the default store's images.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
exec build/fusefs/imagefs images "$@"
