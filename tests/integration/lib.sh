# Shared helpers for integration tests: assertions, a scratch dir removed on exit,
# and the fixture cache. Source it; $IMAGEFS is the binary under test.
set -euo pipefail

: "${IMAGEFS:?set IMAGEFS to the imagefs binary}"
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Fixtures that are slow to make (debootstrap) are cached outside the repo.
FIXTURE_CACHE=${IMAGEFS_FIXTURE_CACHE:-/var/tmp/imagefs-fixtures}
SCRATCH=$(mktemp -d /tmp/imagefs-it-XXXXXX)
chmod 755 "$SCRATCH"  # tests run commands as other users inside it
export IMAGEFS_STORE=$SCRATCH/store
failures=0

cleanup_hooks=()
on_exit() {
  local status=$? hook log
  for hook in "${cleanup_hooks[@]}"; do eval "$hook" || true; done
  # A failed run shows what the daemons said (sanitizer reports included) before it goes.
  if [ "$status" -ne 0 ] || [ "$failures" -ne 0 ]; then
    for log in "$SCRATCH"/daemon*.log; do
      [ -s "$log" ] && { echo "---- last lines of $(basename "$log"):" >&2; tail -n 40 "$log" >&2; }
    done
  fi
  rm -rf "$SCRATCH"
}
trap on_exit EXIT
# set -e ends a test at a failed command outside any check: say which, not just the status
# (where a script turned -e off, a failure is its own business).
on_err() {
  [[ $- == *e* ]] && echo "FAIL: exit status $1 of \"$3\" at ${BASH_SOURCE[1]##*/}:$2" >&2
  return 0
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# kill_child PID...: signals only processes that are still children of this shell (a PID
# whose process exited may have been reused by someone else's, e.g. a parallel test's).
kill_child() {
  local pid
  for pid in "$@"; do
    [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$$" ] && kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
  done
}

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
check_eq() {  # check_eq WHAT EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then fail "$1: expected [$2], got [$3]"; else echo "ok: $1"; fi
}
check_contains() {  # check_contains WHAT NEEDLE HAYSTACK
  if [[ "$3" != *"$2"* ]]; then fail "$1: [$2] not in [$3]"; else echo "ok: $1"; fi
}
# Runs a command, capturing stdout+stderr in $out and its exit status in $rc.
run() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
