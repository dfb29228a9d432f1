/* swarmfile.c - a swarm file read into a swarm definition; see swarmfile.h and
 * docs/swarm-file.md.
 *
 * Loading runs in three stages. The first checks every key and value (unknown keys, types,
 * ranges, module paths, globals; the keys of a [[tasks]] table through a table of readers) and
 * collects every problem it finds, one line each with file:line; the second
 * (swarmfile_graph.c) checks what needs all tasks (duplicate aliases and module names, `after`
 * references, cycles) and derives the edges and orders; the third packs each module into its
 * archive (pyz.c). A stage runs only if the ones before it found nothing wrong.
 */
#include "swarmfile.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blake3.h"
#include "fsutil.h"
#include "graph.h"
#include "mem.h"
#include "suggest.h"
#include "msgpack.h"
#include "pyz.h"
#include "strbuf.h"
#include "toml.h"
#include "swarmfile_impl.h"

/* ---- small helpers -------------------------------------------------------------------- */

/* Append s to a NULL-terminated vector of *n strings, taking s. */
static void strv_push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* keys[0..n) sorted by (key, position): equal keys are adjacent, first occurrence first.
 * Owned. */
struct keyed *sf_keyed_sort(const char *const *keys, size_t n)
{
    struct keyed *k = xcalloc(n ? n : 1, sizeof(*k));
    for (size_t i = 0; i < n; i++)
        k[i] = (struct keyed){keys[i], i};
    qsort(k, n, sizeof(*k), keyed_cmp);
    return k;
}

/* True if s is one of the keys of a keyed_sort array. */
bool sf_keyed_has(const struct keyed *k, size_t n, const char *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(k[mid].key, s);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Drop the later copies of repeated strings of a NULL-terminated vector, keeping the order of
 * first occurrences. */
static void strv_unique(char **v)
{
    size_t n = strv_len(v);
    if (n < 2)
        return;
    cleanup_free struct keyed *k = sf_keyed_sort((const char *const *)v, n);
    cleanup_free bool *dup = xcalloc(n, sizeof(bool));
    for (size_t i = 1; i < n; i++)
        if (strcmp(k[i].key, k[i - 1].key) == 0)
            dup[k[i].idx] = true;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (dup[i])
            free(v[i]);
        else
            v[o++] = v[i];
    }
    v[o] = NULL;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The task id of a module name, as the SDK derives it (swarm-model.md 2.1): the name itself
 * if it is a hexadecimal number below 2^128, else the first 16 bytes of BLAKE3(name). */
static node_id task_id_of(const char *name)
{
    node_id id;
    mt_error *e = NULL;
    if (node_id_from_alias(name, &id, &e) == 0)
        return id;
    mt_error_free(&e); /* a hex number outside 128 bits: hashed like any other name */
    uint8_t d[16];
    b3_hash(name, strlen(name), d, sizeof(d));
    id.head = id.tail = 0;
    for (int i = 0; i < 8; i++) {
        id.head = (id.head << 8) | d[i];
        id.tail = (id.tail << 8) | d[8 + i];
    }
    return id;
}

/* ---- the swarm definition ------------------------------------------------------------- */

static void task_def_release(swarm_task_def *t)
{
    free(t->alias);
    free(t->name);
    free(t->module_path);
    free(t->image);
    strv_free(t->specified_ids);
    strv_free(t->excepted_ids);
    strv_free(t->datasets);
    free(t->prev);
    free(t->next);
    free(t->next_result);
    free(t->network);
    free(t->pyz);
}

void swarm_def_free(swarm_def *def)
{
    if (!def)
        return;
    free(def->name);
    for (size_t i = 0; i < def->nglobals; i++) {
        free(def->globals[i].tag);
        free(def->globals[i].data);
    }
    free(def->globals);
    for (size_t i = 0; i < def->ntasks; i++)
        task_def_release(&def->tasks[i]);
    free(def->tasks);
    free(def);
}

static void swarm_def_freep(swarm_def **p)
{
    swarm_def_free(*p);
}

ssize_t swarm_def_find_alias(const swarm_def *def, const char *alias)
{
    for (size_t i = 0; def && alias && i < def->ntasks; i++)
        if (def->tasks[i].alias && strcmp(def->tasks[i].alias, alias) == 0)
            return (ssize_t)i;
    return -1;
}

/* ---- loader --------------------------------------------------------------------------- */

/* True while problems are still listed in full (callers skip costly suggestions after). */
bool sf_problems_room(const struct loader *ld)
{
    return ld->nproblems < SWARM_MAX_PROBLEMS_SHOWN;
}

void sf_problemf(struct loader *ld, int line, const char *fmt, ...)
{
    if (!sf_problems_room(ld)) {
        ld->nproblems++; /* counted, not listed: a report stays readable and small */
        return;
    }
    if (ld->nproblems)
        sb_putc(&ld->problems, '\n');
    if (line > 0)
        sb_printf(&ld->problems, "%s:%d: ", ld->fname, line);
    else
        sb_printf(&ld->problems, "%s: ", ld->fname);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&ld->problems, fmt, ap);
    va_end(ap);
    ld->nproblems++;
}

