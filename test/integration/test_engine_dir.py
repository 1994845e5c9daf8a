"""test_engine_dir.py: `serve --engine-dir DIR` keeps the engine (LMDB) outside the data dir, e.g.
on tmpfs, where the kernel never writes the map back (src/storage/engine_dir.c). DATADIR/engine
links to DIR/engine; DIR is claimed by an OWNER file. The engine is a cache of the newest image
plus the WAL: when DIR loses its contents (tmpfs after a reboot) or the placement changes, the
node rebuilds it and loses no acknowledged write."""
import os
import shutil
import subprocess

from harness import BIN, Cluster, cli, port_open, wait_for
from test_recovery import SMALL, count_keys, load, snap_files


def eng(c, node):
    return os.path.join(c.tmp, "eng%d" % node.id)


def up(c, node, flag=True):
    node.start(["--engine-dir", eng(c, node)] if flag else None)


def start_all(c):
    for n in c.nodes:
        up(c, n)
    return c


def refused(c, node, engine_dir):
    """Start `node` with --engine-dir engine_dir; it must exit at once. Its output."""
    try:
        r = subprocess.run([BIN, "serve", "--data-dir", node.dir, "--node-id", str(node.id),
                            "--listen-client", node.client, "--listen-peer", node.peer,
                            "--listen-http", "off", "--initial-cluster", c.spec(),
                            "--engine-dir", engine_dir], capture_output=True, text=True,
                           timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("started with --engine-dir %s" % engine_dir)
    assert r.returncode != 0, "started with --engine-dir %s" % engine_dir
    return r.stdout + r.stderr


def checked(c):
    def same():
        return cli(["--endpoints", c.endpoints(), "check"], check=False).returncode == 0
    assert wait_for(same, 30), cli(["--endpoints", c.endpoints(), "check"], check=False).stdout


def test_engine_dir_survives_kills_losses_and_moves():
    c = Cluster(3, SMALL)
    try:
        start_all(c)
        c.leader()
        cli(["--endpoints", c.endpoints(), "bucket", "create", "bench"], check=False)
        load(c, 2500)
        for n in c.nodes:
            link = os.path.join(n.dir, "engine")
            assert os.path.islink(link), n.id
            assert os.readlink(link) == os.path.join(os.path.realpath(eng(c, n)), "engine")
            assert os.path.exists(os.path.join(eng(c, n), "engine", "data.mdb"))
            with open(os.path.join(eng(c, n), "OWNER")) as f:
                assert os.path.realpath(n.dir) in f.read()
            assert not os.path.exists(os.path.join(n.dir, "engine.new"))
            # a new data dir's empty engine is placed, not "changed" (no warning on a first start)
            assert "engine_dir_placed" in n.log() and "engine_dir_changed" not in n.log(), n.id

        # kill -9: the engine in its own dir is kept (scanned, not rebuilt)
        a, b, d = c.nodes
        a.kill()
        up(c, a)
        assert wait_for(lambda: count_keys(a) == 2500, 60), (count_keys(a), a.log_tail(30))
        assert "engine_dir_emptied" not in a.log() and "engine_recovering" not in a.log()

        # the engine dir lost (tmpfs after a reboot): rebuilt from the image and the WAL
        b.kill()
        shutil.rmtree(eng(c, b))
        up(c, b)
        assert wait_for(lambda: count_keys(b) == 2500, 60), (count_keys(b), b.log_tail(30))
        assert "engine_dir_emptied" in b.log(), b.log_tail(30)

        # a lagging follower installs the leader's snapshot into its engine dir (staged beside it)
        d.kill()
        load(c, 6000)
        assert any(img for _, img, _ in snap_files(c.leader()))
        up(c, d)
        assert wait_for(lambda: count_keys(d) == 6000, 60), (count_keys(d), d.log_tail(30))
        assert "snapshot_installed" in d.log(), d.log_tail(30)
        assert os.path.islink(os.path.join(d.dir, "engine"))
        assert not os.path.exists(os.path.join(eng(c, d), "engine.new"))

        # every engine lost at once (a cluster-wide power loss with tmpfs engines)
        for n in c.nodes:
            n.kill()
        for n in c.nodes:
            shutil.rmtree(eng(c, n))
            up(c, n)
        c.leader(timeout=60)
        for n in c.nodes:
            assert wait_for(lambda: count_keys(n) == 6000, 60), (n.id, count_keys(n),
                                                                  n.log_tail(30))
        checked(c)

        # back into the data dir: the link becomes a directory, the old engine is removed
        a.stop()
        up(c, a, flag=False)
        assert wait_for(lambda: count_keys(a) == 6000, 60), (count_keys(a), a.log_tail(30))
        assert "engine_dir_changed" in a.log(), a.log_tail(30)
        assert os.path.isdir(os.path.join(a.dir, "engine"))
        assert not os.path.islink(os.path.join(a.dir, "engine"))
        assert not os.path.exists(os.path.join(eng(c, a), "engine"))
        load(c, 6200)
        assert wait_for(lambda: count_keys(a) == 6200, 30)
        checked(c)
    finally:
        c.close()


def test_engine_dir_refuses_a_dir_it_does_not_own():
    c = Cluster(2, [])
    try:
        start_all(c)
        c.leader()
        a, b = c.nodes
        b.stop()
        # another node's engine dir
        out = refused(c, b, eng(c, a))
        assert "another data dir" in out, out
        # a directory with other files in it
        other = os.path.join(c.tmp, "other")
        os.mkdir(other)
        open(os.path.join(other, "keep.txt"), "w").close()
        out = refused(c, b, other)
        assert "not empty" in out, out
        assert os.path.exists(os.path.join(other, "keep.txt"))
        # inside the data dir
        out = refused(c, b, os.path.join(b.dir, "eng"))
        assert "outside the data dir" in out, out
        # nothing was changed by the refusals: it starts as before
        up(c, b)
        c.leader()
        assert os.path.islink(os.path.join(b.dir, "engine"))
    finally:
        c.close()


def start_env(c, node, engine_dir, env):
    """Start `node` (--engine-dir engine_dir unless None) with extra environment; the process."""
    args = [BIN, "serve", "--data-dir", node.dir, "--node-id", str(node.id),
            "--listen-client", node.client, "--listen-peer", node.peer, "--listen-http", "off",
            "--initial-cluster", c.spec()] + c.flags
    args += ["--engine-dir", engine_dir] if engine_dir else []
    log = open(node.log_path, "ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **env))


def serves(c, node, engine_dir, keys):
    """Start `node` with --engine-dir engine_dir (None: in the data dir); it must serve all
    `keys` acknowledged objects; then a clean stop (which seals the engine)."""
    try:
        node.start(["--engine-dir", engine_dir] if engine_dir else None)
    except RuntimeError as e:
        raise AssertionError("did not start with --engine-dir %s: %s" % (engine_dir, e))
    assert wait_for(lambda: count_keys(node) == keys, 60), (count_keys(node), node.log_tail(30))
    node.stop()


def one_node_with_a_bucket(c):
    """Start c's only node, create bucket bench; (node, DIR X, DIR Y) under c.tmp."""
    a = c.nodes[0]
    a.start()
    c.leader()
    cli(["--endpoints", c.endpoints(), "bucket", "create", "bench"], check=False)
    return a, os.path.join(c.tmp, "X"), os.path.join(c.tmp, "Y")


def test_engine_dir_every_crash_point_of_a_placement_restarts():
    """kill -9 after each change a placement makes (MC_TEST_ENGINE_PLACE_KILL_AT), from a clean
    stop (a sealed engine): the node restarts with the new placement and with the old one, and
    serves every acknowledged write. Review 10: the seal of the former engine outlived it, so a
    crash after the engine was emptied or moved refused every later start (engine_corrupt)."""
    c = Cluster(1, SMALL)
    try:
        a, x, y = one_node_with_a_bucket(c)
        load(c, 1500)  # an image at 1000, WAL after it
        a.stop()

        def emptied():
            shutil.rmtree(os.path.join(x, "engine"))  # tmpfs after a reboot

        moves = [("into X", None, x, None), ("X emptied", x, x, emptied),
                 ("X to Y", x, y, None), ("X back", x, None, None)]
        for name, before, after, prep in moves:
            for restart in (after, before):
                for step in range(1, 20):
                    serves(c, a, before, 1500)
                    if prep:
                        prep()
                    p = start_env(c, a, after, {"MC_TEST_ENGINE_PLACE_KILL_AT": str(step)})
                    if not wait_for(lambda: p.poll() is not None or port_open(a.client_port), 20):
                        p.kill()
                    if p.poll() is None:  # past the last change: it started
                        p.terminate()
                        p.wait(timeout=20)
                        assert step > 2, (name, step)  # the hook killed it before
                        break
                    assert p.returncode == -9, (name, step, p.returncode, a.log_tail(10))
                    try:
                        serves(c, a, restart, 1500)
                    except AssertionError as e:
                        raise AssertionError("%s, killed after change %d, restarted with "
                                             "--engine-dir %s: %s" % (name, step, restart, e))
    finally:
        c.close()


def long_dir(base, length):
    """A path of exactly `length` bytes under base (components of at most 200 bytes)."""
    p = base
    while len(p) < length:
        p = os.path.join(p, "d" * min(200, length - len(p) - 1))
    assert len(p) == length, len(p)
    return p


def test_engine_dir_refusals_say_why_and_change_nothing():
    """Review 10: a DIR whose staged install path (DIR/engine.new/data.mdb) is too long was
    accepted, and the engine's rebuild failed only after the next reboot (or the start removed
    the data dir's engine and then failed); a dangling symbolic link as DIR failed with no log
    line; the OWNER.tmp a crash leaves in a new DIR made it "not empty" for good."""
    c = Cluster(1, SMALL)
    try:
        a = c.nodes[0]
        a.start()
        c.leader()
        cli(["--endpoints", c.endpoints(), "bucket", "create", "bench"], check=False)
        load(c, 300)
        a.stop()
        for length in (1005, 1014):  # DIR/engine fits 1024 bytes; DIR/engine.new/data.mdb not
            d = long_dir(c.tmp, length)
            os.makedirs(os.path.dirname(d), exist_ok=True)
            out = refused(c, a, d)
            assert "path too long" in out, out[-600:]
        dangling = os.path.join(c.tmp, "dangling")
        os.symlink(os.path.join(c.tmp, "gone", "eng"), dangling)
        out = refused(c, a, dangling)
        assert "engine_dir_invalid" in out and "cannot resolve" in out, out[-600:]
        serves(c, a, None, 300)  # the refusals changed nothing
        assert not os.path.islink(os.path.join(a.dir, "engine"))
        # a crash while DIR/OWNER was written (mc_fs_write_file_atomic) leaves OWNER.tmp
        x = os.path.join(c.tmp, "X")
        os.mkdir(x)
        with open(os.path.join(x, "OWNER.tmp"), "w") as f:
            f.write("metacenter-engine-")
        serves(c, a, x, 300)
        assert os.path.islink(os.path.join(a.dir, "engine"))
    finally:
        c.close()


def test_engine_dir_a_move_removes_the_former_engine():
    """Review 10: docs/operations.md says the engine at the former place is removed; moving from
    DIR X to DIR Y left X/engine (RAM, on tmpfs), and moving in left DATADIR/engine.new (the
    staging tree of an interrupted install: a whole engine's disk space)."""
    c = Cluster(1, SMALL)
    try:
        a, x, y = one_node_with_a_bucket(c)
        load(c, 300)
        a.stop()
        staged = os.path.join(a.dir, "engine.new")
        os.mkdir(staged)  # an install interrupted by a crash
        open(os.path.join(staged, "data.mdb"), "w").close()
        serves(c, a, x, 300)
        assert not os.path.exists(staged)
        serves(c, a, y, 300)
        assert os.readlink(os.path.join(a.dir, "engine")) == os.path.join(os.path.realpath(y),
                                                                          "engine")
        assert not os.path.exists(os.path.join(x, "engine")), os.listdir(x)
        assert os.path.exists(os.path.join(y, "engine", "data.mdb"))
    finally:
        c.close()


def test_engine_dir_offline_commands_after_a_reboot_say_what_to_do():
    """Review 10: with the engine dir emptied (tmpfs after a reboot) DATADIR/engine links to
    nothing; offline commands said "no metacenter data in DATADIR (commands that write create
    it)" or "DATADIR/engine exists and is not a directory". They must say to start the node
    first, and change nothing."""
    c = Cluster(1, SMALL)
    try:
        a = c.nodes[0]
        x = eng(c, a)
        up(c, a)
        c.leader()
        cli(["--endpoints", c.endpoints(), "bucket", "create", "bench"], check=False)
        load(c, 300)
        a.stop()
        shutil.rmtree(x)
        for args in (["ls", "bench"], ["put", "bench", "offline-key"],
                     ["snapshot", "save", os.path.join(c.tmp, "s.snap")]):
            r = cli(["--data-dir", a.dir] + args, check=False)
            assert r.returncode != 0 and "start the node once" in r.stderr, (args, r.stderr)
        assert os.path.islink(os.path.join(a.dir, "engine")) and not os.path.exists(x)
        serves(c, a, x, 300)
    finally:
        c.close()
