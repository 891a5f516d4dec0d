/* Failure handling and many-ranges support: disk full, write and fsync errors
 * (fault VFS), corrupt files (real damaged bytes) marked and never served
 * until rebuilt from a snapshot, prepared transactions surviving reopen, and
 * the bounded handle cache evicting and reopening transparently. */
#include "th.h"

#include <fcntl.h>
#include <sqlite3.h>

static th_dir dir;

static int setup(void **state)
{
    th_mkdir(&dir);
    assert_int_equal(range_faultvfs_register(), 0);
    return 0;
}

static int teardown(void **state)
{
    th_rmdir(&dir);
    return 0;
}

static range *create_with(const char *name, const range_opts *o)
{
    char p[300];
    th_file(&dir, name, p, sizeof(p));
    range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
    range *r = NULL;
    merr e = {0};
    assert_int_equal(range_create(p, &d, o, &r, &e), 0);
    return r;
}

static void test_disk_full_and_io_errors(void **state)
{
    range_opts o = {.vfs = RANGE_FAULT_VFS};
    range *r = create_with("full.db", &o);
    th_put(r, "a", "1", 10);
    char big[20000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    static const range_fault_mode modes[] = {RANGE_FAULT_FULL, RANGE_FAULT_IOERR};
    static const int want[] = {MERR_NOSPACE, MERR_IO};
    for (int m = 0; m < 2; m++) {
        range_faultvfs_set(modes[m], 0);
        range_write w = th_w("b", big);
        range_batch b = {.ts = 20, .writes = &w, .nwrites = 1};
        int rc = range_apply(r, &b, 2, NULL);
        range_faultvfs_set(RANGE_FAULT_NONE, 0);
        assert_int_equal(rc, want[m]);
        assert_non_null(strstr(range_err(r)->msg, "sqlite"));
        /* Nothing of the failed batch is visible or counted; the slot did not move. */
        range_meta meta;
        range_get_meta(r, &meta);
        assert_int_equal(meta.applied, 1);
        assert_int_equal(meta.stats.versions, 1);
        assert_null(th_get(r, "b", 30));
    }
    /* The same slot applies once the disk has room again. */
    th_put(r, "b", "2", 20);
    char p[300];
    snprintf(p, sizeof(p), "%s", range_path(r));
    range_close(r);
    merr e = {0};
    assert_int_equal(range_open(p, &o, &r, &e), 0);
    assert_string_equal(th_get(r, "a", 30), "1");
    assert_string_equal(th_get(r, "b", 30), "2");
    /* A failing fsync is an error of range_sync (with something to sync). */
    th_put(r, "c", "3", 40);
    range_faultvfs_set(RANGE_FAULT_SYNC_IOERR, 0);
    uint64_t durable = 0;
    int rc = range_sync(r, &durable);
    range_faultvfs_set(RANGE_FAULT_NONE, 0);
    assert_int_equal(rc, MERR_IO);
    range_close(r);
}

/* Moves everything from the WAL into the database file (range handles skip
 * the checkpoint on close), so damage to the file is damage to the data. */
static void checkpoint_file(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

/* Overwrites n bytes at off with garbage. */
static void damage(const char *path, off_t off, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 0xA5, sizeof(junk));
    assert_true(n <= sizeof(junk));
    assert_int_equal(pwrite(fd, junk, n, off), (ssize_t)n);
    close(fd);
}

static range *big_range(const char *name)
{
    range *r = th_create(&dir, name, 4, "", "");
    char k[16], v[200];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    for (int i = 0; i < 400; i++) {
        snprintf(k, sizeof(k), "k%05d", i);
        th_put(r, k, v, 5);
    }
    uint64_t d;
    assert_int_equal(range_sync(r, &d), 0);
    return r;
}

static void test_corrupt_header_refused_and_rebuilt(void **state)
{
    range *good = big_range("good.db");
    char p[300];
    th_file(&dir, "bad.db", p, sizeof(p));
    range *r = big_range("bad.db");
    range_close(r);
    checkpoint_file(p);
    damage(p, 0, 100); /* the SQLite header */
    merr e = {0};
    assert_int_equal(range_open(p, NULL, &r, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, p));
    /* Marked: refused again, with the reason. */
    assert_int_equal(range_open(p, NULL, &r, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "marked corrupt"));
    /* Rebuilt from another replica's snapshot. */
    range_snap *s = NULL;
    range_install *in = NULL;
    assert_int_equal(range_snap_open(good, 0, &s, &e), 0);
    assert_int_equal(range_install_begin(p, NULL, &in, &e), 0);
    const uint8_t *c;
    size_t n;
    do {
        assert_int_equal(range_snap_next(s, &c, &n, &e), 0);
        if (n) assert_int_equal(range_install_chunk(in, c, n, &e), 0);
    } while (n);
    range_snap_close(s);
    assert_int_equal(range_install_finish(in, &e), 0);
    assert_int_equal(range_open(p, NULL, &r, &e), 0);
    assert_non_null(th_get(r, "k00399", 10));
    range_close(r);
    range_close(good);
}

static void test_corrupt_page_found_on_read(void **state)
{
    char p[300];
    th_file(&dir, "badpage.db", p, sizeof(p));
    range *r = big_range("badpage.db");
    range_close(r);
    checkpoint_file(p);
    /* Trash every page but the first (header, schema): the b-tree pages. */
    int fd = open(p, O_RDONLY);
    off_t size = lseek(fd, 0, SEEK_END);
    close(fd);
    for (off_t off = 4096; off < size; off += 4096) damage(p, off, 4096);
    merr e = {0};
    int rc = range_open(p, NULL, &r, &e);
    if (rc == 0) {
        /* Opening touched only intact pages: the first read hits damage. */
        uint8_t *v;
        size_t n;
        rc = range_get(r, (const uint8_t *)"k00200", 6, 10, &v, &n, NULL);
        assert_int_equal(rc, MERR_CORRUPT);
        assert_true(range_is_corrupt(r));
        /* Marked: the handle refuses writes too. */
        range_write w = th_w("x", "y");
        range_batch b = {.ts = 1, .writes = &w, .nwrites = 1};
        assert_int_equal(range_apply(r, &b, 1000, NULL), MERR_CORRUPT);
        range_close(r);
    }
    assert_int_equal(rc, MERR_CORRUPT);
    assert_int_equal(range_open(p, NULL, &r, &e), MERR_CORRUPT);
}

/* A disk that fills up during a snapshot install: a clear error, nothing at
 * the target path, no temp file left; the same stream installs afterwards. */
static void test_install_disk_full(void **state)
{
    range *src = big_range("isrc.db");
    char p[300], tmp[320];
    th_file(&dir, "idst.db", p, sizeof(p));
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    range_opts o = {.vfs = RANGE_FAULT_VFS};
    merr e = {0};
    int failed = 0;
    for (long after = 0; after < 40; after += 7) {
        range_snap *s = NULL;
        range_install *in = NULL;
        assert_int_equal(range_snap_open(src, 4096, &s, &e), 0);
        assert_int_equal(range_install_begin(p, &o, &in, &e), 0);
        range_faultvfs_set(RANGE_FAULT_FULL, after);
        const uint8_t *c;
        size_t n;
        int rc = 0;
        do {
            assert_int_equal(range_snap_next(s, &c, &n, &e), 0);
            if (n) rc = range_install_chunk(in, c, n, &e);
        } while (n && !rc);
        if (!rc) rc = range_install_finish(in, &e);
        range_faultvfs_set(RANGE_FAULT_NONE, 0);
        range_snap_close(s);
        if (rc) {
            failed++;
            assert_int_equal(rc, MERR_NOSPACE);
            range_install_abort(in);
            assert_int_equal(access(p, F_OK), -1);
            assert_int_equal(access(tmp, F_OK), -1);
        } else {
            range_destroy(p, NULL);
        }
    }
    assert_true(failed > 0);
    range_close(src);
}

static int list_cb(void *arg, const range_intent *it)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%.*s/%.*s/%zu;", (int)it->txn_len, (const char *)it->txn,
             (int)it->coord_len, (const char *)it->coord, it->nwrites);
    return 0;
}

