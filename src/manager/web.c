/* web.c - the dashboard's HTTP server: addresses and TLS, routing, sessions and sign-in, the
 * page's files and the live stream (Server-Sent Events); see web.h and docs/dashboard.md.
 *
 * Sessions live here, in memory: a random id (the cookie) and a random csrf value (the header
 * a POST must carry), the user, an absolute expiry. A request is served only with a session
 * that has not expired and whose user still exists. */
#include "web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "mem.h"
#include "strbuf.h"
#include "user_service.h"
#include "users.h"
#include "utf8.h"
#include "web_impl.h"

#define WEB_CONNECTIONS_MAX 64
#define WEB_SESSIONS_MAX    1024
#define WEB_BODY_MAX        (16 * 1024)
#define WEB_IDLE_TIMEOUT_S  60
#define WEB_NODES_EVERY_MS  5000  /* the live stream's `nodes` event */
#define WEB_KEEPALIVE_MS    15000 /* a comment line at least this often */
#define WEB_CHANGE_EVERY_MS 2000  /* `change` events at most this often (each costs a refetch) */
#define WEB_REFUSED_DELAY_S 1     /* a refused sign-in is answered this much later */
#define WEB_COOKIE          "manta_session"
#define WEB_JSON_FLAGS      (JSON_COMPACT | JSON_REAL_PRECISION(8)) /* 0.81234567, not 17 digits */

typedef struct web_session {
    char id[65], csrf[65];
    char user[USER_NAME_MAX + 1];
    int64_t expires_ms; /* wall clock; 0: a free slot */
} web_session;

struct web_server {
    manager *m;
    struct MHD_Daemon *d;
    int port;
    bool tls;
    char *cert, *key; /* PEM, kept while the daemon runs (libmicrohttpd borrows them) */
    atomic_bool stopping;
    web_cache *cache;
    web_results *results;
    pthread_mutex_t mu; /* sessions */
    web_session sessions[WEB_SESSIONS_MAX];
};

/* What a connection collects across the calls libmicrohttpd makes for one request. */
typedef struct web_conn {
    strbuf body;
    bool too_big;
} web_conn;

/* ---- answers -------------------------------------------------------------------------------- */

static void security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'self'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, int status, const char *type,
                                  const void *data, size_t len, bool copy, const char *cookie)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    security_headers(r);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", copy ? "no-store" : "no-cache");
    if (cookie)
        MHD_add_response_header(r, "Set-Cookie", cookie);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *body,
                                 const char *cookie)
{
    char *text = json_dumps(body, WEB_JSON_FLAGS);
    json_decref(body);
    if (!text)
        return MHD_NO;
    enum MHD_Result ok =
        send_bytes(c, status, "application/json", text, strlen(text), true, cookie);
    free(text);
    return ok;
}

int web_error(json_t **out, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    *out = json_pack("{s:s}", "error", msg);
    free(msg);
    return status;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg)
{
    json_t *out = NULL;
    web_error(&out, status, "%s", msg);
    return send_json(c, status, out, NULL);
}

const char *web_arg(const web_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- sessions ------------------------------------------------------------------------------- */

static bool random_hex(char out[65])
{
    unsigned char b[32];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
        if (r < 0 && errno != EINTR)
            return false;
        if (r > 0)
            got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return true;
}

/* A new session of user (mu not held); copied to *out. False when no random bytes came. */
static bool session_new(web_server *w, const char *user, web_session *out)
{
    web_session s = {0};
    if (!random_hex(s.id) || !random_hex(s.csrf))
        return false;
    snprintf(s.user, sizeof(s.user), "%s", user);
    int64_t now = clock_wall_ms();
    s.expires_ms = now + w->m->cfg.http_session_ttl * 1000;
    pthread_mutex_lock(&w->mu);
    size_t slot = 0; /* a free or expired slot, else the one that expires first */
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++) {
        if (w->sessions[i].expires_ms <= now) {
            slot = i;
            break;
        }
        if (w->sessions[i].expires_ms < w->sessions[slot].expires_ms)
            slot = i;
    }
    w->sessions[slot] = s;
    pthread_mutex_unlock(&w->mu);
    *out = s;
    return true;
}

