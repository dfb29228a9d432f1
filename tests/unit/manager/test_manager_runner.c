/* test_manager_runner.c - the swarm runner's bookkeeping (runner.h, swarm-model.md section 4)
 * without a network: a manager built by hand with nodes in its registry, swarm files loaded
 * from a temporary folder, the runner driven through its functions with the lock held, and
 * the commands it queued read back from the outbox (deploy_task = MqttTask, stop_swarm =
 * PairId). Covers advancing along edges only when every instance finished, ScheduleTask
 * opening the next iteration, fixed placement, stop, failures, the logs grace of nodes that
 * do not report outcomes, node loss and fan-in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "fsutil.h"
#include "id.h"
#include "mem.h"
#include "mgr.h"
#include "rpc.h"
#include "runner.h"
#include "store.h"
#include "swarmfile.h"

/* ---- the swarm files ---- */

static char tmpdir[] = "/tmp/test_runner_XXXXXX";

#define MAIN_PY "def main():\n    pass\n"

#define ANY_FIXED "method = \"any\"\nfixed = true\nmaximum = 1\n"

/* worker(all) -> aggregator(any, fixed, 1) -> tester(all) -> scheduler(any, fixed, 1): the
 * MNIST example's graph (docs/swarm-file.md). */
static const char CHAIN_TOML[] = "name = \"chain\"\n"
                                 "[globals]\n"
                                 "hyperparameters = { epochs = 1 }\n"
                                 "[[tasks]]\n"
                                 "module = \"worker\"\n"
                                 "image = \"img/worker:1\"\n"
                                 "datasets = [\"mnist\"]\n"
                                 "[[tasks]]\n"
                                 "module = \"aggregator.py\"\n"
                                 "image = \"img/agg:1\"\n" ANY_FIXED "after = [\"worker\"]\n"
                                 "[[tasks]]\n"
                                 "module = \"worker_test.py\"\n"
                                 "alias = \"tester\"\n"
                                 "image = \"img/test:1\"\n"
                                 "datasets = [\"mnist\"]\n"
                                 "after = [\"aggregator\"]\n"
                                 "[[tasks]]\n"
                                 "module = \"scheduler.py\"\n"
                                 "image = \"img/sched:1\"\n" ANY_FIXED "after = [\"tester\"]\n";

/* Two start tasks and one after both. */
static const char FANIN_TOML[] = "[[tasks]]\nmodule = \"a.py\"\nimage = \"img/a\"\n"
                                 "datasets = [\"mnist\"]\n"
                                 "[[tasks]]\nmodule = \"b.py\"\nimage = \"img/b\"\n"
                                 "method = \"any\"\n"
                                 "[[tasks]]\nmodule = \"c.py\"\nimage = \"img/c\"\n"
                                 "method = \"any\"\nafter = [\"a\", \"b\"]\n";

/* A diamond whose join (c) is listed before one of its previous tasks (b): a -> b -> c and
 * a -> c. c must wait for b although b is deployed only once a has finished. */
static const char DIAMOND_TOML[] = "[[tasks]]\nmodule = \"a.py\"\nimage = \"img/a\"\n"
                                   "method = \"any\"\n"
                                   "[[tasks]]\nmodule = \"c.py\"\nimage = \"img/c\"\n"
                                   "method = \"any\"\nafter = [\"a\", \"b\"]\n"
                                   "[[tasks]]\nmodule = \"b.py\"\nimage = \"img/b\"\n"
                                   "method = \"any\"\nafter = [\"a\"]\n";

/* A start task no node can run (after one that any node can). */
static const char NOWHERE_TOML[] = "[[tasks]]\nmodule = \"b.py\"\nimage = \"img/b\"\n"
                                   "method = \"any\"\n"
                                   "[[tasks]]\nmodule = \"a.py\"\nimage = \"img/a\"\n"
                                   "datasets = [\"nowhere\"]\n";

/* An "any" task only one node can run. */
static const char RARE_TOML[] = "[[tasks]]\nmodule = \"a.py\"\nimage = \"img/a\"\n"
                                "method = \"any\"\ndatasets = [\"rare\"]\n";

/* a(all) -> b(any), for the logs grace. */
static const char TICK_TOML[] = "[[tasks]]\nmodule = \"a.py\"\nimage = \"img/a\"\n"
                                "datasets = [\"mnist\"]\n"
                                "[[tasks]]\nmodule = \"b.py\"\nimage = \"img/b\"\n"
                                "method = \"any\"\nafter = [\"a\"]\n";

/* What every deploy of a task must carry: task ids from the module name (BLAKE3, or the
 * name itself when it is hex), the image, and a file of the module inside the archive. */
