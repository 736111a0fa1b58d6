#!/usr/bin/env bash
# A real Debian (debootstrap minbase, cached outside the repo): chroot into the mounted
# rootfs and run its programs (mmap'd binaries, the symlinked loader, exec bits), and
# check the merged tree against umoci unpack and the mount against the tree.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mount_lib.sh"
: "${TREE_LIST:?set TREE_LIST to the tree_list tool}"

archive=$(bash "$TESTS_DIR/make_debian.sh")
"$IMAGEFS" load -q "$archive" >/dev/null
m=$SCRATCH/mnt
start_mount "$m" -o allow_other  # so that nobody may enter it too
root=$m/tags/docker.io/test/debian/minbase/rootfs

run chroot "$root" /bin/sh -c 'cat /etc/debian_version'
check_eq "chroot runs /bin/sh" 0 "$rc"
check_contains "it is Debian 12" "12." "$out"
run chroot "$root" /bin/bash -c 'dpkg-query -W -f "\${Package}\n" | wc -l'
check_eq "dpkg runs" 0 "$rc"
[ "$out" -gt 50 ] && echo "ok: dpkg lists $out packages" || fail "dpkg lists only [$out]"
run chroot "$root" /usr/bin/env LC_ALL=C /bin/ls -l /lib64/ld-linux-x86-64.so.2
check_contains "the loader is reached through its symlink" "ld-linux-x86-64.so.2 ->" "$out"
check_eq "binaries read the same through the mount" "$(chroot "$root" /usr/bin/sha256sum /usr/bin/ls | cut -c1-64)" "$(sha256sum "$root/usr/bin/ls" | cut -c1-64)"
run chroot --userspec=65534:65534 "$root" /usr/bin/id -u; check_eq "programs run as nobody too" "65534" "$out"

# The merged tree against umoci unpack of the same image, and the mount against the tree.
skopeo copy -q "docker-archive:$archive" "oci:$SCRATCH/oci:debian"
umoci unpack --image "$SCRATCH/oci:debian" "$SCRATCH/unpacked" >/dev/null
"$TREE_LIST" "$IMAGEFS_STORE" test/debian:minbase | LC_ALL=C sort > "$SCRATCH/tree.list"
python3 "$TESTS_DIR/list_fs.py" dir "$SCRATCH/unpacked/rootfs" | LC_ALL=C sort > "$SCRATCH/umoci.list"
# The one field umoci sets itself: the rootfs directory's mtime.
mask_root() { awk -F'|' -v OFS='|' '$1 == "." { $7 = "ROOT" } { print }' "$1"; }
if diff <(mask_root "$SCRATCH/tree.list") <(mask_root "$SCRATCH/umoci.list") > "$SCRATCH/umoci.diff"; then
  echo "ok: merged tree equals umoci unpack ($(wc -l < "$SCRATCH/tree.list") paths)"
else
  fail "merged tree differs from umoci unpack"; head -20 "$SCRATCH/umoci.diff" >&2
fi
python3 "$TESTS_DIR/list_fs.py" dir "$root" | LC_ALL=C sort > "$SCRATCH/mount.list"
if diff "$SCRATCH/tree.list" "$SCRATCH/mount.list" > "$SCRATCH/mount.diff"; then
  echo "ok: the mount shows the merged tree"
else
  fail "mount differs from the tree"; head -20 "$SCRATCH/mount.diff" >&2
fi
finish