/* The session of a cookie value, copied to *out: false when there is none (unknown, expired). */
static bool session_find(web_server *w, const char *id, web_session *out)
{
    if (!id || strlen(id) != 64)
        return false;
    bool found = false;
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < WEB_SESSIONS_MAX && !found; i++) {
        web_session *s = &w->sessions[i];
        if (s->expires_ms > now && CRYPTO_memcmp(s->id, id, 64) == 0) {
            *out = *s;
            found = true;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}

static void session_end(web_server *w, const char *id)
{
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++)
        if (w->sessions[i].expires_ms && !strcmp(w->sessions[i].id, id))
            memset(&w->sessions[i], 0, sizeof(w->sessions[i]));
    pthread_mutex_unlock(&w->mu);
}

/* Is the session still good: not expired, its user still there (a removed user's sessions
 * end)? Ends it when not. */
static bool session_valid(web_server *w, const web_session *s)
{
    web_session now;
    if (!session_find(w, s->id, &now))
        return false;
    store_object o = {0};
    mt_error *err = NULL;
    int known = store_object_get(w->m->st, "user", s->user, false, &o, &err);
    store_object_clear(&o);
    if (known < 0) {
        log_warn(w->m->log, "web", "checking a session: %s", mt_error_msg(err));
        mt_error_free(&err);
    }
    if (known == 0)
        session_end(w, s->id);
    return known == 1;
}

static json_t *session_json(web_server *w, const web_session *s)
{
    return json_pack("{s:s, s:I, s:s, s:{s:s, s:i, s:i}}", "user", s->user, "expires_ms",
                     (json_int_t)s->expires_ms, "csrf", s->csrf, "manager", "version",
                     MANTA_VERSION, "node_port", w->m->port, "user_port", w->m->user_port);
}

/* The cookie of a session (max_age 0: the one that clears it). Owned. */
static char *cookie_of(const web_server *w, const char *id, int64_t max_age)
{
    return xasprintf(WEB_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", id,
                     (long long)max_age, w->tls ? "; Secure" : "");
}

/* ---- sign-in -------------------------------------------------------------------------------- */

static const char *peer_of(struct MHD_Connection *c, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, size, "?");
    if (!ci || !ci->client_addr)
        return buf;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)size);
    return buf;
}

static enum MHD_Result login(web_server *w, struct MHD_Connection *c, const web_conn *wc)
{
    json_error_t jerr;
    json_t *in = json_loadb(sb_str(&wc->body), wc->body.len, 0, &jerr);
    const char *user = json_string_value(json_object_get(in, "user"));
    const char *password = json_string_value(json_object_get(in, "password"));
    const char *tok = json_string_value(json_object_get(in, "token"));
    if (!json_is_object(in) || !((user && password) || tok)) {
        json_decref(in);
        return send_error(c, 400,
                          "Sign in with {\"user\": NAME, \"password\": PASSWORD} or {\"token\": "
                          "USER TOKEN} as JSON.");
    }
    char name[USER_NAME_MAX + 1] = "", peer[64];
    mt_error *err = NULL;
    int ok;
    if (tok) {
        char jti[TOKEN_JTI_LEN + 1];
        ok = user_token_check(w->m, tok, name, jti, &err) == 0 ? 1
             : err->status == RPC_INTERNAL                     ? -1
                                                               : 0;
    } else {
        snprintf(name, sizeof(name), "%s", user);
        ok = strlen(password) > USER_PASSWORD_MAX
                 ? 0
                 : users_check_password(w->m->st, user, password, NULL, &err);
    }
    json_decref(in);
    peer_of(c, peer, sizeof(peer));
    char shown[USER_NAME_MAX + 1];
    utf8_clean_copy(shown, sizeof(shown), name);
    if (ok < 0) {
        log_error(w->m->log, "web", "sign-in of %s from %s: %s", shown, peer, mt_error_msg(err));
        mt_error_free(&err);
        return send_error(c, 500,
                          "The sign-in could not be checked: the manager's store failed "
                          "(its log says why). Try again.");
    }
    if (!ok) {
        log_warn(w->m->log, "web", "sign-in refused for %s from %s%s%s", shown, peer,
                 err ? ": " : "", err ? mt_error_msg(err) : "");
        bool token = tok != NULL;
        mt_error_free(&err);
        sleep(WEB_REFUSED_DELAY_S); /* this connection's own thread: slows guessing only */
        return send_error(c, 401,
                          token ? "That user token was refused (expired, signed out, or not "
                                  "issued by this manager): sign in with your password, or ask "
                                  "for a new token (`manta_manager token create --user NAME`)."
                                : "The user name or the password is wrong.");
    }
    web_session s;
    if (!session_new(w, name, &s))
        return send_error(c, 500, "No session could be made: the system gave no random bytes.");
    log_info(w->m->log, "web", "%s signed in from %s%s", shown, peer, tok ? " with a token" : "");
    cleanup_free char *cookie = cookie_of(w, s.id, w->m->cfg.http_session_ttl);
    return send_json(c, 200, session_json(w, &s), cookie);
}

