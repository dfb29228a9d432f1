/* test_runtime_docker.c - the Docker runtime driver against a real dockerd.
 *
 * The group setup starts a private dockerd (own data root, exec root, containerd state under
 * them, pid file, unix socket, cgroup parent and daemon.json, no iptables, no bridge, nothing
 * on the network) in a temporary folder, and imports a one-binary image built offline from
 * Debian's busybox-static. The group teardown (and an atexit hook, and a signal handler, and
 * PR_SET_PDEATHSIG on dockerd) removes every container, stops dockerd and waits for it, kills
 * what it left (containerd, shims, container processes) and removes mounts, folder and cgroups.
 *
 * Needs root and the packages of scripts/deps (docker.io, busybox-static); without them the
 * test fails and says so. A "slow registry" test runs the driver against a tiny fake Docker
 * on a unix socket. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node_config.h"
#include "err.h"
#include "http_unix.h"
#include "mem.h"
#include "runtime.h"
#include "strbuf.h"

#define IMAGE "manta-test-busybox:latest"
/* what tasks.c passes: "<node xid>-<state folder tag>" (the compose label takes the xid) */
#define NODE      "testnode00000000000a-5eed"
#define NODE_LIST "testnode00000000000b"
#define NODE_GONE "testnode00000000000c"

static char tmp[64];      /* the test's folder */
static char sock[128];    /* dockerd's socket */
static char cgparent[64]; /* dockerd's cgroup parent */
static pid_t dockerd_pid = -1;
static runtime *rt; /* the driver under test, on `sock` */
static node_config cfg;
static bool cfg_ready;
static char module_path[128];
static char ds_dir[128];  /* dataset "d": a folder */
static char ds_file[128]; /* dataset "e": a file */

static const char *const base_env[] = {
    "TASK_ID=task0001",
    "SWARM_ID=swarm0001",
    "RPC_HOST=127.0.0.1",
    "RPC_PORT=50123",
    "MANTA_NOTE=spaces and = signs 'single' \"double\" $dollar ü",
    NULL,
};

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Raw Docker API (setup, teardown, checks of what the driver asked for)                    */

static bool collect(int status, const char *p, size_t n, void *ud)
{
    sb_append(ud, p, n);
    return true;
}

/* HTTP status, or -1 when the exchange failed. *out (optional) receives the body. */
static long api(const char *method, const char *path, const void *body, size_t blen,
                long timeout_ms, strbuf *out)
{
    strbuf sink = STRBUF_INIT;
    const char *hdrs[] = {"Content-Type: application/x-tar", NULL};
    http_request rq = {.socket = sock,
                       .method = method,
                       .path = path,
                       .headers = body ? hdrs : NULL,
                       .body = body ? body : (strcmp(method, "POST") == 0 ? "" : NULL),
                       .body_len = body ? blen : 0,
                       .timeout_ms = timeout_ms,
                       .connect_timeout_ms = 5000,
                       .sink = collect,
                       .ud = &sink};
    http_response rs;
    mt_error *e = NULL;
    long status = http_unix_request(&rq, &rs, &e) == 0 ? rs.status : -1;
    mt_error_free(&e);
    if (out) {
        sb_free(out);
        *out = sink;
    } else {
        sb_free(&sink);
    }
    return status;
}

static json_t *api_json(const char *path)
{
    strbuf b = STRBUF_INIT;
    long st = api("GET", path, NULL, 0, 15000, &b);
    json_t *j = st == 200 ? json_loads(sb_str(&b), 0, NULL) : NULL;
    sb_free(&b);
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Processes, files, cleanup                                                                 */

static bool file_is_static_elf(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    Elf64_Ehdr eh;
    bool ok = fread(&eh, sizeof(eh), 1, f) == 1 && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
              eh.e_ident[EI_CLASS] == ELFCLASS64;
    for (int i = 0; ok && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize), SEEK_SET) != 0 ||
            fread(&ph, sizeof(ph), 1, f) != 1 || ph.p_type == PT_INTERP)
            ok = false;
    }
    fclose(f);
    return ok;
}

static char *find_program(const char *name)
{
    const char *dirs[] = {"/usr/sbin", "/usr/bin",        "/sbin",
                          "/bin",      "/usr/local/sbin", "/usr/local/bin"};
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
        char *p = xasprintf("%s/%s", dirs[i], name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

/* Run argv with stdout/stderr appended to `log`; exit status, or -1 (killed after timeout). */
static int run_cmd(const char *const *argv, const char *log, int timeout_s)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int64_t end = now_ms() + timeout_s * 1000L;
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(20);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool write_file(const char *path, const void *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return false;
    bool ok = write(fd, data, n) == (ssize_t)n;
    return close(fd) == 0 && ok;
}

static bool copy_file(const char *from, const char *to)
{
    size_t n = 0;
    FILE *f = fopen(from, "rb");
    if (!f)
        return false;
    strbuf sb = STRBUF_INIT;
    char buf[65536];
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        sb_append(&sb, buf, n);
    fclose(f);
    bool ok = write_file(to, sb.buf, sb.len, 0755);
    sb_free(&sb);
    return ok;
}

/* The processes whose command line mentions `dir` (containerd, its shims, a dockerd that
 * would not stop: ours by construction, as `dir` is our own mkdtemp folder); SIGKILL them when
 * asked. Returns how many there are. */
static int processes_using(const char *dir, bool kill_them)
{
    int count = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    cleanup_free char *needle = xasprintf("%s/", dir);
    while ((e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 1 || pid == getpid())
            continue;
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = '\0';
        if (strstr(buf, needle)) {
            count++;
            if (kill_them)
                kill(pid, SIGKILL);
        }
    }
    closedir(d);
    return count;
}

/* The cgroups under `parent` ("/manta-test-<pid>") in every hierarchy: kill what is inside
 * when asked, remove them. */
static void clean_cgroups(const char *parent, bool kill_tasks)
{
    DIR *root = opendir("/sys/fs/cgroup");
    if (!root)
        return;
    struct dirent *e;
    while ((e = readdir(root))) {
        if (e->d_name[0] == '.')
            continue;
        char base[512];
        if (strcmp(e->d_name, "cgroup.procs") == 0) /* pure cgroup v2 */
            snprintf(base, sizeof(base), "/sys/fs/cgroup%s", parent);
        else
            snprintf(base, sizeof(base), "/sys/fs/cgroup/%s%s", e->d_name, parent);
        DIR *cg = opendir(base);
        if (!cg)
            continue;
        struct dirent *c;
        while ((c = readdir(cg))) {
            if (c->d_name[0] == '.' || c->d_type != DT_DIR)
                continue;
            char sub[1024];
            snprintf(sub, sizeof(sub), "%s/%s", base, c->d_name);
            if (kill_tasks) {
                char procs[1100];
                snprintf(procs, sizeof(procs), "%s/cgroup.procs", sub);
                FILE *f = fopen(procs, "r");
                int pid;
                while (f && fscanf(f, "%d", &pid) == 1)
                    if (pid > 1)
                        kill(pid, SIGKILL);
                if (f)
                    fclose(f);
            }
            rmdir(sub);
        }
        closedir(cg);
        rmdir(base);
    }
    closedir(root);
}

/* Unmount everything under `dir`, deepest first. */
static void unmount_under(const char *dir)
{
    cleanup_free char *prefix = xasprintf("%s/", dir);
    for (int round = 0; round < 5; round++) {
        FILE *f = fopen("/proc/self/mountinfo", "r");
        if (!f)
            return;
        char line[4096];
        char **found = NULL;
        size_t n = 0;
        while (fgets(line, sizeof(line), f)) {
            char mp[4096];
            if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && starts_with(mp, prefix)) {
                found = xrealloc(found, (n + 1) * sizeof(*found));
                found[n++] = xstrdup(mp);
            }
        }
        fclose(f);
        for (size_t i = n; i-- > 0;) {
            umount2(found[i], MNT_DETACH);
            free(found[i]);
        }
        free(found);
        if (!n)
            return;
    }
}

static void remove_all_containers(void)
{
    json_t *list = api_json("/containers/json?all=1");
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        if (id) {
            cleanup_free char *p = xasprintf("/containers/%s?force=1&v=1", id);
            api("DELETE", p, NULL, 0, 30000, NULL);
        }
    }
    json_decref(list);
}

