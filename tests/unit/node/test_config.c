/* test_config.c - the configuration table, loader, substitution, validation and reference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "fsutil.h"
#include "jwt.h"
#include "mem.h"
#include "toml.h"

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/manta-test-config-XXXXXX");
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

static char *write_tmp(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    mt_error *e = NULL;
    assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600, &e), 0);
    return path;
}

/* Load text; returns 0 or -1 and leaves the error message in *msg (owned). */
static int load_text(node_config *cfg, const char *text, unsigned flags, char **msg)
{
    cleanup_free char *path = write_tmp("c.toml", text);
    mt_error *e = NULL;
    int rc = config_load_file(cfg, path, flags, &e);
    *msg = rc < 0 ? xstrdup(mt_error_msg(e)) : NULL;
    mt_error_free(&e);
    return rc;
}

static const char *TOKEN_LINE = "[identity]\nsecured_token = \"a.b.c\"\n";

static void test_defaults(void **state)
{
    node_config c;
    config_init_defaults(&c);
    assert_int_equal(c.network.manager_port, 50051);
    assert_string_equal(c.network.manager_host, "localhost");
    assert_string_equal(c.network.light_service_host, "127.0.0.1");
    assert_string_equal(c.containers.runtime, "auto");
    assert_int_equal(c.containers.gpu_enabled, -1);
    assert_int_equal(c.logging.max_file_size, 100ull << 20);
    assert_int_equal(c.containers.default_memory_limit, 4ull << 30);
    assert_true(c.containers.default_cpu_limit == 2.0);
    assert_int_equal(c.resources.max_concurrent_tasks, 2);
    assert_int_equal(c.logging.backup_count, 5);
    assert_string_equal(c.logging.level, "INFO");
    assert_null(c.identity.secured_token);
    assert_null(c.identity.alias);
    /* ~ in path defaults is expanded */
    char *want = xasprintf("%s/.manta/images", tmpdir);
    assert_string_equal(c.containers.image_store, want);
    free(want);
    config_free(&c);
}

static void test_table_consistency(void **state)
{
    size_t n;
    const cfg_key *keys = config_keys(&n);
    assert_true(n > 50);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(keys[i].doc);
        assert_true(strlen(keys[i].doc) > 10);
        char *dotted = xasprintf("%s.%s", keys[i].section, keys[i].name);
        assert_int_equal(config_key_index(dotted), (int)i);
        free(dotted);
        if (keys[i].alias_of)
            assert_true(config_key_index(keys[i].alias_of) >= 0);
        /* no duplicates */
        for (size_t j = 0; j < i; j++)
            assert_false(strcmp(keys[i].section, keys[j].section) == 0 &&
                         strcmp(keys[i].name, keys[j].name) == 0);
    }
    /* Everything the reference (section 3.2) and the seeds name exists. */
    const char *must[] = {
        "identity.secured_token",
        "identity.alias",
        "identity.random_id",
        "metadata.name",
        "metadata.created_at",
        "metadata.version",
        "metadata.description",
        "network.manager_host",
        "network.manager_port",
        "network.light_service_host",
        "network.light_service_port",
        "mqtt.ping_interval",
        "mqtt.reconnect_attempts",
        "mqtt.reconnect_delay",
        "mqtt.broker_host",
        "mqtt.broker_port",
        "mqtt.topics",
        "containers.gpu_enabled",
        "containers.default_memory_limit",
        "containers.default_cpu_limit",
        "containers.docker_network",
        "containers.runtime",
        "containers.pull_timeout",
        "containers.log_config",
        "datasets.base_path",
        "datasets.mount_readonly",
        "datasets.mappings",
        "datasets.cache_metadata",
        "tasks.max_concurrent",
        "tasks.task_timeout",
        "tasks.retry_attempts",
        "tasks.temp_folder",
        "tasks.cleanup_on_failure",
        "tasks.stream_logs",
        "resources.reserve_cpu_percent",
        "resources.reserve_memory_mb",
        "resources.max_disk_usage_percent",
        "resources.monitor_interval",
        "resources.max_concurrent_tasks",
        "logging.level",
        "logging.filename",
        "logging.log_to_file",
        "logging.log_to_console",
        "logging.debug_mode",
        "logging.max_file_size",
        "logging.backup_count",
        "security.use_tls",
        "security.cert_folder",
        "security.verify_ssl",
        "security.token_refresh_interval",
    };
    for (size_t i = 0; i < ARRAY_LEN(must); i++) {
        if (config_key_index(must[i]) < 0)
            fail_msg("missing key %s", must[i]);
    }
}

