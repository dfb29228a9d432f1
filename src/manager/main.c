/* main.c - the manta_manager command line. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#include "admin.h"
#include "broker.h"
#include "clock.h"
#include "fsutil.h"
#include "mem.h"
#include "mgr.h"
#include "web.h"
#include "paths.h"
#include "runner.h"
#include "swarmfile.h"
#include "units.h"
#include "users.h"

static const char usage_text[] =
    "Usage: manta_manager COMMAND [OPTIONS]\n"
    "\n"
    "A compact self-hosted manager for Manta nodes: the manager side of the node protocol, a\n"
    "swarm runner and a store of globals, results and task logs.\n"
    "\n"
    "Commands:\n"
    "  serve                 serve nodes until stopped (SIGINT/SIGTERM)\n"
    "  run SWARM_FILE        serve, wait for nodes, run one swarm, print its progress and\n"
    "                        results, exit with its outcome (0 done, 1 failed, 3 timed out)\n"
    "  submit SWARM_FILE     start a swarm on a running manager\n"
    "  nodes                 the nodes of a running manager\n"
    "  swarms                its swarms\n"
    "  status SWARM          one swarm's status\n"
    "  stop SWARM            stop a swarm\n"
    "  results SWARM         results of a swarm [--tag T] [--iteration N] [--json]\n"
    "  logs SWARM            task output of a swarm [--task ALIAS] [--node ID]\n"
    "  token create --node ALIAS [--ttl DURATION]\n"
    "                        mint a node token (HS256), e.g. --ttl 30d; default: no expiry\n"
    "  token create --user NAME [--ttl DURATION]\n"
    "                        mint a user token (for the Manta SDK); default --ttl: 7d\n"
    "  user create NAME [--password-file F]\n"
    "                        add a user of the user services (SDK SignIn); the password is\n"
    "                        asked twice on a terminal, else read from the first line of F\n"
    "                        or of standard input\n"
    "  user list             the users\n"
    "  user delete NAME      remove a user (their tokens stop working)\n"
    "  config show|reference the configuration in effect, or the reference of every key\n"
    "  broker-config [--node ALIAS]... [--out DIR]\n"
    "                        write mosquitto's password file, ACL and configuration for the\n"
    "                        manager and its nodes, and each node's [mqtt] credentials\n"
    "                        (default DIR: $MANTA_HOME/manager/broker; docs/broker-acl.md)\n"
    "\n"
    "nodes, swarms, status, results and logs read the store (--store, else the configured\n"
    "one) when no manager serves it; an explicit --store always means that store.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE     configuration file (default: none, built-in defaults)\n"
    "      --listen HOST:PORT   node service address (overrides `listen`)\n"
    "      --user-listen HOST:PORT\n"
    "                        address of the user services (overrides `user_listen`; default:\n"
    "                        the node service's)\n"
    "      --http HOST:PORT  serve the web dashboard there (overrides `http_listen`;\n"
    "                        docs/dashboard.md)\n"
    "      --broker HOST:PORT   MQTT broker (overrides broker_host/broker_port)\n"
    "      --store FILE      SQLite store (overrides `store`)\n"
    "      --admin PATH      admin socket (overrides `admin_socket`)\n"
    "      --no-token        accept nodes without a token (closed test machines only)\n"
    "  -n, --nodes N         run: nodes to wait for before starting (default 1)\n"
    "      --wait SECONDS    run: how long to wait for them (default 120)\n"
    "      --timeout SECONDS run: give up on the swarm after this long (default 1800)\n"
    "  -h, --help            this help\n"
    "  -V, --version         the version\n";

typedef struct opts {
    const char *config;
    mgr_overrides ov;
    long nodes, wait_s, timeout_s;
    const char *tag, *task, *node, *alias, *ttl, *user, *password_file, *out;
    const char **aliases; /* every --node, for broker-config */
    size_t naliases;
    long iteration;
    bool json;
} opts;

/* The longest token lifetime --ttl accepts: 100 years (a token that should never expire is
 * minted without --ttl). */
#define TOKEN_TTL_MAX_S (100LL * 366 * 86400)