static const struct {
    const char *alias, *task_xid, *image, *file;
} TASKS[] = {
    {"worker", "88d82e8abd979fbb217f37f22fcbf9a6", "img/worker:1", "worker/__init__.py"},
    {"aggregator", "ff84cfd868a3df5700831162612ad847", "img/agg:1", "aggregator.py"},
    {"tester", "cf8622823d5c2531c63997daf24017a8", "img/test:1", "worker_test.py"},
    {"scheduler", "ea6b054b0a5bcd545dc61ebb59f41646", "img/sched:1", "scheduler.py"},
    {"a", "0a", "img/a", "a.py"},
    {"b", "0b", "img/b", "b.py"},
    {"c", "0c", "img/c", "c.py"},
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void write_file(const char *rel, const char *text)
{
    cleanup_free char *p = xasprintf("%s/%s", tmpdir, rel);
    cleanup_free char *dir = xstrdup(p);
    *strrchr(dir, '/') = '\0';
    mt_error *err = NULL;
    assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(fs_write_atomic(p, text, strlen(text), 0644, &err), 0);
}

static int group_setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    write_file("worker/__init__.py", MAIN_PY);
    write_file("worker/model.py", "X = 1\n");
    const char *mods[] = {"aggregator.py", "worker_test.py", "scheduler.py",
                          "a.py",          "b.py",           "c.py"};
    for (size_t i = 0; i < ARRAY_LEN(mods); i++)
        write_file(mods[i], MAIN_PY);
    write_file("chain.toml", CHAIN_TOML);
    write_file("fanin.toml", FANIN_TOML);
    write_file("diamond.toml", DIAMOND_TOML);
    write_file("nowhere.toml", NOWHERE_TOML);
    write_file("rare.toml", RARE_TOML);
    write_file("tick.toml", TICK_TOML);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- the manager ---- */

static manager M;
static node_id SID;               /* the current run */
static char SX[NODE_XID_MAX + 1]; /* its xid */
static const swarm_def *DEF;      /* its definition (owned by the run) */

static const char *const MNIST[] = {"mnist", NULL};
static const char *const MNIST_RARE[] = {"mnist", "rare", NULL};
static const char *const NONE[] = {NULL};

/* Node i: xids a0000000000000a<i>0000000000001<i>, sorted like their index. */
static node_id nid(int i)
{
    return (node_id){0xa0000000000000a0u + (uint64_t)i, 0x10u + (uint64_t)i};
}

static const char *nxid(int i)
{
    static char x[16][NODE_XID_MAX + 1];
    node_id_to_xid(nid(i), x[i]);
    return x[i];
}

static int node_index(const char *xid)
{
    for (int i = 0; i < 16; i++)
        if (!strcmp(nxid(i), xid))
            return i;
    return -1;
}

static mgr_node *add_node(int i, const char *const *datasets, bool reports_outcome)
{
    mgr_node *n = xcalloc(1, sizeof(*n));
    n->id = nid(i);
    node_id_to_xid(n->id, n->xid);
    snprintf(n->hostname, sizeof(n->hostname), "host%d", i);
    snprintf(n->alias, sizeof(n->alias), "node%d", i);
    n->connected = true;
    n->ready = true;
    n->reports_outcome = reports_outcome;
    size_t k = 0;
    while (datasets[k])
        k++;
    n->datasets = xcalloc(k + 1, sizeof(char *));
    for (size_t j = 0; j < k; j++)
        n->datasets[j] = xstrdup(datasets[j]);
    M.nodes = xrealloc(M.nodes, (M.nnodes + 1) * sizeof(*M.nodes));
    M.nodes[M.nnodes++] = n;
    return n;
}

static mgr_node *node(int i)
{
    for (size_t k = 0; k < M.nnodes; k++)
        if (node_id_equal(M.nodes[k]->id, nid(i)))
            return M.nodes[k];
    fail_msg("node %d is not in the registry", i);
    return NULL;
}

static void free_outbox(void)
{
    while (M.out_head) {
        mgr_msg *msg = M.out_head;
        M.out_head = msg->next;
        free(msg->topic);
        free(msg->payload);
        free(msg);
    }
    M.out_tail = NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&M, 0, sizeof(M));
    pthread_mutex_init(&M.lock, NULL);
    mt_error *err = NULL;
    M.st = store_open(":memory:", &err);
    if (!M.st) {
        fprintf(stderr, "store_open: %s\n", mt_error_msg(err));
        mt_error_free(&err);
        return -1;
    }
    DEF = NULL;
    SX[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pthread_mutex_lock(&M.lock);
    free_outbox();
    runner_free_all(&M);
    for (size_t i = 0; i < M.nnodes; i++)
        mgr_node_free(M.nodes[i]);
    free(M.nodes);
    M.nodes = NULL;
    M.nnodes = 0;
    pthread_mutex_unlock(&M.lock);
    store_close(M.st);
    pthread_mutex_destroy(&M.lock);
    return 0;
}

/* ---- the outbox ---- */

typedef struct sent {
    int node; /* index (nid) of the node it is for */
    char cmd[24];
    char alias[32]; /* deploy_task only */
    uint32_t iteration;
} sent;

#define MAXSENT 64

/* Take every queued command, check what each carries and return them in order. */
static size_t drain(sent *out)
{
    pthread_mutex_lock(&M.lock);
    mgr_msg *head = M.out_head;
    M.out_head = M.out_tail = NULL;
    pthread_mutex_unlock(&M.lock);
    size_t n = 0;
    while (head) {
        mgr_msg *msg = head;
        head = msg->next;
        assert_true(n < MAXSENT);
        sent *s = &out[n++];
        memset(s, 0, sizeof(*s));
        const char *p = msg->topic;
        assert_int_equal(strncmp(p, MGR_TOPIC_PREFIX, strlen(MGR_TOPIC_PREFIX)), 0);
        p += strlen(MGR_TOPIC_PREFIX);
        const char *slash = strchr(p, '/');
        assert_non_null(slash);
        char x[NODE_XID_MAX + 1];
        assert_true((size_t)(slash - p) <= NODE_XID_MAX);
        memcpy(x, p, (size_t)(slash - p));
        x[slash - p] = '\0';
        s->node = node_index(x);
        if (s->node < 0)
            fail_msg("command for unknown node %s", x);
        snprintf(s->cmd, sizeof(s->cmd), "%s", slash + 1);
        if (!strcmp(s->cmd, "deploy_task")) {
            Common__Tasks__MqttTask *t =
                common__tasks__mqtt_task__unpack(NULL, msg->len, msg->payload);
            assert_non_null(t);
            assert_non_null(t->swarm_id);
            assert_true(t->swarm_id->head == SID.head && t->swarm_id->tail == SID.tail);
            assert_non_null(t->alias);
            snprintf(s->alias, sizeof(s->alias), "%s", t->alias);
            s->iteration = t->iteration;
            size_t k = 0;
            while (k < ARRAY_LEN(TASKS) && strcmp(TASKS[k].alias, t->alias))
                k++;
            if (k == ARRAY_LEN(TASKS))
                fail_msg("deploy of unknown alias '%s'", t->alias);
            assert_non_null(t->task_id);
            char tx[NODE_XID_MAX + 1];
            node_id_to_xid((node_id){t->task_id->head, t->task_id->tail}, tx);
            assert_string_equal(tx, TASKS[k].task_xid);
            assert_string_equal(t->image, TASKS[k].image);
            assert_int_equal(t->circular, 0);
            assert_string_equal(t->network, "None");
            assert_string_equal(t->auth_key, "None");
            assert_string_equal(t->login_server, "None");
            assert_false(t->gpu);
            /* the module archive: a zip holding the module's file */
            assert_true(t->payload.len > 30);
            assert_memory_equal(t->payload.data, "PK\x03\x04", 4);
            assert_non_null(
                memmem(t->payload.data, t->payload.len, TASKS[k].file, strlen(TASKS[k].file)));
            assert_non_null(memmem(t->payload.data, t->payload.len, "__main__.py", 11));
            protobuf_c_message_free_unpacked(&t->base, NULL);
        } else if (!strcmp(s->cmd, "stop_swarm")) {
            Common__System__PairId *pid =
                common__system__pair_id__unpack(NULL, msg->len, msg->payload);
            assert_non_null(pid);
            assert_true(pid->head == SID.head && pid->tail == SID.tail);
            protobuf_c_message_free_unpacked(&pid->base, NULL);
        } else {
            fail_msg("unexpected command %s", msg->topic);
        }
        free(msg->topic);
        free(msg->payload);
        free(msg);
    }
    return n;
}

static void print_sent(const sent *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  node %d %s %s it %u\n", s[i].node, s[i].cmd, s[i].alias, s[i].iteration);
}

/* Nothing was queued. */
static void expect_nothing(void)
{
    sent s[MAXSENT];
    size_t n = drain(s);
    if (n) {
        print_sent(s, n);
        fail_msg("expected no command, got %zu", n);
    }
}

/* Exactly one deploy of alias at iteration `it` on each node of `mask`, and nothing else.
 * Returns the mask. */
static unsigned expect_deploys(const char *alias, uint32_t it, unsigned mask)
{
    sent s[MAXSENT];
    size_t n = drain(s);
    unsigned got = 0;
    bool ok = n == (size_t)__builtin_popcount(mask);
    for (size_t i = 0; i < n && ok; i++) {
        if (strcmp(s[i].cmd, "deploy_task") || strcmp(s[i].alias, alias) || s[i].iteration != it ||
            (got & (1u << s[i].node)))
            ok = false;
        got |= 1u << s[i].node;
    }
    if (!ok || got != mask) {
        print_sent(s, n);
        fail_msg("expected %s at iteration %u on nodes 0x%x", alias, it, mask);
    }
    return got;
}

/* Exactly one deploy of alias at iteration it (on any node); returns its node. */
static int expect_one_deploy(const char *alias, uint32_t it)
{
    sent s[MAXSENT];
    size_t n = drain(s);
    if (n != 1 || strcmp(s[0].cmd, "deploy_task") || strcmp(s[0].alias, alias) ||
        s[0].iteration != it) {
        print_sent(s, n);
        fail_msg("expected one deploy of %s at iteration %u, got %zu commands", alias, it, n);
    }
    return s[0].node;
}

/* Exactly one stop_swarm on each node of mask (possibly after other commands when
 * others_ok), none elsewhere. */
static void expect_stops(unsigned mask, bool others_ok)
{
    sent s[MAXSENT];
    size_t n = drain(s);
    unsigned got = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].cmd, "stop_swarm")) {
            ok = ok && others_ok;
            continue;
        }
        if (got & (1u << s[i].node))
            ok = false;
        got |= 1u << s[i].node;
    }
    if (!ok || got != mask) {
        print_sent(s, n);
        fail_msg("expected one stop_swarm on each of nodes 0x%x", mask);
    }
}

