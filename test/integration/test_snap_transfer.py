"""test_snap_transfer.py: a follower that crashed with a received snapshot file (recv-*.part)
complete but not yet finished catches up when the leader sends the same image again (review 8b
item 1): the whole .part is verified and installed at once; a .part larger than the image (left
by another leader's image at the same index and term) is discarded and received afresh."""
import os
import re
import time

from harness import Cluster, cli, open_files, rawwrite, snapshot_flags, wait_for
from test_membership import add_joiner
from test_recovery import count_keys

FLAGS = ["--heartbeat-ms", "50", "--election-timeout-ms", "500"] + snapshot_flags(40, 5)


def parts(node):
    d = os.path.join(node.dir, "snap")
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
            if f.startswith("recv-") and f.endswith(".part")}


def crash_while_finishing(c, node_id):
    """A joiner receives the leader's image; it is killed while the finish (checksum, rename)
    waits, so its snap dir keeps the complete recv-*.part. Returns (node, part name, size)."""
    n1 = c.nodes[0]
    os.environ["MC_TEST_SNAP_FINISH_DELAY_MS"] = "5000"
    try:
        n = add_joiner(c, node_id)
    finally:
        del os.environ["MC_TEST_SNAP_FINISH_DELAY_MS"]
    cli(["--endpoints", n1.client, "cluster", "add", str(node_id), n.peer, "--learner",
         "--client-addr", n.client])
    assert wait_for(lambda: "snapshot_receive_finishing" in n.log(), 30), n.log_tail()
    n.kill()
    p = parts(n)
    assert len(p) == 1, p
    name, size = next(iter(p.items()))
    return n, name, size


def installs(n):
    return n.log().count("snapshot_installed")


def test_complete_part_after_crash_is_finished_on_resend():
    with Cluster(1, FLAGS) as c:
        n1 = c.nodes[0]
        c.leader()
        cli(["--endpoints", n1.client, "bucket", "create", "bkt"])
        cli(["bench", "load", "--objects", "1000", "--endpoints", n1.client, "--bucket", "bkt",
             "--connections", "1", "--pipeline", "8"], timeout=120)
        # n2: have == total, the complete file is verified and installed at the first chunk.
        n2, _, _ = crash_while_finishing(c, 2)
        # n3: have > total, the .part holds more than the image (another leader's larger one).
        n3, name, _ = crash_while_finishing(c, 3)
        with open(os.path.join(n3.dir, "snap", name), "ab") as f:
            f.write(b"\x5a" * 8192)
        # A stale .part of an older image next to n2's (a crash in an earlier receive): the
        # start-up cleanup keeps only the newest (review 8b #2), so none is left after catch-up.
        idx, term = (int(x, 16) for x in name[5:-5].split("-"))
        stale = "recv-%016x-%016x.part" % (idx - 1, term)
        with open(os.path.join(n2.dir, "snap", stale), "wb") as f:
            f.write(b"\x00" * 65536)
        before = {n.id: installs(n) for n in (n2, n3)}
        for n in (n2, n3):
            n.start()  # no new writes: the leader sends the very same image again
        # The leader's first send waits SNAP_SEND_STALL_MS (30 s) for an ack that the crash
        # lost, then Raft retries it: on main's code every retry was dropped as duplicates.
        for n in (n2, n3):
            ok = wait_for(lambda: installs(n) > before[n.id], 45)
            assert ok, "node %d: not installed within 45 s: %s" % (n.id, n.log_tail(30))
            assert parts(n) == {}, parts(n)
        assert "snapshot_receive_complete_on_resume" in n2.log(), n2.log_tail(30)
        assert "snapshot_receive_discarded" in n3.log(), n3.log_tail(30)
        # Both learners really hold the data: a read served by each one.
        for n in (n2, n3):
            r = cli(["--endpoints", n.client, "--consistency", "stale", "ls", "bkt",
                     "--max-keys", "5", "--json"], check=False)
            assert r.returncode == 0 and '"key_count": 5' in r.stdout.replace(":5", ": 5"), \
                (r.stdout, r.stderr)


