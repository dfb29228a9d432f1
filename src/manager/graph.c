/* graph.c - common.swarms.Graph <-> swarm_def; see graph.h. */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "rpc.h"
#include "utf8.h"

#define COND_FINISHED "Condition.FINISHED"
#define COND_RESULT   "Condition.RESULT"

/* Refuse the graph: *err gets the sentence (cleaned UTF-8, cut to 511 bytes) and the rpc code
 * as its status. */
static void problem(mt_error **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(mt_error **err, int code, const char *fmt, ...)
{
    char raw[512], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    utf8_clean_copy(msg, sizeof(msg), raw);
    int kind = code == RPC_NOT_FOUND  ? MT_ERR_NOTFOUND
               : code == RPC_INTERNAL ? MT_ERR_IO
                                      : MT_ERR_INVALID;
    mt_error_set_status(err, code, kind, "%s", msg);
}

bool graph_text_ok(const char *text)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n > GRAPH_TEXT_MAX || !utf8_valid(text, n))
        return false;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static node_id pid(const Common__System__PairId *p)
{
    node_id id = {p ? p->head : 0, p ? p->tail : 0};
    return id;
}

static ssize_t task_index(const Common__Swarms__Graph *g, const Common__System__PairId *p)
{
    if (!p)
        return -1;
    for (size_t i = 0; i < g->n_tasks; i++)
        if (g->tasks[i]->task_id && node_id_equal(pid(g->tasks[i]->task_id), pid(p)))
            return (ssize_t)i;
    return -1;
}

static void push(size_t **v, size_t *n, size_t x)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i] == x)
            return;
    *v = xrealloc(*v, (*n + 1) * sizeof(size_t));
    (*v)[(*n)++] = x;
}

/* A NULL-terminated copy of node ids as xids; false (*err set) when one is not an id. */
static bool id_list(char **in, size_t n, char ***out, const char *alias, const char *what,
                    mt_error **err)
{
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        node_id id;
        size_t len = strlen(in[i]);
        if (len == 0 || len > 32 || strspn(in[i], "0123456789abcdefABCDEF") != len ||
            !node_id_parse_xid(in[i], &id)) {
            problem(err, RPC_INVALID_ARGUMENT,
                    "Task '%s': %s holds '%.64s', which is not a node id (32 hex digits, as "
                    "ListNodeIds gives them).",
                    alias, what, in[i]);
            mem_free_strv(&v);
            return false;
        }
        char x[NODE_XID_MAX + 1];
        node_id_to_xid(id, x);
        v[i] = xstrdup(x);
    }
    *out = v;
    return true;
}

static bool scheduling(const Common__Tasks__Scheduling *s, swarm_task_def *t, mt_error **err)
{
    t->method_all = true;
    t->maximum = -1;
    if (!s)
        return true;
    if (!strcmp(s->method, "all") || !*s->method) {
        t->method_all = true;
    } else if (!strcmp(s->method, "any")) {
        t->method_all = false;
    } else {
        problem(err, RPC_INVALID_ARGUMENT,
                "Task '%s': the scheduling method '%.64s' is not supported: use \"all\" or "
                "\"any\".",
                t->alias, s->method);
        return false;
    }
    t->fixed = s->fixed;
    t->gpu = s->gpu;
    if (s->maximum.len != 0 && s->maximum.len != 4) {
        problem(err, RPC_INVALID_ARGUMENT,
                "Task '%s': maximum is %zu bytes long; the SDK sends 4 (an int32 or a float32).",
                t->alias, s->maximum.len);
        return false;
    }
    if (s->maximum.len == 4) {
        uint32_t raw = (uint32_t)s->maximum.data[0] | (uint32_t)s->maximum.data[1] << 8 |
                       (uint32_t)s->maximum.data[2] << 16 | (uint32_t)s->maximum.data[3] << 24;
        if (s->max_type == COMMON__TASKS__MAXIMUM_TYPE__FLOAT) {
            float f;
            memcpy(&f, &raw, sizeof(f));
            if (!(f > 0.0f && f <= 1.0f)) {
                problem(err, RPC_INVALID_ARGUMENT,
                        "Task '%s': a fractional maximum must be above 0 and at most 1 (a share "
                        "of the eligible nodes).",
                        t->alias);
                return false;
            }
            t->max_is_fraction = true;
            t->max_fraction = f;
        } else {
            int32_t v = (int32_t)raw;
            if (v < -1) {
                problem(err, RPC_INVALID_ARGUMENT,
                        "Task '%s': maximum %d is not a node count: use -1 (no cap) or a positive "
                        "number.",
                        t->alias, v);
                return false;
            }
            t->maximum = v == 0 ? -1 : v; /* the SDK's maximum=None arrives as 0 */
        }
    }
    return id_list(s->specified_ids, s->n_specified_ids, &t->specified_ids, t->alias,
                   "specified_ids", err) &&
           id_list(s->excepted_ids, s->n_excepted_ids, &t->excepted_ids, t->alias, "excepted_ids",
                   err);
}

