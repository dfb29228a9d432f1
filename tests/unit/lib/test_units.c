/* test_units.c - parse_size and format_size, parse_duration and parse_int_range. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mem.h"
#include "units.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

static void expect_size(const char *text, uint64_t want)
{
    uint64_t got = 0xdeadbeef;
    if (!parse_size(text, &got))
        fail_msg("parse_size(\"%s\") rejected, want %llu", text, (unsigned long long)want);
    if (got != want)
        fail_msg("parse_size(\"%s\") = %llu, want %llu", text, (unsigned long long)got,
                 (unsigned long long)want);
}

static void expect_reject(const char *text)
{
    uint64_t got = 12345;
    if (parse_size(text, &got))
        fail_msg("parse_size(\"%s\") accepted as %llu", text, (unsigned long long)got);
    assert_int_equal(got, 12345); /* untouched on failure */
}

static void test_parse_plain_and_suffixes(void **state)
{
    expect_size("100M", 100 * MIB);
    assert_int_equal(100 * MIB, 104857600ULL);
    expect_size("10m", 10 * MIB);
    expect_size("512K", 512 * KIB);
    expect_size("512k", 512 * KIB);
    expect_size("1G", GIB);
    expect_size("1g", GIB);
    expect_size("2T", 2 * TIB);
    expect_size("1.5G", GIB + GIB / 2);
    expect_size("0.5K", 512);
    expect_size("100MB", 100 * MIB);
    expect_size("100mb", 100 * MIB);
    expect_size("100MiB", 100 * MIB);
    expect_size("100mib", 100 * MIB);
    expect_size("4096", 4096);
    expect_size("4096B", 4096);
    expect_size("0", 0);
    expect_size("0K", 0);
}

static void test_parse_whitespace(void **state)
{
    /* units.c skips blanks before the number, between number and unit, and at the end. */
    expect_size(" 7 k ", 7 * KIB);
    expect_size("\t64M\n", 64 * MIB);
    expect_size("1 GiB", GIB);
}

static void test_parse_fraction_truncates(void **state)
{
    expect_size("1.5", 1);     /* fractional bytes are floored */
    expect_size("1.1K", 1126); /* 1126.4 */
}

static void test_parse_limit(void **state)
{
    expect_size("4194304T", 1ULL << 62); /* exactly 2^62 is allowed */
    expect_reject("4194305T");
    expect_reject("99999999999T");
    expect_reject("1e30");
}

static void test_parse_rejects(void **state)
{
    expect_reject("");
    expect_reject("   ");
    expect_reject("M");
    expect_reject("MB");
    expect_reject("-1");
    expect_reject("-1M");
    expect_reject("+1");
    expect_reject("1X");
    expect_reject("1.2.3");
    expect_reject("10 M B");
    expect_reject("10KK");
    expect_reject("10iB"); /* "iB" needs a unit before it */
    expect_reject("12 34");
    expect_reject("nan");
    expect_reject("inf");
    expect_reject("0x10"); /* decimal only */
    expect_reject("1e3");
    expect_reject(".");
    expect_reject(".M");

    uint64_t got = 7;
    assert_false(parse_size(NULL, &got));
    assert_int_equal(got, 7);
}

static void expect_format(uint64_t bytes, const char *want)
{
    char buf[32];
    assert_ptr_equal(format_size(bytes, buf, sizeof(buf)), buf);
    assert_string_equal(buf, want);
    uint64_t back = 0;
    assert_true(parse_size(buf, &back));
    assert_int_equal(back, bytes);
}

static void test_format_round_trip(void **state)
{
    expect_format(0, "0");
    expect_format(1, "1");
    expect_format(17, "17");
    expect_format(1024, "1K");
    expect_format(1536 * KIB, "1536K");
    expect_format(4 * GIB, "4G");
    expect_format(100 * MIB, "100M");
    expect_format(1000, "1000");
    expect_format(3 * TIB, "3T");
    expect_format(2048 * TIB, "2048T"); /* T is the largest unit */
    expect_format(1ULL << 62, "4194304T");
}

