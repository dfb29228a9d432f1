/* log.c - the node's log; see log.h.
 *
 * All state lives in `struct logger`; a pthread mutex serialises formatting of the final line,
 * redaction, rotation and the writes to both sinks, so lines never interleave within a process.
 * Each record goes to the file with one write(2) on an O_APPEND descriptor, so records from
 * other processes appending to the same file do not interleave with ours either.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "mem.h"
#include "strbuf.h"

#define LOG_FILE_MODE     0640
#define LOG_DIR_MODE      0755
#define LOG_MIN_SECRET    4
#define LOG_REDACTED      "***"
#define LOG_DEFAULT_PROGR "manta"

struct logger {
    int level; /* log_level; read with __atomic builtins so log_enabled needs no lock */
    pthread_mutex_t lock;

    /* File sink (path == NULL: disabled). fd < 0: currently not open (retried on write). */
    char *path;
    int fd;
    uint64_t size; /* bytes in the file: fstat at open, then counted */
    uint64_t max_bytes;
    int backup_count;
    uint64_t dropped; /* records that could not be written to the file */

    /* Console sink (NULL: disabled). Borrowed. */
    FILE *console;

    char *program;

    /* Secrets to redact, longest first (so a secret containing another is removed whole). */
    char **secrets;
    size_t nsecrets;
};

static const struct {
    log_level level;
    const char *name;
} level_names[] = {
    {LOG_DEBUG, "DEBUG"}, {LOG_INFO, "INFO"},         {LOG_WARNING, "WARNING"},
    {LOG_ERROR, "ERROR"}, {LOG_CRITICAL, "CRITICAL"},
};

const char *log_level_name(log_level level)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (level_names[i].level == level)
            return level_names[i].name;
    return "UNKNOWN";
}

bool log_level_parse(const char *name, log_level *out)
{
    if (!name)
        return false;
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
        if (strcasecmp(name, level_names[i].name) == 0) {
            *out = level_names[i].level;
            return true;
        }
    }
    if (strcasecmp(name, "WARN") == 0) {
        *out = LOG_WARNING;
        return true;
    }
    return false;
}

/* Open the log file for appending and record its size. Returns the fd or -1 with errno set. */
static int open_log_file(const char *path, uint64_t *size_out)
{
    int fd;
    do
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LOG_FILE_MODE);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *size_out = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    return fd;
}

logger *log_open(const log_options *opt, mt_error **err)
{
    if (!opt)
        return mt_error_set(err, MT_ERR_GENERIC, "no log options given"), NULL;
    if (opt->backup_count < 0)
        return mt_error_set(err, MT_ERR_CONFIG, "log backup count must not be negative (%d)",
                            opt->backup_count),
               NULL;

    logger *lg = xcalloc(1, sizeof(*lg));
    lg->level = opt->level;
    lg->fd = -1;
    lg->max_bytes = opt->max_bytes;
    lg->backup_count = opt->backup_count;
    lg->program = xstrdup(opt->program ? opt->program : LOG_DEFAULT_PROGR);
    if (opt->to_console)
        lg->console = opt->console ? opt->console : stderr;
    pthread_mutex_init(&lg->lock, NULL);
    tzset();

    if (opt->to_file && opt->file && *opt->file) {
        lg->path = xstrdup(opt->file);
        if (fs_mkdir_parent(lg->path, LOG_DIR_MODE, err) < 0) {
            mt_error_wrap(err, "cannot open log file %s", lg->path);
            log_close(lg);
            return NULL;
        }
        lg->fd = open_log_file(lg->path, &lg->size);
        if (lg->fd < 0) {
            mt_error_sys(err, errno, "cannot open log file %s", lg->path);
            log_close(lg);
            return NULL;
        }
    }
    return lg;
}

void log_close(logger *lg)
{
    if (!lg)
        return;
    if (lg->fd >= 0)
        close(lg->fd);
    pthread_mutex_destroy(&lg->lock);
    for (size_t i = 0; i < lg->nsecrets; i++)
        free(lg->secrets[i]);
    free(lg->secrets);
    free(lg->path);
    free(lg->program);
    free(lg);
}

void log_add_secret(logger *lg, const char *secret)
{
    if (!lg || !secret)
        return;
    size_t len = strlen(secret);
    if (len < LOG_MIN_SECRET)
        return;
    pthread_mutex_lock(&lg->lock);
    size_t pos = lg->nsecrets;
    for (size_t i = 0; i < lg->nsecrets; i++) {
        if (strcmp(lg->secrets[i], secret) == 0) {
            pthread_mutex_unlock(&lg->lock);
            return;
        }
        if (pos == lg->nsecrets && strlen(lg->secrets[i]) < len)
            pos = i;
    }
    lg->secrets = xrealloc(lg->secrets, (lg->nsecrets + 1) * sizeof(*lg->secrets));
    memmove(lg->secrets + pos + 1, lg->secrets + pos, (lg->nsecrets - pos) * sizeof(*lg->secrets));
    lg->secrets[pos] = xstrdup(secret);
    lg->nsecrets++;
    pthread_mutex_unlock(&lg->lock);
}

