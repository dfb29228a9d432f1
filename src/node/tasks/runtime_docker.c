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
 *
 * This file: the driver's table, open (socket, version check) and free, and the container
 * calls (create, start, stop, inspect, remove, list, cancel). The Engine API client is in
 * docker_api.c, the image pull in docker_pull.c, the create body in docker_spec.c, the logs in
 * docker_logs.c, the exit events in docker_events.c; what they share in runtime_docker_impl.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "err.h"
#include "http_unix.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_docker_impl.h"
#include "strbuf.h"

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
/* ---------------------------------------------------------------------------------------- */
/* create / start                                                                            */

static int docker_create(runtime *rt, const task_spec *spec, char **handle, mt_error **err)
{
    docker_rt *d = rt->impl;
    const char *what = "Docker cannot create the task container";
    *handle = NULL;
    if (!docker_handle_valid(spec->name))
        return mt_error_set(err, MT_ERR_USAGE,
                            "%s: the task name \"%s\" is not a valid container name", what,
                            spec->name ? spec->name : "");
    if (!spec->node_xid || !*spec->node_xid)
        return mt_error_set(err, MT_ERR_USAGE, "%s: the task has no node id", what);
    if (!docker_image_valid(spec->image))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "%s: the image \"%s\" is not a valid image reference", what,
                            spec->image ? spec->image : "");
    cleanup_free char *json = docker_create_body(d, spec, err);
    if (!json)
        return mt_error_wrap(err, "%s %s", what, spec->name);
    cleanup_free char *path = xasprintf("/containers/create?name=%s", spec->name);
    cleanup_call http_call c = {
        .method = "POST", .path = path, .json = json, .timeout_ms = CHANGE_TIMEOUT_MS};
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
    if (c.status != 201)
        return docker_api_error(&c, what, err);
    cleanup_json json_t *j = docker_body_json(&c, what, err);
    if (!j)
        return -1;
    const char *id = json_string_value(json_object_get(j, "Id"));
    if (!id || !docker_handle_valid(id))
        return mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer has no container Id", what);
    *handle = xstrdup(id);
    return 0;
}

static int docker_start(runtime *rt, const char *handle, mt_error **err)
{
    docker_rt *d = rt->impl;
    cleanup_free char *what =
        xasprintf("Docker cannot start the task container %.12s", handle ? handle : "");
    if (docker_check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s/start", handle);
    cleanup_call http_call c = {.method = "POST", .path = path, .timeout_ms = CHANGE_TIMEOUT_MS};
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
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
    return mt_error_set(err, docker_status_code(c.status), "%s: %s%s", what, m, hint);
}

/* ---------------------------------------------------------------------------------------- */
/* stop / inspect / remove / list                                                           */

static int docker_stop(runtime *rt, const char *handle, int grace_s, mt_error **err)
{
    docker_rt *d = rt->impl;
    cleanup_free char *what =
        xasprintf("Docker cannot stop the task container %.12s", handle ? handle : "");
    if (docker_check_handle(handle, what, err) < 0)
        return -1;
    if (grace_s < 0)
        grace_s = 0;
    cleanup_free char *path = xasprintf("/containers/%s/stop?t=%d", handle, grace_s);
    cleanup_call http_call c = {
        .method = "POST", .path = path, .timeout_ms = grace_s * 1000L + STOP_EXTRA_MS};
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
    if (c.status == 404) /* gone already: nothing left to stop */
        return 0;
    if (c.status != 204 && c.status != 304) /* 304: not running */
        return docker_api_error(&c, what, err);

    /* The stop answers once the kill was sent and seen; wait for the exit to be recorded. */
    cleanup_free char *wpath = xasprintf("/containers/%s/wait?condition=not-running", handle);
    cleanup_call http_call w = {.method = "POST", .path = wpath, .timeout_ms = WAIT_TIMEOUT_MS};
    if (docker_http_do(d, &w) < 0) {
        if (docker_http_failure_of(&w) == HTTP_TIMEOUT)
            return mt_error_set(err, MT_ERR_IO,
                                "%s: it has not exited %ld seconds after it was killed", what,
                                WAIT_TIMEOUT_MS / 1000);
        return docker_transport_error(d, &w, what, err);
    }
    if (w.status == 200 || w.status == 404)
        return 0;
    return docker_api_error(&w, what, err);
}

static int docker_inspect(runtime *rt, const char *handle, rt_status *st, mt_error **err)
{
    docker_rt *d = rt->impl;
    memset(st, 0, sizeof(*st));
    cleanup_free char *what =
        xasprintf("Docker cannot inspect the task container %.12s", handle ? handle : "");
    if (docker_check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s/json", handle);
    cleanup_call http_call c = {.method = "GET", .path = path, .timeout_ms = QUERY_TIMEOUT_MS};
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
    if (c.status == 404) {
        st->state = RT_GONE;
        return 0;
    }
    if (c.status != 200)
        return docker_api_error(&c, what, err);
    cleanup_json json_t *j = docker_body_json(&c, what, err);
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
    if (docker_check_handle(handle, what, err) < 0)
        return -1;
    cleanup_free char *path = xasprintf("/containers/%s?force=1&v=1", handle);
    cleanup_call http_call c = {.method = "DELETE", .path = path, .timeout_ms = CHANGE_TIMEOUT_MS};
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
    if (c.status == 204 || c.status == 404)
        return 0;
    if (c.status == 409) {
        cleanup_free char *m = docker_message(&c);
        if (strstr(m, "already in progress"))
            return 0;
    }
    return docker_api_error(&c, what, err);
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
    cleanup_free char *efilt = docker_url_escape(ftext ? ftext : "{}");
    free(ftext);
    cleanup_free char *path = xasprintf("/containers/json?all=1&filters=%s", efilt);
    cleanup_call http_call c = {.method = "GET", .path = path, .timeout_ms = QUERY_TIMEOUT_MS};
    if (docker_http_do(d, &c) < 0)
        return docker_transport_error(d, &c, what, err);
    if (c.status != 200)
        return docker_api_error(&c, what, err);
    cleanup_json json_t *j = docker_body_json(&c, what, err);
    if (!j)
        return -1;
    if (!json_is_array(j))
        return mt_error_set(err, MT_ERR_PARSE, "%s: Docker's answer is not a list", what);
    size_t n = json_array_size(j), k = 0;
    char **out = xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(j, i), "Id"));
        if (id && docker_handle_valid(id))
            out[k++] = xstrdup(id);
    }
    *handles = out;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* cancel                                                                                    */

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
    if (docker_http_do(d, &c) < 0) {
        cleanup_free char *why = docker_transport_reason(&c);
        if (docker_http_failure_of(&c) == HTTP_TIMEOUT)
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
    if (docker_http_do(d, &ic) == 0 && ic.status == 200) {
        cleanup_json json_t *info = json_loadb(ic.body.buf ? ic.body.buf : "", ic.body.len, 0, &je);
        json_int_t n = json_integer_value(json_object_get(info, "NCPU"));
        if (n > 0)
            d->ncpu = (long)n;
    }
    return rt;
}
