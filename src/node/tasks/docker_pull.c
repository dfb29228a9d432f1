/* docker_pull.c - the Docker driver's prepare: the task's image, pulled when missing
 * (POST /images/create, its progress stream read for the last status and error), with the
 * configured registry credentials (X-Registry-Auth) and the pull timeout.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_unix.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_docker_impl.h"
#include "strbuf.h"

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
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
    if (c.status == 200)
        return 1;
    if (c.status == 404)
        return 0;
    return docker_api_error(&c, what, err);
}

int docker_prepare(runtime *rt, const task_spec *spec, mt_error **err)
{
    docker_rt *d = rt->impl;
    const char *image = spec->image;
    if (!docker_image_valid(image))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the task's image \"%s\" is not a valid image reference",
                            image ? image : "");
    int have = image_present(d, image, err);
    if (have != 0)
        return have < 0 ? -1 : 0;

    int timeout_s = spec->pull_timeout > 0 ? spec->pull_timeout : d->pull_timeout;
    cleanup_free char *from = NULL, *tag = NULL;
    split_image(image, &from, &tag);
    cleanup_free char *efrom = docker_url_escape(from), *etag = docker_url_escape(tag);
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
    int rc = docker_http_do(d, &c);
    if (rc == 0 && ps.line.len && !ps.skipping)
        pull_line(&ps, ps.line.buf, ps.line.len);
    if (rc < 0 && docker_http_failure_of(&c) == HTTP_ABORTED && !c.sink_refused) {
        rc =
            mt_error_set(err, MT_ERR_IO, "%s: the pull was cancelled (the node is stopping)", what);
    } else if (rc < 0 && docker_http_failure_of(&c) == HTTP_TIMEOUT) {
        rc = mt_error_set(err, MT_ERR_IO,
                          "%s: the pull did not finish within %d seconds "
                          "(containers.pull_timeout)%s%s; check that the registry is reachable "
                          "from this host, or raise pull_timeout for large images",
                          what, timeout_s, ps.status ? "; last progress: " : "",
                          ps.status ? ps.status : "");
    } else if (rc < 0) {
        rc = docker_transport_error(d, &c, what, err);
    } else if (c.status < 200 || c.status >= 300 || ps.error) {
        cleanup_free char *m = ps.error ? xstrdup(ps.error) : docker_message(&c);
        rc = mt_error_set(err, ps.error ? MT_ERR_GENERIC : docker_status_code(c.status),
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
