/* node_service.c - node.node_service.Node for nodes, and the node messages arriving by MQTT. */
#include "node_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/informations.pb-c.h"
#include "common/results.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "fsutil.h"
#include "mem.h"
#include "runner.h"
#include "strbuf.h"
#include "tasklog.h"

#define SVC     "/node.node_service.Node/"
#define CHUNK   (4u << 20) /* bytes of data per streamed message */
#define LOG_MAX (64u << 20)

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

static void touch_from(manager *m, node_id id, bool mqtt)
{
    mgr_node *n = mgr_node_find(m, id);
    if (n) {
        n->last_seen_ms = mgr_mono_ms();
        if (mqtt && !n->ready) {
            n->ready = true; /* subscribed by now: commands reach it */
            mgr_wake(m);
        }
        if (!n->connected) {
            n->connected = true;
            log_info(m->log, "nodes", "node %s is back", n->xid);
            mt_error *err = NULL;
            store_node_set_status(m->st, n->xid, "CONNECTED", mgr_now_ms(), &err);
            mt_error_free(&err);
        }
    }
}

static void touch(manager *m, node_id id)
{
    touch_from(m, id, false);
}

static char **dataset_names(const Common__Informations__Overviews *ov)
{
    size_t n = ov ? ov->n_content : 0;
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        v[i] = xstrdup(ov->content[i]->name);
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
    }
    pthread_mutex_unlock(&m->lock);
    mem_free_strv(&names);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    mt_error *err = NULL;
    store_node_set_datasets(m->st, x, joined, &err);
    mt_error_free(&err);
}