static void test_load_types_and_origins(void **state)
{
    node_config c;
    char *msg = NULL;
    int rc = load_text(&c,
                       "[identity]\n"
                       "secured_token = \"x.y.z\"\n"
                       "alias = \"gpu-worker-1\"\n"
                       "[network]\n"
                       "manager_port = 1234\n"
                       "[containers]\n"
                       "default_memory_limit = \"512M\"\n"
                       "default_cpu_limit = \"1.5\"\n"
                       "gpu_enabled = true\n"
                       "runtime = \"RUNC\"\n"
                       "[logging]\n"
                       "max_file_size = 4096\n"
                       "level = \"debug\"\n"
                       "[datasets]\n"
                       "mappings = { a = \"~/data/a\", b = \"rel/b\" }\n"
                       "[mqtt]\n"
                       "reconnect_delay = 2\n"
                       "topics = [\"x\", \"y\"]\n",
                       0, &msg);
    if (rc < 0)
        fail_msg("load failed: %s", msg);
    assert_string_equal(c.identity.alias, "gpu-worker-1");
    assert_int_equal(c.network.manager_port, 1234);
    assert_int_equal(c.containers.default_memory_limit, 512ull << 20);
    assert_true(c.containers.default_cpu_limit == 1.5);
    assert_int_equal(c.containers.gpu_enabled, 1);
    assert_string_equal(c.containers.runtime, "runc");
    assert_string_equal(c.logging.level, "DEBUG");
    assert_int_equal(c.logging.max_file_size, 4096);
    assert_true(c.mqtt.reconnect_delay == 2.0);
    assert_int_equal(c.mqtt.topics.len, 2);
    assert_int_equal(c.datasets.mappings.len, 2);
    char *a = xasprintf("%s/data/a", tmpdir);
    assert_string_equal(c.datasets.mappings.values[0], a);
    free(a);
    int pi = config_key_index("network.manager_port");
    assert_int_equal(c.origin[pi], CFG_FROM_FILE);
    assert_int_equal(c.line[pi], 5);
    assert_int_equal(c.origin[config_key_index("network.manager_host")], CFG_FROM_DEFAULT);
    config_finalize(&c, NULL);
    assert_string_equal(c.datasets.mappings.values[1], "/data/datasets/rel/b");
    char *logf = xasprintf("%s/.manta/logs/nodes/gpu-worker-1.log", tmpdir);
    assert_string_equal(c.logging.filename, logf);
    free(logf);
    config_free(&c);
}

