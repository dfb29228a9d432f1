/* tasks.c - the life of the node's tasks; see tasks.h. */
#include "tasks.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blake3.h"
#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "tasklog.h"

#define ERR_DOCKER 18
#define ERR_NODE   19

struct pending_deploy {
    uint32_t iteration, circular;
    char *image, *alias;
    bool gpu;
    uint8_t *payload;
    size_t payload_len;
};

struct task_table {
    runtime *rt;
    node_id self;
    char self_xid[NODE_XID_MAX + 1];
    char *dir;       /* <state_dir>/<node xid>/tasks */
    char dir_tag[8]; /* 6 hex digits of BLAKE3(dir) */
    char owner[48];  /* "<node xid>-<dir_tag>": what the drivers label and list by */
    task_limits lim;
    /* environment (copied) */
    char *rpc_host;
    int rpc_port;
    size_t ndatasets;
    char **dataset_names, **dataset_paths;
    bool datasets_rw;
    task_hooks h;
    /* the table */
    task **v;
    struct pending_deploy **pending; /* parallel to v: a deploy waiting for the slot/old run */
    uint64_t *qseq;                  /* parallel to v: queue order */
    size_t n;
    uint64_t seq;
    int jobs; /* blocking steps in flight */
    bool shutting_down, keep;
    int closing;               /* tasks_close: read by workers (atomic) */
    int64_t inspect_ms;        /* the safety-net inspection interval */
    int64_t last_inspect_ms;   /* monotonic */
    char *unmatched_exits[16]; /* recent exit reports no task held the handle of (yet) */
    size_t unmatched_next;
};

#define DEFAULT_INSPECT_MS 0 /* every tick; the node sets its own (agent.c) */

/* ---- small helpers ------------------------------------------------------------------------- */

#define TLOG(tt, lvl, ...) ((tt)->h.log ? (tt)->h.log((tt)->h.ctx, (lvl), __VA_ARGS__) : (void)0)

static void xid_of(node_id id, char out[NODE_XID_MAX + 1])
{
    node_id_to_xid(id, out);
}

static void pending_free(struct pending_deploy *p)
{
    if (!p)
        return;
    free(p->image);
    free(p->alias);
    free(p->payload);
    free(p);
}

static void task_free(task *t)
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

static ssize_t index_of(const task_table *tt, const task *t)
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

/* ---- persistence --------------------------------------------------------------------------- */

static void task_save(task_table *tt, const task *t)
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
        task_free(t);
        return NULL;
    }
    return t;
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
        task_free(tt->v[i]);
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

static task *table_add(task_table *tt, task *t)
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

static void table_remove(task_table *tt, task *t)
{
    ssize_t i = index_of(tt, t);
    if (i < 0)
        return;
    if (tt->h.task_known)
        tt->h.task_known(tt->h.ctx, t, false);
    pending_free(tt->pending[i]);
    task_free(t);
    for (size_t j = (size_t)i; j + 1 < tt->n; j++) {
        tt->v[j] = tt->v[j + 1];
        tt->pending[j] = tt->pending[j + 1];
        tt->qseq[j] = tt->qseq[j + 1];
    }
    tt->n--;
}

/* The task may no longer use the light service (Local and World): from the moment a stop is
 * asked for, or its exit is seen. Its next generation (a deploy of the next iteration) may. */
static void end_access(task_table *tt, task *t)
{
    t->access_ended = true;
    if (tt->h.task_known)
        tt->h.task_known(tt->h.ctx, t, false);
}

static void set_status(task_table *tt, task *t, int status, bool publish)
{
    t->status = status;
    if (tt->h.task_known)
        tt->h.task_known(tt->h.ctx, t, !t->access_ended);
    task_save(tt, t);
    if (publish && tt->h.publish)
        tt->h.publish(tt->h.ctx, t);
}

/* ---- jobs: blocking steps on the worker pool ----------------------------------------------- */

enum job_kind { JOB_START = 1, JOB_INSPECT, JOB_STOP, JOB_COLLECT, JOB_REMOVE };

