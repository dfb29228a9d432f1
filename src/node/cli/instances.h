/* instances.h - running nodes on this machine: one JSON file per instance in
 * ~/.manta/nodes/instances/<instance_id>.json (the reference's fields plus the process start
 * time, so a recycled PID is never taken for a node), written atomically; and one lock per
 * alias (flock, held for the node's life) so two nodes with the same alias - and so the same
 * node ID - cannot run at once. */
#ifndef MANTA_INSTANCES_H
#define MANTA_INSTANCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"

typedef struct instance {
    char *instance_id; /* "<config>-<8 hex>" */
    char *alias;
    char *config_name;
    pid_t pid;
    unsigned long long proc_start; /* start time of pid (proc_start_time) */
    char *start_time;              /* local ISO 8601 */
    char *status;                  /* "running" */
    char *manager_host;
    long manager_port;
    char *log_file;
    char *node_id;   /* xid (for finding its tasks) */
    char *state_dir; /* tasks.state_dir */
    char *path;      /* the instance file */
} instance;

/* A new id "<config>-<8 random hex>". Returns owned. */
char *instance_new_id(const char *config_name);

/* Write in->path (computed from instance_id if NULL) atomically. */
int instance_write(instance *in, mt_error **err);
int instance_read(const char *path, instance *out, mt_error **err);
void instance_release(instance *in);
void instances_release(instance *v, size_t n);

/* The process recorded is alive and is the one that wrote the file (same start time). */
bool instance_alive(const instance *in);

/* Every live instance, sorted by alias; files of dead or unreadable instances are removed.
 * Returns the count; *out owned (instances_release). */
size_t instances_live(instance **out);

/* Take the alias lock (non-blocking). Returns the lock fd (keep it open while running), or -1
 * with *holder set to the PID holding it (0 if unknown) and *err. */
int instance_lock_alias(const char *alias, pid_t *holder, mt_error **err);

/* Stop one instance: SIGTERM, wait up to timeout_s for it to go, then SIGKILL (force: SIGKILL at
 * once). Progress lines as the reference prints them go to `out` (NULL = quiet). Removes the
 * instance file once the process is gone. Returns 0 if the process is gone. */
int instance_stop(instance *in, bool force, int timeout_s, FILE *out);

/* The same with SIGUSR2: the node stops but leaves its tasks running, for the next node with
 * the same configuration to adopt (an agent upgrade). */
int instance_stop_keep_tasks(instance *in, int timeout_s, FILE *out);

/* The tasks of a running instance, from its persisted task states: keys "<swarm>-<task>" and
 * a short state ("running 12s", "queued", ...). Returns the count; owned NULL-terminated
 * arrays. */
size_t instance_tasks(const instance *in, char ***keys, char ***states);

#endif
