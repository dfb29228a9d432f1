/* toml.c - TOML 1.1 (and strict 1.0) parser, value tree and writer; see toml.h.
 *
 * The parser is a hand-written recursive-descent parser working directly on the input bytes.
 * The input is checked to be valid UTF-8 up front, so the rest of the parser only has to deal
 * with ASCII syntax and can copy multi-byte sequences through unchanged.
 *
 * Key lookups during parsing go through one hash index over (table, key) so that documents
 * with many keys parse in linear time. Line and column numbers are computed lazily from a
 * cached position that only moves forward in the normal case, which keeps that linear too.
 * Recursion (arrays, inline tables) and the depth of the tree are limited to TOML_MAX_DEPTH.
 */
#include "toml.h"

#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "mem.h"
#include "strbuf.h"

#define TOML_MAX_DEPTH     128
#define TOML_MAX_FILE_SIZE ((size_t)256 << 20)

/* toml_value.flags (parser bookkeeping for the redefinition rules). */
enum {
    TF_EXPLICIT = 1u << 0, /* table defined by a [header] (or an [[array]] element) */
    TF_DOTTED = 1u << 1,   /* table created or extended by dotted keys */
    TF_INLINE = 1u << 2,   /* inline table: closed for further additions */
    TF_STATIC = 1u << 3,   /* array written as a [ ... ] value */
    TF_AOT = 1u << 4,      /* array of tables created by [[ ]] headers */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static locale_t c_locale(void)
{
    static locale_t cached;
    locale_t l = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (l)
        return l;
    locale_t fresh = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!fresh)
        abort();
    locale_t expected = (locale_t)0;
    if (__atomic_compare_exchange_n(&cached, &expected, fresh, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return fresh;
    freelocale(fresh);
    return expected;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_bare_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 if invalid. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp_out)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) {
        *cp_out = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *cp_out = cp;
    return len;
}

static void put_utf8(strbuf *sb, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_append(sb, b, n);
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* ---- value tree ------------------------------------------------------------------------- */

static toml_value *new_value(toml_type t)
{
    toml_value *v = xcalloc(1, sizeof(*v));
    v->type = t;
    return v;
}

static toml_kv *tab_append(toml_value *tab, char *key, size_t keylen, toml_value *val)
{
    if (tab->u.tab.len == tab->u.tab.cap) {
        size_t cap = tab->u.tab.cap ? tab->u.tab.cap * 2 : 4;
        tab->u.tab.items = xrealloc(tab->u.tab.items, cap * sizeof(toml_kv));
        tab->u.tab.cap = cap;
    }
    toml_kv *kv = &tab->u.tab.items[tab->u.tab.len++];
    kv->key = key;
    kv->keylen = keylen;
    kv->line = kv->col = 0;
    kv->val = val;
    return kv;
}

static void arr_append(toml_value *arr, toml_value *val)
{
    if (arr->u.arr.len == arr->u.arr.cap) {
        size_t cap = arr->u.arr.cap ? arr->u.arr.cap * 2 : 4;
        arr->u.arr.items = xrealloc(arr->u.arr.items, cap * sizeof(toml_value *));
        arr->u.arr.cap = cap;
    }
    arr->u.arr.items[arr->u.arr.len++] = val;
}

void toml_free(toml_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case TOML_STRING:
        free(v->u.s.ptr);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            toml_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.tab.len; i++) {
            free(v->u.tab.items[i].key);
            toml_free(v->u.tab.items[i].val);
        }
        free(v->u.tab.items);
        break;
    default:
        break;
    }
    free(v);
}

void toml_freep(toml_value **v)
{
    if (v) {
        toml_free(*v);
        *v = NULL;
    }
}

toml_kv *toml_table_get_kv(const toml_value *tab, const char *key)
{
    if (!tab || tab->type != TOML_TABLE || !key)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < tab->u.tab.len; i++) {
        toml_kv *kv = &tab->u.tab.items[i];
        if (kv->keylen == n && memcmp(kv->key, key, n) == 0)
            return kv;
    }
    return NULL;
}

toml_value *toml_table_get(const toml_value *tab, const char *key)
{
    toml_kv *kv = toml_table_get_kv(tab, key);
    return kv ? kv->val : NULL;
}

toml_value *toml_new_table(void)
{
    return new_value(TOML_TABLE);
}

toml_value *toml_new_array(void)
{
    return new_value(TOML_ARRAY);
}

toml_value *toml_new_stringn(const char *s, size_t len)
{
    toml_value *v = new_value(TOML_STRING);
    v->u.s.ptr = xmalloc(len + 1);
    if (len)
        memcpy(v->u.s.ptr, s, len);
    v->u.s.ptr[len] = '\0';
    v->u.s.len = len;
    return v;
}

toml_value *toml_new_string(const char *s)
{
    return toml_new_stringn(s ? s : "", s ? strlen(s) : 0);
}

toml_value *toml_new_integer(int64_t i)
{
    toml_value *v = new_value(TOML_INTEGER);
    v->u.i = i;
    return v;
}

toml_value *toml_new_float(double f)
{
    toml_value *v = new_value(TOML_FLOAT);
    v->u.f = f;
    return v;
}

toml_value *toml_new_bool(bool b)
{
    toml_value *v = new_value(TOML_BOOL);
    v->u.b = b;
    return v;
}

void toml_table_set(toml_value *tab, const char *key, toml_value *val)
{
    if (!tab || tab->type != TOML_TABLE || !key) {
        toml_free(val);
        return;
    }
    toml_kv *kv = toml_table_get_kv(tab, key);
    if (kv) {
        if (kv->val != val) {
            toml_free(kv->val);
            kv->val = val;
        }
        return;
    }
    tab_append(tab, xstrdup(key), strlen(key), val);
}

bool toml_table_remove(toml_value *tab, const char *key)
{
    toml_kv *kv = toml_table_get_kv(tab, key);
    if (!kv)
        return false;
    size_t idx = (size_t)(kv - tab->u.tab.items);
    free(kv->key);
    toml_free(kv->val);
    memmove(&tab->u.tab.items[idx], &tab->u.tab.items[idx + 1],
            (tab->u.tab.len - idx - 1) * sizeof(toml_kv));
    tab->u.tab.len--;
    return true;
}

void toml_array_push(toml_value *arr, toml_value *val)
{
    if (!arr || arr->type != TOML_ARRAY) {
        toml_free(val);
        return;
    }
    arr_append(arr, val);
}

toml_value *toml_clone(const toml_value *v)
{
    if (!v)
        return NULL;
    toml_value *c = new_value(v->type);
    c->line = v->line;
    c->col = v->col;
    c->flags = v->flags;
    switch (v->type) {
    case TOML_STRING:
        c->u.s.ptr = xmalloc(v->u.s.len + 1);
        memcpy(c->u.s.ptr, v->u.s.ptr, v->u.s.len + 1);
        c->u.s.len = v->u.s.len;
        break;
    case TOML_ARRAY:
        if (v->u.arr.len) {
            c->u.arr.items = xmalloc(v->u.arr.len * sizeof(toml_value *));
            c->u.arr.cap = v->u.arr.len;
        }
        for (size_t i = 0; i < v->u.arr.len; i++)
            c->u.arr.items[c->u.arr.len++] = toml_clone(v->u.arr.items[i]);
        break;
    case TOML_TABLE:
        if (v->u.tab.len) {
            c->u.tab.items = xmalloc(v->u.tab.len * sizeof(toml_kv));
            c->u.tab.cap = v->u.tab.len;
        }
        for (size_t i = 0; i < v->u.tab.len; i++) {
            const toml_kv *src = &v->u.tab.items[i];
            char *key = xmalloc(src->keylen + 1);
            memcpy(key, src->key, src->keylen + 1);
            toml_kv *kv = tab_append(c, key, src->keylen, toml_clone(src->val));
            kv->line = src->line;
            kv->col = src->col;
        }
        break;
    default:
        c->u = v->u;
        break;
    }
    return c;
}

