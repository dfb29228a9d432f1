/* test_clock.c - the clocks (clock.h): milliseconds, timespec deadlines and the text forms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "mem.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

static void test_mono_and_wall(void **state)
{
    int64_t a = clock_mono_ms();
    sleep_ms(50);
    int64_t b = clock_mono_ms();
    assert_true(b - a >= 50);
    assert_true(b - a < 5000);
    /* the wall clock counts from the epoch, in step with time() */
    int64_t w = clock_wall_ms();
    int64_t t = (int64_t)time(NULL) * 1000;
    assert_true(w > t - 2000 && w < t + 2000);
}

static void test_ts_arithmetic(void **state)
{
    struct timespec t = {.tv_sec = 10, .tv_nsec = 999999999L};
    struct timespec r = clock_ts_add_ms(t, 1); /* a carry into the seconds */
    assert_int_equal(r.tv_sec, 11);
    assert_int_equal(r.tv_nsec, 999999L);
    r = clock_ts_add_ms(t, 2500);
    assert_int_equal(r.tv_sec, 13);
    assert_int_equal(r.tv_nsec, 499999999L);
    struct timespec u = {.tv_sec = 10, .tv_nsec = 500000L};
    r = clock_ts_add_ms(u, -1); /* a borrow from the seconds */
    assert_int_equal(r.tv_sec, 9);
    assert_int_equal(r.tv_nsec, 999500000L);
    r = clock_ts_add_ms(u, 0);
    assert_int_equal(r.tv_sec, 10);
    assert_int_equal(r.tv_nsec, 500000L);

    assert_true(clock_ts_before(u, t));
    assert_false(clock_ts_before(t, u));
    assert_false(clock_ts_before(t, t));
    struct timespec v = {.tv_sec = 9, .tv_nsec = 999999999L};
    assert_true(clock_ts_before(v, u));

    /* a deadline on the monotonic clock, as pthread_cond_timedwait takes it */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct timespec d = clock_mono_after(1000);
    int64_t diff = ((int64_t)d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(diff >= 1000 && diff < 3000);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
}

static bool iso_shaped(const char *s, bool zulu)
{
    /* YYYY-MM-DDTHH:MM:SS[Z] */
    if (strlen(s) != (zulu ? 20 : 19))
        return false;
    for (int i = 0; i < 19; i++) {
        char want = i == 4 || i == 7 ? '-' : i == 10 ? 'T' : i == 13 || i == 16 ? ':' : '0';
        if (want == '0' ? (s[i] < '0' || s[i] > '9') : s[i] != want)
            return false;
    }
    return !zulu || s[19] == 'Z';
}

static void test_iso_text(void **state)
{
    cleanup_free char *local = clock_iso_local();
    cleanup_free char *utc = clock_iso_utc();
    assert_true(iso_shaped(local, false));
    assert_true(iso_shaped(utc, true));

    /* with the zone set to UTC, local time is UTC: the same text without the Z (the seconds
     * may tick between the two reads: then try again) */
    const char *old = getenv("TZ");
    cleanup_free char *saved = xstrdup(old);
    setenv("TZ", "UTC", 1);
    tzset();
    bool same = false;
    for (int i = 0; i < 5 && !same; i++) {
        cleanup_free char *l = clock_iso_local();
        cleanup_free char *u = clock_iso_utc();
        same = strncmp(l, u, 19) == 0;
    }
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    assert_true(same);
}

static void test_utc_text(void **state)
{
    char out[CLOCK_TEXT_MAX];
    clock_utc_text(0, out);
    assert_string_equal(out, "1970-01-01 00:00:00 UTC");
    clock_utc_text(1700000000, out);
    assert_string_equal(out, "2023-11-14 22:13:20 UTC");
    /* beyond what struct tm holds (a forged token's expiry): the number, not a crash */
    clock_utc_text(INT64_MAX, out);
    assert_string_equal(out, "9223372036854775807 s after the epoch");
}

/* The earlier of two deadlines, 0 = none. */
static void test_clock_earlier(void **state)
{
    (void)state;
    assert_int_equal(clock_earlier(0, 0), 0);
    assert_int_equal(clock_earlier(0, 7), 7);
    assert_int_equal(clock_earlier(7, 0), 7);
    assert_int_equal(clock_earlier(7, 9), 7);
    assert_int_equal(clock_earlier(9, 7), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_and_wall), cmocka_unit_test(test_ts_arithmetic),
        cmocka_unit_test(test_iso_text),      cmocka_unit_test(test_utc_text),
        cmocka_unit_test(test_clock_earlier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
