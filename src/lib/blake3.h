/* blake3.h - the BLAKE3 hash (portable C, written from the BLAKE3 specification).
 *
 * Incremental hasher for the three modes (hash, keyed_hash, derive_key) with extendable
 * output. No allocation; the hasher lives wherever the caller puts it.
 */
#ifndef MANTA_BLAKE3_H
#define MANTA_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#define B3_KEY_LEN   32
#define B3_OUT_LEN   32
#define B3_BLOCK_LEN 64
#define B3_CHUNK_LEN 1024
#define B3_MAX_DEPTH 54 /* enough for 2^64 bytes of input */

typedef struct b3_chunk_state {
    uint32_t cv[8];
    uint64_t chunk_counter;
    uint8_t buf[B3_BLOCK_LEN];
    uint8_t buf_len;
    uint8_t blocks_compressed;
    uint8_t flags;
} b3_chunk_state;

typedef struct b3_hasher {
    uint32_t key[8];
    b3_chunk_state chunk;
    uint8_t cv_stack_len;
    uint32_t cv_stack[B3_MAX_DEPTH][8];
} b3_hasher;

void b3_init(b3_hasher *h);
void b3_init_keyed(b3_hasher *h, const uint8_t key[B3_KEY_LEN]);
/* context: a NUL-terminated, hard-coded, globally unique context string */
void b3_init_derive_key(b3_hasher *h, const char *context);
void b3_update(b3_hasher *h, const void *data, size_t len);
/* Write out_len bytes of output (any length; extendable output). Does not modify the hasher,
 * so more input may be added afterwards. */
void b3_finalize(const b3_hasher *h, uint8_t *out, size_t out_len);

/* One-shot: BLAKE3(data) truncated/extended to out_len bytes. */
void b3_hash(const void *data, size_t len, uint8_t *out, size_t out_len);

#endif
