/* agent.c - the node daemon's context, startup sequence, event loop and stop; see agent.h (the
 * MQTT session is in session.c). */
#include "agent.h"
#include "agent_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "commands.h"
#include "deliver.h"
#include "fsutil.h"
#include "heartbeat.h"
#include "light.h"
#include "loop.h"
#include "runtime.h"
#include "tasks.h"
#include "mem.h"
#include "utf8.h"
#include "wire.h"
#include "workers.h"

#define DRAIN_MAX_MS         60000
#define TICK_MS              1000
#define TASK_WORKERS         4     /* threads for blocking task steps (pull, stop, logs) */
#define MANAGER_CALLS_QUEUED 256   /* manager calls waiting for the worker, at most */
#define INSPECT_MS           30000 /* running tasks inspected: a safety net under exit events */
#define STOP_PUBACK_WAIT_MS  3000

/* ---- work finished on other threads, run on the loop --------------------------------------- */

static void post_to_loop(void *ctx, void (*fn)(void *), void *arg)
{
    node *n = ctx;
    loop_post(n->loop, fn, arg);
}

void agent_post(node *n, void (*fn)(void *), void *arg)
{
    loop_post(n->loop, fn, arg);
}

/* A blocking task step on the pool: a slow pull delays only its own task while fewer than
 * TASK_WORKERS steps block. A step the pool stops before running runs inline: after
 * tasks_close it returns at once (cancelled), so nothing is leaked or freed under a thread. */
static void spawn_step(void *ctx, void (*fn)(void *), void *arg)
{
    node *n = ctx;
    if (!n->pool || !workers_submit(n->pool, fn, fn, arg))
        fn(arg);
}

/* The runtime saw a task exit (its own thread): hand the handle to the loop. */
struct exit_note {
    node *n;
    char *handle; /* NULL: inspect everything */
};

static void exit_note_run(void *arg)
{
    struct exit_note *x = arg;
    if (x->n->tasks)
        tasks_exited(x->n->tasks, x->handle);
    free(x->handle);
    free(x);
}

static void on_task_exit(void *ctx, const char *handle)
{
    node *n = ctx;
    struct exit_note *x = xcalloc(1, sizeof(*x));
    x->n = n;
    x->handle = handle ? xstrdup(handle) : NULL;
    post_to_loop(n, exit_note_run, x);
}

/* ---- task hooks ---------------------------------------------------------------------------- */

void agent_publish_status(node *n, const uint8_t *update, size_t len, const char *what)
{
    mt_error *e = NULL;
    /* QoS 1: queued by the client while the broker is away, delivered on reconnect */
    if (!n->mqtt ||
        mqtt_publish(n->mqtt, TOPIC_UPDATE_TASK_STATUS, update, len, 1, false, NULL, &e) < 0) {
        log_warn(n->log, "tasks", "Status of %s not published: %s", what,
                 e ? mt_error_msg(e) : "no broker connection");
        mt_error_free(&e);
    }
}

static void hook_publish(void *ctx, const task *t)
{
    node *n = ctx;
    size_t len;
    cleanup_free uint8_t *buf =
        wire_task_update(t->swarm, n->id, t->id, t->iteration, t->circular, t->status, &len);
    cleanup_free char *what = xasprintf("task %s", t->key);
    agent_publish_status(n, buf, len, what);
}

static void hook_error(void *ctx, int id, const task *t, const char *msg)
{
    node *n = ctx;
    log_error(n->log, "tasks", "%s", msg);
    Common__System__Error e = COMMON__SYSTEM__ERROR__INIT;
    Common__System__PairId me, sw, ti;
    wire_pair_id(&me, n->id);
    wire_pair_id(&sw, t->swarm);
    wire_pair_id(&ti, t->id);
    Google__Protobuf__Timestamp ts;
    wire_timestamp_now(&ts);
    e.node_id = &me;
    e.swarm_id = &sw;
    e.task_id = &ti;
    e.iteration = t->iteration;
    e.circular = t->circular;
    e.timestamp = &ts;
    e.error_id = (uint32_t)id;
    /* a protobuf string must be valid UTF-8 (the manager refuses the message otherwise), and
     * fixed-size buffers may have cut a character */
    cleanup_free char *content = utf8_lossy(msg, strlen(msg), NULL);
    e.content = content;
    size_t len;
    uint8_t *buf = wire_pack(&e.base, &len);
    agent_call_async(n, "SendError", buf, len);
}

