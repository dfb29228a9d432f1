/* test_manager_swarmfile.c - swarm files: a valid file read back completely (task ids, edges,
 * orders, globals as Python's msgpack would encode them, module archives), and every error the
 * loader reports, with the text the user sees. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "id.h"
#include "mem.h"
#include "strbuf.h"
#include "swarmfile.h"

static char tmpdir[] = "/tmp/test_swarmfile_XXXXXX";
static char realdir[PATH_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static char *tpath(const char *rel)
{
    return xasprintf("%s/%s", tmpdir, rel);
}

static void write_file(const char *rel, const char *text)
{
    cleanup_free char *p = tpath(rel);
    cleanup_free char *dir = xstrdup(p);
    *strrchr(dir, '/') = '\0';
    mt_error *err = NULL;
    assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(fs_write_atomic(p, text, strlen(text), 0644, &err), 0);
}

#define MAIN_PY "def main():\n    pass\n"

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir) || !realpath(tmpdir, realdir))
        return -1;
    /* The MNIST example's modules: two packages and two files. */
    write_file("worker/__init__.py", MAIN_PY);
    write_file("worker/model.py", "X = 1\n");
    write_file("aggregator.py", MAIN_PY);
    write_file("worker_test/__init__.py", MAIN_PY);
    write_file("scheduler.py", MAIN_PY);
    write_file("init.msgpack", "\x81\xa1w\xc4\x01\x41");
    /* more modules for the graph and error cases */
    const char *mods[] = {"a.py",    "b.py",          "c.py",         "d.py",     "e.py",
                          "cafe.py", "sub/worker.py", "my-worker.py", "class.py", "notes.txt"};
    for (size_t i = 0; i < ARRAY_LEN(mods); i++)
        write_file(mods[i], MAIN_PY);
    cleanup_free char *nopkg = tpath("nopkg");
    assert_int_equal(mkdir(nopkg, 0755), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static char *hex_of(const void *data, size_t len)
{
    const uint8_t *p = data;
    char *s = xmalloc(len * 2 + 1);
    for (size_t i = 0; i < len; i++)
        sprintf(s + 2 * i, "%02x", p[i]);
    s[len * 2] = '\0';
    return s;
}

static void expect_xid(node_id id, const char *want)
{
    char xid[NODE_XID_MAX + 1];
    node_id_to_xid(id, xid);
    assert_string_equal(xid, want);
}

static swarm_def *load_ok(const char *rel, const char *text)
{
    write_file(rel, text);
    cleanup_free char *p = tpath(rel);
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(p, &err);
    if (!def)
        fail_msg("%s: unexpected error: %s", rel, mt_error_msg(err));
    assert_null(err);
    return def;
}

/* ---- a valid file ------------------------------------------------------------------------- */

static const char mnist_toml[] =
    "name = \"fedavg\"\n"
    "\n"
    "[globals]\n"
    "hyperparameters = { epochs = 1, batch_size = 32, val_acc_threshold = 0.99, "
    "layers = [784, 10] }\n"
    "seed = 7\n"
    "start = 1979-05-27\n"
    "\n"
    "[global_files]\n"
    "global_model_params = \"init.msgpack\"\n"
    "\n"
    "[[tasks]]\n"
    "module = \"worker\"\n"
    "image = \"manta-task:bookworm\"\n"
    "datasets = [\"mnist\"]\n"
    "\n"
    "[[tasks]]\n"
    "module = \"aggregator.py\"\n"
    "image = \"manta-task:bookworm\"\n"
    "method = \"any\"\n"
    "fixed = true\n"
    "maximum = 1\n"
    "after = [\"worker\"]\n"
    "\n"
    "[[tasks]]\n"
    "module = \"./worker_test/\"\n"
    "image = \"manta-task:bookworm\"\n"
    "datasets = [\"mnist\", \"mnist\", \"extra\"]\n"
    "after = \"aggregator\"\n"
    "maximum = 5\n"
    "specified_ids = [\"0xABC\", \"00def\", \"1\"]\n"
    "excepted_ids = [\"abc\"]\n"
    "gpu = true\n"
    "\n"
    "[[tasks]]\n"
    "module = \"scheduler\"\n"
    "alias = \"sched\"\n"
    "image = \"manta-task:bookworm\"\n"
    "method = \"any\"\n"
    "fixed = true\n"
    "maximum = 0.5\n"
    "after = [\"worker_test\"]\n";

static void test_mnist_round_trip(void **state)
{
    (void)state;
    swarm_def *def = load_ok("mnist.toml", mnist_toml);
    assert_string_equal(def->name, "fedavg");

    /* globals: Python msgpack.packb(value, use_bin_type=True) */
    assert_int_equal(def->nglobals, 4);
    assert_string_equal(def->globals[0].tag, "hyperparameters");
    cleanup_free char *hp = hex_of(def->globals[0].data, def->globals[0].len);
    assert_string_equal(hp, "84a665706f63687301aa62617463685f73697a6520b176616c5f6163635f74687265"
                            "73686f6c64cb3fefae147ae147aea66c617965727392cd03100a");
    assert_string_equal(def->globals[1].tag, "seed");
    assert_int_equal(def->globals[1].len, 1);
    assert_int_equal(def->globals[1].data[0], 0x07);
    assert_string_equal(def->globals[2].tag, "start");
    cleanup_free char *st = hex_of(def->globals[2].data, def->globals[2].len);
    assert_string_equal(st, "aa313937392d30352d3237");
    assert_string_equal(def->globals[3].tag, "global_model_params");
    assert_int_equal(def->globals[3].len, 6);
    assert_memory_equal(def->globals[3].data, "\x81\xa1w\xc4\x01\x41", 6);

    assert_int_equal(def->ntasks, 4);
    static const struct {
        const char *alias, *name, *path, *xid;
    } want[] = {
        {"worker", "worker", "worker", "88d82e8abd979fbb217f37f22fcbf9a6"},
        {"aggregator", "aggregator", "aggregator.py", "ff84cfd868a3df5700831162612ad847"},
        {"worker_test", "worker_test", "worker_test", "cf8622823d5c2531c63997daf24017a8"},
        {"sched", "scheduler", "scheduler.py", "ea6b054b0a5bcd545dc61ebb59f41646"},
    };
    for (size_t i = 0; i < 4; i++) {
        const swarm_task_def *t = &def->tasks[i];
        assert_string_equal(t->alias, want[i].alias);
        assert_string_equal(t->name, want[i].name);
        cleanup_free char *abs = xasprintf("%s/%s", realdir, want[i].path);
        assert_string_equal(t->module_path, abs);
        expect_xid(t->task_id, want[i].xid);
        assert_string_equal(t->image, "manta-task:bookworm");
        /* a chain: orders 0..3, one edge each way */
        assert_int_equal(t->order, i);
        assert_int_equal(t->nprev, i == 0 ? 0 : 1);
        if (i > 0)
            assert_int_equal(t->prev[0], i - 1);
        assert_int_equal(t->nnext, i == 3 ? 0 : 1);
        if (i < 3)
            assert_int_equal(t->next[0], i + 1);
        /* the module archive: a zip ending with __main__.py importing the module */
        assert_non_null(t->pyz);
        assert_true(t->pyz_len > 100);
        assert_memory_equal(t->pyz, "PK\x03\x04", 4);
        assert_non_null(memmem(t->pyz, t->pyz_len, "__main__.py", 11));
        assert_int_equal(swarm_def_find_alias(def, want[i].alias), (ssize_t)i);
    }
    assert_int_equal(swarm_def_find_alias(def, "scheduler"), -1);
    assert_int_equal(swarm_def_find_alias(def, "nope"), -1);

    const swarm_task_def *w = &def->tasks[0], *a = &def->tasks[1], *wt = &def->tasks[2],
                         *s = &def->tasks[3];
    /* defaults */
    assert_true(w->method_all);
    assert_false(w->fixed);
    assert_false(w->max_is_fraction);
    assert_int_equal(w->maximum, -1);
    assert_false(w->gpu);
    assert_null(w->specified_ids[0]);
    assert_null(w->excepted_ids[0]);
    assert_string_equal(w->datasets[0], "mnist");
    assert_null(w->datasets[1]);
    /* any / fixed / maximum 1 */
    assert_false(a->method_all);
    assert_true(a->fixed);
    assert_int_equal(a->maximum, 1);
    assert_null(a->datasets[0]);
    /* ids normalised to xids; maximum clamped to the ids left (3 specified - 1 excepted) */
    assert_string_equal(wt->specified_ids[0], "0abc");
    assert_string_equal(wt->specified_ids[1], "0def");
    assert_string_equal(wt->specified_ids[2], "01");
    assert_null(wt->specified_ids[3]);
    assert_string_equal(wt->excepted_ids[0], "0abc");
    assert_null(wt->excepted_ids[1]);
    assert_int_equal(wt->maximum, 2);
    assert_true(wt->gpu);
    assert_string_equal(wt->datasets[0], "mnist"); /* duplicates dropped */
    assert_string_equal(wt->datasets[1], "extra");
    assert_null(wt->datasets[2]);
    /* a fraction */
    assert_true(s->max_is_fraction);
    assert_true(s->max_fraction == 0.5);

    swarm_def_free(def);
    swarm_def_free(NULL);
}

/* A diamond with two start tasks: order is one more than the deepest previous task. */
static void test_graph_orders(void **state)
{
    (void)state;
    swarm_def *def = load_ok("graph.toml", "[[tasks]]\nmodule = \"a\"\nimage = \"i\"\n"
                                           "[[tasks]]\nmodule = \"e\"\nimage = \"i\"\n"
                                           "after = [\"a\", \"d\"]\n"
                                           "[[tasks]]\nmodule = \"b.py\"\nimage = \"i\"\n"
                                           "[[tasks]]\nmodule = \"c\"\nimage = \"i\"\n"
                                           "after = [\"a\"]\n"
                                           "[[tasks]]\nmodule = \"d\"\nimage = \"i\"\n"
                                           "after = [\"c\", \"b\", \"c\"]\n");
    assert_string_equal(def->name, "graph"); /* default: the file's stem */
    assert_int_equal(def->nglobals, 0);
    const char *order_of[] = {"a", "e", "b", "c", "d"};
    size_t want_order[] = {0, 3, 0, 1, 2};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(def->tasks[i].alias, order_of[i]);
        assert_int_equal(def->tasks[i].order, want_order[i]);
    }
    /* e: prev a, d (as written) */
    assert_int_equal(def->tasks[1].nprev, 2);
    assert_int_equal(def->tasks[1].prev[0], 0);
    assert_int_equal(def->tasks[1].prev[1], 4);
    /* d: prev c, b (the repeated c ignored) */
    assert_int_equal(def->tasks[4].nprev, 2);
    assert_int_equal(def->tasks[4].prev[0], 3);
    assert_int_equal(def->tasks[4].prev[1], 2);
    /* a: next e, c (file order) */
    assert_int_equal(def->tasks[0].nnext, 2);
    assert_int_equal(def->tasks[0].next[0], 1);
    assert_int_equal(def->tasks[0].next[1], 3);
    assert_int_equal(def->tasks[4].nnext, 1);
    assert_int_equal(def->tasks[4].next[0], 1);
    swarm_def_free(def);
}

