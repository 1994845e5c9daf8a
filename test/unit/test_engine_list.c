/* test_engine_list.c: ListObjectsV2 / ListObjectVersions semantics, paging, tokens, O(page) cost.
 */
#include "test_engine_util.h"

TestSuite(engine_list, .init = te_setup, .fini = te_teardown, .timeout = 120);

/* Put many keys in large batches (one apply per ≤ 4000 ops). */
static void put_many(const char *bucket, char **keys, size_t n)
{
    size_t i = 0;
    struct mc_object_meta m = {.etag = "e", .size = 1};
    while (i < n) {
        size_t b = n - i < 4000 ? n - i : 4000;
        struct mc_op *ops = calloc(b, sizeof(*ops));
        struct mc_op_result *res = calloc(b, sizeof(*res));
        for (size_t j = 0; j < b; j++) {
            char vid[17];
            te_next_vid(vid);
            mc_op_put(&ops[j], bucket, keys[i + j], vid, 5, &m);
        }
        cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, b, NULL, 0, res), 0, "%s",
                     mc_engine_last_error());
        for (size_t j = 0; j < b; j++) {
            cr_assert_eq(res[j].code, 0, "put %s: %s", keys[i + j], mc_error_name(res[j].code));
            mc_op_clear(&ops[j]);
        }
        free(ops);
        free(res);
        i += b;
    }
}

static void put_keys(const char *bucket, const char **keys, size_t n)
{
    put_many(bucket, (char **)keys, n);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(engine_list, prefix_delimiter_start_after)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    const char *keys[] = {"a.txt",
                          "photos/",
                          "photos/2023/a.jpg",
                          "photos/2023/b.jpg",
                          "photos/x.jpg",
                          "photosphere",
                          "videos/v1.mp4",
                          "videos/v2.mp4",
                          "z",
                          "docs/r/a.txt",
                          "docs/b.txt"};
    put_keys("bkt", keys, sizeof(keys) / sizeof(keys[0]));

    struct mc_list_result r;
    struct mc_list_params p = {.delimiter = "/"};
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    /* objects: a.txt photosphere z; prefixes: docs/ photos/ videos/ */
    cr_assert_eq(r.n_entries, 3);
    cr_assert_str_eq(r.entries[0].key, "a.txt");
    cr_assert_str_eq(r.entries[1].key, "photosphere");
    cr_assert_str_eq(r.entries[2].key, "z");
    cr_assert_eq(r.n_prefixes, 3);
    cr_assert_str_eq(r.common_prefixes[0], "docs/");
    cr_assert_str_eq(r.common_prefixes[1], "photos/", "key 'photos/' rolls into its prefix");
    cr_assert_str_eq(r.common_prefixes[2], "videos/");
    cr_assert_eq(r.key_count, 6);
    cr_assert(!r.is_truncated);
    char *js = mc_list_result_json(&r, MC_JSON_COMPACT);
    cr_assert(strstr(js, "\"common_prefixes\":[\"docs/\",\"photos/\",\"videos/\"],\"key_count\":6,"
                         "\"is_truncated\":false,\"next_continuation_token\":null"),
              "%s", js);
    cr_assert(strstr(js, "{\"objects\":[{\"key\":\"a.txt\",\"size\":1,\"etag\":\"e\","
                         "\"version_id\":\"null\",\"mod_time_ns\":5}"),
              "%s", js);
    free(js);
    mc_list_result_clear(&r);

    /* With prefix "photos/": the key "photos/" is an object; 2023/ a prefix. */
    p.prefix = "photos/";
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_entries, 2);
    cr_assert_str_eq(r.entries[0].key, "photos/");
    cr_assert_str_eq(r.entries[1].key, "photos/x.jpg");
    cr_assert_eq(r.n_prefixes, 1);
    cr_assert_str_eq(r.common_prefixes[0], "photos/2023/");
    mc_list_result_clear(&r);

    /* Prefix without delimiter. */
    p.prefix = "photos";
    p.delimiter = NULL;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_entries, 5);
    cr_assert_str_eq(r.entries[4].key, "photosphere");
    mc_list_result_clear(&r);

    /* start-after is exclusive. */
    p.prefix = NULL;
    p.start_after = "photos/x.jpg";
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_str_eq(r.entries[0].key, "photosphere");
    cr_assert_eq(r.n_entries, 4);
    mc_list_result_clear(&r);
    p.start_after = "b";
    p.delimiter = "/";
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_prefixes, 3);
    cr_assert_eq(r.n_entries, 2);
    mc_list_result_clear(&r);

    /* Common prefix counts once against max-keys. */
    p.start_after = NULL;
    p.max_keys = 2;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.key_count, 2);
    cr_assert_str_eq(r.entries[0].key, "a.txt");
    cr_assert_str_eq(r.common_prefixes[0], "docs/");
    cr_assert(r.is_truncated);
    cr_assert_not_null(r.next_continuation_token);
    struct mc_list_params p2 = {
        .delimiter = "/", .max_keys = 2, .continuation_token = r.next_continuation_token};
    struct mc_list_result r2;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p2, &r2), 0);
    cr_assert_eq(r2.n_prefixes, 1);
    cr_assert_str_eq(r2.common_prefixes[0], "photos/", "resumes after docs/ without repeating it");
    cr_assert_str_eq(r2.entries[0].key, "photosphere");
    mc_list_result_clear(&r2);
    mc_list_result_clear(&r);

    /* Multi-character delimiter. */
    struct mc_list_params p3 = {.delimiter = "/2023/"};
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p3, &r), 0);
    cr_assert_eq(r.n_prefixes, 1);
    cr_assert_str_eq(r.common_prefixes[0], "photos/2023/");
    cr_assert_eq(r.n_entries, 9);
    mc_list_result_clear(&r);
}