const char *toml_type_name(toml_type t)
{
    switch (t) {
    case TOML_TABLE:
        return "table";
    case TOML_ARRAY:
        return "array";
    case TOML_STRING:
        return "string";
    case TOML_INTEGER:
        return "integer";
    case TOML_FLOAT:
        return "float";
    case TOML_BOOL:
        return "boolean";
    case TOML_DATETIME:
        return "offset date-time";
    case TOML_DATETIME_LOCAL:
        return "local date-time";
    case TOML_DATE_LOCAL:
        return "local date";
    case TOML_TIME_LOCAL:
        return "local time";
    }
    return "value";
}

/* "an integer", "a table", ... */
static const char *type_with_article(toml_type t)
{
    switch (t) {
    case TOML_ARRAY:
        return "an array";
    case TOML_INTEGER:
        return "an integer";
    case TOML_DATETIME:
        return "an offset date-time";
    case TOML_TABLE:
        return "a table";
    case TOML_STRING:
        return "a string";
    case TOML_FLOAT:
        return "a float";
    case TOML_BOOL:
        return "a boolean";
    case TOML_DATETIME_LOCAL:
        return "a local date-time";
    case TOML_DATE_LOCAL:
        return "a local date";
    case TOML_TIME_LOCAL:
        return "a local time";
    }
    return "a value";
}

/* ---- parser state ----------------------------------------------------------------------- */

typedef struct idx_slot {
    toml_value *tab; /* NULL: empty slot */
    size_t idx;      /* index into tab->u.tab.items */
} idx_slot;

typedef struct parser {
    const char *s;
    size_t len;
    size_t pos;
    size_t base; /* first byte after the BOM */
    const char *name;
    toml_version ver;
    /* lazily computed line/column: position lc_pos is at lc_line:lc_col */
    size_t lc_pos;
    int lc_line, lc_col;
    char *errmsg;  /* first error, complete "name:line:col: reason" */
    char dbuf[64]; /* describe() output */
    idx_slot *slots;
    size_t nslots, nused;
    toml_value *root;
    toml_value *cur; /* table that key/value lines go to */
    int cur_depth;
} parser;

typedef struct keypart {
    char *s; /* owned */
    size_t len;
    size_t pos;
    int line, col;
} keypart;

typedef struct keypath {
    keypart *parts;
    size_t n, cap;
} keypath;

static void keypath_free(keypath *kp)
{
    for (size_t i = 0; i < kp->n; i++)
        free(kp->parts[i].s);
    free(kp->parts);
    kp->parts = NULL;
    kp->n = kp->cap = 0;
}

#define cleanup_keypath __attribute__((cleanup(keypath_free)))

static void locate(parser *p, size_t pos, int *line, int *col)
{
    if (pos > p->len)
        pos = p->len;
    if (pos < p->lc_pos) {
        p->lc_pos = p->base;
        p->lc_line = 1;
        p->lc_col = 1;
    }
    size_t i = p->lc_pos;
    int ln = p->lc_line, cl = p->lc_col;
    for (; i < pos; i++) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == '\n') {
            if (ln < INT_MAX)
                ln++;
            cl = 1;
        } else if ((c & 0xC0) != 0x80 && cl < INT_MAX) {
            cl++;
        }
    }
    p->lc_pos = pos;
    p->lc_line = ln;
    p->lc_col = cl;
    *line = ln;
    *col = cl;
}

/* Record the first error; returns -1. */
static int perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, size_t pos, const char *fmt, ...)
{
    if (p->errmsg)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    int line, col;
    locate(p, pos, &line, &col);
    p->errmsg = xasprintf("%s:%d:%d: %s", p->name, line, col, msg);
    return -1;
}

/* A short description of the character at pos, for messages. */
static const char *describe(parser *p, size_t pos)
{
    if (pos >= p->len)
        return "end of file";
    unsigned char c = (unsigned char)p->s[pos];
    switch (c) {
    case '\n':
        return "newline";
    case '\r':
        return "carriage return";
    case '\t':
        return "tab";
    case ' ':
        return "space";
    default:
        break;
    }
    if (c < 0x20 || c == 0x7F) {
        snprintf(p->dbuf, sizeof(p->dbuf), "control character U+%04X", c);
    } else if (c < 0x80) {
        snprintf(p->dbuf, sizeof(p->dbuf), "'%c'", c);
    } else {
        uint32_t cp;
        size_t l = utf8_seq((const unsigned char *)p->s + pos, p->len - pos, &cp);
        if (l && cp == 0xFEFF) /* a character like any other in strings and comments */
            return "a byte order mark (U+FEFF), allowed only at the start of the document";
        if (l)
            snprintf(p->dbuf, sizeof(p->dbuf), "'%.*s' (U+%04X)", (int)l, p->s + pos, cp);
        else
            snprintf(p->dbuf, sizeof(p->dbuf), "byte 0x%02X", c);
    }
    return p->dbuf;
}

/* Printable form of key text for messages (escaped, truncated). */
static void disp_append(strbuf *sb, const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c == '"' || c == '\\')
            sb_printf(sb, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            sb_printf(sb, "\\u%04X", c);
        else
            sb_putc(sb, (char)c);
    }
}

static char *disp_path(const keypath *kp, size_t upto)
{
    strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < upto && i < kp->n; i++) {
        if (i)
            sb_putc(&sb, '.');
        disp_append(&sb, kp->parts[i].s, kp->parts[i].len);
    }
    if (sb.len > 80) {
        size_t cut = 77;
        while (cut > 0 && ((unsigned char)sb.buf[cut] & 0xC0) == 0x80)
            cut--;
        sb.len = cut;
        sb.buf[cut] = '\0';
        sb_puts(&sb, "...");
    }
    return sb_steal(&sb);
}

static char *disp_text(const char *s, size_t n)
{
    keypart part = {.s = (char *)s, .len = n};
    keypath kp = {.parts = &part, .n = 1, .cap = 1};
    return disp_path(&kp, 1);
}

static int depth_error(parser *p, size_t pos)
{
    return perr(p, pos, "document nested too deeply (the limit is %d levels)", TOML_MAX_DEPTH);
}

/* ---- key index -------------------------------------------------------------------------- */

static uint64_t key_hash(const toml_value *tab, const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)(uintptr_t)tab * 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return h;
}

