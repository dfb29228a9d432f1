/* runtime_sup.c - task supervision shared by the daemonless drivers (runc and process), on the
 * node's side: task workdirs and records, starting the supervisor (supervisor.c), and
 * inspect/stop/logs/list/remove over the files it writes. The design is in runtime_sup.h; the
 * cgroups are in sup_cgroup.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "node_config.h"
#include "fsutil.h"
#include "images.h"
#include "json.h"
#include "mem.h"
#include "paths.h"
#include "proc.h"
#include "runtime.h"
#include "runtime_sup.h"
#include "strbuf.h"
#include "sup_impl.h"

#define F_TASK     "task.json"
#define F_SUP      "sup.json"
#define F_STARTED  "started.json"
#define F_EXIT     "exit"
#define F_LOG      "output.log"
#define F_LOG_OLD  "output.log.1"
#define F_RUNC_PID "runc.pid"

#define START_TIMEOUT_S 120 /* runc create + start, or fork + exec */
#define LAUNCH_WAIT_S   10  /* stop: a supervisor that has not recorded the task yet */
#define KILL_WAIT_S     15  /* after SIGKILL */
#define SUP_EXIT_WAIT_S 20  /* remove: the supervisor's own cleanup (runc delete) */
#define CPU_PERIOD_US   100000

/* ---- small helpers ------------------------------------------------------------------------- */

void sup_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* pid is the process that started at `start` (pids are reused) and has not ended. No
 * allocation: the supervisor uses it. */
bool sup_proc_alive(pid_t pid, unsigned long long start)
{
    proc_stat st;
    if (pid <= 0 || !proc_stat_read(pid, &st))
        return false;
    return st.start == start && st.state != 'Z' && st.state != 'X';
}

/* Write a whole small file; returns 0 or an errno value. No allocation. */
int sup_write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int e = n == (ssize_t)len ? 0 : (n < 0 ? errno : EIO);
    if (close(fd) < 0 && !e)
        e = errno;
    return e;
}

static char *wd_file(const char *wd, const char *name)
{
    return fs_join(wd, name);
}

static json_int_t jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- the driver state ---------------------------------------------------------------------- */

int sup_driver_init(sup_driver *d, const char *name, const struct node_config *cfg, mt_error **err)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    cleanup_free char *state = NULL;
    if (cfg && cfg->tasks.state_dir && *cfg->tasks.state_dir) {
        state = fs_expand_tilde(cfg->tasks.state_dir);
    } else {
        cleanup_free char *home = paths_home();
        state = fs_join(home, "state");
    }
    cleanup_free char *rt = fs_join(state, "runtime");
    d->records = fs_join(rt, name);
    sup_cgroups_detect(&d->cg);
    return 0;
}

void sup_driver_free(sup_driver *d)
{
    sup_watch_exits(d, NULL, NULL, NULL);
    free(d->records);
    free(d->runc);
    free(d->runc_root);
    free(d->image_store);
    free(d->init);
    sup_cgroups_free(&d->cg);
    memset(d, 0, sizeof(*d));
}

bool sup_safe_name(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > 200 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

int sup_prepare_workdir(const sup_driver *d, const task_spec *spec, char **wd, mt_error **err)
{
    *wd = NULL;
    if (!sup_safe_name(spec->name))
        return mt_error_set(err, MT_ERR_USAGE,
                            "invalid task name '%s': use letters, digits and _ . + -",
                            spec->name ? spec->name : "");
    if (!sup_safe_name(spec->node_xid))
        return mt_error_set(err, MT_ERR_USAGE, "invalid node id '%s'",
                            spec->node_xid ? spec->node_xid : "");
    if (!spec->argv || !spec->argv[0] || !*spec->argv[0])
        return mt_error_set(err, MT_ERR_USAGE, "task %s has no command to run", spec->name);
    if (!spec->workdir || !*spec->workdir)
        return mt_error_set(err, MT_ERR_USAGE, "task %s has no working folder", spec->name);
    if (fs_mkdir_p(spec->workdir, 0700, err) < 0)
        return mt_error_wrap(err, "cannot create the folder of task %s", spec->name);
    char *abs = realpath(spec->workdir, NULL);
    if (!abs)
        return mt_error_sys(err, errno, "cannot resolve %s", spec->workdir);
    cleanup_free char *task = wd_file(abs, F_TASK);
    if (fs_exists(task)) {
        mt_error_set(err, MT_ERR_EXISTS,
                     "%s already holds a task; remove it before creating another there", abs);
        free(abs);
        return -1;
    }
    *wd = abs;
    return 0;
}

json_t *sup_task_json(const sup_driver *d, const task_spec *spec, const char *wd)
{
    cleanup_free char *cg = xasprintf(SUP_CGROUP_PARENT "/%s", spec->name);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:f, s:I}", "driver", d->name,
                     "name", spec->name, "node_xid", spec->node_xid, "workdir", wd, "created_at_ms",
                     (json_int_t)clock_wall_ms(), "log_limit", (json_int_t)spec->log_limit,
                     "cgroup", cg, "memory_bytes", (json_int_t)spec->memory_bytes, "cpus",
                     spec->cpus > 0 ? spec->cpus : 0.0, "pids_limit",
                     (json_int_t)(spec->pids_limit > 0 ? spec->pids_limit : 0));
}