Test(engine_list, bad_params)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    const char *keys[] = {"a", "b", "c"};
    put_keys("bkt", keys, 3);
    struct mc_list_result r;
    struct mc_list_params p = {.max_keys = -1};
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), MC_EINVAL);
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), MC_EINVAL);
    p.max_keys = 5000; /* clamped to 1000 */
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_entries, 3);
    mc_list_result_clear(&r);
    p.max_keys = 0;
    cr_assert_eq(mc_engine_list_objects(te_eng, "nob", &p, &r), MC_ENOBUCKET);

    const char *bad[] = {"", "zz", "0102", "not-hex!", "0101"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p.continuation_token = bad[i];
        cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), MC_EBADTOKEN, "%s", bad[i]);
    }
    /* A real token with one flipped or dropped character is rejected. */
    p.continuation_token = NULL;
    p.max_keys = 1;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    char *tok = strdup(r.next_continuation_token);
    mc_list_result_clear(&r);
    for (size_t i = 0; i < strlen(tok); i++) {
        char save = tok[i];
        tok[i] = save == '0' ? '1' : '0';
        p.continuation_token = tok;
        cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), MC_EBADTOKEN, "flip %zu", i);
        tok[i] = save;
    }
    tok[strlen(tok) - 2] = 0;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), MC_EBADTOKEN);
    free(tok);
    /* version-id-marker without key-marker */
    struct mc_list_params pv = {.version_id_marker = "x"};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pv, &r), MC_EINVAL);
    char longd[100];
    memset(longd, '/', 99);
    longd[99] = 0;
    struct mc_list_params pd = {.delimiter = longd};
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &pd, &r), MC_EINVAL);
}

/* Page through with max_keys 7 and check the concatenation equals the expected sequence. */
static void page_all(const char *delim, char **expect, size_t n_expect)
{
    size_t got = 0;
    char *token = NULL;
    int pages = 0;
    for (;;) {
        struct mc_list_params p = {.delimiter = delim, .max_keys = 7, .continuation_token = token};
        struct mc_list_result r;
        cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
        pages++;
        /* merge entries and prefixes in order */
        uint32_t ei = 0, pi = 0;
        cr_assert_leq(r.key_count, 7);
        while (ei < r.n_entries || pi < r.n_prefixes) {
            const char *next;
            if (pi >= r.n_prefixes ||
                (ei < r.n_entries && strcmp(r.entries[ei].key, r.common_prefixes[pi]) < 0)) {
                next = r.entries[ei++].key;
            } else {
                next = r.common_prefixes[pi++];
            }
            cr_assert_lt(got, n_expect, "more items than expected");
            cr_assert_str_eq(next, expect[got], "item %zu", got);
            got++;
        }
        free(token);
        token = r.next_continuation_token ? strdup(r.next_continuation_token) : NULL;
        bool trunc = r.is_truncated;
        mc_list_result_clear(&r);
        if (!trunc) {
            break;
        }
        cr_assert_not_null(token);
    }
    free(token);
    cr_assert_eq(got, n_expect, "every key exactly once");
    cr_assert_geq(pages, (int)(n_expect / 7));
}

