/* mgr.h - the manager's daemon context and what its modules share.
 *
 * Threads: the main thread runs the event loop (MQTT, timers, signals, the outbox); gRPC
 * handlers (node_service.c) and admin connections (admin.c) run on their own threads. All
 * shared state below `lock` (the node registry, the swarm runs, the outbox) is touched only
 * with `lock` held. MQTT is used only by the main thread: other threads queue publishes in the
 * outbox (mgr_publish) and wake the loop (mgr_wake, loop_wake). The store has its own lock.
 */
#ifndef MANTA_MGR_H
#define MANTA_MGR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "err.h"
#include "id.h"
#include "log.h"
#include "loop.h"
#include "mgr_config.h"
#include "mqtt.h"
#include "rpc.h"
#include "store.h"
#include "token.h"

/* A node's load for the dashboard: one sample every MGR_HIST_EVERY_MS, the last MGR_HIST_LEN. */
#define MGR_HIST_LEN      120
#define MGR_HIST_EVERY_MS 5000
typedef struct mgr_sample {
    int64_t wall_ms;
    float cpu, mem; /* percent */
} mgr_sample;

typedef struct mgr_node {
    node_id id;
    char xid[NODE_XID_MAX + 1];
    char hostname[128];
    char alias[128]; /* the token's subject */
    bool connected;
    bool ready;           /* heard on MQTT since it registered: it gets commands */
    bool reports_outcome; /* publishes COMPLETED/FAILED (this project's node does) */
    int64_t last_seen_ms; /* monotonic */
    int64_t will_ms;      /* monotonic: when its last will (DISCONNECTED on MQTT) arrived; 0 when
                           * it was heard from since (see sweep in mgr.c) */
    char **datasets;      /* NULL-terminated overview names, owned */
    unsigned running;     /* task instances deployed and not finished */
    /* Commands for it while it is registered but not heard on MQTT (ready false: it may not be
     * subscribed yet, and a node with a clean session, as the reference's, loses what is
     * published before it is): published when it is heard (mgr_node_heard), dropped if it is
     * lost first (the runner places its instances again). */
    struct mgr_msg *held_head, *held_tail;
    /* for the user services (packed messages, owned, len 0 = none yet) */
    ProtobufCBinaryData platform;  /* common.informations.PlatformInfo of the registration */
    ProtobufCBinaryData overviews; /* common.informations.Overviews, latest */
    ProtobufCBinaryData metrics;   /* common.informations.MetricsSnapshot, latest */
    mgr_sample hist[MGR_HIST_LEN]; /* a ring, oldest at hist_head */
    unsigned hist_head, hist_n;
} mgr_node;

typedef struct mgr_msg {
    char *topic;
    uint8_t *payload;
    size_t len;
    struct mgr_msg *next;
} mgr_msg;

typedef struct swarm_run swarm_run; /* runner_impl.h */

/* Called (with lock held) for every progress line of a swarm run; `run` prints them. */
typedef void (*mgr_progress_fn)(void *ctx, const char *swarm_xid, const char *line);

typedef struct manager {
    mgr_config cfg;
    logger *log;
    store *st;
    uint8_t secret[TOKEN_SECRET_LEN];
    rpc_server *srv;
    struct node_service *ns; /* node_service_impl.h: calls in progress per node, node bindings */
    int port;                /* the gRPC port actually bound */
    rpc_server *usrv;        /* the user services' own server (user_listen), or NULL */
    int user_port;           /* where the user services are served (port or user_listen's) */
    struct user_service *us; /* user_service.c */
    mqtt_client *mq;
    loop *loop;            /* lib/loop.h: MQTT, signals, wake-ups from other threads */
    loop_timer mqtt_timer; /* the broker connection's clock (keep-alive, reconnects) */
    int mqtt_watched_fd;   /* the MQTT socket the loop watches, -1 if none */
    bool mqtt_watch_write;
    int signal;     /* SIGINT/SIGTERM received, taken by mgr_loop */
    bool broker_up; /* connected to the broker (CONNACK): nodes can be heard (lock) */

    pthread_mutex_t lock;
    mgr_node **nodes;
    size_t nnodes;
    swarm_run **runs;
    size_t nruns;
    mgr_msg *out_head, *out_tail;
    mgr_progress_fn progress;
    void *progress_ctx;
    struct admin_server *admin; /* admin.c */
    struct web_server *web;     /* web.c: the dashboard, or NULL (no http_listen) */
    bool libs_up;               /* mqtt_lib_init and rpc_init were called: mgr_close undoes them */
    int reconnect_attempt;      /* broker connection attempts failed in a row */
} manager;

/* Queue an MQTT command for a node: topic "manta/nodes/<xid>/<command>". Lock held. Copies
 * the payload. Held on the node while it is registered but not heard on MQTT (mgr_node). */
void mgr_publish(manager *m, const char *node_xid, const char *command, const void *payload,
                 size_t len);
/* Wake the main loop (outbox or run state changed). Any thread. */
void mgr_wake(manager *m);

/* Take up the runs the store shows RUNNING (serve, once, after mgr_open). */
void mgr_resume(manager *m);

/* The node registry (lock held). */
mgr_node *mgr_node_find(manager *m, node_id id);
/* Mark a node lost (will, DISCONNECTED, or silence) and tell the runner. Lock held. */
void mgr_node_lost(manager *m, mgr_node *n, const char *why);
/* The node was heard on MQTT (ready): the commands held for it leave. Lock held. */
void mgr_node_heard(manager *m, mgr_node *n);
/* Free a node of the registry (its commands held too). */
void mgr_node_free(mgr_node *n);
/* Seconds a node whose last will arrived has to be heard from again before it is lost:
 * min(node_timeout, MGR_WILL_GRACE_S). */
#define MGR_WILL_GRACE_S 10
int64_t mgr_will_grace_s(const manager *m);

/* Options the command line gives over the configuration file (NULL/0 = keep). */
typedef struct mgr_overrides {
    const char *listen;
    const char *user_listen;
    const char *http_listen;
    const char *broker; /* "host:port" */
    const char *store;
    const char *admin_socket;
    int no_token; /* 1: accept nodes without tokens (tests, demos on a closed machine) */
} mgr_overrides;

/* Load the configuration, open the log, the store, the secret, MQTT and the node service,
 * and the admin socket. On failure everything opened is closed again. */
int mgr_open(manager *m, const char *config_path, const mgr_overrides *ov, mt_error **err);
/* Run the event loop until SIGINT/SIGTERM, or until done(ctx) returns true, or until
 * deadline_ms (monotonic, 0 = none). Returns 0 when done() ended it, 1 on a signal, 2 on the
 * deadline. */
int mgr_loop(manager *m, bool (*done)(void *ctx), void *ctx, int64_t deadline_ms);
void mgr_close(manager *m);
/* Nodes connected and reachable over MQTT now (lock taken inside). */
size_t mgr_connected_nodes(manager *m);

/* Topic of node commands (registration answers "manta/nodes/<xid>/+"). */
#define MGR_TOPIC_PREFIX "manta/nodes/"

#endif
