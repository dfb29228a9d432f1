/* sup_start.c - starting a task of the daemonless drivers: the plan the supervisor follows
 * (prepared before fork, so that it allocates nothing), the double fork that makes the
 * supervisor a child of init, and waiting for its word. See runtime_sup.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_sup.h"
#include "strbuf.h"
#include "sup_impl.h"

#define START_TIMEOUT_S 120 /* runc create + start, or fork + exec */

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
static int plan_build(const sup_driver *d, json_t *t, const char *wd, struct plan *pl,
                      mt_error **err)
{
    memset(pl, 0, sizeof(*pl));
    pl->workdir = xstrdup(wd);
    pl->log = sup_wd_file(wd, F_LOG);
    pl->log_old = sup_wd_file(wd, F_LOG_OLD);
    pl->sup = sup_wd_file(wd, F_SUP);
    pl->started = sup_wd_file(wd, F_STARTED);
    pl->exitf = sup_wd_file(wd, F_EXIT);
    pl->log_limit = (uint64_t)sup_jint(t, "log_limit");
    pl->name = xstrdup(sup_jstr(t, "name"));
    if (strcmp(d->name, "runc") == 0) {
        const char *bin = sup_jstr(t, "runc"), *root = sup_jstr(t, "runc_root"),
                   *bundle = sup_jstr(t, "bundle");
        if (!bin || !root || !bundle)
            return mt_error_set(err, MT_ERR_PARSE, "the task.json of %s lacks its runc bundle", wd);
        pl->is_runc = true;
        pl->runc_bin = xstrdup(bin);
        pl->root = xstrdup(root);
        pl->bundle = xstrdup(bundle);
        pl->pidfile = sup_wd_file(wd, F_RUNC_PID);
        unlink(pl->pidfile);
        char *c[] = {pl->runc_bin, "--root",     pl->root,    "create", "--bundle",
                     pl->bundle,   "--pid-file", pl->pidfile, pl->name, NULL};
        char *s[] = {pl->runc_bin, "--root", pl->root, "start", pl->name, NULL};
        char *dl[] = {pl->runc_bin, "--root", pl->root, "delete", "--force", pl->name, NULL};
        memcpy(pl->runc_create, c, sizeof(c));
        memcpy(pl->runc_start, s, sizeof(s));
        memcpy(pl->runc_delete, dl, sizeof(dl));
        const char *rel = sup_jstr(t, "cgroup");
        pl->oom = rel ? sup_oom_file(&d->cg, rel) : NULL;
        const char *warning = sup_jstr(t, "warning");
        if (warning && *warning)
            pl->warning = xstrdup(warning);
    } else {
        pl->argv = json_strv(json_object_get(t, "argv"));
        pl->envp = json_strv(json_object_get(t, "env"));
        if (!pl->argv[0])
            return mt_error_set(err, MT_ERR_PARSE, "the task.json of %s has no command", wd);
        sup_plan_cgroups(d, t, pl);
    }
    return 0;
}

/* The last lines (at most ~1 KiB) of a task's log, for messages. Owned, "" if none. */
static char *log_tail(const char *wd)
{
    cleanup_free char *path = sup_wd_file(wd, F_LOG);
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
    const char *name = sup_jstr(t, "name");
    cleanup_free char *task_path = sup_wd_file(wd, F_TASK);
    cleanup_close int lock = open(task_path, O_RDONLY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0)
        return mt_error_set(err, MT_ERR_EXISTS, "task %s is being started by another call", name);
    cleanup_free char *supf = sup_wd_file(wd, F_SUP);
    cleanup_free char *exitf = sup_wd_file(wd, F_EXIT);
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
