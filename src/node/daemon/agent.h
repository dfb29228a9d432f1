/* agent.h - the node daemon: one context (struct node) and its event loop.
 *
 * The loop is epoll over the MQTT socket and a signalfd; timers are deadlines on the monotonic
 * clock turned into the epoll timeout (heartbeat every mqtt.ping_interval, MQTT housekeeping
 * every second, reconnect with jittered exponential backoff). Blocking manager calls run on one
 * worker thread, in order (a workers.h pool of one, its queue bounded); blocking task steps on
 * a pool of TASK_WORKERS joinable threads; the runtime's exit watch is one more thread (Docker
 * /events, or inotify for runc/process); all of them hand results to the loop through the eventfd
 * post queue, and agent_free joins them all before freeing what they use. The light service runs on
 * gRPC's own threads. Signal handlers do not exist: signals arrive through the signalfd and only
 * set state the loop acts on.
 */
#ifndef MANTA_AGENT_H
#define MANTA_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "node_config.h"
#include "datasets.h"
#include "id.h"
#include "log.h"
#include "loop.h"
#include "manager_client.h"
#include "metrics.h"
#include "mqtt.h"
#include "rpc.h"
#include "workers.h"

struct light_service;
struct task_table;
struct runtime;
struct delivery;

typedef struct node {
    /* configuration and identity */
    node_config cfg;      /* owned (loaded by the CLI, handed over) */
    char *config_name;    /* owned */
    char *alias_override; /* owned, NULL if none (--alias), re-applied on reload */
    logger *log;          /* owned */
    node_id id;
    char xid[NODE_XID_MAX + 1];
    dataset_set datasets;
    metrics_state metrics;
    platform_info platform;
    FILE *out; /* where user-facing progress lines go (stdout) */

    /* the manager */
    manager_client mc;
    workers *wq; /* manager calls: one thread, in order, MANAGER_CALLS_QUEUED waiting at most */

    /* registration result */
    char *broker_host;
    int broker_port;
    char **topics; /* owned NULL-terminated */
    size_t ntopics;

    /* MQTT */
    mqtt_client *mqtt;
    bool mqtt_up;        /* CONNACK accepted and not disconnected since */
    int mqtt_watched_fd; /* fd currently watched by the loop, -1 if none */
    bool mqtt_watch_write;
    size_t suback_pending; /* SUBACKs awaited after (re)subscribing */
    int reconnect_attempt;
    bool starting; /* connecting at startup: no automatic reconnect */
    int last_connack_rc;
    uint64_t disconnects;

    /* loop */
    loop *loop;                 /* lib/loop.h: epoll, signals, posts from other threads */
    loop_timer tick_timer;      /* once a second: MQTT's clock, tasks, outbox, idle close */
    loop_timer heartbeat_timer; /* mqtt.ping_interval */
    loop_timer monitor_timer;   /* resources.monitor_interval */
    loop_timer reconnect_timer; /* armed while a broker reconnect waits its back-off */
    uint64_t heartbeats;
    size_t gpus; /* GPUs NVML reported at the last probe */

    /* tasks */
    struct runtime *rt;
    const char *runtime_name; /* static */
    struct task_table *tasks;
    workers *pool;             /* task steps: a fixed set of joinable threads (workers.h) */
    bool keep_tasks;           /* stop without touching running tasks (agent upgrade) */
    int64_t drain_deadline_ms; /* stop: give tasks until then to stop and upload logs */
    bool draining;
    struct delivery *delivery; /* deliver.c: finished tasks' output on its way to the manager */

    /* commands and this run's place in the persistent session (agent.c, "stale commands") */
    struct command_hold *held;  /* commands received before the task table existed */
    char run_id[33];            /* 32 hex digits, random per run: the session marker's payload */
    char *marker_topic;         /* owned; NULL when no subscription lets the node reach itself */
    int session;                /* enum agent_session */
    int64_t marker_deadline_ms; /* waiting for the marker until then (extended while the
                                 * broker is still handing over queued messages)... */
    int64_t marker_cap_ms;      /* ...but never past this */
    uint64_t stale_stops;       /* stop_node commands ignored as meant for an earlier run */

    /* light service */
    struct light_service *light; /* NULL while stopped (no task for network.idle_close s) */
    int light_port;
    int64_t light_idle_since_ms; /* tasks_idle since then; 0 = tasks busy */

    /* shutdown */
    bool stopping;
    int stop_signals;         /* signals received so far */
    int64_t stop_deadline_ms; /* give up waiting for the DISCONNECTED PUBACK then */
    int disconnect_mid;       /* message id of the DISCONNECTED publish, -1 none */
    bool disconnect_acked;
    int exit_code;
    bool libs_inited; /* mqtt_lib_init done (gRPC is initialised by its objects: rpc.c) */
} node;

