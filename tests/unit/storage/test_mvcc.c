/* MVCC reads and writes of one range: visibility at every timestamp boundary,
 * tombstones, forward/reverse scans with limits, span and timestamp checks,
 * exactly-once apply, stats, and a randomized check against a simple model. */
#include "th.h"

static th_dir dir;

static int setup(void **state)
{
    th_mkdir(&dir);
    return 0;
}

static int teardown(void **state)
{
    th_rmdir(&dir);
    return 0;
}

static void test_visibility_boundaries(void **state)
{
    range *r = th_create(&dir, "vis.db", 1, "", "");
    th_put(r, "k", "v10", 10);
    th_put(r, "k", "v20", 20);
    th_put(r, "k", NULL, 30); /* tombstone */
    th_put(r, "k", "v40", 40);
    assert_null(th_get(r, "k", 9));
    assert_string_equal(th_get(r, "k", 10), "v10");
    assert_string_equal(th_get(r, "k", 11), "v10");
    assert_string_equal(th_get(r, "k", 19), "v10");
    assert_string_equal(th_get(r, "k", 20), "v20");
    assert_string_equal(th_get(r, "k", 29), "v20");
    assert_null(th_get(r, "k", 30));
    assert_null(th_get(r, "k", 39));
    assert_string_equal(th_get(r, "k", 40), "v40");
    assert_string_equal(th_get(r, "k", RANGE_TS_MAX), "v40");
    /* Latest read returns its timestamp (locking reads). */
    uint8_t *v = NULL;
    size_t n = 0;
    uint64_t ts = 0;
    assert_int_equal(range_get(r, (const uint8_t *)"k", 1, RANGE_TS_MAX, &v, &n, &ts), 0);
    assert_int_equal(ts, 40);
    free(v);
    assert_null(th_get(r, "other", RANGE_TS_MAX));
    /* Empty values are values, not tombstones. */
    th_put(r, "e", "", 50);
    assert_string_equal(th_get(r, "e", 50), "");
    range_stats st = th_stats(r);
    assert_int_equal(st.versions, 5);
    assert_int_equal(st.live_keys, 2);
    assert_int_equal(st.live_bytes, 1 + 3 + 1);
    assert_int_equal(st.total_bytes, (1 + 3 + 8) * 3 + (1 + 8) + (1 + 8));
    range_close(r);
}

static void test_scans(void **state)
{
    range *r = th_create(&dir, "scan.db", 2, "", "");
    th_put(r, "a", "a1", 10);
    th_put(r, "b", "b1", 10);
    th_put(r, "c", "c1", 10);
    th_put(r, "d", "d1", 10);
    th_put(r, "b", NULL, 20);
    th_put(r, "c", "c2", 20);
    th_put(r, "e", "e3", 30);
    th_scan o;
    assert_string_equal(th_scan_str(r, "", "", 10, 0, 0, &o), "a=a1,b=b1,c=c1,d=d1");
    assert_string_equal(th_scan_str(r, "", "", 20, 0, 0, &o), "a=a1,c=c2,d=d1");
    assert_string_equal(th_scan_str(r, "", "", 25, 0, 1, &o), "d=d1,c=c2,a=a1");
    assert_string_equal(th_scan_str(r, "", "", 30, 0, 1, &o), "e=e3,d=d1,c=c2,a=a1");
    assert_string_equal(th_scan_str(r, "", "", 19, 0, 1, &o), "d=d1,c=c1,b=b1,a=a1");
    assert_string_equal(th_scan_str(r, "b", "d", 30, 0, 0, &o), "c=c2");
    assert_string_equal(th_scan_str(r, "b", "e", 30, 0, 1, &o), "d=d1,c=c2");
    assert_string_equal(th_scan_str(r, "", "", 30, 2, 0, &o), "a=a1,c=c2");
    assert_string_equal(th_scan_str(r, "", "", 30, 2, 1, &o), "e=e3,d=d1");
    assert_string_equal(th_scan_str(r, "", "", 30, 1, 1, &o), "e=e3");
    assert_string_equal(th_scan_str(r, "", "", 9, 0, 0, &o), "");
    assert_string_equal(th_scan_str(r, "c", "c", 30, 0, 0, &o), "");
    assert_string_equal(th_scan_str(r, "c", "c\x01", 30, 0, 1, &o), "c=c2");
    range_close(r);
}

