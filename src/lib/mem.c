/* mem.c - allocation wrappers and cleanup helpers; see mem.h. */
#include "mem.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(void)
{
    static const char msg[] = "manta: out of memory\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        oom();
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

void mem_free_ptr(void *pp)
{
    free(*(void **)pp);
}

void mem_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

void mem_fclose(void *fpp)
{
    FILE *f = *(FILE **)fpp;
    if (f)
        fclose(f);
}

void mem_free_strv(void *pp)
{
    char **v = *(char ***)pp;
    if (!v)
        return;
    for (char **s = v; *s; s++)
        free(*s);
    free(v);
}

void mem_closedir(void *dpp)
{
    DIR *d = *(DIR **)dpp;
    if (d)
        closedir(d);
}
