/* light.c - the light service's server: binding, the registry of this node's tasks and
 * datasets, and dispatch to light_local.c / light_world.c. */
#include "light.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fsutil.h"
#include "light_impl.h"
#include "mem.h"
#include "rpc.h"
#include "utf8.h"

#define LOCAL_PREFIX "/node.light_service.Local/"
#define WORLD_PREFIX "/node.light_service.World/"

/* Room on the server beyond the tasks at their cap: calls still reading their request (not yet
 * counted against a task), calls being refused. */
#define SPARE_CALLS 64
#define MIN_CALLS   128
#define MAX_CALLS   2048

struct known_task {
    node_id swarm, task;
    uint32_t iteration, circular;
    int status;
};

/* Calls in progress of one task (entries exist while n > 0). */
struct task_calls {
    node_id swarm, task;
    int n;
};

struct light_service {
    light_host h; /* the node's services and settings (borrowed) */
    rpc_server *srv;
    pthread_mutex_t mu;
    struct known_task *tasks;
    size_t ntasks;
    struct task_calls *busy;
    size_t nbusy;
    dataset_set datasets;
    bool adopting;          /* light_host.adopting until light_tasks_known (under mu) */
    pthread_cond_t adopted; /* CLOCK_MONOTONIC; broadcast when adopting ends */
    /* giving memory back (below) */
    pthread_mutex_t tmu;
    pthread_cond_t tcv; /* CLOCK_MONOTONIC */
    struct timespec tlast;
    bool tpending, tstop, trunning;
    bool tsecond; /* the next trim is the second after the last large call */
    pthread_t tth;
    rpc_channel *relay; /* the relays' own connection to the manager (under mu) */
    int relay_users;
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

static struct known_task *known(struct light_service *ls, node_id swarm, node_id task)
{
    for (size_t i = 0; i < ls->ntasks; i++)
        if (node_id_equal(ls->tasks[i].swarm, swarm) && node_id_equal(ls->tasks[i].task, task))
            return &ls->tasks[i];
    return NULL;
}

bool light_task_lookup(struct light_service *ls, node_id swarm, node_id task, uint32_t *iteration,
                       uint32_t *circular)
{
    pthread_mutex_lock(&ls->mu);
    struct known_task *k = known(ls, swarm, task);
    if (!k && ls->adopting) {
        /* The node restarted and has not adopted its running tasks yet: a task retrying across
         * the restart reached it first. Not a stranger until the adoption says so. */
        struct timespec due = clock_mono_after(LIGHT_ADOPT_WAIT_MS);
        int rc = 0;
        while (!k && ls->adopting && rc != ETIMEDOUT) {
            rc = pthread_cond_timedwait(&ls->adopted, &ls->mu, &due);
            k = known(ls, swarm, task);
        }
    }
    if (k && iteration)
        *iteration = k->iteration;
    if (k && circular)
        *circular = k->circular;
    pthread_mutex_unlock(&ls->mu);
    return k != NULL;
}

void light_tasks_known(struct light_service *ls)
{
    pthread_mutex_lock(&ls->mu);
    ls->adopting = false;
    pthread_cond_broadcast(&ls->adopted);
    pthread_mutex_unlock(&ls->mu);
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

/* ---- calls in progress per task ------------------------------------------------------------ */

bool light_slot_take(struct light_service *ls, node_id swarm, node_id task, light_slot *slot)
{
    *slot = (light_slot){0};
    pthread_mutex_lock(&ls->mu);
    size_t i;
    for (i = 0; i < ls->nbusy; i++)
        if (node_id_equal(ls->busy[i].swarm, swarm) && node_id_equal(ls->busy[i].task, task))
            break;
    if (i == ls->nbusy) {
        ls->busy = xrealloc(ls->busy, (ls->nbusy + 1) * sizeof(*ls->busy));
        ls->busy[ls->nbusy++] = (struct task_calls){swarm, task, 0};
    }
    bool ok = ls->busy[i].n < LIGHT_TASK_CALLS;
    if (ok)
        ls->busy[i].n++;
    pthread_mutex_unlock(&ls->mu);
    if (ok) {
        *slot = (light_slot){ls, swarm, task, true};
    } else {
        char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
        node_id_to_xid(swarm, sx);
        node_id_to_xid(task, tx);
        log_warn(ls->h.log, "light",
                 "Task %s of swarm %s already has %d calls in progress; refusing another", tx, sx,
                 LIGHT_TASK_CALLS);
    }
    return ok;
}

void light_slot_release(light_slot *slot)
{
    if (!slot || !slot->held)
        return;
    struct light_service *ls = slot->ls;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < ls->nbusy; i++) {
        struct task_calls *b = &ls->busy[i];
        if (node_id_equal(b->swarm, slot->swarm) && node_id_equal(b->task, slot->task)) {
            if (--b->n <= 0)
                *b = ls->busy[--ls->nbusy];
            break;
        }
    }
    pthread_mutex_unlock(&ls->mu);
    slot->held = false;
}

void light_busy_text(char *buf, size_t len, bool consumed)
{
    snprintf(buf, len,
             "This task already has %d calls in progress on the light service, the most one task "
             "may have at once; %s",
             LIGHT_TASK_CALLS,
             consumed ? "this call was refused after part of its stream was read, so it must not "
                        "be retried as is: send it again once one of the others has ended."
                      : "wait for one of them to end before starting another.");
}

/* ---- giving memory back ------------------------------------------------------------------
 *
 * light_trim(ls) only notes the time; the service's trimmer thread acts once LIGHT_TRIM_DELAY_MS
 * passed without another: it closes the relays' connection to the manager if no relay uses it
 * (gRPC keeps read buffers of its estimate of the next read, up to twice the largest recent one,
 * allocated on an open connection), then malloc_trim(0). The tasks' connections to the light
 * service stay open: closing them when idle raced the task's next call (rpc.h,
 * rpc_server_opts); what one keeps is bounded by the fixed window (LIGHT_WINDOW).
 * The trim walks the heap and madvises every free page: milliseconds to tens of milliseconds
 * after a 16 MiB value; and every page given back costs a page fault when the next value uses
 * it (tens of microseconds each under a hypervisor: 100-300 ms per 16 MiB measured here,
 * bench/README.md). So no call waits for it, and the calls of a burst (a SetGlobal and the
 * GetGlobal after it) reuse the pages the first one faulted in. */
static void *trimmer_main(void *arg)
{
    struct light_service *ls = arg;
    pthread_mutex_lock(&ls->tmu);
    while (!ls->tstop) {
        if (!ls->tpending) {
            pthread_cond_wait(&ls->tcv, &ls->tmu);
            continue;
        }
        struct timespec due = clock_ts_add_ms(ls->tlast, LIGHT_TRIM_DELAY_MS), now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (clock_ts_before(now, due)) {
            pthread_cond_timedwait(&ls->tcv, &ls->tmu, &due);
            continue;
        }
        /* once more a little later: for what gRPC frees after the connections' close */
        ls->tpending = !ls->tsecond;
        ls->tsecond = !ls->tsecond;
        if (ls->tpending)
            ls->tlast = now;
        pthread_mutex_unlock(&ls->tmu);
        pthread_mutex_lock(&ls->mu);
        rpc_channel *idle = ls->relay_users == 0 ? ls->relay : NULL;
        if (idle)
            ls->relay = NULL;
        pthread_mutex_unlock(&ls->mu);
        if (idle) {
            rpc_channel_free(idle);
            /* gRPC frees the connection's buffers on its own threads, just after */
            struct timespec pause = {0, 100 * 1000000L};
            nanosleep(&pause, NULL);
        }
        malloc_trim(0);
        pthread_mutex_lock(&ls->tmu);
    }
    pthread_mutex_unlock(&ls->tmu);
    return NULL;
}

static void trimmer_start(struct light_service *ls)
{
    pthread_mutex_init(&ls->tmu, NULL);
    clock_cond_init(&ls->tcv);
    ls->trunning = pthread_create(&ls->tth, NULL, trimmer_main, ls) == 0;
}

static void trimmer_stop(struct light_service *ls)
{
    pthread_mutex_lock(&ls->tmu);
    ls->tstop = true;
    pthread_cond_signal(&ls->tcv);
    pthread_mutex_unlock(&ls->tmu);
    if (ls->trunning)
        pthread_join(ls->tth, NULL);
    pthread_cond_destroy(&ls->tcv);
    pthread_mutex_destroy(&ls->tmu);
    rpc_channel_free(ls->relay);
    ls->relay = NULL;
}

void light_trim(struct light_service *ls)
{
    pthread_mutex_lock(&ls->tmu);
    clock_gettime(CLOCK_MONOTONIC, &ls->tlast);
    ls->tpending = true;
    ls->tsecond = false;
    pthread_cond_signal(&ls->tcv);
    pthread_mutex_unlock(&ls->tmu);
}

rpc_channel *light_relay_channel(struct light_service *ls, rpc_status *st)
{
    manager_client *mc = ls->h.mc;
    pthread_mutex_lock(&ls->mu);
    mt_error *e = NULL;
    if (!ls->relay)
        ls->relay = mc_channel_new_own(mc, &e);
    rpc_channel *ch = ls->relay;
    if (ch)
        ls->relay_users++;
    pthread_mutex_unlock(&ls->mu);
    if (!ch) {
        st->code = RPC_UNAVAILABLE;
        snprintf(st->message, sizeof(st->message), "cannot open a channel to the manager: %s",
                 mt_error_msg(e));
    }
    mt_error_free(&e);
    return ch;
}

void light_relay_release(struct light_service *ls)
{
    pthread_mutex_lock(&ls->mu);
    ls->relay_users--;
    pthread_mutex_unlock(&ls->mu);
}

void light_memory_setup(void)
{
    mallopt(M_ARENA_MAX, 1);
}

/* ---- datasets ------------------------------------------------------------------------------ */

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
    return ls->h.mc;
}

