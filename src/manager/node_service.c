/* node_service.c - node.node_service.Node for nodes, and the node messages arriving by MQTT:
 * the servers, the dispatch of calls by method, calls in progress per caller and stall
 * limits. The methods are in node_registry.c (registration, liveness, what nodes tell of
 * themselves), node_tasks.c (task updates, errors, ScheduleTask, StopSwarm) and node_data.c
 * (logs, results, globals); who may act for which node in node_auth.c (node_service_impl.h:
 * what they share).
 *
 * Who may do what (docs/manager-security.md has the same for operators):
 *
 * Calls per node. The node service runs each call on one of NODE_SERVICE_CALLS threads; calls
 * beyond wait in rpc.c's queue. A call holds its thread for as long as its client keeps it
 * open, so one token holder with 70 streams that send one message and never end used to hold
 * all 64 threads, and every other node's IsAvailable, registration, logs and results waited.
 * Now each caller may have at most NODE_CALLS calls in progress, counted across all methods
 * (a stream of logs and a registration take the same kind of thread). The caller is the
 * token's subject - the alias the token was minted for, the node's identity - or, with tokens
 * off (`--no-token`), the peer's address and port: one connection, which is what one node
 * process uses, since without tokens the manager cannot tell nodes apart (a client opening
 * many connections is then not bounded; tokens off is for closed machines). A call over the
 * cap is refused with RESOURCE_EXHAUSTED right after the token check, before any message is
 * read, so its thread is free again at once and the calls queued behind it move on.
 * Sizing: 64 threads = 8 callers at their cap of 8; with one greedy token, 56 threads stay
 * free for the others. A node of this project has at most max_concurrent_tasks relayed World
 * calls (the SDK calls one at a time), one log upload and a few unary calls in progress: 8
 * fits its default of 2 tasks with room to spare; unary calls and downloads refused over the
 * cap are retried by the node.
 *
 * Calls that make no progress. The cap bounds what one caller holds, not for how long. Every
 * call also gets the stall limit `call_stall_timeout` (rpc_call_set_stall_limit): a receive
 * that brings no message, or a send the client does not take, within it ends the call with
 * DEADLINE_EXCEEDED and frees the thread and the slot. The limit is per message, not per call:
 * a long stream is fine as long as it moves, but one message must arrive whole within it (a
 * 300 MiB value takes about 25 s at 100 Mbit/s), hence the generous default of 120 s.
 *
 * Node bindings: which node ids a token may act for, node_auth.c.
 *
 * The user services. Calls to "/core.user_services.*" (what the Manta SDK calls) are served on
 * the same server and threads (user_service.c), under the same per-caller cap (the caller is
 * then "user NAME", or the connection without a user token) and stall limit; with
 * `user_listen` they get their own server (never asking for a client certificate), and each
 * server refuses the other's services with UNIMPLEMENTED naming the right address. A user token
 * is refused here, a node token there (token.c: different audiences).
 */
#include "node_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/system.pb-c.h"
#include "fsutil.h"
#include "mem.h"
#include "node_service_impl.h"
#include "utf8.h"
#include "user_service.h"

#define SVC                "/node.node_service.Node/"
#define NODE_SERVICE_CALLS 64 /* threads of the node service */
#define NODE_CALLS         8  /* calls in progress per caller */

/* Answer a unary call with a packed message (or Ok when msg is NULL). */
void ns_reply(rpc_call *call, const ProtobufCMessage *msg)
{
    Common__System__Ok ok = COMMON__SYSTEM__OK__INIT;
    if (!msg)
        msg = &ok.base;
    size_t len = protobuf_c_message_get_packed_size(msg);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    protobuf_c_message_pack(msg, buf);
    if (rpc_call_send(call, buf, len) == 0)
        rpc_call_finish(call, RPC_OK, NULL);
}

