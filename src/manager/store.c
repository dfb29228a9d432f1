/* store.c - the manager's durable store (SQLite); see store.h.
 *
 * One connection per store, opened with SQLITE_OPEN_FULLMUTEX, and our own mutex (st->mu)
 * held for the whole of every public function: a function runs several SQLite calls (bind,
 * step, read a blob, read the error message) that must not interleave with another thread's.
 * Statements are prepared once, on first use, and kept until store_close; every user value
 * is a bound parameter. Values live in BLOB columns placed last in their rows so that listing
 * metadata never touches a value's overflow pages, and are read into the caller's buffer with
 * the incremental blob API (one copy, not two, for values of hundreds of MiB).
 *
 * The schema is versioned with PRAGMA user_version: schema_steps[i] migrates version i to
 * i + 1, so a later manager appends a step and older files are upgraded on open.
 */
#include "store.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

/* ---- schema ---- */

static const char *const schema_steps[] = {
    /* 0 -> 1 */
    "CREATE TABLE swarms ("
    " id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,"
    " detail TEXT NOT NULL, iteration INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE nodes ("
    " id TEXT PRIMARY KEY NOT NULL, hostname TEXT NOT NULL, platform TEXT NOT NULL,"
    " datasets TEXT NOT NULL, status TEXT NOT NULL, registered_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL);"
    "CREATE TABLE globals ("
    " id INTEGER PRIMARY KEY, swarm TEXT NOT NULL, tag TEXT NOT NULL, data BLOB NOT NULL,"
    " UNIQUE (swarm, tag));"
    "CREATE TABLE results ("
    " seq INTEGER PRIMARY KEY, swarm TEXT NOT NULL, tag TEXT NOT NULL,"
    " iteration INTEGER NOT NULL, node TEXT NOT NULL, task TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, data BLOB NOT NULL);"
    /* GetTaskResult: equality on the first four columns, then max(seq) per node. */
    "CREATE INDEX results_by_round ON results (swarm, tag, iteration, node, seq);"
    "CREATE TABLE task_logs ("
    " id INTEGER PRIMARY KEY, swarm TEXT NOT NULL, node TEXT NOT NULL, task TEXT NOT NULL,"
    " iteration INTEGER NOT NULL, circular INTEGER NOT NULL, ts_ms INTEGER NOT NULL,"
    " text BLOB NOT NULL);"
    "CREATE INDEX task_logs_by_swarm ON task_logs (swarm, node, task);"
    "CREATE TABLE task_errors ("
    " id INTEGER PRIMARY KEY, node TEXT NOT NULL, swarm TEXT NOT NULL, task TEXT NOT NULL,"
    " iteration INTEGER NOT NULL, circular INTEGER NOT NULL, error_id INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL, content TEXT NOT NULL);"
    "CREATE INDEX task_errors_by_swarm ON task_errors (swarm);",
    /* 1 -> 2: the token subject each node id acts for (node_service.c); a store of version 1
     * has none yet, and every node binds again at its next registration. */
    "CREATE TABLE node_bindings ("
    " node TEXT PRIMARY KEY NOT NULL, subject TEXT NOT NULL, bound_ms INTEGER NOT NULL);",
    /* 2 -> 3: the user side (user_service.c): users, revoked user tokens, uploaded modules,
     * swarm graphs and the cluster id, as objects of a kind with an id, a short text and a
     * value. */
    "CREATE TABLE objects ("
    " kind TEXT NOT NULL, id TEXT NOT NULL, meta TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY (kind, id));",
    /* 3 -> 4: the request id a task's runtime gives an AddTaskResult (manta-request-id), so a
     * call repeated after the manager was lost in its middle is stored once (node_service.c). */
    "ALTER TABLE results ADD COLUMN request TEXT;"
    "CREATE UNIQUE INDEX results_by_request ON results (swarm, node, request)"
    " WHERE request IS NOT NULL;",
};
#define SCHEMA_VERSION ((int)ARRAY_LEN(schema_steps))

/* ---- statements ---- */

#define RESULT_COLS "seq, swarm, task, node, tag, iteration, created_ms, length(data)"
#define LOG_COLS    "swarm, node, task, iteration, circular, ts_ms, text, id"
#define ERROR_COLS  "node, swarm, task, iteration, circular, error_id, content, ts_ms"

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
    S_COUNT,
};

