/* store_results.c - the values of swarms in the store: globals (per swarm and tag, last write wins)
 * and results (appended), written and read whole; see store.h and store.c. */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "store_impl.h"

/* ---- globals ---- */

/* Roll back the transaction begun in store_global_set unless it was committed. */
static void txn_end(store **pst)
{
    if (*pst && !sqlite3_get_autocommit((*pst)->db))
        sqlite3_exec((*pst)->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_global_set(store *st, const char *swarm, const char *tag, const void *data, size_t len,
                     mt_error **err)
{
    if (!swarm || !tag)
        return db_missing(st, err, swarm ? "a tag" : "a swarm id");
    LOCK_STORE(st);
    if (db_check_len(st, len, err) < 0)
        return -1;
    /* The value is written into its row with the incremental blob API: SQLite never builds a
     * record holding a copy of it (a 300 MiB global costs no second 300 MiB here). One
     * transaction, so a reader never sees the zeros. */
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "start saving the global \"%s\" of swarm %s", tag, swarm);
    __attribute__((cleanup(txn_end))) store *txn = st;
    int64_t rowid = 0;
    {
        cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_GLOBAL_SET, err);
        if (!s)
            return -1;
        bind_str(s, 1, swarm);
        bind_str(s, 2, tag);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)len);
        if (sqlite3_step(s) != SQLITE_DONE)
            return db_fail(st, err, "save the global \"%s\" of swarm %s", tag, swarm);
    }
    {
        cleanup_stmt sqlite3_stmt *g = db_stmt(st, S_GLOBAL_GET, err);
        if (!g)
            return -1;
        bind_str(g, 1, swarm);
        bind_str(g, 2, tag);
        if (sqlite3_step(g) != SQLITE_ROW)
            return db_fail(st, err, "save the global \"%s\" of swarm %s", tag, swarm);
        rowid = sqlite3_column_int64(g, 0);
    }
    if (len) {
        cleanup_blob sqlite3_blob *blob = NULL;
        if (sqlite3_blob_open(st->db, "main", "globals", "data", rowid, 1, &blob) != SQLITE_OK)
            return db_fail(st, err, "write the global \"%s\" of swarm %s", tag, swarm);
        for (size_t off = 0; off < len;) {
            size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
            if (sqlite3_blob_write(blob, (const uint8_t *)data + off, (int)chunk, (int)off) !=
                SQLITE_OK)
                return db_fail(st, err, "write the global \"%s\" of swarm %s", tag, swarm);
            off += chunk;
        }
    }
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "save the global \"%s\" of swarm %s", tag, swarm);
    (void)txn;
    return 0;
}

int store_global_get(store *st, const char *swarm, const char *tag, uint8_t **data, size_t *len,
                     mt_error **err)
{
    *data = NULL;
    *len = 0;
    if (!swarm || !tag)
        return 0;
    LOCK_STORE(st);
    cleanup_read store *txn = db_read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_GLOBAL_GET, err);
    if (!s)
        return -1;
    cleanup_blob sqlite3_blob *blob = NULL;
    bind_str(s, 1, swarm);
    bind_str(s, 2, tag);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_fail(st, err, "read the global \"%s\" of swarm %s", tag, swarm);
    int64_t rowid = sqlite3_column_int64(s, 0);
    size_t n = (size_t)sqlite3_column_int64(s, 1);
    if (db_value_read(st, &blob, "globals", "data", rowid, n, data, err) < 0)
        return mt_error_wrap(err, "reading the global \"%s\" of swarm %s", tag, swarm);
    *len = n;
    return 1;
}

int store_global_list(store *st, const char *swarm, char ***tags, size_t **lens, size_t *n,
                      mt_error **err)
{
    *tags = NULL;
    *lens = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_GLOBAL_LIST, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    char **t = xcalloc(1, sizeof(char *));
    size_t *l = NULL;
    size_t count = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        t = xrealloc(t, (count + 2) * sizeof(char *));
        l = xrealloc(l, (count + 1) * sizeof(size_t));
        t[count] = col_str(s, 0);
        l[count] = (size_t)sqlite3_column_int64(s, 1);
        t[++count] = NULL;
    }
    if (rc != SQLITE_DONE) {
        mem_free_strv(&t);
        free(l);
        return db_fail(st, err, "list the globals of swarm %s", swarm);
    }
    *tags = t;
    *lens = l;
    *n = count;
    return 0;
}

/* ---- results ---- */

int store_result_add(store *st, const char *swarm, const char *task, const char *node,
                     uint32_t iteration, const char *tag, const char *request, const void *data,
                     size_t len, int64_t now_ms, mt_error **err)
{
    if (!swarm || !node || !tag)
        return db_missing(st, err, !swarm ? "a swarm id" : !node ? "a node id" : "a tag");
    LOCK_STORE(st);
    if (db_check_len(st, len, err) < 0)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_RESULT_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    bind_str(s, 2, task ? task : "");
    bind_str(s, 3, node);
    sqlite3_bind_int64(s, 4, iteration);
    bind_str(s, 5, tag);
    sqlite3_bind_int64(s, 6, now_ms);
    if (db_bind_value(st, s, 7, data, len, err) < 0)
        return -1;
    bind_str(s, 8, request); /* NULL binds SQL NULL */
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save the result \"%s\" of node %s in swarm %s", tag, node, swarm);
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

