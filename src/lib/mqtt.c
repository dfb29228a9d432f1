/* mqtt.c - MQTT 3.1.1 client over libmosquitto, driven by the caller's event loop; see mqtt.h.
 *
 * No library thread: the client is put in non-threaded mode and every network operation happens
 * inside mqtt_connect / mqtt_on_readable / mqtt_on_writable / mqtt_tick, and in the publish,
 * subscribe and disconnect calls, which libmosquitto writes at once when it is not inside one of
 * its callbacks (inside one it queues, and mqtt_want_write() turns true). libmosquitto's
 * callbacks are forwarded to the caller's mqtt_callbacks from trampolines that also keep the few
 * facts the wrapper needs:
 *
 *  - `live`: a socket was opened by mqtt_connect and its end has not been reported yet. Every
 *    successful mqtt_connect is paired with exactly one on_disconnect: libmosquitto reports most
 *    ends itself (read/write errors, keep-alive timeout, our own DISCONNECT), but a failed TLS
 *    handshake closes the socket without its disconnect callback, so after every entry point a
 *    live client whose socket is gone gets a synthesized on_disconnect.
 *  - `qos0`: message ids of QoS 0 publishes not yet written. libmosquitto calls its publish
 *    callback both for a QoS 1 PUBACK and when a QoS 0 PUBLISH has been written to the socket;
 *    mqtt.h promises on_published only for the former, so the latter are filtered out.
 *
 * Details of the contract beyond mqtt.h:
 *  - keepalive <= 0 means 60 s; 1-4 and > 65535 are refused (libmosquitto would refuse them).
 *    The keep-alive also bounds the wait for the TLS handshake and the CONNACK: mqtt_tick then
 *    reports on_disconnect(MOSQ_ERR_KEEPALIVE = 19).
 *  - on_disconnect(0) normally fires inside mqtt_disconnect (inside a callback: later, from
 *    mqtt_on_writable). mqtt_connect is refused inside a callback; mqtt_free must not be called
 *    from one.
 *  - The entry points return 0 when there is no socket; -1 only from the call that saw the end.
 *  - mqtt_new takes a library reference of its own (mqtt_free drops it).
 */
#include "mqtt.h"

#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "mem.h"

#define DEFAULT_KEEPALIVE 60
#define MIN_KEEPALIVE     5 /* libmosquitto refuses 1-4 */
#define MAX_KEEPALIVE     65535
#define SYSTEM_CA_DIR     "/etc/ssl/certs"

struct mqtt_client {
    struct mosquitto *mosq;
    mqtt_callbacks cb;
    void *ctx;
    char *client_id;
    int keepalive;
    bool tls;
    bool live;             /* socket opened by mqtt_connect, its end not reported yet */
    bool awaiting_connack; /* live, and no CONNACK yet */
    bool connected;        /* CONNACK accepted and the connection not gone since */
    bool freeing;          /* mqtt_free in progress: callbacks are not forwarded */
    int in_cb;             /* depth of our trampolines (libmosquitto defers writes inside them) */
    unsigned breaks;       /* on_disconnect reports with rc != 0 (entry points compare counts) */
    /* QoS 0 publishes not yet written (see the file comment). */
    int *qos0;
    size_t nqos0, capqos0;
    bool in_qos0_publish;  /* inside mosquitto_publish for a QoS 0 message */
    bool qos0_written_now; /* ... and its publish callback already fired */
};

/* The only process-wide state: how many holders of mosquitto_lib_init there are. */
static atomic_int lib_refs;

void mqtt_lib_init(void)
{
    if (atomic_fetch_add(&lib_refs, 1) == 0)
        mosquitto_lib_init();
}

void mqtt_lib_cleanup(void)
{
    int prev = atomic_fetch_sub(&lib_refs, 1);
    if (prev == 1)
        mosquitto_lib_cleanup();
    else if (prev <= 0)
        atomic_fetch_add(&lib_refs, 1); /* unbalanced call: ignore it */
}

