/* tasks.h - the life of the node's tasks: deploy, queue, run, watch, time out, stop, report,
 * persist, re-adopt.
 *
 * The table lives on the event loop; every blocking step (writing the payload, pulling,
 * creating, starting, inspecting, stopping, reading logs, uploading them) runs on the node's
 * bounded worker pool through hooks.spawn (at most one step per task at a time), and its
 * outcome comes back to the loop through hooks.post. A slow pull therefore delays only its
 * own task (while the pool has a free worker). Exits are learned as events: the runtime's
 * exit watch (runtime_ops.watch_exits) calls tasks_exited, which inspects that one task; the
 * periodic inspection of running tasks is a slow safety net (tasks_set_inspect_interval). Task
 * state is written atomically to <state_dir>/<node xid>/tasks/<swarm>-<task>/task.json at every
 * change, so a restarted node adopts what still runs, uploads the logs of what finished while it
 * was away (once), and removes what it does not know.
 */
#ifndef MANTA_TASKS_H
#define MANTA_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tasks.pb-c.h"
#include "id.h"
#include "rpc.h"
#include "runtime.h"
#include "tasklog.h"

/* common.tasks.TaskStatus */
enum task_status {
    TASK_UNSPECIFIED = 0,
    TASK_PENDING = 1,
    TASK_RUNNING = 2,
    TASK_COMPLETED = 3,
    TASK_FAILED = 4,
    TASK_STOPPED = 5,
};

enum task_phase {
    PHASE_QUEUED = 1, /* waiting for a free slot */
    PHASE_STARTING,   /* payload, pull, create, start in progress */
    PHASE_RUNNING,
    PHASE_STOPPING,   /* stop requested (stop_task, timeout, shutdown) */
    PHASE_COLLECTING, /* exited: logs being read and uploaded */
    PHASE_DONE,       /* logs uploaded (or nothing to upload) */
};

typedef struct task {
    node_id swarm, id;
    char key[80]; /* "<swarm xid>-<task xid>" */
    uint32_t iteration, circular;
    char *image;
    char *alias;
    bool gpu;
    unsigned generation; /* deployments of this (swarm, task) on this node */
    char *name;          /* runtime name of the current generation */
    char *handle;        /* runtime handle, NULL until created */
    char *workdir;
    int status;          /* enum task_status (what the manager was told) */
    int phase;           /* enum task_phase */
    int64_t started_ms;  /* wall clock of the start, 0 before */
    int64_t deadline_ms; /* wall clock after which it is killed, 0 = none */
    /* how it ended */
    int exit_code;
    bool oom_killed;
    char reason[32]; /* "exited", "oom-killed", "timed out", "stopped", "failed to start", "lost" */
    bool logs_uploaded;
    bool busy;         /* a blocking step is in flight */
    bool access_ended; /* stopped or exited: its light-service calls are refused from now */
    bool remove_after; /* forget after the current step (stop_swarm) */
    bool exit_seen;    /* the runtime reported its exit: inspect it as soon as it is not busy */
} task;

/* What the task table needs from the rest of the node. */
typedef struct task_hooks {
    void *ctx;
    /* Publish TaskUpdate{swarm, node, task, iteration, circular, status} (QoS 1). */
    void (*publish)(void *ctx, const task *t);
    /* SendError with the task's context. */
    void (*send_error)(void *ctx, int error_id, const task *t, const char *msg);
    /* Keep a finished task's log blob and its outcome (final_status: a task_status to publish
     * once the logs are delivered, 0 = none) for the manager (outbox.h); called on a worker
     * thread; 0, or -1 with *err (retried on the next tick). */
    int (*keep_output)(void *ctx, const uint8_t *blob, size_t len, const tasklog_header *hdr,
                       int final_status, mt_error **err);
    /* Run fn(arg) on a worker of the node's bounded pool (workers.h) / on the event loop. After
     * tasks_close, fn returns at once (the step is cancelled), so a pool that stops may run
     * its queued steps inline instead of dropping them. */
    void (*spawn)(void *ctx, void (*fn)(void *), void *arg);
    void (*post)(void *ctx, void (*fn)(void *), void *arg);
    void (*log)(void *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    /* The task (with its current iteration/circular) exists on this node, or no longer does:
     * the light service answers only for known tasks. May be NULL. */
    void (*task_known)(void *ctx, const task *t, bool known);
} task_hooks;

typedef struct task_limits {
    int max_concurrent;
    int queue_limit;
    int64_t timeout_s; /* 0 = none */
    uint64_t memory_bytes;
    double cpus;
    int64_t pids_limit;
    uint64_t log_limit;
    int pull_timeout;
    int stop_grace_s;
    bool gpus_available; /* the node can offer GPUs */
    bool cleanup_on_failure;
} task_limits;

typedef struct task_table task_table;

/* The environment every task gets besides TASK_ID/SWARM_ID. */
typedef struct task_env {
    const char *rpc_host;
    int rpc_port;
    size_t ndatasets;
    const char *const *dataset_names;
    const char *const *dataset_paths;
    bool datasets_rw;
} task_env;

/* state_dir: <state_dir>/<node xid>/tasks is where task state lives. */
task_table *tasks_new(runtime *rt, node_id self, const char *state_dir, const task_limits *lim,
                      const task_env *env, const task_hooks *hooks);
void tasks_free(task_table *tt);

/* MQTT commands (payloads already parsed by the caller). */
void tasks_deploy(task_table *tt, const Common__Tasks__MqttTask *m);
void tasks_stop(task_table *tt, node_id swarm, node_id task);
void tasks_stop_swarm(task_table *tt, node_id swarm);

/* Called every second from the loop while tasks exist: starts queued tasks, enforces
 * timeouts, retries log uploads, inspects running tasks every inspect interval. */
void tasks_tick(task_table *tt);

/* The runtime says the task with this handle exited (runtime_ops.watch_exits, posted to the
 * loop); NULL: it may have missed some, inspect every running task. Unknown handles are kept
 * a while (an exit can be reported before the start step returns its handle). */
void tasks_exited(task_table *tt, const char *handle);

/* Running tasks are also inspected every `ms` (a safety net under the exit events; the node
 * uses 30 s; 0, the default, = every tick). */
void tasks_set_inspect_interval(task_table *tt, int64_t ms);

/* The light service's port told to tasks started from now on (RPC_PORT): it changed because
 * the service was restarted. Call from the loop while tasks_idle. */
void tasks_set_rpc_port(task_table *tt, int port);

/* The node is about to free the table: steps not started yet are cancelled, no new step is
 * started. Call before stopping the pool; tasks_free after it is joined. Thread-safe flag. */
void tasks_close(task_table *tt);

/* At start: adopt tasks persisted by a previous run, reap the runtime's unknown tasks. */
void tasks_recover(task_table *tt);

/* Graceful stop of the node: stop every task, upload logs, remove them. keep = leave them
 * running (an agent upgrade); returns true once nothing is in flight any more. */
void tasks_shutdown(task_table *tt, bool keep);
bool tasks_idle(const task_table *tt);

/* Lookups for the light service (next issue) and status. */
const task *tasks_find(const task_table *tt, node_id swarm, node_id task);
size_t tasks_count(const task_table *tt, int phase); /* phase 0 = all */

#endif
