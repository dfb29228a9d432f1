/* test_manager_bindings.c - the store's node bindings (which token subject a node id acts for):
 * set, replace, list, kept across a reopen, and a store written by a manager without them
 * (schema version 1) upgraded in place with its data kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "store.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/manta-test-bind-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define MUST(call)                                                                                 \
    do {                                                                                           \
        if ((call) < 0)                                                                            \
            fail_msg("%s failed: %s", #call, mt_error_msg(e));                                     \
    } while (0)

static store *open_at(const char *path)
{
    mt_error *e = NULL;
    store *st = store_open(path, &e);
    if (!st)
        fail_msg("store_open(%s): %s", path, mt_error_msg(e));
    return st;
}

/* The bindings as "node=subject" joined by spaces. */
static char *bindings_text(store *st)
{
    mt_error *e = NULL;
    store_binding *rows = NULL;
    size_t n = 0;
    MUST(store_binding_list(st, &rows, &n, &e));
    char *out = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        char *next = xasprintf("%s%s%s=%s", out, i ? " " : "", rows[i].node, rows[i].subject);
        free(out);
        out = next;
    }
    store_bindings_free(rows, n);
    return out;
}

static void test_set_replace_list_reopen(void **state)
{
    (void)state;
    cleanup_free char *path = xasprintf("%s/b.db", dir);
    store *st = open_at(path);
    mt_error *e = NULL;
    cleanup_free char *none = bindings_text(st);
    assert_string_equal(none, "");
    MUST(store_binding_set(st, "0b", "beta", 1000, &e));
    MUST(store_binding_set(st, "0a", "alpha", 1000, &e));
    MUST(store_binding_set(st, "0b", "gamma", 2000, &e)); /* replaces */
    cleanup_free char *t1 = bindings_text(st);
    assert_string_equal(t1, "0a=alpha 0b=gamma");
    assert_int_equal(store_binding_set(st, NULL, "x", 0, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "node id"));
    mt_error_free(&e);
    store_close(st);

    st = open_at(path);
    cleanup_free char *t2 = bindings_text(st);
    assert_string_equal(t2, "0a=alpha 0b=gamma");
    store_close(st);
}

/* The version-1 schema exactly as the first manager wrote it. */
static const char *const V1 =
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
    "CREATE INDEX task_errors_by_swarm ON task_errors (swarm);"
    "INSERT INTO nodes VALUES ('0abc', 'host1', 'Linux 6 x86_64', 'mnist', 'CONNECTED', 5, 6);"
    "INSERT INTO swarms VALUES ('0def', 'old', 'COMPLETED', '', 3, 7, 8);"
    "PRAGMA user_version = 1;";

static int user_version(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void test_upgrade_from_version_1(void **state)
{
    (void)state;
    cleanup_free char *path = xasprintf("%s/v1.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, V1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    store *st = open_at(path);
    mt_error *e = NULL;
    /* the old rows are all there */
    store_node *nodes = NULL;
    size_t n = 0;
    MUST(store_node_list(st, &nodes, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(nodes[0].id, "0abc");
    assert_string_equal(nodes[0].hostname, "host1");
    store_nodes_free(nodes, n);
    store_swarm w;
    assert_int_equal(store_swarm_get(st, "0def", &w, &e), 1);
    assert_string_equal(w.status, "COMPLETED");
    store_swarm_clear(&w);
    /* no binding yet: the node binds again when it next registers */
    cleanup_free char *none = bindings_text(st);
    assert_string_equal(none, "");
    MUST(store_binding_set(st, "0abc", "node1", 9, &e));
    store_close(st);
    assert_true(user_version(path) >= 2);

    st = open_at(path);
    cleanup_free char *t = bindings_text(st);
    assert_string_equal(t, "0abc=node1");
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_replace_list_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
