/* config.h - the node configuration: one table of keys drives loading, defaults, validation,
 * `config show` and docs/configuration.md.
 *
 * A configuration is a TOML file ~/.manta/nodes/<name>.toml (the folder moves with
 * $MANTA_HOME). Loading: parse TOML 1.1; check every table and key against the table (unknown
 * keys and wrong types are errors with file and line, with a "did you mean"); substitute a
 * string that is exactly "${VAR}" or "${VAR:default}" from the environment and convert it to
 * the key's type; expand a leading "~" in path keys and dataset paths; fill defaults.
 * Validation then reports the problems a loaded configuration can still have (token, ports,
 * dataset paths, bounds, TLS files) as a list of lines.
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
    CFG_MAP,     /* struct cfg_map: table of string -> string (dataset mappings) */
    CFG_STRLIST, /* struct cfg_strlist */
    CFG_ANY,     /* toml_value * kept as written (accepted for compatibility) */
} cfg_type;

enum cfg_flags {
    CFG_REQUIRED = 1u << 0, /* must be present in the file */
    CFG_SECRET = 1u << 1,   /* never printed, never logged */
    CFG_COMPAT = 1u << 2,   /* accepted for compatibility with the reference node; no effect */
    CFG_RELOAD = 1u << 3,   /* takes effect on SIGHUP without a restart */
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
    const char *section; /* "network" */
    const char *name;    /* "manager_port" */
    cfg_type type;
    size_t offset;              /* offset of the field in struct node_config */
    const char *def;            /* default as text, converted like a file value; NULL = unset */
    double min, max;            /* bounds for INT/FLOAT/SIZE when min < max */
    const char *const *choices; /* CFG_ENUM: NULL-terminated */
    unsigned flags;             /* enum cfg_flags */
    const char *alias_of;       /* "resources.max_concurrent_tasks": this name is accepted for it */
    const char *doc;            /* one or two sentences for `config show` docs and the reference */
} cfg_key;

/* Where a value came from. */
enum cfg_origin {
    CFG_FROM_DEFAULT = 0,
    CFG_FROM_FILE,
    CFG_FROM_ENV,
    CFG_FROM_OVERRIDE,
    CFG_MISSING_ENV, /* "${VAR}" with VAR unset, loaded with CFG_LOAD_LENIENT_ENV */
};

typedef struct node_config {
    struct {
        char *secured_token;
        char *alias;
        bool random_id;
    } identity;
    struct {
        char *name;
        char *created_at;
        char *version;
        char *description;
    } metadata;
    struct {
        char *manager_host;
        int64_t manager_port;
        char *light_service_host;
        int64_t light_service_port; /* 0 = pick a free port */
        int64_t connect_timeout;    /* seconds */
        int64_t rpc_timeout;        /* seconds: deadline of every call to the manager */
        int64_t idle_close;         /* seconds without use before gRPC is let go */
    } network;
    struct {
        int64_t ping_interval;
        int64_t keepalive;
        double reconnect_delay;
        double reconnect_max_delay;
        int64_t reconnect_attempts;
        char *broker_host;   /* NULL = use the broker the manager returns */
        int64_t broker_port; /* 0 = use the manager's */
        cfg_strlist topics;
        char *username;
        char *password;
        int use_tls; /* tribool: -1 = follow security.use_tls */
        char *ca_file;
        char *cert_file;
        char *key_file;
    } mqtt;
    struct {
        char *runtime;
        int gpu_enabled; /* tribool: -1 = auto-detect */
        uint64_t default_memory_limit;
        double default_cpu_limit;
        int64_t pids_limit;
        char *docker_network;
        char *docker_socket;
        int64_t pull_timeout;
        char *registry_username;
        char *registry_password;
        char *image_store;
        char *runc_path;
        toml_value *log_config;
    } containers;
    struct {
        char *base_path;
        bool mount_readonly;
        cfg_map mappings;
        bool cache_metadata;
    } datasets;
    struct {
        int64_t task_timeout;
        int64_t stop_timeout;
        int64_t queue_limit;
        uint64_t max_log_size;
        uint64_t outbox_max_size; /* bytes of finished tasks' output kept for the manager */
        int64_t outbox_max_age;   /* seconds */
        char *state_dir;
        int64_t retry_attempts;
        char *temp_folder;
        bool cleanup_on_failure;
        bool stream_logs;
    } tasks;
    struct {
        int64_t max_concurrent_tasks;
        int64_t reserve_cpu_percent;
        int64_t reserve_memory_mb;
        int64_t max_disk_usage_percent;
        int64_t monitor_interval;
    } resources;
    struct {
        char *level;
        char *filename;
        bool log_to_file;
        bool log_to_console;
        bool debug_mode;
        uint64_t max_file_size;
        int64_t backup_count;
    } logging;
    struct {
        bool use_tls;
        char *cert_folder;
        bool verify_ssl;
        int64_t token_refresh_interval;
        char *ca_file;
        char *cert_file;
        char *key_file;
        char *server_name;
    } security;

    /* Bookkeeping, indexed like config_keys(): where each value came from, the file line
     * (0 if not from the file), and for values substituted from the environment the
     * reference as written ("${MANTA_NODE_TOKEN}"). */
    unsigned char *origin;
    int *line;
    char **written_as;
    char *path; /* the file loaded, NULL if none */
    char *stem; /* the configuration's name (file name without .toml), NULL if none */
} node_config;

