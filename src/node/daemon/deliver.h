/* deliver.h - a finished task's output and outcome, from the task table to the manager through
 * the outbox (outbox.h): kept on disk first, then delivered in order by one pass at a time on
 * the manager-call worker (agent.h): AddTaskLogs stamped with when the output was kept (a repeat
 * after a crash carries the same text, which the manager stores once), then the
 * outcome published on MQTT from the loop. A pass that meets an unreachable manager ends and
 * the next starts after a back-off; nothing waits on the loop. */
#ifndef MANTA_NODE_DELIVER_H
#define MANTA_NODE_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "tasklog.h"

/* Open the node's outbox (<state_dir>/<node xid>/outbox) with the configured bounds. */
int deliver_open(node *n, mt_error **err);
/* The task table's keep_output hook (ctx = node). Any thread. */
int deliver_keep(void *ctx, const uint8_t *blob, size_t len, const tasklog_header *hdr,
                 int final_status, mt_error **err);
/* On the loop, once a second: start a delivery pass when one is due (a pass first drops what
 * is past the bounds). */
void deliver_tick(node *n, int64_t now_ms);
/* Nothing left to deliver, or the manager cannot be reached now (shutdown need not wait). */
bool deliver_settled(node *n);
/* Whether an item whose AddTaskLogs ended with this status stays in the outbox for a later pass
 * (true) or is dropped. Only statuses that mean the manager refused the content itself drop it;
 * a manager going away mid-call (CANCELLED from its shutdown, UNAVAILABLE, INTERNAL, ...) keeps
 * it: the manager stores a repeat once. The outbox's age and size bounds end a hopeless wait. */
bool deliver_retry_later(int rpc_code);
/* Forget the outbox (after the worker has stopped). Items stay on disk for the next run. */
void deliver_close(node *n);

#endif
