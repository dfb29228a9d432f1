/* test_manager_store.c - the manager's durable store: every function, the GetTaskResult rules,
 * byte-exact values, reopening a file, clear errors and use from several threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "store.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/manta-test-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Run a store call that must succeed (returns >= 0); the mt_error is `e` in the caller. */
#define MUST(call)                                                                                 \
    do {                                                                                           \
        if ((call) < 0)                                                                            \
            fail_msg("%s failed: %s", #call, mt_error_msg(e));                                     \
    } while (0)

static store *open_memory(void)
{
    mt_error *e = NULL;
    store *st = store_open(":memory:", &e);
    if (!st)
        fail_msg("store_open(:memory:): %s", mt_error_msg(e));
    return st;
}

static void add_result(store *st, const char *swarm, const char *task, const char *node,
                       uint32_t iteration, const char *tag, const char *value, int64_t now)
{
    mt_error *e = NULL;
    MUST(store_result_add(st, swarm, task, node, iteration, tag, NULL, value, strlen(value), now,
                          &e));
}

/* The rows as "node=value" joined by spaces, in order, for compact comparisons. */
static char *rows_text(const store_result *rows, size_t n)
{
    char *out = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        assert_non_null(rows[i].data);
        char *next = xasprintf("%s%s%s=%.*s", out, i ? " " : "", rows[i].node, (int)rows[i].len,
                               (const char *)rows[i].data);
        free(out);
        out = next;
    }
    return out;
}

static void expect_query(store *st, const char *swarm, const char *tag, uint32_t iteration,
                         int64_t size, int method, const char *want)
{
    mt_error *e = NULL;
    store_result *rows = NULL;
    size_t n = 99;
    MUST(store_result_query(st, swarm, tag, iteration, size, method, &rows, &n, &e));
    cleanup_free char *got = rows_text(rows, n);
    if (strcmp(got, want) != 0)
        fail_msg("query(%s, %s, it %u, size %lld, method %d) = \"%s\", want \"%s\"", swarm, tag,
                 iteration, (long long)size, method, got, want);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].swarm, swarm);
        assert_string_equal(rows[i].tag, tag);
        assert_int_equal(rows[i].iteration, iteration);
        if (i)
            assert_true(rows[i].seq < rows[i - 1].seq); /* newest first */
    }
    store_results_free(rows, n);
}

/* ---- open, errors, reopen ---- */

static void test_open_memory(void **state)
{
    store *st = open_memory();
    store_close(st);
    store_close(NULL);
}

static void test_open_missing_directory(void **state)
{
    cleanup_free char *path = xasprintf("%s/no-such-dir/manager.db", dir);
    mt_error *e = NULL;
    store *st = store_open(path, &e);
    assert_null(st);
    assert_non_null(e);
    assert_int_equal(e->code, MT_ERR_IO);
    const char *msg = mt_error_msg(e);
    assert_non_null(strstr(msg, "the manager's store "));
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "could not be opened"));
    assert_non_null(strstr(msg, "does not exist"));
    assert_non_null(strstr(msg, "create it or choose another path"));
    mt_error_free(&e);

    /* A directory is not a file. */
    assert_null(store_open(dir, &e));
    assert_non_null(strstr(mt_error_msg(e), dir));
    assert_non_null(strstr(mt_error_msg(e), "is a directory"));
    mt_error_free(&e);
}

static void test_open_not_a_database(void **state)
{
    cleanup_free char *path = xasprintf("%s/garbage.db", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 512; i++)
        fputs("this is not an SQLite file. ", f);
    fclose(f);
    mt_error *e = NULL;
    store *st = store_open(path, &e);
    assert_null(st);
    const char *msg = mt_error_msg(e);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "not a manager store"));
    mt_error_free(&e);
}

