/* test_mqtt.c - the MQTT client against a real mosquitto broker started by the test.
 *
 * Every test starts its own broker (/usr/sbin/mosquitto -c <generated conf>) listening only on
 * 127.0.0.1 on a free port, drives its clients with a small poll(2) loop and stops the broker
 * with SIGTERM in the teardown (which also runs when an assertion fails). Every wait is bounded.
 * Certificates for the TLS tests are made once with the openssl CLI in the group's temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "mqtt.h"

#define MOSQUITTO_BIN "/usr/sbin/mosquitto"
#define WAIT_MS       5000

static char dir[64]; /* the group's temp dir */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *path_in_dir(const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    char buf[4096];
    bool found = false;
    while (!found && fgets(buf, sizeof(buf), fp))
        found = strstr(buf, needle) != NULL;
    fclose(fp);
    return found;
}

/* ---- the broker ---- */

typedef struct broker {
    pid_t pid;
    int port;
    int starts;
    char *name;
    char *conf; /* listener settings and everything else after the listener line */
    char *log;  /* log of the latest start */
} broker;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Wait for the child with a deadline; SIGKILL it if it does not go. */
static void reap(pid_t pid, int ms)
{
    int64_t deadline = now_ms() + ms;
    int status;
    while (now_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

static void broker_stop(broker *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        reap(b->pid, WAIT_MS);
        b->pid = 0;
    }
}

/* One attempt on b->port: false if the broker exited (e.g. the port was taken meanwhile). */
static bool broker_try_start(broker *b)
{
    b->starts++;
    cleanup_free char *conf_path = xasprintf("%s/%s-%d.conf", dir, b->name, b->starts);
    free(b->log);
    b->log = xasprintf("%s/%s-%d.log", dir, b->name, b->starts);
    FILE *fp = fopen(conf_path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "user root\n" /* as root, stay root: the files are in a 0700 temp dir */
            "log_dest stderr\n"
            "log_type all\n"
            "listener %d 127.0.0.1\n"
            "%s",
            b->port, b->conf);
    assert_int_equal(fclose(fp), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(MOSQUITTO_BIN, "mosquitto", "-c", conf_path, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    /* Ready once it has logged that it is running (after opening its listener). */
    int64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            return false;
        }
        if (file_contains(b->log, " running"))
            return true;
        sleep_ms(10);
    }
    broker_stop(b);
    fail_msg("mosquitto did not start within %d ms (log: %s)", WAIT_MS, b->log);
    return false;
}

/* Start on a free port (port 0) or on the given one, retrying a few times. */
static void broker_start(broker *b, int port)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        b->port = port ? port : free_port();
        if (broker_try_start(b))
            return;
        sleep_ms(100);
    }
    fail_msg("mosquitto would not start (log: %s)", b->log);
}

/* ---- clients ---- */

typedef struct rmsg {
    char *topic;
    void *payload;
    size_t len;
    int qos;
} rmsg;

typedef struct tclient {
    mqtt_client *c;
    int connacks;
    int connack_rc;
    bool session_present;
    int disconnects;
    int disconnect_rc;
    int loop_errors; /* entry points that returned -1 */
    rmsg *msgs;
    size_t nmsgs;
    int *acked; /* on_published mids */
    size_t nacked;
    int subacks;
    int sub_mid;
    int sub_granted;
    /* Calls made from inside on_message (libmosquitto defers their writes). */
    const char *reply_topic; /* publish a QoS 1 reply to this topic */
    bool disconnect_on_message;
    int reconnect_port; /* on_disconnect calls mqtt_connect to 127.0.0.1:port */
    int reconnect_rc;
    char *reconnect_err;
    bool no_tick; /* pump does not call mqtt_tick for this one */
} tclient;

#define MAX_CLIENTS 8

typedef struct fixture {
    broker brokers[2];
    tclient *clients[MAX_CLIENTS];
    int nclients;
} fixture;

static void cb_connect(void *ctx, int rc, bool session_present)
{
    tclient *t = ctx;
    t->connacks++;
    t->connack_rc = rc;
    t->session_present = session_present;
}

static void cb_disconnect(void *ctx, int rc)
{
    tclient *t = ctx;
    t->disconnects++;
    t->disconnect_rc = rc;
    if (t->reconnect_port) {
        mt_error *e = NULL;
        t->reconnect_rc = mqtt_connect(t->c, "127.0.0.1", t->reconnect_port, &e);
        free(t->reconnect_err);
        t->reconnect_err = xstrdup(mt_error_msg(e));
        mt_error_free(&e);
    }
}

static void cb_message(void *ctx, const char *topic, const void *payload, size_t len, int qos)
{
    tclient *t = ctx;
    t->msgs = xrealloc(t->msgs, (t->nmsgs + 1) * sizeof(*t->msgs));
    rmsg *m = &t->msgs[t->nmsgs++];
    m->topic = xstrdup(topic);
    m->payload = xmalloc(len);
    if (len)
        memcpy(m->payload, payload, len);
    m->len = len;
    m->qos = qos;
    if (t->reply_topic) {
        mt_error *e = NULL;
        if (mqtt_publish(t->c, t->reply_topic, payload, len, 1, false, NULL, &e) != 0)
            fail_msg("mqtt_publish in a callback: %s", mt_error_msg(e));
    }
    if (t->disconnect_on_message)
        mqtt_disconnect(t->c);
}

static void cb_published(void *ctx, int mid)
{
    tclient *t = ctx;
    t->acked = xrealloc(t->acked, (t->nacked + 1) * sizeof(*t->acked));
    t->acked[t->nacked++] = mid;
}