static const char *const fixed_sql[] = {
    [S_SWARM_CREATE] = "INSERT INTO swarms (id, name, status, detail, iteration, created_ms,"
                       " updated_ms) VALUES (?1, ?2, 'PENDING', '', 0, ?3, ?3)",
    [S_SWARM_UPDATE] = "UPDATE swarms SET status = coalesce(?2, status),"
                       " detail = coalesce(?3, detail), iteration = ?4, updated_ms = ?5"
                       " WHERE id = ?1",
    [S_SWARM_LIST] = "SELECT id, name, status, detail, iteration, created_ms, updated_ms"
                     " FROM swarms ORDER BY created_ms DESC, rowid DESC",
    [S_SWARM_GET] = "SELECT id, name, status, detail, iteration, created_ms, updated_ms"
                    " FROM swarms WHERE id = ?1",
    [S_NODE_REGISTER] =
        "INSERT INTO nodes (id, hostname, platform, datasets, status, registered_ms,"
        " last_seen_ms) VALUES (?1, ?2, ?3, coalesce(?4, ''), 'CONNECTED', ?5, ?5)"
        " ON CONFLICT (id) DO UPDATE SET hostname = ?2, platform = ?3,"
        " datasets = coalesce(?4, datasets), status = 'CONNECTED', registered_ms = ?5,"
        " last_seen_ms = ?5",
    [S_NODE_DATASETS] = "UPDATE nodes SET datasets = ?2 WHERE id = ?1",
    [S_NODE_STATUS] = "UPDATE nodes SET status = ?2, last_seen_ms = ?3 WHERE id = ?1",
    [S_NODE_LIST] = "SELECT id, hostname, platform, datasets, status, registered_ms,"
                    " last_seen_ms FROM nodes ORDER BY id",
    [S_BINDING_SET] = "INSERT INTO node_bindings (node, subject, bound_ms) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT (node) DO UPDATE SET subject = ?2, bound_ms = ?3",
    [S_BINDING_LIST] = "SELECT node, subject, bound_ms FROM node_bindings ORDER BY node",
    /* room for the value (a zeroblob costs no memory), then written in place (global_set) */
    [S_GLOBAL_SET] = "INSERT INTO globals (swarm, tag, data) VALUES (?1, ?2, zeroblob(?3))"
                     " ON CONFLICT (swarm, tag) DO UPDATE SET data = excluded.data",
    [S_GLOBAL_GET] = "SELECT id, length(data) FROM globals WHERE swarm = ?1 AND tag = ?2",
    /* A request id already stored for (swarm, node) is a repeat: nothing is added. */
    [S_RESULT_ADD] = "INSERT INTO results (swarm, task, node, iteration, tag, created_ms, data,"
                     " request) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
    /* Each node's most recent row of the round, newest first, LIMIT -1 = all. */
    [S_RESULT_QUERY] = "SELECT " RESULT_COLS " FROM results AS r"
                       " WHERE swarm = ?1 AND tag = ?2 AND iteration = ?3"
                       " AND seq = (SELECT max(seq) FROM results WHERE swarm = ?1 AND tag = ?2"
                       " AND iteration = ?3 AND node = r.node)"
                       " ORDER BY seq DESC LIMIT ?4",
    /* A delivery the node repeats (it crashed before it knew the first went through) carries
     * the same text: stored once. (Not keyed on the timestamp: a node killed between its
     * upload and keeping the fact collects the adopted task's output again, kept anew.) */
    [S_LOG_ADD] = "INSERT INTO task_logs (swarm, node, task, iteration, circular, ts_ms, text)"
                  " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM task_logs"
                  " WHERE swarm = ?1 AND node = ?2 AND task = ?3 AND iteration = ?4 AND"
                  " circular = ?5 AND text = ?7)",
    [S_OBJECT_PUT] = "INSERT INTO objects (kind, id, meta, created_ms, data)"
                     " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, id) DO UPDATE SET"
                     " meta = excluded.meta, data = excluded.data",
    [S_OBJECT_ADD] = "INSERT INTO objects (kind, id, meta, created_ms, data)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_OBJECT_GET] = "SELECT rowid, meta, created_ms, length(data) FROM objects"
                     " WHERE kind = ?1 AND id = ?2",
    [S_OBJECT_LIST] = "SELECT id, meta, created_ms, length(data) FROM objects WHERE kind = ?1"
                      " ORDER BY created_ms, rowid",
    [S_OBJECT_DELETE] = "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
    [S_SWARM_REMOVE] = "DELETE FROM swarms WHERE id = ?1",
    [S_SWARM_REMOVE + 1] = "DELETE FROM globals WHERE swarm = ?1",
    [S_SWARM_REMOVE + 2] = "DELETE FROM results WHERE swarm = ?1",
    [S_SWARM_REMOVE + 3] = "DELETE FROM task_logs WHERE swarm = ?1",
    [S_SWARM_REMOVE + 4] = "DELETE FROM task_errors WHERE swarm = ?1",
    /* tag, then optional node (?3), task (?4), iteration (?5): NULL = any */
    [S_RESULT_DELETE] = "DELETE FROM results WHERE swarm = ?1 AND tag = ?2"
                        " AND (?3 IS NULL OR node = ?3) AND (?4 IS NULL OR task = ?4)"
                        " AND (?5 IS NULL OR iteration = ?5)",
    [S_RESULT_AFTER] = "SELECT " RESULT_COLS " FROM results WHERE swarm = ?1 AND tag = ?2"
                       " AND seq > ?3 ORDER BY seq",
    [S_GLOBAL_LIST] = "SELECT tag, length(data) FROM globals WHERE swarm = ?1 ORDER BY tag",
    [S_LOG_AFTER] = "SELECT " LOG_COLS " FROM task_logs WHERE swarm = ?1 AND id > ?2 ORDER BY id",
    [S_ERROR_ADD] = "INSERT INTO task_errors (node, swarm, task, iteration, circular, error_id,"
                    " content, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
};

