/* cli_stop.c - `manta_node stop [INSTANCE] [--all] [--force] [--timeout N]`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "instances.h"
#include "mem.h"

#define DEFAULT_STOP_TIMEOUT 30

static const char stop_help[] =
    "Usage: manta_node stop [INSTANCE] [options]\n"
    "\n"
    "Stop running nodes: SIGTERM (the node announces its disconnection and cleans up), then\n"
    "SIGKILL if it is still running after the timeout. INSTANCE is an alias, an instance id,\n"
    "or the start of an instance id; without it every running node is stopped.\n"
    "\n"
    "Options:\n"
    "  --all             Stop every running node\n"
    "  -f, --force       SIGKILL at once\n"
    "  --keep-tasks      Stop the agent only: its tasks keep running and the next start of\n"
    "                    the same configuration adopts them (for upgrades and restarts)\n"
    "  -t, --timeout N   Seconds to wait for a graceful stop (default: 30)\n"
    "  -h, --help        Show this help\n";

static void list_running(FILE *out, instance *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  - %s (PID: %d)\n", v[i].alias, (int)v[i].pid);
}

int cli_stop(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},   {"keep-tasks", no_argument, NULL, 'k'},
        {"force", no_argument, NULL, 'f'}, {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},  {NULL, 0, NULL, 0},
    };
    bool all = false, force = false, keep = false;
    long timeout = DEFAULT_STOP_TIMEOUT;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "aft:h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'f':
            force = true;
            break;
        case 'k':
            keep = true;
            break;
        case 't':
            timeout = strtol(optarg, &end, 10);
            if (*end || timeout < 0 || timeout > 86400)
                return cli_usage("stop", "--timeout takes a number of seconds, not '%s'", optarg);
            break;
        case 'h':
            fputs(stop_help, stdout);
            return 0;
        default:
            return cli_usage("stop", "Option '%s' is unknown or needs a value", argv[optind - 1]);
        }
    }
    if (optind < argc - 1)
        return cli_usage("stop", "Too many arguments ('%s')", argv[optind + 1]);
    const char *target = optind < argc ? argv[optind] : NULL;
    if (target && all)
        return cli_usage("stop", "Give an instance or --all, not both");
    if (keep && force)
        return cli_usage("stop", "--keep-tasks and --force do not go together");

    instance *v;
    size_t n = instances_live(&v);
    if (!target) {
        if (!n) {
            printf("No running node instances found.\n");
            instances_release(v, n);
            return 0;
        }
        printf("Found %zu running instance(s):\n", n);
        list_running(stdout, v, n);
        printf(force ? "Force stopping all instances...\n" : "Stopping all instances...\n");
        size_t ok = 0;
        for (size_t i = 0; i < n; i++)
            ok += (keep ? instance_stop_keep_tasks(&v[i], (int)timeout, stdout)
                        : instance_stop(&v[i], force, (int)timeout, stdout)) == 0;
        if (ok == n)
            printf("All %zu instances stopped successfully\n", n);
        else
            printf("Only %zu/%zu instances stopped successfully\n", ok, n);
        instances_release(v, n);
        return ok == n ? 0 : 1;
    }
    if (!n) {
        cli_error("No running node instances found");
        instances_release(v, n);
        return 1;
    }
    /* alias or exact id first, then a unique id prefix */
    instance *hit = NULL;
    size_t prefix_hits = 0;
    for (size_t i = 0; i < n && !hit; i++)
        if (strcmp(v[i].alias, target) == 0 || strcmp(v[i].instance_id, target) == 0)
            hit = &v[i];
    for (size_t i = 0; i < n && !hit; i++)
        if (strncmp(v[i].instance_id, target, strlen(target)) == 0)
            prefix_hits++;
    if (!hit && prefix_hits == 1)
        for (size_t i = 0; i < n && !hit; i++)
            if (strncmp(v[i].instance_id, target, strlen(target)) == 0)
                hit = &v[i];
    if (!hit) {
        if (prefix_hits > 1)
            cli_error("'%s' matches several instances; give more of the instance id", target);
        else
            cli_error("Node instance '%s' not found", target);
        fprintf(stderr, "Running instances:\n");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "  - %s (%s, PID: %d)\n", v[i].alias, v[i].instance_id, (int)v[i].pid);
        instances_release(v, n);
        return 1;
    }
    int rc = keep ? instance_stop_keep_tasks(hit, (int)timeout, stdout)
                  : instance_stop(hit, force, (int)timeout, stdout);
    if (rc == 0)
        printf("Node '%s' stopped successfully\n", hit->alias);
    instances_release(v, n);
    return rc == 0 ? 0 : 1;
}
