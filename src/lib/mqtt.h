/* mqtt.h - MQTT 3.1.1 client over libmosquitto, driven by the caller's event loop (no library
 * thread): the caller watches mqtt_fd() for reading (and for writing when mqtt_want_write()),
 * calls mqtt_on_readable / mqtt_on_writable when it fires, and mqtt_tick() at least once a
 * second (keep-alive, retries of QoS 1 messages). Callbacks run inside those calls, on the
 * caller's thread. Reconnection policy belongs to the caller: after a disconnect it calls
 * mqtt_connect() again (a persistent session resumes where it was).
 */
#ifndef MANTA_MQTT_H
#define MANTA_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct mqtt_client mqtt_client;

typedef struct mqtt_options {
    const char *client_id; /* required */
    bool clean_session;    /* false = persistent session (QoS 1 messages kept while away) */
    int keepalive;         /* seconds */
    const char *username;  /* NULL = none */
    const char *password;  /* NULL = none */
    /* TLS: off unless tls is true. ca_file NULL = system CAs. cert/key for mutual TLS. */
    bool tls;
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    bool tls_insecure; /* skip host name verification (tests only) */
    /* Last will: published by the broker if the connection drops without a DISCONNECT. */
    const char *will_topic; /* NULL = none */
    const void *will_payload;
    size_t will_len;
    int will_qos;
    bool will_retain;
} mqtt_options;

typedef struct mqtt_callbacks {
    /* CONNACK received (rc 0 = accepted; otherwise the broker's refusal code). */
    void (*on_connect)(void *ctx, int rc, bool session_present);
    /* The connection is gone (rc 0 = we asked for it). */
    void (*on_disconnect)(void *ctx, int rc);
    /* A message arrived (payload borrowed for the duration of the call). */
    void (*on_message)(void *ctx, const char *topic, const void *payload, size_t len, int qos);
    /* A QoS 1 publish of ours was acknowledged (PUBACK), with its message id. May be NULL. */
    void (*on_published)(void *ctx, int mid);
    /* SUBACK for a subscribe request, with the granted QoS (128 = refused). May be NULL. */
    void (*on_subscribed)(void *ctx, int mid, int granted_qos);
} mqtt_callbacks;

/* Process-wide library init/cleanup (reference-counted). */
void mqtt_lib_init(void);
void mqtt_lib_cleanup(void);

/* Create a client (copies everything it needs from opts). Returns owned or NULL + *err. */
mqtt_client *mqtt_new(const mqtt_options *opts, const mqtt_callbacks *cb, void *ctx,
                      mt_error **err);
void mqtt_free(mqtt_client *c); /* disconnects (without will) if connected */

/* Start connecting (non-blocking TCP connect + CONNECT). on_connect reports the outcome. The
 * host name is resolved here (blocking getaddrinfo for names; instant for addresses). */
int mqtt_connect(mqtt_client *c, const char *host, int port, mt_error **err);
/* Clean disconnect (DISCONNECT sent, so the will is not published). */
void mqtt_disconnect(mqtt_client *c);

/* -1 when not connected. */
int mqtt_fd(const mqtt_client *c);
bool mqtt_want_write(const mqtt_client *c);
bool mqtt_connected(const mqtt_client *c);

/* Event-loop entry points. Return 0, or -1 when the connection broke (on_disconnect has been
 * called). */
int mqtt_on_readable(mqtt_client *c);
int mqtt_on_writable(mqtt_client *c);
int mqtt_tick(mqtt_client *c);

/* Subscribe / publish. *mid (may be NULL) receives the message id. Publishing while
 * disconnected with QoS 1 queues the message in the client (sent on reconnect). */
int mqtt_subscribe(mqtt_client *c, const char *topic, int qos, int *mid, mt_error **err);
int mqtt_publish(mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
                 bool retain, int *mid, mt_error **err);

#endif
