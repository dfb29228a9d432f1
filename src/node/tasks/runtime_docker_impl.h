/* runtime_docker_impl.h - what the files of the Docker driver share (runtime_docker.c: the
 * driver, its lifecycle calls, open/free; docker_api.c: the Engine API client; docker_pull.c:
 * prepare, i.e. the image pull; docker_spec.c: the container's create body; docker_logs.c: the
 * log stream; docker_events.c: exit events); private to them. The design is in
 * runtime_docker.c.
 */
#ifndef MANTA_RUNTIME_DOCKER_IMPL_H
#define MANTA_RUNTIME_DOCKER_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http_unix.h"
#include "runtime.h"
#include "strbuf.h"

#define DEFAULT_SOCKET         "/var/run/docker.sock"
#define CONNECT_TIMEOUT_MS     5000L
#define QUERY_TIMEOUT_MS       30000L  /* version, inspect, list */
#define CHANGE_TIMEOUT_MS      120000L /* create, start, remove (a big layer can take a while) */
#define LOGS_TIMEOUT_MS        300000L
#define WAIT_TIMEOUT_MS        60000L /* after a stop returned: the exit must be near */
#define STOP_EXTRA_MS          60000L /* added to the grace period of a stop */
#define DEFAULT_PULL_TIMEOUT_S 300
#define MAX_JSON_BODY          (16u << 20) /* an answer we parse */
#define MAX_ERROR_BODY         (64u << 10) /* an error answer we quote */
#define MAX_PULL_LINE          (64u << 10) /* one line of pull progress */
#define MIN_API_MINOR          40          /* API 1.40 = Docker 19.03 */

typedef struct docker_rt {
    char *socket;   /* unix socket path */
    char *reg_user; /* containers.registry_username / _password, or NULL */
    char *reg_pass;
    int pull_timeout;   /* seconds, when the spec gives none */
    long ncpu;          /* the daemon host's CPUs, 0 if unknown */
    int cancel_fd;      /* eventfd: docker_cancel(everything): every request gives up */
    int pull_cancel_fd; /* eventfd: docker_cancel(any): image pulls give up */
    /* exit events: one thread reading GET /events (die of containers labelled manta.node) */
    int events_stop_fd; /* eventfd: written to stop the events thread */
    bool events_on;
    pthread_t events_thread;
    void (*exit_cb)(void *ctx, const char *handle);
    void *exit_ctx;
} docker_rt;

/* ---- the Engine API client (docker_api.c) -------------------------------------------------- */

/* Consumes a successful (2xx) answer's body as it arrives; returns false to abort. */
typedef bool (*body_sink)(const char *data, size_t n, void *ud);

typedef struct http_call {
    /* request */
    const char *method; /* "GET", "POST", "DELETE" */
    const char *path;   /* "/containers/json?all=1" */
    const char *json;   /* POST body (NULL = empty) */
    const char *auth;   /* X-Registry-Auth or NULL */
    long timeout_ms;
    bool pull;      /* an image pull: given up at the first docker_cancel */
    body_sink sink; /* NULL: the body is collected in `body` (at most MAX_JSON_BODY) */
    void *sink_ud;
    /* answer */
    long status; /* HTTP status, 0 if none */
    strbuf body; /* collected body, or the error answer (at most MAX_ERROR_BODY) */
    bool too_big;
    bool sink_refused;
    http_response rs;
    mt_error *err; /* a failed exchange: its status an enum http_failure */
} http_call;

void docker_http_call_free(http_call *c);
/* How c's exchange failed (enum http_failure), HTTP_OK if it did not. */
int docker_http_failure_of(const http_call *c);

#define cleanup_call __attribute__((cleanup(docker_http_call_free)))

/* The http_sink of every request: collects the body of c (ud), or feeds it to c->sink. */
bool docker_on_body(int status, const char *data, size_t n, void *ud);
/* Perform one request. Returns 0 when Docker answered (any status), -1 when the exchange
 * failed (c->rs says why). */
int docker_http_do(const docker_rt *d, http_call *c);
/* Why the exchange failed, in words. Owned. */
char *docker_transport_reason(const http_call *c);
/* Set *err for a failed exchange: `what` says what we were doing ("Docker cannot start the
 * task container abc"). */
int docker_transport_error(const docker_rt *d, const http_call *c, const char *what,
                           mt_error **err);
/* Docker's own explanation of an error answer: its "message", else the text. Owned. */
char *docker_message(const http_call *c);
/* The mt_error code of an HTTP status (404 NOTFOUND, 409 EXISTS, 400 CONFIG, else GENERIC). */
int docker_status_code(long status);
/* Set *err for an error answer: "<what>: <Docker's message>". */
int docker_api_error(const http_call *c, const char *what, mt_error **err);
/* The collected body as JSON (object or array). */
json_t *docker_body_json(const http_call *c, const char *what, mt_error **err);

/* A container ID or name: [A-Za-z0-9][A-Za-z0-9_.-]*, so it can go into a URL path as is. */
bool docker_handle_valid(const char *h);
/* docker_handle_valid, or MT_ERR_USAGE "<what>: ... is not a Docker container ID or name". */
int docker_check_handle(const char *h, const char *what, mt_error **err);
/* An image reference: registry/path:tag@digest characters only (so it can go into a URL). */
bool docker_image_valid(const char *ref);
/* s escaped for a URL's query (owned). */
char *docker_url_escape(const char *s);

/* ---- the driver's calls in the other files ------------------------------------------------- */

/* runtime_ops.prepare: the image, pulled when missing (docker_pull.c). */
int docker_prepare(runtime *rt, const task_spec *spec, mt_error **err);
/* The body of POST /containers/create. Owned text, NULL + *err when the spec is unusable
 * (docker_spec.c). */
char *docker_create_body(const docker_rt *d, const task_spec *spec, mt_error **err);
/* runtime_ops.logs: the newest `limit` bytes of stdout+stderr (docker_logs.c). */
int docker_logs(runtime *rt, const char *handle, uint64_t limit, uint8_t **out, size_t *len,
                mt_error **err);
/* runtime_ops.watch_exits: one thread reading GET /events (docker_events.c). */
int docker_watch_exits(runtime *rt, void (*cb)(void *ctx, const char *handle), void *ctx,
                       mt_error **err);

#endif
