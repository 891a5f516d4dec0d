/* storage/range_scan.c: MVCC range scans — per key in [start, end), the
 * newest version at or below t, tombstones skipped, forward or reverse.
 *
 * One statement walks the (key ASC, ts DESC) index in order. Most keys have a
 * few versions and are decided in a step or two. A hot key can have
 * thousands of versions within the GC window; walking them all would make a
 * scan cost the key's history. So after RANGE_SCAN_SKIP rows of one key the
 * scan answers the key with a point seek to (key, t) and re-seeks the walk
 * past the key (forward: to key || 0x00, its immediate successor in memcmp
 * order; reverse: to keys < key). Work per key is thus bounded. */
#include "storage/range_int.h"

#include <stdlib.h>
#include <string.h>

#define RANGE_SCAN_SKIP 16 /* a re-seek costs about as much as ~10 steps */

typedef struct scan {
    range *r;
    sqlite3_stmt *s;
    uint64_t t;
    int reverse, stop;
    int local; /* a scan of range-local keys: visits only those, others none */
    size_t limit, n;
    range_scan_fn fn;
    void *arg;
    mbuf lo, hi; /* current walk bounds; hi.len 0 with !bounded = open */
    int bounded;
    mbuf key;  /* key being decided */
    mbuf cand; /* reverse: value of the newest version <= t seen so far */
    int have_key, decided, cand_set, cand_tomb;
    uint64_t cand_ts;
    size_t steps; /* rows seen for the current key */
} scan;

/* Visits one decided version. */
static void visit(scan *sc, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, uint64_t ts)
{
    if (mlocal_is(k, kl) != sc->local) return;
    sc->n++;
    if (sc->fn(sc->arg, k, kl, v, vl, ts) || (sc->limit && sc->n >= sc->limit)) sc->stop = 1;
}

/* (Re)starts the walk over [lo, hi). */
static int start_walk(scan *sc)
{
    int id = sc->reverse ? (sc->bounded ? RS_SCAN_REV : RS_SCAN_REV_OPEN)
                         : (sc->bounded ? RS_SCAN_FWD : RS_SCAN_FWD_OPEN);
    if (sc->s) sqlite3_reset(sc->s);
    sc->s = range_stmt(sc->r, id);
    if (!sc->s) return sc->r->err.code;
    range_bind_bytes(sc->s, 1, sc->lo.data, sc->lo.len);
    if (sc->bounded) range_bind_bytes(sc->s, 2, sc->hi.data, sc->hi.len);
    sc->have_key = 0;
    return 0;
}

/* Decides the current key with one seek to (key, t), then moves the walk
 * past it. */
static int seek_past(scan *sc)
{
    if (!sc->decided) {
        sqlite3_stmt *g = range_stmt(sc->r, RS_GET);
        if (!g) return sc->r->err.code;
        range_bind_bytes(g, 1, sc->key.data, sc->key.len);
        sqlite3_bind_int64(g, 2, range_read_ts(sc->t));
        int rc = sqlite3_step(g);
        if (rc == SQLITE_ROW && sqlite3_column_type(g, 1) != SQLITE_NULL)
            visit(sc, sc->key.data, sc->key.len, sqlite3_column_blob(g, 1),
                  (size_t)sqlite3_column_bytes(g, 1),
                  range_ts_from_sql(sqlite3_column_int64(g, 0)));
        sqlite3_reset(g);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return range_sqlerr(sc->r, rc, "scan seek");
        sc->decided = 1;
    }
    if (sc->stop) return 0;
    /* Copies first: lo/hi are bound to the statement being reset. */
    sqlite3_reset(sc->s);
    if (!sc->reverse) {
        mbuf_reset(&sc->lo);
        if (mbuf_append(&sc->lo, sc->key.data, sc->key.len) || mbuf_append_u8(&sc->lo, 0))
            return merr_set(&sc->r->err, MERR_NOMEM, "scan");
    } else {
        mbuf_reset(&sc->hi);
        if (mbuf_append(&sc->hi, sc->key.data, sc->key.len))
            return merr_set(&sc->r->err, MERR_NOMEM, "scan");
        sc->bounded = 1;
    }
    return start_walk(sc);
}

/* Reverse: the candidate of the key just left is final. */
static void flush_cand(scan *sc)
{
    if (sc->have_key && !sc->decided && sc->cand_set && !sc->cand_tomb)
        visit(sc, sc->key.data, sc->key.len, sc->cand.data, sc->cand.len, sc->cand_ts);
    sc->decided = 1;
}

