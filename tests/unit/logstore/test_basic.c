/* Log store basics: many groups round-trip through reopen, a slot re-written
 * with a higher ballot, truncation, dropping a group, hard states, the group
 * listing and the directory lock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ls_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NGROUPS 2000
#define NSLOTS  5

static void fill(logstore *ls)
{
    /* Each batch mixes many groups, as the event loop's updates do. */
    char val[64];
    for (uint64_t g0 = 0; g0 < NGROUPS; g0 += 100) {
        logstore_batch *b = logstore_batch_new(g0);
        for (uint64_t g = g0; g < g0 + 100; g++) {
            snprintf(val, sizeof(val), "hs-%llu", (unsigned long long)g);
            assert_int_equal(logstore_batch_hardstate(b, g + 1, val, strlen(val)), 0);
            for (uint64_t s = 1; s <= NSLOTS; s++) {
                snprintf(val, sizeof(val), "v-%llu-%llu", (unsigned long long)g,
                         (unsigned long long)s);
                assert_int_equal(logstore_batch_entry(b, g + 1, s, 7, val, strlen(val)), 0);
            }
        }
        assert_int_equal(logstore_batch_records(b), 100 * (NSLOTS + 1));
        merr e = {0};
        assert_int_equal(logstore_write(ls, b, &e), 0);
    }
}

static void check(logstore *ls)
{
    char val[64];
    mbuf hs = MBUF_INIT;
    for (uint64_t g = 0; g < NGROUPS; g++) {
        assert_int_equal(logstore_hardstate(ls, g + 1, &hs), 0);
        snprintf(val, sizeof(val), "hs-%llu", (unsigned long long)g);
        assert_int_equal(hs.len, strlen(val));
        assert_memory_equal(hs.data, val, hs.len);
        for (uint64_t s = 1; s <= NSLOTS; s++) {
            snprintf(val, sizeof(val), "v-%llu-%llu", (unsigned long long)g, (unsigned long long)s);
            lt_expect(ls, g + 1, s, 7, val);
        }
        logstore_group_info gi;
        assert_int_equal(logstore_group_info_get(ls, g + 1, &gi), 0);
        assert_int_equal(gi.first_slot, 1);
        assert_int_equal(gi.last_slot, NSLOTS);
        assert_int_equal(gi.n_entries, NSLOTS);
        assert_true(gi.has_hardstate);
    }
    mbuf_free(&hs);
}

