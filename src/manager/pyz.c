/* pyz.c - the SDK's module archive of a .py file or a package folder; see pyz.h. */
#include "pyz.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fsutil.h"
#include "mem.h"
#include "strbuf.h"

/* Largest file of a module packed (swarmfile.c accepts a global_files entry up to the same). */
#define PYZ_MAX_FILE ((size_t)1 << 30)
/* Deepest folder nesting packed from a module package. */
#define PYZ_MAX_DEPTH 64

/* ---- module paths --------------------------------------------------------------------- */

static const char *const py_keywords[] = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

bool pyz_module_name_ok(const char *name)
{
    if (!name[0] || isdigit((unsigned char)name[0]))
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!(isalnum(*p) || *p == '_' || *p >= 0x80))
            return false;
    for (size_t i = 0; i < ARRAY_LEN(py_keywords); i++)
        if (strcmp(name, py_keywords[i]) == 0)
            return false;
    return strcmp(name, "__main__") != 0;
}

char *pyz_path_tidy(const char *path)
{
    strbuf sb = STRBUF_INIT;
    const char *p = path;
    bool abs = *p == '/';
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n && !(n == 1 && p[0] == '.')) {
            if (sb.len || abs)
                sb_putc(&sb, '/');
            sb_append(&sb, p, n);
        }
        p += n;
    }
    if (!sb.len)
        sb_puts(&sb, abs ? "/" : ".");
    return sb_steal(&sb);
}

char *pyz_module_stem(const char *path)
{
    cleanup_free char *tidy = pyz_path_tidy(path);
    const char *b = fs_base_name(tidy);
    size_t n = strlen(b);
    if (fs_name_ends_with(b, ".py") && n > 3)
        n -= 3;
    return xstrndup(b, n);
}

/* ---- the module archive --------------------------------------------------------------- */

struct pyz_entry {
    char *arc;  /* name in the archive */
    char *path; /* file to read; NULL for the generated __main__.py */
};

struct pyz_list {
    struct pyz_entry *e;
    size_t n;
};

static void pyz_add(struct pyz_list *l, char *arc, char *path)
{
    l->e = xrealloc(l->e, (l->n + 1) * sizeof(struct pyz_entry));
    l->e[l->n++] = (struct pyz_entry){.arc = arc, .path = path};
}

static void pyz_list_free(struct pyz_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->e[i].arc);
        free(l->e[i].path);
    }
    free(l->e);
}

/* Every file below dir (as os.walk sees them: symbolic links to folders are not entered),
 * archived as prefix/relative path, skipping paths that contain "pycache". */
static int pyz_walk(const char *dir, const char *prefix, int depth, struct pyz_list *l,
                    mt_error **err)
{
    if (depth > PYZ_MAX_DEPTH)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the module folder nests deeper than %d levels at %s; flatten it.",
                            PYZ_MAX_DEPTH, dir);
    cleanup_dir DIR *d = opendir(dir);
    if (!d)
        return mt_error_sys(err, errno, "cannot read the module folder %s", dir);
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *arc = xasprintf("%s/%s", prefix, de->d_name);
        if (strstr(arc, "pycache"))
            continue;
        cleanup_free char *full = fs_join(dir, de->d_name);
        struct stat st;
        if (lstat(full, &st) != 0) {
            rc = mt_error_sys(err, errno, "cannot read %s", full);
            break;
        }
        if (S_ISLNK(st.st_mode)) {
            if (stat(full, &st) != 0 || S_ISDIR(st.st_mode))
                continue; /* dangling, or a link to a folder */
        } else if (S_ISDIR(st.st_mode)) {
            rc = pyz_walk(full, arc, depth + 1, l, err);
            continue;
        }
        if (S_ISREG(st.st_mode))
            pyz_add(l, steal_ptr(arc), steal_ptr(full));
    }
    if (rc == 0 && errno)
        rc = mt_error_sys(err, errno, "cannot read the module folder %s", dir);
    return rc;
}

static int pyz_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pyz_entry *)a)->arc, ((const struct pyz_entry *)b)->arc);
}

static void put16(strbuf *sb, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    sb_append(sb, b, 2);
}

static void put32(strbuf *sb, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sb_append(sb, b, 4);
}

/* Raw deflate (zlib level 6, 15-bit window, no header), as Python's zipfile. Returns owned
 * bytes and their length in *out_len, or NULL with *err. */
static uint8_t *deflate_raw(const uint8_t *in, size_t len, size_t *out_len, mt_error **err)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return mt_error_set(err, MT_ERR_GENERIC, "cannot initialise zlib's deflate"), NULL;
    uLong bound = deflateBound(&zs, (uLong)len);
    cleanup_free uint8_t *out = xmalloc(bound ? bound : 1);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END)
        return mt_error_set(err, MT_ERR_GENERIC, "zlib's deflate failed (%d)", rc), NULL;
    return steal_ptr(out);
}

#define ZIP_DOS_TIME 0x0000u                                           /* 00:00:00 */
#define ZIP_DOS_DATE ((uint32_t)(((2023 - 1980) << 9) | (1 << 5) | 1)) /* 2023-01-01 */
#define ZIP_VERSION  20u                                               /* deflate */
#define ZIP_UTF8     0x0800u /* general purpose flag: the name is UTF-8 */

struct zip_cd {
    strbuf cd;
    size_t count;
};