static void cb_subscribed(void *ctx, int mid, int granted_qos)
{
    tclient *t = ctx;
    t->subacks++;
    t->sub_mid = mid;
    t->sub_granted = granted_qos;
}

static const mqtt_callbacks callbacks = {
    .on_connect = cb_connect,
    .on_disconnect = cb_disconnect,
    .on_message = cb_message,
    .on_published = cb_published,
    .on_subscribed = cb_subscribed,
};

static mqtt_options opts_for(const char *id)
{
    return (mqtt_options){.client_id = id, .clean_session = true, .keepalive = 30};
}

static tclient *client_new(fixture *f, const mqtt_options *o)
{
    assert_true(f->nclients < MAX_CLIENTS);
    tclient *t = xcalloc(1, sizeof(*t));
    f->clients[f->nclients++] = t;
    mt_error *e = NULL;
    t->c = mqtt_new(o, &callbacks, t, &e);
    if (!t->c)
        fail_msg("mqtt_new: %s", mt_error_msg(e));
    return t;
}

static void client_free(tclient *t)
{
    mqtt_free(t->c);
    for (size_t i = 0; i < t->nmsgs; i++) {
        free(t->msgs[i].topic);
        free(t->msgs[i].payload);
    }
    free(t->msgs);
    free(t->acked);
    free(t->reconnect_err);
    free(t);
}

static bool acked(const tclient *t, int mid)
{
    for (size_t i = 0; i < t->nacked; i++)
        if (t->acked[i] == mid)
            return true;
    return false;
}

static const rmsg *find_msg(const tclient *t, const char *topic)
{
    for (size_t i = 0; i < t->nmsgs; i++)
        if (strcmp(t->msgs[i].topic, topic) == 0)
            return &t->msgs[i];
    return NULL;
}

/* One round of the event loop over every client: poll, then read / write / tick. */
static void pump(fixture *f, int timeout_ms)
{
    struct pollfd pfd[MAX_CLIENTS];
    tclient *who[MAX_CLIENTS];
    int n = 0;
    for (int i = 0; i < f->nclients; i++) {
        tclient *t = f->clients[i];
        int fd = mqtt_fd(t->c);
        if (fd < 0)
            continue;
        pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
        if (mqtt_want_write(t->c))
            pfd[n].events |= POLLOUT;
        who[n++] = t;
    }
    if (n == 0) {
        sleep_ms(timeout_ms);
        return;
    }
    int r = poll(pfd, (nfds_t)n, timeout_ms);
    assert_true(r >= 0 || errno == EINTR);
    for (int i = 0; r > 0 && i < n; i++) {
        tclient *t = who[i];
        short re = pfd[i].revents;
        if ((re & (POLLIN | POLLHUP | POLLERR)) && mqtt_fd(t->c) == pfd[i].fd) {
            if (mqtt_on_readable(t->c) < 0)
                t->loop_errors++;
        }
        if ((re & (POLLOUT | POLLERR)) && mqtt_fd(t->c) == pfd[i].fd) {
            if (mqtt_on_writable(t->c) < 0)
                t->loop_errors++;
        }
    }
    for (int i = 0; i < f->nclients; i++)
        if (!f->clients[i]->no_tick && mqtt_tick(f->clients[i]->c) < 0)
            f->clients[i]->loop_errors++;
}

/* Drive the clients until cond holds or ms passed; the caller asserts cond afterwards. */
#define RUN_UNTIL_MS(f, cond, ms)                                                                  \
    do {                                                                                           \
        int64_t deadline_ = now_ms() + (ms);                                                       \
        while (!(cond) && now_ms() < deadline_)                                                    \
            pump((f), 20);                                                                         \
    } while (0)
#define RUN_UNTIL(f, cond) RUN_UNTIL_MS(f, cond, WAIT_MS)

/* Drive the clients for ms milliseconds. */
static void run_for(fixture *f, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline)
        pump(f, 10);
}

static void connect_ok(fixture *f, tclient *t, const char *host, int port)
{
    mt_error *e = NULL;
    int before = t->connacks, disc_before = t->disconnects;
    if (mqtt_connect(t->c, host, port, &e) != 0)
        fail_msg("mqtt_connect: %s", mt_error_msg(e));
    assert_true(mqtt_fd(t->c) >= 0);
    RUN_UNTIL(f, t->connacks > before || t->disconnects > disc_before);
    assert_int_equal(t->disconnects, disc_before);
    assert_int_equal(t->connacks, before + 1);
    assert_int_equal(t->connack_rc, 0);
    assert_true(mqtt_connected(t->c));
}

static void subscribe_ok(fixture *f, tclient *t, const char *topic, int qos)
{
    mt_error *e = NULL;
    int mid = -1, before = t->subacks;
    if (mqtt_subscribe(t->c, topic, qos, &mid, &e) != 0)
        fail_msg("mqtt_subscribe: %s", mt_error_msg(e));
    assert_true(mid > 0);
    RUN_UNTIL(f, t->subacks > before);
    assert_int_equal(t->subacks, before + 1);
    assert_int_equal(t->sub_mid, mid);
    assert_int_equal(t->sub_granted, qos);
}

static int publish_ok(tclient *t, const char *topic, const void *payload, size_t len, int qos)
{
    mt_error *e = NULL;
    int mid = -1;
    if (mqtt_publish(t->c, topic, payload, len, qos, false, &mid, &e) != 0)
        fail_msg("mqtt_publish: %s", mt_error_msg(e));
    assert_true(mid > 0);
    return mid;
}

