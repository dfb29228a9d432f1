/* config.c - the configuration engine: loading, converting, checking and describing a
 * configuration of any schema (config.h). The programs' key tables are elsewhere
 * (src/node/node_config_keys.c, src/manager/mgr_config.c); this file knows none of them. */
#include "config.h"
#include "config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsutil.h"
#include "mem.h"
#include "paths.h"
#include "strbuf.h"
#include "suggest.h"
#include "units.h"

/* A default path under the manta home ($MANTA_HOME, else ~/.manta): see cfg_key.def. */
#define HOME_PREFIX "$MANTA_HOME/"

/* ---- small helpers ---------------------------------------------------------------------- */

cfg_book *cfg_book_of(const cfg_schema *s, void *obj)
{
    return (cfg_book *)((char *)obj + s->book_offset);
}

const cfg_book *cfg_book_const(const cfg_schema *s, const void *obj)
{
    return (const cfg_book *)((const char *)obj + s->book_offset);
}

void *cfg_field(void *obj, const cfg_key *k)
{
    return (char *)obj + k->offset;
}

const void *cfg_field_const(const void *obj, const cfg_key *k)
{
    return (const char *)obj + k->offset;
}

bool cfg_same_section(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The key's name in messages: "network.manager_port", or "`node_timeout`" at the top level. */
static char *key_label(const cfg_key *k)
{
    return k->section ? xasprintf("%s.%s", k->section, k->name) : xasprintf("`%s`", k->name);
}

/* The key's name in lists: "network.manager_port" or "node_timeout". */
char *cfg_key_dotted(const cfg_key *k)
{
    return k->section ? xasprintf("%s.%s", k->section, k->name) : xstrdup(k->name);
}

int cfg_key_index(const cfg_schema *s, const char *dotted)
{
    const char *dot = s->sections ? strchr(dotted, '.') : NULL;
    if (s->sections && !dot)
        return -1;
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        if (!dot) {
            if (!k->section && strcmp(k->name, dotted) == 0)
                return (int)i;
            continue;
        }
        size_t sl = (size_t)(dot - dotted);
        if (k->section && strlen(k->section) == sl && strncmp(k->section, dotted, sl) == 0 &&
            strcmp(k->name, dot + 1) == 0)
            return (int)i;
    }
    return -1;
}

static int key_index_of(const cfg_schema *s, const cfg_key *k)
{
    return (int)(k - s->keys);
}

const cfg_key *cfg_key_target(const cfg_schema *s, const cfg_key *k)
{
    if (!k->alias_of)
        return k;
    int i = cfg_key_index(s, k->alias_of);
    return i >= 0 ? &s->keys[i] : k;
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
static void field_release(void *obj, const cfg_key *k)
{
    void *f = cfg_field(obj, k);
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

/* A number as text: whole numbers without an exponent ("31536000"), others as %g. */
const char *cfg_num_text(double v, char buf[32])
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, 32, "%.0f", v);
    else
        snprintf(buf, 32, "%g", v);
    return buf;
}

/* ---- defaults ------------------------------------------------------------------------- */

static int set_from_text(const cfg_schema *s, void *obj, const cfg_key *k, const char *text,
                         const char *where, mt_error **err);

void cfg_init_defaults(const cfg_schema *s, void *obj)
{
    memset(obj, 0, s->size);
    cfg_book *b = cfg_book_of(s, obj);
    b->origin = xcalloc(s->nkeys, sizeof(*b->origin));
    b->line = xcalloc(s->nkeys, sizeof(*b->line));
    b->written_as = xcalloc(s->nkeys, sizeof(*b->written_as));
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        if (k->alias_of)
            continue;
        if (k->type == CFG_TRIBOOL)
            *(int *)cfg_field(obj, k) = -1;
        if (k->type == CFG_PATH && k->def &&
            strncmp(k->def, HOME_PREFIX, strlen(HOME_PREFIX)) == 0) {
            cleanup_free char *home = paths_home();
            *(char **)cfg_field(obj, k) = fs_join(home, k->def + strlen(HOME_PREFIX));
            continue;
        }
        if (k->def && k->type != CFG_MAP && k->type != CFG_STRLIST) {
            mt_error *e = NULL;
            if (set_from_text(s, obj, k, k->def, "default", &e) < 0) {
                /* A bad default is a programming error caught by the unit tests. */
                fprintf(stderr, "%s: bad default for %s: %s\n", s->program, k->name,
                        mt_error_msg(e));
                abort();
            }
        }
    }
}

