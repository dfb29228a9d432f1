/* paths.c - where manta-node keeps its files; see paths.h. */
#include "paths.h"

#include <stdlib.h>

#include "fsutil.h"
#include "mem.h"

char *paths_home(void)
{
    const char *h = getenv("MANTA_HOME");
    if (h && *h)
        return fs_expand_tilde(h);
    return fs_join(fs_home(), ".manta");
}

static char *under_home(const char *rel)
{
    cleanup_free char *home = paths_home();
    return fs_join(home, rel);
}

char *paths_nodes_dir(void)
{
    return under_home("nodes");
}

char *paths_config_file(const char *name)
{
    cleanup_free char *dir = paths_nodes_dir();
    cleanup_free char *file = xasprintf("%s.toml", name);
    return fs_join(dir, file);
}

char *paths_instances_dir(void)
{
    return under_home("nodes/instances");
}

char *paths_node_logs_dir(void)
{
    return under_home("logs/nodes");
}
