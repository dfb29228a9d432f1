/* mgr.c - the manager's context: opening, the event loop (MQTT, outbox, liveness, signals),
 * the node registry, closing. */
#include "mgr.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "web.h"
#include "backoff.h"
#include "clock.h"
#include "fsutil.h"
#include "loop.h"
#include "mem.h"
#include "node_service.h"
#include "runner.h"

/* The MQTT clock (on_mqtt_clock): keep-alive 30 s, ticked every 10 s while connected, every
 * second while a CONNACK is awaited. */
#define MQTT_KEEPALIVE_S        30
#define MQTT_IDLE_TICK_MS       10000
#define MQTT_CONNECTING_TICK_MS 1000

static void on_signal(void *ctx, int sig);
static void on_mqtt_clock(void *arg);

void mgr_wake(manager *m)
{
    if (m->loop)
        loop_wake(m->loop);
}

static void msgs_free(mgr_msg **head, mgr_msg **tail)
{
    while (*head) {
        mgr_msg *next = (*head)->next;
        free((*head)->topic);
        free((*head)->payload);
        free(*head);
        *head = next;
    }
    *tail = NULL;
}

void mgr_publish(manager *m, const char *node_xid, const char *command, const void *payload,
                 size_t len)
{
    mgr_msg *msg = xcalloc(1, sizeof(*msg));
    msg->topic = xasprintf(MGR_TOPIC_PREFIX "%s/%s", node_xid, command);
    msg->payload = xmalloc(len ? len : 1);
    memcpy(msg->payload, payload, len);
    msg->len = len;
    mgr_msg **head = &m->out_head, **tail = &m->out_tail;
    for (size_t i = 0; i < m->nnodes; i++) {
        mgr_node *n = m->nodes[i];
        if (n->connected && !n->ready && strcmp(n->xid, node_xid) == 0) {
            head = &n->held_head;
            tail = &n->held_tail;
        }
    }
    if (*tail)
        (*tail)->next = msg;
    else
        *head = msg;
    *tail = msg;
    if (head == &m->out_head)
        mgr_wake(m);
}

void mgr_node_heard(manager *m, mgr_node *n)
{
    if (n->ready)
        return;
    n->ready = true; /* subscribed by now: commands reach it */
    if (n->held_head) {
        if (m->out_tail)
            m->out_tail->next = n->held_head;
        else
            m->out_head = n->held_head;
        m->out_tail = n->held_tail;
        n->held_head = n->held_tail = NULL;
    }
    mgr_wake(m);
}

void mgr_node_free(mgr_node *n)
{
    if (!n)
        return;
    mem_free_strv(&n->datasets);
    free(n->platform.data);
    free(n->overviews.data);
    free(n->metrics.data);
    msgs_free(&n->held_head, &n->held_tail);
    free(n);
}

mgr_node *mgr_node_find(manager *m, node_id id)
{
    for (size_t i = 0; i < m->nnodes; i++)
        if (node_id_equal(m->nodes[i]->id, id))
            return m->nodes[i];
    return NULL;
}

int64_t mgr_will_grace_s(const manager *m)
{
    return m->cfg.node_timeout < MGR_WILL_GRACE_S ? m->cfg.node_timeout : MGR_WILL_GRACE_S;
}

void mgr_node_lost(manager *m, mgr_node *n, const char *why)
{
    if (!n->connected)
        return;
    n->connected = false;
    n->will_ms = 0;
    log_msg(m->log, LOG_WARNING, "nodes", "node %s (%s) is lost: %s", n->xid, n->alias, why);
    if (n->held_head)
        log_info(m->log, "nodes",
                 "the commands held for node %s until it was heard on MQTT are not sent", n->xid);
    msgs_free(&n->held_head, &n->held_tail);
    mt_error *err = NULL;
    store_node_set_status(m->st, n->xid, "LOST", clock_wall_ms(), &err);
    mt_error_free(&err);
    runner_node_lost(m, n->id);
    mgr_wake(m);
}

size_t mgr_connected_nodes(manager *m)
{
    size_t c = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nnodes; i++)
        c += m->nodes[i]->connected && m->nodes[i]->ready;
    pthread_mutex_unlock(&m->lock);
    return c;
}

/* ---- MQTT ---- */

