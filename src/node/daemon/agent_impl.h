/* agent_impl.h - what the daemon's two halves share: agent.c (context, startup, loop, stop)
 * and session.c (the MQTT session). Not for the other layers. */
#ifndef MANTA_AGENT_IMPL_H
#define MANTA_AGENT_IMPL_H

#include <stdint.h>

#include "agent.h"

#define TOPIC_SET_NODE_STATUS    "manager/set_node_status"
#define TOPIC_UPDATE_TASK_STATUS "manager/update_task_status"

/* Create the MQTT client (TLS, will, persistent session) for n->broker_host:port. */
int mqtt_setup(node *n, mt_error **err);
/* Have the loop watch the MQTT socket of the moment (for writing while data is queued). */
void watch_mqtt(node *n);
/* A broker reconnection after the next back-off delay (n->reconnect_timer). */
void schedule_reconnect(node *n);
/* Give up waiting for the session marker when its time is over (every loop turn). */
void marker_check(node *n, int64_t now);
/* A fresh run ID (the marker's payload) for this start. */
void new_run_id(node *n);

#endif