static void test_many_groups_round_trip(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-basic");
    logstore *ls = lt_open(dir, NULL);
    fill(ls);
    check(ls);
    uint64_t *ids;
    size_t n;
    assert_int_equal(logstore_groups(ls, &ids, &n), 0);
    assert_int_equal(n, NGROUPS);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] == i + 1);
    free(ids);
    logstore_close(ls);
    /* Everything comes back from the segments alone. */
    ls = lt_open(dir, NULL);
    check(ls);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_int_equal(st.groups, NGROUPS);
    assert_int_equal(st.cut_bytes, 0);
    lt_expect_missing(ls, 1, NSLOTS + 1);
    lt_expect_missing(ls, NGROUPS + 5, 1);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_overwrite_with_higher_ballot(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-overwrite");
    logstore *ls = lt_open(dir, NULL);
    assert_int_equal(lt_put(ls, 9, 4, 1, "old"), 0);
    assert_int_equal(lt_put(ls, 9, 4, 3, "newer value"), 0);
    lt_expect(ls, 9, 4, 3, "newer value");
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    lt_expect(ls, 9, 4, 3, "newer value");
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 9, &gi), 0);
    assert_int_equal(gi.n_entries, 1);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_truncation(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-trunc");
    logstore *ls = lt_open(dir, NULL);
    for (uint64_t s = 1; s <= 20; s++) assert_int_equal(lt_put(ls, 3, s, 1, "x"), 0);
    logstore_batch *b = logstore_batch_new(100);
    assert_int_equal(logstore_batch_truncate(b, 3, 11), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t s = 1; s <= 10; s++) lt_expect_missing(ls, 3, s);
        for (uint64_t s = 11; s <= 20; s++) lt_expect(ls, 3, s, 1, "x");
        logstore_group_info gi;
        assert_int_equal(logstore_group_info_get(ls, 3, &gi), 0);
        assert_int_equal(gi.truncated, 11);
        assert_int_equal(gi.first_slot, 11);
        assert_int_equal(gi.last_slot, 20);
        assert_int_equal(gi.n_entries, 10);
        logstore_close(ls);
        ls = lt_open(dir, NULL);
    }
    /* The truncation point never moves back, and a late accept below it is
     * not resurrected. */
    b = logstore_batch_new(101);
    assert_int_equal(logstore_batch_truncate(b, 3, 5), 0);
    assert_int_equal(logstore_batch_entry(b, 3, 7, 9, "late", 4), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 3, &gi), 0);
    assert_int_equal(gi.truncated, 11);
    lt_expect_missing(ls, 3, 7);
    /* Truncating past the last entry leaves an empty log that starts there. */
    b = logstore_batch_new(102);
    assert_int_equal(logstore_batch_truncate(b, 3, 50), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    assert_int_equal(lt_put(ls, 3, 50, 2, "fifty"), 0);
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    assert_int_equal(logstore_group_info_get(ls, 3, &gi), 0);
    assert_int_equal(gi.truncated, 50);
    assert_int_equal(gi.n_entries, 1);
    assert_int_equal(gi.first_slot, 50);
    lt_expect(ls, 3, 50, 2, "fifty");
    lt_expect_missing(ls, 3, 20);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_holes_and_out_of_order_slots(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-holes");
    logstore *ls = lt_open(dir, NULL);
    assert_int_equal(lt_put(ls, 1, 10, 1, "ten"), 0);
    assert_int_equal(lt_put(ls, 1, 14, 1, "fourteen"), 0);
    assert_int_equal(lt_put(ls, 1, 8, 1, "eight"), 0);
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 1, &gi), 0);
    assert_int_equal(gi.first_slot, 8);
    assert_int_equal(gi.last_slot, 14);
    assert_int_equal(gi.n_entries, 3);
    lt_expect(ls, 1, 8, 1, "eight");
    lt_expect(ls, 1, 10, 1, "ten");
    lt_expect(ls, 1, 14, 1, "fourteen");
    lt_expect_missing(ls, 1, 9);
    lt_expect_missing(ls, 1, 12);
    /* Far-apart slots cost nothing (a bad peer cannot blow the index up). */
    const uint64_t far = (uint64_t)1 << 62;
    assert_int_equal(lt_put(ls, 2, far, 1, "far"), 0);
    assert_int_equal(lt_put(ls, 2, 1, 1, "near"), 0);
    assert_int_equal(logstore_group_info_get(ls, 2, &gi), 0);
    assert_true(gi.first_slot == 1 && gi.last_slot == far && gi.n_entries == 2);
    lt_expect(ls, 2, far, 1, "far");
    /* Truncating into a hole lands first_slot on the next present entry. */
    logstore_batch *b = logstore_batch_new(1);
    assert_int_equal(logstore_batch_truncate(b, 1, 9), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    assert_int_equal(logstore_group_info_get(ls, 1, &gi), 0);
    assert_int_equal(gi.first_slot, 10);
    assert_int_equal(gi.truncated, 9);
    logstore_close(ls);
    lt_rmdir(dir);
}

typedef struct scan_seen {
    uint64_t slots[8];
    int n, stop_after;
} scan_seen;

static int on_entry(void *arg, uint64_t slot, uint64_t ballot, const uint8_t *val, size_t n)
{
    scan_seen *s = arg;
    assert_true(s->n < 8);
    assert_true(ballot == slot % 4 + 1);
    char want[32];
    snprintf(want, sizeof(want), "s%llu", (unsigned long long)slot);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(val, want, n);
    s->slots[s->n++] = slot;
    return s->n == s->stop_after ? 7 : 0;
}

