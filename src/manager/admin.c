/* admin.c - the admin socket: one JSON request per connection, each on its own thread.
 *
 * A listener thread accepts; every connection is served by a worker thread of a fixed set of
 * ADMIN_MAX_CONNS slots, so one slow or stuck client cannot hold the others (a request is read
 * within ADMIN_READ_MS and the answer written within ADMIN_WRITE_MS, whatever the client does).
 * When every slot is busy the listener answers "busy" at once. Workers are joinable and joined:
 * by the listener as they finish, and all of them by admin_stop.
 *
 * Every string that came from outside (names, tags, task output, error texts) goes into the
 * JSON answer through jstr(), which repairs ill-formed UTF-8, so an answer can always be
 * encoded; and a request over ADMIN_MAX_REQUEST bytes gets an error answer, not a reset. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "jwt.h"
#include "mem.h"
#include "utf8.h"
#include "runner.h"
#include "user_service.h"
#include "swarmfile.h"

#define ADMIN_MAX_CONNS   8
#define ADMIN_MAX_REQUEST (64u << 10)
#define ADMIN_READ_MS     5000
#define ADMIN_WRITE_MS    10000

struct admin_server;

typedef struct admin_conn {
    struct admin_server *a;
    int fd;
    pthread_t thread;
    bool used; /* a thread was started in this slot and is not joined yet */
    bool done; /* that thread has finished (set under a->mu) */
} admin_conn;

struct admin_server {
    manager *m;
    int fd;
    int stop_pipe[2];
    pthread_t thread;
    char *path;
    pthread_mutex_t mu;
    admin_conn conns[ADMIN_MAX_CONNS];
};

static int unix_addr(const char *path, struct sockaddr_un *sa, mt_error **err)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "The admin socket path %s is too long for a unix socket; set a "
                            "shorter admin_socket.",
                            path);
    strcpy(sa->sun_path, path);
    return 0;
}

/* A JSON string of outside text: ill-formed UTF-8 is repaired (U+FFFD), never refused. */
static json_t *jstrn(const char *s, size_t len)
{
    if (!s)
        return json_string("");
    if (utf8_valid(s, len))
        return json_stringn(s, len);
    size_t n = 0;
    cleanup_free char *fixed = utf8_lossy(s, len, &n);
    return json_stringn(fixed, n);
}

static json_t *jstr(const char *s)
{
    return jstrn(s, s ? strlen(s) : 0);
}

static json_t *err_json(const char *fmt, const char *arg)
{
    cleanup_free char *text = xasprintf(fmt, arg ? arg : "");
    json_t *o = json_object();
    json_object_set_new(o, "error", jstr(text));
    return o;
}

/* Resolve a swarm given as a full xid or a unique prefix. */
static char *resolve_swarm(manager *m, const char *given, json_t **errout)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (!given) {
        *errout = err_json("Name a swarm (its id, or a unique prefix of it).", NULL);
        return NULL;
    }
    if (store_swarm_list(m->st, &rows, &n, &err) < 0) {
        *errout = err_json("%s", mt_error_msg(err));
        mt_error_free(&err);
        return NULL;
    }
    /* A whole id as the SDK shows it (32 hex digits, leading zeros kept): its xid. */
    char canon[NODE_XID_MAX + 1];
    node_id whole;
    if (strlen(given) == 32 && strspn(given, "0123456789abcdef") == 32 &&
        node_id_parse_xid(given, &whole)) {
        node_id_to_xid(whole, canon);
        given = canon;
    }
    /* An exact id wins; otherwise the prefix must match exactly one swarm. */
    char *found = NULL;
    size_t prefixed = 0;
    for (size_t i = 0; i < n && !(found && !strcmp(found, given)); i++) {
        if (strncmp(rows[i].id, given, strlen(given)) != 0)
            continue;
        prefixed++;
        free(found);
        found = xstrdup(rows[i].id);
    }
    store_swarms_free(rows, n);
    if (!found)
        *errout = err_json("No swarm %s is known to this manager (`manta_manager swarms` lists "
                           "them).",
                           given);
    else if (prefixed > 1 && strcmp(found, given) != 0) {
        *errout = err_json("'%s' matches several swarms: give more of the id.", given);
        free(found);
        found = NULL;
    }
    return found;
}

