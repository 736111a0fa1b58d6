#!/usr/bin/env python3
"""Writes one docker-archive holding N images (distinct configs over one shared layer),
to measure a store with many images. Usage: make_thousand_images.py OUT.tar [N]"""
import hashlib
import io
import json
import sys
import tarfile

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
layer_buf = io.BytesIO()
with tarfile.open(fileobj=layer_buf, mode="w") as t:
    info = tarfile.TarInfo("hello")
    info.size = 6
    t.addfile(info, io.BytesIO(b"hello\n"))
layer = layer_buf.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
manifest = []
with tarfile.open(out, "w") as tar:
    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    add("layer.tar", layer)
    for i in range(n):
        config = json.dumps({"created": "2024-01-01T00:00:%02dZ" % (i % 60), "architecture": "amd64",
                             "os": "linux", "config": {"Labels": {"n": str(i)}},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        name = hashlib.sha256(config).hexdigest() + ".json"
        add(name, config)
        manifest.append({"Config": name, "RepoTags": ["many/image%d:latest" % i], "Layers": ["layer.tar"]})
    add("manifest.json", json.dumps(manifest).encode())
