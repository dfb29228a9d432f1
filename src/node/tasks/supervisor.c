/* supervisor.c - the per-task supervisor process of the daemonless drivers; see runtime_sup.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "proc.h"
#include "sup_impl.h"

#define DRAIN_MS 2000 /* output still arriving after the task's main process ended */
#define PUMP_BUF (64 * 1024)

extern char **environ;

/* ---- small helpers (no allocation) --------------------------------------------------------- */

static void write_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

/* tmp + fsync + rename; no allocation (the supervisor uses it). */
static int write_atomic_noalloc(const char *path, const char *text)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    write_all(fd, text, strlen(text));
    fsync(fd);
    close(fd);
    return rename(tmp, path);
}

/* Copy s into out as the body of a JSON string. No allocation. */
static void json_escape_into(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* ---- the supervisor ------------------------------------------------------------------------ */

struct pump {
    int in, out;
    const char *log, *old;
    uint64_t limit, size;
    bool eof;
};

static void pump_rotate(struct pump *pm)
{
    rename(pm->log, pm->old);
    if (pm->out >= 0)
        close(pm->out);
    pm->out = open(pm->log, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    pm->size = 0;
}

static void pump_write(struct pump *pm, const char *buf, size_t n)
{
    while (n) {
        size_t chunk = n;
        if (pm->limit && pm->size + chunk > pm->limit)
            chunk = (size_t)(pm->limit - pm->size);
        if (chunk == 0) {
            pump_rotate(pm);
            continue;
        }
        if (pm->out >= 0)
            write_all(pm->out, buf, chunk);
        pm->size += chunk;
        buf += chunk;
        n -= chunk;
        if (pm->limit && pm->size >= pm->limit)
            pump_rotate(pm);
    }
}

static void pump_drain(struct pump *pm)
{
    char buf[PUMP_BUF];
    for (int i = 0; i < 64 && !pm->eof; i++) {
        ssize_t n = read(pm->in, buf, sizeof(buf));
        if (n > 0) {
            pump_write(pm, buf, (size_t)n);
        } else if (n == 0) {
            pm->eof = true;
        } else if (errno != EINTR) {
            break;
        }
    }
}

static void pump_note(struct pump *pm, const char *msg)
{
    char line[1200];
    snprintf(line, sizeof(line), "manta-node: %s\n", msg);
    pump_write(pm, line, strlen(line));
}

/* Wait up to timeout_ms (-1 = forever) for something to read or a child to change, then pump
 * what there is. */
static void sup_poll(struct pump *pm, int sfd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = pm->in, .events = POLLIN}};
    poll(p, pm->eof ? 1 : 2, timeout_ms);
    if (p[0].revents & POLLIN) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            ;
    }
    pump_drain(pm);
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Run argv (absolute path) with stdout/stderr on `outfd` (or /dev/null when < 0), pumping the
 * task's output meanwhile; returns its wait status or -1. */
static int sup_run_pumped(char *const *argv, int outfd, struct pump *pm, int sfd)
{
    static char *const min_env[] = {SUP_DEFAULT_PATH, NULL};
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = outfd >= 0 ? outfd : open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        reset_signals();
        execve(argv[0], argv, min_env);
        _exit(127);
    }
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        sup_poll(pm, sfd, 200);
    }
}

static bool read_oom(const char *path)
{
    if (!path)
        return false;
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "oom_kill ", 9) == 0)
            return strtoull(p + 9, NULL, 10) > 0;
    }
    return false;
}

static void sup_write_exit(const struct plan *pl, int exit_code, int sig, bool oom, int64_t started,
                           const char *error)
{
    char esc[1100] = "", text[1400];
    if (error)
        json_escape_into(esc, sizeof(esc), error);
    snprintf(text, sizeof(text),
             "{\"exit_code\": %d, \"signal\": %d, \"oom_killed\": %s, \"started_at_ms\": %lld, "
             "\"finished_at_ms\": %lld%s%s%s}\n",
             exit_code, sig, oom ? "true" : "false", (long long)started, (long long)clock_wall_ms(),
             error ? ", \"error\": \"" : "", esc, error ? "\"" : "");
    write_atomic_noalloc(pl->exitf, text);
}

