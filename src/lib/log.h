/* log.h - the node's log: levels, file and console sinks, size-based rotation, secret redaction.
 *
 * One `logger` per process, owned by the daemon context (no global logger). Lines look like
 *   2026-11-21 17:53:03,123 - INFO - manta_node.agent - message
 * (the reference node's format). The file is opened for appending (never truncated at start);
 * when it would grow past max_bytes it is rotated: file -> file.1 -> ... -> file.<backup_count>
 * (the oldest is deleted). Every registered secret (e.g. the JWT) is replaced by "***" in every
 * message at every level before anything is written. Level checks happen before formatting.
 */
#ifndef MANTA_LOG_H
#define MANTA_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef enum log_level {
    LOG_DEBUG = 10,
    LOG_INFO = 20,
    LOG_WARNING = 30,
    LOG_ERROR = 40,
    LOG_CRITICAL = 50,
} log_level;

typedef struct log_options {
    log_level level;
    const char *file;    /* borrowed during log_open; NULL or "" = no file sink */
    bool to_file;        /* write to `file` */
    bool to_console;     /* write to `console` */
    FILE *console;       /* NULL = stderr */
    uint64_t max_bytes;  /* rotate when a write would exceed this; 0 = never rotate */
    int backup_count;    /* rotated files kept; 0 = truncate in place when full */
    const char *program; /* logger name prefix, e.g. "manta_node"; NULL -> "manta" */
} log_options;

typedef struct logger logger;

/* Open a logger (creates the log file's directory if needed). Returns owned or NULL + *err. */
logger *log_open(const log_options *opt, mt_error **err);
void log_close(logger *lg); /* safe on NULL */

/* Redact this string (copied) from every later message. Empty/short (< 4 chars) secrets are
 * ignored to avoid mangling ordinary text. */
void log_add_secret(logger *lg, const char *secret);

/* Change the level at run time (e.g. on SIGHUP). */
void log_set_level(logger *lg, log_level level);

/* Reopen the file sink (after external rotation or on SIGHUP). */
int log_reopen(logger *lg, mt_error **err);

bool log_enabled(const logger *lg, log_level level);

/* Write one message. `component` names the module ("agent", "mqtt", ...). lg may be NULL
 * (then nothing is written). Level is checked before formatting. */
void log_msg(logger *lg, log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(lg, comp, ...) log_msg((lg), LOG_DEBUG, (comp), __VA_ARGS__)
#define log_info(lg, comp, ...)  log_msg((lg), LOG_INFO, (comp), __VA_ARGS__)
#define log_warn(lg, comp, ...)  log_msg((lg), LOG_WARNING, (comp), __VA_ARGS__)
#define log_error(lg, comp, ...) log_msg((lg), LOG_ERROR, (comp), __VA_ARGS__)

/* "DEBUG", "INFO", "WARNING" (also "WARN"), "ERROR", "CRITICAL"; case-insensitive. */
bool log_level_parse(const char *name, log_level *out);
const char *log_level_name(log_level level);

#endif
