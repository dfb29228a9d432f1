/* runner_resume.c - the state of swarm runs in the store, and runs taken up again after a
 * restart of the manager (runner_resume_all); see runner.h.
 *
 * Everything a run needs to carry on after a restart of the manager is kept in the store
 * (object "run"/<xid>) whenever it changes, before any command it causes is published: the
 * event loop calls runner_tick, which keeps changed runs, before it flushes the outbox. The
 * task graph and the module archives are kept when the run starts ("graph", "module" or
 * "run_module"). The layout is this host's (the store is local): a header, the instances, then
 * the nodes chosen for each fixed task. */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"
#include "runner_impl.h"
#include "user_service.h"
#include "utf8.h"

#define RUN_MAGIC 0x314e524dU /* "MRN1" */

typedef struct run_hdr {
    uint32_t magic, status, iteration, ntasks, ninsts;
    char detail[512];
} run_hdr;

typedef struct run_inst {
    uint64_t head, tail, opened;
    uint32_t task, iteration;
    uint8_t state, running, logs;
} run_inst;

void run_persist(manager *m, swarm_run *r)
{
    size_t nf = 0;
    for (size_t t = 0; t < r->def->ntasks; t++)
        nf += r->nfixed[t];
    size_t len = sizeof(run_hdr) + r->ninsts * sizeof(run_inst) +
                 r->def->ntasks * sizeof(uint32_t) + nf * 2 * sizeof(uint64_t);
    /* One buffer per run, grown as the run grows: a long run's record is megabytes (40 bytes
     * an instance, 40,000 for 200 nodes and 100 rounds), kept on every change, and a fresh
     * allocation each time cost more in page faults than the copy (bench/README.md). */
    if (r->pbuf_cap < len) {
        free(r->pbuf);
        r->pbuf_cap = len + len / 4;
        r->pbuf = xmalloc(r->pbuf_cap);
    }
    uint8_t *buf = r->pbuf;
    memset(buf, 0, len);
    run_hdr *h = (run_hdr *)buf;
    h->magic = RUN_MAGIC;
    h->status = (uint32_t)r->status;
    h->iteration = r->iteration;
    h->ntasks = (uint32_t)r->def->ntasks;
    h->ninsts = (uint32_t)r->ninsts;
    memcpy(h->detail, r->detail, sizeof(h->detail));
    uint8_t *p = buf + sizeof(*h);
    for (size_t i = 0; i < r->ninsts; i++, p += sizeof(run_inst)) {
        const inst *in = &r->insts[i];
        run_inst ri = {.head = in->node.head,
                       .tail = in->node.tail,
                       .task = (uint32_t)in->task,
                       .iteration = in->iteration,
                       .state = (uint8_t)in->state,
                       .running = in->running,
                       .logs = in->logs_ms != 0,
                       .opened = in->opened};
        memcpy(p, &ri, sizeof(ri));
    }
    for (size_t t = 0; t < r->def->ntasks; t++) {
        uint32_t k = (uint32_t)r->nfixed[t];
        memcpy(p, &k, sizeof(k));
        p += sizeof(k);
        for (size_t i = 0; i < k; i++) {
            memcpy(p, &r->fixed[t][i].head, sizeof(uint64_t));
            memcpy(p + 8, &r->fixed[t][i].tail, sizeof(uint64_t));
            p += 16;
        }
    }
    mt_error *err = NULL;
    if (store_object_put(m->st, "run", r->xid, "", buf, len, clock_wall_ms(), true, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "runner", "keeping swarm %s's state: %s", r->xid,
                mt_error_msg(err));
        mt_error_free(&err);
    }
    r->dirty = false;
}

