/* store_impl.h - what the store's files share: store.c (schema, statements, opening, the
 * helpers below), store_swarms.c (swarms, nodes, bindings), store_results.c (globals and
 * results), store_logs.c (task logs and errors) and store_objects.c (objects of the user
 * side). Not for other modules: they use store.h.
 *
 * Every public function holds st->mu for its whole run (LOCK_STORE first), gets its prepared
 * statement with db_stmt (reset and unbound at the end of the scope: cleanup_stmt), and on
 * failure sets *err with db_fail. */
#ifndef MANTA_MGR_STORE_IMPL_H
#define MANTA_MGR_STORE_IMPL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mem.h"
#include "store.h"

/* Statements with optional filters come in variants: base + bitmask of the filters given,
 * each variant a constant text, so the planner can use the indexes. */
enum {
    S_SWARM_CREATE,
    S_SWARM_UPDATE,
    S_SWARM_LIST,
    S_SWARM_GET,
    S_NODE_REGISTER,
    S_NODE_DATASETS,
    S_NODE_STATUS,
    S_NODE_LIST,
    S_BINDING_SET,
    S_BINDING_LIST,
    S_GLOBAL_SET,
    S_GLOBAL_GET,
    S_RESULT_ADD,
    S_RESULT_QUERY,
    S_RESULT_LIST, /* + 1 tag, + 2 iteration */
    S_LOG_ADD = S_RESULT_LIST + 4,
    S_LOG_LIST, /* + 1 swarm, + 2 node, + 4 task */
    S_ERROR_ADD = S_LOG_LIST + 8,
    S_ERROR_LIST, /* + 1 swarm */
    S_OBJECT_PUT = S_ERROR_LIST + 2,
    S_OBJECT_ADD,
    S_OBJECT_GET,
    S_OBJECT_LIST,
    S_OBJECT_DELETE,
    S_SWARM_REMOVE, /* + 0 .. 4: swarms, globals, results, task_logs, task_errors */
    S_RESULT_DELETE = S_SWARM_REMOVE + 5,
    S_RESULT_AFTER,
    S_GLOBAL_LIST,
    S_LOG_AFTER,
    S_LOG_SEARCH,
    S_LOG_INDEX,
    S_RESULT_SMALL,
    S_RESULT_SMALL_TAG,
    S_LOG_ROUNDS,
    S_LOG_ROUNDS_AFTER,
    S_COUNT,
};

struct store {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[S_COUNT];
};

static inline store *store_lock(store *st)
{
    pthread_mutex_lock(&st->mu);
    return st;
}

static inline void store_unlock(store **pst)
{
    if (*pst)
        pthread_mutex_unlock(&(*pst)->mu);
}

/* Hold st->mu until the end of the enclosing function. Declare first, so it is released
 * last, after the statements and transactions declared below it. */
#define LOCK_STORE(st)                                                                             \
    __attribute__((cleanup(store_unlock))) store *locked_ = store_lock(st);                        \
    (void)locked_

static inline void stmt_done(sqlite3_stmt **ps)
{
    if (*ps) {
        sqlite3_reset(*ps);
        sqlite3_clear_bindings(*ps);
    }
}
#define cleanup_stmt __attribute__((cleanup(stmt_done)))

/* End a read transaction begun with db_read_begin (no-op when none is open). */
static inline void read_end(store **pst)
{
    if (*pst && !sqlite3_get_autocommit((*pst)->db))
        sqlite3_exec((*pst)->db, "ROLLBACK", NULL, NULL, NULL);
}
#define cleanup_read __attribute__((cleanup(read_end)))

static inline void blob_done(sqlite3_blob **pb)
{
    if (*pb)
        sqlite3_blob_close(*pb);
}
#define cleanup_blob __attribute__((cleanup(blob_done)))

static inline void bind_str(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static inline char *col_str(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return xstrdup(t ? (const char *)t : "");
}

/* Append a zeroed element to a growable array; evaluates to its address. */
#define ROWS_PUSH(rows, n, cap)                                                                    \
    ({                                                                                             \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? 2 * (cap) : 8;                                                         \
            (rows) = xrealloc((rows), (cap) * sizeof(*(rows)));                                    \
        }                                                                                          \
        memset(&(rows)[(n)], 0, sizeof(*(rows)));                                                  \
        &(rows)[(n)++];                                                                            \
    })

/* store.c */
/* Set *err for the last failed SQLite call on st->db: "the manager's store PATH could not
 * WHAT: SQLITE MESSAGE; ADVICE". Returns -1. */
int db_fail(store *st, mt_error **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Refuse a row without `what` (a bug of the caller). Returns -1. */
int db_missing(store *st, mt_error **err, const char *what);
/* Refuse a value above SQLite's length limit before binding it, with the sizes. */
int db_check_len(store *st, size_t len, mt_error **err);
/* The prepared statement id, reset and unbound; NULL with *err. Borrowed from st. */
sqlite3_stmt *db_stmt(store *st, int id, mt_error **err);
/* A snapshot for multi-step reads (rows, then their values). Returns st or NULL with *err. */
store *db_read_begin(store *st, mt_error **err);
/* Bind a value; zero length binds an empty blob (a NULL pointer would bind SQL NULL). */
int db_bind_value(store *st, sqlite3_stmt *s, int i, const void *data, size_t len, mt_error **err);
/* Read the len-byte value at table.column, row rowid, into a new buffer (never NULL, even for
 * len 0). *blob is a handle kept across rows of the same table. */
int db_value_read(store *st, sqlite3_blob **blob, const char *table, const char *column,
                  int64_t rowid, size_t len, uint8_t **out, mt_error **err);

#endif
