/* cli.h - what the command files of manta_node share. Each command is
 *   int cli_<name>(int argc, char **argv)
 * with argv[0] the command's name; it returns the process exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef MANTA_CLI_H
#define MANTA_CLI_H

#include <stdbool.h>

#include "err.h"

#define EXIT_USAGE 2

int cli_config(int argc, char **argv);
int cli_start(int argc, char **argv);
int cli_stop(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_cluster(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_image(int argc, char **argv);

/* "Error: <message>" on stderr; later lines of the message are printed as they are. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "Error: <prefix>: <error message>" (or a block when the message has several lines). */
void cli_error_e(const mt_error *e, const char *prefix, ...) __attribute__((format(printf, 2, 3)));

/* A usage error: the message, then "Run 'manta_node <cmd> --help' for usage." Returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print the "not found" block of the seeds for configuration `name` (stderr). */
void cli_config_not_found(const char *name);

/* Print "Available configurations:" and the names (or a line saying there are none). */
void cli_list_configs(void);

/* Names of the existing configurations, sorted (owned NULL-terminated array). */
char **cli_config_names(void);

#endif
