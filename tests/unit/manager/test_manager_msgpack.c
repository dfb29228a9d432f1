/* test_manager_msgpack.c - the msgpack writer against bytes from Python's
 * msgpack.packb(value, use_bin_type=True) (python3-msgpack 1.0.3), TOML values encoded as
 * the SDK's dict_to_bytes would encode the same Python values, and the reader mp_numbers (the
 * dashboard's training curves) on well-formed and malformed values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
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

/* ---- reading: mp_numbers ----------------------------------------------------------------- */

/* What mp_numbers reported: "path=value" lines (value as %.17g), their count, the last one. */
typedef struct seen {
    strbuf text;
    size_t count;
    double last;
    char last_path[MP_PATH_MAX];
} seen;

static void on_number(void *ctx, const char *path, double value)
{
    seen *s = ctx;
    const char *nul = memchr(path, '\0', MP_PATH_MAX);
    if (!nul)
        fail_msg("a path of %d bytes or more, or not NUL-terminated", MP_PATH_MAX);
    s->count++;
    s->last = value;
    memcpy(s->last_path, path, (size_t)(nul - path) + 1);
    sb_printf(&s->text, "%s=%.17g\n", path, value);
}

/* mp_numbers on an exactly sized heap copy of data, so that ASan sees any read past the end.
 * s is reset first; the caller frees s->text. */
static int run_numbers(const void *data, size_t len, const char *prefix, seen *s)
{
    static const uint8_t none[1];
    uint8_t *copy = malloc(len);
    if (len) {
        assert_non_null(copy);
        memcpy(copy, data, len);
    }
    sb_reset(&s->text);
    s->count = 0;
    s->last = 0;
    s->last_path[0] = '\0';
    int rc = mp_numbers(copy ? copy : none, len, prefix, on_number, s);
    free(copy);
    return rc;
}

/* Run mp_numbers and compare the return value and every reported line. */
static void expect_numbers(const void *data, size_t len, const char *prefix, int want_rc,
                           const char *want, const char *what)
{
    seen s = {STRBUF_INIT, 0, 0, ""};
    int rc = run_numbers(data, len, prefix, &s);
    if (rc != want_rc || strcmp(sb_str(&s.text), want) != 0)
        fail_msg("%s: returned %d (want %d), reported:\n%s-- want:\n%s", what, rc, want_rc,
                 sb_str(&s.text), want);
    sb_free(&s.text);
}

static void expect_numbers_sb(const strbuf *sb, const char *prefix, int want_rc, const char *want,
                              const char *what)
{
    expect_numbers(sb->buf, sb->len, prefix, want_rc, want, what);
}

/* Hex text to bytes (owned); the length in *len. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            fail_msg("bad hex in the test: %s", hex);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

static void append_hex(strbuf *sb, const char *hex)
{
    size_t n = 0;
    cleanup_free uint8_t *b = unhex(hex, &n);
    sb_append(sb, b, n);
}

/* Python: msgpack.packb({"val_acc": 0.5, "loss": 1, "n": {"deep": -3}, "arr": [1, 2],
 * "s": "x", "b": True}, use_bin_type=True).hex() */
static const char py_dict_hex[] = "86a776616c5f616363cb3fe0000000000000a46c6f737301a16e81a46465"
                                  "6570fda3617272920102a173a178a162c3";
static const char py_dict_numbers[] = "metrics.val_acc=0.5\n"
                                      "metrics.loss=1\n"
                                      "metrics.n.deep=-3\n";

static void py_dict_write(strbuf *sb)
{
    mp_map(sb, 6);
    mp_cstr(sb, "val_acc");
    mp_float(sb, 0.5);
    mp_cstr(sb, "loss");
    mp_int(sb, 1);
    mp_cstr(sb, "n");
    mp_map(sb, 1);
    mp_cstr(sb, "deep");
    mp_int(sb, -3);
    mp_cstr(sb, "arr");
    mp_array(sb, 2);
    mp_int(sb, 1);
    mp_int(sb, 2);
    mp_cstr(sb, "s");
    mp_cstr(sb, "x");
    mp_cstr(sb, "b");
    mp_bool(sb, true);
}

static void test_numbers_python_dict(void **state)
{
    (void)state;
    size_t len = 0;
    cleanup_free uint8_t *py = unhex(py_dict_hex, &len);
    expect_numbers(py, len, "metrics", 0, py_dict_numbers, "Python's bytes");

    cleanup_strbuf strbuf sb = STRBUF_INIT;
    py_dict_write(&sb);
    expect_hex(&sb, py_dict_hex, "the same dict from the writer");
    expect_numbers_sb(&sb, "metrics", 0, py_dict_numbers, "the writer's bytes");

    /* The value reported is exact, and the path is the prefix as given. */
    seen s = {STRBUF_INIT, 0, 0, ""};
    sb_reset(&sb);
    mp_map(&sb, 1);
    mp_cstr(&sb, "lr");
    mp_float(&sb, 0.1);
    assert_int_equal(run_numbers(sb.buf, sb.len, "hp.optimizer", &s), 0);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.last_path, "hp.optimizer.lr");
    assert_true(s.last == 0.1);
    sb_free(&s.text);
}

