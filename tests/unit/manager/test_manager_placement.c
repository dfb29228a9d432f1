/* test_manager_placement.c - which nodes run a graph task (placement.h): eligibility, all/any,
 * maximum as a count or a fraction, fixed, specified/excepted ids, GPU, datasets, and the
 * message when no node qualifies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "placement.h"

#define MAXN 32

static const char *const mnist[] = {"mnist", NULL};
static const char *const mnist_cifar[] = {"cifar10", "mnist", NULL};
static const char *const none[] = {NULL};

/* Nodes named n0..n(k-1): id 0x10 + i, so xids "010", "011", ... sort like their index. */
static void make_nodes(placement_node *nodes, size_t k)
{
    memset(nodes, 0, sizeof(*nodes) * k);
    for (size_t i = 0; i < k; i++) {
        nodes[i].id = (node_id){0, 0x10 + i};
        node_id_to_xid(nodes[i].id, nodes[i].xid);
        nodes[i].connected = true;
        nodes[i].datasets = none;
    }
}

static swarm_task_def task(bool all)
{
    swarm_task_def t;
    memset(&t, 0, sizeof(t));
    t.alias = (char *)"worker";
    t.name = (char *)"worker";
    t.method_all = all;
    t.maximum = -1;
    return t;
}

/* Choose and compare with the expected node indices (terminated by -1). */
static void expect_choice(const swarm_task_def *t, const placement_node *nodes, size_t n,
                          const node_id *prev, size_t nprev, const int *want)
{
    size_t out[MAXN], nout = 99;
    mt_error *err = NULL;
    if (placement_choose(t, nodes, n, prev, nprev, out, &nout, &err))
        fail_msg("unexpected error: %s", mt_error_msg(err));
    assert_null(err);
    size_t k = 0;
    while (want[k] >= 0)
        k++;
    if (nout != k) {
        char got[256] = "";
        for (size_t i = 0; i < nout && i < MAXN; i++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), " %zu", out[i]);
        fail_msg("chose %zu nodes (%s ), want %zu", nout, got, k);
    }
    for (size_t i = 0; i < k; i++)
        assert_int_equal(out[i], (size_t)want[i]);
}

#define CHOOSE(t, nodes, n, prev, nprev, ...)                                                      \
    expect_choice(t, nodes, n, prev, nprev, (const int[]){__VA_ARGS__, -1})
#define CHOOSE_NONE(t, nodes, n) expect_choice(t, nodes, n, NULL, 0, (const int[]){-1})

static char *choose_error(const swarm_task_def *t, const placement_node *nodes, size_t n)
{
    size_t out[MAXN], nout = 99;
    mt_error *err = NULL;
    assert_int_equal(placement_choose(t, nodes, n, NULL, 0, out, &nout, &err), -1);
    assert_non_null(err);
    assert_int_equal(nout, 0);
    char *msg = xstrdup(mt_error_msg(err));
    mt_error_free(&err);
    return msg;
}

/* ---- all / any ------------------------------------------------------------------------------ */

static void test_all(void **state)
{
    (void)state;
    placement_node nodes[5];
    make_nodes(nodes, 5);
    nodes[2].connected = false;
    swarm_task_def t = task(true);
    CHOOSE(&t, nodes, 5, NULL, 0, 0, 1, 3, 4);
    t.maximum = 0; /* the SDK's None: no cap for "all" */
    CHOOSE(&t, nodes, 5, NULL, 0, 0, 1, 3, 4);
    t.maximum = 2;
    CHOOSE(&t, nodes, 5, NULL, 0, 0, 1);
    t.maximum = 10;
    CHOOSE(&t, nodes, 5, NULL, 0, 0, 1, 3, 4);
}

static void test_any_least_loaded(void **state)
{
    (void)state;
    placement_node nodes[5];
    make_nodes(nodes, 5);
    nodes[0].running = 3;
    nodes[1].running = 1;
    nodes[2].running = 0;
    nodes[3].running = 0;
    nodes[4].running = 2;
    swarm_task_def t = task(false);
    CHOOSE(&t, nodes, 5, NULL, 0, 2); /* -1: one node, the least loaded, lowest xid on a tie */
    t.maximum = 0;
    CHOOSE(&t, nodes, 5, NULL, 0, 2);
    t.maximum = 1;
    CHOOSE(&t, nodes, 5, NULL, 0, 2);
    t.maximum = 3;
    CHOOSE(&t, nodes, 5, NULL, 0, 2, 3, 1);
    t.maximum = 9;
    CHOOSE(&t, nodes, 5, NULL, 0, 2, 3, 1, 4, 0);
    /* ties broken by xid, not by position */
    placement_node rev[3];
    make_nodes(rev, 3);
    rev[0].id = (node_id){0, 0xcc};
    rev[1].id = (node_id){0, 0xbb};
    rev[2].id = (node_id){0, 0xaa};
    for (int i = 0; i < 3; i++)
        node_id_to_xid(rev[i].id, rev[i].xid);
    t.maximum = 2;
    CHOOSE(&t, rev, 3, NULL, 0, 2, 1);
    /* a busy node loses to an idle one even with a lower xid */
    rev[2].running = 1;
    CHOOSE(&t, rev, 3, NULL, 0, 1, 0);
}

