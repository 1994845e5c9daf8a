"""test_lost_data_dir.py: a voter whose data dir is lost (a disk replaced, a node restarted on
an empty dir with its old flags) must not help elect a member that lacks a write it had
acknowledged (src/raft/election.c: a voter that started with no entry and no snapshot votes
only for a candidate whose log is empty too, until it has caught up with a leader). Found by the session 8 review, reproduced with real processes:
before the guard the wiped member voted, the new leader lacked the write, and members diverged."""
import shutil
import time

from harness import FAST_FLAGS, Cluster, cli, wait_for


def agreed_leader(nodes, timeout):
    """The leader id every node in `nodes` reports, or None after timeout."""
    found = [None]

    def agreed():
        ids = set()
        for n in nodes:
            r = cli(["--endpoints", n.client, "--json", "cluster", "status"], timeout=3,
                    check=False)
            if r.returncode != 0:
                return False
            ids.add(__import__("json").loads(r.stdout).get("leader"))
        if len(ids) == 1 and ids != {None} and ids != {0}:
            found[0] = ids.pop()
            return True
        return False

    wait_for(agreed, timeout, interval=0.1)
    return found[0]


def test_wiped_voter_does_not_elect_a_member_missing_an_acknowledged_write():
    with Cluster(3, FAST_FLAGS) as c:
        L = c.leader()
        A, B = [n for n in c.nodes if n is not L]
        cli(["--endpoints", L.client, "bucket", "create", "bkt"])
        cli(["--endpoints", L.client, "put", "bkt", "before"])
        time.sleep(0.5)
        A.kill()  # A's log ends before the next write
        r = cli(["--endpoints", L.client, "put", "bkt", "acked"])
        assert r.returncode == 0, r.stderr  # acknowledged by L and B
        L.kill()
        B.kill()
        shutil.rmtree(B.dir)  # B's disk is lost
        B.start()  # same flags as before (--initial-cluster ...)
        A.start()
        # A lacks "acked" and B holds nothing: they must not elect each other.
        assert agreed_leader([A, B], 4) is None, "A and B elected a leader without the write"
        assert wait_for(lambda: "vote_refused_empty_log" in B.log(), 5), B.log_tail()
        L.start()
        lead = c.leader(timeout=20)
        assert lead is not None
        for n in c.nodes:
            ok = wait_for(lambda: cli(["--endpoints", n.client, "--consistency", "stale", "get",
                                       "bkt", "acked"], check=False).returncode == 0, 15)
            assert ok, "node %d lacks the acknowledged write" % n.id
        r = cli(["--endpoints", c.endpoints(), "check"], check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: "caught_up_after_empty_start" in B.log(), 10), B.log_tail()
