/* rpc.c - the gRPC layer over gRPC C core (1.51); see rpc.h.
 *
 * Client: every call owns a pluck completion queue; the operations of a call are started as
 * batches with one tag per kind (send, receive, status) and plucked by tag on the calling
 * thread, so a call never needs another thread. Cancellation from other threads goes through
 * grpc_call_cancel, which is thread-safe.
 *
 * Server: one "next" queue receives new calls (grpc_server_request_call, generic, so every
 * path arrives) and the server's shutdown notification; a dispatcher thread waits on it and
 * always keeps one call request outstanding. Each accepted call is bound to its own pluck
 * queue and run by a worker thread: up to max_calls workers exist at once; calls arriving
 * when all are busy wait in a FIFO, and a worker that finishes a call takes the next one from
 * it before exiting. A worker is held for as long as its handler waits on the call, so a
 * handler facing clients it does not trust sets a stall limit (rpc_call_set_stall_limit): a
 * step that makes no progress within it - a client that opens a stream and then goes quiet, or
 * stops reading what is sent to it - ends the call with DEADLINE_EXCEEDED and frees the worker.
 */
#include "rpc.h"

#include <errno.h>
#include <stdatomic.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "clock.h"
#include "mem.h"

/* Tags of the batches of one call (each call has its own queue, so small integers do). */
enum { TAG_SEND = 1, TAG_RECV, TAG_STATUS, TAG_FINISH, TAG_CLOSE, TAG_DRAIN, TAG_COUNT };
#define TAG(t) ((void *)(uintptr_t)(t))

/* Calls that may wait for a free worker before new ones are refused with RESOURCE_EXHAUSTED. */
#define SERVER_QUEUE_MAX 1024

/* Keepalive of client channels; our servers accept pings this often. */
#define KEEPALIVE_TIME_MS    30000
#define KEEPALIVE_TIMEOUT_MS 20000

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rpc_code_name(int code)
{
    if (code < 0 || (size_t)code >= ARRAY_LEN(code_names))
        return "UNKNOWN";
    return code_names[code];
}

