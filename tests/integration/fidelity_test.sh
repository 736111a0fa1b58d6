#!/usr/bin/env bash
# Names are bytes: layers written by Python's tarfile (PAX, with UTF-8 and binary names;
# GNU, with Latin-1 bytes and long names), GNU tar (ustar prefix/name splits) and Go
# (umoci) keep every name and link target byte for byte, in diff/, rootfs/, export
# --rootfs and image.tar loaded again, whatever the locale of the commands (C, C.UTF-8, Latin-1).
# Docker's AUFS metadata (.wh..wh.plnk/, .wh..wh.aufs, .wh..wh.orph/) is never shown in
# rootfs/, and hardlinks into .wh..wh.plnk/ become files of their own, as Docker unpacks them.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
cd "$SCRATCH"

# The names, as hex, one per line: what every view must list exactly.
python3 - "$SCRATCH" <<'PY'
import io, os, sys, tarfile
d = sys.argv[1]
names = [
    "caf\u00e9".encode(), "cafe\u0301".encode(),        # NFC and NFD: two files
    "Caf\u00e9".encode(), "CAF\u00c9".encode(),          # differ in case only
    b"new\nline", b"tab\there", b"back\\slash", b"ctl\x01\x7f", b"sp ace ",
    b"latin1-caf\xe9", b"not-utf8-\xff\xfe",             # not UTF-8 at all
    ("long-" + "\u00e9" * 80).encode(),                  # a PAX path past 100 bytes
]
def layer(path, fmt, enc):
    with tarfile.open(path, "w", format=fmt, encoding=enc, errors="surrogateescape") as t:
        for n in names:
            ti = tarfile.TarInfo(n.decode("utf-8", "surrogateescape"))
            ti.size = len(n); ti.mtime = 1600000000
            t.addfile(ti, io.BytesIO(n))
        ln = tarfile.TarInfo("link"); ln.type = tarfile.SYMTYPE; ln.mtime = 1600000000
        ln.linkname = ("target-" + "\u00e9" * 70 + "-cafe\u0301").encode().decode("utf-8", "surrogateescape")
        t.addfile(ln)
layer(d + "/pax.tar", tarfile.PAX_FORMAT, "utf-8")
layer(d + "/gnu.tar", tarfile.GNU_FORMAT, "utf-8")
with open(d + "/expected", "w") as f:
    for n in sorted(names + [b"link"]): f.write(n.hex() + "\n")
# The same names on disk, for GNU tar and umoci to write.
os.makedirs(d + "/tree/p" * 1)
for n in names: open(os.path.join(d.encode(), b"tree/p", n), "wb").write(n)
PY
# GNU tar in ustar format: a path split between prefix (<= 155) and name (<= 100).
deep=$(printf 'd%.0s' $(seq 1 60))/$(printf 'e%.0s' $(seq 1 60))
mkdir -p "$SCRATCH/ustar/$deep" && echo split > "$SCRATCH/ustar/$deep/$(printf 'n%.0s' $(seq 1 90))"
tar --format=ustar -C "$SCRATCH/ustar" -cf "$SCRATCH/ustar.tar" .

listing() {  # listing DIR: every name directly in DIR, as hex, sorted
  python3 -c 'import os,sys; [print(n.hex()) for n in sorted(os.listdir(sys.argv[1].encode()))]' "$1"
}
# image_of LAYER.tar NAME:TAG: a docker-archive of one layer.
image_of() {
  python3 - "$1" "$2" "$SCRATCH/$(tr ':/' '__' <<<"$2").tar" <<'PY'
import hashlib, io, json, sys, tarfile
layer = open(sys.argv[1], "rb").read()
diff = hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode()
cfg = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": cfg, "RepoTags": [sys.argv[2]], "Layers": [diff + "/layer.tar"]}]).encode()
with tarfile.open(sys.argv[3], "w") as t:
    for n, data in ((cfg, config), (diff + "/layer.tar", layer), ("manifest.json", manifest)):
        ti = tarfile.TarInfo(n); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
PY
  echo "$SCRATCH/$(tr ':/' '__' <<<"$2").tar"
}