static void hook_log(void *ctx, int level, const char *fmt, ...)
{
    node *n = ctx;
    if (!log_enabled(n->log, (log_level)level))
        return;
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_msg(n->log, (log_level)level, "tasks", "%s", buf);
}

static void hook_task_known(void *ctx, const task *t, bool known)
{
    node *n = ctx;
    if (!n->light)
        return;
    if (known)
        light_task_set(n->light, t->swarm, t->id, t->iteration, t->circular, t->status);
    else
        light_task_clear(n->light, t->swarm, t->id);
}

static int tasks_setup(node *n, mt_error **err)
{
    const node_config *c = &n->cfg;
    int cpus = 1;
    uint64_t mem = 0;
    if (metrics_capacity(&n->metrics, &cpus, &mem, err) < 0)
        return -1;
    task_limits l = {0};
    l.max_concurrent = (int)c->resources.max_concurrent_tasks;
    l.queue_limit = (int)c->tasks.queue_limit;
    l.timeout_s = c->tasks.task_timeout;
    /* capacity kept back for the host */
    uint64_t reserve = (uint64_t)c->resources.reserve_memory_mb << 20;
    uint64_t usable = mem > reserve ? mem - reserve : mem / 2;
    l.memory_bytes =
        c->containers.default_memory_limit < usable ? c->containers.default_memory_limit : usable;
    double cpu_usable = (double)cpus * (100.0 - (double)c->resources.reserve_cpu_percent) / 100.0;
    l.cpus =
        c->containers.default_cpu_limit < cpu_usable ? c->containers.default_cpu_limit : cpu_usable;
    l.pids_limit = c->containers.pids_limit;
    l.log_limit = c->tasks.max_log_size;
    l.pull_timeout = (int)c->containers.pull_timeout;
    l.stop_grace_s = (int)c->tasks.stop_timeout;
    l.cleanup_on_failure = c->tasks.cleanup_on_failure;
    l.gpus_available = c->containers.gpu_enabled == 1 || (c->containers.gpu_enabled < 0 && n->gpus);
    const char *host = c->network.light_service_host;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !*host)
        host = "127.0.0.1";
    size_t nd = n->datasets.len;
    cleanup_free const char **names = xcalloc(nd + 1, sizeof(char *));
    cleanup_free const char **paths = xcalloc(nd + 1, sizeof(char *));
    for (size_t i = 0; i < nd; i++) {
        names[i] = n->datasets.items[i].key;
        paths[i] = n->datasets.items[i].path;
    }
    task_env env = {host, n->light_port, nd, names, paths, !c->datasets.mount_readonly};
    task_hooks h = {n,          hook_publish, hook_error, deliver_keep,
                    spawn_step, post_to_loop, hook_log,   hook_task_known};
    if (deliver_open(n, err) < 0)
        return -1;
    n->tasks = tasks_new(n->rt, n->id, c->tasks.state_dir, &l, &env, &h);
    /* Exits arrive as events (runtime_ops.watch_exits); the inspection of running tasks is
     * only a safety net. MANTA_INSPECT_INTERVAL_MS overrides it (tests, tuning). */
    const char *iv = getenv("MANTA_INSPECT_INTERVAL_MS");
    tasks_set_inspect_interval(n->tasks, iv && *iv ? strtoll(iv, NULL, 10) : INSPECT_MS);
    if (!n->pool)
        n->pool = workers_start(TASK_WORKERS, 0);
    if (!n->pool)
        log_warn(n->log, "tasks", "Cannot start the task workers; task steps run on the loop");
    mt_error *we = NULL;
    if (n->rt->ops->watch_exits && n->rt->ops->watch_exits(n->rt, on_task_exit, n, &we) < 0) {
        log_warn(n->log, "tasks", "No exit events (%s): exits are found by inspection every %lld s",
                 mt_error_msg(we), (long long)INSPECT_MS / 1000);
        mt_error_free(&we);
    }
    log_info(n->log, "tasks",
             "Tasks: runtime %s, at most %lld at once, memory %llu MiB and %.2f "
             "CPUs each, timeout %lld s",
             n->runtime_name, (long long)l.max_concurrent,
             (unsigned long long)(l.memory_bytes >> 20), l.cpus, (long long)l.timeout_s);
    tasks_recover(n->tasks);
    light_tasks_known(n->light);
    return 0;
}

