/* cli_config.c - `manta_node config init|list|show|validate|edit|delete|reference`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blake3.h"
#include "cli.h"
#include "config.h"
#include "fsutil.h"
#include "id.h"
#include "jwt.h"
#include "mem.h"
#include "paths.h"
#include "prompt.h"
#include "strbuf.h"
#include "toml.h"
#include "yaml_import.h"

#define TOKEN_ENV_REF "${MANTA_NODE_TOKEN}"

static const char config_help[] =
    "Usage: manta_node config <action> [options]\n"
    "\n"
    "Manage node configurations (~/.manta/nodes/<name>.toml).\n"
    "\n"
    "Actions:\n"
    "  init [FILE]         Create a configuration: interactively, from flags, or by importing\n"
    "                      a .toml/.yaml/.yml FILE\n"
    "  list                List available configurations\n"
    "  show [NAME]         Display a configuration (token masked), its node ID and issues\n"
    "  validate [NAME]     Check a configuration; exit 0 if valid, 1 if not\n"
    "  edit [NAME]         Open a configuration in $EDITOR, then re-validate it\n"
    "  delete NAME         Remove a configuration (asks first; --yes to skip)\n"
    "  reference           Print the reference of every key (Markdown)\n"
    "\n"
    "NAME defaults to 'default'. Run 'manta_node config <action> --help' for options.\n";

static const char init_help[] =
    "Usage: manta_node config init [FILE] [options]\n"
    "\n"
    "Create a node configuration. With FILE (.toml, .yaml or .yml), import it: the\n"
    "configuration is named after the file (or --name). Without FILE, ask for each setting\n"
    "on a terminal, or take them from the options below (--non-interactive, or when standard\n"
    "input is not a terminal).\n"
    "\n"
    "Options:\n"
    "  --name NAME               Configuration name (default: 'default', or FILE's name)\n"
    "  --alias ALIAS             Node alias (default: unique to this machine)\n"
    "  --manager-host HOST       Manager host (default: localhost)\n"
    "  --manager-port PORT       Manager gRPC port (default: 50051)\n"
    "  --token TOKEN             Store this JWT in the file (the file is made mode 0600)\n"
    "  --token-env VAR           Read the token from $VAR at start (default: MANTA_NODE_TOKEN)\n"
    "  --dataset NAME=PATH       Add a dataset (repeatable)\n"
    "  --max-concurrent-tasks N  Tasks run at once (default: 2)\n"
    "  --gpu auto|yes|no         Offer GPUs to tasks (default: auto)\n"
    "  --description TEXT        Free text stored in [metadata]\n"
    "  -y, --non-interactive     Do not ask; use options and defaults\n"
    "  -f, --force               Overwrite an existing configuration without asking\n"
    "  -h, --help                Show this help\n";

/* ---- shared ------------------------------------------------------------------------------- */

static int check_name(const char *name)
{
    if (config_name_valid(name))
        return 0;
    cli_error("Invalid configuration name '%s'", name);
    fprintf(stderr, "A name starts with a letter or digit and uses only letters, digits, '-', "
                    "'_' and '.' (no '.toml').\n");
    return -1;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

/* Parse options of the simple actions: at most one NAME, plus flags from `allowed`
 * ("--yes"...). Returns 0, or the exit status of a usage error. */
static int simple_args(const char *action, int argc, char **argv, const char **name,
                       const char *const *flags, bool *flag_set)
{
    cleanup_free char *cmd = xasprintf("config %s", action);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            bool ok = false;
            for (size_t f = 0; flags && flags[f]; f++) {
                if (strcmp(a, flags[f]) == 0) {
                    flag_set[f / 2] = true; /* flags come in pairs: long, short */
                    ok = true;
                }
            }
            if (!ok)
                return cli_usage(cmd, "Unknown option '%s'", a);
            continue;
        }
        if (*name)
            return cli_usage(cmd, "Too many arguments ('%s')", a);
        *name = a;
    }
    return 0;
}

/* Load a named configuration for show/validate/list. Prints the not-found block. */
static int load_named(const char *name, node_config *cfg, mt_error **err, bool *not_found)
{
    cleanup_free char *path = paths_config_file(name);
    *not_found = false;
    if (!fs_exists(path)) {
        *not_found = true;
        config_init_defaults(cfg);
        return -1;
    }
    if (config_load_file(cfg, path, CFG_LOAD_LENIENT_ENV, err) < 0)
        return -1;
    config_finalize(cfg, NULL);
    return 0;
}

static void print_issues(char **issues)
{
    for (char **s = issues; *s; s++) {
        if (strncmp(*s, "  →", 4) == 0)
            printf("  %s\n", *s);
        else
            printf("  - %s\n", *s);
    }
}

static size_t count_real_issues(char **issues)
{
    size_t n = 0;
    for (char **s = issues; *s; s++)
        n++;
    return n;
}

