/* test_rpc.c - the gRPC layer: C client against C server in-process on 127.0.0.1 (unary,
 * metadata, status codes, streaming both ways, 64 MiB messages, deadlines, cancellation,
 * concurrency, server stop, TLS and mutual TLS). Every wait is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "mem.h"
#include "rpc.h"

#define SRV_MAX_CALLS 4
#define BIG_LEN       (64u << 20)

/* What the handler saw, for the tests to check. */
typedef struct hctx {
    atomic_int inflight, max_inflight;
    atomic_int sleep_cancel_at_start; /* rpc_call_cancelled at handler start (-1: not run) */
    atomic_int sleep_cancel_after;    /* rpc_call_cancelled after the deadline passed */
    atomic_int sleep_send_rc;         /* send after the deadline */
    atomic_int sleep_done;
    atomic_int hang_saw_cancel;
    atomic_int hang_done;
    atomic_int block_entered;
    atomic_int block_recv_rc;
    atomic_int block_done;
    atomic_int sum_aborted; /* Sum handlers whose stream broke */
} hctx;

typedef struct fixture {
    hctx h;
    rpc_server *srv;
    int port;
    char target[64];
    rpc_channel *ch;
    char certdir[64];
} fixture;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until *v == want, at most timeout_ms. */
static bool wait_for(atomic_int *v, int want, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (atomic_load(v) != want) {
        if (now_ms() > end)
            return false;
        sleep_ms(5);
    }
    return true;
}

/* ---- the test service ------------------------------------------------------------------- */

static void h_echo(rpc_call *call)
{
    rpc_bytes req;
    if (rpc_call_recv(call, &req) != 1) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "no request");
        return;
    }
    const char *auth = rpc_call_metadata(call, "authorization");
    if (auth) {
        char *out = xasprintf("%s|%.*s", auth, (int)req.len, (const char *)req.data);
        rpc_call_send(call, out, strlen(out));
        free(out);
    } else {
        rpc_call_send(call, req.data, req.len);
    }
    rpc_bytes_free(&req);
    rpc_call_finish(call, RPC_OK, NULL);
}

static void h_sum(rpc_call *call, hctx *h)
{
    size_t count = 0, sum = 0;
    for (int i = 0; i < 100000; i++) {
        rpc_bytes m;
        int r = rpc_call_recv(call, &m);
        if (r < 0) {
            atomic_fetch_add(&h->sum_aborted, 1);
            return; /* broken: the layer ends the call */
        }
        if (r == 0)
            break;
        count++;
        sum += m.len;
        rpc_bytes_free(&m);
    }
    char out[64];
    snprintf(out, sizeof(out), "count=%zu sum=%zu", count, sum);
    rpc_call_send(call, out, strlen(out));
    rpc_call_finish(call, RPC_OK, NULL);
}

static void h_count(rpc_call *call, bool fail)
{
    rpc_bytes req;
    if (rpc_call_recv(call, &req) != 1) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "no request");
        return;
    }
    char num[16] = {0};
    memcpy(num, req.data, req.len < sizeof(num) - 1 ? req.len : sizeof(num) - 1);
    rpc_bytes_free(&req);
    int n = fail ? 3 : atoi(num);
    for (int i = 0; i < n; i++) {
        char item[32];
        snprintf(item, sizeof(item), "item-%d", i);
        if (rpc_call_send(call, item, strlen(item)) < 0)
            return;
    }
    if (fail)
        rpc_call_finish(call, RPC_UNAVAILABLE, "backend gone");
    else
        rpc_call_finish(call, RPC_OK, NULL);
}