static int fail(mt_error **err)
{
    fprintf(stderr, "manta_manager: %s\n", mt_error_msg(*err));
    int code = (*err)->code == MT_ERR_USAGE ? 2 : 1;
    mt_error_free(err);
    return code;
}

/* Ask the running manager, or read the store.
 *
 * The read-only commands (nodes, swarms, status, results, logs) read the store file when no
 * manager answers for it: nothing listens on the admin socket (none, or a stale socket file),
 * or --store names a store the manager answering does not serve (an explicit --store always
 * means that store; its own manager, when it runs, answers with what it has in memory too).
 * The store read is --store, else the configuration's. stop and submit need the manager: with
 * --store, only the manager of that store. */
static json_t *ask(const opts *o, json_t *req, mt_error **err)
{
    mgr_config cfg;
    if (mgr_config_load(&cfg, o->config, err) < 0) {
        json_decref(req);
        return NULL;
    }
    const char *sock = o->ov.admin_socket ? o->ov.admin_socket : cfg.admin_socket;
    cleanup_free char *db = NULL;
    if (o->ov.store) { /* absolute: the manager compares it with its own store */
        db = realpath(o->ov.store, NULL);
        if (!db) {
            char cwd[4096];
            db = *o->ov.store == '/' || !getcwd(cwd, sizeof(cwd)) ? xstrdup(o->ov.store)
                                                                  : fs_join(cwd, o->ov.store);
        }
        json_object_set_new(req, "store", json_string(db));
    } else
        db = xstrdup(cfg.store);
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *ans = admin_request(sock, req, err);
    if (!ans && (*err)->code == MT_ERR_NOTFOUND && admin_read_only(cmd)) {
        if (access(db, F_OK) == 0) {
            mt_error_free(err);
            ans = admin_local(db, req, err);
        } else if (o->ov.store) {
            mt_error_free(err);
            mt_error_set(err, MT_ERR_NOTFOUND,
                         "There is no store %s: --store names the store file of a manager "
                         "(its `store` setting).",
                         db);
        } else {
            mt_error_free(err);
            mt_error_set(err, MT_ERR_NOTFOUND,
                         "No manager is running here (nothing answers on %s), and there is no "
                         "store %s to read: start a manager with `manta_manager serve` or "
                         "`manta_manager run SWARM`, or name a store with --store.",
                         sock, db);
        }
    }
    mgr_config_clear(&cfg);
    json_decref(req);
    return ans;
}

static void fmt_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

/* How an admin command's answer is printed (without --json). */
typedef void (*show_fn)(json_t *ans);

static void show_nodes(json_t *ans)
{
    json_t *arr = json_object_get(ans, "nodes"), *n;
    size_t i;
    printf("%-34s %-16s %-10s %-8s %s\n", "NODE", "ALIAS", "STATE", "RUNNING", "DATASETS");
    json_array_foreach(arr, i, n)
    {
        cleanup_free char *ds = json_dumps(json_object_get(n, "datasets"), JSON_COMPACT);
        /* from a store (no manager serves it): offline; --json has last_status */
        const char *stored = json_string_value(json_object_get(n, "last_status"));
        const char *state = stored                                          ? "offline"
                            : json_is_true(json_object_get(n, "connected")) ? "connected"
                                                                            : "lost";
        char running[24] = "-";
        if (!stored)
            snprintf(running, sizeof(running), "%lld",
                     (long long)json_integer_value(json_object_get(n, "running")));
        printf("%-34s %-16s %-10s %-8s %s\n", json_string_value(json_object_get(n, "id")),
               json_string_value(json_object_get(n, "alias")), state, running, ds);
    }
}

static void show_swarms(json_t *ans)
{
    json_t *arr = json_object_get(ans, "swarms"), *s;
    size_t i;
    printf("%-34s %-12s %-10s %-5s %-19s %s\n", "SWARM", "NAME", "STATUS", "ITER", "CREATED",
           "DETAIL");
    json_array_foreach(arr, i, s)
    {
        char when[32];
        fmt_time(json_integer_value(json_object_get(s, "created_ms")), when);
        printf("%-34s %-12s %-10s %-5lld %-19s %s\n", json_string_value(json_object_get(s, "id")),
               json_string_value(json_object_get(s, "name")),
               json_string_value(json_object_get(s, "status")),
               (long long)json_integer_value(json_object_get(s, "iteration")), when,
               json_string_value(json_object_get(s, "detail")));
    }
}

