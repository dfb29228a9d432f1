/* fuzz_manager_inputs.c - libFuzzer target for the two ways a swarm reaches the manager: a
 * swarm file (swarmfile.c, swarmfile_load, on top of the TOML parser that fuzz_toml covers) and
 * the SDK's graph (graph.c, graph_to_def on a common.swarms.Graph as SendSwarm receives it).
 *
 * Input: the first byte chooses. 'G': a flags byte (bit 0: check the tasks' networks against
 * the swarm's, {"fl-net", "net2"}; bit 1: with module programs), then a packed Graph; its module
 * ids are looked up in a fake store (id 0:0 unknown, tail 1: a store error, else a module whose
 * name, image and datasets follow the id). Anything else: the rest is a swarm file, written as
 * swarm.toml in a scratch folder under /dev/shm that holds modules (files, packages, a package
 * with __pycache__, a folder without __init__.py, a name Python cannot import) and global files.
 * Swarm files that name a path outside the scratch folder (absolute, "..", "~") are skipped:
 * the loader reads what the user's own file names, by design, and the fuzzer must not read the
 * machine's files.
 *
 * Invariants checked (abort() on violation): a refusal says why (a swarm file's error is a
 * non-empty message; a graph's problem has one of the documented codes and a non-empty, valid
 * UTF-8 sentence); an accepted swarm has 1 or more tasks with distinct aliases, module names
 * and task ids, mirrored edges (next <-> prev), orders that grow along every edge (no cycle),
 * module archives, and alias lookups that find each task; a graph keeps every edge and each
 * edge's condition as sent, and its networks are declared ones when checked. Both become the
 * one stored form (graph_pack), which must read back (graph_to_def, with the modules the swarm
 * had, as a restarted manager resumes a run) into the same swarm. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "graph.h"
#include "mem.h"
#include "rpc.h"
#include "swarmfile.h"
#include "toml.h"
#include "utf8.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char *swarm_path;

/* ---- the scratch folder -------------------------------------------------------------------- */

static void put(const char *rel, const char *text, size_t len)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, rel);
    cleanup_free char *d = xstrdup(p);
    *strrchr(d, '/') = '\0';
    mt_error *e = NULL;
    if (fs_mkdir_p(d, 0700, &e) < 0)
        abort();
    FILE *f = fopen(p, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0)
        abort();
}
#define PUT(rel, text) put(rel, text, sizeof(text) - 1)

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

static void remove_dir(void)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(dir, sizeof(dir), "/dev/shm/fuzz_manager_inputs_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    swarm_path = xasprintf("%s/swarm.toml", dir);
    PUT("worker/__init__.py", "def main():\n    pass\n");
    PUT("worker/model.py", "X = 1\n");
    PUT("worker/__pycache__/model.cpython-311.pyc", "\x00\x01");
    PUT("worker/data/sub/deep.py", "Y = 2\n");
    PUT("aggregator.py", "def main():\n    pass\n");
    PUT("scheduler.py", "def main():\n    pass\n");
    PUT("cafe.py", "def main():\n    pass\n");
    PUT("bad-name.py", "def main():\n    pass\n");
    PUT("plain/readme.txt", "not a package\n");
    PUT("init.msgpack", "\x81\xa1w\x93\x01\x02\x03");
    put("empty.bin", "", 0);
    return 0;
}

/* ---- module stores --------------------------------------------------------------------------- */

static Common__Tasks__Module *module_new(const char *name, const char *image, char **datasets,
                                         size_t ndatasets, const uint8_t *program, size_t plen)
{
    Common__Tasks__Module m = COMMON__TASKS__MODULE__INIT;
    m.name = (char *)name;
    m.image = (char *)image;
    m.datasets = datasets;
    m.n_datasets = ndatasets;
    m.python_program.data = (uint8_t *)program;
    m.python_program.len = plen;
    size_t len = common__tasks__module__get_packed_size(&m);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    common__tasks__module__pack(&m, buf);
    Common__Tasks__Module *out = common__tasks__module__unpack(NULL, len, buf);
    if (!out)
        abort();
    return out;
}