/* ---- init ---------------------------------------------------------------------------------- */

struct init_opts {
    const char *name, *alias, *host, *token, *token_env, *gpu, *description;
    long port, max_tasks;
    bool force, non_interactive;
    char **datasets; /* NAME=PATH, owned array of borrowed strings */
    size_t ndatasets;
};

static char *machine_alias(void)
{
    char host[256] = "node";
    if (gethostname(host, sizeof(host)) != 0 || !host[0])
        snprintf(host, sizeof(host), "node");
    host[sizeof(host) - 1] = '\0';
    char *dot = strchr(host, '.');
    if (dot)
        *dot = '\0';
    cleanup_free char *safe = config_safe_name(host);
    uint8_t h[2];
    mt_error *e = NULL;
    cleanup_free char *mid = fs_read_file("/etc/machine-id", 4096, NULL, &e);
    mt_error_free(&e);
    if (mid) {
        b3_hash(mid, strlen(mid), h, sizeof(h));
    } else {
        node_id r;
        if (node_id_random(&r, &e) < 0)
            mt_error_free(&e);
        h[0] = (uint8_t)r.tail;
        h[1] = (uint8_t)(r.tail >> 8);
    }
    return xasprintf("%s-%02x%02x", safe, h[0], h[1]);
}

static char *now_iso(void)
{
    time_t t = time(NULL);
    struct tm tm;
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
    return xstrdup(buf);
}

static toml_value *section(toml_value *root, const char *name)
{
    toml_value *t = toml_table_get(root, name);
    if (!t) {
        t = toml_new_table();
        toml_table_set(root, name, t);
    }
    return t;
}

/* Write the tree as ~/.manta/nodes/<name>.toml (mode 0600: it may hold a token). */
static int save_config(const char *name, const toml_value *root, const char *path)
{
    mt_error *e = NULL;
    cleanup_free char *dir = paths_nodes_dir();
    if (fs_mkdir_p(dir, 0700, &e) < 0) {
        cli_error_e(e, "Cannot create %s", dir);
        mt_error_free(&e);
        return -1;
    }
    cleanup_free char *body = toml_write(root);
    cleanup_free char *text =
        xasprintf("# manta_node configuration '%s'\n# Keys: manta_node config reference (or "
                  "docs/configuration.md). Check it with: manta_node config validate %s\n\n%s",
                  name, name, body);
    if (fs_write_atomic(path, text, strlen(text), 0600, &e) < 0) {
        cli_error_e(e, "Cannot save the configuration");
        mt_error_free(&e);
        return -1;
    }
    return 0;
}

/* After saving: the reference's success lines plus the validation result. */
static void report_created(const char *name, const char *path)
{
    cleanup_free char *shown = fs_display_path(path);
    printf("✓ Configuration '%s' created successfully!\n", name);
    printf("Saved to: %s\n", shown);
    node_config cfg;
    mt_error *e = NULL;
    if (config_load_file(&cfg, path, CFG_LOAD_LENIENT_ENV, &e) < 0) {
        printf("Configuration has validation issues:\n");
        print_issues((char *[]){(char *)mt_error_msg(e), NULL});
        mt_error_free(&e);
    } else {
        config_finalize(&cfg, NULL);
        cleanup_strv char **issues = NULL;
        if (config_validate(&cfg, &issues) == 0) {
            printf("✓ Configuration is valid\n");
        } else {
            printf("Configuration has validation issues:\n");
            print_issues(issues);
        }
    }
    config_free(&cfg);
    printf("\nYou can now start a node with:\n  manta_node start %s\n", name);
}

/* Returns 1 to go on, 0 if the user declined (message printed), -1 on error. */
static int confirm_overwrite(const char *name, const char *path, bool force, bool interactive)
{
    if (!fs_exists(path) || force)
        return 1;
    cleanup_free char *shown = fs_display_path(path);
    if (!interactive) {
        cli_error("Configuration '%s' already exists at %s", name, shown);
        fprintf(stderr, "Use --force to overwrite it, or choose another name with --name.\n");
        return -1;
    }
    printf("Configuration '%s' already exists at %s\n", name, shown);
    int yes = prompt_yes_no("Overwrite existing configuration?", false);
    if (yes != 1) {
        printf("Configuration creation cancelled\n");
        return 0;
    }
    return 1;
}