typedef struct job {
    task_table *tt;
    enum job_kind kind;
    char key[80];
    unsigned generation;
    /* inputs (owned copies) */
    char *handle;
    char *name, *image, *taskdir, *workdir, *module_path;
    uint8_t *payload;
    size_t payload_len;
    char **env;
    char *argv[3];
    bool gpu;
    int grace_s;
    tasklog_header hdr;
    int final_status; /* the outcome to publish once the logs are delivered (0: none) */
    bool remove_after;
    /* outputs */
    int rc;
    bool cancelled; /* not run: the table was closing */
    char *new_handle;
    rt_status st;
    int error_id;
    char msg[512];
} job;

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
        if (j->rc == 0 && j->remove_after && j->handle && rt->ops->remove(rt, j->handle, &e) < 0)
            mt_error_free(&e); /* logged by the caller's next steps; not fatal */
        break;
    }
    case JOB_REMOVE:
        if (j->handle && rt->ops->remove(rt, j->handle, &e) < 0)
            job_error(j, ERR_NODE, &e, "Cannot remove the task");
        break;
    }
    tt->h.post(tt->h.ctx, job_done, j);
}

static job *job_new(task_table *tt, task *t, enum job_kind kind)
{
    job *j = xcalloc(1, sizeof(*j));
    j->tt = tt;
    j->kind = kind;
    snprintf(j->key, sizeof(j->key), "%s", t->key);
    j->generation = t->generation;
    j->handle = xstrdup(t->handle);
    return j;
}

static void job_spawn(task_table *tt, task *t, job *j)
{
    if (__atomic_load_n(&tt->closing, __ATOMIC_ACQUIRE)) { /* the node is going away */
        job_free(j);
        return;
    }
    t->busy = true;
    tt->jobs++;
    tt->h.spawn(tt->h.ctx, job_run, j);
}

/* ---- starting ------------------------------------------------------------------------------ */

static void start_task(task_table *tt, task *t, struct pending_deploy *p)
{
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
    xid_of(t->swarm, sx);
    xid_of(t->id, tx);
    job *j = job_new(tt, t, JOB_START);
    free(t->name);
    /* The state folder's hash keeps two nodes with one alias under different homes (other
     * users) from sharing container names and cgroups. */
    t->name =
        xasprintf("manta-%.8s-%s-%.8s-%.8s-%u", tt->self_xid, tt->dir_tag, sx, tx, t->generation);
    j->name = xstrdup(t->name);
    j->image = xstrdup(t->image);
    j->taskdir = xstrdup(t->workdir);
    j->workdir = xasprintf("%s/run-%u", t->workdir, t->generation); /* the runtime's own */
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
    task_save(tt, t);
    TLOG(tt, LOG_INFO, "Starting task %s (iteration %u, circular %u, image %s)", t->key,
         t->iteration, t->circular, t->image);
    job_spawn(tt, t, j);
}

static void start_queued(task_table *tt)
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

/* ---- finishing ----------------------------------------------------------------------------- */

static void begin_collect(task_table *tt, task *t)
{
    t->phase = PHASE_COLLECTING;
    task_save(tt, t);
    job *j = job_new(tt, t, JOB_COLLECT);
    j->hdr.swarm = t->swarm;
    j->hdr.node = tt->self;
    j->hdr.task = t->id;
    j->hdr.iteration = (uint16_t)t->iteration;
    j->hdr.circular = (uint16_t)t->circular;
    j->final_status = t->status == TASK_STOPPED ? 0
                      : t->exit_code == 0       ? TASK_COMPLETED
                                                : TASK_FAILED;
    j->remove_after =
        !(tt->keep) && (t->exit_code == 0 || tt->lim.cleanup_on_failure || tt->shutting_down);
    job_spawn(tt, t, j);
}

static void record_exit(task_table *tt, task *t, const rt_status *st, const char *why)
{
    end_access(tt, t);
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
static void remove_dir_async(task_table *tt, const char *dir)
{
    if (__atomic_load_n(&tt->closing, __ATOMIC_ACQUIRE))
        return; /* the next run removes what it does not know */
    tt->h.spawn(tt->h.ctx, rm_tree_job, xstrdup(dir));
}

/* The run of task i is over and a deploy of its next iteration waits: queue that one as the
 * task's next generation (its payload stays in tt->pending[i] until it starts). */
static void next_generation(task_table *tt, size_t i)
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
    set_status(tt, t, TASK_PENDING, true);
}

/* An exit report for a handle no task holds yet: kept (bounded ring) for the start step. */
static void keep_unmatched_exit(task_table *tt, const char *handle)
{
    size_t cap = sizeof(tt->unmatched_exits) / sizeof(char *);
    size_t i = tt->unmatched_next++ % cap;
    free(tt->unmatched_exits[i]);
    tt->unmatched_exits[i] = xstrdup(handle);
}