static void show_results(json_t *ans)
{
    json_t *arr = json_object_get(ans, "results"), *r;
    size_t i;
    printf("%-5s %-34s %-14s %-20s %s\n", "ITER", "NODE", "TASK", "TAG", "BYTES");
    json_array_foreach(arr, i, r)
    {
        const char *alias = json_string_value(json_object_get(r, "alias"));
        printf("%-5lld %-34s %-14s %-20s %lld\n",
               (long long)json_integer_value(json_object_get(r, "iteration")),
               json_string_value(json_object_get(r, "node")),
               alias && *alias ? alias : json_string_value(json_object_get(r, "task")),
               json_string_value(json_object_get(r, "tag")),
               (long long)json_integer_value(json_object_get(r, "bytes")));
    }
}

static void show_logs(json_t *ans)
{
    json_t *arr = json_object_get(ans, "logs"), *l;
    size_t i;
    json_array_foreach(arr, i, l)
    {
        const char *alias = json_string_value(json_object_get(l, "alias"));
        printf("==> %s on %s, iteration %lld <==\n",
               alias && *alias ? alias : json_string_value(json_object_get(l, "task")),
               json_string_value(json_object_get(l, "node")),
               (long long)json_integer_value(json_object_get(l, "iteration")));
        fputs(json_string_value(json_object_get(l, "text")), stdout);
    }
    arr = json_object_get(ans, "errors");
    json_array_foreach(arr, i, l) printf(
        "error %lld from %s: %s\n", (long long)json_integer_value(json_object_get(l, "error_id")),
        json_string_value(json_object_get(l, "node")),
        json_string_value(json_object_get(l, "content")));
}

/* status, stop and submit: the swarm, with its status when the answer has one. */
static void show_swarm(json_t *ans)
{
    const char *sw = json_string_value(json_object_get(ans, "swarm"));
    const char *status = json_string_value(json_object_get(ans, "status"));
    if (status)
        printf("%s %s iteration %lld %s\n", sw, status,
               (long long)json_integer_value(json_object_get(ans, "iteration")),
               json_string_value(json_object_get(ans, "detail")));
    else
        printf("%s\n", sw);
}

/* Ask for cmd (with arg under key, if any) and print the answer: JSON with --json, else show. */
static int cmd_admin(const opts *o, const char *cmd, const char *key, const char *arg, show_fn show)
{
    mt_error *err = NULL;
    json_t *req = json_pack("{s:s}", "cmd", cmd);
    if (arg)
        json_object_set_new(req, key, json_string(arg));
    if (o->tag)
        json_object_set_new(req, "tag", json_string(o->tag));
    if (o->iteration >= 0)
        json_object_set_new(req, "iteration", json_integer(o->iteration));
    if (o->task)
        json_object_set_new(req, "task", json_string(o->task));
    if (o->node)
        json_object_set_new(req, "node", json_string(o->node));
    if (o->json)
        json_object_set_new(req, "data", json_true());
    json_t *ans = ask(o, req, &err);
    if (!ans)
        return fail(&err);
    if (o->json) {
        cleanup_free char *t = json_dumps(ans, JSON_INDENT(2));
        puts(t);
    } else {
        show(ans);
    }
    json_decref(ans);
    return 0;
}

/* ---- run ---- */
typedef struct run_ctx {
    manager *m;
    char xid[NODE_XID_MAX + 1];
    int64_t t0;
} run_ctx;

static void print_progress(void *ctx, const char *swarm, const char *line)
{
    run_ctx *rc = ctx;
    printf("[%6.1fs] %s\n", (double)(clock_mono_ms() - rc->t0) / 1000.0, line);
    fflush(stdout);
}

typedef struct wait_ctx {
    manager *m;
    long want;
} wait_ctx;

