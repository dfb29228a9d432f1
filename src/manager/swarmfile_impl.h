/* swarmfile_impl.h - what the swarm file loader's files share (swarmfile.c reads the file,
 * swarmfile_graph.c derives the graph from the tasks' `after` lists). Private. */
#ifndef MANTA_SWARMFILE_IMPL_H
#define MANTA_SWARMFILE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"
#include "swarmfile.h"

/* Largest file accepted for a global_files entry (pyz.c packs module files up to the same). */
#define SWARM_MAX_FILE ((size_t)1 << 30)
/* What one swarm file may ask for: tasks, entries of one list (specified_ids, excepted_ids,
 * datasets, after), list entries in the whole file, and bytes of all its globals together.
 * Every check below is O(n log n) or better in these, so a file at the limits loads in well
 * under a second. */
#define SWARM_MAX_TASKS        10000
#define SWARM_MAX_LIST         10000
#define SWARM_MAX_LIST_ENTRIES 200000
#define SWARM_MAX_GLOBAL_BYTES ((size_t)2 << 30)
/* Problems listed in one report; the rest are counted. */
#define SWARM_MAX_PROBLEMS_SHOWN 25

/* A string and its position, to sort and find duplicates in O(n log n). */
struct keyed {
    const char *key;
    size_t idx;
};

/* keys[0..n) sorted by (key, position): equal keys are adjacent, first occurrence first.
 * Owned. */
struct keyed *sf_keyed_sort(const char *const *keys, size_t n);
/* True if s is one of the keys of a sf_keyed_sort array. */
bool sf_keyed_has(const struct keyed *k, size_t n, const char *s);

/* What the loader keeps per task besides the definition. */
struct task_src {
    int line;     /* the [[tasks]] header (or inline table) */
    char *label;  /* "task 'worker'" / "task #3", for messages */
    char **after; /* aliases as written, NULL-terminated */
    int after_line;
    int ids_line; /* specified_ids, for the "nothing left" message */
};

struct loader {
    const char *fname; /* the path as given, for messages */
    const char *dir;   /* absolute folder of the swarm file */
    strbuf problems;
    size_t nproblems;
    size_t list_entries; /* list entries read so far (SWARM_MAX_LIST_ENTRIES) */
    size_t global_bytes; /* bytes of globals so far (SWARM_MAX_GLOBAL_BYTES) */
};

/* True while problems are still listed in full (callers skip costly suggestions after). */
bool sf_problems_room(const struct loader *ld);
/* One problem, with file:line (line <= 0: the file only). */
void sf_problemf(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Stage 2: what needs all tasks (duplicate aliases and module names, `after` references,
 * cycles); derives the edges and orders (swarmfile_graph.c). */
void sf_build_graph(struct loader *ld, swarm_def *def, struct task_src *srcs);

#endif
