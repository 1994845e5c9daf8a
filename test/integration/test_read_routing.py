"""test_read_routing.py: the client library sends linearizable reads to the leader (found with a
LEADER request and asked again every 2 s), and rotates them over every member with
--follower-reads. Counted on each node by its read-latency histogram (/metrics)."""
import re
import subprocess
import time

from harness import ASAN, BIN, FAST_FLAGS, Cluster, cli, metrics_text, wait_for

SERIES = re.compile(r'^rustfs_metadata_replication_read_latency_seconds_count'
                    r'\{consistency="linearizable"\} (\d+)$', re.M)


def lin_reads(node):
    """Linearizable reads this node has answered (its read-latency histogram's count)."""
    m = SERIES.search(metrics_text(node))
    return int(m.group(1)) if m else 0


def counts(c):
    return {n.id: lin_reads(n) for n in c.nodes}


def bench_get(c, seconds, extra=()):
    """Closed-loop linearizable gets from 4 connections over every endpoint; returns ops."""
    out = subprocess.run([BIN, "bench", "--endpoints", c.endpoints(), "--workload", "get",
                          "--keys", "500", "--connections", "4", "--pipeline", "4",
                          "--duration", str(seconds), "--json"] + list(extra),
                         capture_output=True, text=True, timeout=seconds + 60)
    assert out.returncode == 0, out.stderr
    return out


def delta(after, before):
    return {k: after[k] - before[k] for k in after}


def test_linearizable_reads_go_to_the_leader():
    with Cluster(3, FAST_FLAGS, http=True) as c:
        leader = c.leader()
        cli(["bench", "load", "--endpoints", c.endpoints(), "--objects", "500"])
        before = counts(c)
        bench_get(c, 2)
        d = delta(counts(c), before)
        total = sum(d.values())
        assert total > 1000, d
        # Only what a client sends before its LEADER request is answered may land elsewhere.
        assert d[leader.id] >= 0.95 * total, ("reads not on the leader", leader.id, d)

        before = counts(c)
        bench_get(c, 2, ["--follower-reads"])
        d = delta(counts(c), before)
        total = sum(d.values())
        followers = total - d[leader.id]
        assert followers >= 0.3 * total, ("--follower-reads did not rotate", leader.id, d)


def test_reads_follow_a_leadership_transfer():
    """A read-only client hears of no NotLeader: it must find the new leader by asking again."""
    with Cluster(3, FAST_FLAGS, http=True) as c:
        leader = c.leader()
        cli(["bench", "load", "--endpoints", c.endpoints(), "--objects", "500"])
        target = next(n for n in c.nodes if n is not leader)
        seconds = 12 if ASAN else 8
        before = counts(c)
        proc = subprocess.Popen([BIN, "bench", "--endpoints", c.endpoints(), "--workload", "get",
                                 "--keys", "500", "--connections", "2", "--pipeline", "2",
                                 "--duration", str(seconds), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            cli(["--endpoints", c.endpoints(), "cluster", "transfer-leader", str(target.id)])
            assert wait_for(lambda: c.leader().id == target.id, 10)
            mid = counts(c)
            out, err = proc.communicate(timeout=seconds + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        end = counts(c)
        before_t = delta(mid, before)
        after_t = delta(end, mid)
        assert before_t[leader.id] >= 0.9 * sum(before_t.values()), before_t
        # Within LEADER_REFRESH_MS (2 s) the client moves to the new leader: of the reads after
        # the transfer (≥ 4.5 s of them), most must have gone there.
        total = sum(after_t.values())
        assert total > 500, after_t
        assert after_t[target.id] >= 0.5 * total, ("reads stayed on the old leader",
                                                   target.id, after_t)
