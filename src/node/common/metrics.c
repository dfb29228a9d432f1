/* metrics.c - /proc based metrics; see metrics.h. */
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fsutil.h"
#include "mem.h"

/* The files read at every heartbeat, kept open: one pread each instead of stat, open, fstat,
 * fcntl, read, read, close (procfs generates the text again at each read from offset 0). */
struct metrics_fds {
    int stat, meminfo; /* -1 until opened */
    size_t cap;        /* read buffer size that held the whole text last time */
};

void metrics_init(metrics_state *st, const char *proc_root)
{
    memset(st, 0, sizeof(*st));
    st->proc_root = xstrdup(proc_root ? proc_root : "/proc");
    if (strcmp(st->proc_root, "/proc") == 0) {
        st->fds = xcalloc(1, sizeof(*st->fds));
        st->fds->stat = st->fds->meminfo = -1;
        st->fds->cap = 8192;
    }
}

void metrics_release(metrics_state *st)
{
    if (st->fds) {
        if (st->fds->stat >= 0)
            close(st->fds->stat);
        if (st->fds->meminfo >= 0)
            close(st->fds->meminfo);
        free(st->fds);
    }
    free(st->proc_root);
    free(st->prev_cpu);
    memset(st, 0, sizeof(*st));
}

/* The whole text of a kept /proc file in one pread (a read that fills the buffer is done
 * again with a larger one). NULL if it cannot be read this way. */
static char *pread_whole(struct metrics_fds *f, int *fd, const char *path)
{
    if (*fd < 0)
        *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return NULL;
    while (f->cap <= (4u << 20)) {
        char *buf = xmalloc(f->cap);
        ssize_t r;
        while ((r = pread(*fd, buf, f->cap - 1, 0)) < 0 && errno == EINTR)
            ;
        if (r < 0) {
            free(buf);
            close(*fd);
            *fd = -1;
            return NULL;
        }
        if ((size_t)r < f->cap - 1) {
            buf[r] = '\0';
            return buf;
        }
        free(buf);
        f->cap *= 2;
    }
    return NULL;
}

static char *read_proc(const metrics_state *st, const char *name, mt_error **err)
{
    cleanup_free char *path = fs_join(st->proc_root, name);
    if (st->fds) {
        int *fd = !strcmp(name, "stat")      ? &st->fds->stat
                  : !strcmp(name, "meminfo") ? &st->fds->meminfo
                                             : NULL;
        char *text = fd ? pread_whole(st->fds, fd, path) : NULL;
        if (text)
            return text;
    }
    return fs_read_file(path, 4u << 20, NULL, err);
}

static uint64_t times_total(const cpu_times *t)
{
    /* psutil: guest time is already included in user/nice. */
    return t->user + t->nice + t->system + t->idle + t->iowait + t->irq + t->softirq + t->steal;
}

static void times_sub(const cpu_times *a, const cpu_times *b, cpu_times *d)
{
#define SUB(f) d->f = a->f >= b->f ? a->f - b->f : 0
    SUB(user);
    SUB(nice);
    SUB(system);
    SUB(idle);
    SUB(iowait);
    SUB(irq);
    SUB(softirq);
    SUB(steal);
    SUB(guest);
    SUB(guest_nice);
#undef SUB
}

static float pct(uint64_t part, uint64_t total)
{
    if (!total)
        return 0.0f;
    double v = (double)part * 100.0 / (double)total;
    return (float)(v > 100.0 ? 100.0 : v);
}

static float round1(double v)
{
    return (float)(round(v * 10.0) / 10.0);
}

static bool parse_cpu_line(const char *line, cpu_times *t)
{
    unsigned long long v[10] = {0};
    const char *p = line;
    while (*p && !isspace((unsigned char)*p))
        p++;
    int n = sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    if (n < 4)
        return false;
    t->user = v[0]; /* includes guest time */
    t->nice = v[1]; /* includes guest_nice time */
    t->system = v[2];
    t->idle = v[3];
    t->iowait = v[4];
    t->irq = v[5];
    t->softirq = v[6];
    t->steal = v[7];
    t->guest = v[8];
    t->guest_nice = v[9];
    return true;
}

