/* test_runtime_runc.c - the runc and process drivers on the real thing: runc, overlays and
 * cgroups, with an image built from Debian's busybox-static imported into a temporary image
 * store. Needs root, runc and /bin/busybox (busybox-static); skipped otherwise.
 *
 * Every wait is bounded; every task a test creates is registered in the fixture, and the
 * teardowns stop and remove them (and unmount, delete runc containers and cgroups left by a
 * failed test) whatever happened.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "err.h"
#include "fsutil.h"
#include "images.h"
#include "runtime_sup.h"
#include "mem.h"
#include "runtime.h"
#include "strbuf.h"

#define IMAGE       "manta-test:busybox"
#define MODULE_TEXT "print('hello from the module')\n"
#define DS_TEXT     "dataset says hi\n"
#define MAX_TASKS   32
#define WAIT_MS     30000

struct fixture {
    bool skip;
    char *why_skip;
    char dir[64];
    char *store, *state, *module, *ds, *ctl, *tasks;
    char xid[40], prefix[40];
    node_config cfg;
    runtime *runc, *proc;
    /* tasks to clean up */
    char *handles[MAX_TASKS];
    runtime *owners[MAX_TASKS];
    char names[MAX_TASKS][80], wds[MAX_TASKS][256];
    size_t nh;
    int seq;
};

/* ---- helpers -------------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static bool is_mounted(const char *path)
{
    FILE *fp = fopen("/proc/self/mounts", "r");
    if (!fp)
        return false;
    char line[8192];
    bool found = false;
    while (!found && fgets(line, sizeof(line), fp)) {
        char dev[256], mnt[4096];
        if (sscanf(line, "%255s %4095s", dev, mnt) == 2 && strcmp(mnt, path) == 0)
            found = true;
    }
    fclose(fp);
    return found;
}

static const char *handle_wd(const char *handle)
{
    return strchr(handle, ':') + 1;
}

/* A spec with the fixture's defaults; strings point into the fixture or are static. */
static task_spec spec_for(struct fixture *f, const char *const *argv, const char *const *env)
{
    task_spec s;
    memset(&s, 0, sizeof(s));
    s.node_xid = f->xid;
    s.image = IMAGE;
    s.module_path = f->module;
    s.env = env;
    s.argv = argv;
    s.pull_timeout = 10;
    return s;
}

/* Create a task (name and workdir made here) and register it for cleanup. Returns the handle
 * (owned by the fixture) or NULL with *err. */
static const char *create_task(struct fixture *f, runtime *rt, task_spec *s, mt_error **err)
{
    assert_true(f->nh < MAX_TASKS);
    char *name = f->names[f->nh], *wd = f->wds[f->nh];
    /* formatted into locals: the sources live in *f too (gcc -Wrestrict) */
    char nbuf[sizeof(f->names[0])], wbuf[sizeof(f->wds[0])];
    snprintf(nbuf, sizeof(nbuf), "%s-%d", f->prefix, ++f->seq);
    snprintf(wbuf, sizeof(wbuf), "%s/%s", f->tasks, nbuf);
    memcpy(name, nbuf, sizeof(nbuf));
    memcpy(wd, wbuf, sizeof(wbuf));
    s->name = name;
    s->workdir = wd;
    char *h = NULL;
    if (rt->ops->create(rt, s, &h, err) < 0)
        return NULL;
    f->handles[f->nh] = h;
    f->owners[f->nh] = rt;
    f->nh++;
    return h;
}

static const char *run_task(struct fixture *f, runtime *rt, task_spec *s)
{
    mt_error *e = NULL;
    const char *h = create_task(f, rt, s, &e);
    if (!h)
        fail_msg("create: %s", mt_error_msg(e));
    if (rt->ops->start(rt, h, &e) < 0)
        fail_msg("start: %s", mt_error_msg(e));
    return h;
}

static rt_status wait_done(runtime *rt, const char *h, int ms)
{
    rt_status st;
    mt_error *e = NULL;
    int64_t end = mono_ms() + ms;
    for (;;) {
        if (rt->ops->inspect(rt, h, &st, &e) < 0)
            fail_msg("inspect: %s", mt_error_msg(e));
        if (st.state == RT_EXITED || st.state == RT_GONE)
            return st;
        if (mono_ms() > end)
            fail_msg("task %s still running after %d ms", h, ms);
        sleep_ms(50);
    }
}

static char *get_logs(runtime *rt, const char *h, uint64_t limit, size_t *len_out)
{
    uint8_t *out = NULL;
    size_t len = 0;
    mt_error *e = NULL;
    if (rt->ops->logs(rt, h, limit, &out, &len, &e) < 0)
        fail_msg("logs: %s", mt_error_msg(e));
    char *s = xmalloc(len + 1);
    memcpy(s, out, len);
    s[len] = '\0';
    free(out);
    if (len_out)
        *len_out = len;
    return s;
}

