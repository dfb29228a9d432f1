/* clock.h - the clocks of the project: elapsed time, the time of day, and their text forms.
 *
 * Two clocks, never mixed: the monotonic clock for timeouts, deadlines and durations (it does
 * not jump when the time of day is set), and the wall clock for times that are stored, sent
 * or shown. Reading a clock takes no lock and allocates nothing, so the task supervisor (a
 * forked process of a threaded program) may call clock_mono_ms and clock_wall_ms.
 */
#ifndef MANTA_CLOCK_H
#define MANTA_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (from an arbitrary start): for timeouts and durations. */
int64_t clock_mono_ms(void);

/* Milliseconds since the epoch on CLOCK_REALTIME: for times that are stored or shown. */
int64_t clock_wall_ms(void);

/* t + ms (ms may be negative), normalised (0 <= tv_nsec < 1e9). */
struct timespec clock_ts_add_ms(struct timespec t, int64_t ms);

/* The earlier of two deadlines in ms, where 0 means none (so 0 only when both are 0). */
static inline int64_t clock_earlier(int64_t a, int64_t b)
{
    return !a || (b && b < a) ? b : a;
}

/* true if a is earlier than b. */
bool clock_ts_before(struct timespec a, struct timespec b);

/* Now + ms on CLOCK_MONOTONIC: the deadline for pthread_cond_timedwait on a condition variable
 * set to CLOCK_MONOTONIC (pthread_condattr_setclock). */
struct timespec clock_mono_after(int64_t ms);
/* Initialise *cv to time its waits on CLOCK_MONOTONIC (deadlines from clock_mono_after);
 * destroy with pthread_cond_destroy. */
void clock_cond_init(pthread_cond_t *cv);

/* The time of day as "YYYY-MM-DDTHH:MM:SS", local time, no zone (the instance and config
 * files' start and creation times). Returns owned. */
char *clock_iso_local(void);

/* The time of day as "YYYY-MM-DDTHH:MM:SSZ", UTC. Returns owned. */
char *clock_iso_utc(void);

/* Room for clock_utc_text's text, with its NUL. */
#define CLOCK_TEXT_MAX 64

/* epoch_s (seconds since the epoch) as "YYYY-MM-DD HH:MM:SS UTC", for messages, into out. */
void clock_utc_text(int64_t epoch_s, char out[CLOCK_TEXT_MAX]);

#endif
