"""test_exactly_once.py: the same (session, seq) write delivered twice, across a leader change,
is applied once (the second delivery returns the cached result)."""
from harness import FAST_FLAGS, Cluster, cli, cli_json, rawwrite


def test_duplicate_write_across_leader_change_applies_once():
    with Cluster(3, FAST_FLAGS) as c:
        leader = c.leader()
        cli(["--endpoints", c.endpoints(), "bucket", "create", "once", "--versioning"])
        sess = rawwrite(leader.client, "register")
        assert sess["status"] == "OK" and sess["session"] > 0, sess
        first = rawwrite(leader.client, "put", str(sess["session"]), "1", "once", "k", "etag-1")
        assert first["status"] == "OK" and not first["duplicate"], first
        leader.kill()
        new_leader = c.leader(exclude=(leader.id,))
        again = rawwrite(new_leader.client, "put", str(sess["session"]), "1", "once", "k", "etag-1")
        assert again["status"] == "OK" and again["duplicate"], again
        assert again["version_id"] == first["version_id"], (first, again)
        # A new seq applies normally; the versioned bucket holds exactly two versions.
        nxt = rawwrite(new_leader.client, "put", str(sess["session"]), "2", "once", "k", "etag-2")
        assert nxt["status"] == "OK" and not nxt["duplicate"], nxt
        versions = cli_json(["--endpoints", new_leader.client, "versions", "once"])
        assert len(versions["versions"]) == 2, versions
        # A write on a follower is refused with NotLeader (the client library follows it).
        follower = [n for n in c.nodes if n.alive() and n.id != new_leader.id][0]
        red = rawwrite(follower.client, "put", str(sess["session"]), "3", "once", "k", "etag-3")
        assert red["status"] == "NotLeader", red
