/* id.c - 128-bit node IDs and their text form; see id.h and shared/spec/reference-node.md
 * section 4. */
#include "id.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "blake3.h"
#include "mem.h"

/* ---- Python int(text, 16) -------------------------------------------------------------- */

/* CPython's int() first maps a str to ASCII: ASCII characters stay, any other Unicode
 * whitespace becomes ' ', any other Unicode decimal digit (category Nd) becomes its ASCII
 * digit, and anything else ends the text with an invalid character. Then it parses the ASCII
 * form. These tables are the non-ASCII whitespace (str.isspace) and the first code point
 * of each block of ten Nd digits 0-9, as of Unicode 14 (Python 3.11). */
static const uint32_t py_unicode_spaces[] = {
    0x0085, 0x00A0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
    0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
};

static const uint32_t py_unicode_digit_zeros[] = {
    0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,  0x0B66,  0x0BE6,  0x0C66,
    0x0CE6,  0x0D66,  0x0DE6,  0x0E50,  0x0ED0,  0x0F20,  0x1040,  0x1090,  0x17E0,  0x1810,
    0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,
    0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0,
    0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950,
    0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC,
    0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
};

/* Decode one UTF-8 sequence at s (strict: no overlong forms, surrogates or values above
 * U+10FFFF). Returns its length, or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0; /* also stops at the NUL terminator */
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* The ASCII character CPython substitutes for a non-ASCII code point, or 0 if none. */
static char py_ascii_for(uint32_t cp)
{
    for (size_t i = 0; i < ARRAY_LEN(py_unicode_spaces); i++)
        if (cp == py_unicode_spaces[i])
            return ' ';
    for (size_t i = 0; i < ARRAY_LEN(py_unicode_digit_zeros); i++)
        if (cp >= py_unicode_digit_zeros[i] && cp < py_unicode_digit_zeros[i] + 10)
            return (char)('0' + (cp - py_unicode_digit_zeros[i]));
    return 0;
}

/* Whitespace as CPython's Py_ISSPACE (after the mapping above). */
static bool py_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Shift one hex digit into a 128-bit value; false if it no longer fits. */
static bool push_hex_digit(node_id *v, int digit)
{
    if (v->head >> 60)
        return false;
    v->head = (v->head << 4) | (v->tail >> 60);
    v->tail = (v->tail << 4) | (uint64_t)digit;
    return true;
}

enum py_hex_result {
    PY_HEX_INVALID, /* int(text, 16) raises ValueError */
    PY_HEX_OK,      /* a value in [0, 2^128) */
    PY_HEX_RANGE,   /* a valid integer, but negative or >= 2^128 */
};

/* Parse like Python int(text, 16). */
static enum py_hex_result py_parse_hex(const char *text, node_id *out)
{
    /* Map to ASCII first, as CPython does. */
    size_t len = strlen(text);
    cleanup_free char *ascii = xmalloc(len + 1);
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        uint32_t cp;
        size_t k = utf8_decode(p, &cp);
        if (k == 0)
            return PY_HEX_INVALID; /* not text Python could hold */
        char c = cp < 0x80 ? (char)cp : py_ascii_for(cp);
        if (c == 0)
            return PY_HEX_INVALID; /* CPython maps it to '?' */
        ascii[n++] = c;
        p += k;
    }
    ascii[n] = '\0';

    /* CPython's PyLong_FromString with base 16. */
    const char *s = ascii;
    while (py_isspace(*s))
        s++;
    bool negative = false;
    if (*s == '+') {
        s++;
    } else if (*s == '-') {
        negative = true;
        s++;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        if (*s == '_') /* one underscore is allowed right after the prefix */
            s++;
    }
    if (*s == '_')
        return PY_HEX_INVALID;
    node_id v = {0, 0};
    bool overflow = false, any_digit = false;
    char prev = 0;
    for (; hex_value(*s) >= 0 || *s == '_'; s++) {
        if (*s == '_') {
            if (prev == '_')
                return PY_HEX_INVALID;
        } else {
            any_digit = true;
            if (!overflow && !push_hex_digit(&v, hex_value(*s)))
                overflow = true;
        }
        prev = *s;
    }
    if (prev == '_' || !any_digit)
        return PY_HEX_INVALID;
    while (py_isspace(*s))
        s++;
    if (*s != '\0')
        return PY_HEX_INVALID;
    if (overflow || (negative && (v.head || v.tail)))
        return PY_HEX_RANGE;
    *out = v;
    return PY_HEX_OK;
}

/* ---- IDs ------------------------------------------------------------------------------- */

static uint64_t load64_be(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

/* The first 16 bytes of BLAKE3(data), big-endian. */
static node_id id_from_hash(const void *data, size_t len)
{
    uint8_t digest[16];
    b3_hash(data, len, digest, sizeof(digest));
    return (node_id){.head = load64_be(digest), .tail = load64_be(digest + 8)};
}

int node_id_from_alias(const char *alias, node_id *out, mt_error **err)
{
    node_id v;
    switch (py_parse_hex(alias, &v)) {
    case PY_HEX_OK:
        *out = v;
        return 0;
    case PY_HEX_RANGE:
        return mt_error_set(err, MT_ERR_CONFIG,
                            "alias '%s' is a hexadecimal number outside the 128-bit node ID "
                            "range (0 to 2^128-1); choose another alias",
                            alias);
    case PY_HEX_INVALID:
        break;
    }
    *out = id_from_hash(alias, strlen(alias));
    return 0;
}

node_id node_id_from_mac(uint64_t mac48)
{
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)(mac48 >> (8 * i));
    return id_from_hash(bytes, sizeof(bytes));
}

int node_id_random(node_id *out, mt_error **err)
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mt_error_sys(err, errno, "cannot get random bytes for a random node ID");
        }
        got += (size_t)n;
    }
    /* The reference parses the hex of a UUID4, so keep its version and variant bits. */
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
    out->head = load64_be(b);
    out->tail = load64_be(b + 8);
    return 0;
}

void node_id_to_xid(node_id id, char out[NODE_XID_MAX + 1])
{
    static const char digits[] = "0123456789abcdef";
    char hex[32];
    for (int i = 0; i < 16; i++) {
        hex[i] = digits[(id.head >> (60 - 4 * i)) & 0xF];
        hex[16 + i] = digits[(id.tail >> (60 - 4 * i)) & 0xF];
    }
    size_t start = 0;
    while (start < 31 && hex[start] == '0')
        start++;
    size_t len = 32 - start, pos = 0;
    if (len != 32)
        out[pos++] = '0';
    memcpy(out + pos, hex + start, len);
    out[pos + len] = '\0';
}

bool node_id_parse_xid(const char *s, node_id *out)
{
    if (!s || !*s)
        return false;
    node_id v = {0, 0};
    for (; *s; s++) {
        int d = hex_value(*s);
        if (d < 0 || !push_hex_digit(&v, d))
            return false;
    }
    *out = v;
    return true;
}

void node_id_to_hex(node_id id, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)id.head, (unsigned long long)id.tail);
}

bool node_id_parse_hex(const char *s, node_id *out)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 32 || strspn(s, "0123456789abcdefABCDEF") != n)
        return false;
    return node_id_parse_xid(s, out);
}

bool node_id_equal(node_id a, node_id b)
{
    return a.head == b.head && a.tail == b.tail;
}

int node_id_cmp(const void *a, const void *b)
{
    const node_id *x = a, *y = b;
    if (x->head != y->head)
        return x->head < y->head ? -1 : 1;
    return (x->tail > y->tail) - (x->tail < y->tail);
}
