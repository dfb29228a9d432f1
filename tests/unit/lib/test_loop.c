/* test_loop.c - the daemons' event loop: timers run in due order, coalesce within the slack,
 * re-arm and stop from callbacks; posts from other threads run on the loop in order; fd
 * watches report readable and writable; signals come through the signalfd; and with nothing
 * armed the loop sleeps until something happens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"

struct rec {
    char order[64];
    size_t n;
};

static void note(struct rec *r, char c)
{
    if (r->n + 1 < sizeof(r->order))
        r->order[r->n++] = c;
}

struct tctx {
    struct rec *r;
    char c;
    loop *l;
    loop_timer *self;
    int rearm;          /* re-arm this many more times, 10 ms apart */
    loop_timer *cancel; /* stop this one when run */
};

static void on_timer(void *arg)
{
    struct tctx *t = arg;
    note(t->r, t->c);
    if (t->rearm > 0) {
        t->rearm--;
        loop_timer_in(t->l, t->self, 10);
    }
    if (t->cancel)
        loop_timer_stop(t->l, t->cancel);
}

static void run_until(loop *l, struct rec *r, size_t want, int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;
    while (r->n < want && clock_mono_ms() < end)
        loop_run_once(l, 50);
}

static void test_timers_run_in_due_order_and_can_be_stopped(void **state)
{
    (void)state;
    mt_error *e = NULL;
    loop *l = loop_new(NULL, 0, NULL, NULL, &e);
    assert_non_null(l);
    struct rec r = {0};
    loop_timer ta, tb, tc, td;
    struct tctx a = {&r, 'a', l, &ta, 0, NULL}, b = {&r, 'b', l, &tb, 0, &td},
                c = {&r, 'c', l, &tc, 2, NULL}, d = {&r, 'd', l, &td, 0, NULL};
    loop_timer_init(&ta, on_timer, &a);
    loop_timer_init(&tb, on_timer, &b);
    loop_timer_init(&tc, on_timer, &c);
    loop_timer_init(&td, on_timer, &d);
    int64_t now = clock_mono_ms();
    loop_timer_at(l, &tc, now + 300); /* runs three times: re-armed twice */
    loop_timer_at(l, &ta, now + 100);
    loop_timer_at(l, &tb, now + 200); /* stops d */
    loop_timer_at(l, &td, now + 400);
    assert_true(loop_timer_armed(&ta));
    assert_int_equal(loop_next_due(l), now + 100);
    /* re-arming moves a timer: a later first, then back */
    loop_timer_at(l, &ta, now + 1000);
    assert_int_equal(loop_next_due(l), now + 200);
    loop_timer_at(l, &ta, now + 100);
    run_until(l, &r, 5, 10000);
    r.order[r.n] = 0;
    assert_string_equal(r.order, "abccc");
    assert_false(loop_timer_armed(&td));
    assert_int_equal(loop_next_due(l), 0);
    /* stopping a timer that is not armed is fine */
    loop_timer_stop(l, &td);
    loop_free(l);
}

static void test_timers_within_the_slack_share_one_wake_up(void **state)
{
    (void)state;
    mt_error *e = NULL;
    loop *l = loop_new(NULL, 0, NULL, NULL, &e);
    struct rec r = {0};
    loop_timer ta, tb;
    struct tctx a = {&r, 'a', l, &ta, 0, NULL}, b = {&r, 'b', l, &tb, 0, NULL};
    loop_timer_init(&ta, on_timer, &a);
    loop_timer_init(&tb, on_timer, &b);
    int64_t now = clock_mono_ms();
    loop_timer_at(l, &ta, now + 50);
    loop_timer_at(l, &tb, now + 50 + LOOP_SLACK_MS / 2);
    /* one wait: the first is due, the second within the slack of it */
    int ran = 0;
    for (int i = 0; i < 200 && r.n == 0; i++)
        ran += loop_run_once(l, 1000);
    assert_int_equal(r.n, 2);
    assert_int_equal(ran, 2);
    loop_free(l);
}

static void on_post(void *arg)
{
    struct rec *r = arg;
    note(r, 'p');
}

struct poster {
    loop *l;
    struct rec *r;
};

