/* test_toml.c - the TOML parser, value tree API and writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "strbuf.h"
#include "toml.h"

#define BOM "\xEF\xBB\xBF" /* U+FEFF in UTF-8 */

/* ---- helpers ---------------------------------------------------------------------------- */

static toml_value *parse_ok_ver(const char *text, toml_version ver)
{
    mt_error *err = NULL;
    toml_value *root = toml_parse(text, strlen(text), "test.toml", ver, &err);
    if (!root)
        fail_msg("parse failed: %s\n--- input ---\n%s", mt_error_msg(err), text);
    assert_null(err);
    assert_int_equal(root->type, TOML_TABLE);
    return root;
}

static toml_value *parse_ok(const char *text)
{
    return parse_ok_ver(text, TOML_1_1);
}

/* Parse must fail; returns the (owned) message. */
static char *parse_fail_ver(const char *text, size_t len, toml_version ver)
{
    mt_error *err = NULL;
    toml_value *root = toml_parse(text, len, "conf.toml", ver, &err);
    if (root) {
        char *out = toml_write(root);
        toml_free(root);
        fail_msg("parse of invalid input succeeded:\n%s\n--- parsed as ---\n%s", text, out);
    }
    assert_non_null(err);
    assert_int_equal(err->code, MT_ERR_PARSE);
    char *msg = xstrdup(mt_error_msg(err));
    mt_error_free(&err);
    return msg;
}

static char *parse_fail(const char *text)
{
    return parse_fail_ver(text, strlen(text), TOML_1_1);
}

/* Message must start with "conf.toml:LINE:COL: " and contain `reason`. */
static void expect_error(const char *text, toml_version ver, int line, int col, const char *reason)
{
    char *msg = parse_fail_ver(text, strlen(text), ver);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "conf.toml:%d:%d: ", line, col);
    if (strncmp(msg, prefix, strlen(prefix)) != 0 || !strstr(msg, reason))
        fail_msg("input:\n%s\nerror   \"%s\"\nwanted  \"%s...%s...\"", text, msg, prefix, reason);
    free(msg);
}

static bool values_equal(const toml_value *a, const toml_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case TOML_STRING:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    case TOML_INTEGER:
        return a->u.i == b->u.i;
    case TOML_FLOAT:
        if (isnan(a->u.f) || isnan(b->u.f))
            return isnan(a->u.f) && isnan(b->u.f);
        return a->u.f == b->u.f && signbit(a->u.f) == signbit(b->u.f);
    case TOML_BOOL:
        return a->u.b == b->u.b;
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL: {
        const toml_datetime *x = &a->u.dt, *y = &b->u.dt;
        bool same = x->nanosecond == y->nanosecond;
        if (a->type != TOML_TIME_LOCAL)
            same = same && x->year == y->year && x->month == y->month && x->day == y->day;
        if (a->type != TOML_DATE_LOCAL)
            same = same && x->hour == y->hour && x->minute == y->minute && x->second == y->second;
        if (a->type == TOML_DATETIME)
            same = same && x->offset_minutes == y->offset_minutes;
        return same;
    }
    case TOML_ARRAY:
        if (a->u.arr.len != b->u.arr.len)
            return false;
        for (size_t i = 0; i < a->u.arr.len; i++)
            if (!values_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return false;
        return true;
    case TOML_TABLE:
        if (a->u.tab.len != b->u.tab.len)
            return false;
        for (size_t i = 0; i < a->u.tab.len; i++) {
            const toml_kv *x = &a->u.tab.items[i];
            /* the writer may reorder (plain keys before sections): look up by key */
            const toml_kv *y = NULL;
            for (size_t j = 0; j < b->u.tab.len; j++)
                if (b->u.tab.items[j].keylen == x->keylen &&
                    memcmp(b->u.tab.items[j].key, x->key, x->keylen) == 0)
                    y = &b->u.tab.items[j];
            if (!y || !values_equal(x->val, y->val))
                return false;
        }
        return true;
    }
    return false;
}

/* parse -> write -> parse (both modes) -> deep-equal, and the output is a fixed point. */
static void expect_round_trip(const toml_value *root)
{
    char *text = toml_write(root);
    for (int v = 0; v < 2; v++) {
        mt_error *err = NULL;
        toml_version ver = v ? TOML_1_0 : TOML_1_1;
        toml_value *back = toml_parse(text, strlen(text), "written", ver, &err);
        if (!back)
            fail_msg("written TOML does not parse (%s): %s\n---\n%s", v ? "1.0" : "1.1",
                     mt_error_msg(err), text);
        if (!values_equal(root, back) || !values_equal(back, root))
            fail_msg("round trip changed the tree:\n%s", text);
        char *again = toml_write(back);
        assert_string_equal(again, text);
        free(again);
        toml_free(back);
    }
    free(text);
}