static void test_env_substitution(void **state)
{
    node_config c;
    char *msg = NULL;
    setenv("T_PORT", "4321", 1);
    setenv("T_TOKEN", "h.p.s", 1);
    unsetenv("T_MISSING");
    int rc = load_text(&c,
                       "[identity]\nsecured_token = \"${T_TOKEN}\"\n"
                       "[network]\nmanager_port = \"${T_PORT}\"\n"
                       "manager_host = \"${T_MISSING:example.org}\"\n"
                       "[containers]\ngpu_enabled = \"${T_MISSING:false}\"\n"
                       "[logging]\nbackup_count = \"${T_MISSING:7}\"\n"
                       "[metadata]\ndescription = \"Bearer ${T_TOKEN}\"\n",
                       0, &msg);
    if (rc < 0)
        fail_msg("load failed: %s", msg);
    assert_string_equal(c.identity.secured_token, "h.p.s");
    assert_int_equal(c.network.manager_port, 4321);
    assert_string_equal(c.network.manager_host, "example.org");
    assert_int_equal(c.containers.gpu_enabled, 0);
    assert_int_equal(c.logging.backup_count, 7);
    /* only whole-string references are substituted */
    assert_string_equal(c.metadata.description, "Bearer ${T_TOKEN}");
    int ti = config_key_index("identity.secured_token");
    assert_int_equal(c.origin[ti], CFG_FROM_ENV);
    assert_string_equal(c.written_as[ti], "${T_TOKEN}");
    config_free(&c);

    /* missing variable without default: error names the key and the variable */
    rc = load_text(&c, "[identity]\nsecured_token = \"${T_MISSING}\"\n", 0, &msg);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(msg, "identity.secured_token"));
    assert_non_null(strstr(msg, "T_MISSING"));
    assert_non_null(strstr(msg, ":2:"));
    free(msg);
    config_free(&c);

    /* lenient: loads, and validation reports it */
    rc =
        load_text(&c, "[identity]\nsecured_token = \"${T_MISSING}\"\n", CFG_LOAD_LENIENT_ENV, &msg);
    assert_int_equal(rc, 0);
    assert_int_equal(c.origin[ti], CFG_MISSING_ENV);
    char **issues = NULL;
    size_t n = config_validate(&c, &issues);
    assert_true(n >= 1);
    assert_non_null(strstr(issues[0], "T_MISSING"));
    mem_free_strv(&issues);
    config_free(&c);

    /* substituted text that does not convert */
    setenv("T_BAD", "fifty", 1);
    rc = load_text(
        &c, "[identity]\nsecured_token = \"t\"\n[network]\nmanager_port = \"${T_BAD}\"\n", 0, &msg);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(msg, "network.manager_port must be an integer"));
    assert_non_null(strstr(msg, "fifty"));
    free(msg);
    config_free(&c);
}

static void test_unknown_and_wrong_types(void **state)
{
    node_config c;
    char *msg = NULL;
    int rc = load_text(&c,
                       "[identity]\nsecured_token = \"t\"\n"
                       "[network]\nmanger_host = \"x\"\n"
                       "manager_port = true\n"
                       "[netwrok]\nx = 1\n"
                       "[resources]\nmax_concurrent_tasks = \"two\"\n"
                       "[logging]\nlevel = \"LOUD\"\n"
                       "[containers]\nmappings = {}\n",
                       0, &msg);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(msg, ":4: unknown key 'manger_host' in [network]; did you mean "
                                "'manager_host'?"));
    assert_non_null(strstr(msg, ":5: network.manager_port must be an integer, not boolean"));
    assert_non_null(strstr(msg, ":6: unknown table [netwrok]; did you mean [network]?"));
    assert_non_null(strstr(msg, ":9: resources.max_concurrent_tasks must be an integer"));
    assert_non_null(strstr(msg, "logging.level must be \"DEBUG\", \"INFO\""));
    assert_non_null(strstr(msg, "it belongs in [datasets]"));
    free(msg);
    config_free(&c);

    rc = load_text(&c, "[network]\nmanager_host = \"x\"\n", 0, &msg);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(msg, "identity.secured_token is required"));
    free(msg);
    config_free(&c);

    rc = load_text(&c, "alias = \"x\"\n[identity]\nsecured_token = \"t\"\n", 0, &msg);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(msg, ":1: key 'alias' must be inside the [identity] table"));
    free(msg);
    config_free(&c);

    /* a TOML syntax error carries line and column */
    rc = load_text(&c, "[identity]\nsecured_token = \n", 0, &msg);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(msg, "c.toml:2:"));
    free(msg);
    config_free(&c);
}

static void test_alias_key(void **state)
{
    node_config c;
    char *msg = NULL;
    char *text = xasprintf("%s[tasks]\nmax_concurrent = 5\n", TOKEN_LINE);
    assert_int_equal(load_text(&c, text, 0, &msg), 0);
    free(text);
    assert_int_equal(c.resources.max_concurrent_tasks, 5);
    config_free(&c);
    text = xasprintf("%s[tasks]\nmax_concurrent = 5\n[resources]\nmax_concurrent_tasks = 1\n",
                     TOKEN_LINE);
    assert_int_equal(load_text(&c, text, 0, &msg), 0);
    free(text);
    assert_int_equal(c.resources.max_concurrent_tasks, 1);
    config_free(&c);
}