def test_a_send_holds_its_image_open_once_and_closes_it_when_done():
    """The leader's send to a learner reads its image through one descriptor, from the first
    chunk read to the send's end (node_chunk_read.c); it is closed after the send (on a worker),
    so the leader's image descriptors go back to none. Each chunk read is held 200 ms by the
    test hook so the stream can be watched. Before, each chunk opened and closed the file: no
    descriptor was ever seen held."""
    with Cluster(1, FLAGS) as c:
        n1 = c.nodes[0]
        c.leader()
        cli(["bench", "load", "--objects", "10000", "--endpoints", n1.client, "--connections",
             "4", "--pipeline", "32"], timeout=120)
        n1.stop()
        os.environ["MC_TEST_SNAP_READ_DELAY_MS"] = "200"
        try:
            n1.start()
        finally:
            del os.environ["MC_TEST_SNAP_READ_DELAY_MS"]
        c.leader()
        assert not open_files(n1, ".snap"), open_files(n1, ".snap")
        n2 = add_joiner(c, 2)
        cli(["--endpoints", n1.client, "cluster", "add", "2", n2.peer, "--learner",
             "--client-addr", n2.client])
        held = []
        deadline = time.time() + 60
        while "snapshot_sent" not in n1.log() and time.time() < deadline:
            held.append(len(open_files(n1, ".snap")))
            time.sleep(0.05)
        assert "snapshot_sent" in n1.log(), n1.log_tail(30)
        assert "snapshot_send_failed" not in n1.log(), n1.log_tail(30)
        assert held and max(held) == 1 and held.count(1) >= 3, \
            "image descriptors held while sending: %s" % held
        assert wait_for(lambda: not open_files(n1, ".snap"), 5), open_files(n1, ".snap")
        assert wait_for(lambda: installs(n2) == 1, 30), n2.log_tail(30)


IMAGE_MADE = re.compile(r"msg=snapshot_created .*\bimage=1\b")


def images_made(node):
    """Engine images the node made (`snapshot_created ... image=1`, whatever fields follow)."""
    return len(IMAGE_MADE.findall(node.log()))


def newer_image(node, bucket, i):
    """A put (the applied index moves past the newest image), then a `snapshot save` asked once
    and not retried: the node makes its i-th image and no stream holds it. Asked again while the
    node's answer made none (a snapshot was being taken: the save only waits for it)."""
    cli(["--endpoints", node.client, "put", bucket, "k%d" % i])
    for _ in range(5):
        assert rawwrite(node.client, "saveask")["status"] == "Busy"
        if wait_for(lambda: images_made(node) >= i, 2):
            return
    raise AssertionError("no image %d: %s" % (i, node.log_tail(30)))


def test_an_image_being_sent_is_not_pruned_while_newer_images_are_made():
    """No prune takes a file a stream holds (node_chunk_read.c: node_snap_use before the open,
    node_snap_unuse after the close). While the leader sends its image I to a learner (each
    chunk read held 400 ms by MC_TEST_SNAP_READ_DELAY_MS) and holds it open, two newer images J
    and K are made (a save asked once: want_image, which a send does not hold back), and the
    prune after K, which keeps the two newest files and the newest image, leaves I to a later
    prune (`snapshot_prune_deferred`). The send completes, the learner installs I (the receive
    checks the whole file's checksum) and holds every object; once the send is over, I goes at
    once (`snapshot_prune_resumed`, session 18), without another snapshot or install."""
    os.environ["MC_TEST_SNAP_READ_DELAY_MS"] = "400"
    try:
        with Cluster(1, FLAGS) as c:
            n1 = c.nodes[0]
            c.leader()
            cli(["bench", "load", "--objects", "10000", "--endpoints", n1.client,
                 "--connections", "4", "--pipeline", "32"], timeout=120)
            cli(["--endpoints", n1.client, "bucket", "create", "extra"])
            n2 = add_joiner(c, 2)
            cli(["--endpoints", n1.client, "cluster", "add", "2", n2.peer, "--learner",
                 "--client-addr", n2.client])
            started = re.compile(r"msg=snapshot_send_started to=2 index=(\d+) bytes=(\d+)")
            assert wait_for(lambda: started.search(n1.log()), 30), n1.log_tail(30)
            index, size = (int(x) for x in started.search(n1.log()).groups())
            assert size > 3 << 20, "a send of %d bytes is too short to watch" % size
            assert images_made(n1) == 1, n1.log_tail(30)
            sent = "msg=snapshot_sent to=2 index=%d " % index
            name = "snap-%016x-" % index
            # The stream marks I in use when its first read opens it (after that read's delay);
            # a prune before then may take I, and the send looks it up again.
            assert wait_for(lambda: any(name in f for f in open_files(n1, ".snap")), 10), \
                open_files(n1, ".snap")
            newer_image(n1, "extra", 2)  # J: I is still one of the two newest files
            newer_image(n1, "extra", 3)  # K: the prune would take I
            log = n1.log()
            deferred = re.search(r"msg=snapshot_prune_deferred path=\S*/%s\S* reason=in_use" %
                                 name, log)
            assert deferred, "I was not kept for its stream: %s" % n1.log_tail(30)
            assert sent not in log[:deferred.start()], "the send ended before K was made"
            assert "/" + name not in "".join(re.findall(r"msg=snapshot_pruned path=\S+", log))
            assert wait_for(lambda: sent in n1.log(), 30), n1.log_tail(30)
            assert "snapshot_send_failed" not in n1.log(), n1.log_tail(30)
            assert wait_for(lambda: "msg=snapshot_installed index=%d " % index in n2.log(), 30), \
                n2.log_tail(30)
            # The stream is over: its end prunes again and takes I, with no snapshot or install
            # in between (before session 18 I waited for the next one).
            pruned = re.compile(r"msg=snapshot_pruned path=\S*/%s" % name)
            assert wait_for(lambda: pruned.search(n1.log()), 10), n1.log_tail(30)
            log = n1.log()
            between = log[log.index(sent):pruned.search(log).start()]
            assert "snapshot_created" not in between and "snapshot_installed" not in between, \
                n1.log_tail(30)
            assert "msg=snapshot_prune_resumed" in between, n1.log_tail(30)
            assert not [f for f in os.listdir(os.path.join(n1.dir, "snap"))
                        if f.startswith(name) and f.endswith(".snap")], n1.log_tail(30)
            assert wait_for(lambda: count_keys(n2) == 10000, 30), count_keys(n2)
    finally:
        del os.environ["MC_TEST_SNAP_READ_DELAY_MS"]