void cfg_free(const cfg_schema *s, void *obj)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (!s->keys[i].alias_of)
            field_release(obj, &s->keys[i]);
    cfg_book *b = cfg_book_of(s, obj);
    if (b->written_as)
        for (size_t i = 0; i < s->nkeys; i++)
            free(b->written_as[i]);
    free(b->written_as);
    free(b->origin);
    free(b->line);
    free(b->path);
    free(b->stem);
    memset(obj, 0, s->size);
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

char *cfg_choices_text(const cfg_key *k)
{
    strbuf sb = STRBUF_INIT;
    for (size_t i = 0; k->choices[i]; i++)
        sb_printf(&sb, "%s\"%s\"", i ? (k->choices[i + 1] ? ", " : " or ") : "", k->choices[i]);
    return sb_steal(&sb);
}

/* Store a value given as text (defaults, environment substitution). */
static int set_from_text(const cfg_schema *s, void *obj, const cfg_key *k, const char *text,
                         const char *where, mt_error **err)
{
    const cfg_key *t = cfg_key_target(s, k);
    void *f = cfg_field(obj, t);
    cleanup_free char *label = key_label(k);
    switch (t->type) {
    case CFG_STRING:
        free(*(char **)f);
        *(char **)f = xstrdup(text);
        return 0;
    case CFG_PATH:
        free(*(char **)f);
        *(char **)f = fs_expand_tilde(text);
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
            cleanup_free char *ch = cfg_choices_text(t);
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s must be %s, not \"%s\"", where, label,
                                ch, text);
        }
    case CFG_INT:
        if (!parse_int_text(text, f))
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s must be an integer, not \"%s\"", where,
                                label, text);
        return 0;
    case CFG_FLOAT:
        if (!parse_float_text(text, f))
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s must be a number, not \"%s\"", where,
                                label, text);
        return 0;
    case CFG_BOOL:
        if (!parse_bool_word(text, f))
            return mt_error_set(err, MT_ERR_CONFIG, "%s: %s must be true or false, not \"%s\"",
                                where, label, text);
        return 0;
    case CFG_TRIBOOL: {
        bool b;
        if (strcasecmp(text, "auto") == 0) {
            *(int *)f = -1;
            return 0;
        }
        if (!parse_bool_word(text, &b))
            return mt_error_set(err, MT_ERR_CONFIG,
                                "%s: %s must be true, false or \"auto\", not \"%s\"", where, label,
                                text);
        *(int *)f = b;
        return 0;
    }
    case CFG_SIZE:
        if (!parse_size(text, f))
            return mt_error_set(err, MT_ERR_CONFIG,
                                "%s: %s must be a size such as \"512M\" or \"4G\", not \"%s\"",
                                where, label, text);
        return 0;
    case CFG_MAP:
    case CFG_STRLIST:
    case CFG_ANY:
        return mt_error_set(err, MT_ERR_CONFIG, "%s: %s cannot be given as a single string", where,
                            label);
    }
    return 0;
}

bool cfg_parse_env_ref(const char *s, char **name, char **def)
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
    if (!cfg_parse_env_ref(s, &name, &def))
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
    const cfg_schema *s;
    const char *fname;
    unsigned flags;
    void *obj;
    cfg_book *book;
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
    int i = key_index_of(ld->s, cfg_key_target(ld->s, k));
    ld->book->origin[i] = from_env ? CFG_FROM_ENV : CFG_FROM_FILE;
    ld->book->line[i] = line;
    free(ld->book->written_as[i]);
    ld->book->written_as[i] = from_env ? xstrdup(written_as) : NULL;
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

