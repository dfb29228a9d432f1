/* user_swarms.c - the swarms of the user services: finding them, starting them, reading,
 * stopping and removing them, and what resuming their runs after a restart needs.
 *
 * A swarm sent with the SDK lives in the store from SendSwarm on (user_submit.c): its row in
 * `swarms` (PENDING), its graph (object "graph", the swarm_def written back as a Graph by
 * graph.c, meta = the user who sent it), its networks (object "networks") and its globals.
 * StartSwarm reads them back, builds the swarm_def with the modules' archives (objects
 * "module") and hands it to the runner like a swarm file's: one graph model, one runner. Swarm
 * files get a "graph" object too (runner.c), so every swarm is listed, shown and stopped the
 * same way.
 *
 * Status for the SDK (SwarmStatusEnum has no COMPLETED): PENDING -> PENDING, RUNNING -> ACTIVE,
 * COMPLETED / STOPPED / FAILED -> STOPPED (GetSwarm says nothing more; `manta_manager status`
 * and the logs tell which and why).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/swarms.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "core/user_services.pb-c.h"
#include "clock.h"
#include "graph.h"
#include "mem.h"
#include "runner.h"
#include "user_internal.h"

/* ---- ids and swarms ------------------------------------------------------------------------- */

void us_pair_hex(const Common__System__PairId *p, char out[33])
{
    node_id id = {p ? p->head : 0, p ? p->tail : 0};
    us_hex(id, out);
}

void us_hex_of_xid(const char *xid, char out[33])
{
    node_id id = {0, 0};
    node_id_parse_xid(xid, &id);
    us_hex(id, out);
}

/* The swarm a user names; false with the call finished (NOT_FOUND) when unknown. */
bool us_find_swarm(manager *m, rpc_call *call, const char *given, store_swarm *sw,
                   char xid[NODE_XID_MAX + 1], node_id *id)
{
    node_id tmp;
    if (!id)
        id = &tmp;
    mt_error *err = NULL;
    int r = 0;
    if (us_parse_id(given, id)) {
        node_id_to_xid(*id, xid);
        r = store_swarm_get(m->st, xid, sw, &err);
    }
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return false;
    }
    if (r == 0) {
        char shown[SHOWN_MAX];
        us_fail(call, RPC_NOT_FOUND,
                "There is no swarm '%s' on this manager: ListSwarmIds gives the ids of its "
                "swarms.",
                us_shown(shown, sizeof(shown), given ? given : ""));
        return false;
    }
    return true;
}

/* Receive a StrId request naming a swarm and find it (the call is finished when not). */
static bool recv_swarm(manager *m, rpc_call *call, store_swarm *sw, char xid[NODE_XID_MAX + 1],
                       node_id *id)
{
    Common__System__StrId *q =
        (Common__System__StrId *)us_recv(call, &common__system__str_id__descriptor);
    if (!q)
        return false;
    bool found = us_find_swarm(m, call, q->id, sw, xid, id);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    return found;
}

bool us_recv_swarm_id(manager *m, rpc_call *call, char xid[NODE_XID_MAX + 1], char hex[33])
{
    store_swarm sw = {0};
    node_id id;
    bool found = recv_swarm(m, call, &sw, xid, &id);
    store_swarm_clear(&sw);
    if (found && hex)
        us_hex(id, hex);
    return found;
}

bool us_swarm_ended(const char *status)
{
    return strcmp(status, "PENDING") != 0 && strcmp(status, "RUNNING") != 0;
}

/* Is the swarm still PENDING or RUNNING? (An unknown swarm - removed meanwhile - is not.) */
bool us_swarm_live(manager *m, const char *xid)
{
    store_swarm sw = {0};
    mt_error *err = NULL;
    int r = store_swarm_get(m->st, xid, &sw, &err);
    mt_error_free(&err);
    bool live = r == 1 && !us_swarm_ended(sw.status);
    store_swarm_clear(&sw);
    return live;
}

static int sdk_status(const char *status)
{
    if (!strcmp(status, "PENDING"))
        return COMMON__SWARMS__SWARM_STATUS_ENUM__PENDING;
    if (!strcmp(status, "RUNNING"))
        return COMMON__SWARMS__SWARM_STATUS_ENUM__ACTIVE;
    return COMMON__SWARMS__SWARM_STATUS_ENUM__STOPPED;
}

/* The stored graph of a swarm (unpacked, owned) and its sender (owned, may be ""). */
Common__Swarms__Graph *us_load_graph(manager *m, const char *xid, char **owner)
{
    store_object o = {0};
    mt_error *err = NULL;
    int r = store_object_get(m->st, "graph", xid, true, &o, &err);
    mt_error_free(&err);
    Common__Swarms__Graph *g = r == 1 ? common__swarms__graph__unpack(NULL, o.len, o.data) : NULL;
    if (owner)
        *owner = xstrdup(r == 1 ? o.meta : "");
    store_object_clear(&o);
    return g;
}