static void print_dockerd_log(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "tail -n 30 '%s/dockerd.log' >&2", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "(no dockerd log)\n");
}

static pthread_mutex_t cleanup_lock = PTHREAD_MUTEX_INITIALIZER;

/* dockerd, what it started, its folder and cgroups: gone. Idempotent; bounded (about a minute
 * at worst); leaves `rt` alone (the signal watcher calls it while a test may run). */
static void cleanup_env(void)
{
    pthread_mutex_lock(&cleanup_lock);
    if (dockerd_pid > 0) {
        remove_all_containers();
        kill(dockerd_pid, SIGTERM);
        int64_t end = now_ms() + 45000;
        int status;
        pid_t r;
        while ((r = waitpid(dockerd_pid, &status, WNOHANG)) == 0 && now_ms() < end)
            sleep_ms(50);
        if (r == 0) {
            fprintf(stderr, "test_runtime_docker: dockerd did not stop within 45 s; killing\n");
            kill(dockerd_pid, SIGKILL);
            waitpid(dockerd_pid, &status, 0);
        }
        dockerd_pid = -1;
    }
    if (tmp[0]) {
        /* containerd and shims normally stop with dockerd; anything left is killed */
        for (int i = 0; i < 3; i++) {
            processes_using(tmp, true);
            clean_cgroups(cgparent, true);
            sleep_ms(i ? 200 : 50);
        }
        /* the shims re-parented to us (PR_SET_CHILD_SUBREAPER): collect them */
        int64_t end = now_ms() + 5000;
        while (processes_using(tmp, false) && now_ms() < end) {
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
            sleep_ms(50);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        unmount_under(tmp);
        const char *rm[] = {"rm", "-rf", "--one-file-system", tmp, NULL};
        if (run_cmd(rm, "/dev/null", 60) != 0)
            fprintf(stderr, "test_runtime_docker: could not remove %s\n", tmp);
        clean_cgroups(cgparent, false);
        tmp[0] = '\0';
    }
    pthread_mutex_unlock(&cleanup_lock);
}

static void cleanup_all(void)
{
    if (rt) {
        rt->ops->free(rt);
        rt = NULL;
    }
    if (cfg_ready) {
        config_free(&cfg);
        cfg_ready = false;
    }
    cleanup_env();
}

/* SIGTERM/SIGINT/SIGHUP (a ctest timeout, ^C) are blocked in every thread and taken here, in
 * a normal thread context where cleaning up is safe. */
static sigset_t term_signals;

static void *signal_watcher(void *arg)
{
    (void)arg;
    int sig = 0;
    if (sigwait(&term_signals, &sig) != 0)
        return NULL;
    fprintf(stderr, "test_runtime_docker: signal %d: stopping dockerd and cleaning up\n", sig);
    cleanup_env();
    _exit(128 + sig);
}

/* What an earlier run killed with SIGKILL left behind (its dockerd stopped on PDEATHSIG): its
 * folder /tmp/manta-dkr-<pid>-* and cgroups /manta-test-<pid>, once that pid is gone and no
 * process uses them. */
static void reap_stale_runs(void)
{
    DIR *d = opendir("/tmp");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end = NULL;
        if (!starts_with(e->d_name, "manta-dkr-"))
            continue;
        long pid = strtol(e->d_name + 10, &end, 10);
        if (pid <= 0 || *end != '-' || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        cleanup_free char *dir = xasprintf("/tmp/%s", e->d_name);
        if (processes_using(dir, false))
            continue;
        unmount_under(dir);
        const char *rm[] = {"rm", "-rf", "--one-file-system", dir, NULL};
        run_cmd(rm, "/dev/null", 60);
    }
    if (d)
        closedir(d);
    d = opendir("/sys/fs/cgroup/pids");
    while (d && (e = readdir(d))) {
        char *end = NULL;
        if (!starts_with(e->d_name, "manta-test-"))
            continue;
        long pid = strtol(e->d_name + 11, &end, 10);
        if (pid <= 0 || *end || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        cleanup_free char *parent = xasprintf("/%s", e->d_name);
        clean_cgroups(parent, false); /* only empty ones go */
    }
    if (d)
        closedir(d);
}

/* ---------------------------------------------------------------------------------------- */
/* Group setup / teardown                                                                    */

static int fail_setup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_setup(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "test_runtime_docker: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}

static int build_image(void)
{
    char rootfs[128], bin[160], tar[128], log[128];
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmp);
    snprintf(bin, sizeof(bin), "%s/bin", rootfs);
    snprintf(tar, sizeof(tar), "%s/rootfs.tar", tmp);
    snprintf(log, sizeof(log), "%s/build.log", tmp);
    if (mkdir(rootfs, 0755) || mkdir(bin, 0755))
        return fail_setup("cannot create %s: %s", rootfs, strerror(errno));
    char bb[200];
    snprintf(bb, sizeof(bb), "%s/busybox", bin);
    if (!copy_file("/bin/busybox", bb))
        return fail_setup("cannot copy /bin/busybox");
    const char *links[] = {"sh", "echo", "sleep", "cat", "head", "tail", "env", "ls"};
    for (size_t i = 0; i < ARRAY_LEN(links); i++) {
        char l[200];
        snprintf(l, sizeof(l), "%s/%s", bin, links[i]);
        if (symlink("busybox", l) != 0)
            return fail_setup("cannot create %s: %s", l, strerror(errno));
    }
    const char *tarv[] = {"tar", "-C", rootfs, "-cf", tar, ".", NULL};
    if (run_cmd(tarv, log, 60) != 0)
        return fail_setup("tar of the test image failed (see %s)", log);
    /* `docker import ROOTFS.tar manta-test-busybox:latest`, without the CLI */
    size_t len = 0;
    FILE *f = fopen(tar, "rb");
    if (!f)
        return fail_setup("cannot read %s", tar);
    strbuf data = STRBUF_INIT;
    char buf[65536];
    while ((len = fread(buf, 1, sizeof(buf), f)) > 0)
        sb_append(&data, buf, len);
    fclose(f);
    strbuf out = STRBUF_INIT;
    long st = api("POST", "/images/create?fromSrc=-&repo=manta-test-busybox&tag=latest", data.buf,
                  data.len, 60000, &out);
    sb_free(&data);
    int rc = 0;
    if (st != 200 || strstr(sb_str(&out), "\"error"))
        rc = fail_setup("importing the test image failed: HTTP %ld %s", st, sb_str(&out));
    sb_free(&out);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return fail_setup("must run as root: it starts a private dockerd");
    cleanup_free char *dockerd = find_program("dockerd");
    cleanup_free char *containerd = find_program("containerd");
    cleanup_free char *runc = find_program("runc");
    if (!dockerd || !containerd || !runc)
        return fail_setup("dockerd, containerd or runc is missing: run scripts/deps (it "
                          "installs docker.io)");
    if (!file_is_static_elf("/bin/busybox"))
        return fail_setup("/bin/busybox is missing or not statically linked: run scripts/deps "
                          "(it installs busybox-static)");
    unsetenv("DOCKER_HOST");

    reap_stale_runs();
    sigemptyset(&term_signals);
    sigaddset(&term_signals, SIGTERM);
    sigaddset(&term_signals, SIGINT);
    sigaddset(&term_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &term_signals, NULL);
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, signal_watcher, NULL) != 0)
        return fail_setup("cannot start the signal watcher thread");
    pthread_detach(watcher);

    snprintf(tmp, sizeof(tmp), "/tmp/manta-dkr-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(tmp)) {
        tmp[0] = '\0';
        return fail_setup("mkdtemp: %s", strerror(errno));
    }
    atexit(cleanup_all);
    snprintf(sock, sizeof(sock), "%s/docker.sock", tmp);
    snprintf(cgparent, sizeof(cgparent), "/manta-test-%d", (int)getpid());

    char data[128], exec[128], pidf[128], conf[128], log[128], host[160];
    snprintf(data, sizeof(data), "%s/data", tmp);
    snprintf(exec, sizeof(exec), "%s/exec", tmp);
    snprintf(pidf, sizeof(pidf), "%s/docker.pid", tmp);
    snprintf(conf, sizeof(conf), "%s/daemon.json", tmp);
    snprintf(log, sizeof(log), "%s/dockerd.log", tmp);
    snprintf(host, sizeof(host), "unix://%s", sock);
    if (!write_file(conf, "{}\n", 3, 0644))
        return fail_setup("cannot write %s", conf);

    /* containerd's shims daemonize: make them our children rather than init's, so that they
     * are reaped (and never outlive the test unnoticed) */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int64_t t0 = now_ms();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return fail_setup("fork: %s", strerror(errno));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        if (getppid() != parent)
            _exit(1);
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        /* containerd is started by dockerd with its state under exec/containerd and its root
         * under data/containerd: nothing is shared with a system Docker */
        execl(dockerd, "dockerd", "--config-file", conf, "--iptables=false", "--ip-forward=false",
              "--ip-masq=false", "--bridge=none", "--data-root", data, "--exec-root", exec,
              "--pidfile", pidf, "--host", host, "--cgroup-parent", cgparent, "--log-level", "warn",
              (char *)NULL);
        _exit(127);
    }
    dockerd_pid = pid;

    config_init_defaults(&cfg);
    cfg_ready = true;
    free(cfg.containers.docker_socket);
    cfg.containers.docker_socket = xstrdup(sock);
    mt_error *e = NULL;
    int64_t end = now_ms() + 60000;
    while (!rt) {
        rt = runtime_docker_new(&cfg, &e);
        if (rt)
            break;
        int status;
        if (waitpid(dockerd_pid, &status, WNOHANG) == dockerd_pid) {
            dockerd_pid = -1;
            print_dockerd_log();
            fail_setup("dockerd exited at start (log above): %s", mt_error_msg(e));
            mt_error_free(&e);
            return -1;
        }
        if (now_ms() > end) {
            print_dockerd_log();
            fail_setup("dockerd did not answer within 60 s: %s", mt_error_msg(e));
            mt_error_free(&e);
            return -1;
        }
        mt_error_free(&e);
        sleep_ms(100);
    }
    fprintf(stderr, "test_runtime_docker: dockerd ready in %lld ms\n", (long long)(now_ms() - t0));
    if (build_image() < 0)
        return -1;

    snprintf(module_path, sizeof(module_path), "%s/module.pyz", tmp);
    snprintf(ds_dir, sizeof(ds_dir), "%s/ds-d", tmp);
    snprintf(ds_file, sizeof(ds_file), "%s/ds-e.csv", tmp);
    char one[160];
    snprintf(one, sizeof(one), "%s/one.txt", ds_dir);
    if (!write_file(module_path, "PYZ-CONTENT-42\n", 15, 0644) || mkdir(ds_dir, 0755) ||
        !write_file(one, "dataset-d-one\n", 14, 0644) ||
        !write_file(ds_file, "a,b\n1,2\n", 8, 0644))
        return fail_setup("cannot write the test files in %s", tmp);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cleanup_all();
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers for the tests                                                                     */

