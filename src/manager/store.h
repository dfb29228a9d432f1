/* store.h - the manager's durable store (SQLite): swarms, nodes, globals, results, task logs
 * and errors. IDs are kept in their xid text form (node_id_to_xid). Thread-safe: one
 * connection behind one mutex, so gRPC handler threads may call any function at any time.
 * Values (globals, results) are opaque bytes (msgpack from the SDK), returned byte-exact.
 */
#ifndef MANTA_MGR_STORE_H
#define MANTA_MGR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct store store;

/* Open (creating the schema if needed) the database at path; ":memory:" for a private
 * in-memory store. Returns owned or NULL with *err. */
store *store_open(const char *path, mt_error **err);
void store_close(store *st); /* takes st; NULL is fine */

/* ---- swarms ---- */
typedef struct store_swarm {
    char *id;     /* swarm xid */
    char *name;   /* swarm name from the swarm file */
    char *status; /* "PENDING", "RUNNING", "COMPLETED", "STOPPED", "FAILED" */
    char *detail; /* why it ended ("" while running) */
    uint32_t iteration;
    int64_t created_ms, updated_ms; /* ms since the epoch */
} store_swarm;
/* A new swarm: status PENDING, detail "", iteration 0. EXISTS error if the id is taken. */
int store_swarm_create(store *st, const char *id, const char *name, int64_t now_ms, mt_error **err);
/* Update status, detail (may be NULL = keep) and iteration. NOTFOUND error if unknown. */
int store_swarm_update(store *st, const char *id, const char *status, const char *detail,
                       uint32_t iteration, int64_t now_ms, mt_error **err);
/* All swarms, newest first (by created_ms, then creation order). *rows owned (free with
 * store_swarms_free). */
int store_swarm_list(store *st, store_swarm **rows, size_t *n, mt_error **err);
/* One swarm: 1 found, 0 unknown, -1 error. *out owned fields (free with store_swarm_clear). */
int store_swarm_get(store *st, const char *id, store_swarm *out, mt_error **err);
void store_swarm_clear(store_swarm *s);
void store_swarms_free(store_swarm *rows, size_t n);

/* ---- nodes ---- */
typedef struct store_node {
    char *id;       /* node xid */
    char *hostname; /* from PlatformInfo */
    char *platform; /* "system release machine", "" if unknown */
    char *datasets; /* comma-separated dataset (overview) names, "" if none */
    char *status;   /* "CONNECTED", "DISCONNECTED", "LOST" */
    int64_t registered_ms, last_seen_ms;
} store_node;
/* Insert or replace the registration of a node (status CONNECTED, registered = last_seen =
 * now; n's status and times are ignored). n->datasets NULL keeps the known datasets. */
int store_node_register(store *st, const store_node *n, int64_t now_ms, mt_error **err);
/* Both: NOTFOUND error if the node never registered; set_status also sets last_seen = now. */
int store_node_set_datasets(store *st, const char *id, const char *datasets, mt_error **err);
int store_node_set_status(store *st, const char *id, const char *status, int64_t now_ms,
                          mt_error **err);
int store_node_list(store *st, store_node **rows, size_t *n, mt_error **err); /* by id */
void store_nodes_free(store_node *rows, size_t n);

/* ---- node bindings: the token subject (alias) each node id acts for ---- */
typedef struct store_binding {
    char *node;    /* node xid */
    char *subject; /* the `sub` of the token that registered it */
    int64_t bound_ms;
} store_binding;
/* Bind node to subject, replacing the binding it had, if any. */
int store_binding_set(store *st, const char *node, const char *subject, int64_t now_ms,
                      mt_error **err);
/* Every binding, by node. *rows owned (free with store_bindings_free). */
int store_binding_list(store *st, store_binding **rows, size_t *n, mt_error **err);
void store_bindings_free(store_binding *rows, size_t n);