static void expect_round_trip_text(const char *src)
{
    toml_value *root = parse_ok(src);
    expect_round_trip(root);
    toml_free(root);
}

/* ---- parsing ---------------------------------------------------------------------------- */

static void test_lookup_and_types(void **state)
{
    toml_value *root = parse_ok("title = \"TOML \\\"example\\\"\"\n"
                                "count = -42\n"
                                "hex = 0xDEAD_beef\n"
                                "oct = 0o755\n"
                                "bin = 0b1101\n"
                                "big = 9_223_372_036_854_775_807\n"
                                "pi = 3.141_592\n"
                                "exp = -2E-3\n"
                                "ninf = -inf\n"
                                "qnan = nan\n"
                                "yes = true\n"
                                "odt = 1979-05-27T07:32:00.999999999-07:30\n"
                                "ldt = 1979-05-27 07:32:00.1234567891\n"
                                "ld = 2024-02-29\n"
                                "lt = 23:59:60\n"
                                "arr = [1, \"two\", [3.0], {four = 4}]\n"
                                "[server]\n"
                                "host.name = \"example.org\"\n");
    toml_value *v = toml_table_get(root, "title");
    assert_non_null(v);
    assert_int_equal(v->type, TOML_STRING);
    assert_string_equal(v->u.s.ptr, "TOML \"example\"");
    assert_int_equal(toml_table_get(root, "count")->u.i, -42);
    assert_int_equal(toml_table_get(root, "hex")->u.i, 0xDEADBEEF);
    assert_int_equal(toml_table_get(root, "oct")->u.i, 0755);
    assert_int_equal(toml_table_get(root, "bin")->u.i, 13);
    assert_true(toml_table_get(root, "big")->u.i == INT64_MAX);
    assert_true(toml_table_get(root, "pi")->u.f == 3.141592);
    assert_true(toml_table_get(root, "exp")->u.f == -2e-3);
    v = toml_table_get(root, "ninf");
    assert_int_equal(v->type, TOML_FLOAT);
    assert_true(isinf(v->u.f) && v->u.f < 0);
    assert_true(isnan(toml_table_get(root, "qnan")->u.f));
    assert_true(toml_table_get(root, "yes")->u.b);

    v = toml_table_get(root, "odt");
    assert_int_equal(v->type, TOML_DATETIME);
    assert_int_equal(v->u.dt.year, 1979);
    assert_int_equal(v->u.dt.month, 5);
    assert_int_equal(v->u.dt.day, 27);
    assert_int_equal(v->u.dt.nanosecond, 999999999);
    assert_int_equal(v->u.dt.frac_digits, 9);
    assert_int_equal(v->u.dt.offset_minutes, -450);
    assert_false(v->u.dt.offset_z);
    v = toml_table_get(root, "ldt");
    assert_int_equal(v->type, TOML_DATETIME_LOCAL);
    assert_int_equal(v->u.dt.nanosecond, 123456789); /* truncated, not rounded */
    assert_int_equal(v->u.dt.frac_digits, 9);
    assert_int_equal(toml_table_get(root, "ld")->type, TOML_DATE_LOCAL);
    v = toml_table_get(root, "lt");
    assert_int_equal(v->type, TOML_TIME_LOCAL);
    assert_int_equal(v->u.dt.second, 60);

    v = toml_table_get(root, "arr");
    assert_int_equal(v->type, TOML_ARRAY);
    assert_int_equal(v->u.arr.len, 4);
    assert_string_equal(v->u.arr.items[1]->u.s.ptr, "two");
    assert_int_equal(v->u.arr.items[2]->u.arr.items[0]->type, TOML_FLOAT);
    assert_int_equal(toml_table_get(v->u.arr.items[3], "four")->u.i, 4);

    toml_value *host = toml_table_get(toml_table_get(root, "server"), "host");
    assert_non_null(host);
    assert_string_equal(toml_table_get(host, "name")->u.s.ptr, "example.org");
    assert_null(toml_table_get(root, "missing"));
    assert_null(toml_table_get(root, "serve"));
    assert_null(toml_table_get(v, "x")); /* not a table */
    assert_null(toml_table_get(NULL, "x"));
    toml_free(root);
}