/* ---- driving the runner ---- */

static node_id task_id(const char *alias)
{
    ssize_t k = swarm_def_find_alias(DEF, alias);
    if (k < 0)
        fail_msg("no task '%s'", alias);
    return DEF->tasks[k].task_id;
}

static swarm_def *load(const char *file)
{
    cleanup_free char *path = xasprintf("%s/%s", tmpdir, file);
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(path, &err);
    if (!def)
        fail_msg("%s: %s", file, mt_error_msg(err));
    return def;
}

/* Start a run; returns runner_start's result (error message in *msg when -1). */
static int start_rc(const char *file, char **msg)
{
    swarm_def *def = load(file);
    DEF = def;
    mt_error *err = NULL;
    pthread_mutex_lock(&M.lock);
    int rc = runner_start(&M, def, SX, &err);
    pthread_mutex_unlock(&M.lock);
    assert_true(node_id_parse_xid(SX, &SID));
    if (msg)
        *msg = rc < 0 ? xstrdup(mt_error_msg(err)) : NULL;
    mt_error_free(&err);
    return rc;
}

static void start(const char *file)
{
    cleanup_free char *msg = NULL;
    if (start_rc(file, &msg) != 0)
        fail_msg("runner_start: %s", msg);
}

static void finished(int node_i, const char *alias, uint32_t it, bool failed, const char *why)
{
    pthread_mutex_lock(&M.lock);
    runner_task_finished(&M, SID, nid(node_i), task_id(alias), it, failed, why);
    pthread_mutex_unlock(&M.lock);
}

static void finish(int node_i, const char *alias, uint32_t it)
{
    finished(node_i, alias, it, false, NULL);
}

/* The common start: three nodes with mnist, chain.toml started, its workers deployed on all. */
static void start_chain_on_three(void)
{
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    start("chain.toml");
    expect_deploys("worker", 0, 0x7);
}

