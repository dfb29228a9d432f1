/* cli_config_impl.h - what the files of `manta_node config` share (cli_config.c: dispatch,
 * list, show, validate, edit, delete, reference; cli_config_init.c: init). Not for other
 * commands: they use cli.h. */
#ifndef MANTA_CLI_CONFIG_IMPL_H
#define MANTA_CLI_CONFIG_IMPL_H

/* `manta_node config init [FILE] [options]`; argv[0] is "init". Returns the exit status. */
int cli_config_init(int argc, char **argv);

/* 0 if name is a valid configuration name, else -1 after printing why (stderr). Borrows name. */
int cli_config_check_name(const char *name);

/* Print a NULL-terminated list of validation issues on stdout, one "  - " line each (lines
 * that start "  →" are printed indented, without the dash). Borrows issues. */
void cli_config_print_issues(char **issues);

#endif
