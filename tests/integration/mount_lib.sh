# Mount helpers for integration tests: start the daemon in the foreground (as a job of
# this shell), wait for the kernel to list the mount, and always unmount and reap it.

mounted() { awk -v m="$1" '$5 == m' /proc/self/mountinfo | grep -q .; }

# start_mount MOUNTPOINT [imagefs mount options...]: sets MOUNT_PID. $MOUNT_OPENS, when
# set, picks --opens (kernel or daemon) for every mount of the test.
start_mount() {
  local mp=$1; shift
  mkdir -p "$mp" 2>/dev/null || true  # a dead mount (ENOTCONN) is imagefs's to recover
  "$IMAGEFS" --log-level "${MOUNT_LOG_LEVEL:-warn}" mount "$mp" ${MOUNT_OPENS:+--opens "$MOUNT_OPENS"} "$@" \
    2>>"$SCRATCH/daemon.log" &
  MOUNT_PID=$!
  cleanup_hooks+=("stop_mount '$mp' $MOUNT_PID")
  local i
  for i in $(seq 1 100); do
    # Listed and answering: a dead mount left by a killed daemon is listed too, and may
    # still list its root from the kernel's cache; statfs always reaches the daemon.
    mounted "$(realpath "$mp" 2>/dev/null || echo "$mp")" && stat -f "$mp" >/dev/null 2>&1 && return 0
    kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$SCRATCH/daemon.log" >&2; return 1; }
    sleep 0.1
  done
  echo "mount did not come up" >&2
  return 1
}

# our_daemon PID MOUNTPOINT: PID is still the daemon this shell started for MOUNTPOINT. A PID
# whose daemon already exited may belong to another process by now (another test's daemon
# when tests run in parallel): never signal that one.
our_daemon() {
  [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ] && tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline" | grep -qF -- "$2"
}

# stop_mount MOUNTPOINT PID: unmounts (lazily if busy) and reaps only our own daemon.
stop_mount() {
  local mp=$1 pid=$2
  if mounted "$(realpath "$mp" 2>/dev/null || echo "$mp")"; then fusermount3 -u -z "$mp" 2>/dev/null || true; fi
  if our_daemon "$pid" "$mp"; then
    local i
    for i in $(seq 1 50); do our_daemon "$pid" "$mp" || break; sleep 0.1; done
    our_daemon "$pid" "$mp" && kill "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