/* Receive one request message and unpack it; on failure the call is finished. */
ProtobufCMessage *ns_recv_one(rpc_call *call, const ProtobufCMessageDescriptor *d)
{
    rpc_bytes b = {0};
    int r = rpc_call_recv(call, &b);
    if (r <= 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "The request message is missing.");
        return NULL;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, b.len, b.data);
    rpc_bytes_free(&b);
    if (!msg)
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "The request is not a valid protobuf message of the expected type.");
    return msg;
}

/* ---- calls in progress per caller ----------------------------------------------------------- */

typedef struct call_slot {
    struct node_service *ns;
    const char *who;
    bool held;
} call_slot;

static void slot_release(call_slot *slot)
{
    if (!slot->held)
        return;
    struct node_service *ns = slot->ns;
    pthread_mutex_lock(&ns->mu);
    for (size_t i = 0; i < ns->nbusy; i++) {
        caller_calls *b = &ns->busy[i];
        if (!strcmp(b->who, slot->who)) {
            if (--b->n <= 0) {
                free(b->who);
                *b = ns->busy[--ns->nbusy];
            }
            break;
        }
    }
    pthread_mutex_unlock(&ns->mu);
    slot->held = false;
}
#define cleanup_slot __attribute__((cleanup(slot_release)))

/* Take one of the caller's NODE_CALLS slots. False when all are taken; *log_it is then true
 * for the first refusal since the caller last had no call in progress (one log line per
 * episode, not one per refused call). */
static bool slot_take(struct node_service *ns, const char *who, call_slot *slot, bool *log_it)
{
    *slot = (call_slot){.ns = ns, .who = who};
    *log_it = false;
    pthread_mutex_lock(&ns->mu);
    size_t i;
    for (i = 0; i < ns->nbusy; i++)
        if (!strcmp(ns->busy[i].who, who))
            break;
    if (i == ns->nbusy) {
        if (ns->nbusy == ns->capbusy) {
            ns->capbusy = ns->capbusy ? 2 * ns->capbusy : 16;
            ns->busy = xrealloc(ns->busy, ns->capbusy * sizeof(*ns->busy));
        }
        ns->busy[ns->nbusy++] = (caller_calls){.who = xstrdup(who)};
    }
    caller_calls *b = &ns->busy[i];
    bool ok = b->n < NODE_CALLS;
    if (ok) {
        b->n++;
    } else if (!b->warned) {
        b->warned = true;
        *log_it = true;
    }
    pthread_mutex_unlock(&ns->mu);
    slot->held = ok;
    return ok;
}

/* ---- the node service ----------------------------------------------------------------------- */

static struct node_service *ns_new(manager *m, mt_error **err)
{
    store_binding *rows = NULL;
    size_t n = 0;
    if (store_binding_list(m->st, &rows, &n, err) < 0)
        return NULL;
    struct node_service *ns = xcalloc(1, sizeof(*ns));
    pthread_mutex_init(&ns->mu, NULL);
    pthread_mutex_init(&ns->bind_mu, NULL);
    for (size_t i = 0; i < n; i++) {
        node_id id;
        if (node_id_parse_xid(rows[i].node, &id))
            ns_bound_put(ns, id, rows[i].subject);
    }
    store_bindings_free(rows, n);
    return ns;
}

static void ns_free(struct node_service *ns)
{
    if (!ns)
        return;
    for (size_t i = 0; i < ns->nbusy; i++)
        free(ns->busy[i].who);
    for (size_t i = 0; i < ns->nbound; i++)
        free(ns->bound[i].subject);
    free(ns->busy);
    free(ns->bound);
    pthread_mutex_destroy(&ns->mu);
    pthread_mutex_destroy(&ns->bind_mu);
    free(ns);
}

/* ---- the methods: one function per RPC, chosen by name in serve ----------------------------- */

static void do_is_available(manager *m, rpc_call *call, const caller *c)
{
    rpc_bytes b = {0};
    if (rpc_call_recv(call, &b) < 0)
        return;
    rpc_bytes_free(&b);
    ns_reply(call, NULL);
}