node_id light_node_id(struct light_service *ls)
{
    return ls->h.id;
}

logger *light_log(struct light_service *ls)
{
    return ls->h.log;
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
    /* The text may quote what the task sent (a path) and was cut to fit: clients decode the
     * status message as UTF-8, so it must be valid (U+FFFD for anything that is not). */
    cleanup_free char *clean = utf8_lossy(msg, strlen(msg), NULL);
    rpc_call_finish(call, code, clean);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

/* The light service's two services, by path prefix; each picks its method by the rest of the
 * path (light_local.c, light_world.c). */
static const struct {
    const char *prefix;
    void (*handle)(struct light_service *ls, rpc_call *call, const char *method);
} services[] = {
    {LOCAL_PREFIX, light_local_handle},
    {WORLD_PREFIX, light_world_handle},
};

static void handle(void *ctx, rpc_call *call)
{
    struct light_service *ls = ctx;
    const char *m = rpc_call_method(call);
    for (size_t i = 0; i < ARRAY_LEN(services); i++) {
        size_t n = strlen(services[i].prefix);
        if (strncmp(m, services[i].prefix, n) == 0) {
            services[i].handle(ls, call, m + n);
            return;
        }
    }
    log_warn(ls->h.log, "light", "Unknown method %s from %s", m, rpc_call_peer(call));
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "unknown method");
}

