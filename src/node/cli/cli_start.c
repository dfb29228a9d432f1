/* cli_start.c - `manta_node start [config] [--alias NAME] [--foreground]`: load, validate,
 * register, connect, serve, with the seeds' messages. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "clock.h"
#include "node_config.h"
#include "fsutil.h"
#include "instances.h"
#include "mem.h"
#include "metrics.h"
#include "paths.h"
#include "proc.h"
#include "sdnotify.h"
#include "strbuf.h"

/* The line a background child sends its parent once it is registered and subscribed. */
#define READY_MARK "\x1emanta-ready\x1e"

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
    "  -d, --background  Detach; return once the node is registered and subscribed (or print\n"
    "                    its startup error and exit 1)\n"
    "  --foreground      Run in this terminal (default; wins over --background)\n"
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

static void runtime_block(const char *detail)
{
    if (strncmp(detail, "Docker daemon not accessible", 28) == 0) {
        fprintf(stderr, "Error: Docker daemon not accessible\n"
                        "\n"
                        "Solutions:\n"
                        "  - Start Docker daemon: sudo systemctl start docker\n"
                        "  - Check permissions: sudo usermod -aG docker $USER\n"
                        "  - Verify socket: ls -la /var/run/docker.sock\n");
        const char *why = detail + 28;
        while (*why == ':' || *why == ' ')
            why++;
        if (*why)
            fprintf(stderr, "\nDetails: %s\n", why);
        return;
    }
    cli_error("Cannot run tasks on this host: %s", detail);
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

/* Load, finalise and validate; prints the seeds' messages. Returns 0 or an exit status. */
static int prepare(const char *name, const char *alias, node_config *cfg)
{
    cleanup_free char *path = paths_config_file(name);
    if (!fs_exists(path)) {
        cli_config_not_found(name);
        return 1;
    }
    mt_error *e = NULL;
    /* Lenient about unset variables so that an unset token gets the seed's token block;
     * any other unset variable fails validation below with its name. */
    if (config_load_file(cfg, path, CFG_LOAD_LENIENT_ENV, &e) < 0) {
        cli_error_e(e, "Failed to load configuration '%s'", name);
        mt_error_free(&e);
        config_free(cfg);
        return 1;
    }
    if (cfg->origin[config_key_index("identity.secured_token")] == CFG_MISSING_ENV) {
        token_block(path);
        config_free(cfg);
        return 1;
    }
    config_finalize(cfg, alias);
    const char *tok = cfg->identity.secured_token;
    if (!tok || !*tok || tok[0] == '<') {
        token_block(path);
        config_free(cfg);
        return 1;
    }
    cleanup_strv char **issues = NULL;
    if (config_validate(cfg, &issues)) {
        fprintf(stderr, "Error: Configuration validation failed:\n");
        for (char **s = issues; *s; s++)
            fprintf(stderr, strncmp(*s, "  →", 4) == 0 ? "  %s\n" : "  - %s\n", *s);
        config_free(cfg);
        return 1;
    }
    return 0;
}

/* Run the node in this process until it stops. `background`: this is the detached child, whose
 * stderr is the pipe to the waiting parent until the node is ready. */
static int run_node(const char *name, const char *alias, node_config *cfg, bool background)
{
    cleanup_free char *path = paths_config_file(name);
    cleanup_free char *shown = fs_display_path(path);
    if (!background) {
        if (alias) {
            printf("Starting node '%s' in foreground...\n", alias);
            printf("Configuration: %s\n", name);
            printf("Overridden alias: %s\n", alias);
        } else {
            printf("Starting node '%s' in foreground...\n", name);
            if (strcmp(name, "default") != 0) {
                printf("Using configuration: %s\n", shown);
                printf("Node alias: %s\n", config_effective_alias(cfg));
                printf("Manager: %s:%lld\n", cfg->network.manager_host,
                       (long long)cfg->network.manager_port);
            }
        }
        printf("Press Ctrl+C to stop\n");
        resources_warning();
        fflush(stdout);
    }

    /* One node per alias on a machine: they would share a node ID. */
    mt_error *e = NULL;
    pid_t holder = 0;
    cleanup_free char *the_alias = xstrdup(config_effective_alias(cfg));
    cleanup_close int lock = instance_lock_alias(the_alias, &holder, &e);
    if (lock < 0) {
        if (e->code == MT_ERR_EXISTS) {
            if (holder)
                cli_error("A node with alias '%s' is already running (PID %d)", the_alias,
                          (int)holder);
            else
                cli_error("A node with alias '%s' is already running", the_alias);
            fprintf(stderr,
                    "Two nodes with one alias would share a node ID. Stop it first "
                    "(manta_node stop %s) or start with another alias (--alias NAME).\n",
                    the_alias);
        } else {
            cli_error_e(e, "Failed to start node");
        }
        mt_error_free(&e);
        config_free(cfg);
        return 1;
    }

    node n;
    if (agent_init(&n, cfg, name, alias, &e) < 0) {
        cli_error_e(e, "Failed to start node");
        mt_error_free(&e);
        agent_free(&n);
        config_free(cfg);
        return 1;
    }
    if (agent_start(&n, &e) < 0) {
        const char *detail = mt_error_msg(e);
        log_error(n.log, "agent", "Startup failed: %s", detail);
        switch (mt_error_status(e, 0)) {
        case AGENT_STAGE_AUTH:
            auth_block(&n.cfg, name, detail);
            break;
        case AGENT_STAGE_MANAGER:
            manager_block(&n.cfg, detail);
            break;
        case AGENT_STAGE_BROKER:
            broker_block(&n, detail);
            break;
        case AGENT_STAGE_RUNTIME:
            runtime_block(detail);
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

    /* Registered and subscribed: record the instance, then tell whoever waits. */
    instance in = {0};
    in.instance_id = instance_new_id(name);
    in.alias = xstrdup(the_alias);
    in.config_name = xstrdup(name);
    in.pid = getpid();
    in.proc_start = proc_start_time(in.pid);
    in.start_time = clock_iso_local();
    in.status = xstrdup("running");
    in.manager_host = xstrdup(n.cfg.network.manager_host);
    in.manager_port = (long)n.cfg.network.manager_port;
    in.log_file = fs_display_path(n.cfg.logging.filename);
    in.node_id = xstrdup(n.xid);
    in.state_dir = xstrdup(n.cfg.tasks.state_dir);
    if (instance_write(&in, &e) < 0) {
        log_warn(n.log, "agent", "Cannot write the instance file: %s", mt_error_msg(e));
        mt_error_free(&e);
    }
    log_info(n.log, "agent", "Instance %s (PID %d)", in.instance_id, (int)in.pid);
    if (background) {
        fprintf(stderr, READY_MARK "%s\n", in.instance_id);
        fflush(stderr);
        /* From now on stderr (crash reports) goes to the log file, which ends the parent's
         * wait. */
        int fd = open(n.cfg.logging.filename, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    cleanup_free char *status =
        xasprintf("READY=1\nSTATUS=Registered as %s, instance %s\nMAINPID=%d", n.xid,
                  in.instance_id, (int)getpid());
    sd_notify_send(status);

    int rc = agent_run(&n);
    sd_notify_send("STOPPING=1");
    unlink(in.path);
    instance_release(&in);
    agent_free(&n);
    if (rc == 0 && !background)
        printf("Node stopped gracefully\n");
    return rc;
}

/* `start -d`: detach a child in a new session and wait until it is registered and subscribed
 * (it says so on a pipe), or print its own startup error. */
static int start_background(const char *name, const char *alias, node_config *cfg)
{
    const char *shown_name = alias ? alias : name;
    printf("Starting node '%s' in background...\n", shown_name);
    fflush(stdout);
    cleanup_free char *log_shown = fs_display_path(cfg->logging.filename);
    int64_t wait_ms = (cfg->network.connect_timeout * 4 + 15) * 1000;
    mt_error *e = NULL;
    cleanup_free char *logdir = xstrdup(cfg->logging.filename);
    *strrchr(logdir, '/') = '\0';
    if (fs_mkdir_p(logdir, 0755, &e) < 0) {
        cli_error_e(e, "Failed to start node");
        mt_error_free(&e);
        config_free(cfg);
        return 1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        cli_error("Failed to start node: %s", strerror(errno));
        config_free(cfg);
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("Failed to start node: %s", strerror(errno));
        config_free(cfg);
        return 1;
    }
    if (pid == 0) {
        close(p[0]);
        setsid();
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            close(devnull);
        }
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        _exit(run_node(name, alias, cfg, true));
    }
    close(p[1]);
    config_free(cfg);

    /* Collect what the child says until it is ready or gone. */
    strbuf said = STRBUF_INIT;
    char buf[4096];
    int64_t start = clock_mono_ms();
    bool ready = false, eof = false;
    while (!eof) {
        int64_t left = wait_ms - (clock_mono_ms() - start);
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t k = read(p[0], buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            eof = true;
        else
            sb_append(&said, buf, (size_t)k);
        if (strstr(sb_str(&said), READY_MARK) && strchr(strstr(sb_str(&said), READY_MARK), '\n'))
            ready = true;
    }
    close(p[0]);
    if (ready) {
        const char *m = strstr(sb_str(&said), READY_MARK) + strlen(READY_MARK);
        cleanup_free char *id = xstrndup(m, strcspn(m, "\n"));
        printf("✓ Node '%s' started successfully\n", shown_name);
        printf("Instance ID: %s\n", id);
        printf("Process ID: %d\n", (int)pid);
        printf("Log file: %s\n", log_shown);
        sb_free(&said);
        return 0;
    }
    int status = 0;
    bool exited = waitpid(pid, &status, eof ? 0 : WNOHANG) == pid;
    if (!exited) {
        kill(pid, SIGTERM); /* it never became ready: do not leave it half-started */
        for (int i = 0; i < 50 && waitpid(pid, &status, WNOHANG) == 0; i++)
            usleep(100000);
    }
    fputs(sb_str(&said), stderr);
    if (!said.len || !exited)
        cli_error(exited ? "Node failed to start. Check logs for details."
                         : "The node did not become ready within %lld s and was stopped.",
                  (long long)(wait_ms / 1000));
    fprintf(stderr, "Log file: %s\n", log_shown);
    sb_free(&said);
    return 1;
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

    node_config cfg;
    int rc = prepare(name, alias, &cfg);
    if (rc)
        return rc;
    if (background && !foreground)
        return start_background(name, alias, &cfg);
    return run_node(name, alias, &cfg, false);
}
