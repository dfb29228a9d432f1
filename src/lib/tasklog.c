/* tasklog.c - the task log blob; see tasklog.h. */
#include "tasklog.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mem.h"

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint8_t *tasklog_encode(const tasklog_header *h, const void *logs, size_t len, size_t *out_len,
                        mt_error **err)
{
    uLongf bound = compressBound((uLong)len);
    uint8_t *out = xmalloc(TASKLOG_HEADER_LEN + bound);
    put_u64(out + 0, h->swarm.head);
    put_u64(out + 8, h->swarm.tail);
    put_u64(out + 16, h->node.head);
    put_u64(out + 24, h->node.tail);
    put_u64(out + 32, h->task.head);
    put_u64(out + 40, h->task.tail);
    out[48] = (uint8_t)h->iteration;
    out[49] = (uint8_t)(h->iteration >> 8);
    out[50] = (uint8_t)h->circular;
    out[51] = (uint8_t)(h->circular >> 8);
    uLongf clen = bound;
    if (compress2(out + TASKLOG_HEADER_LEN, &clen, logs ? logs : (const void *)"", (uLong)len, 9) !=
        Z_OK) {
        free(out);
        mt_error_set(err, MT_ERR_GENERIC, "cannot compress the task's logs");
        return NULL;
    }
    *out_len = TASKLOG_HEADER_LEN + clen;
    return out;
}

int tasklog_decode(const void *blob, size_t len, tasklog_header *h, uint8_t **logs,
                   size_t *logs_len, size_t max_out, mt_error **err)
{
    const uint8_t *p = blob;
    if (len < TASKLOG_HEADER_LEN + 2)
        return mt_error_set(err, MT_ERR_PARSE, "a task log blob needs at least %d bytes, got %zu",
                            TASKLOG_HEADER_LEN + 2, len);
    h->swarm.head = get_u64(p + 0);
    h->swarm.tail = get_u64(p + 8);
    h->node.head = get_u64(p + 16);
    h->node.tail = get_u64(p + 24);
    h->task.head = get_u64(p + 32);
    h->task.tail = get_u64(p + 40);
    h->iteration = (uint16_t)(p[48] | p[49] << 8);
    h->circular = (uint16_t)(p[50] | p[51] << 8);
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK)
        return mt_error_set(err, MT_ERR_GENERIC, "cannot initialise zlib");
    size_t cap = 4096, n = 0;
    uint8_t *out = xmalloc(cap + 1);
    z.next_in = (Bytef *)(p + TASKLOG_HEADER_LEN);
    z.avail_in = (uInt)(len - TASKLOG_HEADER_LEN);
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (n == cap) {
            if (cap >= max_out) {
                inflateEnd(&z);
                free(out);
                return mt_error_set(err, MT_ERR_PARSE, "task logs larger than %zu bytes", max_out);
            }
            cap = cap * 2 > max_out ? max_out : cap * 2;
            out = xrealloc(out, cap + 1);
        }
        z.next_out = out + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return mt_error_set(err, MT_ERR_PARSE, "the task log blob is not a complete zlib stream");
    }
    out[n] = '\0';
    *logs = out;
    *logs_len = n;
    return 0;
}
