/* pbcompat.c - wire-compatibility encoders; see pbcompat.h. */
#include "pbcompat.h"

#include <string.h>

#include "mem.h"

/* Field number of ResultQuery.size; the fields before it and after it are packed by protobuf-c. */
enum { RESULT_QUERY_SIZE_FIELD = 6 };

/* ---- wire primitives
 * ------------------------------------------------------------------------------- */

/* At most `max` bytes (10 for a 64-bit value). */
static int varint_read_max(const uint8_t *p, size_t len, size_t *pos, uint64_t *out, int max)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 7 * max && shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int pb_varint_read(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    return varint_read_max(p, len, pos, out, 10);
}

/* A key or a length prefix: protobuf-c reads at most 5 bytes of either (a 32-bit value) and
 * refuses the message otherwise; the in-place readers must judge a message as it does. */
#define PB_KEY_LEN_MAX 5

int pb_field_next(const uint8_t *p, size_t len, size_t *pos, pb_field *f)
{
    if (*pos >= len)
        return 0;
    uint64_t key, v;
    f->start = *pos;
    if (varint_read_max(p, len, pos, &key, PB_KEY_LEN_MAX) < 0)
        return -1;
    f->number = (unsigned)(key >> 3);
    f->wire = (unsigned)(key & 7);
    f->value = f->vlen = 0;
    switch (f->wire) {
    case 0:
        return pb_varint_read(p, len, pos, &v) < 0 ? -1 : 1;
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if (n > len - *pos)
            return -1;
        *pos += n;
        return 1;
    }
    case 2:
        if (varint_read_max(p, len, pos, &v, PB_KEY_LEN_MAX) < 0 || v > len - *pos)
            return -1;
        f->value = *pos;
        f->vlen = (size_t)v;
        *pos += (size_t)v;
        return 1;
    default:
        return -1;
    }
}

size_t pb_varint_write(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

uint8_t *pbcompat_pack_result_query(const Common__Results__ResultQuery *q, int32_t size,
                                    size_t *len)
{
    Common__Results__ResultQuery empty = COMMON__RESULTS__RESULT_QUERY__INIT;
    if (!q)
        q = &empty;

    /* Fields 1..5: a copy without size, method and unknown fields. */
    Common__Results__ResultQuery head = *q;
    head.size = 0;
    head.method = COMMON__RESULTS__RESULT_METHOD__UNSPECIFIED;
    head.base.n_unknown_fields = 0;
    head.base.unknown_fields = NULL;

    /* Field 7 and the unknown fields: a copy holding nothing else. */
    Common__Results__ResultQuery tail = COMMON__RESULTS__RESULT_QUERY__INIT;
    tail.method = q->method;
    tail.base.n_unknown_fields = q->base.n_unknown_fields;
    tail.base.unknown_fields = q->base.unknown_fields;

    size_t head_len = protobuf_c_message_get_packed_size(&head.base);
    size_t tail_len = protobuf_c_message_get_packed_size(&tail.base);
    /* Tag (1 byte for field 6) + at most 10 varint bytes. */
    uint8_t *buf = xmalloc(head_len + 11 + tail_len);

    size_t n = protobuf_c_message_pack(&head.base, buf);
    if (size != 0) {
        buf[n++] = (uint8_t)(RESULT_QUERY_SIZE_FIELD << 3 | PROTOBUF_C_WIRE_TYPE_VARINT);
        n += pb_varint_write(buf + n, (uint64_t)(int64_t)size);
    }
    n += protobuf_c_message_pack(&tail.base, buf + n);
    *len = n;
    return buf;
}
