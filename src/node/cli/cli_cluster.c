/* cli_cluster.c - `manta_node cluster start N [--config NAME]`, `cluster stop`, and the
 * interactive `cluster N`. Each node is started with `manta_node start CONFIG --alias ALIAS
 * --background`, which returns once that node is registered (or with its error); the shared
 * configuration file is never rewritten. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "node_config.h"
#include "fsutil.h"
#include "instances.h"
#include "mem.h"
#include "paths.h"
#include "prompt.h"
#include "strbuf.h"

static const char cluster_help[] =
    "Usage: manta_node cluster <command> [options]\n"
    "\n"
    "Commands:\n"
    "  start N --config NAME   Start N nodes from configuration NAME, with aliases\n"
    "                          NAME-cluster-1 ... NAME-cluster-N\n"
    "  start N                 Start N nodes, choosing a configuration and alias for each\n"
    "  N                       The same as 'start N' without --config\n"
    "  stop                    Stop every cluster node (aliases or ids containing -cluster-)\n"
    "\n"
    "Options:\n"
    "  -c, --config NAME       Configuration for every node\n"
    "  -n, --count N           Number of nodes (wins over the positional N)\n"
    "  -y, --yes               Do not ask for confirmation\n"
    "  -h, --help              Show this help\n"
    "\n"
    "Examples:\n"
    "  manta_node cluster start 3 --config production\n"
    "  manta_node cluster 3\n"
    "  manta_node cluster stop\n"
    "  manta_node status\n";

/* Run `manta_node start CONFIG --alias ALIAS --background`; its stderr in *err_out (owned). */
static int start_one(const char *config, const char *alias, char **err_out)
{
    int p[2];
    *err_out = NULL;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        execl("/proc/self/exe", "manta_node", "start", config, "--alias", alias, "--background",
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    strbuf sb = STRBUF_INIT;
    char buf[4096];
    ssize_t k;
    while ((k = read(p[0], buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR))
        if (k > 0)
            sb_append(&sb, buf, (size_t)k);
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *err_out = sb_steal(&sb);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int run_cluster(char **configs, char **aliases, long count)
{
    size_t ok = 0;
    strbuf good = STRBUF_INIT, bad = STRBUF_INIT;
    for (long i = 0; i < count; i++) {
        cleanup_free char *err = NULL;
        if (start_one(configs[i], aliases[i], &err) == 0) {
            printf("  ✓ Started %s\n", aliases[i]);
            sb_printf(&good, "  - %s\n", aliases[i]);
            ok++;
        } else {
            /* the node's own first error line */
            char *nl = err ? strchr(err, '\n') : NULL;
            if (nl && strncmp(err, "Starting node", 13) == 0)
                memmove(err, nl + 1, strlen(nl + 1) + 1);
            printf("  ✗ Failed to start %s: %s\n", aliases[i], err && *err ? err : "no output");
            sb_printf(&bad, "  - %s\n", aliases[i]);
        }
        fflush(stdout);
    }
    printf("\n");
    if (ok)
        printf("Successfully started %zu nodes:\n%s", ok, sb_str(&good));
    if (ok < (size_t)count)
        printf("Failed to start %zu nodes:\n%s", (size_t)count - ok, sb_str(&bad));
    printf("\nCheck status with: manta_node status\n"
           "Stop the cluster with: manta_node cluster stop\n"
           "View logs with: manta_node logs <node-name>\n");
    sb_free(&good);
    sb_free(&bad);
    return ok == (size_t)count ? 0 : 1;
}

static char *config_alias_of(const char *name)
{
    node_config cfg;
    mt_error *e = NULL;
    cleanup_free char *path = paths_config_file(name);
    char *alias = NULL;
    if (config_load_file(&cfg, path, CFG_LOAD_LENIENT_ENV, &e) == 0 && cfg.identity.alias)
        alias = xstrdup(cfg.identity.alias);
    mt_error_free(&e);
    config_free(&cfg);
    return alias;
}

/* Standard input ended before the questions of `cluster N` were answered. */
static int no_answer(void)
{
    printf("\n");
    cli_error("No answer on standard input; use --config NAME to start nodes without questions");
    return 1;
}

/* More nodes than this on one host is a typo, not a plan (and the tables below are sized by
 * the count). */
#define CLUSTER_MAX 1000

static int cluster_start(long count, const char *config, bool yes)
{
    if (count <= 0) {
        cli_error("Node count must be greater than 0");
        return 1;
    }
    if (count > CLUSTER_MAX) {
        cli_error("Node count must be at most %d; start a smaller cluster", CLUSTER_MAX);
        return 1;
    }
    if (count > 10 && !yes) {
        printf("Warning: Starting more than 10 nodes may consume significant resources\n");
        int ok = prompt_yes_no("Continue?", false);
        if (ok < 0) { /* nobody answered (standard input at its end) */
            cli_error("Not starting %ld nodes without confirmation; answer y or add --yes", count);
            return 1;
        }
        if (ok == 0)
            return 0;
    }
    cleanup_strv char **configs = xcalloc((size_t)count + 1, sizeof(char *));
    cleanup_strv char **aliases = xcalloc((size_t)count + 1, sizeof(char *));
    if (config) {
        cleanup_free char *path = paths_config_file(config);
        if (!config_name_valid(config) || !fs_exists(path)) {
            cli_config_not_found(config);
            return 1;
        }
        for (long i = 0; i < count; i++) {
            configs[i] = xstrdup(config);
            aliases[i] = xasprintf("%s-cluster-%ld", config, i + 1);
        }
        printf("Starting %ld nodes with configuration '%s'...\n", count, config);
        return run_cluster(configs, aliases, count);
    }

    /* Interactive: a configuration and an alias per node. */
    cleanup_strv char **names = cli_config_names();
    if (!names[0]) {
        cli_error("No configurations found");
        fprintf(stderr, "Create one with:\n  manta_node config init\n");
        return 1;
    }
    /* The answers may come from a terminal or a pipe, as with the reference. */
    printf("Available configurations:\n");
    for (size_t i = 0; names[i]; i++)
        printf("  %zu. %s\n", i + 1, names[i]);
    for (long i = 0; i < count; i++) {
        cleanup_free char *q = xasprintf("Select configuration for node %ld", i + 1);
        for (int tries = 0;; tries++) {
            char *ans = prompt_line(q, names[0]);
            if (!ans)
                return no_answer();
            /* a name or its number */
            char *end;
            long idx = strtol(ans, &end, 10);
            size_t nn = 0;
            while (names[nn])
                nn++;
            if (!*end && idx >= 1 && (size_t)idx <= nn) {
                free(ans);
                ans = xstrdup(names[idx - 1]);
            }
            bool known = false;
            for (size_t k = 0; names[k]; k++)
                known |= strcmp(names[k], ans) == 0;
            if (known) {
                configs[i] = ans;
                break;
            }
            free(ans);
            printf("Choose one of the configurations listed above.\n");
            if (tries > 8)
                return 1;
        }
        cleanup_free char *cfg_alias = config_alias_of(configs[i]);
        cleanup_free char *def =
            xasprintf("%s-cluster-%ld", cfg_alias ? cfg_alias : configs[i], i + 1);
        cleanup_free char *qa = xasprintf("Alias for node %ld", i + 1);
        aliases[i] = prompt_line(qa, def);
        if (!aliases[i])
            return no_answer();
    }
    printf("\nCluster configuration:\n");
    for (long i = 0; i < count; i++)
        printf("  Node %ld: config='%s', alias='%s'\n", i + 1, configs[i], aliases[i]);
    if (!yes && prompt_yes_no("Start cluster with this configuration?", true) != 1) {
        printf("Operation cancelled.\n");
        return 0;
    }
    return run_cluster(configs, aliases, count);
}

static int cluster_stop(bool yes)
{
    instance *v;
    size_t n = instances_live(&v);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (strstr(v[i].instance_id, "-cluster-") || strstr(v[i].alias, "-cluster-"))
            v[m++] = v[i];
        else
            instance_release(&v[i]);
    if (!m) {
        printf("No running cluster nodes found.\n");
        instances_release(v, m);
        return 0;
    }
    printf("Found %zu cluster node(s):\n", m);
    for (size_t i = 0; i < m; i++)
        printf("  - %s (%s, PID: %d)\n", v[i].alias, v[i].instance_id, (int)v[i].pid);
    if (!yes) {
        /* the answer may come from a terminal or a pipe (`echo y | manta_node cluster stop`) */
        int ok = prompt_yes_no("Stop all cluster nodes?", false);
        if (ok < 0) { /* nobody answered (standard input at its end) */
            cli_error("Not stopping the cluster without confirmation; answer y or add --yes");
            instances_release(v, m);
            return 1;
        }
        if (ok == 0) {
            printf("Operation cancelled.\n");
            instances_release(v, m);
            return 0;
        }
    }
    /* Signal them all first, then wait: a slow node does not hold the others up. */
    size_t ok = 0;
    for (size_t i = 0; i < m; i++)
        kill(v[i].pid, SIGTERM);
    for (size_t i = 0; i < m; i++) {
        if (instance_stop(&v[i], false, 30, NULL) == 0) {
            printf("  ✓ Stopped %s\n", v[i].instance_id);
            ok++;
        } else {
            printf("  ✗ Failed to stop %s\n", v[i].instance_id);
        }
    }
    if (ok == m)
        printf("All %zu cluster nodes stopped successfully\n", m);
    else
        printf("Stopped %zu/%zu cluster nodes\n", ok, m);
    instances_release(v, m);
    return ok == m ? 0 : 1;
}

int cli_cluster(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"count", required_argument, NULL, 'n'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    long count = -1;
    bool yes = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:n:yh", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            errno = 0;
            count = strtol(optarg, &end, 10);
            if (*end || !*optarg)
                return cli_usage("cluster", "--count takes a number, not '%s'", optarg);
            if (errno == ERANGE || count > CLUSTER_MAX)
                count = CLUSTER_MAX + 1; /* refused with the limit in cluster_start */
            else if (count < 0)
                count = 0; /* "must be greater than 0", not "count is required" */
            break;
        case 'y':
            yes = true;
            break;
        case 'h':
            fputs(cluster_help, stdout);
            return 0;
        default:
            return cli_usage("cluster", "Option '%s' is unknown or needs a value",
                             argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        fputs(cluster_help, stdout);
        return 0;
    }
    const char *cmd = argv[optind];
    const char *num = NULL;
    if (strcmp(cmd, "stop") == 0) {
        if (optind + 1 < argc)
            return cli_usage("cluster", "Unexpected argument '%s'", argv[optind + 1]);
        return cluster_stop(yes);
    }
    if (strcmp(cmd, "start") == 0) {
        if (optind + 2 < argc)
            return cli_usage("cluster", "Unexpected argument '%s'", argv[optind + 2]);
        num = optind + 1 < argc ? argv[optind + 1] : NULL;
    } else if (strspn(cmd, "0123456789") == strlen(cmd)) {
        if (optind + 1 < argc)
            return cli_usage("cluster", "Unexpected argument '%s'", argv[optind + 1]);
        num = cmd;
        config = NULL; /* `cluster N` is the interactive form */
    } else {
        return cli_usage("cluster", "Unknown command '%s' (start, stop, or a node count)", cmd);
    }
    if (count < 0 && num) {
        char *end;
        errno = 0;
        count = strtol(num, &end, 10);
        if (*end || !*num)
            return cli_usage("cluster", "The node count must be a number, not '%s'", num);
        if (errno == ERANGE || count > CLUSTER_MAX)
            count = CLUSTER_MAX + 1;
        else if (count < 0)
            count = 0;
    }
    if (count < 0) {
        cli_error("Node count is required");
        fprintf(stderr, "Examples:\n  manta_node cluster start 3 --config production\n"
                        "  manta_node cluster 3\n");
        return 1;
    }
    return cluster_start(count, config, yes);
}