/* ---- the live stream ------------------------------------------------------------------------ */

typedef struct sse_stream {
    web_server *w;
    web_session s;
    uint64_t gen;  /* the generation the page was told of */
    uint64_t seen; /* the newest generation seen (told at next_change_ms at the earliest) */
    int64_t next_nodes_ms, next_keepalive_ms, next_check_ms, next_change_ms; /* monotonic */
    bool hello;
    strbuf out;
    size_t sent;
} sse_stream;

static void sse_event(sse_stream *st, const char *event, json_t *data)
{
    char *text = json_dumps(data, WEB_JSON_FLAGS);
    json_decref(data);
    sb_printf(&st->out, "event: %s\ndata: %s\n\n", event, text ? text : "{}");
    free(text);
}

/* libmicrohttpd asks for the next bytes of the stream; this connection's own thread waits here
 * for something to send. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_stream *st = cls;
    web_server *w = st->w;
    while (st->sent == st->out.len) {
        sb_reset(&st->out);
        st->sent = 0;
        if (atomic_load(&w->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        int64_t now = clock_mono_ms();
        if (now >= st->next_check_ms) {
            if (!session_valid(w, &st->s))
                return MHD_CONTENT_READER_END_OF_STREAM;
            st->next_check_ms = now + WEB_NODES_EVERY_MS;
        }
        if (!st->hello) {
            st->hello = true;
            sse_event(st, "hello", json_pack("{s:s}", "user", st->s.user));
            continue;
        }
        if (now >= st->next_nodes_ms) {
            sse_event(st, "nodes", api_nodes_json(w->m, false));
            st->next_nodes_ms = now + WEB_NODES_EVERY_MS;
            st->next_keepalive_ms = now + WEB_KEEPALIVE_MS;
            continue;
        }
        if (now >= st->next_keepalive_ms) {
            sb_puts(&st->out, ": keep-alive\n\n");
            st->next_keepalive_ms = now + WEB_KEEPALIVE_MS;
            continue;
        }
        if (st->seen != st->gen && now >= st->next_change_ms) {
            st->gen = st->seen;
            st->next_change_ms = now + WEB_CHANGE_EVERY_MS;
            sse_event(st, "change", json_pack("{s:I}", "gen", (json_int_t)st->gen));
            continue;
        }
        int64_t due =
            st->next_nodes_ms < st->next_keepalive_ms ? st->next_nodes_ms : st->next_keepalive_ms;
        if (st->seen != st->gen && st->next_change_ms < due)
            due = st->next_change_ms;
        st->seen = user_service_wait(w->m, st->seen, (long)(due - now));
    }
    size_t n = st->out.len - st->sent;
    if (n > max)
        n = max;
    memcpy(buf, sb_str(&st->out) + st->sent, n);
    st->sent += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    sse_stream *st = cls;
    sb_free(&st->out);
    free(st);
}

static enum MHD_Result events(web_server *w, struct MHD_Connection *c, const web_session *s)
{
    sse_stream *st = xcalloc(1, sizeof(*st));
    st->w = w;
    st->s = *s;
    st->gen = st->seen = user_service_wait(w->m, UINT64_MAX, 0); /* the generation now */
    int64_t now = clock_mono_ms();
    st->next_nodes_ms = now;
    st->next_keepalive_ms = now + WEB_KEEPALIVE_MS;
    st->next_check_ms = now + WEB_NODES_EVERY_MS;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, st, sse_free);
    if (!r) {
        sse_free(st);
        return MHD_NO;
    }
    security_headers(r);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- routing -------------------------------------------------------------------------------- */