def test_an_image_refused_while_a_hash_runs_is_not_received_again():
    """A learner's whole image arrives while a state hash runs there (an admin CHECK request,
    held 6 s by MC_TEST_CHECK_HASH_DELAY_MS, started while the image's finish is held 3 s by
    MC_TEST_SNAP_FINISH_DELAY_MS): the leader's SNAPSHOT message is refused (no install under the
    hash's transaction), so the leader sends the image again. The learner skips that resend to
    its end (`snapshot_resend_skipped`: the file is complete and verified) instead of receiving
    the whole image again, and installs it once the hash is over. Before, every resend was
    received and finished again from offset 0 (a second `snapshot_receive_started`); acking
    DONE at the resend's first chunk instead never installs an image this size (the leader
    sends its SNAPSHOT message only after the last chunk)."""
    import subprocess
    from harness import BIN
    with Cluster(1, FLAGS) as c:
        n1 = c.nodes[0]
        c.leader()
        cli(["bench", "load", "--objects", "20000", "--endpoints", n1.client, "--connections",
             "2", "--pipeline", "16"], timeout=120)
        os.environ["MC_TEST_SNAP_FINISH_DELAY_MS"] = "3000"
        os.environ["MC_TEST_CHECK_HASH_DELAY_MS"] = "6000"
        try:
            n2 = add_joiner(c, 2)
        finally:
            del os.environ["MC_TEST_SNAP_FINISH_DELAY_MS"]
            del os.environ["MC_TEST_CHECK_HASH_DELAY_MS"]
        proc = None
        try:
            cli(["--endpoints", n1.client, "cluster", "add", "2", n2.peer, "--learner",
                 "--client-addr", n2.client])
            finishing = re.compile(r"msg=snapshot_receive_finishing index=(\d+) bytes=(\d+)")
            assert wait_for(lambda: finishing.search(n2.log()), 30), n2.log_tail(30)
            index, size = (int(x) for x in finishing.search(n2.log()).groups())
            # Larger than the leader's send window: an ack of DONE at the resend's first chunk
            # would end the send before its SNAPSHOT message goes out (no install, ever).
            assert size > 6 << 20, "an image of %d bytes is too small" % size
            # The hash starts while the finish is held, and outlasts it by about 3 s.
            proc = subprocess.Popen([os.path.join(os.path.dirname(BIN), "rawwrite"), n2.client,
                                     "check"], stdout=subprocess.PIPE, text=True)
            assert wait_for(lambda: "check_request_started" in n2.log(), 10), n2.log_tail(30)
            installed = "msg=snapshot_installed index=%d " % index
            assert wait_for(lambda: installed in n2.log(), 30), n2.log_tail(30)
            log = n2.log()
            started = re.findall(r"msg=snapshot_receive_started from=1 index=%d " % index, log)
            assert len(started) == 1, "the image was received %d times: %s" % (
                len(started), n2.log_tail(30))
            # The scenario did happen: the message was refused, the resend skipped.
            assert "msg=snapshot_resend_skipped from=1 index=%d " % index in log, n2.log_tail(30)
            assert log.index("check_request_started") < log.index("msg=snapshot_received "), \
                n2.log_tail(30)
            proc.communicate(timeout=30)  # (rawwrite's own deadline may end it first)
            assert wait_for(lambda: count_keys(n2) == 20000, 30), count_keys(n2)
        finally:
            if proc and proc.poll() is None:
                proc.kill()
                proc.communicate()
