/* Crash test of the log store with real processes. A child process writes
 * numbered batches (entries of several groups, a hard state, now and then a
 * truncation) through the asynchronous API and, from the notifier, writes each
 * acknowledged batch id to a pipe. The parent SIGKILLs it at a seeded random
 * moment, reopens the store and checks that
 *   - every acknowledged batch is there, intact;
 *   - the visible batches are exactly a prefix 0..V-1 of those submitted, each
 *     whole: the state equals a model that applied exactly those batches (so no
 *     batch is half-visible and nothing else leaked in);
 * then lets a new child carry on from V. Small segments make the child roll,
 * compact and delete segments all the time, so kills land in those windows too.
 * On failure it prints the seed: LOGSTORE_CRASH_SEED=N replays the schedule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "replication/logstore.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define G        16 /* groups */
#define R        4  /* entries per batch */
#define WINDOW   32 /* batches in flight in the child */
#define KEEP     64 /* truncation keeps this many slots */
#define SEG_SIZE (16 * 1024)
/* The node's zero-ahead (logstore_opts.zero_ahead), scaled to the small segments:
 * kills then leave zero tails for recovery to skip. */
#define ZERO_AHEAD (4 * 1024)

static uint64_t rng_state;
static uint64_t rng(void)
{
    /* splitmix64: seeded, so a failing schedule replays. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t group_of(uint64_t k, int i)
{
    return (k * R + (uint64_t)i) % G + 1;
}
static uint64_t hs_group(uint64_t k)
{
    return k % G + 1;
}
static int has_trunc(uint64_t k)
{
    return k % 8 == 7;
}
static uint64_t trunc_at(uint64_t k)
{
    return k >= KEEP ? k - KEEP : 0;
}
static size_t value_of(uint64_t k, int i, char *out)
{
    size_t n = 10 + (size_t)((k * 7 + (uint64_t)i * 13) % 300);
    int h = snprintf(out, n + 1, "k%llu.i%d.", (unsigned long long)k, i);
    for (size_t j = (size_t)h; j < n; j++) out[j] = (char)('a' + (k + j) % 26);
    return n;
}

static logstore_batch *make_batch(uint64_t k)
{
    char v[400];
    logstore_batch *b = logstore_batch_new(k);
    for (int i = 0; i < R; i++) {
        size_t n = value_of(k, i, v);
        logstore_batch_entry(b, group_of(k, i), k, k % 5 + 1, v, n);
    }
    char hs[32];
    int n = snprintf(hs, sizeof(hs), "hs:%llu", (unsigned long long)k);
    logstore_batch_hardstate(b, hs_group(k), hs, (size_t)n);
    if (has_trunc(k)) logstore_batch_truncate(b, hs_group(k), trunc_at(k));
    return b;
}

/* ---- the child ---- */

static int ack_fd;
static pthread_mutex_t child_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t child_cv = PTHREAD_COND_INITIALIZER;
static int inflight;

static void child_notify(void *arg, const logstore_done *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i].status) _exit(3);
        uint64_t id = d[i].id;
        if (write(ack_fd, &id, sizeof(id)) != sizeof(id)) _exit(4);
    }
    pthread_mutex_lock(&child_mu);
    inflight -= (int)n;
    pthread_cond_signal(&child_cv);
    pthread_mutex_unlock(&child_mu);
}

static void child_main(const char *dir, uint64_t start, int fd)
{
    ack_fd = fd;
    logstore_opts o = {.segment_size = SEG_SIZE, .notify = child_notify, .zero_ahead = ZERO_AHEAD};
    logstore *ls = NULL;
    merr e = {0};
    if (logstore_open(dir, &o, &ls, &e)) {
        fprintf(stderr, "child: %s\n", merr_msg(&e));
        _exit(2);
    }
    for (uint64_t k = start;; k++) {
        if (k % 10 == 9) {
            /* Now and then the synchronous path. */
            if (logstore_write(ls, make_batch(k), &e)) _exit(5);
            if (write(ack_fd, &k, sizeof(k)) != sizeof(k)) _exit(4);
            continue;
        }
        pthread_mutex_lock(&child_mu);
        while (inflight >= WINDOW) pthread_cond_wait(&child_cv, &child_mu);
        inflight++;
        pthread_mutex_unlock(&child_mu);
        if (logstore_submit(ls, make_batch(k))) _exit(6);
    }
}

/* ---- the parent's check ---- */

typedef struct model_group {
    uint64_t trunc;
    int64_t hs; /* -1: none */
} model_group;

