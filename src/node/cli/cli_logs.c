/* cli_logs.c - `manta_node logs [instance] [--follow|-f] [--lines|-n N] [--list]`.
 *
 * Log files are the `*.log` files of the node logs folder (paths_node_logs_dir()), keyed by
 * their stem; rotated backups (`x.log.1`, `x.log.2.gz`, ...) belong to instance `x`. The last
 * lines are found by reading backwards from the end in blocks, so a large file is never read
 * whole. --follow polls the file every FOLLOW_INTERVAL_MS (fstat for truncation, stat of the
 * path for rotation) and waits on a signalfd for SIGINT/SIGTERM, so no global state is needed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "mem.h"
#include "paths.h"
#include "strbuf.h"

#define DEFAULT_LINES      50ULL
#define BLOCK_SIZE         (64 * 1024)
#define FOLLOW_INTERVAL_MS 100
#define DRAIN_BLOCKS       256 /* 16 MiB between two looks at the signals */
/* A partial line longer than this is printed as it comes instead of being held. */
#define PARTIAL_MAX (64 * 1024)

static const char logs_help[] =
    "Usage: manta_node logs [INSTANCE] [options]\n"
    "\n"
    "Show the log of a node instance: the file <INSTANCE>.log in ~/.manta/logs/nodes\n"
    "($MANTA_HOME/logs/nodes when MANTA_HOME is set). INSTANCE is the file's name without\n"
    "'.log' (the node's alias) or a unique prefix of it; it may be left out when there is\n"
    "only one log file.\n"
    "\n"
    "Options:\n"
    "  -n, --lines N   Show the last N lines (default: 50)\n"
    "  -f, --follow    Then print lines as they are appended, across rotation and\n"
    "                  truncation of the file, until Ctrl+C\n"
    "      --list      List the log files (with their size and rotated backups)\n"
    "  -h, --help      Show this help\n";

/* ---- the log files -------------------------------------------------------------------------- */

struct logfile {
    char *stem;       /* owned */
    char *path;       /* owned, absolute */
    off_t size;       /* of the current file */
    unsigned rotated; /* number of rotated backups */
};

struct loglist {
    struct logfile *v; /* owned */
    size_t n;
};

static void loglist_free(struct loglist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].stem);
        free(l->v[i].path);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

#define cleanup_loglist __attribute__((cleanup(loglist_free)))

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len >= sl && memcmp(s + len - sl, suffix, sl) == 0;
}

/* For a rotated backup `<stem>.log.<digits>[.<anything>]` (not itself a .log), the length
 * of <stem>; else 0. */
static size_t rotated_stem_len(const char *name)
{
    size_t len = strlen(name);
    if (ends_with(name, len, ".log"))
        return 0;
    size_t found = 0;
    for (const char *p = strstr(name, ".log."); p; p = strstr(p + 1, ".log.")) {
        const char *d = p + 5;
        if (*d < '0' || *d > '9')
            continue;
        while (*d >= '0' && *d <= '9')
            d++;
        if (*d == '\0' || *d == '.')
            found = (size_t)(p - name);
    }
    return found;
}

static int cmp_logfile(const void *a, const void *b)
{
    return strcmp(((const struct logfile *)a)->stem, ((const struct logfile *)b)->stem);
}

/* The log files of `dir`, sorted by stem. A missing folder means no log files. */
static int scan_logs(const char *dir, struct loglist *out, mt_error **err)
{
    out->v = NULL;
    out->n = 0;
    cleanup_dir DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return mt_error_sys(err, errno, "cannot read %s", dir);
    }
    cleanup_strv char **names = xcalloc(1, sizeof(char *));
    size_t nnames = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        names = xrealloc(names, (nnames + 2) * sizeof(char *));
        names[nnames++] = xstrdup(de->d_name);
        names[nnames] = NULL;
    }

    for (size_t i = 0; i < nnames; i++) {
        size_t len = strlen(names[i]);
        if (len <= 4 || !ends_with(names[i], len, ".log"))
            continue;
        cleanup_free char *path = fs_join(dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
        out->v[out->n++] = (struct logfile){
            .stem = xstrndup(names[i], len - 4),
            .path = steal_ptr(path),
            .size = st.st_size,
            .rotated = 0,
        };
    }
    for (size_t i = 0; i < nnames; i++) {
        size_t sl = rotated_stem_len(names[i]);
        if (!sl)
            continue;
        for (size_t j = 0; j < out->n; j++)
            if (strlen(out->v[j].stem) == sl && memcmp(out->v[j].stem, names[i], sl) == 0)
                out->v[j].rotated++;
    }
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_logfile);
    return 0;
}