/* The text of statement id (owned). Filter fragments are constants; values stay bound. */
static char *stmt_sql(int id)
{
    if (id >= S_RESULT_LIST && id < S_RESULT_LIST + 4) {
        int m = id - S_RESULT_LIST;
        return xasprintf("SELECT " RESULT_COLS " FROM results WHERE swarm = ?1%s%s ORDER BY seq",
                         m & 1 ? " AND tag = ?2" : "", m & 2 ? " AND iteration = ?3" : "");
    }
    if (id >= S_LOG_LIST && id < S_LOG_LIST + 8) {
        int m = id - S_LOG_LIST;
        return xasprintf("SELECT " LOG_COLS " FROM task_logs WHERE 1%s%s%s ORDER BY ts_ms, id",
                         m & 1 ? " AND swarm = ?1" : "", m & 2 ? " AND node = ?2" : "",
                         m & 4 ? " AND task = ?3" : "");
    }
    if (id >= S_ERROR_LIST && id < S_ERROR_LIST + 2)
        return xasprintf("SELECT " ERROR_COLS " FROM task_errors%s ORDER BY ts_ms, id",
                         id - S_ERROR_LIST ? " WHERE swarm = ?1" : "");
    return xstrdup(fixed_sql[id]);
}

struct store {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[S_COUNT];
};

/* ---- errors ---- */

/* What to do about a failed SQLite call, by primary result code. */
static const char *advice(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return "free some space on the file system that holds it";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "another process keeps it locked; make sure only one manta_manager uses this "
               "file";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
        return "check the file and its directory exist and are writable by the manager";
    case SQLITE_IOERR:
        return "check the disk is healthy and the file is writable by the manager";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
    case SQLITE_SCHEMA:
        return "the file is damaged or is not a manager store; move it aside (the manager then "
               "starts a new one) or restore a backup";
    case SQLITE_TOOBIG:
        return "the value is larger than the store accepts; send a smaller value";
    case SQLITE_NOMEM:
        return "the machine is out of memory; free some or give the manager more";
    case SQLITE_CONSTRAINT:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return "this is a bug in the manager, please report it";
    default:
        return "check the file is a manager store and the disk is healthy";
    }
}

