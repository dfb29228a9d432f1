/* web_api.c - the dashboard's JSON views (docs/dashboard.md): the nodes with their load, the
 * swarms with their graph, placement and history, the task logs, and stopping a swarm (the
 * numeric results are web_results.c's). Everything is read from the store, and briefly, under
 * m->lock, from the node registry and the runs. Ids are shown as the SDK shows them (32 hex
 * digits). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/informations.pb-c.h"
#include "clock.h"
#include "mem.h"
#include "runner.h"
#include "user_service.h"
#include "utf8.h"
#include "web_impl.h"

#define LOGS_DEFAULT 200
#define LOGS_MAX     2000
#define ERRORS_SHOWN 50

void web_hex_of_xid(const char *xid, char out[33])
{
    node_id id = {0, 0};
    node_id_parse_xid(xid, &id);
    node_id_to_hex(id, out);
}

static json_t *hex_json(const char *xid)
{
    char hex[33];
    web_hex_of_xid(xid, hex);
    return json_string(hex);
}

/* ---- names: node xid -> alias, task xid -> alias -------------------------------------------- */

void web_names_put(web_names *ns, const char *xid, const char *name)
{
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->v[i].xid, xid)) {
            free(ns->v[i].name);
            ns->v[i].name = xstrdup(name);
            return;
        }
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? 2 * ns->cap : 32;
        ns->v = xrealloc(ns->v, ns->cap * sizeof(*ns->v));
    }
    snprintf(ns->v[ns->n].xid, sizeof(ns->v[ns->n].xid), "%s", xid);
    ns->v[ns->n++].name = xstrdup(name);
}

const char *web_names_get(const web_names *ns, const char *xid)
{
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->v[i].xid, xid))
            return ns->v[i].name;
    return "";
}

void web_names_free(web_names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i].name);
    free(ns->v);
    *ns = (web_names){0};
}

void web_node_names(manager *m, web_names *ns)
{
    store_binding *b = NULL;
    size_t nb = 0;
    mt_error *err = NULL;
    if (store_binding_list(m->st, &b, &nb, &err) == 0)
        for (size_t i = 0; i < nb; i++)
            web_names_put(ns, b[i].node, b[i].subject);
    mt_error_free(&err);
    store_bindings_free(b, nb);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nnodes; i++)
        if (*m->nodes[i]->alias)
            web_names_put(ns, m->nodes[i]->xid, m->nodes[i]->alias);
    pthread_mutex_unlock(&m->lock);
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static json_t *datasets_json(const char *joined)
{
    json_t *a = json_array();
    const char *p = joined;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    return a;
}

/* The load of an in-memory node: cpu, memory, history (lock held). */
static void node_load(const mgr_node *n, json_t *o, bool history)
{
    Common__Informations__MetricsSnapshot *ms =
        n->metrics.len
            ? common__informations__metrics_snapshot__unpack(NULL, n->metrics.len, n->metrics.data)
            : NULL;
    json_t *cpu = json_null(), *mem = json_null();
    if (ms && ms->cpu)
        cpu = json_pack("{s:f, s:i}", "percent", (double)ms->cpu->usage_percent, "count",
                        (int)ms->cpu->count);
    if (ms && ms->memory)
        mem = json_pack("{s:f, s:I, s:I}", "percent", (double)ms->memory->percent_used, "used",
                        (json_int_t)ms->memory->used_bytes, "total",
                        (json_int_t)ms->memory->total_bytes);
    if (ms)
        protobuf_c_message_free_unpacked(&ms->base, NULL);
    json_object_set_new(o, "cpu", cpu);
    json_object_set_new(o, "memory", mem);
    if (!history)
        return;
    json_t *h = json_array();
    for (unsigned i = 0; i < n->hist_n; i++) { /* a tenth of a percent is all a sparkline shows */
        const mgr_sample *s = &n->hist[(n->hist_head + i) % MGR_HIST_LEN];
        json_array_append_new(h,
                              json_pack("[I, f, f]", (json_int_t)s->wall_ms,
                                        round(s->cpu * 10.0) / 10.0, round(s->mem * 10.0) / 10.0));
    }
    json_object_set_new(o, "history", h);
}