/* Every number encoding, at the top and under a key. */
static void test_numbers_int_encodings(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        double want;
    } v[] = {
        /* positive and negative fixint */
        {"00", 0},
        {"01", 1},
        {"7f", 127},
        {"e0", -32},
        {"f0", -16},
        {"ff", -1},
        /* uint8..64 */
        {"cc00", 0},
        {"cc80", 128},
        {"ccff", 255},
        {"cd0000", 0},
        {"cd0100", 256},
        {"cdffff", 65535},
        {"ce00010000", 65536},
        {"ceffffffff", 4294967295.0},
        {"cf0000000100000000", 4294967296.0},
        {"cf7fffffffffffffff", (double)INT64_MAX},
        {"cfffffffffffffffff", (double)UINT64_MAX},
        /* int8..64, negative and not */
        {"d000", 0},
        {"d005", 5},
        {"d07f", 127},
        {"d080", -128},
        {"d0df", -33},
        {"d0ff", -1},
        {"d1ff7f", -129},
        {"d18000", -32768},
        {"d17fff", 32767},
        {"d1ffff", -1},
        {"d2ffff7fff", -32769},
        {"d2ffff63c0", -40000},
        {"d280000000", (double)INT32_MIN},
        {"d27fffffff", (double)INT32_MAX},
        {"d2ffffffff", -1},
        {"d3ffffffff7fffffff", -2147483649.0},
        {"d3fffffffffffffff0", -16},
        {"d3ffffffffffffffff", -1},
        {"d38000000000000000", (double)INT64_MIN},
        {"d37fffffffffffffff", (double)INT64_MAX},
        /* float32 */
        {"ca00000000", 0},
        {"ca3fa00000", 1.25},
        {"cabf800000", -1},
        {"ca3dcccccd", (double)0.1f},
        {"ca7f800000", INFINITY},
        {"caff800000", -INFINITY},
        {"ca7fc00000", NAN},
        /* float64 */
        {"cb0000000000000000", 0},
        {"cb3fe0000000000000", 0.5},
        {"cbc002000000000000", -2.25},
        {"cb3fb999999999999a", 0.1},
        {"cb7e37e43c8800759c", 1e300},
        {"cb0000000000000001", 0x1p-1074},
        {"cb7ff0000000000000", INFINITY},
        {"cbfff0000000000000", -INFINITY},
        {"cb7ff8000000000000", NAN},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        for (int wrapped = 0; wrapped < 2; wrapped++) {
            cleanup_strbuf strbuf sb = STRBUF_INIT;
            if (wrapped) { /* {"k": value} */
                mp_map(&sb, 1);
                mp_cstr(&sb, "k");
            }
            append_hex(&sb, v[i].hex);
            seen s = {STRBUF_INIT, 0, 0, ""};
            int rc = run_numbers(sb.buf, sb.len, "m", &s);
            if (rc != 0 || s.count != 1)
                fail_msg("%s%s: returned %d with %zu numbers", wrapped ? "in a map: " : "",
                         v[i].hex, rc, s.count);
            assert_string_equal(s.last_path, wrapped ? "m.k" : "m");
            if (isnan(v[i].want) ? !isnan(s.last) : s.last != v[i].want)
                fail_msg("%s: got %.17g, want %.17g", v[i].hex, s.last, v[i].want);
            sb_free(&s.text);
        }
    }
    /* -0.0 keeps its sign */
    seen s = {STRBUF_INIT, 0, 0, ""};
    size_t len = 0;
    cleanup_free uint8_t *neg0 = unhex("cb8000000000000000", &len);
    assert_int_equal(run_numbers(neg0, len, "z", &s), 0);
    assert_int_equal(s.count, 1);
    assert_true(s.last == 0 && signbit(s.last));
    sb_free(&s.text);
}

