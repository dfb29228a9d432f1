/* cli_status.c - `manta_node status [--plain] [--json]`: the running nodes with live CPU and
 * memory. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "instances.h"
#include "json.h"
#include "mem.h"
#include "proc.h"

static const char status_help[] =
    "Usage: manta_node status [options]\n"
    "\n"
    "Show the nodes running on this machine, with their CPU (measured now, over 0.2 s) and\n"
    "memory use.\n"
    "\n"
    "Options:\n"
    "  --plain      One block of lines per node instead of a table\n"
    "  --json       Machine-readable output\n"
    "  --all        Accepted for compatibility (every node is always shown)\n"
    "  -h, --help   Show this help\n";

/* utime + stime of a process in clock ticks; -1 if gone. */
static long long cpu_ticks(pid_t pid)
{
    proc_stat st;
    return proc_stat_read(pid, &st) ? (long long)(st.utime + st.stime) : -1;
}

/* Resident memory in bytes (VmRSS); -1 if unknown. */
static long long rss_bytes(pid_t pid)
{
    char v[64];
    long long kb;
    if (!proc_status_field(pid, "VmRSS", v, sizeof(v)) || sscanf(v, "%lld", &kb) != 1)
        return -1;
    return kb * 1024;
}

static void started_text(const char *iso, char out[32])
{
    /* "2024-03-15T10:30:00[.ffffff]" -> "2024-03-15 10:30:00" */
    if (!iso || strlen(iso) < 19) {
        snprintf(out, 32, "N/A");
        return;
    }
    snprintf(out, 32, "%.10s %.8s", iso, iso + 11);
}

int cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"plain", no_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool plain = false, json = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            plain = true;
            break;
        case 'j':
            json = true;
            break;
        case 'a':
            break;
        case 'h':
            fputs(status_help, stdout);
            return 0;
        default:
            return cli_usage("status", "Option '%s' is unknown", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("status", "Unexpected argument '%s'", argv[optind]);
    if (plain && json)
        return cli_usage("status", "Give --plain or --json, not both");

    instance *v;
    size_t n = instances_live(&v);
    long long *t0 = xcalloc(n ? n : 1, sizeof(long long));
    double *cpu = xcalloc(n ? n : 1, sizeof(double));
    int64_t a = clock_mono_ms();
    for (size_t i = 0; i < n; i++)
        t0[i] = cpu_ticks(v[i].pid);
    if (n)
        usleep(200000);
    double secs = (double)(clock_mono_ms() - a) / 1000.0;
    long hz = sysconf(_SC_CLK_TCK);
    for (size_t i = 0; i < n; i++) {
        long long t1 = cpu_ticks(v[i].pid);
        cpu[i] = t0[i] < 0 || t1 < 0 ? -1 : (double)(t1 - t0[i]) / (double)hz / secs * 100.0;
    }

    if (json) {
        cleanup_json json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "instance_id", json_string(v[i].instance_id));
            json_object_set_new(o, "alias", json_string(v[i].alias));
            json_object_set_new(o, "config_name", json_string(v[i].config_name));
            json_object_set_new(o, "pid", json_integer(v[i].pid));
            json_object_set_new(o, "status", json_string(v[i].status));
            json_object_set_new(o, "cpu_percent", cpu[i] < 0 ? json_null() : json_real(cpu[i]));
            long long rss = rss_bytes(v[i].pid);
            json_object_set_new(o, "memory_bytes", rss < 0 ? json_null() : json_integer(rss));
            json_object_set_new(o, "start_time", json_string(v[i].start_time));
            json_object_set_new(o, "manager",
                                json_sprintf("%s:%ld", v[i].manager_host, v[i].manager_port));
            json_object_set_new(o, "log_file", json_string(v[i].log_file));
            char **keys, **states;
            size_t nt = instance_tasks(&v[i], &keys, &states);
            json_t *ta = json_array();
            for (size_t k = 0; k < nt; k++)
                json_array_append_new(ta,
                                      json_pack("{s:s, s:s}", "task", keys[k], "state", states[k]));
            json_object_set_new(o, "tasks", ta);
            mem_free_strv(&keys);
            mem_free_strv(&states);
            json_array_append_new(arr, o);
        }
        cleanup_free char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
    } else if (!n) {
        printf("No running node instances found.\n\nStart a node with:\n  manta_node start "
               "[config_name]\n");
    } else if (plain) {
        printf("Found %zu running instance(s):\n\n", n);
        for (size_t i = 0; i < n; i++) {
            char started[32];
            started_text(v[i].start_time, started);
            long long rss = rss_bytes(v[i].pid);
            printf("Instance: %s\n  PID: %d\n  Status: %s\n", v[i].instance_id, (int)v[i].pid,
                   v[i].status);
            if (cpu[i] < 0)
                printf("  CPU: N/A\n");
            else
                printf("  CPU: %.1f%%\n", cpu[i]);
            if (rss < 0)
                printf("  Memory: N/A\n");
            else
                printf("  Memory: %lld MB\n", rss / 1048576);
            printf("  Started: %s\n", started);
            char **keys, **states;
            size_t nt = instance_tasks(&v[i], &keys, &states);
            printf("  Tasks: %zu\n", nt);
            for (size_t k = 0; k < nt; k++)
                printf("    %s: %s\n", keys[k], states[k]);
            printf("\n");
            mem_free_strv(&keys);
            mem_free_strv(&states);
        }
    } else {
        const char *hdr[] = {"Alias", "Config", "PID", "Status", "CPU %", "Memory (MB)", "Started"};
        char ***cells = xcalloc(n, sizeof(char **));
        size_t w[7];
        for (int k = 0; k < 7; k++)
            w[k] = strlen(hdr[k]);
        for (size_t i = 0; i < n; i++) {
            char started[32];
            started_text(v[i].start_time, started);
            long long rss = rss_bytes(v[i].pid);
            cells[i] = xcalloc(7, sizeof(char *));
            cells[i][0] = xstrdup(v[i].alias);
            cells[i][1] = xstrdup(v[i].config_name);
            cells[i][2] = xasprintf("%d", (int)v[i].pid);
            cells[i][3] = xstrdup(v[i].status);
            cells[i][4] = cpu[i] < 0 ? xstrdup("N/A") : xasprintf("%.1f%%", cpu[i]);
            cells[i][5] = rss < 0 ? xstrdup("N/A") : xasprintf("%lld", rss / 1048576);
            cells[i][6] = xstrdup(started);
            for (int k = 0; k < 7; k++)
                if (strlen(cells[i][k]) > w[k])
                    w[k] = strlen(cells[i][k]);
        }
        printf("Running Node Instances\n");
        for (int k = 0; k < 7; k++)
            printf("%-*s%s", (int)w[k], hdr[k], k < 6 ? "  " : "\n");
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 7; k++) {
                printf("%-*s%s", (int)w[k], cells[i][k], k < 6 ? "  " : "\n");
                free(cells[i][k]);
            }
            free(cells[i]);
        }
        free(cells);
    }
    free(t0);
    free(cpu);
    instances_release(v, n);
    return 0;
}
