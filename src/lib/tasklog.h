/* tasklog.h - the task log blob of AddTaskLogs (reference-node.md 10.7): a 52-byte header
 * (swarm head/tail, node head/tail, task head/tail as u64, iteration and circular as u16, all
 * little-endian, no padding) followed by the zlib stream (RFC 1950) of the task's output. */
#ifndef MANTA_TASKLOG_H
#define MANTA_TASKLOG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "id.h"

#define TASKLOG_HEADER_LEN 52

typedef struct tasklog_header {
    node_id swarm, node, task;
    uint16_t iteration, circular;
} tasklog_header;

/* Build the blob (zlib level 9). Iteration/circular above 65535 are an error (the reference
 * cannot pack them either). Returns owned bytes or NULL with *err. */
uint8_t *tasklog_encode(const tasklog_header *h, const void *logs, size_t len, size_t *out_len,
                        mt_error **err);

/* Parse a blob: header and the decompressed logs (owned, NUL-terminated), at most max_out
 * bytes of output. */
int tasklog_decode(const void *blob, size_t len, tasklog_header *h, uint8_t **logs,
                   size_t *logs_len, size_t max_out, mt_error **err);

#endif
