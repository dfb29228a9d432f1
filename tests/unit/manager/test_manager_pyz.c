/* test_manager_pyz.c - the module archive (task-contract.md 1.1): zip structure read back
 * here, then checked and run by Python's zipfile and interpreter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "fsutil.h"
#include "mem.h"
#include "pyz.h"
#include "strbuf.h"

#define PYTHON "/usr/bin/python3"

static char tmpdir[] = "/tmp/test_pyz_XXXXXX";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static char *tpath(const char *rel)
{
    return xasprintf("%s/%s", tmpdir, rel);
}

static void write_file(const char *rel, const char *text)
{
    cleanup_free char *p = tpath(rel);
    cleanup_free char *dir = xstrdup(p);
    *strrchr(dir, '/') = '\0';
    mt_error *err = NULL;
    assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(fs_write_atomic(p, text, strlen(text), 0644, &err), 0);
}

static uint32_t rd16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
    return rd16(p) | rd16(p + 2) << 16;
}

/* What the test reads back from an archive. */
struct entry {
    char name[256];
    char *data; /* inflated, NUL-terminated */
    size_t len;
};

struct archive {
    struct entry e[32];
    size_t n;
};

static void archive_free(struct archive *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->e[i].data);
    a->n = 0;
}

static char *inflate_raw(const uint8_t *in, size_t clen, size_t ulen)
{
    char *out = xmalloc(ulen + 1);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, -15), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)clen;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)ulen + 1;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, ulen);
    inflateEnd(&zs);
    out[ulen] = '\0';
    return out;
}

/* Walk the local headers, the central directory and the end record; check every field the
 * writer promises and collect the entries. */
static void parse_zip(const uint8_t *z, size_t len, struct archive *a)
{
    assert_true(len >= 22);
    const uint8_t *end = z + len - 22;
    assert_int_equal(rd32(end), 0x06054b50);
    size_t count = rd16(end + 10), cd_size = rd32(end + 12), cd_off = rd32(end + 16);
    assert_int_equal(rd16(end + 8), count);
    assert_int_equal(rd16(end + 20), 0); /* no comment */
    assert_int_equal(cd_off + cd_size, len - 22);
    assert_true(count <= ARRAY_LEN(a->e));

    size_t off = 0;
    const uint8_t *cd = z + cd_off;
    for (size_t i = 0; i < count; i++) {
        /* central directory entry */
        assert_int_equal(rd32(cd), 0x02014b50);
        assert_int_equal(rd16(cd + 6), 20);
        uint32_t flags = rd16(cd + 8);
        assert_int_equal(rd16(cd + 10), 8); /* deflate */
        assert_int_equal(rd16(cd + 12), 0); /* 00:00:00 */
        assert_int_equal(rd16(cd + 14), ((2023 - 1980) << 9) | (1 << 5) | 1);
        uint32_t crc = rd32(cd + 16), clen = rd32(cd + 20), ulen = rd32(cd + 24);
        size_t nlen = rd16(cd + 28);
        assert_int_equal(rd16(cd + 30), 0);
        assert_int_equal(rd16(cd + 32), 0);
        assert_int_equal(rd32(cd + 42), off);
        assert_true(nlen < sizeof(a->e[i].name));

        /* local header at the offset the directory names */
        const uint8_t *lh = z + off;
        assert_int_equal(rd32(lh), 0x04034b50);
        assert_int_equal(rd16(lh + 4), 20);
        assert_int_equal(rd16(lh + 6), flags);
        assert_int_equal(rd16(lh + 8), 8);
        assert_int_equal(rd16(lh + 10), 0);
        assert_int_equal(rd16(lh + 12), 0x5621);
        assert_int_equal(rd32(lh + 14), crc);
        assert_int_equal(rd32(lh + 18), clen);
        assert_int_equal(rd32(lh + 22), ulen);
        assert_int_equal(rd16(lh + 26), nlen);
        assert_int_equal(rd16(lh + 28), 0);
        assert_memory_equal(lh + 30, cd + 46, nlen);

        struct entry *e = &a->e[a->n++];
        memcpy(e->name, cd + 46, nlen);
        e->name[nlen] = '\0';
        bool ascii = true;
        for (size_t k = 0; k < nlen; k++)
            ascii = ascii && (unsigned char)e->name[k] < 0x80;
        assert_int_equal(flags, ascii ? 0 : 0x0800);
        e->data = inflate_raw(lh + 30 + nlen, clen, ulen);
        e->len = ulen;
        assert_int_equal(crc32(0L, (const Bytef *)e->data, ulen), crc);

        off += 30 + nlen + clen;
        cd += 46 + nlen;
    }
    assert_int_equal(off, cd_off);
    assert_ptr_equal(cd, z + cd_off + cd_size);
}

static char *run_cmd(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    strbuf sb = STRBUF_INIT;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        sb_append(&sb, buf, n);
    int st = pclose(f);
    if (st != 0)
        fail_msg("'%s' exited with status %d; output:\n%s", cmd, st, sb_str(&sb));
    return sb_steal(&sb);
}