static toml_kv *idx_find(parser *p, toml_value *tab, const char *k, size_t n)
{
    if (!p->nslots)
        return NULL;
    size_t mask = p->nslots - 1;
    for (size_t i = (size_t)key_hash(tab, k, n) & mask;; i = (i + 1) & mask) {
        idx_slot *s = &p->slots[i];
        if (!s->tab)
            return NULL;
        if (s->tab == tab) {
            toml_kv *kv = &tab->u.tab.items[s->idx];
            if (kv->keylen == n && memcmp(kv->key, k, n) == 0)
                return kv;
        }
    }
}

static void idx_place(idx_slot *slots, size_t nslots, toml_value *tab, size_t idx)
{
    const toml_kv *kv = &tab->u.tab.items[idx];
    size_t mask = nslots - 1;
    size_t i = (size_t)key_hash(tab, kv->key, kv->keylen) & mask;
    while (slots[i].tab)
        i = (i + 1) & mask;
    slots[i].tab = tab;
    slots[i].idx = idx;
}

static void idx_add(parser *p, toml_value *tab, size_t idx)
{
    if ((p->nused + 1) * 2 > p->nslots) {
        size_t n = p->nslots ? p->nslots * 2 : 64;
        idx_slot *ns = xcalloc(n, sizeof(idx_slot));
        for (size_t i = 0; i < p->nslots; i++)
            if (p->slots[i].tab)
                idx_place(ns, n, p->slots[i].tab, p->slots[i].idx);
        free(p->slots);
        p->slots = ns;
        p->nslots = n;
    }
    idx_place(p->slots, p->nslots, tab, idx);
    p->nused++;
}

/* Insert a new key (known not to exist) with its position. */
static toml_kv *tab_insert(parser *p, toml_value *tab, const keypart *kp, toml_value *val)
{
    char *key = xmalloc(kp->len + 1);
    if (kp->len)
        memcpy(key, kp->s, kp->len);
    key[kp->len] = '\0';
    toml_kv *kv = tab_append(tab, key, kp->len, val);
    kv->line = kp->line;
    kv->col = kp->col;
    idx_add(p, tab, tab->u.tab.len - 1);
    return kv;
}

/* ---- lexical helpers -------------------------------------------------------------------- */

static int peek_at(const parser *p, size_t off)
{
    size_t i = p->pos + off;
    return i < p->len ? (unsigned char)p->s[i] : -1;
}

static int peek(const parser *p)
{
    return peek_at(p, 0);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
}

/* At '#': skip the comment up to (not including) the end of line. */
static int skip_comment(parser *p)
{
    size_t i = p->pos + 1;
    for (; i < p->len; i++) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == '\n')
            break;
        if (c == '\r') {
            if (i + 1 < p->len && p->s[i + 1] == '\n')
                break;
            return perr(p, i, "carriage return in comment must be followed by a newline");
        }
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return perr(p, i, "control character U+%04X is not allowed in comments", c);
    }
    p->pos = i;
    return 0;
}

static bool eat_newline(parser *p)
{
    int c = peek(p);
    if (c == '\n') {
        p->pos++;
        return true;
    }
    if (c == '\r' && peek_at(p, 1) == '\n') {
        p->pos += 2;
        return true;
    }
    return false;
}

/* Skip whitespace, comments and newlines (inside arrays, and inline tables in TOML 1.1). */
static int skip_ws_comment_nl(parser *p)
{
    for (;;) {
        skip_ws(p);
        int c = peek(p);
        if (c == '#') {
            if (skip_comment(p))
                return -1;
        } else if (c == '\n' || c == '\r') {
            if (!eat_newline(p))
                return perr(p, p->pos, "carriage return must be followed by a newline");
        } else {
            return 0;
        }
    }
}

static int check_utf8(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t i = p->base;
    while (i < p->len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = utf8_seq(s + i, p->len - i, &cp);
        if (!l)
            return perr(p, i, "invalid UTF-8 byte sequence (byte 0x%02X)", s[i]);
        i += l;
    }
    return 0;
}

/* ---- strings ---------------------------------------------------------------------------- */

static bool read_hex(const parser *p, size_t at, int n, uint32_t *out)
{
    if (at + (size_t)n > p->len)
        return false;
    uint32_t v = 0;
    for (int k = 0; k < n; k++) {
        int h = hex_val((unsigned char)p->s[at + (size_t)k]);
        if (h < 0)
            return false;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* Handle the escape whose backslash is at p->s[*pos]; advances *pos past it. */
static int scan_escape(parser *p, strbuf *sb, bool multi, size_t *pos)
{
    size_t bs = *pos, i = bs + 1;
    if (i >= p->len)
        return perr(p, bs, "unterminated string (backslash at end of file)");
    char e = p->s[i];
    uint32_t cp;
    switch (e) {
    case 'b':
        sb_putc(sb, '\b');
        break;
    case 't':
        sb_putc(sb, '\t');
        break;
    case 'n':
        sb_putc(sb, '\n');
        break;
    case 'f':
        sb_putc(sb, '\f');
        break;
    case 'r':
        sb_putc(sb, '\r');
        break;
    case '"':
        sb_putc(sb, '"');
        break;
    case '\\':
        sb_putc(sb, '\\');
        break;
    case 'e':
        if (p->ver == TOML_1_0)
            return perr(p, bs, "invalid escape sequence '\\e' (only allowed in TOML 1.1)");
        sb_putc(sb, 0x1B);
        break;
    case 'x':
        if (p->ver == TOML_1_0)
            return perr(p, bs, "invalid escape sequence '\\x' (only allowed in TOML 1.1)");
        if (!read_hex(p, i + 1, 2, &cp))
            return perr(p, bs, "invalid escape sequence: '\\x' needs two hexadecimal digits");
        put_utf8(sb, cp);
        i += 2;
        break;
    case 'u':
    case 'U': {
        int nd = e == 'u' ? 4 : 8;
        if (!read_hex(p, i + 1, nd, &cp))
            return perr(p, bs, "invalid escape sequence: '\\%c' needs %d hexadecimal digits", e,
                        nd);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return perr(p, bs, "escape sequence '\\%c%.*s' is not a Unicode scalar value", e, nd,
                        p->s + i + 1);
        put_utf8(sb, cp);
        i += (size_t)nd;
        break;
    }
    default:
        if (multi && (e == ' ' || e == '\t' || e == '\n' || e == '\r')) {
            /* line-ending backslash: only whitespace may follow it on its line */
            size_t k = i;
            while (k < p->len && (p->s[k] == ' ' || p->s[k] == '\t'))
                k++;
            if (!(k < p->len && p->s[k] == '\n') &&
                !(k + 1 < p->len && p->s[k] == '\r' && p->s[k + 1] == '\n'))
                return perr(p, bs,
                            "invalid escape: a line-ending backslash must be the last "
                            "non-whitespace character on its line");
            for (;;) {
                if (k < p->len && (p->s[k] == ' ' || p->s[k] == '\t' || p->s[k] == '\n'))
                    k++;
                else if (k + 1 < p->len && p->s[k] == '\r' && p->s[k + 1] == '\n')
                    k += 2;
                else
                    break;
            }
            *pos = k;
            return 0;
        }
        return perr(p, bs, "invalid escape sequence '\\%s'",
                    (unsigned char)e >= 0x20 && (unsigned char)e < 0x7F ? (char[]){e, 0} : "?");
    }
    *pos = i + 1;
    return 0;
}

/* Scan a string body starting at p->pos (just after the opening quote(s)). `start` is the
 * position of the opening quote, for messages. `q` is '"' (basic) or '\'' (literal). */
static int scan_string(parser *p, strbuf *sb, char q, bool multi, size_t start)
{
    const char *s = p->s;
    size_t len = p->len, i = p->pos;
    if (multi) { /* a newline right after the opening delimiter is trimmed */
        if (i < len && s[i] == '\n')
            i++;
        else if (i + 1 < len && s[i] == '\r' && s[i + 1] == '\n')
            i += 2;
    }
    for (;;) {
        size_t run = i;
        while (i < len) {
            unsigned char c = (unsigned char)s[i];
            if (c == (unsigned char)q || (c == '\\' && q == '"') || (c < 0x20 && c != '\t') ||
                c == 0x7F)
                break;
            i++;
        }
        if (i > run)
            sb_append(sb, s + run, i - run);
        if (i >= len) {
            p->pos = i;
            return perr(p, start, "unterminated string");
        }
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)q) {
            if (!multi) {
                p->pos = i + 1;
                return 0;
            }
            size_t e = i;
            while (e < len && s[e] == q)
                e++;
            size_t n = e - i;
            if (n < 3) {
                sb_append(sb, s + i, n);
                i = e;
                continue;
            }
            if (n > 5)
                return perr(p, i + 2,
                            "too many quotes: at most two may directly precede the closing "
                            "delimiter of a multi-line string");
            sb_append(sb, s + i, n - 3);
            p->pos = e;
            return 0;
        }
        if (c == '\\') {
            if (scan_escape(p, sb, multi, &i))
                return -1;
            continue;
        }
        if (c == '\n' || (c == '\r' && i + 1 < len && s[i + 1] == '\n')) {
            if (!multi)
                return perr(p, start, "unterminated string (newline before the closing quote)");
            sb_putc(sb, '\n');
            i += c == '\r' ? 2 : 1;
            continue;
        }
        if (c == '\r')
            return perr(p, i, "carriage return in string must be followed by a newline");
        return perr(p, i, "control character U+%04X must be escaped in strings", c);
    }
}

