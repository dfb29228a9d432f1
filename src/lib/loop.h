/* loop.h - the event loop of both daemons (manta_node's agent and manta_manager serve).
 *
 * One thread runs the loop; it sleeps in epoll_wait until one of these is due:
 *  - an fd watch: a callback when an fd is readable (and writable, when asked);
 *  - a timer: a callback at a time on the monotonic clock (timers are owned by the caller,
 *    embedded in its structures, armed and disarmed at will, at most one due time each);
 *  - a signal: the loop blocks the signals it is given (before any thread exists, so that no
 *    library thread takes one with its default action) and reads them from a signalfd;
 *  - a post: any thread hands the loop a function to run on it (work finished elsewhere).
 * Nothing else wakes it: a daemon with nothing armed sleeps until an fd, a signal or a post.
 *
 * Timers due within LOOP_SLACK_MS of each other run in the same wake-up (periodic work
 * coalesces: one wake-up, not two). Callbacks may arm and disarm any timer and change any
 * watch, including their own. Only loop_post and loop_wake may be called from other threads.
 */
#ifndef MANTA_LOOP_H
#define MANTA_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define LOOP_SLACK_MS 50

typedef struct loop loop;

typedef void (*loop_fn)(void *arg);
/* An fd watch's callback: `readable`/`writable` as epoll reported them (an error or a hang-up
 * counts as readable: the read says what happened). */
typedef void (*loop_io_fn)(void *ctx, bool readable, bool writable);
typedef void (*loop_signal_fn)(void *ctx, int sig);

/* A timer: caller-owned (embed it), set up with loop_timer_init, never moved while armed. */
typedef struct loop_timer {
    loop_fn fn;
    void *arg;
    int64_t due_ms; /* monotonic ms; 0 while not armed */
    struct loop_timer *next;
} loop_timer;

/* A loop that takes `signals` (nsignals of them; may be 0) and calls on_signal(ctx, sig) on
 * the loop for each one received. Blocks those signals in the calling thread (call it before
 * creating threads). Returns owned, or NULL with *err set. */
loop *loop_new(const int *signals, size_t nsignals, loop_signal_fn on_signal, void *ctx,
               mt_error **err);
/* Close the loop's fds and free what is still posted without running it (run loop_run_posted
 * first to run it). Armed timers are forgotten (they are the caller's). NULL is fine. */
void loop_free(loop *l);

/* Watch fd (fd >= 0): fn(ctx, ...) when it is readable, and writable while want_write. Calling
 * it again for the same fd changes what is watched. Returns -1 with *err set if epoll refuses
 * the fd. */
int loop_watch(loop *l, int fd, bool want_write, loop_io_fn fn, void *ctx, mt_error **err);
/* Stop watching fd (it may already be closed). Unknown fds are ignored. */
void loop_unwatch(loop *l, int fd);

void loop_timer_init(loop_timer *t, loop_fn fn, void *arg);
/* Arm t for the monotonic time due_ms (re-arming moves it). */
void loop_timer_at(loop *l, loop_timer *t, int64_t due_ms);
/* Arm t for ms from now. */
void loop_timer_in(loop *l, loop_timer *t, int64_t ms);
/* Disarm t (not armed: nothing happens). */
void loop_timer_stop(loop *l, loop_timer *t);
static inline bool loop_timer_armed(const loop_timer *t)
{
    return t->due_ms != 0;
}

/* Run fn(arg) on the loop's thread, soon, in posting order. Any thread; never blocks for long
 * (a mutex held for a list append). */
void loop_post(loop *l, loop_fn fn, void *arg);
/* Wake the loop without work (its caller re-checks state after loop_run_once). Any thread. */
void loop_wake(loop *l);
/* Run what was posted so far, on the calling thread (the loop's, or the owner's at shutdown
 * after every other thread was joined). Returns how many ran. */
size_t loop_run_posted(loop *l);

/* Wait for the next event, at most max_wait_ms (< 0: no limit but the timers), and handle what
 * is due: signals, posts, fd watches, then due timers. Returns the number of callbacks run. */
int loop_run_once(loop *l, int64_t max_wait_ms);

/* The earliest armed timer's due time, 0 if none. */
int64_t loop_next_due(const loop *l);

#endif
