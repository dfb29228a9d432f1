/* light.c - the light service's server: binding, the registry of this node's tasks and
 * datasets, and dispatch to light_local.c / light_world.c. */
#include "light.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "light_impl.h"
#include "mem.h"
#include "rpc.h"

#define LOCAL_PREFIX "/node.light_service.Local/"
#define WORLD_PREFIX "/node.light_service.World/"

struct known_task {
    node_id swarm, task;
    uint32_t iteration, circular;
    int status;
};

struct light_service {
    node *n;
    rpc_server *srv;
    pthread_mutex_t mu;
    struct known_task *tasks;
    size_t ntasks;
    dataset_set datasets;
};

/* ---- registry ------------------------------------------------------------------------------ */

void light_task_set(struct light_service *ls, node_id swarm, node_id task, uint32_t iteration,
                    uint32_t circular, int status)
{
    pthread_mutex_lock(&ls->mu);
    size_t i;
    for (i = 0; i < ls->ntasks; i++)
        if (node_id_equal(ls->tasks[i].swarm, swarm) && node_id_equal(ls->tasks[i].task, task))
            break;
    if (i == ls->ntasks) {
        ls->tasks = xrealloc(ls->tasks, (ls->ntasks + 1) * sizeof(*ls->tasks));
        ls->ntasks++;
    }
    ls->tasks[i] = (struct known_task){swarm, task, iteration, circular, status};
    pthread_mutex_unlock(&ls->mu);
}

void light_task_clear(struct light_service *ls, node_id swarm, node_id task)
{
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < ls->ntasks; i++) {
        if (node_id_equal(ls->tasks[i].swarm, swarm) && node_id_equal(ls->tasks[i].task, task)) {
            ls->tasks[i] = ls->tasks[--ls->ntasks];
            break;
        }
    }
    pthread_mutex_unlock(&ls->mu);
}

bool light_task_lookup(struct light_service *ls, node_id swarm, node_id task, uint32_t *iteration,
                       uint32_t *circular)
{
    bool found = false;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < ls->ntasks && !found; i++) {
        if (node_id_equal(ls->tasks[i].swarm, swarm) && node_id_equal(ls->tasks[i].task, task)) {
            found = true;
            if (iteration)
                *iteration = ls->tasks[i].iteration;
            if (circular)
                *circular = ls->tasks[i].circular;
        }
    }
    pthread_mutex_unlock(&ls->mu);
    return found;
}

int light_task_status(struct light_service *ls, node_id swarm, node_id task)
{
    int st = 0;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < ls->ntasks; i++)
        if (node_id_equal(ls->tasks[i].swarm, swarm) && node_id_equal(ls->tasks[i].task, task))
            st = ls->tasks[i].status;
    pthread_mutex_unlock(&ls->mu);
    return st;
}

static void copy_datasets(dataset_set *out, const dataset_set *in)
{
    memset(out, 0, sizeof(*out));
    out->items = xcalloc(in->len ? in->len : 1, sizeof(dataset));
    for (size_t i = 0; i < in->len; i++) {
        const dataset *d = &in->items[i];
        out->items[i] = (dataset){xstrdup(d->key),  xstrdup(d->path),        d->is_dir,
                                  xstrdup(d->name), xstrdup(d->description), d->dtype};
    }
    out->len = in->len;
}

void light_set_datasets(struct light_service *ls, const dataset_set *ds)
{
    dataset_set copy;
    copy_datasets(&copy, ds);
    pthread_mutex_lock(&ls->mu);
    dataset_set old = ls->datasets;
    ls->datasets = copy;
    pthread_mutex_unlock(&ls->mu);
    datasets_release(&old);
}

void light_datasets_copy(struct light_service *ls, dataset_set *out)
{
    pthread_mutex_lock(&ls->mu);
    copy_datasets(out, &ls->datasets);
    pthread_mutex_unlock(&ls->mu);
}

manager_client *light_manager(struct light_service *ls)
{
    return &ls->n->mc;
}

node_id light_node_id(struct light_service *ls)
{
    return ls->n->id;
}

logger *light_log(struct light_service *ls)
{
    return ls->n->log;
}

void light_fail(rpc_call *call, int code, const char *error_id_name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char text[400];
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: %s", error_id_name, text);
    rpc_call_finish(call, code, msg);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void handle(void *ctx, rpc_call *call)
{
    struct light_service *ls = ctx;
    const char *m = rpc_call_method(call);
    if (strncmp(m, LOCAL_PREFIX, strlen(LOCAL_PREFIX)) == 0) {
        light_local_handle(ls, call, m + strlen(LOCAL_PREFIX));
    } else if (strncmp(m, WORLD_PREFIX, strlen(WORLD_PREFIX)) == 0) {
        light_world_handle(ls, call, m + strlen(WORLD_PREFIX));
    } else {
        log_warn(ls->n->log, "light", "Unknown method %s from %s", m, rpc_call_peer(call));
        rpc_call_finish(call, RPC_UNIMPLEMENTED, "unknown method");
    }
}

struct light_service *light_start(node *n, int *port, mt_error **err)
{
    struct light_service *ls = xcalloc(1, sizeof(*ls));
    ls->n = n;
    pthread_mutex_init(&ls->mu, NULL);
    copy_datasets(&ls->datasets, &n->datasets);
    const char *host = n->cfg.network.light_service_host;
    cleanup_free char *addr =
        strchr(host, ':')
            ? xasprintf("[%s]:%lld", host, (long long)n->cfg.network.light_service_port)
            : xasprintf("%s:%lld", host, (long long)n->cfg.network.light_service_port);
    /* Many tasks and many streams at once; each call has its own thread and bounded buffers. */
    ls->srv = rpc_server_start(addr, NULL, 64, handle, ls, port, err);
    if (!ls->srv) {
        datasets_release(&ls->datasets);
        pthread_mutex_destroy(&ls->mu);
        free(ls);
        mt_error_wrap(err, "cannot start the light service on %s", addr);
        return NULL;
    }
    return ls;
}

void light_stop(struct light_service *ls)
{
    if (!ls)
        return;
    rpc_server_stop(ls->srv, 1000);
    datasets_release(&ls->datasets);
    free(ls->tasks);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}
