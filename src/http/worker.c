/* worker.c: a few threads for the HTTP work that blocks (loopback client calls) off the loop. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "http/internal.h"
#include "metacenter/error.h"

/* Each allocated connection's whole batch at most. */
#define QUEUE_MAX (MC_HTTP_MAX_ALLOCATED * MC_HTTP_PIPELINE_MAX)

struct mc_http_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*run)(void *item);
    void *queue[QUEUE_MAX]; /* ring */
    uint32_t head, count;
    bool stopping;
    uint32_t n;
    pthread_t threads[MC_HTTP_MAX_THREADS];
};

static void *worker_main(void *arg)
{
    struct mc_http_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->count == 0 && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->count == 0)
            break; /* stopping and drained */
        void *item = w->queue[w->head];
        w->head = (w->head + 1) % QUEUE_MAX;
        w->count--;
        pthread_mutex_unlock(&w->mu);
        w->run(item);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int mc_http_workers_start(uint32_t n, void (*run)(void *item), struct mc_http_workers **out)
{
    if (n == 0 || n > MC_HTTP_MAX_THREADS)
        return MC_EINVAL;
    struct mc_http_workers *w = calloc(1, sizeof *w);
    if (!w)
        return MC_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->run = run;
    for (; w->n < n; w->n++) {
        if (pthread_create(&w->threads[w->n], NULL, worker_main, w) != 0) {
            mc_http_workers_free(w);
            return MC_ENOMEM;
        }
    }
    *out = w;
    return 0;
}

int mc_http_workers_push(struct mc_http_workers *w, void *item)
{
    pthread_mutex_lock(&w->mu);
    if (w->count == QUEUE_MAX || w->stopping) {
        int rc = w->stopping ? MC_ESHUTDOWN : MC_ELIMIT;
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    w->queue[(w->head + w->count) % QUEUE_MAX] = item;
    w->count++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void mc_http_workers_stop(struct mc_http_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (uint32_t i = 0; i < w->n; i++)
        pthread_join(w->threads[i], NULL);
    w->n = 0;
}

void mc_http_workers_free(struct mc_http_workers *w)
{
    if (!w)
        return;
    mc_http_workers_stop(w);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
