/* cli_config_init.c - `manta_node config init`: asked, from flags, or imported from a file. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "blake3.h"
#include "cli.h"
#include "cli_config_impl.h"
#include "clock.h"
#include "node_config.h"
#include "fsutil.h"
#include "id.h"
#include "mem.h"
#include "paths.h"
#include "prompt.h"
#include "toml.h"
#include "yaml_import.h"

#define TOKEN_ENV_REF "${MANTA_NODE_TOKEN}"

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
        cli_config_print_issues((char *[]){(char *)mt_error_msg(e), NULL});
        mt_error_free(&e);
    } else {
        config_finalize(&cfg, NULL);
        cleanup_strv char **issues = NULL;
        if (config_validate(&cfg, &issues) == 0) {
            printf("✓ Configuration is valid\n");
        } else {
            printf("Configuration has validation issues:\n");
            cli_config_print_issues(issues);
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
    if (cli_config_check_name(name) < 0)
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
        cleanup_free char *now = clock_iso_local();
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
        if (cli_config_check_name(name) < 0)
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
    cleanup_free char *now = clock_iso_local();
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

int cli_config_init(int argc, char **argv)
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
    if (o.name && cli_config_check_name(o.name) < 0)
        return 1;
    if (optind < argc - 1)
        return cli_usage("config init", "Too many arguments ('%s')", argv[optind + 1]);
    if (optind == argc - 1)
        return init_import(argv[optind], &o);
    return init_new(&o);
}
