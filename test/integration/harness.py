"""harness.py: start/stop real metacenter nodes on 127.0.0.1 (ephemeral ports) for integration tests.

Every process started here is killed at exit, even when a test fails (atexit + try/finally)."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(ROOT, BUILD, "metacenter")
ASAN = os.environ.get("MC_ASAN") == "1"
_procs = []


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_all)


_handed_out = set()


def free_port():
    """A free port below the kernel's ephemeral range (32768+): a port from bind(0) can be taken
    by an outgoing connection between this call and the node's bind, failing the start."""
    import random
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 32700)
        if port in _handed_out:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


class Node:
    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.client_port = free_port()
        self.peer_port = free_port()
        self.dir = os.path.join(cluster.tmp, "node%d" % node_id)
        self.log_path = os.path.join(cluster.tmp, "node%d.log" % node_id)
        self.http_port = free_port() if cluster.http else None
        self.proc = None
        self.preexec = None  # run in the child before exec (e.g. resource.setrlimit)

    @property
    def client(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def peer(self):
        return "127.0.0.1:%d" % self.peer_port

    def start(self, extra=None):
        assert self.proc is None or self.proc.poll() is not None
        args = [BIN, "serve", "--data-dir", self.dir, "--node-id", str(self.id),
                "--listen-client", self.client, "--listen-peer", self.peer,
                "--listen-http", "127.0.0.1:%d" % self.http_port if self.http_port else "off",
                "--initial-cluster", self.cluster.spec()] + self.cluster.flags + (extra or [])
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.preexec)
        _procs.append(self.proc)
        wait_for(lambda: port_open(self.client_port) or self.proc.poll() is not None, 10)
        if self.proc.poll() is not None:
            raise RuntimeError("node %d exited at start: %s" % (self.id, self.log_tail()))

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self):
        """Graceful: SIGTERM, then SIGKILL after 10 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=20):
        return "\n".join(self.log().splitlines()[-n:])


class Cluster:
    def __init__(self, size, flags=None, http=False):
        self.tmp = tempfile.mkdtemp(prefix="mc-it-")
        self.flags = flags if flags is not None else []
        self.http = http  # each node serves HTTP (/metrics) on its own port
        self.nodes = [Node(self, i + 1) for i in range(size)]

    def spec(self):
        return ",".join("%d=%s" % (n.id, n.peer) for n in self.nodes)

    def endpoints(self, nodes=None):
        return ",".join(n.client for n in (nodes or self.nodes))

    def start(self):
        for n in self.nodes:
            n.start()
        return self

    def close(self, keep=False):
        """Stops every node and (unless keep) removes the cluster's files. A leak or an error the
        sanitizers report at a node's exit fails the test that ran it, whether it ends a `with
        Cluster` block or a `try: ... finally: c.close()` (the node's exit status alone is not
        looked at: most tests stop nodes at the end); not while an exception is already on its
        way out, so that one is the failure shown; then each node's log tail is printed first,
        as `with Cluster` always did."""
        if sys.exc_info()[0] is not None:
            self.print_tails()
        for n in self.nodes:
            n.stop()
        reports = sanitizer_reports(self.nodes)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        assert sys.exc_info()[0] is not None or not reports, "\n".join(reports)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None and sys.exc_info()[0] is None:
            self.print_tails()  # close() prints them itself when it sees the exception
        self.close()

    def print_tails(self):
        for n in self.nodes:
            print("---- node %d log tail ----\n%s" % (n.id, n.log_tail(30)))

    def node(self, node_id):
        return [n for n in self.nodes if n.id == node_id][0]

    def status(self, node):
        r = cli(["--endpoints", node.client, "--json", "cluster", "status"], timeout=5, check=False)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def leader(self, timeout=15, exclude=()):
        """The id every live node agrees on as leader (waits for one)."""
        found = [None]

        def agreed():
            ids = set()
            for n in self.nodes:
                if not n.alive() or n.id in exclude:
                    continue
                r = cli(["--endpoints", n.client, "--json", "cluster", "status"], timeout=3,
                        check=False)
                if r.returncode != 0:
                    return False
                try:
                    ids.add(json.loads(r.stdout).get("leader"))
                except ValueError:
                    return False
            if len(ids) == 1 and None not in ids and 0 not in ids and ids.pop() not in exclude:
                found[0] = json.loads(r.stdout).get("leader")
                return True
            return False

        if not wait_for(agreed, timeout, interval=0.1):
            raise AssertionError("no agreed leader within %ss" % timeout)
        return self.node(found[0])


def port_open(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        s.close()
        return True
    except OSError:
        return False


# Faster failover than the defaults (100/600 ms); 10 heartbeats a timeout so load elects no one.
FAST_FLAGS = ["--heartbeat-ms", "50", "--election-timeout-ms", "500"]


def snapshot_flags(entries, tail):
    """`metacenter serve` flags for a test that needs a snapshot sent to a lagging member: a
    snapshot every `entries` applied entries keeping `tail` entries after it, and no catch-up log
    (--catch-up-log-mb 0). Without the last a leader keeps the log a lagging member still needs
    (256 MiB by default), the member catches up from the log, and no snapshot is sent."""
    return ["--snapshot-entries", str(entries), "--snapshot-tail", str(tail),
            "--catch-up-log-mb", "0"]


SANITIZER_REPORT = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(nodes):
    """The sanitizer reports in the nodes' logs (each node's first report, 40 lines)."""
    out = []
    for n in nodes:
        lines = n.log().splitlines()
        for i, line in enumerate(lines):
            if any(s in line for s in SANITIZER_REPORT):
                out.append("node %d: %s" % (n.id, "\n".join(lines[i:i + 40])))
                break
    return out


def open_files(node, suffix=""):
    """What the node's open descriptors point at, those ending with suffix (Linux /proc; a file
    unlinked while open reads "<path> (deleted)" and counts too)."""
    d = "/proc/%d/fd" % node.proc.pid
    out = []
    for fd in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, fd))
        except OSError:
            continue  # closed meanwhile
        if target.endswith(" (deleted)"):
            target = target[:-len(" (deleted)")]
        if target.endswith(suffix):
            out.append(target)
    return out


def metrics_text(node):
    """The node's /metrics page (the cluster started with http=True)."""
    url = "http://127.0.0.1:%d/metrics" % node.http_port
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def wait_for(cond, timeout, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def cli(args, timeout=30, check=True, input=None):
    r = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError("metacenter %s failed (%d): %s %s" % (" ".join(args), r.returncode,
                                                                    r.stdout, r.stderr))
    return r


def cli_json(args, **kw):
    r = cli(args + ["--json"], **kw)
    return json.loads(r.stdout)


def rawwrite(*args, timeout=60):
    """build/rawwrite (test/integration/rawwrite.c): one hand-made client-protocol request; its
    JSON line."""
    r = subprocess.run([os.path.join(ROOT, BUILD, "rawwrite")] + list(args), capture_output=True,
                       text=True, timeout=timeout)
    return json.loads(r.stdout)


def start_with_env(cluster, env):
    """cluster.start() with env (test hooks, MC_TEST_*) in the environment its nodes inherit;
    env is removed again whether the start succeeds or not. A Node (its start()) works too."""
    os.environ.update(env)
    try:
        cluster.start()
    finally:
        for k in env:
            del os.environ[k]
