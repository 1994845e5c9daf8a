/* test_engine_hash.c: the state hash in three steps (mc_engine_hash_begin/run/end): the same
 * digest as mc_engine_state_hash, of the state at begin whatever is applied after, on any thread,
 * and a map growth waits for the hash's end instead of remapping under it. */
#include "test_engine_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

TestSuite(engine_hash, .init = te_setup, .fini = te_teardown, .timeout = 60);

static void fill(int n)
{
    cr_assert_eq(te_bucket("hbk", MC_VERSIONING_ENABLED), 0);
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k-%04d", i);
        cr_assert_eq(te_put("hbk", key, "e", NULL), 0);
    }
}

Test(engine_hash, three_steps_give_the_one_call_hash)
{
    fill(50);
    uint64_t h1, ai1, h2 = 0, ai2 = 0;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &ai1), 0);
    cr_assert_eq(ai1, te_index);
    struct mc_engine_hash *h;
    cr_assert_eq(mc_engine_hash_begin(te_eng, &h, &ai2), 0, "%s", mc_engine_last_error());
    cr_assert_eq(ai2, ai1);
    cr_assert_eq(mc_engine_hash_run(h, &h2), 0, "%s", mc_engine_last_error());
    mc_engine_hash_end(h);
    cr_assert_eq(h2, h1, "begin/run/end %016llx, one call %016llx", (unsigned long long)h2,
                 (unsigned long long)h1);
    mc_engine_hash_end(NULL); /* nothing */
}

struct run_arg {
    struct mc_engine_hash *h;
    uint64_t hash;
    int rc;
};

/* Another thread runs and ends the hash, as the node's threadpool job does. */
static void *run_and_end(void *p)
{
    struct run_arg *a = p;
    a->rc = mc_engine_hash_run(a->h, &a->hash);
    mc_engine_hash_end(a->h);
    return NULL;
}

Test(engine_hash, a_write_after_begin_is_not_hashed)
{
    fill(20);
    uint64_t before, ai;
    cr_assert_eq(mc_engine_state_hash(te_eng, &before, &ai), 0);
    struct run_arg a = {0};
    uint64_t at = 0;
    cr_assert_eq(mc_engine_hash_begin(te_eng, &a.h, &at), 0);
    cr_assert_eq(at, ai);
    /* Applied after begin: changes the state, not the hash begun before it. */
    cr_assert_eq(te_put("hbk", "later", "e2", NULL), 0);
    cr_assert_eq(te_put("hbk", "k-0001", "e3", NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_and_end, &a), 0);
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.hash, before, "the hash saw a write applied after its begin");
    uint64_t now, ai_now;
    cr_assert_eq(mc_engine_state_hash(te_eng, &now, &ai_now), 0);
    cr_assert_eq(ai_now, ai + 2);
    cr_assert_neq(now, before, "the writes changed the state");
}

struct writer_arg {
    struct mc_engine *eng;
    uint64_t first_index;
    int n;
    _Atomic int done; /* puts applied */
    int rc;
};

/* 60 KB objects into a 1 MiB map: the map must grow a few times. */
static void *big_writer(void *p)
{
    struct writer_arg *w = p;
    struct mc_object_meta m = {0};
    m.inline_len = 60000;
    m.inline_data = calloc(1, m.inline_len);
    char key[32];
    for (int i = 0; i < w->n && w->rc == 0; i++) {
        snprintf(key, sizeof(key), "big-%04d", i);
        struct mc_op op;
        mc_op_put(&op, "big", key, NULL, 5, &m);
        struct mc_op_result r;
        w->rc = mc_engine_apply(w->eng, w->first_index + (uint64_t)i, &op, 1, NULL, 0, &r);
        mc_op_clear(&op);
        if (w->rc == 0) {
            w->rc = r.code;
        }
        atomic_fetch_add(&w->done, 1);
    }
    mc_object_meta_clear(&m);
    return NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(engine_hash, map_growth_waits_for_the_hash_to_end)
{
    mc_engine_close(te_eng);
    te_rmrf(te_dir); /* fresh: an existing file keeps its (larger) map size */
    te_mkdtemp(te_dir, sizeof(te_dir));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .map_size_bytes = 1 << 20};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    fill(5);
    cr_assert_eq(te_bucket("big", MC_VERSIONING_UNVERSIONED), 0);
    uint64_t before, ai;
    cr_assert_eq(mc_engine_state_hash(te_eng, &before, &ai), 0);
    struct mc_engine_hash *h;
    cr_assert_eq(mc_engine_hash_begin(te_eng, &h, &ai), 0);
    struct writer_arg w = {.eng = te_eng, .first_index = te_index + 1, .n = 40};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, big_writer, &w), 0);
    /* The writer stops at the first growth (40 x 60 KB cannot fit 1 MiB): wait until its count
     * has not moved for 300 ms. */
    int last = -1;
    uint64_t still_since = now_ms(), deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int d = atomic_load(&w.done);
        if (d != last) {
            last = d;
            still_since = now_ms();
        } else if (now_ms() - still_since >= 300) {
            break;
        }
        usleep(10000);
    }
    cr_assert_lt(atomic_load(&w.done), w.n, "the writer finished with a hash open: no growth?");
    /* The map was not remapped under the open transaction: it still reads the state at begin. */
    uint64_t during = 0;
    cr_assert_eq(mc_engine_hash_run(h, &during), 0, "%s", mc_engine_last_error());
    cr_assert_eq(during, before);
    cr_assert_lt(atomic_load(&w.done), w.n);
    mc_engine_hash_end(h); /* the growth goes on */
    pthread_join(th, NULL);
    cr_assert_eq(w.rc, 0, "%s", mc_error_name(w.rc));
    cr_assert_eq(atomic_load(&w.done), w.n);
    te_index += (uint64_t)w.n;
    uint64_t after;
    cr_assert_eq(mc_engine_state_hash(te_eng, &after, &ai), 0);
    cr_assert_eq(ai, te_index);
    cr_assert_neq(after, before);
}

struct end_later_arg {
    struct mc_engine_hash *h;
    unsigned after_ms;
};

static void *end_later(void *p)
{
    struct end_later_arg *a = p;
    usleep(a->after_ms * 1000u);
    mc_engine_hash_end(a->h);
    return NULL;
}

/* mc_engine_hash_wait (an install before closing the engine: node_check_wait_hash) times out
 * while a handle is open, and wakes at its end on another thread rather than at its timeout. */
Test(engine_hash, a_wait_ends_with_the_hash_or_its_timeout)
{
    fill(5);
    cr_assert(mc_engine_hash_wait(te_eng, 0), "no handle open: no wait");
    struct mc_engine_hash *h;
    uint64_t ai;
    cr_assert_eq(mc_engine_hash_begin(te_eng, &h, &ai), 0);
    uint64_t t0 = now_ms();
    cr_assert_not(mc_engine_hash_wait(te_eng, 100));
    cr_assert_geq(now_ms() - t0, 90, "returned early: %llu ms",
                  (unsigned long long)(now_ms() - t0));
    struct end_later_arg a = {.h = h, .after_ms = 200};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, end_later, &a), 0);
    t0 = now_ms();
    cr_assert(mc_engine_hash_wait(te_eng, 20000));
    uint64_t took = now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert(took >= 150 && took < 10000, "woke after %llu ms", (unsigned long long)took);
}
