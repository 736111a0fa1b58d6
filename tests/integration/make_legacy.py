#!/usr/bin/env python3
"""Writes a legacy (Docker <= 1.9) docker-save tarball from a modern docker-archive.

One v1 image per layer: <id>/json (with id and parent), <id>/layer.tar (the same
uncompressed layer), <id>/VERSION, and a `repositories` file naming the top image.
Usage: make_legacy.py IN_DOCKER_ARCHIVE OUT_TAR NAME:TAG
"""
import hashlib
import io
import json
import sys
import tarfile


def main():
    src, dst, ref = sys.argv[1:4]
    name, tag = ref.rsplit(":", 1)
    with tarfile.open(src) as tin:
        manifest = json.load(tin.extractfile("manifest.json"))[0]
        config = json.load(tin.extractfile(manifest["Config"]))
        layers = [tin.extractfile(tin.getmember(path)).read() for path in manifest["Layers"]]
    with tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as tout:
        def add(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            tout.addfile(info, io.BytesIO(data))

        parent = ""
        for i, layer in enumerate(layers):
            v1_id = hashlib.sha256(f"legacy {parent} {hashlib.sha256(layer).hexdigest()}".encode()).hexdigest()
            v1 = {"id": v1_id, "created": config.get("created", "1970-01-01T00:00:00Z"),
                  "container_config": {}, "config": config.get("config", {}),
                  "architecture": config.get("architecture", "amd64"), "os": "linux"}
            if parent:
                v1["parent"] = parent
            dirinfo = tarfile.TarInfo(v1_id)
            dirinfo.type = tarfile.DIRTYPE
            dirinfo.mode = 0o755
            tout.addfile(dirinfo)
            add(f"{v1_id}/VERSION", b"1.0")
            add(f"{v1_id}/json", json.dumps(v1).encode())
            add(f"{v1_id}/layer.tar", layer)
            parent = v1_id
        add("repositories", json.dumps({name: {tag: parent}}).encode())
    print(parent)


if __name__ == "__main__":
    main()
