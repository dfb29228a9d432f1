/* test_manager_config.c - the manager's key table through the configuration engine
 * (mgr_config.h, config.h): defaults under $MANTA_HOME/manager, "${VAR}" substitution,
 * unknown keys with a "did you mean", bounds at load, the secret masked by its flag in show,
 * and the reference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fsutil.h"
#include "mem.h"
#include "mgr_config.h"

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/manta-test-mgrconfig-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    setenv("HOME", tmpdir, 1);
    unsetenv("MANTA_HOME");
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Load text as m.toml; returns 0 or -1 with the error message in *msg (owned). */
static int load_text(mgr_config *cfg, const char *text, char **msg)
{
    cleanup_free char *path = xasprintf("%s/m.toml", tmpdir);
    mt_error *e = NULL;
    assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600, &e), 0);
    int rc = mgr_config_load(cfg, path, &e);
    *msg = rc < 0 ? xstrdup(mt_error_msg(e)) : NULL;
    mt_error_free(&e);
    return rc;
}

static void test_defaults(void **state)
{
    mgr_config c;
    mt_error *e = NULL;
    assert_int_equal(mgr_config_load(&c, NULL, &e), 0);
    assert_string_equal(c.listen, "127.0.0.1:50051");
    assert_string_equal(c.user_listen, "");
    assert_int_equal(c.broker_port, 1883);
    assert_int_equal(c.node_timeout, 30);
    assert_int_equal(c.call_stall_timeout, 120);
    assert_true(c.require_token);
    assert_false(c.broker_tls);
    assert_string_equal(c.broker_password, "");
    cleanup_free char *store = xasprintf("%s/.manta/manager/store.db", tmpdir);
    assert_string_equal(c.store, store);
    mgr_config_clear(&c);

    /* "$MANTA_HOME/..." defaults follow $MANTA_HOME */
    setenv("MANTA_HOME", "/srv/mh", 1);
    assert_int_equal(mgr_config_load(&c, NULL, &e), 0);
    assert_string_equal(c.secret_file, "/srv/mh/manager/secret");
    assert_string_equal(c.admin_socket, "/srv/mh/manager/admin.sock");
    mgr_config_clear(&c);
    unsetenv("MANTA_HOME");

    /* every key of the table is top-level and found by its name */
    const cfg_schema *s = mgr_config_schema();
    assert_null(s->sections);
    for (size_t i = 0; i < s->nkeys; i++) {
        assert_null(s->keys[i].section);
        assert_int_equal(cfg_key_index(s, s->keys[i].name), (int)i);
    }
    assert_int_equal(cfg_key_index(s, "nope"), -1);
}

static void test_file_values_and_env(void **state)
{
    mgr_config c;
    char *msg = NULL;
    setenv("MGR_TEST_PW", "hunter2", 1);
    unsetenv("MGR_TEST_PORT");
    int rc = load_text(&c,
                       "listen = \"0.0.0.0:7\"\n"
                       "broker_password = \"${MGR_TEST_PW}\"\n"
                       "broker_port = \"${MGR_TEST_PORT:1999}\"\n"
                       "broker_tls = true\n"
                       "store = \"~/s.db\"\n",
                       &msg);
    assert_int_equal(rc, 0);
    assert_string_equal(c.listen, "0.0.0.0:7");
    assert_string_equal(c.broker_password, "hunter2");
    assert_int_equal(c.broker_port, 1999);
    assert_true(c.broker_tls);
    cleanup_free char *store = xasprintf("%s/s.db", tmpdir);
    assert_string_equal(c.store, store);
    const cfg_schema *s = mgr_config_schema();
    int pi = cfg_key_index(s, "broker_password");
    assert_int_equal(c.book.origin[pi], CFG_FROM_ENV);
    assert_int_equal(c.book.line[pi], 2);
    assert_string_equal(c.book.written_as[pi], "${MGR_TEST_PW}");
    assert_int_equal(c.book.origin[cfg_key_index(s, "listen")], CFG_FROM_FILE);
    assert_int_equal(c.book.origin[cfg_key_index(s, "node_timeout")], CFG_FROM_DEFAULT);
    mgr_config_clear(&c);

    /* a missing variable names the key and the variable */
    unsetenv("MGR_TEST_PW");
    assert_int_equal(load_text(&c, "broker_password = \"${MGR_TEST_PW}\"\n", &msg), -1);
    assert_non_null(strstr(msg, "m.toml:1: `broker_password` is \"${MGR_TEST_PW}\" but the "
                                "environment variable MGR_TEST_PW is not set"));
    free(msg);
}

