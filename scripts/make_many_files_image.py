#!/usr/bin/env python3
"""Writes a docker-archive of LAYERS layers holding FILES files in all, where each layer
adds files, overwrites some of the layers below and deletes others (whiteouts).

Usage: make_many_files_image.py OUT.tar NAME:TAG [FILES] [LAYERS]
"""
import hashlib
import io
import json
import sys
import tarfile


def main():
    out, ref = sys.argv[1], sys.argv[2]
    files = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    layers = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    per_layer = files // layers + 1
    diff_ids, blobs = [], []
    n = 0
    for layer in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            def add(name, data=b"", kind=tarfile.REGTYPE):
                info = tarfile.TarInfo(name)
                info.mtime = 1700000000 + layer
                info.type = kind
                info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            made_dirs = set()
            for i in range(per_layer):
                if n >= files:
                    break
                d = "data/d%03d/e%03d" % (n // 10000, (n // 100) % 100)
                if d not in made_dirs:
                    parts = d.split("/")
                    for k in range(1, len(parts) + 1):
                        p = "/".join(parts[:k])
                        if p not in made_dirs:
                            add(p, kind=tarfile.DIRTYPE)
                            made_dirs.add(p)
                add("%s/f%06d" % (d, n), b"file %d in layer %d\n" % (n, layer))
                n += 1
            if layer > 0:  # overwrite and delete some files of lower layers
                for i in range(0, min(n, per_layer * layer), 97):
                    d = "data/d%03d/e%03d" % (i // 10000, (i // 100) % 100)
                    add("%s/f%06d" % (d, i), b"overwritten in layer %d\n" % layer)
                for i in range(13, min(n, per_layer * layer), 1009):
                    d = "data/d%03d/e%03d" % (i // 10000, (i // 100) % 100)
                    add("%s/.wh.f%06d" % (d, i))
        blob = buf.getvalue()
        blobs.append(blob)
        diff_ids.append("sha256:" + hashlib.sha256(blob).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(out, "w") as tar:
        def add_file(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add_file(config_name, config)
        for d, blob in zip(diff_ids, blobs):
            add_file(d[7:] + "/layer.tar", blob)
        add_file("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [ref],
                                               "Layers": [d[7:] + "/layer.tar" for d in diff_ids]}]).encode())


if __name__ == "__main__":
    main()