static bool type_ok(struct loader *ld, const toml_kv *kv, const char *label, toml_type type,
                    const char *expected)
{
    if (kv->val->type == type)
        return true;
    sf_problemf(ld, kv->line, "%s: '%s' must be %s, not %s.", label, kv->key, expected,
                toml_type_name(kv->val->type));
    return false;
}

/* A string value without NUL bytes (empty refused unless allow_empty). Borrowed or NULL. */
static const char *string_value(struct loader *ld, const toml_kv *kv, const char *label,
                                bool allow_empty)
{
    if (!type_ok(ld, kv, label, TOML_STRING, "a string"))
        return NULL;
    const toml_value *v = kv->val;
    if (strlen(v->u.s.ptr) != v->u.s.len) {
        sf_problemf(ld, kv->line, "%s: '%s' must not contain a NUL character (\\u0000).", label,
                    kv->key);
        return NULL;
    }
    if (!allow_empty && v->u.s.len == 0) {
        sf_problemf(ld, kv->line, "%s: '%s' must not be empty.", label, kv->key);
        return NULL;
    }
    return v->u.s.ptr;
}

/* An array of non-empty strings (or, with allow_single, one string) -> owned NULL-terminated
 * vector without duplicates; NULL after a problem. */
static char **string_list(struct loader *ld, const toml_kv *kv, const char *label,
                          bool allow_single)
{
    const toml_value *v = kv->val;
    char **out = xcalloc(1, sizeof(char *));
    size_t n = 0;
    if (allow_single && v->type == TOML_STRING) {
        const char *s = string_value(ld, kv, label, false);
        if (!s) {
            strv_free(out);
            return NULL;
        }
        strv_push(&out, &n, xstrdup(s));
        return out;
    }
    if (v->type != TOML_ARRAY) {
        sf_problemf(ld, kv->line, "%s: '%s' must be an array of strings%s, not %s.", label, kv->key,
                    allow_single ? " (or one string)" : "", toml_type_name(v->type));
        strv_free(out);
        return NULL;
    }
    if (v->u.arr.len > SWARM_MAX_LIST) {
        sf_problemf(ld, kv->line, "%s: '%s' has %zu entries; a list holds at most %d.", label,
                    kv->key, v->u.arr.len, SWARM_MAX_LIST);
        strv_free(out);
        return NULL;
    }
    ld->list_entries += v->u.arr.len;
    if (ld->list_entries > SWARM_MAX_LIST_ENTRIES) {
        sf_problemf(ld, kv->line,
                    "%s: the lists of this swarm file hold more than %d entries in all; split "
                    "the swarm.",
                    label, SWARM_MAX_LIST_ENTRIES);
        strv_free(out);
        return NULL;
    }
    for (size_t i = 0; i < v->u.arr.len; i++) {
        const toml_value *e = v->u.arr.items[i];
        if (e->type != TOML_STRING || e->u.s.len == 0 || strlen(e->u.s.ptr) != e->u.s.len) {
            sf_problemf(ld, e->line ? e->line : kv->line,
                        "%s: '%s' must hold non-empty strings; element %zu is %s.", label, kv->key,
                        i + 1,
                        e->type == TOML_STRING ? "an empty or NUL-holding string"
                                               : toml_type_name(e->type));
            strv_free(out);
            return NULL;
        }
        strv_push(&out, &n, xstrdup(e->u.s.ptr));
    }
    strv_unique(out);
    return out;
}

