#!/usr/bin/env bash
# Crash consistency, measured: N times, SIGKILL one store-changing operation at a random
# moment of its run, then prove nothing is lost or half-visible:
#   1. `imagefs check` finds no damage (leftovers of interrupted work only, which the next
#      command or `check --repair` removes);
#   2. every image `images -a` lists mounts and its whole rootfs reads (tar -c) without EIO;
#   3. the interrupted command, repeated, succeeds; afterwards `check` is clean.
# Operations: load (CLI), cp into import/ (the mount daemon killed), pull from a registry on
# 127.0.0.1, rm, prune -a, tag/untag, and the mount daemon killed in a lazy pull through
# registry/. Usage: scripts/crash.sh N   (IMAGEFS=binary, CRASH_SEED=n to replay a run,
# CRASH_STORE_DIR=dir to keep the store on another file system, e.g. one mounted -o sync).
# Prints a table per operation; exit 1 on any damage or failed check.
set -uo pipefail
N=${1:?usage: scripts/crash.sh N}
here=$(cd "$(dirname "$0")" && pwd)
export IMAGEFS=${IMAGEFS:-$here/../build/fusefs/imagefs}
[ -x "$IMAGEFS" ] || { echo "crash.sh: no imagefs binary at $IMAGEFS (scripts/build.sh)" >&2; exit 2; }
source "$here/../tests/integration/lib.sh"
set +e  # lib.sh sets -e; every status here is looked at
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"
SEED=${CRASH_SEED:-$$}
RANDOM=$SEED
echo "crash.sh: $N kills, seed $SEED, imagefs $("$IMAGEFS" --version | cut -d' ' -f2-)"

# ---- Fixtures: two images of a few thousand files (one to load, one to pull), the small
# ones of the integration tests (modern, legacy), and a registry holding the pull image.
fx=$SCRATCH/fx
bash "$TESTS_DIR/make_fixtures.sh" "$fx" >/dev/null || exit 2
python3 "$here/make_many_files_image.py" "$SCRATCH/big.tar" crash/big:1 5000 8 >/dev/null
python3 "$here/make_many_files_image.py" "$SCRATCH/remote.tar" crash/remote:1 4000 6 >/dev/null
PORT=$(free_port)
start_registry "$PORT" "$SCRATCH/registry" "" || exit 2
REMOTE=127.0.0.1:$PORT/crash/remote:1
skopeo copy -q --dest-tls-verify=false "docker-archive:$SCRATCH/remote.tar" "docker://$REMOTE" || exit 2

