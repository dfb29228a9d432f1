/* task_store.c - the task table's persistence: each task's state in
 * <state_dir>/<node xid>/tasks/<swarm>-<task>/task.json, written at every change; at start,
 * adopting what a previous run left and reaping the runtime's tasks no state names.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "tasks_impl.h"

void tt_task_save(task_table *tt, const task *t)
{
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
    xid_of(t->swarm, sx);
    xid_of(t->id, tx);
    cleanup_json json_t *o = json_object();
    json_object_set_new(o, "swarm", json_string(sx));
    json_object_set_new(o, "task", json_string(tx));
    json_object_set_new(o, "iteration", json_integer(t->iteration));
    json_object_set_new(o, "circular", json_integer(t->circular));
    json_object_set_new(o, "image", json_string(t->image ? t->image : ""));
    json_object_set_new(o, "alias", json_string(t->alias ? t->alias : ""));
    json_object_set_new(o, "gpu", json_boolean(t->gpu));
    json_object_set_new(o, "generation", json_integer(t->generation));
    json_object_set_new(o, "name", t->name ? json_string(t->name) : json_null());
    json_object_set_new(o, "handle", t->handle ? json_string(t->handle) : json_null());
    json_object_set_new(o, "status", json_integer(t->status));
    json_object_set_new(o, "phase", json_integer(t->phase));
    json_object_set_new(o, "started_ms", json_integer(t->started_ms));
    json_object_set_new(o, "deadline_ms", json_integer(t->deadline_ms));
    json_object_set_new(o, "exit_code", json_integer(t->exit_code));
    json_object_set_new(o, "oom_killed", json_boolean(t->oom_killed));
    json_object_set_new(o, "reason", json_string(t->reason));
    json_object_set_new(o, "logs_uploaded", json_boolean(t->logs_uploaded));
    cleanup_free char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    cleanup_free char *path = fs_join(t->workdir, "task.json");
    mt_error *e = NULL;
    if (fs_write_atomic(path, text, strlen(text), 0600, &e) < 0) {
        TLOG(tt, LOG_ERROR, "Cannot save the state of task %s: %s", t->key, mt_error_msg(e));
        mt_error_free(&e);
    }
}

static task *task_load(task_table *tt, const char *workdir)
{
    cleanup_free char *path = fs_join(workdir, "task.json");
    json_error_t je;
    cleanup_json json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return NULL;
    task *t = xcalloc(1, sizeof(*t));
    bool ok = node_id_parse_xid(json_string_value(json_object_get(o, "swarm")) ?: "", &t->swarm) &&
              node_id_parse_xid(json_string_value(json_object_get(o, "task")) ?: "", &t->id);
    t->iteration = (uint32_t)json_integer_value(json_object_get(o, "iteration"));
    t->circular = (uint32_t)json_integer_value(json_object_get(o, "circular"));
    t->image = xstrdup(json_string_value(json_object_get(o, "image")) ?: "");
    t->alias = xstrdup(json_string_value(json_object_get(o, "alias")) ?: "");
    t->gpu = json_is_true(json_object_get(o, "gpu"));
    t->generation = (unsigned)json_integer_value(json_object_get(o, "generation"));
    t->name = xstrdup(json_string_value(json_object_get(o, "name")));
    t->handle = xstrdup(json_string_value(json_object_get(o, "handle")));
    t->status = (int)json_integer_value(json_object_get(o, "status"));
    t->phase = (int)json_integer_value(json_object_get(o, "phase"));
    t->started_ms = json_integer_value(json_object_get(o, "started_ms"));
    t->deadline_ms = json_integer_value(json_object_get(o, "deadline_ms"));
    t->exit_code = (int)json_integer_value(json_object_get(o, "exit_code"));
    t->oom_killed = json_is_true(json_object_get(o, "oom_killed"));
    snprintf(t->reason, sizeof(t->reason), "%s",
             json_string_value(json_object_get(o, "reason")) ?: "");
    t->logs_uploaded = json_is_true(json_object_get(o, "logs_uploaded"));
    t->workdir = xstrdup(workdir);
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
    xid_of(t->swarm, sx);
    xid_of(t->id, tx);
    snprintf(t->key, sizeof(t->key), "%s-%s", sx, tx);
    if (!ok) {
        tt_task_free(t);
        return NULL;
    }
    return t;
}
/* ---- recovery ------------------------------------------------------------------------------ */

