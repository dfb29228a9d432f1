/* test_log.c - the logger: line format, levels, file sink, rotation, redaction, threads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, mkdtemp, nftw, symlink */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "mem.h"

/* The timestamp and level part of every line. */
#define LINE_RE                                                                                    \
    "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} - "                           \
    "(DEBUG|INFO|WARNING|ERROR|CRITICAL) - [^ ]+ - "
#define TS_LEN 23 /* "YYYY-MM-DD HH:MM:SS,mmm" */

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *fx = xcalloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/test_log.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    int rc = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return rc;
}

static char *fx_path(void **state, const char *name) /* owned */
{
    fixture *fx = *state;
    return fs_join(fx->dir, name);
}

static char *read_all(const char *path, size_t *len) /* owned */
{
    mt_error *err = NULL;
    char *s = fs_read_file(path, 64 << 20, len, &err);
    if (!s)
        fail_msg("cannot read %s: %s", path, mt_error_msg(err));
    return s;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        fail_msg("cannot stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

/* Split s (modified) into lines; every line must end in '\n'. Returns an owned array of
 * borrowed pointers and sets *n. */
static char **split_lines(char *s, size_t len, size_t *n)
{
    size_t cap = 16, cnt = 0;
    char **v = xmalloc(cap * sizeof(*v));
    if (len)
        assert_int_equal(s[len - 1], '\n');
    char *p = s;
    while (p < s + len) {
        char *nl = memchr(p, '\n', (size_t)(s + len - p));
        assert_non_null(nl);
        *nl = '\0';
        if (cnt == cap)
            v = xrealloc(v, (cap *= 2) * sizeof(*v));
        v[cnt++] = p;
        p = nl + 1;
    }
    *n = cnt;
    return v;
}

static regex_t line_re;

/* The line matches the generic format; returns the message part (after the prefix). */
static const char *check_shape(const char *line)
{
    regmatch_t m[1];
    if (regexec(&line_re, line, 1, m, 0) != 0)
        fail_msg("malformed log line: \"%s\"", line);
    return line + m[0].rm_eo;
}

/* The line's timestamp is a valid local time within a few seconds of now. */
static void check_timestamp_now(const char *line)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(line, "%Y-%m-%d %H:%M:%S", &tm);
    assert_non_null(end);
    assert_int_equal(*end, ',');
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    time_t now = time(NULL);
    if (t > now + 2 || t < now - 10)
        fail_msg("timestamp of \"%s\" is not local now", line);
}

/* Line = timestamp + exactly `rest`. */
static void check_line(const char *line, const char *rest)
{
    check_shape(line);
    check_timestamp_now(line);
    assert_string_equal(line + TS_LEN, rest);
}

static logger *open_file_logger(const char *path, log_level level, uint64_t max_bytes, int backups)
{
    log_options o = {
        .level = level,
        .file = path,
        .to_file = true,
        .max_bytes = max_bytes,
        .backup_count = backups,
        .program = "manta_node",
    };
    mt_error *err = NULL;
    logger *lg = log_open(&o, &err);
    if (!lg)
        fail_msg("log_open(%s): %s", path, mt_error_msg(err));
    assert_null(err);
    return lg;
}

/* ---- format ---- */

static void test_line_format(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_DEBUG, 0, 0);
    log_info(lg, "agent", "hello %s %d", "world", 42);
    log_warn(lg, "mqtt", "careful");
    log_error(lg, "agent", "broken: %s", "yes");
    log_debug(lg, "grpc", "details");
    log_msg(lg, LOG_CRITICAL, "agent", "the end");
    log_msg(lg, LOG_INFO, NULL, "no component");
    log_msg(lg, LOG_INFO, "", "empty component");
    log_close(lg);

    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 7);
    check_line(lines[0], " - INFO - manta_node.agent - hello world 42");
    check_line(lines[1], " - WARNING - manta_node.mqtt - careful");
    check_line(lines[2], " - ERROR - manta_node.agent - broken: yes");
    check_line(lines[3], " - DEBUG - manta_node.grpc - details");
    check_line(lines[4], " - CRITICAL - manta_node.agent - the end");
    check_line(lines[5], " - INFO - manta_node - no component");
    check_line(lines[6], " - INFO - manta_node - empty component");
}

