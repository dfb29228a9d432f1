/* blake3.c - the BLAKE3 hash, written from the BLAKE3 specification; see blake3.h.
 *
 * Portable C without SIMD. The input is split into 1024-byte chunks; each chunk is hashed
 * block by block into a chaining value (CV), and the CVs form a binary tree whose left
 * subtrees are always complete. The hasher keeps the CVs of completed subtrees on a stack
 * and merges two of them whenever the total number of chunks says a subtree is complete.
 * The root node is compressed with the ROOT flag and an output block counter, which gives
 * output of any length.
 */
#include "blake3.h"

#include <string.h>

enum {
    B3_CHUNK_START = 1 << 0,
    B3_CHUNK_END = 1 << 1,
    B3_PARENT = 1 << 2,
    B3_ROOT = 1 << 3,
    B3_KEYED_HASH = 1 << 4,
    B3_DERIVE_KEY_CONTEXT = 1 << 5,
    B3_DERIVE_KEY_MATERIAL = 1 << 6,
};

static const uint32_t b3_iv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                                  0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

/* The message schedule: the word order of each of the 7 rounds (the permutation
 * 2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8 applied repeatedly). */
static const uint8_t b3_schedule[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t rotr32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint32_t load32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store32_le(uint8_t *p, uint32_t x)
{
    p[0] = (uint8_t)x;
    p[1] = (uint8_t)(x >> 8);
    p[2] = (uint8_t)(x >> 16);
    p[3] = (uint8_t)(x >> 24);
}

static void words_from_le_bytes(const uint8_t *bytes, uint32_t *words, size_t nwords)
{
    for (size_t i = 0; i < nwords; i++)
        words[i] = load32_le(bytes + 4 * i);
}

#define B3_G(a, b, c, d, x, y)                                                                     \
    do {                                                                                           \
        s[a] = s[a] + s[b] + (x);                                                                  \
        s[d] = rotr32(s[d] ^ s[a], 16);                                                            \
        s[c] = s[c] + s[d];                                                                        \
        s[b] = rotr32(s[b] ^ s[c], 12);                                                            \
        s[a] = s[a] + s[b] + (y);                                                                  \
        s[d] = rotr32(s[d] ^ s[a], 8);                                                             \
        s[c] = s[c] + s[d];                                                                        \
        s[b] = rotr32(s[b] ^ s[c], 7);                                                             \
    } while (0)

/* The compression function: all 16 words of the final state in out. */
static void b3_compress(const uint32_t cv[8], const uint32_t m[16], uint64_t counter,
                        uint32_t block_len, uint32_t flags, uint32_t out[16])
{
    uint32_t s[16] = {
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        b3_iv[0],
        b3_iv[1],
        b3_iv[2],
        b3_iv[3],
        (uint32_t)counter,
        (uint32_t)(counter >> 32),
        block_len,
        flags,
    };
    for (int r = 0; r < 7; r++) {
        const uint8_t *w = b3_schedule[r];
        /* columns */
        B3_G(0, 4, 8, 12, m[w[0]], m[w[1]]);
        B3_G(1, 5, 9, 13, m[w[2]], m[w[3]]);
        B3_G(2, 6, 10, 14, m[w[4]], m[w[5]]);
        B3_G(3, 7, 11, 15, m[w[6]], m[w[7]]);
        /* diagonals */
        B3_G(0, 5, 10, 15, m[w[8]], m[w[9]]);
        B3_G(1, 6, 11, 12, m[w[10]], m[w[11]]);
        B3_G(2, 7, 8, 13, m[w[12]], m[w[13]]);
        B3_G(3, 4, 9, 14, m[w[14]], m[w[15]]);
    }
    for (int i = 0; i < 8; i++) {
        out[i] = s[i] ^ s[i + 8];
        out[i + 8] = s[i + 8] ^ cv[i];
    }
}

#undef B3_G

/* Compress and keep only the new chaining value (first 8 words), in place. */
static void b3_compress_in_place(uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],
                                 uint64_t counter, uint32_t block_len, uint32_t flags)
{
    uint32_t m[16], out[16];
    words_from_le_bytes(block, m, 16);
    b3_compress(cv, m, counter, block_len, flags, out);
    memcpy(cv, out, 8 * sizeof(uint32_t));
}

