/* sup_impl.h - what the files of task supervision share (runtime_sup.c, sup_start.c,
 * sup_stop.c, sup_watch.c, supervisor.c, sup_cgroup.c); private to them. The design is in
 * runtime_sup.h.
 */
#ifndef MANTA_SUP_IMPL_H
#define MANTA_SUP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime_sup.h"

/* The files of a task's workdir (runtime_sup.h). */
#define F_TASK     "task.json"
#define F_SUP      "sup.json"
#define F_STARTED  "started.json"
#define F_EXIT     "exit"
#define F_LOG      "output.log"
#define F_LOG_OLD  "output.log.1"
#define F_RUNC_PID "runc.pid"

/* ---- small helpers (runtime_sup.c) --------------------------------------------------------- */

/* None allocates: the supervisor uses them. */

/* Sleep ms milliseconds (through EINTR). */
void sup_sleep_ms(int ms);
/* pid is the process that started at `start` (pids are reused) and has not ended. */
bool sup_proc_alive(pid_t pid, unsigned long long start);
/* Write a whole small file (which must exist); returns 0 or an errno value. */
int sup_write_text(const char *path, const char *text);

/* These allocate (the node's side only). */

/* The file `name` of workdir wd (owned). */
char *sup_wd_file(const char *wd, const char *name);
/* The integer / string member `key` of a task.json object (0 / NULL if absent). */
json_int_t sup_jint(json_t *o, const char *key);
const char *sup_jstr(json_t *o, const char *key);
/* The record of a task: <records>/<node_xid>/<name> (owned). */
char *sup_record_path(const sup_driver *d, const char *node_xid, const char *name);

/* ---- cgroups (sup_cgroup.c) ---------------------------------------------------------------- */

/* Fill *cg from the mounted hierarchies (all absent if none or unreadable); free with
 * sup_cgroups_free. */
void sup_cgroups_detect(sup_cgroups *cg);
void sup_cgroups_free(sup_cgroups *cg);
/* The folders a task's cgroup `rel` ("/manta/<name>") has in every hierarchy (owned strv). */
char **sup_cgroup_dirs(const sup_cgroups *cg, const char *rel);
/* SIGKILL every process of cgroup folder `dir`; returns how many were seen. No allocation. */
int sup_cgroup_kill(const char *dir);
/* Kill what is left in cgroup folder `dir` and remove it (bounded wait). */
void sup_cgroup_destroy(const char *dir);
/* The file holding the OOM-kill counter of cgroup `rel` (owned), NULL when no memory
 * controller. */
char *sup_oom_file(const sup_cgroups *cg, const char *rel);

/* ---- the supervisor (supervisor.c) --------------------------------------------------------- */

/* Everything the supervisor needs, prepared before fork so that it allocates nothing. */
struct plan {
    bool is_runc;
    char **argv; /* process: the command (owned strv) */
    char **envp; /* process: its environment (owned strv) */
    char *runc_create[10], *runc_start[6], *runc_delete[7];
    char *name, *runc_bin, *root, *bundle, *pidfile;
    char *workdir, *log, *log_old, *sup, *started, *exitf;
    uint64_t log_limit;
    char *procs[4]; /* process: cgroup.procs files the task joins */
    size_t nprocs;
    char *cgdirs[4]; /* process: cgroup folders removed at the end */
    size_t ncgdirs;
    char *oom; /* memory.oom_control (v1) / memory.events (v2), NULL if none */
    char *warning;
};

/* Create the process driver's cgroups for the task of task.json t and fill pl->procs/cgdirs/oom.
 * Problems are not fatal: pl->warning says which limits are not enforced (sup_cgroup.c). */
void sup_plan_cgroups(const sup_driver *d, json_t *t, struct plan *pl);

/* The supervisor, in the grandchild sup_start forks: launch the task of *pl, pump its output,
 * reap it, write `exit`, clean up, then _exit. nfd: the pipe sup_start reads the supervisor's
 * word from ("OK" or "ER<reason>"), closed once said. *pl is borrowed and never freed (the
 * process ends). */
__attribute__((noreturn)) void sup_supervise(const struct plan *pl, int nfd);

#endif
