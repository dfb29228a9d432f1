/* manager_client.c - calls to the manager; see manager_client.h. */
#include "manager_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fsutil.h"
#include "mem.h"

#define NODE_SERVICE "/node.node_service.Node/"

static char *read_pem(const char *path, const char *what, mt_error **err)
{
    if (!path)
        return NULL;
    char *pem = fs_read_file(path, 1u << 20, NULL, err);
    if (!pem)
        mt_error_wrap(err, "cannot read %s", what);
    return pem;
}

int mc_open(manager_client *mc, const node_config *cfg, logger *lg, mt_error **err)
{
    memset(mc, 0, sizeof(*mc));
    mc->log = lg;
    mc->target =
        xasprintf("%s:%lld", cfg->network.manager_host, (long long)cfg->network.manager_port);
    mc->token = xstrdup(cfg->identity.secured_token ? cfg->identity.secured_token : "");
    mc->deadline_ms = cfg->network.rpc_timeout * 1000;
    mc->port = (int)cfg->network.manager_port;
    mc->attempts = 3;
    mc->tls = cfg->security.use_tls || cfg->network.manager_port == 443;
    rpc_tls tls = {0};
    cleanup_free char *ca = NULL;
    cleanup_free char *cert = NULL;
    cleanup_free char *key = NULL;
    if (mc->tls) {
        if (cfg->security.ca_file &&
            !(ca = read_pem(cfg->security.ca_file, "security.ca_file", err)))
            return -1;
        if (cfg->security.cert_file &&
            !(cert = read_pem(cfg->security.cert_file, "security.cert_file", err)))
            return -1;
        if (cfg->security.key_file &&
            !(key = read_pem(cfg->security.key_file, "security.key_file", err)))
            return -1;
        tls.ca_pem = ca;
        tls.cert_pem = cert;
        tls.key_pem = key;
        tls.server_name = cfg->security.server_name;
    }
    mc->ch = rpc_channel_new(mc->target, mc->tls ? &tls : NULL, err);
    if (!mc->ch) {
        mc_close(mc);
        return -1;
    }
    return 0;
}

void mc_close(manager_client *mc)
{
    if (mc->ch)
        rpc_channel_free(mc->ch);
    if (mc->token) /* do not leave the token in freed memory */
        explicit_bzero(mc->token, strlen(mc->token));
    free(mc->token);
    free(mc->target);
    memset(mc, 0, sizeof(*mc));
}

bool mc_retryable(int code)
{
    return code == RPC_UNAVAILABLE || code == RPC_RESOURCE_EXHAUSTED || code == RPC_ABORTED ||
           code == RPC_DEADLINE_EXCEEDED;
}

static void backoff_sleep(int attempt)
{
    /* 0.2 s, 0.4 s, ... plus up to 20 % jitter (the reference's policy). */
    double base = 0.2 * (double)(1 << (attempt - 1));
    if (base > 10)
        base = 10;
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)time(NULL);
    double d = base * (1.0 + 0.2 * (double)r / 4294967295.0);
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

int mc_call_raw(manager_client *mc, const char *rpc, const void *req, size_t len,
                int64_t deadline_ms, int attempts, rpc_bytes *resp, rpc_status *st)
{
    char method[128];
    snprintf(method, sizeof(method), NODE_SERVICE "%s", rpc);
    rpc_metadata md[] = {{"authorization", mc->token}};
    if (deadline_ms <= 0)
        deadline_ms = mc->deadline_ms;
    if (attempts <= 0)
        attempts = mc->attempts;
    for (int a = 1;; a++) {
        rpc_bytes out = {0};
        int rc = rpc_unary(mc->ch, method, md, 1, req, len, deadline_ms, &out, st);
        if (rc == 0) {
            if (resp)
                *resp = out;
            else
                rpc_bytes_free(&out);
            return 0;
        }
        rpc_bytes_free(&out);
        if (a >= attempts || !mc_retryable(st->code))
            return -1;
        log_debug(mc->log, "manager", "%s failed (%s: %s), retrying", rpc, rpc_code_name(st->code),
                  st->message);
        backoff_sleep(a);
    }
}

int mc_call(manager_client *mc, const char *rpc, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, rpc_status *st)
{
    size_t n = protobuf_c_message_get_packed_size(req);
    cleanup_free uint8_t *buf = xmalloc(n ? n : 1);
    protobuf_c_message_pack(req, buf);
    rpc_bytes out = {0};
    if (mc_call_raw(mc, rpc, buf, n, 0, 0, resp_desc ? &out : NULL, st) < 0)
        return -1;
    if (resp_desc) {
        *resp = protobuf_c_message_unpack(resp_desc, NULL, out.len, out.data);
        rpc_bytes_free(&out);
        if (!*resp) {
            st->code = RPC_INTERNAL;
            snprintf(st->message, sizeof(st->message),
                     "the manager's answer to %s is not a valid %s", rpc, resp_desc->name);
            return -1;
        }
    }
    return 0;
}