/* A string given for a scalar key: "${VAR}" substitution first, then conversion. */
static void load_string(struct loader *ld, const cfg_key *k, const toml_kv *kv, const char *where,
                        const char *label)
{
    const toml_value *v = kv->val;
    const cfg_key *t = cfg_key_target(ld->s, k);
    mt_error *e = NULL;
    cleanup_free char *name = NULL;
    cleanup_free char *def = NULL;
    bool is_ref = cfg_parse_env_ref(v->u.s.ptr, &name, &def);
    if (is_ref && (ld->flags & CFG_LOAD_VERBATIM))
        return; /* kept as written; checked when the program loads the file */
    bool text_ok = t->type == CFG_STRING || t->type == CFG_PATH || t->type == CFG_ENUM ||
                   t->type == CFG_SIZE || t->type == CFG_FLOAT || t->type == CFG_TRIBOOL;
    if (!is_ref && !text_ok)
        return problemf(ld, "%s: %s must be %s, not a string (\"%s\")", where, label,
                        type_expectation(t), v->u.s.ptr);
    bool from_env = false;
    cleanup_free char *text = substitute(v->u.s.ptr, where, label, &from_env, &e);
    if (!text && e && e->code == MT_ERR_NOENV && (ld->flags & CFG_LOAD_LENIENT_ENV)) {
        int i = key_index_of(ld->s, t);
        mt_error_free(&e);
        ld->book->origin[i] = CFG_MISSING_ENV;
        ld->book->line[i] = kv->line;
        free(ld->book->written_as[i]);
        ld->book->written_as[i] = xstrdup(v->u.s.ptr);
        if (t->type == CFG_STRING || t->type == CFG_PATH) {
            free(*(char **)cfg_field(ld->obj, t));
            *(char **)cfg_field(ld->obj, t) = NULL;
        }
        return;
    }
    if (!text)
        return problem(ld, &e);
    if (set_from_text(ld->s, ld->obj, k, text, where, &e) < 0)
        return problem(ld, &e);
    record_origin(ld, k, kv->line, v->u.s.ptr, from_env);
}

/* Convert and store one key's value. */
static void load_value(struct loader *ld, const cfg_key *k, const toml_kv *kv)
{
    const toml_value *v = kv->val;
    const cfg_key *t = cfg_key_target(ld->s, k);
    cleanup_free char *where = xasprintf("%s:%d", ld->fname, kv->line);
    cleanup_free char *dotted = key_label(k);

    if (v->type == TOML_STRING && t->type != CFG_MAP && t->type != CFG_STRLIST &&
        t->type != CFG_ANY)
        return load_string(ld, k, kv, where, dotted);

    void *f = cfg_field(ld->obj, t);
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
        for (size_t i = 0; i < v->u.tab.len; i++) {
            const toml_kv *e2 = &v->u.tab.items[i];
            cleanup_free char *what = xasprintf("%s.%s", dotted, e2->key);
            bool from_env;
            cleanup_free char *s = string_entry(ld, e2->val, what, &from_env);
            if (!s)
                continue;
            if (!*s) {
                problemf(ld, "%s:%d: %s is empty; give the dataset's file or folder", ld->fname,
                         e2->line, what);
                continue;
            }
            cleanup_free char *path =
                (ld->flags & CFG_LOAD_VERBATIM) ? xstrdup(s) : fs_expand_tilde(s);
            map_add(&m, e2->key, path);
        }
        map_free(f);
        *(cfg_map *)f = m;
        break;
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

/* The value of key k as a number if it has bounds, for the checks. */
static bool bounded_value(const void *obj, const cfg_key *k, double *v, char shown[64])
{
    if (!(k->min < k->max) || k->alias_of)
        return false;
    const void *f = cfg_field_const(obj, k);
    if (k->type == CFG_INT) {
        *v = (double)*(const int64_t *)f;
        snprintf(shown, 64, "%lld", (long long)*(const int64_t *)f);
    } else if (k->type == CFG_FLOAT) {
        *v = *(const double *)f;
        snprintf(shown, 64, "%g", *v);
    } else if (k->type == CFG_SIZE) {
        *v = (double)*(const uint64_t *)f;
        format_size(*(const uint64_t *)f, shown, 64);
    } else {
        return false;
    }
    return true;
}

/* CFG_SCHEMA_BOUNDS_AT_LOAD: the value just loaded for k must be within its bounds. */
static void check_loaded_bounds(struct loader *ld, const cfg_key *k, const toml_kv *kv)
{
    const cfg_key *t = cfg_key_target(ld->s, k);
    double v;
    char shown[64], lo[32], hi[32];
    if (!bounded_value(ld->obj, t, &v, shown) || (v >= t->min && v <= t->max))
        return;
    cleanup_free char *label = key_label(k);
    problemf(ld, "%s:%d: %s is %s; it must be between %s and %s.", ld->fname, kv->line, label,
             shown, cfg_num_text(t->min, lo), cfg_num_text(t->max, hi));
}

static const cfg_key *find_key(const cfg_schema *s, const char *section, const char *name)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (cfg_same_section(s->keys[i].section, section) && strcmp(s->keys[i].name, name) == 0)
            return &s->keys[i];
    return NULL;
}

static size_t nsections(const cfg_schema *s)
{
    size_t n = 0;
    while (s->sections && s->sections[n])
        n++;
    return n;
}