Test(engine_list, paging_10000_keys)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    size_t n = 10000;
    char **keys = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(40);
        if (i % 3 == 0) {
            snprintf(keys[i], 40, "top-%05zu", i);
        } else {
            snprintf(keys[i], 40, "d%03zu/f%05zu", i % 157, i);
        }
    }
    put_many("bkt", keys, n);
    qsort(keys, n, sizeof(char *), cmpstr);
    page_all(NULL, keys, n);

    /* Expected with "/": top-level keys + one prefix per directory, sorted. */
    char **ex = calloc(n, sizeof(char *));
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        char *slash = strchr(keys[i], '/');
        char buf[40];
        if (slash) {
            snprintf(buf, sizeof(buf), "%.*s", (int)(slash - keys[i] + 1), keys[i]);
        } else {
            snprintf(buf, sizeof(buf), "%s", keys[i]);
        }
        if (ne == 0 || strcmp(ex[ne - 1], buf)) {
            ex[ne++] = strdup(buf);
        }
    }
    page_all("/", ex, ne);
    for (size_t i = 0; i < ne; i++) {
        free(ex[i]);
    }
    free(ex);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

Test(engine_list, rollup_costs_o_page)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    size_t nbig = 100000, nsmall = 100;
    char **keys = calloc(nbig + nsmall + 4, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < nbig; i++) {
        keys[n] = malloc(32);
        snprintf(keys[n++], 32, "big/%06zu", i);
    }
    for (size_t i = 0; i < nsmall; i++) {
        keys[n] = malloc(32);
        snprintf(keys[n++], 32, "small/%03zu", i);
    }
    const char *extra[] = {"a", "c", "m", "z"};
    for (size_t i = 0; i < 4; i++) {
        keys[n++] = strdup(extra[i]);
    }
    put_many("bkt", keys, n);

    struct mc_list_params p = {.delimiter = "/", .max_keys = 10};
    struct mc_list_result r;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.key_count, 6);
    cr_assert_str_eq(r.common_prefixes[0], "big/");
    cr_assert_str_eq(r.common_prefixes[1], "small/");
    uint64_t steps_all = r.cursor_steps;
    cr_assert_lt(steps_all, 10 * 10, "100,000 rolled-up keys must cost O(page): %llu steps",
                 (unsigned long long)steps_all);
    mc_list_result_clear(&r);

    /* Rolling up just the 100-key prefix costs about the same. */
    p.prefix = "small";
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_prefixes, 1);
    uint64_t steps_small = r.cursor_steps;
    mc_list_result_clear(&r);
    p.prefix = "big";
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_prefixes, 1);
    cr_assert_str_eq(r.common_prefixes[0], "big/");
    cr_assert_leq(r.cursor_steps, steps_small + 2, "big=%llu small=%llu",
                  (unsigned long long)r.cursor_steps, (unsigned long long)steps_small);
    mc_list_result_clear(&r);

    /* The versions listing too. */
    struct mc_list_params pv = {.delimiter = "/", .max_keys = 10};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pv, &r), 0);
    cr_assert_eq(r.key_count, 6);
    cr_assert_lt(r.cursor_steps, 100);
    mc_list_result_clear(&r);

    /* A page inside the big prefix costs O(page), not O(position). */
    p.prefix = "big/";
    p.delimiter = NULL;
    p.start_after = "big/090000";
    p.max_keys = 50;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_entries, 50);
    cr_assert_str_eq(r.entries[0].key, "big/090001");
    cr_assert_lt(r.cursor_steps, 10 * 50);
    mc_list_result_clear(&r);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

