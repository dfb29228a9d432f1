/* light.h - the light service (node.light_service.Local and .World) that running tasks call.
 * It binds where only the node's tasks can reach it (network.light_service_host, loopback by
 * default) on a kernel-chosen port unless one is configured (binding port 0: no
 * bind-test-then-close race), and answers only requests that carry the (swarm, task) of a task
 * this node is running (the reference serves anyone). Each task may have LIGHT_TASK_CALLS (8)
 * calls in progress at once (light_impl.h); the server has room for every task at its cap. */
#ifndef MANTA_LIGHT_H
#define MANTA_LIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets.h"
#include "err.h"
#include "id.h"
#include "log.h"
#include "manager_client.h"

struct light_service;

/* What the light service needs of the node, borrowed for the service's life: it does not know
 * the daemon (the build gives this layer no path to it). */
typedef struct light_host {
    logger *log;
    manager_client *mc;    /* the World relays' calls to the manager */
    node_id id;            /* this node */
    const char *state_dir; /* tasks.state_dir: where the port is remembered (NULL/"": nowhere) */
    const char *host;      /* network.light_service_host */
    int port;              /* network.light_service_port; 0: the last run's if free, else any */
    int max_tasks;         /* resources.max_concurrent_tasks: sizes the server's call threads */
    const dataset_set *datasets; /* served from the start (copied) */
    /* The node is about to adopt the tasks of its last run (it restarted): until
     * light_tasks_known(), a call from a task the service does not know waits for the adoption
     * (at most LIGHT_ADOPT_WAIT_MS) instead of being refused as a stranger's. */
    bool adopting;
} light_host;

/* malloc set up so memory the light service's large values used can be given back: one arena
 * for every thread (M_ARENA_MAX 1). glibc gives each thread that contends for the heap its
 * own arena (up to 8 per core), and malloc_trim never gives back the free top of a thread's
 * arena, which after a 16 MiB value holds up to 2 x 16 MiB (the dynamic trim threshold); in
 * one arena the trim gives back all free memory, and one thread's freed buffers serve the
 * next thread's. Call first thing in main, before any thread starts (arenas are picked at a
 * thread's first malloc). */
void light_memory_setup(void);

/* Start serving; *port receives the bound port. Returns owned or NULL with *err. */
struct light_service *light_start(const light_host *h, int *port, mt_error **err);
void light_stop(struct light_service *ls);

/* The tasks the service answers for, with the iteration/circular results are filed under.
 * Thread-safe. */
void light_task_set(struct light_service *ls, node_id swarm, node_id task, uint32_t iteration,
                    uint32_t circular, int status);
void light_task_clear(struct light_service *ls, node_id swarm, node_id task);
/* Every task the node runs is now set: calls waiting for the adoption (light_host.adopting) are
 * answered, and from now on a call from an unknown task is refused at once. Thread-safe. */
void light_tasks_known(struct light_service *ls);

/* The datasets served (copied; replaced on SIGHUP). Thread-safe. */
void light_set_datasets(struct light_service *ls, const dataset_set *ds);

#endif