static void disconnect_ok(fixture *f, tclient *t)
{
    int before = t->disconnects;
    mqtt_disconnect(t->c);
    RUN_UNTIL(f, t->disconnects > before);
    assert_int_equal(t->disconnects, before + 1);
    assert_int_equal(t->disconnect_rc, 0);
    assert_int_equal(mqtt_fd(t->c), -1);
    assert_false(mqtt_connected(t->c));
}

/* ---- setup ---- */

static int run_quiet(const char *cmd)
{
    cleanup_free char *full = xasprintf("cd '%s' && { %s ; } >>tools.log 2>&1", dir, cmd);
    return system(full);
}

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a socket the peer closed (OpenSSL uses write(2)) */
    snprintf(dir, sizeof(dir), "/tmp/manta-test-mqtt-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    mqtt_lib_init();
    static const char *const steps[] = {
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout ca.key -out ca.crt -days 2 -subj /CN=manta-test-ca",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=manta-other-ca",
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n"
        "extendedKeyUsage=serverAuth\\n' >server.ext",
        "printf 'subjectAltName=DNS:wrong.example\\nbasicConstraints=CA:FALSE\\n"
        "extendedKeyUsage=serverAuth\\n' >wrong.ext",
        "printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' >client.ext",
    };
    for (size_t i = 0; i < ARRAY_LEN(steps); i++)
        if (run_quiet(steps[i]) != 0)
            return -1;
    static const char *const leaves[][2] = {
        {"server", "localhost"}, {"wrong", "wrong.example"}, {"client", "manta-test-client"}};
    for (size_t i = 0; i < ARRAY_LEN(leaves); i++) {
        const char *n = leaves[i][0];
        cleanup_free char *cmd = xasprintf(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s.key"
            " -out %s.csr -subj /CN=%s && openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key"
            " -CAcreateserial -days 2 -extfile %s.ext -out %s.crt",
            n, n, leaves[i][1], n, n, n);
        if (run_quiet(cmd) != 0)
            return -1;
    }
    if (run_quiet("mosquitto_passwd -b -c passwd manta s3cret") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    mqtt_lib_cleanup();
    if (getenv("MANTA_KEEP_TMP"))
        return 0;
    cleanup_free char *cmd = xasprintf("rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof(*f));
    f->brokers[0].name = xasprintf("broker-%ld", (long)now_ms());
    f->brokers[1].name = xasprintf("%s-b", f->brokers[0].name);
    f->brokers[0].conf = xstrdup("allow_anonymous true\npersistence false\n");
    f->brokers[1].conf = xstrdup(f->brokers[0].conf);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->nclients; i++)
        client_free(f->clients[i]);
    for (size_t i = 0; i < ARRAY_LEN(f->brokers); i++) {
        broker_stop(&f->brokers[i]);
        free(f->brokers[i].name);
        free(f->brokers[i].conf);
        free(f->brokers[i].log);
    }
    free(f);
    return 0;
}

static void set_conf(broker *b, const char *conf)
{
    free(b->conf);
    b->conf = xstrdup(conf);
}

/* ---- tests ---- */

static void test_options_rejected(void **state)
{
    mt_error *e = NULL;
    mqtt_options o = opts_for(NULL);
    assert_null(mqtt_new(&o, &callbacks, NULL, &e));
    assert_string_equal(mt_error_msg(e), "an MQTT client needs a client id");
    mt_error_free(&e);

    o = opts_for("x");
    o.tls = true;
    o.ca_file = "/nonexistent/ca.crt";
    assert_null(mqtt_new(&o, &callbacks, NULL, &e));
    assert_string_equal(mt_error_msg(e), "MQTT client x: cannot read the TLS CA file "
                                         "/nonexistent/ca.crt: No such file or directory");
    mt_error_free(&e);

    cleanup_free char *cert = path_in_dir("client.crt");
    cleanup_free char *key = path_in_dir("client.key");
    o = opts_for("x");
    o.tls = true;
    o.cert_file = cert;
    assert_null(mqtt_new(&o, &callbacks, NULL, &e));
    assert_non_null(strstr(mt_error_msg(e), "needs both a certificate and a key"));
    mt_error_free(&e);

    o = opts_for("x");
    o.keepalive = 4;
    assert_null(mqtt_new(&o, &callbacks, NULL, &e));
    assert_string_equal(mt_error_msg(e),
                        "MQTT client x: the keep-alive must be 5 to 65535 seconds (it is 4)");
    mt_error_free(&e);

    /* Client certificate with the system's CAs: accepted. */
    o = opts_for("x");
    o.tls = true;
    o.cert_file = cert;
    o.key_file = key;
    mqtt_client *sysca = mqtt_new(&o, &callbacks, NULL, &e);
    assert_non_null(sysca);
    mqtt_free(sysca);

    o = opts_for("x");
    o.will_topic = "w/#"; /* wildcards are not allowed in a will topic */
    assert_null(mqtt_new(&o, &callbacks, NULL, &e));
    assert_non_null(strstr(mt_error_msg(e), "cannot set the MQTT last will"));
    mt_error_free(&e);

    /* Not connected: fd -1, entry points are no-ops, QoS 0 and subscribe fail. */
    o = opts_for("idle");
    mqtt_client *c = mqtt_new(&o, &callbacks, NULL, &e);
    assert_non_null(c);
    assert_int_equal(mqtt_fd(c), -1);
    assert_false(mqtt_want_write(c));
    assert_false(mqtt_connected(c));
    assert_int_equal(mqtt_on_readable(c), 0);
    assert_int_equal(mqtt_on_writable(c), 0);
    assert_int_equal(mqtt_tick(c), 0);
    assert_int_equal(mqtt_publish(c, "a/b", "x", 1, 0, false, NULL, &e), -1);
    assert_string_equal(mt_error_msg(e),
                        "cannot publish to MQTT topic a/b: The client is not currently connected.");
    mt_error_free(&e);
    assert_int_equal(mqtt_subscribe(c, "a/b", 1, NULL, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "cannot subscribe to MQTT topic a/b"));
    mt_error_free(&e);
    mqtt_disconnect(c); /* harmless */
    mqtt_free(c);
}

static void test_roundtrip(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);

    mqtt_options o = opts_for("rt-sub");
    tclient *sub = client_new(f, &o);
    o = opts_for("rt-pub");
    tclient *pub = client_new(f, &o);
    connect_ok(f, sub, "127.0.0.1", b->port);
    assert_false(sub->session_present);
    connect_ok(f, pub, "localhost", b->port);
    subscribe_ok(f, sub, "rt/#", 1);

    /* QoS 0 with NUL bytes; no on_published for QoS 0. */
    static const char bin[] = {'a', '\0', 'b', '\0'};
    int mid0 = publish_ok(pub, "rt/zero", bin, sizeof(bin), 0);
    RUN_UNTIL(f, find_msg(sub, "rt/zero"));
    const rmsg *m = find_msg(sub, "rt/zero");
    assert_non_null(m);
    assert_int_equal(m->len, sizeof(bin));
    assert_memory_equal(m->payload, bin, sizeof(bin));
    assert_int_equal(m->qos, 0);

    /* QoS 1: on_published with the mid, delivered with QoS 1. */
    int mid1 = publish_ok(pub, "rt/one", "hello", 5, 1);
    RUN_UNTIL(f, find_msg(sub, "rt/one") && acked(pub, mid1));
    assert_true(acked(pub, mid1));
    m = find_msg(sub, "rt/one");
    assert_non_null(m);
    assert_int_equal(m->len, 5);
    assert_memory_equal(m->payload, "hello", 5);
    assert_int_equal(m->qos, 1);

    /* 1 MiB, QoS 1. */
    size_t big_len = 1 << 20;
    cleanup_free unsigned char *big = xmalloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 12));
    int midb = publish_ok(pub, "rt/big", big, big_len, 1);
    RUN_UNTIL(f, find_msg(sub, "rt/big") && acked(pub, midb));
    assert_true(acked(pub, midb));
    m = find_msg(sub, "rt/big");
    assert_non_null(m);
    assert_int_equal(m->len, big_len);
    assert_memory_equal(m->payload, big, big_len);
    assert_int_equal(m->qos, 1);

    /* Empty payload. */
    int mide = publish_ok(pub, "rt/empty", NULL, 0, 1);
    /* its delivery and its acknowledgement come in either order: wait for both */
    RUN_UNTIL(f, find_msg(sub, "rt/empty") && acked(pub, mide));
    assert_non_null(find_msg(sub, "rt/empty"));
    assert_int_equal(find_msg(sub, "rt/empty")->len, 0);

    /* Only the QoS 1 publishes were acknowledged, in order. */
    assert_int_equal(pub->nacked, 3);
    assert_int_equal(pub->acked[0], mid1);
    assert_int_equal(pub->acked[1], midb);
    assert_false(acked(pub, mid0));
    assert_int_equal(sub->nmsgs, 4);

    /* Connecting twice is refused. */
    mt_error *e = NULL;
    assert_int_equal(mqtt_connect(pub->c, "127.0.0.1", b->port, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "already connected"));
    mt_error_free(&e);

    disconnect_ok(f, pub);
    disconnect_ok(f, sub);
    assert_int_equal(sub->loop_errors + pub->loop_errors, 0);
}

