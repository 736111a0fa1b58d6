#!/usr/bin/env bash
# Plain (gzip and zstd) images served while their layers download (--stream-unverified, off by
# default), from a docker-registry behind the test proxy: a file of the top layer is read
# before the image is registered, the tree shown equals the stored image's once it is, and
# a layer that does not match its DiffID reads as EIO and is never registered. Also: requests
# waiting on a registry do not hold the session loop's threads.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"

listing() { python3 "$TESTS_DIR/list_fs.py" dir "$1" | LC_ALL=C sort; }
# wait_for WHAT COMMAND...: polls (0.2 s) until COMMAND succeeds, 120 s at most.
wait_for() {
  local what=$1 i; shift
  for i in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "$what: timed out"
  return 1
}
stream_state() { python3 -c 'import json,sys; print(" ".join(s["state"] for s in json.load(open(sys.argv[1]))))' "$1/.imagefs/streams.json"; }
registered() { [ "$(ls "$1/images" | wc -l)" -ge 1 ]; }
# same_tree WHAT A B: the same names, attributes, xattrs and bytes.
same_tree() {
  check_eq "$1: listing" "$(listing "$3")" "$(listing "$2")"
  check_eq "$1: tar -c" "$(cd "$3" && tar --xattrs -cf - . | sha256sum)" "$(cd "$2" && tar --xattrs -cf - . | sha256sum)"
}

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null
REG=$(free_port)
start_registry "$REG" "$SCRATCH/registry" ""
H=127.0.0.1:$REG
skopeo copy -q --dest-tls-verify=false "oci:$SCRATCH/fx/oci:img" "docker://$H/test/fx:1"

