/* test_id.c - node IDs from aliases and MACs, and the xid text form
 * (shared/spec/reference-node.md section 4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "blake3.h"
#include "err.h"
#include "id.h"
#include "mem.h"

#define U64_MAX UINT64_MAX

static node_id alias_id(const char *alias)
{
    node_id id = {0x1111, 0x2222};
    mt_error *err = NULL;
    int rc = node_id_from_alias(alias, &id, &err);
    if (rc != 0)
        fail_msg("alias '%s': unexpected error: %s", alias, mt_error_msg(err));
    assert_null(err);
    return id;
}

/* What the alias gives when it is not a hex number: BLAKE3-128, big-endian. */
static node_id hashed_id(const char *alias)
{
    uint8_t d[16];
    b3_hash(alias, strlen(alias), d, sizeof(d));
    node_id id = {0, 0};
    for (int i = 0; i < 8; i++) {
        id.head = (id.head << 8) | d[i];
        id.tail = (id.tail << 8) | d[8 + i];
    }
    return id;
}

static void expect_id(node_id got, uint64_t head, uint64_t tail, const char *what)
{
    if (got.head != head || got.tail != tail)
        fail_msg("%s: got {%llu, %llu}, want {%llu, %llu}", what, (unsigned long long)got.head,
                 (unsigned long long)got.tail, (unsigned long long)head, (unsigned long long)tail);
}

static void xid_of(node_id id, char *out)
{
    char buf[NODE_XID_MAX + 1];
    memset(buf, 'X', sizeof(buf));
    node_id_to_xid(id, buf);
    assert_true(memchr(buf, '\0', sizeof(buf)) != NULL);
    strcpy(out, buf);
}

/* ---- the spec's vectors ------------------------------------------------------------- */

static void test_spec_alias_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *alias, *xid;
        uint64_t head, tail;
    } v[] = {
        {"default", "f78761cf8c3621e851097dff9a4b0463", 17836332393262621160ULL,
         5839336928621298787ULL},
        {"node-1", "e2bd61640f2008e1cda87a69dd0ec7df", 16338322105548409057ULL,
         14819229168961505247ULL},
        {"worker_0", "979e68ce529f0a3283be1b649b4b9b6f", 10925284981406108210ULL,
         9493055183459687279ULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        node_id id = alias_id(v[i].alias);
        expect_id(id, v[i].head, v[i].tail, v[i].alias);
        char xid[NODE_XID_MAX + 1];
        xid_of(id, xid);
        assert_string_equal(xid, v[i].xid);
    }
}

static void test_spec_mac_vector(void **state)
{
    (void)state;
    node_id id = node_id_from_mac(0x0242ac110002ULL); /* 02:42:ac:11:00:02 */
    char xid[NODE_XID_MAX + 1];
    xid_of(id, xid);
    assert_string_equal(xid, "a6e964a2b22b18aeb6c10da8fb1c8094");
    expect_id(id, 0xa6e964a2b22b18aeULL, 0xb6c10da8fb1c8094ULL, "MAC 02:42:ac:11:00:02");

    /* The hash input is the 8-byte little-endian MAC: 020011ac42020000. */
    static const uint8_t bytes[8] = {0x02, 0x00, 0x11, 0xac, 0x42, 0x02, 0x00, 0x00};
    uint8_t d[16];
    b3_hash(bytes, sizeof(bytes), d, sizeof(d));
    assert_int_equal(d[0], 0xa6);
    assert_int_equal(d[15], 0x94);
}

/* ---- aliases that are hex numbers (Python int(alias, 16)) ---------------------------- */

