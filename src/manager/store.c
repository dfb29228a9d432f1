/* store.c - the manager's durable store (SQLite): the schema and its migrations, the
 * statements, opening and closing, and the helpers the other store_*.c files share
 * (store_impl.h); see store.h.
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
#include "store_impl.h"

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
    /* 1 -> 2: the token subject each node id acts for (node_auth.c); a store of version 1
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
     * call repeated after the manager was lost in its middle is stored once (node_data.c). */
    "ALTER TABLE results ADD COLUMN request TEXT;"
    "CREATE UNIQUE INDEX results_by_request ON results (swarm, node, request)"
    " WHERE request IS NOT NULL;",
    /* 4 -> 5: the dashboard's history and placement read a swarm's logs by iteration without
     * their text (web_api.c). */
    "CREATE INDEX task_logs_by_round ON task_logs (swarm, iteration, ts_ms, node, task);",
};
#define SCHEMA_VERSION ((int)ARRAY_LEN(schema_steps))

/* ---- statements ---- */

#define RESULT_COLS "seq, swarm, task, node, tag, iteration, created_ms, length(data)"
#define LOG_COLS    "swarm, node, task, iteration, circular, ts_ms, text, id"
#define ERROR_COLS  "node, swarm, task, iteration, circular, error_id, content, ts_ms"

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
    [S_RESULT_SMALL] = "SELECT " RESULT_COLS ", data FROM results WHERE swarm = ?1 AND seq > ?2"
                       " AND length(data) <= ?3 ORDER BY seq",
    [S_RESULT_SMALL_TAG] = "SELECT " RESULT_COLS ", data FROM results WHERE swarm = ?1"
                           " AND tag = ?4 AND seq > ?2 AND length(data) <= ?3 ORDER BY seq",
    [S_GLOBAL_LIST] = "SELECT tag, length(data) FROM globals WHERE swarm = ?1 ORDER BY tag",
    [S_LOG_AFTER] = "SELECT " LOG_COLS " FROM task_logs WHERE swarm = ?1 AND id > ?2 ORDER BY id",
    [S_LOG_SEARCH] = "SELECT " LOG_COLS " FROM (SELECT * FROM task_logs WHERE swarm = ?1"
                     " AND (?2 = '' OR node = ?2) AND (?3 < 0 OR iteration = ?3) AND id > ?4"
                     " AND (?5 = '' OR instr(lower(CAST(text AS TEXT)), lower(?5)) > 0)"
                     " ORDER BY id DESC LIMIT ?6) ORDER BY id",
    [S_LOG_INDEX] = "SELECT swarm, node, task, iteration, circular, ts_ms, x'', id FROM task_logs"
                    " WHERE swarm = ?1 AND (?2 < 0 OR iteration = ?2) ORDER BY id",
    [S_LOG_ROUNDS] = "SELECT iteration, min(ts_ms), max(ts_ms), count(*), max(id) FROM task_logs"
                     " WHERE swarm = ?1 AND ?2 < 0 GROUP BY iteration ORDER BY iteration",
    /* what came since: the rowid range, not the swarm's whole index ("+swarm") */
    [S_LOG_ROUNDS_AFTER] = "SELECT iteration, min(ts_ms), max(ts_ms), count(*), max(id)"
                           " FROM task_logs WHERE id > ?2 AND +swarm = ?1"
                           " GROUP BY iteration ORDER BY iteration",
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
int db_fail(store *st, mt_error **err, const char *fmt, ...)
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

int db_missing(store *st, mt_error **err, const char *what)
{
    return mt_error_set(err, MT_ERR_USAGE,
                        "the manager's store %s was asked to save a row without %s; this is a "
                        "bug in the manager, please report it",
                        st->path, what);
}

/* Refuse a value above SQLite's length limit before binding it, with the sizes. */
int db_check_len(store *st, size_t len, mt_error **err)
{
    int max = sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1);
    if (len > (size_t)max)
        return mt_error_set(err, MT_ERR_GENERIC,
                            "the manager's store %s cannot keep a value of %zu bytes: it "
                            "accepts at most %d bytes per value; send a smaller value",
                            st->path, len, max);
    return 0;
}

/* ---- statement helpers ---- */

/* The prepared statement id, reset and unbound; NULL with *err. Borrowed from st. */
sqlite3_stmt *db_stmt(store *st, int id, mt_error **err)
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
store *db_read_begin(store *st, mt_error **err)
{
    if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, "start reading"), NULL;
    return st;
}

/* Bind a value; zero length binds an empty blob (a NULL pointer would bind SQL NULL). */
int db_bind_value(store *st, sqlite3_stmt *s, int i, const void *data, size_t len, mt_error **err)
{
    int rc =
        len ? sqlite3_bind_blob64(s, i, data, len, SQLITE_STATIC) : sqlite3_bind_zeroblob(s, i, 0);
    if (rc != SQLITE_OK)
        return db_fail(st, err, "take a value of %zu bytes", len);
    return 0;
}

/* Read the len-byte value at table.column, row rowid, into a new buffer (never NULL, even for
 * len 0). *blob is a handle kept across rows of the same table. Values can be hundreds of
 * MiB, so running out of memory is an error here, not an abort. */
int db_value_read(store *st, sqlite3_blob **blob, const char *table, const char *column,
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
     * journal_mode answers "memory" for ":memory:", which is fine. A page cache of up to
     * 16 MiB (grown only as pages are read; the default is 2): the dashboard reads a swarm's
     * logs and results again and again (its history, its series). */
    if (sqlite3_exec(st->db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     " PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16384;",
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
