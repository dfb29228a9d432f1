/* runtime_runc.c - the `runc` driver: a daemonless OCI runtime over the local image store.
 *
 * create: the image's rootfs in the store (images.h) is the read-only lower layer of an overlay
 * mounted at <workdir>/bundle/rootfs (upper and work dirs in <workdir>/overlay/), and
 * <workdir>/bundle/config.json is an OCI runtime spec 1.0: the task's argv and exact env (plus
 * PATH when the spec has none; runc adds HOME when the spec has none), no capabilities,
 * noNewPrivileges, pid/ipc/uts/mount namespaces but the host's network (tasks reach the light
 * service on 127.0.0.1), the module file read-only at /usr/src/module.pyz, datasets at
 * /datasets/<name> (read-only unless datasets_rw), the host's /etc/resolv.conf and /etc/hosts,
 * memory (= memory+swap), CPU and pids limits in the cgroup /manta/<task name> (an absolute
 * cgroupsPath: runc creates it in every hierarchy), runc's default masked/read-only paths.
 * The task's command runs under manta-init (src/init/manta_init.c), bound read-only at
 * /.manta/init and made args[0]: PID 1 of a PID namespace gets no default signal actions, so a
 * task's Python that installs no SIGTERM handler would ignore a stop's SIGTERM and wait out the
 * grace period; manta-init forwards the signal to it, reaps orphans and exits with the task's
 * status. It is looked for beside the node's executable, then in the libexec folder it is
 * installed in; without it tasks run as PID 1 themselves (and their log says so).
 * start/stop/inspect/logs/list: the supervisor shared with the process driver (images.h) runs
 * `runc create` + `runc start` (state under /run/manta-runc), reaps the container's init,
 * reads memory.oom_control/memory.events before `runc delete`. remove: kill, `runc delete`,
 * unmount the overlay, delete the bundle and the overlay's dirs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "fsutil.h"
#include "images.h"
#include "json.h"
#include "runtime_sup.h"
#include "mem.h"
#include "proc.h"
#include "runtime.h"
#include "strbuf.h"

#define MODULE_IN_TASK "/usr/src/module.pyz"
#define INIT_IN_TASK   "/.manta/init"
#define INIT_NAME      "manta-init"
#ifndef MANTA_LIBEXECDIR
#define MANTA_LIBEXECDIR "/usr/local/libexec/manta-node"
#endif
#define NO_INIT_WARNING                                                                            \
    "warning: manta-init was not found beside manta_node nor in " MANTA_LIBEXECDIR                 \
    "; this task runs as PID 1 of its container, where a SIGTERM without a handler is ignored, "   \
    "so a stop waits out tasks.stop_timeout"
#define RUNC_TIMEOUT_S 60
#define UMOUNT_TRIES   50

static sup_driver *drv(runtime *rt)
{
    return rt->impl;
}

/* ---- the OCI bundle ------------------------------------------------------------------------ */

static json_t *strv_json(const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *mount_json(const char *dest, const char *type, const char *src,
                          const char *const *opts)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source", src,
                     "options", strv_json(opts));
}

static bool env_has(const char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (; env && *env; env++)
        if (strncmp(*env, key, kl) == 0 && (*env)[kl] == '=')
            return true;
    return false;
}

