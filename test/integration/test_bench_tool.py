"""test_bench_tool.py: the load generator's open loop (`metacenter bench --rate`): the offered
rate is held, and with --send-tick-us the wait for the next grid point is part of the measured
latency (latency counts from when a request fell due, never from when it was sent)."""
import json

from harness import Cluster, cli


def bench(c, extra, seconds=2):
    r = cli(["bench", "--endpoints", c.endpoints(), "--workload", "put", "--keys", "1000",
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


def test_send_tick_bad_input():
    with Cluster(1) as c:
        for extra, want in ((["--send-tick-us", "100"], "needs --rate"),
                            (["--rate", "100", "--send-tick-us", "100001"], "bad value"),
                            (["--rate", "100", "--send-tick-us", "x"], "bad value")):
            r = cli(["bench", "--endpoints", c.endpoints(), "--duration", "1"] + extra,
                    check=False)
            assert r.returncode == 2 and want in r.stderr, (extra, r.returncode, r.stderr)
