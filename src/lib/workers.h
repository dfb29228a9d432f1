/* workers.h - a fixed pool of joinable worker threads with one FIFO, for blocking work kept off
 * an event loop. The node has two: its task steps (pull, create, start, inspect, stop, logs,
 * remove, folder removal: several threads, an unbounded queue, since the task table bounds what
 * it submits, at most one step per task) and its manager calls (one thread, so they keep their
 * order, and a bounded queue: a manager away for long makes submissions fail, not pile up).
 *
 * Threads: `n` workers, created by workers_start, joined by workers_stop; nothing detached.
 * A job runs on whichever worker is free; jobs queued while all are busy wait their turn.
 * Results go back to the caller's event loop by the job itself (the node's post queue).
 *
 * Shutdown: workers_stop refuses new jobs, lets the running ones finish (their own timeouts
 * bound them; a runtime can be told to cut blocking calls short, runtime_ops.cancel), runs
 * `discard` on every job that never started, and joins every thread. After it returns no
 * worker touches anything any more.
 */
#ifndef MANTA_WORKERS_H
#define MANTA_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct workers workers;

typedef void (*workers_fn)(void *arg);

/* Start n (>= 1) threads. capacity: the most jobs that may wait (0: no limit). Returns owned;
 * NULL if no thread could be created. */
workers *workers_start(int n, size_t capacity);
/* Queue run(arg). If the pool is stopping or its queue is full, returns false and runs
 * nothing: the caller still owns arg. `discard` (may be NULL) is called with arg instead of run
 * if the pool stops before the job started. */
bool workers_submit(workers *w, workers_fn run, workers_fn discard, void *arg);
/* Jobs queued or running. */
size_t workers_pending(workers *w);
/* Wait up to timeout_ms until no job is queued or running; true if none is. */
bool workers_drain(workers *w, long timeout_ms);
/* Threads in the pool (fixed). */
int workers_threads(const workers *w);
/* Refuse new jobs, discard queued ones, wait for running ones, join all threads, free. */
void workers_stop(workers *w);

#endif
