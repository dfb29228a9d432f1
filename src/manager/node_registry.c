/* node_registry.c - nodes as the manager knows them: RegisterNode, Ping, SetNodeStatus,
 * SetSystemSummary and SetOverviews, their MQTT counterparts, and nodes known again after a restart
 * of the manager. */
#include "node_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/informations.pb-c.h"
#include "common/system.pb-c.h"
#include "clock.h"
#include "mem.h"
#include "node_service_impl.h"
#include "runner.h"
#include "strbuf.h"
#include "utf8.h"

static char **split_names(const char *joined);

/* A node this manager does not know speaks (it registered with an earlier run of the manager
 * and stayed connected through its restart): know it again from the store and its binding,
 * and ask it for its datasets and its metrics (collect_information), which it sends at once.
 * Lock held. */
static mgr_node *adopt(manager *m, node_id id, bool mqtt)
{
    mgr_node *n = xcalloc(1, sizeof(*n));
    n->id = id;
    node_id_to_xid(id, n->xid);
    cleanup_free char *owner = m->ns ? ns_bound_owner(m->ns, id) : NULL;
    snprintf(n->alias, sizeof(n->alias), "%s", owner ? owner : "");
    store_node *rows = NULL;
    size_t nrows = 0;
    mt_error *err = NULL;
    bool stored = false;
    if (store_node_list(m->st, &rows, &nrows, &err) == 0) {
        for (size_t i = 0; i < nrows; i++)
            if (!strcmp(rows[i].id, n->xid)) {
                stored = true;
                utf8_copy(n->hostname, sizeof(n->hostname), rows[i].hostname);
                n->datasets = split_names(rows[i].datasets);
            }
        store_nodes_free(rows, nrows);
    }
    mt_error_free(&err);
    if (!n->datasets)
        n->datasets = xcalloc(1, sizeof(char *));
    n->connected = true;
    n->ready = mqtt; /* heard on MQTT: subscribed, commands reach it */
    n->last_seen_ms = clock_mono_ms();
    n->running = (unsigned)runner_node_running(m, id);
    m->nodes = xrealloc(m->nodes, (m->nnodes + 1) * sizeof(*m->nodes));
    m->nodes[m->nnodes++] = n;
    if (stored)
        store_node_set_status(m->st, n->xid, "CONNECTED", clock_wall_ms(), &err);
    else {
        store_node rec = {.id = n->xid,
                          .hostname = (char *)"",
                          .platform = (char *)"",
                          .datasets = (char *)"",
                          .status = (char *)"CONNECTED"};
        store_node_register(m->st, &rec, clock_wall_ms(), &err);
    }
    mt_error_free(&err);
    mgr_publish(m, n->xid, "collect_information", "set_overviews", strlen("set_overviews"));
    mgr_publish(m, n->xid, "collect_information", "set_system_summary",
                strlen("set_system_summary"));
    log_info(m->log, "nodes", "node %s (%s) is known again: it %s after the manager restarted",
             n->xid, *n->alias ? n->alias : "no alias", mqtt ? "was heard on MQTT" : "called");
    return n;
}

void ns_touch_from(manager *m, node_id id, bool mqtt)
{
    mgr_node *n = mgr_node_find(m, id);
    if (!n && (id.head || id.tail))
        n = adopt(m, id, mqtt);
    if (n) {
        n->last_seen_ms = clock_mono_ms();
        n->will_ms = 0;
        if (mqtt)
            mgr_node_heard(m, n);
        if (!n->connected) {
            n->connected = true;
            log_info(m->log, "nodes", "node %s is back", n->xid);
            mt_error *err = NULL;
            store_node_set_status(m->st, n->xid, "CONNECTED", clock_wall_ms(), &err);
            mt_error_free(&err);
        }
    }
}

void ns_touch(manager *m, node_id id)
{
    ns_touch_from(m, id, false);
}

/* Keep msg packed in *dst (replacing what it held; NULL msg keeps nothing). */
static void keep_packed(ProtobufCBinaryData *dst, const ProtobufCMessage *msg)
{
    free(dst->data);
    dst->data = NULL;
    dst->len = 0;
    if (!msg)
        return;
    size_t len = protobuf_c_message_get_packed_size(msg);
    dst->data = xmalloc(len ? len : 1);
    dst->len = protobuf_c_message_pack(msg, dst->data);
}

/* The latest MetricsSnapshot of a node, for the user services, and a sample of its load for the
 * dashboard (lock held). */