/* A module named like a hex number gets that number as its id (the SDK's rule). */
static void test_hex_module_name(void **state)
{
    (void)state;
    swarm_def *def = load_ok("hex.toml", "tasks = [{ module = \"cafe.py\", image = \"i\", "
                                         "alias = \"x\" }]\n");
    assert_string_equal(def->tasks[0].name, "cafe");
    assert_string_equal(def->tasks[0].alias, "x");
    expect_xid(def->tasks[0].task_id, "0cafe");
    swarm_def_free(def);
}

/* ---- errors ----------------------------------------------------------------------------- */

/* Load text as a swarm file that must fail; every needle must be in the message. */
static void expect_errors(const char *text, const char *const *needles)
{
    write_file("bad.toml", text);
    cleanup_free char *p = tpath("bad.toml");
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(p, &err);
    if (def)
        fail_msg("loaded without error:\n%s", text);
    assert_non_null(err);
    for (size_t i = 0; needles[i]; i++)
        if (!strstr(mt_error_msg(err), needles[i]))
            fail_msg("error message\n  %s\ndoes not contain\n  %s\nfor\n%s", mt_error_msg(err),
                     needles[i], text);
    mt_error_free(&err);
}

#define EXPECT(text, ...) expect_errors(text, (const char *const[]){__VA_ARGS__, NULL})
#define T(extra)          "[[tasks]]\nmodule = \"a\"\nimage = \"i\"\n" extra

