/* config.c - loading, converting, validating and describing node configurations. The keys
 * themselves are in config_keys.c; this file is driven entirely by that table. */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "jwt.h"
#include "mem.h"
#include "suggest.h"
#include "paths.h"
#include "strbuf.h"
#include "units.h"

/* ---- small helpers ---------------------------------------------------------------------- */

void *config_field(node_config *cfg, const cfg_key *k)
{
    return (char *)cfg + k->offset;
}

const void *config_field_const(const node_config *cfg, const cfg_key *k)
{
    return (const char *)cfg + k->offset;
}

static size_t nkeys(void)
{
    size_t n;
    config_keys(&n);
    return n;
}

static int key_index_of(const cfg_key *k)
{
    size_t n;
    const cfg_key *all = config_keys(&n);
    return (int)(k - all);
}

/* The key an alias entry stands for (itself if not an alias). */
static const cfg_key *key_target(const cfg_key *k)
{
    if (!k->alias_of)
        return k;
    int i = config_key_index(k->alias_of);
    size_t n;
    return i >= 0 ? &config_keys(&n)[i] : k;
}

static void map_free(cfg_map *m)
{
    for (size_t i = 0; i < m->len; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static void map_add(cfg_map *m, const char *k, const char *v)
{
    m->keys = xrealloc(m->keys, (m->len + 1) * sizeof(char *));
    m->values = xrealloc(m->values, (m->len + 1) * sizeof(char *));
    m->keys[m->len] = xstrdup(k);
    m->values[m->len] = xstrdup(v);
    m->len++;
}

static void strlist_free(cfg_strlist *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Release the value of one key (not aliases: they share the target's storage). */
static void field_release(node_config *cfg, const cfg_key *k)
{
    void *f = config_field(cfg, k);
    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_ENUM:
        free(*(char **)f);
        *(char **)f = NULL;
        break;
    case CFG_MAP:
        map_free(f);
        break;
    case CFG_STRLIST:
        strlist_free(f);
        break;
    case CFG_ANY:
        toml_free(*(toml_value **)f);
        *(toml_value **)f = NULL;
        break;
    default:
        break;
    }
}

/* ---- defaults ------------------------------------------------------------------------- */

static int set_from_text(node_config *cfg, const cfg_key *k, const char *text, const char *where,
                         mt_error **err);

void config_init_defaults(node_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    size_t n = nkeys();
    cfg->origin = xcalloc(n, sizeof(*cfg->origin));
    cfg->line = xcalloc(n, sizeof(*cfg->line));
    cfg->written_as = xcalloc(n, sizeof(*cfg->written_as));
    const cfg_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        if (k->alias_of)
            continue;
        if (k->type == CFG_TRIBOOL)
            *(int *)config_field(cfg, k) = -1;
        if (k->def && k->type != CFG_MAP && k->type != CFG_STRLIST) {
            mt_error *e = NULL;
            if (set_from_text(cfg, k, k->def, "default", &e) < 0) {
                /* A bad default is a programming error caught by the unit tests. */
                fprintf(stderr, "manta: bad default for %s.%s: %s\n", k->section, k->name,
                        mt_error_msg(e));
                abort();
            }
        }
    }
}

void config_free(node_config *cfg)
{
    size_t n;
    const cfg_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (!keys[i].alias_of)
            field_release(cfg, &keys[i]);
    if (cfg->written_as)
        for (size_t i = 0; i < n; i++)
            free(cfg->written_as[i]);
    free(cfg->written_as);
    free(cfg->origin);
    free(cfg->line);
    free(cfg->path);
    free(cfg->stem);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- conversion ------------------------------------------------------------------------ */

static bool parse_bool_word(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool parse_int_text(const char *s, int64_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_float_text(const char *s, double *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static const char *type_expectation(const cfg_key *k)
{
    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
        return "a string";
    case CFG_INT:
        return "an integer";
    case CFG_FLOAT:
        return "a number";
    case CFG_BOOL:
        return "true or false";
    case CFG_TRIBOOL:
        return "true, false or \"auto\"";
    case CFG_SIZE:
        return "a size such as \"512M\" or \"4G\"";
    case CFG_ENUM:
        return "one of the listed values";
    case CFG_MAP:
        return "a table of names to paths";
    case CFG_STRLIST:
        return "an array of strings";
    case CFG_ANY:
        return "any value";
    }
    return "?";
}

static char *choices_text(const cfg_key *k)
{
    strbuf sb = STRBUF_INIT;
    for (size_t i = 0; k->choices[i]; i++)
        sb_printf(&sb, "%s\"%s\"", i ? (k->choices[i + 1] ? ", " : " or ") : "", k->choices[i]);
    return sb_steal(&sb);
}

static char *expand_path_value(const char *s)
{
    return fs_expand_tilde(s);
}

/* Store a value given as text (defaults, environment substitution). */
static int set_from_text(node_config *cfg, const cfg_key *k, const char *text, const char *where,
                         mt_error **err)
{
    const cfg_key *t = key_target(k);
    void *f = config_field(cfg, t);
    switch (t->type) {
    case CFG_STRING:
        free(*(char **)f);
        *(char **)f = xstrdup(text);
        return 0;
    case CFG_PATH:
        free(*(char **)f);
        *(char **)f = expand_path_value(text);
        return 0;
    case CFG_ENUM:
        for (size_t i = 0; t->choices[i]; i++) {
            if (strcasecmp(text, t->choices[i]) == 0) {
                free(*(char **)f);
                *(char **)f = xstrdup(t->choices[i]);
                return 0;
            }
        }
        {
            cleanup_free char *ch = choices_text(t);
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s.%s must be %s, not \"%s\"", where,
                                k->section, k->name, ch, text);
        }
    case CFG_INT:
        if (!parse_int_text(text, f))
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s.%s must be an integer, not \"%s\"",
                                where, k->section, k->name, text);
        return 0;
    case CFG_FLOAT:
        if (!parse_float_text(text, f))
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s.%s must be a number, not \"%s\"", where,
                                k->section, k->name, text);
        return 0;
    case CFG_BOOL:
        if (!parse_bool_word(text, f))
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s.%s must be true or false, not \"%s\"",
                                where, k->section, k->name, text);
        return 0;
    case CFG_TRIBOOL: {
        bool b;
        if (strcasecmp(text, "auto") == 0) {
            *(int *)f = -1;
            return 0;
        }
        if (!parse_bool_word(text, &b))
            return mt_error_set(err, MT_ERR_CONFIG,
                                "%s: %s.%s must be true, false or \"auto\", not \"%s\"", where,
                                k->section, k->name, text);
        *(int *)f = b;
        return 0;
    }
    case CFG_SIZE:
        if (!parse_size(text, f))
            return mt_error_set(err, MT_ERR_CONFIG,
                                "%s: %s.%s must be a size such as \"512M\" or \"4G\", not \"%s\"",
                                where, k->section, k->name, text);
        return 0;
    case CFG_MAP:
    case CFG_STRLIST:
    case CFG_ANY:
        return mt_error_set(err, MT_ERR_CONFIG, "%s: %s.%s cannot be given as a single string",
                            where, k->section, k->name);
    }
    return 0;
}

/* If s is exactly "${NAME}" or "${NAME:default}", return true and fill name/def (owned). */
static bool parse_env_ref(const char *s, char **name, char **def)
{
    size_t n = strlen(s);
    if (n < 4 || s[0] != '$' || s[1] != '{' || s[n - 1] != '}')
        return false;
    const char *body = s + 2;
    size_t bl = n - 3;
    const char *colon = memchr(body, ':', bl);
    size_t nl = colon ? (size_t)(colon - body) : bl;
    if (nl == 0)
        return false;
    for (size_t i = 0; i < nl; i++)
        if (!(isalnum((unsigned char)body[i]) || body[i] == '_'))
            return false;
    if (memchr(body, '}', bl))
        return false;
    *name = xstrndup(body, nl);
    *def = colon ? xstrndup(colon + 1, bl - nl - 1) : NULL;
    return true;
}

/* Substitute "${VAR}" references; returns owned text, NULL with *err if the variable is
 * missing. *was_ref tells whether a substitution happened. */
static char *substitute(const char *s, const char *where, const char *keyname, bool *was_ref,
                        mt_error **err)
{
    cleanup_free char *name = NULL;
    cleanup_free char *def = NULL;
    *was_ref = false;
    if (!parse_env_ref(s, &name, &def))
        return xstrdup(s);
    *was_ref = true;
    const char *v = getenv(name);
    if (v)
        return xstrdup(v);
    if (def)
        return xstrdup(def);
    mt_error_set(err, MT_ERR_NOENV,
                 "%s: %s is \"${%s}\" but the environment variable %s is not set and no default "
                 "is given; export %s=... or write \"${%s:default}\"",
                 where, keyname, name, name, name, name);
    return NULL;
}

struct loader {
    const char *fname;
    unsigned flags;
    node_config *cfg;
    strbuf problems;
    size_t nproblems;
    bool *set_by_name; /* per key index: given in the file under this exact name */
};

static void problem(struct loader *ld, mt_error **e)
{
    if (ld->nproblems)
        sb_putc(&ld->problems, '\n');
    sb_puts(&ld->problems, mt_error_msg(*e));
    ld->nproblems++;
    mt_error_free(e);
}

static void problemf(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problemf(struct loader *ld, const char *fmt, ...)
{
    if (ld->nproblems)
        sb_putc(&ld->problems, '\n');
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&ld->problems, fmt, ap);
    va_end(ap);
    ld->nproblems++;
}

static void record_origin(struct loader *ld, const cfg_key *k, int line, const char *written_as,
                          bool from_env)
{
    int i = key_index_of(key_target(k));
    ld->cfg->origin[i] = from_env ? CFG_FROM_ENV : CFG_FROM_FILE;
    ld->cfg->line[i] = line;
    free(ld->cfg->written_as[i]);
    ld->cfg->written_as[i] = from_env ? xstrdup(written_as) : NULL;
}

/* A string value of a table/array entry, after substitution. Owned, or NULL on problem. */
static char *string_entry(struct loader *ld, const toml_value *v, const char *what, bool *from_env)
{
    *from_env = false;
    if (v->type != TOML_STRING) {
        problemf(ld, "%s:%d: %s must be a string, not %s", ld->fname, v->line, what,
                 toml_type_name(v->type));
        return NULL;
    }
    if (ld->flags & CFG_LOAD_VERBATIM)
        return xstrdup(v->u.s.ptr);
    cleanup_free char *where = xasprintf("%s:%d", ld->fname, v->line);
    mt_error *e = NULL;
    char *s = substitute(v->u.s.ptr, where, what, from_env, &e);
    if (!s)
        problem(ld, &e);
    return s;
}

/* Convert and store one key's value. */
static void load_value(struct loader *ld, const cfg_key *k, const toml_kv *kv)
{
    const toml_value *v = kv->val;
    const cfg_key *t = key_target(k);
    cleanup_free char *where = xasprintf("%s:%d", ld->fname, kv->line);
    cleanup_free char *dotted = xasprintf("%s.%s", k->section, k->name);
    mt_error *e = NULL;

    /* A string for a scalar key: "${VAR}" substitution first, then conversion. */
    if (v->type == TOML_STRING && t->type != CFG_MAP && t->type != CFG_STRLIST &&
        t->type != CFG_ANY) {
        cleanup_free char *name = NULL;
        cleanup_free char *def = NULL;
        bool is_ref = parse_env_ref(v->u.s.ptr, &name, &def);
        if (is_ref && (ld->flags & CFG_LOAD_VERBATIM))
            return; /* kept as written; checked when the node loads the file */
        bool text_ok = t->type == CFG_STRING || t->type == CFG_PATH || t->type == CFG_ENUM ||
                       t->type == CFG_SIZE || t->type == CFG_FLOAT || t->type == CFG_TRIBOOL;
        if (!is_ref && !text_ok)
            return problemf(ld, "%s: %s must be %s, not a string (\"%s\")", where, dotted,
                            type_expectation(t), v->u.s.ptr);
        bool from_env = false;
        cleanup_free char *text = substitute(v->u.s.ptr, where, dotted, &from_env, &e);
        if (!text && e->code == MT_ERR_NOENV && (ld->flags & CFG_LOAD_LENIENT_ENV)) {
            int i = key_index_of(t);
            mt_error_free(&e);
            ld->cfg->origin[i] = CFG_MISSING_ENV;
            ld->cfg->line[i] = kv->line;
            free(ld->cfg->written_as[i]);
            ld->cfg->written_as[i] = xstrdup(v->u.s.ptr);
            if (t->type == CFG_STRING || t->type == CFG_PATH) {
                free(*(char **)config_field(ld->cfg, t));
                *(char **)config_field(ld->cfg, t) = NULL;
            }
            return;
        }
        if (!text)
            return problem(ld, &e);
        if (set_from_text(ld->cfg, k, text, where, &e) < 0)
            return problem(ld, &e);
        record_origin(ld, k, kv->line, v->u.s.ptr, from_env);
        return;
    }

    void *f = config_field(ld->cfg, t);
    switch (t->type) {
    case CFG_INT:
        if (v->type != TOML_INTEGER)
            return problemf(ld, "%s: %s must be an integer, not %s", where, dotted,
                            toml_type_name(v->type));
        *(int64_t *)f = v->u.i;
        break;
    case CFG_FLOAT:
        if (v->type != TOML_INTEGER && v->type != TOML_FLOAT)
            return problemf(ld, "%s: %s must be a number, not %s", where, dotted,
                            toml_type_name(v->type));
        if (v->type == TOML_FLOAT && !isfinite(v->u.f))
            return problemf(ld, "%s: %s must be a finite number", where, dotted);
        *(double *)f = v->type == TOML_INTEGER ? (double)v->u.i : v->u.f;
        break;
    case CFG_BOOL:
        if (v->type != TOML_BOOL)
            return problemf(ld, "%s: %s must be true or false, not %s", where, dotted,
                            toml_type_name(v->type));
        *(bool *)f = v->u.b;
        break;
    case CFG_TRIBOOL:
        if (v->type != TOML_BOOL)
            return problemf(ld, "%s: %s must be true, false or \"auto\", not %s", where, dotted,
                            toml_type_name(v->type));
        *(int *)f = v->u.b;
        break;
    case CFG_SIZE:
        if (v->type != TOML_INTEGER || v->u.i < 0)
            return problemf(ld, "%s: %s must be a size such as \"512M\" or \"4G\", not %s", where,
                            dotted, toml_type_name(v->type));
        *(uint64_t *)f = (uint64_t)v->u.i;
        break;
    case CFG_MAP: {
        if (v->type != TOML_TABLE)
            return problemf(ld,
                            "%s: %s must be a table of names to paths, e.g. %s = { data = "
                            "\"/srv/data\" }, not %s",
                            where, dotted, k->name, toml_type_name(v->type));
        cfg_map m = {0};
        bool any_env = false;
        for (size_t i = 0; i < v->u.tab.len; i++) {
            const toml_kv *e2 = &v->u.tab.items[i];
            cleanup_free char *what = xasprintf("%s.%s", dotted, e2->key);
            bool from_env;
            cleanup_free char *s = string_entry(ld, e2->val, what, &from_env);
            any_env |= from_env;
            if (!s)
                continue;
            if (!*s) {
                problemf(ld, "%s:%d: %s is empty; give the dataset's file or folder", ld->fname,
                         e2->line, what);
                continue;
            }
            cleanup_free char *path =
                (ld->flags & CFG_LOAD_VERBATIM) ? xstrdup(s) : expand_path_value(s);
            map_add(&m, e2->key, path);
        }
        map_free(f);
        *(cfg_map *)f = m;
        record_origin(ld, k, kv->line, NULL, false);
        (void)any_env;
        return;
    }
    case CFG_STRLIST: {
        if (v->type != TOML_ARRAY)
            return problemf(ld, "%s: %s must be an array of strings, not %s", where, dotted,
                            toml_type_name(v->type));
        cfg_strlist l = {0};
        for (size_t i = 0; i < v->u.arr.len; i++) {
            bool from_env;
            cleanup_free char *what = xasprintf("%s[%zu]", dotted, i);
            char *s = string_entry(ld, v->u.arr.items[i], what, &from_env);
            if (!s)
                continue;
            l.items = xrealloc(l.items, (l.len + 1) * sizeof(char *));
            l.items[l.len++] = s;
        }
        strlist_free(f);
        *(cfg_strlist *)f = l;
        break;
    }
    case CFG_ANY:
        toml_free(*(toml_value **)f);
        *(toml_value **)f = toml_clone(v);
        break;
    case CFG_STRING:
    case CFG_PATH:
    case CFG_ENUM:
        return problemf(ld, "%s: %s must be a string, not %s", where, dotted,
                        toml_type_name(v->type));
    }
    record_origin(ld, k, kv->line, NULL, false);
}

static const cfg_key *find_key(const char *section, const char *name)
{
    size_t n;
    const cfg_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool is_section(const char *name)
{
    for (const char *const *s = config_sections(); *s; s++)
        if (strcmp(*s, name) == 0)
            return true;
    return false;
}

static void unknown_key(struct loader *ld, const char *section, const toml_kv *kv)
{
    size_t n;
    const cfg_key *keys = config_keys(&n);
    const char *cands[128];
    size_t nc = 0;
    for (size_t i = 0; i < n && nc < ARRAY_LEN(cands); i++)
        if (strcmp(keys[i].section, section) == 0)
            cands[nc++] = keys[i].name;
    const char *best = suggest_closest(kv->key, cands, nc);
    /* A key from another section? */
    const char *other = NULL;
    for (size_t i = 0; i < n && !best; i++)
        if (strcmp(keys[i].name, kv->key) == 0)
            other = keys[i].section;
    if (best)
        problemf(ld, "%s:%d: unknown key '%s' in [%s]; did you mean '%s'?", ld->fname, kv->line,
                 kv->key, section, best);
    else if (other)
        problemf(ld, "%s:%d: unknown key '%s' in [%s]; it belongs in [%s]", ld->fname, kv->line,
                 kv->key, section, other);
    else
        problemf(ld,
                 "%s:%d: unknown key '%s' in [%s] (see 'manta_node config show' or "
                 "docs/configuration.md for the keys)",
                 ld->fname, kv->line, kv->key, section);
}

int config_from_tree(const toml_value *root, const char *fname, unsigned flags, node_config *cfg,
                     toml_value **norm, mt_error **err)
{
    node_config scratch;
    if (!cfg) {
        config_init_defaults(&scratch);
        cfg = &scratch;
    }
    struct loader ld = {.fname = fname, .flags = flags, .cfg = cfg, .problems = STRBUF_INIT};
    size_t n;
    const cfg_key *keys = config_keys(&n);
    ld.set_by_name = xcalloc(n, sizeof(bool));

    /* Pass 1: every table and key in the file must be known. */
    for (size_t i = 0; i < root->u.tab.len; i++) {
        const toml_kv *sec = &root->u.tab.items[i];
        if (!is_section(sec->key)) {
            const char *best = suggest_closest(sec->key, config_sections(), 10);
            if (sec->val->type != TOML_TABLE) {
                const char *owner = NULL;
                for (size_t j = 0; j < n && !owner; j++)
                    if (strcmp(keys[j].name, sec->key) == 0)
                        owner = keys[j].section;
                if (owner)
                    problemf(&ld, "%s:%d: key '%s' must be inside the [%s] table", fname, sec->line,
                             sec->key, owner);
                else
                    problemf(&ld, "%s:%d: unknown key '%s' outside any table", fname, sec->line,
                             sec->key);
            } else if (best) {
                problemf(&ld, "%s:%d: unknown table [%s]; did you mean [%s]?", fname, sec->line,
                         sec->key, best);
            } else {
                problemf(&ld,
                         "%s:%d: unknown table [%s]; the tables are [identity], "
                         "[metadata], [network], [mqtt], [containers], [datasets], "
                         "[tasks], [resources], [logging] and [security]",
                         fname, sec->line, sec->key);
            }
            continue;
        }
        if (sec->val->type != TOML_TABLE) {
            problemf(&ld, "%s:%d: '%s' must be a table ([%s]), not %s", fname, sec->line, sec->key,
                     sec->key, toml_type_name(sec->val->type));
            continue;
        }
        for (size_t j = 0; j < sec->val->u.tab.len; j++) {
            const toml_kv *kv = &sec->val->u.tab.items[j];
            const cfg_key *k = find_key(sec->key, kv->key);
            if (!k) {
                unknown_key(&ld, sec->key, kv);
                continue;
            }
            ld.set_by_name[key_index_of(k)] = true;
        }
    }

    /* Pass 2: in table order, convert every key present. An alias is applied only when the
     * preferred name is absent. */
    toml_value *out = norm ? toml_new_table() : NULL;
    for (size_t i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        const toml_value *sec = toml_table_get(root, k->section);
        const toml_kv *kv = sec && sec->type == TOML_TABLE ? toml_table_get_kv(sec, k->name) : NULL;
        if (!kv) {
            if (k->flags & CFG_REQUIRED)
                problemf(&ld,
                         "%s: %s.%s is required: add it under [%s], e.g. %s = "
                         "\"${MANTA_NODE_TOKEN}\"",
                         fname, k->section, k->name, k->section, k->name);
            continue;
        }
        const cfg_key *t = key_target(k);
        if (k->alias_of && ld.set_by_name[key_index_of(t)])
            continue; /* the preferred name wins */
        load_value(&ld, k, kv);
        if (out) {
            toml_value *osec = toml_table_get(out, t->section);
            if (!osec) {
                osec = toml_new_table();
                toml_table_set(out, t->section, osec);
            }
            toml_table_set(osec, t->name, toml_clone(kv->val));
        }
    }
    free(ld.set_by_name);
    if (cfg == &scratch)
        config_free(&scratch);

    if (ld.nproblems) {
        toml_free(out);
        mt_error_set(err, MT_ERR_CONFIG, "%s", sb_str(&ld.problems));
        sb_free(&ld.problems);
        return -1;
    }
    sb_free(&ld.problems);
    if (norm) {
        /* Sections in table order even if their first key came late. */
        toml_value *ordered = toml_new_table();
        for (const char *const *s = config_sections(); *s; s++) {
            toml_value *t = toml_table_get(out, *s);
            if (t)
                toml_table_set(ordered, *s, toml_clone(t));
        }
        toml_free(out);
        *norm = ordered;
    }
    return 0;
}

int config_load_file(node_config *cfg, const char *path, unsigned flags, mt_error **err)
{
    config_init_defaults(cfg);
    cfg->path = xstrdup(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    cfg->stem = dot && dot != base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
    cleanup_free char *shown = fs_display_path(path);
    size_t len = 0;
    mt_error *e = NULL;
    cleanup_free char *text = fs_read_file(path, 16u << 20, &len, &e);
    if (!text) {
        *err = e;
        return -1;
    }
    cleanup_toml toml_value *root = toml_parse(text, len, shown, TOML_1_1, err);
    if (!root)
        return -1;
    return config_from_tree(root, shown, flags, cfg, NULL, err);
}

/* ---- derived defaults ---------------------------------------------------------------- */

char *config_safe_name(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
            *p = '_';
    return out;
}

const char *config_effective_alias(const node_config *cfg)
{
    if (cfg->identity.alias && *cfg->identity.alias)
        return cfg->identity.alias;
    int mi = config_key_index("metadata.name");
    bool name_set = cfg->origin && cfg->origin[mi] != CFG_FROM_DEFAULT;
    if (name_set && cfg->metadata.name && *cfg->metadata.name)
        return cfg->metadata.name;
    if (cfg->stem) /* the configuration's own name, so two configs never share "default" */
        return cfg->stem;
    return cfg->metadata.name ? cfg->metadata.name : "default";
}

void config_finalize(node_config *cfg, const char *alias_override)
{
    if (alias_override) {
        free(cfg->identity.alias);
        cfg->identity.alias = xstrdup(alias_override);
        int i = config_key_index("identity.alias");
        cfg->origin[i] = CFG_FROM_OVERRIDE;
    }
    cleanup_free char *logs = paths_node_logs_dir();
    if (!cfg->logging.filename || !*cfg->logging.filename) {
        cleanup_free char *safe = config_safe_name(config_effective_alias(cfg));
        cleanup_free char *file = xasprintf("%s.log", safe);
        free(cfg->logging.filename);
        cfg->logging.filename = fs_join(logs, file);
    } else if (cfg->logging.filename[0] != '/') {
        char *abs = fs_join(logs, cfg->logging.filename);
        free(cfg->logging.filename);
        cfg->logging.filename = abs;
    }
    /* Relative dataset paths are taken from datasets.base_path. */
    cfg_map *m = &cfg->datasets.mappings;
    for (size_t i = 0; i < m->len; i++) {
        if (m->values[i][0] != '/' && cfg->datasets.base_path) {
            char *abs = fs_join(cfg->datasets.base_path, m->values[i]);
            free(m->values[i]);
            m->values[i] = abs;
        }
    }
}

bool config_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || !isalnum((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)name[i]) || name[i] == '-' || name[i] == '_' ||
              name[i] == '.'))
            return false;
    return !(n > 5 && strcmp(name + n - 5, ".toml") == 0);
}

