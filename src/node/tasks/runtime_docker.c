/* runtime_docker.c - tasks as Docker containers, through the Docker Engine API on its unix
 * socket (http_unix.c for HTTP, jansson for JSON).
 *
 * A task is one container named spec->name, labelled manta.node / manta.task (and the
 * reference's com.docker.compose.project=node_<node xid>, which operators filter on), with
 * Docker's init as PID 1 (HostConfig.Init: docker-init, i.e. tini, forwards the stop's SIGTERM
 * to the task, which as PID 1 would ignore it without a handler, and reaps orphans), host
 * networking, the module file bound read-only at
 * /usr/src/module.pyz, one bind per dataset at /datasets/<name>, no capabilities,
 * no-new-privileges, the limits of the spec, and a json-file log sized from spec->log_limit.
 * The handle is the container's full ID.
 *
 * Every request has its own connection (so any number of threads may call the driver at
 * once) and a timeout: nothing here can hang on a stuck daemon or a slow registry. Errors are
 * sentences that name what failed and end with Docker's own explanation (its "message").
 * Unversioned API paths: the daemon's own API version, checked at open to be at least 1.40
 * (Docker 19.03, the first with DeviceRequests).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "err.h"
#include "http_unix.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "strbuf.h"

#define DEFAULT_SOCKET         "/var/run/docker.sock"
#define CONNECT_TIMEOUT_MS     5000L
#define QUERY_TIMEOUT_MS       30000L  /* version, inspect, list */
#define CHANGE_TIMEOUT_MS      120000L /* create, start, remove (a big layer can take a while) */
#define LOGS_TIMEOUT_MS        300000L
#define WAIT_TIMEOUT_MS        60000L /* after a stop returned: the exit must be near */
#define STOP_EXTRA_MS          60000L /* added to the grace period of a stop */
#define DEFAULT_PULL_TIMEOUT_S 300
#define MAX_JSON_BODY          (16u << 20) /* an answer we parse */
#define MAX_ERROR_BODY         (64u << 10) /* an error answer we quote */
#define MAX_PULL_LINE          (64u << 10) /* one line of pull progress */
#define MIN_API_MINOR          40          /* API 1.40 = Docker 19.03 */

typedef struct docker_rt {
    char *socket;   /* unix socket path */
    char *reg_user; /* containers.registry_username / _password, or NULL */
    char *reg_pass;
    int pull_timeout;   /* seconds, when the spec gives none */
    long ncpu;          /* the daemon host's CPUs, 0 if unknown */
    int cancel_fd;      /* eventfd: docker_cancel(everything): every request gives up */
    int pull_cancel_fd; /* eventfd: docker_cancel(any): image pulls give up */
    /* exit events: one thread reading GET /events (die of containers labelled manta.node) */
    int events_stop_fd; /* eventfd: written to stop the events thread */
    bool events_on;
    pthread_t events_thread;
    void (*exit_cb)(void *ctx, const char *handle);
    void *exit_ctx;
} docker_rt;

/* ---------------------------------------------------------------------------------------- */
/* HTTP over the unix socket                                                                 */

/* Consumes a successful (2xx) answer's body as it arrives; returns false to abort. */
typedef bool (*body_sink)(const char *data, size_t n, void *ud);

typedef struct http_call {
    /* request */
    const char *method; /* "GET", "POST", "DELETE" */
    const char *path;   /* "/containers/json?all=1" */
    const char *json;   /* POST body (NULL = empty) */
    const char *auth;   /* X-Registry-Auth or NULL */
    long timeout_ms;
    bool pull;      /* an image pull: given up at the first docker_cancel */
    body_sink sink; /* NULL: the body is collected in `body` (at most MAX_JSON_BODY) */
    void *sink_ud;
    /* answer */
    long status; /* HTTP status, 0 if none */
    strbuf body; /* collected body, or the error answer (at most MAX_ERROR_BODY) */
    bool too_big;
    bool sink_refused;
    http_response rs;
    mt_error *err; /* a failed exchange: its status an enum http_failure */
} http_call;

static void http_call_free(http_call *c)
{
    sb_free(&c->body);
    mt_error_free(&c->err);
}

/* How c's exchange failed (enum http_failure), HTTP_OK if it did not. */
static int http_failure_of(const http_call *c)
{
    return mt_error_status(c->err, HTTP_OK);
}

#define cleanup_call __attribute__((cleanup(http_call_free)))

static bool on_body(int status, const char *data, size_t n, void *ud)
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
static int http_do(const docker_rt *d, http_call *c)
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
        .sink = on_body,
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
static char *transport_reason(const http_call *c)
{
    return xstrdup(c->err ? mt_error_msg(c->err) : "unknown failure");
}

/* Set *err for a failed exchange: `what` says what we were doing ("Docker cannot start the
 * task container abc"). */
