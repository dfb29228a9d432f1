/* metrics.h - the machine's health as the heartbeat reports it, computed from /proc deltas
 * between two samples (no sleeping to sample), plus disk, network and GPU figures kept for the
 * log and `manta_node status` (the wire's MetricsSnapshot carries only CPU and memory). */
#ifndef MANTA_METRICS_H
#define MANTA_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct cpu_times {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
} cpu_times;

/* Sampler state: the previous /proc/stat sample. Owned by the daemon context. */
typedef struct metrics_state {
    char *proc_root; /* owned; "/proc" unless a test points it elsewhere */
    bool have_prev;
    cpu_times prev_total;
    cpu_times *prev_cpu; /* owned, prev_ncpu entries */
    int prev_ncpu;
    int physical;            /* physical cores, counted once from cpuinfo (0 = not yet) */
    struct metrics_fds *fds; /* stat and meminfo kept open and re-read (real /proc only) */
} metrics_state;

typedef struct cpu_metrics {
    float usage_percent; /* busy share of all CPUs since the previous sample (psutil rules) */
    float user_percent;
    float system_percent;
    float idle_percent;
    int count;          /* logical CPUs */
    int physical_count; /* physical cores, 0 if unknown */
    float *per_cpu;     /* owned, `count` entries */
} cpu_metrics;

typedef struct mem_metrics {
    uint64_t total, available, used, free;
    float percent_used; /* (total - available) / total, rounded to 0.1 */
    uint64_t swap_total, swap_used, swap_free;
    float swap_percent_used;
} mem_metrics;

typedef struct disk_metrics {
    uint64_t total, used, free;
    float percent_used;
} disk_metrics;

typedef struct net_metrics {
    uint64_t bytes_sent, bytes_recv, packets_sent, packets_recv; /* all interfaces but lo */
} net_metrics;

/* proc_root NULL = "/proc". */
void metrics_init(metrics_state *st, const char *proc_root);
void metrics_release(metrics_state *st);

/* CPU use since the previous call (the first call: since boot). Fills *out (release with
 * metrics_cpu_release). */
int metrics_cpu(metrics_state *st, cpu_metrics *out, mt_error **err);
void metrics_cpu_release(cpu_metrics *m);

int metrics_memory(const metrics_state *st, mem_metrics *out, mt_error **err);
int metrics_disk(const char *path, disk_metrics *out, mt_error **err);
int metrics_network(const metrics_state *st, net_metrics *out, mt_error **err);
/* Seconds since boot. */
int metrics_uptime(const metrics_state *st, uint64_t *out, mt_error **err);

/* The machine as the reference describes it (uname): system "Linux", release, version,
 * machine, processor ("" when unknown), hostname. Strings owned by the struct. */
typedef struct platform_info {
    char system[65], release[65], version[129], machine[65], processor[65], hostname[65];
} platform_info;
void metrics_platform(platform_info *out);

/* Logical CPUs and total memory, for the "System resources below recommended levels" check. */
int metrics_capacity(const metrics_state *st, int *cpus, uint64_t *mem_bytes, mt_error **err);

#endif
