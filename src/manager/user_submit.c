/* user_submit.c - what a user sends for a swarm before it starts: modules (SendModule, and
 * reading them back), the swarm's graph (SendSwarm, checked by graph.c and kept in the store,
 * PENDING), its globals (InitializeGlobal, a client stream) and its networks
 * (InitializeNetworks). StartSwarm (user_swarms.c) then runs what was sent.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/results.pb-c.h"
#include "common/swarms.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "core/user_services.pb-c.h"
#include "clock.h"
#include "graph.h"
#include "mem.h"
#include "strbuf.h"
#include "user_internal.h"

#define VALUE_MAX    1000000000u
#define NETWORKS_MAX 64
#define DATASETS_MAX 64

/* ---- modules -------------------------------------------------------------------------------- */

int us_module_lookup(void *ctx, node_id id, Common__Tasks__Module **mod, mt_error **err)
{
    manager *m = ctx;
    char hex[33];
    us_hex(id, hex);
    store_object o = {0};
    int r = store_object_get(m->st, "module", hex, true, &o, err);
    if (r == 0) /* a swarm file's module, kept for resuming its run (us_keep_modules) */
        r = store_object_get(m->st, "run_module", hex, true, &o, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return 0;
    *mod = common__tasks__module__unpack(NULL, o.len, o.data);
    store_object_clear(&o);
    if (!*mod)
        return mt_error_set(err, MT_ERR_PARSE, "the stored module is damaged; upload it again");
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
    cleanup_error mt_error *err = NULL;
    int r = us_parse_id(hex, &id) ? us_module_lookup(m, id, &mod, &err) : 0;
    if (r <= 0) {
        if (stream)
            return true; /* removed meanwhile */
        char shown[SHOWN_MAX];
        if (r < 0) /* the reader's words, at most 255 bytes of them */
            us_fail(call, RPC_INTERNAL, "The module could not be read: %.255s", mt_error_msg(err));
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

/* ---- sending swarms ------------------------------------------------------------------------- */

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
    cleanup_error mt_error *why = NULL;
    swarm_def *def = graph_to_def(q->graph, name, us_module_lookup, m, NULL, false, false, &why);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    if (!def) {
        us_fail(call, mt_error_status(why, RPC_INTERNAL), "The swarm was refused: %s",
                mt_error_msg(why));
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
    us_reply_swarm(m, call, &sw);
    store_swarm_clear(&sw);
    user_service_notify(m);
}

/* ---- globals and networks ------------------------------------------------------------------- */

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

static bool swarm_by_pair(manager *m, rpc_call *call, const Common__System__PairId *p,
                          store_swarm *sw, char xid[NODE_XID_MAX + 1])
{
    char hex[33];
    us_pair_hex(p, hex);
    return us_find_swarm(m, call, hex, sw, xid, NULL);
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