static void test_line_col(void **state)
{
    toml_value *root = parse_ok("# comment\n"
                                "a = 1\n"
                                "  b.c = \"x\"\n"
                                "\n"
                                "[tab.sub]\n"
                                "k =   [1,\n"
                                "       2]\n"
                                "[[arr]]\n"
                                "[[arr]]\n"
                                "  \"é\" = 'ü'\n");
    toml_kv *kv = toml_table_get_kv(root, "a");
    assert_non_null(kv);
    assert_int_equal(kv->line, 2);
    assert_int_equal(kv->col, 1);
    assert_int_equal(kv->val->line, 2);
    assert_int_equal(kv->val->col, 5);

    kv = toml_table_get_kv(root, "b");
    assert_int_equal(kv->line, 3);
    assert_int_equal(kv->col, 3);
    kv = toml_table_get_kv(kv->val, "c");
    assert_int_equal(kv->line, 3);
    assert_int_equal(kv->col, 5);
    assert_int_equal(kv->val->col, 9);

    /* [tab.sub]: tab is implicit (position of the key), sub is the header */
    kv = toml_table_get_kv(root, "tab");
    assert_int_equal(kv->line, 5);
    assert_int_equal(kv->col, 2);
    toml_value *sub = toml_table_get(kv->val, "sub");
    assert_int_equal(sub->line, 5);
    assert_int_equal(sub->col, 1);
    kv = toml_table_get_kv(sub, "k");
    assert_int_equal(kv->line, 6);
    assert_int_equal(kv->val->col, 7);
    assert_int_equal(kv->val->u.arr.items[1]->line, 7);
    assert_int_equal(kv->val->u.arr.items[1]->col, 8);

    toml_value *arr = toml_table_get(root, "arr");
    assert_int_equal(arr->u.arr.len, 2);
    assert_int_equal(arr->u.arr.items[0]->line, 8);
    assert_int_equal(arr->u.arr.items[1]->line, 9);
    kv = toml_table_get_kv(arr->u.arr.items[1], "é");
    assert_non_null(kv);
    assert_int_equal(kv->line, 10);
    assert_int_equal(kv->col, 3);
    assert_int_equal(kv->val->col, 9); /* columns count characters, not bytes */
    toml_free(root);

    /* a later [a] header makes the implicit table explicit and moves its position there */
    root = parse_ok("[a.b]\nx = 1\n\n[a]\ny = 2\n");
    toml_value *a = toml_table_get(root, "a");
    assert_int_equal(a->line, 4);
    assert_int_equal(a->col, 1);
    toml_free(root);

    /* CRLF line ends and a BOM do not disturb positions */
    root = parse_ok("\xEF\xBB\xBFx = 1\r\ny = 2\r\n");
    kv = toml_table_get_kv(root, "y");
    assert_int_equal(kv->line, 2);
    assert_int_equal(kv->col, 1);
    kv = toml_table_get_kv(root, "x");
    assert_int_equal(kv->col, 1);
    toml_free(root);
}

static void test_error_messages(void **state)
{
    expect_error("name = \"x\"\nport = 80\nalias\n", TOML_1_1, 3, 6,
                 "expected '=' after key \"alias\"");
    expect_error("a = 1\na = 2\n", TOML_1_1, 2, 1, "duplicate key \"a\"");
    expect_error("[t]\nx = 1\n[t]\n", TOML_1_1, 3, 2, "table \"t\" is already defined");
    expect_error("a = \"unterminated\nb = 1\n", TOML_1_1, 1, 5, "unterminated string");
    expect_error("a = [1, 2\n", TOML_1_1, 1, 5, "unterminated array");
    expect_error("x = 1\ny = 0x8000000000000000\n", TOML_1_1, 2, 5, "out of range");
    expect_error("d = 2023-02-29\n", TOML_1_1, 1, 13, "day 29 out of range");
    expect_error("s = \"bad \\q escape\"\n", TOML_1_1, 1, 10, "invalid escape");
    expect_error("k = 1 2\n", TOML_1_1, 1, 7, "expected a newline");
    expect_error("v = 01\n", TOML_1_1, 1, 5, "leading zeros");
    expect_error("# ok\n# bad \x01 here\n", TOML_1_1, 2, 7, "control character U+0001");
    expect_error("a = 1\nb = \"\xC3\x28\"\n", TOML_1_1, 2, 6, "invalid UTF-8");
    expect_error("x = {a = 1}\nx.b = 2\n", TOML_1_1, 2, 1, "inline table");
    expect_error("[a]\nb.c = 1\n[a.b]\n", TOML_1_1, 3, 4, "dotted keys");
    expect_error("a = 1\r\rb = 2\n", TOML_1_1, 1, 6, "carriage return");
    /* U+FEFF outside a string or comment is a byte order mark out of place */
    expect_error("a = " BOM "1\n", TOML_1_1, 1, 5, "byte order mark (U+FEFF)");
    expect_error(BOM BOM "a = 1\n", TOML_1_0, 1, 1, "byte order mark");

    /* name defaults to <input> */
    mt_error *err = NULL;
    assert_null(toml_parse("=", 1, NULL, TOML_1_1, &err));
    assert_non_null(err);
    assert_true(strncmp(mt_error_msg(err), "<input>:1:1: ", 13) == 0);
    mt_error_free(&err);
    /* err may be NULL */
    assert_null(toml_parse("=", 1, NULL, TOML_1_1, NULL));
}