static int transport_error(const docker_rt *d, const http_call *c, const char *what, mt_error **err)
{
    cleanup_free char *why = transport_reason(c);
    if (c->too_big)
        return mt_error_set(err, MT_ERR_IO, "%s: Docker's answer is larger than %u bytes", what,
                            MAX_JSON_BODY);
    if (http_failure_of(c) == HTTP_TIMEOUT)
        return mt_error_set(err, MT_ERR_IO, "%s: Docker did not answer within %ld seconds", what,
                            c->timeout_ms / 1000);
    if (http_failure_of(c) == HTTP_CONNECT)
        return mt_error_set(err, MT_ERR_IO,
                            "%s: Docker daemon not accessible at unix://%s: %s (is dockerd "
                            "running, and may this user use its socket?)",
                            what, d->socket,
                            c->err && c->err->errnum ? strerror(c->err->errnum) : why);
    return mt_error_set(err, MT_ERR_IO, "%s: the request to Docker failed: %s", what, why);
}

/* Docker's own explanation of an error answer: its "message", else the text. Owned. */
static char *docker_message(const http_call *c)
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

static int status_code(long status)
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
static int api_error(const http_call *c, const char *what, mt_error **err)
{
    cleanup_free char *m = docker_message(c);
    return mt_error_set(err, status_code(c->status), "%s: %s", what, m);
}

/* The collected body as JSON (object or array). */
static json_t *body_json(const http_call *c, const char *what, mt_error **err)
{
    json_error_t je;
    json_t *j = json_loadb(c->body.buf ? c->body.buf : "", c->body.len, 0, &je);
    if (!j)
        mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer is not valid JSON: %s", what, je.text);
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */

/* A container ID or name: [A-Za-z0-9][A-Za-z0-9_.-]*, so it can go into a URL path as is. */
static bool handle_valid(const char *h)
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

static int check_handle(const char *h, const char *what, mt_error **err)
{
    if (handle_valid(h))
        return 0;
    return mt_error_set(err, MT_ERR_USAGE, "%s: \"%s\" is not a Docker container ID or name", what,
                        h ? h : "(null)");
}

/* An image reference: registry/path:tag@digest characters only (so it can go into a URL). */
static bool image_valid(const char *ref)
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

static char *url_escape(const char *s)
{
    return http_escape(s);
}

/* Base64 with the URL alphabet and padding (what Docker decodes X-Registry-Auth with). */
static char *base64url(const char *s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Split an image reference into fromImage and tag for POST /images/create ("busybox" ->
 * "busybox", "latest"; "r:5000/a/b:1" -> "r:5000/a/b", "1"; "a@sha256:.." -> "a", "sha256:.."). */
static void split_image(const char *ref, char **from, char **tag)
{
    const char *at = strchr(ref, '@');
    cleanup_free char *name = at ? xstrndup(ref, (size_t)(at - ref)) : xstrdup(ref);
    char *slash = strrchr(name, '/');
    char *colon = strrchr(name, ':');
    const char *t = "latest";
    if (colon && (!slash || colon > slash)) {
        *colon = '\0';
        t = colon + 1;
    }
    *tag = xstrdup(at ? at + 1 : t);
    *from = steal_ptr(name);
}

/* The registry an image comes from, as Docker's credential store names it. Owned. */
static char *image_registry(const char *ref)
{
    const char *slash = strchr(ref, '/');
    if (slash) {
        cleanup_free char *first = xstrndup(ref, (size_t)(slash - ref));
        if (strchr(first, '.') || strchr(first, ':') || strcmp(first, "localhost") == 0)
            return steal_ptr(first);
    }
    return xstrdup("https://index.docker.io/v1/");
}

/* Docker's RFC 3339 time ("2026-11-21T18:37:25.35946299Z") in ms since the epoch; 0 for the
 * zero time or anything unparsable. */
static int64_t parse_time_ms(const char *s)
{
    if (!s || strncmp(s, "0001-", 5) == 0)
        return 0;
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return 0;
    int64_t ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*rest - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off = 0; /* seconds east of UTC */
    if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) == 2)
            off = (*rest == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    return ((int64_t)t - off) * 1000 + ms;
}

/* X-Registry-Auth for pulling `image` with the configured credentials, or NULL. Owned. */
static char *registry_auth(const docker_rt *d, const char *image)
{
    if (!d->reg_user && !d->reg_pass)
        return NULL;
    cleanup_free char *server = image_registry(image);
    cleanup_json json_t *j = json_object();
    json_object_set_new(j, "username", json_string(d->reg_user ? d->reg_user : ""));
    json_object_set_new(j, "password", json_string(d->reg_pass ? d->reg_pass : ""));
    json_object_set_new(j, "serveraddress", json_string(server));
    char *text = json_dumps(j, JSON_COMPACT);
    if (!text)
        return NULL;
    char *b = base64url(text);
    explicit_bzero(text, strlen(text));
    free(text);
    return b;
}

/* ---------------------------------------------------------------------------------------- */
/* prepare: the image, pulled when missing                                                   */

typedef struct pull_state {
    strbuf line;
    bool skipping; /* inside an over-long line */
    char *error;   /* the last "error" of the progress stream */
    char *status;  /* the last "status" */
} pull_state;

static void pull_line(pull_state *ps, const char *s, size_t n)
{
    json_error_t je;
    cleanup_json json_t *j = json_loadb(s, n, 0, &je);
    if (!j)
        return;
    const char *e =
        json_string_value(json_object_get(json_object_get(j, "errorDetail"), "message"));
    if (!e)
        e = json_string_value(json_object_get(j, "error"));
    const char *st = json_string_value(json_object_get(j, "status"));
    if (e && *e) {
        free(ps->error);
        ps->error = xstrdup(e);
    }
    if (st && *st) {
        free(ps->status);
        ps->status = xstrdup(st);
    }
}

static bool pull_sink(const char *data, size_t n, void *ud)
{
    pull_state *ps = ud;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (!ps->skipping && ps->line.len)
                pull_line(ps, ps->line.buf, ps->line.len);
            sb_reset(&ps->line);
            ps->skipping = false;
        } else if (!ps->skipping) {
            if (ps->line.len >= MAX_PULL_LINE) {
                ps->skipping = true;
                sb_reset(&ps->line);
            } else {
                sb_putc(&ps->line, data[i]);
            }
        }
    }
    return true;
}

