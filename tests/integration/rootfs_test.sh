#!/usr/bin/env bash
# The merged rootfs against `umoci unpack` of the same images, path by path and field by
# field (type, mode, owner, size, mtime, link, content, device, xattrs, hardlink groups),
# and the export tar against the merged tree.
source "$(dirname "$0")/lib.sh"
: "${TREE_LIST:?set TREE_LIST to the tree_list tool}"

key() { tr '/:' '__' <<<"$1"; }

compare_with_umoci() {  # compare_with_umoci NAME LAYOUT:TAG
  local name=$1 image=$2 k; k=$(key "$1")
  local dir=$SCRATCH/unpack-$k
  set -- "$k"
  umoci unpack --image "$image" "$dir" >/dev/null
  "$TREE_LIST" "$IMAGEFS_STORE" "$name" | LC_ALL=C sort > "$SCRATCH/$1.ours"
  python3 "$TESTS_DIR/list_fs.py" dir "$dir/rootfs" | LC_ALL=C sort > "$SCRATCH/$1.umoci"
  # umoci creates the rootfs directory itself and the parents no tar lists, with the
  # unpack time as mtime: those mtimes (marked IMPLIED by tree_list) are not compared.
  awk -F'|' -v OFS='|' 'NR == FNR { if ($7 == "IMPLIED") implied[$1] = 1; next }
                         $1 in implied || $1 == "." { $7 = "IMPLIED" } { print }' \
    "$SCRATCH/$1.ours" "$SCRATCH/$1.umoci" > "$SCRATCH/$1.umoci-masked"
  awk -F'|' -v OFS='|' '$1 == "." { $7 = "IMPLIED" } { print }' "$SCRATCH/$1.ours" > "$SCRATCH/$1.ours-masked"
  if diff "$SCRATCH/$1.ours-masked" "$SCRATCH/$1.umoci-masked" > "$SCRATCH/$1.diff"; then
    echo "ok: $name matches umoci unpack ($(wc -l < "$SCRATCH/$1.ours") paths)"
  else
    fail "$name differs from umoci unpack:"; cat "$SCRATCH/$1.diff" >&2
  fi
}

compare_export() {  # compare_export NAME
  local name=$1
  set -- "$(key "$1")"
  "$IMAGEFS" export "$name" --rootfs -o "$SCRATCH/$1-export.tar"
  python3 "$TESTS_DIR/list_fs.py" tar "$SCRATCH/$1-export.tar" | LC_ALL=C sort > "$SCRATCH/$1.tar-list"
  # The export writes an implied directory with mtime 0.
  if diff <(sed 's/|IMPLIED|/|0.0|/' "$SCRATCH/$1.ours") "$SCRATCH/$1.tar-list" > "$SCRATCH/$1.tdiff"; then
    echo "ok: $1 export holds the merged tree"
  else
    fail "$1 export differs:"; cat "$SCRATCH/$1.tdiff" >&2
  fi
  check_eq "$1: tar -tvf lists every path" "$(wc -l < "$SCRATCH/$1.ours")" "$(tar -tvf "$SCRATCH/$1-export.tar" | wc -l)"
}

# image_from_layers NAME:TAG LAYOUT-TAG LAYER...: an image of hand-made layer tars
# (layer-LAYER.tar, made by make_layer.py unless it exists), loaded into the store.
image_from_layers() {
  local ref=$1 tag=$2 layer; shift 2
  umoci new --image "oci:$tag" >/dev/null
  for layer in "$@"; do
    [ -f "layer-$layer.tar" ] || python3 "$TESTS_DIR/make_layer.py" "layer-$layer.tar" "$layer"
    umoci raw add-layer --image "oci:$tag" "layer-$layer.tar" >/dev/null
  done
  skopeo copy -q "oci:oci:$tag" "docker-archive:$tag.tar:$ref"
  "$IMAGEFS" load -q "$tag.tar" >/dev/null
}

cd "$SCRATCH"
umoci init --layout oci >/dev/null