static void test_parse_file(void **state)
{
    char path[] = "/tmp/test_toml_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[server]\nport = 8080\nname = \n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    mt_error *err = NULL;
    assert_null(toml_parse_file(path, TOML_1_1, &err));
    assert_non_null(err);
    char *want = xasprintf("%s:3:8: expected a value", path);
    if (strncmp(mt_error_msg(err), want, strlen(want)) != 0)
        fail_msg("got \"%s\", want prefix \"%s\"", mt_error_msg(err), want);
    free(want);
    mt_error_free(&err);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[server]\nport = 8080\n", f);
    fclose(f);
    toml_value *root = toml_parse_file(path, TOML_1_0, &err);
    assert_non_null(root);
    assert_int_equal(toml_table_get(toml_table_get(root, "server"), "port")->u.i, 8080);
    toml_free(root);
    unlink(path);

    assert_null(toml_parse_file("/nonexistent/dir/x.toml", TOML_1_1, &err));
    assert_non_null(err);
    assert_int_not_equal(err->code, MT_ERR_PARSE);
    mt_error_free(&err);
}

static char *nested(const char *open, const char *close, int n, const char *prefix)
{
    strbuf sb = STRBUF_INIT;
    sb_puts(&sb, prefix);
    for (int i = 0; i < n; i++)
        sb_puts(&sb, open);
    for (int i = 0; i < n; i++)
        sb_puts(&sb, close);
    sb_putc(&sb, '\n');
    return sb_steal(&sb);
}

static void test_nesting_limit(void **state)
{
    /* 128 levels are fine, 129 are not: arrays, inline tables, table paths, dotted keys */
    char *ok = nested("[", "]", 128, "a = ");
    toml_value *root = parse_ok(ok);
    toml_free(root);
    free(ok);
    char *bad = nested("[", "]", 129, "a = ");
    char *msg = parse_fail(bad);
    assert_non_null(strstr(msg, "nested too deeply"));
    assert_non_null(strstr(msg, "128"));
    free(msg);
    free(bad);

    bad = nested("{b = ", "}", 129, "a = ");
    msg = parse_fail(bad);
    assert_non_null(strstr(msg, "nested too deeply"));
    free(msg);
    free(bad);

    strbuf sb = STRBUF_INIT;
    sb_putc(&sb, '[');
    for (int i = 0; i < 129; i++)
        sb_puts(&sb, i ? ".k" : "k");
    sb_puts(&sb, "]\n");
    msg = parse_fail(sb.buf);
    assert_non_null(strstr(msg, "nested too deeply"));
    free(msg);
    sb.len = 1; /* keep '[' */
    for (int i = 0; i < 128; i++)
        sb_puts(&sb, i ? ".k" : "k");
    sb_puts(&sb, "]\nx = 1\n");
    root = parse_ok(sb.buf);
    expect_round_trip(root);
    toml_free(root);

    /* table path + dotted keys + inline values add up */
    sb_reset(&sb);
    sb_puts(&sb, "[t]\n");
    for (int i = 0; i < 127; i++)
        sb_puts(&sb, "d.");
    sb_puts(&sb, "v = [1]\n");
    msg = parse_fail(sb.buf);
    assert_non_null(strstr(msg, "nested too deeply"));
    free(msg);
    sb_free(&sb);

    /* very deep input fails quickly and without exhausting the stack */
    bad = nested("[", "]", 200000, "a = ");
    msg = parse_fail(bad);
    assert_true(strncmp(msg, "conf.toml:1:133: ", 17) == 0);
    free(msg);
    free(bad);
    bad = nested("{a=", "}", 200000, "a = ");
    msg = parse_fail(bad);
    assert_non_null(strstr(msg, "nested too deeply"));
    free(msg);
    free(bad);
}

