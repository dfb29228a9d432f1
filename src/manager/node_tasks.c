/* node_tasks.c - what nodes tell the runner about tasks, and what tasks ask of their swarm:
 * UpdateTask (and task updates on MQTT), SendError, StopSwarm and ScheduleTask. */
#include "node_service.h"

#include <limits.h>
#include <stdlib.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "clock.h"
#include "mem.h"
#include "node_service_impl.h"
#include "runner.h"
#include "utf8.h"

void ns_send_error(manager *m, rpc_call *call, const caller *c)
{
    Common__System__Error *e =
        (Common__System__Error *)ns_recv_one(call, &common__system__error__descriptor);
    if (!e)
        return;
    if (!ns_act_for(m, call, c, "SendError", e->node_id)) {
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
    ns_reply(call, NULL);
}

static void task_update(manager *m, const Common__Tasks__TaskUpdate *u, bool mqtt)
{
    pthread_mutex_lock(&m->lock);
    ns_touch_from(m, pid(u->node_id), mqtt);
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

/* StopSwarm and UpdateTask: both carry a TaskUpdate. */
static void do_task_update(manager *m, rpc_call *call, const caller *c, bool stop)
{
    Common__Tasks__TaskUpdate *u =
        (Common__Tasks__TaskUpdate *)ns_recv_one(call, &common__tasks__task_update__descriptor);
    if (!u)
        return;
    if (!ns_act_for(m, call, c, stop ? "StopSwarm" : "UpdateTask", u->node_id)) {
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
        ns_reply(call, NULL);
}

void ns_stop_swarm(manager *m, rpc_call *call, const caller *c)
{
    do_task_update(m, call, c, true);
}

void ns_update_task(manager *m, rpc_call *call, const caller *c)
{
    do_task_update(m, call, c, false);
}

void ns_schedule_task(manager *m, rpc_call *call, const caller *c)
{
    /* node_ids are where to run, not who calls: not checked (see the top of the file) */
    Common__Tasks__TaskScheduling *s = (Common__Tasks__TaskScheduling *)ns_recv_one(
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
        ns_reply(call, NULL);
}

/* ---- on MQTT -------------------------------------------------------------------------------- */

void ns_mqtt_task_update(manager *m, const void *payload, size_t len)
{
    Common__Tasks__TaskUpdate *u = common__tasks__task_update__unpack(NULL, len, payload);
    if (u) {
        task_update(m, u, true);
        protobuf_c_message_free_unpacked(&u->base, NULL);
    }
}