# Go's archive/tar, through umoci: the on-disk names packed into an OCI image.
umoci init --layout "$SCRATCH/oci" >/dev/null
umoci new --image "$SCRATCH/oci:go" >/dev/null
umoci unpack --image "$SCRATCH/oci:go" "$SCRATCH/bundle" >/dev/null
cp -a "$SCRATCH/tree/p/." "$SCRATCH/bundle/rootfs/"
umoci repack --image "$SCRATCH/oci:go" "$SCRATCH/bundle" >/dev/null
skopeo copy -q "oci:$SCRATCH/oci:go" "docker-archive:$SCRATCH/go.tar:names/go:1"
grep -v "$(printf link | xxd -p)" "$SCRATCH/expected" > "$SCRATCH/expected-files"

m=$SCRATCH/mnt
# A Latin-1 locale, made for the test (Debian ships only C and C.UTF-8 compiled).
locales="C C.UTF-8"
mkdir -p "$SCRATCH/loc"
if localedef -i en_US -f ISO-8859-1 "$SCRATCH/loc/en_US.ISO-8859-1" 2>/dev/null; then
  locales+=" en_US.ISO-8859-1"
else
  echo "SKIP: no Latin-1 locale (localedef failed); tested under C and C.UTF-8 only"
fi
for locale in $locales; do
  if [ "$locale" = en_US.ISO-8859-1 ]; then export LOCPATH=$SCRATCH/loc; else unset LOCPATH; fi
  export IMAGEFS_STORE=$SCRATCH/store-$locale
  LANG=$locale LC_ALL=$locale "$IMAGEFS" load -q "$(image_of pax.tar names/pax:1)" >/dev/null
  LANG=$locale LC_ALL=$locale "$IMAGEFS" load -q "$(image_of gnu.tar names/gnu:1)" >/dev/null
  LANG=$locale LC_ALL=$locale "$IMAGEFS" load -q "$(image_of ustar.tar names/ustar:1)" >/dev/null
  LANG=$locale LC_ALL=$locale "$IMAGEFS" load -q "$SCRATCH/go.tar" >/dev/null
  LANG=$locale start_mount "$m"
  for img in pax gnu; do
    root=$m/tags/docker.io/names/$img/1/rootfs
    chain=$("$IMAGEFS" inspect "names/$img:1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][0][7:])')
    check_eq "$locale, $img: rootfs/ lists every name once, byte for byte" "$(cat "$SCRATCH/expected")" "$(listing "$root")"
    check_eq "$locale, $img: diff/ too" "$(cat "$SCRATCH/expected")" "$(listing "$m/layers/$chain/diff")"
    bad=$(python3 - "$root" <<'PY'
import os, sys
root = sys.argv[1].encode()
for n in os.listdir(root):
    p = os.path.join(root, n)
    if n == b"link":
        t = os.readlink(p)
        if t != ("target-" + "\u00e9" * 70 + "-cafe\u0301").encode(): print("link", t)
    elif open(p, "rb").read() != n: print("content of", n)
PY
)
    check_eq "$locale, $img: each file holds its own name; the long link target is whole" "" "$bad"
    LANG=$locale LC_ALL=$locale "$IMAGEFS" export "names/$img:1" --rootfs -o "$SCRATCH/export-$img.tar"
    rm -rf "$SCRATCH/x" && mkdir "$SCRATCH/x" && tar --warning=no-unknown-keyword -xf "$SCRATCH/export-$img.tar" -C "$SCRATCH/x"
    check_eq "$locale, $img: export --rootfs keeps every name" "$(cat "$SCRATCH/expected")" "$(listing "$SCRATCH/x")"
    cp "$m/tags/docker.io/names/$img/1/image.tar" "$SCRATCH/again.tar"
    IMAGEFS_STORE=$SCRATCH/again-$locale-$img "$IMAGEFS" load -q "$SCRATCH/again.tar" >/dev/null
    IMAGEFS_STORE=$SCRATCH/again-$locale-$img "$IMAGEFS" export "names/$img:1" --rootfs -o "$SCRATCH/again-export.tar"
    rm -rf "$SCRATCH/x" && mkdir "$SCRATCH/x" && tar --warning=no-unknown-keyword -xf "$SCRATCH/again-export.tar" -C "$SCRATCH/x"
    check_eq "$locale, $img: image.tar loaded again keeps every name" "$(cat "$SCRATCH/expected")" "$(listing "$SCRATCH/x")"
  done
  check_eq "$locale, go (umoci): every name" "$(cat "$SCRATCH/expected-files")" \
    "$(listing "$m/tags/docker.io/names/go/1/rootfs" | grep -v "$(printf link | xxd -p)")"
  check_eq "$locale, GNU tar ustar: a path split at prefix and name" "split" \
    "$(cat "$m/tags/docker.io/names/ustar/1/rootfs/$deep/$(printf 'n%.0s' $(seq 1 90))")"
  stop_mount "$m" "$MOUNT_PID"
done
unset LOCPATH

# ---- AUFS metadata, as Docker's aufs driver exported layers.
python3 - "$SCRATCH/aufs.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, data=b"", **kw):
        ti = tarfile.TarInfo(name); ti.mtime = kw.pop("mtime", 1600000000)
        for k, v in kw.items(): setattr(ti, k, v)
        if ti.type == tarfile.REGTYPE: ti.size = len(data); t.addfile(ti, io.BytesIO(data))
        else: t.addfile(ti)
    add(".wh..wh.aufs", b"")
    add(".wh..wh.orph/", type=tarfile.DIRTYPE, mode=0o700)
    add(".wh..wh.plnk/", type=tarfile.DIRTYPE, mode=0o700)
    add(".wh..wh.plnk/253.4711", b"shared body\n", mode=0o750, uid=5, gid=6, mtime=1500000000)
    add("bin/", type=tarfile.DIRTYPE, mode=0o755)
    add("bin/a", type=tarfile.LNKTYPE, linkname=".wh..wh.plnk/253.4711")
    add("bin/b", type=tarfile.LNKTYPE, linkname=".wh..wh.plnk/253.4711")
    add("bin/plain", b"plain\n")
PY
export IMAGEFS_STORE=$SCRATCH/store-aufs
"$IMAGEFS" load -q "$(image_of aufs.tar names/aufs:1)" >/dev/null
start_mount "$m"
root=$m/tags/docker.io/names/aufs/1/rootfs
check_eq "AUFS metadata is not in rootfs/" "bin" "$(ls -A "$root" | xargs)"
check_eq "hardlinks into .wh..wh.plnk/ are files with its content" "shared body|shared body" "$(cat "$root/bin/a")|$(cat "$root/bin/b")"
check_eq "and its attributes, each a file of its own" "750 5 6 1500000000 1|750 5 6 1500000000 1" \
  "$(stat -c '%a %u %g %Y %h' "$root/bin/a")|$(stat -c '%a %u %g %Y %h' "$root/bin/b")"
check_eq "two inodes" "2" "$(stat -c %i "$root/bin/a" "$root/bin/b" | sort -u | wc -l)"
chain=$("$IMAGEFS" inspect names/aufs:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][0][7:])')
check_eq "diff/ keeps the layer's raw entries" ".wh..wh.aufs .wh..wh.orph .wh..wh.plnk bin" "$(ls -A "$m/layers/$chain/diff" | xargs)"
"$IMAGEFS" export names/aufs:1 --rootfs | tar -t > "$SCRATCH/aufs.list"
check_eq "export --rootfs follows the same rules" "./ ./bin/ ./bin/a ./bin/b ./bin/plain" "$(xargs < "$SCRATCH/aufs.list")"
stop_mount "$m" "$MOUNT_PID"
finish
