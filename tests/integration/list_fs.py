#!/usr/bin/env python3
"""Lists a directory tree (e.g. `umoci unpack` output) or a tar, one line per path, in
the format tools/tree_list prints for a merged tree, so that the outputs can be diffed.

Fields: path|type|perms|uid|gid|size|mtime|link|sha256|rdev|xattrs|hardlink-group
Usage: list_fs.py dir PATH | list_fs.py tar FILE
"""
import hashlib
import os
import stat
import sys
import tarfile


def escape(b: bytes) -> str:
    out = []
    for c in b:
        if 0x21 <= c < 0x7F and chr(c) not in "\\|=;":
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def type_char(mode):
    for test, ch in ((stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"),
                     (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s")):
        if test(mode):
            return ch
    return "f"


def fmt(path, t, perms, uid, gid, size, mtime_ns, link, sha, rdev, xattrs, group):
    xs = ";".join(escape(k) + "=" + v.hex() for k, v in sorted(xattrs)) or "-"
    secs, nsec = divmod(mtime_ns, 10**9)
    return "|".join([path, t, "%04o" % perms, str(uid), str(gid), size, "%d.%d" % (secs, nsec),
                     link, sha, rdev, xs, group])


def list_dir(root: bytes):
    rows, inodes = [], {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [b""] if dirpath == root else []:
            pass
        names = dirnames + filenames
        for name in names + ([b"."] if dirpath == root else []):
            full = os.path.join(dirpath, name) if name != b"." else root
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            rows.append((escape(rel) if rel != b"." else ".", full, st))
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(escape(rel))
    out = []
    for path, full, st in sorted(rows):
        m = st.st_mode
        size = "-" if stat.S_ISDIR(m) else str(st.st_size if stat.S_ISREG(m) or stat.S_ISLNK(m) else 0)
        link = escape(os.readlink(full)) if stat.S_ISLNK(m) else "-"
        sha = "-"
        if stat.S_ISREG(m):
            with open(full, "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
        rdev = "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISCHR(m) or stat.S_ISBLK(m) else "-"
        try:
            xattrs = [(k.encode(), os.getxattr(full, k, follow_symlinks=False))
                      for k in os.listxattr(full, follow_symlinks=False)]
        except OSError:
            xattrs = []
        group = "-"
        if not stat.S_ISDIR(m) and st.st_nlink > 1:
            group = min(inodes[(st.st_dev, st.st_ino)])
        out.append(fmt(path, type_char(m), stat.S_IMODE(m), st.st_uid, st.st_gid, size,
                       st.st_mtime_ns, link, sha, rdev, xattrs, group))
    return out


def list_tar(path):
    out, groups, data = [], {}, {}
    with tarfile.open(path, encoding="utf-8", errors="surrogateescape") as tar:
        members = tar.getmembers()
        for m in members:
            if m.islnk():
                key = os.path.normpath(m.linkname)
                groups.setdefault(key, [key]).append(os.path.normpath(m.name))
        for m in members:
            name = os.path.normpath(m.name)
            if m.isfile():
                data[name] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
        by_name = {os.path.normpath(m.name): m for m in members}
        for m in members:
            name = os.path.normpath(m.name)
            target = by_name[os.path.normpath(m.linkname)] if m.islnk() else m
            key = os.path.normpath(m.linkname) if m.islnk() else name
            group = "-"
            if key in groups:
                group = min(escape(os.fsencode(n)) for n in groups[key])
            if target.isdir():
                t, size = "d", "-"
            elif target.issym():
                t, size = "l", str(len(os.fsencode(target.linkname)))
            elif target.ischr() or target.isblk() or target.isfifo():
                t, size = ("c" if target.ischr() else "b" if target.isblk() else "p"), "0"
            else:
                t, size = "f", str(target.size)
            mtime = target.pax_headers.get("mtime")
            if mtime is not None:
                secs, _, frac = mtime.partition(".")
                mtime_ns = int(secs) * 10**9 + int((frac + "000000000")[:9])
            else:
                mtime_ns = int(target.mtime) * 10**9
            xattrs = []
            for k, v in target.pax_headers.items():
                if k.startswith("SCHILY.xattr."):
                    xattrs.append((k[len("SCHILY.xattr."):].encode("utf-8", "surrogateescape"),
                                   v.encode("utf-8", "surrogateescape")))
            rdev = "%d,%d" % (target.devmajor, target.devminor) if t in "cb" else "-"
            out.append(fmt(escape(os.fsencode(name)), t, target.mode & 0o7777, target.uid, target.gid,
                           size, mtime_ns, escape(os.fsencode(target.linkname)) if t == "l" else "-",
                           data.get(os.path.normpath(target.name), "-") if t == "f" else "-", rdev, xattrs, group))
    return sorted(out)


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    lines = list_dir(os.fsencode(path)) if kind == "dir" else list_tar(path)
    sys.stdout.write("".join(line + "\n" for line in lines))