/* SendError from node i about its instance of alias at iteration it. */
static void task_error(int node_i, const char *alias, uint32_t it, const char *content)
{
    pthread_mutex_lock(&M.lock);
    runner_task_error(&M, SID, nid(node_i), task_id(alias), it, content);
    pthread_mutex_unlock(&M.lock);
}

/* The runner's answer as the node service gives it: the rpc code, the message into msg. */
static int answer(int rc, mt_error **err, char *msg, size_t msg_size)
{
    int code = rc < 0 ? mt_error_status(*err, RPC_INTERNAL) : RPC_OK;
    if (rc < 0)
        assert_int_not_equal(mt_error_status(*err, 0), 0); /* every refusal carries its code */
    snprintf(msg, msg_size, "%s", mt_error_msg(*err));
    mt_error_free(err);
    return code;
}

static int schedule_as(node_id swarm, node_id caller, const char *alias, const node_id *ids,
                       size_t n, char *msg, size_t msg_size)
{
    mt_error *e = NULL;
    int rc = runner_schedule(&M, swarm, caller, alias, ids, n, &e);
    return answer(rc, &e, msg, msg_size);
}

static int stop_as(node_id swarm, node_id node, node_id task, uint32_t iteration, char *msg,
                   size_t msg_size)
{
    mt_error *e = NULL;
    int rc = runner_stop(&M, swarm, node, task, iteration, &e);
    return answer(rc, &e, msg, msg_size);
}

static int schedule(const char *alias, const int *nodes, size_t n, char *msg, size_t msg_size)
{
    node_id ids[8];
    for (size_t i = 0; i < n; i++)
        ids[i] = nid(nodes[i]);
    pthread_mutex_lock(&M.lock);
    int rc = schedule_as(SID, task_id("scheduler"), alias, ids, n, msg, msg_size);
    pthread_mutex_unlock(&M.lock);
    return rc;
}

/* The node is lost as the registry learns it: mgr_node_lost marks it and tells the runner. */
static void lose(int node_i)
{
    pthread_mutex_lock(&M.lock);
    mgr_node_lost(&M, node(node_i), "silent (test)");
    assert_false(node(node_i)->connected);
    pthread_mutex_unlock(&M.lock);
}

/* The run's status in the runner and in the store agree with what is expected; detail
 * contains every non-NULL string given (NULL-terminated list). */
static void expect_status(int status, uint32_t it, ...)
{
    char detail[1024];
    uint32_t rit = 12345;
    pthread_mutex_lock(&M.lock);
    int st = runner_status(&M, SX, &rit, detail, sizeof(detail));
    pthread_mutex_unlock(&M.lock);
    if (st != status)
        fail_msg("status %s, expected %s (detail: %s)", run_status_name(st),
                 run_status_name(status), detail);
    assert_int_equal(rit, it);
    store_swarm row;
    mt_error *err = NULL;
    assert_int_equal(store_swarm_get(M.st, SX, &row, &err), 1);
    assert_string_equal(row.status, run_status_name(status));
    assert_int_equal(row.iteration, it);
    assert_string_equal(row.detail, detail);
    if (status == RUN_RUNNING)
        assert_string_equal(detail, "");
    else
        assert_true(strlen(detail) > 10);
    va_list ap;
    va_start(ap, it);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(detail, want))
            fail_msg("detail '%s' does not mention '%s'", detail, want);
    va_end(ap);
    store_swarm_clear(&row);
}

/* Run the chain's iteration 0 on the nodes of `workers` (every node with mnist) up to the
 * scheduler's deployment. Writes the aggregator's and scheduler's nodes. */
static void chain_to_scheduler(unsigned workers, int *agg, int *sched)
{
    start("chain.toml");
    expect_deploys("worker", 0, workers);
    expect_status(RUN_RUNNING, 0, NULL);
    int last = 31 - __builtin_clz(workers);
    /* every worker but the last one (one of them twice, and one at a wrong iteration) */
    for (int i = 0; i < last; i++) {
        if (!(workers & (1u << i)))
            continue;
        finish(i, "worker", 0);
        finish(i, "worker", 0);
        expect_nothing();
    }
    finish(last, "worker", 1);
    finish(last, "aggregator", 0); /* not deployed yet */
    expect_nothing();
    finish(last, "worker", 0);
    *agg = expect_one_deploy("aggregator", 0);
    finish(*agg, "aggregator", 0);
    expect_deploys("tester", 0, workers);
    for (int i = 0; i < last; i++) {
        if (!(workers & (1u << i)))
            continue;
        finish(i, "tester", 0);
        expect_nothing();
    }
    finish(last, "tester", 0);
    *sched = expect_one_deploy("scheduler", 0);
    expect_status(RUN_RUNNING, 0, NULL);
}

/* ---- the tests ---- */

/* Iteration 0 down the whole chain; the scheduler ends without ScheduleTask: COMPLETED. */
static void test_chain_iteration0_completes(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    int agg, sched;
    chain_to_scheduler(0x7, &agg, &sched);
    /* "any": the least loaded node, ties by xid */
    assert_int_equal(agg, 0);
    assert_int_equal(sched, 0);
    /* the globals of the swarm file were seeded, msgpack-encoded */
    uint8_t *data = NULL;
    size_t len = 0;
    mt_error *err = NULL;
    assert_int_equal(store_global_get(M.st, SX, "hyperparameters", &data, &len, &err), 1);
    assert_int_equal(len, 9);
    assert_memory_equal(data,
                        "\x81\xa6"
                        "epochs\x01",
                        9);
    free(data);
    store_swarm row;
    assert_int_equal(store_swarm_get(M.st, SX, &row, &err), 1);
    assert_string_equal(row.name, "chain");
    store_swarm_clear(&row);
    /* each node runs nothing any more once the scheduler is the only instance */
    assert_int_equal(node(1)->running, 0);
    assert_int_equal(node(0)->running, 1);

    finish(sched, "scheduler", 0);
    expect_status(RUN_COMPLETED, 0, "finished", NULL);
    expect_stops(0x7, false); /* the containers are cleaned up */
    assert_int_equal(node(0)->running, 0);
    finish(1, "worker", 0);
    expect_nothing();
}