# Debian with a small layer on top (umoci), behind a link of 4 MB/s: its base takes seconds.
skopeo copy -q "docker-archive:$(bash "$TESTS_DIR/make_debian.sh")" "oci:$SCRATCH/deb:img"
umoci unpack --image "$SCRATCH/deb:img" "$SCRATCH/bundle" >/dev/null
echo top > "$SCRATCH/bundle/rootfs/top.txt"
umoci repack --image "$SCRATCH/deb:img" "$SCRATCH/bundle" >/dev/null
rm -rf "$SCRATCH/bundle"
skopeo copy -q --dest-tls-verify=false "oci:$SCRATCH/deb:img" "docker://$H/test/deb:top"
# A second image on that base and top: Debian, top, top2.
umoci unpack --image "$SCRATCH/deb:img" "$SCRATCH/bundle" >/dev/null
echo top2 > "$SCRATCH/bundle/rootfs/top2.txt"
umoci repack --image "$SCRATCH/deb:top2" "$SCRATCH/bundle" >/dev/null
rm -rf "$SCRATCH/bundle"
skopeo copy -q --dest-tls-verify=false "oci:$SCRATCH/deb:top2" "docker://$H/test/deb:top2"
# The same image with its layers recompressed as plain zstd.
skopeo copy -q --dest-compress-format zstd "oci:$SCRATCH/deb:img" "oci:$SCRATCH/zst:img"
check_eq "the zstd form's layers are zstd" "zstd zstd" "$(python3 - "$SCRATCH/zst" <<'PY'
import json, os, sys
blob = lambda d: os.path.join(sys.argv[1], "blobs", *d.split(":"))
index = json.load(open(os.path.join(sys.argv[1], "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
print(" ".join(l["mediaType"].rsplit("+", 1)[-1] for l in manifest["layers"]))
PY
)"
skopeo copy -q --dest-tls-verify=false "oci:$SCRATCH/zst:img" "docker://$H/test/deb:zstd"
SLOW=$(free_port)
PROXY_RATE=4000000 start_proxy "$SLOW" "$H"

# That Debian again with its base layer's DiffID wrong in the config (the blobs are right).
cp -r "$SCRATCH/deb" "$SCRATCH/bad"
python3 - "$SCRATCH/bad" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
def blob(d): return os.path.join(root, "blobs", *d.split(":"))
def put(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    open(blob(d), "wb").write(data)
    return d, len(data)
index = json.load(open(os.path.join(root, "index.json")))
desc = index["manifests"][0]
manifest = json.load(open(blob(desc["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
config["rootfs"]["diff_ids"][0] = "sha256:" + hashlib.sha256(b"not this layer").hexdigest()
manifest["config"]["digest"], manifest["config"]["size"] = put(json.dumps(config).encode())
desc["digest"], desc["size"] = put(json.dumps(manifest).encode())
json.dump(index, open(os.path.join(root, "index.json"), "w"))
PY
skopeo copy -q --dest-tls-verify=false "oci:$SCRATCH/bad:img" "docker://$H/test/deb:bad"

m=$SCRATCH/mnt
# ---- Off by default: the rootfs is the pulled image, nothing streamed.
IMAGEFS_STORE=$SCRATCH/s0 start_mount "$m"
check_eq "off by default: the rootfs after a pull" "changed" "$(cat "$m/registry/$H/test/fx/1/rootfs/etc/keep")"
check_eq "... nothing streamed" "[]" "$(cat "$m/.imagefs/streams.json")"
stop_mount "$m" "$MOUNT_PID"

# ---- The fixture streamed: whiteouts, an opaque directory, hardlinks, symlinks, modes,
# xattrs as the stored image shows them once it is registered.
IMAGEFS_STORE=$SCRATCH/s1 start_mount "$m" --stream-unverified
r=$m/registry/$H/test/fx/1/rootfs
check_eq "streamed: a file" "changed" "$(cat "$r/etc/keep")"
check_eq "streamed: a whiteout hides its file" "no" "$([ -e "$r/etc/one" ] && echo yes || echo no)"
check_eq "streamed: an xattr" "security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=" \
  "$(getfattr -e base64 -n security.capability "$r/bin/tool" 2>&1 | grep =)"
wait_for "the streamed fixture registered" registered "$m"
check_contains "... streams.json says complete" "complete" "$(stream_state "$m")"
same_tree "streamed fixture = stored image" "$r" "$m/images/$(ls "$m/images")/rootfs"
stop_mount "$m" "$MOUNT_PID"

# ---- Debian behind the slow link, with -o stream_unverified (the fstab form): the top
# layer's file is read while the base still downloads, and the image is not registered yet.
echo '{"registries": {}}' > "$SCRATCH/registries.json"
IMAGEFS_STORE=$SCRATCH/s2 IMAGEFS_REGISTRIES=$SCRATCH/registries.json start_mount "$m" -o stream_unverified
r=$m/registry/127.0.0.1:$SLOW/test/deb/top/rootfs
check_eq "slow link: the top layer's file" "top" "$(cat "$r/top.txt")"
check_eq "... read before the image is registered" "0" "$(ls "$m/images" | wc -l)"
check_contains "... while its layers stream" "streaming" "$(stream_state "$m")"
# Absent names wait for every layer (a later layer could still add them).
waiters=()
for i in 1 2 3 4; do stat "$r/absent-$i" >"$SCRATCH/absent-$i.out" 2>&1 & waiters+=($!); done
check_eq "slow link: a base file, once the layer above is indexed" "12" "$(cut -d. -f1 "$r/etc/debian_version")"
check_eq "slow link: chroot while it streams" "hi" "$(chroot "$r" /bin/sh -c 'echo hi')"
wait_for "the streamed Debian registered" registered "$m"
absent=0
for i in "${!waiters[@]}"; do
  wait "${waiters[$i]}" || true  # stat fails: ENOENT is the answer
  grep -q "No such file" "$SCRATCH/absent-$((i + 1)).out" && absent=$((absent + 1))
done
check_eq "... absent names answer ENOENT once every layer is in" "4" "$absent"
same_tree "streamed Debian = stored image" "$r" "$m/images/$(ls "$m/images")/rootfs"
stop_mount "$m" "$MOUNT_PID"

# ---- Requests that wait on a registry run on threads of their own, not the session loop's
# 16: here 24 processes each look into another tag of the image behind the slow link (each
# lookup of rootfs waits for a pull). A name never asked before takes a round trip to the
# daemon; it is answered while they wait, before the store (read directly) has the image.
tags=$(python3 - "$H" <<'PY'
import json, sys, urllib.request
host = sys.argv[1]
accept = "application/vnd.oci.image.manifest.v1+json"
req = urllib.request.Request(f"http://{host}/v2/test/deb/manifests/top", headers={"Accept": accept})
with urllib.request.urlopen(req) as r:
    body, kind = r.read(), r.headers["Content-Type"]
for i in range(24):
    put = urllib.request.Request(f"http://{host}/v2/test/deb/manifests/t{i}", data=body,
                                 method="PUT", headers={"Content-Type": kind})
    urllib.request.urlopen(put).close()
print(24)
PY
)
check_eq "24 more tags of the Debian" "24" "$tags"
IMAGEFS_STORE=$SCRATCH/s5 IMAGEFS_REGISTRIES=$SCRATCH/registries.json start_mount "$m"
waiters=()
for i in $(seq 0 23); do
  stat "$m/registry/127.0.0.1:$SLOW/test/deb/t$i/rootfs/etc/hostname" >"$SCRATCH/tag-$i.out" 2>&1 &
  waiters+=($!)
done
sleep 2
run stat "$m/images/not-an-image"
check_contains "24 requests waiting on pulls leave the mount answering" "No such file" "$out"
check_eq "... while they wait" "0" "$(ls "$SCRATCH/s5/images" 2>/dev/null | wc -l)"
answered=0
for i in "${!waiters[@]}"; do
  wait "${waiters[$i]}" && answered=$((answered + 1))
done
check_eq "... and each of them is answered once the image is in" "24" "$answered"
stop_mount "$m" "$MOUNT_PID"

# ---- The same, with plain zstd layers: the store decompresses them as it writes them.
IMAGEFS_STORE=$SCRATCH/s4 IMAGEFS_REGISTRIES=$SCRATCH/registries.json start_mount "$m" --stream-unverified
r=$m/registry/127.0.0.1:$SLOW/test/deb/zstd/rootfs
check_eq "zstd: the top layer's file" "top" "$(cat "$r/top.txt")"
check_eq "... read before the image is registered" "0" "$(ls "$m/images" | wc -l)"
check_contains "... while its layers stream" "streaming" "$(stream_state "$m")"
wait_for "the streamed zstd Debian registered" registered "$m"
same_tree "streamed zstd Debian = stored image" "$r" "$m/images/$(ls "$m/images")/rootfs"
stop_mount "$m" "$MOUNT_PID"

# ---- Two images on one base, streamed at once, share its one download: the second image's
# base files are answered from the first's feed, before either image is registered (a
# stream of its own would get the base only once the download ended and both were in).
IMAGEFS_STORE=$SCRATCH/s6 IMAGEFS_REGISTRIES=$SCRATCH/registries.json start_mount "$m" --stream-unverified
ra=$m/registry/127.0.0.1:$SLOW/test/deb/top/rootfs
rb=$m/registry/127.0.0.1:$SLOW/test/deb/top2/rootfs
check_eq "two images on one base: the first's top file" "top" "$(cat "$ra/top.txt")"
check_eq "... the second's base file, from the one download" "12" "$(cut -d. -f1 "$rb/etc/debian_version")"
check_eq "... before either is registered" "0" "$(ls "$SCRATCH/s6/images" 2>/dev/null | wc -l)"
check_eq "... the second's own top file" "top2" "$(cat "$rb/top2.txt")"
both_registered() { [ "$(ls "$1/images" | wc -l)" -eq 2 ]; }
wait_for "both registered" both_registered "$m"
check_eq "... both streams complete" "complete complete" "$(stream_state "$m")"
stop_mount "$m" "$MOUNT_PID"

# ---- A layer whose content does not match its DiffID: served while it streams, then EIO for
# every file it decides (what the kernel cached of them included), errors.json says why, and
# nothing is registered; what the layer above decides alone still stands.
IMAGEFS_STORE=$SCRATCH/s3 IMAGEFS_REGISTRIES=$SCRATCH/registries.json start_mount "$m" --stream-unverified
r=$m/registry/127.0.0.1:$SLOW/test/deb/bad/rootfs
check_eq "wrong DiffID: a base file, read before the layer ends" "12" "$(cut -d. -f1 "$r/etc/debian_version")"
wait_for "the mismatch found" grep -q "does not match its DiffID" "$m/.imagefs/errors.json"
run cat "$r/etc/debian_version"
check_eq "... then the same file fails" "1" "$rc"
check_contains "... with EIO, though the kernel had its pages" "Input/output error" "$out"
run ls "$r/usr/bin"
check_contains "... as does everything the layer decides" "Input/output error" "$out"
check_eq "... the top layer's file stands" "top" "$(cat "$r/top.txt")"
check_eq "... and nothing is registered" "0" "$(ls "$m/images" | wc -l)"
stop_mount "$m" "$MOUNT_PID"

finish
