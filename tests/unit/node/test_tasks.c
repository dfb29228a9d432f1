/* test_tasks.c - the task state machine against the fake runtime driver: deploy, queue and
 * concurrency cap, queue limit, exit and log upload (the blob decoded), timeout, stop_task,
 * stop_swarm, re-deploy, GPU refusal, start failure, upload retry, recovery after a restart,
 * a kill around a finished task's removal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fsutil.h"
#include "log.h"
#include "mem.h"
#include "runtime_fake.h"
#include "tasklog.h"
#include "tasks.h"

/* ---- a synchronous world ---- */

struct posted {
    void (*fn)(void *);
    void *arg;
};

static struct world {
    struct posted q[256];
    size_t nq;
    int updates[64]; /* statuses published, in order */
    size_t nupdates;
    int errors[64];
    char last_error[512];
    size_t nerrors;
    uint8_t *blobs[16];
    size_t blob_len[16];
    size_t nblobs;
    int fail_uploads; /* fail this many uploads first */
} W;

static void h_publish(void *ctx, const task *t)
{
    W.updates[W.nupdates++] = t->status;
}

static void h_error(void *ctx, int id, const task *t, const char *msg)
{
    W.errors[W.nerrors++] = id;
    snprintf(W.last_error, sizeof(W.last_error), "%s", msg);
}

/* keep_output: the outbox keeps the logs, then publishes the outcome once they are delivered;
 * here both happen at once, in that order. */
static int h_keep(void *ctx, const uint8_t *blob, size_t len, const tasklog_header *hdr,
                  int final_status, mt_error **err)
{
    if (W.fail_uploads > 0) {
        W.fail_uploads--;
        return mt_error_set(err, MT_ERR_IO, "disk full");
    }
    W.blobs[W.nblobs] = xmalloc(len);
    memcpy(W.blobs[W.nblobs], blob, len);
    W.blob_len[W.nblobs++] = len;
    if (final_status)
        W.updates[W.nupdates++] = final_status;
    return 0;
}

static void h_spawn(void *ctx, void (*fn)(void *), void *arg)
{
    fn(arg); /* runs the blocking step now; its outcome is posted */
}

static void h_post(void *ctx, void (*fn)(void *), void *arg)
{
    W.q[W.nq++] = (struct posted){fn, arg};
}

static void h_log(void *ctx, int level, const char *fmt, ...) {}

static void pump(void)
{
    for (int rounds = 0; W.nq && rounds < 100; rounds++) {
        struct posted p = W.q[0];
        memmove(W.q, W.q + 1, (W.nq - 1) * sizeof(W.q[0]));
        W.nq--;
        p.fn(p.arg);
    }
}

static const task_hooks HOOKS = {NULL, h_publish, h_error, h_keep, h_spawn, h_post, h_log, NULL};
static char dir[64];
static const node_id SELF = {0x1111, 0x2222};

static task_limits limits(int max, int queue)
{
    task_limits l = {.max_concurrent = max,
                     .queue_limit = queue,
                     .log_limit = 1 << 20,
                     .pull_timeout = 5,
                     .stop_grace_s = 1,
                     .cleanup_on_failure = true};
    return l;
}

static task_table *table(runtime *rt, const task_limits *l)
{
    static const char *names[] = {"mnist"}, *paths[] = {"/data/mnist"};
    task_env env = {"127.0.0.1", 41234, 1, names, paths, false};
    return tasks_new(rt, SELF, dir, l, &env, &HOOKS);
}

static void deploy(task_table *tt, uint64_t swarm, uint64_t id, uint32_t iter, const char *image,
                   bool gpu)
{
    Common__Tasks__MqttTask m = COMMON__TASKS__MQTT_TASK__INIT;
    Common__System__PairId s = COMMON__SYSTEM__PAIR_ID__INIT, t = COMMON__SYSTEM__PAIR_ID__INIT;
    s.tail = swarm;
    t.tail = id;
    m.swarm_id = &s;
    m.task_id = &t;
    m.iteration = iter;
    m.image = (char *)image;
    m.gpu = gpu;
    m.payload.data = (uint8_t *)"PK-payload";
    m.payload.len = 10;
    tasks_deploy(tt, &m);
    pump();
}

static const task *find(task_table *tt, uint64_t swarm, uint64_t id)
{
    return tasks_find(tt, (node_id){0, swarm}, (node_id){0, id});
}