static void test_error_parse_and_keys(void **state)
{
    (void)state;
    EXPECT("name = \n", "bad.toml:1:");
    EXPECT("nmae = \"x\"\n" T(""), "bad.toml:1: unknown key 'nmae'; did you mean 'name'?");
    EXPECT("[[task]]\nmodule = \"a\"\n",
           "bad.toml:1: unknown table '[[task]]'; did you mean '[[tasks]]'?");
    EXPECT("[settings]\nx = 1\n" T(""), "bad.toml:1: unknown table '[settings]'; a swarm file "
                                        "has the key 'name' and the tables [globals], "
                                        "[global_files] and [[tasks]].");
    EXPECT("image = \"i\"\n" T(""), "bad.toml:1: key 'image' belongs in a [[tasks]] table");
    EXPECT(T("imgae = \"x\"\n"),
           "bad.toml:4: unknown key 'imgae' in task 'a' (a [[tasks]] table); did you mean "
           "'image'?");
    EXPECT(T("colour = \"x\"\n"), "bad.toml:4: unknown key 'colour' in task 'a'",
           "the keys are module, alias, image");
    EXPECT("name = 3\n" T(""), "bad.toml:1: the swarm: 'name' must be a string, not integer.");
    EXPECT("globals = 3\n" T(""), "'globals' must be a table ([globals]), not integer.");
    EXPECT("name = \"x\"\n", "bad.toml: the swarm has no tasks: add at least one [[tasks]]");
    EXPECT("tasks = []\n", "bad.toml:1: the swarm has no tasks");
    EXPECT("tasks = 1\n", "'tasks' must be an array of tables ([[tasks]] sections), not integer");
    EXPECT("tasks = [1]\n", "task #1 must be a table ([[tasks]] section), not integer");
    /* every problem of the first stage in one message, one per line */
    EXPECT("nmae = 1\n" T("fixed = \"yes\"\ngpu = 1\n"),
           "bad.toml:1: unknown key 'nmae'; did you mean 'name'?\n",
           "bad.toml:5: task 'a': 'fixed' must be a boolean (true or false), not string.\n",
           "bad.toml:6: task 'a': 'gpu' must be a boolean (true or false), not integer.");
}

