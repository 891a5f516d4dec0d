/* Store directory: exclusive lock, identity round trip, refusal of another
 * cluster, corrupt identity files, atomic replace. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "server/store_dir.h"

static char root[] = "/tmp/meridian-store-XXXXXX";

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/meridian-store-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_lock_is_exclusive(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/s1/nested", root);
    store_dir a, b;
    merr e = {0};
    assert_int_equal(store_dir_open(dir, &a, &e), 0);
    assert_int_equal(store_dir_open(dir, &b, &e), MERR_BUSY);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
    assert_non_null(strstr(e.msg, pid));
    store_dir_close(&a);
    merr_clear(&e);
    assert_int_equal(store_dir_open(dir, &b, &e), 0); /* released on close */
    store_dir_close(&b);
}

static void test_identity_roundtrip_and_other_cluster(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/s2", root);
    store_dir sd;
    merr e = {0};
    assert_int_equal(store_dir_open(dir, &sd, &e), 0);
    assert_false(sd.has_identity);
    char cid[STORE_CLUSTER_ID_MAX], other[STORE_CLUSTER_ID_MAX];
    assert_int_equal(store_new_cluster_id(cid, &e), 0);
    assert_int_equal(store_new_cluster_id(other, &e), 0);
    assert_int_equal(strlen(cid), 32);
    assert_string_not_equal(cid, other);
    assert_int_equal(store_dir_check_cluster(&sd, other, &e), 0); /* uninitialised: any */
    assert_int_equal(store_dir_set_identity(&sd, cid, 7, &e), 0);
    store_dir_close(&sd);

    assert_int_equal(store_dir_open(dir, &sd, &e), 0);
    assert_true(sd.has_identity);
    assert_string_equal(sd.cluster_id, cid);
    assert_int_equal(sd.node_id, 7);
    assert_int_equal(store_dir_check_cluster(&sd, cid, &e), 0);
    assert_int_equal(store_dir_check_cluster(&sd, other, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "belongs to cluster"));
    assert_int_equal(store_dir_set_identity(&sd, other, 7, &e), MERR_INVALID);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s/IDENTITY.tmp", dir);
    assert_false(mfs_exists(tmp)); /* the atomic replace leaves nothing behind */
    char sub[300];
    assert_int_equal(store_dir_subdir(&sd, "logs", sub, sizeof(sub), &e), 0);
    assert_true(mfs_exists(sub));
    store_dir_close(&sd);
}

static void test_corrupt_identity(void **state)
{
    (void)state;
    const char *bad[] = {
        "garbage",
        "format=1\ncluster_id=abc\n",                         /* no node id */
        "format=9\ncluster_id=abc\nnode_id=1\n",              /* newer format */
        "format=1\ncluster_id=ABC!\nnode_id=1\n",             /* bad cluster id */
        "format=1\ncluster_id=abc\nnode_id=0\n",              /* reserved id */
        "format=1\ncluster_id=abc\nnode_id=-4\n",             /* negative */
        "format=1\ncluster_id=abc\nnode_id=1\ncolour=blue\n", /* unknown key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char dir[256], p[300];
        snprintf(dir, sizeof(dir), "%s/c%zu", root, i);
        merr e = {0};
        assert_int_equal(mfs_mkdirs(dir, &e), 0);
        snprintf(p, sizeof(p), "%s/IDENTITY", dir);
        write_file(p, bad[i]);
        store_dir sd;
        assert_int_equal(store_dir_open(dir, &sd, &e), MERR_CORRUPT);
        assert_non_null(strstr(e.msg, "IDENTITY"));
        /* A refused open releases the lock. */
        assert_int_equal(sd.lock_fd, -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lock_is_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_roundtrip_and_other_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_identity, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
