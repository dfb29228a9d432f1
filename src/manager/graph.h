/* graph.h - the Manta SDK's swarm graph (common.swarms.Graph, swarm-model.md section 2) read
 * into the runner's swarm_def, and a swarm_def written back as a Graph: the one graph model of
 * swarms sent with the SDK and of swarm files. */
#ifndef MANTA_MGR_GRAPH_H
#define MANTA_MGR_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/swarms.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "err.h"
#include "swarmfile.h"

#define GRAPH_TASKS_MAX 256
#define GRAPH_TEXT_MAX  256 /* bytes of an alias, a name, a tag, a network or dataset name */

/* Look up an uploaded module: 1 with *mod owned (free with protobuf_c_message_free_unpacked),
 * 0 unknown, -1 error (*err set). */
typedef int (*graph_module_fn)(void *ctx, node_id module_id, Common__Tasks__Module **mod,
                               mt_error **err);

/* Check g and build its swarm_def (tasks in graph order, module archives included when
 * with_programs). nets: the swarm's networks, checked against each Task.network when
 * check_networks. Returns owned, or NULL with *err: why the graph was refused, a sentence
 * naming the task and what to change, its status the rpc code (INVALID_ARGUMENT, NOT_FOUND,
 * FAILED_PRECONDITION, INTERNAL). */
swarm_def *graph_to_def(const Common__Swarms__Graph *g, const char *name, graph_module_fn fn,
                        void *ctx, const Common__System__Networks *nets, bool check_networks,
                        bool with_programs, mt_error **err);

/* def as a packed common.swarms.Graph (owned; *len set). */
uint8_t *graph_pack(const swarm_def *def, size_t *len);

/* True when text is 1..GRAPH_TEXT_MAX bytes of UTF-8 without control characters. */
bool graph_text_ok(const char *text);

#endif
