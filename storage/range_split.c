/* storage/range_split.c: splitting a range in two, merging two adjacent
 * ranges, choosing a split key, and recovering an interrupted split/merge at
 * open.
 *
 * Split protocol (crash-atomic; docs/storage.md):
 *   1. In the left db, one transaction records a `pending` row (split key, new
 *      range id, right path, slot, and the right side's stats computed from
 *      the left's rows); range_sync makes it durable.
 *   2. The right db is built at "<right>.tmp" (schema, copied rows, meta),
 *      fsynced, renamed to <right>, and the directory fsynced.
 *   3. "Flip": one left transaction deletes the moved rows, shrinks the span,
 *      bumps the generation, subtracts the right's stats, records the slot and
 *      deletes the pending row.
 * The rename in step 2 is the commit point. range_open finds a pending split
 * and rolls forward if <right> exists (redo step 3) or back otherwise (drop
 * the .tmp and the pending row).
 *
 * Merge: one left transaction copies the right's rows in (through ATTACH),
 * widens the span, adds stats and records a pending "merge" row naming the
 * right db; then the right files are deleted and the pending row cleared. At
 * open, a pending merge means "the right db is retired": delete it again. */
#include "storage/range_int.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int exec_sql(range *r, sqlite3 *db, const char *sql, const char *ctx)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if (db == r->db) return range_sqlerr(r, rc, ctx);
        int code = (rc & 0xff) == SQLITE_FULL ? MERR_NOSPACE : MERR_IO;
        return merr_set(&r->err, code, "%s: sqlite: %s", ctx, sqlite3_errmsg(db));
    }
    return 0;
}

typedef struct pending_split {
    int op; /* 0 none, 1 split, 2 merge */
    mbuf key;
    uint64_t new_id, slot;
    char path[4096];
    range_stats rs; /* stats of the right side (split) */
} pending_split;

/* The `pending` table has no stats columns: for a split, the key blob holds the
 * right side's stats (4 x u64 big-endian) followed by the split key. */
static int pending_load(range *r, pending_split *p)
{
    sqlite3_stmt *s = NULL;
    memset(p, 0, sizeof(*p));
    int rc =
        sqlite3_prepare_v2(r->db, "SELECT op, key, new_id, path, slot FROM pending", -1, &s, NULL);
    if (rc != SQLITE_OK) return range_sqlerr(r, rc, "load pending");
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *op = (const char *)sqlite3_column_text(s, 0);
        p->op = op && strcmp(op, "split") == 0 ? 1 : 2;
        const uint8_t *k = sqlite3_column_blob(s, 1);
        size_t kl = (size_t)sqlite3_column_bytes(s, 1);
        /* key blob = 32 bytes of right-side stats, then the split key */
        if (p->op == 1 && kl >= 32) {
            p->rs.live_keys = (int64_t)mbe64_get(k);
            p->rs.live_bytes = (int64_t)mbe64_get(k + 8);
            p->rs.total_bytes = (int64_t)mbe64_get(k + 16);
            p->rs.versions = (int64_t)mbe64_get(k + 24);
            if (mbuf_append(&p->key, k + 32, kl - 32)) rc = SQLITE_NOMEM;
        } else if (p->op == 1) {
            rc = SQLITE_CORRUPT;
        }
        p->new_id = (uint64_t)sqlite3_column_int64(s, 2);
        snprintf(p->path, sizeof(p->path), "%s", (const char *)sqlite3_column_text(s, 3));
        p->slot = (uint64_t)sqlite3_column_int64(s, 4);
        if (rc == SQLITE_ROW) rc = SQLITE_DONE;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        mbuf_free(&p->key);
        return range_sqlerr(r, rc, "load pending");
    }
    return 0;
}

/* Stats of the rows with key >= k (the right side of a split at k). */
static int side_stats(range *r, sqlite3 *db, const char *schema, const uint8_t *k, size_t kl,
                      range_stats *st)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*), coalesce(sum(length(key) + coalesce(length(val), 0) + 8), 0),"
             " (SELECT count(*) FROM %s.versions v WHERE key >= ?1 AND " RANGE_NOT_LOCAL
             " AND val IS NOT NULL AND"
             "  ts = (SELECT max(ts) FROM %s.versions w WHERE w.key = v.key)),"
             " (SELECT coalesce(sum(length(key) + length(val)), 0) FROM %s.versions v WHERE"
             "  key >= ?1 AND " RANGE_NOT_LOCAL " AND val IS NOT NULL AND"
             "  ts = (SELECT max(ts) FROM %s.versions w WHERE w.key = v.key))"
             " FROM %s.versions WHERE key >= ?1 AND " RANGE_NOT_LOCAL,
             schema, schema, schema, schema, schema);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        range_bind_bytes(s, 1, k, kl);
        rc = sqlite3_step(s);
    }
    if (rc == SQLITE_ROW) {
        st->versions = sqlite3_column_int64(s, 0);
        st->total_bytes = sqlite3_column_int64(s, 1);
        st->live_keys = sqlite3_column_int64(s, 2);
        st->live_bytes = sqlite3_column_int64(s, 3);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : range_sqlerr(r, rc, "split stats");
}