/* ---- QoS 0 message ids ---- */

static void qos0_add(mqtt_client *c, int mid)
{
    if (c->nqos0 == c->capqos0) {
        c->capqos0 = c->capqos0 ? c->capqos0 * 2 : 16;
        c->qos0 = xrealloc(c->qos0, c->capqos0 * sizeof(*c->qos0));
    }
    c->qos0[c->nqos0++] = mid;
}

static bool qos0_take(mqtt_client *c, int mid)
{
    for (size_t i = 0; i < c->nqos0; i++) {
        if (c->qos0[i] == mid) {
            c->qos0[i] = c->qos0[--c->nqos0];
            return true;
        }
    }
    return false;
}

/* ---- trampolines ---- */

static void report_disconnect(mqtt_client *c, int rc)
{
    c->live = false;
    c->awaiting_connack = false;
    c->connected = false;
    if (rc != 0)
        c->breaks++;
    if (!c->freeing && c->cb.on_disconnect) {
        c->in_cb++;
        c->cb.on_disconnect(c->ctx, rc);
        c->in_cb--;
    }
}

static void on_connect_cb(struct mosquitto *mosq, void *obj, int rc, int flags)
{
    mqtt_client *c = obj;
    c->awaiting_connack = false;
    c->connected = rc == 0;
    if (!c->freeing && c->cb.on_connect) {
        c->in_cb++;
        c->cb.on_connect(c->ctx, rc, rc == 0 && (flags & 1));
        c->in_cb--;
    }
}

static void on_disconnect_cb(struct mosquitto *mosq, void *obj, int rc)
{
    mqtt_client *c = obj;
    if (!c->live)
        return; /* already reported */
    report_disconnect(c, rc);
}

static void on_message_cb(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
    mqtt_client *c = obj;
    if (!c->freeing && c->cb.on_message) {
        c->in_cb++;
        c->cb.on_message(c->ctx, m->topic, m->payload,
                         m->payloadlen > 0 ? (size_t)m->payloadlen : 0, m->qos);
        c->in_cb--;
    }
}

static void on_publish_cb(struct mosquitto *mosq, void *obj, int mid)
{
    mqtt_client *c = obj;
    if (qos0_take(c, mid))
        return; /* an earlier QoS 0 message has been written */
    if (c->in_qos0_publish) {
        /* Written during its own mosquitto_publish (no PUBACK can be read in there). */
        c->qos0_written_now = true;
        return;
    }
    if (!c->freeing && c->cb.on_published) {
        c->in_cb++;
        c->cb.on_published(c->ctx, mid);
        c->in_cb--;
    }
}

static void on_subscribe_cb(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                            const int *granted_qos)
{
    mqtt_client *c = obj;
    if (!c->freeing && c->cb.on_subscribed) {
        c->in_cb++;
        c->cb.on_subscribed(c->ctx, mid, qos_count > 0 ? granted_qos[0] : 128);
        c->in_cb--;
    }
}

/* OpenSSL would prompt on the terminal for an encrypted key; a daemon must fail instead. */
static int no_key_password(char *buf, int size, int rwflag, void *userdata)
{
    return 0;
}

/* ---- life cycle ---- */

