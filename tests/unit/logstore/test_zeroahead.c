/* Zero-ahead (logstore_opts.zero_ahead): the active segment carries written
 * zeros past its last round, at no extra fdatasync; a store copied while open
 * (what a crash leaves) reopens without cutting anything and keeps writing
 * over the zeros; a torn round inside the zeros is still cut; a segment that
 * stops being the last is trimmed first, so damage there stays an error; a
 * clean close leaves files holding exactly their rounds. */
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

static uint64_t files_bytes(const char *dir, int *nseg)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint64_t sum = 0;
    *nseg = 0;
    struct dirent *de;
    char p[4200];
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "seg-", 4)) continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        sum += (uint64_t)sb.st_size;
        (*nseg)++;
    }
    closedir(d);
    return sum;
}

/* What a kill -9 leaves: the segment files as they are, store still open. */
static void copy_segments(const char *from, const char *to)
{
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *de;
    char a[4200], b[4200];
    static uint8_t buf[1 << 16];
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "seg-", 4)) continue;
        snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
        int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(in >= 0 && out >= 0);
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
            assert_int_equal(write(out, buf, (size_t)n), n);
        close(in);
        close(out);
    }
    closedir(d);
}

static void put_n(logstore *ls, uint64_t from, uint64_t to)
{
    char v[64];
    for (uint64_t s = from; s <= to; s++) {
        snprintf(v, sizeof(v), "value-%llu", (unsigned long long)s);
        assert_int_equal(lt_put(ls, 1, s, 1, v), 0);
    }
}

static void expect_n(logstore *ls, uint64_t from, uint64_t to)
{
    char v[64];
    for (uint64_t s = from; s <= to; s++) {
        snprintf(v, sizeof(v), "value-%llu", (unsigned long long)s);
        lt_expect(ls, 1, s, 1, v);
    }
}

static void test_zero_tail_survives_a_crash(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-za"), *copy = lt_tmpdir("ls-za-copy");
    lt_io io;
    lt_io_init(&io);
    logstore_opts o = {.io = &io.io, .zero_ahead = 64 << 10}, za = {.zero_ahead = 64 << 10};
    logstore *ls = lt_open(dir, &o);
    put_n(ls, 1, 20);
    /* One fdatasync per round, zeros included. */
    assert_int_equal(lt_io_fdatasyncs(&io), 20);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    int nseg;
    uint64_t on_disk = files_bytes(dir, &nseg);
    assert_int_equal(nseg, 1);
    assert_true(on_disk > st.disk_bytes && on_disk >= (64 << 10)); /* the room is there */

    copy_segments(dir, copy);
    logstore *c = lt_open(copy, &za);
    logstore_get_stats(c, &st);
    assert_int_equal(st.cut_bytes, 0); /* zeros are not a torn tail */
    expect_n(c, 1, 20);
    put_n(c, 21, 30); /* written over the zeros */
    logstore_close(c);
    c = lt_open(copy, &za);
    expect_n(c, 1, 30);
    logstore_get_stats(c, &st);
    assert_int_equal(st.cut_bytes, 0);
    assert_int_equal(files_bytes(copy, &nseg), st.disk_bytes);
    logstore_close(c);

    /* A clean close trims the room. */
    logstore_get_stats(ls, &st);
    logstore_close(ls);
    assert_int_equal(files_bytes(dir, &nseg), st.disk_bytes);
    lt_rmdir(dir);
    lt_rmdir(copy);
}

static void test_torn_round_in_the_zeros_is_cut(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-zt"), *copy = lt_tmpdir("ls-zt-copy");
    logstore_opts o = {.zero_ahead = 64 << 10};
    logstore *ls = lt_open(dir, &o);
    put_n(ls, 1, 5);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    copy_segments(dir, copy);
    logstore_close(ls);

    char p[4200];
    snprintf(p, sizeof(p), "%s/seg-%016x.log", copy, 1);
    int fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    const char junk[] = "half a round";
    assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)st.disk_bytes), (ssize_t)sizeof(junk));
    close(fd);
    logstore *c = lt_open(copy, &o);
    logstore_stats cs;
    logstore_get_stats(c, &cs);
    assert_true(cs.cut_bytes > 0);
    expect_n(c, 1, 5);
    logstore_close(c);
    lt_rmdir(dir);
    lt_rmdir(copy);
}

static void test_rolled_segments_are_trimmed(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-zr"), *copy = lt_tmpdir("ls-zr-copy");
    logstore_opts o = {.segment_size = 4096, .zero_ahead = 1024};
    logstore *ls = lt_open(dir, &o);
    put_n(ls, 1, 200); /* many segments */
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_true(st.segments > 2);
    copy_segments(dir, copy);
    /* Zeros only in the last segment: the copy opens (a zero tail in any
     * other segment would be refused as damage) and has everything. */
    logstore *c = lt_open(copy, &o);
    logstore_stats cs;
    logstore_get_stats(c, &cs);
    assert_int_equal(cs.cut_bytes, 0);
    expect_n(c, 1, 200);
    logstore_close(c);
    logstore_close(ls);

    /* A zero tail in a segment that is not the last is damage, as before. */
    char p[4200];
    snprintf(p, sizeof(p), "%s/seg-%016x.log", copy, 1);
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    static const uint8_t zeros[512];
    assert_int_equal(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);
    logstore *bad = NULL;
    merr e = {0};
    assert_int_equal(logstore_open(copy, &o, &bad, &e), MERR_CORRUPT);
    assert_null(bad);
    lt_rmdir(dir);
    lt_rmdir(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_tail_survives_a_crash),
        cmocka_unit_test(test_torn_round_in_the_zeros_is_cut),
        cmocka_unit_test(test_rolled_segments_are_trimmed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
