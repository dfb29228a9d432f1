/* fuzz_node_commands.c - libFuzzer target for the MQTT commands the manager sends the node, as
 * the node dispatches them (commands.c, commands_dispatch), one input being a sequence of
 * commands received in a row.
 *
 * Input: a flags byte (bits 0-1: the session state, AGENT_SESSION_*, 3 = CURRENT; bit 2: the
 * task table exists from the start, else every command arrives while the node starts and is
 * held, then run (commands_release_held) or, with bit 4, discarded (commands_discard_held);
 * bit 3: topics carry the manager's "manta/nodes/<xid>/" prefix), then commands, each an
 * opcode byte, a length byte (255: two more bytes, little-endian) and that many payload bytes:
 *   0 collect_information   1 stop_node   2 deploy_task   3 stop_task   4 stop_swarm
 *   5 node_session_marker   6 a topic of the fuzzer's (payload = topic NUL payload)
 *   7 a tick of the task table   8 the last deployed task writes payload[1..] and exits with
 *     payload[0] (bit 7: killed for memory)
 *
 * What runs is the node's own code: commands.c, agent.c's command helpers (SendError and the
 * other manager calls built and packed, session marker, stale stop_node, graceful stop, system
 * summary from a fake /proc), the task table (tasks.c) over the fake runtime (runtime_fake.c),
 * with state, payloads and the dataset scan under a directory in /dev/shm. No network (the
 * light service listens on a loopback port, never called), no process, no container: the node's
 * worker queue is kept full by two jobs that never end, so every manager call the commands make is
 * built, then refused by the queue and freed, never sent; the task table's hooks (publish, error,
 * log upload, threads, posting to the loop) are synchronous stand-ins, as in
 * tests/unit/node/test_tasks.c. Not covered: MQTT itself (session.c's on_message), the event loop,
 * the real runtimes.
 *
 * Invariants checked (abort() on violation): a stop_node stops the node exactly when it names
 * this run or, naming none, when the session is current, and is otherwise counted as stale; a
 * session marker moves only a pending session, only with this run's id; a deploy that passes
 * the node's checks leaves the task known or reports an error; commands are held in order
 * while the node starts (up to COMMANDS_HOLD_MAX) and none is left once it is ready; no other
 * command stops the node; every status published is a TaskStatus, every error has a text, and
 * every log blob uploaded decodes with this node's id. */
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "common/tasks.pb-c.h"
#include "fsutil.h"
#include "light.h"
#include "mem.h"
#include "runtime_fake.h"
#include "tasklog.h"
#include "tasks.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const node_id SELF = {0x5fd7a5c7e8a5d0e1ull, 0x33b2a1f0c4d5e6f7ull};
static const char RUN_ID[] = "0123456789abcdef0123456789ABCDEF";

static char base[64], proc_root[96], state_dir[96];
static char *ds_keys[1], *ds_values[1];
static logger *lg;
static FILE *devnull;
static workers *full_queue;
static struct light_service *shared_light;

/* ---- a worker queue that takes no job ---------------------------------------------------------
 */

static pthread_mutex_t block_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t block_cv = PTHREAD_COND_INITIALIZER;

static void block_forever(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&block_mu);
    for (;;)
        pthread_cond_wait(&block_cv, &block_mu);
}

/* ---- the task table's world, synchronous --------------------------------------------------- */

struct posted {
    void (*fn)(void *);
    void *arg;
};

static struct {
    struct posted *q;
    size_t nq, cap;
    size_t errors; /* task errors reported */
} W;

static void h_publish(void *ctx, const task *t)
{
    (void)ctx;
    if (t->status < TASK_PENDING || t->status > TASK_STOPPED)
        abort();
}

static void h_error(void *ctx, int id, const task *t, const char *msg)
{
    (void)ctx, (void)id, (void)t;
    if (!msg || !*msg)
        abort();
    W.errors++;
}

static int h_keep(void *ctx, const uint8_t *blob, size_t len, const tasklog_header *hdr,
                  int final_status, mt_error **err)
{
    (void)ctx, (void)err, (void)final_status;
    tasklog_header h;
    uint8_t *logs = NULL;
    size_t n = 0;
    mt_error *e = NULL;
    if (tasklog_decode(blob, len, &h, &logs, &n, 64u << 20, &e) < 0 ||
        !node_id_equal(h.node, SELF) || !node_id_equal(hdr->task, h.task))
        abort();
    free(logs);
    return 0;
}

static void h_spawn(void *ctx, void (*fn)(void *), void *arg)
{
    (void)ctx;
    fn(arg); /* the blocking step now; its outcome is posted */
}

static void h_post(void *ctx, void (*fn)(void *), void *arg)
{
    (void)ctx;
    if (W.nq == W.cap) {
        W.cap = W.cap ? 2 * W.cap : 64;
        W.q = xrealloc(W.q, W.cap * sizeof(*W.q));
    }
    W.q[W.nq++] = (struct posted){fn, arg};
}

static void h_log(void *ctx, int level, const char *fmt, ...)
{
    (void)ctx;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_msg(lg, (log_level)level, "tasks", "%s", buf);
}

