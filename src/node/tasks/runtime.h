/* runtime.h - how a task runs: one driver interface, several drivers.
 *
 *   docker   Docker Engine API over its unix socket (runtime_docker.c, docker_*.c)
 *   runc     daemonless OCI runtime with a local image store (runtime_runc.c)
 *   process  a plain child process, no isolation, for development (runtime_process.c)
 *   fake     in-memory, scripted, for unit tests (tests/fake/runtime_fake.c)
 *
 * Every operation may block (HTTP to dockerd, exec of runc, waiting for a stop): the node calls
 * them from worker threads, never from its event loop. A driver must be safe to call from
 * several threads at once for different tasks.
 *
 * Tasks outlive the node: whatever a driver needs to find a task again after the node
 * restarts lives in the task's handle (a string the node persists) and on disk/in the daemon,
 * never only in the driver's memory. Every container/process a driver creates carries the
 * node's xid (Docker label "manta.node", runc state directory, process record) so that
 * runtime_ops.list can find this node's tasks and the node can adopt or reap them.
 */
#ifndef MANTA_RUNTIME_H
#define MANTA_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* What to run. All strings borrowed for the duration of the call. */
typedef struct task_spec {
    const char *name;     /* unique per task on this node: "manta-<node8>-<swarm8>-<task8>-<n>" */
    const char *node_xid; /* label / owner: "<node xid>[-<tag>]" (docker's compose project
                           * label takes the node xid alone) */
    const char *image; /* image reference (docker) or image-store name (runc); unused by process */
    const char *module_path; /* host file, bound read-only at /usr/src/module.pyz */
    const char *const
        *env; /* NULL-terminated "KEY=value" (TASK_ID, SWARM_ID, RPC_HOST, RPC_PORT, MANTA_*) */
    const char *const *argv; /* NULL-terminated command: {"python", "/usr/src/module.pyz", NULL} */
    /* datasets: bound at /datasets/<name> (read-only unless datasets_rw) */
    size_t ndatasets;
    const char *const *dataset_names;
    const char *const *dataset_paths;
    bool datasets_rw;
    uint64_t memory_bytes; /* 0 = no limit */
    double cpus;           /* 0 = no limit */
    int64_t pids_limit;    /* 0 = no limit */
    bool gpu;              /* all GPUs (docker: DeviceRequests nvidia) */
    const char *workdir;   /* a directory owned by the task: bundles, overlays, log files */
    uint64_t log_limit;    /* bytes of output to keep (the newest part); 0 = unlimited */
    int pull_timeout;      /* seconds an image pull may take */
} task_spec;

typedef enum rt_state {
    RT_CREATED = 1, /* exists, not started */
    RT_RUNNING,
    RT_EXITED, /* finished: exit_code / oom_killed / signal valid */
    RT_GONE,   /* the runtime no longer knows it */
} rt_state;

typedef struct rt_status {
    rt_state state;
    int exit_code; /* 0..255, or 128+signal when killed by a signal */
    bool oom_killed;
    int64_t started_at_ms; /* wall clock, 0 if unknown */
    int64_t finished_at_ms;
} rt_status;

typedef struct runtime runtime;

typedef struct runtime_ops {
    const char *name;
    /* Make the image available (pull it if missing) within spec->pull_timeout seconds. */
    int (*prepare)(runtime *rt, const task_spec *spec, mt_error **err);
    /* Create (not start) the task; *handle receives an owned string identifying it. */
    int (*create)(runtime *rt, const task_spec *spec, char **handle, mt_error **err);
    int (*start)(runtime *rt, const char *handle, mt_error **err);
    /* SIGTERM, then SIGKILL after grace_s seconds; returns as soon as it has exited. Tasks run
     * under an init (docker-init, manta-init) that passes the SIGTERM on: the task's own
     * process is not PID 1, so a SIGTERM without a handler ends it at once. */
    int (*stop)(runtime *rt, const char *handle, int grace_s, mt_error **err);
    int (*inspect)(runtime *rt, const char *handle, rt_status *st, mt_error **err);
    /* Everything the task wrote on stdout and stderr (interleaved), at most `limit` bytes: the
     * newest part when longer (0 = no limit). *out owned. */
    int (*logs)(runtime *rt, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
                mt_error **err);
    /* Remove the task and what the driver created for it (not the workdir). */
    int (*remove)(runtime *rt, const char *handle, mt_error **err);
    /* Undo what a create left in workdir (the spec->workdir it was given) when the node died
     * inside it, before a handle came out: nothing lists such a task (runc: an overlay mounted
     * on its bundle). Optional: NULL when a create leaves nothing a handle does not name. */
    int (*reclaim)(runtime *rt, const char *workdir, mt_error **err);
    /* Handles of every task this driver knows for node_xid (owned NULL-terminated array). */
    int (*list)(runtime *rt, const char *node_xid, char ***handles, mt_error **err);
    /* Exit events (optional; NULL: the node finds exits by its slow periodic inspect only).
     * After watch_exits(rt, cb, ctx) the driver calls cb(ctx, handle) from a thread of its own,
     * soon after a task it started (or was asked to watch) exits; cb(ctx, NULL) means "events
     * may have been missed: inspect everything". A hint only: the node inspects to learn how
     * it ended. watch_exits(rt, NULL, NULL) stops and joins that thread (before runtime_free,
     * before the callback's context goes away). docker: one /events stream; runc/process:
     * inotify on the tasks' `exit` files. */
    int (*watch_exits)(runtime *rt, void (*cb)(void *ctx, const char *handle), void *ctx,
                       mt_error **err);
    /* Watch this task too (one adopted after a restart). Optional. */
    void (*watch)(runtime *rt, const char *handle);
    /* Node shutdown: image pulls in flight and later give up at once (a pull must not hold
     * the shutdown for pull_timeout); everything: every blocking call does. Sticky. Optional. */
    void (*cancel)(runtime *rt, bool everything);
    void (*free)(runtime *rt);
} runtime_ops;

struct runtime {
    const runtime_ops *ops;
    void *impl; /* driver state */
};

/* Drivers. `opts` points at the node's configuration ([containers]); each returns an owned
 * runtime or NULL with *err saying why it cannot be used on this host (for `auto`). */
struct node_config;
runtime *runtime_docker_new(const struct node_config *cfg, mt_error **err);
runtime *runtime_runc_new(const struct node_config *cfg, mt_error **err);
runtime *runtime_process_new(const struct node_config *cfg, mt_error **err);
/* What the process runtime does not isolate: show it whenever that runtime is chosen. Static. */
const char *runtime_process_warning(void);

/* `containers.runtime`: auto tries docker, then runc. *chosen names the one picked. */
runtime *runtime_open(const struct node_config *cfg, const char **chosen, mt_error **err);

static inline void runtime_free(runtime *rt)
{
    if (rt && rt->ops && rt->ops->free)
        rt->ops->free(rt);
}

#endif
