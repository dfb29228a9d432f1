/* swarmfile_graph.c - stage 2 of loading a swarm file: what needs all tasks at once
 * (duplicate aliases and module names, `after` references, cycles), and the edges and orders
 * derived from the `after` lists. See swarmfile.c. */
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"
#include "suggest.h"
#include "swarmfile_impl.h"

static void push_index(size_t **v, size_t *n, size_t x)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(size_t));
    (*v)[(*n)++] = x;
}

/* Tasks sharing a key (alias or module name): one problem per shared key, naming the lines. */
static void report_shared(struct loader *ld, swarm_def *def, struct task_src *srcs, bool alias)
{
    size_t n = def->ntasks;
    cleanup_free const char **keys = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        keys[i] = alias ? def->tasks[i].alias : def->tasks[i].name;
    cleanup_free struct keyed *k = sf_keyed_sort(keys, n);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(k[j].key, k[i].key) == 0)
            j++;
        if (j - i > 1 && sf_problems_room(ld)) {
            /* reported once, at the second task, in the words used for a pair */
            int first = srcs[k[i].idx].line;
            size_t second = k[i + 1].idx;
            strbuf more = STRBUF_INIT;
            if (j - i > 2) {
                sb_printf(&more, " (and by %zu more task%s, at line%s ", j - i - 2,
                          j - i > 3 ? "s" : "", j - i > 3 ? "s" : "");
                for (size_t m = i + 2; m < j && m < i + 12; m++)
                    sb_printf(&more, "%s%d", m > i + 2 ? ", " : "", srcs[k[m].idx].line);
                sb_puts(&more, j - i > 12 ? ", ...)" : ")");
            }
            if (alias)
                sf_problemf(ld, srcs[second].line,
                            "the alias '%s' is already used by the task at line %d%s: give %s "
                            "another alias = \"...\".",
                            k[i].key, first, sb_str(&more),
                            j - i > 2 ? "each of these tasks but one" : "one of the two tasks");
            else
                sf_problemf(
                    ld, srcs[second].line,
                    "%s uses module name '%s' like the task at line %d%s; the task id comes "
                    "from the module name, so the %s would be one graph task: rename %s of "
                    "the modules (file or folder).",
                    srcs[second].label, k[i].key, first, sb_str(&more), j - i > 2 ? "tasks" : "two",
                    j - i > 2 ? "all but one" : "one");
            sb_free(&more);
        } else if (j - i > 1) {
            ld->nproblems++;
        }
        i = j;
    }
}

/* Stage 2: names, edges, cycles and orders. */
void sf_build_graph(struct loader *ld, swarm_def *def, struct task_src *srcs)
{
    size_t n = def->ntasks;
    report_shared(ld, def, srcs, true);
    report_shared(ld, def, srcs, false);
    if (ld->nproblems)
        return;

    const char **aliases = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        aliases[i] = def->tasks[i].alias;
    /* aliases are unique here: a sorted copy answers "which task" in O(log n) */
    cleanup_free struct keyed *by_alias = sf_keyed_sort(aliases, n);
    cleanup_free size_t *seen = xcalloc(n, sizeof(size_t)); /* i + 1: already a prev of i */
    for (size_t i = 0; i < n; i++) {
        swarm_task_def *t = &def->tasks[i];
        for (size_t a = 0; srcs[i].after[a]; a++) {
            const char *name = srcs[i].after[a];
            ssize_t p = -1;
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(by_alias[mid].key, name);
                if (c == 0) {
                    p = (ssize_t)by_alias[mid].idx;
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (p < 0) {
                const char *best = sf_problems_room(ld) ? suggest_closest(name, aliases, n) : NULL;
                if (best)
                    sf_problemf(ld, srcs[i].after_line,
                                "%s: after names '%s', which is not the alias of any task; did "
                                "you mean '%s'?",
                                srcs[i].label, name, best);
                else
                    sf_problemf(ld, srcs[i].after_line,
                                "%s: after names '%s', which is not the alias of any task: write "
                                "the alias of a task of this file (a task's alias defaults to its "
                                "module name).",
                                srcs[i].label, name);
                continue;
            }
            if (seen[p] != i + 1) {
                seen[p] = i + 1;
                push_index(&t->prev, &t->nprev, (size_t)p);
            }
        }
    }
    free(aliases);
    if (ld->nproblems)
        return;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < def->tasks[i].nprev; k++) {
            swarm_task_def *p = &def->tasks[def->tasks[i].prev[k]];
            push_index(&p->next, &p->nnext, i);
        }

    /* Orders: a start task has order 0, any other task one more than its deepest previous
     * task. Tasks left with unprocessed previous tasks are on a cycle or after one. */
    cleanup_free size_t *indeg = xcalloc(n, sizeof(size_t));
    cleanup_free size_t *queue = xcalloc(n, sizeof(size_t));
    size_t qh = 0, qt = 0;
    for (size_t i = 0; i < n; i++) {
        indeg[i] = def->tasks[i].nprev;
        def->tasks[i].order = 0;
        if (!indeg[i])
            queue[qt++] = i;
    }
    while (qh < qt) {
        swarm_task_def *u = &def->tasks[queue[qh++]];
        for (size_t k = 0; k < u->nnext; k++) {
            swarm_task_def *v = &def->tasks[u->next[k]];
            if (v->order < u->order + 1)
                v->order = u->order + 1;
            if (--indeg[u->next[k]] == 0)
                queue[qt++] = u->next[k];
        }
    }
    if (qt == n)
        return;

    /* Find one cycle: walk backwards through unprocessed previous tasks until one repeats. */
    cleanup_free ssize_t *pos = xmalloc(n * sizeof(ssize_t));
    cleanup_free size_t *walk = xmalloc((n + 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        pos[i] = -1;
    size_t u = 0, len = 0;
    while (!indeg[u])
        u++;
    while (pos[u] < 0) {
        pos[u] = (ssize_t)len;
        walk[len++] = u;
        const swarm_task_def *t = &def->tasks[u];
        for (size_t k = 0; k < t->nprev; k++)
            if (indeg[t->prev[k]]) {
                u = t->prev[k];
                break;
            }
    }
    strbuf cyc = STRBUF_INIT;
    sb_printf(&cyc, "%s", def->tasks[u].alias);
    for (size_t k = len; k-- > (size_t)pos[u];)
        sb_printf(&cyc, " -> %s", def->tasks[walk[k]].alias);
    sf_problemf(ld, srcs[u].line,
                "the tasks form a cycle through 'after': %s. A swarm graph cannot loop (a task "
                "starts the next round at run time by calling ScheduleTask): remove one of these "
                "'after' entries.",
                sb_str(&cyc));
    sb_free(&cyc);
}