/* specified_ids / excepted_ids: node ids, stored in their xid form. */
static char **id_list(struct loader *ld, const toml_kv *kv, const char *label)
{
    char **raw = string_list(ld, kv, label, false);
    if (!raw)
        return NULL;
    char **out = xcalloc(1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; raw[i]; i++) {
        node_id id;
        const char *s = raw[i];
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
            s += 2;
        if (!node_id_parse_xid(s, &id)) {
            sf_problemf(ld, kv->line,
                        "%s: '%s' holds '%s', which is not a node id: write the node's id as "
                        "hexadecimal digits (at most 32), as the manager lists it.",
                        label, kv->key, raw[i]);
            strv_free(raw);
            strv_free(out);
            return NULL;
        }
        char xid[NODE_XID_MAX + 1];
        node_id_to_xid(id, xid);
        strv_push(&out, &n, xstrdup(xid));
    }
    strv_free(raw);
    strv_unique(out); /* "0xab" and "ab" are one id */
    return out;
}

/* Resolve a task's `module` against the swarm file's folder: a package folder (with
 * __init__.py), a .py file, or a name X standing for X/ (if that folder exists) or X.py.
 * Sets the owned absolute path and module name; returns false after a problem. */
static bool resolve_module(struct loader *ld, const toml_kv *kv, const char *label,
                           const char *spec, char **path_out, char **name_out)
{
    cleanup_free char *joined = spec[0] == '/' ? xstrdup(spec) : fs_join(ld->dir, spec);
    cleanup_free char *path = pyz_path_tidy(joined);
    struct stat st;
    if (stat(path, &st) != 0 && !fs_name_ends_with(path, ".py")) {
        cleanup_free char *py = xasprintf("%s.py", path);
        if (stat(py, &st) != 0 || !S_ISREG(st.st_mode)) {
            sf_problemf(ld, kv->line,
                        "%s: module '%s' was not found: neither %s/ nor %s exists (module paths "
                        "are relative to the swarm file's folder %s).",
                        label, spec, path, py, ld->dir);
            return false;
        }
        free(path);
        path = steal_ptr(py);
    } else if (stat(path, &st) != 0) {
        sf_problemf(ld, kv->line,
                    "%s: module '%s' was not found at %s (module paths are relative to the swarm "
                    "file's folder %s).",
                    label, spec, path, ld->dir);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        cleanup_free char *init = fs_join(path, "__init__.py");
        struct stat ist;
        if (stat(init, &ist) != 0 || !S_ISREG(ist.st_mode)) {
            sf_problemf(ld, kv->line,
                        "%s: module '%s' is a folder without __init__.py: make it a package by "
                        "adding %s (with a main() function), or name a .py file.",
                        label, spec, init);
            return false;
        }
    } else if (!S_ISREG(st.st_mode) || !fs_name_ends_with(path, ".py")) {
        sf_problemf(ld, kv->line,
                    "%s: module '%s' (%s) must be a .py file or a package folder with an "
                    "__init__.py.",
                    label, spec, path);
        return false;
    }
    cleanup_free char *name = pyz_module_stem(path);
    if (!pyz_module_name_ok(name)) {
        sf_problemf(ld, kv->line,
                    "%s: module name '%s' (from '%s') cannot be imported by Python, so the "
                    "archive's __main__.py could not run it: rename the file or folder to a "
                    "Python identifier (letters, digits and '_', not starting with a digit, not a "
                    "keyword).",
                    label, name, spec);
        return false;
    }
    *path_out = steal_ptr(path);
    *name_out = steal_ptr(name);
    return true;
}

