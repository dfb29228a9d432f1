/* cli_config.c - `manta_node config init|list|show|validate|edit|delete|reference`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_config_impl.h"
#include "clock.h"
#include "node_config.h"
#include "fsutil.h"
#include "id.h"
#include "jwt.h"
#include "mem.h"
#include "paths.h"
#include "prompt.h"
#include "strbuf.h"

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

/* ---- shared ------------------------------------------------------------------------------- */

int cli_config_check_name(const char *name)
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

void cli_config_print_issues(char **issues)
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
    if (cli_config_check_name(*name) < 0)
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
        char when[CLOCK_TEXT_MAX];
        clock_utc_text(ji.exp, when);
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
        cli_config_print_issues(issues);
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
    if (cli_config_check_name(name) < 0)
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
        cli_config_print_issues(issues);
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
    if (cli_config_check_name(name) < 0)
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
        {"init", cli_config_init},         {"list", config_list}, {"show", config_show},
        {"validate", config_validate_cmd}, {"edit", config_edit}, {"delete", config_delete},
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
