/* Compaction: segments whose records are all superseded or truncated are
 * deleted; the oldest segment's few live records (an idle group's hard state)
 * are restated at the head so it can go too; a segment holding a DROP record
 * outlives older records of the dropped group; live data survives all of it
 * and a reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ls_testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "seg-", 4)) n++;
    closedir(d);
    return n;
}

static void val_for(char *v, size_t cap, uint64_t slot)
{
    memset(v, 'a' + (int)(slot % 26), cap - 1);
    v[cap - 1] = 0;
}

static void test_dead_segments_deleted_live_kept(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-compact");
    logstore_opts o = {.segment_size = 4096};
    logstore *ls = lt_open(dir, &o);
    /* An idle group whose hard state sits in the first segment for ever. */
    logstore_batch *b = logstore_batch_new(0);
    assert_int_equal(logstore_batch_hardstate(b, 99, "idle-hs", 7), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    char v[200];
    /* A busy group that snapshots every 50 slots. */
    for (uint64_t s = 1; s <= 1000; s++) {
        val_for(v, sizeof(v), s);
        assert_int_equal(lt_put(ls, 1, s, 1, v), 0);
        if (s % 50 == 0) {
            b = logstore_batch_new(s);
            assert_int_equal(logstore_batch_truncate(b, 1, s - 10), 0);
            assert_int_equal(logstore_write(ls, b, NULL), 0);
        }
    }
    lt_barrier(ls);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    /* ~260 KB went through 4 KiB segments; only a handful remain. */
    assert_true(st.bytes > 200000);
    assert_true(st.segments_deleted > 40);
    assert_true(st.compactions >= 1);
    assert_true(st.segments <= 6);
    assert_int_equal(count_segments(dir), (int)st.segments);
    assert_true(st.disk_bytes <= 6 * 4096 + 4096);
    for (int pass = 0; pass < 2; pass++) {
        mbuf hs = MBUF_INIT;
        assert_int_equal(logstore_hardstate(ls, 99, &hs), 0);
        assert_int_equal(hs.len, 7);
        assert_memory_equal(hs.data, "idle-hs", 7);
        mbuf_free(&hs);
        for (uint64_t s = 990; s <= 1000; s++) {
            val_for(v, sizeof(v), s);
            lt_expect(ls, 1, s, 1, v);
        }
        lt_expect_missing(ls, 1, 989);
        logstore_group_info gi;
        assert_int_equal(logstore_group_info_get(ls, 1, &gi), 0);
        assert_int_equal(gi.truncated, 990);
        assert_int_equal(gi.n_entries, 11);
        logstore_close(ls);
        ls = lt_open(dir, &o);
    }
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_overwrites_free_space(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-overw");
    logstore_opts o = {.segment_size = 8192};
    logstore *ls = lt_open(dir, &o);
    /* Hard states re-written over and over: only the newest of each counts. */
    char v[100];
    for (int i = 0; i < 2000; i++) {
        logstore_batch *b = logstore_batch_new((uint64_t)i);
        for (uint64_t g = 1; g <= 4; g++) {
            snprintf(v, sizeof(v), "g%llu-i%d", (unsigned long long)g, i);
            assert_int_equal(logstore_batch_hardstate(b, g, v, strlen(v)), 0);
        }
        assert_int_equal(logstore_write(ls, b, NULL), 0);
    }
    lt_barrier(ls);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_true(st.segments <= 3);
    assert_true(st.live_bytes < 400);
    logstore_close(ls);
    ls = lt_open(dir, &o);
    mbuf hs = MBUF_INIT;
    for (uint64_t g = 1; g <= 4; g++) {
        snprintf(v, sizeof(v), "g%llu-i%d", (unsigned long long)g, 1999);
        assert_int_equal(logstore_hardstate(ls, g, &hs), 0);
        assert_int_equal(hs.len, strlen(v));
        assert_memory_equal(hs.data, v, hs.len);
    }
    mbuf_free(&hs);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_drop_outlives_older_records(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-dropc");
    /* Never rewrite: this checks the deletion rule on its own. */
    logstore_opts o = {.segment_size = 4096, .compact_live_ratio = 1e-9};
    logstore *ls = lt_open(dir, &o);
    char big[3000];
    memset(big, 'h', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    /* Segment 1: group 5 (to be dropped) and group 6 (live, big). */
    logstore_batch *b = logstore_batch_new(1);
    assert_int_equal(logstore_batch_hardstate(b, 5, "five", 4), 0);
    assert_int_equal(logstore_batch_hardstate(b, 6, big, strlen(big)), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    /* Segment 2: drop 5, plus entries of group 7 that will be truncated. */
    char v[1200];
    memset(v, 'e', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    b = logstore_batch_new(2);
    assert_int_equal(logstore_batch_drop(b, 5), 0);
    assert_int_equal(logstore_batch_entry(b, 7, 1, 1, v, strlen(v)), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    assert_int_equal(lt_put(ls, 7, 2, 1, v), 0);
    /* Segment 3: truncate 7 (segment 2 is now all dead, but holds the DROP). */
    assert_int_equal(lt_put(ls, 7, 3, 1, v), 0);
    assert_int_equal(lt_put(ls, 7, 4, 1, v), 0);
    b = logstore_batch_new(3);
    assert_int_equal(logstore_batch_truncate(b, 7, 4), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_true(st.segments >= 3);
    char p[4200];
    snprintf(p, sizeof(p), "%s/seg-0000000000000002.log", dir);
    lt_barrier(ls);
    assert_int_equal(access(p, F_OK), 0); /* kept for the DROP */
    logstore_close(ls);
    ls = lt_open(dir, &o);
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 5, &gi), MERR_NOTFOUND);
    mbuf hs = MBUF_INIT;
    assert_int_equal(logstore_hardstate(ls, 6, &hs), 0);
    assert_int_equal(hs.len, strlen(big));
    mbuf_free(&hs);
    lt_expect(ls, 7, 4, 1, v);
    lt_expect_missing(ls, 7, 3);
    /* Once group 6 moves on, segment 1 dies; then segment 2 is the oldest and
     * its DROP is no longer needed. */
    b = logstore_batch_new(4);
    assert_int_equal(logstore_batch_hardstate(b, 6, "small", 5), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    lt_barrier(ls);
    assert_int_equal(access(p, F_OK), -1);
    logstore_close(ls);
    ls = lt_open(dir, &o);
    assert_int_equal(logstore_group_info_get(ls, 5, &gi), MERR_NOTFOUND);
    lt_expect(ls, 7, 4, 1, v);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_restated_truncation_frees_oldest(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-resttrunc");
    logstore_opts o = {.segment_size = 4096};
    logstore *ls = lt_open(dir, &o);
    /* Segment 1's only lasting records: an idle group's truncation point and
     * hard state. */
    assert_int_equal(lt_put(ls, 8, 1, 1, "gone"), 0);
    logstore_batch *b = logstore_batch_new(1);
    assert_int_equal(logstore_batch_truncate(b, 8, 5), 0);
    assert_int_equal(logstore_batch_hardstate(b, 8, "hs8", 3), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    char v[500];
    memset(v, 'z', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    char p[4200];
    snprintf(p, sizeof(p), "%s/seg-0000000000000001.log", dir);
    /* Overwrite one slot of another group until segment 1 is gone. */
    int i = 0;
    for (; i < 200 && (lt_barrier(ls), access(p, F_OK) == 0); i++)
        assert_int_equal(lt_put(ls, 9, 1, (uint64_t)i + 1, v), 0);
    assert_int_equal(access(p, F_OK), -1);
    logstore_close(ls);
    ls = lt_open(dir, &o);
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 8, &gi), 0);
    assert_int_equal(gi.truncated, 5);
    assert_int_equal(gi.n_entries, 0);
    mbuf hs = MBUF_INIT;
    assert_int_equal(logstore_hardstate(ls, 8, &hs), 0);
    assert_memory_equal(hs.data, "hs8", 3);
    mbuf_free(&hs);
    lt_expect(ls, 9, 1, (uint64_t)i, v);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_true(st.segments <= 3);
    logstore_close(ls);
    lt_rmdir(dir);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_stale_segment_left_by_a_crash(void **state)
{
    (void)state;
    /* A crash after a compaction round but before the unlink leaves a segment
     * whose records are all superseded: replay must still give the newest
     * state, and open deletes the segment. */
    char *dir = lt_tmpdir("ls-stale");
    logstore_opts o = {.segment_size = 4096};
    logstore *ls = lt_open(dir, &o);
    char v[600];
    memset(v, 'q', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    logstore_batch *b = logstore_batch_new(0);
    assert_int_equal(logstore_batch_hardstate(b, 1, "old-hs", 6), 0);
    assert_int_equal(logstore_batch_entry(b, 1, 1, 1, "old-value", 9), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    for (uint64_t s = 2; s <= 6; s++) assert_int_equal(lt_put(ls, 2, s, 1, v), 0);
    char p[4200], saved[4300];
    snprintf(p, sizeof(p), "%s/seg-0000000000000001.log", dir);
    snprintf(saved, sizeof(saved), "%s/saved.copy", dir);
    copy_file(p, saved);
    /* Supersede everything of segment 1 and let it go. */
    b = logstore_batch_new(1);
    assert_int_equal(logstore_batch_hardstate(b, 1, "new-hs", 6), 0);
    assert_int_equal(logstore_batch_entry(b, 1, 1, 2, "new-value", 9), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    b = logstore_batch_new(2);
    assert_int_equal(logstore_batch_truncate(b, 2, 100), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    for (int i = 0; i < 50 && (lt_barrier(ls), access(p, F_OK) == 0); i++)
        assert_int_equal(lt_put(ls, 3, 1, (uint64_t)i + 1, v), 0);
    assert_int_equal(access(p, F_OK), -1);
    logstore_close(ls);
    rename(saved, p);
    ls = lt_open(dir, &o);
    assert_int_equal(access(p, F_OK), -1); /* deleted again at open */
    lt_expect(ls, 1, 1, 2, "new-value");
    mbuf hs = MBUF_INIT;
    assert_int_equal(logstore_hardstate(ls, 1, &hs), 0);
    assert_memory_equal(hs.data, "new-hs", 6);
    mbuf_free(&hs);
    lt_expect_missing(ls, 2, 6);
    logstore_close(ls);
    lt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_segments_deleted_live_kept),
        cmocka_unit_test(test_overwrites_free_space),
        cmocka_unit_test(test_drop_outlives_older_records),
        cmocka_unit_test(test_restated_truncation_frees_oldest),
        cmocka_unit_test(test_stale_segment_left_by_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
