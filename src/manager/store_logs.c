/* store_logs.c - task logs and the errors nodes report, in the store; see store.h and store.c. */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "store_impl.h"

/* ---- task logs ---- */

int store_log_add(store *st, const char *swarm, const char *node, const char *task,
                  uint32_t iteration, uint32_t circular, int64_t ts_ms, const char *text,
                  size_t len, mt_error **err)
{
    if (!text && len)
        return db_missing(st, err, "the log text");
    LOCK_STORE(st);
    if (db_check_len(st, len, err) < 0)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_LOG_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    bind_str(s, 2, node ? node : "");
    bind_str(s, 3, task ? task : "");
    sqlite3_bind_int64(s, 4, iteration);
    sqlite3_bind_int64(s, 5, circular);
    sqlite3_bind_int64(s, 6, ts_ms);
    if (db_bind_value(st, s, 7, text, len, err) < 0)
        return -1;
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save the log of task %s on node %s", task ? task : "",
                       node ? node : "");
    return 0;
}

/* Collect the rows of a task_logs query (LOG_COLS). */
static int logs_collect(store *st, sqlite3_stmt *s, store_log **rows, size_t *n, mt_error **err)
{
    store_log *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_log *r = ROWS_PUSH(out, count, cap);
        r->swarm = col_str(s, 0);
        r->node = col_str(s, 1);
        r->task = col_str(s, 2);
        r->iteration = (uint32_t)sqlite3_column_int64(s, 3);
        r->circular = (uint32_t)sqlite3_column_int64(s, 4);
        r->ts_ms = sqlite3_column_int64(s, 5);
        r->seq = sqlite3_column_int64(s, 7);
        const void *text = sqlite3_column_blob(s, 6);
        r->len = (size_t)sqlite3_column_bytes(s, 6);
        r->text = xmalloc(r->len + 1);
        if (r->len)
            memcpy(r->text, text, r->len);
        r->text[r->len] = '\0';
    }
    if (rc != SQLITE_DONE) {
        store_logs_free(out, count);
        return db_fail(st, err, "list the task logs");
    }
    *rows = out;
    *n = count;
    return 0;
}

int store_log_list(store *st, const char *swarm, const char *node, const char *task,
                   store_log **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    int variant = (swarm ? 1 : 0) | (node ? 2 : 0) | (task ? 4 : 0);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_LOG_LIST + variant, err);
    if (!s)
        return -1;
    if (swarm)
        bind_str(s, 1, swarm);
    if (node)
        bind_str(s, 2, node);
    if (task)
        bind_str(s, 3, task);
    return logs_collect(st, s, rows, n, err);
}

int store_log_after(store *st, const char *swarm, int64_t after_seq, store_log **rows, size_t *n,
                    mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_LOG_AFTER, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    sqlite3_bind_int64(s, 2, after_seq);
    return logs_collect(st, s, rows, n, err);
}

int store_log_search(store *st, const store_log_filter *f, store_log **rows, size_t *n,
                     mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_LOG_SEARCH, err);
    if (!s)
        return -1;
    bind_str(s, 1, f->swarm ? f->swarm : "");
    bind_str(s, 2, f->node ? f->node : "");
    sqlite3_bind_int64(s, 3, f->iteration);
    sqlite3_bind_int64(s, 4, f->after_seq);
    bind_str(s, 5, f->text ? f->text : "");
    sqlite3_bind_int64(s, 6, f->limit > 0 ? f->limit : -1);
    return logs_collect(st, s, rows, n, err);
}

int store_log_index(store *st, const char *swarm, int64_t iteration, store_log **rows, size_t *n,
                    mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_LOG_INDEX, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    sqlite3_bind_int64(s, 2, iteration);
    return logs_collect(st, s, rows, n, err);
}

int store_log_rounds(store *st, const char *swarm, int64_t after_seq, store_round **rows, size_t *n,
                     mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s =
        db_stmt(st, after_seq > 0 ? S_LOG_ROUNDS_AFTER : S_LOG_ROUNDS, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    sqlite3_bind_int64(s, 2, after_seq > 0 ? after_seq : -1);
    store_round *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_round *r = ROWS_PUSH(out, count, cap);
        r->iteration = (uint32_t)sqlite3_column_int64(s, 0);
        r->start_ms = sqlite3_column_int64(s, 1);
        r->end_ms = sqlite3_column_int64(s, 2);
        r->logs = sqlite3_column_int64(s, 3);
        r->last_seq = sqlite3_column_int64(s, 4);
    }
    if (rc != SQLITE_DONE) {
        free(out);
        return db_fail(st, err, "summarise the task logs");
    }
    *rows = out;
    *n = count;
    return 0;
}

void store_logs_free(store_log *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].swarm);
        free(rows[i].node);
        free(rows[i].task);
        free(rows[i].text);
    }
    free(rows);
}

/* ---- errors ---- */

int store_error_add(store *st, const store_errrow *e, mt_error **err)
{
    if (!e)
        return db_missing(st, err, "the error");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_ERROR_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, e->node ? e->node : "");
    bind_str(s, 2, e->swarm ? e->swarm : "");
    bind_str(s, 3, e->task ? e->task : "");
    sqlite3_bind_int64(s, 4, e->iteration);
    sqlite3_bind_int64(s, 5, e->circular);
    sqlite3_bind_int(s, 6, e->error_id);
    bind_str(s, 7, e->content ? e->content : "");
    sqlite3_bind_int64(s, 8, e->ts_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save an error reported by node %s", e->node ? e->node : "");
    return 0;
}

int store_error_list(store *st, const char *swarm, store_errrow **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_ERROR_LIST + (swarm ? 1 : 0), err);
    if (!s)
        return -1;
    if (swarm)
        bind_str(s, 1, swarm);
    store_errrow *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_errrow *r = ROWS_PUSH(out, count, cap);
        r->node = col_str(s, 0);
        r->swarm = col_str(s, 1);
        r->task = col_str(s, 2);
        r->iteration = (uint32_t)sqlite3_column_int64(s, 3);
        r->circular = (uint32_t)sqlite3_column_int64(s, 4);
        r->error_id = sqlite3_column_int(s, 5);
        r->content = col_str(s, 6);
        r->ts_ms = sqlite3_column_int64(s, 7);
    }
    if (rc != SQLITE_DONE) {
        store_errors_free(out, count);
        return db_fail(st, err, "list the errors");
    }
    *rows = out;
    *n = count;
    return 0;
}

void store_errors_free(store_errrow *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].node);
        free(rows[i].swarm);
        free(rows[i].task);
        free(rows[i].content);
    }
    free(rows);
}