/* What mp_int / mp_uint / mp_float write reads back as the same number. */
static void test_numbers_writer_round_trip(void **state)
{
    (void)state;
    static const int64_t ints[] = {
        0,         1,          31,        32,          127,         128,       255,
        256,       65535,      65536,     4294967295,  4294967296,  INT64_MAX, -1,
        -31,       -32,        -33,       -127,        -128,        -129,      -32767,
        -32768,    -32769,     -40000,    INT32_MIN,   -2147483649, INT64_MIN, INT64_MIN + 1,
        123456789, -123456789, 1LL << 53, -(1LL << 53)};
    seen s = {STRBUF_INIT, 0, 0, ""};
    for (size_t i = 0; i < ARRAY_LEN(ints); i++) {
        cleanup_strbuf strbuf sb = STRBUF_INIT;
        mp_map(&sb, 1);
        mp_cstr(&sb, "x");
        mp_int(&sb, ints[i]);
        assert_int_equal(run_numbers(sb.buf, sb.len, "r", &s), 0);
        assert_int_equal(s.count, 1);
        assert_string_equal(s.last_path, "r.x");
        if (s.last != (double)ints[i])
            fail_msg("mp_int(%lld) read back as %.17g", (long long)ints[i], s.last);
    }
    static const uint64_t uints[] = {
        0,         0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
        UINT64_MAX};
    for (size_t i = 0; i < ARRAY_LEN(uints); i++) {
        cleanup_strbuf strbuf sb = STRBUF_INIT;
        mp_uint(&sb, uints[i]);
        assert_int_equal(run_numbers(sb.buf, sb.len, "u", &s), 0);
        assert_int_equal(s.count, 1);
        if (s.last != (double)uints[i])
            fail_msg("mp_uint(%llu) read back as %.17g", (unsigned long long)uints[i], s.last);
    }
    static const double floats[] = {0.0,       -0.0,    0.1,      -2.5,    1e300,    -1e-300,
                                    0x1p-1074, DBL_MAX, -DBL_MAX, DBL_MIN, INFINITY, -INFINITY};
    for (size_t i = 0; i < ARRAY_LEN(floats); i++) {
        cleanup_strbuf strbuf sb = STRBUF_INIT;
        mp_float(&sb, floats[i]);
        assert_int_equal(run_numbers(sb.buf, sb.len, "f", &s), 0);
        assert_int_equal(s.count, 1);
        assert_memory_equal(&s.last, &floats[i], sizeof(double)); /* bit-exact */
    }
    sb_free(&s.text);
}

