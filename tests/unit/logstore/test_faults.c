/* Write-path faults injected through logstore_io: ENOSPC (whole and after a
 * short write) fails only that round's batches and leaves the store usable and
 * consistent; EIO on write and any fdatasync error make the store fail-stop,
 * with durable data still readable and intact after reopening. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ls_testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx {
    char *dir;
    lt_io io;
    lt_notes notes;
    logstore_opts o;
    logstore *ls;
} fx;

static fx *fx_new(const char *tag)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = lt_tmpdir(tag);
    lt_io_init(&f->io);
    lt_notes_init(&f->notes);
    f->o = (logstore_opts){.io = &f->io.io, .notify = lt_notify, .notify_arg = &f->notes};
    f->ls = lt_open(f->dir, &f->o);
    return f;
}

static void fx_free(fx *f)
{
    if (f->ls) logstore_close(f->ls);
    lt_notes_free(&f->notes);
    lt_rmdir(f->dir);
    free(f);
}

static void submit_one(fx *f, uint64_t id, uint64_t slot, const char *v)
{
    logstore_batch *b = logstore_batch_new(id);
    assert_int_equal(logstore_batch_entry(b, 1, slot, 1, v, strlen(v)), 0);
    assert_int_equal(logstore_submit(f->ls, b), 0);
}

static void nospace_case(size_t short_bytes)
{
    fx *f = fx_new("ls-nospc");
    assert_int_equal(lt_put(f->ls, 1, 1, 1, "durable"), 0);
    lt_io_set(&f->io, ENOSPC, 1, short_bytes, 0);
    submit_one(f, 42, 2, "does not fit");
    assert_int_equal(lt_notes_wait(&f->notes, 1), 1);
    assert_int_equal(f->notes.ids[0], 42);
    assert_int_equal(f->notes.status[0], MERR_NOSPACE);
    /* What was durable stays readable; the failed batch is not visible. */
    lt_expect(f->ls, 1, 1, 1, "durable");
    lt_expect_missing(f->ls, 1, 2);
    /* The synchronous call reports it too. */
    lt_io_set(&f->io, ENOSPC, 1, 0, 0);
    assert_int_equal(lt_put(f->ls, 1, 2, 1, "still no"), MERR_NOSPACE);
    /* Space is back: the store carries on. */
    assert_int_equal(lt_put(f->ls, 1, 2, 1, "fits now"), 0);
    logstore_stats st;
    logstore_get_stats(f->ls, &st);
    assert_int_equal(st.failed, 0);
    logstore_close(f->ls);
    f->ls = lt_open(f->dir, NULL);
    logstore_get_stats(f->ls, &st);
    assert_int_equal(st.cut_bytes, 0); /* the partial round was cut at once */
    lt_expect(f->ls, 1, 1, 1, "durable");
    lt_expect(f->ls, 1, 2, 1, "fits now");
    fx_free(f);
}

static void test_enospc(void **state)
{
    (void)state;
    nospace_case(0);
}

static void test_short_write_then_enospc(void **state)
{
    (void)state;
    nospace_case(20);
}

static void test_short_writes_complete(void **state)
{
    (void)state;
    fx *f = fx_new("ls-short");
    lt_io_set(&f->io, 0, 0, 7, 0); /* a short write, then the rest */
    assert_int_equal(lt_put(f->ls, 1, 1, 1, "in two pieces"), 0);
    logstore_close(f->ls);
    f->ls = lt_open(f->dir, NULL);
    lt_expect(f->ls, 1, 1, 1, "in two pieces");
    fx_free(f);
}

static void fail_stop_case(int pwrite_errno, int sync_errno, const char *what)
{
    fx *f = fx_new("ls-failstop");
    assert_int_equal(lt_put(f->ls, 1, 1, 1, "durable"), 0);
    lt_io_set(&f->io, pwrite_errno, pwrite_errno ? 1 : 0, 0, sync_errno);
    submit_one(f, 7, 2, "lost");
    assert_int_equal(lt_notes_wait(&f->notes, 1), 1);
    assert_int_equal(f->notes.status[0], MERR_IO);
    assert_non_null(strstr(logstore_error(f->ls), what));
    int syncs = lt_io_fdatasyncs(&f->io);
    /* Fail-stop even once the device "recovers": no retry of the fsync. */
    lt_io_set(&f->io, 0, 0, 0, 0);
    logstore_batch *b = logstore_batch_new(8);
    assert_int_equal(logstore_batch_entry(b, 1, 3, 1, "x", 1), 0);
    assert_int_equal(logstore_submit(f->ls, b), MERR_IO);
    merr e = {0};
    b = logstore_batch_new(9);
    assert_int_equal(logstore_batch_entry(b, 1, 3, 1, "x", 1), 0);
    assert_int_equal(logstore_write(f->ls, b, &e), MERR_IO);
    assert_non_null(strstr(e.msg, what));
    assert_int_equal(lt_io_fdatasyncs(&f->io), syncs);
    logstore_stats st;
    logstore_get_stats(f->ls, &st);
    assert_int_equal(st.failed, 1);
    /* Reads of durable state still work. */
    lt_expect(f->ls, 1, 1, 1, "durable");
    lt_expect_missing(f->ls, 1, 2);
    /* A restart recovers from what is on disk. */
    logstore_close(f->ls);
    f->ls = lt_open(f->dir, NULL);
    lt_expect(f->ls, 1, 1, 1, "durable");
    assert_int_equal(lt_put(f->ls, 1, 3, 1, "after restart"), 0);
    lt_expect(f->ls, 1, 3, 1, "after restart");
    fx_free(f);
}

static void test_eio_on_write(void **state)
{
    (void)state;
    fail_stop_case(EIO, 0, "write segment");
}

static void test_fdatasync_error(void **state)
{
    (void)state;
    fail_stop_case(0, EIO, "fdatasync");
}

static void test_fdatasync_enospc_is_fatal(void **state)
{
    (void)state;
    fail_stop_case(0, ENOSPC, "fdatasync");
}

static void test_dir_fsync_error_on_new_segment(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-dirsync");
    lt_io io;
    lt_io_init(&io);
    logstore_opts o = {.segment_size = 4096, .io = &io.io};
    logstore *ls = lt_open(dir, &o);
    char v[1000];
    memset(v, 'd', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    assert_int_equal(lt_put(ls, 1, 1, 1, v), 0);
    /* The next segment's directory entry cannot be made durable: a round in
     * it could vanish with the file after a power cut, so fail-stop. */
    pthread_mutex_lock(&io.mu);
    io.fail_dirsync_errno = EIO;
    pthread_mutex_unlock(&io.mu);
    int rc = 0;
    uint64_t s = 2;
    for (; s < 10 && rc == 0; s++) rc = lt_put(ls, 1, s, 1, v);
    assert_int_equal(rc, MERR_IO);
    assert_non_null(strstr(logstore_error(ls), "fsync dir"));
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    for (uint64_t k = 1; k < s - 1; k++) lt_expect(ls, 1, k, 1, v);
    logstore_close(ls);
    lt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_short_write_then_enospc),
        cmocka_unit_test(test_short_writes_complete),
        cmocka_unit_test(test_eio_on_write),
        cmocka_unit_test(test_fdatasync_error),
        cmocka_unit_test(test_fdatasync_enospc_is_fatal),
        cmocka_unit_test(test_dir_fsync_error_on_new_segment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
