/* datasets.c - local datasets; see datasets.h. */
#include "datasets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"
#include "strbuf.h"
#include "utf8.h"

const char *datasets_dtype(const char *filename)
{
    static const struct {
        const char *ext, *dtype;
    } table[] = {
        {".txt", "text"},  {".csv", "csv"},   {".npx", "numpy"},  {".npy", "numpy"},
        {".npz", "numpy"}, {".np", "numpy"},  {".jpg", "image"},  {".jpeg", "image"},
        {".png", "image"}, {".tif", "image"}, {".tiff", "image"}, {".bin", "binary"},
    };
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return "binary";
    for (size_t i = 0; i < ARRAY_LEN(table); i++)
        if (strcasecmp(dot, table[i].ext) == 0)
            return table[i].dtype;
    return "binary";
}

static char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *s = path + n;
    while (s > path && s[-1] != '/')
        s--;
    return xstrndup(s, (size_t)(path + n - s));
}

int datasets_scan(const cfg_map *m, dataset_set *out, mt_error **err)
{
    memset(out, 0, sizeof(*out));
    strbuf problems = STRBUF_INIT;
    out->items = xcalloc(m->len ? m->len : 1, sizeof(dataset));
    for (size_t i = 0; i < m->len; i++) {
        const char *key = m->keys[i], *path = m->values[i];
        struct stat st;
        const char *why = NULL;
        if (stat(path, &st) < 0)
            why = errno == EACCES ? "is not readable (permission denied)" : "path does not exist";
        else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            why = "is neither a file nor a directory";
        else if (access(path, S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK) != 0)
            why = "is not readable (permission denied)";
        if (why) {
            sb_printf(&problems, "%sDataset '%s' %s: %s", problems.len ? "\n" : "", key, why, path);
            continue;
        }
        dataset *d = &out->items[out->len++];
        d->key = xstrdup(key);
        d->path = xstrdup(path);
        d->is_dir = S_ISDIR(st.st_mode);
        /* The overview's name and description go into protobuf strings, which must be valid
         * UTF-8 (the manager refuses the whole registration otherwise); a file name need not
         * be: ill-formed bytes are shown as U+FFFD. The path itself is kept as it is. */
        char *raw = base_name(path);
        char *bn = utf8_lossy(raw, strlen(raw), NULL);
        free(raw);
        if (d->is_dir) {
            d->name = xstrdup(bn);
            d->description = xasprintf("Folder in %s", bn);
            d->dtype = "folder";
        } else {
            const char *dot = strrchr(bn, '.');
            d->name = dot && dot != bn ? xstrndup(bn, (size_t)(dot - bn)) : xstrdup(bn);
            d->description = xasprintf("File in %s", bn);
            d->dtype = datasets_dtype(bn);
        }
        free(bn);
    }
    if (problems.len) {
        mt_error_set(err, MT_ERR_CONFIG, "%s", sb_str(&problems));
        sb_free(&problems);
        datasets_release(out);
        return -1;
    }
    return 0;
}

void datasets_release(dataset_set *s)
{
    for (size_t i = 0; i < s->len; i++) {
        free(s->items[i].key);
        free(s->items[i].path);
        free(s->items[i].name);
        free(s->items[i].description);
    }
    free(s->items);
    memset(s, 0, sizeof(*s));
}

const dataset *datasets_find(const dataset_set *s, const char *key)
{
    for (size_t i = 0; i < s->len; i++)
        if (strcmp(s->items[i].key, key) == 0)
            return &s->items[i];
    return NULL;
}
