/* light_world.c - the World half of the light service: six RPCs a running task calls, each
 * relayed to the manager's node.node_service.Node service (reference-node.md 12.2, 12.3;
 * task-contract.md 5, 7, 10).
 *
 * Only requests carrying the (swarm, task) of a task of this node are served. Streams are relayed
 * message by message in both directions, so memory stays bounded by one chunk. Calls to the
 * manager fail only when they stall: a watchdog cancels a manager operation (a send, a receive,
 * the finish) during which the node's connections to the manager moved no byte for
 * mc->deadline_ms (network.rpc_timeout), read from the kernel's TCP counters (tcpprobe.h), so
 * a 300 MiB value takes as long as its link needs; the task's own call has no limit. Once data has
 * been relayed, a failure is never reported to the task with a retryable status (the SDK would
 * retry with partial data or an empty stream): INTERNAL (client streams) or DATA_LOSS (server
 * streams) instead.
 *
 * Memory: a message of a client stream (the SDK sends a whole value as one) becomes the message
 * for the manager in the buffer it was received in (only the few header bytes before the value
 * are rewritten), and after a large message malloc's arenas give the freed gRPC read buffers
 * back, so a relayed value is held at most twice at once (see rpc.h: a received message is
 * copied out of gRPC, a sent one into it). Every call counts against its task's cap
 * (LIGHT_TASK_CALLS). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "clock.h"
#include "light_impl.h"
#include "mem.h"
#include "pbcompat.h"
#include "tcpprobe.h"
#include "wire.h"

#include "common/results.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "node/light_service.pb-c.h"

#define NODE_SERVICE "/node.node_service.Node/"

/* ---- stall limit on manager streams --------------------------------------------------------- */

/* A thread that cancels the manager stream when, during one armed operation (a send, a
 * receive, the finish), the connections to the manager's port move no byte for deadline_ms.
 * It looks at the counters once a second while armed. */
typedef struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t deadline_ms; /* the stall limit */
    int port;            /* the manager's port */
    uint64_t seen;       /* the connections' byte counters at the last progress */
    bool armed;
    bool stop;
    bool fired;
    struct timespec until;
    rpc_cstream *cs;
    rpc_sstream *ss;
    pthread_t th;
    bool running;
} watchdog;

#define UNSEEN UINT64_MAX /* no look at the counters yet since the operation was armed */

static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (!w->armed) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        struct timespec now, wake = clock_mono_after(1000);
        if (clock_ts_before(w->until, wake))
            wake = w->until;
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &wake);
        if (rc != ETIMEDOUT || !w->armed || w->stop)
            continue;
        /* the counters are read without the lock: arming and disarming never wait for it */
        pthread_mutex_unlock(&w->mu);
        uint64_t moved = tcp_progress_to_port(w->port);
        pthread_mutex_lock(&w->mu);
        if (!w->armed || w->stop)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (w->seen == UNSEEN) { /* the first look since the operation was armed */
            w->seen = moved;
            if (!clock_ts_before(now, w->until)) /* a limit under a second: one look more */
                w->until = clock_ts_add_ms(now, 1000);
            continue;
        }
        if (moved != w->seen) { /* bytes moved: the stall clock starts again */
            w->seen = moved;
            w->until = clock_ts_add_ms(now, w->deadline_ms);
            continue;
        }
        if (!clock_ts_before(now, w->until)) {
            w->fired = true;
            w->armed = false;
            if (w->cs)
                rpc_cstream_cancel(w->cs);
            if (w->ss)
                rpc_sstream_cancel(w->ss);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void watchdog_start(watchdog *w, int64_t deadline_ms, int port, rpc_cstream *cs,
                           rpc_sstream *ss)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    clock_cond_init(&w->cv);
    w->deadline_ms = deadline_ms > 0 ? deadline_ms : 30000;
    w->port = port;
    w->cs = cs;
    w->ss = ss;
    w->running = pthread_create(&w->th, NULL, watchdog_main, w) == 0;
}

/* Arming is on the relay's path (once per message): it reads no counters; the watchdog takes
 * its first look a second later (progress in that second is not seen, so a stall may be called
 * up to a second early). */
