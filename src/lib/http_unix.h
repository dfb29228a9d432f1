/* http_unix.h - HTTP/1.1 over a unix socket, enough for the Docker Engine API: one request per
 * connection (Connection: close), bodies with Content-Length, chunked, or until EOF, streamed
 * to a sink as they arrive (bounded memory), an overall deadline. Blocking; thread-safe. */
#ifndef MANTA_HTTP_UNIX_H
#define MANTA_HTTP_UNIX_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Receives the response body as it arrives (status known). Return false to abort. */
typedef bool (*http_sink)(int status, const char *data, size_t n, void *ud);

typedef struct http_request {
    const char *socket;         /* unix socket path */
    const char *method;         /* "GET", "POST", "DELETE" */
    const char *path;           /* "/containers/json?all=1" (already escaped) */
    const char *const *headers; /* NULL-terminated "Name: value", or NULL */
    const char *body;           /* request body or NULL */
    size_t body_len;
    long timeout_ms; /* the whole exchange */
    long connect_timeout_ms;
    http_sink sink;
    void *ud;
    int cancel_fd; /* > 0: give up (HTTP_ABORTED) as soon as this fd is readable (an eventfd
                    * written at shutdown); 0 = none */
} http_request;

/* How an exchange failed: the status of its mt_error. */
enum http_failure {
    HTTP_OK = 0,
    HTTP_CONNECT,  /* could not connect (the error's errnum) */
    HTTP_TIMEOUT,  /* the deadline passed */
    HTTP_IO,       /* send/receive failed (errnum) */
    HTTP_PROTOCOL, /* not an HTTP answer we understand */
    HTTP_ABORTED,  /* the sink said stop, or cancel_fd */
};

typedef struct http_response {
    int status; /* HTTP status, 0 if none */
} http_response;

/* Returns 0 when the whole answer was received (any status), -1 otherwise with *err: the
 * failure in words, its status an enum http_failure, its errnum the system's error if any. */
int http_unix_request(const http_request *rq, http_response *rs, mt_error **err);

/* Percent-encode for a query value ([A-Za-z0-9-._~] kept). Returns owned. */
char *http_escape(const char *s);

#endif
