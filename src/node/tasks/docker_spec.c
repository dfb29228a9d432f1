/* docker_spec.c - the Docker driver's container specification: the body of
 * POST /containers/create from a task_spec (command, environment, labels, host networking,
 * Docker's init, binds of the module file and the datasets, limits, capabilities, log
 * rotation, GPUs), checking what Docker would refuse or misread.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "json.h"
#include "mem.h"
#include "runtime.h"
#include "runtime_docker_impl.h"

static int jset_str(json_t *obj, const char *key, const char *val, const char *what, mt_error **err)
{
    json_t *s = json_string(val);
    if (!s)
        return mt_error_set(err, MT_ERR_CONFIG, "the task's %s is not valid UTF-8 text", what);
    json_object_set_new(obj, key, s);
    return 0;
}

static int jappend_str(json_t *arr, const char *val, const char *what, mt_error **err)
{
    json_t *s = json_string(val);
    if (!s)
        return mt_error_set(err, MT_ERR_CONFIG, "the task's %s \"%s\" is not valid UTF-8 text",
                            what, val);
    json_array_append_new(arr, s);
    return 0;
}

/* A host path Docker can bind: absolute, existing, without ':' or ',' (Binds syntax). */
static int check_bind_source(const char *path, bool want_file, const char *what, mt_error **err)
{
    if (!path || path[0] != '/')
        return mt_error_set(err, MT_ERR_CONFIG, "the %s path \"%s\" is not absolute", what,
                            path ? path : "");
    if (strchr(path, ':') || strchr(path, ','))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the %s path %s contains ':' or ',', which Docker bind mounts "
                            "cannot express; rename it",
                            what, path);
    struct stat st;
    if (stat(path, &st) != 0)
        return mt_error_sys(err, errno, "the %s %s cannot be mounted into the task", what, path);
    if (want_file && !S_ISREG(st.st_mode))
        return mt_error_set(err, MT_ERR_CONFIG, "the %s %s is not a regular file", what, path);
    return 0;
}

static bool dataset_name_valid(const char *n)
{
    return docker_handle_valid(n) && strcmp(n, ".") != 0 && strcmp(n, "..") != 0;
}