/* 1 if the image is there, 0 if not, -1 on error. */
static int image_present(docker_rt *d, const char *image, mt_error **err)
{
    cleanup_free char *path = xasprintf("/images/%s/json", image);
    cleanup_call http_call c = {.method = "GET", .path = path, .timeout_ms = QUERY_TIMEOUT_MS};
    cleanup_free char *what = xasprintf("Docker cannot look up image %s", image);
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status == 200)
        return 1;
    if (c.status == 404)
        return 0;
    return api_error(&c, what, err);
}

static int docker_prepare(runtime *rt, const task_spec *spec, mt_error **err)
{
    docker_rt *d = rt->impl;
    const char *image = spec->image;
    if (!image_valid(image))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the task's image \"%s\" is not a valid image reference",
                            image ? image : "");
    int have = image_present(d, image, err);
    if (have != 0)
        return have < 0 ? -1 : 0;

    int timeout_s = spec->pull_timeout > 0 ? spec->pull_timeout : d->pull_timeout;
    cleanup_free char *from = NULL, *tag = NULL;
    split_image(image, &from, &tag);
    cleanup_free char *efrom = url_escape(from), *etag = url_escape(tag);
    cleanup_free char *path = xasprintf("/images/create?fromImage=%s&tag=%s", efrom, etag);
    pull_state ps = {.line = STRBUF_INIT};
    cleanup_free char *auth = registry_auth(d, image);
    cleanup_call http_call c = {.method = "POST",
                                .path = path,
                                .auth = auth,
                                .timeout_ms = (long)timeout_s * 1000,
                                .pull = true,
                                .sink = pull_sink,
                                .sink_ud = &ps};
    cleanup_free char *what = xasprintf("Docker cannot pull image %s", image);
    int rc = http_do(d, &c);
    if (rc == 0 && ps.line.len && !ps.skipping)
        pull_line(&ps, ps.line.buf, ps.line.len);
    if (rc < 0 && http_failure_of(&c) == HTTP_ABORTED && !c.sink_refused) {
        rc =
            mt_error_set(err, MT_ERR_IO, "%s: the pull was cancelled (the node is stopping)", what);
    } else if (rc < 0 && http_failure_of(&c) == HTTP_TIMEOUT) {
        rc = mt_error_set(err, MT_ERR_IO,
                          "%s: the pull did not finish within %d seconds "
                          "(containers.pull_timeout)%s%s; check that the registry is reachable "
                          "from this host, or raise pull_timeout for large images",
                          what, timeout_s, ps.status ? "; last progress: " : "",
                          ps.status ? ps.status : "");
    } else if (rc < 0) {
        rc = transport_error(d, &c, what, err);
    } else if (c.status < 200 || c.status >= 300 || ps.error) {
        cleanup_free char *m = ps.error ? xstrdup(ps.error) : docker_message(&c);
        rc = mt_error_set(err, ps.error ? MT_ERR_GENERIC : status_code(c.status),
                          "%s: %s (check the image name, that its registry is reachable from "
                          "this host and, for a private registry, containers.registry_username "
                          "and registry_password)",
                          what, m);
    } else {
        int have2 = image_present(d, image, err);
        if (have2 == 0)
            rc =
                mt_error_set(err, MT_ERR_NOTFOUND, "%s: the pull ended without the image%s%s", what,
                             ps.status ? "; last progress: " : "", ps.status ? ps.status : "");
        else
            rc = have2 < 0 ? -1 : 0;
    }
    sb_free(&ps.line);
    free(ps.error);
    free(ps.status);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* create / start                                                                            */

