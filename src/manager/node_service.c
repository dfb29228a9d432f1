/* node_service.c - node.node_service.Node for nodes, and the node messages arriving by MQTT.
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
 * Node bindings. A token names an alias; a node's id is node_id_from_alias(alias) for this
 * project's nodes, but a node without an alias has a MAC-derived or random id, and nothing in
 * a request ties the id it names to the token. So a call acting for node id X is allowed when
 * X is the id of the token's alias (its "natural" id), or when X is bound to the token's
 * subject; RegisterNode of an X bound to nobody binds X to the subject, and the natural id's
 * owner registering takes X back from whoever bound it first. Bindings are kept in the store
 * (node_bindings) and in memory (bound, sorted by id, for a lookup without the store's lock on
 * every call). Anything else is refused with PERMISSION_DENIED naming the node id (never the
 * token). Checked: every RPC whose request names the node it acts for - RegisterNode, Ping,
 * SetNodeStatus, SetSystemSummary, SetOverviews, SendError, UpdateTask, StopSwarm, AddTaskLogs
 * (each message's task-log header) and AddTaskResult (its first message, before the value is
 * read). ScheduleTask names the nodes to run on, not the caller, and any task may schedule on
 * any node of its swarm: it is not checked (nor are the swarm-wide GetGlobal, SetGlobal and
 * GetTaskResult). With tokens off nothing is checked. MQTT messages on manager/+ carry node ids
 * too; what a client may publish there is the broker's ACLs' business (a later issue).
 *
 * The user services. Calls to "/core.user_services.*" (what the Manta SDK calls) are served on
 * the same server and threads (user_service.c), under the same per-caller cap (the caller is
 * then "user NAME", or the connection without a user token) and stall limit; with
 * `user_listen` they get their own server (never asking for a client certificate), and each
 * server refuses the other's services with UNIMPLEMENTED naming the right address. A user token
 * is refused here, a node token there (token.c: different audiences).
 */
#include "node_service.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/informations.pb-c.h"
#include "common/results.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "clock.h"
#include "fsutil.h"
#include "mem.h"
#include "runner.h"
#include "strbuf.h"
#include "utf8.h"
#include "tasklog.h"
#include "user_service.h"

#define SVC     "/node.node_service.Node/"
#define CHUNK   (4u << 20) /* bytes of data per streamed message */
#define LOG_MAX (64u << 20)
/* A value (global, result) larger than this is refused while it arrives: SQLite's default
 * length limit, which the store would refuse anyway once all of it were in memory. */
#define VALUE_MAX 1000000000u

#define NODE_SERVICE_CALLS 64 /* threads of the node service */
#define NODE_CALLS         8  /* calls in progress per caller */
#define SUBJECT_MAX        sizeof(((mgr_node *)0)->alias)
#define SHOWN_MAX          201 /* bytes of client text quoted in a status message, + NUL */

/* Calls in progress of one caller (entries exist while n > 0). */
typedef struct caller_calls {
    char *who;
    int n;
    bool warned; /* a refusal was logged since n last was 0 */
} caller_calls;

/* A node id and the token subject it acts for. */
typedef struct bound_id {
    node_id id;
    char *subject;
} bound_id;

struct node_service {
    pthread_mutex_t mu;      /* busy and bound; a leaf lock, held briefly */
    pthread_mutex_t bind_mu; /* one binding decision at a time (held across the store write) */
    caller_calls *busy;
    size_t nbusy, capbusy;
    bound_id *bound; /* sorted by id */
    size_t nbound, capbound;
};

/* Who makes a call. */
typedef struct caller {
    bool checked;               /* tokens on: node ids are checked against the subject */
    char subject[SUBJECT_MAX];  /* the token's subject ("" with tokens off) */
    char shown[SUBJECT_MAX];    /* the same, safe to log and to quote */
    bool has_natural;           /* the subject has a node id (a hex alias may be out of range) */
    node_id natural;            /* node_id_from_alias(subject) */
    char who[SUBJECT_MAX + 64]; /* the identity the call cap counts: subject or peer */
} caller;

static node_id pid(const Common__System__PairId *p)
{
    node_id id = {0, 0};
    if (p) {
        id.head = p->head;
        id.tail = p->tail;
    }
    return id;
}

static void xid_of(const Common__System__PairId *p, char out[NODE_XID_MAX + 1])
{
    node_id_to_xid(pid(p), out);
}

/* Answer a unary call with a packed message (or Ok when msg is NULL). */
static void reply(rpc_call *call, const ProtobufCMessage *msg)
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
static ProtobufCMessage *recv_one(rpc_call *call, const ProtobufCMessageDescriptor *d)
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

/* ---- calls in progress per caller ------------------------------------------------------------ */

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

/* ---- node bindings ------------------------------------------------------------------------ */

