/* units.h - sizes and durations as people write them in configuration files. */
#ifndef MANTA_UNITS_H
#define MANTA_UNITS_H

#include <stdbool.h>
#include <stdint.h>

/* "100M", "10m", "512K", "1G", "1.5G", "100MB", "100MiB", "4096" (bytes). K/M/G/T are powers
 * of 1024, case-insensitive, optional "B"/"iB" suffix. Returns false if malformed or > 2^62. */
bool parse_size(const char *text, uint64_t *out);

/* Format bytes compactly as parse_size reads them back exactly: "100M", "4G", "1536K", "17".
 * Writes into buf (at least 24 bytes). Returns buf. */
char *format_size(uint64_t bytes, char *buf, unsigned buflen);

#endif