void us_free_graph(Common__Swarms__Graph *g)
{
    if (g)
        protobuf_c_message_free_unpacked(&g->base, NULL);
}

/* A Swarm message of a stored swarm (strings point into sw and the buffers given). */
static void swarm_message(manager *m, const store_swarm *sw, Common__Swarms__Swarm *s, char hex[33],
                          char owner_id[33], Google__Protobuf__Timestamp ts[2])
{
    common__swarms__swarm__init(s);
    us_hex_of_xid(sw->id, hex);
    s->swarm_id = hex;
    s->cluster_id = m->us->cluster_id;
    cleanup_free char *owner = NULL;
    us_free_graph(us_load_graph(m, sw->id, &owner));
    owner_id[0] = '\0';
    if (*owner) {
        store_object u = {0};
        mt_error *err = NULL;
        if (store_object_get(m->st, "user", owner, false, &u, &err) == 1)
            snprintf(owner_id, 33, "%s", u.meta);
        mt_error_free(&err);
        store_object_clear(&u);
    }
    s->owner_id = owner_id;
    s->name = sw->name;
    ts[0] = us_ts(sw->created_ms);
    ts[1] = us_ts(sw->updated_ms);
    s->created_at = &ts[0];
    if (us_swarm_ended(sw->status)) {
        s->_last_stop_case = COMMON__SWARMS__SWARM___LAST_STOP_LAST_STOP;
        s->last_stop = &ts[1];
    }
    s->status = sdk_status(sw->status);
    s->_iteration_case = COMMON__SWARMS__SWARM___ITERATION_ITERATION;
    s->iteration = sw->iteration;
    s->_circular_case = COMMON__SWARMS__SWARM___CIRCULAR_CIRCULAR;
    s->circular = 0;
}

void us_reply_swarm(manager *m, rpc_call *call, const store_swarm *sw)
{
    Common__Swarms__Swarm s;
    char hex[33], owner[33];
    Google__Protobuf__Timestamp ts[2];
    swarm_message(m, sw, &s, hex, owner, ts);
    us_reply(call, &s.base);
}

/* ---- starting swarms ------------------------------------------------------------------------ */