void log_set_level(logger *lg, log_level level)
{
    if (lg)
        __atomic_store_n(&lg->level, (int)level, __ATOMIC_RELAXED);
}

bool log_enabled(const logger *lg, log_level level)
{
    return lg && (int)level >= __atomic_load_n(&lg->level, __ATOMIC_RELAXED);
}

int log_reopen(logger *lg, mt_error **err)
{
    if (!lg || !lg->path)
        return 0;
    pthread_mutex_lock(&lg->lock);
    int rc = 0;
    uint64_t size = 0;
    int fd = -1;
    if (fs_mkdir_parent(lg->path, LOG_DIR_MODE, err) < 0) {
        rc = mt_error_wrap(err, "cannot reopen log file %s", lg->path);
    } else if ((fd = open_log_file(lg->path, &size)) < 0) {
        rc = mt_error_sys(err, errno, "cannot reopen log file %s", lg->path);
    } else {
        if (lg->fd >= 0)
            close(lg->fd);
        lg->fd = fd;
        lg->size = size;
    }
    pthread_mutex_unlock(&lg->lock);
    return rc;
}

/* Replace every registered secret in msg by "***". Called with the lock held. */
static void redact(logger *lg, strbuf *msg)
{
    for (size_t i = 0; i < lg->nsecrets; i++) {
        const char *secret = lg->secrets[i];
        const char *hit = strstr(sb_str(msg), secret);
        if (!hit)
            continue;
        size_t slen = strlen(secret);
        strbuf out = STRBUF_INIT;
        const char *p = sb_str(msg);
        while (hit) {
            sb_append(&out, p, (size_t)(hit - p));
            sb_puts(&out, LOG_REDACTED);
            p = hit + slen;
            hit = strstr(p, secret);
        }
        sb_puts(&out, p);
        sb_free(msg);
        *msg = out;
    }
}

/* "YYYY-MM-DD HH:MM:SS,mmm" in local time. */
static void put_timestamp(strbuf *sb)
{
    int64_t ms = clock_wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[64];
    if (!localtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
        strcpy(buf, "0000-00-00 00:00:00");
    sb_printf(sb, "%s,%03ld", buf, (long)(ms % 1000));
}

/* Move file -> file.1 -> ... -> file.<backup_count> (dropping the oldest) and open a fresh
 * file; with no backups, empty the file in place. Called with the lock held. */
static void rotate(logger *lg)
{
    if (lg->backup_count == 0) {
        if (ftruncate(lg->fd, 0) == 0)
            lg->size = 0;
        return;
    }
    cleanup_free char *oldest = xasprintf("%s.%d", lg->path, lg->backup_count);
    unlink(oldest);
    for (int i = lg->backup_count - 1; i >= 1; i--) {
        cleanup_free char *from = xasprintf("%s.%d", lg->path, i);
        cleanup_free char *to = xasprintf("%s.%d", lg->path, i + 1);
        rename(from, to); /* ENOENT for the missing ones is expected */
    }
    cleanup_free char *first = xasprintf("%s.1", lg->path);
    if (rename(lg->path, first) < 0 && errno != ENOENT)
        return; /* keep writing to the current file; we try again on the next record */
    uint64_t size = 0;
    int fd = open_log_file(lg->path, &size);
    close(lg->fd);
    lg->fd = fd; /* -1: reopened on a later record */
    lg->size = size;
}

/* Write one complete line to the file sink. Called with the lock held. Never fails loudly. */
static void write_file(logger *lg, const char *line, size_t len)
{
    if (lg->fd < 0) {
        lg->fd = open_log_file(lg->path, &lg->size);
        if (lg->fd < 0) {
            lg->dropped++;
            return;
        }
    }
    if (lg->max_bytes && lg->size > 0 && lg->size + len > lg->max_bytes) {
        rotate(lg);
        if (lg->fd < 0) {
            lg->dropped++;
            return;
        }
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(lg->fd, line + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            lg->dropped++;
            return;
        }
        if (n == 0) {
            lg->dropped++;
            return;
        }
        off += (size_t)n;
        lg->size += (uint64_t)n;
    }
}

void log_msg(logger *lg, log_level level, const char *component, const char *fmt, ...)
{
    if (!log_enabled(lg, level))
        return;
    if (!lg->path && !lg->console)
        return;

    cleanup_strbuf strbuf msg = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    while (msg.len && msg.buf[msg.len - 1] == '\n')
        msg.buf[--msg.len] = '\0';

    pthread_mutex_lock(&lg->lock);
    redact(lg, &msg);
    cleanup_strbuf strbuf line = STRBUF_INIT;
    put_timestamp(&line);
    sb_printf(&line, " - %s - %s%s%s - ", log_level_name(level), lg->program,
              component && *component ? "." : "", component ? component : "");
    sb_append(&line, sb_str(&msg), msg.len);
    sb_putc(&line, '\n');
    if (lg->path)
        write_file(lg, line.buf, line.len);
    if (lg->console) {
        fwrite(line.buf, 1, line.len, lg->console);
        fflush(lg->console);
    }
    pthread_mutex_unlock(&lg->lock);
}