/* ---- validation ------------------------------------------------------------------------ */

struct issues {
    char **v;
    size_t n;
};

static void issue(struct issues *is, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void issue(struct issues *is, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    is->v = xrealloc(is->v, (is->n + 2) * sizeof(char *));
    is->v[is->n++] = s;
    is->v[is->n] = NULL;
}

static void check_file(struct issues *is, const char *key, const char *path)
{
    if (!path)
        return;
    if (!fs_exists(path))
        issue(is, "%s: file does not exist: %s", key, path);
    else if (access(path, R_OK) != 0)
        issue(is, "%s: file is not readable: %s", key, path);
}

static void check_bounds(struct issues *is, const node_config *cfg, const cfg_key *k)
{
    if (!(k->min < k->max) || k->alias_of)
        return;
    const void *f = config_field_const(cfg, k);
    double v;
    char shown[64];
    if (k->type == CFG_INT) {
        v = (double)*(const int64_t *)f;
        snprintf(shown, sizeof(shown), "%lld", (long long)*(const int64_t *)f);
    } else if (k->type == CFG_FLOAT) {
        v = *(const double *)f;
        snprintf(shown, sizeof(shown), "%g", v);
    } else if (k->type == CFG_SIZE) {
        v = (double)*(const uint64_t *)f;
        format_size(*(const uint64_t *)f, shown, sizeof(shown));
    } else {
        return;
    }
    if (v >= k->min && v <= k->max)
        return;
    if (k->type == CFG_SIZE) {
        char lo[32];
        issue(is, "%s.%s (%s) must be at least %s", k->section, k->name, shown,
              format_size((uint64_t)k->min, lo, sizeof(lo)));
    } else if (strcmp(k->name, "reserve_cpu_percent") == 0) {
        issue(is, "resources.reserve_cpu_percent should not exceed 50%%");
    } else {
        issue(is, "%s.%s (%s) must be between %g and %g", k->section, k->name, shown, k->min,
              k->max);
    }
}

size_t config_validate(const node_config *cfg, char ***out)
{
    struct issues is = {0};
    size_t n;
    const cfg_key *keys = config_keys(&n);
    bool token_env_missing = false;
    for (size_t i = 0; i < n; i++) {
        if (cfg->origin[i] != CFG_MISSING_ENV)
            continue;
        cleanup_free char *name = NULL;
        cleanup_free char *def = NULL;
        parse_env_ref(cfg->written_as[i], &name, &def);
        issue(&is,
              "%s.%s is \"%s\" but the environment variable %s is not set; export %s=... "
              "before starting the node",
              keys[i].section, keys[i].name, cfg->written_as[i], name ? name : "?",
              name ? name : "?");
        if (keys[i].offset == offsetof(node_config, identity.secured_token))
            token_env_missing = true;
    }
    const char *tok = cfg->identity.secured_token;
    if (token_env_missing) {
        /* reported above */
    } else if (!tok || !*tok || tok[0] == '<') {
        issue(&is, "identity.secured_token is required (cannot be empty or placeholder)");
        issue(&is, "  → Set your JWT token in the configuration file");
        issue(&is, "  → Or run: manta_node config init <path/to/config.yaml>");
    } else {
        jwt_info ji;
        mt_error *e = NULL;
        if (jwt_inspect(tok, &ji, &e) < 0) {
            issue(&is, "identity.secured_token: %s", mt_error_msg(e));
            mt_error_free(&e);
        } else if (ji.has_exp && ji.exp < (int64_t)time(NULL)) {
            char when[CLOCK_TEXT_MAX];
            clock_utc_text(ji.exp, when);
            issue(&is, "identity.secured_token expired on %s; get a new token from the manager",
                  when);
        }
    }

    for (size_t i = 0; i < n; i++)
        check_bounds(&is, cfg, &keys[i]);
    if (cfg->network.light_service_port && cfg->network.light_service_port < 1024)
        issue(&is,
              "network.light_service_port (%lld) must be between 1024 and 65535 (or 0 for "
              "a free port)",
              (long long)cfg->network.light_service_port);
    if (!cfg->network.manager_host || !*cfg->network.manager_host)
        issue(&is, "network.manager_host is empty; give the manager's host name or address");
    if (cfg->containers.docker_network && strcmp(cfg->containers.docker_network, "host") != 0)
        issue(&is,
              "containers.docker_network = \"%s\" is not supported: tasks use host "
              "networking to reach the node",
              cfg->containers.docker_network);

    const cfg_map *m = &cfg->datasets.mappings;
    for (size_t i = 0; i < m->len; i++) {
        if (!fs_exists(m->values[i]))
            issue(&is, "Dataset path does not exist: %s -> %s", m->keys[i], m->values[i]);
        else if (access(m->values[i], R_OK) != 0)
            issue(&is, "Dataset path is not readable: %s -> %s", m->keys[i], m->values[i]);
    }

    bool manager_tls = cfg->security.use_tls || cfg->network.manager_port == 443;
    if (manager_tls) {
        check_file(&is, "security.ca_file", cfg->security.ca_file);
        check_file(&is, "security.cert_file", cfg->security.cert_file);
        check_file(&is, "security.key_file", cfg->security.key_file);
    }
    if (!cfg->security.cert_file != !cfg->security.key_file)
        issue(&is, "security.cert_file and security.key_file must be given together");
    bool mqtt_tls = cfg->mqtt.use_tls < 0 ? cfg->security.use_tls : cfg->mqtt.use_tls;
    if (mqtt_tls) {
        cleanup_free char *ca = cfg->mqtt.ca_file ? xstrdup(cfg->mqtt.ca_file)
                                                  : fs_join(cfg->security.cert_folder, "ca.crt");
        check_file(&is, cfg->mqtt.ca_file ? "mqtt.ca_file" : "security.cert_folder", ca);
        check_file(&is, "mqtt.cert_file", cfg->mqtt.cert_file);
        check_file(&is, "mqtt.key_file", cfg->mqtt.key_file);
    }
    if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file)
        issue(&is, "mqtt.cert_file and mqtt.key_file must be given together");

    if (!is.v) {
        is.v = xcalloc(1, sizeof(char *));
    }
    *out = is.v;
    return is.n;
}