/* Set *err for the last failed SQLite call on st->db: "the manager's store PATH could not
 * WHAT: SQLITE MESSAGE; ADVICE". Returns -1. */
static int db_fail(store *st, mt_error **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int db_fail(store *st, mt_error **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *what = xvasprintf(fmt, ap);
    va_end(ap);
    int rc = sqlite3_extended_errcode(st->db);
    int code = (rc & 0xff) == SQLITE_CONSTRAINT ? MT_ERR_GENERIC : MT_ERR_IO;
    mt_error_set(err, code, "the manager's store %s could not %s: %s; %s", st->path, what,
                 sqlite3_errmsg(st->db), advice(rc));
    if (err && *err)
        (*err)->errnum = sqlite3_system_errno(st->db);
    return -1;
}

static int missing(store *st, mt_error **err, const char *what)
{
    return mt_error_set(err, MT_ERR_USAGE,
                        "the manager's store %s was asked to save a row without %s; this is a "
                        "bug in the manager, please report it",
                        st->path, what);
}

/* Refuse a value above SQLite's length limit before binding it, with the sizes. */
static int check_len(store *st, size_t len, mt_error **err)
{
    int max = sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1);
    if (len > (size_t)max)
        return mt_error_set(err, MT_ERR_GENERIC,
                            "the manager's store %s cannot keep a value of %zu bytes: it "
                            "accepts at most %d bytes per value; send a smaller value",
                            st->path, len, max);
    return 0;
}

/* ---- locking and statement helpers (the cleanup idiom) ---- */

static store *store_lock(store *st)
{
    pthread_mutex_lock(&st->mu);
    return st;
}

static void store_unlock(store **pst)
{
    if (*pst)
        pthread_mutex_unlock(&(*pst)->mu);
}

/* Hold st->mu until the end of the enclosing function. Declare first, so it is released
 * last, after the statements and transactions declared below it. */
#define LOCK_STORE(st)                                                                             \
    __attribute__((cleanup(store_unlock))) store *locked_ = store_lock(st);                        \
    (void)locked_

static void stmt_done(sqlite3_stmt **ps)
{
    if (*ps) {
        sqlite3_reset(*ps);
        sqlite3_clear_bindings(*ps);
    }
}
#define cleanup_stmt __attribute__((cleanup(stmt_done)))

/* End a read transaction begun with read_begin (no-op when none is open). */
static void read_end(store **pst)
{
    if (*pst && !sqlite3_get_autocommit((*pst)->db))
        sqlite3_exec((*pst)->db, "ROLLBACK", NULL, NULL, NULL);
}
#define cleanup_read __attribute__((cleanup(read_end)))

static void blob_done(sqlite3_blob **pb)
{
    if (*pb)
        sqlite3_blob_close(*pb);
}
#define cleanup_blob __attribute__((cleanup(blob_done)))

/* The prepared statement id, reset and unbound; NULL with *err. Borrowed from st. */
static sqlite3_stmt *stmt_get(store *st, int id, mt_error **err)
{
    if (!st->stmts[id]) {
        cleanup_free char *sql = stmt_sql(id);
        if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->stmts[id], NULL) !=
            SQLITE_OK)
            return db_fail(st, err, "prepare a query"), NULL;
    }
    return st->stmts[id];
}

/* A snapshot for multi-step reads (rows, then their values). Returns st or NULL with *err. */
static store *read_begin(store *st, mt_error **err)
{
    if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "start reading"), NULL;
    return st;
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Bind a value; zero length binds an empty blob (a NULL pointer would bind SQL NULL). */
static int bind_value(store *st, sqlite3_stmt *s, int i, const void *data, size_t len,
                      mt_error **err)
{
    int rc =
        len ? sqlite3_bind_blob64(s, i, data, len, SQLITE_STATIC) : sqlite3_bind_zeroblob(s, i, 0);
    if (rc != SQLITE_OK)
        return db_fail(st, err, "take a value of %zu bytes", len);
    return 0;
}

static char *col_str(sqlite3_stmt *s, int i)
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

/* Read the len-byte value at table.column, row rowid, into a new buffer (never NULL, even for
 * len 0). *blob is a handle kept across rows of the same table. Values can be hundreds of
 * MiB, so running out of memory is an error here, not an abort. */
