/* Helpers shared by the log store unit tests (see ls_testutil.h). */
#include "ls_testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *lt_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    assert_non_null(path);
    snprintf(path, 4096, "%s/meridian-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    assert_non_null(mkdtemp(path));
    return path;
}

void lt_rmdir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[4200];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static ssize_t t_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    lt_io *t = ctx;
    pthread_mutex_lock(&t->mu);
    t->pwrites++;
    size_t short_bytes = t->short_write_bytes;
    int err = 0;
    if (short_bytes) {
        t->short_write_bytes = 0;
    } else if (t->fail_pwrite_errno && t->fail_pwrite_count) {
        err = t->fail_pwrite_errno;
        if (t->fail_pwrite_count > 0 && --t->fail_pwrite_count == 0) t->fail_pwrite_errno = 0;
    }
    pthread_mutex_unlock(&t->mu);
    if (short_bytes && short_bytes < n) return pwrite(fd, buf, short_bytes, off);
    if (err) {
        errno = err;
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

static int t_fdatasync(void *ctx, int fd)
{
    lt_io *t = ctx;
    pthread_mutex_lock(&t->mu);
    t->fdatasyncs++;
    if (t->gate_armed) {
        t->in_gate = 1;
        pthread_cond_broadcast(&t->cv);
        while (t->gate_armed) pthread_cond_wait(&t->cv, &t->mu);
        t->in_gate = 0;
    }
    int err = t->fail_fdatasync_errno;
    pthread_mutex_unlock(&t->mu);
    if (err) {
        errno = err;
        return -1;
    }
    return fdatasync(fd);
}

static int t_fsync_dir(void *ctx, int fd)
{
    lt_io *t = ctx;
    pthread_mutex_lock(&t->mu);
    t->dirsyncs++;
    int err = t->fail_dirsync_errno;
    pthread_mutex_unlock(&t->mu);
    if (err) {
        errno = err;
        return -1;
    }
    return fsync(fd);
}

static int t_ftruncate(void *ctx, int fd, off_t len)
{
    lt_io *t = ctx;
    pthread_mutex_lock(&t->mu);
    t->ftruncates++;
    pthread_mutex_unlock(&t->mu);
    return ftruncate(fd, len);
}

void lt_io_init(lt_io *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->io = (logstore_io){t_pwrite, t_fdatasync, t_fsync_dir, t_ftruncate, t};
}

void lt_io_set(lt_io *t, int pwrite_errno, int pwrite_count, size_t short_bytes, int sync_errno)
{
    pthread_mutex_lock(&t->mu);
    t->fail_pwrite_errno = pwrite_errno;
    t->fail_pwrite_count = pwrite_count;
    t->short_write_bytes = short_bytes;
    t->fail_fdatasync_errno = sync_errno;
    pthread_mutex_unlock(&t->mu);
}

void lt_gate_arm(lt_io *t)
{
    pthread_mutex_lock(&t->mu);
    t->gate_armed = 1;
    pthread_mutex_unlock(&t->mu);
}

int lt_gate_wait_entered(lt_io *t)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&t->mu);
    while (!t->in_gate)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT) break;
    int in = t->in_gate;
    pthread_mutex_unlock(&t->mu);
    return in;
}

void lt_gate_open(lt_io *t)
{
    pthread_mutex_lock(&t->mu);
    t->gate_armed = 0;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

int lt_io_fdatasyncs(lt_io *t)
{
    pthread_mutex_lock(&t->mu);
    int n = t->fdatasyncs;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void lt_notes_init(lt_notes *n)
{
    memset(n, 0, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
}

void lt_notes_free(lt_notes *n)
{
    free(n->ids);
    free(n->status);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
}

void lt_notify(void *arg, const logstore_done *done, size_t k)
{
    lt_notes *n = arg;
    pthread_mutex_lock(&n->mu);
    if (n->n + k > n->cap) {
        size_t cap = n->cap ? n->cap : 64;
        while (cap < n->n + k) cap *= 2;
        n->ids = realloc(n->ids, cap * sizeof(*n->ids));
        n->status = realloc(n->status, cap * sizeof(*n->status));
        n->cap = cap;
    }
    for (size_t i = 0; i < k; i++) {
        n->ids[n->n] = done[i].id;
        n->status[n->n++] = done[i].status;
    }
    n->calls++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

size_t lt_notes_wait(lt_notes *n, size_t want)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&n->mu);
    while (n->n < want) {
        if (pthread_cond_timedwait(&n->cv, &n->mu, &dl) == ETIMEDOUT) break;
    }
    size_t got = n->n;
    pthread_mutex_unlock(&n->mu);
    return got;
}

logstore *lt_open(const char *dir, const logstore_opts *opts)
{
    logstore *ls = NULL;
    merr e = {0};
    int rc = logstore_open(dir, opts, &ls, &e);
    if (rc) fail_msg("logstore_open %s: %s", dir, merr_msg(&e));
    return ls;
}

int lt_put(logstore *ls, uint64_t group, uint64_t slot, uint64_t ballot, const char *val)
{
    logstore_batch *b = logstore_batch_new(slot);
    assert_non_null(b);
    assert_int_equal(logstore_batch_entry(b, group, slot, ballot, val, strlen(val)), 0);
    merr e = {0};
    return logstore_write(ls, b, &e);
}

void lt_barrier(logstore *ls)
{
    /* A round that compacted something may leave a segment to delete after it
     * completes; a round that did not compact and carries no records leaves
     * nothing, and the deletions of earlier rounds happen before it starts. */
    for (int i = 0; i < 1000; i++) {
        logstore_stats a, z;
        logstore_get_stats(ls, &a);
        logstore_batch *b = logstore_batch_new(UINT64_MAX);
        assert_non_null(b);
        assert_int_equal(logstore_write(ls, b, NULL), 0);
        logstore_get_stats(ls, &z);
        if (z.compactions == a.compactions) return;
    }
    fail_msg("compaction never settled");
}

void lt_expect(logstore *ls, uint64_t group, uint64_t slot, uint64_t ballot, const char *val)
{
    mbuf v = MBUF_INIT;
    uint64_t bal = 0;
    merr e = {0};
    int rc = logstore_entry(ls, group, slot, &bal, &v, &e);
    if (rc)
        fail_msg("group %llu slot %llu: %s (%s)", (unsigned long long)group,
                 (unsigned long long)slot, merr_name(rc), merr_msg(&e));
    assert_true(bal == ballot);
    assert_int_equal(v.len, strlen(val));
    assert_memory_equal(v.data, val, v.len);
    mbuf_free(&v);
}

void lt_expect_missing(logstore *ls, uint64_t group, uint64_t slot)
{
    mbuf v = MBUF_INIT;
    uint64_t bal = 0;
    assert_int_equal(logstore_entry(ls, group, slot, &bal, &v, NULL), MERR_NOTFOUND);
    mbuf_free(&v);
}
