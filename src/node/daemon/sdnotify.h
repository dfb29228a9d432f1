/* sdnotify.h - readiness and status for systemd (Type=notify) without libsystemd: one datagram
 * to $NOTIFY_SOCKET. A no-op when the variable is unset. */
#ifndef MANTA_SDNOTIFY_H
#define MANTA_SDNOTIFY_H

/* Send e.g. "READY=1\nSTATUS=Registered" ; returns 0 if sent or not under systemd. */
int sd_notify_send(const char *state);

#endif
