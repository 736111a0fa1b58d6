#!/usr/bin/env bash
# Seekable layer formats made by their real producers: eStargz by ctr-remote
# (stargz-snapshotter, over a containerd started here with its state in the scratch
# directory), zstd:chunked by ctr-remote and by `podman push`. Loaded, pulled and lazily
# pulled through registry/, each shows exactly the rootfs of its plain original: the TOC
# (stargz.index.json) and the landmark files are format, not files. layer.tar keeps them.
# Each layer, read as the lazy reader reads it (TOC, verified chunks), agrees with its tar
# read whole (tests/tools/estargz_check), for the fixture and for Debian.
: "${ESTARGZ_CHECK:?set ESTARGZ_CHECK to the estargz_check tool}"
: "${TREE_LIST:?set TREE_LIST to the tree_list tool}"
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"

listing() { python3 "$TESTS_DIR/list_fs.py" dir "$1" | LC_ALL=C sort; }

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null

# ---- containerd and ctr-remote: eStargz and zstd:chunked conversions of one image.
cd=$SCRATCH/containerd
mkdir -p "$cd"
cat > "$cd/config.toml" <<EOF
version = 2
root = "$cd/root"
state = "$cd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$cd/sock"
[ttrpc]
  address = "$cd/sock.ttrpc"
EOF
containerd --config "$cd/config.toml" >"$cd/log" 2>&1 &
containerd_pid=$!
cleanup_hooks+=("kill_child $containerd_pid")
ctr() { command ctr -a "$cd/sock" -n imagefs-test "$@"; }
ctr_remote() { command ctr-remote -a "$cd/sock" -n imagefs-test "$@"; }
for _ in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null || { tail -n 5 "$cd/log" >&2; fail "containerd did not start"; finish; }
echo "containerd $(ctr version | awk '/Version/ {print $2; exit}') started"

ctr images import "$SCRATCH/fx/oci.tar" >/dev/null  # example/img:2
ctr_remote image convert --estargz --oci example/img:2 example.test/img:esgz >/dev/null
ctr_remote image convert --zstdchunked --oci example/img:2 example.test/img:zc >/dev/null
for form in esgz zc; do
  ctr images export "$SCRATCH/$form.tar" "example.test/img:$form"
  # Made for real: eStargz layers carry their TOC digest, zstd:chunked their TOC position.
  index=$(tar -xOf "$SCRATCH/$form.tar" index.json)
  check_contains "ctr-remote made $form" "example.test/img:$form" "$index"
done

# ---- eStargz layers read chunk by chunk: the fixture's, and Debian's (ctr-remote's default
# 4 MiB chunks, so large files have several).
ctr images import "$(bash "$TESTS_DIR/make_debian.sh")" >/dev/null  # docker.io/test/debian:minbase
ctr_remote image convert --estargz --oci docker.io/test/debian:minbase example.test/debian:esgz >/dev/null
ctr images export "$SCRATCH/debian-esgz.tar" example.test/debian:esgz
# Every layer of an exported image with its TOC digest: "BLOB_PATH DIGEST" lines.
estargz_layers() {
  local dir=$1
  python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
blob = lambda dg: d + "/blobs/sha256/" + dg.split(":")[1]
for m in json.load(open(d + "/index.json"))["manifests"]:
    for l in json.load(open(blob(m["digest"])))["layers"]:
        toc = l.get("annotations", {}).get("containerd.io/snapshot/stargz/toc.digest")
        if toc:
            print(blob(l["digest"]), toc)
PY
}
for form in esgz debian-esgz; do
  mkdir -p "$SCRATCH/x-$form"
  tar -xf "$SCRATCH/$form.tar" -C "$SCRATCH/x-$form"
  layers=0
  while read -r blob toc; do
    layers=$((layers + 1))
    run "$ESTARGZ_CHECK" "$blob" "$toc"
    check_eq "$form layer $layers: $(echo "$out" | tail -n 1)" 0 "$rc"
    [ "$rc" = 0 ] || echo "$out" | head -n 20 >&2
  done < <(estargz_layers "$SCRATCH/x-$form")
  [ "$layers" -gt 0 ] || fail "$form: no layer with a TOC digest"
