/* Keeps an HLC's fsync off the event loop.
 *
 * hlc_now() must never hand out a timestamp at or above the durable
 * high-water mark, and storing a mark costs an fsync (~10 ms on a plain disk).
 * The keeper renews the mark ahead of time on libuv's thread pool — whenever
 * the clock comes within half a window of it — so in steady state hlc_now()
 * finds the mark already far enough ahead and never blocks. If a renewal is
 * late (a very slow disk), hlc_now() still stores the mark itself: correctness
 * never depends on the keeper, only latency does. */
#ifndef MERIDIAN_TIMESVC_HLC_UV_H
#define MERIDIAN_TIMESVC_HLC_UV_H

#include "timesvc/hlc.h"
#include "timesvc/tt.h"

#include <uv.h>

typedef struct hlc_keeper {
    uv_loop_t *loop;
    hlc *h;
    tt_clock *clock; /* the wall clock the HLC is fed from */
    uv_timer_t timer;
    uv_work_t work;
    int busy; /* a save is running on the thread pool */
    int stopping;
    int pending;   /* the timer handle and a running save */
    hlc_ts target; /* the mark being saved */
    int rc;        /* its result */
    merr err;
    uint64_t renewals, failures;
    void (*closed_cb)(struct hlc_keeper *k);
    void *data;
} hlc_keeper;

/* Checks every window/4, and right away. The HLC must have a store. */
int hlc_keeper_start(hlc_keeper *k, uv_loop_t *loop, hlc *h, tt_clock *clock, merr *e);
/* Stops; closed_cb (may be NULL) runs once the timer is closed and any save
 * in flight has finished (a save cannot be abandoned half way). */
void hlc_keeper_stop(hlc_keeper *k, void (*closed_cb)(hlc_keeper *k));

#endif
