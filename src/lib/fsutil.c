/* fsutil.c - files and paths; see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

char *fs_read_file(const char *path, size_t max_bytes, size_t *len_out, mt_error **err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mt_error_sys(err, errno, "cannot open %s", path), NULL;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mt_error_sys(err, errno, "cannot stat %s", path), NULL;
    if (S_ISDIR(st.st_mode))
        return mt_error_set(err, MT_ERR_IO, "%s is a directory, not a file", path), NULL;
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
