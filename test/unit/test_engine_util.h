/* test_engine_util.h: shared fixtures for engine unit tests (temp dirs, apply helpers). */
#ifndef TEST_ENGINE_UTIL_H
#define TEST_ENGINE_UTIL_H

#include <criterion/criterion.h>

#include "metacenter/engine.h"
#include "metacenter/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Criterion runs each test in its own process, so these statics are per test. */
static char te_dir[256];
static struct mc_engine *te_eng;
static uint64_t te_index;
static uint64_t te_vid_counter;
static bool te_damaged; /* set by tests that corrupt the file on purpose */

static inline void te_rmrf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        /* best effort */
    }
}

static inline void te_mkdtemp(char *out, size_t n)
{
    snprintf(out, n, "/tmp/mc_engine_test_XXXXXX");
    cr_assert_not_null(mkdtemp(out));
}

static inline void te_setup(void)
{
    te_mkdtemp(te_dir, sizeof(te_dir));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    int rc = mc_engine_open(te_dir, &o, &te_eng);
    cr_assert_eq(rc, 0, "open: %s", mc_engine_last_error());
    te_index = 0;
    te_vid_counter = 0;
}

static inline void te_teardown(void)
{
    /* Every record any test wrote must carry a valid checksum trailer and the tree must be
       sound: catches a write path that bypasses mc_rec_put (src/engine/record.c). */
    if (te_eng && !te_damaged) {
        int rc = mc_engine_verify(te_eng, NULL);
        cr_expect_eq(rc, 0, "verify at teardown: %s", mc_engine_last_error());
    }
    mc_engine_close(te_eng);
    te_eng = NULL;
    te_rmrf(te_dir);
}

/* Apply one op (and clear it); returns its result code; res may be NULL. */
static inline int te_apply(struct mc_op *op, struct mc_op_result *res)
{
    struct mc_op_result r;
    int rc = mc_engine_apply(te_eng, ++te_index, op, 1, NULL, 0, &r);
    cr_assert_eq(rc, 0, "apply: %s", mc_engine_last_error());
    mc_op_clear(op);
    if (res) {
        *res = r;
    }
    return r.code;
}

static inline int te_bucket(const char *name, enum mc_versioning v)
{
    struct mc_op op;
    mc_op_bucket_create(&op, name, v, 1000);
    return te_apply(&op, NULL);
}

static inline int te_versioning(const char *name, enum mc_versioning v)
{
    struct mc_op op;
    mc_op_bucket_versioning(&op, name, v);
    return te_apply(&op, NULL);
}

static inline void te_next_vid(char out[17])
{
    mc_version_id_make(out, 1700000000000000000LL + (int64_t)te_index * 1000, ++te_vid_counter);
}

/* Put with etag; version id chosen like a leader would. */
static inline int te_put(const char *b, const char *k, const char *etag, struct mc_op_result *res)
{
    struct mc_object_meta m = {0};
    m.etag = (char *)etag;
    m.size = strlen(k);
    char vid[17];
    te_next_vid(vid);
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, b, k, vid, 1000 + (int64_t)te_index, &m), 0);
    return te_apply(&op, res);
}

static inline int te_del(const char *b, const char *k, const char *vid_target,
                         struct mc_op_result *res)
{
    char vid[17];
    te_next_vid(vid);
    struct mc_op op;
    cr_assert_eq(mc_op_delete(&op, b, k, vid_target, vid, 1000 + (int64_t)te_index), 0);
    return te_apply(&op, res);
}

#endif
