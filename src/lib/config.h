/* config.h - the configuration engine of both programs: a table of keys (a *schema*) drives
 * loading, defaults, bounds, display and the markdown reference. The node's schema is in
 * src/node/node_config*.c, the manager's in src/manager/mgr_config.c; nothing here knows
 * either of them.
 *
 * A configuration is a TOML file. Loading: parse TOML 1.1; check every table and key against
 * the schema (unknown keys and wrong types are errors with file and line, with a "did you
 * mean"); substitute a string that is exactly "${VAR}" or "${VAR:default}" from the environment
 * and convert it to the key's type; expand a leading "~" in path keys and map values; fill
 * defaults. A schema either groups its keys in [sections] (the node) or keeps them all at the
 * top level of the file (the manager: every key's section is NULL, the schema's sections NULL).
 *
 * The configuration is a caller-defined struct: every key names the offset of its field, and
 * the schema the offset of a cfg_book (where each value came from) inside it.
 */
#ifndef MANTA_CONFIG_H
#define MANTA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "toml.h"

typedef enum cfg_type {
    CFG_STRING,  /* char * (NULL = unset) */
    CFG_PATH,    /* char *, leading ~ expanded at load */
    CFG_INT,     /* int64_t */
    CFG_FLOAT,   /* double; accepts integers and numeric strings ("2.0") */
    CFG_BOOL,    /* bool */
    CFG_TRIBOOL, /* int: -1 auto (unset), 0 false, 1 true; accepts "auto" */
    CFG_SIZE,    /* uint64_t bytes; accepts "100M", "4G", integers */
    CFG_ENUM,    /* char *, one of key->choices (case-insensitive, stored canonical) */
    CFG_MAP,     /* struct cfg_map: table of string -> string (paths, ~ expanded) */
    CFG_STRLIST, /* struct cfg_strlist */
    CFG_ANY,     /* toml_value * kept as written (accepted for compatibility) */
} cfg_type;

enum cfg_flags {
    CFG_REQUIRED = 1u << 0, /* must be present in the file */
    CFG_SECRET = 1u << 1,   /* never printed, never logged */
    CFG_COMPAT = 1u << 2,   /* accepted for compatibility with the reference node; no effect */
    CFG_RELOAD = 1u << 3,   /* takes effect without a restart, through its `apply` step */
    CFG_OPTIONAL = 1u << 4, /* may be unset (no default); shown as "(unset)" */
};

typedef struct cfg_map {
    size_t len;
    char **keys;   /* owned */
    char **values; /* owned */
} cfg_map;

typedef struct cfg_strlist {
    size_t len;
    char **items; /* owned */
} cfg_strlist;

typedef struct cfg_key {
    const char *section; /* "network"; NULL for a top-level key */
    const char *name;    /* "manager_port" */
    cfg_type type;
    size_t offset; /* offset of the field in the schema's configuration struct */
    /* Default as text, converted like a file value; NULL = unset. A CFG_PATH default that
     * starts with "$MANTA_HOME/" is under paths_home() ($MANTA_HOME, else ~/.manta); the
     * reference shows it as written. */
    const char *def;
    double min, max;            /* bounds for INT/FLOAT/SIZE when min < max */
    const char *const *choices; /* CFG_ENUM: NULL-terminated */
    unsigned flags;             /* enum cfg_flags */
    const char *alias_of;       /* "resources.max_concurrent_tasks": this name is accepted for it */
    const char *doc;            /* one or two sentences for `config show` and the reference */
    const char *example;        /* CFG_REQUIRED: the value suggested when it is missing, or NULL */
    const char *bounds_msg;     /* validation text when out of bounds, instead of the generic one */
    /* CFG_RELOAD: the program's live-apply step for this key (an index into a table of apply
     * functions that the program keeps; 1..31, 0 = none). The engine only reports which steps
     * a change needs (cfg_diff); it never calls anything. */
    unsigned char apply;
} cfg_key;

/* Where a value came from. */
enum cfg_origin {
    CFG_FROM_DEFAULT = 0,
    CFG_FROM_FILE,
    CFG_FROM_ENV,
    CFG_FROM_OVERRIDE,
    CFG_MISSING_ENV, /* "${VAR}" with VAR unset, loaded with CFG_LOAD_LENIENT_ENV */
};

/* The bookkeeping of a loaded configuration, indexed like the schema's keys: where each value
 * came from, the file line (0 if not from the file), and for values substituted from the
 * environment the reference as written ("${MANTA_NODE_TOKEN}"). All owned.
 * CFG_BOOK_FIELDS lets a configuration struct spell the same members out inside an anonymous
 * union with a cfg_book (so that cfg->origin and cfg->book.origin are the same object). */
#define CFG_BOOK_FIELDS                                                                            \
    unsigned char *origin;                                                                         \
    int *line;                                                                                     \
    char **written_as;                                                                             \
    char *path; /* the file loaded, NULL if none */                                                \
    char *stem  /* the file's name without its extension, NULL if none */
typedef struct cfg_book {
    CFG_BOOK_FIELDS;
} cfg_book;