static int count_physical(const metrics_state *st)
{
    mt_error *e = NULL;
    cleanup_free char *info = read_proc(st, "cpuinfo", &e);
    if (!info) {
        mt_error_free(&e);
        return 0;
    }
    /* unique (physical id, core id) pairs */
    long pairs[1024][2];
    int n = 0;
    long phys = -1;
    for (char *line = strtok(info, "\n"); line; line = strtok(NULL, "\n")) {
        long v;
        if (sscanf(line, "physical id : %ld", &v) == 1) {
            phys = v;
        } else if (sscanf(line, "core id : %ld", &v) == 1) {
            bool seen = false;
            for (int i = 0; i < n; i++)
                if (pairs[i][0] == phys && pairs[i][1] == v)
                    seen = true;
            if (!seen && n < 1024) {
                pairs[n][0] = phys;
                pairs[n][1] = v;
                n++;
            }
        }
    }
    return n;
}

int metrics_cpu(metrics_state *st, cpu_metrics *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    cleanup_free char *stat = read_proc(st, "stat", err);
    if (!stat)
        return -1;
    cpu_times total = {0};
    cpu_times *per = NULL;
    int ncpu = 0;
    bool have_total = false;
    for (char *line = strtok(stat, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "cpu", 3) != 0)
            continue;
        cpu_times t;
        if (!parse_cpu_line(line, &t))
            continue;
        if (line[3] == ' ') {
            total = t;
            have_total = true;
        } else if (isdigit((unsigned char)line[3])) {
            per = xrealloc(per, (size_t)(ncpu + 1) * sizeof(*per));
            per[ncpu++] = t;
        }
    }
    if (!have_total || ncpu == 0) {
        free(per);
        return mt_error_set(err, MT_ERR_PARSE, "%s/stat has no cpu lines", st->proc_root);
    }
    cpu_times zero = {0};
    const cpu_times *base = st->have_prev ? &st->prev_total : &zero;
    cpu_times d;
    times_sub(&total, base, &d);
    uint64_t all = times_total(&d);
    if (all == 0) { /* two samples in the same tick: report the previous view as idle-free */
        out->usage_percent = 0;
    } else {
        out->usage_percent = round1(100.0 - (double)pct(d.idle + d.iowait, all));
    }
    out->user_percent = round1(pct(d.user >= d.guest ? d.user - d.guest : 0, all));
    out->system_percent = round1(pct(d.system, all));
    out->idle_percent = round1(pct(d.idle, all));
    out->count = ncpu;
    out->per_cpu = xcalloc((size_t)ncpu, sizeof(float));
    for (int i = 0; i < ncpu; i++) {
        const cpu_times *pb = (st->have_prev && i < st->prev_ncpu) ? &st->prev_cpu[i] : &zero;
        cpu_times dc;
        times_sub(&per[i], pb, &dc);
        uint64_t a = times_total(&dc);
        out->per_cpu[i] = a ? round1(100.0 - (double)pct(dc.idle + dc.iowait, a)) : 0.0f;
    }
    /* cpuinfo is long on big hosts and the count does not change: read it once, not at
     * every heartbeat */
    if (!st->physical)
        st->physical = count_physical(st);
    out->physical_count = st->physical;
    st->prev_total = total;
    free(st->prev_cpu);
    st->prev_cpu = per;
    st->prev_ncpu = ncpu;
    st->have_prev = true;
    return 0;
}

void metrics_cpu_release(cpu_metrics *m)
{
    free(m->per_cpu);
    m->per_cpu = NULL;
}

