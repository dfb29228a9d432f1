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

static void reset(void)
{
    ran = discarded = active = max_active = 0;
}

static void test_runs_every_job_bounded(void **state)
{
    (void)state;
    reset();
    workers *w = workers_start(3, 0);
    assert_non_null(w);
    assert_int_equal(workers_threads(w), 3);
    for (int i = 0; i < 20; i++)
        assert_true(workers_submit(w, job, discard, (void *)(intptr_t)5));
    for (int i = 0; i < 400 && workers_pending(w); i++)
        sleep_ms(5);
    assert_int_equal(workers_pending(w), 0);
    workers_stop(w);
    assert_int_equal(ran, 20);
    assert_int_equal(discarded, 0);
    assert_true(max_active <= 3);
    assert_true(max_active >= 2); /* they did run in parallel */
}

static void test_stop_joins_running_and_discards_queued(void **state)
{
    (void)state;
    reset();
    workers *w = workers_start(2, 0);
    for (int i = 0; i < 6; i++)
        assert_true(workers_submit(w, job, discard, (void *)(intptr_t)200));
    for (int i = 0; i < 2000 && active < 2; i++) /* two are running, four wait */
        sleep_ms(1);
    workers_stop(w); /* returns only once the running two have finished */
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
    sleep_ms(20);
}

static void test_one_thread_bounded_in_order_and_drained(void **state)
{
    (void)state;
    reset();
    norder = 0;
    workers *w = workers_start(1, 3); /* one running, three waiting at most */
    assert_true(workers_submit(w, record, discard, (void *)(intptr_t)0));
    for (int i = 0; i < 2000 && workers_pending(w) && !norder; i++) /* the first is running */
        sleep_ms(1);
    for (int i = 1; i <= 3; i++)
        assert_true(workers_submit(w, record, discard, (void *)(intptr_t)i));
    /* full: refused, nothing run for it, the caller keeps it */
    assert_false(workers_submit(w, record, discard, (void *)(intptr_t)9));
    assert_true(workers_drain(w, 30000));
    assert_int_equal(workers_pending(w), 0);
    assert_int_equal(norder, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(order[i], i);
    /* drained: room again */
    assert_true(workers_submit(w, job, discard, (void *)(intptr_t)200));
    assert_false(workers_drain(w, 1)); /* still running: times out */
    workers_stop(w);
    assert_int_equal(discarded, 0);
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
