/* commands.c - MQTT command dispatch; see commands.h. */
#include "commands.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "common/tasks.pb-c.h"
#include "light.h"
#include "mem.h"
#include "tasks.h"
#include "wire.h"

/* Printable excerpt of a payload for messages (at most 64 characters). */
static void excerpt(const void *payload, size_t len, char out[80])
{
    const unsigned char *p = payload;
    size_t n = len < 64 ? len : 64, o = 0;
    for (size_t i = 0; i < n && o < 70; i++)
        out[o++] = isprint(p[i]) ? (char)p[i] : '?';
    if (len > 64) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void collect_information(node *n, const void *payload, size_t len)
{
    char what[64];
    size_t k = len < sizeof(what) - 1 ? len : sizeof(what) - 1;
    memcpy(what, payload, k);
    what[k] = '\0';
    /* trim */
    char *s = what;
    while (isspace((unsigned char)*s))
        s++;
    for (size_t e = strlen(s); e && isspace((unsigned char)s[e - 1]); e--)
        s[e - 1] = '\0';
    if (memchr(payload, '\0', len) || len >= sizeof(what))
        s = "";

    Common__System__PairId pid;
    wire_pair_id(&pid, n->id);
    size_t blen;
    if (strcmp(s, "set_node_status") == 0) {
        Common__Informations__NodeStatus st = COMMON__INFORMATIONS__NODE_STATUS__INIT;
        st.node_id = &pid;
        st.status = COMMON__INFORMATIONS__NODE_STATUS_ENUM__CONNECTED;
        uint8_t *buf = wire_pack(&st.base, &blen);
        agent_call_async(n, "SetNodeStatus", buf, blen);
    } else if (strcmp(s, "set_system_summary") == 0) {
        uint8_t *buf = agent_system_summary(n, &blen);
        if (buf)
            agent_call_async(n, "SetSystemSummary", buf, blen);
    } else if (strcmp(s, "set_overviews") == 0) {
        /* Re-scan, as the reference does; keep the old view if a dataset went missing. */
        dataset_set fresh;
        mt_error *e = NULL;
        if (datasets_scan(&n->cfg.datasets.mappings, &fresh, &e) == 0) {
            datasets_release(&n->datasets);
            n->datasets = fresh;
            if (n->light)
                light_set_datasets(n->light, &n->datasets);
        } else {
            char msg[512];
            snprintf(msg, sizeof(msg), "Dataset scan failed: %s", mt_error_msg(e));
            mt_error_free(&e);
            agent_send_error(n, WIRE_NODE_ERROR, msg);
        }
        Common__Informations__DatasetOverviews d = COMMON__INFORMATIONS__DATASET_OVERVIEWS__INIT;
        wire_overviews wo;
        wire_overviews_fill(&wo, &n->datasets);
        d.node_id = &pid;
        d.content = &wo.ov;
        uint8_t *buf = wire_pack(&d.base, &blen);
        wire_overviews_release(&wo);
        agent_call_async(n, "SetOverviews", buf, blen);
    } else {
        char ex[80], msg[160];
        excerpt(payload, len, ex);
        snprintf(msg, sizeof(msg), "Not allowed method: %s", ex);
        agent_send_error(n, WIRE_MQTT_ERROR, msg);
    }
}

/* Task commands: a payload that does not parse is reported (MQTT_ERROR) and changes nothing. */
static ProtobufCMessage *parse(node *n, const ProtobufCMessageDescriptor *desc, const char *type,
                               const void *payload, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, payload);
    if (!m) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "Unable to convert message into '%s': malformed payload (%zu "
                 "bytes)",
                 type, len);
        agent_send_error(n, WIRE_MQTT_ERROR, msg);
    }
    return m;
}

void commands_dispatch(node *n, const char *topic, const void *payload, size_t len)
{
    const char *slash = strrchr(topic, '/');
    const char *cmd = slash ? slash + 1 : topic;
    log_debug(n->log, "commands", "Command '%s' (%zu bytes) on %s", cmd, len, topic);
    if (strcmp(cmd, "collect_information") == 0) {
        collect_information(n, payload, len);
    } else if (strcmp(cmd, "stop_node") == 0) {
        fprintf(n->out, "Received stop_node from the manager, stopping node...\n");
        fflush(n->out);
        agent_request_stop(n, "stop_node from the manager");
    } else if (strcmp(cmd, "deploy_task") == 0) {
        ProtobufCMessage *m =
            parse(n, &common__tasks__mqtt_task__descriptor, "MqttTask", payload, len);
        if (m && n->tasks && !n->stopping && !n->draining)
            tasks_deploy(n->tasks, (Common__Tasks__MqttTask *)m);
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
    } else if (strcmp(cmd, "stop_task") == 0) {
        ProtobufCMessage *m = parse(n, &common__system__env_id__descriptor, "EnvId", payload, len);
        if (m && n->tasks) {
            Common__System__EnvId *e = (Common__System__EnvId *)m;
            tasks_stop(n->tasks, wire_node_id(e->swarm_id), wire_node_id(e->task_id));
        }
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
    } else if (strcmp(cmd, "stop_swarm") == 0) {
        ProtobufCMessage *m =
            parse(n, &common__system__pair_id__descriptor, "PairId", payload, len);
        if (m && n->tasks)
            tasks_stop_swarm(n->tasks, wire_node_id((Common__System__PairId *)m));
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "Not allowed method: %.100s", cmd);
        agent_send_error(n, WIRE_MQTT_ERROR, msg);
    }
}