static task_spec spec_for(const char *name, const char *const *argv)
{
    task_spec s = {
        .name = name,
        .node_xid = NODE,
        .image = IMAGE,
        .module_path = module_path,
        .env = base_env,
        .argv = argv,
        .workdir = tmp,
        .pull_timeout = 30,
    };
    return s;
}

/* Poll inspect until the task has exited (or timeout_ms passed). */
static rt_status wait_exit(const char *handle, int timeout_ms)
{
    rt_status st = {0};
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        mt_error *e = NULL;
        int rc = rt->ops->inspect(rt, handle, &st, &e);
        if (rc < 0)
            fail_msg("inspect: %s", mt_error_msg(e));
        if (st.state == RT_EXITED || st.state == RT_GONE || now_ms() > end)
            return st;
        sleep_ms(50);
    }
}

/* prepare + create + start; the handle is owned by the caller. */
static char *start_task(const task_spec *s)
{
    mt_error *e = NULL;
    char *h = NULL;
    if (rt->ops->prepare(rt, s, &e) < 0)
        fail_msg("prepare: %s", mt_error_msg(e));
    if (rt->ops->create(rt, s, &h, &e) < 0)
        fail_msg("create: %s", mt_error_msg(e));
    assert_non_null(h);
    if (rt->ops->start(rt, h, &e) < 0)
        fail_msg("start: %s", mt_error_msg(e));
    return h;
}

