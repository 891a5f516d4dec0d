/* storage/range_merge.c: merging two adjacent ranges (protocol in
 * range_split.c's header comment) and choosing split keys by size or load. */
#include "storage/range_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int step_sql(range *r, const char *sql, const char *ctx)
{
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : range_sqlerr(r, rc, ctx);
}

int range_merge(range *r, range *right, uint64_t slot)
{
    int rc;
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    if (slot <= r->applied) {
        range_close(right);
        return 0;
    }
    if (right->corrupt || !r->end.len ||
        mbytes_cmp(r->end.data, r->end.len, right->start.data, right->start.len) != 0) {
        rc = merr_set(&r->err, MERR_INVALID, "merge: ranges %llu and %llu are not adjacent",
                      (unsigned long long)r->range_id, (unsigned long long)right->range_id);
        range_close(right);
        return rc;
    }
    /* Take what we need from the right handle, then close it: from here on
     * the right database is read only through ATTACH. */
    range_stats rs = right->stats;
    uint64_t rgen = right->generation;
    mbuf rend = MBUF_INIT;
    char *rpath = strdup(right->path);
    if (!rpath || mbuf_append(&rend, right->end.data, right->end.len)) {
        free(rpath);
        mbuf_free(&rend);
        return merr_set(&r->err, MERR_NOMEM, "merge");
    }
    range_close(right);

    char *q = sqlite3_mprintf("ATTACH %Q AS rt", rpath);
    rc = q ? step_sql(r, q, "merge: attach") : merr_set(&r->err, MERR_NOMEM, "merge");
    sqlite3_free(q);
    if (rc) goto out;
    range_stats old = r->stats;
    uint64_t ogen = r->generation, oapplied = r->applied;
    mbuf oend = r->end;
    mbuf_init(&r->end);
    if ((rc = range_begin(r)) != 0) goto restore;
    /* Intent items of a txn present on both sides get fresh sequence numbers
     * above the left's (the SELECT is materialised before the INSERT). */
    rc = step_sql(r,
                  "INSERT INTO versions SELECT key, ts, val FROM rt.versions;"
                  "INSERT INTO intent_items SELECT txn, seq + 1 + coalesce((SELECT max(seq) FROM"
                  " main.intent_items m WHERE m.txn = i.txn), -1), kind, key, val"
                  " FROM rt.intent_items i;"
                  "INSERT OR IGNORE INTO intents SELECT * FROM rt.intents;",
                  "merge: copy");
    if (!rc) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(
            r->db, "INSERT INTO pending VALUES (1, 'merge', NULL, NULL, ?1, ?2)", -1, &s, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(s, 1, rpath, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, (sqlite3_int64)slot);
            rc = sqlite3_step(s);
        }
        sqlite3_finalize(s);
        rc = rc == SQLITE_DONE ? 0 : range_sqlerr(r, rc, "merge: mark");
    }
    if (!rc && mbuf_append(&r->end, rend.data, rend.len))
        rc = merr_set(&r->err, MERR_NOMEM, "merge");
    if (!rc) {
        r->stats.live_keys += rs.live_keys;
        r->stats.live_bytes += rs.live_bytes;
        r->stats.total_bytes += rs.total_bytes;
        r->stats.versions += rs.versions;
        r->generation = (rgen > r->generation ? rgen : r->generation) + 1;
        r->applied = slot;
        rc = range_meta_save(r);
    }
    if (!rc) rc = range_commit(r);
    if (rc) {
        range_rollback(r);
        goto restore;
    }
    mbuf_free(&oend);
    sqlite3_exec(r->db, "DETACH rt", NULL, NULL, NULL);
    /* Committed: the right db is retired. Make that durable, then delete it;
     * a crash in between is finished by range_recover at the next open. */
    if ((rc = range_sync(r, NULL)) == 0 && (rc = range_destroy(rpath, &r->err)) == 0)
        rc = step_sql(r, "DELETE FROM pending", "merge: clear");
    goto out;
restore:
    mbuf_free(&r->end);
    r->end = oend;
    r->stats = old;
    r->generation = ogen;
    r->applied = oapplied;
    sqlite3_exec(r->db, "DETACH rt", NULL, NULL, NULL);
