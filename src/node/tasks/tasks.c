/* tasks.c - the life of the node's tasks (see tasks.h): the table, the queue and its slots,
 * starting, the commands (deploy, stop, stop a swarm), the periodic tick, shutdown. The blocking
 * steps are in task_jobs.c, exits and reaping in task_exits.c, persistence and recovery in
 * task_store.c; what they share in tasks_impl.h.
 */
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blake3.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "mem.h"
#include "tasks_impl.h"

#define DEFAULT_INSPECT_MS 0 /* every tick; the node sets its own (agent.c) */

/* ---- small helpers ------------------------------------------------------------------------- */
static void pending_free(struct pending_deploy *p)
{
    if (!p)
        return;
    free(p->image);
    free(p->alias);
    free(p->payload);
    free(p);
}

void tt_task_free(task *t)
{
    free(t->image);
    free(t->alias);
    free(t->name);
    free(t->handle);
    free(t->workdir);
    free(t);
}

static ssize_t find_index(const task_table *tt, node_id swarm, node_id id)
{
    for (size_t i = 0; i < tt->n; i++)
        if (node_id_equal(tt->v[i]->swarm, swarm) && node_id_equal(tt->v[i]->id, id))
            return (ssize_t)i;
    return -1;
}

ssize_t tt_index_of(const task_table *tt, const task *t)
{
    for (size_t i = 0; i < tt->n; i++)
        if (tt->v[i] == t)
            return (ssize_t)i;
    return -1;
}

const task *tasks_find(const task_table *tt, node_id swarm, node_id id)
{
    ssize_t i = find_index(tt, swarm, id);
    return i < 0 ? NULL : tt->v[i];
}

size_t tasks_count(const task_table *tt, int phase)
{
    size_t c = 0;
    for (size_t i = 0; i < tt->n; i++)
        c += !phase || tt->v[i]->phase == phase;
    return c;
}

static int slots_used(const task_table *tt)
{
    int c = 0;
    for (size_t i = 0; i < tt->n; i++) {
        int p = tt->v[i]->phase;
        c += p == PHASE_STARTING || p == PHASE_RUNNING || p == PHASE_STOPPING;
    }
    return c;
}

/* ---- the table ----------------------------------------------------------------------------- */

task_table *tasks_new(runtime *rt, node_id self, const char *state_dir, const task_limits *lim,
                      const task_env *env, const task_hooks *hooks)
{
    task_table *tt = xcalloc(1, sizeof(*tt));
    tt->rt = rt;
    tt->self = self;
    xid_of(self, tt->self_xid);
    cleanup_free char *nd = fs_join(state_dir, tt->self_xid);
    tt->dir = fs_join(nd, "tasks");
    uint8_t h[3];
    b3_hash(tt->dir, strlen(tt->dir), h, sizeof(h));
    snprintf(tt->dir_tag, sizeof(tt->dir_tag), "%02x%02x%02x", h[0], h[1], h[2]);
    snprintf(tt->owner, sizeof(tt->owner), "%s-%s", tt->self_xid, tt->dir_tag);
    tt->lim = *lim;
    tt->rpc_host = xstrdup(env->rpc_host);
    tt->rpc_port = env->rpc_port;
    tt->ndatasets = env->ndatasets;
    tt->dataset_names = xcalloc(env->ndatasets + 1, sizeof(char *));
    tt->dataset_paths = xcalloc(env->ndatasets + 1, sizeof(char *));
    for (size_t i = 0; i < env->ndatasets; i++) {
        tt->dataset_names[i] = xstrdup(env->dataset_names[i]);
        tt->dataset_paths[i] = xstrdup(env->dataset_paths[i]);
    }
    tt->datasets_rw = env->datasets_rw;
    tt->h = *hooks;
    tt->inspect_ms = DEFAULT_INSPECT_MS;
    return tt;
}

void tasks_free(task_table *tt)
{
    if (!tt)
        return;
    for (size_t i = 0; i < tt->n; i++) {
        tt_task_free(tt->v[i]);
        pending_free(tt->pending[i]);
    }
    free(tt->v);
    free(tt->pending);
    free(tt->qseq);
    for (size_t i = 0; i < tt->ndatasets; i++) {
        free(tt->dataset_names[i]);
        free(tt->dataset_paths[i]);
    }
    free(tt->dataset_names);
    free(tt->dataset_paths);
    free(tt->rpc_host);
    free(tt->dir);
    for (size_t i = 0; i < sizeof(tt->unmatched_exits) / sizeof(char *); i++)
        free(tt->unmatched_exits[i]);
    free(tt);
}