/* noinline: inlined at -O2/-O3, gcc 12 takes the result for the address of `out` and warns
 * (-Wdangling-pointer) at every use of a pointer into it. */
__attribute__((noinline)) static char *logs_of(const char *h, uint64_t limit, size_t *len)
{
    mt_error *e = NULL;
    uint8_t *out = NULL;
    size_t n = 0;
    if (rt->ops->logs(rt, h, limit, &out, &n, &e) < 0)
        fail_msg("logs: %s", mt_error_msg(e));
    if (len)
        *len = n;
    return (char *)out;
}

static void remove_task(const char *h)
{
    mt_error *e = NULL;
    if (rt->ops->remove(rt, h, &e) < 0)
        fail_msg("remove: %s", mt_error_msg(e));
}

/* The section of `text` between "@@name\n" and the next "@@" line. Owned. */
static char *section(const char *text, const char *name)
{
    cleanup_free char *mark = xasprintf("@@%s\n", name);
    const char *p = strstr(text, mark);
    if (!p)
        return xstrdup("");
    p += strlen(mark);
    const char *q = strstr(p, "\n@@");
    return q ? xstrndup(p, (size_t)(q - p) + 1) : xstrdup(p);
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                     */

static void test_env_mounts_and_confinement(void **state)
{
    const char *argv[] = {
        "sh", "-c",
        "exec 2>&1; echo @@env; env; echo @@module; cat /usr/src/module.pyz; echo @@ls; ls "
        "/datasets/d; "
        "echo @@file; cat /datasets/e; echo @@write; "
        "if echo x > /datasets/d/w; then echo WRITE-OK; else echo WRITE-REFUSED; fi; "
        "echo @@status; cat /proc/self/status; echo @@end",
        NULL};
    task_spec s = spec_for("manta-test-env", argv);
    const char *names[] = {"d", "e"};
    const char *paths[] = {ds_dir, ds_file};
    s.ndatasets = 2;
    s.dataset_names = names;
    s.dataset_paths = paths;
    s.memory_bytes = 64u << 20;
    s.cpus = 0.5;
    s.pids_limit = 64;
    s.log_limit = 1 << 20;
    cleanup_free char *h = start_task(&s);
    rt_status st = wait_exit(h, 30000);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 0);
    assert_false(st.oom_killed);
    cleanup_free char *out = logs_of(h, 0, NULL);

    /* the environment: exactly the spec's, plus what Docker and the shell always add */
    cleanup_free char *env = section(out, "env");
    for (const char *const *e = base_env; *e; e++) {
        cleanup_free char *line = xasprintf("%s\n", *e);
        if (!strstr(env, line))
            fail_msg("missing in the task's environment: %s\n--- env:\n%s", *e, env);
    }
    const char *allowed[] = {"PATH=", "HOSTNAME=", "HOME=", "PWD=", "SHLVL="};
    for (char *line = env, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            break;
        cleanup_free char *l = xstrndup(line, (size_t)(nl - line));
        bool ok = false;
        for (const char *const *e = base_env; *e && !ok; e++)
            ok = strcmp(l, *e) == 0;
        for (size_t i = 0; i < ARRAY_LEN(allowed) && !ok; i++)
            ok = strncmp(l, allowed[i], strlen(allowed[i])) == 0;
        if (!ok)
            fail_msg("unexpected variable in the task's environment: %s", l);
    }
    cleanup_free char *mod = section(out, "module");
    assert_string_equal(mod, "PYZ-CONTENT-42\n");
    cleanup_free char *ls = section(out, "ls");
    assert_string_equal(ls, "one.txt\n");
    cleanup_free char *file = section(out, "file");
    assert_string_equal(file, "a,b\n1,2\n");
    cleanup_free char *wr = section(out, "write");
    assert_non_null(strstr(wr, "WRITE-REFUSED"));
    assert_non_null(strstr(wr, "Read-only file system"));
    cleanup_free char *w = xasprintf("%s/w", ds_dir);
    assert_int_equal(access(w, F_OK), -1);
    cleanup_free char *status = section(out, "status");
    assert_non_null(strstr(status, "\nCapEff:\t0000000000000000\n"));
    assert_non_null(strstr(status, "\nCapPrm:\t0000000000000000\n"));
    assert_non_null(strstr(status, "\nNoNewPrivs:\t1\n"));

    /* what the driver asked Docker for */
    cleanup_free char *path = xasprintf("/containers/%s/json", h);
    json_t *j = api_json(path);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "Name")), "/manta-test-env");
    json_t *hc = json_object_get(j, "HostConfig");
    assert_string_equal(json_string_value(json_object_get(hc, "NetworkMode")), "host");
    json_t *binds = json_object_get(hc, "Binds");
    assert_int_equal(json_array_size(binds), 3);
    cleanup_free char *b0 = xasprintf("%s:/usr/src/module.pyz:ro", module_path);
    cleanup_free char *b1 = xasprintf("%s:/datasets/d:ro", ds_dir);
    cleanup_free char *b2 = xasprintf("%s:/datasets/e:ro", ds_file);
    assert_string_equal(json_string_value(json_array_get(binds, 0)), b0);
    assert_string_equal(json_string_value(json_array_get(binds, 1)), b1);
    assert_string_equal(json_string_value(json_array_get(binds, 2)), b2);
    assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(hc, "MemorySwap")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 500000000);
    assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 64);
    assert_string_equal(json_string_value(json_array_get(json_object_get(hc, "CapDrop"), 0)),
                        "ALL");
    assert_string_equal(json_string_value(json_array_get(json_object_get(hc, "SecurityOpt"), 0)),
                        "no-new-privileges");
    json_t *lc = json_object_get(hc, "LogConfig");
    assert_string_equal(json_string_value(json_object_get(lc, "Type")), "json-file");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(lc, "Config"), "max-size")), "1048576");
    json_t *labels = json_object_get(json_object_get(j, "Config"), "Labels");
    assert_string_equal(json_string_value(json_object_get(labels, "manta.node")), NODE);
    assert_string_equal(json_string_value(json_object_get(labels, "manta.task")), "manta-test-env");
    assert_string_equal(json_string_value(json_object_get(labels, "com.docker.compose.project")),
                        "node_testnode00000000000a");
    assert_true(json_is_true(json_object_get(hc, "Init"))); /* docker-init is PID 1 */
    json_t *cmd = json_object_get(json_object_get(j, "Config"), "Cmd");
    assert_int_equal(json_array_size(cmd), 3);
    assert_string_equal(json_string_value(json_array_get(cmd, 2)), argv[2]);
    json_decref(j);
    remove_task(h);

    /* datasets_rw: the task may write */
    const char *argv2[] = {"sh", "-c", "echo written > /datasets/d/w", NULL};
    task_spec s2 = spec_for("manta-test-env-rw", argv2);
    s2.ndatasets = 1;
    s2.dataset_names = names;
    s2.dataset_paths = paths;
    s2.datasets_rw = true;
    cleanup_free char *h2 = start_task(&s2);
    st = wait_exit(h2, 30000);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 0);
    assert_int_equal(access(w, F_OK), 0);
    unlink(w);
    remove_task(h2);
}