static void test_seed_config(void **state)
{
    /* The node operator guide's example, verbatim (a multi-line inline table: TOML 1.1). */
    node_config c;
    char *msg = NULL;
    setenv("MANTA_NODE_TOKEN", "aaa.bbb.ccc", 1);
    int rc = load_text(&c,
                       "# Example configuration\n"
                       "[identity]\n"
                       "secured_token = \"${MANTA_NODE_TOKEN}\"\n"
                       "alias = \"gpu-worker-1\"\n"
                       "\n"
                       "[network]\n"
                       "manager_host = \"localhost\"\n"
                       "manager_port = 50051\n"
                       "\n"
                       "[resources]\n"
                       "max_concurrent_tasks = 2\n"
                       "\n"
                       "[datasets]\n"
                       "mappings = {\n"
                       "  \"training_data\" = \"/data/datasets/training\"\n"
                       "}\n",
                       0, &msg);
    if (rc < 0)
        fail_msg("seed config did not load: %s", msg);
    assert_string_equal(c.identity.secured_token, "aaa.bbb.ccc");
    assert_int_equal(c.datasets.mappings.len, 1);
    assert_string_equal(c.datasets.mappings.keys[0], "training_data");
    config_free(&c);

    rc = load_text(&c,
                   "[identity]\nsecured_token = \"t\"\nalias = \"ml-workstation\"\n"
                   "[containers]\ngpu_enabled = true\n"
                   "[resources]\nmax_concurrent_tasks = 1  # One task at a time for GPU\n"
                   "reserve_cpu_percent = 5\nreserve_memory_mb = 256\n"
                   "[logging]\nlevel = \"DEBUG\"\ndebug_mode = true\nlog_to_console = true\n"
                   "filename = \"~/.manta/logs/nodes/node.log\"\nlog_to_file = true\n"
                   "max_file_size = \"100M\"\nbackup_count = 5\n",
                   0, &msg);
    if (rc < 0)
        fail_msg("seed snippets did not load: %s", msg);
    config_free(&c);
}

static char *make_jwt(int64_t exp)
{
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[128];
    snprintf(payload, sizeof(payload), "{\"sub\":\"node\",\"exp\":%lld}", (long long)exp);
    char *h = base64url_encode((const unsigned char *)hdr, strlen(hdr));
    char *p = base64url_encode((const unsigned char *)payload, strlen(payload));
    char *t = xasprintf("%s.%s.c2lnbmF0dXJl", h, p);
    free(h);
    free(p);
    return t;
}

static bool has_issue(char **issues, const char *needle)
{
    for (char **s = issues; *s; s++)
        if (strstr(*s, needle))
            return true;
    return false;
}

static void test_validation(void **state)
{
    node_config c;
    char *msg = NULL;
    /* placeholder token: the reference's three lines */
    assert_int_equal(
        load_text(&c, "[identity]\nsecured_token = \"<YOUR_JWT_TOKEN_HERE>\"\n", 0, &msg), 0);
    char **issues = NULL;
    assert_int_equal(config_validate(&c, &issues), 3);
    assert_string_equal(issues[0],
                        "identity.secured_token is required (cannot be empty or placeholder)");
    mem_free_strv(&issues);
    config_free(&c);

    /* good token, everything valid */
    char *good = make_jwt((int64_t)time(NULL) + 3600);
    char *text = xasprintf("[identity]\nsecured_token = \"%s\"\n", good);
    assert_int_equal(load_text(&c, text, 0, &msg), 0);
    free(text);
    size_t n = config_validate(&c, &issues);
    if (n)
        fail_msg("unexpected issue: %s", issues[0]);
    mem_free_strv(&issues);
    config_free(&c);

    /* expired token, bad shapes, bounds, missing dataset, TLS files */
    char *old = make_jwt(1000000000);
    text = xasprintf("[identity]\nsecured_token = \"%s\"\n"
                     "[network]\nmanager_port = 70000\nlight_service_port = 80\n"
                     "[resources]\nreserve_cpu_percent = 60\n"
                     "[datasets]\nmappings = { gone = \"/nonexistent/manta\" }\n"
                     "[security]\nuse_tls = true\nca_file = \"/nonexistent/ca.pem\"\n"
                     "[containers]\ndocker_network = \"bridge\"\n",
                     old);
    assert_int_equal(load_text(&c, text, 0, &msg), 0);
    free(text);
    config_validate(&c, &issues);
    assert_true(has_issue(issues, "expired on 2001-09-09"));
    assert_true(has_issue(issues, "network.manager_port (70000) must be between 1 and 65535"));
    assert_true(has_issue(issues, "network.light_service_port (80) must be between 1024"));
    assert_true(has_issue(issues, "resources.reserve_cpu_percent should not exceed 50%"));
    assert_true(has_issue(issues, "Dataset path does not exist: gone -> /nonexistent/manta"));
    assert_true(has_issue(issues, "security.ca_file: file does not exist: /nonexistent/ca.pem"));
    assert_true(has_issue(issues, "docker_network = \"bridge\" is not supported"));
    mem_free_strv(&issues);
    config_free(&c);

    assert_int_equal(load_text(&c, "[identity]\nsecured_token = \"abc\"\n", 0, &msg), 0);
    config_validate(&c, &issues);
    assert_true(has_issue(issues, "not a JWT (1 part, expected 3"));
    mem_free_strv(&issues);
    config_free(&c);
    free(good);
    free(old);
}

