"""test_bench_tool.py: the load generator's open loop (`metacenter bench --rate`): the offered
rate is held, and with --send-tick-us the wait for the next grid point is part of the measured
latency (latency counts from when a request fell due, never from when it was sent), while a
reply's latency ends when it arrives, not at the next grid point."""
import json

from harness import Cluster, cli


def bench(c, extra, seconds=2, workload="put"):
    r = cli(["bench", "--endpoints", c.endpoints(), "--workload", workload, "--keys", "1000",
             "--connections", "2", "--pipeline", "64", "--duration", str(seconds), "--json"]
            + extra, timeout=seconds + 60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_send_tick_wait_is_measured():
    with Cluster(1) as c:
        res = bench(c, ["--rate", "2000", "--send-tick-us", "20000"])
        print("tick 20 ms: %s" % res)
        assert res["errors"] == 0, res
        assert res["send_tick_us"] == 20000, res
        # The offered rate holds (2 s at 2,000/s), sent in 100 bursts.
        assert res["ops"] >= 3600, res
        # Requests fall due uniformly over each 20 ms tick and wait for its end: half of them
        # wait 10 ms or more, the first of each tick almost 20 ms.
        assert res["p50_us"] >= 5000, res
        assert res["max_us"] >= 15000, res


def test_replies_are_timestamped_when_they_arrive():
    # Under 1 ms to the next grid point the generator used to sleep through replies, so each
    # latency ran to the next grid point: never under one tick (900 us here). Stale gets answer
    # in well under 0.45 ms on loopback, so with requests due uniformly over each tick half of
    # them take less than the tick.
    with Cluster(1) as c:
        bench(c, [], seconds=1)  # the bucket and some keys
        res = bench(c, ["--rate", "1000", "--send-tick-us", "900", "--consistency", "stale"],
                    workload="get")
        print("tick 0.9 ms: %s" % res)
        assert res["errors"] == 0, res
        assert res["ops"] >= 1800, res
        assert res["p50_us"] < 900, res


def test_send_tick_bad_input():
    with Cluster(1) as c:
        for extra, want in ((["--send-tick-us", "100"], "needs --rate"),
                            (["--rate", "100", "--send-tick-us", "100001"], "bad value"),
                            (["--rate", "100", "--send-tick-us", "x"], "bad value")):
            r = cli(["bench", "--endpoints", c.endpoints(), "--duration", "1"] + extra,
                    check=False)
            assert r.returncode == 2 and want in r.stderr, (extra, r.returncode, r.stderr)
