/* task_jobs.c - the task table's blocking steps (start: payload, pull, create, start;
 * inspect; stop; collect: logs kept for the manager; remove) run on the node's worker pool,
 * and their outcomes applied on the event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "mem.h"
#include "tasklog.h"
#include "tasks_impl.h"

static void job_free(job *j)
{
    free(j->handle);
    free(j->name);
    free(j->image);
    free(j->taskdir);
    free(j->workdir);
    free(j->module_path);
    free(j->payload);
    if (j->env)
        for (char **e = j->env; *e; e++)
            free(*e);
    free(j->env);
    free(j->new_handle);
    free(j);
}

static void job_error(job *j, int id, mt_error **e, const char *what)
{
    j->rc = -1;
    j->error_id = id;
    snprintf(j->msg, sizeof(j->msg), "%s: %.440s", what, mt_error_msg(*e));
    mt_error_free(e);
}

static void job_done(void *arg);

static void job_run(void *arg)
{
    job *j = arg;
    task_table *tt = j->tt;
    runtime *rt = tt->rt;
    mt_error *e = NULL;
    j->rc = 0;
    if (__atomic_load_n(&tt->closing, __ATOMIC_ACQUIRE)) {
        j->rc = -1;
        j->cancelled = true;
        tt->h.post(tt->h.ctx, job_done, j);
        return;
    }
    switch (j->kind) {
    case JOB_START: {
        if (fs_mkdir_p(j->taskdir, 0700, &e) < 0 ||
            fs_write_atomic(j->module_path, j->payload, j->payload_len, 0644, &e) < 0) {
            job_error(j, ERR_NODE, &e, "Cannot write the task's module");
            break;
        }
        task_spec s = {
            .name = j->name,
            .node_xid = tt->owner,
            .image = j->image,
            .module_path = j->module_path,
            .env = (const char *const *)j->env,
            .argv = (const char *const *)j->argv,
            .ndatasets = tt->ndatasets,
            .dataset_names = (const char *const *)tt->dataset_names,
            .dataset_paths = (const char *const *)tt->dataset_paths,
            .datasets_rw = tt->datasets_rw,
            .memory_bytes = tt->lim.memory_bytes,
            .cpus = tt->lim.cpus,
            .pids_limit = tt->lim.pids_limit,
            .gpu = j->gpu,
            .workdir = j->workdir,
            .log_limit = tt->lim.log_limit,
            .pull_timeout = tt->lim.pull_timeout,
        };
        int id = strcmp(rt->ops->name, "docker") == 0 ? ERR_DOCKER : ERR_NODE;
        if (rt->ops->prepare && rt->ops->prepare(rt, &s, &e) < 0) {
            job_error(j, id, &e, "Cannot prepare the task's image");
            break;
        }
        if (rt->ops->create(rt, &s, &j->new_handle, &e) < 0) {
            job_error(j, id, &e, "Cannot create the task");
            break;
        }
        if (rt->ops->start(rt, j->new_handle, &e) < 0) {
            job_error(j, id, &e, "Cannot start the task");
            break;
        }
        break;
    }
    case JOB_INSPECT:
        if (rt->ops->inspect(rt, j->handle, &j->st, &e) < 0)
            job_error(j, ERR_NODE, &e, "Cannot inspect the task");
        break;
    case JOB_STOP:
        if (rt->ops->stop(rt, j->handle, j->grace_s, &e) < 0)
            job_error(j, ERR_NODE, &e, "Cannot stop the task");
        if (rt->ops->inspect(rt, j->handle, &j->st, &e) < 0)
            mt_error_free(&e);
        break;
    case JOB_COLLECT: {
        uint8_t *logs = NULL;
        size_t len = 0;
        if (j->handle && rt->ops->logs(rt, j->handle, tt->lim.log_limit, &logs, &len, &e) < 0) {
            /* logs of a task the runtime lost: upload what we can say */
            free(logs);
            logs = (uint8_t *)xasprintf("[manta-node] the task's output is not available: %s\n",
                                        mt_error_msg(e));
            len = strlen((char *)logs);
            mt_error_free(&e);
        }
        size_t blen = 0;
        uint8_t *blob = tasklog_encode(&j->hdr, logs, len, &blen, &e);
        free(logs);
        if (!blob) {
            job_error(j, ERR_NODE, &e, "Cannot encode the task's logs");
            break;
        }
        mt_error *ke = NULL;
        if (tt->h.keep_output(tt->h.ctx, blob, blen, &j->hdr, j->final_status, &ke) < 0) {
            j->rc = -1;
            j->error_id = 0; /* retried on the next tick, not reported */
            snprintf(j->msg, sizeof(j->msg), "%.500s", mt_error_msg(ke));
            mt_error_free(&ke);
        }
        free(blob);
        break;
    }
    case JOB_REMOVE:
        if (j->handle && rt->ops->remove(rt, j->handle, &e) < 0)
            job_error(j, ERR_NODE, &e, "Cannot remove the task");
        break;
    }
    tt->h.post(tt->h.ctx, job_done, j);
}

