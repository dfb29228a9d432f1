/* test_rpc_stall.c - the stall limit of server calls (rpc_call_set_stall_limit): a client
 * stream that goes quiet is ended with DEADLINE_EXCEEDED and the status message the handler
 * chose; a stream that keeps sending lives longer than the limit; without a limit a handler
 * waits as before; a client that stops reading a server stream ends the handler's sends too.
 * C client against C server in-process on 127.0.0.1; every wait is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "mem.h"
#include "rpc.h"

#define WHY       "No message arrived within the stall limit: the server ended the call."
#define FLOOD_MSG (1u << 20)
#define FLOOD_MAX 256 /* messages: far more than any flow-control window holds */

typedef struct hctx {
    atomic_int done;      /* handlers that returned */
    atomic_int recv_rc;   /* last rpc_call_recv result of Collect */
    atomic_int count;     /* messages Collect received */
    atomic_int stalled;   /* rpc_call_stalled at the end */
    atomic_int finish_rc; /* rpc_call_finish after the stall */
    atomic_int sent;      /* messages Flood sent */
} hctx;

typedef struct fixture {
    hctx h;
    rpc_server *srv;
    int port;
    rpc_channel *ch;
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

static void reset(hctx *h)
{
    atomic_store(&h->done, 0);
    atomic_store(&h->recv_rc, 99);
    atomic_store(&h->count, 0);
    atomic_store(&h->stalled, -1);
    atomic_store(&h->finish_rc, 99);
    atomic_store(&h->sent, 0);
}

/* ---- the test service ------------------------------------------------------------------- */

static void h_collect(rpc_call *call, hctx *h)
{
    int r = 0;
    for (int i = 0; i < 1000; i++) {
        rpc_bytes m = {0};
        r = rpc_call_recv(call, &m);
        rpc_bytes_free(&m);
        if (r <= 0)
            break;
        atomic_fetch_add(&h->count, 1);
    }
    atomic_store(&h->recv_rc, r);
    atomic_store(&h->stalled, rpc_call_stalled(call));
    char out[32];
    snprintf(out, sizeof(out), "count=%d", atomic_load(&h->count));
    if (r == 0 && rpc_call_send(call, out, strlen(out)) == 0)
        atomic_store(&h->finish_rc, rpc_call_finish(call, RPC_OK, NULL));
    else
        atomic_store(&h->finish_rc, rpc_call_finish(call, RPC_INTERNAL, "should not be sent"));
}

static void h_flood(rpc_call *call, hctx *h)
{
    rpc_bytes req = {0};
    if (rpc_call_recv(call, &req) == 1)
        rpc_bytes_free(&req);
    for (int i = 0; i < FLOOD_MAX; i++) {
        uint8_t *buf = xcalloc(1, FLOOD_MSG);
        if (rpc_call_send_owned(call, buf, 0, FLOOD_MSG) < 0)
            break;
        atomic_fetch_add(&h->sent, 1);
    }
    atomic_store(&h->stalled, rpc_call_stalled(call));
    atomic_store(&h->finish_rc, rpc_call_finish(call, RPC_OK, NULL));
}

static void handler(void *ctx, rpc_call *call)
{
    hctx *h = ctx;
    const char *ms = rpc_call_metadata(call, "x-stall-ms");
    if (ms)
        rpc_call_set_stall_limit(call, strtoll(ms, NULL, 10), WHY);
    const char *m = rpc_call_method(call);
    if (strcmp(m, "/t.Svc/Collect") == 0)
        h_collect(call, h);
    else if (strcmp(m, "/t.Svc/Flood") == 0)
        h_flood(call, h);
    else
        rpc_call_finish(call, RPC_UNIMPLEMENTED, "unknown method");
    atomic_fetch_add(&h->done, 1);
}

static int setup(void **state)
{
    rpc_init();
    fixture *fx = xcalloc(1, sizeof(*fx));
    reset(&fx->h);
    mt_error *e = NULL;
    fx->srv = rpc_server_start("127.0.0.1:0", NULL, 4, handler, &fx->h, &fx->port, &e);
    if (!fx->srv) {
        fprintf(stderr, "server: %s\n", mt_error_msg(e));
        mt_error_free(&e);
        return -1;
    }
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", fx->port);
    fx->ch = rpc_channel_new(target, NULL, &e);
    if (!fx->ch)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    rpc_channel_free(fx->ch);
    rpc_server_stop(fx->srv, 1000);
    free(fx);
    rpc_shutdown();
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* One message, then silence: the handler's receive gives up, the client gets the status. */
static void test_quiet_stream_is_ended(void **state)
{
    fixture *fx = *state;
    reset(&fx->h);
    rpc_metadata md[] = {{"x-stall-ms", "300"}};
    rpc_status st;
    int64_t t0 = now_ms();
    rpc_cstream *s = rpc_cstream_start(fx->ch, "/t.Svc/Collect", md, 1, 20000, &st);
    assert_non_null(s);
    assert_int_equal(rpc_cstream_send(s, "one", 3), 0);
    /* the client neither sends more nor half-closes: only the limit can end the handler */
    assert_true(wait_for(&fx->h.done, 1, 15000));
    assert_true(now_ms() - t0 >= 300);
    assert_int_equal(atomic_load(&fx->h.count), 1);
    assert_int_equal(atomic_load(&fx->h.recv_rc), -1);
    assert_int_equal(atomic_load(&fx->h.stalled), 1);
    assert_int_equal(atomic_load(&fx->h.finish_rc), -1); /* the cancel carried the status */
    rpc_bytes resp = {0};
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), -1);
    assert_int_equal(st.code, RPC_DEADLINE_EXCEEDED);
    assert_string_equal(st.message, WHY);
    rpc_bytes_free(&resp);
    rpc_cstream_free(s);
}