static void do_register(manager *m, rpc_call *call, const char *alias)
{
    Common__Informations__NodeOverview *ov = (Common__Informations__NodeOverview *)recv_one(
        call, &common__informations__node_overview__descriptor);
    if (!ov)
        return;
    node_id id = pid(ov->node_id);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    const Common__Informations__PlatformInfo *pi = ov->platform_info;
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
    snprintf(n->hostname, sizeof(n->hostname), "%s", pi && pi->hostname ? pi->hostname : "");
    snprintf(n->alias, sizeof(n->alias), "%s", alias);
    mem_free_strv(&n->datasets);
    n->datasets = names;
    n->connected = true;
    n->ready = false; /* until it is heard on MQTT */
    n->last_seen_ms = mgr_mono_ms();
    pthread_mutex_unlock(&m->lock);
    mgr_wake(m);

    cleanup_free char *platform =
        pi ? xasprintf("%s %s %s", pi->system, pi->release, pi->machine) : xstrdup("");
    store_node rec = {.id = x,
                      .hostname = (char *)(pi && pi->hostname ? pi->hostname : ""),
                      .platform = platform,
                      .datasets = joined,
                      .status = (char *)"CONNECTED"};
    mt_error *err = NULL;
    if (store_node_register(m->st, &rec, mgr_now_ms(), &err) < 0) {
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

static void do_error(manager *m, rpc_call *call)
{
    Common__System__Error *e =
        (Common__System__Error *)recv_one(call, &common__system__error__descriptor);
    if (!e)
        return;
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
                        .content = e->content,
                        .ts_ms = mgr_now_ms()};
    mt_error *err = NULL;
    if (store_error_add(m->st, &row, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "nodes", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    log_msg(m->log, LOG_WARNING, "nodes", "node %s reports error %u%s%s: %s", nx, e->error_id,
            *tx ? " on task " : "", tx, e->content);
    if (e->swarm_id && e->task_id) {
        pthread_mutex_lock(&m->lock);
        runner_task_error(m, pid(e->swarm_id), pid(e->node_id), pid(e->task_id), e->iteration,
                          e->content);
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

static void do_add_logs(manager *m, rpc_call *call)
{
    int n = 0;
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
        int64_t ts = lg->timestamp ? lg->timestamp->seconds * 1000 + lg->timestamp->nanos / 1000000
                                   : mgr_now_ms();
        protobuf_c_message_free_unpacked(&lg->base, NULL);
        if (rc < 0) {
            cleanup_free char *msg =
                xasprintf("The task log blob is malformed: %s", mt_error_msg(err));
            mt_error_free(&err);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, msg);
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

static void do_get_global(manager *m, rpc_call *call)
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
        cleanup_free char *msg = swarm_known(m, sx)
                                     ? xasprintf("The swarm has no global '%s'.", tag)
                                     : xasprintf("Swarm %s is not known to this manager.", sx);
        rpc_call_finish(call, RPC_NOT_FOUND, msg);
        return;
    }
    send_chunks(call, NULL, data, len, false);
    rpc_call_finish(call, RPC_OK, NULL);
}

/* Receive a client stream of T messages, concatenating data. Returns the first message (its
 * data replaced by the concatenation), or NULL with the call finished. */
static ProtobufCMessage *recv_concat(rpc_call *call, const ProtobufCMessageDescriptor *d,
                                     size_t data_off, strbuf *all)
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
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((char *)msg + data_off);
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

/* SetGlobal and AddTaskResult: a client stream whose data is concatenated and stored whole. */
static void do_upload(manager *m, rpc_call *call, bool result)
{
    strbuf all = {0};
    ProtobufCMessage *msg = result
                                ? recv_concat(call, &common__results__result__descriptor,
                                              offsetof(Common__Results__Result, data), &all)
                                : recv_concat(call, &common__results__global_update__descriptor,
                                              offsetof(Common__Results__GlobalUpdate, data), &all);
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
    if (!swarm_known(m, sx)) {
        rc = RPC_FAILED_PRECONDITION;
    } else if (result) {
        xid_of(r->task_id, tx);
        xid_of(r->node_id, nx);
        if (store_result_add(m->st, sx, tx, nx, r->iteration, r->tag, all.buf, all.len,
                             mgr_now_ms(), &err) < 0)
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
    if (rc != RPC_OK)
        rpc_call_finish(call, rc, text);
    else
        reply(call, NULL);
}

static void do_get_result(manager *m, rpc_call *call)
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

static void handle(void *ctx, rpc_call *call)
{
    manager *m = ctx;
    const char *method = rpc_call_method(call);
    if (strncmp(method, SVC, strlen(SVC)) != 0) {
        rpc_call_finish(call, RPC_UNIMPLEMENTED,
                        "This manager serves node.node_service.Node only.");
        return;
    }
    const char *name = method + strlen(SVC);
    char alias[128] = "";
    if (m->cfg.require_token) {
        mt_error *err = NULL;
        if (token_verify(m->secret, rpc_call_metadata(call, "authorization"), mgr_now_ms() / 1000,
                         alias, sizeof(alias), &err) < 0) {
            cleanup_free char *msg = xasprintf("The node token was refused: %s", mt_error_msg(err));
            log_msg(m->log, LOG_WARNING, "nodes", "%s call from %s refused: %s", name,
                    rpc_call_peer(call), mt_error_msg(err));
            mt_error_free(&err);
            rpc_call_finish(call, RPC_UNAUTHENTICATED, msg);
            return;
        }
    }
    if (!strcmp(name, "IsAvailable")) {
        rpc_bytes b = {0};
        if (rpc_call_recv(call, &b) > 0)
            rpc_bytes_free(&b);
        reply(call, NULL);
    } else if (!strcmp(name, "RegisterNode")) {
        do_register(m, call, alias);
    } else if (!strcmp(name, "Ping")) {
        Common__Informations__Ping *p =
            (Common__Informations__Ping *)recv_one(call, &common__informations__ping__descriptor);
        if (!p)
            return;
        pthread_mutex_lock(&m->lock);
        touch(m, pid(p->node_id));
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&p->base, NULL);
        reply(call, NULL);
    } else if (!strcmp(name, "SetNodeStatus")) {
        Common__Informations__NodeStatus *s = (Common__Informations__NodeStatus *)recv_one(
            call, &common__informations__node_status__descriptor);
        if (!s)
            return;
        pthread_mutex_lock(&m->lock);
        mgr_node *n = mgr_node_find(m, pid(s->node_id));
        if (n && s->status == COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED)
            mgr_node_lost(m, n, "it said it is disconnecting");
        else
            touch(m, pid(s->node_id));
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
        reply(call, NULL);
    } else if (!strcmp(name, "SetSystemSummary")) {
        Common__Informations__SetSystemSummaryRequest *s =
            (Common__Informations__SetSystemSummaryRequest *)recv_one(
                call, &common__informations__set_system_summary_request__descriptor);
        if (!s)
            return;
        pthread_mutex_lock(&m->lock);
        touch(m, pid(s->node_id));
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
        reply(call, NULL);
    } else if (!strcmp(name, "SetOverviews")) {
        Common__Informations__DatasetOverviews *o =
            (Common__Informations__DatasetOverviews *)recv_one(
                call, &common__informations__dataset_overviews__descriptor);
        if (!o)
            return;
        set_datasets(m, pid(o->node_id), o->content);
        protobuf_c_message_free_unpacked(&o->base, NULL);
        reply(call, NULL);
    } else if (!strcmp(name, "SendError")) {
        do_error(m, call);
    } else if (!strcmp(name, "StopSwarm") || !strcmp(name, "UpdateTask")) {
        Common__Tasks__TaskUpdate *u =
            (Common__Tasks__TaskUpdate *)recv_one(call, &common__tasks__task_update__descriptor);
        if (!u)
            return;
        char msg[512] = "";
        int rc = RPC_OK;
        if (!strcmp(name, "StopSwarm")) {
            pthread_mutex_lock(&m->lock);
            rc = runner_stop(m, pid(u->swarm_id), pid(u->node_id), pid(u->task_id), u->iteration,
                             msg, sizeof(msg));
            pthread_mutex_unlock(&m->lock);
        } else {
            task_update(m, u, false);
        }
        protobuf_c_message_free_unpacked(&u->base, NULL);
        if (rc != RPC_OK)
            rpc_call_finish(call, rc, msg);
        else
            reply(call, NULL);
    } else if (!strcmp(name, "ScheduleTask")) {
        Common__Tasks__TaskScheduling *s = (Common__Tasks__TaskScheduling *)recv_one(
            call, &common__tasks__task_scheduling__descriptor);
        if (!s)
            return;
        cleanup_free node_id *ids = xcalloc(s->n_node_ids + 1, sizeof(node_id));
        for (size_t i = 0; i < s->n_node_ids; i++)
            ids[i] = pid(s->node_ids[i]);
        char msg[512] = "";
        pthread_mutex_lock(&m->lock);
        int rc = runner_schedule(m, pid(s->swarm_id), pid(s->task_id), s->task_to_schedule_alias,
                                 ids, s->n_node_ids, msg, sizeof(msg));
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
        if (rc != RPC_OK)
            rpc_call_finish(call, rc, msg);
        else
            reply(call, NULL);
    } else if (!strcmp(name, "AddTaskLogs")) {
        do_add_logs(m, call);
    } else if (!strcmp(name, "GetTaskResult")) {
        do_get_result(m, call);
    } else if (!strcmp(name, "AddTaskResult")) {
        do_upload(m, call, true);
    } else if (!strcmp(name, "GetGlobal")) {
        do_get_global(m, call);
    } else if (!strcmp(name, "SetGlobal")) {
        do_upload(m, call, false);
    } else {
        rpc_call_finish(call, RPC_UNIMPLEMENTED, "Unknown method of node.node_service.Node.");
    }
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
    m->srv = rpc_server_start(m->cfg.listen, use_tls ? &tls : NULL, 64, handle, m, &m->port, err);
    if (!m->srv)
        return mt_error_wrap(err, "The node service could not listen on %s", m->cfg.listen);
    return 0;
}

void node_service_stop(manager *m)
{
    if (m->srv)
        rpc_server_stop(m->srv, 2000);
    m->srv = NULL;
}

void node_service_on_mqtt(manager *m, const char *topic, const void *payload, size_t len)
{
    if (!payload)
        return;
    const char *what = strrchr(topic, '/');
    what = what ? what + 1 : topic;
    if (!strcmp(what, "update_task_status")) {
        Common__Tasks__TaskUpdate *u = common__tasks__task_update__unpack(NULL, len, payload);
        if (u) {
            task_update(m, u, true);
            protobuf_c_message_free_unpacked(&u->base, NULL);
        }
    } else if (!strcmp(what, "set_system_summary")) {
        Common__Informations__SetSystemSummaryRequest *s =
            common__informations__set_system_summary_request__unpack(NULL, len, payload);
        if (s) {
            pthread_mutex_lock(&m->lock);
            touch_from(m, pid(s->node_id), true);
            pthread_mutex_unlock(&m->lock);
            protobuf_c_message_free_unpacked(&s->base, NULL);
        }
    } else if (!strcmp(what, "set_node_status")) {
        Common__Informations__NodeStatus *s =
            common__informations__node_status__unpack(NULL, len, payload);
        if (s) {
            pthread_mutex_lock(&m->lock);
            mgr_node *n = mgr_node_find(m, pid(s->node_id));
            if (n && s->status == COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED)
                mgr_node_lost(m, n, "it disconnected (or its last will arrived)");
            else
                touch(m, pid(s->node_id));
            pthread_mutex_unlock(&m->lock);
            protobuf_c_message_free_unpacked(&s->base, NULL);
        }
    }
}
