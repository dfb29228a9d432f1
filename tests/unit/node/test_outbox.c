/* test_outbox.c - finished tasks' output kept on disk for the manager (outbox.h): delivered in
 * the order kept, across a reopen (a restart of the node), a damaged item set aside without
 * blocking the rest, and the size and age bounds dropping the oldest first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "deliver.h"
#include "fsutil.h"
#include "mem.h"
#include "outbox.h"
#include "rpc.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/manta-test-outbox-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static outbox *open_box(uint64_t max_bytes, int64_t max_age_s)
{
    mt_error *e = NULL;
    cleanup_free char *d = fs_join(dir, "outbox");
    outbox *ob = outbox_open(d, max_bytes, max_age_s, &e);
    if (!ob)
        fail_msg("%s", mt_error_msg(e));
    return ob;
}

static void put(outbox *ob, const char *logs, const char *update)
{
    mt_error *e = NULL;
    if (outbox_put(ob, (const uint8_t *)logs, strlen(logs), (const uint8_t *)update,
                   update ? strlen(update) : 0, &e) < 0)
        fail_msg("%s", mt_error_msg(e));
}

static void expect_next(outbox *ob, const char *logs, const char *update)
{
    outbox_item it;
    mt_error *e = NULL;
    assert_int_equal(outbox_oldest(ob, &it, &e), 1);
    assert_int_equal(it.logs_len, strlen(logs));
    assert_memory_equal(it.logs, logs, it.logs_len);
    assert_int_equal(it.update_len, update ? strlen(update) : 0);
    if (update)
        assert_memory_equal(it.update, update, it.update_len);
    assert_true(it.kept_ms > 0);
    outbox_remove(ob, &it);
    outbox_item_clear(&it);
}

static void test_order_and_restart(void **state)
{
    outbox *ob = open_box(0, 0);
    put(ob, "logs of A", "A done");
    put(ob, "logs of B", NULL);
    outbox_free(ob);
    ob = open_box(0, 0); /* the node restarted */
    put(ob, "logs of C", "C failed");
    uint64_t bytes = 0;
    assert_int_equal(outbox_count(ob, &bytes), 3);
    assert_true(bytes > strlen("logs of A") * 3);
    expect_next(ob, "logs of A", "A done");
    expect_next(ob, "logs of B", NULL);
    expect_next(ob, "logs of C", "C failed");
    outbox_item it;
    mt_error *e = NULL;
    assert_int_equal(outbox_oldest(ob, &it, &e), 0);
    assert_int_equal(outbox_count(ob, NULL), 0);
    outbox_free(ob);
}

static void test_damaged_item_is_set_aside(void **state)
{
    outbox *ob = open_box(0, 0);
    put(ob, "first", "1");
    put(ob, "second", "2");
    /* damage the first */
    cleanup_free char *d = fs_join(dir, "outbox");
    cleanup_free char *p = fs_join(d, "00000000000000000001.item");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("garbage", f);
    fclose(f);
    outbox_item it;
    mt_error *e = NULL;
    assert_int_equal(outbox_oldest(ob, &it, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "damaged"));
    mt_error_free(&e);
    expect_next(ob, "second", "2"); /* the rest is not blocked */
    cleanup_free char *bad = xasprintf("%s.bad", p);
    assert_int_equal(access(bad, F_OK), 0);
    outbox_free(ob);
}

static void test_bounds_drop_the_oldest(void **state)
{
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    outbox *ob = open_box(2500, 3600);
    put(ob, big, "old");
    put(ob, big, "mid");
    put(ob, big, "new");
    time_t now = time(NULL);
    assert_int_equal(outbox_prune(ob, (int64_t)now * 1000), 1); /* over 2500 bytes */
    expect_next(ob, big, "mid");
    /* age: "new", made two hours old, goes (the bound is an hour); "late" stays */
    put(ob, "late", "late");
    cleanup_free char *d = fs_join(dir, "outbox");
    cleanup_free char *p = fs_join(d, "00000000000000000003.item");
    struct utimbuf old = {.actime = now - 7200, .modtime = now - 7200};
    assert_int_equal(utime(p, &old), 0);
    assert_int_equal(outbox_prune(ob, (int64_t)now * 1000), 1);
    expect_next(ob, "late", "late");
    assert_int_equal(outbox_count(ob, NULL), 0);
    outbox_free(ob);
}

/* A manager that goes away mid-call (its shutdown cancels the call) must not cost the output:
 * seen in the chaos test, where a SIGTERM to the manager during AddTaskLogs dropped a task's
 * logs for good. Only a refusal of the content itself drops an item. */
static void test_what_stays_for_a_later_pass(void **state)
{
    (void)state;
    int later[] = {RPC_CANCELLED,          RPC_UNKNOWN,   RPC_DEADLINE_EXCEEDED,
                   RPC_RESOURCE_EXHAUSTED, RPC_ABORTED,   RPC_INTERNAL,
                   RPC_UNAVAILABLE,        RPC_DATA_LOSS, RPC_UNAUTHENTICATED};
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
        assert_true(deliver_retry_later(later[i]));
    int dropped[] = {RPC_INVALID_ARGUMENT,  RPC_NOT_FOUND,           RPC_ALREADY_EXISTS,
                     RPC_PERMISSION_DENIED, RPC_FAILED_PRECONDITION, RPC_OUT_OF_RANGE,
                     RPC_UNIMPLEMENTED};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        assert_false(deliver_retry_later(dropped[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_item_is_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_drop_the_oldest, setup, teardown),
        cmocka_unit_test(test_what_stays_for_a_later_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
