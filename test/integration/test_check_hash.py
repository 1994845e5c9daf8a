"""test_check_hash.py: the automatic consistency check (--check-interval-ms) hashes each replica's
state on the threadpool, not on the event loop: while every member's hash is held 3 s (the test
hook MC_TEST_CHECK_HASH_DELAY_MS, standing in for a large engine), writes keep their normal
latency, and the round still compares equal hashes once they are done (a member still hashing
answers "not yet", not "no hash"); and a stop while a hash runs waits for it, then exits
cleanly."""
import os
import time

from harness import FAST_FLAGS, Cluster, cli, wait_for

HASH_DELAY_MS = 3000
WRITE_MAX_S = 1.0  # a write stuck behind a blocked loop takes the whole delay


def _round_lines(node):
    """The leader's concluded rounds, in order (ok/failed, or incomplete)."""
    return [ln for ln in node.log().splitlines()
            if "consistency_check_round" in ln or "consistency_check_incomplete" in ln]


def test_writes_flow_while_the_check_hash_is_delayed():
    os.environ["MC_TEST_CHECK_HASH_DELAY_MS"] = str(HASH_DELAY_MS)
    c = Cluster(3, FAST_FLAGS + ["--check-interval-ms", "500"])
    try:
        try:
            c.start()
        finally:
            del os.environ["MC_TEST_CHECK_HASH_DELAY_MS"]
        eps = c.endpoints()
        bad = []  # writes that failed or took longer than WRITE_MAX_S

        def write(args, limit_s=WRITE_MAX_S):
            t0 = time.time()
            r = cli(["--endpoints", eps] + args, check=False, timeout=20)
            took = time.time() - t0
            if r.returncode != 0 or took > limit_s:
                bad.append((" ".join(args), round(took, 2), r.returncode, r.stderr.strip()[:80]))

        # The first mark is proposed as soon as a leader is elected: its hash runs from here on.
        # This first write may wait for the election (the client's deadline is 5 s).
        write(["bucket", "create", "hashing"], limit_s=30)
        assert wait_for(lambda: any("test_hook_check_hash_delay" in x.log() for x in c.nodes),
                        10), [x.log_tail(10) for x in c.nodes]
        # Marks come a round plus 500 ms apart: on a loop that hashes, a window this long holds
        # a 3 s stall.
        hook_at = time.time()
        n = 0
        while time.time() - hook_at < HASH_DELAY_MS / 1000.0 + 1.5:
            write(["put", "hashing", "k%03d" % n])
            n += 1
        assert not bad, "%d of %d writes failed or were slower than %.1f s while hashing: %s" % (
            len(bad), n + 1, WRITE_MAX_S, bad[:5])
        assert n >= 5, "only %d writes in the hash's window" % n
        # The round of that mark ends once the hashes are done: compared and equal.
        leader = c.leader()
        assert wait_for(lambda: _round_lines(leader), 15), leader.log_tail(30)
        first = _round_lines(leader)[0]
        assert "result=ok equal=2 differs=0" in first, first
        for node in c.nodes:
            assert "consistency_check_failed" not in node.log(), node.log_tail(30)
            assert "consistency_check_hash_failed" not in node.log(), node.log_tail(30)
    finally:
        c.close()


def test_a_stop_waits_for_the_check_hash():
    """A stop while the hash job runs waits for it (node_queue_work) and then exits cleanly: the
    job's transaction is closed before the engine (the sanitizer build reports a use after
    free or a leak; Cluster.close fails the test on one)."""
    os.environ["MC_TEST_CHECK_HASH_DELAY_MS"] = str(HASH_DELAY_MS)
    c = Cluster(1, FAST_FLAGS + ["--check-interval-ms", "500", "--log-level", "debug"])
    try:
        try:
            c.start()
        finally:
            del os.environ["MC_TEST_CHECK_HASH_DELAY_MS"]
        n = c.nodes[0]
        assert wait_for(lambda: "test_hook_check_hash_delay" in n.log(), 10), n.log_tail(20)
        started = time.time()
        n.stop()
        took = time.time() - started
        assert n.proc.returncode == 0, (n.proc.returncode, n.log_tail(20))
        lines = n.log().splitlines()
        hashed = [i for i, ln in enumerate(lines) if "consistency_check_hashed" in ln]
        stopped = [i for i, ln in enumerate(lines) if "node_stopped" in ln]
        assert hashed and stopped and hashed[0] < stopped[0], n.log_tail(20)
        assert took >= HASH_DELAY_MS / 1000.0 - 1.5, "the stop did not wait (%.2f s)" % took
    finally:
        c.close()