/* Step s (RESULT_COLS, and perhaps the data column after them) to the end, then read each
 * row's value if with_data. A statement that selects the data column gives it with the row
 * (small values). Needs st->mu and a read transaction. *rows owned. */
static int results_collect(store *st, sqlite3_stmt *s, bool with_data, store_result **rows,
                           size_t *n, mt_error **err)
{
    store_result *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_result *r = ROWS_PUSH(out, count, cap);
        r->seq = sqlite3_column_int64(s, 0);
        r->swarm = col_str(s, 1);
        r->task = col_str(s, 2);
        r->node = col_str(s, 3);
        r->tag = col_str(s, 4);
        r->iteration = (uint32_t)sqlite3_column_int64(s, 5);
        r->created_ms = sqlite3_column_int64(s, 6);
        r->len = (size_t)sqlite3_column_int64(s, 7);
        if (sqlite3_column_count(s) > 8) {
            const void *data = sqlite3_column_blob(s, 8);
            r->data = xmalloc(r->len ? r->len : 1);
            if (r->len)
                memcpy(r->data, data, r->len);
        }
    }
    if (rc != SQLITE_DONE) {
        store_results_free(out, count);
        return db_fail(st, err, "read the results");
    }
    if (with_data) {
        cleanup_blob sqlite3_blob *blob = NULL;
        for (size_t i = 0; i < count; i++)
            if (db_value_read(st, &blob, "results", "data", out[i].seq, out[i].len, &out[i].data,
                              err) < 0) {
                store_results_free(out, count);
                return -1;
            }
    }
    *rows = out;
    *n = count;
    return 0;
}

int store_result_query(store *st, const char *swarm, const char *tag, uint32_t iteration,
                       int64_t size, int method, store_result **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    if (!swarm || !tag)
        return 0;
    int64_t limit = size <= 0 || size >= (INT64_C(1) << 31) ? -1 : size;
    if (method == 1) /* LAST */
        limit = 1;
    LOCK_STORE(st);
    cleanup_read store *txn = db_read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_RESULT_QUERY, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    bind_str(s, 2, tag);
    sqlite3_bind_int64(s, 3, iteration);
    sqlite3_bind_int64(s, 4, limit);
    if (results_collect(st, s, true, rows, n, err) < 0)
        return mt_error_wrap(err, "querying the results \"%s\" of swarm %s, iteration %u", tag,
                             swarm, iteration);
    return 0;
}

int store_result_list(store *st, const char *swarm, const char *tag, int64_t iteration,
                      bool with_data, store_result **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    if (!swarm)
        return 0;
    LOCK_STORE(st);
    cleanup_read store *txn = db_read_begin(st, err);
    if (!txn)
        return -1;
    int variant = (tag ? 1 : 0) | (iteration >= 0 ? 2 : 0);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_RESULT_LIST + variant, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    if (tag)
        bind_str(s, 2, tag);
    if (iteration >= 0)
        sqlite3_bind_int64(s, 3, iteration);
    if (results_collect(st, s, with_data, rows, n, err) < 0)
        return mt_error_wrap(err, "listing the results of swarm %s", swarm);
    return 0;
}

int store_result_after(store *st, const char *swarm, const char *tag, int64_t after_seq,
                       store_result **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    if (!swarm || !tag)
        return 0;
    LOCK_STORE(st);
    cleanup_read store *txn = db_read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_RESULT_AFTER, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    bind_str(s, 2, tag);
    sqlite3_bind_int64(s, 3, after_seq);
    if (results_collect(st, s, true, rows, n, err) < 0)
        return mt_error_wrap(err, "listing the results of swarm %s", swarm);
    return 0;
}

int store_result_small(store *st, const char *swarm, const char *tag, int64_t after_seq,
                       size_t max_len, store_result **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, tag ? S_RESULT_SMALL_TAG : S_RESULT_SMALL, err);
    if (!s)
        return -1;
    if (tag)
        bind_str(s, 4, tag);
    bind_str(s, 1, swarm ? swarm : "");
    sqlite3_bind_int64(s, 2, after_seq);
    sqlite3_bind_int64(s, 3, max_len > INT64_MAX ? INT64_MAX : (sqlite3_int64)max_len);
    /* small values: read with their row (the data column), not as blobs one by one */
    if (results_collect(st, s, false, rows, n, err) < 0)
        return mt_error_wrap(err, "listing the results of swarm %s", swarm ? swarm : "");
    return 0;
}

int store_result_delete(store *st, const char *swarm, const char *tag, const char *node,
                        const char *task, int64_t iteration, mt_error **err)
{
    if (!swarm || !tag)
        return db_missing(st, err, swarm ? "a tag" : "a swarm id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_RESULT_DELETE, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    bind_str(s, 2, tag);
    if (node)
        bind_str(s, 3, node);
    if (task)
        bind_str(s, 4, task);
    if (iteration >= 0)
        sqlite3_bind_int64(s, 5, iteration);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "delete results of swarm %s", swarm);
    return sqlite3_changes(st->db);
}

void store_results_free(store_result *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].swarm);
        free(rows[i].task);
        free(rows[i].node);
        free(rows[i].tag);
        free(rows[i].data);
    }
    free(rows);
}
