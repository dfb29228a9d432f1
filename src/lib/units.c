/* units.c - sizes; see units.h. */
#include "units.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

bool parse_size(const char *text, uint64_t *out)
{
    if (!text)
        return false;
    while (isspace((unsigned char)*text))
        text++;
    /* Decimal digits with an optional fraction; no hex, no exponent, no sign. */
    const char *p = text;
    while (isdigit((unsigned char)*p))
        p++;
    bool int_digits = p > text;
    if (*p == '.') {
        p++;
        const char *f = p;
        while (isdigit((unsigned char)*p))
            p++;
        if (!int_digits && p == f)
            return false;
    } else if (!int_digits) {
        return false;
    }
    double v = strtod(text, NULL);
    const char *end = p;
    if (!isfinite(v))
        return false;
    while (isspace((unsigned char)*end))
        end++;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (mult > 1 && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'b' || end[1] == 'B'))
        end += 2;
    else if (*end == 'b' || *end == 'B')
        end++;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return false;
    double bytes = floor(v * mult);
    if (bytes > 4611686018427387904.0) /* 2^62 */
        return false;
    *out = (uint64_t)bytes;
    return true;
}

char *format_size(uint64_t bytes, char *buf, unsigned buflen)
{
    static const char units[] = "KMGT";
    int u = -1;
    uint64_t v = bytes;
    while (v && v % 1024 == 0 && u < 3) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, buflen, "%llu", (unsigned long long)bytes);
    else
        snprintf(buf, buflen, "%llu%c", (unsigned long long)v, units[u]);
    return buf;
}
