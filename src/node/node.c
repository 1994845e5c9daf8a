/* node.c: node lifecycle: open the data dir, recover Raft state, start transports, stop. */
#include "node/node_internal.h"
#include "node/fd_limit.h"
#include "node/seal.h"
#include "storage/trash.h"
#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLUSTER_FILE_MAX 8192

uint64_t node_now_ms(void)
{
    return mc_mono_ms();
}

const char *node_peer_route(const struct mc_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->opts.route_count; i++) {
        if (n->opts.routes[i].id == id) {
            return n->opts.routes[i].peer_addr;
        }
    }
    return NULL;
}

/* Where to dial a peer: its --peer-route override (tests route links through a proxy). */
static const char *node_dial_addr(struct mc_node *n, uint64_t id, const char *addr)
{
    const char *route = node_peer_route(n, id);
    return route ? route : addr;
}

struct member_info *node_member(struct mc_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->n_members; i++) {
        if (n->members[i].id == id) {
            return &n->members[i];
        }
    }
    return NULL;
}

void node_set_member(struct mc_node *n, uint64_t id, const char *peer_addr, const char *client_addr)
{
    struct member_info *m = node_member(n, id);
    if (!m) {
        if (n->n_members >= MC_RAFT_MAX_NODES) {
            return;
        }
        m = &n->members[n->n_members++];
        memset(m, 0, sizeof(*m));
        m->id = id;
    }
    if (peer_addr && peer_addr[0]) {
        snprintf(m->peer_addr, sizeof(m->peer_addr), "%s", peer_addr);
        if (id != n->id && n->peers) {
            mc_peer_set(n->peers, id, node_dial_addr(n, id, m->peer_addr));
        }
    }
    if (client_addr && client_addr[0]) {
        snprintf(m->client_addr, sizeof(m->client_addr), "%s", client_addr);
    }
}

const char *node_leader_client_addr(struct mc_node *n)
{
    uint64_t lead = n->raft ? mc_raft_leader(n->raft) : 0;
    struct member_info *m = lead ? node_member(n, lead) : NULL;
    return m && m->client_addr[0] ? m->client_addr : NULL;
}

void node_fatal(struct mc_node *n, const char *what, int rc)
{
    if (n->fatal) {
        return;
    }
    n->fatal = true;
    MC_ERROR("fatal_storage_error",
             "what=%s err=%s detail=\"%s\" action=\"the node stops: data written after this "
             "point is not known to be durable; restart it (it recovers from its WAL)\"",
             what, mc_error_name(rc), mc_strerror(rc));
    uv_stop(n->loop);
}

int mc_node_fatal(const struct mc_node *n)
{
    return n->fatal;
}

/* ---- cluster file: identity of this node and its initial cluster, written once ---- */

static uint64_t cluster_id_of(const struct mc_node_options *o)
{
    /* Same on every member of a static cluster: hash of the sorted member list. */
    struct mc_digest d;
    if (mc_digest_init(&d) != 0) {
        return 1;
    }
    uint64_t done = 0;
    for (size_t k = 0; k < o->initial_count; k++) {
        uint64_t best = UINT64_MAX;
        size_t bi = 0;
        for (size_t i = 0; i < o->initial_count; i++) {
            if (o->initial[i].id > done && o->initial[i].id < best) {
                best = o->initial[i].id;
                bi = i;
            }
        }
        mc_digest_update(&d, &best, sizeof(best));
        mc_digest_update(&d, o->initial[bi].peer_addr, strlen(o->initial[bi].peer_addr));
        done = best;
    }
    uint64_t h = mc_digest_final(&d);
    return h ? h : 1;
}

static int write_cluster_file(struct mc_node *n, const char *path)
{
    char buf[CLUSTER_FILE_MAX];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "node_id=%llu\ncluster_id=%llu\n",
                                  (unsigned long long)n->id, (unsigned long long)n->cluster_id);
    for (size_t i = 0; i < n->opts.initial_count && len < sizeof(buf); i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "member=%llu %s\n",
                                (unsigned long long)n->opts.initial[i].id,
                                n->opts.initial[i].peer_addr);
    }
    if (len >= sizeof(buf)) {
        return MC_ETOOLARGE;
    }
    return mc_fs_write_file_atomic(NULL, path, buf, len);
}

static int read_cluster_file(struct mc_node *n, const char *path, bool *found)
{
    *found = false;
    FILE *f = fopen(path, "r");
    if (!f) {
        return errno == ENOENT ? 0 : MC_EIO;
    }
    *found = true;
    char line[512];
    size_t members = 0;
    unsigned long long file_node = 0, cluster = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long id;
        char addr[MC_OPT_ADDR_MAX];
        if (sscanf(line, "node_id=%llu", &file_node) == 1 ||
            sscanf(line, "cluster_id=%llu", &cluster) == 1) {
            continue;
        }
        if (sscanf(line, "member=%llu %127s", &id, addr) == 2 && members < MC_MAX_MEMBERS) {
            n->opts.initial[members].id = id;
            snprintf(n->opts.initial[members].peer_addr, MC_OPT_ADDR_MAX, "%s", addr);
            members++;
        }
    }
    fclose(f);
    if (!file_node) {
        MC_ERROR("bad_cluster_file", "path=%s", path);
        return MC_ECORRUPT;
    }
    n->opts.initial_count = members;
    n->id = file_node;
    n->cluster_id = cluster;
    return 0;
}

static int setup_identity(struct mc_node *n, bool flags_gave_cluster, bool flags_gave_id)
{
    char path[MC_DATADIR_PATH_MAX];
    int rc = mc_datadir_path(n->datadir, "cluster", path, sizeof(path));
    if (rc) {
        return rc;
    }
    struct mc_node_options wanted = n->opts;
    bool found;
    rc = read_cluster_file(n, path, &found);
    if (rc) {
        return rc;
    }
    if (found) {
        if (flags_gave_id && wanted.node_id != n->id) {
            MC_ERROR("node_id_mismatch",
                     "data_dir=%s has node_id=%llu but --node-id %llu was given: use the "
                     "right data dir or omit --node-id",
                     n->datadir, (unsigned long long)n->id, (unsigned long long)wanted.node_id);
            return MC_EINVAL;
        }
        if (flags_gave_cluster) {
            MC_INFO("cluster_flags_ignored", "reason=\"data dir already initialized\"");
        }
        return 0;
    }
    n->id = wanted.node_id;
    if (n->opts.initial_count == 0 && !n->opts.join[0]) {
        /* Embedded default: a cluster of one. */
        n->opts.initial[0].id = n->id;
        snprintf(n->opts.initial[0].peer_addr, MC_OPT_ADDR_MAX, "%s", n->opts.listen_peer);
        n->opts.initial_count = 1;
    }
    if (n->opts.initial_count > 0) {
        bool self = false;
        for (size_t i = 0; i < n->opts.initial_count; i++) {
            self |= n->opts.initial[i].id == n->id;
        }
        if (!self) {
            MC_ERROR("node_not_in_cluster", "node_id=%llu is not in --initial-cluster",
                     (unsigned long long)n->id);
            return MC_EINVAL;
        }
        n->cluster_id = cluster_id_of(&n->opts);
    }
    return write_cluster_file(n, path);
}