static void print_list(FILE *f, const struct loglist *l, bool details)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct logfile *lf = &l->v[i];
        if (!details) {
            fprintf(f, "  - %s\n", lf->stem);
            continue;
        }
        cleanup_free char *shown = fs_display_path(lf->path);
        double mb = (double)lf->size / (1024.0 * 1024.0);
        if (lf->rotated)
            fprintf(f, "  - %s (%.1f MB, %u rotated) - %s\n", lf->stem, mb, lf->rotated, shown);
        else
            fprintf(f, "  - %s (%.1f MB) - %s\n", lf->stem, mb, shown);
    }
}

static void print_none_hint(FILE *f, const char *dir)
{
    cleanup_free char *shown = fs_display_path(dir);
    fprintf(f, "Node log files are written to %s/ while a node runs.\n", shown);
    fprintf(f, "Start a node with: manta_node start [config]\n");
}

static int list_logs(const char *dir, const struct loglist *l)
{
    if (!l->n) {
        printf("No log files found.\n");
        print_none_hint(stdout, dir);
        return 0;
    }
    printf("Available log files:\n");
    print_list(stdout, l, true);
    return 0;
}

/* The log file for `instance`: exact stem, else the one stem starting with it. Prints the
 * error and returns NULL when there is none or several. */
static const struct logfile *find_instance(const struct loglist *l, const char *instance)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].stem, instance) == 0)
            return &l->v[i];
    size_t il = strlen(instance), matches = 0;
    const struct logfile *match = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (strncmp(l->v[i].stem, instance, il) == 0) {
            matches++;
            match = &l->v[i];
        }
    }
    if (matches == 1 && il > 0) {
        printf("Using log file for instance: %s\n", match->stem);
        return match;
    }
    if (matches > 1 && il > 0) {
        cli_error("Instance '%s' is ambiguous; it matches several log files:", instance);
        for (size_t i = 0; i < l->n; i++)
            if (strncmp(l->v[i].stem, instance, il) == 0)
                fprintf(stderr, "  - %s\n", l->v[i].stem);
        fprintf(stderr, "Give more of the name.\n");
        return NULL;
    }
    cli_error("No log file found for instance '%s'", instance);
    if (l->n) {
        fprintf(stderr, "Available log files:\n");
        print_list(stderr, l, false);
    } else {
        fprintf(stderr, "No log files found.\n");
    }
    return NULL;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* pread until `len` bytes or end of file. Returns the count, or -1 with errno. */
static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Where the last `n` lines of the first `size` bytes of fd start (*start), and where the
 * bytes after the last newline start (*split; == size when the data ends with a newline).
 * Reads backwards in blocks; memory does not depend on the file's size. */
static int find_tail(int fd, off_t size, unsigned long long n, off_t *start, off_t *split,
                     mt_error **err)
{
    *start = 0;
    *split = -1;
    if (n == 0) {
        *start = *split = size;
        return 0;
    }
    cleanup_free char *buf = xmalloc(BLOCK_SIZE);
    unsigned long long count = 0;
    off_t end = size;
    while (end > 0) {
        off_t off = end > BLOCK_SIZE ? end - BLOCK_SIZE : 0;
        size_t len = (size_t)(end - off);
        ssize_t r = pread_full(fd, buf, len, off);
        if (r < 0)
            return mt_error_sys(err, errno, "cannot read the log file");
        if ((size_t)r < len)
            return mt_error_set(err, MT_ERR_IO, "the log file shrank while being read");
        for (size_t i = len; i-- > 0;) {
            if (buf[i] != '\n')
                continue;
            off_t p = off + (off_t)i;
            if (*split < 0)
                *split = p + 1;
            if (p == size - 1)
                continue; /* the newline ending the last line */
            if (++count == n) {
                *start = p + 1;
                return 0;
            }
        }
        end = off;
    }
    if (*split < 0)
        *split = *start;
    return 0;
}

/* ---- following ---------------------------------------------------------------------------- */

struct follower {
    const char *path; /* borrowed */
    int fd;
    dev_t dev;
    ino_t ino;
    off_t pos;      /* bytes of fd consumed */
    strbuf partial; /* the last line, until its newline arrives */
    bool midline;   /* part of the current line was already printed (a very long line) */
    char *buf;      /* owned, BLOCK_SIZE */
};

static void out_write(const char *data, size_t n)
{
    if (n)
        fwrite(data, 1, n, stdout);
}

/* Print the complete lines of data; keep the rest as the partial line. */
static void emit(struct follower *f, const char *data, size_t n)
{
    const char *nl = memrchr(data, '\n', n);
    if (nl) {
        out_write(f->partial.buf, f->partial.len);
        sb_reset(&f->partial);
        size_t upto = (size_t)(nl - data) + 1;
        out_write(data, upto);
        f->midline = false;
        data += upto;
        n -= upto;
    }
    sb_append(&f->partial, data, n);
    if (f->partial.len > PARTIAL_MAX) {
        out_write(f->partial.buf, f->partial.len);
        sb_reset(&f->partial);
        f->midline = true;
    }
}