/* ---- display -------------------------------------------------------------------------- */

static void quote_into(strbuf *sb, const char *s)
{
    toml_value *v = toml_new_string(s);
    cleanup_free char *q = toml_format_value(v);
    toml_free(v);
    sb_puts(sb, q);
}

char *config_format_value(const node_config *cfg, int idx)
{
    size_t n;
    const cfg_key *k = &config_keys(&n)[idx];
    const void *f = config_field_const(cfg, key_target(k));
    strbuf sb = STRBUF_INIT;
    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_ENUM: {
        const char *s = *(char *const *)f;
        if (!s) {
            sb_puts(&sb, "(unset)");
        } else if (k->flags & CFG_SECRET) {
            if (!*s || s[0] == '<')
                sb_puts(&sb, "(not set)");
            else
                sb_printf(&sb, "(set, %zu characters, hidden)", strlen(s));
        } else {
            quote_into(&sb, s);
        }
        break;
    }
    case CFG_INT:
        sb_printf(&sb, "%lld", (long long)*(const int64_t *)f);
        break;
    case CFG_FLOAT: {
        toml_value *v = toml_new_float(*(const double *)f);
        cleanup_free char *s = toml_format_value(v);
        toml_free(v);
        sb_puts(&sb, s);
        break;
    }
    case CFG_BOOL:
        sb_puts(&sb, *(const bool *)f ? "true" : "false");
        break;
    case CFG_TRIBOOL: {
        int t = *(const int *)f;
        sb_puts(&sb, t < 0 ? "\"auto\"" : (t ? "true" : "false"));
        break;
    }
    case CFG_SIZE: {
        char buf[32];
        sb_printf(&sb, "\"%s\"", format_size(*(const uint64_t *)f, buf, sizeof(buf)));
        break;
    }
    case CFG_MAP: {
        const cfg_map *m = f;
        sb_puts(&sb, "{");
        for (size_t i = 0; i < m->len; i++) {
            sb_puts(&sb, i ? ", " : " ");
            quote_into(&sb, m->keys[i]);
            sb_puts(&sb, " = ");
            quote_into(&sb, m->values[i]);
        }
        sb_puts(&sb, m->len ? " }" : "}");
        break;
    }
    case CFG_STRLIST: {
        const cfg_strlist *l = f;
        sb_puts(&sb, "[");
        for (size_t i = 0; i < l->len; i++) {
            if (i)
                sb_puts(&sb, ", ");
            quote_into(&sb, l->items[i]);
        }
        sb_puts(&sb, "]");
        break;
    }
    case CFG_ANY: {
        const toml_value *v = *(toml_value *const *)f;
        if (!v) {
            sb_puts(&sb, "(unset)");
        } else {
            cleanup_free char *s = toml_format_value(v);
            sb_puts(&sb, s);
        }
        break;
    }
    }
    return sb_steal(&sb);
}

