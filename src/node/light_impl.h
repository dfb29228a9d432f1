/* light_impl.h - what light.c offers the two halves of the light service: light_local.c
 * (datasets) and light_world.c (relays to the manager). Every function is thread-safe: calls
 * arrive on gRPC's server threads. */
#ifndef MANTA_LIGHT_IMPL_H
#define MANTA_LIGHT_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets.h"
#include "id.h"
#include "log.h"
#include "manager_client.h"
#include "rpc.h"

struct light_service;

/* Is (swarm, task) a task of this node? Fills its iteration/circular (may be NULL). */
bool light_task_lookup(struct light_service *ls, node_id swarm, node_id task, uint32_t *iteration,
                       uint32_t *circular);

/* The status the node last reported for the task (common.tasks.TaskStatus), 0 if unknown. */
int light_task_status(struct light_service *ls, node_id swarm, node_id task);

/* A copy of the datasets being served (release with datasets_release). */
void light_datasets_copy(struct light_service *ls, dataset_set *out);

/* The manager connection (for World relays), this node's ID, the node's log. Borrowed. */
manager_client *light_manager(struct light_service *ls);
node_id light_node_id(struct light_service *ls);
logger *light_log(struct light_service *ls);

/* Finish a call with a status whose message reads "<ERROR_ID_NAME>: <text>" (the reference's
 * form, e.g. "RESOURCE_ERROR: Dataset 'x' not found"). */
void light_fail(rpc_call *call, int code, const char *error_id_name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Handlers: `method` is the RPC name ("GetBinaryData"); each must finish the call. They read
 * the request(s) themselves with rpc_call_recv. */
void light_local_handle(struct light_service *ls, rpc_call *call, const char *method);
void light_world_handle(struct light_service *ls, rpc_call *call, const char *method);

#endif