static void test_error_task_fields(void **state)
{
    (void)state;
    EXPECT("[[tasks]]\nimage = \"i\"\n",
           "bad.toml:1: task #1: 'module' is required: add module = \"worker.py\"");
    EXPECT("[[tasks]]\nmodule = \"a\"\n",
           "bad.toml:1: task 'a': 'image' is required: add the container image");
    EXPECT(T("") "[[tasks]]\nmodule = \"b\"\nimage = \"\"\n",
           "bad.toml:6: task 'b': 'image' must not be empty.");
    EXPECT(T("") "[[tasks]]\nmodule = \"b\"\nimage = \"a b\"\n",
           "bad.toml:6: task 'b': image 'a b' contains white space");
    EXPECT(T("method = \"best_resources\"\n"),
           "bad.toml:4: task 'a': method must be \"all\" (every eligible node) or \"any\" (the "
           "least loaded eligible node), not \"best_resources\".");
    EXPECT(T("method = \"ALL\"\n"), "not \"ALL\"");
    EXPECT(T("maximum = -2\n"), "bad.toml:4: task 'a': maximum -2 is out of range: write -1 "
                                "(no cap), a node count from 0 to 2147483647");
    EXPECT(T("maximum = 2147483648\n"), "maximum 2147483648 is out of range");
    EXPECT(T("maximum = 1.5\n"), "bad.toml:4: task 'a': maximum 1.5 is out of range: a "
                                 "fraction of the eligible nodes must be above 0 and at most 1");
    EXPECT(T("maximum = 0.0\n"), "maximum 0 is out of range");
    EXPECT(T("maximum = -0.5\n"), "maximum -0.5 is out of range");
    EXPECT(T("maximum = nan\n"), "maximum nan is out of range");
    EXPECT(T("maximum = \"1\"\n"), "task 'a': 'maximum' must be an integer (a node count, -1 "
                                   "for no cap) or a float (a fraction of the eligible nodes), "
                                   "not string.");
    EXPECT(T("datasets = \"mnist\"\n"),
           "bad.toml:4: task 'a': 'datasets' must be an array of strings, not string.");
    EXPECT(T("datasets = [\"mnist\", 3]\n"),
           "task 'a': 'datasets' must hold non-empty strings; element 2 is integer.");
    EXPECT(T("after = 3\n"),
           "task 'a': 'after' must be an array of strings (or one string), not integer.");
    EXPECT(T("specified_ids = [\"xyz\"]\n"),
           "bad.toml:4: task 'a': 'specified_ids' holds 'xyz', which is not a node id");
    EXPECT(T("excepted_ids = [\"123456789012345678901234567890123\"]\n"),
           "'excepted_ids' holds '123456789012345678901234567890123', which is not a node id");
    /* the SDK's ValueError: nothing left once the excepted ids are removed */
    EXPECT(T("specified_ids = [\"0xabc\", \"def\"]\nexcepted_ids = [\"ABC\", \"0def\", \"1\"]\n"),
           "bad.toml:4: task 'a': every node in specified_ids is also in excepted_ids, so no "
           "node may run the task: remove the shared ids from one of the two lists.");
}