static bool enough_nodes(void *ctx)
{
    wait_ctx *w = ctx;
    return (long)mgr_connected_nodes(w->m) >= w->want;
}

static bool run_over(void *ctx)
{
    run_ctx *rc = ctx;
    pthread_mutex_lock(&rc->m->lock);
    int st = runner_status(rc->m, rc->xid, NULL, NULL, 0);
    pthread_mutex_unlock(&rc->m->lock);
    return st != RUN_RUNNING;
}

/* Where the dashboard is, when there is one: its address with the port actually bound. */
static void print_dashboard(manager *m)
{
    if (!m->web)
        return;
    const char *a = m->cfg.http_listen, *colon = strrchr(a, ':');
    printf("manta_manager: dashboard on %s://%.*s:%d/\n", web_tls(m->web) ? "https" : "http",
           (int)(colon - a), a, web_port(m->web));
}

static int cmd_run(opts *o, const char *file)
{
    mt_error *err = NULL;
    swarm_def *def = swarmfile_load(file, &err); /* check the file before serving anything */
    if (!def)
        return fail(&err);
    static manager m;
    if (mgr_open(&m, o->config, &o->ov, &err) < 0) {
        swarm_def_free(def);
        int code = fail(&err);
        mgr_close(&m);
        return code;
    }
    run_ctx rc = {.m = &m, .t0 = clock_mono_ms()};
    print_dashboard(&m);
    printf("manta_manager: serving nodes on port %d; waiting for %ld node%s (up to %ld s)\n",
           m.port, o->nodes, o->nodes == 1 ? "" : "s", o->wait_s);
    fflush(stdout);
    wait_ctx w = {.m = &m, .want = o->nodes};
    int lr = mgr_loop(&m, enough_nodes, &w, clock_mono_ms() + o->wait_s * 1000);
    if (lr != 0) {
        swarm_def_free(def);
        if (lr == 2)
            fprintf(stderr,
                    "manta_manager: only %zu of %ld nodes connected within %ld s: check the "
                    "nodes' manager address and tokens (their logs say why).\n",
                    mgr_connected_nodes(&m), o->nodes, o->wait_s);
        mgr_close(&m);
        return lr == 2 ? 3 : 1;
    }
    pthread_mutex_lock(&m.lock);
    m.progress = print_progress;
    m.progress_ctx = &rc;
    int sr = runner_start(&m, def, rc.xid, &err);
    pthread_mutex_unlock(&m.lock);
    if (sr < 0) {
        int code = fail(&err);
        mgr_loop(&m, NULL, NULL, clock_mono_ms() + 500); /* deliver the stop commands */
        mgr_close(&m);
        return code;
    }
    lr = mgr_loop(&m, run_over, &rc, clock_mono_ms() + o->timeout_s * 1000);
    pthread_mutex_lock(&m.lock);
    if (lr != 0)
        runner_cancel(&m, rc.xid, lr == 2 ? "timed out" : "interrupted");
    uint32_t it = 0;
    char detail[512] = "";
    int st = runner_status(&m, rc.xid, &it, detail, sizeof(detail));
    pthread_mutex_unlock(&m.lock);
    mgr_loop(&m, NULL, NULL, clock_mono_ms() + 300); /* let stop commands go out */
    store_result *rows = NULL;
    size_t n = 0;
    if (store_result_list(m.st, rc.xid, NULL, -1, false, &rows, &n, &err) == 0) {
        printf("results: %zu stored", n);
        /* count per tag */
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t k = 0; k < i; k++)
                if (!strcmp(rows[k].tag, rows[i].tag))
                    seen = true;
            if (seen)
                continue;
            size_t c = 0;
            for (size_t k = 0; k < n; k++)
                c += !strcmp(rows[k].tag, rows[i].tag);
            printf("%s %s x%zu", i ? "," : ":", rows[i].tag, c);
        }
        printf("\n");
        store_results_free(rows, n);
    }
    mt_error_free(&err);
    printf("swarm %s %s after %u iteration%s: %s\n", rc.xid, run_status_name(st), it + 1,
           it ? "s" : "", detail);
    printf("store: %s\n", m.cfg.store);
    mgr_close(&m);
    if (lr == 2)
        return 3;
    return st == RUN_COMPLETED || st == RUN_STOPPED ? 0 : 1;
}