static void test_persistent_session(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);

    mqtt_options o = opts_for("ps-a");
    o.clean_session = false;
    tclient *a = client_new(f, &o);
    o = opts_for("ps-b");
    tclient *pb = client_new(f, &o);

    connect_ok(f, a, "127.0.0.1", b->port);
    assert_false(a->session_present);
    subscribe_ok(f, a, "ps/x", 1);
    disconnect_ok(f, a);

    /* While A is away: B publishes to A's subscription; A queues a publish of its own. */
    connect_ok(f, pb, "127.0.0.1", b->port);
    subscribe_ok(f, pb, "ps/from-a", 1);
    int midb = publish_ok(pb, "ps/x", "while away", 10, 1);
    RUN_UNTIL(f, acked(pb, midb));
    assert_true(acked(pb, midb));
    int mida = publish_ok(a, "ps/from-a", "queued", 6, 1);
    run_for(f, 100);
    assert_false(acked(a, mida));
    assert_null(find_msg(pb, "ps/from-a"));

    /* A comes back: the session is there, the message waits, and A's queue is flushed. */
    connect_ok(f, a, "127.0.0.1", b->port);
    assert_true(a->session_present);
    RUN_UNTIL(f, find_msg(a, "ps/x") && find_msg(pb, "ps/from-a") && acked(a, mida));
    const rmsg *m = find_msg(a, "ps/x");
    assert_non_null(m);
    assert_int_equal(m->len, 10);
    assert_memory_equal(m->payload, "while away", 10);
    assert_int_equal(m->qos, 1);
    assert_true(acked(a, mida));
    m = find_msg(pb, "ps/from-a");
    assert_non_null(m);
    assert_memory_equal(m->payload, "queued", 6);
    assert_int_equal(a->nmsgs, 1);
    assert_int_equal(pb->nmsgs, 1);
}

