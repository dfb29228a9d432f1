/* manager_client.h - calls to the manager's node.node_service.Node service. Every call carries
 * the token as `authorization` metadata (raw JWT, as the reference sends it) and a deadline;
 * unary calls are retried (3 attempts, jittered 0.2 s / 0.4 s) only on statuses that mean the
 * request did not take effect or may be repeated safely (UNAVAILABLE, RESOURCE_EXHAUSTED,
 * ABORTED, DEADLINE_EXCEEDED). Blocking: call from a worker thread or before the event loop
 * runs. Thread-safe. */
#ifndef MANTA_MANAGER_CLIENT_H
#define MANTA_MANAGER_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "rpc.h"

#include <protobuf-c/protobuf-c.h>

typedef struct manager_client {
    rpc_channel *ch;
    char *target; /* "host:port" */
    char *token;  /* owned; never logged */
    bool tls;
    int64_t deadline_ms; /* unary calls: deadline; streams: stall limit (light_world.c) */
    int port;            /* the manager's port */
    int attempts; /* attempts per call (3) */
    logger *log;  /* borrowed, may be NULL */
} manager_client;

/* Open the channel (lazy connect). TLS when security.use_tls or manager_port == 443, with the
 * configured CA/client certificate files. */
int mc_open(manager_client *mc, const node_config *cfg, logger *lg, mt_error **err);
void mc_close(manager_client *mc);

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