static int cmd_serve(opts *o)
{
    mt_error *err = NULL;
    static manager m;
    if (mgr_open(&m, o->config, &o->ov, &err) < 0) {
        int code = fail(&err);
        mgr_close(&m);
        return code;
    }
    mgr_resume(&m); /* swarms in progress when a manager stopped carry on */
    printf("manta_manager: serving nodes on port %d\n", m.port);
    if (m.usrv)
        printf("manta_manager: serving users on port %d\n", m.user_port);
    print_dashboard(&m);
    fflush(stdout);
    mgr_loop(&m, NULL, NULL, 0);
    mgr_close(&m);
    return 0;
}

/* The store of the configuration (or --store), opened for the user commands. */
static store *user_store(const opts *o, uint8_t secret[TOKEN_SECRET_LEN], int64_t *ttl,
                         mt_error **err)
{
    mgr_config cfg;
    if (mgr_config_load(&cfg, o->config, err) < 0)
        return NULL;
    const char *db = o->ov.store ? o->ov.store : cfg.store;
    store *st = NULL;
    if (fs_mkdir_parent(db, 0700, err) == 0 &&
        (!secret || token_secret_load(cfg.secret_file, secret, err) == 0))
        st = store_open(db, err);
    if (ttl)
        *ttl = cfg.user_token_ttl;
    mgr_config_clear(&cfg);
    return st;
}

static int cmd_user_token(opts *o)
{
    mt_error *err = NULL;
    uint8_t secret[TOKEN_SECRET_LEN];
    int64_t ttl = 0;
    store *st = user_store(o, secret, &ttl, &err);
    if (!st)
        return fail(&err);
    store_object u = {0};
    int r = store_object_get(st, "user", o->user, false, &u, &err);
    store_object_clear(&u);
    store_close(st);
    if (r < 0)
        return fail(&err);
    if (r == 0) {
        fprintf(stderr,
                "manta_manager: there is no user '%s': create it first with `manta_manager user "
                "create NAME`.\n",
                o->user);
        return 2;
    }
    if (o->ttl && parse_duration(o->ttl, 60, TOKEN_TTL_MAX_S, &ttl, &err) < 0) {
        mt_error_wrap(&err, "--ttl");
        return fail(&err);
    }
    char jti[TOKEN_JTI_LEN + 1];
    cleanup_free char *tok = token_create_user(secret, o->user, ttl, time(NULL), jti, &err);
    if (!tok)
        return fail(&err);
    puts(tok);
    return 0;
}

static int cmd_token(opts *o, int argc, char **argv)
{
    mt_error *err = NULL;
    if (argc < 1 || strcmp(argv[0], "create") != 0 || !o->alias == !o->user) {
        fprintf(stderr, "manta_manager: usage: manta_manager token create --node ALIAS "
                        "[--ttl DURATION]\n"
                        "       manta_manager token create --user NAME [--ttl DURATION]\n");
        return 2;
    }
    if (o->user)
        return cmd_user_token(o);
    size_t alen = strlen(o->alias);
    if (alen == 0 || alen > 127) {
        fprintf(stderr, "manta_manager: the node alias must be 1 to 127 bytes long (the manager "
                        "refuses tokens for other aliases).\n");
        return 2;
    }
    int64_t ttl = 0; /* no expiry */
    if (o->ttl && parse_duration(o->ttl, 1, TOKEN_TTL_MAX_S, &ttl, &err) < 0) {
        mt_error_wrap(&err, "--ttl");
        return fail(&err);
    }
    mgr_config cfg;
    if (mgr_config_load(&cfg, o->config, &err) < 0)
        return fail(&err);
    uint8_t secret[TOKEN_SECRET_LEN];
    int rc = token_secret_load(cfg.secret_file, secret, &err);
    mgr_config_clear(&cfg);
    if (rc < 0)
        return fail(&err);
    cleanup_free char *tok = token_create(secret, o->alias, ttl, time(NULL));
    puts(tok);
    return 0;
}