/* The versions that go right: keys >= k, and the range-local keys anchored
 * at >= k, which are [bound(k), local end) (common/localkey.h). */
#define RIGHT_VERSIONS "((key >= ?1 AND " RANGE_NOT_LOCAL ") OR (key >= :llo AND key < :lhi))"

/* Binds :llo and :lhi of a statement that has them (RIGHT_VERSIONS). */
static int bind_local(range *r, sqlite3_stmt *s, const mbuf *k)
{
    int lo = sqlite3_bind_parameter_index(s, ":llo"), hi = sqlite3_bind_parameter_index(s, ":lhi");
    if (!lo || !hi) return 0;
    mbuf b = MBUF_INIT, e = MBUF_INIT;
    int rc = mlocal_bound(k->data, k->len, &b) || mlocal_end(&e) ? MERR_NOMEM : 0;
    /* SQLITE_TRANSIENT: the bounds are freed before the statement steps. */
    if (!rc && (sqlite3_bind_blob(s, lo, b.data, (int)b.len, SQLITE_TRANSIENT) != SQLITE_OK ||
                sqlite3_bind_blob(s, hi, e.data, (int)e.len, SQLITE_TRANSIENT) != SQLITE_OK))
        rc = MERR_NOMEM;
    mbuf_free(&b);
    mbuf_free(&e);
    return rc ? merr_set(&r->err, rc, "split: local key bounds") : 0;
}

/* Where a span item [key, val) reaches into [k, ...): the items that go right. */
#define RIGHT_ITEMS "((kind != 2 AND key >= ?1) OR (kind = 2 AND (length(val) = 0 OR val > ?1)))"

static int build_right(range *r, const pending_split *p)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->path);
    unlink(tmp);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    merr e = {0};
    if (rc != SQLITE_OK) {
        rc = merr_set(&r->err, MERR_IO, "split: create %s: %s", tmp, sqlite3_errstr(rc));
        goto out;
    }
    /* The file is private until renamed, so building it needs no journal; it
     * is fsynced as a whole before the rename. */
    if ((rc = exec_sql(r, db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", "split")) ||
        (rc = range_schema_create(db, &e)) != 0) {
        if (e.code) merr_set(&r->err, rc, "split: %s", e.msg);
        goto out;
    }
    char *q = sqlite3_mprintf("ATTACH %Q AS src", r->path);
    rc = q ? exec_sql(r, db, q, "split: attach") : MERR_NOMEM;
    sqlite3_free(q);
    if (rc) goto out;
    static const char *const copies[] = {
        "INSERT INTO versions SELECT key, ts, val FROM src.versions WHERE " RIGHT_VERSIONS,
        "INSERT INTO intent_items SELECT * FROM src.intent_items WHERE " RIGHT_ITEMS,
        "INSERT INTO intents SELECT * FROM src.intents WHERE txn IN"
        " (SELECT txn FROM main.intent_items)",
        "INSERT INTO meta VALUES (1, ?2, ?3, ?1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
    };
    if ((rc = exec_sql(r, db, "BEGIN", "split")) != 0) goto out;
    for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]); i++) {
        rc = sqlite3_prepare_v2(db, copies[i], -1, &s, NULL);
        if (rc == SQLITE_OK) {
            range_bind_bytes(s, 1, p->key.data, p->key.len);
            if (bind_local(r, s, &p->key)) {
                sqlite3_finalize(s);
                rc = r->err.code;
                goto out;
            }
            if (i == 3) {
                sqlite3_bind_int64(s, 2, (sqlite3_int64)p->new_id);
                sqlite3_bind_int64(s, 3, (sqlite3_int64)r->generation + 1);
                range_bind_bytes(s, 4, r->end.data, r->end.len);
                sqlite3_bind_int64(s, 5, (sqlite3_int64)p->slot);
                sqlite3_bind_int64(s, 6, (sqlite3_int64)r->gc_horizon);
                sqlite3_bind_int64(s, 7, p->rs.live_keys);
                sqlite3_bind_int64(s, 8, p->rs.live_bytes);
                sqlite3_bind_int64(s, 9, p->rs.total_bytes);
                sqlite3_bind_int64(s, 10, p->rs.versions);
            }
            rc = sqlite3_step(s);
        }
        sqlite3_finalize(s);
        s = NULL;
        if (rc != SQLITE_DONE) {
            int code = (rc & 0xff) == SQLITE_FULL ? MERR_NOSPACE : MERR_IO;
            rc = merr_set(&r->err, code, "split: copy: %s", sqlite3_errmsg(db));
            goto out;
        }
    }
    if ((rc = exec_sql(r, db, "COMMIT; DETACH src; PRAGMA journal_mode=WAL", "split")) != 0)
        goto out;
    sqlite3_close_v2(db);
    db = NULL;
    /* Durable before visible: fsync the file, then rename, then the directory. */
    FILE *f = fopen(tmp, "r+");
    if (!f || fsync(fileno(f)) != 0) {
        if (f) fclose(f);
        rc = merr_set(&r->err, MERR_IO, "split: fsync %s", tmp);
        goto out;
    }
    fclose(f);
    /* A stale WAL at the target would be replayed onto the new file. */
    char side[4200];
    snprintf(side, sizeof(side), "%s-wal", p->path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", p->path);
    unlink(side);
    if (rename(tmp, p->path) != 0) {
        rc = merr_set(&r->err, MERR_IO, "split: rename %s", tmp);
        goto out;
    }
    rc = range_fsync_dir(p->path, &r->err);
out:
    if (db) sqlite3_close_v2(db);
    if (rc) unlink(tmp);
    return rc;
}

