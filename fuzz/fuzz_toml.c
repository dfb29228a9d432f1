/* fuzz_toml.c - libFuzzer target for the TOML parser and writer.
 *
 * Parses the input as TOML 1.1 and as strict TOML 1.0. Whenever parsing succeeds, the tree is
 * written with toml_write() and the text is parsed again in both modes: that must succeed and
 * give an equal tree (else abort()). Everything is freed, so leaks show up under LSan.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_value(const toml_value *a, const toml_value *b)
{
    if (a->type != b->type)
        return 0;
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
    case TOML_TIME_LOCAL:
        return a->u.dt.year == b->u.dt.year && a->u.dt.month == b->u.dt.month &&
               a->u.dt.day == b->u.dt.day && a->u.dt.hour == b->u.dt.hour &&
               a->u.dt.minute == b->u.dt.minute && a->u.dt.second == b->u.dt.second &&
               a->u.dt.nanosecond == b->u.dt.nanosecond &&
               a->u.dt.offset_minutes == b->u.dt.offset_minutes;
    case TOML_ARRAY:
        if (a->u.arr.len != b->u.arr.len)
            return 0;
        for (size_t i = 0; i < a->u.arr.len; i++)
            if (!same_value(a->u.arr.items[i], b->u.arr.items[i]))
                return 0;
        return 1;
    case TOML_TABLE:
        if (a->u.tab.len != b->u.tab.len)
            return 0;
        /* The writer puts plain keys before sub-tables, so compare by key. Keys are unique
         * within a table, so one direction plus equal lengths is enough. */
        for (size_t i = 0; i < a->u.tab.len; i++) {
            const toml_kv *x = &a->u.tab.items[i];
            const toml_kv *y = NULL;
            for (size_t j = 0; j < b->u.tab.len && !y; j++)
                if (b->u.tab.items[j].keylen == x->keylen &&
                    memcmp(b->u.tab.items[j].key, x->key, x->keylen) == 0)
                    y = &b->u.tab.items[j];
            if (!y || !same_value(x->val, y->val))
                return 0;
        }
        return 1;
    }
    return 0;
}

static void check_round_trip(const toml_value *root, toml_version from)
{
    char *text = toml_write(root);
    for (int v = 0; v < 2; v++) {
        toml_version ver = v ? TOML_1_0 : TOML_1_1;
        mt_error *err = NULL;
        toml_value *back = toml_parse(text, strlen(text), "written", ver, &err);
        if (!back) {
            fprintf(stderr, "written TOML (from %s input) does not parse in %s mode: %s\n%s\n",
                    from == TOML_1_0 ? "1.0" : "1.1", ver == TOML_1_0 ? "1.0" : "1.1",
                    mt_error_msg(err), text);
            abort();
        }
        if (!same_value(root, back)) {
            fprintf(stderr, "round trip changed the tree:\n%s\n", text);
            abort();
        }
        toml_free(back);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const toml_version versions[] = {TOML_1_1, TOML_1_0};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        mt_error *err = NULL;
        toml_value *root = toml_parse((const char *)data, size, "fuzz", versions[i], &err);
        if (!root) {
            if (!err || !mt_error_msg(err)[0])
                abort(); /* a failed parse must explain itself */
            mt_error_free(&err);
            continue;
        }
        check_round_trip(root, versions[i]);
        toml_value *copy = toml_clone(root);
        if (!same_value(root, copy))
            abort();
        toml_free(copy);
        toml_free(root);
    }
    return 0;
}
