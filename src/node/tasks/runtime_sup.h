/* runtime_sup.h - task supervision shared by the daemonless drivers, runc (runtime_runc.c) and
 * process (runtime_process.c); defined in runtime_sup.c (driver state, workdirs, records,
 * logs, list), sup_start.c (start), sup_stop.c (inspect, stop, remove) and sup_watch.c (exit
 * events); the supervisor process in supervisor.c, the cgroups in sup_cgroup.c; what they
 * share in sup_impl.h.
 *
 * A task lives in its
 * workdir; a handle is "<driver>:<absolute workdir>". Files the drivers create there:
 *   task.json        what start needs (command, environment, limits, runc bundle), written
 *                    at create; its presence is what makes the task exist
 *   sup.json         the supervisor's pid and start time (written by the supervisor)
 *   started.json     the task's main pid (runc: the container's init) and start time
 *   output.log       stdout+stderr interleaved; rotated to output.log.1 at log_limit bytes
 *   exit             how it ended: {"exit_code","signal","oom_killed","started_at_ms",
 *                    "finished_at_ms"[, "error"]}, written atomically (tmp + rename)
 *   bundle/, overlay/, runc.pid   (runc) the OCI bundle, the overlay's upper and work dirs
 * start forks twice: the supervisor is a child of init (never a zombie of the node), in its
 * own session, and a child subreaper. It launches the task (runc create + runc start: the
 * container's init is reparented to it; process: fork + exec), pumps the task's output into
 * output.log, reaps it, reads the OOM-kill counter of the task's memory cgroup while the
 * cgroup still exists, writes `exit`, then deletes the runc container / the cgroups. So the
 * node can be SIGKILLed and restarted at any time: inspect reads `exit`, or checks that the
 * supervisor (pid + start time) still runs.
 * Records: <tasks.state_dir>/runtime/<driver>/<node_xid>/<task name> is a symlink to the
 * workdir; list() reads them.
 */
#ifndef MANTA_RUNTIME_SUP_H
#define MANTA_RUNTIME_SUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "runtime.h"

struct node_config;

typedef struct sup_cgroups {
    char *memory_v1, *pids_v1, *cpu_v1; /* mount points of v1 hierarchies, NULL if absent */
    char *v2;                           /* the cgroup2 mount, NULL if absent */
    bool v2_memory, v2_pids, v2_cpu;    /* controllers available in cgroup2 */
    bool memsw;                         /* v1 swap accounting (memory.memsw.*) */
} sup_cgroups;

typedef struct sup_driver {
    const char *name; /* "runc" or "process" */
    char *records;    /* <tasks.state_dir>/runtime/<name> */
    sup_cgroups cg;
    char *runc;        /* runc: absolute path of the binary */
    char *runc_root;   /* runc: its state root (--root) */
    char *image_store; /* runc */
    char *init;        /* runc: manta-init on the host (PID 1 of the containers), NULL if none */
    struct sup_watch *watch; /* exit events (sup_watch_exits), NULL until asked for */
} sup_driver;

#define SUP_RUNC_ROOT     "/run/manta-runc"
#define SUP_DEFAULT_PATH  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SUP_CGROUP_PARENT "/manta"

int sup_driver_init(sup_driver *d, const char *name, const struct node_config *cfg, mt_error **err);

/* Exit events for runtime_ops.watch_exits: one thread with an inotify descriptor watching the
 * workdir of each started or adopted task; the supervisor's rename of `exit` into place is the
 * event (cb(ctx, handle) on that thread). A task whose `exit` exists when it is added to the
 * watch is reported at once. cb NULL: stop and join the thread. sup_start watches what it
 * starts (before the supervisor exists, so no exit is missed); sup_watch_task adds others. */
int sup_watch_exits(sup_driver *d, void (*cb)(void *ctx, const char *handle), void *ctx,
                    mt_error **err);
void sup_watch_task(const sup_driver *d, const char *handle);
void sup_driver_free(sup_driver *d);

/* Task names, node xids, dataset names: [A-Za-z0-9_.+-], 1..200 characters, not "."/"..". */
bool sup_safe_name(const char *s);

/* Check the common parts of a spec, make the workdir (absolute, created if missing) and refuse
 * one that already holds a task. *wd owned. */
int sup_prepare_workdir(const sup_driver *d, const task_spec *spec, char **wd, mt_error **err);

/* task.json with the fields every driver has (driver, name, node_xid, workdir, created_at_ms,
 * log_limit, cgroup, memory_bytes, cpus, pids_limit). Owned reference. */
json_t *sup_task_json(const sup_driver *d, const task_spec *spec, const char *wd);

/* Write task.json and the record; *handle owned. */
int sup_commit(const sup_driver *d, const char *wd, json_t *task, char **handle, mt_error **err);

/* The workdir of a handle of this driver (owned), or NULL with MT_ERR_NOTFOUND/USAGE. */
char *sup_handle_workdir(const sup_driver *d, const char *handle, mt_error **err);

/* task.json of a handle: owned reference, NULL with MT_ERR_NOTFOUND when it is gone. */
json_t *sup_load_task(const sup_driver *d, const char *handle, char **wd, mt_error **err);

int sup_start(const sup_driver *d, const char *handle, mt_error **err);
int sup_stop(const sup_driver *d, const char *handle, int grace_s, mt_error **err);
int sup_inspect(const sup_driver *d, const char *handle, rt_status *st, mt_error **err);
int sup_logs(const sup_driver *d, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
             mt_error **err);
int sup_list(const sup_driver *d, const char *node_xid, char ***handles, mt_error **err);

/* Removal in two halves around the driver's own cleanup: _begin kills a running task and
 * waits for its supervisor to finish; _finish deletes the cgroups, the files of the task and
 * its record. */
int sup_remove_begin(const sup_driver *d, const char *handle, mt_error **err);
void sup_remove_finish(const sup_driver *d, const char *wd, json_t *task);

/* The whole removal: a task already gone is success; `cleanup` (may be NULL) runs the driver's
 * own step between _begin and _finish (runc: delete the container and its bundle). */
typedef int (*sup_cleanup_fn)(const sup_driver *d, const char *wd, json_t *task, mt_error **err);
int sup_remove(const sup_driver *d, const char *handle, sup_cleanup_fn cleanup, mt_error **err);

#endif
