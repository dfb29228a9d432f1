/* http_unix.c - see http_unix.h. */
#include "http_unix.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "strbuf.h"

/* The exchange failed: *err says how in words, its status which way (enum http_failure), its
 * errnum the system's error if any. Returns -1. */
static int fail(mt_error **err, int kind, int e, const char *what)
{
    if (e)
        mt_error_sys(err, e, "%s", what);
    else
        mt_error_set(err, MT_ERR_IO, "%s", what);
    if (err && *err)
        (*err)->status = kind;
    return -1;
}

/* Wait for fd to be ready before the deadline: 1 ready, 0 timeout, -1 error, -2 cancelled
 * (cancel_fd > 0 became readable). */
static int wait_fd(int fd, short ev, long deadline, int cancel_fd)
{
    for (;;) {
        long left = deadline - clock_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p[2] = {{.fd = fd, .events = ev}, {.fd = cancel_fd, .events = POLLIN}};
        int r = poll(p, cancel_fd > 0 ? 2 : 1, (int)(left > 60000 ? 60000 : left));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (cancel_fd > 0 && p[1].revents)
            return -2;
        if (r > 0)
            return 1;
    }
}

struct conn {
    int fd;
    int cancel_fd;
    long deadline;
    char buf[65536];
    size_t off, len;
    bool eof;
    http_response *rs;
    mt_error **err;
};

