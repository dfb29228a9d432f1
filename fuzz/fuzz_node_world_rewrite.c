/* fuzz_node_world_rewrite.c - libFuzzer target for the World relay's in-place rewrite of a
 * task's client-stream messages (light_world.c, light_world_rewrite: what cs_next does with
 * each message a task sends on World.AddTaskResult and World.SetGlobal before relaying it to
 * the manager).
 *
 * Each input is one received message; it goes through the rewrite of both methods (as a
 * node.light_service.LightResult and as a SetGlobalRequest). Everything in light_world.c runs
 * as in the node: the fast path that keeps the value where it was received (the message's last
 * field), the full unpack otherwise, the task check, the new header and the move of the value.
 * Not covered: the gRPC calls around it (receiving, relaying to the manager) and the light
 * service's registry (light.c), which is replaced below by a fixed table of two known tasks and
 * a light_fail that records the failure instead of finishing a gRPC call.
 *
 * Invariants checked (abort() on violation), with the input unpacked whole by protobuf-c as the
 * reference: a message that does not unpack is refused (INVALID_ARGUMENT), one naming an
 * unknown task is refused (FAILED_PRECONDITION), and every refusal fails the call exactly once;
 * otherwise the rewrite succeeds and its output unpacks as the manager's message
 * (common.results.Result / GlobalUpdate) with the same swarm, task, tag and value bytes, this
 * node's id and the task's iteration. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "light_impl.h"
#include "mem.h"
#include "wire.h"

#include "common/results.pb-c.h"
#include "node/light_service.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the light service's registry, replaced (light.c is not linked) ------------------------ */

static const node_id SELF = {0x0123456789abcdefull, 0xfedcba9876543210ull};

/* Known tasks: (swarm A, task B) and (swarm B, task A), so that a message is about a known task
 * whichever of its first two fields is the swarm (they are swapped between the two methods). */
static const struct {
    node_id swarm, task;
    uint32_t iteration;
} KNOWN[] = {{{0x88d82e8abd979fbbull, 0x217f37f22fcbf9a6ull}, {0x1ull, 0x2ull}, 7},
             {{0x1ull, 0x2ull}, {0x88d82e8abd979fbbull, 0x217f37f22fcbf9a6ull}, 300}};

static struct {
    int calls; /* light_fail calls for the current message */
    int code;
} F;

bool light_task_lookup(struct light_service *ls, node_id swarm, node_id task, uint32_t *iteration,
                       uint32_t *circular)
{
    (void)ls;
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (node_id_equal(KNOWN[i].swarm, swarm) && node_id_equal(KNOWN[i].task, task)) {
            if (iteration)
                *iteration = KNOWN[i].iteration;
            if (circular)
                *circular = 0;
            return true;
        }
    return false;
}

void light_fail(rpc_call *call, int code, const char *error_id_name, const char *fmt, ...)
{
    (void)call;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n <= 0 || !*error_id_name)
        abort();
    F.calls++;
    F.code = code;
}

node_id light_node_id(struct light_service *ls)
{
    (void)ls;
    return SELF;
}

logger *light_log(struct light_service *ls)
{
    (void)ls;
    return NULL; /* log_msg writes nothing for a NULL logger */
}

/* Not reached by the rewrite (only by the relays around it). */
int light_task_status(struct light_service *ls, node_id swarm, node_id task)
{
    (void)ls, (void)swarm, (void)task;
    abort();
}
bool light_slot_take(struct light_service *ls, node_id swarm, node_id task, light_slot *slot)
{
    (void)ls, (void)swarm, (void)task, (void)slot;
    abort();
}
void light_slot_release(light_slot *slot)
{
    if (slot->held)
        abort();
}
void light_busy_text(char *buf, size_t len, bool consumed)
{
    (void)buf, (void)len, (void)consumed;
    abort();
}
void light_trim(struct light_service *ls)
{
    (void)ls;
}
manager_client *light_manager(struct light_service *ls)
{
    (void)ls;
    abort();
}
rpc_channel *light_relay_channel(struct light_service *ls, rpc_status *st)
{
    (void)ls, (void)st;
    abort();
}
void light_relay_release(struct light_service *ls)
{
    (void)ls;
    abort();
}