/* Checks that the store holds exactly batches [0, v); returns v. */
static uint64_t verify(const char *dir, uint64_t seed, int iter)
{
    logstore *ls = NULL;
    merr e = {0};
    logstore_opts o = {.segment_size = SEG_SIZE, .zero_ahead = ZERO_AHEAD};
    if (logstore_open(dir, &o, &ls, &e))
        fail_msg("seed %llu iter %d: reopen: %s", (unsigned long long)seed, iter, merr_msg(&e));
    /* The newest batch's entries are never truncated yet: V-1 is the highest
     * slot anywhere. */
    uint64_t v = 0;
    for (uint64_t g = 1; g <= G; g++) {
        logstore_group_info gi;
        if (logstore_group_info_get(ls, g, &gi) == 0 && gi.n_entries && gi.last_slot + 1 > v)
            v = gi.last_slot + 1;
    }
    model_group m[G + 1];
    for (int g = 0; g <= G; g++) m[g] = (model_group){0, -1};
    for (uint64_t k = 0; k < v; k++) {
        m[hs_group(k)].hs = (int64_t)k;
        if (has_trunc(k) && trunc_at(k) > m[hs_group(k)].trunc) m[hs_group(k)].trunc = trunc_at(k);
    }
    uint64_t expect_n[G + 1] = {0};
    char want[400];
    mbuf got = MBUF_INIT;
    for (uint64_t k = 0; k < v; k++) {
        for (int i = 0; i < R; i++) {
            uint64_t g = group_of(k, i), ballot = 0;
            int rc = logstore_entry(ls, g, k, &ballot, &got, &e);
            if (k < m[g].trunc) {
                if (rc != MERR_NOTFOUND)
                    fail_msg("seed %llu iter %d: group %llu slot %llu below truncation %llu "
                             "is visible",
                             (unsigned long long)seed, iter, (unsigned long long)g,
                             (unsigned long long)k, (unsigned long long)m[g].trunc);
                continue;
            }
            expect_n[g]++;
            size_t n = value_of(k, i, want);
            if (rc || ballot != k % 5 + 1 || got.len != n || memcmp(got.data, want, n))
                fail_msg("seed %llu iter %d: batch %llu of %llu visible: entry %d (group %llu) "
                         "%s",
                         (unsigned long long)seed, iter, (unsigned long long)k,
                         (unsigned long long)v, i, (unsigned long long)g,
                         rc ? merr_name(rc) : "has the wrong content");
        }
    }
    for (uint64_t g = 1; g <= G; g++) {
        logstore_group_info gi;
        logstore_group_info_get(ls, g, &gi);
        if (gi.n_entries != expect_n[g] || gi.truncated != m[g].trunc)
            fail_msg("seed %llu iter %d: group %llu has %llu entries (want %llu), truncated at "
                     "%llu (want %llu): a batch is half-visible",
                     (unsigned long long)seed, iter, (unsigned long long)g,
                     (unsigned long long)gi.n_entries, (unsigned long long)expect_n[g],
                     (unsigned long long)gi.truncated, (unsigned long long)m[g].trunc);
        int rc = logstore_hardstate(ls, g, &got);
        if (m[g].hs < 0) {
            if (rc != MERR_NOTFOUND)
                fail_msg("seed %llu: unexpected hard state", (unsigned long long)seed);
            continue;
        }
        int n = snprintf(want, sizeof(want), "hs:%lld", (long long)m[g].hs);
        if (rc || got.len != (size_t)n || memcmp(got.data, want, (size_t)n))
            fail_msg("seed %llu iter %d: group %llu hard state is not %s: a batch is "
                     "half-visible",
                     (unsigned long long)seed, iter, (unsigned long long)g, want);
    }
    mbuf_free(&got);
    logstore_close(ls);
    return v;
}

static void test_kill9_keeps_acknowledged_batches(void **state)
{
    (void)state;
    const char *s = getenv("LOGSTORE_CRASH_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    const char *it = getenv("LOGSTORE_CRASH_ITERS");
    int iters = it ? atoi(it) : 20;
    rng_state = seed;
    printf("logstore crash test: seed %llu, %d kills (LOGSTORE_CRASH_SEED=%llu to replay)\n",
           (unsigned long long)seed, iters, (unsigned long long)seed);
    char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/meridian-ls-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));

    uint64_t v = 0, total_acked = 0;
    for (int iter = 0; iter < iters; iter++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_main(dir, v, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        /* Kill after a random number of acknowledgements (sometimes before
         * the first), plus a random extra delay. */
        uint64_t target = rng() % 4 == 0 ? 0 : 1 + rng() % 400;
        int64_t extra_us = (int64_t)(rng() % 3000);
        uint64_t acked = 0, max_acked = 0;
        int any = 0;
        while (acked < target) {
            struct pollfd p = {pfd[0], POLLIN, 0};
            int pr = poll(&p, 1, 30000);
            if (pr == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                fail_msg("seed %llu iter %d: no acknowledgement in 30 s", (unsigned long long)seed,
                         iter);
            }
            uint64_t id;
            ssize_t r = read(pfd[0], &id, sizeof(id));
            if (r != sizeof(id)) {
                int st = 0;
                waitpid(pid, &st, 0);
                fail_msg("seed %llu iter %d: child died early (status %d)",
                         (unsigned long long)seed, iter, st);
            }
            acked++;
            any = 1;
            if (id > max_acked) max_acked = id;
        }
        usleep((useconds_t)extra_us);
        kill(pid, SIGKILL);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        /* Acknowledgements written before the kill count too. */
        uint64_t id;
        while (read(pfd[0], &id, sizeof(id)) == sizeof(id)) {
            acked++;
            any = 1;
            if (id > max_acked) max_acked = id;
        }
        close(pfd[0]);
        total_acked += acked;
        uint64_t nv = verify(dir, seed, iter);
        if (any && nv <= max_acked)
            fail_msg("seed %llu iter %d: batch %llu was acknowledged but only %llu batches "
                     "survived",
                     (unsigned long long)seed, iter, (unsigned long long)max_acked,
                     (unsigned long long)nv);
        assert_true(nv >= v);
        v = nv;
    }
    printf("logstore crash test: %llu batches acknowledged over %d kills, %llu survived\n",
           (unsigned long long)total_acked, iters, (unsigned long long)v);
    assert_true(total_acked > 0);
    /* Clean up. */
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[4400];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_keeps_acknowledged_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
