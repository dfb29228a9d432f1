/* admin.h - the admin interface: one JSON request line in, one JSON document out, over a unix
 * socket (mode 0600) beside the store. Used by `manta_manager nodes|swarms|results|logs|submit|
 * stop`. Requests: {"cmd": "nodes"|"swarms"|"results"|"logs"|"submit"|"stop"|"status", ...,
 * "store": path (optional: answered only by the manager of that store file)}. */
#ifndef MANTA_MGR_ADMIN_H
#define MANTA_MGR_ADMIN_H

#include <jansson.h>

#include "mgr.h"

typedef struct admin_server admin_server;

/* Listen on path (a stale socket is replaced; a live one is an error). Serves on its own
 * thread until admin_stop. */
admin_server *admin_start(manager *m, const char *path, mt_error **err);
void admin_stop(admin_server *a); /* takes a; NULL is fine */

/* Client side: send a request, return the answer (owned) or NULL with *err. An answer with
 * {"error": "..."} is turned into *err. MT_ERR_NOTFOUND: nothing answers on path (no socket,
 * or a stale one), or the request named a store ("store": path) and the manager answering
 * serves another one (it answers {"error", "other_store": true}). */
json_t *admin_request(const char *path, json_t *req, mt_error **err);

/* The read-only requests (nodes, swarms, status, results, logs) answered from a store file, for
 * when no manager serves it: `nodes` lists every node that registered, as last recorded, none
 * connected; the others answer as the manager would (without the aliases of tasks of runs it
 * kept in memory). Any other request is refused (MT_ERR_USAGE). */
json_t *admin_local(const char *store_path, json_t *req, mt_error **err);
bool admin_read_only(const char *cmd); /* one of those requests */

#endif
