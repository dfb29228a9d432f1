/* cli_start.c - `manta_node start [config] [--alias NAME] [--foreground]`: load, validate,
 * register, connect, serve, with the seeds' messages. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cli.h"
#include "config.h"
#include "fsutil.h"
#include "mem.h"
#include "metrics.h"
#include "paths.h"

static const char start_help[] =
    "Usage: manta_node start [config_name] [options]\n"
    "\n"
    "Start a node with configuration ~/.manta/nodes/<config_name>.toml (default: default).\n"
    "The node registers with the manager, connects to the MQTT broker the manager names,\n"
    "serves its datasets to running tasks and reports its health until it is stopped\n"
    "(Ctrl+C, SIGTERM, or stop_node from the manager).\n"
    "\n"
    "Options:\n"
    "  --alias NAME      Override the node alias (the configuration file is not changed)\n"
    "  --foreground      Run in this terminal (default)\n"
    "  -h, --help        Show this help\n";

static void token_block(const char *path)
{
    cleanup_free char *shown = fs_display_path(path);
    fprintf(stderr,
            "Error: No valid secured token found in configuration\n"
            "A secured token (JWT) is required for node authentication.\n"
            "\n"
            "Solutions:\n"
            "  • Set environment variable: export MANTA_NODE_TOKEN=your_jwt_token\n"
            "  • Edit config file: %s\n"
            "  • Update: secured_token = \"your_jwt_token_here\"\n"
            "  • Or recreate config: manta_node config init\n",
            shown);
}

static void manager_block(const node_config *cfg, const char *detail)
{
    fprintf(stderr,
            "Error: Failed to connect to manager at %s:%lld\n"
            "\n"
            "Troubleshooting steps:\n"
            "  1. Check if configuration is valid: manta_node config validate\n"
            "  2. Verify manager is running: docker ps (look for manta services)\n"
            "  3. Check if port is available: netstat -ln | grep :%lld\n"
            "  4. Validate secured_token is set in config file\n",
            cfg->network.manager_host, (long long)cfg->network.manager_port,
            (long long)cfg->network.manager_port);
    if (detail && *detail)
        fprintf(stderr, "\nDetails: %s\n", detail);
}

static void auth_block(const node_config *cfg, const char *name, const char *detail)
{
    cleanup_free char *path = paths_config_file(name);
    cleanup_free char *shown = fs_display_path(path);
    fprintf(stderr,
            "Error: The manager at %s:%lld refused this node's token\n"
            "The secured token of configuration '%s' is not accepted: it may be expired, "
            "revoked, or issued by another manager.\n"
            "\n"
            "Solutions:\n"
            "  • Get a new token for this node from the manager\n"
            "  • Set environment variable: export MANTA_NODE_TOKEN=your_jwt_token\n"
            "  • Or edit config file: %s\n"
            "\nDetails: %s\n",
            cfg->network.manager_host, (long long)cfg->network.manager_port, name, shown, detail);
}

static void broker_block(const node *n, const char *detail)
{
    fprintf(stderr,
            "Error: Failed to connect to MQTT broker\n"
            "Broker: %s:%d\n"
            "\n"
            "Check:\n"
            "  - MQTT broker is running\n"
            "  - Network connectivity\n"
            "  - Firewall rules\n",
            n->broker_host ? n->broker_host : "?", n->broker_port);
    if (detail && *detail)
        fprintf(stderr, "\nDetails: %s\n", detail);
}

static void resources_warning(void)
{
    metrics_state st;
    metrics_init(&st, NULL);
    int cpus = 0;
    uint64_t mem = 0;
    mt_error *e = NULL;
    if (metrics_capacity(&st, &cpus, &mem, &e) == 0) {
        double gb = (double)mem / (1024.0 * 1024 * 1024);
        if (cpus < 4 || gb < 8.0 - 0.05)
            printf("Warning: System resources below recommended levels\n"
                   "Available: %d CPU cores, %.1f GB RAM\n"
                   "Recommended: 4+ CPU cores, 8+ GB RAM\n"
                   "\n"
                   "Node will start with reduced capacity\n",
                   cpus, gb);
    }
    mt_error_free(&e);
    metrics_release(&st);
}

int cli_start(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"alias", required_argument, NULL, 'a'},
        {"foreground", no_argument, NULL, 'f'},
        {"background", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *alias = NULL;
    bool background = false, foreground = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "dh", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            alias = optarg;
            if (!*alias)
                return cli_usage("start", "--alias cannot be empty");
            break;
        case 'f':
            foreground = true;
            break;
        case 'd':
            background = true;
            break;
        case 'h':
            fputs(start_help, stdout);
            return 0;
        default:
            return cli_usage("start", "Option '%s' is unknown or needs a value", argv[optind - 1]);
        }
    }
    if (optind < argc - 1)
        return cli_usage("start", "Too many arguments ('%s')", argv[optind + 1]);
    const char *name = optind < argc ? argv[optind] : "default";
    if (!config_name_valid(name)) {
        cli_error("Invalid configuration name '%s'", name);
        return 1;
    }
    if (background && !foreground) {
        cli_error("Background mode is not available in this build yet");
        fprintf(stderr, "Run the node in the foreground: manta_node start %s\n", name);
        return 1;
    }

    cleanup_free char *path = paths_config_file(name);
    if (!fs_exists(path)) {
        cli_config_not_found(name);
        return 1;
    }
    node_config cfg;
    mt_error *e = NULL;
    /* Lenient about unset variables so that an unset token gets the seed's token block;
     * any other unset variable fails validation below with its name. */
    if (config_load_file(&cfg, path, CFG_LOAD_LENIENT_ENV, &e) < 0) {
        cli_error_e(e, "Failed to load configuration '%s'", name);
        mt_error_free(&e);
        config_free(&cfg);
        return 1;
    }
    if (cfg.origin[config_key_index("identity.secured_token")] == CFG_MISSING_ENV) {
        token_block(path);
        config_free(&cfg);
        return 1;
    }
    config_finalize(&cfg, alias);
    const char *tok = cfg.identity.secured_token;
    if (!tok || !*tok || tok[0] == '<') {
        token_block(path);
        config_free(&cfg);
        return 1;
    }
    cleanup_strv char **issues = NULL;
    if (config_validate(&cfg, &issues)) {
        fprintf(stderr, "Error: Configuration validation failed:\n");
        for (char **s = issues; *s; s++)
            fprintf(stderr, strncmp(*s, "  →", 4) == 0 ? "  %s\n" : "  - %s\n", *s);
        config_free(&cfg);
        return 1;
    }

    /* What the seeds print. */
    cleanup_free char *shown = fs_display_path(path);
    if (alias) {
        printf("Starting node '%s' in foreground...\n", alias);
        printf("Configuration: %s\n", name);
        printf("Overridden alias: %s\n", alias);
    } else {
        printf("Starting node '%s' in foreground...\n", name);
        if (strcmp(name, "default") != 0) {
            printf("Using configuration: %s\n", shown);
            printf("Node alias: %s\n", config_effective_alias(&cfg));
            printf("Manager: %s:%lld\n", cfg.network.manager_host,
                   (long long)cfg.network.manager_port);
        }
    }
    printf("Press Ctrl+C to stop\n");
    resources_warning();
    fflush(stdout);

    node n;
    if (agent_init(&n, &cfg, name, &e) < 0) {
        cli_error_e(e, "Failed to start node");
        mt_error_free(&e);
        agent_free(&n);
        config_free(&cfg);
        return 1;
    }
    int stage = 0;
    if (agent_start(&n, &stage, &e) < 0) {
        const char *detail = mt_error_msg(e);
        log_error(n.log, "agent", "Startup failed: %s", detail);
        switch (stage) {
        case AGENT_STAGE_AUTH:
            auth_block(&n.cfg, name, detail);
            break;
        case AGENT_STAGE_MANAGER:
            manager_block(&n.cfg, detail);
            break;
        case AGENT_STAGE_BROKER:
            broker_block(&n, detail);
            break;
        case AGENT_STAGE_REGISTER:
            cli_error("Registration with the manager at %s:%lld failed: %s",
                      n.cfg.network.manager_host, (long long)n.cfg.network.manager_port, detail);
            break;
        default:
            cli_error_e(e, "Failed to start node");
            break;
        }
        mt_error_free(&e);
        agent_free(&n);
        return 1;
    }
    int rc = agent_run(&n);
    agent_free(&n);
    if (rc == 0)
        printf("Node stopped gracefully\n");
    return rc;
}