static int setup(void **state)
{
    memset(&W, 0, sizeof(W));
    snprintf(dir, sizeof(dir), "/tmp/manta-test-tasks-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < W.nblobs; i++)
        free(W.blobs[i]);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tick(task_table *tt)
{
    tasks_tick(tt);
    pump();
}

static void test_deploy_run_exit_upload(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(2, 4);
    task_table *tt = table(rt, &l);
    deploy(tt, 0xa, 0xb, 1, "img:1", false);
    const task *t = find(tt, 0xa, 0xb);
    assert_non_null(t);
    assert_int_equal(W.nupdates, 2);
    assert_int_equal(W.updates[0], TASK_PENDING);
    assert_int_equal(W.updates[1], TASK_RUNNING);
    assert_int_equal(t->phase, PHASE_RUNNING);
    assert_string_equal(runtime_fake_env(rt, t->name, "TASK_ID"), "0b");
    assert_string_equal(runtime_fake_env(rt, t->name, "SWARM_ID"), "0a");
    assert_string_equal(runtime_fake_env(rt, t->name, "RPC_HOST"), "127.0.0.1");
    assert_string_equal(runtime_fake_env(rt, t->name, "RPC_PORT"), "41234");
    /* the payload is on disk for the runtime to mount */
    cleanup_free char *mod = xasprintf("%s/module-1.pyz", t->workdir);
    cleanup_free char *body = fs_read_file(mod, 100, NULL, NULL);
    assert_string_equal(body, "PK-payload");

    runtime_fake_output(rt, t->name, "hello from the task\n");
    assert_true(runtime_fake_exit(rt, t->name, 0, false));
    tick(tt);
    assert_int_equal(t->phase, PHASE_DONE);
    assert_int_equal(t->status, TASK_COMPLETED);
    assert_string_equal(t->reason, "exited");
    assert_int_equal(W.nblobs, 1);
    tasklog_header h;
    uint8_t *logs;
    size_t n;
    mt_error *e = NULL;
    assert_int_equal(tasklog_decode(W.blobs[0], W.blob_len[0], &h, &logs, &n, 1 << 20, &e), 0);
    assert_string_equal((char *)logs, "hello from the task\n");
    assert_true(h.swarm.tail == 0xa && h.task.tail == 0xb && h.node.tail == 0x2222);
    assert_int_equal(h.iteration, 1);
    free(logs);
    assert_int_equal(runtime_fake_running(rt), 0);
    /* the logs first (the reference's only signal), then the outcome, which it never tells */
    assert_int_equal(W.nupdates, 3);
    assert_int_equal(W.updates[2], TASK_COMPLETED);
    tasks_free(tt);
    runtime_free(rt);
}

static void test_concurrency_cap_and_queue_limit(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(2, 1);
    task_table *tt = table(rt, &l);
    deploy(tt, 1, 1, 0, "i", false);
    deploy(tt, 1, 2, 0, "i", false);
    deploy(tt, 1, 3, 0, "i", false);
    assert_int_equal(runtime_fake_running(rt), 2);
    assert_int_equal(find(tt, 1, 3)->phase, PHASE_QUEUED);
    deploy(tt, 1, 4, 0, "i", false); /* queue full */
    assert_null(find(tt, 1, 4));
    assert_int_equal(W.errors[W.nerrors - 1], 19);
    assert_non_null(strstr(W.last_error, "tasks.queue_limit"));
    runtime_fake_exit(rt, find(tt, 1, 1)->name, 0, false);
    tick(tt);
    assert_int_equal(find(tt, 1, 3)->phase, PHASE_RUNNING); /* first come, first served */
    assert_int_equal(runtime_fake_running(rt), 2);
    tasks_free(tt);
    runtime_free(rt);
}

static void test_timeout_oom_stop_and_errors(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(4, 4);
    l.timeout_s = 1;
    task_table *tt = table(rt, &l);
    deploy(tt, 2, 1, 0, "i", false);
    sleep(1);
    usleep(100000);
    tick(tt); /* past the deadline: stopped and reported */
    const task *t = find(tt, 2, 1);
    assert_string_equal(t->reason, "timed out");
    assert_int_equal(t->phase, PHASE_DONE);
    assert_int_equal(t->status, TASK_FAILED);
    assert_int_equal(W.nblobs, 1);

    deploy(tt, 2, 2, 0, "i", false);
    runtime_fake_exit(rt, find(tt, 2, 2)->name, 137, true);
    tick(tt);
    assert_string_equal(find(tt, 2, 2)->reason, "oom-killed");
    assert_true(find(tt, 2, 2)->oom_killed);

    deploy(tt, 2, 3, 0, "i", false);
    size_t before = W.nupdates;
    tasks_stop(tt, (node_id){0, 2}, (node_id){0, 3});
    pump();
    assert_int_equal(W.updates[before], TASK_STOPPED);
    assert_int_equal(find(tt, 2, 3)->phase, PHASE_DONE);
    assert_string_equal(find(tt, 2, 3)->reason, "stopped");

    tasks_stop(tt, (node_id){0, 9}, (node_id){0, 9});
    assert_non_null(strstr(W.last_error, "Unable to stop task"));

    deploy(tt, 2, 4, 0, "i", true); /* GPU on a node without GPUs */
    assert_int_equal(W.errors[W.nerrors - 1], 18);
    assert_string_equal(W.last_error, "GPU support is not enabled for this container manager.");
    assert_null(find(tt, 2, 4));

    runtime_fake_fail_next(rt, "No such image: nope");
    deploy(tt, 2, 5, 0, "nope", false);
    assert_int_equal(find(tt, 2, 5)->status, TASK_FAILED);
    assert_non_null(strstr(W.last_error, "No such image: nope"));
    tasks_free(tt);
    runtime_free(rt);
}

static void test_redeploy_and_stop_swarm(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(4, 4);
    task_table *tt = table(rt, &l);
    deploy(tt, 3, 1, 1, "img:1", false);
    deploy(tt, 3, 1, 1, "img:1", false); /* same iteration */
    assert_non_null(strstr(W.last_error, "is already running for iteration 1 and circular 0"));
    runtime_fake_exit(rt, find(tt, 3, 1)->name, 0, false);
    tick(tt);
    deploy(tt, 3, 1, 2, "img:2", false); /* the next iteration runs the NEW image/payload */
    tick(tt);
    const task *t = find(tt, 3, 1);
    assert_int_equal(t->iteration, 2);
    assert_int_equal(t->generation, 2);
    assert_string_equal(t->image, "img:2");
    assert_int_equal(t->phase, PHASE_RUNNING);
    assert_int_equal(runtime_fake_created(rt), 2);
    deploy(tt, 3, 2, 1, "img:1", false);
    tasks_stop_swarm(tt, (node_id){0, 3});
    pump();
    tick(tt);
    assert_null(find(tt, 3, 1));
    assert_null(find(tt, 3, 2));
    assert_int_equal(runtime_fake_running(rt), 0);
    tasks_free(tt);
    runtime_free(rt);
}

static void test_upload_retry_and_recovery(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(4, 4);
    task_table *tt = table(rt, &l);
    deploy(tt, 4, 1, 0, "i", false);
    deploy(tt, 4, 2, 0, "i", false);
    cleanup_free char *n1 = xstrdup(find(tt, 4, 1)->name);
    cleanup_free char *n2 = xstrdup(find(tt, 4, 2)->name);
    W.fail_uploads = 1;
    runtime_fake_exit(rt, n1, 3, false);
    tick(tt);
    assert_int_equal(find(tt, 4, 1)->phase, PHASE_COLLECTING); /* upload failed */
    assert_int_equal(W.nblobs, 0);
    tick(tt);
    assert_int_equal(find(tt, 4, 1)->phase, PHASE_DONE);
    assert_int_equal(find(tt, 4, 1)->status, TASK_FAILED);
    assert_int_equal(find(tt, 4, 1)->exit_code, 3);
    assert_int_equal(W.nblobs, 1);

    /* "crash": forget the table; task 2 finishes while the node is away */
    tasks_free(tt);
    runtime_fake_exit(rt, n2, 0, false);
    task_limits l2 = limits(4, 4);
    tt = table(rt, &l2);
    tasks_recover(tt);
    pump();
    tick(tt);
    assert_int_equal(find(tt, 4, 2)->phase, PHASE_DONE);
    assert_int_equal(W.nblobs, 2); /* its logs, once */
    assert_int_equal(find(tt, 4, 1)->phase, PHASE_DONE);
    tick(tt);
    tick(tt);
    assert_int_equal(W.nblobs, 2); /* and not again */
    tasks_free(tt);

    /* a running task is adopted, and then finishes normally */
    tt = table(rt, &l2);
    deploy(tt, 5, 1, 0, "i", false);
    cleanup_free char *n3 = xstrdup(find(tt, 5, 1)->name);
    tasks_free(tt);
    tt = table(rt, &l2);
    tasks_recover(tt);
    pump();
    assert_int_equal(find(tt, 5, 1)->phase, PHASE_RUNNING);
    runtime_fake_exit(rt, n3, 0, false);
    tick(tt);
    assert_int_equal(find(tt, 5, 1)->phase, PHASE_DONE);
    tasks_free(tt);
    runtime_free(rt);
}

/* The node died inside a create (its state says STARTING, no handle came out): the task is
 * reported lost, and what the create left of its run is reclaimed by the runtime. */
static void test_recovery_reclaims_a_create_cut_short(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(4, 4);
    task_table *tt = table(rt, &l);
    deploy(tt, 6, 1, 0, "i", false);
    const task *t = find(tt, 6, 1);
    assert_int_equal(t->phase, PHASE_RUNNING);
    cleanup_free char *taskdir = xstrdup(t->workdir);
    cleanup_free char *want = xasprintf("%s/run-%u", taskdir, t->generation);
    tasks_free(tt);
    /* the state file as it was while the create ran */
    cleanup_free char *path = fs_join(taskdir, "task.json");
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    assert_non_null(o);
    json_object_set_new(o, "handle", json_null());
    json_object_set_new(o, "phase", json_integer(PHASE_STARTING));
    assert_int_equal(json_dump_file(o, path, 0), 0);
    json_decref(o);
    int n = 0;
    assert_null(runtime_fake_reclaimed(rt, &n));
    tt = table(rt, &l);
    tasks_recover(tt);
    pump();
    assert_string_equal(runtime_fake_reclaimed(rt, &n), want);
    assert_int_equal(n, 1);
    assert_non_null(strstr(W.last_error, "restarted before this task could start"));
    assert_int_equal(find(tt, 6, 1)->phase, PHASE_DONE);
    assert_int_equal(find(tt, 6, 1)->status, TASK_FAILED);
    assert_int_equal(runtime_fake_running(rt), 0); /* its orphan was removed */
    tasks_free(tt);
    runtime_free(rt);
}

/* The node is killed the moment a finished task's container goes: the state it leaves on disk
 * must already say the output was kept, or the next run collects it again from a container
 * that is gone ("output not available") and the manager stores the task's logs twice. */
static bool snapshot_on_remove(void *ctx, const char *handle)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s.snap' && cp -a '%s' '%s.snap'", dir, dir, dir);
    return system(cmd) == 0;
}

static bool cut_short(void *ctx, const char *handle)
{
    return false;
}

static void test_a_kill_around_the_removal_keeps_the_output_once(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(4, 4);
    task_table *tt = table(rt, &l);
    deploy(tt, 7, 1, 0, "i", false);
    cleanup_free char *name = xstrdup(find(tt, 7, 1)->name);
    runtime_fake_output(rt, name, "the only output\n");
    runtime_fake_on_remove(rt, snapshot_on_remove, NULL);
    runtime_fake_exit(rt, name, 0, false);
    tick(tt);
    assert_int_equal(W.nblobs, 1);
    assert_int_equal(runtime_fake_count(rt), 0); /* its container went */
    tasks_free(tt);
    /* the next run starts from the disk as it was when the container went */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mv '%s.snap' '%s'", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    runtime_fake_on_remove(rt, NULL, NULL);
    tt = table(rt, &l);
    tasks_recover(tt);
    pump();
    tick(tt);
    tick(tt);
    assert_int_equal(W.nblobs, 1);  /* not collected again */
    assert_int_equal(W.nerrors, 0); /* nor reported lost */
    assert_int_equal(find(tt, 7, 1)->phase, PHASE_DONE);
    assert_int_equal(find(tt, 7, 1)->status, TASK_COMPLETED);

    /* killed after keeping the output, before the removal: the next run removes it */
    deploy(tt, 7, 2, 0, "i", false);
    cleanup_free char *name2 = xstrdup(find(tt, 7, 2)->name);
    runtime_fake_on_remove(rt, cut_short, NULL);
    runtime_fake_exit(rt, name2, 0, false);
    tick(tt);
    assert_int_equal(W.nblobs, 2);
    assert_int_equal(runtime_fake_count(rt), 1);
    tasks_free(tt);
    runtime_fake_on_remove(rt, NULL, NULL);
    tt = table(rt, &l);
    tasks_recover(tt);
    pump();
    tick(tt);
    assert_int_equal(runtime_fake_count(rt), 0);
    assert_int_equal(W.nblobs, 2);
    assert_int_equal(find(tt, 7, 2)->status, TASK_COMPLETED);
    tasks_free(tt);
    runtime_free(rt);
}

/* A swarm stopped while a failed task's output is being kept (cleanup_on_failure off): once kept,
 * its container goes and the task is forgotten, as for one stopped after it was done. */
static void test_a_swarm_stopped_while_collecting_leaves_nothing(void **state)
{
    runtime *rt = runtime_fake_new();
    task_limits l = limits(4, 4);
    l.cleanup_on_failure = false;
    task_table *tt = table(rt, &l);
    deploy(tt, 8, 1, 0, "i", false);
    cleanup_free char *name = xstrdup(find(tt, 8, 1)->name);
    W.fail_uploads = 1;
    runtime_fake_exit(rt, name, 2, false);
    tick(tt);
    assert_int_equal(find(tt, 8, 1)->phase, PHASE_COLLECTING); /* keeping it failed once */
    tasks_stop_swarm(tt, (node_id){0, 8});
    pump();
    tick(tt);
    assert_int_equal(W.nblobs, 1);
    assert_null(find(tt, 8, 1));
    assert_int_equal(runtime_fake_count(rt), 0);
    tasks_free(tt);
    runtime_free(rt);
}

/* ---- with real threads: a slow pull delays only its own task ---- */

static pthread_mutex_t tq_mu = PTHREAD_MUTEX_INITIALIZER;

struct thread_arg {
    void (*fn)(void *);
    void *arg;
};

static void *thread_main(void *p)
{
    struct thread_arg *t = p;
    t->fn(t->arg);
    free(t);
    return NULL;
}

static void t_spawn(void *ctx, void (*fn)(void *), void *arg)
{
    struct thread_arg *t = xmalloc(sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_main, t), 0);
    pthread_detach(th);
}