static void test_numbers_top_level(void **state)
{
    (void)state;
    /* A bare number is reported as the prefix itself. */
    expect_numbers("\x05", 1, "loss", 0, "loss=5\n", "fixint");
    expect_numbers("\xd0\x85", 2, "loss", 0, "loss=-123\n", "int8");
    expect_numbers("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9, "acc", 0, "acc=1.5\n", "float64");
    /* A prefix with dots is taken as it is. */
    expect_numbers("\x81\xa1\x63\x01", 4, "a.b", 0, "a.b.c=1\n", "dotted prefix");

    /* Other values at the top: nothing to report, well-formed all the same. */
    static const char *const others[] = {
        "c0",                               /* nil */
        "c2",                               /* false */
        "c3",                               /* true */
        "a0",                               /* "" */
        "a3616263",                         /* "abc" */
        "c40101",                           /* bin */
        "d40102",                           /* fixext1 */
        "80",                               /* {} */
        "90",                               /* [] */
        "93010281a16103",                   /* [1, 2, {"a": 3}] */
        "9281a178cb3fe000000000000092c0c3", /* [{"x": 0.5}, [nil, true]] */
    };
    for (size_t i = 0; i < ARRAY_LEN(others); i++) {
        size_t len = 0;
        cleanup_free uint8_t *b = unhex(others[i], &len);
        expect_numbers(b, len, "top", 0, "", others[i]);
    }
}

/* Keys that are not strings: their values are stepped over, the pairs after them still read. */
static void test_numbers_non_string_keys(void **state)
{
    (void)state;
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    mp_map(&sb, 11);
    mp_int(&sb, 1); /* 1: 5 */
    mp_int(&sb, 5);
    mp_nil(&sb); /* nil: 6 */
    mp_int(&sb, 6);
    mp_array(&sb, 2); /* [1, 2]: 7 */
    mp_int(&sb, 1);
    mp_int(&sb, 2);
    mp_int(&sb, 7);
    mp_map(&sb, 1); /* {"a": 1}: 8 */
    mp_cstr(&sb, "a");
    mp_int(&sb, 1);
    mp_int(&sb, 8);
    mp_bool(&sb, true); /* true: 9 */
    mp_int(&sb, 9);
    mp_bin(&sb, "k", 1); /* b"k": 10 */
    mp_int(&sb, 10);
    mp_float(&sb, 1.5); /* 1.5: 11 */
    mp_int(&sb, 11);
    append_hex(&sb, "d40102"); /* fixext1: 12 */
    mp_int(&sb, 12);
    mp_int(&sb, -7); /* -7: {"inner": 3} -- a map under a number key is not followed */
    mp_map(&sb, 1);
    mp_cstr(&sb, "inner");
    mp_int(&sb, 3);
    mp_cstr(&sb, "ok"); /* "ok": 13 */
    mp_int(&sb, 13);
    mp_bin(&sb, "ok", 2); /* b"ok": 14 -- bytes are not a string key */
    mp_int(&sb, 14);
    expect_numbers_sb(&sb, "p", 0, "p.ok=13\n", "non-string keys");
}

/* Two pairs: key: value, then "n<i>": i (i counts from 1) -- the value is stepped over, the
 * number after it found. *pairs counts the pairs written. */
static void add_skipped(strbuf *body, size_t *pairs, const char *key, const strbuf *value)
{
    char after[32];
    size_t i = *pairs / 2 + 1;
    mp_cstr(body, key);
    sb_append(body, value->buf, value->len);
    snprintf(after, sizeof(after), "n%zu", i);
    mp_cstr(body, after);
    mp_int(body, (int64_t)i);
    *pairs += 2;
}

static void add_skipped_hex(strbuf *body, size_t *pairs, const char *key, const char *hex)
{
    cleanup_strbuf strbuf v = STRBUF_INIT;
    append_hex(&v, hex);
    add_skipped(body, pairs, key, &v);
}

/* A map of strings, binaries and extension types in every size class, each followed by a
 * number; their payloads are 0xc1 bytes, which would be malformed if they were read as values.
 * Also keys in str8/16/32 form. Writes it to out; returns the expected report for prefix "p". */
static char *skipped_doc(strbuf *out)
{
    cleanup_strbuf strbuf body = STRBUF_INIT;
    cleanup_strbuf strbuf v = STRBUF_INIT;
    cleanup_strbuf strbuf want = STRBUF_INIT;
    size_t pairs = 0;
    char c1[300];
    memset(c1, 0xc1, sizeof(c1));

    mp_str(&v, c1, 40); /* str8 */
    add_skipped(&body, &pairs, "s8", &v);
    sb_reset(&v);
    mp_str(&v, c1, 300); /* str16 */
    add_skipped(&body, &pairs, "s16", &v);
    add_skipped_hex(&body, &pairs, "s32", "db00000003c1c1c1");
    add_skipped_hex(&body, &pairs, "s32e", "db00000000");
    sb_reset(&v);
    mp_bin(&v, c1, 10); /* bin8 */
    add_skipped(&body, &pairs, "b8", &v);
    sb_reset(&v);
    mp_bin(&v, c1, 300); /* bin16 */
    add_skipped(&body, &pairs, "b16", &v);
    add_skipped_hex(&body, &pairs, "b32", "c600000002c1c1");
    add_skipped_hex(&body, &pairs, "e8", "c70305c1c1c1");
    add_skipped_hex(&body, &pairs, "e8z", "c70005");
    add_skipped_hex(&body, &pairs, "e16", "c80002ffc1c1");
    add_skipped_hex(&body, &pairs, "e32", "c90000000105c1");
    add_skipped_hex(&body, &pairs, "fe1", "d4ffc1");
    add_skipped_hex(&body, &pairs, "fe2", "d505c1c1");
    add_skipped_hex(&body, &pairs, "fe4", "d6ff00000000");
    add_skipped_hex(&body, &pairs, "fe8", "d705c1c1c1c1c1c1c1c1");
    add_skipped_hex(&body, &pairs, "fe16", "d805c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
    add_skipped_hex(&body, &pairs, "nil", "c0");
    add_skipped_hex(&body, &pairs, "true", "c3");
    add_skipped_hex(&body, &pairs, "false", "c2");
    add_skipped_hex(&body, &pairs, "arr", "9381a17801029103"); /* [{"x": 1}, 2, [3]] */
    add_skipped_hex(&body, &pairs, "arr16", "dc0003010203");
    add_skipped_hex(&body, &pairs, "arr32", "dd000000020102");
    add_skipped_hex(&body, &pairs, "map_key", "81810102c3"); /* {{1: 2}: true} */
    size_t after_count = pairs / 2;

    /* Keys in the longer string forms, with numbers. */
    char key40[41];
    memset(key40, 'k', 40);
    key40[40] = '\0';
    mp_cstr(&body, key40); /* str8 key */
    mp_int(&body, 100);
    append_hex(&body, "da00026b6b"); /* str16 key "kk" */
    mp_int(&body, 101);
    append_hex(&body, "db000000026b6c"); /* str32 key "kl" */
    mp_int(&body, 102);
    append_hex(&body, "d9026b6d"); /* str8 key "km" (a short key in the long form) */
    mp_int(&body, 103);
    pairs += 4;

    mp_map(out, pairs);
    sb_append(out, body.buf, body.len);

    for (size_t i = 1; i <= after_count; i++)
        sb_printf(&want, "p.n%zu=%zu\n", i, i);
    sb_printf(&want, "p.%s=100\np.kk=101\np.kl=102\np.km=103\n", key40);
    return sb_steal(&want);
}

static void test_numbers_skipped_types(void **state)
{
    (void)state;
    cleanup_strbuf strbuf doc = STRBUF_INIT;
    cleanup_free char *want = skipped_doc(&doc);
    expect_numbers_sb(&doc, "p", 0, want, "strings, binaries and extensions stepped over");
}

/* map16 / map32 headers are followed like fixmaps; array16 / array32 are stepped over. */
static void test_numbers_big_containers(void **state)
{
    (void)state;
    expect_numbers("\xde\x00\x02\xa1\x61\x01\xa1\x62\x02", 9, "p", 0, "p.a=1\np.b=2\n", "map16");
    expect_numbers("\xdf\x00\x00\x00\x01\xa1\x63\x03", 8, "p", 0, "p.c=3\n", "map32");
    expect_numbers("\x81\xa1\x6d\xde\x00\x01\xa1\x64\x04", 9, "p", 0, "p.m.d=4\n", "nested map16");

    /* A map of 20 pairs (map16 from the writer), in order. */
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    cleanup_strbuf strbuf want = STRBUF_INIT;
    mp_map(&sb, 20);
    for (int i = 0; i < 20; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        mp_cstr(&sb, key);
        mp_int(&sb, i * 10 - 50);
        sb_printf(&want, "p.%s=%d\n", key, i * 10 - 50);
    }
    assert_int_equal((uint8_t)sb.buf[0], 0xde);
    expect_numbers_sb(&sb, "p", 0, sb_str(&want), "20 pairs");

    /* An array of 20 maps with numbers (array16), then a number: only the number. */
    sb_reset(&sb);
    mp_map(&sb, 2);
    mp_cstr(&sb, "list");
    mp_array(&sb, 20);
    for (int i = 0; i < 20; i++) {
        mp_map(&sb, 1);
        mp_cstr(&sb, "x");
        mp_int(&sb, i);
    }
    mp_cstr(&sb, "n");
    mp_int(&sb, 1);
    expect_numbers_sb(&sb, "p", 0, "p.n=1\n", "array16 of maps");
}

/* Every strict prefix of a well-formed value is malformed: -1, and no read past its end. */
static void expect_all_truncations(const void *data, size_t len, const char *what)
{
    seen s = {STRBUF_INIT, 0, 0, ""};
    if (run_numbers(data, len, "t", &s) != 0)
        fail_msg("%s: the whole value is not accepted", what);
    for (size_t cut = 0; cut < len; cut++)
        if (run_numbers(data, cut, "t", &s) != -1)
            fail_msg("%s: cut to %zu of %zu bytes, not refused", what, cut, len);
    sb_free(&s.text);
}

static void test_numbers_truncated(void **state)
{
    (void)state;
    size_t len = 0;
    cleanup_free uint8_t *py = unhex(py_dict_hex, &len);
    expect_all_truncations(py, len, "Python's dict");

    cleanup_strbuf strbuf doc = STRBUF_INIT;
    free(skipped_doc(&doc)); /* only the value */
    expect_all_truncations(doc.buf, doc.len, "strings, binaries and extensions");

    static const char *const values[] = {"cc80",
                                         "cd0100",
                                         "ce00010000",
                                         "cf0000000100000000",
                                         "d080",
                                         "d1ff7f",
                                         "d2ffff63c0",
                                         "d38000000000000000",
                                         "ca3fa00000",
                                         "cb3fe0000000000000",
                                         "d9026162",
                                         "da00026162",
                                         "db000000026162",
                                         "c4026162",
                                         "c500026162",
                                         "c600000002ffff",
                                         "c7020501ff",
                                         "c800020501ff",
                                         "c9000000020501ff",
                                         "d40501",
                                         "d5050102",
                                         "d60501020304",
                                         "d7050102030405060708",
                                         "d8050102030405060708090a0b0c0d0e0f10",
                                         "dc00020102",
                                         "dd000000020102",
                                         "de0001a16101",
                                         "df00000001a16101",
                                         "81d9016101",
                                         "81da00016101",
                                         "81db000000016101",
                                         "920193c0c2c3"};
    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        cleanup_free uint8_t *b = unhex(values[i], &len);
        expect_all_truncations(b, len, values[i]);
    }
}

static void test_numbers_trailing_and_c1(void **state)
{
    (void)state;
    /* Trailing bytes after one whole value. */
    size_t len = 0;
    cleanup_free uint8_t *py = unhex(py_dict_hex, &len);
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    sb_append(&sb, py, len);
    sb_append(&sb, "\x00", 1);
    seen s = {STRBUF_INIT, 0, 0, ""};
    assert_int_equal(run_numbers(sb.buf, sb.len, "metrics", &s), -1);
    sb_free(&s.text);
    expect_numbers("\x01\x02", 2, "p", -1, "p=1\n", "two numbers"); /* the first was reported */
    expect_numbers("\x80\x80", 2, "p", -1, "", "two maps");
    expect_numbers("\xc0\xc0", 2, "p", -1, "", "two nils");
    expect_numbers("\x90\xc1", 2, "p", -1, "", "array then 0xc1");

    /* 0xc1 (never used) wherever a value is read. */
    expect_numbers("\xc1", 1, "p", -1, "", "0xc1");
    expect_numbers("\x81\xa1\x61\xc1", 4, "p", -1, "", "0xc1 as a value");
    expect_numbers("\x91\xc1", 2, "p", -1, "", "0xc1 in an array");
    expect_numbers("\x81\xc1\x01", 3, "p", -1, "", "0xc1 as a key");
    expect_numbers("\x81\x91\xc1\x01", 4, "p", -1, "", "0xc1 in an array key");
    /* numbers before the fault may be reported */
    seen s2 = {STRBUF_INIT, 0, 0, ""};
    assert_int_equal(run_numbers("\x82\xa1\x61\x01\xa1\x62\xc1", 7, "p", &s2), -1);
    assert_true(s2.count <= 1);
    sb_free(&s2.text);

    /* Fewer pairs or elements than the header says. */
    expect_numbers("\x82\xa1\x61\x01", 4, "p", -1, "p.a=1\n", "a pair missing");
    expect_numbers("\x81\xa1\x61", 3, "p", -1, "", "a value missing");
    expect_numbers("\x93\x01\x02", 3, "p", -1, "", "an element missing");
    expect_numbers("", 0, "p", -1, "", "nothing");
}

/* Lengths and counts far beyond the data: refused, without reading past it or looping. */
static void test_numbers_huge_lengths(void **state)
{
    (void)state;
    static const char *const values[] = {
        "ddffffffff",         /* array32 of 2^32-1 */
        "ddffffffffc0c0c0",   /* ... with a few elements */
        "dfffffffff",         /* map32 */
        "dfffffffffa1610101", /* ... with one pair */
        "dbffffffff",         /* str32 */
        "dbffffffff616263",   /* ... with 3 bytes */
        "c6ffffffff00",       /* bin32 */
        "c9ffffffff05",       /* ext32 */
        "c9ffffffff",         /* ext32 without its type */
        "c8ffff05",           /* ext16 */
        "c7ff05",             /* ext8 */
        "dcffff",             /* array16 */
        "deffff",             /* map16 */
        "81dbffffffff61",     /* a str32 key */
        "81daffff61",         /* a str16 key */
        "81d9ff61",           /* a str8 key */
        "81bf61",             /* a fixstr key of 31 */
        "cf",                 /* uint64 without its bytes */
        "d3ffffff",           /* int64 short */
        "cb3ff0",             /* float64 short */
        "ca3f",               /* float32 short */
    };
    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        size_t len = 0;
        cleanup_free uint8_t *b = unhex(values[i], &len);
        seen s = {STRBUF_INIT, 0, 0, ""};
        if (run_numbers(b, len, "p", &s) != -1)
            fail_msg("%s: not refused", values[i]);
        sb_free(&s.text);
    }
}