static void test_error_modules(void **state)
{
    (void)state;
    EXPECT("[[tasks]]\nmodule = \"missing\"\nimage = \"i\"\n",
           "bad.toml:2: task 'missing': module 'missing' was not found: neither ", "/missing/ nor ",
           "/missing.py exists (module paths are relative to the swarm "
           "file's folder ");
    EXPECT("[[tasks]]\nmodule = \"missing.py\"\nimage = \"i\"\n",
           "module 'missing.py' was not found at ");
    EXPECT("[[tasks]]\nmodule = \"nopkg\"\nimage = \"i\"\n",
           "bad.toml:2: task 'nopkg': module 'nopkg' is a folder without __init__.py");
    EXPECT("[[tasks]]\nmodule = \"notes.txt\"\nimage = \"i\"\n", "module 'notes.txt' (",
           "notes.txt) must be a .py file or a package folder");
    EXPECT("[[tasks]]\nmodule = \"my-worker.py\"\nimage = \"i\"\n",
           "task 'my-worker': module name 'my-worker' (from 'my-worker.py') cannot be imported "
           "by Python");
    EXPECT("[[tasks]]\nmodule = \"class\"\nimage = \"i\"\n",
           "module name 'class' (from 'class') cannot be imported");
}

static void test_error_graph(void **state)
{
    (void)state;
    EXPECT("[[tasks]]\nmodule = \"a\"\nimage = \"i\"\nalias = \"x\"\n"
           "[[tasks]]\nmodule = \"b\"\nimage = \"i\"\nalias = \"x\"\n",
           "bad.toml:5: the alias 'x' is already used by the task at line 1: give one of the "
           "two tasks another alias");
    EXPECT("[[tasks]]\nmodule = \"worker\"\nimage = \"i\"\n"
           "[[tasks]]\nmodule = \"sub/worker.py\"\nimage = \"i\"\nalias = \"w2\"\n",
           "bad.toml:4: task 'w2' uses module name 'worker' like the task at line 1; the task "
           "id comes from the module name, so the two would be one graph task");
    EXPECT(T("") "[[tasks]]\nmodule = \"b\"\nimage = \"i\"\nafter = [\"aa\"]\n",
           "bad.toml:7: task 'b': after names 'aa', which is not the alias of any task; did "
           "you mean 'a'?");
    EXPECT(T("") "[[tasks]]\nmodule = \"b\"\nimage = \"i\"\nafter = [\"zzzzzz\"]\n",
           "after names 'zzzzzz', which is not the alias of any task: write the alias");
    EXPECT(T("after = \"c\"\n") "[[tasks]]\nmodule = \"b\"\nimage = \"i\"\nafter = \"a\"\n"
                                "[[tasks]]\nmodule = \"c\"\nimage = \"i\"\nafter = \"b\"\n",
           "the tasks form a cycle through 'after': ", "a -> b -> c -> a",
           "remove one of these 'after' entries.");
    EXPECT(T("after = \"a\"\n"), "bad.toml:1: the tasks form a cycle through 'after': a -> a.");
    /* a task after a cycle is not itself on it */
    EXPECT("[[tasks]]\nmodule = \"d\"\nimage = \"i\"\nafter = \"b\"\n" T(
               "after = \"b\"\n") "[[tasks]]\nmodule = \"b\"\nimage = \"i\"\nafter = \"a\"\n",
           "cycle through 'after': b -> a -> b.");
}