/* Wait until the task's log contains `what`. */
static void wait_log(runtime *rt, const char *h, const char *what, int ms)
{
    int64_t end = mono_ms() + ms;
    for (;;) {
        cleanup_free char *log = get_logs(rt, h, 0, NULL);
        if (strstr(log, what))
            return;
        if (mono_ms() > end)
            fail_msg("'%s' not in the log of %s after %d ms; log:\n%s", what, h, ms, log);
        sleep_ms(50);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lines of text, sorted (owned strv). */
static char **sorted_lines(const char *text)
{
    char **v = xcalloc(1, sizeof(char *));
    size_t n = 0;
    for (const char *p = text; *p;) {
        size_t l = strcspn(p, "\n");
        if (l) {
            v = xrealloc(v, (n + 2) * sizeof(char *));
            v[n++] = xstrndup(p, l);
            v[n] = NULL;
        }
        p += l + (p[l] ? 1 : 0);
    }
    qsort(v, n, sizeof(char *), cmp_str);
    return v;
}

static void assert_lines_equal(const char *text, const char *const *expected)
{
    cleanup_strv char **got = sorted_lines(text);
    size_t n = 0;
    while (expected[n])
        n++;
    char **want = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        want[i] = (char *)expected[i];
    qsort(want, n, sizeof(char *), cmp_str);
    size_t i = 0;
    for (; got[i] && want[i]; i++)
        if (strcmp(got[i], want[i]) != 0)
            break;
    bool same = !got[i] && !want[i];
    free(want);
    if (!same)
        fail_msg("environment differs:\n%s", text);
}

/* Clean up after a failed test as well: stop and remove every registered task. */
static void cleanup_tasks(struct fixture *f)
{
    for (size_t i = 0; i < f->nh; i++) {
        runtime *rt = f->owners[i];
        mt_error *e = NULL;
        if (rt->ops->stop(rt, f->handles[i], 0, &e) < 0)
            mt_error_free(&e);
        if (rt->ops->remove(rt, f->handles[i], &e) < 0) {
            print_error("cleanup: %s\n", mt_error_msg(e));
            mt_error_free(&e);
        }
        free(f->handles[i]);
    }
    f->nh = 0;
}

/* ---- fixture -------------------------------------------------------------------------------- */

static char *find_in_path(const char *name)
{
    const char *dirs[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                          "/usr/bin",        "/sbin",          "/bin"};
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
        char *p = fs_join(dirs[i], name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

static int group_setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    *state = f;
    cleanup_free char *runc = find_in_path("runc");
    if (geteuid() != 0 || !runc || access("/bin/busybox", X_OK) != 0) {
        f->skip = true;
        f->why_skip = xstrdup(geteuid() != 0 ? "not root"
                              : !runc        ? "runc is not installed"
                                             : "/bin/busybox is missing (busybox-static)");
        print_message("skipping the runc tests: %s\n", f->why_skip);
        return 0;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/manta-test-runc-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    chmod(f->dir, 0755);
    snprintf(f->xid, sizeof(f->xid), "testnode%ld", (long)getpid());
    snprintf(f->prefix, sizeof(f->prefix), "manta-t%ld", (long)getpid());
    f->store = fs_join(f->dir, "images");
    f->state = fs_join(f->dir, "state");
    f->module = fs_join(f->dir, "module.pyz");
    f->ds = fs_join(f->dir, "ds1");
    f->ctl = fs_join(f->dir, "ctl");
    f->tasks = fs_join(f->dir, "tasks");
    mt_error *e = NULL;
    if (fs_mkdir_p(f->ds, 0755, &e) < 0 || fs_mkdir_p(f->ctl, 0755, &e) < 0 ||
        fs_mkdir_p(f->tasks, 0755, &e) < 0)
        return -1;
    write_file(f->module, MODULE_TEXT);
    cleanup_free char *hello = fs_join(f->ds, "hello.txt");
    write_file(hello, DS_TEXT);

    /* the image: busybox and a few applets */
    cleanup_free char *rootfs = fs_join(f->dir, "rootfs");
    cleanup_free char *bin = fs_join(rootfs, "bin");
    cleanup_free char *tmp = fs_join(rootfs, "tmp");
    if (fs_mkdir_p(bin, 0755, &e) < 0 || fs_mkdir_p(tmp, 01777, &e) < 0)
        return -1;
    cleanup_free char *cmd = xasprintf("cp /bin/busybox '%s/busybox'", bin);
    if (system(cmd) != 0)
        return -1;
    const char *applets[] = {"sh", "echo", "cat",   "head", "tail", "sleep", "env",
                             "ls", "grep", "touch", "kill", "true", "rm"};
    for (size_t i = 0; i < ARRAY_LEN(applets); i++) {
        cleanup_free char *link = fs_join(bin, applets[i]);
        if (symlink("busybox", link) < 0)
            return -1;
    }
    if (images_import(f->store, IMAGE, rootfs, false, NULL, &e) < 0) {
        print_error("import: %s\n", mt_error_msg(e));
        return -1;
    }

    config_init_defaults(&f->cfg);
    free(f->cfg.containers.image_store);
    f->cfg.containers.image_store = xstrdup(f->store);
    free(f->cfg.tasks.state_dir);
    f->cfg.tasks.state_dir = xstrdup(f->state);
    f->runc = runtime_runc_new(&f->cfg, &e);
    if (!f->runc) {
        print_error("runtime_runc_new: %s\n", mt_error_msg(e));
        return -1;
    }
    f->proc = runtime_process_new(&f->cfg, &e);
    if (!f->proc)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    if (!f->skip) {
        cleanup_tasks(f);
        runtime_free(f->runc);
        runtime_free(f->proc);
        /* whatever a failed test may have left: containers, mounts, cgroups, files */
        cleanup_free char *cmd = xasprintf(
            "for c in $(runc --root " SUP_RUNC_ROOT " list -q 2>/dev/null | grep '^%s-'); do "
            "runc --root " SUP_RUNC_ROOT " delete -f $c; done; "
            "grep -o ' %s/[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l; "
            "for d in /sys/fs/cgroup/*/manta/%s-* /sys/fs/cgroup/manta/%s-*; do "
            "[ -d \"$d\" ] && rmdir \"$d\"; done; rm -rf '%s'",
            f->prefix, f->dir, f->prefix, f->prefix, f->dir);
        if (system(cmd) != 0)
            print_error("cleanup command failed\n");
        config_free(&f->cfg);
    }
    free(f->store);
    free(f->state);
    free(f->module);
    free(f->ds);
    free(f->ctl);
    free(f->tasks);
    free(f->why_skip);
    free(f);
    return 0;
}

static int test_teardown(void **state)
{
    struct fixture *f = *state;
    if (!f->skip)
        cleanup_tasks(f);
    return 0;
}

#define SKIP_IF_NEEDED(f)                                                                          \
    do {                                                                                           \
        if ((f)->skip)                                                                             \
            skip();                                                                                \
    } while (0)

/* ---- runc ----------------------------------------------------------------------------------- */

static void test_runc_exact_env(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *argv[] = {"env", NULL};
    const char *env[] = {"PATH=/bin",          "HOME=/root",     "TASK_ID=t-1",
                         "RPC_HOST=127.0.0.1", "MANTA_X=a b  c", NULL};
    task_spec s = spec_for(f, argv, env);
    const char *h = run_task(f, f->runc, &s);
    rt_status st = wait_done(f->runc, h, WAIT_MS);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 0);
    assert_false(st.oom_killed);
    assert_true(st.started_at_ms > 0 && st.finished_at_ms >= st.started_at_ms);
    cleanup_free char *log = get_logs(f->runc, h, 0, NULL);
    assert_lines_equal(log, env);

    /* without PATH the driver adds the usual one (runc adds HOME) */
    const char *env2[] = {"TASK_ID=t-2", NULL};
    task_spec s2 = spec_for(f, argv, env2);
    const char *h2 = run_task(f, f->runc, &s2);
    wait_done(f->runc, h2, WAIT_MS);
    cleanup_free char *log2 = get_logs(f->runc, h2, 0, NULL);
    const char *want2[] = {"TASK_ID=t-2", SUP_DEFAULT_PATH, "HOME=/", NULL}; /* no /etc/passwd */
    assert_lines_equal(log2, want2);
}

static void test_runc_mounts_and_privileges(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *script =
        "cat /usr/src/module.pyz; echo '--'; cat /datasets/ds1/hello.txt; "
        "if touch /datasets/ds1/new 2>/dev/null; then echo DS-WRITABLE; else echo DS-READONLY; fi; "
        "if echo x >> /usr/src/module.pyz 2>/dev/null; then echo MOD-WRITABLE; "
        "else echo MOD-READONLY; fi; "
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
        "echo root-writable > /rootfile && cat /rootfile; "
        "echo '-- net'; cat /proc/net/dev";
    const char *argv[] = {"sh", "-c", script, NULL};
    const char *env[] = {"PATH=/bin", NULL};
    const char *names[] = {"ds1"};
    const char *paths[] = {f->ds};
    task_spec s = spec_for(f, argv, env);
    s.ndatasets = 1;
    s.dataset_names = names;
    s.dataset_paths = paths;
    const char *h = run_task(f, f->runc, &s);
    rt_status st = wait_done(f->runc, h, WAIT_MS);
    cleanup_free char *log = get_logs(f->runc, h, 0, NULL);
    if (st.exit_code != 0)
        fail_msg("exit %d, log:\n%s", st.exit_code, log);
    assert_non_null(strstr(log, MODULE_TEXT "--\n" DS_TEXT));
    assert_non_null(strstr(log, "DS-READONLY"));
    assert_non_null(strstr(log, "MOD-READONLY"));
    assert_non_null(strstr(log, "CapEff:\t0000000000000000"));
    assert_non_null(strstr(log, "NoNewPrivs:\t1"));
    assert_non_null(strstr(log, "root-writable"));
    cleanup_free char *newf = fs_join(f->ds, "new");
    assert_false(fs_exists(newf));
    /* host networking: every interface of the host is there */
    mt_error *e = NULL;
    cleanup_free char *netdev = fs_read_file("/proc/net/dev", 1 << 20, NULL, &e);
    assert_non_null(netdev);
    const char *net = strstr(log, "-- net");
    assert_non_null(net);
    int seen = 0;
    for (const char *line = netdev; *line;) {
        size_t l = strcspn(line, "\n");
        const char *colon = memchr(line, ':', l);
        if (colon) {
            const char *n = line;
            while (*n == ' ')
                n++;
            cleanup_free char *needle = xasprintf("%.*s:", (int)(colon - n), n);
            if (!strstr(net, needle))
                fail_msg("interface %s of the host is not visible in the task:\n%s", needle, net);
            seen++;
        }
        line += l + (line[l] ? 1 : 0);
    }
    assert_true(seen >= 1);
    /* the image's files are untouched by the task's writes */
    image_info img;
    assert_int_equal(images_lookup(f->store, IMAGE, &img, &e), 0);
    cleanup_free char *rootfile = fs_join(img.rootfs, "rootfile");
    assert_false(fs_exists(rootfile));
    image_info_free(&img);

    /* datasets_rw */
    const char *argv2[] = {"sh", "-c", "touch /datasets/ds1/new && echo DS-WRITABLE", NULL};
    task_spec s2 = spec_for(f, argv2, env);
    s2.ndatasets = 1;
    s2.dataset_names = names;
    s2.dataset_paths = paths;
    s2.datasets_rw = true;
    const char *h2 = run_task(f, f->runc, &s2);
    st = wait_done(f->runc, h2, WAIT_MS);
    assert_int_equal(st.exit_code, 0);
    assert_true(fs_exists(newf));
    unlink(newf);
}

static void test_runc_exit_codes(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *a1[] = {"sh", "-c", "echo bye; exit 3", NULL};
    task_spec s1 = spec_for(f, a1, env);
    const char *h1 = run_task(f, f->runc, &s1);
    rt_status st = wait_done(f->runc, h1, WAIT_MS);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 3);
    assert_false(st.oom_killed);

    /* killed by a signal from outside: 128 + signal */
    const char *a2[] = {"sleep", "1000", NULL};
    task_spec s2 = spec_for(f, a2, env);
    const char *h2 = run_task(f, f->runc, &s2);
    cleanup_free char *started = fs_join(handle_wd(h2), "started.json");
    mt_error *e = NULL;
    cleanup_free char *sj = fs_read_file(started, 4096, NULL, &e);
    assert_non_null(sj);
    int pid = atoi(strstr(sj, "\"pid\": ") + 7);
    assert_true(pid > 1);
    assert_int_equal(kill(pid, SIGKILL), 0);
    st = wait_done(f->runc, h2, WAIT_MS);
    assert_int_equal(st.exit_code, 137);
    assert_false(st.oom_killed);

    /* a command that does not exist: the container's init (manta-init) starts, says why in
     * the task's log and ends with 127 */
    const char *a3[] = {"no-such-command", NULL};
    task_spec s3 = spec_for(f, a3, env);
    const char *h3 = create_task(f, f->runc, &s3, &e);
    assert_non_null(h3);
    assert_int_equal(f->runc->ops->start(f->runc, h3, &e), 0);
    st = wait_done(f->runc, h3, WAIT_MS);
    assert_int_equal(st.exit_code, 127);
    cleanup_free char *log3 = get_logs(f->runc, h3, 0, NULL);
    assert_non_null(strstr(log3, "manta-init: cannot run 'no-such-command'"));
    /* starting twice is refused */
    assert_int_equal(f->runc->ops->start(f->runc, h1, &e), -1);
    assert_int_equal(e->code, MT_ERR_EXISTS);
    mt_error_free(&e);
    /* the node never has a supervisor as its child (double fork) */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_runc_oom(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {"sh", "-c", "head -c 200000000 /dev/zero | tail; echo tail=$?", NULL};
    task_spec s = spec_for(f, argv, env);
    s.memory_bytes = 32 << 20;
    const char *h = run_task(f, f->runc, &s);
    rt_status st = wait_done(f->runc, h, 60000);
    cleanup_free char *log = get_logs(f->runc, h, 0, NULL);
    if (!st.oom_killed)
        fail_msg("not OOM-killed (exit %d); log:\n%s", st.exit_code, log);
    /* which process the kernel kills (tail, head or the shell) is its choice: no assertion on
     * the output beyond the OOM kill itself */
}

static void test_runc_pids_limit(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {
        "sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-forked",
        NULL};
    task_spec s = spec_for(f, argv, env);
    s.pids_limit = 10;
    const char *h = run_task(f, f->runc, &s);
    rt_status st = wait_done(f->runc, h, WAIT_MS);
    cleanup_free char *log = get_logs(f->runc, h, 0, NULL);
    if (!strstr(log, "can't fork") || strstr(log, "all-forked"))
        fail_msg("the pids limit did not hold (exit %d); log:\n%s", st.exit_code, log);
    assert_int_not_equal(st.exit_code, 0);
}

static void test_runc_stop_with_grace(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    /* a task that handles SIGTERM ends in the grace period with its own code */
    const char *a1[] = {"sh", "-c",
                        "trap 'echo got-term; exit 7' TERM; echo ready; sleep 1000 & wait", NULL};
    task_spec s1 = spec_for(f, a1, env);
    const char *h1 = run_task(f, f->runc, &s1);
    wait_log(f->runc, h1, "ready", WAIT_MS);
    rt_status st;
    mt_error *e = NULL;
    assert_int_equal(f->runc->ops->inspect(f->runc, h1, &st, &e), 0);
    assert_int_equal(st.state, RT_RUNNING);
    int64_t t0 = mono_ms();
    assert_int_equal(f->runc->ops->stop(f->runc, h1, 10, &e), 0);
    int64_t took = mono_ms() - t0;
    assert_int_equal(f->runc->ops->inspect(f->runc, h1, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 7);
    assert_true(took < 5000);
    cleanup_free char *log = get_logs(f->runc, h1, 0, NULL);
    assert_non_null(strstr(log, "got-term"));

    /* a plain sleeper (no handler) is not PID 1 (manta-init is, and passes SIGTERM on): it
     * ends at once, long before the grace period is over. Stopped the moment it was started,
     * several times: the stop waits until manta-init is ready for the SIGTERM and never loses
     * it (a lost one would be a SIGKILL 30 s later, 137) */
    const char *a2[] = {"sleep", "1000", NULL};
    const char *h2 = NULL;
    for (int round = 0; round < 5; round++) {
        task_spec s2 = spec_for(f, a2, env);
        h2 = run_task(f, f->runc, &s2);
        t0 = mono_ms();
        assert_int_equal(f->runc->ops->stop(f->runc, h2, 30, &e), 0);
        took = mono_ms() - t0;
        assert_int_equal(f->runc->ops->inspect(f->runc, h2, &st, &e), 0);
        assert_int_equal(st.state, RT_EXITED);
        if (st.exit_code != 128 + SIGTERM)
            fail_msg("round %d: a stop right after the start ended the sleeper with %d, not %d",
                     round, st.exit_code, 128 + SIGTERM);
        assert_true(took < 10000);
    }
    /* stopping a finished task is fine */
    assert_int_equal(f->runc->ops->stop(f->runc, h2, 1, &e), 0);

    /* a task that ignores SIGTERM is killed after the grace period */
    const char *a4[] = {"sh", "-c", "trap '' TERM; echo ready; sleep 1000", NULL};
    task_spec s4 = spec_for(f, a4, env);
    const char *h4 = run_task(f, f->runc, &s4);
    wait_log(f->runc, h4, "ready", WAIT_MS);
    t0 = mono_ms();
    assert_int_equal(f->runc->ops->stop(f->runc, h4, 1, &e), 0);
    took = mono_ms() - t0;
    assert_int_equal(f->runc->ops->inspect(f->runc, h4, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 137);
    assert_true(took >= 1000 && took < 8000);
}

static void test_runc_logs_limit(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {
        "sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; echo END",
        NULL};
    task_spec s = spec_for(f, argv, env);
    s.log_limit = 4096;
    const char *h = run_task(f, f->runc, &s);
    rt_status st = wait_done(f->runc, h, WAIT_MS);
    assert_int_equal(st.exit_code, 0);
    size_t len;
    cleanup_free char *all = get_logs(f->runc, h, 0, &len);
    assert_int_equal(len, 4096); /* capped by the spec's log_limit, newest part kept */
    assert_non_null(strstr(all, "line 2999\nEND\n"));
    assert_null(strstr(all, "line 1\n"));
    cleanup_free char *last = get_logs(f->runc, h, 14, &len);
    assert_int_equal(len, 14);
    assert_string_equal(last, "line 2999\nEND\n");
    /* what is kept on disk is bounded too */
    const char *wd = handle_wd(h);
    cleanup_free char *cur = fs_join(wd, "output.log");
    cleanup_free char *old = fs_join(wd, "output.log.1");
    struct stat a, b;
    assert_int_equal(stat(cur, &a), 0);
    assert_int_equal(stat(old, &b), 0);
    assert_true(a.st_size <= 4096 && b.st_size <= 4096);

    /* no log_limit: everything, or the newest `limit` bytes */
    const char *argv2[] = {"sh", "-c", "echo first; echo second >&2; echo third", NULL};
    task_spec s2 = spec_for(f, argv2, env);
    const char *h2 = run_task(f, f->runc, &s2);
    wait_done(f->runc, h2, WAIT_MS);
    cleanup_free char *l2 = get_logs(f->runc, h2, 0, NULL);
    assert_string_equal(l2, "first\nsecond\nthird\n");
    cleanup_free char *l3 = get_logs(f->runc, h2, 6, NULL);
    assert_string_equal(l3, "third\n");
}

static bool strv_has(char **v, const char *s)
{
    for (; v && *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}

static void test_runc_list_this_node_only(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {"true", NULL};
    mt_error *e = NULL;
    task_spec s1 = spec_for(f, argv, env);
    const char *h1 = create_task(f, f->runc, &s1, &e);
    task_spec s2 = spec_for(f, argv, env);
    const char *h2 = create_task(f, f->runc, &s2, &e);
    char other[48];
    snprintf(other, sizeof(other), "othernode%ld", (long)getpid());
    task_spec s3 = spec_for(f, argv, env);
    s3.node_xid = other;
    const char *h3 = create_task(f, f->runc, &s3, &e);
    assert_non_null(h1);
    assert_non_null(h2);
    assert_non_null(h3);
    rt_status st;
    assert_int_equal(f->runc->ops->inspect(f->runc, h1, &st, &e), 0);
    assert_int_equal(st.state, RT_CREATED);

    char **mine = NULL, **theirs = NULL, **procs = NULL;
    assert_int_equal(f->runc->ops->list(f->runc, f->xid, &mine, &e), 0);
    assert_int_equal(f->runc->ops->list(f->runc, other, &theirs, &e), 0);
    assert_int_equal(f->proc->ops->list(f->proc, f->xid, &procs, &e), 0);
    assert_true(strv_has(mine, h1) && strv_has(mine, h2) && !strv_has(mine, h3));
    assert_true(mine[0] && mine[1] && !mine[2]);
    assert_true(strv_has(theirs, h3) && theirs[0] && !theirs[1]);
    assert_null(procs[0]); /* the process driver has its own records */
    mem_free_strv(&mine);
    mem_free_strv(&theirs);
    mem_free_strv(&procs);

    /* removed tasks leave the list */
    assert_int_equal(f->runc->ops->remove(f->runc, h1, &e), 0);
    assert_int_equal(f->runc->ops->list(f->runc, f->xid, &mine, &e), 0);
    assert_true(!strv_has(mine, h1) && strv_has(mine, h2));
    mem_free_strv(&mine);
}

static void test_runc_remove_cleans_up(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {"sh", "-c", "echo data > /tmp/scratch; echo ready; sleep 1000", NULL};
    task_spec s = spec_for(f, argv, env);
    s.memory_bytes = 64 << 20;
    s.pids_limit = 50;
    s.cpus = 0.5;
    const char *h = run_task(f, f->runc, &s);
    wait_log(f->runc, h, "ready", WAIT_MS);
    const char *wd = handle_wd(h);
    cleanup_free char *rootfs = xasprintf("%s/bundle/rootfs", wd);
    cleanup_free char *upper = xasprintf("%s/overlay/upper/tmp/scratch", wd);
    cleanup_free char *memcg = xasprintf("/sys/fs/cgroup/memory/manta/%s", s.name);
    cleanup_free char *pidscg = xasprintf("/sys/fs/cgroup/pids/manta/%s", s.name);
    cleanup_free char *name = xstrdup(s.name);
    assert_true(is_mounted(rootfs));
    assert_true(fs_exists(upper)); /* the task's writes land in its upper dir */
    bool v1 = fs_is_dir("/sys/fs/cgroup/memory/manta");
    if (v1) {
        assert_true(fs_is_dir(memcg));
        cleanup_free char *lim = xasprintf("%s/memory.limit_in_bytes", memcg);
        mt_error *e = NULL;
        cleanup_free char *text = fs_read_file(lim, 100, NULL, &e);
        assert_non_null(text);
        assert_int_equal(strtoull(text, NULL, 10), 64 << 20);
        cleanup_free char *quota = xasprintf("/sys/fs/cgroup/cpu/manta/%s/cpu.cfs_quota_us", name);
        cleanup_free char *qtext = fs_read_file(quota, 100, NULL, &e);
        assert_non_null(qtext);
        assert_int_equal(strtoll(qtext, NULL, 10), 50000); /* 0.5 CPU */
        cleanup_free char *pmax = xasprintf("%s/pids.max", pidscg);
        cleanup_free char *ptext = fs_read_file(pmax, 100, NULL, &e);
        assert_non_null(ptext);
        assert_int_equal(strtoll(ptext, NULL, 10), 50);
    }
    /* the image is in use: it cannot be removed */
    image_info img;
    mt_error *e = NULL;
    assert_int_equal(images_lookup(f->store, IMAGE, &img, &e), 0);
    assert_true(images_in_use(img.rootfs) >= 1);
    assert_int_equal(images_remove(f->store, IMAGE, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "in use"));
    mt_error_free(&e);
    image_info_free(&img);

    assert_int_equal(f->runc->ops->remove(f->runc, h, &e), 0);
    assert_false(is_mounted(rootfs));
    cleanup_free char *bundle = fs_join(wd, "bundle");
    cleanup_free char *overlay = fs_join(wd, "overlay");
    cleanup_free char *task = fs_join(wd, "task.json");
    cleanup_free char *log = fs_join(wd, "output.log");
    assert_false(fs_exists(bundle));
    assert_false(fs_exists(overlay));
    assert_false(fs_exists(task));
    assert_false(fs_exists(log));
    assert_true(fs_is_dir(wd)); /* the workdir itself is the node's */
    cleanup_free char *rec = xasprintf("%s/runtime/runc/%s/%s", f->state, f->xid, name);
    struct stat lst;
    assert_int_equal(lstat(rec, &lst), -1);
    if (v1) {
        assert_false(fs_exists(memcg));
        assert_false(fs_exists(pidscg));
    }
    char *argv_state[] = {"runc", "--root", SUP_RUNC_ROOT, "state", name, NULL};
    int rs = images_run(argv_state, 20, NULL, &e);
    assert_int_not_equal(rs, 0); /* runc no longer knows it */
    rt_status st;
    assert_int_equal(f->runc->ops->inspect(f->runc, h, &st, &e), 0);
    assert_int_equal(st.state, RT_GONE);
    /* removing again is fine */
    assert_int_equal(f->runc->ops->remove(f->runc, h, &e), 0);
}

/* A create the node died in (no handle kept): reclaim undoes its mount and bundle. */
static void test_runc_reclaim_after_a_cut_create(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {"true", NULL};
    task_spec s = spec_for(f, argv, env);
    mt_error *e = NULL;
    const char *h = create_task(f, f->runc, &s, &e);
    if (!h)
        fail_msg("create: %s", mt_error_msg(e));
    const char *wd = handle_wd(h);
    cleanup_free char *rootfs = xasprintf("%s/bundle/rootfs", wd);
    cleanup_free char *bundle = fs_join(wd, "bundle");
    cleanup_free char *overlay = fs_join(wd, "overlay");
    assert_true(is_mounted(rootfs));
    if (f->runc->ops->reclaim(f->runc, s.workdir, &e) < 0)
        fail_msg("reclaim: %s", mt_error_msg(e));
    assert_false(is_mounted(rootfs));
    assert_false(fs_exists(bundle));
    assert_false(fs_exists(overlay));
    /* again, and on a folder that is gone: nothing to do */
    assert_int_equal(f->runc->ops->reclaim(f->runc, s.workdir, &e), 0);
    assert_int_equal(f->runc->ops->reclaim(f->runc, "/nonexistent/run-1", &e), 0);
    /* the orphan reaper's removal still works on what is left */
    assert_int_equal(f->runc->ops->remove(f->runc, h, &e), 0);
}

static void test_runc_start_remounts_after_reboot(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {"PATH=/bin", NULL};
    const char *argv[] = {"cat", "/bin/busybox", NULL};
    mt_error *e = NULL;
    task_spec s = spec_for(f, argv, env);
    const char *h = create_task(f, f->runc, &s, &e);
    assert_non_null(h);
    /* a reboot between create and start loses the mount */
    cleanup_free char *rootfs = xasprintf("%s/bundle/rootfs", handle_wd(h));
    assert_true(is_mounted(rootfs));
    assert_int_equal(umount2(rootfs, 0), 0);
    assert_false(is_mounted(rootfs));
    if (f->runc->ops->start(f->runc, h, &e) < 0)
        fail_msg("start: %s", mt_error_msg(e));
    rt_status st = wait_done(f->runc, h, WAIT_MS);
    assert_int_equal(st.exit_code, 0);
    size_t len = 0;
    cleanup_free char *log = get_logs(f->runc, h, 0, &len);
    assert_non_null(log);
    struct stat bb;
    assert_int_equal(stat("/bin/busybox", &bb), 0);
    assert_int_equal(len, (size_t)bb.st_size); /* binary output passes through unchanged */
}

/* In a child process: create and start a task with a fresh runtime, report the handle on `fd`,
 * then die by SIGKILL like a crashed node. */
static void node_that_dies(struct fixture *f, bool runc, int fd)
{
    mt_error *e = NULL;
    runtime *rt = runc ? runtime_runc_new(&f->cfg, &e) : runtime_process_new(&f->cfg, &e);
    if (!rt)
        _exit(2);
    const char *env[] = {"PATH=/bin:/usr/bin", NULL};
    cleanup_free char *script =
        runc ? xstrdup("echo started; while [ ! -e /datasets/ctl/go ]; do sleep 0.1; done; "
                       "echo done; exit 5")
             : xasprintf("echo started; while [ ! -e %s/go ]; do sleep 0.1; done; echo done; "
                         "exit 5",
                         f->ctl);
    const char *argv[] = {"sh", "-c", script, NULL};
    const char *names[] = {"ctl"};
    const char *paths[] = {f->ctl};
    task_spec s = spec_for(f, argv, env);
    s.ndatasets = 1;
    s.dataset_names = names;
    s.dataset_paths = paths;
    char name[80], wd[256];
    snprintf(name, sizeof(name), "%s-survivor-%s", f->prefix, runc ? "runc" : "proc");
    snprintf(wd, sizeof(wd), "%s/%s", f->tasks, name);
    s.name = name;
    s.workdir = wd;
    char *h = NULL;
    if (rt->ops->create(rt, &s, &h, &e) < 0 || rt->ops->start(rt, h, &e) < 0) {
        dprintf(fd, "ERROR %s", mt_error_msg(e));
        _exit(3);
    }
    dprintf(fd, "%s", h);
    close(fd);
    raise(SIGKILL);
    _exit(4);
}

static void survival(struct fixture *f, bool runc)
{
    cleanup_free char *go = fs_join(f->ctl, "go");
    unlink(go);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) {
        close(p[0]);
        node_that_dies(f, runc, p[1]);
    }
    close(p[1]);
    char buf[512] = "";
    size_t got = 0;
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        ssize_t n = read(p[0], buf + got, sizeof(buf) - 1 - got);
        if (n <= 0 || mono_ms() > end)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(c, &status, 0), c);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (strncmp(buf, "ERROR", 5) == 0 || !*buf)
        fail_msg("the dying node could not start its task: %s", buf);
    runtime *owner = runc ? f->runc : f->proc;
    f->handles[f->nh] = xstrdup(buf); /* for cleanup */
    f->owners[f->nh++] = owner;
    const char *h = f->handles[f->nh - 1];

    /* a new node: new runtime, nothing in memory but the handle */
    mt_error *e = NULL;
    runtime *rt = runc ? runtime_runc_new(&f->cfg, &e) : runtime_process_new(&f->cfg, &e);
    assert_non_null(rt);
    rt_status st;
    assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    assert_int_equal(st.state, RT_RUNNING);
    assert_true(st.started_at_ms > 0);
    wait_log(rt, h, "started", WAIT_MS);
    char **handles = NULL;
    assert_int_equal(rt->ops->list(rt, f->xid, &handles, &e), 0);
    assert_true(strv_has(handles, h));
    mem_free_strv(&handles);
    /* the task goes on without its node; let it finish */
    write_file(go, "");
    int64_t deadline = mono_ms() + WAIT_MS;
    do {
        sleep_ms(50);
        assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    } while (st.state == RT_RUNNING && mono_ms() < deadline);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 5);
    assert_false(st.oom_killed);
    runtime_free(rt);
    /* and yet another node still knows how it ended, with its logs */
    rt = runc ? runtime_runc_new(&f->cfg, &e) : runtime_process_new(&f->cfg, &e);
    assert_non_null(rt);
    assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 5);
    cleanup_free char *log = get_logs(rt, h, 0, NULL);
    assert_string_equal(log, "started\ndone\n");
    runtime_free(rt);
    unlink(go);
}

static void test_runc_survives_node_restart(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    survival(f, true);
}

/* ---- process -------------------------------------------------------------------------------- */

static void test_process_env_module_exit(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *argv[] = {"env", NULL};
    const char *env[] = {"TASK_ID=p-1", "MANTA_Y=two words", NULL};
    task_spec s = spec_for(f, argv, env);
    const char *h = run_task(f, f->proc, &s);
    rt_status st = wait_done(f->proc, h, WAIT_MS);
    assert_int_equal(st.exit_code, 0);
    cleanup_free char *log = get_logs(f->proc, h, 0, NULL);
    const char *want[] = {"TASK_ID=p-1", "MANTA_Y=two words", "PATH=/usr/local/bin:/usr/bin:/bin",
                          NULL};
    assert_lines_equal(log, want);

    /* the module path is substituted; the task runs in its workdir */
    const char *a2[] = {"sh", "-c", "cat \"$1\"; pwd", "sh", "/usr/src/module.pyz", NULL};
    task_spec s2 = spec_for(f, a2, env);
    const char *h2 = run_task(f, f->proc, &s2);
    st = wait_done(f->proc, h2, WAIT_MS);
    assert_int_equal(st.exit_code, 0);
    cleanup_free char *l2 = get_logs(f->proc, h2, 0, NULL);
    cleanup_free char *want2 = xasprintf(MODULE_TEXT "%s\n", handle_wd(h2));
    assert_string_equal(l2, want2);

    const char *a3[] = {"sh", "-c", "exit 4", NULL};
    task_spec s3 = spec_for(f, a3, env);
    const char *h3 = run_task(f, f->proc, &s3);
    st = wait_done(f->proc, h3, WAIT_MS);
    assert_int_equal(st.exit_code, 4);

    const char *a4[] = {"/nonexistent/command", NULL};
    task_spec s4 = spec_for(f, a4, env);
    mt_error *e = NULL;
    const char *h4 = create_task(f, f->proc, &s4, &e);
    assert_non_null(h4);
    assert_int_equal(f->proc->ops->start(f->proc, h4, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "No such file or directory"));
    mt_error_free(&e);
    st = wait_done(f->proc, h4, WAIT_MS);
    assert_int_equal(st.exit_code, 127);
    assert_non_null(runtime_process_warning());
    assert_non_null(strstr(runtime_process_warning(), "NOT isolate"));
}

static void test_process_oom_and_stop(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    const char *env[] = {NULL};
    const char *argv[] = {"sh", "-c", "head -c 200000000 /dev/zero | tail -n 1 >/dev/null", NULL};
    task_spec s = spec_for(f, argv, env);
    s.memory_bytes = 32 << 20;
    const char *h = run_task(f, f->proc, &s);
    rt_status st = wait_done(f->proc, h, 60000);
    cleanup_free char *log = get_logs(f->proc, h, 0, NULL);
    if (fs_is_dir("/sys/fs/cgroup/memory") || fs_exists("/sys/fs/cgroup/cgroup.controllers")) {
        if (!st.oom_killed)
            fail_msg("not OOM-killed (exit %d); log:\n%s", st.exit_code, log);
    }
    cleanup_free char *memcg = xasprintf("/sys/fs/cgroup/memory/manta/%s", s.name);
    /* the supervisor removes the task's cgroup right after recording the exit */
    for (int i = 0; i < 100 && fs_exists(memcg); i++)
        sleep_ms(50);
    assert_false(fs_exists(memcg));

    /* stop: SIGTERM to the whole process group, quickly */
    const char *a2[] = {"sh", "-c", "sleep 1000 & sleep 1000 & echo ready; wait", NULL};
    task_spec s2 = spec_for(f, a2, env);
    const char *h2 = run_task(f, f->proc, &s2);
    wait_log(f->proc, h2, "ready", WAIT_MS);
    cleanup_free char *started = fs_join(handle_wd(h2), "started.json");
    mt_error *e = NULL;
    cleanup_free char *sj = fs_read_file(started, 4096, NULL, &e);
    assert_non_null(sj);
    int pgid = atoi(strstr(sj, "\"pid\": ") + 7);
    assert_true(pgid > 1);
    int64_t t0 = mono_ms();
    assert_int_equal(f->proc->ops->stop(f->proc, h2, 10, &e), 0);
    assert_true(mono_ms() - t0 < 5000);
    assert_int_equal(f->proc->ops->inspect(f->proc, h2, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 128 + SIGTERM);
    /* nothing of the task is left */
    int64_t end = mono_ms() + 5000;
    while (kill(-pgid, 0) == 0 && mono_ms() < end)
        sleep_ms(20);
    assert_int_equal(kill(-pgid, 0), -1);
}

static void test_process_survives_node_restart(void **state)
{
    struct fixture *f = *state;
    SKIP_IF_NEEDED(f);
    survival(f, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_runc_exact_env, test_teardown),
        cmocka_unit_test_teardown(test_runc_mounts_and_privileges, test_teardown),
        cmocka_unit_test_teardown(test_runc_exit_codes, test_teardown),
        cmocka_unit_test_teardown(test_runc_oom, test_teardown),
        cmocka_unit_test_teardown(test_runc_pids_limit, test_teardown),
        cmocka_unit_test_teardown(test_runc_stop_with_grace, test_teardown),
        cmocka_unit_test_teardown(test_runc_logs_limit, test_teardown),
        cmocka_unit_test_teardown(test_runc_list_this_node_only, test_teardown),
        cmocka_unit_test_teardown(test_runc_remove_cleans_up, test_teardown),
        cmocka_unit_test_teardown(test_runc_reclaim_after_a_cut_create, test_teardown),
        cmocka_unit_test_teardown(test_runc_start_remounts_after_reboot, test_teardown),
        cmocka_unit_test_teardown(test_runc_survives_node_restart, test_teardown),
        cmocka_unit_test_teardown(test_process_env_module_exit, test_teardown),
        cmocka_unit_test_teardown(test_process_oom_and_stop, test_teardown),
        cmocka_unit_test_teardown(test_process_survives_node_restart, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