/* ---- init ---------------------------------------------------------------------------------- */

static void on_signal(void *ctx, int sig);
static void on_tick(void *arg);
static void on_heartbeat_due(void *arg);
static void on_monitor_due(void *arg);
static void on_reconnect_due(void *arg);

int agent_init(node *n, node_config *cfg, const char *config_name, const char *alias_override,
               mt_error **err)
{
    memset(n, 0, sizeof(*n));
    n->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    n->config_name = xstrdup(config_name);
    n->alias_override = xstrdup(alias_override);
    n->out = stdout;
    n->mqtt_watched_fd = -1;
    n->disconnect_mid = -1;
    metrics_init(&n->metrics, NULL);
    metrics_platform(&n->platform);

    log_level lvl = LOG_INFO;
    log_level_parse(n->cfg.logging.level, &lvl);
    log_options lo = {
        .level = lvl,
        .file = n->cfg.logging.filename,
        .to_file = n->cfg.logging.log_to_file,
        .to_console = n->cfg.logging.log_to_console,
        .console = stderr,
        .max_bytes = n->cfg.logging.max_file_size,
        .backup_count = (int)n->cfg.logging.backup_count,
        .program = "manta_node",
    };
    n->log = log_open(&lo, err);
    if (!n->log)
        return mt_error_wrap(err, "cannot open the log file");
    log_add_secret(n->log, n->cfg.identity.secured_token);
    log_add_secret(n->log, n->cfg.mqtt.password);
    log_add_secret(n->log, n->cfg.containers.registry_password);

    if (!n->cfg.identity.alias && n->cfg.identity.random_id) {
        if (node_id_random(&n->id, err) < 0)
            return -1;
    } else if (node_id_from_alias(config_effective_alias(&n->cfg), &n->id, err) < 0) {
        return -1;
    }
    node_id_to_xid(n->id, n->xid);
    new_run_id(n);

    if (datasets_scan(&n->cfg.datasets.mappings, &n->datasets, err) < 0)
        return mt_error_wrap(err, "Dataset validation failed");

    /* Signals arrive through the loop's signalfd; it blocks them before any thread exists, so
     * that no library thread can take a SIGTERM with the default action. SIGUSR2: stop,
     * leaving tasks running (manta_node stop --keep-tasks). */
    static const int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2};
    signal(SIGPIPE, SIG_IGN);
    n->loop = loop_new(signals, sizeof(signals) / sizeof(signals[0]), on_signal, n, err);
    if (!n->loop)
        return -1;
    loop_timer_init(&n->tick_timer, on_tick, n);
    loop_timer_init(&n->heartbeat_timer, on_heartbeat_due, n);
    loop_timer_init(&n->monitor_timer, on_monitor_due, n);
    loop_timer_init(&n->reconnect_timer, on_reconnect_due, n);
    loop_timer_in(n->loop, &n->tick_timer, 0);

    mqtt_lib_init();
    n->libs_inited = true;
    n->wq = workers_start(1, MANAGER_CALLS_QUEUED);
    if (!n->wq)
        return mt_error_set(err, MT_ERR_RESOURCE,
                            "Cannot start the thread that makes the node's manager calls (the "
                            "system refused a new thread); free some resources and start the "
                            "node again.");
    log_info(n->log, "agent", "Node ID: %s", n->xid);
    log_info(n->log, "agent", "Configuration: %s", n->cfg.metadata.name);
    return 0;
}

/* ---- startup ------------------------------------------------------------------------------- */

static void loop_once(node *n, int timeout_ms);

static int auth_or(int code, int other)
{
    return code == RPC_UNAUTHENTICATED || code == RPC_PERMISSION_DENIED ? AGENT_STAGE_AUTH : other;
}

/* What the light service is given of the node (light.h). */
static light_host light_host_of(node *n)
{
    return (light_host){.log = n->log,
                        .mc = &n->mc,
                        .id = n->id,
                        .state_dir = n->cfg.tasks.state_dir,
                        .host = n->cfg.network.light_service_host,
                        .port = (int)n->cfg.network.light_service_port,
                        .max_tasks = (int)n->cfg.resources.max_concurrent_tasks,
                        .datasets = &n->datasets};
}

