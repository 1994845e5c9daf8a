#!/usr/bin/env python3
"""jepsen.py: Jepsen-style fault runs against real metacenter processes on 127.0.0.1.

A cluster of 3 or 5 `metacenter serve` processes (ephemeral ports), every directed peer link i->j
routed through one `faultproxy` process (link "itoj", node i dials j via --peer-route), the
history-recording `jepsen_client` running P processes against it, and a nemesis alternating
faults and healthy periods (ending healed). Then the checks: lincheck says linearizable, every
acknowledged append is present, all replicas' state hashes are equal, at most one leader per
term (from every node's `raft_state role=leader` log lines), no node crashed except those the
nemesis killed (exit codes; logs grepped for sanitizer/assertion reports).

  jepsen.py run   --build B [--nodes 3|5] [--duration S] [--seed N] [--nemesis a,b,...] [--keep]
  jepsen.py suite --build B            the bounded set `make test` runs (suite_jepsen.sh)
  jepsen.py soak  --build B --minutes M --report FILE

Nemeses: partition (random subset), isolate-leader, bridge (5 nodes), kill (kill -9 + restart),
pause-leader (SIGSTOP past the election timeout, SIGCONT), transfer (leadership transfer under
load), oneway (one-way drops), delay, membership (remove a member, the leader a third of the
time, then re-add it wiped through the learner stage, or add a spare node as learner and promote
it; half the time together with another fault), clock (wall clocks jump by minutes to days,
forward and back, through the test-only MC_TEST_WALL_CLOCK_FILE hook; with the leader cut off half
the time).
Every process started here is killed at exit, even on failure (atexit + signal handlers).
"""
import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASAN = os.environ.get("MC_ASAN") == "1"
NEMESES = ["partition", "isolate-leader", "bridge", "kill", "pause-leader", "transfer", "oneway",
           "delay", "membership", "clock"]
DEFAULT_NEMESES = list(NEMESES)   # bridge is dropped for 3 nodes
CRASH_PATTERNS = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Assertion|"
                            r"assertion failed|Segmentation fault|stack-buffer|heap-use-after-free")

_procs = []          # every Popen we started (killed at exit)
_procs_lock = threading.Lock()


def _kill_all():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    with _procs_lock:
        _procs.append(p)
    return p


# One port picker for every test harness (below the kernel's ephemeral range).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import free_port, port_open, snapshot_flags, wait_for  # noqa: E402


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Proxy:
    """One faultproxy process carrying every directed link; commands over its stdin/stdout."""

    def __init__(self, build, workdir, links):
        self.links = {}       # name -> listen port
        args = [os.path.join(build, "faultproxy")] + ["%s=0:%d" % (n, t) for n, t in links]
        self.err = open(os.path.join(workdir, "faultproxy.log"), "ab")
        self.proc = spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                          text=True, bufsize=1)
        self.lock = threading.Lock()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("faultproxy exited at start (see faultproxy.log)")
            m = re.match(r"link (\S+) 127\.0\.0\.1:(\d+) ->", line)
            if m:
                self.links[m.group(1)] = int(m.group(2))
            if line.strip() == "ready":
                break

    def cmd(self, line):
        with self.lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            ans = self.proc.stdout.readline().strip()
        if not ans.startswith("ok"):
            raise RuntimeError("faultproxy %r: %s" % (line, ans))
        return ans

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(timeout=5)
            except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()