/* The body of POST /containers/create. Owned text, NULL + *err when the spec is unusable. */
char *docker_create_body(const docker_rt *d, const task_spec *spec, mt_error **err)
{
    cleanup_json json_t *body = json_object();
    if (jset_str(body, "Image", spec->image, "image", err) < 0)
        return NULL;
    if (spec->argv && spec->argv[0]) {
        json_t *cmd = json_array();
        json_object_set_new(body, "Cmd", cmd);
        for (const char *const *a = spec->argv; *a; a++)
            if (jappend_str(cmd, *a, "command argument", err) < 0)
                return NULL;
    }
    json_t *env = json_array();
    json_object_set_new(body, "Env", env);
    for (const char *const *e = spec->env; e && *e; e++) {
        if (!strchr(*e, '=') || **e == '=') {
            mt_error_set(err, MT_ERR_CONFIG, "the task's environment entry \"%s\" is not KEY=value",
                         *e);
            return NULL;
        }
        if (jappend_str(env, *e, "environment entry", err) < 0)
            return NULL;
    }
    json_object_set_new(body, "Tty", json_false());
    json_object_set_new(body, "OpenStdin", json_false());
    json_object_set_new(body, "AttachStdin", json_false());
    json_t *labels = json_object();
    json_object_set_new(body, "Labels", labels);
    /* spec->node_xid is "<node xid>-<state folder tag>"; the reference's project is the node's
     * xid alone (xids are hex: no '-') */
    cleanup_free char *project =
        xasprintf("node_%.*s", (int)strcspn(spec->node_xid, "-"), spec->node_xid);
    if (jset_str(labels, "manta.node", spec->node_xid, "node id", err) < 0 ||
        jset_str(labels, "manta.task", spec->name, "name", err) < 0 ||
        jset_str(labels, "com.docker.compose.project", project, "node id", err) < 0)
        return NULL;

    json_t *hc = json_object();
    json_object_set_new(body, "HostConfig", hc);
    json_object_set_new(hc, "NetworkMode", json_string("host"));
    json_object_set_new(hc, "Init", json_true());
    json_t *binds = json_array();
    json_object_set_new(hc, "Binds", binds);
    if (spec->module_path) {
        if (check_bind_source(spec->module_path, true, "module file", err) < 0)
            return NULL;
        cleanup_free char *b = xasprintf("%s:/usr/src/module.pyz:ro", spec->module_path);
        if (jappend_str(binds, b, "module path", err) < 0)
            return NULL;
    }
    for (size_t i = 0; i < spec->ndatasets; i++) {
        const char *n = spec->dataset_names[i], *p = spec->dataset_paths[i];
        if (!dataset_name_valid(n)) {
            mt_error_set(err, MT_ERR_CONFIG,
                         "the dataset name \"%s\" cannot be a folder name under /datasets (use "
                         "letters, digits, '_', '.' and '-')",
                         n ? n : "");
            return NULL;
        }
        cleanup_free char *what = xasprintf("dataset \"%s\"", n);
        if (check_bind_source(p, false, what, err) < 0)
            return NULL;
        cleanup_free char *b =
            xasprintf("%s:/datasets/%s:%s", p, n, spec->datasets_rw ? "rw" : "ro");
        if (jappend_str(binds, b, "dataset path", err) < 0)
            return NULL;
    }
    if (spec->memory_bytes) {
        json_int_t m =
            spec->memory_bytes > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)spec->memory_bytes;
        json_object_set_new(hc, "Memory", json_integer(m));
        json_object_set_new(hc, "MemorySwap", json_integer(m)); /* no swap beyond the limit */
    }
    if (spec->cpus > 0) {
        double cpus = spec->cpus;
        if (d->ncpu > 0 && cpus > (double)d->ncpu)
            cpus = (double)d->ncpu; /* Docker refuses more CPUs than the host has */
        json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(cpus * 1e9 + 0.5)));
    }
    if (spec->pids_limit > 0)
        json_object_set_new(hc, "PidsLimit", json_integer(spec->pids_limit));
    json_t *capdrop = json_array();
    json_array_append_new(capdrop, json_string("ALL"));
    json_object_set_new(hc, "CapDrop", capdrop);
    json_t *secopt = json_array();
    json_array_append_new(secopt, json_string("no-new-privileges"));
    json_object_set_new(hc, "SecurityOpt", secopt);
    json_t *logcfg = json_object(), *logopts = json_object();
    json_object_set_new(logcfg, "Type", json_string("json-file"));
    if (spec->log_limit) {
        /* json-file counts its own JSON lines (about 60 bytes more per line than the output);
         * three files of max-size keep at least two full ones, i.e. the newest log_limit bytes
         * of output in all but pathological cases (floods of one-byte lines). */
        uint64_t sz = spec->log_limit < 65536 ? 65536 : spec->log_limit;
        cleanup_free char *s = xasprintf("%" PRIu64, sz);
        json_object_set_new(logopts, "max-size", json_string(s));
        json_object_set_new(logopts, "max-file", json_string("3"));
    }
    json_object_set_new(logcfg, "Config", logopts);
    json_object_set_new(hc, "LogConfig", logcfg);
    if (spec->gpu) {
        json_t *dr = json_object(), *caps = json_array(), *caps1 = json_array();
        json_object_set_new(dr, "Driver", json_string("nvidia"));
        json_object_set_new(dr, "Count", json_integer(-1));
        json_array_append_new(caps1, json_string("gpu"));
        json_array_append_new(caps, caps1);
        json_object_set_new(dr, "Capabilities", caps);
        json_t *drs = json_array();
        json_array_append_new(drs, dr);
        json_object_set_new(hc, "DeviceRequests", drs);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        mt_error_set(err, MT_ERR_GENERIC, "cannot encode the task container's specification");
        return NULL;
    }
    char *out = xstrdup(text);
    free(text);
    return out;
}
