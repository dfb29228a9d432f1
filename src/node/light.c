/* light.c - the light service's server. The RPCs (datasets and the swarm's world) are the
 * light-service issue; until then every call is answered UNIMPLEMENTED with a clear message,
 * which the task runtime does not retry. */
#include "light.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "mem.h"
#include "rpc.h"

struct light_service {
    node *n;
    rpc_server *srv;
};

static void handle(void *ctx, rpc_call *call)
{
    struct light_service *ls = ctx;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s is not available in this version of manta-node",
             rpc_call_method(call));
    log_warn(ls->n->log, "light", "%s (from %s)", msg, rpc_call_peer(call));
    rpc_call_finish(call, RPC_UNIMPLEMENTED, msg);
}

struct light_service *light_start(node *n, int *port, mt_error **err)
{
    struct light_service *ls = xcalloc(1, sizeof(*ls));
    ls->n = n;
    const char *host = n->cfg.network.light_service_host;
    cleanup_free char *addr =
        strchr(host, ':')
            ? xasprintf("[%s]:%lld", host, (long long)n->cfg.network.light_service_port)
            : xasprintf("%s:%lld", host, (long long)n->cfg.network.light_service_port);
    ls->srv = rpc_server_start(addr, NULL, 16, handle, ls, port, err);
    if (!ls->srv) {
        free(ls);
        mt_error_wrap(err, "cannot start the light service on %s", addr);
        return NULL;
    }
    return ls;
}

void light_stop(struct light_service *ls)
{
    if (!ls)
        return;
    rpc_server_stop(ls->srv, 1000);
    free(ls);
}
