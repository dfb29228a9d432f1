/* sup_cgroup.c - the cgroups of the daemonless drivers: detect, kill, remove; see sup_impl.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "mem.h"
#include "proc.h"
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