static void test_normalize_verbatim(void **state)
{
    mt_error *e = NULL;
    const char *text = "[logging]\nlevel = \"INFO\"\n"
                       "[network]\nmanager_port = \"${PORT}\"\n"
                       "[tasks]\nmax_concurrent = 3\n"
                       "[identity]\nsecured_token = \"${MANTA_NODE_TOKEN}\"\n";
    toml_value *root = toml_parse(text, strlen(text), "t.toml", TOML_1_1, &e);
    assert_non_null(root);
    toml_value *norm = NULL;
    unsetenv("PORT");
    assert_int_equal(config_from_tree(root, "t.toml", CFG_LOAD_VERBATIM, NULL, &norm, &e), 0);
    char *out = toml_write(norm);
    /* sections in table order, alias renamed, ${} kept verbatim */
    const char *id = strstr(out, "[identity]");
    const char *net = strstr(out, "[network]");
    const char *res = strstr(out, "[resources]");
    const char *log = strstr(out, "[logging]");
    assert_non_null(id);
    assert_true(id < net && net < res && res < log);
    assert_non_null(strstr(out, "manager_port = \"${PORT}\""));
    assert_non_null(strstr(out, "max_concurrent_tasks = 3"));
    assert_null(strstr(out, "[tasks]"));
    free(out);
    toml_free(norm);
    toml_free(root);

    /* verbatim mode still rejects a plain wrong type */
    text = "[identity]\nsecured_token = \"t\"\n[network]\nmanager_port = \"abc\"\n";
    root = toml_parse(text, strlen(text), "t.toml", TOML_1_1, &e);
    assert_int_equal(config_from_tree(root, "t.toml", CFG_LOAD_VERBATIM, NULL, &norm, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "manager_port must be an integer"));
    mt_error_free(&e);
    toml_free(root);
}

static void test_format_value_masks_secrets(void **state)
{
    node_config c;
    char *msg = NULL;
    assert_int_equal(load_text(&c,
                               "[identity]\nsecured_token = \"supersecret.token.value\"\n"
                               "[mqtt]\npassword = \"hunter22\"\n",
                               0, &msg),
                     0);
    char *v = config_format_value(&c, config_key_index("identity.secured_token"));
    assert_null(strstr(v, "supersecret"));
    assert_non_null(strstr(v, "hidden"));
    free(v);
    v = config_format_value(&c, config_key_index("mqtt.password"));
    assert_null(strstr(v, "hunter22"));
    free(v);
    v = config_format_value(&c, config_key_index("containers.default_memory_limit"));
    assert_string_equal(v, "\"4G\"");
    free(v);
    config_free(&c);
}

static void test_reference_markdown(void **state)
{
    char *md = config_reference_markdown();
    size_t n;
    const cfg_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char *row = xasprintf("| `%s` |", keys[i].name);
        if (!strstr(md, row))
            fail_msg("reference lacks %s.%s", keys[i].section, keys[i].name);
        free(row);
    }
    assert_non_null(strstr(md, "## `[identity]`"));
    assert_non_null(strstr(md, "**required**"));
    free(md);
}

/* The keys that may change live are exactly logging.level and datasets.mappings, each with its
 * apply step; the reload plan is decided by the table, not by key names. */
