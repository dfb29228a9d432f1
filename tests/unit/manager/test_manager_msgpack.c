/* test_manager_msgpack.c - the msgpack writer against bytes from Python's
 * msgpack.packb(value, use_bin_type=True) (python3-msgpack 1.0.3), and TOML values encoded as
 * the SDK's dict_to_bytes would encode the same Python values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "msgpack.h"
#include "strbuf.h"
#include "toml.h"

static char *hex_of(const void *data, size_t len)
{
    const uint8_t *p = data;
    char *s = xmalloc(len * 2 + 1);
    for (size_t i = 0; i < len; i++)
        sprintf(s + 2 * i, "%02x", p[i]);
    s[len * 2] = '\0';
    return s;
}

static void expect_hex(const strbuf *sb, const char *want, const char *what)
{
    cleanup_free char *got = hex_of(sb->buf, sb->len);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got %s, want %s", what, got, want);
}

/* ---- scalars ---------------------------------------------------------------------------- */

static void test_ints(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *hex;
    } v[] = {
        {0, "00"},
        {1, "01"},
        {127, "7f"},
        {128, "cc80"},
        {255, "ccff"},
        {256, "cd0100"},
        {65535, "cdffff"},
        {65536, "ce00010000"},
        {4294967295LL, "ceffffffff"},
        {4294967296LL, "cf0000000100000000"},
        {INT64_MAX, "cf7fffffffffffffff"},
        {-1, "ff"},
        {-32, "e0"},
        {-33, "d0df"},
        {-128, "d080"},
        {-129, "d1ff7f"},
        {-32768, "d18000"},
        {-32769, "d2ffff7fff"},
        {INT32_MIN, "d280000000"},
        {(int64_t)INT32_MIN - 1, "d3ffffffff7fffffff"},
        {INT64_MIN, "d38000000000000000"},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        cleanup_strbuf strbuf sb = STRBUF_INIT;
        mp_int(&sb, v[i].v);
        char what[64];
        snprintf(what, sizeof(what), "int %lld", (long long)v[i].v);
        expect_hex(&sb, v[i].hex, what);
    }
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    mp_uint(&sb, UINT64_MAX);
    expect_hex(&sb, "cfffffffffffffffff", "uint max");
}

static void test_nil_bool_float(void **state)
{
    (void)state;
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    mp_nil(&sb);
    mp_bool(&sb, true);
    mp_bool(&sb, false);
    expect_hex(&sb, "c0c3c2", "nil true false");

    static const struct {
        double v;
        const char *hex;
    } f[] = {
        {0.0, "cb0000000000000000"},       {1.5, "cb3ff8000000000000"},
        {-2.25, "cbc002000000000000"},     {0.1, "cb3fb999999999999a"},
        {1e300, "cb7e37e43c8800759c"},     {INFINITY, "cb7ff0000000000000"},
        {-INFINITY, "cbfff0000000000000"},
    };
    for (size_t i = 0; i < ARRAY_LEN(f); i++) {
        sb_reset(&sb);
        mp_float(&sb, f[i].v);
        char what[64];
        snprintf(what, sizeof(what), "float %g", f[i].v);
        expect_hex(&sb, f[i].hex, what);
    }
}

/* A header from Python followed by n copies of c. */
static void expect_run(const strbuf *sb, const char *header_hex, char c, size_t n, const char *what)
{
    size_t hl = strlen(header_hex) / 2;
    assert_int_equal(sb->len, hl + n);
    cleanup_free char *got = hex_of(sb->buf, hl);
    if (strcmp(got, header_hex) != 0)
        fail_msg("%s: header %s, want %s", what, got, header_hex);
    for (size_t i = 0; i < n; i++)
        if (sb->buf[hl + i] != c)
            fail_msg("%s: payload byte %zu is 0x%02x", what, i, (unsigned char)sb->buf[hl + i]);
}

static void test_str_bin(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        const char *str_hdr, *bin_hdr;
    } v[] = {
        {0, "a0", "c400"},           {1, "a1", "c401"},
        {31, "bf", "c41f"},          {32, "d920", "c420"},
        {255, "d9ff", "c4ff"},       {256, "da0100", "c50100"},
        {65535, "daffff", "c5ffff"}, {65536, "db00010000", "c600010000"},
    };
    char *big = xmalloc(65536);
    memset(big, 'x', 65536);
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        char what[64];
        cleanup_strbuf strbuf sb = STRBUF_INIT;
        mp_str(&sb, big, v[i].n);
        snprintf(what, sizeof(what), "str of %zu", v[i].n);
        expect_run(&sb, v[i].str_hdr, 'x', v[i].n, what);
        sb_free(&sb);
        mp_bin(&sb, big, v[i].n);
        snprintf(what, sizeof(what), "bin of %zu", v[i].n);
        expect_run(&sb, v[i].bin_hdr, 'x', v[i].n, what);
    }
    free(big);

    cleanup_strbuf strbuf sb = STRBUF_INIT;
    mp_cstr(&sb, "h\xc3\xa9llo");
    expect_hex(&sb, "a668c3a96c6c6f", "utf-8 str");
    sb_free(&sb);
    mp_bin(&sb, "\x00\x01", 2);
    expect_hex(&sb, "c4020001", "bin with NUL");
}

