/* Range-local keys in storage (common/localkey.h): a local key is accepted
 * where its anchor is, follows its anchor through a split (right child iff
 * anchor >= split key), comes back with a merge and travels in a snapshot;
 * user scans, stats and split-key choice never see it; a local scan sees
 * exactly the ones the range owns. */
#include "th.h"

#include "common/localkey.h"

static th_dir dir;

static int setup(void **state)
{
    (void)state;
    th_mkdir(&dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_rmdir(&dir);
    return 0;
}

/* Anchors around the split key "k0100": below, equal, extending it (with a
 * 0x00 that the escape must keep ordered), above. */
static const char *const ANCHORS[] = {"k0050", "k0099\xff", "k0100", "k0100\x00z", "k0150"};
static const size_t ALEN[] = {5, 6, 5, 7, 5};
#define NANCH 5
static const char SPLIT[] = "k0100";

static void local_key(size_t i, mbuf *out)
{
    mbuf_reset(out);
    assert_int_equal(
        mlocal_key((const uint8_t *)ANCHORS[i], ALEN[i], (const uint8_t *)"rec", 3, out), 0);
}

static int put_local(range *r, size_t i, const char *v, uint64_t ts)
{
    mbuf k = MBUF_INIT;
    local_key(i, &k);
    range_meta m;
    range_get_meta(r, &m);
    range_write w = {k.data, k.len, (const uint8_t *)v, v ? strlen(v) : 0, !v};
    range_batch b = {.ts = ts, .writes = &w, .nwrites = 1};
    int rc = range_apply(r, &b, m.applied + 1, NULL);
    mbuf_free(&k);
    return rc;
}

/* 1 if r holds local key i (latest version). */
static int has_local(range *r, size_t i)
{
    mbuf k = MBUF_INIT;
    local_key(i, &k);
    uint8_t *v = NULL;
    size_t vl = 0;
    int rc = range_get(r, k.data, k.len, RANGE_TS_MAX, &v, &vl, NULL);
    free(v);
    mbuf_free(&k);
    assert_true(rc == 0 || rc == MERR_RANGE || rc == MERR_NOTFOUND);
    return rc == 0;
}

typedef struct seen {
    size_t n, local;
} seen;

static int seen_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, uint64_t ts)
{
    (void)v, (void)vl, (void)ts;
    seen *s = arg;
    s->n++;
    s->local += (size_t)mlocal_is(k, kl);
    return 0;
}

static seen scan_all(range *r, int local, int reverse)
{
    seen s = {0, 0};
    static const uint8_t lo[] = {0x00, 0x00};
    assert_int_equal(range_scan(r, local ? lo : NULL, local ? 2 : 0, NULL, 0, RANGE_TS_MAX, 0,
                                reverse, seen_cb, &s, NULL),
                     0);
    return s;
}

static void fill_users(range *r)
{
    char k[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        th_put(r, k, "v", 10);
    }
}

static void test_split_merge_snapshot(void **state)
{
    (void)state;
    range *l = th_create(&dir, "l.db", 1, "", "");
    fill_users(l);
    range_stats users = th_stats(l);
    for (size_t i = 0; i < NANCH; i++) assert_int_equal(put_local(l, i, "rec", 20), 0);
    /* Stats and user scans never count local keys; a local scan finds them. */
    range_stats st = th_stats(l);
    assert_memory_equal(&st, &users, sizeof(st));
    for (int rev = 0; rev < 2; rev++) {
        seen u = scan_all(l, 0, rev), lc = scan_all(l, 1, rev);
        assert_int_equal(u.n, 200);
        assert_int_equal(u.local, 0);
        assert_int_equal(lc.n, NANCH);
        assert_int_equal(lc.local, NANCH);
    }
    /* The split key by size is a user key, never a local one. */
    uint8_t *sk = NULL;
    size_t skl = 0;
    assert_int_equal(range_split_key(l, NULL, 0, &sk, &skl), 0);
    assert_false(mlocal_is(sk, skl));
    free(sk);

    range_meta m;
    range_get_meta(l, &m);
    char rp[300];
    th_file(&dir, "r.db", rp, sizeof(rp));
    /* A local key is no split key. */
    mbuf k = MBUF_INIT;
    local_key(2, &k);
    assert_int_equal(range_split(l, k.data, k.len, 2, rp, m.applied + 1), MERR_INVALID);
    mbuf_free(&k);
    assert_int_equal(range_split(l, (const uint8_t *)SPLIT, 5, 2, rp, m.applied + 1), 0);
    range *r = NULL;
    merr e = {0};
    assert_int_equal(range_open(rp, NULL, &r, &e), 0);
    /* Each local key on exactly the side of its anchor. */
    for (size_t i = 0; i < NANCH; i++) {
        int right = memcmp(ANCHORS[i], SPLIT, 5) >= 0 && ALEN[i] >= 5;
        assert_int_equal(has_local(r, i), right);
        assert_int_equal(has_local(l, i), !right);
    }
    assert_int_equal(scan_all(l, 1, 0).n, 2);
    assert_int_equal(scan_all(r, 1, 0).n, 3);
    assert_int_equal(scan_all(r, 0, 0).local, 0);
    /* Writes go where the anchor is: refused on the other side. */
    assert_int_equal(put_local(l, 4, "x", 30), MERR_RANGE);
    assert_int_equal(put_local(r, 0, "x", 30), MERR_RANGE);
    assert_int_equal(put_local(r, 4, NULL, 30), 0); /* a delete (GC) */
    assert_false(has_local(r, 4));
    /* Stats still only users: the halves add up to the whole. */
    range_stats ls = th_stats(l), rs = th_stats(r);
    assert_int_equal(ls.total_bytes + rs.total_bytes, users.total_bytes);
    assert_int_equal(ls.live_keys + rs.live_keys, users.live_keys);

    /* A snapshot of the right side carries its local keys, and installs. */
    char ip[300];
    th_file(&dir, "i.db", ip, sizeof(ip));
    range_snap *s = NULL;
    range_install *in = NULL;
    assert_int_equal(range_snap_open(r, 512, &s, &e), 0);
    assert_int_equal(range_install_begin(ip, NULL, &in, &e), 0);
    for (;;) {
        const uint8_t *p;
        size_t n;
        assert_int_equal(range_snap_next(s, &p, &n, &e), 0);
        if (!n) break;
        assert_int_equal(range_install_chunk(in, p, n, &e), 0);
    }
    range_snap_close(s);
    int rc = range_install_finish(in, &e);
    if (rc) fprintf(stderr, "install: %s\n", e.msg);
    assert_int_equal(rc, 0);
    range *ir = NULL;
    assert_int_equal(range_open(ip, NULL, &ir, &e), 0);
    assert_true(has_local(ir, 2) && has_local(ir, 3) && !has_local(ir, 4));
    range_close(ir);

    /* Merge: the left takes the right's local keys. */
    range_get_meta(l, &m);
    assert_int_equal(range_merge(l, r, m.applied + 1), 0);
    for (size_t i = 0; i < 4; i++) assert_true(has_local(l, i));
    assert_int_equal(scan_all(l, 1, 0).n, 4);
    st = th_stats(l);
    assert_int_equal(st.live_keys, users.live_keys);
    l = th_reopen(l);
    assert_int_equal(scan_all(l, 1, 0).n, 4);
    range_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_merge_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