/* The methods of node.node_service.Node, by the name after SVC. */
static const struct {
    const char *name;
    void (*serve)(manager *m, rpc_call *call, const caller *c);
} node_methods[] = {
    {"IsAvailable", do_is_available},
    {"RegisterNode", ns_register},
    {"Ping", ns_ping},
    {"SetNodeStatus", ns_set_node_status},
    {"SetSystemSummary", ns_set_system_summary},
    {"SetOverviews", ns_set_overviews},
    {"SendError", ns_send_error},
    {"StopSwarm", ns_stop_swarm},
    {"UpdateTask", ns_update_task},
    {"ScheduleTask", ns_schedule_task},
    {"AddTaskLogs", ns_add_logs},
    {"GetTaskResult", ns_get_result},
    {"AddTaskResult", ns_add_result},
    {"GetGlobal", ns_get_global},
    {"SetGlobal", ns_set_global},
};

/* One call, once the caller has a slot. */
static void serve(manager *m, rpc_call *call, const caller *c, const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(node_methods); i++) {
        if (!strcmp(name, node_methods[i].name)) {
            node_methods[i].serve(m, call, c);
            return;
        }
    }
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "Unknown method of node.node_service.Node.");
}

/* Which services a server answers. */
enum { SERVE_NODES = 1, SERVE_USERS = 2 };

static void handle_for(manager *m, rpc_call *call, int which)
{
    const char *method = rpc_call_method(call);
    bool user = !strncmp(method, USER_SVC_PREFIX, strlen(USER_SVC_PREFIX));
    bool node = !strncmp(method, SVC, strlen(SVC));
    if (!(user && (which & SERVE_USERS)) && !(node && (which & SERVE_NODES))) {
        rpc_call_finish(call, RPC_UNIMPLEMENTED,
                        which == SERVE_USERS
                            ? "This address serves the user services (core.user_services) only; "
                              "nodes connect to the manager's `listen` address."
                        : which == SERVE_NODES
                            ? "This address serves node.node_service.Node only; the user "
                              "services (core.user_services) are on the manager's `user_listen` "
                              "address."
                            : "This manager serves node.node_service.Node and core.user_services "
                              "only.");
        return;
    }
    caller c;
    user_caller uc;
    const char *who;
    if (user) {
        if (!user_service_identify(m, call, &uc))
            return;
        who = uc.who;
    } else {
        if (!ns_identify(m, call, method + strlen(SVC), &c))
            return;
        who = c.who;
    }
    /* The cap first, before any message is read: a refusal frees the thread at once. */
    bool log_it = false;
    cleanup_slot call_slot slot = {0};
    if (!slot_take(m->ns, who, &slot, &log_it)) {
        if (log_it) {
            char shown[sizeof(c.who) + sizeof(uc.who)];
            log_warn(m->log, "nodes",
                     "%s already has %d calls in progress (the most one caller may have); "
                     "refusing more until one ends (%s from %s)",
                     utf8_clean_copy(shown, sizeof(shown), who), NODE_CALLS, method,
                     rpc_call_peer(call));
        }
        cleanup_free char *msg = xasprintf(
            "This %s already has %d calls in progress on the manager, the most one %s may have "
            "at once; nothing of this call was read. Wait for one of them to end, then call "
            "again.",
            user        ? "user"
            : c.checked ? "node token"
                        : "connection",
            NODE_CALLS, user ? "user" : "node");
        /* The SDK retries RESOURCE_EXHAUSTED by re-sending the same request; for its one
         * client stream (InitializeGlobal) that is the consumed generator, an empty stream
         * (user-api.md 6.3): refuse that call with a status it does not retry. */
        bool client_stream = user && strstr(method, "/InitializeGlobal") != NULL;
        rpc_call_finish(call, client_stream ? RPC_FAILED_PRECONDITION : RPC_RESOURCE_EXHAUSTED,
                        msg);
        return;
    }
    cleanup_free char *stalled = xasprintf(
        "The manager received nothing on this call for %lld s (its call_stall_timeout) and ended "
        "it: a call must not pause that long. If one message takes longer than that to cross "
        "this link, the manager's operator can raise call_stall_timeout.",
        (long long)m->cfg.call_stall_timeout);
    rpc_call_set_stall_limit(call, m->cfg.call_stall_timeout * 1000, stalled);
    if (user)
        user_service_serve(m, call, &uc);
    else
        serve(m, call, &c, method + strlen(SVC));
}

