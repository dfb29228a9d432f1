/* test_manager_token.c - node tokens: a subject is the node's identity, so one that does not
 * fit is refused (never cut: two aliases sharing a prefix would become one node), and a token
 * without one is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "token.h"

static const uint8_t SECRET[TOKEN_SECRET_LEN] = "0123456789abcdef0123456789abcdef";

static void test_subject_copied_whole(void **state)
{
    (void)state;
    char alias[128];
    memset(alias, 'a', 127);
    alias[127] = '\0';
    cleanup_free char *tok = token_create(SECRET, alias, 0, 1000);
    char sub[128];
    mt_error *e = NULL;
    assert_int_equal(token_verify(SECRET, tok, 2000, sub, sizeof(sub), &e), 0);
    assert_string_equal(sub, alias);
    cleanup_free char *bearer = xasprintf("Bearer %s", tok);
    assert_int_equal(token_verify(SECRET, bearer, 2000, NULL, 0, &e), 0);
}

static void test_subject_too_long_is_refused(void **state)
{
    (void)state;
    char alias[129];
    memset(alias, 'a', 128);
    alias[128] = '\0';
    cleanup_free char *tok = token_create(SECRET, alias, 0, 1000);
    char sub[128] = "untouched";
    mt_error *e = NULL;
    assert_int_equal(token_verify(SECRET, tok, 2000, sub, sizeof(sub), &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "longer than 127 bytes"));
    assert_null(strstr(mt_error_msg(e), tok));
    mt_error_free(&e);
    assert_string_equal(sub, "untouched");
}

static void test_empty_subject_is_refused(void **state)
{
    (void)state;
    cleanup_free char *tok = token_create(SECRET, "", 0, 1000);
    char sub[128];
    mt_error *e = NULL;
    assert_int_equal(token_verify(SECRET, tok, 2000, sub, sizeof(sub), &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "names no node"));
    mt_error_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_copied_whole),
        cmocka_unit_test(test_subject_too_long_is_refused),
        cmocka_unit_test(test_empty_subject_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
