/* backoff.c - reconnect delays with jitter. */
#include "backoff.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

double backoff_jitter01(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint32_t)ts.tv_nsec * 2654435761u;
    }
    return (double)r / 4294967295.0;
}

double backoff_delay(double base, double max, int attempt)
{
    if (attempt < 0)
        attempt = 0;
    if (attempt > 30)
        attempt = 30;
    double d = base * pow(2.0, attempt);
    if (d > max)
        d = max;
    return d * (0.5 + 0.5 * backoff_jitter01());
}

double backoff_retry_delay(int attempt)
{
    if (attempt < 1)
        attempt = 1;
    if (attempt > 30)
        attempt = 30;
    double base = 0.2 * pow(2.0, attempt - 1);
    if (base > 10)
        base = 10;
    return base * (1.0 + 0.2 * backoff_jitter01());
}

void backoff_sleep(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
