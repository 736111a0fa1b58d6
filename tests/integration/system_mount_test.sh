#!/usr/bin/env bash
# Mounted the way file systems are mounted: `mount -t fuse.imagefs`, an fstab line run with
# `mount --fstab`, `umount`, a dead mountpoint taken over, the systemd unit's readiness
# protocol; and mounted by a user who is not root (import by cp, pull, cp -a out).
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null
fx=$SCRATCH/fx
umoci unpack --image "$fx/oci:img" "$SCRATCH/ref" >/dev/null  # the reference rootfs
keep=$(cat "$SCRATCH/ref/rootfs/etc/keep")
store=$SCRATCH/store
"$IMAGEFS" --store "$store" load -q "$fx/docker.tar" >/dev/null
id=$("$IMAGEFS" --store "$store" images --no-trunc --format json |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["ID"][7:])')

# mount.fuse3 runs the program named by the type's subtype from the default PATH
# (mount(8) runs helpers without the caller's PATH): put ours there unless one is installed.
if [ ! -e /usr/local/bin/imagefs ]; then
  ln -s "$IMAGEFS" /usr/local/bin/imagefs
  cleanup_hooks+=('[ "$(readlink /usr/local/bin/imagefs)" = "$IMAGEFS" ] && rm -f /usr/local/bin/imagefs')
  fstype=fuse.imagefs; source_of() { echo "$1"; }
else
  echo "note: /usr/local/bin/imagefs is someone else's: testing the type 'fuse' form (PROGRAM#STORE)"
  fstype=fuse; source_of() { echo "$IMAGEFS#$1"; }
fi
daemons_of() { pgrep -f -- "imagefs.* $1( |$)" || true; }  # the daemonized imagefs serving MOUNTPOINT
unmount_all() { mounted "$1" && umount -l "$1"; for p in $(daemons_of "$1"); do kill "$p"; done; }

# ---- mount -t fuse.imagefs STORE MOUNTPOINT -o ...
m=$SCRATCH/mnt; mkdir -p "$m"
cleanup_hooks+=("unmount_all '$m'")
run mount -t "$fstype" "$(source_of "$store")" "$m" -o ro,allow_other,nosuid
check_eq "mount -t $fstype" 0 "$rc"
check_eq "returns with the mount up, served from the background" "yes" \
  "$(mounted "$m" && [ -n "$(daemons_of "$m")" ] && echo yes)"
check_eq "serves the store" "$id" "$(ls "$m/images")"
check_contains "mount options as asked" "nosuid" "$(findmnt -n -o OPTIONS "$m")"
check_eq "and reads" "$keep" "$(cat "$m/images/$id/rootfs/etc/keep")"
import_mount=$(readlink "$m/import")
run umount "$m"; check_eq "umount" 0 "$rc"
for _ in $(seq 1 50); do [ -z "$(daemons_of "$m")" ] && break; sleep 0.1; done
check_eq "stops the daemon" "" "$(daemons_of "$m")"
check_eq "and its import/ mount" "no" "$(mounted "$import_mount" && echo yes || echo no)"

run mount -t "$fstype" "$(source_of "$store")" "$m" -o allow_other,bogus=1
check_eq "an unknown option fails the mount" "no" "$( [ "$rc" -ne 0 ] && ! mounted "$m" && echo no)"
check_contains "naming it" 'unknown mount option "bogus=1"' "$out"

# ---- an /etc/fstab line (mount --fstab FILE), and a dead mountpoint taken over.
echo "$(source_of "$store") $m $fstype allow_other,opens=daemon,nofail,_netdev 0 0" > "$SCRATCH/fstab"
run mount --fstab "$SCRATCH/fstab" "$m"; check_eq "mount of an fstab line" 0 "$rc"
check_eq "serves the store" "$id" "$(ls "$m/images")"
kill -9 $(daemons_of "$m")
for _ in $(seq 1 50); do [ -z "$(daemons_of "$m")" ] && break; sleep 0.1; done
run ls "$m"; check_contains "a killed daemon leaves a dead mountpoint" "not connected" "$out"
run mount --fstab "$SCRATCH/fstab" "$m"; check_eq "mounting again takes it over" 0 "$rc"
check_eq "and serves" "$keep" "$(cat "$m/images/$id/rootfs/etc/keep")"
run umount "$m"; check_eq "umount" 0 "$rc"
for _ in $(seq 1 50); do [ -z "$(daemons_of "$m")" ] && break; sleep 0.1; done
check_eq "no daemon left" "" "$(daemons_of "$m")"

# ---- The systemd unit: valid, and Type=notify readiness as systemd would see it.
unit=$SCRATCH/imagefs@mnt.service
sed "s|/usr/local/bin/imagefs|$IMAGEFS|" "$TESTS_DIR/../../scripts/systemd/imagefs@.service" > "$unit"
if command -v systemd-analyze >/dev/null; then
  run systemd-analyze verify "$unit"; check_eq "systemd-analyze verify of the unit" "0|" "$rc|$out"
