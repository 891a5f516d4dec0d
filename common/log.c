/* Structured logging (see log.h). */
#include "common/log.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int mlog_min_level = MLOG_INFO;
static int level_pinned; /* mlog_pin_level was called: mlog_quiet leaves the level be */
static int log_fd = -1;
static int log_stderr = 1;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"trace", "debug", "info", "warn", "error", "fatal", "off"};

const char *mlog_level_name(mlog_level l)
{
    if ((int)l < 0 || l > MLOG_OFF) return "?";
    return level_names[l];
}

int mlog_parse_level(const char *s, mlog_level *out)
{
    for (int i = 0; i <= MLOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (mlog_level)i;
            return 0;
        }
    }
    return MERR_INVALID;
}

void mlog_pin_level(mlog_level l)
{
    __atomic_store_n(&level_pinned, 1, __ATOMIC_RELEASE);
    mlog_set_level(l);
}

void mlog_quiet(mlog_level l)
{
    if (__atomic_load_n(&level_pinned, __ATOMIC_ACQUIRE)) return;
    if (mlog_min_level < (int)l) mlog_set_level(l);
}

void mlog_set_level(mlog_level l)
{
    mlog_min_level = (int)l;
}

void mlog_set_stderr(int on)
{
    log_stderr = on;
}

int mlog_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return merr_from_errno(errno);
    pthread_mutex_lock(&log_mu);
    if (log_fd >= 0) close(log_fd);
    log_fd = fd;
    pthread_mutex_unlock(&log_mu);
    return 0;
}

void mlog_close_file(void)
{
    pthread_mutex_lock(&log_mu);
    if (log_fd >= 0) close(log_fd);
    log_fd = -1;
    pthread_mutex_unlock(&log_mu);
}

/* Appends msg quoted logfmt-style: backslash-escape quotes, backslashes and
 * control characters so one event is always one line. */
static size_t append_quoted(char *buf, size_t pos, size_t cap, const char *s)
{
    if (pos < cap) buf[pos++] = '"';
    for (; *s && pos + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c == '\n') {
            buf[pos++] = '\\';
            buf[pos++] = 'n';
        } else if (c < 0x20) {
            buf[pos++] = '?';
        } else {
            buf[pos++] = (char)c;
        }
    }
    if (pos < cap) buf[pos++] = '"';
    return pos;
}

size_t mlog_format(char *buf, size_t cap, long long unix_us, mlog_level l, const char *mod,
                   const char *msg, const char *fields)
{
    time_t secs = (time_t)(unix_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(buf, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ lvl=%s mod=%s msg=",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     unix_us % 1000000, mlog_level_name(l), mod ? mod : "-");
    size_t pos = n < 0 ? 0 : (size_t)n;
    if (pos >= cap) pos = cap - 1;
    pos = append_quoted(buf, pos, cap - 1, msg ? msg : "");
    if (fields && fields[0]) {
        int m = snprintf(buf + pos, cap - pos, " %s", fields);
        if (m > 0) pos += (size_t)m;
        if (pos >= cap) pos = cap - 1;
    }
    /* keep the line a line, whatever the fields held */
    for (size_t i = 0; i < pos; i++)
        if (buf[i] == '\n') buf[i] = ' ';
    if (pos + 1 < cap) buf[pos++] = '\n';
    buf[pos] = '\0';
    return pos;
}

void mlog_write(mlog_level l, const char *mod, const char *msg, const char *fields, ...)
{
    char fbuf[1024] = "";
    if (fields && fields[0]) {
        va_list ap;
        va_start(ap, fields);
        vsnprintf(fbuf, sizeof(fbuf), fields, ap);
        va_end(ap);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    char line[1536];
    size_t n = mlog_format(line, sizeof(line), us, l, mod, msg, fbuf);
    int saved = errno;
    if (log_stderr) {
        ssize_t w = write(STDERR_FILENO, line, n);
        (void)w;
    }
    if (log_fd >= 0) {
        pthread_mutex_lock(&log_mu);
        if (log_fd >= 0) {
            ssize_t w = write(log_fd, line, n);
            (void)w;
        }
        pthread_mutex_unlock(&log_mu);
    }
    errno = saved;
}
