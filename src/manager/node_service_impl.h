/* node_service_impl.h - what the files of the node service share: node_service.c (servers,
 * dispatch, calls in progress per caller), node_auth.c (callers and node bindings),
 * node_registry.c (registration, liveness, node information), node_tasks.c (task updates,
 * errors, ScheduleTask, StopSwarm) and node_data.c (logs, results, globals). Not for other
 * modules: they use node_service.h. */
#ifndef MANTA_MGR_NODE_SERVICE_IMPL_H
#define MANTA_MGR_NODE_SERVICE_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/system.pb-c.h"
#include "mgr.h"

#define SUBJECT_MAX sizeof(((mgr_node *)0)->alias)

/* Calls in progress of one caller (entries exist while n > 0). */
typedef struct caller_calls {
    char *who;
    int n;
    bool warned; /* a refusal was logged since n last was 0 */
} caller_calls;

/* A node id and the token subject it acts for. */
typedef struct bound_id {
    node_id id;
    char *subject;
} bound_id;

struct node_service {
    pthread_mutex_t mu;      /* busy and bound; a leaf lock, held briefly */
    pthread_mutex_t bind_mu; /* one binding decision at a time (held across the store write) */
    caller_calls *busy;
    size_t nbusy, capbusy;
    bound_id *bound; /* sorted by id */
    size_t nbound, capbound;
};

/* Who makes a call. */
typedef struct caller {
    bool checked;               /* tokens on: node ids are checked against the subject */
    char subject[SUBJECT_MAX];  /* the token's subject ("" with tokens off) */
    char shown[SUBJECT_MAX];    /* the same, safe to log and to quote */
    bool has_natural;           /* the subject has a node id (a hex alias may be out of range) */
    node_id natural;            /* node_id_from_alias(subject) */
    char who[SUBJECT_MAX + 64]; /* the identity the call cap counts: subject or peer */
} caller;

static inline node_id pid(const Common__System__PairId *p)
{
    node_id id = {0, 0};
    if (p) {
        id.head = p->head;
        id.tail = p->tail;
    }
    return id;
}

static inline void xid_of(const Common__System__PairId *p, char out[NODE_XID_MAX + 1])
{
    node_id_to_xid(pid(p), out);
}

/* node_service.c */
/* Answer a unary call with a packed message (or Ok when msg is NULL). */
void ns_reply(rpc_call *call, const ProtobufCMessage *msg);
/* Receive one request message and unpack it; on failure the call is finished. */
ProtobufCMessage *ns_recv_one(rpc_call *call, const ProtobufCMessageDescriptor *d);

/* node_auth.c */
/* Who calls: the token's subject (tokens on), or the connection (tokens off). Returns false
 * with the call finished when the token is refused. */
bool ns_identify(manager *m, rpc_call *call, const char *name, caller *c);
/* Bind id to subject, replacing its binding if any (ns->mu held). */
void ns_bound_put(struct node_service *ns, node_id id, const char *subject);
/* The subject id is bound to (owned), or NULL. */
char *ns_bound_owner(struct node_service *ns, node_id id);
/* May the caller act for node id? */
bool ns_may_act_for(manager *m, const caller *c, node_id id);
/* Refuse a call that names a node its token may not act for. */
void ns_deny(manager *m, rpc_call *call, const caller *c, const char *rpc, node_id id);
/* Check the node a request acts for; on refusal the call is finished and false returned. */
bool ns_act_for(manager *m, rpc_call *call, const caller *c, const char *rpc,
                const Common__System__PairId *p);
/* RegisterNode of id: may the caller register it (binding it if so)? False with the call
 * finished otherwise. */
bool ns_claim(manager *m, rpc_call *call, const caller *c, node_id id);

/* The methods of node.node_service.Node (the table in node_service.c), by file; each serves
 * its call to its end. */

/* node_registry.c */
/* A node was heard from (on MQTT when mqtt): alive, and known again if it was not (lock
 * held). ns_touch: by a call. */
void ns_touch_from(manager *m, node_id id, bool mqtt);
void ns_touch(manager *m, node_id id);
void ns_register(manager *m, rpc_call *call, const caller *c);
void ns_ping(manager *m, rpc_call *call, const caller *c);
void ns_set_node_status(manager *m, rpc_call *call, const caller *c);
void ns_set_system_summary(manager *m, rpc_call *call, const caller *c);
void ns_set_overviews(manager *m, rpc_call *call, const caller *c);
void ns_mqtt_system_summary(manager *m, const void *payload, size_t len);
void ns_mqtt_node_status(manager *m, const void *payload, size_t len);

/* node_tasks.c */
void ns_send_error(manager *m, rpc_call *call, const caller *c);
void ns_stop_swarm(manager *m, rpc_call *call, const caller *c);
void ns_update_task(manager *m, rpc_call *call, const caller *c);
void ns_schedule_task(manager *m, rpc_call *call, const caller *c);
void ns_mqtt_task_update(manager *m, const void *payload, size_t len);

/* node_data.c */
void ns_add_logs(manager *m, rpc_call *call, const caller *c);
void ns_get_result(manager *m, rpc_call *call, const caller *c);
void ns_add_result(manager *m, rpc_call *call, const caller *c);
void ns_get_global(manager *m, rpc_call *call, const caller *c);
void ns_set_global(manager *m, rpc_call *call, const caller *c);

#endif