fi
exec_start=$(sed -n 's/^ExecStart=//p' "$unit" | sed "s|\$IMAGEFS_MOUNT_OPTIONS|-oallow_other|; s|%f|$m|")
python3 - "$SCRATCH/notify.sock" "$SCRATCH/notify.log" "$m" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        msg = s.recv(4096).decode()
        # What a unit waiting for READY=1 would find at that moment.
        state = "answers" if msg.startswith("READY") and os.listdir(sys.argv[3]) else ""
        log.write(msg.replace("\n", " ") + " " + state + "\n"); log.flush()
        if msg.startswith("STOPPING"): break
EOF
listener=$!
cleanup_hooks+=("kill_child $listener")
for _ in $(seq 1 50); do [ -S "$SCRATCH/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$SCRATCH/notify.sock IMAGEFS_STORE=$store $exec_start 2>>"$SCRATCH/daemon.log" &
service=$!
cleanup_hooks+=("stop_mount '$m' $service")
for _ in $(seq 1 100); do grep -q READY "$SCRATCH/notify.log" 2>/dev/null && break; sleep 0.1; done
check_contains "READY=1 once the mount answers" "READY=1 MAINPID=$service answers" "$(cat "$SCRATCH/notify.log" 2>/dev/null)"
kill -TERM "$service"; set +e; wait "$service"; rc=$?; set -e
check_eq "a stop (SIGTERM) exits 0" 0 "$rc"
check_eq "and leaves no mount behind" "no" "$(mounted "$m" && echo yes || echo no)"
wait "$listener" || true
check_contains "saying STOPPING=1" "STOPPING=1" "$(cat "$SCRATCH/notify.log")"

# ---- Not root: a user's own store and mount, /dev/fuse 0666 and setuid fusermount3 as
# Debian ships them.
fuse_mode=$(stat -c %a /dev/fuse)
chmod 666 /dev/fuse
cleanup_hooks+=("chmod $fuse_mode /dev/fuse")
user_home=$SCRATCH/home; mkdir -p "$user_home/bin"
cp "$IMAGEFS" "$user_home/bin/imagefs"
chown -R 65534:65534 "$user_home"
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups env -u IMAGEFS_STORE -u XDG_DATA_HOME -u XDG_CONFIG_HOME -u XDG_RUNTIME_DIR HOME="$user_home" "$@"; }
ufs=$user_home/bin/imagefs
um=$user_home/mnt; as_user mkdir -p "$um"
cleanup_hooks+=("as_user fusermount3 -u -z '$um' 2>/dev/null")
run as_user "$ufs" mount -d "$um"; check_eq "a user mounts (fusermount3)" 0 "$rc"
check_eq "the mount's directories are theirs" "nobody" \
  "$(as_user stat -c %U "$um" "$um/images" "$um/import/" | sort -u | xargs)"
as_user cp "$fx/docker.tar" "$um/import/"; check_eq "cp of a docker save into import/" 0 $?
check_eq "loads it into the user's store" "$id" "$(as_user ls "$um/images")"
check_eq "in their home" "yes" "$([ -d "$user_home/.local/share/imagefs" ] && echo yes)"
check_eq "image content keeps its owners" "root" "$(as_user stat -c %U "$um/images/$id/rootfs/etc/keep")"

PORT=$(free_port)
start_registry "$PORT" "$SCRATCH/registry" ""
skopeo copy -q --dest-tls-verify=false "oci:$fx/oci:img" "docker://127.0.0.1:$PORT/fx/img:1"
run as_user "$ufs" pull -q "127.0.0.1:$PORT/fx/img:1"; check_eq "a user pulls" 0 "$rc"
check_eq "shown in the mount's tags" "$keep" "$(as_user cat "$um/tags/127.0.0.1:$PORT/fx/img/1/rootfs/etc/keep")"

run as_user cp -a "$um/images/$id/rootfs" "$user_home/out"
check_eq "cp -a out: only the files the image keeps from its non-owners are refused" \
  "etc/private etc/shadowed" "$(grep -o "rootfs/[^']*" <<<"$out" | sed 's|rootfs/||' | sort | xargs)"
check_eq "everything else is copied, byte for byte" "" \
  "$(cd "$SCRATCH/ref/rootfs" && find . -type f ! -path ./etc/private ! -path ./etc/shadowed -exec cmp {} "$user_home/out/{}" \; 2>&1)"
run as_user fusermount3 -u "$um"; check_eq "the user unmounts" 0 "$rc"

# -o uid=,gid=: every entry shown as the user's, so owner-only (0600) files read too.
as_user "$ufs" mount -d "$um" -o "uid=65534,gid=65534"
check_eq "with -o uid=: a 0600 root file reads" "private" "$(as_user cat "$um/images/$id/rootfs/etc/private")"
as_user fusermount3 -u "$um"
finish
