/* test_utf8.c - cutting at character boundaries, validation and lossy repair (issue 16 item 2:
 * a 512-byte buffer cut a '€' in half and the JSON encoder then refused the answer), and the
 * cleaned copy of text from the network (control characters and ill-formed bytes become '?'). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "utf8.h"

static void test_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("plain", 5));
    assert_true(utf8_valid("a\0b", 3));
    assert_true(utf8_valid("\xe2\x82\xac", 3));      /* € */
    assert_true(utf8_valid("\xf0\x9f\x98\x80", 4));  /* U+1F600 */
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_false(utf8_valid("\xe2\x82", 2));         /* cut */
    assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(utf8_valid("\xff", 1));
    assert_false(utf8_valid("\x80", 1));
}

static void test_cut(void **state)
{
    (void)state;
    const char *euros = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"; /* €€€ */
    assert_int_equal(utf8_cut(euros, 9, 9), 9);
    assert_int_equal(utf8_cut(euros, 9, 20), 9);
    assert_int_equal(utf8_cut(euros, 9, 8), 6);
    assert_int_equal(utf8_cut(euros, 9, 7), 6);
    assert_int_equal(utf8_cut(euros, 9, 6), 6);
    assert_int_equal(utf8_cut(euros, 9, 5), 3);
    assert_int_equal(utf8_cut(euros, 9, 0), 0);
    assert_int_equal(utf8_cut("ab\xf0\x9f\x98\x80", 6, 5), 2);
    assert_int_equal(utf8_cut("abc", 3, 2), 2);
    /* 200 euros into 512 bytes, as the admin error did: a whole number of characters */
    char big[601], dst[512];
    for (int i = 0; i < 600; i++)
        big[i] = euros[i % 3];
    big[600] = '\0';
    utf8_copy(dst, sizeof(dst), big);
    assert_int_equal(strlen(dst), 510);
    assert_true(utf8_valid(dst, strlen(dst)));
}

static void test_lossy(void **state)
{
    (void)state;
    size_t n = 0;
    cleanup_free char *a = utf8_lossy("ok \xe2\x82\xac", 6, &n);
    assert_int_equal(n, 6);
    assert_string_equal(a, "ok \xe2\x82\xac");
    cleanup_free char *b = utf8_lossy("x\xff y\xe2\x82", 6, &n);
    assert_string_equal(b, "x\xef\xbf\xbd y\xef\xbf\xbd\xef\xbf\xbd");
    assert_true(utf8_valid(b, n));
    cleanup_free char *c = utf8_lossy(NULL, 0, &n);
    assert_string_equal(c, "");
    assert_int_equal(n, 0);
}

static void test_drop_partial_tail(void **state)
{
    (void)state;
    char a[] = "ab\xe2\x82";
    utf8_drop_partial_tail(a);
    assert_string_equal(a, "ab");
    char b[] = "ab\xe2\x82\xac";
    utf8_drop_partial_tail(b);
    assert_string_equal(b, "ab\xe2\x82\xac");
    char c[] = "\xf0\x9f\x98";
    utf8_drop_partial_tail(c);
    assert_string_equal(c, "");
    char d[] = "";
    utf8_drop_partial_tail(d);
    assert_string_equal(d, "");
    char e[] = "plain";
    utf8_drop_partial_tail(e);
    assert_string_equal(e, "plain");
}

static void test_clean_copy(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(utf8_clean_copy(out, sizeof(out), "host-\xC3\xA9"), "host-\xC3\xA9");
    assert_string_equal(utf8_clean_copy(out, sizeof(out), "a\nb\tc\x7F"), "a?b?c?");
    assert_string_equal(utf8_clean_copy(out, sizeof(out), "x\xFF\xC3y"), "x??y");
    assert_string_equal(utf8_clean_copy(out, sizeof(out), "\xED\xA0\x80"), "???"); /* surrogate */
    assert_string_equal(utf8_clean_copy(out, sizeof(out), "\xC0\xAF"), "??");      /* overlong */
    assert_string_equal(utf8_clean_copy(out, sizeof(out), NULL), "");
    /* cut at a boundary: 6 bytes of room, "é" is 2 bytes */
    char small[7];
    assert_string_equal(utf8_clean_copy(small, sizeof(small), "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"),
                        "\xC3\xA9\xC3\xA9\xC3\xA9");
    char tiny[6];
    assert_string_equal(utf8_clean_copy(tiny, sizeof(tiny), "ab\xE2\x82\xAC\xE2\x82\xAC"),
                        "ab\xE2\x82\xAC");
    char *d = utf8_clean_dup("ok\r\n\xF4\x90\x80\x80"); /* above U+10FFFF */
    assert_string_equal(d, "ok??????");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),      cmocka_unit_test(test_cut),
        cmocka_unit_test(test_lossy),      cmocka_unit_test(test_drop_partial_tail),
        cmocka_unit_test(test_clean_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