void rpc_bytes_free(rpc_bytes *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void rpc_init(void)
{
    grpc_init();
}

void rpc_shutdown(void)
{
    grpc_shutdown();
}

/* ---- helpers ------------------------------------------------------------------------------ */

static gpr_timespec deadline_after(int64_t ms)
{
    if (ms <= 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static gpr_timespec forever(void)
{
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
}

/* Copy at most sizeof(st->message)-1 bytes, not cutting a UTF-8 sequence in two. */
static void status_set_bytes(rpc_status *st, int code, const char *msg, size_t len)
{
    if (!st)
        return;
    st->code = code;
    size_t cap = sizeof(st->message) - 1;
    if (len > cap) {
        len = cap;
        while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80)
            len--;
    }
    if (len)
        memcpy(st->message, msg, len);
    st->message[len] = '\0';
}

static void status_set(rpc_status *st, int code, const char *msg)
{
    status_set_bytes(st, code, msg, msg ? strlen(msg) : 0);
}

static grpc_byte_buffer *bb_new(const void *data, size_t len)
{
    grpc_slice s = len ? grpc_slice_from_copied_buffer(data, len) : grpc_empty_slice();
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* A byte buffer over buf[off..off+len) without copying it: buf (malloc'd) is freed when gRPC
 * drops its last reference. Takes buf. */
static grpc_byte_buffer *bb_new_owned(void *buf, size_t off, size_t len)
{
    if (!len) {
        free(buf);
        return bb_new(NULL, 0);
    }
    grpc_slice s = grpc_slice_new_with_user_data((uint8_t *)buf + off, len, free, buf);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* Copy a received message into owned bytes (data is never NULL on success). */
static int bb_to_bytes(grpc_byte_buffer *bb, rpc_bytes *out)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return -1;
    size_t cap = grpc_byte_buffer_length(bb), len = 0;
    uint8_t *data = xmalloc(cap ? cap : 1);
    grpc_slice s;
    while (grpc_byte_buffer_reader_next(&r, &s)) {
        size_t n = GRPC_SLICE_LENGTH(s);
        if (n > cap - len) {
            cap = len + n > 2 * cap ? len + n : 2 * cap;
            data = xrealloc(data, cap);
        }
        memcpy(data + len, GRPC_SLICE_START_PTR(s), n);
        len += n;
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_reader_destroy(&r);
    out->data = data;
    out->len = len;
    return 0;
}

/* ---- messages left in gRPC's buffers ------------------------------------------------------ */

struct rpc_msg {
    grpc_byte_buffer *bb; /* raw, uncompressed: its slices are the message */
    size_t len;
};

/* A received byte buffer as a message (takes bb): a raw uncompressed one as it is, any other
 * through a reader (which decompresses). NULL if it cannot be read. */
static rpc_msg *msg_take(grpc_byte_buffer *bb)
{
    if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE) {
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, bb)) {
            grpc_byte_buffer_destroy(bb);
            return NULL;
        }
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(bb);
        bb = grpc_raw_byte_buffer_create(&all, 1);
        grpc_slice_unref(all);
    }
    rpc_msg *m = xcalloc(1, sizeof(*m));
    m->bb = bb;
    m->len = grpc_byte_buffer_length(bb);
    return m;
}

size_t rpc_msg_len(const rpc_msg *m)
{
    return m ? m->len : 0;
}

size_t rpc_msg_copy(const rpc_msg *m, size_t off, void *buf, size_t n)
{
    if (!m || off >= m->len)
        return 0;
    const grpc_slice_buffer *sb = &m->bb->data.raw.slice_buffer;
    size_t pos = 0, got = 0;
    for (size_t i = 0; i < sb->count && got < n; i++) {
        size_t sl = GRPC_SLICE_LENGTH(sb->slices[i]);
        if (pos + sl > off + got) {
            size_t b = off + got - pos, k = sl - b < n - got ? sl - b : n - got;
            memcpy((uint8_t *)buf + got, GRPC_SLICE_START_PTR(sb->slices[i]) + b, k);
            got += k;
        }
        pos += sl;
    }
    return got;
}

void rpc_msg_to_bytes(const rpc_msg *m, rpc_bytes *out)
{
    size_t len = rpc_msg_len(m);
    out->data = xmalloc(len ? len : 1);
    out->len = rpc_msg_copy(m, 0, out->data, len);
}

void rpc_msg_free(rpc_msg *m)
{
    if (!m)
        return;
    grpc_byte_buffer_destroy(m->bb);
    free(m);
}

/* A byte buffer of head[0..hlen) (copied) followed by m's slices from `from` (referenced, not
 * copied). Takes m. */
static grpc_byte_buffer *bb_from_msg(const void *head, size_t hlen, rpc_msg *m, size_t from)
{
    grpc_slice_buffer *sb = &m->bb->data.raw.slice_buffer;
    grpc_slice *v = xcalloc(sb->count + 1, sizeof(*v));
    size_t n = 0, pos = 0;
    if (hlen)
        v[n++] = grpc_slice_from_copied_buffer(head, hlen);
    for (size_t i = 0; i < sb->count; i++) {
        size_t sl = GRPC_SLICE_LENGTH(sb->slices[i]);
        if (pos + sl > from)
            v[n++] = from > pos ? grpc_slice_sub(sb->slices[i], from - pos, sl)
                                : grpc_slice_ref(sb->slices[i]);
        pos += sl;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(v, n);
    for (size_t i = 0; i < n; i++)
        grpc_slice_unref(v[i]);
    free(v);
    rpc_msg_free(m);
    return bb;
}

/* Shut down a pluck queue whose batches have all been plucked, then destroy it. */
static void cq_destroy_pluck(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_pluck(cq, TAG(TAG_DRAIN), forever(), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    grpc_completion_queue_destroy(cq);
}

static void cq_destroy_next(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, forever(), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    grpc_completion_queue_destroy(cq);
}

static grpc_arg arg_int(const char *key, int value)
{
    grpc_arg a;
    memset(&a, 0, sizeof(a));
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

static grpc_arg arg_str(const char *key, const char *value)
{
    grpc_arg a;
    memset(&a, 0, sizeof(a));
    a.type = GRPC_ARG_STRING;
    a.key = (char *)key;
    a.value.string = (char *)value;
    return a;
}

static bool tls_pair_ok(const char *cert, const char *key)
{
    return (cert == NULL) == (key == NULL);
}

/* ---- client ------------------------------------------------------------------------------- */

struct rpc_channel {
    grpc_channel *ch;
    grpc_channel_credentials *creds; /* owned */
    char *target;
    char *server_name; /* TLS name override, or NULL */
};

/* own_connection: a connection of its own (not shared with other channels to the target). */
static grpc_channel *channel_create(const char *target, grpc_channel_credentials *creds,
                                    const char *server_name, bool own_connection)
{
    grpc_arg args[10];
    size_t n = 0;
    args[n++] = arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1);
    args[n++] = arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1);
    args[n++] = arg_int(GRPC_ARG_KEEPALIVE_TIME_MS, KEEPALIVE_TIME_MS);
    args[n++] = arg_int(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KEEPALIVE_TIMEOUT_MS);
    /* GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA stays at its default (2): a server with default
     * ping policing (one ping per 5 minutes without data, 2 strikes) would otherwise close a
     * long quiet stream with GOAWAY "too_many_pings" after about 2 minutes. */
    args[n++] = arg_int(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    /* No built-in retries: every caller retries what it may (manager_client.c, the relays), and
     * gRPC 1.51's retry layer can hold a call forever, with no connection and no attempt to make
     * one, on a channel that went idle on the server's GOAWAY (max connection idle, a graceful
     * stop) when the server is then down (docs/faults.md). */
    args[n++] = arg_int(GRPC_ARG_ENABLE_RETRIES, 0);
    if (server_name)
        args[n++] = arg_str(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, server_name);
    if (own_connection) {
        args[n++] = arg_int(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args[n++] = arg_int(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, RPC_BULK_WINDOW);
    }
    grpc_channel_args cargs = {.num_args = n, .args = args};
    return grpc_channel_create(target, creds, &cargs);
}

static rpc_channel *channel_new(const char *target, const rpc_tls *tls, bool own, mt_error **err);

rpc_channel *rpc_channel_new(const char *target, const rpc_tls *tls, mt_error **err)
{
    return channel_new(target, tls, false, err);
}

rpc_channel *rpc_channel_new_own(const char *target, const rpc_tls *tls, mt_error **err)
{
    return channel_new(target, tls, true, err);
}

static rpc_channel *channel_new(const char *target, const rpc_tls *tls, bool own, mt_error **err)
{
    if (!target || !*target) {
        mt_error_set(err, MT_ERR_IO, "A gRPC channel needs a target (host:port).");
        return NULL;
    }
    if (tls && !tls_pair_ok(tls->cert_pem, tls->key_pem)) {
        mt_error_set(err, MT_ERR_IO,
                     "A TLS client certificate needs its key (and a key its certificate).");
        return NULL;
    }
    grpc_init();
    grpc_channel_credentials *creds;
    if (tls) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = tls->key_pem,
                                           .cert_chain = tls->cert_pem};
        creds = grpc_ssl_credentials_create(tls->ca_pem, tls->cert_pem ? &pair : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    if (!creds) {
        grpc_shutdown();
        mt_error_set(err, MT_ERR_IO, "Cannot create the gRPC credentials for %s.", target);
        return NULL;
    }
    const char *name = tls ? tls->server_name : NULL;
    grpc_channel *gch = channel_create(target, creds, name, own);
    if (!gch) {
        grpc_channel_credentials_release(creds);
        grpc_shutdown();
        mt_error_set(err, MT_ERR_IO, "Cannot create a gRPC channel to %s.", target);
        return NULL;
    }
    rpc_channel *ch = xcalloc(1, sizeof(*ch));
    ch->ch = gch;
    ch->creds = creds;
    ch->target = xstrdup(target);
    ch->server_name = name ? xstrdup(name) : NULL;
    return ch;
}

void rpc_channel_free(rpc_channel *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->ch);
    if (ch->creds)
        grpc_channel_credentials_release(ch->creds);
    free(ch->target);
    free(ch->server_name);
    free(ch);
    grpc_shutdown();
}

/* One client call: its queue, the batches still to pluck, and the status it ends with. */
typedef struct ccall {
    grpc_call *call;
    grpc_completion_queue *cq;
    grpc_metadata *md; /* request metadata (slices owned here) */
    size_t nmd;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *send_bb; /* payload of a send batch still pending */
    bool pending[TAG_COUNT];   /* batches started and not yet plucked */
    atomic_bool cancelled;     /* this client cancelled it (rpc_*stream_cancel, any thread) */
} ccall;

static void md_free(grpc_metadata *md, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        grpc_slice_unref(md[i].key);
        grpc_slice_unref(md[i].value);
    }
    free(md);
}

static void ccall_open(ccall *cc, rpc_channel *ch, const char *method, const rpc_metadata *md,
                       size_t nmd, int64_t deadline_ms)
{
    memset(cc, 0, sizeof(*cc));
    atomic_init(&cc->cancelled, false);
    cc->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice m = grpc_slice_from_copied_string(method ? method : "");
    cc->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cc->cq, m, NULL,
                                        deadline_after(deadline_ms), NULL);
    grpc_slice_unref(m);
    grpc_metadata_array_init(&cc->init_md);
    grpc_metadata_array_init(&cc->trail_md);
    cc->details = grpc_empty_slice();
    cc->status = GRPC_STATUS_UNKNOWN;
    if (nmd) {
        cc->md = xcalloc(nmd, sizeof(*cc->md));
        cc->nmd = nmd;
        for (size_t i = 0; i < nmd; i++) {
            cc->md[i].key = grpc_slice_from_copied_string(md[i].key ? md[i].key : "");
            cc->md[i].value = grpc_slice_from_copied_string(md[i].value ? md[i].value : "");
        }
    }
}

/* Start a batch; on failure *st says why. */
static int ccall_start(ccall *cc, const grpc_op *ops, size_t nops, int tag, rpc_status *st)
{
    grpc_call_error e = grpc_call_start_batch(cc->call, ops, nops, TAG(tag), NULL);
    if (e != GRPC_CALL_OK) {
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot start the call: %s", grpc_call_error_to_string(e));
        status_set(st, RPC_INTERNAL, msg);
        return -1;
    }
    cc->pending[tag] = true;
    return 0;
}

static grpc_event ccall_pluck(ccall *cc, int tag)
{
    grpc_event ev = grpc_completion_queue_pluck(cc->cq, TAG(tag), forever(), NULL);
    cc->pending[tag] = false;
    if (tag == TAG_SEND && cc->send_bb) {
        grpc_byte_buffer_destroy(cc->send_bb);
        cc->send_bb = NULL;
    }
    return ev;
}

/* The call's final status (the status batch has been plucked). CANCELLED that this client did
 * not ask for comes from the server, which cancels calls as it stops (gRPC's server shutdown
 * cancels those it had not handed to a handler and those arriving meanwhile, grpc/grpc#41785,
 * and those still running when its grace ends): that is the server going away, UNAVAILABLE,
 * which callers retry; CANCELLED is no client's to retry. */
static void ccall_status(ccall *cc, rpc_status *st)
{
    const char *details = (const char *)GRPC_SLICE_START_PTR(cc->details);
    size_t len = GRPC_SLICE_LENGTH(cc->details);
    if (cc->status != GRPC_STATUS_CANCELLED || atomic_load(&cc->cancelled)) {
        status_set_bytes(st, (int)cc->status, details, len);
        return;
    }
    char msg[sizeof(st->message)];
    snprintf(msg, sizeof(msg), "the server cancelled the call (it is stopping): %.*s",
             (int)(len < 200 ? len : 200), details);
    status_set(st, RPC_UNAVAILABLE, msg);
}

/* Cancel if unfinished, pluck what is pending, release everything. */
static void ccall_close(ccall *cc)
{
    bool any = false;
    for (int t = 0; t < TAG_COUNT; t++)
        any = any || cc->pending[t];
    if (any)
        grpc_call_cancel(cc->call, NULL);
    for (int t = 0; t < TAG_COUNT; t++)
        if (cc->pending[t])
            ccall_pluck(cc, t);
    grpc_call_unref(cc->call);
    cq_destroy_pluck(cc->cq);
    if (cc->send_bb)
        grpc_byte_buffer_destroy(cc->send_bb);
    grpc_metadata_array_destroy(&cc->init_md);
    grpc_metadata_array_destroy(&cc->trail_md);
    grpc_slice_unref(cc->details);
    md_free(cc->md, cc->nmd);
    memset(cc, 0, sizeof(*cc));
}

static void op_send_initial_md(grpc_op *op, ccall *cc)
{
    memset(op, 0, sizeof(*op));
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    op->data.send_initial_metadata.count = cc ? cc->nmd : 0;
    op->data.send_initial_metadata.metadata = cc ? cc->md : NULL;
}

static void op_simple(grpc_op *op, grpc_op_type type)
{
    memset(op, 0, sizeof(*op));
    op->op = type;
}

static void op_send_message(grpc_op *op, grpc_byte_buffer *bb)
{
    op_simple(op, GRPC_OP_SEND_MESSAGE);
    op->data.send_message.send_message = bb;
}

static void op_recv_message(grpc_op *op, grpc_byte_buffer **bb)
{
    op_simple(op, GRPC_OP_RECV_MESSAGE);
    op->data.recv_message.recv_message = bb;
}

static void op_recv_initial_md(grpc_op *op, ccall *cc)
{
    op_simple(op, GRPC_OP_RECV_INITIAL_METADATA);
    op->data.recv_initial_metadata.recv_initial_metadata = &cc->init_md;
}

static void op_recv_status(grpc_op *op, ccall *cc)
{
    op_simple(op, GRPC_OP_RECV_STATUS_ON_CLIENT);
    op->data.recv_status_on_client.trailing_metadata = &cc->trail_md;
    op->data.recv_status_on_client.status = &cc->status;
    op->data.recv_status_on_client.status_details = &cc->details;
}

/* The single response of a unary or client-streaming call, once the status is known. */
static int take_response(ccall *cc, grpc_byte_buffer *bb, rpc_bytes *resp, rpc_status *st)
{
    ccall_status(cc, st);
    if (cc->status != GRPC_STATUS_OK)
        return -1;
    if (!bb) {
        status_set(st, RPC_INTERNAL, "the server sent no response message");
        return -1;
    }
    rpc_bytes tmp = {0};
    if (bb_to_bytes(bb, &tmp) < 0) {
        status_set(st, RPC_INTERNAL, "cannot read the response message");
        return -1;
    }
    if (resp)
        *resp = tmp;
    else
        rpc_bytes_free(&tmp);
    return 0;
}

int rpc_unary(rpc_channel *ch, const char *method, const rpc_metadata *md, size_t nmd,
              const void *req, size_t req_len, int64_t deadline_ms, rpc_bytes *resp, rpc_status *st)
{
    if (resp) {
        resp->data = NULL;
        resp->len = 0;
    }
    ccall cc;
    ccall_open(&cc, ch, method, md, nmd, deadline_ms);
    cc.send_bb = bb_new(req, req_len);
    grpc_byte_buffer *resp_bb = NULL;
    grpc_op ops[6];
    op_send_initial_md(&ops[0], &cc);
    op_send_message(&ops[1], cc.send_bb);
    op_simple(&ops[2], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
    op_recv_initial_md(&ops[3], &cc);
    op_recv_message(&ops[4], &resp_bb);
    op_recv_status(&ops[5], &cc);
    int rc = -1;
    if (ccall_start(&cc, ops, ARRAY_LEN(ops), TAG_STATUS, st) == 0) {
        ccall_pluck(&cc, TAG_STATUS);
        rc = take_response(&cc, resp_bb, resp, st);
    }
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    ccall_close(&cc);
    return rc;
}

struct rpc_cstream {
    ccall cc;
    bool broken;   /* a send failed: the call is over */
    bool finished; /* rpc_cstream_finish ran */
};

rpc_cstream *rpc_cstream_start(rpc_channel *ch, const char *method, const rpc_metadata *md,
                               size_t nmd, int64_t deadline_ms, rpc_status *st)
{
    rpc_cstream *s = xcalloc(1, sizeof(*s));
    ccall_open(&s->cc, ch, method, md, nmd, deadline_ms);
    grpc_op ops[2];
    op_send_initial_md(&ops[0], &s->cc);
    op_recv_status(&ops[1], &s->cc);
    if (ccall_start(&s->cc, ops, ARRAY_LEN(ops), TAG_STATUS, st) < 0) {
        ccall_close(&s->cc);
        free(s);
        return NULL;
    }
    status_set(st, RPC_OK, NULL);
    return s;
}

static int cstream_send_bb(rpc_cstream *s, grpc_byte_buffer *bb);

int rpc_cstream_send(rpc_cstream *s, const void *msg, size_t len)
{
    if (!s || s->broken || s->finished)
        return -1;
    return cstream_send_bb(s, bb_new(msg, len));
}

int rpc_cstream_send_owned(rpc_cstream *s, void *buf, size_t off, size_t len)
{
    if (!s || s->broken || s->finished) {
        free(buf);
        return -1;
    }
    return cstream_send_bb(s, bb_new_owned(buf, off, len));
}

int rpc_cstream_send_msg(rpc_cstream *s, const void *head, size_t hlen, rpc_msg *m, size_t from)
{
    if (!s || s->broken || s->finished || !m) {
        rpc_msg_free(m);
        return -1;
    }
    return cstream_send_bb(s, bb_from_msg(head, hlen, m, from));
}

static int cstream_send_bb(rpc_cstream *s, grpc_byte_buffer *bb)
{
    s->cc.send_bb = bb;
    grpc_op op;
    op_send_message(&op, s->cc.send_bb);
    if (ccall_start(&s->cc, &op, 1, TAG_SEND, NULL) < 0) {
        grpc_byte_buffer_destroy(s->cc.send_bb);
        s->cc.send_bb = NULL;
        s->broken = true;
        return -1;
    }
    grpc_event ev = ccall_pluck(&s->cc, TAG_SEND);
    if (!ev.success) {
        s->broken = true;
        return -1;
    }
    return 0;
}

int rpc_cstream_finish(rpc_cstream *s, rpc_bytes *resp, rpc_status *st)
{
    if (resp) {
        resp->data = NULL;
        resp->len = 0;
    }
    if (!s || s->finished) {
        status_set(st, RPC_INTERNAL, "the stream was already finished");
        return -1;
    }
    s->finished = true;
    grpc_byte_buffer *resp_bb = NULL;
    grpc_op ops[3];
    op_simple(&ops[0], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
    op_recv_initial_md(&ops[1], &s->cc);
    op_recv_message(&ops[2], &resp_bb);
    if (ccall_start(&s->cc, ops, ARRAY_LEN(ops), TAG_FINISH, NULL) == 0)
        ccall_pluck(&s->cc, TAG_FINISH);
    else
        grpc_call_cancel(s->cc.call, NULL); /* or the status would never come */
    ccall_pluck(&s->cc, TAG_STATUS);
    int rc = take_response(&s->cc, resp_bb, resp, st);
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    return rc;
}

void rpc_cstream_cancel(rpc_cstream *s)
{
    if (!s)
        return;
    atomic_store(&s->cc.cancelled, true);
    grpc_call_cancel(s->cc.call, NULL);
}

void rpc_cstream_free(rpc_cstream *s)
{
    if (!s)
        return;
    ccall_close(&s->cc);
    free(s);
}

struct rpc_sstream {
    ccall cc;
    bool got_initial_md;
    bool ended;
    int end_rc;
    rpc_status end_st;
};

rpc_sstream *rpc_sstream_start(rpc_channel *ch, const char *method, const rpc_metadata *md,
                               size_t nmd, const void *req, size_t req_len, int64_t deadline_ms,
                               rpc_status *st)
{
    rpc_sstream *s = xcalloc(1, sizeof(*s));
    ccall_open(&s->cc, ch, method, md, nmd, deadline_ms);
    /* The request payload is held until the status batch is plucked (gRPC has taken its
     * bytes by then; the byte buffer itself is an empty shell). */
    s->cc.send_bb = bb_new(req, req_len);
    grpc_op ops[4];
    op_send_initial_md(&ops[0], &s->cc);
    op_send_message(&ops[1], s->cc.send_bb);
    op_simple(&ops[2], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
    op_recv_status(&ops[3], &s->cc);
    if (ccall_start(&s->cc, ops, ARRAY_LEN(ops), TAG_STATUS, st) < 0) {
        ccall_close(&s->cc);
        free(s);
        return NULL;
    }
    status_set(st, RPC_OK, NULL);
    return s;
}

/* The next message as gRPC's byte buffer: 1 with *out (owned), 0 or -1 as rpc_sstream_next. */
static int sstream_next_bb(rpc_sstream *s, grpc_byte_buffer **out, rpc_status *st)
{
    *out = NULL;
    if (!s) {
        status_set(st, RPC_INTERNAL, "no stream");
        return -1;
    }
    if (s->ended) {
        if (st)
            *st = s->end_st;
        return s->end_rc;
    }
    grpc_byte_buffer *bb = NULL;
    grpc_op ops[2];
    size_t n = 0;
    if (!s->got_initial_md) {
        op_recv_initial_md(&ops[n++], &s->cc);
        s->got_initial_md = true;
    }
    op_recv_message(&ops[n++], &bb);
    grpc_event ev = {0};
    bool started = ccall_start(&s->cc, ops, n, TAG_RECV, NULL) == 0;
    if (started)
        ev = ccall_pluck(&s->cc, TAG_RECV);
    if (started && ev.success && bb) {
        *out = bb;
        return 1;
    }
    if (bb)
        grpc_byte_buffer_destroy(bb);
    if (!started)
        grpc_call_cancel(s->cc.call, NULL); /* or the status would never come */
    /* end of the stream or failure: the status says which */
    ccall_pluck(&s->cc, TAG_STATUS);
    ccall_status(&s->cc, &s->end_st);
    s->ended = true;
    s->end_rc = s->cc.status == GRPC_STATUS_OK ? 0 : -1;
    if (s->end_rc == 0 && started && !ev.success) {
        s->end_rc = -1;
        status_set(&s->end_st, RPC_INTERNAL, "receiving a stream message failed");
    }
    if (st)
        *st = s->end_st;
    return s->end_rc;
}

/* An unreadable message breaks the stream. */
static int sstream_unreadable(rpc_sstream *s, rpc_status *st)
{
    grpc_call_cancel(s->cc.call, NULL);
    ccall_pluck(&s->cc, TAG_STATUS);
    s->ended = true;
    s->end_rc = -1;
    status_set(&s->end_st, RPC_INTERNAL, "cannot read a stream message");
    if (st)
        *st = s->end_st;
    return -1;
}

int rpc_sstream_next(rpc_sstream *s, rpc_bytes *msg, rpc_status *st)
{
    if (msg) {
        msg->data = NULL;
        msg->len = 0;
    }
    grpc_byte_buffer *bb = NULL;
    int r = sstream_next_bb(s, &bb, st);
    if (r != 1)
        return r;
    rpc_bytes tmp = {0};
    r = bb_to_bytes(bb, &tmp);
    grpc_byte_buffer_destroy(bb);
    if (r < 0)
        return sstream_unreadable(s, st);
    if (msg)
        *msg = tmp;
    else
        rpc_bytes_free(&tmp);
    return 1;
}

int rpc_sstream_next_msg(rpc_sstream *s, rpc_msg **msg, rpc_status *st)
{
    *msg = NULL;
    grpc_byte_buffer *bb = NULL;
    int r = sstream_next_bb(s, &bb, st);
    if (r != 1)
        return r;
    *msg = msg_take(bb);
    return *msg ? 1 : sstream_unreadable(s, st);
}

void rpc_sstream_cancel(rpc_sstream *s)
{
    if (!s)
        return;
    atomic_store(&s->cc.cancelled, true);
    grpc_call_cancel(s->cc.call, NULL);
}

void rpc_sstream_free(rpc_sstream *s)
{
    if (!s)
        return;
    ccall_close(&s->cc);
    free(s);
}

/* ---- server ------------------------------------------------------------------------------- */

struct rpc_call {
    rpc_server *srv;
    grpc_call *call;
    grpc_completion_queue *cq; /* pluck queue bound to the call */
    grpc_call_details details;
    grpc_metadata_array md;
    char *method;
    char *peer;
    char **md_keys, **md_values; /* NUL-terminated copies of the request metadata */
    size_t nmd;
    gpr_timespec deadline; /* monotonic */
    int close_cancelled;   /* out-parameter of RECV_CLOSE_ON_SERVER */
    bool close_pending;    /* the RECV_CLOSE_ON_SERVER batch is not plucked yet */
    bool close_done;
    bool md_sent;
    bool half_closed;
    bool broken;
    bool finished;
    bool finish_ok;   /* the status went out */
    int64_t stall_ms; /* 0: a step may wait forever (rpc_call_set_stall_limit) */
    char *stall_why;  /* status message when the limit ends the call */
    bool stalled;     /* the limit ended the call */
    rpc_call *next;   /* in the server's wait queue */
};

typedef struct worker {
    pthread_t thread;
    rpc_server *srv;
    rpc_call *first;
    bool done;
    struct worker *next;
} worker;

struct rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq; /* "next" queue: new calls and the shutdown notification */
    rpc_handler handler;
    void *ctx;
    int max_calls;
    pthread_t dispatcher;
    bool dispatcher_started;
    char shutdown_tag; /* its address tags the shutdown notification */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int active;        /* live workers */
    worker *workers;   /* all workers not yet joined */
    rpc_call *queue_head, *queue_tail;
    int queued;
    bool stopping;
    bool shutdown_done;
};

static rpc_call *call_new(rpc_server *srv)
{
    rpc_call *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    return c;
}

static char *slice_strdup(grpc_slice s)
{
    return xstrndup((const char *)GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

/* Fill the borrowed views of a new call. */
static void call_prepare(rpc_call *c)
{
    c->method = slice_strdup(c->details.method);
    char *peer = grpc_call_get_peer(c->call);
    c->peer = xstrdup(peer ? peer : "");
    gpr_free(peer);
    c->nmd = c->md.count;
    c->md_keys = xcalloc(c->nmd + 1, sizeof(char *));
    c->md_values = xcalloc(c->nmd + 1, sizeof(char *));
    for (size_t i = 0; i < c->nmd; i++) {
        c->md_keys[i] = slice_strdup(c->md.metadata[i].key);
        c->md_values[i] = slice_strdup(c->md.metadata[i].value);
    }
    c->deadline = gpr_convert_clock_type(c->details.deadline, GPR_CLOCK_MONOTONIC);
}

/* Release a call whose batches have all been plucked. */
static void call_free(rpc_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    cq_destroy_pluck(c->cq);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    free(c->method);
    free(c->peer);
    for (size_t i = 0; i < c->nmd; i++) {
        free(c->md_keys[i]);
        free(c->md_values[i]);
    }
    free(c->md_keys);
    free(c->md_values);
    free(c->stall_why);
    free(c);
}

/* Refuse a call that will not reach a handler. */
static void call_reject(rpc_call *c, grpc_status_code code, const char *why)
{
    grpc_call_cancel_with_status(c->call, code, why, NULL);
    call_free(c);
}

static grpc_event call_pluck(rpc_call *c, int tag, gpr_timespec deadline)
{
    return grpc_completion_queue_pluck(c->cq, TAG(tag), deadline, NULL);
}

/* Wait for the batch `tag` of a call step. Under a stall limit, a batch that does not complete
 * in time ends the call: cancelling with a status fails every pending batch at once (the
 * transport sends the status and resets the stream), so the batch is then plucked without a
 * timeout - a batch is never left behind in the queue - and reported as failed. */
static grpc_event call_wait(rpc_call *c, int tag)
{
    if (c->stall_ms <= 0)
        return call_pluck(c, tag, forever());
    grpc_event ev = call_pluck(c, tag, deadline_after(c->stall_ms));
    if (ev.type != GRPC_QUEUE_TIMEOUT)
        return ev;
    c->stalled = true;
    c->broken = true;
    c->finished = true; /* the cancel carries the status */
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED, c->stall_why, NULL);
    ev = call_pluck(c, tag, forever());
    ev.success = 0;
    return ev;
}

void rpc_call_set_stall_limit(rpc_call *call, int64_t stall_ms, const char *why)
{
    call->stall_ms = stall_ms > 0 ? stall_ms : 0;
    free(call->stall_why);
    call->stall_why = xstrdup(why && *why ? why
                                          : "The call made no progress within the server's "
                                            "stall limit and was ended.");
}

bool rpc_call_stalled(const rpc_call *call)
{
    return call->stalled;
}

const char *rpc_call_method(const rpc_call *call)
{
    return call->method;
}

const char *rpc_call_metadata(const rpc_call *call, const char *key)
{
    for (size_t i = 0; i < call->nmd; i++)
        if (strcasecmp(call->md_keys[i], key) == 0)
            return call->md_values[i];
    return NULL;
}

const char *rpc_call_peer(const rpc_call *call)
{
    return call->peer;
}

bool rpc_call_cancelled(const rpc_call *call)
{
    /* The queue belongs to the handler thread, which is the one asking. */
    rpc_call *c = (rpc_call *)call;
    if (c->close_pending) {
        grpc_event ev = call_pluck(c, TAG_CLOSE, gpr_time_0(GPR_CLOCK_MONOTONIC));
        if (ev.type == GRPC_OP_COMPLETE) {
            c->close_pending = false;
            c->close_done = true;
        }
    }
    if (c->close_done && c->close_cancelled)
        return true;
    return gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), c->deadline) >= 0;
}

/* The next request message as gRPC's byte buffer: 1 with *out (owned), 0 or -1 as
 * rpc_call_recv. */
static int call_recv_bb(rpc_call *call, grpc_byte_buffer **out)
{
    *out = NULL;
    if (call->broken || call->finished)
        return -1;
    if (call->half_closed)
        return 0;
    grpc_byte_buffer *bb = NULL;
    grpc_op op;
    op_recv_message(&op, &bb);
    if (grpc_call_start_batch(call->call, &op, 1, TAG(TAG_RECV), NULL) != GRPC_CALL_OK) {
        call->broken = true;
        return -1;
    }
    grpc_event ev = call_wait(call, TAG_RECV);
    if (!ev.success) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        call->broken = true;
        return -1;
    }
    if (!bb) {
        /* No message: the client half-closed, or the stream ended without its trailers
         * (cancelled, deadline, connection lost, server stopping) - which gRPC flags. */
        if (grpc_call_failed_before_recv_message(call->call) || rpc_call_cancelled(call)) {
            call->broken = true;
            return -1;
        }
        call->half_closed = true;
        return 0;
    }
    *out = bb;
    return 1;
}

int rpc_call_recv(rpc_call *call, rpc_bytes *msg)
{
    if (msg) {
        msg->data = NULL;
        msg->len = 0;
    }
    grpc_byte_buffer *bb = NULL;
    int r = call_recv_bb(call, &bb);
    if (r != 1)
        return r;
    rpc_bytes tmp = {0};
    r = bb_to_bytes(bb, &tmp);
    grpc_byte_buffer_destroy(bb);
    if (r < 0) {
        call->broken = true;
        return -1;
    }
    if (msg)
        *msg = tmp;
    else
        rpc_bytes_free(&tmp);
    return 1;
}

int rpc_call_recv_msg(rpc_call *call, rpc_msg **msg)
{
    *msg = NULL;
    grpc_byte_buffer *bb = NULL;
    int r = call_recv_bb(call, &bb);
    if (r != 1)
        return r;
    *msg = msg_take(bb);
    if (!*msg) {
        call->broken = true;
        return -1;
    }
    return 1;
}

static int call_send_bb(rpc_call *call, grpc_byte_buffer *bb);

int rpc_call_send(rpc_call *call, const void *msg, size_t len)
{
    if (call->broken || call->finished)
        return -1;
    return call_send_bb(call, bb_new(msg, len));
}

int rpc_call_send_owned(rpc_call *call, void *buf, size_t off, size_t len)
{
    if (call->broken || call->finished) {
        free(buf);
        return -1;
    }
    return call_send_bb(call, bb_new_owned(buf, off, len));
}

int rpc_call_send_msg(rpc_call *call, const void *head, size_t hlen, rpc_msg *m, size_t from)
{
    if (call->broken || call->finished || !m) {
        rpc_msg_free(m);
        return -1;
    }
    return call_send_bb(call, bb_from_msg(head, hlen, m, from));
}

static int call_send_bb(rpc_call *call, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    size_t n = 0;
    if (!call->md_sent)
        op_send_initial_md(&ops[n++], NULL);
    op_send_message(&ops[n++], bb);
    if (grpc_call_start_batch(call->call, ops, n, TAG(TAG_SEND), NULL) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(bb);
        call->broken = true;
        return -1;
    }
    call->md_sent = true;
    grpc_event ev = call_wait(call, TAG_SEND);
    grpc_byte_buffer_destroy(bb);
    if (!ev.success) {
        call->broken = true;
        return -1;
    }
    return 0;
}

int rpc_call_finish(rpc_call *call, int code, const char *message)
{
    if (call->finished)
        return -1;
    call->finished = true;
    if (code < 0 || code > RPC_UNAUTHENTICATED)
        code = RPC_UNKNOWN;
    grpc_op ops[2];
    size_t n = 0;
    if (!call->md_sent) {
        op_send_initial_md(&ops[n++], NULL);
        call->md_sent = true;
    }
    grpc_slice details = grpc_slice_from_copied_string(message ? message : "");
    grpc_op *op = &ops[n++];
    op_simple(op, GRPC_OP_SEND_STATUS_FROM_SERVER);
    op->data.send_status_from_server.status = (grpc_status_code)code;
    op->data.send_status_from_server.status_details = message && *message ? &details : NULL;
    grpc_call_error e = grpc_call_start_batch(call->call, ops, n, TAG(TAG_FINISH), NULL);
    grpc_slice_unref(details);
    if (e != GRPC_CALL_OK)
        return -1;
    grpc_event ev = call_wait(call, TAG_FINISH);
    call->finish_ok = ev.success != 0;
    return call->finish_ok ? 0 : -1;
}

/* Run one call on a worker thread: the handler, then the end of the call. */
static void call_run(rpc_call *c)
{
    grpc_op op;
    op_simple(&op, GRPC_OP_RECV_CLOSE_ON_SERVER);
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, TAG(TAG_CLOSE), NULL) == GRPC_CALL_OK)
        c->close_pending = true;
    c->srv->handler(c->srv->ctx, c);
    if (!c->finished)
        rpc_call_finish(c, RPC_INTERNAL, "the server handler did not finish the call");
    if (c->close_pending) {
        /* completes once the status is out or the call is cancelled */
        if (!c->finish_ok)
            grpc_call_cancel(c->call, NULL);
        call_pluck(c, TAG_CLOSE, forever());
        c->close_pending = false;
    }
    call_free(c);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rpc_server *srv = w->srv;
    rpc_call *c = w->first;
    w->first = NULL;
    while (c) {
        call_run(c);
        pthread_mutex_lock(&srv->mu);
        c = srv->queue_head;
        if (c) {
            srv->queue_head = c->next;
            if (!srv->queue_head)
                srv->queue_tail = NULL;
            srv->queued--;
            c->next = NULL;
        } else {
            srv->active--;
            w->done = true;
            pthread_cond_broadcast(&srv->cv);
        }
        pthread_mutex_unlock(&srv->mu);
    }
    return NULL;
}

