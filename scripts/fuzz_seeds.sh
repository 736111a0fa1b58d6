#!/usr/bin/env bash
# Generates the seed corpora of the fuzz targets (tests/fuzz/) from real producers: GNU
# tar and Python's tarfile for layers (whiteouts, hardlinks, GNU and PAX sparse files, PAX
# headers, GNU long names), tests/integration/make_fixtures.sh (umoci + skopeo) and
# scripts/make_image_archive.py for whole archives, and samples of every JSON document and
# header the parsers take. Usage:
#   fuzz_seeds.sh OUTDIR
# OUTDIR/<target>/ gets one file per seed. Done once: a second run with the same script is a
# no-op. A producer that is not installed (umoci, skopeo) is skipped with a note. Never
# commit the output (only tests/fuzz/regressions/).
set -euo pipefail
out=${1:?usage: fuzz_seeds.sh OUTDIR}
here=$(cd "$(dirname "$0")/.." && pwd)
stamp=$(sha256sum "$0" | cut -c1-16)
if [[ -f $out/.complete && $(cat "$out/.complete") == "$stamp" ]]; then
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=(auth_challenge credentials estargz fetch_config loader manifest reference tar_index tree)
for t in "${targets[@]}"; do mkdir -p "$out/$t"; done

# --- Layers: a rootfs with every entry kind, written by GNU tar in each format. -----------
root=$work/root
mkdir -p "$root/etc/opaque" "$root/bin" "$root/usr/lib/$(printf 'd%.0s' {1..120})"
echo hello > "$root/etc/hello"
ln "$root/etc/hello" "$root/bin/hardlink"
ln -s ../etc/hello "$root/bin/symlink"
: > "$root/etc/.wh.gone"
: > "$root/etc/opaque/.wh..wh..opq"
echo deep > "$root/usr/lib/$(printf 'd%.0s' {1..120})/$(printf 'f%.0s' {1..110})"
mkfifo "$root/bin/fifo"
printf 'caf\xc3\xa9' > "$root/etc/caf$(printf '\xc3\xa9')"
setfattr -n user.note -v fuzz "$root/etc/hello" 2>/dev/null || true
# Holes at the start, the middle and the end: GNU and PAX sparse maps.
truncate -s 1M "$root/bin/sparse"
echo middle | dd of="$root/bin/sparse" bs=1 seek=300000 conv=notrunc status=none
echo tail | dd of="$root/bin/sparse" bs=1 seek=900000 conv=notrunc status=none
tar_opts=(--numeric-owner --sort=name --mtime=2024-01-01 -C "$root")
tar "${tar_opts[@]}" --format=gnu --sparse -cf "$out/tar_index/gnu-sparse.tar" .
tar "${tar_opts[@]}" --format=pax --sparse --sparse-version=1.0 --xattrs \
  -cf "$out/tar_index/pax-sparse-1.0.tar" .
tar "${tar_opts[@]}" --format=pax --sparse --sparse-version=0.1 -cf "$out/tar_index/pax-sparse-0.1.tar" .
tar "${tar_opts[@]}" --format=pax --sparse --sparse-version=0.0 -cf "$out/tar_index/pax-sparse-0.0.tar" .
tar "${tar_opts[@]}" --format=ustar -cf "$out/tar_index/ustar.tar" ./etc ./bin/hardlink ./bin/symlink 2>/dev/null || true
tar "${tar_opts[@]}" --format=v7 -cf "$out/tar_index/v7.tar" ./etc 2>/dev/null || true

