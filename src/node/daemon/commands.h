/* commands.h - what the manager asks of the node over MQTT. The command is the last
 * '/'-separated segment of the topic (any prefix works, as in the reference):
 * collect_information, stop_node, deploy_task, stop_task, stop_swarm, and the node's own
 * node_session_marker (agent.c). Unknown commands and malformed payloads are reported to the
 * manager with SendError (MQTT_ERROR) and never stop the node; every payload may be empty
 * (payload NULL, len 0: libmosquitto's form of a 0-byte payload).
 *
 * Nothing received is dropped without a word: commands that arrive before the node can act on
 * them (during the broker connection at start, before the task table exists) are held, in
 * order, in a bounded queue and run once the node is ready (commands_release_held); what does
 * not fit is reported with SendError. A stop_node queued for an earlier run of the node is
 * ignored (logged); see agent.c, "stale commands". Runs on the event loop; blocking work goes
 * to the worker. */
#ifndef MANTA_COMMANDS_H
#define MANTA_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

struct node;

/* Bounds of the commands held while the node starts (count and payload bytes). */
#define COMMANDS_HOLD_MAX   256
#define COMMANDS_HOLD_BYTES (64u << 20)

/* Handle one message (topic and payload borrowed; payload may be NULL when len is 0). */
void commands_dispatch(struct node *n, const char *topic, const void *payload, size_t len);

/* The node can act on commands now (the task table exists): run the held ones in arrival
 * order, and every later one at once. */
void commands_release_held(struct node *n);

/* The node is going away without having become ready: log (and report) every held command,
 * then free them. Safe to call when nothing is held. */
void commands_discard_held(struct node *n);

/* ---- the hold queue (exposed for unit tests) ----------------------------------------------- */

typedef struct command_hold command_hold;

/* An empty queue keeping at most max_count commands and max_bytes of topic + payload bytes.
 * Returns owned. */
command_hold *command_hold_new(size_t max_count, size_t max_bytes);
/* Copy a command in (payload may be NULL when len is 0). false, nothing kept: past a bound. */
bool command_hold_push(command_hold *h, const char *topic, const void *payload, size_t len);
/* Take the oldest command out: *topic and *payload become owned by the caller (*payload is
 * never NULL, even for an empty payload). false when empty. */
bool command_hold_pop(command_hold *h, char **topic, void **payload, size_t *len);
size_t command_hold_count(const command_hold *h);
size_t command_hold_bytes(const command_hold *h);
void command_hold_free(command_hold *h); /* NULL is fine */

#endif