/* End the current line: used when its newline will never come (rotation, truncation, stop). */
static void flush_partial(struct follower *f)
{
    if (f->partial.len || f->midline) {
        out_write(f->partial.buf, f->partial.len);
        fputc('\n', stdout);
    }
    sb_reset(&f->partial);
    f->midline = false;
}

/* Copy bytes [from, to) of fd to stdout, or through emit() when f is not NULL. */
static int copy_range(int fd, off_t from, off_t to, struct follower *f, mt_error **err)
{
    cleanup_free char *buf = xmalloc(BLOCK_SIZE);
    while (from < to) {
        size_t len = (size_t)(to - from) < BLOCK_SIZE ? (size_t)(to - from) : BLOCK_SIZE;
        ssize_t r = pread_full(fd, buf, len, from);
        if (r < 0)
            return mt_error_sys(err, errno, "cannot read the log file");
        if (r == 0)
            break; /* truncated meanwhile; following notices it */
        if (f)
            emit(f, buf, (size_t)r);
        else
            out_write(buf, (size_t)r);
        from += r;
    }
    return 0;
}

/* Read and print what was appended since f->pos: at most DRAIN_BLOCKS blocks, so that a
 * fast writer cannot keep us from noticing a signal. Returns 1 if there may be more, 0 at the
 * end of the file, -1 on error. */
static int drain(struct follower *f, mt_error **err)
{
    for (int blocks = 0;; blocks++) {
        if (blocks == DRAIN_BLOCKS) {
            fflush(stdout);
            return 1;
        }
        ssize_t r = pread(f->fd, f->buf, BLOCK_SIZE, f->pos);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mt_error_sys(err, errno, "cannot read %s", f->path);
        }
        if (r == 0)
            break;
        emit(f, f->buf, (size_t)r);
        f->pos += r;
    }
    fflush(stdout);
    return 0;
}

/* Switch to the file now at f->path if it is not the one we read. Returns 1 if switched,
 * 0 if not (same file, none yet, or it vanished again), -1 on error. */
static int maybe_reopen(struct follower *f, mt_error **err)
{
    struct stat st;
    if (stat(f->path, &st) != 0 || (st.st_dev == f->dev && st.st_ino == f->ino) ||
        !S_ISREG(st.st_mode))
        return 0;
    int nfd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (nfd < 0)
        return 0; /* renamed away again before we could open it; next round */
    if (fstat(nfd, &st) != 0) {
        int e = errno;
        close(nfd);
        return mt_error_sys(err, e, "cannot stat %s", f->path);
    }
    /* Finish the old file first: what was written to it before the switch. */
    int r;
    while ((r = drain(f, err)) > 0)
        ;
    if (r < 0) {
        close(nfd);
        return -1;
    }
    flush_partial(f);
    close(f->fd);
    f->fd = nfd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->pos = 0;
    return 1;
}

static void follower_release(struct follower *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    sb_free(&f->partial);
    free(f->buf);
    f->buf = NULL;
}

#define cleanup_follower __attribute__((cleanup(follower_release)))

/* Print the header and last n lines of path, then follow it until a signal arrives on sfd. */
static int follow_file(const char *path, unsigned long long n, int sfd)
{
    mt_error *e = NULL;
    cleanup_free char *shown = fs_display_path(path);
    cleanup_follower struct follower f = {
        .path = path, .fd = -1, .partial = STRBUF_INIT, .buf = xmalloc(BLOCK_SIZE)};
    struct stat st;
    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0 || fstat(f.fd, &st) != 0) {
        cli_error("Cannot open %s: %s", shown, strerror(errno));
        return 1;
    }
    f.dev = st.st_dev;
    f.ino = st.st_ino;

    printf("Following log file: %s\nPress Ctrl+C to stop\n", shown);
    printf("------------------------------------------------------------\n");
    off_t start, split;
    if (find_tail(f.fd, st.st_size, n, &start, &split, &e) < 0 ||
        copy_range(f.fd, start, split, NULL, &e) < 0 ||
        copy_range(f.fd, split, st.st_size, &f, &e) < 0) {
        fflush(stdout);
        cli_error_e(e, "Cannot read %s", shown);
        mt_error_free(&e);
        return 1;
    }
    f.pos = st.st_size;

    for (;;) {
        int more = drain(&f, &e);
        if (more < 0)
            break;
        if (ferror(stdout)) {
            cli_error("Cannot write the log lines");
            return 1;
        }
        if (fstat(f.fd, &st) != 0) {
            mt_error_sys(&e, errno, "cannot stat %s", shown);
            break;
        }
        if (st.st_size < f.pos) {
            /* Truncated in place: start again from its beginning. */
            flush_partial(&f);
            f.pos = 0;
            fprintf(stderr, "Log file truncated; following it from its start\n");
            continue;
        }
        int sw = maybe_reopen(&f, &e);
        if (sw < 0)
            break;
        if (sw > 0) {
            fprintf(stderr, "Log file rotated; following the new %s\n", shown);
            continue;
        }
        struct pollfd pfd = {.fd = sfd, .events = POLLIN};
        int pr = poll(&pfd, 1, more ? 0 : FOLLOW_INTERVAL_MS);
        if (pr < 0 && errno != EINTR) {
            mt_error_sys(&e, errno, "cannot wait");
            break;
        }
        struct signalfd_siginfo si;
        if (pr > 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            /* Print what arrived before the stop, then end the last line. */
            int rc = drain(&f, &e) < 0 ? 1 : 0;
            flush_partial(&f);
            printf("%sStopped following log file\n", isatty(STDOUT_FILENO) ? "\n" : "");
            fflush(stdout);
            if (rc) {
                cli_error_e(e, "Cannot read %s", shown);
                mt_error_free(&e);
            }
            return rc;
        }
    }
    flush_partial(&f);
    fflush(stdout);
    cli_error_e(e, "Stopped following %s", shown);
    mt_error_free(&e);
    return 1;
}

