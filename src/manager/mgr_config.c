/* mgr_config.c - the manager's key table and its loader. */
#include "mgr_config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "mem.h"
#include "paths.h"
#include "strbuf.h"
#include "toml.h"

typedef enum { K_STR, K_PATH, K_INT, K_BOOL } ktype;

typedef struct mkey {
    const char *name;
    ktype type;
    size_t offset;
    const char *def; /* "~/.manta/manager/x" style paths are under $MANTA_HOME */
    int64_t min, max;
    const char *doc;
} mkey;

#define F(f) offsetof(mgr_config, f)
static const mkey keys[] = {
    {"listen", K_STR, F(listen), "127.0.0.1:50051", 0, 0,
     "Address of the node service (gRPC) that nodes connect to: `host:port`. Port 0 picks a "
     "free port."},
    {"user_listen", K_STR, F(user_listen), "", 0, 0,
     "Address of the user services (core.user_services, what the Manta SDK calls): "
     "`host:port`. Empty: served with the node service, on `listen`. Give users their own "
     "address when nodes use mutual TLS (`tls_client_ca`): users never present a client "
     "certificate."},
    {"user_token_ttl", K_INT, F(user_token_ttl), "604800", 60, 31622400,
     "Seconds a user token from SignIn stays valid (default 7 days)."},
    {"broker_host", K_STR, F(broker_host), "127.0.0.1", 0, 0,
     "Host of the MQTT broker the manager uses to send commands to nodes."},
    {"broker_port", K_INT, F(broker_port), "1883", 1, 65535, "Port of that broker."},
    {"broker_username", K_STR, F(broker_username), "", 0, 0,
     "User name for the broker (empty: anonymous)."},
    {"broker_password", K_STR, F(broker_password), "", 0, 0,
     "Password for the broker; never shown by `config show`. `${VAR}` is not expanded: keep the "
     "file private (0600)."},
    {"broker_tls", K_BOOL, F(broker_tls), "false", 0, 0, "Connect to the broker with TLS."},
    {"broker_ca_file", K_PATH, F(broker_ca_file), "", 0, 0,
     "CA certificate(s) for the broker's TLS certificate (empty: the system's)."},
    {"advertise_host", K_STR, F(advertise_host), "", 0, 0,
     "Broker host given to nodes at registration when they reach the broker by another name "
     "(empty: `broker_host`)."},
    {"advertise_port", K_INT, F(advertise_port), "0", 0, 65535,
     "Broker port given to nodes (0: `broker_port`)."},
    {"store", K_PATH, F(store), "@/store.db", 0, 0,
     "SQLite file holding swarms, nodes, globals, results, task logs and errors."},
    {"secret_file", K_PATH, F(secret_file), "@/secret", 0, 0,
     "HS256 secret of node tokens (32 random bytes, made on first use, mode 0600). Deleting it "
     "invalidates every token."},
    {"admin_socket", K_PATH, F(admin_socket), "@/admin.sock", 0, 0,
     "Unix socket of the admin interface used by `manta_manager nodes|swarms|results|logs`."},
    {"node_timeout", K_INT, F(node_timeout), "30", 2, 3600,
     "Seconds without a heartbeat after which a node counts as lost (a node that dies is "
     "usually noticed sooner through its last will: lost if not heard from within "
     "min(node_timeout, 10) s of it)."},
    {"call_stall_timeout", K_INT, F(call_stall_timeout), "120", 1, 86400,
     "Seconds a node's call may wait for its next message (or for the node to take what the "
     "manager sends) before the manager ends it with DEADLINE_EXCEEDED, so that a stalled call "
     "does not hold one of the node service's threads. One message must arrive whole within "
     "it: a 300 MiB value takes about 25 s at 100 Mbit/s; raise it for slower links or larger "
     "values."},
    {"require_token", K_BOOL, F(require_token), "true", 0, 0,
     "Refuse nodes without a valid token minted by `manta_manager token create`."},
    {"tls_cert", K_PATH, F(tls_cert), "", 0, 0,
     "PEM certificate (chain) of the node service: with `tls_key`, nodes connect with TLS "
     "(their `security.use_tls`). Empty: plaintext, for loopback and closed networks."},
    {"tls_key", K_PATH, F(tls_key), "", 0, 0, "PEM private key of `tls_cert`."},
    {"tls_client_ca", K_PATH, F(tls_client_ca), "", 0, 0,
     "PEM CA certificate(s): when set, nodes must present a certificate it signed (mutual "
     "TLS; the node's `security.cert_file`/`key_file`)."},
    {"log_file", K_PATH, F(log_file), "", 0, 0, "Log file (empty: standard error only)."},
    {"log_level", K_STR, F(log_level), "info", 0, 0, "debug, info, warning or error."},
};

static char *expand_path(const char *v)
{
    if (!*v)
        return xstrdup("");
    if (v[0] == '@') {
        cleanup_free char *home = paths_home();
        return xasprintf("%s/manager%s", home, v + 1);
    }
    return fs_expand_tilde(v);
}

