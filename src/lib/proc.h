/* proc.h - what the project reads from /proc: a process's stat and status files and the mount
 * table. Linux only. */
#ifndef MANTA_PROC_H
#define MANTA_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The fields of /proc/PID/stat the project uses. */
typedef struct proc_stat {
    char state;               /* field 3: R, S, D, Z, T, ... */
    unsigned long long utime; /* field 14: CPU time in user mode, clock ticks */
    unsigned long long stime; /* field 15: CPU time in kernel mode, clock ticks */
    unsigned long long start; /* field 22: start time, clock ticks after boot; with the pid it
                               * names one process, as pids are reused */
} proc_stat;

/* Parse the text of a /proc/PID/stat file (borrowed; the command name in parentheses may hold
 * spaces and parentheses). Fills *out and returns true, or returns false if the text has no
 * field 22. */
bool proc_stat_parse(const char *text, proc_stat *out);

/* Read /proc/<pid>/stat into *out. Allocates nothing and takes no lock (a stack buffer): the
 * task supervisor, a forked process of a threaded program, uses it. Returns false if there is
 * no such process (or its stat cannot be read). */
bool proc_stat_read(pid_t pid, proc_stat *out);

/* The start time of pid (field 22 of its stat), 0 if there is no such process. */
unsigned long long proc_start_time(pid_t pid);

/* The value of `key` in /proc/<pid>/status (key without the colon: "VmRSS", "SigCgt"): the text
 * after "key:", leading blanks and the newline removed, copied into out (size bytes, cut to
 * fit, NUL-terminated). Returns false if there is no such process or no such line. */
bool proc_status_field(pid_t pid, const char *key, char *out, size_t size);

/* One line of /proc/self/mounts. The strings are borrowed for the callback's duration; octal
 * escapes (\040 for a space) are kept as the kernel writes them. */
typedef struct proc_mount {
    const char *dev;  /* the mounted device or source ("overlay", "/dev/sda1") */
    const char *dir;  /* where it is mounted */
    const char *type; /* the file system type ("ext4", "cgroup2", "overlay") */
    const char *opts; /* the mount options, comma-separated */
} proc_mount;

/* Call fn(m, ctx) for each mount of this process's mount namespace, in table order, until fn
 * returns false (stop). Lines with fewer than four fields are skipped. Returns false if
 * /proc/self/mounts cannot be read. */
bool proc_mounts_each(bool (*fn)(const proc_mount *m, void *ctx), void *ctx);

#endif
