/* fuzz_units.c - libFuzzer target for the parsers of command-line and configuration numbers
 * (durations as `--ttl` takes them, bounded integers, sizes) and for the UTF-8 helpers.
 *
 * Invariants checked (abort() on violation): an accepted duration or integer lies in the
 * bounds asked for; utf8_lossy always gives well-formed text, equal to its input when that was
 * well-formed; utf8_cut never exceeds its limit and never splits a character of well-formed
 * text. UBSan catches float-to-integer overflows in the parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "units.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cleanup_free char *text = xstrndup((const char *)data, size);

    int64_t secs = -1;
    mt_error *err = NULL;
    if (parse_duration(text, 1, 100LL * 366 * 86400, &secs, &err) == 0) {
        if (secs < 1 || secs > 100LL * 366 * 86400)
            abort();
    } else if (!err || !*mt_error_msg(err)) {
        abort();
    }
    mt_error_free(&err);
    if (parse_duration(text, INT64_MIN, INT64_MAX, &secs, NULL) == 0 && secs < 0)
        abort();

    int64_t v = 0;
    if (parse_int_range(text, -5, 1000, &v) && (v < -5 || v > 1000))
        abort();
    uint64_t bytes = 0;
    if (parse_size(text, &bytes) && bytes > ((uint64_t)1 << 62))
        abort();

    size_t n = 0;
    cleanup_free char *fixed = utf8_lossy((const char *)data, size, &n);
    if (!utf8_valid(fixed, n))
        abort();
    bool valid = utf8_valid((const char *)data, size);
    if (valid && (n != size || memcmp(fixed, data, size) != 0))
        abort();
    for (size_t max = 0; max <= size && max < 64; max++) {
        size_t c = utf8_cut((const char *)data, size, max);
        if (c > max)
            abort();
        if (valid && !utf8_valid((const char *)data, c))
            abort();
    }
    return 0;
}
