/* test_light.c - the light service's registry of tasks (light.h): a call from a task the node
 * does not run is refused, and while a restarted node is adopting the tasks of its last run
 * (light_host.adopting) a call from one of them waits for the adoption instead of being refused:
 * a task retrying across a restart of its node may reach the new light service before the node
 * has read its task table (seen in a CI run of the chaos test: the task exited with an error).
 * The calls are real gRPC calls (Local/ListDir of a folder dataset) over loopback. */
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

#include "datasets.h"
#include "light.h"
#include "rpc.h"
#include "wire.h"

#include "node/light_service.pb-c.h"

static const node_id SWARM = {0x1111, 0x2222};
static const node_id TASK = {0x3333, 0x4444};
static const node_id NODE = {0x5555, 0x6666};

typedef struct fixture {
    struct light_service *ls;
    int port;
} fixture;

static char dir[64]; /* the folder dataset "here": one file, "a" */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/manta-test-light-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char path[96];
    snprintf(path, sizeof(path), "%s/a", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fclose(fp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void start(fixture *f, bool adopting)
{
    memset(f, 0, sizeof(*f));
    dataset d = {.key = "here",
                 .path = dir,
                 .is_dir = true,
                 .name = "here",
                 .description = "Folder in here",
                 .dtype = "folder"};
    dataset_set datasets = {1, &d}; /* copied by the service */
    light_host h = {.id = NODE,
                    .host = "127.0.0.1",
                    .max_tasks = 2,
                    .datasets = &datasets,
                    .adopting = adopting};
    mt_error *e = NULL;
    f->ls = light_start(&h, &f->port, &e);
    if (!f->ls)
        fail_msg("light_start: %s", mt_error_msg(e));
    assert_true(f->port > 0);
}

/* One Local/ListDir call in the name of (SWARM, task) on its own thread. */
typedef struct call {
    int port;
    node_id task;
    pthread_t th;
    int done; /* atomic */
    rpc_status st;
    size_t entries;
} call;

static void *call_main(void *arg)
{
    call *c = arg;
    Common__System__PairId swarm_pb, task_pb;
    wire_pair_id(&swarm_pb, SWARM);
    wire_pair_id(&task_pb, c->task);
    Node__LightService__DataRequest dr = NODE__LIGHT_SERVICE__DATA_REQUEST__INIT;
    dr.swarm_id = &swarm_pb;
    dr.task_id = &task_pb;
    dr.name = "here";
    Node__LightService__DirRequest req = NODE__LIGHT_SERVICE__DIR_REQUEST__INIT;
    req.data_request = &dr;
    req.path = "";
    size_t len = 0;
    uint8_t *buf = wire_pack(&req.base, &len);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", c->port);
    mt_error *e = NULL;
    rpc_channel *ch = rpc_channel_new(target, NULL, &e);
    if (!ch) {
        c->st.code = -1;
        snprintf(c->st.message, sizeof(c->st.message), "%s", mt_error_msg(e));
        mt_error_free(&e);
    } else {
        rpc_bytes resp = {0};
        if (rpc_unary(ch, "/node.light_service.Local/ListDir", NULL, 0, buf, len, 60000, &resp,
                      &c->st) == 0) {
            Node__LightService__ListDirResponse *r =
                node__light_service__list_dir_response__unpack(NULL, resp.len, resp.data);
            c->entries = r ? r->n_paths : 0;
            node__light_service__list_dir_response__free_unpacked(r, NULL);
        }
        rpc_bytes_free(&resp);
        rpc_channel_free(ch);
    }
    free(buf);
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void call_start(call *c, int port, node_id task)
{
    memset(c, 0, sizeof(*c));
    c->port = port;
    c->task = task;
    assert_int_equal(pthread_create(&c->th, NULL, call_main, c), 0);
}

static void call_join(call *c)
{
    pthread_join(c->th, NULL);
}

/* One call made and waited for: its status code (*entries: what ListDir listed). */
static int call_code(const fixture *f, node_id task, size_t *entries)
{
    call c;
    call_start(&c, f->port, task);
    call_join(&c);
    if (entries)
        *entries = c.entries;
    return c.st.code;
}

/* The call is still waiting after `ms` (it cannot have an answer: nothing it waits for happened).
 */
static void assert_waiting(call *c, int ms)
{
    usleep((useconds_t)ms * 1000);
    assert_int_equal(__atomic_load_n(&c->done, __ATOMIC_ACQUIRE), 0);
}

/* A service adopting (tasks set: `adopted`) and a call of `task` to it, shown to be waiting. */
static void start_with_a_waiting_call(fixture *f, const node_id *adopted, size_t n, call *c,
                                      node_id task)
{
    start(f, true);
    for (size_t i = 0; i < n; i++)
        light_task_set(f->ls, SWARM, adopted[i], 1, 0, 0);
    call_start(c, f->port, task);
    assert_waiting(c, 300);
}

static void test_known_task_answered_unknown_refused(void **state)
{
    (void)state;
    fixture f;
    start(&f, false);
    call c;
    call_start(&c, f.port, TASK);
    call_join(&c);
    assert_int_equal(c.st.code, RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(c.st.message, "not a task of this node"));
    light_task_set(f.ls, SWARM, TASK, 3, 0, 0);
    size_t entries = 0;
    assert_int_equal(call_code(&f, TASK, &entries), RPC_OK);
    assert_int_equal(entries, 1);
    light_task_clear(f.ls, SWARM, TASK);
    assert_int_equal(call_code(&f, TASK, NULL), RPC_FAILED_PRECONDITION);
    light_stop(f.ls);
}

static void test_call_waits_for_the_adoption(void **state)
{
    (void)state;
    fixture f;
    call c;
    start_with_a_waiting_call(&f, NULL, 0, &c, TASK);
    /* what tasks_recover does for a task still running, then the agent says it is done */
    light_task_set(f.ls, SWARM, TASK, 1, 0, 0);
    light_tasks_known(f.ls);
    call_join(&c);
    assert_int_equal(c.st.code, RPC_OK);
    assert_int_equal(c.entries, 1);
    light_stop(f.ls);
}

static void test_a_stranger_is_refused_once_the_adoption_ends(void **state)
{
    (void)state;
    fixture f;
    node_id other = {0x7777, 0x8888};
    call stranger;
    start_with_a_waiting_call(&f, &TASK, 1, &stranger, other);
    assert_int_equal(call_code(&f, TASK, NULL), RPC_OK); /* adopted already: at once */
    light_tasks_known(f.ls);
    call_join(&stranger);
    assert_int_equal(stranger.st.code, RPC_FAILED_PRECONDITION);
    assert_int_equal(call_code(&f, other, NULL), RPC_FAILED_PRECONDITION); /* now at once */
    light_stop(f.ls);
}

static void test_stop_ends_a_wait(void **state)
{
    (void)state;
    fixture f;
    call c;
    start_with_a_waiting_call(&f, NULL, 0, &c, TASK);
    light_stop(f.ls); /* the node failed to start: no adoption will come */
    call_join(&c);
    assert_int_not_equal(c.st.code, RPC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_task_answered_unknown_refused),
        cmocka_unit_test(test_call_waits_for_the_adoption),
        cmocka_unit_test(test_a_stranger_is_refused_once_the_adoption_ends),
        cmocka_unit_test(test_stop_ends_a_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