/* Unlink the workers that have exited (mu held); the caller joins them. */
static worker *take_done_workers(rpc_server *srv)
{
    worker *done = NULL, **pp = &srv->workers;
    while (*pp) {
        worker *w = *pp;
        if (w->done) {
            *pp = w->next;
            w->next = done;
            done = w;
        } else {
            pp = &w->next;
        }
    }
    return done;
}

static void join_workers(worker *w)
{
    while (w) {
        worker *next = w->next;
        pthread_join(w->thread, NULL);
        free(w);
        w = next;
    }
}

/* Hand an accepted call to a worker, queue it, or refuse it. */
static void dispatch(rpc_server *srv, rpc_call *c)
{
    call_prepare(c);
    pthread_mutex_lock(&srv->mu);
    worker *reaped = take_done_workers(srv);
    if (srv->stopping) {
        pthread_mutex_unlock(&srv->mu);
        join_workers(reaped);
        call_reject(c, GRPC_STATUS_UNAVAILABLE, "the server is stopping");
        return;
    }
    if (srv->active < srv->max_calls) {
        worker *w = xcalloc(1, sizeof(*w));
        w->srv = srv;
        w->first = c;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_mutex_unlock(&srv->mu);
            free(w);
            join_workers(reaped);
            call_reject(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "the server cannot start a thread");
            return;
        }
        srv->active++;
        w->next = srv->workers;
        srv->workers = w;
    } else if (srv->queued < SERVER_QUEUE_MAX) {
        if (srv->queue_tail)
            srv->queue_tail->next = c;
        else
            srv->queue_head = c;
        srv->queue_tail = c;
        srv->queued++;
    } else {
        pthread_mutex_unlock(&srv->mu);
        join_workers(reaped);
        call_reject(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "the server is busy");
        return;
    }
    pthread_mutex_unlock(&srv->mu);
    join_workers(reaped);
}