static void handler(void *ctx, rpc_call *call)
{
    hctx *h = ctx;
    const char *m = rpc_call_method(call);
    if (strcmp(m, "/test.Svc/Echo") == 0) {
        h_echo(call);
    } else if (strcmp(m, "/test.Svc/Peer") == 0) {
        const char *peer = rpc_call_peer(call);
        rpc_call_send(call, peer, strlen(peer));
        rpc_call_finish(call, RPC_OK, NULL);
    } else if (strcmp(m, "/test.Svc/Slow") == 0) {
        int now = atomic_fetch_add(&h->inflight, 1) + 1;
        int max = atomic_load(&h->max_inflight);
        while (now > max && !atomic_compare_exchange_weak(&h->max_inflight, &max, now))
            ;
        sleep_ms(2);
        h_echo(call);
        atomic_fetch_sub(&h->inflight, 1);
    } else if (strcmp(m, "/test.Svc/Relay") == 0) {
        /* the request back without its first 3 bytes, after "HD", from gRPC's buffers */
        rpc_msg *msg = NULL;
        if (rpc_call_recv_msg(call, &msg) != 1 || rpc_msg_len(msg) < 3) {
            rpc_msg_free(msg);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "no request");
            return;
        }
        rpc_call_send_msg(call, "HD", 2, msg, 3);
        rpc_call_finish(call, RPC_OK, NULL);
    } else if (strcmp(m, "/test.Svc/ServerCancels") == 0) {
        rpc_call_finish(call, RPC_CANCELLED, "Server shutting down");
    } else if (strcmp(m, "/test.Svc/Fail") == 0) {
        rpc_call_finish(call, RPC_UNAUTHENTICATED, "bad token");
    } else if (strcmp(m, "/test.Svc/LongStatus") == 0) {
        char msg[2000];
        memset(msg, 'L', sizeof(msg) - 1);
        msg[sizeof(msg) - 1] = '\0';
        rpc_call_finish(call, RPC_ABORTED, msg);
    } else if (strcmp(m, "/test.Svc/NoFinish") == 0) {
        rpc_bytes req;
        if (rpc_call_recv(call, &req) == 1)
            rpc_bytes_free(&req);
    } else if (strcmp(m, "/test.Svc/Sum") == 0) {
        h_sum(call, h);
    } else if (strcmp(m, "/test.Svc/Count") == 0) {
        h_count(call, false);
    } else if (strcmp(m, "/test.Svc/CountFail") == 0) {
        h_count(call, true);
    } else if (strcmp(m, "/test.Svc/Sleep") == 0) {
        atomic_store(&h->sleep_cancel_at_start, rpc_call_cancelled(call));
        sleep_ms(500);
        atomic_store(&h->sleep_cancel_after, rpc_call_cancelled(call));
        atomic_store(&h->sleep_send_rc, rpc_call_send(call, "late", 4));
        rpc_call_finish(call, RPC_OK, NULL);
        atomic_store(&h->sleep_done, 1);
    } else if (strcmp(m, "/test.Svc/Hang") == 0) {
        int saw = 0;
        for (int i = 0; i < 500 && !saw; i++) {
            saw = rpc_call_cancelled(call);
            if (!saw)
                sleep_ms(10);
        }
        atomic_store(&h->hang_saw_cancel, saw);
        rpc_call_finish(call, RPC_DEADLINE_EXCEEDED, "hang handler timed out");
        atomic_store(&h->hang_done, 1);
    } else if (strcmp(m, "/test.Svc/Block") == 0) {
        rpc_bytes first;
        if (rpc_call_recv(call, &first) == 1)
            rpc_bytes_free(&first);
        atomic_store(&h->block_entered, 1);
        rpc_bytes more = {0};
        int r = rpc_call_recv(call, &more);
        rpc_bytes_free(&more);
        atomic_store(&h->block_recv_rc, r);
        rpc_call_finish(call, RPC_OK, NULL);
        atomic_store(&h->block_done, 1);
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg), "unknown method %s", m);
        rpc_call_finish(call, RPC_UNIMPLEMENTED, msg);
    }
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    rpc_init();
    fixture *fx = xcalloc(1, sizeof(*fx));
    atomic_store(&fx->h.sleep_cancel_at_start, -1);
    atomic_store(&fx->h.sleep_cancel_after, -1);
    atomic_store(&fx->h.block_recv_rc, 99);
    mt_error *e = NULL;
    fx->srv = rpc_server_start("127.0.0.1:0", NULL, SRV_MAX_CALLS, handler, &fx->h, &fx->port, &e);
    if (!fx->srv) {
        fprintf(stderr, "server: %s\n", mt_error_msg(e));
        mt_error_free(&e);
        return -1;
    }
    snprintf(fx->target, sizeof(fx->target), "127.0.0.1:%d", fx->port);
    fx->ch = rpc_channel_new(fx->target, NULL, &e);
    if (!fx->ch)
        return -1;
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *fx = *state;
    rpc_channel_free(fx->ch);
    rpc_server_stop(fx->srv, 1000);
    if (fx->certdir[0]) {
        char *cmd = xasprintf("rm -rf '%s'", fx->certdir);
        int r = system(cmd);
        free(cmd);
        (void)r;
    }
    free(fx);
    rpc_shutdown();
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_code_names(void **state)
{
    assert_string_equal(rpc_code_name(RPC_OK), "OK");
    assert_string_equal(rpc_code_name(RPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(rpc_code_name(RPC_UNAVAILABLE), "UNAVAILABLE");
    assert_string_equal(rpc_code_name(RPC_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(rpc_code_name(99), "UNKNOWN");
    assert_string_equal(rpc_code_name(-1), "UNKNOWN");
}

static void test_unary_echo_metadata(void **state)
{
    fixture *fx = *state;
    rpc_metadata md[] = {{"x-extra", "1"}, {"authorization", "Bearer abc123"}};
    rpc_bytes resp;
    rpc_status st;
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Echo", md, 2, "hello", 5, 5000, &resp, &st), 0);
    assert_int_equal(st.code, RPC_OK);
    assert_string_equal(st.message, "");
    assert_int_equal(resp.len, strlen("Bearer abc123|hello"));
    assert_memory_equal(resp.data, "Bearer abc123|hello", resp.len);
    rpc_bytes_free(&resp);
    assert_null(resp.data);

    /* no metadata: the body comes back as is */
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Echo", NULL, 0, "plain", 5, 5000, &resp, &st), 0);
    assert_int_equal(resp.len, 5);
    assert_memory_equal(resp.data, "plain", 5);
    rpc_bytes_free(&resp);

    /* an empty message is a message */
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Echo", NULL, 0, "", 0, 5000, &resp, &st), 0);
    assert_int_equal(resp.len, 0);
    assert_non_null(resp.data);
    rpc_bytes_free(&resp);

    /* the peer as the server sees it */
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Peer", NULL, 0, "", 0, 5000, &resp, &st), 0);
    char *peer = xstrndup((const char *)resp.data, resp.len);
    assert_true(strncmp(peer, "ipv4:127.0.0.1:", 15) == 0);
    free(peer);
    rpc_bytes_free(&resp);
}

static void test_status_codes(void **state)
{
    fixture *fx = *state;
    rpc_bytes resp = {(uint8_t *)"junk", 4};
    rpc_status st;
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Fail", NULL, 0, "x", 1, 5000, &resp, &st), -1);
    assert_int_equal(st.code, 16);
    assert_string_equal(st.message, "bad token");
    assert_null(resp.data);
    assert_int_equal(resp.len, 0);

    /* a handler that returns without finishing ends the call with INTERNAL */
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/NoFinish", NULL, 0, "x", 1, 5000, &resp, &st),
                     -1);
    assert_int_equal(st.code, RPC_INTERNAL);
    assert_non_null(strstr(st.message, "did not finish"));

    /* a long status message arrives truncated and NUL-terminated */
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/LongStatus", NULL, 0, "x", 1, 5000, &resp, &st),
                     -1);
    assert_int_equal(st.code, RPC_ABORTED);
    assert_int_equal(strlen(st.message), sizeof(st.message) - 1);
    assert_true(st.message[0] == 'L' && st.message[sizeof(st.message) - 2] == 'L');

    /* metadata gRPC refuses (a key with a space) fails the call, not the process */
    rpc_metadata bad[] = {{"bad key", "v"}};
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Echo", bad, 1, "x", 1, 5000, &resp, &st), -1);
    assert_int_equal(st.code, RPC_INTERNAL);
}

/* A server's CANCELLED (a stopping server cancels calls) is the server going away for the
 * client: UNAVAILABLE, which callers retry. Its own cancel stays CANCELLED
 * (test_cancel_from_other_thread). */
static void test_a_server_cancel_reads_as_unavailable(void **state)
{
    fixture *fx = *state;
    rpc_bytes resp = {0};
    rpc_status st;
    assert_int_equal(
        rpc_unary(fx->ch, "/test.Svc/ServerCancels", NULL, 0, "x", 1, 5000, &resp, &st), -1);
    assert_int_equal(st.code, RPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "the server cancelled the call"));
    assert_non_null(strstr(st.message, "Server shutting down"));

    rpc_sstream *s =
        rpc_sstream_start(fx->ch, "/test.Svc/ServerCancels", NULL, 0, "x", 1, 5000, &st);
    assert_non_null(s);
    rpc_bytes m;
    assert_int_equal(rpc_sstream_next(s, &m, &st), -1);
    assert_int_equal(st.code, RPC_UNAVAILABLE);
    rpc_sstream_free(s);

    rpc_cstream *c = rpc_cstream_start(fx->ch, "/test.Svc/ServerCancels", NULL, 0, 5000, &st);
    assert_non_null(c);
    rpc_cstream_send(c, "x", 1);
    assert_int_equal(rpc_cstream_finish(c, &resp, &st), -1);
    assert_int_equal(st.code, RPC_UNAVAILABLE);
    rpc_cstream_free(c);
}

static void test_unknown_method(void **state)
{
    fixture *fx = *state;
    rpc_bytes resp;
    rpc_status st;
    assert_int_equal(rpc_unary(fx->ch, "/no.Such/Method", NULL, 0, "x", 1, 5000, &resp, &st), -1);
    assert_int_equal(st.code, RPC_UNIMPLEMENTED);
    assert_string_equal(st.message, "unknown method /no.Such/Method");
}

static void test_client_streaming(void **state)
{
    fixture *fx = *state;
    rpc_status st;
    rpc_cstream *s = rpc_cstream_start(fx->ch, "/test.Svc/Sum", NULL, 0, 10000, &st);
    assert_non_null(s);
    assert_int_equal(st.code, RPC_OK);
    uint8_t buf[1024];
    memset(buf, 'a', sizeof(buf));
    size_t want = 0;
    for (int i = 0; i < 100; i++) {
        size_t len = (size_t)(i * 10 + 1);
        assert_int_equal(rpc_cstream_send(s, buf, len), 0);
        want += len;
    }
    rpc_bytes resp;
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), 0);
    assert_int_equal(st.code, RPC_OK);
    char expect[64];
    snprintf(expect, sizeof(expect), "count=100 sum=%zu", want);
    assert_int_equal(resp.len, strlen(expect));
    assert_memory_equal(resp.data, expect, resp.len);
    rpc_bytes_free(&resp);
    /* finished: no more sends, no second finish */
    assert_int_equal(rpc_cstream_send(s, "x", 1), -1);
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), -1);
    rpc_cstream_free(s);

    /* zero messages */
    s = rpc_cstream_start(fx->ch, "/test.Svc/Sum", NULL, 0, 10000, &st);
    assert_non_null(s);
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), 0);
    assert_int_equal(resp.len, strlen("count=0 sum=0"));
    assert_memory_equal(resp.data, "count=0 sum=0", resp.len);
    rpc_bytes_free(&resp);
    rpc_cstream_free(s);

    /* the server answers early with an error: sends fail (bounded), finish tells why */
    s = rpc_cstream_start(fx->ch, "/test.Svc/Fail", NULL, 0, 10000, &st);
    assert_non_null(s);
    int sent = 0;
    int64_t t0 = now_ms();
    while (sent < 100000 && now_ms() - t0 < 5000 && rpc_cstream_send(s, buf, sizeof(buf)) == 0)
        sent++;
    assert_true(sent < 100000);
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), -1);
    assert_int_equal(st.code, RPC_UNAUTHENTICATED);
    assert_string_equal(st.message, "bad token");
    rpc_cstream_free(s);

    /* freed unfinished: cancelled, and the server sees a broken stream, not an end */
    assert_int_equal(atomic_load(&fx->h.sum_aborted), 0);
    s = rpc_cstream_start(fx->ch, "/test.Svc/Sum", NULL, 0, 10000, &st);
    assert_non_null(s);
    assert_int_equal(rpc_cstream_send(s, "abc", 3), 0);
    rpc_cstream_free(s);
    assert_true(wait_for(&fx->h.sum_aborted, 1, 5000));
}