typedef struct route {
    const char *method;
    const char *tail; /* what follows /api/ ("swarms/ * /keys": '*' = one path segment) */
    web_handler fn;
} route;

static const route routes[] = {
    {"GET", "nodes", api_nodes},
    {"GET", "swarms", api_swarms},
    {"GET", "swarms/*", api_swarm},
    {"GET", "swarms/*/keys", api_keys},
    {"GET", "swarms/*/series", api_series},
    {"GET", "swarms/*/logs", api_logs},
    {"POST", "swarms/*/stop", api_stop},
};

/* Does path match pattern; *seg the '*' segment (copied, at most size - 1 bytes). */
static bool route_match(const char *pattern, const char *path, char *seg, size_t size)
{
    while (*pattern) {
        if (*pattern == '*') {
            size_t n = strcspn(path, "/");
            if (!n || n >= size)
                return false;
            memcpy(seg, path, n);
            seg[n] = '\0';
            path += n;
            pattern++;
        } else if (*pattern++ != *path++) {
            return false;
        }
    }
    return !*path;
}

static enum MHD_Result serve_asset(struct MHD_Connection *c, const char *url)
{
    if (!strcmp(url, "/"))
        url = "/index.html";
    if (!strcmp(url, "/favicon.ico")) /* none: nothing, rather than a 404 in the console */
        return send_bytes(c, 204, "image/x-icon", "", 0, false, NULL);
    for (size_t i = 0; i < web_assets_count; i++)
        if (!strcmp(web_assets[i].path, url))
            return send_bytes(c, 200, web_assets[i].type, web_assets[i].data, web_assets[i].len,
                              false, NULL);
    return send_error(c, 404, "There is no such page.");
}

