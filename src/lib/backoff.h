/* backoff.h - reconnect delays: exponential back-off with jitter, shared by the node's and the
 * manager's broker connections (and anything else that retries a peer). */
#ifndef MANTA_BACKOFF_H
#define MANTA_BACKOFF_H

/* The delay in seconds before attempt `attempt` (0 = the first retry): base * 2^attempt, capped
 * at max, then scaled by a random factor in [0.5, 1] so that many clients do not retry in step. */
double backoff_delay(double base, double max, int attempt);

/* A random number in [0, 1] (getrandom; a clock-derived value if that fails). */
double backoff_jitter01(void);

#endif