/* ScheduleTask opens iteration 1 on exactly the nodes named; the chain follows at iteration 1
 * with the fixed tasks on their iteration-0 nodes; the scheduler's own instance finishing
 * after it scheduled does not complete the swarm. */
static void test_chain_schedule_next_iteration(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    int agg, sched;
    chain_to_scheduler(0x7, &agg, &sched);
    char msg[256] = "";
    const int two[] = {2, 0};
    assert_int_equal(schedule("worker", two, 2, msg, sizeof(msg)), RPC_OK);
    expect_deploys("worker", 1, 0x5);
    expect_status(RUN_RUNNING, 1, NULL);

    /* the scheduler's instance of iteration 0 ends: the run goes on */
    assert_int_equal(node(sched)->running, 2); /* its instance and a worker of iteration 1 */
    finish(sched, "scheduler", 0);
    finish(sched, "scheduler", 0); /* counted once */
    expect_nothing();
    expect_status(RUN_RUNNING, 1, NULL);
    assert_int_equal(node(sched)->running, 1);

    /* Load the fixed nodes so that a fresh "any" choice would go elsewhere. */
    node(agg)->running += 5;
    finish(0, "worker", 1);
    finish(2, "worker", 0); /* the old iteration: ignored */
    finish(1, "worker", 1); /* not scheduled on node 1 */
    expect_nothing();
    finish(2, "worker", 1);
    assert_int_equal(expect_one_deploy("aggregator", 1), agg);
    node(agg)->running -= 5;

    finish(agg, "aggregator", 1);
    expect_deploys("tester", 1, 0x7);
    node(sched)->running += 5;
    finish(0, "tester", 1);
    finish(1, "tester", 1);
    expect_nothing();
    finish(2, "tester", 1);
    assert_int_equal(expect_one_deploy("scheduler", 1), sched);
    node(sched)->running -= 5;
    expect_status(RUN_RUNNING, 1, NULL);

    finish(sched, "scheduler", 1);
    expect_status(RUN_COMPLETED, 1, "iteration 1", NULL);
    expect_stops(0x7, false);
}

/* StopSwarm from the scheduler: STOPPED, stop_swarm once per node that ran something, then
 * nothing more. */
static void test_stop(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    add_node(3, NONE, false); /* eligible for nothing with a dataset; highest xid */
    int agg, sched;
    chain_to_scheduler(0x7, &agg, &sched);
    char msg[256] = "";
    pthread_mutex_lock(&M.lock);
    int rc = stop_as(SID, nid(sched), task_id("scheduler"), 0, msg, sizeof(msg));
    pthread_mutex_unlock(&M.lock);
    assert_int_equal(rc, RPC_OK);
    expect_status(RUN_STOPPED, 0, "scheduler", NULL);
    expect_stops(0x7, false);
    for (int i = 0; i < 4; i++)
        assert_int_equal(node(i)->running, 0);

    finish(sched, "scheduler", 0);
    finish(1, "tester", 0);
    expect_nothing();
    const int two[] = {0, 1};
    msg[0] = '\0';
    assert_int_equal(schedule("worker", two, 2, msg, sizeof(msg)), RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(msg, "STOPPED"));
    expect_nothing();
    /* stopping again, or cancelling, changes nothing */
    pthread_mutex_lock(&M.lock);
    rc = stop_as(SID, nid(sched), task_id("scheduler"), 0, msg, sizeof(msg));
    assert_int_equal(runner_cancel(&M, SX, "by hand"), 0);
    pthread_mutex_unlock(&M.lock);
    assert_int_equal(rc, RPC_OK);
    expect_nothing();
    expect_status(RUN_STOPPED, 0, "scheduler", NULL);
}

/* StopSwarm from one worker while the others run: the others' finishes are ignored (no
 * aggregator), every node gets stop_swarm once. */
static void test_stop_mid_task(void **state)
{
    (void)state;
    start_chain_on_three();
    char msg[256] = "";
    pthread_mutex_lock(&M.lock);
    int rc = stop_as(SID, nid(1), task_id("worker"), 0, msg, sizeof(msg));
    pthread_mutex_unlock(&M.lock);
    assert_int_equal(rc, RPC_OK);
    char prefix[13];
    snprintf(prefix, sizeof(prefix), "%.12s", nxid(1)); /* progress lines shorten node ids */
    expect_status(RUN_STOPPED, 0, "'worker'", prefix, NULL);
    expect_stops(0x7, false);
    finish(0, "worker", 0);
    finish(2, "worker", 0);
    expect_nothing();
    expect_status(RUN_STOPPED, 0, "worker", NULL);
    /* a StopSwarm naming an unknown swarm is refused */
    pthread_mutex_lock(&M.lock);
    rc = stop_as((node_id){1, 2}, nid(1), task_id("worker"), 0, msg, sizeof(msg));
    pthread_mutex_unlock(&M.lock);
    assert_int_equal(rc, RPC_FAILED_PRECONDITION);
}