static void on_connect(void *ctx, int rc, bool session_present)
{
    manager *m = ctx;
    if (rc != 0) {
        log_msg(m->log, LOG_ERROR, "mqtt", "the broker refused the manager (code %d)", rc);
        return;
    }
    mt_error *err = NULL;
    if (mqtt_subscribe(m->mq, "manager/+", 1, NULL, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "mqtt", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    log_info(m->log, "mqtt", "connected to the broker %s:%lld", m->cfg.broker_host,
             (long long)m->cfg.broker_port);
    /* While the manager could not hear them, the nodes' silence meant nothing: each one gets
     * its whole time again from now (node_timeout, and the grace after a last will, which a
     * broker that shuts down publishes for every client). */
    pthread_mutex_lock(&m->lock);
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < m->nnodes; i++) {
        mgr_node *n = m->nodes[i];
        if (n->last_seen_ms < now)
            n->last_seen_ms = now;
        if (n->will_ms)
            n->will_ms = now;
    }
    m->broker_up = true;
    pthread_mutex_unlock(&m->lock);
}

static void on_disconnect(void *ctx, int rc)
{
    manager *m = ctx;
    pthread_mutex_lock(&m->lock);
    m->broker_up = false;
    pthread_mutex_unlock(&m->lock);
    if (rc)
        log_msg(m->log, LOG_WARNING, "mqtt", "lost the broker (code %d); reconnecting", rc);
    if (m->loop)
        loop_timer_in(m->loop, &m->mqtt_timer, 0); /* the first attempt at once, then back-off */
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len, int qos)
{
    node_service_on_mqtt(ctx, topic, payload, len);
}

static int split_hostport(const char *s, char **host, int64_t *port, mt_error **err)
{
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == s || !end || *end || p < 1 || p > 65535)
        return mt_error_set(err, MT_ERR_USAGE, "'%s' is not HOST:PORT (e.g. 127.0.0.1:1883).", s);
    *host = xstrndup(s, (size_t)(colon - s));
    *port = p;
    return 0;
}

int mgr_open(manager *m, const char *config_path, const mgr_overrides *ov, mt_error **err)
{
    memset(m, 0, sizeof(*m));
    m->mqtt_watched_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    if (mgr_config_load(&m->cfg, config_path, err) < 0)
        return -1;
    if (ov) {
        if (ov->listen) {
            free(m->cfg.listen);
            m->cfg.listen = xstrdup(ov->listen);
        }
        if (ov->user_listen) {
            free(m->cfg.user_listen);
            m->cfg.user_listen = xstrdup(ov->user_listen);
        }
        if (ov->http_listen) {
            free(m->cfg.http_listen);
            m->cfg.http_listen = xstrdup(ov->http_listen);
        }
        if (ov->broker) {
            free(m->cfg.broker_host);
            if (split_hostport(ov->broker, &m->cfg.broker_host, &m->cfg.broker_port, err) < 0)
                return -1;
        }
        if (ov->store) {
            free(m->cfg.store);
            m->cfg.store = xstrdup(ov->store);
        }
        if (ov->admin_socket) {
            free(m->cfg.admin_socket);
            m->cfg.admin_socket = xstrdup(ov->admin_socket);
        }
        if (ov->no_token)
            m->cfg.require_token = false;
    }
    log_level lvl = LOG_INFO;
    log_level_parse(m->cfg.log_level, &lvl);
    log_options lo = {.level = lvl,
                      .file = m->cfg.log_file,
                      .to_file = m->cfg.log_file && *m->cfg.log_file,
                      .to_console = true,
                      .max_bytes = 10u << 20,
                      .backup_count = 3,
                      .program = "manta_manager"};
    m->log = log_open(&lo, err);
    if (!m->log)
        return -1;
    if (fs_mkdir_parent(m->cfg.store, 0700, err) < 0)
        return -1;
    m->st = store_open(m->cfg.store, err);
    if (!m->st)
        return -1;
    if (token_secret_load(m->cfg.secret_file, m->secret, err) < 0)
        return -1;
    /* SIGPIPE blocked in every thread (a peer gone mid-write is an error return, not a death);
     * SIGINT and SIGTERM come through the loop. Before any thread exists. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    static const int signals[] = {SIGINT, SIGTERM};
    m->loop = loop_new(signals, 2, on_signal, m, err);
    if (!m->loop)
        return -1;
    loop_timer_init(&m->mqtt_timer, on_mqtt_clock, m);
    loop_timer_in(m->loop, &m->mqtt_timer, MQTT_CONNECTING_TICK_MS);

    /* Both libraries are set up together and torn down together by mgr_close, whichever step
     * below fails: gRPC must never be shut down without having been initialised. */
    mqtt_lib_init();
    rpc_init();
    m->libs_up = true;
    char cid[64];
    snprintf(cid, sizeof(cid), "manta_manager-%d", (int)getpid());
    mqtt_options mo = {.client_id = cid,
                       .clean_session = true,
                       .keepalive = MQTT_KEEPALIVE_S,
                       .username = *m->cfg.broker_username ? m->cfg.broker_username : NULL,
                       .password = *m->cfg.broker_password ? m->cfg.broker_password : NULL,
                       .tls = m->cfg.broker_tls,
                       .ca_file = *m->cfg.broker_ca_file ? m->cfg.broker_ca_file : NULL};
    if (*m->cfg.broker_password)
        log_add_secret(m->log, m->cfg.broker_password);
    mqtt_callbacks cb = {
        .on_connect = on_connect, .on_disconnect = on_disconnect, .on_message = on_message};
    m->mq = mqtt_new(&mo, &cb, m, err);
    if (!m->mq)
        return -1;
    if (mqtt_connect(m->mq, m->cfg.broker_host, (int)m->cfg.broker_port, err) < 0)
        return mt_error_wrap(err,
                             "The manager could not reach the MQTT broker %s:%lld (start "
                             "mosquitto, or set broker_host/broker_port)",
                             m->cfg.broker_host, (long long)m->cfg.broker_port);
    if (node_service_start(m, err) < 0)
        return -1;
    m->admin = admin_start(m, m->cfg.admin_socket, err);
    if (!m->admin)
        return -1;
    if (*m->cfg.http_listen && !(m->web = web_start(m, err)))
        return -1;
    log_info(m->log, "manager", "serving nodes on port %d (store %s, admin %s, tokens %s)", m->port,
             m->cfg.store, m->cfg.admin_socket, m->cfg.require_token ? "required" : "NOT required");
    return 0;
}

