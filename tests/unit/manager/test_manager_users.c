/* test_manager_users.c - the user side's building blocks: user accounts (salted slow hash,
 * names checked), user tokens kept apart from node tokens, store objects, and the SDK's graph
 * read into a swarm_def and written back (edges, RESULT conditions, cycles, missing modules). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "graph.h"
#include "mem.h"
#include "rpc.h"
#include "store.h"
#include "token.h"
#include "users.h"

static const uint8_t SECRET[TOKEN_SECRET_LEN] = "0123456789abcdef0123456789abcdef";

#define MUST(x)                                                                                    \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            fail_msg("%s: %s", #x, mt_error_msg(e));                                               \
    } while (0)

static void test_users(void **state)
{
    (void)state;
    mt_error *e = NULL;
    store *st = store_open(":memory:", &e);
    assert_non_null(st);
    char id[33];
    MUST(users_create(st, "alice", "long enough pw", 1000, id, &e));
    assert_int_equal(strlen(id), 32);
    assert_int_equal(users_create(st, "alice", "another pw!", 1000, NULL, &e), -1);
    assert_int_equal(e->code, MT_ERR_EXISTS);
    mt_error_free(&e);
    assert_int_equal(users_create(st, "bob", "short", 1000, NULL, &e), -1);
    mt_error_free(&e);
    assert_int_equal(users_create(st, "b b", "long enough pw", 1000, NULL, &e), -1);
    mt_error_free(&e);
    assert_int_equal(users_create(st, "b\xff", "long enough pw", 1000, NULL, &e), -1);
    mt_error_free(&e);
    store_object u = {0};
    assert_int_equal(users_check_password(st, "alice", "long enough pw", &u, &e), 1);
    assert_string_equal(u.meta, id);
    /* the hash, never the password */
    assert_null(memmem(u.data, u.len, "long enough", 11));
    assert_non_null(memmem(u.data, u.len, "pbkdf2-sha256$", 14));
    store_object_clear(&u);
    assert_int_equal(users_check_password(st, "alice", "wrong password", NULL, &e), 0);
    assert_int_equal(users_check_password(st, "nobody", "long enough pw", NULL, &e), 0);
    assert_int_equal(users_delete(st, "alice", &e), 1);
    assert_int_equal(users_delete(st, "alice", &e), 0);
    store_close(st);
}

static void test_user_tokens_apart_from_node_tokens(void **state)
{
    (void)state;
    mt_error *e = NULL;
    char jti[TOKEN_JTI_LEN + 1], jti2[TOKEN_JTI_LEN + 1], user[65];
    cleanup_free char *ut = token_create_user(SECRET, "alice", 60, 1000, jti, &e);
    assert_non_null(ut);
    assert_int_equal(token_verify_user(SECRET, ut, 1030, user, sizeof(user), jti2, &e), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(jti, jti2);
    /* expired */
    assert_int_equal(token_verify_user(SECRET, ut, 1061, user, sizeof(user), jti2, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "expired"));
    mt_error_free(&e);
    /* a user token on the node side, a node token on the user side */
    assert_int_equal(token_verify(SECRET, ut, 1030, NULL, 0, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "user token"));
    mt_error_free(&e);
    cleanup_free char *nt = token_create(SECRET, "node0", 0, 1000);
    assert_int_equal(token_verify_user(SECRET, nt, 1030, user, sizeof(user), jti2, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "node token"));
    mt_error_free(&e);
    /* another manager's secret */
    uint8_t other[TOKEN_SECRET_LEN];
    memset(other, 7, sizeof(other));
    assert_int_equal(token_verify_user(other, ut, 1030, user, sizeof(user), jti2, &e), -1);
    mt_error_free(&e);
}

static void test_objects(void **state)
{
    (void)state;
    mt_error *e = NULL;
    store *st = store_open(":memory:", &e);
    MUST(store_object_put(st, "module", "m1", "worker", "abc", 3, 10, false, &e));
    MUST(store_object_put(st, "module", "m2", "aggregator", "", 0, 20, false, &e));
    assert_int_equal(store_object_put(st, "module", "m1", "x", "", 0, 30, false, &e), -1);
    assert_int_equal(e->code, MT_ERR_EXISTS);
    mt_error_free(&e);
    MUST(store_object_put(st, "module", "m1", "worker2", "abcd", 4, 30, true, &e));
    store_object o;
    assert_int_equal(store_object_get(st, "module", "m1", true, &o, &e), 1);
    assert_string_equal(o.meta, "worker2");
    assert_int_equal(o.len, 4);
    assert_memory_equal(o.data, "abcd", 4);
    store_object_clear(&o);
    assert_int_equal(store_object_get(st, "graph", "m1", true, &o, &e), 0);
    store_object *rows = NULL;
    size_t n = 0;
    MUST(store_object_list(st, "module", &rows, &n, &e));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, "m1");
    assert_null(rows[0].data);
    store_objects_free(rows, n);
    assert_int_equal(store_object_delete(st, "module", "m2", &e), 1);
    assert_int_equal(store_object_delete(st, "module", "m2", &e), 0);
    store_close(st);
}