static void test_open_newer_schema(void **state)
{
    cleanup_free char *path = xasprintf("%s/newer.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    mt_error *e = NULL;
    store *st = store_open(path, &e);
    assert_null(st);
    assert_int_equal(e->code, MT_ERR_CONFIG);
    assert_non_null(strstr(mt_error_msg(e), path));
    assert_non_null(strstr(mt_error_msg(e), "schema version 99"));
    assert_non_null(strstr(mt_error_msg(e), "newer"));
    mt_error_free(&e);
}

static void test_reopen_keeps_data(void **state)
{
    cleanup_free char *path = xasprintf("%s/manager.db", dir);
    mt_error *e = NULL;
    store *st = store_open(path, &e);
    if (!st)
        fail_msg("%s", mt_error_msg(e));
    MUST(store_swarm_create(st, "swarm1", "FedAvg", 1000, &e));
    MUST(store_swarm_update(st, "swarm1", "RUNNING", NULL, 3, 2000, &e));
    store_node nd = {
        .id = "nodeA", .hostname = "host-a", .platform = "Linux 6.1 x86_64", .datasets = "mnist"};
    MUST(store_node_register(st, &nd, 1500, &e));
    MUST(store_global_set(st, "swarm1", "hyperparameters", "\x81\xa2lr\xcb", 5, &e));
    add_result(st, "swarm1", "task1", "nodeA", 3, "metrics", "m3", 2100);
    MUST(store_log_add(st, "swarm1", "nodeA", "task1", 3, 0, 2200, "hello\n", 6, &e));
    store_errrow er = {.node = "nodeA",
                       .swarm = "swarm1",
                       .task = "task1",
                       .iteration = 3,
                       .error_id = 7,
                       .content = "boom",
                       .ts_ms = 2300};
    MUST(store_error_add(st, &er, &e));
    store_close(st);

    /* The file is in WAL mode with our schema version. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 5);
    sqlite3_finalize(s);
    sqlite3_close(db);

    st = store_open(path, &e);
    if (!st)
        fail_msg("reopen: %s", mt_error_msg(e));
    store_swarm w;
    assert_int_equal(store_swarm_get(st, "swarm1", &w, &e), 1);
    assert_string_equal(w.name, "FedAvg");
    assert_string_equal(w.status, "RUNNING");
    assert_string_equal(w.detail, "");
    assert_int_equal(w.iteration, 3);
    assert_int_equal(w.created_ms, 1000);
    assert_int_equal(w.updated_ms, 2000);
    store_swarm_clear(&w);

    store_node *nodes = NULL;
    size_t n = 0;
    MUST(store_node_list(st, &nodes, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(nodes[0].hostname, "host-a");
    assert_string_equal(nodes[0].datasets, "mnist");
    store_nodes_free(nodes, n);

    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(store_global_get(st, "swarm1", "hyperparameters", &data, &len, &e), 1);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "\x81\xa2lr\xcb", 5);
    free(data);

    expect_query(st, "swarm1", "metrics", 3, -1, 2, "nodeA=m3");

    store_log *logs = NULL;
    MUST(store_log_list(st, NULL, NULL, NULL, &logs, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(logs[0].text, "hello\n");
    store_logs_free(logs, n);

    store_errrow *errs = NULL;
    MUST(store_error_list(st, NULL, &errs, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(errs[0].content, "boom");
    assert_int_equal(errs[0].error_id, 7);
    store_errors_free(errs, n);

    /* Still writable after reopening. */
    add_result(st, "swarm1", "task1", "nodeB", 3, "metrics", "b3", 2400);
    expect_query(st, "swarm1", "metrics", 3, -1, 2, "nodeB=b3 nodeA=m3");
    store_close(st);
}

/* ---- swarms ---- */

static void test_swarms(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    MUST(store_swarm_create(st, "s-old", "First", 100, &e));
    MUST(store_swarm_create(st, "s-new", "Second", 300, &e));
    MUST(store_swarm_create(st, "s-mid", "Third", 200, &e));
    MUST(store_swarm_create(st, "s-tie", "Fourth", 300, &e)); /* same ms, created later */

    assert_int_equal(store_swarm_create(st, "s-old", "Again", 400, &e), -1);
    assert_int_equal(e->code, MT_ERR_EXISTS);
    assert_non_null(strstr(mt_error_msg(e), "s-old"));
    mt_error_free(&e);

    store_swarm w;
    assert_int_equal(store_swarm_get(st, "s-mid", &w, &e), 1);
    assert_string_equal(w.id, "s-mid");
    assert_string_equal(w.name, "Third");
    assert_string_equal(w.status, "PENDING");
    assert_string_equal(w.detail, "");
    assert_int_equal(w.iteration, 0);
    assert_int_equal(w.created_ms, 200);
    assert_int_equal(w.updated_ms, 200);
    store_swarm_clear(&w);
    assert_null(w.id);
    assert_int_equal(store_swarm_get(st, "nope", &w, &e), 0);
    assert_null(e);
    assert_null(w.id);

    MUST(store_swarm_update(st, "s-mid", "RUNNING", "", 4, 250, &e));
    MUST(store_swarm_update(st, "s-mid", "FAILED", "task t1 failed on 2 nodes", 5, 260, &e));
    MUST(store_swarm_update(st, "s-mid", "FAILED", NULL, 6, 270, &e)); /* detail kept */
    assert_int_equal(store_swarm_get(st, "s-mid", &w, &e), 1);
    assert_string_equal(w.status, "FAILED");
    assert_string_equal(w.detail, "task t1 failed on 2 nodes");
    assert_int_equal(w.iteration, 6);
    assert_int_equal(w.created_ms, 200);
    assert_int_equal(w.updated_ms, 270);
    store_swarm_clear(&w);

    assert_int_equal(store_swarm_update(st, "nope", "RUNNING", NULL, 1, 1, &e), -1);
    assert_int_equal(e->code, MT_ERR_NOTFOUND);
    assert_non_null(strstr(mt_error_msg(e), "nope"));
    mt_error_free(&e);

    store_swarm *rows = NULL;
    size_t n = 0;
    MUST(store_swarm_list(st, &rows, &n, &e));
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].id, "s-tie");
    assert_string_equal(rows[1].id, "s-new");
    assert_string_equal(rows[2].id, "s-mid");
    assert_string_equal(rows[3].id, "s-old");
    assert_string_equal(rows[2].status, "FAILED");
    assert_string_equal(rows[3].name, "First");
    store_swarms_free(rows, n);
    store_close(st);

    /* An empty store lists nothing. */
    st = open_memory();
    rows = (store_swarm *)1;
    MUST(store_swarm_list(st, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_swarms_free(rows, n);
    store_close(st);
}

/* ---- nodes ---- */

static void test_nodes(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    store_node b = {
        .id = "node-b", .hostname = "bee", .platform = "Linux 6.1 aarch64", .datasets = "cifar10"};
    store_node a = {.id = "node-a", .hostname = "ant", .platform = NULL, .datasets = NULL};
    MUST(store_node_register(st, &b, 10, &e));
    MUST(store_node_register(st, &a, 20, &e));

    store_node *rows = NULL;
    size_t n = 0;
    MUST(store_node_list(st, &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, "node-a"); /* by id */
    assert_string_equal(rows[0].hostname, "ant");
    assert_string_equal(rows[0].platform, "");
    assert_string_equal(rows[0].datasets, "");
    assert_string_equal(rows[0].status, "CONNECTED");
    assert_int_equal(rows[0].registered_ms, 20);
    assert_int_equal(rows[0].last_seen_ms, 20);
    assert_string_equal(rows[1].id, "node-b");
    assert_string_equal(rows[1].platform, "Linux 6.1 aarch64");
    assert_string_equal(rows[1].datasets, "cifar10");
    store_nodes_free(rows, n);

    MUST(store_node_set_status(st, "node-b", "LOST", 50, &e));
    MUST(store_node_set_datasets(st, "node-a", "mnist,cifar10", &e));
    MUST(store_node_list(st, &rows, &n, &e));
    assert_string_equal(rows[0].datasets, "mnist,cifar10");
    assert_string_equal(rows[1].status, "LOST");
    assert_int_equal(rows[1].last_seen_ms, 50);
    assert_int_equal(rows[1].registered_ms, 10);
    store_nodes_free(rows, n);

    /* Re-registering replaces the registration: new host facts, CONNECTED again, times now;
     * datasets NULL keeps the ones known. */
    store_node b2 = {.id = "node-b", .hostname = "bee2", .platform = "Linux 6.6 aarch64"};
    MUST(store_node_register(st, &b2, 70, &e));
    store_node a2 = {.id = "node-a", .hostname = "ant", .datasets = ""};
    MUST(store_node_register(st, &a2, 80, &e));
    MUST(store_node_list(st, &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].datasets, ""); /* given "", replaced */
    assert_string_equal(rows[1].hostname, "bee2");
    assert_string_equal(rows[1].platform, "Linux 6.6 aarch64");
    assert_string_equal(rows[1].datasets, "cifar10");
    assert_string_equal(rows[1].status, "CONNECTED");
    assert_int_equal(rows[1].registered_ms, 70);
    assert_int_equal(rows[1].last_seen_ms, 70);
    store_nodes_free(rows, n);

    assert_int_equal(store_node_set_status(st, "ghost", "LOST", 1, &e), -1);
    assert_int_equal(e->code, MT_ERR_NOTFOUND);
    assert_non_null(strstr(mt_error_msg(e), "ghost"));
    mt_error_free(&e);
    assert_int_equal(store_node_set_datasets(st, "ghost", "x", &e), -1);
    assert_int_equal(e->code, MT_ERR_NOTFOUND);
    mt_error_free(&e);
    store_node noid = {.hostname = "x"};
    assert_int_equal(store_node_register(st, &noid, 1, &e), -1);
    mt_error_free(&e);
    store_close(st);
}

/* ---- globals ---- */

static void test_globals(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    uint8_t *data = (uint8_t *)1;
    size_t len = 7;
    assert_int_equal(store_global_get(st, "s1", "hyper", &data, &len, &e), 0);
    assert_null(data);
    assert_int_equal(len, 0);

    const uint8_t v1[] = {0x00, 0xff, 0x00, 0x81, 0xa1, 0x00};
    MUST(store_global_set(st, "s1", "hyper", v1, sizeof(v1), &e));
    MUST(store_global_set(st, "s1", "model", "M", 1, &e));
    MUST(store_global_set(st, "s2", "hyper", "other", 5, &e));
    assert_int_equal(store_global_get(st, "s1", "hyper", &data, &len, &e), 1);
    assert_int_equal(len, sizeof(v1));
    assert_memory_equal(data, v1, sizeof(v1));
    free(data);

    /* Last write wins, shorter or longer. */
    MUST(store_global_set(st, "s1", "hyper", "second value", 12, &e));
    MUST(store_global_set(st, "s1", "hyper", "3rd", 3, &e));
    assert_int_equal(store_global_get(st, "s1", "hyper", &data, &len, &e), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "3rd", 3);
    free(data);

    /* A zero-length value is a value, not an absence. */
    MUST(store_global_set(st, "s1", "empty", NULL, 0, &e));
    assert_int_equal(store_global_get(st, "s1", "empty", &data, &len, &e), 1);
    assert_int_equal(len, 0);
    free(data);
    MUST(store_global_set(st, "s1", "hyper", "", 0, &e));
    assert_int_equal(store_global_get(st, "s1", "hyper", &data, &len, &e), 1);
    assert_int_equal(len, 0);
    free(data);

    /* Other swarms and tags are untouched. */
    assert_int_equal(store_global_get(st, "s2", "hyper", &data, &len, &e), 1);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "other", 5);
    free(data);
    assert_int_equal(store_global_get(st, "s1", "model", &data, &len, &e), 1);
    assert_memory_equal(data, "M", 1);
    free(data);
    assert_int_equal(store_global_get(st, "s3", "hyper", &data, &len, &e), 0);
    assert_null(e);
    store_close(st);
}

/* ---- results ---- */

static void test_result_one_per_node_newest_first(void **state)
{
    store *st = open_memory();
    /* Round 0: three workers; nodeB answers twice (its second value wins). */
    add_result(st, "S", "train", "nodeA", 0, "model_params", "a0", 10);
    add_result(st, "S", "train", "nodeB", 0, "model_params", "b0-first", 11);
    add_result(st, "S", "train", "nodeC", 0, "model_params", "c0", 12);
    add_result(st, "S", "train", "nodeB", 0, "model_params", "b0-second", 13);
    expect_query(st, "S", "model_params", 0, -1, 2, "nodeB=b0-second nodeC=c0 nodeA=a0");
    expect_query(st, "S", "model_params", 0, -1, 0, "nodeB=b0-second nodeC=c0 nodeA=a0");
    /* A node's re-post moves it to the front even when older by clock: seq orders. */
    add_result(st, "S", "train", "nodeA", 0, "model_params", "a0-again", 5);
    expect_query(st, "S", "model_params", 0, -1, 2, "nodeA=a0-again nodeB=b0-second nodeC=c0");

    /* LAST: only the newest row overall. */
    expect_query(st, "S", "model_params", 0, -1, 1, "nodeA=a0-again");
    expect_query(st, "S", "model_params", 0, 0xFFFFFFFFLL, 1, "nodeA=a0-again");
    expect_query(st, "S", "model_params", 0, 2, 1, "nodeA=a0-again");

    /* Size caps: <= 0 and >= 2^31 (the SDK's -1 as 2^32-1) mean none; 1 and 2 cap. */
    const char *all = "nodeA=a0-again nodeB=b0-second nodeC=c0";
    expect_query(st, "S", "model_params", 0, 0xFFFFFFFFLL, 2, all);
    expect_query(st, "S", "model_params", 0, INT64_C(1) << 31, 2, all);
    expect_query(st, "S", "model_params", 0, 0, 2, all);
    expect_query(st, "S", "model_params", 0, -5, 2, all);
    expect_query(st, "S", "model_params", 0, 3, 2, all);
    expect_query(st, "S", "model_params", 0, 100, 2, all);
    expect_query(st, "S", "model_params", 0, (INT64_C(1) << 31) - 1, 2, all);
    expect_query(st, "S", "model_params", 0, 1, 2, "nodeA=a0-again");
    expect_query(st, "S", "model_params", 0, 2, 2, "nodeA=a0-again nodeB=b0-second");
    expect_query(st, "S", "model_params", 0, 2, 0, "nodeA=a0-again nodeB=b0-second");
    store_close(st);
}

/* A repeated call (same request id, swarm and node) is stored once; ids are per (swarm, node). */
static void test_result_request_ids(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    assert_int_equal(store_result_add(st, "S", "t", "nodeA", 0, "m", "r1", "a0", 2, 10, &e), 0);
    assert_int_equal(store_result_add(st, "S", "t", "nodeA", 0, "m", "r1", "a0", 2, 11, &e), 1);
    expect_query(st, "S", "m", 0, -1, 2, "nodeA=a0");
    store_result *rows = NULL;
    size_t n = 0;
    MUST(store_result_list(st, "S", "m", -1, false, &rows, &n, &e));
    assert_int_equal(n, 1);
    store_results_free(rows, n);
    /* The same id from another node, or in another swarm, is another call. */
    assert_int_equal(store_result_add(st, "S", "t", "nodeB", 0, "m", "r1", "b0", 2, 12, &e), 0);
    assert_int_equal(store_result_add(st, "T", "t", "nodeA", 0, "m", "r1", "x0", 2, 13, &e), 0);
    /* Without an id every call appends, as before. */
    assert_int_equal(store_result_add(st, "S", "t", "nodeA", 0, "m", NULL, "a1", 2, 14, &e), 0);
    assert_int_equal(store_result_add(st, "S", "t", "nodeA", 0, "m", NULL, "a1", 2, 15, &e), 0);
    MUST(store_result_list(st, "S", "m", -1, false, &rows, &n, &e));
    assert_int_equal(n, 4);
    store_results_free(rows, n);
    store_close(st);
}

static void test_result_filters(void **state)
{
    store *st = open_memory();
    add_result(st, "S", "train", "nodeA", 0, "model_params", "a0", 10);
    add_result(st, "S", "train", "nodeB", 0, "model_params", "b0", 11);
    add_result(st, "S", "train", "nodeA", 1, "model_params", "a1", 12);
    add_result(st, "S", "test", "nodeA", 0, "metrics", "ma0", 13);
    add_result(st, "S", "test", "nodeC", 1, "metrics", "mc1", 14);
    add_result(st, "OTHER", "train", "nodeA", 0, "model_params", "x0", 15);
    add_result(st, "OTHER", "train", "nodeD", 1, "model_params", "xd1", 16);
    add_result(st, "S", "train", "nodeB", 2, "model_params", "b2", 17);
    add_result(st, "S", "train", "nodeB", 4294967295u, "model_params", "bmax", 18);

    /* Iteration, tag and swarm all filter; a newer round does not replace an older one. */
    expect_query(st, "S", "model_params", 0, -1, 2, "nodeB=b0 nodeA=a0");
    expect_query(st, "S", "model_params", 1, -1, 2, "nodeA=a1");
    expect_query(st, "S", "model_params", 2, -1, 2, "nodeB=b2");
    expect_query(st, "S", "model_params", 3, -1, 2, "");
    expect_query(st, "S", "model_params", 4294967295u, -1, 2, "nodeB=bmax");
    expect_query(st, "S", "metrics", 0, -1, 2, "nodeA=ma0");
    expect_query(st, "S", "metrics", 1, -1, 2, "nodeC=mc1");
    expect_query(st, "S", "nope", 0, -1, 2, "");
    expect_query(st, "OTHER", "model_params", 0, -1, 2, "nodeA=x0");
    expect_query(st, "OTHER", "model_params", 1, -1, 1, "nodeD=xd1");
    expect_query(st, "NOSWARM", "model_params", 0, -1, 2, "");

    /* Rows carry their task and time. */
    mt_error *e = NULL;
    store_result *rows = NULL;
    size_t n = 0;
    MUST(store_result_query(st, "S", "metrics", 1, -1, 2, &rows, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].task, "test");
    assert_string_equal(rows[0].node, "nodeC");
    assert_int_equal(rows[0].created_ms, 14);
    assert_int_equal(rows[0].len, 3);
    store_results_free(rows, n);

    /* The user's listing: every row, oldest first, filtered by tag and iteration. */
    MUST(store_result_list(st, "S", NULL, -1, true, &rows, &n, &e));
    assert_int_equal(n, 7);
    cleanup_free char *all = rows_text(rows, n);
    assert_string_equal(all, "nodeA=a0 nodeB=b0 nodeA=a1 nodeA=ma0 nodeC=mc1 nodeB=b2 "
                             "nodeB=bmax");
    for (size_t i = 1; i < n; i++)
        assert_true(rows[i].seq > rows[i - 1].seq);
    assert_int_equal(rows[6].iteration, 4294967295u);
    store_results_free(rows, n);

    MUST(store_result_list(st, "S", "model_params", -1, true, &rows, &n, &e));
    cleanup_free char *tagged = rows_text(rows, n);
    assert_string_equal(tagged, "nodeA=a0 nodeB=b0 nodeA=a1 nodeB=b2 nodeB=bmax");
    store_results_free(rows, n);

    MUST(store_result_list(st, "S", NULL, 0, true, &rows, &n, &e));
    cleanup_free char *round0 = rows_text(rows, n);
    assert_string_equal(round0, "nodeA=a0 nodeB=b0 nodeA=ma0");
    store_results_free(rows, n);

    MUST(store_result_list(st, "S", "metrics", 1, true, &rows, &n, &e));
    cleanup_free char *both = rows_text(rows, n);
    assert_string_equal(both, "nodeC=mc1");
    store_results_free(rows, n);

    MUST(store_result_list(st, "S", "model_params", 0, false, &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_null(rows[0].data);
    assert_int_equal(rows[0].len, 2);
    assert_string_equal(rows[1].node, "nodeB");
    store_results_free(rows, n);

    MUST(store_result_list(st, "NOSWARM", NULL, -1, true, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_results_free(rows, n);
    store_close(st);
}

/* A deterministic pseudo-random fill, every byte value present. */
static uint8_t *pattern(size_t len, uint32_t seed)
{
    uint8_t *p = xmalloc(len ? len : 1);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 11);
    }
    return p;
}

static void test_values_byte_exact(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    const size_t big = 20u << 20;
    cleanup_free uint8_t *v_big = pattern(big, 42);
    cleanup_free uint8_t *v_small = pattern(1000, 7);

    MUST(store_result_add(st, "S", "t", "nodeE", 0, "p", NULL, NULL, 0, 1, &e)); /* empty */
    MUST(store_result_add(st, "S", "t", "nodeB", 0, "p", NULL, v_big, big, 2, &e));
    MUST(store_result_add(st, "S", "t", "nodeS", 0, "p", NULL, v_small, 1000, 3, &e));
    MUST(store_result_add(st, "S", "t", "nodeZ", 0, "p", NULL, "", 0, 4, &e)); /* empty, non-NULL */

    store_result *rows = NULL;
    size_t n = 0;
    MUST(store_result_query(st, "S", "p", 0, -1, 2, &rows, &n, &e));
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].node, "nodeZ");
    assert_int_equal(rows[0].len, 0);
    assert_non_null(rows[0].data);
    assert_string_equal(rows[1].node, "nodeS");
    assert_int_equal(rows[1].len, 1000);
    assert_memory_equal(rows[1].data, v_small, 1000);
    assert_string_equal(rows[2].node, "nodeB");
    assert_int_equal(rows[2].len, big);
    assert_true(memcmp(rows[2].data, v_big, big) == 0);
    assert_string_equal(rows[3].node, "nodeE");
    assert_int_equal(rows[3].len, 0);
    store_results_free(rows, n);

    MUST(store_result_list(st, "S", "p", 0, true, &rows, &n, &e));
    assert_int_equal(n, 4);
    assert_int_equal(rows[1].len, big);
    assert_true(memcmp(rows[1].data, v_big, big) == 0);
    store_results_free(rows, n);
    MUST(store_result_list(st, "S", "p", 0, false, &rows, &n, &e));
    assert_int_equal(rows[1].len, big);
    assert_null(rows[1].data);
    store_results_free(rows, n);

    /* A big global, overwritten by a smaller one and then by the big one again. */
    uint8_t *data = NULL;
    size_t len = 0;
    MUST(store_global_set(st, "S", "global_model_params", v_big, big, &e));
    assert_int_equal(store_global_get(st, "S", "global_model_params", &data, &len, &e), 1);
    assert_int_equal(len, big);
    assert_true(memcmp(data, v_big, big) == 0);
    free(data);
    MUST(store_global_set(st, "S", "global_model_params", v_small, 1000, &e));
    assert_int_equal(store_global_get(st, "S", "global_model_params", &data, &len, &e), 1);
    assert_int_equal(len, 1000);
    assert_memory_equal(data, v_small, 1000);
    free(data);
    store_close(st);
}

/* ---- logs and errors ---- */

static void test_logs(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    MUST(store_log_add(st, "S1", "nA", "train", 0, 0, 300, "epoch 1\n", 8, &e));
    MUST(store_log_add(st, "S1", "nB", "train", 0, 0, 100, "b says hi\n", 10, &e));
    MUST(store_log_add(st, "S1", "nA", "test", 0, 1, 200, "", 0, &e));
    MUST(store_log_add(st, "S2", "nA", "train", 5, 2, 50, "other swarm", 11, &e));
    MUST(store_log_add(st, "S1", "nA", "train", 1, 0, 300, "bin\0ary", 7, &e));
    /* a node's repeated delivery (same instant, same text) is stored once */
    MUST(store_log_add(st, "S1", "nA", "train", 0, 0, 300, "epoch 1\n", 8, &e));
    MUST(store_log_add(st, "S1", "nA", "train", 1, 0, 300, "bin\0ary", 7, &e));
    /* ... and so is one stamped anew (the node was killed before it knew the first went in) */
    MUST(store_log_add(st, "S1", "nA", "train", 0, 0, 999, "epoch 1\n", 8, &e));

    store_log *rows = NULL;
    size_t n = 0;
    MUST(store_log_list(st, NULL, NULL, NULL, &rows, &n, &e));
    assert_int_equal(n, 5);
    /* Oldest first by timestamp, insertion order on ties. */
    assert_string_equal(rows[0].text, "other swarm");
    assert_int_equal(rows[0].iteration, 5);
    assert_int_equal(rows[0].circular, 2);
    assert_string_equal(rows[1].text, "b says hi\n");
    assert_string_equal(rows[2].text, "");
    assert_int_equal(rows[2].len, 0);
    assert_int_equal(rows[2].circular, 1);
    assert_string_equal(rows[3].text, "epoch 1\n");
    assert_int_equal(rows[3].ts_ms, 300);
    assert_int_equal(rows[4].len, 7);
    assert_memory_equal(rows[4].text, "bin\0ary", 8); /* and NUL-terminated */
    store_logs_free(rows, n);

    MUST(store_log_list(st, "S1", NULL, NULL, &rows, &n, &e));
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(rows[i].swarm, "S1");
    store_logs_free(rows, n);
    MUST(store_log_list(st, "S1", "nA", NULL, &rows, &n, &e));
    assert_int_equal(n, 3);
    store_logs_free(rows, n);
    MUST(store_log_list(st, "S1", "nA", "train", &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].task, "train");
    assert_string_equal(rows[0].node, "nA");
    assert_int_equal(rows[1].iteration, 1);
    store_logs_free(rows, n);
    MUST(store_log_list(st, NULL, "nA", NULL, &rows, &n, &e));
    assert_int_equal(n, 4);
    store_logs_free(rows, n);
    MUST(store_log_list(st, NULL, NULL, "test", &rows, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].node, "nA");
    store_logs_free(rows, n);
    MUST(store_log_list(st, NULL, "nB", "train", &rows, &n, &e));
    assert_int_equal(n, 1);
    store_logs_free(rows, n);
    MUST(store_log_list(st, "S2", NULL, "test", &rows, &n, &e));
    assert_int_equal(n, 0);
    store_logs_free(rows, n);
    MUST(store_log_list(st, "S2", "nA", "train", &rows, &n, &e));
    assert_int_equal(n, 1);
    store_logs_free(rows, n);
    store_close(st);
}

static void test_errors(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    store_errrow e1 = {.node = "nA",
                       .swarm = "S1",
                       .task = "train",
                       .iteration = 2,
                       .circular = 1,
                       .error_id = 3,
                       .content = "out of memory",
                       .ts_ms = 20};
    store_errrow e2 = {.node = "nB", .content = "cannot pull image", .error_id = -1, .ts_ms = 10};
    store_errrow e3 = {.node = "nC", .swarm = "S2", .task = "agg", .content = "crash", .ts_ms = 30};
    MUST(store_error_add(st, &e1, &e));
    MUST(store_error_add(st, &e2, &e));
    MUST(store_error_add(st, &e3, &e));

    store_errrow *rows = NULL;
    size_t n = 0;
    MUST(store_error_list(st, NULL, &rows, &n, &e));
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].node, "nB");
    assert_string_equal(rows[0].swarm, ""); /* absent */
    assert_string_equal(rows[0].task, "");
    assert_int_equal(rows[0].error_id, -1);
    assert_string_equal(rows[1].content, "out of memory");
    assert_int_equal(rows[1].iteration, 2);
    assert_int_equal(rows[1].circular, 1);
    assert_int_equal(rows[1].error_id, 3);
    assert_int_equal(rows[1].ts_ms, 20);
    assert_string_equal(rows[2].swarm, "S2");
    store_errors_free(rows, n);

    MUST(store_error_list(st, "S1", &rows, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].task, "train");
    store_errors_free(rows, n);
    MUST(store_error_list(st, "S9", &rows, &n, &e));
    assert_int_equal(n, 0);
    store_errors_free(rows, n);
    store_close(st);
}

