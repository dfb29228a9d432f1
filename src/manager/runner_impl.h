/* runner_impl.h - what the runner's three files share: runner.c (starting, deploying,
 * advancing and ending runs, timers), runner_events.c (what nodes and tasks report or ask) and
 * runner_resume.c (the runs' state in the store, resuming after a restart). Not for other
 * modules: they use runner.h. Every function runs with m->lock held. */
#ifndef MANTA_MGR_RUNNER_IMPL_H
#define MANTA_MGR_RUNNER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runner.h"

enum inst_state { INST_DEPLOYED = 0, INST_DONE, INST_FAILED, INST_DROPPED, INST_STOPPED };

/* One task instance: a task deployed on a node for an iteration. */
typedef struct inst {
    size_t task;
    node_id node;
    char xid[NODE_XID_MAX + 1];
    uint32_t iteration;
    int state;
    bool running; /* the node said RUNNING */
    int64_t started_ms;
    int64_t logs_ms;    /* when its logs arrived (0: not yet); the outcome may follow on MQTT */
    uint64_t opened;    /* what it last opened with ScheduleTask (key of alias and nodes), or 0 */
    unsigned redeploys; /* deploys sent again because its node restarted before starting it */
} inst;

struct swarm_run {
    swarm_def *def;
    node_id id;
    char xid[NODE_XID_MAX + 1];
    int status;
    char detail[512];
    uint32_t iteration; /* highest iteration opened */
    inst *insts;
    size_t ninsts, cap;
    node_id **fixed; /* per task: the nodes chosen the first time */
    size_t *nfixed;
    bool dirty;    /* changed since it was last kept in the store (runner_tick keeps it) */
    uint8_t *pbuf; /* the buffer it is kept from (owned; run_persist) */
    size_t pbuf_cap;
    int64_t resumed_ms; /* resumed after a restart, and nodes not heard since may be gone */
    bool held;          /* resumed: placing what follows held_ti until its nodes are heard */
    size_t held_ti;
    uint32_t held_it;
};

/* runner.c */
/* Log a line about run r and pass it to m->progress. */
void run_progress(manager *m, swarm_run *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The run of a swarm, or NULL; the index of a task of r by its id, or -1. */
swarm_run *run_find(manager *m, node_id swarm);
ssize_t run_find_task(const swarm_run *r, node_id task);
/* Keep r in the store (its state and its swarm row), notify the user services, wake the loop. */
void run_save(manager *m, swarm_run *r);
/* One task instance fewer running on its node. */
void run_node_running_dec(manager *m, const inst *in);
/* End a running run with a status and why (stop_swarm sent to its nodes, saved). */
void run_end(manager *m, swarm_run *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Publish deploy_task of task ti for `iteration` to node xid (no bookkeeping: run_deploy_on). */
void run_publish_deploy(manager *m, const swarm_run *r, size_t ti, uint32_t iteration,
                        const char *xid);
/* Deploy task ti for `iteration` on a node: publish, and record the new instance. */
void run_deploy_on(manager *m, swarm_run *r, size_t ti, uint32_t iteration, node_id id,
                   const char *xid);
/* Place task ti for `iteration` (excluding nodes in `exclude`, at most want_max nodes unless
 * 0), deploy, remember fixed nodes. Returns 0, or -1 with *err. */
int run_place_and_deploy(manager *m, swarm_run *r, size_t ti, uint32_t iteration,
                         const node_id *exclude, size_t nexclude, size_t want_max, mt_error **err);
/* Has task ti an instance in `iteration`? */
bool run_deployed_in(const swarm_run *r, size_t ti, uint32_t iteration);
/* 1 = every instance of (ti, iteration) is over with at least one done, 0 = not yet, -1 =
 * over with none done. */
int run_task_complete(const swarm_run *r, size_t ti, uint32_t iteration);
/* Task ti may be complete in `iteration`: deploy what follows it when ready, end the run when
 * nothing is left. */
void run_advance(manager *m, swarm_run *r, size_t ti, uint32_t iteration);

/* runner_resume.c */
/* Keep the state of r in the store (object "run"); clears r->dirty. */
void run_persist(manager *m, swarm_run *r);
/* A resumed run waited one node timeout: its nodes still unheard of are lost. */
void run_resume_settle(manager *m, swarm_run *r);

#endif