/* Index of id in ns->bound (mu held); when absent, false and *at = where it would go. */
static bool bound_find(const struct node_service *ns, node_id id, size_t *at)
{
    size_t lo = 0, hi = ns->nbound;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = node_id_cmp(&ns->bound[mid].id, &id);
        if (c == 0) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

/* Bind id to subject, replacing its binding if any (mu held). */
static void bound_put(struct node_service *ns, node_id id, const char *subject)
{
    size_t i;
    if (bound_find(ns, id, &i)) {
        free(ns->bound[i].subject);
        ns->bound[i].subject = xstrdup(subject);
        return;
    }
    if (ns->nbound == ns->capbound) {
        ns->capbound = ns->capbound ? 2 * ns->capbound : 64;
        ns->bound = xrealloc(ns->bound, ns->capbound * sizeof(*ns->bound));
    }
    memmove(&ns->bound[i + 1], &ns->bound[i], (ns->nbound - i) * sizeof(*ns->bound));
    ns->bound[i] = (bound_id){.id = id, .subject = xstrdup(subject)};
    ns->nbound++;
}

/* The subject id is bound to (owned), or NULL. */
static char *bound_owner(struct node_service *ns, node_id id)
{
    pthread_mutex_lock(&ns->mu);
    size_t i;
    char *owner = bound_find(ns, id, &i) ? xstrdup(ns->bound[i].subject) : NULL;
    pthread_mutex_unlock(&ns->mu);
    return owner;
}

/* May the caller act for node id? */
static bool may_act_for(manager *m, const caller *c, node_id id)
{
    if (!c->checked || (c->has_natural && node_id_equal(c->natural, id)))
        return true;
    cleanup_free char *owner = bound_owner(m->ns, id);
    return owner && !strcmp(owner, c->subject);
}

/* Refuse a call that names a node its token may not act for. */
static void deny(manager *m, rpc_call *call, const caller *c, const char *rpc, node_id id)
{
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    log_warn(m->log, "nodes",
             "%s from %s refused: the token for '%s' may not act for node %s (another node's "
             "id, or one it never registered)",
             rpc, rpc_call_peer(call), c->shown, x);
    cleanup_free char *msg = xasprintf(
        "The node token for '%s' may not act for node %s: a token acts only for the node it was "
        "issued for (the node id of its alias, or one it registered first). Call with that "
        "node's own token, or register this node first.",
        c->shown, x);
    rpc_call_finish(call, RPC_PERMISSION_DENIED, msg);
}

/* Check the node a request acts for; on refusal the call is finished and false returned. */
static bool act_for(manager *m, rpc_call *call, const caller *c, const char *rpc,
                    const Common__System__PairId *p)
{
    if (may_act_for(m, c, pid(p)))
        return true;
    deny(m, call, c, rpc, pid(p));
    return false;
}

/* RegisterNode of id: allowed when id is bound to the caller's subject, or bound to nobody
 * (it is then bound to the subject), or the subject's natural id (bound to the subject, taken
 * back from whoever bound it before). Returns false with the call finished otherwise. */
static bool claim(manager *m, rpc_call *call, const caller *c, node_id id)
{
    if (!c->checked)
        return true;
    struct node_service *ns = m->ns;
    bool natural = c->has_natural && node_id_equal(c->natural, id);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    pthread_mutex_lock(&ns->bind_mu);
    cleanup_free char *owner = bound_owner(ns, id);
    bool ok = true;
    if (owner && !strcmp(owner, c->subject)) {
        /* already the caller's */
    } else if (owner && !natural) {
        ok = false;
    } else {
        mt_error *err = NULL;
        if (store_binding_set(m->st, x, c->subject, clock_wall_ms(), &err) < 0) {
            /* kept in memory all the same: it holds until the manager restarts */
            log_error(m->log, "nodes", "%s", mt_error_msg(err));
            mt_error_free(&err);
        }
        pthread_mutex_lock(&ns->mu);
        bound_put(ns, id, c->subject);
        pthread_mutex_unlock(&ns->mu);
        if (owner) {
            char shown[SUBJECT_MAX];
            log_warn(m->log, "nodes",
                     "node %s was registered with the token for '%s'; it is the node id of alias "
                     "'%s', whose token takes it back",
                     x, utf8_clean_copy(shown, sizeof(shown), owner), c->shown);
        }
    }
    pthread_mutex_unlock(&ns->bind_mu);
    if (!ok) {
        log_warn(m->log, "nodes",
                 "RegisterNode from %s refused: node %s is registered with another token than "
                 "the one for '%s'",
                 rpc_call_peer(call), x, c->shown);
        cleanup_free char *msg = xasprintf(
            "Node %s is already registered with another node's token, and the token for '%s' "
            "may not take it over: a token acts only for the node it was issued for. Give this "
            "node its own alias and token (`manta_manager token create --node ALIAS`).",
            x, c->shown);
        rpc_call_finish(call, RPC_PERMISSION_DENIED, msg);
    }
    return ok;
}

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
            bound_put(ns, id, rows[i].subject);
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

/* ---- requests ------------------------------------------------------------------------------ */

static char **split_names(const char *joined);

/* A node this manager does not know speaks (it registered with an earlier run of the manager
 * and stayed connected through its restart): know it again from the store and its binding,
 * and ask it for its datasets and its metrics (collect_information), which it sends at once.
 * Lock held. */
static mgr_node *adopt(manager *m, node_id id, bool mqtt)
{
    mgr_node *n = xcalloc(1, sizeof(*n));
    n->id = id;
    node_id_to_xid(id, n->xid);
    cleanup_free char *owner = m->ns ? bound_owner(m->ns, id) : NULL;
    snprintf(n->alias, sizeof(n->alias), "%s", owner ? owner : "");
    store_node *rows = NULL;
    size_t nrows = 0;
    mt_error *err = NULL;
    bool stored = false;
    if (store_node_list(m->st, &rows, &nrows, &err) == 0) {
        for (size_t i = 0; i < nrows; i++)
            if (!strcmp(rows[i].id, n->xid)) {
                stored = true;
                utf8_copy(n->hostname, sizeof(n->hostname), rows[i].hostname);
                n->datasets = split_names(rows[i].datasets);
            }
        store_nodes_free(rows, nrows);
    }
    mt_error_free(&err);
    if (!n->datasets)
        n->datasets = xcalloc(1, sizeof(char *));
    n->connected = true;
    n->ready = mqtt; /* heard on MQTT: subscribed, commands reach it */
    n->last_seen_ms = clock_mono_ms();
    n->running = (unsigned)runner_node_running(m, id);
    m->nodes = xrealloc(m->nodes, (m->nnodes + 1) * sizeof(*m->nodes));
    m->nodes[m->nnodes++] = n;
    if (stored)
        store_node_set_status(m->st, n->xid, "CONNECTED", clock_wall_ms(), &err);
    else {
        store_node rec = {.id = n->xid,
                          .hostname = (char *)"",
                          .platform = (char *)"",
                          .datasets = (char *)"",
                          .status = (char *)"CONNECTED"};
        store_node_register(m->st, &rec, clock_wall_ms(), &err);
    }
    mt_error_free(&err);
    mgr_publish(m, n->xid, "collect_information", "set_overviews", strlen("set_overviews"));
    mgr_publish(m, n->xid, "collect_information", "set_system_summary",
                strlen("set_system_summary"));
    log_info(m->log, "nodes", "node %s (%s) is known again: it %s after the manager restarted",
             n->xid, *n->alias ? n->alias : "no alias", mqtt ? "was heard on MQTT" : "called");
    return n;
}

static void touch_from(manager *m, node_id id, bool mqtt)
{
    mgr_node *n = mgr_node_find(m, id);
    if (!n && (id.head || id.tail))
        n = adopt(m, id, mqtt);
    if (n) {
        n->last_seen_ms = clock_mono_ms();
        n->will_ms = 0;
        if (mqtt && !n->ready) {
            n->ready = true; /* subscribed by now: commands reach it */
            mgr_wake(m);
        }
        if (!n->connected) {
            n->connected = true;
            log_info(m->log, "nodes", "node %s is back", n->xid);
            mt_error *err = NULL;
            store_node_set_status(m->st, n->xid, "CONNECTED", clock_wall_ms(), &err);
            mt_error_free(&err);
        }
    }
}

static void touch(manager *m, node_id id)
{
    touch_from(m, id, false);
}

/* Keep msg packed in *dst (replacing what it held; NULL msg keeps nothing). */
static void keep_packed(ProtobufCBinaryData *dst, const ProtobufCMessage *msg)
{
    free(dst->data);
    dst->data = NULL;
    dst->len = 0;
    if (!msg)
        return;
    size_t len = protobuf_c_message_get_packed_size(msg);
    dst->data = xmalloc(len ? len : 1);
    dst->len = protobuf_c_message_pack(msg, dst->data);
}

/* The latest MetricsSnapshot of a node, for the user services (lock held). */
static void keep_metrics(manager *m, const Common__Informations__SetSystemSummaryRequest *s)
{
    mgr_node *n = mgr_node_find(m, pid(s->node_id));
    if (n && s->metrics_snapshot)
        keep_packed(&n->metrics, &s->metrics_snapshot->base);
}

/* The overview names, cleaned (they are listed as JSON and logged). */
static char **dataset_names(const Common__Informations__Overviews *ov)
{
    size_t n = ov ? ov->n_content : 0;
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        v[i] = utf8_clean_dup(ov->content[i]->name);
    return v;
}

/* The store's comma-joined dataset names back as a vector (owned). */
static char **split_names(const char *joined)
{
    size_t cnt = *joined ? 1 : 0;
    for (const char *p = joined; *p; p++)
        cnt += *p == ',';
    char **v = xcalloc(cnt + 1, sizeof(char *));
    size_t k = 0;
    for (const char *p = joined; *p && k < cnt;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        v[k++] = xstrndup(p, l);
        p += l + (e != NULL);
    }
    return v;
}

static char *join_names(char **v)
{
    strbuf sb = {0};
    for (size_t i = 0; v && v[i]; i++)
        sb_printf(&sb, "%s%s", i ? "," : "", v[i]);
    return sb.buf ? sb_steal(&sb) : xstrdup("");
}

static void set_datasets(manager *m, node_id id, const Common__Informations__Overviews *ov)
{
    char **names = dataset_names(ov);
    cleanup_free char *joined = join_names(names);
    pthread_mutex_lock(&m->lock);
    mgr_node *n = mgr_node_find(m, id);
    if (n) {
        mem_free_strv(&n->datasets);
        n->datasets = names;
        names = NULL;
        keep_packed(&n->overviews, ov ? &ov->base : NULL);
    }
    pthread_mutex_unlock(&m->lock);
    mem_free_strv(&names);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    mt_error *err = NULL;
    store_node_set_datasets(m->st, x, joined, &err);
    mt_error_free(&err);
}

static void do_register(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__NodeOverview *ov = (Common__Informations__NodeOverview *)recv_one(
        call, &common__informations__node_overview__descriptor);
    if (!ov)
        return;
    node_id id = pid(ov->node_id);
    if (!claim(m, call, c, id)) {
        protobuf_c_message_free_unpacked(&ov->base, NULL);
        return;
    }
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    const Common__Informations__PlatformInfo *pi = ov->platform_info;
    /* text the node chose, shown by `manta_manager nodes` (JSON) and logged: cleaned, and cut
     * at a character boundary (a cut inside one made the node vanish from the listing) */
    char hostname[sizeof(((mgr_node *)0)->hostname)];
    utf8_clean_copy(hostname, sizeof(hostname), pi ? pi->hostname : "");
    const char *alias = c->shown;
    char **names = dataset_names(ov->dataset_overviews);
    cleanup_free char *joined = join_names(names);

    pthread_mutex_lock(&m->lock);
    mgr_node *n = mgr_node_find(m, id);
    if (!n) {
        n = xcalloc(1, sizeof(*n));
        n->id = id;
        memcpy(n->xid, x, sizeof(x));
        m->nodes = xrealloc(m->nodes, (m->nnodes + 1) * sizeof(*m->nodes));
        m->nodes[m->nnodes++] = n;
    }
    memcpy(n->hostname, hostname, sizeof(hostname));
    snprintf(n->alias, sizeof(n->alias), "%s", alias); /* fits: both SUBJECT_MAX */
    mem_free_strv(&n->datasets);
    n->datasets = names;
    keep_packed(&n->platform, pi ? &pi->base : NULL);
    keep_packed(&n->overviews, ov->dataset_overviews ? &ov->dataset_overviews->base : NULL);
    n->connected = true;
    n->ready = false; /* until it is heard on MQTT */
    n->last_seen_ms = clock_mono_ms();
    pthread_mutex_unlock(&m->lock);
    mgr_wake(m);

    cleanup_free char *raw_platform =
        pi ? xasprintf("%s %s %s", pi->system, pi->release, pi->machine) : xstrdup("");
    cleanup_free char *platform = utf8_clean_dup(raw_platform);
    store_node rec = {.id = x,
                      .hostname = hostname,
                      .platform = platform,
                      .datasets = joined,
                      .status = (char *)"CONNECTED"};
    mt_error *err = NULL;
    if (store_node_register(m->st, &rec, clock_wall_ms(), &err) < 0) {
        log_msg(m->log, LOG_ERROR, "nodes", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    log_info(m->log, "nodes", "node %s registered (%s%s%s, datasets: %s)", x, alias,
             *alias ? ", " : "", rec.hostname, *joined ? joined : "none");
    protobuf_c_message_free_unpacked(&ov->base, NULL);

    Common__Informations__Registration reg = COMMON__INFORMATIONS__REGISTRATION__INIT;
    reg.mqtt_broker_host = m->cfg.advertise_host && *m->cfg.advertise_host ? m->cfg.advertise_host
                                                                           : m->cfg.broker_host;
    reg.mqtt_broker_port =
        (uint32_t)(m->cfg.advertise_port ? m->cfg.advertise_port : m->cfg.broker_port);
    cleanup_free char *topic = xasprintf(MGR_TOPIC_PREFIX "%s/+", x);
    char *topics[1] = {topic};
    reg.n_mqtt_topics = 1;
    reg.mqtt_topics = topics;
    reply(call, &reg.base);
}

static void do_error(manager *m, rpc_call *call, const caller *c)
{
    Common__System__Error *e =
        (Common__System__Error *)recv_one(call, &common__system__error__descriptor);
    if (!e)
        return;
    if (!act_for(m, call, c, "SendError", e->node_id)) {
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return;
    }
    if (e->error_id > INT_MAX) { /* the store keeps an int */
        cleanup_free char *msg = xasprintf(
            "The error id %u is out of range: error ids go up to %d.", e->error_id, INT_MAX);
        protobuf_c_message_free_unpacked(&e->base, NULL);
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, msg);
        return;
    }
    cleanup_free char *content = utf8_clean_dup(e->content); /* listed as JSON, logged */
    char nx[NODE_XID_MAX + 1] = "", sx[NODE_XID_MAX + 1] = "", tx[NODE_XID_MAX + 1] = "";
    if (e->node_id)
        xid_of(e->node_id, nx);
    if (e->swarm_id)
        xid_of(e->swarm_id, sx);
    if (e->task_id)
        xid_of(e->task_id, tx);
    store_errrow row = {.node = nx,
                        .swarm = sx,
                        .task = tx,
                        .iteration = e->iteration,
                        .circular = e->circular,
                        .error_id = (int)e->error_id,
                        .content = content,
                        .ts_ms = clock_wall_ms()};
    mt_error *err = NULL;
    if (store_error_add(m->st, &row, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "nodes", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    log_msg(m->log, LOG_WARNING, "nodes", "node %s reports error %u%s%s: %s", nx, e->error_id,
            *tx ? " on task " : "", tx, content);
    if (e->swarm_id && e->task_id) {
        pthread_mutex_lock(&m->lock);
        runner_task_error(m, pid(e->swarm_id), pid(e->node_id), pid(e->task_id), e->iteration,
                          content);
        pthread_mutex_unlock(&m->lock);
    }
    protobuf_c_message_free_unpacked(&e->base, NULL);
    reply(call, NULL);
}

static void task_update(manager *m, const Common__Tasks__TaskUpdate *u, bool mqtt)
{
    pthread_mutex_lock(&m->lock);
    touch_from(m, pid(u->node_id), mqtt);
    switch (u->task_status) {
    case COMMON__TASKS__TASK_STATUS__RUNNING:
        runner_task_running(m, pid(u->swarm_id), pid(u->node_id), pid(u->task_id), u->iteration);
        break;
    case COMMON__TASKS__TASK_STATUS__COMPLETED:
    case COMMON__TASKS__TASK_STATUS__FAILED: {
        mgr_node *n = mgr_node_find(m, pid(u->node_id));
        if (n)
            n->reports_outcome = true;
        runner_task_finished(m, pid(u->swarm_id), pid(u->node_id), pid(u->task_id), u->iteration,
                             u->task_status == COMMON__TASKS__TASK_STATUS__FAILED,
                             "the task exited with an error");
        break;
    }
    case COMMON__TASKS__TASK_STATUS__STOPPED:
        runner_task_finished(m, pid(u->swarm_id), pid(u->node_id), pid(u->task_id), u->iteration,
                             true, "the task was stopped on the node");
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&m->lock);
}

/* A Logs timestamp in ms, or now when it is absent or outside what google.protobuf.Timestamp
 * allows (years 1-9999): seconds * 1000 of any int64 would overflow. */
static int64_t stamp_ms(const Google__Protobuf__Timestamp *t)
{
    if (!t || t->seconds < INT64_C(-62135596800) || t->seconds > INT64_C(253402300799) ||
        t->nanos < 0 || t->nanos > 999999999)
        return clock_wall_ms();
    return t->seconds * 1000 + t->nanos / 1000000;
}

static void do_add_logs(manager *m, rpc_call *call, const caller *c)
{
    size_t n = 0;
    for (;;) {
        rpc_bytes b = {0};
        int r = rpc_call_recv(call, &b);
        if (r < 0)
            return;
        if (r == 0)
            break;
        Common__System__Logs *lg = common__system__logs__unpack(NULL, b.len, b.data);
        rpc_bytes_free(&b);
        if (!lg) {
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "A Logs message is not valid protobuf.");
            return;
        }
        tasklog_header h;
        uint8_t *text = NULL;
        size_t tlen = 0;
        mt_error *err = NULL;
        int rc = tasklog_decode(lg->content.data, lg->content.len, &h, &text, &tlen, LOG_MAX, &err);
        int64_t ts = stamp_ms(lg->timestamp);
        protobuf_c_message_free_unpacked(&lg->base, NULL);
        if (rc < 0) {
            cleanup_free char *msg =
                xasprintf("The task log blob is malformed: %s", mt_error_msg(err));
            mt_error_free(&err);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, msg);
            return;
        }
        if (!may_act_for(m, c, h.node)) {
            free(text);
            deny(m, call, c, "AddTaskLogs", h.node);
            return;
        }
        char sx[NODE_XID_MAX + 1], nx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
        node_id_to_xid(h.swarm, sx);
        node_id_to_xid(h.node, nx);
        node_id_to_xid(h.task, tx);
        if (store_log_add(m->st, sx, nx, tx, h.iteration, h.circular, ts, (const char *)text, tlen,
                          &err) < 0) {
            log_msg(m->log, LOG_ERROR, "nodes", "%s", mt_error_msg(err));
            mt_error_free(&err);
        }
        free(text);
        n++;
        user_service_notify(m);
        pthread_mutex_lock(&m->lock);
        touch(m, h.node);
        runner_task_logs(m, h.swarm, h.node, h.task, h.iteration);
        pthread_mutex_unlock(&m->lock);
    }
    if (n == 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "AddTaskLogs carried no message.");
        return;
    }
    reply(call, NULL);
}

static bool swarm_known(manager *m, const char *sx)
{
    store_swarm s = {0};
    mt_error *err = NULL;
    int r = store_swarm_get(m->st, sx, &s, &err);
    mt_error_free(&err);
    store_swarm_clear(&s);
    return r == 1;
}

static void send_chunks(rpc_call *call, const Common__System__PairId *node, const uint8_t *data,
                        size_t len, bool result)
{
    size_t off = 0;
    do {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        size_t plen;
        cleanup_free uint8_t *buf = NULL;
        if (result) {
            Common__Results__ChunkResultValues v = COMMON__RESULTS__CHUNK_RESULT_VALUES__INIT;
            v.node_id = (Common__System__PairId *)node;
            v.data.data = (uint8_t *)data + off;
            v.data.len = n;
            plen = common__results__chunk_result_values__get_packed_size(&v);
            buf = xmalloc(plen ? plen : 1);
            common__results__chunk_result_values__pack(&v, buf);
        } else {
            Common__Results__GlobalValue v = COMMON__RESULTS__GLOBAL_VALUE__INIT;
            v.data.data = (uint8_t *)data + off;
            v.data.len = n;
            plen = common__results__global_value__get_packed_size(&v);
            buf = xmalloc(plen ? plen : 1);
            common__results__global_value__pack(&v, buf);
        }
        if (rpc_call_send(call, buf, plen) < 0)
            return;
        off += n;
    } while (off < len);
}

static void do_get_global(manager *m, rpc_call *call, const caller *c)
{
    Common__Results__GlobalTag *q =
        (Common__Results__GlobalTag *)recv_one(call, &common__results__global_tag__descriptor);
    if (!q)
        return;
    char sx[NODE_XID_MAX + 1];
    xid_of(q->swarm_id, sx);
    cleanup_free char *tag = xstrdup(q->tag);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    cleanup_free uint8_t *data = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    int r = store_global_get(m->st, sx, tag, &data, &len, &err);
    if (r < 0) {
        rpc_call_finish(call, RPC_INTERNAL, mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    if (r == 0) {
        char shown[SHOWN_MAX]; /* the tag as the client sent it: cleaned, cut */
        utf8_clean_copy(shown, sizeof(shown), tag);
        cleanup_free char *msg = swarm_known(m, sx)
                                     ? xasprintf("The swarm has no global '%s'.", shown)
                                     : xasprintf("Swarm %s is not known to this manager.", sx);
        rpc_call_finish(call, RPC_NOT_FOUND, msg);
        return;
    }
    send_chunks(call, NULL, data, len, false);
    rpc_call_finish(call, RPC_OK, NULL);
}

/* Checks the first message of an upload before the rest is read; false = the call was
 * finished. */
typedef bool (*first_check)(manager *m, rpc_call *call, const caller *c,
                            const ProtobufCMessage *first);

/* Receive a client stream of T messages, concatenating data (at most VALUE_MAX bytes). Returns
 * the first message, or NULL with the call finished. */
static ProtobufCMessage *recv_concat(manager *m, rpc_call *call, const caller *c,
                                     const ProtobufCMessageDescriptor *d, size_t data_off,
                                     first_check check, strbuf *all)
{
    ProtobufCMessage *first = NULL;
    for (;;) {
        rpc_bytes b = {0};
        int r = rpc_call_recv(call, &b);
        if (r < 0) {
            if (first)
                protobuf_c_message_free_unpacked(first, NULL);
            return NULL;
        }
        if (r == 0)
            break;
        ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, b.len, b.data);
        rpc_bytes_free(&b);
        if (!msg) {
            if (first)
                protobuf_c_message_free_unpacked(first, NULL);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "A message is not valid protobuf.");
            return NULL;
        }
        if (!first && check && !check(m, call, c, msg)) {
            protobuf_c_message_free_unpacked(msg, NULL);
            return NULL;
        }
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((char *)msg + data_off);
        if (bd->len > VALUE_MAX - all->len) {
            protobuf_c_message_free_unpacked(msg, NULL);
            if (first)
                protobuf_c_message_free_unpacked(first, NULL);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                            "The value is larger than 1000000000 bytes, the most the manager's "
                            "store keeps; nothing was stored. Send a smaller value.");
            return NULL;
        }
        if (bd->len)
            sb_append(all, bd->data, bd->len);
        if (!first)
            first = msg;
        else
            protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (!first)
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "The stream carried no message: nothing was stored (a retried upload "
                        "arrives empty).");
    return first;
}