static bool take_unmatched_exit(task_table *tt, const char *handle)
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
static void inspect_now(task_table *tt, task *t)
{
    t->exit_seen = false;
    job *j = job_new(tt, t, JOB_INSPECT);
    job_spawn(tt, t, j);
}

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
            end_access(tt, t);
            snprintf(t->reason, sizeof(t->reason), "node stopped");
            t->exit_code = -1;
            t->logs_uploaded = true;
            t->phase = PHASE_DONE;
            set_status(tt, t, TASK_STOPPED, false);
            if (t->handle) {
                job *r = job_new(tt, t, JOB_REMOVE);
                job_spawn(tt, t, r);
            }
            break;
        }
        if (j->rc < 0) {
            end_access(tt, t);
            snprintf(t->reason, sizeof(t->reason), "failed to start");
            t->exit_code = -1;
            t->logs_uploaded = true; /* nothing ran: no logs */
            t->phase = PHASE_DONE;
            set_status(tt, t, TASK_FAILED, false);
            if (tt->h.send_error)
                tt->h.send_error(tt->h.ctx, j->error_id, t, j->msg);
            if (t->handle) {
                job *r = job_new(tt, t, JOB_REMOVE);
                job_spawn(tt, t, r);
            }
            break;
        }
        t->started_ms = clock_wall_ms();
        /* a stop asked for while it was starting (deadline 1) is kept: the next tick stops it */
        if (t->deadline_ms != 1)
            t->deadline_ms = tt->lim.timeout_s ? t->started_ms + tt->lim.timeout_s * 1000 : 0;
        t->phase = PHASE_RUNNING;
        t->exit_seen |= take_unmatched_exit(tt, t->handle); /* reported before we knew it */
        set_status(tt, t, TASK_RUNNING, true);
        TLOG(tt, LOG_INFO, "Task %s running", t->key);
        break;
    case JOB_INSPECT:
        if (j->rc < 0) {
            TLOG(tt, LOG_WARNING, "Task %s: %s", t->key, j->msg);
            break;
        }
        if (j->st.state == RT_EXITED) {
            record_exit(tt, t, &j->st, NULL);
            begin_collect(tt, t);
        } else if (j->st.state == RT_GONE) {
            rt_status st = {.state = RT_GONE, .exit_code = -1};
            record_exit(tt, t, &st, "lost");
            if (tt->h.send_error)
                tt->h.send_error(tt->h.ctx, ERR_NODE, t,
                                 "The task's container disappeared before it finished");
            begin_collect(tt, t);
        }
        break;
    case JOB_STOP:
        if (j->rc < 0)
            TLOG(tt, LOG_WARNING, "Task %s: %s", t->key, j->msg);
        record_exit(tt, t, &j->st, NULL);
        if (t->status != TASK_STOPPED && !strcmp(t->reason, "stopped"))
            set_status(tt, t, TASK_STOPPED, true);
        begin_collect(tt, t);
        break;
    case JOB_COLLECT:
        if (j->rc < 0) {
            TLOG(tt, LOG_WARNING, "Task %s: %s; retrying", t->key, j->msg);
            break; /* the next tick tries again */
        }
        t->logs_uploaded = true;
        t->phase = PHASE_DONE;
        if (j->remove_after) {
            free(t->handle);
            t->handle = NULL;
        }
        /* The outcome is published by the outbox once the logs are delivered (the reference's
         * only completion signal comes first), so a manager that knows COMPLETED/FAILED can
         * tell success from failure; the reference cannot. */
        if (t->status != TASK_STOPPED)
            set_status(tt, t, t->exit_code == 0 ? TASK_COMPLETED : TASK_FAILED, false);
        else
            task_save(tt, t);
        TLOG(tt, LOG_INFO, "Task %s: output kept for the manager", t->key);
        break;
    case JOB_REMOVE:
        if (j->rc < 0)
            TLOG(tt, LOG_WARNING, "Task %s: %s", t->key, j->msg);
        else {
            free(t->handle);
            t->handle = NULL;
            task_save(tt, t);
        }
        break;
    }
    job_free(j);
    if (t->phase == PHASE_RUNNING && !t->busy && t->exit_seen)
        inspect_now(tt, t);
    if (t->phase == PHASE_DONE && !t->busy) {
        ssize_t i = index_of(tt, t);
        if (t->remove_after && !t->handle) {
            cleanup_free char *wd = xstrdup(t->workdir);
            table_remove(tt, t);
            remove_dir_async(tt, wd);          /* state, payloads and run folders go with it */
        } else if (i >= 0 && tt->pending[i]) { /* a re-deploy was waiting for this run */
            next_generation(tt, (size_t)i);
        }
    }
    start_queued(tt);
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
            next_generation(tt, (size_t)i);
        } else if (t->phase == PHASE_QUEUED) {
            t->iteration = p->iteration;
            t->circular = p->circular;
            free(t->image);
            t->image = xstrdup(p->image);
            task_save(tt, t);
        } else if (t->phase == PHASE_RUNNING && !t->busy) {
            snprintf(t->reason, sizeof(t->reason), "replaced");
            job *j = job_new(tt, t, JOB_STOP);
            j->grace_s = tt->lim.stop_grace_s;
            t->phase = PHASE_STOPPING;
            job_spawn(tt, t, j);
        } /* else: it is starting/stopping/collecting; the pending deploy follows */
        TLOG(tt, LOG_INFO, "Task %s: next iteration %u queued", t->key, m->iteration);
        start_queued(tt);
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
        task_free(t);
        pending_free(p);
        return;
    }
    table_add(tt, t);
    tt->pending[tt->n - 1] = p;
    TLOG(tt, LOG_INFO, "Task %s added to queue", t->key);
    set_status(tt, t, TASK_PENDING, true);
    start_queued(tt);
}