static char *record_path(const sup_driver *d, const char *node_xid, const char *name)
{
    cleanup_free char *dir = fs_join(d->records, node_xid);
    return fs_join(dir, name);
}

int sup_commit(const sup_driver *d, const char *wd, json_t *task, char **handle, mt_error **err)
{
    const char *name = jstr(task, "name"), *xid = jstr(task, "node_xid");
    cleanup_free char *recdir = fs_join(d->records, xid);
    if (fs_mkdir_p(recdir, 0700, err) < 0)
        return mt_error_wrap(err, "cannot record task %s", name);
    cleanup_free char *text = json_dumps(task, JSON_INDENT(2));
    cleanup_free char *path = wd_file(wd, F_TASK);
    cleanup_free char *line = xasprintf("%s\n", text);
    if (fs_write_atomic(path, line, strlen(line), 0600, err) < 0)
        return -1;
    cleanup_free char *rec = record_path(d, xid, name);
    unlink(rec);
    if (symlink(wd, rec) < 0) {
        int e = errno;
        unlink(path);
        return mt_error_sys(err, e, "cannot record task %s at %s", name, rec);
    }
    *handle = xasprintf("%s:%s", d->name, wd);
    return 0;
}

char *sup_handle_workdir(const sup_driver *d, const char *handle, mt_error **err)
{
    size_t nl = strlen(d->name);
    if (!handle || strncmp(handle, d->name, nl) != 0 || handle[nl] != ':' || handle[nl + 1] != '/')
        return mt_error_set(err, MT_ERR_USAGE, "'%s' is not a task handle of the %s runtime",
                            handle ? handle : "", d->name),
               NULL;
    return xstrdup(handle + nl + 1);
}

json_t *sup_load_task(const sup_driver *d, const char *handle, char **wd_out, mt_error **err)
{
    cleanup_free char *wd = sup_handle_workdir(d, handle, err);
    if (!wd)
        return NULL;
    cleanup_free char *path = wd_file(wd, F_TASK);
    json_error_t je;
    cleanup_json json_t *t = json_load_file(path, 0, &je);
    if (!t) {
        if (!fs_exists(path))
            return mt_error_set(err, MT_ERR_NOTFOUND, "task %s does not exist (removed?)", handle),
                   NULL;
        return mt_error_set(err, MT_ERR_PARSE, "%s is damaged: %s", path, je.text), NULL;
    }
    const char *drv = jstr(t, "driver");
    if (!drv || strcmp(drv, d->name) != 0 || !jstr(t, "name"))
        return mt_error_set(err, MT_ERR_USAGE, "%s does not describe a %s task", path, d->name),
               NULL;
    if (wd_out)
        *wd_out = steal_ptr(wd);
    return steal_ptr(t);
}

/* ---- start --------------------------------------------------------------------------------- */

static void plan_free(struct plan *pl)
{
    char **strv[] = {pl->argv, pl->envp};
    for (size_t i = 0; i < ARRAY_LEN(strv); i++) {
        for (char **s = strv[i]; s && *s; s++)
            free(*s);
        free(strv[i]);
    }
    char *strs[] = {pl->name,    pl->runc_bin, pl->root,    pl->bundle, pl->pidfile,
                    pl->workdir, pl->log,      pl->log_old, pl->sup,    pl->started,
                    pl->exitf,   pl->oom,      pl->warning};
    for (size_t i = 0; i < ARRAY_LEN(strs); i++)
        free(strs[i]);
    for (size_t i = 0; i < pl->nprocs; i++)
        free(pl->procs[i]);
    for (size_t i = 0; i < pl->ncgdirs; i++)
        free(pl->cgdirs[i]);
    memset(pl, 0, sizeof(*pl));
}

static char **json_strv(json_t *arr)
{
    size_t n = json_array_size(arr);
    char **v = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s)
            v[k++] = xstrdup(s);
    }
    return v;
}

static int mkdir_cg(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return errno;
}

/* Create the process driver's cgroups for a task and fill pl->procs/cgdirs/oom. Problems are
 * not fatal: pl->warning says which limits are not enforced. */