static int init_import(const char *file, struct init_opts *o)
{
    cleanup_free char *abs = fs_expand_tilde(file);
    if (abs[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd))) {
            char *j = fs_join(cwd, abs);
            free(abs);
            abs = j;
        }
    }
    printf("manta_node Configuration\nNode Configuration Setup\nLoading configuration from "
           "file...\nConfiguration will be saved in ~/.manta/nodes/\n\n");
    if (!fs_exists(abs) || fs_is_dir(abs)) {
        cli_error("Configuration file not found: %s", abs);
        return 1;
    }
    const char *base = strrchr(abs, '/') ? strrchr(abs, '/') + 1 : abs;
    const char *ext = strrchr(base, '.');
    bool is_toml = ext && strcasecmp(ext, ".toml") == 0;
    bool is_yaml = ext && (strcasecmp(ext, ".yaml") == 0 || strcasecmp(ext, ".yml") == 0);
    if (!is_toml && !is_yaml) {
        cli_error("Unsupported file format: %s", ext ? ext : "(none)");
        fprintf(stderr, "Supported formats: .yaml, .yml, .toml\n");
        return 1;
    }
    cleanup_free char *stem = xstrndup(base, (size_t)(ext - base));
    const char *name = o->name ? o->name : stem;
    if (check_name(name) < 0)
        return 1;

    mt_error *e = NULL;
    size_t len = 0;
    cleanup_free char *text = fs_read_file(abs, 16u << 20, &len, &e);
    if (!text) {
        cli_error_e(e, "Failed to read configuration file");
        mt_error_free(&e);
        return 1;
    }
    cleanup_free char *shown = fs_display_path(abs);
    cleanup_toml toml_value *tree =
        is_toml ? toml_parse(text, len, shown, TOML_1_1, &e) : yaml_parse(text, len, shown, &e);
    if (!tree) {
        cli_error_e(e, is_yaml ? "Invalid YAML format" : "Failed to parse configuration file");
        mt_error_free(&e);
        return 1;
    }
    cleanup_toml toml_value *norm = NULL;
    if (config_from_tree(tree, shown, CFG_LOAD_VERBATIM, NULL, &norm, &e) < 0) {
        cli_error_e(e, "Invalid configuration structure");
        fprintf(stderr, "Required: identity.secured_token\n");
        mt_error_free(&e);
        return 1;
    }
    toml_value *meta = section(norm, "metadata");
    toml_value *mname = toml_table_get(meta, "name");
    if (!mname || mname->type != TOML_STRING || !mname->u.s.ptr[0] ||
        strcmp(mname->u.s.ptr, "default") == 0)
        toml_table_set(meta, "name", toml_new_string(name));
    if (!toml_table_get(meta, "created_at")) {
        cleanup_free char *now = now_iso();
        toml_table_set(meta, "created_at", toml_new_string(now));
    }
    toml_value *logging = section(norm, "logging");
    if (!toml_table_get(logging, "filename")) {
        toml_value *id = toml_table_get(norm, "identity");
        toml_value *al = id ? toml_table_get(id, "alias") : NULL;
        toml_value *mn = toml_table_get(meta, "name");
        const char *src = al && al->type == TOML_STRING ? al->u.s.ptr
                          : mn && mn->type == TOML_STRING && strcmp(mn->u.s.ptr, "default")
                              ? mn->u.s.ptr
                              : "node";
        cleanup_free char *safe = config_safe_name(src);
        cleanup_free char *fn = xasprintf("~/.manta/logs/nodes/%s.log", safe);
        toml_table_set(logging, "filename", toml_new_string(fn));
    }
    /* Re-order after the additions: sections in table order. */
    cleanup_toml toml_value *final = NULL;
    if (config_from_tree(norm, shown, CFG_LOAD_VERBATIM, NULL, &final, &e) < 0) {
        cli_error_e(e, "Invalid configuration structure");
        mt_error_free(&e);
        return 1;
    }
    cleanup_free char *path = paths_config_file(name);
    int ok = confirm_overwrite(name, path, o->force, prompt_interactive() && !o->non_interactive);
    if (ok <= 0)
        return 1;
    if (save_config(name, final, path) < 0)
        return 1;
    report_created(name, path);
    return 0;
}

/* Ask until the answer is an integer in [lo, hi]; returns -1 at end of input. */
static long ask_int(const char *question, long def, long lo, long hi)
{
    char defs[32];
    snprintf(defs, sizeof(defs), "%ld", def);
    for (int tries = 0; tries < 10; tries++) {
        cleanup_free char *ans = prompt_line(question, defs);
        if (!ans)
            return -1;
        char *end;
        errno = 0;
        long v = strtol(ans, &end, 10);
        if (!errno && *ans && !*end && v >= lo && v <= hi)
            return v;
        printf("Please enter a whole number from %ld to %ld.\n", lo, hi);
    }
    return -1;
}

static int add_dataset(toml_value *maps, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        cli_usage("config init", "--dataset needs NAME=PATH, got '%s'", spec);
        return -1;
    }
    cleanup_free char *name = xstrndup(spec, (size_t)(eq - spec));
    toml_table_set(maps, name, toml_new_string(eq + 1));
    return 0;
}