/* A clean-session client keeps its own QoS 1 queue too (it is libmosquitto's, not the
 * broker's), including messages published before the first connect. */
static void test_offline_queue_clean_session(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);

    mqtt_options o = opts_for("oq-sub");
    tclient *sub = client_new(f, &o);
    o = opts_for("oq-pub");
    tclient *pub = client_new(f, &o);
    connect_ok(f, sub, "127.0.0.1", b->port);
    subscribe_ok(f, sub, "oq/#", 1);

    int m1 = publish_ok(pub, "oq/1", "first", 5, 1); /* never connected yet */
    int m2 = publish_ok(pub, "oq/2", "second", 6, 1);
    assert_true(m1 != m2);
    connect_ok(f, pub, "127.0.0.1", b->port);
    RUN_UNTIL(f, acked(pub, m1) && acked(pub, m2) && sub->nmsgs == 2);
    assert_true(acked(pub, m1) && acked(pub, m2));
    assert_int_equal(sub->nmsgs, 2);
    assert_string_equal(sub->msgs[0].topic, "oq/1");
    assert_string_equal(sub->msgs[1].topic, "oq/2");

    disconnect_ok(f, pub);
    int m3 = publish_ok(pub, "oq/3", "third", 5, 1);
    connect_ok(f, pub, "127.0.0.1", b->port);
    assert_false(pub->session_present);
    RUN_UNTIL(f, acked(pub, m3) && sub->nmsgs == 3);
    assert_true(acked(pub, m3));
    assert_int_equal(sub->nmsgs, 3);
    assert_string_equal(sub->msgs[2].topic, "oq/3");
}

static void test_last_will(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);

    mqtt_options o = opts_for("lw-watch");
    tclient *watch = client_new(f, &o);
    connect_ok(f, watch, "127.0.0.1", b->port);
    subscribe_ok(f, watch, "lw/#", 1);

    static const char will[] = "gone\0!";
    o = opts_for("lw-drop");
    o.will_topic = "lw/drop";
    o.will_payload = will;
    o.will_len = sizeof(will);
    o.will_qos = 1;
    tclient *drop = client_new(f, &o);
    connect_ok(f, drop, "127.0.0.1", b->port);

    /* Drop the connection abruptly: the broker publishes the will, the client sees the end. */
    assert_int_equal(shutdown(mqtt_fd(drop->c), SHUT_RDWR), 0);
    RUN_UNTIL(f, find_msg(watch, "lw/drop") && drop->disconnects > 0);
    const rmsg *m = find_msg(watch, "lw/drop");
    assert_non_null(m);
    assert_int_equal(m->len, sizeof(will));
    assert_memory_equal(m->payload, will, sizeof(will));
    assert_int_equal(m->qos, 1);
    assert_int_equal(drop->disconnects, 1);
    assert_int_not_equal(drop->disconnect_rc, 0);
    assert_true(drop->loop_errors >= 1);
    assert_int_equal(mqtt_fd(drop->c), -1);
    assert_false(mqtt_connected(drop->c));

    /* A clean disconnect does not publish the will. */
    o = opts_for("lw-clean");
    o.will_topic = "lw/clean";
    o.will_payload = "bye";
    o.will_len = 3;
    o.will_qos = 1;
    tclient *clean = client_new(f, &o);
    connect_ok(f, clean, "127.0.0.1", b->port);
    disconnect_ok(f, clean);
    run_for(f, 300);
    /* Marker through the same broker after the disconnect has been processed. */
    int mid = publish_ok(watch, "lw/marker", "m", 1, 1);
    RUN_UNTIL(f, find_msg(watch, "lw/marker") && acked(watch, mid));
    assert_non_null(find_msg(watch, "lw/marker"));
    assert_null(find_msg(watch, "lw/clean"));
    assert_int_equal(clean->loop_errors, 0);

    /* mqtt_free of a connected client does not publish the will either. */
    o = opts_for("lw-free");
    o.will_topic = "lw/free";
    o.will_payload = "bye";
    o.will_len = 3;
    tclient *freed = client_new(f, &o);
    connect_ok(f, freed, "127.0.0.1", b->port);
    mqtt_free(freed->c);
    freed->c = NULL;
    f->nclients--; /* it is the last one */
    client_free(freed);
    run_for(f, 300);
    mid = publish_ok(watch, "lw/marker2", "m", 1, 1);
    RUN_UNTIL(f, find_msg(watch, "lw/marker2") && acked(watch, mid));
    assert_non_null(find_msg(watch, "lw/marker2"));
    assert_null(find_msg(watch, "lw/free"));
}

