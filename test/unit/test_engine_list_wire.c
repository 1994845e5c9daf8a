/* test_engine_list_wire.c: the one-pass listing (mc_engine_list_encode) writes exactly the wire
 * form of mc_list_result_encode, appends to the caller's buffer, and leaves it as it was on error;
 * mc_engine_list_encode_to asks for that buffer only once the request is accepted.
 */
#include "test_engine_util.h"
#include "util/codec.h"

TestSuite(engine_list_wire, .init = te_setup, .fini = te_teardown, .timeout = 60);

/* A version with every kind of field, inline data included (a listing never carries it). */
static void put_full(const char *bucket, const char *key)
{
    struct mc_object_meta m = {0};
    m.size = 12345;
    m.etag = "0123456789abcdef0123456789abcdef";
    m.content_type = "text/plain";
    struct mc_kv kv[2] = {{"color", "blue"}, {"shape", "round"}};
    m.user_meta = kv;
    m.n_user_meta = 2;
    m.storage_class = "STANDARD";
    uint32_t dist[3] = {2, 0, 1};
    m.erasure = (struct mc_erasure){2, 1, 4096, 3, dist};
    m.data_dir = "dd-1";
    struct mc_part parts[2] = {{1, 100, "p1"}, {2, 200, "p2"}};
    m.parts = parts;
    m.n_parts = 2;
    m.checksum_algorithm = "CRC32C";
    m.checksum_value = "abcd";
    uint8_t data[40];
    memset(data, 'i', sizeof(data));
    m.inline_data = data;
    m.inline_len = sizeof(data);
    struct mc_op op = {0};
    char vid[17];
    te_next_vid(vid);
    cr_assert_eq(mc_op_put(&op, bucket, key, vid, 7, &m), 0);
    struct mc_op_result r;
    cr_assert_eq(te_apply(&op, &r), 0);
    cr_assert_eq(r.code, 0, "%s", mc_error_name(r.code));
}

/* A sink that counts its calls and hands out one buffer (NULL: nowhere to write). */
struct sink {
    struct mc_wbuf *w;
    int calls;
};

static struct mc_wbuf *sink_count(void *ctx)
{
    struct sink *s = ctx;
    s->calls++;
    return s->w;
}

static void fill(void)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    const char *keys[] = {"a", "a/1", "a/2", "b", "b/x/1", "c", "c/1", "d"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        put_full("bkt", keys[i]);
    }
    put_full("bkt", "a");                            /* a second version of "a" */
    cr_assert_eq(te_del("bkt", "c", NULL, NULL), 0); /* "c": latest is a marker */
    /* A long key (hashed sort key): listed from the record's full key. */
    char lk[600];
    memset(lk, 'z', sizeof(lk) - 1);
    lk[sizeof(lk) - 1] = 0;
    put_full("bkt", lk);
}

/* List into a buffer that already holds 3 bytes; check the prefix is kept and that decoding then
 * re-encoding with mc_list_result_encode gives the same bytes. Returns the decoded result. */
static void check_wire(const struct mc_list_params *p, bool versions, struct mc_list_result *out)
{
    struct mc_wbuf w, re;
    mc_wbuf_init(&w, 0);
    mc_wbuf_init(&re, 0);
    mc_wbuf_put(&w, "HDR", 3);
    struct sink s = {.w = &w};
    cr_assert_eq(mc_engine_list_encode_to(te_eng, "bkt", p, versions, sink_count, &s), 0, "%s",
                 mc_engine_last_error());
    cr_assert_eq(s.calls, 1, "an accepted listing asks for its buffer once");
    cr_assert(w.len > 3 && !memcmp(w.data, "HDR", 3));
    cr_assert_eq(mc_list_result_decode(w.data + 3, w.len - 3, out), 0);
    cr_assert_eq(out->is_versions, versions);
    cr_assert_eq(mc_list_result_encode(out, &re), 0);
    cr_assert_eq(re.len, w.len - 3, "re-encoded %zu bytes, listed %zu", re.len, w.len - 3);
    cr_assert(!memcmp(re.data, w.data + 3, re.len), "the wire form differs from the encoder's");
    for (uint32_t i = 0; i < out->n_entries; i++) {
        cr_assert_eq(out->entries[i].meta.inline_len, 0, "inline data is never listed");
        cr_assert_str_eq(out->entries[i].bucket, "bkt");
    }
    mc_wbuf_free(&w);
    mc_wbuf_free(&re);
}

