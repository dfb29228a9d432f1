/* store_objects.c - objects of the user side in the store: (kind, id) -> a short text and a value
 * (users, revoked tokens, modules, graphs, run states); see store.h and store.c. */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "store_impl.h"

int store_object_put(store *st, const char *kind, const char *id, const char *meta,
                     const void *data, size_t len, int64_t now_ms, bool replace, mt_error **err)
{
    if (!kind || !id)
        return db_missing(st, err, kind ? "an object id" : "an object kind");
    LOCK_STORE(st);
    if (db_check_len(st, len, err) < 0)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, replace ? S_OBJECT_PUT : S_OBJECT_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, kind);
    bind_str(s, 2, id);
    bind_str(s, 3, meta ? meta : "");
    sqlite3_bind_int64(s, 4, now_ms);
    if (db_bind_value(st, s, 5, data, len, err) < 0)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return mt_error_set(err, MT_ERR_EXISTS, "the manager's store %s already has a %s '%s'",
                            st->path, kind, id);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, "save the %s '%s'", kind, id);
    return 0;
}

int store_object_get(store *st, const char *kind, const char *id, bool with_data, store_object *out,
                     mt_error **err)
{
    memset(out, 0, sizeof(*out));
    if (!kind || !id)
        return 0;
    LOCK_STORE(st);
    cleanup_read store *txn = db_read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_OBJECT_GET, err);
    if (!s)
        return -1;
    cleanup_blob sqlite3_blob *blob = NULL;
    bind_str(s, 1, kind);
    bind_str(s, 2, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_fail(st, err, "read the %s '%s'", kind, id);
    int64_t rowid = sqlite3_column_int64(s, 0);
    size_t len = (size_t)sqlite3_column_int64(s, 3);
    uint8_t *data = NULL;
    if (with_data && db_value_read(st, &blob, "objects", "data", rowid, len, &data, err) < 0)
        return mt_error_wrap(err, "reading the %s '%s'", kind, id);
    out->kind = xstrdup(kind);
    out->id = xstrdup(id);
    out->meta = col_str(s, 1);
    out->created_ms = sqlite3_column_int64(s, 2);
    out->data = data;
    out->len = len;
    return 1;
}

int store_object_list(store *st, const char *kind, store_object **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_OBJECT_LIST, err);
    if (!s)
        return -1;
    bind_str(s, 1, kind);
    store_object *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_object *o = ROWS_PUSH(out, count, cap);
        o->kind = xstrdup(kind);
        o->id = col_str(s, 0);
        o->meta = col_str(s, 1);
        o->created_ms = sqlite3_column_int64(s, 2);
        o->len = (size_t)sqlite3_column_int64(s, 3);
    }
    if (rc != SQLITE_DONE) {
        store_objects_free(out, count);
        return db_fail(st, err, "list the %s objects", kind);
    }
    *rows = out;
    *n = count;
    return 0;
}

int store_object_delete(store *st, const char *kind, const char *id, mt_error **err)
{
    if (!kind || !id)
        return 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = db_stmt(st, S_OBJECT_DELETE, err);
    if (!s)
        return -1;
    bind_str(s, 1, kind);
    bind_str(s, 2, id);
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "delete the %s '%s'", kind, id);
    return sqlite3_changes(st->db) > 0 ? 1 : 0;
}

void store_object_clear(store_object *o)
{
    if (!o)
        return;
    free(o->kind);
    free(o->id);
    free(o->meta);
    free(o->data);
    memset(o, 0, sizeof(*o));
}

void store_objects_free(store_object *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_object_clear(&rows[i]);
    free(rows);
}
