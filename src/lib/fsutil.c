/* fsutil.c - files and paths; see fsutil.h. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

const char *fs_kind(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return "a regular file";
    case S_IFDIR:
        return "a directory";
    case S_IFIFO:
        return "a FIFO (named pipe)";
    case S_IFSOCK:
        return "a socket";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFLNK:
        return "a symbolic link";
    default:
        return "not a regular file";
    }
}

int fs_open_regular(const char *path, int flags, struct stat *st, mt_error **err)
{
    struct stat local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    /* A first look by name: a device is not even opened (opening some has side effects). The
     * check that counts is the fstat below, on what was actually opened. */
    struct stat pre;
    int pr = (flags & O_NOFOLLOW) ? lstat(path, &pre) : stat(path, &pre);
    if (pr == 0 && !S_ISREG(pre.st_mode)) {
        *st = pre;
        return mt_error_set(err, MT_ERR_IO, "%s is %s, not a regular file", path,
                            fs_kind(pre.st_mode));
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP && (flags & O_NOFOLLOW)) {
            st->st_mode = S_IFLNK;
            mt_error_set(err, MT_ERR_IO, "%s is a symbolic link, which is not followed here", path);
            if (err && *err)
                (*err)->errnum = e;
            return -1;
        }
        return mt_error_sys(err, e, "cannot open %s", path);
    }
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return mt_error_sys(err, e, "cannot stat %s", path);
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return mt_error_set(err, MT_ERR_IO, "%s is %s, not a regular file", path,
                            fs_kind(st->st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return mt_error_sys(err, e, "cannot set up %s for reading", path);
    }
    return fd;
}

char *fs_read_file(const char *path, size_t max_bytes, size_t *len_out, mt_error **err)
{
    cleanup_close int fd = fs_open_regular(path, 0, NULL, err);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    cleanup_free char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mt_error_sys(err, errno, "cannot read %s", path), NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max_bytes)
            return mt_error_set(err, MT_ERR_IO, "%s is larger than %zu bytes", path, max_bytes),
                   NULL;
    }
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return steal_ptr(buf);
}

static int fsync_dir_of(const char *path)
{
    cleanup_free char *copy = xstrdup(path);
    cleanup_close int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    return fsync(dfd);
}

size_t fs_remove_stale_tmp(const char *dir)
{
    size_t removed = 0;
    cleanup_dir DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        const char *t = strstr(de->d_name, ".tmp.");
        if (!t || t == de->d_name)
            continue;
        char *end = NULL;
        errno = 0;
        long pid = strtol(t + 5, &end, 10);
        if (errno || end == t + 5 || *end || pid <= 0 || pid > INT_MAX)
            continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* its writer may still be at work */
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    }
    return removed;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, mt_error **err)
{
    cleanup_free char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return mt_error_sys(err, errno, "cannot create %s", tmp);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return mt_error_sys(err, e, "cannot write %s", tmp);
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return mt_error_sys(err, e, "cannot sync %s", tmp);
    }
    if (close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return mt_error_sys(err, e, "cannot close %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return mt_error_sys(err, e, "cannot rename %s to %s", tmp, path);
    }
    fsync_dir_of(path);
    return 0;
}

int fs_mkdir_p(const char *path, mode_t mode, mt_error **err)
{
    cleanup_free char *p = xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return mt_error_sys(err, errno, "cannot create directory %s", p);
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return mt_error_sys(err, errno, "cannot create directory %s", p);
    if (!fs_is_dir(p))
        return mt_error_set(err, MT_ERR_IO, "%s exists and is not a directory", p);
    return 0;
}

int fs_mkdir_parent(const char *path, mode_t mode, mt_error **err)
{
    cleanup_free char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
        return 0;
    return fs_mkdir_p(dir, mode, err);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0; /* unlink, or rmdir for a folder */
}

int fs_rmtree(const char *path, bool one_fs, mt_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : mt_error_sys(err, errno, "cannot remove %s", path);
    if (!S_ISDIR(st.st_mode))
        return unlink(path) < 0 ? mt_error_sys(err, errno, "cannot remove %s", path) : 0;
    /* depth first (a folder after its contents); FTW_PHYS: a link is removed, not followed */
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | (one_fs ? FTW_MOUNT : 0)) != 0)
        return mt_error_sys(err, errno, "cannot remove %s", path);
    return 0;
}

const char *fs_base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

bool fs_name_ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

bool fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *fs_home(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return h;
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_dir)
        return pw->pw_dir;
    return "/";
}

char *fs_expand_tilde(const char *path)
{
    if (path[0] == '~' && (path[1] == '\0' || path[1] == '/'))
        return xasprintf("%s%s", fs_home(), path + 1);
    return xstrdup(path);
}

char *fs_display_path(const char *path)
{
    const char *home = fs_home();
    size_t hl = strlen(home);
    while (hl > 1 && home[hl - 1] == '/')
        hl--;
    if (hl > 1 && strncmp(path, home, hl) == 0 && (path[hl] == '/' || path[hl] == '\0'))
        return xasprintf("~%s", path + hl);
    return xstrdup(path);
}

char *fs_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    if (la && a[la - 1] == '/')
        return xasprintf("%s%s", a, b[0] == '/' ? b + 1 : b);
    return xasprintf("%s/%s", a, b[0] == '/' ? b + 1 : b);
}