done
# The same reader refuses what was tampered with: a chunk's bytes, or the TOC's digest.
read -r blob toc < <(estargz_layers "$SCRATCH/x-esgz")
python3 - "$blob" "$SCRATCH/bent" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0xFF  # inside the 9 MiB file's chunks
open(sys.argv[2], "wb").write(b)
PY
run "$ESTARGZ_CHECK" "$SCRATCH/bent" "$toc"
check_eq "a bent chunk is refused" 1 "$rc"
check_contains "... and named" "chunk at offset" "$out"
run "$ESTARGZ_CHECK" "$blob" "sha256:$(printf '%064d' 0)"
check_eq "a TOC with another digest is refused" 1 "$rc"
check_contains "... and named" "TOC digest mismatch" "$out"

# ---- Loads.
run "$IMAGEFS" load "$SCRATCH/fx/oci.tar"; check_eq "plain loads" 0 "$rc"
for form in esgz zc; do
  run "$IMAGEFS" load "$SCRATCH/$form.tar"; check_eq "$form loads" 0 "$rc"
done

# ---- Pulls: eStargz pushed by ctr, zstd:chunked by ctr-remote and by podman, to a registry
# on 127.0.0.1.
port=$(free_port)
start_registry "$port" "$SCRATCH/registry" ""
reg=127.0.0.1:$port
for form in esgz zc; do
  ctr images tag "example.test/img:$form" "$reg/img:$form" >/dev/null
  ctr images push --plain-http "$reg/img:$form" >/dev/null