Test(engine_list_wire, same_bytes_as_the_encoder)
{
    fill();
    struct mc_list_result r;

    struct mc_list_params all = {0};
    check_wire(&all, false, &r);
    cr_assert_eq(r.n_entries, 8, "c is hidden (a delete marker is its latest)");
    cr_assert_str_eq(r.entries[0].key, "a");
    cr_assert(r.entries[0].is_latest);
    /* What S3 listings carry is there; the collections and inline data are left out. */
    const struct mc_object_meta *m = &r.entries[0].meta;
    cr_assert_eq(m->size, 12345);
    cr_assert_str_eq(m->etag, "0123456789abcdef0123456789abcdef");
    cr_assert_str_eq(m->content_type, "text/plain");
    cr_assert_str_eq(m->storage_class, "STANDARD");
    cr_assert_str_eq(m->data_dir, "dd-1");
    cr_assert_str_eq(m->checksum_algorithm, "CRC32C");
    cr_assert_str_eq(m->checksum_value, "abcd");
    cr_assert_eq(m->erasure.data_blocks, 2);
    cr_assert_eq(m->erasure.block_size, 4096);
    cr_assert_eq(m->n_user_meta, 0);
    cr_assert_eq(m->n_parts, 0);
    cr_assert_eq(m->erasure.n_distribution, 0);
    cr_assert_neq(r.entries[0].mod_time_ns, 0);
    cr_assert_neq(r.entries[0].seq, 0);
    cr_assert_eq(strlen(r.entries[7].key), 599, "the long key, in full");
    mc_list_result_clear(&r);

    struct mc_list_params d = {.delimiter = "/", .max_keys = 3};
    check_wire(&d, false, &r);
    cr_assert_eq(r.n_entries, 2, "a and b");
    cr_assert_eq(r.n_prefixes, 1);
    cr_assert_str_eq(r.common_prefixes[0], "a/");
    cr_assert(r.is_truncated);
    cr_assert(r.next_continuation_token);
    struct mc_list_params d2 = {.delimiter = "/", .continuation_token = r.next_continuation_token};
    struct mc_list_result r2;
    check_wire(&d2, false, &r2);
    cr_assert_eq(r2.n_prefixes, 2);
    cr_assert_str_eq(r2.common_prefixes[0], "b/");
    cr_assert_str_eq(r2.common_prefixes[1], "c/");
    cr_assert_eq(r2.n_entries, 2, "d and the long key");
    cr_assert(!r2.is_truncated && !r2.next_continuation_token);
    mc_list_result_clear(&r2);
    mc_list_result_clear(&r);

    check_wire(&all, true, &r);
    cr_assert_eq(r.n_entries, 11);
    cr_assert(r.entries[0].is_latest && !r.entries[1].is_latest, "a: newest first");
    mc_list_result_clear(&r);

    struct mc_list_params v = {.prefix = "a", .max_keys = 2};
    check_wire(&v, true, &r);
    cr_assert(r.is_truncated);
    cr_assert_str_eq(r.next_key_marker, "a");
    cr_assert_str_eq(r.next_version_id_marker, r.entries[1].version_id);
    struct mc_list_params v2 = {.prefix = "a",
                                .key_marker = r.next_key_marker,
                                .version_id_marker = r.next_version_id_marker};
    check_wire(&v2, true, &r2);
    cr_assert_eq(r2.n_entries, 2);
    cr_assert_str_eq(r2.entries[0].key, "a/1");
    cr_assert(r2.entries[0].is_latest);
    mc_list_result_clear(&r2);
    mc_list_result_clear(&r);

    struct mc_list_params vd = {.delimiter = "/", .max_keys = 3};
    check_wire(&vd, true, &r);
    cr_assert_str_eq(r.next_key_marker, "a/", "truncated after a prefix: the prefix");
    cr_assert(!r.next_version_id_marker);
    mc_list_result_clear(&r);
}