static void *post_thread(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < 20; i++)
        loop_post(p->l, on_post, p->r);
    return NULL;
}

static void test_posts_from_another_thread_run_on_the_loop(void **state)
{
    (void)state;
    mt_error *e = NULL;
    loop *l = loop_new(NULL, 0, NULL, NULL, &e);
    struct rec r = {0};
    struct poster p = {l, &r};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_thread, &p), 0);
    pthread_join(th, NULL);
    /* nothing armed: the wait has no limit, and the posts end it */
    run_until(l, &r, 20, 10000);
    assert_int_equal(r.n, 20);
    /* what is still posted at the end is freed, not run */
    loop_post(l, on_post, &r);
    loop_free(l);
    assert_int_equal(r.n, 20);
}

struct io {
    int fd;
    int reads, writes;
    loop *l;
};

static void on_io(void *ctx, bool readable, bool writable)
{
    struct io *io = ctx;
    if (readable) {
        char buf[16];
        if (read(io->fd, buf, sizeof(buf)) > 0)
            io->reads++;
    }
    if (writable) {
        io->writes++;
        loop_watch(io->l, io->fd, false, on_io, io, NULL); /* once is enough */
    }
}

static void test_fd_watches_report_readable_and_writable(void **state)
{
    (void)state;
    mt_error *e = NULL;
    loop *l = loop_new(NULL, 0, NULL, NULL, &e);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct io rd = {p[0], 0, 0, l}, wr = {p[1], 0, 0, l};
    assert_int_equal(loop_watch(l, p[0], false, on_io, &rd, &e), 0);
    assert_int_equal(loop_watch(l, p[1], true, on_io, &wr, &e), 0);
    for (int i = 0; i < 50 && wr.writes == 0; i++)
        loop_run_once(l, 100);
    assert_int_equal(wr.writes, 1);
    assert_int_equal(write(p[1], "x", 1), 1);
    for (int i = 0; i < 50 && rd.reads == 0; i++)
        loop_run_once(l, 100);
    assert_int_equal(rd.reads, 1);
    /* unwatched: a write wakes nothing */
    loop_unwatch(l, p[0]);
    loop_unwatch(l, p[0]); /* twice is fine */
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(loop_run_once(l, 50), 0);
    assert_int_equal(rd.reads, 1);
    loop_unwatch(l, p[1]);
    close(p[0]);
    close(p[1]);
    /* a bad fd is refused with a message */
    assert_int_equal(loop_watch(l, 12345, false, on_io, &rd, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "watch"));
    mt_error_free(&e);
    loop_free(l);
}

static int got_signal;

static void on_signal(void *ctx, int sig)
{
    (void)ctx;
    got_signal = sig;
}

static void test_signals_come_through_the_loop(void **state)
{
    (void)state;
    mt_error *e = NULL;
    int sigs[] = {SIGUSR1};
    loop *l = loop_new(sigs, 1, on_signal, NULL, &e);
    assert_non_null(l);
    kill(getpid(), SIGUSR1); /* blocked: waits for the loop instead of killing us */
    for (int i = 0; i < 50 && !got_signal; i++)
        loop_run_once(l, 100);
    assert_int_equal(got_signal, SIGUSR1);
    loop_free(l);
}

static void test_an_idle_loop_waits_as_long_as_it_is_told(void **state)
{
    (void)state;
    mt_error *e = NULL;
    loop *l = loop_new(NULL, 0, NULL, NULL, &e);
    int64_t t0 = clock_mono_ms();
    assert_int_equal(loop_run_once(l, 200), 0);
    assert_true(clock_mono_ms() - t0 >= 190); /* no hidden periodic wake-up ended it early */
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_run_in_due_order_and_can_be_stopped),
        cmocka_unit_test(test_timers_within_the_slack_share_one_wake_up),
        cmocka_unit_test(test_posts_from_another_thread_run_on_the_loop),
        cmocka_unit_test(test_fd_watches_report_readable_and_writable),
        cmocka_unit_test(test_signals_come_through_the_loop),
        cmocka_unit_test(test_an_idle_loop_waits_as_long_as_it_is_told),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