/* ---- the dashboard's reads: log search, log index, small results ---- */

/* The logs of swarm S1 (eight, seqs[0..7] in insertion order, timestamps decreasing so that
 * order by time and order by insertion differ) and two of swarm S2 in between. */
#define SEARCH_LOGS 8
static const struct {
    const char *node, *task;
    uint32_t iteration, circular;
    int64_t ts;
    const char *text;
    size_t len;
} search_logs[SEARCH_LOGS] = {
    {"nA", "train", 0, 0, 1000, "Epoch 1: LOSS 0.5\n", 18},
    {"nB", "train", 0, 0, 900, "epoch 1: loss 0.6\n", 18},
    {"nA", "train", 1, 0, 800, "Epoch 2: loss 0.4\n", 18},
    {"nB", "train", 1, 1, 700, "warning: 100% done_x\n", 21},
    {"nA", "test", 2, 0, 600, "ERROR: NaN in caf\xc3\xa9\n", 20},
    {"nC", "train", 2, 0, 500, "", 0},
    {"nA", "train", 2, 0, 400, "bin\0ary loss", 12},
    {"nB", "train", 2, 3, 300, "Epoch 3: Loss 0.3\n", 18},
};

static void add_search_logs(store *st, int64_t seqs[SEARCH_LOGS])
{
    mt_error *e = NULL;
    for (size_t i = 0; i < SEARCH_LOGS; i++) {
        MUST(store_log_add(st, "S1", search_logs[i].node, search_logs[i].task,
                           search_logs[i].iteration, search_logs[i].circular, search_logs[i].ts,
                           search_logs[i].text, search_logs[i].len, &e));
        if (i == 0)
            MUST(store_log_add(st, "S2", "nA", "train", 0, 0, 990,
                               "epoch 1: loss in another swarm\n", 31, &e));
        if (i == 3)
            MUST(store_log_add(st, "S2", "nB", "train", 1, 0, 690, "warning: other swarm\n", 21,
                               &e));
    }
    /* the seqs, from store_log_after (not from the functions under test) */
    store_log *rows = NULL;
    size_t n = 0;
    MUST(store_log_after(st, "S1", 0, &rows, &n, &e));
    assert_int_equal(n, SEARCH_LOGS);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].len, search_logs[i].len);
        assert_memory_equal(rows[i].text, search_logs[i].text, search_logs[i].len);
        seqs[i] = rows[i].seq;
    }
    store_logs_free(rows, n);
}