static bool module_of(swarm_task_def *t, const Common__Tasks__Task *task, graph_module_fn fn,
                      void *ctx, bool with_programs, mt_error **err)
{
    if (!task->module_id) {
        problem(err, RPC_INVALID_ARGUMENT, "Task '%s' names no module (module_id is missing).",
                t->alias);
        return false;
    }
    t->module_id = pid(task->module_id);
    char mx[33];
    snprintf(mx, sizeof(mx), "%016llx%016llx", (unsigned long long)t->module_id.head,
             (unsigned long long)t->module_id.tail);
    Common__Tasks__Module *mod = NULL;
    cleanup_error mt_error *read_err = NULL;
    int r = fn(ctx, t->module_id, &mod, &read_err);
    if (r < 0) {
        /* the reader's words, at most 255 bytes of them */
        problem(err, RPC_INTERNAL, "Task '%s': its module %s could not be read: %.255s", t->alias,
                mx, mt_error_msg(read_err));
        return false;
    }
    if (r == 0) {
        problem(err, RPC_NOT_FOUND,
                "Task '%s' names module %s, which this manager does not have: upload it with "
                "SendModule (send_swarm does) before SendSwarm.",
                t->alias, mx);
        return false;
    }
    t->name = xstrdup(mod->name);
    t->image = xstrdup(mod->image);
    t->datasets = xcalloc(mod->n_datasets + 1, sizeof(char *));
    for (size_t i = 0; i < mod->n_datasets; i++)
        t->datasets[i] = xstrdup(mod->datasets[i]);
    if (with_programs && mod->python_program.len) {
        t->pyz = xmalloc(mod->python_program.len);
        memcpy(t->pyz, mod->python_program.data, mod->python_program.len);
        t->pyz_len = mod->python_program.len;
    }
    protobuf_c_message_free_unpacked(&mod->base, NULL);
    return true;
}

static bool network_of(swarm_task_def *t, const Common__Tasks__Task *task,
                       const Common__System__Networks *nets, bool check, mt_error **err)
{
    if (task->_network_case != COMMON__TASKS__TASK___NETWORK_NETWORK || !task->network ||
        !*task->network || !strcmp(task->network, "None"))
        return true;
    if (!graph_text_ok(task->network)) {
        problem(err, RPC_INVALID_ARGUMENT,
                "Task '%s': its network name is not 1 to %d bytes of UTF-8 text.", t->alias,
                GRAPH_TEXT_MAX);
        return false;
    }
    bool known = !check;
    for (size_t i = 0; nets && i < nets->n_networks; i++)
        if (nets->networks[i] && !strcmp(nets->networks[i]->name, task->network))
            known = true;
    if (!known) {
        problem(err, RPC_FAILED_PRECONDITION,
                "Task '%s' joins network '%s', which the swarm does not declare: add it with "
                "Swarm.add_network (InitializeNetworks) or remove it from the task.",
                t->alias, task->network);
        return false;
    }
    t->network = xstrdup(task->network);
    return true;
}