void mgr_resume(manager *m)
{
    pthread_mutex_lock(&m->lock);
    runner_resume_all(m);
    pthread_mutex_unlock(&m->lock);
    mgr_wake(m);
}

static void flush_outbox(manager *m)
{
    pthread_mutex_lock(&m->lock);
    runner_keep(m); /* a run's state is kept before the commands it caused leave */
    mgr_msg *list = m->out_head;
    m->out_head = m->out_tail = NULL;
    pthread_mutex_unlock(&m->lock);
    while (list) {
        mgr_msg *next = list->next;
        mt_error *err = NULL;
        if (mqtt_publish(m->mq, list->topic, list->payload, list->len, 1, false, NULL, &err) < 0) {
            log_msg(m->log, LOG_ERROR, "mqtt", "publishing %s: %s", list->topic, mt_error_msg(err));
            mt_error_free(&err);
        }
        free(list->topic);
        free(list->payload);
        free(list);
        list = next;
    }
}

/* Nodes silent for node_timeout, or not heard from within the grace after their last will, are
 * lost. Lock held. Returns when the next one may be due (monotonic ms), 0 if none. */
static int64_t sweep(manager *m)
{
    int64_t now = clock_mono_ms(), due = 0;
    if (!m->broker_up)
        return 0; /* deaf: no node is judged by its silence (on_connect starts the clocks again) */
    for (size_t i = 0; i < m->nnodes; i++) {
        mgr_node *n = m->nodes[i];
        if (n->connected && now - n->last_seen_ms > m->cfg.node_timeout * 1000) {
            char why[96];
            snprintf(why, sizeof(why), "no heartbeat for %lld s", (long long)m->cfg.node_timeout);
            mgr_node_lost(m, n, why);
        } else if (n->connected && n->will_ms && now - n->will_ms >= mgr_will_grace_s(m) * 1000) {
            char why[128];
            snprintf(why, sizeof(why),
                     "it disconnected (or its last will arrived) and was not heard from within "
                     "%lld s",
                     (long long)mgr_will_grace_s(m));
            mgr_node_lost(m, n, why);
        }
        if (n->connected) {
            due = clock_earlier(due, n->last_seen_ms + m->cfg.node_timeout * 1000 + 1);
            if (n->will_ms)
                due = clock_earlier(due, n->will_ms + mgr_will_grace_s(m) * 1000);
        }
    }
    return due;
}

static void on_signal(void *ctx, int sig)
{
    manager *m = ctx;
    m->signal = sig;
}

/* The broker connection's clock: libmosquitto's keep-alive while connected (a PINGREQ goes out
 * at most MQTT_IDLE_TICK_MS late: well inside the broker's 1.5 x keep-alive), the wait for the
 * CONNACK while connecting, and reconnects with jittered back-off (0.5 s doubling up to 30 s:
 * a restarted broker is not met by every client at once) while disconnected. */
