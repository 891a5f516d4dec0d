/* Error codes and messages (see err.h). */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *merr_name(int code)
{
    switch (code) {
#define MERR_NAME(name, val, msg)                                                                  \
    case val: return #name;
        MERR_LIST(MERR_NAME)
#undef MERR_NAME
    }
    return "UNKNOWN";
}

const char *merr_str(int code)
{
    switch (code) {
#define MERR_STR(name, val, msg)                                                                   \
    case val: return msg;
        MERR_LIST(MERR_STR)
#undef MERR_STR
    }
    return "unknown error";
}

int merr_from_name(const char *name, int *code)
{
#define MERR_LOOKUP(n, val, msg)                                                                   \
    if (strcmp(name, #n) == 0) {                                                                   \
        *code = val;                                                                               \
        return 1;                                                                                  \
    }
    MERR_LIST(MERR_LOOKUP)
#undef MERR_LOOKUP
    return 0;
}

int merr_set(merr *e, int code, const char *fmt, ...)
{
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

int merr_wrap(merr *e, const char *fmt, ...)
{
    if (!e) return MERR_INTERNAL;
    char prefix[MERR_MSG_MAX];
    char old[MERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(old, sizeof(old), "%s", merr_msg(e));
    /* Compose by hand: truncation of long chains is intended, not a bug. */
    size_t cap = sizeof(e->msg) - 1, pos = 0;
    for (const char *parts[3] = {prefix, ": ", old}, **p = parts; p < parts + 3; p++) {
        size_t n = strlen(*p);
        if (n > cap - pos) n = cap - pos;
        memcpy(e->msg + pos, *p, n);
        pos += n;
    }
    e->msg[pos] = '\0';
    return e->code;
}

void merr_clear(merr *e)
{
    if (!e) return;
    e->code = 0;
    e->msg[0] = '\0';
}

const char *merr_msg(const merr *e)
{
    if (!e) return "";
    return e->msg[0] ? e->msg : merr_str(e->code);
}

int merr_from_errno(int errnum)
{
    switch (errnum) {
    case 0: return MERR_OK;
    case ENOMEM: return MERR_NOMEM;
    case ENOSPC:
    case EDQUOT: return MERR_NOSPACE;
    case EINVAL: return MERR_INVALID;
    case ENOENT: return MERR_NOTFOUND;
    case EEXIST: return MERR_EXISTS;
    case ETIMEDOUT: return MERR_TIMEOUT;
    case ECANCELED: return MERR_CANCELED;
    case EFBIG:
    case E2BIG: return MERR_TOOBIG;
    case EAGAIN: return MERR_BUSY;
    default: return MERR_IO;
    }
}