static void test_errors(void **state)
{
    mgr_config c;
    char *msg = NULL;
    /* bounds at load, in the manager's words */
    assert_int_equal(load_text(&c, "listen = \"127.0.0.1:1\"\nnode_timeout = 1\n", &msg), -1);
    assert_non_null(strstr(msg, "m.toml:2: `node_timeout` is 1; it must be between 2 and 3600."));
    free(msg);
    assert_int_equal(load_text(&c, "user_token_ttl = 1\n", &msg), -1);
    assert_non_null(strstr(msg, "`user_token_ttl` is 1; it must be between 60 and 31622400."));
    free(msg);
    /* a substituted value is checked too */
    setenv("MGR_TEST_TIMEOUT", "0", 1);
    assert_int_equal(load_text(&c, "call_stall_timeout = \"${MGR_TEST_TIMEOUT}\"\n", &msg), -1);
    assert_non_null(strstr(msg, "`call_stall_timeout` is 0; it must be between 1 and 86400."));
    free(msg);

    /* unknown keys: a suggestion when close, else where the keys are listed */
    assert_int_equal(load_text(&c, "lisen = \"x\"\n", &msg), -1);
    assert_non_null(strstr(msg, "m.toml:1: unknown key `lisen`; did you mean `listen`?"));
    free(msg);
    assert_int_equal(load_text(&c, "frobnicate = 1\n", &msg), -1);
    assert_non_null(strstr(msg, "m.toml:1: unknown key `frobnicate`; `manta_manager config "
                                "reference` lists the keys."));
    free(msg);

    /* wrong types; every problem is reported */
    assert_int_equal(load_text(&c, "broker_port = \"high\"\nbroker_tls = 1\nlisten = 3\n", &msg),
                     -1);
    assert_non_null(strstr(msg, "m.toml:1: `broker_port` must be an integer, not a string"));
    assert_non_null(strstr(msg, "m.toml:2: `broker_tls` must be true or false, not integer"));
    assert_non_null(strstr(msg, "m.toml:3: `listen` must be a string, not integer"));
    free(msg);

    /* a missing file and a TOML error are "could not be read" */
    mt_error *e = NULL;
    assert_int_equal(mgr_config_load(&c, "/nonexistent/m.toml", &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "The manager configuration could not be read"));
    mt_error_free(&e);
    assert_int_equal(load_text(&c, "listen = [\n", &msg), -1);
    assert_non_null(strstr(msg, "The manager configuration could not be read"));
    free(msg);
}

static void test_show_masks_the_secret(void **state)
{
    mgr_config c;
    char *msg = NULL;
    assert_int_equal(
        load_text(&c, "broker_username = \"manta\"\nbroker_password = \"s3cret\"\n", &msg), 0);
    cleanup_free char *shown = mgr_config_show(&c);
    assert_null(strstr(shown, "s3cret"));
    assert_non_null(strstr(shown, "broker_password = \"(set, not shown)\"\n"));
    assert_non_null(strstr(shown, "broker_username = \"manta\"\n"));
    assert_non_null(strstr(shown, "call_stall_timeout = 120\n"));
    assert_non_null(strstr(shown, "# Port of that broker.\nbroker_port = 1883\n"));
    assert_null(strstr(shown, "[")); /* no tables: every key is top-level */
    /* the mask comes from the flag: the display of the key is masked too */
    const cfg_schema *s = mgr_config_schema();
    int pi = cfg_key_index(s, "broker_password");
    assert_true(s->keys[pi].flags & CFG_SECRET);
    cleanup_free char *v = cfg_format_value(s, &c, pi);
    assert_string_equal(v, "(set, 6 characters, hidden)");
    mgr_config_clear(&c);

    /* the shown configuration loads back to the same values */
    assert_int_equal(mgr_config_load(&c, NULL, &(mt_error *){NULL}), 0);
    cleanup_free char *defaults = mgr_config_show(&c);
    mgr_config_clear(&c);
    assert_int_equal(load_text(&c, defaults, &msg), 0);
    cleanup_free char *again = mgr_config_show(&c);
    assert_string_equal(defaults, again);
    mgr_config_clear(&c);
}

static void test_reference(void **state)
{
    cleanup_free char *md = mgr_config_reference();
    const cfg_schema *s = mgr_config_schema();
    for (size_t i = 0; i < s->nkeys; i++) {
        cleanup_free char *row = xasprintf("\n| `%s` |", s->keys[i].name);
        if (!strstr(md, row))
            fail_msg("reference lacks %s", s->keys[i].name);
    }
    assert_non_null(strstr(md, "| `store` | path | `\"$MANTA_HOME/manager/store.db\"` |"));
    assert_non_null(strstr(md, "| `node_timeout` | integer, 2..3600 | `30` |"));
    assert_non_null(strstr(md, "*secret*"));
    assert_null(strstr(md, "## `[")); /* no tables */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),  cmocka_unit_test(test_file_values_and_env),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_show_masks_the_secret),
        cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
