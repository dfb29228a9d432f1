/* yaml.c - YAML to TOML value tree through libyaml; see yaml.h. */
#include "yaml_import.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "mem.h"

#define YAML_MAX_DEPTH 64

/* Returns NULL for YAML null (the caller drops it). *bad set on error. */
static toml_value *scalar_value(yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    toml_value *v;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        v = toml_new_stringn(s, len);
    } else if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
               strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0) {
        return NULL;
    } else if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
        v = toml_new_bool(true);
    } else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        v = toml_new_bool(false);
    } else {
        char *end;
        errno = 0;
        long long i = strtoll(s, &end, 0);
        bool is_int = *s && *end == '\0' && errno == 0 &&
                      (isdigit((unsigned char)s[0]) ||
                       ((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1])));
        /* "0755"-style octal is YAML 1.1; 1.2 wants 0o755. strtoll(…, 0) reads 0x.. and 0.. */
        if (is_int && s[0] == '0' && len > 1 && isdigit((unsigned char)s[1]))
            i = strtoll(s, &end, 10);
        if (is_int) {
            v = toml_new_integer(i);
        } else {
            errno = 0;
            double d = strtod(s, &end);
            bool is_float =
                *end == '\0' && errno == 0 &&
                (isdigit((unsigned char)s[0]) || s[0] == '.' ||
                 ((s[0] == '-' || s[0] == '+') && (isdigit((unsigned char)s[1]) || s[1] == '.')));
            if (is_float && isfinite(d))
                v = toml_new_float(d);
            else if (strcmp(s, ".inf") == 0 || strcmp(s, "+.inf") == 0)
                v = toml_new_float(INFINITY);
            else if (strcmp(s, "-.inf") == 0)
                v = toml_new_float(-INFINITY);
            else if (strcmp(s, ".nan") == 0)
                v = toml_new_float(NAN);
            else
                v = toml_new_stringn(s, len);
        }
    }
    v->line = (int)n->start_mark.line + 1;
    v->col = (int)n->start_mark.column + 1;
    return v;
}

static toml_value *convert(yaml_document_t *doc, yaml_node_t *n, const char *name, int depth,
                           mt_error **err, bool *is_null)
{
    *is_null = false;
    if (depth > YAML_MAX_DEPTH) {
        mt_error_set(err, MT_ERR_PARSE, "%s:%zu:%zu: nesting deeper than %d levels", name,
                     n->start_mark.line + 1, n->start_mark.column + 1, YAML_MAX_DEPTH);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        toml_value *v = scalar_value(n);
        *is_null = v == NULL;
        return v;
    }
    case YAML_SEQUENCE_NODE: {
        toml_value *arr = toml_new_array();
        arr->line = (int)n->start_mark.line + 1;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            bool nul;
            toml_value *item =
                convert(doc, yaml_document_get_node(doc, *it), name, depth + 1, err, &nul);
            if (!item && !nul) {
                toml_free(arr);
                return NULL;
            }
            if (item)
                toml_array_push(arr, item);
        }
        return arr;
    }
    case YAML_MAPPING_NODE: {
        toml_value *tab = toml_new_table();
        tab->line = (int)n->start_mark.line + 1;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            if (!kn || kn->type != YAML_SCALAR_NODE) {
                mt_error_set(err, MT_ERR_PARSE, "%s:%zu:%zu: mapping keys must be plain text", name,
                             n->start_mark.line + 1, n->start_mark.column + 1);
                toml_free(tab);
                return NULL;
            }
            const char *key = (const char *)kn->data.scalar.value;
            if (toml_table_get(tab, key)) {
                mt_error_set(err, MT_ERR_PARSE, "%s:%zu:%zu: duplicate key '%s'", name,
                             kn->start_mark.line + 1, kn->start_mark.column + 1, key);
                toml_free(tab);
                return NULL;
            }
            bool nul;
            toml_value *val =
                convert(doc, yaml_document_get_node(doc, p->value), name, depth + 1, err, &nul);
            if (!val && !nul) {
                toml_free(tab);
                return NULL;
            }
            if (!val)
                continue;
            toml_table_set(tab, key, val);
            toml_kv *kv = toml_table_get_kv(tab, key);
            kv->line = (int)kn->start_mark.line + 1;
            kv->col = (int)kn->start_mark.column + 1;
        }
        return tab;
    }
    default:
        break;
    }
    *is_null = true;
    return NULL;
}

toml_value *yaml_parse(const char *data, size_t len, const char *name, mt_error **err)
{
    if (!name)
        name = "<input>";
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        mt_error_set(err, MT_ERR_PARSE, "%s: cannot initialise the YAML parser", name);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        mt_error_set(err, MT_ERR_PARSE, "%s:%zu:%zu: %s", name, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    toml_value *out = NULL;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        mt_error_set(err, MT_ERR_PARSE,
                     "%s: Configuration file must contain a dictionary/object at the root level",
                     name);
    } else {
        bool nul;
        out = convert(&doc, root, name, 0, err, &nul);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}