static void test_span_and_ts_checks(void **state)
{
    range *r = th_create(&dir, "span.db", 3, "b", "m");
    th_put(r, "b", "1", 5);
    th_put(r, "lzz", "2", 5);
    range_write w = th_w("m", "x");
    range_batch b = {.ts = 6, .writes = &w, .nwrites = 1};
    assert_int_equal(range_apply(r, &b, 100, NULL), MERR_RANGE);
    w = th_w("a", "x");
    assert_int_equal(range_apply(r, &b, 100, NULL), MERR_RANGE);
    w = th_w("c", "x");
    b.ts = 0;
    assert_int_equal(range_apply(r, &b, 100, NULL), MERR_INVALID);
    b.ts = RANGE_TS_MAX;
    assert_int_equal(range_apply(r, &b, 100, NULL), MERR_INVALID);
    /* Nothing of a refused batch is applied, the slot included. */
    range_meta m;
    range_get_meta(r, &m);
    assert_int_equal(m.applied, 2);
    uint8_t *v;
    size_t n;
    assert_int_equal(range_get(r, (const uint8_t *)"z", 1, 10, &v, &n, NULL), MERR_RANGE);
    assert_int_equal(range_get(r, (const uint8_t *)"b", 1, 0, &v, &n, NULL), MERR_INVALID);
    /* Scans clip to the span. */
    th_scan o;
    assert_string_equal(th_scan_str(r, "", "", 10, 0, 0, &o), "b=1,lzz=2");
    assert_string_equal(th_scan_str(r, "a", "zz", 10, 0, 1, &o), "lzz=2,b=1");
    range_close(r);
}

static void test_exactly_once(void **state)
{
    range *r = th_create(&dir, "once.db", 4, "", "");
    range_write w = th_w("k", "v1");
    range_batch b = {.ts = 10, .writes = &w, .nwrites = 1};
    int skipped = -1;
    assert_int_equal(range_apply(r, &b, 7, &skipped), 0);
    assert_int_equal(skipped, 0);
    w = th_w("k", "v2");
    b.ts = 20;
    assert_int_equal(range_apply(r, &b, 7, &skipped), 0);
    assert_int_equal(skipped, 1);
    assert_int_equal(range_apply(r, &b, 3, &skipped), 0);
    assert_int_equal(skipped, 1);
    assert_string_equal(th_get(r, "k", RANGE_TS_MAX), "v1");
    r = th_reopen(r);
    range_meta m;
    range_get_meta(r, &m);
    assert_int_equal(m.applied, 7);
    assert_int_equal(range_apply(r, &b, 7, &skipped), 0);
    assert_int_equal(skipped, 1);
    assert_int_equal(m.stats.versions, 1);
    /* An empty batch still advances the slot (no-op log entries). */
    range_batch empty = {0};
    assert_int_equal(range_apply(r, &empty, 9, &skipped), 0);
    range_get_meta(r, &m);
    assert_int_equal(m.applied, 9);
    uint64_t durable = 0;
    assert_int_equal(range_sync(r, &durable), 0);
    assert_int_equal(durable, 9);
    range_close(r);
}

/* range_apply_many: one transaction for several slots; skips what was
 * applied; all or nothing when one batch is bad. */
static void test_apply_many(void **state)
{
    (void)state;
    range *r = th_create(&dir, "many.db", 5, "a", "m");
    range_write w[4] = {th_w("b", "1"), th_w("c", "2"), th_w("d", "3"), th_w("e", NULL)};
    range_batch b[4] = {{.ts = 10, .writes = &w[0], .nwrites = 1},
                        {.ts = 11, .writes = &w[1], .nwrites = 1},
                        {.ts = 12, .writes = &w[2], .nwrites = 1},
                        {.ts = 13, .writes = &w[3], .nwrites = 1}};
    assert_int_equal(range_apply(r, &b[0], 0x101, NULL), 0);
    uint64_t slots[4] = {0x101, 0x102, 0x201, 0x202};
    size_t n = 99;
    assert_int_equal(range_apply_many(r, b, slots, 4, &n), 0);
    assert_int_equal(n, 3); /* 0x101 was applied before */
    range_meta m;
    range_get_meta(r, &m);
    assert_int_equal(m.applied, 0x202);
    assert_int_equal(m.stats.versions, 4);
    assert_string_equal(th_get(r, "d", RANGE_TS_MAX), "3");
    /* Again: everything skipped, nothing changes. */
    assert_int_equal(range_apply_many(r, b, slots, 4, &n), 0);
    assert_int_equal(n, 0);
    /* A bad batch (key outside [a, m)) fails the whole call. */
    range_write good = th_w("f", "4"), bad = th_w("z", "5");
    range_batch b2[2] = {{.ts = 20, .writes = &good, .nwrites = 1},
                         {.ts = 21, .writes = &bad, .nwrites = 1}};
    uint64_t slots2[2] = {0x301, 0x302};
    assert_int_equal(range_apply_many(r, b2, slots2, 2, &n), MERR_RANGE);
    assert_null(th_get(r, "f", RANGE_TS_MAX));
    r = th_reopen(r);
    range_get_meta(r, &m);
    assert_int_equal(m.applied, 0x202);
    assert_int_equal(m.stats.versions, 4);
    assert_string_equal(th_get(r, "c", RANGE_TS_MAX), "2");
    range_close(r);
}

