/* strbuf.h - a growable, always NUL-terminated byte buffer. */
#ifndef MANTA_STRBUF_H
#define MANTA_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct strbuf {
    char *buf; /* owned; NULL until the first append, then always NUL-terminated */
    size_t len;
    size_t cap;
} strbuf;

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void sb_append(strbuf *sb, const void *data, size_t n);
void sb_puts(strbuf *sb, const char *s);
void sb_putc(strbuf *sb, char c);
void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(strbuf *sb, const char *fmt, va_list ap);
/* Returns the buffer (owned by the caller; "" if empty) and resets sb. */
char *sb_steal(strbuf *sb);
/* The contents, borrowed; "" if empty. */
const char *sb_str(const strbuf *sb);
void sb_reset(strbuf *sb); /* len = 0, keeps memory */
void sb_free(strbuf *sb);  /* releases memory */

#define cleanup_strbuf __attribute__((cleanup(sb_free)))

#endif
