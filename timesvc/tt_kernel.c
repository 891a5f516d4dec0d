/* The kernel time source: the error bound the kernel keeps for a clock that a
 * time daemon disciplines, read with adjtimex(2) (see tt_uv.h). */
#include "timesvc/tt_uv.h"

#include <errno.h>
#include <string.h>
#include <sys/timex.h>

int tt_kernel_sample(const struct timex *tx, int state, tt_sample *out, merr *e)
{
    memset(out, 0, sizeof(*out));
    if (state < 0) return merr_set(e, MERR_UNAVAILABLE, "adjtimex: %s", strerror(errno));
    /* With STA_NANO the "usec" field holds nanoseconds. */
    int64_t sub = (int64_t)tx->time.tv_usec * ((tx->status & STA_NANO) ? 1 : 1000);
    out->ref_real_ns = (int64_t)tx->time.tv_sec * 1000000000 + sub;
    /* maxerror already contains the offset, the path to the reference and the
     * growth since the daemon's last update; it is all we need. */
    if (tx->maxerror < 0) return merr_set(e, MERR_PROTOCOL, "adjtimex: negative maxerror");
    out->root_dispersion_ns = (int64_t)tx->maxerror * 1000;
    out->update_interval_ns = 1000000000; /* read every second */
    out->stratum = 0;
    snprintf(out->ref_name, sizeof(out->ref_name), "kernel");
    out->synchronized = state != TIME_ERROR && !(tx->status & STA_UNSYNC);
    return 0;
}

static void kernel_read(tt_kernel *k)
{
    struct timex tx;
    memset(&tx, 0, sizeof(tx)); /* modes 0: read only, needs no privilege */
    int state = adjtimex(&tx);
    tt_sample s;
    merr e = {0};
    k->reads++;
    if (tt_kernel_sample(&tx, state, &s, &e)) {
        tt_clock_feed_failure(k->clock, merr_msg(&e));
        return;
    }
    tt_clock_feed(k->clock, &s);
    if (!s.synchronized)
        tt_clock_feed_failure(k->clock, "kernel clock not synchronised (no time daemon "
                                        "disciplines it; chronyd -x never does)");
}

static void on_timer(uv_timer_t *t)
{
    kernel_read(t->data);
}

int tt_kernel_start(tt_kernel *k, uv_loop_t *loop, tt_clock *clock, int64_t interval_ns, merr *e)
{
    memset(k, 0, sizeof(*k));
    if (interval_ns < 1000000)
        return merr_set(e, MERR_INVALID, "kernel source: interval must be >= 1ms");
    k->clock = clock;
    int rc = uv_timer_init(loop, &k->timer);
    if (rc) return merr_set(e, MERR_INTERNAL, "uv_timer_init: %s", uv_strerror(rc));
    k->timer.data = k;
    kernel_read(k); /* a first sample right away: no waiting for the timer */
    uv_timer_start(&k->timer, on_timer, (uint64_t)(interval_ns / 1000000),
                   (uint64_t)(interval_ns / 1000000));
    return 0;
}

static void kernel_closed(uv_handle_t *h)
{
    tt_kernel *k = h->data;
    if (k->closed_cb) k->closed_cb(k);
}

void tt_kernel_stop(tt_kernel *k, void (*closed_cb)(tt_kernel *k))
{
    k->closed_cb = closed_cb;
    uv_close((uv_handle_t *)&k->timer, kernel_closed);
}
