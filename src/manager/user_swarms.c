/* user_swarms.c - modules, swarms, globals, results and logs of the user services.
 *
 * A swarm sent with the SDK lives in the store from SendSwarm on: its row in `swarms`
 * (PENDING), its graph (object "graph", the swarm_def written back as a Graph by graph.c, meta =
 * the user who sent it), its networks (object "networks") and its globals. StartSwarm reads
 * them back, builds the swarm_def with the modules' archives (objects "module") and hands it to
 * the runner like a swarm file's: one graph model, one runner. Swarm files get a "graph" object
 * too (runner.c), so every swarm is listed, shown and stopped the same way.
 *
 * Status for the SDK (SwarmStatusEnum has no COMPLETED): PENDING -> PENDING, RUNNING -> ACTIVE,
 * COMPLETED / STOPPED / FAILED -> STOPPED (GetSwarm says nothing more; `manta_manager status`
 * and the logs tell which and why).
 *
 * Results for the SDK (user-api.md 7.1): one ResultsResponse per (iteration, node, tag), the
 * newest value; iterations numbered 0, 1, 2, ... in the order they first produced the tag (the
 * SDK keeps only k contiguous iterations from 0, so a round without this tag must not leave a
 * gap). Logs (7.2): one LogResponse per task run, its output as UTF-8 (ill-formed bytes become
 * U+FFFD), timestamps made distinct (a record sharing the previous one's instant gets the
 * next microsecond), severity ERROR when the output holds one of the SDK's error keywords,
 * else INFO.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/results.pb-c.h"
#include "common/swarms.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "core/user_services.pb-c.h"
#include "clock.h"
#include "graph.h"
#include "mem.h"
#include "runner.h"
#include "strbuf.h"
#include "user_internal.h"
#include "utf8.h"

#define SHOWN_MAX     201
#define CHUNK         (4u << 20) /* bytes of a global per SelectGlobal message */
#define VALUE_MAX     1000000000u
#define NETWORKS_MAX  64
#define DATASETS_MAX  64
#define GLOBALS_SHOWN 32

/* ---- ids and swarms ------------------------------------------------------------------- */

static void pair_hex(const Common__System__PairId *p, char out[33])
{
    node_id id = {p ? p->head : 0, p ? p->tail : 0};
    us_hex(id, out);
}

static void hex_of_xid(const char *xid, char out[33])
{
    node_id id = {0, 0};
    node_id_parse_xid(xid, &id);
    us_hex(id, out);
}

/* The swarm a user names; false with the call finished (NOT_FOUND) when unknown. */
static bool find_swarm(manager *m, rpc_call *call, const char *given, store_swarm *sw,
                       char xid[NODE_XID_MAX + 1], node_id *id)
{
    node_id tmp;
    if (!id)
        id = &tmp;
    mt_error *err = NULL;
    int r = 0;
    if (us_parse_id(given, id)) {
        node_id_to_xid(*id, xid);
        r = store_swarm_get(m->st, xid, sw, &err);
    }
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return false;
    }
    if (r == 0) {
        char shown[SHOWN_MAX];
        us_fail(call, RPC_NOT_FOUND,
                "There is no swarm '%s' on this manager: ListSwarmIds gives the ids of its "
                "swarms.",
                us_shown(shown, sizeof(shown), given ? given : ""));
        return false;
    }
    return true;
}

/* Receive a StrId request naming a swarm and find it (the call is finished when not). */
static bool recv_swarm(manager *m, rpc_call *call, store_swarm *sw, char xid[NODE_XID_MAX + 1],
                       node_id *id)
{
    Common__System__StrId *q =
        (Common__System__StrId *)us_recv(call, &common__system__str_id__descriptor);
    if (!q)
        return false;
    bool found = find_swarm(m, call, q->id, sw, xid, id);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    return found;
}

static bool swarm_by_pair(manager *m, rpc_call *call, const Common__System__PairId *p,
                          store_swarm *sw, char xid[NODE_XID_MAX + 1])
{
    char hex[33];
    pair_hex(p, hex);
    return find_swarm(m, call, hex, sw, xid, NULL);
}

static bool ended(const char *status)
{
    return strcmp(status, "PENDING") != 0 && strcmp(status, "RUNNING") != 0;
}

static int sdk_status(const char *status)
{
    if (!strcmp(status, "PENDING"))
        return COMMON__SWARMS__SWARM_STATUS_ENUM__PENDING;
    if (!strcmp(status, "RUNNING"))
        return COMMON__SWARMS__SWARM_STATUS_ENUM__ACTIVE;
    return COMMON__SWARMS__SWARM_STATUS_ENUM__STOPPED;
}