static void test_error_globals(void **state)
{
    (void)state;
    EXPECT("[globals]\nx = 1\n[global_files]\nx = \"init.msgpack\"\n" T(""),
           "bad.toml:4: global 'x' is set in both [globals] and [global_files]: keep one of "
           "them.");
    EXPECT("[global_files]\ny = \"nothing.bin\"\n" T(""),
           "bad.toml:2: global file 'y': cannot open ", "nothing.bin",
           "(paths are relative to the swarm file's folder ");
    EXPECT("[global_files]\ny = 3\n" T(""),
           "bad.toml:2: global file 'y': 'y' must be a string, not integer.");
    EXPECT("[globals]\n\"\" = 1\n" T(""), "bad.toml:2: [globals]: a tag must be non-empty");
}

/* Count the occurrences of needle in hay. */
static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Load a generated file that must fail; returns the owned message. */
static char *load_fail(const strbuf *text)
{
    write_file("big.toml", sb_str(text));
    cleanup_free char *p = tpath("big.toml");
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(p, &err);
    assert_null(def);
    assert_non_null(err);
    char *msg = xstrdup(mt_error_msg(err));
    mt_error_free(&err);
    return msg;
}

/* Issue 16 item 8: 5,000 tasks sharing one module were reported pair by pair (12.5 million
 * lines, an out-of-memory abort). Each shared name is one problem, and a report is capped. */
