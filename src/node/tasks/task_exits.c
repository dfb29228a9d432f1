/* task_exits.c - the ends of tasks: exit reports from the runtime (tasks_exited, kept a
 * while for handles no task holds yet), one inspect per report, recording how a task ended,
 * collecting its output, and removing task folders off the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "log.h"
#include "mem.h"
#include "tasks_impl.h"

void tt_begin_collect(task_table *tt, task *t)
{
    t->phase = PHASE_COLLECTING;
    tt_task_save(tt, t);
    job *j = tt_job_new(tt, t, JOB_COLLECT);
    j->hdr.swarm = t->swarm;
    j->hdr.node = tt->self;
    j->hdr.task = t->id;
    j->hdr.iteration = (uint16_t)t->iteration;
    j->hdr.circular = (uint16_t)t->circular;
    j->final_status = t->status == TASK_STOPPED ? 0
                      : t->exit_code == 0       ? TASK_COMPLETED
                                                : TASK_FAILED;
    tt_job_spawn(tt, t, j);
}

bool tt_container_goes(const task_table *tt, const task *t)
{
    return !tt->keep && (t->exit_code == 0 || tt->lim.cleanup_on_failure || tt->shutting_down);
}

void tt_begin_remove(task_table *tt, task *t)
{
    if (!t->handle)
        return;
    job *j = tt_job_new(tt, t, JOB_REMOVE);
    tt_job_spawn(tt, t, j);
}

void tt_record_exit(task_table *tt, task *t, const rt_status *st, const char *why)
{
    tt_end_access(tt, t);
    t->exit_code = st->exit_code;
    t->oom_killed = st->oom_killed;
    if (why)
        snprintf(t->reason, sizeof(t->reason), "%s", why);
    else if (st->oom_killed)
        snprintf(t->reason, sizeof(t->reason), "oom-killed");
    else if (!t->reason[0])
        snprintf(t->reason, sizeof(t->reason), "exited");
    TLOG(tt, st->exit_code ? LOG_WARNING : LOG_INFO, "Task %s finished: %s, exit code %d%s", t->key,
         t->reason, t->exit_code, t->oom_killed ? " (killed by the memory limit)" : "");
}

static void rm_tree_job(void *arg)
{
    char *path = arg;
    mt_error *e = NULL;
    if (fs_rmtree(path, false, &e) < 0)
        fprintf(stderr, "manta_node: %s\n", mt_error_msg(e));
    mt_error_free(&e);
    free(path);
}

/* Remove a task's folder off the event loop (it may hold large payloads and overlays). */
void tt_remove_dir_async(task_table *tt, const char *dir)
{
    if (__atomic_load_n(&tt->closing, __ATOMIC_ACQUIRE))
        return; /* the next run removes what it does not know */
    tt->h.spawn(tt->h.ctx, rm_tree_job, xstrdup(dir));
}

/* An exit report for a handle no task holds yet: kept (bounded ring) for the start step. */
static void keep_unmatched_exit(task_table *tt, const char *handle)
{
    size_t cap = sizeof(tt->unmatched_exits) / sizeof(char *);
    size_t i = tt->unmatched_next++ % cap;
    free(tt->unmatched_exits[i]);
    tt->unmatched_exits[i] = xstrdup(handle);
}

bool tt_take_unmatched_exit(task_table *tt, const char *handle)
{
    if (!handle)
        return false;
    bool found = false;
    for (size_t i = 0; i < sizeof(tt->unmatched_exits) / sizeof(char *); i++)
        if (tt->unmatched_exits[i] && strcmp(tt->unmatched_exits[i], handle) == 0) {
            free(tt->unmatched_exits[i]);
            tt->unmatched_exits[i] = NULL;
            found = true;
        }
    return found;
}

/* One inspect of a running task, now (an exit was reported, or the safety net is due). */
void tt_inspect_now(task_table *tt, task *t)
{
    t->exit_seen = false;
    job *j = tt_job_new(tt, t, JOB_INSPECT);
    tt_job_spawn(tt, t, j);
}
void tasks_exited(task_table *tt, const char *handle)
{
    if (!handle) { /* events may have been lost: look at every running task */
        for (size_t i = 0; i < tt->n; i++) {
            task *t = tt->v[i];
            if (t->phase == PHASE_RUNNING || t->phase == PHASE_STARTING) {
                t->exit_seen = true;
                if (t->phase == PHASE_RUNNING && !t->busy)
                    tt_inspect_now(tt, t);
            }
        }
        return;
    }
    for (size_t i = 0; i < tt->n; i++) {
        task *t = tt->v[i];
        if (!t->handle || strcmp(t->handle, handle) != 0)
            continue;
        if (t->phase != PHASE_RUNNING)
            return; /* stopping or collecting: its own step records the exit */
        t->exit_seen = true;
        if (!t->busy)
            tt_inspect_now(tt, t);
        return;
    }
    keep_unmatched_exit(tt, handle);
}