/* A prepared delete after a prepared put: the intent statement must not
 * keep the put's value binding (it pointed into a log entry that is freed
 * by then; ASan saw it read). The put's bytes live in a buffer freed
 * between the two applies, as a log entry is. */
static void test_prepared_delete_after_put(void **state)
{
    (void)state;
    range *r = th_create(&dir, "prepdel.db", 5, "", "");
    th_put(r, "d", "there", 10);
    char *val = strdup("value-of-a-freed-entry");
    assert_non_null(val);
    range_write wp[1] = {{(const uint8_t *)"p", 1, (const uint8_t *)val, strlen(val), 0}};
    range_intent put = {(const uint8_t *)"T1", 2, 20, (const uint8_t *)"n1", 2, wp, 1, NULL, 0};
    range_batch b1 = {.prepares = &put, .nprepares = 1};
    assert_int_equal(range_apply(r, &b1, 2, NULL), 0);
    free(val);
    range_write wd[1] = {th_w("d", NULL)};
    range_intent del = {(const uint8_t *)"T2", 2, 21, (const uint8_t *)"n1", 2, wd, 1, NULL, 0};
    range_batch b2 = {.prepares = &del, .nprepares = 1};
    assert_int_equal(range_apply(r, &b2, 3, NULL), 0);
    range_resolve res[2] = {{(const uint8_t *)"T1", 2, 30}, {(const uint8_t *)"T2", 2, 30}};
    range_batch c = {.resolves = res, .nresolves = 2};
    assert_int_equal(range_apply(r, &c, 4, NULL), 0);
    assert_string_equal(th_get(r, "p", 100), "value-of-a-freed-entry");
    assert_null(th_get(r, "d", 100));
    assert_string_equal(th_get(r, "d", 29), "there");
    range_close(r);
}

