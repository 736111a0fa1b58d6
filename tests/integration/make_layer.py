#!/usr/bin/env python3
"""Writes hand-made layer tars that image tools rarely produce but the OCI rules cover.

Usage: make_layer.py OUT.tar CASE   (CASE is one of the functions below)
"""
import io
import sys
import tarfile


def add(tar, name, data=b"", **kw):
    info = tarfile.TarInfo(name)
    info.mtime = kw.pop("mtime", 1600000000)
    for k, v in kw.items():
        setattr(info, k, v)
    if info.type == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def base(tar):
    add(tar, "base/", type=tarfile.DIRTYPE, mode=0o755)
    add(tar, "base/target", b"lower target\n", mode=0o644)
    add(tar, "base/doomed", b"will be deleted\n", mode=0o644)
    add(tar, "base/opq/", type=tarfile.DIRTYPE, mode=0o755)
    add(tar, "base/opq/lower", b"lower\n")
    add(tar, "base/realdir/", type=tarfile.DIRTYPE, mode=0o755)
    add(tar, "base/realdir/inside", b"inside\n")
    add(tar, "base/via", type=tarfile.SYMTYPE, linkname="realdir")
    add(tar, "base/replace-me-dir/", type=tarfile.DIRTYPE, mode=0o700)
    add(tar, "base/replace-me-dir/child", b"child\n")
    add(tar, "base/replace-me-file", b"file\n")


def awkward(tar):
    # Parents never listed: implied as tar and umoci do.
    add(tar, "implied/a/b/c/file", b"deep\n")
    # The same path twice: the last wins.
    add(tar, "base/dup", b"first\n")
    add(tar, "base/dup", b"second, wins\n", mode=0o600)
    # The directory's new entry comes before its opaque marker: the marker still applies
    # only to the lower layers.
    add(tar, "base/opq/upper", b"upper\n")
    add(tar, "base/opq/.wh..wh..opq", b"")
    # A whiteout stored as a hardlink is still a whiteout.
    add(tar, "base/.wh.doomed", type=tarfile.LNKTYPE, linkname="base/target")
    add(tar, "links/late", b"late target\n", mode=0o640)
    # A hardlink to a file of a lower layer.
    add(tar, "links/to-lower", type=tarfile.LNKTYPE, linkname="base/target")
    # A hardlink to a symlink.
    add(tar, "links/sym", type=tarfile.SYMTYPE, linkname="../base/target")
    add(tar, "links/sym-hard", type=tarfile.LNKTYPE, linkname="links/sym")
    # A directory replaces a file, and a file replaces a directory.
    add(tar, "base/replace-me-file/", type=tarfile.DIRTYPE, mode=0o750)
    add(tar, "base/replace-me-file/new", b"new\n")
    add(tar, "base/replace-me-dir", b"now a file\n", mode=0o604)
    # A directory over a directory: attributes replaced, contents merged.
    add(tar, "base/realdir/", type=tarfile.DIRTYPE, mode=0o711, uid=7, gid=8)


def early(tar):
    # A whiteout through a symlinked directory is not followed: base/realdir/inside stays.
    # umoci 0.4.7 resolves the whiteout's path through the symlink and deletes it.
    add(tar, "base/via/.wh.inside", b"")
    # A hardlink listed before its target in the same layer. umoci cannot unpack this
    # (it links in tar order and fails with ENOENT); imagefs resolves it after the layer.
    add(tar, "links/early", type=tarfile.LNKTYPE, linkname="links/late")
    add(tar, "links/late", b"late target\n", mode=0o640)


def later(tar):
    # Deleting and overwriting a hardlink's target does not change what the link shows.
    add(tar, "base/.wh.target", b"")
    add(tar, "links/late", b"overwritten\n")


if __name__ == "__main__":
    out, case = sys.argv[1], sys.argv[2]
    fmt = tarfile.GNU_FORMAT if case == "later" else tarfile.PAX_FORMAT
    with tarfile.open(out, "w", format=fmt) as tar:
        globals()[case](tar)