static void keep_metrics(manager *m, const Common__Informations__SetSystemSummaryRequest *s)
{
    mgr_node *n = mgr_node_find(m, pid(s->node_id));
    const Common__Informations__MetricsSnapshot *ms = s->metrics_snapshot;
    if (!n || !ms)
        return;
    keep_packed(&n->metrics, &ms->base);
    int64_t now = clock_wall_ms();
    const mgr_sample *last =
        n->hist_n ? &n->hist[(n->hist_head + n->hist_n - 1) % MGR_HIST_LEN] : NULL;
    if (last && now - last->wall_ms < MGR_HIST_EVERY_MS && now >= last->wall_ms)
        return;
    mgr_sample smp = {now, ms->cpu ? ms->cpu->usage_percent : 0,
                      ms->memory ? ms->memory->percent_used : 0};
    if (n->hist_n < MGR_HIST_LEN)
        n->hist[(n->hist_head + n->hist_n++) % MGR_HIST_LEN] = smp;
    else {
        n->hist[n->hist_head] = smp;
        n->hist_head = (n->hist_head + 1) % MGR_HIST_LEN;
    }
}

/* The overview names, cleaned (they are listed as JSON and logged). */
static char **dataset_names(const Common__Informations__Overviews *ov)
{
    size_t n = ov ? ov->n_content : 0;
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        v[i] = utf8_clean_dup(ov->content[i]->name);
    return v;
}

/* The store's comma-joined dataset names back as a vector (owned). */
static char **split_names(const char *joined)
{
    size_t cnt = *joined ? 1 : 0;
    for (const char *p = joined; *p; p++)
        cnt += *p == ',';
    char **v = xcalloc(cnt + 1, sizeof(char *));
    size_t k = 0;
    for (const char *p = joined; *p && k < cnt;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        v[k++] = xstrndup(p, l);
        p += l + (e != NULL);
    }
    return v;
}

static char *join_names(char **v)
{
    strbuf sb = {0};
    for (size_t i = 0; v && v[i]; i++)
        sb_printf(&sb, "%s%s", i ? "," : "", v[i]);
    return sb.buf ? sb_steal(&sb) : xstrdup("");
}

static void set_datasets(manager *m, node_id id, const Common__Informations__Overviews *ov)
{
    char **names = dataset_names(ov);
    cleanup_free char *joined = join_names(names);
    pthread_mutex_lock(&m->lock);
    mgr_node *n = mgr_node_find(m, id);
    if (n) {
        mem_free_strv(&n->datasets);
        n->datasets = names;
        names = NULL;
        keep_packed(&n->overviews, ov ? &ov->base : NULL);
    }
    pthread_mutex_unlock(&m->lock);
    mem_free_strv(&names);
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    mt_error *err = NULL;
    store_node_set_datasets(m->st, x, joined, &err);
    mt_error_free(&err);
}

/* ---- the methods ---------------------------------------------------------------------------- */

void ns_register(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__NodeOverview *ov = (Common__Informations__NodeOverview *)ns_recv_one(
        call, &common__informations__node_overview__descriptor);
    if (!ov)
        return;
    node_id id = pid(ov->node_id);
    if (!ns_claim(m, call, c, id)) {
        protobuf_c_message_free_unpacked(&ov->base, NULL);
        return;
    }
    char x[NODE_XID_MAX + 1];
    node_id_to_xid(id, x);
    const Common__Informations__PlatformInfo *pi = ov->platform_info;
    /* text the node chose, shown by `manta_manager nodes` (JSON) and logged: cleaned, and cut
     * at a character boundary (a cut inside one made the node vanish from the listing) */
    char hostname[sizeof(((mgr_node *)0)->hostname)];
    utf8_clean_copy(hostname, sizeof(hostname), pi ? pi->hostname : "");
    const char *alias = c->shown;
    char **names = dataset_names(ov->dataset_overviews);
    cleanup_free char *joined = join_names(names);

    pthread_mutex_lock(&m->lock);
    mgr_node *n = mgr_node_find(m, id);
    if (!n) {
        n = xcalloc(1, sizeof(*n));
        n->id = id;
        memcpy(n->xid, x, sizeof(x));
        m->nodes = xrealloc(m->nodes, (m->nnodes + 1) * sizeof(*m->nodes));
        m->nodes[m->nnodes++] = n;
    }
    memcpy(n->hostname, hostname, sizeof(hostname));
    snprintf(n->alias, sizeof(n->alias), "%s", alias); /* fits: both SUBJECT_MAX */
    mem_free_strv(&n->datasets);
    n->datasets = names;
    keep_packed(&n->platform, pi ? &pi->base : NULL);
    keep_packed(&n->overviews, ov->dataset_overviews ? &ov->dataset_overviews->base : NULL);
    n->connected = true;
    n->ready = false; /* until it is heard on MQTT */
    n->last_seen_ms = clock_mono_ms();
    pthread_mutex_unlock(&m->lock);
    mgr_wake(m);

    cleanup_free char *raw_platform =
        pi ? xasprintf("%s %s %s", pi->system, pi->release, pi->machine) : xstrdup("");
    cleanup_free char *platform = utf8_clean_dup(raw_platform);
    store_node rec = {.id = x,
                      .hostname = hostname,
                      .platform = platform,
                      .datasets = joined,
                      .status = (char *)"CONNECTED"};
    mt_error *err = NULL;
    if (store_node_register(m->st, &rec, clock_wall_ms(), &err) < 0) {
        log_msg(m->log, LOG_ERROR, "nodes", "%s", mt_error_msg(err));
        mt_error_free(&err);
    }
    log_info(m->log, "nodes", "node %s registered (%s%s%s, datasets: %s)", x, alias,
             *alias ? ", " : "", rec.hostname, *joined ? joined : "none");
    protobuf_c_message_free_unpacked(&ov->base, NULL);

    Common__Informations__Registration reg = COMMON__INFORMATIONS__REGISTRATION__INIT;
    reg.mqtt_broker_host = m->cfg.advertise_host && *m->cfg.advertise_host ? m->cfg.advertise_host
                                                                           : m->cfg.broker_host;
    reg.mqtt_broker_port =
        (uint32_t)(m->cfg.advertise_port ? m->cfg.advertise_port : m->cfg.broker_port);
    cleanup_free char *topic = xasprintf(MGR_TOPIC_PREFIX "%s/+", x);
    char *topics[1] = {topic};
    reg.n_mqtt_topics = 1;
    reg.mqtt_topics = topics;
    ns_reply(call, &reg.base);
}

