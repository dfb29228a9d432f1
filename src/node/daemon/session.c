/* session.c - the node's MQTT session: the connection and its callbacks, subscriptions,
 * reconnection with back-off, the will, and the session marker that tells a stale stop_node
 * from one meant for this run. The rest of the daemon is in agent.c (agent_impl.h). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agent.h"
#include "agent_impl.h"
#include "backoff.h"
#include "clock.h"
#include "commands.h"
#include "fsutil.h"
#include "mem.h"
#include "wire.h"

#define MARKER_WAIT_MS 5000  /* the marker is given up on after this much silence */
#define MARKER_CAP_MS  30000 /* ...or this long after it was published, at most */

/* ---- MQTT plumbing ------------------------------------------------------------------------- */

static void on_mqtt_io(void *ctx, bool readable, bool writable)
{
    node *n = ctx;
    if (readable && n->mqtt)
        mqtt_on_readable(n->mqtt);
    if (writable && n->mqtt && mqtt_fd(n->mqtt) >= 0)
        mqtt_on_writable(n->mqtt);
}

/* The loop watches the MQTT socket of the moment, for writing while libmosquitto has some. */
void watch_mqtt(node *n)
{
    int fd = n->mqtt ? mqtt_fd(n->mqtt) : -1;
    bool want_write = fd >= 0 && mqtt_want_write(n->mqtt);
    if (fd != n->mqtt_watched_fd && n->mqtt_watched_fd >= 0) {
        loop_unwatch(n->loop, n->mqtt_watched_fd); /* it may be closed */
        n->mqtt_watched_fd = -1;
    }
    if (fd < 0 || (fd == n->mqtt_watched_fd && want_write == n->mqtt_watch_write))
        return;
    mt_error *e = NULL;
    if (loop_watch(n->loop, fd, want_write, on_mqtt_io, n, &e) == 0) {
        n->mqtt_watched_fd = fd;
        n->mqtt_watch_write = want_write;
    } else {
        log_warn(n->log, "mqtt", "%s", mt_error_msg(e));
        mt_error_free(&e);
    }
}

void schedule_reconnect(node *n)
{
    double delay = backoff_delay(n->cfg.mqtt.reconnect_delay, n->cfg.mqtt.reconnect_max_delay,
                                 n->reconnect_attempt);
    if (n->reconnect_attempt < 30)
        n->reconnect_attempt++;
    loop_timer_in(n->loop, &n->reconnect_timer, (int64_t)(delay * 1000));
    log_warn(n->log, "mqtt", "MQTT connection to %s:%d lost; reconnecting in %.1f s",
             n->broker_host, n->broker_port, delay);
}

static void subscribe_all(node *n)
{
    n->suback_pending = 0;
    for (size_t i = 0; i < n->ntopics; i++) {
        mt_error *e = NULL;
        if (mqtt_subscribe(n->mqtt, n->topics[i], 1, NULL, &e) < 0) {
            log_error(n->log, "mqtt", "Cannot subscribe to %s: %s", n->topics[i], mt_error_msg(e));
            mt_error_free(&e);
            continue;
        }
        n->suback_pending++;
    }
}

/* ---- stale commands: the session marker ----------------------------------------------------
 *
 * The problem. The node's MQTT session is persistent (clean_session false) so that commands
 * the manager sends while the node is away (a broker restart, a network cut, the node
 * restarting) wait for it instead of being lost. The price: a stop_node published while the
 * node was stopped is delivered at its next start and stops that run too (a burst of them
 * stopped several starts in a row). Commands queued while away must still run; only a stop
 * meant for an earlier run must not stop this one.
 *
 * Why not a payload. The reference manager sends stop_node with an empty payload (the reference
 * node ignores it), and nothing in the protocol tells a manager which run of a node it is
 * talking to, so the node cannot rely on a payload. It does accept one (below), for managers
 * that learn the run.
 *
 * The design: a marker through the node's own subscription. If the broker says it kept no
 * session (CONNACK session present = 0), nothing can be stale. Otherwise, right after
 * subscribing, once per run (not per reconnection), the node publishes a marker, QoS 1, to a topic
 * of its own command subscription (the manager's filter, e.g. manta/nodes/<xid>/+, with
 * node_session_marker as the command), carrying this run's random ID (run_id: 32 hex digits). The
 * broker hands a session its queued messages in order, before anything published later (the marker
 * goes through the same per-session queue; mosquitto and the other common brokers keep one ordered
 * queue per session, QoS 1 included), so everything that arrives before this run's marker came back
 * was queued before this run: a stop_node among it is stale, logged ("Ignoring a stop_node queued
 * before this run started") and not obeyed. Other commands are run as always (held until the
 * task table exists, see commands.c). Once the marker is back, every stop_node counts, also
 * those queued during a later disconnection of this run (they were sent to this run).
 *
 * Bounds. If the marker does not come back (a broker ACL may forbid the node to publish on its
 * command topics; the broker drops the message), the node stops waiting after MARKER_WAIT_MS
 * without any message, or MARKER_CAP_MS after publishing, and from then on treats the session
 * as current (a stale stop_node could then stop it, as before). Without a filter the node can
 * publish to (only exact topics, or wildcards inside the filter), there is no marker and every
 * stop_node counts. A stop_node the manager published after the node registered but before it
 * published the marker (a fraction of a second of the start) is taken as stale: the node
 * cannot tell it from an old one.
 *
 * The payload a manager may send. A stop_node whose payload is exactly a run ID (32 hex
 * digits) targets that run: it stops the node at once if it names this run (marker back or
 * not) and is ignored as stale if it names another. A manager learns the current run ID by
 * subscribing to <prefix>/node_session_marker (the node publishes it at every start, also
 * with a new session). Any other
 * payload (the reference manager's empty one) follows the marker rule above. */

