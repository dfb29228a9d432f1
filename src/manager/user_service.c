/* user_service.c - core.user_services: dispatch by table, user tokens, the user RPCs, the one
 * cluster and its nodes. Modules and swarms as sent are in user_submit.c, swarms once sent in
 * user_swarms.c, results and globals in user_results.c, logs in user_logs.c.
 *
 * Statuses (user-api.md sections 1, 2 and 14): the SDK retries UNAVAILABLE, RESOURCE_EXHAUSTED,
 * ABORTED and DEADLINE_EXCEEDED by sending the same request again, so none of them is ever
 * answered after a side effect; refusals of the token are UNAUTHENTICATED (never retried),
 * unknown ids NOT_FOUND, bad input INVALID_ARGUMENT, a wrong state FAILED_PRECONDITION.
 */
#include "user_service.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cluster.pb-c.h"
#include "common/informations.pb-c.h"
#include "common/system.pb-c.h"
#include "common/user.pb-c.h"
#include "core/user_services.pb-c.h"
#include "clock.h"
#include "mem.h"
#include "strbuf.h"
#include "user_internal.h"
#include "utf8.h"

/* ---- helpers shared with the other user_*.c files (user_internal.h) ----------------------- */

void us_reply(rpc_call *call, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    protobuf_c_message_pack(msg, buf);
    if (rpc_call_send(call, buf, len) == 0)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_response(rpc_call *call, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *text = xvasprintf(fmt, ap);
    va_end(ap);
    Common__System__Response r = COMMON__SYSTEM__RESPONSE__INIT;
    r.message = text;
    us_reply(call, &r.base);
}

bool us_send(rpc_call *call, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return false;
    protobuf_c_message_pack(msg, buf);
    return rpc_call_send_owned(call, buf, 0, len) == 0;
}

ProtobufCMessage *us_recv(rpc_call *call, const ProtobufCMessageDescriptor *d)
{
    rpc_bytes b = {0};
    int r = rpc_call_recv(call, &b);
    if (r < 0)
        return NULL;
    if (r == 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "The request message is missing: the call carried no message.");
        return NULL;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, b.len, b.data);
    rpc_bytes_free(&b);
    if (!msg) {
        cleanup_free char *text = xasprintf(
            "The request is not a valid %s message: check that the client uses the protos of "
            "the Manta SDK 0.5.",
            d->name);
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, text);
    }
    return msg;
}

void us_fail(rpc_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *text = xvasprintf(fmt, ap);
    va_end(ap);
    char msg[1024];
    rpc_call_finish(call, code, utf8_clean_copy(msg, sizeof(msg), text));
}

void us_hex(node_id id, char out[33])
{
    node_id_to_hex(id, out);
}

bool us_parse_id(const char *s, node_id *out)
{
    return node_id_parse_hex(s, out);
}

char *us_shown(char *dst, size_t size, const char *src)
{
    return utf8_clean_copy(dst, size, src);
}

Google__Protobuf__Timestamp us_ts(int64_t ms)
{
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = ms / 1000;
    t.nanos = (int32_t)(ms % 1000) * 1000000;
    return t;
}

int64_t us_ts_ns(const Google__Protobuf__Timestamp *t, int64_t dflt)
{
    if (!t)
        return dflt;
    /* years 1-9999, and what fits in int64 nanoseconds (1677-2262) */
    int64_t s = t->seconds;
    if (s < INT64_MIN / 1000000000 + 1)
        s = INT64_MIN / 1000000000 + 1;
    if (s > INT64_MAX / 1000000000 - 1)
        s = INT64_MAX / 1000000000 - 1;
    int32_t n = t->nanos < 0 ? 0 : t->nanos > 999999999 ? 999999999 : t->nanos;
    return s * 1000000000 + n;
}

int64_t us_ms_to_ns(int64_t ms)
{
    const int64_t lim = INT64_MAX / 1000000 - 1;
    return (ms > lim ? lim : ms < -lim ? -lim : ms) * 1000000;
}

