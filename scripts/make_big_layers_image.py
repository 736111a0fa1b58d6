#!/usr/bin/env python3
"""Adds layers of large files to a one-image `docker save` archive, for the lazy-files bench:
a Debian base plus LAYERS layers of MIB_PER_LAYER MiB each, in 4 MiB files of random bytes
(incompressible, as the bulk of a real image's bytes behaves once gzipped).

Usage: make_big_layers_image.py BASE.tar OUT.tar NAME:TAG LAYERS MIB_PER_LAYER
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile

FILE_MIB = 4


def layer_tar(path, index, mib):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name in ("data", f"data/layer{index}"):
            d = tarfile.TarInfo(name)
            d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            t.addfile(d)
        for i in range(mib // FILE_MIB):
            f = tarfile.TarInfo(f"data/layer{index}/blob{i:04d}.bin")
            f.size, f.mode, f.mtime = FILE_MIB << 20, 0o644, 1700000000
            t.addfile(f, io.BytesIO(os.urandom(f.size)))
        small = f"layer {index}\n".encode()
        f = tarfile.TarInfo(f"data/layer{index}/small.txt")
        f.size, f.mode, f.mtime = len(small), 0o644, 1700000000
        t.addfile(f, io.BytesIO(small))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    base, out, ref, layers, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    with tarfile.open(base) as b, tempfile.TemporaryDirectory() as tmp, \
            tarfile.open(out, "w") as o:
        manifest = json.load(b.extractfile("manifest.json"))[0]
        config = json.load(b.extractfile(manifest["Config"]))
        names = []
        for name in manifest["Layers"]:
            member = b.getmember(name)
            o.addfile(member, b.extractfile(member))
            names.append(name)
        for i in range(layers):
            path = os.path.join(tmp, f"{i}.tar")
            layer_tar(path, i, mib)
            digest = sha256_file(path)
            name = f"{digest}/layer.tar"
            o.add(path, arcname=name)
            names.append(name)
            config["rootfs"]["diff_ids"].append("sha256:" + digest)
            config.setdefault("history", []).append(
                {"created": "2024-01-01T00:00:00Z", "created_by": f"big layer {i}"})
            os.remove(path)
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        for name, data in ((config_name, config_bytes),
                           ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [ref],
                                                          "Layers": names}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            o.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
