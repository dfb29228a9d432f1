/* rpc.h - the gRPC layer: every call into gRPC core lives in rpc.c.
 *
 * Messages cross this API as serialised bytes (protobuf-c packs/unpacks them); method paths are
 * full ("/node.node_service.Node/RegisterNode"). The API is blocking and thread-safe: client
 * calls run on the calling thread (each call has its own completion queue), so the node makes
 * them from worker threads, never from its event loop. A server runs its own threads; each
 * incoming call is handed to the handler on one of them, and the handler drives the call with
 * blocking receive/send/finish operations.
 *
 * No message-size cap on either side (the contract sends whole payloads in one message).
 * Every client call has a deadline (deadline_ms > 0) or none (0).
 */
#ifndef MANTA_RPC_H
#define MANTA_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* gRPC status codes (the numeric values of grpc_status_code). */
enum rpc_code {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
};

/* Name of a code ("UNAVAILABLE"). */
const char *rpc_code_name(int code);

/* A call's outcome. A client call reports CANCELLED only when this side cancelled it
 * (rpc_cstream_cancel, rpc_sstream_cancel); a server's cancel (a server stopping cancels calls,
 * grpc/grpc#41785) reads as UNAVAILABLE, "the server cancelled the call ...". */
typedef struct rpc_status {
    int code;          /* enum rpc_code */
    char message[512]; /* grpc-message (truncated), "" if none */
} rpc_status;

/* Owned bytes (free with rpc_bytes_free). */
typedef struct rpc_bytes {
    uint8_t *data;
    size_t len;
} rpc_bytes;
void rpc_bytes_free(rpc_bytes *b);

/* A received message left in gRPC's own buffers (no copy), for relaying it - or its tail after
 * a new head - to another call: rpc_call_recv_msg / rpc_sstream_next_msg receive one,
 * rpc_call_send_msg / rpc_cstream_send_msg send it on (taking it). A relay that copies the
 * message out (rpc_bytes) holds it twice and writes every byte once more; this holds it once.
 * Free with rpc_msg_free (NULL is fine). */
typedef struct rpc_msg rpc_msg;
size_t rpc_msg_len(const rpc_msg *m);
/* Copy the message's bytes [off, off+n) (clipped to its length) into buf; returns how many. */
size_t rpc_msg_copy(const rpc_msg *m, size_t off, void *buf, size_t n);
/* The whole message as owned bytes (a copy). */
void rpc_msg_to_bytes(const rpc_msg *m, rpc_bytes *out);
void rpc_msg_free(rpc_msg *m);

/* One metadata entry; keys lower-case ("authorization"). */
typedef struct rpc_metadata {
    const char *key;
    const char *value;
} rpc_metadata;

/* Process-wide init/shutdown of gRPC core (reference-counted; call init before anything). */
void rpc_init(void);
void rpc_shutdown(void);

/* ---- client ---------------------------------------------------------------------------- */

typedef struct rpc_tls {
    const char *ca_pem;      /* root certificates (PEM text); NULL = system roots */
    const char *cert_pem;    /* client certificate for mutual TLS, or NULL */
    const char *key_pem;     /* its key, or NULL */
    const char *server_name; /* expected name in the server certificate (override), or NULL */
} rpc_tls;

typedef struct rpc_channel rpc_channel;

/* target: "host:port". tls: NULL = plaintext. Returns owned or NULL with *err. Connecting is
 * lazy (the first call connects); keepalive pings keep idle connections alive. */
rpc_channel *rpc_channel_new(const char *target, const rpc_tls *tls, mt_error **err);
void rpc_channel_free(rpc_channel *ch);
/* rpc_channel_new with a connection of its own, which rpc_channel_free closes at once (a channel
 * sharing its connection leaves it open). For bulk transfers: gRPC keeps spare read buffers on a
 * connection after a large message (up to about its size, its TCP read estimate) for as long as
 * the connection lives, so a relay of large values closes its connection when idle to give them
 * back. Its initial stream window is RPC_BULK_WINDOW. */