void us_start_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    bool found = recv_swarm(m, call, &sw, xid, &id);
    if (!found)
        return;
    us_hex(id, hex);
    if (!strcmp(sw.status, "RUNNING")) {
        store_swarm_clear(&sw);
        us_response(call, "Swarm %s has started.", hex);
        return;
    }
    if (us_swarm_ended(sw.status)) {
        us_fail(call, RPC_FAILED_PRECONDITION,
                "Swarm %s has ended (%s): a swarm runs once. Send it again (deploy_swarm) to run "
                "it anew.",
                hex, sw.status);
        store_swarm_clear(&sw);
        return;
    }
    Common__Swarms__Graph *g = us_load_graph(m, xid, NULL);
    store_object nets = {0};
    mt_error *err = NULL;
    Common__System__Networks *nw = NULL;
    if (store_object_get(m->st, "networks", xid, true, &nets, &err) == 1)
        nw = common__system__networks__unpack(NULL, nets.len, nets.data);
    mt_error_free(&err);
    store_object_clear(&nets);
    cleanup_error mt_error *why = NULL;
    swarm_def *def = g ? graph_to_def(g, sw.name, us_module_lookup, m, nw, true, true, &why) : NULL;
    if (!g)
        mt_error_set_status(&why, RPC_INTERNAL, MT_ERR_NOTFOUND,
                            "its graph is missing from the store");
    us_free_graph(g);
    if (nw)
        protobuf_c_message_free_unpacked(&nw->base, NULL);
    store_swarm_clear(&sw);
    if (!def) {
        us_fail(call, mt_error_status(why, RPC_INTERNAL), "Swarm %s cannot start: %s", hex,
                mt_error_msg(why));
        return;
    }
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    bool already = runner_status(m, xid, NULL, NULL, 0) >= 0;
    if (already)
        swarm_def_free(def);
    else
        rc = runner_start_id(m, def, id, &err);
    pthread_mutex_unlock(&m->lock);
    if (rc < 0) {
        us_fail(call, RPC_FAILED_PRECONDITION,
                "Swarm %s could not start and has ended: %s. Connect nodes that can run its "
                "first tasks, then send it again.",
                hex, mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    log_info(m->log, "users", "swarm %s started by %s", xid, *uc->name ? uc->name : "(no token)");
    us_response(call, "Swarm %s has started.", hex);
}

/* ---- resuming swarms after a restart -------------------------------------------------------- */

void us_keep_modules(manager *m, const swarm_def *def)
{
    for (size_t i = 0; i < def->ntasks; i++) {
        const swarm_task_def *t = &def->tasks[i];
        char hex[33];
        us_hex(t->module_id, hex);
        store_object o = {0};
        mt_error *err = NULL;
        int r = store_object_get(m->st, "module", hex, false, &o, &err);
        store_object_clear(&o);
        if (r == 0)
            r = store_object_get(m->st, "run_module", hex, false, &o, &err);
        store_object_clear(&o);
        if (r == 0) {
            Common__Tasks__Module mod = COMMON__TASKS__MODULE__INIT;
            mod.python_program.data = t->pyz;
            mod.python_program.len = t->pyz_len;
            mod.image = t->image;
            mod.name = t->name ? t->name : t->alias;
            for (mod.n_datasets = 0; t->datasets && t->datasets[mod.n_datasets];)
                mod.n_datasets++;
            mod.datasets = t->datasets;
            size_t len = common__tasks__module__get_packed_size(&mod);
            cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
            common__tasks__module__pack(&mod, buf);
            r = store_object_put(m->st, "run_module", hex, "", buf, len, clock_wall_ms(), true,
                                 &err);
        }
        if (r < 0) {
            log_msg(m->log, LOG_ERROR, "runner", "keeping task '%s' for a restart: %s", t->alias,
                    mt_error_msg(err));
            mt_error_free(&err);
        }
    }
}

swarm_def *us_load_def(manager *m, const char *xid, const char *name, mt_error **err)
{
    Common__Swarms__Graph *g = us_load_graph(m, xid, NULL);
    if (!g) {
        mt_error_set(err, MT_ERR_GENERIC, "its graph is missing from the store");
        return NULL;
    }
    store_object nets = {0};
    cleanup_error mt_error *nerr = NULL;
    Common__System__Networks *nw = NULL;
    if (store_object_get(m->st, "networks", xid, true, &nets, &nerr) == 1)
        nw = common__system__networks__unpack(NULL, nets.len, nets.data);
    store_object_clear(&nets);
    swarm_def *def = graph_to_def(g, name, us_module_lookup, m, nw, false, true, err);
    us_free_graph(g);
    if (nw)
        protobuf_c_message_free_unpacked(&nw->base, NULL);
    return def;
}

/* ---- reading and stopping swarms ------------------------------------------------------------ */

void us_get_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    bool found = recv_swarm(m, call, &sw, xid, NULL);
    if (found)
        us_reply_swarm(m, call, &sw);
    store_swarm_clear(&sw);
}

static bool list_swarms(manager *m, rpc_call *call, store_swarm **rows, size_t *n)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return false;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    mt_error *err = NULL;
    if (store_swarm_list(m->st, rows, n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return false;
    }
    return true;
}

void us_list_swarm_ids(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    if (!list_swarms(m, call, &rows, &n))
        return;
    Common__System__CollectionIds ids = COMMON__SYSTEM__COLLECTION_IDS__INIT;
    char(*hex)[33] = xcalloc(n + 1, sizeof(*hex));
    cleanup_free char **p = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        us_hex_of_xid(rows[i].id, hex[i]);
        p[i] = hex[i];
    }
    ids.ids = p;
    ids.n_ids = n;
    us_reply(call, &ids.base);
    free(hex);
    store_swarms_free(rows, n);
}