static bool meminfo_get(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            unsigned long long kb;
            if (sscanf(p + kl + 1, "%llu", &kb) == 1) {
                *out = (uint64_t)kb * 1024;
                return true;
            }
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

int metrics_memory(const metrics_state *st, mem_metrics *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    cleanup_free char *mi = read_proc(st, "meminfo", err);
    if (!mi)
        return -1;
    uint64_t buffers = 0, cached = 0, sreclaim = 0;
    if (!meminfo_get(mi, "MemTotal", &out->total) || !meminfo_get(mi, "MemFree", &out->free))
        return mt_error_set(err, MT_ERR_PARSE, "%s/meminfo lacks MemTotal or MemFree",
                            st->proc_root);
    meminfo_get(mi, "Buffers", &buffers);
    meminfo_get(mi, "Cached", &cached);
    meminfo_get(mi, "SReclaimable", &sreclaim);
    if (!meminfo_get(mi, "MemAvailable", &out->available))
        out->available = out->free + buffers + cached;
    /* psutil: used = total - free - buffers - cached (cached includes SReclaimable) */
    uint64_t cache_all = cached + sreclaim;
    uint64_t rest = out->free + buffers + cache_all;
    out->used = out->total > rest ? out->total - rest : out->total - out->free;
    out->percent_used =
        out->total ? round1((double)(out->total - out->available) * 100.0 / (double)out->total) : 0;
    meminfo_get(mi, "SwapTotal", &out->swap_total);
    meminfo_get(mi, "SwapFree", &out->swap_free);
    out->swap_used = out->swap_total > out->swap_free ? out->swap_total - out->swap_free : 0;
    out->swap_percent_used =
        out->swap_total ? round1((double)out->swap_used * 100.0 / (double)out->swap_total) : 0;
    return 0;
}

int metrics_disk(const char *path, disk_metrics *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    struct statvfs s;
    if (statvfs(path, &s) < 0)
        return mt_error_sys(err, errno, "cannot read disk usage of %s", path);
    out->total = (uint64_t)s.f_blocks * s.f_frsize;
    out->free = (uint64_t)s.f_bavail * s.f_frsize;
    uint64_t avail_all = (uint64_t)s.f_bfree * s.f_frsize;
    out->used = out->total - avail_all;
    uint64_t denom = out->used + out->free;
    out->percent_used = denom ? round1((double)out->used * 100.0 / (double)denom) : 0;
    return 0;
}

int metrics_network(const metrics_state *st, net_metrics *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    cleanup_free char *dev = read_proc(st, "net/dev", err);
    if (!dev)
        return -1;
    for (char *line = strtok(dev, "\n"); line; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *name = line;
        while (isspace((unsigned char)*name))
            name++;
        if (strcmp(name, "lo") == 0)
            continue;
        unsigned long long v[16];
        if (sscanf(colon + 1,
                   "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                   "%llu",
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                   &v[11], &v[12], &v[13], &v[14], &v[15]) != 16)
            continue;
        out->bytes_recv += v[0];
        out->packets_recv += v[1];
        out->bytes_sent += v[8];
        out->packets_sent += v[9];
    }
    return 0;
}

int metrics_uptime(const metrics_state *st, uint64_t *out, mt_error **err)
{
    cleanup_free char *up = read_proc(st, "uptime", err);
    if (!up)
        return -1;
    double s = 0;
    if (sscanf(up, "%lf", &s) != 1)
        return mt_error_set(err, MT_ERR_PARSE, "%s/uptime is malformed", st->proc_root);
    *out = (uint64_t)s;
    return 0;
}

void metrics_platform(platform_info *out)
{
    memset(out, 0, sizeof(*out));
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(out->system, sizeof(out->system), "%s", u.sysname);
        snprintf(out->release, sizeof(out->release), "%s", u.release);
        snprintf(out->version, sizeof(out->version), "%s", u.version);
        snprintf(out->machine, sizeof(out->machine), "%s", u.machine);
        snprintf(out->hostname, sizeof(out->hostname), "%s", u.nodename);
    }
    /* Python's platform.processor() on Linux is `uname -p`, "unknown" on Debian -> "". */
    out->processor[0] = '\0';
}

int metrics_capacity(const metrics_state *st, int *cpus, uint64_t *mem_bytes, mt_error **err)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *cpus = n > 0 ? (int)n : 1;
    mem_metrics m;
    if (metrics_memory(st, &m, err) < 0)
        return -1;
    *mem_bytes = m.total;
    return 0;
}
