/* The HLC keeper: renews the high-water mark on libuv's thread pool so the
 * event loop never waits on its fsync (see hlc_uv.h). */
#include "timesvc/hlc_uv.h"

#include "common/log.h"

#include <string.h>

static void keeper_check(hlc_keeper *k);

static void keeper_released(hlc_keeper *k)
{
    if (--k->pending == 0 && k->closed_cb) k->closed_cb(k);
}

/* On a pool thread: only the store is touched, never the hlc itself. */
static void save_work(uv_work_t *w)
{
    hlc_keeper *k = w->data;
    merr_clear(&k->err);
    k->rc = k->h->store.save(k->h->store.ctx, k->target, &k->err);
}

static void save_done(uv_work_t *w, int status)
{
    hlc_keeper *k = w->data;
    k->busy = 0;
    if (status == 0 && k->rc == 0) {
        hlc_renewed(k->h, k->target);
        k->renewals++;
    } else if (status != UV_ECANCELED) {
        k->failures++;
        MLOG_E("hlc", "renewing the high-water mark failed", "err=\"%s\"",
               status ? uv_strerror(status) : merr_msg(&k->err));
    }
    if (k->stopping) {
        keeper_released(k); /* may free k: touch nothing after */
        return;
    }
    k->pending--;
    keeper_check(k); /* the clock may have moved on while we saved */
}

static void keeper_check(hlc_keeper *k)
{
    if (k->busy || k->stopping) return;
    tt_interval iv;
    tt_read(k->clock, &iv, NULL);
    hlc_ts target = hlc_renew_target(k->h, iv.now_ns);
    if (!target) return;
    k->target = target;
    k->busy = 1;
    k->work.data = k;
    int rc = uv_queue_work(k->loop, &k->work, save_work, save_done);
    if (rc) {
        k->busy = 0;
        k->failures++;
        MLOG_E("hlc", "cannot queue high-water mark renewal", "err=\"%s\"", uv_strerror(rc));
        return;
    }
    k->pending++;
}

static void on_timer(uv_timer_t *t)
{
    keeper_check(t->data);
}

int hlc_keeper_start(hlc_keeper *k, uv_loop_t *loop, hlc *h, tt_clock *clock, merr *e)
{
    memset(k, 0, sizeof(*k));
    if (!h->store.save) return merr_set(e, MERR_INVALID, "hlc keeper: the clock has no store");
    k->loop = loop;
    k->h = h;
    k->clock = clock;
    int rc = uv_timer_init(loop, &k->timer);
    if (rc) return merr_set(e, MERR_INTERNAL, "uv_timer_init: %s", uv_strerror(rc));
    k->timer.data = k;
    k->pending = 1;
    uint64_t period = (uint64_t)(h->cfg.window_ns / 4 / 1000000);
    uv_timer_start(&k->timer, on_timer, 0, period ? period : 1);
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    keeper_released(h->data);
}

void hlc_keeper_stop(hlc_keeper *k, void (*closed_cb)(hlc_keeper *k))
{
    if (k->stopping) return;
    k->stopping = 1;
    k->closed_cb = closed_cb;
    /* A queued save that has not started yet can be dropped; save_done still
     * runs (with UV_ECANCELED) and releases it. One already running finishes. */
    if (k->busy) uv_cancel((uv_req_t *)&k->work);
    uv_close((uv_handle_t *)&k->timer, timer_closed);
}
