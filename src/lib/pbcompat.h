/* pbcompat.h - wire-compatibility encoders for quirks of the reference implementation.
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

#endif