static void test_strings(void **state)
{
    toml_value *root = parse_ok("nul = \"a\\u0000b\"\n"
                                "\"k\\u0000ey\" = 1\n"
                                "uni = \"\\u00e9\\U0001F600\"\n"
                                "lit = 'C:\\path\\'\n"
                                "ml = \"\"\"\n  one \\\n     two\r\n\"\"\"\n"
                                "mll = '''\n''quoted'' '''\n"
                                "q = \"\"\"\"\"x\"\"\"\"\"\n"
                                "esc = \"\\e[0m\\x41\"\n");
    toml_value *v = toml_table_get(root, "nul");
    assert_int_equal(v->u.s.len, 3);
    assert_memory_equal(v->u.s.ptr, "a\0b", 4);
    /* a key with NUL: found through the kv list, not by the C-string lookup */
    const toml_kv *kv = &root->u.tab.items[1];
    assert_int_equal(kv->keylen, 4);
    assert_memory_equal(kv->key, "k\0ey", 5);
    assert_null(toml_table_get(root, "k"));
    assert_string_equal(toml_table_get(root, "uni")->u.s.ptr, "\xC3\xA9\xF0\x9F\x98\x80");
    assert_string_equal(toml_table_get(root, "lit")->u.s.ptr, "C:\\path\\");
    assert_string_equal(toml_table_get(root, "ml")->u.s.ptr, "  one two\n");
    assert_string_equal(toml_table_get(root, "mll")->u.s.ptr, "''quoted'' ");
    assert_string_equal(toml_table_get(root, "q")->u.s.ptr, "\"\"x\"\"");
    assert_string_equal(toml_table_get(root, "esc")->u.s.ptr, "\x1b[0mA");
    expect_round_trip(root);

    /* the writer escapes NUL and friends so the text is valid TOML */
    char *out = toml_write(root);
    assert_non_null(strstr(out, "nul = \"a\\u0000b\"\n"));
    assert_non_null(strstr(out, "\"k\\u0000ey\" = 1\n"));
    assert_non_null(strstr(out, "esc = \"\\u001B[0mA\"\n"));
    free(out);
    toml_free(root);

    /* U+FEFF is a character like any other inside strings and comments, written as is or
     * escaped (the fuzzer found the writer's raw U+FEFF refused by the parser) */
    root = parse_ok("# a comment with " BOM " in it\n"
                    "bom = \"\\uFEFF\"\n"
                    "raw = 'x" BOM "y'\n"
                    "\"" BOM "\" = 1\n");
    assert_string_equal(toml_table_get(root, "bom")->u.s.ptr, BOM);
    assert_string_equal(toml_table_get(root, "raw")->u.s.ptr, "x" BOM "y");
    assert_non_null(toml_table_get(root, BOM));
    expect_round_trip(root);
    toml_free(root);

    /* builders with NUL */
    root = toml_new_table();
    toml_table_set(root, "bin", toml_new_stringn("\0\x01\x7f\"\\", 5));
    out = toml_write(root);
    assert_string_equal(out, "bin = \"\\u0000\\u0001\\u007F\\\"\\\\\"\n");
    free(out);
    expect_round_trip(root);
    toml_free(root);
}

static void test_toml10_rejects_11_syntax(void **state)
{
    static const char *const only11[] = {
        "t = {\n  a = 1\n}\n",    "t = {a = 1, }\n",         "t = { # comment\n a = 1}\n",
        "s = \"\\e\"\n",          "s = \"\\x41\"\n",         "t = 07:32\n",
        "d = 1979-05-27T07:32\n", "d = 1979-05-27 07:32Z\n", "d = 1979-05-27T07:32-07:00\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(only11); i++) {
        toml_value *root = parse_ok_ver(only11[i], TOML_1_1);
        toml_free(root);
        char *msg = parse_fail_ver(only11[i], strlen(only11[i]), TOML_1_0);
        assert_true(strncmp(msg, "conf.toml:", 10) == 0);
        free(msg);
    }
    toml_value *root = parse_ok("t = 07:32\nd = 1979-05-27 07:32Z\n");
    toml_value *t = toml_table_get(root, "t");
    assert_int_equal(t->u.dt.second, 0);
    char *s = toml_format_datetime(t);
    assert_string_equal(s, "07:32:00");
    free(s);
    s = toml_format_datetime(toml_table_get(root, "d"));
    assert_string_equal(s, "1979-05-27T07:32:00Z");
    free(s);
    toml_free(root);
}

