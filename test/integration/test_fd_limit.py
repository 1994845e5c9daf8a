"""test_fd_limit.py: a node under a low descriptor limit lowers its connection caps to fit it
(logging the change), refuses client connections beyond the lowered cap, and keeps serving writes
(aud18 B1: held connections must not leave the WAL without descriptors)."""
import re
import resource
import socket
import time

from harness import Cluster, cli, wait_for

LIMIT = 256
EXTRA = 10


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def alive(sock):
    """True while the node holds the connection open and has sent nothing (a refused one gets a
    SlowDown frame, then EOF). sock is in blocking mode: MSG_DONTWAIT alone keeps recv from
    waiting."""
    try:
        sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_node_fits_its_connection_caps_to_a_low_descriptor_limit():
    c = Cluster(1)
    c.nodes[0].preexec = low_nofile
    held = []
    try:
        c.start()
        n = c.nodes[0]
        m = re.search(r"fd_limit_clamped .*max_client_connections=1000->(\d+)", n.log())
        assert m, "no clamp logged:\n" + n.log_tail()
        cap = int(m.group(1))
        assert 0 < cap < LIMIT, cap
        assert re.search(r"fd_limit limit=%d " % LIMIT, n.log()), n.log_tail()
        # The harness's start probe (port_open) and the cluster's leader wait each opened a
        # client connection and closed it; give the node a moment to see those ends.
        time.sleep(1.0)
        for _ in range(cap + EXTRA):
            s = socket.create_connection(("127.0.0.1", n.client_port), timeout=5)
            s.settimeout(None)
            held.append(s)
        # The first cap connections are kept; each one past it gets SlowDown and is closed.
        assert wait_for(lambda: sum(not alive(s) for s in held) >= EXTRA, 10), \
            "refused: %d" % sum(not alive(s) for s in held)
        time.sleep(0.5)
        open_now = [s for s in held if alive(s)]
        # Exactly cap, or one fewer when an earlier probe's end was still being seen as the burst
        # came (it then held a slot): never more than the lowered cap.
        assert cap - 1 <= len(open_now) <= cap, (len(open_now), cap)
        # Leave room for the CLI: writes still go through, and nothing failed in the node.
        for s in open_now[:4]:
            s.close()
        for i in range(20):
            cli(["--endpoints", n.client, "bucket", "create", "bkt%d" % i], timeout=10)
        cli(["--endpoints", n.client, "put", "bkt0", "k", "--size", "1"], timeout=10)
        assert n.alive()
        assert "fatal" not in n.log(), n.log_tail()
    finally:
        for s in held:
            s.close()
        c.close()