/* ---- globals: per (swarm, tag), last write wins ---- */
int store_global_set(store *st, const char *swarm, const char *tag, const void *data, size_t len,
                     mt_error **err);
/* 1 found (*data owned, may be NULL when len is 0), 0 no such global, -1 error.
 * (This implementation never returns NULL data on 1; results read with data likewise.) */
int store_global_get(store *st, const char *swarm, const char *tag, uint8_t **data, size_t *len,
                     mt_error **err);

/* ---- results: appended per (swarm, tag, node, task, iteration) ---- */
typedef struct store_result {
    char *swarm, *task, *node, *tag;
    uint32_t iteration;
    uint8_t *data; /* NULL when listed without data */
    size_t len;
    int64_t created_ms;
    int64_t seq; /* insertion order (rowid) */
} store_result;
/* Append a result. request: the caller's id for this call (NULL: none); a request id already
 * stored for (swarm, node) makes this a repeat of that call, and nothing is added. Returns 0
 * when added, 1 for a repeat, -1 on error. */
int store_result_add(store *st, const char *swarm, const char *task, const char *node,
                     uint32_t iteration, const char *tag, const char *request, const void *data,
                     size_t len, int64_t now_ms, mt_error **err);
/* What a task's GetTaskResult sees: results of (swarm, tag, iteration) with at most ONE row
 * per node (that node's most recent), newest first. method 1 (LAST) keeps only the newest
 * row overall; 0 or 2 (ALL) keeps every node. size: cap on the number of rows; size <= 0 or
 * >= 2^31 means no cap (the SDK sends -1, which arrives as 2^32-1). Rows carry data. */
int store_result_query(store *st, const char *swarm, const char *tag, uint32_t iteration,
                       int64_t size, int method, store_result **rows, size_t *n, mt_error **err);
/* Listing for the user: every result of a swarm, oldest first, filtered by tag (NULL = any)
 * and iteration (-1 = any); with_data false leaves data NULL (len still set). */
int store_result_list(store *st, const char *swarm, const char *tag, int64_t iteration,
                      bool with_data, store_result **rows, size_t *n, mt_error **err);
void store_results_free(store_result *rows, size_t n);

/* ---- task logs (decoded text) and errors ---- */
typedef struct store_log {
    char *swarm, *node, *task;
    uint32_t iteration, circular;
    int64_t ts_ms;
    char *text; /* stdout+stderr of the task instance, NUL-terminated */
    size_t len;
    int64_t seq; /* insertion order */
} store_log;
/* Store one task log; the same (swarm, node, task, iteration, circular, text) again is not
 * stored twice (a node's repeated delivery, whatever its timestamp). */
int store_log_add(store *st, const char *swarm, const char *node, const char *task,
                  uint32_t iteration, uint32_t circular, int64_t ts_ms, const char *text,
                  size_t len, mt_error **err);
/* Filtered by swarm / node / task (NULL = any), oldest first (ts_ms, then insertion). */
int store_log_list(store *st, const char *swarm, const char *node, const char *task,
                   store_log **rows, size_t *n, mt_error **err);
/* The logs of a swarm stored after seq after_seq, in insertion order. */
int store_log_after(store *st, const char *swarm, int64_t after_seq, store_log **rows, size_t *n,
                    mt_error **err);
/* The dashboard's log view: the logs of a swarm narrowed by node (NULL = any), iteration (-1 =
 * any), stored after after_seq, whose text contains `text` (NULL or "" = any; ASCII letters
 * case-insensitive); the newest `limit` of them (<= 0: all), oldest first. */
typedef struct store_log_filter {
    const char *swarm, *node, *text;
    int64_t iteration, after_seq, limit;
} store_log_filter;
int store_log_search(store *st, const store_log_filter *f, store_log **rows, size_t *n,
                     mt_error **err);
/* The logs of a swarm (of one iteration; -1 = every one) without their text (text "", len 0),
 * in insertion order. */
