/* msgpack.c - MessagePack writer; see msgpack.h. */
#include "msgpack.h"

#include <string.h>

#include "mem.h"

static void put1(strbuf *sb, uint8_t b)
{
    sb_append(sb, &b, 1);
}

/* A marker byte followed by `width` bytes of v, big-endian. */
static void put_be(strbuf *sb, uint8_t marker, uint64_t v, int width)
{
    uint8_t b[9];
    b[0] = marker;
    for (int i = 0; i < width; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    sb_append(sb, b, (size_t)width + 1);
}

void mp_nil(strbuf *sb)
{
    put1(sb, 0xc0);
}

void mp_bool(strbuf *sb, bool b)
{
    put1(sb, b ? 0xc3 : 0xc2);
}

void mp_uint(strbuf *sb, uint64_t v)
{
    if (v <= 0x7f)
        put1(sb, (uint8_t)v);
    else if (v <= UINT8_MAX)
        put_be(sb, 0xcc, v, 1);
    else if (v <= UINT16_MAX)
        put_be(sb, 0xcd, v, 2);
    else if (v <= UINT32_MAX)
        put_be(sb, 0xce, v, 4);
    else
        put_be(sb, 0xcf, v, 8);
}

void mp_int(strbuf *sb, int64_t v)
{
    if (v >= 0) {
        mp_uint(sb, (uint64_t)v); /* Python packs every non-negative int as unsigned */
        return;
    }
    uint64_t u = (uint64_t)v; /* two's complement; put_be keeps the low bytes */
    if (v >= -32)
        put1(sb, (uint8_t)u); /* negative fixint 0xe0..0xff */
    else if (v >= INT8_MIN)
        put_be(sb, 0xd0, u, 1);
    else if (v >= INT16_MIN)
        put_be(sb, 0xd1, u, 2);
    else if (v >= INT32_MIN)
        put_be(sb, 0xd2, u, 4);
    else
        put_be(sb, 0xd3, u, 8);
}

void mp_float(strbuf *sb, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    put_be(sb, 0xcb, bits, 8);
}

void mp_str(strbuf *sb, const char *s, size_t len)
{
    if (len <= 31)
        put1(sb, (uint8_t)(0xa0 | len));
    else if (len <= UINT8_MAX)
        put_be(sb, 0xd9, len, 1);
    else if (len <= UINT16_MAX)
        put_be(sb, 0xda, len, 2);
    else
        put_be(sb, 0xdb, len, 4);
    sb_append(sb, s, len);
}

void mp_cstr(strbuf *sb, const char *s)
{
    mp_str(sb, s, strlen(s));
}

void mp_bin(strbuf *sb, const void *data, size_t len)
{
    if (len <= UINT8_MAX)
        put_be(sb, 0xc4, len, 1);
    else if (len <= UINT16_MAX)
        put_be(sb, 0xc5, len, 2);
    else
        put_be(sb, 0xc6, len, 4);
    sb_append(sb, data, len);
}

void mp_array(strbuf *sb, size_t n)
{
    if (n <= 15)
        put1(sb, (uint8_t)(0x90 | n));
    else if (n <= UINT16_MAX)
        put_be(sb, 0xdc, n, 2);
    else
        put_be(sb, 0xdd, n, 4);
}

void mp_map(strbuf *sb, size_t n)
{
    if (n <= 15)
        put1(sb, (uint8_t)(0x80 | n));
    else if (n <= UINT16_MAX)
        put_be(sb, 0xde, n, 2);
    else
        put_be(sb, 0xdf, n, 4);
}

static int too_long(const char *what, const char *kind, size_t n, const char *unit, mt_error **err)
{
    return mt_error_set(err, MT_ERR_CONFIG,
                        "%s holds %s of %zu %s, more than msgpack can encode (at most "
                        "4294967295): split the value.",
                        what, kind, n, unit);
}

int mp_pack_toml(strbuf *sb, const toml_value *v, const char *what, mt_error **err)
{
    switch (v->type) {
    case TOML_TABLE:
        if (v->u.tab.len > MP_MAX_LEN)
            return too_long(what, "a table", v->u.tab.len, "keys", err);
        mp_map(sb, v->u.tab.len);
        for (size_t i = 0; i < v->u.tab.len; i++) {
            const toml_kv *kv = &v->u.tab.items[i];
            if (kv->keylen > MP_MAX_LEN)
                return too_long(what, "a key", kv->keylen, "bytes", err);
            mp_str(sb, kv->key, kv->keylen);
            if (mp_pack_toml(sb, kv->val, what, err))
                return -1;
        }
        return 0;
    case TOML_ARRAY:
        if (v->u.arr.len > MP_MAX_LEN)
            return too_long(what, "an array", v->u.arr.len, "elements", err);
        mp_array(sb, v->u.arr.len);
        for (size_t i = 0; i < v->u.arr.len; i++)
            if (mp_pack_toml(sb, v->u.arr.items[i], what, err))
                return -1;
        return 0;
    case TOML_STRING:
        if (v->u.s.len > MP_MAX_LEN)
            return too_long(what, "a string", v->u.s.len, "bytes", err);
        mp_str(sb, v->u.s.ptr, v->u.s.len);
        return 0;
    case TOML_INTEGER:
        mp_int(sb, v->u.i);
        return 0;
    case TOML_FLOAT:
        mp_float(sb, v->u.f);
        return 0;
    case TOML_BOOL:
        mp_bool(sb, v->u.b);
        return 0;
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL: {
        cleanup_free char *text = toml_format_datetime(v);
        mp_cstr(sb, text);
        return 0;
    }
    }
    return mt_error_set(err, MT_ERR_GENERIC, "%s: unknown TOML value type %d.", what, (int)v->type);
}

uint8_t *mp_pack_toml_bytes(const toml_value *v, const char *what, size_t *len, mt_error **err)
{
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    if (mp_pack_toml(&sb, v, what, err))
        return NULL;
    *len = sb.len;
    return (uint8_t *)sb_steal(&sb);
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct mp_reader {
    const uint8_t *p, *end;
    mp_number_fn fn;
    void *ctx;
    int nest; /* containers open now: a bound on the recursion, whatever is reported */
    char path[MP_PATH_MAX];
} mp_reader;

#define MP_NEST_MAX 64 /* containers inside containers read at all (deeper: malformed) */

static bool rd_take(mp_reader *r, size_t n, const uint8_t **out)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    *out = r->p;
    r->p += n;
    return true;
}

static bool rd_uint(mp_reader *r, size_t n, uint64_t *v)
{
    const uint8_t *b;
    if (!rd_take(r, n, &b))
        return false;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = *v << 8 | b[i];
    return true;
}

static bool rd_value(mp_reader *r, size_t plen, int depth);

/* A map of n pairs: numbers under string keys are reported as path.key. */
static bool rd_map(mp_reader *r, uint64_t n, size_t plen, int depth)
{
    if (++r->nest > MP_NEST_MAX)
        return false;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *key = NULL;
        uint64_t klen = 0;
        uint8_t t;
        if (r->p >= r->end)
            return false;
        t = *r->p;
        if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb) {
            r->p++;
            if ((t & 0xe0) == 0xa0)
                klen = t & 0x1f;
            else if (!rd_uint(r, t == 0xd9 ? 1 : t == 0xda ? 2 : 4, &klen))
                return false;
            if (!rd_take(r, klen, &key))
                return false;
        } else if (!rd_value(r, 0, MP_DEPTH_MAX + 1)) { /* another kind of key: stepped over */
            return false;
        }
        bool follow = key && depth < MP_DEPTH_MAX && plen + 1 + klen < MP_PATH_MAX &&
                      !memchr(key, '\0', klen);
        if (follow) {
            size_t at = plen;
            if (at)
                r->path[at++] = '.';
            memcpy(r->path + at, key, klen);
            r->path[at + klen] = '\0';
            if (!rd_value(r, at + klen, depth + 1))
                return false;
            r->path[plen] = '\0';
        } else if (!rd_value(r, 0, MP_DEPTH_MAX + 1)) {
            return false;
        }
    }
    r->nest--;
    return true;
}

