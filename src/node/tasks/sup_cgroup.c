/* sup_cgroup.c - the cgroups of the daemonless drivers: detect, make a task's (the process
 * driver's limits), kill, remove; see sup_impl.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "mem.h"
#include "proc.h"
#include "strbuf.h"
#include "sup_impl.h"

static bool has_word(const char *list, const char *word, char sep)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, sep);
        size_t l = e ? (size_t)(e - p) : strlen(p);
        while (l && (p[l - 1] == '\n' || p[l - 1] == ' '))
            l--;
        if (l == wl && strncmp(p, word, wl) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

/* proc_mounts_each callback: note the cgroup hierarchies (the first of each kind). */
static bool cgroup_mount(const proc_mount *m, void *ctx)
{
    sup_cgroups *cg = ctx;
    if (strcmp(m->type, "cgroup") == 0) {
        if (has_word(m->opts, "memory", ',') && !cg->memory_v1)
            cg->memory_v1 = xstrdup(m->dir);
        if (has_word(m->opts, "pids", ',') && !cg->pids_v1)
            cg->pids_v1 = xstrdup(m->dir);
        if (has_word(m->opts, "cpu", ',') && !cg->cpu_v1)
            cg->cpu_v1 = xstrdup(m->dir);
    } else if (strcmp(m->type, "cgroup2") == 0 && !cg->v2) {
        cg->v2 = xstrdup(m->dir);
    }
    return true;
}

void sup_cgroups_detect(sup_cgroups *cg)
{
    memset(cg, 0, sizeof(*cg));
    proc_mounts_each(cgroup_mount, cg); /* unreadable: no cgroups, as if none were mounted */
    if (cg->v2) {
        cleanup_free char *ctl = fs_join(cg->v2, "cgroup.controllers");
        mt_error *e = NULL;
        cleanup_free char *text = fs_read_file(ctl, 4096, NULL, &e);
        mt_error_free(&e);
        if (text) {
            cg->v2_memory = has_word(text, "memory", ' ') && !cg->memory_v1;
            cg->v2_pids = has_word(text, "pids", ' ') && !cg->pids_v1;
            cg->v2_cpu = has_word(text, "cpu", ' ') && !cg->cpu_v1;
        }
    }
    if (cg->memory_v1) {
        cleanup_free char *sw = fs_join(cg->memory_v1, "memory.memsw.limit_in_bytes");
        cg->memsw = fs_exists(sw);
    }
}

void sup_cgroups_free(sup_cgroups *cg)
{
    free(cg->memory_v1);
    free(cg->pids_v1);
    free(cg->cpu_v1);
    free(cg->v2);
    memset(cg, 0, sizeof(*cg));
}

/* The folders a task's cgroup `rel` ("/manta/<name>") has in every hierarchy (owned strv). */
char **sup_cgroup_dirs(const sup_cgroups *cg, const char *rel)
{
    char **v = xcalloc(5, sizeof(char *));
    size_t n = 0;
    const char *mounts[] = {cg->memory_v1, cg->pids_v1, cg->cpu_v1, cg->v2};
    for (size_t i = 0; i < ARRAY_LEN(mounts); i++) {
        if (!mounts[i])
            continue;
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup = dup || (mounts[j] && strcmp(mounts[j], mounts[i]) == 0);
        if (!dup)
            v[n++] = xasprintf("%s%s", mounts[i], rel);
    }
    return v;
}

/* SIGKILL every process of cgroup folder `dir` (cgroup.procs). Returns how many were seen.
 * No allocation: the supervisor uses it. */
int sup_cgroup_kill(const char *dir)
{
    char path[4200], buf[8192];
    if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int count = 0;
    for (char *p = buf; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0) {
            kill((pid_t)pid, SIGKILL);
            count++;
        }
        p = end;
        while (*p == '\n')
            p++;
    }
    return count;
}

/* Kill what is left in a cgroup and remove its folder (bounded wait). */
void sup_cgroup_destroy(const char *dir)
{
    for (int i = 0; i < 100; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        sup_cgroup_kill(dir);
        sup_sleep_ms(20);
    }
}

/* The file holding the OOM-kill counter of cgroup `rel`, NULL when no memory controller. */
char *sup_oom_file(const sup_cgroups *cg, const char *rel)
{
    if (cg->memory_v1)
        return xasprintf("%s%s/memory.oom_control", cg->memory_v1, rel);
    if (cg->v2 && cg->v2_memory)
        return xasprintf("%s%s/memory.events", cg->v2, rel);
    return NULL;
}

/* ---- a task's cgroups (the process driver) ------------------------------------------------- */

#define CPU_PERIOD_US 100000

static int mkdir_cg(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return errno;
}

/* Create the process driver's cgroups for a task and fill pl->procs/cgdirs/oom. Problems are
 * not fatal: pl->warning says which limits are not enforced. */
