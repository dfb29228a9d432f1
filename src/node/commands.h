/* commands.h - what the manager asks of the node over MQTT. The command is the last
 * '/'-separated segment of the topic (any prefix works, as in the reference):
 * collect_information, stop_node, deploy_task, stop_task, stop_swarm. Unknown commands and
 * malformed payloads are reported to the manager with SendError (MQTT_ERROR) and never stop
 * the node. Runs on the event loop; blocking work goes to the worker. */
#ifndef MANTA_COMMANDS_H
#define MANTA_COMMANDS_H

#include <stddef.h>

struct node;

void commands_dispatch(struct node *n, const char *topic, const void *payload, size_t len);

#endif