static int flip(range *r, const pending_split *p)
{
    int rc = range_begin(r);
    if (rc) return rc;
    static const char *const dels[] = {
        "CREATE TEMP TABLE IF NOT EXISTS moved(txn BLOB PRIMARY KEY)",
        "DELETE FROM moved",
        "INSERT OR IGNORE INTO moved SELECT txn FROM intent_items WHERE " RIGHT_ITEMS,
        "DELETE FROM versions WHERE " RIGHT_VERSIONS,
        /* Spans crossing the split stay on both sides; the rest move. */
        "DELETE FROM intent_items WHERE key >= ?1",
        "DELETE FROM intents WHERE txn IN (SELECT txn FROM moved)"
        " AND txn NOT IN (SELECT txn FROM intent_items)",
        "DELETE FROM pending",
    };
    for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]) && !rc; i++) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(r->db, dels[i], -1, &s, NULL);
        if (rc == SQLITE_OK) {
            if (sqlite3_bind_parameter_count(s)) range_bind_bytes(s, 1, p->key.data, p->key.len);
            rc = bind_local(r, s, &p->key) ? SQLITE_NOMEM : sqlite3_step(s);
        }
        sqlite3_finalize(s);
        rc = rc == SQLITE_DONE ? 0 : range_sqlerr(r, rc, "split flip");
    }
    range_stats old = r->stats;
    mbuf oldend = r->end;
    uint64_t oldgen = r->generation, oldapplied = r->applied;
    mbuf_init(&r->end);
    if (!rc && mbuf_append(&r->end, p->key.data, p->key.len))
        rc = merr_set(&r->err, MERR_NOMEM, "split");
    if (!rc) {
        r->stats.live_keys -= p->rs.live_keys;
        r->stats.live_bytes -= p->rs.live_bytes;
        r->stats.total_bytes -= p->rs.total_bytes;
        r->stats.versions -= p->rs.versions;
        r->generation++;
        r->applied = p->slot;
        rc = range_meta_save(r);
    }
    if (!rc) rc = range_commit(r);
    if (rc) {
        range_rollback(r);
        mbuf_free(&r->end);
        r->end = oldend;
        r->stats = old;
        r->generation = oldgen;
        r->applied = oldapplied;
        return rc;
    }
    mbuf_free(&oldend);
    return range_sync(r, NULL);
}

static int pending_clear(range *r)
{
    return exec_sql(r, r->db, "DELETE FROM pending", "clear pending");
}