static json_t *do_nodes(manager *m)
{
    json_t *arr = json_array();
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nnodes; i++) {
        mgr_node *n = m->nodes[i];
        json_t *ds = json_array();
        for (size_t k = 0; n->datasets && n->datasets[k]; k++)
            json_array_append_new(ds, jstr(n->datasets[k]));
        json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:b, s:o, s:i, s:f}", "id", n->xid,
                                             "alias", jstr(n->alias), "hostname", jstr(n->hostname),
                                             "connected", n->connected, "datasets", ds, "running",
                                             (int)n->running, "seen_s_ago",
                                             (double)(now - n->last_seen_ms) / 1000.0));
    }
    pthread_mutex_unlock(&m->lock);
    return json_pack("{s:o}", "nodes", arr);
}

static json_t *do_swarms(manager *m)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_swarm_list(m->st, &rows, &n, &err) < 0) {
        json_t *e = err_json("%s", mt_error_msg(err));
        mt_error_free(&err);
        return e;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:o, s:i, s:I, s:I}", "id",
                                             jstr(rows[i].id), "name", jstr(rows[i].name), "status",
                                             jstr(rows[i].status), "detail", jstr(rows[i].detail),
                                             "iteration", (int)rows[i].iteration, "created_ms",
                                             (json_int_t)rows[i].created_ms, "updated_ms",
                                             (json_int_t)rows[i].updated_ms));
    store_swarms_free(rows, n);
    return json_pack("{s:o}", "swarms", arr);
}

static const char *alias_of(manager *m, const char *swarm, const char *task)
{
    node_id s, t;
    if (!node_id_parse_xid(swarm, &s) || !node_id_parse_xid(task, &t))
        return NULL;
    return runner_task_alias(m, s, t);
}

static json_t *do_results(manager *m, json_t *req)
{
    json_t *e = NULL;
    cleanup_free char *swarm =
        resolve_swarm(m, json_string_value(json_object_get(req, "swarm")), &e);
    if (!swarm)
        return e;
    const char *tag = json_string_value(json_object_get(req, "tag"));
    json_t *it = json_object_get(req, "iteration");
    bool with_data = json_is_true(json_object_get(req, "data"));
    store_result *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_result_list(m->st, swarm, tag, json_is_integer(it) ? json_integer_value(it) : -1,
                          with_data, &rows, &n, &err) < 0) {
        e = err_json("%s", mt_error_msg(err));
        mt_error_free(&err);
        return e;
    }
    json_t *arr = json_array();
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        const char *alias = alias_of(m, swarm, rows[i].task);
        json_t *o =
            json_pack("{s:o, s:o, s:o, s:o, s:i, s:I, s:I}", "node", jstr(rows[i].node), "task",
                      jstr(rows[i].task), "alias", jstr(alias), "tag", jstr(rows[i].tag),
                      "iteration", (int)rows[i].iteration, "bytes", (json_int_t)rows[i].len,
                      "created_ms", (json_int_t)rows[i].created_ms);
        if (with_data) {
            cleanup_free char *b64 =
                base64url_encode(rows[i].data ? rows[i].data : (uint8_t *)"", rows[i].len);
            json_object_set_new(o, "data_b64url", json_string(b64));
        }
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&m->lock);
    store_results_free(rows, n);
    return json_pack("{s:o, s:o}", "swarm", jstr(swarm), "results", arr);
}

static json_t *do_logs(manager *m, json_t *req)
{
    json_t *e = NULL;
    cleanup_free char *swarm =
        resolve_swarm(m, json_string_value(json_object_get(req, "swarm")), &e);
    if (!swarm)
        return e;
    const char *task = json_string_value(json_object_get(req, "task"));
    const char *node = json_string_value(json_object_get(req, "node"));
    store_log *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_log_list(m->st, swarm, NULL, NULL, &rows, &n, &err) < 0) {
        e = err_json("%s", mt_error_msg(err));
        mt_error_free(&err);
        return e;
    }
    json_t *arr = json_array();
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        const char *alias = alias_of(m, swarm, rows[i].task);
        if (task && strcmp(task, rows[i].task) && !(alias && !strcmp(task, alias)))
            continue;
        if (node && strncmp(rows[i].node, node, strlen(node)))
            continue;
        json_array_append_new(
            arr, json_pack("{s:o, s:o, s:o, s:i, s:I, s:o}", "node", jstr(rows[i].node), "task",
                           jstr(rows[i].task), "alias", jstr(alias), "iteration",
                           (int)rows[i].iteration, "ts_ms", (json_int_t)rows[i].ts_ms, "text",
                           jstrn(rows[i].text, rows[i].len)));
    }
    pthread_mutex_unlock(&m->lock);
    store_logs_free(rows, n);
    store_errrow *errs = NULL;
    size_t ne = 0;
    json_t *earr = json_array();
    if (store_error_list(m->st, swarm, &errs, &ne, &err) == 0) {
        for (size_t i = 0; i < ne; i++)
            json_array_append_new(
                earr, json_pack("{s:o, s:o, s:i, s:i, s:o}", "node", jstr(errs[i].node), "task",
                                jstr(errs[i].task), "iteration", (int)errs[i].iteration, "error_id",
                                errs[i].error_id, "content", jstr(errs[i].content)));
        store_errors_free(errs, ne);
    }
    mt_error_free(&err);
    return json_pack("{s:o, s:o, s:o}", "swarm", jstr(swarm), "logs", arr, "errors", earr);
}