static void *dispatcher_main(void *arg)
{
    rpc_server *srv = arg;
    rpc_call *pending = NULL;
    bool shutdown_seen = false;
    /* after the notification, wait for the failed request too: gRPC writes into it */
    while (!shutdown_seen || pending) {
        if (!pending && !shutdown_seen) {
            pthread_mutex_lock(&srv->mu);
            bool stopping = srv->stopping;
            pthread_mutex_unlock(&srv->mu);
            if (!stopping) {
                pending = call_new(srv);
                grpc_call_error e =
                    grpc_server_request_call(srv->server, &pending->call, &pending->details,
                                             &pending->md, pending->cq, srv->cq, pending);
                if (e != GRPC_CALL_OK) {
                    call_free(pending);
                    pending = NULL;
                }
            }
        }
        grpc_event ev = grpc_completion_queue_next(srv->cq, forever(), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &srv->shutdown_tag) {
            pthread_mutex_lock(&srv->mu);
            srv->shutdown_done = true;
            pthread_cond_broadcast(&srv->cv);
            pthread_mutex_unlock(&srv->mu);
            shutdown_seen = true;
            continue;
        }
        rpc_call *c = ev.tag;
        if (c == pending)
            pending = NULL;
        if (!ev.success || !c->call) {
            /* the request was failed by the shutdown */
            call_free(c);
            continue;
        }
        dispatch(srv, c);
    }
    return NULL;
}