uint64_t us_gen(manager *m)
{
    pthread_mutex_lock(&m->us->mu);
    uint64_t g = m->us->gen;
    pthread_mutex_unlock(&m->us->mu);
    return g;
}

bool us_wait(manager *m, rpc_call *call, uint64_t seen)
{
    struct timespec until = clock_mono_after(US_POLL_MS);
    pthread_mutex_lock(&m->us->mu);
    while (m->us->gen == seen && !rpc_call_cancelled(call))
        if (pthread_cond_timedwait(&m->us->cv, &m->us->mu, &until) != 0)
            break;
    pthread_mutex_unlock(&m->us->mu);
    return !rpc_call_cancelled(call);
}

void user_service_notify(manager *m)
{
    if (!m->us)
        return;
    pthread_mutex_lock(&m->us->mu);
    m->us->gen++;
    pthread_cond_broadcast(&m->us->cv);
    pthread_mutex_unlock(&m->us->mu);
}

/* ---- IsAvailable and the user RPCs ------------------------------------------------------- */

static void do_available(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    us_response(call, "manta_manager %s is available.", MANTA_VERSION);
}

/* A User message of the store object u (token: NULL = none). */
static void user_answer(rpc_call *call, const store_object *u, const char *token, int status)
{
    Common__User__User a = COMMON__USER__USER__INIT;
    Google__Protobuf__Timestamp created = us_ts(u->created_ms), now = us_ts(clock_wall_ms());
    a.user_id = u->meta;
    a.username = u->id;
    a.created_at = &created;
    a.updated_at = &created;
    a.status = status;
    if (token) {
        a._token_case = COMMON__USER__USER___TOKEN_TOKEN;
        a.token = (char *)token;
        a._last_login_case = COMMON__USER__USER___LAST_LOGIN_LAST_LOGIN;
        a.last_login = &now;
    }
    us_reply(call, &a.base);
}

static void do_sign_in(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__SignInRequest *q = (Core__UserServices__SignInRequest *)us_recv(
        call, &core__user_services__sign_in_request__descriptor);
    if (!q)
        return;
    mt_error *err = NULL;
    store_object u = {0};
    int r = users_check_name(q->username, NULL) < 0 || strlen(q->password) > USER_PASSWORD_MAX
                ? 0
                : users_check_password(m->st, q->username, q->password, &u, &err);
    char shown[SHOWN_MAX];
    us_shown(shown, sizeof(shown), q->username);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "Signing in failed: %s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    if (r == 0) {
        log_warn(m->log, "users", "sign-in of '%s' from %s refused: unknown user or wrong password",
                 shown, rpc_call_peer(call));
        us_fail(call, RPC_UNAUTHENTICATED,
                "The user name or the password is wrong. Users are created by the manager's "
                "operator (`manta_manager user create NAME`).");
        return;
    }
    char jti[TOKEN_JTI_LEN + 1];
    cleanup_free char *tok = token_create_user(m->secret, u.id, m->cfg.user_token_ttl,
                                               clock_wall_ms() / 1000, jti, &err);
    if (!tok) {
        us_fail(call, RPC_INTERNAL, "Signing in failed: %s", mt_error_msg(err));
        mt_error_free(&err);
        store_object_clear(&u);
        return;
    }
    log_info(m->log, "users", "user '%s' signed in from %s", shown, rpc_call_peer(call));
    user_answer(call, &u, tok, COMMON__USER__USER_STATUS__SIGNED_IN);
    store_object_clear(&u);
}

