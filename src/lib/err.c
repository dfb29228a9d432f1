/* err.c - the one error type; see err.h. */
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static int error_vset(mt_error **err, int code, int errnum, const char *fmt, va_list ap)
{
    if (!err)
        return -1;
    mt_error_free(err);
    char *msg = xvasprintf(fmt, ap);
    if (errnum) {
        char *full = xasprintf("%s: %s", msg, strerror(errnum));
        free(msg);
        msg = full;
    }
    mt_error *e = xcalloc(1, sizeof(*e));
    e->code = code;
    e->errnum = errnum;
    e->msg = msg;
    *err = e;
    return -1;
}

int mt_error_set(mt_error **err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int mt_error_set_status(mt_error **err, int status, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, 0, fmt, ap);
    va_end(ap);
    if (err && *err)
        (*err)->status = status;
    return -1;
}

int mt_error_status(const mt_error *err, int dflt)
{
    return err && err->status ? err->status : dflt;
}

int mt_error_sys(mt_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, MT_ERR_IO, errnum, fmt, ap);
    va_end(ap);
    return -1;
}

int mt_error_wrap(mt_error **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);
    char *full = xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = full;
    return -1;
}

void mt_error_free(mt_error **err)
{
    if (!err || !*err)
        return;
    free((*err)->msg);
    free(*err);
    *err = NULL;
}

const char *mt_error_msg(const mt_error *err)
{
    return err && err->msg ? err->msg : "";
}
