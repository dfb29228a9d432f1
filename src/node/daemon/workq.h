/* workq.h - a worker thread that runs blocking jobs (manager calls) off the event loop, in
 * order. The queue is bounded: when full, submitting fails and the caller decides (the node
 * logs and drops a heartbeat-type job, never a command answer). */
#ifndef MANTA_WORKQ_H
#define MANTA_WORKQ_H

#include <stdbool.h>
#include <stddef.h>

typedef struct workq workq;

/* A job: run(arg) on the worker thread, then free_arg(arg) (may be NULL). */
typedef void (*workq_fn)(void *arg);

/* Start the worker. capacity: maximum queued jobs. Returns owned (aborts on thread failure). */
workq *workq_start(size_t capacity);
/* Queue a job; takes ownership of arg (freed with free_arg even if refused). Returns false if
 * the queue is full or stopping. */
bool workq_submit(workq *q, workq_fn run, workq_fn free_arg, void *arg);
/* Jobs queued or running. */
size_t workq_pending(workq *q);
/* Wait up to timeout_ms for the queue to drain; true if it did. */
bool workq_drain(workq *q, long timeout_ms);
/* Stop: jobs not started are dropped (their free_arg runs), the running one finishes; joins. */
void workq_stop(workq *q);

#endif
