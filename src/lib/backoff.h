/* backoff.h - reconnect delays: exponential back-off with jitter, shared by the node's and the
 * manager's broker connections (and anything else that retries a peer). */
#ifndef MANTA_BACKOFF_H
#define MANTA_BACKOFF_H

/* The delay in seconds before attempt `attempt` (0 = the first retry): base * 2^attempt, capped
 * at max, then scaled by a random factor in [0.5, 1] so that many clients do not retry in step. */
double backoff_delay(double base, double max, int attempt);

/* The gRPC clients' retry policy (the SDK's and the reference node's): before retry `attempt`
 * (1 = the first), 0.2 s * 2^(attempt - 1), capped at 10 s, plus 0-20 % jitter. In seconds. */
double backoff_retry_delay(int attempt);

/* Sleep for `seconds` (the calling thread; not for an event loop). */
void backoff_sleep(double seconds);

/* A random number in [0, 1] (getrandom; a clock-derived value if that fails). */
double backoff_jitter01(void);

#endif