/* Set up the context from a loaded, finalised, validated configuration (taken over: cfg is
 * zeroed). Opens the log, computes the ID, scans datasets. Prints nothing. */
int agent_init(node *n, node_config *cfg, const char *config_name, const char *alias_override,
               mt_error **err);

/* SIGHUP: reopen the log file and reload the configuration file; apply what can change
 * without a restart (logging.level, datasets.mappings) and log which other changed settings
 * need a restart. In reload.c. */
void agent_reload(node *n);

/* The startup sequence: availability, registration, broker connection and subscriptions,
 * light service. Prints the ✓ lines to n->out. On failure *err says what, its status which
 * step (enum agent_stage), and the caller prints the seed's error block. */
enum agent_stage {
    AGENT_STAGE_MANAGER = 1,
    AGENT_STAGE_AUTH,
    AGENT_STAGE_REGISTER,
    AGENT_STAGE_BROKER,
    AGENT_STAGE_LIGHT,
    AGENT_STAGE_RUNTIME,
};
int agent_start(node *n, mt_error **err);

/* Run until stopped (signal or stop_node); returns the exit code. */
int agent_run(node *n);

void agent_free(node *n);

/* SetSystemSummaryRequest{node_id, fresh MetricsSnapshot}, packed; owned, or NULL if the
 * metrics cannot be read (logged). In heartbeat.c. */
uint8_t *agent_system_summary(node *n, size_t *len);

/* Call a Node RPC on the worker thread with packed request bytes (taken over); failures are
 * logged (as the reference does for gRPC failures). */
void agent_call_async(node *n, const char *rpc, uint8_t *buf, size_t len);

/* Report an error to the manager (SendError), asynchronously on the worker. */
void agent_send_error(node *n, int error_id, const char *content);

/* The light service, started again if network.idle_close stopped it (on the loop, before a task
 * is deployed). Tasks started from now on are told its port. */
int agent_light_up(node *n, mt_error **err);
/* Publish a packed TaskUpdate on manager/update_task_status (QoS 1; on the loop); `what` names
 * it in the warning when it cannot be queued. */
void agent_publish_status(node *n, const uint8_t *update, size_t len, const char *what);
/* Run fn(arg) on the event loop (any thread; arg owned by fn). */
void agent_post(node *n, void (*fn)(void *), void *arg);

/* Begin the graceful stop (also used by stop_node). */
void agent_request_stop(node *n, const char *why);

/* ---- stale commands (agent.c explains the design) ---- */

/* The command name the node's session marker travels under (never reported as unknown). */
#define AGENT_MARKER_COMMAND "node_session_marker"

enum agent_session {
    AGENT_SESSION_NONE = 0, /* not connected yet this run */
    AGENT_SESSION_PENDING,  /* marker published; what arrives now was queued before this run */
    AGENT_SESSION_CURRENT,  /* marker back (or given up on): everything is for this run */
};

/* A node_session_marker message arrived (payload borrowed, may be NULL when len is 0). */
void agent_marker_received(node *n, const void *payload, size_t len);

/* Is a stop_node with this payload meant for this run? false: it was queued in the session
 * before this run started (or names another run), and must not stop the node. */
bool agent_stop_is_for_this_run(node *n, const void *payload, size_t len);

#endif