task *tt_table_add(task_table *tt, task *t)
{
    tt->v = xrealloc(tt->v, (tt->n + 1) * sizeof(task *));
    tt->pending = xrealloc(tt->pending, (tt->n + 1) * sizeof(*tt->pending));
    tt->qseq = xrealloc(tt->qseq, (tt->n + 1) * sizeof(uint64_t));
    tt->v[tt->n] = t;
    tt->pending[tt->n] = NULL;
    tt->qseq[tt->n] = ++tt->seq;
    tt->n++;
    return t;
}

void tt_table_remove(task_table *tt, task *t)
{
    ssize_t i = tt_index_of(tt, t);
    if (i < 0)
        return;
    if (tt->h.task_known)
        tt->h.task_known(tt->h.ctx, t, false);
    pending_free(tt->pending[i]);
    tt_task_free(t);
    for (size_t j = (size_t)i; j + 1 < tt->n; j++) {
        tt->v[j] = tt->v[j + 1];
        tt->pending[j] = tt->pending[j + 1];
        tt->qseq[j] = tt->qseq[j + 1];
    }
    tt->n--;
}

/* The task may no longer use the light service (Local and World): from the moment a stop is
 * asked for, or its exit is seen. Its next generation (a deploy of the next iteration) may. */
void tt_end_access(task_table *tt, task *t)
{
    t->access_ended = true;
    if (tt->h.task_known)
        tt->h.task_known(tt->h.ctx, t, false);
}

void tt_set_status(task_table *tt, task *t, int status, bool publish)
{
    t->status = status;
    if (tt->h.task_known)
        tt->h.task_known(tt->h.ctx, t, !t->access_ended);
    tt_task_save(tt, t);
    if (publish && tt->h.publish)
        tt->h.publish(tt->h.ctx, t);
}

/* ---- starting ------------------------------------------------------------------------------ */

char *tt_run_dir(const task *t)
{
    return xasprintf("%s/run-%u", t->workdir, t->generation);
}

static void start_task(task_table *tt, task *t, struct pending_deploy *p)
{
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
    xid_of(t->swarm, sx);
    xid_of(t->id, tx);
    job *j = tt_job_new(tt, t, JOB_START);
    free(t->name);
    /* The state folder's hash keeps two nodes with one alias under different homes (other
     * users) from sharing container names and cgroups. */
    t->name =
        xasprintf("manta-%.8s-%s-%.8s-%.8s-%u", tt->self_xid, tt->dir_tag, sx, tx, t->generation);
    j->name = xstrdup(t->name);
    j->image = xstrdup(t->image);
    j->taskdir = xstrdup(t->workdir);
    j->workdir = tt_run_dir(t);
    j->module_path = xasprintf("%s/module-%u.pyz", t->workdir, t->generation);
    j->payload = p->payload;
    j->payload_len = p->payload_len;
    p->payload = NULL;
    j->gpu = t->gpu;
    const char *host = tt->rpc_host;
    j->env = xcalloc(9, sizeof(char *));
    j->env[0] = xasprintf("TASK_ID=%s", tx);
    j->env[1] = xasprintf("SWARM_ID=%s", sx);
    j->env[2] = xasprintf("RPC_HOST=%s", host);
    j->env[3] = xasprintf("RPC_PORT=%d", tt->rpc_port);
    j->env[4] = xasprintf("MANTA_NODE_ID=%s", tt->self_xid);
    j->env[5] = xasprintf("MANTA_ITERATION=%u", t->iteration);
    j->env[6] = xasprintf("MANTA_CIRCULAR=%u", t->circular);
    j->argv[0] = "python";
    j->argv[1] = "/usr/src/module.pyz";
    t->phase = PHASE_STARTING;
    t->deadline_ms = 0; /* set when it runs; 1 if a stop is asked for meanwhile */
    tt_task_save(tt, t);
    TLOG(tt, LOG_INFO, "Starting task %s (iteration %u, circular %u, image %s)", t->key,
         t->iteration, t->circular, t->image);
    tt_job_spawn(tt, t, j);
}