/* The fake store of uploaded modules (graphs from the input). */
static int fake_modules(void *ctx, node_id id, Common__Tasks__Module **mod, mt_error **err)
{
    (void)ctx;
    if (id.head == 0 && id.tail == 0)
        return 0;
    if (id.tail == 1)
        return mt_error_set(err, MT_ERR_IO, "disk I/O error");
    static const char *const names[] = {"worker", "aggregator", "scheduler", "cafe"};
    static char *sets[] = {"mnist", "cifar10"};
    char name[48];
    snprintf(name, sizeof(name), "%s%llx", names[id.tail % 4], (unsigned long long)id.head % 16);
    *mod = module_new(name, "manta-task:bookworm", sets, (size_t)(id.tail >> 2) % 3, NULL, 0);
    return 1;
}

/* The modules a swarm had (ctx: its swarm_def), as the manager keeps them to resume a run. */
static int def_modules(void *ctx, node_id id, Common__Tasks__Module **mod, mt_error **err)
{
    const swarm_def *def = ctx;
    (void)err;
    for (size_t i = 0; i < def->ntasks; i++) {
        const swarm_task_def *t = &def->tasks[i];
        if (!node_id_equal(t->module_id, id))
            continue;
        size_t nd = 0;
        while (t->datasets && t->datasets[nd])
            nd++;
        *mod = module_new(t->name, t->image, t->datasets, nd, t->pyz, t->pyz_len);
        return 1;
    }
    return 0;
}

/* ---- invariants ---------------------------------------------------------------------------- */