static char *save(const char *rel, const uint8_t *z, size_t len)
{
    char *p = tpath(rel);
    mt_error *err = NULL;
    assert_int_equal(fs_write_atomic(p, z, len, 0644, &err), 0);
    return p;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_single_file(void **state)
{
    (void)state;
    write_file("single/hello.py", "def main():\n    print('hello from pyz')\n");
    cleanup_free char *mod = tpath("single/hello.py");
    uint8_t *z = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    if (pyz_pack(mod, &z, &len, &err))
        fail_msg("%s", mt_error_msg(err));

    struct archive a = {.n = 0};
    parse_zip(z, len, &a);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.e[0].name, "hello.py");
    assert_string_equal(a.e[0].data, "def main():\n    print('hello from pyz')\n");
    assert_string_equal(a.e[1].name, "__main__.py");
    assert_string_equal(a.e[1].data, "# -*- coding: utf-8 -*-\nimport hello\nhello.main()\n");
    archive_free(&a);

    cleanup_free char *out = save("single.pyz", z, len);
    free(z);
    cleanup_free char *cmd1 = xasprintf(
        PYTHON " -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip()); "
               "print(z.namelist()); print(z.getinfo('hello.py').date_time)\" %s",
        out);
    cleanup_free char *res1 = run_cmd(cmd1);
    assert_string_equal(res1, "None\n['hello.py', '__main__.py']\n(2023, 1, 1, 0, 0, 0)\n");
    cleanup_free char *cmd2 = xasprintf(PYTHON " %s", out);
    cleanup_free char *res2 = run_cmd(cmd2);
    assert_string_equal(res2, "hello from pyz\n");
}

static void make_package(void)
{
    write_file("pkgdir/pkg/__init__.py", "from . import util\n\n"
                                         "def main():\n"
                                         "    print('package says', util.VALUE, util.data())\n");
    write_file("pkgdir/pkg/util.py", "import pkgutil\nVALUE = 42\n\n"
                                     "def data():\n"
                                     "    return pkgutil.get_data('pkg', 'data/b.txt')."
                                     "decode().strip()\n");
    write_file("pkgdir/pkg/a.py", "A = 1\n");
    write_file("pkgdir/pkg/data/b.txt", "payload\n");
    write_file("pkgdir/pkg/d\xc3\xa4t\xc3\xa4.py", "X = 2\n");
    write_file("pkgdir/pkg/__pycache__/util.cpython-311.pyc", "junk");
    write_file("pkgdir/pkg/sub/pycache_notes.txt", "skipped too");
    write_file("pkgdir/outside/ignored.py", "Y = 3\n");
    cleanup_free char *link = tpath("pkgdir/pkg/linked");
    assert_int_equal(symlink("../outside", link), 0); /* a link to a folder: not entered */
    cleanup_free char *flink = tpath("pkgdir/pkg/flink.py");
    assert_int_equal(symlink("a.py", flink), 0); /* a link to a file: its contents */
}

static void test_package(void **state)
{
    (void)state;
    make_package();
    cleanup_free char *mod = tpath("pkgdir/pkg/");
    uint8_t *z = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    if (pyz_pack(mod, &z, &len, &err))
        fail_msg("%s", mt_error_msg(err));

    struct archive a = {.n = 0};
    parse_zip(z, len, &a);
    static const char *const want[] = {
        "pkg/__init__.py", "pkg/a.py",    "pkg/data/b.txt", "pkg/d\xc3\xa4t\xc3\xa4.py",
        "pkg/flink.py",    "pkg/util.py", "__main__.py",
    };
    assert_int_equal(a.n, ARRAY_LEN(want));
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.e[i].name, want[i]);
    assert_string_equal(a.e[4].data, "A = 1\n");
    assert_string_equal(a.e[6].data, "# -*- coding: utf-8 -*-\nimport pkg\npkg.main()\n");
    archive_free(&a);

    /* Deterministic: the same bytes again, even after the files' times change. */
    cleanup_free char *init = tpath("pkgdir/pkg/__init__.py");
    struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
    assert_int_equal(utimes(init, tv), 0);
    uint8_t *z2 = NULL;
    size_t len2 = 0;
    assert_int_equal(pyz_pack(mod, &z2, &len2, &err), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(z2, z, len);
    free(z2);

    cleanup_free char *out = save("pkg.pyz", z, len);
    free(z);
    cleanup_free char *cmd1 = xasprintf(
        PYTHON " -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip()); "
               "print(z.namelist())\" %s",
        out);
    cleanup_free char *res1 = run_cmd(cmd1);
    assert_string_equal(res1, "None\n['pkg/__init__.py', 'pkg/a.py', 'pkg/data/b.txt', "
                              "'pkg/d\xc3\xa4t\xc3\xa4.py', 'pkg/flink.py', 'pkg/util.py', "
                              "'__main__.py']\n");
    cleanup_free char *cmd2 = xasprintf("cd / && " PYTHON " %s", out);
    cleanup_free char *res2 = run_cmd(cmd2);
    assert_string_equal(res2, "package says 42 payload\n");
}

static void test_empty_file(void **state)
{
    (void)state;
    write_file("empty/nothing.py", "");
    cleanup_free char *mod = tpath("empty/nothing.py");
    uint8_t *z = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    assert_int_equal(pyz_pack(mod, &z, &len, &err), 0);
    struct archive a = {.n = 0};
    parse_zip(z, len, &a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.e[0].len, 0);
    archive_free(&a);
    free(z);
}

static void expect_error(const char *rel, const char *needle)
{
    cleanup_free char *mod = tpath(rel);
    uint8_t *z = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    assert_int_equal(pyz_pack(mod, &z, &len, &err), -1);
    assert_null(z);
    assert_non_null(err);
    if (!strstr(mt_error_msg(err), needle))
        fail_msg("error for %s: '%s' does not mention '%s'", rel, mt_error_msg(err), needle);
    mt_error_free(&err);
}

static void test_errors(void **state)
{
    (void)state;
    write_file("bad/notes.txt", "x");
    write_file("bad/my-mod.py", "def main(): pass\n");
    write_file("bad/class.py", "def main(): pass\n");
    expect_error("bad/missing.py", "cannot read the module");
    expect_error("bad/notes.txt", "must be a .py file or a package folder");
    expect_error("bad/my-mod.py", "not a Python identifier");
    expect_error("bad/class.py", "not a Python identifier");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_file),
        cmocka_unit_test(test_package),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