static void test_default_program(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    log_options o = {.level = LOG_INFO, .file = path, .to_file = true};
    mt_error *err = NULL;
    logger *lg = log_open(&o, &err);
    assert_non_null(lg);
    log_info(lg, "cli", "x");
    log_close(lg);
    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 1);
    check_line(lines[0], " - INFO - manta.cli - x");
}

static void test_newlines(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, 0, 0);
    log_info(lg, "a", "one\ntwo");
    log_info(lg, "a", "trailing\n");
    log_info(lg, "a", "%s", "");
    log_close(lg);
    size_t len;
    cleanup_free char *s = read_all(path, &len);
    assert_int_equal(strlen(s), len);
    /* Record 1 spans two physical lines, record 2 ends with exactly one '\n'. */
    char *r2 = strstr(s, "\ntwo\n");
    assert_non_null(r2);
    r2 += strlen("\ntwo\n");
    *strstr(s, "\n") = '\0';
    check_line(s, " - INFO - manta_node.a - one");
    char *r3 = strchr(r2, '\n');
    assert_non_null(r3);
    *r3++ = '\0';
    check_line(r2, " - INFO - manta_node.a - trailing");
    assert_int_equal(r3[strlen(r3) - 1], '\n');
    r3[strlen(r3) - 1] = '\0';
    check_line(r3, " - INFO - manta_node.a - ");
}

static void test_long_message(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, 0, 0);
    size_t big = 100000;
    cleanup_free char *msg = xmalloc(big + 1);
    memset(msg, 'x', big);
    msg[big] = '\0';
    log_info(lg, "big", "%s", msg);
    log_close(lg);
    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 1);
    assert_string_equal(check_shape(lines[0]), msg);
}

/* ---- levels ---- */

static void test_level_names(void **state)
{
    static const struct {
        const char *name;
        log_level level;
    } ok[] = {
        {"DEBUG", LOG_DEBUG},     {"debug", LOG_DEBUG},       {"Info", LOG_INFO},
        {"WARNING", LOG_WARNING}, {"warn", LOG_WARNING},      {"WARN", LOG_WARNING},
        {"error", LOG_ERROR},     {"CRITICAL", LOG_CRITICAL}, {"critical", LOG_CRITICAL},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        log_level l = 0;
        if (!log_level_parse(ok[i].name, &l))
            fail_msg("log_level_parse(\"%s\") failed", ok[i].name);
        assert_int_equal(l, ok[i].level);
    }
    static const char *bad[] = {"", "verbose", "INFOX", "warnings", " INFO", "10"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        log_level l = LOG_ERROR;
        if (log_level_parse(bad[i], &l))
            fail_msg("log_level_parse(\"%s\") accepted", bad[i]);
        assert_int_equal(l, LOG_ERROR);
    }
    log_level l = LOG_ERROR;
    assert_false(log_level_parse(NULL, &l));
    assert_string_equal(log_level_name(LOG_DEBUG), "DEBUG");
    assert_string_equal(log_level_name(LOG_INFO), "INFO");
    assert_string_equal(log_level_name(LOG_WARNING), "WARNING");
    assert_string_equal(log_level_name(LOG_ERROR), "ERROR");
    assert_string_equal(log_level_name(LOG_CRITICAL), "CRITICAL");
}

