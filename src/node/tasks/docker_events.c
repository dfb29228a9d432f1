/* docker_events.c - the Docker driver's exit events: one thread reading GET /events (the
 * "die" of containers labelled manta.node), reconnecting with back-off while dockerd is away
 * and then reporting that events may have been missed.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "http_unix.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_docker_impl.h"
#include "strbuf.h"

typedef struct events_state {
    docker_rt *d;
    strbuf line;
} events_state;

static void events_line(events_state *es, const char *s, size_t n)
{
    cleanup_json json_t *j = json_loadb(s, n, 0, NULL);
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *action = json_string_value(json_object_get(j, "Action"));
    const char *id = json_string_value(json_object_get(j, "id"));
    if (!id)
        id = json_string_value(json_object_get(json_object_get(j, "Actor"), "ID"));
    bool die = (action && !strcmp(action, "die")) || (status && !strcmp(status, "die"));
    if (die && id && docker_handle_valid(id))
        es->d->exit_cb(es->d->exit_ctx, id);
}

static bool events_sink(const char *data, size_t n, void *ud)
{
    events_state *es = ud;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (es->line.len)
                events_line(es, es->line.buf, es->line.len);
            sb_reset(&es->line);
        } else if (es->line.len < MAX_PULL_LINE) {
            sb_append(&es->line, data + i, 1);
        }
    }
    return true;
}

/* Wait ms on the stop eventfd: true if asked to stop. */
static bool events_wait_stop(docker_rt *d, int ms)
{
    struct pollfd p = {.fd = d->events_stop_fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    return r > 0;
}

static void *events_main(void *arg)
{
    docker_rt *d = arg;
    /* "die" of the containers carrying our label (any node xid: the node ignores handles it
     * does not know) */
    cleanup_free char *filt = docker_url_escape(
        "{\"type\":[\"container\"],\"event\":[\"die\"],\"label\":[\"manta.node\"]}");
    cleanup_free char *path = xasprintf("/events?filters=%s", filt);
    int delay_ms = 500;
    bool missed = false;
    for (;;) {
        events_state es = {d, STRBUF_INIT};
        cleanup_call http_call c = {.method = "GET",
                                    .path = path,
                                    .timeout_ms = 3600L * 1000,
                                    .sink = events_sink,
                                    .sink_ud = &es};
        /* the stream: stopped through the stop fd rather than the cancel fd */
        http_request rq = {
            .socket = d->socket,
            .method = "GET",
            .path = path,
            .timeout_ms = c.timeout_ms,
            .connect_timeout_ms = CONNECT_TIMEOUT_MS,
            .sink = docker_on_body,
            .ud = &c,
            .cancel_fd = d->events_stop_fd,
        };
        if (missed) /* the stream was down: exits in between are found by one inspect each */
            d->exit_cb(d->exit_ctx, NULL);
        int rc = http_unix_request(&rq, &c.rs, &c.err);
        sb_free(&es.line);
        if (docker_http_failure_of(&c) == HTTP_ABORTED && events_wait_stop(d, 0))
            break;
        bool timed_out = rc < 0 && docker_http_failure_of(&c) == HTTP_TIMEOUT;
        missed = !timed_out;
        if (!timed_out) { /* dockerd restarting or gone: retry with back-off */
            if (events_wait_stop(d, delay_ms))
                break;
            delay_ms = delay_ms * 2 > 30000 ? 30000 : delay_ms * 2;
        } else {
            delay_ms = 500;
            missed = true; /* the gap between two requests */
        }
    }
    return NULL;
}

int docker_watch_exits(runtime *rt, void (*cb)(void *ctx, const char *handle), void *ctx,
                       mt_error **err)
{
    docker_rt *d = rt->impl;
    if (!cb) {
        if (d->events_on) {
            uint64_t one = 1;
            if (write(d->events_stop_fd, &one, sizeof(one)) < 0) {
                /* an eventfd write fails only on overflow */
            }
            pthread_join(d->events_thread, NULL);
            d->events_on = false;
        }
        return 0;
    }
    if (d->events_on)
        return 0;
    d->exit_cb = cb;
    d->exit_ctx = ctx;
    if (d->events_stop_fd < 0)
        return mt_error_set(err, MT_ERR_IO, "cannot create an eventfd");
    int e = pthread_create(&d->events_thread, NULL, events_main, d);
    if (e)
        return mt_error_sys(err, e, "cannot start the Docker events thread");
    d->events_on = true;
    return 0;
}