static void test_server_streaming(void **state)
{
    fixture *fx = *state;
    rpc_status st;
    rpc_sstream *s = rpc_sstream_start(fx->ch, "/test.Svc/Count", NULL, 0, "25", 2, 10000, &st);
    assert_non_null(s);
    int got = 0;
    rpc_bytes m;
    int r;
    while ((r = rpc_sstream_next(s, &m, &st)) == 1 && got < 1000) {
        char expect[32];
        snprintf(expect, sizeof(expect), "item-%d", got);
        assert_int_equal(m.len, strlen(expect));
        assert_memory_equal(m.data, expect, m.len);
        rpc_bytes_free(&m);
        got++;
    }
    assert_int_equal(r, 0);
    assert_int_equal(got, 25);
    assert_int_equal(st.code, RPC_OK);
    assert_int_equal(rpc_sstream_next(s, &m, &st), 0); /* stays at the end */
    rpc_sstream_free(s);

    /* fails after 3 messages */
    s = rpc_sstream_start(fx->ch, "/test.Svc/CountFail", NULL, 0, "0", 1, 10000, &st);
    assert_non_null(s);
    got = 0;
    while ((r = rpc_sstream_next(s, &m, &st)) == 1 && got < 1000) {
        rpc_bytes_free(&m);
        got++;
    }
    assert_int_equal(got, 3);
    assert_int_equal(r, -1);
    assert_int_equal(st.code, 14);
    assert_string_equal(st.message, "backend gone");
    assert_int_equal(rpc_sstream_next(s, &m, &st), -1);
    assert_int_equal(st.code, 14);
    rpc_sstream_free(s);

    /* freed in the middle: cancelled, no leak */
    s = rpc_sstream_start(fx->ch, "/test.Svc/Count", NULL, 0, "1000", 4, 10000, &st);
    assert_non_null(s);
    assert_int_equal(rpc_sstream_next(s, &m, &st), 1);
    rpc_bytes_free(&m);
    rpc_sstream_free(s);
}