job *tt_job_new(task_table *tt, task *t, enum job_kind kind)
{
    job *j = xcalloc(1, sizeof(*j));
    j->tt = tt;
    j->kind = kind;
    snprintf(j->key, sizeof(j->key), "%s", t->key);
    j->generation = t->generation;
    j->handle = xstrdup(t->handle);
    return j;
}

void tt_job_spawn(task_table *tt, task *t, job *j)
{
    if (__atomic_load_n(&tt->closing, __ATOMIC_ACQUIRE)) { /* the node is going away */
        job_free(j);
        return;
    }
    t->busy = true;
    tt->jobs++;
    tt->h.spawn(tt->h.ctx, job_run, j);
}
/* ---- outcomes, on the loop ----------------------------------------------------------------- */

static void job_done(void *arg)
{
    job *j = arg;
    task_table *tt = j->tt;
    tt->jobs--;
    task *t = NULL;
    for (size_t i = 0; i < tt->n; i++)
        if (strcmp(tt->v[i]->key, j->key) == 0)
            t = tt->v[i];
    if (j->cancelled) { /* never ran: the node is stopping; the next run adopts the task */
        if (t)
            t->busy = false;
        job_free(j);
        return;
    }
    if (!t || t->generation != j->generation) {    /* forgotten or replaced meanwhile */
        if (j->kind == JOB_START && j->new_handle) /* do not leave it behind */
            TLOG(tt, LOG_WARNING, "A replaced task %s had started; it will be reaped", j->key);
        if (t)
            t->busy = false;
        job_free(j);
        return;
    }
    t->busy = false;
    switch (j->kind) {
    case JOB_START:
        if (j->new_handle) {
            free(t->handle);
            t->handle = xstrdup(j->new_handle);
        }
        if (j->rc < 0 && tt->shutting_down && !tt->keep) {
            /* the node is stopping (its pull was cancelled, or the start failed meanwhile):
             * the task was stopped, not failed */
            TLOG(tt, LOG_INFO, "Task %s not started: the node is stopping (%s)", t->key, j->msg);
            tt_end_access(tt, t);
            snprintf(t->reason, sizeof(t->reason), "node stopped");
            t->exit_code = -1;
            t->logs_uploaded = true;
            t->phase = PHASE_DONE;
            tt_set_status(tt, t, TASK_STOPPED, false);
            tt_begin_remove(tt, t);
            break;
        }
        if (j->rc < 0) {
            tt_end_access(tt, t);
            snprintf(t->reason, sizeof(t->reason), "failed to start");
            t->exit_code = -1;
            t->logs_uploaded = true; /* nothing ran: no logs */
            t->phase = PHASE_DONE;
            tt_set_status(tt, t, TASK_FAILED, false);
            if (tt->h.send_error)
                tt->h.send_error(tt->h.ctx, j->error_id, t, j->msg);
            tt_begin_remove(tt, t);
            break;
        }
        t->started_ms = clock_wall_ms();
        /* a stop asked for while it was starting (deadline 1) is kept: the next tick stops it */
        if (t->deadline_ms != 1)
            t->deadline_ms = tt->lim.timeout_s ? t->started_ms + tt->lim.timeout_s * 1000 : 0;
        t->phase = PHASE_RUNNING;
        t->exit_seen |= tt_take_unmatched_exit(tt, t->handle); /* reported before we knew it */
        tt_set_status(tt, t, TASK_RUNNING, true);
        TLOG(tt, LOG_INFO, "Task %s running", t->key);
        break;
    case JOB_INSPECT:
        if (j->rc < 0) {
            TLOG(tt, LOG_WARNING, "Task %s: %s", t->key, j->msg);
            break;
        }
        if (j->st.state == RT_EXITED) {
            tt_record_exit(tt, t, &j->st, NULL);
            tt_begin_collect(tt, t);
        } else if (j->st.state == RT_GONE) {
            rt_status st = {.state = RT_GONE, .exit_code = -1};
            tt_record_exit(tt, t, &st, "lost");
            if (tt->h.send_error)
                tt->h.send_error(tt->h.ctx, ERR_NODE, t,
                                 "The task's container disappeared before it finished");
            tt_begin_collect(tt, t);
        }
        break;
    case JOB_STOP:
        if (j->rc < 0)
            TLOG(tt, LOG_WARNING, "Task %s: %s", t->key, j->msg);
        tt_record_exit(tt, t, &j->st, NULL);
        if (t->status != TASK_STOPPED && !strcmp(t->reason, "stopped"))
            tt_set_status(tt, t, TASK_STOPPED, true);
        tt_begin_collect(tt, t);
        break;
    case JOB_COLLECT:
        if (j->rc < 0) {
            TLOG(tt, LOG_WARNING, "Task %s: %s; retrying", t->key, j->msg);
            break; /* the next tick tries again */
        }
        t->logs_uploaded = true;
        t->phase = PHASE_DONE;
        /* The outcome is published by the outbox once the logs are delivered (the reference's
         * only completion signal comes first), so a manager that knows COMPLETED/FAILED can
         * tell success from failure; the reference cannot. */
        if (t->status != TASK_STOPPED)
            tt_set_status(tt, t, t->exit_code == 0 ? TASK_COMPLETED : TASK_FAILED, false);
        else
            tt_task_save(tt, t);
        TLOG(tt, LOG_INFO, "Task %s: output kept for the manager", t->key);
        /* only now that the state says so: removed earlier, a node killed in between would
         * collect again from a container that is gone (the task's logs stored twice); a
         * stopped swarm's containers go whatever their outcome, as in tasks_stop_swarm */
        if (tt_container_goes(tt, t) || t->remove_after)
            tt_begin_remove(tt, t);
        break;
    case JOB_REMOVE:
        if (j->rc < 0)
            TLOG(tt, LOG_WARNING, "Task %s: %s", t->key, j->msg);
        else {
            free(t->handle);
            t->handle = NULL;
            tt_task_save(tt, t);
        }
        break;
    }
    job_free(j);
    if (t->phase == PHASE_RUNNING && !t->busy && t->exit_seen)
        tt_inspect_now(tt, t);
    if (t->phase == PHASE_DONE && !t->busy) {
        ssize_t i = tt_index_of(tt, t);
        if (t->remove_after && !t->handle) {
            cleanup_free char *wd = xstrdup(t->workdir);
            tt_table_remove(tt, t);
            tt_remove_dir_async(tt, wd);       /* state, payloads and run folders go with it */
        } else if (i >= 0 && tt->pending[i]) { /* a re-deploy was waiting for this run */
            tt_next_generation(tt, (size_t)i);
        }
    }
    tt_start_queued(tt);
}