static void plan_cgroups(const sup_driver *d, json_t *t, struct plan *pl)
{
    uint64_t mem = (uint64_t)jint(t, "memory_bytes");
    int64_t pids = jint(t, "pids_limit");
    double cpus = json_number_value(json_object_get(t, "cpus"));
    const char *rel = jstr(t, "cgroup");
    if ((!mem && pids <= 0 && cpus <= 0) || !rel)
        return;
    const sup_cgroups *cg = &d->cg;
    strbuf missing = STRBUF_INIT;
    cleanup_free char *v2dir = NULL;
    if (cg->v2 &&
        ((mem && cg->v2_memory) || (pids > 0 && cg->v2_pids) || (cpus > 0 && cg->v2_cpu))) {
        cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->v2);
        cleanup_free char *root_ctl = fs_join(cg->v2, "cgroup.subtree_control");
        cleanup_free char *top_ctl = fs_join(top, "cgroup.subtree_control");
        mkdir_cg(top);
        const char *ctls[] = {"+memory", "+pids", "+cpu"};
        for (size_t i = 0; i < ARRAY_LEN(ctls); i++) {
            sup_write_text(root_ctl, ctls[i]);
            sup_write_text(top_ctl, ctls[i]);
        }
        v2dir = xasprintf("%s%s", cg->v2, rel);
        if (mkdir_cg(v2dir) == 0) {
            pl->cgdirs[pl->ncgdirs++] = xstrdup(v2dir);
            pl->procs[pl->nprocs++] = fs_join(v2dir, "cgroup.procs");
        } else {
            free(v2dir);
            v2dir = NULL;
        }
    }
    char num[64];
    /* memory */
    if (mem) {
        int ok = 0;
        if (cg->memory_v1) {
            cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->memory_v1);
            cleanup_free char *dir = xasprintf("%s%s", cg->memory_v1, rel);
            cleanup_free char *lim = fs_join(dir, "memory.limit_in_bytes");
            cleanup_free char *sw = fs_join(dir, "memory.memsw.limit_in_bytes");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)mem);
            if (mkdir_cg(top) == 0 && mkdir_cg(dir) == 0 && sup_write_text(lim, num) == 0) {
                if (cg->memsw)
                    sup_write_text(sw, num);
                pl->cgdirs[pl->ncgdirs++] = xstrdup(dir);
                pl->procs[pl->nprocs++] = fs_join(dir, "cgroup.procs");
                pl->oom = fs_join(dir, "memory.oom_control");
                ok = 1;
            }
        } else if (v2dir && cg->v2_memory) {
            cleanup_free char *lim = fs_join(v2dir, "memory.max");
            cleanup_free char *sw = fs_join(v2dir, "memory.swap.max");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)mem);
            if (sup_write_text(lim, num) == 0) {
                sup_write_text(sw, "0");
                pl->oom = fs_join(v2dir, "memory.events");
                ok = 1;
            }
        }
        if (!ok)
            sb_puts(&missing, "memory");
    }
    if (pids > 0) {
        int ok = 0;
        snprintf(num, sizeof(num), "%lld", (long long)pids);
        if (cg->pids_v1) {
            cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->pids_v1);
            cleanup_free char *dir = xasprintf("%s%s", cg->pids_v1, rel);
            cleanup_free char *lim = fs_join(dir, "pids.max");
            if (mkdir_cg(top) == 0 && mkdir_cg(dir) == 0 && sup_write_text(lim, num) == 0) {
                pl->cgdirs[pl->ncgdirs++] = xstrdup(dir);
                pl->procs[pl->nprocs++] = fs_join(dir, "cgroup.procs");
                ok = 1;
            }
        } else if (v2dir && cg->v2_pids) {
            cleanup_free char *lim = fs_join(v2dir, "pids.max");
            ok = sup_write_text(lim, num) == 0;
        }
        if (!ok)
            sb_puts(&missing, missing.len ? ", pids" : "pids");
    }
    if (cpus > 0) {
        int ok = 0;
        long long quota = (long long)(cpus * CPU_PERIOD_US);
        if (quota < 1000)
            quota = 1000;
        if (cg->cpu_v1) {
            cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->cpu_v1);
            cleanup_free char *dir = xasprintf("%s%s", cg->cpu_v1, rel);
            cleanup_free char *period = fs_join(dir, "cpu.cfs_period_us");
            cleanup_free char *q = fs_join(dir, "cpu.cfs_quota_us");
            char pnum[32];
            snprintf(pnum, sizeof(pnum), "%d", CPU_PERIOD_US);
            snprintf(num, sizeof(num), "%lld", quota);
            if (mkdir_cg(top) == 0 && mkdir_cg(dir) == 0 && sup_write_text(period, pnum) == 0 &&
                sup_write_text(q, num) == 0) {
                pl->cgdirs[pl->ncgdirs++] = xstrdup(dir);
                pl->procs[pl->nprocs++] = fs_join(dir, "cgroup.procs");
                ok = 1;
            }
        } else if (v2dir && cg->v2_cpu) {
            cleanup_free char *lim = fs_join(v2dir, "cpu.max");
            snprintf(num, sizeof(num), "%lld %d", quota, CPU_PERIOD_US);
            ok = sup_write_text(lim, num) == 0;
        }
        if (!ok)
            sb_puts(&missing, missing.len ? ", cpu" : "cpu");
    }
    if (missing.len)
        pl->warning = xasprintf("warning: the %s limit%s of this task %s not enforced (no "
                                "writable cgroup for %s)",
                                sb_str(&missing), strchr(sb_str(&missing), ',') ? "s" : "",
                                strchr(sb_str(&missing), ',') ? "are" : "is",
                                geteuid() == 0 ? "the controller" : "a non-root node");
    sb_free(&missing);
}

