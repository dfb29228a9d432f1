/* swarmfile.h - a swarm file (TOML) read into a swarm definition: globals (msgpack-encoded),
 * tasks with module archive, image, placement and datasets, and the edges between them.
 *
 * Format (docs/swarm-file.md is the reference):
 *
 *   name = "fedavg"                       # optional, default: the file's stem
 *   [globals]                             # each value msgpack-encoded as the SDK's
 *   hyperparameters = { epochs = 1, lr = 0.5 }   # dict_to_bytes would (maps, arrays, ints,
 *   [global_files]                        # floats, strings, bools; datetimes as strings)
 *   init_params = "init.msgpack"          # raw bytes of a file (already msgpack), relative
 *                                         # to the swarm file
 *   [[tasks]]
 *   module = "worker"        # worker.py or worker/ (package), relative to the swarm file
 *   alias = "worker"         # default: the module name (= the path's stem)
 *   image = "manta-task:bookworm"   # required
 *   method = "all"           # "all" | "any"
 *   fixed = false
 *   maximum = -1             # integer count (-1 = no cap) or a float fraction in (0, 1]
 *   specified_ids = []       # node xids
 *   excepted_ids = []
 *   gpu = false
 *   datasets = ["mnist"]     # dataset names a node must report to be eligible
 *   after = ["previous"]     # aliases of the tasks this one follows (edges, FINISHED)
 *
 * Task ids follow the SDK (swarm-model.md 2.1): the module name if it parses as hex below
 * 2^128, else the first 16 bytes of BLAKE3(name). Two tasks with the same module name are
 * refused (they would be one graph node). Edges must name known aliases and form no cycle
 * (loops are made at run time by ScheduleTask).
 */
#ifndef MANTA_MGR_SWARMFILE_H
#define MANTA_MGR_SWARMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "id.h"

typedef struct swarm_global {
    char *tag;
    uint8_t *data; /* msgpack bytes */
    size_t len;
} swarm_global;

typedef struct swarm_task_def {
    char *alias;
    char *name;        /* module name: the stem of `module` */
    char *module_path; /* absolute path of the .py file or package folder */
    node_id task_id;   /* from name, as the SDK derives it */
    char *image;
    bool method_all; /* true: "all", false: "any" */
    bool fixed;
    bool max_is_fraction;
    int32_t maximum;      /* when !max_is_fraction: -1 = no cap */
    double max_fraction;  /* when max_is_fraction: (0, 1] */
    char **specified_ids; /* NULL-terminated xids (normalised lower-case), may be empty */
    char **excepted_ids;
    bool gpu;
    char **datasets;     /* NULL-terminated */
    size_t *prev, nprev; /* indices of the tasks this one follows */
    size_t *next, nnext; /* indices of the tasks that follow this one */
    size_t order;        /* depth from the start tasks (0 = start task) */
    uint8_t *pyz;        /* the module archive (task-contract.md 1.1), built by the loader */
    size_t pyz_len;
    node_id module_id; /* the SDK's upload id, or (swarm files) BLAKE3 of pyz */
    char *network;     /* the swarm network the task joins, or NULL */
    bool *next_result; /* per next[i]: the edge is Condition.RESULT (NULL = all FINISHED) */
} swarm_task_def;

/* A swarm's network (the SDK's add_network): name and driver. */
typedef struct swarm_network {
    char *name, *driver;
} swarm_network;

/* The one graph model: a swarm file (swarmfile_load) and a swarm sent with the SDK
 * (graph.c: SendSwarm's graph, its modules and networks) both become a swarm_def, which the
 * runner runs. */
typedef struct swarm_def {
    char *name;
    swarm_global *globals;
    size_t nglobals;
    swarm_task_def *tasks; /* in file order */
    size_t ntasks;
} swarm_def;

/* Read, validate and pack a swarm file. Errors name the file, line and key and say what to
 * change. Returns owned or NULL with *err. */
swarm_def *swarmfile_load(const char *path, mt_error **err);
void swarm_def_free(swarm_def *def); /* takes def; NULL is fine */

/* Index of the task with this alias, or -1. */
ssize_t swarm_def_find_alias(const swarm_def *def, const char *alias);

#endif