Test(engine_list, versions_listing_and_markers)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    /* k1: 3 versions, k2: put + marker, k3: 1 version */
    struct mc_op_result r;
    char ids[3][MC_VERSION_ID_MAX + 1];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(te_put("bkt", "k1", "e", &r), 0);
        strcpy(ids[i], r.version_id);
    }
    cr_assert_eq(te_put("bkt", "k2", "e", NULL), 0);
    cr_assert_eq(te_del("bkt", "k2", NULL, NULL), 0);
    cr_assert_eq(te_put("bkt", "k3", "e", NULL), 0);

    struct mc_list_result lr;
    struct mc_list_params p = {0};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 6);
    cr_assert_str_eq(lr.entries[0].version_id, ids[2], "newest first");
    cr_assert(lr.entries[0].is_latest);
    cr_assert_str_eq(lr.entries[1].version_id, ids[1]);
    cr_assert(!lr.entries[1].is_latest);
    cr_assert_str_eq(lr.entries[2].version_id, ids[0]);
    cr_assert_str_eq(lr.entries[3].key, "k2");
    cr_assert(lr.entries[3].is_delete_marker && lr.entries[3].is_latest);
    cr_assert(!lr.entries[4].is_delete_marker && !lr.entries[4].is_latest);
    cr_assert_str_eq(lr.entries[5].key, "k3");
    char *js = mc_list_result_json(&lr, MC_JSON_COMPACT);
    cr_assert(strstr(js, "{\"versions\":[{\"key\":\"k1\",\"version_id\":"), "%s", js);
    cr_assert(strstr(js, "\"is_latest\":true,\"is_delete_marker\":true"), "%s", js);
    cr_assert(strstr(js, "\"next_key_marker\":null,\"next_version_id_marker\":null"), "%s", js);
    free(js);
    mc_list_result_clear(&lr);

    /* ListObjectsV2 hides k2 (latest is a marker). */
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 2);
    cr_assert_str_eq(lr.entries[0].key, "k1");
    cr_assert_str_eq(lr.entries[1].key, "k3");
    mc_list_result_clear(&lr);

    /* Page with max_keys 2 via key-marker + version-id-marker. */
    const char *expect_keys[] = {"k1", "k1", "k1", "k2", "k2", "k3"};
    bool expect_latest[] = {true, false, false, true, false, true};
    char *km = NULL, *vm = NULL;
    int got = 0;
    for (;;) {
        struct mc_list_params pp = {.max_keys = 2, .key_marker = km, .version_id_marker = vm};
        cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pp, &lr), 0);
        for (uint32_t i = 0; i < lr.n_entries; i++, got++) {
            cr_assert_str_eq(lr.entries[i].key, expect_keys[got]);
            cr_assert_eq(lr.entries[i].is_latest, expect_latest[got], "entry %d", got);
        }
        free(km);
        free(vm);
        km = lr.next_key_marker ? strdup(lr.next_key_marker) : NULL;
        vm = lr.next_version_id_marker ? strdup(lr.next_version_id_marker) : NULL;
        bool t = lr.is_truncated;
        mc_list_result_clear(&lr);
        if (!t) {
            break;
        }
    }
    cr_assert_eq(got, 6);
    free(km);
    free(vm);

    /* key-marker alone: strictly after that key's versions. */
    struct mc_list_params pk = {.key_marker = "k1"};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pk, &lr), 0);
    cr_assert_eq(lr.n_entries, 3);
    cr_assert_str_eq(lr.entries[0].key, "k2");
    mc_list_result_clear(&lr);
    /* Unknown version-id-marker */
    pk.version_id_marker = "nope";
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pk, &lr), MC_ENOVERSION);
}

Test(engine_list, versions_with_delimiter_paging)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    const char *keys[] = {"a/1", "a/2", "b", "c/1", "d"};
    for (int rep = 0; rep < 2; rep++) {
        put_keys("bkt", keys, 5);
    }
    const char *expect[] = {"a/", "b", "b", "c/", "d", "d"};
    char *km = NULL, *vm = NULL;
    int got = 0;
    for (;;) {
        struct mc_list_params pp = {
            .max_keys = 1, .delimiter = "/", .key_marker = km, .version_id_marker = vm};
        struct mc_list_result lr;
        cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pp, &lr), 0);
        cr_assert_eq(lr.key_count, 1);
        const char *item = lr.n_entries ? lr.entries[0].key : lr.common_prefixes[0];
        cr_assert_str_eq(item, expect[got], "item %d", got);
        got++;
        free(km);
        free(vm);
        km = lr.next_key_marker ? strdup(lr.next_key_marker) : NULL;
        vm = lr.next_version_id_marker ? strdup(lr.next_version_id_marker) : NULL;
        bool t = lr.is_truncated;
        mc_list_result_clear(&lr);
        if (!t) {
            break;
        }
    }
    cr_assert_eq(got, 6);
    free(km);
    free(vm);
}

