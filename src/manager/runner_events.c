/* runner_events.c - what nodes and their tasks report about a run or ask of it: task
 * instances running, finished (or their logs arrived), failed or reporting an error, the
 * loss of a node, ScheduleTask and StopSwarm; see runner.h. */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"
#include "runner_impl.h"

static inst *find_inst(swarm_run *r, node_id node, node_id task, uint32_t iteration)
{
    ssize_t ti = run_find_task(r, task);
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
    swarm_run *r = run_find(m, swarm);
    if (!r)
        return;
    inst *in = find_inst(r, node, task, iteration);
    if (!in || in->state != INST_DEPLOYED)
        return; /* unknown, or already counted (logs then COMPLETED) */
    const char *alias = r->def->tasks[in->task].alias;
    run_node_running_dec(m, in);
    r->dirty = true;
    double secs = (double)(clock_mono_ms() - in->started_ms) / 1000.0;
    if (failed) {
        in->state = INST_FAILED;
        if (r->status == RUN_RUNNING)
            run_end(m, r, RUN_FAILED,
                    "task '%s' failed on node %s at iteration %u%s%s (its output: "
                    "`manta_manager logs %s --task %s`)",
                    alias, in->xid, iteration, why && *why ? ": " : "", why ? why : "", r->xid,
                    alias);
        return;
    }
    in->state = INST_DONE;
    run_progress(m, r, "iteration %u: %s finished on %.12s (%.1f s)", iteration, alias, in->xid,
                 secs);
    run_advance(m, r, in->task, iteration);
}

void runner_task_logs(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration)
{
    swarm_run *r = run_find(m, swarm);
    inst *in = r ? find_inst(r, node, task, iteration) : NULL;
    if (in && in->state == INST_DEPLOYED && !in->logs_ms) {
        in->logs_ms = clock_mono_ms();
        r->dirty = true;
    }
}

void runner_task_running(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration)
{
    swarm_run *r = run_find(m, swarm);
    inst *in = r ? find_inst(r, node, task, iteration) : NULL;
    if (in && !in->running) {
        in->running = true;
        r->dirty = true;
    }
}

void runner_task_error(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                       const char *content)
{
    swarm_run *r = run_find(m, swarm);
    if (!r)
        return;
    inst *in = find_inst(r, node, task, iteration);
    if (in && content && strstr(content, "is already running for iteration")) {
        /* The node refused a deploy of this very instance because it has it: the deploy reached
         * it twice. MQTT delivers at least once (a broker restart between the delivery and its
         * acknowledgement sends it again), and a resumed run sends again the deploys that may
         * not have left. The instance carries on (reference-node.md 10.5). */
        log_msg(m->log, LOG_INFO, "runner",
                "swarm %s: iteration %u: %s's deploy reached node %.12s twice; it runs once",
                r->xid, iteration, r->def->tasks[in->task].alias, in->xid);
        return;
    }
    if (in && in->state == INST_DEPLOYED && in->redeploys < 3 && content &&
        strstr(content, "The node restarted before this task could start")) {
        /* The node was restarted (a crash, a SIGKILL) after it took the deploy and before the
         * task started; it kept no payload and asks for it again: the same instance, again. */
        run_publish_deploy(m, r, in->task, in->iteration, in->xid);
        in->redeploys++;
        in->running = false;
        r->dirty = true;
        run_progress(m, r,
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
            run_node_running_dec(m, in);
            r->dirty = true;
            if (t->method_all) {
                run_progress(m, r,
                             "iteration %u: node %.12s was lost while running %s; carrying on "
                             "with the other nodes",
                             it, x, t->alias);
                run_advance(m, r, ti, it);
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
            run_progress(m, r,
                         "iteration %u: node %.12s was lost while running %s; placing it again", it,
                         x, t->alias);
            if (run_place_and_deploy(m, r, ti, it, ex, nex, 1, &err) < 0) {
                run_end(m, r, RUN_FAILED,
                        "node %s was lost while running task '%s' at iteration %u, and no other "
                        "node can take it: %s",
                        x, t->alias, it, mt_error_msg(err));
                mt_error_free(&err);
            }
        }
    }
}

/* ---- calls of running tasks ----------------------------------------------------------------- */

int runner_schedule(manager *m, node_id swarm, node_id caller_task, const char *alias,
                    const node_id *nodes, size_t nnodes, mt_error **err)
{
    swarm_run *r = run_find(m, swarm);
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
    ssize_t ci = run_find_task(r, caller_task);
    inst *opener = NULL;
    for (size_t i = 0; ci >= 0 && i < r->ninsts; i++)
        if (r->insts[i].task == (size_t)ci && r->insts[i].state == INST_DEPLOYED &&
            (!opener || r->insts[i].iteration > opener->iteration))
            opener = &r->insts[i];
    if (opener && opener->opened == key)
        return 0;
    for (size_t i = 0; i < nuniq; i++) {
        mgr_node *n = mgr_node_find(m, ids[i]);
        if (n && n->connected)
            continue; /* not heard on MQTT yet (starting or restarting): its deploy is held */
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
    run_progress(m, r, "iteration %u opened by %s: %s on %zu node%s", it,
                 caller ? caller : "a task", alias, nuniq, nuniq == 1 ? "" : "s");
    for (size_t i = 0; i < nuniq; i++) {
        char x[NODE_XID_MAX + 1];
        node_id_to_xid(ids[i], x);
        run_deploy_on(m, r, (size_t)ti, it, ids[i], x);
    }
    run_save(m, r);
    return 0;
}

int runner_stop(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                mt_error **err)
{
    swarm_run *r = run_find(m, swarm);
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
        run_node_running_dec(m, in);
    }
    run_end(m, r, RUN_STOPPED, "stopped by task '%s' on node %.12s at iteration %u",
            alias ? alias : "?", x, iteration);
    return 0;
}
