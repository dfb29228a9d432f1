/* paths.h - where manta-node keeps its files. Everything lives under the manta home, which is
 * $MANTA_HOME if set, else ~/.manta. All functions return owned strings. */
#ifndef MANTA_PATHS_H
#define MANTA_PATHS_H

char *paths_home(void);                    /* ~/.manta */
char *paths_nodes_dir(void);               /* ~/.manta/nodes */
char *paths_config_file(const char *name); /* ~/.manta/nodes/<name>.toml */
char *paths_instances_dir(void);           /* ~/.manta/nodes/instances */
char *paths_node_logs_dir(void);           /* ~/.manta/logs/nodes */

#endif