/* The task runtime is opened (Docker: the daemon asked) on a thread of its own while the node
 * registers, so its check does not delay the handshake; a node whose runtime fails leaves the
 * manager at once (SetNodeStatus DISCONNECTED) and exits, never staying registered. */
struct rt_probe {
    const node_config *cfg;
    runtime *rt;
    const char *name;
    mt_error *err;
};

static void *rt_probe_main(void *arg)
{
    struct rt_probe *p = arg;
    p->rt = runtime_open(p->cfg, &p->name, &p->err);
    return NULL;
}

/* A failed start's step rides on its error (mt_error.status): the CLI picks the seed's error
 * block by it. Returns -1. */
static int at_stage(mt_error **err, int stage)
{
    if (err && *err)
        (*err)->status = stage;
    return -1;
}

/* IsAvailable, then RegisterNode: the broker address and topics. */
static int register_with_manager(node *n, mt_error **err)
{
    if (mc_open(&n->mc, &n->cfg, n->log, err) < 0) {
        return at_stage(err, AGENT_STAGE_MANAGER);
    }
    log_info(n->log, "agent", "Checking manager availability at %s://%s",
             n->mc.tls ? "TLS" : "insecure", n->mc.target);
    rpc_status st;
    Common__System__Empty empty = COMMON__SYSTEM__EMPTY__INIT;
    size_t elen;
    cleanup_free uint8_t *ebuf = wire_pack(&empty.base, &elen);
    if (mc_call_raw(&n->mc, "IsAvailable", ebuf, elen, n->cfg.network.connect_timeout * 1000, 3,
                    NULL, &st) < 0) {
        return mt_error_set_status(err, auth_or(st.code, AGENT_STAGE_MANAGER), MT_ERR_IO, "%s: %s",
                                   rpc_code_name(st.code), st.message);
    }

    /* RegisterNode: ID, platform, dataset overviews. */
    Common__Informations__NodeOverview ov = COMMON__INFORMATIONS__NODE_OVERVIEW__INIT;
    Common__System__PairId pid;
    wire_pair_id(&pid, n->id);
    Common__Informations__PlatformInfo pi;
    wire_platform(&pi, &n->platform);
    wire_overviews wo;
    wire_overviews_fill(&wo, &n->datasets);
    ov.node_id = &pid;
    ov.platform_info = &pi;
    ov.dataset_overviews = &wo.ov;
    ProtobufCMessage *resp = NULL;
    int rc = mc_call(&n->mc, "RegisterNode", &ov.base,
                     &common__informations__registration__descriptor, &resp, &st);
    wire_overviews_release(&wo);
    if (rc < 0) {
        return mt_error_set_status(err, auth_or(st.code, AGENT_STAGE_REGISTER), MT_ERR_IO, "%s: %s",
                                   rpc_code_name(st.code), st.message);
    }
    Common__Informations__Registration *reg = (Common__Informations__Registration *)resp;
    n->broker_host =
        xstrdup(n->cfg.mqtt.broker_host ? n->cfg.mqtt.broker_host : reg->mqtt_broker_host);
    /* uint32 on the wire: anything past 65535 is no port (and must not wrap into one) */
    uint32_t reg_port = reg->mqtt_broker_port;
    n->broker_port = n->cfg.mqtt.broker_port ? (int)n->cfg.mqtt.broker_port
                     : reg_port <= 65535     ? (int)reg_port
                                             : -1;
    n->topics = xcalloc(reg->n_mqtt_topics + 1, sizeof(char *));
    for (size_t i = 0; i < reg->n_mqtt_topics; i++)
        n->topics[i] = xstrdup(reg->mqtt_topics[i]);
    n->ntopics = reg->n_mqtt_topics;
    protobuf_c_message_free_unpacked(resp, NULL);
    log_info(n->log, "agent", "Registered with the manager; broker %s:%d, %zu topic(s)",
             n->broker_host, n->broker_port, n->ntopics);
    fprintf(n->out, "✓ Node registered with manager\n");
    fflush(n->out);
    if (!*n->broker_host || n->broker_port <= 0 || n->broker_port > 65535) {
        return mt_error_set_status(
            err, AGENT_STAGE_BROKER, MT_ERR_CONFIG,
            "the manager returned no usable broker address (host '%s', port %u); "
            "set [mqtt] broker_host and broker_port to choose the broker",
            n->broker_host, (unsigned)reg_port);
    }
    return 0;
}

