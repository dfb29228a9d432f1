/* user_service.h - core.user_services (UserManagement, ClusterManagement, SwarmManagement,
 * ModuleManagement: the 58 RPCs the Manta SDK's UserAPI/AsyncUserAPI call), served on the node
 * service's gRPC server (node_service.c routes "/core.user_services.*" here) or on its own
 * address (user_listen). What is implemented and what answers UNIMPLEMENTED: docs/manager-
 * user-api.md. Calls run on gRPC threads; the manager lock is taken only briefly. */
#ifndef MANTA_MGR_USER_SERVICE_H
#define MANTA_MGR_USER_SERVICE_H

#include <stdbool.h>

#include "mgr.h"
#include "swarmfile.h"
#include "users.h"

#define USER_SVC_PREFIX "/core.user_services."

typedef struct user_method user_method;

/* Who makes a user call. */
typedef struct user_caller {
    const user_method *meth;
    bool signed_in;               /* a valid user token came with the call */
    char name[USER_NAME_MAX + 1]; /* its user ("" without one: tokens off, or an open RPC) */
    char jti[TOKEN_JTI_LEN + 1];  /* its token id */
    char who[USER_NAME_MAX + 80]; /* the identity the per-caller call cap counts */
} user_caller;

/* Load (or create) the cluster id and set up live notifications. Before the servers start. */
int user_service_init(manager *m, mt_error **err);
void user_service_free(manager *m);

/* Find the method and check the caller's token. False with the call finished (UNIMPLEMENTED
 * for an unknown method, UNAUTHENTICATED for a missing/refused/revoked token). */
bool user_service_identify(manager *m, rpc_call *call, user_caller *uc);
/* Serve an identified call to its end. */
void user_service_serve(manager *m, rpc_call *call, const user_caller *uc);

/* Check a user token: signature, expiry, not signed out, its user still there. 0 with name and
 * jti filled, or -1 with *err: a sentence for the user, its status RPC_UNAUTHENTICATED (refused)
 * or RPC_INTERNAL (the store could not be read). */
int user_token_check(manager *m, const char *tok, char name[USER_NAME_MAX + 1],
                     char jti[TOKEN_JTI_LEN + 1], mt_error **err);
/* Wait until the generation of what live streams follow differs from seen, at most timeout_ms
 * (ms); returns the generation now. Any thread, no lock held. */
uint64_t user_service_wait(manager *m, uint64_t seen, long timeout_ms);

/* Something a live stream may be waiting for changed (a result, a log, a swarm's status).
 * Any thread, any lock state except the user service's own. */
void user_service_notify(manager *m);

/* Stop a swarm (xid; status: its status in the store) for user `who`, as StopSwarm does: a
 * running run is cancelled, a PENDING swarm marked STOPPED. 1 stopped, 0 it had already ended,
 * -1 with *err (the store failed). Lock not held. */
int user_swarm_stop(manager *m, const char *xid, const char *status, const char *who,
                    mt_error **err);

/* Keep the module archives of a swarm file's tasks in the store (kind "run_module"), so that
 * its run can resume after a restart. Lock may be held. */
void us_keep_modules(manager *m, const swarm_def *def);
/* The swarm_def of a stored swarm (graph, networks and module archives from the store), for
 * resuming its run; NULL with *err set (what is missing) otherwise. Returns owned. */
swarm_def *us_load_def(manager *m, const char *xid, const char *name, mt_error **err);

#endif
