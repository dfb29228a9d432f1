/* loop.c - epoll, caller-owned timers in a sorted list, a signalfd and an eventfd post queue. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"

#define MAX_EVENTS       16
#define MAX_TIMER_CALLS  64 /* per loop_run_once: a timer re-armed for "now" cannot spin it */
#define MAX_SIGNALS_READ 16

struct watch {
    int fd;
    bool want_write;
    loop_io_fn fn;
    void *ctx;
};

struct posted {
    loop_fn fn;
    void *arg;
    struct posted *next;
};

struct loop {
    int epfd, sigfd, postfd;
    loop_signal_fn on_signal;
    void *signal_ctx;
    struct watch *watches;
    size_t nwatches, capwatches;
    loop_timer *timers; /* armed, earliest first */
    pthread_mutex_t mu; /* guards the post list */
    struct posted *head, *tail;
};

loop *loop_new(const int *signals, size_t nsignals, loop_signal_fn on_signal, void *ctx,
               mt_error **err)
{
    loop *l = xcalloc(1, sizeof(*l));
    l->epfd = l->sigfd = l->postfd = -1;
    pthread_mutex_init(&l->mu, NULL);
    l->on_signal = on_signal;
    l->signal_ctx = ctx;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->postfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->postfd < 0)
        goto fail;
    struct epoll_event pev = {.events = EPOLLIN, .data.fd = l->postfd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->postfd, &pev) < 0)
        goto fail;
    if (nsignals) {
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < nsignals; i++)
            sigaddset(&set, signals[i]);
        sigprocmask(SIG_BLOCK, &set, NULL);
        l->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (l->sigfd < 0)
            goto fail;
        struct epoll_event sev = {.events = EPOLLIN, .data.fd = l->sigfd};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->sigfd, &sev) < 0)
            goto fail;
    }
    return l;
fail:
    mt_error_sys(err, errno, "cannot set up the event loop");
    loop_free(l);
    return NULL;
}

void loop_free(loop *l)
{
    if (!l)
        return;
    struct posted *p = l->head;
    while (p) {
        struct posted *next = p->next;
        free(p);
        p = next;
    }
    if (l->sigfd >= 0)
        close(l->sigfd);
    if (l->postfd >= 0)
        close(l->postfd);
    if (l->epfd >= 0)
        close(l->epfd);
    for (loop_timer *t = l->timers; t;) {
        loop_timer *next = t->next;
        t->due_ms = 0;
        t->next = NULL;
        t = next;
    }
    free(l->watches);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- fd watches ---------------------------------------------------------------------------- */

static struct watch *find_watch(loop *l, int fd)
{
    for (size_t i = 0; i < l->nwatches; i++)
        if (l->watches[i].fd == fd)
            return &l->watches[i];
    return NULL;
}

int loop_watch(loop *l, int fd, bool want_write, loop_io_fn fn, void *ctx, mt_error **err)
{
    struct watch *w = find_watch(l, fd);
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.fd = fd};
    if (w) {
        if (w->want_write != want_write && epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
            (errno != ENOENT || epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0))
            return mt_error_sys(err, errno, "cannot watch a connection");
        w->want_write = want_write;
        w->fn = fn;
        w->ctx = ctx;
        return 0;
    }
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return mt_error_sys(err, errno, "cannot watch a connection");
    if (l->nwatches == l->capwatches) {
        l->capwatches = l->capwatches ? l->capwatches * 2 : 4;
        l->watches = xrealloc(l->watches, l->capwatches * sizeof(*l->watches));
    }
    l->watches[l->nwatches++] = (struct watch){fd, want_write, fn, ctx};
    return 0;
}

void loop_unwatch(loop *l, int fd)
{
    struct watch *w = find_watch(l, fd);
    if (!w)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL); /* fails harmlessly if fd was closed */
    *w = l->watches[--l->nwatches];
}

/* ---- timers -------------------------------------------------------------------------------- */