static void test_error_large_files(void **state)
{
    (void)state;
    strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 5000; i++)
        sb_printf(&sb, "[[tasks]]\nmodule = \"a\"\nimage = \"i\"\nalias = \"t%d\"\n", i);
    cleanup_free char *msg = load_fail(&sb);
    assert_int_equal(count_of(msg, "uses module name 'a'"), 1);
    assert_non_null(strstr(msg, "like the task at line 1 (and by 4998 more tasks, at lines 9, "));
    assert_true(strlen(msg) < 2048);

    /* every alias shared by two tasks: 2,500 problems, 25 listed, the rest counted */
    sb_reset(&sb);
    for (int i = 0; i < 5000; i++)
        sb_printf(&sb, "[[tasks]]\nmodule = \"m%d\"\nimage = \"i\"\nalias = \"t%d\"\n", i, i / 2);
    free(msg);
    msg = load_fail(&sb);
    assert_int_equal(count_of(msg, "is already used by the task"), 0); /* modules come first */
    assert_non_null(strstr(msg, "... and "));
    assert_true(strlen(msg) < 16384);

    /* too many tasks, and a list too long */
    sb_reset(&sb);
    for (int i = 0; i < 10001; i++)
        sb_printf(&sb, "[[tasks]]\nmodule = \"a\"\nimage = \"i\"\n");
    free(msg);
    msg = load_fail(&sb);
    assert_non_null(strstr(msg, "the swarm has 10001 tasks; a swarm file holds at most 10000"));
    sb_reset(&sb);
    sb_puts(&sb, "[[tasks]]\nmodule = \"a\"\nimage = \"i\"\ndatasets = [");
    for (int i = 0; i < 10001; i++)
        sb_printf(&sb, "%s\"d%d\"", i ? ", " : "", i);
    sb_puts(&sb, "]\n");
    free(msg);
    msg = load_fail(&sb);
    assert_non_null(strstr(msg, "'datasets' has 10001 entries; a list holds at most 10000."));

    /* a wide fan-in with repeated entries loads, each edge once */
    sb_reset(&sb);
    sb_puts(&sb, "[[tasks]]\nmodule = \"a\"\nimage = \"i\"\nafter = [");
    for (int i = 0; i < 2000; i++)
        sb_printf(&sb, "%s\"w%d\", \"w%d\"", i ? ", " : "", i, i);
    sb_puts(&sb, "]\n");
    for (int i = 0; i < 2000; i++) {
        cleanup_free char *mod = xasprintf("fan/w%d.py", i);
        write_file(mod, MAIN_PY);
        sb_printf(&sb, "[[tasks]]\nmodule = \"fan/w%d.py\"\nimage = \"i\"\n", i);
    }
    write_file("fan.toml", sb_str(&sb));
    cleanup_free char *p = tpath("fan.toml");
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(p, &err);
    if (!def)
        fail_msg("%s", mt_error_msg(err));
    assert_int_equal(def->tasks[0].nprev, 2000);
    assert_int_equal(def->tasks[1].nnext, 1);
    swarm_def_free(def);
    sb_free(&sb);
}

/* Issue 16 item 6: a FIFO named as a global file blocked the loader (and the manager's admin
 * socket) forever; it is refused at once as not a regular file. */
static void test_error_fifo_global(void **state)
{
    (void)state;
    cleanup_free char *fifo = tpath("pipe.bin");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    EXPECT("[global_files]\ng = \"pipe.bin\"\n" T(""),
           "bad.toml:2: global file 'g': ", "pipe.bin is a FIFO (named pipe), not a regular file");
    unlink(fifo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist_round_trip),  cmocka_unit_test(test_graph_orders),
        cmocka_unit_test(test_hex_module_name),   cmocka_unit_test(test_error_parse_and_keys),
        cmocka_unit_test(test_error_task_fields), cmocka_unit_test(test_error_modules),
        cmocka_unit_test(test_error_graph),       cmocka_unit_test(test_error_globals),
        cmocka_unit_test(test_error_large_files), cmocka_unit_test(test_error_fifo_global),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