static void pump(void)
{
    for (size_t rounds = 0; W.nq; rounds++) {
        if (rounds > 100000) /* the table keeps posting: a livelock */
            abort();
        struct posted p = W.q[0];
        memmove(W.q, W.q + 1, (W.nq - 1) * sizeof(W.q[0]));
        W.nq--;
        p.fn(p.arg);
    }
}

static const task_hooks HOOKS = {NULL, h_publish, h_error, h_keep, h_spawn, h_post, h_log, NULL};

static task_table *table(runtime *rt)
{
    task_limits l = {.max_concurrent = 2,
                     .queue_limit = 3,
                     .log_limit = 4096,
                     .pull_timeout = 5,
                     .stop_grace_s = 1,
                     .cleanup_on_failure = true};
    static const char *names[] = {"mnist"};
    const char *paths[] = {ds_values[0]};
    task_env env = {"127.0.0.1", 41234, 1, names, paths, false};
    return tasks_new(rt, SELF, state_dir, &l, &env, &HOOKS);
}

/* ---- set-up -------------------------------------------------------------------------------- */

static void put(const char *dir, const char *name, const char *text)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

static void remove_base(void)
{
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(base, sizeof(base), "/dev/shm/fuzz_node_commands_XXXXXX");
    if (!mkdtemp(base))
        abort();
    atexit(remove_base);
    snprintf(proc_root, sizeof(proc_root), "%s/proc", base);
    snprintf(state_dir, sizeof(state_dir), "%s/state", base);
    cleanup_free char *data = xasprintf("%s/data", base);
    if (mkdir(proc_root, 0700) < 0 || mkdir(data, 0700) < 0)
        abort();
    put(proc_root, "stat",
        "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n"
        "cpu1 50 0 50 400 0 0 0 0 0 0\nintr 1 2 3\n");
    put(proc_root, "cpuinfo",
        "processor : 0\nphysical id : 0\ncore id : 0\n\n"
        "processor : 1\nphysical id : 0\ncore id : 1\n\n");
    put(proc_root, "meminfo",
        "MemTotal:       1000000 kB\nMemFree:         100000 kB\nMemAvailable:    400000 kB\n"
        "Buffers:          50000 kB\nCached:          200000 kB\nSReclaimable:     50000 kB\n"
        "SwapTotal:       200000 kB\nSwapFree:        150000 kB\n");
    put(data, "train.csv", "x,y\n1,2\n");
    ds_keys[0] = xstrdup("mnist");
    ds_values[0] = xstrdup(data);

    devnull = fopen("/dev/null", "w");
    log_options lo = {.level = LOG_DEBUG, .to_console = true, .console = devnull};
    mt_error *e = NULL;
    lg = log_open(&lo, &e);
    if (!devnull || !lg)
        abort();

    /* The light service, started once on a loopback port and shared by every input's node: a
     * deploy starts it when it is not running (agent_light_up), which would start a gRPC
     * server per input. No call reaches it. */
    static manager_client no_manager;
    static const dataset_set no_datasets;
    light_host lh = {.log = lg,
                     .mc = &no_manager,
                     .host = "127.0.0.1",
                     .max_tasks = 2,
                     .datasets = &no_datasets};
    int port = 0;
    shared_light = light_start(&lh, &port, &e);
    if (!shared_light)
        abort();

    /* One job running forever and one waiting behind it: the queue (capacity 1) is full. */
    full_queue = workers_start(1, 1);
    while (workers_pending(full_queue) < 2) {
        workers_submit(full_queue, block_forever, NULL, NULL);
        usleep(1000);
    }
    return 0;
}

/* ---- the input ----------------------------------------------------------------------------- */

struct reader {
    const uint8_t *p;
    size_t left;
};

static bool next_command(struct reader *r, uint8_t *op, const uint8_t **payload, size_t *len)
{
    if (r->left < 2)
        return false;
    *op = r->p[0];
    size_t n = r->p[1];
    r->p += 2, r->left -= 2;
    if (n == 255 && r->left >= 2) {
        n = (size_t)r->p[0] | (size_t)r->p[1] << 8;
        r->p += 2, r->left -= 2;
    }
    if (n > r->left)
        n = r->left;
    *payload = r->p;
    *len = n;
    r->p += n, r->left -= n;
    return true;
}

static bool is_run_id(const uint8_t *p, size_t len)
{
    if (len != 32)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
              (p[i] >= 'A' && p[i] <= 'F')))
            return false;
    return true;
}

