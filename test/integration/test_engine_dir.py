"""test_engine_dir.py: `serve --engine-dir DIR` keeps the engine (LMDB) outside the data dir, e.g.
on tmpfs, where the kernel never writes the map back (src/storage/engine_dir.c). DATADIR/engine
links to DIR/engine; DIR is claimed by an OWNER file. The engine is a cache of the newest image
plus the WAL: when DIR loses its contents (tmpfs after a reboot) or the placement changes, the
node rebuilds it and loses no acknowledged write."""
import os
import shutil
import subprocess

from harness import BIN, Cluster, cli, wait_for
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
    r = subprocess.run([BIN, "serve", "--data-dir", node.dir, "--node-id", str(node.id),
                        "--listen-client", node.client, "--listen-peer", node.peer,
                        "--listen-http", "off", "--initial-cluster", c.spec(),
                        "--engine-dir", engine_dir], capture_output=True, text=True, timeout=20)
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