/* Refill the buffer: 1 data, 0 EOF, -1 failure (*c->err set). */
static int fill(struct conn *c)
{
    if (c->off < c->len)
        return 1;
    if (c->eof)
        return 0;
    c->off = c->len = 0;
    for (;;) {
        int w = wait_fd(c->fd, POLLIN, c->deadline, c->cancel_fd);
        if (w == 0)
            return fail(c->err, HTTP_TIMEOUT, 0, "no answer before the deadline");
        if (w == -2)
            return fail(c->err, HTTP_ABORTED, 0, "cancelled");
        if (w < 0)
            return fail(c->err, HTTP_IO, errno, "cannot wait for the answer");
        ssize_t n = read(c->fd, c->buf, sizeof(c->buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return fail(c->err, HTTP_IO, errno, "cannot read the answer");
        if (n == 0) {
            c->eof = true;
            return 0;
        }
        c->len = (size_t)n;
        return 1;
    }
}

/* One header/chunk-size line (CRLF stripped) into sb, at most 16 KiB. */
static int read_line(struct conn *c, strbuf *sb)
{
    sb_reset(sb);
    for (;;) {
        int r = fill(c);
        if (r < 0)
            return -1;
        if (r == 0)
            return fail(c->err, HTTP_PROTOCOL, 0, "the answer ended in the middle of a line");
        char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
        size_t n = nl ? (size_t)(nl - (c->buf + c->off)) : c->len - c->off;
        sb_append(sb, c->buf + c->off, n);
        c->off += n + (nl ? 1 : 0);
        if (sb->len > 16384)
            return fail(c->err, HTTP_PROTOCOL, 0, "an answer line is too long");
        if (nl) {
            if (sb->len && sb->buf[sb->len - 1] == '\r')
                sb->buf[--sb->len] = '\0';
            return 0;
        }
    }
}

/* Pass `want` body bytes (or until EOF when want < 0) to the sink. */
static int pass_body(struct conn *c, const http_request *rq, long long want)
{
    while (want != 0) {
        int r = fill(c);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (want > 0)
                return fail(c->err, HTTP_PROTOCOL, 0, "the answer ended early");
            return 0;
        }
        size_t n = c->len - c->off;
        if (want > 0 && (long long)n > want)
            n = (size_t)want;
        if (rq->sink && !rq->sink(c->rs->status, c->buf + c->off, n, rq->ud))
            return fail(c->err, HTTP_ABORTED, 0, "the answer was refused");
        c->off += n;
        if (want > 0)
            want -= (long long)n;
    }
    return 0;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n) {
        int w = wait_fd(c->fd, POLLOUT, c->deadline, c->cancel_fd);
        if (w == 0)
            return fail(c->err, HTTP_TIMEOUT, 0,
                        "the request could not be sent before the deadline");
        if (w == -2)
            return fail(c->err, HTTP_ABORTED, 0, "cancelled");
        if (w < 0)
            return fail(c->err, HTTP_IO, errno, "cannot send the request");
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k < 0)
            return fail(c->err, HTTP_IO, errno, "cannot send the request");
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int exchange(struct conn *c, const http_request *rq, http_response *rs)
{
    strbuf req = STRBUF_INIT;
    sb_printf(&req,
              "%s %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: manta-node\r\n"
              "Connection: close\r\n",
              rq->method, rq->path);
    for (const char *const *h = rq->headers; h && *h; h++)
        sb_printf(&req, "%s\r\n", *h);
    if (rq->body || strcmp(rq->method, "POST") == 0)
        sb_printf(&req, "Content-Length: %zu\r\n", rq->body ? rq->body_len : 0);
    sb_puts(&req, "\r\n");
    int rc = send_all(c, req.buf, req.len);
    sb_free(&req);
    if (rc < 0 || (rq->body && rq->body_len && send_all(c, rq->body, rq->body_len) < 0))
        return -1;

    cleanup_strbuf strbuf line = STRBUF_INIT;
    if (read_line(c, &line) < 0)
        return -1;
    int status = 0;
    if (sscanf(sb_str(&line), "HTTP/1.%*d %d", &status) != 1 || status < 100)
        return fail(c->err, HTTP_PROTOCOL, 0, "not an HTTP answer");
    rs->status = status;
    long long length = -1;
    bool chunked = false;
    for (;;) {
        if (read_line(c, &line) < 0)
            return -1;
        if (!line.len)
            break;
        const char *l = sb_str(&line);
        if (!strncasecmp(l, "Content-Length:", 15))
            length = strtoll(l + 15, NULL, 10);
        else if (!strncasecmp(l, "Transfer-Encoding:", 18) && strcasestr(l + 18, "chunked"))
            chunked = true;
    }
    if (status == 204 || status == 304 || !strcmp(rq->method, "HEAD"))
        return 0;
    if (!chunked)
        return pass_body(c, rq, length);
    for (;;) {
        if (read_line(c, &line) < 0)
            return -1;
        char *end;
        long long n = strtoll(sb_str(&line), &end, 16);
        if (end == sb_str(&line) || n < 0)
            return fail(c->err, HTTP_PROTOCOL, 0, "a malformed chunk");
        if (n == 0)
            return 0; /* trailers are not needed: the connection closes */
        if (pass_body(c, rq, n) < 0 || read_line(c, &line) < 0)
            return -1;
    }
}

int http_unix_request(const http_request *rq, http_response *rs, mt_error **err)
{
    memset(rs, 0, sizeof(*rs));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(rq->socket) >= sizeof(sa.sun_path))
        return fail(err, HTTP_CONNECT, ENAMETOOLONG, "the socket path is too long");
    strcpy(sa.sun_path, rq->socket);
    struct conn c = {.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0),
                     .cancel_fd = rq->cancel_fd,
                     .rs = rs,
                     .err = err};
    if (c.fd < 0)
        return fail(err, HTTP_CONNECT, errno, "cannot create a socket");
    long start = clock_mono_ms();
    c.deadline = start + (rq->timeout_ms > 0 ? rq->timeout_ms : 30000);
    int rc = connect(c.fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc < 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
        long cd = start + (rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : 5000);
        int w = wait_fd(c.fd, POLLOUT, cd < c.deadline ? cd : c.deadline, c.cancel_fd);
        int e = 0;
        socklen_t el = sizeof(e);
        if (w <= 0 || getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
            close(c.fd);
            return fail(err, HTTP_CONNECT, w == 0 ? ETIMEDOUT : (e ? e : errno), "cannot connect");
        }
    } else if (rc < 0) {
        int e = errno;
        close(c.fd);
        return fail(err, HTTP_CONNECT, e, "cannot connect");
    }
    rc = exchange(&c, rq, rs);
    close(c.fd);
    return rc;
}

char *http_escape(const char *s)
{
    strbuf sb = STRBUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            sb_putc(&sb, (char)*p);
        else
            sb_printf(&sb, "%%%02X", *p);
    }
    return sb_steal(&sb);
}