export IMAGEFS_STORE=${CRASH_STORE_DIR:-$SCRATCH}/crash-store
rm -rf "$IMAGEFS_STORE"
m=$SCRATCH/mnt
mkdir -p "$m"
ifs() { "$IMAGEFS" --log-level info "$@" 2>>"$SCRATCH/ops.log"; }
# What gets killed must be imagefs itself: a background shell function would be a subshell,
# and SIGKILL would leave its imagefs running beside the checks.
killable() { "$IMAGEFS" --log-level info "$@" >/dev/null 2>>"$SCRATCH/ops.log" & VICTIM=$! WAITFOR=$!; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Unmounts what a killed daemon left: its mountpoint and the import/ mount in the store.
detach_all() {
  local t
  for t in $(awk -v s="$SCRATCH" -v t="$IMAGEFS_STORE" 'index($5, s) == 1 || index($5, t) == 1 { print $5 }' \
      /proc/self/mountinfo | sort -r); do
    fusermount3 -u -z "$t" 2>/dev/null || umount -l "$t" 2>/dev/null
  done
}
cleanup_hooks+=(detach_all)

# Start a daemon of our own on $m (in the background); sets DAEMON.
start_daemon() {
  detach_all
  "$IMAGEFS" --log-level info mount "$m" 2>>"$SCRATCH/ops.log" &
  DAEMON=$!
  local i
  for i in $(seq 1 100); do
    mounted "$m" && stat -f "$m" >/dev/null 2>&1 && return 0
    kill -0 "$DAEMON" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
stop_daemon() { fusermount3 -u "$m" 2>/dev/null; wait "$DAEMON" 2>/dev/null; detach_all; }

# ---- The operations: prepare (not killed), the command (killed), and its repeat.
ops=(load import pull rm prune tag lazy)
has_image() { ifs inspect "$1" >/dev/null 2>&1; }
ensure_image() { has_image "$1" || ifs load -q "$2" >/dev/null; }
prepare() {
  case $1 in
    load) ifs rm -f crash/big:1 >/dev/null 2>&1; ifs prune >/dev/null 2>&1 ;;
    import) ifs rm -f crash/big:1 >/dev/null 2>&1; start_daemon ;;
    pull | lazy) ifs rm -f "$REMOTE" >/dev/null 2>&1; ifs prune >/dev/null 2>&1
      [ "$1" = lazy ] && start_daemon ;;
    rm | prune) ensure_image crash/big:1 "$SCRATCH/big.tar"; ensure_image example/img:1 "$fx/docker.tar"
      ensure_image example/legacy:v1 "$fx/legacy.tar"; ifs untag example/img:latest >/dev/null 2>&1 ;;
    tag) ensure_image example/img:1 "$fx/docker.tar" ;;
  esac
}
# Runs the operation in the background; sets VICTIM (what gets the SIGKILL) and WAITFOR.
launch() {
  case $1 in
    load) killable load -q "$SCRATCH/big.tar" ;;
    # close() returns before the load ends (kernel opens): wait for the image too.
    import) ( cp "$SCRATCH/big.tar" "$m/import/" 2>/dev/null &&
        for _ in $(seq 1 500); do has_image crash/big:1 && break; kill -0 "$DAEMON" || break; sleep 0.02; done
      ) & WAITFOR=$! VICTIM=$DAEMON ;;
    pull) killable pull -q "$REMOTE" ;;
    rm) killable rm crash/big:1 example/legacy:v1 ;;
    prune) killable prune -a ;;
    tag) if has_image crash/t:1; then killable untag crash/t:1; else killable tag example/img:1 crash/t:1; fi ;;
    lazy) ls "$m/registry/$PORT_HOST/crash/remote/1/rootfs" >/dev/null 2>&1 & WAITFOR=$! VICTIM=$DAEMON ;;
  esac
}
PORT_HOST=127.0.0.1:$PORT
# Repeats the operation to completion and says whether it succeeded (an rm or untag whose
# killed run already finished finds nothing left to do, which is success too).
repeat_op() {
  case $1 in
    load) ifs load -q "$SCRATCH/big.tar" >/dev/null ;;
    import) start_daemon && cp "$SCRATCH/big.tar" "$m/import/" && ls "$m/images" >/dev/null &&
      has_image crash/big:1; local rc=$?; stop_daemon; return $rc ;;
    pull) ifs pull -q "$REMOTE" >/dev/null ;;
    rm) for n in crash/big:1 example/legacy:v1; do ! has_image "$n" || ifs rm "$n" >/dev/null || return 1; done ;;
    prune) ifs prune -a >/dev/null ;;
    tag) true ;;  # either state is a finished tag or untag; the check below judges the store
    lazy) start_daemon && ls "$m/registry/$PORT_HOST/crash/remote/1/rootfs/" >/dev/null &&
      has_image "$REMOTE"; local rc=$?; stop_daemon; return $rc ;;
  esac
}

# check_store LABEL: 0 clean, 1 leftovers only (counted), 2 damage (printed).
check_store() {
  local json kinds
  json=$(ifs check --json 2>&1)
  kinds=$(python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[1])
except Exception:
    print("damage unreadable check output: " + sys.argv[1][:300]); sys.exit()
for p in r["problems"]:
    print(("leftover " if p["leftover"] else "damage ") + p["object"] + ": " + p["problem"])
' "$json")
  if grep -q '^damage' <<<"$kinds"; then
    echo "$1: $kinds" >&2
    # Kept for a post-mortem: what every process logged, and the store's files.
    local keep=/var/tmp/imagefs-crash-damage/$SEED-$i
    mkdir -p "$keep" && cp "$SCRATCH/ops.log" "$keep/" && find "$IMAGEFS_STORE" -ls >"$keep/store.ls" 2>&1
    echo "  (logs and a listing of the store kept in $keep)" >&2
    return 2
  fi
  [ -z "$kinds" ] && return 0
  leftovers=$((leftovers + $(wc -l <<<"$kinds")))
  return 1
}