/* One line of f without its line end (owned), or NULL at the end of f. */
static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

/* Ask on the terminal without echo. Owned, or NULL. */
static char *ask_hidden(const char *prompt)
{
    struct termios old, quiet;
    fputs(prompt, stderr);
    fflush(stderr);
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *line = read_line(stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    return line;
}

static char *read_password(const opts *o, mt_error **err)
{
    if (o->password_file) {
        cleanup_fclose FILE *f = fopen(o->password_file, "r");
        if (!f)
            return mt_error_sys(err, errno, "The password file %s could not be opened",
                                o->password_file),
                   NULL;
        char *p = read_line(f);
        if (!p)
            mt_error_set(err, MT_ERR_USAGE, "The password file %s is empty.", o->password_file);
        return p;
    }
    if (!isatty(STDIN_FILENO)) {
        char *p = read_line(stdin);
        if (!p)
            mt_error_set(err, MT_ERR_USAGE,
                         "No password on standard input: give one, or use --password-file.");
        return p;
    }
    cleanup_free char *a = ask_hidden("Password: ");
    cleanup_free char *b = a ? ask_hidden("Password (again): ") : NULL;
    if (!a || !b || strcmp(a, b) != 0) {
        mt_error_set(err, MT_ERR_USAGE, "The two passwords differ: nothing was changed.");
        return NULL;
    }
    return steal_ptr(a);
}

static int cmd_user(opts *o, int argc, char **argv)
{
    mt_error *err = NULL;
    bool create = argc == 2 && !strcmp(argv[0], "create");
    bool del = argc == 2 && !strcmp(argv[0], "delete");
    bool list = argc == 1 && !strcmp(argv[0], "list");
    if (!create && !del && !list) {
        fprintf(stderr, "manta_manager: usage: manta_manager user create NAME "
                        "[--password-file F] | user list | user delete NAME\n");
        return 2;
    }
    if (create && users_check_name(argv[1], &err) < 0)
        return fail(&err);
    cleanup_free char *password = create ? read_password(o, &err) : NULL;
    if (create && !password)
        return fail(&err);
    store *st = user_store(o, NULL, NULL, &err);
    if (!st)
        return fail(&err);
    int rc = 0;
    if (create) {
        char id[33];
        if (users_create(st, argv[1], password, time(NULL) * 1000LL, id, &err) < 0)
            rc = -1;
        else
            printf("user %s created (id %s)\n", argv[1], id);
        explicit_bzero(password, strlen(password));
    } else if (del) {
        int r = users_delete(st, argv[1], &err);
        if (r == 0)
            rc = mt_error_set(&err, MT_ERR_NOTFOUND, "There is no user '%s'.", argv[1]);
        else if (r > 0)
            printf("user %s deleted: their tokens no longer work\n", argv[1]);
        else
            rc = -1;
    } else {
        store_object *rows = NULL;
        size_t n = 0;
        if (store_object_list(st, "user", &rows, &n, &err) < 0) {
            rc = -1;
        } else {
            printf("%-32s %-34s %s\n", "USER", "ID", "CREATED");
            for (size_t i = 0; i < n; i++) {
                char when[32];
                fmt_time(rows[i].created_ms, when);
                printf("%-32s %-34s %s\n", rows[i].id, rows[i].meta, when);
            }
            store_objects_free(rows, n);
        }
    }
    store_close(st);
    return rc < 0 ? fail(&err) : 0;
}

static int cmd_config(opts *o, int argc, char **argv)
{
    mt_error *err = NULL;
    if (argc >= 1 && !strcmp(argv[0], "reference")) {
        cleanup_free char *t = mgr_config_reference();
        fputs(t, stdout);
        return 0;
    }
    if (argc >= 1 && !strcmp(argv[0], "show")) {
        mgr_config cfg;
        if (mgr_config_load(&cfg, o->config, &err) < 0)
            return fail(&err);
        cleanup_free char *t = mgr_config_show(&cfg);
        fputs(t, stdout);
        mgr_config_clear(&cfg);
        return 0;
    }
    fprintf(stderr, "manta_manager: usage: manta_manager config show|reference\n");
    return 2;
}

static int cmd_broker_config(opts *o, int nrest)
{
    mt_error *err = NULL;
    if (nrest != 0) {
        fprintf(stderr, "manta_manager: usage: manta_manager broker-config [--node ALIAS]... "
                        "[--out DIR]\n");
        return 2;
    }
    mgr_config cfg;
    if (mgr_config_load(&cfg, o->config, &err) < 0)
        return fail(&err);
    cleanup_free char *home = paths_home();
    cleanup_free char *dir = o->out ? xstrdup(o->out) : xasprintf("%s/manager/broker", home);
    int rc = broker_config_write(&cfg, dir, o->aliases, o->naliases,
                                 o->ov.store ? o->ov.store : cfg.store, stdout, &err);
    mgr_config_clear(&cfg);
    return rc < 0 ? fail(&err) : 0;
}

/* A whole-number option in [min, max]; returns -1 to go on, or 2 after saying what is wrong. */
static int int_opt(const char *name, int64_t min, int64_t max, long *out)
{
    int64_t v;
    if (!parse_int_range(optarg, min, max, &v)) {
        fprintf(stderr, "manta_manager: --%s '%s' is not a whole number from %lld to %lld.\n", name,
                optarg, (long long)min, (long long)max);
        return 2;
    }
    *out = (long)v;
    return -1;
}

/* Apply one option; returns -1 to go on, or the exit status (help, version, usage error). */
static int apply_opt(opts *o, int c)
{
    switch (c) {
    case 'c':
        o->config = optarg;
        break;
    case 1:
        o->ov.listen = optarg;
        break;
    case 2:
        o->ov.broker = optarg;
        break;
    case 3:
        o->ov.store = optarg;
        break;
    case 4:
        o->ov.admin_socket = optarg;
        break;
    case 5:
        o->ov.no_token = 1;
        break;
    case 'n':
        return int_opt("nodes", 0, 100000, &o->nodes);
    case 6:
        return int_opt("wait", 0, 365L * 86400, &o->wait_s);
    case 7:
        return int_opt("timeout", 1, 365L * 86400, &o->timeout_s);
    case 8:
        o->tag = optarg;
        break;
    case 9:
        return int_opt("iteration", 0, UINT32_MAX, &o->iteration);
    case 10:
        o->task = optarg;
        break;
    case 11:
        o->node = optarg;
        o->alias = optarg;
        o->aliases = xrealloc(o->aliases, (o->naliases + 1) * sizeof(*o->aliases));
        o->aliases[o->naliases++] = optarg;
        break;
    case 12:
        o->ttl = optarg;
        break;
    case 13:
        o->json = true;
        break;
    case 14:
        o->user = optarg;
        break;
    case 15:
        o->password_file = optarg;
        break;
    case 16:
        o->ov.user_listen = optarg;
        break;
    case 17:
        o->out = optarg;
        break;
    case 18:
        o->ov.http_listen = optarg;
        break;
    case 'h':
        fputs(usage_text, stdout);
        return 0;
    case 'V':
        printf("manta_manager %s\n", MANTA_VERSION);
        return 0;
    default:
        fputs("Try 'manta_manager --help'.\n", stderr);
        return 2;
    }
    return -1;
}

/* ---- the commands: one entry each, in the order of usage_text ---- */

typedef struct command command;
struct command {
    const char *name;
    int (*run)(opts *o, const command *c, int argc, char **argv); /* argv: the operands */
    show_fn show; /* the admin commands: how the answer is printed */
};

/* The usage of a command that takes one operand; returns the exit status. */
static int usage_one(const command *c, const char *operand)
{
    fprintf(stderr, "manta_manager: usage: manta_manager %s %s\n", c->name, operand);
    return 2;
}

static int run_serve(opts *o, const command *c, int argc, char **argv)
{
    return cmd_serve(o);
}

static int run_run(opts *o, const command *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "manta_manager: usage: manta_manager run SWARM_FILE [--nodes N]\n");
        return 2;
    }
    return cmd_run(o, argv[0]);
}