Test(engine_list, long_keys_sort_bytewise)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    /* Keys longer than LMDB's 511-byte limit that share their first 400+ bytes. */
    size_t n = 40;
    char **keys = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(1100);
        size_t len = 370 + (i * 37) % 650;
        memset(keys[i], 'x', len);
        keys[i][len] = 0;
        /* vary a byte late in the key */
        keys[i][len - 1] = (char)('a' + (i * 7) % 26);
        if (i % 5 == 0) {
            keys[i][200] = 'y'; /* another group */
        }
    }
    keys[n - 1][1024] = 0;
    memset(keys[n - 1], 'z', 1024); /* a 1024-byte key */
    put_many("bkt", keys, n);
    put_many("bkt", keys, n); /* two versions each */
    qsort(keys, n, sizeof(char *), cmpstr);
    /* dedupe (identical keys possible) */
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || strcmp(keys[u - 1], keys[i])) {
            keys[u++] = keys[i];
        } else {
            free(keys[i]);
        }
    }
    page_all(NULL, keys, u);

    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", keys[u - 1], NULL, false, &v), 0);
    cr_assert_str_eq(v.key, keys[u - 1]);
    mc_version_clear(&v);

    /* Versions listing in order, newest first, with paging by markers. */
    char *km = NULL, *vm = NULL;
    size_t got = 0;
    char prev[1100] = "";
    for (;;) {
        struct mc_list_params pp = {.max_keys = 3, .key_marker = km, .version_id_marker = vm};
        struct mc_list_result lr;
        cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &pp, &lr), 0);
        for (uint32_t i = 0; i < lr.n_entries; i++, got++) {
            cr_assert_str_eq(lr.entries[i].key, keys[got / 2]);
            cr_assert_eq(lr.entries[i].is_latest, got % 2 == 0);
            if (got % 2) {
                cr_assert_str_eq(prev, keys[got / 2]);
            }
            strcpy(prev, lr.entries[i].key);
        }
        free(km);
        free(vm);
        km = lr.next_key_marker ? strdup(lr.next_key_marker) : NULL;
        vm = lr.next_version_id_marker ? strdup(lr.next_version_id_marker) : NULL;
        bool t = lr.is_truncated;
        mc_list_result_clear(&lr);
        if (!t) {
            break;
        }
    }
    cr_assert_eq(got, 2 * u);
    free(km);
    free(vm);

    /* Delete every version of one long key: it leaves the listing. */
    cr_assert_eq(te_del("bkt", keys[3], NULL, NULL), 0);
    struct mc_list_result lr;
    struct mc_list_params pa = {0};
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &pa, &lr), 0);
    cr_assert_eq(lr.n_entries, u - 1);
    mc_list_result_clear(&lr);
    for (size_t i = 0; i < u; i++) {
        free(keys[i]);
    }
    free(keys);
}

static char *te_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Every page of a delimiter listing of bucket b (objects or versions): the common prefixes, with
 * the first `strip` bytes cut off, joined by ','; *max_steps = the most cursor steps of a page. */
static char *list_prefixes(const char *b, bool versions, size_t strip, uint64_t *max_steps)
{
    size_t cap = 1 << 20, len = 0;
    char *all = calloc(1, cap);
    char *tok = NULL, *km = NULL, *vm = NULL;
    *max_steps = 0;
    for (int page = 0; page < 100; page++) {
        struct mc_list_params p = {.delimiter = "/", .max_keys = 1000};
        p.continuation_token = tok;
        p.key_marker = km;
        p.version_id_marker = vm;
        struct mc_list_result r;
        int rc = versions ? mc_engine_list_versions(te_eng, b, &p, &r)
                          : mc_engine_list_objects(te_eng, b, &p, &r);
        cr_assert_eq(rc, 0, "%s", mc_engine_last_error());
        if (r.cursor_steps > *max_steps) {
            *max_steps = r.cursor_steps;
        }
        cr_assert_eq(r.n_entries, 0);
        for (uint32_t i = 0; i < r.n_prefixes; i++) {
            size_t pl = strlen(r.common_prefixes[i]);
            cr_assert_geq(pl, strip);
            cr_assert_lt(len + pl - strip + 2, cap);
            len += (size_t)sprintf(all + len, "%s,", r.common_prefixes[i] + strip);
        }
        free(tok);
        free(km);
        free(vm);
        tok = te_strdup(r.next_continuation_token);
        km = te_strdup(r.next_key_marker);
        vm = te_strdup(r.next_version_id_marker);
        bool more = r.is_truncated;
        mc_list_result_clear(&r);
        if (!more) {
            break;
        }
        cr_assert(tok || km, "a truncated page names where to resume");
    }
    free(tok);
    free(km);
    free(vm);
    return all;
}

