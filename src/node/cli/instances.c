/* instances.c - the registry of running nodes; see instances.h. */
#include "instances.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "fsutil.h"
#include "json.h"
#include "mem.h"
#include "paths.h"
#include "proc.h"

char *instance_new_id(const char *config_name)
{
    uint8_t r[4] = {0};
    if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
        unsigned v = (unsigned)getpid() * 2654435761u;
        memcpy(r, &v, sizeof(r));
    }
    return xasprintf("%s-%02x%02x%02x%02x", config_name, r[0], r[1], r[2], r[3]);
}

static char *instance_path(const char *id)
{
    cleanup_free char *dir = paths_instances_dir();
    cleanup_free char *file = xasprintf("%s.json", id);
    return fs_join(dir, file);
}

int instance_write(instance *in, mt_error **err)
{
    cleanup_free char *dir = paths_instances_dir();
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return -1;
    if (!in->path)
        in->path = instance_path(in->instance_id);
    cleanup_json json_t *o = json_object();
    json_object_set_new(o, "instance_id", json_string(in->instance_id));
    json_object_set_new(o, "alias", json_string(in->alias));
    json_object_set_new(o, "config_name", json_string(in->config_name));
    json_object_set_new(o, "pid", json_integer(in->pid));
    json_object_set_new(o, "start_time", json_string(in->start_time));
    json_object_set_new(o, "status", json_string(in->status ? in->status : "running"));
    json_object_set_new(o, "manager_host", json_string(in->manager_host));
    json_object_set_new(o, "manager_port", json_integer(in->manager_port));
    json_object_set_new(o, "log_file", json_string(in->log_file));
    json_object_set_new(o, "process_start_ticks", json_integer((json_int_t)in->proc_start));
    json_object_set_new(o, "node_id", json_string(in->node_id ? in->node_id : ""));
    json_object_set_new(o, "state_dir", json_string(in->state_dir ? in->state_dir : ""));
    cleanup_free char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    cleanup_free char *body = xasprintf("%s\n", text);
    return fs_write_atomic(in->path, body, strlen(body), 0600, err);
}

static char *jstr(json_t *o, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(o, k));
    return xstrdup(s ? s : def);
}

int instance_read(const char *path, instance *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    cleanup_json json_t *o = json_load_file(path, 0, &je);
    if (!o || !json_is_object(o))
        return mt_error_set(err, MT_ERR_PARSE, "%s is not an instance file: %s", path, je.text);
    cleanup_free char *base = xstrdup(strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    char *dot = strrchr(base, '.');
    if (dot)
        *dot = '\0';
    out->instance_id = jstr(o, "instance_id", base);
    out->alias = jstr(o, "alias", out->instance_id);
    out->config_name = jstr(o, "config_name", "unknown");
    out->start_time = jstr(o, "start_time", "");
    out->status = jstr(o, "status", "running");
    out->manager_host = jstr(o, "manager_host", "");
    out->log_file = jstr(o, "log_file", "");
    out->node_id = jstr(o, "node_id", "");
    out->state_dir = jstr(o, "state_dir", "");
    out->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
    out->manager_port = (long)json_integer_value(json_object_get(o, "manager_port"));
    out->proc_start =
        (unsigned long long)json_integer_value(json_object_get(o, "process_start_ticks"));
    out->path = xstrdup(path);
    if (out->pid <= 0) {
        instance_release(out);
        return mt_error_set(err, MT_ERR_PARSE, "%s has no valid pid", path);
    }
    return 0;
}

void instance_release(instance *in)
{
    free(in->instance_id);
    free(in->alias);
    free(in->config_name);
    free(in->start_time);
    free(in->status);
    free(in->manager_host);
    free(in->log_file);
    free(in->node_id);
    free(in->state_dir);
    free(in->path);
    memset(in, 0, sizeof(*in));
}

void instances_release(instance *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        instance_release(&v[i]);
    free(v);
}

bool instance_alive(const instance *in)
{
    if (in->pid <= 0 || (kill(in->pid, 0) < 0 && errno != EPERM))
        return false;
    /* Files written by the reference have no start time: trust the pid as it does. */
    return !in->proc_start || proc_start_time(in->pid) == in->proc_start;
}

static int by_alias(const void *a, const void *b)
{
    const instance *x = a, *y = b;
    int c = strcmp(x->alias, y->alias);
    return c ? c : strcmp(x->instance_id, y->instance_id);
}

size_t instances_live(instance **out)
{
    cleanup_free char *dir = paths_instances_dir();
    size_t n = 0;
    *out = xcalloc(1, sizeof(instance));
    cleanup_dir DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        cleanup_free char *path = fs_join(dir, de->d_name);
        instance in;
        mt_error *e = NULL;
        if (instance_read(path, &in, &e) < 0) {
            mt_error_free(&e);
            unlink(path); /* unreadable: stale, as the reference prunes them */
            continue;
        }
        if (!instance_alive(&in)) {
            unlink(path);
            instance_release(&in);
            continue;
        }
        *out = xrealloc(*out, (n + 1) * sizeof(instance));
        (*out)[n++] = in;
    }
    qsort(*out, n, sizeof(instance), by_alias);
    return n;
}

