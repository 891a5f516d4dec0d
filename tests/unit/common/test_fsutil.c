/* File-system helpers: mkdirs, atomic replace, bounded reads, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"

static void test_atomic_write_and_read(void **state)
{
    (void)state;
    char root[] = "/tmp/meridian-fs-XXXXXX";
    assert_non_null(mkdtemp(root));
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "%s/a/b/c", root);
    merr e = {0};
    assert_int_equal(mfs_mkdirs(dir, &e), 0);
    assert_int_equal(mfs_mkdirs(dir, &e), 0); /* idempotent */
    snprintf(path, sizeof(path), "%s/f", dir);
    assert_false(mfs_exists(path));
    assert_int_equal(mfs_write_atomic(path, "one", 3, &e), 0);
    assert_int_equal(mfs_write_atomic(path, "second", 6, &e), 0);
    mbuf b = MBUF_INIT;
    assert_int_equal(mfs_read_all(path, 100, &b, &e), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "second", 6);
    mbuf_reset(&b);
    assert_int_equal(mfs_read_all(path, 3, &b, &e), MERR_TOOBIG);
    mbuf_reset(&b);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    assert_int_equal(mfs_read_all(missing, 100, &b, &e), MERR_NOTFOUND);
    assert_non_null(strstr(e.msg, missing));
    mbuf_free(&b);
    /* A file where a directory should be. */
    char under[200];
    snprintf(under, sizeof(under), "%s/x", path);
    assert_true(mfs_mkdirs(under, &e) < 0);
    assert_int_equal(mfs_mkdirs(path, &e), MERR_INVALID);
    /* Writing into a missing directory fails cleanly. */
    assert_int_equal(mfs_write_atomic(under, "z", 1, &e) < 0, 1);
    assert_int_equal(mfs_remove_tree(root, &e), 0);
    assert_false(mfs_exists(root));
}

/* rm -rf: nested directories, files, and a symlink that must be removed
 * itself, never followed (its target outside the tree survives). */
static void test_remove_tree(void **state)
{
    (void)state;
    char root[] = "/tmp/meridian-fs-XXXXXX", outside[] = "/tmp/meridian-fs-XXXXXX";
    assert_non_null(mkdtemp(root));
    assert_non_null(mkdtemp(outside));
    char p[256];
    merr e = {0};
    snprintf(p, sizeof(p), "%s/a/b/c", root);
    assert_int_equal(mfs_mkdirs(p, &e), 0);
    snprintf(p, sizeof(p), "%s/a/b/c/f", root);
    assert_int_equal(mfs_write_atomic(p, "x", 1, &e), 0);
    snprintf(p, sizeof(p), "%s/a/g", root);
    assert_int_equal(mfs_write_atomic(p, "y", 1, &e), 0);
    char keep[256];
    snprintf(keep, sizeof(keep), "%s/keep", outside);
    assert_int_equal(mfs_write_atomic(keep, "z", 1, &e), 0);
    snprintf(p, sizeof(p), "%s/a/link", root);
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(mfs_remove_tree(root, &e), 0);
    assert_false(mfs_exists(root));
    assert_true(mfs_exists(keep));
    assert_int_equal(mfs_remove_tree(root, &e), 0); /* already gone: fine */
    assert_int_equal(mfs_remove_tree(outside, &e), 0);
    assert_false(mfs_exists(outside));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_and_read),
        cmocka_unit_test(test_remove_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
