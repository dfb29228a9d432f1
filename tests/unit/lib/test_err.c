/* test_err.c - the one error type: a message with context added on the way up, a category, the
 * system's errno, and a status for callers that answer in another protocol's terms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "err.h"

static void test_set_wrap_and_free(void **state)
{
    (void)state;
    mt_error *e = NULL;
    assert_int_equal(mt_error_set(&e, MT_ERR_CONFIG, "`%s` is wrong.", "x"), -1);
    assert_int_equal(e->code, MT_ERR_CONFIG);
    assert_int_equal(mt_error_status(e, 42), 42); /* no status: the default */
    assert_int_equal(mt_error_wrap(&e, "loading %s", "a.toml"), -1);
    assert_string_equal(mt_error_msg(e), "loading a.toml: `x` is wrong.");
    mt_error_free(&e);
    assert_null(e);
    assert_string_equal(mt_error_msg(NULL), "");
    assert_int_equal(mt_error_status(NULL, 7), 7);
    /* a NULL destination discards */
    assert_int_equal(mt_error_set(NULL, MT_ERR_IO, "lost"), -1);
}

static void test_status_rides_on_the_error(void **state)
{
    (void)state;
    mt_error *e = NULL;
    assert_int_equal(mt_error_set_status(&e, 9, MT_ERR_INVALID, "bad %d", 1), -1);
    assert_int_equal(mt_error_status(e, 0), 9);
    assert_int_equal(e->code, MT_ERR_INVALID);
    /* context keeps the status */
    mt_error_wrap(&e, "reading");
    assert_int_equal(mt_error_status(e, 0), 9);
    assert_string_equal(mt_error_msg(e), "reading: bad 1");
    /* a new error replaces the old one, and its status */
    mt_error_set(&e, MT_ERR_IO, "other");
    assert_int_equal(mt_error_status(e, 0), 0);
    mt_error_free(&e);
}

static void test_sys_appends_the_system_error(void **state)
{
    (void)state;
    mt_error *e = NULL;
    mt_error_sys(&e, ENOENT, "cannot open %s", "f");
    assert_int_equal(e->errnum, ENOENT);
    assert_int_equal(e->code, MT_ERR_IO);
    assert_non_null(strstr(mt_error_msg(e), "cannot open f: "));
    mt_error_free(&e);
}

static int cleaned(void)
{
    cleanup_error mt_error *e = NULL;
    mt_error_set_status(&e, 3, MT_ERR_RESOURCE, "freed at the end of the scope");
    return mt_error_status(e, 0); /* LeakSanitizer checks the rest */
}

static void test_cleanup_error_frees(void **state)
{
    (void)state;
    assert_int_equal(cleaned(), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_wrap_and_free),
        cmocka_unit_test(test_status_rides_on_the_error),
        cmocka_unit_test(test_sys_appends_the_system_error),
        cmocka_unit_test(test_cleanup_error_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