static void server_destroy(rpc_server *srv)
{
    if (srv->server)
        grpc_server_destroy(srv->server);
    if (srv->cq)
        cq_destroy_next(srv->cq);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    grpc_shutdown();
}

/* Shut the gRPC server down and wait for the notification (no dispatcher running). */
static void server_shutdown_unstarted(rpc_server *srv)
{
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    grpc_server_cancel_all_calls(srv->server);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(srv->cq, forever(), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN ||
            (ev.type == GRPC_OP_COMPLETE && ev.tag == &srv->shutdown_tag))
            break;
    }
}

/* gRPC 1.51 binds listeners with SO_REUSEPORT whatever GRPC_ARG_ALLOW_REUSEPORT says, so a
 * second server on a port already serving would share it silently. Probe the address with a
 * plain bind first: true if something listens there. */
static bool port_in_use(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0 || strncmp(addr, "unix-abstract:", 14) == 0)
        return false;
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strcmp(colon + 1, "0") == 0)
        return false;
    cleanup_free char *host = NULL;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb + 1 != colon)
            return false;
        host = xstrndup(addr + 1, (size_t)(rb - addr - 1));
    } else {
        host = xstrndup(addr, (size_t)(colon - addr));
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res) != 0)
        return false;
    bool busy = false;
    for (struct addrinfo *ai = res; ai && !busy; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno == EADDRINUSE)
            busy = true;
        close(fd);
    }
    freeaddrinfo(res);
    return busy;
}

