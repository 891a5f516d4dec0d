/* storage/range_gc.c: garbage collection of old MVCC versions.
 *
 * Rule: for a horizon h, a read at any t >= h must see what it saw before. A
 * read at t >= h picks the newest version <= t, which is either newer than h
 * or the newest version <= h ("the kept version"). So every version older
 * than the kept one can go; and if the kept one is a tombstone, it can go too
 * once nothing older is left (no version and a tombstone both read as "not
 * found"). Reads below h are refused from the moment GC raises the horizon.
 *
 * Work is done in steps: a read-only walk collects at most max_rows victims,
 * (walking at most 16 x max_rows rows), then one short write transaction
 * deletes them. The write lock is held only
 * for those deletes, so foreground applies wait at most one small batch. */
#include "storage/range_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct victim {
    size_t koff, klen;
    uint64_t ts;
    int64_t bytes;
} victim;

int range_gc_step(range *r, uint64_t horizon, size_t max_rows, size_t *dropped, int *done)
{
    if (dropped) *dropped = 0;
    if (done) *done = 0;
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    int rc = range_check_ts(r, horizon, "gc horizon");
    if (rc) return rc;
    if (horizon < r->gc_horizon) horizon = r->gc_horizon;
    if (!max_rows) max_rows = 256; /* default: a few ms of write lock */

    victim *v = calloc(max_rows + 1, sizeof(*v));
    mbuf keys = MBUF_INIT, cur = MBUF_INIT;
    if (!v) return merr_set(&r->err, MERR_NOMEM, "gc");
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(r->db,
                            "SELECT key, ts, val IS NULL, length(key) + coalesce(length(val), 0)"
                            " FROM versions WHERE key >= ?1 AND ts <= ?2 ORDER BY key, ts DESC",
                            -1, &s, NULL);
    if (rc != SQLITE_OK) {
        rc = range_sqlerr(r, rc, "gc");
        goto out;
    }
    if (r->gc_active)
        range_bind_bytes(s, 1, r->gc_cursor.data, r->gc_cursor.len);
    else
        range_bind_bytes(s, 1, r->start.data, r->start.len);
    sqlite3_bind_int64(s, 2, range_ts_sql(horizon));

    size_t n = 0, examined = 0;
    int have = 0, kept_tomb = 0, finished = 0;
    victim kept = {0};
    for (;;) {
        rc = sqlite3_step(s);
        int row = rc == SQLITE_ROW;
        if (!row && rc != SQLITE_DONE) {
            rc = range_sqlerr(r, rc, "gc walk");
            goto out;
        }
        const uint8_t *k = row ? sqlite3_column_blob(s, 0) : NULL;
        size_t kl = row ? (size_t)sqlite3_column_bytes(s, 0) : 0;
        int same = row && have && mbytes_cmp(k, kl, cur.data, cur.len) == 0;
        if (have && !same) {
            /* The previous key is complete: its tombstone may go now. */
            if (kept_tomb) v[n++] = kept;
            have = 0;
            /* Also bound the rows walked, so a step stays short when there is
             * little to collect. */
            if (n >= max_rows || examined >= 16 * max_rows) {
                if (row) {
                    mbuf_reset(&r->gc_cursor);
                    if (mbuf_append(&r->gc_cursor, k, kl)) goto nomem;
                    r->gc_active = 1;
                }
                finished = !row;
                break;
            }
        }
        if (!row) {
            finished = 1;
            break;
        }
        examined++;
        uint64_t ts = range_ts_from_sql(sqlite3_column_int64(s, 1));
        int64_t bytes = sqlite3_column_int64(s, 3) + 8;
        if (!same) {
            /* First row of a key: the newest version <= horizon, kept. */
            mbuf_reset(&cur);
            if (mbuf_append(&cur, k, kl)) goto nomem;
            have = 1;
            kept_tomb = sqlite3_column_int(s, 2);
            kept = (victim){keys.len, kl, ts, bytes};
            if (kept_tomb && mbuf_append(&keys, k, kl)) goto nomem;
            continue;
        }
        if (n >= max_rows) {
            /* Stop inside this key: resume at it (its kept row still leads). */
            mbuf_reset(&r->gc_cursor);
            if (mbuf_append(&r->gc_cursor, cur.data, cur.len)) goto nomem;
            r->gc_active = 1;
            break;
        }
        v[n++] = (victim){keys.len, kl, ts, bytes};
        if (mbuf_append(&keys, k, kl)) goto nomem;
    }
    sqlite3_finalize(s);
    s = NULL;

    if (n || horizon > r->gc_horizon) {
        if ((rc = range_begin(r)) != 0) goto out;
        range_stats old = r->stats;
        uint64_t old_h = r->gc_horizon;
        r->gc_horizon = horizon;
        for (size_t i = 0; i < n && !rc; i++) {
            sqlite3_stmt *d = range_stmt(r, RS_DEL_VERSION);
            if (!d) {
                rc = r->err.code;
                break;
            }
            range_bind_bytes(d, 1, keys.data + v[i].koff, v[i].klen);
            sqlite3_bind_int64(d, 2, range_ts_sql(v[i].ts));
            int src = sqlite3_step(d);
            sqlite3_reset(d);
            if (src != SQLITE_DONE) {
                rc = range_sqlerr(r, src, "gc delete");
                break;
            }
            if (sqlite3_changes(r->db) && !mlocal_is(keys.data + v[i].koff, v[i].klen)) {
                r->stats.versions--;
                r->stats.total_bytes -= v[i].bytes;
            }
        }
        if (!rc) rc = range_meta_save(r);
        if (!rc) rc = range_commit(r);
        if (rc) {
            range_rollback(r);
            r->stats = old;
            r->gc_horizon = old_h;
            goto out;
        }
    }
    if (finished) r->gc_active = 0;
    if (dropped) *dropped = n;
    if (done) *done = finished;
    rc = 0;
    goto out;
nomem:
    rc = merr_set(&r->err, MERR_NOMEM, "gc");
out:
    sqlite3_finalize(s);
    free(v);
    mbuf_free(&keys);
    mbuf_free(&cur);
    return rc;
}

int range_gc(range *r, uint64_t horizon, size_t max_rows, size_t *dropped)
{
    size_t total = 0, n = 0;
    int done = 0, rc = 0;
    while (!done && (rc = range_gc_step(r, horizon, max_rows, &n, &done)) == 0) total += n;
    if (dropped) *dropped = total;
    return rc;
}
