/* runner.c - swarm runs: starting them, placing and deploying tasks, advancing along the
 * edges from iteration to iteration, ending them, the runner's timers and what the manager
 * asks about runs. What nodes and tasks report or ask is in runner_events.c, the runs' state in
 * the store and their resumption after a restart in runner_resume.c (runner_impl.h: what the
 * three share). */
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
#include "runner_impl.h"
#include "user_service.h"
#include "utf8.h"

const char *run_status_name(int status)
{
    static const char *const names[] = {"RUNNING", "COMPLETED", "STOPPED", "FAILED"};
    return status >= 0 && status <= RUN_FAILED ? names[status] : "UNKNOWN";
}

void run_progress(manager *m, swarm_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *line = xvasprintf(fmt, ap);
    va_end(ap);
    log_info(m->log, "runner", "swarm %s: %s", r->xid, line);
    if (m->progress)
        m->progress(m->progress_ctx, r->xid, line);
}

swarm_run *run_find(manager *m, node_id swarm)
{
    for (size_t i = 0; i < m->nruns; i++)
        if (node_id_equal(m->runs[i]->id, swarm))
            return m->runs[i];
    return NULL;
}

int64_t runner_current(manager *m, node_id swarm, runner_inst_fn fn, void *ctx)
{
    static const char *const states[] = {"DEPLOYED", "DONE", "FAILED", "DROPPED", "STOPPED"};
    swarm_run *r = run_find(m, swarm);
    if (!r)
        return -1;
    for (size_t i = 0; i < r->ninsts; i++) {
        const inst *in = &r->insts[i];
        if (in->iteration != r->iteration)
            continue;
        const char *state = in->state == INST_DEPLOYED && in->running     ? "RUNNING"
                            : in->state >= 0 && in->state <= INST_STOPPED ? states[in->state]
                                                                          : "UNKNOWN";
        fn(ctx, r->def->tasks[in->task].alias, in->xid, state);
    }
    return r->iteration;
}

ssize_t run_find_task(const swarm_run *r, node_id task)
{
    for (size_t i = 0; i < r->def->ntasks; i++)
        if (node_id_equal(r->def->tasks[i].task_id, task))
            return (ssize_t)i;
    return -1;
}

void run_save(manager *m, swarm_run *r)
{
    run_persist(m, r);
    mt_error *err = NULL;
    if (store_swarm_update(m->st, r->xid, run_status_name(r->status), r->detail, r->iteration,
                           clock_wall_ms(), &err) < 0) {
        log_msg(m->log, LOG_ERROR, "runner", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    user_service_notify(m);
    mgr_wake(m);
}

void run_node_running_dec(manager *m, const inst *in)
{
    mgr_node *n = mgr_node_find(m, in->node);
    if (n && n->running)
        n->running--;
}

static int cmp_inst_node(const void *a, const void *b)
{
    const inst *x = *(const inst *const *)a, *y = *(const inst *const *)b;
    if (x->node.head != y->node.head)
        return x->node.head < y->node.head ? -1 : 1;
    return x->node.tail < y->node.tail ? -1 : x->node.tail > y->node.tail;
}

/* Send stop_swarm to every node that ran something of this run (once each: a long run has
 * an instance per node and iteration, so the nodes are sorted, not compared pairwise); end
 * every live instance. */
static void stop_everywhere(manager *m, swarm_run *r)
{
    Common__System__PairId pid = COMMON__SYSTEM__PAIR_ID__INIT;
    pid.head = r->id.head;
    pid.tail = r->id.tail;
    size_t len = common__system__pair_id__get_packed_size(&pid);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    common__system__pair_id__pack(&pid, buf);
    cleanup_free const inst **by_node = xcalloc(r->ninsts + 1, sizeof(*by_node));
    for (size_t i = 0; i < r->ninsts; i++)
        by_node[i] = &r->insts[i];
    qsort(by_node, r->ninsts, sizeof(*by_node), cmp_inst_node);
    for (size_t i = 0; i < r->ninsts; i++)
        if (i == 0 || !node_id_equal(by_node[i - 1]->node, by_node[i]->node))
            mgr_publish(m, by_node[i]->xid, "stop_swarm", buf, len);
    for (size_t i = 0; i < r->ninsts; i++) {
        if (r->insts[i].state == INST_DEPLOYED) {
            r->insts[i].state = INST_STOPPED;
            run_node_running_dec(m, &r->insts[i]);
        }
    }
}

void run_end(manager *m, swarm_run *r, int status, const char *fmt, ...)
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
    run_progress(m, r, "swarm %s: %s", run_status_name(status), r->detail);
    run_save(m, r);
}

/* ---- deploying and advancing ---------------------------------------------------------------- */

/* Publish deploy_task of task ti for `iteration` to node xid (no bookkeeping: deploy_on). */
void run_publish_deploy(manager *m, const swarm_run *r, size_t ti, uint32_t iteration,
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
void run_deploy_on(manager *m, swarm_run *r, size_t ti, uint32_t iteration, node_id id,
                   const char *xid)
{
    run_publish_deploy(m, r, ti, iteration, xid);
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
int run_place_and_deploy(manager *m, swarm_run *r, size_t ti, uint32_t iteration,
                         const node_id *exclude, size_t nexclude, size_t want_max, mt_error **err)
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
        /* registered but not heard on MQTT yet (starting, or restarting: a node killed and
         * started again): placed all the same, its commands held until it is (mgr_publish) */
        pn[n].connected = nd->connected;
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
        run_deploy_on(m, r, ti, iteration, map[chosen[i]]->id, map[chosen[i]]->xid);
        size_t l = strlen(names);
        snprintf(names + l, sizeof(names) - l, "%s%.12s", i ? ", " : "", map[chosen[i]]->xid);
    }
    run_progress(m, r, "iteration %u: %s deployed on %zu node%s (%s)", iteration, t->alias, nchosen,
                 nchosen == 1 ? "" : "s", names);
    return 0;
}

bool run_deployed_in(const swarm_run *r, size_t ti, uint32_t iteration)
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
    if (run_deployed_in(r, ti, iteration))
        return true;
    const swarm_task_def *t = &r->def->tasks[ti];
    for (size_t p = 0; p < t->nprev; p++)
        if (in_iteration(r, t->prev[p], iteration))
            return true;
    return false;
}

