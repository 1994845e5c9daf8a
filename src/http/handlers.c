/* handlers.c: bucket and object endpoints: node requests built and answers formatted (DESIGN.md
 * §4). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/h1.h"
#include "http/handlers.h"
#include "metacenter/error.h"
#include "obs/metrics.h"

/* ---- shared helpers (also used by admin.c) ---- */

int mc_http_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    if (!s || !*s)
        return MC_EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 0xFFFFFFFFull)
            return MC_EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min)
        return MC_EINVAL;
    *out = v > max ? max : (uint32_t)v;
    return 0;
}

/* consistency= and max_staleness_ms= (DESIGN.md §2.5). */
static int read_opts(const struct mc_http_request *q, struct mc_read_opts *ro)
{
    ro->consistency = MC_CONSISTENCY_LINEARIZABLE;
    ro->max_staleness_ms = 0;
    const char *c = mc_http_arg(q, "consistency");
    if (c && *c && mc_consistency_parse(c, &ro->consistency) != 0)
        return MC_EINVAL;
    const char *s = mc_http_arg(q, "max_staleness_ms");
    if (s && *s && mc_http_parse_u32(s, 0, UINT32_MAX, &ro->max_staleness_ms) != 0)
        return MC_EINVAL;
    return 0;
}

/* Percent-encode a decoded path for a header (unreserved bytes and '/' stay). */
static void encode_path(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-._~/", *p);
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* The node's view of the leader, when it has one (collect), for NotLeader answers. */
static bool node_state(struct mc_http_server *s, struct mc_node_metrics *n)
{
    memset(n, 0, sizeof *n);
    return s->collect && s->collect(s->collect_ctx, n) == 0;
}

void mc_http_fail_call(const struct mc_http_request *q, struct mc_http_response *r,
                       const struct mc_http_call *k)
{
    int st = k->status;
    struct mc_node_metrics n;
    bool known = node_state(q->srv, &n);
    /* The client library follows the leader itself, so a request only fails for want of one
     * when none was reachable before the deadline: if this node knows no leader, or knows one
     * that is not itself, say NotLeader with the hint (DESIGN.md §4). */
    bool elsewhere = known && (!n.has_leader || n.leader_id != n.node_id);
    if (st == MC_ENOTLEADER || ((st == MC_ETIMEOUT || st == MC_EUNAVAIL) && elsewhere)) {
        uint64_t leader = st == MC_ENOTLEADER ? k->leader_id : 0;
        if (leader == 0 && known && n.has_leader)
            leader = n.leader_id;
        json_t *o = json_pack("{s:s, s:s, s:I}", "error", mc_error_name(MC_ENOTLEADER), "message",
                              leader ? "this node is not the leader and the leader did not answer"
                                     : "no leader is known (election in progress?)",
                              "leader", (json_int_t)leader);
        if (k->outcome_unknown)
            json_object_set_new(o, "outcome_unknown", json_true());
        mc_http_resp_json(r, mc_error_http_status(MC_ENOTLEADER), json_dumps(o, JSON_COMPACT));
        json_decref(o);
        if (leader && known && n.has_leader && n.leader_id == leader && n.leader_http_addr[0]) {
            char path[800], query[300], loc[MC_ADDR_MAX + sizeof path + sizeof query + 8];
            encode_path(q->url, path, sizeof path);
            mc_http_query_string(q, query, sizeof query);
            snprintf(loc, sizeof loc, "http://%s%s%s", n.leader_http_addr, path, query);
            mc_http_resp_header(r, "Location", loc);
        }
        return;
    }
    /* The engine reports "no error" when it has no detail: say what the code means then. */
    bool detail = k->message[0] && strcmp(k->message, "no error") != 0;
    json_t *o = json_pack("{s:s, s:s}", "error", mc_error_name(st), "message",
                          detail ? k->message : mc_strerror(st));
    if (k->delete_marker) {
        json_object_set_new(o, "delete_marker", json_true());
        if (k->version_id[0])
            json_object_set_new(o, "version_id", json_string(k->version_id));
        mc_http_resp_header(r, "X-Delete-Marker", "true");
        if (k->version_id[0]) /* the marker's id: a HEAD answer has no body */
            mc_http_resp_header(r, "X-Version-Id", k->version_id);
    }
    if (k->outcome_unknown)
        json_object_set_new(o, "outcome_unknown", json_true());
    if (k->is_write && k->result.failed_op >= 0 && k->result.code != 0)
        json_object_set_new(o, "failed_op", json_integer(k->result.failed_op));
    mc_http_resp_json(r, mc_error_http_status(st), json_dumps(o, JSON_COMPACT));
    json_decref(o);
}

json_t *mc_http_parse_body(const struct mc_http_request *q, struct mc_http_response *r,
                           bool required)
{
    if (q->body_len == 0) {
        if (required) {
            mc_http_resp_error(r, MC_EINVAL, "a JSON request body is required");
            return NULL;
        }
        return json_object();
    }
    json_error_t err;
    json_t *o = json_loadb(q->body, q->body_len, 0, &err);
    if (!o || !json_is_object(o)) {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed JSON body: %s", o ? "not an object" : err.text);
        json_decref(o);
        mc_http_resp_error(r, MC_EINVAL, msg);
        return NULL;
    }
    return o;
}

/* ---- node requests: prepare (k gets what to send) and finish (k has the answer) ---- */

/* Answer r with code as a failed call would (no node request made). Returns false. */
static bool fail_now(struct mc_http_request *q, struct mc_http_response *r, struct mc_http_call *k,
                     int code)
{
    k->status = code;
    k->is_write = true;
    k->result.failed_op = -1;
    mc_http_fail_call(q, r, k);
    return false;
}

/* k becomes a WRITE of op (built by the caller with build_rc); op is cleared. */
static bool prepare_write(struct mc_http_request *q, struct mc_http_response *r,
                          struct mc_http_call *k, struct mc_op *op, int build_rc)
{
    int rc = build_rc;
    if (rc == 0) {
        if (!k->ops.data)
            mc_wbuf_init(&k->ops, MC_PROTO_MAX_BODY_BYTES);
        k->ops.len = 0;
        k->ops.err = 0;
        mc_wbuf_u32(&k->ops, 0);
        rc = mc_op_encode(op, &k->ops);
        if (rc == 0)
            rc = mc_wbuf_error(&k->ops);
        if (rc == 0)
            mc_wbuf_patch_u32(&k->ops, 0, (uint32_t)(k->ops.len - 4));
    }
    mc_op_clear(op);
    if (rc != 0)
        return fail_now(q, r, k, rc);
    k->is_write = true;
    k->req.op = MC_REQ_WRITE;
    k->req.u.write.n_ops = 1;
    k->req.u.write.ops = k->ops.data;
    k->req.u.write.ops_bytes = (uint32_t)k->ops.len;
    return true;
}

/* k's read options from consistency= and max_staleness_ms=; false (r answered) when bad. */
static bool prepare_read(struct mc_http_request *q, struct mc_http_response *r,
                         struct mc_proto_read_opts *pro)
{
    struct mc_read_opts ro;
    if (read_opts(q, &ro) != 0) {
        mc_http_resp_error(r, MC_EINVAL, "bad consistency or max_staleness_ms");
        return false;
    }
    pro->consistency = (uint8_t)ro.consistency;
    pro->max_staleness_ms = ro.max_staleness_ms;
    return true;
}

/* ---- buckets ---- */

static bool bucket_list_prepare(struct mc_http_request *q, struct mc_http_response *r,
                                struct mc_http_call *k)
{
    k->req.op = MC_REQ_LIST_BUCKETS;
    k->req.u.bucket.bucket = mc_proto_cstr("");
    return prepare_read(q, r, &k->req.u.bucket.ro);
}

static void bucket_list_finish(struct mc_http_request *q, struct mc_http_response *r,
                               struct mc_http_call *k)
{
    struct mc_bucket_info *b = NULL;
    size_t n = 0;
    int rc = mc_bucket_list_decode(k->body, k->body_len, &b, &n);
    if (rc == 0) {
        mc_http_resp_json(r, 200, mc_bucket_list_json(b, n, MC_JSON_COMPACT));
    } else {
        k->status = rc;
        mc_http_fail_call(q, r, k);
    }
    free(b);
}

static bool bucket_head_prepare(struct mc_http_request *q, struct mc_http_response *r,
                                struct mc_http_call *k)
{
    k->req.op = MC_REQ_HEAD_BUCKET;
    k->req.u.bucket.bucket = mc_proto_cstr(q->path.bucket);
    return prepare_read(q, r, &k->req.u.bucket.ro);
}

static void bucket_head_finish(struct mc_http_request *q, struct mc_http_response *r,
                               struct mc_http_call *k)
{
    struct mc_bucket_info *b = NULL;
    size_t n = 0;
    int rc = mc_bucket_list_decode(k->body, k->body_len, &b, &n);
    if (rc == 0 && n != 1)
        rc = MC_EPROTO;
    if (rc == 0) {
        mc_http_resp_json(r, 200, mc_bucket_json(&b[0], MC_JSON_COMPACT));
    } else {
        k->status = rc;
        mc_http_fail_call(q, r, k);
    }
    free(b);
}

/* PUT /v1/buckets/{b}, optional body {"versioning":"enabled"|"suspended"|"unversioned"}. */
static bool bucket_create_prepare(struct mc_http_request *q, struct mc_http_response *r,
                                  struct mc_http_call *k)
{
    if (mc_validate_new_bucket_name(q->path.bucket)) {
        /* An input rule (engine.h): the node checks it too, before proposing. */
        mc_http_resp_error(r, MC_EBUCKETNAME, mc_engine_last_error());
        return false;
    }
    json_t *body = mc_http_parse_body(q, r, false);
    if (!body)
        return false;
    enum mc_versioning v = MC_VERSIONING_UNVERSIONED;
    json_t *jv = json_object_get(body, "versioning");
    int rc = 0;
    if (json_object_size(body) > (jv ? 1u : 0u))
        rc = MC_EINVAL;
    else if (jv && (!json_is_string(jv) || mc_versioning_parse(json_string_value(jv), &v) != 0))
        rc = MC_EINVAL;
    json_decref(body);
    if (rc) {
        mc_http_resp_error(
            r, rc, "body must be {\"versioning\":\"enabled\"|\"suspended\"|\"unversioned\"}");
        return false;
    }
    k->aux = (int)v;
    struct mc_op op = {0};
    return prepare_write(q, r, k, &op, mc_op_bucket_create(&op, q->path.bucket, v, 0));
}

/* {"bucket","versioning"} for bucket create and versioning (k->aux: the versioning). */
static void bucket_versioning_finish(struct mc_http_request *q, struct mc_http_response *r,
                                     struct mc_http_call *k)
{
    json_t *o = json_pack("{s:s, s:s}", "bucket", q->path.bucket, "versioning",
                          mc_versioning_name((enum mc_versioning)k->aux));
    mc_http_resp_json(r, 200, json_dumps(o, JSON_COMPACT));
    json_decref(o);
}

static bool bucket_delete_prepare(struct mc_http_request *q, struct mc_http_response *r,
                                  struct mc_http_call *k)
{
    struct mc_op op = {0};
    return prepare_write(q, r, k, &op, mc_op_bucket_delete(&op, q->path.bucket));
}

static void bucket_delete_finish(struct mc_http_request *q, struct mc_http_response *r,
                                 struct mc_http_call *k)
{
    (void)q;
    (void)k;
    r->status = 204;
}

/* PUT /v1/buckets/{b}/versioning {"status":"enabled"|"suspended"} */
static bool bucket_versioning_prepare(struct mc_http_request *q, struct mc_http_response *r,
                                      struct mc_http_call *k)
{
    json_t *body = mc_http_parse_body(q, r, true);
    if (!body)
        return false;
    enum mc_versioning v = MC_VERSIONING_UNVERSIONED;
    json_t *js = json_object_get(body, "status");
    int rc = 0;
    if (!json_is_string(js) || json_object_size(body) != 1 ||
        mc_versioning_parse(json_string_value(js), &v) != 0 || v == MC_VERSIONING_UNVERSIONED)
        rc = MC_EINVAL;
    json_decref(body);
    if (rc) {
        mc_http_resp_error(r, rc, "body must be {\"status\":\"enabled\"|\"suspended\"}");
        return false;
    }
    k->aux = (int)v;
    struct mc_op op = {0};
    return prepare_write(q, r, k, &op, mc_op_bucket_versioning(&op, q->path.bucket, v));
}

/* ---- listings ---- */

static bool list_prepare(struct mc_http_request *q, struct mc_http_response *r,
                         struct mc_http_call *k)
{
    bool versions = q->path.route == MC_ROUTE_VERSIONS;
    uint32_t max_keys = 0;
    const char *mk = mc_http_arg(q, "max-keys");
    if (mk && *mk && mc_http_parse_u32(mk, 0, 1000, &max_keys) != 0) {
        mc_http_resp_error(r, MC_EINVAL, "max-keys must be an integer >= 0");
        return false;
    }
    /* max-keys=0 (S3: an empty listing, not truncated): a one-key listing still checks the
       bucket and the markers; list_finish empties it. On the wire 0 means the default. */
    k->aux = mk && *mk && max_keys == 0;
    if (k->aux)
        max_keys = 1;
    if (versions) {
        const char *km = mc_http_arg(q, "key-marker");
        const char *vm = mc_http_arg(q, "version-id-marker");
        if (vm && *vm && !(km && *km)) {
            mc_http_resp_error(r, MC_EINVAL, "version-id-marker needs key-marker");
            return false;
        }
        k->req.op = MC_REQ_LIST_VERSIONS;
        k->req.u.versions.bucket = mc_proto_cstr(q->path.bucket);
        k->req.u.versions.prefix = mc_proto_cstr(mc_http_arg(q, "prefix"));
        k->req.u.versions.delimiter = mc_proto_cstr(mc_http_arg(q, "delimiter"));
        k->req.u.versions.key_marker = mc_proto_cstr(km);
        k->req.u.versions.version_id_marker = mc_proto_cstr(vm);
        k->req.u.versions.max_keys = max_keys;
        return prepare_read(q, r, &k->req.u.versions.ro);
    }
    k->req.op = MC_REQ_LIST_OBJECTS;
    k->req.u.list.bucket = mc_proto_cstr(q->path.bucket);
    k->req.u.list.prefix = mc_proto_cstr(mc_http_arg(q, "prefix"));
    k->req.u.list.delimiter = mc_proto_cstr(mc_http_arg(q, "delimiter"));
    k->req.u.list.start_after = mc_proto_cstr(mc_http_arg(q, "start-after"));
    k->req.u.list.continuation_token = mc_proto_cstr(mc_http_arg(q, "continuation-token"));
    k->req.u.list.max_keys = max_keys;
    return prepare_read(q, r, &k->req.u.list.ro);
}

static void list_finish(struct mc_http_request *q, struct mc_http_response *r,
                        struct mc_http_call *k)
{
    struct mc_list_result lr = {0};
    int rc = mc_list_result_decode(k->body, k->body_len, &lr);
    if (rc == 0 && k->aux)
        mc_list_result_clear(&lr);
    if (rc == 0) {
        lr.is_versions = q->path.route == MC_ROUTE_VERSIONS;
        mc_http_resp_json(r, 200, mc_list_result_json(&lr, MC_JSON_COMPACT));
    } else {
        k->status = rc;
        mc_http_fail_call(q, r, k);
    }
    mc_list_result_clear(&lr);
}

/* ---- objects ---- */

/* Strip the quotes of an HTTP entity tag ("abc" or W/"abc") into out. */
static void unquote_etag(const char *in, char *out, size_t cap)
{
    if (strncmp(in, "W/", 2) == 0)
        in += 2;
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
        in++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, in, n);
    out[n] = '\0';
}

