/* heartbeat.h - the node's periodic reports, run by the loop (agent.c); defined in heartbeat.c
 * with agent_system_summary (agent.h).
 */
#ifndef MANTA_HEARTBEAT_H
#define MANTA_HEARTBEAT_H

#include <stdbool.h>

#include "agent.h"

/* Publish the system summary on manager/set_system_summary (QoS 0), when MQTT is up; a failure
 * is logged. Every mqtt.ping_interval. */
void agent_heartbeat(node *n);

/* Log disk, network and GPUs (GPUs at info level when their count changes, or `first`). Every
 * resources.monitor_interval. */
void agent_monitor(node *n, bool first);

#endif
