#!/usr/bin/env bash
# Real mounts: every entry of the tree, import through the file system, permissions,
# damaged blobs, dead mountpoints, and a rootfs that looks exactly like the merged tree.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mount_lib.sh"
: "${TREE_LIST:?set TREE_LIST to the tree_list tool}"

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null
fx=$SCRATCH/fx
"$IMAGEFS" load -q "$fx/docker.tar" >/dev/null
"$IMAGEFS" load -q "$fx/legacy.tar" >/dev/null
id=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"][7:])')
m=$SCRATCH/mnt
start_mount "$m" -o allow_other
img=$m/images/$id

# ---- The tree.
check_eq "top level" "images import layers registry tags" "$(ls "$m" | xargs)"
check_contains "images/ lists the image" "$id" "$(ls "$m/images")"
check_eq "a unique prefix resolves" "$(ls "$img")" "$(ls "$m/images/${id:0:10}")"
check_eq "but is not listed" 0 "$(ls "$m/images" | grep -c "^${id:0:10}\$" || true)"
check_eq "image dir" "config.json image.tar layers rootfs" "$(ls "$img" | xargs)"
check_eq "config.json is the config, byte-exact" "$id" "$(sha256sum < "$img/config.json" | cut -c1-64)"
chains=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(" ".join(c[7:] for c in json.load(sys.stdin)[0]["ChainIDs"]))')
set -- $chains
check_eq "layers/0 links to the base layer" "../../../layers/$1" "$(readlink "$img/layers/0")"
check_eq "layers/1 links to the top layer" "../../../layers/$2" "$(readlink "$img/layers/1")"
check_eq "the links resolve" "diff layer.tar parent rootfs" "$(ls "$img/layers/1/" | xargs)"
check_eq "parent link" "../$1" "$(readlink "$m/layers/$2/parent")"
check_eq "a base layer has no parent" "diff layer.tar rootfs" "$(ls "$m/layers/$1" | xargs)"
diffs=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(" ".join(c[7:] for c in json.load(sys.stdin)[0]["RootFS"]["Layers"]))')
set -- $diffs
check_eq "layer.tar's sha256 is the DiffID" "$2" "$(sha256sum < "$img/layers/1/layer.tar" | cut -c1-64)"
if cmp -s "$img/layers/1/layer.tar" "$IMAGEFS_STORE/diffs/$2/layer.tar"; then echo "ok: layer.tar is the stored blob"; else fail "layer.tar differs from the blob"; fi
check_eq "diff/ shows the layer's whiteout as it is" "1" "$(ls -a "$img/layers/1/diff/etc" | grep -c '^\.wh\.one$')"
check_eq "diff/ shows whiteouts as the tar has them" "$(tar -tf "$img/layers/1/layer.tar" | grep -c '\.wh\.')" "$(find "$img/layers/1/diff" -name '.wh.*' | wc -l)"
check_eq "rootfs hides whited-out files" "0" "$(ls -a "$img/rootfs/etc" | grep -c '^one$' || true)"
check_eq "layers/<chain>/rootfs is merged up to there" "1" "$(ls "$img/layers/0/rootfs/etc" | grep -c '^one$')"
check_eq "tag link" "../../../../images/$id" "$(readlink "$m/tags/docker.io/example/img/1")"
check_eq "the legacy tag too" "1" "$(ls "$m/tags/docker.io/example/legacy" | grep -c '^v1$')"
check_contains "through the tag" "rootfs" "$(ls "$m/tags/docker.io/example/img/1/")"

# The rootfs as a user sees it equals the merged tree, every field (st_ino groups,
# xattrs, modes, owners, mtimes, contents).
"$TREE_LIST" "$IMAGEFS_STORE" example/img:1 | sed 's/|IMPLIED|/|0.0|/' | LC_ALL=C sort > "$SCRATCH/tree.list"
python3 "$TESTS_DIR/list_fs.py" dir "$img/rootfs" | LC_ALL=C sort > "$SCRATCH/mount.list"
if diff "$SCRATCH/tree.list" "$SCRATCH/mount.list" >&2; then echo "ok: mounted rootfs equals the merged tree ($(wc -l < "$SCRATCH/tree.list") paths)"; else fail "mounted rootfs differs"; fi
check_contains "getfattr shows the capability" "security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=" "$(getfattr -d -m - "$img/rootfs/bin/tool" 2>/dev/null)"
check_eq "hardlinks share st_ino" "$(stat -c %i "$img/rootfs/bin/hardlink")" "$(stat -c %i "$img/rootfs/bin/hardlink")"
check_eq "directory link count is 2 + subdirectories" "$((2 + $(find "$img/rootfs" -mindepth 1 -maxdepth 1 -type d | wc -l)))" "$(stat -c %h "$img/rootfs")"
check_eq "setuid bit" "4755" "$(stat -c %a "$img/rootfs/bin/tool")"
check_eq "sticky bit" "1777" "$(stat -c %a "$img/rootfs/tmp")"
ino_before=$(stat -c %i "$img/rootfs/etc/keep")