static enum MHD_Result api(web_server *w, struct MHD_Connection *c, const char *path,
                           const char *method, const web_conn *wc)
{
    if (!strcmp(path, "login")) {
        if (strcmp(method, "POST"))
            return send_error(c, 405, "Sign in with POST.");
        return login(w, c, wc);
    }
    web_session s;
    const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, WEB_COOKIE);
    if (!session_find(w, cookie, &s) || !session_valid(w, &s))
        return send_error(c, 401, "Sign in first: there is no session, or it has ended.");
    bool post = !strcmp(method, "POST");
    if (post) {
        const char *csrf = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Manta-Csrf");
        if (!csrf || strlen(csrf) != 64 || CRYPTO_memcmp(csrf, s.csrf, 64) != 0)
            return send_error(c, 403,
                              "This request needs the session's csrf value in the X-Manta-Csrf "
                              "header (GET /api/session gives it).");
    }
    if (!strcmp(path, "session"))
        return strcmp(method, "GET") ? send_error(c, 405, "Use GET.")
                                     : send_json(c, 200, session_json(w, &s), NULL);
    if (!strcmp(path, "logout")) {
        if (!post)
            return send_error(c, 405, "Sign out with POST.");
        session_end(w, s.id);
        cleanup_free char *gone = cookie_of(w, "", 0);
        return send_json(c, 200, json_pack("{s:b}", "ok", 1), gone);
    }
    if (!strcmp(path, "events"))
        return strcmp(method, "GET") ? send_error(c, 405, "Use GET.") : events(w, c, &s);
    char seg[128];
    bool known = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!route_match(routes[i].tail, path, seg, sizeof(seg)))
            continue;
        known = true;
        if (strcmp(routes[i].method, method))
            continue;
        web_req rq = {.m = w->m,
                      .cache = w->cache,
                      .results = w->results,
                      .conn = c,
                      .user = s.user,
                      .swarm = seg};
        json_t *out = NULL;
        int status = routes[i].fn(&rq, &out);
        if (rq.body) {
            json_decref(out);
            cleanup_free char *body = rq.body;
            return send_bytes(c, status, "application/json", body, strlen(body), true, NULL);
        }
        return send_json(c, status, out ? out : json_object(), NULL);
    }
    return known ? send_error(c, 405, "That method is not allowed here.")
                 : send_error(c, 404, "There is no such API path (docs/dashboard.md lists them).");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    web_server *w = cls;
    web_conn *wc = *con_cls;
    if (!wc) { /* the headers: the body (if any) follows in the next calls */
        *con_cls = xcalloc(1, sizeof(web_conn));
        return MHD_YES;
    }
    if (*upload_size) {
        if (wc->body.len + *upload_size > WEB_BODY_MAX)
            wc->too_big = true;
        else
            sb_append(&wc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (atomic_load(&w->stopping))
        return send_error(c, 503, "The manager is stopping.");
    if (wc->too_big)
        return send_error(c, 413, "The request body is over 16 KiB.");
    if (!strncmp(url, "/api/", 5))
        return api(w, c, url + 5, method, wc);
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_error(c, 405, "Use GET.");
    return serve_asset(c, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    web_conn *wc = *con_cls;
    if (wc) {
        sb_free(&wc->body);
        free(wc);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's own complaints go to the manager's log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    web_server *w = cls;
    char *msg = xvasprintf(fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug(w->m->log, "web", "libmicrohttpd: %s", msg);
    free(msg);
}

/* ---- starting and stopping ------------------------------------------------------------------ */

static int resolve(const char *addr, struct sockaddr_storage *ss, mt_error **err)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return mt_error_set(err, MT_ERR_CONFIG,
                            "http_listen '%s' is not HOST:PORT (e.g. 127.0.0.1:8080).", addr);
    cleanup_free char *host = xstrndup(addr, (size_t)(colon - addr));
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "http_listen '%s' names no address this machine can serve on (%s).",
                            addr, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

web_server *web_start(manager *m, mt_error **err)
{
    const char *addr = m->cfg.http_listen;
    struct sockaddr_storage ss = {0};
    if (resolve(addr, &ss, err) < 0)
        return NULL;
    web_server *w = xcalloc(1, sizeof(*w));
    w->m = m;
    w->cache = web_cache_new();
    w->results = web_results_new();
    pthread_mutex_init(&w->mu, NULL);
    w->tls = *m->cfg.tls_cert && *m->cfg.tls_key;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (w->tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            mt_error_set(err, MT_ERR_CONFIG,
                         "This libmicrohttpd has no TLS: serve the dashboard without tls_cert, "
                         "or behind a TLS proxy.");
            web_stop(w);
            return NULL;
        }
        w->cert = fs_read_file(m->cfg.tls_cert, 1 << 20, NULL, err);
        w->key = w->cert ? fs_read_file(m->cfg.tls_key, 1 << 20, NULL, err) : NULL;
        if (!w->key) {
            mt_error_wrap(err, "The dashboard's TLS certificate (tls_cert/tls_key)");
            web_stop(w);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, w->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, w->key},
        {MHD_OPTION_END, 0, NULL},
    };
    w->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)WEB_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)WEB_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                            w, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, w, MHD_OPTION_ARRAY,
                            w->tls ? tls_opts : tls_opts + 2, MHD_OPTION_END);
    if (!w->d) {
        mt_error_set(err, MT_ERR_CONFIG,
                     "The dashboard could not be served on %s: the address is taken or not this "
                     "machine's%s (set http_listen, or --http).",
                     addr,
                     w->tls ? ", or tls_cert/tls_key are not a PEM certificate and its key" : "");
        web_stop(w);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_BIND_PORT);
    w->port = di ? di->port : 0;
    log_info(m->log, "web", "dashboard on %s://%s, port %d (sessions last %lld s)",
             w->tls ? "https" : "http", addr, w->port, (long long)m->cfg.http_session_ttl);
    return w;
}

int web_port(const web_server *w)
{
    return w->port;
}

bool web_tls(const web_server *w)
{
    return w->tls;
}

void web_stop(web_server *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, true);
    user_service_notify(w->m); /* wakes the live streams, which then end */
    if (w->d)
        MHD_stop_daemon(w->d);
    pthread_mutex_destroy(&w->mu);
    web_cache_free(w->cache);
    web_results_free(w->results);
    if (w->key)
        OPENSSL_cleanse(w->key, strlen(w->key));
    free(w->key);
    free(w->cert);
    free(w);
}
