/* fuzz_raft_msg.c: libFuzzer target for the peer message decoder and conf-change payloads. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "metacenter/error.h"
#include "metacenter/raft.h"

/*
 * The whole input is tried as a Raft message (what a peer connection hands to the node) and as
 * a configuration-change payload (what a CONF entry carries); CONF entries inside a decoded
 * APPEND are decoded too, as the node does when it applies them. Checked: no crash/leak/OOB,
 * the documented limits hold after a successful decode, and re-encoding reproduces the input.
 */

static void check_conf(const struct mc_raft_conf *c)
{
    FUZZ_ASSERT(c->n_voters <= MC_RAFT_MAX_NODES && c->n_learners <= MC_RAFT_MAX_NODES &&
                    c->n_voters_outgoing <= MC_RAFT_MAX_NODES,
                "conf counts %u/%u/%u", c->n_voters, c->n_voters_outgoing, c->n_learners);
    for (uint32_t i = 0; i < c->n_voters; i++) {
        FUZZ_ASSERT(c->voters[i] != 0, "zero voter id");
        FUZZ_ASSERT(mc_raft_conf_is_voter(c, c->voters[i]), "voter not found");
    }
    for (uint32_t i = 0; i < c->n_learners; i++) {
        FUZZ_ASSERT(c->learners[i] != 0, "zero learner id");
        FUZZ_ASSERT(mc_raft_conf_is_learner(c, c->learners[i]), "learner not found");
        FUZZ_ASSERT(!mc_raft_conf_is_voter(c, c->learners[i]), "learner is also a voter");
    }
}

static void fuzz_conf_change(const uint8_t *in, size_t len)
{
    struct mc_raft_conf_change cc;
    struct mc_raft_conf conf;
    memset(&conf, 0xA5, sizeof(conf));
    int rc = mc_raft_conf_change_decode(in, len, &cc, &conf);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO, "conf change decode rc %d", rc);
        return;
    }
    FUZZ_ASSERT(cc.type >= MC_RAFT_CONF_ADD_LEARNER && cc.type <= MC_RAFT_CONF_REMOVE,
                "conf change type %u", cc.type);
    FUZZ_ASSERT(cc.context_len <= MC_RAFT_CONF_CONTEXT_MAX, "context_len %u", cc.context_len);
    check_conf(&conf);
    uint8_t buf[MC_RAFT_CONF_CHANGE_MAX_BYTES];
    size_t n = 0;
    rc = mc_raft_conf_change_encode(&cc, &conf, buf, sizeof(buf), &n);
    FUZZ_ASSERT(rc == 0, "re-encoding an accepted conf change failed: %d", rc);
    long d = fuzz_first_diff(buf, n, in, len);
    FUZZ_ASSERT(d < 0, "conf change re-encoding differs at byte %ld", d);
}

static void fuzz_msg(const uint8_t *in, size_t len)
{
    struct mc_raft_msg m;
    memset(&m, 0xA5, sizeof(m));
    int rc = mc_raft_msg_decode(in, len, &m);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_ENOMEM, "msg decode rc %d", rc);
        FUZZ_ASSERT(m.entries == NULL && m.n_entries == 0, "rejected message holds entries");
        return;
    }
    FUZZ_ASSERT(m.type >= MC_RAFT_MSG_APPEND && m.type <= MC_RAFT_MSG_READ_INDEX_RESP, "type %u",
                m.type);
    FUZZ_ASSERT(m.reject <= 1, "reject %u", m.reject);
    FUZZ_ASSERT(m.n_entries <= MC_RAFT_MAX_MSG_ENTRIES, "n_entries %u", m.n_entries);
    FUZZ_ASSERT(m.n_entries == 0 || m.type == MC_RAFT_MSG_APPEND, "entries on a non-APPEND");
    FUZZ_ASSERT((m.n_entries == 0) == (m.entries == NULL), "entries array vs count");
    (void)mc_raft_msg_type_name(m.type);
    for (uint32_t i = 0; i < m.n_entries; i++) {
        const struct mc_raft_entry *e = &m.entries[i];
        FUZZ_ASSERT(e->type <= MC_RAFT_ENTRY_CONF, "entry type %u", e->type);
        FUZZ_ASSERT(e->len <= MC_RAFT_MAX_ENTRY_BYTES, "entry len %u", e->len);
        FUZZ_ASSERT((e->len == 0) == (e->data == NULL), "entry data vs len");
        /* Payloads point into the input: they must lie inside it. */
        FUZZ_ASSERT(e->len == 0 || (e->data >= in && e->data + e->len <= in + len),
                    "entry payload outside the input");
        if (e->type == MC_RAFT_ENTRY_CONF) {
            fuzz_conf_change(e->data, e->len);
        }
    }
    if (m.type == MC_RAFT_MSG_SNAPSHOT) {
        check_conf(&m.snapshot.conf);
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    rc = mc_raft_msg_encode(&m, &w);
    FUZZ_ASSERT(rc == 0, "re-encoding an accepted message failed: %d", rc);
    FUZZ_ASSERT_SAME_BYTES("raft msg", &w, in, len);
    mc_wbuf_free(&w);
    mc_raft_msg_free(&m);
    FUZZ_ASSERT(m.entries == NULL && m.n_entries == 0, "mc_raft_msg_free leaves entries");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_msg(data, size);
    fuzz_conf_change(data, size);
    return 0;
}
