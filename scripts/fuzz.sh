#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz/ for SECONDS each, one after another, each as
# one process (no -jobs/-workers: the machine is shared). Usage:
#   scripts/fuzz.sh SECONDS [TARGET...]      # TARGET: tar_index, tree, loader, ... (default: all)
# FUZZ_RUNS=N stops a target after N executions if that comes first; FUZZ_SKIP_BUILD=1
# runs the binaries already built.
# Builds with clang in ${FUZZ_BUILD:-/tmp/imagefs-fuzz-build} (IMAGEFS_FUZZ=ON: ASan +
# UBSan + libFuzzer), generates the seed corpora once (scripts/fuzz_seeds.sh, cached in
# $FUZZ_BUILD/fuzz-seeds) and keeps each target's corpus in $FUZZ_BUILD/fuzz-corpus/<target>
# between runs. A crash, timeout (-timeout=${FUZZ_TIMEOUT:-10} s; raise it when the fuzzer
# runs niced beside other work, which can starve one input past it), OOM (-rss_limit_mb=2048)
# or leak is written to $FUZZ_BUILD/fuzz-artifacts/<target>/ and makes the exit status 1
# (a slow-unit-* file there is libFuzzer's note of its slowest input, not a failure). Prints one summary
# line per target. Minimise a finding with
#   $FUZZ_BUILD/tests/fuzz/<target>_fuzz -minimize_crash=1 -runs=100000 ARTIFACT
# and commit it under tests/fuzz/regressions/<target>/ (ctest fuzz_replay.<target> replays it).
set -euo pipefail
seconds=${1:?usage: fuzz.sh SECONDS [TARGET...]}
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-/tmp/imagefs-fuzz-build}
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for f in "$repo"/tests/fuzz/*_fuzz.cc; do
    f=${f##*/}
    targets+=("${f%_fuzz.cc}")
  done
fi
for t in "${targets[@]}"; do
  [[ -f $repo/tests/fuzz/${t}_fuzz.cc ]] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
done

logs=$build/fuzz-logs
mkdir -p "$logs"
if [[ -z ${FUZZ_SKIP_BUILD:-} ]]; then
  cmake -S "$repo" -B "$build" -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" -DIMAGEFS_FUZZ=ON \
    -DIMAGEFS_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$logs/cmake.log" 2>&1 ||
    { cat "$logs/cmake.log" >&2; exit 1; }
  make -C "$build" -j"${FUZZ_MAKE_JOBS:-2}" "${targets[@]/%/_fuzz}" </dev/null >"$logs/make.log" 2>&1 ||
    { tail -50 "$logs/make.log" >&2; exit 1; }
fi
"$repo/scripts/fuzz_seeds.sh" "$build/fuzz-seeds" >/dev/null

# The store fsyncs each registration: on tmpfs that costs nothing.
scratch_base=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && scratch_base=/dev/shm
export FUZZ_TMPDIR
FUZZ_TMPDIR=$(mktemp -d "$scratch_base/imagefs-fuzz-run.XXXXXX")
trap 'rm -rf "$FUZZ_TMPDIR"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$repo/tests/lsan.supp}

failed=0
summary=()
for t in "${targets[@]}"; do
  corpus=$build/fuzz-corpus/$t
  artifacts=$build/fuzz-artifacts/$t
  log=$logs/$t.log
  mkdir -p "$corpus" "$artifacts"
  before=$(find "$artifacts" -type f ! -name 'slow-unit-*' | wc -l)
  dict=()
  [[ -f $repo/tests/fuzz/$t.dict ]] && dict=(-dict="$repo/tests/fuzz/$t.dict")
  echo "fuzz.sh: $t for ${seconds}s (log $log)"
  rc=0
  "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-10}" \
    -runs="${FUZZ_RUNS:--1}" -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$corpus" "$build/fuzz-seeds/$t" </dev/null >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(find "$corpus" -type f | wc -l)
  new=$(($(find "$artifacts" -type f ! -name 'slow-unit-*' | wc -l) - before))
  line=$(printf '%-15s execs=%-10s exec/s=%-6s corpus=%-6s new_crashes=%s' "$t" "${execs:-?}" \
    "${rate:-?}" "$corp" "$new")
  if ((new > 0 || rc != 0)); then
    failed=1
    line+="  FAILED (exit $rc): $artifacts/, $log"
  fi
  summary+=("$line")
  echo "$line"
done
echo "---- fuzz.sh summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