static void do_logout(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    if (!uc->signed_in) {
        us_response(call, "No user token came with this call: nothing to sign out.");
        return;
    }
    mt_error *err = NULL;
    if (store_object_put(m->st, "revoked", uc->jti, uc->name, "", 0, clock_wall_ms(), true, &err) <
        0) {
        us_fail(call, RPC_INTERNAL, "Signing out failed: %s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    us_response(call, "User %s is signed out: this token no longer works.", uc->name);
}

static void do_get_user(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__GetUserRequest *q = (Core__UserServices__GetUserRequest *)us_recv(
        call, &core__user_services__get_user_request__descriptor);
    if (!q)
        return;
    cleanup_free char *want =
        q->_user_id_case == CORE__USER_SERVICES__GET_USER_REQUEST___USER_ID_USER_ID && *q->user_id
            ? xstrdup(q->user_id)
            : NULL;
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (!uc->signed_in) {
        us_fail(call, RPC_UNAUTHENTICATED,
                "GetUser needs a user token: sign in, or mint one with `manta_manager token "
                "create --user NAME`.");
        return;
    }
    store_object u = {0};
    mt_error *err = NULL;
    int r = store_object_get(m->st, "user", uc->name, false, &u, &err);
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    if (r == 0 || (want && strcasecmp(want, u.meta) != 0)) {
        char shown[SHOWN_MAX];
        us_fail(call, RPC_NOT_FOUND,
                "There is no user %s that this token may read: a user token reads its own user "
                "only (send GetUser without user_id).",
                want ? us_shown(shown, sizeof(shown), want) : uc->name);
        store_object_clear(&u);
        return;
    }
    user_answer(call, &u, NULL, COMMON__USER__USER_STATUS__ACTIVE);
    store_object_clear(&u);
}

/* ---- the cluster (user-api.md section 10: one cluster, this manager) -------------------- */

/* The listen address's host and port. */
static void node_endpoint(manager *m, char host[256], uint32_t *port)
{
    snprintf(host, 256, "%s", m->cfg.listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    *port = (uint32_t)m->port;
}

static void send_cluster(manager *m, rpc_call *call, bool stream)
{
    Common__Cluster__Cluster c = COMMON__CLUSTER__CLUSTER__INIT;
    Google__Protobuf__Timestamp created = us_ts(m->us->cluster_created_ms);
    char host[256];
    c.cluster_id = m->us->cluster_id;
    c.name = (char *)"manta_manager";
    c.created_at = &created;
    c.updated_at = &created;
    c.last_start = &created;
    c.status = COMMON__INFORMATIONS__CLUSTER_STATUS__RUNNING;
    node_endpoint(m, host, &c.node_port);
    c.node_host = host;
    if (!stream) {
        us_reply(call, &c.base);
    } else if (us_send(call, &c.base)) {
        rpc_call_finish(call, RPC_OK, NULL);
    }
}

/* Check a cluster id from the user; false with the call finished when it is not ours. */
static bool our_cluster(manager *m, rpc_call *call, const char *id)
{
    node_id want, ours;
    if (us_parse_id(id, &want) && us_parse_id(m->us->cluster_id, &ours) &&
        node_id_equal(want, ours))
        return true;
    char shown[SHOWN_MAX];
    us_fail(call, RPC_NOT_FOUND,
            "There is no cluster '%s': this manager is one cluster, %s (ListClusterIds).",
            us_shown(shown, sizeof(shown), id ? id : ""), m->us->cluster_id);
    return false;
}

static void do_list_cluster_ids(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    Common__System__CollectionIds ids = COMMON__SYSTEM__COLLECTION_IDS__INIT;
    char *one[1] = {m->us->cluster_id};
    ids.ids = one;
    ids.n_ids = 1;
    us_reply(call, &ids.base);
}

static void do_stream_clusters(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    send_cluster(m, call, true);
}

/* Receive a StrId naming our cluster; false with the call finished otherwise. */
static bool recv_cluster_id(manager *m, rpc_call *call)
{
    Common__System__StrId *q =
        (Common__System__StrId *)us_recv(call, &common__system__str_id__descriptor);
    if (!q)
        return false;
    bool ok = our_cluster(m, call, q->id);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    return ok;
}

static void do_get_cluster(manager *m, rpc_call *call, const user_caller *uc)
{
    if (recv_cluster_id(m, call))
        send_cluster(m, call, false);
}

/* ---- nodes ---------------------------------------------------------------------------- */

/* What the user sees of one node (owned fields; unpacked parts freed by node_view_clear). */
typedef struct node_view {
    char id[33];
    bool connected, ready;
    Common__Informations__PlatformInfo *platform; /* unpacked, or built */
    Common__Informations__Overviews *overviews;
    Common__Informations__MetricsSnapshot *metrics;
    Common__Informations__PlatformInfo fallback;
    char *hostname, *system; /* of the fallback */
    Common__Informations__Overviews ov_fallback;
    Common__Informations__Overview *ov_items, **ov_ptrs;
    char **ov_names;
    int64_t created_ms, updated_ms;
} node_view;

static void node_view_clear(node_view *v)
{
    if (v->platform && v->platform != &v->fallback)
        protobuf_c_message_free_unpacked(&v->platform->base, NULL);
    if (v->overviews && v->overviews != &v->ov_fallback)
        protobuf_c_message_free_unpacked(&v->overviews->base, NULL);
    if (v->metrics)
        protobuf_c_message_free_unpacked(&v->metrics->base, NULL);
    free(v->hostname);
    free(v->system);
    free(v->ov_items);
    free(v->ov_ptrs);
    mem_free_strv(&v->ov_names);
    memset(v, 0, sizeof(*v));
}

static void node_views_free(node_view *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        node_view_clear(&v[i]);
    free(v);
}

/* Every node that ever registered (the store), with what the registry knows now. */
static int node_views(manager *m, node_view **out, size_t *nout, mt_error **err)
{
    store_node *rows = NULL;
    size_t n = 0;
    *out = NULL;
    *nout = 0;
    if (store_node_list(m->st, &rows, &n, err) < 0)
        return -1;
    node_view *v = xcalloc(n + 1, sizeof(*v));
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        node_view *w = &v[i];
        node_id id = {0, 0};
        node_id_parse_xid(rows[i].id, &id);
        us_hex(id, w->id);
        w->created_ms = rows[i].registered_ms;
        w->updated_ms = rows[i].last_seen_ms;
        mgr_node *nd = mgr_node_find(m, id);
        if (nd) {
            w->connected = nd->connected;
            w->ready = nd->connected && nd->ready;
            if (nd->platform.len)
                w->platform = common__informations__platform_info__unpack(NULL, nd->platform.len,
                                                                          nd->platform.data);
            if (nd->overviews.len)
                w->overviews = common__informations__overviews__unpack(NULL, nd->overviews.len,
                                                                       nd->overviews.data);
            if (nd->metrics.len)
                w->metrics = common__informations__metrics_snapshot__unpack(NULL, nd->metrics.len,
                                                                            nd->metrics.data);
        }
        if (!w->platform) {
            common__informations__platform_info__init(&w->fallback);
            w->hostname = xstrdup(rows[i].hostname);
            w->system = xstrdup(rows[i].platform);
            w->fallback.hostname = w->hostname;
            w->fallback.system = w->system;
            w->platform = &w->fallback;
        }
        if (!w->overviews) {
            common__informations__overviews__init(&w->ov_fallback);
            size_t k = 0;
            cleanup_free char *list = xstrdup(rows[i].datasets);
            char *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
                k++;
            w->ov_items = xcalloc(k + 1, sizeof(*w->ov_items));
            w->ov_ptrs = xcalloc(k + 1, sizeof(*w->ov_ptrs));
            w->ov_names = xcalloc(k + 1, sizeof(char *));
            free(list);
            list = xstrdup(rows[i].datasets);
            k = 0;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                common__informations__overview__init(&w->ov_items[k]);
                w->ov_names[k] = xstrdup(t);
                w->ov_items[k].name = w->ov_names[k];
                w->ov_ptrs[k] = &w->ov_items[k];
                k++;
            }
            w->ov_fallback.content = w->ov_ptrs;
            w->ov_fallback.n_content = k;
            w->overviews = &w->ov_fallback;
        }
    }
    pthread_mutex_unlock(&m->lock);
    store_nodes_free(rows, n);
    *out = v;
    *nout = n;
    return 0;
}

static void node_message(const node_view *v, Common__Informations__Node *msg,
                         Google__Protobuf__Timestamp ts[2])
{
    common__informations__node__init(msg);
    msg->node_id = (char *)v->id;
    msg->status = v->connected ? COMMON__INFORMATIONS__NODE_STATUS_ENUM__CONNECTED
                               : COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED;
    msg->platform_info = v->platform;
    msg->dataset_overviews = v->overviews;
    msg->metrics_snapshot = v->metrics;
    ts[0] = us_ts(v->created_ms);
    ts[1] = us_ts(v->updated_ms);
    msg->created_at = &ts[0];
    msg->updated_at = &ts[1];
}

static void node_ids(manager *m, rpc_call *call, bool available)
{
    if (!recv_cluster_id(m, call))
        return;
    node_view *v = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (node_views(m, &v, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    Common__System__CollectionIds ids = COMMON__SYSTEM__COLLECTION_IDS__INIT;
    cleanup_free char **p = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (!available || v[i].ready)
            p[ids.n_ids++] = v[i].id;
    ids.ids = p;
    us_reply(call, &ids.base);
    node_views_free(v, n);
}

static void do_list_node_ids(manager *m, rpc_call *call, const user_caller *uc)
{
    node_ids(m, call, false);
}

static void do_list_available_node_ids(manager *m, rpc_call *call, const user_caller *uc)
{
    node_ids(m, call, true);
}

static void do_stream_nodes(manager *m, rpc_call *call, const user_caller *uc)
{
    if (!recv_cluster_id(m, call))
        return;
    node_view *v = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (node_views(m, &v, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        Common__Informations__Node msg;
        Google__Protobuf__Timestamp ts[2];
        node_message(&v[i], &msg, ts);
        ok = us_send(call, &msg.base);
    }
    node_views_free(v, n);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

/* Receive a NodeRequest and find its node; -1 with the call finished when either id is
 * unknown, else the index in *v. */
static ssize_t recv_node(manager *m, rpc_call *call, node_view **v, size_t *n)
{
    Core__UserServices__NodeRequest *q = (Core__UserServices__NodeRequest *)us_recv(
        call, &core__user_services__node_request__descriptor);
    if (!q)
        return -1;
    if (!our_cluster(m, call, q->cluster_id)) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        return -1;
    }
    char shown[SHOWN_MAX];
    us_shown(shown, sizeof(shown), q->node_id);
    node_id want;
    bool parsed = us_parse_id(q->node_id, &want);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    mt_error *err = NULL;
    if (node_views(m, v, n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return -1;
    }
    for (size_t i = 0; parsed && i < *n; i++) {
        node_id id;
        if (us_parse_id((*v)[i].id, &id) && node_id_equal(id, want))
            return (ssize_t)i;
    }
    us_fail(call, RPC_NOT_FOUND,
            "There is no node '%s' in this cluster: ListNodeIds gives the ids of its nodes.",
            shown);
    node_views_free(*v, *n);
    *v = NULL;
    return -1;
}

static void do_get_node(manager *m, rpc_call *call, const user_caller *uc)
{
    node_view *v = NULL;
    size_t n = 0;
    ssize_t i = recv_node(m, call, &v, &n);
    if (i < 0)
        return;
    Common__Informations__Node msg;
    Google__Protobuf__Timestamp ts[2];
    node_message(&v[i], &msg, ts);
    us_reply(call, &msg.base);
    node_views_free(v, n);
}

static void node_resources(manager *m, rpc_call *call, bool stream)
{
    node_view *v = NULL;
    size_t n = 0;
    ssize_t i = recv_node(m, call, &v, &n);
    if (i < 0)
        return;
    Common__Informations__MetricsSnapshot empty = COMMON__INFORMATIONS__METRICS_SNAPSHOT__INIT;
    const ProtobufCMessage *msg = v[i].metrics ? &v[i].metrics->base : &empty.base;
    if (!stream)
        us_reply(call, msg);
    else if (us_send(call, msg))
        rpc_call_finish(call, RPC_OK, NULL);
    node_views_free(v, n);
}

static void do_get_node_resources(manager *m, rpc_call *call, const user_caller *uc)
{
    node_resources(m, call, false);
}

static void do_stream_node_resources(manager *m, rpc_call *call, const user_caller *uc)
{
    node_resources(m, call, true);
}

static void do_collect_errors(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__ErrorsRequest *q = (Core__UserServices__ErrorsRequest *)us_recv(
        call, &core__user_services__errors_request__descriptor);
    if (!q)
        return;
    bool ok = our_cluster(m, call, q->cluster_id);
    int64_t from = us_ts_ns(q->start_time, INT64_MIN), to = us_ts_ns(q->end_time, INT64_MAX);
    int32_t limit = q->limit;
    bool desc = !strcasecmp(q->sort_order, "desc");
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (!ok)
        return;
    store_errrow *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_error_list(m->st, NULL, &rows, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    size_t sent = 0;
    bool alive = true;
    for (size_t k = 0; k < n && alive && (limit <= 0 || sent < (size_t)limit); k++) {
        const store_errrow *r = &rows[desc ? n - 1 - k : k];
        int64_t ns = us_ms_to_ns(r->ts_ms);
        if (ns < from || ns > to)
            continue;
        Common__System__Error e = COMMON__SYSTEM__ERROR__INIT;
        Common__System__PairId ids[3];
        const char *xs[3] = {r->swarm, r->node, r->task};
        Common__System__PairId **slots[3] = {&e.swarm_id, &e.node_id, &e.task_id};
        for (int j = 0; j < 3; j++) {
            node_id id;
            common__system__pair_id__init(&ids[j]);
            if (*xs[j] && node_id_parse_xid(xs[j], &id)) {
                ids[j].head = id.head;
                ids[j].tail = id.tail;
                *slots[j] = &ids[j];
            }
        }
        Google__Protobuf__Timestamp ts = us_ts(r->ts_ms);
        e.timestamp = &ts;
        e.iteration = r->iteration;
        e.circular = r->circular;
        e.error_id = (uint32_t)r->error_id;
        e.content = r->content;
        alive = us_send(call, &e.base);
        sent++;
    }
    store_errors_free(rows, n);
    if (alive)
        rpc_call_finish(call, RPC_OK, NULL);
}

/* ---- the table ------------------------------------------------------------------------- */

#define UM "/core.user_services.UserManagement/"
#define CM "/core.user_services.ClusterManagement/"
#define SM "/core.user_services.SwarmManagement/"
#define MM "/core.user_services.ModuleManagement/"

static const user_method methods[] = {
    {UM "IsAvailable", do_available, true},
    {UM "RegisterUser", NULL, true},
    {UM "ValidateUser", NULL, true},
    {UM "SignIn", do_sign_in, true},
    {UM "Logout", do_logout, false},
    {UM "GetUser", do_get_user, false},
    {UM "ListUserIds", NULL, false},
    {UM "StreamUsers", NULL, false},
    {UM "DeleteUser", NULL, false},
    {UM "AddUser", NULL, false},
    {UM "UpdateUserAuthorization", NULL, false},
    {UM "RequestPasswordReset", NULL, true},
    {UM "ResetPassword", NULL, true},
    {UM "ResendVerification", NULL, true},
    {CM "IsAvailable", do_available, true},
    {CM "CreateCluster", NULL, false},
    {CM "StartCluster", NULL, false},
    {CM "StopCluster", NULL, false},
    {CM "DeleteCluster", NULL, false},
    {CM "ListClusterIds", do_list_cluster_ids, false},
    {CM "StreamClusters", do_stream_clusters, false},
    {CM "GetCluster", do_get_cluster, false},
    {CM "ListNodeIds", do_list_node_ids, false},
    {CM "StreamNodes", do_stream_nodes, false},
    {CM "StopNode", NULL, false},
    {CM "RemoveNode", NULL, false},
    {CM "GetNode", do_get_node, false},
    {CM "GetNodeResources", do_get_node_resources, false},
    {CM "StreamNodeResources", do_stream_node_resources, false},
    {CM "ListAvailableNodeIds", do_list_available_node_ids, false},
    {CM "CollectErrors", do_collect_errors, false},
    {CM "SelectTasks", NULL, false},
    {SM "IsAvailable", do_available, true},
    {SM "SendSwarm", us_send_swarm, false},
    {SM "ListSwarmIds", us_list_swarm_ids, false},
    {SM "StreamSwarms", us_stream_swarms, false},
    {SM "GetSwarm", us_get_swarm, false},
    {SM "StreamSwarmTasks", us_stream_swarm_tasks, false},
    {SM "StartSwarm", us_start_swarm, false},
    {SM "StopSwarm", us_stop_swarm, false},
    {SM "RemoveSwarm", us_remove_swarm, false},
    {SM "SelectResults", us_select_results, false},
    {SM "StreamResults", us_stream_results, false},
    {SM "DeleteResults", us_delete_results, false},
    {SM "ListResultTags", us_list_result_tags, false},
    {SM "CollectLogs", us_collect_logs, false},
    {SM "StreamLogs", us_stream_logs, false},
    {SM "InitializeGlobal", us_initialize_global, false},
    {SM "SelectGlobal", us_select_global, false},
    {SM "ListGlobalTags", us_list_global_tags, false},
    {SM "InitializeNetworks", us_initialize_networks, false},
    {MM "IsAvailable", do_available, true},
    {MM "SendModule", us_send_module, false},
    {MM "ListModuleIds", us_list_module_ids, false},
    {MM "StreamModules", us_stream_modules, false},
    {MM "GetModule", us_get_module, false},
    {MM "UpdateModule", NULL, false},
    {MM "RemoveModule", us_remove_module, false},
};

static const char supported[] =
    "manta_manager supports signing in (SignIn, Logout, GetUser; users are created by its "
    "operator with `manta_manager user create`), its one cluster and the nodes of it, modules "
    "(send, list, get, remove), swarms (send, globals, networks, start, get, list, tasks, stop, "
    "remove), results, globals and logs (select, stream, collect, tags, delete results).";

bool user_service_identify(manager *m, rpc_call *call, user_caller *uc)
{
    memset(uc, 0, sizeof(*uc));
    const char *path = rpc_call_method(call);
    for (size_t i = 0; i < ARRAY_LEN(methods); i++)
        if (!strcmp(methods[i].path, path))
            uc->meth = &methods[i];
    if (!uc->meth || !uc->meth->fn) {
        char shown[SHOWN_MAX];
        const char *name = strncmp(path, USER_SVC_PREFIX, strlen(USER_SVC_PREFIX))
                               ? path
                               : path + strlen(USER_SVC_PREFIX);
        us_fail(call, RPC_UNIMPLEMENTED, "%s is not %s by this manager. %s",
                us_shown(shown, sizeof(shown), name), uc->meth ? "implemented" : "known",
                supported);
        return false;
    }
    const char *tok = rpc_call_metadata(call, "authorization");
    snprintf(uc->who, sizeof(uc->who), "user peer %s", rpc_call_peer(call));
    if (!tok || !*tok) {
        if (uc->meth->open || !m->cfg.require_token)
            return true;
        us_fail(call, RPC_UNAUTHENTICATED,
                "This call needs a user token in the `authorization` metadata: sign in "
                "(AsyncUserAPI.sign_in), or ask the manager's operator for one (`manta_manager "
                "token create --user NAME`).");
        return false;
    }
    mt_error *err = NULL;
    int rc = user_token_check(m, tok, uc->name, uc->jti, &err);
    if (rc < 0 && uc->meth->open && !m->cfg.require_token && err->status != RPC_INTERNAL) {
        mt_error_free(&err);
        return true;
    }
    if (rc < 0) {
        log_warn(m->log, "users", "%s from %s refused: %s", path + strlen(USER_SVC_PREFIX),
                 rpc_call_peer(call), mt_error_msg(err));
        us_fail(call, err->status, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return false;
    }
    uc->signed_in = true;
    snprintf(uc->who, sizeof(uc->who), "user %s", uc->name);
    return true;
}

int user_token_check(manager *m, const char *tok, char name[USER_NAME_MAX + 1],
                     char jti[TOKEN_JTI_LEN + 1], mt_error **err)
{
    if (token_verify_user(m->secret, tok, clock_wall_ms() / 1000, name, USER_NAME_MAX + 1, jti,
                          err) < 0) {
        (*err)->status = RPC_UNAUTHENTICATED;
        return mt_error_wrap(err, "The user token was refused");
    }
    store_object o = {0};
    int revoked = store_object_get(m->st, "revoked", jti, false, &o, err);
    store_object_clear(&o);
    int known = revoked == 0 ? store_object_get(m->st, "user", name, false, &o, err) : 0;
    store_object_clear(&o);
    if (revoked < 0 || known < 0) {
        (*err)->status = RPC_INTERNAL;
        return mt_error_wrap(err, "The user token could not be checked");
    }
    char shown[USER_NAME_MAX + 1];
    if (revoked)
        mt_error_set(err, MT_ERR_INVALID,
                     "The user token was refused: it was signed out (Logout). Sign in again.");
    else if (!known)
        mt_error_set(err, MT_ERR_INVALID,
                     "The user token was refused: its user '%s' no longer exists.",
                     us_shown(shown, sizeof(shown), name));
    else
        return 0;
    (*err)->status = RPC_UNAUTHENTICATED;
    return -1;
}

uint64_t user_service_wait(manager *m, uint64_t seen, long timeout_ms)
{
    struct user_service *us = m->us;
    struct timespec until = clock_mono_after(timeout_ms);
    pthread_mutex_lock(&us->mu);
    while (us->gen == seen && pthread_cond_timedwait(&us->cv, &us->mu, &until) != ETIMEDOUT)
        ;
    uint64_t gen = us->gen;
    pthread_mutex_unlock(&us->mu);
    return gen;
}

void user_service_serve(manager *m, rpc_call *call, const user_caller *uc)
{
    uc->meth->fn(m, call, uc);
}

int user_service_init(manager *m, mt_error **err)
{
    struct user_service *us = xcalloc(1, sizeof(*us));
    pthread_mutex_init(&us->mu, NULL);
    clock_cond_init(&us->cv);
    m->us = us;
    store_object o = {0};
    int r = store_object_get(m->st, "meta", "cluster_id", false, &o, err);
    if (r < 0)
        return mt_error_wrap(err, "The cluster id could not be read");
    if (r == 1) {
        snprintf(us->cluster_id, sizeof(us->cluster_id), "%s", o.meta);
        us->cluster_created_ms = o.created_ms;
        store_object_clear(&o);
        return 0;
    }
    node_id id;
    if (node_id_random(&id, err) < 0)
        return -1;
    us_hex(id, us->cluster_id);
    us->cluster_created_ms = clock_wall_ms();
    if (store_object_put(m->st, "meta", "cluster_id", us->cluster_id, "", 0, us->cluster_created_ms,
                         false, err) < 0)
        return mt_error_wrap(err, "The cluster id could not be saved");
    return 0;
}

void user_service_free(manager *m)
{
    if (!m->us)
        return;
    pthread_mutex_destroy(&m->us->mu);
    pthread_cond_destroy(&m->us->cv);
    free(m->us);
    m->us = NULL;
}