static int set_value(mgr_config *cfg, const mkey *k, const toml_value *v, const char *text,
                     const char *file, mt_error **err)
{
    void *field = (char *)cfg + k->offset;
    int line = v ? v->line : 0;
    if (!text)
        text = "";
    switch (k->type) {
    case K_STR:
    case K_PATH: {
        const char *s = text;
        if (v) {
            if (v->type != TOML_STRING)
                return mt_error_set(err, MT_ERR_CONFIG, "%s:%d: `%s` must be a string.", file, line,
                                    k->name);
            s = v->u.s.ptr;
        }
        free(*(char **)field);
        *(char **)field = k->type == K_PATH ? expand_path(s) : xstrdup(s);
        return 0;
    }
    case K_INT: {
        int64_t i = v ? 0 : strtoll(text, NULL, 10);
        if (v) {
            if (v->type != TOML_INTEGER)
                return mt_error_set(err, MT_ERR_CONFIG, "%s:%d: `%s` must be an integer.", file,
                                    line, k->name);
            i = v->u.i;
        }
        if (k->min < k->max && (i < k->min || i > k->max))
            return mt_error_set(err, MT_ERR_CONFIG,
                                "%s:%d: `%s` is %lld; it must be between %lld and %lld.", file,
                                line, k->name, (long long)i, (long long)k->min, (long long)k->max);
        *(int64_t *)field = i;
        return 0;
    }
    case K_BOOL:
        if (v && v->type != TOML_BOOL)
            return mt_error_set(err, MT_ERR_CONFIG, "%s:%d: `%s` must be true or false.", file,
                                line, k->name);
        *(bool *)field = v ? v->u.b : !strcmp(text, "true");
        return 0;
    }
    return 0;
}

int mgr_config_load(mgr_config *cfg, const char *path, mt_error **err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        set_value(cfg, &keys[i], NULL, keys[i].def, "", NULL);
    if (!path)
        return 0;
    toml_value *root = toml_parse_file(path, TOML_1_1, err);
    if (!root) {
        mgr_config_clear(cfg);
        return mt_error_wrap(err, "The manager configuration could not be read");
    }
    int rc = 0;
    for (size_t j = 0; j < root->u.tab.len && rc == 0; j++) {
        const toml_kv *kv = &root->u.tab.items[j];
        const mkey *k = NULL;
        for (size_t i = 0; i < ARRAY_LEN(keys); i++)
            if (!strcmp(keys[i].name, kv->key))
                k = &keys[i];
        if (!k)
            rc = mt_error_set(err, MT_ERR_CONFIG,
                              "%s:%d: unknown key `%s`; `manta_manager config reference` lists "
                              "the keys.",
                              path, kv->line, kv->key);
        else
            rc = set_value(cfg, k, kv->val, NULL, path, err);
    }
    toml_free(root);
    if (rc < 0)
        mgr_config_clear(cfg); /* nothing half-loaded is left for the caller to free */
    return rc;
}

void mgr_config_clear(mgr_config *cfg)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (keys[i].type == K_STR || keys[i].type == K_PATH) {
            char **p = (char **)((char *)cfg + keys[i].offset);
            free(*p);
            *p = NULL;
        }
}

char *mgr_config_show(const mgr_config *cfg)
{
    strbuf sb = {0};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const mkey *k = &keys[i];
        const void *field = (const char *)cfg + k->offset;
        sb_printf(&sb, "# %s\n", k->doc);
        switch (k->type) {
        case K_STR:
        case K_PATH: {
            const char *v = *(char *const *)field;
            if (!strcmp(k->name, "broker_password") && *v)
                v = "(set, not shown)";
            toml_value *s = toml_new_string(v);
            cleanup_free char *t = toml_format_value(s);
            toml_free(s);
            sb_printf(&sb, "%s = %s\n", k->name, t);
            break;
        }
        case K_INT:
            sb_printf(&sb, "%s = %lld\n", k->name, (long long)*(const int64_t *)field);
            break;
        case K_BOOL:
            sb_printf(&sb, "%s = %s\n", k->name, *(const bool *)field ? "true" : "false");
            break;
        }
    }
    return sb_steal(&sb);
}

char *mgr_config_reference(void)
{
    static const char *tn[] = {"string", "path", "integer", "boolean"};
    strbuf sb = {0};
    sb_puts(&sb, "| key | type | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const mkey *k = &keys[i];
        const char *def = k->def;
        cleanup_free char *d =
            def[0] == '@' ? xasprintf("`$MANTA_HOME/manager%s`", def + 1) : xasprintf("`%s`", def);
        if (!*def)
            sb_printf(&sb, "| `%s` | %s | (empty) | %s |\n", k->name, tn[k->type], k->doc);
        else
            sb_printf(&sb, "| `%s` | %s | %s | %s |\n", k->name, tn[k->type], d, k->doc);
    }
    return sb_steal(&sb);
}