static int value_read(store *st, sqlite3_blob **blob, const char *table, const char *column,
                      int64_t rowid, size_t len, uint8_t **out, mt_error **err)
{
    cleanup_free uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return mt_error_set(err, MT_ERR_IO,
                            "the manager's store %s could not read a value of %zu bytes: out "
                            "of memory; free some memory or give the manager more",
                            st->path, len);
    if (len) {
        int rc = *blob ? sqlite3_blob_reopen(*blob, rowid)
                       : sqlite3_blob_open(st->db, "main", table, column, rowid, 0, blob);
        if (rc != SQLITE_OK)
            return db_fail(st, err, "read a value from %s", table);
        if ((size_t)sqlite3_blob_bytes(*blob) != len)
            return mt_error_set(err, MT_ERR_IO,
                                "the manager's store %s changed a value while it was read; "
                                "make sure only one manta_manager uses this file",
                                st->path);
        for (size_t off = 0; off < len;) {
            size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
            if (sqlite3_blob_read(*blob, buf + off, (int)chunk, (int)off) != SQLITE_OK)
                return db_fail(st, err, "read a value from %s", table);
            off += chunk;
        }
    }
    *out = steal_ptr(buf);
    return 0;
}

/* ---- open and close ---- */

/* The reason a path cannot be opened, when it is about the directory (owned or NULL). */
static char *dir_problem(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return xstrdup("it is a directory; give the path of a file (it is created if missing)");
    cleanup_free char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    if (stat(dir, &sb) < 0)
        return xasprintf("its directory %s %s; create it or choose another path", dir,
                         errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return xasprintf("%s is not a directory; choose another path", dir);
    if (access(dir, W_OK | X_OK) < 0)
        return xasprintf("its directory %s is not writable by the manager (%s); fix its "
                         "permissions or choose another path",
                         dir, strerror(errno));
    return NULL;
}

static int user_version(store *st, int *version, mt_error **err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *version = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        db_fail(st, err, "be opened");
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Run the schema steps from the current version on, inside BEGIN IMMEDIATE. */
static int migrate_locked(store *st, mt_error **err)
{
    int version = 0;
    if (user_version(st, &version, err) < 0) /* another process may have done it meanwhile */
        return -1;
    for (int v = version; v < SCHEMA_VERSION; v++)
        if (sqlite3_exec(st->db, schema_steps[v], NULL, NULL, NULL) != SQLITE_OK)
            return db_fail(st, err, "upgrade its schema from version %d to %d", v, v + 1);
    /* A pragma takes no parameters; the version is our own constant. */
    cleanup_free char *set = xasprintf("PRAGMA user_version = %d", SCHEMA_VERSION);
    if (sqlite3_exec(st->db, set, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "record its schema version");
    return 0;
}

/* Bring the schema to SCHEMA_VERSION, in one transaction; refuse files from a newer manager. */
static int migrate(store *st, mt_error **err)
{
    int version = 0;
    if (user_version(st, &version, err) < 0)
        return -1;
    if (version > SCHEMA_VERSION)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the manager's store %s has schema version %d, written by a newer "
                            "manta_manager (this one knows up to version %d); run the newer "
                            "manager or choose another path",
                            st->path, version, SCHEMA_VERSION);
    if (version == SCHEMA_VERSION)
        return 0;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "be prepared for use");
    if (migrate_locked(st, err) < 0) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(st, err, "save its new schema");
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

store *store_open(const char *path, mt_error **err)
{
    store *st = xcalloc(1, sizeof(*st));
    st->path = xstrdup(path);
    pthread_mutex_init(&st->mu, NULL);
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        cleanup_free char *why = strcmp(path, ":memory:") ? dir_problem(path) : NULL;
        if (why)
            mt_error_set(err, MT_ERR_IO, "the manager's store %s could not be opened: %s", path,
                         why);
        else if (st->db)
            db_fail(st, err, "be opened");
        else
            mt_error_set(err, MT_ERR_IO,
                         "the manager's store %s could not be opened: out of memory", path);
        store_close(st);
        return NULL;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 10000);
    /* WAL: readers never wait for the writer; NORMAL: a commit is durable after the next
     * checkpoint, the database never corrupt; the WAL shrinks back to 64 MiB after a big value.
     * journal_mode answers "memory" for ":memory:", which is fine. */
    if (sqlite3_exec(st->db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     " PRAGMA journal_size_limit = 67108864;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        migrate(st, err) < 0) {
        if (err && !*err)
            db_fail(st, err, "be opened");
        store_close(st);
        return NULL;
    }
    return st;
}

void store_close(store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < ARRAY_LEN(st->stmts); i++)
        sqlite3_finalize(st->stmts[i]);
    if (st->db) {
        sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
        sqlite3_close(st->db);
    }
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st);
}