static int plan_build(const sup_driver *d, json_t *t, const char *wd, struct plan *pl,
                      mt_error **err)
{
    memset(pl, 0, sizeof(*pl));
    pl->workdir = xstrdup(wd);
    pl->log = wd_file(wd, F_LOG);
    pl->log_old = wd_file(wd, F_LOG_OLD);
    pl->sup = wd_file(wd, F_SUP);
    pl->started = wd_file(wd, F_STARTED);
    pl->exitf = wd_file(wd, F_EXIT);
    pl->log_limit = (uint64_t)jint(t, "log_limit");
    pl->name = xstrdup(jstr(t, "name"));
    if (strcmp(d->name, "runc") == 0) {
        const char *bin = jstr(t, "runc"), *root = jstr(t, "runc_root"),
                   *bundle = jstr(t, "bundle");
        if (!bin || !root || !bundle)
            return mt_error_set(err, MT_ERR_PARSE, "the task.json of %s lacks its runc bundle", wd);
        pl->is_runc = true;
        pl->runc_bin = xstrdup(bin);
        pl->root = xstrdup(root);
        pl->bundle = xstrdup(bundle);
        pl->pidfile = wd_file(wd, F_RUNC_PID);
        unlink(pl->pidfile);
        char *c[] = {pl->runc_bin, "--root",     pl->root,    "create", "--bundle",
                     pl->bundle,   "--pid-file", pl->pidfile, pl->name, NULL};
        char *s[] = {pl->runc_bin, "--root", pl->root, "start", pl->name, NULL};
        char *dl[] = {pl->runc_bin, "--root", pl->root, "delete", "--force", pl->name, NULL};
        memcpy(pl->runc_create, c, sizeof(c));
        memcpy(pl->runc_start, s, sizeof(s));
        memcpy(pl->runc_delete, dl, sizeof(dl));
        const char *rel = jstr(t, "cgroup");
        pl->oom = rel ? sup_oom_file(&d->cg, rel) : NULL;
        const char *warning = jstr(t, "warning");
        if (warning && *warning)
            pl->warning = xstrdup(warning);
    } else {
        pl->argv = json_strv(json_object_get(t, "argv"));
        pl->envp = json_strv(json_object_get(t, "env"));
        if (!pl->argv[0])
            return mt_error_set(err, MT_ERR_PARSE, "the task.json of %s has no command", wd);
        plan_cgroups(d, t, pl);
    }
    return 0;
}

/* The last lines (at most ~1 KiB) of a task's log, for messages. Owned, "" if none. */
static char *log_tail(const char *wd)
{
    cleanup_free char *path = wd_file(wd, F_LOG);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xstrdup("");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return xstrdup("");
    off_t off = st.st_size > 1024 ? st.st_size - 1024 : 0;
    char buf[1025];
    ssize_t n = pread(fd, buf, 1024, off);
    if (n <= 0)
        return xstrdup("");
    buf[n] = '\0';
    char *s = buf;
    if (off > 0 && strchr(s, '\n'))
        s = strchr(s, '\n') + 1;
    size_t len = strlen(s);
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
        s[--len] = '\0';
    return xstrdup(s);
}

