/* runner.c - swarm runs: placement, edges, iterations, stop, node loss. */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "clock.h"
#include "mem.h"
#include "graph.h"
#include "placement.h"
#include "user_service.h"
#include "utf8.h"

enum inst_state { INST_DEPLOYED = 0, INST_DONE, INST_FAILED, INST_DROPPED, INST_STOPPED };

typedef struct inst {
    size_t task;
    node_id node;
    char xid[NODE_XID_MAX + 1];
    uint32_t iteration;
    int state;
    bool running; /* the node said RUNNING */
    int64_t started_ms;
    int64_t logs_ms;    /* when its logs arrived (0: not yet); the outcome may follow on MQTT */
    uint64_t opened;    /* what it last opened with ScheduleTask (key of alias and nodes), or 0 */
    bool resent;        /* its deploy was sent again on resuming: "already running" is no error */
    unsigned redeploys; /* deploys sent again because its node restarted before starting it */
} inst;

struct swarm_run {
    swarm_def *def;
    node_id id;
    char xid[NODE_XID_MAX + 1];
    int status;
    char detail[512];
    uint32_t iteration; /* highest iteration opened */
    inst *insts;
    size_t ninsts, cap;
    node_id **fixed; /* per task: the nodes chosen the first time */
    size_t *nfixed;
    bool dirty;         /* changed since it was last kept in the store (runner_tick keeps it) */
    int64_t resumed_ms; /* resumed after a restart, and nodes not heard since may be gone */
    bool held;          /* resumed: placing what follows held_ti until its nodes are heard */
    size_t held_ti;
    uint32_t held_it;
};

const char *run_status_name(int status)
{
    static const char *const names[] = {"RUNNING", "COMPLETED", "STOPPED", "FAILED"};
    return status >= 0 && status <= RUN_FAILED ? names[status] : "UNKNOWN";
}

static void progress(manager *m, swarm_run *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void progress(manager *m, swarm_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *line = xvasprintf(fmt, ap);
    va_end(ap);
    log_info(m->log, "runner", "swarm %s: %s", r->xid, line);
    if (m->progress)
        m->progress(m->progress_ctx, r->xid, line);
}

static swarm_run *find_run(manager *m, node_id swarm)
{
    for (size_t i = 0; i < m->nruns; i++)
        if (node_id_equal(m->runs[i]->id, swarm))
            return m->runs[i];
    return NULL;
}

static ssize_t find_task(const swarm_run *r, node_id task)
{
    for (size_t i = 0; i < r->def->ntasks; i++)
        if (node_id_equal(r->def->tasks[i].task_id, task))
            return (ssize_t)i;
    return -1;
}

/* ---- the run's state in the store ------------------------------------------------------
 *
 * Everything a run needs to carry on after a restart of the manager is kept in the store
 * (object "run"/<xid>) whenever it changes, before any command it causes is published: the
 * event loop calls runner_tick, which keeps changed runs, before it flushes the outbox. The
 * task graph and the module archives are kept when the run starts ("graph", "module" or
 * "run_module"). The layout is this host's (the store is local): a header, the instances, then
 * the nodes chosen for each fixed task. */

#define RUN_MAGIC 0x314e524dU /* "MRN1" */

typedef struct run_hdr {
    uint32_t magic, status, iteration, ntasks, ninsts;
    char detail[512];
} run_hdr;

typedef struct run_inst {
    uint64_t head, tail, opened;
    uint32_t task, iteration;
    uint8_t state, running, logs;
} run_inst;

static void persist(manager *m, swarm_run *r)
{
    size_t nf = 0;
    for (size_t t = 0; t < r->def->ntasks; t++)
        nf += r->nfixed[t];
    size_t len = sizeof(run_hdr) + r->ninsts * sizeof(run_inst) +
                 r->def->ntasks * sizeof(uint32_t) + nf * 2 * sizeof(uint64_t);
    cleanup_free uint8_t *buf = xcalloc(1, len);
    run_hdr *h = (run_hdr *)buf;
    h->magic = RUN_MAGIC;
    h->status = (uint32_t)r->status;
    h->iteration = r->iteration;
    h->ntasks = (uint32_t)r->def->ntasks;
    h->ninsts = (uint32_t)r->ninsts;
    memcpy(h->detail, r->detail, sizeof(h->detail));
    uint8_t *p = buf + sizeof(*h);
    for (size_t i = 0; i < r->ninsts; i++, p += sizeof(run_inst)) {
        const inst *in = &r->insts[i];
        run_inst ri = {.head = in->node.head,
                       .tail = in->node.tail,
                       .task = (uint32_t)in->task,
                       .iteration = in->iteration,
                       .state = (uint8_t)in->state,
                       .running = in->running,
                       .logs = in->logs_ms != 0,
                       .opened = in->opened};
        memcpy(p, &ri, sizeof(ri));
    }
    for (size_t t = 0; t < r->def->ntasks; t++) {
        uint32_t k = (uint32_t)r->nfixed[t];
        memcpy(p, &k, sizeof(k));
        p += sizeof(k);
        for (size_t i = 0; i < k; i++) {
            memcpy(p, &r->fixed[t][i].head, sizeof(uint64_t));
            memcpy(p + 8, &r->fixed[t][i].tail, sizeof(uint64_t));
            p += 16;
        }
    }
    mt_error *err = NULL;
    if (store_object_put(m->st, "run", r->xid, "", buf, len, clock_wall_ms(), true, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "runner", "keeping swarm %s's state: %s", r->xid,
                mt_error_msg(err));
        mt_error_free(&err);
    }
    r->dirty = false;
}

/* Restore what persist kept into r (whose def is set); false if the record does not fit it. */
static bool restore(swarm_run *r, const uint8_t *buf, size_t len)
{
    run_hdr h;
    if (len < sizeof(h))
        return false;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != RUN_MAGIC || h.ntasks != r->def->ntasks || h.status > RUN_FAILED ||
        (len - sizeof(h)) / sizeof(run_inst) < h.ninsts)
        return false;
    const uint8_t *p = buf + sizeof(h), *end = buf + len;
    r->insts = xcalloc(h.ninsts + 1, sizeof(inst));
    r->cap = h.ninsts + 1;
    for (uint32_t i = 0; i < h.ninsts; i++, p += sizeof(run_inst)) {
        run_inst ri;
        memcpy(&ri, p, sizeof(ri));
        if (ri.task >= h.ntasks || ri.state > INST_STOPPED)
            return false;
        inst *in = &r->insts[r->ninsts++];
        in->node = (node_id){ri.head, ri.tail};
        node_id_to_xid(in->node, in->xid);
        in->task = ri.task;
        in->iteration = ri.iteration;
        in->state = ri.state;
        in->running = ri.running;
        in->logs_ms = ri.logs ? clock_mono_ms() : 0;
        in->opened = ri.opened;
        in->started_ms = clock_mono_ms();
    }
    for (size_t t = 0; t < h.ntasks; t++) {
        uint32_t k;
        if ((size_t)(end - p) < sizeof(k))
            return false;
        memcpy(&k, p, sizeof(k));
        p += sizeof(k);
        if ((size_t)(end - p) / 16 < k)
            return false;
        r->fixed[t] = xcalloc(k + 1, sizeof(node_id));
        for (uint32_t i = 0; i < k; i++, p += 16) {
            memcpy(&r->fixed[t][i].head, p, 8);
            memcpy(&r->fixed[t][i].tail, p + 8, 8);
        }
        r->nfixed[t] = k;
    }
    r->status = (int)h.status;
    r->iteration = h.iteration;
    memcpy(r->detail, h.detail, sizeof(r->detail));
    r->detail[sizeof(r->detail) - 1] = '\0';
    return true;
}