static void request_stop(task_table *tt, task *t, const char *why)
{
    end_access(tt, t);
    snprintf(t->reason, sizeof(t->reason), "%s", why);
    if (t->phase == PHASE_QUEUED) {
        ssize_t i = index_of(tt, t);
        if (i >= 0) {
            pending_free(tt->pending[i]);
            tt->pending[i] = NULL;
        }
        t->phase = PHASE_DONE;
        t->logs_uploaded = true;
        set_status(tt, t, TASK_STOPPED, !strcmp(why, "stopped"));
        return;
    }
    if (t->phase == PHASE_RUNNING && !t->busy) {
        job *j = job_new(tt, t, JOB_STOP);
        j->grace_s = tt->lim.stop_grace_s;
        t->phase = PHASE_STOPPING;
        task_save(tt, t);
        job_spawn(tt, t, j);
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
            set_status(tt, t, TASK_STOPPED, true);
        return;
    }
    request_stop(tt, t, "stopped");
    if (t->phase == PHASE_STOPPING && t->status != TASK_STOPPED)
        set_status(tt, t, TASK_STOPPED, true);
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
            job *j = job_new(tt, t, JOB_REMOVE);
            job_spawn(tt, t, j);
        } else if (t->phase != PHASE_DONE) {
            request_stop(tt, t, "swarm stopped");
        }
    }
    TLOG(tt, LOG_INFO, "Stopping %zu task(s) of swarm %s", k, sx);
    /* finished tasks without a container can go now */
    for (size_t i = tt->n; i-- > 0;) {
        task *t = tt->v[i];
        if (t->remove_after && t->phase == PHASE_DONE && !t->busy && !t->handle) {
            remove_dir_async(tt, t->workdir);
            table_remove(tt, t);
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

void tasks_exited(task_table *tt, const char *handle)
{
    if (!handle) { /* events may have been lost: look at every running task */
        for (size_t i = 0; i < tt->n; i++) {
            task *t = tt->v[i];
            if (t->phase == PHASE_RUNNING || t->phase == PHASE_STARTING) {
                t->exit_seen = true;
                if (t->phase == PHASE_RUNNING && !t->busy)
                    inspect_now(tt, t);
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
            inspect_now(tt, t);
        return;
    }
    keep_unmatched_exit(tt, handle);
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
                inspect_now(tt, t);
        } else if (t->phase == PHASE_COLLECTING && !t->logs_uploaded &&
                   !(tt->shutting_down && tt->keep)) {
            begin_collect(tt, t);
        }
    }
    start_queued(tt);
}

/* ---- recovery and shutdown ----------------------------------------------------------------- */

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
        table_add(tt, t);
        if (tt->h.task_known)
            tt->h.task_known(tt->h.ctx, t, !t->access_ended);
        if (t->phase == PHASE_QUEUED || (t->phase == PHASE_STARTING && !t->handle)) {
            /* its payload died with the old process: the manager must deploy it again */
            snprintf(t->reason, sizeof(t->reason), "lost");
            t->phase = PHASE_DONE;
            t->logs_uploaded = true;
            set_status(tt, t, TASK_FAILED, false);
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
        TLOG(tt, LOG_INFO, "Adopted task %s (%s)", t->key,
             t->phase == PHASE_RUNNING ? "running"
             : t->phase == PHASE_DONE  ? "done"
                                       : "finished");
        task_save(tt, t);
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