int store_log_index(store *st, const char *swarm, int64_t iteration, store_log **rows, size_t *n,
                    mt_error **err);
/* Per iteration that left logs: when its first and last log came, how many, the newest's seq. */
typedef struct store_round {
    uint32_t iteration;
    int64_t start_ms, end_ms, logs, last_seq;
} store_round;
/* The iterations of a swarm's logs stored after seq after_seq (0: all), in order. *rows owned
 * (free()). */
int store_log_rounds(store *st, const char *swarm, int64_t after_seq, store_round **rows, size_t *n,
                     mt_error **err);
void store_logs_free(store_log *rows, size_t n);

typedef struct store_errrow {
    char *node, *swarm, *task; /* "" when absent */
    uint32_t iteration, circular;
    int error_id;
    char *content;
    int64_t ts_ms;
} store_errrow;
int store_error_add(store *st, const store_errrow *e, mt_error **err);
int store_error_list(store *st, const char *swarm, store_errrow **rows, size_t *n,
                     mt_error **err); /* swarm NULL = all; oldest first (ts_ms, insertion) */
void store_errors_free(store_errrow *rows, size_t n);

/* ---- swarm removal and result deletion (the user side) ---- */
/* Remove a swarm with its globals, results, logs and errors: 1 removed, 0 unknown, -1 error. */
int store_swarm_remove(store *st, const char *id, mt_error **err);
/* Delete the results of (swarm, tag), narrowed by node / task (NULL = any) and iteration (-1 =
 * any). Returns the number of rows deleted, or -1. */
int store_result_delete(store *st, const char *swarm, const char *tag, const char *node,
                        const char *task, int64_t iteration, mt_error **err);

/* Results of (swarm, tag) stored after seq after_seq, oldest first, with data. */
int store_result_after(store *st, const char *swarm, const char *tag, int64_t after_seq,
                       store_result **rows, size_t *n, mt_error **err);
/* The results of a swarm (of one tag; NULL = any) stored after seq after_seq whose value is at
 * most max_len bytes (metrics, not model weights), oldest first, with data. */
int store_result_small(store *st, const char *swarm, const char *tag, int64_t after_seq,
                       size_t max_len, store_result **rows, size_t *n, mt_error **err);
/* The globals of a swarm: *tags NULL-terminated (owned, free with mem_free_strv), *lens their
 * sizes (owned), by tag. */
int store_global_list(store *st, const char *swarm, char ***tags, size_t **lens, size_t *n,
                      mt_error **err);

/* ---- objects of the user side: (kind, id) -> short text `meta` and a value ---- *
 * Kinds: "user" (id = name, meta = user id, value = password hash), "revoked" (id = token id),
 * "module" (id = module id, meta = name, value = packed common.tasks.Module), "graph" (id =
 * swarm id, value = packed swarm graph), "meta" (id = a key). */
typedef struct store_object {
    char *kind, *id, *meta;
    int64_t created_ms;
    uint8_t *data; /* NULL when listed, or read without data */
    size_t len;
} store_object;
/* Save; replace false refuses an existing (kind, id) with an EXISTS error. */
int store_object_put(store *st, const char *kind, const char *id, const char *meta,
                     const void *data, size_t len, int64_t now_ms, bool replace, mt_error **err);
/* 1 found (*out owned fields, data only when with_data), 0 unknown, -1 error. */
int store_object_get(store *st, const char *kind, const char *id, bool with_data, store_object *out,
                     mt_error **err);
/* Every object of a kind, oldest first, without data. *rows owned. */
int store_object_list(store *st, const char *kind, store_object **rows, size_t *n, mt_error **err);
/* 1 deleted, 0 unknown, -1 error. */
int store_object_delete(store *st, const char *kind, const char *id, mt_error **err);
void store_object_clear(store_object *o);
void store_objects_free(store_object *rows, size_t n);

#endif
