/* deliver.c - finished tasks' output and outcomes, through the outbox to the manager. */
#include "deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "fsutil.h"
#include "mem.h"
#include "outbox.h"
#include "wire.h"

#include "common/system.pb-c.h"

struct delivery {
    outbox *ob;
    bool running;     /* a pass is queued or running (loop-owned flag, set back by a post) */
    bool unreachable; /* the last pass met an unreachable manager */
    bool pending;     /* items may wait (kept since the last pass, or left by it) */
    bool again;       /* an item was kept while a pass ran */
    int attempt;      /* passes in a row that met it */
    int64_t next_ms;  /* monotonic: no pass before then */
};

int deliver_open(node *n, mt_error **err)
{
    cleanup_free char *nd = fs_join(n->cfg.tasks.state_dir, n->xid);
    cleanup_free char *dir = fs_join(nd, "outbox");
    outbox *ob = outbox_open(dir, n->cfg.tasks.outbox_max_size, n->cfg.tasks.outbox_max_age, err);
    if (!ob)
        return mt_error_wrap(err, "The node cannot keep finished tasks' output in %s", dir);
    n->delivery = xcalloc(1, sizeof(*n->delivery));
    n->delivery->ob = ob;
    uint64_t bytes = 0;
    size_t waiting = outbox_count(ob, &bytes);
    n->delivery->pending = waiting > 0;
    if (waiting)
        log_info(n->log, "tasks",
                 "%zu finished task(s) still owe the manager their output "
                 "(%llu KiB kept): delivering them",
                 waiting, (unsigned long long)(bytes >> 10));
    return 0;
}

void deliver_close(node *n)
{
    if (!n->delivery)
        return;
    outbox_free(n->delivery->ob);
    free(n->delivery);
    n->delivery = NULL;
}

static void kick(void *arg) /* on the loop */
{
    node *n = arg;
    struct delivery *d = n->delivery;
    if (!d)
        return;
    d->pending = true;
    d->again = d->running;
    d->next_ms = 0;
    deliver_tick(n, clock_mono_ms()); /* now, not at the next tick: a stopping node waits */
}

int deliver_keep(void *ctx, const uint8_t *blob, size_t len, const tasklog_header *hdr,
                 int final_status, mt_error **err)
{
    node *n = ctx;
    cleanup_free uint8_t *update = NULL;
    size_t ulen = 0;
    if (final_status)
        update = wire_task_update(hdr->swarm, hdr->node, hdr->task, hdr->iteration, hdr->circular,
                                  final_status, &ulen);
    if (outbox_put(n->delivery->ob, blob, len, update, ulen, err) < 0)
        return -1;
    agent_post(n, kick, n); /* a pass may start now */
    return 0;
}

/* ---- a delivery pass (on the manager-call worker) ------------------------------------------ */

struct pass {
    node *n;
    bool unreachable;
    size_t delivered;
};

struct outcome {
    node *n;
    uint8_t *update;
    size_t len;
};

static void publish_outcome(void *arg) /* on the loop */
{
    struct outcome *o = arg;
    agent_publish_status(o->n, o->update, o->len, "a finished task's outcome");
    free(o->update);
    free(o);
}

/* AddTaskLogs: a client stream with one Logs message stamped with when it was kept. */
static int upload(node *n, const outbox_item *it, rpc_status *st)
{
    Common__System__Logs lg = COMMON__SYSTEM__LOGS__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = it->kept_ms / 1000;
    ts.nanos = (int32_t)(it->kept_ms % 1000) * 1000000;
    lg.content.data = it->logs;
    lg.content.len = it->logs_len;
    lg.timestamp = &ts;
    size_t mlen;
    cleanup_free uint8_t *msg = wire_pack(&lg.base, &mlen);
    rpc_metadata md[] = {{"authorization", n->mc.token}};
    mt_error *e = NULL;
    rpc_channel *ch = mc_channel_hold(&n->mc, &e);
    if (!ch) {
        st->code = RPC_UNAVAILABLE;
        snprintf(st->message, sizeof(st->message), "%s", mt_error_msg(e));
        mt_error_free(&e);
        return -1;
    }
    rpc_cstream *s =
        rpc_cstream_start(ch, "/node.node_service.Node/AddTaskLogs", md, 1,
                          n->mc.deadline_ms + (int64_t)(it->logs_len >> 20) * 1000, st);
    int rc = -1;
    if (s) {
        rpc_bytes resp = {0};
        rc = rpc_cstream_send(s, msg, mlen);
        rc = rpc_cstream_finish(s, &resp, st) < 0 ? -1 : rc;
        rpc_bytes_free(&resp);
        rpc_cstream_free(s);
    }
    mc_channel_release(&n->mc);
    return rc;
}