static int gpu_value(const char *s)
{
    if (!s || strcasecmp(s, "auto") == 0)
        return -1;
    if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "y") == 0)
        return 1;
    if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "n") == 0)
        return 0;
    return -2;
}

static int eof_abort(void)
{
    printf("\n");
    cli_error("Input ended before the configuration was complete; nothing was saved");
    return 1;
}

static int init_new(struct init_opts *o)
{
    bool interactive = prompt_interactive() && !o->non_interactive;
    cleanup_free char *name = xstrdup(o->name ? o->name : "default");
    cleanup_free char *def_alias = o->alias ? xstrdup(o->alias) : machine_alias();
    cleanup_free char *alias = NULL;
    cleanup_free char *host = xstrdup(o->host ? o->host : "localhost");
    long port = o->port > 0 ? o->port : 50051;
    long max_tasks = o->max_tasks > 0 ? o->max_tasks : 2;
    int gpu = gpu_value(o->gpu);
    cleanup_free char *token = NULL;
    cleanup_toml toml_value *maps = toml_new_table();
    for (size_t i = 0; i < o->ndatasets; i++)
        if (add_dataset(maps, o->datasets[i]) < 0)
            return EXIT_USAGE;
    if (gpu == -2)
        return cli_usage("config init", "--gpu takes auto, yes or no, not '%s'", o->gpu);
    if (o->token && o->token_env)
        return cli_usage("config init", "Give --token or --token-env, not both");

    if (interactive) {
        printf("manta_node Configuration\nNode Configuration Setup\n"
               "Configuration will be saved in ~/.manta/nodes/\n\n");
        for (int tries = 0;; tries++) {
            free(name);
            name = prompt_line("Configuration name", o->name ? o->name : "default");
            if (!name)
                return eof_abort();
            if (config_name_valid(name))
                break;
            printf("Use letters, digits, '-', '_' and '.', starting with a letter or digit.\n");
            if (tries > 8)
                return eof_abort();
        }
        cleanup_free char *path = paths_config_file(name);
        int ok = confirm_overwrite(name, path, o->force, true);
        if (ok <= 0)
            return 1;
        alias = prompt_line("Node alias", def_alias);
        if (!alias)
            return eof_abort();
        char *h = prompt_line("Manager host", host);
        if (!h)
            return eof_abort();
        free(host);
        host = h;
        if ((port = ask_int("Manager port", port, 1, 65535)) < 0)
            return eof_abort();
        if (!o->token && !o->token_env) {
            printf("The node authenticates with a JWT from the manager. Leave this empty to "
                   "read it from $MANTA_NODE_TOKEN when the node starts (recommended).\n");
            token = prompt_secret("Secured token (input hidden)");
            if (!token)
                return eof_abort();
        }
        printf("Datasets served to tasks (leave the name empty to finish):\n");
        for (int i = 0; i < 1000; i++) {
            cleanup_free char *dn = prompt_line("  Dataset name", NULL);
            if (!dn)
                return eof_abort();
            if (!*dn)
                break;
            cleanup_free char *q = xasprintf("  Path of '%s'", dn);
            cleanup_free char *dp = prompt_line(q, NULL);
            if (!dp)
                return eof_abort();
            if (!*dp) {
                printf("  No path given; '%s' skipped.\n", dn);
                continue;
            }
            cleanup_free char *exp = fs_expand_tilde(dp);
            if (!fs_exists(exp))
                printf("  Warning: %s does not exist (yet); validation will report it.\n", dp);
            toml_table_set(maps, dn, toml_new_string(dp));
        }
        if ((max_tasks = ask_int("Maximum concurrent tasks", max_tasks, 1, 1024)) < 0)
            return eof_abort();
        for (int tries = 0;; tries++) {
            cleanup_free char *g = prompt_line("Use GPUs for tasks (auto/yes/no)",
                                               gpu < 0 ? "auto" : (gpu ? "yes" : "no"));
            if (!g)
                return eof_abort();
            int v = gpu_value(g);
            if (v != -2) {
                gpu = v;
                break;
            }
            printf("Please answer auto, yes or no.\n");
            if (tries > 8)
                return eof_abort();
        }
        printf("\n");
    } else {
        if (check_name(name) < 0)
            return 1;
        alias = xstrdup(def_alias);
        cleanup_free char *path = paths_config_file(name);
        if (confirm_overwrite(name, path, o->force, false) <= 0)
            return 1;
    }

    /* Build the file in table order. */
    cleanup_toml toml_value *root = toml_new_table();
    toml_value *id = section(root, "identity");
    if (o->token)
        toml_table_set(id, "secured_token", toml_new_string(o->token));
    else if (token && *token)
        toml_table_set(id, "secured_token", toml_new_string(token));
    else {
        cleanup_free char *ref =
            o->token_env ? xasprintf("${%s}", o->token_env) : xstrdup(TOKEN_ENV_REF);
        toml_table_set(id, "secured_token", toml_new_string(ref));
    }
    toml_table_set(id, "alias", toml_new_string(alias));
    toml_value *meta = section(root, "metadata");
    toml_table_set(meta, "name", toml_new_string(name));
    cleanup_free char *now = now_iso();
    toml_table_set(meta, "created_at", toml_new_string(now));
    toml_table_set(meta, "version", toml_new_string("1.0.0"));
    toml_table_set(meta, "description", toml_new_string(o->description ? o->description : ""));
    toml_value *net = section(root, "network");
    toml_table_set(net, "manager_host", toml_new_string(host));
    toml_table_set(net, "manager_port", toml_new_integer(port));
    if (gpu >= 0)
        toml_table_set(section(root, "containers"), "gpu_enabled", toml_new_bool(gpu == 1));
    if (maps->u.tab.len)
        toml_table_set(section(root, "datasets"), "mappings", toml_clone(maps));
    toml_table_set(section(root, "resources"), "max_concurrent_tasks", toml_new_integer(max_tasks));
    cleanup_free char *safe = config_safe_name(alias);
    cleanup_free char *logfile = xasprintf("~/.manta/logs/nodes/%s.log", safe);
    toml_table_set(section(root, "logging"), "filename", toml_new_string(logfile));

    mt_error *e = NULL;
    cleanup_toml toml_value *norm = NULL;
    if (config_from_tree(root, name, CFG_LOAD_VERBATIM, NULL, &norm, &e) < 0) {
        cli_error_e(e, "Invalid configuration");
        mt_error_free(&e);
        return 1;
    }
    cleanup_free char *path = paths_config_file(name);
    if (save_config(name, norm, path) < 0)
        return 1;
    report_created(name, path);
    return 0;
}

