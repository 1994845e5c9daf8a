"""test_snap_transfer.py: a follower that crashed with a received snapshot file (recv-*.part)
complete but not yet finished catches up when the leader sends the same image again (review 8b
item 1): the whole .part is verified and installed at once; a .part larger than the image (left
by another leader's image at the same index and term) is discarded and received afresh."""
import os
import re
import shutil
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
        # The leader's first send waited SNAP_SEND_STALL_MS (30 s) for an ack that the crash
        # lost (since session 18 a dropped link ends it at once), then Raft retries it: on main's
        # code every retry was dropped as duplicates.
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
            m = wait_log(n1, r"msg=snapshot_send_started to=2 index=(\d+) bytes=(\d+)", 30)
            index, size = (int(x) for x in m.groups())
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
            assert RESUMED.search(log, pruned.search(log).start()), n1.log_tail(30)
            assert not [f for f in os.listdir(os.path.join(n1.dir, "snap"))
                        if f.startswith(name) and f.endswith(".snap")], n1.log_tail(30)
            assert wait_for(lambda: count_keys(n2) == 10000, 30), count_keys(n2)
    finally:
        del os.environ["MC_TEST_SNAP_READ_DELAY_MS"]


# The loop's prune that took a file (node_snap_prune_due); one that took none says so only at
# debug level (rev18b N3).
RESUMED = re.compile(r"level=info .*msg=snapshot_prune_resumed pruned=[1-9]")


def test_an_image_a_stop_left_is_pruned_at_the_next_start():
    """A stop can leave an image that a prune deferred while a stream held it (the deferred
    prune does not run while stopping; rev18 P1): the first tick after the next start prunes it,
    not the first snapshot or install. Here such an image is put back into snap/ while the node
    is stopped (an older image of its own, which the prunes after two newer images had taken),
    and goes within seconds of the start with no snapshot made meanwhile, said by
    `snapshot_prune_resumed`. A start with nothing to prune does not say it (before session 19
    every start did)."""
    with Cluster(1, FLAGS) as c:
        n1 = c.nodes[0]
        c.leader()
        cli(["--endpoints", n1.client, "bucket", "create", "bkt"])
        newer_image(n1, "bkt", 1)
        m = re.search(r"msg=snapshot_created index=(\d+) term=(\d+) \S+ image=1\b", n1.log())
        name = "snap-%016x-%016x.snap" % (int(m.group(1)), int(m.group(2)))
        d = os.path.join(n1.dir, "snap")
        kept = os.path.join(c.tmp, name)
        shutil.copyfile(os.path.join(d, name), kept)
        newer_image(n1, "bkt", 2)
        newer_image(n1, "bkt", 3)  # the prune after it keeps only the newer two
        assert wait_for(lambda: name not in os.listdir(d), 10), (os.listdir(d), n1.log_tail(30))
        n1.stop()
        os.rename(kept, os.path.join(d, name))
        mark = len(n1.log())
        t0 = time.time()
        n1.start()
        assert wait_for(lambda: name not in os.listdir(d), 5), (os.listdir(d), n1.log_tail(30))
        took = time.time() - t0
        log = n1.log()[mark:]
        pruned = re.search(r"msg=snapshot_pruned path=\S*/%s " % name, log)
        assert pruned, n1.log_tail(30)
        assert "snapshot_created" not in log[:pruned.start()], n1.log_tail(30)
        assert RESUMED.search(log, pruned.end()), n1.log_tail(30)
        assert took < 5, "pruned %.1f s after the start" % took
        # A clean start: nothing to prune, nothing said. The node leads (ticks ran) and serves.
        n1.stop()
        mark = len(n1.log())
        n1.start()
        c.leader()
        cli(["--endpoints", n1.client, "put", "bkt", "after"])
        time.sleep(1)  # ten ticks at least
        log = n1.log()[mark:]
        assert "msg=snapshot_pruned" not in log, n1.log_tail(30)
        assert "snapshot_prune_resumed" not in log, n1.log_tail(30)