static void t_post(void *ctx, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&tq_mu);
    W.q[W.nq++] = (struct posted){fn, arg};
    pthread_mutex_unlock(&tq_mu);
}

static void t_pump(void)
{
    for (;;) {
        pthread_mutex_lock(&tq_mu);
        if (!W.nq) {
            pthread_mutex_unlock(&tq_mu);
            return;
        }
        struct posted p = W.q[0];
        memmove(W.q, W.q + 1, (W.nq - 1) * sizeof(W.q[0]));
        W.nq--;
        pthread_mutex_unlock(&tq_mu);
        p.fn(p.arg);
    }
}

/* A table whose steps run on real threads and post back through t_post (pumped by t_pump). */
static task_table *threaded_table(runtime *rt, const task_limits *l)
{
    static const char *names[] = {NULL}, *paths[] = {NULL};
    task_env env = {"127.0.0.1", 41234, 0, names, paths, false};
    task_hooks h = {NULL, h_publish, h_error, h_keep, t_spawn, t_post, h_log, NULL};
    return tasks_new(rt, SELF, dir, l, &env, &h);
}

static void test_slow_pull_delays_only_its_task(void **state)
{
    runtime *rt = runtime_fake_new();
    runtime_fake_slow_image(rt, "huge:1");
    task_limits l = limits(4, 4);
    task_table *tt = threaded_table(rt, &l);
    Common__Tasks__MqttTask m = COMMON__TASKS__MQTT_TASK__INIT;
    Common__System__PairId s = COMMON__SYSTEM__PAIR_ID__INIT, a = COMMON__SYSTEM__PAIR_ID__INIT,
                           b = COMMON__SYSTEM__PAIR_ID__INIT;
    s.tail = 7;
    a.tail = 1;
    b.tail = 2;
    m.swarm_id = &s;
    m.payload.data = (uint8_t *)"x";
    m.payload.len = 1;
    m.task_id = &a;
    m.image = "huge:1"; /* its pull hangs */
    tasks_deploy(tt, &m);
    m.task_id = &b;
    m.image = "small:1";
    tasks_deploy(tt, &m);
    const task *ta = tasks_find(tt, (node_id){0, 7}, (node_id){0, 1});
    const task *tb = tasks_find(tt, (node_id){0, 7}, (node_id){0, 2});
    for (int i = 0; i < 200 && tb->phase != PHASE_RUNNING; i++) {
        usleep(10000);
        t_pump();
    }
    assert_int_equal(tb->phase, PHASE_RUNNING); /* B started while A's pull hangs */
    assert_int_equal(ta->phase, PHASE_STARTING);
    runtime_fake_release_pulls(rt);
    for (int i = 0; i < 200 && ta->phase != PHASE_RUNNING; i++) {
        usleep(10000);
        t_pump();
    }
    assert_int_equal(ta->phase, PHASE_RUNNING);
    tasks_free(tt);
    runtime_free(rt);
}