/* submit sends the file's absolute path: the manager may run in another directory. */
static int run_submit(opts *o, const command *c, int argc, char **argv)
{
    if (argc != 1)
        return usage_one(c, "SWARM_FILE");
    cleanup_free char *abs = realpath(argv[0], NULL);
    if (!abs) {
        fprintf(stderr, "manta_manager: the swarm file %s does not exist.\n", argv[0]);
        return 2;
    }
    return cmd_admin(o, c->name, "path", abs, c->show);
}

/* nodes, swarms: no operand (any given is ignored). */
static int run_list(opts *o, const command *c, int argc, char **argv)
{
    return cmd_admin(o, c->name, NULL, NULL, c->show);
}

/* status, stop, results, logs: one SWARM. */
static int run_on_swarm(opts *o, const command *c, int argc, char **argv)
{
    if (argc != 1)
        return usage_one(c, "SWARM");
    return cmd_admin(o, c->name, "swarm", argv[0], c->show);
}

static int run_token(opts *o, const command *c, int argc, char **argv)
{
    return cmd_token(o, argc, argv);
}

static int run_user(opts *o, const command *c, int argc, char **argv)
{
    return cmd_user(o, argc, argv);
}

static int run_config(opts *o, const command *c, int argc, char **argv)
{
    return cmd_config(o, argc, argv);
}