/* Registered, but the runtime failed: tell the manager the node is gone (best effort). */
static void leave_manager(node *n)
{
    Common__Informations__NodeStatus st = COMMON__INFORMATIONS__NODE_STATUS__INIT;
    Common__System__PairId pid;
    wire_pair_id(&pid, n->id);
    st.node_id = &pid;
    st.status = COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED;
    size_t len;
    cleanup_free uint8_t *buf = wire_pack(&st.base, &len);
    rpc_status rs;
    if (mc_call_raw(&n->mc, "SetNodeStatus", buf, len, 0, 1, NULL, &rs) < 0)
        log_warn(n->log, "agent", "Could not tell the manager the node is leaving: %s", rs.message);
}

int agent_start(node *n, mt_error **err)
{
    struct rt_probe probe = {.cfg = &n->cfg};
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, rt_probe_main, &probe) == 0;
    if (!threaded)
        rt_probe_main(&probe);
    mt_error *merr = NULL;
    int mrc = register_with_manager(n, &merr);
    if (threaded)
        pthread_join(th, NULL);
    n->rt = probe.rt;
    n->runtime_name = probe.name;
    if (!n->rt) { /* a node that cannot run tasks does not stay */
        if (mrc == 0)
            leave_manager(n);
        mt_error_free(&merr);
        *err = probe.err;
        return at_stage(err, AGENT_STAGE_RUNTIME);
    }
    log_info(n->log, "agent", "Task runtime: %s", n->runtime_name);
    if (strcmp(n->runtime_name, "process") == 0) {
        log_warn(n->log, "agent", "%s", runtime_process_warning());
        fprintf(n->out, "Warning: containers.runtime = \"process\": tasks run as plain processes "
                        "on this host; nothing is isolated\n");
    }
    if (mrc < 0) {
        *err = merr; /* its status: the step */
        return -1;
    }

    /* The broker: connect and subscribe within connect_timeout. */
    if (mqtt_setup(n, err) < 0) {
        return at_stage(err, AGENT_STAGE_BROKER);
    }
    if (mqtt_connect(n->mqtt, n->broker_host, n->broker_port, err) < 0) {
        return at_stage(err, AGENT_STAGE_BROKER);
    }
    int64_t deadline = clock_mono_ms() + n->cfg.network.connect_timeout * 1000;
    n->starting = true; /* no automatic reconnect during startup */
    while (!(n->mqtt_up && n->suback_pending == 0) && clock_mono_ms() < deadline && !n->stopping &&
           n->disconnects == 0 && n->last_connack_rc == 0)
        loop_once(n, 100);
    n->starting = false;
    loop_timer_stop(n->loop, &n->reconnect_timer);
    if (!n->mqtt_up || n->suback_pending) {
        if (n->last_connack_rc)
            return mt_error_set_status(err, AGENT_STAGE_BROKER, MT_ERR_IO,
                                       "the broker refused the connection (code %d)",
                                       n->last_connack_rc);
        return mt_error_set_status(err, AGENT_STAGE_BROKER, MT_ERR_IO,
                                   n->disconnects ? "the connection failed"
                                                  : "no answer within %lld s",
                                   (long long)n->cfg.network.connect_timeout);
    }
    fprintf(n->out, "✓ Connected to MQTT broker\n");
    fflush(n->out);

    light_host lh = light_host_of(n);
    lh.adopting = true; /* until tasks_setup adopted the last run's tasks */
    n->light = light_start(&lh, &n->light_port, err);
    if (!n->light) {
        return at_stage(err, AGENT_STAGE_LIGHT);
    }
    log_info(n->log, "agent", "Light service listening on %s:%d", n->cfg.network.light_service_host,
             n->light_port);
    /* The heartbeat and the 1 s tick from the same moment: at the default ping_interval (1 s)
     * they then share every wake-up (LOOP_SLACK_MS), an idle node wakes once a second. */
    loop_timer_in(n->loop, &n->heartbeat_timer, 0);
    loop_timer_in(n->loop, &n->tick_timer, 0);
    agent_monitor(n, true);
    loop_timer_in(n->loop, &n->monitor_timer, n->cfg.resources.monitor_interval * 1000);
    if (tasks_setup(n, err) < 0) {
        return at_stage(err, AGENT_STAGE_RUNTIME);
    }
    /* Commands the broker handed over during the connection (kept while the node was away)
     * were held until now: the task table exists. */
    commands_release_held(n);
    fprintf(n->out, "Task runtime: %s\n", n->runtime_name);
    fprintf(n->out, "✓ Ready to execute tasks\n");
    fflush(n->out);
    log_info(n->log, "agent", "Node '%s' ready", config_effective_alias(&n->cfg));
    return 0;
}