/* Model: up to 12 keys x 64 timestamps; cell = -1 absent, -2 tombstone, else value id. */
#define MK 12
#define MT 64
static int model[MK][MT];

static void model_stats(range_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (int k = 0; k < MK; k++) {
        int newest = -1;
        for (int t = 0; t < MT; t++) {
            if (model[k][t] == -1) continue;
            st->versions++;
            st->total_bytes += 4 + 8 + (model[k][t] >= 0 ? 6 : 0);
            newest = t;
        }
        if (newest >= 0 && model[k][newest] >= 0) {
            st->live_keys++;
            st->live_bytes += 4 + 6;
        }
    }
}

static void test_random_against_model(void **state)
{
    range *r = th_create(&dir, "model.db", 5, "", "");
    memset(model, 0xff, sizeof(model));
    unsigned seed = 12345;
    char key[16], val[16];
    for (int i = 0; i < 600; i++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % MK), t = 1 + (int)((seed >> 16) % (MT - 1));
        int del = (seed >> 28) % 4 == 0;
        int vid = (int)((seed >> 4) % 100000);
        snprintf(key, sizeof(key), "k%03d", k);
        snprintf(val, sizeof(val), "v%05d", vid);
        th_put(r, key, del ? NULL : val, (uint64_t)t);
        model[k][t] = del ? -2 : vid;
        if (i % 50 == 49) {
            range_stats want, got = th_stats(r);
            model_stats(&want);
            assert_int_equal(got.versions, want.versions);
            assert_int_equal(got.total_bytes, want.total_bytes);
            assert_int_equal(got.live_keys, want.live_keys);
            assert_int_equal(got.live_bytes, want.live_bytes);
        }
    }
    r = th_reopen(r);
    for (int t = 1; t < MT + 2; t++) {
        char expect[4096] = "", rev[4096] = "";
        for (int k = 0; k < MK; k++) {
            int best = -1;
            for (int u = 1; u <= t && u < MT; u++)
                if (model[k][u] != -1) best = model[k][u];
            snprintf(key, sizeof(key), "k%03d", k);
            const char *got = th_get(r, key, (uint64_t)t);
            if (best < 0) {
                assert_null(got);
                continue;
            }
            snprintf(val, sizeof(val), "v%05d", best);
            assert_non_null(got);
            assert_string_equal(got, val);
            size_t n = strlen(expect);
            snprintf(expect + n, sizeof(expect) - n, "%s%s=%s", n ? "," : "", key, val);
            char tmp[4200];
            snprintf(tmp, sizeof(tmp), "%s=%s%s%s", key, val, rev[0] ? "," : "", rev);
            memcpy(rev, tmp, sizeof(rev) - 1);
            rev[sizeof(rev) - 1] = 0;
        }
        th_scan o;
        assert_string_equal(th_scan_str(r, "", "", (uint64_t)t, 0, 0, &o), expect);
        assert_string_equal(th_scan_str(r, "", "", (uint64_t)t, 0, 1, &o), rev);
    }
    range_close(r);
}

static int stop_after_one(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                          uint64_t ts)
{
    (*(int *)arg)++;
    return 1;
}

