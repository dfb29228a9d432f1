/* units.h - sizes and durations as people write them in configuration files. */
#ifndef MANTA_UNITS_H
#define MANTA_UNITS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* "100M", "10m", "512K", "1G", "1.5G", "100MB", "100MiB", "4096" (bytes). K/M/G/T are powers
 * of 1024, case-insensitive, optional "B"/"iB" suffix. Returns false if malformed or > 2^62. */
bool parse_size(const char *text, uint64_t *out);

/* Format bytes compactly as parse_size reads them back exactly: "100M", "4G", "1536K", "17".
 * Writes into buf (at least 24 bytes). Returns buf. */
char *format_size(uint64_t bytes, char *buf, unsigned buflen);

/* A duration as people write it on a command line: "3600", "3600s", "90m", "12h", "30d",
 * "1.5h" (decimal digits with an optional fraction, then at most one unit letter s/m/h/d;
 * no sign, exponent, hex, "inf" or "nan"). The value is rounded to the nearest whole second
 * and must lie in [min_s, max_s]. Returns 0 with *out_s set, or -1 with *err saying what is
 * wrong (MT_ERR_USAGE); *out_s is untouched on failure. No float-to-integer conversion
 * happens outside the range, so any text is safe. */
int parse_duration(const char *text, int64_t min_s, int64_t max_s, int64_t *out_s, mt_error **err);

/* A decimal integer in [min, max] (optional sign, surrounding white space allowed, nothing
 * else). Returns false if malformed or out of range; *out untouched then. */
bool parse_int_range(const char *text, int64_t min, int64_t max, int64_t *out);

#endif