static void test_level_filter(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, 0, 0);
    assert_false(log_enabled(lg, LOG_DEBUG));
    assert_true(log_enabled(lg, LOG_INFO));
    assert_true(log_enabled(lg, LOG_CRITICAL));
    log_debug(lg, "c", "dropped 1");
    log_info(lg, "c", "kept 1");
    log_warn(lg, "c", "kept 2");
    log_error(lg, "c", "kept 3");
    log_msg(lg, LOG_CRITICAL, "c", "kept 4");
    log_set_level(lg, LOG_DEBUG);
    assert_true(log_enabled(lg, LOG_DEBUG));
    log_debug(lg, "c", "kept 5");
    log_set_level(lg, LOG_ERROR);
    assert_false(log_enabled(lg, LOG_WARNING));
    log_info(lg, "c", "dropped 2");
    log_warn(lg, "c", "dropped 3");
    log_error(lg, "c", "kept 6");
    log_close(lg);

    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    assert_null(strstr(s, "dropped"));
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 6);
    check_line(lines[0], " - INFO - manta_node.c - kept 1");
    check_line(lines[1], " - WARNING - manta_node.c - kept 2");
    check_line(lines[2], " - ERROR - manta_node.c - kept 3");
    check_line(lines[3], " - CRITICAL - manta_node.c - kept 4");
    check_line(lines[4], " - DEBUG - manta_node.c - kept 5");
    check_line(lines[5], " - ERROR - manta_node.c - kept 6");
}

/* ---- file sink ---- */

static void test_append_on_reopen(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    mt_error *err = NULL;
    assert_int_equal(fs_write_atomic(path, "existing line\n", 14, 0644, &err), 0);

    logger *lg = open_file_logger(path, LOG_INFO, 0, 3);
    log_info(lg, "a", "first");
    log_close(lg);
    lg = open_file_logger(path, LOG_INFO, 0, 3);
    log_info(lg, "a", "second");
    /* Two loggers on the same file at once both append. */
    logger *lg2 = open_file_logger(path, LOG_INFO, 0, 3);
    log_info(lg2, "b", "third");
    log_info(lg, "a", "fourth");
    log_close(lg2);
    log_close(lg);

    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 5);
    assert_string_equal(lines[0], "existing line");
    check_line(lines[1], " - INFO - manta_node.a - first");
    check_line(lines[2], " - INFO - manta_node.a - second");
    check_line(lines[3], " - INFO - manta_node.b - third");
    check_line(lines[4], " - INFO - manta_node.a - fourth");
}

static void test_parent_dirs_and_modes(void **state)
{
    cleanup_free char *path = fx_path(state, "a/b/c/node.log");
    cleanup_free char *dir = fx_path(state, "a/b/c");
    mode_t old = umask(022);
    logger *lg = open_file_logger(path, LOG_INFO, 0, 0);
    umask(old);
    assert_true(fs_is_dir(dir));
    log_info(lg, "a", "in a deep directory");
    log_close(lg);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    size_t len;
    cleanup_free char *s = read_all(path, &len);
    assert_non_null(strstr(s, "in a deep directory\n"));
}

static void test_open_errors(void **state)
{
    cleanup_free char *blocker = fx_path(state, "plainfile");
    cleanup_free char *path = fx_path(state, "plainfile/sub/node.log");
    mt_error *err = NULL;
    assert_int_equal(fs_write_atomic(blocker, "x", 1, 0644, &err), 0);

    log_options o = {.level = LOG_INFO, .file = path, .to_file = true};
    assert_null(log_open(&o, &err));
    assert_non_null(err);
    assert_non_null(strstr(mt_error_msg(err), "plainfile"));
    mt_error_free(&err);

    /* The path is a directory. */
    cleanup_free char *dirpath = fx_path(state, "adir");
    assert_int_equal(fs_mkdir_p(dirpath, 0755, &err), 0);
    o.file = dirpath;
    assert_null(log_open(&o, &err));
    assert_non_null(err);
    mt_error_free(&err);

    log_options neg = {.level = LOG_INFO, .file = path, .to_file = true, .backup_count = -1};
    assert_null(log_open(&neg, &err));
    assert_non_null(err);
    mt_error_free(&err);
}