/* ---- errors to the manager ----------------------------------------------------------------- */

struct call_job {
    node *n;
    char rpc[32];
    uint8_t *buf;
    size_t len;
};

static void call_job_free(void *arg)
{
    struct call_job *j = arg;
    free(j->buf);
    free(j);
}

static void call_job_run(void *arg)
{
    struct call_job *j = arg;
    rpc_status st;
    if (mc_call_raw(&j->n->mc, j->rpc, j->buf, j->len, 0, 0, NULL, &st) < 0)
        log_error(j->n->log, "manager", "%s failed: %s: %s", j->rpc, rpc_code_name(st.code),
                  st.message);
    else
        log_debug(j->n->log, "manager", "%s done", j->rpc);
    call_job_free(j);
}

void agent_call_async(node *n, const char *rpc, uint8_t *buf, size_t len)
{
    struct call_job *j = xcalloc(1, sizeof(*j));
    j->n = n;
    snprintf(j->rpc, sizeof(j->rpc), "%s", rpc);
    j->buf = buf;
    j->len = len;
    if (!workers_submit(n->wq, call_job_run, call_job_free, j)) {
        call_job_free(j);
        log_error(n->log, "manager", "%s dropped: too many manager calls waiting", rpc);
    }
}

void agent_send_error(node *n, int error_id, const char *content)
{
    log_error(n->log, "agent", "%s", content);
    Common__System__Error e = COMMON__SYSTEM__ERROR__INIT;
    Common__System__PairId pid;
    wire_pair_id(&pid, n->id);
    Google__Protobuf__Timestamp ts;
    wire_timestamp_now(&ts);
    e.node_id = &pid;
    e.timestamp = &ts;
    e.error_id = (uint32_t)error_id;
    /* see hook_error: valid UTF-8 whatever was cut or copied into the text */
    cleanup_free char *text = utf8_lossy(content, strlen(content), NULL);
    e.content = text;
    size_t len;
    uint8_t *buf = wire_pack(&e.base, &len);
    agent_call_async(n, "SendError", buf, len);
}

/* ---- stop ---------------------------------------------------------------------------------- */

static void announce_disconnect(node *n);

void agent_request_stop(node *n, const char *why)
{
    if (n->stopping || n->draining)
        return;
    log_info(n->log, "agent", "Stopping: %s%s", why, n->keep_tasks ? " (tasks keep running)" : "");
    if (n->tasks) {
        /* First the tasks: stop them, upload their logs, remove them (or leave them running
         * for the next agent to adopt), while the manager is still reachable. */
        n->draining = true;
        n->drain_deadline_ms = clock_mono_ms() + DRAIN_MAX_MS;
        /* a task still pulling its image would only be stopped once started: give up the
         * pull (it is then reported stopped, not failed) */
        if (!n->keep_tasks && n->rt && n->rt->ops->cancel)
            n->rt->ops->cancel(n->rt, false);
        tasks_shutdown(n->tasks, n->keep_tasks);
        return;
    }
    announce_disconnect(n);
}

static void announce_disconnect(node *n)
{
    n->draining = false;
    n->stopping = true;
    n->stop_deadline_ms = clock_mono_ms() + STOP_PUBACK_WAIT_MS;
    if (n->mqtt && n->mqtt_up) {
        Common__Informations__NodeStatus st = COMMON__INFORMATIONS__NODE_STATUS__INIT;
        Common__System__PairId pid;
        wire_pair_id(&pid, n->id);
        st.node_id = &pid;
        st.status = COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED;
        size_t len;
        cleanup_free uint8_t *buf = wire_pack(&st.base, &len);
        mt_error *e = NULL;
        if (mqtt_publish(n->mqtt, TOPIC_SET_NODE_STATUS, buf, len, 1, false, &n->disconnect_mid,
                         &e) < 0) {
            log_warn(n->log, "mqtt", "Cannot announce the disconnection: %s", mt_error_msg(e));
            mt_error_free(&e);
            n->disconnect_mid = -1;
        }
    }
}

