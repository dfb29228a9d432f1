/* clock.c - the clocks of the project; see clock.h. */
#include "clock.h"

#include <stdio.h>

#include "mem.h"

#define NS_PER_S  1000000000L
#define NS_PER_MS 1000000L

static int64_t ms_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

int64_t clock_mono_ms(void)
{
    return ms_of(CLOCK_MONOTONIC);
}

int64_t clock_wall_ms(void)
{
    return ms_of(CLOCK_REALTIME);
}

struct timespec clock_ts_add_ms(struct timespec t, int64_t ms)
{
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * NS_PER_MS;
    if (t.tv_nsec >= NS_PER_S) {
        t.tv_sec++;
        t.tv_nsec -= NS_PER_S;
    } else if (t.tv_nsec < 0) { /* a negative ms */
        t.tv_sec--;
        t.tv_nsec += NS_PER_S;
    }
    return t;
}

bool clock_ts_before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

struct timespec clock_mono_after(int64_t ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return clock_ts_add_ms(now, ms);
}

void clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

char *clock_iso_local(void)
{
    time_t t = time(NULL);
    struct tm tm;
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
    return xstrdup(buf);
}

char *clock_iso_utc(void)
{
    time_t t = time(NULL);
    struct tm tm;
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    return xstrdup(buf);
}

void clock_utc_text(int64_t epoch_s, char out[CLOCK_TEXT_MAX])
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    /* a year beyond struct tm (a forged token's expiry): the number, not a crash */
    if (!gmtime_r(&t, &tm) || !strftime(out, CLOCK_TEXT_MAX, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, CLOCK_TEXT_MAX, "%lld s after the epoch", (long long)epoch_s);
}