static void watchdog_arm(watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->until = clock_mono_after(w->deadline_ms);
    w->seen = UNSEEN;
    w->armed = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void watchdog_disarm(watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->armed = false;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Stop the thread (before the stream is freed). Returns whether the stall limit fired. */
static bool watchdog_stop(watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->running)
        pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return w->fired;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* A World call's task, read once from the request's ids at the edge and carried in the forms used
 * inside: binary (the task table, the slot), and the PairIds of the message for the manager, this
 * node's with them. The task's iteration and circular number, from the task table. */
typedef struct world_task {
    node_id swarm, task;
    Common__System__PairId swarm_pb, task_pb, node_pb;
    uint32_t iteration, circular;
} world_task;

/* Read the request's (swarm, task) into *t. Is it a task of this node? If not, fails the call
 * (FAILED_PRECONDITION). */
static bool world_task_open(struct light_service *ls, rpc_call *call, const char *method,
                            const Common__System__PairId *swarm, const Common__System__PairId *task,
                            world_task *t)
{
    memset(t, 0, sizeof(*t));
    t->swarm = wire_node_id(swarm);
    t->task = wire_node_id(task);
    wire_pair_id(&t->swarm_pb, t->swarm);
    wire_pair_id(&t->task_pb, t->task);
    wire_pair_id(&t->node_pb, light_node_id(ls));
    if (swarm && task && light_task_lookup(ls, t->swarm, t->task, &t->iteration, &t->circular))
        return true;
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
    node_id_to_xid(t->swarm, sx);
    node_id_to_xid(t->task, tx);
    log_warn(light_log(ls), "light", "World/%s: unknown task (swarm %s, task %s)", method, sx, tx);
    light_fail(call, RPC_FAILED_PRECONDITION, "RESOURCE_ERROR",
               "Error in World.%s: Cannot get task due to (swarm %s, task %s) not found in tasks",
               method, sx, tx);
    return false;
}

/* Count the call against its task's cap, or refuse it: RESOURCE_EXHAUSTED (the SDK retries
 * after a short back-off), or FAILED_PRECONDITION if part of a client stream was consumed (a
 * retry would resend only the rest of it, task-contract 5.1). */
static bool take_slot(struct light_service *ls, rpc_call *call, const char *method,
                      const world_task *t, bool consumed, light_slot *slot)
{
    if (light_slot_take(ls, t->swarm, t->task, slot))
        return true;
    char text[320];
    light_busy_text(text, sizeof(text), consumed);
    light_fail(call, consumed ? RPC_FAILED_PRECONDITION : RPC_RESOURCE_EXHAUSTED, "RESOURCE_ERROR",
               "Error in World.%s: %s", method, text);
    return false;
}

/* Report a manager failure to the task. `relayed`: data already went through this call, so a
 * retryable status is replaced by `after_code`. */
static void fail_manager(struct light_service *ls, rpc_call *call, const char *method,
                         const rpc_status *st, bool relayed, int after_code)
{
    int code = st->code == RPC_OK ? RPC_INTERNAL : st->code;
    log_warn(light_log(ls), "light", "World/%s: manager call failed: %s: %s", method,
             rpc_code_name(code), st->message);
    if (relayed && mc_retryable(code)) {
        light_fail(call, after_code, "GRPC_ERROR",
                   "Error in streaming operation World.%s: manager failed after data was "
                   "relayed: %s: %s",
                   method, rpc_code_name(code), st->message);
        return;
    }
    const char *id = code == RPC_UNAVAILABLE ? "CONNECTION_ERROR" : "GRPC_ERROR";
    light_fail(call, code, id, "%s", st->message);
}

/* Receive the single request of a unary/server-streaming call and unpack it; fails the call
 * and returns NULL if there is none or it does not parse. *raw (optional) keeps the bytes. */
static ProtobufCMessage *recv_request(rpc_call *call, const ProtobufCMessageDescriptor *desc,
                                      const char *method, rpc_bytes *raw)
{
    rpc_bytes b = {0};
    int r = rpc_call_recv(call, &b);
    if (r < 0) {
        rpc_call_finish(call, RPC_CANCELLED, "call cancelled");
        return NULL;
    }
    if (r == 0) {
        light_fail(call, RPC_INVALID_ARGUMENT, "VALIDATION_ERROR", "World.%s: no request", method);
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, b.len, b.data);
    if (!m) {
        rpc_bytes_free(&b);
        light_fail(call, RPC_INVALID_ARGUMENT, "VALIDATION_ERROR", "World.%s: malformed request",
                   method);
        return NULL;
    }
    if (raw)
        *raw = b;
    else
        rpc_bytes_free(&b);
    return m;
}

/* Reply to a unary/client-streaming call with the manager's response bytes. */
static void reply(rpc_call *call, const rpc_bytes *resp)
{
    if (rpc_call_send(call, resp->data ? resp->data : (const uint8_t *)"", resp->len) < 0) {
        rpc_call_finish(call, RPC_CANCELLED, "call cancelled");
        return;
    }
    rpc_call_finish(call, RPC_OK, NULL);
}

/* ---- unary -------------------------------------------------------------------------------- */

static void unary_relay(struct light_service *ls, rpc_call *call, const char *method,
                        const void *req, size_t len)
{
    manager_client *mc = light_manager(ls);
    rpc_bytes resp = {0};
    rpc_status st = {0};
    if (mc_call_raw(mc, method, req, len, 0, 0, &resp, &st) < 0) {
        fail_manager(ls, call, method, &st, false, RPC_INTERNAL);
        return;
    }
    reply(call, &resp);
    rpc_bytes_free(&resp);
}

static void do_stop_swarm(struct light_service *ls, rpc_call *call)
{
    Common__System__EnvId *env = (Common__System__EnvId *)recv_request(
        call, &common__system__env_id__descriptor, "StopSwarm", NULL);
    if (!env)
        return;
    world_task t;
    cleanup_slot light_slot slot = {0};
    if (world_task_open(ls, call, "StopSwarm", env->swarm_id, env->task_id, &t) &&
        take_slot(ls, call, "StopSwarm", &t, false, &slot)) {
        Common__Tasks__TaskUpdate up = COMMON__TASKS__TASK_UPDATE__INIT;
        up.swarm_id = &t.swarm_pb;
        up.node_id = &t.node_pb;
        up.task_id = &t.task_pb;
        up.iteration = t.iteration;
        up.circular = t.circular;
        /* the stored status, as the reference sends (RUNNING if none was recorded yet) */
        int st = light_task_status(ls, t.swarm, t.task);
        up.task_status = st ? (Common__Tasks__TaskStatus)st : COMMON__TASKS__TASK_STATUS__RUNNING;
        size_t len = 0;
        cleanup_free uint8_t *buf = wire_pack(&up.base, &len);
        unary_relay(ls, call, "StopSwarm", buf, len);
    }
    protobuf_c_message_free_unpacked(&env->base, NULL);
}

static void do_schedule_task(struct light_service *ls, rpc_call *call)
{
    rpc_bytes raw = {0};
    Common__Tasks__TaskScheduling *ts = (Common__Tasks__TaskScheduling *)recv_request(
        call, &common__tasks__task_scheduling__descriptor, "ScheduleTask", &raw);
    if (!ts)
        return;
    world_task t;
    cleanup_slot light_slot slot = {0};
    if (world_task_open(ls, call, "ScheduleTask", ts->swarm_id, ts->task_id, &t) &&
        take_slot(ls, call, "ScheduleTask", &t, false, &slot))
        unary_relay(ls, call, "ScheduleTask", raw.data, raw.len); /* unchanged */
    protobuf_c_message_free_unpacked(&ts->base, NULL);
    rpc_bytes_free(&raw);
}

/* ---- server streams ----------------------------------------------------------------------- */

enum sstream_outcome { SS_DONE, SS_TASK_GONE, SS_FAILED };

/* One attempt: call the manager's server-streaming `method` with req and relay every message
 * to the task. *relayed tells whether a message reached the task, *moved adds the bytes
 * received; *st the failure. */
static enum sstream_outcome sstream_attempt(struct light_service *ls, rpc_call *call,
                                            const char *path, const void *req, size_t len,
                                            bool *relayed, size_t *moved, rpc_status *st)
{
    manager_client *mc = light_manager(ls);
    rpc_metadata md[] = {{"authorization", mc->token}};
    rpc_channel *rch = light_relay_channel(ls, st);
    rpc_sstream *s = rch ? rpc_sstream_start(rch, path, md, 1, req, len, 0, st) : NULL;
    if (!s) {
        if (rch)
            light_relay_release(ls);
        return SS_FAILED;
    }
    watchdog w;
    watchdog_start(&w, mc->deadline_ms, mc->port, NULL, s);
    enum sstream_outcome out = SS_FAILED;
    for (;;) {
        rpc_msg *msg = NULL;
        watchdog_arm(&w);
        int r = rpc_sstream_next_msg(s, &msg, st);
        watchdog_disarm(&w);
        if (r == 0 && st->code == RPC_OK)
            out = SS_DONE;
        if (r != 1)
            break;
        *moved += rpc_msg_len(msg);
        /* The manager's message goes to the task as it came, in gRPC's buffers: no copy. */
        int sr = rpc_call_send_msg(call, NULL, 0, msg, 0);
        if (sr < 0) {
            out = SS_TASK_GONE;
            break;
        }
        *relayed = true;
    }
    bool fired = watchdog_stop(&w);
    rpc_sstream_free(s);
    light_relay_release(ls);
    if (out == SS_FAILED && fired) {
        st->code = RPC_DEADLINE_EXCEEDED;
        snprintf(st->message, sizeof(st->message),
                 "nothing moved from the manager for %lld ms (network.rpc_timeout)",
                 (long long)w.deadline_ms);
    }
    if (out == SS_FAILED && st->code == RPC_OK) {
        st->code = RPC_INTERNAL;
        snprintf(st->message, sizeof(st->message), "manager stream broken");
    }
    return out;
}

/* Relay the manager's server stream to the task; retried like unary calls as long as nothing
 * reached the task. */
static void sstream_relay(struct light_service *ls, rpc_call *call, const char *method,
                          const void *req, size_t len)
{
    manager_client *mc = light_manager(ls);
    char path[128];
    snprintf(path, sizeof(path), NODE_SERVICE "%s", method);
    int attempts = mc->attempts > 0 ? mc->attempts : 1;
    bool relayed = false;
    size_t moved = 0;
    rpc_status st = {0};
    for (int a = 1;; a++) {
        memset(&st, 0, sizeof(st));
        enum sstream_outcome out = sstream_attempt(ls, call, path, req, len, &relayed, &moved, &st);
        if (moved >= LIGHT_TRIM_BYTES)
            light_trim(ls); /* the stream's buffers, freed but kept by malloc (deferred) */
        if (out == SS_DONE) {
            rpc_call_finish(call, RPC_OK, NULL);
            return;
        }
        if (out == SS_TASK_GONE) {
            rpc_call_finish(call, RPC_CANCELLED, "call cancelled");
            return;
        }
        if (relayed || !mc_retryable(st.code) || a >= attempts || rpc_call_cancelled(call))
            break;
        log_debug(light_log(ls), "light", "World/%s: attempt %d failed (%s: %s), retrying", method,
                  a, rpc_code_name(st.code), st.message);
        backoff_sleep(backoff_retry_delay(a));
    }
    fail_manager(ls, call, method, &st, relayed, RPC_DATA_LOSS);
}

static void do_get_task_result(struct light_service *ls, rpc_call *call)
{
    Node__LightService__LightResultQuery *q = (Node__LightService__LightResultQuery *)recv_request(
        call, &node__light_service__light_result_query__descriptor, "GetTaskResult", NULL);
    if (!q)
        return;
    world_task t;
    cleanup_slot light_slot slot = {0};
    if (world_task_open(ls, call, "GetTaskResult", q->swarm_id, q->task_id, &t) &&
        take_slot(ls, call, "GetTaskResult", &t, false, &slot)) {
        Common__Results__ResultQuery rq = COMMON__RESULTS__RESULT_QUERY__INIT;
        rq.swarm_id = &t.swarm_pb;
        rq.task_id = &t.task_pb;
        rq.node_id = &t.node_pb;
        rq.iteration = t.iteration;
        rq.tag = q->tag;
        rq.method = (Common__Results__ResultMethod)q->method;
        size_t len = 0;
        cleanup_free uint8_t *buf = pbcompat_pack_result_query(&rq, q->size, &len);
        sstream_relay(ls, call, "GetTaskResult", buf, len);
    }
    protobuf_c_message_free_unpacked(&q->base, NULL);
}

static void do_get_global(struct light_service *ls, rpc_call *call)
{
    Node__LightService__GetGlobalRequest *q = (Node__LightService__GetGlobalRequest *)recv_request(
        call, &node__light_service__get_global_request__descriptor, "GetGlobal", NULL);
    if (!q)
        return;
    world_task t;
    cleanup_slot light_slot slot = {0};
    if (world_task_open(ls, call, "GetGlobal", q->swarm_id, q->task_id, &t) &&
        take_slot(ls, call, "GetGlobal", &t, false, &slot)) {
        Common__Results__GlobalTag gt = COMMON__RESULTS__GLOBAL_TAG__INIT;
        gt.swarm_id = &t.swarm_pb;
        gt.tag = q->tag;
        size_t len = 0;
        cleanup_free uint8_t *buf = wire_pack(&gt.base, &len);
        sstream_relay(ls, call, "GetGlobal", buf, len);
    }
    protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* ---- client streams ----------------------------------------------------------------------- */

/* Packs the message for the manager from one incoming message of task t: every field but the
 * value, which the caller appends. Returns owned bytes. */
typedef uint8_t *(*cs_pack)(const ProtobufCMessage *in, world_task *t, size_t *len);

/* A client-streaming relay: the incoming message type, its value field (bytes, last on the
 * SDK's wire), the value's field number in the message for the manager, and the packer. */
typedef struct cs_method {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
    unsigned in_field, out_field;
    cs_pack pack;
} cs_method;

static uint8_t *pack_result(const ProtobufCMessage *in, world_task *t, size_t *len)
{
    const Node__LightService__LightResult *m = (const Node__LightService__LightResult *)in;
    Common__Results__Result r = COMMON__RESULTS__RESULT__INIT;
    r.swarm_id = &t->swarm_pb;
    r.task_id = &t->task_pb;
    r.node_id = &t->node_pb;
    r.iteration = t->iteration;
    r.tag = m->tag;
    return wire_pack(&r.base, len);
}

static uint8_t *pack_global(const ProtobufCMessage *in, world_task *t, size_t *len)
{
    const Node__LightService__SetGlobalRequest *m =
        (const Node__LightService__SetGlobalRequest *)in;
    Common__Results__GlobalUpdate g = COMMON__RESULTS__GLOBAL_UPDATE__INIT;
    g.swarm_id = &t->swarm_pb;
    g.tag = m->tag;
    return wire_pack(&g.base, len);
}

static const cs_method ADD_TASK_RESULT = {
    "AddTaskResult", &node__light_service__light_result__descriptor, 4, 6, pack_result};
static const cs_method SET_GLOBAL = {
    "SetGlobal", &node__light_service__set_global_request__descriptor, 4, 3, pack_global};

/* If the last field of the encoded message p[0..len) is the only occurrence of length-delimited
 * field `number`, set *field (where it starts) and *value (where its value starts) and return
 * true; false otherwise (also for malformed input, which the unpack then reports). */
static bool find_last_bytes_field(const uint8_t *p, size_t len, unsigned number, size_t *field,
                                  size_t *value)
{
    size_t pos = 0, seen = 0, last_end = 0;
    pb_field f;
    int r;
    while ((r = pb_field_next(p, len, &pos, &f)) > 0) {
        if (f.wire == 2 && f.number == number) {
            seen++;
            *field = f.start;
            *value = f.value;
            last_end = f.value + f.vlen;
        }
    }
    return r == 0 && seen == 1 && last_end == len;
}

/* One message of the task's stream, rewritten for the manager (light_impl.h). */
typedef light_world_msg cs_msg;

static void cs_msg_free(cs_msg *m)
{
    free(m->buf);
    rpc_msg_free(m->tail);
    memset(m, 0, sizeof(*m));
}

/* The length of the message for the manager. */
static size_t cs_msg_len(const cs_msg *m)
{
    return m->len + (m->tail ? rpc_msg_len(m->tail) - m->from : 0);
}

static const Common__System__PairId *pair_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    return fd ? *(Common__System__PairId *const *)((const char *)m + fd->offset) : NULL;
}

/* Receive one message of the task's stream and rewrite it for the manager. The value is not
 * copied when it is the message's last field (always, from the SDK): the new header is written
 * over the old one just before it (moved up a few bytes if the new header is longer). Returns 1
 * with *out, 0 at the end of the stream, -1 after failing the call. */
static int cs_rewrite(struct light_service *ls, rpc_call *call, const cs_method *cm, rpc_bytes b,
                      cs_msg *out);

static int cs_rewrite_msg(struct light_service *ls, rpc_call *call, const cs_method *cm, rpc_msg *m,
                          cs_msg *out);

static int cs_next(struct light_service *ls, rpc_call *call, const cs_method *cm, cs_msg *out)
{
    memset(out, 0, sizeof(*out));
    rpc_msg *m = NULL;
    int r = rpc_call_recv_msg(call, &m);
    if (r < 0) {
        rpc_call_finish(call, RPC_CANCELLED, "call cancelled");
        return -1;
    }
    if (r == 0)
        return 0;
    return cs_rewrite_msg(ls, call, cm, m, out);
}

/* How much of a message's start is read to find its value (the fields before it). */
#define CS_PEEK 8192

/* In the start p[0..plen) of a message of len bytes (len > plen): if the first occurrence of
 * length-delimited field `number` is its last field (its value ends the message), set *field
 * and *value as find_last_bytes_field does and return true. False when it is not, or the fields
 * before it do not fit in the start (the message is then copied out and rewritten whole). */
static bool find_value_in_start(const uint8_t *p, size_t plen, size_t len, unsigned number,
                                size_t *field, size_t *value)
{
    size_t pos = 0;
    pb_field f;
    /* 20 bytes: a field's key and length varints, all pb_field_next reads of a field. */
    while (pos + 20 <= plen) {
        if (pb_field_next(p, len, &pos, &f) <= 0)
            return false;
        if (f.wire == 2 && f.number == number) {
            if (f.value + f.vlen != len)
                return false;
            *field = f.start;
            *value = f.value;
            return true;
        }
    }
    return false;
}

/* cs_rewrite for a message left in gRPC's buffers (m taken over). A large one whose value is its
 * last field (as the SDK sends it) stays there: only the fields before the value are read and
 * re-packed (out->buf), the value follows from gRPC's buffers (out->tail). Anything else is
 * copied out and rewritten by cs_rewrite. */
static int cs_rewrite_msg(struct light_service *ls, rpc_call *call, const cs_method *cm, rpc_msg *m,
                          cs_msg *out)
{
    memset(out, 0, sizeof(*out));
    size_t len = rpc_msg_len(m), field = 0, value = 0;
    if (len >= LIGHT_TRIM_BYTES)
        light_trim(ls); /* also when the call fails from here on (deferred: costs nothing now) */
    uint8_t start[CS_PEEK];
    size_t plen = rpc_msg_copy(m, 0, start, sizeof(start));
    if (len <= plen || !find_value_in_start(start, plen, len, cm->in_field, &field, &value)) {
        rpc_bytes b = {0};
        rpc_msg_to_bytes(m, &b);
        rpc_msg_free(m);
        return cs_rewrite(ls, call, cm, b, out);
    }
    ProtobufCMessage *pm = protobuf_c_message_unpack(cm->desc, NULL, field, start);
    if (!pm) {
        rpc_msg_free(m);
        light_fail(call, RPC_INVALID_ARGUMENT, "VALIDATION_ERROR",
                   "Error in streaming operation World.%s: malformed message", cm->name);
        return -1;
    }
    world_task t;
    bool known = world_task_open(ls, call, cm->name, pair_field(pm, "swarm_id"),
                                 pair_field(pm, "task_id"), &t);
    size_t hlen = 0;
    cleanup_free uint8_t *head = known ? cm->pack(pm, &t, &hlen) : NULL;
    protobuf_c_message_free_unpacked(pm, NULL);
    if (!head) {
        rpc_msg_free(m);
        return -1;
    }
    out->swarm = t.swarm;
    out->task = t.task;
    uint8_t vhead[20];
    size_t vhlen = pb_varint_write(vhead, ((uint64_t)cm->out_field << 3) | 2);
    vhlen += pb_varint_write(vhead + vhlen, len - value);
    out->buf = xmalloc(hlen + vhlen);
    out->out = out->buf;
    memcpy(out->buf, head, hlen);
    memcpy(out->buf + hlen, vhead, vhlen);
    out->len = hlen + vhlen;
    out->tail = m;
    out->from = value;
    return 1;
}

/* The rewrite of one received message b (taken over): 1 with *out, -1 after failing the call. */
static int cs_rewrite(struct light_service *ls, rpc_call *call, const cs_method *cm, rpc_bytes b,
                      cs_msg *out)
{
    memset(out, 0, sizeof(*out));
    size_t field = 0, value = 0;
    bool in_place = find_last_bytes_field(b.data, b.len, cm->in_field, &field, &value);
    /* In place: unpack only the fields before the value (protobuf-c would copy it). */
    ProtobufCMessage *m =
        protobuf_c_message_unpack(cm->desc, NULL, in_place ? field : b.len, b.data);
    if (!m) {
        rpc_bytes_free(&b);
        light_fail(call, RPC_INVALID_ARGUMENT, "VALIDATION_ERROR",
                   "Error in streaming operation World.%s: malformed message", cm->name);
        return -1;
    }
    world_task t;
    bool known = world_task_open(ls, call, cm->name, pair_field(m, "swarm_id"),
                                 pair_field(m, "task_id"), &t);
    out->swarm = t.swarm;
    out->task = t.task;
    size_t hlen = 0;
    cleanup_free uint8_t *head = known ? cm->pack(m, &t, &hlen) : NULL;
    if (!head) {
        protobuf_c_message_free_unpacked(m, NULL);
        rpc_bytes_free(&b);
        return -1;
    }
    const uint8_t *vdata;
    size_t vlen;
    if (in_place) {
        vdata = b.data + value;
        vlen = b.len - value;
    } else {
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(cm->desc, cm->in_field);
        const ProtobufCBinaryData *bd = (const ProtobufCBinaryData *)((const char *)m + fd->offset);
        vdata = bd->data;
        vlen = bd->len;
    }
    /* The value's field header for the manager (nothing for an empty value, as in proto3). */
    uint8_t vhead[20];
    size_t vhlen = 0;
    if (vlen > 0) {
        vhlen = pb_varint_write(vhead, ((uint64_t)cm->out_field << 3) | 2);
        vhlen += pb_varint_write(vhead + vhlen, vlen);
    }
    size_t total = hlen + vhlen;
    if (in_place) {
        if (total > value) {
            /* A longer header (AddTaskResult adds the node and the iteration): grow the buffer
             * (a large one is remapped, not copied) and move the value up. */
            size_t grow = total - value;
            b.data = xrealloc(b.data, b.len + grow);
            memmove(b.data + total, b.data + value, vlen);
            value = total;
        }
        out->buf = b.data;
        out->out = b.data + value - total;
        b.data = NULL;
    } else {
        out->buf = xmalloc(total + vlen ? total + vlen : 1);
        out->out = out->buf;
        if (vlen)
            memcpy(out->buf + total, vdata, vlen);
        rpc_bytes_free(&b);
    }
    memcpy(out->out, head, hlen);
    memcpy(out->out + hlen, vhead, vhlen);
    out->len = total + vlen;
    protobuf_c_message_free_unpacked(m, NULL);
    return 1;
}

int light_world_rewrite(struct light_service *ls, rpc_call *call, const char *method,
                        rpc_bytes *msg, light_world_msg *out)
{
    const cs_method *cm = !strcmp(method, ADD_TASK_RESULT.name) ? &ADD_TASK_RESULT
                          : !strcmp(method, SET_GLOBAL.name)    ? &SET_GLOBAL
                                                                : NULL;
    memset(out, 0, sizeof(*out));
    rpc_bytes b = *msg;
    *msg = (rpc_bytes){0};
    if (!cm) {
        rpc_bytes_free(&b);
        return 0;
    }
    return cs_rewrite(ls, call, cm, b, out);
}

static void cstream_relay(struct light_service *ls, rpc_call *call, const cs_method *cm)
{
    const char *method = cm->name;
    cs_msg msg;
    int r = cs_next(ls, call, cm, &msg);
    if (r < 0)
        return;
    if (r == 0) {
        /* A retry of the SDK carries an empty stream: never answer Ok (task-contract 5.1). */
        light_fail(call, RPC_INVALID_ARGUMENT, "VALIDATION_ERROR",
                   "Error in streaming operation World.%s: empty stream", method);
        return;
    }
    cleanup_slot light_slot slot = {0};
    if (!light_slot_take(ls, msg.swarm, msg.task, &slot)) {
        char text[320];
        light_busy_text(text, sizeof(text), true);
        light_fail(call, RPC_FAILED_PRECONDITION, "RESOURCE_ERROR",
                   "Error in streaming operation World.%s: %s", method, text);
        cs_msg_free(&msg);
        return;
    }
    size_t moved = cs_msg_len(&msg);
    manager_client *mc = light_manager(ls);
    char path[128];
    snprintf(path, sizeof(path), NODE_SERVICE "%s", method);
    /* The task's id for this call, passed on: the manager stores a repeated AddTaskResult once,
     * so a task may repeat one that was cut off by the manager's loss (docs/light-service.md). */
    const char *request = rpc_call_metadata(call, "manta-request-id");
    rpc_metadata md[] = {{"authorization", mc->token}, {"manta-request-id", request}};
    rpc_status st = {0};
    rpc_channel *rch = light_relay_channel(ls, &st);
    rpc_cstream *s = rch ? rpc_cstream_start(rch, path, md, request ? 2 : 1, 0, &st) : NULL;
    if (!s) {
        if (rch)
            light_relay_release(ls);
        cs_msg_free(&msg);
        fail_manager(ls, call, method, &st, false, RPC_INTERNAL);
        return;
    }
    watchdog w;
    watchdog_start(&w, mc->deadline_ms, mc->port, s, NULL);
    bool failed_call = false; /* the task's call was already finished */
    for (;;) {
        watchdog_arm(&w);
        int sr;
        size_t off = (size_t)(msg.out - msg.buf); /* before the buffer is taken below */
        if (msg.tail) /* the value from gRPC's buffers after the new head: no copy */
            sr = rpc_cstream_send_msg(s, msg.out, msg.len, steal_ptr(msg.tail), msg.from);
        else /* the rewritten buffer itself: no copy */
            sr = rpc_cstream_send_owned(s, steal_ptr(msg.buf), off, msg.len);
        watchdog_disarm(&w);
        cs_msg_free(&msg);
        if (sr < 0)
            break; /* finish reports the status */
        r = cs_next(ls, call, cm, &msg);
        if (r < 0) {
            failed_call = true;
            break;
        }
        if (r == 0)
            break;
        moved += cs_msg_len(&msg);
    }
    cs_msg_free(&msg);
    if (failed_call) {
        watchdog_stop(&w);
        rpc_cstream_free(s); /* cancels the manager call: the value is incomplete */
        light_relay_release(ls);
        if (moved >= LIGHT_TRIM_BYTES)
            light_trim(ls);
        return;
    }
    rpc_bytes resp = {0};
    /* Everything has left: now the manager stores the value, moving no byte meanwhile. It gets
     * the stall limit plus a second per MiB for that (as AddTaskLogs' deadline does), so a
     * 300 MiB value on a busy manager is not cut off, and a hung manager still is. */
    pthread_mutex_lock(&w.mu);
    w.deadline_ms = mc->deadline_ms + (int64_t)(moved >> 20) * 1000;
    pthread_mutex_unlock(&w.mu);
    watchdog_arm(&w);
    int fr = rpc_cstream_finish(s, &resp, &st);
    watchdog_disarm(&w);
    bool fired = watchdog_stop(&w);
    rpc_cstream_free(s);
    light_relay_release(ls);
    if (moved >= LIGHT_TRIM_BYTES)
        light_trim(ls); /* the stream's buffers, freed but kept by malloc (deferred) */
    if (fr == 0 && st.code == RPC_OK) {
        reply(call, &resp);
        rpc_bytes_free(&resp);
        return;
    }
    rpc_bytes_free(&resp);
    if (fired) {
        st.code = RPC_DEADLINE_EXCEEDED;
        snprintf(st.message, sizeof(st.message),
                 "nothing moved to or from the manager for %lld ms (network.rpc_timeout)",
                 (long long)w.deadline_ms);
    }
    /* Data left the node: the SDK's retry would send an empty stream; never retryable. Unless
     * no connection to the manager could be made (it is restarting): then nothing reached it,
     * and a task that re-sends its whole stream (this project's runtime does) may try again. */
    bool unsent =
        st.code == RPC_UNAVAILABLE && strstr(st.message, "failed to connect to all addresses");
    fail_manager(ls, call, method, &st, !unsent, RPC_INTERNAL);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void add_task_result(struct light_service *ls, rpc_call *call)
{
    cstream_relay(ls, call, &ADD_TASK_RESULT);
}

static void set_global(struct light_service *ls, rpc_call *call)
{
    cstream_relay(ls, call, &SET_GLOBAL);
}

static const struct {
    const char *name;
    void (*fn)(struct light_service *ls, rpc_call *call);
} world_methods[] = {
    {"GetTaskResult", do_get_task_result}, {"AddTaskResult", add_task_result},
    {"GetGlobal", do_get_global},          {"SetGlobal", set_global},
    {"StopSwarm", do_stop_swarm},          {"ScheduleTask", do_schedule_task},
};

void light_world_handle(struct light_service *ls, rpc_call *call, const char *method)
{
    for (size_t i = 0; i < ARRAY_LEN(world_methods); i++)
        if (strcmp(method, world_methods[i].name) == 0) {
            world_methods[i].fn(ls, call);
            return;
        }
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "unknown method");
}
