/* cli.c - helpers shared by the command files; see cli.h. */
#include "cli.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_config.h"
#include "fsutil.h"
#include "mem.h"
#include "paths.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_error_e(const mt_error *e, const char *prefix, ...)
{
    va_list ap;
    va_start(ap, prefix);
    cleanup_free char *p = xvasprintf(prefix, ap);
    va_end(ap);
    const char *msg = mt_error_msg(e);
    if (strchr(msg, '\n')) {
        fprintf(stderr, "Error: %s:\n", p);
        const char *s = msg;
        while (*s) {
            const char *nl = strchr(s, '\n');
            size_t n = nl ? (size_t)(nl - s) : strlen(s);
            fprintf(stderr, "  - %.*s\n", (int)n, s);
            s += n + (nl ? 1 : 0);
        }
    } else {
        fprintf(stderr, "Error: %s: %s\n", p, msg);
    }
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "Run 'manta_node %s --help' for usage.\n", cmd);
    return EXIT_USAGE;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **cli_config_names(void)
{
    cleanup_free char *dir = paths_nodes_dir();
    size_t n = 0;
    char **names = xcalloc(1, sizeof(char *));
    cleanup_dir DIR *d = opendir(dir);
    if (!d)
        return names;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 5 || strcmp(de->d_name + l - 5, ".toml") != 0 || de->d_name[0] == '.')
            continue;
        names = xrealloc(names, (n + 2) * sizeof(char *));
        names[n++] = xstrndup(de->d_name, l - 5);
        names[n] = NULL;
    }
    qsort(names, n, sizeof(char *), cmp_str);
    return names;
}

void cli_list_configs(void)
{
    cleanup_strv char **names = cli_config_names();
    if (!names[0]) {
        fprintf(stderr, "No configurations exist yet.\n");
        return;
    }
    fprintf(stderr, "Available configurations:\n");
    for (char **n = names; *n; n++)
        fprintf(stderr, "  - %s\n", *n);
}

void cli_config_not_found(const char *name)
{
    cleanup_free char *path = paths_config_file(name);
    cleanup_free char *shown = fs_display_path(path);
    cli_error("Configuration '%s' not found at %s", name, shown);
    cli_list_configs();
    fprintf(stderr, "\nCreate a new configuration with:\n  manta_node config init\n");
}