out:
    free(rpath);
    mbuf_free(&rend);
    return rc;
}

typedef struct sample_ref {
    const uint8_t *key;
    size_t klen;
    double w;
} sample_ref;

static int cmp_sample(const void *a, const void *b)
{
    const sample_ref *x = a, *y = b;
    return mbytes_cmp(x->key, x->klen, y->key, y->klen);
}

/* Weighted median of the samples inside the span, strictly above start. */
static int load_median(range *r, const range_load_sample *smp, size_t n, uint8_t **key,
                       size_t *klen)
{
    sample_ref *v = calloc(n, sizeof(*v));
    if (!v) return merr_set(&r->err, MERR_NOMEM, "split key");
    size_t m = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(smp[i].weight > 0) || !range_in_span(r, smp[i].key, smp[i].klen) ||
            mbytes_cmp(smp[i].key, smp[i].klen, r->start.data, r->start.len) == 0)
            continue;
        v[m++] = (sample_ref){smp[i].key, smp[i].klen, smp[i].weight};
        total += smp[i].weight;
    }
    int rc = MERR_NOTFOUND;
    if (m) {
        qsort(v, m, sizeof(*v), cmp_sample);
        /* First key at which the weight strictly below it reaches half: it
         * splits the load as evenly as a key boundary can. */
        double acc = 0;
        size_t pick = 0;
        for (size_t i = 0; i < m; i++) {
            if (i && mbytes_cmp(v[i].key, v[i].klen, v[i - 1].key, v[i - 1].klen) != 0) {
                pick = i;
                if (acc >= total / 2) break;
            }
            acc += v[i].w;
        }
        if ((*key = malloc(v[pick].klen ? v[pick].klen : 1)) != NULL) {
            memcpy(*key, v[pick].key, v[pick].klen);
            *klen = v[pick].klen;
            rc = 0;
        } else {
            rc = merr_set(&r->err, MERR_NOMEM, "split key");
        }
    }
    free(v);
    return rc;
}

int range_split_key(range *r, const range_load_sample *samples, size_t n, uint8_t **key,
                    size_t *klen)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    if (n) {
        int rc = load_median(r, samples, n, key, klen);
        if (rc != MERR_NOTFOUND) return rc;
    }
    /* By size: walk keys in order (one pass over the index, rare operation)
     * until the bytes before a key reach half the total. The first key never
     * qualifies, so both sides hold data. */
    sqlite3_stmt *s = NULL;
    int rc =
        sqlite3_prepare_v2(r->db,
                           "SELECT key, sum(length(key) + coalesce(length(val), 0) + 8)"
                           " FROM versions WHERE " RANGE_NOT_LOCAL " GROUP BY key ORDER BY key",
                           -1, &s, NULL);
    if (rc != SQLITE_OK) return range_sqlerr(r, rc, "split key");
    int64_t acc = 0, half = r->stats.total_bytes / 2;
    size_t keys = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (keys++ && acc >= half) break;
        acc += sqlite3_column_int64(s, 1);
    }
    if (rc == SQLITE_DONE && keys >= 2) {
        /* The last key holds over half the bytes: it is still the best cut. */
        sqlite3_finalize(s);
        s = NULL;
        rc = sqlite3_prepare_v2(
            r->db, "SELECT key FROM versions WHERE " RANGE_NOT_LOCAL " ORDER BY key DESC LIMIT 1",
            -1, &s, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(s);
    }
    if (rc == SQLITE_ROW) {
        size_t l = (size_t)sqlite3_column_bytes(s, 0);
        *key = malloc(l ? l : 1);
        if (*key) {
            memcpy(*key, sqlite3_column_blob(s, 0), l);
            *klen = l;
            rc = 0;
        } else {
            rc = merr_set(&r->err, MERR_NOMEM, "split key");
        }
    } else if (rc == SQLITE_DONE) {
        rc = merr_set(&r->err, MERR_NOTFOUND, "split key: fewer than two keys");
    } else {
        rc = range_sqlerr(r, rc, "split key");
    }
    sqlite3_finalize(s);
    return rc;
}
