/* tcpprobe.h - how much a process's TCP connections to a peer port have moved, read from the
 * kernel (TCP_INFO). gRPC hands a large message over whole, so a stream cannot tell from its
 * own operations whether a 300 MiB send is creeping over a slow link or stuck behind a peer
 * that stopped reading; the kernel's byte counters of the connection can. */
#ifndef MANTA_TCPPROBE_H
#define MANTA_TCPPROBE_H

#include <stdint.h>

/* The sum of bytes acknowledged by the peer and bytes received from it over every TCP socket
 * of this process connected to remote port `port` (1..65535). It only grows while data moves;
 * 0 when there is none. Reads /proc/self/fd: call it about once a second, not per message. */
uint64_t tcp_progress_to_port(int port);

#endif
