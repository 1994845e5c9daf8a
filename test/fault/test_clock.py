#!/usr/bin/env python3
"""test_clock.py: wall-clock jumps against real metacenter processes on 127.0.0.1.

The nodes run with the test-only hook MC_TEST_WALL_CLOCK_FILE (src/util/clock.c): mc_wall_ns()
adds the offset written in a per-node file, so a test jumps one process's wall clock while it runs.
Leases, election and request timeouts use CLOCK_MONOTONIC, which the hook does not touch.

  1. safety: a 3-node cluster with --lease-reads under the register + append workload, the
     leader's (and half the time every node's) wall clock jumping by minutes to days forward and
     back, with the leader isolated half the time and by the isolate-leader nemesis (jepsen.py's
     `clock` nemesis): the history is linearizable, no acknowledged append is lost, hashes equal,
     one leader per term.
  2. object times: a versioned key written; the leader's clock jumped forward an hour (its next
     version's mod_time_ns shows it), written; every clock jumped back an hour, written; leadership
     moved to another node, written. The latest version must be the last one written (GET and
     ListObjectVersions order), and mod_time_ns must not go backwards: a leader never stamps below
     the newest op time it stamped or applied (src/node/node_write.c), so a key's last-modified
     stays monotonic across the jump and the leader change (it runs ahead of the wall clock
     until the clock catches up).
  3. new leader applies first: node 3 runs with the test-only hook MC_TEST_APPLY_DELAY_MS
     (src/node/node_ready.c: it applies committed entries seconds after they commit) and a wall
     clock an hour behind; a version written on another leader, leadership moved to node 3 at
     once, a version written. Node 3 wins the election before it has applied its predecessor's
     version, so only the rule that a new leader writes after applying an entry of its own term
     (src/node/node_write.c can_accept_write) keeps it from stamping the next version an hour
     before the previous one: mod_time_ns must not go backwards, the latest version must be the
     last one written, and the write must have waited for node 3's apply.

  4. restart behind: a one-node cluster restarted with its wall clock an hour behind: its next
     version's mod_time_ns must not go backwards and version ids stay in write order.

  test_clock.py --build B      prints PASS/FAIL, then "N passed, N failed". Time: about 45 s.
"""
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jepsen  # noqa: E402

ASAN = jepsen.ASAN


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def test_jumps_under_load(build, work):
    r = jepsen.run_once(build, nodes=3, duration=15 if ASAN else 25, seed=41,
                        nemeses=["clock", "isolate-leader"], node_flags=["--lease-reads"],
                        first="clock", workdir=work)
    check(r.ok, "; ".join(r.failures))
    jumps = [e for _, e in r.info.get("events", []) if e.startswith("wall clock jump")]
    check(jumps, "no clock jump happened")
    return "%s; %d jumps, e.g. %s" % (jepsen.summary_line(r), len(jumps), jumps[0])


def cli_json(c, args, node=None):
    r = c.cli(["--endpoints", node.client if node else c.endpoints(), "--json"] + args)
    check(r.returncode == 0, "%s: %s" % (" ".join(args), r.stderr.strip()))
    return json.loads(r.stdout)


def start_versioned(c, not_leader=None):
    """Start the cluster (leadership moved away from not_leader) and create the versioned bucket
    `clocks`."""
    c.start()
    check(jepsen.wait_settled(c, 30), "no leader at start")
    if not_leader is not None and c.leader() is not_leader:
        transfer_leader(c, [n for n in c.nodes if n is not not_leader][0])
    r = c.cli(["--endpoints", c.endpoints(), "bucket", "create", "clocks", "--versioning"])
    check(r.returncode == 0, "bucket create: %s" % r.stderr)


def put_and_get(c, written, times):
    """Write a version of clocks/k; it must be the latest; record its id and mod_time_ns."""
    out = cli_json(c, ["put", "clocks", "k"])
    written.append(out["version_id"])
    rec = cli_json(c, ["get", "clocks", "k"])
    check(rec["version_id"] == written[-1], "latest is %s, not the version just written %s "
          "(all: %s)" % (rec["version_id"], written[-1], written))
    times.append(rec["mod_time_ns"])


def check_versions(c, written, times):
    """ListObjectVersions newest first = written reversed; mod times never went backwards."""
    vers = cli_json(c, ["versions", "clocks", "--prefix", "k"])["versions"]
    order = [v["version_id"] for v in vers if v["key"] == "k"]
    check(order == written[::-1], "ListObjectVersions order %s, written %s" % (order, written))
    check(times == sorted(times), "mod_time_ns went backwards for one key: %s (versions %s)"
          % (times, written))


def transfer_leader(c, node):
    r = c.cli(["--endpoints", c.endpoints(), "cluster", "transfer-leader", str(node.id)])
    check(r.returncode == 0, "transfer-leader: %s" % r.stderr)
    check(jepsen.wait_for(lambda: c.log_leader() is node, 10), "transfer did not happen")


def stop_checked(c):
    c.close()
    for n in c.nodes:
        n.poll_crash()
        check(not n.crashes, "node %d crashed: %s" % (n.id, n.crashes))


