/* user_results.c - results and globals of swarms as the user services read them: select,
 * stream and delete results, list the tags of results and globals, read a global.
 *
 * Results for the SDK (user-api.md 7.1): one ResultsResponse per (iteration, node, tag), the
 * newest value; iterations numbered 0, 1, 2, ... in the order they first produced the tag (the
 * SDK keeps only k contiguous iterations from 0, so a round without this tag must not leave a
 * gap).
 */
#include <stdlib.h>
#include <string.h>

#include "common/system.pb-c.h"
#include "core/user_services.pb-c.h"
#include "mem.h"
#include "user_internal.h"

#define CHUNK (4u << 20) /* bytes of a global per SelectGlobal message */

/* ---- results -------------------------------------------------------------------------------- */

/* Iterations as the user sees them: the order in which they first produced the tag. */
typedef struct ranks {
    uint32_t *it;
    size_t n;
} ranks;

static uint32_t rank_of(ranks *r, uint32_t iteration)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->it[i] == iteration)
            return (uint32_t)i;
    r->it = xrealloc(r->it, (r->n + 1) * sizeof(uint32_t));
    r->it[r->n] = iteration;
    return (uint32_t)r->n++;
}

/* Send rows[i] for every i with keep[i] (keep NULL = all); false when the call broke. */
static bool send_results(rpc_call *call, const store_result *rows, size_t n, const bool *keep,
                         ranks *rk, const char *swarm_hex)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t rank = rank_of(rk, rows[i].iteration);
        if (keep && !keep[i])
            continue;
        Core__UserServices__ResultsResponse r = CORE__USER_SERVICES__RESULTS_RESPONSE__INIT;
        char nx[33], tx[33];
        us_hex_of_xid(rows[i].node, nx);
        us_hex_of_xid(rows[i].task, tx);
        r.node_id = nx;
        r.swarm_id = (char *)swarm_hex;
        r.task_id = tx;
        r.iteration = rank;
        r.tag = rows[i].tag;
        r.data.data = rows[i].data;
        r.data.len = rows[i].len;
        if (!us_send(call, &r.base))
            return false;
    }
    return true;
}

static Core__UserServices__ResultsRequest *recv_results_request(manager *m, rpc_call *call,
                                                                store_swarm *sw,
                                                                char xid[NODE_XID_MAX + 1],
                                                                char hex[33])
{
    Core__UserServices__ResultsRequest *q = (Core__UserServices__ResultsRequest *)us_recv(
        call, &core__user_services__results_request__descriptor);
    if (!q)
        return NULL;
    node_id id;
    if (!us_find_swarm(m, call, q->swarm_id, sw, xid, &id)) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        return NULL;
    }
    us_hex(id, hex);
    return q;
}

