/* The durability argument of range_db.c, tested: with synchronous=NORMAL a
 * power cut may lose recent commits, but after it the database holds exactly
 * the effects of slots <= its applied slot (never more, never a part), and
 * never less than the slot range_sync() reported durable. Power cuts are
 * simulated by the fault VFS (unsynced writes rolled back, a random prefix
 * kept), across autocheckpoints. */
#include "th.h"

#define NK  64
#define PER 20

static th_dir dir;

static int setup(void **state)
{
    th_mkdir(&dir);
    assert_int_equal(range_faultvfs_register(), 0);
    return 0;
}

static int teardown(void **state)
{
    range_faultvfs_track(0);
    th_rmdir(&dir);
    return 0;
}

/* Slot s writes PER distinct keys at ts = s (a delete every 5th). */
static void slot_writes(uint64_t s, char keys[PER][8], char vals[PER][160], range_write *w)
{
    for (int j = 0; j < PER; j++) {
        snprintf(keys[j], 8, "k%02u", (unsigned)((s * 7 + (uint64_t)j * 3) % NK));
        snprintf(vals[j], 160, "%llu-%d-%0120d", (unsigned long long)s, j, 0);
        w[j] = th_w(keys[j], (s + (uint64_t)j) % 5 ? vals[j] : NULL);
    }
}

static void apply(range *r, uint64_t s)
{
    char keys[PER][8], vals[PER][160];
    range_write w[PER];
    slot_writes(s, keys, vals, w);
    range_batch b = {.ts = s, .writes = w, .nwrites = PER};
    assert_int_equal(range_apply(r, &b, s, NULL), 0);
}

static void check(range *r, uint64_t applied)
{
    static char model[NK][160];
    memset(model, 0, sizeof(model));
    for (uint64_t s = 1; s <= applied; s++) {
        char keys[PER][8], vals[PER][160];
        range_write w[PER];
        slot_writes(s, keys, vals, w);
        for (int j = 0; j < PER; j++) {
            int k = atoi(keys[j] + 1);
            if (w[j].del)
                model[k][0] = 0;
            else
                memcpy(model[k], vals[j], 160);
        }
    }
    int64_t live = 0;
    for (int k = 0; k < NK; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%02d", k);
        const char *v = th_get(r, key, RANGE_TS_MAX);
        if (!model[k][0]) {
            assert_null(v);
            continue;
        }
        live++;
        assert_non_null(v);
        assert_string_equal(v, model[k]);
    }
    range_stats st = th_stats(r);
    assert_int_equal(st.live_keys, live);
    assert_int_equal(st.versions, (int64_t)(PER * applied));
}

static void test_power_cut_keeps_applied_exact(void **state)
{
    range_opts o = {.vfs = RANGE_FAULT_VFS};
    int lost_some = 0;
    for (unsigned seed = 1; seed <= 24; seed++) {
        char p[300], shm[320];
        th_file(&dir, "pl.db", p, sizeof(p));
        snprintf(shm, sizeof(shm), "%s-shm", p);
        range_destroy(p, NULL);
        range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
        range *r = NULL;
        merr e = {0};
        assert_int_equal(range_create(p, &d, &o, &r, &e), 0);
        uint64_t durable = 0;
        assert_int_equal(range_sync(r, &durable), 0);
        range_faultvfs_track(1);
        srand(seed);
        uint64_t last = 40 + (uint64_t)(rand() % 200);
        for (uint64_t s = 1; s <= last; s++) {
            apply(r, s);
            if (rand() % 16 == 0) assert_int_equal(range_sync(r, &durable), 0);
        }
        range_close(r);
        assert_true(range_faultvfs_power_cut(seed) >= 0);
        range_faultvfs_track(0);
        unlink(shm); /* shared memory does not survive a reboot */
        assert_int_equal(range_open(p, NULL, &r, &e), 0);
        range_meta m;
        range_get_meta(r, &m);
        assert_true(m.applied >= durable);
        assert_true(m.applied <= last);
        if (m.applied < last) lost_some++;
        check(r, m.applied);
        /* Replication replays the rest; the result is the full log. */
        for (uint64_t s = m.applied + 1; s <= last; s++) apply(r, s);
        check(r, last);
        range_close(r);
    }
    /* The simulation did lose unsynced commits, or it tested nothing. */
    assert_true(lost_some > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_cut_keeps_applied_exact),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
