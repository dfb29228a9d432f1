/* sup_stop.c - the daemonless drivers' view of a running task, over the files its supervisor
 * writes: inspect (the exit record, else whether the supervisor still runs), stop (SIGTERM once
 * the task can handle it, SIGKILL after the grace period) and remove. See runtime_sup.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "mem.h"
#include "proc.h"
#include "runtime.h"
#include "runtime_sup.h"
#include "sup_impl.h"

#define LAUNCH_WAIT_S   10 /* stop: a supervisor that has not recorded the task yet */
#define KILL_WAIT_S     15 /* after SIGKILL */
#define SUP_EXIT_WAIT_S 20 /* remove: the supervisor's own cleanup (runc delete) */

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
    cleanup_free char *path = sup_wd_file(wd, file);
    cleanup_json json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return false;
    r->pid = (pid_t)sup_jint(j, "pid");
    r->start = (unsigned long long)sup_jint(j, "start");
    r->group = json_is_true(json_object_get(j, "group"));
    r->started_at_ms = sup_jint(j, "started_at_ms");
    return r->pid > 0;
}

static bool read_exit(const char *wd, rt_status *st)
{
    cleanup_free char *path = sup_wd_file(wd, F_EXIT);
    cleanup_json json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return false;
    st->state = RT_EXITED;
    st->exit_code = (int)sup_jint(j, "exit_code");
    st->oom_killed = json_is_true(json_object_get(j, "oom_killed"));
    st->started_at_ms = sup_jint(j, "started_at_ms");
    st->finished_at_ms = sup_jint(j, "finished_at_ms");
    return true;
}

static void inspect_wd(const char *wd, rt_status *st)
{
    memset(st, 0, sizeof(*st));
    cleanup_free char *task = sup_wd_file(wd, F_TASK);
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
    const char *name = sup_jstr(t, "name");
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
        cleanup_free char *exitf = sup_wd_file(wd, F_EXIT);
        mt_error *e = NULL;
        if (fs_write_atomic(exitf, text, strlen(text), 0644, &e) < 0)
            mt_error_free(&e);
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
    const char *rel = sup_jstr(task, "cgroup");
    if (rel && strncmp(rel, SUP_CGROUP_PARENT "/", strlen(SUP_CGROUP_PARENT) + 1) == 0) {
        cleanup_strv char **dirs = sup_cgroup_dirs(&d->cg, rel);
        for (char **p = dirs; *p; p++)
            if (fs_is_dir(*p))
                sup_cgroup_destroy(*p);
    }
    const char *files[] = {F_EXIT,     F_STARTED,     F_SUP,        F_LOG,           F_LOG_OLD,
                           F_RUNC_PID, F_EXIT ".tmp", F_SUP ".tmp", F_STARTED ".tmp"};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        cleanup_free char *p = sup_wd_file(wd, files[i]);
        unlink(p);
    }
    const char *name = sup_jstr(task, "name"), *xid = sup_jstr(task, "node_xid");
    if (name && xid) {
        cleanup_free char *rec = sup_record_path(d, xid, name);
        char target[4096];
        ssize_t l = readlink(rec, target, sizeof(target) - 1);
        if (l > 0) {
            target[l] = '\0';
            if (strcmp(target, wd) == 0)
                unlink(rec);
        }
    }
    cleanup_free char *tp = sup_wd_file(wd, F_TASK);
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