json_t *api_nodes_json(manager *m, bool history)
{
    store_node *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_node_list(m->st, &rows, &n, &err) < 0) {
        log_warn(m->log, "web", "listing the nodes: %s", mt_error_msg(err));
        mt_error_free(&err);
    }
    web_names aliases = {0};
    web_node_names(m, &aliases);
    json_t *list = json_array();
    int64_t wall = clock_wall_ms(), mono = clock_mono_ms();
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        const store_node *sn = &rows[i];
        node_id id = {0, 0};
        node_id_parse_xid(sn->id, &id);
        const mgr_node *mn = mgr_node_find(m, id);
        const char *status = sn->status;
        if (mn && mn->connected)
            status = "CONNECTED";
        else if (!mn && !strcmp(status, "CONNECTED"))
            status = "DISCONNECTED"; /* not heard from since this manager started */
        int64_t seen = mn && mn->last_seen_ms ? wall - (mono - mn->last_seen_ms) : sn->last_seen_ms;
        json_t *o =
            json_pack("{s:o, s:s, s:s, s:s, s:s, s:o, s:i, s:I}", "id", hex_json(sn->id), "alias",
                      web_names_get(&aliases, sn->id), "hostname", sn->hostname, "status", status,
                      "platform", sn->platform, "datasets", datasets_json(sn->datasets), "running",
                      mn ? (int)mn->running : 0, "last_seen_ms", (json_int_t)seen);
        if (mn) {
            node_load(mn, o, history);
        } else {
            json_object_set_new(o, "cpu", json_null());
            json_object_set_new(o, "memory", json_null());
            if (history)
                json_object_set_new(o, "history", json_array());
        }
        json_array_append_new(list, o);
    }
    pthread_mutex_unlock(&m->lock);
    web_names_free(&aliases);
    store_nodes_free(rows, n);
    return json_pack("{s:I, s:o}", "now_ms", (json_int_t)wall, "nodes", list);
}

int api_nodes(web_req *rq, json_t **out)
{
    const char *h = web_arg(rq, "history");
    *out = api_nodes_json(rq->m, !h || strcmp(h, "0"));
    return 200;
}

/* ---- swarms --------------------------------------------------------------------------------- */

static json_t *swarm_json(const store_swarm *sw)
{
    return json_pack("{s:o, s:s, s:s, s:i, s:s, s:I, s:I}", "id", hex_json(sw->id), "name",
                     sw->name, "status", sw->status, "iteration", (int)sw->iteration, "detail",
                     sw->detail, "created_ms", (json_int_t)sw->created_ms, "updated_ms",
                     (json_int_t)sw->updated_ms);
}

int api_swarms(web_req *rq, json_t **out)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_swarm_list(rq->m->st, &rows, &n, &err) < 0) {
        int st = web_error(out, 500, "The swarms could not be read: %s", mt_error_msg(err));
        mt_error_free(&err);
        return st;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, swarm_json(&rows[i]));
    store_swarms_free(rows, n);
    *out = json_pack("{s:o}", "swarms", list);
    return 200;
}

int web_find_swarm(web_req *rq, store_swarm *sw, char xid[NODE_XID_MAX + 1], json_t **out)
{
    node_id id;
    if (!rq->swarm || !node_id_parse_hex(rq->swarm, &id))
        return web_error(out, 404, "There is no swarm with that id: ids are 32 hex digits.");
    node_id_to_xid(id, xid);
    mt_error *err = NULL;
    int r = store_swarm_get(rq->m->st, xid, sw, &err);
    if (r < 0) {
        int st = web_error(out, 500, "The swarm could not be read: %s", mt_error_msg(err));
        mt_error_free(&err);
        return st;
    }
    if (r == 0)
        return web_error(out, 404, "There is no swarm %s on this manager.", rq->swarm);
    return 1;
}

/* ---- what is kept between requests ---------------------------------------------------------- */

#define CACHE_SWARMS 16

typedef struct cache_entry {
    web_lru_slot slot;   /* the swarm's xid */
    json_t *graph;       /* tasks and edges, or NULL until read */
    json_t *tasks;       /* task xid -> alias */
    store_round *rounds; /* the history, of the logs up to rounds_seq */
    size_t nrounds;
    int64_t rounds_seq;
} cache_entry;

struct web_cache {
    pthread_mutex_t mu;
    uint64_t tick;
    cache_entry e[CACHE_SWARMS];
};