Test(engine_list_wire, errors_leave_the_buffer_as_it_was)
{
    fill();
    struct {
        struct mc_list_params p;
        const char *bucket;
        bool versions;
        int code;
        const char *message;
    } cases[] = {
        {{.continuation_token = "zz"}, "bkt", false, MC_EBADTOKEN, "malformed continuation token"},
        {{.max_keys = -1}, "bkt", false, MC_EINVAL, "max-keys must not be negative"},
        /* After another refusal: its message must not stand in for this one's. */
        {{0}, "nosuchbucket", false, MC_ENOBUCKET, "the bucket does not exist"},
        {{0}, "nosuchbucket", true, MC_ENOBUCKET, "the bucket does not exist"},
        {{.version_id_marker = "x"}, "bkt", true, MC_EINVAL, "version-id-marker needs key-marker"},
        /* Not an op-time id: no position to resume at (list.c marker_gone). */
        {{.key_marker = "a", .version_id_marker = "nosuchversion"},
         "bkt",
         true,
         MC_ENOVERSION,
         "version-id-marker nosuchversion of key-marker not found (not an op-time id)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mc_wbuf w;
        mc_wbuf_init(&w, 0);
        mc_wbuf_put(&w, "HDR", 3);
        struct sink s = {.w = &w};
        int rc = mc_engine_list_encode_to(te_eng, cases[i].bucket, &cases[i].p, cases[i].versions,
                                          sink_count, &s);
        cr_assert_neq(rc, 0, "case %zu", i);
        if (cases[i].code) {
            cr_assert_eq(rc, cases[i].code, "case %zu: %s", i, mc_error_name(rc));
        }
        cr_assert_eq(s.calls, 0, "case %zu: refused before asking for a buffer", i);
        cr_assert_str_eq(mc_engine_last_error(), cases[i].message, "case %zu", i);
        cr_assert_eq(
            mc_engine_list_encode(te_eng, cases[i].bucket, &cases[i].p, cases[i].versions, &w), rc,
            "case %zu: both calls refuse alike", i);
        cr_assert_eq(w.len, 3, "case %zu", i);
        mc_wbuf_free(&w);
    }
    /* Accepted, but nowhere to write: nothing listed. */
    struct sink none = {0};
    struct mc_list_params all = {0};
    cr_assert_eq(mc_engine_list_encode_to(te_eng, "bkt", &all, false, sink_count, &none),
                 MC_ESHUTDOWN);
    cr_assert_eq(none.calls, 1);
    /* The buffer's limit is hit mid-page: the partial listing is taken back out. */
    struct mc_wbuf w;
    mc_wbuf_init(&w, 600);
    mc_wbuf_put(&w, "HDR", 3);
    struct mc_list_params p = {0};
    cr_assert_eq(mc_engine_list_encode(te_eng, "bkt", &p, false, &w), MC_ETOOLARGE);
    cr_assert_eq(w.len, 3);
    mc_wbuf_free(&w);
}

/* Entries with every short string at its maximum (~7 KiB listed each): a page stops at
 * MC_LIST_PAGE_BYTES, truncated, and paging still visits every key once, in order. */
Test(engine_list_wire, page_stops_at_the_byte_budget, .timeout = 120)
{
    cr_assert_eq(te_bucket("big", MC_VERSIONING_UNVERSIONED), 0);
    static char str[MC_SHORT_STR_MAX + 1];
    memset(str, 's', MC_SHORT_STR_MAX);
    enum { N = 400 };
    struct mc_object_meta m = {0};
    m.etag = m.content_type = m.storage_class = m.data_dir = str;
    m.checksum_algorithm = m.checksum_value = str;
    struct mc_op *ops = calloc(N, sizeof(*ops));
    struct mc_op_result *res = calloc(N, sizeof(*res));
    for (int i = 0; i < N; i++) {
        char key[1100];
        memset(key, 'k', 1000);
        snprintf(key + 1000, 100, "%04d", i);
        cr_assert_eq(mc_op_put(&ops[i], "big", key, NULL, 9, &m), 0);
    }
    cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, N, NULL, 0, res), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].code, 0);
        mc_op_clear(&ops[i]);
    }
    free(ops);
    free(res);

    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    struct mc_list_params p = {0};
    cr_assert_eq(mc_engine_list_encode(te_eng, "big", &p, false, &w), 0);
    cr_assert(w.len <= MC_LIST_PAGE_BYTES + 16 * 1024, "a page of %zu bytes", w.len);
    struct mc_list_result r;
    cr_assert_eq(mc_list_result_decode(w.data, w.len, &r), 0);
    cr_assert(r.n_entries > 100 && r.n_entries < N, "%u entries", r.n_entries);
    cr_assert(r.is_truncated && r.next_continuation_token);
    uint32_t first = r.n_entries;
    mc_list_result_clear(&r);
    mc_wbuf_free(&w);

    int seen = 0;
    char *tok = NULL;
    for (int pages = 0; pages < 10; pages++) {
        struct mc_list_params pp = {.continuation_token = tok};
        cr_assert_eq(mc_engine_list_objects(te_eng, "big", &pp, &r), 0);
        for (uint32_t i = 0; i < r.n_entries; i++, seen++) {
            cr_assert_eq(atoi(r.entries[i].key + 1000), seen, "key order across pages");
        }
        free(tok);
        tok = r.next_continuation_token ? strdup(r.next_continuation_token) : NULL;
        mc_list_result_clear(&r);
        if (!tok) {
            break;
        }
    }
    cr_assert_eq(seen, N);
    cr_assert(first < N);
    /* Versions listing: the same budget. */
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_engine_list_encode(te_eng, "big", &p, true, &w), 0);
    cr_assert(w.len <= MC_LIST_PAGE_BYTES + 16 * 1024);
    cr_assert_eq(mc_list_result_decode(w.data, w.len, &r), 0);
    cr_assert(r.is_truncated && r.next_key_marker && r.n_entries < N);
    mc_list_result_clear(&r);
    mc_wbuf_free(&w);
}