class Node:
    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.client_port = free_port()
        self.peer_port = free_port()
        self.dir = os.path.join(cluster.workdir, "node%d" % node_id)
        self.log_path = os.path.join(cluster.workdir, "node%d.log" % node_id)
        self.proc = None
        self.paused = False
        self.expected_exit = False   # the nemesis killed it (kill -9) / the harness stopped it
        self.join = None             # a member's client address: started with --join (wiped node)
        # Test-only wall-clock offset (seconds) the node reads from this file (src/util/clock.c).
        self.clock_file = os.path.join(cluster.workdir, "clock%d" % node_id)
        self.clock_offset = 0
        self.env = {}                # extra environment, e.g. test hooks (MC_TEST_APPLY_DELAY_MS)
        self.crashes = []            # unexpected exits: (returncode, when)
        self.starts = 0

    @property
    def client(self):
        return "127.0.0.1:%d" % self.client_port

    def args(self):
        c = self.cluster
        a = [c.bin, "serve", "--data-dir", self.dir, "--node-id", str(self.id),
             "--listen-client", self.client, "--listen-peer", "127.0.0.1:%d" % self.peer_port,
             "--listen-http", "off"] + (["--join", self.join] if self.join else
                                        ["--initial-cluster", c.spec()]) + [
             "--heartbeat-ms", str(c.heartbeat_ms), "--election-timeout-ms",
             str(c.election_timeout_ms)] + c.extra_flags
        if c.proxy:
            for other in c.nodes:
                if other.id != self.id:
                    a += ["--peer-route", "%d=127.0.0.1:%d" % (
                        other.id, c.proxy.links["%dto%d" % (self.id, other.id)])]
        return a

    def start(self, wait=True):
        assert not self.alive()
        logf = open(self.log_path, "ab")
        env = dict(os.environ, **self.env)
        if self.cluster.clock_hook:
            env["MC_TEST_WALL_CLOCK_FILE"] = self.clock_file
        self.proc = spawn(self.args(), stdout=logf, stderr=subprocess.STDOUT, env=env)
        logf.close()
        self.paused = False
        self.expected_exit = False
        self.starts += 1
        if wait:
            wait_for(lambda: port_open(self.client_port) or self.proc.poll() is not None, 20)
            if self.proc.poll() is not None:
                raise RuntimeError("node %d exited at start (%d): %s" % (
                    self.id, self.proc.returncode, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def set_clock_offset(self, seconds):
        self.clock_offset = seconds
        with open(self.clock_file + ".tmp", "w") as f:
            f.write("%d\n" % seconds)
        os.replace(self.clock_file + ".tmp", self.clock_file)   # never read half-written

    def wipe(self):
        assert not self.alive()
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill9(self):
        if self.alive():
            self.expected_exit = True
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.paused = False

    def pause(self):
        if self.alive() and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        """Graceful SIGTERM (SIGKILL after 15 s); a clean stop must exit 0."""
        if not self.alive():
            return
        self.resume()
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
            if rc != 0:
                self.crashes.append((rc, "exit %d after SIGTERM" % rc))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.crashes.append((-9, "did not exit within 15 s of SIGTERM"))

    def learned_removal(self):
        """It logged `removed_from_cluster` since its last start (it then stops by itself)."""
        text = self.log()
        return "msg=removed_from_cluster" in text[text.rfind("msg=node_started"):]

    def removed_itself(self):
        """Exit 0 after `removed_from_cluster`: the documented way a removed node stops, also
        when the `cluster remove` answer was lost (outcome unknown)."""
        return self.proc.returncode == 0 and self.learned_removal()

    def poll_crash(self):
        """Record an exit the nemesis did not cause."""
        if self.proc is not None and self.proc.poll() is not None and not self.expected_exit \
                and self.removed_itself():
            self.expected_exit = True
            self.cluster.member_ids.discard(self.id)
            log("node %d stopped itself after its removal (exit 0)" % self.id)
        if self.proc is not None and self.proc.poll() is not None and not self.expected_exit:
            self.crashes.append((self.proc.returncode, "exited %d unexpectedly" %
                                 self.proc.returncode))
            self.expected_exit = True   # recorded once

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=25):
        return "\n".join(self.log().splitlines()[-n:])


class Cluster:
    def __init__(self, build, size, workdir, proxy=True, extra_flags=None, spares=0,
                 clock_hook=False):
        self.build = build
        self.bin = os.path.join(build, "metacenter")
        self.workdir = workdir
        self.heartbeat_ms = 100 if ASAN else 50
        self.election_timeout_ms = 1000 if ASAN else 500
        self.extra_flags = extra_flags or []
        self.clock_hook = clock_hook   # nodes started with MC_TEST_WALL_CLOCK_FILE (clock nemesis)
        # Every node the run may use: `size` initial voters, then `spares` not-yet-members (the
        # membership nemesis adds them with --join). Proxy links exist for all of them.
        self.nodes = [Node(self, i + 1) for i in range(size + spares)]
        self.initial_ids = [n.id for n in self.nodes[:size]]
        self.member_ids = set(self.initial_ids)   # what the harness believes the members are
        self.proxy = None
        if proxy:
            links = [("%dto%d" % (a.id, b.id), b.peer_port)
                     for a in self.nodes for b in self.nodes if a.id != b.id]
            self.proxy = Proxy(build, workdir, links)

    def spec(self):
        return ",".join("%d=127.0.0.1:%d" % (n.id, n.peer_port) for n in self.nodes
                        if n.id in self.initial_ids)

    def members(self):
        return [n for n in self.nodes if n.id in self.member_ids]

    def endpoints(self, nodes=None):
        return ",".join(n.client for n in (nodes or self.members()))

    def sync_members(self):
        """member_ids from the leader's `cluster status` (voters and learners); False when no
        member answered with a leader."""
        for n in self.members() + [n for n in self.nodes if n.id not in self.member_ids]:
            if not n.alive() or n.paused:
                continue
            st = self.status(n)
            if st and st.get("leader") and st.get("members"):
                self.member_ids = {m["id"] for m in st["members"]}
                return True
        return False

    def node(self, node_id):
        return [n for n in self.nodes if n.id == node_id][0]

    def start(self):
        for n in self.members():
            n.start(wait=False)
        for n in self.members():
            wait_for(lambda: port_open(n.client_port) or not n.alive(), 20)
            if not n.alive():
                raise RuntimeError("node %d exited at start: %s" % (n.id, n.log_tail()))
        return self

    def cli(self, args, timeout=20):
        return subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=timeout)

    def status(self, node):
        try:
            r = self.cli(["--endpoints", node.client, "--json", "cluster", "status"], timeout=5)
            return json.loads(r.stdout) if r.returncode == 0 else None
        except (ValueError, subprocess.TimeoutExpired):
            return None

    def log_leader(self):
        """Leader by the logs: the highest-term `role=leader` line whose node is alive and has not
        logged a later state change. None when unknown."""
        best = None
        for n in self.nodes:
            if not n.alive() or n.paused:
                continue
            last = None
            for m in RAFT_STATE.finditer(n.log()):
                last = m
            if last and last.group("role") == "leader":
                t = int(last.group("term"))
                if best is None or t > best[0]:
                    best = (t, n)
        return best[1] if best else None

    def leader(self, timeout=10):
        found = [None]

        def probe():
            found[0] = self.log_leader()
            return found[0] is not None
        wait_for(probe, timeout, 0.1)
        return found[0]

    def heal(self):
        if self.proxy:
            self.proxy.cmd("heal all")

    def close(self):
        for n in self.nodes:
            n.resume()
        for n in self.nodes:
            n.stop()
        if self.proxy:
            self.proxy.close()