static void notify(int nfd, const char *msg)
{
    if (nfd < 0)
        return;
    write_all(nfd, msg, strlen(msg));
    close(nfd);
}

/* Reap every child that has exited; stop after `ms` or when there are none. */
static void reap_all(int ms)
{
    int64_t end = clock_mono_ms() + ms;
    for (;;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);
        if (r < 0 && errno == ECHILD)
            return;
        if (r <= 0) {
            if (clock_mono_ms() >= end)
                return;
            sup_sleep_ms(20);
        }
    }
}

static void sup_cleanup(const struct plan *pl, struct pump *pm, int sfd)
{
    if (pl->is_runc) {
        sup_run_pumped(pl->runc_delete, -1, pm, sfd);
    } else {
        for (size_t i = 0; i < pl->ncgdirs; i++)
            sup_cgroup_destroy(pl->cgdirs[i]);
    }
    reap_all(1000);
}

__attribute__((noreturn)) void sup_supervise(const struct plan *pl, int nfd)
{
    /* A clean process: default signals, nothing blocked but SIGCHLD (read through a signalfd);
     * the signals a session or a shutdown sends are the task's business, not ours. */
    reset_signals();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    if (nfd != 3) {
        dup2(nfd, 3);
        nfd = 3;
    }
    fcntl(nfd, F_SETFD, FD_CLOEXEC);
    close_range(4, ~0U, 0);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (devnull > 3)
            close(devnull);
    }
    if (chdir("/") < 0) { /* never pin a mount */
    }
    umask(022);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_NAME, "manta-sup", 0, 0, 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);

    char text[512];
    unsigned long long self_start = proc_start_time(getpid());
    snprintf(text, sizeof(text), "{\"pid\": %d, \"start\": %llu}\n", (int)getpid(), self_start);
    write_atomic_noalloc(pl->sup, text);

    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) {
        sup_write_exit(pl, 127, 0, false, 0, "cannot create a pipe for the task's output");
        notify(nfd, "ERcannot create a pipe for the task's output\n");
        _exit(1);
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    struct pump pm = {.in = out[0], .log = pl->log, .old = pl->log_old, .limit = pl->log_limit};
    pm.out = open(pl->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    struct stat lst;
    if (pm.out >= 0 && fstat(pm.out, &lst) == 0)
        pm.size = (uint64_t)lst.st_size;
    if (pl->warning)
        pump_note(&pm, pl->warning);

    int64_t started = clock_wall_ms();
    pid_t main_pid = -1;
    bool group = false;
    char error[1024] = "";
    int fail_code = 127;

    if (pl->is_runc) {
        int st = sup_run_pumped(pl->runc_create, out[1], &pm, sfd);
        if (st != 0) {
            snprintf(error, sizeof(error), "runc create failed (%s %d); see the task's log",
                     st >= 0 && WIFEXITED(st) ? "exit status" : "wait status",
                     st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : st);
            goto failed;
        }
        char pidbuf[32] = "";
        int fd = open(pl->pidfile, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, pidbuf, sizeof(pidbuf) - 1);
            pidbuf[n > 0 ? n : 0] = '\0';
            close(fd);
        }
        main_pid = (pid_t)atoi(pidbuf);
        if (main_pid <= 0) {
            snprintf(error, sizeof(error), "runc create did not write the container's pid");
            goto failed;
        }
        st = sup_run_pumped(pl->runc_start, out[1], &pm, sfd);
        if (st != 0) {
            kill(main_pid, SIGKILL);
            snprintf(error, sizeof(error), "runc start failed; see the task's log");
            goto failed;
        }
    } else {
        int ep[2];
        if (pipe2(ep, O_CLOEXEC) < 0) {
            snprintf(error, sizeof(error), "cannot create a pipe: %s", strerror(errno));
            goto failed;
        }
        pid_t c = fork();
        if (c < 0) {
            snprintf(error, sizeof(error), "cannot fork: %s", strerror(errno));
            goto failed;
        }
        if (c == 0) {
            setpgid(0, 0);
            for (size_t i = 0; i < pl->nprocs; i++)
                sup_write_text(pl->procs[i], "0");
            dup2(out[1], 1);
            dup2(out[1], 2);
            int e = 0;
            if (chdir(pl->workdir) < 0)
                e = errno;
            reset_signals();
            if (!e) {
                environ = pl->envp;
                execvp(pl->argv[0], pl->argv);
                e = errno;
                if (e == ENOENT && strcmp(pl->argv[0], "python") == 0) {
                    /* the contract says `python`; Debian ships `python3` (python-is-python3
                     * is optional) */
                    pl->argv[0] = "python3";
                    execvp(pl->argv[0], pl->argv);
                    e = errno;
                }
            }
            if (write(ep[1], &e, sizeof(e)) < 0) {
            }
            _exit(127);
        }
        setpgid(c, c);
        close(ep[1]);
        int e = 0;
        ssize_t n;
        while ((n = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
            ;
        close(ep[0]);
        if (n == (ssize_t)sizeof(e)) {
            while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
                ;
            snprintf(error, sizeof(error), "cannot run '%s': %s", pl->argv[0], strerror(e));
            fail_code = e == ENOENT ? 127 : 126;
            pump_note(&pm, error);
            goto failed;
        }
        main_pid = c;
        group = true;
    }
    close(out[1]);
    out[1] = -1;

    unsigned long long mstart = proc_start_time(main_pid);
    snprintf(text, sizeof(text),
             "{\"pid\": %d, \"start\": %llu, \"group\": %s, \"started_at_ms\": %lld}\n",
             (int)main_pid, mstart, group ? "true" : "false", (long long)started);
    write_atomic_noalloc(pl->started, text);
    notify(nfd, "OK\n");
    nfd = -1;

    /* Wait for the main process; reap whatever else gets reparented to us meanwhile. */
    int status = -1;
    for (bool done = false; !done;) {
        for (;;) {
            int st;
            pid_t r = waitpid(-1, &st, WNOHANG);
            if (r == main_pid) {
                status = st;
                done = true;
                break;
            }
            if (r <= 0) {
                if (r < 0 && errno == ECHILD && !sup_proc_alive(main_pid, mstart))
                    done = true; /* not our child (cannot happen with the subreaper) */
                break;
            }
        }
        if (!done)
            sup_poll(&pm, sfd, 500);
    }
    if (group) { /* like a container: the task's other processes end with it */
        kill(-main_pid, SIGKILL);
        for (size_t i = 0; i < pl->ncgdirs; i++)
            sup_cgroup_kill(pl->cgdirs[i]);
    }
    int64_t drain_end = clock_mono_ms() + DRAIN_MS;
    while (!pm.eof && clock_mono_ms() < drain_end) {
        reap_all(0);
        sup_poll(&pm, sfd, 100);
    }
    int code = 255, sig = 0;
    if (status != -1 && WIFEXITED(status)) {
        code = WEXITSTATUS(status);
    } else if (status != -1 && WIFSIGNALED(status)) {
        sig = WTERMSIG(status);
        code = 128 + sig;
    }
    bool oom = read_oom(pl->oom);
    sup_write_exit(pl, code, sig, oom, started, status == -1 ? "exit status unknown" : NULL);
    if (pm.out >= 0)
        fsync(pm.out);
    sup_cleanup(pl, &pm, sfd);
    _exit(0);

failed:
    if (out[1] >= 0)
        close(out[1]);
    {
        int64_t end = clock_mono_ms() + 500;
        while (!pm.eof && clock_mono_ms() < end)
            sup_poll(&pm, sfd, 50);
    }
    sup_write_exit(pl, fail_code, 0, false, started, error);
    char msg[1100];
    snprintf(msg, sizeof(msg), "ER%s\n", error);
    notify(nfd, msg);
    sup_cleanup(pl, &pm, sfd);
    _exit(0);
}
