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