/* n nested containers, each holding the next, the innermost holding `inner` (hex). */
static void nest(strbuf *sb, const char *open_hex, size_t n, const char *inner_hex)
{
    for (size_t i = 0; i < n; i++)
        append_hex(sb, open_hex);
    append_hex(sb, inner_hex);
}

static void test_numbers_nesting_limit(void **state)
{
    (void)state;
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    /* 100 nested arrays: malformed (no recursion that deep). */
    nest(&sb, "91", 100, "00");
    expect_numbers_sb(&sb, "p", -1, "", "100 nested arrays");
    sb_reset(&sb);
    nest(&sb, "91", 100000, "00");
    expect_numbers_sb(&sb, "p", -1, "", "100000 nested arrays");
    sb_reset(&sb);
    nest(&sb, "dc0001", 100, "00");
    expect_numbers_sb(&sb, "p", -1, "", "100 nested array16s");
    sb_reset(&sb);
    nest(&sb, "81a161", 100, "01");
    expect_numbers_sb(&sb, "p", -1, "", "100 nested maps");
    sb_reset(&sb);
    nest(&sb, "8101", 100, "01"); /* {1: {1: ...}} */
    expect_numbers_sb(&sb, "p", -1, "", "100 nested maps under number keys");
    sb_reset(&sb);
    append_hex(&sb, "81"); /* a key that is 100 nested arrays */
    nest(&sb, "91", 100, "00");
    append_hex(&sb, "01");
    expect_numbers_sb(&sb, "p", -1, "", "a key of 100 nested arrays");
    sb_reset(&sb);
    nest(&sb, "9181a161", 50, "00"); /* [{"a": [{"a": ...}]}] */
    expect_numbers_sb(&sb, "p", -1, "", "100 nested arrays and maps");

    /* 64 containers deep is the limit. */
    sb_reset(&sb);
    nest(&sb, "91", 64, "00");
    expect_numbers_sb(&sb, "p", 0, "", "64 nested arrays");
    sb_reset(&sb);
    nest(&sb, "91", 65, "00");
    expect_numbers_sb(&sb, "p", -1, "", "65 nested arrays");
    sb_reset(&sb);
    append_hex(&sb, "82a161"); /* {"a": 63 arrays, "b": 1} */
    nest(&sb, "91", 63, "00");
    append_hex(&sb, "a16201");
    expect_numbers_sb(&sb, "p", 0, "p.b=1\n", "a map holding 63 nested arrays");
    sb_reset(&sb);
    append_hex(&sb, "82a161");
    nest(&sb, "91", 64, "00");
    append_hex(&sb, "a16201");
    expect_numbers_sb(&sb, "p", -1, "", "a map holding 64 nested arrays");

    /* The limit is on depth, not on the number of containers: 200 siblings each 60 deep. */
    sb_reset(&sb);
    mp_map(&sb, 2);
    mp_cstr(&sb, "wide");
    mp_array(&sb, 200);
    for (int i = 0; i < 200; i++)
        nest(&sb, "91", 60, "00");
    mp_cstr(&sb, "end");
    mp_int(&sb, 9);
    expect_numbers_sb(&sb, "p", 0, "p.end=9\n", "200 siblings 60 deep");

    /* ... and so for maps: 100 maps side by side, in a map and in an array. */
    cleanup_strbuf strbuf want = STRBUF_INIT;
    sb_reset(&sb);
    mp_map(&sb, 101);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        mp_cstr(&sb, key);
        mp_map(&sb, 1);
        mp_cstr(&sb, "x");
        mp_int(&sb, i);
        sb_printf(&want, "p.%s.x=%d\n", key, i);
    }
    mp_cstr(&sb, "list");
    mp_array(&sb, 100);
    for (int i = 0; i < 100; i++) {
        mp_map(&sb, 1);
        mp_cstr(&sb, "y");
        mp_map(&sb, 0);
    }
    expect_numbers_sb(&sb, "p", 0, sb_str(&want), "100 sibling maps");
}