static bool object_put_prepare(struct mc_http_request *q, struct mc_http_response *r,
                               struct mc_http_call *k)
{
    struct mc_object_meta meta = {0};
    int rc = 0;
    if (q->body_len > 0 && !mc_http_meta_from_json_fast(q->body, q->body_len, &meta)) {
        rc = mc_object_meta_from_json(q->body, q->body_len, &meta);
        if (rc != 0) {
            /* The engine parser says what is wrong (a field, a type, an etag's byte). */
            mc_http_resp_error(r, rc, rc == MC_EINVAL ? mc_engine_last_error() : NULL);
            return false;
        }
    }
    struct mc_op op = {0};
    rc = mc_op_put(&op, q->path.bucket, q->path.key, NULL, 0, &meta);
    mc_object_meta_clear(&meta);
    const char *im = mc_http_header(q, "If-Match");
    const char *inm = mc_http_header(q, "If-None-Match");
    const char *bad = NULL;
    if (rc == 0 && inm) {
        if (strcmp(inm, "*") == 0)
            op.if_none_match_star = true;
        else
            bad = "If-None-Match only accepts *";
    }
    if (rc == 0 && im && !bad) {
        char etag[1024];
        unquote_etag(im, etag, sizeof etag);
        if (strcmp(etag, "*") == 0 || etag[0] == '\0') {
            bad = "If-Match needs one entity tag";
        } else {
            op.if_match = strdup(etag);
            if (!op.if_match)
                rc = MC_ENOMEM;
        }
    }
    if (bad) {
        mc_op_clear(&op);
        mc_http_resp_error(r, MC_EINVAL, bad);
        return false;
    }
    return prepare_write(q, r, k, &op, rc);
}