static int jset_str(json_t *obj, const char *key, const char *val, const char *what, mt_error **err)
{
    json_t *s = json_string(val);
    if (!s)
        return mt_error_set(err, MT_ERR_CONFIG, "the task's %s is not valid UTF-8 text", what);
    json_object_set_new(obj, key, s);
    return 0;
}

static int jappend_str(json_t *arr, const char *val, const char *what, mt_error **err)
{
    json_t *s = json_string(val);
    if (!s)
        return mt_error_set(err, MT_ERR_CONFIG, "the task's %s \"%s\" is not valid UTF-8 text",
                            what, val);
    json_array_append_new(arr, s);
    return 0;
}

/* A host path Docker can bind: absolute, existing, without ':' or ',' (Binds syntax). */
static int check_bind_source(const char *path, bool want_file, const char *what, mt_error **err)
{
    if (!path || path[0] != '/')
        return mt_error_set(err, MT_ERR_CONFIG, "the %s path \"%s\" is not absolute", what,
                            path ? path : "");
    if (strchr(path, ':') || strchr(path, ','))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the %s path %s contains ':' or ',', which Docker bind mounts "
                            "cannot express; rename it",
                            what, path);
    struct stat st;
    if (stat(path, &st) != 0)
        return mt_error_sys(err, errno, "the %s %s cannot be mounted into the task", what, path);
    if (want_file && !S_ISREG(st.st_mode))
        return mt_error_set(err, MT_ERR_CONFIG, "the %s %s is not a regular file", what, path);
    return 0;
}

static bool dataset_name_valid(const char *n)
{
    return handle_valid(n) && strcmp(n, ".") != 0 && strcmp(n, "..") != 0;
}

/* The body of POST /containers/create. Owned text, NULL + *err when the spec is unusable. */
static char *create_body(const docker_rt *d, const task_spec *spec, mt_error **err)
{
    cleanup_json json_t *body = json_object();
    if (jset_str(body, "Image", spec->image, "image", err) < 0)
        return NULL;
    if (spec->argv && spec->argv[0]) {
        json_t *cmd = json_array();
        json_object_set_new(body, "Cmd", cmd);
        for (const char *const *a = spec->argv; *a; a++)
            if (jappend_str(cmd, *a, "command argument", err) < 0)
                return NULL;
    }
    json_t *env = json_array();
    json_object_set_new(body, "Env", env);
    for (const char *const *e = spec->env; e && *e; e++) {
        if (!strchr(*e, '=') || **e == '=') {
            mt_error_set(err, MT_ERR_CONFIG, "the task's environment entry \"%s\" is not KEY=value",
                         *e);
            return NULL;
        }
        if (jappend_str(env, *e, "environment entry", err) < 0)
            return NULL;
    }
    json_object_set_new(body, "Tty", json_false());
    json_object_set_new(body, "OpenStdin", json_false());
    json_object_set_new(body, "AttachStdin", json_false());
    json_t *labels = json_object();
    json_object_set_new(body, "Labels", labels);
    /* spec->node_xid is "<node xid>-<state folder tag>"; the reference's project is the node's
     * xid alone (xids are hex: no '-') */
    cleanup_free char *project =
        xasprintf("node_%.*s", (int)strcspn(spec->node_xid, "-"), spec->node_xid);
    if (jset_str(labels, "manta.node", spec->node_xid, "node id", err) < 0 ||
        jset_str(labels, "manta.task", spec->name, "name", err) < 0 ||
        jset_str(labels, "com.docker.compose.project", project, "node id", err) < 0)
        return NULL;

    json_t *hc = json_object();
    json_object_set_new(body, "HostConfig", hc);
    json_object_set_new(hc, "NetworkMode", json_string("host"));
    json_object_set_new(hc, "Init", json_true());
    json_t *binds = json_array();
    json_object_set_new(hc, "Binds", binds);
    if (spec->module_path) {
        if (check_bind_source(spec->module_path, true, "module file", err) < 0)
            return NULL;
        cleanup_free char *b = xasprintf("%s:/usr/src/module.pyz:ro", spec->module_path);
        if (jappend_str(binds, b, "module path", err) < 0)
            return NULL;
    }
    for (size_t i = 0; i < spec->ndatasets; i++) {
        const char *n = spec->dataset_names[i], *p = spec->dataset_paths[i];
        if (!dataset_name_valid(n)) {
            mt_error_set(err, MT_ERR_CONFIG,
                         "the dataset name \"%s\" cannot be a folder name under /datasets (use "
                         "letters, digits, '_', '.' and '-')",
                         n ? n : "");
            return NULL;
        }
        cleanup_free char *what = xasprintf("dataset \"%s\"", n);
        if (check_bind_source(p, false, what, err) < 0)
            return NULL;
        cleanup_free char *b =
            xasprintf("%s:/datasets/%s:%s", p, n, spec->datasets_rw ? "rw" : "ro");
        if (jappend_str(binds, b, "dataset path", err) < 0)
            return NULL;
    }
    if (spec->memory_bytes) {
        json_int_t m =
            spec->memory_bytes > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)spec->memory_bytes;
        json_object_set_new(hc, "Memory", json_integer(m));
        json_object_set_new(hc, "MemorySwap", json_integer(m)); /* no swap beyond the limit */
    }
    if (spec->cpus > 0) {
        double cpus = spec->cpus;
        if (d->ncpu > 0 && cpus > (double)d->ncpu)
            cpus = (double)d->ncpu; /* Docker refuses more CPUs than the host has */
        json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(cpus * 1e9 + 0.5)));
    }
    if (spec->pids_limit > 0)
        json_object_set_new(hc, "PidsLimit", json_integer(spec->pids_limit));
    json_t *capdrop = json_array();
    json_array_append_new(capdrop, json_string("ALL"));
    json_object_set_new(hc, "CapDrop", capdrop);
    json_t *secopt = json_array();
    json_array_append_new(secopt, json_string("no-new-privileges"));
    json_object_set_new(hc, "SecurityOpt", secopt);
    json_t *logcfg = json_object(), *logopts = json_object();
    json_object_set_new(logcfg, "Type", json_string("json-file"));
    if (spec->log_limit) {
        /* json-file counts its own JSON lines (about 60 bytes more per line than the output);
         * three files of max-size keep at least two full ones, i.e. the newest log_limit bytes
         * of output in all but pathological cases (floods of one-byte lines). */
        uint64_t sz = spec->log_limit < 65536 ? 65536 : spec->log_limit;
        cleanup_free char *s = xasprintf("%" PRIu64, sz);
        json_object_set_new(logopts, "max-size", json_string(s));
        json_object_set_new(logopts, "max-file", json_string("3"));
    }
    json_object_set_new(logcfg, "Config", logopts);
    json_object_set_new(hc, "LogConfig", logcfg);
    if (spec->gpu) {
        json_t *dr = json_object(), *caps = json_array(), *caps1 = json_array();
        json_object_set_new(dr, "Driver", json_string("nvidia"));
        json_object_set_new(dr, "Count", json_integer(-1));
        json_array_append_new(caps1, json_string("gpu"));
        json_array_append_new(caps, caps1);
        json_object_set_new(dr, "Capabilities", caps);
        json_t *drs = json_array();
        json_array_append_new(drs, dr);
        json_object_set_new(hc, "DeviceRequests", drs);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        mt_error_set(err, MT_ERR_GENERIC, "cannot encode the task container's specification");
        return NULL;
    }
    char *out = xstrdup(text);
    free(text);
    return out;
}

