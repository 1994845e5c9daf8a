/* test_http_json_in.c: the PUT body fast path (src/http/json_in.c) against the engine parser. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const char *body, const struct mc_object_meta *got,
                       const struct mc_object_meta *want)
{
    cr_assert_eq(got->size, want->size, "%s", body);
    cr_assert(same_str(got->etag, want->etag), "etag: %s", body);
    cr_assert(same_str(got->content_type, want->content_type), "content_type: %s", body);
    cr_assert(same_str(got->storage_class, want->storage_class), "storage_class: %s", body);
    cr_assert(same_str(got->data_dir, want->data_dir), "data_dir: %s", body);
    cr_assert_eq(got->n_user_meta, want->n_user_meta, "%s", body);
    for (uint32_t i = 0; i < got->n_user_meta; i++) {
        cr_assert_str_eq(got->user_meta[i].key, want->user_meta[i].key, "%s", body);
        cr_assert_str_eq(got->user_meta[i].value, want->user_meta[i].value, "%s", body);
    }
    cr_assert(!want->n_parts && !want->erasure.n_distribution && !want->inline_len &&
                  !want->checksum_algorithm,
              "%s", body);
}

/* Parse body both ways; returns whether the fast path took it. */
static bool compare(const char *body)
{
    struct mc_object_meta fast, ref;
    bool took = mc_http_meta_from_json_fast(body, strlen(body), &fast);
    int rc = mc_object_meta_from_json(body, strlen(body), &ref);
    if (took) {
        cr_assert_eq(rc, 0, "fast path accepted what the engine refuses (%d): %s", rc, body);
        check_same(body, &fast, &ref);
        mc_object_meta_clear(&fast);
    } else {
        cr_assert_eq(fast.etag, NULL); /* cleared */
        cr_assert_eq(fast.n_user_meta, 0);
    }
    if (rc == 0)
        mc_object_meta_clear(&ref);
    return took;
}

Test(http_json_in, the_benchmark_body_and_plain_cases)
{
    cr_assert(compare("{\"size\":4096,\"etag\":\"0123456789abcdef0123456789abcdef\","
                      "\"content_type\":\"application/octet-stream\","
                      "\"user_metadata\":{\"v\":\"vvvvvvvv\"}}"));
    cr_assert(compare("{}"));
    cr_assert(compare(" { \"size\" : 0 , \"user_metadata\" : { } }\n"));
    cr_assert(compare("{\"storage_class\":\"COLD\",\"data_dir\":\"d1\",\"etag\":\"\"}"));
    /* left to the engine parser */
    static const char *const slow[] = {
        "{\"size\":-1}",
        "{\"size\":01}",
        "{\"size\":1.0}",
        "{\"size\":1e3}",
        "{\"size\":null}",
        "{\"etag\":\"a\\\"b\"}",
        "{\"etag\":\"\xc3\xa9\"}",
        "{\"etag\":5}",
        "{\"size\":1,\"size\":2}",
        "{\"parts\":[]}",
        "{\"bogus\":1}",
        "{\"size\":1} x",
        "{\"size\":1,}",
        "[]",
        "",
        "{\"user_metadata\":{\"a\":\"b\",\"a\":\"c\"}}",
        "{\"user_metadata\":{\"a\":1}}",
        "{\"size\":9223372036854775808}",
    };
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++)
        cr_assert_not(compare(slow[i]), "fast path took %s", slow[i]);
    cr_assert(compare("{\"size\":9223372036854775807}"));
}

/* Random bodies from valid and invalid pieces: whenever the fast path takes one, the engine
 * parser accepts it and yields the same metadata. */
Test(http_json_in, random_bodies_agree_with_the_engine)
{
    static const char *const keys[] = {"\"size\"",          "\"etag\"",     "\"content_type\"",
                                       "\"storage_class\"", "\"data_dir\"", "\"user_metadata\"",
                                       "\"parts\"",         "\"x\""};
    static const char *const vals[] = {"0",
                                       "4096",
                                       "007",
                                       "-3",
                                       "1.5",
                                       "null",
                                       "\"\"",
                                       "\"abc\"",
                                       "\"a b/c\"",
                                       "\"\\u0041\"",
                                       "\"\xff\"",
                                       "{}",
                                       "{\"k\":\"v\"}",
                                       "{\"k\":\"v\",\"k2\":\"\"}",
                                       "{\"k\":\"v\",\"k\":\"w\"}",
                                       "[]",
                                       "true",
                                       "9223372036854775807"};
    static const char *const ws[] = {"", " ", "\n", "\t ", "\r\n"};
    unsigned seed = 11;
    int took = 0, total = 4000;
    for (int it = 0; it < total; it++) {
        char body[2048] = "";
        size_t n = 0;
#define PUT(s) n += (size_t)snprintf(body + n, sizeof body - n, "%s", (s))
        PUT(ws[rand_r(&seed) % 5]);
        PUT("{");
        int members = rand_r(&seed) % 5;
        for (int m = 0; m < members; m++) {
            if (m)
                PUT(rand_r(&seed) % 40 ? "," : ";");
            PUT(ws[rand_r(&seed) % 5]);
            int k = rand_r(&seed) % 8;
            if (k > 5 && rand_r(&seed) % 4)
                k = rand_r(&seed) % 6; /* mostly known keys */
            PUT(keys[k]);
            PUT(ws[rand_r(&seed) % 5]);
            PUT(":");
            int v = rand_r(&seed) % 18;
            /* mostly a value of the key's type */
            if (rand_r(&seed) % 3)
                v = k == 0   ? rand_r(&seed) % 2
                    : k == 5 ? 11 + rand_r(&seed) % 3
                             : 7 + rand_r(&seed) % 2;
            PUT(vals[v]);
            PUT(ws[rand_r(&seed) % 5]);
        }
        PUT(rand_r(&seed) % 30 ? "}" : "");
        PUT(rand_r(&seed) % 30 ? "" : "x");
#undef PUT
        took += compare(body);
    }
    cr_assert_gt(took, total / 5, "the fast path took only %d of %d", took, total);
}

/* What the fast path takes passes the engine's validation too: bodies the engine refuses
 * (empty metadata name, etag or value over its size limit) fall back to the engine parser and
 * are refused there, before Raft, not later at apply. */
Test(http_json_in, validated_like_the_engine)
{
    static char etag[1600], val[2200];
    char body[2400];
    memset(etag, 'a', 1500);
    memset(val, 'v', 2100);
    const char *bodies[] = {"{\"user_metadata\":{\"\":\"x\"}}", NULL, NULL};
    snprintf(body, sizeof body, "{\"etag\":\"%s\"}", etag);
    char *b1 = strdup(body);
    snprintf(body, sizeof body, "{\"user_metadata\":{\"k\":\"%s\"}}", val);
    char *b2 = strdup(body);
    bodies[1] = b1;
    bodies[2] = b2;
    for (int i = 0; i < 3; i++) {
        struct mc_object_meta m;
        cr_assert_not(mc_http_meta_from_json_fast(bodies[i], strlen(bodies[i]), &m), "%d", i);
        cr_assert_neq(mc_object_meta_from_json(bodies[i], strlen(bodies[i]), &m), 0, "%d", i);
        cr_assert_not(compare(bodies[i]));
    }
    free(b1);
    free(b2);
}