/* ScheduleTask refusals leave the run as it was. */
static void test_schedule_errors(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    add_node(3, MNIST, false)->connected = false;
    int agg, sched;
    chain_to_scheduler(0x7, &agg, &sched);
    char msg[256];
    const int ok[] = {0, 1}, off[] = {0, 3}, unknown[] = {1, 9};

    msg[0] = '\0';
    assert_int_equal(schedule("nope", ok, 2, msg, sizeof(msg)), RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "'nope'"));
    msg[0] = '\0';
    assert_int_equal(schedule("worker", ok, 0, msg, sizeof(msg)), RPC_INVALID_ARGUMENT);
    assert_true(strlen(msg) > 10);
    msg[0] = '\0';
    assert_int_equal(schedule("worker", off, 2, msg, sizeof(msg)), RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(msg, nxid(3)));
    msg[0] = '\0';
    assert_int_equal(schedule("worker", unknown, 2, msg, sizeof(msg)), RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(msg, nxid(9)));
    node_id ids[] = {nid(0)};
    msg[0] = '\0';
    pthread_mutex_lock(&M.lock);
    int rc = schedule_as((node_id){7, 7}, task_id("scheduler"), "worker", ids, 1, msg, sizeof(msg));
    pthread_mutex_unlock(&M.lock);
    assert_int_equal(rc, RPC_FAILED_PRECONDITION);
    assert_true(strlen(msg) > 10);
    expect_nothing();
    expect_status(RUN_RUNNING, 0, NULL);

    /* and a valid one still opens iteration 1, not a later one; duplicates count once */
    const int dup[] = {1, 1, 0};
    assert_int_equal(schedule("worker", dup, 3, msg, sizeof(msg)), RPC_OK);
    expect_deploys("worker", 1, 0x3);
    expect_status(RUN_RUNNING, 1, NULL);
}

static void heard(int node_i)
{
    pthread_mutex_lock(&M.lock);
    mgr_node_heard(&M, node(node_i));
    pthread_mutex_unlock(&M.lock);
}

/* A node that registered again (killed and restarted) is not heard on MQTT until it has
 * subscribed: ScheduleTask and the placement of a `method = all` task take it all the same
 * (a CI run of the chaos test saw ScheduleTask refused, "not connected", and the swarm fail),
 * and its commands are held until it is heard, then leave. */
static void test_node_not_heard_yet(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    int agg, sched;
    chain_to_scheduler(0x7, &agg, &sched);
    node(1)->ready = false; /* what RegisterNode does */
    char msg[256] = "";
    const int all[] = {0, 1, 2};
    assert_int_equal(schedule("worker", all, 3, msg, sizeof(msg)), RPC_OK);
    expect_deploys("worker", 1, 0x5);
    heard(1);
    expect_deploys("worker", 1, 0x2);
    heard(1); /* once */
    expect_nothing();

    for (int i = 0; i < 3; i++)
        finish(i, "worker", 1);
    assert_int_equal(expect_one_deploy("aggregator", 1), agg);
    int late = (agg + 1) % 3;
    node(late)->ready = false;
    finish(agg, "aggregator", 1);
    expect_deploys("tester", 1, 0x7 & ~(1u << late));
    heard(late);
    expect_deploys("tester", 1, 1u << late);
    expect_status(RUN_RUNNING, 1, NULL);
}

/* A node lost before it is heard never gets what was held for it; the runner deals with its
 * instances as with any lost node's. */
static void test_node_lost_before_heard(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    int agg, sched;
    chain_to_scheduler(0x7, &agg, &sched);
    int gone = (sched + 1) % 3;
    node(gone)->ready = false;
    char msg[256] = "";
    const int two[] = {sched, gone};
    assert_int_equal(schedule("worker", two, 2, msg, sizeof(msg)), RPC_OK);
    expect_deploys("worker", 1, 1u << sched);
    lose(gone);
    expect_nothing();
    assert_null(node(gone)->held_head);
    heard(gone); /* it comes back much later: nothing was kept for it */
    expect_nothing();
    finish(sched, "worker", 1);
    assert_int_equal(expect_one_deploy("aggregator", 1), agg);
}

/* A worker reports failure: FAILED naming the task and node, stop_swarm everywhere, the
 * others' finishes ignored. */
