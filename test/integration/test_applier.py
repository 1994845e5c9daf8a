"""test_applier.py: a follower applies committed entries on a thread of lower CPU priority
(src/node/node_applier.c): the thread is there and runs the follower's applies; a backlog it holds
is applied before an engine image, a graceful stop and a leader change, so images hold exactly
their header's index and every replica ends with the same state."""
import json
import os
import subprocess

from harness import BIN, FAST_FLAGS, Cluster, cli, snapshot_flags, wait_for
from test_recovery import image_applied_index, load, snap_files

CLK_TCK = os.sysconf("SC_CLK_TCK")


def threads(node, name):
    """[(nice, cpu_seconds)] of the node's threads called name (/proc/PID/task/TID/stat)."""
    out = []
    base = "/proc/%d/task" % node.proc.pid
    for tid in os.listdir(base):
        try:
            with open(os.path.join(base, tid, "stat")) as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if comm == name:
            # fields[0] is field 3 (state): utime 14, stime 15, nice 19.
            out.append((int(fields[16]), (int(fields[11]) + int(fields[12])) / CLK_TCK))
    return out


def same_state(c, timeout=20):
    ok = wait_for(lambda: cli(["--endpoints", c.endpoints(), "check"],
                              check=False).returncode == 0, timeout)
    assert ok, cli(["--endpoints", c.endpoints(), "check"], check=False).stdout


def test_followers_apply_on_a_thread_of_lower_priority():
    with Cluster(3, FAST_FLAGS + ["--follower-apply-nice", "7"]) as c:
        leader = c.leader()
        load(c, 3000, connections=4)
        same_state(c)
        for n in c.nodes:
            ts = threads(n, "mc-apply")
            assert len(ts) == 1, (n.id, ts)
            assert ts[0][0] == 7, "node %d: the apply thread's nice is %d, not 7" % (n.id, ts[0][0])
            if n is not leader:
                assert ts[0][1] > 0, "follower %d applied nothing on its thread" % n.id
    with Cluster(1, FAST_FLAGS + ["--no-apply-thread"]) as c:
        c.leader()
        assert threads(c.nodes[0], "mc-apply") == [], "--no-apply-thread started the thread"


def test_an_out_of_range_nice_is_refused():
    r = subprocess.run([BIN, "serve", "--follower-apply-nice", "20"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0, r
    assert "--follower-apply-nice" in r.stderr, r.stderr


def count_keys_linearizable(endpoints):
    """Keys in bucket bench, listed through the leader (linearizable: the state at commit)."""
    total, after = 0, ""
    for _ in range(100):
        args = ["--endpoints", endpoints, "--json", "ls", "bench", "--max-keys", "1000"] + \
            (["--start-after", after] if after else [])
        page = json.loads(cli(args).stdout)
        total += page["key_count"]
        if not page["is_truncated"] or not page["objects"]:
            return total
        after = page["objects"][-1]["key"]
    return total


def test_a_backlog_is_applied_before_images_stops_and_leader_changes():
    # Test hooks: followers' threads sleep 10 ms before each entry, so with a few puts per entry
    # the queue is never empty and each image, stop and leader change below finds a backlog; an
    # image copy opens its read transaction 300 ms late, time in which a thread not drained
    # first would apply ~30 more entries into the image.
    flags = FAST_FLAGS + snapshot_flags(100, 50) + ["--image-entries", "200"]
    c = Cluster(3, flags)
    try:
        for n in c.nodes:
            n.env = {"MC_TEST_APPLIER_DELAY_US": "10000", "MC_TEST_SNAP_COPY_START_DELAY_MS": "300"}
        c.start()
        leader = c.leader()
        load(c, 3000, connections=4)
        followers = [n for n in c.nodes if n is not leader]
        for n in followers:
            assert "test_hook_applier_delay" in n.log(), n.log_tail()
            n.stop()
        for n in followers:
            images = [(i, p) for i, img, p in snap_files(n) if img]
            assert images, (n.id, snap_files(n))
            got = [(i, image_applied_index(p)) for i, p in images]
            assert all(i == a for i, a in got), \
                "node %d: images hold a state other than their header's index: %s" % (n.id, got)
        for n in followers:
            n.start()
        same_state(c)
        # The leader goes: a follower (with a backlog again) takes over and serves every write.
        load(c, 1000, connections=4)
        leader.kill()
        c.leader(exclude=(leader.id,))
        live = c.endpoints(followers)
        assert count_keys_linearizable(live) == 3000
        leader.start()
        load(c, 500, connections=2)
        same_state(c)
    finally:
        c.close()