static void test_broker_restart(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    cleanup_free char *pdir = xasprintf("%s/%s-data", dir, b->name);
    assert_int_equal(mkdir(pdir, 0700), 0);
    cleanup_free char *conf =
        xasprintf("allow_anonymous true\npersistence true\npersistence_location %s/\n", pdir);
    set_conf(b, conf);
    broker_start(b, 0);
    int port = b->port;

    mqtt_options o = opts_for("br-a");
    o.clean_session = false;
    tclient *a = client_new(f, &o);
    connect_ok(f, a, "127.0.0.1", port);
    subscribe_ok(f, a, "br/x", 1);

    /* The broker goes away: the loop reports -1 and on_disconnect fires. */
    broker_stop(b);
    RUN_UNTIL(f, a->disconnects > 0);
    assert_int_equal(a->disconnects, 1);
    assert_int_not_equal(a->disconnect_rc, 0);
    assert_int_equal(a->loop_errors, 1);
    assert_int_equal(mqtt_fd(a->c), -1);
    assert_false(mqtt_connected(a->c));

    /* Published while both are down: queued in the client. */
    int mid = publish_ok(a, "br/self", "kept", 4, 1);

    /* Same port; the broker restored its sessions from its persistence file. */
    broker_start(b, port);
    connect_ok(f, a, "127.0.0.1", port);
    assert_true(a->session_present);
    RUN_UNTIL(f, acked(a, mid));
    assert_true(acked(a, mid));

    o = opts_for("br-b");
    tclient *pb = client_new(f, &o);
    connect_ok(f, pb, "127.0.0.1", port);
    publish_ok(pb, "br/x", "after restart", 13, 1);
    RUN_UNTIL(f, find_msg(a, "br/x"));
    const rmsg *m = find_msg(a, "br/x"); /* no resubscribe needed */
    assert_non_null(m);
    assert_memory_equal(m->payload, "after restart", 13);
    assert_int_equal(a->subacks, 1);
}

static void test_connection_refused(void **state)
{
    fixture *f = *state;
    int port = free_port(); /* nothing listens there */
    mqtt_options o = opts_for("refused");
    tclient *t = client_new(f, &o);
    mt_error *e = NULL;
    int64_t t0 = now_ms();
    int rc = mqtt_connect(t->c, "127.0.0.1", port, &e);
    if (rc == 0) {
        RUN_UNTIL(f, t->disconnects > 0);
        assert_int_equal(t->disconnects, 1);
        assert_int_not_equal(t->disconnect_rc, 0);
        assert_int_equal(t->loop_errors, 1);
    } else {
        assert_non_null(strstr(mt_error_msg(e), "Connection refused"));
        mt_error_free(&e);
        assert_int_equal(t->disconnects, 0);
    }
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(t->connacks, 0);
    assert_int_equal(mqtt_fd(t->c), -1);
    assert_false(mqtt_connected(t->c));

    /* Unknown host name: an error from mqtt_connect. */
    assert_int_equal(mqtt_connect(t->c, "no-such-host.invalid", port, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "no-such-host.invalid"));
    mt_error_free(&e);
}

static void test_password(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    cleanup_free char *pw = path_in_dir("passwd");
    cleanup_free char *conf =
        xasprintf("allow_anonymous false\npersistence false\npassword_file %s\n", pw);
    set_conf(b, conf);
    broker_start(b, 0);

    mqtt_options o = opts_for("pw-ok");
    o.username = "manta";
    o.password = "s3cret";
    tclient *ok = client_new(f, &o);
    connect_ok(f, ok, "127.0.0.1", b->port);

    static const char *const bad_pw[] = {"wrong", NULL};
    for (size_t i = 0; i < ARRAY_LEN(bad_pw); i++) {
        o = opts_for(i == 0 ? "pw-wrong" : "pw-none");
        o.username = bad_pw[i] ? "manta" : NULL;
        o.password = bad_pw[i];
        tclient *bad = client_new(f, &o);
        mt_error *e = NULL;
        assert_int_equal(mqtt_connect(bad->c, "127.0.0.1", b->port, &e), 0);
        RUN_UNTIL(f, bad->disconnects > 0);
        assert_int_equal(bad->connacks, 1);
        assert_int_equal(bad->connack_rc, 5); /* 3.1.1: not authorised */
        assert_int_equal(bad->disconnects, 1);
        assert_int_not_equal(bad->disconnect_rc, 0);
        assert_false(mqtt_connected(bad->c));
        assert_int_equal(mqtt_fd(bad->c), -1);
    }
    assert_true(mqtt_connected(ok->c));
}

static char *tls_conf(bool require_cert, const char *server)
{
    return xasprintf("allow_anonymous true\npersistence false\ncafile %s/ca.crt\n"
                     "certfile %s/%s.crt\nkeyfile %s/%s.key\n%s",
                     dir, dir, server, dir, server,
                     require_cert ? "require_certificate true\n" : "");
}

/* Connect and expect failure: no accepted CONNACK, the end reported, no hang. */
static void connect_fails(fixture *f, tclient *t, const char *host, int port)
{
    mt_error *e = NULL;
    if (mqtt_connect(t->c, host, port, &e) == 0) {
        RUN_UNTIL(f, t->disconnects > 0);
        assert_int_equal(t->disconnects, 1);
        assert_int_not_equal(t->disconnect_rc, 0);
        assert_int_equal(t->loop_errors, 1);
    } else {
        mt_error_free(&e);
    }
    assert_true(t->connacks == 0 || t->connack_rc != 0);
    assert_false(mqtt_connected(t->c));
    assert_int_equal(mqtt_fd(t->c), -1);
}

static void tls_roundtrip(fixture *f, tclient *t, const char *topic)
{
    subscribe_ok(f, t, topic, 1);
    int mid = publish_ok(t, topic, "over tls", 8, 1);
    RUN_UNTIL(f, find_msg(t, topic) && acked(t, mid));
    const rmsg *m = find_msg(t, topic);
    assert_non_null(m);
    assert_memory_equal(m->payload, "over tls", 8);
    assert_true(acked(t, mid));
}