static void test_no_sinks_and_null(void **state)
{
    /* NULL logger: everything is a no-op. */
    log_info(NULL, "a", "nothing %d", 1);
    log_msg(NULL, LOG_CRITICAL, "a", "nothing");
    assert_false(log_enabled(NULL, LOG_CRITICAL));
    log_set_level(NULL, LOG_DEBUG);
    log_add_secret(NULL, "secret");
    assert_int_equal(log_reopen(NULL, NULL), 0);
    log_close(NULL);

    /* A file given but to_file off, and to_file on without a file: no file sink. */
    cleanup_free char *path = fx_path(state, "never.log");
    log_options o = {.level = LOG_DEBUG, .file = path, .to_file = false};
    mt_error *err = NULL;
    logger *lg = log_open(&o, &err);
    assert_non_null(lg);
    log_info(lg, "a", "goes nowhere");
    log_add_secret(lg, "some secret");
    assert_int_equal(log_reopen(lg, &err), 0);
    log_close(lg);
    assert_false(fs_exists(path));

    log_options o2 = {.level = LOG_DEBUG, .file = "", .to_file = true};
    lg = log_open(&o2, &err);
    assert_non_null(lg);
    log_info(lg, "a", "goes nowhere");
    log_close(lg);
    log_options o3 = {.level = LOG_DEBUG, .file = NULL, .to_file = true};
    lg = log_open(&o3, &err);
    assert_non_null(lg);
    log_info(lg, "a", "goes nowhere");
    log_close(lg);
    assert_null(err);
}

static void test_write_errors_are_dropped(void **state)
{
    if (!fs_exists("/dev/full"))
        skip();
    /* A symlink to /dev/full: every write fails with ENOSPC; rotation would only move the
     * symlink inside the temporary directory. */
    cleanup_free char *path = fx_path(state, "full.log");
    assert_int_equal(symlink("/dev/full", path), 0);
    logger *lg = open_file_logger(path, LOG_INFO, 100, 2);
    for (int i = 0; i < 50; i++)
        log_info(lg, "a", "this cannot be written %d", i);
    log_close(lg);
}

/* ---- rotation ---- */

/* Numbers of the "line NNNN" messages in a file, appended to nums. */
static void collect_numbers(const char *path, int *nums, size_t *count, size_t max)
{
    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    cleanup_free char **lines = split_lines(s, len, &n);
    for (size_t i = 0; i < n; i++) {
        const char *msg = check_shape(lines[i]);
        int num = -1;
        char tail;
        if (sscanf(msg, "line %d%c", &num, &tail) != 1)
            fail_msg("unexpected message \"%s\" in %s", msg, path);
        assert_true(*count < max);
        nums[(*count)++] = num;
    }
}

static void test_rotation(void **state)
{
    enum { backups = 3, total = 300 };
    const uint64_t max = 1000;
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, max, backups);
    for (int i = 0; i < total; i++)
        log_info(lg, "r", "line %04d", i);
    log_close(lg);

    uint64_t sum = 0;
    for (int i = 1; i <= backups; i++) {
        cleanup_free char *p = xasprintf("%s.%d", path, i);
        assert_true(fs_exists(p));
        uint64_t sz = file_size(p);
        assert_true(sz > 0 && sz <= max);
        sum += sz;
    }
    for (int i = backups + 1; i <= backups + 3; i++) {
        cleanup_free char *p = xasprintf("%s.%d", path, i);
        assert_false(fs_exists(p));
    }
    uint64_t live = file_size(path);
    assert_true(live > 0 && live <= max);
    sum += live;
    assert_true(sum <= max * (uint64_t)(backups + 1));

    /* Oldest to newest: .3, .2, .1, live; the numbers are consecutive and end at the last. */
    int nums[total];
    size_t count = 0;
    for (int i = backups; i >= 1; i--) {
        cleanup_free char *p = xasprintf("%s.%d", path, i);
        collect_numbers(p, nums, &count, (size_t)total);
    }
    collect_numbers(path, nums, &count, (size_t)total);
    assert_true(count > 0);
    assert_int_equal(nums[count - 1], total - 1);
    for (size_t i = 1; i < count; i++)
        assert_int_equal(nums[i], nums[i - 1] + 1);
    /* Nothing was lost beyond what fits: the files are reasonably full. */
    assert_true(sum > max * (uint64_t)(backups + 1) / 2);
}