static void test_exit_code_and_states(void **state)
{
    const char *argv[] = {"sh", "-c", "echo before; exit 3", NULL};
    task_spec s = spec_for("manta-test-exit", argv);
    mt_error *e = NULL;
    char *h = NULL;
    assert_int_equal(rt->ops->prepare(rt, &s, &e), 0);
    if (rt->ops->create(rt, &s, &h, &e) < 0)
        fail_msg("create: %s", mt_error_msg(e));
    rt_status st;
    assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    assert_int_equal(st.state, RT_CREATED);
    int64_t wall0 = (int64_t)time(NULL) * 1000;
    assert_int_equal(rt->ops->start(rt, h, &e), 0);
    st = wait_exit(h, 30000);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 3);
    assert_false(st.oom_killed);
    assert_true(st.started_at_ms >= wall0 - 5000 && st.started_at_ms <= wall0 + 60000);
    assert_true(st.finished_at_ms >= st.started_at_ms);
    cleanup_free char *out = logs_of(h, 0, NULL);
    assert_string_equal(out, "before\n");
    remove_task(h);
    assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    assert_int_equal(st.state, RT_GONE);
    /* removing or stopping what is gone is not an error */
    assert_int_equal(rt->ops->remove(rt, h, &e), 0);
    assert_int_equal(rt->ops->stop(rt, h, 1, &e), 0);
    /* an invalid handle is refused before anything reaches Docker */
    assert_int_equal(rt->ops->inspect(rt, "../images/x", &st, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "is not a Docker container ID"));
    mt_error_free(&e);
    free(h);
}

static void test_oom_killed(void **state)
{
    const char *argv[] = {"sh", "-c", "head -c 200000000 /dev/zero | tail", NULL};
    task_spec s = spec_for("manta-test-oom", argv);
    s.memory_bytes = 32u << 20;
    cleanup_free char *h = start_task(&s);
    rt_status st = wait_exit(h, 60000);
    assert_int_equal(st.state, RT_EXITED);
    assert_true(st.oom_killed);
    assert_int_not_equal(st.exit_code, 0);
    remove_task(h);
}

static void test_pids_limit(void **state)
{
    const char *argv[] = {"sh", "-c",
                          "exec 2>&1; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat "
                          "/sys/fs/cgroup/pids.max; i=0; while [ $i -lt 40 ]; do sleep 30 & "
                          "i=$((i+1)); done; echo all-forked",
                          NULL};
    task_spec s = spec_for("manta-test-pids", argv);
    s.pids_limit = 10;
    cleanup_free char *h = start_task(&s);
    rt_status st = wait_exit(h, 60000);
    assert_int_equal(st.state, RT_EXITED);
    cleanup_free char *out = logs_of(h, 0, NULL);
    if (!starts_with(out, "10\n") || !strstr(out, "can't fork") || strstr(out, "all-forked"))
        fail_msg("the pids limit did not hold; the task wrote:\n%s", out);
    assert_int_not_equal(st.exit_code, 0);
    remove_task(h);
}

