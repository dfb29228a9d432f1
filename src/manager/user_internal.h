/* user_internal.h - what the files of the user services share (user_service.c: dispatch,
 * auth, users, the cluster and its nodes; user_submit.c: modules, and swarms with their globals
 * and networks as a user sends them; user_swarms.c: starting, reading, stopping and removing
 * swarms; user_results.c: results and globals read back; user_logs.c: task logs). Not for
 * other modules: they use user_service.h. */
#ifndef MANTA_MGR_USER_INTERNAL_H
#define MANTA_MGR_USER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/swarms.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "id.h"
#include "user_service.h"

/* How long an idle live stream waits between looks at the store, at most (ms). */
#define US_POLL_MS 500
#define SHOWN_MAX  201 /* bytes of client text quoted in a status message, + NUL */

typedef void (*user_fn)(manager *m, rpc_call *call, const user_caller *uc);

struct user_method {
    const char *path; /* "/core.user_services.<Service>/<Method>" */
    user_fn fn;       /* NULL: answered UNIMPLEMENTED */
    bool open;        /* may be called without a token */
};

struct user_service {
    pthread_mutex_t mu; /* leaf lock: gen, cv */
    pthread_cond_t cv;
    uint64_t gen; /* bumped by user_service_notify */
    char cluster_id[33];
    int64_t cluster_created_ms;
};

/* Answer a unary call with msg (packed here). */
void us_reply(rpc_call *call, const ProtobufCMessage *msg);
/* Answer common.system.Response{message}. */
void us_response(rpc_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send one message of a server stream; false when the call is broken. */
bool us_send(rpc_call *call, const ProtobufCMessage *msg);
/* Receive the one request message; NULL with the call finished (INVALID_ARGUMENT). */
ProtobufCMessage *us_recv(rpc_call *call, const ProtobufCMessageDescriptor *d);
/* Finish with code and a message (made safe: cleaned UTF-8, cut). */
void us_fail(rpc_call *call, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An id as the user sees it: 32 lower-case hex digits. */
void us_hex(node_id id, char out[33]);
/* Parse an id from the user (1..32 hex digits); false when it is not one. */
bool us_parse_id(const char *s, node_id *out);
/* A client string quoted in a message: cleaned and cut to `size`. */
char *us_shown(char *dst, size_t size, const char *src);
/* A Timestamp of ms since the epoch. */
Google__Protobuf__Timestamp us_ts(int64_t ms);
/* A Timestamp from the user in ns since the epoch, clamped to what Timestamp allows (years
 * 1-9999), or dflt when absent. */
int64_t us_ts_ns(const Google__Protobuf__Timestamp *t, int64_t dflt);
/* ms since the epoch (from the store) in ns, clamped to what int64 ns hold (1677-2262). */
int64_t us_ms_to_ns(int64_t ms);
/* The generation of what live streams follow. */
uint64_t us_gen(manager *m);
/* Wait until the generation differs from seen, at most US_POLL_MS; false once the client
 * cancelled. */
bool us_wait(manager *m, rpc_call *call, uint64_t seen);

/* ids and swarms (user_swarms.c) */
/* A PairId (NULL: the zero id) / an xid as the user sees it: 32 lower-case hex digits. */
void us_pair_hex(const Common__System__PairId *p, char out[33]);
void us_hex_of_xid(const char *xid, char out[33]);
/* The swarm a user names; false with the call finished (NOT_FOUND) when unknown. *sw owned
 * fields (store_swarm_clear); id may be NULL. */
bool us_find_swarm(manager *m, rpc_call *call, const char *given, store_swarm *sw,
                   char xid[NODE_XID_MAX + 1], node_id *id);
/* Receive a StrId request naming a swarm and find it: its xid, and its hex when hex is not
 * NULL. False with the call finished when not. */
bool us_recv_swarm_id(manager *m, rpc_call *call, char xid[NODE_XID_MAX + 1], char hex[33]);
/* Has a swarm of this status ended (neither PENDING nor RUNNING)? */
bool us_swarm_ended(const char *status);
/* Is the swarm still PENDING or RUNNING? (An unknown swarm - removed meanwhile - is not.) */
bool us_swarm_live(manager *m, const char *xid);
/* The stored graph of a swarm (unpacked, owned; NULL if none) and its sender (owned, may be
 * ""; owner may be NULL). Free with us_free_graph (NULL is fine). */
Common__Swarms__Graph *us_load_graph(manager *m, const char *xid, char **owner);
void us_free_graph(Common__Swarms__Graph *g);
/* Answer with the Swarm message of a stored swarm. */
void us_reply_swarm(manager *m, rpc_call *call, const store_swarm *sw);

/* An uploaded module, or a swarm file's kept for its run (user_submit.c): a graph_module_fn,
 * ctx the manager. */
int us_module_lookup(void *ctx, node_id id, Common__Tasks__Module **mod, mt_error **err);

/* The methods (user_submit.c, user_swarms.c, user_results.c, user_logs.c) */
void us_send_module(manager *m, rpc_call *call, const user_caller *uc);
void us_list_module_ids(manager *m, rpc_call *call, const user_caller *uc);
void us_stream_modules(manager *m, rpc_call *call, const user_caller *uc);
void us_get_module(manager *m, rpc_call *call, const user_caller *uc);
void us_remove_module(manager *m, rpc_call *call, const user_caller *uc);
void us_send_swarm(manager *m, rpc_call *call, const user_caller *uc);
void us_initialize_global(manager *m, rpc_call *call, const user_caller *uc);
void us_initialize_networks(manager *m, rpc_call *call, const user_caller *uc);
void us_start_swarm(manager *m, rpc_call *call, const user_caller *uc);
void us_get_swarm(manager *m, rpc_call *call, const user_caller *uc);
void us_list_swarm_ids(manager *m, rpc_call *call, const user_caller *uc);
void us_stream_swarms(manager *m, rpc_call *call, const user_caller *uc);
void us_stream_swarm_tasks(manager *m, rpc_call *call, const user_caller *uc);
void us_stop_swarm(manager *m, rpc_call *call, const user_caller *uc);
void us_remove_swarm(manager *m, rpc_call *call, const user_caller *uc);
void us_select_results(manager *m, rpc_call *call, const user_caller *uc);
void us_stream_results(manager *m, rpc_call *call, const user_caller *uc);
void us_delete_results(manager *m, rpc_call *call, const user_caller *uc);
void us_list_result_tags(manager *m, rpc_call *call, const user_caller *uc);
void us_collect_logs(manager *m, rpc_call *call, const user_caller *uc);
void us_stream_logs(manager *m, rpc_call *call, const user_caller *uc);
void us_select_global(manager *m, rpc_call *call, const user_caller *uc);
void us_list_global_tags(manager *m, rpc_call *call, const user_caller *uc);

#endif
