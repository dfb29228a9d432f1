/* sup_impl.h - what the three files of task supervision share (runtime_sup.c, supervisor.c,
 * sup_cgroup.c); private to them. The design is in runtime_sup.h.
 */
#ifndef MANTA_SUP_IMPL_H
#define MANTA_SUP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime_sup.h"

/* ---- small helpers (runtime_sup.c) --------------------------------------------------------- */

/* None allocates: the supervisor uses them. */

/* Sleep ms milliseconds (through EINTR). */
void sup_sleep_ms(int ms);
/* pid is the process that started at `start` (pids are reused) and has not ended. */
bool sup_proc_alive(pid_t pid, unsigned long long start);
/* Write a whole small file (which must exist); returns 0 or an errno value. */
int sup_write_text(const char *path, const char *text);

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

/* The supervisor, in the grandchild sup_start forks: launch the task of *pl, pump its output,
 * reap it, write `exit`, clean up, then _exit. nfd: the pipe sup_start reads the supervisor's
 * word from ("OK" or "ER<reason>"), closed once said. *pl is borrowed and never freed (the
 * process ends). */
__attribute__((noreturn)) void sup_supervise(const struct plan *pl, int nfd);

#endif