/* {"l1": {"l2": ... {"l<n>": 7}}}, with a number after each nested map ("a<k>": k). */
static void nested_maps(strbuf *sb, int level, int n)
{
    char key[16];
    mp_map(sb, level < n ? 2 : 1);
    snprintf(key, sizeof(key), "l%d", level);
    mp_cstr(sb, key);
    if (level < n) {
        nested_maps(sb, level + 1, n);
        snprintf(key, sizeof(key), "a%d", level);
        mp_cstr(sb, key);
        mp_int(sb, level);
    } else {
        mp_int(sb, 7);
    }
}

static void test_numbers_nested_maps(void **state)
{
    (void)state;
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    nested_maps(&sb, 1, 10);
    expect_numbers_sb(&sb, "p", 0,
                      "p.l1.l2.l3.l4.l5.l6.l7.l8.l9.l10=7\n"
                      "p.l1.l2.l3.l4.l5.l6.l7.l8.a9=9\n"
                      "p.l1.l2.l3.l4.l5.l6.l7.a8=8\n"
                      "p.l1.l2.l3.l4.l5.l6.a7=7\n"
                      "p.l1.l2.l3.l4.l5.a6=6\n"
                      "p.l1.l2.l3.l4.a5=5\n"
                      "p.l1.l2.l3.a4=4\n"
                      "p.l1.l2.a3=3\n"
                      "p.l1.a2=2\n"
                      "p.a1=1\n",
                      "10 nested maps");

    /* A map inside an array is not followed, whatever its depth. */
    sb_reset(&sb);
    append_hex(&sb, "81a17891"); /* {"x": [ */
    nested_maps(&sb, 1, 3);
    expect_numbers_sb(&sb, "p", 0, "", "maps inside an array");
}