static int run_broker_config(opts *o, const command *c, int argc, char **argv)
{
    return cmd_broker_config(o, argc);
}

static const command commands[] = {
    {"serve", run_serve, NULL},
    {"run", run_run, NULL},
    {"submit", run_submit, show_swarm},
    {"nodes", run_list, show_nodes},
    {"swarms", run_list, show_swarms},
    {"status", run_on_swarm, show_swarm},
    {"stop", run_on_swarm, show_swarm},
    {"results", run_on_swarm, show_results},
    {"logs", run_on_swarm, show_logs},
    {"token", run_token, NULL},
    {"user", run_user, NULL},
    {"config", run_config, NULL},
    {"broker-config", run_broker_config, NULL},
};

static int manager_main(opts *op, int argc, char **argv);

int main(int argc, char **argv)
{
    opts o = {.nodes = 1, .wait_s = 120, .timeout_s = 1800, .iteration = -1};
    int rc = manager_main(&o, argc, argv);
    free(o.aliases); /* the --node list */
    return rc;
}

static int manager_main(opts *op, int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"listen", required_argument, NULL, 1},
                                       {"broker", required_argument, NULL, 2},
                                       {"store", required_argument, NULL, 3},
                                       {"admin", required_argument, NULL, 4},
                                       {"no-token", no_argument, NULL, 5},
                                       {"nodes", required_argument, NULL, 'n'},
                                       {"wait", required_argument, NULL, 6},
                                       {"timeout", required_argument, NULL, 7},
                                       {"tag", required_argument, NULL, 8},
                                       {"iteration", required_argument, NULL, 9},
                                       {"task", required_argument, NULL, 10},
                                       {"node", required_argument, NULL, 11},
                                       {"ttl", required_argument, NULL, 12},
                                       {"json", no_argument, NULL, 13},
                                       {"user", required_argument, NULL, 14},
                                       {"password-file", required_argument, NULL, 15},
                                       {"user-listen", required_argument, NULL, 16},
                                       {"out", required_argument, NULL, 17},
                                       {"http", required_argument, NULL, 18},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {0, 0, 0, 0}};
    /* GNU getopt moves the operands after the options: options go anywhere. */
    int c;
    while ((c = getopt_long(argc, argv, "c:n:hV", lo, NULL)) != -1) {
        int r = apply_opt(op, c);
        if (r >= 0)
            return r;
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[optind++];
    char *rest[64];
    int nrest = 0;
    while (optind < argc && nrest < 63)
        rest[nrest++] = argv[optind++];
    rest[nrest] = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(op, &commands[i], nrest, rest);
    fprintf(stderr, "manta_manager: unknown command '%s'. Try 'manta_manager --help'.\n", cmd);
    return 2;
}
