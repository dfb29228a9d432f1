/* placement.h - which nodes run a graph task (swarm-model.md section 3). Pure logic: the
 * caller passes a snapshot of the nodes; nothing here touches the network or the store. */
#ifndef MANTA_MGR_PLACEMENT_H
#define MANTA_MGR_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "id.h"
#include "swarmfile.h"

typedef struct placement_node {
    node_id id;
    char xid[NODE_XID_MAX + 1];
    bool connected;
    bool has_gpu;
    const char *const *datasets; /* NULL-terminated names the node reported, borrowed */
    unsigned running;            /* task instances running there now (load, for "any") */
} placement_node;

/* Choose the nodes for task t.
 * - eligible: connected, not in excepted_ids, in specified_ids if that list is non-empty,
 *   has every dataset of t->datasets, has a GPU if t->gpu;
 * - if t->fixed and `previous` (the nodes chosen for this task in an earlier iteration) is
 *   non-empty: the previous nodes that are still eligible, in the same order (if none is
 *   left, choose afresh as below);
 * - "all": every eligible node; "any": eligible nodes ordered by fewest `running`, ties by
 *   xid; then the cap: maximum >= 0 -> at most maximum (0 means "any" picks 1, "all" no cap
 *   as the SDK's None), fraction f -> at most ceil(f * eligible) and at least 1; "any" with
 *   maximum -1 picks 1.
 * Writes the chosen indices (into nodes[]) to out (capacity n) and their count to *nout.
 * Returns 0, or -1 with *err when no node is eligible; the message says why for each
 * rule that excluded nodes ("task 'worker' needs dataset 'mnist', which no connected node
 * has: connect a node that maps it, or remove it from the task's datasets."). */
int placement_choose(const swarm_task_def *t, const placement_node *nodes, size_t n,
                     const node_id *previous, size_t nprevious, size_t *out, size_t *nout,
                     mt_error **err);

#endif