static void test_fraction(void **state)
{
    (void)state;
    placement_node nodes[10];
    make_nodes(nodes, 10);
    swarm_task_def t = task(true);
    t.max_is_fraction = true;
    t.max_fraction = 0.3;
    CHOOSE(&t, nodes, 10, NULL, 0, 0, 1, 2);
    t.max_fraction = 0.25; /* 2.5 -> 3 */
    CHOOSE(&t, nodes, 10, NULL, 0, 0, 1, 2);
    t.max_fraction = 0.5;
    CHOOSE(&t, nodes, 10, NULL, 0, 0, 1, 2, 3, 4);
    t.max_fraction = 1.0;
    CHOOSE(&t, nodes, 10, NULL, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    t.max_fraction = 0.01; /* at least one */
    CHOOSE(&t, nodes, 10, NULL, 0, 0);
    /* 0.28 * 25 is 7.000000000000001 in floating point: still 7 nodes, not 8 */
    placement_node many[25];
    make_nodes(many, 25);
    t.max_fraction = 0.28;
    CHOOSE(&t, many, 25, NULL, 0, 0, 1, 2, 3, 4, 5, 6);
    t.max_fraction = 0.3; /* 7.5 -> 8 */
    CHOOSE(&t, many, 25, NULL, 0, 0, 1, 2, 3, 4, 5, 6, 7);
    /* of the eligible nodes: 4 connected, half of them */
    for (int i = 4; i < 10; i++)
        nodes[i].connected = false;
    t.max_fraction = 0.5;
    CHOOSE(&t, nodes, 10, NULL, 0, 0, 1);
    t.max_fraction = 0.7; /* 2.8 -> 3 */
    CHOOSE(&t, nodes, 10, NULL, 0, 0, 1, 2);
    /* "any" with a fraction: that many, least loaded first */
    t.method_all = false;
    nodes[0].running = 5;
    t.max_fraction = 0.5;
    CHOOSE(&t, nodes, 10, NULL, 0, 1, 2);
}

/* ---- fixed ---------------------------------------------------------------------------------- */

static void test_fixed(void **state)
{
    (void)state;
    placement_node nodes[4];
    make_nodes(nodes, 4);
    swarm_task_def t = task(false);
    t.fixed = true;
    t.maximum = 1;
    /* iteration 0: the least loaded */
    nodes[0].running = 2;
    CHOOSE(&t, nodes, 4, NULL, 0, 1);
    node_id prev[2] = {nodes[1].id};
    /* iteration 1: node 1 is now the busiest, but the task stays there */
    nodes[1].running = 7;
    CHOOSE(&t, nodes, 4, prev, 1, 1);
    /* without fixed it would move */
    t.fixed = false;
    CHOOSE(&t, nodes, 4, prev, 1, 2);
    t.fixed = true;
    /* node 1 disconnected: choose afresh among the others */
    nodes[1].connected = false;
    CHOOSE(&t, nodes, 4, prev, 1, 2);
    /* a previous node that no longer exists, or is no longer eligible, is skipped */
    node_id gone[2] = {{0, 0x999}, nodes[1].id};
    CHOOSE(&t, nodes, 4, gone, 2, 2);
    nodes[1].connected = true;
    t.gpu = true;
    nodes[3].has_gpu = true;
    CHOOSE(&t, nodes, 4, prev, 1, 3); /* node 1 has no GPU: fresh choice */
    t.gpu = false;

    /* "all", fixed: the earlier nodes in their earlier order, new nodes not added */
    swarm_task_def a = task(true);
    a.fixed = true;
    node_id two[3] = {nodes[3].id, nodes[0].id, nodes[3].id};
    CHOOSE(&a, nodes, 4, two, 3, 3, 0);
    CHOOSE(&a, nodes, 4, NULL, 0, 0, 1, 2, 3);
    nodes[3].connected = false;
    CHOOSE(&a, nodes, 4, two, 3, 0);
    nodes[0].connected = false;
    CHOOSE(&a, nodes, 4, two, 3, 1, 2);
}

/* ---- eligibility ---------------------------------------------------------------------------- */

static void test_specified_excepted(void **state)
{
    (void)state;
    placement_node nodes[4];
    make_nodes(nodes, 4);
    swarm_task_def t = task(true);
    char *spec[] = {(char *)"011", (char *)"0013", (char *)"0abc", NULL};
    char *exc[] = {(char *)"013", NULL};
    char *empty[] = {NULL};
    t.specified_ids = spec;
    CHOOSE(&t, nodes, 4, NULL, 0, 1, 3);
    t.excepted_ids = exc;
    CHOOSE(&t, nodes, 4, NULL, 0, 1);
    t.specified_ids = empty; /* empty: no restriction */
    CHOOSE(&t, nodes, 4, NULL, 0, 0, 1, 2);
    t.specified_ids = NULL;
    CHOOSE(&t, nodes, 4, NULL, 0, 0, 1, 2);
    /* any + specified: least loaded among the specified */
    t.method_all = false;
    t.specified_ids = spec;
    t.excepted_ids = NULL;
    nodes[1].running = 4;
    CHOOSE(&t, nodes, 4, NULL, 0, 3);
}

static void test_gpu(void **state)
{
    (void)state;
    placement_node nodes[3];
    make_nodes(nodes, 3);
    nodes[1].has_gpu = true;
    nodes[2].has_gpu = true;
    swarm_task_def t = task(true);
    CHOOSE(&t, nodes, 3, NULL, 0, 0, 1, 2);
    t.gpu = true;
    CHOOSE(&t, nodes, 3, NULL, 0, 1, 2);
    nodes[2].connected = false;
    CHOOSE(&t, nodes, 3, NULL, 0, 1);
}

static void test_datasets(void **state)
{
    (void)state;
    placement_node nodes[4];
    make_nodes(nodes, 4);
    nodes[0].datasets = mnist;
    nodes[1].datasets = mnist_cifar;
    nodes[2].datasets = NULL; /* reported nothing */
    nodes[3].datasets = mnist_cifar;
    swarm_task_def t = task(true);
    char *need_mnist[] = {(char *)"mnist", NULL};
    char *need_both[] = {(char *)"mnist", (char *)"cifar10", NULL};
    t.datasets = need_mnist;
    CHOOSE(&t, nodes, 4, NULL, 0, 0, 1, 3);
    t.datasets = need_both;
    CHOOSE(&t, nodes, 4, NULL, 0, 1, 3);
    /* "Mnist" is another dataset */
    char *other_case[] = {(char *)"Mnist", NULL};
    t.datasets = other_case;
    char *msg = choose_error(&t, nodes, 4);
    assert_non_null(strstr(msg, "needs dataset 'Mnist', which no connected node has"));
    free(msg);
}

/* ---- nothing eligible -------------------------------------------------------------------------
 */

static void test_errors(void **state)
{
    (void)state;
    placement_node nodes[3];
    make_nodes(nodes, 3);
    swarm_task_def t = task(true);

    cleanup_free char *m0 = choose_error(&t, nodes, 0);
    assert_string_equal(m0, "task 'worker' cannot run: no node is connected to the manager. "
                            "Start a node (manta_node start) and wait until it registers.");
    for (int i = 0; i < 3; i++)
        nodes[i].connected = false;
    cleanup_free char *m1 = choose_error(&t, nodes, 3);
    assert_string_equal(m1, m0);
    for (int i = 0; i < 3; i++)
        nodes[i].connected = true;

    /* the example of placement.h, word for word */
    char *need_mnist[] = {(char *)"mnist", NULL};
    t.datasets = need_mnist;
    cleanup_free char *m2 = choose_error(&t, nodes, 3);
    assert_string_equal(m2, "task 'worker' needs dataset 'mnist', which no connected node has: "
                            "connect a node that maps it, or remove it from the task's "
                            "datasets.");

    /* two rules, each excluding some nodes: both are named */
    nodes[0].datasets = mnist;
    nodes[1].has_gpu = true;
    t.gpu = true;
    cleanup_free char *m3 = choose_error(&t, nodes, 3);
    assert_string_equal(m3, "task 'worker' needs a GPU, which 2 of the 3 connected nodes lack. "
                            "task 'worker' needs dataset 'mnist', which 2 of the 3 connected "
                            "nodes lack: map it on more nodes, or remove it from the task's "
                            "datasets.");
    t.datasets = NULL;
    nodes[1].has_gpu = false;
    cleanup_free char *m4 = choose_error(&t, nodes, 3);
    assert_string_equal(m4, "task 'worker' needs a GPU, which no connected node has: connect a "
                            "node with a GPU, or set gpu = false.");
    t.gpu = false;

    char *spec[] = {(char *)"0abc", NULL};
    t.specified_ids = spec;
    cleanup_free char *m5 = choose_error(&t, nodes, 3);
    assert_string_equal(m5, "task 'worker' may only run on the nodes in its specified_ids, and "
                            "none of them is connected: start one of them, or change "
                            "specified_ids.");
    char *spec1[] = {(char *)"010", NULL};
    char *exc_all[] = {(char *)"010", (char *)"011", (char *)"012", NULL};
    t.specified_ids = spec1;
    t.excepted_ids = exc_all;
    cleanup_free char *m6 = choose_error(&t, nodes, 3);
    assert_string_equal(m6, "task 'worker' may only run on the nodes in its specified_ids, "
                            "which leaves out 2 of the 3 connected nodes. task 'worker' excludes "
                            "3 of the 3 connected nodes by its excepted_ids: connect another "
                            "node, or shorten excepted_ids.");
    assert_null(strstr(m6, "(null)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_any_least_loaded),
        cmocka_unit_test(test_fraction),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_specified_excepted),
        cmocka_unit_test(test_gpu),
        cmocka_unit_test(test_datasets),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