static void test_prepared_survive_reopen(void **state)
{
    range *r = th_create(&dir, "prep.db", 5, "", "");
    th_put(r, "k", "old", 10);
    range_write w1[2] = {th_w("k", "new"), th_w("gone", NULL)};
    range_write w2[1] = {th_w("q", "qq")};
    range_intent its[2] = {
        {(const uint8_t *)"T1", 2, 20, (const uint8_t *)"n1", 2, w1, 2, NULL, 0},
        {(const uint8_t *)"T2", 2, 21, (const uint8_t *)"n2", 2, w2, 1, NULL, 0},
    };
    range_batch b = {.prepares = its, .nprepares = 2};
    assert_int_equal(range_apply(r, &b, 2, NULL), 0);
    /* Prepared writes are not versions yet. */
    assert_string_equal(th_get(r, "k", 100), "old");
    /* A duplicate prepare is refused and changes nothing. */
    range_batch dup = {.prepares = its, .nprepares = 1};
    assert_int_equal(range_apply(r, &dup, 3, NULL), MERR_INVALID);
    r = th_reopen(r);
    char out[256] = "";
    size_t n = 0;
    assert_int_equal(range_list_intents(r, list_cb, out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out, "T1/n1/2;T2/n2/1;");
    range_resolve res[2] = {{(const uint8_t *)"T1", 2, 30}, {(const uint8_t *)"T2", 2, 0}};
    range_batch c = {.resolves = res, .nresolves = 2};
    assert_int_equal(range_apply(r, &c, 3, NULL), 0);
    assert_string_equal(th_get(r, "k", 29), "old");
    assert_string_equal(th_get(r, "k", 30), "new");
    assert_null(th_get(r, "q", 100)); /* aborted */
    out[0] = 0;
    assert_int_equal(range_list_intents(r, list_cb, out, &n), 0);
    assert_int_equal(n, 0);
    /* A repeated resolve (a new leader re-proposing an outcome that was
     * already chosen) is a no-op: the slot applies, the versions stay. */
    range_resolve again[2] = {{(const uint8_t *)"T1", 2, 40}, {(const uint8_t *)"T9", 2, 0}};
    range_batch c2 = {.resolves = again, .nresolves = 2};
    assert_int_equal(range_apply(r, &c2, 4, NULL), 0);
    assert_string_equal(th_get(r, "k", 35), "new");
    assert_string_equal(th_get(r, "k", 100), "new");
    assert_null(th_get(r, "q", 100));
    range_meta m;
    range_get_meta(r, &m);
    assert_int_equal(m.applied, 4);
    assert_int_equal(m.stats.live_keys, 1);
    range_close(r);
}

static void test_handle_cache(void **state)
{
    enum { N = 60, CAP = 8 };
    char paths[N][300];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "c%02d.db", i);
        range_close(th_create(&dir, name, (uint64_t)i + 1, "", ""));
        th_file(&dir, name, paths[i], sizeof(paths[i]));
    }
    range_cache *c = NULL;
    assert_int_equal(range_cache_new(CAP, NULL, &c), 0);
    merr e = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            range *r = NULL;
            assert_int_equal(range_cache_acquire(c, paths[i], &r, &e), 0);
            char v[16];
            snprintf(v, sizeof(v), "v%d-%d", i, round);
            th_put(r, "key", v, (uint64_t)round + 1);
            range_cache_release(c, r);
            assert_true(range_cache_open_count(c) <= CAP);
        }
    }
    assert_true(range_cache_opens(c) >= 3 * N); /* evicted and reopened */
    for (int i = 0; i < N; i++) {
        range *r = NULL;
        assert_int_equal(range_cache_acquire(c, paths[i], &r, &e), 0);
        char v[16];
        snprintf(v, sizeof(v), "v%d-2", i);
        assert_string_equal(th_get(r, "key", 10), v);
        snprintf(v, sizeof(v), "v%d-0", i);
        assert_string_equal(th_get(r, "key", 1), v);
        range_cache_release(c, r);
    }
    /* Pinned handles are never closed under their user. */
    range *pinned[CAP + 2];
    for (int i = 0; i < CAP + 2; i++)
        assert_int_equal(range_cache_acquire(c, paths[i], &pinned[i], &e), 0);
    assert_int_equal(range_cache_open_count(c), CAP + 2);
    for (int i = 0; i < CAP + 2; i++) assert_non_null(th_get(pinned[i], "key", 10));
    assert_int_equal(range_cache_drop(c, paths[0]), MERR_BUSY);
    for (int i = 0; i < CAP + 2; i++) range_cache_release(c, pinned[i]);
    assert_true(range_cache_open_count(c) <= CAP);
    assert_int_equal(range_cache_drop(c, paths[CAP + 1]), 0);
    /* A missing database is a clear error, not a crash. */
    range *r = NULL;
    char missing[300];
    th_file(&dir, "missing.db", missing, sizeof(missing));
    assert_int_equal(range_cache_acquire(c, missing, &r, &e), MERR_NOTFOUND);
    range_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_full_and_io_errors),
        cmocka_unit_test(test_corrupt_header_refused_and_rebuilt),
        cmocka_unit_test(test_corrupt_page_found_on_read),
        cmocka_unit_test(test_install_disk_full),
        cmocka_unit_test(test_prepared_survive_reopen),
        cmocka_unit_test(test_prepared_delete_after_put),
        cmocka_unit_test(test_handle_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
