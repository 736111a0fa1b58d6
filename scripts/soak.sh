#!/usr/bin/env bash
# Soak: MINUTES of 16 concurrent readers walking and reading the stable images through one
# mount (find, cat, tar -c, cp -a, a chroot running sh -c), every byte checked against the
# sums of `imagefs export --rootfs`, while imports through import/, CLI loads, tag/untag/rm
# and lazy pulls from a registry behind a fault-injecting proxy (resets, 500s, 429s, slow
# and truncated bodies) run in loops (scripts/soak_load.py). Then: zero wrong bytes, zero
# unexpected errors, the daemon's fd count and RSS within 10 % of where they stood after a
# warm-up (half the run, at most 5 minutes, of the whole workload), `imagefs check` clean.
# Usage: scripts/soak.sh MINUTES   (IMAGEFS=binary; SOAK_READERS=16)
set -uo pipefail
MINUTES=${1:?usage: scripts/soak.sh MINUTES}
here=$(cd "$(dirname "$0")" && pwd)
export IMAGEFS=${IMAGEFS:-$here/../build/fusefs/imagefs}
[ -x "$IMAGEFS" ] || { echo "soak.sh: no imagefs binary at $IMAGEFS (scripts/build.sh)" >&2; exit 2; }
source "$here/../tests/integration/lib.sh"
set +e
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"
echo "soak.sh: $MINUTES min, imagefs $("$IMAGEFS" --version | cut -d' ' -f2-)"