/* 1 = every instance of (ti, iteration) is over with at least one done, 0 = not yet, -1 =
 * over with none done. */
int run_task_complete(const swarm_run *r, size_t ti, uint32_t iteration)
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
    run_end(m, r, RUN_COMPLETED, "the task graph finished at iteration %u", r->iteration);
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

void run_advance(manager *m, swarm_run *r, size_t ti, uint32_t iteration)
{
    if (r->status != RUN_RUNNING)
        return;
    int c = run_task_complete(r, ti, iteration);
    if (c == 0)
        return;
    const swarm_task_def *t = &r->def->tasks[ti];
    if (c < 0) {
        run_end(m, r, RUN_FAILED, "no instance of task '%s' finished at iteration %u", t->alias,
                iteration);
        return;
    }
    /* Just resumed: the nodes are known again at their next heartbeat. Placing now would leave
     * out of a `method = all` task every node not heard from yet: wait for them (runner_tick),
     * at most until the run settles (node_timeout). */
    if (r->resumed_ms && (!r->held || (r->held_ti == ti && r->held_it == iteration)) &&
        unheard_node(m, r)) {
        if (!r->held)
            run_progress(m, r,
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
    run_progress(m, r, "iteration %u: %s finished everywhere", iteration, t->alias);
    for (size_t k = 0; k < t->nnext; k++) {
        size_t j = t->next[k];
        if (run_deployed_in(r, j, iteration))
            continue;
        const swarm_task_def *tj = &r->def->tasks[j];
        bool ready = true;
        for (size_t p = 0; p < tj->nprev; p++)
            if (in_iteration(r, tj->prev[p], iteration) &&
                run_task_complete(r, tj->prev[p], iteration) != 1)
                ready = false;
        if (!ready)
            continue;
        mt_error *err = NULL;
        if (run_place_and_deploy(m, r, j, iteration, NULL, 0, 0, &err) < 0) {
            run_end(m, r, RUN_FAILED, "%s", mt_error_msg(err));
            mt_error_free(&err);
            return;
        }
    }
    check_complete(m, r);
}

/* ---- starting runs -------------------------------------------------------------------------- */

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
            run_end(m, r, RUN_FAILED, "%s", mt_error_msg(*err));
            return -1;
        }
    run_progress(m, r, "swarm '%s' started: %zu tasks, %zu globals", def->name, def->ntasks,
                 def->nglobals);
    run_save(m, r);
    for (size_t i = 0; i < def->ntasks; i++) {
        if (def->tasks[i].nprev)
            continue;
        if (run_place_and_deploy(m, r, i, 0, NULL, 0, 0, err) < 0) {
            mt_error_wrap(err, "The swarm cannot start");
            run_end(m, r, RUN_FAILED, "%s", mt_error_msg(*err));
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

/* ---- timers and questions ------------------------------------------------------------------- */

int runner_node_running(manager *m, node_id node)
{
    int c = 0;
    for (size_t ri = 0; ri < m->nruns; ri++)
        for (size_t i = 0; i < m->runs[ri]->ninsts; i++)
            c += m->runs[ri]->insts[i].state == INST_DEPLOYED &&
                 node_id_equal(m->runs[ri]->insts[i].node, node);
    return c;
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
            run_resume_settle(m, r);
        if (r->held && r->status == RUN_RUNNING && (!r->resumed_ms || !unheard_node(m, r))) {
            r->held = false;
            run_advance(m, r, r->held_ti, r->held_it);
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

int runner_cancel(manager *m, const char *xid, const char *why)
{
    for (size_t i = 0; i < m->nruns; i++)
        if (!strcmp(m->runs[i]->xid, xid)) {
            run_end(m, m->runs[i], RUN_STOPPED, "%s", why);
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
    swarm_run *r = run_find(m, swarm);
    ssize_t ti = r ? run_find_task(r, task) : -1;
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
        free(r->pbuf);
        swarm_def_free(r->def);
        free(r);
    }
    free(m->runs);
    m->runs = NULL;
    m->nruns = 0;
}