/* Keys over MC_SORT_DIRECT (360) bytes sharing their first 360 form one group that LMDB orders
 * by hash: a listing that seeks past a common prefix inside the group binary-searches the group
 * it already loaded instead of reloading and re-sorting it per prefix (page x group steps). */
Test(engine_list, long_key_group_rollup_costs_o_group)
{
    const size_t n = 5000, lead_long = 360, lead_short = 10;
    cr_assert_eq(te_bucket("long", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_bucket("short", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_bucket("longu", MC_VERSIONING_UNVERSIONED), 0);
    char **kl = calloc(n, sizeof(char *)), **ks = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        kl[i] = malloc(lead_long + 16);
        memset(kl[i], 'g', lead_long);
        sprintf(kl[i] + lead_long, "d%05zu/x", i);
        ks[i] = malloc(lead_short + 16);
        memset(ks[i], 'g', lead_short);
        sprintf(ks[i] + lead_short, "d%05zu/x", i);
    }
    put_many("long", kl, n);
    put_many("longu", kl, n);
    put_many("short", ks, n);
    for (int versions = 0; versions <= 1; versions++) {
        uint64_t steps_s, steps_l, steps_u;
        char *s = list_prefixes("short", versions, lead_short, &steps_s);
        char *l = list_prefixes("long", versions, lead_long, &steps_l);
        char *u = list_prefixes("longu", versions, lead_long, &steps_u);
        cr_assert_eq(strlen(s), n * strlen("d00000/,"));
        cr_assert_str_eq(l, s, "versions=%d", versions);
        cr_assert_str_eq(u, s, "versions=%d", versions);
        /* One group load per page (n steps) plus O(page): not page x group. */
        cr_assert_leq(steps_l, n + 2 * 1000 + 100, "versions=%d steps=%llu", versions,
                      (unsigned long long)steps_l);
        cr_assert_leq(steps_u, n + 2 * 1000 + 100, "versions=%d steps=%llu", versions,
                      (unsigned long long)steps_u);
        free(s);
        free(l);
        free(u);
    }
    for (size_t i = 0; i < n; i++) {
        free(kl[i]);
        free(ks[i]);
    }
    free(kl);
    free(ks);
}

/* Put b/k as a node does: the version id is the op time (mc_version_id_from_time). */
static void put_timed(const char *b, const char *k, int64_t t, char vid[17])
{
    mc_version_id_from_time(vid, t);
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, b, k, vid, t, NULL), 0);
    cr_assert_eq(te_apply(&op, NULL), 0);
}

static void del_version(const char *b, const char *k, const char *vid)
{
    struct mc_op op;
    cr_assert_eq(mc_op_delete(&op, b, k, vid, NULL, 0), 0);
    cr_assert_eq(te_apply(&op, NULL), 0);
}

/* A version-id-marker whose version was deleted between pages is a position (S3): the listing
 * resumes at the next older version; a malformed marker is InvalidArgument. */