struct reclaim {
    runtime *rt;
    char *workdir;
};

static struct reclaim *reclaim_new(task_table *tt, const task *t)
{
    struct reclaim *r = xcalloc(1, sizeof(*r));
    r->rt = tt->rt;
    r->workdir = tt_run_dir(t);
    return r;
}

static void reclaim_job(void *arg)
{
    struct reclaim *r = arg;
    mt_error *e = NULL;
    if (r->rt->ops->reclaim(r->rt, r->workdir, &e) < 0)
        fprintf(stderr, "manta_node: %s\n", mt_error_msg(e));
    mt_error_free(&e);
    free(r->workdir);
    free(r);
}

void tasks_recover(task_table *tt)
{
    mt_error *e = NULL;
    if (fs_mkdir_p(tt->dir, 0700, &e) < 0) {
        TLOG(tt, LOG_ERROR, "Cannot use the task state folder: %s", mt_error_msg(e));
        mt_error_free(&e);
        return;
    }
    cleanup_dir DIR *d = opendir(tt->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        const char *line = de->d_name;
        if (line[0] == '.')
            continue;
        cleanup_free char *wd = fs_join(tt->dir, line);
        task *t = task_load(tt, wd);
        if (!t)
            continue;
        t->access_ended = t->phase == PHASE_DONE || t->phase == PHASE_COLLECTING;
        tt_table_add(tt, t);
        if (tt->h.task_known)
            tt->h.task_known(tt->h.ctx, t, !t->access_ended);
        if (t->phase == PHASE_QUEUED || (t->phase == PHASE_STARTING && !t->handle)) {
            /* its payload died with the old process: the manager must deploy it again; what
             * a create cut short left of its run is undone off the loop */
            if (t->phase == PHASE_STARTING && tt->rt->ops->reclaim)
                tt->h.spawn(tt->h.ctx, reclaim_job, reclaim_new(tt, t));
            snprintf(t->reason, sizeof(t->reason), "lost");
            t->phase = PHASE_DONE;
            t->logs_uploaded = true;
            tt_set_status(tt, t, TASK_FAILED, false);
            if (tt->h.send_error)
                tt->h.send_error(
                    tt->h.ctx, ERR_NODE, t,
                    "The node restarted before this task could start; deploy it again");
            continue;
        }
        if (t->phase == PHASE_STARTING || t->phase == PHASE_STOPPING)
            t->phase = PHASE_RUNNING; /* find out on the next tick */
        if (t->phase == PHASE_RUNNING && t->handle && tt->rt->ops->watch)
            tt->rt->ops->watch(tt->rt, t->handle); /* its exit is an event too */
        if (t->phase == PHASE_DONE && tt_container_goes(tt, t))
            tt_begin_remove(tt, t); /* the old process died between keeping and removing */
        TLOG(tt, LOG_INFO, "Adopted task %s (%s)", t->key,
             t->phase == PHASE_RUNNING ? "running"
             : t->phase == PHASE_DONE  ? "done"
                                       : "finished");
        tt_task_save(tt, t);
    }
    /* reap what this node started but does not know */
    char **handles = NULL;
    if (tt->rt->ops->list && tt->rt->ops->list(tt->rt, tt->owner, &handles, &e) == 0) {
        for (char **h = handles; h && *h; h++) {
            bool known = false;
            for (size_t i = 0; i < tt->n; i++)
                known |= tt->v[i]->handle && strcmp(tt->v[i]->handle, *h) == 0;
            if (!known) {
                TLOG(tt, LOG_WARNING, "Removing orphaned task %s", *h);
                if (tt->rt->ops->remove(tt->rt, *h, &e) < 0)
                    mt_error_free(&e);
            }
        }
        mem_free_strv(&handles);
    } else {
        mt_error_free(&e);
    }
    tasks_tick(tt);
}