static json_t *oci_config(const sup_driver *d, const task_spec *spec, const char *rootfs,
                          const char *module, char *const *ds_paths)
{
    json_t *env = strv_json(spec->env);
    if (!env_has(spec->env, "PATH"))
        json_array_append_new(env, json_string(SUP_DEFAULT_PATH));
    json_t *caps = json_object();
    const char *sets[] = {"bounding", "effective", "inheritable", "permitted", "ambient"};
    for (size_t i = 0; i < ARRAY_LEN(sets); i++)
        json_object_set_new(caps, sets[i], json_array());
    /* open files: 65536, within the node's own hard limit (without CAP_SYS_RESOURCE runc cannot
     * raise it) */
    struct rlimit nofile = {65536, 65536};
    struct rlimit cur;
    if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
        cur.rlim_max < nofile.rlim_max)
        nofile.rlim_cur = nofile.rlim_max = cur.rlim_max;
    json_t *args = json_array();
    if (d->init) /* PID 1: forwards the stop's signals to the task, reaps orphans */
        json_array_append_new(args, json_string(INIT_IN_TASK));
    for (const char *const *a = spec->argv; a && *a; a++)
        json_array_append_new(args, json_string(*a));
    json_t *process = json_pack("{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:o, s:[{s:s, s:I, s:I}], s:b}",
                                "terminal", 0, "user", "uid", 0, "gid", 0, "args", args, "env", env,
                                "cwd", "/", "capabilities", caps, "rlimits", "type",
                                "RLIMIT_NOFILE", "hard", (json_int_t)nofile.rlim_max, "soft",
                                (json_int_t)nofile.rlim_cur, "noNewPrivileges", 1);

    json_t *mounts = json_array();
    {
        const char *proc_o[] = {"nosuid", "noexec", "nodev", NULL};
        const char *dev_o[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
        const char *pts_o[] = {"nosuid",    "noexec", "newinstance", "ptmxmode=0666",
                               "mode=0620", "gid=5",  NULL};
        const char *shm_o[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
        const char *mq_o[] = {"nosuid", "noexec", "nodev", NULL};
        const char *sys_o[] = {"nosuid", "noexec", "nodev", "ro", NULL};
        json_array_append_new(mounts, mount_json("/proc", "proc", "proc", proc_o));
        json_array_append_new(mounts, mount_json("/dev", "tmpfs", "tmpfs", dev_o));
        json_array_append_new(mounts, mount_json("/dev/pts", "devpts", "devpts", pts_o));
        json_array_append_new(mounts, mount_json("/dev/shm", "tmpfs", "shm", shm_o));
        json_array_append_new(mounts, mount_json("/dev/mqueue", "mqueue", "mqueue", mq_o));
        json_array_append_new(mounts, mount_json("/sys", "sysfs", "sysfs", sys_o));
    }
    const char *bind_ro[] = {"rbind", "ro", "nosuid", "nodev", NULL};
    const char *bind_rw[] = {"rbind", "rw", "nosuid", "nodev", NULL};
    if (module)
        json_array_append_new(mounts, mount_json(MODULE_IN_TASK, "bind", module, bind_ro));
    if (d->init)
        json_array_append_new(mounts, mount_json(INIT_IN_TASK, "bind", d->init, bind_ro));
    for (size_t i = 0; i < spec->ndatasets; i++) {
        cleanup_free char *dest = xasprintf("/datasets/%s", spec->dataset_names[i]);
        json_array_append_new(
            mounts, mount_json(dest, "bind", ds_paths[i], spec->datasets_rw ? bind_rw : bind_ro));
    }
    const char *host_files[] = {"/etc/resolv.conf", "/etc/hosts"};
    const char *etc_o[] = {"rbind", "ro", NULL};
    for (size_t i = 0; i < ARRAY_LEN(host_files); i++)
        if (fs_exists(host_files[i]))
            json_array_append_new(mounts, mount_json(host_files[i], "bind", host_files[i], etc_o));

    json_t *res = json_pack("{s:[{s:b, s:s}]}", "devices", "allow", 0, "access", "rwm");
    if (spec->memory_bytes) {
        json_t *mem = json_pack("{s:I}", "limit", (json_int_t)spec->memory_bytes);
        /* swap = limit: no swap beyond the memory limit (where swap is accounted) */
        if (d->cg.memsw || (d->cg.v2 && d->cg.v2_memory))
            json_object_set_new(mem, "swap", json_integer((json_int_t)spec->memory_bytes));
        json_object_set_new(res, "memory", mem);
    }
    if (spec->cpus > 0) {
        json_int_t quota = (json_int_t)(spec->cpus * 100000);
        if (quota < 1000)
            quota = 1000;
        json_object_set_new(res, "cpu",
                            json_pack("{s:I, s:I}", "quota", quota, "period", (json_int_t)100000));
    }
    if (spec->pids_limit > 0)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)spec->pids_limit));

    cleanup_free char *cgpath = xasprintf(SUP_CGROUP_PARENT "/%s", spec->name);
    const char *masked[] = {"/proc/acpi",
                            "/proc/asound",
                            "/proc/kcore",
                            "/proc/keys",
                            "/proc/latency_stats",
                            "/proc/timer_list",
                            "/proc/timer_stats",
                            "/proc/sched_debug",
                            "/proc/scsi",
                            "/sys/firmware",
                            "/sys/devices/virtual/powercap",
                            NULL};
    const char *ro[] = {"/proc/bus",           "/proc/fs", "/proc/irq", "/proc/sys",
                        "/proc/sysrq-trigger", NULL};
    json_t *linux_ = json_pack("{s:s, s:o, s:[{s:s}, {s:s}, {s:s}, {s:s}], s:o, s:o}",
                               "cgroupsPath", cgpath, "resources", res, "namespaces", "type", "pid",
                               "type", "ipc", "type", "uts", "type", "mount", "maskedPaths",
                               strv_json(masked), "readonlyPaths", strv_json(ro));
    return json_pack("{s:s, s:o, s:{s:s, s:b}, s:o, s:o, s:{s:s}}", "ociVersion", "1.0.2",
                     "process", process, "root", "path", rootfs, "readonly", 0, "mounts", mounts,
                     "linux", linux_, "annotations", "manta.node", spec->node_xid);
}