static const char *const COMMANDS[] = {"collect_information", "stop_node",  "deploy_task",
                                       "stop_task",           "stop_swarm", AGENT_MARKER_COMMAND};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    struct reader rd = {data + 1, size - 1};

    node n;
    memset(&n, 0, sizeof(n));
    n.log = lg;
    n.id = SELF;
    node_id_to_xid(SELF, n.xid);
    n.out = devnull;
    n.wq = full_queue;
    n.mqtt_watched_fd = -1;
    n.disconnect_mid = -1;
    n.light = shared_light;
    n.cfg.datasets.mappings = (cfg_map){1, ds_keys, ds_values};
    metrics_init(&n.metrics, proc_root);
    memcpy(n.run_id, RUN_ID, sizeof(RUN_ID));
    n.session = (flags & 3) == 3 ? AGENT_SESSION_CURRENT : flags & 3;
    runtime *rt = runtime_fake_new();
    if (flags & 4)
        n.tasks = table(rt);
    if (mkdir(state_dir, 0700) < 0)
        abort();

    size_t held = 0; /* commands the node should hold */
    bool deployed = false;
    node_id last_swarm = {0, 0}, last_task = {0, 0};
    uint8_t op;
    const uint8_t *payload;
    size_t len;
    while (next_command(&rd, &op, &payload, &len)) {
        op %= 9;
        if (op == 7) {
            if (n.tasks) {
                tasks_tick(n.tasks);
                pump();
            }
            continue;
        }
        if (op == 8) {
            const task *t = deployed && n.tasks ? tasks_find(n.tasks, last_swarm, last_task) : NULL;
            if (t && t->name && len) {
                cleanup_free char *text = xstrndup((const char *)payload + 1, len - 1);
                runtime_fake_output(rt, t->name, text);
                runtime_fake_exit(rt, t->name, payload[0] & 0x7f, payload[0] & 0x80);
                tasks_tick(n.tasks);
                pump();
            }
            continue;
        }
        const char *cmd;
        cleanup_free char *own_topic = NULL;
        if (op == 6) {
            /* the fuzzer's topic: up to the first NUL; the payload after it */
            const uint8_t *nul = memchr(payload, '\0', len);
            size_t tl = nul ? (size_t)(nul - payload) : len;
            own_topic = xstrndup((const char *)payload, tl);
            payload = nul ? nul + 1 : payload + len;
            len = nul ? len - tl - 1 : 0;
            cmd = own_topic;
        } else {
            cmd = COMMANDS[op];
        }
        cleanup_free char *topic =
            flags & 8 ? xasprintf("manta/nodes/%s/%s", n.xid, cmd) : xstrdup(cmd);
        const char *slash = strrchr(topic, '/');
        const char *name = slash ? slash + 1 : topic;

        /* what should happen */
        int session = n.session;
        bool was_stopping = n.stopping || n.draining;
        uint64_t stale = n.stale_stops;
        size_t errors = W.errors;
        bool is_marker = !strcmp(name, AGENT_MARKER_COMMAND);
        bool is_stop = !strcmp(name, "stop_node");
        bool stop_ok = is_run_id(payload, len) ? !strncasecmp((const char *)payload, n.run_id, len)
                                               : session == AGENT_SESSION_CURRENT;
        bool had_tasks = n.tasks != NULL;
        Common__Tasks__MqttTask *m = NULL;
        if (!strcmp(name, "deploy_task"))
            m = common__tasks__mqtt_task__unpack(NULL, len, len ? payload : (const uint8_t *)"");

        commands_dispatch(&n, topic, len ? payload : NULL, len);
        if (n.tasks)
            pump();

        if (is_marker) {
            bool mine = len == 32 && !memcmp(payload, n.run_id, 32);
            int want = mine && session == AGENT_SESSION_PENDING ? AGENT_SESSION_CURRENT : session;
            if (n.session != want)
                abort();
        } else if (n.session != session) {
            abort();
        }
        if (is_stop && !stop_ok) {
            if (n.stale_stops != stale + 1 || (n.stopping || n.draining) != was_stopping)
                abort();
        } else if (n.stale_stops != stale) {
            abort();
        }
        if (!is_marker && !(is_stop && !stop_ok) && !had_tasks)
            held++;
        if (had_tasks && is_stop && stop_ok && !(n.stopping || n.draining))
            abort();
        if ((!had_tasks || !is_stop) && (n.stopping || n.draining) != was_stopping)
            abort();
        if (had_tasks && n.held)
            abort();
        if (!had_tasks &&
            command_hold_count(n.held) != (held < COMMANDS_HOLD_MAX ? held : COMMANDS_HOLD_MAX))
            abort();
        if (m && had_tasks && m->swarm_id && m->task_id && !was_stopping && !m->gpu &&
            m->iteration <= 65535 && m->circular <= 65535) {
            last_swarm = wire_node_id(m->swarm_id);
            last_task = wire_node_id(m->task_id);
            deployed = true;
            if (!tasks_find(n.tasks, last_swarm, last_task) && W.errors == errors)
                abort();
        }
        if (m)
            common__tasks__mqtt_task__free_unpacked(m, NULL);
    }

    if (!n.tasks) {
        if (flags & 16) {
            commands_discard_held(&n);
        } else {
            n.tasks = table(rt);
            commands_release_held(&n);
            pump();
        }
        if (n.held)
            abort();
    }
    if (n.tasks) {
        tasks_shutdown(n.tasks, false);
        pump();
        tasks_free(n.tasks);
    }
    runtime_free(rt);
    datasets_release(&n.datasets);
    metrics_release(&n.metrics);
    nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