static bool is_section(const cfg_schema *s, const char *name)
{
    for (const char *const *sec = s->sections; sec && *sec; sec++)
        if (strcmp(*sec, name) == 0)
            return true;
    return false;
}

static void unknown_key(struct loader *ld, const char *section, const toml_kv *kv)
{
    const cfg_schema *s = ld->s;
    const char *cands[128];
    size_t nc = 0;
    for (size_t i = 0; i < s->nkeys && nc < ARRAY_LEN(cands); i++)
        if (cfg_same_section(s->keys[i].section, section))
            cands[nc++] = s->keys[i].name;
    const char *best = suggest_closest(kv->key, cands, nc);
    if (!section) {
        if (best)
            problemf(ld, "%s:%d: unknown key `%s`; did you mean `%s`?", ld->fname, kv->line,
                     kv->key, best);
        else
            problemf(ld, "%s:%d: unknown key `%s`; %s", ld->fname, kv->line, kv->key,
                     s->unknown_hint);
        return;
    }
    /* A key from another section? */
    const char *other = NULL;
    for (size_t i = 0; i < s->nkeys && !best; i++)
        if (strcmp(s->keys[i].name, kv->key) == 0)
            other = s->keys[i].section;
    if (best)
        problemf(ld, "%s:%d: unknown key '%s' in [%s]; did you mean '%s'?", ld->fname, kv->line,
                 kv->key, section, best);
    else if (other)
        problemf(ld, "%s:%d: unknown key '%s' in [%s]; it belongs in [%s]", ld->fname, kv->line,
                 kv->key, section, other);
    else
        problemf(ld, "%s:%d: unknown key '%s' in [%s] %s", ld->fname, kv->line, kv->key, section,
                 s->unknown_hint);
}

/* Pass 1 for a schema with sections: a root entry that is not a known table. */
static void unknown_section(struct loader *ld, const toml_kv *sec)
{
    const cfg_schema *s = ld->s;
    const char *best = suggest_closest(sec->key, s->sections, nsections(s));
    if (sec->val->type != TOML_TABLE) {
        const char *owner = NULL;
        for (size_t j = 0; j < s->nkeys && !owner; j++)
            if (strcmp(s->keys[j].name, sec->key) == 0)
                owner = s->keys[j].section;
        if (owner)
            problemf(ld, "%s:%d: key '%s' must be inside the [%s] table", ld->fname, sec->line,
                     sec->key, owner);
        else
            problemf(ld, "%s:%d: unknown key '%s' outside any table", ld->fname, sec->line,
                     sec->key);
    } else if (best) {
        problemf(ld, "%s:%d: unknown table [%s]; did you mean [%s]?", ld->fname, sec->line,
                 sec->key, best);
    } else {
        strbuf list = STRBUF_INIT;
        size_t n = nsections(s);
        for (size_t i = 0; i < n; i++)
            sb_printf(&list, "%s[%s]", i ? (i + 1 < n ? ", " : " and ") : "", s->sections[i]);
        problemf(ld, "%s:%d: unknown table [%s]; the tables are %s", ld->fname, sec->line, sec->key,
                 sb_str(&list));
        sb_free(&list);
    }
}

/* Pass 1: every table and key in the file must be known. */
static void check_names(struct loader *ld, const toml_value *root)
{
    const cfg_schema *s = ld->s;
    for (size_t i = 0; i < root->u.tab.len; i++) {
        const toml_kv *sec = &root->u.tab.items[i];
        if (!s->sections) {
            const cfg_key *k = find_key(s, NULL, sec->key);
            if (!k)
                unknown_key(ld, NULL, sec);
            else
                ld->set_by_name[key_index_of(s, k)] = true;
            continue;
        }
        if (!is_section(s, sec->key)) {
            unknown_section(ld, sec);
            continue;
        }
        if (sec->val->type != TOML_TABLE) {
            problemf(ld, "%s:%d: '%s' must be a table ([%s]), not %s", ld->fname, sec->line,
                     sec->key, sec->key, toml_type_name(sec->val->type));
            continue;
        }
        for (size_t j = 0; j < sec->val->u.tab.len; j++) {
            const toml_kv *kv = &sec->val->u.tab.items[j];
            const cfg_key *k = find_key(s, sec->key, kv->key);
            if (!k) {
                unknown_key(ld, sec->key, kv);
                continue;
            }
            ld->set_by_name[key_index_of(s, k)] = true;
        }
    }
}