static json_t *do_submit(manager *m, json_t *req)
{
    const char *path = json_string_value(json_object_get(req, "path"));
    if (!path)
        return err_json("Name a swarm file.", NULL);
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(path, &err);
    if (!def) {
        json_t *e = err_json("%s", mt_error_msg(err));
        mt_error_free(&err);
        return e;
    }
    char xid[NODE_XID_MAX + 1] = "";
    pthread_mutex_lock(&m->lock);
    int rc = runner_start(m, def, xid, &err);
    pthread_mutex_unlock(&m->lock);
    if (rc < 0) {
        json_t *e = json_pack("{s:o, s:s}", "error", jstr(mt_error_msg(err)), "swarm", xid);
        mt_error_free(&err);
        return e;
    }
    return json_pack("{s:s}", "swarm", xid);
}

static json_t *do_status(manager *m, json_t *req, bool stop)
{
    json_t *e = NULL;
    cleanup_free char *swarm =
        resolve_swarm(m, json_string_value(json_object_get(req, "swarm")), &e);
    if (!swarm)
        return e;
    pthread_mutex_lock(&m->lock);
    bool cancelled = stop && runner_cancel(m, swarm, "stopped by the operator") == 0;
    pthread_mutex_unlock(&m->lock);
    if (stop && !cancelled) {
        /* a swarm sent with the SDK and not started yet ends here too */
        store_swarm s = {0};
        mt_error *err = NULL;
        if (store_swarm_get(m->st, swarm, &s, &err) == 1 && !strcmp(s.status, "PENDING") &&
            store_swarm_update(m->st, swarm, "STOPPED", "stopped by the operator before it started",
                               0, clock_wall_ms(), &err) == 0)
            user_service_notify(m);
        store_swarm_clear(&s);
        mt_error_free(&err);
    }
    pthread_mutex_lock(&m->lock);
    uint32_t it = 0;
    char detail[512] = "";
    int st = runner_status(m, swarm, &it, detail, sizeof(detail));
    pthread_mutex_unlock(&m->lock);
    if (st < 0) {
        store_swarm s = {0};
        mt_error *err = NULL;
        if (store_swarm_get(m->st, swarm, &s, &err) == 1) {
            json_t *o =
                json_pack("{s:o, s:o, s:i, s:o}", "swarm", jstr(swarm), "status", jstr(s.status),
                          "iteration", (int)s.iteration, "detail", jstr(s.detail));
            store_swarm_clear(&s);
            return o;
        }
        mt_error_free(&err);
        return err_json("Swarm %s is not running on this manager.", swarm);
    }
    return json_pack("{s:o, s:s, s:i, s:o}", "swarm", jstr(swarm), "status", run_status_name(st),
                     "iteration", (int)it, "detail", jstr(detail));
}

static json_t *do_nodes_req(manager *m, json_t *req)
{
    return do_nodes(m);
}

static json_t *do_swarms_req(manager *m, json_t *req)
{
    return do_swarms(m);
}

static json_t *do_status_req(manager *m, json_t *req)
{
    return do_status(m, req, false);
}

static json_t *do_stop_req(manager *m, json_t *req)
{
    return do_status(m, req, true);
}

static const struct {
    const char *cmd;
    json_t *(*fn)(manager *m, json_t *req);
} admin_cmds[] = {
    {"nodes", do_nodes_req}, {"swarms", do_swarms_req}, {"results", do_results}, {"logs", do_logs},
    {"submit", do_submit},   {"status", do_status_req}, {"stop", do_stop_req},
};

