"""test_observability.py: the example configs start a real 3-node cluster; a real Prometheus
server scrapes it (has_leader and leader_id agree; after kill -9 of the leader, leader_id moves
to a live node); /readyz flips to 503 on a node cut off from the leader."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import harness
from harness import BIN, ROOT, cli, free_port, port_open, wait_for

EXAMPLES = os.path.join(ROOT, "docs", "examples")
HTTP = {1: 7080, 2: 7180, 3: 7280}
CLIENT = {1: 7070, 2: 7170, 3: 7270}


def http_get(port, path, timeout=2):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def start_example(tmp, i):
    log = open(os.path.join(tmp, "node%d.log" % i), "ab")
    p = subprocess.Popen([BIN, "serve", "--config",
                          os.path.join(EXAMPLES, "three-node-%d.yaml" % i)],
                         cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    harness._procs.append(p)
    return p


def prom_query(port, q):
    status, body = http_get(port, "/api/v1/query?query=" + urllib.parse.quote(q))
    if status != 200:
        return None
    return {int(r["metric"]["instance"].rsplit(":", 1)[1]): float(r["value"][1])
            for r in json.loads(body)["data"]["result"]}


def test_example_configs_prometheus_and_readyz():
    tmp = tempfile.mkdtemp(prefix="mc-obs-")
    procs = {}
    prom = None
    try:
        for i in (1, 2, 3):
            procs[i] = start_example(tmp, i)
        endpoints = ",".join("127.0.0.1:%d" % CLIENT[i] for i in (1, 2, 3))
        assert wait_for(lambda: cli(["--endpoints", endpoints, "bucket", "create", "obsv"],
                                    check=False, timeout=10).returncode == 0, 20), \
            "the example 3-node cluster never accepted a write"
        for i in (1, 2, 3):
            assert wait_for(lambda: http_get(HTTP[i], "/readyz")[0] == 200, 10), \
                "node %d never ready: %s" % (i, http_get(HTTP[i], "/readyz"))
        # A real Prometheus server scraping the three HTTP ports every second.
        prom_port = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"
                    "scrape_configs:\n  - job_name: metacenter\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:7080', '127.0.0.1:7180', '127.0.0.1:7280']\n")
        prom = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                                 "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % prom_port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness._procs.append(prom)

        def all_have_leader():
            r = prom_query(prom_port, "rustfs_metadata_has_leader")
            return r is not None and len(r) == 3 and all(v == 1 for v in r.values())

        assert wait_for(all_have_leader, 40, interval=0.5), \
            "prometheus never saw has_leader == 1 on all nodes: %s" % prom_query(
                prom_port, "rustfs_metadata_has_leader")
        ids = prom_query(prom_port, "rustfs_metadata_replication_leader_id")
        assert len(set(ids.values())) == 1, ids
        leader = int(list(ids.values())[0])
        assert leader in (1, 2, 3), ids
        procs[leader].kill()
        procs[leader].wait()
        live = [i for i in (1, 2, 3) if i != leader]

        def moved():
            r = prom_query(prom_port, "rustfs_metadata_replication_leader_id")
            if not r:
                return False
            vals = [r.get(HTTP[i]) for i in live]
            return all(v is not None and int(v) in live for v in vals) and len(set(vals)) == 1

        assert wait_for(moved, 40, interval=0.5), \
            "leader_id did not move to a live node: %s" % prom_query(
                prom_port, "rustfs_metadata_replication_leader_id")
        # Cut the last node off from the leader: stop the other live one too.
        new_leader = int(prom_query(prom_port, "rustfs_metadata_replication_leader_id")[HTTP[live[0]]])
        other = [i for i in live if i != new_leader][0]
        procs[new_leader].kill()
        procs[new_leader].wait()
        assert wait_for(lambda: http_get(HTTP[other], "/readyz")[0] == 503, 15), \
            "readyz stayed %s on node %d cut off from the leader" % (
                http_get(HTTP[other], "/readyz"), other)
        status, body = http_get(HTTP[other], "/readyz")
        assert json.loads(body).get("ready") is False, body
        assert http_get(HTTP[other], "/healthz")[0] == 200
    finally:
        if prom and prom.poll() is None:
            prom.kill()
            prom.wait()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