/* Restore what persist kept into r (whose def is set); false if the record does not fit it. */
static bool restore(swarm_run *r, const uint8_t *buf, size_t len)
{
    run_hdr h;
    if (len < sizeof(h))
        return false;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != RUN_MAGIC || h.ntasks != r->def->ntasks || h.status > RUN_FAILED ||
        (len - sizeof(h)) / sizeof(run_inst) < h.ninsts)
        return false;
    const uint8_t *p = buf + sizeof(h), *end = buf + len;
    r->insts = xcalloc(h.ninsts + 1, sizeof(inst));
    r->cap = h.ninsts + 1;
    for (uint32_t i = 0; i < h.ninsts; i++, p += sizeof(run_inst)) {
        run_inst ri;
        memcpy(&ri, p, sizeof(ri));
        if (ri.task >= h.ntasks || ri.state > INST_STOPPED)
            return false;
        inst *in = &r->insts[r->ninsts++];
        in->node = (node_id){ri.head, ri.tail};
        node_id_to_xid(in->node, in->xid);
        in->task = ri.task;
        in->iteration = ri.iteration;
        in->state = ri.state;
        in->running = ri.running;
        in->logs_ms = ri.logs ? clock_mono_ms() : 0;
        in->opened = ri.opened;
        in->started_ms = clock_mono_ms();
    }
    for (size_t t = 0; t < h.ntasks; t++) {
        uint32_t k;
        if ((size_t)(end - p) < sizeof(k))
            return false;
        memcpy(&k, p, sizeof(k));
        p += sizeof(k);
        if ((size_t)(end - p) / 16 < k)
            return false;
        r->fixed[t] = xcalloc(k + 1, sizeof(node_id));
        for (uint32_t i = 0; i < k; i++, p += 16) {
            memcpy(&r->fixed[t][i].head, p, 8);
            memcpy(&r->fixed[t][i].tail, p + 8, 8);
        }
        r->nfixed[t] = k;
    }
    r->status = (int)h.status;
    r->iteration = h.iteration;
    memcpy(r->detail, h.detail, sizeof(r->detail));
    r->detail[sizeof(r->detail) - 1] = '\0';
    return true;
}

void runner_keep(manager *m)
{
    for (size_t ri = 0; ri < m->nruns; ri++)
        if (m->runs[ri]->dirty)
            run_persist(m, m->runs[ri]);
}

/* ---- resuming ------------------------------------------------------------------------------- */

/* True when the store holds logs of this instance (its node uploaded them, perhaps just
 * before the manager stopped, before its state was kept). */
static bool logs_stored(manager *m, const swarm_run *r, const inst *in)
{
    char tx[NODE_XID_MAX + 1];
    node_id_to_xid(r->def->tasks[in->task].task_id, tx);
    store_log *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    bool found = false;
    if (store_log_list(m->st, r->xid, in->xid, tx, &rows, &n, &err) == 0) {
        for (size_t i = 0; i < n && !found; i++)
            found = rows[i].iteration == in->iteration;
        store_logs_free(rows, n);
    }
    mt_error_free(&err);
    return found;
}

static void fail_stored(manager *m, const store_swarm *sw, const char *why)
{
    mt_error *err = NULL;
    cleanup_free char *detail = xasprintf("the manager restarted and could not resume it: %s", why);
    utf8_drop_partial_tail(detail);
    int64_t now = clock_wall_ms();
    if (store_swarm_update(m->st, sw->id, "FAILED", detail, sw->iteration, now, &err) < 0)
        mt_error_free(&err);
    log_msg(m->log, LOG_WARNING, "runner", "swarm %s: %s", sw->id, detail);
}

