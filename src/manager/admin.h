/* admin.h - the admin interface: one JSON request line in, one JSON document out, over a unix
 * socket (mode 0600) beside the store. Used by `manta_manager nodes|swarms|results|logs|submit|
 * stop`. Requests: {"cmd": "nodes"|"swarms"|"results"|"logs"|"submit"|"stop"|"status", ...}. */
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
 * {"error": "..."} is turned into *err. */
json_t *admin_request(const char *path, json_t *req, mt_error **err);

/* The same requests answered from a store file when no manager is running (swarms, results,
 * logs and status of past runs; `nodes` is then empty and `submit`/`stop` do nothing). */
json_t *admin_local(const char *store_path, json_t *req, mt_error **err);

#endif
