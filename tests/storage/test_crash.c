/* Crash tests with real processes: a forked child applies batches (or splits
 * a range) and is SIGKILLed at a seeded random moment; the parent reopens the
 * database and checks that it holds exactly the effects of slots <= applied
 * (and that replaying the log from there converges), or that the split either
 * fully happened or not at all. Every child is killed and reaped by PID.
 *
 *   storage_crash [--seeds A-B]   (default 1-12; failures print the seed) */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/mtime.h"
#include "storage/range.h"

static unsigned seed_lo = 1, seed_hi = 12;
static char dirpath[256];

#define NKEYS  64
#define PERBAT 40

/* The effect of slot s: PERBAT writes at ts = s, a delete every 7th. */
static void batch_for(uint64_t s, char keys[PERBAT][16], char vals[PERBAT][32], range_write *w)
{
    for (int j = 0; j < PERBAT; j++) {
        snprintf(keys[j], 16, "k%03u", (unsigned)((s * 13 + (uint64_t)j * 5) % NKEYS));
        snprintf(vals[j], 32, "s%llu-j%d", (unsigned long long)s, j);
        int del = (s + (uint64_t)j) % 7 == 0;
        w[j] = (range_write){(const uint8_t *)keys[j], strlen(keys[j]), (const uint8_t *)vals[j],
                             strlen(vals[j]), del};
    }
}

static int apply_slot(range *r, uint64_t s)
{
    char keys[PERBAT][16], vals[PERBAT][32];
    range_write w[PERBAT];
    batch_for(s, keys, vals, w);
    range_batch b = {.ts = s, .writes = w, .nwrites = PERBAT};
    return range_apply(r, &b, s, NULL);
}

/* The expected latest value of each key after slots 1..a ("" = absent). */
static void model(uint64_t a, char out[NKEYS][32])
{
    memset(out, 0, NKEYS * 32);
    for (uint64_t s = 1; s <= a; s++) {
        char keys[PERBAT][16], vals[PERBAT][32];
        range_write w[PERBAT];
        batch_for(s, keys, vals, w);
        for (int j = 0; j < PERBAT; j++) {
            int k = atoi(keys[j] + 1);
            if (w[j].del)
                out[k][0] = 0;
            else
                memcpy(out[k], vals[j], 32);
        }
    }
}

static void check_matches(range *r, uint64_t a, unsigned seed)
{
    char want[NKEYS][32];
    model(a, want);
    int64_t live = 0;
    for (int k = 0; k < NKEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%03d", k);
        uint8_t *v = NULL;
        size_t n = 0;
        int rc = range_get(r, (const uint8_t *)key, strlen(key), RANGE_TS_MAX, &v, &n, NULL);
        if (!want[k][0]) {
            if (rc != MERR_NOTFOUND)
                fprintf(stderr, "seed %u: key %s should be absent\n", seed, key);
            assert_int_equal(rc, MERR_NOTFOUND);
            continue;
        }
        live++;
        if (rc || n != strlen(want[k]) || memcmp(v, want[k], n) != 0)
            fprintf(stderr, "seed %u applied %llu: key %s wrong\n", seed, (unsigned long long)a,
                    key);
        assert_int_equal(rc, 0);
        assert_memory_equal(v, want[k], n);
        free(v);
    }
    range_meta m;
    range_get_meta(r, &m);
    assert_int_equal(m.stats.live_keys, live);
}

/* Left [,k032) and right [k032,) together hold exactly slots 1..60, each key
 * on its own side only. */
static void check_pair(range *l, range *r)
{
    char want[NKEYS][32];
    model(60, want);
    range_meta lm, rm;
    range_get_meta(l, &lm);
    range_get_meta(r, &rm);
    int64_t live = 0;
    for (int k = 0; k < NKEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%03d", k);
        uint8_t *v = NULL;
        size_t n = 0;
        range *own = k < 32 ? l : r, *other = k < 32 ? r : l;
        assert_int_equal(range_get(other, (const uint8_t *)key, 4, RANGE_TS_MAX, &v, &n, NULL),
                         MERR_RANGE);
        int rc = range_get(own, (const uint8_t *)key, 4, RANGE_TS_MAX, &v, &n, NULL);
        assert_int_equal(rc, want[k][0] ? 0 : MERR_NOTFOUND);
        if (!rc) {
            live++;
            assert_memory_equal(v, want[k], n);
        }
        free(v);
    }
    assert_int_equal(lm.stats.live_keys + rm.stats.live_keys, live);
}

static void path(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dirpath, name);
}

static void kill_child(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
}

/* Reads one progress byte from the child; a timeout guards against hangs. */
static int wait_byte(int fd, int64_t timeout_ns)
{
    int64_t end = mtime_mono_ns() + timeout_ns;
    char c;
    while (mtime_mono_ns() < end) {
        ssize_t n = read(fd, &c, 1);
        if (n == 1) return c;
        if (n == 0) return -1;
        if (errno != EINTR) return -1;
    }
    return -1;
}

