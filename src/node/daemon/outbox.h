/* outbox.h - what a finished task still owes the manager, kept on disk until it is delivered:
 * its output (an AddTaskLogs blob, stamped when it was kept; the manager stores a repeated
 * delivery once, by its text) and its outcome (a packed TaskUpdate,
 * published on MQTT once the output is delivered, as the reference's completion signal comes
 * first). One file per item under the node's state folder, written tmp+fsync+rename; delivered
 * oldest first; bounded by total size and age (the oldest go first, with a warning). Items
 * survive restarts of the node. Thread-safe: the loop keeps and publishes, one worker delivers. */
#ifndef MANTA_NODE_OUTBOX_H
#define MANTA_NODE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct outbox outbox;

typedef struct outbox_item {
    char *name;      /* owned: the item's file name */
    int64_t kept_ms; /* wall clock when it was kept: the Logs timestamp */
    uint8_t *logs;   /* owned: the AddTaskLogs blob (len 0: none) */
    size_t logs_len;
    uint8_t *update; /* owned: packed common.tasks.TaskUpdate to publish after (len 0: none) */
    size_t update_len;
} outbox_item;

/* Open (creating) dir. max_bytes / max_age_s: bounds (0 = none). Returns owned or NULL. */
outbox *outbox_open(const char *dir, uint64_t max_bytes, int64_t max_age_s, mt_error **err);
void outbox_free(outbox *ob);

/* Keep one item (copies both parts). 0, or -1 with *err (the disk refused it). */
int outbox_put(outbox *ob, const uint8_t *logs, size_t logs_len, const uint8_t *update,
               size_t update_len, mt_error **err);

/* The oldest item not yet delivered: 1 with *it filled (free with outbox_item_clear), 0 when
 * there is none, -1 with *err (an unreadable item is set aside as <name>.bad and skipped). */
int outbox_oldest(outbox *ob, outbox_item *it, mt_error **err);
/* The item was delivered (or refused for good): forget it. */
void outbox_remove(outbox *ob, const outbox_item *it);
void outbox_item_clear(outbox_item *it);

/* Drop the oldest items beyond the bounds; returns how many were dropped (now_ms: wall). */
size_t outbox_prune(outbox *ob, int64_t now_ms);
/* Items and bytes waiting. */
size_t outbox_count(outbox *ob, uint64_t *bytes);

#endif
