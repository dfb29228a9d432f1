/* runtime_sup.c - task supervision shared by the daemonless drivers (runc and process), on the
 * node's side: the driver state, task workdirs, records and handles, logs and list. The design
 * is in runtime_sup.h; starting the supervisor is in sup_start.c (the supervisor itself in
 * supervisor.c), inspect/stop/remove in sup_stop.c, the exit events in sup_watch.c, the
 * cgroups in sup_cgroup.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "node_config.h"
#include "fsutil.h"
#include "json.h"
#include "mem.h"
#include "paths.h"
#include "proc.h"
#include "runtime.h"
#include "runtime_sup.h"
#include "sup_impl.h"

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

char *sup_wd_file(const char *wd, const char *name)
{
    return fs_join(wd, name);
}

json_int_t sup_jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

const char *sup_jstr(json_t *o, const char *key)
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
    cleanup_free char *task = sup_wd_file(abs, F_TASK);
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

char *sup_record_path(const sup_driver *d, const char *node_xid, const char *name)
{
    cleanup_free char *dir = fs_join(d->records, node_xid);
    return fs_join(dir, name);
}

int sup_commit(const sup_driver *d, const char *wd, json_t *task, char **handle, mt_error **err)
{
    const char *name = sup_jstr(task, "name"), *xid = sup_jstr(task, "node_xid");
    cleanup_free char *recdir = fs_join(d->records, xid);
    if (fs_mkdir_p(recdir, 0700, err) < 0)
        return mt_error_wrap(err, "cannot record task %s", name);
    cleanup_free char *text = json_dumps(task, JSON_INDENT(2));
    cleanup_free char *path = sup_wd_file(wd, F_TASK);
    cleanup_free char *line = xasprintf("%s\n", text);
    if (fs_write_atomic(path, line, strlen(line), 0600, err) < 0)
        return -1;
    cleanup_free char *rec = sup_record_path(d, xid, name);
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
    cleanup_free char *path = sup_wd_file(wd, F_TASK);
    json_error_t je;
    cleanup_json json_t *t = json_load_file(path, 0, &je);
    if (!t) {
        if (!fs_exists(path))
            return mt_error_set(err, MT_ERR_NOTFOUND, "task %s does not exist (removed?)", handle),
                   NULL;
        return mt_error_set(err, MT_ERR_PARSE, "%s is damaged: %s", path, je.text), NULL;
    }
    const char *drv = sup_jstr(t, "driver");
    if (!drv || strcmp(drv, d->name) != 0 || !sup_jstr(t, "name"))
        return mt_error_set(err, MT_ERR_USAGE, "%s does not describe a %s task", path, d->name),
               NULL;
    if (wd_out)
        *wd_out = steal_ptr(wd);
    return steal_ptr(t);
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
    uint64_t keep = (uint64_t)sup_jint(t, "log_limit");
    if (keep && (!limit || keep < limit))
        limit = keep;
    cleanup_free char *old = sup_wd_file(wd, F_LOG_OLD);
    cleanup_free char *cur = sup_wd_file(wd, F_LOG);
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
        cleanup_free char *task = sup_wd_file(target, F_TASK);
        cleanup_json json_t *t = json_load_file(task, 0, NULL);
        bool mine = t && sup_jstr(t, "node_xid") &&
                    strcmp(sup_jstr(t, "node_xid"), node_xid) == 0 && sup_jstr(t, "driver") &&
                    strcmp(sup_jstr(t, "driver"), d->name) == 0;
        if (!mine)
            continue;
        *handles = xrealloc(*handles, (n + 2) * sizeof(char *));
        (*handles)[n++] = xasprintf("%s:%s", d->name, target);
        (*handles)[n] = NULL;
    }
    return 0;
}
