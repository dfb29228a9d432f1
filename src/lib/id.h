/* id.h - 128-bit node IDs and their text form, exactly as the reference node derives them
 * (shared/spec/reference-node.md section 4). */
#ifndef MANTA_ID_H
#define MANTA_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* Sent on the wire as common.system.PairId {head, tail}. */
typedef struct node_id {
    uint64_t head; /* high 64 bits */
    uint64_t tail; /* low 64 bits */
} node_id;

/* Longest text form: 32 hex digits (+ NUL). */
#define NODE_XID_MAX 33

/* The ID of an alias: if the alias parses as a hexadecimal integer with Python int(s, 16)
 * rules (surrounding whitespace, optional sign, optional 0x/0X prefix, single '_' between
 * digits or after the prefix) that integer is the ID; a negative value or one >= 2^128 is an
 * error. Otherwise the first 16 bytes of BLAKE3(alias) read big-endian (bytes 0-7 -> head).
 * Alias "default" -> f78761cf8c3621e851097dff9a4b0463. */
int node_id_from_alias(const char *alias, node_id *out, mt_error **err);

/* The ID of a host without an alias: first 16 bytes of BLAKE3 over the 8-byte
 * little-endian encoding of the 48-bit MAC address. 02:42:ac:11:00:02 ->
 * a6e964a2b22b18aeb6c10da8fb1c8094. */
node_id node_id_from_mac(uint64_t mac48);

/* A random UUID4 read as a 128-bit number, as the reference does (122 random bits from
 * getrandom(2), version and variant bits set). */
int node_id_random(node_id *out, mt_error **err);

/* The "xid" text form: lower-case hex without leading zeros; if that is not 32 characters
 * long, exactly one '0' is prepended (0xabc -> "0abc", 0 -> "00"). */
void node_id_to_xid(node_id id, char out[NODE_XID_MAX + 1]);

/* Parse a hex text form (any zero padding, at most 128 bits). Returns false if invalid. */
bool node_id_parse_xid(const char *s, node_id *out);

/* The form users see (the SDK's): 32 lower-case hex digits, zero-padded. */
void node_id_to_hex(node_id id, char out[33]);
/* Parse what a user gives: 1..32 hex digits. False if it is not that. */
bool node_id_parse_hex(const char *s, node_id *out);

bool node_id_equal(node_id a, node_id b);

/* qsort/bsearch order of node_id values (by head, then tail). */
int node_id_cmp(const void *a, const void *b);

#endif