/* ---- membership blob: the Raft configuration plus member addresses ---- */

int node_conf_encode(struct mc_node *n, const struct mc_raft_conf *c, struct mc_wbuf *w)
{
    mc_wbuf_u8(w, 1); /* format */
    mc_wbuf_u32(w, c->n_voters);
    for (uint32_t i = 0; i < c->n_voters; i++) {
        mc_wbuf_u64(w, c->voters[i]);
    }
    mc_wbuf_u32(w, c->n_learners);
    for (uint32_t i = 0; i < c->n_learners; i++) {
        mc_wbuf_u64(w, c->learners[i]);
    }
    mc_wbuf_u32(w, (uint32_t)n->n_members);
    for (size_t i = 0; i < n->n_members; i++) {
        mc_wbuf_u64(w, n->members[i].id);
        mc_wbuf_str(w, n->members[i].peer_addr);
        mc_wbuf_str(w, n->members[i].client_addr);
    }
    return mc_wbuf_error(w);
}

int node_conf_decode(struct mc_node *n, const uint8_t *p, size_t len, struct mc_raft_conf *c)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, p, len);
    memset(c, 0, sizeof(*c));
    if (mc_rbuf_u8(&r) != 1) {
        return MC_EPROTO;
    }
    c->n_voters = mc_rbuf_u32(&r);
    if (c->n_voters > MC_RAFT_MAX_NODES) {
        return MC_EPROTO;
    }
    for (uint32_t i = 0; i < c->n_voters; i++) {
        c->voters[i] = mc_rbuf_u64(&r);
    }
    c->n_learners = mc_rbuf_u32(&r);
    if (c->n_learners > MC_RAFT_MAX_NODES) {
        return MC_EPROTO;
    }
    for (uint32_t i = 0; i < c->n_learners; i++) {
        c->learners[i] = mc_rbuf_u64(&r);
    }
    uint32_t members = mc_rbuf_u32(&r);
    if (members > MC_RAFT_MAX_NODES) {
        return MC_EPROTO;
    }
    for (uint32_t i = 0; i < members && !mc_rbuf_error(&r); i++) {
        uint64_t id = mc_rbuf_u64(&r);
        size_t pl = 0, cl = 0;
        const uint8_t *pa = mc_rbuf_bytes(&r, MC_ADDR_MAX - 1, &pl);
        const uint8_t *ca = mc_rbuf_bytes(&r, MC_ADDR_MAX - 1, &cl);
        if (mc_rbuf_error(&r)) {
            break;
        }
        char pbuf[MC_ADDR_MAX], cbuf[MC_ADDR_MAX];
        memcpy(pbuf, pa, pl);
        pbuf[pl] = 0;
        memcpy(cbuf, ca, cl);
        cbuf[cl] = 0;
        if (n) {
            node_set_member(n, id, pbuf, cbuf);
        }
    }
    return mc_rbuf_error(&r);
}

/* ---- loading the log ---- */

struct load_ctx {
    struct mc_raft_entry *entries;
    size_t n, cap;
    int err;
};

static int load_visit(void *ctx, const struct mc_wal_record *rec)
{
    struct load_ctx *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct mc_raft_entry *e = realloc(l->entries, cap * sizeof(*e));
        if (!e) {
            return MC_ENOMEM;
        }
        l->entries = e;
        l->cap = cap;
    }
    struct mc_raft_entry *e = &l->entries[l->n];
    e->index = rec->index;
    e->term = rec->term;
    e->type = rec->type;
    e->len = rec->len;
    e->data = NULL;
    if (rec->len) {
        e->data = malloc(rec->len);
        if (!e->data) {
            return MC_ENOMEM;
        }
        memcpy(e->data, rec->data, rec->len);
    }
    l->n++;
    return 0;
}

static void load_free(struct load_ctx *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->entries[i].data);
    }
    free(l->entries);
}

static void on_wal_durable(void *ctx, const struct mc_wal_progress *p)
{
    struct mc_node *n = ctx;
    if (p->error) {
        atomic_store(&n->wal_error, p->error);
    }
    atomic_store(&n->wal_done_ticket, p->done_ticket);
    uv_async_send(&n->wal_async);
}

static void wal_async_cb(uv_async_t *h)
{
    node_wal_progress(h->data);
}

uint64_t node_catch_up_ticks(struct mc_node *n)
{
    /* One Raft tick per elapsed tick interval on the monotonic clock: after a stall (a long
     * fsync, SIGSTOP) libuv fires the timer once, but leases and timeouts must see the time
     * that passed (a stale leader's lease must expire). Capped so a long pause stays cheap. */
    uint64_t now = node_now_ms();
    uint64_t ticks = n->last_tick_ms ? (now - n->last_tick_ms) / n->opts.tick_ms : 1;
    if (ticks == 0) {
        return 0;
    }
    if (ticks > 1000) {
        ticks = 1000;
    }
    n->last_tick_ms = n->last_tick_ms ? n->last_tick_ms + ticks * n->opts.tick_ms : now;
    if (now - n->last_tick_ms > 1000 * n->opts.tick_ms) {
        n->last_tick_ms = now;
    }
    for (uint64_t i = 0; i < ticks; i++) {
        mc_raft_tick(n->raft);
    }
    return ticks;
}

static void tick_cb(uv_timer_t *h)
{
    struct mc_node *n = h->data;
    if (n->fatal) {
        return;
    }
    /* The ticks may already have been counted by a ReadIndex message (node_on_peer_frame):
     * the time-based sweeps below run on every timer firing regardless. */
    node_catch_up_ticks(n);
    uint64_t now = node_now_ms();
    node_expire_writes(n, now);
    node_expire_reads(n, now);
    node_members_tick(n, now);
    node_disk_low(n, now); /* logs low disk on followers too */
    node_snap_prune_due(n);
}

bool node_disk_low(struct mc_node *n, uint64_t now_ms)
{
    bool low = mc_disk_space_low(&n->disk, n->datadir, now_ms);
    /* The engine's own file system (serve --engine-dir, e.g. tmpfs) fills up too: LMDB writes
     * its map there, and a full one is a SIGBUS, not an error return. */
    if (n->opts.engine_dir[0]) {
        low = mc_disk_space_low(&n->disk_engine, n->opts.engine_dir, now_ms) || low;
    }
    return low;
}

static void prepare_cb(uv_prepare_t *h)
{
    node_process_ready(h->data);
}