static void test_failed_instance(void **state)
{
    (void)state;
    start_chain_on_three();
    finish(0, "worker", 0);
    finished(1, "worker", 0, true, "exit code 3");
    expect_status(RUN_FAILED, 0, "'worker'", nxid(1), "exit code 3", NULL);
    expect_stops(0x7, false);
    finish(2, "worker", 0);
    expect_nothing();
    expect_status(RUN_FAILED, 0, "'worker'", NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(node(i)->running, 0);
}

/* SendError about the aggregator: FAILED with its content. */
static void test_task_error(void **state)
{
    (void)state;
    start_chain_on_three();
    for (int i = 0; i < 3; i++)
        finish(i, "worker", 0);
    int agg = expect_one_deploy("aggregator", 0);
    /* an error about an instance that does not exist changes nothing */
    task_error(agg, "tester", 0, "unrelated");
    expect_nothing();
    expect_status(RUN_RUNNING, 0, NULL);
    task_error(agg, "aggregator", 0, "Traceback: boom");
    expect_status(RUN_FAILED, 0, "'aggregator'", nxid(agg), "boom", NULL);
    expect_stops(0x7, false);
    finish(agg, "aggregator", 0);
    expect_nothing();
}

/* A deploy that reached its node twice (MQTT delivers at least once: a broker restart between
 * the delivery and its acknowledgement sends it again): the node refuses the second with
 * "already running", which is no failure, while the instance runs and after it finished. */
static void test_deploy_delivered_twice(void **state)
{
    (void)state;
    start_chain_on_three();
    char dup[160];
    snprintf(dup, sizeof(dup), "Task %s is already running for iteration 0 and circular 0",
             "0123456789abcdef0123456789abcdef");
    task_error(1, "worker", 0, dup);
    expect_nothing();
    expect_status(RUN_RUNNING, 0, NULL);
    for (int i = 0; i < 3; i++)
        finish(i, "worker", 0);
    int agg = expect_one_deploy("aggregator", 0);
    task_error(2, "worker", 0, dup); /* late: it had finished */
    expect_nothing();
    expect_status(RUN_RUNNING, 0, NULL);
    /* any other error still fails the swarm */
    task_error(agg, "aggregator", 0, "Traceback: boom");
    expect_status(RUN_FAILED, 0, "'aggregator'", "boom", NULL);
    expect_stops(0x7, false);
}

/* Logs arrive: a node that never reports outcomes counts as finished 2 s later (runner_tick);
 * one that does waits for its COMPLETED. */
static void test_logs_grace(void **state)
{
    (void)state;
    add_node(0, MNIST, false);
    add_node(1, MNIST, true);
    start("tick.toml");
    expect_deploys("a", 0, 0x3);
    pthread_mutex_lock(&M.lock);
    runner_task_logs(&M, SID, nid(0), task_id("a"), 0);
    runner_task_logs(&M, SID, nid(1), task_id("a"), 0);
    runner_task_logs(&M, SID, nid(1), task_id("b"), 0); /* no such instance: ignored */
    runner_tick(&M);
    pthread_mutex_unlock(&M.lock);
    expect_nothing();
    assert_int_equal(node(0)->running, 1);
    assert_int_equal(node(1)->running, 1);

    struct timespec ts = {2, 150 * 1000 * 1000};
    while (nanosleep(&ts, &ts) < 0)
        ;
    pthread_mutex_lock(&M.lock);
    runner_tick(&M);
    pthread_mutex_unlock(&M.lock);
    assert_int_equal(node(0)->running, 0); /* counted as finished */
    assert_int_equal(node(1)->running, 1); /* still waiting for its outcome */
    expect_nothing();
    expect_status(RUN_RUNNING, 0, NULL);

    /* the late COMPLETED of the instance already counted changes nothing */
    finish(0, "a", 0);
    expect_nothing();
    finish(1, "a", 0);
    int b = expect_one_deploy("b", 0);
    pthread_mutex_lock(&M.lock);
    runner_tick(&M);
    pthread_mutex_unlock(&M.lock);
    expect_nothing();
    finish(b, "b", 0);
    expect_status(RUN_COMPLETED, 0, NULL);
}

/* An "all" task loses a node: it goes on with the others. */
static void test_node_lost_all(void **state)
{
    (void)state;
    start_chain_on_three();
    lose(2);
    expect_nothing();
    expect_status(RUN_RUNNING, 0, NULL);
    assert_int_equal(node(2)->running, 0); /* its instance no longer loads it */
    finish(0, "worker", 0);
    expect_nothing();
    finish(1, "worker", 0);
    int agg = expect_one_deploy("aggregator", 0);
    assert_int_not_equal(agg, 2);
    finish(2, "worker", 0); /* the dropped instance: ignored */
    expect_nothing();
    finish(agg, "aggregator", 0);
    expect_deploys("tester", 0, 0x3);
    /* losing the node of the last pending instance completes the task */
    finish(0, "tester", 0);
    expect_nothing();
    lose(1);
    int sched = expect_one_deploy("scheduler", 0);
    assert_int_equal(sched, 0);
    expect_status(RUN_RUNNING, 0, NULL);
    /* the last node lost: nothing can take the scheduler, the run fails with a reason */
    lose(0);
    expect_status(RUN_FAILED, 0, "lost", "'scheduler'", NULL);
}

/* An "any" task loses its node: placed again elsewhere at the same iteration, and that node
 * is the task's fixed node from then on. */
static void test_node_lost_any(void **state)
{
    (void)state;
    start_chain_on_three();
    for (int i = 0; i < 3; i++)
        finish(i, "worker", 0);
    int agg = expect_one_deploy("aggregator", 0);
    assert_int_equal(agg, 0);
    lose(0);
    int agg2 = expect_one_deploy("aggregator", 0);
    assert_int_not_equal(agg2, 0);
    expect_status(RUN_RUNNING, 0, NULL);
    finish(0, "aggregator", 0); /* the lost node's instance: ignored */
    expect_nothing();
    finish(agg2, "aggregator", 0);
    expect_deploys("tester", 0, 0x6);
    finish(1, "tester", 0);
    finish(2, "tester", 0);
    int sched = expect_one_deploy("scheduler", 0);
    char msg[256];
    const int nodes[] = {1, 2};
    assert_int_equal(schedule("worker", nodes, 2, msg, sizeof(msg)), RPC_OK);
    expect_deploys("worker", 1, 0x6);
    finish(sched, "scheduler", 0);
    node(agg2)->running += 5; /* a fresh choice would avoid it */
    finish(1, "worker", 1);
    finish(2, "worker", 1);
    assert_int_equal(expect_one_deploy("aggregator", 1), agg2);
    node(agg2)->running -= 5;
    /* lost again at iteration 1: placed at iteration 1 */
    lose(agg2);
    assert_int_equal(expect_one_deploy("aggregator", 1), 3 - agg2);
    expect_status(RUN_RUNNING, 1, NULL);
}

/* A node is lost after its instance's logs arrived (within the grace of a node that does
 * not report outcomes): the instance ran to its end, so it counts as finished instead of
 * being placed again or dropped. */
static void test_node_lost_after_logs(void **state)
{
    (void)state;
    start_chain_on_three();
    for (int i = 0; i < 3; i++)
        finish(i, "worker", 0);
    int agg = expect_one_deploy("aggregator", 0);
    pthread_mutex_lock(&M.lock);
    runner_task_logs(&M, SID, nid(agg), task_id("aggregator"), 0);
    pthread_mutex_unlock(&M.lock);
    lose(agg);
    expect_deploys("tester", 0, 0x7 & ~(1u << agg));
    expect_status(RUN_RUNNING, 0, NULL);
    /* the testers' logs arrive, one node is lost before the grace ends: the task is over */
    pthread_mutex_lock(&M.lock);
    for (int i = 0; i < 3; i++)
        if (i != agg)
            runner_task_logs(&M, SID, nid(i), task_id("tester"), 0);
    pthread_mutex_unlock(&M.lock);
    int other = agg == 0 ? 1 : 0;
    finish(other, "tester", 0);
    expect_nothing();
    lose(3 - agg - other);
    assert_int_equal(expect_one_deploy("scheduler", 0), other);
}

/* An "any" task whose node is lost with no other eligible node: FAILED with the reason. */
static void test_node_lost_no_other(void **state)
{
    (void)state;
    add_node(0, MNIST, false);
    add_node(1, MNIST, false);
    add_node(2, MNIST_RARE, false);
    start("rare.toml");
    expect_deploys("a", 0, 0x4);
    lose(2);
    expect_status(RUN_FAILED, 0, "lost", nxid(2), "'a'", "rare", NULL);
    expect_stops(0x4, false);
    lose(1); /* nothing left to do */
    expect_nothing();
}

/* A start task no node can run: runner_start fails with the reason, status FAILED, and what
 * was already deployed is stopped. */
static void test_start_missing_dataset(void **state)
{
    (void)state;
    add_node(0, MNIST, false);
    add_node(1, MNIST, false);
    cleanup_free char *msg = NULL;
    assert_int_equal(start_rc("nowhere.toml", &msg), -1);
    assert_non_null(strstr(msg, "'nowhere'"));
    assert_non_null(strstr(msg, "'a'"));
    expect_status(RUN_FAILED, 0, "'nowhere'", NULL);
    /* every node that got a deploy gets a stop_swarm after it */
    sent s[MAXSENT];
    size_t n = drain(s);
    unsigned deployed = 0, stopped = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s[i].cmd, "deploy_task")) {
            assert_int_equal(stopped & (1u << s[i].node), 0);
            deployed |= 1u << s[i].node;
        } else {
            stopped |= 1u << s[i].node;
        }
    }
    assert_int_equal(deployed, stopped);
    for (int i = 0; i < 2; i++)
        assert_int_equal(node(i)->running, 0);
}

