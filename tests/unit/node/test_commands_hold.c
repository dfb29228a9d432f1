/* test_commands_hold.c - the queue holding MQTT commands that arrive before the node can act on
 * them (commands.h): arrival order, copies of topic and payload (an empty payload may come as
 * NULL), and the two bounds (count, bytes) past which a command is refused, not kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mem.h"

static void test_order_and_copies(void **state)
{
    command_hold *h = command_hold_new(8, 1024);
    char topic[32] = "manta/nodes/x/deploy_task";
    char payload[4] = "abc";
    assert_true(command_hold_push(h, topic, payload, 3));
    assert_true(command_hold_push(h, "manta/nodes/x/stop_task", NULL, 0)); /* 0-byte payload */
    assert_true(command_hold_push(h, "manta/nodes/x/collect_information", "set_overviews", 13));
    memset(topic, 'z', sizeof(topic) - 1); /* the queue kept copies */
    memset(payload, 'z', sizeof(payload));
    assert_int_equal(command_hold_count(h), 3);

    char *t;
    void *p;
    size_t len;
    assert_true(command_hold_pop(h, &t, &p, &len));
    assert_string_equal(t, "manta/nodes/x/deploy_task");
    assert_int_equal(len, 3);
    assert_memory_equal(p, "abc", 3);
    free(t);
    free(p);
    assert_true(command_hold_pop(h, &t, &p, &len));
    assert_string_equal(t, "manta/nodes/x/stop_task");
    assert_int_equal(len, 0);
    assert_non_null(p); /* never NULL, so callers may pass it on */
    free(t);
    free(p);
    assert_true(command_hold_pop(h, &t, &p, &len));
    assert_string_equal(t, "manta/nodes/x/collect_information");
    free(t);
    free(p);
    assert_false(command_hold_pop(h, &t, &p, &len));
    assert_int_equal(command_hold_count(h), 0);
    assert_int_equal(command_hold_bytes(h), 0);
    command_hold_free(h);
}

static void test_count_bound(void **state)
{
    command_hold *h = command_hold_new(3, 1 << 20);
    for (int i = 0; i < 3; i++)
        assert_true(command_hold_push(h, "t/stop_task", "x", 1));
    assert_false(command_hold_push(h, "t/stop_task", "x", 1));
    assert_int_equal(command_hold_count(h), 3);
    char *t;
    void *p;
    size_t len;
    assert_true(command_hold_pop(h, &t, &p, &len)); /* room again */
    free(t);
    free(p);
    assert_true(command_hold_push(h, "t/stop_task", "x", 1));
    command_hold_free(h); /* frees what is still held */
}

static void test_byte_bound(void **state)
{
    command_hold *h = command_hold_new(100, 100); /* topic + payload bytes */
    char big[200];
    memset(big, 'a', sizeof(big));
    assert_false(command_hold_push(h, "t/deploy_task", big, 200)); /* alone past the bound */
    assert_true(command_hold_push(h, "t/deploy_task", big, 50));   /* 13 + 50 */
    assert_int_equal(command_hold_bytes(h), 63);
    assert_false(command_hold_push(h, "t/deploy_task", big, 30)); /* 63 + 43 > 100 */
    assert_true(command_hold_push(h, "t/deploy_task", big, 24));  /* 63 + 37 = 100 */
    assert_int_equal(command_hold_count(h), 2);
    assert_false(command_hold_push(h, "t/x", NULL, 0));
    command_hold_free(h);
    command_hold_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_copies),
        cmocka_unit_test(test_count_bound),
        cmocka_unit_test(test_byte_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