/* ---- graphs ---- */

static int lookup(void *ctx, node_id id, Common__Tasks__Module **mod, mt_error **err)
{
    (void)ctx;
    (void)err;
    if (id.tail == 404)
        return 0;
    Common__Tasks__Module m = COMMON__TASKS__MODULE__INIT;
    char *ds[1] = {(char *)"mnist"};
    m.name = (char *)"worker";
    m.image = (char *)"img";
    m.python_program.data = (uint8_t *)"PK";
    m.python_program.len = 2;
    m.datasets = ds;
    m.n_datasets = id.tail == 1 ? 1 : 0;
    uint8_t buf[256];
    size_t len = common__tasks__module__pack(&m, buf);
    *mod = common__tasks__module__unpack(NULL, len, buf);
    return 1;
}

typedef struct gt {
    Common__System__PairId id[3], mod[3];
    Common__System__PairId *next[3][2], *prev[3][2];
    char *conds[3][2];
    Common__Tasks__Scheduling sch[3];
    uint8_t max[3][4];
    Common__Tasks__Task t[3];
    Common__Tasks__Task *tp[3];
    Common__Swarms__Graph g;
} gt;

/* a -> b (RESULT) -> c */
static void chain(gt *x)
{
    static const char *const aliases[] = {"a", "b", "c"};
    memset(x, 0, sizeof(*x));
    for (int i = 0; i < 3; i++) {
        common__system__pair_id__init(&x->id[i]);
        x->id[i].tail = 100 + (uint64_t)i;
        common__system__pair_id__init(&x->mod[i]);
        x->mod[i].tail = (uint64_t)i + 1;
        common__tasks__scheduling__init(&x->sch[i]);
        x->sch[i].method = (char *)(i == 1 ? "any" : "all");
        x->sch[i].fixed = i == 1;
        int32_t v = i == 1 ? 1 : -1;
        memcpy(x->max[i], &v, 4);
        x->sch[i].maximum.data = x->max[i];
        x->sch[i].maximum.len = 4;
        x->sch[i].max_type = COMMON__TASKS__MAXIMUM_TYPE__INT;
        common__tasks__task__init(&x->t[i]);
        x->t[i].task_id = &x->id[i];
        x->t[i].module_id = &x->mod[i];
        x->t[i].alias = (char *)aliases[i];
        x->t[i].scheduling = &x->sch[i];
        x->tp[i] = &x->t[i];
    }
    for (int i = 0; i < 2; i++) {
        x->next[i][0] = &x->id[i + 1];
        x->t[i].next_tasks = x->next[i];
        x->t[i].n_next_tasks = 1;
        x->conds[i][0] = (char *)(i == 0 ? "Condition.RESULT" : "Condition.FINISHED");
        x->t[i].conditions = x->conds[i];
        x->t[i].n_conditions = 1;
        x->prev[i + 1][0] = &x->id[i];
        x->t[i + 1].previous_tasks = x->prev[i + 1];
        x->t[i + 1].n_previous_tasks = 1;
    }
    common__swarms__graph__init(&x->g);
    x->g.tasks = x->tp;
    x->g.n_tasks = 3;
}