/* The stored graph of a swarm (unpacked, owned) and its sender (owned, may be ""). */
static Common__Swarms__Graph *load_graph(manager *m, const char *xid, char **owner)
{
    store_object o = {0};
    mt_error *err = NULL;
    int r = store_object_get(m->st, "graph", xid, true, &o, &err);
    mt_error_free(&err);
    Common__Swarms__Graph *g = r == 1 ? common__swarms__graph__unpack(NULL, o.len, o.data) : NULL;
    if (owner)
        *owner = xstrdup(r == 1 ? o.meta : "");
    store_object_clear(&o);
    return g;
}

static void free_graph(Common__Swarms__Graph *g)
{
    if (g)
        protobuf_c_message_free_unpacked(&g->base, NULL);
}

/* A Swarm message of a stored swarm (strings point into sw and the buffers given). */
static void swarm_message(manager *m, const store_swarm *sw, Common__Swarms__Swarm *s, char hex[33],
                          char owner_id[33], Google__Protobuf__Timestamp ts[2])
{
    common__swarms__swarm__init(s);
    hex_of_xid(sw->id, hex);
    s->swarm_id = hex;
    s->cluster_id = m->us->cluster_id;
    cleanup_free char *owner = NULL;
    free_graph(load_graph(m, sw->id, &owner));
    owner_id[0] = '\0';
    if (*owner) {
        store_object u = {0};
        mt_error *err = NULL;
        if (store_object_get(m->st, "user", owner, false, &u, &err) == 1)
            snprintf(owner_id, 33, "%s", u.meta);
        mt_error_free(&err);
        store_object_clear(&u);
    }
    s->owner_id = owner_id;
    s->name = sw->name;
    ts[0] = us_ts(sw->created_ms);
    ts[1] = us_ts(sw->updated_ms);
    s->created_at = &ts[0];
    if (ended(sw->status)) {
        s->_last_stop_case = COMMON__SWARMS__SWARM___LAST_STOP_LAST_STOP;
        s->last_stop = &ts[1];
    }
    s->status = sdk_status(sw->status);
    s->_iteration_case = COMMON__SWARMS__SWARM___ITERATION_ITERATION;
    s->iteration = sw->iteration;
    s->_circular_case = COMMON__SWARMS__SWARM___CIRCULAR_CIRCULAR;
    s->circular = 0;
}

static void reply_swarm(manager *m, rpc_call *call, const store_swarm *sw)
{
    Common__Swarms__Swarm s;
    char hex[33], owner[33];
    Google__Protobuf__Timestamp ts[2];
    swarm_message(m, sw, &s, hex, owner, ts);
    us_reply(call, &s.base);
}

/* ---- modules ---------------------------------------------------------------------------- */