/* ---- helpers ------------------------------------------------------------------------------- */

struct mount_probe {
    const char *path;
    bool found;
};

static bool probe_mount(const proc_mount *m, void *ctx)
{
    struct mount_probe *p = ctx;
    p->found = strcmp(m->dir, p->path) == 0;
    return !p->found;
}

static bool mounted_at(const char *path)
{
    struct mount_probe p = {.path = path};
    proc_mounts_each(probe_mount, &p);
    return p.found;
}

static int unmount_rootfs(const char *rootfs, mt_error **err)
{
    for (int i = 0; i < UMOUNT_TRIES && mounted_at(rootfs); i++) {
        if (umount2(rootfs, 0) == 0)
            continue;
        if (errno == EINVAL || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return mt_error_sys(err, errno, "cannot unmount %s", rootfs);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (mounted_at(rootfs) && umount2(rootfs, MNT_DETACH) < 0 && errno != EINVAL)
        return mt_error_sys(err, errno, "cannot unmount %s", rootfs);
    return 0;
}

static int runc_cmd(const sup_driver *d, const char *verb, const char *arg1, const char *id,
                    char **out, mt_error **err)
{
    char *argv[8];
    size_t n = 0;
    argv[n++] = d->runc;
    argv[n++] = "--root";
    argv[n++] = d->runc_root;
    argv[n++] = (char *)verb;
    if (arg1)
        argv[n++] = (char *)arg1;
    argv[n++] = (char *)id;
    argv[n] = NULL;
    return images_run(argv, RUNC_TIMEOUT_S, out, err);
}

/* Mount the task's overlay at <wd>/bundle/rootfs unless it is mounted already. */
static int mount_overlay(const char *wd, const char *lower, mt_error **err)
{
    cleanup_free char *rootfs = xasprintf("%s/bundle/rootfs", wd);
    cleanup_free char *upper = xasprintf("%s/overlay/upper", wd);
    cleanup_free char *work = xasprintf("%s/overlay/work", wd);
    if (mounted_at(rootfs))
        return 0;
    if (fs_mkdir_p(rootfs, 0755, err) < 0 || fs_mkdir_p(upper, 0755, err) < 0 ||
        fs_mkdir_p(work, 0700, err) < 0)
        return -1;
    cleanup_free char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    if (mount("overlay", rootfs, "overlay", 0, opts) < 0)
        return mt_error_sys(err, errno, "cannot mount the overlay at %s", rootfs);
    return 0;
}

/* Remove what create made, for a failed create or for remove. */
static int drop_bundle(const char *wd, mt_error **err)
{
    cleanup_free char *bundle = fs_join(wd, "bundle");
    cleanup_free char *rootfs = fs_join(bundle, "rootfs");
    cleanup_free char *overlay = fs_join(wd, "overlay");
    if (unmount_rootfs(rootfs, err) < 0)
        return -1;
    if (mounted_at(rootfs)) /* never delete through a mount */
        return mt_error_set(err, MT_ERR_IO, "%s is still mounted", rootfs);
    if (fs_rmtree(bundle, true, err) < 0 || fs_rmtree(overlay, true, err) < 0)
        return -1;
    return 0;
}

static void drop_bundle_quiet(const char *wd)
{
    mt_error *e = NULL;
    drop_bundle(wd, &e);
    mt_error_free(&e);
}

/* ---- operations ---------------------------------------------------------------------------- */

static int runc_prepare(runtime *rt, const task_spec *spec, mt_error **err)
{
    image_info img;
    if (images_lookup(drv(rt)->image_store, spec->image, &img, err) < 0)
        return -1;
    image_info_free(&img);
    return 0;
}

static int runc_create(runtime *rt, const task_spec *spec, char **handle, mt_error **err)
{
    *handle = NULL;
    sup_driver *d = drv(rt);
    if (spec->gpu)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "task %s asks for GPUs, which the runc runtime does not provide; "
                            "use containers.runtime = \"docker\" with the NVIDIA container "
                            "toolkit",
                            spec->name ? spec->name : "");
    image_info img;
    if (images_lookup(d->image_store, spec->image, &img, err) < 0)
        return -1;
    cleanup_free char *lower = xstrdup(img.rootfs);
    image_info_free(&img);

    cleanup_free char *module = NULL;
    if (spec->module_path && *spec->module_path) {
        module = realpath(spec->module_path, NULL);
        if (!module || !fs_exists(module))
            return mt_error_sys(err, errno, "the module file %s of task %s is missing",
                                spec->module_path, spec->name);
    }
    cleanup_strv char **ds = xcalloc(spec->ndatasets + 1, sizeof(char *));
    for (size_t i = 0; i < spec->ndatasets; i++) {
        if (!sup_safe_name(spec->dataset_names[i]))
            return mt_error_set(err, MT_ERR_USAGE, "invalid dataset name '%s'",
                                spec->dataset_names[i]);
        ds[i] = realpath(spec->dataset_paths[i], NULL);
        if (!ds[i])
            return mt_error_sys(err, errno, "dataset '%s' (%s) cannot be mounted",
                                spec->dataset_names[i], spec->dataset_paths[i]);
    }
    cleanup_free char *wd = NULL;
    if (sup_prepare_workdir(d, spec, &wd, err) < 0)
        return -1;
    if (strchr(wd, ',') || strchr(wd, ':'))
        return mt_error_set(err, MT_ERR_USAGE,
                            "the task folder %s contains ',' or ':', which overlay mounts cannot "
                            "use",
                            wd);
    /* a container of this name must not exist already */
    cleanup_free char *state_out = NULL;
    mt_error *e = NULL;
    int st = runc_cmd(d, "state", NULL, spec->name, &state_out, &e);
    mt_error_free(&e);
    if (st == 0)
        return mt_error_set(err, MT_ERR_EXISTS,
                            "a runc container named %s exists already; remove it with: runc "
                            "--root %s delete --force %s",
                            spec->name, d->runc_root, spec->name);

    cleanup_free char *bundle = fs_join(wd, "bundle");
    cleanup_free char *rootfs = fs_join(bundle, "rootfs");
    chmod(wd, 0711); /* the container's root (uid 0) walks through it anyway; keep others out */
    if (mount_overlay(wd, lower, err) < 0) {
        mt_error_wrap(err, "task %s", spec->name);
        goto fail;
    }
    {
        cleanup_json json_t *cfgj = oci_config(d, spec, rootfs, module, ds);
        cleanup_free char *text = json_dumps(cfgj, JSON_INDENT(2));
        cleanup_free char *path = fs_join(bundle, "config.json");
        if (fs_write_atomic(path, text, strlen(text), 0600, err) < 0)
            goto fail;
    }
    {
        cleanup_json json_t *t = sup_task_json(d, spec, wd);
        json_object_set_new(t, "image", json_string(spec->image));
        json_object_set_new(t, "lowerdir", json_string(lower));
        json_object_set_new(t, "runc", json_string(d->runc));
        json_object_set_new(t, "runc_root", json_string(d->runc_root));
        json_object_set_new(t, "bundle", json_string(bundle));
        if (!d->init)
            json_object_set_new(t, "warning", json_string(NO_INIT_WARNING));
        if (sup_commit(d, wd, t, handle, err) < 0)
            goto fail;
    }
    return 0;
fail:
    drop_bundle_quiet(wd);
    return -1;
}

static int runc_start(runtime *rt, const char *handle, mt_error **err)
{
    sup_driver *d = drv(rt);
    cleanup_free char *wd = NULL;
    cleanup_json json_t *t = sup_load_task(d, handle, &wd, err);
    if (!t)
        return -1;
    /* mounts do not survive a reboot: a task created before one gets its overlay again */
    const char *lower = json_string_value(json_object_get(t, "lowerdir"));
    if (lower && mount_overlay(wd, lower, err) < 0)
        return mt_error_wrap(err, "cannot start the task");
    return sup_start(d, handle, err);
}

static int runc_stop(runtime *rt, const char *handle, int grace_s, mt_error **err)
{
    return sup_stop(drv(rt), handle, grace_s, err);
}

static int runc_inspect(runtime *rt, const char *handle, rt_status *st, mt_error **err)
{
    return sup_inspect(drv(rt), handle, st, err);
}

static int runc_logs(runtime *rt, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
                     mt_error **err)
{
    return sup_logs(drv(rt), handle, limit, out, len, err);
}

/* runc's part of a removal: the container and its bundle (overlay unmounted). */
static int runc_cleanup(const sup_driver *d, const char *wd, json_t *t, mt_error **err)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    cleanup_free char *out = NULL;
    mt_error *e = NULL;
    if (runc_cmd(d, "delete", "--force", name, &out, &e) < 0)
        mt_error_free(&e); /* already deleted by its supervisor */
    if (drop_bundle(wd, err) < 0)
        return mt_error_wrap(err, "cannot remove task %s", name);
    return 0;
}