static void test_rotation_existing_big_file(void **state)
{
    /* A file already over the limit at open is rotated before the first record, not
     * truncated. */
    cleanup_free char *path = fx_path(state, "node.log");
    cleanup_free char *old = xmalloc(2000);
    memset(old, 'o', 1999);
    old[1999] = '\n';
    mt_error *err = NULL;
    assert_int_equal(fs_write_atomic(path, old, 2000, 0640, &err), 0);
    logger *lg = open_file_logger(path, LOG_INFO, 1000, 2);
    log_info(lg, "r", "line %04d", 0);
    log_close(lg);
    cleanup_free char *p1 = xasprintf("%s.1", path);
    assert_int_equal(file_size(p1), 2000);
    int nums[4];
    size_t count = 0;
    collect_numbers(path, nums, &count, 4);
    assert_int_equal(count, 1);
    assert_int_equal(nums[0], 0);
}

static void test_rotation_no_backups(void **state)
{
    const uint64_t max = 500;
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, max, 0);
    for (int i = 0; i < 100; i++) {
        log_info(lg, "r", "line %04d", i);
        assert_true(file_size(path) <= max);
    }
    log_close(lg);
    cleanup_free char *p1 = xasprintf("%s.1", path);
    assert_false(fs_exists(p1));
    int nums[100];
    size_t count = 0;
    collect_numbers(path, nums, &count, 100);
    assert_true(count > 0);
    assert_int_equal(nums[count - 1], 99);
    for (size_t i = 1; i < count; i++)
        assert_int_equal(nums[i], nums[i - 1] + 1);
}

static void test_no_rotation_when_unlimited(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, 0, 3);
    for (int i = 0; i < 500; i++)
        log_info(lg, "r", "line %04d", i);
    log_close(lg);
    cleanup_free char *p1 = xasprintf("%s.1", path);
    assert_false(fs_exists(p1));
    int nums[500];
    size_t count = 0;
    collect_numbers(path, nums, &count, 500);
    assert_int_equal(count, 500);
}

/* ---- secrets ---- */

static void test_secret_redaction(void **state)
{
    static const char secret[] = "eyJhbGciOiJIUzI1NiJ9.s3cr3t-token";
    cleanup_free char *path = fx_path(state, "node.log");
    FILE *con = tmpfile();
    assert_non_null(con);
    log_options o = {
        .level = LOG_DEBUG,
        .file = path,
        .to_file = true,
        .to_console = true,
        .console = con,
        .program = "manta_node",
    };
    mt_error *err = NULL;
    logger *lg = log_open(&o, &err);
    assert_non_null(lg);
    log_add_secret(lg, secret);
    log_add_secret(lg, secret); /* twice is fine */
    log_add_secret(lg, "abc");  /* too short: ignored */
    log_add_secret(lg, "");
    log_add_secret(lg, NULL);
    log_add_secret(lg, "hunter2");
    log_add_secret(lg, "hunter2-extended"); /* contains another secret: removed whole */

    log_debug(lg, "auth", "Authorization: Bearer %s; again:%s!", secret, secret);
    log_info(lg, "auth", "prefix-%s-suffix", secret);
    log_error(lg, "auth", "%s", secret);
    log_info(lg, "auth", "abcdef stays");
    log_info(lg, "auth", "pw=hunter2 and hunter2-extended");
    log_close(lg);

    size_t len, n;
    cleanup_free char *s = read_all(path, &len);
    assert_null(strstr(s, secret));
    assert_null(strstr(s, "s3cr3t"));
    assert_null(strstr(s, "hunter2"));
    cleanup_free char *copy = xstrdup(s);
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 5);
    check_line(lines[0], " - DEBUG - manta_node.auth - Authorization: Bearer ***; again:***!");
    check_line(lines[1], " - INFO - manta_node.auth - prefix-***-suffix");
    check_line(lines[2], " - ERROR - manta_node.auth - ***");
    check_line(lines[3], " - INFO - manta_node.auth - abcdef stays");
    check_line(lines[4], " - INFO - manta_node.auth - pw=*** and ***");

    /* The console got exactly the same lines. */
    fflush(con);
    long clen = ftell(con);
    assert_int_equal(clen, (long)len);
    rewind(con);
    cleanup_free char *cs = xmalloc((size_t)clen + 1);
    assert_int_equal(fread(cs, 1, (size_t)clen, con), (size_t)clen);
    cs[clen] = '\0';
    fclose(con);
    assert_null(strstr(cs, "s3cr3t"));
    assert_string_equal(cs, copy);
}

