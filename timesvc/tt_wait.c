/* Commit-wait on a libuv loop (see tt_uv.h): a timer armed for the gap between
 * t and the clock's earliest bound, re-armed until tt_after(t) holds. */
#include "timesvc/tt_uv.h"

#include <string.h>

static void wait_fire(uv_timer_t *t);

/* Milliseconds until `earliest` may pass `t`, rounded up: a timer that fires
 * early only costs a re-arm, one that fires late costs latency. */
static uint64_t gap_ms(int64_t t_ns, int64_t earliest_ns)
{
    int64_t gap = t_ns - earliest_ns + 1;
    if (gap <= 0) return 0;
    return (uint64_t)((gap + 999999) / 1000000);
}

int tt_waiter_init(uv_loop_t *loop, tt_clock *c, tt_waiter *w, merr *e)
{
    memset(w, 0, sizeof(*w));
    w->clock = c;
    int rc = uv_timer_init(loop, &w->timer);
    if (rc) return merr_set(e, MERR_INTERNAL, "uv_timer_init: %s", uv_strerror(rc));
    w->timer.data = w;
    return 0;
}

int tt_wait_after(tt_waiter *w, int64_t t_ns, tt_wait_cb cb, merr *e)
{
    if (w->active) return merr_set(e, MERR_BUSY, "commit-wait: waiter already waiting");
    w->t_ns = t_ns;
    w->cb = cb;
    w->active = 1;
    w->rearms = 0;
    merr_clear(&w->err);
    /* First check on the next loop turn, so cb never runs inside this call. */
    tt_interval iv;
    uint64_t ms = 0;
    if (tt_now(w->clock, &iv, NULL) == 0) ms = gap_ms(t_ns, iv.earliest_ns);
    int rc = uv_timer_start(&w->timer, wait_fire, ms, 0);
    if (rc) {
        w->active = 0;
        return merr_set(e, MERR_INTERNAL, "uv_timer_start: %s", uv_strerror(rc));
    }
    return 0;
}

static void finish(tt_waiter *w, int status)
{
    uv_timer_stop(&w->timer);
    w->active = 0;
    tt_wait_cb cb = w->cb;
    w->cb = NULL;
    if (cb) cb(w, status);
}

static void wait_fire(uv_timer_t *t)
{
    tt_waiter *w = t->data;
    if (!w->active) return;
    tt_interval iv;
    int rc = tt_now(w->clock, &iv, &w->err);
    if (rc) {
        finish(w, rc);
        return;
    }
    if (iv.earliest_ns > w->t_ns) {
        finish(w, 0);
        return;
    }
    /* Not yet: ε is wider than when we armed, or the loop's timer ran ahead
     * of the clock. Wait for the new gap (at least 1 ms, never a spin). */
    w->rearms++;
    uint64_t ms = gap_ms(w->t_ns, iv.earliest_ns);
    uv_timer_start(&w->timer, wait_fire, ms ? ms : 1, 0);
}

void tt_wait_cancel(tt_waiter *w)
{
    if (!w->active) return;
    merr_set(&w->err, MERR_CANCELED, "commit-wait canceled");
    finish(w, MERR_CANCELED);
}

void tt_waiter_close(tt_waiter *w, uv_close_cb close_cb)
{
    tt_wait_cancel(w);
    uv_close((uv_handle_t *)&w->timer, close_cb);
}
