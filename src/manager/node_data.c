/* node_data.c - the data of swarms nodes send and read: task logs (AddTaskLogs), results
 * (AddTaskResult, GetTaskResult) and globals (SetGlobal, GetGlobal), streamed in chunks and
 * stored whole. */
#include "node_service.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/results.pb-c.h"
#include "common/system.pb-c.h"
#include "clock.h"
#include "mem.h"
#include "node_service_impl.h"
#include "runner.h"
#include "strbuf.h"
#include "tasklog.h"
#include "user_service.h"
#include "utf8.h"

#define CHUNK   (4u << 20) /* bytes of data per streamed message */
#define LOG_MAX (64u << 20)
/* A value (global, result) larger than this is refused while it arrives: SQLite's default
 * length limit, which the store would refuse anyway once all of it were in memory. */
#define VALUE_MAX 1000000000u
#define SHOWN_MAX 201 /* bytes of client text quoted in a status message, + NUL */

/* A Logs timestamp in ms, or now when it is absent or outside what google.protobuf.Timestamp
 * allows (years 1-9999): seconds * 1000 of any int64 would overflow. */
static int64_t stamp_ms(const Google__Protobuf__Timestamp *t)
{
    if (!t || t->seconds < INT64_C(-62135596800) || t->seconds > INT64_C(253402300799) ||
        t->nanos < 0 || t->nanos > 999999999)
        return clock_wall_ms();
    return t->seconds * 1000 + t->nanos / 1000000;
}

void ns_add_logs(manager *m, rpc_call *call, const caller *c)
{
    size_t n = 0;
    for (;;) {
        rpc_bytes b = {0};
        int r = rpc_call_recv(call, &b);
        if (r < 0)
            return;
        if (r == 0)
            break;
        Common__System__Logs *lg = common__system__logs__unpack(NULL, b.len, b.data);
        rpc_bytes_free(&b);
        if (!lg) {
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "A Logs message is not valid protobuf.");
            return;
        }
        tasklog_header h;
        uint8_t *text = NULL;
        size_t tlen = 0;
        mt_error *err = NULL;
        int rc = tasklog_decode(lg->content.data, lg->content.len, &h, &text, &tlen, LOG_MAX, &err);
        int64_t ts = stamp_ms(lg->timestamp);
        protobuf_c_message_free_unpacked(&lg->base, NULL);
        if (rc < 0) {
            cleanup_free char *msg =
                xasprintf("The task log blob is malformed: %s", mt_error_msg(err));
            mt_error_free(&err);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, msg);
            return;
        }
        if (!ns_may_act_for(m, c, h.node)) {
            free(text);
            ns_deny(m, call, c, "AddTaskLogs", h.node);
            return;
        }
        char sx[NODE_XID_MAX + 1], nx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
        node_id_to_xid(h.swarm, sx);
        node_id_to_xid(h.node, nx);
        node_id_to_xid(h.task, tx);
        if (store_log_add(m->st, sx, nx, tx, h.iteration, h.circular, ts, (const char *)text, tlen,
                          &err) < 0) {
            log_msg(m->log, LOG_ERROR, "nodes", "%s", mt_error_msg(err));
            mt_error_free(&err);
        }
        free(text);
        n++;
        user_service_notify(m);
        pthread_mutex_lock(&m->lock);
        ns_touch(m, h.node);
        runner_task_logs(m, h.swarm, h.node, h.task, h.iteration);
        pthread_mutex_unlock(&m->lock);
    }
    if (n == 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "AddTaskLogs carried no message.");
        return;
    }
    ns_reply(call, NULL);
}

static bool swarm_known(manager *m, const char *sx)
{
    store_swarm s = {0};
    mt_error *err = NULL;
    int r = store_swarm_get(m->st, sx, &s, &err);
    mt_error_free(&err);
    store_swarm_clear(&s);
    return r == 1;
}

