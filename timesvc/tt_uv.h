/* The libuv side of timesvc: commit-wait timers and the chronyd poller.
 *
 * Commit-wait (Spanner §4.1.2): a leader that picked commit timestamp s must
 * not let anyone see the commit until tt_after(s) holds, i.e. until
 * tt_now().earliest > s. tt_wait_after() waits for that on the node's event
 * loop with a timer armed for the remaining gap (re-armed if the clock says
 * "not yet"), so no thread blocks and nothing spins. The timer is a Linux
 * timerfd watched by uv_poll rather than a uv_timer: uv_timer counts whole
 * milliseconds, and with chrony on a LAN 2ε is tens of microseconds — a
 * millisecond timer would make every commit wait ~20 times longer than it must
 * (`meridian bench clock` measures both). */
#ifndef MERIDIAN_TIMESVC_TT_UV_H
#define MERIDIAN_TIMESVC_TT_UV_H

#include "timesvc/tt.h"

#include <uv.h>

/* ---- commit-wait ---- */

typedef struct tt_waiter tt_waiter;
/* status: 0 once tt_after(t) holds; MERR_CLOCK if the clock stopped being
 * trustworthy while waiting (w->err says why; the caller may retry, it must
 * not treat t as passed); MERR_CANCELED after tt_wait_cancel(). */
typedef void (*tt_wait_cb)(tt_waiter *w, int status);

struct tt_waiter {
    uv_poll_t poll;
    int tfd; /* timerfd on CLOCK_MONOTONIC */
    tt_clock *clock;
    int64_t t_ns;
    tt_wait_cb cb;
    int active;
    int polling; /* the poll stays started between waits (unref'd when idle) */
    int rearms;  /* how often the timer fired early (for tests and metrics) */
    merr err;
    void (*closed_cb)(tt_waiter *w);
    void *data; /* the caller's */
};

/* Sets up the waiter's timer on `loop`. Close it with tt_waiter_close(). */
int tt_waiter_init(uv_loop_t *loop, tt_clock *c, tt_waiter *w, merr *e);
/* Calls cb once, from the loop (never from inside this call), when
 * tt_after(t_ns) holds. MERR_BUSY if this waiter is already waiting. */
int tt_wait_after(tt_waiter *w, int64_t t_ns, tt_wait_cb cb, merr *e);
/* Stops a wait; cb runs with MERR_CANCELED before this returns. No-op if idle. */
void tt_wait_cancel(tt_waiter *w);
/* Cancels any wait and closes the timer; closed_cb (may be NULL) runs once
 * the loop has let go of the waiter's memory. */
void tt_waiter_close(tt_waiter *w, void (*closed_cb)(tt_waiter *w));

/* ---- chronyd poller ---- */

typedef struct tt_chrony_config {
    const char *chronyc;     /* program, default "chronyc" (found on PATH) */
    const char *host;        /* chronyd command address, default 127.0.0.1 */
    int port;                /* its command port, default 323 */
    const char *socket_path; /* or its unix command socket (needs root) */
    int64_t interval_ns;     /* between queries, default 1 s */
    int64_t timeout_ns;      /* a query is killed after this, default 2 s */
} tt_chrony_config;

void tt_chrony_config_default(tt_chrony_config *cfg);

typedef struct tt_chrony tt_chrony;
/* Called after every query with 0 (a sample was fed to the clock) or the
 * error (also fed to the clock as a failure). */
typedef void (*tt_chrony_result_cb)(tt_chrony *c, int rc, const char *msg);

struct chrony_query;
struct tt_chrony {
    uv_loop_t *loop;
    tt_clock *clock;
    char chronyc[256], host[256], port[16], socket_path[256];
    int64_t interval_ns, timeout_ns;
    uv_timer_t tick;
    struct chrony_query *q; /* the query in flight, if any */
    int stopping;
    int handles; /* open uv handles owned directly or through q */
    void (*closed_cb)(tt_chrony *c);
    tt_chrony_result_cb on_result;
    void *data;
    uint64_t queries, failures;
};

/* Starts polling (the first query right away). on_result may be NULL. */
int tt_chrony_start(tt_chrony *c, uv_loop_t *loop, tt_clock *clock, const tt_chrony_config *cfg,
                    tt_chrony_result_cb on_result, merr *e);
/* Stops polling, kills a query in flight (by its PID), and calls closed_cb
 * (may be NULL) once every handle is closed. */
void tt_chrony_stop(tt_chrony *c, void (*closed_cb)(tt_chrony *c));

/* Parses the output of `chronyc -c tracking` (pure; exposed for tests and
 * fuzzing). MERR_PROTOCOL with a message on anything unexpected. */
int tt_chrony_parse_tracking(const char *csv, size_t n, tt_sample *out, merr *e);

/* ---- kernel source (adjtimex) ----
 * For hosts where chronyd (or ntpd) disciplines the kernel clock: the kernel
 * keeps its own error bound, maxerror, which it grows by 500 ppm a second on
 * its own and the daemon resets at each update. Reading it is one
 * unprivileged syscall, so no process and no socket; but it says nothing
 * under `chronyd -x`, which never touches the kernel clock (status UNKNOWN). */

struct timex;
/* Pure: a sample from adjtimex's answer (state = its return value). The
 * bound is maxerror; the reading time is the sample's reference time. */
int tt_kernel_sample(const struct timex *tx, int state, tt_sample *out, merr *e);

typedef struct tt_kernel {
    tt_clock *clock;
    uv_timer_t timer;
    uint64_t reads;
    void (*closed_cb)(struct tt_kernel *k);
    void *data;
} tt_kernel;

/* Reads adjtimex now and then every interval_ns, feeding the clock. */
int tt_kernel_start(tt_kernel *k, uv_loop_t *loop, tt_clock *clock, int64_t interval_ns, merr *e);
void tt_kernel_stop(tt_kernel *k, void (*closed_cb)(tt_kernel *k));

#endif
