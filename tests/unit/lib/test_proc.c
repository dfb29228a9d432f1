/* test_proc.c - reading /proc (proc.h): stat lines, status fields, the mount table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

static void test_stat_parse(void **state)
{
    /* the command name may hold spaces and parentheses: the last ')' ends it */
    const char *line = "42 (a) b (c)) R 1 42 42 0 -1 4194304 100 0 0 0 17 5 0 0 20 0 1 0 987654 "
                       "1000 0 18446744073709551615\n";
    proc_stat st;
    assert_true(proc_stat_parse(line, &st));
    assert_int_equal(st.state, 'R');
    assert_int_equal(st.utime, 17);
    assert_int_equal(st.stime, 5);
    assert_int_equal(st.start, 987654);
    /* exactly 22 fields is enough */
    assert_true(proc_stat_parse("7 (x) S 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 55", &st));
    assert_int_equal(st.state, 'S');
    assert_int_equal(st.utime + st.stime, 7);
    assert_int_equal(st.start, 55);

    proc_stat untouched = {.state = '?', .start = 1};
    st = untouched;
    assert_false(proc_stat_parse("7 (x) S 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0", &st));
    assert_false(proc_stat_parse("7 (x) S 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 ", &st));
    assert_false(proc_stat_parse("7 x S 1", &st));
    assert_false(proc_stat_parse("7 (x)", &st));
    assert_false(proc_stat_parse("", &st));
    assert_false(proc_stat_parse(NULL, &st));
    assert_int_equal(st.state, '?'); /* left alone on failure */
    assert_int_equal(st.start, 1);
}

static void test_stat_self(void **state)
{
    proc_stat st;
    assert_true(proc_stat_read(getpid(), &st));
    assert_int_equal(st.state, 'R');
    assert_true(st.start > 0);
    assert_int_equal(proc_start_time(getpid()), st.start);
    /* CPU time is counted (clock ticks: burn a good number of them) */
    unsigned long long before = st.utime + st.stime;
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do /* spinning on the CPU-time clock burns CPU time */
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 300);
    assert_true(proc_stat_read(getpid(), &st));
    assert_true(st.utime + st.stime > before);
}

static void test_stat_child(void **state)
{
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0)
        _exit(0);
    unsigned long long start = proc_start_time(c);
    /* ended, not reaped: still there, as a zombie, with its start time */
    proc_stat st = {0};
    for (int i = 0; i < 500 && !(proc_stat_read(c, &st) && st.state == 'Z'); i++)
        usleep(10000);
    assert_int_equal(st.state, 'Z');
    if (start)
        assert_int_equal(st.start, start);
    assert_int_equal(waitpid(c, NULL, 0), c);
    /* reaped: gone */
    assert_false(proc_stat_read(c, &st));
    assert_int_equal(proc_start_time(c), 0);
    char v[32];
    assert_false(proc_status_field(c, "Name", v, sizeof(v)));
}

static void on_usr1(int sig) {}

static void test_status_field(void **state)
{
    char v[64];
    assert_true(proc_status_field(getpid(), "Name", v, sizeof(v)));
    assert_string_equal(v, "test_proc"); /* no blanks before, no newline after */
    assert_true(proc_status_field(getpid(), "VmRSS", v, sizeof(v)));
    long long kb = 0;
    assert_int_equal(sscanf(v, "%lld", &kb), 1);
    assert_true(kb > 0);
    assert_non_null(strstr(v, "kB"));
    /* the key is the whole name before the colon */
    assert_false(proc_status_field(getpid(), "Nam", v, sizeof(v)));
    assert_false(proc_status_field(getpid(), "NoSuchField", v, sizeof(v)));
    /* cut to fit */
    char small[4];
    assert_true(proc_status_field(getpid(), "Name", small, sizeof(small)));
    assert_string_equal(small, "tes");
    /* a caught signal shows in SigCgt (what the runc stop waits for) */
    unsigned long long cgt = 0;
    assert_true(proc_status_field(getpid(), "SigCgt", v, sizeof(v)));
    assert_int_equal(sscanf(v, "%llx", &cgt), 1);
    assert_false(cgt & (1ULL << (SIGUSR1 - 1)));
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigaction(SIGUSR1, &sa, &old);
    assert_true(proc_status_field(getpid(), "SigCgt", v, sizeof(v)));
    assert_int_equal(sscanf(v, "%llx", &cgt), 1);
    sigaction(SIGUSR1, &old, NULL);
    assert_true(cgt & (1ULL << (SIGUSR1 - 1)));
}

struct seen {
    int calls;
    bool root;
    bool fields_ok;
    int stop_after;
};

static bool on_mount(const proc_mount *m, void *ctx)
{
    struct seen *s = ctx;
    s->calls++;
    if (strcmp(m->dir, "/") == 0)
        s->root = true;
    if (!*m->dev || !*m->dir || !*m->type || !*m->opts || strchr(m->opts, ' ') ||
        strchr(m->opts, '\n'))
        s->fields_ok = false;
    return s->calls != s->stop_after;
}

static void test_mounts(void **state)
{
    struct seen s = {.fields_ok = true};
    assert_true(proc_mounts_each(on_mount, &s));
    assert_true(s.calls > 0);
    assert_true(s.root); /* every mount namespace has a root */
    assert_true(s.fields_ok);
    /* the callback stops the walk */
    struct seen one = {.fields_ok = true, .stop_after = 1};
    assert_true(proc_mounts_each(on_mount, &one));
    assert_int_equal(one.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_parse), cmocka_unit_test(test_stat_self),
        cmocka_unit_test(test_stat_child), cmocka_unit_test(test_status_field),
        cmocka_unit_test(test_mounts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