static int config_init(int argc, char **argv)
{
    enum {
        O_NAME = 1000,
        O_ALIAS,
        O_HOST,
        O_PORT,
        O_TOKEN,
        O_TOKEN_ENV,
        O_DATASET,
        O_MAX,
        O_GPU,
        O_DESC
    };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, O_NAME},
        {"alias", required_argument, NULL, O_ALIAS},
        {"manager-host", required_argument, NULL, O_HOST},
        {"manager-port", required_argument, NULL, O_PORT},
        {"token", required_argument, NULL, O_TOKEN},
        {"token-env", required_argument, NULL, O_TOKEN_ENV},
        {"dataset", required_argument, NULL, O_DATASET},
        {"max-concurrent-tasks", required_argument, NULL, O_MAX},
        {"gpu", required_argument, NULL, O_GPU},
        {"description", required_argument, NULL, O_DESC},
        {"non-interactive", no_argument, NULL, 'y'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct init_opts o = {0};
    cleanup_free char **datasets = xcalloc((size_t)argc + 1, sizeof(char *));
    o.datasets = datasets;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "yfh", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_NAME:
            o.name = optarg;
            break;
        case O_ALIAS:
            o.alias = optarg;
            if (!*optarg)
                return cli_usage("config init", "--alias cannot be empty");
            break;
        case O_HOST:
            o.host = optarg;
            break;
        case O_PORT:
            o.port = strtol(optarg, &end, 10);
            if (*end || o.port < 1 || o.port > 65535)
                return cli_usage("config init",
                                 "--manager-port takes a port from 1 to 65535, "
                                 "not '%s'",
                                 optarg);
            break;
        case O_TOKEN:
            o.token = optarg;
            break;
        case O_TOKEN_ENV:
            o.token_env = optarg;
            break;
        case O_DATASET:
            o.datasets[o.ndatasets++] = optarg;
            break;
        case O_MAX:
            o.max_tasks = strtol(optarg, &end, 10);
            if (*end || o.max_tasks < 1 || o.max_tasks > 1024)
                return cli_usage("config init",
                                 "--max-concurrent-tasks takes a number from 1 to 1024, not '%s'",
                                 optarg);
            break;
        case O_GPU:
            o.gpu = optarg;
            break;
        case O_DESC:
            o.description = optarg;
            break;
        case 'y':
            o.non_interactive = true;
            break;
        case 'f':
            o.force = true;
            break;
        case 'h':
            fputs(init_help, stdout);
            return 0;
        default:
            if (optopt)
                return cli_usage("config init", "Option '-%c' is unknown or needs a value", optopt);
            return cli_usage("config init", "Option '%s' is unknown or needs a value",
                             argv[optind - 1]);
        }
    }
    if (o.name && check_name(o.name) < 0)
        return 1;
    if (optind < argc - 1)
        return cli_usage("config init", "Too many arguments ('%s')", argv[optind + 1]);
    if (optind == argc - 1)
        return init_import(argv[optind], &o);
    return init_new(&o);
}

/* ---- list ---------------------------------------------------------------------------------- */