/* One stored run, RUNNING when the manager stopped, taken up again. */
static void resume_one(manager *m, const store_swarm *sw)
{
    node_id id;
    if (!node_id_parse_xid(sw->id, &id)) {
        fail_stored(m, sw, "its id is not a swarm id");
        return;
    }
    store_object o = {0};
    mt_error *err = NULL;
    int got = store_object_get(m->st, "run", sw->id, true, &o, &err);
    mt_error_free(&err);
    if (got != 1) {
        store_object_clear(&o);
        fail_stored(m, sw, "its state was not kept (it ran on a manager older than this one)");
        return;
    }
    cleanup_error mt_error *why = NULL;
    swarm_def *def = us_load_def(m, sw->id, sw->name, &why);
    if (!def) {
        store_object_clear(&o);
        fail_stored(m, sw, mt_error_msg(why));
        return;
    }
    swarm_run *r = xcalloc(1, sizeof(*r));
    r->def = def;
    r->id = id;
    node_id_to_xid(id, r->xid);
    r->fixed = xcalloc(def->ntasks + 1, sizeof(node_id *));
    r->nfixed = xcalloc(def->ntasks + 1, sizeof(size_t));
    m->runs = xrealloc(m->runs, (m->nruns + 1) * sizeof(*m->runs));
    m->runs[m->nruns++] = r;
    bool ok = restore(r, o.data, o.len);
    store_object_clear(&o);
    if (!ok || r->status != RUN_RUNNING) {
        r->status = RUN_RUNNING; /* so that end_run records the end */
        run_end(m, r, RUN_FAILED,
                "the manager restarted and could not resume it: its kept "
                "state does not match its graph");
        return;
    }
    size_t live = 0, resent = 0;
    for (size_t i = 0; i < r->ninsts; i++) {
        inst *in = &r->insts[i];
        if (in->state != INST_DEPLOYED)
            continue;
        live++;
        if (!in->logs_ms && logs_stored(m, r, in))
            in->logs_ms = clock_mono_ms();
        if (in->logs_ms || in->running)
            continue;
        /* Its deploy may not have left before the manager stopped: send it again. A node that
         * has it answers "already running", which runner_task_error ignores. */
        run_publish_deploy(m, r, in->task, in->iteration, in->xid);
        resent++;
    }
    r->resumed_ms = clock_mono_ms();
    r->dirty = true;
    /* Kept while advance held what follows a finished task (waiting for nodes): place it. */
    for (size_t ti = 0; live == 0 && ti < r->def->ntasks && r->status == RUN_RUNNING; ti++) {
        const swarm_task_def *t = &r->def->tasks[ti];
        bool missing = false;
        for (size_t k = 0; k < t->nnext; k++)
            missing |= !run_deployed_in(r, t->next[k], r->iteration);
        if (missing && run_deployed_in(r, ti, r->iteration) &&
            run_task_complete(r, ti, r->iteration) == 1)
            run_advance(m, r, ti, r->iteration);
    }
    run_progress(m, r,
                 "resumed after a restart of the manager at iteration %u: %zu task instance%s "
                 "in progress (%zu deploy%s sent again)",
                 r->iteration, live, live == 1 ? "" : "s", resent, resent == 1 ? "" : "s");
    user_service_notify(m);
}

void runner_resume_all(manager *m)
{
    store_swarm *rows = NULL;
    size_t n = 0;
    mt_error *err = NULL;
    if (store_swarm_list(m->st, &rows, &n, &err) < 0) {
        log_msg(m->log, LOG_ERROR, "runner", "cannot read the swarms to resume: %s",
                mt_error_msg(err));
        mt_error_free(&err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i].status, "RUNNING") && runner_status(m, rows[i].id, NULL, NULL, 0) < 0)
            resume_one(m, &rows[i]);
    store_swarms_free(rows, n);
    runner_keep(m);
}

/* A resumed run waited one node timeout for the nodes of its deployed instances: the ones
 * still unheard of are gone (their instances are placed again or dropped, as for any lost
 * node). */
void run_resume_settle(manager *m, swarm_run *r)
{
    r->resumed_ms = 0;
    for (size_t i = 0; i < r->ninsts && r->status == RUN_RUNNING; i++) {
        inst *in = &r->insts[i];
        mgr_node *n = mgr_node_find(m, in->node);
        if (in->state == INST_DEPLOYED && (!n || !n->connected)) {
            run_progress(m, r, "node %.12s was not heard from since the manager restarted",
                         in->xid);
            runner_node_lost(m, in->node);
        }
    }
}
