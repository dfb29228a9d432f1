/* light-client.c - a task's calls to the node's light service, in C, timed: the benchmark's
 * client (bench/light.py), so the figures measure the node rather than a Python client.
 *
 * Usage:
 *   light-client binary HOST:PORT SWARM TASK NAME [RUNS]
 *       Local.GetBinaryData of dataset NAME, RUNS times (default 1); one line per run:
 *       "binary bytes=N messages=M seconds=S mbps=R" (MB/s, 10^6 bytes per second).
 *   light-client global HOST:PORT SWARM TASK TAG SIZE [RUNS]
 *       World.SetGlobal of a SIZE-byte value in one message (as the SDK sends it), then
 *       World.GetGlobal of it; checks the bytes that come back; one line per run:
 *       "global bytes=N set_ms=A get_ms=B total_ms=C".
 *   light-client manager-global HOST:PORT SWARM TOKEN TAG SIZE [RUNS]
 *       The same two calls made straight to a manager's node.node_service.Node service (what
 *       the node relays them as: GlobalUpdate / GlobalTag), with a node's TOKEN; the same
 *       output. The baseline the relay is measured against (bench/manager_global.py).
 * SWARM and TASK are the IDs in hex (as in SWARM_ID / TASK_ID). Exit 0 on success, 1 with a
 * message on stderr if a call fails or returns other bytes, 2 on a usage error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/results.pb-c.h"
#include "common/system.pb-c.h"
#include "id.h"
#include "mem.h"
#include "node/light_service.pb-c.h"
#include "rpc.h"

#define LOCAL "/node.light_service.Local/"
#define WORLD "/node.light_service.World/"
#define NODE  "/node.node_service.Node/"

/* Set by manager-global: the calls go to the manager's Node service with this token. */
static const char *manager_token;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: light-client binary HOST:PORT SWARM TASK NAME [RUNS]\n"
                    "       light-client global HOST:PORT SWARM TASK TAG SIZE [RUNS]\n"
                    "       light-client manager-global HOST:PORT SWARM TOKEN TAG SIZE [RUNS]\n");
    return 2;
}

static bool parse_count(const char *s, long long min, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return false;
    *out = v;
    return true;
}

/* Read the length-delimited field 1 of a message (Binary.content, GlobalValue.data): its
 * offset and length, or false if the message is something else. An empty message is an empty
 * value. */
static bool field1(const uint8_t *p, size_t len, size_t *off, size_t *vlen)
{
    if (len == 0) {
        *off = 0;
        *vlen = 0;
        return true;
    }
    if (p[0] != 0x0a)
        return false;
    uint64_t v = 0;
    size_t pos = 1;
    for (int shift = 0; shift < 64 && pos < len; shift += 7) {
        uint8_t b = p[pos++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (v != len - pos)
                return false;
            *off = pos;
            *vlen = (size_t)v;
            return true;
        }
    }
    return false;
}

/* Stream one dataset; returns 0 and fills the counts, or -1 after printing why. */
static int get_binary(rpc_channel *ch, const uint8_t *req, size_t req_len, size_t *bytes,
                      size_t *messages)
{
    rpc_status st = {0};
    rpc_sstream *s = rpc_sstream_start(ch, LOCAL "GetBinaryData", NULL, 0, req, req_len, 0, &st);
    if (!s) {
        fprintf(stderr, "light-client: GetBinaryData could not start: %s: %s\n",
                rpc_code_name(st.code), st.message);
        return -1;
    }
    *bytes = *messages = 0;
    int r;
    rpc_bytes msg = {0};
    while ((r = rpc_sstream_next(s, &msg, &st)) == 1) {
        size_t off, n;
        bool ok = field1(msg.data, msg.len, &off, &n);
        rpc_bytes_free(&msg);
        if (!ok) {
            fprintf(stderr, "light-client: GetBinaryData sent a message that is not a Binary.\n");
            rpc_sstream_free(s);
            return -1;
        }
        *bytes += n;
        (*messages)++;
    }
    rpc_sstream_free(s);
    if (r < 0) {
        fprintf(stderr, "light-client: GetBinaryData failed: %s: %s\n", rpc_code_name(st.code),
                st.message);
        return -1;
    }
    return 0;
}