int sup_start(const sup_driver *d, const char *handle, mt_error **err)
{
    cleanup_free char *wd = NULL;
    cleanup_json json_t *t = sup_load_task(d, handle, &wd, err);
    if (!t)
        return -1;
    const char *name = jstr(t, "name");
    cleanup_free char *task_path = wd_file(wd, F_TASK);
    cleanup_close int lock = open(task_path, O_RDONLY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0)
        return mt_error_set(err, MT_ERR_EXISTS, "task %s is being started by another call", name);
    cleanup_free char *supf = wd_file(wd, F_SUP);
    cleanup_free char *exitf = wd_file(wd, F_EXIT);
    if (fs_exists(supf) || fs_exists(exitf))
        return mt_error_set(err, MT_ERR_EXISTS, "task %s was already started", name);
    sup_watch_task(d, handle); /* before the supervisor exists: its `exit` cannot be missed */
    struct plan pl;
    if (plan_build(d, t, wd, &pl, err) < 0) {
        plan_free(&pl);
        return -1;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        plan_free(&pl);
        return mt_error_sys(err, errno, "cannot start task %s", pl.name);
    }
    /* Fork twice: the supervisor is reparented to init, in its own session. */
    pid_t c = fork();
    if (c == 0) {
        close(fds[0]);
        setsid();
        pid_t s = fork();
        if (s == 0)
            sup_supervise(&pl, fds[1]);
        _exit(s < 0 ? 1 : 0);
    }
    int fork_errno = errno;
    close(fds[1]);
    cleanup_free char *task_name = xstrdup(pl.name);
    plan_free(&pl);
    if (c < 0) {
        close(fds[0]);
        return mt_error_sys(err, fork_errno, "cannot start task %s", task_name);
    }
    int status = 0;
    while (waitpid(c, &status, 0) < 0 && errno == EINTR)
        ;
    /* The supervisor's word: "OK" or "ER<reason>", then EOF. */
    strbuf msg = STRBUF_INIT;
    int64_t deadline = clock_mono_ms() + (int64_t)START_TIMEOUT_S * 1000;
    bool timed_out = false;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        char buf[1200];
        ssize_t r = read(fds[0], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        sb_append(&msg, buf, (size_t)r);
    }
    close(fds[0]);
    const char *m = sb_str(&msg);
    int rc = 0;
    if (strncmp(m, "OK", 2) == 0) {
        rc = 0;
    } else if (timed_out) {
        rc = mt_error_set(err, MT_ERR_GENERIC, "task %s did not start within %d s", task_name,
                          START_TIMEOUT_S);
    } else {
        cleanup_free char *tail = log_tail(wd);
        size_t ml = strlen(m);
        while (ml && m[ml - 1] == '\n')
            ml--;
        if (strncmp(m, "ER", 2) == 0)
            rc = mt_error_set(err, MT_ERR_GENERIC, "task %s could not start: %.*s%s%s", task_name,
                              (int)(ml - 2), m + 2, *tail ? "\n" : "", tail);
        else
            rc = mt_error_set(err, MT_ERR_GENERIC,
                              "task %s could not start: its supervisor ended without a word",
                              task_name);
    }
    sb_free(&msg);
    return rc;
}

/* ---- inspect, stop ------------------------------------------------------------------------- */

struct procref {
    pid_t pid;
    unsigned long long start;
    bool group;
    int64_t started_at_ms;
};

static bool read_procref(const char *wd, const char *file, struct procref *r)
{
    memset(r, 0, sizeof(*r));
    cleanup_free char *path = wd_file(wd, file);
    cleanup_json json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return false;
    r->pid = (pid_t)jint(j, "pid");
    r->start = (unsigned long long)jint(j, "start");
    r->group = json_is_true(json_object_get(j, "group"));
    r->started_at_ms = jint(j, "started_at_ms");
    return r->pid > 0;
}

static bool read_exit(const char *wd, rt_status *st)
{
    cleanup_free char *path = wd_file(wd, F_EXIT);
    cleanup_json json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return false;
    st->state = RT_EXITED;
    st->exit_code = (int)jint(j, "exit_code");
    st->oom_killed = json_is_true(json_object_get(j, "oom_killed"));
    st->started_at_ms = jint(j, "started_at_ms");
    st->finished_at_ms = jint(j, "finished_at_ms");
    return true;
}

static void inspect_wd(const char *wd, rt_status *st)
{
    memset(st, 0, sizeof(*st));
    cleanup_free char *task = wd_file(wd, F_TASK);
    if (!fs_exists(task)) {
        st->state = RT_GONE;
        return;
    }
    if (read_exit(wd, st))
        return;
    struct procref sup, main_ref;
    if (!read_procref(wd, F_SUP, &sup)) {
        st->state = RT_CREATED;
        return;
    }
    bool have_main = read_procref(wd, F_STARTED, &main_ref);
    st->started_at_ms = have_main ? main_ref.started_at_ms : 0;
    if (sup_proc_alive(sup.pid, sup.start)) {
        st->state = RT_RUNNING;
        return;
    }
    if (read_exit(wd, st)) /* it has just finished */
        return;
    /* The supervisor is gone without a word (killed by hand, or the machine rebooted). */
    st->state = have_main && sup_proc_alive(main_ref.pid, main_ref.start) ? RT_RUNNING : RT_GONE;
}

int sup_inspect(const sup_driver *d, const char *handle, rt_status *st, mt_error **err)
{
    cleanup_free char *wd = sup_handle_workdir(d, handle, err);
    if (!wd)
        return -1;
    inspect_wd(wd, st);
    return 0;
}

static void signal_task(const struct procref *m, int sig)
{
    if (!sup_proc_alive(m->pid, m->start))
        return;
    kill(m->group ? -m->pid : m->pid, sig);
}

