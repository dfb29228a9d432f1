/* workq.c - one worker thread and a bounded FIFO; see workq.h. */
#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "mem.h"

struct job {
    workq_fn run, free_arg;
    void *arg;
};

struct workq {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work available / stopping */
    pthread_cond_t idle_cv; /* queue drained */
    struct job *ring;
    size_t cap, head, len;
    bool running_job;
    bool stopping;
};

static void *worker(void *p)
{
    workq *q = p;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->len && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stopping)
            break;
        struct job j = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        q->running_job = true;
        pthread_mutex_unlock(&q->mu);
        j.run(j.arg);
        if (j.free_arg)
            j.free_arg(j.arg);
        pthread_mutex_lock(&q->mu);
        q->running_job = false;
        if (!q->len)
            pthread_cond_broadcast(&q->idle_cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

workq *workq_start(size_t capacity)
{
    workq *q = xcalloc(1, sizeof(*q));
    q->cap = capacity ? capacity : 1;
    q->ring = xcalloc(q->cap, sizeof(struct job));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        fprintf(stderr, "manta: cannot start a worker thread\n");
        abort();
    }
    return q;
}

bool workq_submit(workq *q, workq_fn run, workq_fn free_arg, void *arg)
{
    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->len == q->cap) {
        pthread_mutex_unlock(&q->mu);
        if (free_arg)
            free_arg(arg);
        return false;
    }
    q->ring[(q->head + q->len) % q->cap] = (struct job){run, free_arg, arg};
    q->len++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return true;
}

size_t workq_pending(workq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len + (q->running_job ? 1 : 0);
    pthread_mutex_unlock(&q->mu);
    return n;
}

bool workq_drain(workq *q, long timeout_ms)
{
    struct timespec until = clock_mono_after(timeout_ms);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    while ((q->len || q->running_job) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q->idle_cv, &q->mu, &until);
    bool done = !q->len && !q->running_job;
    pthread_mutex_unlock(&q->mu);
    return done;
}

void workq_stop(workq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    while (q->len) {
        struct job j = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        if (j.free_arg)
            j.free_arg(j.arg);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    pthread_cond_destroy(&q->idle_cv);
    free(q->ring);
    free(q);
}