/* Edges, RESULT conditions, cycles and orders. */
static bool edges(const Common__Swarms__Graph *g, swarm_def *def, mt_error **err)
{
    size_t n = def->ntasks;
    for (size_t i = 0; i < n; i++) {
        const Common__Tasks__Task *task = g->tasks[i];
        swarm_task_def *t = &def->tasks[i];
        if (task->n_conditions && task->n_conditions != task->n_next_tasks) {
            problem(err, RPC_INVALID_ARGUMENT,
                    "Task '%s' has %zu next tasks but %zu conditions: give one condition per next "
                    "task, or none.",
                    t->alias, task->n_next_tasks, task->n_conditions);
            return false;
        }
        for (size_t k = 0; k < task->n_next_tasks; k++) {
            ssize_t j = task_index(g, task->next_tasks[k]);
            bool result = false;
            if (task->n_conditions) {
                const char *c = task->conditions[k];
                result = !strcmp(c, COND_RESULT);
                if (!result && strcmp(c, COND_FINISHED) != 0) {
                    problem(err, RPC_INVALID_ARGUMENT,
                            "Task '%s': condition '%.64s' is not one of \"" COND_FINISHED
                            "\" and \"" COND_RESULT "\".",
                            t->alias, c);
                    return false;
                }
            }
            if (j < 0) {
                problem(err, RPC_INVALID_ARGUMENT,
                        "Task '%s' is followed by a task that is not in the graph: every id of "
                        "next_tasks must be the task_id of one of its tasks.",
                        t->alias);
                return false;
            }
            size_t before = t->nnext;
            push(&t->next, &t->nnext, (size_t)j);
            if (t->nnext > before) {
                t->next_result = xrealloc(t->next_result, t->nnext * sizeof(bool));
                t->next_result[t->nnext - 1] = result;
            } else if (result) {
                /* the edge is known already, from the previous_tasks of a task listed earlier
                 * (they carry no condition): this is its condition */
                for (size_t e = 0; e < t->nnext; e++)
                    if (t->next[e] == (size_t)j)
                        t->next_result[e] = true;
            }
            push(&def->tasks[j].prev, &def->tasks[j].nprev, i);
        }
        for (size_t k = 0; k < task->n_previous_tasks; k++) {
            ssize_t j = task_index(g, task->previous_tasks[k]);
            if (j < 0) {
                problem(err, RPC_INVALID_ARGUMENT,
                        "Task '%s' follows a task that is not in the graph: every id of "
                        "previous_tasks must be the task_id of one of its tasks.",
                        t->alias);
                return false;
            }
            push(&t->prev, &t->nprev, (size_t)j);
            swarm_task_def *p = &def->tasks[j];
            size_t before = p->nnext;
            push(&p->next, &p->nnext, i);
            if (p->nnext > before) {
                p->next_result = xrealloc(p->next_result, p->nnext * sizeof(bool));
                p->next_result[p->nnext - 1] = false;
            }
        }
    }
    /* Kahn: orders, and what is left is on a cycle. */
    cleanup_free size_t *indeg = xcalloc(n + 1, sizeof(size_t));
    cleanup_free size_t *queue = xcalloc(n + 1, sizeof(size_t));
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        indeg[i] = def->tasks[i].nprev;
        def->tasks[i].order = 0;
        if (!indeg[i])
            queue[tail++] = i;
    }
    while (head < tail) {
        swarm_task_def *u = &def->tasks[queue[head++]];
        for (size_t k = 0; k < u->nnext; k++) {
            swarm_task_def *v = &def->tasks[u->next[k]];
            if (v->order < u->order + 1)
                v->order = u->order + 1;
            if (--indeg[u->next[k]] == 0)
                queue[tail++] = u->next[k];
        }
    }
    if (tail < n) {
        for (size_t i = 0; i < n; i++)
            if (indeg[i]) {
                problem(err, RPC_INVALID_ARGUMENT,
                        "The graph has a cycle through task '%s': a swarm graph must be acyclic "
                        "(a task repeats by ScheduleTask at run time, not by an edge back).",
                        def->tasks[i].alias);
                break;
            }
        return false;
    }
    return true;
}

swarm_def *graph_to_def(const Common__Swarms__Graph *g, const char *name, graph_module_fn fn,
                        void *ctx, const Common__System__Networks *nets, bool check_networks,
                        bool with_programs, mt_error **err)
{
    size_t n = g ? g->n_tasks : 0;
    if (n == 0 || n > GRAPH_TASKS_MAX) {
        problem(err, RPC_INVALID_ARGUMENT,
                "The swarm graph has %zu tasks: a swarm needs 1 to %d tasks (Swarm.execute must "
                "return at least one Task).",
                n, GRAPH_TASKS_MAX);
        return NULL;
    }
    swarm_def *def = xcalloc(1, sizeof(*def));
    def->name = xstrdup(name);
    def->tasks = xcalloc(n, sizeof(swarm_task_def));
    def->ntasks = n;
    for (size_t i = 0; i < n; i++) {
        const Common__Tasks__Task *task = g->tasks[i];
        swarm_task_def *t = &def->tasks[i];
        if (!graph_text_ok(task->alias)) {
            problem(err, RPC_INVALID_ARGUMENT,
                    "Task %zu of the graph has no usable alias: an alias is 1 to %d bytes of "
                    "UTF-8 text without control characters.",
                    i + 1, GRAPH_TEXT_MAX);
            goto bad;
        }
        t->alias = xstrdup(task->alias);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(def->tasks[j].alias, t->alias)) {
                problem(err, RPC_INVALID_ARGUMENT,
                        "Two tasks of the graph have the alias '%s': give each task its own "
                        "alias (ScheduleTask names tasks by alias).",
                        t->alias);
                goto bad;
            }
        if (!task->task_id) {
            problem(err, RPC_INVALID_ARGUMENT, "Task '%s' has no task_id.", t->alias);
            goto bad;
        }
        t->task_id = pid(task->task_id);
        if (task_index(g, task->task_id) != (ssize_t)i) {
            problem(err, RPC_INVALID_ARGUMENT,
                    "Task '%s' has the task_id of an earlier task: two tasks built from modules "
                    "of the same name are one graph node; rename one module.",
                    t->alias);
            goto bad;
        }
        if (!module_of(t, task, fn, ctx, with_programs, err) ||
            !scheduling(task->scheduling, t, err) ||
            !network_of(t, task, nets, check_networks, err))
            goto bad;
    }
    if (!edges(g, def, err))
        goto bad;
    return def;
