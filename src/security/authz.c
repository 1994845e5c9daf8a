/* authz.c: maps client-protocol ops to roles and checks a principal's grants per request. */
#include "security/authz.h"

#include "metacenter/engine.h"
#include "metacenter/error.h"

enum mc_role mc_authz_op_role(uint8_t op)
{
    switch (op) {
    case MC_REQ_PING:
    case MC_REQ_LEADER: /* says no more than PING's leader_id plus that member's address */
    case MC_REQ_AUTH:
        return MC_ROLE_NONE;
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET:
        return MC_ROLE_READ;
    case MC_REQ_WRITE:
    case MC_REQ_REGISTER_SESSION:
        return MC_ROLE_WRITE;
    default:
        return MC_ROLE_ADMIN;
    }
}

/* Every op record of a WRITE must name a granted bucket (sub-ops of an ATOMIC too). */
static int check_write_buckets(const struct mc_principal *p, const struct mc_proto_request *req)
{
    uint32_t pos = 0;
    const uint8_t *rec;
    uint32_t len;
    while (mc_proto_ops_next(req->u.write.ops, req->u.write.ops_bytes, &pos, &rec, &len)) {
        struct mc_op op = {0};
        if (mc_op_decode(rec, len, &op) != 0) {
            /* Denied, whatever the cause: an ENOMEM here need not recur in the node's own
             * decode, which would then propose a record nobody checked. A malformed record
             * gets AccessDenied instead of ProtocolError: harmless. */
            mc_op_clear(&op);
            return MC_EDENIED;
        }
        int rc = mc_auth_check(p, MC_ROLE_WRITE, op.bucket);
        for (uint32_t i = 0; rc == 0 && i < op.n_sub; i++) {
            rc = mc_auth_check(p, MC_ROLE_WRITE, op.sub[i].bucket);
        }
        mc_op_clear(&op);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

int mc_authz_check_request(const struct mc_principal *p, const struct mc_proto_request *req)
{
    enum mc_role need = mc_authz_op_role(req->op);
    const char *bucket = NULL;
    switch (req->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        bucket = req->u.get.bucket.ptr;
        break;
    case MC_REQ_LIST_OBJECTS:
        bucket = req->u.list.bucket.ptr;
        break;
    case MC_REQ_LIST_VERSIONS:
        bucket = req->u.versions.bucket.ptr;
        break;
    case MC_REQ_HEAD_BUCKET:
        bucket = req->u.bucket.bucket.ptr;
        break;
    case MC_REQ_REGISTER_SESSION:
        /* Sessions carry no bucket: any writer may open one (the writes are checked). */
        return p ? (p->role >= MC_ROLE_WRITE ? 0 : MC_EDENIED) : MC_EUNAUTH;
    default:
        break;
    }
    if (req->op == MC_REQ_WRITE) {
        /* The buckets are inside the op records: role first, then each record's bucket. */
        if (!p) {
            return MC_EUNAUTH;
        }
        if (p->role < MC_ROLE_WRITE) {
            return MC_EDENIED;
        }
        return p->n_buckets > 0 ? check_write_buckets(p, req) : 0;
    }
    return mc_auth_check(p, need, bucket);
}
