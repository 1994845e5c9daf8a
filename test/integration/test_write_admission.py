"""test_write_admission.py: what the leader checks and how it batches before proposing
(src/node/node_write.c), with native-protocol writes sent as is (build/rawwrite): S3 rules added
after the apply rules were fixed are checked here, not at apply, so replicas of different
versions apply the same log alike (engine.h); a batch never holds more engine ops than one apply
takes, and a large write is not refused because other clients' writes came first."""
from harness import Cluster, cli_json, rawwrite



def burst(node, bucket, *shape):
    """rawwrite burst into a new bucket, the node stopped while the writes arrive."""
    assert rawwrite(node.client, "mkbucket", bucket)["status"] == "OK"
    return rawwrite(node.client, "burst", bucket, *shape, str(node.proc.pid))


def test_node_refuses_a_reserved_bucket_name_before_proposing():
    with Cluster(1) as c:
        node = c.leader()
        for name in ("xn--abc", "abc-s3alias", "sthree-x"):
            r = rawwrite(node.client, "mkbucket", name)
            assert r["status"] == "InvalidBucketName", (name, r)
        assert rawwrite(node.client, "mkbucket", "plain-name")["status"] == "OK"


def test_atomic_writes_batched_together_stay_under_the_engine_op_limit():
    """Twelve 1000-op atomic writes read in one loop iteration (the node is stopped while they
    are sent): the batcher counted each as one op, so one Raft entry held 12,012 engine ops,
    over MC_APPLY_MAX_OPS (4096); no replica could apply it, and each stopped on it at every
    restart (session 8 review). Now the batch is proposed before it would go over."""
    with Cluster(1) as c:
        node = c.leader()
        res = burst(node, "burst", "0", "0", "12", "1000", "0")
        assert res["ok"] == 12 and res["errors"] == 0, (res, node.log_tail())
        assert node.alive(), node.log_tail()
        node.stop()
        node.start()
        listed = cli_json(["--endpoints", node.client, "ls", "burst", "--max-keys", "1000",
                           "--prefix", "c11-"])
        assert len(listed["objects"]) == 1000, str(listed)[:300]


def test_a_large_write_is_not_refused_for_what_others_sent_first():
    """34 puts of 30 KB, then one atomic write of 18 x 60 KB (1.08 MB, accepted when sent alone),
    read in one loop iteration: the batch held ~1 MB when the atomic came, its encoding overflowed
    the batch buffer and the client got EntityTooLarge (session 8 review). Now the batch is
    proposed first and the atomic starts the next one."""
    with Cluster(1) as c:
        node = c.leader()
        res = burst(node, "big", "34", "30000", "1", "18", "60000")
        assert res["errors"] == 0 and res["big_ok"] == 1, (res, node.log_tail())


def test_an_op_record_over_the_limit_is_entity_too_large():
    """An op record over MC_OP_MAX_BYTES (2 MiB) inside a valid frame (≤ 4 MiB): the engine's
    decoders call it malformed, and the client got ProtocolError "malformed op record"
    (EPROTO) for what is only too big; now EntityTooLarge naming the limit, for a single-op and
    a multi-op write, and the node keeps serving."""
    with Cluster(1) as c:
        node = c.leader()
        assert rawwrite(node.client, "mkbucket", "big")["status"] == "OK"
        for n_ops in ("1", "3"):
            r = rawwrite(node.client, "bigop", "big", n_ops)
            assert r["status"] == "EntityTooLarge", (n_ops, r)
            assert "2 MiB" in r["message"], (n_ops, r)
        assert node.alive(), node.log_tail()
        assert rawwrite(node.client, "put", "0", "0", "big", "after", "e1")["status"] == "OK"
        listed = cli_json(["--endpoints", node.client, "ls", "big"])
        assert [o["key"] for o in listed["objects"]] == ["after"], listed


def test_odd_sub_ops_are_refused_before_proposing():
    """aud18 R7/R8: in an atomic write (two records, or one ATOMIC record), a sub-op that is
    itself atomic, carries a session id or registers a session is refused by the leader with
    InvalidArgument naming the rule (before: a vague InvalidArgument from apply after a trip
    through Raft, or nothing said); a bucket create inside it gets the leader-only name rules (a
    reserved name was created before). Nothing of a refused write is applied."""
    with Cluster(1) as c:
        node = c.leader()
        assert rawwrite(node.client, "mkbucket", "shapes")["status"] == "OK"
        want = {"nested": "atomic", "session": "session", "register": "session",
                "bucket": "xn--"}
        for kind, word in want.items():
            for shape in (kind, kind + "1"):
                r = rawwrite(node.client, "shaped", "shapes", shape)
                status = "InvalidBucketName" if kind == "bucket" else "InvalidArgument"
                assert r["status"] == status, (shape, r)
                assert word in r["message"], (shape, r)
        listed = cli_json(["--endpoints", node.client, "ls", "shapes"])
        assert listed["objects"] == [], listed
        buckets = cli_json(["--endpoints", node.client, "bucket", "ls"])
        assert "xn--refused" not in str(buckets), buckets
        for shape in ("plain", "plain1"):
            assert rawwrite(node.client, "shaped", "shapes", shape)["status"] == "OK", shape
        assert node.alive(), node.log_tail()


def test_bucket_creates_past_the_cap_are_refused():
    """aud18 R6: past about 55,000 buckets LIST_BUCKETS no longer fits one frame and fails for
    everyone; the leader now refuses a create past 10,000 buckets (TooManyBuckets). Creates
    proposed and not yet applied count: three writes of 1000 creates read in one loop iteration
    (the node stopped while they arrive) at 8,000 buckets, the third is refused. An atomic write
    that would cross the cap is refused whole."""
    with Cluster(1) as c:
        node = c.leader()
        r = rawwrite(node.client, "mkbuckets", "b", "8000")
        assert r == {"ok": 8000, "status": "OK"}, r
        r = rawwrite(node.client, "mkbuckets", "p", "3000", str(node.proc.pid))
        assert r == {"ok": 2000, "status": "TooManyBuckets"}, r
        assert rawwrite(node.client, "mkbucket", "one-more")["status"] == "TooManyBuckets"
        buckets = cli_json(["--endpoints", node.client, "bucket", "ls"])
        names = [b["name"] for b in buckets["buckets"]]
        assert len(names) == 10000 and "p-2000" not in names, len(names)
        cli_json(["--endpoints", node.client, "bucket", "rm", "b-0"])
        r = rawwrite(node.client, "mkbuckets", "two", "2")  # would make 10,001: all refused
        assert r == {"ok": 0, "status": "TooManyBuckets"}, r
        assert rawwrite(node.client, "mkbucket", "one-more")["status"] == "OK"
        assert node.alive(), node.log_tail()
