"""test_check_cli.py: `metacenter check` against members that go away or stay busy while it waits
for their hash (held by the test hook MC_TEST_CHECK_HASH_DELAY_MS, standing in for a large
engine). A member killed or stopped mid-hash is reported unreachable within seconds (the client
used to retry the lost request, or the stop's ShuttingDown, until the CLI's 120 s deadline); a
member that stays Busy past --timeout-ms is reported busy, not unreachable, and the wait for it
ends at the deadline."""
import json
import os
import subprocess
import time

from harness import BIN, FAST_FLAGS, ROOT, BUILD, Cluster, cli, wait_for, start_with_env

HASH_DELAY_MS = 1500
REPORT_S = 8.0  # from the member's loss to the CLI's exit: the other members' hashes, and slack
CHECK_WAIT_S = 30  # old code: the CLI waits 120 s for the lost member


def _start(size, delay_ms):
    c = Cluster(size, FAST_FLAGS)
    try:
        start_with_env(c, {"MC_TEST_CHECK_HASH_DELAY_MS": str(delay_ms)})
    except Exception:
        c.close()
        raise
    return c


def _finish(proc, since, what):
    """The CLI's (stdout, stderr) and seconds from `since` to its exit; fails after CHECK_WAIT_S."""
    try:
        out, err = proc.communicate(timeout=CHECK_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("metacenter check still waited %d s after %s" % (CHECK_WAIT_S, what))
    return out, err, time.time() - since


def _member_lost_mid_hash(lose, what):
    c = _start(3, HASH_DELAY_MS)
    proc = None
    try:
        eps = c.endpoints()
        cli(["--endpoints", eps, "bucket", "create", "checked"], timeout=30)
        leader = c.leader()
        victim = [n for n in c.nodes if n is not leader][-1]
        proc = subprocess.Popen([BIN, "--endpoints", eps, "--json", "check"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The hook line comes with the member's first hash: this CLI's request (no automatic check).
        assert wait_for(lambda: "test_hook_check_hash_delay" in victim.log(), 15), \
            victim.log_tail(20)
        t0 = time.time()
        lose(victim)
        out, err, took = _finish(proc, t0, what)
        assert took < REPORT_S, "the check took %.1f s after %s" % (took, what)
        assert proc.returncode == 1, (proc.returncode, out, err)
        assert "1 of 3 members unreachable" in err, err
        j = json.loads(out)
        assert not j["consistent"], j
        by_id = {m["id"]: m for m in j["members"]}
        lost = by_id[victim.id]
        assert not lost["reachable"] and lost["state_hash"] is None, lost
        assert lost["error"] in ("IOError", "ShuttingDown"), lost
        rest = [m for m in j["members"] if m["id"] != victim.id]
        assert all(m["reachable"] and m["error"] is None for m in rest), j
        assert len({(m["applied_index"], m["state_hash"]) for m in rest}) == 1, j
        return lost
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.communicate()
        c.close()


def test_a_member_killed_mid_hash_is_reported_at_once():
    """SIGKILL while the CLI waits for the member's hash: its connection closes, and the request
    is not retried against a port that now refuses (old code: 120 s)."""
    lost = _member_lost_mid_hash(lambda n: n.kill(), "the member was killed")
    assert lost["error"] == "IOError", lost


def test_a_member_stopped_mid_hash_is_reported_at_once():
    """A graceful stop while the CLI waits for the member's hash answers it ShuttingDown; that is
    final for this member (old code: retried, then refused, until 120 s)."""
    _member_lost_mid_hash(lambda n: n.stop(), "the member was stopped")


def _held(delay_ms):
    """A one-member cluster whose hashes take delay_ms, and a rawwrite CHECK request (no retry)
    holding its hash from now on (the member's first hash: nothing else asks for one)."""
    c = _start(1, delay_ms)
    try:
        cli(["--endpoints", c.endpoints(), "bucket", "create", "checked"], timeout=30)
        holder = subprocess.Popen([os.path.join(ROOT, BUILD, "rawwrite"), c.nodes[0].client,
                                   "check"], stdout=subprocess.PIPE, text=True)
    except Exception:
        c.close()
        raise
    return c, holder


def _check_held(c, holder, timeout_ms, max_s):
    """`metacenter check --timeout-ms timeout_ms` while holder's hash runs: (the CLI's result, the
    member's JSON entry); the CLI exits with 1 within max_s."""
    node = c.nodes[0]
    assert wait_for(lambda: "test_hook_check_hash_delay" in node.log(), 10), node.log_tail(20)
    t0 = time.time()
    r = cli(["--endpoints", c.endpoints(), "--timeout-ms", str(timeout_ms), "--json", "check"],
            check=False, timeout=60)
    took = time.time() - t0
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert took < max_s, "the check took %.1f s with --timeout-ms %d" % (took, timeout_ms)
    out, _ = holder.communicate(timeout=10)
    assert json.loads(out)["status"] == "OK", out
    return r, json.loads(r.stdout)["members"][0]


def test_a_member_that_stays_busy_is_reported_busy():
    """Another request holds the member's hash for the CLI's whole deadline: the member shows as
    busy, not unreachable (old code: "unreachable"), and the CLI ends at its deadline."""
    c, holder = _held(8000)  # busy for the CLI unless it starts 5 s after the hold began
    try:
        r, m = _check_held(c, holder, 3000, 6.0)
        assert m["error"] == "Busy" and not m["reachable"], m
        assert "busy" in r.stderr and "unreachable" not in r.stderr, r.stderr
        assert "checked the others" not in r.stderr, r.stderr  # there are none
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()
        c.close()


def test_a_hash_started_late_gets_the_time_left():
    """The member is Busy until just before --timeout-ms ends: the CLI's own request then gets
    the time left, not a whole --timeout-ms again (old code: it waited for its own 3 s hash and
    took ~2 x the delay).
    The holds are long enough for a slow CLI start on a loaded box (under ASan)."""
    c, holder = _held(6000)  # its own 6 s hash fits the time left only if it starts 5.5 s late
    try:
        r, m = _check_held(c, holder, 6500, 9.5)
        assert m["error"] == "Timeout" and not m["reachable"], m
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()
        c.close()