static void test_stop_with_grace(void **state)
{
    /* ignores SIGTERM: needs the SIGKILL */
    const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 300", NULL};
    task_spec s = spec_for("manta-test-stop", argv);
    cleanup_free char *h = start_task(&s);
    mt_error *e = NULL;
    rt_status st;
    assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    assert_int_equal(st.state, RT_RUNNING);
    int64_t t0 = now_ms();
    if (rt->ops->stop(rt, h, 1, &e) < 0)
        fail_msg("stop: %s", mt_error_msg(e));
    int64_t took = now_ms() - t0;
    fprintf(stderr, "stop with grace 1 took %lld ms\n", (long long)took);
    assert_true(took >= 900 && took < 8000);
    assert_int_equal(rt->ops->inspect(rt, h, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_true(st.exit_code == 137 || st.exit_code == 143);
    assert_false(st.oom_killed);
    /* a second stop is harmless */
    assert_int_equal(rt->ops->stop(rt, h, 1, &e), 0);

    /* a task that honours SIGTERM ends at once */
    const char *argv2[] = {"sh", "-c", "trap 'exit 143' TERM; while true; do sleep 1; done", NULL};
    task_spec s2 = spec_for("manta-test-stop-term", argv2);
    cleanup_free char *h2 = start_task(&s2);
    sleep_ms(300); /* let the shell install its trap */
    t0 = now_ms();
    assert_int_equal(rt->ops->stop(rt, h2, 10, &e), 0);
    took = now_ms() - t0;
    assert_true(took < 5000);
    assert_int_equal(rt->ops->inspect(rt, h2, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 143);

    /* a plain sleeper without a handler: docker-init is PID 1 and passes the SIGTERM on, so
     * it ends at once, long before the grace period is over */
    const char *argv3[] = {"sleep", "300", NULL};
    task_spec s3 = spec_for("manta-test-stop-plain", argv3);
    cleanup_free char *h3 = start_task(&s3);
    t0 = now_ms();
    assert_int_equal(rt->ops->stop(rt, h3, 30, &e), 0);
    took = now_ms() - t0;
    fprintf(stderr, "stop of a plain sleeper with grace 30 took %lld ms\n", (long long)took);
    assert_true(took < 10000);
    assert_int_equal(rt->ops->inspect(rt, h3, &st, &e), 0);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 143);
    remove_task(h);
    remove_task(h2);
    remove_task(h3);
}

static void test_logs_limit_keeps_newest(void **state)
{
    const char *argv[] = {"sh", "-c",
                          "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; "
                          "echo to-stderr >&2",
                          NULL};
    task_spec s = spec_for("manta-test-logs", argv);
    cleanup_free char *h = start_task(&s);
    rt_status st = wait_exit(h, 60000);
    assert_int_equal(st.state, RT_EXITED);
    size_t full_len = 0;
    cleanup_free char *full = logs_of(h, 0, &full_len);
    /* stdout in order, stderr somewhere (Docker copies the two streams independently) */
    const char *err_line = strstr(full, "to-stderr\n");
    assert_non_null(err_line);
    strbuf got = STRBUF_INIT;
    sb_append(&got, full, (size_t)(err_line - full));
    sb_puts(&got, err_line + strlen("to-stderr\n"));
    strbuf want = STRBUF_INIT;
    for (int i = 0; i < 2000; i++)
        sb_printf(&want, "line%d\n", i);
    assert_string_equal(sb_str(&got), sb_str(&want));
    assert_int_equal(full_len, want.len + strlen("to-stderr\n"));
    sb_free(&want);
    sb_free(&got);
    /* limits: small (wraps many times), crossing the growth steps, exact, larger */
    const uint64_t limits[] = {1, 7, 100, 4097, 5000, 12345, full_len, full_len + 1, 1u << 30};
    for (size_t i = 0; i < ARRAY_LEN(limits); i++) {
        size_t n = 0;
        cleanup_free char *part = logs_of(h, limits[i], &n);
        size_t expect = limits[i] < full_len ? (size_t)limits[i] : full_len;
        assert_int_equal(n, expect);
        assert_memory_equal(part, full + full_len - expect, expect);
    }
    remove_task(h);
}

static bool list_has(char **l, const char *h)
{
    for (size_t i = 0; l && l[i]; i++)
        if (strcmp(l[i], h) == 0)
            return true;
    return false;
}

static size_t list_len(char **l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    return n;
}

static void test_list_and_remove(void **state)
{
    const char *argv[] = {"sleep", "60", NULL};
    mt_error *e = NULL;
    char *h[3] = {0};
    const char *names[] = {"manta-test-list-1", "manta-test-list-2", "manta-test-list-other"};
    for (int i = 0; i < 3; i++) {
        task_spec s = spec_for(names[i], argv);
        s.node_xid = i < 2 ? NODE_LIST : NODE_GONE;
        if (rt->ops->create(rt, &s, &h[i], &e) < 0)
            fail_msg("create: %s", mt_error_msg(e));
    }
    assert_int_equal(rt->ops->start(rt, h[0], &e), 0); /* one running, one only created */
    cleanup_strv char **l = NULL;
    assert_int_equal(rt->ops->list(rt, NODE_LIST, &l, &e), 0);
    assert_int_equal(list_len(l), 2);
    assert_true(list_has(l, h[0]) && list_has(l, h[1]));
    cleanup_strv char **l2 = NULL;
    assert_int_equal(rt->ops->list(rt, NODE_GONE, &l2, &e), 0);
    assert_int_equal(list_len(l2), 1);
    assert_true(list_has(l2, h[2]));
    cleanup_strv char **l3 = NULL;
    assert_int_equal(rt->ops->list(rt, "nosuchnode", &l3, &e), 0);
    assert_int_equal(list_len(l3), 0);

    /* remove a running one (forced) and the others */
    for (int i = 0; i < 3; i++) {
        remove_task(h[i]);
        rt_status st;
        assert_int_equal(rt->ops->inspect(rt, h[i], &st, &e), 0);
        assert_int_equal(st.state, RT_GONE);
    }
    cleanup_strv char **l4 = NULL;
    assert_int_equal(rt->ops->list(rt, NODE_LIST, &l4, &e), 0);
    assert_int_equal(list_len(l4), 0);
    for (int i = 0; i < 3; i++)
        free(h[i]);
}

static void test_create_errors(void **state)
{
    const char *argv[] = {"true", NULL};
    mt_error *e = NULL;
    char *h = NULL;

    task_spec s = spec_for("manta-test-noimage", argv);
    s.image = "manta-test-nonexistent:1";
    assert_int_equal(rt->ops->create(rt, &s, &h, &e), -1);
    assert_null(h);
    assert_string_equal(mt_error_msg(e), "Docker cannot create the task container: No such image: "
                                         "manta-test-nonexistent:1");
    assert_int_equal(e->code, MT_ERR_NOTFOUND);
    mt_error_free(&e);

    task_spec s2 = spec_for("manta-test-dup", argv);
    assert_int_equal(rt->ops->create(rt, &s2, &h, &e), 0);
    char *h2 = NULL;
    assert_int_equal(rt->ops->create(rt, &s2, &h2, &e), -1);
    assert_true(starts_with(mt_error_msg(e), "Docker cannot create the task container: Conflict"));
    assert_int_equal(e->code, MT_ERR_EXISTS);
    mt_error_free(&e);
    remove_task(h);
    free(h);
    h = NULL;

    task_spec s3 = spec_for("manta-test-nomodule", argv);
    s3.module_path = "/nonexistent/module.pyz";
    assert_int_equal(rt->ops->create(rt, &s3, &h, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "module file /nonexistent/module.pyz"));
    assert_non_null(strstr(mt_error_msg(e), "No such file or directory"));
    mt_error_free(&e);

    task_spec s4 = spec_for("bad name/..", argv);
    assert_int_equal(rt->ops->create(rt, &s4, &h, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "not a valid container name"));
    mt_error_free(&e);

    /* the program does not exist in the image: Docker's init (PID 1) starts, says so in the
     * task's output and ends with 127 */
    const char *argv5[] = {"/no/such/program", NULL};
    task_spec s5 = spec_for("manta-test-noprog", argv5);
    assert_int_equal(rt->ops->create(rt, &s5, &h, &e), 0);
    if (rt->ops->start(rt, h, &e) < 0)
        fail_msg("start: %s", mt_error_msg(e));
    rt_status st = wait_exit(h, 30000);
    assert_int_equal(st.state, RT_EXITED);
    assert_int_equal(st.exit_code, 127);
    cleanup_free char *out = logs_of(h, 0, NULL);
    assert_non_null(strstr(out, "/no/such/program"));
    remove_task(h);
    free(h);
}

static void test_gpu_request_fails_clearly(void **state)
{
    const char *argv[] = {"true", NULL};
    task_spec s = spec_for("manta-test-gpu", argv);
    s.gpu = true;
    mt_error *e = NULL;
    char *h = NULL;
    int64_t t0 = now_ms();
    int rc = rt->ops->create(rt, &s, &h, &e);
    if (rc == 0) {
        json_t *j = NULL;
        cleanup_free char *path = xasprintf("/containers/%s/json", h);
        j = api_json(path);
        json_t *dr =
            json_array_get(json_object_get(json_object_get(j, "HostConfig"), "DeviceRequests"), 0);
        assert_string_equal(json_string_value(json_object_get(dr, "Driver")), "nvidia");
        assert_int_equal(json_integer_value(json_object_get(dr, "Count")), -1);
        json_decref(j);
        rc = rt->ops->start(rt, h, &e);
    }
    assert_int_equal(rc, -1);
    assert_true(now_ms() - t0 < 30000);
    fprintf(stderr, "GPU error: %s\n", mt_error_msg(e));
    assert_true(starts_with(mt_error_msg(e), "Docker cannot "));
    assert_non_null(strstr(mt_error_msg(e), "nvidia"));
    assert_non_null(strstr(mt_error_msg(e), "NVIDIA Container Toolkit"));
    mt_error_free(&e);
    if (h)
        remove_task(h);
    free(h);
}

static void test_missing_image_pull_fails(void **state)
{
    /* a registry on a loopback port where nothing listens: no traffic leaves the host */
    const char *argv[] = {"true", NULL};
    task_spec s = spec_for("manta-test-pull", argv);
    s.image = "127.0.0.1:1/manta/missing:latest";
    s.pull_timeout = 5;
    mt_error *e = NULL;
    int64_t t0 = now_ms();
    assert_int_equal(rt->ops->prepare(rt, &s, &e), -1);
    int64_t took = now_ms() - t0;
    fprintf(stderr, "pull error after %lld ms: %s\n", (long long)took, mt_error_msg(e));
    assert_true(took < 6000);
    assert_true(starts_with(mt_error_msg(e),
                            "Docker cannot pull image 127.0.0.1:1/manta/missing:latest: "));
    assert_non_null(strstr(mt_error_msg(e), "connection refused"));
    mt_error_free(&e);
    /* a present image needs no pull, whatever the registry */
    task_spec s2 = spec_for("manta-test-pull2", argv);
    s2.pull_timeout = 1;
    assert_int_equal(rt->ops->prepare(rt, &s2, &e), 0);
    /* a malformed reference is refused before anything reaches Docker */
    s2.image = "bad image?x";
    assert_int_equal(rt->ops->prepare(rt, &s2, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "not a valid image reference"));
    mt_error_free(&e);
}

/* ---- a fake Docker that answers a pull and then stalls (a slow registry) ---- */

typedef struct fake_docker {
    char path[100];
    int lfd;
    volatile bool stop;
    pthread_t thr;
    char auth[1024]; /* X-Registry-Auth of the pull */
    char pull_path[512];
} fake_docker;

static void fake_reply(int fd, const char *status, const char *body)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, strlen(body), body);
    if (write(fd, buf, (size_t)n) < 0)
        return;
}

