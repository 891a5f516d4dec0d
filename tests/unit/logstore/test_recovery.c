/* Log store recovery: a torn last round is cut at every possible byte offset,
 * a flipped bit anywhere in the last round is caught by the checksums, damage
 * that a later round proves acknowledged (or in a segment that is not the last)
 * refuses to open with a clear message, torn and empty segment files left by a
 * crash at segment creation are handled. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ls_testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint8_t *slurp(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    uint8_t *p = malloc((size_t)sb.st_size + 1);
    assert_int_equal(pread(fd, p, (size_t)sb.st_size, 0), sb.st_size);
    close(fd);
    *n = (size_t)sb.st_size;
    return p;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* The n-th segment file (0-based, in name order) of dir into out. */
static int seg_path(const char *dir, int nth, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    char names[64][300];
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)) && k < 64)
        if (!strncmp(de->d_name, "seg-", 4)) snprintf(names[k++], 300, "%s", de->d_name);
    closedir(d);
    qsort(names, (size_t)k, 300, (int (*)(const void *, const void *))strcmp);
    if (nth < 0) nth += k;
    if (nth < 0 || nth >= k) return -1;
    snprintf(out, cap, "%s/%s", dir, names[nth]);
    return k;
}

/* Three committed rounds; returns the file size before and after the last. */
static void three_rounds(const char *dir, off_t *before, off_t *after)
{
    logstore *ls = lt_open(dir, NULL);
    assert_int_equal(lt_put(ls, 1, 1, 1, "first"), 0);
    assert_int_equal(lt_put(ls, 1, 2, 1, "second"), 0);
    char p[4200];
    assert_int_equal(seg_path(dir, -1, p, sizeof(p)), 1);
    *before = file_size(p);
    logstore_batch *b = logstore_batch_new(3);
    assert_int_equal(logstore_batch_entry(b, 1, 3, 1, "third", 5), 0);
    assert_int_equal(logstore_batch_hardstate(b, 2, "hs", 2), 0);
    assert_int_equal(logstore_write(ls, b, NULL), 0);
    *after = file_size(p);
    logstore_close(ls);
}

static void expect_first_two_only(logstore *ls)
{
    lt_expect(ls, 1, 1, 1, "first");
    lt_expect(ls, 1, 2, 1, "second");
    lt_expect_missing(ls, 1, 3);
    mbuf hs = MBUF_INIT;
    assert_int_equal(logstore_hardstate(ls, 2, &hs), MERR_NOTFOUND);
    mbuf_free(&hs);
}

static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-torn");
    off_t before, after;
    three_rounds(dir, &before, &after);
    char p[4200];
    seg_path(dir, -1, p, sizeof(p));
    size_t n;
    uint8_t *full = slurp(p, &n);
    assert_int_equal(n, after);
    for (off_t cut = before; cut < after; cut++) {
        spit(p, full, (size_t)cut);
        logstore *ls = lt_open(dir, NULL);
        expect_first_two_only(ls);
        logstore_stats st;
        logstore_get_stats(ls, &st);
        assert_int_equal(st.cut_bytes, cut - before);
        assert_int_equal(file_size(p), before);
        /* The store goes on from the cut. */
        assert_int_equal(lt_put(ls, 1, 3, 2, "redo"), 0);
        logstore_close(ls);
        ls = lt_open(dir, NULL);
        lt_expect(ls, 1, 3, 2, "redo");
        logstore_close(ls);
    }
    /* The intact file keeps all three rounds. */
    spit(p, full, n);
    logstore *ls = lt_open(dir, NULL);
    lt_expect(ls, 1, 3, 1, "third");
    logstore_close(ls);
    free(full);
    lt_rmdir(dir);
}

static void test_bit_flip_in_last_round(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-flip");
    off_t before, after;
    three_rounds(dir, &before, &after);
    char p[4200];
    seg_path(dir, -1, p, sizeof(p));
    size_t n;
    uint8_t *full = slurp(p, &n);
    uint8_t *bad = malloc(n);
    for (off_t at = before; at < after; at++) {
        memcpy(bad, full, n);
        bad[at] ^= (uint8_t)(1u << (at % 8));
        spit(p, bad, n);
        logstore *ls = lt_open(dir, NULL);
        expect_first_two_only(ls);
        logstore_close(ls);
    }
    free(bad);
    free(full);
    lt_rmdir(dir);
}

static void test_damage_before_a_later_round_is_an_error(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-mid");
    off_t before, after;
    three_rounds(dir, &before, &after);
    char p[4200];
    seg_path(dir, -1, p, sizeof(p));
    size_t n;
    uint8_t *full = slurp(p, &n);
    /* A byte of the first round's value: rounds two and three prove it was
     * acknowledged, so cutting would lose data. */
    uint8_t *bad = malloc(n);
    memcpy(bad, full, n);
    bad[16 + 33 + 2] ^= 0x40;
    spit(p, bad, n);
    logstore *ls = NULL;
    merr e = {0};
    assert_int_equal(logstore_open(dir, NULL, &ls, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "refusing to open"));
    assert_non_null(strstr(e.msg, "seg-"));
    /* Nothing was cut: the file is as it was. */
    assert_int_equal(file_size(p), n);
    free(bad);
    free(full);
    lt_rmdir(dir);
}