static void test_secret_console_only(void **state)
{
    FILE *con = tmpfile();
    assert_non_null(con);
    log_options o = {.level = LOG_DEBUG, .to_console = true, .console = con, .program = "p"};
    mt_error *err = NULL;
    logger *lg = log_open(&o, &err);
    assert_non_null(lg);
    log_debug(lg, "c", "before: token-12345");
    log_add_secret(lg, "token-12345");
    log_debug(lg, "c", "after: token-12345 token-12345");
    log_close(lg);
    rewind(con);
    char buf[512];
    size_t got = fread(buf, 1, sizeof(buf) - 1, con);
    buf[got] = '\0';
    fclose(con);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    *nl = '\0';
    check_line(buf, " - DEBUG - p.c - before: token-12345");
    char *second = nl + 1;
    assert_int_equal(second[strlen(second) - 1], '\n');
    second[strlen(second) - 1] = '\0';
    check_line(second, " - DEBUG - p.c - after: *** ***");
}

/* ---- reopen ---- */

static void test_reopen_after_rename(void **state)
{
    cleanup_free char *path = fx_path(state, "logs/node.log");
    cleanup_free char *moved = fx_path(state, "logs/node.log.moved");
    logger *lg = open_file_logger(path, LOG_INFO, 0, 0);
    log_info(lg, "a", "before");
    assert_int_equal(rename(path, moved), 0);
    log_info(lg, "a", "still old file");
    mt_error *err = NULL;
    assert_int_equal(log_reopen(lg, &err), 0);
    assert_null(err);
    log_info(lg, "a", "after");

    /* Even the directory removed: reopen recreates it. */
    cleanup_free char *dir = fx_path(state, "logs");
    cleanup_free char *moved2 = fx_path(state, "node.log.2");
    cleanup_free char *p1 = fx_path(state, "node.log.1");
    assert_int_equal(rename(path, moved2), 0);
    assert_int_equal(rename(moved, p1), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(log_reopen(lg, &err), 0);
    log_info(lg, "a", "recreated");
    log_close(lg);

    size_t len, n;
    cleanup_free char *s1 = read_all(p1, &len);
    cleanup_free char **l1 = split_lines(s1, len, &n);
    assert_int_equal(n, 2);
    check_line(l1[0], " - INFO - manta_node.a - before");
    check_line(l1[1], " - INFO - manta_node.a - still old file");
    cleanup_free char *s2 = read_all(moved2, &len);
    cleanup_free char **l2 = split_lines(s2, len, &n);
    assert_int_equal(n, 1);
    check_line(l2[0], " - INFO - manta_node.a - after");
    cleanup_free char *s3 = read_all(path, &len);
    cleanup_free char **l3 = split_lines(s3, len, &n);
    assert_int_equal(n, 1);
    check_line(l3[0], " - INFO - manta_node.a - recreated");
}

static void test_reopen_failure_keeps_logging(void **state)
{
    cleanup_free char *path = fx_path(state, "d/node.log");
    cleanup_free char *dir = fx_path(state, "d");
    cleanup_free char *moved = fx_path(state, "moved.log");
    logger *lg = open_file_logger(path, LOG_INFO, 0, 0);
    log_info(lg, "a", "one");
    /* Replace the directory by a plain file: reopen fails and the old descriptor is kept. */
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(rmdir(dir), 0);
    mt_error *err = NULL;
    assert_int_equal(fs_write_atomic(dir, "x", 1, 0644, &err), 0);
    assert_int_equal(log_reopen(lg, &err), -1);
    assert_non_null(err);
    mt_error_free(&err);
    log_info(lg, "a", "two");
    log_close(lg);
    size_t len, n;
    cleanup_free char *s = read_all(moved, &len);
    cleanup_free char **lines = split_lines(s, len, &n);
    assert_int_equal(n, 2);
    check_line(lines[1], " - INFO - manta_node.a - two");
}

/* ---- threads ---- */

#define NTHREADS    4
#define PER_THREAD  1000
#define THREAD_MAX  8192
#define THREAD_BACK 200

typedef struct thread_arg {
    logger *lg;
    int id;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        log_info(a->lg, "worker", "thread %d message %04d %s", a->id, i, "padding padding padding");
        if (i % 250 == 0) {
            log_add_secret(a->lg, "never-logged-secret");
            log_set_level(a->lg, LOG_INFO);
        }
        if (a->id == 0 && i % 300 == 150)
            log_reopen(a->lg, NULL);
    }
    return NULL;
}