static void unknown_key(struct loader *ld, const toml_kv *kv, const char *where,
                        const char *const *known, size_t nknown, const char *list)
{
    const char *best = suggest_closest(kv->key, known, nknown);
    if (best)
        sf_problemf(ld, kv->line, "unknown key '%s' in %s; did you mean '%s'?", kv->key, where,
                    best);
    else
        sf_problemf(ld, kv->line, "unknown key '%s' in %s; the keys are %s.", kv->key, where, list);
}

/* One [[tasks]] table being read: what its keys fill in. */
struct task_reader {
    struct loader *ld;
    swarm_task_def *t;
    struct task_src *src;
    const char *label;
    bool have_module, have_image;
};

static void tk_module(struct task_reader *r, const toml_kv *kv)
{
    r->have_module = true;
    const char *s = string_value(r->ld, kv, r->label, false);
    if (s)
        resolve_module(r->ld, kv, r->label, s, &r->t->module_path, &r->t->name);
}

static void tk_alias(struct task_reader *r, const toml_kv *kv)
{
    const char *s = string_value(r->ld, kv, r->label, false);
    if (s && !graph_text_ok(s)) /* the stored graph could not be read back */
        sf_problemf(r->ld, kv->line,
                    "%s: the alias must be 1 to %d bytes without control characters (the "
                    "SDK's graph, in which the swarm is stored, allows no more).",
                    r->label, GRAPH_TEXT_MAX);
    else if (s)
        r->t->alias = xstrdup(s);
}

static void tk_image(struct task_reader *r, const toml_kv *kv)
{
    r->have_image = true;
    const char *s = string_value(r->ld, kv, r->label, false);
    if (!s)
        return;
    bool blank = false;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            blank = true;
    if (blank)
        sf_problemf(r->ld, kv->line,
                    "%s: image '%s' contains white space; write an image reference "
                    "such as \"manta-task:bookworm\".",
                    r->label, s);
    else
        r->t->image = xstrdup(s);
}

static void tk_method(struct task_reader *r, const toml_kv *kv)
{
    const char *s = string_value(r->ld, kv, r->label, false);
    if (!s)
        return;
    if (strcmp(s, "all") == 0)
        r->t->method_all = true;
    else if (strcmp(s, "any") == 0)
        r->t->method_all = false;
    else
        sf_problemf(r->ld, kv->line,
                    "%s: method must be \"all\" (every eligible node) or \"any\" (the "
                    "least loaded eligible node), not \"%s\".",
                    r->label, s);
}

static void tk_fixed(struct task_reader *r, const toml_kv *kv)
{
    if (type_ok(r->ld, kv, r->label, TOML_BOOL, "a boolean (true or false)"))
        r->t->fixed = kv->val->u.b;
}

static void tk_gpu(struct task_reader *r, const toml_kv *kv)
{
    if (type_ok(r->ld, kv, r->label, TOML_BOOL, "a boolean (true or false)"))
        r->t->gpu = kv->val->u.b;
}

static void tk_maximum(struct task_reader *r, const toml_kv *kv)
{
    const toml_value *v = kv->val;
    swarm_task_def *t = r->t;
    if (v->type == TOML_INTEGER) {
        if (v->u.i < -1 || v->u.i > INT32_MAX)
            sf_problemf(r->ld, kv->line,
                        "%s: maximum %lld is out of range: write -1 (no cap), a node count "
                        "from 0 to %d, or a fraction of the eligible nodes in (0, 1] such "
                        "as 0.5.",
                        r->label, (long long)v->u.i, INT32_MAX);
        else
            t->maximum = (int32_t)v->u.i;
    } else if (v->type == TOML_FLOAT) {
        if (!(v->u.f > 0.0 && v->u.f <= 1.0))
            sf_problemf(r->ld, kv->line,
                        "%s: maximum %g is out of range: a fraction of the eligible nodes "
                        "must be above 0 and at most 1 (write an integer for a node "
                        "count, -1 for no cap).",
                        r->label, v->u.f);
        else {
            t->max_is_fraction = true;
            t->max_fraction = v->u.f;
            t->maximum = 0;
        }
    } else {
        sf_problemf(r->ld, kv->line,
                    "%s: 'maximum' must be an integer (a node count, -1 for no cap) or a "
                    "float (a fraction of the eligible nodes), not %s.",
                    r->label, toml_type_name(v->type));
    }
}

