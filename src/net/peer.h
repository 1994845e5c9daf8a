/* peer.h: Raft peer transport: TCP, length-prefixed frames, one outbound connection per peer. */
#ifndef MC_NET_PEER_H
#define MC_NET_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "security/tls.h"

/*
 * Each node dials one outbound connection to every peer and sends on it;
 * it receives on the connections peers dial to it. So a pair of nodes uses two
 * TCP connections, one per direction: no tie-breaking, and a half-open link
 * only silences one direction (which Raft tolerates as message loss).
 *
 * Frame: u32 length (of what follows) | u8 kind | u64 from_node | payload.
 * The first frame on a connection is HELLO {u64 cluster_id, str client_addr,
 * str http_addr, str peer_addr} (str = u32 length + bytes): a peer whose cluster
 * id differs is refused (a node with cluster id 0 — one waiting to join — accepts
 * the first one it sees: on_hello reports it); the addresses let followers
 * redirect clients to the leader and a joining node dial back the leader. Frames are ≤
 * MC_PEER_FRAME_MAX. After HELLO, a frame of a kind above MC_PEER_KIND_MAX (from a newer build) is
 * skipped and the link kept; a second HELLO or a from_node other than the HELLO's closes the link.
 */
#define MC_PEER_FRAME_MAX    (8u * 1024 * 1024)
#define MC_PEER_MAX_PEERS    16
#define MC_PEER_OUTBUF_MAX   (64u * 1024 * 1024) /* per peer; beyond it frames are dropped */
#define MC_PEER_HEADER_BYTES 13

enum mc_peer_kind {
    MC_PEER_HELLO = 0,
    MC_PEER_RAFT = 1,       /* an encoded Raft message */
    MC_PEER_SNAP_CHUNK = 2, /* snapshot bytes: leader → follower */
    MC_PEER_SNAP_ACK = 3,   /* follower → leader: bytes received so far / done / failed */
    MC_PEER_CHECK = 4,      /* consistency check: leader asks a member's hash, it answers */
    MC_PEER_KIND_MAX = 4,   /* the newest kind this build knows; newer ones are skipped */
};

struct mc_peer_transport;

/* Called on the loop thread for every frame received (payload borrowed for the call). */
typedef void (*mc_peer_recv_fn)(void *ctx, uint64_t from, uint8_t kind, const uint8_t *payload,
                                size_t len);
/* Called when an outbound link goes up (up=1) or down (up=0). */
typedef void (*mc_peer_link_fn)(void *ctx, uint64_t peer, int up);

/* Called when a peer's HELLO arrives with the addresses it serves clients on. */
typedef void (*mc_peer_hello_fn)(void *ctx, uint64_t from, uint64_t cluster_id,
                                 const char *client_addr, const char *http_addr,
                                 const char *peer_addr);

struct mc_peer_options {
    uint64_t self_id;
    uint64_t cluster_id;
    const char *listen_addr; /* "HOST:PORT"; port 0 = ephemeral */
    mc_peer_recv_fn on_recv;
    mc_peer_link_fn on_link;
    mc_peer_hello_fn on_hello;    /* optional */
    const char *advertise_client; /* this node's client address, sent in HELLO */
    const char *advertise_http;
    const char *advertise_peer; /* this node's peer address, sent in HELLO */
    void *ctx;
    uint64_t reconnect_min_ms; /* default 50 */
    uint64_t reconnect_max_ms; /* default 2000 */
    /* Mutual TLS (docs/security.md): both set = every link is TLS; inbound links need a
     * client certificate from the peer CA, outbound links verify the peer's certificate
     * (chain + the dialed IP/host). Contexts must outlive the transport. */
    struct mc_tls_ctx *tls_server;
    struct mc_tls_ctx *tls_client;
};

int mc_peer_start(uv_loop_t *loop, const struct mc_peer_options *opts,
                  struct mc_peer_transport **out);
/* Adopt a cluster id (a joining node learns it from the first leader that contacts it). */
void mc_peer_set_cluster_id(struct mc_peer_transport *t, uint64_t cluster_id);
/* Port actually bound (for listen port 0). */
int mc_peer_port(const struct mc_peer_transport *t);
/* Add or update a peer's address; connects lazily on the first send. */
int mc_peer_set(struct mc_peer_transport *t, uint64_t id, const char *addr);
void mc_peer_remove(struct mc_peer_transport *t, uint64_t id);
/* Dial the peer now if its link is idle or waiting out a reconnect backoff (a no-op while
 * connecting or up). A starting member dials every peer, so each learns it is back: a peer's
 * HELLO on an inbound connection does the same for our link to it (the reconnect backoff grows
 * to reconnect_max_ms while a member is down; without this the leader reached a restarted
 * member only when that backoff ran out, up to 2 s later). */
void mc_peer_dial(struct mc_peer_transport *t, uint64_t id);
/*
 * Queue one frame for a peer; written with every other frame queued in this
 * loop iteration in one uv_write. Returns MC_ELIMIT when the peer's buffer is
 * full (the frame is dropped: Raft retransmits), MC_ENOMEMBER for unknown ids.
 */
int mc_peer_send(struct mc_peer_transport *t, uint64_t to, uint8_t kind, const void *payload,
                 size_t len);
/* Same, payload given as two parts (header + body) to avoid a copy by the caller. */
int mc_peer_send2(struct mc_peer_transport *t, uint64_t to, uint8_t kind, const void *a,
                  size_t alen, const void *b, size_t blen);
/* True when the outbound connection to the peer is established. */
int mc_peer_connected(const struct mc_peer_transport *t, uint64_t id);
/* Bytes queued but not yet written to a peer (flow control for snapshot streaming). */
size_t mc_peer_pending_bytes(const struct mc_peer_transport *t, uint64_t id);
/* Write everything queued now (the node calls it after processing a Raft ready). */
void mc_peer_flush(struct mc_peer_transport *t);
/* Stop listening, close every connection; t is freed by the loop once its handles have closed
 * (run the loop until it has no more handles). Do not use t afterwards. */
void mc_peer_stop(struct mc_peer_transport *t);

/* Parse "host:port" into a sockaddr (IPv4 or [IPv6]). */
int mc_parse_addr(const char *addr, struct sockaddr_storage *out);

#endif