void us_stream_swarms(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    if (!list_swarms(m, call, &rows, &n))
        return;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        Common__Swarms__Swarm s;
        char hex[33], owner[33];
        Google__Protobuf__Timestamp ts[2];
        swarm_message(m, &rows[i], &s, hex, owner, ts);
        ok = us_send(call, &s.base);
    }
    store_swarms_free(rows, n);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_stream_swarm_tasks(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    bool found = recv_swarm(m, call, &sw, xid, NULL);
    store_swarm_clear(&sw);
    if (!found)
        return;
    Common__Swarms__Graph *g = us_load_graph(m, xid, NULL);
    bool ok = true;
    for (size_t i = 0; g && i < g->n_tasks && ok; i++) {
        const Common__Tasks__Task *t = g->tasks[i];
        Core__UserServices__TaskResponse r = CORE__USER_SERVICES__TASK_RESPONSE__INIT;
        char tid[33], mid[33];
        us_pair_hex(t->task_id, tid);
        us_pair_hex(t->module_id, mid);
        r.task_id = tid;
        r.module_id = mid;
        r.alias = t->alias;
        cleanup_free char(*prev)[33] = xcalloc(t->n_previous_tasks + 1, 33);
        cleanup_free char(*next)[33] = xcalloc(t->n_next_tasks + 1, 33);
        cleanup_free char **pp = xcalloc(t->n_previous_tasks + 1, sizeof(char *));
        cleanup_free char **np = xcalloc(t->n_next_tasks + 1, sizeof(char *));
        for (size_t k = 0; k < t->n_previous_tasks; k++) {
            us_pair_hex(t->previous_tasks[k], prev[k]);
            pp[k] = prev[k];
        }
        for (size_t k = 0; k < t->n_next_tasks; k++) {
            us_pair_hex(t->next_tasks[k], next[k]);
            np[k] = next[k];
        }
        r.previous_tasks = pp;
        r.n_previous_tasks = t->n_previous_tasks;
        r.next_tasks = np;
        r.n_next_tasks = t->n_next_tasks;
        r.conditions = t->conditions;
        r.n_conditions = t->n_conditions;
        r.order = t->order;
        if (t->_network_case == COMMON__TASKS__TASK___NETWORK_NETWORK) {
            r._network_case = CORE__USER_SERVICES__TASK_RESPONSE___NETWORK_NETWORK;
            r.network = t->network;
        }
        if (t->scheduling) {
            r.method = t->scheduling->method;
            r.fixed = t->scheduling->fixed;
            r.excepted_ids = t->scheduling->excepted_ids;
            r.n_excepted_ids = t->scheduling->n_excepted_ids;
            r.specified_ids = t->scheduling->specified_ids;
            r.n_specified_ids = t->scheduling->n_specified_ids;
            r.maximum = t->scheduling->maximum;
            r.max_type = t->scheduling->max_type;
            r.gpu = t->scheduling->gpu;
        }
        ok = us_send(call, &r.base);
    }
    us_free_graph(g);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

/* Remove a swarm that does not run, with everything it has. 1 removed, 0 unknown, -1. */
static int remove_swarm(manager *m, const char *xid, mt_error **err)
{
    int r = store_swarm_remove(m->st, xid, err);
    if (r > 0) {
        store_object_delete(m->st, "graph", xid, NULL);
        store_object_delete(m->st, "networks", xid, NULL);
    }
    return r;
}

int user_swarm_stop(manager *m, const char *xid, const char *status, const char *who,
                    mt_error **err)
{
    cleanup_free char *why = xasprintf("stopped by user %s", who);
    pthread_mutex_lock(&m->lock);
    int st = runner_status(m, xid, NULL, NULL, 0);
    bool stopped = st == RUN_RUNNING && runner_cancel(m, xid, why) == 0;
    pthread_mutex_unlock(&m->lock);
    if (stopped)
        return 1;
    if (strcmp(status, "PENDING"))
        return 0;
    if (store_swarm_update(m->st, xid, "STOPPED", "stopped by its user before it started", 0,
                           clock_wall_ms(), err) < 0)
        return -1;
    user_service_notify(m);
    return 1;
}

void us_stop_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__StopSwarmRequest *q = (Core__UserServices__StopSwarmRequest *)us_recv(
        call, &core__user_services__stop_swarm_request__descriptor);
    if (!q)
        return;
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    bool found = us_find_swarm(m, call, q->swarm_id, &sw, xid, &id);
    bool remove = q->remove;
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (!found)
        return;
    us_hex(id, hex);
    mt_error *err = NULL;
    int rc = user_swarm_stop(m, xid, sw.status, *uc->name ? uc->name : "(no token)", &err);
    if (rc < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        store_swarm_clear(&sw);
        return;
    }
    const char *was = rc == 0 ? sw.status : NULL;
    if (remove && remove_swarm(m, xid, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "Swarm %s has stopped, but could not be removed: %s", hex,
                mt_error_msg(err));
        mt_error_free(&err);
        store_swarm_clear(&sw);
        return;
    }
    if (was)
        us_response(call, "Swarm %s had already ended (%s)%s.", hex, was,
                    remove ? "; it was removed" : "");
    else
        us_response(call, "Swarm %s has stopped%s.", hex, remove ? " and was removed" : "");
    store_swarm_clear(&sw);
}

void us_remove_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    bool found = recv_swarm(m, call, &sw, xid, &id);
    if (!found)
        return;
    us_hex(id, hex);
    pthread_mutex_lock(&m->lock);
    bool running = runner_status(m, xid, NULL, NULL, 0) == RUN_RUNNING;
    pthread_mutex_unlock(&m->lock);
    store_swarm_clear(&sw);
    if (running) {
        us_fail(call, RPC_FAILED_PRECONDITION,
                "Swarm %s is running: stop it (StopSwarm) before removing it.", hex);
        return;
    }
    mt_error *err = NULL;
    if (remove_swarm(m, xid, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    us_response(call, "Swarm %s was removed with its globals, results and logs.", hex);
}