static void test_tls(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    cleanup_free char *conf = tls_conf(false, "server");
    set_conf(b, conf);
    broker_start(b, 0);
    cleanup_free char *ca = path_in_dir("ca.crt");
    cleanup_free char *other = path_in_dir("other-ca.crt");

    mqtt_options o = opts_for("tls-ok");
    o.tls = true;
    o.ca_file = ca;
    tclient *ok = client_new(f, &o);
    connect_ok(f, ok, "127.0.0.1", b->port);
    tls_roundtrip(f, ok, "tls/a");
    size_t big_len = 300000;
    cleanup_free char *big = xmalloc(big_len);
    memset(big, 'z', big_len);
    int mid = publish_ok(ok, "tls/a", big, big_len, 1);
    RUN_UNTIL(f, ok->nmsgs == 2 && acked(ok, mid));
    assert_int_equal(ok->nmsgs, 2);
    assert_int_equal(ok->msgs[1].len, big_len);
    assert_memory_equal(ok->msgs[1].payload, big, big_len);
    disconnect_ok(f, ok);

    /* By name too (the certificate names localhost). */
    connect_ok(f, ok, "localhost", b->port);
    disconnect_ok(f, ok);

    /* Without the CA (system CAs), or with an unrelated CA: refused by verification. */
    o = opts_for("tls-sys");
    o.tls = true;
    tclient *sys = client_new(f, &o);
    connect_fails(f, sys, "127.0.0.1", b->port);
    o = opts_for("tls-other");
    o.tls = true;
    o.ca_file = other;
    tclient *oth = client_new(f, &o);
    connect_fails(f, oth, "127.0.0.1", b->port);

    /* A plain client on the TLS port gets nowhere either, nor a TLS client on a plain one. */
    o = opts_for("tls-plain");
    tclient *plain = client_new(f, &o);
    connect_fails(f, plain, "127.0.0.1", b->port);
    broker_start(&f->brokers[1], 0);
    o = opts_for("tls-on-plain");
    o.tls = true;
    o.ca_file = ca;
    tclient *onplain = client_new(f, &o);
    connect_fails(f, onplain, "127.0.0.1", f->brokers[1].port);
}

static void test_tls_host_name(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    cleanup_free char *conf = tls_conf(false, "wrong"); /* certificate for wrong.example */
    set_conf(b, conf);
    broker_start(b, 0);
    cleanup_free char *ca = path_in_dir("ca.crt");

    mqtt_options o = opts_for("hn-strict");
    o.tls = true;
    o.ca_file = ca;
    tclient *strict = client_new(f, &o);
    connect_fails(f, strict, "127.0.0.1", b->port);

    o = opts_for("hn-insecure");
    o.tls = true;
    o.ca_file = ca;
    o.tls_insecure = true;
    tclient *insecure = client_new(f, &o);
    connect_ok(f, insecure, "127.0.0.1", b->port);
    tls_roundtrip(f, insecure, "hn/x");
}

static void test_mutual_tls(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    cleanup_free char *conf = tls_conf(true, "server");
    set_conf(b, conf);
    broker_start(b, 0);
    cleanup_free char *ca = path_in_dir("ca.crt");
    cleanup_free char *cert = path_in_dir("client.crt");
    cleanup_free char *key = path_in_dir("client.key");

    mqtt_options o = opts_for("mtls-ok");
    o.tls = true;
    o.ca_file = ca;
    o.cert_file = cert;
    o.key_file = key;
    tclient *ok = client_new(f, &o);
    connect_ok(f, ok, "127.0.0.1", b->port);
    tls_roundtrip(f, ok, "mtls/a");

    /* Without a client certificate the broker refuses the handshake. */
    o = opts_for("mtls-nocert");
    o.tls = true;
    o.ca_file = ca;
    tclient *nocert = client_new(f, &o);
    connect_fails(f, nocert, "127.0.0.1", b->port);

    /* The server's certificate is no client certificate (wrong extended key usage). */
    cleanup_free char *scert = path_in_dir("server.crt");
    cleanup_free char *skey = path_in_dir("server.key");
    o = opts_for("mtls-wrongcert");
    o.tls = true;
    o.ca_file = ca;
    o.cert_file = scert;
    o.key_file = skey;
    tclient *wrong = client_new(f, &o);
    connect_fails(f, wrong, "127.0.0.1", b->port);

    /* A file that is no certificate: mqtt_connect fails at once and leaves no socket. */
    o = opts_for("mtls-garbage");
    o.tls = true;
    o.ca_file = ca;
    o.cert_file = skey;
    o.key_file = skey;
    tclient *garbage = client_new(f, &o);
    mt_error *e = NULL;
    assert_int_equal(mqtt_connect(garbage->c, "127.0.0.1", b->port, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "cannot connect to the MQTT broker 127.0.0.1:"));
    mt_error_free(&e);
    assert_int_equal(mqtt_fd(garbage->c), -1);
    run_for(f, 100);
    assert_int_equal(garbage->disconnects, 0);
    assert_true(mqtt_connected(ok->c));
}

/* A server that accepts TCP but never answers: the keep-alive bounds the wait for the CONNACK
 * (plain) and for the TLS handshake, as long as mqtt_tick is called. Meanwhile, on a real
 * broker: mqtt_tick sends the PINGREQ of an idle connection; without mqtt_tick none is sent
 * (and the broker would drop the client after 1.5 keep-alives). */
