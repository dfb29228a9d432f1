/* outbox.c - a finished task's output and outcome, kept on disk until delivered. */
#include "outbox.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "mem.h"

#define ITEM_MAGIC 0x31424f4dU /* "MOB1" */
#define ITEM_MAX   (UINT64_C(4) << 30)

struct outbox {
    pthread_mutex_t mu;
    char *dir;
    uint64_t max_bytes;
    int64_t max_age_s;
    uint64_t seq; /* the next item's number */
};

typedef struct item_hdr {
    uint32_t magic;
    uint32_t reserved;
    int64_t kept_ms;
    uint64_t logs_len, update_len;
} item_hdr;

/* Items are named <20-digit sequence>.item: name order is delivery order. */
static bool item_name(const char *n, uint64_t *seq)
{
    char *end = NULL;
    unsigned long long v = strtoull(n, &end, 10);
    if (end != n + 20 || strcmp(end, ".item") != 0)
        return false;
    if (seq)
        *seq = v;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The item names, sorted (owned, NULL-terminated); sizes and mtimes when asked. */
static char **list_items(outbox *ob, uint64_t **sizes, int64_t **mtimes, size_t *count)
{
    size_t n = 0, cap = 16;
    char **v = xcalloc(cap + 1, sizeof(char *));
    cleanup_dir DIR *d = opendir(ob->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!item_name(de->d_name, NULL))
            continue;
        if (n == cap) {
            cap *= 2;
            v = xrealloc(v, (cap + 1) * sizeof(char *));
        }
        v[n++] = xstrdup(de->d_name);
    }
    v[n] = NULL;
    qsort(v, n, sizeof(char *), cmp_str);
    if (sizes)
        *sizes = xcalloc(n + 1, sizeof(uint64_t));
    if (mtimes)
        *mtimes = xcalloc(n + 1, sizeof(int64_t));
    for (size_t i = 0; (sizes || mtimes) && i < n; i++) {
        cleanup_free char *p = fs_join(ob->dir, v[i]);
        struct stat st;
        if (stat(p, &st) == 0) {
            if (sizes)
                (*sizes)[i] = (uint64_t)st.st_size;
            if (mtimes)
                (*mtimes)[i] = (int64_t)st.st_mtime * 1000;
        }
    }
    *count = n;
    return v;
}

outbox *outbox_open(const char *dir, uint64_t max_bytes, int64_t max_age_s, mt_error **err)
{
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return NULL;
    outbox *ob = xcalloc(1, sizeof(*ob));
    pthread_mutex_init(&ob->mu, NULL);
    ob->dir = xstrdup(dir);
    ob->max_bytes = max_bytes;
    ob->max_age_s = max_age_s;
    /* an item whose writing a SIGKILL cut short: never renamed into place, so never owed */
    fs_remove_stale_tmp(dir);
    size_t n = 0;
    char **names = list_items(ob, NULL, NULL, &n);
    uint64_t last = 0;
    if (n)
        item_name(names[n - 1], &last);
    ob->seq = last + 1;
    mem_free_strv(&names);
    return ob;
}

void outbox_free(outbox *ob)
{
    if (!ob)
        return;
    pthread_mutex_destroy(&ob->mu);
    free(ob->dir);
    free(ob);
}

int outbox_put(outbox *ob, const uint8_t *logs, size_t logs_len, const uint8_t *update,
               size_t update_len, mt_error **err)
{
    if ((uint64_t)logs_len + update_len > ITEM_MAX)
        return mt_error_set(err, MT_ERR_IO, "a task's output of %zu bytes is too large to keep",
                            logs_len);
    size_t len = sizeof(item_hdr) + logs_len + update_len;
    cleanup_free uint8_t *buf = xmalloc(len);
    item_hdr h = {.magic = ITEM_MAGIC,
                  .kept_ms = clock_wall_ms(),
                  .logs_len = logs_len,
                  .update_len = update_len};
    memcpy(buf, &h, sizeof(h));
    if (logs_len)
        memcpy(buf + sizeof(h), logs, logs_len);
    if (update_len)
        memcpy(buf + sizeof(h) + logs_len, update, update_len);
    pthread_mutex_lock(&ob->mu);
    char name[32];
    snprintf(name, sizeof(name), "%020llu.item", (unsigned long long)ob->seq++);
    pthread_mutex_unlock(&ob->mu);
    cleanup_free char *path = fs_join(ob->dir, name);
    if (fs_write_atomic(path, buf, len, 0600, err) < 0)
        return mt_error_wrap(err, "The task's output could not be kept for the manager");
    return 0;
}