/* Whether a and b name the same file (both exist, same device and inode). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static json_t *dispatch(manager *m, json_t *req)
{
    const char *cmd = json_is_object(req) ? json_string_value(json_object_get(req, "cmd")) : NULL;
    if (!cmd)
        return err_json("The request is not a JSON object with a \"cmd\".", NULL);
    /* A request for a given store (`--store`) is answered only by the manager of that store. */
    const char *want = json_string_value(json_object_get(req, "store"));
    if (want && !same_file(want, m->cfg.store)) {
        json_t *e = err_json("The manager answering here serves another store than %s: give the "
                             "admin socket of that store's manager (--admin), or leave out "
                             "--store.",
                             want);
        json_object_set_new(e, "other_store", json_true());
        return e;
    }
    for (size_t i = 0; i < ARRAY_LEN(admin_cmds); i++)
        if (!strcmp(cmd, admin_cmds[i].cmd))
            return admin_cmds[i].fn(m, req);
    return err_json("Unknown admin command '%s'.", cmd);
}

/* Milliseconds left until deadline (monotonic ms), at least 0. */
static int left_ms(int64_t deadline)
{
    int64_t l = deadline - clock_mono_ms();
    return l < 0 ? 0 : l > 60000 ? 60000 : (int)l;
}

/* Wait until c is ready for events, the deadline passes or the server stops. True if ready. */
static bool wait_fd(admin_server *a, int c, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = c, .events = events},
                              {.fd = a->stop_pipe[0], .events = POLLIN}};
        int r = poll(p, 2, left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || p[1].revents)
            return false;
        return true;
    }
}

/* Read the request line: up to '\n' or the end of input. Returns the length read, or -1 when
 * the client sent more than ADMIN_MAX_REQUEST bytes. buf holds ADMIN_MAX_REQUEST + 1 bytes. */
