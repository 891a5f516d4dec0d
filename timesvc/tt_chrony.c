/* The chrony time source: polls chronyd's tracking data about once a second
 * and feeds it to a tt_clock, without blocking the event loop.
 *
 * Mechanism: we run `chronyc -n -c tracking` with uv_spawn and parse its CSV.
 * Alternatives considered:
 *  - chronyd's command protocol spoken directly (UDP command port or the unix
 *    socket): no process per query, but the protocol is chrony-internal — the
 *    version byte must match the daemon's, requests are padded to the reply
 *    size, numbers use chrony's own 32-bit float format — so a chrony upgrade
 *    could silently break the clock of every node. chronyc always speaks its
 *    own daemon's dialect and its CSV output is a documented, stable interface.
 *  - adjtimex(2) maxerror/esterror: only meaningful while chronyd disciplines
 *    the kernel clock, which it never does under `chronyd -x` (our tests and
 *    shared machines), and it carries no "time of last update".
 * One short-lived process per second is cheap (a few ms of CPU); the child is
 * reaped by libuv, its output read through pipes on the loop, and a guard timer
 * kills it by PID if chronyd does not answer (chronyc itself retries for ~7 s).
 * While chronyd is silent the clock keeps the last good sample, whose ε grows
 * with its age (tt.h), until it passes the maximum and the node stops serving. */
#include "timesvc/tt_uv.h"

#include "common/log.h"
#include "common/mtime.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHRONY_OUT_MAX 2048
#define CHRONY_ERR_MAX 512

/* ---- parsing `chronyc -c tracking` ----
 * Fields: ref id (hex), ref name, stratum, ref time (s since epoch), system
 * time offset (s), last offset, rms offset, frequency (ppm), residual freq,
 * skew, root delay (s), root dispersion (s), update interval (s), leap status. */

#define TRACKING_FIELDS 14

/* Decimal seconds ("-0.000001234", "1795667829.131296384") to nanoseconds,
 * exactly (no double rounding: reference times need all their digits). */
static int parse_seconds(const char *s, int64_t *ns)
{
    int neg = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    int64_t whole = 0, frac = 0;
    int nd = 0, nf = 0;
    for (; *s >= '0' && *s <= '9'; s++, nd++) {
        if (whole > 9000000000LL) return -1; /* > ~285 years: nonsense */
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++, nf++)
            if (nf < 9) frac = frac * 10 + (*s - '0');
    }
    if (*s || (nd == 0 && nf == 0)) return -1;
    /* The loop lets whole reach 9e10; past 9e9 s, whole * 1e9 overflows. */
    if (whole > 9000000000LL) return -1;
    for (int i = nf; i < 9; i++) frac *= 10;
    int64_t v = whole * 1000000000LL + frac;
    *ns = neg ? -v : v;
    return 0;
}

