/* images.c - the local image store of the runc runtime; see images.h. */
#include "images.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "mem.h"
#include "proc.h"
#include "strbuf.h"

#define IMAGE_JSON    "image.json"
#define RUN_KEEP      (64 * 1024)
#define NAME_MAX_LEN  255
#define IMPORT_PREFIX ".import-"
#define REMOVE_PREFIX ".remove-"

extern char **environ;

void image_info_free(image_info *img)
{
    if (!img)
        return;
    free(img->name);
    free(img->path);
    free(img->rootfs);
    free(img->created);
    free(img->source);
    memset(img, 0, sizeof(*img));
}

void images_list_free(image_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        image_info_free(&v[i]);
    free(v);
}

/* ---- names ---------------------------------------------------------------------------------- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool images_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > NAME_MAX_LEN || !is_alnum(name[0]))
        return false;
    for (const char *p = name; *p; p++)
        if (!is_alnum(*p) && !strchr("._/:@-", *p))
            return false;
    return !strstr(name, "..") && !strstr(name, "//") && name[len - 1] != '/' &&
           name[len - 1] != ':';
}

char *images_normalize(const char *name)
{
    if (strchr(name, '@'))
        return xstrdup(name);
    const char *slash = strrchr(name, '/');
    if (strchr(slash ? slash : name, ':'))
        return xstrdup(name);
    return xasprintf("%s:latest", name);
}

char *images_dir_name(const char *name)
{
    strbuf sb = STRBUF_INIT;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (is_alnum((char)*p) || *p == '.' || *p == '_' || *p == '-')
            sb_putc(&sb, (char)*p);
        else
            sb_printf(&sb, "%%%02X", *p);
    }
    return sb_steal(&sb);
}

/* ---- running tools ------------------------------------------------------------------------- */

int images_run(char *const *argv, int timeout_s, char **out, mt_error **err)
{
    if (out)
        *out = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return mt_error_sys(err, errno, "cannot create a pipe");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return mt_error_sys(err, rc, "cannot run %s", argv[0]);
    }
    strbuf sb = STRBUF_INIT;
    int64_t deadline = timeout_s > 0 ? clock_mono_ms() + (int64_t)timeout_s * 1000 : 0;
    bool timed_out = false;
    for (;;) {
        int wait_ms = 1000;
        if (deadline) {
            int64_t left = deadline - clock_mono_ms();
            if (left <= 0) {
                timed_out = true;
                break;
            }
            wait_ms = left < 1000 ? (int)left : 1000;
        }
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int n = poll(&pfd, 1, wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        char buf[8192];
        ssize_t r = read(p[0], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        sb_append(&sb, buf, (size_t)r);
        if (sb.len > 2 * RUN_KEEP) { /* keep the newest part */
            memmove(sb.buf, sb.buf + sb.len - RUN_KEEP, RUN_KEEP);
            sb.len = RUN_KEEP;
            sb.buf[sb.len] = '\0';
        }
    }
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        sb_free(&sb);
        return mt_error_set(err, MT_ERR_IO, "%s did not finish within %d s and was killed", argv[0],
                            timeout_s);
    }
    if (out)
        *out = sb_steal(&sb);
    sb_free(&sb);
    return status;
}

/* The first line of a tool's output that says something (tar ends with a generic "Exiting
 * with failure status" line), for messages. Owned. */
static char *first_line(const char *text)
{
    for (const char *p = text ? text : ""; *p;) {
        size_t n = strcspn(p, "\n");
        if (n && !strstr(p, "Exiting with failure status"))
            return xstrndup(p, n);
        p += n + (p[n] ? 1 : 0);
    }
    return xstrdup("");
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* Apparent size of the files and symlinks under the folder open as `dfd` (closed here), not
 * crossing into other file systems. */
static uint64_t tree_size_fd(int dfd, dev_t dev, int depth)
{
    cleanup_dir DIR *d = fdopendir(dfd); /* takes dfd */
    if (!d) {
        close(dfd);
        return 0;
    }
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
            total += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode) && st.st_dev == dev && depth < 256) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                total += tree_size_fd(sub, dev, depth + 1);
        }
    }
    return total;
}

static uint64_t tree_size(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return 0;
    }
    return tree_size_fd(fd, st.st_dev, 0);
}

static const char *json_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Read <dir>/image.json into out; a missing or bad file still gives an entry named after the
 * folder (so `image list` shows and `image rm` can remove a damaged image). */