static void tk_ids(struct task_reader *r, const toml_kv *kv)
{
    char **ids = id_list(r->ld, kv, r->label);
    if (!ids)
        return;
    if (kv->key[0] == 's') {
        strv_free(r->t->specified_ids);
        r->t->specified_ids = ids;
        r->src->ids_line = kv->line;
    } else {
        strv_free(r->t->excepted_ids);
        r->t->excepted_ids = ids;
    }
}

static void tk_datasets(struct task_reader *r, const toml_kv *kv)
{
    char **ds = string_list(r->ld, kv, r->label, false);
    if (ds) {
        strv_free(r->t->datasets);
        r->t->datasets = ds;
    }
}

static void tk_after(struct task_reader *r, const toml_kv *kv)
{
    char **after = string_list(r->ld, kv, r->label, true);
    if (after) {
        strv_free(r->src->after);
        r->src->after = after;
        r->src->after_line = kv->line;
    }
}

/* The keys of a [[tasks]] table, in the order the messages list them, and what reads each. */
static const struct {
    const char *key;
    void (*read)(struct task_reader *r, const toml_kv *kv);
} task_keys[] = {
    {"module", tk_module},     {"alias", tk_alias},      {"image", tk_image},
    {"method", tk_method},     {"fixed", tk_fixed},      {"maximum", tk_maximum},
    {"specified_ids", tk_ids}, {"excepted_ids", tk_ids}, {"gpu", tk_gpu},
    {"datasets", tk_datasets}, {"after", tk_after},
};

static bool is_task_key(const char *key)
{
    for (size_t k = 0; k < ARRAY_LEN(task_keys); k++)
        if (strcmp(key, task_keys[k].key) == 0)
            return true;
    return false;
}

static void load_task(struct loader *ld, const toml_value *tab, size_t idx, swarm_task_def *t,
                      struct task_src *src)
{
    src->line = tab->line;
    const toml_value *av = toml_table_get(tab, "alias");
    const toml_value *mv = toml_table_get(tab, "module");
    if (av && av->type == TOML_STRING && av->u.s.len)
        src->label = xasprintf("task '%s'", av->u.s.ptr);
    else if (mv && mv->type == TOML_STRING && mv->u.s.len) {
        cleanup_free char *stem = pyz_module_stem(mv->u.s.ptr);
        src->label = xasprintf("task '%s'", stem);
    } else
        src->label = xasprintf("task #%zu", idx + 1);
    const char *label = src->label;

    t->method_all = true;
    t->maximum = -1;
    t->specified_ids = xcalloc(1, sizeof(char *));
    t->excepted_ids = xcalloc(1, sizeof(char *));
    t->datasets = xcalloc(1, sizeof(char *));
    src->after = xcalloc(1, sizeof(char *));

    struct task_reader r = {.ld = ld, .t = t, .src = src, .label = label};
    for (size_t i = 0; i < tab->u.tab.len; i++) {
        const toml_kv *kv = &tab->u.tab.items[i];
        size_t k = 0;
        while (k < ARRAY_LEN(task_keys) && strcmp(kv->key, task_keys[k].key) != 0)
            k++;
        if (k < ARRAY_LEN(task_keys)) {
            task_keys[k].read(&r, kv);
            continue;
        }
        const char *names[ARRAY_LEN(task_keys)];
        for (size_t j = 0; j < ARRAY_LEN(task_keys); j++)
            names[j] = task_keys[j].key;
        cleanup_free char *where = xasprintf("%s (a [[tasks]] table)", label);
        unknown_key(ld, kv, where, names, ARRAY_LEN(names),
                    "module, alias, image, method, fixed, maximum, specified_ids, "
                    "excepted_ids, gpu, datasets and after");
    }
    if (!r.have_module)
        sf_problemf(ld, tab->line,
                    "%s: 'module' is required: add module = \"worker.py\" (a .py file or a "
                    "package folder, relative to the swarm file) to this [[tasks]] table.",
                    label);
    if (!r.have_image)
        sf_problemf(ld, tab->line,
                    "%s: 'image' is required: add the container image the module runs in, e.g. "
                    "image = \"manta-task:bookworm\", to this [[tasks]] table.",
                    label);
    if (!t->alias && t->name)
        t->alias = xstrdup(t->name);
    if (t->name)
        t->task_id = task_id_of(t->name);