static void test_format_round_trip_many(void **state)
{
    /* Every value built from a few mantissas and unit multiples reads back exactly. */
    static const uint64_t mant[] = {1, 3, 7, 1000, 1023, 1025, 1536, 999999};
    static const uint64_t mult[] = {1, KIB, MIB, GIB, TIB};
    for (size_t i = 0; i < sizeof(mant) / sizeof(mant[0]); i++) {
        for (size_t j = 0; j < sizeof(mult) / sizeof(mult[0]); j++) {
            uint64_t v = mant[i] * mult[j];
            char buf[32];
            format_size(v, buf, sizeof(buf));
            uint64_t back = 0;
            if (!parse_size(buf, &back) || back != v)
                fail_msg("%llu formatted as \"%s\" does not read back", (unsigned long long)v, buf);
        }
    }
}

static void expect_duration(const char *text, int64_t want)
{
    int64_t got = -7;
    mt_error *err = NULL;
    if (parse_duration(text, 1, 100LL * 366 * 86400, &got, &err) != 0)
        fail_msg("parse_duration(\"%s\") rejected: %s", text, mt_error_msg(err));
    if (got != want)
        fail_msg("parse_duration(\"%s\") = %lld, want %lld", text, (long long)got, (long long)want);
}

static void expect_duration_error(const char *text, const char *needle)
{
    int64_t got = -7;
    mt_error *err = NULL;
    if (parse_duration(text, 1, 100LL * 366 * 86400, &got, &err) == 0)
        fail_msg("parse_duration(\"%s\") accepted as %lld", text, (long long)got);
    assert_int_equal(got, -7);
    assert_int_equal(err->code, MT_ERR_USAGE);
    if (!strstr(mt_error_msg(err), needle))
        fail_msg("parse_duration(\"%s\"): '%s' lacks '%s'", text, mt_error_msg(err), needle);
    mt_error_free(&err);
}

/* Issue 16 item 9: --ttl overflowed a float-to-integer cast on huge, infinite and NaN values
 * (UBSan), and 0.4 rounded to 0, which means a token that never expires. */
static void test_durations(void **state)
{
    (void)state;
    expect_duration("3600", 3600);
    expect_duration("3600s", 3600);
    expect_duration("90m", 5400);
    expect_duration("1.5h", 5400);
    expect_duration("30d", 30 * 86400);
    expect_duration(" 12h ", 12 * 3600);
    expect_duration("0.6", 1);
    expect_duration(".5m", 30);
    expect_duration("36600d", 36600LL * 86400);
    const char *malformed[] = {"",     " ",   "soon",  "1e300", "inf",   "nan", "-1", "+5",
                               "0x10", "1hh", "1 h h", "5w",    "1.2.3", ".",   "1e3"};
    for (size_t i = 0; i < ARRAY_LEN(malformed); i++)
        expect_duration_error(malformed[i], "is not a duration");
    expect_duration_error("0.4", "shorter than the shortest allowed duration, 1 s");
    expect_duration_error("0", "shorter than");
    expect_duration_error("36601d", "longer than the longest allowed duration");
    expect_duration_error("9223372036854775807", "longer than");
    expect_duration_error("99999999999999999999999999999999999999999d", "longer than");
    /* the whole int64 range: 2^63 rounds from (double)INT64_MAX and must not be converted */
    int64_t got = 0;
    assert_int_equal(parse_duration("9223372036854775807", 0, INT64_MAX, &got, NULL), -1);
    assert_int_equal(parse_duration("9223372036854774784", 0, INT64_MAX, &got, NULL), 0);
    assert_true(got > 0);
}

static void test_int_range(void **state)
{
    (void)state;
    int64_t v = 42;
    assert_true(parse_int_range("7", 0, 10, &v) && v == 7);
    assert_true(parse_int_range(" -3 ", -5, 10, &v) && v == -3);
    assert_true(parse_int_range("10", 0, 10, &v) && v == 10);
    v = 42;
    const char *bad[] = {"", "x", "11", "-1", "1e3", "3.0", "0x5", "99999999999999999999", "5 5"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (parse_int_range(bad[i], 0, 10, &v))
            fail_msg("parse_int_range(\"%s\") accepted", bad[i]);
    assert_int_equal(v, 42);
    assert_false(parse_int_range(NULL, 0, 10, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain_and_suffixes),
        cmocka_unit_test(test_parse_whitespace),
        cmocka_unit_test(test_parse_fraction_truncates),
        cmocka_unit_test(test_parse_limit),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_round_trip_many),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_int_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