/* Object PUT and DELETE: {"version_id","delete_marker"} + X-Version-Id (+ X-Delete-Marker). */
static void object_write_finish(struct mc_http_request *q, struct mc_http_response *r,
                                struct mc_http_call *k)
{
    (void)q;
    if (k->result.delete_marker)
        mc_http_resp_header(r, "X-Delete-Marker", "true");
    if (k->result.version_id[0])
        mc_http_resp_header(r, "X-Version-Id", k->result.version_id);
    mc_http_resp_json(r, 200, mc_http_op_result_json(&k->result));
}

/* Whether the query names arg, with or without a value ("?versionId" has none). */
static bool has_arg(const struct mc_http_request *q, const char *name, const char **value)
{
    for (uint32_t i = 0; i < q->h->n_args; i++) {
        if (strcmp(q->h->args[i].name, name) == 0) {
            *value = q->h->args[i].value ? q->h->args[i].value : "";
            return true;
        }
    }
    *value = NULL;
    return false;
}

/* The version id of an object GET/HEAD/DELETE: version-id=, or S3's spelling versionId= (a
 * client speaking S3 would otherwise act on the latest version, silently). NULL when neither is
 * given. An empty one is refused as S3 refuses it (400 InvalidArgument, "Version id cannot be
 * the empty string": Amazon S3 API Reference, GetObject/DeleteObject versionId), rather than
 * read as none, which would act on the latest version (a DELETE adds a marker or removes it).
 * Both given must agree. False (r answered) when refused. */