static void *fake_main(void *arg)
{
    fake_docker *f = arg;
    while (!f->stop) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            continue;
        char req[8192];
        size_t n = 0;
        int64_t end = now_ms() + 5000;
        while (n < sizeof(req) - 1 && now_ms() < end) {
            struct pollfd q = {.fd = c, .events = POLLIN};
            if (poll(&q, 1, 100) <= 0)
                continue;
            ssize_t r = read(c, req + n, sizeof(req) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = '\0';
        char method[16] = "", path[512] = "";
        sscanf(req, "%15s %511s", method, path);
        if (strcmp(path, "/version") == 0) {
            fake_reply(c, "200 OK", "{\"Version\":\"fake\",\"ApiVersion\":\"1.41\"}");
        } else if (strcmp(path, "/info") == 0) {
            fake_reply(c, "200 OK", "{\"NCPU\":2}");
        } else if (strncmp(path, "/images/create", 14) == 0) {
            snprintf(f->pull_path, sizeof(f->pull_path), "%s", path);
            const char *a = strcasestr(req, "\r\nX-Registry-Auth: ");
            if (a)
                sscanf(a + 19, "%1023[^\r]", f->auth);
            const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
            const char *chunk = "{\"status\":\"Pulling fs layer\",\"id\":\"abc\"}\n";
            char cbuf[256];
            int cn = snprintf(cbuf, sizeof(cbuf), "%zx\r\n%s\r\n", strlen(chunk), chunk);
            if (write(c, head, strlen(head)) < 0 || write(c, cbuf, (size_t)cn) < 0) {
                close(c);
                continue;
            }
            /* stall until the client gives up (bounded) */
            int64_t stall_end = now_ms() + 30000;
            while (!f->stop && now_ms() < stall_end) {
                struct pollfd q = {.fd = c, .events = POLLIN};
                if (poll(&q, 1, 100) > 0) {
                    char junk[256];
                    if (read(c, junk, sizeof(junk)) <= 0)
                        break;
                }
            }
        } else if (strncmp(path, "/images/", 8) == 0) {
            fake_reply(c, "404 Not Found", "{\"message\":\"No such image\"}");
        } else {
            fake_reply(c, "404 Not Found", "{\"message\":\"page not found\"}");
        }
        close(c);
    }
    return NULL;
}

static void test_slow_pull_times_out(void **state)
{
    fake_docker f = {.lfd = -1};
    snprintf(f.path, sizeof(f.path), "%s/fake.sock", tmp);
    f.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.lfd, 8), 0);
    assert_int_equal(pthread_create(&f.thr, NULL, fake_main, &f), 0);

    node_config c;
    config_init_defaults(&c);
    free(c.containers.docker_socket);
    c.containers.docker_socket = xstrdup(f.path);
    c.containers.registry_username = xstrdup("robot");
    c.containers.registry_password = xstrdup("s3cret");
    mt_error *e = NULL;
    runtime *fr = runtime_docker_new(&c, &e);
    config_free(&c);
    if (!fr) {
        f.stop = true;
        pthread_join(f.thr, NULL);
        close(f.lfd);
        fail_msg("runtime_docker_new on the fake: %s", mt_error_msg(e));
    }
    const char *argv[] = {"true", NULL};
    task_spec s = spec_for("manta-test-slow", argv);
    s.image = "registry.example.com/team/model:v1";
    s.pull_timeout = 2;
    int64_t t0 = now_ms();
    int rc = fr->ops->prepare(fr, &s, &e);
    int64_t took = now_ms() - t0;
    fr->ops->free(fr);
    f.stop = true;
    pthread_join(f.thr, NULL);
    close(f.lfd);
    unlink(f.path);

    fprintf(stderr, "slow pull error after %lld ms: %s\n", (long long)took, mt_error_msg(e));
    assert_int_equal(rc, -1);
    assert_true(took >= 1800 && took < 5000);
    assert_non_null(strstr(mt_error_msg(e), "Docker cannot pull image "
                                            "registry.example.com/team/model:v1: the pull did not "
                                            "finish within 2 seconds"));
    assert_non_null(strstr(mt_error_msg(e), "Pulling fs layer"));
    mt_error_free(&e);
    assert_string_equal(f.pull_path,
                        "/images/create?fromImage=registry.example.com%2Fteam%2Fmodel&tag=v1");
    /* X-Registry-Auth: base64url of the credentials, for the image's registry */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    strbuf dec = STRBUF_INIT;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = f.auth; *p && *p != '='; p++) {
        const char *q = strchr(b64, *p);
        assert_non_null(q);
        acc = acc << 6 | (uint32_t)(q - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sb_putc(&dec, (char)((acc >> bits) & 0xff));
        }
    }
    json_t *j = json_loads(sb_str(&dec), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "username")), "robot");
    assert_string_equal(json_string_value(json_object_get(j, "password")), "s3cret");
    assert_string_equal(json_string_value(json_object_get(j, "serveraddress")),
                        "registry.example.com");
    json_decref(j);
    sb_free(&dec);
}