/* Exits come as events (tasks_exited), the inspection is only a slow safety net; a stop asked
 * for while a task is still starting (its pull) is not lost when the start returns. */
static void test_exit_events_and_stop_while_starting(void **state)
{
    runtime *rt = runtime_fake_new();
    runtime_fake_slow_image(rt, "huge:1");
    task_limits l = limits(4, 4);
    task_table *tt = threaded_table(rt, &l);
    tasks_set_inspect_interval(tt, 3600 * 1000);
    tasks_tick(tt); /* the first tick's inspection; the next is an hour away */
    Common__Tasks__MqttTask m = COMMON__TASKS__MQTT_TASK__INIT;
    Common__System__PairId s = COMMON__SYSTEM__PAIR_ID__INIT, a = COMMON__SYSTEM__PAIR_ID__INIT,
                           s2 = COMMON__SYSTEM__PAIR_ID__INIT, b = COMMON__SYSTEM__PAIR_ID__INIT;
    s.tail = 7;
    a.tail = 1;
    s2.tail = 8;
    b.tail = 2;
    m.payload.data = (uint8_t *)"x";
    m.payload.len = 1;
    m.swarm_id = &s;
    m.task_id = &a;
    m.image = "huge:1"; /* its pull hangs */
    tasks_deploy(tt, &m);
    m.swarm_id = &s2;
    m.task_id = &b;
    m.image = "small:1";
    tasks_deploy(tt, &m);
    const task *ta = tasks_find(tt, (node_id){0, 7}, (node_id){0, 1});
    const task *tb = tasks_find(tt, (node_id){0, 8}, (node_id){0, 2});
    for (int i = 0; i < 200 && tb->phase != PHASE_RUNNING; i++) {
        usleep(10000);
        t_pump();
    }
    assert_int_equal(tb->phase, PHASE_RUNNING);

    /* B exits: ticks do not notice (no inspection due), the event does */
    assert_true(runtime_fake_exit(rt, tb->name, 0, false));
    for (int i = 0; i < 5; i++) {
        tasks_tick(tt);
        usleep(10000);
        t_pump();
    }
    assert_int_equal(tb->phase, PHASE_RUNNING);
    tasks_exited(tt, "no-such-handle"); /* unknown: kept, harmless */
    tasks_exited(tt, tb->handle);
    for (int i = 0; i < 200 && tb->phase != PHASE_DONE; i++) {
        usleep(10000);
        t_pump();
    }
    assert_int_equal(tb->phase, PHASE_DONE);
    assert_int_equal(tb->status, TASK_COMPLETED);

    /* A is inside its pull: stop its swarm, then let the pull finish */
    assert_int_equal(ta->phase, PHASE_STARTING);
    tasks_stop_swarm(tt, (node_id){0, 7});
    runtime_fake_release_pulls(rt);
    for (int i = 0; i < 300 && tasks_find(tt, (node_id){0, 7}, (node_id){0, 1}); i++) {
        usleep(10000);
        t_pump();
        tasks_tick(tt);
    }
    assert_null(tasks_find(tt, (node_id){0, 7}, (node_id){0, 1})); /* stopped and forgotten */
    assert_int_equal(runtime_fake_running(rt), 0);
    for (int i = 0; i < 50; i++) { /* the folder removals still in flight */
        usleep(10000);
        t_pump();
    }
    tasks_free(tt);
    runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deploy_run_exit_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency_cap_and_queue_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_oom_stop_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redeploy_and_stop_swarm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_retry_and_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_reclaims_a_create_cut_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_kill_around_the_removal_keeps_the_output_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_swarm_stopped_while_collecting_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_pull_delays_only_its_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_events_and_stop_while_starting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