/* <state_dir>/<node xid>/light_port: the port the light service had when light_service_port is
 * 0. A node that restarts (a crash, a SIGKILL) adopts its running tasks, which were told this
 * port when they started: it binds the same port again when it is free. */
static char *port_file(const light_host *h)
{
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(h->id, x);
    const char *sd = h->state_dir;
    return sd && *sd ? xasprintf("%s/%s/light_port", sd, x) : NULL;
}

static int remembered_port(const light_host *h)
{
    cleanup_free char *path = port_file(h);
    mt_error *e = NULL;
    cleanup_free char *text = path ? fs_read_file(path, 32, NULL, &e) : NULL;
    mt_error_free(&e);
    long p = text ? strtol(text, NULL, 10) : 0;
    return p > 0 && p <= 65535 ? (int)p : 0;
}

static void remember_port(const light_host *h, int port)
{
    cleanup_free char *path = port_file(h);
    char text[16];
    int len = snprintf(text, sizeof(text), "%d\n", port);
    mt_error *e = NULL;
    cleanup_free char *dir = path ? xstrndup(path, (size_t)(strrchr(path, '/') - path)) : NULL;
    if (path &&
        (fs_mkdir_p(dir, 0700, &e) < 0 || fs_write_atomic(path, text, (size_t)len, 0600, &e) < 0))
        log_warn(h->log, "light", "cannot remember the light service's port: %s", mt_error_msg(e));
    mt_error_free(&e);
}

