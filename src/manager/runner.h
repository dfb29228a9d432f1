/* runner.h - swarm runs (swarm-model.md section 4): start tasks placed on eligible nodes at
 * iteration 0, advance along edges when every instance of a task has finished, open the next
 * iteration on ScheduleTask, end on StopSwarm, on a failure, or when the graph is done; a node
 * lost mid-run is replaced where placement allows ("any") or dropped ("all"), and the run
 * fails with a reason when nothing can carry on. Every function runs with m->lock held;
 * commands to nodes go through the outbox (mgr_publish). */
#ifndef MANTA_MGR_RUNNER_H
#define MANTA_MGR_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "mgr.h"
#include "swarmfile.h"

enum run_status { RUN_RUNNING = 0, RUN_COMPLETED, RUN_STOPPED, RUN_FAILED };
const char *run_status_name(int status); /* "RUNNING", ... */

/* Start a run of def (taken, even on failure). Writes the swarm xid to xid. Returns 0, or -1
 * with *err when it cannot start (no eligible node for a start task, store error). */
int runner_start(manager *m, swarm_def *def, char xid[NODE_XID_MAX + 1], mt_error **err);

/* Start a run of def (taken) as the swarm id, which the store already has (PENDING: a swarm
 * sent with the SDK, user_swarms.c). Same outcomes as runner_start. */
int runner_start_id(manager *m, swarm_def *def, node_id id, mt_error **err);

/* A task instance finished (the node published COMPLETED/FAILED, or runner_tick decided). */
void runner_task_finished(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                          bool failed, const char *why);
/* The logs of a task instance arrived (AddTaskLogs): the reference node's only completion
 * signal. The instance counts as finished when the node then publishes COMPLETED/FAILED, or,
 * for a node that never publishes outcomes (the reference), 2 s later (runner_tick). */
void runner_task_logs(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration);
/* Timers of the runner: what is due now (lock held). The event loop calls it on every wake-up
 * and sleeps until runner_next_due, or until something happens. */
void runner_tick(manager *m);
/* When runner_tick has something to do next (monotonic ms), 0 if nothing is timed: a resumed
 * run's wait for its nodes, an instance's grace after its logs. Lock held. */
int64_t runner_next_due(manager *m);
/* A task instance is running (progress only). */
void runner_task_running(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration);
/* ScheduleTask from a running task. Returns 0, or -1 with *err: why, its status the rpc code
 * to refuse the call with. */
int runner_schedule(manager *m, node_id swarm, node_id caller_task, const char *alias,
                    const node_id *nodes, size_t nnodes, mt_error **err);
/* StopSwarm from a running task. Returns 0, or -1 with *err (status: the rpc code). */
int runner_stop(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                mt_error **err);
/* A node reported an error about a task (SendError). */
void runner_task_error(manager *m, node_id swarm, node_id node, node_id task, uint32_t iteration,
                       const char *content);
/* A node is gone. */
void runner_node_lost(manager *m, node_id node);
/* Stop a run from the admin interface / shutdown. */
int runner_cancel(manager *m, const char *xid, const char *why);

/* Status of a run: returns the status, or -1 if unknown; detail copied (may be NULL). */
int runner_status(manager *m, const char *xid, uint32_t *iteration, char *detail,
                  size_t detail_size);
/* Where a run's tasks are in its current iteration (the dashboard): fn is called for each
 * instance of that iteration with the task's alias, the node's xid and the instance's state
 * (DEPLOYED, RUNNING, DONE, FAILED, DROPPED, STOPPED; all borrowed for the call). Returns the
 * iteration, or -1 when the swarm has no run here. Lock held. */
typedef void (*runner_inst_fn)(void *ctx, const char *task_alias, const char *node_xid,
                               const char *state);
int64_t runner_current(manager *m, node_id swarm, runner_inst_fn fn, void *ctx);
/* Alias of a task of a run (borrowed) or NULL. */
const char *runner_task_alias(manager *m, node_id swarm, node_id task);
/* Take up again every run the store shows RUNNING (after a restart of the manager): its
 * graph, modules and state come from the store; deploys that may not have left are sent
 * again; instances on nodes not heard from within node_timeout are treated as lost. A run
 * that cannot resume is marked FAILED with the reason. Lock held; `serve` calls it once. */
void runner_resume_all(manager *m);
/* Keep the state of every changed run in the store (before its commands are published). */
void runner_keep(manager *m);
/* How many task instances are deployed and not finished on a node (for a node known again). */
int runner_node_running(manager *m, node_id node);
/* Free every run (at shutdown); the store keeps running ones RUNNING, to be resumed. */
void runner_free_all(manager *m);

#endif