static void test_reload_plan(void **state)
{
    size_t n;
    const cfg_key *keys = config_keys(&n);
    size_t nreload = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(keys[i].flags & CFG_RELOAD)) {
            assert_int_equal(keys[i].apply, NODE_APPLY_NONE);
            continue;
        }
        nreload++;
        assert_true(keys[i].apply > NODE_APPLY_NONE && keys[i].apply < NODE_APPLY_COUNT);
    }
    assert_int_equal(nreload, 2);
    assert_int_equal(keys[config_key_index("logging.level")].apply, NODE_APPLY_LOG_LEVEL);
    assert_int_equal(keys[config_key_index("datasets.mappings")].apply, NODE_APPLY_DATASETS);

    char *msg = NULL;
    node_config a, b;
    assert_int_equal(load_text(&a, "[identity]\nsecured_token = \"a.b.c\"\n", 0, &msg), 0);
    assert_int_equal(load_text(&b, "[identity]\nsecured_token = \"a.b.c\"\n", 0, &msg), 0);
    uint32_t steps = 99;
    char *restart = config_reload_plan(&a, &b, &steps);
    assert_int_equal(steps, 0);
    assert_string_equal(restart, "");
    free(restart);
    config_free(&b);

    /* live keys only */
    assert_int_equal(load_text(&b,
                               "[identity]\nsecured_token = \"a.b.c\"\n[logging]\nlevel = "
                               "\"debug\"\n[datasets]\nmappings = { m = \"/tmp\" }\n",
                               0, &msg),
                     0);
    restart = config_reload_plan(&a, &b, &steps);
    assert_int_equal(steps, (1u << NODE_APPLY_LOG_LEVEL) | (1u << NODE_APPLY_DATASETS));
    assert_string_equal(restart, "");
    free(restart);
    config_free(&b);

    /* a restart key, a secret (compared unmasked) and an alias (reported once, by its
     * preferred name) */
    assert_int_equal(load_text(&b,
                               "[identity]\nsecured_token = \"x.y.z\"\n[network]\n"
                               "manager_port = 50052\n[tasks]\nmax_concurrent = 7\n",
                               0, &msg),
                     0);
    restart = config_reload_plan(&a, &b, &steps);
    assert_int_equal(steps, 0);
    assert_string_equal(restart, "identity.secured_token, network.manager_port, "
                                 "resources.max_concurrent_tasks");
    free(restart);
    config_free(&b);
    config_free(&a);
}

static void test_names(void **state)
{
    assert_true(config_name_valid("default"));
    assert_true(config_name_valid("gpu-config.v2"));
    assert_false(config_name_valid(""));
    assert_false(config_name_valid("../etc"));
    assert_false(config_name_valid("a/b"));
    assert_false(config_name_valid(".hidden"));
    assert_false(config_name_valid("x.toml"));
    char *s = config_safe_name("prod gpu/01");
    assert_string_equal(s, "prod_gpu_01");
    free(s);
}

static void test_jwt(void **state)
{
    char *t = make_jwt(1700000000);
    jwt_info ji;
    mt_error *e = NULL;
    assert_int_equal(jwt_inspect(t, &ji, &e), 0);
    assert_true(ji.has_exp);
    assert_int_equal(ji.exp, 1700000000);
    assert_string_equal(ji.alg, "HS256");
    assert_string_equal(ji.sub, "node");
    free(t);
    assert_int_equal(jwt_inspect("a.b", &ji, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "2 parts"));
    mt_error_free(&e);
    assert_int_equal(jwt_inspect("!!.e30.x", &ji, &e), -1);
    mt_error_free(&e);
    size_t len;
    unsigned char *d = base64url_decode("aGVsbG8", 7, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(d, "hello", 5);
    free(d);
    assert_null(base64url_decode("a", 1, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_table_consistency),
        cmocka_unit_test(test_load_types_and_origins),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_unknown_and_wrong_types),
        cmocka_unit_test(test_alias_key),
        cmocka_unit_test(test_seed_config),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_normalize_verbatim),
        cmocka_unit_test(test_format_value_masks_secrets),
        cmocka_unit_test(test_reference_markdown),
        cmocka_unit_test(test_reload_plan),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_jwt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
