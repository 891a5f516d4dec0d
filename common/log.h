/* Structured logging: one line per event, logfmt style:
 *   ts=2026-11-26T04:31:03.123456Z lvl=info mod=rpc msg="peer up" peer=127.0.0.1:26257
 * to stderr and optionally a file. A disabled level costs one compare: the
 * MLOG macros test the level before evaluating their arguments. Thread-safe:
 * each line is formatted privately and written with a single write(2). */
#ifndef MERIDIAN_COMMON_LOG_H
#define MERIDIAN_COMMON_LOG_H

#include <stdio.h>

typedef enum mlog_level {
    MLOG_TRACE = 0,
    MLOG_DEBUG = 1,
    MLOG_INFO = 2,
    MLOG_WARN = 3,
    MLOG_ERROR = 4,
    MLOG_FATAL = 5,
    MLOG_OFF = 6,
} mlog_level;

extern int mlog_min_level; /* lines below this level are dropped */

/* Parses "trace|debug|info|warn|error|fatal|off"; returns 0 or MERR_INVALID. */
int mlog_parse_level(const char *s, mlog_level *out);
const char *mlog_level_name(mlog_level l);
void mlog_set_level(mlog_level l);
/* Sets the level for good: a process that serves (a node, `--log-level`)
 * keeps what it was told. mlog_quiet() then changes nothing. */
void mlog_pin_level(mlog_level l);
/* Raises the level to at least l unless it was pinned: command-line tools
 * keep the transport's chatter out of their output (cli_rpc_open). A node's
 * own transaction client opens connections while it serves, and once
 * silenced the node's whole log at ERROR that way. */
void mlog_quiet(mlog_level l);
/* Also append every line to `path` (created 0644). Returns 0 or a MERR code. */
int mlog_open_file(const char *path);
void mlog_close_file(void);
/* Turn stderr output off or on (on by default). */
void mlog_set_stderr(int on);

/* `fields` is a printf format for extra key=value pairs, may be "" or NULL. */
void mlog_write(mlog_level l, const char *mod, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 4, 5)));

#define MLOG(lvl, mod, msg, ...)                                                                   \
    do {                                                                                           \
        if ((int)(lvl) >= mlog_min_level) mlog_write((lvl), (mod), (msg), __VA_ARGS__);            \
    } while (0)
#define MLOG_T(mod, msg, ...) MLOG(MLOG_TRACE, mod, msg, __VA_ARGS__)
#define MLOG_D(mod, msg, ...) MLOG(MLOG_DEBUG, mod, msg, __VA_ARGS__)
#define MLOG_I(mod, msg, ...) MLOG(MLOG_INFO, mod, msg, __VA_ARGS__)
#define MLOG_W(mod, msg, ...) MLOG(MLOG_WARN, mod, msg, __VA_ARGS__)
#define MLOG_E(mod, msg, ...) MLOG(MLOG_ERROR, mod, msg, __VA_ARGS__)

/* Formats one line into buf (for tests and for mlog_write). Returns length. */
size_t mlog_format(char *buf, size_t cap, long long unix_us, mlog_level l, const char *mod,
                   const char *msg, const char *fields_formatted);

#endif