static int module_lookup(void *ctx, node_id id, Common__Tasks__Module **mod, char *msg,
                         size_t msg_size)
{
    manager *m = ctx;
    char hex[33];
    us_hex(id, hex);
    store_object o = {0};
    mt_error *err = NULL;
    int r = store_object_get(m->st, "module", hex, true, &o, &err);
    if (r == 0) /* a swarm file's module, kept for resuming its run (us_keep_modules) */
        r = store_object_get(m->st, "run_module", hex, true, &o, &err);
    if (r < 0) {
        snprintf(msg, msg_size, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return -1;
    }
    if (r == 0)
        return 0;
    *mod = common__tasks__module__unpack(NULL, o.len, o.data);
    store_object_clear(&o);
    if (!*mod) {
        snprintf(msg, msg_size, "the stored module is damaged; upload it again");
        return -1;
    }
    return 1;
}

void us_send_module(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__Tasks__Module *mod =
        (Common__Tasks__Module *)us_recv(call, &common__tasks__module__descriptor);
    if (!mod)
        return;
    const char *bad = NULL;
    if (!graph_text_ok(mod->name))
        bad = "its name must be 1 to 256 bytes of UTF-8 text without control characters";
    else if (!graph_text_ok(mod->image))
        bad = "its image must be 1 to 256 bytes of UTF-8 text without control characters";
    else if (mod->python_program.len == 0)
        bad = "its python_program (the zipped module) is empty";
    else if (mod->n_datasets > DATASETS_MAX)
        bad = "it names more than 64 datasets";
    for (size_t i = 0; !bad && i < mod->n_datasets; i++)
        if (!graph_text_ok(mod->datasets[i]))
            bad = "a dataset name is not 1 to 256 bytes of UTF-8 text without control characters";
    if (bad) {
        protobuf_c_message_free_unpacked(&mod->base, NULL);
        us_fail(call, RPC_INVALID_ARGUMENT, "The module was refused: %s.", bad);
        return;
    }
    node_id id;
    mt_error *err = NULL;
    char hex[33];
    int rc = node_id_random(&id, &err);
    size_t len = protobuf_c_message_get_packed_size(&mod->base);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    protobuf_c_message_pack(&mod->base, buf);
    us_hex(id, hex);
    if (rc == 0)
        rc = store_object_put(m->st, "module", hex, mod->name, buf, len, clock_wall_ms(), false,
                              &err);
    protobuf_c_message_free_unpacked(&mod->base, NULL);
    if (rc < 0) {
        us_fail(call, RPC_INTERNAL, "The module could not be saved: %s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    Common__System__StrId ans = COMMON__SYSTEM__STR_ID__INIT;
    ans.id = hex;
    us_reply(call, &ans.base);
}

static void id_list_reply(manager *m, rpc_call *call, const char *kind)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    store_object *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_object_list(m->st, kind, &rows, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    Common__System__CollectionIds ids = COMMON__SYSTEM__COLLECTION_IDS__INIT;
    cleanup_free char **p = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        p[i] = rows[i].id;
    ids.ids = p;
    ids.n_ids = n;
    us_reply(call, &ids.base);
    store_objects_free(rows, n);
}

void us_list_module_ids(manager *m, rpc_call *call, const user_caller *uc)
{
    id_list_reply(m, call, "module");
}

/* Send (stream) or answer one module as ModuleRequest; false when the call broke. */
static bool module_out(manager *m, rpc_call *call, const char *hex, bool stream)
{
    node_id id;
    Common__Tasks__Module *mod = NULL;
    char msg[256] = "";
    int r = us_parse_id(hex, &id) ? module_lookup(m, id, &mod, msg, sizeof(msg)) : 0;
    if (r <= 0) {
        if (stream)
            return true; /* removed meanwhile */
        char shown[SHOWN_MAX];
        if (r < 0)
            us_fail(call, RPC_INTERNAL, "The module could not be read: %s", msg);
        else
            us_fail(call, RPC_NOT_FOUND,
                    "There is no module '%s' on this manager: ListModuleIds gives the ids.",
                    us_shown(shown, sizeof(shown), hex));
        return false;
    }
    char canon[33];
    us_hex(id, canon);
    Core__UserServices__ModuleRequest a = CORE__USER_SERVICES__MODULE_REQUEST__INIT;
    a.module = mod;
    a.module_id = canon;
    bool ok = true;
    if (stream)
        ok = us_send(call, &a.base);
    else
        us_reply(call, &a.base);
    protobuf_c_message_free_unpacked(&mod->base, NULL);
    return ok;
}

void us_stream_modules(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    store_object *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_object_list(m->st, "module", &rows, &n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = module_out(m, call, rows[i].id, true);
    store_objects_free(rows, n);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_get_module(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__StrId *q =
        (Common__System__StrId *)us_recv(call, &common__system__str_id__descriptor);
    if (!q)
        return;
    module_out(m, call, q->id, false);
    protobuf_c_message_free_unpacked(&q->base, NULL);
}

void us_remove_module(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__StrId *q =
        (Common__System__StrId *)us_recv(call, &common__system__str_id__descriptor);
    if (!q)
        return;
    node_id id;
    char hex[33] = "", shown[SHOWN_MAX];
    us_shown(shown, sizeof(shown), q->id);
    bool parsed = us_parse_id(q->id, &id);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    mt_error *err = NULL;
    int r = 0;
    if (parsed) {
        us_hex(id, hex);
        r = store_object_delete(m->st, "module", hex, &err);
    }
    if (r < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
    } else if (r == 0) {
        us_fail(call, RPC_NOT_FOUND,
                "There is no module '%s' on this manager: ListModuleIds gives the ids.", shown);
    } else {
        us_response(call, "Module %s was removed.", hex);
    }
}

/* ---- sending and starting swarms --------------------------------------------------------- */

void us_send_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__SendSwarmRequest *q = (Core__UserServices__SendSwarmRequest *)us_recv(
        call, &core__user_services__send_swarm_request__descriptor);
    if (!q)
        return;
    node_id cid, ours;
    char shown[SHOWN_MAX];
    if (!us_parse_id(q->cluster_id, &cid) || !us_parse_id(m->us->cluster_id, &ours) ||
        !node_id_equal(cid, ours)) {
        us_fail(call, RPC_NOT_FOUND,
                "There is no cluster '%s': this manager is one cluster, %s (ListClusterIds).",
                us_shown(shown, sizeof(shown), q->cluster_id), m->us->cluster_id);
        protobuf_c_message_free_unpacked(&q->base, NULL);
        return;
    }
    const char *name = *q->name ? q->name : "Swarm";
    if (!graph_text_ok(name)) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        us_fail(call, RPC_INVALID_ARGUMENT,
                "The swarm name must be 1 to %d bytes of UTF-8 text without control characters.",
                GRAPH_TEXT_MAX);
        return;
    }
    graph_problem why = {0};
    swarm_def *def = graph_to_def(q->graph, name, module_lookup, m, NULL, false, false, &why);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (!def) {
        us_fail(call, why.code, "The swarm was refused: %s", why.msg);
        return;
    }
    node_id id;
    char xid[NODE_XID_MAX + 1];
    mt_error *err = NULL;
    size_t glen = 0;
    cleanup_free uint8_t *g = graph_pack(def, &glen);
    int rc = node_id_random(&id, &err);
    if (rc == 0) {
        node_id_to_xid(id, xid);
        rc = store_object_put(m->st, "graph", xid, uc->name, g, glen, clock_wall_ms(), true, &err);
    }
    if (rc == 0)
        rc = store_swarm_create(m->st, xid, def->name, clock_wall_ms(), &err);
    swarm_def_free(def);
    if (rc < 0) {
        us_fail(call, RPC_INTERNAL, "The swarm could not be saved: %s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    store_swarm sw = {0};
    if (store_swarm_get(m->st, xid, &sw, &err) != 1) {
        us_fail(call, RPC_INTERNAL, "The swarm could not be read back: %s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    char hex[33];
    us_hex(id, hex);
    log_info(m->log, "users", "swarm %s '%s' sent by %s", xid, sw.name,
             *uc->name ? uc->name : "(no token)");
    reply_swarm(m, call, &sw);
    store_swarm_clear(&sw);
    user_service_notify(m);
}

/* Read one Global message in place (no copy of its data): fields 1 PairId swarm_id, 2 string
 * tag, 3 bytes data; anything else skipped. False when the bytes are not such a message. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static bool parse_global(const uint8_t *buf, size_t len, node_id *swarm, const uint8_t **tag,
                         size_t *taglen, const uint8_t **data, size_t *dlen)
{
    const uint8_t *p = buf, *end = buf + len;
    *tag = *data = NULL;
    *taglen = *dlen = 0;
    swarm->head = swarm->tail = 0;
    while (p < end) {
        uint64_t key, v;
        if (!varint(&p, end, &key))
            return false;
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        if (wt == 0) {
            if (!varint(&p, end, &v))
                return false;
        } else if (wt == 1 || wt == 5) {
            size_t k = wt == 1 ? 8 : 4;
            if ((size_t)(end - p) < k)
                return false;
            p += k;
        } else if (wt == 2) {
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            if (field == 1) {
                Common__System__PairId *pid = common__system__pair_id__unpack(NULL, v, p);
                if (!pid)
                    return false;
                swarm->head = pid->head;
                swarm->tail = pid->tail;
                protobuf_c_message_free_unpacked(&pid->base, NULL);
            } else if (field == 2) {
                *tag = p;
                *taglen = v;
            } else if (field == 3) {
                *data = p;
                *dlen = v;
            }
            p += v;
        } else {
            return false;
        }
    }
    return true;
}

void us_initialize_global(manager *m, rpc_call *call, const user_caller *uc)
{
    rpc_bytes first = {0};
    node_id swarm = {0, 0};
    const uint8_t *tag = NULL, *data = NULL;
    size_t taglen = 0, dlen = 0, nmsg = 0;
    strbuf more = {0}; /* data of every message when there are several */
    for (;;) {
        rpc_bytes b = {0};
        int r = rpc_call_recv(call, &b);
        if (r < 0) {
            rpc_bytes_free(&first);
            sb_free(&more);
            return;
        }
        if (r == 0)
            break;
        node_id s2;
        const uint8_t *t2, *d2;
        size_t tl2, dl2;
        if (!parse_global(b.data, b.len, &s2, &t2, &tl2, &d2, &dl2)) {
            rpc_bytes_free(&b);
            rpc_bytes_free(&first);
            sb_free(&more);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                            "A message is not a valid common.results.Global: nothing was stored.");
            return;
        }
        if (nmsg == 0) {
            first = b;
            swarm = s2;
            tag = t2, taglen = tl2, data = d2, dlen = dl2;
        } else {
            if (dlen > VALUE_MAX || dl2 > VALUE_MAX - dlen) {
                rpc_bytes_free(&b);
                rpc_bytes_free(&first);
                sb_free(&more);
                rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                                "The global is larger than 1000000000 bytes, the most the "
                                "manager's store keeps: nothing was stored.");
                return;
            }
            if (nmsg == 1 && dlen)
                sb_append(&more, data, dlen);
            if (dl2)
                sb_append(&more, d2, dl2);
            dlen += dl2;
            rpc_bytes_free(&b);
        }
        nmsg++;
    }
    if (nmsg == 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "InitializeGlobal carried no message, so no global was stored. (The "
                        "SDK re-sends a failed upload as an empty stream: send the global "
                        "again.)");
        return;
    }
    if (nmsg > 1)
        data = (const uint8_t *)more.buf;
    cleanup_free char *tagz = xstrndup((const char *)(tag ? tag : (const uint8_t *)""), taglen);
    int code = RPC_OK;
    cleanup_free char *msg = NULL;
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    us_hex(swarm, hex);
    mt_error *err = NULL;
    if (strlen(tagz) != taglen || !graph_text_ok(tagz)) {
        code = RPC_INVALID_ARGUMENT;
        msg = xasprintf("The global's tag must be 1 to %d bytes of UTF-8 text without control "
                        "characters: nothing was stored.",
                        GRAPH_TEXT_MAX);
    } else if (dlen > VALUE_MAX) {
        code = RPC_INVALID_ARGUMENT;
        msg = xstrdup("The global is larger than 1000000000 bytes, the most the manager's store "
                      "keeps: nothing was stored.");
    } else {
        node_id_to_xid(swarm, xid);
        int r = store_swarm_get(m->st, xid, &sw, &err);
        if (r < 0) {
            code = RPC_INTERNAL;
            msg = xstrdup(mt_error_msg(err));
        } else if (r == 0) {
            code = RPC_NOT_FOUND;
            msg = xasprintf("There is no swarm %s on this manager: send the swarm (SendSwarm) "
                            "before its globals.",
                            hex);
        } else if (store_global_set(m->st, xid, tagz, data, dlen, &err) < 0) {
            code = RPC_INTERNAL;
            msg = xasprintf("The global could not be stored: %s", mt_error_msg(err));
        }
    }
    mt_error_free(&err);
    store_swarm_clear(&sw);
    rpc_bytes_free(&first);
    sb_free(&more);
    malloc_trim(0); /* the value arrived in many small pieces: give them back to the system */
    if (code != RPC_OK) {
        us_fail(call, code, "%s", msg);
        return;
    }
    char shown[SHOWN_MAX];
    us_response(call, "Global '%s' of swarm %s is set (%zu bytes).",
                us_shown(shown, sizeof(shown), tagz), hex, dlen);
}

static const char *const drivers[] = {"host", "bridge", "overlay"};

void us_initialize_networks(manager *m, rpc_call *call, const user_caller *uc)
{
    Common__System__Networks *q =
        (Common__System__Networks *)us_recv(call, &common__system__networks__descriptor);
    if (!q)
        return;
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    if (!swarm_by_pair(m, call, q->swarm_id, &sw, xid)) {
        protobuf_c_message_free_unpacked(&q->base, NULL);
        return;
    }
    const char *bad = NULL;
    if (q->n_networks > NETWORKS_MAX)
        bad = "a swarm has at most 64 networks";
    for (size_t i = 0; !bad && i < q->n_networks; i++) {
        const Common__System__Network *nw = q->networks[i];
        if (!nw || !graph_text_ok(nw->name)) {
            bad = "a network name must be 1 to 256 bytes of UTF-8 text";
            break;
        }
        bool known = false;
        for (size_t d = 0; d < ARRAY_LEN(drivers); d++)
            known |= !strcmp(nw->driver, drivers[d]);
        if (!known)
            bad = "a network's driver must be \"host\", \"bridge\" or \"overlay\"";
        for (size_t j = 0; !bad && j < i; j++)
            if (!strcmp(q->networks[j]->name, nw->name))
                bad = "two networks have the same name";
    }
    int code = RPC_OK;
    if (bad) {
        code = RPC_INVALID_ARGUMENT;
    } else if (strcmp(sw.status, "PENDING") != 0) {
        code = RPC_FAILED_PRECONDITION;
        bad = "the swarm has started already, and a running swarm keeps its networks";
    }
    mt_error *err = NULL;
    if (code == RPC_OK) {
        size_t len = protobuf_c_message_get_packed_size(&q->base);
        cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
        protobuf_c_message_pack(&q->base, buf);
        if (store_object_put(m->st, "networks", xid, "", buf, len, clock_wall_ms(), true, &err) <
            0) {
            code = RPC_INTERNAL;
            bad = mt_error_msg(err);
        }
    }
    size_t n = q->n_networks;
    protobuf_c_message_free_unpacked(&q->base, NULL);
    store_swarm_clear(&sw);
    if (code != RPC_OK)
        us_fail(call, code, "The networks were refused: %s.", bad);
    else
        us_response(call, "Swarm %s has %zu network%s.", xid, n, n == 1 ? "" : "s");
    mt_error_free(&err);
}

void us_start_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    bool found = recv_swarm(m, call, &sw, xid, &id);
    if (!found)
        return;
    us_hex(id, hex);
    if (!strcmp(sw.status, "RUNNING")) {
        store_swarm_clear(&sw);
        us_response(call, "Swarm %s has started.", hex);
        return;
    }
    if (ended(sw.status)) {
        us_fail(call, RPC_FAILED_PRECONDITION,
                "Swarm %s has ended (%s): a swarm runs once. Send it again (deploy_swarm) to run "
                "it anew.",
                hex, sw.status);
        store_swarm_clear(&sw);
        return;
    }
    Common__Swarms__Graph *g = load_graph(m, xid, NULL);
    store_object nets = {0};
    mt_error *err = NULL;
    Common__System__Networks *nw = NULL;
    if (store_object_get(m->st, "networks", xid, true, &nets, &err) == 1)
        nw = common__system__networks__unpack(NULL, nets.len, nets.data);
    mt_error_free(&err);
    store_object_clear(&nets);
    graph_problem why = {0};
    swarm_def *def = g ? graph_to_def(g, sw.name, module_lookup, m, nw, true, true, &why) : NULL;
    if (!g)
        snprintf(why.msg, sizeof(why.msg), "its graph is missing from the store"),
            why.code = RPC_INTERNAL;
    free_graph(g);
    if (nw)
        protobuf_c_message_free_unpacked(&nw->base, NULL);
    store_swarm_clear(&sw);
    if (!def) {
        us_fail(call, why.code, "Swarm %s cannot start: %s", hex, why.msg);
        return;
    }
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    bool already = runner_status(m, xid, NULL, NULL, 0) >= 0;
    if (already)
        swarm_def_free(def);
    else
        rc = runner_start_id(m, def, id, &err);
    pthread_mutex_unlock(&m->lock);
    if (rc < 0) {
        us_fail(call, RPC_FAILED_PRECONDITION,
                "Swarm %s could not start and has ended: %s. Connect nodes that can run its "
                "first tasks, then send it again.",
                hex, mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    log_info(m->log, "users", "swarm %s started by %s", xid, *uc->name ? uc->name : "(no token)");
    us_response(call, "Swarm %s has started.", hex);
}

/* ---- resuming swarms after a restart ---------------------------------------------------- */

void us_keep_modules(manager *m, const swarm_def *def)
{
    for (size_t i = 0; i < def->ntasks; i++) {
        const swarm_task_def *t = &def->tasks[i];
        char hex[33];
        us_hex(t->module_id, hex);
        store_object o = {0};
        mt_error *err = NULL;
        int r = store_object_get(m->st, "module", hex, false, &o, &err);
        store_object_clear(&o);
        if (r == 0)
            r = store_object_get(m->st, "run_module", hex, false, &o, &err);
        store_object_clear(&o);
        if (r == 0) {
            Common__Tasks__Module mod = COMMON__TASKS__MODULE__INIT;
            mod.python_program.data = t->pyz;
            mod.python_program.len = t->pyz_len;
            mod.image = t->image;
            mod.name = t->name ? t->name : t->alias;
            for (mod.n_datasets = 0; t->datasets && t->datasets[mod.n_datasets];)
                mod.n_datasets++;
            mod.datasets = t->datasets;
            size_t len = common__tasks__module__get_packed_size(&mod);
            cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
            common__tasks__module__pack(&mod, buf);
            r = store_object_put(m->st, "run_module", hex, "", buf, len, clock_wall_ms(), true,
                                 &err);
        }
        if (r < 0) {
            log_msg(m->log, LOG_ERROR, "runner", "keeping task '%s' for a restart: %s", t->alias,
                    mt_error_msg(err));
            mt_error_free(&err);
        }
    }
}

swarm_def *us_load_def(manager *m, const char *xid, const char *name, char *why, size_t why_size)
{
    Common__Swarms__Graph *g = load_graph(m, xid, NULL);
    if (!g) {
        snprintf(why, why_size, "its graph is missing from the store");
        return NULL;
    }
    store_object nets = {0};
    mt_error *err = NULL;
    Common__System__Networks *nw = NULL;
    if (store_object_get(m->st, "networks", xid, true, &nets, &err) == 1)
        nw = common__system__networks__unpack(NULL, nets.len, nets.data);
    mt_error_free(&err);
    store_object_clear(&nets);
    graph_problem gp = {0};
    swarm_def *def = graph_to_def(g, name, module_lookup, m, nw, false, true, &gp);
    if (!def)
        snprintf(why, why_size, "%s", gp.msg);
    free_graph(g);
    if (nw)
        protobuf_c_message_free_unpacked(&nw->base, NULL);
    return def;
}

/* ---- reading and stopping swarms ------------------------------------------------------- */

void us_get_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    bool found = recv_swarm(m, call, &sw, xid, NULL);
    if (found)
        reply_swarm(m, call, &sw);
    store_swarm_clear(&sw);
}

static bool list_swarms(manager *m, rpc_call *call, store_swarm **rows, size_t *n)
{
    Common__System__Empty *e =
        (Common__System__Empty *)us_recv(call, &common__system__empty__descriptor);
    if (!e)
        return false;
    protobuf_c_message_free_unpacked(&e->base, NULL);
    mt_error *err = NULL;
    if (store_swarm_list(m->st, rows, n, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return false;
    }
    return true;
}

void us_list_swarm_ids(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    if (!list_swarms(m, call, &rows, &n))
        return;
    Common__System__CollectionIds ids = COMMON__SYSTEM__COLLECTION_IDS__INIT;
    char(*hex)[33] = xcalloc(n + 1, sizeof(*hex));
    cleanup_free char **p = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        hex_of_xid(rows[i].id, hex[i]);
        p[i] = hex[i];
    }
    ids.ids = p;
    ids.n_ids = n;
    us_reply(call, &ids.base);
    free(hex);
    store_swarms_free(rows, n);
}

void us_stream_swarms(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    if (!list_swarms(m, call, &rows, &n))
        return;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        Common__Swarms__Swarm s;
        char hex[33], owner[33];
        Google__Protobuf__Timestamp ts[2];
        swarm_message(m, &rows[i], &s, hex, owner, ts);
        ok = us_send(call, &s.base);
    }
    store_swarms_free(rows, n);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_stream_swarm_tasks(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    bool found = recv_swarm(m, call, &sw, xid, NULL);
    store_swarm_clear(&sw);
    if (!found)
        return;
    Common__Swarms__Graph *g = load_graph(m, xid, NULL);
    bool ok = true;
    for (size_t i = 0; g && i < g->n_tasks && ok; i++) {
        const Common__Tasks__Task *t = g->tasks[i];
        Core__UserServices__TaskResponse r = CORE__USER_SERVICES__TASK_RESPONSE__INIT;
        char tid[33], mid[33];
        pair_hex(t->task_id, tid);
        pair_hex(t->module_id, mid);
        r.task_id = tid;
        r.module_id = mid;
        r.alias = t->alias;
        cleanup_free char(*prev)[33] = xcalloc(t->n_previous_tasks + 1, 33);
        cleanup_free char(*next)[33] = xcalloc(t->n_next_tasks + 1, 33);
        cleanup_free char **pp = xcalloc(t->n_previous_tasks + 1, sizeof(char *));
        cleanup_free char **np = xcalloc(t->n_next_tasks + 1, sizeof(char *));
        for (size_t k = 0; k < t->n_previous_tasks; k++) {
            pair_hex(t->previous_tasks[k], prev[k]);
            pp[k] = prev[k];
        }
        for (size_t k = 0; k < t->n_next_tasks; k++) {
            pair_hex(t->next_tasks[k], next[k]);
            np[k] = next[k];
        }
        r.previous_tasks = pp;
        r.n_previous_tasks = t->n_previous_tasks;
        r.next_tasks = np;
        r.n_next_tasks = t->n_next_tasks;
        r.conditions = t->conditions;
        r.n_conditions = t->n_conditions;
        r.order = t->order;
        if (t->_network_case == COMMON__TASKS__TASK___NETWORK_NETWORK) {
            r._network_case = CORE__USER_SERVICES__TASK_RESPONSE___NETWORK_NETWORK;
            r.network = t->network;
        }
        if (t->scheduling) {
            r.method = t->scheduling->method;
            r.fixed = t->scheduling->fixed;
            r.excepted_ids = t->scheduling->excepted_ids;
            r.n_excepted_ids = t->scheduling->n_excepted_ids;
            r.specified_ids = t->scheduling->specified_ids;
            r.n_specified_ids = t->scheduling->n_specified_ids;
            r.maximum = t->scheduling->maximum;
            r.max_type = t->scheduling->max_type;
            r.gpu = t->scheduling->gpu;
        }
        ok = us_send(call, &r.base);
    }
    free_graph(g);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

/* Remove a swarm that does not run, with everything it has. 1 removed, 0 unknown, -1. */
static int remove_swarm(manager *m, const char *xid, mt_error **err)
{
    int r = store_swarm_remove(m->st, xid, err);
    if (r > 0) {
        store_object_delete(m->st, "graph", xid, NULL);
        store_object_delete(m->st, "networks", xid, NULL);
    }
    return r;
}

void us_stop_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    Core__UserServices__StopSwarmRequest *q = (Core__UserServices__StopSwarmRequest *)us_recv(
        call, &core__user_services__stop_swarm_request__descriptor);
    if (!q)
        return;
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    bool found = find_swarm(m, call, q->swarm_id, &sw, xid, &id);
    bool remove = q->remove;
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (!found)
        return;
    us_hex(id, hex);
    cleanup_free char *why = xasprintf("stopped by user %s", *uc->name ? uc->name : "(no token)");
    pthread_mutex_lock(&m->lock);
    int st = runner_status(m, xid, NULL, NULL, 0);
    bool stopped = st == RUN_RUNNING && runner_cancel(m, xid, why) == 0;
    pthread_mutex_unlock(&m->lock);
    mt_error *err = NULL;
    const char *was = NULL;
    if (!stopped && !strcmp(sw.status, "PENDING")) {
        if (store_swarm_update(m->st, xid, "STOPPED", "stopped by its user before it started", 0,
                               clock_wall_ms(), &err) < 0) {
            us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
            mt_error_free(&err);
            store_swarm_clear(&sw);
            return;
        }
        user_service_notify(m);
    } else if (!stopped) {
        was = sw.status;
    }
    if (remove && remove_swarm(m, xid, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "Swarm %s has stopped, but could not be removed: %s", hex,
                mt_error_msg(err));
        mt_error_free(&err);
        store_swarm_clear(&sw);
        return;
    }
    if (was)
        us_response(call, "Swarm %s had already ended (%s)%s.", hex, was,
                    remove ? "; it was removed" : "");
    else
        us_response(call, "Swarm %s has stopped%s.", hex, remove ? " and was removed" : "");
    store_swarm_clear(&sw);
}

void us_remove_swarm(manager *m, rpc_call *call, const user_caller *uc)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    node_id id;
    bool found = recv_swarm(m, call, &sw, xid, &id);
    if (!found)
        return;
    us_hex(id, hex);
    pthread_mutex_lock(&m->lock);
    bool running = runner_status(m, xid, NULL, NULL, 0) == RUN_RUNNING;
    pthread_mutex_unlock(&m->lock);
    store_swarm_clear(&sw);
    if (running) {
        us_fail(call, RPC_FAILED_PRECONDITION,
                "Swarm %s is running: stop it (StopSwarm) before removing it.", hex);
        return;
    }
    mt_error *err = NULL;
    if (remove_swarm(m, xid, &err) < 0) {
        us_fail(call, RPC_INTERNAL, "%s", mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    us_response(call, "Swarm %s was removed with its globals, results and logs.", hex);
}

/* ---- results ---------------------------------------------------------------------------- */

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
        hex_of_xid(rows[i].node, nx);
        hex_of_xid(rows[i].task, tx);
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
    if (!find_swarm(m, call, q->swarm_id, sw, xid, &id)) {
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

/* Is the swarm still PENDING or RUNNING? (An unknown swarm - removed meanwhile - is not.) */
static bool swarm_live(manager *m, const char *xid)
{
    store_swarm sw = {0};
    mt_error *err = NULL;
    int r = store_swarm_get(m->st, xid, &sw, &err);
    mt_error_free(&err);
    bool live = r == 1 && !ended(sw.status);
    store_swarm_clear(&sw);
    return live;
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
        bool live = swarm_live(m, xid);
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
    if (!find_swarm(m, call, q->swarm_id, &sw, xid, &id)) {
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

static bool recv_swarm_id(manager *m, rpc_call *call, char xid[NODE_XID_MAX + 1], char hex[33])
{
    store_swarm sw = {0};
    node_id id;
    bool found = recv_swarm(m, call, &sw, xid, &id);
    store_swarm_clear(&sw);
    if (found && hex)
        us_hex(id, hex);
    return found;
}

void us_list_result_tags(manager *m, rpc_call *call, const user_caller *uc)
{
    char xid[NODE_XID_MAX + 1];
    if (!recv_swarm_id(m, call, xid, NULL))
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
    if (!recv_swarm_id(m, call, xid, NULL))
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
    if (!find_swarm(m, call, q->swarm_id, &sw, xid, &id)) {
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

/* ---- logs ------------------------------------------------------------------------------- */

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
            pair_hex(t->module_id, module);
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
    hex_of_xid(l->node, nx);
    hex_of_xid(l->task, tx);
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
    if (!find_swarm(m, call, q->swarm_id, &sw, xid, &id)) {
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
    task_names tn = {load_graph(m, xid, NULL)};
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
    free_graph(tn.g);
    store_logs_free(rows, n);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (ok)
        rpc_call_finish(call, RPC_OK, NULL);
}

void us_stream_logs(manager *m, rpc_call *call, const user_caller *uc)
{
    char xid[NODE_XID_MAX + 1], hex[33];
    if (!recv_swarm_id(m, call, xid, hex))
        return;
    task_names tn = {load_graph(m, xid, NULL)};
    int64_t prev = INT64_MIN, last_seq = -1; /* -1: nothing read yet */
    bool ok = true;
    for (;;) {
        uint64_t gen = us_gen(m);
        bool live = swarm_live(m, xid);
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
    free_graph(tn.g);
    if (ok && !rpc_call_cancelled(call))
        rpc_call_finish(call, RPC_OK, NULL);
}