static void test_scan_skips_holes(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-scan");
    logstore *ls = lt_open(dir, NULL);
    const uint64_t slots[] = {3, 4, 9, 1000, UINT64_MAX};
    char v[32];
    for (size_t i = 0; i < 5; i++) {
        snprintf(v, sizeof(v), "s%llu", (unsigned long long)slots[i]);
        assert_int_equal(lt_put(ls, 6, slots[i], slots[i] % 4 + 1, v), 0);
    }
    assert_int_equal(lt_put(ls, 7, 5, 1, "other group"), 0);
    scan_seen seen = {.stop_after = -1};
    assert_int_equal(logstore_scan(ls, 6, 0, UINT64_MAX, on_entry, &seen, NULL), 0);
    assert_int_equal(seen.n, 5);
    for (int i = 0; i < 5; i++) assert_true(seen.slots[i] == slots[i]);
    /* A sub-range. */
    seen = (scan_seen){.stop_after = -1};
    assert_int_equal(logstore_scan(ls, 6, 4, 999, on_entry, &seen, NULL), 0);
    assert_int_equal(seen.n, 2);
    assert_true(seen.slots[0] == 4 && seen.slots[1] == 9);
    /* The callback stops it. */
    seen = (scan_seen){.stop_after = 2};
    assert_int_equal(logstore_scan(ls, 6, 0, UINT64_MAX, on_entry, &seen, NULL), 7);
    assert_int_equal(seen.n, 2);
    /* Unknown group: nothing. */
    seen = (scan_seen){.stop_after = -1};
    assert_int_equal(logstore_scan(ls, 99, 0, UINT64_MAX, on_entry, &seen, NULL), 0);
    assert_int_equal(seen.n, 0);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_drop_group(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-drop");
    logstore *ls = lt_open(dir, NULL);
    assert_int_equal(lt_put(ls, 5, 1, 1, "a"), 0);
    assert_int_equal(lt_put(ls, 6, 1, 1, "b"), 0);
    logstore_batch *b = logstore_batch_new(1);
    assert_int_equal(logstore_batch_drop(b, 5), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 5, &gi), MERR_NOTFOUND);
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    assert_int_equal(logstore_group_info_get(ls, 5, &gi), MERR_NOTFOUND);
    lt_expect_missing(ls, 5, 1);
    lt_expect(ls, 6, 1, 1, "b");
    /* The group may come back later (a replica moved back): fresh state. */
    assert_int_equal(lt_put(ls, 5, 3, 4, "again"), 0);
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    lt_expect(ls, 5, 3, 4, "again");
    lt_expect_missing(ls, 5, 1);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_lock_and_bad_args(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-lock");
    logstore *ls = lt_open(dir, NULL);
    logstore *other = NULL;
    merr e = {0};
    assert_int_equal(logstore_open(dir, NULL, &other, &e), MERR_BUSY);
    assert_non_null(strstr(e.msg, "in use"));
    logstore_batch *b = logstore_batch_new(1);
    static char big[LOGSTORE_MAX_VALUE + 1];
    assert_int_equal(logstore_batch_entry(b, 1, 1, 1, big, sizeof(big)), MERR_TOOBIG);
    assert_int_equal(logstore_batch_records(b), 0);
    logstore_batch_free(b);
    logstore_close(ls);
    /* The lock goes with the store. */
    ls = lt_open(dir, NULL);
    logstore_close(ls);
    /* A path that cannot be a folder. */
    char path[4200];
    snprintf(path, sizeof(path), "%s/LOCK/sub", dir);
    assert_true(logstore_open(path, NULL, &other, &e) < 0);
    assert_non_null(strstr(e.msg, "LOCK/sub"));
    lt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_groups_round_trip),
        cmocka_unit_test(test_overwrite_with_higher_ballot),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_holes_and_out_of_order_slots),
        cmocka_unit_test(test_scan_skips_holes),
        cmocka_unit_test(test_drop_group),
        cmocka_unit_test(test_lock_and_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