/* Two start tasks before one: it deploys once, when both are complete (in either order). */
static void test_fan_in(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        add_node(i, MNIST, false);
    for (int round = 0; round < 2; round++) {
        start("fanin.toml");
        sent s[MAXSENT];
        size_t n = drain(s);
        assert_int_equal(n, 4);
        int b = -1;
        unsigned a = 0;
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(s[i].cmd, "deploy_task");
            assert_int_equal(s[i].iteration, 0);
            if (!strcmp(s[i].alias, "a"))
                a |= 1u << s[i].node;
            else if (!strcmp(s[i].alias, "b") && b < 0)
                b = s[i].node;
            else
                fail_msg("unexpected deploy of %s", s[i].alias);
        }
        assert_int_equal(a, 0x7);
        assert_true(b >= 0);
        if (round == 0) {
            finish(b, "b", 0);
            expect_nothing();
            finish(0, "a", 0);
            finish(1, "a", 0);
            expect_nothing();
            finish(2, "a", 0);
        } else {
            for (int i = 0; i < 3; i++)
                finish(i, "a", 0);
            expect_nothing();
            finish(b, "b", 0);
        }
        int c = expect_one_deploy("c", 0);
        finish(b, "b", 0);
        finish(1, "a", 0);
        expect_nothing();
        expect_status(RUN_RUNNING, 0, NULL);
        if (round == 1) {
            /* c opens iteration 1 for a only: c then follows a alone (b is not in it) */
            char msg[256];
            node_id ids[] = {nid(0), nid(1)};
            pthread_mutex_lock(&M.lock);
            assert_int_equal(schedule_as(SID, task_id("c"), "a", ids, 2, msg, sizeof(msg)), RPC_OK);
            pthread_mutex_unlock(&M.lock);
            expect_deploys("a", 1, 0x3);
            finish(c, "c", 0);
            finish(0, "a", 1);
            expect_nothing();
            finish(1, "a", 1);
            c = expect_one_deploy("c", 1);
            expect_status(RUN_RUNNING, 1, NULL);
            finish(c, "c", 1);
            expect_status(RUN_COMPLETED, 1, NULL);
        } else {
            finish(c, "c", 0);
            expect_status(RUN_COMPLETED, 0, NULL);
        }
        expect_stops(0x7 | (1u << b) | (1u << c), false);
    }
}

/* A join listed before one of its previous tasks still waits for it. */
static void test_diamond(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        add_node(i, MNIST, false);
    start("diamond.toml");
    int a = expect_one_deploy("a", 0);
    finish(a, "a", 0);
    int b = expect_one_deploy("b", 0);
    /* the same at iteration 1, opened for a while c of iteration 0 waits */
    char msg[256];
    node_id ids[] = {nid(1)};
    pthread_mutex_lock(&M.lock);
    assert_int_equal(schedule_as(SID, task_id("b"), "a", ids, 1, msg, sizeof(msg)), RPC_OK);
    pthread_mutex_unlock(&M.lock);
    expect_deploys("a", 1, 0x2);
    finish(b, "b", 0);
    int c = expect_one_deploy("c", 0);
    finish(c, "c", 0);
    expect_nothing();
    finish(1, "a", 1);
    b = expect_one_deploy("b", 1);
    finish(b, "b", 1);
    c = expect_one_deploy("c", 1);
    finish(c, "c", 1);
    expect_status(RUN_COMPLETED, 1, NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_chain_iteration0_completes),
        T(test_chain_schedule_next_iteration),
        T(test_stop),
        T(test_stop_mid_task),
        T(test_schedule_errors),
        T(test_node_not_heard_yet),
        T(test_node_lost_before_heard),
        T(test_failed_instance),
        T(test_task_error),
        T(test_deploy_delivered_twice),
        T(test_logs_grace),
        T(test_node_lost_all),
        T(test_node_lost_any),
        T(test_node_lost_after_logs),
        T(test_node_lost_no_other),
        T(test_start_missing_dataset),
        T(test_fan_in),
        T(test_diamond),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