int tt_chrony_parse_tracking(const char *csv, size_t n, tt_sample *out, merr *e)
{
    char line[CHRONY_OUT_MAX];
    char *f[TRACKING_FIELDS];
    int nf = 0;
    if (n >= sizeof(line)) return merr_set(e, MERR_PROTOCOL, "chronyc: output too long");
    memcpy(line, csv, n);
    line[n] = 0;
    if (memchr(line, 0, n)) return merr_set(e, MERR_PROTOCOL, "chronyc: NUL in output");
    char *nl = strchr(line, '\n');
    if (nl) {
        if (nl[1] != 0) return merr_set(e, MERR_PROTOCOL, "chronyc: more than one line");
        *nl = 0;
    }
    char *p = line;
    for (;;) {
        if (nf == TRACKING_FIELDS) goto bad_count;
        f[nf++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    if (nf != TRACKING_FIELDS) goto bad_count;

    memset(out, 0, sizeof(*out));
    char *end;
    long stratum = strtol(f[2], &end, 10);
    if (!*f[2] || *end || stratum < 0 || stratum > 16)
        return merr_set(e, MERR_PROTOCOL, "chronyc: bad stratum '%s'", f[2]);
    out->stratum = (int)stratum;
    int64_t v[TRACKING_FIELDS];
    static const int numeric[] = {3, 4, 10, 11, 12};
    for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
        int k = numeric[i];
        if (parse_seconds(f[k], &v[k]))
            return merr_set(e, MERR_PROTOCOL, "chronyc: bad number '%.40s' in field %d", f[k],
                            k + 1);
    }
    if (v[3] < 0 || v[10] < 0 || v[11] < 0 || v[12] < 0)
        return merr_set(e, MERR_PROTOCOL, "chronyc: negative time, delay or dispersion");
    out->ref_real_ns = v[3];
    out->offset_ns = v[4];
    out->root_delay_ns = v[10];
    out->root_dispersion_ns = v[11];
    out->update_interval_ns = v[12];
    snprintf(out->ref_name, sizeof(out->ref_name), "%s", f[1]);
    const char *leap = f[13];
    if (strcmp(leap, "Not synchronised") == 0)
        out->synchronized = 0;
    else if (strcmp(leap, "Normal") == 0 || strcmp(leap, "Insert second") == 0 ||
             strcmp(leap, "Delete second") == 0)
        out->synchronized = 1;
    else
        return merr_set(e, MERR_PROTOCOL, "chronyc: unknown leap status '%.40s'", leap);
    /* chronyd reports stratum 0 and reference time 0 before its first sync. */
    if (out->stratum == 0 || out->stratum >= 16 || out->ref_real_ns == 0) out->synchronized = 0;
    return 0;
bad_count:
    return merr_set(e, MERR_PROTOCOL, "chronyc: want %d comma-separated fields, got %s%d",
                    TRACKING_FIELDS, nf == TRACKING_FIELDS ? "more than " : "", nf);
}

/* ---- one query: a chronyc child and its two pipes ---- */

typedef struct chrony_query {
    tt_chrony *owner;
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t guard;
    char obuf[CHRONY_OUT_MAX];
    size_t olen;
    char ebuf[CHRONY_ERR_MAX];
    size_t elen;
    char scratch[1024];
    int64_t exit_status;
    int term_signal;
    int exited, out_done, err_done, timed_out, overflow, finished;
    int open_handles;
} chrony_query;

static void chrony_schedule(tt_chrony *c);

static void owner_handle_closed(tt_chrony *c)
{
    if (--c->handles == 0 && c->stopping && c->closed_cb) c->closed_cb(c);
}

static void query_handle_closed(uv_handle_t *h)
{
    chrony_query *q = h->data;
    tt_chrony *c = q->owner;
    if (--q->open_handles == 0) free(q);
    owner_handle_closed(c);
}

static void query_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, query_handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    chrony_query *q = h->data;
    /* Reads land in a scratch area; on_read copies what fits. */
    *buf = uv_buf_init(q->scratch, sizeof(q->scratch));
}

static void query_maybe_finish(chrony_query *q);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    chrony_query *q = s->data;
    int is_out = s == (uv_stream_t *)&q->out;
    if (n > 0) {
        char *dst = is_out ? q->obuf : q->ebuf;
        size_t *len = is_out ? &q->olen : &q->elen;
        size_t cap = (is_out ? sizeof(q->obuf) : sizeof(q->ebuf)) - 1;
        size_t take = (size_t)n;
        if (take > cap - *len) {
            take = cap - *len;
            if (is_out) q->overflow = 1;
        }
        memcpy(dst + *len, buf->base, take);
        *len += take;
        return;
    }
    if (n == 0) return;
    /* EOF or a read error: this pipe is done. */
    uv_read_stop(s);
    if (is_out)
        q->out_done = 1;
    else
        q->err_done = 1;
    query_close((uv_handle_t *)s);
    query_maybe_finish(q);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    chrony_query *q = p->data;
    q->exited = 1;
    q->exit_status = status;
    q->term_signal = sig;
    uv_timer_stop(&q->guard);
    query_maybe_finish(q);
}

static void on_guard(uv_timer_t *t)
{
    chrony_query *q = t->data;
    if (q->exited) return;
    q->timed_out = 1;
    /* uv_process_kill signals exactly this child's PID. */
    uv_process_kill(&q->proc, SIGKILL);
}