static const char *type_doc_name(const cfg_key *k)
{
    switch (k->type) {
    case CFG_STRING:
        return "string";
    case CFG_PATH:
        return "path";
    case CFG_INT:
        return "integer";
    case CFG_FLOAT:
        return "number";
    case CFG_BOOL:
        return "boolean";
    case CFG_TRIBOOL:
        return "boolean or \"auto\"";
    case CFG_SIZE:
        return "size";
    case CFG_ENUM:
        return "choice";
    case CFG_MAP:
        return "table";
    case CFG_STRLIST:
        return "array of strings";
    case CFG_ANY:
        return "any";
    }
    return "?";
}

char *config_reference_markdown(void)
{
    strbuf sb = STRBUF_INIT;
    sb_puts(&sb,
            "# Configuration reference\n\n"
            "<!-- Generated by `manta_node config reference` from src/lib/config_keys.c; do not "
            "edit by hand. -->\n\n"
            "A node configuration is a TOML file `~/.manta/nodes/<name>.toml` (the folder "
            "follows `$MANTA_HOME`, default `~/.manta`). TOML 1.1 is accepted, so inline tables "
            "may span lines.\n\n"
            "* Unknown tables and keys, and values of the wrong type, are errors that name the "
            "file and line (with a suggestion when a name is close to a known one).\n"
            "* A string value that is exactly `\"${VAR}\"` or `\"${VAR:default}\"` is replaced "
            "by the environment variable `VAR` (or the default) when the node loads the file, "
            "and converted to the key's type, so `manager_port = \"${PORT}\"` works. A missing "
            "variable without a default is an error naming the key and the variable. Strings "
            "that merely contain `${...}` are kept as written.\n"
            "* A leading `~` in paths (type `path`, and dataset paths) is the home directory.\n"
            "* Sizes are written `\"512M\"`, `\"4G\"`, `\"100MB\"` or as a number of bytes; "
            "K, M, G and T are powers of 1024.\n"
            "* Keys marked *compat* are accepted so that files written for the reference "
            "node load unchanged; they have no effect.\n"
            "* Keys marked *reload* take effect on `SIGHUP`; every other change needs a "
            "restart.\n\n");
    size_t n;
    const cfg_key *keys = config_keys(&n);
    node_config defs;
    config_init_defaults(&defs);
    for (const char *const *s = config_sections(); *s; s++) {
        sb_printf(&sb, "## `[%s]`\n\n| key | type | default | notes |\n|---|---|---|---|\n", *s);
        for (size_t i = 0; i < n; i++) {
            const cfg_key *k = &keys[i];
            if (strcmp(k->section, *s) != 0)
                continue;
            strbuf def = STRBUF_INIT;
            if (k->alias_of)
                sb_printf(&def, "alias of `%s`", k->alias_of);
            else if (k->flags & CFG_REQUIRED)
                sb_puts(&def, "**required**");
            else if (k->flags & CFG_SECRET || (k->flags & CFG_OPTIONAL && !k->def))
                sb_puts(&def, "unset");
            else {
                cleanup_free char *v = config_format_value(&defs, (int)i);
                /* Paths are shown as written in the table, before ~ expansion. */
                if (k->type == CFG_PATH && k->def)
                    sb_printf(&def, "`\"%s\"`", k->def);
                else
                    sb_printf(&def, "`%s`", v);
            }
            strbuf type = STRBUF_INIT;
            sb_puts(&type, type_doc_name(k));
            if (k->type == CFG_ENUM) {
                cleanup_free char *ch = choices_text(k);
                sb_printf(&type, ": %s", ch);
            }
            if (k->min < k->max && k->type != CFG_SIZE)
                sb_printf(&type, ", %g..%g", k->min, k->max);
            strbuf notes = STRBUF_INIT;
            sb_puts(&notes, k->doc);
            if (k->flags & CFG_COMPAT)
                sb_puts(&notes, " *compat*");
            if (k->flags & CFG_RELOAD)
                sb_puts(&notes, " *reload*");
            if (k->flags & CFG_SECRET)
                sb_puts(&notes, " *secret*");
            sb_printf(&sb, "| `%s` | %s | %s | %s |\n", k->name, sb_str(&type), sb_str(&def),
                      sb_str(&notes));
            sb_free(&def);
            sb_free(&type);
            sb_free(&notes);
        }
        sb_putc(&sb, '\n');
    }
    config_free(&defs);
    return sb_steal(&sb);
}