done
pm=$SCRATCH/podman
podman() { command podman --root "$pm/root" --runroot "$pm/run" --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"; }
cleanup_hooks+=("podman rmi -a -f >/dev/null 2>&1")
podman load -q -i "$SCRATCH/fx/docker.tar" >/dev/null
podman push -q --tls-verify=false --compression-format zstd:chunked example/img:1 "docker://$reg/img:podman-zc"
# Debian's podman (4.3) drops the tar's trailing zero padding from zstd:chunked layers but
# keeps the DiffID that counts it (containers/storage#1771): the pull restores it.
podman load -q -i "$(bash "$TESTS_DIR/make_debian.sh")" >/dev/null
podman push -q --tls-verify=false --compression-format zstd:chunked test/debian:minbase "docker://$reg/debian:podman-zc"
manifest=$(skopeo inspect --tls-verify=false --raw "docker://$reg/img:podman-zc")
check_contains "podman pushed zstd:chunked" "zstd-chunked.manifest-checksum" "$manifest"
check_contains "ctr pushed eStargz" "containerd.io/snapshot/stargz/toc.digest" \
  "$(skopeo inspect --tls-verify=false --raw "docker://$reg/img:esgz")"
check_contains "ctr pushed zstd:chunked" "zstd-chunked.manifest-position" \
  "$(skopeo inspect --tls-verify=false --raw "docker://$reg/img:zc")"
for tag in esgz zc podman-zc; do
  run "$IMAGEFS" pull "$reg/img:$tag"; check_eq "pull $tag" 0 "$rc"
done

# ---- eStargz and zstd:chunked by Range from the registry (fetch::ChunkedRemoteLayer): one
# small file, then all, against the layer's tar; the cache reopened reads with no request; a
# bent chunk is fetched again.
ctr images tag example.test/debian:esgz "$reg/debian:esgz" >/dev/null
ctr images push --plain-http "$reg/debian:esgz" >/dev/null
for image in img:esgz debian:esgz img:zc img:podman-zc debian:podman-zc; do
  run "$ESTARGZ_CHECK" --remote "$reg/$image"
  echo "$out" | grep -v '^estargz_check: [0-9]* files' | sed 's/^/  /'
  check_eq "$image read by chunks over Range: $(echo "$out" | grep -c 'they agree with the tar') layers agree" 0 "$rc"
done

# ---- Every form, every path, the plain rootfs.
m=$SCRATCH/mnt
start_mount "$m"
plain=$(listing "$m/tags/docker.io/example/img/2/rootfs")
check_contains "the plain rootfs lists" "etc/keep|" "$plain"
for path in tags/example.test/img/esgz tags/example.test/img/zc "tags/$reg/img/esgz" \
            "tags/$reg/img/zc" "tags/$reg/img/podman-zc" "registry/$reg/img/esgz" \
            "registry/$reg/img/zc" "registry/$reg/img/podman-zc"; do
  if diff <(echo "$plain") <(listing "$m/$path/rootfs") > "$SCRATCH/diff"; then
    echo "ok: $path/rootfs is the plain rootfs"
  else
    fail "$path/rootfs differs from the plain rootfs: $(head -n 5 "$SCRATCH/diff" | tr '\n' ' ')"
  fi
done
# The tree a lazy reader serves (tree_list --estargz: each layer's TOC by Range, a tree over
# them, every file read through Tree::Read, chunk by chunk) is the rootfs the whole pull shows.
# Directories no layer lists are IMPLIED there (their mtime is the mount's to choose).
for tag in esgz zc podman-zc; do
  "$TREE_LIST" --estargz "$reg/img:$tag" > "$SCRATCH/lazy.list" 2> "$SCRATCH/lazy.err" ||
    fail "tree_list --estargz $tag: $(cat "$SCRATCH/lazy.err")"
  listing "$m/registry/$reg/img/$tag/rootfs" | python3 -c '
import sys
implied = {l.split("|")[0] for l in open(sys.argv[1]) if l.split("|")[6] == "IMPLIED"}
for line in sys.stdin:
    f = line.rstrip("\n").split("|")
    if f[0] in implied:
        f[6] = "IMPLIED"
    print("|".join(f))' "$SCRATCH/lazy.list" > "$SCRATCH/whole.list"
  if diff <(LC_ALL=C sort "$SCRATCH/lazy.list") "$SCRATCH/whole.list" > "$SCRATCH/diff"; then
    echo "ok: the $tag tree read by Range is the pulled rootfs ($(cat "$SCRATCH/lazy.err"))"
  else
    fail "the $tag tree read by Range differs: $(head -n 6 "$SCRATCH/diff" | tr '\n' ' ')"
  fi
done
# The layer's bytes keep what the tree hides.
check_contains "layer.tar keeps the eStargz TOC" "stargz.index.json" \
  "$(tar -tf "$m/tags/example.test/img/esgz/layers/1/layer.tar")"
stop_mount "$m" "$MOUNT_PID"

# ---- registry/ serves an eStargz image before it is pulled (a store of its own, where
# nothing is pulled yet): a file read fetches its chunks, not the image.
lazy_field() {  # lazy_field MOUNT REF-SUBSTRING FIELD
  python3 - "$1/.imagefs/lazy.json" "$2" "$3" <<'PY'
import json, sys
for image in json.load(open(sys.argv[1])):
    if sys.argv[2] in image["ref"]:
        print(image[sys.argv[3]])
PY
}
wait_lazy() {  # wait_lazy MOUNT REF-SUBSTRING: prints the state it settled in
  local state
  for _ in $(seq 1 300); do
    state=$(lazy_field "$1" "$2" state)
    [ "$state" = serving ] || [ "$state" = prefetching ] || [ "$state" = completing ] || break
    sleep 0.2
  done
  echo "$state"
}
from_chunks() {  # from_chunks MOUNT REF-SUBSTRING: "yes" when every layer completed from its chunks
  python3 - "$1/.imagefs/lazy.json" "$2" <<'PY'
import json, sys
for image in json.load(open(sys.argv[1])):
    if sys.argv[2] in image["ref"]:
        layers = [l for l in image["layers"] if "stored" not in l]
        print("yes" if layers and all(l["completed_from_chunks"] for l in layers) else "no")
PY
}
lazy_store=$SCRATCH/lazy-store
echo '{"lazy_complete": false}' > "$SCRATCH/no-complete.json"
echo '{}' > "$SCRATCH/defaults.json"
lm=$SCRATCH/lazy
IMAGEFS_STORE=$lazy_store IMAGEFS_REGISTRIES=$SCRATCH/no-complete.json start_mount "$lm"
root=$lm/registry/$reg/debian/esgz/rootfs
version=$(cat "$root/etc/debian_version")
check_eq "a file of a lazily served Debian" 1 "$(echo "$version" | grep -c '^[0-9]')"
blob_size=$(python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(open(sys.argv[1]))[0]["layers"]))' "$lm/.imagefs/lazy.json")
fetched=$(lazy_field "$lm" debian bytes_fetched)
echo "  the first file: $(lazy_field "$lm" debian requests) requests, $fetched of $blob_size bytes"
check_eq "... fetched under 2 % of the image" 1 "$((fetched * 50 < blob_size))"
check_eq "... and pulled nothing" 1 "$(IMAGEFS_STORE=$lazy_store "$IMAGEFS" inspect "$reg/debian:esgz" >/dev/null 2>&1; echo $?)"
check_eq "... its chunks kept in the store" 1 "$(ls "$lazy_store/cache/chunks" | wc -l)"
listing "$root" | cut -d'|' -f1-6,8- > "$SCRATCH/lazy-debian.list"
check_eq "every file read: still served, not pulled" serving "$(lazy_field "$lm" debian state)"
check_eq "... with no error" 0 "$(lazy_field "$lm" debian errors)"
stop_mount "$lm" "$MOUNT_PID"
run env IMAGEFS_STORE="$lazy_store" "$IMAGEFS" check
check_eq "check beside a chunk cache" 0 "$rc"
check_contains "... says it is not judged there" "1 chunk cache(s) of layers read by Range" "$out"
IMAGEFS_STORE=$lazy_store IMAGEFS_REGISTRIES=$SCRATCH/no-complete.json start_mount "$lm"
check_eq "remounted, a file read before" "$version" "$(cat "$root/etc/debian_version")"
check_eq "... comes from the store's chunk cache: no request" 0 "$(lazy_field "$lm" debian requests)"
stop_mount "$lm" "$MOUNT_PID"

