/* Seeded random damage to a multi-segment store (bit flips, overwritten runs,
 * truncations, anywhere in any segment): opening either succeeds or fails with
 * MERR_CORRUPT and a message, never crashes; and if it succeeds, every value it
 * returns is one that was written (values name their own group, slot and
 * ballot), and the store accepts and keeps new writes. */
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

#define ITERS 250

static uint64_t rs;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static size_t mkval(char *out, size_t cap, uint64_t g, uint64_t s, uint64_t b)
{
    int n = snprintf(out, cap, "g%llu-s%llu-b%llu|", (unsigned long long)g, (unsigned long long)s,
                     (unsigned long long)b);
    size_t len = (size_t)n + (size_t)((g * 31 + s * 7) % 200);
    for (size_t i = (size_t)n; i < len; i++) out[i] = (char)('a' + (i + s) % 26);
    out[len] = 0;
    return len;
}

static int nsegs(const char *dir, char names[][64])
{
    DIR *d = opendir(dir);
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "seg-", 4) && k < 64)
            snprintf(names[k++], 64, "%.60s", de->d_name);
    closedir(d);
    qsort(names, (size_t)k, 64, (int (*)(const void *, const void *))strcmp);
    return k;
}

static void copy_dir(const char *from, const char *to)
{
    char names[64][64];
    int k = nsegs(to, names);
    char p[4200];
    for (int i = 0; i < k; i++) {
        snprintf(p, sizeof(p), "%s/%s", to, names[i]);
        unlink(p);
    }
    k = nsegs(from, names);
    for (int i = 0; i < k; i++) {
        char a[4200], b[4200];
        snprintf(a, sizeof(a), "%s/%s", from, names[i]);
        snprintf(b, sizeof(b), "%s/%s", to, names[i]);
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, n, out);
        fclose(in);
        fclose(out);
    }
}

static void mutate(const char *dir)
{
    char names[64][64];
    int k = nsegs(dir, names);
    int n = 1 + (int)(rnd() % 3);
    for (int m = 0; m < n; m++) {
        char p[4200];
        /* Mostly the last segment, where a crash does its damage. */
        int which = rnd() % 3 ? k - 1 : (int)(rnd() % (uint64_t)k);
        snprintf(p, sizeof(p), "%s/%s", dir, names[which]);
        int fd = open(p, O_RDWR);
        struct stat sb;
        fstat(fd, &sb);
        if (sb.st_size == 0) {
            close(fd);
            continue;
        }
        off_t at = (off_t)(rnd() % (uint64_t)sb.st_size);
        switch (rnd() % 3) {
        case 0: { /* flip a bit */
            uint8_t c;
            pread(fd, &c, 1, at);
            c ^= (uint8_t)(1u << (rnd() % 8));
            pwrite(fd, &c, 1, at);
            break;
        }
        case 1: { /* overwrite a run with garbage */
            uint8_t junk[64];
            for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (uint8_t)rnd();
            size_t len = 1 + rnd() % sizeof(junk);
            if ((off_t)len > sb.st_size - at) len = (size_t)(sb.st_size - at);
            pwrite(fd, junk, len, at);
            break;
        }
        default: /* cut */ ftruncate(fd, at);
        }
        close(fd);
    }
}

typedef struct check_ctx {
    uint64_t group, seen;
} check_ctx;

static int check_entry(void *arg, uint64_t slot, uint64_t ballot, const uint8_t *val, size_t n)
{
    check_ctx *c = arg;
    char want[400];
    size_t len = mkval(want, sizeof(want), c->group, slot, ballot);
    assert_int_equal(n, len);
    assert_memory_equal(val, want, len);
    c->seen++;
    return 0;
}

static void check_store(logstore *ls)
{
    uint64_t *ids;
    size_t n;
    assert_int_equal(logstore_groups(ls, &ids, &n), 0);
    for (size_t i = 0; i < n; i++) {
        logstore_group_info gi;
        assert_int_equal(logstore_group_info_get(ls, ids[i], &gi), 0);
        check_ctx c = {ids[i], 0};
        merr e = {0};
        assert_int_equal(logstore_scan(ls, ids[i], 0, UINT64_MAX, check_entry, &c, &e), 0);
        assert_int_equal(c.seen, gi.n_entries);
    }
    free(ids);
}

static void test_random_damage(void **state)
{
    (void)state;
    const char *s = getenv("LOGSTORE_MUTATION_SEED");
    rs = s ? strtoull(s, NULL, 10) : 0x5eed1234abcdULL;
    if (!rs) rs = 1;
    uint64_t seed = rs;
    char *pristine = lt_tmpdir("ls-mut-src"), *work = lt_tmpdir("ls-mut");
    logstore_opts o = {.segment_size = 4096};
    logstore *ls = lt_open(pristine, &o);
    char v[400];
    for (uint64_t slot = 1; slot <= 40; slot++) {
        logstore_batch *b = logstore_batch_new(slot);
        for (uint64_t g = 1; g <= 3; g++) {
            uint64_t bal = 1 + slot % 3;
            size_t len = mkval(v, sizeof(v), g, slot, bal);
            assert_int_equal(logstore_batch_entry(b, g, slot, bal, v, len), 0);
        }
        assert_int_equal(logstore_batch_hardstate(b, slot % 3 + 1, "hs", 2), 0);
        if (slot % 10 == 0) assert_int_equal(logstore_batch_truncate(b, 2, slot - 5), 0);
        assert_int_equal(logstore_write(ls, b, NULL), 0);
    }
    logstore_close(ls);
    char names[64][64];
    assert_true(nsegs(pristine, names) >= 3);
    int opened = 0, refused = 0;
    for (int it = 0; it < ITERS; it++) {
        copy_dir(pristine, work);
        mutate(work);
        merr e = {0};
        ls = NULL;
        int rc = logstore_open(work, &o, &ls, &e);
        if (rc) {
            if (rc != MERR_CORRUPT)
                fail_msg("seed %llu iter %d: open: %s %s", (unsigned long long)seed, it,
                         merr_name(rc), merr_msg(&e));
            assert_true(strlen(e.msg) > 0);
            refused++;
            continue;
        }
        opened++;
        check_store(ls);
        size_t len = mkval(v, sizeof(v), 9, 1, 1);
        logstore_batch *b = logstore_batch_new(0);
        assert_int_equal(logstore_batch_entry(b, 9, 1, 1, v, len), 0);
        assert_int_equal(logstore_write(ls, b, &e), 0);
        logstore_close(ls);
        ls = lt_open(work, &o);
        check_store(ls);
        lt_expect(ls, 9, 1, 1, v);
        logstore_close(ls);
    }
    printf("mutations: %d opened, %d refused as corrupt (seed %llu)\n", opened, refused,
           (unsigned long long)seed);
    assert_true(opened > 0 && refused > 0);
    lt_rmdir(pristine);
    lt_rmdir(work);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
