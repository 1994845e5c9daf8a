"""test_http.py: a node's own HTTP API (--listen-http) against a real metacenter process: the
in-process connection from the HTTP layer to the node is reopened when the client server closes
it (test hook MC_TEST_HTTP_LOCAL_CLOSE_AFTER)."""
import json
import urllib.error
import urllib.request

from harness import Cluster, start_with_env, wait_for

CLOSE_AFTER = 6  # bucket create, then PUT/GET pairs: the 6th request is a PUT (k2)


def http(port, method, path, body=None, timeout=5):
    """(status, decoded JSON body or None); status None when the request did not get through."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, None
    except OSError:
        return None, None


def test_in_process_connection_reopened_after_close():
    """The client server closes the HTTP layer's in-process connection after the 6th request
    through it (a PUT). Before: every later HTTP write on that node answered 503 ShuttingDown
    for the life of the process (reads went round through the loopback client), /healthz 200.
    Now: at most the request in flight at the close fails; everything after it succeeds, and
    what was written after the reopen reads back."""
    c = Cluster(1, http=True)
    try:
        start_with_env(c, {"MC_TEST_HTTP_LOCAL_CLOSE_AFTER": str(CLOSE_AFTER)})
        run_close_and_reopen(c)
    finally:
        c.close()


def run_close_and_reopen(c):
    """The 20 requests and checks of the test above, on its node."""
    port = c.nodes[0].http_port
    assert wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, 15), \
        "node never ready: %s" % (http(port, "GET", "/readyz"),)
    st, body = http(port, "PUT", "/v1/buckets/reopen")
    assert st == 200, "bucket create: %s %s" % (st, body)
    log = []  # (step, method, key, status, body); step 1 was the bucket create
    for i in range(10):
        key = "k%d" % i
        st, body = http(port, "PUT", "/v1/buckets/reopen/objects/" + key,
                        {"size": i, "etag": "e%d" % i})
        log.append((len(log) + 2, "PUT", key, st, body))
        st, body = http(port, "GET", "/v1/buckets/reopen/objects/" + key)
        log.append((len(log) + 2, "GET", key, st, body))
    # Sequential requests: only the one in flight at the close may fail (503; a write's
    # outcome is then unknown, so its GET may say 404), and no request after it.
    unknown = {e[2] for e in log if e[1] == "PUT" and e[3] == 503}
    failed = [e for e in log
              if e[3] != 200 and not (e[1] == "GET" and e[2] in unknown and e[3] == 404)]
    assert len(failed) <= 1, "more than the request in flight failed: %s" % failed
    assert all(e[3] == 503 for e in failed), "a failure other than 503: %s" % failed
    # Every object written after the close reads back (GET again, now).
    written = [e[2] for e in log if e[1] == "PUT" and e[3] == 200]
    assert len(written) >= 9, "writes lost: %s" % log
    for key in written:
        st, body = http(port, "GET", "/v1/buckets/reopen/objects/" + key)
        assert st == 200 and body.get("key") == key, "%s: %s %s" % (key, st, body)
    node_log = c.nodes[0].log()
    assert "test_hook_http_local_close" in node_log, "the hook never closed the connection"
    assert "http_local_reopened" in node_log, "no http_local_reopened in the node's log"
    assert http(port, "GET", "/healthz")[0] == 200
