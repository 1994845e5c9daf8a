/* board.c: a mutex-guarded copy of the node's state, so HTTP threads read it safely. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metacenter/error.h"
#include "obs/metrics.h"

struct mc_metrics_board {
    pthread_mutex_t mu;
    int state; /* MC_EUNAVAIL before the first publish, 0 after, MC_ESHUTDOWN once retired */
    struct mc_node_metrics m;
};

int mc_metrics_board_new(struct mc_metrics_board **out)
{
    struct mc_metrics_board *b = calloc(1, sizeof *b);
    if (!b)
        return MC_ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    b->state = MC_EUNAVAIL;
    *out = b;
    return 0;
}

void mc_metrics_board_free(struct mc_metrics_board *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void mc_metrics_board_publish(struct mc_metrics_board *b, const struct mc_node_metrics *m)
{
    pthread_mutex_lock(&b->mu);
    if (b->state != MC_ESHUTDOWN) {
        b->m = *m;
        b->state = 0;
    }
    pthread_mutex_unlock(&b->mu);
}

void mc_metrics_board_retire(struct mc_metrics_board *b)
{
    pthread_mutex_lock(&b->mu);
    b->state = MC_ESHUTDOWN;
    pthread_mutex_unlock(&b->mu);
}

int mc_metrics_board_collect(void *ctx, struct mc_node_metrics *out)
{
    struct mc_metrics_board *b = ctx;
    pthread_mutex_lock(&b->mu);
    int rc = b->state;
    if (rc == 0)
        *out = b->m;
    pthread_mutex_unlock(&b->mu);
    return rc;
}
