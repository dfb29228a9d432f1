/* runtime_process.c - the `process` driver: a plain child process on the host, no isolation,
 * supervised by the layer it shares with the runc driver (runtime_sup.h).
 *
 * spec->argv runs directly on the host, in the task's workdir, with exactly spec->env (plus
 * PATH=... when the spec has none, and the node's PYTHONPATH); an argv entry
 * "/usr/src/module.pyz" is replaced by spec->module_path (there are no mounts); datasets are not
 * mounted (tasks get them from the light service). Memory, CPU and pids limits use cgroups (v1
 * hierarchies or cgroup2, whichever has the controller) when the node may create them (root);
 * otherwise they are not enforced and the task's log says so. Nothing else is isolated: see
 * runtime_process_warning().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_config.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_sup.h"

#define MODULE_IN_TASK "/usr/src/module.pyz"

/* ---- the process driver -------------------------------------------------------------------- */

const char *runtime_process_warning(void)
{
    return "The `process` runtime does NOT isolate tasks: they run directly on this host as "
           "the node's user, can read and write everything that user can, share its network, "
           "processes and file systems, get no dataset mounts (the light service serves "
           "datasets) and have memory/CPU/pids limits only where the node can create cgroups. "
           "Use it for development only, never with untrusted tasks.";
}

static sup_driver *drv(runtime *rt)
{
    return rt->impl;
}

static int proc_prepare(runtime *rt, const task_spec *spec, mt_error **err)
{
    return 0;
}

static bool has_env(const char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (; env && *env; env++)
        if (strncmp(*env, key, kl) == 0 && (*env)[kl] == '=')
            return true;
    return false;
}

static int proc_create(runtime *rt, const task_spec *spec, char **handle, mt_error **err)
{
    *handle = NULL;
    sup_driver *d = drv(rt);
    cleanup_free char *wd = NULL;
    if (sup_prepare_workdir(d, spec, &wd, err) < 0)
        return -1;
    cleanup_json json_t *t = sup_task_json(d, spec, wd);
    json_t *argv = json_array(), *env = json_array();
    for (const char *const *a = spec->argv; *a; a++) {
        const char *v = *a;
        if (strcmp(v, MODULE_IN_TASK) == 0 && spec->module_path && *spec->module_path)
            v = spec->module_path;
        json_array_append_new(argv, json_string(v));
    }
    for (const char *const *e = spec->env; e && *e; e++)
        json_array_append_new(env, json_string(*e));
    if (!has_env(spec->env, "PATH"))
        json_array_append_new(env, json_string("PATH=/usr/local/bin:/usr/bin:/bin"));
    /* No image here: a task runtime installed outside site-packages (python/ of this project)
     * is found through the node's own PYTHONPATH. */
    const char *pp = getenv("PYTHONPATH");
    if (pp && *pp && !has_env(spec->env, "PYTHONPATH")) {
        cleanup_free char *kv = xasprintf("PYTHONPATH=%s", pp);
        json_array_append_new(env, json_string(kv));
    }
    json_object_set_new(t, "argv", argv);
    json_object_set_new(t, "env", env);
    if (spec->module_path)
        json_object_set_new(t, "module_path", json_string(spec->module_path));
    return sup_commit(d, wd, t, handle, err);
}

static int proc_start(runtime *rt, const char *handle, mt_error **err)
{
    return sup_start(drv(rt), handle, err);
}

static int proc_stop(runtime *rt, const char *handle, int grace_s, mt_error **err)
{
    return sup_stop(drv(rt), handle, grace_s, err);
}

static int proc_inspect(runtime *rt, const char *handle, rt_status *st, mt_error **err)
{
    return sup_inspect(drv(rt), handle, st, err);
}

static int proc_logs(runtime *rt, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
                     mt_error **err)
{
    return sup_logs(drv(rt), handle, limit, out, len, err);
}

static int proc_remove(runtime *rt, const char *handle, mt_error **err)
{
    return sup_remove(drv(rt), handle, NULL, err);
}

static int proc_list(runtime *rt, const char *node_xid, char ***handles, mt_error **err)
{
    return sup_list(drv(rt), node_xid, handles, err);
}

static int proc_watch_exits(runtime *rt, void (*cb)(void *ctx, const char *handle), void *ctx,
                            mt_error **err)
{
    return sup_watch_exits(drv(rt), cb, ctx, err);
}

static void proc_watch(runtime *rt, const char *handle)
{
    sup_watch_task(drv(rt), handle);
}

static void proc_free(runtime *rt)
{
    if (!rt)
        return;
    sup_driver_free(rt->impl);
    free(rt->impl);
    free(rt);
}

static const runtime_ops process_ops = {
    .name = "process",
    .prepare = proc_prepare,
    .create = proc_create,
    .start = proc_start,
    .stop = proc_stop,
    .inspect = proc_inspect,
    .logs = proc_logs,
    .remove = proc_remove,
    .list = proc_list,
    .watch_exits = proc_watch_exits,
    .watch = proc_watch,
    .free = proc_free,
};

runtime *runtime_process_new(const struct node_config *cfg, mt_error **err)
{
    sup_driver *d = xcalloc(1, sizeof(*d));
    if (sup_driver_init(d, "process", cfg, err) < 0) {
        sup_driver_free(d);
        free(d);
        return NULL;
    }
    runtime *rt = xcalloc(1, sizeof(*rt));
    rt->ops = &process_ops;
    rt->impl = d;
    return rt;
}