static int config_list(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: manta_node config list\n\nList the configurations in ~/.manta/nodes/ "
               "with their validation status.\n");
        return 0;
    }
    const char *extra = NULL;
    int rc = simple_args("list", argc, argv, &extra, NULL, NULL);
    if (rc)
        return rc;
    if (extra)
        return cli_usage("config list", "Unexpected argument '%s'", extra);
    cleanup_strv char **names = cli_config_names();
    if (!names[0]) {
        printf("No configurations found.\nCreate one with:\n  manta_node config init\n");
        return 0;
    }
    size_t n = 0;
    for (char **s = names; *s; s++)
        n++;
    char **paths = xcalloc(n, sizeof(char *));
    char **status = xcalloc(n, sizeof(char *));
    size_t wn = 4, wp = 4;
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *p = paths_config_file(names[i]);
        paths[i] = fs_display_path(p);
        node_config cfg;
        mt_error *e = NULL;
        bool nf;
        if (load_named(names[i], &cfg, &e, &nf) < 0) {
            status[i] = xstrdup("Invalid");
            mt_error_free(&e);
        } else {
            cleanup_strv char **issues = NULL;
            size_t k = config_validate(&cfg, &issues);
            status[i] = k ? xasprintf("%zu issue%s", k, k == 1 ? "" : "s") : xstrdup("Valid");
        }
        config_free(&cfg);
        if (strlen(names[i]) > wn)
            wn = strlen(names[i]);
        if (strlen(paths[i]) > wp)
            wp = strlen(paths[i]);
    }
    printf("Available Node Configurations\n");
    printf("%-*s  %-*s  %s\n", (int)wn, "Name", (int)wp, "Path", "Status");
    for (size_t i = 0; i < n; i++) {
        printf("%-*s  %-*s  %s\n", (int)wn, names[i], (int)wp, paths[i], status[i]);
        free(paths[i]);
        free(status[i]);
    }
    free(paths);
    free(status);
    return 0;
}

/* The common start of `show` and `validate`: --help, one optional NAME (default "default"),
 * then load it (printing the seeds' not-found block or the load error). Returns true with *cfg
 * loaded (release with config_free), or false with *status set to the exit status. */
static bool load_action(const char *action, const char *help, int argc, char **argv,
                        const char **name, node_config *cfg, int *status)
{
    *status = 0;
    if (wants_help(argc, argv)) {
        fputs(help, stdout);
        return false;
    }
    *name = NULL;
    if ((*status = simple_args(action, argc, argv, name, NULL, NULL)))
        return false;
    if (!*name)
        *name = "default";
    *status = 1;
    if (check_name(*name) < 0)
        return false;
    mt_error *e = NULL;
    bool nf;
    if (load_named(*name, cfg, &e, &nf) < 0) {
        if (nf)
            cli_config_not_found(*name);
        else
            cli_error_e(e, "Failed to load configuration '%s'", *name);
        mt_error_free(&e);
        config_free(cfg);
        return false;
    }
    *status = 0;
    return true;
}

/* ---- show ---------------------------------------------------------------------------------- */

static void show_token(const node_config *cfg)
{
    int ti = config_key_index("identity.secured_token");
    const char *tok = cfg->identity.secured_token;
    const char *src = cfg->written_as[ti];
    if (cfg->origin[ti] == CFG_MISSING_ENV) {
        printf("  Secured Token: Not set (%s, but the variable is not set)\n", src);
        return;
    }
    if (!tok || !*tok || tok[0] == '<') {
        printf("  Secured Token: Not set\n");
        return;
    }
    strbuf sb = STRBUF_INIT;
    sb_printf(&sb, "Set (%zu characters", strlen(tok));
    if (src)
        sb_printf(&sb, ", from %s", src);
    jwt_info ji;
    mt_error *e = NULL;
    if (jwt_inspect(tok, &ji, &e) < 0) {
        sb_puts(&sb, "; not a valid JWT");
        mt_error_free(&e);
    } else if (ji.has_exp) {
        time_t t = (time_t)ji.exp;
        struct tm tm;
        char when[64];
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
        sb_printf(&sb, "; %s %s", ji.exp < (int64_t)time(NULL) ? "expired" : "expires", when);
    } else {
        sb_puts(&sb, "; no expiry");
    }
    sb_puts(&sb, ")");
    printf("  Secured Token: %s\n", sb_str(&sb));
    sb_free(&sb);
}