/* ListObjectsV2 of an unversioned bucket walks its versions table, of a versioned one the objects
 * index: the same keys list the same way (prefix, delimiter, start-after, pages, long keys). */
Test(engine_list_wire, unversioned_walk_lists_as_the_index)
{
    cr_assert_eq(te_bucket("unv", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_bucket("ver", MC_VERSIONING_ENABLED), 0);
    char lk[600];
    memset(lk, 'q', sizeof(lk) - 1);
    lk[sizeof(lk) - 1] = 0;
    const char *keys[] = {"a", "a/1", "a/2/x", "b", "b/1", "c", "c/1/2", "d/", "e", lk};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        cr_assert_eq(te_put("unv", keys[i], "e", NULL), 0);
        cr_assert_eq(te_put("unv", keys[i], "e2", NULL), 0); /* an overwrite: still one */
        cr_assert_eq(te_put("ver", keys[i], "e", NULL), 0);
        cr_assert_eq(te_put("ver", keys[i], "e2", NULL), 0);
    }
    cr_assert_eq(te_put("ver", "gone", "e", NULL), 0);
    cr_assert_eq(te_del("ver", "gone", NULL, NULL), 0); /* hidden by its marker */
    cr_assert_eq(te_put("unv", "gone", "e", NULL), 0);
    cr_assert_eq(te_del("unv", "gone", NULL, NULL), 0); /* removed */
    struct mc_list_params ps[] = {
        {0},
        {.delimiter = "/"},
        {.prefix = "a/", .delimiter = "/"},
        {.start_after = "b"},
        {.prefix = "c"},
        {.max_keys = 1},
        {.max_keys = 3, .delimiter = "/"},
    };
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        char *tu = NULL, *tv = NULL;
        for (int page = 0; page < 20; page++) {
            struct mc_list_params pu = ps[i], pv = ps[i];
            pu.continuation_token = tu;
            pv.continuation_token = tv;
            struct mc_list_result ru, rv;
            cr_assert_eq(mc_engine_list_objects(te_eng, "unv", &pu, &ru), 0);
            cr_assert_eq(mc_engine_list_objects(te_eng, "ver", &pv, &rv), 0);
            cr_assert_eq(ru.n_entries, rv.n_entries, "params %zu page %d", i, page);
            cr_assert_eq(ru.n_prefixes, rv.n_prefixes, "params %zu page %d", i, page);
            cr_assert_eq(ru.is_truncated, rv.is_truncated);
            for (uint32_t j = 0; j < ru.n_entries; j++) {
                cr_assert_str_eq(ru.entries[j].key, rv.entries[j].key);
                cr_assert_str_eq(ru.entries[j].meta.etag, "e2");
                cr_assert(ru.entries[j].is_latest);
            }
            for (uint32_t j = 0; j < ru.n_prefixes; j++) {
                cr_assert_str_eq(ru.common_prefixes[j], rv.common_prefixes[j]);
            }
            free(tu);
            free(tv);
            tu = ru.next_continuation_token ? strdup(ru.next_continuation_token) : NULL;
            tv = rv.next_continuation_token ? strdup(rv.next_continuation_token) : NULL;
            mc_list_result_clear(&ru);
            mc_list_result_clear(&rv);
            if (!tu) {
                cr_assert_null(tv);
                break;
            }
        }
    }
}