static char *marker_topic_of(const char *filter)
{
    const char *last = strrchr(filter, '/');
    const char *seg = last ? last + 1 : filter;
    size_t prefix = (size_t)(seg - filter);
    if (filter[0] == '$' || (strcmp(seg, "+") != 0 && strcmp(seg, "#") != 0) ||
        memchr(filter, '+', prefix) || memchr(filter, '#', prefix))
        return NULL; /* only a filter whose single wildcard is its last level names the node */
    return xasprintf("%.*s%s", (int)prefix, filter, AGENT_MARKER_COMMAND);
}

static void publish_marker(node *n, bool session_present)
{
    if (n->session != AGENT_SESSION_NONE)
        return; /* once per run: a reconnection does not make this run's commands stale */
    /* A new session (CONNACK session present = 0): the broker kept nothing for the node, so
     * nothing can be stale. The marker still goes out, announcing the run ID. */
    n->session = session_present ? AGENT_SESSION_PENDING : AGENT_SESSION_CURRENT;
    for (size_t i = 0; i < n->ntopics && !n->marker_topic; i++)
        n->marker_topic = marker_topic_of(n->topics[i]);
    mt_error *e = NULL;
    if (!n->marker_topic) {
        if (n->session == AGENT_SESSION_PENDING)
            log_info(n->log, "mqtt",
                     "No subscription lets the node publish its session marker, so a stop_node "
                     "queued before this run cannot be told from a new one: every stop_node "
                     "counts");
    } else if (mqtt_publish(n->mqtt, n->marker_topic, n->run_id, strlen(n->run_id), 1, false, NULL,
                            &e) < 0) {
        if (n->session == AGENT_SESSION_PENDING)
            log_warn(n->log, "mqtt",
                     "Cannot publish the session marker on %s (%s): every stop_node counts from "
                     "now on",
                     n->marker_topic, mt_error_msg(e));
        mt_error_free(&e);
    } else if (n->session == AGENT_SESSION_PENDING) {
        int64_t now = clock_mono_ms();
        n->marker_deadline_ms = now + MARKER_WAIT_MS;
        n->marker_cap_ms = now + MARKER_CAP_MS;
        log_debug(n->log, "mqtt", "Session marker %s published on %s", n->run_id, n->marker_topic);
        return;
    }
    n->session = AGENT_SESSION_CURRENT;
}

static void session_current(node *n, const char *why)
{
    n->session = AGENT_SESSION_CURRENT;
    log_info(n->log, "mqtt", "%s; %llu stop_node command(s) queued before this run were ignored",
             why, (unsigned long long)n->stale_stops);
}

/* Give up on the marker after a bounded wait (see above). */
void marker_check(node *n, int64_t now)
{
    if (n->session != AGENT_SESSION_PENDING)
        return;
    if (now >= n->marker_deadline_ms || now >= n->marker_cap_ms) {
        log_warn(n->log, "mqtt",
                 "The session marker did not come back from the broker (may the node publish "
                 "on %s?): every stop_node counts from now on",
                 n->marker_topic);
        session_current(n, "Session marker given up on");
    }
}

void agent_marker_received(node *n, const void *payload, size_t len)
{
    size_t rl = strlen(n->run_id);
    if (len != rl || memcmp(payload, n->run_id, rl) != 0) {
        log_debug(n->log, "mqtt", "The session marker of an earlier run (%zu bytes); ignored", len);
        return;
    }
    if (n->session == AGENT_SESSION_PENDING)
        session_current(n, "Session marker back: what the broker kept for the node was "
                           "delivered");
}

static bool is_run_id(const void *payload, size_t len)
{
    const unsigned char *p = payload;
    if (len != 32)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit(p[i]))
            return false;
    return true;
}