Test(engine_list, versions_marker_deleted_between_pages)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    const int64_t t0 = 1795714511750903813LL;
    char a[5][17], b[2][17];
    for (int i = 0; i < 5; i++) {
        put_timed("bkt", "a", t0 + 10 * i, a[i]);
    }
    for (int i = 0; i < 2; i++) {
        put_timed("bkt", "b", t0 + 100 + i, b[i]);
    }
    struct mc_list_params p = {.max_keys = 2};
    struct mc_list_result r;
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_entries, 2);
    cr_assert_str_eq(r.next_key_marker, "a");
    cr_assert_str_eq(r.next_version_id_marker, a[3]);
    mc_list_result_clear(&r);

    /* The marker (a, a[3]) is deleted: the next page starts at a[2]. */
    del_version("bkt", "a", a[3]);
    p = (struct mc_list_params){.key_marker = "a", .version_id_marker = a[3], .max_keys = 2};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0, "%s", mc_engine_last_error());
    cr_assert_eq(r.n_entries, 2);
    cr_assert_str_eq(r.entries[0].version_id, a[2]);
    cr_assert_str_eq(r.entries[1].version_id, a[1]);
    cr_assert(!r.entries[0].is_latest);
    mc_list_result_clear(&r);

    /* The oldest version of a was the marker: resume at b. */
    del_version("bkt", "a", a[0]);
    p = (struct mc_list_params){.key_marker = "a", .version_id_marker = a[0]};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0, "%s", mc_engine_last_error());
    cr_assert_eq(r.n_entries, 2);
    cr_assert_str_eq(r.entries[0].key, "b");
    cr_assert_str_eq(r.entries[0].version_id, b[1]);
    cr_assert(r.entries[0].is_latest);
    mc_list_result_clear(&r);

    /* Every version of a gone: resume at b as well. */
    for (int i = 1; i < 5; i++) {
        if (i != 3) {
            del_version("bkt", "a", a[i]);
        }
    }
    p = (struct mc_list_params){.key_marker = "a", .version_id_marker = a[4]};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0, "%s", mc_engine_last_error());
    cr_assert_eq(r.n_entries, 2);
    cr_assert_str_eq(r.entries[0].key, "b");
    mc_list_result_clear(&r);

    p = (struct mc_list_params){.key_marker = "a", .version_id_marker = "not an id"};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), MC_EINVAL);
    mc_list_result_clear(&r);
    /* The bucket is checked first (S3: 404 NoSuchBucket whatever the marker holds). */
    cr_assert_eq(mc_engine_list_versions(te_eng, "nob", &p, &r), MC_ENOBUCKET);
    mc_list_result_clear(&r);
    p.version_id_marker = "null"; /* no position to recover */
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), MC_ENOVERSION);
    mc_list_result_clear(&r);
}

/* A gone marker that was the key's newest version leaves the next one the latest; a gone marker
 * among versions with older-format ids (µs + counter, also 16 hex digits) cannot be placed by
 * time: NoSuchVersion as before op-time ids, never a page that skips or repeats versions. */
Test(engine_list, versions_marker_gone_latest_and_old_format_ids)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    const int64_t t0 = 1795714511750903813LL;
    char c[3][17];
    for (int i = 0; i < 3; i++) {
        put_timed("bkt", "c", t0 + 10 * i, c[i]);
    }
    struct mc_list_params p = {.max_keys = 1};
    struct mc_list_result r;
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0);
    cr_assert_str_eq(r.next_version_id_marker, c[2]);
    mc_list_result_clear(&r);
    del_version("bkt", "c", c[2]);
    p = (struct mc_list_params){.key_marker = "c", .version_id_marker = c[2]};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0, "%s", mc_engine_last_error());
    cr_assert_eq(r.n_entries, 2);
    cr_assert_str_eq(r.entries[0].version_id, c[1]);
    cr_assert(r.entries[0].is_latest, "the newest remaining version is the latest");
    cr_assert(!r.entries[1].is_latest);
    mc_list_result_clear(&r);

    /* Older-format ids: te_put makes µs + counter ids, as nodes did before op-time ids. */
    char d[4][MC_VERSION_ID_MAX + 1];
    for (int i = 0; i < 4; i++) {
        struct mc_op_result res;
        cr_assert_eq(te_put("bkt", "d", "e", &res), 0);
        snprintf(d[i], sizeof(d[i]), "%s", res.version_id);
    }
    del_version("bkt", "d", d[2]);
    p = (struct mc_list_params){.key_marker = "d", .version_id_marker = d[2]};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), MC_ENOVERSION, "%s",
                 mc_engine_last_error());
    mc_list_result_clear(&r);
}

/* The listing of key "e" from key-marker e / version-id-marker vm: its version ids in vids
 * (newest first, at most 8); returns the result code. */
static int versions_after(const char *vm, char vids[8][MC_VERSION_ID_MAX + 1], uint32_t *n)
{
    struct mc_list_params p = {.key_marker = "e", .version_id_marker = vm};
    struct mc_list_result r;
    int rc = mc_engine_list_versions(te_eng, "bkt", &p, &r);
    *n = 0;
    for (uint32_t i = 0; rc == 0 && i < r.n_entries && *n < 8; i++) {
        if (strcmp(r.entries[i].key, "e") == 0) {
            snprintf(vids[(*n)++], MC_VERSION_ID_MAX + 1, "%s", r.entries[i].version_id);
        }
    }
    mc_list_result_clear(&r);
    return rc;
}

/* An older-format marker that was the key's oldest version, under op-time versions only: its
 * id read as a time (here above every op time: ids of that form are µs << 20, anywhere in
 * 0..2^64) once placed it above them, so the key's versions repeated on the next page. Present,
 * the listing continues after it; gone, it cannot be placed: NoSuchVersion, never a repeat. */