void sup_plan_cgroups(const sup_driver *d, json_t *t, struct plan *pl)
{
    uint64_t mem = (uint64_t)sup_jint(t, "memory_bytes");
    int64_t pids = sup_jint(t, "pids_limit");
    double cpus = json_number_value(json_object_get(t, "cpus"));
    const char *rel = sup_jstr(t, "cgroup");
    if ((!mem && pids <= 0 && cpus <= 0) || !rel)
        return;
    const sup_cgroups *cg = &d->cg;
    strbuf missing = STRBUF_INIT;
    cleanup_free char *v2dir = NULL;
    if (cg->v2 &&
        ((mem && cg->v2_memory) || (pids > 0 && cg->v2_pids) || (cpus > 0 && cg->v2_cpu))) {
        cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->v2);
        cleanup_free char *root_ctl = fs_join(cg->v2, "cgroup.subtree_control");
        cleanup_free char *top_ctl = fs_join(top, "cgroup.subtree_control");
        mkdir_cg(top);
        const char *ctls[] = {"+memory", "+pids", "+cpu"};
        for (size_t i = 0; i < ARRAY_LEN(ctls); i++) {
            sup_write_text(root_ctl, ctls[i]);
            sup_write_text(top_ctl, ctls[i]);
        }
        v2dir = xasprintf("%s%s", cg->v2, rel);
        if (mkdir_cg(v2dir) == 0) {
            pl->cgdirs[pl->ncgdirs++] = xstrdup(v2dir);
            pl->procs[pl->nprocs++] = fs_join(v2dir, "cgroup.procs");
        } else {
            free(v2dir);
            v2dir = NULL;
        }
    }
    char num[64];
    /* memory */
    if (mem) {
        int ok = 0;
        if (cg->memory_v1) {
            cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->memory_v1);
            cleanup_free char *dir = xasprintf("%s%s", cg->memory_v1, rel);
            cleanup_free char *lim = fs_join(dir, "memory.limit_in_bytes");
            cleanup_free char *sw = fs_join(dir, "memory.memsw.limit_in_bytes");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)mem);
            if (mkdir_cg(top) == 0 && mkdir_cg(dir) == 0 && sup_write_text(lim, num) == 0) {
                if (cg->memsw)
                    sup_write_text(sw, num);
                pl->cgdirs[pl->ncgdirs++] = xstrdup(dir);
                pl->procs[pl->nprocs++] = fs_join(dir, "cgroup.procs");
                pl->oom = fs_join(dir, "memory.oom_control");
                ok = 1;
            }
        } else if (v2dir && cg->v2_memory) {
            cleanup_free char *lim = fs_join(v2dir, "memory.max");
            cleanup_free char *sw = fs_join(v2dir, "memory.swap.max");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)mem);
            if (sup_write_text(lim, num) == 0) {
                sup_write_text(sw, "0");
                pl->oom = fs_join(v2dir, "memory.events");
                ok = 1;
            }
        }
        if (!ok)
            sb_puts(&missing, "memory");
    }
    if (pids > 0) {
        int ok = 0;
        snprintf(num, sizeof(num), "%lld", (long long)pids);
        if (cg->pids_v1) {
            cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->pids_v1);
            cleanup_free char *dir = xasprintf("%s%s", cg->pids_v1, rel);
            cleanup_free char *lim = fs_join(dir, "pids.max");
            if (mkdir_cg(top) == 0 && mkdir_cg(dir) == 0 && sup_write_text(lim, num) == 0) {
                pl->cgdirs[pl->ncgdirs++] = xstrdup(dir);
                pl->procs[pl->nprocs++] = fs_join(dir, "cgroup.procs");
                ok = 1;
            }
        } else if (v2dir && cg->v2_pids) {
            cleanup_free char *lim = fs_join(v2dir, "pids.max");
            ok = sup_write_text(lim, num) == 0;
        }
        if (!ok)
            sb_puts(&missing, missing.len ? ", pids" : "pids");
    }
    if (cpus > 0) {
        int ok = 0;
        long long quota = (long long)(cpus * CPU_PERIOD_US);
        if (quota < 1000)
            quota = 1000;
        if (cg->cpu_v1) {
            cleanup_free char *top = xasprintf("%s" SUP_CGROUP_PARENT, cg->cpu_v1);
            cleanup_free char *dir = xasprintf("%s%s", cg->cpu_v1, rel);
            cleanup_free char *period = fs_join(dir, "cpu.cfs_period_us");
            cleanup_free char *q = fs_join(dir, "cpu.cfs_quota_us");
            char pnum[32];
            snprintf(pnum, sizeof(pnum), "%d", CPU_PERIOD_US);
            snprintf(num, sizeof(num), "%lld", quota);
            if (mkdir_cg(top) == 0 && mkdir_cg(dir) == 0 && sup_write_text(period, pnum) == 0 &&
                sup_write_text(q, num) == 0) {
                pl->cgdirs[pl->ncgdirs++] = xstrdup(dir);
                pl->procs[pl->nprocs++] = fs_join(dir, "cgroup.procs");
                ok = 1;
            }
        } else if (v2dir && cg->v2_cpu) {
            cleanup_free char *lim = fs_join(v2dir, "cpu.max");
            snprintf(num, sizeof(num), "%lld %d", quota, CPU_PERIOD_US);
            ok = sup_write_text(lim, num) == 0;
        }
        if (!ok)
            sb_puts(&missing, missing.len ? ", cpu" : "cpu");
    }
    if (missing.len)
        pl->warning = xasprintf("warning: the %s limit%s of this task %s not enforced (no "
                                "writable cgroup for %s)",
                                sb_str(&missing), strchr(sb_str(&missing), ',') ? "s" : "",
                                strchr(sb_str(&missing), ',') ? "are" : "is",
                                geteuid() == 0 ? "the controller" : "a non-root node");
    sb_free(&missing);
}