static void client_dispatch(void *ctx, const struct mc_client_request *r)
{
    struct mc_node *n = ctx;
    if (n->stopping) {
        mc_client_reply_error(&r->token, MC_ESHUTDOWN, NULL);
        return;
    }
    switch (r->req->op) {
    case MC_REQ_WRITE:
        node_handle_write(n, r);
        break;
    case MC_REQ_REGISTER_SESSION:
        node_handle_register(n, r);
        break;
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET:
        node_handle_read(n, r);
        break;
    default:
        node_handle_admin(n, r);
        break;
    }
}

static const struct mc_client_handler client_handler = {.dispatch = client_dispatch};

/* Fill an address field from a HELLO only while it is unknown (see on_peer_hello). */
static void hello_fill(struct member_info *m, char *field, size_t cap, const char *claimed,
                       const char *what)
{
    if (!claimed[0] || strcmp(claimed, "off") == 0 || strcmp(field, claimed) == 0) {
        return;
    }
    if (field[0]) {
        MC_WARN("peer_hello_address_ignored",
                "member=%llu field=%s known=%s claimed=%s detail=\"a member's addresses come "
                "from the configuration; to change one, remove the member and add it back\"",
                (unsigned long long)m->id, what, field, claimed);
        return;
    }
    snprintf(field, cap, "%s", claimed);
}

/*
 * A HELLO's frame header and addresses are not authenticated (without peer mTLS anyone who
 * reaches the peer port can send one), yet a member's client address feeds NotLeader hints and
 * the HTTP layer sends callers' tokens to the leader's. So a HELLO only fills in addresses still
 * unknown: of a member in the configuration (or already recorded, e.g. from --initial-cluster),
 * or of anyone while this node has no configuration yet (a --join node learning its leader).
 * Known addresses change only through the configuration (a conf change's context, a snapshot's
 * membership blob), never through a HELLO.
 */
static void on_peer_hello(void *ctx, uint64_t from, uint64_t cluster_id, const char *client_addr,
                          const char *http, const char *peer_addr)
{
    struct mc_node *n = ctx;
    if (n->cluster_id == 0 && cluster_id != 0) {
        /* A joining node: the first leader that contacts it tells it its cluster. */
        n->cluster_id = cluster_id;
        mc_peer_set_cluster_id(n->peers, cluster_id);
        char path[MC_DATADIR_PATH_MAX];
        if (mc_datadir_path(n->datadir, "cluster", path, sizeof(path)) == 0) {
            write_cluster_file(n, path);
        }
        MC_INFO("cluster_joined", "cluster=%016llx via=%llu", (unsigned long long)cluster_id,
                (unsigned long long)from);
    }
    const struct mc_raft_conf *c = n->raft ? mc_raft_conf(n->raft) : NULL;
    bool conf_empty = !c || c->n_voters + c->n_learners == 0;
    bool member = node_in_conf(n, from);
    struct member_info *m = node_member(n, from);
    if (from == n->id || (!m && !member && !conf_empty)) {
        MC_WARN("peer_hello_not_member", "from=%llu peer_addr=%s effect=\"addresses ignored\"",
                (unsigned long long)from, peer_addr);
        return;
    }
    if (!m) {
        node_set_member(n, from, peer_addr, client_addr);
        m = node_member(n, from);
    } else if (!m->peer_addr[0]) {
        node_set_member(n, from, peer_addr, NULL);
    }
    if (m) {
        hello_fill(m, m->client_addr, sizeof(m->client_addr), client_addr, "client");
        hello_fill(m, m->http_addr, sizeof(m->http_addr), http, "http");
    }
}

static void on_peer_link(void *ctx, uint64_t peer, int up)
{
    struct mc_node *n = ctx;
    struct member_info *m = node_member(n, peer);
    if (m) {
        m->reachable = up;
    }
    if (!up && n->raft) {
        mc_raft_report_unreachable(n->raft, peer);
    }
}

/*
 * The boot the engine was last opened for writing in: DATADIR/engine.boot holds the kernel's
 * boot id (/proc/sys/kernel/random/boot_id), written durably once the engine is fit for this
 * boot (rebuilt or scanned) and before anything is applied to it (boot_record). Why:
 * LMDB runs with MDB_NOSYNC|MDB_WRITEMAP, so after an OS crash or power loss the file holds
 * whatever pages the kernel happened to write back, in any order: it can be stale yet well
 * formed, and the verification scan cannot tell. After kill -9 the page cache survives and the
 * file is whole. So on an unclean start (no seal) a different boot id means "the machine went
 * down under the engine": always rebuild it from the newest image plus the WAL. *rebooted is set
 * only when the recorded id is known and differs (no file: first start or an older version).
 */
#define NODE_BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define NODE_BOOT_ID_MAX  64