void ns_ping(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__Ping *p =
        (Common__Informations__Ping *)ns_recv_one(call, &common__informations__ping__descriptor);
    if (!p)
        return;
    if (ns_act_for(m, call, c, "Ping", p->node_id)) {
        pthread_mutex_lock(&m->lock);
        ns_touch(m, pid(p->node_id));
        pthread_mutex_unlock(&m->lock);
        ns_reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

void ns_set_node_status(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__NodeStatus *s = (Common__Informations__NodeStatus *)ns_recv_one(
        call, &common__informations__node_status__descriptor);
    if (!s)
        return;
    if (ns_act_for(m, call, c, "SetNodeStatus", s->node_id)) {
        pthread_mutex_lock(&m->lock);
        mgr_node *n = mgr_node_find(m, pid(s->node_id));
        if (s->status == COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED) {
            if (n)
                mgr_node_lost(m, n, "it said it is disconnecting");
        } else {
            ns_touch(m, pid(s->node_id));
        }
        pthread_mutex_unlock(&m->lock);
        ns_reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

void ns_set_system_summary(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__SetSystemSummaryRequest *s =
        (Common__Informations__SetSystemSummaryRequest *)ns_recv_one(
            call, &common__informations__set_system_summary_request__descriptor);
    if (!s)
        return;
    if (ns_act_for(m, call, c, "SetSystemSummary", s->node_id)) {
        pthread_mutex_lock(&m->lock);
        ns_touch(m, pid(s->node_id));
        keep_metrics(m, s);
        pthread_mutex_unlock(&m->lock);
        ns_reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

void ns_set_overviews(manager *m, rpc_call *call, const caller *c)
{
    Common__Informations__DatasetOverviews *o =
        (Common__Informations__DatasetOverviews *)ns_recv_one(
            call, &common__informations__dataset_overviews__descriptor);
    if (!o)
        return;
    if (ns_act_for(m, call, c, "SetOverviews", o->node_id)) {
        set_datasets(m, pid(o->node_id), o->content);
        ns_reply(call, NULL);
    }
    protobuf_c_message_free_unpacked(&o->base, NULL);
}

/* ---- on MQTT -------------------------------------------------------------------------------- */

void ns_mqtt_system_summary(manager *m, const void *payload, size_t len)
{
    Common__Informations__SetSystemSummaryRequest *s =
        common__informations__set_system_summary_request__unpack(NULL, len, payload);
    if (s) {
        pthread_mutex_lock(&m->lock);
        ns_touch_from(m, pid(s->node_id), true);
        keep_metrics(m, s);
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
}

void ns_mqtt_node_status(manager *m, const void *payload, size_t len)
{
    Common__Informations__NodeStatus *s =
        common__informations__node_status__unpack(NULL, len, payload);
    if (s) {
        pthread_mutex_lock(&m->lock);
        mgr_node *n = mgr_node_find(m, pid(s->node_id));
        if (s->status == COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED) {
            /* Its last will (or a stop it announced) is not the end of it: a broker that
             * shuts down publishes every client's will, and a node killed and restarted
             * adopts its running tasks. It is lost if not heard from again soon (sweep). */
            if (n && n->connected && !n->will_ms) {
                n->will_ms = clock_mono_ms();
                log_info(m->log, "nodes",
                         "node %s (%s) disconnected (or its last will arrived); lost unless "
                         "heard from within %lld s",
                         n->xid, n->alias, (long long)mgr_will_grace_s(m));
            }
        } else {
            ns_touch(m, pid(s->node_id));
        }
        pthread_mutex_unlock(&m->lock);
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
}