/* An array of n values: stepped over. */
static bool rd_array(mp_reader *r, uint64_t n)
{
    if (++r->nest > MP_NEST_MAX)
        return false;
    for (uint64_t i = 0; i < n; i++)
        if (!rd_value(r, 0, MP_DEPTH_MAX + 1))
            return false;
    r->nest--;
    return true;
}

static void rd_number(mp_reader *r, size_t plen, int depth, double v)
{
    if (depth <= MP_DEPTH_MAX && plen)
        r->fn(r->ctx, r->path, v);
}

/* One value; depth > MP_DEPTH_MAX: read over without reporting. */
static bool rd_value(mp_reader *r, size_t plen, int depth)
{
    const uint8_t *b;
    uint64_t v = 0;
    if (!rd_take(r, 1, &b))
        return false;
    uint8_t t = *b;
    if (t <= 0x7f) {
        rd_number(r, plen, depth, t);
        return true;
    }
    if (t >= 0xe0) {
        rd_number(r, plen, depth, (int8_t)t);
        return true;
    }
    if ((t & 0xf0) == 0x80)
        return rd_map(r, t & 0x0f, plen, depth);
    if ((t & 0xf0) == 0x90)
        return rd_array(r, t & 0x0f);
    if ((t & 0xe0) == 0xa0)
        return rd_take(r, t & 0x1f, &b);
    switch (t) {
    case 0xc0:
    case 0xc2:
    case 0xc3: /* nil, false, true */
        return true;
    case 0xc4:
    case 0xd9: /* bin8, str8 */
        return rd_uint(r, 1, &v) && rd_take(r, v, &b);
    case 0xc5:
    case 0xda:
        return rd_uint(r, 2, &v) && rd_take(r, v, &b);
    case 0xc6:
    case 0xdb:
        return rd_uint(r, 4, &v) && rd_take(r, v, &b);
    case 0xc7: /* ext8/16/32: length, type, data */
        return rd_uint(r, 1, &v) && rd_take(r, v + 1, &b);
    case 0xc8:
        return rd_uint(r, 2, &v) && rd_take(r, v + 1, &b);
    case 0xc9:
        return rd_uint(r, 4, &v) && rd_take(r, v + 1, &b);
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1..16 */
        return rd_take(r, 1 + ((size_t)1 << (t - 0xd4)), &b);
    case 0xca: { /* float32 */
        if (!rd_uint(r, 4, &v))
            return false;
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, 4);
        rd_number(r, plen, depth, f);
        return true;
    }
    case 0xcb: {
        if (!rd_uint(r, 8, &v))
            return false;
        double d;
        memcpy(&d, &v, 8);
        rd_number(r, plen, depth, d);
        return true;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (!rd_uint(r, (size_t)1 << (t - 0xcc), &v))
            return false;
        rd_number(r, plen, depth, (double)v);
        return true;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (t - 0xd0);
        if (!rd_uint(r, n, &v))
            return false;
        int64_t sv = n == 8 ? (int64_t)v : (int64_t)(v << (64 - 8 * n)) >> (64 - 8 * n);
        rd_number(r, plen, depth, (double)sv);
        return true;
    }
    case 0xdc:
    case 0xdd: /* array16/32 */
        return rd_uint(r, t == 0xdc ? 2 : 4, &v) && rd_array(r, v);
    case 0xde:
    case 0xdf:
        if (!rd_uint(r, t == 0xde ? 2 : 4, &v))
            return false;
        return rd_map(r, v, plen, depth);
    default: /* 0xc1: never used */
        return false;
    }
}

int mp_numbers(const uint8_t *data, size_t len, const char *prefix, mp_number_fn fn, void *ctx)
{
    mp_reader r = {.p = data, .end = data + len, .fn = fn, .ctx = ctx};
    size_t plen = strlen(prefix);
    if (plen >= MP_PATH_MAX)
        return -1;
    memcpy(r.path, prefix, plen + 1);
    return rd_value(&r, plen, 0) && r.p == r.end ? 0 : -1;
}