static bool version_id_arg(const struct mc_http_request *q, struct mc_http_response *r,
                           const char **vid)
{
    const char *a, *b;
    bool has_a = has_arg(q, "version-id", &a), has_b = has_arg(q, "versionId", &b);
    *vid = has_a ? a : b;
    if ((has_a && !*a) || (has_b && !*b)) {
        mc_http_resp_error(r, MC_EINVAL, "Version id cannot be the empty string");
        return false;
    }
    if (has_a && has_b && strcmp(a, b) != 0) {
        mc_http_resp_error(r, MC_EINVAL, "version-id and versionId name different versions");
        return false;
    }
    return true;
}

static bool object_get_prepare(struct mc_http_request *q, struct mc_http_response *r,
                               struct mc_http_call *k)
{
    k->req.op = strcmp(q->method, "HEAD") == 0 ? MC_REQ_HEAD_OBJECT : MC_REQ_GET_OBJECT;
    k->req.u.get.bucket = mc_proto_cstr(q->path.bucket);
    k->req.u.get.key = mc_proto_cstr(q->path.key);
    const char *vid;
    if (!version_id_arg(q, r, &vid))
        return false;
    k->req.u.get.version_id = mc_proto_cstr(vid);
    return prepare_read(q, r, &k->req.u.get.ro);
}

