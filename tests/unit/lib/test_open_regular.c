/* test_open_regular.c - paths from outside are opened only when they are regular files, and
 * the open never blocks (fs_open_regular, fs_read_file): a FIFO without a writer, a socket, a
 * device, a directory and (with O_NOFOLLOW) a symbolic link are refused at once. A blocking
 * open would hang the test: alarm() bounds it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "mem.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/manta-test-open-XXXXXX");
    assert_non_null(mkdtemp(dir));
    alarm(60); /* a blocked open fails the test instead of hanging it */
    return 0;
}

static int teardown(void **state)
{
    alarm(0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_regular_file_opens_in_blocking_mode(void **state)
{
    cleanup_free char *p = fs_join(dir, "data.txt");
    mt_error *e = NULL;
    assert_int_equal(fs_write_atomic(p, "hello", 5, 0600, &e), 0);
    struct stat st;
    cleanup_close int fd = fs_open_regular(p, O_NOFOLLOW, &st, &e);
    assert_true(fd >= 0);
    assert_null(e);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 5);
    int fl = fcntl(fd, F_GETFL);
    assert_int_equal(fl & O_NONBLOCK, 0);
    assert_int_not_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof(buf)), 5);

    size_t len = 0;
    cleanup_free char *text = fs_read_file(p, 100, &len, &e);
    assert_string_equal(text, "hello");
    assert_int_equal(len, 5);
}

static void test_fifo_is_refused_without_blocking(void **state)
{
    cleanup_free char *p = fs_join(dir, "pipe");
    assert_int_equal(mkfifo(p, 0600), 0);
    mt_error *e = NULL;
    struct stat st;
    assert_int_equal(fs_open_regular(p, 0, &st, &e), -1);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(e->errnum, 0);
    assert_non_null(strstr(mt_error_msg(e), "is a FIFO (named pipe), not a regular file"));
    assert_non_null(strstr(mt_error_msg(e), p));
    mt_error_free(&e);

    /* fs_read_file (configurations, certificates, token secrets) refuses it the same way */
    assert_null(fs_read_file(p, 100, NULL, &e));
    assert_non_null(strstr(mt_error_msg(e), "FIFO"));
    mt_error_free(&e);
}

static void test_other_kinds_are_refused(void **state)
{
    mt_error *e = NULL;
    struct stat st;
    /* a directory */
    assert_int_equal(fs_open_regular(dir, 0, &st, &e), -1);
    assert_true(S_ISDIR(st.st_mode));
    assert_non_null(strstr(mt_error_msg(e), "is a directory, not a regular file"));
    mt_error_free(&e);
    /* a character device */
    assert_int_equal(fs_open_regular("/dev/null", 0, &st, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "is a character device"));
    mt_error_free(&e);
    /* a socket */
    cleanup_free char *sp = fs_join(dir, "sock");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sp);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(fs_open_regular(sp, 0, &st, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "is a socket"));
    mt_error_free(&e);
    close(s);
    /* missing: the open's errno is kept */
    cleanup_free char *missing = fs_join(dir, "missing");
    assert_int_equal(fs_open_regular(missing, 0, &st, &e), -1);
    assert_int_equal(e->errnum, ENOENT);
    assert_int_equal(st.st_mode, 0);
    mt_error_free(&e);
}

static void test_symlinks_follow_unless_nofollow(void **state)
{
    cleanup_free char *target = fs_join(dir, "target.txt");
    cleanup_free char *link = fs_join(dir, "link");
    cleanup_free char *fifo = fs_join(dir, "fifo2");
    cleanup_free char *link_fifo = fs_join(dir, "link_fifo");
    mt_error *e = NULL;
    assert_int_equal(fs_write_atomic(target, "x", 1, 0600, &e), 0);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(symlink(fifo, link_fifo), 0);
    struct stat st;
    int fd = fs_open_regular(link, 0, &st, &e);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fs_open_regular(link, O_NOFOLLOW, &st, &e), -1);
    assert_true(S_ISLNK(st.st_mode));
    assert_non_null(strstr(mt_error_msg(e), "symbolic link"));
    mt_error_free(&e);
    /* a link to a FIFO is followed to the FIFO, and refused */
    assert_int_equal(fs_open_regular(link_fifo, 0, &st, &e), -1);
    assert_true(S_ISFIFO(st.st_mode));
    mt_error_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regular_file_opens_in_blocking_mode),
        cmocka_unit_test(test_fifo_is_refused_without_blocking),
        cmocka_unit_test(test_other_kinds_are_refused),
        cmocka_unit_test(test_symlinks_follow_unless_nofollow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
