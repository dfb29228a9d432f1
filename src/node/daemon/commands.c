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
#include "utf8.h"
#include "wire.h"

/* Printable excerpt of a payload for messages (at most 64 characters; ASCII only, so the text
 * stays valid UTF-8 in the SendError it goes into). */
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

static void send_node_status(node *n, Common__System__PairId *pid)
{
    Common__Informations__NodeStatus st = COMMON__INFORMATIONS__NODE_STATUS__INIT;
    st.node_id = pid;
    st.status = COMMON__INFORMATIONS__NODE_STATUS_ENUM__CONNECTED;
    size_t blen;
    uint8_t *buf = wire_pack(&st.base, &blen);
    agent_call_async(n, "SetNodeStatus", buf, blen);
}

static void send_system_summary(node *n, Common__System__PairId *pid)
{
    size_t blen;
    uint8_t *buf = agent_system_summary(n, &blen);
    if (buf)
        agent_call_async(n, "SetSystemSummary", buf, blen);
}

static void send_overviews(node *n, Common__System__PairId *pid)
{
    /* Re-scan, as the reference does; keep the old view if a dataset went missing. */
    dataset_set fresh;
    mt_error *e = NULL;
    if (datasets_scan(&n->cfg.datasets.mappings, &fresh, &e) == 0) {
        datasets_release(&n->datasets);
        n->datasets = fresh;
        if (n->light)
            light_set_datasets(n->light, &n->datasets);
    } else {
        cleanup_free char *msg = xasprintf("Dataset scan failed: %s", mt_error_msg(e));
        mt_error_free(&e);
        agent_send_error(n, WIRE_NODE_ERROR, msg);
    }
    Common__Informations__DatasetOverviews d = COMMON__INFORMATIONS__DATASET_OVERVIEWS__INIT;
    wire_overviews wo;
    wire_overviews_fill(&wo, &n->datasets);
    d.node_id = pid;
    d.content = &wo.ov;
    size_t blen;
    uint8_t *buf = wire_pack(&d.base, &blen);
    wire_overviews_release(&wo);
    agent_call_async(n, "SetOverviews", buf, blen);
}

/* What collect_information asks for (its payload), and who sends it. */
static const struct {
    const char *what;
    void (*send)(node *n, Common__System__PairId *pid);
} informations[] = {
    {"set_node_status", send_node_status},
    {"set_system_summary", send_system_summary},
    {"set_overviews", send_overviews},
};

static void collect_information(node *n, const void *payload, size_t len)
{
    if (len == 0) {
        /* libmosquitto hands over NULL for a 0-byte payload: nothing to read, and an answer
         * that says what is expected. */
        agent_send_error(n, WIRE_MQTT_ERROR,
                         "Not allowed method: (empty payload). collect_information takes "
                         "set_node_status, set_system_summary or set_overviews.");
        return;
    }
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

    for (size_t i = 0; i < ARRAY_LEN(informations); i++) {
        if (strcmp(s, informations[i].what) == 0) {
            Common__System__PairId pid;
            wire_pair_id(&pid, n->id);
            informations[i].send(n, &pid);
            return;
        }
    }
    char ex[80], msg[160];
    excerpt(payload, len, ex);
    snprintf(msg, sizeof(msg), "Not allowed method: %s", ex);
    agent_send_error(n, WIRE_MQTT_ERROR, msg);
}

/* Task commands: a payload that does not parse is reported (MQTT_ERROR) and changes nothing.
 * An empty payload is a valid (all-default) message. */
static ProtobufCMessage *parse(node *n, const ProtobufCMessageDescriptor *desc, const char *type,
                               const void *payload, size_t len)
{
    static const uint8_t none[1];
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, NULL, len, len ? (const uint8_t *)payload : none);
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

