/* err.h - the one error type of manta-node.
 *
 * Every fallible function takes `mt_error **err` as its last parameter and returns -1 (or NULL)
 * on failure after setting *err with mt_error_set(). Callers add context on the way up with
 * mt_error_wrap(); the CLI prints the message once, the daemon logs it once, and whoever
 * handles the error releases it with mt_error_free().
 */
#ifndef MANTA_ERR_H
#define MANTA_ERR_H

#include <stdarg.h>

/* Error categories; `code` lets callers branch without parsing messages. */
enum mt_errcode {
    MT_ERR_GENERIC = 1,
    MT_ERR_IO,       /* a system call failed; errno-derived text in the message */
    MT_ERR_PARSE,    /* malformed input (TOML, YAML, JSON, ...) */
    MT_ERR_CONFIG,   /* a configuration is wrong */
    MT_ERR_NOTFOUND, /* a named thing does not exist */
    MT_ERR_EXISTS,   /* a named thing already exists */
    MT_ERR_USAGE,    /* the command line is wrong */
    MT_ERR_NOENV,    /* an environment variable referenced by a config is missing */
    MT_ERR_INVALID,  /* a request is malformed or not allowed (the light service's
                      * VALIDATION_ERROR) */
    MT_ERR_RESOURCE, /* what a request needs is missing, busy or unusable (RESOURCE_ERROR) */
};

typedef struct mt_error {
    int code;   /* enum mt_errcode */
    int errnum; /* errno at the failure, 0 if none */
    int status; /* where a caller answers in another protocol's terms: its status (an rpc code
                 * for a gRPC answer, an HTTP status, the step of a start that failed); 0 if
                 * none. The message stays the one channel for words. */
    char *msg;  /* owned; complete sentence(s), context prepended by mt_error_wrap */
} mt_error;

/* Set *err (must be NULL or point to NULL) to a new error. Returns -1 for `return
 * mt_error_set(...)`. If err is NULL the error is discarded. */
int mt_error_set(mt_error **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, appending ": strerror(errnum)". */
int mt_error_sys(mt_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mt_error_set with a status (see mt_error.status; non-zero). Returns -1. */
int mt_error_set_status(mt_error **err, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The status err carries, or dflt if err is NULL or carries none. */
int mt_error_status(const mt_error *err, int dflt);

/* Prepend "context: " to an existing error. Returns -1. No-op if err or *err is NULL. */
int mt_error_wrap(mt_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Free *err and set it to NULL. Safe on NULL. */
void mt_error_free(mt_error **err);

/* The message, or "" for no error. Borrowed. */
const char *mt_error_msg(const mt_error *err);

/* The cleanup idiom for an error held in a local (see mem.h): freed when it goes out of scope. */
#define cleanup_error __attribute__((cleanup(mt_error_free)))

#endif