static int docker_create(runtime *rt, const task_spec *spec, char **handle, mt_error **err)
{
    docker_rt *d = rt->impl;
    const char *what = "Docker cannot create the task container";
    *handle = NULL;
    if (!handle_valid(spec->name))
        return mt_error_set(err, MT_ERR_USAGE,
                            "%s: the task name \"%s\" is not a valid container name", what,
                            spec->name ? spec->name : "");
    if (!spec->node_xid || !*spec->node_xid)
        return mt_error_set(err, MT_ERR_USAGE, "%s: the task has no node id", what);
    if (!image_valid(spec->image))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "%s: the image \"%s\" is not a valid image reference", what,
                            spec->image ? spec->image : "");
    cleanup_free char *json = create_body(d, spec, err);
    if (!json)
        return mt_error_wrap(err, "%s %s", what, spec->name);
    cleanup_free char *path = xasprintf("/containers/create?name=%s", spec->name);
    cleanup_call http_call c = {
        .method = "POST", .path = path, .json = json, .timeout_ms = CHANGE_TIMEOUT_MS};
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status != 201)
        return api_error(&c, what, err);
    cleanup_json json_t *j = body_json(&c, what, err);
    if (!j)
        return -1;
    const char *id = json_string_value(json_object_get(j, "Id"));
    if (!id || !handle_valid(id))
        return mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer has no container Id", what);
    *handle = xstrdup(id);
    return 0;
}

static int docker_start(runtime *rt, const char *handle, mt_error **err)
{
    docker_rt *d = rt->impl;
    cleanup_free char *what =
        xasprintf("Docker cannot start the task container %.12s", handle ? handle : "");
    if (check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s/start", handle);
    cleanup_call http_call c = {.method = "POST", .path = path, .timeout_ms = CHANGE_TIMEOUT_MS};
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status == 204 || c.status == 304) /* 304: already running */
        return 0;
    cleanup_free char *m = docker_message(&c);
    const char *hint = "";
    if (strstr(m, "device driver") || strstr(m, "nvidia"))
        hint = " (the task asks for GPUs: this host needs an NVIDIA GPU and the NVIDIA Container "
               "Toolkit configured for Docker)";
    else if (strstr(m, "docker-init") || strstr(m, "init-path"))
        hint = " (task containers run under Docker's init: install it (Debian's docker.io ships "
               "/usr/bin/docker-init, from tini) or set \"init-path\" in Docker's daemon.json)";
    return mt_error_set(err, status_code(c.status), "%s: %s%s", what, m, hint);
}