static void deploy_task(node *n, const void *payload, size_t len)
{
    Common__Tasks__MqttTask *m = (Common__Tasks__MqttTask *)parse(
        n, &common__tasks__mqtt_task__descriptor, "MqttTask", payload, len);
    if (!m)
        return;
    if (!m->swarm_id || !m->task_id) {
        agent_send_error(n, WIRE_MQTT_ERROR,
                         "Unable to convert message into 'MqttTask': the task has no swarm_id "
                         "or no task_id, so it cannot be deployed.");
    } else if (n->stopping || n->draining) {
        char tx[NODE_XID_MAX + 1], msg[200];
        node_id_to_xid(wire_node_id(m->task_id), tx);
        snprintf(msg, sizeof(msg),
                 "Task %s was not deployed: the node is stopping. Deploy it again once the node "
                 "is back.",
                 tx);
        agent_send_error(n, WIRE_NODE_ERROR, msg);
    } else {
        mt_error *e = NULL;
        if (agent_light_up(n, &e) < 0) {
            char tx[NODE_XID_MAX + 1], msg[400];
            node_id_to_xid(wire_node_id(m->task_id), tx);
            snprintf(msg, sizeof(msg),
                     "Task %s was not deployed: %s. Free the port or set "
                     "network.light_service_port to 0, then deploy it again.",
                     tx, mt_error_msg(e));
            agent_send_error(n, WIRE_NODE_ERROR, msg);
            mt_error_free(&e);
        } else {
            tasks_deploy(n->tasks, m);
        }
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void stop_node(node *n, const void *payload, size_t len)
{
    fprintf(n->out, "Received stop_node from the manager, stopping node...\n");
    fflush(n->out);
    agent_request_stop(n, "stop_node from the manager");
}

static void stop_task(node *n, const void *payload, size_t len)
{
    ProtobufCMessage *m = parse(n, &common__system__env_id__descriptor, "EnvId", payload, len);
    if (m) {
        Common__System__EnvId *e = (Common__System__EnvId *)m;
        tasks_stop(n->tasks, wire_node_id(e->swarm_id), wire_node_id(e->task_id));
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

static void stop_swarm(node *n, const void *payload, size_t len)
{
    ProtobufCMessage *m = parse(n, &common__system__pair_id__descriptor, "PairId", payload, len);
    if (m) {
        tasks_stop_swarm(n->tasks, wire_node_id((Common__System__PairId *)m));
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

/* The commands the manager may send (commands.h); the session marker is the node's own and
 * is handled before any of these (commands_dispatch). */
static const struct {
    const char *name;
    void (*run)(node *n, const void *payload, size_t len);
} commands[] = {
    {"collect_information", collect_information},
    {"stop_node", stop_node},
    {"deploy_task", deploy_task},
    {"stop_task", stop_task},
    {"stop_swarm", stop_swarm},
};

/* Run a command the node can act on now (n->tasks exists); stop_node was vetted already. */
static void run_command(node *n, const char *topic, const void *payload, size_t len)
{
    const char *slash = strrchr(topic, '/');
    const char *cmd = slash ? slash + 1 : topic;
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            commands[i].run(n, payload, len);
            return;
        }
    }
    /* The topic is UTF-8 (MQTT requires it): cut at a character boundary. */
    size_t cl = utf8_cut(cmd, strlen(cmd), 100);
    char msg[160];
    snprintf(msg, sizeof(msg), "Not allowed method: %.*s", (int)cl, cmd);
    agent_send_error(n, WIRE_MQTT_ERROR, msg);
}

void commands_dispatch(node *n, const char *topic, const void *payload, size_t len)
{
    const char *slash = strrchr(topic, '/');
    const char *cmd = slash ? slash + 1 : topic;
    log_debug(n->log, "commands", "Command '%s' (%zu bytes) on %s", cmd, len, topic);
    if (strcmp(cmd, AGENT_MARKER_COMMAND) == 0) {
        agent_marker_received(n, payload, len);
        return;
    }
    if (strcmp(cmd, "stop_node") == 0 && !agent_stop_is_for_this_run(n, payload, len)) {
        n->stale_stops++;
        log_info(n->log, "commands", "Ignoring a stop_node queued before this run started");
        return;
    }
    if (n->tasks) {
        run_command(n, topic, payload, len);
        return;
    }
    /* Too early: the task table does not exist yet (the broker hands over what it kept for
     * the node right after the connection, before the node is ready). Hold it, in order. */
    if (!n->held)
        n->held = command_hold_new(COMMANDS_HOLD_MAX, COMMANDS_HOLD_BYTES);
    if (command_hold_push(n->held, topic, payload, len)) {
        log_debug(n->log, "commands", "Holding '%s' until the node is ready (%zu held)", cmd,
                  command_hold_count(n->held));
        return;
    }
    char ex[104], msg[400];
    size_t cl = utf8_cut(cmd, strlen(cmd), 100);
    snprintf(ex, sizeof(ex), "%.*s", (int)cl, cmd);
    snprintf(msg, sizeof(msg),
             "Command %s (%zu bytes) was dropped: it arrived while the node was starting, and "
             "the node already holds %zu commands (%zu bytes) to run once it is ready, the most "
             "it keeps (%d commands, %u MiB). Send it again once the node is running.",
             ex, len, command_hold_count(n->held), command_hold_bytes(n->held), COMMANDS_HOLD_MAX,
             COMMANDS_HOLD_BYTES >> 20);
    agent_send_error(n, WIRE_MQTT_ERROR, msg); /* logged there too */
}

void commands_release_held(node *n)
{
    if (!n->held)
        return;
    size_t total = command_hold_count(n->held);
    if (total)
        log_info(n->log, "commands", "Running %zu command(s) received while the node was starting",
                 total);
    char *topic;
    void *payload;
    size_t len;
    while (n->tasks && command_hold_pop(n->held, &topic, &payload, &len)) {
        run_command(n, topic, payload, len);
        free(topic);
        free(payload);
    }
    command_hold_free(n->held);
    n->held = NULL;
}

void commands_discard_held(node *n)
{
    if (!n->held)
        return;
    char *topic;
    void *payload;
    size_t len;
    while (command_hold_pop(n->held, &topic, &payload, &len)) {
        log_warn(n->log, "commands",
                 "Command %s (%zu bytes), received while the node was starting, was not run: the "
                 "node stopped before it was ready",
                 topic, len);
        free(topic);
        free(payload);
    }
    command_hold_free(n->held);
    n->held = NULL;
}

/* ---- the hold queue ------------------------------------------------------------------------ */

struct held_command {
    char *topic;
    void *payload;
    size_t len;
    struct held_command *next;
};

struct command_hold {
    struct held_command *head, *tail;
    size_t count, bytes;
    size_t max_count, max_bytes;
};

command_hold *command_hold_new(size_t max_count, size_t max_bytes)
{
    command_hold *h = xcalloc(1, sizeof(*h));
    h->max_count = max_count;
    h->max_bytes = max_bytes;
    return h;
}

bool command_hold_push(command_hold *h, const char *topic, const void *payload, size_t len)
{
    size_t tl = strlen(topic);
    if (h->count >= h->max_count || tl + len > h->max_bytes || h->bytes > h->max_bytes - tl - len)
        return false;
    struct held_command *c = xcalloc(1, sizeof(*c));
    c->topic = xstrndup(topic, tl);
    c->payload = xmalloc(len ? len : 1);
    if (len)
        memcpy(c->payload, payload, len);
    c->len = len;
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
    h->count++;
    h->bytes += tl + len;
    return true;
}

bool command_hold_pop(command_hold *h, char **topic, void **payload, size_t *len)
{
    struct held_command *c = h->head;
    if (!c)
        return false;
    h->head = c->next;
    if (!h->head)
        h->tail = NULL;
    h->count--;
    h->bytes -= strlen(c->topic) + c->len;
    *topic = c->topic;
    *payload = c->payload;
    *len = c->len;
    free(c);
    return true;
}

size_t command_hold_count(const command_hold *h)
{
    return h ? h->count : 0;
}

size_t command_hold_bytes(const command_hold *h)
{
    return h ? h->bytes : 0;
}

void command_hold_free(command_hold *h)
{
    if (!h)
        return;
    for (struct held_command *c = h->head, *next; c; c = next) {
        next = c->next;
        free(c->topic);
        free(c->payload);
        free(c);
    }
    free(h);
}
