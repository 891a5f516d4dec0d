/* Helpers for the storage unit tests: a private temp folder per test, short
 * ways to create a range and apply puts/deletes, and a scan collector. */
#ifndef MERIDIAN_TESTS_STORAGE_TH_H
#define MERIDIAN_TESTS_STORAGE_TH_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/range.h"

typedef struct th_dir {
    char path[256];
} th_dir;

static inline void th_mkdir(th_dir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/meridian-storage-XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static inline void th_rmdir(th_dir *d)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
}

static inline void th_file(const th_dir *d, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", d->path, name);
}

/* Creates range `id` over [start, end) ("" end = unbounded) at dir/name. */
static inline range *th_create(const th_dir *d, const char *name, uint64_t id, const char *start,
                               const char *end)
{
    char p[300];
    th_file(d, name, p, sizeof(p));
    range_desc desc = {id,         1, (const uint8_t *)start, strlen(start), (const uint8_t *)end,
                       strlen(end)};
    range *r = NULL;
    merr e = {0};
    int rc = range_create(p, &desc, NULL, &r, &e);
    if (rc) fprintf(stderr, "create: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return r;
}

static inline range *th_reopen(range *r)
{
    char p[300];
    snprintf(p, sizeof(p), "%s", range_path(r));
    range_close(r);
    merr e = {0};
    int rc = range_open(p, NULL, &r, &e);
    if (rc) fprintf(stderr, "open: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return r;
}

static inline range_write th_w(const char *k, const char *v)
{
    range_write w = {(const uint8_t *)k, strlen(k), (const uint8_t *)v, v ? strlen(v) : 0, !v};
    return w;
}

/* Applies one write (v NULL = delete) at ts as the next slot. */
static inline void th_put(range *r, const char *k, const char *v, uint64_t ts)
{
    range_meta m;
    range_get_meta(r, &m);
    range_write w = th_w(k, v);
    range_batch b = {.ts = ts, .writes = &w, .nwrites = 1};
    int rc = range_apply(r, &b, m.applied + 1, NULL);
    if (rc) fprintf(stderr, "apply: %s\n", range_err(r)->msg);
    assert_int_equal(rc, 0);
}

/* Reads k at t: returns a static string, or NULL if not found. */
static inline const char *th_get(range *r, const char *k, uint64_t t)
{
    static char out[4096];
    uint8_t *v = NULL;
    size_t n = 0;
    int rc = range_get(r, (const uint8_t *)k, strlen(k), t, &v, &n, NULL);
    if (rc == MERR_NOTFOUND) return NULL;
    if (rc) fprintf(stderr, "get: %s\n", range_err(r)->msg);
    assert_int_equal(rc, 0);
    assert_true(n < sizeof(out));
    if (n) memcpy(out, v, n);
    out[n] = 0;
    free(v);
    return out;
}

/* Scan results as "k=v,k=v". */
typedef struct th_scan {
    char s[8192];
} th_scan;

static inline int th_scan_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                             uint64_t ts)
{
    th_scan *o = arg;
    size_t n = strlen(o->s);
    snprintf(o->s + n, sizeof(o->s) - n, "%s%.*s=%.*s", n ? "," : "", (int)kl, (const char *)k,
             (int)vl, (const char *)v);
    return 0;
}

static inline const char *th_scan_str(range *r, const char *start, const char *end, uint64_t t,
                                      size_t limit, int reverse, th_scan *o)
{
    o->s[0] = 0;
    size_t n = 0;
    int rc = range_scan(r, (const uint8_t *)start, strlen(start), (const uint8_t *)end, strlen(end),
                        t, limit, reverse, th_scan_cb, o, &n);
    if (rc) fprintf(stderr, "scan: %s\n", range_err(r)->msg);
    assert_int_equal(rc, 0);
    return o->s;
}

static inline range_stats th_stats(range *r)
{
    range_meta m;
    range_get_meta(r, &m);
    return m.stats;
}

#endif