static int cmd_binary(rpc_channel *ch, Common__System__PairId *swarm, Common__System__PairId *task,
                      const char *name, long long runs)
{
    Node__LightService__DataRequest dr = NODE__LIGHT_SERVICE__DATA_REQUEST__INIT;
    dr.swarm_id = swarm;
    dr.task_id = task;
    dr.name = (char *)name;
    size_t len = node__light_service__data_request__get_packed_size(&dr);
    cleanup_free uint8_t *req = xmalloc(len ? len : 1);
    node__light_service__data_request__pack(&dr, req);
    for (long long i = 0; i < runs; i++) {
        size_t bytes = 0, messages = 0;
        double t0 = now_s();
        if (get_binary(ch, req, len, &bytes, &messages) < 0)
            return 1;
        double dt = now_s() - t0;
        printf("binary bytes=%zu messages=%zu seconds=%.4f mbps=%.1f\n", bytes, messages, dt,
               (double)bytes / dt / 1e6);
        fflush(stdout);
    }
    return 0;
}

/* A value whose every 8-byte word differs (a misplaced chunk changes it). */
static void fill_value(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    for (; i < n; i++)
        p[i] = (uint8_t)i;
}

static int set_global(rpc_channel *ch, Common__System__PairId *swarm, Common__System__PairId *task,
                      const char *tag, const uint8_t *value, size_t n)
{
    Node__LightService__SetGlobalRequest m = NODE__LIGHT_SERVICE__SET_GLOBAL_REQUEST__INIT;
    m.swarm_id = swarm;
    m.task_id = task;
    m.tag = (char *)tag;
    m.data.data = (uint8_t *)value;
    m.data.len = n;
    Common__Results__GlobalUpdate g = COMMON__RESULTS__GLOBAL_UPDATE__INIT;
    g.swarm_id = swarm;
    g.tag = (char *)tag;
    g.data.data = (uint8_t *)value;
    g.data.len = n;
    const ProtobufCMessage *pm = manager_token ? &g.base : &m.base;
    size_t len = protobuf_c_message_get_packed_size(pm);
    cleanup_free uint8_t *buf = xmalloc(len ? len : 1);
    protobuf_c_message_pack(pm, buf);
    rpc_metadata md[] = {{"authorization", manager_token}};
    rpc_status st = {0};
    rpc_cstream *s = rpc_cstream_start(ch, manager_token ? NODE "SetGlobal" : WORLD "SetGlobal", md,
                                       manager_token ? 1 : 0, 0, &st);
    if (!s) {
        fprintf(stderr, "light-client: SetGlobal could not start: %s: %s\n", rpc_code_name(st.code),
                st.message);
        return -1;
    }
    rpc_cstream_send(s, buf, len); /* a failure shows in the status */
    rpc_bytes resp = {0};
    int r = rpc_cstream_finish(s, &resp, &st);
    rpc_bytes_free(&resp);
    rpc_cstream_free(s);
    if (r < 0) {
        fprintf(stderr, "light-client: SetGlobal failed: %s: %s\n", rpc_code_name(st.code),
                st.message);
        return -1;
    }
    return 0;
}