static void test_containers(void **state)
{
    (void)state;
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    mp_array(&sb, 0);
    expect_hex(&sb, "90", "[]");
    sb_free(&sb);
    mp_array(&sb, 3);
    for (int i = 1; i <= 3; i++)
        mp_int(&sb, i);
    expect_hex(&sb, "93010203", "[1,2,3]");
    sb_free(&sb);
    mp_array(&sb, 15);
    expect_hex(&sb, "9f", "15 elements");
    sb_free(&sb);
    mp_array(&sb, 16);
    expect_hex(&sb, "dc0010", "16 elements");
    sb_free(&sb);
    mp_array(&sb, 65536);
    expect_hex(&sb, "dd00010000", "65536 elements");
    sb_free(&sb);
    mp_map(&sb, 0);
    expect_hex(&sb, "80", "{}");
    sb_free(&sb);
    mp_map(&sb, 1);
    mp_cstr(&sb, "a");
    mp_int(&sb, 1);
    expect_hex(&sb, "81a16101", "{a: 1}");
    sb_free(&sb);
    mp_map(&sb, 16);
    expect_hex(&sb, "de0010", "16 pairs");
    sb_free(&sb);
    mp_map(&sb, 65536);
    expect_hex(&sb, "df00010000", "65536 pairs");
}

/* ---- TOML values -------------------------------------------------------------------------- */

/* Python: msgpack.packb({...the same document as a dict...}, use_bin_type=True).hex() */
static const char toml_doc[] = "[hyperparameters]\n"
                               "epochs = 1\n"
                               "batch_size = 32\n"
                               "loss = \"CrossEntropyLoss\"\n"
                               "loss_params = {}\n"
                               "optimizer = \"SGD\"\n"
                               "optimizer_params = { lr = 0.5, momentum = 0.9 }\n"
                               "val_acc_threshold = 0.99\n";

static const char toml_doc_hex[] =
    "87a665706f63687301aa62617463685f73697a6520a46c6f7373b043726f7373456e74726f70794c6f7373ab6c"
    "6f73735f706172616d7380a96f7074696d697a6572a3534744b06f7074696d697a65725f706172616d7382a26c"
    "72cb3fe0000000000000a86d6f6d656e74756dcb3feccccccccccccdb176616c5f6163635f7468726573686f6c"
    "64cb3fefae147ae147ae";

static const char toml_all[] = "when = 1979-05-27T07:32:00Z\n"
                               "local = 1979-05-27T07:32:00.999\n"
                               "day = 1979-05-27\n"
                               "time = 07:32:00\n"
                               "mixed = [1, \"two\", 3.0, [true, false], { k = -200 }]\n"
                               "big = -9223372036854775808\n"
                               "inf = inf\n"
                               "nan = nan\n"
                               "points = [{ x = 1 }, { x = 2 }]\n"
                               "unicode = \"p\xc3\xa4iv\xc3\xa4\xc3\xa4 \xe2\x9c\x93\"\n";

/* The same keys as a Python dict (hyperparameters first), packed by Python. */
static const char toml_all_hex[] =
    "8aa47768656eb4313937392d30352d32375430373a33323a30305aa56c6f63616cb7313937392d30352d32375430"
    "373a33323a30302e393939a3646179aa313937392d30352d3237a474696d65a830373a33323a3030a56d69786564"
    "9501a374776fcb400800000000000092c3c281a16bd1ff38a3626967d38000000000000000a3696e66cb7ff00000"
    "00000000a36e616ecb7ff8000000000000a6706f696e74739281a1780181a17802a7756e69636f6465ad70c3a469"
    "76c3a4c3a420e29c93";

static void test_toml_values(void **state)
{
    (void)state;
    mt_error *err = NULL;
    cleanup_toml toml_value *root = toml_parse(toml_doc, strlen(toml_doc), "doc", TOML_1_1, &err);
    assert_non_null(root);
    size_t len = 0;
    cleanup_free uint8_t *bytes =
        mp_pack_toml_bytes(toml_table_get(root, "hyperparameters"), "global 'hp'", &len, &err);
    assert_non_null(bytes);
    cleanup_free char *hex = hex_of(bytes, len);
    assert_string_equal(hex, toml_doc_hex);

    cleanup_toml toml_value *all = toml_parse(toml_all, strlen(toml_all), "all", TOML_1_1, &err);
    if (!all)
        fail_msg("%s", mt_error_msg(err));
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    assert_int_equal(mp_pack_toml(&sb, all, "doc", &err), 0);
    assert_null(err);
    expect_hex(&sb, toml_all_hex, "TOML document with every type");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ints),        cmocka_unit_test(test_nil_bool_float),
        cmocka_unit_test(test_str_bin),     cmocka_unit_test(test_containers),
        cmocka_unit_test(test_toml_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