/* --follow: SIGINT and SIGTERM are blocked and read from a signalfd while following. */
static int follow(const char *path, unsigned long long n)
{
    sigset_t mask, oldmask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, &oldmask) != 0) {
        cli_error("Cannot block signals: %s", strerror(errno));
        return 1;
    }
    int rc = 1;
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        cli_error("Cannot watch for Ctrl+C: %s", strerror(errno));
    } else {
        rc = follow_file(path, n, sfd);
        close(sfd);
    }
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return rc;
}

/* Print the last n lines of path. */
static int show_tail(const char *path, unsigned long long n)
{
    mt_error *e = NULL;
    cleanup_free char *shown = fs_display_path(path);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        cli_error("Cannot open %s: %s", shown, strerror(errno));
        return 1;
    }
    off_t start, split;
    if (find_tail(fd, st.st_size, n, &start, &split, &e) < 0 ||
        copy_range(fd, start, st.st_size, NULL, &e) < 0) {
        fflush(stdout);
        cli_error_e(e, "Cannot read %s", shown);
        mt_error_free(&e);
        return 1;
    }
    if (split < st.st_size)
        fputc('\n', stdout); /* the last line has no newline yet */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("Cannot write the log lines: %s", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- the command -------------------------------------------------------------------------- */

/* A non-negative decimal integer; larger than the type can hold means "all". */
static bool parse_lines(const char *s, unsigned long long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return false;
    *out = errno == ERANGE ? ULLONG_MAX : v;
    return true;
}

int cli_logs(int argc, char **argv)
{
    enum { O_LIST = 256 };
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"lines", required_argument, NULL, 'n'},
        {"list", no_argument, NULL, O_LIST},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool follow_mode = false, list = false;
    unsigned long long lines = DEFAULT_LINES;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":fn:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow_mode = true;
            break;
        case 'n':
            if (!parse_lines(optarg, &lines))
                return cli_usage("logs", "--lines takes a non-negative integer, not '%s'", optarg);
            break;
        case O_LIST:
            list = true;
            break;
        case 'h':
            fputs(logs_help, stdout);
            return 0;
        case ':':
            return cli_usage("logs", "Option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return cli_usage("logs", "Option '-%c' is unknown", optopt);
            return cli_usage("logs", "Option '%s' is unknown", argv[optind - 1]);
        }
    }
    if (optind < argc - 1)
        return cli_usage("logs", "Too many arguments ('%s')", argv[optind + 1]);
    const char *instance = optind < argc ? argv[optind] : NULL;

    cleanup_free char *dir = paths_node_logs_dir();
    cleanup_loglist struct loglist logs = {0};
    mt_error *e = NULL;
    if (scan_logs(dir, &logs, &e) < 0) {
        cli_error_e(e, "Cannot list the log files");
        mt_error_free(&e);
        return 1;
    }
    if (list)
        return list_logs(dir, &logs);

    const struct logfile *lf;
    if (instance) {
        lf = find_instance(&logs, instance);
        if (!lf)
            return 1;
    } else if (logs.n == 0) {
        cli_error("No log files found and no instance specified");
        print_none_hint(stderr, dir);
        return 1;
    } else if (logs.n > 1) {
        cli_error("Multiple log files found. Please specify an instance:");
        print_list(stderr, &logs, false);
        return 1;
    } else {
        lf = &logs.v[0];
        printf("Using log file for instance: %s\n", lf->stem);
    }
    fflush(stdout);
    return follow_mode ? follow(lf->path, lines) : show_tail(lf->path, lines);
}