static void read_image(const char *store, const char *dirname, image_info *out)
{
    memset(out, 0, sizeof(*out));
    out->path = fs_join(store, dirname);
    out->rootfs = fs_join(out->path, "rootfs");
    cleanup_free char *meta = fs_join(out->path, IMAGE_JSON);
    cleanup_json json_t *j = json_load_file(meta, 0, NULL);
    if (j && json_is_object(j)) {
        out->name = xstrdup(json_str(j, "name"));
        out->created = xstrdup(json_str(j, "created"));
        out->source = xstrdup(json_str(j, "source"));
        json_int_t sz = json_integer_value(json_object_get(j, "size"));
        out->size = sz > 0 ? (uint64_t)sz : 0;
    }
    if (!out->name || !*out->name) {
        /* decode %XX back for display */
        strbuf sb = STRBUF_INIT;
        for (const char *p = dirname; *p; p++) {
            unsigned v;
            if (p[0] == '%' && p[1] && p[2] && sscanf(p + 1, "%2X", &v) == 1) {
                sb_putc(&sb, (char)v);
                p += 2;
            } else {
                sb_putc(&sb, *p);
            }
        }
        free(out->name);
        out->name = sb_steal(&sb);
    }
    if (!out->created)
        out->created = xstrdup("");
    if (!out->source)
        out->source = xstrdup("");
}

/* Escape a path the way /proc/self/mounts shows it (space, tab, newline, backslash). */
static char *mounts_escape(const char *s)
{
    strbuf sb = STRBUF_INIT;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\\')
            sb_printf(&sb, "\\%03o", (unsigned char)*s);
        else
            sb_putc(&sb, *s);
    }
    return sb_steal(&sb);
}

struct in_use {
    const char *esc; /* the layer as /proc/self/mounts shows it */
    size_t elen;
    int count;
};

/* proc_mounts_each callback: count an overlay that has the layer among its lower layers. */
static bool count_user(const proc_mount *m, void *ctx)
{
    struct in_use *u = ctx;
    if (strcmp(m->type, "overlay") != 0)
        return true;
    /* lowerdir=a:b:c, each layer separated by ':' and the option by ',' */
    const char *lo = strstr(m->opts, "lowerdir=");
    if (!lo)
        return true;
    const char *p = lo + strlen("lowerdir=");
    for (;;) {
        if (strncmp(p, u->esc, u->elen) == 0 &&
            (p[u->elen] == ':' || p[u->elen] == ',' || p[u->elen] == ' ' || p[u->elen] == '\0')) {
            u->count++;
            break;
        }
        const char *next = p + strcspn(p, ":, ");
        if (*next != ':')
            break;
        p = next + 1;
    }
    return true;
}

int images_in_use(const char *rootfs)
{
    cleanup_free char *esc = mounts_escape(rootfs);
    struct in_use u = {.esc = esc, .elen = strlen(esc)};
    proc_mounts_each(count_user, &u);
    return u.count;
}

static void rmtree_quiet(const char *path)
{
    mt_error *e = NULL;
    fs_rmtree(path, true, &e);
    mt_error_free(&e);
}

/* ---- import -------------------------------------------------------------------------------- */

static int check_not_docker_save(const char *rootfs, mt_error **err)
{
    cleanup_free char *manifest = fs_join(rootfs, "manifest.json");
    cleanup_free char *oci = fs_join(rootfs, "oci-layout");
    cleanup_free char *bin = fs_join(rootfs, "bin");
    cleanup_free char *usr = fs_join(rootfs, "usr");
    if ((fs_exists(manifest) || fs_exists(oci)) && !fs_exists(bin) && !fs_exists(usr))
        return mt_error_set(err, MT_ERR_GENERIC,
                            "this looks like an image archive (`docker save`), not a root "
                            "filesystem; export a container's filesystem instead: docker "
                            "export $(docker create IMAGE) -o image.tar");
    return 0;
}

