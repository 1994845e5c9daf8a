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

  test_clock.py --build B      prints PASS/FAIL, then "N passed, N failed". Time: about 45 s.
"""
import json
import os
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


def test_object_times(build, work):
    os.makedirs(work, exist_ok=True)
    c = jepsen.Cluster(build, 3, work, proxy=False, clock_hook=True)
    try:
        c.start()
        check(jepsen.wait_settled(c, 30), "no leader at start")
        r = c.cli(["--endpoints", c.endpoints(), "bucket", "create", "clocks", "--versioning"])
        check(r.returncode == 0, "bucket create: %s" % r.stderr)
        written, times = [], []

        def put():
            out = cli_json(c, ["put", "clocks", "k"])
            written.append(out["version_id"])
            rec = cli_json(c, ["get", "clocks", "k"])
            check(rec["version_id"] == written[-1], "latest is %s, not the version just written "
                  "%s (all: %s)" % (rec["version_id"], written[-1], written))
            times.append(rec["mod_time_ns"])

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
        other = [n for n in c.nodes if n is not ld][0]
        r = c.cli(["--endpoints", c.endpoints(), "cluster", "transfer-leader", str(other.id)])
        check(r.returncode == 0, "transfer-leader: %s" % r.stderr)
        check(jepsen.wait_for(lambda: c.log_leader() is other, 10), "transfer did not happen")
        put()
        fresh = cli_json(c, ["put", "clocks", "fresh"])
        vers = cli_json(c, ["versions", "clocks", "--prefix", "k"])["versions"]
        order = [v["version_id"] for v in vers if v["key"] == "k"]
        check(order == written[::-1], "ListObjectVersions order %s, written %s" % (order, written))
        check(fresh["version_id"], "no version id for the fresh key")
        check(times == sorted(times), "mod_time_ns went backwards for one key: %s (versions %s)"
              % (times, written))
        return "mod times %s (s after the first), latest and version order right" % (
            ["%+.3f" % ((t - times[0]) / 1e9) for t in times])
    finally:
        c.close()
        for n in c.nodes:
            n.poll_crash()
            check(not n.crashes, "node %d crashed: %s" % (n.id, n.crashes))


TESTS = [("jumps_under_load", test_jumps_under_load), ("object_times", test_object_times)]


def main():
    return jepsen.run_named_tests(TESTS, "mc-clock-", run_subdir="run")


if __name__ == "__main__":
    sys.exit(main())
