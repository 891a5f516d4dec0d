/* Group commit: batches queued while a round is in its fdatasync are coalesced
 * into the next round, written with a single fdatasync, and each is completed
 * exactly once through the notifier; many submitting threads at once lose and
 * duplicate nothing; close drains what was queued. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ls_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static logstore_batch *mk(uint64_t id, uint64_t group, uint64_t slot)
{
    logstore_batch *b = logstore_batch_new(id);
    char v[32];
    snprintf(v, sizeof(v), "b%llu", (unsigned long long)id);
    assert_int_equal(logstore_batch_entry(b, group, slot, 1, v, strlen(v)), 0);
    assert_int_equal(logstore_batch_hardstate(b, group, v, strlen(v)), 0);
    return b;
}

static void test_coalesced_round_single_fsync(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-gc");
    lt_io io;
    lt_io_init(&io);
    lt_notes notes;
    lt_notes_init(&notes);
    logstore_opts o = {.io = &io.io, .notify = lt_notify, .notify_arg = &notes};
    logstore *ls = lt_open(dir, &o);
    int base = lt_io_fdatasyncs(&io);

    /* Hold the I/O thread inside the first round's fdatasync... */
    lt_gate_arm(&io);
    assert_int_equal(logstore_submit(ls, mk(0, 1, 1)), 0);
    assert_true(lt_gate_wait_entered(&io));
    /* ...queue 300 batches of 300 groups behind it... */
    for (uint64_t i = 1; i <= 300; i++) assert_int_equal(logstore_submit(ls, mk(i, 100 + i, 7)), 0);
    /* ...nothing of them is visible or completed yet... */
    assert_int_equal(notes.n, 0);
    lt_expect_missing(ls, 101, 7);
    lt_gate_open(&io);
    assert_int_equal(lt_notes_wait(&notes, 301), 301);

    /* Two rounds, two fsyncs, two notifier calls, every id once, all ok. */
    assert_int_equal(lt_io_fdatasyncs(&io) - base, 2);
    assert_int_equal(notes.calls, 2);
    char *seen = calloc(301, 1);
    for (size_t i = 0; i < notes.n; i++) {
        assert_true(notes.ids[i] <= 300);
        assert_int_equal(seen[notes.ids[i]], 0);
        seen[notes.ids[i]] = 1;
        assert_int_equal(notes.status[i], 0);
    }
    free(seen);
    /* Completions come in submission order. */
    for (size_t i = 0; i < notes.n; i++) assert_true(notes.ids[i] == i);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_int_equal(st.batches, 301);
    assert_int_equal(st.records, 602);
    assert_int_equal(st.fsyncs, 2);
    assert_int_equal(st.rounds, 2);
    /* Visible once notified. */
    lt_expect(ls, 101, 7, 1, "b1");
    lt_expect(ls, 400, 7, 1, "b300");
    logstore_close(ls);
    ls = lt_open(dir, NULL);
    for (uint64_t i = 1; i <= 300; i++) {
        char v[32];
        snprintf(v, sizeof(v), "b%llu", (unsigned long long)i);
        lt_expect(ls, 100 + i, 7, 1, v);
    }
    logstore_close(ls);
    lt_notes_free(&notes);
    lt_rmdir(dir);
}

typedef struct writer_arg {
    logstore *ls;
    int id;
    int n;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    for (int i = 0; i < w->n; i++) {
        uint64_t id = (uint64_t)w->id * 100000 + (uint64_t)i;
        logstore_batch *b = logstore_batch_new(id);
        logstore_batch_entry(b, (uint64_t)w->id, (uint64_t)i, 2, &id, sizeof(id));
        if (i % 10 == 0) {
            /* Some writers also use the synchronous call in between. */
            if (logstore_write(w->ls, b, NULL)) return (void *)1;
        } else if (logstore_submit(w->ls, b)) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_many_threads_exactly_once(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-mt");
    lt_io io;
    lt_io_init(&io);
    lt_notes notes;
    lt_notes_init(&notes);
    logstore_opts o = {.io = &io.io, .notify = lt_notify, .notify_arg = &notes};
    logstore *ls = lt_open(dir, &o);
    enum { W = 8, N = 200 };
    pthread_t th[W];
    writer_arg wa[W];
    for (int i = 0; i < W; i++) {
        wa[i] = (writer_arg){ls, i + 1, N};
        pthread_create(&th[i], NULL, writer, &wa[i]);
    }
    for (int i = 0; i < W; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    size_t async = W * (N - N / 10);
    assert_int_equal(lt_notes_wait(&notes, async), async);
    char *seen = calloc(W + 1, N);
    for (size_t i = 0; i < notes.n; i++) {
        uint64_t w = notes.ids[i] / 100000, k = notes.ids[i] % 100000;
        assert_true(w >= 1 && w <= W && k < N && k % 10 != 0);
        assert_int_equal(seen[w * N + k], 0);
        seen[w * N + k] = 1;
        assert_int_equal(notes.status[i], 0);
    }
    free(seen);
    logstore_stats st;
    logstore_get_stats(ls, &st);
    assert_int_equal(st.batches, W * N);
    assert_int_equal(st.fsyncs, lt_io_fdatasyncs(&io));
    /* Each round has one fsync, and there are no more rounds than batches. */
    assert_int_equal(st.fsyncs, st.rounds);
    assert_true(st.rounds <= W * N);
    logstore_close(ls);
    /* Every batch is durable. */
    ls = lt_open(dir, NULL);
    for (int w = 1; w <= W; w++) {
        logstore_group_info gi;
        assert_int_equal(logstore_group_info_get(ls, (uint64_t)w, &gi), 0);
        assert_int_equal(gi.n_entries, N);
    }
    logstore_close(ls);
    lt_notes_free(&notes);
    lt_rmdir(dir);
}

static void test_close_drains_queue(void **state)
{
    (void)state;
    char *dir = lt_tmpdir("ls-drain");
    lt_io io;
    lt_io_init(&io);
    lt_notes notes;
    lt_notes_init(&notes);
    logstore_opts o = {.io = &io.io, .notify = lt_notify, .notify_arg = &notes};
    logstore *ls = lt_open(dir, &o);
    lt_gate_arm(&io);
    assert_int_equal(logstore_submit(ls, mk(0, 1, 1)), 0);
    assert_true(lt_gate_wait_entered(&io));
    for (uint64_t i = 1; i <= 50; i++) assert_int_equal(logstore_submit(ls, mk(i, 2, i)), 0);
    lt_gate_open(&io);
    logstore_close(ls); /* returns after every queued batch completed */
    assert_int_equal(notes.n, 51);
    ls = lt_open(dir, NULL);
    logstore_group_info gi;
    assert_int_equal(logstore_group_info_get(ls, 2, &gi), 0);
    assert_int_equal(gi.n_entries, 50);
    logstore_close(ls);
    lt_notes_free(&notes);
    lt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coalesced_round_single_fsync),
        cmocka_unit_test(test_many_threads_exactly_once),
        cmocka_unit_test(test_close_drains_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