void us_select_results(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    Core__UserServices__ResultsRequest *q = recv_results_request(m, call, &sw, xid, hex);
    store_swarm_clear(&sw);
    if (!q)
        return;
    store_result *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    int rc = store_result_after(m->st, xid, q->tag, 0, &rows, &n, &err);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (rc < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    /* one message per (iteration, node): the newest row */
    cleanup_free bool *keep = xcalloc(n + 1, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        keep[i] = true;
        for (size_t j = i + 1; j < n && keep[i]; j++)
            if (rows[j].iteration == rows[i].iteration && !strcmp(rows[j].node, rows[i].node))
                keep[i] = false;
    }
    ranks rk = {0};
    bool ok = send_results(call, rows, n, keep, &rk, hex);
    free(rk.it);
    store_results_free(rows, n);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_stream_results(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    Core__UserServices__ResultsRequest *q = recv_results_request(m, call, &sw, xid, hex);
    store_swarm_clear(&sw);
    if (!q)
        return;
    cleanup_free char *tag = xstrdup(q->tag);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    ranks rk = {0};
    int64_t last = 0;
    bool ok = true;
    for (;;) {
        uint64_t gen = us_gen(m);
        bool live = us_swarm_live(m, xid);
        store_result *rows = NULL;
        size_t n = 0;
        mt_error *err = NULL;
        if (store_result_after(m->st, xid, tag, last, &rows, &n, &err) < 0) {
            us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
            mt_error_free(&err);
            ok = false;
            break;
        }
        if (n)
            last = rows[n - 1].seq;
        ok = send_results(call, rows, n, NULL, &rk, hex);
        store_results_free(rows, n);
        if (!ok || !live || !us_wait(m, call, gen))
            break;
    }
    free(rk.it);
    if (ok && !rpc_call_cancelled(call))
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_delete_results(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__DeleteResultsRequest *q =
        (Core__UserServices__DeleteResultsRequest *)us_recv(
            call, &core__user_services__delete_results_request__descriptor);
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
    char nx[NODE_XID_MAX + 1], tx[NODE_XID_MAX + 1];
    const char *node = NULL, *task = NULL;
    node_id x;
    bool bad = false;
    if (q->_node_id_case && *q->node_id) {
        bad |= !us_parse_id(q->node_id, &x);
        node_id_to_xid(x, nx);
        node = nx;
    }
    if (q->_task_id_case && *q->task_id) {
        bad |= !us_parse_id(q->task_id, &x);
        node_id_to_xid(x, tx);
        task = tx;
    }
    if (bad || !*q->tag) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        us_fail(call, RPC_INVALID_ARGUMENT,
                "DeleteResults needs a tag, and node and task ids of 32 hex digits (as "
                "SelectResults gives them).");
        return;
    }
    /* the iteration the user gives is the one SelectResults shows */
    int64_t iteration = -1;
    mt_error *err = NULL;
    if (q->_iteration_case) {
        store_result *rows = NULL;
        size_t n = 0;
        if (store_result_list(m->st, xid, q->tag, -1, false, &rows, &n, &err) < 0) {
            protobuf_c_message_free_unpacked(&q->base, NULL);
            us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
            mt_error_free(&err);
            return;
        }
        ranks rk = {0};
        iteration = INT64_MAX; /* a rank nobody has: nothing to delete */
        for (size_t i = 0; i < n; i++)
            if (rank_of(&rk, rows[i].iteration) == q->iteration)
                iteration = rows[i].iteration;
        free(rk.it);
        store_results_free(rows, n);
    }
    int r = iteration == INT64_MAX
                ? 0
                : store_result_delete(m->st, xid, q->tag, node, task, iteration, &err);
    char shown[SHOWN_MAX];
    us_shown(shown, sizeof(shown), q->tag);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    us_response(call, "Deleted %d result%s of tag '%s' of swarm %s.", r, r == 1 ? "" : "s", shown,
                hex);
}

/* ---- tags and globals ----------------------------------------------------------------------- */

static void tags_reply(rpc_call *call, char **tags, const size_t *bytes, size_t n)
{
    Core__UserServices__Tags t = CORE__USER_SERVICES__TAGS__INIT;
    cleanup_free Core__UserServices__Tags__GbUsagePerTagEntry *e = xcalloc(n + 1, sizeof(*e));
    cleanup_free Core__UserServices__Tags__GbUsagePerTagEntry **p = xcalloc(n + 1, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        core__user_services__tags__gb_usage_per_tag_entry__init(&e[i]);
        e[i].key = tags[i];
        e[i].value = (float)((double)bytes[i] / 1e9);
        p[i] = &e[i];
    }
    t.gb_usage_per_tag = p;
    t.n_gb_usage_per_tag = n;
    us_reply(call, &t.base);
}

void us_list_result_tags(manager *m, rpc_call *call, const user_caller *uc)
{
    char xid[NODE_XID_MAX + 1];
    if (!us_recv_swarm_id(m, call, xid, NULL))
        return;
    store_result *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_result_list(m->st, xid, NULL, -1, false, &rows, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    cleanup_free char **tags = xcalloc(n + 1, sizeof(char *));
    cleanup_free size_t *bytes = xcalloc(n + 1, sizeof(size_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k && strcmp(tags[j], rows[i].tag) != 0)
            j++;
        if (j == k)
            tags[k++] = rows[i].tag;
        bytes[j] += rows[i].len;
    }
    tags_reply(call, tags, bytes, k);
    store_results_free(rows, n);
}

void us_list_global_tags(manager *m, rpc_call *call, const user_caller *uc)
{
    char xid[NODE_XID_MAX + 1];
    if (!us_recv_swarm_id(m, call, xid, NULL))
        return;
    cleanup_strv char **tags = NULL;
    cleanup_free size_t *lens = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_global_list(m->st, xid, &tags, &lens, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    tags_reply(call, tags, lens, n);
}

void us_select_global(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__GlobalRequest *q = (Core__UserServices__GlobalRequest *)us_recv(
        call, &core__user_services__global_request__descriptor);
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
    cleanup_free char *tag = xstrdup(q->tag);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    cleanup_free uint8_t *data = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    int r = store_global_get(m->st, xid, tag, &data, &len, &err);
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    if (r == 0) {
        char shown[SHOWN_MAX];
        us_fail(call, RPC_NOT_FOUND, "Swarm %s has no global '%s': ListGlobalTags lists them.", hex,
                us_shown(shown, sizeof(shown), tag));
        return;
    }
    /* in pieces: the SDK's caller concatenates `data` */
    size_t off = 0;
    do {
        size_t k = len - off < CHUNK ? len - off : CHUNK;
        Core__UserServices__SelectGlobalResponse a =
            CORE__USER_SERVICES__SELECT_GLOBAL_RESPONSE__INIT;
        a.swarm_id = hex;
        a.tag = tag;
        a.data.data = data + off;
        a.data.len = k;
        if (!us_send(call, &a.base))
            return;
        off += k;
    } while (off < len);
    rpc_call_finish(call, RPC_OK, NULL);
}