rpc_channel *rpc_channel_new_own(const char *target, const rpc_tls *tls, mt_error **err);
/* The initial HTTP/2 stream window of an own channel (what the server may send before it is read):
 * 4 MiB instead of 64 KiB, so a fresh connection takes a large message at full speed. */
#define RPC_BULK_WINDOW (4 << 20)

/* Unary call. On return *st holds the outcome; *resp (owned by the caller) is filled when
 * st->code == RPC_OK. Returns 0 if the call completed with RPC_OK, -1 otherwise. */
int rpc_unary(rpc_channel *ch, const char *method, const rpc_metadata *md, size_t nmd,
              const void *req, size_t req_len, int64_t deadline_ms, rpc_bytes *resp,
              rpc_status *st);

/* Client-streaming call: start, send messages one at a time (each send completes before the
 * next starts), then finish to half-close and get the single response. If a send fails the
 * stream is broken: finish reports the status. Free with rpc_cstream_free (also cancels an
 * unfinished call). */
typedef struct rpc_cstream rpc_cstream;
rpc_cstream *rpc_cstream_start(rpc_channel *ch, const char *method, const rpc_metadata *md,
                               size_t nmd, int64_t deadline_ms, rpc_status *st);
int rpc_cstream_send(rpc_cstream *s, const void *msg, size_t len);
/* The same without a copy: takes buf (malloc'd, freed once gRPC is done with it, also on
 * failure) and sends buf[off..off+len). */
int rpc_cstream_send_owned(rpc_cstream *s, void *buf, size_t off, size_t len);
/* Send head[0..hlen) (copied) followed by m's bytes from offset `from` (not copied). Takes m
 * (freed once gRPC is done with its buffers, also on failure). */
int rpc_cstream_send_msg(rpc_cstream *s, const void *head, size_t hlen, rpc_msg *m, size_t from);
int rpc_cstream_finish(rpc_cstream *s, rpc_bytes *resp, rpc_status *st);
void rpc_cstream_free(rpc_cstream *s);

/* Server-streaming call: start with the request, then read messages until next returns 0 (end:
 * *st holds the final status) or -1 (failure: *st says why). Free with rpc_sstream_free (cancels
 * if unfinished). */
typedef struct rpc_sstream rpc_sstream;
rpc_sstream *rpc_sstream_start(rpc_channel *ch, const char *method, const rpc_metadata *md,
                               size_t nmd, const void *req, size_t req_len, int64_t deadline_ms,
                               rpc_status *st);
/* Returns 1 with *msg filled (owned by the caller), 0 at the end of the stream, -1 on error. */
int rpc_sstream_next(rpc_sstream *s, rpc_bytes *msg, rpc_status *st);
/* The same, the message left in gRPC's buffers (*msg owned by the caller). */
int rpc_sstream_next_msg(rpc_sstream *s, rpc_msg **msg, rpc_status *st);
void rpc_sstream_free(rpc_sstream *s);

/* Cancel a call in progress from another thread (the blocked operation returns with
 * RPC_CANCELLED). Safe to call at any time before the free. */
void rpc_cstream_cancel(rpc_cstream *s);
void rpc_sstream_cancel(rpc_sstream *s);

/* ---- server ---------------------------------------------------------------------------- */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* Called on a server thread for every incoming call. The handler must end the call with
 * rpc_call_finish (if it returns without finishing, the call ends with INTERNAL). */
typedef void (*rpc_handler)(void *ctx, rpc_call *call);

typedef struct rpc_server_tls {
    const char *cert_pem;      /* server certificate chain */
    const char *key_pem;       /* its key */
    const char *client_ca_pem; /* if set, clients must present a certificate signed by it */
} rpc_server_tls;

/* Bind `addr` ("127.0.0.1:0" binds a free port; *bound_port receives the port) and start
 * serving with up to max_calls calls handled at once (further calls wait). tls NULL =
 * plaintext. Unknown methods reach the handler too (it answers UNIMPLEMENTED). */
rpc_server *rpc_server_start(const char *addr, const rpc_server_tls *tls, int max_calls,
                             rpc_handler handler, void *ctx, int *bound_port, mt_error **err);