bool deliver_retry_later(int rpc_code)
{
    switch (rpc_code) {
    case RPC_INVALID_ARGUMENT:
    case RPC_NOT_FOUND:
    case RPC_ALREADY_EXISTS:
    case RPC_PERMISSION_DENIED:
    case RPC_FAILED_PRECONDITION:
    case RPC_OUT_OF_RANGE:
    case RPC_UNIMPLEMENTED:
        return false; /* the manager looked at it and said no: asking again changes nothing */
    default:
        return rpc_code != RPC_OK;
    }
}

static void pass_run(void *arg)
{
    struct pass *p = arg;
    node *n = p->n;
    outbox *ob = n->delivery->ob;
    /* the bounds first (a pass runs at least every 30 s while items wait): off the loop */
    size_t dropped = outbox_prune(ob, clock_wall_ms());
    if (dropped)
        log_warn(n->log, "tasks",
                 "Dropped the kept output of %zu finished task(s): over tasks.outbox_max_size "
                 "or tasks.outbox_max_age while the manager was away",
                 dropped);
    for (size_t k = 0; k < 100000; k++) { /* bounded: each turn removes an item or ends */
        outbox_item it;
        mt_error *e = NULL;
        int r = outbox_oldest(ob, &it, &e);
        if (r < 0) {
            log_error(n->log, "tasks", "%s", mt_error_msg(e));
            mt_error_free(&e);
            continue; /* set aside: the next one */
        }
        if (r == 0)
            break;
        rpc_status st = {0};
        bool sent = it.logs_len == 0 || upload(n, &it, &st) == 0;
        if (!sent && deliver_retry_later(st.code)) {
            p->unreachable = true;
            outbox_item_clear(&it);
            break;
        }
        if (!sent)
            log_error(n->log, "tasks",
                      "The manager refused a finished task's output for good (%s: %s); it is "
                      "dropped",
                      rpc_code_name(st.code), st.message);
        outbox_remove(ob, &it);
        p->delivered += sent;
        if (it.update_len) {
            struct outcome *o = xcalloc(1, sizeof(*o));
            o->n = n;
            o->update = steal_ptr(it.update);
            o->len = it.update_len;
            agent_post(n, publish_outcome, o);
        }
        outbox_item_clear(&it);
    }
}

static void pass_done(void *arg) /* on the loop */
{
    struct pass *p = arg;
    struct delivery *d = p->n->delivery;
    if (d) {
        d->running = false;
        d->unreachable = p->unreachable;
        d->pending = p->unreachable || d->again;
        d->again = false;
        if (p->unreachable) {
            d->next_ms = clock_mono_ms() + (int64_t)(backoff_delay(1.0, 30.0, d->attempt) * 1000);
            if (d->attempt < 30)
                d->attempt++;
        } else {
            d->attempt = 0;
        }
        if (p->delivered)
            log_info(p->n->log, "tasks", "Delivered the output of %zu finished task(s)",
                     p->delivered);
        if (d->pending && !p->unreachable) /* kept while this pass ran: deliver it now */
            deliver_tick(p->n, clock_mono_ms());
    }
    free(p);
}

static void pass_end(void *arg) /* after the pass, or instead of it (refused, discarded) */
{
    struct pass *p = arg;
    agent_post(p->n, pass_done, p);
}

static void pass_job(void *arg)
{
    pass_run(arg);
    pass_end(arg);
}

void deliver_tick(node *n, int64_t now_ms)
{
    struct delivery *d = n->delivery;
    if (!d)
        return;
    if (d->running || !d->pending || now_ms < d->next_ms || !n->wq)
        return;
    struct pass *p = xcalloc(1, sizeof(*p));
    p->n = n;
    d->running = true;
    if (!workers_submit(n->wq, pass_job, pass_end, p)) /* pass_done is posted either way */
        pass_end(p);
}

bool deliver_settled(node *n)
{
    struct delivery *d = n->delivery;
    return !d || (!d->running && (d->unreachable || !d->pending));
}