/* A container's PID 1 ignores a signal it has no handler for: until manta-init (or the task)
 * is ready, a SIGTERM sent to a task that has just started would be lost and the stop would wait
 * out the whole grace period. manta-init says it is ready by renaming itself (INIT_READY_NAME),
 * after it has blocked the signals it forwards (/proc cannot show that mask while it sleeps in
 * sigwaitinfo); until then PID 1 may still be runc's own init, whose SIGTERM handler would not
 * pass the signal on. Without manta-init the task is PID 1 and ready once it handles SIGTERM
 * (SigCgt). Waits at most until `end` (monotonic ms). Not for process groups (the process
 * runtime): their processes are not PID 1. */
#define INIT_READY_NAME "manta-init" /* src/init/manta_init.c */
static void wait_term_ready(const sup_driver *d, const struct procref *m, int64_t end)
{
    if (m->group)
        return;
    for (;;) {
        char v[64];
        unsigned long long cgt = 0;
        const char *key = d->init ? "Name" : "SigCgt";
        if (!proc_status_field(m->pid, key, v, sizeof(v)))
            return; /* gone */
        if (d->init ? !strcmp(v, INIT_READY_NAME)
                    : sscanf(v, "%llx", &cgt) != 1 || (cgt & (1ULL << (SIGTERM - 1))))
            return;
        if (clock_mono_ms() >= end)
            return;
        sup_sleep_ms(10);
    }
}

/* Wait until the task is no longer running or `ms` passed; returns its state. */
static rt_state wait_not_running(const char *wd, int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;
    rt_status st;
    for (;;) {
        inspect_wd(wd, &st);
        if (st.state != RT_RUNNING || clock_mono_ms() >= end)
            return st.state;
        sup_sleep_ms(20);
    }
}

int sup_stop(const sup_driver *d, const char *handle, int grace_s, mt_error **err)
{
    cleanup_free char *wd = NULL;
    cleanup_json json_t *t = sup_load_task(d, handle, &wd, err);
    if (!t)
        return -1;
    const char *name = jstr(t, "name");
    rt_status st;
    inspect_wd(wd, &st);
    if (st.state != RT_RUNNING)
        return 0;
    struct procref m;
    int64_t end = clock_mono_ms() + LAUNCH_WAIT_S * 1000;
    while (!read_procref(wd, F_STARTED, &m)) { /* still launching */
        inspect_wd(wd, &st);
        if (st.state != RT_RUNNING)
            return 0;
        if (clock_mono_ms() >= end)
            return mt_error_set(err, MT_ERR_GENERIC,
                                "task %s is still being launched after %d s; try again", name,
                                LAUNCH_WAIT_S);
        sup_sleep_ms(20);
    }
    if (grace_s > 0) {
        /* the grace period counts from here: waiting for readiness is part of it */
        int64_t grace_end = clock_mono_ms() + (int64_t)grace_s * 1000;
        wait_term_ready(d, &m, grace_end);
        signal_task(&m, SIGTERM);
        int64_t left = grace_end - clock_mono_ms();
        if (wait_not_running(wd, left > 0 ? left : 0) != RT_RUNNING)
            goto stopped;
    }
    signal_task(&m, SIGKILL);
    if (wait_not_running(wd, (int64_t)KILL_WAIT_S * 1000) == RT_RUNNING)
        return mt_error_set(err, MT_ERR_GENERIC, "task %s did not end %d s after SIGKILL", name,
                            KILL_WAIT_S);
stopped:
    inspect_wd(wd, &st);
    if (st.state == RT_GONE) {
        /* the supervisor was gone: record what we know */
        int sig = grace_s > 0 ? SIGTERM : SIGKILL;
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"exit_code\": %d, \"signal\": %d, \"oom_killed\": false, \"started_at_ms\": "
                 "%lld, \"finished_at_ms\": %lld, \"error\": \"stopped without its supervisor; "
                 "exit status unknown\"}\n",
                 128 + sig, sig, (long long)m.started_at_ms, (long long)clock_wall_ms());
        cleanup_free char *exitf = wd_file(wd, F_EXIT);
        mt_error *e = NULL;
        if (fs_write_atomic(exitf, text, strlen(text), 0644, &e) < 0)
            mt_error_free(&e);
    }
    return 0;
}

/* ---- logs, list ---------------------------------------------------------------------------- */

