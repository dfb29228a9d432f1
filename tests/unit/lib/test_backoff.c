/* test_backoff.c - the retry delays of lib/backoff: bounds, growth, caps and jitter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "backoff.h"
#include "clock.h"

/* Reconnects: base * 2^attempt, capped, scaled into [0.5, 1] of that. */
static void test_reconnect_delay(void **state)
{
    (void)state;
    for (int round = 0; round < 200; round++) {
        double d0 = backoff_delay(1.0, 30.0, 0);
        assert_true(d0 >= 0.5 && d0 <= 1.0);
        double d3 = backoff_delay(1.0, 30.0, 3);
        assert_true(d3 >= 4.0 && d3 <= 8.0);
        double big = backoff_delay(1.0, 30.0, 1000); /* capped, no overflow */
        assert_true(big >= 15.0 && big <= 30.0);
        double neg = backoff_delay(1.0, 30.0, -4); /* as the first */
        assert_true(neg >= 0.5 && neg <= 1.0);
    }
}

/* gRPC retries: 0.2 s, 0.4 s, ... capped at 10 s, plus 0-20 %. */
static void test_retry_delay(void **state)
{
    (void)state;
    double seen_min = 1e9, seen_max = 0;
    for (int round = 0; round < 500; round++) {
        double d1 = backoff_retry_delay(1);
        assert_true(d1 >= 0.2 && d1 <= 0.24 + 1e-9);
        seen_min = d1 < seen_min ? d1 : seen_min;
        seen_max = d1 > seen_max ? d1 : seen_max;
        double d2 = backoff_retry_delay(2);
        assert_true(d2 >= 0.4 && d2 <= 0.48 + 1e-9);
        double capped = backoff_retry_delay(60);
        assert_true(capped >= 10.0 && capped <= 12.0 + 1e-9);
        double zero = backoff_retry_delay(0); /* as the first */
        assert_true(zero >= 0.2 && zero <= 0.24 + 1e-9);
    }
    assert_true(seen_max > seen_min); /* jittered */
}

static void test_sleep(void **state)
{
    (void)state;
    int64_t t0 = clock_mono_ms();
    backoff_sleep(0.05);
    assert_true(clock_mono_ms() - t0 >= 50);
    backoff_sleep(0); /* returns */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconnect_delay),
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_sleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