/* *err = "<what>: <libmosquitto's reason>" (errno's text for MOSQ_ERR_ERRNO). Returns -1. */
static int mosq_error(mt_error **err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mosq_error(mt_error **err, int rc, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    char *what = xvasprintf(fmt, ap);
    va_end(ap);
    if (rc == MOSQ_ERR_ERRNO && saved)
        mt_error_sys(err, saved, "%s", what);
    else
        mt_error_set(err, MT_ERR_IO, "%s: %s", what, mosquitto_strerror(rc));
    free(what);
    return -1;
}

static int check_readable(const char *path, const char *what, mt_error **err)
{
    if (access(path, R_OK) != 0)
        return mt_error_sys(err, errno, "cannot read the TLS %s %s", what, path);
    /* libmosquitto and OpenSSL open it by name: a FIFO would block the caller for ever */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return mt_error_set(err, MT_ERR_IO,
                            "cannot read the TLS %s %s: it is %s, not a regular file; give the "
                            "path of the PEM file itself",
                            what, path, fs_kind(st.st_mode));
    return 0;
}

static int configure(mqtt_client *c, const mqtt_options *o, mt_error **err)
{
    struct mosquitto *m = c->mosq;
    int rc;

    mosquitto_threaded_set(m, false);
    rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (rc != MOSQ_ERR_SUCCESS)
        return mosq_error(err, rc, "cannot select MQTT 3.1.1");

    if (o->username || o->password) {
        if (!o->username)
            return mt_error_set(err, MT_ERR_CONFIG, "an MQTT password needs a user name");
        rc = mosquitto_username_pw_set(m, o->username, o->password);
        if (rc != MOSQ_ERR_SUCCESS)
            return mosq_error(err, rc, "cannot set the MQTT user name and password");
    }

    if (o->will_topic) {
        if (o->will_len > INT_MAX || (o->will_len && !o->will_payload))
            return mt_error_set(err, MT_ERR_CONFIG, "the MQTT last will payload is invalid");
        rc = mosquitto_will_set(m, o->will_topic, (int)o->will_len, o->will_payload, o->will_qos,
                                o->will_retain);
        if (rc != MOSQ_ERR_SUCCESS)
            return mosq_error(err, rc, "cannot set the MQTT last will");
    }

    if (o->tls) {
        if ((o->cert_file == NULL) != (o->key_file == NULL))
            return mt_error_set(err, MT_ERR_CONFIG,
                                "TLS client authentication needs both a certificate and a key");
        if (o->ca_file && check_readable(o->ca_file, "CA file", err) < 0)
            return -1;
        if (o->cert_file && check_readable(o->cert_file, "certificate", err) < 0)
            return -1;
        if (o->key_file && check_readable(o->key_file, "key", err) < 0)
            return -1;
        if (!o->ca_file) {
            rc = mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
            if (rc != MOSQ_ERR_SUCCESS)
                return mosq_error(err, rc, "cannot use the system's CA certificates");
        }
        if (o->ca_file || o->cert_file) {
            /* mosquitto_tls_set wants a CA file or directory even when the system's CAs are
             * used (MOSQ_OPT_TLS_USE_OS_CERTS above), so name the system's directory then. */
            rc = mosquitto_tls_set(m, o->ca_file, o->ca_file ? NULL : SYSTEM_CA_DIR, o->cert_file,
                                   o->key_file, no_key_password);
            if (rc != MOSQ_ERR_SUCCESS)
                return mosq_error(err, rc, "cannot configure TLS");
        }
        rc = mosquitto_tls_insecure_set(m, o->tls_insecure);
        if (rc != MOSQ_ERR_SUCCESS)
            return mosq_error(err, rc, "cannot configure TLS host name verification");
    }

    mosquitto_connect_with_flags_callback_set(m, on_connect_cb);
    mosquitto_disconnect_callback_set(m, on_disconnect_cb);
    mosquitto_message_callback_set(m, on_message_cb);
    mosquitto_publish_callback_set(m, on_publish_cb);
    mosquitto_subscribe_callback_set(m, on_subscribe_cb);
    return 0;
}

mqtt_client *mqtt_new(const mqtt_options *opts, const mqtt_callbacks *cb, void *ctx, mt_error **err)
{
    if (!opts->client_id || !*opts->client_id) {
        mt_error_set(err, MT_ERR_CONFIG, "an MQTT client needs a client id");
        return NULL;
    }
    if (opts->keepalive > 0 &&
        (opts->keepalive < MIN_KEEPALIVE || opts->keepalive > MAX_KEEPALIVE)) {
        mt_error_set(err, MT_ERR_CONFIG,
                     "MQTT client %s: the keep-alive must be %d to %d seconds (it is %d)",
                     opts->client_id, MIN_KEEPALIVE, MAX_KEEPALIVE, opts->keepalive);
        return NULL;
    }
    mqtt_lib_init(); /* the client holds a reference until mqtt_free */
    mqtt_client *c = xcalloc(1, sizeof(*c));
    if (cb)
        c->cb = *cb;
    c->ctx = ctx;
    c->client_id = xstrdup(opts->client_id);
    c->keepalive = opts->keepalive > 0 ? opts->keepalive : DEFAULT_KEEPALIVE;
    c->tls = opts->tls;
    c->mosq = mosquitto_new(opts->client_id, opts->clean_session, c);
    if (!c->mosq) {
        mt_error_sys(err, errno, "cannot create the MQTT client %s", opts->client_id);
        mqtt_free(c);
        return NULL;
    }
    if (configure(c, opts, err) < 0) {
        mt_error_wrap(err, "MQTT client %s", opts->client_id);
        mqtt_free(c);
        return NULL;
    }
    return c;
}

void mqtt_free(mqtt_client *c)
{
    if (!c)
        return;
    c->freeing = true;
    if (c->mosq) {
        if (mosquitto_socket(c->mosq) >= 0) {
            /* Best effort: DISCONNECT (so no will) written now if the socket takes it. */
            mosquitto_disconnect(c->mosq);
            if (mosquitto_socket(c->mosq) >= 0 && mosquitto_want_write(c->mosq))
                mosquitto_loop_write(c->mosq, 1);
        }
        mosquitto_destroy(c->mosq);
    }
    free(c->qos0);
    free(c->client_id);
    free(c);
    mqtt_lib_cleanup();
}

/* ---- connection ---- */

/* Called at the end of every entry point with the count of breaks at its start: report an end
 * libmosquitto did not report, and turn what happened into the entry point's result. (A count,
 * not a flag, so that calls made from inside callbacks do not disturb the outer call.) */
static int finish(mqtt_client *c, int rc, unsigned breaks_before)
{
    if (c->live && mosquitto_socket(c->mosq) < 0)
        report_disconnect(c, rc != MOSQ_ERR_SUCCESS ? rc : MOSQ_ERR_CONN_LOST);
    return c->breaks != breaks_before ? -1 : 0;
}

int mqtt_connect(mqtt_client *c, const char *host, int port, mt_error **err)
{
    /* From inside a callback libmosquitto may still be working on the old socket when the
     * callback returns (2.0.11 closes it before on_disconnect, later versions after it). */
    if (c->in_cb > 0)
        return mt_error_set(err, MT_ERR_GENERIC,
                            "MQTT client %s: mqtt_connect cannot be called from an MQTT callback",
                            c->client_id);
    if (c->live && mosquitto_socket(c->mosq) >= 0)
        return mt_error_set(err, MT_ERR_GENERIC,
                            "MQTT client %s is already connected or connecting to a broker",
                            c->client_id);
    c->live = false;
    c->awaiting_connack = false;
    c->connected = false;
    c->nqos0 = 0; /* libmosquitto drops unwritten packets when it reconnects */
    errno = 0;
    int rc = mosquitto_connect_async(c->mosq, host, port, c->keepalive);
    if (rc != MOSQ_ERR_SUCCESS) {
        int saved = errno;
        /* A socket may have been opened before the failure (not seen with 2.0.11). */
        if (mosquitto_socket(c->mosq) >= 0)
            mosquitto_disconnect(c->mosq);
        errno = saved;
        return mosq_error(err, rc, "cannot connect to the MQTT broker %s:%d", host, port);
    }
    c->live = true;
    c->awaiting_connack = true;
    return 0;
}

void mqtt_disconnect(mqtt_client *c)
{
    if (mosquitto_socket(c->mosq) < 0)
        return;
    unsigned breaks = c->breaks;
    int rc = mosquitto_disconnect(c->mosq);
    /* Outside a callback libmosquitto has written the DISCONNECT already (and closed the socket
     * and reported on_disconnect(0)); inside one it waits for mqtt_on_writable. */
    if (rc == MOSQ_ERR_SUCCESS && c->in_cb == 0 && mosquitto_socket(c->mosq) >= 0 &&
        mosquitto_want_write(c->mosq))
        mosquitto_loop_write(c->mosq, 1);
    c->connected = false;
    finish(c, MOSQ_ERR_SUCCESS, breaks);
}

int mqtt_fd(const mqtt_client *c)
{
    return mosquitto_socket(c->mosq);
}

bool mqtt_want_write(const mqtt_client *c)
{
    return mosquitto_socket(c->mosq) >= 0 && mosquitto_want_write(c->mosq);
}

bool mqtt_connected(const mqtt_client *c)
{
    return c->connected && mosquitto_socket(c->mosq) >= 0;
}

/* ---- event-loop entry points ---- */

int mqtt_on_readable(mqtt_client *c)
{
    if (mosquitto_socket(c->mosq) < 0)
        return 0; /* the end was reported when it happened */
    unsigned breaks = c->breaks;
    int rc = mosquitto_loop_read(c->mosq, 1);
    return finish(c, rc, breaks);
}

int mqtt_on_writable(mqtt_client *c)
{
    if (mosquitto_socket(c->mosq) < 0)
        return 0;
    unsigned breaks = c->breaks;
    int rc = MOSQ_ERR_SUCCESS;
    if (c->tls && c->awaiting_connack) {
        /* While the TLS handshake is in progress libmosquitto's write step does nothing (and
         * mosquitto_want_write is true if OpenSSL wants to write); its read step is the one that
         * drives the handshake. After the handshake this read finds nothing or the CONNACK. */
        rc = mosquitto_loop_read(c->mosq, 1);
    }
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(c->mosq) >= 0)
        rc = mosquitto_loop_write(c->mosq, 1);
    return finish(c, rc, breaks);
}

