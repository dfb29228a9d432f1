/* docker_logs.c - the Docker driver's logs: GET /containers/<id>/logs, Docker's multiplexed
 * stream demultiplexed into a ring that keeps the newest `limit` bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_docker_impl.h"

typedef struct log_ring {
    uint64_t limit; /* 0 = keep everything */
    uint8_t *buf;
    size_t cap, len, start; /* linear (start 0) until full, then circular over limit bytes */
    /* demultiplexing: 8-byte headers {stream, 0, 0, 0, size32be} then size bytes */
    bool raw;     /* not multiplexed (a TTY container): bytes as they come */
    bool decided; /* the first header was checked */
    uint8_t hdr[8];
    size_t hdr_len;
    uint32_t remaining;
} log_ring;

static void ring_put(log_ring *r, const uint8_t *p, size_t n)
{
    if (!n)
        return;
    if (!r->limit || r->len + n <= r->limit) { /* still linear */
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            if (cap < r->len + n)
                cap = r->len + n;
            if (r->limit && cap > r->limit)
                cap = (size_t)r->limit;
            r->buf = xrealloc(r->buf, cap);
            r->cap = cap;
        }
        memcpy(r->buf + r->len, p, n);
        r->len += n;
        return;
    }
    size_t lim = (size_t)r->limit;
    if (r->cap < lim) { /* data is linear from 0 here */
        r->buf = xrealloc(r->buf, lim);
        r->cap = lim;
    }
    if (n >= lim) {
        memcpy(r->buf, p + n - lim, lim);
        r->start = 0;
        r->len = lim;
        return;
    }
    size_t pos = (r->start + r->len) % lim;
    size_t first = lim - pos < n ? lim - pos : n;
    memcpy(r->buf + pos, p, first);
    memcpy(r->buf, p + first, n - first);
    if (r->len + n > lim) {
        r->start = (r->start + (r->len + n - lim)) % lim;
        r->len = lim;
    } else {
        r->len += n;
    }
}

static bool log_sink(const char *data, size_t n, void *ud)
{
    log_ring *r = ud;
    const uint8_t *p = (const uint8_t *)data;
    while (n) {
        if (r->raw) {
            ring_put(r, p, n);
            return true;
        }
        if (r->remaining == 0) {
            size_t take = 8 - r->hdr_len < n ? 8 - r->hdr_len : n;
            memcpy(r->hdr + r->hdr_len, p, take);
            r->hdr_len += take;
            p += take;
            n -= take;
            if (r->hdr_len < 8)
                return true;
            r->hdr_len = 0;
            bool valid = r->hdr[0] <= 2 && !r->hdr[1] && !r->hdr[2] && !r->hdr[3];
            if (!valid && !r->decided) { /* a TTY container: no frames at all */
                r->raw = true;
                ring_put(r, r->hdr, 8);
                continue;
            }
            r->decided = true;
            if (!valid)
                return false; /* a broken stream: stop rather than store garbage */
            r->remaining = (uint32_t)r->hdr[4] << 24 | (uint32_t)r->hdr[5] << 16 |
                           (uint32_t)r->hdr[6] << 8 | r->hdr[7];
            continue;
        }
        size_t take = r->remaining < n ? r->remaining : n;
        ring_put(r, p, take);
        r->remaining -= (uint32_t)take;
        p += take;
        n -= take;
    }
    return true;
}

int docker_logs(runtime *rt, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
                mt_error **err)
{
    docker_rt *d = rt->impl;
    *out = NULL;
    *len = 0;
    cleanup_free char *what =
        xasprintf("Docker cannot read the logs of the task container %.12s", handle ? handle : "");
    if (docker_check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s/logs?stdout=1&stderr=1", handle);
    log_ring r = {.limit = limit};
    cleanup_call http_call c = {.method = "GET",
                                .path = path,
                                .timeout_ms = LOGS_TIMEOUT_MS,
                                .sink = log_sink,
                                .sink_ud = &r};
    int rc = docker_http_do(d, &c);
    if (rc < 0 && c.sink_refused && c.status >= 200 && c.status < 300)
        rc = mt_error_set(err, MT_ERR_PARSE, "%s: the log stream is not in Docker's format", what);
    else if (rc < 0)
        rc = docker_transport_error(d, &c, what, err);
    else if (c.status != 200)
        rc = docker_api_error(&c, what, err);
    if (rc < 0) {
        free(r.buf);
        return -1;
    }
    uint8_t *o = xmalloc(r.len + 1);
    size_t lim = r.cap;
    size_t first = r.len;
    if (r.start + r.len > lim)
        first = lim - r.start;
    if (r.len)
        memcpy(o, r.buf + r.start, first);
    if (r.len > first)
        memcpy(o + first, r.buf, r.len - first);
    o[r.len] = '\0';
    *out = o;
    *len = r.len;
    free(r.buf);
    return 0;
}