static void test_table_rules(void **state)
{
    static const char *const valid[] = {
        "[a.b.c]\n[a]\nx = 1\n",     "[a]\nb.c = 1\n[a.b.d]\ne = 2\n",
        "a.b = 1\n[a.c]\n",          "[[a]]\n[a.b]\n[[a]]\n[a.b]\n",
        "[[a.b]]\n[a]\nc = 1\n",     "t = {a.b = 1, a.c = 2}\n",
        "'' = 1\n\"a\".'b'.c = 2\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        toml_value *root = parse_ok(valid[i]);
        expect_round_trip(root);
        toml_free(root);
    }
    static const char *const invalid[] = {
        "[a]\n[a]\n",
        "a.b = 1\n[a]\n",
        "[a.b.c]\n[a]\nb.c.d = 1\n",
        "a = {}\n[a.b]\n",
        "a = {b = {}}\na.b.c = 1\n",
        "a = [{}]\n[[a]]\n",
        "[[a]]\n[a]\n",
        "[a]\n[[a]]\n",
        "t = {a = {b = 1}, a.c = 2}\n",
        "[[albums.songs]]\n[[albums]]\n",
        "a = 1\n[a.b]\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(invalid); i++)
        free(parse_fail(invalid[i]));
}

static void test_numbers(void **state)
{
    static const char *const bad[] = {
        "x = +0x1\n", "x = 0X1\n",  "x = 1__0\n",
        "x = _1\n",   "x = 1_\n",   "x = 01\n",
        "x = 1.\n",   "x = .1\n",   "x = 1e\n",
        "x = 1.e1\n", "x = 1_.0\n", "x = Inf\n",
        "x = 0b2\n",  "x = 0o8\n",  "x = 0x\n",
        "x = --1\n",  "x = 1e_1\n", "x = 9223372036854775808\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        free(parse_fail(bad[i]));
    toml_value *root = parse_ok(
        "a = -9223372036854775808\nb = 1e06\nc = -0.0\nd = +inf\ne = 0x7FFFFFFFFFFFFFFF\n");
    assert_true(toml_table_get(root, "a")->u.i == INT64_MIN);
    assert_true(toml_table_get(root, "b")->u.f == 1e6);
    assert_true(signbit(toml_table_get(root, "c")->u.f));
    assert_true(isinf(toml_table_get(root, "d")->u.f));
    assert_true(toml_table_get(root, "e")->u.i == INT64_MAX);
    toml_free(root);
}

/* ---- builders, set/remove, clone -------------------------------------------------------- */

static void test_builders_set_remove_clone(void **state)
{
    toml_value *root = toml_new_table();
    toml_table_set(root, "a", toml_new_integer(1));
    toml_table_set(root, "b", toml_new_string("two"));
    toml_table_set(root, "c", toml_new_bool(false));
    assert_int_equal(root->u.tab.len, 3);

    /* replacing keeps the position */
    toml_table_set(root, "b", toml_new_float(2.5));
    assert_int_equal(root->u.tab.len, 3);
    assert_string_equal(root->u.tab.items[1].key, "b");
    assert_int_equal(root->u.tab.items[1].val->type, TOML_FLOAT);
    assert_true(toml_table_get(root, "b")->u.f == 2.5);
    /* setting the same value again is a no-op, not a use-after-free */
    toml_table_set(root, "b", toml_table_get(root, "b"));
    assert_true(toml_table_get(root, "b")->u.f == 2.5);

    toml_value *arr = toml_new_array();
    toml_array_push(arr, toml_new_integer(10));
    toml_array_push(arr, toml_new_string("x"));
    toml_table_set(root, "arr", arr);

    toml_value *clone = toml_clone(root);
    assert_true(clone != root);
    assert_true(values_equal(root, clone));
    assert_true(toml_table_get(clone, "arr") != arr);

    assert_true(toml_table_remove(root, "a"));
    assert_false(toml_table_remove(root, "a"));
    assert_false(toml_table_remove(root, "zzz"));
    assert_int_equal(root->u.tab.len, 3);
    assert_string_equal(root->u.tab.items[0].key, "b");
    assert_string_equal(root->u.tab.items[2].key, "arr");
    assert_null(toml_table_get(root, "a"));

    /* the clone is independent */
    assert_int_equal(clone->u.tab.len, 4);
    assert_int_equal(toml_table_get(clone, "a")->u.i, 1);
    toml_table_set(clone, "arr", toml_new_integer(0));
    assert_int_equal(toml_table_get(root, "arr")->u.arr.len, 2);
    toml_free(clone);

    /* a parsed tree clones with positions */
    toml_value *parsed = parse_ok("\n  k = [1, {x = 2}]\n");
    clone = toml_clone(parsed);
    toml_kv *kv = toml_table_get_kv(clone, "k");
    assert_int_equal(kv->line, 2);
    assert_int_equal(kv->col, 3);
    assert_int_equal(kv->val->col, 7);
    assert_true(values_equal(parsed, clone));
    toml_free(clone);
    toml_free(parsed);

    assert_string_equal(toml_type_name(TOML_BOOL), "boolean");
    assert_string_equal(toml_type_name(TOML_DATETIME), "offset date-time");
    assert_string_equal(toml_type_name(TOML_TIME_LOCAL), "local time");
    toml_free(root);
    toml_free(NULL);
    toml_value *tmp = toml_new_table();
    toml_freep(&tmp);
    assert_null(tmp);
}

/* ---- writer ----------------------------------------------------------------------------- */

static void expect_float_text(double d, const char *want)
{
    toml_value *v = toml_new_float(d);
    char *s = toml_format_value(v);
    if (strcmp(s, want) != 0)
        fail_msg("%.17g formatted as \"%s\", want \"%s\"", d, s, want);
    free(s);
    toml_free(v);
}

static void test_format_values(void **state)
{
    expect_float_text(1.0, "1.0");
    expect_float_text(0.1, "0.1");
    expect_float_text(100.0, "100.0");
    expect_float_text(-0.0, "-0.0");
    expect_float_text(1e100, "1e+100");
    expect_float_text(1.5e-7, "1.5e-07");
    expect_float_text(123456.789, "123456.789");
    expect_float_text(0.30000000000000004, "0.30000000000000004");
    expect_float_text(INFINITY, "inf");
    expect_float_text(-INFINITY, "-inf");
    expect_float_text(NAN, "nan");
    expect_float_text(5e-324, "5e-324");

    toml_value *root = parse_ok("a = 1979-05-27T07:32:00Z\n"
                                "b = 1979-05-27T00:32:00.5+05:30\n"
                                "c = 1979-05-27t07:32:00.999\n"
                                "d = 1979-05-27\n"
                                "e = 07:32:00.000100\n"
                                "f = 2000-01-01 00:00:00-00:00\n");
    static const char *const want[] = {
        "1979-05-27T07:32:00Z",    "1979-05-27T00:32:00.5+05:30",
        "1979-05-27T07:32:00.999", "1979-05-27",
        "07:32:00.000100",         "2000-01-01T00:00:00+00:00",
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        char *s = toml_format_datetime(root->u.tab.items[i].val);
        assert_string_equal(s, want[i]);
        free(s);
    }
    char *s = toml_format_value(toml_table_get(root, "b"));
    assert_string_equal(s, "1979-05-27T00:32:00.5+05:30");
    free(s);
    toml_free(root);

    toml_value *str = toml_new_string("tab\there \"q\" \xE2\x82\xAC");
    s = toml_format_value(str);
    assert_string_equal(s, "\"tab\\there \\\"q\\\" \xE2\x82\xAC\"");
    free(s);
    toml_free(str);
}

static void test_locale_independent(void **state)
{
    /* Floats are read and written with '.' whatever LC_NUMERIC says (skipped if no locale
     * with a decimal comma is installed). */
    static const char *const comma_locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                                                "nl_NL.UTF-8"};
    bool switched = false;
    for (size_t i = 0; i < ARRAY_LEN(comma_locales) && !switched; i++)
        switched = setlocale(LC_NUMERIC, comma_locales[i]) != NULL;
    toml_value *root = parse_ok("f = 1.5\ng = 2.5e-3\n");
    assert_true(toml_table_get(root, "f")->u.f == 1.5);
    assert_true(toml_table_get(root, "g")->u.f == 2.5e-3);
    char *out = toml_write(root);
    assert_string_equal(out, "f = 1.5\ng = 0.0025\n");
    free(out);
    toml_free(root);
    if (switched)
        setlocale(LC_NUMERIC, "C");
}

static void test_write_exact(void **state)
{
    toml_value *root = toml_new_table();
    toml_value *srv = toml_new_table();
    toml_table_set(srv, "port", toml_new_integer(8080));
    toml_table_set(root, "server", srv); /* a table before plain keys: written after them */
    toml_table_set(root, "name", toml_new_string("node \"1\"\n"));
    toml_table_set(root, "key with space", toml_new_float(2.0));
    toml_table_set(root, "", toml_new_bool(true));
    toml_table_set(root, "ratio", toml_new_float(0.1));
    toml_value *list = toml_new_array();
    toml_array_push(list, toml_new_integer(1));
    toml_array_push(list, toml_new_string("x"));
    toml_table_set(root, "list", list);
    toml_table_set(root, "empty", toml_new_table());
    toml_value *aot = toml_new_array();
    toml_value *e1 = toml_new_table();
    toml_table_set(e1, "id", toml_new_integer(1));
    toml_array_push(aot, e1);
    toml_array_push(aot, toml_new_table());
    toml_table_set(root, "peer.s", aot);
    toml_value *deep = toml_new_table();
    toml_value *inner = toml_new_table();
    toml_table_set(inner, "x", toml_new_integer(-3));
    toml_table_set(deep, "inner", inner);
    toml_table_set(root, "deep", deep);
    toml_value *nested = toml_new_array();
    toml_value *nested_aot = toml_new_array();
    toml_value *t = toml_new_table();
    toml_table_set(t, "k", toml_new_string("v"));
    toml_array_push(nested_aot, t);
    toml_array_push(nested, nested_aot);
    toml_table_set(root, "matrix", nested);

    char *out = toml_write(root);
    assert_string_equal(out, "name = \"node \\\"1\\\"\\n\"\n"
                             "\"key with space\" = 2.0\n"
                             "\"\" = true\n"
                             "ratio = 0.1\n"
                             "list = [1, \"x\"]\n"
                             "matrix = [[{k = \"v\"}]]\n"
                             "\n"
                             "[server]\n"
                             "port = 8080\n"
                             "\n"
                             "[empty]\n"
                             "\n"
                             "[[\"peer.s\"]]\n"
                             "id = 1\n"
                             "\n"
                             "[[\"peer.s\"]]\n"
                             "\n"
                             "[deep.inner]\n"
                             "x = -3\n");
    free(out);
    expect_round_trip(root);
    toml_free(root);

    /* an empty root writes nothing */
    root = toml_new_table();
    out = toml_write(root);
    assert_string_equal(out, "");
    free(out);
    toml_free(root);
}

static void test_write_round_trips(void **state)
{
    expect_round_trip_text("# A document exercising most features\n"
                           "title = \"TOML Example\"\n"
                           "[owner]\n"
                           "name = \"Tom Preston-Werner\"\n"
                           "dob = 1979-05-27T07:32:00-08:00\n"
                           "[database]\n"
                           "enabled = true\n"
                           "ports = [ 8000, 8001, 8002 ]\n"
                           "data = [ [\"delta\", \"phi\"], [3.14] ]\n"
                           "temp_targets = { cpu = 79.5, case = 72.0 }\n"
                           "[servers]\n"
                           "[servers.alpha]\n"
                           "ip = \"10.0.0.1\"\n"
                           "role = \"frontend\"\n"
                           "[servers.beta]\n"
                           "ip = \"10.0.0.2\"\n"
                           "[[fruits]]\n"
                           "name = \"apple\"\n"
                           "[fruits.physical]\n"
                           "color = \"red\"\n"
                           "[[fruits.varieties]]\n"
                           "name = \"red delicious\"\n"
                           "[[fruits]]\n"
                           "name = \"banana\"\n"
                           "[[fruits.varieties]]\n"
                           "name = \"plantain\"\n");
    expect_round_trip_text("a.b.c = 1\n"
                           "a.d = [{x = 1}, {y = [{z = 2}]}]\n"
                           "e = [[{}], []]\n"
                           "f = {}\n"
                           "g = {h = {i = [1.5, -inf, nan, 1e300, 2.2250738585072014e-308]}}\n"
                           "\"quoted key\".'lit\\key' = \"\\u0001\\u007f\\\\\"\n"
                           "'\xF0\x9F\x98\x80' = 'emoji'\n"
                           "dt = [1979-05-27T07:32:00.123456Z, 1979-05-27, 07:32:00, "
                           "1979-05-27T07:32:00, 2000-01-01T00:00:00+14:00]\n"
                           "[x.y]\n"
                           "[x.z]\n"
                           "w = 1\n");
    expect_round_trip_text("");
    expect_round_trip_text("[a]\n[b]\n[c.d.e]\n");
    expect_round_trip_text("t = {\n  a = 1,\n  b = \"\"\"\nmulti\nline\"\"\",\n}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_and_types),
        cmocka_unit_test(test_line_col),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_toml10_rejects_11_syntax),
        cmocka_unit_test(test_table_rules),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_builders_set_remove_clone),
        cmocka_unit_test(test_format_values),
        cmocka_unit_test(test_locale_independent),
        cmocka_unit_test(test_write_exact),
        cmocka_unit_test(test_write_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