/* ---- keys ------------------------------------------------------------------------------- */

static int parse_simple_key(parser *p, keypart *kp)
{
    size_t start = p->pos;
    kp->pos = start;
    locate(p, start, &kp->line, &kp->col);
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    int c = peek(p);
    if (c == '"' || c == '\'') {
        if (peek_at(p, 1) == c && peek_at(p, 2) == c)
            return perr(p, start, "multi-line strings cannot be used as keys");
        p->pos++;
        if (scan_string(p, &sb, (char)c, false, start))
            return -1;
    } else {
        size_t e = start;
        while (e < p->len && is_bare_char((unsigned char)p->s[e]))
            e++;
        if (e == start)
            return perr(p, start, "expected a key, found %s", describe(p, start));
        sb_append(&sb, p->s + start, e - start);
        p->pos = e;
    }
    kp->len = sb.len;
    kp->s = sb_steal(&sb);
    return 0;
}

/* key = simple-key *( ws "." ws simple-key ); skips whitespace after the key. */
static int parse_key(parser *p, keypath *kp)
{
    for (;;) {
        if (kp->n > TOML_MAX_DEPTH)
            return depth_error(p, p->pos);
        if (kp->n == kp->cap) {
            kp->cap = kp->cap ? kp->cap * 2 : 4;
            kp->parts = xrealloc(kp->parts, kp->cap * sizeof(keypart));
        }
        keypart *part = &kp->parts[kp->n];
        memset(part, 0, sizeof(*part));
        if (parse_simple_key(p, part))
            return -1;
        kp->n++;
        skip_ws(p);
        if (peek(p) != '.')
            return 0;
        p->pos++;
        skip_ws(p);
    }
}

/* ---- values ----------------------------------------------------------------------------- */

static toml_value *parse_value(parser *p, int depth);