static int config_show(int argc, char **argv)
{
    static const char help[] =
        "Usage: manta_node config show [NAME]\n\nDisplay configuration NAME (default: "
        "'default'): identity (token masked, expiry decoded), node ID, network, datasets, every "
        "setting with its source, and validation issues.\n";
    const char *name;
    node_config cfg;
    int status;
    if (!load_action("show", help, argc, argv, &name, &cfg, &status))
        return status;
    mt_error *e = NULL;
    cleanup_free char *path = paths_config_file(name);
    cleanup_free char *shown = fs_display_path(path);
    printf("Configuration: %s\nPath: %s\n", name, shown);

    const char *alias = config_effective_alias(&cfg);
    node_id id;
    char xid[NODE_XID_MAX + 1];
    if (cfg.identity.alias || !cfg.identity.random_id) {
        if (node_id_from_alias(alias, &id, &e) < 0) {
            printf("Node ID: invalid (%s)\n", mt_error_msg(e));
            mt_error_free(&e);
        } else {
            node_id_to_xid(id, xid);
            printf("Node ID: %s\n", xid);
        }
    } else {
        printf("Node ID: random at each start (identity.random_id = true)\n");
    }

    printf("\nIdentity:\n");
    if (cfg.identity.alias)
        printf("  Alias: %s\n", cfg.identity.alias);
    else
        printf("  Alias: Auto-generated (metadata.name: %s)\n", alias);
    printf("  Random ID: %s\n", cfg.identity.random_id ? "True" : "False");
    show_token(&cfg);
    printf("\nNetwork:\n  Manager: %s:%lld\n", cfg.network.manager_host,
           (long long)cfg.network.manager_port);
    if (cfg.datasets.mappings.len) {
        printf("\nDatasets:\n");
        for (size_t i = 0; i < cfg.datasets.mappings.len; i++)
            printf("  %s: %s\n", cfg.datasets.mappings.keys[i], cfg.datasets.mappings.values[i]);
    }
    printf("\nMetadata:\n  Name: %s\n  Description: %s\n  Created: %s\n  Version: %s\n",
           cfg.metadata.name, cfg.metadata.description,
           cfg.metadata.created_at ? cfg.metadata.created_at : "unknown", cfg.metadata.version);

    printf("\nSettings (file = set in the file, env = from the environment):\n");
    size_t n;
    const cfg_key *keys = config_keys(&n);
    const char *cur = NULL;
    for (size_t i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        if (k->alias_of)
            continue;
        if (!cur || strcmp(cur, k->section) != 0) {
            cur = k->section;
            printf("  [%s]\n", cur);
        }
        cleanup_free char *v = config_format_value(&cfg, (int)i);
        const char *src = "";
        cleanup_free char *srcbuf = NULL;
        switch (cfg.origin[i]) {
        case CFG_FROM_FILE:
            src = srcbuf = xasprintf("  (file, line %d)", cfg.line[i]);
            break;
        case CFG_FROM_ENV:
            src = srcbuf = xasprintf("  (env %s, line %d)", cfg.written_as[i], cfg.line[i]);
            break;
        case CFG_MISSING_ENV:
            src = srcbuf = xasprintf("  (%s: variable not set)", cfg.written_as[i]);
            break;
        case CFG_FROM_OVERRIDE:
            src = "  (override)";
            break;
        default:
            break;
        }
        printf("    %-24s = %s%s\n", k->name, v, src);
    }

    cleanup_strv char **issues = NULL;
    size_t k = config_validate(&cfg, &issues);
    if (k) {
        printf("\nValidation Issues:\n");
        print_issues(issues);
    } else {
        printf("\n✓ Configuration is valid\n");
    }
    config_free(&cfg);
    return 0;
}

/* ---- validate ------------------------------------------------------------------------------ */

static int config_validate_cmd(int argc, char **argv)
{
    static const char help[] =
        "Usage: manta_node config validate [NAME]\n\nCheck configuration NAME (default: "
        "'default'): the token (presence, JWT shape, expiry), ports, bounds, dataset paths and "
        "TLS files. Prints each issue on a line; exit 0 if valid, 1 if not.\n";
    const char *name;
    node_config cfg;
    int status;
    if (!load_action("validate", help, argc, argv, &name, &cfg, &status))
        return status;
    cleanup_strv char **issues = NULL;
    size_t k = config_validate(&cfg, &issues);
    config_free(&cfg);
    if (!k) {
        printf("Configuration '%s' is valid\n", name);
        return 0;
    }
    size_t real = count_real_issues(issues);
    fprintf(stderr, "Error: Configuration '%s' has %zu validation issue(s):\n", name, real);
    fflush(stderr);
    for (char **s = issues; *s; s++)
        fprintf(stderr, strncmp(*s, "  →", 4) == 0 ? "  %s\n" : "  - %s\n", *s);
    return 1;
}

/* ---- edit ---------------------------------------------------------------------------------- */

static char *find_editor(void)
{
    const char *env[] = {"EDITOR", "VISUAL"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(env[i]);
        if (v && *v)
            return xstrdup(v);
    }
    const char *cands[] = {"nano", "vim", "vi", "emacs", "code", "notepad"};
    const char *pathenv = getenv("PATH");
    if (!pathenv)
        pathenv = "/usr/bin:/bin";
    for (size_t i = 0; i < ARRAY_LEN(cands); i++) {
        cleanup_free char *dirs = xstrdup(pathenv);
        char *save = NULL;
        for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            cleanup_free char *p = fs_join(d, cands[i]);
            if (access(p, X_OK) == 0)
                return xstrdup(cands[i]);
        }
    }
    return NULL;
}