/* rpc_msg: messages relayed from gRPC's buffers (server and client side), over an own channel. */
static void test_relay_without_copy(void **state)
{
    fixture *fx = *state;
    rpc_channel *ch = rpc_channel_new_own(fx->target, NULL, NULL);
    assert_non_null(ch);
    size_t n = 4u << 20; /* many slices */
    uint8_t *big = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    rpc_bytes resp;
    rpc_status st;
    assert_int_equal(rpc_unary(ch, "/test.Svc/Relay", NULL, 0, big, n, 60000, &resp, &st), 0);
    assert_int_equal(resp.len, n - 1);
    assert_memory_equal(resp.data, "HD", 2);
    assert_memory_equal(resp.data + 2, big + 3, n - 3);
    rpc_bytes_free(&resp);
    free(big);

    /* a server stream's messages, kept as rpc_msg, sent on in a client stream */
    rpc_sstream *ss = rpc_sstream_start(ch, "/test.Svc/Count", NULL, 0, "2", 1, 10000, &st);
    assert_non_null(ss);
    rpc_msg *m = NULL;
    assert_int_equal(rpc_sstream_next_msg(ss, &m, &st), 1);
    assert_int_equal(rpc_msg_len(m), 6);
    char part[8] = {0};
    assert_int_equal(rpc_msg_copy(m, 2, part, sizeof(part)), 4);
    assert_string_equal(part, "em-0");
    rpc_bytes b;
    rpc_msg_to_bytes(m, &b);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "item-0", 6);
    rpc_bytes_free(&b);
    rpc_cstream *cs = rpc_cstream_start(ch, "/test.Svc/Sum", NULL, 0, 10000, &st);
    assert_non_null(cs);
    assert_int_equal(rpc_cstream_send_msg(cs, "xyz", 3, m, 1), 0); /* 3 + 5 bytes */
    assert_int_equal(rpc_sstream_next_msg(ss, &m, &st), 1);
    assert_int_equal(rpc_cstream_send_msg(cs, NULL, 0, m, 0), 0); /* 6 bytes */
    assert_int_equal(rpc_sstream_next_msg(ss, &m, &st), 0);
    assert_null(m);
    rpc_sstream_free(ss);
    assert_int_equal(rpc_cstream_finish(cs, &resp, &st), 0);
    assert_int_equal(resp.len, strlen("count=2 sum=14"));
    assert_memory_equal(resp.data, "count=2 sum=14", resp.len);
    rpc_bytes_free(&resp);
    rpc_cstream_free(cs);
    rpc_channel_free(ch);
}