    /* The SDK's rule for specified_ids with excepted_ids (swarm-model.md 2.2). */
    size_t nspec = strv_len(t->specified_ids), left = 0;
    size_t nexc = strv_len(t->excepted_ids);
    cleanup_free struct keyed *exc = sf_keyed_sort((const char *const *)t->excepted_ids, nexc);
    for (size_t i = 0; i < nspec; i++)
        if (!sf_keyed_has(exc, nexc, t->specified_ids[i]))
            left++;
    if (nspec && !left) {
        sf_problemf(ld, src->ids_line,
                    "%s: every node in specified_ids is also in excepted_ids, so no node may run "
                    "the task: remove the shared ids from one of the two lists.",
                    label);
    } else if (nspec && !t->max_is_fraction && t->maximum > (int32_t)left) {
        t->maximum = (int32_t)left; /* as the SDK clamps it; -1 stays -1 */
    }
}

static void add_global(swarm_def *def, const char *tag, uint8_t *data, size_t len)
{
    def->globals = xrealloc(def->globals, (def->nglobals + 1) * sizeof(swarm_global));
    def->globals[def->nglobals++] = (swarm_global){.tag = xstrdup(tag), .data = data, .len = len};
}

/* Count a global's bytes against the file's budget; false (and a problem) past it. */
static bool global_budget(struct loader *ld, int line, const char *tag, size_t len)
{
    ld->global_bytes += len;
    if (ld->global_bytes <= SWARM_MAX_GLOBAL_BYTES)
        return true;
    sf_problemf(ld, line,
                "global '%s' brings the globals of this swarm file past %zu MiB in all; pass "
                "large data to tasks as datasets instead.",
                tag, SWARM_MAX_GLOBAL_BYTES >> 20);
    return false;
}

/* A tag: non-empty text without NUL bytes. */
static bool tag_ok(struct loader *ld, const toml_kv *kv, const char *table)
{
    if (kv->keylen == 0 || strlen(kv->key) != kv->keylen) {
        sf_problemf(ld, kv->line, "[%s]: a tag must be non-empty text without NUL characters.",
                    table);
        return false;
    }
    return true;
}

static void load_globals(struct loader *ld, const toml_kv *sec, swarm_def *def)
{
    if (sec->val->type != TOML_TABLE) {
        sf_problemf(ld, sec->line, "'globals' must be a table ([globals]), not %s.",
                    toml_type_name(sec->val->type));
        return;
    }
    for (size_t i = 0; i < sec->val->u.tab.len; i++) {
        const toml_kv *kv = &sec->val->u.tab.items[i];
        if (!tag_ok(ld, kv, "globals"))
            continue;
        cleanup_free char *what = xasprintf("global '%s'", kv->key);
        mt_error *e = NULL;
        size_t len = 0;
        uint8_t *data = mp_pack_toml_bytes(kv->val, what, &len, &e);
        if (!data) {
            sf_problemf(ld, kv->line, "%s", mt_error_msg(e));
            mt_error_free(&e);
            continue;
        }
        if (!global_budget(ld, kv->line, kv->key, len)) {
            free(data);
            return;
        }
        add_global(def, kv->key, data, len);
    }
}

