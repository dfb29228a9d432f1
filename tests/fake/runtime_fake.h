/* runtime_fake.h - an in-memory runtime driver for unit tests: tasks "run" until the test
 * finishes them with runtime_fake_exit(); every call is recorded. */
#ifndef MANTA_RUNTIME_FAKE_H
#define MANTA_RUNTIME_FAKE_H

#include <stdbool.h>

#include "runtime.h"

runtime *runtime_fake_new(void);
/* The workdir of the last reclaim (NULL if none) and how many there were. Borrowed. */
const char *runtime_fake_reclaimed(runtime *rt, int *count);
/* Make the task created with this name exit with `code` (oom: killed by the memory limit). */
bool runtime_fake_exit(runtime *rt, const char *name, int code, bool oom);
/* Forget a task, as if its container was deleted behind the node's back. */
bool runtime_fake_lose(runtime *rt, const char *name);
/* Number of tasks currently running; total created; the last spec's env entry for KEY. */
int runtime_fake_running(runtime *rt);
int runtime_fake_created(runtime *rt);
const char *runtime_fake_env(runtime *rt, const char *name, const char *key);
/* Make the next create fail with this message (NULL: succeed). */
void runtime_fake_fail_next(runtime *rt, const char *msg);
/* Make prepare() of tasks with this image block until runtime_fake_release_pulls() (a slow
 * pull); NULL: none. */
void runtime_fake_slow_image(runtime *rt, const char *image);
void runtime_fake_release_pulls(runtime *rt);

/* Called before each removal, outside the fake's lock (ctx: the caller's); returning false
 * fails that removal, as if the node died just before it. NULL: none. */
void runtime_fake_on_remove(runtime *rt, bool (*fn)(void *ctx, const char *handle), void *ctx);
/* Containers the fake holds, in any state. */
int runtime_fake_count(runtime *rt);

/* Output a task "wrote". */
void runtime_fake_output(runtime *rt, const char *name, const char *text);

#endif
