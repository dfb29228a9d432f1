/* sup_watch.c - exit events of the daemonless drivers (runtime_ops.watch_exits): one thread
 * with an inotify descriptor on the workdir of each started or adopted task; the supervisor's
 * rename of `exit` into place is the event. See runtime_sup.h.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "fsutil.h"
#include "mem.h"
#include "runtime_sup.h"
#include "sup_impl.h"

struct sup_watched {
    int wd; /* inotify watch descriptor */
    char *handle;
};

struct sup_watch {
    pthread_mutex_t mu;
    int ifd, stopfd;
    pthread_t thread;
    void (*cb)(void *ctx, const char *handle);
    void *ctx;
    struct sup_watched *v;
    size_t n;
};

static void *watch_main(void *arg)
{
    struct sup_watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p[2] = {{.fd = w->ifd, .events = POLLIN},
                              {.fd = w->stopfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        ssize_t r = read(w->ifd, buf, sizeof(buf));
        if (r <= 0)
            continue;
        for (char *q = buf; q < buf + r;) {
            struct inotify_event *ev = (struct inotify_event *)q;
            q += sizeof(*ev) + ev->len;
            bool gone = ev->mask & IN_IGNORED;
            bool exited = ev->len && strcmp(ev->name, F_EXIT) == 0;
            if (!gone && !exited)
                continue;
            char *h = NULL;
            pthread_mutex_lock(&w->mu);
            for (size_t i = 0; i < w->n; i++) {
                if (w->v[i].wd != ev->wd)
                    continue;
                if (gone) { /* the folder was removed: forget it */
                    free(w->v[i].handle);
                    w->v[i] = w->v[--w->n];
                } else {
                    h = xstrdup(w->v[i].handle);
                }
                break;
            }
            pthread_mutex_unlock(&w->mu);
            if (h)
                w->cb(w->ctx, h);
            free(h);
        }
    }
    return NULL;
}

int sup_watch_exits(sup_driver *d, void (*cb)(void *ctx, const char *handle), void *ctx,
                    mt_error **err)
{
    struct sup_watch *w = d->watch;
    if (!cb) {
        if (!w)
            return 0;
        uint64_t one = 1;
        if (write(w->stopfd, &one, sizeof(one)) < 0) {
            /* only on overflow */
        }
        pthread_join(w->thread, NULL);
        close(w->ifd);
        close(w->stopfd);
        for (size_t i = 0; i < w->n; i++)
            free(w->v[i].handle);
        free(w->v);
        pthread_mutex_destroy(&w->mu);
        free(w);
        d->watch = NULL;
        return 0;
    }
    if (w)
        return 0;
    w = xcalloc(1, sizeof(*w));
    w->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->cb = cb;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    int e = w->ifd < 0 || w->stopfd < 0 ? errno : pthread_create(&w->thread, NULL, watch_main, w);
    if (e) {
        if (w->ifd >= 0)
            close(w->ifd);
        if (w->stopfd >= 0)
            close(w->stopfd);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return mt_error_sys(err, e, "cannot watch for task exits");
    }
    d->watch = w;
    return 0;
}

void sup_watch_task(const sup_driver *d, const char *handle)
{
    struct sup_watch *w = d->watch;
    if (!w)
        return;
    cleanup_free char *wd = sup_handle_workdir(d, handle, NULL);
    if (!wd)
        return;
    int iw = inotify_add_watch(w->ifd, wd, IN_MOVED_TO | IN_ONLYDIR);
    if (iw < 0)
        return;
    pthread_mutex_lock(&w->mu);
    size_t i = 0;
    while (i < w->n && w->v[i].wd != iw)
        i++;
    if (i == w->n) {
        w->v = xrealloc(w->v, (w->n + 1) * sizeof(*w->v));
        w->v[w->n++] = (struct sup_watched){iw, xstrdup(handle)};
    } else if (strcmp(w->v[i].handle, handle) != 0) {
        free(w->v[i].handle);
        w->v[i].handle = xstrdup(handle);
    }
    pthread_mutex_unlock(&w->mu);
    cleanup_free char *exitf = sup_wd_file(wd, F_EXIT);
    if (fs_exists(exitf)) /* ended before the watch began */
        w->cb(w->ctx, handle);
}