/* test_blake3.c - BLAKE3 against the official test vectors
 * (shared/testdata/blake3/test_vectors.json), in all three modes and with incremental input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blake3.h"
#include "mem.h"

enum b3_mode { MODE_HASH, MODE_KEYED, MODE_DERIVE, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {"hash", "keyed_hash", "derive_key"};

typedef struct vectors {
    json_t *root;
    uint8_t key[B3_KEY_LEN];
    const char *context;
    json_t *cases;
} vectors;

static unsigned checked_outputs;  /* full extended outputs compared */
static unsigned checked_prefixes; /* 32-byte default-length outputs compared */
static unsigned checked_incremental;

/* The test-vector file: $MANTA_SHARED_DIR, else shared/ next to the source tree. */
static char *vectors_path(void)
{
    const char *rel = "testdata/blake3/test_vectors.json";
    const char *shared = getenv("MANTA_SHARED_DIR");
    if (shared && *shared)
        return xasprintf("%s/%s", shared, rel);
    const char *src = getenv("MANTA_SOURCE_DIR");
    if (src && *src)
        return xasprintf("%s/../shared/%s", src, rel);
    /* __FILE__ is <source>/tests/unit/lib/test_blake3.c */
    const char *slash = strrchr(__FILE__, '/');
    if (!slash)
        return xasprintf("../../../../shared/%s", rel);
    return xasprintf("%.*s/../../../../shared/%s", (int)(slash - __FILE__), __FILE__, rel);
}

static int setup(void **state)
{
    vectors *v = xcalloc(1, sizeof(*v));
    cleanup_free char *path = vectors_path();
    json_error_t jerr;
    v->root = json_load_file(path, 0, &jerr);
    if (!v->root) {
        fprintf(stderr, "cannot load %s: %s (line %d)\n", path, jerr.text, jerr.line);
        free(v);
        return -1;
    }
    const char *key = json_string_value(json_object_get(v->root, "key"));
    v->context = json_string_value(json_object_get(v->root, "context_string"));
    v->cases = json_object_get(v->root, "cases");
    if (!key || strlen(key) != B3_KEY_LEN || !v->context || !json_is_array(v->cases) ||
        json_array_size(v->cases) == 0) {
        fprintf(stderr, "%s: unexpected layout\n", path);
        json_decref(v->root);
        free(v);
        return -1;
    }
    memcpy(v->key, key, B3_KEY_LEN);
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    vectors *v = *state;
    json_decref(v->root);
    free(v);
    return 0;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode lower-case hex; returns the owned bytes and their count in *len. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    assert_int_equal(n % 2, 0);
    uint8_t *out = xmalloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static uint8_t *make_input(size_t len)
{
    uint8_t *in = xmalloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        in[i] = (uint8_t)(i % 251);
    return in;
}

static void init_mode(b3_hasher *h, enum b3_mode mode, const vectors *v)
{
    switch (mode) {
    case MODE_HASH:
        b3_init(h);
        break;
    case MODE_KEYED:
        b3_init_keyed(h, v->key);
        break;
    case MODE_DERIVE:
        b3_init_derive_key(h, v->context);
        break;
    default:
        fail();
    }
}

/* Print the first differing byte, then fail. */
static void expect_bytes(const uint8_t *got, const uint8_t *want, size_t len, const char *what,
                         size_t input_len, enum b3_mode mode)
{
    if (memcmp(got, want, len) == 0)
        return;
    size_t i = 0;
    while (got[i] == want[i])
        i++;
    fail_msg("%s: input_len %zu, mode %s, %zu-byte output differs at byte %zu (got %02x, want "
             "%02x)",
             what, input_len, mode_names[mode], len, i, got[i], want[i]);
}

static void test_vectors_one_shot(void **state)
{
    vectors *v = *state;
    size_t ncases = json_array_size(v->cases);
    for (size_t c = 0; c < ncases; c++) {
        json_t *tc = json_array_get(v->cases, c);
        size_t input_len = (size_t)json_integer_value(json_object_get(tc, "input_len"));
        cleanup_free uint8_t *in = make_input(input_len);
        for (int mode = 0; mode < MODE_COUNT; mode++) {
            const char *hex = json_string_value(json_object_get(tc, mode_names[mode]));
            assert_non_null(hex);
            size_t want_len;
            cleanup_free uint8_t *want = unhex(hex, &want_len);
            assert_true(want_len > B3_OUT_LEN);
            cleanup_free uint8_t *got = xmalloc(want_len);

            b3_hasher h;
            init_mode(&h, mode, v);
            b3_update(&h, in, input_len);
            b3_finalize(&h, got, want_len);
            expect_bytes(got, want, want_len, "extended output", input_len, mode);
            checked_outputs++;

            uint8_t out32[B3_OUT_LEN];
            b3_finalize(&h, out32, sizeof(out32));
            expect_bytes(out32, want, sizeof(out32), "default-length output", input_len, mode);
            checked_prefixes++;

            /* Other lengths are prefixes of the same stream, around block boundaries. */
            static const size_t lens[] = {0, 1, 31, 33, 63, 64, 65, 127, 128, 129};
            for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
                if (lens[i] > want_len)
                    continue;
                uint8_t buf[129];
                memset(buf, 0xAA, sizeof(buf));
                b3_finalize(&h, buf, lens[i]);
                expect_bytes(buf, want, lens[i], "shorter output", input_len, mode);
                if (lens[i] < sizeof(buf))
                    assert_int_equal(buf[lens[i]], 0xAA); /* nothing written past out_len */
            }

            if (mode == MODE_HASH) {
                b3_hash(in, input_len, got, want_len);
                expect_bytes(got, want, want_len, "b3_hash", input_len, mode);
            }
        }
    }
    printf("blake3: checked %u extended outputs and %u 32-byte outputs (%zu cases x 3 modes)\n",
           checked_outputs, checked_prefixes, ncases);
}

