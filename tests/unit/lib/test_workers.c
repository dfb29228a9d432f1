/* test_workers.c - the worker pool: every job runs once, never more than n at a time, one
 * thread keeps the order, a bounded queue refuses when full, drain waits for the last job, stop
 * joins the running ones and discards (hands back) the queued ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "workers.h"

static int ran, discarded, active, max_active;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void job(void *arg)
{
    pthread_mutex_lock(&mu);
    if (++active > max_active)
        max_active = active;
    pthread_mutex_unlock(&mu);
    sleep_ms((int)(intptr_t)arg);
    pthread_mutex_lock(&mu);
    active--;
    ran++;
    pthread_mutex_unlock(&mu);
}

static void discard(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    discarded++;
    pthread_mutex_unlock(&mu);
}

/* a job that runs until the test opens the gate: "running" without a timing bet */
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void gated(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    if (++active > max_active)
        max_active = active;
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &mu);
    active--;
    ran++;
    pthread_mutex_unlock(&mu);
}

static void open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&mu);
}

/* wait (bounded) until *v, read under mu, reaches want */
static int wait_for(const int *v, int want)
{
    int now = 0;
    for (int i = 0; i < 60000; i++) {
        pthread_mutex_lock(&mu);
        now = *v;
        pthread_mutex_unlock(&mu);
        if (now >= want)
            break;
        sleep_ms(1);
    }
    return now;
}

static void reset(void)
{
    ran = discarded = active = max_active = 0;
    gate_open = 0;
}

static void test_runs_every_job_bounded(void **state)
{
    (void)state;
    reset();
    workers *w = workers_start(3, 0);
    assert_non_null(w);
    assert_int_equal(workers_threads(w), 3);
    for (int i = 0; i < 5; i++) /* three run at once (held at the gate), two wait */
        assert_true(workers_submit(w, gated, discard, NULL));
    assert_int_equal(wait_for(&active, 3), 3);
    for (int i = 0; i < 15; i++)
        assert_true(workers_submit(w, job, discard, (void *)(intptr_t)1));
    assert_int_equal(workers_pending(w), 20);
    open_gate();
    assert_true(workers_drain(w, 60000));
    assert_int_equal(workers_pending(w), 0);
    workers_stop(w);
    assert_int_equal(ran, 20);
    assert_int_equal(discarded, 0);
    assert_int_equal(max_active, 3); /* in parallel, never more than n */
}

/* opens the gate once workers_stop has discarded the queued jobs, i.e. while it waits for the
 * running ones */
static void *open_after_discard(void *p)
{
    (void)p;
    wait_for(&discarded, 4);
    open_gate();
    return NULL;
}

static void test_stop_joins_running_and_discards_queued(void **state)
{
    (void)state;
    reset();
    workers *w = workers_start(2, 0);
    for (int i = 0; i < 6; i++)
        assert_true(workers_submit(w, gated, discard, NULL));
    assert_int_equal(wait_for(&active, 2), 2); /* two are running, four wait */
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_after_discard, NULL), 0);
    workers_stop(w); /* returns only once the running two have finished */
    pthread_join(opener, NULL);
    assert_int_equal(active, 0);
    assert_int_equal(ran, 2);
    assert_int_equal(discarded, 4);
}

static void test_submit_after_stop_refused(void **state)
{
    (void)state;
    reset();
    workers *w = workers_start(1, 0);
    workers_stop(w);
    /* a stopped pool is freed: a fresh one stopping refuses while stopping is covered above;
     * here: n < 1 still gives one thread */
    w = workers_start(0, 0);
    assert_non_null(w);
    assert_int_equal(workers_threads(w), 1);
    assert_true(workers_submit(w, job, discard, (void *)(intptr_t)1));
    workers_stop(w);
    assert_int_equal(ran + discarded, 1);
}

static int order[8], norder;

static void record(void *arg)
{
    pthread_mutex_lock(&mu);
    order[norder++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&mu);
    sleep_ms(5);
}

static void test_one_thread_bounded_in_order_and_drained(void **state)
{
    (void)state;
    reset();
    norder = 0;
    workers *w = workers_start(1, 3);                     /* one running, three waiting at most */
    assert_true(workers_submit(w, gated, discard, NULL)); /* holds the thread */
    assert_int_equal(wait_for(&active, 1), 1);
    for (int i = 0; i < 3; i++)
        assert_true(workers_submit(w, record, discard, (void *)(intptr_t)i));
    /* full: refused, nothing run for it, the caller keeps it */
    assert_false(workers_submit(w, record, discard, (void *)(intptr_t)9));
    open_gate();
    assert_true(workers_drain(w, 60000));
    assert_int_equal(workers_pending(w), 0);
    assert_int_equal(norder, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(order[i], i);
    /* drained: room again */
    pthread_mutex_lock(&mu);
    gate_open = 0;
    pthread_mutex_unlock(&mu);
    assert_true(workers_submit(w, gated, discard, NULL));
    assert_false(workers_drain(w, 1)); /* still running: times out */
    open_gate();
    assert_true(workers_drain(w, 60000));
    workers_stop(w);
    assert_int_equal(discarded, 0);
    assert_int_equal(ran, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_every_job_bounded),
        cmocka_unit_test(test_stop_joins_running_and_discards_queued),
        cmocka_unit_test(test_submit_after_stop_refused),
        cmocka_unit_test(test_one_thread_bounded_in_order_and_drained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