static bool result_check(manager *m, rpc_call *call, const caller *c, const ProtobufCMessage *first)
{
    return act_for(m, call, c, "AddTaskResult", ((const Common__Results__Result *)first)->node_id);
}

/* The id a task's runtime gives one AddTaskResult, passed on by its node (light_world.c), so
 * that the call repeated after the manager was lost in its middle is stored once. */
#define REQUEST_ID_KEY "manta-request-id"
enum { REQUEST_ID_MAX = 64 };

static bool request_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("-_.", id[i]))
            return false;
    return true;
}

/* SetGlobal and AddTaskResult: a client stream whose data is concatenated and stored whole. */
static void do_upload(manager *m, rpc_call *call, const caller *c, bool result)
{
    strbuf all = {0};
    ProtobufCMessage *msg =
        result ? recv_concat(m, call, c, &common__results__result__descriptor,
                             offsetof(Common__Results__Result, data), result_check, &all)
               : recv_concat(m, call, c, &common__results__global_update__descriptor,
                             offsetof(Common__Results__GlobalUpdate, data), NULL, &all);
    if (!msg) {
        sb_free(&all);
        return;
    }
    const Common__Results__Result *r = (const Common__Results__Result *)msg;
    const Common__Results__GlobalUpdate *g = (const Common__Results__GlobalUpdate *)msg;
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1], nx[NODE_XID_MAX + 1];
    xid_of(result ? r->swarm_id : g->swarm_id, sx);
    mt_error *err = NULL;
    int rc = RPC_OK;
    const char *request = result ? rpc_call_metadata(call, REQUEST_ID_KEY) : NULL;
    if (request && !request_id_valid(request)) {
        rc = RPC_INVALID_ARGUMENT;
        mt_error_set(&err, MT_ERR_INVALID,
                     "The request id (metadata " REQUEST_ID_KEY ") must be 1 to %d "
                     "letters, digits, '-', '_' or '.'; nothing was stored.",
                     REQUEST_ID_MAX);
    } else if (!swarm_known(m, sx)) {
        rc = RPC_FAILED_PRECONDITION;
    } else if (result) {
        xid_of(r->task_id, tx);
        xid_of(r->node_id, nx);
        /* A repeat (1) of a call whose answer was lost is answered Ok: it is stored once. */
        if (store_result_add(m->st, sx, tx, nx, r->iteration, r->tag, request, all.buf, all.len,
                             clock_wall_ms(), &err) < 0)
            rc = RPC_INTERNAL;
    } else if (store_global_set(m->st, sx, g->tag, all.buf, all.len, &err) < 0) {
        rc = RPC_INTERNAL;
    }
    cleanup_free char *text = rc == RPC_FAILED_PRECONDITION
                                  ? xasprintf("Swarm %s is not known to this manager.", sx)
                                  : xstrdup(mt_error_msg(err));
    mt_error_free(&err);
    protobuf_c_message_free_unpacked(msg, NULL);
    sb_free(&all);
    if (rc != RPC_OK) {
        rpc_call_finish(call, rc, text);
    } else {
        user_service_notify(m);
        reply(call, NULL);
    }
}