static void test_kill_mid_apply(void **state)
{
    for (unsigned seed = seed_lo; seed <= seed_hi; seed++) {
        srand(seed);
        char p[300];
        path("apply.db", p, sizeof(p));
        range_destroy(p, NULL);
        range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
        range *r = NULL;
        merr e = {0};
        assert_int_equal(range_create(p, &d, NULL, &r, &e), 0);
        range_close(r);
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        uint64_t target = 5 + (uint64_t)(rand() % 120);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            range *c = NULL;
            if (range_open(p, NULL, &c, NULL)) _exit(3);
            for (uint64_t s = 1;; s++) {
                if (apply_slot(c, s)) _exit(4);
                if (s == target && write(pfd[1], "x", 1) != 1) _exit(5);
            }
        }
        close(pfd[1]);
        int got = wait_byte(pfd[0], 60 * MTIME_S);
        close(pfd[0]);
        /* Kill somewhere in the next few batches: a seeded spin, not a
         * sleep the result depends on. */
        volatile unsigned spin = (unsigned)(rand() % 400000);
        while (spin) spin--;
        kill_child(pid);
        assert_int_equal(got, 'x');
        assert_int_equal(range_open(p, NULL, &r, &e), 0);
        range_meta m;
        range_get_meta(r, &m);
        assert_true(m.applied >= target);
        check_matches(r, m.applied, seed);
        /* Replaying the log from an earlier point converges exactly. */
        uint64_t a = m.applied;
        for (uint64_t s = a > 3 ? a - 3 : 1; s <= a + 5; s++) assert_int_equal(apply_slot(r, s), 0);
        check_matches(r, a + 5, seed);
        range_close(r);
    }
}

/* Builds the pre-split left range (slots 1..60) at lp. */
static void make_left(const char *lp)
{
    range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
    range *r = NULL;
    merr e = {0};
    assert_int_equal(range_create(lp, &d, NULL, &r, &e), 0);
    for (uint64_t s = 1; s <= 60; s++) assert_int_equal(apply_slot(r, s), 0);
    range_close(r);
}

/* How long a split takes here, so kill points spread over all of it. */
static int64_t split_duration_ns(void)
{
    char lp[300], rp[300];
    path("cal-left.db", lp, sizeof(lp));
    path("cal-right.db", rp, sizeof(rp));
    make_left(lp);
    range *r = NULL;
    assert_int_equal(range_open(lp, NULL, &r, NULL), 0);
    int64_t t0 = mtime_mono_ns();
    assert_int_equal(range_split(r, (const uint8_t *)"k032", 4, 2, rp, 61), 0);
    int64_t dt = mtime_mono_ns() - t0;
    range_close(r);
    range_destroy(lp, NULL);
    range_destroy(rp, NULL);
    return dt > 0 ? dt : 1;
}

static void test_kill_mid_split(void **state)
{
    int done_n = 0, undone_n = 0;
    int64_t window = split_duration_ns() * 13 / 10 + 1;
    for (unsigned seed = seed_lo; seed <= seed_hi; seed++) {
        srand(seed * 7919u);
        char lp[300], rp[300];
        path("left.db", lp, sizeof(lp));
        path("right.db", rp, sizeof(rp));
        range_destroy(lp, NULL);
        range_destroy(rp, NULL);
        make_left(lp);
        range *r = NULL;
        merr e = {0};
        assert_int_equal(range_open(lp, NULL, &r, &e), 0);
        range_meta m0;
        range_get_meta(r, &m0);
        range_close(r);
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            range *c = NULL;
            if (range_open(lp, NULL, &c, NULL)) _exit(3);
            if (write(pfd[1], "s", 1) != 1) _exit(5);
            if (range_split(c, (const uint8_t *)"k032", 4, 2, rp, 61)) _exit(4);
            if (write(pfd[1], "d", 1) != 1) _exit(5);
            pause();
            _exit(0);
        }
        close(pfd[1]);
        int got = wait_byte(pfd[0], 60 * MTIME_S);
        /* The kill point: uniform over the calibrated split time (+30%). */
        int64_t delay = (int64_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % (uint64_t)window);
        struct timespec ts = {(time_t)(delay / MTIME_S), (long)(delay % MTIME_S)};
        nanosleep(&ts, NULL);
        kill_child(pid);
        close(pfd[0]);
        assert_int_equal(got, 's');
        assert_int_equal(range_open(lp, NULL, &r, &e), 0);
        range_meta m;
        range_get_meta(r, &m);
        char tmp[320];
        snprintf(tmp, sizeof(tmp), "%s.tmp", rp);
        assert_int_equal(access(tmp, F_OK), -1);
        if (access(rp, F_OK) == 0) {
            /* Happened: left [,k032) and right [k032,), both generation 2. */
            done_n++;
            range *rr = NULL;
            assert_int_equal(range_open(rp, NULL, &rr, &e), 0);
            range_meta rm;
            range_get_meta(rr, &rm);
            assert_int_equal(m.applied, 61);
            assert_int_equal(rm.applied, 61);
            assert_int_equal(m.generation, 2);
            assert_int_equal(rm.generation, 2);
            assert_int_equal(m.end_len, 4);
            assert_memory_equal(m.end, "k032", 4);
            assert_int_equal(m.stats.versions + rm.stats.versions, m0.stats.versions);
            assert_int_equal(m.stats.live_keys + rm.stats.live_keys, m0.stats.live_keys);
            assert_int_equal(m.stats.total_bytes + rm.stats.total_bytes, m0.stats.total_bytes);
            check_pair(r, rr);
            range_close(rr);
        } else {
            /* Not happened: the left is untouched. */
            undone_n++;
            assert_int_equal(m.applied, 60);
            assert_int_equal(m.generation, 1);
            assert_int_equal(m.end_len, 0);
            assert_int_equal(m.stats.versions, m0.stats.versions);
            check_matches(r, 60, seed);
        }
        range_close(r);
    }
    printf("kill mid-split: %d splits complete, %d rolled back (seeds %u-%u, window %.2f ms)\n",
           done_n, undone_n, seed_lo, seed_hi, (double)window / 1e6);
}