static void send_chunks(rpc_call *call, const Common__System__PairId *node, const uint8_t *data,
                        size_t len, bool result)
{
    size_t off = 0;
    do {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        size_t plen;
        cleanup_free uint8_t *buf = NULL;
        if (result) {
            Common__Results__ChunkResultValues v = COMMON__RESULTS__CHUNK_RESULT_VALUES__INIT;
            v.node_id = (Common__System__PairId *)node;
            v.data.data = (uint8_t *)data + off;
            v.data.len = n;
            plen = common__results__chunk_result_values__get_packed_size(&v);
            buf = xmalloc(plen ? plen : 1);
            common__results__chunk_result_values__pack(&v, buf);
        } else {
            Common__Results__GlobalValue v = COMMON__RESULTS__GLOBAL_VALUE__INIT;
            v.data.data = (uint8_t *)data + off;
            v.data.len = n;
            plen = common__results__global_value__get_packed_size(&v);
            buf = xmalloc(plen ? plen : 1);
            common__results__global_value__pack(&v, buf);
        }
        if (rpc_call_send(call, buf, plen) < 0)
            return;
        off += n;
    } while (off < len);
}

void ns_get_global(manager *m, rpc_call *call, const caller *c)
{
    Common__Results__GlobalTag *q =
        (Common__Results__GlobalTag *)ns_recv_one(call, &common__results__global_tag__descriptor);
    if (!q)
        return;
    char sx[NODE_XID_MAX + 1];
    xid_of(q->swarm_id, sx);
    cleanup_free char *tag = xstrdup(q->tag);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    cleanup_free uint8_t *data = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    int r = store_global_get(m->st, sx, tag, &data, &len, &err);
    if (r < 0) {
        rpc_call_finish(call, RPC_INTERNAL, mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    if (r == 0) {
        char shown[SHOWN_MAX]; /* the tag as the client sent it: cleaned, cut */
        utf8_clean_copy(shown, sizeof(shown), tag);
        cleanup_free char *msg = swarm_known(m, sx)
                                     ? xasprintf("The swarm has no global '%s'.", shown)
                                     : xasprintf("Swarm %s is not known to this manager.", sx);
        rpc_call_finish(call, RPC_NOT_FOUND, msg);
        return;
    }
    send_chunks(call, NULL, data, len, false);
    rpc_call_finish(call, RPC_OK, NULL);
}

/* Checks the first message of an upload before the rest is read; false = the call was
 * finished. */
typedef bool (*first_check)(manager *m, rpc_call *call, const caller *c,
                            const ProtobufCMessage *first);

/* Receive a client stream of T messages, concatenating data (at most VALUE_MAX bytes). Returns
 * the first message, or NULL with the call finished. */
static ProtobufCMessage *recv_concat(manager *m, rpc_call *call, const caller *c,
                                     const ProtobufCMessageDescriptor *d, size_t data_off,
                                     first_check check, strbuf *all)
{
    ProtobufCMessage *first = NULL;
    for (;;) {
        rpc_bytes b = {0};
        int r = rpc_call_recv(call, &b);
        if (r < 0) {
            if (first)
                protobuf_c_message_free_unpacked(first, NULL);
            return NULL;
        }
        if (r == 0)
            break;
        ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, b.len, b.data);
        rpc_bytes_free(&b);
        if (!msg) {
            if (first)
                protobuf_c_message_free_unpacked(first, NULL);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "A message is not valid protobuf.");
            return NULL;
        }
        if (!first && check && !check(m, call, c, msg)) {
            protobuf_c_message_free_unpacked(msg, NULL);
            return NULL;
        }
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((char *)msg + data_off);
        if (bd->len > VALUE_MAX - all->len) {
            protobuf_c_message_free_unpacked(msg, NULL);
            if (first)
                protobuf_c_message_free_unpacked(first, NULL);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                            "The value is larger than 1000000000 bytes, the most the manager's "
                            "store keeps; nothing was stored. Send a smaller value.");
            return NULL;
        }
        if (bd->len)
            sb_append(all, bd->data, bd->len);
        if (!first)
            first = msg;
        else
            protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (!first)
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "The stream carried no message: nothing was stored (a retried upload "
                        "arrives empty).");
    return first;
}

static bool result_check(manager *m, rpc_call *call, const caller *c, const ProtobufCMessage *first)
{
    return ns_act_for(m, call, c, "AddTaskResult",
                      ((const Common__Results__Result *)first)->node_id);
}