/* ---------------------------------------------------------------------------------------- */
/* stop / inspect / remove / list                                                           */

static int docker_stop(runtime *rt, const char *handle, int grace_s, mt_error **err)
{
    docker_rt *d = rt->impl;
    cleanup_free char *what =
        xasprintf("Docker cannot stop the task container %.12s", handle ? handle : "");
    if (check_handle(handle, what, err) < 0)
        return -1;
    if (grace_s < 0)
        grace_s = 0;
    cleanup_free char *path = xasprintf("/containers/%s/stop?t=%d", handle, grace_s);
    cleanup_call http_call c = {
        .method = "POST", .path = path, .timeout_ms = grace_s * 1000L + STOP_EXTRA_MS};
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status == 404) /* gone already: nothing left to stop */
        return 0;
    if (c.status != 204 && c.status != 304) /* 304: not running */
        return api_error(&c, what, err);

    /* The stop answers once the kill was sent and seen; wait for the exit to be recorded. */
    cleanup_free char *wpath = xasprintf("/containers/%s/wait?condition=not-running", handle);
    cleanup_call http_call w = {.method = "POST", .path = wpath, .timeout_ms = WAIT_TIMEOUT_MS};
    if (http_do(d, &w) < 0) {
        if (http_failure_of(&w) == HTTP_TIMEOUT)
            return mt_error_set(err, MT_ERR_IO,
                                "%s: it has not exited %ld seconds after it was killed", what,
                                WAIT_TIMEOUT_MS / 1000);
        return transport_error(d, &w, what, err);
    }
    if (w.status == 200 || w.status == 404)
        return 0;
    return api_error(&w, what, err);
}

static int docker_inspect(runtime *rt, const char *handle, rt_status *st, mt_error **err)
{
    docker_rt *d = rt->impl;
    memset(st, 0, sizeof(*st));
    cleanup_free char *what =
        xasprintf("Docker cannot inspect the task container %.12s", handle ? handle : "");
    if (check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s/json", handle);
    cleanup_call http_call c = {.method = "GET", .path = path, .timeout_ms = QUERY_TIMEOUT_MS};
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status == 404) {
        st->state = RT_GONE;
        return 0;
    }
    if (c.status != 200)
        return api_error(&c, what, err);
    cleanup_json json_t *j = body_json(&c, what, err);
    if (!j)
        return -1;
    json_t *s = json_object_get(j, "State");
    const char *status = json_string_value(json_object_get(s, "Status"));
    if (!status)
        return mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer has no State.Status", what);
    if (strcmp(status, "created") == 0)
        st->state = RT_CREATED;
    else if (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0 ||
             strcmp(status, "removing") == 0)
        st->state = RT_EXITED;
    else /* running, restarting, paused, and anything newer: not finished */
        st->state = RT_RUNNING;
    st->started_at_ms = parse_time_ms(json_string_value(json_object_get(s, "StartedAt")));
    if (st->state == RT_EXITED) {
        st->exit_code = (int)json_integer_value(json_object_get(s, "ExitCode"));
        st->oom_killed = json_is_true(json_object_get(s, "OOMKilled"));
        st->finished_at_ms = parse_time_ms(json_string_value(json_object_get(s, "FinishedAt")));
        /* Docker records StartedAt after runc returns: a task that exits at once can show a
         * FinishedAt before it */
        if (st->finished_at_ms && st->finished_at_ms < st->started_at_ms)
            st->finished_at_ms = st->started_at_ms;
    }
    return 0;
}

static int docker_remove(runtime *rt, const char *handle, mt_error **err)
{
    docker_rt *d = rt->impl;
    cleanup_free char *what =
        xasprintf("Docker cannot remove the task container %.12s", handle ? handle : "");
    if (check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s?force=1&v=1", handle);
    cleanup_call http_call c = {.method = "DELETE", .path = path, .timeout_ms = CHANGE_TIMEOUT_MS};
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status == 204 || c.status == 404)
        return 0;
    if (c.status == 409) {
        cleanup_free char *m = docker_message(&c);
        if (strstr(m, "already in progress"))
            return 0;
    }
    return api_error(&c, what, err);
}