int sup_logs(const sup_driver *d, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
             mt_error **err)
{
    *out = NULL;
    *len = 0;
    cleanup_free char *wd = NULL;
    cleanup_json json_t *t = sup_load_task(d, handle, &wd, err);
    if (!t)
        return -1;
    uint64_t keep = (uint64_t)jint(t, "log_limit");
    if (keep && (!limit || keep < limit))
        limit = keep;
    cleanup_free char *old = wd_file(wd, F_LOG_OLD);
    cleanup_free char *cur = wd_file(wd, F_LOG);
    /* open both before reading, so a rotation in between loses nothing we had */
    cleanup_close int fo = open(old, O_RDONLY | O_CLOEXEC);
    cleanup_close int fc = open(cur, O_RDONLY | O_CLOEXEC);
    struct stat so = {0}, sc = {0};
    if (fo >= 0 && fstat(fo, &so) < 0)
        so.st_size = 0;
    if (fc >= 0 && fstat(fc, &sc) < 0)
        sc.st_size = 0;
    uint64_t a = fo >= 0 ? (uint64_t)so.st_size : 0, b = fc >= 0 ? (uint64_t)sc.st_size : 0;
    uint64_t total = a + b, want = limit && limit < total ? limit : total;
    if (want > SIZE_MAX - 1)
        return mt_error_set(err, MT_ERR_IO, "the log of %s is too large to read", handle);
    uint8_t *buf = xmalloc((size_t)want + 1);
    size_t got = 0;
    uint64_t skip = total - want; /* bytes of the oldest part left out */
    struct {
        int fd;
        uint64_t size;
    } parts[2] = {{fo, a}, {fc, b}};
    for (size_t i = 0; i < 2; i++) {
        if (parts[i].fd < 0 || parts[i].size == 0)
            continue;
        if (skip >= parts[i].size) {
            skip -= parts[i].size;
            continue;
        }
        uint64_t off = skip, n = parts[i].size - skip;
        skip = 0;
        while (n && got < want) {
            size_t chunk = (size_t)(n < want - got ? n : want - got);
            ssize_t r = pread(parts[i].fd, buf + got, chunk, (off_t)off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
            off += (uint64_t)r;
            n -= (uint64_t)r;
        }
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int sup_list(const sup_driver *d, const char *node_xid, char ***handles, mt_error **err)
{
    *handles = xcalloc(1, sizeof(char *));
    if (!sup_safe_name(node_xid))
        return mt_error_set(err, MT_ERR_USAGE, "invalid node id '%s'", node_xid ? node_xid : "");
    cleanup_free char *dir = fs_join(d->records, node_xid);
    cleanup_dir DIR *dh = opendir(dir);
    if (!dh) {
        if (errno == ENOENT)
            return 0;
        return mt_error_sys(err, errno, "cannot read the task records in %s", dir);
    }
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        cleanup_free char *rec = fs_join(dir, de->d_name);
        char target[4096];
        ssize_t l = readlink(rec, target, sizeof(target) - 1);
        if (l <= 0)
            continue;
        target[l] = '\0';
        cleanup_free char *task = wd_file(target, F_TASK);
        cleanup_json json_t *t = json_load_file(task, 0, NULL);
        bool mine = t && jstr(t, "node_xid") && strcmp(jstr(t, "node_xid"), node_xid) == 0 &&
                    jstr(t, "driver") && strcmp(jstr(t, "driver"), d->name) == 0;
        if (!mine)
            continue;
        *handles = xrealloc(*handles, (n + 2) * sizeof(char *));
        (*handles)[n++] = xasprintf("%s:%s", d->name, target);
        (*handles)[n] = NULL;
    }
    return 0;
}

/* ---- remove -------------------------------------------------------------------------------- */

int sup_remove_begin(const sup_driver *d, const char *handle, mt_error **err)
{
    cleanup_free char *wd = sup_handle_workdir(d, handle, err);
    if (!wd)
        return -1;
    rt_status st;
    inspect_wd(wd, &st);
    if (st.state == RT_RUNNING && sup_stop(d, handle, 0, err) < 0)
        return mt_error_wrap(err, "cannot remove the task");
    /* let the supervisor finish its own cleanup (runc delete, cgroups) */
    struct procref sup;
    if (read_procref(wd, F_SUP, &sup)) {
        int64_t end = clock_mono_ms() + SUP_EXIT_WAIT_S * 1000;
        while (sup_proc_alive(sup.pid, sup.start) && clock_mono_ms() < end)
            sup_sleep_ms(20);
    }
    return 0;
}

void sup_remove_finish(const sup_driver *d, const char *wd, json_t *task)
{
    const char *rel = jstr(task, "cgroup");
    if (rel && strncmp(rel, SUP_CGROUP_PARENT "/", strlen(SUP_CGROUP_PARENT) + 1) == 0) {
        cleanup_strv char **dirs = sup_cgroup_dirs(&d->cg, rel);
        for (char **p = dirs; *p; p++)
            if (fs_is_dir(*p))
                sup_cgroup_destroy(*p);
    }
    const char *files[] = {F_EXIT,     F_STARTED,     F_SUP,        F_LOG,           F_LOG_OLD,
                           F_RUNC_PID, F_EXIT ".tmp", F_SUP ".tmp", F_STARTED ".tmp"};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        cleanup_free char *p = wd_file(wd, files[i]);
        unlink(p);
    }
    const char *name = jstr(task, "name"), *xid = jstr(task, "node_xid");
    if (name && xid) {
        cleanup_free char *rec = record_path(d, xid, name);
        char target[4096];
        ssize_t l = readlink(rec, target, sizeof(target) - 1);
        if (l > 0) {
            target[l] = '\0';
            if (strcmp(target, wd) == 0)
                unlink(rec);
        }
    }
    cleanup_free char *tp = wd_file(wd, F_TASK);
    unlink(tp);
}

int sup_remove(const sup_driver *d, const char *handle, sup_cleanup_fn cleanup, mt_error **err)
{
    cleanup_free char *wd = NULL;
    mt_error *e = NULL;
    cleanup_json json_t *t = sup_load_task(d, handle, &wd, &e);
    if (!t) {
        if (e && e->code == MT_ERR_NOTFOUND) { /* already removed */
            mt_error_free(&e);
            return 0;
        }
        *err = e;
        return -1;
    }
    if (sup_remove_begin(d, handle, err) < 0 || (cleanup && cleanup(d, wd, t, err) < 0))
        return -1;
    sup_remove_finish(d, wd, t);
    return 0;
}

/* ---- exit events --------------------------------------------------------------------------- */

struct sup_watched {
    int wd; /* inotify watch descriptor */
    char *handle;
};

struct sup_watch {
    pthread_mutex_t mu;
    int ifd, stopfd;
    pthread_t thread;
    void (*cb)(void *ctx, const char *handle);
    void *ctx;
    struct sup_watched *v;
    size_t n;
};

static void *watch_main(void *arg)
{
    struct sup_watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p[2] = {{.fd = w->ifd, .events = POLLIN},
                              {.fd = w->stopfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        ssize_t r = read(w->ifd, buf, sizeof(buf));
        if (r <= 0)
            continue;
        for (char *q = buf; q < buf + r;) {
            struct inotify_event *ev = (struct inotify_event *)q;
            q += sizeof(*ev) + ev->len;
            bool gone = ev->mask & IN_IGNORED;
            bool exited = ev->len && strcmp(ev->name, F_EXIT) == 0;
            if (!gone && !exited)
                continue;
            char *h = NULL;
            pthread_mutex_lock(&w->mu);
            for (size_t i = 0; i < w->n; i++) {
                if (w->v[i].wd != ev->wd)
                    continue;
                if (gone) { /* the folder was removed: forget it */
                    free(w->v[i].handle);
                    w->v[i] = w->v[--w->n];
                } else {
                    h = xstrdup(w->v[i].handle);
                }
                break;
            }
            pthread_mutex_unlock(&w->mu);
            if (h)
                w->cb(w->ctx, h);
            free(h);
        }
    }
    return NULL;
}

int sup_watch_exits(sup_driver *d, void (*cb)(void *ctx, const char *handle), void *ctx,
                    mt_error **err)
{
    struct sup_watch *w = d->watch;
    if (!cb) {
        if (!w)
            return 0;
        uint64_t one = 1;
        if (write(w->stopfd, &one, sizeof(one)) < 0) {
            /* only on overflow */
        }
        pthread_join(w->thread, NULL);
        close(w->ifd);
        close(w->stopfd);
        for (size_t i = 0; i < w->n; i++)
            free(w->v[i].handle);
        free(w->v);
        pthread_mutex_destroy(&w->mu);
        free(w);
        d->watch = NULL;
        return 0;
    }
    if (w)
        return 0;
    w = xcalloc(1, sizeof(*w));
    w->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->cb = cb;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    int e = w->ifd < 0 || w->stopfd < 0 ? errno : pthread_create(&w->thread, NULL, watch_main, w);
    if (e) {
        if (w->ifd >= 0)
            close(w->ifd);
        if (w->stopfd >= 0)
            close(w->stopfd);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return mt_error_sys(err, e, "cannot watch for task exits");
    }
    d->watch = w;
    return 0;
}

void sup_watch_task(const sup_driver *d, const char *handle)
{
    struct sup_watch *w = d->watch;
    if (!w)
        return;
    cleanup_free char *wd = sup_handle_workdir(d, handle, NULL);
    if (!wd)
        return;
    int iw = inotify_add_watch(w->ifd, wd, IN_MOVED_TO | IN_ONLYDIR);
    if (iw < 0)
        return;
    pthread_mutex_lock(&w->mu);
    size_t i = 0;
    while (i < w->n && w->v[i].wd != iw)
        i++;
    if (i == w->n) {
        w->v = xrealloc(w->v, (w->n + 1) * sizeof(*w->v));
        w->v[w->n++] = (struct sup_watched){iw, xstrdup(handle)};
    } else if (strcmp(w->v[i].handle, handle) != 0) {
        free(w->v[i].handle);
        w->v[i].handle = xstrdup(handle);
    }
    pthread_mutex_unlock(&w->mu);
    cleanup_free char *exitf = wd_file(wd, F_EXIT);
    if (fs_exists(exitf)) /* ended before the watch began */
        w->cb(w->ctx, handle);
}
