/* workers.c - a fixed pool of joinable threads over one FIFO; see workers.h. */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "mem.h"

struct wjob {
    workers_fn run, discard;
    void *arg;
    struct wjob *next;
};

struct workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work queued, or stopping */
    pthread_cond_t idle_cv; /* nothing queued or running (CLOCK_MONOTONIC) */
    struct wjob *head, *tail;
    size_t queued, running, capacity;
    bool stopping;
    int n;
    pthread_t *threads;
};

static void *worker_main(void *p)
{
    workers *w = p;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping)
            break; /* what is still queued is discarded by workers_stop */
        struct wjob *j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
        w->running++;
        pthread_mutex_unlock(&w->mu);
        j->run(j->arg);
        free(j);
        pthread_mutex_lock(&w->mu);
        w->running--;
        if (!w->running && !w->queued)
            pthread_cond_broadcast(&w->idle_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

workers *workers_start(int n, size_t capacity)
{
    if (n < 1)
        n = 1;
    workers *w = xcalloc(1, sizeof(*w));
    w->capacity = capacity;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    clock_cond_init(&w->idle_cv);
    w->threads = xcalloc((size_t)n, sizeof(pthread_t));
    for (int i = 0; i < n; i++) {
        if (pthread_create(&w->threads[w->n], NULL, worker_main, w) != 0)
            break;
        w->n++;
    }
    if (!w->n) {
        pthread_cond_destroy(&w->idle_cv);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w->threads);
        free(w);
        return NULL;
    }
    return w;
}

bool workers_submit(workers *w, workers_fn run, workers_fn discard, void *arg)
{
    struct wjob *j = xcalloc(1, sizeof(*j));
    *j = (struct wjob){run, discard, arg, NULL};
    pthread_mutex_lock(&w->mu);
    if (w->stopping || (w->capacity && w->queued >= w->capacity)) {
        pthread_mutex_unlock(&w->mu);
        free(j);
        return false;
    }
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return true;
}

size_t workers_pending(workers *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->queued + w->running;
    pthread_mutex_unlock(&w->mu);
    return n;
}

bool workers_drain(workers *w, long timeout_ms)
{
    struct timespec until = clock_mono_after(timeout_ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while ((w->queued || w->running) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->idle_cv, &w->mu, &until);
    bool done = !w->queued && !w->running;
    pthread_mutex_unlock(&w->mu);
    return done;
}

int workers_threads(const workers *w)
{
    return w->n;
}

void workers_stop(workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    struct wjob *j = w->head;
    w->head = w->tail = NULL;
    w->queued = 0;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    while (j) { /* never started: hand them back */
        struct wjob *next = j->next;
        if (j->discard)
            j->discard(j->arg);
        free(j);
        j = next;
    }
    for (int i = 0; i < w->n; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->idle_cv);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
}
