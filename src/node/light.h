/* light.h - the light service (node.light_service.Local and .World) that running tasks call.
 * It binds where only the node's tasks can reach it (network.light_service_host, loopback by
 * default) on a kernel-chosen port unless one is configured (binding port 0: no
 * bind-test-then-close race). */
#ifndef MANTA_LIGHT_H
#define MANTA_LIGHT_H

#include "err.h"

struct node;
struct light_service;

/* Start serving; *port receives the bound port. Returns owned or NULL with *err. */
struct light_service *light_start(struct node *n, int *port, mt_error **err);
void light_stop(struct light_service *ls);

#endif