static void test_unreachable_socket(void **state)
{
    node_config c;
    config_init_defaults(&c);
    mt_error *e = NULL;

    /* nothing there */
    free(c.containers.docker_socket);
    c.containers.docker_socket = xasprintf("%s/nothing.sock", tmp);
    int64_t t0 = now_ms();
    assert_null(runtime_docker_new(&c, &e));
    assert_true(now_ms() - t0 < 10000);
    fprintf(stderr, "unreachable: %s\n", mt_error_msg(e));
    assert_true(starts_with(mt_error_msg(e), "Docker daemon not accessible"));
    assert_non_null(strstr(mt_error_msg(e), "No such file or directory"));
    mt_error_free(&e);

    /* a socket nobody accepts on */
    free(c.containers.docker_socket);
    c.containers.docker_socket = xasprintf("%s/dead.sock", tmp);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c.containers.docker_socket);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_null(runtime_docker_new(&c, &e));
    assert_true(starts_with(mt_error_msg(e), "Docker daemon not accessible"));
    assert_non_null(strstr(mt_error_msg(e), "Connection refused"));
    mt_error_free(&e);
    close(fd);

    /* DOCKER_HOST=unix://PATH is honoured over the default socket... */
    free(c.containers.docker_socket);
    c.containers.docker_socket = xstrdup("/nonexistent/docker.sock");
    cleanup_free char *dh = xasprintf("unix://%s", sock);
    setenv("DOCKER_HOST", dh, 1);
    runtime *r2 = runtime_docker_new(&c, &e);
    if (!r2)
        fail_msg("DOCKER_HOST not honoured: %s", mt_error_msg(e));
    cleanup_strv char **l = NULL;
    assert_int_equal(r2->ops->list(r2, NODE, &l, &e), 0);
    r2->ops->free(r2);
    /* ...but not over a socket the configuration file sets */
    int ki = config_key_index("containers.docker_socket");
    assert_true(ki >= 0);
    c.origin[ki] = CFG_FROM_FILE;
    assert_null(runtime_docker_new(&c, &e));
    assert_non_null(strstr(mt_error_msg(e), "/nonexistent/docker.sock"));
    mt_error_free(&e);
    c.origin[ki] = CFG_FROM_DEFAULT;
    /* DOCKER_HOST that is not a unix socket */
    setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
    assert_null(runtime_docker_new(&c, &e));
    assert_true(starts_with(mt_error_msg(e), "Docker daemon not accessible"));
    assert_non_null(strstr(mt_error_msg(e), "DOCKER_HOST=tcp://127.0.0.1:2375"));
    mt_error_free(&e);
    unsetenv("DOCKER_HOST");
    config_free(&c);
}

/* ---- several threads at once ---- */

typedef struct worker {
    int idx;
    char name[64];
    char err[512];
    char out[128];
    int exit_code;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char script[64];
    snprintf(script, sizeof(script), "echo hello-%d; exit %d", w->idx, w->idx);
    const char *argv[] = {"sh", "-c", script, NULL};
    task_spec s = spec_for(w->name, argv);
    mt_error *e = NULL;
    char *h = NULL;
    uint8_t *out = NULL;
    size_t n = 0;
    rt_status st = {0};
    if (rt->ops->prepare(rt, &s, &e) < 0 || rt->ops->create(rt, &s, &h, &e) < 0 ||
        rt->ops->start(rt, h, &e) < 0)
        goto done;
    int64_t end = now_ms() + 30000;
    while (now_ms() < end) {
        if (rt->ops->inspect(rt, h, &st, &e) < 0)
            goto done;
        if (st.state == RT_EXITED)
            break;
        sleep_ms(50);
    }
    w->exit_code = st.state == RT_EXITED ? st.exit_code : -1;
    if (rt->ops->logs(rt, h, 0, &out, &n, &e) < 0)
        goto done;
    snprintf(w->out, sizeof(w->out), "%s", (char *)out);
    rt->ops->remove(rt, h, &e);
done:
    if (e)
        snprintf(w->err, sizeof(w->err), "%s", mt_error_msg(e));
    mt_error_free(&e);
    free(out);
    free(h);
    return NULL;
}

static void test_concurrent_tasks(void **state)
{
    enum { N = 4 };
    worker w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].idx = i + 1;
        snprintf(w[i].name, sizeof(w[i].name), "manta-test-conc-%d", i + 1);
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        if (w[i].err[0])
            fail_msg("worker %d: %s", i + 1, w[i].err);
        char want[32];
        snprintf(want, sizeof(want), "hello-%d\n", i + 1);
        assert_string_equal(w[i].out, want);
        assert_int_equal(w[i].exit_code, i + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_mounts_and_confinement),
        cmocka_unit_test(test_exit_code_and_states),
        cmocka_unit_test(test_oom_killed),
        cmocka_unit_test(test_pids_limit),
        cmocka_unit_test(test_stop_with_grace),
        cmocka_unit_test(test_logs_limit_keeps_newest),
        cmocka_unit_test(test_list_and_remove),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_gpu_request_fails_clearly),
        cmocka_unit_test(test_missing_image_pull_fails),
        cmocka_unit_test(test_slow_pull_times_out),
        cmocka_unit_test(test_unreachable_socket),
        cmocka_unit_test(test_concurrent_tasks),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
