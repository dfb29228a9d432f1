/* node_service.h - the manager side of node.node_service.Node (all 15 RPCs) on gRPC threads. */
#ifndef MANTA_MGR_NODE_SERVICE_H
#define MANTA_MGR_NODE_SERVICE_H

#include "mgr.h"

/* Serve on m->cfg.listen (nodes, and users unless user_listen is set; then users on their
 * own server there): sets m->srv, m->port, m->usrv, m->user_port, m->us. */
int node_service_start(manager *m, mt_error **err);
void node_service_stop(manager *m);

/* Handling of what nodes publish on MQTT (main thread): topic "manager/<what>". */
void node_service_on_mqtt(manager *m, const char *topic, const void *payload, size_t len);

#endif
