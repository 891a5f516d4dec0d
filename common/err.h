/* Error codes and error messages shared by every layer.
 *
 * Convention: functions return 0 on success or a negative MERR_* code. Objects
 * that can fail keep a `merr` with the code and a human message; callers wrap
 * a lower layer's message with their own context via merr_wrap(), so the text
 * reads outermost-first: "open store /x: sqlite: disk I/O error". */
#ifndef MERIDIAN_COMMON_ERR_H
#define MERIDIAN_COMMON_ERR_H

#include <stddef.h>

#define MERR_LIST(X)                                                                               \
    X(OK, 0, "ok")                                                                                 \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(INVALID, -2, "invalid argument")                                                             \
    X(CORRUPT, -3, "data corrupt")                                                                 \
    X(IO, -4, "I/O error")                                                                         \
    X(NOSPACE, -5, "no space left on device")                                                      \
    X(TOOBIG, -6, "too big")                                                                       \
    X(NOTFOUND, -7, "not found")                                                                   \
    X(EXISTS, -8, "already exists")                                                                \
    X(TIMEOUT, -9, "deadline exceeded")                                                            \
    X(CANCELED, -10, "canceled")                                                                   \
    X(UNAVAILABLE, -11, "unavailable")                                                             \
    X(NOT_LEADER, -12, "not the leader")                                                           \
    X(CLOCK, -13, "clock uncertainty too large")                                                   \
    X(ABORTED, -14, "transaction aborted")                                                         \
    X(RETRY, -15, "retry")                                                                         \
    X(PROTOCOL, -16, "protocol error")                                                             \
    X(CLOSED, -17, "closed")                                                                       \
    X(RANGE, -18, "key outside range")                                                             \
    X(BUSY, -19, "busy")                                                                           \
    X(UNSUPPORTED, -20, "not supported")                                                           \
    X(INTERNAL, -21, "internal error")

enum merr_code {
#define MERR_ENUM(name, val, msg) MERR_##name = val,
    MERR_LIST(MERR_ENUM)
#undef MERR_ENUM
        MERR_MIN_CODE = -21
};

#define MERR_MSG_MAX 512

/* An error with context. Zero-initialise; code 0 means no error. */
typedef struct merr {
    int code;
    char msg[MERR_MSG_MAX];
} merr;

/* "NOT_LEADER" for MERR_NOT_LEADER; "UNKNOWN" for codes outside the list. */
const char *merr_name(int code);
/* The default message of a code: "not the leader". */
const char *merr_str(int code);
/* Looks a name up ("NOT_LEADER" -> MERR_NOT_LEADER); returns 1 if found. */
int merr_from_name(const char *name, int *code);

/* Sets code and message (printf-style) and returns code, so callers can write
 * `return merr_set(e, MERR_IO, "open %s: %s", path, strerror(errno));`.
 * A NULL `e` is allowed: only the code is returned. */
int merr_set(merr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the current message with context: "ctx: old message". Keeps the
 * code; returns it. */
int merr_wrap(merr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the error. */
void merr_clear(merr *e);
/* The message, or the code's default message if none was set. */
const char *merr_msg(const merr *e);
/* Maps an errno value to a code (ENOSPC -> MERR_NOSPACE, ENOMEM -> MERR_NOMEM...). */
int merr_from_errno(int errnum);

#endif
