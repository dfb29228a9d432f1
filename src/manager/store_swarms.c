/* store_swarms.c - the store's swarms (and their removal with everything they have), nodes and node
 * bindings; see store.h and store.c. */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "store_impl.h"

/* ---- swarms ---- */

int store_swarm_create(store *st, const char *id, const char *name, int64_t now_ms, mt_error **err)
{
    if (!id)
        return db_missing(st, err, "a swarm id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_SWARM_CREATE, err);
    if (!s)
        return -1;
    bind_str(s, 1, id);
    bind_str(s, 2, name ? name : "");
    sqlite3_bind_int64(s, 3, now_ms);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return mt_error_set(err, MT_ERR_EXISTS,
                            "the manager's store %s already has a swarm %s; give the new swarm "
                            "another id",
                            st->path, id);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, "save the new swarm %s", id);
    return 0;
}

int store_swarm_update(store *st, const char *id, const char *status, const char *detail,
                       uint32_t iteration, int64_t now_ms, mt_error **err)
{
    if (!id)
        return db_missing(st, err, "a swarm id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_SWARM_UPDATE, err);
    if (!s)
        return -1;
    bind_str(s, 1, id);
    bind_str(s, 2, status);
    bind_str(s, 3, detail);
    sqlite3_bind_int64(s, 4, iteration);
    sqlite3_bind_int64(s, 5, now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "update swarm %s", id);
    if (sqlite3_changes(st->db) == 0)
        return mt_error_set(err, MT_ERR_NOTFOUND,
                            "the manager's store %s has no swarm %s; list the swarms to find "
                            "its id",
                            st->path, id);
    return 0;
}

static void swarm_row(sqlite3_stmt *s, store_swarm *w)
{
    w->id = col_str(s, 0);
    w->name = col_str(s, 1);
    w->status = col_str(s, 2);
    w->detail = col_str(s, 3);
    w->iteration = (uint32_t)sqlite3_column_int64(s, 4);
    w->created_ms = sqlite3_column_int64(s, 5);
    w->updated_ms = sqlite3_column_int64(s, 6);
}

int store_swarm_list(store *st, store_swarm **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_SWARM_LIST, err);
    if (!s)
        return -1;
    store_swarm *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        swarm_row(s, ROWS_PUSH(out, count, cap));
    if (rc != SQLITE_DONE) {
        store_swarms_free(out, count);
        return db_fail(st, err, "list the swarms");
    }
    *rows = out;
    *n = count;
    return 0;
}

int store_swarm_get(store *st, const char *id, store_swarm *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    if (!id)
        return 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_SWARM_GET, err);
    if (!s)
        return -1;
    bind_str(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        swarm_row(s, out);
        return 1;
    }
    if (rc != SQLITE_DONE)
        return db_fail(st, err, "read swarm %s", id);
    return 0;
}

void store_swarm_clear(store_swarm *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->name);
    free(s->status);
    free(s->detail);
    memset(s, 0, sizeof(*s));
}

void store_swarms_free(store_swarm *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_swarm_clear(&rows[i]);
    free(rows);
}

int store_swarm_remove(store *st, const char *id, mt_error **err)
{
    if (!id)
        return 0;
    LOCK_STORE(st);
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "start removing swarm %s", id);
    int removed = 0;
    for (int i = 0; i < 5; i++) {
        cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_SWARM_REMOVE + i, err);
        if (!s) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        bind_str(s, 1, id);
        if (sqlite3_step(s) != SQLITE_DONE) {
            db_fail(st, err, "remove swarm %s", id);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        if (i == 0)
            removed = sqlite3_changes(st->db) > 0;
    }
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(st, err, "remove swarm %s", id);
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return removed;
}

/* ---- nodes ---- */

int store_node_register(store *st, const store_node *n, int64_t now_ms, mt_error **err)
{
    if (!n || !n->id)
        return db_missing(st, err, "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_NODE_REGISTER, err);
    if (!s)
        return -1;
    bind_str(s, 1, n->id);
    bind_str(s, 2, n->hostname ? n->hostname : "");
    bind_str(s, 3, n->platform ? n->platform : "");
    bind_str(s, 4, n->datasets); /* NULL keeps what a previous registration had */
    sqlite3_bind_int64(s, 5, now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "register node %s", n->id);
    return 0;
}

static int node_not_found(store *st, const char *id, mt_error **err)
{
    return mt_error_set(err, MT_ERR_NOTFOUND,
                        "the manager's store %s has no node %s; the node must register first",
                        st->path, id);
}

int store_node_set_datasets(store *st, const char *id, const char *datasets, mt_error **err)
{
    if (!id)
        return db_missing(st, err, "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_NODE_DATASETS, err);
    if (!s)
        return -1;
    bind_str(s, 1, id);
    bind_str(s, 2, datasets ? datasets : "");
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save the datasets of node %s", id);
    return sqlite3_changes(st->db) ? 0 : node_not_found(st, id, err);
}

int store_node_set_status(store *st, const char *id, const char *status, int64_t now_ms,
                          mt_error **err)
{
    if (!id || !status)
        return db_missing(st, err, id ? "a node status" : "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_NODE_STATUS, err);
    if (!s)
        return -1;
    bind_str(s, 1, id);
    bind_str(s, 2, status);
    sqlite3_bind_int64(s, 3, now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save the status of node %s", id);
    return sqlite3_changes(st->db) ? 0 : node_not_found(st, id, err);
}

int store_node_list(store *st, store_node **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_NODE_LIST, err);
    if (!s)
        return -1;
    store_node *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_node *r = ROWS_PUSH(out, count, cap);
        r->id = col_str(s, 0);
        r->hostname = col_str(s, 1);
        r->platform = col_str(s, 2);
        r->datasets = col_str(s, 3);
        r->status = col_str(s, 4);
        r->registered_ms = sqlite3_column_int64(s, 5);
        r->last_seen_ms = sqlite3_column_int64(s, 6);
    }
    if (rc != SQLITE_DONE) {
        store_nodes_free(out, count);
        return db_fail(st, err, "list the nodes");
    }
    *rows = out;
    *n = count;
    return 0;
}

void store_nodes_free(store_node *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].id);
        free(rows[i].hostname);
        free(rows[i].platform);
        free(rows[i].datasets);
        free(rows[i].status);
    }
    free(rows);
}

/* ---- node bindings ---- */

int store_binding_set(store *st, const char *node, const char *subject, int64_t now_ms,
                      mt_error **err)
{
    if (!node || !subject)
        return db_missing(st, err, node ? "a token subject" : "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_BINDING_SET, err);
    if (!s)
        return -1;
    bind_str(s, 1, node);
    bind_str(s, 2, subject);
    sqlite3_bind_int64(s, 3, now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save which token node %s acts for", node);
    return 0;
}

int store_binding_list(store *st, store_binding **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_BINDING_LIST, err);
    if (!s)
        return -1;
    store_binding *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_binding *r = ROWS_PUSH(out, count, cap);
        r->node = col_str(s, 0);
        r->subject = col_str(s, 1);
        r->bound_ms = sqlite3_column_int64(s, 2);
    }
    if (rc != SQLITE_DONE) {
        store_bindings_free(out, count);
        return db_fail(st, err, "list which token each node acts for");
    }
    *rows = out;
    *n = count;
    return 0;
}

void store_bindings_free(store_binding *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].node);
        free(rows[i].subject);
    }
    free(rows);
}