RAFT_STATE = re.compile(r"node=(?P<node>\d+)\s.*?msg=raft_state\s.*?role=(?P<role>\w+)"
                        r".*?term=(?P<term>\d+)")


def leaders_per_term(cluster):
    """{term: set(node ids)} from every node's `raft_state role=leader` lines."""
    terms = {}
    for n in cluster.nodes:
        for m in RAFT_STATE.finditer(n.log()):
            if m.group("role") == "leader":
                terms.setdefault(int(m.group("term")), set()).add(int(m.group("node")))
    return terms


# ---------------------------------------------------------------------------------------- nemesis

def links_between(a_ids, b_ids):
    out = []
    for a in a_ids:
        for b in b_ids:
            if a != b:
                out += ["%dto%d" % (a, b), "%dto%d" % (b, a)]
    return out


class Nemesis:
    """Faults for one period each (start → undo), then a healthy period; always ends healed."""

    def __init__(self, cluster, rng, kinds, fault_s, healthy_s, first=None):
        self.c = cluster
        self.rng = rng
        self.kinds = [k for k in kinds if not (k == "bridge" and len(cluster.initial_ids) < 5)]
        self.fault_s = fault_s
        self.healthy_s = healthy_s
        self.events = []      # (time offset s, description)
        self.counts = {}
        self.t0 = time.time()
        self.undo = []        # callables restoring health
        self.deck = []        # fault kinds still to come in this round
        self.first = first if first in self.kinds else None   # comes up first (bounded runs)
        self.combine_p = 0.25 if len(self.kinds) > 1 else 0.0

    def note(self, what):
        self.events.append((round(time.time() - self.t0, 2), what))
        log("nemesis: " + what)

    def cut(self, groups, close=True):
        """Partition: no traffic between different groups (both directions)."""
        names = []
        for i, g in enumerate(groups):
            for h in groups[i + 1:]:
                names += links_between(g, h)
        if names:
            self.c.proxy.cmd("drop " + " ".join(names))
            if close:
                self.c.proxy.cmd("close " + " ".join(names))

    def ids(self):
        return sorted(self.c.member_ids)

    # ---- faults
    def f_partition(self):
        ids = self.ids()
        self.rng.shuffle(ids)
        k = self.rng.randint(1, len(ids) - 1)
        a, b = sorted(ids[:k]), sorted(ids[k:])
        self.cut([a, b], close=self.rng.random() < 0.5)
        self.note("partition %s | %s" % (a, b))

    def f_isolate_leader(self):
        ld = self.c.leader(timeout=3)
        if not ld:
            return self.f_partition()
        rest = [i for i in self.ids() if i != ld.id]
        self.cut([[ld.id], rest])
        self.note("isolate leader %d" % ld.id)

    def f_bridge(self):
        ids = self.ids()
        self.rng.shuffle(ids)
        a, bridge, b = ids[:2], ids[2], ids[3:]
        self.c.proxy.cmd("drop " + " ".join(links_between(a, b)))
        self.note("bridge %s -%d- %s" % (sorted(a), bridge, sorted(b)))

    def f_kill(self):
        alive = [n for n in self.c.members() if n.alive()]
        minority = max(1, (len(self.c.member_ids) - 1) // 2)
        k = self.rng.randint(1, minority)
        if self.rng.random() < 0.15:
            k = len(alive)   # sometimes everyone: recovery from a whole-cluster crash
        victims = self.rng.sample(alive, min(k, len(alive)))
        for n in victims:
            n.kill9()
        self.note("kill -9 %s" % sorted(n.id for n in victims))

        def restart():
            for n in victims:   # not one the membership nemesis removed (or re-added) meanwhile
                if not n.alive() and n.id in self.c.member_ids:
                    n.start(wait=False)
        self.undo.append(restart)

    def f_pause_leader(self):
        ld = self.c.leader(timeout=3)
        if not ld:
            ld = self.rng.choice([n for n in self.c.members() if n.alive()])
        ld.pause()
        self.note("SIGSTOP node %d (leader)" % ld.id)
        self.undo.append(ld.resume)

    def f_transfer(self):
        ld = self.c.leader(timeout=3)
        if not ld:
            self.note("transfer: no leader known, skipped")
            return
        target = self.rng.choice([n for n in self.c.members() if n.id != ld.id])
        try:
            r = self.c.cli(["--endpoints", self.c.endpoints(), "cluster", "transfer-leader",
                            str(target.id)], timeout=15)
            res = "ok" if r.returncode == 0 else (r.stderr.strip() or r.stdout.strip())[:120]
        except subprocess.TimeoutExpired:
            res = "timeout"
        self.note("transfer-leader %d -> %d: %s" % (ld.id, target.id, res))

    def f_oneway(self):
        ids = self.ids()
        pairs = [(a, b) for a in ids for b in ids if a != b]
        chosen = self.rng.sample(pairs, self.rng.randint(1, len(ids)))
        ld = self.c.leader(timeout=1)
        if ld and self.rng.random() < 0.5:   # the nastiest: the leader hears but is not heard
            chosen = [(ld.id, b) for b in ids if b != ld.id]
        self.c.proxy.cmd("drop-out " + " ".join("%dto%d" % p for p in chosen))
        self.note("one-way drop %s" % " ".join("%d->%d" % p for p in chosen))

    def f_delay(self):
        ms = self.rng.choice([20, 50, 100, 300])
        ids = self.ids()
        victim = self.rng.choice(ids)
        names = links_between([victim], ids)
        self.c.proxy.cmd("delay %d %s" % (ms, " ".join(names)))
        self.note("delay %d ms on node %d's links" % (ms, victim))

    # ---- membership (docs/operations.md "Membership changes")
    def member_cli(self, args, timeout):
        try:
            r = self.c.cli(["--endpoints", self.c.endpoints()] + args, timeout=timeout)
            return r.returncode == 0, (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:]
        except subprocess.TimeoutExpired:
            return False, ["timeout"]

    def remove_member(self, victim):
        """`cluster remove`: True when the victim is no longer a member (the leader says so)."""
        was_leader = victim is self.c.log_leader()
        victim.expected_exit = True    # a removed node stops by itself (exit 0)
        ok, why = self.member_cli(["cluster", "remove", str(victim.id)], 15)
        if not ok and self.c.sync_members():
            ok = victim.id not in self.c.member_ids    # the answer was lost, the change was not
        if ok:
            self.c.member_ids.discard(victim.id)
        elif victim.alive():
            victim.expected_exit = False
        self.note("membership: remove %d%s: %s" % (victim.id, " (leader)" if was_leader else "",
                                                   "ok" if ok else " ".join(why)[:120]))
        return ok

    def retire(self, node):
        """A node that is no longer a member: stopped (it stops itself once it learns its removal;
        one cut off at the time never learns it) and wiped, ready to join again."""
        wait_for(lambda: not node.alive(), 15 if node.learned_removal() else
                 3 * self.c.election_timeout_ms / 1000.0, 0.1)
        if node.alive():
            before = len(node.crashes)
            node.stop()     # SIGTERM: a removed node still exits 0
            if node.learned_removal():
                # It was in its own shutdown: the node stops handling SIGTERM then, so the signal
                # ends it (exit -15); not a crash.
                del node.crashes[before:]
        node.wipe()

    def add_member(self, node, learner, wait_s=20):
        """Wipe, start with --join, `cluster add` (--learner: stays one; else learner, promoted once
        caught up). True when it is a member."""
        if node.alive():
            self.retire(node)
        node.wipe()
        node.join = self.c.members()[0].client
        node.start(wait=True)
        args = ["cluster", "add", str(node.id), "127.0.0.1:%d" % node.peer_port, "--client-addr",
                node.client] + (["--learner"] if learner else ["--wait-ms", str(int(wait_s * 1000))])
        ok, why = self.member_cli(args, wait_s + 15)
        if not ok and self.c.sync_members():
            ok = node.id in self.c.member_ids
        if ok:
            self.c.member_ids.add(node.id)
        self.note("membership: add %d%s: %s" % (node.id, " as learner" if learner else "",
                                                "ok" if ok else " ".join(why)[:120]))
        return ok

    def promote(self, node, wait_s=20):
        ok, why = self.member_cli(["cluster", "promote", str(node.id), "--wait", "--wait-ms",
                                   str(int(wait_s * 1000))], wait_s + 15)
        self.note("membership: promote %d: %s" % (node.id, "ok" if ok else " ".join(why)[:120]))
        return ok

    def f_clock(self):
        """Jump wall clocks (src/util/clock.c test hook) by minutes to days, forward or back: the
        leader's, half the time every node's too, and half the time the leader is cut off at the
        same moment. Clocks stay skewed after heal (a later jump moves them again)."""
        ld = self.c.log_leader()
        victims = [n for n in self.c.members() if n is ld or self.rng.random() < 0.5] or \
            self.c.members()[:1]
        jumps = []
        for n in victims:   # alternate: a clock ahead jumps back past zero, one behind forward
            mag = self.rng.choice([90, 600, 3600, 7200, 86400, 864000])
            off = -mag if n.clock_offset > 0 or (n.clock_offset == 0 and self.rng.random() < 0.5) \
                else mag
            jumps.append("%d:%+ds" % (n.id, off - n.clock_offset))
            n.set_clock_offset(off)
        self.note("wall clock jump %s" % " ".join(jumps))
        if ld and self.rng.random() < 0.5:
            rest = [i for i in self.ids() if i != ld.id]
            self.cut([[ld.id], rest])
            self.note("isolate leader %d" % ld.id)

    def f_membership(self):
        """Remove a member (the leader a third of the time) while the client load runs, after the
        run's first change half the time together with another fault; at heal either add it back (wiped, --join, learner then
        promoted) or, when a spare exists, add the spare as a learner now and promote it at heal
        (the removed node becomes the spare)."""
        others = [k for k in self.kinds if k != "membership"]
        if others and self.counts.get("membership", 0) > 1 and self.rng.random() < 0.5:
            kind = self.rng.choice(others)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            getattr(self, "f_" + kind.replace("-", "_"))()
        members = [n for n in self.c.members() if not n.paused]
        ld = self.c.log_leader()
        victim = ld if ld in members and self.rng.random() < 0.33 else \
            self.rng.choice([n for n in members if n is not ld] or members)
        if not self.remove_member(victim):
            return
        spares = [n for n in self.c.nodes if n.id not in self.c.member_ids and n is not victim
                  and not n.alive()]
        if spares and self.rng.random() < 0.5:
            fresh = spares[0]
            added = self.add_member(fresh, learner=True)

            def finish_replace():
                self.retire(victim)
                if added and fresh.id in self.c.member_ids:
                    self.promote(fresh)
                else:
                    self.add_member(fresh, learner=False)
            self.undo.append(finish_replace)
        else:
            def readd():
                self.retire(victim)
                self.add_member(victim, learner=False)
            self.undo.append(readd)

    def restore_members(self, size):
        """End of run: back to `size` voters (re-adding retired nodes), learners promoted."""
        for _ in range(3):
            if not self.c.sync_members():
                time.sleep(1)
                continue
            st = next((self.c.status(n) for n in self.c.members() if n.alive()), None) or {}
            learners = [m["id"] for m in st.get("members", []) if m["role"] == "learner"]
            for i in learners:
                self.promote(self.c.node(i))
            spare = [n for n in self.c.nodes if n.id not in self.c.member_ids]
            if len(self.c.member_ids) >= size or not spare:
                if not learners:
                    return True
                continue
            self.add_member(spare[0], learner=False)
        return self.c.sync_members() and len(self.c.member_ids) >= size

    def step(self):
        # A shuffled deck, refilled when empty: every kind comes up once per len(kinds) faults.
        if not self.deck:
            self.deck = list(self.kinds)
            self.rng.shuffle(self.deck)
            if self.first:
                self.deck.remove(self.first)
                self.deck.append(self.first)
                self.first = None
        kind = self.deck.pop()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        getattr(self, "f_" + kind.replace("-", "_"))()

    def heal(self):
        self.c.heal()
        for u in self.undo:
            u()
        self.undo = []
        for n in self.c.nodes:
            n.resume()
        self.note("heal")

    def run(self, duration_s, stop_event):
        """Alternate faults and healthy periods until duration_s; ends healed."""
        end = self.t0 + duration_s
        try:
            if stop_event.wait(min(self.healthy_s, duration_s / 4)):
                return
            while time.time() + 1 < end and not stop_event.is_set():
                self.step()
                if self.rng.random() < self.combine_p:   # sometimes two faults at once
                    self.step()
                stop_event.wait(min(self.fault_s * self.rng.uniform(0.6, 1.4),
                                    max(0.0, end - time.time())))
                self.heal()
                for n in self.c.nodes:
                    n.poll_crash()
                stop_event.wait(min(self.healthy_s, max(0.0, end - time.time())))
        finally:
            self.heal()


# -------------------------------------------------------------------------------------- one run

class Result:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.info = {}

    def fail(self, msg):
        self.failures.append(msg)
        log("FAIL %s: %s" % (self.name, msg))

    @property
    def ok(self):
        return not self.failures


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def wait_settled(cluster, timeout):
    """All nodes alive and a leader every node logs agreement with (best effort)."""
    def ok():
        return all(n.alive() for n in cluster.members()) and cluster.log_leader() is not None
    return wait_for(ok, timeout, 0.2)


def converge(build, cluster, timeout_s=None):
    """jepsen_client --check over every node: the summary dict (converged, nodes[...])."""
    timeout_s = timeout_s or (60 if ASAN else 30)
    r = subprocess.run([os.path.join(build, "jepsen_client"), "--check", "--endpoints",
                        cluster.endpoints(), "--duration", str(timeout_s), "--timeout-ms", "2000"],
                       capture_output=True, text=True, timeout=timeout_s + 60)
    out = last_json(r.stdout)
    out["converged"] = r.returncode == 0 and out.get("converged", False)
    return out


def caught_up(cluster, conv):
    """Nodes at the highest applied index in a check summary (all nodes when unknown)."""
    idx = {n.get("endpoint"): n.get("index", -1) for n in conv.get("nodes", [])}
    best = max(idx.values(), default=-1)
    nodes = [n for n in cluster.members() if idx.get(n.client, -1) == best and best >= 0]
    return nodes or cluster.members()


def verify(build, cluster, hist, keys, nodes=None):
    """Final reads of every key + every acknowledged append read back: (ok, why, summary)."""
    r = subprocess.run([os.path.join(build, "jepsen_client"), "--verify", "--endpoints",
                        cluster.endpoints(nodes), "--keys", str(keys), "--out", hist,
                        "--timeout-ms", "3000", "--duration", "240" if ASAN else "120"],
                       capture_output=True, text=True, timeout=400)
    summary = last_json(r.stdout)
    if r.returncode == 1:
        lost = [ln for ln in r.stdout.splitlines() if ln.startswith("LOST")]
        return False, "%d acknowledged appends lost, e.g. %s" % (len(lost), lost[:3]), summary
    if r.returncode != 0:
        return False, "verify failed (%d): %s %s" % (r.returncode, r.stdout[-300:],
                                                     r.stderr[-500:]), summary
    return True, "", summary


def run_once(build, nodes=3, duration=30, seed=1, nemeses=None, workdir=None, processes=8,
             keys=5, keep=False, fault_s=None, healthy_s=None, node_flags=None,
             consistency="linearizable", first=None):
    """One fault run; returns a Result (failures empty = passed)."""
    nemeses = nemeses or DEFAULT_NEMESES
    name = "n%d-s%d-%s" % (nodes, seed, "+".join(nemeses) if len(nemeses) < 4 else "mixed")
    res = Result(name)
    own_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="mc-jepsen-")
    os.makedirs(workdir, exist_ok=True)
    rng = random.Random(seed)
    hist = os.path.join(workdir, "history.jsonl")
    cluster = None
    t_start = time.time()
    log("run %s in %s" % (name, workdir))
    try:
        cluster = Cluster(build, nodes, workdir, extra_flags=node_flags,
                          spares=1 if "membership" in nemeses else 0,
                          clock_hook="clock" in nemeses)
        cluster.start()
        if not wait_settled(cluster, 30):
            res.fail("no leader within 30 s of start")
            return res
        timeout_ms = 4000 if ASAN else 2000
        client_log = open(os.path.join(workdir, "client.log"), "w")
        # Every node, spares too: the client reaches whichever are members (and learns the
        # leader's address from NotLeader replies).
        client = spawn([os.path.join(build, "jepsen_client"), "--endpoints",
                        cluster.endpoints(cluster.nodes),
                        "--processes", str(processes), "--keys", str(keys), "--duration",
                        str(duration), "--out", hist, "--seed", str(seed), "--timeout-ms",
                        str(timeout_ms), "--max-ops", str(int(6000 * duration)),
                        "--consistency", consistency], stdout=client_log, stderr=subprocess.STDOUT)
        fault_s = fault_s or (4.0 if duration >= 20 else 2.5)
        healthy_s = healthy_s or (2.5 if duration >= 20 else 1.5)
        nem = Nemesis(cluster, rng, nemeses, fault_s, healthy_s, first=first)
        stop = threading.Event()
        # The client needs a little time to create its bucket before the first fault.
        time.sleep(0.5)
        nem.run(duration, stop)
        try:
            client.wait(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
            res.fail("jepsen_client did not finish within duration + 60 s")
        client_log.close()
        with open(os.path.join(workdir, "client.log")) as f:
            ctext = f.read()
        summary = last_json(ctext)
        res.info["client"] = summary
        res.info["faults"] = nem.counts
        res.info["events"] = nem.events
        if client.returncode != 0:
            res.fail("jepsen_client exited %s: %s" % (client.returncode, ctext[-500:]))
        for n in cluster.nodes:
            n.poll_crash()
        # -- healed: wait until every member is back and a leader exists
        for n in cluster.members():
            if not n.alive():
                n.start(wait=False)
        if not wait_settled(cluster, 60 if ASAN else 30):
            res.fail("no settled leader within 30 s after healing")
        if "membership" in nemeses:
            # The checks run against the final membership: as many voters as at the start.
            if not nem.restore_members(nodes):
                res.fail("membership not restored to %d voters: %s" % (
                    nodes, sorted(cluster.member_ids)))
            res.info["members"] = sorted(cluster.member_ids)
            for n in cluster.nodes:
                if n.id not in cluster.member_ids and n.alive():
                    n.stop()
        # -- replicas converge (first: verification then reads only from caught-up nodes)
        conv = converge(build, cluster)
        res.info["check"] = conv
        if not conv.get("converged"):
            res.fail("state hashes do not converge: %s" % json.dumps(conv)[-600:])
        # -- final reads + acknowledged appends read back
        ok, detail, summary = verify(build, cluster, hist, keys, caught_up(cluster, conv))
        res.info["verify"] = summary
        if not ok:
            res.fail(detail)
        # -- linearizability
        r = subprocess.run([os.path.join(build, "lincheck"), "--time-limit-s", "120", hist],
                           capture_output=True, text=True, timeout=300)
        res.info["lincheck"] = (r.stdout.strip().splitlines() or [""])[0]
        res.info["lincheck_detail"] = r.stderr.strip().splitlines()[-1:] if r.stderr else []
        if r.returncode == 1:
            res.fail("not linearizable: %s" % (r.stdout + r.stderr)[-1500:])
        elif r.returncode != 0:
            res.fail("lincheck exit %d: %s" % (r.returncode, (r.stdout + r.stderr)[-500:]))
        # -- election safety
        for term, ids in sorted(leaders_per_term(cluster).items()):
            if len(ids) > 1:
                res.fail("two leaders in term %d: nodes %s" % (term, sorted(ids)))
        res.info["terms"] = max(leaders_per_term(cluster) or [0])
    except Exception as e:  # noqa: BLE001 - any harness error fails the run, never hangs it
        res.fail("harness error: %r" % (e,))
    finally:
        if cluster:
            try:
                cluster.close()
            except Exception as e:  # noqa: BLE001
                res.fail("close: %r" % (e,))
            for n in cluster.nodes:
                n.poll_crash()
                for rc, what in n.crashes:
                    res.fail("node %d crashed: %s" % (n.id, what))
                bad = [l for l in n.log().splitlines() if CRASH_PATTERNS.search(l)]
                if bad:
                    res.fail("node %d log: %s" % (n.id, bad[:3]))
        res.info["seconds"] = round(time.time() - t_start, 1)
        res.info["workdir"] = workdir
        if res.failures:
            for n in (cluster.nodes if cluster else []):
                print("---- node %d log tail ----\n%s" % (n.id, n.log_tail(15)))
            print("kept %s (rerun: jepsen.py run --nodes %d --seed %d --nemesis %s%s)" % (
                workdir, nodes, seed, ",".join(nemeses),
                " --node-flags '%s'" % " ".join(node_flags) if node_flags else ""))
        elif own_dir and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        _kill_all()
    log("%s %s: %s" % ("PASS" if res.ok else "FAIL", name, summary_line(res)))
    return res


def summary_line(res):
    c = res.info.get("client", {})
    ops = c.get("ops", 0)
    return "%s ops, faults %s, lincheck %s, appends %s/%s, %ss" % (
        ops, res.info.get("faults", {}), res.info.get("lincheck", "-"),
        res.info.get("verify", {}).get("appends_acked", "-"),
        res.info.get("verify", {}).get("appends_lost", "-"), res.info.get("seconds"))


# ------------------------------------------------------------------------------------ entrypoints

SUITE = [  # (nodes, seed, nemeses); a membership change is the first fault of the runs having it
    (3, 1, ["partition", "isolate-leader", "oneway"]),
    (3, 2, ["kill", "pause-leader", "transfer", "membership"]),
    (5, 3, ["bridge", "partition", "delay"]),
    (5, 4, ["kill", "isolate-leader", "pause-leader", "oneway", "transfer", "membership"]),
]


def suite(build, duration):
    runs = SUITE[:2] + SUITE[3:] if ASAN else SUITE
    passed = failed = 0
    changes = 0
    for nodes, seed, nem in runs:
        r = run_once(build, nodes=nodes, duration=duration, seed=seed, nemeses=nem,
                     first="membership")
        changes += sum(1 for _, e in r.info.get("events", [])
                       if e.startswith("membership: ") and e.endswith(": ok"))
        if r.ok:
            passed += 1
        else:
            failed += 1
    if changes:   # the membership nemesis must have changed the membership at least once
        passed += 1
    else:
        failed += 1
        log("FAIL no membership change succeeded in the suite's runs")
    if not ASAN:
        # Negative control: stale (local) reads while the leader is cut off must be caught by the
        # checker, and only by it (so a quiet checker above means something).
        r = run_once(build, nodes=3, duration=15, seed=5, nemeses=["isolate-leader"],
                     consistency="stale")
        caught = [f for f in r.failures if f.startswith("not linearizable")]
        if caught and len(caught) == len(r.failures):
            passed += 1
            log("PASS negative control: stale reads flagged not linearizable")
            shutil.rmtree(r.info.get("workdir", ""), ignore_errors=True)
        else:
            failed += 1
            log("FAIL negative control: want only 'not linearizable', got %s" % r.failures)
    return passed, failed


# Node configurations the soak cycles through: defaults, leader-lease reads, frequent snapshots
# (so snapshot install and log compaction happen during faults).
SOAK_FLAGS = [[], ["--lease-reads"], snapshot_flags(500, 100)]


def soak(build, minutes, report):
    deadline = time.time() + minutes * 60
    results = []
    seed = int(time.time()) % 100000
    while time.time() + 45 < deadline:
        nodes = random.Random(seed).choice([3, 5])
        flags = SOAK_FLAGS[len(results) % len(SOAK_FLAGS)]
        dur = min(60, max(20, int(deadline - time.time() - 30)))
        r = run_once(build, nodes=nodes, duration=dur, seed=seed, nemeses=DEFAULT_NEMESES,
                     node_flags=flags)
        r.info["flags"] = " ".join(flags) or "(defaults)"
        results.append((nodes, seed, r))
        seed += 1
    write_report(report, minutes, results)
    return sum(r.ok for _, _, r in results), sum(not r.ok for _, _, r in results)


def write_report(path, minutes, results):
    total_ops = sum(r.info.get("client", {}).get("ops", 0) for _, _, r in results)
    faults = {}
    for _, _, r in results:
        for k, v in r.info.get("faults", {}).items():
            faults[k] = faults.get(k, 0) + v
    lines = ["# Fault soak report", "",
             "Generated by `make soak MINUTES=%s` (test/fault/jepsen.py) on %s." % (
                 minutes, time.strftime("%Y-%m-%d %H:%M")), "",
             "- runs: %d (%d passed, %d failed)" % (len(results), sum(r.ok for _, _, r in results),
                                                    sum(not r.ok for _, _, r in results)),
             "- operations recorded: %d" % total_ops,
             "- faults injected: %s" % ", ".join("%s %d" % kv for kv in sorted(faults.items())),
             "", "| run | nodes | node flags | seed | s | ops | faults | lincheck | "
             "appends acked/lost | converged | result |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, (nodes, seed, r) in enumerate(results):
        c = r.info.get("client", {})
        v = r.info.get("verify", {})
        lines.append("| %d | %d | %s | %d | %s | %s | %s | %s | %s/%s | %s | %s |" % (
            i + 1, nodes, r.info.get("flags", ""), seed, r.info.get("seconds"), c.get("ops", "-"),
            " ".join("%s:%d" % kv for kv in sorted(r.info.get("faults", {}).items())),
            r.info.get("lincheck", "-"), v.get("appends_acked", "-"), v.get("appends_lost", "-"),
            r.info.get("check", {}).get("converged", "-"),
            "pass" if r.ok else "FAIL: " + "; ".join(f[:200] for f in r.failures)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    log("wrote %s" % path)


def run_named_tests(tests, prefix, run_subdir=None, known_bug=(), strict=False):
    """The runner of the scripted fault tests (test_crash.py, test_clock.py): `--build B --only
    NAME`; each test is fn(build, workdir) in a fresh temp dir (kept when it fails), with every
    process killed after it. An exception of a `known_bug` class is XFAIL (counted passed) unless
    `strict`. Prints the suite's `N passed, N failed` line; returns the exit code."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    passed = failed = 0
    for name, fn in tests:
        if a.only and a.only != name:
            continue
        work = tempfile.mkdtemp(prefix=prefix)
        t0 = time.time()
        keep = False
        try:
            detail = fn(build, os.path.join(work, run_subdir) if run_subdir else work)
            passed += 1
            log("PASS %s (%.1fs): %s" % (name, time.time() - t0, detail))
        except known_bug as e:
            passed, failed, keep = passed + (not strict), failed + strict, strict
            log("%s %s (%.1fs): %s" % ("FAIL" if strict else "XFAIL (known bug)", name,
                                       time.time() - t0, e))
        except Exception as e:  # noqa: BLE001 - report and go on with the next test
            failed += 1
            keep = True
            log("FAIL %s (%.1fs): %s" % (name, time.time() - t0, e))
        finally:
            _kill_all()
        if keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["run", "suite", "soak"])
    ap.add_argument("--build", default="build")
    ap.add_argument("--nodes", type=int, default=3, choices=[3, 5])
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nemesis", default=",".join(DEFAULT_NEMESES))
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--keys", type=int, default=5)
    ap.add_argument("--node-flags", default="",
                    help="extra `metacenter serve` flags, e.g. '--lease-reads --snapshot-entries 500'")
    ap.add_argument("--consistency", default="linearizable",
                    help="the client's reads; 'stale' shows the checker catching stale reads")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--report", default=os.path.join(ROOT, "test/fault/report.md"))
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if a.mode == "run":
        nem = a.nemesis.split(",")
        unknown = [n for n in nem if n not in NEMESES]
        if unknown:
            ap.error("unknown nemesis %s (known: %s)" % (unknown, ",".join(NEMESES)))
        r = run_once(build, nodes=a.nodes, duration=a.duration, seed=a.seed, nemeses=nem,
                     workdir=a.workdir, processes=a.processes, keys=a.keys, keep=a.keep,
                     node_flags=a.node_flags.split(), consistency=a.consistency)
        print(json.dumps({"ok": r.ok, "failures": r.failures,
                          **{k: v for k, v in r.info.items() if k != "events"}}))
        return 0 if r.ok else 1
    if a.mode == "suite":
        p, f = suite(build, a.duration)
    else:
        p, f = soak(build, a.minutes, a.report)
    print("%d passed, %d failed" % (p, f))
    return 0 if f == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