static void test_large_message(void **state)
{
    fixture *fx = *state;
    uint8_t *big = xmalloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    rpc_bytes resp;
    rpc_status st;
    int64_t t0 = now_ms();
    int r = rpc_unary(fx->ch, "/test.Svc/Echo", NULL, 0, big, BIG_LEN, 120000, &resp, &st);
    if (r != 0)
        fprintf(stderr, "64 MiB echo: %s %s\n", rpc_code_name(st.code), st.message);
    assert_int_equal(r, 0);
    assert_int_equal(resp.len, BIG_LEN);
    assert_memory_equal(resp.data, big, BIG_LEN);
    fprintf(stderr, "64 MiB echo both ways: %lld ms\n", (long long)(now_ms() - t0));
    rpc_bytes_free(&resp);
    free(big);
}

static void test_deadline_exceeded(void **state)
{
    fixture *fx = *state;
    hctx *h = &fx->h;
    atomic_store(&h->sleep_done, 0);
    rpc_bytes resp;
    rpc_status st;
    int64_t t0 = now_ms();
    assert_int_equal(rpc_unary(fx->ch, "/test.Svc/Sleep", NULL, 0, "x", 1, 200, &resp, &st), -1);
    int64_t took = now_ms() - t0;
    assert_int_equal(st.code, RPC_DEADLINE_EXCEEDED);
    assert_true(took >= 150 && took < 2000);
    /* the server side: not cancelled at first, cancelled after the deadline */
    assert_true(wait_for(&h->sleep_done, 1, 5000));
    assert_int_equal(atomic_load(&h->sleep_cancel_at_start), 0);
    assert_int_equal(atomic_load(&h->sleep_cancel_after), 1);
    assert_int_equal(atomic_load(&h->sleep_send_rc), -1);
}

