/* datasets.h - the node's local datasets ([datasets] mappings): validation at start and the
 * overviews reported to the manager, with the reference's name/description/dtype rules
 * (reference-node.md section 11). */
#ifndef MANTA_DATASETS_H
#define MANTA_DATASETS_H

#include <stdbool.h>
#include <stddef.h>

#include "node_config.h"
#include "err.h"

typedef struct dataset {
    char *key;  /* the mapping's name: what tasks ask for */
    char *path; /* absolute */
    bool is_dir;
    char *name;        /* overview name: the file's stem or the folder's name */
    char *description; /* "File in <file name>" / "Folder in <folder name>" */
    const char *dtype; /* "text", "csv", "numpy", "image", "binary" or "folder" (static) */
} dataset;

typedef struct dataset_set {
    size_t len;
    dataset *items; /* owned, mapping order */
} dataset_set;

/* Scan every mapping: each path must exist, be a regular file or a folder, and be readable.
 * On failure *err lists every bad dataset, one per line ("Dataset 'x' path does not exist:
 * /p"). */
int datasets_scan(const cfg_map *mappings, dataset_set *out, mt_error **err);
void datasets_release(dataset_set *s);

/* dtype of a file name by its lower-cased suffix (the reference's table). */
const char *datasets_dtype(const char *filename);

/* Find by mapping name; NULL if unknown. Borrowed. */
const dataset *datasets_find(const dataset_set *s, const char *key);

#endif