static void object_get_finish(struct mc_http_request *q, struct mc_http_response *r,
                              struct mc_http_call *k)
{
    struct mc_version v = {0};
    int rc = mc_version_decode(k->body, k->body_len, &v);
    if (rc == 0 && v.is_delete_marker) {
        /* A marker addressed by version id: S3 answers 405 with the marker's headers (the
           native protocol returns the record, flag set). */
        char lm[64];
        time_t sec = (time_t)(v.mod_time_ns / 1000000000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        mc_http_resp_header(r, "Last-Modified", lm);
        mc_http_resp_header(r, "X-Delete-Marker", "true");
        mc_http_resp_header(r, "X-Version-Id", v.version_id ? v.version_id : "");
        mc_http_resp_header(r, "Allow", "DELETE"); /* RFC 9110 §15.5.6: a 405 names what is */
        json_t *o = json_pack("{s:s, s:s, s:b, s:s}", "error", "MethodNotAllowed", "message",
                              "the version is a delete marker", "delete_marker", 1, "version_id",
                              v.version_id ? v.version_id : "");
        mc_http_resp_json(r, 405, json_dumps(o, JSON_COMPACT));
        json_decref(o);
    } else if (rc == 0) {
        /* An etag stored before etags were checked at input may not fit a header: left out. */
        if (v.meta.etag && v.meta.etag[0] && mc_validate_etag(v.meta.etag) == 0) {
            char et[MC_SHORT_STR_MAX + 3];
            snprintf(et, sizeof et, "\"%s\"", v.meta.etag);
            mc_http_resp_header(r, "ETag", et);
        }
        if (v.version_id)
            mc_http_resp_header(r, "X-Version-Id", v.version_id);
        mc_http_resp_json(r, 200, mc_http_version_json(&v));
    } else {
        k->status = rc;
        mc_http_fail_call(q, r, k);
    }
    mc_version_clear(&v);
}

static bool object_delete_prepare(struct mc_http_request *q, struct mc_http_response *r,
                                  struct mc_http_call *k)
{
    const char *vid;
    if (!version_id_arg(q, r, &vid))
        return false;
    struct mc_op op = {0};
    return prepare_write(q, r, k, &op,
                         mc_op_delete(&op, q->path.bucket, q->path.key, vid, NULL, 0));
}

/* ---- dispatch ---- */

typedef bool (*prepare_fn)(struct mc_http_request *q, struct mc_http_response *r,
                           struct mc_http_call *k);
typedef void (*finish_fn)(struct mc_http_request *q, struct mc_http_response *r,
                          struct mc_http_call *k);

static bool is(const struct mc_http_request *q, const char *m)
{
    return strcmp(q->method, m) == 0;
}

/* The two phases of a data route (both NULL for the rest). */
static void data_route(const struct mc_http_request *q, prepare_fn *p, finish_fn *f)
{
    bool get = is(q, "GET") || is(q, "HEAD");
    *p = NULL;
    *f = NULL;
    switch (q->path.route) {
    case MC_ROUTE_BUCKETS:
        *p = bucket_list_prepare, *f = bucket_list_finish;
        return;
    case MC_ROUTE_BUCKET:
        if (get)
            *p = bucket_head_prepare, *f = bucket_head_finish;
        else if (is(q, "PUT"))
            *p = bucket_create_prepare, *f = bucket_versioning_finish;
        else
            *p = bucket_delete_prepare, *f = bucket_delete_finish;
        return;
    case MC_ROUTE_VERSIONING:
        *p = bucket_versioning_prepare, *f = bucket_versioning_finish;
        return;
    case MC_ROUTE_OBJECTS:
    case MC_ROUTE_VERSIONS:
        *p = list_prepare, *f = list_finish;
        return;
    case MC_ROUTE_OBJECT:
        if (get)
            *p = object_get_prepare, *f = object_get_finish;
        else if (is(q, "PUT"))
            *p = object_put_prepare, *f = object_write_finish;
        else
            *p = object_delete_prepare, *f = object_write_finish;
        return;
    default:
        return;
    }
}

bool mc_http_route_is_admin(enum mc_http_route r)
{
    switch (r) {
    case MC_ROUTE_CLUSTER:
    case MC_ROUTE_MEMBERS:
    case MC_ROUTE_MEMBER:
    case MC_ROUTE_PROMOTE:
    case MC_ROUTE_TRANSFER:
    case MC_ROUTE_SNAPSHOT:
        return true;
    default:
        return false;
    }
}

bool mc_http_prepare(struct mc_http_request *q, struct mc_http_response *r, struct mc_http_call *k)
{
    switch (q->path.route) {
    case MC_ROUTE_HEALTHZ:
        mc_http_healthz(q, r);
        return false;
    case MC_ROUTE_READYZ:
        mc_http_readyz(q, r);
        return false;
    case MC_ROUTE_METRICS:
        mc_http_metrics(q, r);
        return false;
    default:
        break;
    }
    prepare_fn p;
    finish_fn f;
    data_route(q, &p, &f);
    if (!p) {
        mc_http_resp_error_named(r, 404, "NotFound", "no such endpoint");
        return false;
    }
    k->req.request_id = 0;
    k->result.failed_op = -1;
    return p(q, r, k);
}

void mc_http_finish(struct mc_http_request *q, struct mc_http_response *r, struct mc_http_call *k)
{
    prepare_fn p;
    finish_fn f;
    data_route(q, &p, &f);
    if (k->status != 0 || !f)
        mc_http_fail_call(q, r, k);
    else
        f(q, r, k);
}

void mc_http_dispatch(struct mc_http_request *q, struct mc_http_response *r)
{
    if (mc_http_route_is_admin(q->path.route)) {
        mc_http_admin(q, r);
        return;
    }
    struct mc_http_call k = {0};
    if (mc_http_prepare(q, r, &k)) {
        mc_http_call_client(q->srv, mc_http_pool_token(q), &k);
        mc_http_finish(q, r, &k);
    }
    mc_http_call_free(&k);
}
