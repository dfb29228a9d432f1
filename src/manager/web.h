/* web.h - the web dashboard (docs/dashboard.md): a small HTTP(S) server (libmicrohttpd) on
 * `http_listen` that serves the page (web/, built into the binary) and its JSON API to the
 * users of the user services, who sign in with a password or a user token.
 *
 * Threads: one thread listens; each connection has its own (a live stream blocks in its own
 * thread, never in another's), at most WEB_CONNECTIONS_MAX at once. Handlers read the store
 * and, briefly under m->lock, the node registry and the runs; the one write (stopping a swarm)
 * goes through user_swarm_stop as the SDK's StopSwarm does. */
#ifndef MANTA_MGR_WEB_H
#define MANTA_MGR_WEB_H

#include "err.h"
#include "mgr.h"

typedef struct web_server web_server;

/* Serve the dashboard on m->cfg.http_listen (over TLS with tls_cert/tls_key). Returns owned, or
 * NULL with *err (the address is wrong or taken, a certificate is unreadable). */
web_server *web_start(manager *m, mt_error **err);
/* The port bound (the one asked for, or the one the system chose for port 0). */
int web_port(const web_server *w);
/* True when served over TLS. */
bool web_tls(const web_server *w);
/* End every live stream, stop serving, free. NULL is fine. */
void web_stop(web_server *w);

#endif
