/* manta_init.c - `manta-init`: the init (PID 1) of a task's container in the runc runtime.
 *
 *   manta-init COMMAND [ARG...]
 *
 * A program that is PID 1 of a PID namespace gets no default signal actions: a task's Python
 * that installs no SIGTERM handler ignores the SIGTERM of a stop and waits out the kill timeout.
 * manta-init runs COMMAND as its child (PID 2, where default actions apply), forwards SIGTERM,
 * SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, reaps every process that ends up as its
 * child (orphans of the task: no zombies pile up), and exits as soon as COMMAND ends, with its
 * exit status, or 128 + the signal that killed it (as a shell and tini report it). When it is
 * PID 1 the kernel then kills whatever else still runs in the container.
 *
 * Docker does the same with its own init (HostConfig.Init, docker-init = tini). Built static
 * (no libraries in the task's image are needed), bound read-only into the container at
 * /.manta/init by runtime_runc.c. No allocation; signals are taken synchronously with
 * sigwaitinfo, so there are no handlers at all.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED      ((int)(sizeof(forwarded) / sizeof(forwarded[0])))
#define INIT_READY_NAME "manta-init" /* also in src/node/tasks/sup_stop.c */

static void say(const char *a, const char *b, const char *c)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "manta-init: %s%s%s\n", a, b ? b : "", c ? c : "");
    if (n > 0 &&
        write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line)) < 0) {
        /* nowhere else to say it */
    }
}

/* Exit status of a child as a shell reports it. */
static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        say("usage: manta-init COMMAND [ARG...]", NULL, NULL);
        return argc < 2 ? 2 : 0;
    }
    /* Block what we forward and SIGCHLD before the child exists: nothing is lost meanwhile. */
    sigset_t wait_set;
    sigemptyset(&wait_set);
    for (int i = 0; i < NFORWARDED; i++)
        sigaddset(&wait_set, forwarded[i]);
    sigaddset(&wait_set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &wait_set, NULL);
    /* Announce that a SIGTERM sent now is kept: the node's supervisor waits for this name in
     * /proc/PID/status before it sends a stop's SIGTERM (until now, as PID 1 without a handler,
     * we would have lost it; /proc cannot show a mask sigwaitinfo holds). Exec named us after
     * the file (`init`), so the name changes only here. */
    prctl(PR_SET_NAME, INIT_READY_NAME, 0, 0, 0);
    if (getpid() != 1) /* not PID 1 (a test, another runtime): orphans still come to us */
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    pid_t child = fork();
    if (child < 0) {
        say("cannot fork: ", strerror(errno), NULL);
        return 126;
    }
    if (child == 0) {
        /* the task: default actions (inherited ignores of SIGPIPE etc. are not ours to keep) */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[1], argv + 1);
        int e = errno;
        if (e == ENOENT && strcmp(argv[1], "python") == 0) {
            /* the contract says `python`; Debian ships `python3` (python-is-python3 is
             * optional) */
            argv[1] = "python3";
            execvp(argv[1], argv + 1);
            argv[1] = "python";
        }
        say("cannot run '", argv[1], "'");
        say(strerror(e), NULL, NULL);
        _exit(e == ENOENT ? 127 : 126);
    }

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&wait_set, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        /* reap everything that has ended; the task's end is ours */
        for (;;) {
            int st;
            pid_t r = waitpid(-1, &st, WNOHANG);
            if (r <= 0)
                break;
            if (r == child)
                return status_code(st);
        }
    }
}