static void test_graph_round_trip(void **state)
{
    (void)state;
    gt x;
    chain(&x);
    cleanup_error mt_error *why = NULL;
    swarm_def *def = graph_to_def(&x.g, "S", lookup, NULL, NULL, false, true, &why);
    if (!def)
        fail_msg("%s", mt_error_msg(why));
    assert_int_equal(def->ntasks, 3);
    assert_int_equal(def->tasks[2].order, 2);
    assert_false(def->tasks[1].method_all);
    assert_true(def->tasks[1].fixed);
    assert_int_equal(def->tasks[1].maximum, 1);
    assert_int_equal(def->tasks[0].maximum, -1);
    assert_string_equal(def->tasks[0].datasets[0], "mnist");
    assert_int_equal(def->tasks[0].pyz_len, 2);
    assert_true(def->tasks[0].next_result[0]);
    assert_int_equal(def->tasks[2].nprev, 1);
    size_t len = 0;
    cleanup_free uint8_t *packed = graph_pack(def, &len);
    Common__Swarms__Graph *back = common__swarms__graph__unpack(NULL, len, packed);
    assert_non_null(back);
    assert_int_equal(back->n_tasks, 3);
    assert_string_equal(back->tasks[0]->conditions[0], "Condition.RESULT");
    assert_int_equal(back->tasks[1]->module_id->tail, 2);
    assert_string_equal(back->tasks[1]->scheduling->method, "any");
    swarm_def *again = graph_to_def(back, "S", lookup, NULL, NULL, false, false, &why);
    assert_non_null(again);
    assert_int_equal(again->tasks[2].order, 2);
    swarm_def_free(again);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    swarm_def_free(def);
}

static void test_graph_refusals(void **state)
{
    (void)state;
    gt x;
    cleanup_error mt_error *why = NULL;
    /* a cycle: c -> a */
    chain(&x);
    Common__System__PairId *back[1] = {&x.id[0]};
    x.t[2].next_tasks = back;
    x.t[2].n_next_tasks = 1;
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why));
    assert_int_equal(mt_error_status(why, 0), RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(mt_error_msg(why), "cycle"));
    /* a missing module */
    chain(&x);
    x.mod[1].tail = 404;
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why));
    assert_int_equal(mt_error_status(why, 0), RPC_NOT_FOUND);
    assert_non_null(strstr(mt_error_msg(why), "'b'"));
    /* a network the swarm lacks, checked at start */
    chain(&x);
    x.t[0]._network_case = COMMON__TASKS__TASK___NETWORK_NETWORK;
    x.t[0].network = (char *)"p2p";
    swarm_def *def = graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why);
    assert_non_null(def);
    swarm_def_free(def);
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, true, false, &why));
    assert_int_equal(mt_error_status(why, 0), RPC_FAILED_PRECONDITION);
    /* an unknown condition, a bad method, a fraction above 1 */
    chain(&x);
    x.conds[0][0] = (char *)"Condition.MAYBE";
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why));
    chain(&x);
    x.sch[0].method = (char *)"best_resources";
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why));
    chain(&x);
    float f = 1.5f;
    memcpy(x.max[0], &f, 4);
    x.sch[0].max_type = COMMON__TASKS__MAXIMUM_TYPE__FLOAT;
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why));
    /* an empty graph */
    chain(&x);
    x.g.n_tasks = 0;
    assert_null(graph_to_def(&x.g, "S", lookup, NULL, NULL, false, false, &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_user_tokens_apart_from_node_tokens),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_graph_round_trip),
        cmocka_unit_test(test_graph_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