static int runc_remove(runtime *rt, const char *handle, mt_error **err)
{
    return sup_remove(drv(rt), handle, runc_cleanup, err);
}

/* A create cut short by the node's death: its overlay may be mounted, its bundle written. */
static int runc_reclaim(runtime *rt, const char *workdir, mt_error **err)
{
    (void)rt;
    cleanup_free char *wd = realpath(workdir, NULL); /* as /proc/self/mounts names it */
    if (!wd)
        return errno == ENOENT ? 0 : mt_error_sys(err, errno, "cannot resolve %s", workdir);
    return drop_bundle(wd, err);
}

static int runc_list(runtime *rt, const char *node_xid, char ***handles, mt_error **err)
{
    return sup_list(drv(rt), node_xid, handles, err);
}

static int runc_watch_exits(runtime *rt, void (*cb)(void *ctx, const char *handle), void *ctx,
                            mt_error **err)
{
    return sup_watch_exits(drv(rt), cb, ctx, err);
}

static void runc_watch(runtime *rt, const char *handle)
{
    sup_watch_task(drv(rt), handle);
}

static void runc_free(runtime *rt)
{
    if (!rt)
        return;
    sup_driver_free(rt->impl);
    free(rt->impl);
    free(rt);
}

static const runtime_ops runc_ops = {
    .name = "runc",
    .prepare = runc_prepare,
    .create = runc_create,
    .start = runc_start,
    .stop = runc_stop,
    .inspect = runc_inspect,
    .logs = runc_logs,
    .remove = runc_remove,
    .reclaim = runc_reclaim,
    .list = runc_list,
    .watch_exits = runc_watch_exits,
    .watch = runc_watch,
    .free = runc_free,
};