static void handle(void *ctx, rpc_call *call)
{
    manager *m = ctx;
    handle_for(m, call, *m->cfg.user_listen ? SERVE_NODES : SERVE_NODES | SERVE_USERS);
}

static void handle_users(void *ctx, rpc_call *call)
{
    handle_for(ctx, call, SERVE_USERS);
}

int node_service_start(manager *m, mt_error **err)
{
    rpc_server_tls tls = {0};
    cleanup_free char *cert = NULL, *key = NULL, *ca = NULL;
    bool use_tls = *m->cfg.tls_cert || *m->cfg.tls_key;
    if (use_tls) {
        if (!*m->cfg.tls_cert || !*m->cfg.tls_key)
            return mt_error_set(err, MT_ERR_CONFIG,
                                "TLS needs both tls_cert and tls_key: set the missing one, or "
                                "neither for plaintext.");
        size_t n;
        if (!(cert = fs_read_file(m->cfg.tls_cert, 1 << 20, &n, err)) ||
            !(key = fs_read_file(m->cfg.tls_key, 1 << 20, &n, err)) ||
            (*m->cfg.tls_client_ca && !(ca = fs_read_file(m->cfg.tls_client_ca, 1 << 20, &n, err))))
            return mt_error_wrap(err, "The node service's TLS files could not be read");
        tls.cert_pem = cert;
        tls.key_pem = key;
        tls.client_ca_pem = ca;
    }
    m->ns = ns_new(m, err);
    if (!m->ns)
        return mt_error_wrap(err, "The node service could not load which token each node acts for");
    if (user_service_init(m, err) < 0)
        return mt_error_wrap(err, "The user services could not start");
    m->srv = rpc_server_start(m->cfg.listen, use_tls ? &tls : NULL, NODE_SERVICE_CALLS, handle, m,
                              &m->port, err);
    if (!m->srv)
        return mt_error_wrap(err, "The node service could not listen on %s", m->cfg.listen);
    m->user_port = m->port;
    if (*m->cfg.user_listen) {
        /* users never present a client certificate (the SDK cannot): no client_ca here */
        tls.client_ca_pem = NULL;
        m->usrv = rpc_server_start(m->cfg.user_listen, use_tls ? &tls : NULL, NODE_SERVICE_CALLS,
                                   handle_users, m, &m->user_port, err);
        if (!m->usrv)
            return mt_error_wrap(err, "The user services could not listen on %s",
                                 m->cfg.user_listen);
    }
    return 0;
}

void node_service_stop(manager *m)
{
    if (m->usrv)
        rpc_server_stop(m->usrv, 2000);
    m->usrv = NULL;
    if (m->srv)
        rpc_server_stop(m->srv, 2000);
    m->srv = NULL;
    user_service_free(m);
    ns_free(m->ns); /* no handler runs any more */
    m->ns = NULL;
}

/* What nodes publish on MQTT (node_service.h), by the topic's last segment; anything else is
 * ignored. */
static const struct {
    const char *what;
    void (*take)(manager *m, const void *payload, size_t len);
} mqtt_messages[] = {
    {"update_task_status", ns_mqtt_task_update},
    {"set_system_summary", ns_mqtt_system_summary},
    {"set_node_status", ns_mqtt_node_status},
};

void node_service_on_mqtt(manager *m, const char *topic, const void *payload, size_t len)
{
    if (!payload)
        return;
    const char *what = strrchr(topic, '/');
    what = what ? what + 1 : topic;
    for (size_t i = 0; i < ARRAY_LEN(mqtt_messages); i++) {
        if (!strcmp(what, mqtt_messages[i].what)) {
            mqtt_messages[i].take(m, payload, len);
            return;
        }
    }
}