void outbox_item_clear(outbox_item *it)
{
    free(it->name);
    free(it->logs);
    free(it->update);
    memset(it, 0, sizeof(*it));
}

int outbox_oldest(outbox *ob, outbox_item *it, mt_error **err)
{
    memset(it, 0, sizeof(*it));
    size_t n = 0;
    char **names = list_items(ob, NULL, NULL, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cleanup_free char *path = fs_join(ob->dir, names[i]);
        size_t len = 0;
        mt_error *e = NULL;
        cleanup_free uint8_t *buf = (uint8_t *)fs_read_file(path, ITEM_MAX + 64, &len, &e);
        item_hdr h;
        bool ok = buf && len >= sizeof(h);
        if (ok) {
            memcpy(&h, buf, sizeof(h));
            ok = h.magic == ITEM_MAGIC && h.logs_len <= len - sizeof(h) &&
                 h.update_len == len - sizeof(h) - h.logs_len;
        }
        if (!ok) {
            if (!buf && e && e->code == MT_ERR_NOTFOUND) { /* removed meanwhile */
                mt_error_free(&e);
                continue;
            }
            cleanup_free char *bad = xasprintf("%s.bad", path);
            if (rename(path, bad) < 0)
                unlink(path);
            rc = mt_error_set(err, MT_ERR_IO, "The kept item %s is damaged%s%s; set aside as %s",
                              names[i], e ? ": " : "", e ? mt_error_msg(e) : "", bad);
            mt_error_free(&e);
            break;
        }
        it->name = xstrdup(names[i]);
        it->kept_ms = h.kept_ms;
        it->logs_len = h.logs_len;
        it->logs = xmalloc(h.logs_len ? h.logs_len : 1);
        memcpy(it->logs, buf + sizeof(h), h.logs_len);
        it->update_len = h.update_len;
        it->update = xmalloc(h.update_len ? h.update_len : 1);
        memcpy(it->update, buf + sizeof(h) + h.logs_len, h.update_len);
        rc = 1;
    }
    mem_free_strv(&names);
    return rc;
}

void outbox_remove(outbox *ob, const outbox_item *it)
{
    if (!it->name)
        return;
    cleanup_free char *path = fs_join(ob->dir, it->name);
    unlink(path);
}

size_t outbox_prune(outbox *ob, int64_t now_ms)
{
    size_t n = 0, dropped = 0;
    uint64_t *sizes = NULL, total = 0;
    int64_t *mtimes = NULL;
    char **names = list_items(ob, &sizes, &mtimes, &n);
    for (size_t i = 0; i < n; i++)
        total += sizes[i];
    for (size_t i = 0; i < n; i++) {
        bool old = ob->max_age_s > 0 && now_ms - mtimes[i] > ob->max_age_s * 1000;
        bool over = ob->max_bytes > 0 && total > ob->max_bytes;
        if (!old && !over)
            break; /* oldest first: the rest are newer and within the size bound */
        cleanup_free char *path = fs_join(ob->dir, names[i]);
        if (unlink(path) == 0) {
            dropped++;
            total -= sizes[i];
        }
    }
    mem_free_strv(&names);
    free(sizes);
    free(mtimes);
    return dropped;
}

size_t outbox_count(outbox *ob, uint64_t *bytes)
{
    size_t n = 0;
    uint64_t *sizes = NULL;
    char **names = list_items(ob, bytes ? &sizes : NULL, NULL, &n);
    if (bytes) {
        *bytes = 0;
        for (size_t i = 0; i < n; i++)
            *bytes += sizes[i];
    }
    mem_free_strv(&names);
    free(sizes);
    return n;
}