/* The runc binary: a path, or a name looked up in PATH. Owned or NULL. */
static char *find_runc(const char *want)
{
    if (!want || !*want)
        want = "runc";
    if (strchr(want, '/'))
        return access(want, X_OK) == 0 ? realpath(want, NULL) : NULL;
    const char *path = getenv("PATH");
    cleanup_free char *copy = xstrdup(
        path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        cleanup_free char *cand = fs_join(dir, want);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return realpath(cand, NULL);
    }
    return NULL;
}

static bool is_exec_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* manta-init: beside the node's executable (a build tree, or bin/ of an installation that
 * keeps helpers there), in ../libexec/manta-node/ of it (an installation moved elsewhere), or
 * where it was installed. Owned absolute path, or NULL. */
static char *find_init(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            cleanup_free char *beside = fs_join(exe, INIT_NAME);
            if (is_exec_file(beside))
                return realpath(beside, NULL);
            cleanup_free char *rel = xasprintf("%s/../libexec/manta-node/" INIT_NAME, exe);
            if (is_exec_file(rel))
                return realpath(rel, NULL);
        }
    }
    if (is_exec_file(MANTA_LIBEXECDIR "/" INIT_NAME))
        return realpath(MANTA_LIBEXECDIR "/" INIT_NAME, NULL);
    return NULL;
}

