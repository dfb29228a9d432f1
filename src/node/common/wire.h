/* wire.h - building and packing the protobuf messages the node sends (protobuf-c types from
 * proto/), and small helpers around them. Builders fill caller-owned structs that may point
 * into other caller-owned memory; wire_pack() serialises any message into owned bytes. */
#ifndef MANTA_WIRE_H
#define MANTA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/informations.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "datasets.h"
#include "id.h"
#include "metrics.h"

/* Error ids of common.system.Error (reference-node.md 13.1). */
enum wire_error_id {
    WIRE_UNKNOWN_ERROR = 1,
    WIRE_GRPC_ERROR = 6,
    WIRE_CONFIGURATION_ERROR = 7,
    WIRE_VALIDATION_ERROR = 9,
    WIRE_CONNECTION_ERROR = 10,
    WIRE_TIMEOUT_ERROR = 11,
    WIRE_RESOURCE_ERROR = 12,
    WIRE_DOCKER_ERROR = 18,
    WIRE_NODE_ERROR = 19,
    WIRE_MQTT_ERROR = 22,
};

/* Serialise a message. Returns owned bytes, *len set. */
uint8_t *wire_pack(const ProtobufCMessage *m, size_t *len);

void wire_pair_id(Common__System__PairId *out, node_id id);

/* A packed common.tasks.TaskUpdate{swarm, node, task, iteration, circular, status} (owned). */
uint8_t *wire_task_update(node_id swarm, node_id node, node_id task, uint32_t iteration,
                          uint32_t circular, int status, size_t *len);
node_id wire_node_id(const Common__System__PairId *p); /* NULL -> 0 */
void wire_timestamp_now(Google__Protobuf__Timestamp *out);

/* A metrics snapshot with its sub-messages (owned by the struct; release with
 * wire_metrics_release). */
typedef struct wire_metrics {
    Common__Informations__MetricsSnapshot snap;
    Common__Informations__CpuMetrics cpu;
    Common__Informations__MemoryMetrics mem;
    Google__Protobuf__Timestamp ts;
    float *per_cpu; /* owned */
} wire_metrics;
void wire_metrics_fill(wire_metrics *w, const cpu_metrics *c, const mem_metrics *m);
void wire_metrics_release(wire_metrics *w);

/* Overviews of the datasets (pointers into `ds`, which must outlive the struct). */
typedef struct wire_overviews {
    Common__Informations__Overviews ov;
    Common__Informations__Overview *items; /* owned */
    Common__Informations__Overview **ptrs; /* owned */
} wire_overviews;
void wire_overviews_fill(wire_overviews *w, const dataset_set *ds);
void wire_overviews_release(wire_overviews *w);

/* Platform info (pointers into `p`). */
void wire_platform(Common__Informations__PlatformInfo *out, platform_info *p);

#endif
