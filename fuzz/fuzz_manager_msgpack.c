/* fuzz_manager_msgpack.c - libFuzzer target for the manager's msgpack reader (msgpack.c,
 * mp_numbers): the numbers the dashboard draws, read from result values that tasks store, so
 * any bytes at all.
 *
 * Input: the bytes of one value, read with the prefix "metrics" and again with a prefix of 250
 * bytes (so that the path limit is reached often).
 *
 * Invariants checked (abort() on violation): every reported path is NUL-terminated, shorter
 * than MP_PATH_MAX, and is the prefix itself or the prefix followed by '.'; mp_numbers returns
 * 0 or -1, the same for both prefixes, and the same numbers the second time on the same input;
 * a value it accepts is one whole value: with a byte more after it, it is refused. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally {
    const char *prefix;
    size_t plen;
    size_t count;
    uint64_t hash; /* of the paths and values, in order */
} tally;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void on_number(void *ctx, const char *path, double value)
{
    tally *t = ctx;
    const char *nul = memchr(path, '\0', MP_PATH_MAX);
    if (!nul)
        abort(); /* not NUL-terminated within MP_PATH_MAX bytes */
    size_t len = (size_t)(nul - path);
    if (len < t->plen || memcmp(path, t->prefix, t->plen) != 0)
        abort();
    if (len > t->plen && path[t->plen] != '.')
        abort();
    t->count++;
    mix(&t->hash, path, len + 1);
    if (isnan(value))
        value = NAN; /* one NaN, whatever its payload */
    mix(&t->hash, &value, sizeof(value));
}

static int run(const uint8_t *data, size_t size, const char *prefix, tally *t)
{
    *t = (tally){.prefix = prefix, .plen = strlen(prefix), .hash = 0xcbf29ce484222325ULL};
    int rc = mp_numbers(data, size, prefix, on_number, t);
    if (rc != 0 && rc != -1)
        abort();
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char long_prefix[251];
    if (!long_prefix[0])
        memset(long_prefix, 'p', sizeof(long_prefix) - 1);

    tally a, b, c;
    int rc = run(data, size, "metrics", &a);
    if (run(data, size, "metrics", &b) != rc || b.count != a.count || b.hash != a.hash)
        abort(); /* the same input reads the same */
    if (run(data, size, long_prefix, &c) != rc || c.count > a.count)
        abort(); /* a longer prefix: the same verdict, no more numbers */

    if (rc == 0) {
        uint8_t *more = malloc(size + 1);
        if (!more)
            abort();
        if (size)
            memcpy(more, data, size);
        more[size] = 0xc0; /* nil: a whole value, after the first */
        if (run(more, size + 1, "metrics", &b) != -1)
            abort();
        free(more);
    }
    return 0;
}
