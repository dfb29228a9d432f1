/* docker_api.c - the Docker driver's Engine API client: one HTTP request per connection over
 * the unix socket (http_unix.c), with a timeout and cancellation; Docker's error answers turned
 * into sentences; the names that go into URL paths checked. See runtime_docker_impl.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_unix.h"
#include "json.h"
#include "mem.h"
#include "runtime_docker_impl.h"
#include "strbuf.h"

void docker_http_call_free(http_call *c)
{
    sb_free(&c->body);
    mt_error_free(&c->err);
}

/* How c's exchange failed (enum http_failure), HTTP_OK if it did not. */
int docker_http_failure_of(const http_call *c)
{
    return mt_error_status(c->err, HTTP_OK);
}

bool docker_on_body(int status, const char *data, size_t n, void *ud)
{
    http_call *c = ud;
    c->status = status;
    bool ok = status >= 200 && status < 300;
    if (ok && c->sink) {
        if (!c->sink(data, n, c->sink_ud)) {
            c->sink_refused = true;
            return false;
        }
        return true;
    }
    size_t cap = ok ? MAX_JSON_BODY : MAX_ERROR_BODY;
    if (c->body.len + n > cap) {
        if (ok) {
            c->too_big = true;
            return false;
        }
        sb_append(&c->body, data, cap - c->body.len); /* quote the beginning of an error */
        return true;
    }
    sb_append(&c->body, data, n);
    return true;
}

/* Perform one request. Returns 0 when Docker answered (any status), -1 when the exchange
 * failed (c->rs says why). */
int docker_http_do(const docker_rt *d, http_call *c)
{
    c->status = 0;
    c->too_big = c->sink_refused = false;
    sb_reset(&c->body);
    cleanup_free char *auth_hdr = c->auth ? xasprintf("X-Registry-Auth: %s", c->auth) : NULL;
    const char *hdrs[3] = {NULL, NULL, NULL};
    size_t nh = 0;
    if (c->json)
        hdrs[nh++] = "Content-Type: application/json";
    if (auth_hdr)
        hdrs[nh++] = auth_hdr;
    const char *b = c->json ? c->json : (strcmp(c->method, "POST") == 0 ? "" : NULL);
    http_request rq = {
        .socket = d->socket,
        .method = c->method,
        .path = c->path,
        .headers = hdrs,
        .body = b,
        .body_len = b ? strlen(b) : 0,
        .timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : QUERY_TIMEOUT_MS,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .sink = docker_on_body,
        .ud = c,
        .cancel_fd = c->pull ? d->pull_cancel_fd : d->cancel_fd,
    };
    mt_error_free(&c->err);
    int rc = http_unix_request(&rq, &c->rs, &c->err);
    if (c->rs.status)
        c->status = c->rs.status;
    return rc;
}

/* Why the exchange failed, in words. Owned. */
char *docker_transport_reason(const http_call *c)
{
    return xstrdup(c->err ? mt_error_msg(c->err) : "unknown failure");
}

/* Set *err for a failed exchange: `what` says what we were doing ("Docker cannot start the
 * task container abc"). */
int docker_transport_error(const docker_rt *d, const http_call *c, const char *what, mt_error **err)
{
    cleanup_free char *why = docker_transport_reason(c);
    if (c->too_big)
        return mt_error_set(err, MT_ERR_IO, "%s: Docker's answer is larger than %u bytes", what,
                            MAX_JSON_BODY);
    if (docker_http_failure_of(c) == HTTP_TIMEOUT)
        return mt_error_set(err, MT_ERR_IO, "%s: Docker did not answer within %ld seconds", what,
                            c->timeout_ms / 1000);
    if (docker_http_failure_of(c) == HTTP_CONNECT)
        return mt_error_set(err, MT_ERR_IO,
                            "%s: Docker daemon not accessible at unix://%s: %s (is dockerd "
                            "running, and may this user use its socket?)",
                            what, d->socket,
                            c->err && c->err->errnum ? strerror(c->err->errnum) : why);
    return mt_error_set(err, MT_ERR_IO, "%s: the request to Docker failed: %s", what, why);
}

/* Docker's own explanation of an error answer: its "message", else the text. Owned. */
char *docker_message(const http_call *c)
{
    json_error_t je;
    cleanup_json json_t *j = c->body.len ? json_loadb(c->body.buf, c->body.len, 0, &je) : NULL;
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    char *out;
    if (m && *m) {
        out = xstrdup(m);
    } else if (c->body.len) {
        out = xstrdup(sb_str(&c->body));
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
            out[--n] = '\0';
        if (!n) {
            free(out);
            out = xasprintf("HTTP status %ld", c->status);
        }
    } else {
        out = xasprintf("HTTP status %ld", c->status);
    }
    return out;
}

int docker_status_code(long status)
{
    if (status == 404)
        return MT_ERR_NOTFOUND;
    if (status == 409)
        return MT_ERR_EXISTS;
    if (status == 400)
        return MT_ERR_CONFIG;
    return MT_ERR_GENERIC;
}

/* Set *err for an error answer: "<what>: <Docker's message>". */
int docker_api_error(const http_call *c, const char *what, mt_error **err)
{
    cleanup_free char *m = docker_message(c);
    return mt_error_set(err, docker_status_code(c->status), "%s: %s", what, m);
}

/* The collected body as JSON (object or array). */
json_t *docker_body_json(const http_call *c, const char *what, mt_error **err)
{
    json_error_t je;
    json_t *j = json_loadb(c->body.buf ? c->body.buf : "", c->body.len, 0, &je);
    if (!j)
        mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer is not valid JSON: %s", what, je.text);
    return j;
}

/* ---- names that go into URLs --------------------------------------------------------------- */

/* A container ID or name: [A-Za-z0-9][A-Za-z0-9_.-]*, so it can go into a URL path as is. */
bool docker_handle_valid(const char *h)
{
    if (!h || !*h || strlen(h) > 255)
        return false;
    for (const char *p = h; *p; p++) {
        bool alnum =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum && (p == h || (*p != '_' && *p != '.' && *p != '-')))
            return false;
    }
    return true;
}

int docker_check_handle(const char *h, const char *what, mt_error **err)
{
    if (docker_handle_valid(h))
        return 0;
    return mt_error_set(err, MT_ERR_USAGE, "%s: \"%s\" is not a Docker container ID or name", what,
                        h ? h : "(null)");
}

/* An image reference: registry/path:tag@digest characters only (so it can go into a URL). */
bool docker_image_valid(const char *ref)
{
    if (!ref || !*ref || strlen(ref) > 1024 || *ref == '-' || *ref == '/' || *ref == ':')
        return false;
    for (const char *p = ref; *p; p++) {
        bool alnum =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum && !strchr("._-/:@", *p))
            return false;
    }
    return true;
}

char *docker_url_escape(const char *s)
{
    return http_escape(s);
}
