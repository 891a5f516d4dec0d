/* Commit-wait on a libuv loop (see tt_uv.h): a timerfd armed for the gap
 * between t and the clock's earliest bound, re-armed until tt_after(t) holds. */
#include "timesvc/tt_uv.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void wait_ready(uv_poll_t *p, int status, int events);

/* The wait until `earliest` may pass `t`, in the monotonic clock's
 * nanoseconds. The bound's lower edge advances a little slower than the
 * clock (by the drift allowance), so the gap is stretched by that much: a
 * timer that fires early costs a re-arm, one that fires late costs latency. */
static int64_t gap_ns(const tt_waiter *w, int64_t earliest_ns)
{
    int64_t gap = w->t_ns - earliest_ns + 1;
    if (gap <= 0) return 0;
    double stretch = (double)gap * w->clock->cfg.max_drift_ppm / 1e6;
    return gap + (int64_t)stretch + 1;
}

/* The poll is started once and left started: a one-shot timerfd that fired
 * or was disarmed is never readable, and stopping and restarting the poll for
 * every commit-wait cost two epoll_ctl calls per write. When idle the handle
 * is unref'd so it does not keep the loop alive by itself. */
static int arm(tt_waiter *w, int64_t ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (ns < 1) ns = 1; /* 0 would disarm: fire "right away" instead */
    its.it_value.tv_sec = ns / 1000000000;
    its.it_value.tv_nsec = ns % 1000000000;
    if (timerfd_settime(w->tfd, 0, &its, NULL)) return -errno;
    if (!w->polling) {
        int rc = uv_poll_start(&w->poll, UV_READABLE, wait_ready);
        if (rc) return rc;
        w->polling = 1;
    }
    uv_ref((uv_handle_t *)&w->poll);
    return 0;
}

/* expired: the timer just fired, so the kernel disarmed it already. */
static void disarm(tt_waiter *w, int expired)
{
    if (!expired) {
        struct itimerspec its;
        memset(&its, 0, sizeof(its));
        timerfd_settime(w->tfd, 0, &its, NULL);
    }
    uv_unref((uv_handle_t *)&w->poll);
}

int tt_waiter_init(uv_loop_t *loop, tt_clock *c, tt_waiter *w, merr *e)
{
    memset(w, 0, sizeof(*w));
    w->clock = c;
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->tfd < 0) {
        int err = errno;
        return merr_set(e, merr_from_errno(err), "timerfd_create: %s", strerror(err));
    }
    int rc = uv_poll_init(loop, &w->poll, w->tfd);
    if (rc) {
        close(w->tfd);
        w->tfd = -1;
        return merr_set(e, MERR_INTERNAL, "uv_poll_init: %s", uv_strerror(rc));
    }
    w->poll.data = w;
    return 0;
}

int tt_wait_after(tt_waiter *w, int64_t t_ns, tt_wait_cb cb, merr *e)
{
    if (w->active) return merr_set(e, MERR_BUSY, "commit-wait: waiter already waiting");
    w->t_ns = t_ns;
    w->cb = cb;
    w->rearms = 0;
    merr_clear(&w->err);
    /* The first check happens from the loop, so cb never runs inside here. */
    tt_interval iv;
    int64_t ns = 0;
    if (tt_now(w->clock, &iv, NULL) == 0) ns = gap_ns(w, iv.earliest_ns);
    int rc = arm(w, ns);
    if (rc) return merr_set(e, MERR_INTERNAL, "commit-wait: arm timer: %s", uv_strerror(rc));
    w->active = 1;
    return 0;
}

static void finish(tt_waiter *w, int status, int expired)
{
    disarm(w, expired);
    w->active = 0;
    tt_wait_cb cb = w->cb;
    w->cb = NULL;
    if (cb) cb(w, status);
}

static void wait_ready(uv_poll_t *p, int status, int events)
{
    (void)events;
    tt_waiter *w = p->data;
    uint64_t expirations;
    ssize_t n = read(w->tfd, &expirations, sizeof(expirations)); /* clear readiness */
    (void)n;
    if (!w->active) return;
    if (status < 0) {
        merr_set(&w->err, MERR_INTERNAL, "commit-wait: timer: %s", uv_strerror(status));
        finish(w, MERR_INTERNAL, 0);
        return;
    }
    tt_interval iv;
    int rc = tt_now(w->clock, &iv, &w->err);
    if (rc) {
        finish(w, rc, 1);
        return;
    }
    if (iv.earliest_ns > w->t_ns) {
        finish(w, 0, 1);
        return;
    }
    /* Not yet: ε grew since we armed, or the timer ran ahead of the clock. */
    w->rearms++;
    if (arm(w, gap_ns(w, iv.earliest_ns))) {
        merr_set(&w->err, MERR_INTERNAL, "commit-wait: cannot re-arm timer");
        finish(w, MERR_INTERNAL, 0);
    }
}

void tt_wait_cancel(tt_waiter *w)
{
    if (!w->active) return;
    merr_set(&w->err, MERR_CANCELED, "commit-wait canceled");
    finish(w, MERR_CANCELED, 0);
}

static void waiter_closed(uv_handle_t *h)
{
    tt_waiter *w = h->data;
    close(w->tfd);
    w->tfd = -1;
    if (w->closed_cb) w->closed_cb(w);
}

void tt_waiter_close(tt_waiter *w, void (*closed_cb)(tt_waiter *w))
{
    tt_wait_cancel(w);
    w->closed_cb = closed_cb;
    uv_close((uv_handle_t *)&w->poll, waiter_closed);
}