/* The rows found as the indexes of search_logs ("0 2 4"), checking each row against the log it
 * is (every field, the text byte-exact and NUL-terminated) and that seqs ascend. */
static char *search_text(store *st, const store_log_filter *f, const int64_t seqs[SEARCH_LOGS])
{
    mt_error *e = NULL;
    store_log *rows = NULL;
    size_t n = 99;
    MUST(store_log_search(st, f, &rows, &n, &e));
    char *out = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < SEARCH_LOGS && seqs[k] != rows[i].seq)
            k++;
        if (k == SEARCH_LOGS)
            fail_msg("a row of seq %lld, not one of swarm S1's", (long long)rows[i].seq);
        if (i)
            assert_true(rows[i].seq > rows[i - 1].seq);
        assert_string_equal(rows[i].swarm, "S1");
        assert_string_equal(rows[i].node, search_logs[k].node);
        assert_string_equal(rows[i].task, search_logs[k].task);
        assert_int_equal(rows[i].iteration, search_logs[k].iteration);
        assert_int_equal(rows[i].circular, search_logs[k].circular);
        assert_int_equal(rows[i].ts_ms, search_logs[k].ts);
        assert_int_equal(rows[i].len, search_logs[k].len);
        assert_memory_equal(rows[i].text, search_logs[k].text, search_logs[k].len);
        assert_int_equal(rows[i].text[rows[i].len], '\0');
        char *next = xasprintf("%s%s%zu", out, i ? " " : "", k);
        free(out);
        out = next;
    }
    store_logs_free(rows, n);
    return out;
}