# Every image mounts and its whole rootfs reads.
verify_images() {
  start_daemon || { echo "mount failed" >&2; return 1; }
  local id bad=0
  for id in $(ifs images -a --no-trunc --format json | python3 -c '
import json, sys
for l in sys.stdin: print(json.loads(l)["ID"][7:])'); do
    if ! tar -C "$m/images/$id/rootfs" -cf - . 2>"$SCRATCH/tar.err" | cat >/dev/null ||
       [ -s "$SCRATCH/tar.err" ]; then
      echo "image $id: rootfs does not read: $(head -3 "$SCRATCH/tar.err")" >&2; bad=1
    fi
  done
  stop_daemon
  return $bad
}

# ---- Calibrate: how long each operation runs uninterrupted (the kill moment is drawn from
# 0 to 1.2 times that).
declare -A dur runs killed_mid left_after_kill left_after_repeat damage failed
for op in "${ops[@]}"; do
  prepare "$op"; t0=$(now_ms); launch "$op"; wait "$WAITFOR"; dur[$op]=$(( $(now_ms) - t0 + 5 ))
  [ "$op" = import ] || [ "$op" = lazy ] && stop_daemon
  runs[$op]=0 killed_mid[$op]=0 left_after_kill[$op]=0 left_after_repeat[$op]=0 damage[$op]=0 failed[$op]=0
done
echo "uninterrupted run times (ms): $(for op in "${ops[@]}"; do printf '%s=%s ' "$op" "${dur[$op]}"; done)"

start=$(date +%s)
for i in $(seq 1 "$N"); do
  op=${ops[$((RANDOM % ${#ops[@]}))]}
  echo "== #$i $op" >>"$SCRATCH/ops.log"
  runs[$op]=$((runs[$op] + 1))
  prepare "$op"
  delay=$((RANDOM * 32768 + RANDOM))
  delay=$((delay % (dur[$op] * 12 / 10 + 1)))
  launch "$op"
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -0 "$VICTIM" 2>/dev/null; then
    kill -0 "$WAITFOR" 2>/dev/null && killed_mid[$op]=$((killed_mid[$op] + 1))
    kill -9 "$VICTIM" 2>/dev/null
  fi
  wait "$WAITFOR" 2>/dev/null; wait "$VICTIM" 2>/dev/null
  detach_all

  leftovers=0
  check_store "#$i $op killed after ${delay}ms"; st=$?
  [ $st -eq 2 ] && damage[$op]=$((damage[$op] + 1))
  left_after_kill[$op]=$((left_after_kill[$op] + leftovers))
  if ! verify_images; then failed[$op]=$((failed[$op] + 1)); echo "#$i $op: an image does not read" >&2; fi
  if ! repeat_op "$op"; then failed[$op]=$((failed[$op] + 1)); echo "#$i $op (killed after ${delay}ms): repeating it failed" >&2; fi
  leftovers=0
  check_store "#$i $op after the repeat"; st=$?
  [ $st -eq 2 ] && damage[$op]=$((damage[$op] + 1))
  if [ $st -eq 1 ]; then
    left_after_repeat[$op]=$((left_after_repeat[$op] + leftovers))
    ifs check --repair >/dev/null 2>&1
    leftovers=0
    check_store "#$i $op after --repair" || { failed[$op]=$((failed[$op] + 1)); echo "#$i $op: --repair left problems" >&2; }
  fi
  [ $((i % 50)) -eq 0 ] && echo "  $i/$N kills, $(( $(date +%s) - start )) s"
done

echo
printf '%-8s %6s %12s %16s %18s %7s %7s\n' operation kills "mid-run" "leftovers(kill)" "leftovers(repeat)" damage failed
total_bad=0
for op in "${ops[@]}"; do
  printf '%-8s %6d %12d %16d %18d %7d %7d\n' "$op" "${runs[$op]}" "${killed_mid[$op]}" \
    "${left_after_kill[$op]}" "${left_after_repeat[$op]}" "${damage[$op]}" "${failed[$op]}"
  total_bad=$((total_bad + damage[$op] + failed[$op]))
done
echo "$N kills in $(( $(date +%s) - start )) s (seed $SEED): $total_bad with damage or a failed check"
[ "$total_bad" -eq 0 ]
