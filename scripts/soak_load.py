#!/usr/bin/env python3
"""The soak's workload (scripts/soak.sh sets it up): readers walking and reading the stable
images through the mount, checking every byte against the reference sums, while writers
import, load, remove, tag and pull lazily through registry/ in loops.

Usage: soak_load.py CONFIG.json   (written by soak.sh); prints a JSON summary on stdout.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import time

cfg = json.load(open(sys.argv[1]))
MOUNT, IMAGEFS, SCRATCH = cfg["mount"], cfg["imagefs"], cfg["scratch"]
DEADLINE = time.time() + cfg["seconds"]
lock = threading.Lock()
ops, errors = {}, []
wrong_bytes = 0


def count(op, ok=True, what=""):
    with lock:
        ops[op] = ops.get(op, 0) + 1
        if not ok:
            errors.append(f"{op}: {what}"[:400])


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def wrong(op, what):
    global wrong_bytes
    with lock:
        wrong_bytes += 1
    count(op, False, "WRONG BYTES " + what)


# ---- Readers: each picks an image and an activity, over and over.
def reader(n):
    rnd = random.Random(n)
    while time.time() < DEADLINE:
        img = rnd.choice(cfg["images"])
        root = f"{MOUNT}/images/{img['id']}/rootfs"
        sums = img["sums"]
        act = rnd.choice(["find", "cat", "tar", "cp", "chroot"] if img.get("shell") else
                         ["find", "cat", "tar", "cp"])
        try:
            if act == "find":
                r = subprocess.run(["find", root, "-type", "f"], capture_output=True, text=True)
                got = {p[len(root) + 1:] for p in r.stdout.splitlines()}
                ok = r.returncode == 0 and got == set(sums)
                count(act, ok, f"{img['id'][:12]}: rc {r.returncode}, {len(got)} files of "
                               f"{len(sums)}: {r.stderr[:200]}")
            elif act == "cat":
                for path in rnd.sample(sorted(sums), min(40, len(sums))):
                    if sha(f"{root}/{path}") != sums[path]:
                        wrong(act, f"{img['id'][:12]}:{path}")
                count(act)
            elif act == "tar":
                p = subprocess.Popen(["tar", "-C", root, "-cf", "-", "."], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                seen = 0
                with tarfile.open(fileobj=p.stdout, mode="r|") as t:
                    for m in t:
                        if not m.isfile():
                            continue
                        name = m.name[2:] if m.name.startswith("./") else m.name
                        h = hashlib.sha256(t.extractfile(m).read()).hexdigest()
                        seen += 1
                        if sums.get(name) != h:
                            wrong(act, f"{img['id'][:12]}:{name}")
                err = p.stderr.read().decode()
                rc = p.wait()
                count(act, rc == 0 and seen == len(sums), f"{img['id'][:12]}: rc {rc}, "
                      f"{seen} files of {len(sums)}: {err[:200]}")
            elif act == "cp":
                dest = f"{SCRATCH}/cp-{n}"
                shutil.rmtree(dest, ignore_errors=True)
                r = subprocess.run(["cp", "-a", root, dest], capture_output=True, text=True)
                bad = [p for p in sums if not os.path.isfile(f"{dest}/{p}") or sha(f"{dest}/{p}") != sums[p]]
                for p in bad[:5]:
                    wrong(act, f"{img['id'][:12]}:{p}")
                count(act, r.returncode == 0, f"{img['id'][:12]}: {r.stderr[:200]}")
                shutil.rmtree(dest, ignore_errors=True)
            else:
                r = subprocess.run(["chroot", root, "/bin/sh", "-c", "ls /bin | wc -l"],
                                   capture_output=True, text=True)
                count(act, r.returncode == 0 and r.stdout.strip() == str(img["shell"]),
                      f"{img['id'][:12]}: rc {r.returncode} out {r.stdout.strip()!r} {r.stderr[:200]}")
        except Exception as e:  # a read error (EIO, ENOENT) is a failure of the mount
            count(act, False, f"{img['id'][:12]}: {e}")


def cli(*args):
    return subprocess.run([IMAGEFS, *args], capture_output=True, text=True)


# ---- Writers: churn images the readers do not read.
def importer():
    while time.time() < DEADLINE:
        r = subprocess.run(["cp", cfg["churn_tar"], f"{MOUNT}/import/churn-import.tar"],
                           capture_output=True, text=True)
        # close() may return before the load ends (kernel opens): wait for the image.
        for _ in range(600):
            if r.returncode != 0 or cfg["churn_id"] in os.listdir(f"{MOUNT}/images"):
                break
            time.sleep(0.1)
        ok = r.returncode == 0 and cfg["churn_id"] in os.listdir(f"{MOUNT}/images")
        count("import", ok, r.stderr[:200] or "image not listed after the import")
        cli("rm", "-f", cfg["churn_id"])


def loader():
    while time.time() < DEADLINE:
        r = cli("load", "-q", cfg["churn2_tar"])
        count("load", r.returncode == 0, r.stderr[:200])
        r = cli("tag", cfg["churn2_ref"], "soak/tagged:1")
        count("tag", r.returncode == 0, r.stderr[:200])
        r = cli("untag", "soak/tagged:1")
        count("untag", r.returncode == 0, r.stderr[:200])
        r = cli("rm", cfg["churn2_ref"])
        count("rm", r.returncode == 0, r.stderr[:200])


def faults():
    import urllib.request
    kinds = ["drop", "status500", "slow", "truncate", "status429"]
    rnd = random.Random(7)
    while time.time() < DEADLINE:
        body = json.dumps({"match": "/blobs/", "kind": rnd.choice(kinds), "times": 1}).encode()
        try:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{cfg['proxy_port']}/_proxy/fault", data=body, method="POST"))
            count("fault")
        except Exception as e:
            count("fault", False, str(e))
        time.sleep(rnd.uniform(0.5, 3))


def lazy_puller():
    sums = cfg["remote_sums"]
    while time.time() < DEADLINE:
        root = f"{MOUNT}/registry/{cfg['remote_path']}/rootfs"
        try:
            names = sorted(sums)
            for path in names[:: max(1, len(names) // 30)]:
                if sha(f"{root}/{path}") != sums[path]:
                    wrong("lazy", path)
            count("lazy")
        except OSError as e:
            # An injected fault may outlast the retries: EIO, and the next access tries again.
            count("lazy-retry")
            if e.errno not in (5,):
                count("lazy", False, str(e))
        r = cli("rm", "-f", cfg["remote_ref"])
        if r.returncode != 0 and "No such image" not in r.stderr and "no such" not in r.stderr.lower():
            count("lazy-rm", False, r.stderr[:200])
        cli("prune")


def daemon_usage():
    pid = cfg["daemon_pid"]
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
    return len(os.listdir(f"/proc/{pid}/fd")), rss


def daemon_memory():
    """The daemon's own account (.imagefs/memory): anonymous vs file-backed RSS, heap in use."""
    try:
        with open(os.path.join(MOUNT, ".imagefs", "memory")) as f:
            return json.load(f)
    except (OSError, ValueError, KeyError) as e:
        count("memory", False, str(e))
        return {}


# The baseline for leaks: after a warm-up of the whole workload (caches filled, allocator
# arenas made for every thread), not of the readers alone. A memory sample every minute
# tells a leak (growing to the end) from a cache (flat once full).
baseline = {}
timeline = []


def sample_memory():
    start = time.time()
    while True:
        now = time.time()
        if "rss_kib" not in baseline and now >= start + cfg["warmup"]:
            baseline["fds"], baseline["rss_kib"] = daemon_usage()
            baseline["memory"] = daemon_memory()
        timeline.append({"s": int(now - start), **daemon_memory()})
        wake = now + 60
        if "rss_kib" not in baseline:
            wake = min(wake, start + cfg["warmup"])
        if wake >= DEADLINE:
            return
        time.sleep(wake - now)


threads = [threading.Thread(target=reader, args=(i,)) for i in range(cfg["readers"])]
threads.append(threading.Thread(target=sample_memory))
threads += [threading.Thread(target=f) for f in (importer, loader, faults, lazy_puller)]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump({"ops": ops, "errors": errors, "wrong_bytes": wrong_bytes, "baseline": baseline,
           "timeline": timeline},
          sys.stdout)