static int zip_add(strbuf *zip, struct zip_cd *cd, const char *name, const uint8_t *data,
                   size_t len, mt_error **err)
{
    size_t nlen = strlen(name);
    if (len > UINT32_MAX || nlen > UINT16_MAX || cd->count >= UINT16_MAX)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "%s is too large for the module archive (a zip without zip64: files "
                            "below 4 GiB, at most 65535 files).",
                            name);
    size_t clen = 0;
    cleanup_free uint8_t *comp = deflate_raw(data, len, &clen, err);
    if (!comp)
        return -1;
    uint32_t crc = (uint32_t)crc32_z(crc32(0L, Z_NULL, 0), data, len);
    size_t offset = zip->len;
    if (offset > UINT32_MAX || clen > UINT32_MAX || offset + 30 + nlen + clen > UINT32_MAX)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the module archive would exceed 4 GiB at %s; make the module "
                            "smaller.",
                            name);
    uint32_t flags = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p >= 0x80)
            flags = ZIP_UTF8;

    put32(zip, 0x04034b50u);
    put16(zip, ZIP_VERSION);
    put16(zip, flags);
    put16(zip, 8); /* deflate */
    put16(zip, ZIP_DOS_TIME);
    put16(zip, ZIP_DOS_DATE);
    put32(zip, crc);
    put32(zip, (uint32_t)clen);
    put32(zip, (uint32_t)len);
    put16(zip, (uint32_t)nlen);
    put16(zip, 0); /* extra */
    sb_append(zip, name, nlen);
    sb_append(zip, comp, clen);

    strbuf *c = &cd->cd;
    put32(c, 0x02014b50u);
    put16(c, (3u << 8) | ZIP_VERSION); /* made by: Unix */
    put16(c, ZIP_VERSION);
    put16(c, flags);
    put16(c, 8);
    put16(c, ZIP_DOS_TIME);
    put16(c, ZIP_DOS_DATE);
    put32(c, crc);
    put32(c, (uint32_t)clen);
    put32(c, (uint32_t)len);
    put16(c, (uint32_t)nlen);
    put16(c, 0);                       /* extra */
    put16(c, 0);                       /* comment */
    put16(c, 0);                       /* disk */
    put16(c, 0);                       /* internal attributes */
    put32(c, (uint32_t)0100644 << 16); /* external: regular file, rw-r--r-- */
    put32(c, (uint32_t)offset);
    sb_append(c, name, nlen);
    cd->count++;
    return 0;
}

int pyz_pack(const char *module_path, uint8_t **out, size_t *out_len, mt_error **err)
{
    cleanup_free char *path = pyz_path_tidy(module_path);
    struct stat st;
    if (stat(path, &st) != 0)
        return mt_error_sys(err, errno, "cannot read the module %s", path);
    cleanup_free char *name = pyz_module_stem(path);
    if (!S_ISDIR(st.st_mode) && !(S_ISREG(st.st_mode) && fs_name_ends_with(path, ".py")))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the module %s must be a .py file or a package folder.", path);
    if (!pyz_module_name_ok(name))
        return mt_error_set(err, MT_ERR_CONFIG,
                            "the module name '%s' (from %s) is not a Python identifier that "
                            "'import %s' could load; rename the file or folder.",
                            name, path, name);

    struct pyz_list l = {NULL, 0};
    if (S_ISDIR(st.st_mode)) {
        if (pyz_walk(path, name, 0, &l, err)) {
            pyz_list_free(&l);
            return -1;
        }
        qsort(l.e, l.n, sizeof(struct pyz_entry), pyz_cmp);
    } else {
        pyz_add(&l, xasprintf("%s.py", name), xstrdup(path));
    }
    pyz_add(&l, xstrdup("__main__.py"), NULL); /* last, as the SDK writes it */

    strbuf zip = STRBUF_INIT;
    struct zip_cd cd = {STRBUF_INIT, 0};
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        if (l.e[i].path) {
            size_t len = 0;
            cleanup_free char *data = fs_read_file(l.e[i].path, PYZ_MAX_FILE, &len, err);
            rc = data ? zip_add(&zip, &cd, l.e[i].arc, (const uint8_t *)data, len, err) : -1;
        } else {
            cleanup_free char *main_py =
                xasprintf("# -*- coding: utf-8 -*-\nimport %s\n%s.main()\n", name, name);
            rc = zip_add(&zip, &cd, l.e[i].arc, (const uint8_t *)main_py, strlen(main_py), err);
        }
    }
    pyz_list_free(&l);
    if (rc == 0 && (zip.len > UINT32_MAX || zip.len + cd.cd.len > UINT32_MAX))
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          "the module archive of %s would exceed 4 GiB; make the module "
                          "smaller.",
                          path);
    if (rc) {
        sb_free(&zip);
        sb_free(&cd.cd);
        return -1;
    }
    size_t cd_offset = zip.len, cd_len = cd.cd.len;
    sb_append(&zip, cd.cd.buf, cd.cd.len);
    sb_free(&cd.cd);
    put32(&zip, 0x06054b50u);
    put16(&zip, 0); /* this disk */
    put16(&zip, 0); /* disk of the central directory */
    put16(&zip, (uint32_t)cd.count);
    put16(&zip, (uint32_t)cd.count);
    put32(&zip, (uint32_t)cd_len);
    put32(&zip, (uint32_t)cd_offset);
    put16(&zip, 0); /* comment */
    *out_len = zip.len;
    *out = (uint8_t *)sb_steal(&zip);
    return 0;
}