static void trim(char *s, size_t *len)
{
    while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r' || s[*len - 1] == ' ')) (*len)--;
    s[*len] = 0;
}

static void query_maybe_finish(chrony_query *q)
{
    if (q->finished || !q->exited || !q->out_done || !q->err_done) return;
    q->finished = 1;
    tt_chrony *c = q->owner;
    merr e = {0};
    int rc;
    tt_sample s;
    q->obuf[q->olen] = 0;
    trim(q->ebuf, &q->elen);
    if (c->stopping) {
        rc = merr_set(&e, MERR_CANCELED, "chrony poller stopped");
    } else if (q->timed_out) {
        rc = merr_set(&e, MERR_TIMEOUT, "chronyc: no answer from chronyd within %.1fs",
                      (double)c->timeout_ns / 1e9);
    } else if (q->term_signal || q->exit_status != 0) {
        rc = merr_set(&e, MERR_UNAVAILABLE, "chronyc %s: exit %lld%s%s", c->host,
                      (long long)q->exit_status, q->elen ? ": " : "", q->ebuf);
        /* chronyc reports "506 Cannot talk to daemon" on stdout */
        if (!q->elen && q->olen) {
            size_t l = q->olen;
            trim(q->obuf, &l);
            merr_set(&e, MERR_UNAVAILABLE, "chronyc %s: exit %lld: %s", c->host,
                     (long long)q->exit_status, q->obuf);
        }
    } else if (q->overflow) {
        rc = merr_set(&e, MERR_PROTOCOL, "chronyc: output too long");
    } else {
        rc = tt_chrony_parse_tracking(q->obuf, q->olen, &s, &e);
    }
    if (rc == 0) {
        tt_clock_feed(c->clock, &s);
    } else if (rc != MERR_CANCELED) {
        c->failures++;
        tt_clock_feed_failure(c->clock, merr_msg(&e));
        MLOG_D("timesvc", "chrony query failed", "err=\"%s\"", merr_msg(&e));
    }
    c->q = NULL;
    query_close((uv_handle_t *)&q->proc);
    query_close((uv_handle_t *)&q->guard);
    if (rc != MERR_CANCELED && c->on_result) c->on_result(c, rc, rc ? merr_msg(&e) : NULL);
    if (!c->stopping) chrony_schedule(c);
}

static void chrony_query_start(tt_chrony *c)
{
    chrony_query *q = calloc(1, sizeof(*q));
    merr e = {0};
    if (!q) {
        tt_clock_feed_failure(c->clock, "out of memory");
        chrony_schedule(c);
        return;
    }
    q->owner = c;
    q->proc.data = q->out.data = q->err.data = q->guard.data = q;
    uv_pipe_init(c->loop, &q->out, 0);
    uv_pipe_init(c->loop, &q->err, 0);
    uv_timer_init(c->loop, &q->guard);
    q->open_handles = 3;
    c->handles += 3;

    char *args[12];
    int n = 0;
    args[n++] = c->chronyc;
    args[n++] = "-n"; /* no DNS lookups */
    args[n++] = "-c"; /* CSV */
    args[n++] = "-h";
    if (c->socket_path[0]) {
        args[n++] = c->socket_path; /* a path makes chronyc use the unix socket */
    } else {
        args[n++] = c->host;
        args[n++] = "-p";
        args[n++] = c->port;
    }
    args[n++] = "tracking";
    args[n] = NULL;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&q->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&q->err;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof(opt));
    opt.file = c->chronyc;
    opt.args = args;
    opt.exit_cb = on_exit_cb;
    opt.stdio = stdio;
    opt.stdio_count = 3;
    c->q = q;
    int rc = uv_spawn(c->loop, &q->proc, &opt);
    /* libuv >= 1.24: the process handle must be closed even if spawn failed. */
    q->open_handles++;
    c->handles++;
    if (rc) {
        merr_set(&e, MERR_UNAVAILABLE, "spawn %s: %s", c->chronyc, uv_strerror(rc));
        q->exited = q->out_done = q->err_done = 1;
        q->exit_status = 127;
        snprintf(q->ebuf, sizeof(q->ebuf), "%s", merr_msg(&e));
        q->elen = strlen(q->ebuf);
        query_close((uv_handle_t *)&q->out);
        query_close((uv_handle_t *)&q->err);
        query_maybe_finish(q);
        return;
    }
    uv_read_start((uv_stream_t *)&q->out, alloc_cb, on_read);
    uv_read_start((uv_stream_t *)&q->err, alloc_cb, on_read);
    uint64_t ms = (uint64_t)((c->timeout_ns + 999999) / 1000000);
    uv_timer_start(&q->guard, on_guard, ms ? ms : 1, 0);
    c->queries++;
}

