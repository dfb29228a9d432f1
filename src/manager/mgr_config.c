/* mgr_config.c - the manager's key table: an instance of the configuration engine
 * (src/lib/config.h). Every key is at the top level of the file (no [sections]).
 *
 * Paths under the manager's own folder are written "$MANTA_HOME/manager/..." as defaults: the
 * engine puts a CFG_PATH default that starts with "$MANTA_HOME/" under paths_home()
 * ($MANTA_HOME, else ~/.manta), and the reference shows it as written. */
#include "mgr_config.h"

#include <stddef.h>
#include <string.h>

#include "mem.h"

#define F(f) offsetof(mgr_config, f)

/* clang-format off */
static const cfg_key keys[] = {
    {.name = "listen", .type = CFG_STRING, .offset = F(listen), .def = "127.0.0.1:50051",
     .doc = "Address of the node service (gRPC) that nodes connect to: `host:port`. Port 0 picks "
            "a free port."},
    {.name = "user_listen", .type = CFG_STRING, .offset = F(user_listen), .def = "",
     .doc = "Address of the user services (core.user_services, what the Manta SDK calls): "
            "`host:port`. Empty: served with the node service, on `listen`. Give users their own "
            "address when nodes use mutual TLS (`tls_client_ca`): users never present a client "
            "certificate."},
    {.name = "user_token_ttl", .type = CFG_INT, .offset = F(user_token_ttl),
     .def = "604800", .min = 60, .max = 31622400,
     .doc = "Seconds a user token from SignIn stays valid (default 7 days)."},
    {.name = "http_listen", .type = CFG_STRING, .offset = F(http_listen), .def = "",
     .doc = "Address of the web dashboard (`host:port`, e.g. `127.0.0.1:8080`; docs/dashboard.md): "
            "nodes, swarms, training curves and logs in a browser, for the users of the user "
            "services. Empty: no dashboard. Served over HTTPS with `tls_cert`/`tls_key` when they "
            "are set."},
    {.name = "http_session_ttl", .type = CFG_INT, .offset = F(http_session_ttl),
     .def = "28800", .min = 5, .max = 2592000,
     .doc = "Seconds a dashboard sign-in lasts (default 8 hours)."},
    {.name = "broker_host", .type = CFG_STRING, .offset = F(broker_host), .def = "127.0.0.1",
     .doc = "Host of the MQTT broker the manager uses to send commands to nodes."},
    {.name = "broker_port", .type = CFG_INT, .offset = F(broker_port),
     .def = "1883", .min = 1, .max = 65535,
     .doc = "Port of that broker."},
    {.name = "broker_username", .type = CFG_STRING, .offset = F(broker_username), .def = "",
     .doc = "User name for the broker (empty: anonymous)."},
    {.name = "broker_password", .type = CFG_STRING, .offset = F(broker_password),
     .def = "", .flags = CFG_SECRET,
     .doc = "Password for the broker; never shown by `config show`. Write `\"${VAR}\"` to keep "
            "it out of the file."},
    {.name = "broker_tls", .type = CFG_BOOL, .offset = F(broker_tls), .def = "false",
     .doc = "Connect to the broker with TLS."},
    {.name = "broker_ca_file", .type = CFG_PATH, .offset = F(broker_ca_file), .def = "",
     .doc = "CA certificate(s) for the broker's TLS certificate (empty: the system's)."},
    {.name = "advertise_host", .type = CFG_STRING, .offset = F(advertise_host), .def = "",
     .doc = "Broker host given to nodes at registration when they reach the broker by another "
            "name (empty: `broker_host`)."},
    {.name = "advertise_port", .type = CFG_INT, .offset = F(advertise_port),
     .def = "0", .min = 0, .max = 65535,
     .doc = "Broker port given to nodes (0: `broker_port`)."},
    {.name = "store", .type = CFG_PATH, .offset = F(store), .def = "$MANTA_HOME/manager/store.db",
     .doc = "SQLite file holding swarms, nodes, globals, results, task logs and errors."},
    {.name = "secret_file", .type = CFG_PATH, .offset = F(secret_file),
     .def = "$MANTA_HOME/manager/secret",
     .doc = "HS256 secret of node tokens (32 random bytes, made on first use, mode 0600). "
            "Deleting it invalidates every token."},
    {.name = "admin_socket", .type = CFG_PATH, .offset = F(admin_socket),
     .def = "$MANTA_HOME/manager/admin.sock",
     .doc = "Unix socket of the admin interface used by `manta_manager nodes`, `swarms`, "
            "`results` and `logs`."},
    {.name = "node_timeout", .type = CFG_INT, .offset = F(node_timeout),
     .def = "30", .min = 2, .max = 3600,
     .doc = "Seconds without a heartbeat after which a node counts as lost (a node that dies is "
            "usually noticed sooner through its last will: lost if not heard from within "
            "min(node_timeout, 10) s of it)."},
    {.name = "call_stall_timeout", .type = CFG_INT, .offset = F(call_stall_timeout),
     .def = "120", .min = 1, .max = 86400,
     .doc = "Seconds a node's call may wait for its next message (or for the node to take what "
            "the manager sends) before the manager ends it with DEADLINE_EXCEEDED, so that a "
            "stalled call does not hold one of the node service's threads. One message must "
            "arrive whole within it: a 300 MiB value takes about 25 s at 100 Mbit/s; raise it "
            "for slower links or larger values."},
    {.name = "require_token", .type = CFG_BOOL, .offset = F(require_token), .def = "true",
     .doc = "Refuse nodes without a valid token minted by `manta_manager token create`."},
    {.name = "tls_cert", .type = CFG_PATH, .offset = F(tls_cert), .def = "",
     .doc = "PEM certificate (chain) of the node service: with `tls_key`, nodes connect with TLS "
            "(their `security.use_tls`). Empty: plaintext, for loopback and closed networks."},
    {.name = "tls_key", .type = CFG_PATH, .offset = F(tls_key), .def = "",
     .doc = "PEM private key of `tls_cert`."},
    {.name = "tls_client_ca", .type = CFG_PATH, .offset = F(tls_client_ca), .def = "",
     .doc = "PEM CA certificate(s): when set, nodes must present a certificate it signed (mutual "
            "TLS; the node's `security.cert_file`/`key_file`)."},
    {.name = "log_file", .type = CFG_PATH, .offset = F(log_file), .def = "",
     .doc = "Log file (empty: standard error only)."},
    {.name = "log_level", .type = CFG_STRING, .offset = F(log_level), .def = "info",
     .doc = "debug, info, warning or error."},
};
/* clang-format on */

