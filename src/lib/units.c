/* units.c - sizes, durations and bounded integers; see units.h. */
#include "units.h"

#include <ctype.h>
#include <errno.h>
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

/* Digits with an optional fraction at *p; advances *p past them. False if none. */
static bool scan_decimal(const char **p)
{
    const char *s = *p, *q = s;
    while (isdigit((unsigned char)*q))
        q++;
    bool int_digits = q > s;
    if (*q == '.') {
        const char *f = ++q;
        while (isdigit((unsigned char)*q))
            q++;
        if (!int_digits && q == f)
            return false;
    } else if (!int_digits) {
        return false;
    }
    *p = q;
    return true;
}

int parse_duration(const char *text, int64_t min_s, int64_t max_s, int64_t *out_s, mt_error **err)
{
    const char *t = text ? text : "";
    const char *p = t;
    while (isspace((unsigned char)*p))
        p++;
    const char *num = p;
    if (!scan_decimal(&p))
        return mt_error_set(err, MT_ERR_USAGE,
                            "'%s' is not a duration: use e.g. 3600, 90m, 12h or 30d.", t);
    /* Only digits and one '.' were scanned: strtod reads them exactly as a finite value. */
    double v = strtod(num, NULL);
    double mul = 1;
    switch (*p) {
    case 's':
        p++;
        break;
    case 'm':
        mul = 60;
        p++;
        break;
    case 'h':
        mul = 3600;
        p++;
        break;
    case 'd':
        mul = 86400;
        p++;
        break;
    default:
        break;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p || !isfinite(v))
        return mt_error_set(err, MT_ERR_USAGE,
                            "'%s' is not a duration: use e.g. 3600, 90m, 12h or 30d.", t);
    double secs = nearbyint(v * mul);
    /* Compare as doubles before converting: a cast of an out-of-range double is undefined. */
    if (!(secs >= (double)min_s))
        return mt_error_set(err, MT_ERR_USAGE,
                            "'%s' is shorter than the shortest allowed duration, %lld s.", t,
                            (long long)min_s);
    /* (double)max_s may round up to 2^63, which no int64_t holds: compare with that too */
    if (!(secs <= (double)max_s) || !(secs < 9223372036854775808.0))
        return mt_error_set(err, MT_ERR_USAGE,
                            "'%s' is longer than the longest allowed duration, %lld s.", t,
                            (long long)max_s);
    int64_t r = (int64_t)secs;
    if (r < min_s) /* (double)min_s may have rounded down */
        r = min_s;
    if (r > max_s)
        r = max_s;
    *out_s = r;
    return 0;
}

bool parse_int_range(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (!text)
        return false;
    while (isspace((unsigned char)*text))
        text++;
    if (!*text)
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno == ERANGE)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end || v < min || v > max)
        return false;
    *out = v;
    return true;
}
