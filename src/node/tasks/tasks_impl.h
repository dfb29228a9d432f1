/* tasks_impl.h - what the files of the task table share (tasks.c: the table, the queue and
 * the commands; task_jobs.c: the blocking steps and their outcomes; task_exits.c: exits,
 * collecting the output, reaping; task_store.c: persistence and recovery); private to them.
 * The design is in tasks.h.
 */
#ifndef MANTA_TASKS_IMPL_H
#define MANTA_TASKS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tasks.h"

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

#define TLOG(tt, lvl, ...) ((tt)->h.log ? (tt)->h.log((tt)->h.ctx, (lvl), __VA_ARGS__) : (void)0)

static inline void xid_of(node_id id, char out[NODE_XID_MAX + 1])
{
    node_id_to_xid(id, out);
}

/* A blocking step of a task, run on the node's worker pool (task_jobs.c). */
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
    /* outputs */
    int rc;
    bool cancelled; /* not run: the table was closing */
    char *new_handle;
    rt_status st;
    int error_id;
    char msg[512];
} job;

/* ---- the table (tasks.c) ------------------------------------------------------------------- */

/* The folder of the task's current run (the runtime's own, task_spec.workdir). Owned. */
char *tt_run_dir(const task *t);

void tt_task_free(task *t);
/* The index of t in the table, -1 if it is not there. */
ssize_t tt_index_of(const task_table *tt, const task *t);
task *tt_table_add(task_table *tt, task *t);
/* Forget t (and its pending deploy), and free it. */
void tt_table_remove(task_table *tt, task *t);
/* The task may no longer use the light service (Local and World): from the moment a stop is
 * asked for, or its exit is seen. Its next generation (a deploy of the next iteration) may. */
void tt_end_access(task_table *tt, task *t);
/* Record (tt_task_save) and, if `publish`, publish a new status of t. */
void tt_set_status(task_table *tt, task *t, int status, bool publish);
/* Start queued tasks while slots are free. */
void tt_start_queued(task_table *tt);
/* The run of task i is over and a deploy of its next iteration waits: queue that one as the
 * task's next generation (its payload stays in tt->pending[i] until it starts). */
void tt_next_generation(task_table *tt, size_t i);

/* ---- persistence (task_store.c) ------------------------------------------------------------ */

/* Write t's task.json (atomically); a failure is logged. */
void tt_task_save(task_table *tt, const task *t);

/* ---- jobs (task_jobs.c) -------------------------------------------------------------------- */

/* A step of `kind` for t's current generation (its handle copied). */
job *tt_job_new(task_table *tt, task *t, enum job_kind kind);
/* Run j on the worker pool (t is busy until its outcome is back on the loop); dropped when the
 * table is closing. */
void tt_job_spawn(task_table *tt, task *t, job *j);

/* ---- exits (task_exits.c) ------------------------------------------------------------------ */

/* Read and keep the output of a finished task (JOB_COLLECT). */
void tt_begin_collect(task_table *tt, task *t);
/* Whether a collected task's container goes (a successful run, or cleanup_on_failure; never
 * while the node stops keeping its tasks). */
bool tt_container_goes(const task_table *tt, const task *t);
/* Remove t's container (JOB_REMOVE), if it has one. Only once the fact that its output was
 * kept is on disk: a node killed before that collects the output again from the container. */
void tt_begin_remove(task_table *tt, task *t);
/* How t ended (why: the reason, NULL = from st). */
void tt_record_exit(task_table *tt, task *t, const rt_status *st, const char *why);

/* Remove a task's folder off the event loop (it may hold large payloads and overlays). */
void tt_remove_dir_async(task_table *tt, const char *dir);
/* An exit was reported for this handle before a task held it: forget it, true if so. */
bool tt_take_unmatched_exit(task_table *tt, const char *handle);
/* One inspect of a running task, now (an exit was reported, or the safety net is due). */
void tt_inspect_now(task_table *tt, task *t);

#endif