/* Level k (1..n): {"v": k, "m": level k+1}, the last {"v": n}; the top also has "after": 1. */
static void deep_maps(strbuf *sb, int level, int n)
{
    mp_map(sb, (level < n ? 2 : 1) + (level == 1));
    mp_cstr(sb, "v");
    mp_int(sb, level);
    if (level < n) {
        mp_cstr(sb, "m");
        deep_maps(sb, level + 1, n);
    }
    if (level == 1) {
        mp_cstr(sb, "after");
        mp_int(sb, 1);
    }
}

static void test_numbers_depth_limit(void **state)
{
    (void)state;
    for (int n = 15; n <= 20; n++) {
        cleanup_strbuf strbuf sb = STRBUF_INIT;
        cleanup_strbuf strbuf want = STRBUF_INIT;
        cleanup_strbuf strbuf path = STRBUF_INIT;
        deep_maps(&sb, 1, n);
        sb_puts(&path, "p");
        /* Maps are followed MP_DEPTH_MAX (16) levels deep: numbers in the 16 outer maps are
         * reported, those further in are not, and the value still parses. */
        for (int k = 1; k <= n && k <= MP_DEPTH_MAX; k++) {
            sb_printf(&want, "%s.v=%d\n", sb_str(&path), k);
            sb_puts(&path, ".m");
        }
        sb_puts(&want, "p.after=1\n");
        char what[32];
        snprintf(what, sizeof(what), "%d nested maps", n);
        expect_numbers_sb(&sb, "p", 0, sb_str(&want), what);
    }
}