static ssize_t read_request(admin_server *a, int c, char *buf, int64_t deadline)
{
    size_t len = 0;
    while (wait_fd(a, c, POLLIN, deadline)) {
        ssize_t r = read(c, buf + len, ADMIN_MAX_REQUEST + 1 - len);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        bool nl = memchr(buf + len, '\n', (size_t)r) != NULL;
        len += (size_t)r;
        if (len > ADMIN_MAX_REQUEST)
            return -1;
        if (nl)
            break;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

static void send_all(admin_server *a, int c, const char *out, size_t olen, int64_t deadline)
{
    size_t off = 0;
    while (off < olen && wait_fd(a, c, POLLOUT, deadline)) {
        ssize_t w = send(c, out + off, olen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* After the answer: end our side and read what the client still sends (bounded), so closing
 * does not reset a connection whose client has not read the answer yet. */
static void close_gently(admin_server *a, int c, int64_t deadline)
{
    shutdown(c, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 4096 && wait_fd(a, c, POLLIN, deadline); i++) {
        ssize_t r = read(c, sink, sizeof(sink));
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
    }
}

/* The answer as text; never NULL (an answer that cannot be encoded becomes an error). */
static char *answer_text(json_t *ans)
{
    char *out = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
    if (!out)
        out = xstrdup("{\"error\":\"The manager could not encode its answer; see its log.\"}");
    return out;
}

static void serve_one(admin_server *a, int c)
{
    cleanup_free char *buf = xmalloc(ADMIN_MAX_REQUEST + 1);
    ssize_t len = read_request(a, c, buf, clock_mono_ms() + ADMIN_READ_MS);
    cleanup_json json_t *ans = NULL;
    cleanup_json json_t *req = NULL;
    if (len < 0) {
        ans = err_json("The request is larger than %s: an admin request is one JSON line of "
                       "at most that size.",
                       "64 KiB");
    } else {
        req = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
        ans = dispatch(a->m, req);
        mgr_wake(a->m);
    }
    cleanup_free char *out = answer_text(ans);
    int64_t deadline = clock_mono_ms() + ADMIN_WRITE_MS;
    send_all(a, c, out, strlen(out), deadline);
    close_gently(a, c, deadline);
}

static void *conn_thread(void *arg)
{
    admin_conn *cn = arg;
    serve_one(cn->a, cn->fd);
    close(cn->fd);
    pthread_mutex_lock(&cn->a->mu);
    cn->done = true;
    pthread_mutex_unlock(&cn->a->mu);
    return NULL;
}

/* Join the workers that have finished; returns a free slot, or NULL when all are busy. */
static admin_conn *free_slot(admin_server *a)
{
    admin_conn *found = NULL;
    for (int i = 0; i < ADMIN_MAX_CONNS; i++) {
        admin_conn *cn = &a->conns[i];
        pthread_mutex_lock(&a->mu);
        bool finished = cn->used && cn->done;
        pthread_mutex_unlock(&a->mu);
        if (finished) {
            pthread_join(cn->thread, NULL);
            cn->used = false;
        }
        if (!cn->used && !found)
            found = cn;
    }
    return found;
}

/* Every slot busy: say so at once, without waiting for the client. */
static void answer_busy(admin_server *a, int c)
{
    char busy[160];
    int n = snprintf(busy, sizeof(busy),
                     "{\"error\":\"The manager is answering %d admin requests already; try "
                     "again in a moment.\"}",
                     ADMIN_MAX_CONNS);
    if (send(c, busy, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the client went away */
    }
    close_gently(a, c, clock_mono_ms() + 100);
}

static void *admin_thread(void *arg)
{
    admin_server *a = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN},
                              {.fd = a->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int c = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        admin_conn *cn = free_slot(a);
        if (!cn) {
            answer_busy(a, c);
            close(c);
            continue;
        }
        *cn = (admin_conn){.a = a, .fd = c, .used = true, .done = false};
        if (pthread_create(&cn->thread, NULL, conn_thread, cn) != 0) {
            cn->used = false;
            answer_busy(a, c);
            close(c);
        }
    }
    for (int i = 0; i < ADMIN_MAX_CONNS; i++)
        if (a->conns[i].used) {
            pthread_join(a->conns[i].thread, NULL);
            a->conns[i].used = false;
        }
    return NULL;
}

admin_server *admin_start(manager *m, const char *path, mt_error **err)
{
    struct sockaddr_un sa;
    if (unix_addr(path, &sa, err) < 0)
        return NULL;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(probe);
        mt_error_set(err, MT_ERR_EXISTS,
                     "Another manager is already serving on %s: stop it first, or give this "
                     "one another admin socket (--admin).",
                     path);
        return NULL;
    }
    if (probe >= 0)
        close(probe);
    unlink(path);
    admin_server *a = xcalloc(1, sizeof(*a));
    a->m = m;
    pthread_mutex_init(&a->mu, NULL);
    a->path = xstrdup(path);
    a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(0077);
    int b = a->fd >= 0 ? bind(a->fd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
    umask(old);
    if (b < 0 || listen(a->fd, 16) < 0 || pipe2(a->stop_pipe, O_CLOEXEC) < 0) {
        mt_error_sys(err, errno, "The admin socket %s could not be opened", path);
        if (a->fd >= 0)
            close(a->fd);
        pthread_mutex_destroy(&a->mu);
        free(a->path);
        free(a);
        return NULL;
    }
    if (pthread_create(&a->thread, NULL, admin_thread, a) != 0) {
        mt_error_sys(err, errno, "The admin socket %s could not be served", path);
        close(a->fd);
        close(a->stop_pipe[0]);
        close(a->stop_pipe[1]);
        unlink(path);
        pthread_mutex_destroy(&a->mu);
        free(a->path);
        free(a);
        return NULL;
    }
    return a;
}

void admin_stop(admin_server *a)
{
    if (!a)
        return;
    if (write(a->stop_pipe[1], "x", 1) < 0) {
        /* the thread also ends when the process does */
    }
    pthread_join(a->thread, NULL);
    close(a->fd);
    close(a->stop_pipe[0]);
    close(a->stop_pipe[1]);
    unlink(a->path);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

/* `nodes` from a store: every node that ever registered, as last recorded, none connected (no
 * manager serves the store), with the alias of the token its id is bound to. */
static json_t *do_nodes_stored(manager *m, json_t *req)
{
    store_node *rows = NULL;
    store_binding *binds = NULL;
    size_t n = 0, nb = 0;
    mt_error *err = NULL;
    if (store_node_list(m->st, &rows, &n, &err) < 0 ||
        store_binding_list(m->st, &binds, &nb, &err) < 0) {
        store_nodes_free(rows, n);
        json_t *e = err_json("%s", mt_error_msg(err));
        mt_error_free(&err);
        return e;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *alias = "";
        for (size_t k = 0; k < nb; k++)
            if (!strcmp(binds[k].node, rows[i].id))
                alias = binds[k].subject;
        json_t *ds = json_array();
        for (const char *p = rows[i].datasets; p && *p;) {
            size_t len = strcspn(p, ",");
            if (len)
                json_array_append_new(ds, jstrn(p, len));
            p += len + (p[len] == ',');
        }
        json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:b, s:o, s:i, s:o, s:I, s:I}", "id",
                                             jstr(rows[i].id), "alias", jstr(alias), "hostname",
                                             jstr(rows[i].hostname), "connected", 0, "datasets", ds,
                                             "running", 0, "last_status", jstr(rows[i].status),
                                             "registered_ms", (json_int_t)rows[i].registered_ms,
                                             "last_seen_ms", (json_int_t)rows[i].last_seen_ms));
    }
    store_nodes_free(rows, n);
    store_bindings_free(binds, nb);
    return json_pack("{s:o}", "nodes", arr);
}

/* What a store alone answers: the read-only commands. */
static const struct {
    const char *cmd;
    json_t *(*fn)(manager *m, json_t *req);
} local_cmds[] = {
    {"nodes", do_nodes_stored}, {"swarms", do_swarms_req}, {"results", do_results},
    {"logs", do_logs},          {"status", do_status_req},
};

bool admin_read_only(const char *cmd)
{
    for (size_t i = 0; cmd && i < ARRAY_LEN(local_cmds); i++)
        if (!strcmp(cmd, local_cmds[i].cmd))
            return true;
    return false;
}

json_t *admin_local(const char *store_path, json_t *req, mt_error **err)
{
    const char *cmd = json_is_object(req) ? json_string_value(json_object_get(req, "cmd")) : NULL;
    size_t which = 0;
    while (which < ARRAY_LEN(local_cmds) && !(cmd && !strcmp(cmd, local_cmds[which].cmd)))
        which++;
    if (which == ARRAY_LEN(local_cmds))
        return mt_error_set(err, MT_ERR_USAGE,
                            "`%s` needs a running manager; only nodes, swarms, status, results "
                            "and logs read a store alone.",
                            cmd ? cmd : "?"),
               NULL;
    manager m;
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.lock, NULL);
    m.st = store_open(store_path, err);
    if (!m.st) {
        pthread_mutex_destroy(&m.lock);
        return NULL;
    }
    cleanup_json json_t *ans = local_cmds[which].fn(&m, req);
    store_close(m.st);
    pthread_mutex_destroy(&m.lock);
    if (!ans)
        return mt_error_set(err, MT_ERR_GENERIC, "The store's answer could not be encoded."), NULL;
    const char *e = json_string_value(json_object_get(ans, "error"));
    if (e)
        return mt_error_set(err, MT_ERR_GENERIC, "%s", e), NULL;
    return steal_ptr(ans);
}

json_t *admin_request(const char *path, json_t *req, mt_error **err)
{
    struct sockaddr_un sa;
    if (unix_addr(path, &sa, err) < 0)
        return NULL;
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        mt_error_set(err, MT_ERR_NOTFOUND,
                     "No manager is running here (nothing answers on %s): start one with "
                     "`manta_manager serve` or `manta_manager run SWARM`.",
                     path);
        return NULL;
    }
    cleanup_free char *text = json_dumps(req, JSON_COMPACT);
    size_t tl = strlen(text);
    if (send(fd, text, tl, MSG_NOSIGNAL) != (ssize_t)tl || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
        mt_error_sys(err, errno, "Could not talk to the manager on %s", path);
        return NULL;
    }
    shutdown(fd, SHUT_WR);
    json_error_t je;
    FILE *f = fdopen(dup(fd), "r");
    cleanup_json json_t *ans = f ? json_loadf(f, 0, &je) : NULL;
    if (f)
        fclose(f);
    if (!ans) {
        mt_error_set(err, MT_ERR_PARSE, "The manager's answer could not be read.");
        return NULL;
    }
    const char *e = json_string_value(json_object_get(ans, "error"));
    if (e) {
        /* another store's manager: as if none ran, for the caller */
        mt_error_set(err,
                     json_is_true(json_object_get(ans, "other_store")) ? MT_ERR_NOTFOUND
                                                                       : MT_ERR_GENERIC,
                     "%s", e);
        return NULL;
    }
    return steal_ptr(ans);
}
