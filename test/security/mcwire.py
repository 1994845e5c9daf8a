"""mcwire.py: minimal client-protocol frames (docs/protocol.md) for security tests over raw sockets."""
import socket
import struct

VERSION = 1
OP_PING = 0x01
OP_WRITE = 0x03
OP_GET_OBJECT = 0x10
OP_LIST_BUCKETS = 0x14
OP_AUTH = 0x30
HEADER = 20


def frame(op, rid, body=b"", version=VERSION):
    return struct.pack("<IBBHQi", 16 + len(body), version, op, 0, rid, 0) + body


def pstr(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b + b"\0"


def get_body(bucket, key, stale=True):
    """GET_OBJECT: ro (u8 consistency, u32 max_staleness_ms), bucket, key, version_id ""."""
    return struct.pack("<BI", 1 if stale else 0, 0) + pstr(bucket) + pstr(key) + pstr("")


def write_body(n_ops, session=0, seq=0):
    ops = b"".join(struct.pack("<I", 1) + b"\0" for _ in range(n_ops))
    return struct.pack("<QQQI", session, seq, 0, n_ops) + ops


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    """(op, rid, status, body) or None on EOF."""
    h = recv_exact(s, HEADER)
    if h is None:
        return None
    length, _ver, op, _flags, rid, status = struct.unpack("<IBBHQi", h)
    body = recv_exact(s, length - 16) if length > 16 else b""
    if body is None:
        return None
    return op, rid, status, body


def error_message(body):
    if len(body) < 4:
        return ""
    n = struct.unpack("<I", body[:4])[0]
    return body[4:4 + n].decode(errors="replace")


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def ping(port, timeout=5):
    """Status of a PING on a fresh connection (0 = served)."""
    s = connect(port, timeout)
    try:
        s.sendall(frame(OP_PING, 7))
        r = read_frame(s)
        return None if r is None else r[2]
    finally:
        s.close()


def is_closed(s, timeout):
    """True when the peer closes s within timeout (replies before EOF are skipped)."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