static void test_numbers_path_limit(void **state)
{
    (void)state;
    char key[MP_PATH_MAX + 1];
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    cleanup_strbuf strbuf want = STRBUF_INIT;
    seen s = {STRBUF_INIT, 0, 0, ""};

    /* "p." + 253 bytes = 255 (the longest path, MP_PATH_MAX with its NUL): reported. */
    memset(key, 'k', 253);
    key[253] = '\0';
    mp_map(&sb, 2);
    mp_cstr(&sb, key);
    mp_int(&sb, 1);
    mp_cstr(&sb, "ok");
    mp_int(&sb, 2);
    assert_int_equal(run_numbers(sb.buf, sb.len, "p", &s), 0);
    assert_int_equal(s.count, 2);
    sb_printf(&want, "p.%s=1\np.ok=2\n", key);
    assert_string_equal(sb_str(&s.text), sb_str(&want));

    /* One byte more: not reported; the pair after it still is. */
    memset(key, 'k', 254);
    key[254] = '\0';
    sb_reset(&sb);
    mp_map(&sb, 2);
    mp_cstr(&sb, key);
    mp_int(&sb, 1);
    mp_cstr(&sb, "ok");
    mp_int(&sb, 2);
    expect_numbers_sb(&sb, "p", 0, "p.ok=2\n", "a path of 256 bytes");

    /* The same at the second level: "p." + 200 + "." + 52 = 255 reported, 53 not. */
    for (size_t inner = 52; inner <= 53; inner++) {
        char outer[201], in[64];
        memset(outer, 'a', 200);
        outer[200] = '\0';
        memset(in, 'b', inner);
        in[inner] = '\0';
        sb_reset(&sb);
        sb_reset(&want);
        mp_map(&sb, 2);
        mp_cstr(&sb, outer);
        mp_map(&sb, 3);
        mp_cstr(&sb, in);
        mp_map(&sb, 1); /* nothing below a path too long is reported either */
        mp_cstr(&sb, "c");
        mp_int(&sb, 3);
        mp_cstr(&sb, in);
        mp_int(&sb, 4);
        mp_cstr(&sb, "d");
        mp_int(&sb, 5);
        mp_cstr(&sb, "e");
        mp_int(&sb, 6);
        if (inner == 52)
            sb_printf(&want, "p.%s.%s=4\n", outer, in);
        sb_printf(&want, "p.%s.d=5\np.e=6\n", outer);
        expect_numbers_sb(&sb, "p", 0, sb_str(&want), "a long path at the second level");
    }

    /* A prefix of 255 bytes: a number at the top is reported as it, nothing under a key. */
    memset(key, 'x', MP_PATH_MAX - 1);
    key[MP_PATH_MAX - 1] = '\0';
    assert_int_equal(run_numbers("\x2a", 1, key, &s), 0);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.last_path, key);
    assert_int_equal(run_numbers("\x81\xa1\x61\x01", 4, key, &s), 0);
    assert_int_equal(s.count, 0);
    /* A prefix of MP_PATH_MAX bytes or more cannot be a path: nothing is reported. */
    memset(key, 'x', MP_PATH_MAX);
    key[MP_PATH_MAX] = '\0';
    (void)run_numbers("\x2a", 1, key, &s);
    assert_int_equal(s.count, 0);
    sb_free(&s.text);
}

/* A key holding a NUL byte cannot be part of a C-string path: not reported. */
static void test_numbers_key_with_nul(void **state)
{
    (void)state;
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    mp_map(&sb, 3);
    mp_str(&sb, "a\0b", 3);
    mp_int(&sb, 1);
    mp_str(&sb, "c\0", 2);
    mp_map(&sb, 1);
    mp_cstr(&sb, "d");
    mp_int(&sb, 2);
    mp_cstr(&sb, "a");
    mp_int(&sb, 3);
    expect_numbers_sb(&sb, "p", 0, "p.a=3\n", "keys with NUL bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ints),
        cmocka_unit_test(test_nil_bool_float),
        cmocka_unit_test(test_str_bin),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_toml_values),
        cmocka_unit_test(test_numbers_python_dict),
        cmocka_unit_test(test_numbers_int_encodings),
        cmocka_unit_test(test_numbers_writer_round_trip),
        cmocka_unit_test(test_numbers_top_level),
        cmocka_unit_test(test_numbers_non_string_keys),
        cmocka_unit_test(test_numbers_skipped_types),
        cmocka_unit_test(test_numbers_big_containers),
        cmocka_unit_test(test_numbers_truncated),
        cmocka_unit_test(test_numbers_trailing_and_c1),
        cmocka_unit_test(test_numbers_huge_lengths),
        cmocka_unit_test(test_numbers_nesting_limit),
        cmocka_unit_test(test_numbers_nested_maps),
        cmocka_unit_test(test_numbers_depth_limit),
        cmocka_unit_test(test_numbers_path_limit),
        cmocka_unit_test(test_numbers_key_with_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