void tt_start_queued(task_table *tt)
{
    if (tt->shutting_down)
        return;
    while (slots_used(tt) < tt->lim.max_concurrent) {
        ssize_t best = -1;
        for (size_t i = 0; i < tt->n; i++)
            if (tt->v[i]->phase == PHASE_QUEUED && !tt->v[i]->busy && tt->pending[i] &&
                (best < 0 || tt->qseq[i] < tt->qseq[best]))
                best = (ssize_t)i;
        if (best < 0)
            return;
        struct pending_deploy *p = tt->pending[best];
        tt->pending[best] = NULL;
        start_task(tt, tt->v[best], p);
        pending_free(p);
    }
}

/* The run of task i is over and a deploy of its next iteration waits: queue that one as the
 * task's next generation (its payload stays in tt->pending[i] until it starts). */
void tt_next_generation(task_table *tt, size_t i)
{
    task *t = tt->v[i];
    const struct pending_deploy *p = tt->pending[i];
    t->phase = PHASE_QUEUED;
    tt->qseq[i] = ++tt->seq;
    t->iteration = p->iteration;
    t->circular = p->circular;
    free(t->image);
    t->image = xstrdup(p->image);
    t->gpu = p->gpu;
    t->generation++;
    t->logs_uploaded = false;
    t->access_ended = false;
    t->reason[0] = '\0';
    t->exit_code = 0;
    t->oom_killed = false;
    tt_set_status(tt, t, TASK_PENDING, true);
}

/* ---- commands ------------------------------------------------------------------------------ */

