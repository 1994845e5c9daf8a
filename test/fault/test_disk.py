#!/usr/bin/env python3
"""test_disk.py: disk full, end to end, against a real 3-node cluster on 127.0.0.1.

Every node's data dir is on its own small tmpfs (`mount -t tmpfs -o size=256m`; the WAL
preallocates two 64 MiB segments). A ballast file fills a disk while the history-recording
client (jepsen_client) writes, the way a neighbour filling the disk does in production:

  1. admission (the leader's disk): the leader's free space drops below --disk-reserve-mb. Writes
     must fail fast with InsufficientStorage (CLI exit non-zero, well under the request timeout),
     linearizable reads keep working, the node logs `disk_space_low` and keeps running. The
     ballast is deleted: writes succeed again without a restart (`disk_space_ok`).
  2. real ENOSPC (a follower's disk filled to the last byte): the follower fail-stops with a clear
     `fatal_storage_error ... err=NoSpace` line and a non-zero exit, the two others keep accepting
     writes. Space is freed and the follower restarted: it recovers from its own WAL and LMDB (no
     corruption) and catches up.
  Then: every acknowledged append is present, the history is linearizable, the three state hashes
  are equal.

  test_disk.py --build B      prints PASS/FAIL, then "N passed, N failed". Time: about 40 s.
When mount is not permitted (not root, or a container without CAP_SYS_ADMIN; forced with
MC_TEST_DISK_NO_MOUNT=1) it falls back to step 1 alone on the real disk holding the work dir:
--disk-reserve-mb is set 512 MiB below that disk's free space and the ballast takes the free space
under it (never near full). Step 2 needs a small filesystem of its own and is then printed as NOT
TESTED. With less than 2 GiB free there either, it prints SKIP and counts 0 passed (a skip is not
a pass). Which mechanism ran is printed either way.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jepsen  # noqa: E402
from test_crash import Failed, check, client, verify_all, no_crash  # noqa: E402

ASAN = jepsen.ASAN
TMPFS_MB = 256
RESERVE_MB = 64


def mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave_bytes):
    """Grow a ballast file in `path` until at most leave_bytes are free (0: until ENOSPC)."""
    ballast = os.path.join(path, "ballast")
    chunk = b"\xa5" * (1 << 20)
    with open(ballast, "ab") as f:
        while True:
            room = free_bytes(path) - leave_bytes
            if leave_bytes and room <= 0:
                break
            try:
                n = len(chunk) if room >= len(chunk) or not leave_bytes else max(4096, room)
                f.write(chunk[:n])
                f.flush()
            except OSError:   # ENOSPC: the disk is full
                break
    if not leave_bytes:   # the last pages: small writes until nothing fits
        with open(ballast, "ab", buffering=0) as f:
            for _ in range(4096):
                try:
                    f.write(b"\xa5" * 512)
                except OSError:
                    break
    return ballast


def cli(cluster, args, node=None, timeout=20):
    eps = node.client if node else cluster.endpoints()
    t = time.time()
    r = cluster.cli(["--endpoints", eps, "--timeout-ms", "3000"] + args, timeout=timeout)
    return r, time.time() - t


def leader_of(cluster):
    ld = cluster.leader(timeout=15)
    check(ld is not None, "no leader")
    return ld


def test_disk_full(build, work, mounts, reserve_mb=RESERVE_MB, enospc=True):
    """mounts: each node's filesystem (the same one three times in the fallback)."""
    os.makedirs(work, exist_ok=True)
    c = jepsen.Cluster(build, 3, work, proxy=False,
                       extra_flags=["--disk-reserve-mb", str(reserve_mb)])
    for n, m in zip(c.nodes, mounts):
        n.dir = os.path.join(m, "data%d" % n.id)
    c.start()
    check(jepsen.wait_settled(c, 30), "no leader at start")
    hist = os.path.join(work, "history.jsonl")
    dur = 30 if ASAN else 24
    cl = client(build, c, hist, dur, seed=31)
    time.sleep(3)
    notes = []

    # -- 1. the leader's disk drops below the reserve
    ld = leader_of(c)
    lmount = mounts[c.nodes.index(ld)]
    ballast = fill(lmount, (reserve_mb - RESERVE_MB // 2) << 20)
    notes.append("leader %d free %d MiB" % (ld.id, free_bytes(lmount) >> 20))
    rejected = None
    for _ in range(50):
        r, took = cli(c, ["put", "jepsen", "probe-full"])
        if r.returncode != 0 and "InsufficientStorage" in r.stderr:
            rejected = took
            break
        time.sleep(0.1)
    check(rejected is not None, "writes not rejected with InsufficientStorage while the leader's "
          "disk is below the reserve: %s" % (r.stderr.strip() or r.stdout.strip()))
    check(rejected < 2.0, "rejection took %.1f s (should be immediate)" % rejected)
    for _ in range(5):    # stays rejected, never hangs
        r, took = cli(c, ["put", "jepsen", "probe-full"])
        check(r.returncode != 0 and "InsufficientStorage" in r.stderr and took < 2.0,
              "a write while the disk is low: rc %d in %.1f s: %s" % (r.returncode, took,
                                                                      r.stderr.strip()))
    r, _ = cli(c, ["get", "jepsen", "k0"], node=ld)    # linearizable read on the full leader
    check(r.returncode == 0 or "NoSuchKey" in r.stderr, "read while the disk is low: %s"
          % r.stderr.strip())
    check("disk_space_low" in ld.log(), "no disk_space_low line in the leader's log")
    check(ld.alive(), "the leader died while its disk was low: %s" % ld.log_tail(10))
    notes.append("rejected in %.0f ms" % (rejected * 1000))
    os.unlink(ballast)
    ok = jepsen.wait_for(lambda: cli(c, ["put", "jepsen", "probe-free"])[0].returncode == 0, 10,
                         0.2)
    check(ok, "writes not accepted again after freeing space: %s" % ld.log_tail(5))
    check("disk_space_ok" in ld.log(), "no disk_space_ok line after freeing space")

    if not enospc:
        notes.append("real ENOSPC fail-stop NOT TESTED (no filesystem of its own)")
        return finish(build, c, cl, hist, dur, notes)

    # -- 2. a follower's disk fills to the last byte: real ENOSPC, fail-stop
    fl = [n for n in c.nodes if n is not leader_of(c)][0]
    fmount = mounts[c.nodes.index(fl)]
    ballast = fill(fmount, 0)
    stopped = jepsen.wait_for(lambda: not fl.alive(), 20, 0.1)
    check(stopped, "follower %d kept running on a full disk (free %d B): %s" % (
        fl.id, free_bytes(fmount), fl.log_tail(5)))
    fl.expected_exit = True
    rc = fl.proc.returncode
    fatal = [ln for ln in fl.log().splitlines() if "fatal_storage_error" in ln]
    check(rc != 0, "follower exited 0 on ENOSPC")
    check(fatal and "NoSpace" in fatal[0], "no clear fatal_storage_error NoSpace line (exit %d): %s"
          % (rc, fatal or fl.log_tail(3)))
    notes.append("follower %d fail-stop exit %d: %s" % (fl.id, rc, fatal[0].split("msg=")[-1][:90]))
    r, _ = cli(c, ["put", "jepsen", "probe-two-left"])
    check(r.returncode == 0, "the two others do not accept writes: %s" % r.stderr.strip())
    time.sleep(1)
    os.unlink(ballast)
    fl.start(wait=True)
    return finish(build, c, cl, hist, dur, notes)


def finish(build, c, cl, hist, dur, notes):
    """The client's history ends: every acknowledged append present, linearizable, hashes equal."""
    cl.wait(timeout=dur + 60)
    check(cl.returncode == 0, "jepsen_client exited %s" % cl.returncode)
    check(jepsen.wait_settled(c, 30), "no leader at the end")
    s = verify_all(build, c, hist)
    no_crash(c)
    c.close()
    no_crash(c)
    notes.append("appends acked %s, lost %s" % (s.get("appends_acked"), s.get("appends_lost")))
    return "; ".join(notes)


def run(build, work, mounts, mechanism, **kw):
    """One disk_full run; returns (passed, failed)."""
    jepsen.log("disk full: " + mechanism)
    t0 = time.time()
    try:
        detail = test_disk_full(build, os.path.join(work, "run"), mounts, **kw)
        jepsen.log("PASS disk_full (%.1fs): %s" % (time.time() - t0, detail))
        return 1, 0
    except (Failed, Exception) as e:  # noqa: BLE001 - report, clean up
        jepsen.log("FAIL disk_full (%.1fs): %s (logs kept in %s)" % (time.time() - t0, e,
                                                                     work + "/run"))
        return 0, 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="mc-disk-")
    mounts = [os.path.join(work, "disk%d" % i) for i in range(1, 4)]
    passed = failed = 0
    mounted = []
    try:
        why = "MC_TEST_DISK_NO_MOUNT=1" if os.environ.get("MC_TEST_DISK_NO_MOUNT") == "1" else None
        for m in mounts if why is None else []:
            ok, why = mount_tmpfs(m, TMPFS_MB)
            if not ok:
                break
            mounted.append(m)
            why = None
        if why is None:
            passed, failed = run(build, work, mounts, "each node's data dir on its own %d MiB "
                                 "tmpfs (mount -t tmpfs), --disk-reserve-mb %d"
                                 % (TMPFS_MB, RESERVE_MB))
        elif free_bytes(work) >> 20 >= 2048:
            reserve = (free_bytes(work) >> 20) - 512
            passed, failed = run(build, work, [work] * 3, "FALLBACK, cannot mount a tmpfs (%s): "
                                 "admission only, on the real disk of %s with --disk-reserve-mb "
                                 "%d (512 MiB under its free space)" % (why, work, reserve),
                                 reserve_mb=reserve, enospc=False)
        else:
            jepsen.log("SKIP disk_full: cannot mount a tmpfs (%s) and under 2 GiB free in %s: "
                       "NOT TESTED" % (why, work))
    finally:
        jepsen._kill_all()
        for m in mounted:
            umount(m)
        if not failed:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))  # a skip counts 0 passed, not 1
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