/* Flags of a schema. */
enum cfg_schema_flags {
    /* Values out of a key's bounds are load errors ("m.toml:2: `node_timeout` is 1; it must be
     * between 2 and 3600."), not left to a validation step. */
    CFG_SCHEMA_BOUNDS_AT_LOAD = 1u << 0,
};

typedef struct cfg_schema {
    const char *program; /* "manta_node": named in messages */
    const cfg_key *keys; /* in file and documentation order */
    size_t nkeys;
    const char *const *sections; /* NULL-terminated, in order; NULL: every key is top-level */
    size_t size;                 /* sizeof the configuration struct */
    size_t book_offset;          /* offsetof its cfg_book */
    unsigned flags;              /* enum cfg_schema_flags */
    const char *unknown_hint;    /* after an unknown key without a suggestion: where the keys
                                    are listed ("(see ... for the keys)") */
    const char *reference_head;  /* markdown before the reference's tables */
} cfg_schema;

/* Flags for loading. */
enum cfg_load_flags {
    CFG_LOAD_VERBATIM = 1u << 0,    /* keep "${VAR}" strings (import): no substitution, no ~ */
    CFG_LOAD_LENIENT_ENV = 1u << 1, /* a missing variable leaves the key at its default and is
                                       recorded as CFG_MISSING_ENV for a validation step */
};

/* The bookkeeping inside obj. Borrowed. */
cfg_book *cfg_book_of(const cfg_schema *s, void *obj);
const cfg_book *cfg_book_const(const cfg_schema *s, const void *obj);

/* Index of a key: "section.name" (also alias names), or "name" for a top-level key; -1 if
 * none. */
int cfg_key_index(const cfg_schema *s, const char *dotted);

/* The key an alias entry stands for (k itself if not an alias). Borrowed. */
const cfg_key *cfg_key_target(const cfg_schema *s, const cfg_key *k);

/* Pointer to the field of key k inside obj (k itself, not its alias target). Borrowed. */
void *cfg_field(void *obj, const cfg_key *k);
const void *cfg_field_const(const void *obj, const cfg_key *k);

/* Initialise obj (s->size bytes, owned by the caller) with every default; release with
 * cfg_free. A default the engine cannot convert is a programming error: it aborts. */
void cfg_init_defaults(const cfg_schema *s, void *obj);
/* Release what obj owns (not obj itself) and zero it. */
void cfg_free(const cfg_schema *s, void *obj);

/* Load a file into obj (initialised here; release with cfg_free even on failure). flags: enum
 * cfg_load_flags. On failure *err lists every problem found, one per line, each with
 * file:line. The file is named as fs_display_path shows it. */
int cfg_load_file(const cfg_schema *s, void *obj, const char *path, unsigned flags, mt_error **err);

/* Check a parsed tree against the schema. With obj non-NULL, values are stored there (obj must
 * have been initialised with cfg_init_defaults). With norm non-NULL, *norm receives an owned
 * copy of the tree with tables and keys in schema order, alias names replaced by the
 * preferred names (values kept as written). fname (borrowed) is used in messages. */
int cfg_from_tree(const cfg_schema *s, const toml_value *root, const char *fname, unsigned flags,
                  void *obj, toml_value **norm, mt_error **err);

/* If str is exactly "${NAME}" or "${NAME:default}", return true and set *name and *def
 * (owned; *def NULL without a default). */
bool cfg_parse_env_ref(const char *str, char **name, char **def);

/* A growing NULL-terminated list of problem lines (validation). v is owned (mem_free_strv). */
typedef struct cfg_issues {
    char **v;
    size_t n;
} cfg_issues;
void cfg_issue(cfg_issues *is, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line per key whose value is out of its bounds (key->bounds_msg, or "section.name (v) must
 * be between a and b"). */
void cfg_bounds_issues(const cfg_schema *s, const void *obj, cfg_issues *is);

/* Text of a value for display, secrets masked ("(set, N characters, hidden)", "(not set)"),
 * unset values "(unset)". Returns owned. */
char *cfg_format_value(const cfg_schema *s, const void *obj, int key_index);

/* Whether key_index has the same value in a and b (secrets compared unmasked). */
bool cfg_value_equal(const cfg_schema *s, const void *a, const void *b, int key_index);

/* Compare two configurations of schema s. Every changed key that carries CFG_RELOAD and an
 * apply step sets bit `apply` of *apply_mask; every other changed key (aliases aside) is
 * listed, "section.name" comma-separated, in the returned string (owned; "" if none). */
char *cfg_diff(const cfg_schema *s, const void *old, const void *fresh, uint32_t *apply_mask);

/* The configuration as TOML: [sections] if any, each key preceded by its doc as a comment;
 * a set secret is written "(set, not shown)", an unset value as a comment. Returns owned. */
char *cfg_show_toml(const cfg_schema *s, const void *obj);

/* Markdown reference of every key: s->reference_head, then one table per section (or one
 * table). Returns owned. */
char *cfg_reference_markdown(const cfg_schema *s);

#endif
