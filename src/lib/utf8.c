/* utf8.c - UTF-8 checks; see utf8.h. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"

/* Length of the well-formed sequence at s[0..len), or 0 if it is ill-formed. */
static size_t seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = max;
    /* Step back over continuation bytes (at most three) to the start of the character that
     * straddles the cut; keep it only if it ends before the cut. */
    size_t back = 0;
    while (n > 0 && back < 3 && (u[n] & 0xC0) == 0x80) {
        n--;
        back++;
    }
    if (n < max) {
        size_t l = seq_len(u + n, len - n);
        if (l && n + l <= max)
            return n + l;
    }
    return (u[n] & 0xC0) == 0x80 ? max : n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t l = seq_len(u + i, len - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

char *utf8_lossy(const char *s, size_t len, size_t *out_len)
{
    if (!s)
        s = ""; /* len is 0: no pointer arithmetic on NULL */
    strbuf sb = STRBUF_INIT;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* well-formed bytes not yet copied start at i - run */
    while (i < len) {
        size_t l = seq_len(u + i, len - i);
        if (l) {
            i += l;
            run += l;
            continue;
        }
        sb_append(&sb, s + i - run, run);
        sb_append(&sb, "\xEF\xBF\xBD", 3); /* U+FFFD */
        run = 0;
        i++;
    }
    sb_append(&sb, s + i - run, run);
    if (out_len)
        *out_len = sb.len;
    return sb_steal(&sb);
}

void utf8_drop_partial_tail(char *s)
{
    size_t len = strlen(s);
    /* find the start of the last character among the last four bytes */
    const unsigned char *u = (const unsigned char *)s;
    size_t i = len, back = 0;
    while (i > 0 && back < 4) {
        i--;
        back++;
        if ((u[i] & 0xC0) != 0x80)
            break;
    }
    if (i < len && u[i] >= 0xC0 && !seq_len(u + i, len - i))
        s[i] = '\0';
}

char *utf8_copy(char *dst, size_t dst_size, const char *src)
{
    size_t n = utf8_cut(src, strlen(src), dst_size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return dst;
}

char *utf8_clean_copy(char *dst, size_t size, const char *src)
{
    const unsigned char *u = (const unsigned char *)(src ? src : "");
    size_t n = strlen((const char *)u), o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = seq_len(u + i, n - i);
        bool keep = k > 1 || (k == 1 && u[i] >= 0x20 && u[i] != 0x7F);
        size_t out = keep ? k : 1;
        if (o + out > size - 1)
            break;
        if (keep)
            memcpy(dst + o, u + i, k);
        else
            dst[o] = '?';
        o += out;
        i += k ? k : 1;
    }
    dst[o] = '\0';
    return dst;
}

char *utf8_clean_dup(const char *src)
{
    size_t n = strlen(src ? src : "") + 1;
    return utf8_clean_copy(xmalloc(n), n, src);
}
