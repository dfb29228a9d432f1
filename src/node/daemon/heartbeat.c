/* heartbeat.c - the heartbeat (the system summary) and the resource monitor, run by the loop. */
#include "heartbeat.h"

#include "fsutil.h"
#include "gpu.h"
#include "mem.h"
#include "wire.h"

#define TOPIC_SET_SYSTEM_SUMMARY "manager/set_system_summary"

/* Build SetSystemSummaryRequest{node_id, fresh MetricsSnapshot}; owned bytes or NULL. */
uint8_t *agent_system_summary(node *n, size_t *len)
{
    cpu_metrics c;
    mem_metrics m;
    mt_error *e = NULL;
    if (metrics_cpu(&n->metrics, &c, &e) < 0 || metrics_memory(&n->metrics, &m, &e) < 0) {
        log_warn(n->log, "metrics", "Cannot read metrics: %s", mt_error_msg(e));
        mt_error_free(&e);
        return NULL;
    }
    wire_metrics w;
    wire_metrics_fill(&w, &c, &m);
    metrics_cpu_release(&c);
    Common__Informations__SetSystemSummaryRequest req =
        COMMON__INFORMATIONS__SET_SYSTEM_SUMMARY_REQUEST__INIT;
    Common__System__PairId pid;
    wire_pair_id(&pid, n->id);
    req.node_id = &pid;
    req.metrics_snapshot = &w.snap;
    uint8_t *buf = wire_pack(&req.base, len);
    wire_metrics_release(&w);
    return buf;
}

void agent_heartbeat(node *n)
{
    if (!n->mqtt_up)
        return;
    size_t len;
    cleanup_free uint8_t *buf = agent_system_summary(n, &len);
    if (!buf)
        return;
    mt_error *e = NULL;
    if (mqtt_publish(n->mqtt, TOPIC_SET_SYSTEM_SUMMARY, buf, len, 0, false, NULL, &e) < 0) {
        log_warn(n->log, "mqtt", "Heartbeat not sent: %s", mt_error_msg(e));
        mt_error_free(&e);
        return;
    }
    n->heartbeats++;
    log_debug(n->log, "agent", "Heartbeat %llu sent", (unsigned long long)n->heartbeats);
}

/* Disk, network and GPUs: collected every resources.monitor_interval and logged (the wire's
 * MetricsSnapshot has no fields for them; `manta_node status` will show them). */
void agent_monitor(node *n, bool first)
{
    disk_metrics d;
    net_metrics nm;
    uint64_t up = 0;
    mt_error *e = NULL;
    const char *where = fs_exists(n->cfg.tasks.state_dir) ? n->cfg.tasks.state_dir : fs_home();
    if (metrics_disk(where, &d, &e) == 0)
        log_debug(n->log, "metrics", "Disk %s: %.1f%% used, %llu MiB free", where,
                  (double)d.percent_used, (unsigned long long)(d.free >> 20));
    mt_error_free(&e);
    if (metrics_network(&n->metrics, &nm, &e) == 0 && metrics_uptime(&n->metrics, &up, &e) == 0)
        log_debug(n->log, "metrics", "Network: %llu bytes sent, %llu received; uptime %llu s",
                  (unsigned long long)nm.bytes_sent, (unsigned long long)nm.bytes_recv,
                  (unsigned long long)up);
    mt_error_free(&e);
    if (n->cfg.containers.gpu_enabled == 0)
        return;
    gpu_report g;
    gpu_probe(NULL, &g);
    if (first || g.count != n->gpus) {
        if (g.count)
            log_info(n->log, "metrics", "%zu GPU(s): %s%s", g.count, g.devices[0].name,
                     g.count > 1 ? ", ..." : "");
        else
            log_info(n->log, "metrics", "%s", g.note);
    }
    for (size_t i = 0; i < g.count; i++)
        log_debug(n->log, "metrics", "GPU %zu %s: %.0f%% busy, %.1f%% memory, %.0f C, %d/%d W", i,
                  g.devices[i].name, (double)g.devices[i].usage_percent,
                  (double)g.devices[i].memory_percent_used, (double)g.devices[i].temperature,
                  g.devices[i].power_draw, g.devices[i].power_limit);
    n->gpus = g.count;
    gpu_report_release(&g);
}
