/* tls.h: OpenSSL contexts from etcd-like flags, and a memory-BIO TLS session for event loops. */
#ifndef MC_SECURITY_TLS_H
#define MC_SECURITY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/codec.h"

/*
 * A session never touches a socket: ciphertext received is fed in (mc_tls_feed), plaintext is
 * pulled out (mc_tls_read); plaintext to send is pushed (mc_tls_write) and the resulting
 * ciphertext taken (mc_tls_take) for the caller's own write(2)/uv_write. This is how TLS sits
 * on libuv streams (SSL_set_bio with two BIO_s_mem) and on the client library's poll loop.
 * The handshake runs inside read/write/mc_tls_handshake as data arrives.
 *
 * Verification: the peer's chain must lead to the trusted CA and be within its validity
 * period (expired certificates fail). A client also checks that the server certificate names
 * the host it dialed (IP SAN for numeric hosts, DNS name otherwise), like etcd.
 */

struct mc_tls_config {
    const char *cert_file; /* PEM certificate (chain) presented to the peer; may be NULL for
                              a client without a client certificate */
    const char *key_file;  /* its PEM private key */
    const char *ca_file;   /* PEM CA bundle to verify the peer against; NULL = for a server:
                              no client certificates; for a client: the system default */
    bool verify_peer;      /* server: require and verify a client certificate (mTLS) */
};

struct mc_tls_ctx; /* an SSL_CTX; shared by many sessions, read-only once made */
struct mc_tls;     /* one session */

/* 0, or MC_EINVAL with a one-line reason in err (unreadable file, key mismatch, ...). */
int mc_tls_ctx_new(const struct mc_tls_config *cfg, bool server, struct mc_tls_ctx **out, char *err,
                   size_t errlen);
void mc_tls_ctx_free(struct mc_tls_ctx *c);

/* host: the name or IP the client dialed (checked against the server cert); NULL on servers. */
int mc_tls_new(struct mc_tls_ctx *ctx, bool server, const char *host, struct mc_tls **out);
void mc_tls_free(struct mc_tls *t);

/* Ciphertext from the network. 0 or MC_ENOMEM. */
int mc_tls_feed(struct mc_tls *t, const void *data, size_t len);
/* Advance the handshake (a client calls it once to produce its hello). 0 (done or in
 * progress) or MC_EPROTO (failed: see mc_tls_error). */
int mc_tls_handshake(struct mc_tls *t);
bool mc_tls_established(const struct mc_tls *t);
/* Something is under way: the handshake is not done, or received ciphertext waits for the rest
 * of its record (or to be read). False once every record received is processed, even if it
 * held no plaintext (a TLS 1.3 KeyUpdate, a post-handshake message). */
bool mc_tls_incomplete(const struct mc_tls *t);
/* Plaintext: *n bytes (0 = nothing yet). Returns 0, MC_ESHUTDOWN (peer closed TLS) or
 * MC_EPROTO (handshake/record failure). */
int mc_tls_read(struct mc_tls *t, void *buf, size_t cap, size_t *n);
/* Encrypt all of data (the handshake must be done). 0 or MC_EPROTO. */
int mc_tls_write(struct mc_tls *t, const void *data, size_t len);
/* Queue a close_notify alert (take it with mc_tls_take*), without waiting for the peer's:
 * a server about to close says the end is intended, not a truncation (RFC 8446 §6.1). 0 or
 * MC_EPROTO (no session, or it already failed). */
int mc_tls_close_notify(struct mc_tls *t);
/* Ciphertext waiting to be sent. */
size_t mc_tls_pending(const struct mc_tls *t);
/* Move up to cap bytes of ciphertext to buf; returns the count. */
size_t mc_tls_take(struct mc_tls *t, void *buf, size_t cap);
/* Append all waiting ciphertext to w. 0 or the wbuf error. */
int mc_tls_take_all(struct mc_tls *t, struct mc_wbuf *w);
/* Last failure, for logs ("certificate verify failed: certificate has expired"). */
const char *mc_tls_error(const struct mc_tls *t);

#endif