static void test_stop_callback(void **state)
{
    range *r = th_create(&dir, "stop.db", 6, "", "");
    th_put(r, "a", "1", 1);
    th_put(r, "b", "2", 1);
    th_put(r, "c", "3", 1);
    size_t n = 0;
    int calls = 0;
    assert_int_equal(range_scan(r, NULL, 0, NULL, 0, 5, 0, 1, stop_after_one, &calls, &n), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(n, 1);
    range_close(r);
}

/* Timestamps across 2^63 (where a raw signed INTEGER would flip order) stay
 * ordered in reads, scans, stats and GC. */
static void test_timestamps_across_sign_bit(void **state)
{
    range *r = th_create(&dir, "bigts.db", 8, "", "");
    const uint64_t h = (uint64_t)1 << 63;
    th_put(r, "k", "low", h - 2);
    th_put(r, "k", "mid", h);
    th_put(r, "k", "high", UINT64_MAX - 1);
    th_put(r, "j", "j", h + 5);
    assert_null(th_get(r, "k", h - 3));
    assert_string_equal(th_get(r, "k", h - 1), "low");
    assert_string_equal(th_get(r, "k", h), "mid");
    assert_string_equal(th_get(r, "k", h + 1), "mid");
    assert_string_equal(th_get(r, "k", UINT64_MAX - 2), "mid");
    assert_string_equal(th_get(r, "k", UINT64_MAX - 1), "high");
    uint8_t *v = NULL;
    size_t n = 0;
    uint64_t ts = 0;
    assert_int_equal(range_get(r, (const uint8_t *)"k", 1, RANGE_TS_MAX, &v, &n, &ts), 0);
    assert_int_equal(ts, UINT64_MAX - 1);
    free(v);
    th_scan o;
    assert_string_equal(th_scan_str(r, "", "", h + 4, 0, 0, &o), "k=mid");
    assert_string_equal(th_scan_str(r, "", "", h + 5, 0, 1, &o), "k=mid,j=j");
    size_t dropped = 0;
    assert_int_equal(range_gc(r, h + 1, 0, &dropped), 0);
    assert_int_equal(dropped, 1); /* "low" */
    assert_string_equal(th_get(r, "k", h + 1), "mid");
    assert_int_equal(th_stats(r).versions, 3);
    range_close(r);
}

/* A hot key with a long history between quiet keys: scans must pick the
 * right version at every t whether the walk steps or seeks past it. */
static void test_hot_key_scans(void **state)
{
    range *r = th_create(&dir, "hot.db", 7, "", "");
    th_put(r, "a", "a5", 5);
    th_put(r, "c", "c5", 5);
    char v[16];
    for (uint64_t ts = 10; ts < 410; ts += 2) {
        snprintf(v, sizeof(v), "%s%llu", ts % 6 == 0 ? "" : "b", (unsigned long long)ts);
        th_put(r, "b", ts % 10 == 4 ? NULL : v, ts);
    }
    th_scan o;
    for (uint64_t t = 5; t < 420; t += 7) {
        /* Expected newest b <= t. */
        char want[64] = "", rwant[64] = "", bv[16] = "";
        uint64_t bt = t >= 410 ? 408 : (t % 2 ? t - 1 : t);
        if (bt >= 10 && bt % 10 != 4)
            snprintf(bv, sizeof(bv), "%s%llu", bt % 6 == 0 ? "" : "b", (unsigned long long)bt);
        snprintf(want, sizeof(want), "a=a5%s%s%s,c=c5", bv[0] ? ",b=" : "", bv, "");
        snprintf(rwant, sizeof(rwant), "c=c5%s%s,a=a5", bv[0] ? ",b=" : "", bv);
        assert_string_equal(th_scan_str(r, "", "", t, 0, 0, &o), want);
        assert_string_equal(th_scan_str(r, "", "", t, 0, 1, &o), rwant);
        /* Limits stop right after the hot key too. */
        th_scan_str(r, "", "", t, 2, 0, &o);
        assert_int_equal(strncmp(o.s, want, strlen(o.s)), 0);
        th_scan_str(r, "b", "c", t, 0, 1, &o);
        char only[32];
        snprintf(only, sizeof(only), "%s%s", bv[0] ? "b=" : "", bv);
        assert_string_equal(o.s, only);
    }
    range_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_visibility_boundaries),
        cmocka_unit_test(test_scans),
        cmocka_unit_test(test_span_and_ts_checks),
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_apply_many),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_stop_callback),
        cmocka_unit_test(test_hot_key_scans),
        cmocka_unit_test(test_timestamps_across_sign_bit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
