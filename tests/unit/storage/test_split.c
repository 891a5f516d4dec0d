/* Split and merge: every key on exactly one side, stats adding up, spans and
 * generations, prepared-txn records following their keys, slot replay, split
 * key choice by size and by load, and a sweep that fails the split at every
 * write (fault VFS) and checks that reopening leaves it all-or-nothing. */
#include "th.h"

#include <sqlite3.h>

static th_dir dir;

static int setup(void **state)
{
    th_mkdir(&dir);
    assert_int_equal(range_faultvfs_register(), 0);
    return 0;
}

static int teardown(void **state)
{
    th_rmdir(&dir);
    return 0;
}

static void fill(range *r, int n)
{
    char k[16], v[64];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        snprintf(v, sizeof(v), "value-%d-%0*d", i, 1 + i % 40, 7);
        th_put(r, k, v, 10);
        if (i % 3 == 0) th_put(r, k, NULL, 20);
        if (i % 5 == 0) th_put(r, k, "again", 30);
    }
}

static int count_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    uint64_t ts)
{
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_live(range *r)
{
    size_t n = 0;
    assert_int_equal(range_scan(r, NULL, 0, NULL, 0, RANGE_TS_MAX, 0, 0, count_cb, &n, NULL), 0);
    return n;
}

static range *open_path(const char *p)
{
    range *r = NULL;
    merr e = {0};
    int rc = range_open(p, NULL, &r, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(rc, 0);
    return r;
}

static void test_split_and_merge(void **state)
{
    range *l = th_create(&dir, "l.db", 1, "", "");
    fill(l, 200);
    range_stats before = th_stats(l);
    size_t live = count_live(l);
    range_meta m;
    range_get_meta(l, &m);
    uint64_t slot = m.applied + 1;
    char rp[300];
    th_file(&dir, "r.db", rp, sizeof(rp));
    assert_int_equal(range_split(l, (const uint8_t *)"k0100", 5, 2, rp, slot), 0);
    /* Replaying the split slot is a no-op. */
    assert_int_equal(range_split(l, (const uint8_t *)"k0100", 5, 2, rp, slot), 0);
    range *r = open_path(rp);
    range_meta lm, rm;
    range_get_meta(l, &lm);
    range_get_meta(r, &rm);
    assert_int_equal(lm.generation, 2);
    assert_int_equal(rm.generation, 2);
    assert_int_equal(rm.range_id, 2);
    assert_int_equal(lm.applied, slot);
    assert_int_equal(rm.applied, slot);
    assert_memory_equal(lm.end, "k0100", 5);
    assert_int_equal(rm.start_len, 5);
    assert_memory_equal(rm.start, "k0100", 5);
    assert_int_equal(rm.end_len, 0);
    assert_int_equal(lm.stats.versions + rm.stats.versions, before.versions);
    assert_int_equal(lm.stats.total_bytes + rm.stats.total_bytes, before.total_bytes);
    assert_int_equal(lm.stats.live_keys + rm.stats.live_keys, before.live_keys);
    assert_int_equal(lm.stats.live_bytes + rm.stats.live_bytes, before.live_bytes);
    assert_int_equal(count_live(l) + count_live(r), live);
    /* Each key on exactly one side, with its whole history. */
    char k[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        range *own = i < 100 ? l : r, *other = i < 100 ? r : l;
        uint8_t *v;
        size_t n;
        assert_int_equal(range_get(other, (const uint8_t *)k, 5, 15, &v, &n, NULL), MERR_RANGE);
        assert_non_null(th_get(own, k, 15));
        if (i % 3 == 0 && i % 5 != 0) assert_null(th_get(own, k, RANGE_TS_MAX));
    }
    /* Reopen both: the split is durable and recovery finds nothing to do. */
    l = th_reopen(l);
    r = th_reopen(r);
    range_get_meta(l, &lm);
    assert_int_equal(lm.end_len, 5);
    /* Writes after the split land on the right side only. */
    th_put(r, "k0150", "new", 40);
    assert_string_equal(th_get(r, "k0150", 40), "new");

    /* Merge back. */
    range_get_meta(l, &lm);
    range_get_meta(r, &rm);
    range_stats sum = lm.stats;
    sum.versions += rm.stats.versions;
    sum.total_bytes += rm.stats.total_bytes;
    sum.live_keys += rm.stats.live_keys;
    sum.live_bytes += rm.stats.live_bytes;
    assert_int_equal(range_merge(l, r, lm.applied + 1), 0);
    assert_int_equal(access(rp, F_OK), -1);
    range_get_meta(l, &lm);
    assert_int_equal(lm.end_len, 0);
    assert_int_equal(lm.generation, 3); /* max(2, 2) + 1 */
    assert_int_equal(lm.stats.versions, sum.versions);
    assert_int_equal(lm.stats.total_bytes, sum.total_bytes);
    assert_int_equal(lm.stats.live_keys, sum.live_keys);
    assert_int_equal(lm.stats.live_bytes, sum.live_bytes);
    assert_string_equal(th_get(l, "k0150", RANGE_TS_MAX), "new");
    assert_string_equal(th_get(l, "k0150", 35), "again");
    assert_int_equal(count_live(l), live);
    l = th_reopen(l);
    assert_int_equal(count_live(l), live);
    range_close(l);
}

static void test_split_rejects(void **state)
{
    range *l = th_create(&dir, "rej.db", 1, "b", "y");
    th_put(l, "c", "1", 5);
    char rp[300];
    th_file(&dir, "rej-r.db", rp, sizeof(rp));
    assert_int_equal(range_split(l, (const uint8_t *)"b", 1, 2, rp, 9), MERR_RANGE);
    assert_int_equal(range_split(l, (const uint8_t *)"y", 1, 2, rp, 9), MERR_RANGE);
    assert_int_equal(range_split(l, (const uint8_t *)"z", 1, 2, rp, 9), MERR_RANGE);
    assert_int_equal(range_split(l, (const uint8_t *)"c", 1, 1, rp, 9), MERR_INVALID);
    assert_int_equal(access(rp, F_OK), -1);
    range *x = th_create(&dir, "rej-x.db", 3, "z", "");
    assert_int_equal(range_merge(l, x, 10), MERR_INVALID); /* not adjacent; x is consumed */
    char xp[300];
    th_file(&dir, "rej-x.db", xp, sizeof(xp));
    assert_int_equal(access(xp, F_OK), 0); /* but not deleted */
    range_close(l);
}

/* The freeze mark (before a merge): durable, set once, moves the applied
 * counter with it, and not carried into the left range by the merge. */
static void test_freeze_mark(void **state)
{
    (void)state;
    range *r = th_create(&dir, "frz.db", 2, "m", "");
    range *l = th_create(&dir, "frz-l.db", 1, "a", "m");
    th_put(r, "n", "1", 5);
    uint64_t at = 99;
    assert_int_equal(range_frozen_at(r, &at), 0);
    assert_int_equal(at, 0); /* a store that never froze (no table yet) */
    range_meta m;
    range_get_meta(r, &m);
    uint64_t slot = m.applied + 1;
    assert_int_equal(range_freeze(r, slot), 0);
    assert_int_equal(range_freeze(r, slot + 1), 0); /* the first slot stands */
    r = th_reopen(r);
    assert_int_equal(range_frozen_at(r, &at), 0);
    assert_int_equal(at, slot);
    range_get_meta(r, &m);
    assert_int_equal(m.applied, slot + 1);
    assert_int_equal(range_freeze(r, slot), 0); /* a replayed slot is a no-op */
    range_meta lm;
    range_get_meta(l, &lm);
    assert_int_equal(range_merge(l, r, lm.applied + 1), 0);
    assert_int_equal(range_frozen_at(l, &at), 0);
    assert_int_equal(at, 0);
    assert_string_equal(th_get(l, "n", RANGE_TS_MAX), "1");
    range_close(l);
}

static int intent_cb(void *arg, const range_intent *it)
{
    char *out = arg;
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, 512 - n, "%.*s@%llu:", (int)it->txn_len, (const char *)it->txn,
                          (unsigned long long)it->prepare_ts);
    for (size_t i = 0; i < it->nwrites; i++)
        n += (size_t)snprintf(out + n, 512 - n, "%s%.*s", it->writes[i].del ? "-" : "+",
                              (int)it->writes[i].klen, (const char *)it->writes[i].key);
    for (size_t i = 0; i < it->nspans; i++)
        n += (size_t)snprintf(out + n, 512 - n, "[%.*s,%.*s)", (int)it->spans[i].klen,
                              (const char *)it->spans[i].key, (int)it->spans[i].elen,
                              (const char *)it->spans[i].end);
    snprintf(out + n, 512 - n, ";");
    return 0;
}

static const char *intents(range *r)
{
    static char out[512];
    out[0] = 0;
    assert_int_equal(range_list_intents(r, intent_cb, out, NULL), 0);
    return out;
}

static void test_split_moves_intents(void **state)
{
    range *l = th_create(&dir, "il.db", 1, "", "");
    range_write w[2] = {th_w("a", "1"), th_w("p", "2")};
    range_span sp = {(const uint8_t *)"f", 1, (const uint8_t *)"r", 1};
    range_intent it = {(const uint8_t *)"t1", 2, 50, (const uint8_t *)"c", 1, w, 2, &sp, 1};
    range_batch b = {.prepares = &it, .nprepares = 1};
    assert_int_equal(range_apply(l, &b, 1, NULL), 0);
    char rp[300];
    th_file(&dir, "ir.db", rp, sizeof(rp));
    assert_int_equal(range_split(l, (const uint8_t *)"m", 1, 2, rp, 2), 0);
    range *r = open_path(rp);
    assert_string_equal(intents(l), "t1@50:+a[f,r);");
    assert_string_equal(intents(r), "t1@50:+p[f,r);");
    /* Merge back before the decision: one txn again, items renumbered (the
     * span that crossed the split key was held on both sides). */
    char l2p[300], r2p[300];
    th_file(&dir, "il2.db", l2p, sizeof(l2p));
    th_file(&dir, "ir2.db", r2p, sizeof(r2p));
    {
        /* Work on copies made by snapshot so the originals go on below. */
        range *lc = NULL, *rc2 = NULL;
        merr e = {0};
        range_snap *sn = NULL;
        range_install *in = NULL;
        const uint8_t *c;
        size_t n;
        for (int side = 0; side < 2; side++) {
            assert_int_equal(range_snap_open(side ? r : l, 0, &sn, &e), 0);
            assert_int_equal(range_install_begin(side ? r2p : l2p, NULL, &in, &e), 0);
            do {
                assert_int_equal(range_snap_next(sn, &c, &n, &e), 0);
                if (n) assert_int_equal(range_install_chunk(in, c, n, &e), 0);
            } while (n);
            range_snap_close(sn);
            assert_int_equal(range_install_finish(in, &e), 0);
        }
        assert_int_equal(range_open(l2p, NULL, &lc, &e), 0);
        assert_int_equal(range_open(r2p, NULL, &rc2, &e), 0);
        assert_int_equal(range_merge(lc, rc2, 3), 0);
        assert_string_equal(intents(lc), "t1@50:+a+p[f,r)[f,r);");
        range_resolve res = {(const uint8_t *)"t1", 2, 60};
        range_batch c2 = {.resolves = &res, .nresolves = 1};
        assert_int_equal(range_apply(lc, &c2, 4, NULL), 0);
        assert_string_equal(th_get(lc, "a", 60), "1");
        assert_string_equal(th_get(lc, "p", 60), "2");
        assert_string_equal(intents(lc), "");
        range_close(lc);
    }
    /* Commit on both sides: each writes only its own keys. */
    range_resolve res = {(const uint8_t *)"t1", 2, 60};
    range_batch c = {.resolves = &res, .nresolves = 1};
    assert_int_equal(range_apply(l, &c, 3, NULL), 0);
    assert_int_equal(range_apply(r, &c, 3, NULL), 0);
    assert_string_equal(th_get(l, "a", 60), "1");
    assert_string_equal(th_get(r, "p", 60), "2");
    assert_string_equal(intents(l), "");
    range_close(r);
    range_close(l);
}

static void test_split_key_choice(void **state)
{
    range *r = th_create(&dir, "sk.db", 1, "", "");
    assert_int_equal(range_split_key(r, NULL, 0, &(uint8_t *){NULL}, &(size_t){0}), MERR_NOTFOUND);
    char k[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        /* Keys 0..89 small, 90..99 large: the byte middle sits high. */
        char v[2048];
        memset(v, 'x', sizeof(v));
        v[i < 90 ? 10 : 2000] = 0;
        th_put(r, k, v, 5);
    }
    uint8_t *key = NULL;
    size_t kl = 0;
    assert_int_equal(range_split_key(r, NULL, 0, &key, &kl), 0);
    assert_int_equal(kl, 4);
    int idx = (key[1] - '0') * 100 + (key[2] - '0') * 10 + (key[3] - '0');
    assert_true(idx >= 90 && idx <= 96);
    free(key);
    /* Load: most weight on k010..k019 → a split key among them. */
    range_load_sample smp[40];
    char keys[40][8];
    for (int i = 0; i < 40; i++) {
        int kk = i < 30 ? 10 + i % 10 : 50 + i;
        snprintf(keys[i], sizeof(keys[i]), "k%03d", kk);
        smp[i] = (range_load_sample){(const uint8_t *)keys[i], 4, i < 30 ? 5.0 : 1.0};
    }
    assert_int_equal(range_split_key(r, smp, 40, &key, &kl), 0);
    idx = (key[1] - '0') * 100 + (key[2] - '0') * 10 + (key[3] - '0');
    assert_true(idx >= 11 && idx <= 19);
    free(key);
    range_close(r);
}

/* Fails the n-th write of the left database during a split, for every n until
 * the split succeeds; after each failure the reopened range must show the
 * split either complete or absent, never half. */
static void test_split_fault_sweep(void **state)
{
    range_opts o = {.vfs = RANGE_FAULT_VFS};
    int succeeded = 0;
    for (long n = 0; n < 200 && !succeeded; n++) {
        char lp[300], rp[300];
        th_file(&dir, "fl.db", lp, sizeof(lp));
        th_file(&dir, "fr.db", rp, sizeof(rp));
        range_destroy(lp, NULL);
        range_destroy(rp, NULL);
        range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
        range *l = NULL;
        merr e = {0};
        assert_int_equal(range_create(lp, &d, &o, &l, &e), 0);
        fill(l, 40);
        range_stats before = th_stats(l);
        range_meta m;
        range_get_meta(l, &m);
        uint64_t slot = m.applied + 1;
        range_faultvfs_set(n % 2 ? RANGE_FAULT_IOERR : RANGE_FAULT_FULL, n / 2);
        int rc = range_split(l, (const uint8_t *)"k0020", 5, 2, rp, slot);
        range_faultvfs_set(RANGE_FAULT_NONE, 0);
        if (rc == 0)
            succeeded = 1;
        else
            assert_true(rc == MERR_NOSPACE || rc == MERR_IO);
        range_close(l);
        assert_int_equal(range_open(lp, &o, &l, &e), 0);
        range_get_meta(l, &m);
        if (access(rp, F_OK) == 0) {
            range *r = open_path(rp);
            range_meta rm;
            range_get_meta(r, &rm);
            assert_int_equal(m.end_len, 5);
            assert_int_equal(m.applied, slot);
            assert_int_equal(m.stats.versions + rm.stats.versions, before.versions);
            assert_int_equal(m.stats.live_keys + rm.stats.live_keys, before.live_keys);
            assert_int_equal(count_live(l) + count_live(r), (size_t)before.live_keys);
            range_close(r);
        } else {
            assert_false(succeeded);
            assert_int_equal(m.end_len, 0);
            assert_int_equal(m.applied, slot - 1);
            assert_int_equal(m.stats.versions, before.versions);
            assert_int_equal(count_live(l), (size_t)before.live_keys);
        }
        char tmp[320];
        snprintf(tmp, sizeof(tmp), "%s.tmp", rp);
        assert_int_equal(access(tmp, F_OK), -1);
        range_close(l);
    }
    assert_true(succeeded);
    assert_true(range_faultvfs_failures() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_merge),     cmocka_unit_test(test_split_rejects),
        cmocka_unit_test(test_split_moves_intents), cmocka_unit_test(test_split_key_choice),
        cmocka_unit_test(test_split_fault_sweep),   cmocka_unit_test(test_freeze_mark),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