static void save(manager *m, swarm_run *r)
{
    persist(m, r);
    mt_error *err = NULL;
    if (store_swarm_update(m->st, r->xid, run_status_name(r->status), r->detail, r->iteration,
                           clock_wall_ms(), &err) < 0) {
        log_msg(m->log, LOG_ERROR, "runner", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    user_service_notify(m);
    mgr_wake(m);
}

static void node_running_dec(manager *m, const inst *in)
{
    mgr_node *n = mgr_node_find(m, in->node);
    if (n && n->running)
        n->running--;
}

/* Send stop_swarm to every node that ran something of this run; end every live instance. */
static void stop_everywhere(manager *m, swarm_run *r)
{
    Common__System__PairId pid = COMMON__SYSTEM__PAIR_ID__INIT;
    pid.head = r->id.head;
    pid.tail = r->id.tail;
    size_t len = common__system__pair_id__get_packed_size(&pid);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    common__system__pair_id__pack(&pid, buf);
    for (size_t i = 0; i < r->ninsts; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            if (node_id_equal(r->insts[j].node, r->insts[i].node))
                seen = true;
        if (!seen)
            mgr_publish(m, r->insts[i].xid, "stop_swarm", buf, len);
        if (r->insts[i].state == INST_DEPLOYED) {
            r->insts[i].state = INST_STOPPED;
            node_running_dec(m, &r->insts[i]);
        }
    }
}

static void end_run(manager *m, swarm_run *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void end_run(manager *m, swarm_run *r, int status, const char *fmt, ...)
{
    if (r->status != RUN_RUNNING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
    utf8_drop_partial_tail(r->detail); /* a cut inside a character would be ill-formed */
    r->status = status;
    stop_everywhere(m, r);
    /* Nothing is deployed any more: a long-running `serve` keeps only the small graph. */
    for (size_t i = 0; i < r->def->ntasks; i++) {
        free(r->def->tasks[i].pyz);
        r->def->tasks[i].pyz = NULL;
        r->def->tasks[i].pyz_len = 0;
    }
    progress(m, r, "swarm %s: %s", run_status_name(status), r->detail);
    save(m, r);
}

/* Publish deploy_task of task ti for `iteration` to node xid (no bookkeeping: deploy_on). */
static void publish_deploy(manager *m, const swarm_run *r, size_t ti, uint32_t iteration,
                           const char *xid)
{
    const swarm_task_def *t = &r->def->tasks[ti];
    Common__System__PairId sid = COMMON__SYSTEM__PAIR_ID__INIT, tid = COMMON__SYSTEM__PAIR_ID__INIT;
    sid.head = r->id.head;
    sid.tail = r->id.tail;
    tid.head = t->task_id.head;
    tid.tail = t->task_id.tail;
    Common__Tasks__MqttTask mt = COMMON__TASKS__MQTT_TASK__INIT;
    mt.swarm_id = &sid;
    mt.task_id = &tid;
    mt.iteration = iteration;
    mt.circular = 0;
    mt.payload.data = t->pyz;
    mt.payload.len = t->pyz_len;
    mt.image = t->image;
    mt.alias = t->alias;
    mt.network = t->network ? t->network : (char *)"None";
    mt.auth_key = (char *)"None";
    mt.login_server = (char *)"None";
    mt.gpu = t->gpu;
    size_t len = common__tasks__mqtt_task__get_packed_size(&mt);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    common__tasks__mqtt_task__pack(&mt, buf);
    mgr_publish(m, xid, "deploy_task", buf, len);
}

/* Deploy task ti for `iteration` on a node: publish, and record the new instance. The node may
 * not be known yet (a node of a resumed run not heard from since the restart). */
static void deploy_on(manager *m, swarm_run *r, size_t ti, uint32_t iteration, node_id id,
                      const char *xid)
{
    publish_deploy(m, r, ti, iteration, xid);
    if (r->ninsts == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->insts = xrealloc(r->insts, r->cap * sizeof(*r->insts));
    }
    inst *in = &r->insts[r->ninsts++];
    memset(in, 0, sizeof(*in));
    in->task = ti;
    in->node = id;
    utf8_copy(in->xid, sizeof(in->xid), xid);
    in->iteration = iteration;
    in->state = INST_DEPLOYED;
    in->started_ms = clock_mono_ms();
    mgr_node *n = mgr_node_find(m, id);
    if (n)
        n->running++;
    r->dirty = true;
}

/* Place task ti for `iteration` (excluding nodes in `exclude`), deploy, remember fixed nodes. */
static int place_and_deploy(manager *m, swarm_run *r, size_t ti, uint32_t iteration,
                            const node_id *exclude, size_t nexclude, size_t want_max,
                            mt_error **err)
{
    const swarm_task_def *t = &r->def->tasks[ti];
    cleanup_free placement_node *pn = xcalloc(m->nnodes + 1, sizeof(*pn));
    cleanup_free mgr_node **map = xcalloc(m->nnodes + 1, sizeof(*map));
    size_t n = 0;
    for (size_t i = 0; i < m->nnodes; i++) {
        mgr_node *nd = m->nodes[i];
        bool excluded = false;
        for (size_t k = 0; k < nexclude; k++)
            if (node_id_equal(exclude[k], nd->id))
                excluded = true;
        if (excluded)
            continue;
        pn[n].id = nd->id;
        memcpy(pn[n].xid, nd->xid, sizeof(pn[n].xid));
        pn[n].connected = nd->connected && nd->ready;
        pn[n].has_gpu = false;
        static const char *const none[] = {NULL};
        pn[n].datasets = nd->datasets ? (const char *const *)nd->datasets : none;
        pn[n].running = nd->running;
        map[n++] = nd;
    }
    cleanup_free size_t *chosen = xcalloc(n + 1, sizeof(size_t));
    size_t nchosen = 0;
    if (placement_choose(t, pn, n, r->fixed[ti], r->nfixed[ti], chosen, &nchosen, err) < 0)
        return -1;
    if (want_max && nchosen > want_max)
        nchosen = want_max;
    if (t->fixed && r->nfixed[ti] == 0) {
        free(r->fixed[ti]); /* an empty list when the run was restored (restore) */
        r->fixed[ti] = xcalloc(nchosen + 1, sizeof(node_id));
        for (size_t i = 0; i < nchosen; i++)
            r->fixed[ti][i] = map[chosen[i]]->id;
        r->nfixed[ti] = nchosen;
    }
    char names[512] = "";
    for (size_t i = 0; i < nchosen; i++) {
        deploy_on(m, r, ti, iteration, map[chosen[i]]->id, map[chosen[i]]->xid);
        size_t l = strlen(names);
        snprintf(names + l, sizeof(names) - l, "%s%.12s", i ? ", " : "", map[chosen[i]]->xid);
    }
    progress(m, r, "iteration %u: %s deployed on %zu node%s (%s)", iteration, t->alias, nchosen,
             nchosen == 1 ? "" : "s", names);
    return 0;
}

static bool deployed_in(const swarm_run *r, size_t ti, uint32_t iteration)
{
    for (size_t i = 0; i < r->ninsts; i++)
        if (r->insts[i].task == ti && r->insts[i].iteration == iteration)
            return true;
    return false;
}

/* Task ti takes part in `iteration`: deployed in it, or after a task that does (it is
 * deployed once that one finishes). A start task ScheduleTask did not open does not. */
static bool in_iteration(const swarm_run *r, size_t ti, uint32_t iteration)
{
    if (deployed_in(r, ti, iteration))
        return true;
    const swarm_task_def *t = &r->def->tasks[ti];
    for (size_t p = 0; p < t->nprev; p++)
        if (in_iteration(r, t->prev[p], iteration))
            return true;
    return false;
}

/* 1 = every instance of (ti, iteration) is over with at least one done, 0 = not yet, -1 =
 * over with none done. */
static int task_complete(const swarm_run *r, size_t ti, uint32_t iteration)
{
    bool any = false, done = false;
    for (size_t i = 0; i < r->ninsts; i++) {
        const inst *in = &r->insts[i];
        if (in->task != ti || in->iteration != iteration)
            continue;
        any = true;
        if (in->state == INST_DEPLOYED)
            return 0;
        if (in->state == INST_DONE)
            done = true;
    }
    return !any ? 0 : done ? 1 : -1;
}

static void check_complete(manager *m, swarm_run *r)
{
    if (r->status != RUN_RUNNING)
        return;
    for (size_t i = 0; i < r->ninsts; i++)
        if (r->insts[i].state == INST_DEPLOYED)
            return;
    end_run(m, r, RUN_COMPLETED, "the task graph finished at iteration %u", r->iteration);
}

/* A node this run used that the manager has not heard from since it restarted (lock held). */
static bool unheard_node(manager *m, const swarm_run *r)
{
    for (size_t i = 0; i < r->ninsts; i++) {
        mgr_node *n = mgr_node_find(m, r->insts[i].node);
        if (!n || !n->connected || !n->ready)
            return true;
    }
    return false;
}

static void advance(manager *m, swarm_run *r, size_t ti, uint32_t iteration)
{
    if (r->status != RUN_RUNNING)
        return;
    int c = task_complete(r, ti, iteration);
    if (c == 0)
        return;
    const swarm_task_def *t = &r->def->tasks[ti];
    if (c < 0) {
        end_run(m, r, RUN_FAILED, "no instance of task '%s' finished at iteration %u", t->alias,
                iteration);
        return;
    }
    /* Just resumed: the nodes are known again at their next heartbeat. Placing now would leave
     * out of a `method = all` task every node not heard from yet: wait for them (runner_tick),
     * at most until the run settles (node_timeout). */
    if (r->resumed_ms && (!r->held || (r->held_ti == ti && r->held_it == iteration)) &&
        unheard_node(m, r)) {
        if (!r->held)
            progress(m, r,
                     "iteration %u: %s finished everywhere; waiting for the nodes to be "
                     "heard from again before placing what follows",
                     iteration, t->alias);
        r->held = true;
        r->held_ti = ti;
        r->held_it = iteration;
        return;
    }
    if (r->held && r->held_ti == ti && r->held_it == iteration)
        r->held = false;
    progress(m, r, "iteration %u: %s finished everywhere", iteration, t->alias);
    for (size_t k = 0; k < t->nnext; k++) {
        size_t j = t->next[k];
        if (deployed_in(r, j, iteration))
            continue;
        const swarm_task_def *tj = &r->def->tasks[j];
        bool ready = true;
        for (size_t p = 0; p < tj->nprev; p++)
            if (in_iteration(r, tj->prev[p], iteration) &&
                task_complete(r, tj->prev[p], iteration) != 1)
                ready = false;
        if (!ready)
            continue;
        mt_error *err = NULL;
        if (place_and_deploy(m, r, j, iteration, NULL, 0, 0, &err) < 0) {
            end_run(m, r, RUN_FAILED, "%s", mt_error_msg(err));
            mt_error_free(&err);
            return;
        }
    }
    check_complete(m, r);
}

/* Start a run with the given id (a swarm the store has, PENDING) or a new one (id NULL). */
static int start(manager *m, swarm_def *def, const node_id *id, char xid[NODE_XID_MAX + 1],
                 mt_error **err)
{
    swarm_run *r = xcalloc(1, sizeof(*r));
    r->def = def;
    r->fixed = xcalloc(def->ntasks + 1, sizeof(node_id *));
    r->nfixed = xcalloc(def->ntasks + 1, sizeof(size_t));
    if (id) {
        r->id = *id;
    } else if (node_id_random(&r->id, err) < 0) {
        swarm_def_free(def);
        free(r->fixed);
        free(r->nfixed);
        free(r);
        return -1;
    }
    node_id_to_xid(r->id, r->xid);
    memcpy(xid, r->xid, sizeof(r->xid));
    m->runs = xrealloc(m->runs, (m->nruns + 1) * sizeof(*m->runs));
    m->runs[m->nruns++] = r;
    r->status = RUN_RUNNING;
    if (!id && store_swarm_create(m->st, r->xid, def->name, clock_wall_ms(), err) < 0) {
        r->status = RUN_FAILED;
        utf8_copy(r->detail, sizeof(r->detail), mt_error_msg(*err));
        return -1;
    }
    if (!id) {
        /* the graph as the user services show it (a swarm sent with the SDK has its own) */
        size_t glen = 0;
        cleanup_free uint8_t *g = graph_pack(def, &glen);
        mt_error *e2 = NULL;
        if (store_object_put(m->st, "graph", r->xid, "", g, glen, clock_wall_ms(), true, &e2) < 0) {
            log_msg(m->log, LOG_ERROR, "runner", "%s", mt_error_msg(e2));
            mt_error_free(&e2);
        }
        us_keep_modules(m, def); /* to resume the run after a restart */
    }
    for (size_t g = 0; g < def->nglobals; g++)
        if (store_global_set(m->st, r->xid, def->globals[g].tag, def->globals[g].data,
                             def->globals[g].len, err) < 0) {
            end_run(m, r, RUN_FAILED, "%s", mt_error_msg(*err));
            return -1;
        }
    progress(m, r, "swarm '%s' started: %zu tasks, %zu globals", def->name, def->ntasks,
             def->nglobals);
    save(m, r);
    for (size_t i = 0; i < def->ntasks; i++) {
        if (def->tasks[i].nprev)
            continue;
        if (place_and_deploy(m, r, i, 0, NULL, 0, 0, err) < 0) {
            mt_error_wrap(err, "The swarm cannot start");
            end_run(m, r, RUN_FAILED, "%s", mt_error_msg(*err));
            return -1;
        }
    }
    return 0;
}

int runner_start(manager *m, swarm_def *def, char xid[NODE_XID_MAX + 1], mt_error **err)
{
    return start(m, def, NULL, xid, err);
}

int runner_start_id(manager *m, swarm_def *def, node_id id, mt_error **err)
{
    char xid[NODE_XID_MAX + 1];
    return start(m, def, &id, xid, err);
}

static inst *find_inst(swarm_run *r, node_id node, node_id task, uint32_t iteration);

/* True when the store holds logs of this instance (its node uploaded them, perhaps just
 * before the manager stopped, before its state was kept). */
static bool logs_stored(manager *m, const swarm_run *r, const inst *in)
{
    char tx[NODE_XID_MAX + 1];
    node_id_to_xid(r->def->tasks[in->task].task_id, tx);
    store_log *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    bool found = false;
    if (store_log_list(m->st, r->xid, in->xid, tx, &rows, &n, &err) == 0) {
        for (size_t i = 0; i < n && !found; i++)
            found = rows[i].iteration == in->iteration;
        store_logs_free(rows, n);
    }
    mt_error_free(&err);
    return found;
}

static void fail_stored(manager *m, const store_swarm *sw, const char *why)
{
    mt_error *err = NULL;
    cleanup_free char *detail = xasprintf("the manager restarted and could not resume it: %s", why);
    utf8_drop_partial_tail(detail);
    int64_t now = clock_wall_ms();
    if (store_swarm_update(m->st, sw->id, "FAILED", detail, sw->iteration, now, &err) < 0)
        mt_error_free(&err);
    log_msg(m->log, LOG_WARNING, "runner", "swarm %s: %s", sw->id, detail);
}

/* One stored run, RUNNING when the manager stopped, taken up again. */
static void resume_one(manager *m, const store_swarm *sw)
{
    node_id id;
    if (!node_id_parse_xid(sw->id, &id)) {
        fail_stored(m, sw, "its id is not a swarm id");
        return;
    }
    store_object o = {0};
    mt_error *err = NULL;
    int got = store_object_get(m->st, "run", sw->id, true, &o, &err);
    mt_error_free(&err);
    if (got != 1) {
        store_object_clear(&o);
        fail_stored(m, sw, "its state was not kept (it ran on a manager older than this one)");
        return;
    }
    char why[512] = "";
    swarm_def *def = us_load_def(m, sw->id, sw->name, why, sizeof(why));
    if (!def) {
        store_object_clear(&o);
        fail_stored(m, sw, why);
        return;
    }
    swarm_run *r = xcalloc(1, sizeof(*r));
    r->def = def;
    r->id = id;
    node_id_to_xid(id, r->xid);
    r->fixed = xcalloc(def->ntasks + 1, sizeof(node_id *));
    r->nfixed = xcalloc(def->ntasks + 1, sizeof(size_t));
    m->runs = xrealloc(m->runs, (m->nruns + 1) * sizeof(*m->runs));
    m->runs[m->nruns++] = r;
    bool ok = restore(r, o.data, o.len);
    store_object_clear(&o);
    if (!ok || r->status != RUN_RUNNING) {
        r->status = RUN_RUNNING; /* so that end_run records the end */
        end_run(m, r, RUN_FAILED,
                "the manager restarted and could not resume it: its kept "
                "state does not match its graph");
        return;
    }
    size_t live = 0, resent = 0;
    for (size_t i = 0; i < r->ninsts; i++) {
        inst *in = &r->insts[i];
        if (in->state != INST_DEPLOYED)
            continue;
        live++;
        if (!in->logs_ms && logs_stored(m, r, in))
            in->logs_ms = clock_mono_ms();
        if (in->logs_ms || in->running)
            continue;
        /* Its deploy may not have left before the manager stopped: send it again. A node that
         * has it answers "already running", which resume_one's instances ignore. */
        publish_deploy(m, r, in->task, in->iteration, in->xid);
        in->resent = true;
        resent++;
    }
    r->resumed_ms = clock_mono_ms();
    r->dirty = true;
    /* Kept while advance held what follows a finished task (waiting for nodes): place it. */
    for (size_t ti = 0; live == 0 && ti < r->def->ntasks && r->status == RUN_RUNNING; ti++) {
        const swarm_task_def *t = &r->def->tasks[ti];
        bool missing = false;
        for (size_t k = 0; k < t->nnext; k++)
            missing |= !deployed_in(r, t->next[k], r->iteration);
        if (missing && deployed_in(r, ti, r->iteration) && task_complete(r, ti, r->iteration) == 1)
            advance(m, r, ti, r->iteration);
    }
    progress(m, r,
             "resumed after a restart of the manager at iteration %u: %zu task instance%s "
             "in progress (%zu deploy%s sent again)",
             r->iteration, live, live == 1 ? "" : "s", resent, resent == 1 ? "" : "s");
    user_service_notify(m);
}

void runner_resume_all(manager *m)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_swarm_list(m->st, &rows, &n, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "runner", "cannot read the swarms to resume: %s",
                mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i].status, "RUNNING") && runner_status(m, rows[i].id, NULL, NULL, 0) < 0)
            resume_one(m, &rows[i]);
    store_swarms_free(rows, n);
    runner_keep(m);
}

int runner_node_running(manager *m, node_id node)
{
    int c = 0;
    for (size_t ri = 0; ri < m->nruns; ri++)
        for (size_t i = 0; i < m->runs[ri]->ninsts; i++)
            c += m->runs[ri]->insts[i].state == INST_DEPLOYED &&
                 node_id_equal(m->runs[ri]->insts[i].node, node);
    return c;
}

static inst *find_inst(swarm_run *r, node_id node, node_id task, uint32_t iteration)
{
    ssize_t ti = find_task(r, task);
    if (ti < 0)
        return NULL;
    for (size_t i = 0; i < r->ninsts; i++) {
        inst *in = &r->insts[i];
        if (in->task == (size_t)ti && in->iteration == iteration && node_id_equal(in->node, node))
            return in;
    }
    return NULL;
}

void runner_task_finished(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                          bool failed, const char *why)
{
    swarm_run *r = find_run(m, swarm);
    if (!r)
        return;
    inst *in = find_inst(r, node, task, iteration);
    if (!in || in->state != INST_DEPLOYED)
        return; /* unknown, or already counted (logs then COMPLETED) */
    const char *alias = r->def->tasks[in->task].alias;
    node_running_dec(m, in);
    r->dirty = true;
    double secs = (double)(clock_mono_ms() - in->started_ms) / 1000.0;
    if (failed) {
        in->state = INST_FAILED;
        if (r->status == RUN_RUNNING)
            end_run(m, r, RUN_FAILED,
                    "task '%s' failed on node %s at iteration %u%s%s (its output: "
                    "`manta_manager logs %s --task %s`)",
                    alias, in->xid, iteration, why && *why ? ": " : "", why ? why : "", r->xid,
                    alias);
        return;
    }
    in->state = INST_DONE;
    progress(m, r, "iteration %u: %s finished on %.12s (%.1f s)", iteration, alias, in->xid, secs);
    advance(m, r, in->task, iteration);
}

void runner_task_logs(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration)
{
    swarm_run *r = find_run(m, swarm);
    inst *in = r ? find_inst(r, node, task, iteration) : NULL;
    if (in && in->state == INST_DEPLOYED && !in->logs_ms) {
        in->logs_ms = clock_mono_ms();
        r->dirty = true;
    }
}

void runner_keep(manager *m)
{
    for (size_t ri = 0; ri < m->nruns; ri++)
        if (m->runs[ri]->dirty)
            persist(m, m->runs[ri]);
}

/* A resumed run waited one node timeout for the nodes of its deployed instances: the ones
 * still unheard of are gone (their instances are placed again or dropped, as for any lost
 * node). */
static void resume_settle(manager *m, swarm_run *r)
{
    r->resumed_ms = 0;
    for (size_t i = 0; i < r->ninsts && r->status == RUN_RUNNING; i++) {
        inst *in = &r->insts[i];
        mgr_node *n = mgr_node_find(m, in->node);
        if (in->state == INST_DEPLOYED && (!n || !n->connected)) {
            progress(m, r, "node %.12s was not heard from since the manager restarted", in->xid);
            runner_node_lost(m, in->node);
        }
    }
}

/* How long after its logs an instance counts as finished without its outcome: a node that
 * publishes outcomes (ours) gets 30 s for it, the reference (which never does) 2 s. */
static int64_t logs_grace_ms(manager *m, const inst *in)
{
    mgr_node *n = mgr_node_find(m, in->node);
    return n && n->reports_outcome ? 30000 : 2000;
}

void runner_tick(manager *m)
{
    int64_t now = clock_mono_ms();
    for (size_t ri = 0; ri < m->nruns; ri++) {
        swarm_run *r = m->runs[ri];
        if (r->resumed_ms && now - r->resumed_ms >= m->cfg.node_timeout * 1000)
            resume_settle(m, r);
        if (r->held && r->status == RUN_RUNNING && (!r->resumed_ms || !unheard_node(m, r))) {
            r->held = false;
            advance(m, r, r->held_ti, r->held_it);
        }
        for (size_t i = 0; i < r->ninsts && r->status == RUN_RUNNING; i++) {
            inst *in = &r->insts[i];
            if (in->state != INST_DEPLOYED || !in->logs_ms)
                continue;
            if (now >= in->logs_ms + logs_grace_ms(m, in))
                runner_task_finished(m, r->id, in->node, r->def->tasks[in->task].task_id,
                                     in->iteration, false, NULL);
        }
    }
    runner_keep(m);
}

int64_t runner_next_due(manager *m)
{
    int64_t due = 0;
    for (size_t ri = 0; ri < m->nruns; ri++) {
        swarm_run *r = m->runs[ri];
        if (r->resumed_ms)
            due = clock_earlier(due, r->resumed_ms + m->cfg.node_timeout * 1000);
        for (size_t i = 0; i < r->ninsts && r->status == RUN_RUNNING; i++) {
            inst *in = &r->insts[i];
            if (in->state != INST_DEPLOYED || !in->logs_ms)
                continue;
            due = clock_earlier(due, in->logs_ms + logs_grace_ms(m, in));
        }
    }
    return due;
}

void runner_task_running(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration)
{
    swarm_run *r = find_run(m, swarm);
    inst *in = r ? find_inst(r, node, task, iteration) : NULL;
    if (in && !in->running) {
        in->running = true;
        r->dirty = true;
    }
}

int runner_schedule(manager *m, node_id swarm, node_id caller_task, const char *alias,
                    const node_id *nodes, size_t nnodes, mt_error **err)
{
    swarm_run *r = find_run(m, swarm);
    if (!r) {
        return mt_error_set_status(err, RPC_FAILED_PRECONDITION, MT_ERR_GENERIC,
                                   "ScheduleTask names a swarm this manager does not run.");
    }
    if (r->status != RUN_RUNNING) {
        return mt_error_set_status(err, RPC_FAILED_PRECONDITION, MT_ERR_GENERIC,
                                   "The swarm has ended (%s); nothing more can be scheduled.",
                                   run_status_name(r->status));
    }
    ssize_t ti = swarm_def_find_alias(r->def, alias);
    if (ti < 0) {
        return mt_error_set_status(err, RPC_INVALID_ARGUMENT, MT_ERR_GENERIC,
                                   "The swarm has no task with alias '%.200s'.", alias);
    }
    if (nnodes == 0) {
        return mt_error_set_status(
            err, RPC_INVALID_ARGUMENT, MT_ERR_GENERIC,
            "ScheduleTask names no node: give at least one node id (or stop the swarm).");
    }
    /* The ids come from a task: sorted and made unique first (O(k log k)), so a request that
     * names one node a million times costs no more than naming it once. */
    cleanup_free node_id *ids = xmalloc(nnodes * sizeof(node_id));
    memcpy(ids, nodes, nnodes * sizeof(node_id));
    qsort(ids, nnodes, sizeof(node_id), node_id_cmp);
    size_t nuniq = 0;
    for (size_t i = 0; i < nnodes; i++)
        if (!nuniq || !node_id_equal(ids[nuniq - 1], ids[i]))
            ids[nuniq++] = ids[i];
    /* The same call again from the same task instance (retried by its node across a restart
     * of this manager, whose answer was lost) is answered as the first, without a new
     * iteration: the key is FNV-1a of the alias and the sorted node ids. */
    uint64_t key = 1469598103934665603ULL;
    for (const char *a = alias; *a; a++)
        key = (key ^ (uint8_t)*a) * 1099511628211ULL;
    for (size_t i = 0; i < nuniq; i++)
        key = ((key ^ ids[i].head) * 1099511628211ULL ^ ids[i].tail) * 1099511628211ULL;
    key |= 1; /* never 0 */
    ssize_t ci = find_task(r, caller_task);
    inst *opener = NULL;
    for (size_t i = 0; ci >= 0 && i < r->ninsts; i++)
        if (r->insts[i].task == (size_t)ci && r->insts[i].state == INST_DEPLOYED &&
            (!opener || r->insts[i].iteration > opener->iteration))
            opener = &r->insts[i];
    if (opener && opener->opened == key)
        return 0;
    for (size_t i = 0; i < nuniq; i++) {
        mgr_node *n = mgr_node_find(m, ids[i]);
        if (n && n->connected && n->ready)
            continue;
        /* Just resumed: a node of this run not heard from yet (it is at its next heartbeat)
         * still gets the deploy on its persistent session; if it is gone, the settling after
         * node_timeout treats it as lost. */
        bool ran_here = false;
        for (size_t k = 0; k < r->ninsts && !ran_here; k++)
            ran_here = node_id_equal(r->insts[k].node, ids[i]);
        if (!r->resumed_ms || !ran_here) {
            char x[NODE_XID_MAX + 1];
            node_id_to_xid(ids[i], x);
            return mt_error_set_status(err, RPC_FAILED_PRECONDITION, MT_ERR_GENERIC,
                                       "Node %s is not connected to this manager.", x);
        }
    }
    if (opener)
        opener->opened = key;
    uint32_t it = ++r->iteration;
    const char *caller = runner_task_alias(m, swarm, caller_task);
    progress(m, r, "iteration %u opened by %s: %s on %zu node%s", it, caller ? caller : "a task",
             alias, nuniq, nuniq == 1 ? "" : "s");
    for (size_t i = 0; i < nuniq; i++) {
        char x[NODE_XID_MAX + 1];
        node_id_to_xid(ids[i], x);
        deploy_on(m, r, (size_t)ti, it, ids[i], x);
    }
    save(m, r);
    return 0;
}

int runner_stop(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                mt_error **err)
{
    swarm_run *r = find_run(m, swarm);
    if (!r) {
        return mt_error_set_status(err, RPC_FAILED_PRECONDITION, MT_ERR_GENERIC,
                                   "StopSwarm names a swarm this manager does not run.");
    }
    if (r->status != RUN_RUNNING)
        return 0; /* already over: stopping again is harmless */
    const char *alias = runner_task_alias(m, swarm, task);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(node, x);
    /* The caller's own instance is finishing: count it as done, not stopped. */
    inst *in = find_inst(r, node, task, iteration);
    if (in && in->state == INST_DEPLOYED) {
        in->state = INST_DONE;
        node_running_dec(m, in);
    }
    end_run(m, r, RUN_STOPPED, "stopped by task '%s' on node %.12s at iteration %u",
            alias ? alias : "?", x, iteration);
    return 0;
}

void runner_task_error(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                       const char *content)
{
    swarm_run *r = find_run(m, swarm);
    if (!r)
        return;
    inst *in = find_inst(r, node, task, iteration);
    if (in && in->resent && content && strstr(content, "is already running for iteration")) {
        in->resent = false; /* the node had it before the restart: it carries on */
        return;
    }
    if (in && in->state == INST_DEPLOYED && in->redeploys < 3 && content &&
        strstr(content, "The node restarted before this task could start")) {
        /* The node was restarted (a crash, a SIGKILL) after it took the deploy and before the
         * task started; it kept no payload and asks for it again: the same instance, again. */
        publish_deploy(m, r, in->task, in->iteration, in->xid);
        in->redeploys++;
        in->running = false;
        r->dirty = true;
        progress(m, r,
                 "iteration %u: node %.12s restarted before %s could start; deploying "
                 "it again",
                 iteration, in->xid, r->def->tasks[in->task].alias);
        return;
    }
    runner_task_finished(m, swarm, node, task, iteration, true, content);
}

void runner_node_lost(manager *m, node_id node)
{
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(node, x);
    for (size_t ri = 0; ri < m->nruns; ri++) {
        swarm_run *r = m->runs[ri];
        if (r->status != RUN_RUNNING)
            continue;
        for (size_t i = 0; i < r->ninsts && r->status == RUN_RUNNING; i++) {
            inst *in = &r->insts[i];
            if (in->state != INST_DEPLOYED || !node_id_equal(in->node, node))
                continue;
            size_t ti = in->task;
            uint32_t it = in->iteration;
            const swarm_task_def *t = &r->def->tasks[ti];
            if (in->logs_ms) {
                /* Its logs arrived: it ran to its end before the node went (as runner_tick
                 * would decide once the grace is over). */
                runner_task_finished(m, r->id, node, t->task_id, it, false, NULL);
                continue;
            }
            in->state = INST_DROPPED;
            node_running_dec(m, in);
            r->dirty = true;
            if (t->method_all) {
                progress(m, r,
                         "iteration %u: node %.12s was lost while running %s; carrying on "
                         "with the other nodes",
                         it, x, t->alias);
                advance(m, r, ti, it);
                continue;
            }
            /* "any": place it again, away from the nodes it already used this iteration. */
            size_t nex = 0;
            cleanup_free node_id *ex = xcalloc(r->ninsts + 1, sizeof(node_id));
            for (size_t k = 0; k < r->ninsts; k++)
                if (r->insts[k].task == ti && r->insts[k].iteration == it)
                    ex[nex++] = r->insts[k].node;
            free(r->fixed[ti]);
            r->fixed[ti] = NULL;
            r->nfixed[ti] = 0;
            mt_error *err = NULL;
            progress(m, r, "iteration %u: node %.12s was lost while running %s; placing it again",
                     it, x, t->alias);
            if (place_and_deploy(m, r, ti, it, ex, nex, 1, &err) < 0) {
                end_run(m, r, RUN_FAILED,
                        "node %s was lost while running task '%s' at iteration %u, and no other "
                        "node can take it: %s",
                        x, t->alias, it, mt_error_msg(err));
                mt_error_free(&err);
            }
        }
    }
}

int runner_cancel(manager *m, const char *xid, const char *why)
{
    for (size_t i = 0; i < m->nruns; i++)
        if (!strcmp(m->runs[i]->xid, xid)) {
            end_run(m, m->runs[i], RUN_STOPPED, "%s", why);
            return 0;
        }
    return -1;
}

int runner_status(manager *m, const char *xid, uint32_t *iteration, char *detail,
                  size_t detail_size)
{
    for (size_t i = 0; i < m->nruns; i++) {
        swarm_run *r = m->runs[i];
        if (strcmp(r->xid, xid) != 0)
            continue;
        if (iteration)
            *iteration = r->iteration;
        if (detail && detail_size)
            utf8_copy(detail, detail_size, r->detail);
        return r->status;
    }
    return -1;
}

const char *runner_task_alias(manager *m, node_id swarm, node_id task)
{
    swarm_run *r = find_run(m, swarm);
    ssize_t ti = r ? find_task(r, task) : -1;
    return ti >= 0 ? r->def->tasks[ti].alias : NULL;
}

void runner_free_all(manager *m)
{
    for (size_t i = 0; i < m->nruns; i++) {
        swarm_run *r = m->runs[i];
        for (size_t t = 0; t < r->def->ntasks; t++)
            free(r->fixed[t]);
        free(r->fixed);
        free(r->nfixed);
        free(r->insts);
        swarm_def_free(r->def);
        free(r);
    }
    free(m->runs);
    m->runs = NULL;
    m->nruns = 0;
}