bad:
    swarm_def_free(def);
    return NULL;
}

uint8_t *graph_pack(const swarm_def *def, size_t *len)
{
    size_t n = def->ntasks;
    Common__Swarms__Graph g = COMMON__SWARMS__GRAPH__INIT;
    cleanup_free Common__Tasks__Task *tasks = xcalloc(n + 1, sizeof(*tasks));
    cleanup_free Common__Tasks__Task **tp = xcalloc(n + 1, sizeof(*tp));
    cleanup_free Common__Tasks__Scheduling *sch = xcalloc(n + 1, sizeof(*sch));
    cleanup_free Common__System__PairId *ids = xcalloc(2 * n + 1, sizeof(*ids));
    cleanup_free Common__System__PairId **refs = NULL;
    cleanup_free char **conds = NULL;
    cleanup_free int32_t *maxv = xcalloc(n + 1, sizeof(*maxv));
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++)
        nrefs += def->tasks[i].nnext + def->tasks[i].nprev;
    refs = xcalloc(nrefs + 1, sizeof(*refs));
    conds = xcalloc(nrefs + 1, sizeof(*conds));
    size_t r = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        const swarm_task_def *t = &def->tasks[i];
        common__system__pair_id__init(&ids[2 * i]);
        ids[2 * i].head = t->task_id.head;
        ids[2 * i].tail = t->task_id.tail;
        common__system__pair_id__init(&ids[2 * i + 1]);
        ids[2 * i + 1].head = t->module_id.head;
        ids[2 * i + 1].tail = t->module_id.tail;
    }
    for (size_t i = 0; i < n; i++) {
        const swarm_task_def *t = &def->tasks[i];
        Common__Tasks__Task *k = &tasks[i];
        common__tasks__task__init(k);
        k->task_id = &ids[2 * i];
        k->module_id = &ids[2 * i + 1];
        k->alias = t->alias;
        k->order = (int32_t)t->order;
        if (t->network) {
            k->_network_case = COMMON__TASKS__TASK___NETWORK_NETWORK;
            k->network = t->network;
        }
        k->previous_tasks = &refs[r];
        for (size_t j = 0; j < t->nprev; j++)
            refs[r++] = &ids[2 * t->prev[j]];
        k->n_previous_tasks = t->nprev;
        k->next_tasks = &refs[r];
        k->conditions = &conds[c];
        for (size_t j = 0; j < t->nnext; j++) {
            refs[r++] = &ids[2 * t->next[j]];
            conds[c++] =
                (char *)(t->next_result && t->next_result[j] ? COND_RESULT : COND_FINISHED);
        }
        k->n_next_tasks = t->nnext;
        k->n_conditions = t->nnext;
        Common__Tasks__Scheduling *s = &sch[i];
        common__tasks__scheduling__init(s);
        s->method = (char *)(t->method_all ? "all" : "any");
        s->fixed = t->fixed;
        s->gpu = t->gpu;
        s->specified_ids = t->specified_ids;
        for (s->n_specified_ids = 0; t->specified_ids && t->specified_ids[s->n_specified_ids];)
            s->n_specified_ids++;
        s->excepted_ids = t->excepted_ids;
        for (s->n_excepted_ids = 0; t->excepted_ids && t->excepted_ids[s->n_excepted_ids];)
            s->n_excepted_ids++;
        if (t->max_is_fraction) {
            float f = (float)t->max_fraction;
            memcpy(&maxv[i], &f, 4);
            s->max_type = COMMON__TASKS__MAXIMUM_TYPE__FLOAT;
        } else {
            maxv[i] = t->maximum;
            s->max_type = COMMON__TASKS__MAXIMUM_TYPE__INT;
        }
        uint32_t u = (uint32_t)maxv[i];
        uint8_t *b = (uint8_t *)&maxv[i];
        b[0] = (uint8_t)u, b[1] = (uint8_t)(u >> 8), b[2] = (uint8_t)(u >> 16),
        b[3] = (uint8_t)(u >> 24);
        s->maximum.data = b;
        s->maximum.len = 4;
        k->scheduling = s;
        tp[i] = k;
    }
    g.tasks = tp;
    g.n_tasks = n;
    *len = common__swarms__graph__get_packed_size(&g);
    uint8_t *buf = xmalloc(*len ? *len : 1);
    common__swarms__graph__pack(&g, buf);
    return buf;
}