static void do_get_result(manager *m, rpc_call *call, const caller *c)
{
    Common__Results__ResultQuery *q =
        (Common__Results__ResultQuery *)recv_one(call, &common__results__result_query__descriptor);
    if (!q)
        return;
    char sx[NODE_XID_MAX + 1];
    xid_of(q->swarm_id, sx);
    store_result *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    int rc = store_result_query(m->st, sx, q->tag, q->iteration, (int64_t)q->size, q->method, &rows,
                                &n, &err);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (rc < 0) {
        rpc_call_finish(call, RPC_INTERNAL, mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        node_id nid = {0, 0};
        node_id_parse_xid(rows[i].node, &nid);
        Common__System__PairId p = COMMON__SYSTEM__PAIR_ID__INIT;
        p.head = nid.head;
        p.tail = nid.tail;
        send_chunks(call, &p, rows[i].data, rows[i].len, true);
    }
    store_results_free(rows, n);
    rpc_call_finish(call, RPC_OK, NULL);
}

/* Who calls: the token's subject (tokens on), or the connection (tokens off). Returns false
 * with the call finished when the token is refused. */
static bool identify(manager *m, rpc_call *call, const char *name, caller *c)
{
    memset(c, 0, sizeof(*c));
    if (!m->cfg.require_token) {
        snprintf(c->who, sizeof(c->who), "peer %s", rpc_call_peer(call));
        return true;
    }
    mt_error *err = NULL;
    if (token_verify(m->secret, rpc_call_metadata(call, "authorization"), clock_wall_ms() / 1000,
                     c->subject, sizeof(c->subject), &err) < 0) {
        cleanup_free char *msg = xasprintf("The node token was refused: %s", mt_error_msg(err));
        log_msg(m->log, LOG_WARNING, "nodes", "%s call from %s refused: %s", name,
                rpc_call_peer(call), mt_error_msg(err));
        mt_error_free(&err);
        rpc_call_finish(call, RPC_UNAUTHENTICATED, msg);
        return false;
    }
    c->checked = true;
    utf8_clean_copy(c->shown, sizeof(c->shown), c->subject);
    c->has_natural = node_id_from_alias(c->subject, &c->natural, NULL) == 0;
    snprintf(c->who, sizeof(c->who), "token %s", c->subject);
    return true;
}

/* A text from the runner (it quotes what the task sent: an alias may hold control characters
 * or ill-formed UTF-8) made safe for a status message. */
static void finish_with(rpc_call *call, int rc, const char *text)
{
    char msg[512];
    rpc_call_finish(call, rc, utf8_clean_copy(msg, sizeof(msg), text));
}

/* A refusal carried by *err (its status the rpc code, INTERNAL if it has none); frees it. */
static void finish_with_error(rpc_call *call, mt_error **err)
{
    finish_with(call, mt_error_status(*err, RPC_INTERNAL), mt_error_msg(*err));
    mt_error_free(err);
}

/* ---- the methods: one function per RPC, chosen by name in serve ---- */

static void do_is_available(manager *m, rpc_call *call, const caller *c)
{
    rpc_bytes b = {0};
    if (rpc_call_recv(call, &b) < 0)
        return;
    rpc_bytes_free(&b);
    reply(call, NULL);
}

static void do_ping(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__Ping *p =
        (Common__Informations__Ping *)recv_one(call, &common__informations__ping__descriptor);
    if (!p)
        return;
    if (act_for(m, call, c, "Ping", p->node_id)) {
        pthread_mutex_lock(&m->lock);
        touch(m, pid(p->node_id));
        pthread_mutex_unlock(&m->lock);
        reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void do_set_node_status(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__NodeStatus *s = (Common__Informations__NodeStatus *)recv_one(
        call, &common__informations__node_status__descriptor);
    if (!s)
        return;
    if (act_for(m, call, c, "SetNodeStatus", s->node_id)) {
        pthread_mutex_lock(&m->lock);
        mgr_node *n = mgr_node_find(m, pid(s->node_id));
        if (s->status == COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED) {
            if (n)
                mgr_node_lost(m, n, "it said it is disconnecting");
        } else {
            touch(m, pid(s->node_id));
        }
        pthread_mutex_unlock(&m->lock);
        reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void do_set_system_summary(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__SetSystemSummaryRequest *s =
        (Common__Informations__SetSystemSummaryRequest *)recv_one(
            call, &common__informations__set_system_summary_request__descriptor);
    if (!s)
        return;
    if (act_for(m, call, c, "SetSystemSummary", s->node_id)) {
        pthread_mutex_lock(&m->lock);
        touch(m, pid(s->node_id));
        keep_metrics(m, s);
        pthread_mutex_unlock(&m->lock);
        reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void do_set_overviews(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__DatasetOverviews *o = (Common__Informations__DatasetOverviews *)recv_one(
        call, &common__informations__dataset_overviews__descriptor);
    if (!o)
        return;
    if (act_for(m, call, c, "SetOverviews", o->node_id)) {
        set_datasets(m, pid(o->node_id), o->content);
        reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&o->base, NULL);
}

/* StopSwarm and UpdateTask: both carry a TaskUpdate. */
static void do_task_update(manager *m, rpc_call *call, const caller *c, bool stop)
{
    Common__Tasks__TaskUpdate *u =
        (Common__Tasks__TaskUpdate *)recv_one(call, &common__tasks__task_update__descriptor);
    if (!u)
        return;
    if (!act_for(m, call, c, stop ? "StopSwarm" : "UpdateTask", u->node_id)) {
        protobuf_c_message_free_unpacked(&u->base, NULL);
        return;
    }
    mt_error *err = NULL;
    int rc = 0;
    if (stop) {
        pthread_mutex_lock(&m->lock);
        rc = runner_stop(m, pid(u->swarm_id), pid(u->node_id), pid(u->task_id), u->iteration, &err);
        pthread_mutex_unlock(&m->lock);
    } else {
        task_update(m, u, false);
    }
    protobuf_c_message_free_unpacked(&u->base, NULL);
    if (rc < 0)
        finish_with_error(call, &err);
    else
        reply(call, NULL);
}

static void do_stop_swarm(manager *m, rpc_call *call, const caller *c)
{
    do_task_update(m, call, c, true);
}

static void do_update_task(manager *m, rpc_call *call, const caller *c)
{
    do_task_update(m, call, c, false);
}

static void do_schedule_task(manager *m, rpc_call *call, const caller *c)
{
    /* node_ids are where to run, not who calls: not checked (see the top of the file) */
    Common__Tasks__TaskScheduling *s = (Common__Tasks__TaskScheduling *)recv_one(
        call, &common__tasks__task_scheduling__descriptor);
    if (!s)
        return;
    cleanup_free node_id *ids = xcalloc(s->n_node_ids + 1, sizeof(node_id));
    for (size_t i = 0; i < s->n_node_ids; i++)
        ids[i] = pid(s->node_ids[i]);
    mt_error *err = NULL;
    pthread_mutex_lock(&m->lock);
    int rc = runner_schedule(m, pid(s->swarm_id), pid(s->task_id), s->task_to_schedule_alias, ids,
                             s->n_node_ids, &err);
    pthread_mutex_unlock(&m->lock);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    if (rc < 0)
        finish_with_error(call, &err);
    else
        reply(call, NULL);
}

static void do_add_result(manager *m, rpc_call *call, const caller *c)
{
    do_upload(m, call, c, true);
}

static void do_set_global(manager *m, rpc_call *call, const caller *c)
{
    do_upload(m, call, c, false);
}

/* The methods of node.node_service.Node, by the name after SVC. */
static const struct {
    const char *name;
    void (*serve)(manager *m, rpc_call *call, const caller *c);
} node_methods[] = {
    {"IsAvailable", do_is_available},
    {"RegisterNode", do_register},
    {"Ping", do_ping},
    {"SetNodeStatus", do_set_node_status},
    {"SetSystemSummary", do_set_system_summary},
    {"SetOverviews", do_set_overviews},
    {"SendError", do_error},
    {"StopSwarm", do_stop_swarm},
    {"UpdateTask", do_update_task},
    {"ScheduleTask", do_schedule_task},
    {"AddTaskLogs", do_add_logs},
    {"GetTaskResult", do_get_result},
    {"AddTaskResult", do_add_result},
    {"GetGlobal", do_get_global},
    {"SetGlobal", do_set_global},
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
        if (!identify(m, call, method + strlen(SVC), &c))
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

static void mqtt_task_update(manager *m, const void *payload, size_t len)
{
    Common__Tasks__TaskUpdate *u = common__tasks__task_update__unpack(NULL, len, payload);
    if (u) {
        task_update(m, u, true);
        protobuf_c_message_free_unpacked(&u->base, NULL);
    }
}

static void mqtt_system_summary(manager *m, const void *payload, size_t len)
{
    Common__Informations__SetSystemSummaryRequest *s =
        common__informations__set_system_summary_request__unpack(NULL, len, payload);
    if (s) {
        pthread_mutex_lock(&m->lock);
        touch_from(m, pid(s->node_id), true);
        keep_metrics(m, s);
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
}

static void mqtt_node_status(manager *m, const void *payload, size_t len)
{
    Common__Informations__NodeStatus *s =
        common__informations__node_status__unpack(NULL, len, payload);
    if (s) {
        pthread_mutex_lock(&m->lock);
        mgr_node *n = mgr_node_find(m, pid(s->node_id));
        if (s->status == COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED) {
            /* Its last will (or a stop it announced) is not the end of it: a broker that
             * shuts down publishes every client's will, and a node killed and restarted
             * adopts its running tasks. It is lost if not heard from again soon (sweep). */
            if (n && n->connected && !n->will_ms) {
                n->will_ms = clock_mono_ms();
                log_info(m->log, "nodes",
                         "node %s (%s) disconnected (or its last will arrived); lost unless "
                         "heard from within %lld s",
                         n->xid, n->alias, (long long)mgr_will_grace_s(m));
            }
        } else {
            touch(m, pid(s->node_id));
        }
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
}

/* What nodes publish on MQTT (node_service.h), by the topic's last segment; anything else is
 * ignored. */
static const struct {
    const char *what;
    void (*take)(manager *m, const void *payload, size_t len);
} mqtt_messages[] = {
    {"update_task_status", mqtt_task_update},
    {"set_system_summary", mqtt_system_summary},
    {"set_node_status", mqtt_node_status},
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