/* Makes left [,k032) and right [k032,) by a split of the slot 1..60 range. */
static void make_pair(const char *lp, const char *rp)
{
    make_left(lp);
    range *r = NULL;
    assert_int_equal(range_open(lp, NULL, &r, NULL), 0);
    assert_int_equal(range_split(r, (const uint8_t *)"k032", 4, 2, rp, 61), 0);
    range_close(r);
}

static int64_t merge_duration_ns(void)
{
    char lp[300], rp[300];
    path("cal-left.db", lp, sizeof(lp));
    path("cal-right.db", rp, sizeof(rp));
    make_pair(lp, rp);
    range *l = NULL, *r = NULL;
    assert_int_equal(range_open(lp, NULL, &l, NULL), 0);
    assert_int_equal(range_open(rp, NULL, &r, NULL), 0);
    int64_t t0 = mtime_mono_ns();
    assert_int_equal(range_merge(l, r, 62), 0);
    int64_t dt = mtime_mono_ns() - t0;
    range_close(l);
    range_destroy(lp, NULL);
    return dt > 0 ? dt : 1;
}

static void test_kill_mid_merge(void **state)
{
    int done_n = 0, undone_n = 0;
    int64_t window = merge_duration_ns() * 13 / 10 + 1;
    for (unsigned seed = seed_lo; seed <= seed_hi; seed++) {
        srand(seed * 104729u);
        char lp[300], rp[300];
        path("mleft.db", lp, sizeof(lp));
        path("mright.db", rp, sizeof(rp));
        range_destroy(lp, NULL);
        range_destroy(rp, NULL);
        make_pair(lp, rp);
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            range *l = NULL, *r = NULL;
            if (range_open(lp, NULL, &l, NULL) || range_open(rp, NULL, &r, NULL)) _exit(3);
            if (write(pfd[1], "s", 1) != 1) _exit(5);
            if (range_merge(l, r, 62)) _exit(4);
            pause();
            _exit(0);
        }
        close(pfd[1]);
        int got = wait_byte(pfd[0], 60 * MTIME_S);
        int64_t delay = (int64_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % (uint64_t)window);
        struct timespec ts = {(time_t)(delay / MTIME_S), (long)(delay % MTIME_S)};
        nanosleep(&ts, NULL);
        kill_child(pid);
        close(pfd[0]);
        assert_int_equal(got, 's');
        range *l = NULL;
        merr e = {0};
        assert_int_equal(range_open(lp, NULL, &l, &e), 0);
        range_meta m;
        range_get_meta(l, &m);
        if (m.end_len == 0) {
            /* Merged: the right db is gone, the left holds everything. */
            done_n++;
            assert_int_equal(access(rp, F_OK), -1);
            assert_int_equal(m.applied, 62);
            assert_int_equal(m.generation, 3);
            check_matches(l, 60, seed);
        } else {
            /* Not merged: both sides as they were. */
            undone_n++;
            assert_int_equal(m.applied, 61);
            range *r = NULL;
            assert_int_equal(range_open(rp, NULL, &r, &e), 0);
            range_meta rm;
            range_get_meta(r, &rm);
            assert_int_equal(rm.applied, 61);
            assert_int_equal(m.end_len, 4);
            check_pair(l, r);
            range_close(r);
        }
        range_close(l);
    }
    printf("kill mid-merge: %d merges complete, %d not done (seeds %u-%u, window %.2f ms)\n",
           done_n, undone_n, seed_lo, seed_hi, (double)window / 1e6);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--seeds") == 0 && sscanf(argv[i + 1], "%u-%u", &seed_lo, &seed_hi) < 1)
            return 2;
    if (seed_hi < seed_lo) seed_hi = seed_lo;
    snprintf(dirpath, sizeof(dirpath), "/tmp/meridian-crash-XXXXXX");
    if (!mkdtemp(dirpath)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_mid_apply),
        cmocka_unit_test(test_kill_mid_split),
        cmocka_unit_test(test_kill_mid_merge),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dirpath);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