/* The inputs of a compression whose result is not consumed yet: it becomes either a chaining
 * value (8 words) or, with the ROOT flag, output bytes. */
typedef struct b3_output {
    uint32_t cv[8];
    uint32_t block[16];
    uint64_t counter;
    uint32_t block_len;
    uint32_t flags;
} b3_output;

static void b3_output_cv(const b3_output *o, uint32_t cv[8])
{
    uint32_t out[16];
    b3_compress(o->cv, o->block, o->counter, o->block_len, o->flags, out);
    memcpy(cv, out, 8 * sizeof(uint32_t));
}

static void b3_output_root_bytes(const b3_output *o, uint8_t *dst, size_t len)
{
    uint64_t block_counter = 0;
    while (len > 0) {
        uint32_t words[16];
        uint8_t bytes[2 * B3_OUT_LEN];
        b3_compress(o->cv, o->block, block_counter, o->block_len, o->flags | B3_ROOT, words);
        for (int i = 0; i < 16; i++)
            store32_le(bytes + 4 * i, words[i]);
        size_t n = len < sizeof(bytes) ? len : sizeof(bytes);
        memcpy(dst, bytes, n);
        dst += n;
        len -= n;
        block_counter++;
    }
}

static void b3_parent_output(const uint32_t left[8], const uint32_t right[8], const uint32_t key[8],
                             uint8_t flags, b3_output *o)
{
    memcpy(o->cv, key, 8 * sizeof(uint32_t));
    memcpy(o->block, left, 8 * sizeof(uint32_t));
    memcpy(o->block + 8, right, 8 * sizeof(uint32_t));
    o->counter = 0;
    o->block_len = B3_BLOCK_LEN;
    o->flags = (uint32_t)flags | B3_PARENT;
}

/* ---- chunk state ---------------------------------------------------------------------- */

static void chunk_init(b3_chunk_state *c, const uint32_t key[8], uint64_t chunk_counter,
                       uint8_t flags)
{
    memcpy(c->cv, key, 8 * sizeof(uint32_t));
    c->chunk_counter = chunk_counter;
    memset(c->buf, 0, sizeof(c->buf));
    c->buf_len = 0;
    c->blocks_compressed = 0;
    c->flags = flags;
}

static size_t chunk_len(const b3_chunk_state *c)
{
    return (size_t)c->blocks_compressed * B3_BLOCK_LEN + c->buf_len;
}

static uint32_t chunk_start_flag(const b3_chunk_state *c)
{
    return c->blocks_compressed == 0 ? B3_CHUNK_START : 0;
}

/* Absorb up to the rest of the chunk; the caller never passes more than fits. The last block
 * always stays in buf because only the final block of a chunk gets CHUNK_END. */
static void chunk_update(b3_chunk_state *c, const uint8_t *in, size_t len)
{
    while (len > 0) {
        if (c->buf_len == B3_BLOCK_LEN) {
            b3_compress_in_place(c->cv, c->buf, c->chunk_counter, B3_BLOCK_LEN,
                                 c->flags | chunk_start_flag(c));
            c->blocks_compressed++;
            c->buf_len = 0;
            memset(c->buf, 0, sizeof(c->buf));
        }
        /* Whole blocks straight from the input, as long as more input follows them. */
        while (c->buf_len == 0 && len > B3_BLOCK_LEN) {
            b3_compress_in_place(c->cv, in, c->chunk_counter, B3_BLOCK_LEN,
                                 c->flags | chunk_start_flag(c));
            c->blocks_compressed++;
            in += B3_BLOCK_LEN;
            len -= B3_BLOCK_LEN;
        }
        size_t take = B3_BLOCK_LEN - c->buf_len;
        if (take > len)
            take = len;
        memcpy(c->buf + c->buf_len, in, take);
        c->buf_len = (uint8_t)(c->buf_len + take);
        in += take;
        len -= take;
    }
}

