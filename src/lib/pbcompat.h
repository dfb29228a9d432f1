/* pbcompat.h - protobuf at the wire level: varints, a field walker, and the encoder for a quirk
 * of the reference implementation.
 *
 * The reference node copies node.light_service.LightResultQuery.size (int32; the SDK default is
 * -1) into common.results.ResultQuery.size (uint32) unchanged, and betterproto encodes a
 * negative value as the 10-byte two's-complement varint of (uint64)(int64)size, exactly as
 * Google's protobuf encodes an int32 field. A uint32 field in protobuf-c cannot carry that
 * value, so the request to the manager is encoded here (protocol.md, "Wire-level notes").
 */
#ifndef MANTA_PBCOMPAT_H
#define MANTA_PBCOMPAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/results.pb-c.h"

/* Encode q as common.results.ResultQuery, with field 6 (size) carrying the int32 `size`
 * sign-extended to 64 bits instead of q->size (which is ignored): fields in number order,
 * field 6 omitted when size is 0, positive values encoded as usual, negative ones in 10 bytes.
 * Unknown fields of q are kept (after the known ones, as protobuf-c does). q may be NULL (an
 * all-default message). Returns owned bytes (never NULL; free()) and sets *len. */
uint8_t *pbcompat_pack_result_query(const Common__Results__ResultQuery *q, int32_t size,
                                    size_t *len);

/* ---- wire primitives (for rewriting messages in place without decoding them) ---- */

/* Read one base-128 varint at p[*pos] (len bytes in all). Returns 0, or -1 if malformed. */
int pb_varint_read(const uint8_t *p, size_t len, size_t *pos, uint64_t *out);
/* One field of an encoded protobuf message, as pb_field_next walks them. */
typedef struct pb_field {
    size_t start;    /* where its key starts */
    unsigned number; /* field number */
    unsigned wire;   /* wire type: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    size_t value;    /* wire 2: where the bytes start */
    size_t vlen;     /* wire 2: their length */
} pb_field;
/* Step to the next field of p[0..len) from *pos. Returns 1 with *f filled, 0 at the end, -1 if
 * malformed (unknown wire type, truncation, a key or length prefix over 5 bytes: refused as
 * protobuf-c refuses it). */
int pb_field_next(const uint8_t *p, size_t len, size_t *pos, pb_field *f);
/* Write v as a varint into out (at least 10 bytes). Returns its length. */
size_t pb_varint_write(uint8_t *out, uint64_t v);
/* Length of v as a varint. */
size_t pb_varint_len(uint64_t v);

#endif