/* Options of a server that receives large messages (the node's light service).
 * A server never closes a client's idle connection: a close (GOAWAY) races the client's next
 * call, and a call whose message is larger than gRPC's retry buffer (256 KiB) cannot be tried
 * again transparently, so it would fail with UNAVAILABLE "GOAWAY received". */
typedef struct rpc_server_opts {
    /* > 0: the HTTP/2 stream window (bytes) offered to clients instead of 64 KiB, fixed (BDP
     * probing, which grows it, off), so a fresh connection moves a large message at full speed
     * at once; also what a client may send on a stream before the handler reads it. Fixed
     * because gRPC keeps read buffers of its estimate of the next read (up to twice the largest
     * recent one, which the window bounds) on every open connection, allocated while it waits
     * for data: with a growing window an idle connection kept 5-10 MiB after large messages. */
    int window_bytes;
} rpc_server_opts;
rpc_server *rpc_server_start_opts(const char *addr, const rpc_server_tls *tls, int max_calls,
                                  const rpc_server_opts *opts, rpc_handler handler, void *ctx,
                                  int *bound_port, mt_error **err);
/* Stop accepting, cancel calls in progress after grace_ms, wait for handlers to return, free. */
void rpc_server_stop(rpc_server *srv, int64_t grace_ms);

/* The call's full method path, e.g. "/node.light_service.Local/GetBinaryData". Borrowed. */
const char *rpc_call_method(const rpc_call *call);
/* Value of a request metadata key, or NULL. Borrowed, valid until finish. */
const char *rpc_call_metadata(const rpc_call *call, const char *key);
/* Peer address ("ipv4:127.0.0.1:53412"). Borrowed. */
const char *rpc_call_peer(const rpc_call *call);
/* Receive the next request message: 1 with *msg filled (owned by the caller), 0 when the
 * client half-closed (no more messages), -1 if the call was cancelled/broken. */
int rpc_call_recv(rpc_call *call, rpc_bytes *msg);
/* The same, the message left in gRPC's buffers (*msg owned by the caller). */
int rpc_call_recv_msg(rpc_call *call, rpc_msg **msg);
/* Send one response message (server-streaming, or the single unary response). Blocks until
 * gRPC has taken it (so memory stays bounded). Returns 0, or -1 if the call is broken. */
int rpc_call_send(rpc_call *call, const void *msg, size_t len);
/* The same without a copy: takes buf (malloc'd, freed once gRPC is done with it, also on
 * failure) and sends buf[off..off+len). */
int rpc_call_send_owned(rpc_call *call, void *buf, size_t off, size_t len);
/* Send head[0..hlen) (copied) followed by m's bytes from `from` (not copied); takes m. */
int rpc_call_send_msg(rpc_call *call, const void *head, size_t hlen, rpc_msg *m, size_t from);
/* End the call with a status (message may be NULL). Sends initial metadata if nothing was sent
 * yet. Returns 0 or -1. */
int rpc_call_finish(rpc_call *call, int code, const char *message);
/* True once the client cancelled or the deadline passed. */
bool rpc_call_cancelled(const rpc_call *call);

/* A limit on how long one step of the call may wait without progress: from now on, a receive
 * that gets no message, or a send or finish that gRPC does not take, within stall_ms (> 0; 0 =
 * no limit, the default) ends the call. It is then cancelled with DEADLINE_EXCEEDED and `why`
 * (copied; NULL = a generic sentence) as the status the client sees; the receive or send
 * returns -1, rpc_call_stalled() becomes true, and the call counts as finished (a later
 * rpc_call_finish returns -1 and sends nothing). The limit is per step, not for the whole
 * call: a stream that keeps bringing messages runs as long as it likes, and one message of
 * hundreds of MiB must arrive whole within the limit (it is one step). */
void rpc_call_set_stall_limit(rpc_call *call, int64_t stall_ms, const char *why);
/* True once the stall limit ended the call. */
bool rpc_call_stalled(const rpc_call *call);

#endif