static void on_tick(uv_timer_t *t)
{
    tt_chrony *c = t->data;
    if (c->stopping || c->q) return;
    chrony_query_start(c);
}

static void chrony_schedule(tt_chrony *c)
{
    uint64_t ms = (uint64_t)((c->interval_ns + 999999) / 1000000);
    uv_timer_start(&c->tick, on_tick, ms, 0);
}

void tt_chrony_config_default(tt_chrony_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->chronyc = "chronyc";
    cfg->host = "127.0.0.1";
    cfg->port = 323;
    cfg->interval_ns = 1000 * MTIME_MS;
    cfg->timeout_ns = 2000 * MTIME_MS;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *what, merr *e)
{
    if (strlen(src) >= cap) return merr_set(e, MERR_INVALID, "chrony: %s too long", what);
    snprintf(dst, cap, "%s", src);
    return 0;
}

int tt_chrony_start(tt_chrony *c, uv_loop_t *loop, tt_clock *clock, const tt_chrony_config *cfg,
                    tt_chrony_result_cb on_result, merr *e)
{
    memset(c, 0, sizeof(*c));
    int rc;
    if (cfg->port <= 0 || cfg->port > 65535)
        return merr_set(e, MERR_INVALID, "chrony: bad command port %d", cfg->port);
    if (cfg->interval_ns < MTIME_MS || cfg->timeout_ns < MTIME_MS)
        return merr_set(e, MERR_INVALID, "chrony: interval and timeout must be >= 1ms");
    if ((rc = copy_str(c->chronyc, sizeof(c->chronyc), cfg->chronyc ? cfg->chronyc : "chronyc",
                       "chronyc path", e)) ||
        (rc = copy_str(c->host, sizeof(c->host), cfg->host ? cfg->host : "127.0.0.1", "host", e)) ||
        (rc = copy_str(c->socket_path, sizeof(c->socket_path),
                       cfg->socket_path ? cfg->socket_path : "", "socket path", e)))
        return rc;
    if (c->socket_path[0] && c->socket_path[0] != '/')
        return merr_set(e, MERR_INVALID, "chrony: socket path must be absolute: %s",
                        c->socket_path);
    if (c->host[0] == '-' || c->host[0] == '/')
        return merr_set(e, MERR_INVALID, "chrony: bad host '%s'", c->host);
    if (c->socket_path[0]) snprintf(c->host, sizeof(c->host), "%s", c->socket_path);
    snprintf(c->port, sizeof(c->port), "%d", cfg->port);
    c->loop = loop;
    c->clock = clock;
    c->interval_ns = cfg->interval_ns;
    c->timeout_ns = cfg->timeout_ns;
    c->on_result = on_result;
    rc = uv_timer_init(loop, &c->tick);
    if (rc) return merr_set(e, MERR_INTERNAL, "uv_timer_init: %s", uv_strerror(rc));
    c->tick.data = c;
    c->handles = 1;
    uv_timer_start(&c->tick, on_tick, 0, 0);
    return 0;
}

static void tick_closed(uv_handle_t *h)
{
    owner_handle_closed(h->data);
}

void tt_chrony_stop(tt_chrony *c, void (*closed_cb)(tt_chrony *c))
{
    if (c->stopping) return;
    c->stopping = 1;
    c->closed_cb = closed_cb;
    uv_timer_stop(&c->tick);
    if (c->q && !c->q->exited) uv_process_kill(&c->q->proc, SIGKILL);
    uv_close((uv_handle_t *)&c->tick, tick_closed);
}