void tasks_deploy(task_table *tt, const Common__Tasks__MqttTask *m)
{
    node_id swarm = {m->swarm_id ? m->swarm_id->head : 0, m->swarm_id ? m->swarm_id->tail : 0};
    node_id id = {m->task_id ? m->task_id->head : 0, m->task_id ? m->task_id->tail : 0};
    char tx[NODE_XID_MAX + 1], msg[256];
    xid_of(id, tx);
    task probe = {.swarm = swarm, .id = id, .iteration = m->iteration, .circular = m->circular};
    if (tt->shutting_down)
        return;
    if (m->gpu && !tt->lim.gpus_available) {
        if (tt->h.send_error)
            tt->h.send_error(tt->h.ctx, ERR_DOCKER, &probe,
                             "GPU support is not enabled for this container manager.");
        return;
    }
    if (m->iteration > 65535 || m->circular > 65535) {
        snprintf(msg, sizeof(msg), "Task %s: iteration %u / circular %u do not fit the log format",
                 tx, m->iteration, m->circular);
        if (tt->h.send_error)
            tt->h.send_error(tt->h.ctx, ERR_NODE, &probe, msg);
        return;
    }
    struct pending_deploy *p = xcalloc(1, sizeof(*p));
    p->iteration = m->iteration;
    p->circular = m->circular;
    p->image = xstrdup(m->image ? m->image : "");
    p->alias = xstrdup(m->alias ? m->alias : "");
    p->gpu = m->gpu;
    p->payload_len = m->payload.len;
    p->payload = xmalloc(m->payload.len ? m->payload.len : 1);
    if (m->payload.len)
        memcpy(p->payload, m->payload.data, m->payload.len);

    ssize_t i = find_index(tt, swarm, id);
    if (i >= 0) {
        task *t = tt->v[i];
        /* (a task this node lost in a restart before it started is deployed again as it was) */
        bool lost = t->phase == PHASE_DONE && !strcmp(t->reason, "lost");
        bool same = !lost && t->iteration == m->iteration && t->circular == m->circular;
        if (same || (tt->pending[i] && tt->pending[i]->iteration == m->iteration &&
                     tt->pending[i]->circular == m->circular)) {
            snprintf(msg, sizeof(msg),
                     "Task %s is already running for iteration %u and circular %u", tx,
                     m->iteration, m->circular);
            if (tt->h.send_error)
                tt->h.send_error(tt->h.ctx, ERR_NODE, t, msg);
            pending_free(p);
            return;
        }
        /* The next iteration: the NEW payload and image run (the reference reuses the old). */
        pending_free(tt->pending[i]);
        tt->pending[i] = p;
        if (t->phase == PHASE_DONE && !t->busy) {
            tt_next_generation(tt, (size_t)i);
        } else if (t->phase == PHASE_QUEUED) {
            t->iteration = p->iteration;
            t->circular = p->circular;
            free(t->image);
            t->image = xstrdup(p->image);
            tt_task_save(tt, t);
        } else if (t->phase == PHASE_RUNNING && !t->busy) {
            snprintf(t->reason, sizeof(t->reason), "replaced");
            job *j = tt_job_new(tt, t, JOB_STOP);
            j->grace_s = tt->lim.stop_grace_s;
            t->phase = PHASE_STOPPING;
            tt_job_spawn(tt, t, j);
        } /* else: it is starting/stopping/collecting; the pending deploy follows */
        TLOG(tt, LOG_INFO, "Task %s: next iteration %u queued", t->key, m->iteration);
        tt_start_queued(tt);
        return;
    }

    size_t queued = tasks_count(tt, PHASE_QUEUED);
    if (slots_used(tt) >= tt->lim.max_concurrent && (int)queued >= tt->lim.queue_limit) {
        snprintf(msg, sizeof(msg),
                 "Task %s refused: %zu tasks already wait for a slot (tasks.queue_limit)", tx,
                 queued);
        if (tt->h.send_error)
            tt->h.send_error(tt->h.ctx, ERR_NODE, &probe, msg);
        pending_free(p);
        return;
    }
    task *t = xcalloc(1, sizeof(*t));
    t->swarm = swarm;
    t->id = id;
    char sx[NODE_XID_MAX + 1];
    xid_of(swarm, sx);
    snprintf(t->key, sizeof(t->key), "%s-%s", sx, tx);
    t->iteration = m->iteration;
    t->circular = m->circular;
    t->image = xstrdup(p->image);
    t->alias = xstrdup(p->alias);
    t->gpu = p->gpu;
    t->generation = 1;
    t->workdir = fs_join(tt->dir, t->key);
    t->phase = PHASE_QUEUED;
    mt_error *e = NULL;
    if (fs_mkdir_p(t->workdir, 0700, &e) < 0) {
        snprintf(msg, sizeof(msg), "Task %s: %s", tx, mt_error_msg(e));
        mt_error_free(&e);
        if (tt->h.send_error)
            tt->h.send_error(tt->h.ctx, ERR_NODE, &probe, msg);
        tt_task_free(t);
        pending_free(p);
        return;
    }
    tt_table_add(tt, t);
    tt->pending[tt->n - 1] = p;
    TLOG(tt, LOG_INFO, "Task %s added to queue", t->key);
    tt_set_status(tt, t, TASK_PENDING, true);
    tt_start_queued(tt);
}

static void request_stop(task_table *tt, task *t, const char *why)
{
    tt_end_access(tt, t);
    snprintf(t->reason, sizeof(t->reason), "%s", why);
    if (t->phase == PHASE_QUEUED) {
        ssize_t i = tt_index_of(tt, t);
        if (i >= 0) {
            pending_free(tt->pending[i]);
            tt->pending[i] = NULL;
        }
        t->phase = PHASE_DONE;
        t->logs_uploaded = true;
        tt_set_status(tt, t, TASK_STOPPED, !strcmp(why, "stopped"));
        return;
    }
    if (t->phase == PHASE_RUNNING && !t->busy) {
        job *j = tt_job_new(tt, t, JOB_STOP);
        j->grace_s = tt->lim.stop_grace_s;
        t->phase = PHASE_STOPPING;
        tt_task_save(tt, t);
        tt_job_spawn(tt, t, j);
        return;
    }
    /* starting or busy: the tick stops it as soon as its current step is done */
    if (t->phase == PHASE_STARTING || t->phase == PHASE_RUNNING)
        t->deadline_ms = 1;
}