static void test_connection_refused(void **state)
{
    /* a port nobody listens on: bind one, note it, close it */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(sa.sin_port));
    mt_error *e = NULL;
    rpc_channel *ch = rpc_channel_new(target, NULL, &e);
    assert_non_null(ch);
    rpc_bytes resp;
    rpc_status st;
    int64_t t0 = now_ms();
    assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", NULL, 0, "x", 1, 5000, &resp, &st), -1);
    assert_int_equal(st.code, RPC_UNAVAILABLE);
    assert_true(now_ms() - t0 < 3000);
    /* streams too */
    rpc_sstream *s = rpc_sstream_start(ch, "/test.Svc/Count", NULL, 0, "1", 1, 5000, &st);
    assert_non_null(s);
    rpc_bytes m;
    assert_int_equal(rpc_sstream_next(s, &m, &st), -1);
    assert_int_equal(st.code, RPC_UNAVAILABLE);
    rpc_sstream_free(s);
    assert_true(now_ms() - t0 < 4000);
    rpc_channel_free(ch);
}

typedef struct client_arg {
    rpc_channel *ch;
    int id;
    int ok;
} client_arg;

static void *client_main(void *p)
{
    client_arg *a = p;
    for (int i = 0; i < 50; i++) {
        char req[32];
        snprintf(req, sizeof(req), "c%d-%d", a->id, i);
        rpc_bytes resp;
        rpc_status st;
        if (rpc_unary(a->ch, "/test.Svc/Slow", NULL, 0, req, strlen(req), 20000, &resp, &st) == 0 &&
            resp.len == strlen(req) && memcmp(resp.data, req, resp.len) == 0)
            a->ok++;
        rpc_bytes_free(&resp);
    }
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    fixture *fx = *state;
    pthread_t th[8];
    client_arg args[8];
    int64_t t0 = now_ms();
    for (int i = 0; i < 8; i++) {
        args[i] = (client_arg){.ch = fx->ch, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += args[i].ok;
    }
    fprintf(stderr, "8 clients x 50 calls: %lld ms, max %d handlers at once\n",
            (long long)(now_ms() - t0), atomic_load(&fx->h.max_inflight));
    assert_int_equal(total, 400);
    /* calls ran concurrently, never more than max_calls at once */
    assert_true(atomic_load(&fx->h.max_inflight) >= 2);
    assert_true(atomic_load(&fx->h.max_inflight) <= SRV_MAX_CALLS);
}

typedef struct canceller {
    rpc_sstream *ss;
    rpc_cstream *cs;
} canceller;

static void *cancel_main(void *p)
{
    canceller *c = p;
    sleep_ms(150);
    if (c->ss)
        rpc_sstream_cancel(c->ss);
    if (c->cs)
        rpc_cstream_cancel(c->cs);
    return NULL;
}

static void test_cancel_from_other_thread(void **state)
{
    fixture *fx = *state;
    hctx *h = &fx->h;
    rpc_status st;

    atomic_store(&h->hang_done, 0);
    atomic_store(&h->hang_saw_cancel, 0);
    canceller c = {0};
    c.ss = rpc_sstream_start(fx->ch, "/test.Svc/Hang", NULL, 0, "x", 1, 0, &st);
    assert_non_null(c.ss);
    pthread_t th;
    int64_t t0 = now_ms();
    assert_int_equal(pthread_create(&th, NULL, cancel_main, &c), 0);
    rpc_bytes m;
    assert_int_equal(rpc_sstream_next(c.ss, &m, &st), -1);
    int64_t took = now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(st.code, RPC_CANCELLED);
    assert_true(took >= 100 && took < 2000);
    rpc_sstream_free(c.ss);
    assert_true(wait_for(&h->hang_done, 1, 6000));
    assert_int_equal(atomic_load(&h->hang_saw_cancel), 1);

    /* a client stream blocked in finish */
    atomic_store(&h->hang_done, 0);
    atomic_store(&h->hang_saw_cancel, 0);
    c = (canceller){0};
    c.cs = rpc_cstream_start(fx->ch, "/test.Svc/Hang", NULL, 0, 0, &st);
    assert_non_null(c.cs);
    assert_int_equal(rpc_cstream_send(c.cs, "x", 1), 0);
    t0 = now_ms();
    assert_int_equal(pthread_create(&th, NULL, cancel_main, &c), 0);
    rpc_bytes resp;
    assert_int_equal(rpc_cstream_finish(c.cs, &resp, &st), -1);
    took = now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(st.code, RPC_CANCELLED);
    assert_true(took >= 100 && took < 2000);
    rpc_cstream_free(c.cs);
    assert_true(wait_for(&h->hang_done, 1, 6000));
    assert_int_equal(atomic_load(&h->hang_saw_cancel), 1);
}

static void test_server_stop_during_recv(void **state)
{
    hctx h = {0};
    atomic_store(&h.block_recv_rc, 99);
    int port = 0;
    mt_error *e = NULL;
    rpc_server *srv = rpc_server_start("127.0.0.1:0", NULL, 2, handler, &h, &port, &e);
    assert_non_null(srv);
    assert_true(port > 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    rpc_channel *ch = rpc_channel_new(target, NULL, &e);
    assert_non_null(ch);

    rpc_status st;
    rpc_cstream *s = rpc_cstream_start(ch, "/test.Svc/Block", NULL, 0, 20000, &st);
    assert_non_null(s);
    assert_int_equal(rpc_cstream_send(s, "first", 5), 0);
    assert_true(wait_for(&h.block_entered, 1, 5000));
    sleep_ms(50); /* the handler is now blocked in its second recv */
    int64_t t0 = now_ms();
    rpc_server_stop(srv, 200);
    int64_t took = now_ms() - t0;
    fprintf(stderr, "server stop with a call blocked in recv: %lld ms\n", (long long)took);
    assert_true(took >= 150 && took < 5000);
    assert_int_equal(atomic_load(&h.block_done), 1);
    assert_int_equal(atomic_load(&h.block_recv_rc), -1);
    rpc_bytes resp;
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), -1);
    assert_int_not_equal(st.code, RPC_OK);
    rpc_cstream_free(s);

    /* the server is gone: new calls fail fast */
    t0 = now_ms();
    assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", NULL, 0, "x", 1, 3000, &resp, &st), -1);
    assert_int_equal(st.code, RPC_UNAVAILABLE);
    rpc_channel_free(ch);
}