/* ---- the target ---------------------------------------------------------------------------- */

static bool same_id(const Common__System__PairId *p, node_id id)
{
    return node_id_equal(wire_node_id(p), id);
}

static bool known(const Common__System__PairId *swarm, const Common__System__PairId *task,
                  uint32_t *iteration)
{
    return swarm && task &&
           light_task_lookup(NULL, wire_node_id(swarm), wire_node_id(task), iteration, NULL);
}

static bool same_bytes(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void one(const char *method, const uint8_t *data, size_t size)
{
    bool result = !strcmp(method, "AddTaskResult");
    const ProtobufCMessageDescriptor *in_desc =
        result ? &node__light_service__light_result__descriptor
               : &node__light_service__set_global_request__descriptor;
    ProtobufCMessage *ref = protobuf_c_message_unpack(in_desc, NULL, size, data);

    rpc_bytes b = {xmalloc(size ? size : 1), size};
    if (size)
        memcpy(b.data, data, size);
    light_world_msg out;
    memset(&F, 0, sizeof(F));
    static int call_stand_in;
    int r = light_world_rewrite(NULL, (rpc_call *)&call_stand_in, method, &b, &out);
    if (b.data || b.len) /* taken over */
        abort();

    const Common__System__PairId *swarm = NULL, *task = NULL;
    const char *tag = NULL;
    ProtobufCBinaryData value = {0, NULL};
    if (ref && result) {
        const Node__LightService__LightResult *m = (const Node__LightService__LightResult *)ref;
        swarm = m->swarm_id, task = m->task_id, tag = m->tag, value = m->data;
    } else if (ref) {
        const Node__LightService__SetGlobalRequest *m =
            (const Node__LightService__SetGlobalRequest *)ref;
        swarm = m->swarm_id, task = m->task_id, tag = m->tag, value = m->data;
    }
    uint32_t iteration = 0;
    bool ok = ref && known(swarm, task, &iteration);

    if (r != 1) {
        /* refused: exactly once, for the right reason, nothing handed out */
        if (r != -1 || ok || F.calls != 1 || out.buf || out.len)
            abort();
        if (F.code != (ref ? RPC_FAILED_PRECONDITION : RPC_INVALID_ARGUMENT))
            abort();
        if (ref)
            protobuf_c_message_free_unpacked(ref, NULL);
        return;
    }
    if (!ok || F.calls != 0 || !out.buf || out.out < out.buf)
        abort();
    if (!node_id_equal(out.swarm, wire_node_id(swarm)) ||
        !node_id_equal(out.task, wire_node_id(task)))
        abort();
    if (result) {
        Common__Results__Result *m = common__results__result__unpack(NULL, out.len, out.out);
        if (!m || !same_id(m->swarm_id, wire_node_id(swarm)) ||
            !same_id(m->task_id, wire_node_id(task)) || !same_id(m->node_id, SELF) ||
            m->iteration != iteration || strcmp(m->tag, tag) != 0 || !same_bytes(m->data, value))
            abort();
        common__results__result__free_unpacked(m, NULL);
    } else {
        Common__Results__GlobalUpdate *m =
            common__results__global_update__unpack(NULL, out.len, out.out);
        if (!m || !same_id(m->swarm_id, wire_node_id(swarm)) || strcmp(m->tag, tag) != 0 ||
            !same_bytes(m->data, value))
            abort();
        common__results__global_update__free_unpacked(m, NULL);
    }
    free(out.buf);
    protobuf_c_message_free_unpacked(ref, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one("AddTaskResult", data, size);
    one("SetGlobal", data, size);
    /* not a client stream: nothing done, the message freed */
    rpc_bytes b = {xmalloc(1), 1};
    light_world_msg out;
    if (light_world_rewrite(NULL, NULL, "GetGlobal", &b, &out) != 0 || b.data || out.buf)
        abort();
    return 0;
}