static void test_vectors_incremental(void **state)
{
    vectors *v = *state;
    static const size_t pieces[] = {1, 7, 63, 64, 65, 1023, 1024, 1025};
    size_t ncases = json_array_size(v->cases);
    for (size_t c = 0; c < ncases; c++) {
        json_t *tc = json_array_get(v->cases, c);
        size_t input_len = (size_t)json_integer_value(json_object_get(tc, "input_len"));
        cleanup_free uint8_t *in = make_input(input_len);
        for (int mode = 0; mode < MODE_COUNT; mode++) {
            size_t want_len;
            cleanup_free uint8_t *want =
                unhex(json_string_value(json_object_get(tc, mode_names[mode])), &want_len);
            cleanup_free uint8_t *got = xmalloc(want_len);

            /* Every piece size on its own. */
            for (size_t p = 0; p < ARRAY_LEN(pieces); p++) {
                b3_hasher h;
                init_mode(&h, mode, v);
                for (size_t off = 0; off < input_len; off += pieces[p]) {
                    size_t n = input_len - off < pieces[p] ? input_len - off : pieces[p];
                    b3_update(&h, in + off, n);
                }
                b3_finalize(&h, got, want_len);
                expect_bytes(got, want, want_len, "incremental output", input_len, mode);
                checked_incremental++;
            }

            /* All piece sizes in turn, with empty updates in between. */
            b3_hasher h;
            init_mode(&h, mode, v);
            size_t off = 0;
            for (size_t p = 0; off < input_len; p++) {
                size_t n = pieces[p % ARRAY_LEN(pieces)];
                if (n > input_len - off)
                    n = input_len - off;
                b3_update(&h, in + off, n);
                b3_update(&h, in + off + n, 0);
                off += n;
            }
            b3_finalize(&h, got, want_len);
            expect_bytes(got, want, want_len, "mixed-piece output", input_len, mode);
            checked_incremental++;
        }
    }
    printf("blake3: checked %u incremental outputs\n", checked_incremental);
}

/* b3_finalize leaves the hasher alone: finalizing twice agrees, and input added after a
 * finalize continues the same message. */
static void test_finalize_is_idempotent(void **state)
{
    vectors *v = *state;
    size_t ncases = json_array_size(v->cases);
    for (size_t c = 0; c < ncases; c++) {
        json_t *tc = json_array_get(v->cases, c);
        size_t input_len = (size_t)json_integer_value(json_object_get(tc, "input_len"));
        cleanup_free uint8_t *in = make_input(input_len);
        for (int mode = 0; mode < MODE_COUNT; mode++) {
            size_t want_len;
            cleanup_free uint8_t *want =
                unhex(json_string_value(json_object_get(tc, mode_names[mode])), &want_len);
            cleanup_free uint8_t *got1 = xmalloc(want_len);
            cleanup_free uint8_t *got2 = xmalloc(want_len);

            size_t split = input_len / 2;
            b3_hasher h;
            init_mode(&h, mode, v);
            b3_update(&h, in, split);
            b3_finalize(&h, got1, want_len);
            b3_hasher copy;
            memcpy(&copy, &h, sizeof(h));
            b3_finalize(&h, got2, want_len);
            assert_memory_equal(got1, got2, want_len);
            assert_memory_equal(&copy, &h, sizeof(h));

            b3_update(&h, in + split, input_len - split);
            b3_finalize(&h, got1, want_len);
            b3_finalize(&h, got2, want_len);
            expect_bytes(got1, want, want_len, "update after finalize", input_len, mode);
            expect_bytes(got2, want, want_len, "second finalize", input_len, mode);
        }
    }
}

/* Finalizing at every prefix length of a multi-chunk input, then continuing, gives the same
 * result as hashing in one go. */
static void test_update_after_finalize_every_length(void **state)
{
    (void)state;
    const size_t total = 3 * B3_CHUNK_LEN + 100;
    cleanup_free uint8_t *in = make_input(total);
    uint8_t want[B3_OUT_LEN], got[B3_OUT_LEN], scratch[B3_OUT_LEN];
    b3_hash(in, total, want, sizeof(want));
    b3_hasher h;
    b3_init(&h);
    for (size_t i = 0; i < total; i++) {
        b3_finalize(&h, scratch, sizeof(scratch));
        b3_update(&h, in + i, 1);
    }
    b3_finalize(&h, got, sizeof(got));
    assert_memory_equal(got, want, sizeof(want));
}

/* Hashing a larger input is fast and agrees between one-shot and incremental. */
static void test_large_input(void **state)
{
    (void)state;
    const size_t total = 1u << 20;
    cleanup_free uint8_t *in = make_input(total);
    uint8_t a[B3_OUT_LEN], b[B3_OUT_LEN];
    b3_hash(in, total, a, sizeof(a));
    b3_hasher h;
    b3_init(&h);
    for (size_t off = 0; off < total; off += 4099) {
        size_t n = total - off < 4099 ? total - off : 4099;
        b3_update(&h, in + off, n);
    }
    b3_finalize(&h, b, sizeof(b));
    assert_memory_equal(a, b, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vectors_one_shot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vectors_incremental, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_is_idempotent, setup, teardown),
        cmocka_unit_test(test_update_after_finalize_every_length),
        cmocka_unit_test(test_large_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