web_cache *web_cache_new(void)
{
    web_cache *c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void entry_clear(void *slot)
{
    cache_entry *e = slot;
    free(e->rounds);
    json_decref(e->graph);
    json_decref(e->tasks);
    memset(e, 0, sizeof(*e));
}

void web_cache_free(web_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CACHE_SWARMS; i++)
        entry_clear(&c->e[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void *web_lru_get(void *slots, size_t n, size_t size, const char *key, uint64_t *tick,
                  void (*clear)(void *slot))
{
    web_lru_slot *lru = slots;
    for (size_t i = 0; i < n; i++) {
        web_lru_slot *s = (web_lru_slot *)((char *)slots + i * size);
        if (!strcmp(s->key, key)) {
            s->used = ++*tick;
            return s;
        }
        if (s->used < lru->used)
            lru = s;
    }
    clear(lru);
    snprintf(lru->key, sizeof(lru->key), "%s", key);
    lru->used = ++*tick;
    return lru;
}

/* The entry of a swarm, made (replacing the least recently used) if needed. c->mu held. */
static cache_entry *cache_get(web_cache *c, const char *xid)
{
    return web_lru_get(c->e, CACHE_SWARMS, sizeof(c->e[0]), xid ? xid : "", &c->tick, entry_clear);
}

/* Read a swarm's graph: JSON (tasks, edges) and task xid -> alias. */
static void graph_read(manager *m, const store_swarm *sw, json_t **graph, json_t **tasks)
{
    cleanup_error mt_error *why = NULL;
    swarm_def *def = us_load_def(m, sw->id, sw->name, &why);
    json_t *tl = json_array(), *edges = json_array();
    *tasks = json_object();
    for (size_t i = 0; def && i < def->ntasks; i++) {
        const swarm_task_def *t = &def->tasks[i];
        char tx[NODE_XID_MAX + 1];
        node_id_to_xid(t->task_id, tx);
        json_object_set_new(*tasks, tx, json_string(t->alias));
        json_t *ds = json_array();
        for (char **d = t->datasets; d && *d; d++)
            json_array_append_new(ds, json_string(*d));
        json_array_append_new(tl, json_pack("{s:s, s:s, s:s, s:o, s:b, s:I}", "alias", t->alias,
                                            "name", t->name ? t->name : "", "method",
                                            t->method_all ? "all" : "any", "datasets", ds, "gpu",
                                            t->gpu, "order", (json_int_t)t->order));
        for (size_t k = 0; k < t->nnext; k++)
            json_array_append_new(edges, json_pack("{s:s, s:s}", "from", t->alias, "to",
                                                   def->tasks[t->next[k]].alias));
    }
    *graph = json_pack("{s:o, s:o}", "tasks", tl, "edges", edges);
    if (!def)
        json_object_set_new(*graph, "missing", json_string(mt_error_msg(why)));
    swarm_def_free(def);
}

/* The tasks of a swarm's graph as JSON (owned), and (task xid -> alias) in *tasks. A graph is
 * read once: it never changes. */
static json_t *graph_json(web_req *rq, const store_swarm *sw, web_names *tasks)
{
    pthread_mutex_lock(&rq->cache->mu);
    cache_entry *e = cache_get(rq->cache, sw->id);
    if (!e->graph) {
        graph_read(rq->m, sw, &e->graph, &e->tasks);
        if (json_object_get(e->graph, "missing")) { /* perhaps not yet: read it again next time */
            json_t *g = e->graph, *t = e->tasks;
            e->graph = e->tasks = NULL;
            pthread_mutex_unlock(&rq->cache->mu);
            json_decref(t);
            return g;
        }
    }
    const char *tx;
    json_t *alias;
    json_object_foreach(e->tasks, tx, alias) web_names_put(tasks, tx, json_string_value(alias));
    json_t *g = json_deep_copy(e->graph);
    pthread_mutex_unlock(&rq->cache->mu);
    return g;
}

/* The history of a swarm (per iteration of its logs): what was read before, and the logs
 * stored since. *out owned (free()). */
static void history_read(web_req *rq, const char *xid, store_round **out, size_t *nout)
{
    pthread_mutex_lock(&rq->cache->mu);
    cache_entry *e = cache_get(rq->cache, xid);
    int64_t seq = e->rounds_seq;
    size_t n = e->nrounds;
    store_round *r = n ? xcalloc(n, sizeof(*r)) : NULL;
    if (n)
        memcpy(r, e->rounds, n * sizeof(*r));
    pthread_mutex_unlock(&rq->cache->mu);
    store_round *add = NULL;
    size_t nadd = 0;
    mt_error *err = NULL;
    if (store_log_rounds(rq->m->st, xid, seq, &add, &nadd, &err) < 0) {
        log_warn(rq->m->log, "web", "reading the logs of swarm %s: %s", xid, mt_error_msg(err));
        mt_error_free(&err);
    }
    for (size_t i = 0; i < nadd; i++) { /* merge: both are by iteration */
        const store_round *a = &add[i];
        size_t k = 0;
        while (k < n && r[k].iteration < a->iteration)
            k++;
        if (k < n && r[k].iteration == a->iteration) {
            r[k].start_ms = a->start_ms < r[k].start_ms ? a->start_ms : r[k].start_ms;
            r[k].end_ms = a->end_ms > r[k].end_ms ? a->end_ms : r[k].end_ms;
            r[k].logs += a->logs;
        } else {
            r = xrealloc(r, (n + 1) * sizeof(*r));
            memmove(r + k + 1, r + k, (n - k) * sizeof(*r));
            r[k] = *a;
            n++;
        }
        seq = a->last_seq > seq ? a->last_seq : seq;
    }
    free(add);
    pthread_mutex_lock(&rq->cache->mu);
    e = cache_get(rq->cache, xid);
    if (seq > e->rounds_seq) {
        free(e->rounds);
        e->rounds = n ? xcalloc(n, sizeof(*r)) : NULL;
        if (n)
            memcpy(e->rounds, r, n * sizeof(*r));
        e->nrounds = n;
        e->rounds_seq = seq;
    }
    pthread_mutex_unlock(&rq->cache->mu);
    *out = r;
    *nout = n;
}

typedef struct place_ctx {
    json_t *list;
    const web_names *nodes;
} place_ctx;

static void place_one(void *ctx, const char *task, const char *node_xid, const char *state)
{
    place_ctx *pc = ctx;
    json_array_append_new(pc->list, json_pack("{s:s, s:o, s:s, s:s}", "alias", task, "node",
                                              hex_json(node_xid), "node_alias",
                                              web_names_get(pc->nodes, node_xid), "state", state));
}

int api_swarm(web_req *rq, json_t **out)
{
    manager *m = rq->m;
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    int found = web_find_swarm(rq, &sw, xid, out);
    if (found != 1)
        return found;
    web_names tasks = {0}, nodes = {0};
    web_node_names(m, &nodes);
    json_t *o = swarm_json(&sw);
    json_object_set_new(o, "graph", graph_json(rq, &sw, &tasks));

    /* where each task runs now: the run's memory, else the logs of the last iteration */
    place_ctx pc = {json_array(), &nodes};
    node_id id = {0, 0};
    node_id_parse_xid(xid, &id);
    pthread_mutex_lock(&m->lock);
    int64_t current = runner_current(m, id, place_one, &pc);
    pthread_mutex_unlock(&m->lock);
    store_round *rounds = NULL;
    size_t nrounds = 0;
    mt_error *err = NULL;
    history_read(rq, xid, &rounds, &nrounds);
    if (current < 0 && nrounds) { /* ended (or not resumed yet): its last iteration's logs */
        current = rounds[nrounds - 1].iteration;
        store_log *logs = NULL;
        size_t nlogs = 0;
        if (store_log_index(m->st, xid, current, &logs, &nlogs, &err) == 0)
            for (size_t i = 0; i < nlogs; i++)
                place_one(&pc, web_names_get(&tasks, logs[i].task), logs[i].node, "DONE");
        mt_error_free(&err);
        store_logs_free(logs, nlogs);
    }
    json_object_set_new(o, "placement",
                        json_pack("{s:I, s:o}", "iteration",
                                  (json_int_t)(current < 0 ? 0 : current), "tasks", pc.list));

    /* history: per iteration, from the task logs and the errors */
    store_errrow *errs = NULL;
    size_t nerrs = 0;
    if (store_error_list(m->st, xid, &errs, &nerrs, &err) < 0) {
        log_warn(m->log, "web", "reading the errors of swarm %s: %s", xid, mt_error_msg(err));
        mt_error_free(&err);
    }
    json_t *hist = json_array();
    for (size_t r = 0; r < nrounds; r++) {
        size_t nerr = 0;
        for (size_t i = 0; i < nerrs; i++)
            nerr += errs[i].iteration == rounds[r].iteration;
        json_array_append_new(
            hist, json_pack("{s:I, s:I, s:I, s:I, s:I}", "iteration",
                            (json_int_t)rounds[r].iteration, "start_ms",
                            (json_int_t)rounds[r].start_ms, "end_ms", (json_int_t)rounds[r].end_ms,
                            "instances", (json_int_t)rounds[r].logs, "errors", (json_int_t)nerr));
    }
    free(rounds);
    json_object_set_new(o, "history", hist);
    json_t *el = json_array();
    for (size_t i = nerrs > ERRORS_SHOWN ? nerrs - ERRORS_SHOWN : 0; i < nerrs; i++)
        json_array_append_new(
            el, json_pack("{s:I, s:o, s:s, s:I, s:s}", "ts_ms", (json_int_t)errs[i].ts_ms, "node",
                          hex_json(errs[i].node), "task", web_names_get(&tasks, errs[i].task),
                          "iteration", (json_int_t)errs[i].iteration, "text", errs[i].content));
    json_object_set_new(o, "errors", el);
    store_errors_free(errs, nerrs);
    web_names_free(&tasks);
    web_names_free(&nodes);
    store_swarm_clear(&sw);
    *out = o;
    return 200;
}

/* ---- logs ----------------------------------------------------------------------------------- */

static int int_arg(web_req *rq, const char *name, long long lo, long long hi, long long dflt,
                   long long *v, json_t **out)
{
    const char *s = web_arg(rq, name);
    *v = dflt;
    if (!s || !*s)
        return 0;
    char *end = NULL;
    *v = strtoll(s, &end, 10);
    if (*end || *v < lo || *v > hi)
        return web_error(out, 400, "%s is a whole number from %lld to %lld.", name, lo, hi);
    return 0;
}

int api_logs(web_req *rq, json_t **out)
{
    long long it, after, limit;
    int st;
    if ((st = int_arg(rq, "iteration", 0, UINT32_MAX, -1, &it, out)) ||
        (st = int_arg(rq, "after", 0, INT64_MAX, 0, &after, out)) ||
        (st = int_arg(rq, "limit", 1, LOGS_MAX, LOGS_DEFAULT, &limit, out)))
        return st;
    const char *node = web_arg(rq, "node"), *q = web_arg(rq, "q");
    char nx[NODE_XID_MAX + 1] = "";
    if (node && *node) {
        node_id nid;
        if (!node_id_parse_hex(node, &nid))
            return web_error(out, 400, "node is a node id (32 hex digits).");
        node_id_to_xid(nid, nx);
    }
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    int found = web_find_swarm(rq, &sw, xid, out);
    if (found != 1)
        return found;
    web_names tasks = {0}, nodes = {0};
    json_decref(graph_json(rq, &sw, &tasks));
    store_swarm_clear(&sw);
    web_node_names(rq->m, &nodes);
    store_log_filter f = {.swarm = xid,
                          .node = *nx ? nx : NULL,
                          .text = q,
                          .iteration = it,
                          .after_seq = after,
                          .limit = limit};
    store_log *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_log_search(rq->m->st, &f, &rows, &n, &err) < 0) {
        st = web_error(out, 500, "The logs could not be read: %s", mt_error_msg(err));
        mt_error_free(&err);
        web_names_free(&tasks);
        web_names_free(&nodes);
        return st;
    }
    json_t *list = json_array();
    int64_t seq = after;
    for (size_t i = 0; i < n; i++) {
        const store_log *l = &rows[i];
        seq = l->seq > seq ? l->seq : seq;
        json_t *text = json_stringn_nocheck(l->text, l->len);
        if (!json_string_value(text) || !utf8_valid(l->text, l->len)) {
            json_decref(text);
            char *clean = utf8_clean_dup(l->text);
            text = json_string(clean);
            free(clean);
        }
        const char *alias = web_names_get(&tasks, l->task);
        json_array_append_new(
            list, json_pack("{s:I, s:I, s:o, s:s, s:s, s:I, s:o}", "seq", (json_int_t)l->seq,
                            "ts_ms", (json_int_t)l->ts_ms, "node", hex_json(l->node), "node_alias",
                            web_names_get(&nodes, l->node), "task", *alias ? alias : l->task,
                            "iteration", (json_int_t)l->iteration, "text", text));
    }
    store_logs_free(rows, n);
    web_names_free(&tasks);
    web_names_free(&nodes);
    *out = json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "logs", list);
    return 200;
}

/* ---- the one action ------------------------------------------------------------------------- */

int api_stop(web_req *rq, json_t **out)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1], hex[33];
    int found = web_find_swarm(rq, &sw, xid, out);
    if (found != 1)
        return found;
    web_hex_of_xid(xid, hex);
    mt_error *err = NULL;
    int rc = user_swarm_stop(rq->m, xid, sw.status, rq->user, &err);
    int st;
    if (rc < 0) {
        st = web_error(out, 500, "Swarm %s could not be stopped: %s", hex, mt_error_msg(err));
        mt_error_free(&err);
    } else if (rc == 0) {
        st = web_error(out, 409, "Swarm %s had already ended (%s).", hex, sw.status);
    } else {
        log_info(rq->m->log, "web", "swarm %s stopped by %s (dashboard)", xid, rq->user);
        cleanup_free char *msg = xasprintf("Swarm %s has stopped.", hex);
        *out = json_pack("{s:b, s:s}", "ok", 1, "message", msg);
        st = 200;
    }
    store_swarm_clear(&sw);
    return st;
}