# ---- 1. An image made by the tools: every attribute, then whiteouts and replacements.
umoci new --image oci:tools >/dev/null
umoci unpack --image oci:tools b >/dev/null
r=b/rootfs
mkdir -p $r/bin $r/etc/opq $r/dev $r/tmp $r/data/dir-becomes-file $r/usr/lib
printf '#!/bin/sh\n' > $r/bin/suid && chmod 4755 $r/bin/suid
printf 'g' > $r/bin/sgid && chmod 2711 $r/bin/sgid
chmod 1777 $r/tmp
printf 'secret' > $r/etc/shadow && chmod 000 $r/etc/shadow
printf 'big ids' > $r/etc/bigid && chown 4294967294:4294967294 $r/etc/bigid
printf 'ns' > $r/etc/nsec && touch -d '2019-05-06 07:08:09.123456789' $r/etc/nsec
printf 'cap' > $r/bin/ping && setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= $r/bin/ping
setfattr -n user.note -v 'hello xattr' $r/bin/ping
mknod $r/dev/null c 1 3 && mknod $r/dev/loop0 b 7 0 && mkfifo $r/dev/fifo
echo one > $r/etc/one && ln $r/etc/one $r/etc/one-link && ln $r/etc/one $r/usr/lib/one-again
ln -s ../etc/one $r/bin/symlink && ln -s /abs/dangling $r/bin/dangling
long=$(printf 'n%.0s' $(seq 1 200)); mkdir -p "$r/$(printf 'd%.0s' $(seq 1 150))" && echo long > "$r/$(printf 'd%.0s' $(seq 1 150))/$long"
echo bytes > $r/$'\xff\xfe-latin1-\xe9'
truncate -s 3M $r/usr/lib/sparse && printf 'DATA' | dd of=$r/usr/lib/sparse bs=1 seek=1500000 conv=notrunc status=none
echo lower > $r/etc/opq/lower && echo gone > $r/etc/gone && echo file > $r/data/file-becomes-dir
echo x > $r/data/dir-becomes-file/x
umoci repack --refresh-bundle --image oci:tools b >/dev/null
rm $r/etc/gone $r/etc/one                       # whiteouts (one's other names keep the data)
rm -rf $r/etc/opq && mkdir $r/etc/opq && echo upper > $r/etc/opq/upper   # opaque
rm $r/data/file-becomes-dir && mkdir $r/data/file-becomes-dir && echo y > $r/data/file-becomes-dir/y
rm -rf $r/data/dir-becomes-file && echo now-a-file > $r/data/dir-becomes-file
echo changed > $r/usr/lib/one-again.tmp && mv $r/usr/lib/one-again.tmp $r/usr/lib/one-again  # breaks the link
umoci repack --refresh-bundle --image oci:tools b >/dev/null
skopeo copy -q oci:oci:tools docker-archive:tools.tar:test/tools:1
"$IMAGEFS" load -q tools.tar >/dev/null
compare_with_umoci test/tools:1 oci:tools
compare_export test/tools:1
check_eq "etc/one-link, the last name of its inode, keeps the data alone" "$(echo one | sha256sum | cut -c1-64)|-|-|-" "$(grep '^etc/one-link|' "$SCRATCH/test_tools_1.ours" | cut -d'|' -f9-)"