int images_import(const char *store, const char *name_in, const char *source, bool force,
                  image_info *out, mt_error **err)
{
    if (!images_name_valid(name_in))
        return mt_error_set(err, MT_ERR_USAGE,
                            "invalid image name '%s': use letters, digits and . _ / : @ - "
                            "(starting with a letter or digit), e.g. manta-task:bookworm",
                            name_in);
    cleanup_free char *name = images_normalize(name_in);
    struct stat st;
    if (stat(source, &st) < 0)
        return mt_error_sys(err, errno, "cannot read the image source %s", source);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return mt_error_set(err, MT_ERR_USAGE, "%s is neither a folder nor a tar archive", source);
    cleanup_free char *src = realpath(source, NULL);
    if (!src)
        return mt_error_sys(err, errno, "cannot resolve %s", source);
    if (fs_mkdir_p(store, 0755, err) < 0)
        return mt_error_wrap(err, "cannot create the image store");
    cleanup_free char *store_abs = realpath(store, NULL);
    if (!store_abs)
        return mt_error_sys(err, errno, "cannot resolve the image store %s", store);
    if (strchr(store_abs, ',') || strchr(store_abs, ':'))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the image store path %s contains ',' or ':', which overlay mounts "
                            "cannot use; choose another containers.image_store",
                            store_abs);
    cleanup_free char *dir = images_dir_name(name);
    cleanup_free char *dest = fs_join(store_abs, dir);
    cleanup_free char *dest_rootfs = fs_join(dest, "rootfs");
    if (fs_exists(dest) && !force) {
        image_info old;
        read_image(store_abs, dir, &old);
        int rc = mt_error_set(err, MT_ERR_EXISTS,
                              "an image named '%s' already exists (imported %s); use --force "
                              "to replace it",
                              name, *old.created ? old.created : "earlier");
        image_info_free(&old);
        return rc;
    }
    if (fs_exists(dest) && images_in_use(dest_rootfs) > 0)
        return mt_error_set(err, MT_ERR_GENERIC,
                            "image '%s' is in use by a task of this machine; stop the task "
                            "before replacing the image",
                            name);

    char tmp_template[64];
    snprintf(tmp_template, sizeof(tmp_template), IMPORT_PREFIX "%ld-XXXXXX", (long)getpid());
    cleanup_free char *tmp_pattern = fs_join(store_abs, tmp_template);
    if (!mkdtemp(tmp_pattern))
        return mt_error_sys(err, errno, "cannot create a folder in the image store %s", store_abs);
    chmod(tmp_pattern, 0755);
    cleanup_free char *rootfs = fs_join(tmp_pattern, "rootfs");
    int rc = -1;
    cleanup_free char *output = NULL;
    if (mkdir(rootfs, 0755) < 0) {
        mt_error_sys(err, errno, "cannot create %s", rootfs);
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        /* an OCI bundle (config.json + rootfs/) gives its rootfs */
        cleanup_free char *bundle_cfg = fs_join(src, "config.json");
        cleanup_free char *bundle_rootfs = fs_join(src, "rootfs");
        const char *from = fs_exists(bundle_cfg) && fs_is_dir(bundle_rootfs) ? bundle_rootfs : src;
        cleanup_free char *from_dot = xasprintf("%s/.", from);
        char *argv[] = {"cp", "-a", "--", from_dot, rootfs, NULL};
        int status = images_run(argv, 0, &output, err);
        if (status < 0)
            goto fail;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            cleanup_free char *why = first_line(output);
            mt_error_set(err, MT_ERR_IO, "cannot copy %s: %s", from, *why ? why : "cp failed");
            goto fail;
        }
    } else {
        char *argv[] = {"tar", "-x", "-f", src, "-C", rootfs, "--numeric-owner", NULL};
        if (geteuid() != 0)
            argv[6] = "--no-same-owner";
        int status = images_run(argv, 0, &output, err);
        if (status < 0)
            goto fail;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            cleanup_free char *why = first_line(output);
            mt_error_set(err, MT_ERR_IO, "cannot extract %s (is it a tar archive?): %s", src,
                         *why ? why : "tar failed");
            goto fail;
        }
        if (check_not_docker_save(rootfs, err) < 0)
            goto fail;
    }
    chmod(rootfs, 0755);
    {
        cleanup_free char *created = clock_iso_utc();
        uint64_t size = tree_size(rootfs);
        cleanup_json json_t *meta = json_pack("{s:s, s:s, s:I, s:s}", "name", name, "created",
                                              created, "size", (json_int_t)size, "source", src);
        cleanup_free char *text = json_dumps(meta, JSON_INDENT(2));
        cleanup_free char *meta_path = fs_join(tmp_pattern, IMAGE_JSON);
        cleanup_free char *line = xasprintf("%s\n", text);
        if (fs_write_atomic(meta_path, line, strlen(line), 0644, err) < 0)
            goto fail;
    }
    if (fs_exists(dest)) { /* force: move the old one away, then swap in the new one */
        char old_template[64];
        snprintf(old_template, sizeof(old_template), REMOVE_PREFIX "%ld-%lld", (long)getpid(),
                 (long long)clock_mono_ms());
        cleanup_free char *old = fs_join(store_abs, old_template);
        if (rename(dest, old) < 0) {
            mt_error_sys(err, errno, "cannot replace %s", dest);
            goto fail;
        }
        if (rename(tmp_pattern, dest) < 0) {
            mt_error_sys(err, errno, "cannot move the image into place at %s", dest);
            rename(old, dest);
            goto fail;
        }
        rmtree_quiet(old);
    } else if (rename(tmp_pattern, dest) < 0) {
        if (errno == EEXIST || errno == ENOTEMPTY)
            mt_error_set(err, MT_ERR_EXISTS,
                         "image '%s' was imported by someone else meanwhile; use --force to "
                         "replace it",
                         name);
        else
            mt_error_sys(err, errno, "cannot move the image into place at %s", dest);
        goto fail;
    }
    if (out)
        read_image(store_abs, dir, out);
    return 0;