static void read_line(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    if (!fgets(out, (int)cap, f)) {
        out[0] = 0;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
}

/* Compare the recorded boot id with this boot's (now: NODE_BOOT_ID_MAX bytes, "" when the
 * system has none). Writes nothing: boot_record does, once the engine is fit for this boot. */
static int boot_check(struct mc_node *n, bool *rebooted, char *now)
{
    *rebooted = false;
    char path[MC_DATADIR_PATH_MAX], was[NODE_BOOT_ID_MAX];
    int rc = mc_datadir_path(n->datadir, "engine.boot", path, sizeof(path));
    if (rc) {
        return rc;
    }
    read_line(NODE_BOOT_ID_PATH, now, NODE_BOOT_ID_MAX);
    if (!now[0]) {
        MC_WARN("boot_id_unreadable",
                "file=%s effect=\"a reboot since an unclean stop cannot be detected: the "
                "engine is scanned, not rebuilt\"",
                NODE_BOOT_ID_PATH);
        return 0;
    }
    read_line(path, was, sizeof(was));
    *rebooted = was[0] && strcmp(was, now) != 0;
    return 0;
}

/* Record this boot's id, after node_recover_engine made the engine fit for it (rebuilt and
 * synced, or scanned) and before the first apply writes to it. Recording it earlier would let a
 * start that fails in between (a bad WAL, no space) erase the "rebuild needed" mark. */
static int boot_record(struct mc_node *n, const char *now)
{
    char path[MC_DATADIR_PATH_MAX], was[NODE_BOOT_ID_MAX];
    int rc = mc_datadir_path(n->datadir, "engine.boot", path, sizeof(path));
    if (rc || !now[0]) {
        return rc;
    }
    read_line(path, was, sizeof(was));
    if (strcmp(was, now) == 0) {
        return 0;
    }
    char line[NODE_BOOT_ID_MAX + 1];
    int len = snprintf(line, sizeof(line), "%s\n", now);
    rc = mc_fs_write_file_atomic(NULL, path, line, (size_t)len);
    if (rc) {
        MC_ERROR("engine_boot_write_failed", "file=%s err=%s", path, mc_error_name(rc));
    }
    return rc;
}

/* Open the engine (and scan it after an unclean stop) and the WAL. *damaged: the engine is
 * unreadable, failed the scan, or the machine rebooted since an unclean stop;
 * node_recover_engine rebuilds it. */
/* The trash pruned images go to (node_snap_prune), and what an earlier run left to it:
 * "*.snap.del" files (a crash, or a stop, before they were gone). Without it (no thread) pruned
 * images are unlinked at once, as before. */
static void open_snap_trash(struct mc_node *n)
{
    if (mc_trash_open(NULL, MC_TRASH_CHUNK_BYTES_DEFAULT, MC_TRASH_PAUSE_MS_DEFAULT,
                      &n->snap_trash) != 0) {
        MC_WARN("snapshot_trash_unavailable",
                "dir=%s reason=\"pruned images are unlinked at once\"", n->snapdir);
        return;
    }
    mc_trash_requeue(n->snap_trash, NULL, n->snapdir, "snap-", ".snap.del");
}

void node_engine_options(const struct mc_node *n, struct mc_engine_options *eo)
{
    memset(eo, 0, sizeof(*eo));
    eo->sync = MC_ENGINE_SYNC_NONE;
    eo->max_map_size_bytes = n->opts.max_map_size_bytes;
    eo->session_ttl_ns = n->opts.session_ttl_ms * 1000000ull;
}

static int open_storage(struct mc_node *n, bool *damaged, char *boot_now)
{
    *damaged = false;
    char path[MC_DATADIR_PATH_MAX];
    int rc = mc_datadir_engine_dir(n->datadir, path, sizeof(path));
    if (rc) {
        return rc;
    }
    bool sealed = false;
    rc = mc_seal_verify(n->datadir, &sealed);
    if (rc) {
        return rc;
    }
    bool rebooted = false;
    rc = boot_check(n, &rebooted, boot_now);
    if (rc) {
        return rc;
    }
    struct mc_engine_options eo;
    node_engine_options(n, &eo);
    rc = mc_engine_open(path, &eo, &n->engine);
    if (rc == MC_ENOTOURS || rc == MC_ECORRUPT) {
        /* A torn file (power loss) may not even open: its meta pages are part of the damage. */
        n->engine = NULL;
        *damaged = true;
        MC_ERROR("engine_corrupt", "path=%s/data.mdb err=%s detail=\"%s\" action=rebuild", path,
                 mc_error_name(rc), mc_engine_last_error());
    } else if (rc) {
        MC_ERROR("engine_open_failed", "path=%s err=%s detail=\"%s\"", path, mc_error_name(rc),
                 mc_engine_last_error());
        return rc;
    } else if (!sealed && rebooted) {
        *damaged = true;
        MC_WARN("engine_rebuild",
                "path=%s/data.mdb reason=reboot_since_unclean_stop "
                "detail=\"an OS crash or power loss: unsynced pages may be stale\"",
                path);
    } else if (!sealed) {
        /* No seal: the last stop was unclean (or this is a first start), so nothing vouches
           for data.mdb; LMDB has no page checksums. Scan it before serving from it. */
        struct mc_engine_verify_report vr = {0};
        rc = mc_engine_verify(n->engine, &vr);
        if (rc) {
            MC_ERROR("engine_corrupt", "path=%s/data.mdb err=%s detail=\"%s\" action=rebuild", path,
                     mc_error_name(rc), mc_engine_last_error());
            *damaged = true;
        } else {
            MC_INFO("engine_verified", "path=%s/data.mdb records=%llu pages=%llu ms=%llu", path,
                    (unsigned long long)vr.records, (unsigned long long)vr.pages,
                    (unsigned long long)(vr.elapsed_ns / 1000000));
        }
    }
    char waldir[MC_DATADIR_PATH_MAX];
    rc = mc_datadir_path(n->datadir, "wal", waldir, sizeof(waldir));
    if (rc) {
        return rc;
    }
    struct mc_wal_options wo = {.wal_dir = waldir,
                                .hardstate_dir = n->datadir,
                                .enqueue_wait_ms = 2000,
                                .on_durable = on_wal_durable,
                                .ctx = n};
    rc = mc_wal_open(&wo, &n->wal);
    if (rc) {
        MC_ERROR("wal_open_failed", "dir=%s err=%s", waldir, mc_error_name(rc));
        return rc;
    }
    rc = mc_datadir_path(n->datadir, "snap", n->snapdir, sizeof(n->snapdir));
    if (rc) {
        return rc;
    }
    open_snap_trash(n);
    return 0;
}

static int create_raft(struct mc_node *n, const struct node_base *base)
{
    struct mc_raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    struct mc_hard_state hs;
    mc_wal_hard_state(n->wal, &hs);
    rs.hard_state.term = hs.term;
    rs.hard_state.vote = hs.vote;
    rs.hard_state.commit = hs.commit;

    int rc = 0;
    const struct mc_snap_info *si = base->snap;
    if (si) {
        rs.has_snapshot = true;
        rs.snapshot.index = si->index;
        rs.snapshot.term = si->term;
        rc = node_conf_decode(n, si->membership, si->membership_len, &rs.snapshot.conf);
        if (rc) {
            MC_ERROR("snapshot_membership_corrupt", "path=%s", si->path);
            return MC_ECORRUPT;
        }
        n->last_snapshot_index = si->index;
        n->snapshot_size_bytes = si->file_size;
    }

    struct load_ctx l = {0};
    /* From the base on (its own entry for the agreement check below): the WAL also keeps the
     * entries back to the newest engine image (node_recover.c), which Raft does not need. */
    uint64_t first = mc_wal_first_index(n->wal), last = mc_wal_last_index(n->wal);
    if (rs.has_snapshot && rs.snapshot.index > first) {
        first = rs.snapshot.index;
    }
    if (last >= first) {
        rc = mc_wal_iterate(n->wal, first, last, load_visit, &l);
        if (rc) {
            load_free(&l);
            MC_ERROR("wal_load_failed", "err=%s", mc_error_name(rc));
            return rc;
        }
    }
    /* Raft §7: keep the log after the snapshot only if it agrees with it at its index. */
    size_t skip = 0;
    if (rs.has_snapshot) {
        while (skip < l.n && l.entries[skip].index <= rs.snapshot.index) {
            skip++;
        }
        bool agrees = false;
        for (size_t i = 0; i < l.n && l.entries[i].index <= rs.snapshot.index; i++) {
            if (l.entries[i].index == rs.snapshot.index) {
                agrees = l.entries[i].term == rs.snapshot.term;
            }
        }
        bool contiguous = skip < l.n && l.entries[skip].index == rs.snapshot.index + 1;
        if (skip < l.n && (!contiguous || (skip > 0 && !agrees))) {
            MC_WARN("wal_discarded_after_snapshot", "snapshot_index=%llu wal_first=%llu",
                    (unsigned long long)rs.snapshot.index, (unsigned long long)first);
            skip = l.n;
        }
    }
    rs.entries = l.entries + skip;
    rs.n_entries = l.n - skip;
    uint64_t applied = 0;
    mc_engine_applied_index(n->engine, &applied);
    uint64_t log_last = rs.n_entries ? rs.entries[rs.n_entries - 1].index
                                     : (rs.has_snapshot ? rs.snapshot.index : 0);
    uint64_t floor = rs.has_snapshot ? rs.snapshot.index : 0;
    /* The engine can never be ahead of both the log and the snapshot Raft restarts from: an
     * installed snapshot is labelled with the index its image holds (node_snapshot.c), and
     * applied entries are durable in the WAL first. An engine ahead means log entries it has
     * applied are gone (a lost or cut WAL segment): Raft would reuse those indexes for new
     * entries, which the engine skips. Refuse (Raft's own restore refuses applied > last). */
    /* Asked at every start: a record the log has caught up with is dropped here too. */
    bool legacy = node_legacy_image_accepts(n, applied, log_last) && applied > log_last;
    if (applied > log_last && !legacy) {
        MC_ERROR("engine_ahead_of_log",
                 "engine_applied=%llu log_last=%llu snapshot_index=%llu newest_snapshot=%llu "
                 "action=\"entries %llu..%llu the engine applied are missing from the WAL: "
                 "wipe this node's data dir and rejoin the cluster, or restore a backup with "
                 "'metacenter snapshot restore'\"",
                 (unsigned long long)applied, (unsigned long long)log_last,
                 (unsigned long long)floor, (unsigned long long)base->latest_index,
                 (unsigned long long)(log_last + 1), (unsigned long long)applied);
        load_free(&l);
        return MC_ECORRUPT;
    }
    /* A legacy image (node_recover.c): Raft resumes at the log's end; the engine skips the
     * entries up to `applied` it already holds, as after the install. */
    rs.applied = legacy ? log_last : applied;
    /* node_recover_engine chose the base at or below the engine (or refused to start). */
    assert(rs.applied >= floor);
    if (rs.hard_state.commit < rs.applied) {
        rs.hard_state.commit = rs.applied;
    }
    /* The newest snapshot's entries were applied before it was taken, so they are committed:
     * after an engine rebuild they are applied again at once, without waiting for a leader. */
    if (rs.hard_state.commit < base->latest_index) {
        rs.hard_state.commit = base->latest_index;
    }
    if (rs.hard_state.commit > log_last) {
        rs.hard_state.commit = log_last;
    }
    n->applied_index = applied;

    uint64_t voters[MC_MAX_MEMBERS];
    for (size_t i = 0; i < n->opts.initial_count; i++) {
        voters[i] = n->opts.initial[i].id;
    }
    struct mc_raft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = n->id;
    cfg.heartbeat_tick = (uint32_t)(n->opts.heartbeat_ms / n->opts.tick_ms);
    cfg.election_tick = (uint32_t)(n->opts.election_timeout_ms / n->opts.tick_ms);
    if (cfg.heartbeat_tick < 1) {
        cfg.heartbeat_tick = 1;
    }
    cfg.seed = n->id * 0x9e3779b97f4a7c15ull ^ mc_mono_ns();
    cfg.disable_pre_vote = !n->opts.pre_vote;
    cfg.disable_check_quorum = !n->opts.check_quorum;
    cfg.lease_read = n->opts.lease_reads && n->opts.check_quorum;
    cfg.read_rounds_in_flight = (uint32_t)n->opts.read_rounds;
    cfg.snapshot_keep_entries = n->opts.snapshot_tail_entries;
    cfg.snapshot_keep_bytes = n->opts.snapshot_tail_mb << 20;
    /* 0: keep nothing extra (the core reads 0 as its default, so 1 byte). */
    cfg.catch_up_keep_bytes = n->opts.catch_up_log_mb ? n->opts.catch_up_log_mb << 20 : 1;
    cfg.initial_voters = voters;
    cfg.n_initial_voters = n->opts.initial_count;
    cfg.restore = &rs;
    mc_raft_config_defaults(&cfg);
    rc = mc_raft_create(&cfg, &n->raft);
    MC_INFO("raft_restored",
            "term=%llu vote=%llu commit=%llu applied=%llu snapshot_index=%llu entries=%zu",
            (unsigned long long)rs.hard_state.term, (unsigned long long)rs.hard_state.vote,
            (unsigned long long)rs.hard_state.commit, (unsigned long long)rs.applied,
            (unsigned long long)(rs.has_snapshot ? rs.snapshot.index : 0), rs.n_entries);
    load_free(&l);
    if (rc) {
        MC_ERROR("raft_create_failed", "err=%s", mc_error_name(rc));
    }
    return rc;
}

static void load_members(struct mc_node *n)
{
    for (size_t i = 0; i < n->opts.initial_count; i++) {
        node_set_member(n, n->opts.initial[i].id, n->opts.initial[i].peer_addr, NULL);
    }
    void *conf = NULL;
    size_t len = 0;
    if (mc_engine_conf(n->engine, &conf, &len) == 0 && conf) {
        struct mc_raft_conf c;
        node_conf_decode(n, conf, len, &c);
        free(conf);
    }
    node_set_member(n, n->id, n->opts.listen_peer, n->opts.advertise_client);
}

/* --auth-file: load the principals, plus an in-memory admin principal whose random token the
 * HTTP layer's loopback clients use (the HTTP layer checks the caller's own token itself). */
static int node_auth_load(struct mc_node *n)
{
    if (!n->opts.auth_file[0]) {
        return 0;
    }
    char err[300];
    int rc = mc_auth_load(n->opts.auth_file, &n->auth, err, sizeof(err));
    if (rc) {
        /* InternalError: OpenSSL, not the file (e.g. no SHA-256 from its providers). */
        MC_ERROR(rc == MC_EINTERNAL ? "auth_setup_failed" : "auth_file_invalid",
                 "file=%s detail=\"%s\"", n->opts.auth_file, err);
        return rc;
    }
    rc = mc_auth_random_token(n->internal_token, sizeof(n->internal_token));
    if (rc == 0) {
        rc = mc_auth_add_token(n->auth, "_internal_http", MC_ROLE_ADMIN, n->internal_token);
    }
    if (rc) {
        MC_ERROR("auth_setup_failed", "err=%s", mc_error_name(rc));
        return rc;
    }
    MC_INFO("auth_enabled", "file=%s principals=%zu metrics_auth=%d", n->opts.auth_file,
            mc_auth_count(n->auth) - 1, n->opts.metrics_auth);
    return 0;
}

/* TLS contexts from the etcd-style flags: client/HTTP port, and mutual TLS between peers. */
static int node_tls_load(struct mc_node *n)
{
    char err[300];
    int rc = 0;
    if (n->opts.cert_file[0]) {
        struct mc_tls_config tc = {.cert_file = n->opts.cert_file,
                                   .key_file = n->opts.key_file,
                                   .ca_file = n->opts.trusted_ca_file,
                                   .verify_peer = n->opts.client_cert_auth != 0};
        rc = mc_tls_ctx_new(&tc, true, &n->client_tls, err, sizeof(err));
        if (rc) {
            MC_ERROR("client_tls_invalid", "detail=\"%s\"", err);
            return rc;
        }
    }
    if (n->opts.peer_cert_file[0]) {
        struct mc_tls_config pc = {.cert_file = n->opts.peer_cert_file,
                                   .key_file = n->opts.peer_key_file,
                                   .ca_file = n->opts.peer_trusted_ca_file,
                                   .verify_peer = true};
        rc = mc_tls_ctx_new(&pc, true, &n->peer_tls_server, err, sizeof(err));
        if (rc == 0) {
            rc = mc_tls_ctx_new(&pc, false, &n->peer_tls_client, err, sizeof(err));
        }
        if (rc) {
            MC_ERROR("peer_tls_invalid", "detail=\"%s\"", err);
            return rc;
        }
    }
    MC_INFO("tls_config", "client_tls=%d client_cert_auth=%d peer_mtls=%d", n->client_tls != NULL,
            n->opts.client_cert_auth, n->peer_tls_server != NULL);
    return 0;
}

/* Create the parents of the data dir (like mkdir -p); the data dir itself is made by storage. */
static void make_parents(const char *dir)
{
    char buf[MC_DATADIR_PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    }
}

/* Raises the soft descriptor limit to the hard one, then lowers the client and HTTP connection
 * caps (n->opts) if they and the node's own reserve do not fit it: clients holding connections
 * must not leave the WAL and LMDB without a descriptor (their failed open is a fail-stop). The
 * reserve counts every peer a configuration may hold, as members can be added later. Refuses to
 * start (MC_ELIMIT) only when not even one connection of each kind fits. */
static int node_fit_fds(struct mc_node *n)
{
    uint64_t limit = 0;
    int rc = mc_fd_raise_limit(&limit);
    if (rc) {
        MC_WARN("fd_limit_unknown", "detail=\"getrlimit failed; connection caps not checked\"");
        return 0;
    }
    const char *http = n->opts.listen_http;
    bool http_on = http[0] && strcmp(http, "off") != 0;
    uint64_t reserve = mc_fd_reserve(MC_RAFT_MAX_NODES - 1);
    uint64_t client_cap = n->opts.max_client_connections;
    uint64_t http_cap = http_on ? n->opts.http_max_connections : 0;
    rc = mc_fd_fit(limit, reserve, &client_cap, &http_cap);
    if (rc < 0) {
        MC_ERROR("fd_limit_too_low",
                 "limit=%llu reserve=%llu detail=\"raise LimitNOFILE (systemd) or ulimit -n\"",
                 (unsigned long long)limit, (unsigned long long)reserve);
        return rc;
    }
    if (rc == 1) {
        MC_WARN("fd_limit_clamped",
                "limit=%llu reserve=%llu max_client_connections=%llu->%llu "
                "http_max_connections=%llu->%llu detail=\"raise LimitNOFILE (systemd) or ulimit "
                "-n to keep the configured caps\"",
                (unsigned long long)limit, (unsigned long long)reserve,
                (unsigned long long)n->opts.max_client_connections, (unsigned long long)client_cap,
                (unsigned long long)(http_on ? n->opts.http_max_connections : 0),
                (unsigned long long)http_cap);
        n->opts.max_client_connections = client_cap;
        if (http_on) {
            n->opts.http_max_connections = http_cap;
        }
    }
    MC_INFO("fd_limit",
            "limit=%llu reserve=%llu max_client_connections=%llu http_max_connections=%llu",
            (unsigned long long)limit, (unsigned long long)reserve,
            (unsigned long long)n->opts.max_client_connections, (unsigned long long)http_cap);
    return 0;
}

int mc_node_start(uv_loop_t *loop, const struct mc_node_options *opts, struct mc_node **out)
{
    uint64_t t0 = mc_mono_ms();
    struct mc_node *n = calloc(1, sizeof(*n));
    if (!n) {
        return MC_ENOMEM;
    }
    pthread_mutex_init(&n->snap_users.mu, NULL);
    n->loop = loop;
    n->opts = *opts;
    n->lock_fd = -1;
    snprintf(n->datadir, sizeof(n->datadir), "%s", opts->data_dir);
    mc_wbuf_init(&n->batch, NODE_MAX_BATCH_BYTES + (1u << 20));
    mc_wbuf_init(&n->scratch, 0);
    mc_wbuf_init(&n->read_buf, MC_PROTO_MAX_BODY_BYTES);
    make_parents(n->datadir);
    int rc = mc_datadir_init(n->datadir, NULL);
    if (rc) {
        MC_ERROR("data_dir_invalid", "dir=%s err=%s detail=\"%s\"", n->datadir, mc_error_name(rc),
                 mc_strerror(rc));
        goto fail;
    }
    rc = mc_datadir_lock(n->datadir, &n->lock_fd);
    if (rc) {
        MC_ERROR("data_dir_locked", "dir=%s detail=\"another metacenter process uses it\"",
                 n->datadir);
        goto fail;
    }
    bool fresh_engine = false;
    rc = mc_datadir_place_engine(n->datadir, opts->engine_dir, &fresh_engine);
    if (rc) {
        goto fail;
    }
    if (fresh_engine) {
        /* Already gone: the placement drops it before its first change (a crash in between
         * must not leave it vouching for a gone engine). Kept as a belt-and-braces no-op. */
        mc_seal_remove(n->datadir);
    }
    rc = mc_datadir_recover(n->datadir, NULL);
    if (rc) {
        goto fail;
    }
    rc = setup_identity(n, opts->initial_count > 0, opts->node_id != 1);
    if (rc) {
        goto fail;
    }
    mc_log_set_node(n->id);
    bool damaged;
    char boot_now[NODE_BOOT_ID_MAX];
    rc = open_storage(n, &damaged, boot_now);
    if (rc) {
        goto fail;
    }
    struct node_base base;
    rc = node_recover_engine(n, damaged, &base);
    if (rc == 0) {
        rc = boot_record(n, boot_now);
        if (rc) {
            free(base.snap);
        }
    }
    if (rc) {
        goto fail;
    }
    load_members(n);
    rc = create_raft(n, &base);
    free(base.snap);
    if (rc) {
        goto fail;
    }
    /* A prune deferred for a stream a stop ended was not run (node_snap_prune_due skips while
     * stopping): the first tick prunes once, rather than the first snapshot or install. */
    atomic_store(&n->snap_users.prune_due, true);

    rc = node_tls_load(n);
    if (rc) {
        goto fail;
    }
    struct mc_peer_options po = {.tls_server = n->peer_tls_server,
                                 .tls_client = n->peer_tls_client,
                                 .self_id = n->id,
                                 .cluster_id = n->cluster_id,
                                 .listen_addr = n->opts.listen_peer,
                                 .on_recv = node_on_peer_frame,
                                 .on_link = on_peer_link,
                                 .on_hello = on_peer_hello,
                                 .advertise_client = n->opts.advertise_client,
                                 .advertise_http = n->opts.listen_http,
                                 .advertise_peer = n->opts.listen_peer,
                                 .ctx = n};
    rc = mc_peer_start(loop, &po, &n->peers);
    if (rc) {
        goto fail;
    }
    for (size_t i = 0; i < n->n_members; i++) {
        if (n->members[i].id != n->id && n->members[i].peer_addr[0]) {
            mc_peer_set(n->peers, n->members[i].id,
                        node_dial_addr(n, n->members[i].id, n->members[i].peer_addr));
            mc_peer_dial(n->peers, n->members[i].id); /* tell it we are back (peer.h) */
        }
    }
    rc = node_auth_load(n);
    if (rc) {
        goto fail;
    }
    rc = node_fit_fds(n);
    if (rc) {
        goto fail;
    }
    struct mc_client_server_opts co = {
        .auth = n->auth,
        .tls = n->client_tls,
        .max_connections = (uint32_t)n->opts.max_client_connections,
        .max_inflight_per_conn = (uint32_t)n->opts.max_inflight_per_conn,
        .idle_timeout_ms = (uint32_t)n->opts.idle_timeout_ms,
        .request_read_timeout_ms = (uint32_t)n->opts.request_read_timeout_ms,
        .max_frame_bytes = (uint32_t)n->opts.max_frame_bytes,
        .max_batch_ops = (uint32_t)n->opts.max_batch_ops,
        .max_list_keys = (uint32_t)n->opts.max_list_keys,
        .send_timeout_ms = (uint32_t)n->opts.client_send_timeout_ms,
        .max_total_output_bytes = (size_t)n->opts.max_total_output_bytes,
    };
    rc = mc_client_server_start(loop, n->opts.listen_client, &client_handler, n, &co, &n->clients);
    if (rc) {
        MC_ERROR("client_listen_failed", "addr=%s err=%s", n->opts.listen_client,
                 mc_error_name(rc));
        goto fail;
    }
    rc = node_metrics_start(n);
    if (rc) {
        goto fail;
    }
    uv_async_init(loop, &n->wal_async, wal_async_cb);
    n->wal_async.data = n;
    mc_disk_space_init(&n->disk, n->opts.disk_reserve_mb << 20);
    mc_disk_space_init(&n->disk_engine, n->opts.disk_reserve_mb << 20);
    mc_disk_space_catch_sigbus(n->opts.engine_dir[0] ? n->opts.engine_dir : n->datadir);
    uv_timer_init(loop, &n->tick_timer);
    n->tick_timer.data = n;
    uv_timer_start(&n->tick_timer, tick_cb, n->opts.tick_ms, n->opts.tick_ms);
    /* Started last so it runs first among prepare handles (libuv runs the most recently
     * started first): replies and peer frames it queues are flushed by the client server's
     * and transport's own prepare handles in the same iteration, before the loop blocks. */
    uv_prepare_init(loop, &n->prepare);
    n->prepare.data = n;
    uv_prepare_start(&n->prepare, prepare_cb);
    n->last_leader_contact_ms = 0;
    if (n->cluster_id == 0) {
        MC_INFO("waiting_to_be_added",
                "id=%llu peer=%s hint=\"on the cluster run: metacenter --endpoints %s cluster add "
                "%llu %s --learner\"",
                (unsigned long long)n->id, n->opts.listen_peer,
                n->opts.join[0] ? n->opts.join : "LEADER", (unsigned long long)n->id,
                n->opts.listen_peer);
    }
    MC_INFO("node_started",
            "id=%llu cluster=%016llx data_dir=%s client=%s peer=%s voters=%zu applied=%llu "
            "ms=%llu",
            (unsigned long long)n->id, (unsigned long long)n->cluster_id, n->datadir,
            n->opts.listen_client, n->opts.listen_peer, n->opts.initial_count,
            (unsigned long long)n->applied_index, (unsigned long long)(mc_mono_ms() - t0));
    *out = n;
    return 0;
fail:
    node_metrics_stop(n);
    if (n->board) {
        uv_close((uv_handle_t *)&n->metrics_timer, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        mc_metrics_board_free(n->board);
    }
    if (n->clients) {
        mc_client_server_stop(n->clients, NULL, NULL);
    }
    if (n->peers) {
        mc_peer_stop(n->peers);
    }
    if (n->raft) {
        mc_raft_destroy(n->raft);
    }
    mc_wal_close(n->wal);
    mc_trash_close(n->snap_trash);
    pthread_mutex_destroy(&n->snap_users.mu);
    if (n->engine) {
        mc_engine_close(n->engine);
    }
    if (n->lock_fd >= 0) {
        mc_datadir_unlock(n->lock_fd);
    }
    mc_wbuf_free(&n->batch);
    mc_wbuf_free(&n->scratch);
    mc_wbuf_free(&n->read_buf);
    mc_auth_free(n->auth);
    mc_tls_ctx_free(n->client_tls);
    mc_tls_ctx_free(n->peer_tls_server);
    mc_tls_ctx_free(n->peer_tls_client);
    free(n);
    return rc;
}

void mc_node_get_info(struct mc_node *n, struct mc_node_info *out)
{
    memset(out, 0, sizeof(*out));
    out->id = n->id;
    out->leader_id = mc_raft_leader(n->raft);
    out->term = mc_raft_term(n->raft);
    out->role = mc_raft_role(n->raft);
    out->commit_index = mc_raft_commit_index(n->raft);
    out->applied_index = n->applied_index;
    out->last_index = mc_raft_last_index(n->raft);
    out->snapshot_index = n->last_snapshot_index;
    out->snapshot_size_bytes = n->snapshot_size_bytes;
    if (out->role == MC_RAFT_LEADER) {
        out->ms_since_leader_contact = 0;
    } else if (n->last_leader_contact_ms) {
        out->ms_since_leader_contact = node_now_ms() - n->last_leader_contact_ms;
    } else {
        out->ms_since_leader_contact = UINT64_MAX;
    }
    const struct mc_raft_conf *c = mc_raft_conf(n->raft);
    out->n_voters = c->n_voters;
    out->n_learners = c->n_learners;
}

/* ---- stop ---- */

static void stop_step_done(struct mc_node *n);

static void handle_closed(uv_handle_t *h)
{
    stop_step_done(h->data);
}

static void close_handle(struct mc_node *n, uv_handle_t *h)
{
    h->data = n;
    n->closing_handles++;
    uv_close(h, handle_closed);
}

static void stop_step_done(struct mc_node *n)
{
    if (--n->closing_handles == 0 && n->stop_done) {
        n->stop_done(n->stop_arg);
    }
}

static void clients_stopped(void *arg)
{
    stop_step_done(arg);
}

static void finish_stop(struct mc_node *n)
{
    uv_timer_stop(&n->stop_timer);
    node_metrics_stop(n);
    node_fail_writes(n, MC_ESHUTDOWN);
    node_fail_reads(n, MC_ESHUTDOWN);
    node_check_fail_request(n, MC_ESHUTDOWN);
    node_snapshot_stop(n);
    /* Finish in-flight fsyncs before closing anything they report to. */
    if (n->wal) {
        mc_wal_sync(n->wal);
    }
    node_wal_progress(n);
    n->closing_handles++; /* for the client server, see clients_stopped */
    mc_client_server_stop(n->clients, clients_stopped, n);
    n->clients = NULL;
    mc_peer_stop(n->peers);
    n->peers = NULL;
    uv_timer_stop(&n->tick_timer);
    uv_prepare_stop(&n->prepare);
    close_handle(n, (uv_handle_t *)&n->tick_timer);
    close_handle(n, (uv_handle_t *)&n->prepare);
    close_handle(n, (uv_handle_t *)&n->wal_async);
    close_handle(n, (uv_handle_t *)&n->stop_timer);
    close_handle(n, (uv_handle_t *)&n->metrics_timer);
}

uint64_t node_pick_transferee(const struct mc_raft_status *st, uint64_t window_ticks)
{
    const struct mc_raft_peer_status *best = NULL;
    for (uint32_t i = 0; i < st->n_peers; i++) {
        const struct mc_raft_peer_status *p = &st->peers[i];
        bool heard =
            p->last_heard_tick >= st->tick || st->tick - p->last_heard_tick <= window_ticks;
        if (p->is_learner || !heard) {
            continue;
        }
        if (!best || p->match > best->match ||
            (p->match == best->match && p->last_heard_tick > best->last_heard_tick)) {
            best = p;
        }
    }
    return best ? best->id : 0;
}

uint64_t node_best_transferee(struct mc_node *n)
{
    struct mc_raft_status *st = malloc(sizeof(*st));
    uint64_t best = 0;
    if (st) {
        mc_raft_status(n->raft, st);
        best = node_pick_transferee(st, n->opts.election_timeout_ms / n->opts.tick_ms);
        free(st);
    }
    return best;
}

static void stop_timer_cb(uv_timer_t *h)
{
    struct mc_node *n = h->data;
    /* Leadership transfer done (or given up): finish. */
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER || node_now_ms() >= n->stop_deadline_ms) {
        finish_stop(n);
    }
}

void mc_node_stop(struct mc_node *n, void (*done)(void *arg), void *arg)
{
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    n->stop_done = done;
    n->stop_arg = arg;
    uv_timer_init(n->loop, &n->stop_timer);
    n->stop_timer.data = n;
    const struct mc_raft_conf *c = mc_raft_conf(n->raft);
    if (!n->fatal && mc_raft_role(n->raft) == MC_RAFT_LEADER && c->n_voters > 1) {
        /* Hand leadership to the most caught-up voter so clients fail over at once. */
        uint64_t best = node_best_transferee(n);
        if (best && mc_raft_transfer_leader(n->raft, best) == 0) {
            MC_INFO("shutdown_transfer_leader", "to=%llu", (unsigned long long)best);
            n->stop_deadline_ms = node_now_ms() + n->opts.election_timeout_ms;
            uv_timer_start(&n->stop_timer, stop_timer_cb, 10, 10);
            return;
        }
    }
    n->stop_deadline_ms = node_now_ms();
    uv_timer_start(&n->stop_timer, stop_timer_cb, 0, 0);
}

int node_queue_work(struct mc_node *n, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    atomic_fetch_add(&n->work_inflight, 1);
    int rc = uv_queue_work(n->loop, req, work, after);
    if (rc) {
        node_work_end(n);
    }
    return rc;
}

void node_work_end(struct mc_node *n)
{
    uint32_t was = atomic_fetch_sub(&n->work_inflight, 1);
    assert(was > 0);
    (void)was;
}

#define NODE_FREE_WORK_WAIT_MS 30000 /* an image copy or a received image's prepare may run on */

/* After a fatal stop, jobs may still run on the threadpool (uv_run returned at uv_stop): wait
 * for them before freeing the engine, the trash and the node they use. False when they did not
 * end in time: the caller then leaks the node (the process is exiting on a fatal error). */
static bool wait_for_work(struct mc_node *n)
{
    uint64_t until = mc_mono_ms() + NODE_FREE_WORK_WAIT_MS;
    uint32_t left;
    while ((left = atomic_load(&n->work_inflight)) > 0 && mc_mono_ms() < until) {
        usleep(1000);
    }
    if (left) {
        MC_ERROR(
            "node_free_jobs_running",
            "jobs=%u waited_ms=%u reason=\"the node is left allocated: its jobs still use it\"",
            left, NODE_FREE_WORK_WAIT_MS);
    }
    return left == 0;
}

void mc_node_free(struct mc_node *n)
{
    if (!n) {
        return;
    }
    if (!wait_for_work(n)) {
        return;
    }
    node_members_free(n);
    mc_wal_close(n->wal);
    if (n->engine) {
        bool clean = !n->fatal && mc_engine_sync(n->engine) == 0;
        mc_engine_close(n->engine);
        n->engine = NULL;
        if (clean && mc_seal_write(n->datadir) != 0) {
            MC_WARN("engine_seal_failed", "dir=%s", n->datadir);
        }
    }
    if (n->raft) {
        mc_raft_destroy(n->raft);
    }
    if (n->recv) {
        mc_snap_recv_abort(n->recv, false);
    }
    node_snapshot_free(n);
    mc_trash_close(n->snap_trash); /* after the streams' files closed; queued files stay */
    pthread_mutex_destroy(&n->snap_users.mu);
    for (size_t i = 0; i < n->n_held; i++) {
        free(n->held[i].data);
    }
    free(n->held);
    free(n->marks);
    free(n->batch_waiters);
    free(n->writes);
    free(n->creates.e);
    free(n->registers.e);
    free(n->reads);
    mc_wbuf_free(&n->batch);
    mc_wbuf_free(&n->scratch);
    mc_wbuf_free(&n->read_buf);
    if (n->board) {
        mc_metrics_board_free(n->board);
    }
    mc_auth_free(n->auth);
    mc_tls_ctx_free(n->client_tls);
    mc_tls_ctx_free(n->peer_tls_server);
    mc_tls_ctx_free(n->peer_tls_client);
    if (n->lock_fd >= 0) {
        mc_datadir_unlock(n->lock_fd);
    }
    MC_INFO("node_stopped", "id=%llu", (unsigned long long)n->id);
    free(n);
}