static int docker_list(runtime *rt, const char *node_xid, char ***handles, mt_error **err)
{
    docker_rt *d = rt->impl;
    const char *what = "Docker cannot list the node's task containers";
    *handles = NULL;
    cleanup_json json_t *filt = json_object();
    json_t *lab = json_array();
    json_object_set_new(filt, "label", lab);
    cleanup_free char *sel = xasprintf("manta.node=%s", node_xid ? node_xid : "");
    json_t *sj = json_string(sel);
    if (!sj)
        return mt_error_set(err, MT_ERR_USAGE, "%s: the node id is not valid UTF-8", what);
    json_array_append_new(lab, sj);
    char *ftext = json_dumps(filt, JSON_COMPACT);
    cleanup_free char *efilt = url_escape(ftext ? ftext : "{}");
    free(ftext);
    cleanup_free char *path = xasprintf("/containers/json?all=1&filters=%s", efilt);
    cleanup_call http_call c = {.method = "GET", .path = path, .timeout_ms = QUERY_TIMEOUT_MS};
    if (http_do(d, &c) < 0)
        return transport_error(d, &c, what, err);
    if (c.status != 200)
        return api_error(&c, what, err);
    cleanup_json json_t *j = body_json(&c, what, err);
    if (!j)
        return -1;
    if (!json_is_array(j))
        return mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer is not a list", what);
    size_t n = json_array_size(j), k = 0;
    char **out = xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(j, i), "Id"));
        if (id && handle_valid(id))
            out[k++] = xstrdup(id);
    }
    *handles = out;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* logs: the multiplexed stream, demultiplexed into a ring of the newest `limit` bytes       */

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

