/* config_show.c - the configuration engine's output: values for display, comparison of two
 * configurations (what a reload must apply), the configuration as TOML and the markdown
 * reference. Loading is config.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_impl.h"
#include "mem.h"
#include "strbuf.h"
#include "units.h"

/* ---- display -------------------------------------------------------------------------- */

static void quote_into(strbuf *sb, const char *s)
{
    toml_value *v = toml_new_string(s);
    cleanup_free char *q = toml_format_value(v);
    toml_free(v);
    sb_puts(sb, q);
}

char *cfg_format_value(const cfg_schema *s, const void *obj, int idx)
{
    const cfg_key *k = &s->keys[idx];
    const void *f = cfg_field_const(obj, cfg_key_target(s, k));
    strbuf sb = STRBUF_INIT;
    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_ENUM: {
        const char *v = *(char *const *)f;
        if (!v) {
            sb_puts(&sb, "(unset)");
        } else if (k->flags & CFG_SECRET) {
            if (!*v || v[0] == '<')
                sb_puts(&sb, "(not set)");
            else
                sb_printf(&sb, "(set, %zu characters, hidden)", strlen(v));
        } else {
            quote_into(&sb, v);
        }
        break;
    }
    case CFG_INT:
        sb_printf(&sb, "%lld", (long long)*(const int64_t *)f);
        break;
    case CFG_FLOAT: {
        toml_value *v = toml_new_float(*(const double *)f);
        cleanup_free char *t = toml_format_value(v);
        toml_free(v);
        sb_puts(&sb, t);
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
            cleanup_free char *t = toml_format_value(v);
            sb_puts(&sb, t);
        }
        break;
    }
    }
    return sb_steal(&sb);
}

bool cfg_value_equal(const cfg_schema *s, const void *a, const void *b, int idx)
{
    const cfg_key *k = cfg_key_target(s, &s->keys[idx]);
    if ((k->flags & CFG_SECRET) &&
        (k->type == CFG_STRING || k->type == CFG_PATH || k->type == CFG_ENUM)) {
        /* the display is masked: compare the values themselves */
        const char *x = *(char *const *)cfg_field_const(a, k);
        const char *y = *(char *const *)cfg_field_const(b, k);
        if ((x == NULL) != (y == NULL) || (x && y && strcmp(x, y) != 0))
            return false;
    }
    cleanup_free char *ta = cfg_format_value(s, a, idx);
    cleanup_free char *tb = cfg_format_value(s, b, idx);
    return strcmp(ta, tb) == 0;
}

char *cfg_diff(const cfg_schema *s, const void *old, const void *fresh, uint32_t *apply_mask)
{
    strbuf restart = STRBUF_INIT;
    *apply_mask = 0;
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        if (k->alias_of || cfg_value_equal(s, old, fresh, (int)i))
            continue;
        if ((k->flags & CFG_RELOAD) && k->apply > 0 && k->apply < 32) {
            *apply_mask |= 1u << k->apply;
            continue;
        }
        cleanup_free char *dotted = cfg_key_dotted(k);
        sb_printf(&restart, "%s%s", restart.len ? ", " : "", dotted);
    }
    return sb_steal(&restart);
}

char *cfg_show_toml(const cfg_schema *s, const void *obj)
{
    strbuf sb = STRBUF_INIT;
    const char *section = NULL;
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        if (k->alias_of)
            continue;
        if (k->section && !cfg_same_section(k->section, section)) {
            sb_printf(&sb, "%s[%s]\n", sb.len ? "\n" : "", k->section);
            section = k->section;
        }
        sb_printf(&sb, "# %s\n", k->doc);
        bool is_text = k->type == CFG_STRING || k->type == CFG_PATH || k->type == CFG_ENUM;
        const char *text = is_text ? *(char *const *)cfg_field_const(obj, k) : NULL;
        if (is_text && !text) {
            sb_printf(&sb, "# %s is unset\n", k->name);
        } else if (is_text && (k->flags & CFG_SECRET) && *text) {
            sb_printf(&sb, "%s = \"(set, not shown)\"\n", k->name);
        } else if (is_text && (k->flags & CFG_SECRET)) {
            sb_printf(&sb, "%s = \"\"\n", k->name);
        } else if (k->type == CFG_ANY && !*(toml_value *const *)cfg_field_const(obj, k)) {
            sb_printf(&sb, "# %s is unset\n", k->name);
        } else {
            cleanup_free char *v = cfg_format_value(s, obj, (int)i);
            sb_printf(&sb, "%s = %s\n", k->name, v);
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

/* The reference's rows of the keys in `section` (NULL: the top-level keys). */
static void reference_rows(strbuf *sb, const cfg_schema *s, const void *defs, const char *section)
{
    sb_puts(sb, "| key | type | default | notes |\n|---|---|---|---|\n");
    for (size_t i = 0; i < s->nkeys; i++) {
        const cfg_key *k = &s->keys[i];
        if (!cfg_same_section(k->section, section))
            continue;
        strbuf def = STRBUF_INIT;
        if (k->alias_of) {
            sb_printf(&def, "alias of `%s`", k->alias_of);
        } else if (k->flags & CFG_REQUIRED) {
            sb_puts(&def, "**required**");
        } else if (k->flags & CFG_SECRET || (k->flags & CFG_OPTIONAL && !k->def)) {
            sb_puts(&def, "unset");
        } else if (k->type == CFG_PATH && k->def) {
            /* Paths are shown as written in the table, before ~ or $MANTA_HOME expansion. */
            sb_printf(&def, "`\"%s\"`", k->def);
        } else {
            cleanup_free char *v = cfg_format_value(s, defs, (int)i);
            sb_printf(&def, "`%s`", v);
        }
        strbuf type = STRBUF_INIT;
        sb_puts(&type, type_doc_name(k));
        if (k->type == CFG_ENUM) {
            cleanup_free char *ch = cfg_choices_text(k);
            sb_printf(&type, ": %s", ch);
        }
        if (k->min < k->max && k->type != CFG_SIZE) {
            char lo[32], hi[32];
            sb_printf(&type, ", %s..%s", cfg_num_text(k->min, lo), cfg_num_text(k->max, hi));
        }
        strbuf notes = STRBUF_INIT;
        sb_puts(&notes, k->doc);
        if (k->flags & CFG_COMPAT)
            sb_puts(&notes, " *compat*");
        if (k->flags & CFG_RELOAD)
            sb_puts(&notes, " *reload*");
        if (k->flags & CFG_SECRET)
            sb_puts(&notes, " *secret*");
        sb_printf(sb, "| `%s` | %s | %s | %s |\n", k->name, sb_str(&type), sb_str(&def),
                  sb_str(&notes));
        sb_free(&def);
        sb_free(&type);
        sb_free(&notes);
    }
    sb_putc(sb, '\n');
}

char *cfg_reference_markdown(const cfg_schema *s)
{
    strbuf sb = STRBUF_INIT;
    sb_puts(&sb, s->reference_head);
    cleanup_free void *defs = xcalloc(1, s->size);
    cfg_init_defaults(s, defs);
    if (!s->sections)
        reference_rows(&sb, s, defs, NULL);
    else
        for (const char *const *sec = s->sections; *sec; sec++) {
            sb_printf(&sb, "## `[%s]`\n\n", *sec);
            reference_rows(&sb, s, defs, *sec);
        }
    cfg_free(s, defs);
    return sb_steal(&sb);
}