/* A stream that keeps sending lives longer than the limit: it is per step, not per call. */
static void test_steady_stream_outlives_the_limit(void **state)
{
    fixture *fx = *state;
    reset(&fx->h);
    rpc_metadata md[] = {{"x-stall-ms", "1000"}};
    rpc_status st;
    int64_t t0 = now_ms();
    rpc_cstream *s = rpc_cstream_start(fx->ch, "/t.Svc/Collect", md, 1, 30000, &st);
    assert_non_null(s);
    int sent = 0;
    while (sent < 40 && (sent < 15 || now_ms() - t0 < 1500)) {
        assert_int_equal(rpc_cstream_send(s, "tick", 4), 0);
        sent++;
        sleep_ms(100);
    }
    rpc_bytes resp = {0};
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), 0);
    assert_true(now_ms() - t0 > 1000);
    char want[32];
    snprintf(want, sizeof(want), "count=%d", sent);
    assert_int_equal(resp.len, strlen(want));
    assert_memory_equal(resp.data, want, resp.len);
    rpc_bytes_free(&resp);
    rpc_cstream_free(s);
    assert_true(wait_for(&fx->h.done, 1, 5000));
    assert_int_equal(atomic_load(&fx->h.stalled), 0);
    assert_int_equal(atomic_load(&fx->h.finish_rc), 0);
}

/* No limit (the default): a pause of any length is fine. */
static void test_no_limit_waits(void **state)
{
    fixture *fx = *state;
    reset(&fx->h);
    rpc_status st;
    rpc_cstream *s = rpc_cstream_start(fx->ch, "/t.Svc/Collect", NULL, 0, 20000, &st);
    assert_non_null(s);
    assert_int_equal(rpc_cstream_send(s, "a", 1), 0);
    sleep_ms(700);
    assert_int_equal(rpc_cstream_send(s, "b", 1), 0);
    rpc_bytes resp = {0};
    assert_int_equal(rpc_cstream_finish(s, &resp, &st), 0);
    assert_int_equal(resp.len, strlen("count=2"));
    assert_memory_equal(resp.data, "count=2", resp.len);
    rpc_bytes_free(&resp);
    rpc_cstream_free(s);
    assert_true(wait_for(&fx->h.done, 1, 5000));
    assert_int_equal(atomic_load(&fx->h.stalled), 0);
}

/* A client that stops reading a server stream: the handler's send gives up too. */
static void test_reader_that_stops_reading(void **state)
{
    fixture *fx = *state;
    reset(&fx->h);
    rpc_metadata md[] = {{"x-stall-ms", "500"}};
    rpc_status st;
    rpc_sstream *s = rpc_sstream_start(fx->ch, "/t.Svc/Flood", md, 1, "go", 2, 60000, &st);
    assert_non_null(s);
    rpc_bytes first = {0};
    assert_int_equal(rpc_sstream_next(s, &first, &st), 1); /* the stream works... */
    rpc_bytes_free(&first);
    /* ...and is then not read any more */
    assert_true(wait_for(&fx->h.done, 1, 30000));
    assert_int_equal(atomic_load(&fx->h.stalled), 1);
    assert_true(atomic_load(&fx->h.sent) < FLOOD_MAX);
    assert_int_equal(atomic_load(&fx->h.finish_rc), -1);
    rpc_sstream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_quiet_stream_is_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steady_stream_outlives_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_limit_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_that_stops_reading, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