/* A filter on swarm S1 that lets everything through, narrowed by the caller. */
#define ANY_LOG                                                                                    \
    {                                                                                              \
        .swarm = "S1", .node = NULL, .text = NULL, .iteration = -1, .after_seq = 0, .limit = 0     \
    }

#define EXPECT_SEARCH(want, ...)                                                                   \
    do {                                                                                           \
        store_log_filter f_ = ANY_LOG;                                                             \
        __VA_ARGS__;                                                                               \
        cleanup_free char *got_ = search_text(st, &f_, seqs);                                      \
        if (strcmp(got_, want) != 0)                                                               \
            fail_msg("search %s: got \"%s\", want \"%s\"", #__VA_ARGS__, got_, want);              \
    } while (0)

static void test_log_search_single_filters(void **state)
{
    store *st = open_memory();
    int64_t seqs[SEARCH_LOGS];
    add_search_logs(st, seqs);

    /* Swarm alone: every log of it, in insertion order (not by time), with text. */
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", (void)0);

    /* Node. */
    EXPECT_SEARCH("0 2 4 6", f_.node = "nA");
    EXPECT_SEARCH("1 3 7", f_.node = "nB");
    EXPECT_SEARCH("5", f_.node = "nC");
    EXPECT_SEARCH("", f_.node = "nZ");
    EXPECT_SEARCH("", f_.node = "na"); /* node ids are matched exactly */
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.node = "");

    /* Iteration (-1: any). */
    EXPECT_SEARCH("0 1", f_.iteration = 0);
    EXPECT_SEARCH("2 3", f_.iteration = 1);
    EXPECT_SEARCH("4 5 6 7", f_.iteration = 2);
    EXPECT_SEARCH("", f_.iteration = 3);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.iteration = -1);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.iteration = -5);

    /* After a seq. */
    EXPECT_SEARCH("4 5 6 7", f_.after_seq = seqs[3]);
    EXPECT_SEARCH("1 2 3 4 5 6 7", f_.after_seq = seqs[0]);
    EXPECT_SEARCH("7", f_.after_seq = seqs[6]);
    EXPECT_SEARCH("", f_.after_seq = seqs[7]);
    EXPECT_SEARCH("", f_.after_seq = seqs[7] + 100);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.after_seq = -1);
    /* S2's rows between S1's: after S2's first row (seqs[0] + 1) the next of S1 is seqs[1] */
    EXPECT_SEARCH("1 2 3 4 5 6 7", f_.after_seq = seqs[0] + 1);

    /* Text: contained, ASCII letters in any case, the rest exactly. */
    EXPECT_SEARCH("0 1 2 6 7", f_.text = "loss");
    EXPECT_SEARCH("0 1 2 6 7", f_.text = "LOSS");
    EXPECT_SEARCH("0 1 2 6 7", f_.text = "lOsS");
    EXPECT_SEARCH("0 1", f_.text = "EPOCH 1");
    EXPECT_SEARCH("0 1 2 7", f_.text = "epoch");
    EXPECT_SEARCH("1", f_.text = "loss 0.6\n");
    EXPECT_SEARCH("4", f_.text = "nan");
    EXPECT_SEARCH("4", f_.text = "CAF\xc3\xa9");
    EXPECT_SEARCH("6", f_.text = "ary");  /* after a NUL byte in the text */
    EXPECT_SEARCH("3", f_.text = "100%"); /* % and _ are plain characters, not patterns */
    EXPECT_SEARCH("3", f_.text = "%");
    EXPECT_SEARCH("3", f_.text = "_");
    EXPECT_SEARCH("3", f_.text = "DONE_X");
    EXPECT_SEARCH("", f_.text = "e%h");
    EXPECT_SEARCH("", f_.text = "zzz");
    EXPECT_SEARCH("", f_.text = "loss 0.6\n!");
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.text = "");
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.text = NULL);

    /* Limit: the newest (by seq) N, returned oldest first; <= 0 or more than there are: all. */
    EXPECT_SEARCH("7", f_.limit = 1);
    EXPECT_SEARCH("5 6 7", f_.limit = 3);
    EXPECT_SEARCH("1 2 3 4 5 6 7", f_.limit = 7);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.limit = 8);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.limit = 1000);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.limit = 0);
    EXPECT_SEARCH("0 1 2 3 4 5 6 7", f_.limit = -1);
    store_close(st);
}