/* The id a task's runtime gives one AddTaskResult, passed on by its node (light_world.c), so
 * that the call repeated after the manager was lost in its middle is stored once. */
#define REQUEST_ID_KEY "manta-request-id"
enum { REQUEST_ID_MAX = 64 };

static bool request_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("-_.", id[i]))
            return false;
    return true;
}

/* SetGlobal and AddTaskResult: a client stream whose data is concatenated and stored whole. */
static void do_upload(manager *m, rpc_call *call, const caller *c, bool result)
{
    strbuf all = {0};
    ProtobufCMessage *msg =
        result ? recv_concat(m, call, c, &common__results__result__descriptor,
                             offsetof(Common__Results__Result, data), result_check, &all)
               : recv_concat(m, call, c, &common__results__global_update__descriptor,
                             offsetof(Common__Results__GlobalUpdate, data), NULL, &all);
    if (!msg) {
        sb_free(&all);
        return;
    }
    const Common__Results__Result *r = (const Common__Results__Result *)msg;
    const Common__Results__GlobalUpdate *g = (const Common__Results__GlobalUpdate *)msg;
    char sx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1], nx[NODE_XID_MAX + 1];
    xid_of(result ? r->swarm_id : g->swarm_id, sx);
    mt_error *err = NULL;
    int rc = RPC_OK;
    const char *request = result ? rpc_call_metadata(call, REQUEST_ID_KEY) : NULL;
    if (request && !request_id_valid(request)) {
        rc = RPC_INVALID_ARGUMENT;
        mt_error_set(&err, MT_ERR_INVALID,
                     "The request id (metadata " REQUEST_ID_KEY ") must be 1 to %d "
                     "letters, digits, '-', '_' or '.'; nothing was stored.",
                     REQUEST_ID_MAX);
    } else if (!swarm_known(m, sx)) {
        rc = RPC_FAILED_PRECONDITION;
    } else if (result) {
        xid_of(r->task_id, tx);
        xid_of(r->node_id, nx);
        /* A repeat (1) of a call whose answer was lost is answered Ok: it is stored once. */
        if (store_result_add(m->st, sx, tx, nx, r->iteration, r->tag, request, all.buf, all.len,
                             clock_wall_ms(), &err) < 0)
            rc = RPC_INTERNAL;
    } else if (store_global_set(m->st, sx, g->tag, all.buf, all.len, &err) < 0) {
        rc = RPC_INTERNAL;
    }
    cleanup_free char *text = rc == RPC_FAILED_PRECONDITION
                                  ? xasprintf("Swarm %s is not known to this manager.", sx)
                                  : xstrdup(mt_error_msg(err));
    mt_error_free(&err);
    protobuf_c_message_free_unpacked(msg, NULL);
    sb_free(&all);
    if (rc != RPC_OK) {
        rpc_call_finish(call, rc, text);
    } else {
        user_service_notify(m);
        ns_reply(call, NULL);
    }
}

void ns_get_result(manager *m, rpc_call *call, const caller *c)
{
    Common__Results__ResultQuery *q = (Common__Results__ResultQuery *)ns_recv_one(
        call, &common__results__result_query__descriptor);
    if (!q)
        return;
    char sx[NODE_XID_MAX + 1];
    xid_of(q->swarm_id, sx);
    store_result *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    int rc = store_result_query(m->st, sx, q->tag, q->iteration, (int64_t)q->size, q->method, &rows,
                                &n, &err);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (rc < 0) {
        rpc_call_finish(call, RPC_INTERNAL, mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        node_id nid = {0, 0};
        node_id_parse_xid(rows[i].node, &nid);
        Common__System__PairId p = COMMON__SYSTEM__PAIR_ID__INIT;
        p.head = nid.head;
        p.tail = nid.tail;
        send_chunks(call, &p, rows[i].data, rows[i].len, true);
    }
    store_results_free(rows, n);
    rpc_call_finish(call, RPC_OK, NULL);
}

void ns_add_result(manager *m, rpc_call *call, const caller *c)
{
    do_upload(m, call, c, true);
}

void ns_set_global(manager *m, rpc_call *call, const caller *c)
{
    do_upload(m, call, c, false);
}