static void test_keepalive_and_connect_timeout(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);
    mqtt_options ko = opts_for("ka-ticking");
    ko.keepalive = 5;
    tclient *ticking = client_new(f, &ko);
    ko = opts_for("ka-silent");
    ko.keepalive = 5;
    tclient *silent = client_new(f, &ko);
    silent->no_tick = true;
    connect_ok(f, ticking, "127.0.0.1", b->port);
    connect_ok(f, silent, "127.0.0.1", b->port);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(listen(lfd, 8), 0); /* the kernel completes handshakes; nobody accepts */
    int port = ntohs(sa.sin_port);
    cleanup_free char *ca = path_in_dir("ca.crt");

    mqtt_options o = opts_for("mute-plain");
    o.keepalive = 5;
    tclient *plain = client_new(f, &o);
    o = opts_for("mute-tls");
    o.keepalive = 5;
    o.tls = true;
    o.ca_file = ca;
    tclient *tls = client_new(f, &o);
    mt_error *e = NULL;
    int64_t t0 = now_ms();
    assert_int_equal(mqtt_connect(plain->c, "127.0.0.1", port, &e), 0);
    assert_int_equal(mqtt_connect(tls->c, "127.0.0.1", port, &e), 0);
    RUN_UNTIL_MS(f, plain->disconnects && tls->disconnects, 9000);
    int64_t elapsed = now_ms() - t0;
    close(lfd);
    assert_int_equal(plain->disconnects, 1);
    assert_int_equal(tls->disconnects, 1);
    assert_int_equal(plain->disconnect_rc, 19); /* MOSQ_ERR_KEEPALIVE */
    assert_int_equal(tls->disconnect_rc, 19);
    assert_int_equal(plain->loop_errors, 1);
    assert_int_equal(tls->loop_errors, 1);
    assert_int_equal(plain->connacks + tls->connacks, 0);
    assert_true(elapsed >= 4000 && elapsed < 8000);

    RUN_UNTIL_MS(f, file_contains(b->log, "Received PINGREQ from ka-ticking"), 3000);
    assert_true(file_contains(b->log, "Received PINGREQ from ka-ticking"));
    assert_false(file_contains(b->log, "PINGREQ from ka-silent"));
    assert_int_equal(ticking->disconnects + silent->disconnects, 0);
    assert_true(mqtt_connected(ticking->c));
    assert_true(mqtt_connected(silent->c));
}

/* mqtt_connect is refused inside a callback; the loop reconnects after it. */
static void test_reconnect_from_callback(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);

    mqtt_options o = opts_for("rc-a");
    o.clean_session = false;
    tclient *a = client_new(f, &o);
    o = opts_for("rc-b");
    tclient *pb = client_new(f, &o);
    connect_ok(f, a, "127.0.0.1", b->port);
    connect_ok(f, pb, "127.0.0.1", b->port);
    subscribe_ok(f, a, "rc/x", 1);

    a->reconnect_port = b->port;
    assert_int_equal(shutdown(mqtt_fd(a->c), SHUT_RDWR), 0);
    RUN_UNTIL(f, a->disconnects == 1);
    assert_int_equal(a->disconnects, 1);
    assert_int_not_equal(a->disconnect_rc, 0);
    assert_int_equal(a->reconnect_rc, -1);
    assert_string_equal(a->reconnect_err,
                        "MQTT client rc-a: mqtt_connect cannot be called from an MQTT callback");
    assert_int_equal(a->loop_errors, 1);
    assert_int_equal(mqtt_fd(a->c), -1);
    a->reconnect_port = 0;
    connect_ok(f, a, "127.0.0.1", b->port);
    assert_int_equal(a->connacks, 2);
    assert_int_equal(a->connack_rc, 0);
    assert_true(a->session_present);
    assert_true(mqtt_connected(a->c));

    publish_ok(pb, "rc/x", "again", 5, 1);
    RUN_UNTIL(f, find_msg(a, "rc/x"));
    assert_non_null(find_msg(a, "rc/x"));
}

/* Publishing and disconnecting from inside on_message: written by the next on_writable. */
static void test_calls_from_callbacks(void **state)
{
    fixture *f = *state;
    broker *b = &f->brokers[0];
    broker_start(b, 0);

    mqtt_options o = opts_for("cb-echo");
    o.will_topic = "cb/will";
    o.will_payload = "x";
    o.will_len = 1;
    tclient *echo = client_new(f, &o);
    o = opts_for("cb-main");
    tclient *main_ = client_new(f, &o);
    connect_ok(f, echo, "127.0.0.1", b->port);
    connect_ok(f, main_, "127.0.0.1", b->port);
    subscribe_ok(f, echo, "cb/req", 1);
    subscribe_ok(f, main_, "cb/#", 1);

    echo->reply_topic = "cb/reply";
    publish_ok(main_, "cb/req", "ping", 4, 1);
    RUN_UNTIL(f, find_msg(main_, "cb/reply"));
    const rmsg *m = find_msg(main_, "cb/reply");
    assert_non_null(m);
    assert_memory_equal(m->payload, "ping", 4);
    RUN_UNTIL(f, echo->nacked == 1);
    assert_int_equal(echo->nacked, 1);

    echo->reply_topic = NULL;
    echo->disconnect_on_message = true;
    publish_ok(main_, "cb/req", "stop", 4, 1);
    RUN_UNTIL(f, echo->disconnects > 0);
    assert_int_equal(echo->disconnects, 1);
    assert_int_equal(echo->disconnect_rc, 0);
    assert_int_equal(echo->loop_errors, 0);
    assert_int_equal(mqtt_fd(echo->c), -1);
    run_for(f, 300);
    int mid = publish_ok(main_, "cb/marker", "m", 1, 1);
    RUN_UNTIL(f, find_msg(main_, "cb/marker") && acked(main_, mid));
    assert_non_null(find_msg(main_, "cb/marker"));
    assert_null(find_msg(main_, "cb/will"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_rejected),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_queue_clean_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_will, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutual_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_and_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_from_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_from_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