static void test_threads(void **state)
{
    cleanup_free char *path = fx_path(state, "node.log");
    logger *lg = open_file_logger(path, LOG_INFO, THREAD_MAX, THREAD_BACK);
    pthread_t th[NTHREADS];
    thread_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (thread_arg){lg, i};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    log_close(lg);

    static unsigned char seen[NTHREADS][PER_THREAD];
    memset(seen, 0, sizeof(seen));
    int last[NTHREADS];
    size_t total = 0;
    int files = 0;
    /* Oldest first, so per-thread numbers must increase across files. */
    for (int i = 0; i < NTHREADS; i++)
        last[i] = -1;
    for (int k = THREAD_BACK + 1; k >= 0; k--) {
        cleanup_free char *p = k ? xasprintf("%s.%d", path, k) : xstrdup(path);
        if (!fs_exists(p))
            continue;
        assert_true(k <= THREAD_BACK);
        files++;
        assert_true(file_size(p) <= THREAD_MAX);
        size_t len, n;
        cleanup_free char *s = read_all(p, &len);
        cleanup_free char **lines = split_lines(s, len, &n);
        for (size_t j = 0; j < n; j++) {
            const char *msg = check_shape(lines[j]);
            static const char prefix[] = " - INFO - manta_node.worker - ";
            if (strncmp(lines[j] + TS_LEN, prefix, strlen(prefix)) != 0)
                fail_msg("bad line \"%s\"", lines[j]);
            int t = -1, num = -1, used = 0;
            if (sscanf(msg, "thread %d message %d padding padding padding%n", &t, &num, &used) !=
                    2 ||
                msg[used] != '\0' || t < 0 || t >= NTHREADS || num < 0 || num >= PER_THREAD)
                fail_msg("bad line \"%s\"", lines[j]);
            assert_int_equal(seen[t][num], 0);
            seen[t][num] = 1;
            assert_true(num > last[t]);
            last[t] = num;
            total++;
        }
    }
    assert_int_equal(total, NTHREADS * PER_THREAD);
    assert_true(files > 10); /* it did rotate, many times */
}

int main(void)
{
    umask(022);
    if (regcomp(&line_re, LINE_RE, REG_EXTENDED) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_program, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newlines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message, setup, teardown),
        cmocka_unit_test(test_level_names),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_dirs_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sinks_and_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_existing_big_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_no_backups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rotation_when_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_redaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_console_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_failure_keeps_logging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    regfree(&line_re);
    return rc;
}
