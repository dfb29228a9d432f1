/* manager_client.h - calls to the manager's node.node_service.Node service. Every call carries
 * the token as `authorization` metadata (raw JWT, as the reference sends it) and a deadline;
 * unary calls are retried (3 attempts, jittered 0.2 s / 0.4 s) only on statuses that mean the
 * request did not take effect or may be repeated safely (UNAVAILABLE, RESOURCE_EXHAUSTED,
 * ABORTED, DEADLINE_EXCEEDED). Blocking: call from a worker thread or before the event loop
 * runs. Thread-safe.
 *
 * The channel exists only while it is used: made at the first call, closed by mc_idle_close
 * when no call has used it for a while. gRPC is initialised only while one of its objects
 * exists (rpc.c), and its timer threads wake every second, so an idle node holds none. */
#ifndef MANTA_MANAGER_CLIENT_H
#define MANTA_MANAGER_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "node_config.h"
#include "err.h"
#include "log.h"
#include "rpc.h"

#include <protobuf-c/protobuf-c.h>

typedef struct manager_client {
    pthread_mutex_t mu; /* guards ch, users, last_ms */
    rpc_channel *ch;    /* owned; NULL while idle (mc_channel_hold makes it) */
    int users;          /* holds not yet released */
    int64_t last_ms;    /* monotonic ms of the last release */
    char *ca_pem, *cert_pem, *key_pem, *server_name; /* owned, NULL if none (TLS) */
    char *target;                                    /* "host:port" */
    char *token;                                     /* owned; never logged */
    bool tls;
    int64_t deadline_ms; /* unary calls: deadline; streams: stall limit (light_world.c) */
    int port;            /* the manager's port */
    int attempts;        /* attempts per call (3) */
    logger *log;         /* borrowed, may be NULL */
} manager_client;

/* Read the settings (TLS when security.use_tls or manager_port == 443, with the configured
 * CA/client certificate files, read now). No channel yet. */
int mc_open(manager_client *mc, const node_config *cfg, logger *lg, mt_error **err);
/* Frees everything; no call may be in flight. */
void mc_close(manager_client *mc);

/* The shared channel, made if there is none; borrowed until mc_channel_release (one release per
 * successful hold). NULL with *err if gRPC cannot make it. */
rpc_channel *mc_channel_hold(manager_client *mc, mt_error **err);
void mc_channel_release(manager_client *mc);
/* A channel of the caller's own (owned: rpc_channel_free) to the manager, with a connection of
 * its own (rpc_channel_new_own). */
rpc_channel *mc_channel_new_own(manager_client *mc, mt_error **err);
/* Close the shared channel if nobody holds it and it was last released idle_ms or more before
 * now_ms. Returns true if it closed it. May block for a few ms (gRPC's threads are joined when it
 * was the last gRPC object). */
bool mc_idle_close(manager_client *mc, int64_t now_ms, int64_t idle_ms);

/* Call "/node.node_service.Node/<rpc>" with a packed request. deadline_ms 0 = the configured
 * deadline. resp may be NULL (response ignored). Returns 0 on OK; -1 with *st otherwise. */
int mc_call_raw(manager_client *mc, const char *rpc, const void *req, size_t len,
                int64_t deadline_ms, int attempts, rpc_bytes *resp, rpc_status *st);

/* Same with protobuf-c messages; *resp (if resp_desc) is unpacked and owned by the caller
 * (protobuf_c_message_free_unpacked). */
int mc_call(manager_client *mc, const char *rpc, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, rpc_status *st);

/* True for statuses worth retrying. */
bool mc_retryable(int code);

#endif