/* ---- swarms ---- */

int store_swarm_create(store *st, const char *id, const char *name, int64_t now_ms, mt_error **err)
{
    if (!id)
        return missing(st, err, "a swarm id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_SWARM_CREATE, err);
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
        return missing(st, err, "a swarm id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_SWARM_UPDATE, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_SWARM_LIST, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_SWARM_GET, err);
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

/* ---- nodes ---- */

int store_node_register(store *st, const store_node *n, int64_t now_ms, mt_error **err)
{
    if (!n || !n->id)
        return missing(st, err, "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_NODE_REGISTER, err);
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
        return missing(st, err, "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_NODE_DATASETS, err);
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
        return missing(st, err, id ? "a node status" : "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_NODE_STATUS, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_NODE_LIST, err);
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
        return missing(st, err, node ? "a token subject" : "a node id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_BINDING_SET, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_BINDING_LIST, err);
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
        return missing(st, err, swarm ? "a tag" : "a swarm id");
    LOCK_STORE(st);
    if (check_len(st, len, err) < 0)
        return -1;
    /* The value is written into its row with the incremental blob API: SQLite never builds a
     * record holding a copy of it (a 300 MiB global costs no second 300 MiB here). One
     * transaction, so a reader never sees the zeros. */
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "start saving the global \"%s\" of swarm %s", tag, swarm);
    __attribute__((cleanup(txn_end))) store *txn = st;
    int64_t rowid = 0;
    {
        cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_GLOBAL_SET, err);
        if (!s)
            return -1;
        bind_str(s, 1, swarm);
        bind_str(s, 2, tag);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)len);
        if (sqlite3_step(s) != SQLITE_DONE)
            return db_fail(st, err, "save the global \"%s\" of swarm %s", tag, swarm);
    }
    {
        cleanup_stmt sqlite3_stmt *g = stmt_get(st, S_GLOBAL_GET, err);
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
    cleanup_read store *txn = read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_GLOBAL_GET, err);
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
    if (value_read(st, &blob, "globals", "data", rowid, n, data, err) < 0)
        return mt_error_wrap(err, "reading the global \"%s\" of swarm %s", tag, swarm);
    *len = n;
    return 1;
}

/* ---- results ---- */

int store_result_add(store *st, const char *swarm, const char *task, const char *node,
                     uint32_t iteration, const char *tag, const char *request, const void *data,
                     size_t len, int64_t now_ms, mt_error **err)
{
    if (!swarm || !node || !tag)
        return missing(st, err, !swarm ? "a swarm id" : !node ? "a node id" : "a tag");
    LOCK_STORE(st);
    if (check_len(st, len, err) < 0)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_RESULT_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    bind_str(s, 2, task ? task : "");
    bind_str(s, 3, node);
    sqlite3_bind_int64(s, 4, iteration);
    bind_str(s, 5, tag);
    sqlite3_bind_int64(s, 6, now_ms);
    if (bind_value(st, s, 7, data, len, err) < 0)
        return -1;
    bind_str(s, 8, request); /* NULL binds SQL NULL */
    if (sqlite3_step(s) != SQLITE_DONE)
        return db_fail(st, err, "save the result \"%s\" of node %s in swarm %s", tag, node, swarm);
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

/* Step s (RESULT_COLS) to the end, then read each row's value if with_data. Needs st->mu and
 * a read transaction. *rows owned. */
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
    }
    if (rc != SQLITE_DONE) {
        store_results_free(out, count);
        return db_fail(st, err, "read the results");
    }
    if (with_data) {
        cleanup_blob sqlite3_blob *blob = NULL;
        for (size_t i = 0; i < count; i++)
            if (value_read(st, &blob, "results", "data", out[i].seq, out[i].len, &out[i].data,
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
    cleanup_read store *txn = read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_RESULT_QUERY, err);
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
    cleanup_read store *txn = read_begin(st, err);
    if (!txn)
        return -1;
    int variant = (tag ? 1 : 0) | (iteration >= 0 ? 2 : 0);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_RESULT_LIST + variant, err);
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

/* ---- task logs ---- */

int store_log_add(store *st, const char *swarm, const char *node, const char *task,
                  uint32_t iteration, uint32_t circular, int64_t ts_ms, const char *text,
                  size_t len, mt_error **err)
{
    if (!text && len)
        return missing(st, err, "the log text");
    LOCK_STORE(st);
    if (check_len(st, len, err) < 0)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_LOG_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    bind_str(s, 2, node ? node : "");
    bind_str(s, 3, task ? task : "");
    sqlite3_bind_int64(s, 4, iteration);
    sqlite3_bind_int64(s, 5, circular);
    sqlite3_bind_int64(s, 6, ts_ms);
    if (bind_value(st, s, 7, text, len, err) < 0)
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_LOG_LIST + variant, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_LOG_AFTER, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm ? swarm : "");
    sqlite3_bind_int64(s, 2, after_seq);
    return logs_collect(st, s, rows, n, err);
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
        return missing(st, err, "the error");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_ERROR_ADD, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_ERROR_LIST + (swarm ? 1 : 0), err);
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

/* ---- objects of the user side ---- */

int store_object_put(store *st, const char *kind, const char *id, const char *meta,
                     const void *data, size_t len, int64_t now_ms, bool replace, mt_error **err)
{
    if (!kind || !id)
        return missing(st, err, kind ? "an object id" : "an object kind");
    LOCK_STORE(st);
    if (check_len(st, len, err) < 0)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, replace ? S_OBJECT_PUT : S_OBJECT_ADD, err);
    if (!s)
        return -1;
    bind_str(s, 1, kind);
    bind_str(s, 2, id);
    bind_str(s, 3, meta ? meta : "");
    sqlite3_bind_int64(s, 4, now_ms);
    if (bind_value(st, s, 5, data, len, err) < 0)
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
    cleanup_read store *txn = read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_OBJECT_GET, err);
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
    if (with_data && value_read(st, &blob, "objects", "data", rowid, len, &data, err) < 0)
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_OBJECT_LIST, err);
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
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_OBJECT_DELETE, err);
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