static void test_server_stop_idle(void **state)
{
    /* a connected but idle client does not hold the stop up */
    hctx h = {0};
    int port = 0;
    mt_error *e = NULL;
    rpc_server *srv = rpc_server_start("127.0.0.1:0", NULL, 2, handler, &h, &port, &e);
    assert_non_null(srv);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    rpc_channel *ch = rpc_channel_new(target, NULL, &e);
    rpc_bytes resp;
    rpc_status st;
    assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", NULL, 0, "x", 1, 5000, &resp, &st), 0);
    rpc_bytes_free(&resp);
    int64_t t0 = now_ms();
    rpc_server_stop(srv, 5000);
    int64_t took = now_ms() - t0;
    fprintf(stderr, "server stop with an idle connection: %lld ms\n", (long long)took);
    assert_true(took < 2000);
    rpc_channel_free(ch);
}

static void test_bad_arguments(void **state)
{
    mt_error *e = NULL;
    int port = 0;
    assert_null(rpc_server_start("127.0.0.1:0", NULL, 0, handler, NULL, &port, &e));
    assert_non_null(e);
    mt_error_free(&e);
    assert_null(rpc_server_start("unix:/nonexistent/dir/sock", NULL, 1, handler, NULL, &port, &e));
    assert_non_null(strstr(mt_error_msg(e), "unix:/nonexistent/dir/sock"));
    mt_error_free(&e);
    /* a port in use is an error, not a second listener sharing it */
    fixture *fx = *state;
    char busy[64];
    snprintf(busy, sizeof(busy), "127.0.0.1:%d", fx->port);
    assert_null(rpc_server_start(busy, NULL, 1, handler, NULL, &port, &e));
    assert_non_null(strstr(mt_error_msg(e), busy));
    mt_error_free(&e);
    rpc_server_tls bad_tls = {.cert_pem = "not a certificate", .key_pem = "not a key"};
    assert_null(rpc_server_start("127.0.0.1:0", &bad_tls, 1, handler, NULL, &port, &e));
    assert_non_null(e);
    mt_error_free(&e);
    assert_null(rpc_channel_new("", NULL, &e));
    assert_non_null(e);
    mt_error_free(&e);
    rpc_tls half = {.cert_pem = "x"};
    assert_null(rpc_channel_new("127.0.0.1:1", &half, &e));
    assert_non_null(e);
    mt_error_free(&e);
}

/* ---- TLS -------------------------------------------------------------------------------- */

static const char *make_certs(fixture *fx)
{
    if (fx->certdir[0])
        return fx->certdir;
    strcpy(fx->certdir, "/tmp/test_rpc.XXXXXX");
    assert_non_null(mkdtemp(fx->certdir));
    char *cmd = xasprintf(
        "set -e; cd '%s'; exec 2>openssl.log\n"
        "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
        "for ca in ca other; do\n"
        "  openssl req -x509 $ec -keyout $ca.key -out $ca.pem -days 2 -subj /CN=test-$ca"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign\n"
        "done\n"
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n'"
        " >server.ext\n"
        "printf 'extendedKeyUsage=clientAuth\\n' >client.ext\n"
        "for who in server client; do\n"
        "  openssl req $ec -keyout $who.key -out $who.csr -subj /CN=$who\n"
        "  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out $who.pem -days 2 -extfile $who.ext\n"
        "done\n",
        fx->certdir);
    int r = system(cmd);
    free(cmd);
    assert_int_equal(r, 0);
    return fx->certdir;
}

