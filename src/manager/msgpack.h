/* msgpack.h - a small MessagePack writer: the bytes Python's msgpack.packb(value,
 * use_bin_type=True) produces, so globals seeded from a swarm file read back on the task side
 * exactly as the SDK's dict_to_bytes would have stored them (task-contract.md 5.3).
 *
 * Values are appended to a strbuf (strbuf.h), which grows as needed. Integers use the
 * smallest encoding as Python does (non-negative: positive fixint, uint8/16/32/64; negative:
 * negative fixint, int8/16/32/64); floats are always float64 (0xcb); strings are str
 * (fixstr/str8/16/32) and byte strings bin (bin8/16/32). Containers are written as a header
 * (mp_array / mp_map with the element count) followed by the elements (for a map: key, value,
 * key, value, ...).
 *
 * Lengths and counts must be below 2^32 (msgpack's limit); mp_pack_toml checks that and
 * reports an error, the mp_* writers assume it.
 */
#ifndef MANTA_MGR_MSGPACK_H
#define MANTA_MGR_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "strbuf.h"
#include "toml.h"

#define MP_MAX_LEN ((uint64_t)UINT32_MAX)

void mp_nil(strbuf *sb);
void mp_bool(strbuf *sb, bool b);
void mp_int(strbuf *sb, int64_t v);
void mp_uint(strbuf *sb, uint64_t v);
void mp_float(strbuf *sb, double d);                   /* float64, bit-exact (NaN sign kept) */
void mp_str(strbuf *sb, const char *s, size_t len);    /* s: UTF-8 text, borrowed */
void mp_cstr(strbuf *sb, const char *s);               /* NUL-terminated shortcut */
void mp_bin(strbuf *sb, const void *data, size_t len); /* borrowed */
void mp_array(strbuf *sb, size_t n);                   /* then n values */
void mp_map(strbuf *sb, size_t n);                     /* then n key/value pairs */

/* Append the msgpack form of a TOML value: table -> map (string keys, document order),
 * array -> array, string -> str, integer -> int, float -> float64, boolean -> bool, offset
 * and local date-times, dates and times -> their TOML text as str ("1979-05-27T07:32:00Z").
 * `what` names the value in the error message ("global 'hyperparameters'"). Returns 0, or -1
 * with *err (a string or a container too long for msgpack); sb then holds a partial value. */
int mp_pack_toml(strbuf *sb, const toml_value *v, const char *what, mt_error **err);

/* The same into a new buffer: returns owned bytes (length in *len), or NULL with *err. */
uint8_t *mp_pack_toml_bytes(const toml_value *v, const char *what, size_t *len, mt_error **err);

/* ---- reading: the numbers in a value (the dashboard's training curves) ---- */

#define MP_PATH_MAX  256 /* bytes of a dotted path */
#define MP_DEPTH_MAX 16  /* maps inside maps */

/* Called for each number found: path (borrowed for the call) and its value. */
typedef void (*mp_number_fn)(void *ctx, const char *path, double value);

/* Walk one msgpack value (what the SDK's dict_to_bytes stores): for every integer or float
 * reached through maps with string keys, call fn with its dotted path — `prefix`, then ".key"
 * per map level (a number at the top is `prefix` itself). Arrays, strings, binaries,
 * booleans, nil and extension types are stepped over; paths longer than MP_PATH_MAX and maps
 * deeper than MP_DEPTH_MAX are not followed. Returns 0, or -1 when data is not one well-formed
 * value (fn may have been called for the numbers before the fault) or prefix is MP_PATH_MAX
 * bytes or longer. */
int mp_numbers(const uint8_t *data, size_t len, const char *prefix, mp_number_fn fn, void *ctx);

#endif