int mqtt_tick(mqtt_client *c)
{
    if (mosquitto_socket(c->mosq) < 0)
        return 0;
    unsigned breaks = c->breaks;
    int rc = mosquitto_loop_misc(c->mosq);
    return finish(c, rc, breaks);
}

/* ---- subscribe / publish ---- */

int mqtt_subscribe(mqtt_client *c, const char *topic, int qos, int *mid, mt_error **err)
{
    int local_mid = 0;
    int rc = mosquitto_subscribe(c->mosq, &local_mid, topic, qos);
    if (rc != MOSQ_ERR_SUCCESS)
        return mosq_error(err, rc, "cannot subscribe to MQTT topic %s", topic);
    if (mid)
        *mid = local_mid;
    return 0;
}

int mqtt_publish(mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
                 bool retain, int *mid, mt_error **err)
{
    if (len > INT_MAX)
        return mt_error_set(err, MT_ERR_IO,
                            "cannot publish to MQTT topic %s: %zu bytes is too large", topic, len);
    int local_mid = 0;
    int rc;
    if (qos == 0) {
        c->in_qos0_publish = true;
        c->qos0_written_now = false;
        rc = mosquitto_publish(c->mosq, &local_mid, topic, (int)len, payload, qos, retain);
        c->in_qos0_publish = false;
        if (rc == MOSQ_ERR_SUCCESS && !c->qos0_written_now)
            qos0_add(c, local_mid);
    } else {
        rc = mosquitto_publish(c->mosq, &local_mid, topic, (int)len, payload, qos, retain);
        /* libmosquitto queues a QoS > 0 message before it tries to write it; these errors come
         * from the write (no socket, or a broken one) and the message stays queued: it is sent
         * again after the next CONNACK. */
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO)
            rc = MOSQ_ERR_SUCCESS;
    }
    if (rc != MOSQ_ERR_SUCCESS)
        return mosq_error(err, rc, "cannot publish to MQTT topic %s", topic);
    if (mid)
        *mid = local_mid;
    return 0;
}
