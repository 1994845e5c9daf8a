"""test_input_rules.py: S3 rules added after the apply rules were fixed are checked by the node
before it proposes (node_write.c), not at apply, so replicas of different versions apply the
same log alike (engine.h). A bucket create sent over the native protocol with no CLI or HTTP
check in front: a reserved name is refused by the node."""
import json
import os
import subprocess

from harness import BUILD, ROOT, Cluster

RAW = os.path.join(ROOT, BUILD, "rawwrite")


def raw(*args):
    r = subprocess.run([RAW] + list(args), capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout)


def test_node_refuses_a_reserved_bucket_name_before_proposing():
    with Cluster(1) as c:
        node = c.leader()
        for name in ("xn--abc", "abc-s3alias", "sthree-x"):
            r = raw(node.client, "mkbucket", name)
            assert r["status"] == "InvalidBucketName", (name, r)
        assert raw(node.client, "mkbucket", "plain-name")["status"] == "OK"
