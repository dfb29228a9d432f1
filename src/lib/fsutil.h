/* fsutil.h - files and paths: whole-file reads, crash-safe writes, mkdir -p, ~ handling. */
#ifndef MANTA_FSUTIL_H
#define MANTA_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "err.h"

/* Open a path from outside (a dataset, a configuration, a certificate, a token) for reading,
 * only if it is a regular file. The open itself never blocks: O_NONBLOCK keeps a FIFO without
 * a writer (or a device) from hanging the caller; the type is checked on the opened descriptor
 * (fstat), so a file swapped after a check cannot slip through. `flags` adds open flags (e.g.
 * O_NOFOLLOW to refuse a symbolic link as the last component); O_RDONLY, O_CLOEXEC and
 * O_NONBLOCK are implied, and O_NONBLOCK is cleared again on the returned descriptor.
 * Returns an owned descriptor, or -1 with *err: errnum is the open's errno, or 0 when the path
 * is not a regular file. *st (may be NULL) receives the file's status (st_mode 0 if the open
 * failed; S_IFLNK for a symbolic link refused because of O_NOFOLLOW). */
int fs_open_regular(const char *path, int flags, struct stat *st, mt_error **err);

/* What kind of file a mode describes, for messages: "a regular file", "a directory",
 * "a FIFO (named pipe)", "a socket", "a character device", "a block device",
 * "a symbolic link". Static. */
const char *fs_kind(mode_t mode);

/* Read a whole regular file (at most max_bytes; larger is an error; a FIFO, socket or device
 * is refused without blocking, see fs_open_regular). Returns owned, NUL-terminated contents and
 * sets *len_out (may be NULL), or NULL with *err. */
char *fs_read_file(const char *path, size_t max_bytes, size_t *len_out, mt_error **err);

/* Write data to path crash-safely: path.tmp.<pid>, fsync, rename, fsync the directory.
 * The file gets `mode` (e.g. 0600 for files holding a token). */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, mt_error **err);

/* Remove what fs_write_atomic left in dir when its process died mid-write: files named
 * "<name>.tmp.<pid>" whose process is gone. Returns how many were removed. */
size_t fs_remove_stale_tmp(const char *dir);

/* mkdir -p with the given mode for directories it creates. */
int fs_mkdir_p(const char *path, mode_t mode, mt_error **err);

/* mkdir -p of the directory holding the file `path` (nothing to do for "x" or "/x"). */
int fs_mkdir_parent(const char *path, mode_t mode, mt_error **err);

/* rm -rf: remove path and, for a folder, everything below it (symbolic links are removed, not
 * followed); a missing path is fine. With one_fs the walk stays on path's file system: what is
 * mounted below path is left alone, and removing the folder holding the mount point then fails
 * (never delete through a mount). */
int fs_rmtree(const char *path, bool one_fs, mt_error **err);

bool fs_exists(const char *path);
/* The last component of path (after its last '/'; path itself if none). Borrowed from path. */
const char *fs_base_name(const char *path);
/* true if the file name (or any string) s ends with suffix. */
bool fs_name_ends_with(const char *s, const char *suffix);
bool fs_is_dir(const char *path);

/* The user's home directory ($HOME, else the passwd entry). Borrowed, never NULL. */
const char *fs_home(void);

/* "~" or "~/x" -> home-based absolute path; other strings copied. Returns owned. */
char *fs_expand_tilde(const char *path);

/* Absolute path with the home directory shown as "~" (for messages). Returns owned. */
char *fs_display_path(const char *path);

/* Join two path components with one '/'. Returns owned. */
char *fs_join(const char *a, const char *b);

#endif
