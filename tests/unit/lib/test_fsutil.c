/* test_fsutil.c - files and paths (with rm -rf), the growable buffer and the error type. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "mem.h"
#include "paths.h"
#include "strbuf.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/manta-test-fs-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_atomic_write_and_read(void **state)
{
    cleanup_free char *p = fs_join(dir, "state.json");
    mt_error *e = NULL;
    assert_int_equal(fs_write_atomic(p, "one", 3, 0600, &e), 0);
    assert_int_equal(fs_write_atomic(p, "second", 6, 0640, &e), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    size_t len = 0;
    cleanup_free char *text = fs_read_file(p, 100, &len, &e);
    assert_non_null(text);
    assert_int_equal(len, 6);
    assert_string_equal(text, "second");
    /* no temporary file is left behind */
    cleanup_free char *cmd = xasprintf("test $(ls -A '%s' | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    /* size limit */
    assert_null(fs_read_file(p, 3, NULL, &e));
    assert_non_null(strstr(mt_error_msg(e), "larger than 3 bytes"));
    mt_error_free(&e);
    /* missing file: the path and the system's reason */
    assert_null(fs_read_file("/nonexistent/x", 10, NULL, &e));
    assert_string_equal(mt_error_msg(e), "cannot open /nonexistent/x: No such file or directory");
    assert_int_equal(e->errnum, ENOENT);
    mt_error_free(&e);
    /* writing into a missing directory fails cleanly */
    assert_int_equal(fs_write_atomic("/nonexistent/dir/f", "x", 1, 0600, &e), -1);
    mt_error_free(&e);
}

/* What a writer killed mid-write left is removed; a live writer's file and others are kept. */
static void test_remove_stale_tmp(void **state)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child); /* a pid that is gone now */
    cleanup_free char *sub = fs_join(dir, "stale");
    assert_int_equal(mkdir(sub, 0700), 0);
    const char *names[] = {"item.tmp.%ld",  "state.json.tmp.%ld", "keep.tmp.%ld",
                           "keep.tmp.x%ld", "keep.item",          ".tmp.%ld"};
    long pids[] = {(long)child, (long)child, (long)getpid(), (long)child, 0, (long)child};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char name[64];
        snprintf(name, sizeof(name), names[i], pids[i]);
        cleanup_free char *p = fs_join(sub, name);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
    }
    assert_int_equal(fs_remove_stale_tmp(sub), 2);
    cleanup_free char *cmd = xasprintf("test $(ls -A '%s' | wc -l) -eq 4", sub);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(fs_remove_stale_tmp(sub), 0);
    assert_int_equal(fs_remove_stale_tmp("/nonexistent"), 0);
}