void loop_timer_init(loop_timer *t, loop_fn fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->due_ms = 0;
    t->next = NULL;
}

void loop_timer_stop(loop *l, loop_timer *t)
{
    if (!t->due_ms)
        return;
    for (loop_timer **p = &l->timers; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    t->due_ms = 0;
    t->next = NULL;
}

void loop_timer_at(loop *l, loop_timer *t, int64_t due_ms)
{
    loop_timer_stop(l, t);
    t->due_ms = due_ms > 0 ? due_ms : 1; /* 0 means "not armed" */
    loop_timer **p = &l->timers;
    while (*p && (*p)->due_ms <= t->due_ms)
        p = &(*p)->next;
    t->next = *p;
    *p = t;
}

void loop_timer_in(loop *l, loop_timer *t, int64_t ms)
{
    loop_timer_at(l, t, clock_mono_ms() + (ms > 0 ? ms : 0));
}

int64_t loop_next_due(const loop *l)
{
    return l->timers ? l->timers->due_ms : 0;
}

static int run_timers(loop *l)
{
    int64_t now = clock_mono_ms();
    int ran = 0;
    while (l->timers && l->timers->due_ms <= now + LOOP_SLACK_MS && ran < MAX_TIMER_CALLS) {
        loop_timer *t = l->timers;
        l->timers = t->next;
        t->next = NULL;
        t->due_ms = 0;
        t->fn(t->arg); /* may re-arm t, or any other */
        ran++;
    }
    return ran;
}

/* ---- posts --------------------------------------------------------------------------------- */

void loop_post(loop *l, loop_fn fn, void *arg)
{
    struct posted *p = xcalloc(1, sizeof(*p));
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->mu);
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    pthread_mutex_unlock(&l->mu);
    loop_wake(l);
}

void loop_wake(loop *l)
{
    uint64_t one = 1;
    if (write(l->postfd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full, so the loop is already due to wake */
    }
}

size_t loop_run_posted(loop *l)
{
    pthread_mutex_lock(&l->mu);
    struct posted *p = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->mu);
    size_t n = 0;
    while (p) {
        struct posted *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
        n++;
    }
    return n;
}

/* ---- the wait ------------------------------------------------------------------------------ */

static int read_signals(loop *l)
{
    int n = 0;
    struct signalfd_siginfo si;
    while (n < MAX_SIGNALS_READ && read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (l->on_signal)
            l->on_signal(l->signal_ctx, (int)si.ssi_signo);
        n++;
    }
    return n;
}

int loop_run_once(loop *l, int64_t max_wait_ms)
{
    int64_t wait = max_wait_ms;
    if (l->timers) {
        int64_t until = l->timers->due_ms - clock_mono_ms();
        if (until < 0)
            until = 0;
        if (wait < 0 || until < wait)
            wait = until;
    }
    if (wait > 3600 * 1000)
        wait = 3600 * 1000;
    struct epoll_event evs[MAX_EVENTS];
    int k = epoll_wait(l->epfd, evs, MAX_EVENTS, wait < 0 ? -1 : (int)wait);
    int ran = 0;
    for (int i = 0; i < k; i++) {
        int fd = evs[i].data.fd;
        if (fd == l->sigfd) {
            ran += read_signals(l);
        } else if (fd == l->postfd) {
            uint64_t v;
            if (read(l->postfd, &v, sizeof(v)) < 0) {
                /* already drained */
            }
            ran += (int)loop_run_posted(l);
        } else {
            struct watch *w = find_watch(l, fd); /* a callback may have dropped it */
            if (!w)
                continue;
            uint32_t e = evs[i].events;
            bool readable = e & (EPOLLIN | EPOLLERR | EPOLLHUP);
            bool writable = w->want_write && (e & EPOLLOUT);
            w->fn(w->ctx, readable, writable);
            ran++;
        }
    }
    return ran + run_timers(l);
}