# ---- 2. Hand-made layers: orderings and cases tools rarely write.
# GNU tar writes the PAX (sparse 1.0, SCHILY.xattr, nanosecond mtimes) and old GNU
# (sparse, long names) layers.
mkdir -p g1/gnupax g2/oldgnu
truncate -s 2M g1/gnupax/sparse && printf 'X' | dd of=g1/gnupax/sparse bs=1 seek=1000000 conv=notrunc status=none
setfattr -n user.pax -v 'pax xattr' g1/gnupax/sparse
touch -d '2018-01-01 01:02:03.987654321' g1/gnupax/sparse g1/gnupax
tar --format=pax -S --xattrs --xattrs-include='*' --numeric-owner -cf layer-gnupax.tar -C g1 gnupax
truncate -s 1M g2/oldgnu/sparse && printf 'tail' >> g2/oldgnu/sparse
echo long > "g2/oldgnu/$(printf 'L%.0s' $(seq 1 180))"
tar --format=gnu -S --numeric-owner -cf layer-oldgnu.tar -C g2 oldgnu
image_from_layers test/awkward:1 awkward base awkward gnupax later
compare_with_umoci test/awkward:1 oci:awkward
compare_export test/awkward:1
ours=$SCRATCH/test_awkward_1.ours
check_contains "links/to-lower keeps the deleted target's data" "$(printf 'lower target\n' | sha256sum | cut -c1-64)" "$(grep '^links/to-lower|' "$ours")"
check_eq "whiteout names are never shown" 0 "$(grep -c '\.wh\.' "$ours")"
check_contains "PAX nanosecond mtime and user xattr" "|1514768523.987654321|-|" "$(grep '^gnupax/sparse|' "$ours")"
check_contains "PAX xattr kept" "user.pax=$(printf 'pax xattr' | xxd -p)" "$(grep '^gnupax/sparse|' "$ours")"
check_contains "PAX sparse content" "|$(sha256sum < g1/gnupax/sparse | cut -c1-64)|" "$(grep '^gnupax/sparse|' "$ours")"

# ---- 2b. Where umoci is no reference. umoci 0.4.7 (1) fails on a hardlink listed before
# its target ("link: no such file or directory"; GNU tar fails likewise), while the OCI
# rules only say the link names the target's inode, so imagefs resolves it at the end of
# the layer; (2) follows a symlink when resolving a whiteout's path, deleting a file the
# spec keeps; (3) cannot read old-GNU sparse members ("unknown typeflag 'S'").
image_from_layers test/early:1 early base early oldgnu later
"$TREE_LIST" "$IMAGEFS_STORE" test/early:1 | LC_ALL=C sort > early.ours
late_sha=$(printf 'late target\n' | sha256sum | cut -c1-64)
check_contains "links/early shows the target's data" "|f|0640|0|0|12|1600000000.0|-|$late_sha|" "$(grep '^links/early|' early.ours)"
check_contains "links/late was overwritten by the next layer" "$(printf 'overwritten\n' | sha256sum | cut -c1-64)" "$(grep '^links/late|' early.ours)"
check_eq "so links/early is alone in its inode" "-" "$(grep '^links/early|' early.ours | awk -F'|' '{print $NF}')"
check_eq "a whiteout through a symlink is not followed" 1 "$(grep -c '^base/realdir/inside|' early.ours)"
check_contains "old GNU sparse: size and content" "|f|0644|0|0|1048580|" "$(grep '^oldgnu/sparse|' early.ours)"
check_contains "old GNU sparse: content" "|$(sha256sum < g2/oldgnu/sparse | cut -c1-64)|" "$(grep '^oldgnu/sparse|' early.ours)"
check_eq "old GNU long name" 1 "$(grep -c "^oldgnu/$(printf 'L%.0s' $(seq 1 180))|" early.ours)"

# ---- 3. Sixty layers, each overwriting and deleting files of the ones below.
umoci new --image oci:deep >/dev/null
umoci unpack --image oci:deep d >/dev/null
for i in $(seq 1 60); do
  mkdir -p d/rootfs/churn/dir$((i % 7))
  echo "layer $i" > d/rootfs/churn/file$i
  echo "layer $i overwrites" > d/rootfs/churn/shared
  [ $i -gt 2 ] && rm -f d/rootfs/churn/file$((i - 2))
  [ $((i % 5)) -eq 0 ] && rm -rf d/rootfs/churn/dir$(((i + 3) % 7))
  echo "$i" > d/rootfs/churn/dir$((i % 7))/f$i
  umoci repack --refresh-bundle --image oci:deep d >/dev/null
done
skopeo copy -q oci:oci:deep docker-archive:deep.tar:test/deep:60
"$IMAGEFS" load -q deep.tar >/dev/null
check_eq "60 layers" 60 "$("$IMAGEFS" inspect test/deep:60 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["RootFS"]["Layers"]))')"
compare_with_umoci test/deep:60 oci:deep
compare_export test/deep:60
finish