/* The table, in file/documentation order. */
const cfg_key *config_keys(size_t *count);
/* Index of "section.name" (also accepts alias names), or -1. */
int config_key_index(const char *dotted);
/* The sections in order (NULL-terminated). */
const char *const *config_sections(void);

/* Flags for config_from_tree. */
enum cfg_load_flags {
    CFG_LOAD_VERBATIM = 1u << 0,    /* keep "${VAR}" strings (import): no substitution, no ~ */
    CFG_LOAD_LENIENT_ENV = 1u << 1, /* a missing variable leaves the key at its default and is
                                       reported by config_validate (show/list/validate) */
};

/* Initialise cfg with every default. cfg is owned by the caller; release with config_free. */
void config_init_defaults(node_config *cfg);
void config_free(node_config *cfg); /* releases what cfg owns; cfg itself is the caller's */

/* Load a configuration file into cfg (initialised here; release with config_free even on
 * failure). flags: enum cfg_load_flags. On failure *err lists every problem found, one per
 * line, each with file:line. */
int config_load_file(node_config *cfg, const char *path, unsigned flags, mt_error **err);

/* Check a parsed tree against the table. With cfg non-NULL, values are stored there (cfg must
 * have been initialised with config_init_defaults). With norm non-NULL, *norm receives an owned
 * copy of the tree with tables and keys in table order, alias names replaced by the preferred
 * names and values converted to their types (verbatim "${...}" strings kept in
 * CFG_LOAD_VERBATIM mode). `fname` is used in messages. */
int config_from_tree(const toml_value *root, const char *fname, unsigned flags, node_config *cfg,
                     toml_value **norm, mt_error **err);

/* Derived defaults after loading: the alias falls back to metadata.name when `alias_override`
 * is NULL and the file has none; logging.filename falls back to
 * ~/.manta/logs/nodes/<safe alias>.log. */
void config_finalize(node_config *cfg, const char *alias_override);

/* The effective alias: identity.alias, else metadata.name when the file sets it, else the
 * configuration's name (the reference falls back to metadata.name's default "default", so two
 * unnamed configurations would share a node ID). Borrowed. */
const char *config_effective_alias(const node_config *cfg);

/* Validation: returns the number of issues and sets *issues to an owned NULL-terminated array
 * of lines (free with mem_free_strv-style cleanup). */
size_t config_validate(const node_config *cfg, char ***issues);

/* Text of a value for display (`config show`), secrets masked. Returns owned. */
char *config_format_value(const node_config *cfg, int key_index);

/* Pointer to the field of key `k` inside cfg. */
void *config_field(node_config *cfg, const cfg_key *k);
const void *config_field_const(const node_config *cfg, const cfg_key *k);

/* "production-gpu" -> "production-gpu"; other characters than [A-Za-z0-9_-] become '_'.
 * Returns owned. */
char *config_safe_name(const char *s);

/* Markdown reference of every key (docs/configuration.md). Returns owned. */
char *config_reference_markdown(void);

/* A configuration name is [A-Za-z0-9][A-Za-z0-9_.-]* and at most 100 characters. */
bool config_name_valid(const char *name);

#endif