static char *read_pem(const char *dir, const char *name)
{
    char *path = xasprintf("%s/%s", dir, name);
    mt_error *e = NULL;
    char *text = fs_read_file(path, 1 << 20, NULL, &e);
    free(path);
    assert_non_null(text);
    return text;
}

/* A unary echo over a TLS channel; returns the status code. */
static int tls_echo(int port, const rpc_tls *tls)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    mt_error *e = NULL;
    rpc_channel *ch = rpc_channel_new(target, tls, &e);
    assert_non_null(ch);
    rpc_bytes resp;
    rpc_status st;
    int r = rpc_unary(ch, "/test.Svc/Echo", NULL, 0, "secret", 6, 5000, &resp, &st);
    if (r == 0) {
        assert_int_equal(resp.len, 6);
        assert_memory_equal(resp.data, "secret", 6);
    }
    rpc_bytes_free(&resp);
    rpc_channel_free(ch);
    return st.code;
}

static void test_tls_server_auth(void **state)
{
    fixture *fx = *state;
    const char *dir = make_certs(fx);
    char *ca = read_pem(dir, "ca.pem"), *other = read_pem(dir, "other.pem");
    char *cert = read_pem(dir, "server.pem"), *key = read_pem(dir, "server.key");
    hctx h = {0};
    rpc_server_tls stls = {.cert_pem = cert, .key_pem = key};
    int port = 0;
    mt_error *e = NULL;
    rpc_server *srv = rpc_server_start("127.0.0.1:0", &stls, 2, handler, &h, &port, &e);
    assert_non_null(srv);

    rpc_tls ok = {.ca_pem = ca, .server_name = "localhost"};
    assert_int_equal(tls_echo(port, &ok), RPC_OK);
    /* the name override is used: a name the certificate lacks fails */
    rpc_tls wrong_name = {.ca_pem = ca, .server_name = "not-the-server.example"};
    assert_int_equal(tls_echo(port, &wrong_name), RPC_UNAVAILABLE);
    /* a server certificate from another CA fails */
    rpc_tls wrong_ca = {.ca_pem = other, .server_name = "localhost"};
    assert_int_equal(tls_echo(port, &wrong_ca), RPC_UNAVAILABLE);
    /* plaintext against TLS fails */
    assert_int_equal(tls_echo(port, NULL), RPC_UNAVAILABLE);

    rpc_server_stop(srv, 1000);
    free(ca);
    free(other);
    free(cert);
    free(key);
}

static void test_tls_mutual(void **state)
{
    fixture *fx = *state;
    const char *dir = make_certs(fx);
    char *ca = read_pem(dir, "ca.pem");
    char *cert = read_pem(dir, "server.pem"), *key = read_pem(dir, "server.key");
    char *ccert = read_pem(dir, "client.pem"), *ckey = read_pem(dir, "client.key");
    hctx h = {0};
    rpc_server_tls stls = {.cert_pem = cert, .key_pem = key, .client_ca_pem = ca};
    int port = 0;
    mt_error *e = NULL;
    rpc_server *srv = rpc_server_start("127.0.0.1:0", &stls, 2, handler, &h, &port, &e);
    assert_non_null(srv);

    rpc_tls anon = {.ca_pem = ca, .server_name = "localhost"};
    assert_int_equal(tls_echo(port, &anon), RPC_UNAVAILABLE);
    rpc_tls with_cert = {
        .ca_pem = ca, .cert_pem = ccert, .key_pem = ckey, .server_name = "localhost"};
    assert_int_equal(tls_echo(port, &with_cert), RPC_OK);
    /* the server certificate is not a client certificate */
    rpc_tls server_as_client = {
        .ca_pem = ca, .cert_pem = cert, .key_pem = key, .server_name = "localhost"};
    assert_int_equal(tls_echo(port, &server_as_client), RPC_UNAVAILABLE);

    rpc_server_stop(srv, 1000);
    free(ca);
    free(cert);
    free(key);
    free(ccert);
    free(ckey);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_unary_echo_metadata),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_unknown_method),
        cmocka_unit_test(test_a_server_cancel_reads_as_unavailable),
        cmocka_unit_test(test_client_streaming),
        cmocka_unit_test(test_server_streaming),
        cmocka_unit_test(test_large_message),
        cmocka_unit_test(test_relay_without_copy),
        cmocka_unit_test(test_deadline_exceeded),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_cancel_from_other_thread),
        cmocka_unit_test(test_server_stop_during_recv),
        cmocka_unit_test(test_server_stop_idle),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_tls_server_auth),
        cmocka_unit_test(test_tls_mutual),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