int store_swarm_remove(store *st, const char *id, mt_error **err)
{
    if (!id)
        return 0;
    LOCK_STORE(st);
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "start removing swarm %s", id);
    int removed = 0;
    for (int i = 0; i < 5; i++) {
        cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_SWARM_REMOVE + i, err);
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

int store_result_delete(store *st, const char *swarm, const char *tag, const char *node,
                        const char *task, int64_t iteration, mt_error **err)
{
    if (!swarm || !tag)
        return missing(st, err, swarm ? "a tag" : "a swarm id");
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_RESULT_DELETE, err);
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

int store_result_after(store *st, const char *swarm, const char *tag, int64_t after_seq,
                       store_result **rows, size_t *n, mt_error **err)
{
    *rows = NULL;
    *n = 0;
    if (!swarm || !tag)
        return 0;
    LOCK_STORE(st);
    cleanup_read store *txn = read_begin(st, err);
    if (!txn)
        return -1;
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_RESULT_AFTER, err);
    if (!s)
        return -1;
    bind_str(s, 1, swarm);
    bind_str(s, 2, tag);
    sqlite3_bind_int64(s, 3, after_seq);
    if (results_collect(st, s, true, rows, n, err) < 0)
        return mt_error_wrap(err, "listing the results of swarm %s", swarm);
    return 0;
}

int store_global_list(store *st, const char *swarm, char ***tags, size_t **lens, size_t *n,
                      mt_error **err)
{
    *tags = NULL;
    *lens = NULL;
    *n = 0;
    LOCK_STORE(st);
    cleanup_stmt sqlite3_stmt *s = stmt_get(st, S_GLOBAL_LIST, err);
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