static int config_edit(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: manta_node config edit [NAME]\n\nOpen configuration NAME (default: "
               "'default') in $EDITOR (else $VISUAL, else nano, vim, vi, emacs), then check it "
               "again.\n");
        return 0;
    }
    const char *name = NULL;
    int rc = simple_args("edit", argc, argv, &name, NULL, NULL);
    if (rc)
        return rc;
    if (!name)
        name = "default";
    if (check_name(name) < 0)
        return 1;
    cleanup_free char *path = paths_config_file(name);
    if (!fs_exists(path)) {
        cli_config_not_found(name);
        return 1;
    }
    cleanup_free char *editor = find_editor();
    if (!editor) {
        cli_error("No text editor found. Please set the EDITOR environment variable.");
        return 1;
    }
    cleanup_free char *shown = fs_display_path(path);
    printf("Opening %s in %s...\n", shown, editor);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("Cannot start the editor: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        /* Through the shell so that EDITOR may carry arguments ("code -w"). */
        cleanup_free char *script = xasprintf("%s \"$1\"", editor);
        execl("/bin/sh", "sh", "-c", script, "sh", path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0) {
        cli_error("Editor exited with error code %d", code);
        return 1;
    }
    node_config cfg;
    mt_error *e = NULL;
    bool nf;
    if (load_named(name, &cfg, &e, &nf) < 0) {
        cli_error_e(e, "The edited configuration '%s' does not load", name);
        fprintf(stderr, "Fix it with: manta_node config edit %s\n", name);
        mt_error_free(&e);
        config_free(&cfg);
        return 1;
    }
    printf("Configuration '%s' edited successfully\n", name);
    cleanup_strv char **issues = NULL;
    if (config_validate(&cfg, &issues)) {
        printf("Warning: the configuration has validation issues:\n");
        print_issues(issues);
    } else {
        printf("✓ Configuration is valid\n");
    }
    config_free(&cfg);
    return 0;
}

/* ---- delete -------------------------------------------------------------------------------- */

static int config_delete(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: manta_node config delete NAME [--yes]\n\nRemove configuration NAME. "
               "Asks for confirmation unless --yes (-y) is given.\n");
        return 0;
    }
    const char *name = NULL;
    static const char *const flags[] = {"--yes", "-y", NULL};
    bool yes[1] = {false};
    int rc = simple_args("delete", argc, argv, &name, flags, yes);
    if (rc)
        return rc;
    if (!name)
        return cli_usage("config delete", "Name the configuration to delete");
    if (check_name(name) < 0)
        return 1;
    cleanup_free char *path = paths_config_file(name);
    if (!fs_exists(path)) {
        cli_config_not_found(name);
        return 1;
    }
    cleanup_free char *shown = fs_display_path(path);
    printf("Configuration to delete: %s\nFile: %s\n", name, shown);
    if (!yes[0]) {
        if (!prompt_interactive()) {
            cli_error("Not deleting '%s' without confirmation", name);
            fprintf(stderr, "Run 'manta_node config delete %s --yes' to delete it.\n", name);
            return 1;
        }
        cleanup_free char *q =
            xasprintf("Are you sure you want to delete configuration '%s'?", name);
        if (prompt_yes_no(q, false) != 1) {
            printf("Deletion cancelled\n");
            return 0;
        }
    }
    if (unlink(path) < 0) {
        cli_error("Cannot delete %s: %s", shown, strerror(errno));
        return 1;
    }
    printf("Configuration '%s' deleted successfully\n", name);
    return 0;
}

/* ---- reference ----------------------------------------------------------------------------- */

static int config_reference(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: manta_node config reference\n\nPrint the reference of every "
               "configuration key as Markdown (the source of docs/configuration.md).\n");
        return 0;
    }
    if (argc > 1)
        return cli_usage("config reference", "Unexpected argument '%s'", argv[1]);
    cleanup_free char *md = config_reference_markdown();
    fputs(md, stdout);
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

int cli_config(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } actions[] = {
        {"init", config_init},           {"list", config_list},
        {"show", config_show},           {"validate", config_validate_cmd},
        {"edit", config_edit},           {"delete", config_delete},
        {"reference", config_reference},
    };
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(config_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(actions); i++)
        if (strcmp(argv[1], actions[i].name) == 0)
            return actions[i].run(argc - 1, argv + 1);
    return cli_usage("config",
                     "Unknown action '%s' (init, list, show, validate, edit, delete, "
                     "reference)",
                     argv[1]);
}
