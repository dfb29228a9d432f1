/* images.h - the local image store of the runc runtime.
 *
 * Image store (images.c). Under containers.image_store (default ~/.manta/images):
 *   <store>/<dir>/rootfs/      the image's root filesystem (the read-only lower layer of every
 *                              task's overlay)
 *   <store>/<dir>/image.json   {"name", "created" (ISO 8601 UTC), "size" (bytes), "source"}
 * <dir> is the image name with every byte outside [A-Za-z0-9._-] written as %XX
 * ("manta-task:bookworm" -> "manta-task%3Abookworm"), so distinct names never share a folder.
 * A name without a tag or digest means ":latest", as with Docker. Imports are built in a
 * temporary folder inside the store (".import-*", ignored by listings) and renamed into place,
 * so a store never shows a half-imported image. An image is "in use" while an overlay mount
 * has its rootfs as lower layer (a created or running task); removing or replacing it is
 * refused then.
 */
#ifndef MANTA_IMAGES_H
#define MANTA_IMAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "runtime.h"

/* ---- image store ---------------------------------------------------------------------------- */

typedef struct image_info {
    char *name;    /* "manta-task:bookworm" */
    char *path;    /* <store>/<dir> */
    char *rootfs;  /* <store>/<dir>/rootfs */
    char *created; /* ISO 8601 UTC, "" if unknown */
    uint64_t size; /* bytes of files and symlinks */
    char *source;  /* what it was imported from, "" if unknown */
} image_info;

void image_info_free(image_info *img);
void images_list_free(image_info *v, size_t n);

/* A valid image name: 1..255 characters from [A-Za-z0-9._/:@-], starting with a letter or
 * digit, no "..", no "//". */
bool images_name_valid(const char *name);

/* "name" -> "name:latest" when it has neither tag nor digest; other names copied. Owned. */
char *images_normalize(const char *name);

/* The store's folder name for a (normalized) image name. Owned. */
char *images_dir_name(const char *name);

/* Import a root filesystem folder (or an OCI bundle folder: its rootfs/) or a tar archive
 * (any compression tar detects) as image `name`. An existing image is an MT_ERR_EXISTS error
 * unless `force` (then it is replaced, unless in use). `out` (may be NULL) receives the
 * image. */
int images_import(const char *store, const char *name, const char *source, bool force,
                  image_info *out, mt_error **err);

/* The images of the store sorted by name (a missing store has none). */
int images_list(const char *store, image_info **out, size_t *n, mt_error **err);

/* The image `name` (normalized here); MT_ERR_NOTFOUND with a hint when it is missing. */
int images_lookup(const char *store, const char *name, image_info *out, mt_error **err);

/* Remove image `name`: MT_ERR_NOTFOUND if missing, MT_ERR_GENERIC if in use. */
int images_remove(const char *store, const char *name, mt_error **err);

/* Number of overlay mounts (in this mount namespace) using `rootfs` as a lower layer. */
int images_in_use(const char *rootfs);

/* Run argv (argv[0] looked up in PATH) with stdin from /dev/null, its stdout and stderr
 * captured (at most 64 KiB kept, the newest) into *out (owned, may be NULL) and killed after
 * timeout_s seconds (0 = no limit). Returns the wait status, or -1 with *err when it could not
 * run or timed out. */
int images_run(char *const *argv, int timeout_s, char **out, mt_error **err);

#endif