static void test_log_search_combined(void **state)
{
    store *st = open_memory();
    int64_t seqs[SEARCH_LOGS];
    add_search_logs(st, seqs);

    EXPECT_SEARCH("0 2 6", f_.node = "nA", f_.text = "Loss");
    EXPECT_SEARCH("3", f_.node = "nB", f_.iteration = 1);
    EXPECT_SEARCH("", f_.node = "nC", f_.iteration = 1);
    EXPECT_SEARCH("6", f_.node = "nA", f_.iteration = 2, f_.text = "LOSS");
    EXPECT_SEARCH("5 6 7", f_.iteration = 2, f_.after_seq = seqs[4]);
    EXPECT_SEARCH("7", f_.node = "nB", f_.text = "epoch", f_.after_seq = seqs[1]);
    EXPECT_SEARCH("2 7", f_.text = "epoch", f_.after_seq = seqs[1]);

    /* The limit applies to what the other filters let through: the newest matches. */
    EXPECT_SEARCH("1", f_.text = "epoch 1", f_.limit = 1);
    EXPECT_SEARCH("6 7", f_.text = "loss", f_.limit = 2);
    EXPECT_SEARCH("2 6", f_.node = "nA", f_.text = "loss", f_.limit = 2);
    EXPECT_SEARCH("6 7", f_.iteration = 2, f_.after_seq = seqs[4], f_.limit = 2);
    EXPECT_SEARCH("4 6", f_.node = "nA", f_.iteration = 2, f_.limit = 5);
    EXPECT_SEARCH("7", f_.node = "nB", f_.after_seq = seqs[0], f_.text = "EPOCH", f_.limit = 1);
    EXPECT_SEARCH("3 7", f_.node = "nB", f_.after_seq = seqs[1], f_.iteration = -1, f_.text = "",
                  f_.limit = 10);
    EXPECT_SEARCH("", f_.node = "nB", f_.after_seq = seqs[7], f_.text = "epoch", f_.limit = 1);

    /* Other swarms are never included, whatever the filters. */
    mt_error *e = NULL;
    store_log *rows = NULL;
    size_t n = 99;
    store_log_filter f = {.swarm = "S2", .iteration = -1, .text = "LOSS"};
    MUST(store_log_search(st, &f, &rows, &n, &e));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].swarm, "S2");
    assert_string_equal(rows[0].text, "epoch 1: loss in another swarm\n");
    assert_true(rows[0].seq > seqs[0] && rows[0].seq < seqs[1]);
    store_logs_free(rows, n);
    f = (store_log_filter){.swarm = "S2", .iteration = -1};
    MUST(store_log_search(st, &f, &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[1].text, "warning: other swarm\n");
    store_logs_free(rows, n);
    f = (store_log_filter){.swarm = "S3", .iteration = -1};
    MUST(store_log_search(st, &f, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_logs_free(rows, n);
    f = (store_log_filter){.swarm = NULL, .iteration = -1, .text = "loss"};
    MUST(store_log_search(st, &f, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_logs_free(rows, n);
    store_close(st);
}

static void test_log_index(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    int64_t seqs[SEARCH_LOGS];
    add_search_logs(st, seqs);
    /* a long text: not carried by the index either */
    char big[5000];
    memset(big, 'x', sizeof(big));
    MUST(store_log_add(st, "S1", "nD", "train", 9, 0, 1, big, sizeof(big), &e));

    store_log *rows = NULL;
    size_t n = 99;
    MUST(store_log_index(st, "S1", -1, &rows, &n, &e));
    assert_int_equal(n, SEARCH_LOGS + 1);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].swarm, "S1");
        assert_non_null(rows[i].text);
        assert_string_equal(rows[i].text, "");
        assert_int_equal(rows[i].len, 0);
        if (i)
            assert_true(rows[i].seq > rows[i - 1].seq); /* insertion order, not by time */
        if (i < SEARCH_LOGS) {
            assert_int_equal(rows[i].seq, seqs[i]);
            assert_string_equal(rows[i].node, search_logs[i].node);
            assert_string_equal(rows[i].task, search_logs[i].task);
            assert_int_equal(rows[i].iteration, search_logs[i].iteration);
            assert_int_equal(rows[i].circular, search_logs[i].circular);
            assert_int_equal(rows[i].ts_ms, search_logs[i].ts);
        }
    }
    assert_string_equal(rows[SEARCH_LOGS].node, "nD");
    assert_int_equal(rows[SEARCH_LOGS].iteration, 9);
    store_logs_free(rows, n);

    MUST(store_log_index(st, "S2", -1, &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].node, "nA");
    assert_string_equal(rows[1].node, "nB");
    assert_true(rows[0].seq > seqs[0] && rows[0].seq < seqs[1]);
    assert_true(rows[1].seq > seqs[3] && rows[1].seq < seqs[4]);
    assert_int_equal(rows[0].len, 0);
    store_logs_free(rows, n);

    MUST(store_log_index(st, "S3", -1, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_logs_free(rows, n);
    MUST(store_log_index(st, NULL, -1, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_logs_free(rows, n);
    store_close(st);
}

/* store_result_small as rows_text, checking the rows are of the swarm, ascending and carry
 * data of their length. */
static char *small_text(store *st, const char *swarm, int64_t after_seq, size_t max_len)
{
    mt_error *e = NULL;
    store_result *rows = NULL;
    size_t n = 99;
    MUST(store_result_small(st, swarm, NULL, after_seq, max_len, &rows, &n, &e));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].swarm, swarm);
        assert_true(rows[i].len <= max_len);
        assert_true(rows[i].seq > after_seq);
        if (i)
            assert_true(rows[i].seq > rows[i - 1].seq);
    }
    char *out = rows_text(rows, n);
    store_results_free(rows, n);
    return out;
}

#define EXPECT_SMALL(swarm, after, max_len, want)                                                  \
    do {                                                                                           \
        cleanup_free char *got_ = small_text(st, swarm, after, max_len);                           \
        if (strcmp(got_, want) != 0)                                                               \
            fail_msg("store_result_small(%s, %lld, %zu): got \"%s\", want \"%s\"", swarm,          \
                     (long long)(after), (size_t)(max_len), got_, want);                           \
    } while (0)

static void test_result_small(void **state)
{
    store *st = open_memory();
    mt_error *e = NULL;
    enum { BIG = 5000 };
    cleanup_free uint8_t *big = pattern(BIG, 7);
    add_result(st, "S", "train", "nodeA", 0, "metrics", "a", 10);
    MUST(store_result_add(st, "S", "train", "nodeA", 0, "model_params", NULL, big, BIG, 11, &e));
    add_result(st, "OTHER", "train", "nodeA", 0, "metrics", "x", 12);
    add_result(st, "S", "train", "nodeB", 0, "metrics", "bb", 13);
    add_result(st, "S", "test", "nodeA", 1, "loss", "ccc", 14);
    add_result(st, "S", "train", "nodeB", 1, "metrics", "dddd", 15);
    add_result(st, "S", "train", "nodeB", 1, "metrics", "eeeee", 16);
    add_result(st, "S", "train", "nodeC", 1, "metrics", "", 17);

    /* the seqs of S's rows, from the listing */
    store_result *rows = NULL;
    size_t n = 0;
    int64_t seq[7];
    MUST(store_result_list(st, "S", NULL, -1, false, &rows, &n, &e));
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++)
        seq[i] = rows[i].seq;
    store_results_free(rows, n);

    /* Every tag, oldest first; a value longer than max_len is left out (max_len itself is in);
     * an empty value is in, with data. */
    EXPECT_SMALL("S", 0, 4, "nodeA=a nodeB=bb nodeA=ccc nodeB=dddd nodeC=");
    EXPECT_SMALL("S", 0, 3, "nodeA=a nodeB=bb nodeA=ccc nodeC=");
    EXPECT_SMALL("S", 0, 5, "nodeA=a nodeB=bb nodeA=ccc nodeB=dddd nodeB=eeeee nodeC=");
    EXPECT_SMALL("S", 0, 0, "nodeC=");
    EXPECT_SMALL("S", -1, 4, "nodeA=a nodeB=bb nodeA=ccc nodeB=dddd nodeC=");
    EXPECT_SMALL("S", 0, BIG - 1, "nodeA=a nodeB=bb nodeA=ccc nodeB=dddd nodeB=eeeee nodeC=");

    /* After a seq. */
    EXPECT_SMALL("S", seq[0], 4, "nodeB=bb nodeA=ccc nodeB=dddd nodeC=");
    EXPECT_SMALL("S", seq[2], 4, "nodeA=ccc nodeB=dddd nodeC=");
    EXPECT_SMALL("S", seq[2], 2, "nodeC=");
    EXPECT_SMALL("S", seq[6] - 1, 4, "nodeC=");
    EXPECT_SMALL("S", seq[6], 1000000, "");

    /* Other swarms: never in, and their own results only. */
    EXPECT_SMALL("OTHER", 0, 4, "nodeA=x");
    EXPECT_SMALL("OTHER", 0, 0, "");
    EXPECT_SMALL("NOPE", 0, 1000000, "");
    MUST(store_result_small(st, NULL, NULL, 0, 1000000, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_results_free(rows, n);

    /* Large enough for the big value: it is in, byte-exact, with its other fields. */
    MUST(store_result_small(st, "S", NULL, 0, BIG, &rows, &n, &e));
    assert_int_equal(n, 7);
    assert_int_equal(rows[1].seq, seq[1]);
    assert_string_equal(rows[1].tag, "model_params");
    assert_string_equal(rows[1].task, "train");
    assert_string_equal(rows[1].node, "nodeA");
    assert_int_equal(rows[1].iteration, 0);
    assert_int_equal(rows[1].created_ms, 11);
    assert_int_equal(rows[1].len, BIG);
    assert_non_null(rows[1].data);
    assert_memory_equal(rows[1].data, big, BIG);
    assert_string_equal(rows[2].tag, "metrics");
    assert_string_equal(rows[3].tag, "loss");
    assert_string_equal(rows[3].task, "test");
    assert_int_equal(rows[3].iteration, 1);
    assert_int_equal(rows[3].created_ms, 14);
    assert_non_null(rows[6].data);
    assert_int_equal(rows[6].len, 0);
    store_results_free(rows, n);
    MUST(store_result_small(st, "S", NULL, seq[0], (size_t)1 << 40, &rows, &n, &e));
    assert_int_equal(n, 6);
    store_results_free(rows, n);
    store_close(st);
}

/* ---- threads ---- */

#define THREADS 4
#define ROUNDS  150

struct worker {
    store *st;
    int id;
    int failures;
    char msg[512];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char node[16], value[32];
    snprintf(node, sizeof(node), "node%d", w->id);
    for (int i = 0; i < ROUNDS && !w->failures; i++) {
        mt_error *e = NULL;
        uint32_t it = (uint32_t)(i % 5);
        snprintf(value, sizeof(value), "%d:%d", w->id, i);
        store_result *rows = NULL;
        size_t n = 0;
        uint8_t *data = NULL;
        size_t len = 0;
        store_log *logs = NULL;
        size_t nlogs = 0;
        if (store_result_add(w->st, "S", "train", node, it, "model_params", NULL, value,
                             strlen(value), i, &e) < 0 ||
            store_result_query(w->st, "S", "model_params", it, -1, 2, &rows, &n, &e) < 0 ||
            store_global_set(w->st, "S", node, value, strlen(value), &e) < 0 ||
            store_global_get(w->st, "S", node, &data, &len, &e) != 1 ||
            store_log_add(w->st, "S", node, "train", it, 0, i, value, strlen(value), &e) < 0 ||
            store_log_list(w->st, "S", node, NULL, &logs, &nlogs, &e) < 0) {
            snprintf(w->msg, sizeof(w->msg), "round %d: %s", i, mt_error_msg(e));
            w->failures++;
        } else {
            /* This thread's own last write is visible: one row per node, ours the newest
             * of ours; the global is ours. */
            int mine = 0;
            for (size_t k = 0; k < n; k++)
                if (!strcmp(rows[k].node, node)) {
                    mine++;
                    if (rows[k].len != strlen(value) || memcmp(rows[k].data, value, rows[k].len))
                        w->failures++;
                }
            if (mine != 1 || n > THREADS || len != strlen(value) || memcmp(data, value, len) ||
                nlogs != (size_t)i + 1) {
                snprintf(w->msg, sizeof(w->msg), "round %d: mine %d, n %zu, nlogs %zu", i, mine, n,
                         nlogs);
                w->failures++;
            }
        }
        store_results_free(rows, n);
        store_logs_free(logs, nlogs);
        free(data);
        mt_error_free(&e);
    }
    return NULL;
}

static void run_threads(store *st)
{
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.st = st, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < THREADS; i++)
        if (w[i].failures)
            fail_msg("thread %d: %s", i, w[i].msg);

    mt_error *e = NULL;
    store_result *rows = NULL;
    size_t n = 0;
    MUST(store_result_list(st, "S", "model_params", -1, false, &rows, &n, &e));
    assert_int_equal(n, THREADS * ROUNDS);
    store_results_free(rows, n);
    /* Each node's newest of round 4 is its last write there (i = ROUNDS - 1 if it is 4 mod 5). */
    MUST(store_result_query(st, "S", "model_params", (ROUNDS - 1) % 5, -1, 2, &rows, &n, &e));
    assert_int_equal(n, THREADS);
    for (size_t k = 0; k < n; k++) {
        char want[32];
        snprintf(want, sizeof(want), "%c:%d", rows[k].node[4], ROUNDS - 1);
        assert_int_equal(rows[k].len, strlen(want));
        assert_memory_equal(rows[k].data, want, rows[k].len);
    }
    store_results_free(rows, n);
}

static void test_threads_memory(void **state)
{
    store *st = open_memory();
    run_threads(st);
    store_close(st);
}

static void test_threads_file(void **state)
{
    cleanup_free char *path = xasprintf("%s/threads.db", dir);
    mt_error *e = NULL;
    store *st = store_open(path, &e);
    if (!st)
        fail_msg("%s", mt_error_msg(e));
    run_threads(st);
    store_close(st);
}

/* The dashboard's reads: small results of one tag; the per-iteration summary of the logs; the
 * index of one iteration. */
static void test_result_small_tag_and_log_rounds(void **state)
{
    (void)state;
    store *st = open_memory();
    mt_error *e = NULL;
    add_result(st, "S", "train", "nodeA", 0, "metrics", "a", 10);
    add_result(st, "S", "train", "nodeA", 0, "loss", "bb", 11);
    add_result(st, "S", "train", "nodeB", 1, "metrics", "ccc", 12);
    add_result(st, "T", "train", "nodeB", 1, "metrics", "dddd", 13);
    store_result *rows = NULL;
    size_t n = 0;
    MUST(store_result_small(st, "S", "metrics", 0, 100, &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].node, "nodeA");
    assert_memory_equal(rows[0].data, "a", 1);
    assert_string_equal(rows[1].node, "nodeB");
    assert_memory_equal(rows[1].data, "ccc", 3);
    int64_t first = rows[0].seq;
    store_results_free(rows, n);
    MUST(store_result_small(st, "S", "metrics", first, 100, &rows, &n, &e));
    assert_int_equal(n, 1);
    store_results_free(rows, n);
    MUST(store_result_small(st, "S", "nope", 0, 100, &rows, &n, &e));
    assert_int_equal(n, 0);
    store_results_free(rows, n);

    MUST(store_log_add(st, "S", "nodeA", "t1", 0, 0, 1000, "x", 1, &e));
    MUST(store_log_add(st, "S", "nodeB", "t1", 0, 0, 900, "y", 1, &e));
    MUST(store_log_add(st, "T", "nodeB", "t1", 0, 0, 5, "other", 5, &e));
    MUST(store_log_add(st, "S", "nodeA", "t2", 2, 0, 3000, "z", 1, &e));
    MUST(store_log_add(st, "S", "nodeB", "t2", 2, 0, 2500, "w", 1, &e));
    MUST(store_log_add(st, "S", "nodeC", "t2", 2, 0, 2700, "v", 1, &e));
    store_round *rounds = NULL;
    MUST(store_log_rounds(st, "S", 0, &rounds, &n, &e));
    assert_int_equal(n, 2);
    assert_int_equal(rounds[0].iteration, 0);
    assert_int_equal(rounds[0].start_ms, 900);
    assert_int_equal(rounds[0].end_ms, 1000);
    assert_int_equal(rounds[0].logs, 2);
    assert_int_equal(rounds[1].iteration, 2);
    assert_int_equal(rounds[1].start_ms, 2500);
    assert_int_equal(rounds[1].end_ms, 3000);
    assert_int_equal(rounds[1].logs, 3);
    int64_t last = rounds[1].last_seq;
    free(rounds);
    /* since a seq: the rows after it only */
    MUST(store_log_add(st, "S", "nodeA", "t2", 3, 0, 4000, "u", 1, &e));
    MUST(store_log_add(st, "T", "nodeA", "t2", 3, 0, 4001, "u", 1, &e));
    MUST(store_log_rounds(st, "S", last, &rounds, &n, &e));
    assert_int_equal(n, 1);
    assert_int_equal(rounds[0].iteration, 3);
    assert_int_equal(rounds[0].logs, 1);
    assert_true(rounds[0].last_seq > last);
    free(rounds);
    MUST(store_log_rounds(st, "nobody", 0, &rounds, &n, &e));
    assert_int_equal(n, 0);
    free(rounds);
    store_log *logs = NULL;
    MUST(store_log_index(st, "S", 2, &logs, &n, &e));
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(logs[i].iteration, 2);
        assert_int_equal(logs[i].len, 0);
        assert_string_equal(logs[i].task, "t2");
    }
    assert_string_equal(logs[0].node, "nodeA"); /* insertion order, not time */
    store_logs_free(logs, n);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_memory),
        cmocka_unit_test_setup_teardown(test_open_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test(test_swarms),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_globals),
        cmocka_unit_test(test_result_one_per_node_newest_first),
        cmocka_unit_test(test_result_request_ids),
        cmocka_unit_test(test_result_filters),
        cmocka_unit_test(test_values_byte_exact),
        cmocka_unit_test(test_logs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_log_search_single_filters),
        cmocka_unit_test(test_log_search_combined),
        cmocka_unit_test(test_log_index),
        cmocka_unit_test(test_result_small),
        cmocka_unit_test(test_result_small_tag_and_log_rounds),
        cmocka_unit_test(test_threads_memory),
        cmocka_unit_test_setup_teardown(test_threads_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