static void test_hex_aliases(void **state)
{
    (void)state;
    static const struct {
        const char *alias;
        uint64_t head, tail;
    } v[] = {
        {"abc", 0, 0xabc},
        {"0xABC", 0, 0xabc},
        {"0XabC", 0, 0xabc},
        {" 1f ", 0, 0x1f},
        {"\t\n1f\r\v\f", 0, 0x1f},
        {"+ff", 0, 0xff},
        {"0x_1f", 0, 0x1f},
        {"1_f", 0, 0x1f},
        {"0_1", 0, 0x1},
        {"-0", 0, 0},
        {"-0x0_0", 0, 0},
        {"0", 0, 0},
        {"cafe", 0, 0xcafe},
        {"0x1", 0, 1},
        {"0b1", 0, 0xb1}, /* base 16 has no 0b prefix: these are hex digits */
        {"10000000000000000", 1, 0},
        {"ffffffffffffffffffffffffffffffff", U64_MAX, U64_MAX},
        {"0x0000000000ffffffffffffffffffffffffffffffff", U64_MAX, U64_MAX}, /* leading zeros */
        {"00000000000000000000000000000000000000001", 0, 1},
        {"0123456789abcdef_fedcba9876543210", 0x0123456789abcdefULL, 0xfedcba9876543210ULL},
        /* CPython maps Unicode whitespace to ' ' and Unicode decimal digits to ASCII digits. */
        {"\u0661f", 0, 0x1f},                  /* ARABIC-INDIC DIGIT ONE */
        {"\u0660x1f", 0, 0x1f},                /* ARABIC-INDIC DIGIT ZERO as the prefix's 0 */
        {"\u00a01f\u3000", 0, 0x1f},           /* NO-BREAK SPACE, IDEOGRAPHIC SPACE */
        {"\xef\xbc\x91\xef\xbc\x92", 0, 0x12}, /* FULLWIDTH DIGIT ONE, TWO */
        {"\U0001D7CF", 0, 1},                  /* MATHEMATICAL BOLD DIGIT ONE */
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++)
        expect_id(alias_id(v[i].alias), v[i].head, v[i].tail, v[i].alias);
}

static void test_non_hex_aliases_hash(void **state)
{
    (void)state;
    static const char *const aliases[] = {
        "1__f",
        "_1f",
        "1f_",
        "0x",
        "",
        "g1",
        "0x__1",
        "- 1",
        "+-1",
        "0_x1",
        "0x-1",
        "1 f",
        "--1",
        "default",
        "+",
        "-",
        " ",
        "_",
        "0x_",
        "\x1c"
        "1f", /* \x1c is whitespace to str.isspace() but not to int() */
        "1f\x7f",
        "\xef\xbc\xa1", /* FULLWIDTH LATIN CAPITAL LETTER A: not a decimal digit */
        "\xff"
        "1",        /* not UTF-8 */
        "\xc0\xb1", /* overlong encoding of '1' */
    };
    for (size_t i = 0; i < ARRAY_LEN(aliases); i++) {
        node_id want = hashed_id(aliases[i]);
        node_id got = alias_id(aliases[i]);
        if (!node_id_equal(got, want))
            fail_msg("alias #%zu '%s' should be hashed", i, aliases[i]);
    }
    /* The empty alias is BLAKE3 of nothing: af1349b9f5f9a1a6a0404dea36dcc949... */
    expect_id(alias_id(""), 0xaf1349b9f5f9a1a6ULL, 0xa0404dea36dcc949ULL, "empty alias");
}

static void test_alias_out_of_range(void **state)
{
    (void)state;
    static const char *const aliases[] = {
        "-1",
        "-0x1",
        " -ff ",
        "-ffffffffffffffffffffffffffffffffffff",
        "fffffffffffffffffffffffffffffffff", /* 33 digits */
        "100000000000000000000000000000000", /* 2^128 */
        "0x1_0000_0000_0000_0000_0000_0000_0000_0000",
    };
    for (size_t i = 0; i < ARRAY_LEN(aliases); i++) {
        node_id id = {7, 7};
        mt_error *err = NULL;
        assert_int_equal(node_id_from_alias(aliases[i], &id, &err), -1);
        assert_non_null(err);
        assert_int_equal(err->code, MT_ERR_CONFIG);
        const char *msg = mt_error_msg(err);
        assert_non_null(strstr(msg, aliases[i]));
        assert_non_null(strstr(msg, "128-bit"));
        assert_non_null(strstr(msg, "choose another alias"));
        mt_error_free(&err);
        expect_id(id, 7, 7, "output untouched on error");
    }
    /* A NULL err is allowed. */
    node_id id;
    assert_int_equal(node_id_from_alias("-1", &id, NULL), -1);
}

/* ---- xid text form ------------------------------------------------------------------ */