# Copies made with ordinary tools carry everything.
cp -a "$img/rootfs" "$SCRATCH/cp-copy"
python3 "$TESTS_DIR/list_fs.py" dir "$SCRATCH/cp-copy" | LC_ALL=C sort | cut -d'|' -f1-11 > "$SCRATCH/cp.list"
check_eq "cp -a copies every field" "" "$(diff <(cut -d'|' -f1-11 "$SCRATCH/mount.list") "$SCRATCH/cp.list")"
rsync -aHAX "$img/rootfs/" "$SCRATCH/rsync-copy/"
check_eq "rsync -aHAX copies every field" "" "$(diff <(cut -d'|' -f1-11 "$SCRATCH/mount.list") <(python3 "$TESTS_DIR/list_fs.py" dir "$SCRATCH/rsync-copy" | LC_ALL=C sort | cut -d'|' -f1-11))"
check_eq "tar -c lists every path" "$(wc -l < "$SCRATCH/tree.list")" "$(tar -C "$img/rootfs" -c . | tar -t | wc -l)"
check_eq "find sees every path" "$(wc -l < "$SCRATCH/tree.list")" "$(find "$img/rootfs" | wc -l)"
check_eq "du agrees with the copy" "$(du -s --apparent-size "$SCRATCH/cp-copy" | cut -f1)" "$(du -s --apparent-size "$img/rootfs" | cut -f1)"
run stat -f "$m"; check_eq "statfs" 0 "$rc"

# ---- Read-only everywhere but import/.
run touch "$img/rootfs/newfile"; check_contains "create outside import/ is refused" "Read-only file system" "$out"
run mkdir "$m/images/x"; check_contains "mkdir is refused" "Read-only file system" "$out"
run rm "$img/rootfs/etc/keep"; check_contains "unlink is refused" "Read-only file system" "$out"
run sh -c "echo x >> '$img/rootfs/etc/keep'"; check_contains "writing is refused" "Read-only file system" "$out"

# ---- Permissions are the kernel's (default_permissions): nobody cannot read a 0600 file.
run setpriv --reuid=65534 --regid=65534 --clear-groups cat "$img/rootfs/etc/private"
check_contains "nobody is refused a 0600 root file" "Permission denied" "$out"
run setpriv --reuid=65534 --regid=65534 --clear-groups cat "$img/rootfs/etc/keep"
check_eq "nobody reads a 0644 file" "changed" "$out"

# ---- Import through the file system.
cp "$fx/oci.tar" "$m/import/"; check_eq "cp into import/ succeeds" 0 $?
check_eq "the file vanishes after loading" "" "$(ls "$m/import")"
check_eq "the new tag is there at once" "../../../../images/$id" "$(readlink "$m/tags/docker.io/example/img/2")"
head -c 50000 "$fx/docker.tar" > "$SCRATCH/cut.tar"
run cp "$SCRATCH/cut.tar" "$m/import/cut.tar"
check_eq "a failed import fails cp" 1 "$rc"
check_contains "with EIO" "Input/output error" "$out"
check_eq "and leaves NAME.error" "cut.tar.error" "$(ls "$m/import")"
check_contains "saying why" "truncated" "$(cat "$m/import/cut.tar.error")"
rm "$m/import/cut.tar.error"; check_eq "which can be removed" "" "$(ls "$m/import")"
"$IMAGEFS" untag example/img:2 >/dev/null
cat "$fx/oci.tar" > "$m/import/redirected.tar"; check_eq "a shell redirect imports too" 0 $?
check_eq "the tag is back" "1" "$(ls "$m/tags/docker.io/example/img" | grep -c '^2$')"

# All three formats through cp (the OCI archive above): a legacy save, whose top image is
# removed first so that its load really happens, and a docker save.
"$IMAGEFS" rm example/legacy:v1 >/dev/null
cp "$fx/legacy.tar" "$m/import/legacy.tar"; check_eq "legacy import by cp" 0 $?
check_eq "the legacy tag appears" "1" "$(ls "$m/tags/docker.io/example/legacy" | grep -c '^v1$')"
cp "$fx/docker.tar" "$m/import/"; check_eq "docker-save import by cp" 0 $?
check_eq "nothing left in import/" "" "$(ls "$m/import")"