bool agent_stop_is_for_this_run(node *n, const void *payload, size_t len)
{
    if (is_run_id(payload, len))
        return strncasecmp(payload, n->run_id, len) == 0;
    return n->session == AGENT_SESSION_CURRENT;
}

void new_run_id(node *n)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        /* no entropy yet (early boot): unique enough for telling runs apart */
        uint64_t a = (uint64_t)clock_mono_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        uint64_t b = (uint64_t)time(NULL) * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)(uintptr_t)n;
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(n->run_id + 2 * i, 3, "%02x", r[i]);
}

static void on_connect(void *ctx, int rc, bool session_present)
{
    node *n = ctx;
    n->last_connack_rc = rc;
    if (rc != 0) {
        log_error(n->log, "mqtt", "The broker %s:%d refused the connection (code %d)",
                  n->broker_host, n->broker_port, rc);
        return;
    }
    n->mqtt_up = true;
    n->reconnect_attempt = 0;
    log_info(n->log, "mqtt", "Connected to MQTT broker %s:%d as %s (session %s)", n->broker_host,
             n->broker_port, n->xid, session_present ? "resumed" : "new");
    subscribe_all(n);
    publish_marker(n, session_present);
}

static void on_disconnect(void *ctx, int rc)
{
    node *n = ctx;
    bool was_up = n->mqtt_up;
    n->mqtt_up = false;
    n->disconnects++;
    if (n->stopping)
        return;
    if (was_up || (!n->starting && !loop_timer_armed(&n->reconnect_timer)))
        schedule_reconnect(n);
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len, int qos)
{
    node *n = ctx;
    if (n->session == AGENT_SESSION_PENDING) {
        /* the broker is still handing over what it kept: the marker is behind it */
        int64_t later = clock_mono_ms() + MARKER_WAIT_MS;
        if (later > n->marker_deadline_ms)
            n->marker_deadline_ms = later;
    }
    commands_dispatch(n, topic, payload, len);
}

static void on_published(void *ctx, int mid)
{
    node *n = ctx;
    if (n->disconnect_mid >= 0 && mid == n->disconnect_mid)
        n->disconnect_acked = true;
}

static void on_subscribed(void *ctx, int mid, int granted_qos)
{
    node *n = ctx;
    if (n->suback_pending)
        n->suback_pending--;
    if (granted_qos == 128)
        log_error(n->log, "mqtt", "The broker refused a subscription (message %d)", mid);
    else if (!n->suback_pending)
        log_info(n->log, "mqtt", "Subscribed to %zu topic(s)", n->ntopics);
}

static bool path_readable(const char *p)
{
    return p && access(p, R_OK) == 0;
}

int mqtt_setup(node *n, mt_error **err)
{
    const node_config *c = &n->cfg;
    bool tls = c->mqtt.use_tls == 1 ||
               (c->mqtt.use_tls < 0 && (c->security.use_tls || n->broker_port == 8883));
    cleanup_free char *ca = NULL;
    cleanup_free char *cert = NULL;
    cleanup_free char *key = NULL;
    if (tls) {
        if (c->mqtt.ca_file)
            ca = xstrdup(c->mqtt.ca_file);
        else if (c->security.use_tls)
            ca = fs_join(c->security.cert_folder, "ca.crt");
        if (c->mqtt.cert_file) {
            cert = xstrdup(c->mqtt.cert_file);
            key = xstrdup(c->mqtt.key_file);
        } else if (c->security.use_tls) {
            cert = fs_join(c->security.cert_folder, "mqtt.crt");
            key = fs_join(c->security.cert_folder, "mqtt.key");
            if (!path_readable(cert) || !path_readable(key)) {
                free(cert);
                free(key);
                cert = key = NULL;
            }
        }
    }
    /* The last will tells the manager this node is gone if the connection drops. */
    Common__Informations__NodeStatus st = COMMON__INFORMATIONS__NODE_STATUS__INIT;
    Common__System__PairId pid;
    wire_pair_id(&pid, n->id);
    st.node_id = &pid;
    st.status = COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED;
    size_t will_len = 0;
    cleanup_free uint8_t *will = wire_pack(&st.base, &will_len);
    mqtt_options o = {
        .client_id = n->xid,
        .clean_session = false, /* commands sent while the node is away wait for it */
        .keepalive = (int)c->mqtt.keepalive,
        .username = c->mqtt.username,
        .password = c->mqtt.password,
        .tls = tls,
        .ca_file = ca,
        .cert_file = cert,
        .key_file = key,
        .will_topic = TOPIC_SET_NODE_STATUS,
        .will_payload = will,
        .will_len = will_len,
        .will_qos = 1,
    };
    mqtt_callbacks cb = {on_connect, on_disconnect, on_message, on_published, on_subscribed};
    n->mqtt = mqtt_new(&o, &cb, n, err);
    return n->mqtt ? 0 : -1;
}