static struct light_service *light_start_on(const light_host *h, int port_want, int *port,
                                            mt_error **err);

struct light_service *light_start(const light_host *h, int *port, mt_error **err)
{
    if (h->port != 0)
        return light_start_on(h, h->port, port, err);
    int again = remembered_port(h);
    struct light_service *ls = NULL;
    if (again) {
        mt_error *e = NULL;
        ls = light_start_on(h, again, port, &e);
        if (!ls)
            log_info(h->log, "light",
                     "port %d of the light service's last run is taken (%s); "
                     "tasks adopted from that run cannot reach this one",
                     again, mt_error_msg(e));
        mt_error_free(&e);
    }
    if (!ls)
        ls = light_start_on(h, 0, port, err);
    if (ls && *port != again)
        remember_port(h, *port);
    return ls;
}

static struct light_service *light_start_on(const light_host *h, int port_want, int *port,
                                            mt_error **err)
{
    struct light_service *ls = xcalloc(1, sizeof(*ls));
    ls->h = *h;
    pthread_mutex_init(&ls->mu, NULL);
    ls->adopting = h->adopting;
    clock_cond_init(&ls->adopted);
    copy_datasets(&ls->datasets, h->datasets);
    const char *host = h->host;
    cleanup_free char *addr = strchr(host, ':') ? xasprintf("[%s]:%d", host, port_want)
                                                : xasprintf("%s:%d", host, port_want);
    /* Each call has its own thread (made on demand) and bounded buffers. Every task may have
     * LIGHT_TASK_CALLS calls at once: room for all of them at their cap (the running tasks, plus
     * two finishing or adopted), so a greedy task never keeps another waiting for a thread. */
    int64_t calls = LIGHT_TASK_CALLS * ((int64_t)h->max_tasks + 2) + SPARE_CALLS;
    calls = calls < MIN_CALLS ? MIN_CALLS : calls > MAX_CALLS ? MAX_CALLS : calls;
    rpc_server_opts opts = {.window_bytes = LIGHT_WINDOW};
    ls->srv = rpc_server_start_opts(addr, NULL, (int)calls, &opts, handle, ls, port, err);
    if (ls->srv)
        trimmer_start(ls);
    if (!ls->srv) {
        datasets_release(&ls->datasets);
        pthread_cond_destroy(&ls->adopted);
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
    light_tasks_known(ls); /* no call waits for an adoption that will not come */
    rpc_server_stop(ls->srv, 1000);
    trimmer_stop(ls);
    malloc_trim(0); /* what the last calls left */
    datasets_release(&ls->datasets);
    free(ls->tasks);
    free(ls->busy);
    pthread_cond_destroy(&ls->adopted);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}
