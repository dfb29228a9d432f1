/* user_logs.c - task logs as the user services read them (CollectLogs, StreamLogs).
 *
 * Logs for the SDK (user-api.md 7.2): one LogResponse per task run, its output as UTF-8
 * (ill-formed bytes become U+FFFD), timestamps made distinct (a record sharing the previous
 * one's instant gets the next microsecond), severity ERROR when the output holds one of the
 * SDK's error keywords, else INFO.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/swarms.pb-c.h"
#include "common/tasks.pb-c.h"
#include "core/user_services.pb-c.h"
#include "mem.h"
#include "user_internal.h"
#include "utf8.h"

/* The SDK's ERROR_LOGS_KWS (manta/common/const.py). */
static const char *const error_words[] = {"ERROR",     "Error",  "Traceback",
                                          "Exception", "Failed", "FAIL"};

static const char *severity_of(const char *text)
{
    for (size_t i = 0; i < ARRAY_LEN(error_words); i++)
        if (strstr(text, error_words[i]))
            return "ERROR";
    return "INFO";
}

/* What logs need from the graph: alias and module id per task id. */
typedef struct task_names {
    Common__Swarms__Graph *g;
} task_names;

static void names_of(const task_names *tn, const char *task_xid, const char **alias,
                     char module[33])
{
    node_id id = {0, 0};
    node_id_parse_xid(task_xid, &id);
    *alias = "";
    module[0] = '\0';
    for (size_t i = 0; tn->g && i < tn->g->n_tasks; i++) {
        const Common__Tasks__Task *t = tn->g->tasks[i];
        if (t->task_id && t->task_id->head == id.head && t->task_id->tail == id.tail) {
            *alias = t->alias;
            us_pair_hex(t->module_id, module);
            return;
        }
    }
}

/* One LogResponse; false when the call broke. ts_ns: the distinct instant. */
static bool send_log(rpc_call *call, const store_log *l, int64_t ts_ns, const task_names *tn,
                     const char *swarm_hex)
{
    Core__UserServices__LogResponse r = CORE__USER_SERVICES__LOG_RESPONSE__INIT;
    char nx[33], tx[33], mod[33];
    const char *alias;
    us_hex_of_xid(l->node, nx);
    us_hex_of_xid(l->task, tx);
    names_of(tn, l->task, &alias, mod);
    size_t clen = 0;
    cleanup_free char *text = utf8_lossy(l->text, l->len, &clen);
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = ts_ns / 1000000000;
    ts.nanos = (int32_t)(ts_ns % 1000000000);
    r.node_id = nx;
    r.swarm_id = (char *)swarm_hex;
    r.task_id = tx;
    r.alias = (char *)alias;
    r.module_id = mod;
    r.iteration = (int32_t)l->iteration;
    r.circular = (int32_t)l->circular;
    r.timestamp = &ts;
    r.severity = (char *)severity_of(text);
    r.content.data = (uint8_t *)text;
    r.content.len = clen;
    return us_send(call, &r.base);
}

/* Distinct instants (ns) of rows, in their order, continuing from *prev. */
static int64_t *instants(const store_log *rows, size_t n, int64_t *prev)
{
    int64_t *ns = xcalloc(n + 1, sizeof(int64_t));
    for (size_t i = 0; i < n; i++) {
        int64_t t = us_ms_to_ns(rows[i].ts_ms);
        if (t <= *prev)
            t = *prev + 1000;
        ns[i] = *prev = t;
    }
    return ns;
}

static bool id_in(const char *xid, char **list, size_t n)
{
    if (n == 0)
        return true;
    node_id id = {0, 0}, want;
    node_id_parse_xid(xid, &id);
    for (size_t i = 0; i < n; i++)
        if (us_parse_id(list[i], &want) && node_id_equal(id, want))
            return true;
    return false;
}

void us_collect_logs(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__LogQuery *q =
        (Core__UserServices__LogQuery *)us_recv(call, &core__user_services__log_query__descriptor);
    if (!q)
        return;
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    if (!us_find_swarm(m, call, q->swarm_id, &sw, xid, &id)) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        return;
    }
    store_swarm_clear(&sw);
    us_hex(id, hex);
    store_log *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_log_list(m->st, xid, NULL, NULL, &rows, &n, &err) < 0) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    int64_t prev = INT64_MIN;
    cleanup_free int64_t *ns = instants(rows, n, &prev);
    task_names tn = {us_load_graph(m, xid, NULL)};
    int64_t from = us_ts_ns(q->start_time, INT64_MIN), to = us_ts_ns(q->end_time, INT64_MAX);
    bool desc = !strcasecmp(q->sort_order, "desc");
    size_t sent = 0;
    bool ok = true;
    for (size_t k = 0; k < n && ok && (q->limit <= 0 || sent < (size_t)q->limit); k++) {
        size_t i = desc ? n - 1 - k : k;
        const store_log *l = &rows[i];
        if (ns[i] < from || ns[i] > to || !id_in(l->node, q->node_ids, q->n_node_ids) ||
            !id_in(l->task, q->task_ids, q->n_task_ids) ||
            (q->iteration > 0 && l->iteration != (uint32_t)q->iteration) ||
            (q->circular > 0 && l->circular != (uint32_t)q->circular))
            continue;
        if (q->n_severity) {
            const char *sev = severity_of(l->text);
            bool match = false;
            for (size_t s = 0; s < q->n_severity; s++)
                match |= !strcasecmp(q->severity[s], sev);
            if (!match)
                continue;
        }
        ok = send_log(call, l, ns[i], &tn, hex);
        sent++;
    }
    us_free_graph(tn.g);
    store_logs_free(rows, n);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_stream_logs(manager *m, rpc_call *call, const user_caller *uc)
{
    char xid[NODE_XID_MAX + 1], hex[33];
    if (!us_recv_swarm_id(m, call, xid, hex))
        return;
    task_names tn = {us_load_graph(m, xid, NULL)};
    int64_t prev = INT64_MIN, last_seq = -1; /* -1: nothing read yet */
    bool ok = true;
    for (;;) {
        uint64_t gen = us_gen(m);
        bool live = us_swarm_live(m, xid);
        store_log *rows = NULL;
        size_t n = 0;
        mt_error *err = NULL;
        /* first what exists, in time order; then what was stored since (a higher seq) */
        int rc = last_seq < 0 ? store_log_list(m->st, xid, NULL, NULL, &rows, &n, &err)
                              : store_log_after(m->st, xid, last_seq, &rows, &n, &err);
        if (rc < 0) {
            us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
            mt_error_free(&err);
            ok = false;
            break;
        }
        if (last_seq < 0)
            last_seq = 0;
        for (size_t i = 0; i < n; i++)
            if (rows[i].seq > last_seq)
                last_seq = rows[i].seq;
        cleanup_free int64_t *ns = instants(rows, n, &prev);
        for (size_t i = 0; i < n && ok; i++)
            ok = send_log(call, &rows[i], ns[i], &tn, hex);
        store_logs_free(rows, n);
        if (!ok || !live || !us_wait(m, call, gen))
            break;
    }
    us_free_graph(tn.g);
    if (ok && !rpc_call_cancelled(call))
        rpc_call_finish(call, RPC_OK, NULL);
}