static void test_mkdir_p(void **state)
{
    cleanup_free char *p = xasprintf("%s/a/b/c/", dir);
    mt_error *e = NULL;
    assert_int_equal(fs_mkdir_p(p, 0700, &e), 0);
    assert_true(fs_is_dir(p));
    assert_int_equal(fs_mkdir_p(p, 0700, &e), 0); /* idempotent */
    cleanup_free char *f = fs_join(dir, "file");
    assert_int_equal(fs_write_atomic(f, "x", 1, 0600, &e), 0);
    cleanup_free char *under = fs_join(f, "sub");
    assert_int_equal(fs_mkdir_p(under, 0700, &e), -1);
    mt_error_free(&e);
    /* the parent of a file: made, and nothing to do for a bare name */
    cleanup_free char *in = xasprintf("%s/p/q/store.db", dir);
    cleanup_free char *parent = xasprintf("%s/p/q", dir);
    assert_int_equal(fs_mkdir_parent(in, 0700, &e), 0);
    assert_true(fs_is_dir(parent));
    assert_false(fs_exists(in));
    assert_int_equal(fs_mkdir_parent("store.db", 0700, &e), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(fs_base_name("/a/b/mod.py"), "mod.py");
    assert_string_equal(fs_base_name("mod.py"), "mod.py");
    assert_string_equal(fs_base_name("dir/"), "");
    assert_true(fs_name_ends_with("mod.py", ".py"));
    assert_true(fs_name_ends_with(".py", ".py"));
    assert_false(fs_name_ends_with("py", ".py"));
    assert_false(fs_name_ends_with("mod.pyz", ".py"));
}

static void test_rmtree(void **state)
{
    mt_error *e = NULL;
    /* a tree with nested folders, files and a link out of it */
    cleanup_free char *outside = fs_join(dir, "keep");
    assert_int_equal(fs_write_atomic(outside, "x", 1, 0600, &e), 0);
    cleanup_free char *deep = xasprintf("%s/tree/a/b/c", dir);
    assert_int_equal(fs_mkdir_p(deep, 0700, &e), 0);
    cleanup_free char *f1 = xasprintf("%s/tree/a/f", dir);
    cleanup_free char *f2 = xasprintf("%s/tree/a/b/c/g", dir);
    assert_int_equal(fs_write_atomic(f1, "1", 1, 0600, &e), 0);
    assert_int_equal(fs_write_atomic(f2, "2", 1, 0600, &e), 0);
    cleanup_free char *link = xasprintf("%s/tree/a/b/out", dir);
    assert_int_equal(symlink(dir, link), 0); /* a link to a folder: removed, not followed */
    cleanup_free char *tree = fs_join(dir, "tree");
    assert_int_equal(fs_rmtree(tree, false, &e), 0);
    assert_false(fs_exists(tree));
    assert_true(fs_exists(outside));
    /* the same on one file system, a single file, and nothing at all */
    assert_int_equal(fs_mkdir_p(deep, 0700, &e), 0);
    assert_int_equal(fs_rmtree(tree, true, &e), 0);
    assert_false(fs_exists(tree));
    assert_int_equal(fs_rmtree(outside, true, &e), 0);
    assert_false(fs_exists(outside));
    assert_int_equal(fs_rmtree(outside, false, &e), 0);
    assert_null(e);
    /* a failure names the path */
    if (geteuid() != 0) {
        cleanup_free char *locked = fs_join(dir, "locked");
        cleanup_free char *inner = fs_join(locked, "f");
        assert_int_equal(fs_mkdir_p(locked, 0700, &e), 0);
        assert_int_equal(fs_write_atomic(inner, "x", 1, 0600, &e), 0);
        chmod(locked, 0500);
        assert_int_equal(fs_rmtree(locked, false, &e), -1);
        cleanup_free char *want = xasprintf("cannot remove %s: Permission denied", locked);
        assert_string_equal(mt_error_msg(e), want);
        mt_error_free(&e);
        chmod(locked, 0700);
        assert_int_equal(fs_rmtree(locked, false, &e), 0);
    }
}

static void test_paths(void **state)
{
    setenv("HOME", "/home/ada", 1);
    unsetenv("MANTA_HOME");
    cleanup_free char *t = fs_expand_tilde("~/x/y");
    assert_string_equal(t, "/home/ada/x/y");
    cleanup_free char *t2 = fs_expand_tilde("~other/x");
    assert_string_equal(t2, "~other/x");
    cleanup_free char *d = fs_display_path("/home/ada/.manta/nodes/a.toml");
    assert_string_equal(d, "~/.manta/nodes/a.toml");
    cleanup_free char *d2 = fs_display_path("/home/adam/x");
    assert_string_equal(d2, "/home/adam/x");
    cleanup_free char *c = paths_config_file("prod");
    assert_string_equal(c, "/home/ada/.manta/nodes/prod.toml");
    setenv("MANTA_HOME", "/srv/manta", 1);
    cleanup_free char *c2 = paths_instances_dir();
    assert_string_equal(c2, "/srv/manta/nodes/instances");
    unsetenv("MANTA_HOME");
    cleanup_free char *j = fs_join("/a/", "/b");
    assert_string_equal(j, "/a/b");
}

static void test_strbuf(void **state)
{
    strbuf sb = STRBUF_INIT;
    assert_string_equal(sb_str(&sb), "");
    for (int i = 0; i < 1000; i++)
        sb_printf(&sb, "%d,", i);
    assert_int_equal(sb.len, strlen(sb.buf));
    assert_true(strncmp(sb.buf, "0,1,2,", 6) == 0);
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sb_reset(&sb);
    sb_printf(&sb, "<%s>", big);
    assert_int_equal(sb.len, 601);
    char *s = sb_steal(&sb);
    assert_null(sb.buf);
    assert_int_equal(strlen(s), 601);
    free(s);
}

static int failing(int depth, mt_error **err)
{
    if (depth == 0)
        return mt_error_set(err, MT_ERR_CONFIG, "port %d is taken", 80);
    if (failing(depth - 1, err) < 0)
        return mt_error_wrap(err, "level %d", depth);
    return 0;
}

static void test_error_wrap(void **state)
{
    mt_error *e = NULL;
    assert_int_equal(failing(2, &e), -1);
    assert_string_equal(mt_error_msg(e), "level 2: level 1: port 80 is taken");
    assert_int_equal(e->code, MT_ERR_CONFIG);
    mt_error_free(&e);
    assert_null(e);
    assert_string_equal(mt_error_msg(NULL), "");
    assert_int_equal(mt_error_set(NULL, 1, "discarded"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_and_read),
        cmocka_unit_test(test_remove_stale_tmp),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_rmtree),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_strbuf),
        cmocka_unit_test(test_error_wrap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
