/* light_impl.h - what light.c offers the two halves of the light service: light_local.c
 * (datasets) and light_world.c (relays to the manager). Every function is thread-safe: calls
 * arrive on gRPC's server threads. */
#ifndef MANTA_LIGHT_IMPL_H
#define MANTA_LIGHT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets.h"
#include "id.h"
#include "log.h"
#include "manager_client.h"
#include "rpc.h"

struct light_service;

/* Is (swarm, task) a task of this node? Fills its iteration/circular (may be NULL). While the
 * node is adopting its tasks (light_host.adopting), an unknown one is waited for. */
bool light_task_lookup(struct light_service *ls, node_id swarm, node_id task, uint32_t *iteration,
                       uint32_t *circular);

/* The longest a call from an unknown task waits for the node to adopt the tasks of its last run
 * (light_host.adopting): the start of a node is seconds at most; past this it is refused. */
#define LIGHT_ADOPT_WAIT_MS 30000

/* The status the node last reported for the task (common.tasks.TaskStatus), 0 if unknown. */
int light_task_status(struct light_service *ls, node_id swarm, node_id task);

/* ---- fairness: calls in progress per task -------------------------------------------------------
 *
 * A task is a (swarm, task) pair. Each may have at most LIGHT_TASK_CALLS calls in progress on the
 * light service (Local and World together): a stuck or greedy task cannot take the threads other
 * tasks need. The SDK's synchronous API makes one call at a time, its async API a few. A call is
 * counted from the moment its request names the task until its handler returns; calls over the
 * cap are refused at once (light_busy_text says why). */
#define LIGHT_TASK_CALLS 8

/* A counted call (zero-initialise; release with light_slot_release, a cleanup function). */
typedef struct light_slot {
    struct light_service *ls;
    node_id swarm, task;
    bool held;
} light_slot;

/* Count one call of (swarm, task). Returns true with *slot held, false (nothing held) if the task
 * already has LIGHT_TASK_CALLS calls in progress. */
bool light_slot_take(struct light_service *ls, node_id swarm, node_id task, light_slot *slot);
/* End the call's count (no-op if not held). */
void light_slot_release(light_slot *slot);
#define cleanup_slot __attribute__((cleanup(light_slot_release)))

/* The refusal of a call over the cap: a full sentence into buf (always NUL-terminated).
 * `consumed`: part of the call's stream was read, so the task must not retry it blindly. */
void light_busy_text(char *buf, size_t len, bool consumed);

/* The HTTP/2 window the light service offers tasks (rpc_server_opts.window_bytes, fixed): what
 * a task's idle connection keeps allocated follows it, and values move over loopback as fast as
 * with 4 MiB (bench/README.md). */
#define LIGHT_WINDOW (512 << 10)

/* After a call that moved a large message (>= LIGHT_TRIM_BYTES): give the memory gRPC and the
 * relay freed back to the system (malloc keeps freed buffers otherwise) - not at once but once
 * no large call has ended for LIGHT_TRIM_DELAY_MS, on the light service's own thread: the calls
 * of a burst (a SetGlobal and the GetGlobal after it) reuse the pages the first one faulted in
 * instead of each faulting in fresh ones, and no call waits for the trim (light.c). */
#define LIGHT_TRIM_BYTES    (16u << 20)
#define LIGHT_TRIM_DELAY_MS 1500
void light_trim(struct light_service *ls);
/* The channel World's streams relay over (borrowed): a connection to the manager of their own,
 * closed once idle (by the trimmer), so the spare read buffers of a large value go with it. NULL
 * with *st (UNAVAILABLE) if gRPC cannot make it. Release with light_relay_release after the
 * stream is freed (not after a NULL). */
rpc_channel *light_relay_channel(struct light_service *ls, rpc_status *st);
void light_relay_release(struct light_service *ls);

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

/* ---- World's client streams, one message at a time (light_world.c) ---------------------------
 *
 * A message of AddTaskResult or SetGlobal rewritten for the manager: every field but the value
 * re-packed for the manager's message (common.results.Result / GlobalUpdate: this node's id, the
 * task's iteration), then the value, moved in the buffer it was received in when it is the last
 * field (as the SDK sends it). Exposed for fuzz/fuzz_node_world_rewrite.c. */
typedef struct light_world_msg {
    uint8_t *buf; /* owned; the message is out[0..len) inside it */
    uint8_t *out;
    size_t len;
    node_id swarm, task; /* whose message it is */
    /* A large message is not copied out of gRPC's buffers: then the message for the manager is
     * out[0..len) (every field but the value, and the value's field header) followed by tail's
     * bytes from `from` (the value). NULL otherwise (always from light_world_rewrite). */
    rpc_msg *tail;
    size_t from;
} light_world_msg;

/* Rewrite one received message of World.<method> (msg taken over: zeroed). Returns 1 with *out
 * (free out->buf), -1 after failing the call (malformed message, unknown task), 0 (nothing
 * done) if method is not "AddTaskResult" or "SetGlobal". */
int light_world_rewrite(struct light_service *ls, rpc_call *call, const char *method,
                        rpc_bytes *msg, light_world_msg *out);

#endif