static int get_digits(const parser *p, size_t at, int n)
{
    if (at + (size_t)n > p->len)
        return -1;
    int v = 0;
    for (int k = 0; k < n; k++) {
        char c = p->s[at + (size_t)k];
        if (!is_digit((unsigned char)c))
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

/* HH:MM[:SS[.frac]] at `at` (seconds optional in TOML 1.1). Sets *end. */
static int parse_time_part(parser *p, size_t at, toml_datetime *dt, size_t *end)
{
    const char *s = p->s;
    size_t len = p->len;
    int h = get_digits(p, at, 2);
    if (h < 0 || at + 2 >= len || s[at + 2] != ':')
        return perr(p, at, "invalid time: expected HH:MM:SS");
    int m = get_digits(p, at + 3, 2);
    if (m < 0)
        return perr(p, at + 3, "invalid time: expected two-digit minutes");
    size_t i = at + 5;
    int sec = 0;
    if (i < len && s[i] == ':') {
        sec = get_digits(p, i + 1, 2);
        if (sec < 0)
            return perr(p, i + 1, "invalid time: expected two-digit seconds");
        i += 3;
        if (i < len && s[i] == '.') {
            size_t fs = ++i;
            int ns = 0, nd = 0;
            while (i < len && is_digit((unsigned char)s[i])) {
                if (nd < 9) {
                    ns = ns * 10 + (s[i] - '0');
                    nd++;
                }
                i++;
            }
            if (i == fs)
                return perr(p, fs, "invalid time: expected digits after '.'");
            for (int k = nd; k < 9; k++)
                ns *= 10;
            dt->nanosecond = ns;
            dt->frac_digits = nd;
        }
    } else if (p->ver == TOML_1_0) {
        return perr(p, i, "invalid time: seconds are required in TOML 1.0");
    }
    if (h > 23)
        return perr(p, at, "invalid time: hour %02d out of range", h);
    if (m > 59)
        return perr(p, at + 3, "invalid time: minute %02d out of range", m);
    if (sec > 60)
        return perr(p, at + 6, "invalid time: second %02d out of range", sec);
    dt->hour = h;
    dt->minute = m;
    dt->second = sec;
    *end = i;
    return 0;
}

static toml_value *parse_date_time(parser *p)
{
    const char *s = p->s;
    size_t at = p->pos, len = p->len;
    toml_datetime dt;
    memset(&dt, 0, sizeof(dt));
    int y = get_digits(p, at, 4), mo = get_digits(p, at + 5, 2), d = get_digits(p, at + 8, 2);
    if (y < 0 || mo < 0 || d < 0 || s[at + 4] != '-' || s[at + 7] != '-') {
        perr(p, at, "invalid date: expected YYYY-MM-DD");
        return NULL;
    }
    if (mo < 1 || mo > 12) {
        perr(p, at + 5, "invalid date: month %02d out of range", mo);
        return NULL;
    }
    if (d < 1 || d > days_in_month(y, mo)) {
        perr(p, at + 8, "invalid date: day %02d out of range for %04d-%02d", d, y, mo);
        return NULL;
    }
    dt.year = y;
    dt.month = mo;
    dt.day = d;
    size_t i = at + 10;
    toml_type type = TOML_DATE_LOCAL;
    if (i < len && (s[i] == 'T' || s[i] == 't' ||
                    (s[i] == ' ' && i + 1 < len && is_digit((unsigned char)s[i + 1])))) {
        if (parse_time_part(p, i + 1, &dt, &i))
            return NULL;
        type = TOML_DATETIME_LOCAL;
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
            dt.offset_z = true;
            type = TOML_DATETIME;
            i++;
        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
            int oh = get_digits(p, i + 1, 2), om = get_digits(p, i + 4, 2);
            if (oh < 0 || om < 0 || s[i + 3] != ':') {
                perr(p, i, "invalid date-time: expected a time offset like Z, +HH:MM or -HH:MM");
                return NULL;
            }
            if (oh > 23 || om > 59) {
                perr(p, i, "invalid date-time: time offset %.6s out of range", s + i);
                return NULL;
            }
            dt.offset_minutes = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
            type = TOML_DATETIME;
            i += 6;
        }
    }
    p->pos = i;
    toml_value *v = new_value(type);
    v->u.dt = dt;
    return v;
}

static toml_value *parse_local_time(parser *p)
{
    toml_datetime dt;
    memset(&dt, 0, sizeof(dt));
    size_t end;
    if (parse_time_part(p, p->pos, &dt, &end))
        return NULL;
    p->pos = end;
    toml_value *v = new_value(TOML_TIME_LOCAL);
    v->u.dt = dt;
    return v;
}

static bool is_digit_base(int c, int base)
{
    switch (base) {
    case 2:
        return c == '0' || c == '1';
    case 8:
        return c >= '0' && c <= '7';
    case 16:
        return hex_val(c) >= 0;
    default:
        return is_digit(c);
    }
}

/* One or more digits with single underscores only between digits. */
static bool scan_digits(const char *t, size_t n, size_t *j, int base)
{
    size_t k = *j;
    if (k >= n || !is_digit_base((unsigned char)t[k], base))
        return false;
    while (k < n) {
        if (is_digit_base((unsigned char)t[k], base))
            k++;
        else if (t[k] == '_' && k + 1 < n && is_digit_base((unsigned char)t[k + 1], base))
            k++;
        else
            break;
    }
    *j = k;
    return true;
}

static toml_value *number_error(parser *p, size_t start, size_t n, const char *what)
{
    cleanup_free char *tok = disp_text(p->s + start, n);
    perr(p, start, "%s \"%s\"", what, tok);
    return NULL;
}

static toml_value *parse_number(parser *p)
{
    size_t start = p->pos, e = start;
    while (e < p->len) {
        int c = (unsigned char)p->s[e];
        if (!is_bare_char(c) && c != '.' && c != '+')
            break;
        e++;
    }
    const char *t = p->s + start;
    size_t n = e - start, i = 0;
    bool neg = false, has_sign = false;
    if (n && (t[0] == '+' || t[0] == '-')) {
        has_sign = true;
        neg = t[0] == '-';
        i = 1;
    }
    if (n - i == 3 && (memcmp(t + i, "inf", 3) == 0 || memcmp(t + i, "nan", 3) == 0)) {
        p->pos = e;
        double f = t[i] == 'i' ? INFINITY : NAN;
        return toml_new_float(neg ? -f : f);
    }
    if (n - i >= 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b')) {
        int base = t[i + 1] == 'x' ? 16 : t[i + 1] == 'o' ? 8 : 2;
        if (has_sign)
            return number_error(p, start, n,
                                "a sign is not allowed on hexadecimal, octal or binary integers:");
        size_t j = i + 2;
        if (!scan_digits(t, n, &j, base) || j != n)
            return number_error(p, start, n, "invalid integer");
        uint64_t acc = 0;
        for (size_t k = i + 2; k < n; k++) {
            if (t[k] == '_')
                continue;
            uint64_t dv = (uint64_t)hex_val((unsigned char)t[k]);
            if (acc > ((uint64_t)INT64_MAX - dv) / (uint64_t)base)
                return number_error(p, start, n, "integer out of range (64-bit):");
            acc = acc * (uint64_t)base + dv;
        }
        p->pos = e;
        return toml_new_integer((int64_t)acc);
    }
    size_t j = i;
    if (!scan_digits(t, n, &j, 10))
        return number_error(p, start, n, "invalid value");
    if (t[i] == '0' && j - i > 1)
        return number_error(p, start, n, "leading zeros are not allowed:");
    bool is_float = false;
    if (j < n && t[j] == '.') {
        j++;
        if (!scan_digits(t, n, &j, 10))
            return number_error(p, start, n, "invalid float (digits required after '.'):");
        is_float = true;
    }
    if (j < n && (t[j] == 'e' || t[j] == 'E')) {
        j++;
        if (j < n && (t[j] == '+' || t[j] == '-'))
            j++;
        if (!scan_digits(t, n, &j, 10))
            return number_error(p, start, n, "invalid float exponent:");
        is_float = true;
    }
    if (j != n)
        return number_error(p, start, n, is_float ? "invalid float" : "invalid integer");
    if (is_float) {
        char stackbuf[128];
        cleanup_free char *heap = n + 1 > sizeof(stackbuf) ? xmalloc(n + 1) : NULL;
        char *buf = heap ? heap : stackbuf;
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
            if (t[k] != '_')
                buf[m++] = t[k];
        buf[m] = '\0';
        double f = strtod_l(buf, NULL, c_locale());
        if (isinf(f))
            return number_error(p, start, n, "float out of range:");
        p->pos = e;
        return toml_new_float(f);
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, acc = 0;
    for (size_t k = i; k < n; k++) {
        if (t[k] == '_')
            continue;
        uint64_t dv = (uint64_t)(t[k] - '0');
        if (acc > (limit - dv) / 10)
            return number_error(p, start, n, "integer out of range (64-bit):");
        acc = acc * 10 + dv;
    }
    p->pos = e;
    int64_t iv;
    if (neg)
        iv = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    else
        iv = (int64_t)acc;
    return toml_new_integer(iv);
}

static toml_value *parse_array(parser *p, int depth)
{
    size_t start = p->pos;
    if (depth > TOML_MAX_DEPTH) {
        depth_error(p, start);
        return NULL;
    }
    p->pos++;
    toml_value *arr = new_value(TOML_ARRAY);
    arr->flags = TF_STATIC;
    for (;;) {
        if (skip_ws_comment_nl(p))
            goto fail;
        if (peek(p) == ']') {
            p->pos++;
            return arr;
        }
        toml_value *v = parse_value(p, depth + 1);
        if (!v)
            goto fail;
        arr_append(arr, v);
        if (skip_ws_comment_nl(p))
            goto fail;
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == ']') {
            p->pos++;
            return arr;
        }
        if (c < 0)
            perr(p, start, "unterminated array (missing ']')");
        else
            perr(p, p->pos, "expected ',' or ']' after array element, found %s",
                 describe(p, p->pos));
        goto fail;
    }
fail:
    toml_free(arr);
    return NULL;
}

static int parse_keyval(parser *p, toml_value *tab, int depth);

/* In an inline table: skip what may separate its parts (TOML 1.0: blanks only). */
static int skip_inline_sep(parser *p)
{
    if (p->ver != TOML_1_0)
        return skip_ws_comment_nl(p);
    skip_ws(p);
    int c = peek(p);
    if (c == '\n' || c == '\r' || c == '#')
        return perr(p, p->pos,
                    "newlines and comments are not allowed inside inline tables in TOML 1.0");
    return 0;
}

static toml_value *parse_inline_table(parser *p, int depth)
{
    size_t start = p->pos;
    if (depth > TOML_MAX_DEPTH) {
        depth_error(p, start);
        return NULL;
    }
    p->pos++;
    toml_value *tab = new_value(TOML_TABLE);
    tab->flags = TF_INLINE;
    if (skip_inline_sep(p))
        goto fail;
    if (peek(p) == '}') {
        p->pos++;
        return tab;
    }
    for (;;) {
        if (parse_keyval(p, tab, depth))
            goto fail;
        if (skip_inline_sep(p))
            goto fail;
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            if (skip_inline_sep(p))
                goto fail;
            if (peek(p) == '}') {
                if (p->ver == TOML_1_0) {
                    perr(p, p->pos, "trailing comma is not allowed in inline tables in TOML 1.0");
                    goto fail;
                }
                p->pos++;
                return tab;
            }
            continue;
        }
        if (c == '}') {
            p->pos++;
            return tab;
        }
        if (c < 0)
            perr(p, start, "unterminated inline table (missing '}')");
        else
            perr(p, p->pos, "expected ',' or '}' in inline table, found %s", describe(p, p->pos));
        goto fail;
    }
fail:
    toml_free(tab);
    return NULL;
}