static void load_global_files(struct loader *ld, const toml_kv *sec, swarm_def *def)
{
    if (sec->val->type != TOML_TABLE) {
        sf_problemf(ld, sec->line, "'global_files' must be a table ([global_files]), not %s.",
                    toml_type_name(sec->val->type));
        return;
    }
    /* the tags of [globals], sorted once: a file of many globals is checked in O(n log n) */
    size_t ng = def->nglobals;
    cleanup_free const char **tags = xcalloc(ng ? ng : 1, sizeof(char *));
    for (size_t i = 0; i < ng; i++)
        tags[i] = def->globals[i].tag;
    cleanup_free struct keyed *sorted = sf_keyed_sort(tags, ng);
    for (size_t i = 0; i < sec->val->u.tab.len; i++) {
        const toml_kv *kv = &sec->val->u.tab.items[i];
        if (!tag_ok(ld, kv, "global_files"))
            continue;
        cleanup_free char *what = xasprintf("global file '%s'", kv->key);
        const char *rel = string_value(ld, kv, what, false);
        if (!rel)
            continue;
        if (sf_keyed_has(sorted, ng, kv->key)) {
            sf_problemf(ld, kv->line,
                        "global '%s' is set in both [globals] and [global_files]: keep one of "
                        "them.",
                        kv->key);
            continue;
        }
        cleanup_free char *path = rel[0] == '/' ? xstrdup(rel) : fs_join(ld->dir, rel);
        mt_error *e = NULL;
        size_t len = 0;
        char *data = fs_read_file(path, SWARM_MAX_FILE, &len, &e);
        if (!data) {
            sf_problemf(ld, kv->line,
                        "global file '%s': %s (paths are relative to the swarm file's folder %s).",
                        kv->key, mt_error_msg(e), ld->dir);
            mt_error_free(&e);
            continue;
        }
        if (!global_budget(ld, kv->line, kv->key, len)) {
            free(data);
            return;
        }
        add_global(def, kv->key, (uint8_t *)data, len);
    }
}

static const char *const top_keys[] = {"name", "globals", "global_files", "tasks"};

/* Stage 1: every key and value. */
static void load_tree(struct loader *ld, const toml_value *root, swarm_def *def,
                      struct task_src **srcs)
{
    const toml_kv *tasks_kv = NULL;
    for (size_t i = 0; i < root->u.tab.len; i++) {
        const toml_kv *kv = &root->u.tab.items[i];
        if (strcmp(kv->key, "name") == 0) {
            const char *s = string_value(ld, kv, "the swarm", false);
            if (s)
                def->name = xstrdup(s);
        } else if (strcmp(kv->key, "globals") == 0) {
            load_globals(ld, kv, def);
        } else if (strcmp(kv->key, "global_files") == 0) {
            continue; /* after [globals], for the duplicate check */
        } else if (strcmp(kv->key, "tasks") == 0) {
            tasks_kv = kv;
        } else {
            const char *best = suggest_closest(kv->key, top_keys, ARRAY_LEN(top_keys));
            bool aot = kv->val->type == TOML_ARRAY && kv->val->u.arr.len &&
                       kv->val->u.arr.items[0]->type == TOML_TABLE;
            const char *open = kv->val->type == TOML_TABLE ? "[" : aot ? "[[" : "";
            const char *close = kv->val->type == TOML_TABLE ? "]" : aot ? "]]" : "";
            if (is_task_key(kv->key))
                sf_problemf(ld, kv->line,
                            "key '%s' belongs in a [[tasks]] table: move it below a [[tasks]] "
                            "header.",
                            kv->key);
            else if (best)
                sf_problemf(ld, kv->line, "unknown %s '%s%s%s'; did you mean '%s%s%s'?",
                            *open ? "table" : "key", open, kv->key, close, open, best, close);
            else
                sf_problemf(ld, kv->line,
                            "unknown %s '%s%s%s'; a swarm file has the key 'name' and the tables "
                            "[globals], [global_files] and [[tasks]].",
                            *open ? "table" : "key", open, kv->key, close);
        }
    }
    const toml_kv *gf = toml_table_get_kv(root, "global_files");
    if (gf)
        load_global_files(ld, gf, def);

