/* node_config.h - the node's configuration: struct node_config, its key table
 * (node_config_keys.c) and what only the node does with it (node_config.c: derived defaults,
 * the effective alias, validation, configuration names). Loading, display and the reference
 * are the generic engine's (src/lib/config.h), driven by node_config_schema().
 *
 * A configuration is a TOML file ~/.manta/nodes/<name>.toml (the folder moves with
 * $MANTA_HOME), its keys grouped in [sections]. Validation reports the problems a loaded
 * configuration can still have (token, ports, dataset paths, bounds, TLS files) as a list of
 * lines.
 */
#ifndef MANTA_NODE_CONFIG_H
#define MANTA_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "toml.h"

/* The node's live-apply steps (cfg_key.apply of its CFG_RELOAD keys), applied on SIGHUP by
 * reload.c in this order. */
enum node_apply {
    NODE_APPLY_NONE = 0,
    NODE_APPLY_LOG_LEVEL, /* logging.level: the logger's level */
    NODE_APPLY_DATASETS,  /* datasets.mappings: rescan, hand to the light service */
    NODE_APPLY_COUNT,
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

    /* Bookkeeping (config.h, cfg_book), indexed like config_keys(): cfg->origin[i] and
     * cfg->book.origin[i] are the same. */
    union {
        cfg_book book;
        struct {
            CFG_BOOK_FIELDS;
        };
    };
} node_config;

/* The node's schema (static). Borrowed. */
const cfg_schema *node_config_schema(void);

/* The table, in file/documentation order. Borrowed. */
const cfg_key *config_keys(size_t *count);
/* Index of "section.name" (also accepts alias names), or -1. */
int config_key_index(const char *dotted);
/* The sections in order (NULL-terminated). Borrowed. */
const char *const *config_sections(void);

/* Initialise cfg with every default. cfg is owned by the caller; release with config_free. */
void config_init_defaults(node_config *cfg);
void config_free(node_config *cfg); /* releases what cfg owns; cfg itself is the caller's */

/* Load a configuration file into cfg (initialised here; release with config_free even on
 * failure). flags: enum cfg_load_flags. On failure *err lists every problem found, one per
 * line, each with file:line. */
int config_load_file(node_config *cfg, const char *path, unsigned flags, mt_error **err);

/* Check a parsed tree against the table (cfg_from_tree with the node's schema). With cfg
 * non-NULL (initialised with config_init_defaults), values are stored there; with norm
 * non-NULL, *norm receives an owned, normalised copy of the tree. `fname` is used in
 * messages. */
int config_from_tree(const toml_value *root, const char *fname, unsigned flags, node_config *cfg,
                     toml_value **norm, mt_error **err);

/* Derived defaults after loading: the alias falls back to metadata.name when `alias_override`
 * is NULL and the file has none; logging.filename falls back to
 * ~/.manta/logs/nodes/<safe alias>.log; relative dataset paths are taken from
 * datasets.base_path. */
void config_finalize(node_config *cfg, const char *alias_override);

/* The effective alias: identity.alias, else metadata.name when the file sets it, else the
 * configuration's name (the reference falls back to metadata.name's default "default", so two
 * unnamed configurations would share a node ID). Borrowed. */
const char *config_effective_alias(const node_config *cfg);

/* Validation: returns the number of issues and sets *issues to an owned NULL-terminated array
 * of lines (free with mem_free_strv / cleanup_strv). */
size_t config_validate(const node_config *cfg, char ***issues);

/* Text of a value for display (`config show`), secrets masked. Returns owned. */
char *config_format_value(const node_config *cfg, int key_index);

/* Pointer to the field of key `k` inside cfg. Borrowed. */
void *config_field(node_config *cfg, const cfg_key *k);
const void *config_field_const(const node_config *cfg, const cfg_key *k);

/* What a reload from `old` to `fresh` needs: *apply_mask gets bit NODE_APPLY_x for each live
 * step whose keys changed; the returned list (owned, "" if none) names the changed keys that
 * need a restart, "section.name" comma-separated. */
char *config_reload_plan(const node_config *old, const node_config *fresh, uint32_t *apply_mask);

/* "production-gpu" -> "production-gpu"; other characters than [A-Za-z0-9_-] become '_'.
 * Returns owned. */
char *config_safe_name(const char *s);

/* Markdown reference of every key (docs/configuration.md). Returns owned. */
char *config_reference_markdown(void);

/* A configuration name is [A-Za-z0-9][A-Za-z0-9_.-]* and at most 100 characters. */
bool config_name_valid(const char *name);

#endif