# ---- Images: stable ones for the readers, churn ones for the writers, one in a registry.
fx=$SCRATCH/fx
bash "$TESTS_DIR/make_fixtures.sh" "$fx" >/dev/null || exit 2
bash "$here/make_sample_image.sh" "$SCRATCH/busybox.tar" soak/busybox:1 || exit 2
python3 "$here/make_many_files_image.py" "$SCRATCH/many.tar" soak/many:1 5000 8 >/dev/null
python3 "$here/make_many_files_image.py" "$SCRATCH/churn.tar" soak/churn:1 1500 3 >/dev/null
python3 "$here/make_many_files_image.py" "$SCRATCH/churn2.tar" soak/churn2:1 1000 2 >/dev/null
python3 "$here/make_many_files_image.py" "$SCRATCH/remote.tar" soak/remote:1 3000 5 >/dev/null
for t in "$fx/docker.tar" "$SCRATCH/busybox.tar" "$SCRATCH/many.tar"; do "$IMAGEFS" load -q "$t" >/dev/null || exit 2; done
id_of() { "$IMAGEFS" --store "${2:-$IMAGEFS_STORE}" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"][7:])'; }
# Reference sums from export --rootfs (the tree's own export, not the mount's reads).
sums_of() {  # sums_of NAME [STORE]: {"path": sha256} of the rootfs's regular files
  "$IMAGEFS" --store "${2:-$IMAGEFS_STORE}" export --rootfs "$1" | python3 -c '
import hashlib, json, sys, tarfile
sums = {}
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
    for m in t:
        name = m.name[2:] if m.name.startswith("./") else m.name
        if m.isfile():
            sums[name] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
        elif m.islnk():
            link = m.linkname[2:] if m.linkname.startswith("./") else m.linkname
            sums[name] = sums[link]
json.dump(sums, sys.stdout)'
}
images_json=$SCRATCH/images.json
{
  echo "["
  sep=""
  for name in example/img:1 soak/busybox:1 soak/many:1; do
    shell=""
    [ "$name" = soak/busybox:1 ] && shell=", \"shell\": $("$IMAGEFS" export --rootfs "$name" | tar -t | grep -c '^\./bin/.')"
    echo "$sep{\"id\": \"$(id_of "$name")\", \"sums\": $(sums_of "$name")$shell}"
    sep=","
  done
  echo "]"
} > "$images_json"
"$IMAGEFS" --store "$SCRATCH/side" load -q "$SCRATCH/churn.tar" >/dev/null
churn_id=$(id_of soak/churn:1 "$SCRATCH/side")
"$IMAGEFS" --store "$SCRATCH/side" load -q "$SCRATCH/remote.tar" >/dev/null
sums_of soak/remote:1 "$SCRATCH/side" > "$SCRATCH/remote-sums.json"

REG=$(free_port); PROXY=$(free_port)
start_registry "$REG" "$SCRATCH/registry" "" || exit 2
start_proxy "$PROXY" "127.0.0.1:$REG" || exit 2
skopeo copy -q --dest-tls-verify=false "docker-archive:$SCRATCH/remote.tar" "docker://127.0.0.1:$REG/soak/remote:1" || exit 2

# ---- The mount, warmed up: every stable image walked and read once.
m=$SCRATCH/mnt
start_mount "$m" || exit 2
daemon=$MOUNT_PID
fds() { ls "/proc/$daemon/fd" | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$daemon/status"; }
for id in $(python3 -c 'import json,sys; [print(i["id"]) for i in json.load(open(sys.argv[1]))]' "$images_json"); do
  tar -C "$m/images/$id/rootfs" -cf - . | cat >/dev/null
done
sleep 2
fd0=$(fds); rss0=$(rss)
echo "after reading every image once: $fd0 fds, $((rss0 / 1024)) MiB RSS"

python3 - "$SCRATCH/soak.json" <<EOF
import json, sys
json.dump({"mount": "$m", "imagefs": "$IMAGEFS", "scratch": "$SCRATCH",
           "seconds": int(float("$MINUTES") * 60), "readers": int("${SOAK_READERS:-16}"),
           "daemon_pid": $daemon, "warmup": min(300, int(float("$MINUTES") * 60) // 2),
           "images": json.load(open("$images_json")),
           "churn_tar": "$SCRATCH/churn.tar", "churn_id": "$churn_id",
           "churn2_tar": "$SCRATCH/churn2.tar", "churn2_ref": "soak/churn2:1",
           "proxy_port": $PROXY, "remote_path": "127.0.0.1:$PROXY/soak/remote/1",
           "remote_ref": "127.0.0.1:$PROXY/soak/remote:1",
           "remote_sums": json.load(open("$SCRATCH/remote-sums.json"))}, open(sys.argv[1], "w"))
EOF
start=$(date +%s)
python3 "$here/soak_load.py" "$SCRATCH/soak.json" > "$SCRATCH/result.json"
load_rc=$?
elapsed=$(( $(date +%s) - start ))
sleep 5  # let the daemon settle: writers are done, caches may drop what they pinned
fd1=$(fds); rss1=$(rss)
cat "$m/.imagefs/memory" > "$SCRATCH/memory-end.json"
stop_mount "$m" "$daemon"
check=$("$IMAGEFS" check 2>&1); check_rc=$?

python3 - "$SCRATCH/result.json" "$SCRATCH/memory-end.json" "$load_rc" "$elapsed" "$fd0" "$fd1" "$rss0" "$rss1" "$check_rc" <<'EOF'
import json, sys
path, memory_end, load_rc, elapsed, fd0, fd1, rss0, rss1, check_rc = *sys.argv[1:3], *map(int, sys.argv[3:])
try:
    r = json.load(open(path))
except Exception:
    print(f"the workload did not finish (exit {load_rc})"); sys.exit(1)
total = sum(v for k, v in r["ops"].items() if k not in ("fault",))
print(f"{elapsed} s, {total} operations: " + ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items())))
print(f"errors: {len(r['errors'])}, wrong bytes: {r['wrong_bytes']}")
for e in r["errors"][:20]:
    print("  " + e)
b = r["baseline"]
within = lambda a, b: b <= a * 1.10 + 2  # +2: the mount's own fds come and go (a pull's blob)
steady = within(b["fds"], fd1) and rss1 <= b["rss_kib"] * 1.10
print(f"daemon fds {fd0} (after reading every image) -> {b['fds']} (after the warm-up) -> "
      f"{fd1} (end); RSS {rss0 // 1024} -> {b['rss_kib'] // 1024} -> {rss1 // 1024} MiB: "
      f"{'within' if steady else 'NOT within'} 10 % of the warm-up's")
def mem(m):
    mib = lambda k, d=1024: f"{m.get(k, 0) // d / 1024:.1f}" if k in m else "?"
    return (f"RSS {mib('VmRSS_kib', 1)} MiB = anon {mib('RssAnon_kib', 1)} + file {mib('RssFile_kib', 1)}"
            f" (mapped trees, binary); heap in use {mib('heap_in_use_bytes', 1024)} MiB")
try:
    end = json.load(open(memory_end))
except Exception:
    end = {}
print(f"after the warm-up: {mem(b.get('memory', {}))}")
print(f"at the end:        {mem(end)}")
print("each minute, RSS anon/file and heap in use (MiB): " + ", ".join(
    f"{t['s'] // 60}m {t.get('RssAnon_kib', 0) // 1024}/{t.get('RssFile_kib', 0) // 1024}/"
    f"{t.get('heap_in_use_bytes', 0) >> 20}" for t in r.get("timeline", [])))
print("imagefs check: " + ("clean" if check_rc == 0 else "NOT clean"))
ok = not r["errors"] and r["wrong_bytes"] == 0 and steady and check_rc == 0
print("soak: " + ("passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
EOF
rc=$?
[ "$check_rc" -eq 0 ] || echo "$check"
exit $rc
