/* backoff.c - reconnect delays with jitter. */
#include "backoff.h"

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