static void test_corrupt_non_last_segment(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-seg");
    logstore_opts o = {.segment_size = 4096};
    logstore *ls = lt_open(dir, &o);
    char val[300];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    for (uint64_t s = 1; s <= 40; s++) assert_int_equal(lt_put(ls, 1, s, 1, val), 0);
    logstore_close(ls);
    char p[4200];
    int nseg = seg_path(dir, 0, p, sizeof(p));
    assert_true(nseg >= 3);
    /* Cut the first segment's tail: in a segment that is not the last, that
     * is lost acknowledged data, never a torn write. */
    size_t n;
    uint8_t *full = slurp(p, &n);
    spit(p, full, n - 10);
    merr e = {0};
    assert_int_equal(logstore_open(dir, &o, &ls, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "not the last"));
    /* A flipped bit in its middle too. */
    full[n / 2] ^= 1;
    spit(p, full, n);
    assert_int_equal(logstore_open(dir, &o, &ls, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, p));
    full[n / 2] ^= 1;
    /* And a damaged header. */
    full[3] ^= 1;
    spit(p, full, n);
    assert_int_equal(logstore_open(dir, &o, &ls, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "header"));
    full[3] ^= 1;
    spit(p, full, n);
    ls = lt_open(dir, &o);
    for (uint64_t s = 1; s <= 40; s++) lt_expect(ls, 1, s, 1, val);
    logstore_close(ls);
    free(full);
    lt_rmdir(dir);
}

static void test_torn_or_empty_new_segment(void **state)
{
    (void)state;
    /* A crash right after creating the next segment (empty), or while its
     * header was being written (a few bytes). */
    for (int torn = 0; torn < 2; torn++) {
        char *dir = lt_tmpdir("ls-newseg");
        logstore *ls = lt_open(dir, NULL);
        assert_int_equal(lt_put(ls, 4, 1, 1, "kept"), 0);
        logstore_close(ls);
        char p[4200];
        snprintf(p, sizeof(p), "%s/seg-0000000000000002.log", dir);
        spit(p, (const uint8_t *)"MRDL", torn ? 4 : 0);
        ls = lt_open(dir, NULL);
        lt_expect(ls, 4, 1, 1, "kept");
        logstore_stats st;
        logstore_get_stats(ls, &st);
        assert_int_equal(st.cut_bytes, torn ? 4 : 0);
        assert_int_equal(lt_put(ls, 4, 2, 1, "more"), 0);
        logstore_close(ls);
        /* The new segment got its header with the round. */
        assert_true(file_size(p) > 16);
        ls = lt_open(dir, NULL);
        lt_expect(ls, 4, 1, 1, "kept");
        lt_expect(ls, 4, 2, 1, "more");
        logstore_close(ls);
        lt_rmdir(dir);
    }
}

static void test_garbage_file_named_like_a_segment(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-garbage");
    logstore *ls = lt_open(dir, NULL);
    assert_int_equal(lt_put(ls, 4, 1, 1, "kept"), 0);
    logstore_close(ls);
    char p[4200];
    snprintf(p, sizeof(p), "%s/seg-0000000000000000.log", dir);
    spit(p, (const uint8_t *)"this is not a log segment at all", 32);
    merr e = {0};
    assert_int_equal(logstore_open(dir, NULL, &ls, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "seg-0000000000000000.log"));
    unlink(p);
    /* Files that do not look like segments are ignored. */
    snprintf(p, sizeof(p), "%s/seg-notes.txt", dir);
    spit(p, (const uint8_t *)"x", 1);
    ls = lt_open(dir, NULL);
    lt_expect(ls, 4, 1, 1, "kept");
    logstore_close(ls);
    lt_rmdir(dir);
}

static void test_round_numbers_out_of_order(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-order");
    logstore_opts o = {.segment_size = 4096};
    logstore *ls = lt_open(dir, &o);
    char val[1500];
    memset(val, 'r', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    for (uint64_t s = 1; s <= 6; s++) assert_int_equal(lt_put(ls, 1, s, 1, val), 0);
    logstore_close(ls);
    /* Swap the first two segments' contents (headers patched to match their
     * names): every record still checks, but the rounds go backwards. */
    char p1[4200], p2[4200];
    assert_true(seg_path(dir, 0, p1, sizeof(p1)) >= 3);
    seg_path(dir, 1, p2, sizeof(p2));
    size_t n1, n2;
    uint8_t *a = slurp(p1, &n1), *b = slurp(p2, &n2);
    uint8_t tmp[8];
    memcpy(tmp, a + 8, 8);
    memcpy(a + 8, b + 8, 8);
    memcpy(b + 8, tmp, 8);
    spit(p1, b, n2);
    spit(p2, a, n1);
    merr e = {0};
    assert_int_equal(logstore_open(dir, &o, &ls, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "out of order"));
    free(a);
    free(b);
    lt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_bit_flip_in_last_round),
        cmocka_unit_test(test_damage_before_a_later_round_is_an_error),
        cmocka_unit_test(test_corrupt_non_last_segment),
        cmocka_unit_test(test_torn_or_empty_new_segment),
        cmocka_unit_test(test_garbage_file_named_like_a_segment),
        cmocka_unit_test(test_round_numbers_out_of_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