static bool match_word(const parser *p, const char *w)
{
    size_t n = strlen(w);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0 &&
           (p->pos + n >= p->len || !is_bare_char((unsigned char)p->s[p->pos + n]));
}

/* A value at tree depth `depth` (containers deeper than TOML_MAX_DEPTH are rejected). */
static toml_value *parse_value(parser *p, int depth)
{
    size_t start = p->pos;
    int line, col;
    locate(p, start, &line, &col);
    int c = peek(p);
    toml_value *v = NULL;
    switch (c) {
    case '"':
    case '\'': {
        bool multi = peek_at(p, 1) == c && peek_at(p, 2) == c;
        p->pos += multi ? 3 : 1;
        strbuf sb = STRBUF_INIT;
        if (scan_string(p, &sb, (char)c, multi, start)) {
            sb_free(&sb);
            return NULL;
        }
        v = new_value(TOML_STRING);
        v->u.s.len = sb.len;
        v->u.s.ptr = sb_steal(&sb);
        break;
    }
    case '[':
        v = parse_array(p, depth);
        break;
    case '{':
        v = parse_inline_table(p, depth);
        break;
    case 't':
    case 'f':
        if (match_word(p, c == 't' ? "true" : "false")) {
            p->pos += c == 't' ? 4 : 5;
            v = toml_new_bool(c == 't');
        } else {
            size_t e = start;
            while (e < p->len && is_bare_char((unsigned char)p->s[e]))
                e++;
            return number_error(p, start, e - start, "invalid value");
        }
        break;
    default:
        if (c >= 0 && is_digit(c)) {
            size_t rem = p->len - start;
            const char *s = p->s + start;
            if (rem >= 5 && is_digit((unsigned char)s[1]) && is_digit((unsigned char)s[2]) &&
                is_digit((unsigned char)s[3]) && s[4] == '-')
                v = parse_date_time(p);
            else if (rem >= 3 && is_digit((unsigned char)s[1]) && s[2] == ':')
                v = parse_local_time(p);
            else
                v = parse_number(p);
        } else if (c == '+' || c == '-' || c == 'i' || c == 'n') {
            v = parse_number(p);
        } else {
            perr(p, start, "expected a value, found %s", describe(p, start));
            return NULL;
        }
        break;
    }
    if (v) {
        v->line = line;
        v->col = col;
    }
    return v;
}

/* ---- tables and key/value pairs --------------------------------------------------------- */

/* `verb` the key path kp ("define table", ...) failed because kp[0..upto] already exists as kv. */
static int conflict_error(parser *p, const keypath *kp, size_t upto, const toml_kv *kv,
                          const char *verb)
{
    cleanup_free char *full = disp_path(kp, kp->n);
    cleanup_free char *name = disp_path(kp, upto + 1);
    const toml_value *v = kv->val;
    size_t pos = kp->parts[upto].pos;
    if (v->type == TOML_TABLE && (v->flags & TF_INLINE))
        return perr(p, pos,
                    "cannot %s \"%s\": \"%s\" is an inline table (line %d, column %d) and "
                    "inline tables cannot be extended",
                    verb, full, name, v->line, v->col);
    if (v->type == TOML_TABLE && upto + 1 == kp->n)
        return perr(p, pos, "table \"%s\" is already defined (line %d, column %d)", name, v->line,
                    v->col);
    if (v->type == TOML_TABLE)
        return perr(p, pos,
                    "cannot %s \"%s\": table \"%s\" is already defined by a [table] header "
                    "(line %d, column %d)",
                    verb, full, name, v->line, v->col);
    if (v->type == TOML_ARRAY && (v->flags & TF_AOT))
        return perr(p, pos, "cannot %s \"%s\": \"%s\" is an array of tables (line %d, column %d)",
                    verb, full, name, kv->line, kv->col);
    return perr(p, pos, "cannot %s \"%s\": \"%s\" is already defined as %s (line %d, column %d)",
                verb, full, name, type_with_article(v->type), kv->line, kv->col);
}

static int parse_keyval(parser *p, toml_value *tab, int depth)
{
    cleanup_keypath keypath kp = {0};
    if (parse_key(p, &kp))
        return -1;
    if (peek(p) != '=') {
        cleanup_free char *name = disp_path(&kp, kp.n);
        return perr(p, p->pos, "expected '=' after key \"%s\", found %s", name,
                    describe(p, p->pos));
    }
    p->pos++;
    skip_ws(p);
    toml_value *t = tab;
    int d = depth;
    for (size_t i = 0; i + 1 < kp.n; i++) {
        keypart *part = &kp.parts[i];
        toml_kv *kv = idx_find(p, t, part->s, part->len);
        if (!kv) {
            if (d + 1 > TOML_MAX_DEPTH)
                return depth_error(p, part->pos);
            toml_value *nt = new_value(TOML_TABLE);
            nt->flags = TF_DOTTED;
            nt->line = part->line;
            nt->col = part->col;
            tab_insert(p, t, part, nt);
            t = nt;
            d++;
            continue;
        }
        toml_value *v = kv->val;
        if (v->type == TOML_TABLE && !(v->flags & (TF_INLINE | TF_EXPLICIT))) {
            v->flags |= TF_DOTTED;
            t = v;
            d++;
            continue;
        }
        return conflict_error(p, &kp, i, kv, "add dotted key");
    }
    keypart *last = &kp.parts[kp.n - 1];
    toml_kv *dup = idx_find(p, t, last->s, last->len);
    if (dup) {
        cleanup_free char *name = disp_path(&kp, kp.n);
        return perr(p, last->pos, "duplicate key \"%s\" (first defined at line %d, column %d)",
                    name, dup->line, dup->col);
    }
    toml_value *val = parse_value(p, d + 1);
    if (!val)
        return -1;
    tab_insert(p, t, last, val);
    return 0;
}

