#!/usr/bin/env bash
# Sets up, builds (warnings as errors) and runs every test: unit tests and integration
# tests that mount for real and start their own servers. With CI=true, also (each can be
# asked for alone with its variable =1):
#   IMAGEFS_SANITIZE_TESTS  the whole suite a second time on an ASan+UBSan build;
#   IMAGEFS_TSAN_TESTS      the concurrency tests and a one-minute soak on a TSan build;
#   IMAGEFS_FUZZ_TESTS      every libFuzzer target for 20 s (clang; scripts/fuzz.sh).
# The last line of output is "N passed, N failed" over all runs.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
# run_suite BUILD_DIR [cmake args...]: builds into BUILD_DIR and runs ctest there.
run_suite() {
  local build_dir=$1; shift
  if ! IMAGEFS_BUILD_DIR=$build_dir scripts/build.sh -DIMAGEFS_WERROR=ON -DIMAGEFS_BUILD_TESTS=ON "$@"; then
    echo "build failed ($build_dir)"
    failed=$((failed + 1))
    return
  fi
  local log
  log=$(mktemp)
  (cd "$build_dir" && ctest --output-on-failure -j2 --timeout 900) 2>&1 | tee "$log"
  local summary
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$summary" ]; then
    echo "no test ran ($build_dir)"
    failed=$((failed + 1))
    return
  fi
  local f t
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
  t=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$summary")
  passed=$((passed + t - f))
  failed=$((failed + f))
}

# tsan_suite BUILD_DIR: the unit binaries (their concurrency tests: registrations racing,
# the transfer manager, helpers run from many threads) and a one-minute soak (16 readers
# beside imports, loads, removals and lazy pulls) on a -fsanitize=thread build; a report
# fails it (halt_on_error). Each binary and the soak count as one test.
tsan_suite() {
  local build_dir=$1 bin
  if ! IMAGEFS_BUILD_DIR=$build_dir IMAGEFS_BUILD_TARGETS="imagefs graph_unit_tests fusefs_unit_tests fetch_unit_tests" \
      scripts/build.sh -DIMAGEFS_WERROR=ON -DIMAGEFS_BUILD_TESTS=ON -DIMAGEFS_SANITIZE=thread; then
    echo "build failed ($build_dir)"
    failed=$((failed + 1))
    return
  fi
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
  for bin in graph fusefs fetch; do
    if "$build_dir/tests/unit/$bin/${bin}_unit_tests" --gtest_brief=1; then
      passed=$((passed + 1))
    else
      echo "FAILED under TSan: ${bin}_unit_tests"
      failed=$((failed + 1))
    fi
  done
  if IMAGEFS=$build_dir/fusefs/imagefs SOAK_READERS=8 scripts/soak.sh 1; then
    passed=$((passed + 1))
  else
    echo "FAILED under TSan: soak"
    failed=$((failed + 1))
  fi
}

# fuzz_suite BUILD_DIR: each target of tests/fuzz for 20 s from its seeds (in BUILD_DIR,
# kept between runs); a crash, leak or timeout fails that target. One test per target.
fuzz_suite() {
  local build_dir=$1 log line
  log=$(mktemp)
  FUZZ_BUILD=$PWD/$build_dir scripts/fuzz.sh 20 2>&1 | tee "$log"
  if ! grep -q '^---- fuzz.sh summary' "$log"; then
    echo "build failed ($build_dir)"
    failed=$((failed + 1))
  fi
  while read -r line; do
    if [[ $line == *FAILED* ]]; then failed=$((failed + 1)); else passed=$((passed + 1)); fi
  done < <(sed -n '/^---- fuzz.sh summary/,$p' "$log" | tail -n +2)
  rm -f "$log"
}

wanted() { [ "${CI:-}" = true ] || [ "${!1:-}" = 1 ]; }

run_suite "${IMAGEFS_BUILD_DIR:-build}"
if wanted IMAGEFS_SANITIZE_TESTS; then
  echo "== the same tests on an ASan+UBSan build =="
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
  run_suite build-asan -DIMAGEFS_SANITIZE=address,undefined
fi
if wanted IMAGEFS_TSAN_TESTS; then
  echo "== concurrency under ThreadSanitizer: the unit tests and a short soak =="
  tsan_suite build-tsan
fi
if wanted IMAGEFS_FUZZ_TESTS; then
  echo "== every fuzz target for a short while =="
  fuzz_suite build-fuzz
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