static void chunk_output(const b3_chunk_state *c, b3_output *o)
{
    memcpy(o->cv, c->cv, 8 * sizeof(uint32_t));
    words_from_le_bytes(c->buf, o->block, 16); /* buf is zero beyond buf_len */
    o->counter = c->chunk_counter;
    o->block_len = c->buf_len;
    o->flags = (uint32_t)c->flags | chunk_start_flag(c) | B3_CHUNK_END;
}

/* ---- hasher --------------------------------------------------------------------------- */

static void hasher_init(b3_hasher *h, const uint32_t key[8], uint8_t flags)
{
    memcpy(h->key, key, 8 * sizeof(uint32_t));
    chunk_init(&h->chunk, key, 0, flags);
    h->cv_stack_len = 0;
}

void b3_init(b3_hasher *h)
{
    hasher_init(h, b3_iv, 0);
}

void b3_init_keyed(b3_hasher *h, const uint8_t key[B3_KEY_LEN])
{
    uint32_t key_words[8];
    words_from_le_bytes(key, key_words, 8);
    hasher_init(h, key_words, B3_KEYED_HASH);
}

void b3_init_derive_key(b3_hasher *h, const char *context)
{
    b3_hasher ctx;
    hasher_init(&ctx, b3_iv, B3_DERIVE_KEY_CONTEXT);
    b3_update(&ctx, context, strlen(context));
    uint8_t context_key[B3_KEY_LEN];
    b3_finalize(&ctx, context_key, sizeof(context_key));
    uint32_t key_words[8];
    words_from_le_bytes(context_key, key_words, 8);
    hasher_init(h, key_words, B3_DERIVE_KEY_MATERIAL);
}

/* Push the CV of a completed chunk. total_chunks counts the chunks completed so far,
 * including this one: every trailing zero bit of it is a subtree that is now complete, so
 * merge that many CVs off the stack into parents first. */
static void hasher_add_chunk_cv(b3_hasher *h, uint32_t cv[8], uint64_t total_chunks)
{
    while ((total_chunks & 1) == 0) {
        b3_output parent;
        h->cv_stack_len--;
        b3_parent_output(h->cv_stack[h->cv_stack_len], cv, h->key, h->chunk.flags, &parent);
        b3_output_cv(&parent, cv);
        total_chunks >>= 1;
    }
    memcpy(h->cv_stack[h->cv_stack_len], cv, 8 * sizeof(uint32_t));
    h->cv_stack_len++;
}

void b3_update(b3_hasher *h, const void *data, size_t len)
{
    const uint8_t *in = data;
    while (len > 0) {
        /* Finish the current chunk only once more input arrives: the last chunk must stay
         * open because it may be the root. */
        if (chunk_len(&h->chunk) == B3_CHUNK_LEN) {
            b3_output o;
            uint32_t cv[8];
            chunk_output(&h->chunk, &o);
            b3_output_cv(&o, cv);
            uint64_t total_chunks = h->chunk.chunk_counter + 1;
            hasher_add_chunk_cv(h, cv, total_chunks);
            chunk_init(&h->chunk, h->key, total_chunks, h->chunk.flags);
        }
        size_t take = B3_CHUNK_LEN - chunk_len(&h->chunk);
        if (take > len)
            take = len;
        chunk_update(&h->chunk, in, take);
        in += take;
        len -= take;
    }
}

void b3_finalize(const b3_hasher *h, uint8_t *out, size_t out_len)
{
    b3_output o;
    chunk_output(&h->chunk, &o);
    /* Merge the open chunk with every CV on the stack, right to left; the final merge (or
     * the chunk itself if it is the only one) is the root. */
    for (size_t i = h->cv_stack_len; i > 0; i--) {
        uint32_t right[8];
        b3_output_cv(&o, right);
        b3_parent_output(h->cv_stack[i - 1], right, h->key, h->chunk.flags, &o);
    }
    b3_output_root_bytes(&o, out, out_len);
}

void b3_hash(const void *data, size_t len, uint8_t *out, size_t out_len)
{
    b3_hasher h;
    b3_init(&h);
    b3_update(&h, data, len);
    b3_finalize(&h, out, out_len);
}