# Entries tar(1) cannot make from a directory: devices, odd owners, mtimes, PAX records.
python3 - "$out/tar_index" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
def member(name, kind=tarfile.REGTYPE, data=b"", **kw):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data
def write(path, members, fmt):
    with tarfile.open(path, "w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data else None)
members = [
    member("dir", tarfile.DIRTYPE, mode=0o755),
    member("dir/file", data=b"content\n", uid=1000, gid=1000, mtime=1700000000.5),
    member("dir/.wh.removed"),
    member("dir/sub/.wh..wh..opq"),
    member("dir/link", tarfile.LNKTYPE, linkname="dir/file"),
    member("dir/sym", tarfile.SYMTYPE, linkname="/etc/../file"),
    member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
    member("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
    member("run/fifo", tarfile.FIFOTYPE),
    member("./a/../b//c/./d", data=b"x"),
    member("/abs/path", data=b"y"),
    member("../escape", data=b"z"),
    member("l" * 300, data=b"long"),
    member("dir/hl-long", tarfile.LNKTYPE, linkname="l" * 300),
]
write(f"{out}/py-gnu.tar", members, tarfile.GNU_FORMAT)
write(f"{out}/py-pax.tar", members, tarfile.PAX_FORMAT)
pax = [member("x", data=b"pax", pax_headers={
    "path": "pax/p\u00e4th", "SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\x00",
    "mtime": "1700000000.123456789", "uid": "4294967295", "gid": "70000",
    "LIBARCHIVE.xattr.user.b": "Mg==", "size": "3"})]
write(f"{out}/py-pax-records.tar", pax, tarfile.PAX_FORMAT)
with tarfile.open(f"{out}/py-global.tar", "w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "global", "mtime": "1"}) as t:
    t.addfile(tarfile.TarInfo("g"), None)
open(f"{out}/empty-layer.tar", "wb").write(b"\0" * 1024)
PY

# --- Whole archives. -------------------------------------------------------------------
mkdir -p "$work/img/bin" "$work/img/etc"
echo small > "$work/img/etc/small"
ln -s small "$work/img/etc/link"
python3 "$here/scripts/make_image_archive.py" "$work/img" "$out/loader/small.tar" fuzz/small:1 >/dev/null
gzip -9 -n -c "$out/loader/small.tar" > "$out/loader/small.tar.gz"
if command -v umoci >/dev/null && command -v skopeo >/dev/null; then
  "$here/tests/integration/make_fixtures.sh" "$work/fixtures" >/dev/null
  cp "$work/fixtures/docker.tar" "$work/fixtures/oci.tar" "$work/fixtures/legacy.tar" "$out/loader/"
  # The OCI layout's documents: manifests, index, config.
  for blob in "$work"/fixtures/oci/blobs/sha256/*; do
    if head -c1 "$blob" | grep -q '{'; then cp "$blob" "$out/manifest/oci-${blob##*/}"; fi
  done
  cp "$work/fixtures/oci/index.json" "$out/manifest/oci-index.json"
  # The docker archive's layers are plain tars: layer seeds as umoci writes them.
  mkdir -p "$work/docker" && tar -xf "$work/fixtures/docker.tar" -C "$work/docker"
  for layer in "$work"/docker/*.tar; do cp "$layer" "$out/tar_index/umoci-${layer##*/}"; done
else
  echo "fuzz_seeds.sh: umoci or skopeo missing: no docker/OCI/legacy fixture archives" >&2
fi

# Tree inputs: layers joined by the separator tree_fuzz.cc splits at.
sep=IMAGEFS-NEXT-LAYER
layers=("$out"/tar_index/*.tar)
for ((i = 0; i < ${#layers[@]}; i++)); do
  lower=${layers[i]} upper=${layers[(i + 1) % ${#layers[@]}]}
  { cat "$lower"; printf %s "$sep"; cat "$upper"; } > "$out/tree/pair-$i.tar"
done
cp "$out"/tar_index/py-*.tar "$out/tree/"
{ cat "$out/tar_index/py-gnu.tar"; printf %s "$sep"; cat "$out/tar_index/py-pax.tar"; printf %s "$sep"
  cat "$out/tar_index/gnu-sparse.tar"; } > "$out/tree/three.tar"

# --- JSON documents and strings. ----------------------------------------------------------
python3 - "$out" <<'PY'
import base64, hashlib, json, os, sys
out = sys.argv[1]
def put(target, name, text):
    with open(os.path.join(out, target, name), "w") as f:
        f.write(text if isinstance(text, str) else json.dumps(text, indent=2))
d = lambda s: "sha256:" + hashlib.sha256(s.encode()).hexdigest()
desc = lambda mt, s, **kw: dict(mediaType=mt, digest=d(s), size=len(s), **kw)
OCI_M, OCI_I = "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"
DOCKER_M = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_L = "application/vnd.docker.distribution.manifest.list.v2+json"
config = {"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05.123456789+01:00",
          "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": [d("a"), d("b")]},
          "history": [{"created_by": "x"}, {"empty_layer": True}]}
put("manifest", "config.json", config)
put("manifest", "oci-manifest.json", {"schemaVersion": 2, "mediaType": OCI_M,
    "config": desc("application/vnd.oci.image.config.v1+json", "c"),
    "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", "l1"),
               desc("application/vnd.oci.image.layer.v1.tar+zstd", "l2", urls=["http://x"]),
               desc("application/vnd.oci.image.layer.nondistributable.v1.tar", "l3")]})
put("manifest", "docker-manifest.json", {"schemaVersion": 2, "mediaType": DOCKER_M,
    "config": desc("application/vnd.docker.container.image.v1+json", "c"),
    "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", "l1")]})
plat = lambda os_, arch, var=None: dict(os=os_, architecture=arch, **({"variant": var} if var else {}))
entries = [desc(OCI_M, "m1", platform=plat("linux", "amd64")),
           desc(OCI_M, "m2", platform=plat("linux", "arm64", "v8")),
           desc(OCI_M, "m3", platform=plat("linux", "arm", "v6")),
           desc(OCI_M, "m4", platform=dict(plat("windows", "amd64"), **{"os.version": "10.0"})),
           desc(OCI_M, "m5", platform=plat("unknown", "unknown"),
                annotations={"vnd.docker.reference.type": "attestation-manifest"})]
put("manifest", "oci-index.json", {"schemaVersion": 2, "mediaType": OCI_I, "manifests": entries})
put("manifest", "docker-list.json", {"schemaVersion": 2, "mediaType": DOCKER_L,
    "manifests": [dict(e, mediaType=DOCKER_M) for e in entries[:3]]})
v1 = [{"id": "b" * 64, "parent": "a" * 64, "created": "2024-01-01T00:00:00Z",
       "container_config": {"Cmd": ["/bin/sh -c #(nop) ADD file"]}},
      {"id": "a" * 64, "created": "2023-01-01T00:00:00Z"}]
s1 = {"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "architecture": "amd64",
      "fsLayers": [{"blobSum": d("l2")}, {"blobSum": d("l1")}],
      "history": [{"v1Compatibility": json.dumps(v)} for v in v1]}
put("manifest", "schema1.json", s1)
body = json.dumps(s1, indent=3)
tail = body.rindex("\n}")
protected = base64.urlsafe_b64encode(json.dumps({"formatLength": tail, "formatTail":
    base64.urlsafe_b64encode(body[tail:].encode()).decode().rstrip("=")}).encode()).decode().rstrip("=")
signed = body[:tail] + ',\n   "signatures": [{"header": {"jwk": {"crv": "P-256", "kty": "EC"}, "alg": "ES256"},' \
    ' "signature": "c2ln", "protected": "' + protected + '"}]' + body[tail:]
put("manifest", "schema1-signed.json", signed)
s1dup = dict(s1, fsLayers=[{"blobSum": d("l1")}] * 2, history=[{"v1Compatibility": json.dumps(v1[1])}] * 2)
put("manifest", "schema1-dup.json", s1dup)

put("fetch_config", "full.json", {"registries": {
    "docker.io": {"mirrors": ["http://mirror.local:5000", "https://m2", "m3:443"]},
    "reg.example:5000": {"ca_file": "/etc/ssl/reg.pem"}, "10.0.0.5:5000": {"insecure": True},
    "[::1]:5000": {}, "localhost": {"mirrors": []}},
    "concurrency": 3, "retries": 4, "retry_base_ms": 250, "tag_cache_seconds": 60.5, "quota_bytes": 0})
put("fetch_config", "empty.json", "{}")
put("fetch_config", "odd.json", '{"concurrency": -1, "retries": 1e99, "tag_cache_seconds": -0.0, "quota_bytes": 18446744073709551615}')

auth = lambda s: base64.b64encode(s.encode()).decode()
put("credentials", "docker-config.json", {"auths": {
    "https://index.docker.io/v1/": {"auth": auth("user:pa:ss")},
    "localhost:5000": {"username": "u", "password": "p"},
    "http://quay.io/v2/": {"identitytoken": "tok", "auth": ""},
    "quay.io": {"auth": "not base64!"}}})
put("credentials", "helpers.json", {"credHelpers": {"quay.io": "none"}, "credsStore": "",
    "auths": {"docker.io": {"auth": auth("a:b") + "\n"}}})
put("credentials", "auth-json.json", {"auths": {"localhost:5000/a": {"auth": auth("ns:1")},
    "localhost:5000/a/b": {"auth": auth("repo:2")}, "docker.io/library": {"auth": auth("lib:3")}}})
put("credentials", "creds-flag", "user:pass:word")

for i, h in enumerate([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
        'Basic realm="Registry Realm"',
        'Bearer realm="https://a/t", error="insufficient_scope", Basic realm="x", Negotiate',
        'bEaReR   realm = "q\\"uoted\\\\" ,  scope="a,b"',
        'Negotiate YWJjZA==, Bearer realm=unquoted',
        ', ,Bearer ,realm="x"']):
    put("auth_challenge", f"h{i}", h)
for i, r in enumerate([
        "busybox", "library/busybox:latest", "docker.io/library/busybox:1.36",
        "localhost:5000/a/b/c:tag", "quay.io/org/app@sha256:" + "a" * 64,
        "registry.example.com:443/x:y@sha256:" + "b" * 64, "index.docker.io/user/app",
        "[::1]:5000/img", "Upper/case", "a" * 300, "linux/arm64/v8", "linux/amd64",
        "windows/amd64", "x86_64", "aarch64"]):
    put("reference", f"r{i}", r)
PY

# --- eStargz layers as ctr-remote lays them out (tests/integration/stargz_test.sh checks real
# ones): each file's chunks in gzip members of their own, the TOC in a tar in one member, the
# footer; and TOCs alone (an input starting with "{" is a TOC to the target).
python3 - "$out/estargz" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
def footer(toc_off, legacy=False):
    hdr = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"
    tail = b"\x01\x00\x00\xff\xff" + bytes(8)
    if legacy:
        return hdr + b"\x16\x00" + b"%016xSTARGZ" % toc_off + tail
    return hdr + b"\x1a\x00SG\x16\x00" + b"%016xSTARGZ" % toc_off + tail
def layer(files, legacy=False, landmark=True):
    blob = bytearray(gzip.compress(b"tar headers", mtime=0))
    entries = [{"name": "etc/", "type": "dir", "mode": 493, "modtime": "2023-11-14T22:13:21Z"}]
    for name, data, cs in files:
        for n, off in enumerate(range(0, len(data), cs)):
            chunk = data[off:off + cs]
            at = len(blob)
            blob += gzip.compress(chunk, mtime=0)
            e = {"name": name, "type": "chunk" if n else "reg", "offset": at, "chunkDigest": sha(chunk)}
            if n == 0:
                e.update(size=len(data), mode=0o4755, uid=1, gid=2, digest=sha(data),
                         modtime="2023-11-14T22:13:21.5+01:00", xattrs={"user.k": "dsOp"})
            if off:
                e["chunkOffset"] = off
            if off + cs < len(data):
                e["chunkSize"] = cs
            entries.append(e)
        if landmark and name == files[0][0]:
            at = len(blob)
            blob += gzip.compress(b"\x0f", mtime=0)
            entries.append({"name": ".prefetch.landmark", "type": "reg", "size": 1, "offset": at,
                            "chunkDigest": sha(b"\x0f")})
    entries += [{"name": "etc/link", "type": "symlink", "linkName": "hello", "mode": 511},
                {"name": "etc/hard", "type": "hardlink", "linkName": "etc/hello"},
                {"name": "dev/null", "type": "char", "devMajor": 1, "devMinor": 3},
                {"name": "fifo", "type": "fifo"}, {"name": "empty", "type": "reg"}]
    toc = json.dumps({"version": 1, "entries": entries}).encode()
    t = io.BytesIO()
    with tarfile.open(fileobj=t, mode="w") as tf:
        ti = tarfile.TarInfo("stargz.index.json")
        ti.size = len(toc)
        tf.addfile(ti, io.BytesIO(toc))
    toc_off = len(blob)
    blob += gzip.compress(t.getvalue(), mtime=0) + footer(toc_off, legacy)
    return bytes(blob), toc
files = [("etc/hello", b"hello world\n", 4096), ("big", os.urandom(3000), 1024)]
blob, toc = layer(files)
open(out + "/estargz.blob", "wb").write(blob)
open(out + "/toc.json", "wb").write(toc)
open(out + "/stargz-legacy.blob", "wb").write(layer(files, legacy=True, landmark=False)[0])
packed = {"version": 1, "entries": [
    {"name": "p", "type": "reg", "size": 4, "offset": 30, "chunkDigest": sha(b"abcd")},
    {"name": "q", "type": "reg", "size": 2, "offset": 30, "innerOffset": 4, "chunkDigest": sha(b"ef")},
    {"name": "../escape", "type": "dir"}]}
open(out + "/packed.json", "w").write(json.dumps(packed))
# zstd:chunked, as containers/storage writes its TOC: whole files with only their digest,
# chunks with endOffset on the file, whiteouts as reg entries, zero access times.
zc = {"version": 1, "entries": [
    {"type": "dir", "name": "./", "mode": 493, "modtime": "2024-01-02T03:04:05.5Z",
     "accesstime": "0001-01-01T00:00:00Z", "changetime": "0001-01-01T00:00:00Z"},
    {"type": "reg", "name": "etc/small", "size": 6, "digest": sha(b"hello\n"), "offset": 40,
     "endOffset": 60},
    {"type": "reg", "name": "big", "size": 8000, "digest": sha(b"x" * 8000), "offset": 80,
     "endOffset": 200, "chunkSize": 5000, "chunkDigest": sha(b"x" * 5000)},
    {"type": "chunk", "name": "big", "offset": 140, "chunkOffset": 5000, "chunkSize": 3000,
     "chunkDigest": sha(b"x" * 3000), "chunkType": "zeros"},
    {"type": "reg", "name": "etc/.wh.gone"},
    {"type": "hardlink", "name": "etc/hard", "linkName": "etc/small"}]}
open(out + "/zstd-chunked.json", "w").write("Z" + json.dumps(zc))
PY
printf 'hello zstd frame\n%.0s' $(seq 1 50) | zstd -q -c > "$out/estargz/frame.zst"
printf 'P51777238:583180:3095585:1' > "$out/estargz/position"
echo "$stamp" > "$out/.complete"
for t in "${targets[@]}"; do echo "seeds: $t $(ls "$out/$t" | wc -l)"; done