static void missing_required(struct loader *ld, const cfg_key *k)
{
    const char *ex = k->example ? k->example : "...";
    if (k->section)
        problemf(ld, "%s: %s.%s is required: add it under [%s], e.g. %s = %s", ld->fname,
                 k->section, k->name, k->section, k->name, ex);
    else
        problemf(ld, "%s: `%s` is required: add it, e.g. %s = %s", ld->fname, k->name, k->name, ex);
}

int cfg_from_tree(const cfg_schema *s, const toml_value *root, const char *fname, unsigned flags,
                  void *obj, toml_value **norm, mt_error **err)
{
    cleanup_free void *scratch = NULL;
    if (!obj) {
        scratch = xcalloc(1, s->size);
        cfg_init_defaults(s, scratch);
        obj = scratch;
    }
    struct loader ld = {.s = s,
                        .fname = fname,
                        .flags = flags,
                        .obj = obj,
                        .book = cfg_book_of(s, obj),
                        .problems = STRBUF_INIT};
    ld.set_by_name = xcalloc(s->nkeys, sizeof(bool));
    check_names(&ld, root);

    /* Pass 2: in table order, convert every key present. An alias is applied only when the
     * preferred name is absent. */
    toml_value *out = norm ? toml_new_table() : NULL;
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        const toml_value *sec = k->section ? toml_table_get(root, k->section) : root;
        const toml_kv *kv = sec && sec->type == TOML_TABLE ? toml_table_get_kv(sec, k->name) : NULL;
        if (!kv) {
            if (k->flags & CFG_REQUIRED)
                missing_required(&ld, k);
            continue;
        }
        const cfg_key *t = cfg_key_target(s, k);
        if (k->alias_of && ld.set_by_name[key_index_of(s, t)])
            continue; /* the preferred name wins */
        size_t before = ld.nproblems;
        load_value(&ld, k, kv);
        if ((s->flags & CFG_SCHEMA_BOUNDS_AT_LOAD) && ld.nproblems == before)
            check_loaded_bounds(&ld, k, kv);
        if (out) {
            toml_value *osec = out;
            if (t->section) {
                osec = toml_table_get(out, t->section);
                if (!osec) {
                    osec = toml_new_table();
                    toml_table_set(out, t->section, osec);
                }
            }
            toml_table_set(osec, t->name, toml_clone(kv->val));
        }
    }
    free(ld.set_by_name);
    if (scratch)
        cfg_free(s, scratch);

    if (ld.nproblems) {
        toml_free(out);
        mt_error_set(err, MT_ERR_CONFIG, "%s", sb_str(&ld.problems));
        sb_free(&ld.problems);
        return -1;
    }
    sb_free(&ld.problems);
    if (norm && s->sections) {
        /* Sections in table order even if their first key came late. */
        toml_value *ordered = toml_new_table();
        for (const char *const *sec = s->sections; *sec; sec++) {
            toml_value *t = toml_table_get(out, *sec);
            if (t)
                toml_table_set(ordered, *sec, toml_clone(t));
        }
        toml_free(out);
        out = ordered;
    }
    if (norm)
        *norm = out;
    return 0;
}

int cfg_load_file(const cfg_schema *s, void *obj, const char *path, unsigned flags, mt_error **err)
{
    cfg_init_defaults(s, obj);
    cfg_book *b = cfg_book_of(s, obj);
    b->path = xstrdup(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    b->stem = dot && dot != base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
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
    return cfg_from_tree(s, root, shown, flags, obj, NULL, err);
}

/* ---- validation helpers ---------------------------------------------------------------- */

void cfg_issue(cfg_issues *is, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    is->v = xrealloc(is->v, (is->n + 2) * sizeof(char *));
    is->v[is->n++] = s;
    is->v[is->n] = NULL;
}

void cfg_bounds_issues(const cfg_schema *s, const void *obj, cfg_issues *is)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        double v;
        char shown[64];
        if (!bounded_value(obj, k, &v, shown) || (v >= k->min && v <= k->max))
            continue;
        cleanup_free char *dotted = cfg_key_dotted(k);
        if (k->bounds_msg) {
            cfg_issue(is, "%s", k->bounds_msg);
        } else if (k->type == CFG_SIZE) {
            char lo[32];
            cfg_issue(is, "%s (%s) must be at least %s", dotted, shown,
                      format_size((uint64_t)k->min, lo, sizeof(lo)));
        } else {
            cfg_issue(is, "%s (%s) must be between %g and %g", dotted, shown, k->min, k->max);
        }
    }
}