    if (!tasks_kv) {
        sf_problemf(ld, 0,
                    "the swarm has no tasks: add at least one [[tasks]] table with a module and "
                    "an image.");
        return;
    }
    const toml_value *arr = tasks_kv->val;
    if (arr->type != TOML_ARRAY) {
        sf_problemf(ld, tasks_kv->line,
                    "'tasks' must be an array of tables ([[tasks]] sections), not %s.",
                    toml_type_name(arr->type));
        return;
    }
    if (arr->u.arr.len == 0) {
        sf_problemf(ld, tasks_kv->line,
                    "the swarm has no tasks: add at least one [[tasks]] table with a module and "
                    "an image.");
        return;
    }
    if (arr->u.arr.len > SWARM_MAX_TASKS) {
        sf_problemf(ld, tasks_kv->line,
                    "the swarm has %zu tasks; a swarm file holds at most %d: split the swarm.",
                    arr->u.arr.len, SWARM_MAX_TASKS);
        return;
    }
    def->tasks = xcalloc(arr->u.arr.len, sizeof(swarm_task_def));
    *srcs = xcalloc(arr->u.arr.len, sizeof(struct task_src));
    def->ntasks = arr->u.arr.len;
    for (size_t i = 0; i < arr->u.arr.len; i++) {
        const toml_value *tab = arr->u.arr.items[i];
        if (tab->type != TOML_TABLE) {
            (*srcs)[i].label = xasprintf("task #%zu", i + 1);
            sf_problemf(ld, tab->line ? tab->line : tasks_kv->line,
                        "task #%zu must be a table ([[tasks]] section), not %s.", i + 1,
                        toml_type_name(tab->type));
            continue;
        }
        load_task(ld, tab, i, &def->tasks[i], &(*srcs)[i]);
    }
}

static char *swarm_stem(const char *path)
{
    const char *b = fs_base_name(path);
    const char *dot = strrchr(b, '.');
    return dot && dot != b ? xstrndup(b, (size_t)(dot - b)) : xstrdup(b);
}

swarm_def *swarmfile_load(const char *path, mt_error **err)
{
    cleanup_toml toml_value *root = toml_parse_file(path, TOML_1_1, err);
    if (!root)
        return NULL;
    cleanup_free char *real = realpath(path, NULL);
    if (!real)
        return mt_error_sys(err, errno, "cannot resolve the path of %s", path), NULL;
    *strrchr(real, '/') = '\0';
    struct loader ld = {.fname = path, .dir = real[0] ? real : "/", .problems = STRBUF_INIT};
    __attribute__((cleanup(swarm_def_freep))) swarm_def *def = xcalloc(1, sizeof(swarm_def));
    struct task_src *srcs = NULL;

    load_tree(&ld, root, def, &srcs);
    if (!ld.nproblems)
        sf_build_graph(&ld, def, srcs);
    if (!ld.nproblems) {
        for (size_t i = 0; i < def->ntasks; i++) {
            swarm_task_def *t = &def->tasks[i];
            mt_error *e = NULL;
            if (pyz_pack(t->module_path, &t->pyz, &t->pyz_len, &e)) {
                sf_problemf(&ld, srcs[i].line, "%s: %s", srcs[i].label, mt_error_msg(e));
                mt_error_free(&e);
                break;
            }
            /* a swarm file's module has no upload id: its content names it */
            uint8_t d[16];
            b3_hash(t->pyz, t->pyz_len, d, sizeof(d));
            for (int k = 0; k < 8; k++) {
                t->module_id.head = (t->module_id.head << 8) | d[k];
                t->module_id.tail = (t->module_id.tail << 8) | d[8 + k];
            }
        }
    }
    for (size_t i = 0; srcs && i < def->ntasks; i++) {
        free(srcs[i].label);
        strv_free(srcs[i].after);
    }
    free(srcs);
    if (ld.nproblems > SWARM_MAX_PROBLEMS_SHOWN)
        sb_printf(&ld.problems, "\n%s: ... and %zu more problems; fix these first.", path,
                  ld.nproblems - SWARM_MAX_PROBLEMS_SHOWN);
    if (ld.nproblems) {
        mt_error_set(err, MT_ERR_CONFIG, "%s", sb_str(&ld.problems));
        sb_free(&ld.problems);
        return NULL;
    }
    sb_free(&ld.problems);
    if (!def->name)
        def->name = swarm_stem(path);
    return steal_ptr(def);
}