static bool stop_complete(node *n)
{
    if (!n->stopping)
        return false;
    if (n->disconnect_mid < 0 || n->disconnect_acked || !n->mqtt_up)
        return true;
    return clock_mono_ms() >= n->stop_deadline_ms;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void on_signal(void *ctx, int sig)
{
    node *n = ctx;
    if (sig == SIGHUP) {
        agent_reload(n);
        return;
    }
    if (sig == SIGUSR2)
        n->keep_tasks = true;
    n->stop_signals++;
    if (n->stop_signals > 1) {
        fprintf(n->out, "Received %s again, exiting now\n", sigabbrev_np(sig));
        fflush(n->out);
        log_warn(n->log, "agent", "Second %s: exiting at once", sigabbrev_np(sig));
        _exit(1);
    }
    fprintf(n->out, "Received SIG%s, stopping node...\n", sigabbrev_np(sig));
    fflush(n->out);
    char why[32];
    snprintf(why, sizeof(why), "SIG%s", sigabbrev_np(sig));
    agent_request_stop(n, why);
}

int agent_light_up(node *n, mt_error **err)
{
    if (n->light)
        return 0;
    int port = 0;
    light_host lh = light_host_of(n);
    n->light = light_start(&lh, &port, err);
    if (!n->light)
        return -1;
    n->light_idle_since_ms = 0;
    if (port != n->light_port) {
        log_info(n->log, "agent", "Light service listening on %s:%d (port %d was taken)",
                 n->cfg.network.light_service_host, port, n->light_port);
        n->light_port = port;
        tasks_set_rpc_port(n->tasks, port);
    } else {
        log_debug(n->log, "agent", "Light service listening on %s:%d again",
                  n->cfg.network.light_service_host, port);
    }
    return 0;
}

/* What gRPC holds goes once unused for network.idle_close: the light service while no task is
 * queued, running or finishing, the manager channel when no call used it. gRPC is then not
 * initialised at all (rpc.c) and its timer threads, which wake every second even with nothing
 * to do, are gone. Each close takes a few ms on the loop (gRPC's threads are joined), once per
 * idle period. */
static void idle_close(node *n, int64_t now)
{
    int64_t idle_ms = n->cfg.network.idle_close * 1000;
    if (n->light && !n->stopping && !n->draining) {
        if (n->tasks && !tasks_idle(n->tasks)) { /* finished tasks kept need no service */
            n->light_idle_since_ms = 0;
        } else if (!n->light_idle_since_ms) {
            n->light_idle_since_ms = now;
        } else if (now - n->light_idle_since_ms >= idle_ms) {
            light_stop(n->light);
            n->light = NULL;
            n->light_idle_since_ms = 0;
            log_debug(n->log, "agent", "Light service stopped: no task for %lld s",
                      (long long)n->cfg.network.idle_close);
        }
    }
    if (mc_idle_close(&n->mc, now, idle_ms))
        log_debug(n->log, "manager", "Closed the manager connection: unused for %lld s",
                  (long long)n->cfg.network.idle_close);
}

/* Once a second: MQTT's clock (keep-alive, CONNACK wait), the tasks' safety net (exits are
 * events, not polled), the outbox's retries, and what goes when idle. */
static void on_tick(void *arg)
{
    node *n = arg;
    int64_t now = clock_mono_ms();
    if (n->mqtt)
        mqtt_tick(n->mqtt);
    if (n->tasks && tasks_count(n->tasks, 0) > 0)
        tasks_tick(n->tasks);
    deliver_tick(n, now);
    idle_close(n, now);
    loop_timer_in(n->loop, &n->tick_timer, TICK_MS);
}

static void on_heartbeat_due(void *arg)
{
    node *n = arg;
    if (n->stopping)
        return;
    agent_heartbeat(n);
    loop_timer_in(n->loop, &n->heartbeat_timer, n->cfg.mqtt.ping_interval * 1000);
}

static void on_monitor_due(void *arg)
{
    node *n = arg;
    if (n->stopping)
        return;
    agent_monitor(n, false);
    loop_timer_in(n->loop, &n->monitor_timer, n->cfg.resources.monitor_interval * 1000);
}

static void on_reconnect_due(void *arg)
{
    node *n = arg;
    if (!n->mqtt || n->stopping)
        return;
    mt_error *e = NULL;
    log_info(n->log, "mqtt", "Reconnecting to %s:%d", n->broker_host, n->broker_port);
    if (mqtt_connect(n->mqtt, n->broker_host, n->broker_port, &e) < 0) {
        log_warn(n->log, "mqtt", "Reconnect failed: %s", mt_error_msg(e));
        mt_error_free(&e);
        schedule_reconnect(n);
    }
}

/* One wait of the loop (at most timeout_ms, < 0: until something is due), then what depends on
 * state rather than time: the session marker, the end of a drain. */
static void loop_once(node *n, int timeout_ms)
{
    watch_mqtt(n);
    loop_run_once(n->loop, timeout_ms);
    int64_t now = clock_mono_ms();
    marker_check(n, now);
    if (n->draining &&
        ((tasks_idle(n->tasks) && deliver_settled(n)) || now >= n->drain_deadline_ms)) {
        if (!tasks_idle(n->tasks))
            log_warn(n->log, "agent", "Tasks still busy after %d s; stopping anyway",
                     DRAIN_MAX_MS / 1000);
        announce_disconnect(n);
    }
}

int agent_run(node *n)
{
    while (!stop_complete(n)) {
        int64_t t = n->stopping ? n->stop_deadline_ms - clock_mono_ms() : -1;
        loop_once(n, n->stopping && t < 0 ? 0 : (int)(t > 60000 ? 60000 : t));
    }
    /* Graceful end: a clean DISCONNECT (no will: the status was published), the light
     * service, then what the worker still has to say to the manager. */
    if (n->mqtt && n->mqtt_up) {
        mqtt_disconnect(n->mqtt);
        for (int i = 0; i < 10 && mqtt_fd(n->mqtt) >= 0 && mqtt_want_write(n->mqtt); i++)
            loop_once(n, 10);
    }
    if (n->light) {
        light_stop(n->light);
        n->light = NULL;
    }
    if (n->wq && !workers_drain(n->wq, 5000))
        log_warn(n->log, "agent", "Some manager calls were still pending at exit");
    log_info(n->log, "agent", "Node stopped");
    return n->exit_code;
}

void agent_free(node *n)
{
    commands_discard_held(n); /* a start that failed: say what was never run */
    /* Shutdown order: no new step; blocking calls cut short; the exit-event thread joined
     * (its posts name the table); the pool joined (a step in flight finishes: a Docker pull is
     * cancelled, the others are bounded by their own timeouts); then what they posted runs
     * against the live table, and only then the table and the runtime are freed. */
    if (n->tasks)
        tasks_close(n->tasks);
    if (n->rt && n->rt->ops->cancel)
        n->rt->ops->cancel(n->rt, true);
    if (n->rt && n->rt->ops->watch_exits)
        n->rt->ops->watch_exits(n->rt, NULL, NULL, NULL);
    if (n->pool) {
        workers_stop(n->pool);
        n->pool = NULL;
    }
    if (n->loop)
        loop_run_posted(n->loop);
    if (n->tasks)
        tasks_free(n->tasks);
    if (n->rt)
        runtime_free(n->rt);
    if (n->light)
        light_stop(n->light);
    if (n->wq)
        workers_stop(n->wq); /* jobs never started are discarded (freed, or posted back) */
    if (n->loop)
        loop_run_posted(n->loop); /* what the worker's last jobs posted */
    deliver_close(n);
    if (n->mqtt)
        mqtt_free(n->mqtt);
    mc_close(&n->mc);
    if (n->topics) {
        for (size_t i = 0; i < n->ntopics; i++)
            free(n->topics[i]);
        free(n->topics);
    }
    free(n->broker_host);
    free(n->marker_topic);
    datasets_release(&n->datasets);
    metrics_release(&n->metrics);
    loop_free(n->loop);
    if (n->log)
        log_close(n->log);
    config_free(&n->cfg);
    free(n->config_name);
    free(n->alias_override);
    if (n->libs_inited)
        mqtt_lib_cleanup();
    memset(n, 0, sizeof(*n));
}
