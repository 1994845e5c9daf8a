"""test_single.py: one node: every engine operation through the server gives the same results
as offline mode (--data-dir); restart keeps the data; SIGTERM shuts down cleanly."""
import json
import re
import shutil
import tempfile

from harness import Cluster, cli

SCRIPT = [
    ["bucket", "create", "photos"],
    ["bucket", "create", "vers", "--versioning"],
    ["bucket", "create", "photos"],
    ["bucket", "create", "Bad_Name"],
    ["bucket", "ls"],
    ["put", "photos", "a/1.jpg", "--size", "10", "--etag", "e1", "--content-type", "image/jpeg",
     "--meta", "owner=alice"],
    ["put", "photos", "a/2.jpg", "--size", "20", "--etag", "e2"],
    ["put", "photos", "b/3.jpg", "--size", "30"],
    ["put", "photos", "top.txt", "--size", "1"],
    ["put", "photos", "a/1.jpg", "--if-none-match", "*"],
    ["put", "photos", "a/1.jpg", "--if-match", "nope"],
    ["put", "photos", "a/1.jpg", "--if-match", "e1", "--size", "11", "--etag", "e1b"],
    ["get", "photos", "a/1.jpg"],
    ["get", "photos", "missing"],
    ["get", "nobucket", "x"],
    ["ls", "photos"],
    ["ls", "photos", "--delimiter", "/"],
    ["ls", "photos", "--prefix", "a/", "--max-keys", "1"],
    ["put", "vers", "k", "--size", "1", "--etag", "v1"],
    ["put", "vers", "k", "--size", "2", "--etag", "v2"],
    ["rm", "vers", "k"],
    ["get", "vers", "k"],
    ["versions", "vers"],
    ["rm", "photos", "top.txt"],
    ["rm", "photos", "top.txt"],
    ["bucket", "rm", "photos"],
    ["bucket", "versioning", "vers", "suspended"],
    ["bucket", "head", "vers"],
    ["put", "photos", "k\x01"],
    ["put", "photos", "x" * 1025],
]

VOLATILE = re.compile(r'"(version_id|mod_time_ns|created_ns|next_version_id_marker)"\s*:\s*("[^"]*"|\d+)')


def normalize(text):
    return VOLATILE.sub(r'"\1":"*"', text)


def run_all(prefix):
    out = []
    for cmd in SCRIPT:
        r = cli(prefix + ["--json"] + cmd, check=False)
        err = r.stderr.strip().split(":")[0] if r.returncode else ""
        out.append((r.returncode, normalize(r.stdout.strip()), err))
    return out


def test_server_matches_offline():
    tmp = tempfile.mkdtemp(prefix="mc-offline-")
    try:
        offline = run_all(["--data-dir", tmp])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with Cluster(1) as c:
        c.leader()
        online = run_all(["--endpoints", c.endpoints()])
    for cmd, a, b in zip(SCRIPT, offline, online):
        assert a == b, "differs for %r:\n offline %r\n server  %r" % (cmd, a, b)


def test_restart_keeps_data_and_sigterm_is_clean():
    with Cluster(1) as c:
        n = c.nodes[0]
        c.leader()
        cli(["--endpoints", n.client, "bucket", "create", "keep"])
        for i in range(50):
            cli(["--endpoints", n.client, "put", "keep", "k%02d" % i, "--size", str(i)])
        n.stop()
        assert n.proc.returncode == 0, n.log_tail()
        assert "node_stopped" in n.log()
        n.start()
        c.leader()
        r = json.loads(cli(["--endpoints", n.client, "--json", "ls", "keep"]).stdout)
        assert r["key_count"] == 50, r