static int parse_header(parser *p)
{
    size_t hstart = p->pos;
    int hline, hcol;
    locate(p, hstart, &hline, &hcol);
    p->pos++;
    bool aot = false;
    if (peek(p) == '[') {
        aot = true;
        p->pos++;
    }
    skip_ws(p);
    cleanup_keypath keypath kp = {0};
    if (parse_key(p, &kp))
        return -1;
    if (peek(p) != ']')
        return perr(p, p->pos, "expected '%s' to close the table header, found %s",
                    aot ? "]]" : "]", describe(p, p->pos));
    p->pos++;
    if (aot) {
        if (peek(p) != ']')
            return perr(p, p->pos, "expected ']]' to close the array-of-tables header, found %s",
                        describe(p, p->pos));
        p->pos++;
    }

    toml_value *t = p->root;
    int d = 0;
    for (size_t i = 0; i + 1 < kp.n; i++) {
        keypart *part = &kp.parts[i];
        toml_kv *kv = idx_find(p, t, part->s, part->len);
        if (!kv) {
            if (d + 1 > TOML_MAX_DEPTH)
                return depth_error(p, part->pos);
            toml_value *nt = new_value(TOML_TABLE);
            nt->line = part->line;
            nt->col = part->col;
            tab_insert(p, t, part, nt);
            t = nt;
            d++;
            continue;
        }
        toml_value *v = kv->val;
        if (v->type == TOML_TABLE && !(v->flags & TF_INLINE)) {
            t = v;
            d++;
        } else if (v->type == TOML_ARRAY && (v->flags & TF_AOT) && v->u.arr.len > 0) {
            t = v->u.arr.items[v->u.arr.len - 1];
            d += 2;
        } else {
            return conflict_error(p, &kp, i, kv, "define table");
        }
    }

    keypart *last = &kp.parts[kp.n - 1];
    toml_kv *kv = idx_find(p, t, last->s, last->len);
    if (aot) {
        toml_value *arr;
        if (!kv) {
            if (d + 2 > TOML_MAX_DEPTH)
                return depth_error(p, last->pos);
            arr = new_value(TOML_ARRAY);
            arr->flags = TF_AOT;
            arr->line = hline;
            arr->col = hcol;
            tab_insert(p, t, last, arr);
        } else if (kv->val->type == TOML_ARRAY && (kv->val->flags & TF_AOT)) {
            arr = kv->val;
        } else {
            return conflict_error(p, &kp, kp.n - 1, kv, "define array of tables");
        }
        toml_value *elem = new_value(TOML_TABLE);
        elem->flags = TF_EXPLICIT;
        elem->line = hline;
        elem->col = hcol;
        arr_append(arr, elem);
        p->cur = elem;
        p->cur_depth = d + 2;
        return 0;
    }
    if (!kv) {
        if (d + 1 > TOML_MAX_DEPTH)
            return depth_error(p, last->pos);
        toml_value *nt = new_value(TOML_TABLE);
        nt->flags = TF_EXPLICIT;
        nt->line = hline;
        nt->col = hcol;
        tab_insert(p, t, last, nt);
        p->cur = nt;
        p->cur_depth = d + 1;
        return 0;
    }
    toml_value *v = kv->val;
    if (v->type == TOML_TABLE && !(v->flags & (TF_EXPLICIT | TF_DOTTED | TF_INLINE))) {
        v->flags |= TF_EXPLICIT;
        v->line = hline;
        v->col = hcol;
        p->cur = v;
        p->cur_depth = d + 1;
        return 0;
    }
    if (v->type == TOML_TABLE && (v->flags & TF_DOTTED) && !(v->flags & TF_INLINE)) {
        cleanup_free char *name = disp_path(&kp, kp.n);
        return perr(p, last->pos,
                    "cannot define table \"%s\": it was already defined with dotted keys (line "
                    "%d, column %d)",
                    name, v->line, v->col);
    }
    return conflict_error(p, &kp, kp.n - 1, kv, "define table");
}

static int parse_document(parser *p)
{
    p->cur = p->root;
    p->cur_depth = 0;
    for (;;) {
        skip_ws(p);
        int c = peek(p);
        if (c < 0)
            return 0;
        const char *after = NULL;
        if (c == '#') {
            if (skip_comment(p))
                return -1;
        } else if (c == '[') {
            if (parse_header(p))
                return -1;
            after = "table header";
        } else if (c != '\n' && c != '\r') {
            if (parse_keyval(p, p->cur, p->cur_depth))
                return -1;
            after = "value";
        }
        skip_ws(p);
        if (peek(p) == '#' && skip_comment(p))
            return -1;
        if (peek(p) < 0)
            return 0;
        if (!eat_newline(p)) {
            if (peek(p) == '\r')
                return perr(p, p->pos, "carriage return must be followed by a newline");
            return perr(p, p->pos, "expected a newline after the %s, found %s",
                        after ? after : "key/value pair", describe(p, p->pos));
        }
    }
}

toml_value *toml_parse(const char *data, size_t len, const char *name, toml_version ver,
                       mt_error **err)
{
    parser p;
    memset(&p, 0, sizeof(p));
    p.s = data ? data : "";
    p.len = data ? len : 0;
    p.name = name ? name : "<input>";
    p.ver = ver == TOML_1_0 ? TOML_1_0 : TOML_1_1;
    if (p.len >= 3 && memcmp(p.s, "\xEF\xBB\xBF", 3) == 0)
        p.base = 3;
    p.pos = p.lc_pos = p.base;
    p.lc_line = p.lc_col = 1;
    toml_value *root = new_value(TOML_TABLE);
    root->flags = TF_EXPLICIT;
    root->line = root->col = 1;
    p.root = root;
    int rc = check_utf8(&p);
    if (rc == 0)
        rc = parse_document(&p);
    free(p.slots);
    if (rc < 0) {
        toml_free(root);
        mt_error_set(err, MT_ERR_PARSE, "%s", p.errmsg ? p.errmsg : "invalid TOML");
        free(p.errmsg);
        return NULL;
    }
    return root;
}

toml_value *toml_parse_file(const char *path, toml_version ver, mt_error **err)
{
    size_t len = 0;
    cleanup_free char *data = fs_read_file(path, TOML_MAX_FILE_SIZE, &len, err);
    if (!data)
        return NULL;
    return toml_parse(data, len, path, ver, err);
}

/* ---- writer ----------------------------------------------------------------------------- */

static void write_string(strbuf *sb, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    sb_putc(sb, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n) {
            unsigned char c = u[i];
            if (c < 0x80) {
                if (c < 0x20 || c == 0x7F || c == '"' || c == '\\')
                    break;
                i++;
            } else {
                uint32_t cp;
                size_t l = utf8_seq(u + i, n - i, &cp);
                if (!l)
                    break;
                i += l;
            }
        }
        if (i > run)
            sb_append(sb, s + run, i - run);
        if (i >= n)
            break;
        unsigned char c = u[i++];
        switch (c) {
        case '"':
            sb_puts(sb, "\\\"");
            break;
        case '\\':
            sb_puts(sb, "\\\\");
            break;
        case '\b':
            sb_puts(sb, "\\b");
            break;
        case '\t':
            sb_puts(sb, "\\t");
            break;
        case '\n':
            sb_puts(sb, "\\n");
            break;
        case '\f':
            sb_puts(sb, "\\f");
            break;
        case '\r':
            sb_puts(sb, "\\r");
            break;
        default:
            if (c < 0x80)
                sb_printf(sb, "\\u%04X", c);
            else
                sb_puts(sb, "\\uFFFD"); /* invalid UTF-8 in a hand-built string */
            break;
        }
    }
    sb_putc(sb, '"');
}