static int docker_logs(runtime *rt, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
                       mt_error **err)
{
    docker_rt *d = rt->impl;
    *out = NULL;
    *len = 0;
    cleanup_free char *what =
        xasprintf("Docker cannot read the logs of the task container %.12s", handle ? handle : "");
    if (check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s/logs?stdout=1&stderr=1", handle);
    log_ring r = {.limit = limit};
    cleanup_call http_call c = {.method = "GET",
                                .path = path,
                                .timeout_ms = LOGS_TIMEOUT_MS,
                                .sink = log_sink,
                                .sink_ud = &r};
    int rc = http_do(d, &c);
    if (rc < 0 && c.sink_refused && c.status >= 200 && c.status < 300)
        rc = mt_error_set(err, MT_ERR_PARSE, "%s: the log stream is not in Docker's format", what);
    else if (rc < 0)
        rc = transport_error(d, &c, what, err);
    else if (c.status != 200)
        rc = api_error(&c, what, err);
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

/* ---------------------------------------------------------------------------------------- */
/* exit events                                                                               */

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
    if (die && id && handle_valid(id))
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
    cleanup_free char *filt =
        url_escape("{\"type\":[\"container\"],\"event\":[\"die\"],\"label\":[\"manta.node\"]}");
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
            .sink = on_body,
            .ud = &c,
            .cancel_fd = d->events_stop_fd,
        };
        if (missed) /* the stream was down: exits in between are found by one inspect each */
            d->exit_cb(d->exit_ctx, NULL);
        int rc = http_unix_request(&rq, &c.rs, &c.err);
        sb_free(&es.line);
        if (http_failure_of(&c) == HTTP_ABORTED && events_wait_stop(d, 0))
            break;
        bool timed_out = rc < 0 && http_failure_of(&c) == HTTP_TIMEOUT;
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

static int docker_watch_exits(runtime *rt, void (*cb)(void *ctx, const char *handle), void *ctx,
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

static void docker_cancel(runtime *rt, bool everything)
{
    docker_rt *d = rt->impl;
    uint64_t one = 1;
    if (d->pull_cancel_fd > 0 && write(d->pull_cancel_fd, &one, sizeof(one)) < 0) {
        /* only on overflow */
    }
    if (everything && d->cancel_fd > 0 && write(d->cancel_fd, &one, sizeof(one)) < 0) {
        /* only on overflow */
    }
}

/* ---------------------------------------------------------------------------------------- */
/* open / free                                                                               */

static void docker_free(runtime *rt)
{
    if (!rt)
        return;
    docker_rt *d = rt->impl;
    if (d) {
        docker_watch_exits(rt, NULL, NULL, NULL);
        if (d->cancel_fd >= 0)
            close(d->cancel_fd);
        if (d->pull_cancel_fd >= 0)
            close(d->pull_cancel_fd);
        if (d->events_stop_fd >= 0)
            close(d->events_stop_fd);
        free(d->socket);
        free(d->reg_user);
        if (d->reg_pass)
            explicit_bzero(d->reg_pass, strlen(d->reg_pass));
        free(d->reg_pass);
        free(d);
    }
    free(rt);
}

static const runtime_ops docker_ops = {
    .name = "docker",
    .prepare = docker_prepare,
    .create = docker_create,
    .start = docker_start,
    .stop = docker_stop,
    .inspect = docker_inspect,
    .logs = docker_logs,
    .remove = docker_remove,
    .list = docker_list,
    .watch_exits = docker_watch_exits,
    .cancel = docker_cancel,
    .free = docker_free,
};

/* The socket: containers.docker_socket when the file sets it, else $DOCKER_HOST (unix://PATH),
 * else the default. Owned, or NULL + *err. */
static char *resolve_socket(const node_config *cfg, mt_error **err)
{
    const char *conf = cfg ? cfg->containers.docker_socket : NULL;
    bool explicit_conf = false;
    int ki = config_key_index("containers.docker_socket");
    if (cfg && cfg->origin && ki >= 0 && cfg->origin[ki] != CFG_FROM_DEFAULT &&
        cfg->origin[ki] != CFG_MISSING_ENV && conf && *conf)
        explicit_conf = true;
    const char *dh = getenv("DOCKER_HOST");
    if (!explicit_conf && dh && *dh) {
        if (strncmp(dh, "unix://", 7) != 0 || !dh[7]) {
            mt_error_set(err, MT_ERR_CONFIG,
                         "Docker daemon not accessible: DOCKER_HOST=%s is not a unix:// socket "
                         "address (manta-node talks to Docker over its unix socket only); "
                         "unset DOCKER_HOST or set containers.docker_socket",
                         dh);
            return NULL;
        }
        return xstrdup(dh + 7);
    }
    if (conf && strncmp(conf, "unix://", 7) == 0)
        conf += 7;
    return xstrdup(conf && *conf ? conf : DEFAULT_SOCKET);
}

runtime *runtime_docker_new(const node_config *cfg, mt_error **err)
{
    char *sock = resolve_socket(cfg, err);
    if (!sock)
        return NULL;
    docker_rt *d = xcalloc(1, sizeof(*d));
    d->socket = sock;
    d->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->pull_cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->events_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cfg && cfg->containers.registry_username && *cfg->containers.registry_username)
        d->reg_user = xstrdup(cfg->containers.registry_username);
    if (cfg && cfg->containers.registry_password && *cfg->containers.registry_password)
        d->reg_pass = xstrdup(cfg->containers.registry_password);
    d->pull_timeout = cfg && cfg->containers.pull_timeout > 0 ? (int)cfg->containers.pull_timeout
                                                              : DEFAULT_PULL_TIMEOUT_S;
    runtime *rt = xcalloc(1, sizeof(*rt));
    rt->ops = &docker_ops;
    rt->impl = d;

    cleanup_call http_call c = {
        .method = "GET", .path = "/version", .timeout_ms = QUERY_TIMEOUT_MS};
    if (http_do(d, &c) < 0) {
        cleanup_free char *why = transport_reason(&c);
        if (http_failure_of(&c) == HTTP_TIMEOUT)
            mt_error_set(err, MT_ERR_IO,
                         "Docker daemon not accessible at unix://%s: it did not answer within "
                         "%ld seconds",
                         d->socket, QUERY_TIMEOUT_MS / 1000);
        else
            mt_error_set(err, MT_ERR_IO,
                         "Docker daemon not accessible at unix://%s: %s (is dockerd running, "
                         "and may this user use its socket?)",
                         d->socket, why);
        docker_free(rt);
        return NULL;
    }
    if (c.status != 200) {
        cleanup_free char *m = docker_message(&c);
        mt_error_set(err, MT_ERR_IO,
                     "Docker daemon not accessible at unix://%s: GET /version answered: %s",
                     d->socket, m);
        docker_free(rt);
        return NULL;
    }
    json_error_t je;
    cleanup_json json_t *v = json_loadb(c.body.buf ? c.body.buf : "", c.body.len, 0, &je);
    const char *api = json_string_value(json_object_get(v, "ApiVersion"));
    const char *ver = json_string_value(json_object_get(v, "Version"));
    int major = 0, minor = 0;
    if (!api || sscanf(api, "%d.%d", &major, &minor) != 2) {
        mt_error_set(err, MT_ERR_IO,
                     "Docker daemon not accessible at unix://%s: the program answering there "
                     "is not a Docker Engine (no ApiVersion in GET /version)",
                     d->socket);
        docker_free(rt);
        return NULL;
    }
    if (major < 1 || (major == 1 && minor < MIN_API_MINOR)) {
        mt_error_set(err, MT_ERR_CONFIG,
                     "Docker %s (API %s) at unix://%s is too old: manta-node needs Docker 19.03 "
                     "or newer (API 1.%d)",
                     ver ? ver : "?", api, d->socket, MIN_API_MINOR);
        docker_free(rt);
        return NULL;
    }

    /* The host's CPU count, to keep NanoCpus within what Docker accepts (optional). */
    cleanup_call http_call ic = {.method = "GET", .path = "/info", .timeout_ms = QUERY_TIMEOUT_MS};
    if (http_do(d, &ic) == 0 && ic.status == 200) {
        cleanup_json json_t *info = json_loadb(ic.body.buf ? ic.body.buf : "", ic.body.len, 0, &je);
        json_int_t n = json_integer_value(json_object_get(info, "NCPU"));
        if (n > 0)
            d->ncpu = (long)n;
    }
    return rt;
}
