#!/usr/bin/env python3
"""Packs a root directory as a one-layer `docker save` archive (docker-archive format).

Usage: make_image_archive.py ROOTDIR OUT.tar NAME:TAG [--cmd /bin/sh]
The layer is written by GNU tar (numeric owners, xattrs, a fixed mtime for entries that
have none newer), so the same tree gives the same image ID.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("out")
    p.add_argument("ref")
    p.add_argument("--cmd", default="/bin/sh")
    p.add_argument("--created", default="2024-01-01T00:00:00Z")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layer = os.path.join(tmp, "layer.tar")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name",
                        "--format=pax", "--pax-option=delete=atime,delete=ctime",
                        "-C", a.root, "-cf", layer, "."], check=True)
        h = hashlib.sha256()
        with open(layer, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        diff_id = "sha256:" + h.hexdigest()
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": a.created,
            "config": {"Cmd": [a.cmd], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": a.created, "created_by": "imagefs scripts/make_image_archive.py"}],
        }, sort_keys=True).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [a.ref],
                                "Layers": [diff_id[7:] + "/layer.tar"]}]).encode()
        with tarfile.open(a.out, "w") as out:
            def add(name, data):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
            add(config_name, config)
            out.add(layer, diff_id[7:] + "/layer.tar")
            add("manifest.json", manifest)


if __name__ == "__main__":
    main()
