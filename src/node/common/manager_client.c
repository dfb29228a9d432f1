/* manager_client.c - calls to the manager; see manager_client.h. */
#include "manager_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
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
    pthread_mutex_init(&mc->mu, NULL);
    mc->log = lg;
    mc->target =
        xasprintf("%s:%lld", cfg->network.manager_host, (long long)cfg->network.manager_port);
    mc->token = xstrdup(cfg->identity.secured_token ? cfg->identity.secured_token : "");
    mc->deadline_ms = cfg->network.rpc_timeout * 1000;
    mc->port = (int)cfg->network.manager_port;
    mc->attempts = 3;
    mc->tls = cfg->security.use_tls || cfg->network.manager_port == 443;
    if (mc->tls) {
        if ((cfg->security.ca_file &&
             !(mc->ca_pem = read_pem(cfg->security.ca_file, "security.ca_file", err))) ||
            (cfg->security.cert_file &&
             !(mc->cert_pem = read_pem(cfg->security.cert_file, "security.cert_file", err))) ||
            (cfg->security.key_file &&
             !(mc->key_pem = read_pem(cfg->security.key_file, "security.key_file", err)))) {
            mc_close(mc);
            return -1;
        }
        mc->server_name = cfg->security.server_name ? xstrdup(cfg->security.server_name) : NULL;
    }
    /* the channel now, for the calls of the start: settings gRPC refuses (a certificate
     * without its key) are found at start, not at the first call */
    if (!mc_channel_hold(mc, err)) {
        mc_close(mc);
        return -1;
    }
    mc_channel_release(mc);
    return 0;
}

static void free_secret(char **s)
{
    if (*s) /* do not leave keys and tokens in freed memory */
        explicit_bzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

void mc_close(manager_client *mc)
{
    if (!mc->target)
        return; /* never opened (or closed already) */
    if (mc->ch)
        rpc_channel_free(mc->ch);
    free_secret(&mc->token);
    free_secret(&mc->key_pem);
    free(mc->ca_pem);
    free(mc->cert_pem);
    free(mc->server_name);
    free(mc->target);
    pthread_mutex_destroy(&mc->mu);
    memset(mc, 0, sizeof(*mc));
}

rpc_channel *mc_channel_new_own(manager_client *mc, mt_error **err)
{
    rpc_tls tls = {mc->ca_pem, mc->cert_pem, mc->key_pem, mc->server_name};
    return rpc_channel_new_own(mc->target, mc->tls ? &tls : NULL, err);
}

rpc_channel *mc_channel_hold(manager_client *mc, mt_error **err)
{
    pthread_mutex_lock(&mc->mu);
    if (!mc->ch) {
        rpc_tls tls = {mc->ca_pem, mc->cert_pem, mc->key_pem, mc->server_name};
        mc->ch = rpc_channel_new(mc->target, mc->tls ? &tls : NULL, err);
    }
    rpc_channel *ch = mc->ch;
    if (ch)
        mc->users++;
    pthread_mutex_unlock(&mc->mu);
    return ch;
}

void mc_channel_release(manager_client *mc)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&mc->mu);
    mc->users--;
    mc->last_ms = now;
    pthread_mutex_unlock(&mc->mu);
}

bool mc_idle_close(manager_client *mc, int64_t now_ms, int64_t idle_ms)
{
    pthread_mutex_lock(&mc->mu);
    rpc_channel *idle = mc->ch && mc->users == 0 && now_ms - mc->last_ms >= idle_ms ? mc->ch : NULL;
    if (idle)
        mc->ch = NULL;
    pthread_mutex_unlock(&mc->mu);
    rpc_channel_free(idle);
    return idle != NULL;
}

bool mc_retryable(int code)
{
    return code == RPC_UNAVAILABLE || code == RPC_RESOURCE_EXHAUSTED || code == RPC_ABORTED ||
           code == RPC_DEADLINE_EXCEEDED;
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
    mt_error *e = NULL;
    rpc_channel *ch = mc_channel_hold(mc, &e);
    if (!ch) {
        st->code = RPC_UNAVAILABLE;
        snprintf(st->message, sizeof(st->message), "%s", mt_error_msg(e));
        mt_error_free(&e);
        return -1;
    }
    for (int a = 1;; a++) {
        rpc_bytes out = {0};
        int rc = rpc_unary(ch, method, md, 1, req, len, deadline_ms, &out, st);
        if (rc == 0) {
            mc_channel_release(mc);
            if (resp)
                *resp = out;
            else
                rpc_bytes_free(&out);
            return 0;
        }
        rpc_bytes_free(&out);
        if (a >= attempts || !mc_retryable(st->code)) {
            mc_channel_release(mc);
            return -1;
        }
        log_debug(mc->log, "manager", "%s failed (%s: %s), retrying", rpc, rpc_code_name(st->code),
                  st->message);
        backoff_sleep(backoff_retry_delay(a));
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
