#!/usr/bin/env bash
# Sets up, builds (warnings as errors) and runs every test: unit tests and integration
# tests that mount for real and start their own servers. The last line of output is
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
if ! scripts/build.sh -DIMAGEFS_WERROR=ON -DIMAGEFS_BUILD_TESTS=ON; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

build_dir=${IMAGEFS_BUILD_DIR:-build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
(cd "$build_dir" && ctest --output-on-failure -j2 --timeout 900 "$@") 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
if [ -z "$summary" ]; then
  echo "no test ran"
  echo "0 passed, 1 failed"
  exit 1
fi
failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$summary")
echo "$((total - failed)) passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