# A reader killed in the middle of a read harms nothing.
big=$(find "$img/rootfs" -type f -size +100k -print -quit)
cat "$big" > /dev/null & reader=$!
kill -KILL "$reader" 2>/dev/null; wait "$reader" 2>/dev/null || true
check_eq "reads still work after a killed reader" "$(sha256sum < "$SCRATCH/cp-copy/${big#"$img/rootfs/"}")" "$(sha256sum < "$big")"

# ---- The CLI's changes show up while mounted.
"$IMAGEFS" tag example/img:1 fresh/name:now >/dev/null
check_eq "a CLI tag appears" "../../../../images/$id" "$(readlink "$m/tags/docker.io/fresh/name/now")"
"$IMAGEFS" untag fresh/name:now >/dev/null
sleep 1.1  # the synthetic directories' entry timeout
check_eq "and goes" "" "$(ls "$m/tags/docker.io/fresh/name" 2>/dev/null)"

# ---- image.tar loads into another store as the same image.
cp "$img/image.tar" "$SCRATCH/saved.tar"
check_eq "image.tar has its st_size" "$(stat -c %s "$img/image.tar")" "$(stat -c %s "$SCRATCH/saved.tar")"
run env IMAGEFS_STORE="$SCRATCH/store2" "$IMAGEFS" load "$SCRATCH/saved.tar"
check_contains "image.tar loads" "Loaded image: example/img:1" "$out"
check_eq "to the same ID" "sha256:$id" "$(IMAGEFS_STORE="$SCRATCH/store2" "$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"
check_eq "with the same rootfs" "" "$(diff "$SCRATCH/tree.list" <("$TREE_LIST" "$SCRATCH/store2" example/img:1 | sed 's/|IMPLIED|/|0.0|/' | LC_ALL=C sort))"
legacy=$("$IMAGEFS" inspect example/legacy:v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"][7:])')
cp "$m/images/$legacy/image.tar" "$SCRATCH/legacy-saved.tar"
run env IMAGEFS_STORE="$SCRATCH/store3" "$IMAGEFS" load "$SCRATCH/legacy-saved.tar"
check_eq "a legacy image's image.tar keeps its v1 ID" "sha256:$legacy" "$(IMAGEFS_STORE="$SCRATCH/store3" "$IMAGEFS" inspect example/legacy:v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"

# ---- A damaged blob: EIO on its files, a counted tag, no crash.
"$IMAGEFS" load -q "$fx/oci.tar" >/dev/null
python3 - "$SCRATCH/victim" <<'PY'
import io, os, sys, tarfile
root = sys.argv[1]
os.makedirs(root + "/data")
with open(root + "/data/big", "wb") as f:
    f.write(os.urandom(3 << 20))
PY
python3 "$TESTS_DIR/../../scripts/make_image_archive.py" "$SCRATCH/victim" "$SCRATCH/victim.tar" victim/img:1
"$IMAGEFS" load -q "$SCRATCH/victim.tar" >/dev/null
victim_diff=$("$IMAGEFS" inspect victim/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][0][7:])')
truncate -s 100000 "$IMAGEFS_STORE/diffs/$victim_diff/layer.tar"
run cat "$m/tags/docker.io/victim/img/1/rootfs/data/big"
check_contains "a truncated blob gives EIO" "Input/output error" "$out"
check_contains "counted in .imagefs/stats" '"blob_truncated": ' "$(cat "$m/.imagefs/stats")"
check_eq "and the daemon lives on" "$ino_before" "$(stat -c %i "$img/rootfs/etc/keep")"

# ---- Clean unmount on SIGTERM.
kill -TERM "$MOUNT_PID"
for i in $(seq 1 50); do mounted "$(realpath "$m")" || break; sleep 0.1; done
if mounted "$(realpath "$m")"; then fail "SIGTERM did not unmount"; else echo "ok: SIGTERM unmounts"; fi
set +e; wait "$MOUNT_PID"; status=$?; set -e
check_eq "and exits 0" 0 "$status"

# ---- A dead mountpoint (killed daemon) is detected and replaced.
start_mount "$m"
kill -KILL "$MOUNT_PID"; wait "$MOUNT_PID" 2>/dev/null || true
run stat -f "$m"; check_contains "a killed daemon leaves a dead mount" "not connected" "$out"
start_mount "$m" -o uid=4321,gid=4322
check_eq "remounted over it" "images import layers registry tags" "$(ls "$m" | xargs)"
check_eq "st_ino is stable across restarts" "$ino_before" "$(stat -c %i "$img/rootfs/etc/keep")"
check_eq "-o uid,gid present one owner" "4321:4322" "$(stat -c %u:%g "$img/rootfs/etc/keep")"
stop_mount "$m" "$MOUNT_PID"

# ---- -d backgrounds once the mount is up.
run "$IMAGEFS" mount -d "$m"; check_eq "daemon mode exits 0 with the mount up" 0 "$rc"
if mounted "$(realpath "$m")"; then echo "ok: mounted in the background"; else fail "daemon mode did not mount"; fi
fusermount3 -u "$m"
run "$IMAGEFS" mount -d "$SCRATCH/does-not-exist"; check_eq "a bad mountpoint fails" 1 "$rc"
finish
