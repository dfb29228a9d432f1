/* placement.c - which nodes run a graph task; see placement.h and swarm-model.md section 3. */
#include "placement.h"

#include <string.h>

#include "mem.h"
#include "strbuf.h"

/* Whether a NULL-terminated list of node ids (xid text) holds id. */
static bool ids_have(char *const *ids, node_id id)
{
    for (size_t i = 0; ids && ids[i]; i++) {
        node_id v;
        if (node_id_parse_xid(ids[i], &v) && node_id_equal(v, id))
            return true;
    }
    return false;
}

static bool node_has_dataset(const placement_node *n, const char *name)
{
    for (size_t i = 0; n->datasets && n->datasets[i]; i++)
        if (strcmp(n->datasets[i], name) == 0)
            return true;
    return false;
}

static bool eligible(const swarm_task_def *t, const placement_node *n)
{
    if (!n->connected || ids_have(t->excepted_ids, n->id))
        return false;
    if (t->specified_ids && t->specified_ids[0] && !ids_have(t->specified_ids, n->id))
        return false;
    if (t->gpu && !n->has_gpu)
        return false;
    for (size_t d = 0; t->datasets && t->datasets[d]; d++)
        if (!node_has_dataset(n, t->datasets[d]))
            return false;
    return true;
}

/* How many of `eligible_count` nodes the task may take (at least 1). */
static size_t cap_of(const swarm_task_def *t, size_t eligible_count)
{
    size_t cap;
    if (t->max_is_fraction) {
        /* ceil(f * eligible), with a tolerance so that 0.3 * 10 is 3, not 4 */
        double x = t->max_fraction * (double)eligible_count;
        cap = (size_t)x;
        if ((double)cap < x - 1e-9)
            cap++;
        if (cap < 1)
            cap = 1;
    } else if (t->maximum > 0) {
        cap = (size_t)t->maximum;
    } else {
        cap = t->method_all ? eligible_count : 1; /* -1 and 0: no cap for "all", one for "any" */
    }
    return cap < eligible_count ? cap : eligible_count;
}

/* "any" order: fewest running first, then by xid, then by position. */
static bool before(const placement_node *nodes, size_t a, size_t b)
{
    const placement_node *x = &nodes[a], *y = &nodes[b];
    if (x->running != y->running)
        return x->running < y->running;
    int c = strcmp(x->xid, y->xid);
    return c ? c < 0 : a < b;
}

/* Insertion sort: stable, needs no global comparator context, and node lists are short. */
static void sort_by_load(const placement_node *nodes, size_t *idx, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && before(nodes, v, idx[j - 1])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

static const char *task_label(const swarm_task_def *t)
{
    return t->alias ? t->alias : t->name ? t->name : "?";
}

/* One sentence per rule that excluded connected nodes. */
static int explain(const swarm_task_def *t, const placement_node *nodes, size_t n, mt_error **err)
{
    const char *label = task_label(t);
    size_t connected = 0;
    for (size_t i = 0; i < n; i++)
        connected += nodes[i].connected;
    if (!connected)
        return mt_error_set(err, MT_ERR_NOTFOUND,
                            "task '%s' cannot run: no node is connected to the manager. Start "
                            "a node (manta_node start) and wait until it registers.",
                            label);
    size_t not_specified = 0, excepted = 0, no_gpu = 0;
    bool has_spec = t->specified_ids && t->specified_ids[0];
    for (size_t i = 0; i < n; i++) {
        if (!nodes[i].connected)
            continue;
        not_specified += has_spec && !ids_have(t->specified_ids, nodes[i].id);
        excepted += ids_have(t->excepted_ids, nodes[i].id);
        no_gpu += t->gpu && !nodes[i].has_gpu;
    }
    strbuf sb = STRBUF_INIT;
    if (not_specified == connected)
        sb_printf(&sb,
                  "task '%s' may only run on the nodes in its specified_ids, and none of "
                  "them is connected: start one of them, or change specified_ids.",
                  label);
    else if (not_specified)
        sb_printf(&sb,
                  "task '%s' may only run on the nodes in its specified_ids, which leaves out "
                  "%zu of the %zu connected nodes.",
                  label, not_specified, connected);
    if (excepted)
        sb_printf(&sb, "%stask '%s' excludes %zu of the %zu connected nodes by its excepted_ids%s",
                  sb.len ? " " : "", label, excepted, connected,
                  excepted == connected ? ": connect another node, or shorten excepted_ids." : ".");
    if (no_gpu == connected)
        sb_printf(&sb,
                  "%stask '%s' needs a GPU, which no connected node has: connect a node with "
                  "a GPU, or set gpu = false.",
                  sb.len ? " " : "", label);
    else if (no_gpu)
        sb_printf(&sb, "%stask '%s' needs a GPU, which %zu of the %zu connected nodes lack.",
                  sb.len ? " " : "", label, no_gpu, connected);
    for (size_t d = 0; t->datasets && t->datasets[d]; d++) {
        size_t missing = 0;
        for (size_t i = 0; i < n; i++)
            missing += nodes[i].connected && !node_has_dataset(&nodes[i], t->datasets[d]);
        if (missing == connected)
            sb_printf(&sb,
                      "%stask '%s' needs dataset '%s', which no connected node has: connect a "
                      "node that maps it, or remove it from the task's datasets.",
                      sb.len ? " " : "", label, t->datasets[d]);
        else if (missing)
            sb_printf(&sb,
                      "%stask '%s' needs dataset '%s', which %zu of the %zu connected nodes "
                      "lack: map it on more nodes, or remove it from the task's datasets.",
                      sb.len ? " " : "", label, t->datasets[d], missing, connected);
    }
    if (!sb.len) /* cannot happen: every connected node fails some rule */
        sb_printf(&sb, "task '%s' has no eligible node among the %zu connected nodes.", label,
                  connected);
    mt_error_set(err, MT_ERR_NOTFOUND, "%s", sb_str(&sb));
    sb_free(&sb);
    return -1;
}

int placement_choose(const swarm_task_def *t, const placement_node *nodes, size_t n,
                     const node_id *previous, size_t nprevious, size_t *out, size_t *nout,
                     mt_error **err)
{
    *nout = 0;
    cleanup_free size_t *elig = xcalloc(n ? n : 1, sizeof(size_t));
    size_t ne = 0;
    for (size_t i = 0; i < n; i++)
        if (eligible(t, &nodes[i]))
            elig[ne++] = i;
    if (!ne)
        return explain(t, nodes, n, err);

    size_t cap = cap_of(t, ne);
    if (t->fixed && nprevious) {
        /* The nodes of the earlier iteration that are still eligible, in their order. */
        size_t k = 0;
        for (size_t p = 0; p < nprevious && k < cap; p++) {
            for (size_t e = 0; e < ne; e++) {
                size_t idx = elig[e];
                if (!node_id_equal(nodes[idx].id, previous[p]))
                    continue;
                bool dup = false;
                for (size_t j = 0; j < k; j++)
                    dup = dup || out[j] == idx;
                if (!dup)
                    out[k++] = idx;
                break;
            }
        }
        if (k) {
            *nout = k;
            return 0;
        }
    }
    if (!t->method_all)
        sort_by_load(nodes, elig, ne);
    for (size_t i = 0; i < cap; i++)
        out[i] = elig[i];
    *nout = cap;
    return 0;
}