static void test_xid_form(void **state)
{
    (void)state;
    static const struct {
        uint64_t head, tail;
        const char *xid;
    } v[] = {
        {0, 0xabc, "0abc"},
        {0, 0, "00"},
        {0, 1, "01"},
        {0, 0xf, "0f"},
        {0, 0x10, "010"},
        {0x1000000000000000ULL, 5, "10000000000000000000000000000005"}, /* 32 digits */
        {U64_MAX, U64_MAX, "ffffffffffffffffffffffffffffffff"},
        /* 31 digits get exactly one 0, giving 32 characters */
        {0x0123456789abcdefULL, 0x0123456789abcdefULL, "0123456789abcdef0123456789abcdef"},
        /* 30 digits still get only one 0 */
        {0x00abcdef01234567ULL, 0,
         "0abcdef01234567"
         "0000000000000000"},
        {1, 0, "010000000000000000"},
        {0, U64_MAX, "0ffffffffffffffff"},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        char xid[NODE_XID_MAX + 1];
        xid_of((node_id){v[i].head, v[i].tail}, xid);
        assert_string_equal(xid, v[i].xid);
        /* and it reads back */
        node_id back = {9, 9};
        assert_true(node_id_parse_xid(xid, &back));
        expect_id(back, v[i].head, v[i].tail, xid);
    }
    /* 30 significant digits: 31 characters, not 32. */
    char xid[NODE_XID_MAX + 1];
    xid_of((node_id){0x00abcdef01234567ULL, 0}, xid);
    assert_int_equal(strlen(xid), 31);
}

static void test_parse_xid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t head, tail;
    } ok[] = {
        {"0", 0, 0},
        {"00", 0, 0},
        {"abc", 0, 0xabc},
        {"0abc", 0, 0xabc},
        {"000000abc", 0, 0xabc},
        {"ABC", 0, 0xabc},
        {"ffffffffffffffffffffffffffffffff", U64_MAX, U64_MAX},
        {"0ffffffffffffffffffffffffffffffff", U64_MAX, U64_MAX}, /* 33 chars, zero padded */
        {"0000000000ffffffffffffffffffffffffffffffff", U64_MAX, U64_MAX},
        {"f78761cf8c3621e851097dff9a4b0463", 17836332393262621160ULL, 5839336928621298787ULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        node_id id = {9, 9};
        if (!node_id_parse_xid(ok[i].s, &id))
            fail_msg("'%s' should parse", ok[i].s);
        expect_id(id, ok[i].head, ok[i].tail, ok[i].s);
    }

    static const char *const bad[] = {
        "",
        "g",
        "abcg",
        "12 ",
        " 12",
        "-1",
        "+1",
        "1_f",
        "fffffffffffffffffffffffffffffffff", /* 33 significant digits */
        "100000000000000000000000000000000", /* 2^128 */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        node_id id = {9, 9};
        if (node_id_parse_xid(bad[i], &id))
            fail_msg("'%s' should be rejected", bad[i]);
        expect_id(id, 9, 9, "output untouched on rejection");
    }
}

static void test_alias_xid_round_trip(void **state)
{
    (void)state;
    static const char *const aliases[] = {"default", "node-1", "worker_0", "abc", "0", "x"};
    for (size_t i = 0; i < ARRAY_LEN(aliases); i++) {
        node_id id = alias_id(aliases[i]);
        char xid[NODE_XID_MAX + 1];
        xid_of(id, xid);
        node_id back;
        assert_true(node_id_parse_xid(xid, &back));
        assert_true(node_id_equal(id, back));
    }
}

/* ---- random IDs and equality -------------------------------------------------------- */

static void test_random(void **state)
{
    (void)state;
    node_id a, b;
    mt_error *err = NULL;
    assert_int_equal(node_id_random(&a, &err), 0);
    assert_null(err);
    assert_int_equal(node_id_random(&b, &err), 0);
    assert_false(node_id_equal(a, b));
    /* Shaped like the reference's UUID4: version nibble 4, variant bits 10. */
    assert_int_equal((a.head >> 12) & 0xF, 4);
    assert_int_equal(a.tail >> 62, 2);
    char xid[NODE_XID_MAX + 1];
    xid_of(a, xid);
    assert_in_range(strlen(xid), 2, 32);
}

static void test_equal(void **state)
{
    (void)state;
    assert_true(node_id_equal((node_id){1, 2}, (node_id){1, 2}));
    assert_false(node_id_equal((node_id){1, 2}, (node_id){2, 1}));
    assert_false(node_id_equal((node_id){1, 2}, (node_id){1, 3}));
    assert_false(node_id_equal((node_id){0, 2}, (node_id){1, 2}));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_alias_vectors),
        cmocka_unit_test(test_spec_mac_vector),
        cmocka_unit_test(test_hex_aliases),
        cmocka_unit_test(test_non_hex_aliases_hash),
        cmocka_unit_test(test_alias_out_of_range),
        cmocka_unit_test(test_xid_form),
        cmocka_unit_test(test_parse_xid),
        cmocka_unit_test(test_alias_xid_round_trip),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
