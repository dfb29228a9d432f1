/* mgr_config.h - the manager's configuration: one table of keys (mgr_config.c), an instance
 * of the configuration engine (src/lib/config.h), drives loading (TOML with every key at the
 * top level; unknown keys refused with file:line and a "did you mean"; "${VAR}" and
 * "${VAR:default}" from the environment; bounds checked at load), defaults, `manta_manager
 * config show` and the reference in docs/manager-configuration.md. Paths default under
 * $MANTA_HOME/manager (~/.manta/manager). */
#ifndef MANTA_MGR_CONFIG_H
#define MANTA_MGR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

typedef struct mgr_config {
    char *listen;             /* gRPC address for nodes, "127.0.0.1:50051" */
    char *user_listen;        /* gRPC address of the user services ("" = on listen) */
    int64_t user_token_ttl;   /* seconds */
    char *http_listen;        /* the web dashboard's address ("" = none) */
    int64_t http_session_ttl; /* seconds */
    char *broker_host;        /* the MQTT broker the manager connects to */
    int64_t broker_port;
    char *broker_username; /* "" = anonymous */
    char *broker_password;
    bool broker_tls;
    char *broker_ca_file;   /* "" = the system's CAs */
    char *advertise_host;   /* broker host told to nodes (NULL/"" = broker_host) */
    int64_t advertise_port; /* 0 = broker_port */
    char *store;            /* SQLite file */
    char *secret_file;      /* HS256 secret */
    char *admin_socket;     /* unix socket of the admin interface */
    int64_t node_timeout;   /* seconds of silence before a node counts as lost */
    bool require_token;
    char *tls_cert;      /* PEM certificate chain of the node service ("" = plaintext) */
    char *tls_key;       /* its key */
    char *tls_client_ca; /* "" or a CA whose certificates nodes must present (mutual TLS) */
    char *log_file;      /* "" = console only */
    char *log_level;     /* debug|info|warning|error */

    int64_t call_stall_timeout; /* seconds a node's call may go without progress */

    cfg_book book; /* where each value came from (the engine's bookkeeping) */
} mgr_config;

/* The manager's schema (static). Borrowed. */
const cfg_schema *mgr_config_schema(void);

/* Defaults, then the file (NULL = none; a missing explicit file is an error). Owned fields,
 * released with mgr_config_clear; on failure nothing is left to release and *err lists every
 * problem, one per line. */
int mgr_config_load(mgr_config *cfg, const char *path, mt_error **err);
void mgr_config_clear(mgr_config *cfg);
/* The configuration as TOML (every key, with its doc as a comment; the broker password
 * masked). Owned. */
char *mgr_config_show(const mgr_config *cfg);
/* Markdown reference of every key. Owned. */
char *mgr_config_reference(void);

#endif