static void on_mqtt_clock(void *arg)
{
    manager *m = arg;
    int64_t next = MQTT_IDLE_TICK_MS;
    if (mqtt_connected(m->mq)) {
        mqtt_tick(m->mq);
        m->reconnect_attempt = 0;
    } else if (mqtt_fd(m->mq) >= 0) {
        mqtt_tick(m->mq);
        next = MQTT_CONNECTING_TICK_MS;
    } else {
        double delay = backoff_delay(0.5, 30.0, m->reconnect_attempt);
        if (m->reconnect_attempt < 30)
            m->reconnect_attempt++;
        next = (int64_t)(delay * 1000);
        mt_error *err = NULL;
        if (mqtt_connect(m->mq, m->cfg.broker_host, (int)m->cfg.broker_port, &err) < 0) {
            log_msg(m->log, LOG_WARNING, "mqtt", "%s; trying again in %.1f s", mt_error_msg(err),
                    delay);
            mt_error_free(&err);
        } else if (next > MQTT_CONNECTING_TICK_MS) {
            next = MQTT_CONNECTING_TICK_MS; /* connecting: the CONNACK's wait is ticked */
        }
    }
    loop_timer_in(m->loop, &m->mqtt_timer, next);
}

static void on_mqtt_io(void *ctx, bool readable, bool writable)
{
    manager *m = ctx;
    if (readable)
        mqtt_on_readable(m->mq);
    if (writable && mqtt_fd(m->mq) >= 0)
        mqtt_on_writable(m->mq);
}

static void watch_mqtt(manager *m)
{
    int fd = mqtt_fd(m->mq);
    bool want_write = fd >= 0 && mqtt_want_write(m->mq);
    if (fd != m->mqtt_watched_fd && m->mqtt_watched_fd >= 0) {
        loop_unwatch(m->loop, m->mqtt_watched_fd);
        m->mqtt_watched_fd = -1;
    }
    if (fd < 0 || (fd == m->mqtt_watched_fd && want_write == m->mqtt_watch_write))
        return;
    mt_error *err = NULL;
    if (loop_watch(m->loop, fd, want_write, on_mqtt_io, m, &err) == 0) {
        m->mqtt_watched_fd = fd;
        m->mqtt_watch_write = want_write;
    } else {
        log_msg(m->log, LOG_ERROR, "mqtt", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
}

/* Each turn: the runner's due work and the node sweep (lock held), the outbox out, then one
 * wait until the next deadline, an MQTT message, a signal or a wake-up from another thread
 * (mgr_wake). Nothing timed: no wake-up but the MQTT clock's. */
int mgr_loop(manager *m, bool (*done)(void *ctx), void *ctx, int64_t deadline_ms)
{
    for (;;) {
        pthread_mutex_lock(&m->lock);
        runner_tick(m);
        int64_t due = clock_earlier(runner_next_due(m), sweep(m));
        pthread_mutex_unlock(&m->lock);
        flush_outbox(m);
        if (done && done(ctx)) {
            flush_outbox(m);
            return 0;
        }
        int64_t now = clock_mono_ms();
        if (deadline_ms && now >= deadline_ms)
            return 2;
        due = clock_earlier(due, deadline_ms);
        watch_mqtt(m);
        loop_run_once(m->loop, due ? (due > now ? due - now : 0) : -1);
        if (m->signal) {
            log_info(m->log, "manager", "signal %d: shutting down", m->signal);
            m->signal = 0;
            return 1;
        }
    }
}

void mgr_close(manager *m)
{
    web_stop(m->web);
    m->web = NULL;
    admin_stop(m->admin);
    m->admin = NULL;
    node_service_stop(m);
    if (m->mq) {
        flush_outbox(m);
        for (int i = 0; i < 5 && mqtt_connected(m->mq) && mqtt_want_write(m->mq); i++)
            mqtt_on_writable(m->mq);
        mqtt_free(m->mq);
        m->mq = NULL;
    }
    if (m->libs_up) {
        mqtt_lib_cleanup();
        rpc_shutdown();
        m->libs_up = false;
    }
    pthread_mutex_lock(&m->lock);
    runner_free_all(m);
    for (size_t i = 0; i < m->nnodes; i++)
        mgr_node_free(m->nodes[i]);
    free(m->nodes);
    m->nodes = NULL;
    m->nnodes = 0;
    msgs_free(&m->out_head, &m->out_tail);
    pthread_mutex_unlock(&m->lock);
    store_close(m->st);
    m->st = NULL;
    loop_free(m->loop);
    m->loop = NULL;
    log_close(m->log);
    m->log = NULL;
    mgr_config_clear(&m->cfg);
    pthread_mutex_destroy(&m->lock);
}