# Remounted with completion on: the cached chunks serve without a request, and the image
# is completed from them, fetching only the gaps, and registered as a pull registers it.
IMAGEFS_STORE=$lazy_store IMAGEFS_REGISTRIES=$SCRATCH/defaults.json start_mount "$lm"
check_eq "the cached file again" "$version" "$(cat "$root/etc/debian_version")"
check_eq "completed in the background" complete "$(wait_lazy "$lm" debian)"
fetched=$(lazy_field "$lm" debian bytes_fetched)
echo "  completion: $(lazy_field "$lm" debian requests) requests, $fetched of $blob_size bytes"
check_eq "... fetching what no read had (under 10 %)" 1 "$((fetched * 10 < blob_size))"
check_eq "... from the chunks, with no error" "yes 0" "$(from_chunks "$lm" debian) $(lazy_field "$lm" debian errors)"
id=$(IMAGEFS_STORE=$lazy_store "$IMAGEFS" inspect "$reg/debian:esgz" 2>&1 |
     python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Id"])' 2>&1)
check_contains "... and registered" "sha256:" "$id"
# The pulled rootfs is the served one, but for mtimes (the TOC's are whole seconds).
if diff "$SCRATCH/lazy-debian.list" <(listing "$lm/images/${id#sha256:}/rootfs" | cut -d'|' -f1-6,8-) > "$SCRATCH/diff"; then
  echo "ok: the completed image's rootfs is the one served before"
else
  fail "the completed rootfs differs from the lazy one: $(head -n 6 "$SCRATCH/diff" | tr '\n' ' ')"
fi
stop_mount "$lm" "$MOUNT_PID"
run env IMAGEFS_STORE="$lazy_store" "$IMAGEFS" check
check_contains "check: the chunk cache of a stored layer is prune's" "1 chunk cache(s) of layers the store now holds whole" "$out"
run env IMAGEFS_STORE="$lazy_store" "$IMAGEFS" prune
check_eq "prune" 0 "$rc"
check_eq "... drops the chunks of a stored layer" 0 "$(ls "$lazy_store/cache/chunks" | wc -l)"

# One file read, then completed: the rest of the blob by Range, each byte fetched once.
IMAGEFS_STORE=$SCRATCH/lazy-store2 IMAGEFS_REGISTRIES=$SCRATCH/defaults.json start_mount "$lm"
check_eq "one file of a fresh Debian" "$version" "$(cat "$lm/registry/$reg/debian/esgz/rootfs/etc/debian_version")"
served_ino=$(stat -c %i "$lm/registry/$reg/debian/esgz/rootfs/usr/bin")
check_eq "... completed in the background" complete "$(wait_lazy "$lm" debian)"
fetched=$(lazy_field "$lm" debian bytes_fetched)
requests=$(lazy_field "$lm" debian requests)
echo "  read one file and completed: $requests requests, $fetched of $blob_size bytes"
check_eq "... each byte fetched about once (within 1 %)" 1 "$((fetched * 100 <= blob_size * 101))"
check_eq "... from the chunks, with no error" "yes 0" "$(from_chunks "$lm" debian) $(lazy_field "$lm" debian errors)"
check_eq "... and registered" 0 "$(IMAGEFS_STORE=$SCRATCH/lazy-store2 "$IMAGEFS" inspect "$reg/debian:esgz" >/dev/null 2>&1; echo $?)"
# The kernel still holds the served rootfs's inodes: they now read the stored layers.
check_eq "... its served rootfs reads from the store" store "$(lazy_field "$lm" debian reads_from)"
check_eq "... a file read now, through the inodes served before" \
  "$served_ino $(sha256sum < "$lm/images/${id#sha256:}/rootfs/usr/bin/ls")" \
  "$(stat -c %i "$lm/registry/$reg/debian/esgz/rootfs/usr/bin") $(sha256sum < "$lm/registry/$reg/debian/esgz/rootfs/usr/bin/ls")"
check_eq "... fetches nothing again" "$requests $fetched" \
  "$(lazy_field "$lm" debian requests) $(lazy_field "$lm" debian bytes_fetched)"
stop_mount "$lm" "$MOUNT_PID"

# zstd:chunked, as Debian's podman pushed it: served before it is pulled, and completed from
# the frames fetched into the same image as the eStargz one, but for mtimes.
zstore=$SCRATCH/lazy-store4
zroot=$lm/registry/$reg/debian/podman-zc/rootfs
IMAGEFS_STORE=$zstore IMAGEFS_REGISTRIES=$SCRATCH/no-complete.json start_mount "$lm"
check_eq "a file of a lazily served zstd:chunked Debian" "$version" "$(cat "$zroot/etc/debian_version")"
zblob_size=$(python3 -c 'import json, sys; print(sum(l["size"] for i in json.load(open(sys.argv[1])) if "podman-zc" in i["ref"] for l in i["layers"]))' "$lm/.imagefs/lazy.json")
fetched=$(lazy_field "$lm" podman-zc bytes_fetched)
echo "  the first file: $(lazy_field "$lm" podman-zc requests) requests, $fetched of $zblob_size bytes"
check_eq "... fetched under 2 % of the image" 1 "$((fetched * 50 < zblob_size))"
check_eq "... chroot runs in it" "$(chroot "$root" /bin/sh -c 'ls /usr/bin | wc -l' 2>&1)" \
  "$(chroot "$zroot" /bin/sh -c 'ls /usr/bin | wc -l' 2>&1)"
check_eq "... still served, with no error" "serving 0" "$(lazy_field "$lm" podman-zc state) $(lazy_field "$lm" podman-zc errors)"
stop_mount "$lm" "$MOUNT_PID"
IMAGEFS_STORE=$zstore IMAGEFS_REGISTRIES=$SCRATCH/defaults.json start_mount "$lm"
check_eq "zstd:chunked completed in the background" complete "$(cat "$zroot/etc/debian_version" >/dev/null; wait_lazy "$lm" podman-zc)"
fetched=$(lazy_field "$lm" podman-zc bytes_fetched)
echo "  completion: $(lazy_field "$lm" podman-zc requests) requests, $fetched of $zblob_size bytes"
check_eq "... from the frames, with no error" "yes 0" "$(from_chunks "$lm" podman-zc) $(lazy_field "$lm" podman-zc errors)"
check_eq "... its served rootfs reads from the store" store "$(lazy_field "$lm" podman-zc reads_from)"
zid=$(IMAGEFS_STORE=$zstore "$IMAGEFS" inspect "$reg/debian:podman-zc" 2>&1 |
      python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Id"])' 2>&1)
check_contains "... and registered" "sha256:" "$zid"
check_contains "... its tar padding restored" "zero padding" "$(cat "$SCRATCH/daemon.log")"
if diff "$SCRATCH/lazy-debian.list" <(listing "$lm/images/${zid#sha256:}/rootfs" | cut -d'|' -f1-6,8-) > "$SCRATCH/diff"; then
  echo "ok: the zstd:chunked Debian is the eStargz one"
else
  fail "the zstd:chunked Debian differs from the eStargz one: $(head -n 6 "$SCRATCH/diff" | tr '\n' ' ')"
fi
stop_mount "$lm" "$MOUNT_PID"

# A cache whose kept compressed bytes went bad (a disk, a crash): completing from it fails
# the blob's digest, so the layer is fetched whole and the image registered all the same.
IMAGEFS_STORE=$SCRATCH/lazy-store3 IMAGEFS_REGISTRIES=$SCRATCH/no-complete.json start_mount "$lm"
check_eq "one file of a third Debian" "$version" "$(cat "$lm/registry/$reg/debian/esgz/rootfs/etc/debian_version")"
stop_mount "$lm" "$MOUNT_PID"
python3 - "$SCRATCH"/lazy-store3/cache/chunks/* <<'PY'
import struct, sys
d = sys.argv[1]
chunks = open(d + "/chunks", "rb").read()
count = struct.unpack_from("<Q", chunks, 8)[0]
present = open(d + "/present", "rb").read()
record = 5 * 8 + 32  # content_offset, size, compressed_offset, compressed_end, inner_offset, sha256
i = next(i for i in range(count) if i < len(present) and present[i] == 1)
_, _, start, end, _ = struct.unpack_from("<5Q", chunks, 40 + i * record)  # after a 40-byte header
with open(d + "/blob", "r+b") as f:
    f.seek((start + end) // 2)
    b = f.read(1)
    f.seek((start + end) // 2)
    f.write(bytes([b[0] ^ 0xFF]))
PY
IMAGEFS_STORE=$SCRATCH/lazy-store3 IMAGEFS_REGISTRIES=$SCRATCH/defaults.json start_mount "$lm"
check_eq "a bent cache still completes" complete "$(cat "$lm/registry/$reg/debian/esgz/rootfs/etc/debian_version" >/dev/null; wait_lazy "$lm" debian)"
check_eq "... not from the chunks" no "$(from_chunks "$lm" debian)"
check_contains "... saying why in errors.json" "the blob completed from cached chunks" "$(cat "$lm/.imagefs/errors.json")"
check_contains "... registered as the same image" "$id" "$(IMAGEFS_STORE=$SCRATCH/lazy-store3 "$IMAGEFS" inspect "$reg/debian:esgz" 2>&1)"
stop_mount "$lm" "$MOUNT_PID"

# A registry serving bent bytes: the chunk fails its digest, the file gives EIO, errors.json
# says why, and the image is never registered. (Last: it bends img:esgz in the registry.)
big=$(echo "$plain" | awk -F'|' '$2 == "f" && $6 > 100000 {print $1; exit}')
[ -n "$big" ] || fail "the fixture has no large file"
# The byte bent is inside $big's first chunk, found through its layer's TOC.
bent=0
while read -r layer_blob _; do
  stored_blob=$(find "$SCRATCH/registry" -path "*/blobs/sha256/*/$(basename "$layer_blob")/data")
  python3 - "$stored_blob" "$big" <<'PY' && bent=$((bent + 1))
import json, sys, tarfile
blob, name = sys.argv[1], sys.argv[2]
with tarfile.open(blob, "r:gz") as t:
    toc = json.load(t.extractfile("stargz.index.json"))
entry = next((e for e in toc["entries"] if e["name"] == name and e["type"] == "reg"), None)
if entry is None:
    sys.exit(1)
with open(blob, "r+b") as f:
    at = entry["offset"] + 64  # past the member's gzip header, inside the compressed data
    f.seek(at)
    b = f.read(1)
    f.seek(at)
    f.write(bytes([b[0] ^ 0xFF]))
PY
done < <(estargz_layers "$SCRATCH/x-esgz")
check_eq "the registry's copy of $big bent" 1 "$bent"
IMAGEFS_STORE=$lazy_store IMAGEFS_REGISTRIES=$SCRATCH/no-complete.json start_mount "$lm"
root=$lm/registry/$reg/img/esgz/rootfs
run cat "$root/etc/keep"
check_eq "a file of good chunks reads" 0 "$rc"
run cat "$root/$big"
check_contains "a file of a bent chunk gives EIO" "Input/output error" "$out"
check_contains "... explained in errors.json" "chunk" "$(cat "$lm/.imagefs/errors.json")"
check_eq "... counted in lazy.json" 1 "$(( $(lazy_field "$lm" img:esgz errors) > 0 ))"
stop_mount "$lm" "$MOUNT_PID"
finish
