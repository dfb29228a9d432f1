/* toml-decoder.c - toml-test decoder: TOML on stdin, tagged JSON on stdout.
 *
 * Usage: toml-decoder [--toml-1.0]
 * Exit 0 with the JSON encoding of the document (see toml-test's README), or exit 1 with the
 * parse error on stderr. --toml-1.0 selects strict TOML 1.0; the default is TOML 1.1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "strbuf.h"
#include "toml.h"

static void json_string(strbuf *out, const char *s, size_t n)
{
    sb_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            sb_puts(out, "\\\"");
            break;
        case '\\':
            sb_puts(out, "\\\\");
            break;
        case '\n':
            sb_puts(out, "\\n");
            break;
        case '\t':
            sb_puts(out, "\\t");
            break;
        case '\r':
            sb_puts(out, "\\r");
            break;
        case '\b':
            sb_puts(out, "\\b");
            break;
        case '\f':
            sb_puts(out, "\\f");
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                sb_printf(out, "\\u%04x", c);
            else
                sb_putc(out, (char)c);
            break;
        }
    }
    sb_putc(out, '"');
}

static void json_tagged(strbuf *out, const char *type, const char *value)
{
    sb_puts(out, "{\"type\": \"");
    sb_puts(out, type);
    sb_puts(out, "\", \"value\": ");
    json_string(out, value, strlen(value));
    sb_putc(out, '}');
}

static void json_value(strbuf *out, const toml_value *v)
{
    switch (v->type) {
    case TOML_TABLE:
        sb_putc(out, '{');
        for (size_t i = 0; i < v->u.tab.len; i++) {
            const toml_kv *kv = &v->u.tab.items[i];
            if (i)
                sb_puts(out, ", ");
            json_string(out, kv->key, kv->keylen);
            sb_puts(out, ": ");
            json_value(out, kv->val);
        }
        sb_putc(out, '}');
        break;
    case TOML_ARRAY:
        sb_putc(out, '[');
        for (size_t i = 0; i < v->u.arr.len; i++) {
            if (i)
                sb_puts(out, ", ");
            json_value(out, v->u.arr.items[i]);
        }
        sb_putc(out, ']');
        break;
    case TOML_STRING:
        sb_puts(out, "{\"type\": \"string\", \"value\": ");
        json_string(out, v->u.s.ptr, v->u.s.len);
        sb_putc(out, '}');
        break;
    case TOML_INTEGER: {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" PRId64, v->u.i);
        json_tagged(out, "integer", buf);
        break;
    }
    case TOML_FLOAT: {
        /* The writer's float text: shortest form that reads back exactly, inf/-inf/nan. */
        cleanup_free char *text = toml_format_value(v);
        json_tagged(out, "float", text);
        break;
    }
    case TOML_BOOL:
        json_tagged(out, "bool", v->u.b ? "true" : "false");
        break;
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL: {
        static const char *const names[] = {
            [TOML_DATETIME] = "datetime",
            [TOML_DATETIME_LOCAL] = "datetime-local",
            [TOML_DATE_LOCAL] = "date-local",
            [TOML_TIME_LOCAL] = "time-local",
        };
        cleanup_free char *text = toml_format_datetime(v);
        json_tagged(out, names[v->type], text);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    toml_version ver = TOML_1_1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--toml-1.0") == 0) {
            ver = TOML_1_0;
        } else if (strcmp(argv[i], "--toml-1.1") == 0) {
            ver = TOML_1_1;
        } else {
            fprintf(stderr, "usage: %s [--toml-1.0] < input.toml\n", argv[0]);
            return 2;
        }
    }

    strbuf in = STRBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        sb_append(&in, buf, n);
    if (ferror(stdin)) {
        fprintf(stderr, "toml-decoder: cannot read stdin\n");
        sb_free(&in);
        return 1;
    }

    mt_error *err = NULL;
    toml_value *root = toml_parse(sb_str(&in), in.len, "<stdin>", ver, &err);
    sb_free(&in);
    if (!root) {
        fprintf(stderr, "%s\n", mt_error_msg(err));
        mt_error_free(&err);
        return 1;
    }

    strbuf out = STRBUF_INIT;
    json_value(&out, root);
    sb_putc(&out, '\n');
    toml_free(root);
    int rc = fwrite(out.buf, 1, out.len, stdout) == out.len && fflush(stdout) == 0 ? 0 : 1;
    sb_free(&out);
    return rc;
}