static const cfg_schema schema = {
    .program = "manta_manager",
    .keys = keys,
    .nkeys = ARRAY_LEN(keys),
    .sections = NULL,
    .size = sizeof(mgr_config),
    .book_offset = offsetof(mgr_config, book),
    .flags = CFG_SCHEMA_BOUNDS_AT_LOAD,
    .unknown_hint = "`manta_manager config reference` lists the keys.",
    .reference_head =
        "# Manager configuration reference\n\n"
        "<!-- Generated by `manta_manager config reference` from src/manager/mgr_config.c; do "
        "not edit by hand. -->\n\n"
        "The manager reads one TOML file, given with `-c`/`--config FILE` (without it, every "
        "key has its default). Every key is at the top level of the file: there are no tables.\n\n"
        "* Unknown keys, values of the wrong type and values out of their bounds are errors "
        "that name the file and line (with a suggestion when a name is close to a known "
        "one).\n"
        "* A string value that is exactly `\"${VAR}\"` or `\"${VAR:default}\"` is replaced "
        "by the environment variable `VAR` (or the default) when the manager loads the file, "
        "and converted to the key's type, so `broker_port = \"${BROKER_PORT}\"` works. A "
        "missing variable without a default is an error naming the key and the variable.\n"
        "* A leading `~` in paths is the home directory. A default that starts with "
        "`$MANTA_HOME` is under the folder of that environment variable, else under "
        "`~/.manta`.\n"
        "* Keys marked *secret* are never shown by `manta_manager config show`.\n\n",
};

const cfg_schema *mgr_config_schema(void)
{
    return &schema;
}

int mgr_config_load(mgr_config *cfg, const char *path, mt_error **err)
{
    if (!path) {
        cfg_init_defaults(&schema, cfg);
        return 0;
    }
    if (cfg_load_file(&schema, cfg, path, 0, err) < 0) {
        cfg_free(&schema, cfg); /* nothing half-loaded is left for the caller to free */
        if (*err && (*err)->code != MT_ERR_CONFIG && (*err)->code != MT_ERR_NOENV)
            return mt_error_wrap(err, "The manager configuration could not be read");
        return -1;
    }
    return 0;
}

void mgr_config_clear(mgr_config *cfg)
{
    cfg_free(&schema, cfg);
}

char *mgr_config_show(const mgr_config *cfg)
{
    return cfg_show_toml(&schema, cfg);
}

char *mgr_config_reference(void)
{
    return cfg_reference_markdown(&schema);
}