def test_object_times(build, work):
    os.makedirs(work, exist_ok=True)
    c = jepsen.Cluster(build, 3, work, proxy=False, clock_hook=True)
    try:
        start_versioned(c)
        written, times = [], []

        def put():
            put_and_get(c, written, times)

        put()
        ld = c.leader()
        ld.set_clock_offset(3600)    # forward an hour: shows the hook works
        time.sleep(0.1)              # the hook re-reads the file every 20 ms
        put()
        skew = times[-1] / 1e9 - time.time()
        check(3500 < skew < 3700, "the clock hook did not move the wall clock (skew %.0f s)" % skew)
        for n in c.nodes:            # then everyone an hour back
            n.set_clock_offset(-3600)
        time.sleep(0.1)
        put()
        transfer_leader(c, [n for n in c.nodes if n is not ld][0])
        put()
        fresh = cli_json(c, ["put", "clocks", "fresh"])
        check(fresh["version_id"], "no version id for the fresh key")
        check_versions(c, written, times)
        return "mod times %s (s after the first), latest and version order right" % (
            ["%+.3f" % ((t - times[0]) / 1e9) for t in times])
    finally:
        stop_checked(c)


# Node 3 applies committed entries this long after they commit (MC_TEST_APPLY_DELAY_MS): longer
# than the transfer takes, so it is elected and asked to write while its predecessor's last
# version is still unapplied.
APPLY_DELAY_MS = 3000 if ASAN else 1500


def raw_put(build, node, deadline_s):
    """PUT clocks/k straight to node with build/rawwrite: one attempt per process, no session
    to register first (a CLI would register one, a write that would use up the window). Retries
    SlowDown until deadline_s; returns (version id, SlowDown answers before it was taken)."""
    refused, t_end = 0, time.time() + deadline_s
    while True:
        r = subprocess.run([os.path.join(build, "rawwrite"), node.client, "put", "0", "0",
                            "clocks", "k", "etag"], capture_output=True, text=True, timeout=30)
        out = json.loads(r.stdout) if r.stdout.strip() else {"status": r.stderr.strip()}
        if out["status"] == "OK" or out["status"] != "SlowDown" or time.time() > t_end:
            check(out["status"] == "OK", "put on node %d: %s" % (node.id, out))
            return out["version_id"], refused
        refused += 1
        time.sleep(0.02)


def test_new_leader_applies_first(build, work):
    os.makedirs(work, exist_ok=True)
    c = jepsen.Cluster(build, 3, work, proxy=False, clock_hook=True)
    slow = c.nodes[2]
    slow.env["MC_TEST_APPLY_DELAY_MS"] = str(APPLY_DELAY_MS)
    try:
        start_versioned(c, not_leader=slow)   # its slow applies would hold up the set-up
        written, times = [], []
        put_and_get(c, written, times)
        slow.set_clock_offset(-3600)     # an hour behind: the hook re-reads the file every 20 ms
        time.sleep(0.1)
        # No GET after this one: node 3 is elected before it applies it.
        written.append(cli_json(c, ["put", "clocks", "k"])["version_id"])
        acked = time.time()
        transfer_leader(c, slow)
        elected = time.time() - acked
        vid, refused = raw_put(build, slow, 10 + 2 * APPLY_DELAY_MS / 1000.0)
        written.append(vid)
        check(c.log_leader() is slow, "leadership left node 3 during the test")
        vers = {v["version_id"]: v for v in
                cli_json(c, ["versions", "clocks", "--prefix", "k"])["versions"]}
        check(len(vers) == 3 and set(vers) == set(written),
              "versions listed %s, written %s (a repeated version id?)" % (sorted(vers), written))
        times = [vers[v]["mod_time_ns"] for v in written]
        check_versions(c, written, times)
        rec = cli_json(c, ["get", "clocks", "k"])
        check(rec["version_id"] == written[-1], "latest is %s, not the last written %s" % (
            rec["version_id"], written[-1]))
        # Node 3 was asked before it applied the second version: it must have said SlowDown.
        check(refused > 0, "node 3 took the write at once (elected %.2f s after the last ack, "
              "apply delay %d ms): the window this test needs was not open" % (
                  elected, APPLY_DELAY_MS))
        return "node 3 elected %.2f s after the last ack, answered SlowDown %d times before " \
            "applying; mod times %s (s after the first)" % (elected, refused, [
                "%+.3f" % ((t - times[0]) / 1e9) for t in times])
    finally:
        stop_checked(c)


def test_restart_behind(build, work):
    """A node restarted with its wall clock an hour behind: everything it applied is already in
    its engine, so nothing passes apply's floor again; only the engine's op clock (the newest op
    time applied, read once per term: src/node/node_write.c can_accept_write) keeps its next
    version from being stamped an hour before the previous one. Its version ids are op times:
    distinct and in write order."""
    os.makedirs(work, exist_ok=True)
    c = jepsen.Cluster(build, 1, work, proxy=False, clock_hook=True)
    try:
        start_versioned(c)
        written, times = [], []
        put_and_get(c, written, times)
        put_and_get(c, written, times)
        n = c.nodes[0]
        n.stop()
        n.set_clock_offset(-3600)
        n.start()
        check(jepsen.wait_settled(c, 30), "no leader after the restart")
        put_and_get(c, written, times)
        check_versions(c, written, times)
        check(written == sorted(written), "version ids not in write order: %s" % written)
        return "mod times %s (s after the first)" % (
            ["%+.3f" % ((t - times[0]) / 1e9) for t in times])
    finally:
        stop_checked(c)


TESTS = [("jumps_under_load", test_jumps_under_load), ("object_times", test_object_times),
         ("new_leader_applies_first", test_new_leader_applies_first),
         ("restart_behind", test_restart_behind)]


def main():
    return jepsen.run_named_tests(TESTS, "mc-clock-", run_subdir="run")


if __name__ == "__main__":
    sys.exit(main())