int range_split(range *r, const uint8_t *key, size_t klen, uint64_t new_id, const char *right_path,
                uint64_t slot)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    if (slot <= r->applied) return 0;
    if (!new_id || new_id == r->range_id || !right_path || strlen(right_path) > 4000 ||
        klen > RANGE_KEY_MAX)
        return merr_set(&r->err, MERR_INVALID, "split: bad arguments");
    if (mlocal_is(key, klen))
        return merr_set(&r->err, MERR_INVALID, "split: a range-local key is no split key");
    if (mbytes_cmp(key, klen, r->start.data, r->start.len) <= 0 || !range_in_span(r, key, klen))
        return merr_set(&r->err, MERR_RANGE, "split: key not strictly inside the span");
    /* A split that failed after its commit point (flip error) is finished
     * first, so a retry of the same slot is a no-op rather than an error. */
    int rc = range_recover(r);
    if (rc) return rc;
    if (slot <= r->applied) return 0;
    if (access(right_path, F_OK) == 0)
        return merr_set(&r->err, MERR_EXISTS, "split: %s exists", right_path);
    pending_split p = {0};
    p.op = 1;
    p.new_id = new_id;
    p.slot = slot;
    snprintf(p.path, sizeof(p.path), "%s", right_path);
    if (mbuf_append(&p.key, key, klen)) return merr_set(&r->err, MERR_NOMEM, "split");
    rc = side_stats(r, r->db, "main", key, klen, &p.rs);
    if (rc) goto out;
    /* Step 1: the durable marker. */
    mbuf blob = MBUF_INIT;
    if (mbuf_append_u64be(&blob, (uint64_t)p.rs.live_keys) ||
        mbuf_append_u64be(&blob, (uint64_t)p.rs.live_bytes) ||
        mbuf_append_u64be(&blob, (uint64_t)p.rs.total_bytes) ||
        mbuf_append_u64be(&blob, (uint64_t)p.rs.versions) || mbuf_append(&blob, key, klen)) {
        mbuf_free(&blob);
        rc = merr_set(&r->err, MERR_NOMEM, "split");
        goto out;
    }
    sqlite3_stmt *s = NULL;
    if ((rc = range_begin(r)) != 0) {
        mbuf_free(&blob);
        goto out;
    }
    rc = sqlite3_prepare_v2(r->db, "INSERT INTO pending VALUES (1, 'split', ?1, ?2, ?3, ?4)", -1,
                            &s, NULL);
    if (rc == SQLITE_OK) {
        range_bind_bytes(s, 1, blob.data, blob.len);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)new_id);
        sqlite3_bind_text(s, 3, right_path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)slot);
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    mbuf_free(&blob);
    rc = rc == SQLITE_DONE ? range_commit(r) : range_sqlerr(r, rc, "split: mark");
    if (rc) {
        range_rollback(r);
        goto out;
    }
    if ((rc = range_sync(r, NULL)) != 0) goto undo;
    /* Step 2 and 3. */
    if ((rc = build_right(r, &p)) != 0) {
        /* Past the rename (a failed directory fsync) the split is committed:
         * keep the marker so the next open or retry finishes it. */
        if (access(p.path, F_OK) == 0) goto out;
        goto undo;
    }
    rc = flip(r, &p);
    goto out;
undo : {
    merr saved = r->err;
    pending_clear(r);
    r->err = saved;
}
out:
    mbuf_free(&p.key);
    return rc;
}

int range_recover(range *r)
{
    pending_split p;
    int rc = pending_load(r, &p);
    if (rc || !p.op) return rc;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p.path);
    if (p.op == 1) {
        if (access(p.path, F_OK) == 0) {
            MLOG_W("storage", "finishing interrupted split", "range=%llu right=%s",
                   (unsigned long long)r->range_id, p.path);
            rc = flip(r, &p);
        } else {
            MLOG_W("storage", "rolling back interrupted split", "range=%llu right=%s",
                   (unsigned long long)r->range_id, p.path);
            unlink(tmp);
            rc = pending_clear(r);
        }
    } else {
        MLOG_W("storage", "finishing interrupted merge", "range=%llu right=%s",
               (unsigned long long)r->range_id, p.path);
        if ((rc = range_destroy(p.path, &r->err)) == 0) rc = pending_clear(r);
    }
    mbuf_free(&p.key);
    return rc;
}

int range_reset_applied(range *r)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    if (r->applied == 0) return 0;
    int rc = range_begin(r);
    if (rc) return rc;
    uint64_t old = r->applied;
    r->applied = 0;
    rc = range_meta_save(r);
    if (!rc) rc = range_commit(r);
    if (rc) {
        range_rollback(r);
        r->applied = old;
        return rc;
    }
    return range_sync(r, NULL);
}
