/* utf8.h - UTF-8 checks for text that crosses a boundary: cutting at a character boundary,
 * validation, and a lossy copy (what JSON encoders and protobuf `string` fields need). */
#ifndef MANTA_UTF8_H
#define MANTA_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the longest prefix of s[0..len) of at most max bytes that does not end in the
 * middle of a character: cutting there never splits a multi-byte sequence. */
size_t utf8_cut(const char *s, size_t len, size_t max);

/* True if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). NUL bytes are well-formed. */
bool utf8_valid(const char *s, size_t len);

/* A NUL-terminated copy of s[0..len) with every ill-formed sequence replaced by U+FFFD.
 * *out_len (may be NULL) receives the copy's length (it may hold NULs when s did).
 * Returns owned text (free). s may be NULL when len is 0. */
char *utf8_lossy(const char *s, size_t len, size_t *out_len);

/* Shorten the NUL-terminated s to drop an incomplete multi-byte sequence at its end (what
 * snprintf leaves when it cuts inside a character). */
void utf8_drop_partial_tail(char *s);

/* Copy src into dst (size dst_size > 0) as snprintf("%s") would, but cut at a character
 * boundary; returns dst. */
char *utf8_copy(char *dst, size_t dst_size, const char *src);

/* Copy src (NULL = "") into dst (size >= 1 bytes, always NUL-terminated), cut at a character
 * boundary when it does not fit; bytes that are not well-formed UTF-8, and control characters
 * (U+0000-U+001F, U+007F: a newline would forge a log line), become '?'. For text from the
 * network that is shown in listings, logs or JSON. Returns dst. */
char *utf8_clean_copy(char *dst, size_t size, const char *src);

/* The same, whole, into a new string (owned). */
char *utf8_clean_dup(const char *src);

#endif