def wait_log(node, pattern, timeout):
    """The first match of the regex pattern in node's log once there is one (polled up to
    timeout seconds); fails with the log's tail otherwise."""
    rx = re.compile(pattern)
    found = []
    assert wait_for(lambda: found.append(rx.search(node.log())) or found[-1], timeout), \
        node.log_tail(30)
    return found[-1]


def learner_hashing_while_receiving(c, hash_ms):
    """A learner n2 receives the leader's image of 20000 objects; while its finish is held 3 s
    (MC_TEST_SNAP_FINISH_DELAY_MS), a state hash starts there (an admin CHECK request by
    rawwrite, held hash_ms by MC_TEST_CHECK_HASH_DELAY_MS) and outlasts the finish. Returns
    (n2, index, size, the rawwrite process: the caller ends it)."""
    import subprocess
    from harness import BIN
    n1 = c.nodes[0]
    c.leader()
    cli(["bench", "load", "--objects", "20000", "--endpoints", n1.client, "--connections",
         "2", "--pipeline", "16"], timeout=120)
    os.environ["MC_TEST_SNAP_FINISH_DELAY_MS"] = "3000"
    os.environ["MC_TEST_CHECK_HASH_DELAY_MS"] = str(hash_ms)
    try:
        n2 = add_joiner(c, 2)
    finally:
        del os.environ["MC_TEST_SNAP_FINISH_DELAY_MS"]
        del os.environ["MC_TEST_CHECK_HASH_DELAY_MS"]
    cli(["--endpoints", n1.client, "cluster", "add", "2", n2.peer, "--learner",
         "--client-addr", n2.client])
    m = wait_log(n2, r"msg=snapshot_receive_finishing index=(\d+) bytes=(\d+)", 30)
    index, size = (int(x) for x in m.groups())
    proc = subprocess.Popen([os.path.join(os.path.dirname(BIN), "rawwrite"), n2.client, "check"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: "check_request_started" in n2.log(), 10), n2.log_tail(30)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return n2, index, size, proc


def end_proc(proc):
    if proc and proc.poll() is None:
        proc.kill()
    if proc:
        proc.communicate()


def test_an_image_refused_while_a_hash_runs_is_not_received_again():
    """A learner's whole image arrives while a state hash runs there (held 6 s, started while the
    image's finish is held 3 s): no install under the hash's transaction, so the leader's
    SNAPSHOT message is held (`snapshot_install_held`) and so is the DONE of the last chunk; the
    leader waits for it instead of sending the image again. When the hash ends, the DONE goes
    out and the message is stepped (`snapshot_install_unheld`): the image is installed, having
    been sent once and received once. Before (session 17), the message was refused and the
    leader sent the image again about once a heartbeat while the hash ran (each resend skipped
    to the end by the learner): tens of `snapshot_send_started` for the index."""
    with Cluster(1, FLAGS) as c:
        n1 = c.nodes[0]
        proc = None
        try:
            n2, index, size, proc = learner_hashing_while_receiving(c, 6000)
            # Larger than the leader's send window: a resend's in-flight chunks are answered
            # while its end is being sent (rev17b G2).
            assert size > 6 << 20, "an image of %d bytes is too small" % size
            installed = "msg=snapshot_installed index=%d " % index
            assert wait_for(lambda: installed in n2.log(), 30), n2.log_tail(30)
            sends = n1.log().count("msg=snapshot_send_started to=2 index=%d " % index)
            assert sends <= 2, "the leader started %d sends of the image" % sends
            log = n2.log()
            started = re.findall(r"msg=snapshot_receive_started from=1 index=%d " % index, log)
            assert len(started) == 1, "the image was received %d times: %s" % (
                len(started), n2.log_tail(30))
            # Installed after the hash ended, from the message held meanwhile.
            unheld = "msg=snapshot_install_unheld from=1 index=%d " % index
            assert "msg=snapshot_install_held from=1 index=%d " % index in log, n2.log_tail(30)
            assert unheld in log, n2.log_tail(30)
            assert log.index("check_request_started") < log.index("msg=snapshot_received "), \
                n2.log_tail(30)
            assert log.index("check_request_hashed") < log.index(unheld) < log.index(installed), \
                n2.log_tail(30)
            assert n1.log().count("msg=snapshot_sent to=2 index=%d " % index) == 1, \
                n1.log_tail(30)
            proc.communicate(timeout=30)  # (rawwrite's own deadline may end it first)
            assert wait_for(lambda: count_keys(n2) == 20000, 30), count_keys(n2)
        finally:
            end_proc(proc)


def test_a_stop_with_a_snapshot_message_held_is_clean():
    """A learner stopped while its received image's SNAPSHOT message is held for a hash (held
    8 s) stops cleanly once the hash ends (a stop waits for the job), without installing the
    held message (nothing is replayed at a stop; the sanitizer build reports a leak of it); after
    a restart without the hooks it catches up and holds every object."""
    import signal
    with Cluster(1, FLAGS) as c:
        proc = None
        try:
            n2, index, _, proc = learner_hashing_while_receiving(c, 8000)
            wait_log(n2, r"msg=snapshot_received from=1 index=%d " % index, 30)
            assert "msg=snapshot_install_held from=1 index=%d " % index in n2.log(), \
                n2.log_tail(30)
            t0 = time.time()
            n2.proc.send_signal(signal.SIGTERM)
            n2.proc.wait(timeout=30)
            took = time.time() - t0
            assert n2.proc.returncode == 0, (n2.proc.returncode, n2.log_tail(30))
            assert took < 15, "the stop took %.1f s" % took  # the hash's rest, at most 8 s
            log = n2.log()
            assert "snapshot_install_unheld" not in log, n2.log_tail(30)
            assert "msg=snapshot_installed index=%d " % index not in log, n2.log_tail(30)
            # The leader's send waited for the DONE n2 held back; the dropped link ends it at once
            # (rev18 H2), not after the 30 s stall, so Raft sends again after its next probe.
            n1 = c.nodes[0]
            failed = "msg=snapshot_send_failed to=2 index=%d " % index
            assert wait_for(lambda: failed in n1.log(), 5), n1.log_tail(30)
            end_proc(proc)
            proc = None
            n2.start()
            assert wait_for(lambda: count_keys(n2) == 20000, 60), \
                (count_keys(n2), n2.log_tail(30))
        finally:
            end_proc(proc)


def test_a_held_image_removed_meanwhile_is_received_again():
    """The image whose SNAPSHOT message is held for a hash is removed before the hash ends (as a
    prune would): the owed DONE becomes a FAILED (`snapshot_received_image_gone`), the held
    message is dropped rather than installed from a file that is gone, and the leader's next
    send is received whole and installed."""
    with Cluster(1, FLAGS) as c:
        proc = None
        try:
            n2, index, _, proc = learner_hashing_while_receiving(c, 6000)
            wait_log(n2, r"msg=snapshot_received from=1 index=%d " % index, 30)
            d = os.path.join(n2.dir, "snap")
            image = [f for f in os.listdir(d) if f.startswith("snap-%016x-" % index)]
            assert len(image) == 1, os.listdir(d)
            assert "snapshot_install_unheld" not in n2.log(), n2.log_tail(30)
            os.unlink(os.path.join(d, image[0]))
            wait_log(n2, r"msg=snapshot_received_image_gone index=%d " % index, 30)
            installed = "msg=snapshot_installed index=%d " % index
            assert wait_for(lambda: installed in n2.log(), 60), n2.log_tail(30)
            started = n2.log().count("msg=snapshot_receive_started from=1 index=%d " % index)
            assert started == 2, "received %d times: %s" % (started, n2.log_tail(30))
            assert wait_for(lambda: count_keys(n2) == 20000, 30), count_keys(n2)
        finally:
            end_proc(proc)