static bool has(const size_t *v, size_t n, size_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

static size_t strv_len(char **v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static bool strv_equal(char **a, char **b)
{
    size_t n = strv_len(a);
    if (strv_len(b) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool eq_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The shape every accepted swarm has (names: module names are distinct, as a swarm file's must
 * be; a graph's tasks are told apart by task id only). */
static void check_def(const swarm_def *def, bool names)
{
    if (!def->name || def->ntasks == 0 || !def->tasks)
        abort();
    for (size_t i = 0; i < def->ntasks; i++) {
        const swarm_task_def *t = &def->tasks[i];
        if (!t->alias || !t->name || !t->image || swarm_def_find_alias(def, t->alias) != (ssize_t)i)
            abort();
        for (size_t j = 0; j < i; j++)
            if ((names && !strcmp(def->tasks[j].name, t->name)) ||
                node_id_equal(def->tasks[j].task_id, t->task_id))
                abort();
        if (t->max_is_fraction ? !(t->max_fraction > 0 && t->max_fraction <= 1) : t->maximum < -1)
            abort();
        for (size_t k = 0; k < t->nnext; k++) {
            size_t j = t->next[k];
            if (j >= def->ntasks || !has(def->tasks[j].prev, def->tasks[j].nprev, i) ||
                def->tasks[j].order <= t->order)
                abort();
        }
        for (size_t k = 0; k < t->nprev; k++) {
            size_t j = t->prev[k];
            if (j >= def->ntasks || !has(def->tasks[j].next, def->tasks[j].nnext, i))
                abort();
        }
        if (t->nprev == 0 && t->order != 0)
            abort();
    }
    for (size_t g = 0; g < def->nglobals; g++) {
        if (!def->globals[g].tag || (def->globals[g].len && !def->globals[g].data))
            abort();
        for (size_t h = 0; h < g; h++)
            if (!strcmp(def->globals[h].tag, def->globals[g].tag))
                abort();
    }
}

static bool edge_result(const swarm_task_def *t, size_t j)
{
    for (size_t k = 0; k < t->nnext; k++)
        if (t->next[k] == j)
            return t->next_result && t->next_result[k];
    abort(); /* no such edge */
}

/* 0 (the SDK's None) and -1 are both "no cap" (placement.c); the stored form says -1. */
static int32_t no_cap(int32_t maximum)
{
    return maximum == 0 ? -1 : maximum;
}

/* b is a read back of a: the same swarm. */
static void check_same(const swarm_def *a, const swarm_def *b, bool programs)
{
    if (a->ntasks != b->ntasks || strcmp(a->name, b->name) != 0)
        abort();
    for (size_t i = 0; i < a->ntasks; i++) {
        const swarm_task_def *s = &a->tasks[i], *t = &b->tasks[i];
        if (strcmp(s->alias, t->alias) != 0 || strcmp(s->name, t->name) != 0 ||
            strcmp(s->image, t->image) != 0 || !node_id_equal(s->task_id, t->task_id) ||
            !node_id_equal(s->module_id, t->module_id) || s->method_all != t->method_all ||
            s->fixed != t->fixed || s->gpu != t->gpu || s->max_is_fraction != t->max_is_fraction ||
            (s->max_is_fraction ? (float)s->max_fraction != (float)t->max_fraction
                                : no_cap(s->maximum) != no_cap(t->maximum)) ||
            !strv_equal(s->specified_ids, t->specified_ids) ||
            !strv_equal(s->excepted_ids, t->excepted_ids) ||
            !strv_equal(s->datasets, t->datasets) || !eq_str(s->network, t->network) ||
            s->order != t->order || s->nnext != t->nnext || s->nprev != t->nprev)
            abort();
        if (programs &&
            (s->pyz_len != t->pyz_len || (s->pyz_len && memcmp(s->pyz, t->pyz, s->pyz_len) != 0)))
            abort();
        for (size_t k = 0; k < s->nnext; k++)
            if (!has(t->next, t->nnext, s->next[k]) ||
                edge_result(s, s->next[k]) != edge_result(t, s->next[k]))
                abort();
        for (size_t k = 0; k < s->nprev; k++)
            if (!has(t->prev, t->nprev, s->prev[k]))
                abort();
    }
}

/* The stored form of def read back as a restarted manager does. */
static void round_trip(const swarm_def *def, graph_module_fn fn, void *ctx, bool programs)
{
    size_t len = 0;
    cleanup_free uint8_t *buf = graph_pack(def, &len);
    Common__Swarms__Graph *g = common__swarms__graph__unpack(NULL, len, buf);
    if (!g)
        abort();
    cleanup_error mt_error *why = NULL;
    swarm_def *back = graph_to_def(g, def->name, fn, ctx, NULL, false, programs, &why);
    if (!back) {
        fprintf(stderr, "stored graph refused: %s\n", mt_error_msg(why));
        abort();
    }
    check_same(def, back, programs);
    swarm_def_free(back);
    common__swarms__graph__free_unpacked(g, NULL);
}

/* ---- graphs -------------------------------------------------------------------------------- */

static ssize_t graph_index(const Common__Swarms__Graph *g, const Common__System__PairId *p)
{
    for (size_t i = 0; p && i < g->n_tasks; i++)
        if (g->tasks[i]->task_id && g->tasks[i]->task_id->head == p->head &&
            g->tasks[i]->task_id->tail == p->tail)
            return (ssize_t)i;
    return -1;
}

static void graph_input(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    bool check_networks = data[0] & 1, programs = data[0] & 2;
    Common__Swarms__Graph *g = common__swarms__graph__unpack(NULL, size - 1, data + 1);
    if (!g)
        return;
    Common__System__Network n1 = COMMON__SYSTEM__NETWORK__INIT, n2 = COMMON__SYSTEM__NETWORK__INIT;
    n1.name = "fl-net", n1.driver = "bridge";
    n2.name = "net2", n2.driver = "overlay";
    Common__System__Network *nv[] = {&n1, &n2};
    Common__System__Networks nets = COMMON__SYSTEM__NETWORKS__INIT;
    nets.networks = nv;
    nets.n_networks = 2;

    cleanup_error mt_error *why = NULL;
    swarm_def *def =
        graph_to_def(g, "fuzzed", fake_modules, NULL, &nets, check_networks, programs, &why);
    if (!def) {
        int code = mt_error_status(why, 0);
        const char *msg = mt_error_msg(why);
        if ((code != RPC_INVALID_ARGUMENT && code != RPC_NOT_FOUND &&
             code != RPC_FAILED_PRECONDITION && code != RPC_INTERNAL) ||
            !msg[0] || strlen(msg) >= 512 || !utf8_valid(msg, strlen(msg)))
            abort();
        common__swarms__graph__free_unpacked(g, NULL);
        return;
    }
    check_def(def, false);
    if (def->ntasks != g->n_tasks)
        abort();
    for (size_t i = 0; i < g->n_tasks; i++) {
        const Common__Tasks__Task *k = g->tasks[i];
        const swarm_task_def *t = &def->tasks[i];
        if (!graph_text_ok(t->alias) || strcmp(t->alias, k->alias) != 0)
            abort();
        if (check_networks && t->network && strcmp(t->network, "fl-net") != 0 &&
            strcmp(t->network, "net2") != 0)
            abort();
        /* every edge as sent, with its condition */
        for (size_t e = 0; e < k->n_next_tasks; e++) {
            ssize_t j = graph_index(g, k->next_tasks[e]);
            bool result = k->n_conditions && !strcmp(k->conditions[e], "Condition.RESULT");
            if (j < 0 || !has(t->next, t->nnext, (size_t)j))
                abort();
            if (result && !edge_result(t, (size_t)j)) {
                fprintf(stderr, "task '%s': the RESULT condition of its edge to '%s' was lost\n",
                        t->alias, def->tasks[j].alias);
                abort();
            }
        }
        for (size_t e = 0; e < k->n_previous_tasks; e++) {
            ssize_t j = graph_index(g, k->previous_tasks[e]);
            if (j < 0 || !has(t->prev, t->nprev, (size_t)j))
                abort();
        }
    }
    round_trip(def, fake_modules, NULL, programs);
    swarm_def_free(def);
    common__swarms__graph__free_unpacked(g, NULL);
}

/* ---- swarm files --------------------------------------------------------------------------- */

/* Does any string of the document name a path outside the scratch folder? */
static bool escapes(const toml_value *v)
{
    switch (v->type) {
    case TOML_STRING:
        return v->u.s.len != strlen(v->u.s.ptr) || v->u.s.ptr[0] == '/' || v->u.s.ptr[0] == '~' ||
               strstr(v->u.s.ptr, "..") != NULL;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            if (escapes(v->u.arr.items[i]))
                return true;
        return false;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.tab.len; i++)
            if (escapes(v->u.tab.items[i].val))
                return true;
        return false;
    default:
        return false;
    }
}

static void swarm_file_input(const uint8_t *data, size_t size)
{
    mt_error *err = NULL;
    toml_value *doc = toml_parse((const char *)data, size, NULL, TOML_1_1, &err);
    mt_error_free(&err);
    bool skip = doc && escapes(doc);
    toml_free(doc);
    if (skip)
        return;
    FILE *f = fopen(swarm_path, "w");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    swarm_def *def = swarmfile_load(swarm_path, &err);
    if (!def) {
        if (!err || !*mt_error_msg(err))
            abort();
        mt_error_free(&err);
        return;
    }
    check_def(def, true);
    for (size_t i = 0; i < def->ntasks; i++)
        if (!def->tasks[i].module_path || !def->tasks[i].pyz || !def->tasks[i].pyz_len)
            abort();
    round_trip(def, def_modules, def, true);
    swarm_def_free(def);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] == 'G')
        graph_input(data + 1, size - 1);
    else
        swarm_file_input(data + 1, size - 1);
    return 0;
}