int instance_lock_alias(const char *alias, pid_t *holder, mt_error **err)
{
    *holder = 0;
    cleanup_free char *dir = paths_instances_dir();
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return -1;
    cleanup_free char *safe = config_safe_name(alias);
    cleanup_free char *file = xasprintf(".%s.lock", safe);
    cleanup_free char *path = fs_join(dir, file);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return mt_error_sys(err, errno, "cannot open %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = {0};
        if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
            *holder = (pid_t)atoi(buf);
        close(fd);
        return mt_error_set(err, MT_ERR_EXISTS, "a node with alias '%s' is already running%s",
                            alias, *holder ? "" : "");
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) < 0) {
        /* the pid is informational only */
    }
    return fd;
}

static bool gone(const instance *in)
{
    return !instance_alive(in);
}

static int stop_with(instance *in, bool force, int sig, int timeout_s, FILE *out);

int instance_stop(instance *in, bool force, int timeout_s, FILE *out)
{
    return stop_with(in, force, SIGTERM, timeout_s, out);
}

int instance_stop_keep_tasks(instance *in, int timeout_s, FILE *out)
{
    return stop_with(in, false, SIGUSR2, timeout_s, out);
}

static int stop_with(instance *in, bool force, int sig, int timeout_s, FILE *out)
{
    if (gone(in)) {
        if (out)
            fprintf(out, "Node '%s' was already stopped\n", in->alias);
        unlink(in->path);
        return 0;
    }
    if (force) {
        if (kill(in->pid, SIGKILL) < 0 && errno == ESRCH) {
            if (out)
                fprintf(out, "Node '%s' was already stopped\n", in->alias);
        } else if (out) {
            fprintf(out, "Force killed node '%s' (PID: %d)\n", in->alias, (int)in->pid);
        }
        for (int i = 0; i < 50 && !gone(in); i++)
            usleep(100000);
        unlink(in->path);
        return gone(in) ? 0 : -1;
    }
    if (kill(in->pid, sig) < 0) {
        if (errno == ESRCH) {
            if (out)
                fprintf(out, "Node '%s' was already stopped\n", in->alias);
            unlink(in->path);
            return 0;
        }
        if (out)
            fprintf(out, "Cannot signal node '%s' (PID: %d): %s\n", in->alias, (int)in->pid,
                    strerror(errno));
        return -1;
    }
    if (out) {
        fprintf(out, "Sent termination signal to node '%s' (PID: %d)%s\n", in->alias, (int)in->pid,
                sig == SIGUSR2 ? ", leaving its tasks running" : "");
        fprintf(out, "Waiting up to %d seconds for graceful shutdown...\n", timeout_s);
        fflush(out);
    }
    for (int i = 0; i < timeout_s * 10 && !gone(in); i++)
        usleep(100000);
    if (gone(in)) {
        if (out)
            fprintf(out, "Node '%s' stopped gracefully\n", in->alias);
        unlink(in->path); /* normally removed by the node itself */
        return 0;
    }
    if (out)
        fprintf(out, "Node '%s' did not stop gracefully, sending SIGKILL...\n", in->alias);
    kill(in->pid, SIGKILL);
    for (int i = 0; i < 50 && !gone(in); i++)
        usleep(100000);
    if (out)
        fprintf(out, "Force killed node '%s' after timeout\n", in->alias);
    unlink(in->path);
    return gone(in) ? 0 : -1;
}

size_t instance_tasks(const instance *in, char ***keys, char ***states)
{
    static const char *const phases[] = {"?",        "queued",    "starting", "running",
                                         "stopping", "finishing", "done"};
    size_t n = 0;
    *keys = xcalloc(1, sizeof(char *));
    *states = xcalloc(1, sizeof(char *));
    if (!in->node_id || !*in->node_id || !in->state_dir || !*in->state_dir)
        return 0;
    cleanup_free char *nd = fs_join(in->state_dir, in->node_id);
    cleanup_free char *dir = fs_join(nd, "tasks");
    cleanup_dir DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        cleanup_free char *sub = fs_join(dir, de->d_name);
        cleanup_free char *file = fs_join(sub, "task.json");
        cleanup_json json_t *o = json_load_file(file, 0, NULL);
        if (!o)
            continue;
        int phase = (int)json_integer_value(json_object_get(o, "phase"));
        long long started = json_integer_value(json_object_get(o, "started_ms"));
        const char *reason = json_string_value(json_object_get(o, "reason"));
        char *state;
        if (phase == 3 && started > 0)
            state = xasprintf("running %llds", (long long)time(NULL) - started / 1000);
        else if (phase == 6)
            state = xasprintf("done (%s)", reason && *reason ? reason : "exited");
        else
            state = xstrdup(phase >= 1 && phase <= 6 ? phases[phase] : "?");
        *keys = xrealloc(*keys, (n + 2) * sizeof(char *));
        *states = xrealloc(*states, (n + 2) * sizeof(char *));
        (*keys)[n] = xstrdup(de->d_name);
        (*states)[n] = state;
        n++;
        (*keys)[n] = (*states)[n] = NULL;
    }
    return n;
}