static bool key_is_bare(const char *k, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_bare_char((unsigned char)k[i]))
            return false;
    return true;
}

static void write_key(strbuf *sb, const char *k, size_t n)
{
    if (key_is_bare(k, n))
        sb_append(sb, k, n);
    else
        write_string(sb, k, n);
}

/* Shortest text that reads back as the same double; always has '.', 'e', "inf" or "nan". */
static void format_double(char *buf, size_t size, double d)
{
    if (isnan(d)) {
        snprintf(buf, size, "%s", signbit(d) ? "-nan" : "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, "%s", d < 0 ? "-inf" : "inf");
        return;
    }
    locale_t cl = c_locale();
    locale_t old = uselocale(cl);
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod_l(buf, NULL, cl) == d)
            break;
    }
    if (prec > 17)
        prec = 17;
    char *e = strchr(buf, 'e');
    if (e) {
        long ex = strtol(e + 1, NULL, 10);
        if (ex >= 0 && ex < 17) { /* prefer 100.0 over 1e+02 */
            int decimals = prec - 1 - (int)ex;
            snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, d);
        }
    }
    uselocale(old);
    if (!strpbrk(buf, ".e")) {
        size_t l = strlen(buf);
        if (l + 3 <= size)
            memcpy(buf + l, ".0", 3);
    }
}

static void write_datetime(strbuf *sb, const toml_value *v)
{
    const toml_datetime *dt = &v->u.dt;
    if (v->type != TOML_TIME_LOCAL)
        sb_printf(sb, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
    if (v->type == TOML_DATE_LOCAL)
        return;
    if (v->type != TOML_TIME_LOCAL)
        sb_putc(sb, 'T');
    sb_printf(sb, "%02d:%02d:%02d", dt->hour, dt->minute, dt->second);
    int ns = dt->nanosecond, nd = dt->frac_digits;
    if (ns < 0 || ns > 999999999)
        ns = 0;
    if (nd < 0)
        nd = 0;
    if (nd > 9)
        nd = 9;
    char frac[16];
    snprintf(frac, sizeof(frac), "%09d", ns);
    if (nd == 0 && ns != 0) {
        nd = 9;
        while (nd > 1 && frac[nd - 1] == '0')
            nd--;
    }
    if (nd)
        sb_printf(sb, ".%.*s", nd, frac);
    if (v->type == TOML_DATETIME) {
        if (dt->offset_z) {
            sb_putc(sb, 'Z');
        } else {
            int off = dt->offset_minutes;
            char sign = off < 0 ? '-' : '+';
            if (off < 0)
                off = -off;
            sb_printf(sb, "%c%02d:%02d", sign, off / 60 % 100, off % 60);
        }
    }
}

static void write_inline(strbuf *sb, const toml_value *v)
{
    char buf[64];
    switch (v->type) {
    case TOML_STRING:
        write_string(sb, v->u.s.ptr, v->u.s.len);
        break;
    case TOML_INTEGER:
        sb_printf(sb, "%" PRId64, v->u.i);
        break;
    case TOML_FLOAT:
        format_double(buf, sizeof(buf), v->u.f);
        sb_puts(sb, buf);
        break;
    case TOML_BOOL:
        sb_puts(sb, v->u.b ? "true" : "false");
        break;
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL:
        write_datetime(sb, v);
        break;
    case TOML_ARRAY:
        sb_putc(sb, '[');
        for (size_t i = 0; i < v->u.arr.len; i++) {
            if (i)
                sb_puts(sb, ", ");
            write_inline(sb, v->u.arr.items[i]);
        }
        sb_putc(sb, ']');
        break;
    case TOML_TABLE:
        sb_putc(sb, '{');
        for (size_t i = 0; i < v->u.tab.len; i++) {
            const toml_kv *kv = &v->u.tab.items[i];
            sb_puts(sb, i ? ", " : "");
            write_key(sb, kv->key, kv->keylen);
            sb_puts(sb, " = ");
            write_inline(sb, kv->val);
        }
        sb_putc(sb, '}');
        break;
    }
}

/* Written as a [section] or as [[array.of.tables]] rather than inline. */
static bool is_section(const toml_value *v)
{
    if (v->type == TOML_TABLE)
        return true;
    if (v->type != TOML_ARRAY || v->u.arr.len == 0)
        return false;
    for (size_t i = 0; i < v->u.arr.len; i++)
        if (v->u.arr.items[i]->type != TOML_TABLE)
            return false;
    return true;
}

/* A table needs its own [header] unless it only holds sub-sections. */
static bool needs_header(const toml_value *t)
{
    if (t->u.tab.len == 0)
        return true;
    for (size_t i = 0; i < t->u.tab.len; i++)
        if (!is_section(t->u.tab.items[i].val))
            return true;
    return false;
}

static void write_table(strbuf *out, const toml_value *t, strbuf *path)
{
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const toml_kv *kv = &t->u.tab.items[i];
        if (is_section(kv->val))
            continue;
        write_key(out, kv->key, kv->keylen);
        sb_puts(out, " = ");
        write_inline(out, kv->val);
        sb_putc(out, '\n');
    }
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const toml_kv *kv = &t->u.tab.items[i];
        const toml_value *v = kv->val;
        if (!is_section(v))
            continue;
        size_t save = path->len;
        if (save)
            sb_putc(path, '.');
        write_key(path, kv->key, kv->keylen);
        if (v->type == TOML_TABLE) {
            if (needs_header(v)) {
                if (out->len)
                    sb_putc(out, '\n');
                sb_putc(out, '[');
                sb_append(out, path->buf, path->len);
                sb_puts(out, "]\n");
            }
            write_table(out, v, path);
        } else {
            for (size_t k = 0; k < v->u.arr.len; k++) {
                if (out->len)
                    sb_putc(out, '\n');
                sb_puts(out, "[[");
                sb_append(out, path->buf, path->len);
                sb_puts(out, "]]\n");
                write_table(out, v->u.arr.items[k], path);
            }
        }
        path->len = save;
        path->buf[save] = '\0';
    }
}

char *toml_write(const toml_value *root)
{
    strbuf out = STRBUF_INIT;
    if (root && root->type == TOML_TABLE) {
        cleanup_strbuf strbuf path = STRBUF_INIT;
        write_table(&out, root, &path);
    }
    return sb_steal(&out);
}

char *toml_format_value(const toml_value *v)
{
    if (!v)
        return xstrdup("");
    strbuf sb = STRBUF_INIT;
    write_inline(&sb, v);
    return sb_steal(&sb);
}

char *toml_format_datetime(const toml_value *v)
{
    if (!v || (v->type != TOML_DATETIME && v->type != TOML_DATETIME_LOCAL &&
               v->type != TOML_DATE_LOCAL && v->type != TOML_TIME_LOCAL))
        return xstrdup("");
    strbuf sb = STRBUF_INIT;
    write_datetime(&sb, v);
    return sb_steal(&sb);
}
