/* proc.c - reading /proc; see proc.h. */
#include "proc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"

bool proc_stat_parse(const char *text, proc_stat *out)
{
    /* the command name (field 2) may hold ") ": the last ')' ends it */
    const char *p = text ? strrchr(text, ')') : NULL;
    if (!p || p[1] != ' ' || !p[2])
        return false;
    proc_stat st = {.state = p[2]};
    p += 2;                                     /* field 3 */
    for (int field = 4; field <= 22; field++) { /* fields are separated by one space */
        p = strchr(p, ' ');
        if (!p)
            return false;
        p++; /* the start of `field` */
        if (field == 14)
            st.utime = strtoull(p, NULL, 10);
        else if (field == 15)
            st.stime = strtoull(p, NULL, 10);
    }
    if (!isdigit((unsigned char)*p))
        return false;
    st.start = strtoull(p, NULL, 10);
    *out = st;
    return true;
}

bool proc_stat_read(pid_t pid, proc_stat *out)
{
    char path[64], buf[4096]; /* a stat line is about 300 bytes; no allocation, see proc.h */
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len > 0 && proc_stat_parse(buf, out);
}

unsigned long long proc_start_time(pid_t pid)
{
    proc_stat st;
    return proc_stat_read(pid, &st) ? st.start : 0;
}

bool proc_status_field(pid_t pid, const char *key, char *out, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    cleanup_fclose FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t kl = strlen(key);
    cleanup_free char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, key, kl) != 0 || line[kl] != ':')
            continue;
        const char *v = line + kl + 1;
        v += strspn(v, " \t");
        if (size)
            snprintf(out, size, "%.*s", (int)strcspn(v, "\n"), v);
        return true;
    }
    return false;
}

bool proc_mounts_each(bool (*fn)(const proc_mount *m, void *ctx), void *ctx)
{
    cleanup_fclose FILE *f = fopen("/proc/self/mounts", "re");
    if (!f)
        return false;
    cleanup_free char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        /* fields are blank-separated; a blank inside one is escaped (\040) */
        static const char blanks[] = " \t\n";
        char *save = NULL;
        proc_mount m = {.dev = strtok_r(line, blanks, &save)};
        m.dir = m.dev ? strtok_r(NULL, blanks, &save) : NULL;
        m.type = m.dir ? strtok_r(NULL, blanks, &save) : NULL;
        m.opts = m.type ? strtok_r(NULL, blanks, &save) : NULL;
        if (!m.opts)
            continue;
        if (!fn(&m, ctx))
            break;
    }
    return true;
}