void tasks_stop(task_table *tt, node_id swarm, node_id id)
{
    ssize_t i = find_index(tt, swarm, id);
    if (i < 0) {
        char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1], msg[256];
        xid_of(swarm, sx);
        xid_of(id, tx);
        snprintf(msg, sizeof(msg),
                 "Unable to stop task: task %s of swarm %s is not known on this node", tx, sx);
        task probe = {.swarm = swarm, .id = id};
        if (tt->h.send_error)
            tt->h.send_error(tt->h.ctx, ERR_NODE, &probe, msg);
        return;
    }
    task *t = tt->v[i];
    TLOG(tt, LOG_INFO, "Stopping task %s", t->key);
    if (t->phase == PHASE_DONE || t->phase == PHASE_COLLECTING) {
        if (t->status != TASK_STOPPED)
            tt_set_status(tt, t, TASK_STOPPED, true);
        return;
    }
    request_stop(tt, t, "stopped");
    if (t->phase == PHASE_STOPPING && t->status != TASK_STOPPED)
        tt_set_status(tt, t, TASK_STOPPED, true);
}

void tasks_stop_swarm(task_table *tt, node_id swarm)
{
    char sx[NODE_XID_MAX + 1];
    xid_of(swarm, sx);
    size_t k = 0;
    for (size_t i = 0; i < tt->n; i++) {
        task *t = tt->v[i];
        if (!node_id_equal(t->swarm, swarm))
            continue;
        k++;
        t->remove_after = true;
        pending_free(tt->pending[i]);
        tt->pending[i] = NULL;
        if (t->phase == PHASE_DONE && !t->busy && t->handle) {
            tt_begin_remove(tt, t);
        } else if (t->phase != PHASE_DONE) {
            request_stop(tt, t, "swarm stopped");
        }
    }
    TLOG(tt, LOG_INFO, "Stopping %zu task(s) of swarm %s", k, sx);
    /* finished tasks without a container can go now */
    for (size_t i = tt->n; i-- > 0;) {
        task *t = tt->v[i];
        if (t->remove_after && t->phase == PHASE_DONE && !t->busy && !t->handle) {
            tt_remove_dir_async(tt, t->workdir);
            tt_table_remove(tt, t);
        }
    }
}

/* ---- the periodic check -------------------------------------------------------------------- */

void tasks_set_inspect_interval(task_table *tt, int64_t ms)
{
    tt->inspect_ms = ms < 0 ? 0 : ms;
}

void tasks_set_rpc_port(task_table *tt, int port)
{
    tt->rpc_port = port;
}

void tasks_close(task_table *tt)
{
    __atomic_store_n(&tt->closing, 1, __ATOMIC_RELEASE);
}

void tasks_tick(task_table *tt)
{
    int64_t now = clock_wall_ms();
    int64_t mnow = clock_mono_ms();
    bool inspect_due = mnow - tt->last_inspect_ms >= tt->inspect_ms || !tt->last_inspect_ms;
    if (inspect_due)
        tt->last_inspect_ms = mnow;
    for (size_t i = 0; i < tt->n; i++) {
        task *t = tt->v[i];
        if (t->busy)
            continue;
        if (tt->shutting_down && !tt->keep &&
            (t->phase == PHASE_RUNNING || t->phase == PHASE_QUEUED)) {
            request_stop(tt, t, "node stopped");
            continue;
        }
        if (t->phase == PHASE_RUNNING && t->deadline_ms && now >= t->deadline_ms) {
            bool asked = t->deadline_ms == 1; /* a stop requested while it was busy */
            if (!asked)
                TLOG(tt, LOG_WARNING, "Task %s exceeded tasks.task_timeout; stopping it", t->key);
            request_stop(tt, t, asked ? t->reason : "timed out");
            continue;
        }
        if (t->phase == PHASE_RUNNING) {
            if (inspect_due || t->exit_seen)
                tt_inspect_now(tt, t);
        } else if (t->phase == PHASE_COLLECTING && !t->logs_uploaded &&
                   !(tt->shutting_down && tt->keep)) {
            tt_begin_collect(tt, t);
        }
    }
    tt_start_queued(tt);
}

/* ---- shutdown ------------------------------------------------------------------------------ */

void tasks_shutdown(task_table *tt, bool keep)
{
    tt->shutting_down = true;
    tt->keep = keep;
    tasks_tick(tt);
}

bool tasks_idle(const task_table *tt)
{
    if (tt->jobs)
        return false;
    if (tt->keep)
        return true;
    for (size_t i = 0; i < tt->n; i++) {
        int p = tt->v[i]->phase;
        if (p != PHASE_DONE)
            return false;
    }
    return true;
}