rpc_server *rpc_server_start(const char *addr, const rpc_server_tls *tls, int max_calls,
                             rpc_handler handler, void *ctx, int *bound_port, mt_error **err)
{
    return rpc_server_start_opts(addr, tls, max_calls, NULL, handler, ctx, bound_port, err);
}

rpc_server *rpc_server_start_opts(const char *addr, const rpc_server_tls *tls, int max_calls,
                                  const rpc_server_opts *opts, rpc_handler handler, void *ctx,
                                  int *bound_port, mt_error **err)
{
    if (!addr || !*addr || !handler || max_calls < 1) {
        mt_error_set(err, MT_ERR_IO,
                     "A gRPC server needs an address, a handler and max_calls of at least 1.");
        return NULL;
    }
    if (tls && (!tls->cert_pem || !tls->key_pem)) {
        mt_error_set(err, MT_ERR_IO, "A TLS gRPC server needs a certificate and its key.");
        return NULL;
    }
    if (port_in_use(addr)) {
        mt_error_set(err, MT_ERR_IO, "Cannot serve gRPC on %s: the address is in use.", addr);
        return NULL;
    }
    grpc_init();
    rpc_server *srv = xcalloc(1, sizeof(*srv));
    srv->handler = handler;
    srv->ctx = ctx;
    srv->max_calls = max_calls;
    pthread_mutex_init(&srv->mu, NULL);
    clock_cond_init(&srv->cv);

    grpc_arg args[5];
    size_t n = 0;
    args[n++] = arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1);
    args[n++] = arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1);
    /* accept the keepalive pings of our clients (the default allows one per 5 minutes) */
    args[n++] =
        arg_int(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, KEEPALIVE_TIME_MS / 2);
    if (opts && opts->window_bytes > 0) {
        args[n++] = arg_int(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, opts->window_bytes);
        args[n++] = arg_int(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    }
    grpc_channel_args cargs = {.num_args = n, .args = args};
    srv->server = grpc_server_create(&cargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);

    grpc_server_credentials *creds;
    if (tls) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = tls->key_pem,
                                           .cert_chain = tls->cert_pem};
        creds = grpc_ssl_server_credentials_create_ex(
            tls->client_ca_pem, &pair, 1,
            tls->client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    int port = creds ? grpc_server_add_http2_port(srv->server, addr, creds) : 0;
    if (creds)
        grpc_server_credentials_release(creds);
    if (port <= 0) {
        server_shutdown_unstarted(srv);
        server_destroy(srv);
        mt_error_set(err, MT_ERR_IO, "Cannot serve gRPC on %s%s.", addr,
                     tls ? " (address in use, or invalid TLS certificate or key)"
                         : " (address in use or invalid)");
        return NULL;
    }
    grpc_server_start(srv->server);
    if (pthread_create(&srv->dispatcher, NULL, dispatcher_main, srv) != 0) {
        server_shutdown_unstarted(srv);
        server_destroy(srv);
        mt_error_set(err, MT_ERR_IO, "Cannot start the gRPC server thread.");
        return NULL;
    }
    srv->dispatcher_started = true;
    if (bound_port)
        *bound_port = port;
    return srv;
}

void rpc_server_stop(rpc_server *srv, int64_t grace_ms)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->stopping = true;
    pthread_mutex_unlock(&srv->mu);
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);

    /* Let calls in progress end on their own for grace_ms, then cancel them. */
    struct timespec until = clock_mono_after(grace_ms < 0 ? 0 : grace_ms);
    pthread_mutex_lock(&srv->mu);
    int r = 0;
    while (!srv->shutdown_done && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&srv->cv, &srv->mu, &until);
    bool done = srv->shutdown_done;
    pthread_mutex_unlock(&srv->mu);
    if (!done)
        grpc_server_cancel_all_calls(srv->server);

    pthread_join(srv->dispatcher, NULL);
    pthread_mutex_lock(&srv->mu);
    worker *all = srv->workers;
    srv->workers = NULL;
    pthread_mutex_unlock(&srv->mu);
    join_workers(all);
    server_destroy(srv);
}
