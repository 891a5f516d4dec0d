/* storage/range_freeze.c: the freeze mark of a range about to be merged into
 * its left neighbour (server/replica_merge.c). Once frozen at a log slot, the
 * range's data never changes again: the replica layer refuses every later
 * write, so every replica holds the same state from the freeze on and the
 * left range may absorb it at any replica. The mark lives in its own table,
 * created on first use, so stores of older formats read unchanged. */
#include "storage/range_int.h"

int range_freeze(range *r, uint64_t slot)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    if (slot <= r->applied) return 0;
    int rc = range_begin(r);
    if (rc) return rc;
    uint64_t old = r->applied;
    char *q = sqlite3_mprintf("CREATE TABLE IF NOT EXISTS frozen(id INTEGER PRIMARY KEY"
                              " CHECK (id = 1), slot INTEGER NOT NULL);"
                              "INSERT OR IGNORE INTO frozen VALUES (1, %lld);",
                              (long long)slot);
    int src = q ? sqlite3_exec(r->db, q, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(q);
    rc = src == SQLITE_OK ? 0 : range_sqlerr(r, src, "freeze");
    /* The applied counter moves in the same transaction as the mark. */
    r->applied = slot;
    if (!rc) rc = range_meta_save(r);
    if (!rc) rc = range_commit(r);
    if (rc) {
        range_rollback(r);
        r->applied = old;
    }
    return rc;
}

int range_frozen_at(range *r, uint64_t *slot)
{
    *slot = 0;
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(r->db, "SELECT slot FROM frozen WHERE id = 1", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(s);
        return 0; /* no table: never frozen */
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *slot = (uint64_t)sqlite3_column_int64(s, 0);
    int out = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : range_sqlerr(r, rc, "freeze mark");
    sqlite3_finalize(s);
    return out;
}
