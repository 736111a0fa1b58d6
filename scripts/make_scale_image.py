#!/usr/bin/env python3
"""Writes a one-layer docker-archive of FILES empty files spread over DIRS directories
(d0000/f0000000 ...), as Python's tarfile writes it: the shape of node_modules, site-packages
and CUDA trees at scale. With DIRS 1 every file is in one directory.

Usage: make_scale_image.py OUT.tar NAME:TAG FILES DIRS
The layer is streamed to a temporary file, so memory stays small at millions of entries.
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile


def main():
    out, ref, files, dirs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    per_dir = (files + dirs - 1) // dirs
    work = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(out)))
    layer_path = os.path.join(work, "layer.tar")
    with open(layer_path, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            n = 0
            for d in range(dirs):
                info = tarfile.TarInfo("d%04d" % d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                tar.addfile(info)
                for _ in range(per_dir):
                    if n >= files:
                        break
                    info = tarfile.TarInfo("d%04d/f%07d" % (d, n))
                    info.mode, info.mtime = 0o644, 1700000000
                    tar.addfile(info, io.BytesIO(b""))
                    n += 1
    sha = hashlib.sha256()
    with open(layer_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    diff_id = "sha256:" + sha.hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make_scale_image.py"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref],
                            "Layers": [sha.hexdigest() + "/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer_path, arcname=sha.hexdigest() + "/layer.tar")
    os.unlink(layer_path)
    os.rmdir(work)


if __name__ == "__main__":
    main()