static int on_row(scan *sc)
{
    sqlite3_stmt *s = sc->s;
    const uint8_t *k = sqlite3_column_blob(s, 0);
    size_t kl = (size_t)sqlite3_column_bytes(s, 0);
    uint64_t ts = range_ts_from_sql(sqlite3_column_int64(s, 1));
    int tomb = sqlite3_column_type(s, 2) == SQLITE_NULL;
    int same = sc->have_key && mbytes_cmp(k, kl, sc->key.data, sc->key.len) == 0;
    if (!same) {
        if (sc->reverse) flush_cand(sc);
        if (sc->stop) return 0;
        mbuf_reset(&sc->key);
        if (mbuf_append(&sc->key, k, kl)) return merr_set(&sc->r->err, MERR_NOMEM, "scan");
        sc->have_key = 1;
        sc->decided = 0;
        sc->cand_set = 0;
        sc->steps = 0;
    }
    sc->steps++;
    if (!sc->decided) {
        if (!sc->reverse) {
            /* Newest first: the first row <= t decides. */
            if (ts <= sc->t) {
                sc->decided = 1;
                if (!tomb)
                    visit(sc, k, kl, sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                          ts);
            }
        } else if (ts > sc->t) {
            /* Oldest first: the first row above t ends the candidates. */
            flush_cand(sc);
        } else {
            sc->cand_set = 1;
            sc->cand_tomb = tomb;
            sc->cand_ts = ts;
            mbuf_reset(&sc->cand);
            if (!tomb && mbuf_append(&sc->cand, sqlite3_column_blob(s, 2),
                                     (size_t)sqlite3_column_bytes(s, 2)))
                return merr_set(&sc->r->err, MERR_NOMEM, "scan");
        }
    }
    if (sc->stop) return 0;
    if (sc->steps > RANGE_SCAN_SKIP) return seek_past(sc);
    return 0;
}

int range_scan(range *r, const uint8_t *start, size_t slen, const uint8_t *end, size_t elen,
               uint64_t t, size_t limit, int reverse, range_scan_fn fn, void *arg, size_t *nout)
{
    int rc = range_check_read(r, t);
    if (rc) return rc;
    if (nout) *nout = 0;
    /* Clip [start, end) to the span, or for a local scan to the local keys
     * anchored in it (common/localkey.h). */
    int local = mlocal_is(start, slen);
    scan sc = {
        .r = r, .t = t, .reverse = reverse, .local = local, .limit = limit, .fn = fn, .arg = arg};
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    const uint8_t *cs = r->start.data, *ce = r->end.data;
    size_t csl = r->start.len, cel = r->end.len;
    if (local) {
        if (mlocal_bound(r->start.data, r->start.len, &lo) ||
            (r->end.len ? mlocal_bound(r->end.data, r->end.len, &hi) : mlocal_end(&hi))) {
            rc = merr_set(&r->err, MERR_NOMEM, "scan");
            goto out;
        }
        cs = lo.data, csl = lo.len, ce = hi.data, cel = hi.len;
    }
    if (mbytes_cmp(start, slen, cs, csl) < 0) {
        start = cs;
        slen = csl;
    }
    if (cel && (!elen || mbytes_cmp(end, elen, ce, cel) > 0)) {
        end = ce;
        elen = cel;
    }
    if (elen && mbytes_cmp(start, slen, end, elen) >= 0) goto out;
    sc.bounded = elen > 0;
    if (mbuf_append(&sc.lo, start, slen) || mbuf_append(&sc.hi, end, elen)) {
        rc = merr_set(&r->err, MERR_NOMEM, "scan");
        goto out;
    }
    if ((rc = start_walk(&sc)) != 0) goto out;
    while (!sc.stop) {
        rc = sqlite3_step(sc.s);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            rc = range_sqlerr(r, rc, "scan");
            goto out;
        }
        if ((rc = on_row(&sc)) != 0) goto out;
    }
    if (reverse && !sc.stop) flush_cand(&sc);
    rc = 0;
    if (nout) *nout = sc.n;
out:
    if (sc.s) sqlite3_reset(sc.s);
    mbuf_free(&sc.lo);
    mbuf_free(&sc.hi);
    mbuf_free(&sc.key);
    mbuf_free(&sc.cand);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc;
}
