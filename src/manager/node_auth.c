/* node_auth.c - who calls the node service, and which node ids a caller may act for.
 *
 * Node bindings. A token names an alias; a node's id is node_id_from_alias(alias) for this
 * project's nodes, but a node without an alias has a MAC-derived or random id, and nothing in
 * a request ties the id it names to the token. So a call acting for node id X is allowed when
 * X is the id of the token's alias (its "natural" id), or when X is bound to the token's
 * subject; RegisterNode of an X bound to nobody binds X to the subject, and the natural id's
 * owner registering takes X back from whoever bound it first. Bindings are kept in the store
 * (node_bindings) and in memory (bound, sorted by id, for a lookup without the store's lock on
 * every call). Anything else is refused with PERMISSION_DENIED naming the node id (never the
 * token). Checked: every RPC whose request names the node it acts for - RegisterNode, Ping,
 * SetNodeStatus, SetSystemSummary, SetOverviews, SendError, UpdateTask, StopSwarm, AddTaskLogs
 * (each message's task-log header) and AddTaskResult (its first message, before the value is
 * read). ScheduleTask names the nodes to run on, not the caller, and any task may schedule on
 * any node of its swarm: it is not checked (nor are the swarm-wide GetGlobal, SetGlobal and
 * GetTaskResult). With tokens off nothing is checked. MQTT messages on manager/+ carry node ids
 * too; what a client may publish there is the broker's ACLs' business (a later issue).
 */
#include "node_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"
#include "node_service_impl.h"
#include "utf8.h"

/* Who calls: the token's subject (tokens on), or the connection (tokens off). Returns false
 * with the call finished when the token is refused. */
bool ns_identify(manager *m, rpc_call *call, const char *name, caller *c)
{
    memset(c, 0, sizeof(*c));
    if (!m->cfg.require_token) {
        snprintf(c->who, sizeof(c->who), "peer %s", rpc_call_peer(call));
        return true;
    }
    mt_error *err = NULL;
    if (token_verify(m->secret, rpc_call_metadata(call, "authorization"), clock_wall_ms() / 1000,
                     c->subject, sizeof(c->subject), &err) < 0) {
        cleanup_free char *msg = xasprintf("The node token was refused: %s", mt_error_msg(err));
        log_msg(m->log, LOG_WARNING, "nodes", "%s call from %s refused: %s", name,
                rpc_call_peer(call), mt_error_msg(err));
        mt_error_free(&err);
        rpc_call_finish(call, RPC_UNAUTHENTICATED, msg);
        return false;
    }
    c->checked = true;
    utf8_clean_copy(c->shown, sizeof(c->shown), c->subject);
    c->has_natural = node_id_from_alias(c->subject, &c->natural, NULL) == 0;
    snprintf(c->who, sizeof(c->who), "token %s", c->subject);
    return true;
}

/* ---- node bindings -------------------------------------------------------------------------- */

