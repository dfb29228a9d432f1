/* node_config.c - what only the node does with its configuration: the node-facing names of
 * the engine's calls (config.h with node_config_schema()), derived defaults, the effective
 * alias, validation (token, ports, dataset paths, bounds, TLS files), configuration names and
 * the reload plan. */
#include "node_config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "jwt.h"
#include "mem.h"
#include "paths.h"

/* ---- the engine, with the node's schema ------------------------------------------------- */

void *config_field(node_config *cfg, const cfg_key *k)
{
    return cfg_field(cfg, k);
}

const void *config_field_const(const node_config *cfg, const cfg_key *k)
{
    return cfg_field_const(cfg, k);
}

void config_init_defaults(node_config *cfg)
{
    cfg_init_defaults(node_config_schema(), cfg);
}

void config_free(node_config *cfg)
{
    cfg_free(node_config_schema(), cfg);
}

int config_load_file(node_config *cfg, const char *path, unsigned flags, mt_error **err)
{
    return cfg_load_file(node_config_schema(), cfg, path, flags, err);
}

int config_from_tree(const toml_value *root, const char *fname, unsigned flags, node_config *cfg,
                     toml_value **norm, mt_error **err)
{
    return cfg_from_tree(node_config_schema(), root, fname, flags, cfg, norm, err);
}

char *config_format_value(const node_config *cfg, int idx)
{
    return cfg_format_value(node_config_schema(), cfg, idx);
}

char *config_reference_markdown(void)
{
    return cfg_reference_markdown(node_config_schema());
}

char *config_reload_plan(const node_config *old, const node_config *fresh, uint32_t *apply_mask)
{
    return cfg_diff(node_config_schema(), old, fresh, apply_mask);
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

static void check_file(cfg_issues *is, const char *key, const char *path)
{
    if (!path)
        return;
    if (!fs_exists(path))
        cfg_issue(is, "%s: file does not exist: %s", key, path);
    else if (access(path, R_OK) != 0)
        cfg_issue(is, "%s: file is not readable: %s", key, path);
}

size_t config_validate(const node_config *cfg, char ***out)
{
    cfg_issues is = {0};
    size_t n;
    const cfg_key *keys = config_keys(&n);
    bool token_env_missing = false;
    for (size_t i = 0; i < n; i++) {
        if (cfg->origin[i] != CFG_MISSING_ENV)
            continue;
        cleanup_free char *name = NULL;
        cleanup_free char *def = NULL;
        cfg_parse_env_ref(cfg->written_as[i], &name, &def);
        cfg_issue(&is,
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
        cfg_issue(&is, "identity.secured_token is required (cannot be empty or placeholder)");
        cfg_issue(&is, "  → Set your JWT token in the configuration file");
        cfg_issue(&is, "  → Or run: manta_node config init <path/to/config.yaml>");
    } else {
        jwt_info ji;
        mt_error *e = NULL;
        if (jwt_inspect(tok, &ji, &e) < 0) {
            cfg_issue(&is, "identity.secured_token: %s", mt_error_msg(e));
            mt_error_free(&e);
        } else if (ji.has_exp && ji.exp < (int64_t)time(NULL)) {
            char when[CLOCK_TEXT_MAX];
            clock_utc_text(ji.exp, when);
            cfg_issue(&is, "identity.secured_token expired on %s; get a new token from the manager",
                      when);
        }
    }

    cfg_bounds_issues(node_config_schema(), cfg, &is);
    if (cfg->network.light_service_port && cfg->network.light_service_port < 1024)
        cfg_issue(&is,
                  "network.light_service_port (%lld) must be between 1024 and 65535 (or 0 for "
                  "a free port)",
                  (long long)cfg->network.light_service_port);
    if (!cfg->network.manager_host || !*cfg->network.manager_host)
        cfg_issue(&is, "network.manager_host is empty; give the manager's host name or address");
    if (cfg->containers.docker_network && strcmp(cfg->containers.docker_network, "host") != 0)
        cfg_issue(&is,
                  "containers.docker_network = \"%s\" is not supported: tasks use host "
                  "networking to reach the node",
                  cfg->containers.docker_network);

    const cfg_map *m = &cfg->datasets.mappings;
    for (size_t i = 0; i < m->len; i++) {
        if (!fs_exists(m->values[i]))
            cfg_issue(&is, "Dataset path does not exist: %s -> %s", m->keys[i], m->values[i]);
        else if (access(m->values[i], R_OK) != 0)
            cfg_issue(&is, "Dataset path is not readable: %s -> %s", m->keys[i], m->values[i]);
    }

    bool manager_tls = cfg->security.use_tls || cfg->network.manager_port == 443;
    if (manager_tls) {
        check_file(&is, "security.ca_file", cfg->security.ca_file);
        check_file(&is, "security.cert_file", cfg->security.cert_file);
        check_file(&is, "security.key_file", cfg->security.key_file);
    }
    if (!cfg->security.cert_file != !cfg->security.key_file)
        cfg_issue(&is, "security.cert_file and security.key_file must be given together");
    bool mqtt_tls = cfg->mqtt.use_tls < 0 ? cfg->security.use_tls : cfg->mqtt.use_tls;
    if (mqtt_tls) {
        cleanup_free char *ca = cfg->mqtt.ca_file ? xstrdup(cfg->mqtt.ca_file)
                                                  : fs_join(cfg->security.cert_folder, "ca.crt");
        check_file(&is, cfg->mqtt.ca_file ? "mqtt.ca_file" : "security.cert_folder", ca);
        check_file(&is, "mqtt.cert_file", cfg->mqtt.cert_file);
        check_file(&is, "mqtt.key_file", cfg->mqtt.key_file);
    }
    if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file)
        cfg_issue(&is, "mqtt.cert_file and mqtt.key_file must be given together");

    if (!is.v) {
        is.v = xcalloc(1, sizeof(char *));
    }
    *out = is.v;
    return is.n;
}