static bool overlay_supported(void)
{
    mt_error *e = NULL;
    cleanup_free char *fs = fs_read_file("/proc/filesystems", 1 << 16, NULL, &e);
    mt_error_free(&e);
    return fs && strstr(fs, "\toverlay\n");
}

runtime *runtime_runc_new(const struct node_config *cfg, mt_error **err)
{
    if (geteuid() != 0)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the runc runtime needs root (it mounts overlays and creates "
                            "cgroups); run the node as root, or use containers.runtime = "
                            "\"docker\""),
               NULL;
    const char *want = cfg && cfg->containers.runc_path ? cfg->containers.runc_path : "runc";
    char *runc = find_runc(want);
    if (!runc)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "runc was not found (containers.runc_path = \"%s\"); install it "
                            "(apt-get install runc) or set containers.runc_path",
                            want),
               NULL;
    char *argv[] = {runc, "--version", NULL};
    mt_error *e = NULL;
    cleanup_free char *out = NULL;
    int st = images_run(argv, 20, &out, &e);
    if (st != 0) {
        mt_error_free(&e);
        mt_error_set(err, MT_ERR_CONFIG, "%s does not run (`%s --version` failed)", runc, runc);
        free(runc);
        return NULL;
    }
    if (!overlay_supported()) {
        free(runc);
        return mt_error_set(err, MT_ERR_CONFIG,
                            "this kernel has no overlay file system, which the runc runtime "
                            "needs for task root file systems (modprobe overlay)"),
               NULL;
    }
    sup_driver *d = xcalloc(1, sizeof(*d));
    if (sup_driver_init(d, "runc", cfg, err) < 0) {
        free(runc);
        sup_driver_free(d);
        free(d);
        return NULL;
    }
    d->runc = runc;
    d->runc_root = xstrdup(SUP_RUNC_ROOT);
    d->init = find_init();
    if (cfg && cfg->containers.image_store && *cfg->containers.image_store) {
        d->image_store = fs_expand_tilde(cfg->containers.image_store);
    } else {
        node_config defaults;
        config_init_defaults(&defaults);
        d->image_store = xstrdup(defaults.containers.image_store);
        config_free(&defaults);
    }
    runtime *rt = xcalloc(1, sizeof(*rt));
    rt->ops = &runc_ops;
    rt->impl = d;
    return rt;
}