/* GetGlobal; checks that the messages put together are `value`. */
static int get_global(rpc_channel *ch, Common__System__PairId *swarm, Common__System__PairId *task,
                      const char *tag, const uint8_t *value, size_t n)
{
    Node__LightService__GetGlobalRequest q = NODE__LIGHT_SERVICE__GET_GLOBAL_REQUEST__INIT;
    q.swarm_id = swarm;
    q.task_id = task;
    q.tag = (char *)tag;
    Common__Results__GlobalTag gt = COMMON__RESULTS__GLOBAL_TAG__INIT;
    gt.swarm_id = swarm;
    gt.tag = (char *)tag;
    const ProtobufCMessage *pm = manager_token ? &gt.base : &q.base;
    size_t len = protobuf_c_message_get_packed_size(pm);
    cleanup_free uint8_t *req = xmalloc(len ? len : 1);
    protobuf_c_message_pack(pm, req);
    rpc_metadata md[] = {{"authorization", manager_token}};
    rpc_status st = {0};
    rpc_sstream *s = rpc_sstream_start(ch, manager_token ? NODE "GetGlobal" : WORLD "GetGlobal", md,
                                       manager_token ? 1 : 0, req, len, 0, &st);
    if (!s) {
        fprintf(stderr, "light-client: GetGlobal could not start: %s: %s\n", rpc_code_name(st.code),
                st.message);
        return -1;
    }
    size_t got = 0;
    bool same = true;
    int r;
    rpc_bytes msg = {0};
    while ((r = rpc_sstream_next(s, &msg, &st)) == 1) {
        size_t off, vn;
        if (!field1(msg.data, msg.len, &off, &vn) || vn > n - got ||
            memcmp(msg.data + off, value + got, vn) != 0)
            same = false;
        else
            got += vn;
        rpc_bytes_free(&msg);
    }
    rpc_sstream_free(s);
    if (r < 0) {
        fprintf(stderr, "light-client: GetGlobal failed: %s: %s\n", rpc_code_name(st.code),
                st.message);
        return -1;
    }
    if (!same || got != n) {
        fprintf(stderr, "light-client: GetGlobal returned other bytes than were set.\n");
        return -1;
    }
    return 0;
}

static int cmd_global(rpc_channel *ch, Common__System__PairId *swarm, Common__System__PairId *task,
                      const char *tag, size_t n, long long runs)
{
    cleanup_free uint8_t *value = xmalloc(n ? n : 1);
    for (long long i = 0; i < runs; i++) {
        fill_value(value, n, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
        double t0 = now_s();
        if (set_global(ch, swarm, task, tag, value, n) < 0)
            return 1;
        double t1 = now_s();
        if (get_global(ch, swarm, task, tag, value, n) < 0)
            return 1;
        double t2 = now_s();
        printf("global bytes=%zu set_ms=%.1f get_ms=%.1f total_ms=%.1f\n", n, (t1 - t0) * 1e3,
               (t2 - t1) * 1e3, (t2 - t0) * 1e3);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return usage();
    bool binary = strcmp(argv[1], "binary") == 0;
    bool global = strcmp(argv[1], "global") == 0;
    if (strcmp(argv[1], "manager-global") == 0) {
        global = true;
        manager_token = argv[4];
    }
    if ((!binary && !global) || (binary && argc > 7) || (global && (argc < 7 || argc > 8)))
        return usage();
    node_id sw, tk = {0};
    if (!node_id_parse_xid(argv[3], &sw) || (!manager_token && !node_id_parse_xid(argv[4], &tk))) {
        fprintf(stderr, "light-client: SWARM and TASK must be IDs in hex (as in SWARM_ID).\n");
        return 2;
    }
    long long runs = 1, size = 0;
    const char *runs_arg = binary ? (argc == 7 ? argv[6] : NULL) : (argc == 8 ? argv[7] : NULL);
    if ((runs_arg && !parse_count(runs_arg, 1, &runs)) ||
        (global && !parse_count(argv[6], 0, &size))) {
        fprintf(stderr, "light-client: RUNS must be a number >= 1 and SIZE >= 0.\n");
        return 2;
    }
    Common__System__PairId swarm = COMMON__SYSTEM__PAIR_ID__INIT;
    Common__System__PairId task = COMMON__SYSTEM__PAIR_ID__INIT;
    swarm.head = sw.head;
    swarm.tail = sw.tail;
    task.head = tk.head;
    task.tail = tk.tail;

    rpc_init();
    mt_error *err = NULL;
    rpc_channel *ch = rpc_channel_new(argv[2], NULL, &err);
    if (!ch) {
        fprintf(stderr, "light-client: %s\n", mt_error_msg(err));
        mt_error_free(&err);
        rpc_shutdown();
        return 1;
    }
    int rc = binary ? cmd_binary(ch, &swarm, &task, argv[5], runs)
                    : cmd_global(ch, &swarm, &task, argv[5], (size_t)size, runs);
    rpc_channel_free(ch);
    rpc_shutdown();
    return rc;
}