/* Index of id in ns->bound (mu held); when absent, false and *at = where it would go. */
static bool bound_find(const struct node_service *ns, node_id id, size_t *at)
{
    size_t lo = 0, hi = ns->nbound;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = node_id_cmp(&ns->bound[mid].id, &id);
        if (c == 0) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

/* Bind id to subject, replacing its binding if any (mu held). */
void ns_bound_put(struct node_service *ns, node_id id, const char *subject)
{
    size_t i;
    if (bound_find(ns, id, &i)) {
        free(ns->bound[i].subject);
        ns->bound[i].subject = xstrdup(subject);
        return;
    }
    if (ns->nbound == ns->capbound) {
        ns->capbound = ns->capbound ? 2 * ns->capbound : 64;
        ns->bound = xrealloc(ns->bound, ns->capbound * sizeof(*ns->bound));
    }
    memmove(&ns->bound[i + 1], &ns->bound[i], (ns->nbound - i) * sizeof(*ns->bound));
    ns->bound[i] = (bound_id){.id = id, .subject = xstrdup(subject)};
    ns->nbound++;
}

/* The subject id is bound to (owned), or NULL. */
char *ns_bound_owner(struct node_service *ns, node_id id)
{
    pthread_mutex_lock(&ns->mu);
    size_t i;
    char *owner = bound_find(ns, id, &i) ? xstrdup(ns->bound[i].subject) : NULL;
    pthread_mutex_unlock(&ns->mu);
    return owner;
}

/* May the caller act for node id? */
bool ns_may_act_for(manager *m, const caller *c, node_id id)
{
    if (!c->checked || (c->has_natural && node_id_equal(c->natural, id)))
        return true;
    cleanup_free char *owner = ns_bound_owner(m->ns, id);
    return owner && !strcmp(owner, c->subject);
}

/* Refuse a call that names a node its token may not act for. */
void ns_deny(manager *m, rpc_call *call, const caller *c, const char *rpc, node_id id)
{
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    log_warn(m->log, "nodes",
             "%s from %s refused: the token for '%s' may not act for node %s (another node's "
             "id, or one it never registered)",
             rpc, rpc_call_peer(call), c->shown, x);
    cleanup_free char *msg = xasprintf(
        "The node token for '%s' may not act for node %s: a token acts only for the node it was "
        "issued for (the node id of its alias, or one it registered first). Call with that "
        "node's own token, or register this node first.",
        c->shown, x);
    rpc_call_finish(call, RPC_PERMISSION_DENIED, msg);
}

/* Check the node a request acts for; on refusal the call is finished and false returned. */
bool ns_act_for(manager *m, rpc_call *call, const caller *c, const char *rpc,
                const Common__System__PairId *p)
{
    if (ns_may_act_for(m, c, pid(p)))
        return true;
    ns_deny(m, call, c, rpc, pid(p));
    return false;
}

/* RegisterNode of id: allowed when id is bound to the caller's subject, or bound to nobody
 * (it is then bound to the subject), or the subject's natural id (bound to the subject, taken
 * back from whoever bound it before). Returns false with the call finished otherwise. */
bool ns_claim(manager *m, rpc_call *call, const caller *c, node_id id)
{
    if (!c->checked)
        return true;
    struct node_service *ns = m->ns;
    bool natural = c->has_natural && node_id_equal(c->natural, id);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    pthread_mutex_lock(&ns->bind_mu);
    cleanup_free char *owner = ns_bound_owner(ns, id);
    bool ok = true;
    if (owner && !strcmp(owner, c->subject)) {
        /* already the caller's */
    } else if (owner && !natural) {
        ok = false;
    } else {
        mt_error *err = NULL;
        if (store_binding_set(m->st, x, c->subject, clock_wall_ms(), &err) < 0) {
            /* kept in memory all the same: it holds until the manager restarts */
            log_error(m->log, "nodes", "%s", mt_error_msg(err));
            mt_error_free(&err);
        }
        pthread_mutex_lock(&ns->mu);
        ns_bound_put(ns, id, c->subject);
        pthread_mutex_unlock(&ns->mu);
        if (owner) {
            char shown[SUBJECT_MAX];
            log_warn(m->log, "nodes",
                     "node %s was registered with the token for '%s'; it is the node id of alias "
                     "'%s', whose token takes it back",
                     x, utf8_clean_copy(shown, sizeof(shown), owner), c->shown);
        }
    }
    pthread_mutex_unlock(&ns->bind_mu);
    if (!ok) {
        log_warn(m->log, "nodes",
                 "RegisterNode from %s refused: node %s is registered with another token than "
                 "the one for '%s'",
                 rpc_call_peer(call), x, c->shown);
        cleanup_free char *msg = xasprintf(
            "Node %s is already registered with another node's token, and the token for '%s' "
            "may not take it over: a token acts only for the node it was issued for. Give this "
            "node its own alias and token (`manta_manager token create --node ALIAS`).",
            x, c->shown);
        rpc_call_finish(call, RPC_PERMISSION_DENIED, msg);
    }
    return ok;
}