fail:
    rmtree_quiet(tmp_pattern);
    return rc;
}

/* ---- list, lookup, remove ------------------------------------------------------------------ */

static int cmp_image(const void *a, const void *b)
{
    return strcmp(((const image_info *)a)->name, ((const image_info *)b)->name);
}

int images_list(const char *store, image_info **out, size_t *n, mt_error **err)
{
    *out = NULL;
    *n = 0;
    cleanup_dir DIR *d = opendir(store);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return mt_error_sys(err, errno, "cannot read the image store %s", store);
    }
    image_info *v = NULL;
    size_t cnt = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        cleanup_free char *path = fs_join(store, de->d_name);
        if (!fs_is_dir(path))
            continue;
        v = xrealloc(v, (cnt + 1) * sizeof(*v));
        read_image(store, de->d_name, &v[cnt++]);
    }
    if (cnt)
        qsort(v, cnt, sizeof(*v), cmp_image);
    *out = v;
    *n = cnt;
    return 0;
}

int images_lookup(const char *store, const char *name_in, image_info *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    if (!name_in || !images_name_valid(name_in))
        return mt_error_set(err, MT_ERR_USAGE, "invalid image name '%s'", name_in ? name_in : "");
    cleanup_free char *name = images_normalize(name_in);
    cleanup_free char *dir = images_dir_name(name);
    cleanup_free char *path = fs_join(store, dir);
    cleanup_free char *rootfs = fs_join(path, "rootfs");
    if (!fs_is_dir(rootfs))
        return mt_error_set(err, MT_ERR_NOTFOUND,
                            "image '%s' is not in the image store %s; import it with: "
                            "manta_node image import %s DIR|TARBALL",
                            name, store, name_in);
    read_image(store, dir, out);
    return 0;
}

int images_remove(const char *store, const char *name_in, mt_error **err)
{
    image_info img;
    if (images_lookup(store, name_in, &img, err) < 0) {
        /* also accept a damaged entry that has no rootfs */
        if (!*err || (*err)->code != MT_ERR_NOTFOUND)
            return -1;
        cleanup_free char *name = images_normalize(name_in);
        cleanup_free char *dir = images_dir_name(name);
        cleanup_free char *path = fs_join(store, dir);
        if (!fs_is_dir(path))
            return -1;
        mt_error_free(err);
        read_image(store, dir, &img);
    }
    int users = images_in_use(img.rootfs);
    if (users > 0) {
        mt_error_set(err, MT_ERR_GENERIC,
                     "image '%s' is in use by %d task%s of this machine; stop %s first", img.name,
                     users, users == 1 ? "" : "s", users == 1 ? "it" : "them");
        image_info_free(&img);
        return -1;
    }
    char old_template[64];
    snprintf(old_template, sizeof(old_template), REMOVE_PREFIX "%ld-%lld", (long)getpid(),
             (long long)clock_mono_ms());
    cleanup_free char *old = fs_join(store, old_template);
    if (rename(img.path, old) < 0) {
        mt_error_sys(err, errno, "cannot remove %s", img.path);
        image_info_free(&img);
        return -1;
    }
    image_info_free(&img);
    return fs_rmtree(old, true, err);
}