Test(engine_list, versions_marker_old_format_oldest)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    char old[17];
    mc_version_id_make(old, 1717986918400000LL, 1); /* "1900000000000001" */
    cr_assert_str_eq(old, "1900000000000001");
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, "bkt", "e", old, 5000, NULL), 0);
    cr_assert_eq(te_apply(&op, NULL), 0);
    const int64_t t0 = 1795714511750903813LL;
    char e[3][17];
    for (int i = 0; i < 3; i++) {
        put_timed("bkt", "e", t0 + 10 * i, e[i]);
    }
    put_timed("bkt", "f", t0 + 100, e[0]); /* a later key: the page goes on to it */
    char vids[8][MC_VERSION_ID_MAX + 1];
    uint32_t n;
    cr_assert_eq(versions_after(old, vids, &n), 0, "%s", mc_engine_last_error());
    cr_assert_eq(n, 0, "the marker was e's oldest: nothing of e follows (got %u, first %s)", n,
                 n ? vids[0] : "");
    del_version("bkt", "e", old);
    int rc = versions_after(old, vids, &n);
    cr_assert(rc == MC_ENOVERSION || (rc == 0 && n == 0), "rc %d, %u versions of e repeated: %s",
              rc, n, mc_engine_last_error());
    cr_assert_eq(rc, MC_ENOVERSION, "%s", mc_engine_last_error());
    /* An op-time marker that was the newest, then deleted, is still placed (above e[1]). */
    del_version("bkt", "e", e[2]);
    cr_assert_eq(versions_after(e[2], vids, &n), 0, "%s", mc_engine_last_error());
    cr_assert_eq(n, 2);
    cr_assert_str_eq(vids[0], e[1]);
}

/* Apply puts of b/k at op times t0 + 10 * i for i in [from, to), up to MC_APPLY_MAX_OPS per
 * call (one write transaction each). */
static void put_timed_batch(const char *b, const char *k, int64_t t0, int from, int to)
{
    static struct mc_op ops[MC_APPLY_MAX_OPS];
    static struct mc_op_result res[MC_APPLY_MAX_OPS];
    while (from < to) {
        int n = to - from < MC_APPLY_MAX_OPS ? to - from : MC_APPLY_MAX_OPS;
        for (int i = 0; i < n; i++) {
            char vid[17];
            int64_t t = t0 + 10 * (int64_t)(from + i);
            mc_version_id_from_time(vid, t);
            cr_assert_eq(mc_op_put(&ops[i], b, k, vid, t, NULL), 0);
        }
        cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, (size_t)n, NULL, 0, res), 0, "%s",
                     mc_engine_last_error());
        for (int i = 0; i < n; i++) {
            cr_assert_eq(res[i].code, 0);
            mc_op_clear(&ops[i]);
        }
        from += n;
    }
}

/* Placing a gone version-id-marker reads at most 10,000 versions of key-marker (list.c
 * MARKER_WALK_MAX: the walk runs on the node's loop): with 9,999 newer versions the marker is
 * placed, with 10,000 it is NoSuchVersion, saying why. */
Test(engine_list, versions_marker_gone_walk_cap)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    const int64_t t0 = 1795714511750903813LL;
    put_timed_batch("bkt", "a", t0, 0, 10000); /* v0 .. v9999 */
    char marker[17], v0[17];
    mc_version_id_from_time(marker, t0 + 5); /* between v0 and v1: never stored, so gone */
    mc_version_id_from_time(v0, t0);
    struct mc_list_params p = {.key_marker = "a", .version_id_marker = marker, .max_keys = 2};
    struct mc_list_result r;
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0, "%s", mc_engine_last_error());
    cr_assert_eq(r.n_entries, 1);
    cr_assert_str_eq(r.entries[0].version_id, v0);
    cr_assert(!r.entries[0].is_latest);
    mc_list_result_clear(&r);
    put_timed_batch("bkt", "a", t0, 10000, 10001); /* one more newer version: 10,000 above */
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), MC_ENOVERSION);
    cr_assert(strstr(mc_engine_last_error(), "too many newer versions"), "%s",
              mc_engine_last_error());
    mc_list_result_clear(&r);
    /* The versions themselves still list, and a present marker deep in the key is found. */
    p.version_id_marker = v0;
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0, "%s", mc_engine_last_error());
    cr_assert_eq(r.n_entries, 0);
    mc_list_result_clear(&r);
}
