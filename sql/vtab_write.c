/* The virtual table's write side: xUpdate turns INSERT, UPDATE and DELETE
 * into KV writes of the row and every index entry, in the session's
 * transaction, enforcing constraints:
 *
 *  - NOT NULL, CHECK and type affinity are applied by SQLite itself: the row
 *    is inserted (and removed again) into the scratch database's ordinary
 *    table of the same definition with RETURNING, so the values we store and
 *    the error messages are exactly SQLite's;
 *  - PRIMARY KEY and UNIQUE are checked against the KV (a prefix probe, so
 *    1 and 1.0 conflict as in SQLite), honouring the statement's conflict
 *    mode (ABORT/FAIL/ROLLBACK fail, IGNORE skips the row, REPLACE deletes
 *    the conflicting rows first). */
#include <stdlib.h>
#include <string.h>

#include "sql/auth.h"
#include "sql/record.h"
#include "sql/row.h"
#include "sql/vtab.h"

static uint64_t key_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static int slots_grow(sql_session *s)
{
    size_t n = s->nslots ? s->nslots * 2 : 256;
    uint32_t *sl = calloc(n, sizeof(*sl));
    if (!sl) return MERR_NOMEM;
    for (size_t i = 0; i < s->nhandles; i++) {
        size_t j = key_hash(s->handles[i].data, s->handles[i].len) & (n - 1);
        while (sl[j]) j = (j + 1) & (n - 1);
        sl[j] = (uint32_t)(i + 1);
    }
    free(s->hslots);
    s->hslots = sl;
    s->nslots = n;
    return 0;
}

int sql_handle_new(sql_session *s, const mbuf *key, sqlite3_int64 *out)
{
    if ((s->nhandles + 1) * 2 > s->nslots && slots_grow(s)) return MERR_NOMEM;
    size_t j = key_hash(key->data, key->len) & (s->nslots - 1);
    for (; s->hslots[j]; j = (j + 1) & (s->nslots - 1)) {
        const mbuf *h = &s->handles[s->hslots[j] - 1];
        if (h->len == key->len && memcmp(h->data, key->data, key->len) == 0) {
            *out = s->hslots[j];
            return 0;
        }
    }
    if (s->nhandles == s->caphandles) {
        size_t nc = s->caphandles ? s->caphandles * 2 : 64;
        mbuf *p = realloc(s->handles, nc * sizeof(*p));
        if (!p) return MERR_NOMEM;
        s->handles = p;
        s->caphandles = nc;
    }
    if (s->nhandles >= UINT32_MAX - 1) return MERR_TOOBIG;
    mbuf *h = &s->handles[s->nhandles];
    mbuf_init(h);
    if (mbuf_append(h, key->data, key->len)) return MERR_NOMEM;
    s->hslots[j] = (uint32_t)++s->nhandles;
    *out = (sqlite3_int64)s->nhandles;
    return 0;
}

static int wfail(sqlite3_vtab *vt, int sqlrc, const char *fmt, const char *a)
{
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf(fmt, a);
    return sqlrc;
}

/* "t.a, t.b" for a constraint message. */
static char *cols_list(const sql_table *t, const int *cols, int n)
{
    mbuf b = MBUF_INIT;
    for (int i = 0; i < n; i++)
        mbuf_printf(&b, "%s%s.%s", i ? ", " : "", t->name,
                    cols[i] >= 0 ? t->cols[cols[i]].name : "rowid");
    mbuf_append_u8(&b, 0);
    return (char *)b.data;
}

/* Deletes the row stored under key and its index entries. */
static int delete_row(sql_session *s, const sql_table *t, const uint8_t *key, size_t klen, merr *e)
{
    sql_row r;
    mbuf ik = MBUF_INIT, iv = MBUF_INIT, rk = MBUF_INIT;
    int rc = sql_row_init(&r, t);
    if (rc) goto out;
    if (mbuf_append(&rk, key, klen)) {
        rc = MERR_NOMEM;
        goto out;
    }
    sql_kv_for_write(s, 1); /* the row goes: lock it for that */
    rc = s->ops->get(s->txn, key, klen, &r.val, e);
    sql_kv_for_write(s, 0);
    if (rc == MERR_NOTFOUND) {
        rc = 0; /* already gone (REPLACE removed it earlier in the statement) */
        goto out;
    }
    if (!rc) rc = sql_row_decode(t, rk.data, rk.len, r.val.data, r.val.len, &r, e);
    for (int k = 0; k < t->nidx && !rc; k++) {
        int uf;
        rc = sql_index_entry(t, &t->idx[k], r.cv, r.rowid, &rk, &ik, &iv, &uf);
        if (!rc) rc = s->ops->del(s->txn, ik.data, ik.len, e);
    }
    if (!rc) rc = s->ops->del(s->txn, rk.data, rk.len, e);
out:
    sql_row_free(&r);
    mbuf_free(&ik);
    mbuf_free(&iv);
    mbuf_free(&rk);
    return rc;
}

/* First key in [prefix, prefix_end), into found (empty when none). */
static int probe(sql_session *s, const mbuf *prefix, mbuf *found, mbuf *fval, merr *e)
{
    mbuf hi = MBUF_INIT;
    sql_kv_iter *it = NULL;
    const uint8_t *k, *v;
    size_t kl, vl;
    mbuf_reset(found);
    mbuf_reset(fval);
    int rc = mbuf_append(&hi, prefix->data, prefix->len);
    if (!rc) rc = mkey_prefix_end(&hi);
    /* A conflict check of a key this write is about to take: lock it so. */
    sql_kv_for_write(s, 1);
    if (!rc) rc = s->ops->scan(s->txn, prefix->data, prefix->len, hi.data, hi.len, 0, 1, &it, e);
    sql_kv_for_write(s, 0);
    if (!rc) {
        rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
        if (rc == 1) rc = mbuf_append(found, k, kl) || mbuf_append(fval, v, vl) ? MERR_NOMEM : 0;
    }
    if (it) s->ops->iter_close(it);
    mbuf_free(&hi);
    return rc;
}

enum { INS_OK, INS_IGNORED, INS_CONFLICT, INS_UPSERT, INS_UPSERT_ROWID };

/* Does an upsert target name exactly the columns cols[0..n)? */
static int target_matches(const sql_table *t, const sql_upsert *u, const int *cols, int n)
{
    if (u->ntarget == 0) return 1;
    if (u->ntarget != n) return 0;
    for (int i = 0; i < n; i++) {
        const char *name = cols[i] >= 0 ? t->cols[cols[i]].name : "rowid";
        int found = 0;
        for (int j = 0; j < u->ntarget; j++) found |= sqlite3_stricmp(u->target[j], name) == 0;
        if (!found) return 0;
    }
    return 1;
}

/* Settles a uniqueness conflict with the row stored under ckey (on columns
 * cols[0..n)): 1 when the caller may go on (REPLACE deleted the row),
 * 0 with *outcome set when the insert stops here. */
static int settle(sql_session *s, const sql_table *t, int mode, const int *cols, int n,
                  const mbuf *ckey, int *outcome, char **msg, mbuf *conflict, merr *e, int *rc)
{
    const sql_upsert *u = s->upsert;
    if (u && target_matches(t, u, cols, n)) {
        /* SQLite checks the rowid before it applies column affinity to the
         * new row (and before any index): excluded.* differ accordingly. */
        *outcome = !u->update                  ? INS_IGNORED
                   : t->rowid && cols == t->pk ? INS_UPSERT_ROWID
                                               : INS_UPSERT;
        mbuf_reset(conflict);
        if (mbuf_append(conflict, ckey->data, ckey->len)) *rc = MERR_NOMEM;
        return 0;
    }
    if (mode == SQLITE_REPLACE && !u) {
        /* SQLite authorizes a REPLACE as an INSERT; the row it removes
         * needs DELETE (as MySQL's REPLACE does). */
        if (!sql_auth_may(s, t->name, SQL_PRIV_DELETE)) {
            *rc = merr_set(e, MERR_INVALID, "%s", s->auth_msg);
            return 1;
        }
        *rc = delete_row(s, t, ckey->data, ckey->len, e);
        return 1;
    }
    *outcome = mode == SQLITE_IGNORE && !u ? INS_IGNORED : INS_CONFLICT;
    if (*outcome == INS_CONFLICT) *msg = cols_list(t, cols, n);
    return 0;
}

/* Writes a new row (values cv, key rowkey) with its index entries after the
 * uniqueness checks. On a conflict under ABORT-like modes sets *msg; for an
 * upsert's DO UPDATE, the conflicting row's key goes to conflict. */
static int insert_row(sql_session *s, const sql_table *t, const mkey_val *cv, int64_t rowid,
                      const mbuf *rowkey, int mode, int *outcome, char **msg, mbuf *conflict,
                      merr *e)
{
    mbuf probe_key = MBUF_INIT, fk = MBUF_INIT, fv = MBUF_INIT, ik = MBUF_INIT, iv = MBUF_INIT;
    int rc = 0;
    *outcome = INS_OK;
    /* Uniqueness in SQLite's order: the rowid, then each index as PRAGMA
     * index_list lists it (the primary key among them) — except that an
     * upsert's target constraint goes first, as in SQLite. Slot -1 is the
     * primary key, k >= 0 is t->idx[k]. */
    int order[MKEY_MAX_COLS + 1], n = 0;
    for (int k = 0; k <= t->nidx && n < MKEY_MAX_COLS + 1; k++) {
        if (k == t->pk_order) order[n++] = -1;
        if (k < t->nidx && t->idx[k].unique && n < MKEY_MAX_COLS + 1) order[n++] = k;
    }
    const sql_upsert *u = s->upsert;
    for (int i = 0; u && u->ntarget && i < n; i++) {
        const int *cols = order[i] < 0 ? t->pk : t->idx[order[i]].cols;
        int nc = order[i] < 0 ? t->npk : t->idx[order[i]].ncols;
        if (target_matches(t, u, cols, nc)) { /* the first match goes first */
            int x = order[i];
            memmove(&order[1], &order[0], (size_t)i * sizeof(int));
            order[0] = x;
            break;
        }
    }
    for (int i = 0; i < n && !rc; i++) {
        if (order[i] < 0) {
            /* A probe over the SQL-equal prefix: 1 and 1.0 collide. */
            rc = sql_row_key_vals(t, cv, rowid, &probe_key, 1);
            if (!rc) rc = probe(s, &probe_key, &fk, &fv, e);
            if (!rc && fk.len &&
                !settle(s, t, mode, t->pk, t->npk, &fk, outcome, msg, conflict, e, &rc))
                goto out;
            continue;
        }
        const sql_index *ix = &t->idx[order[i]];
        int has_null = 0;
        for (int j = 0; j < ix->ncols; j++)
            if (cv[ix->cols[j]].type == MKEY_NULL) has_null = 1;
        if (has_null) continue;
        rc = sql_index_prefix(t, ix, cv, &probe_key);
        if (!rc) rc = probe(s, &probe_key, &fk, &fv, e);
        if (rc || !fk.len) continue;
        if (!settle(s, t, mode, ix->cols, ix->ncols, &fv, outcome, msg, conflict, e, &rc)) goto out;
    }
    if (!rc) rc = sql_row_record(t, cv, &fv);
    if (!rc) rc = s->ops->put(s->txn, rowkey->data, rowkey->len, fv.data, fv.len, e);
    for (int k = 0; k < t->nidx && !rc; k++) {
        int uf;
        rc = sql_index_entry(t, &t->idx[k], cv, rowid, rowkey, &ik, &iv, &uf);
        if (!rc) rc = s->ops->put(s->txn, ik.data, ik.len, iv.data, iv.len, e);
    }
out:
    mbuf_free(&probe_key);
    mbuf_free(&fk);
    mbuf_free(&fv);
    mbuf_free(&ik);
    mbuf_free(&iv);
    return rc;
}

/* DO UPDATE: runs the upsert's UPDATE on the conflicting row, with the
 * excluded row's values as parameters. The nested statement goes through
 * xUpdate like any UPDATE (with the upsert switched off). */
static int upsert_update(sql_session *s, sql_table *t, sqlite3_vtab *vt, const mbuf *ckey,
                         sqlite3_value **excluded, const mkey_val *cv, int affined)
{
    sql_upsert *u = s->upsert;
    mkey_val kv[MKEY_MAX_COLS];
    mbuf sc = MBUF_INIT;
    size_t n;
    if (!u->stmt) {
        char *q = NULL;
        if (sql_upsert_sql(t, u, &q)) return SQLITE_NOMEM;
        int prc = sqlite3_prepare_v2(s->db, q, -1, &u->stmt, NULL);
        free(q);
        if (prc != SQLITE_OK) return wfail(vt, SQLITE_ERROR, "%s", sqlite3_errmsg(s->db));
    }
    if (mkey_decode(ckey->data, ckey->len, kv, MKEY_MAX_COLS, &n, &sc, NULL) ||
        n != (size_t)(2 + t->npk)) {
        mbuf_free(&sc);
        return wfail(vt, SQLITE_CORRUPT, "%s", "upsert: malformed row key");
    }
    /* excluded.* are the row as SQLite holds it at the conflict: after column
     * affinity for an index conflict, as written for a rowid conflict (but
     * the INTEGER PRIMARY KEY is the rowid either way) */
    for (int i = 0; i < t->ncols; i++) {
        int real_of_int =
            t->cols[i].aff == 'E' && sqlite3_value_type(excluded[i]) == SQLITE_INTEGER;
        if (i == t->ipk || affined || real_of_int) /* SQLite keeps REAL columns real */
            sql_val_bind(u->stmt, i + 1, &cv[i]);
        else
            sqlite3_bind_value(u->stmt, i + 1, excluded[i]);
    }
    for (int i = 0; i < t->npk; i++) {
        kv[2 + i].desc = 0;
        sql_val_bind(u->stmt, t->ncols + 1 + i, &kv[2 + i]);
    }
    mbuf_free(&sc);
    s->upsert = NULL;
    int rc = sqlite3_step(u->stmt);
    s->upsert = u;
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        sqlite3_reset(u->stmt);
        return SQLITE_OK;
    }
    char *m = sqlite3_mprintf("%s", sqlite3_errmsg(s->db));
    sqlite3_reset(u->stmt);
    rc = wfail(vt, rc == SQLITE_CONSTRAINT ? SQLITE_CONSTRAINT : SQLITE_ERROR, "%s", m);
    sqlite3_free(m);
    return rc;
}

/* The next rowid: one past the largest (SQLite's rule without AUTOINCREMENT). */
static int next_rowid(sql_session *s, const sql_table *t, int64_t *out, merr *e)
{
    mkey_val pv[2] = {mkey_int(t->id, 0), mkey_int(SQL_PRIMARY_INDEX, 0)};
    mbuf lo = MBUF_INIT, hi = MBUF_INIT, sc = MBUF_INIT;
    sql_kv_iter *it = NULL;
    const uint8_t *k, *v;
    size_t kl, vl, n;
    mkey_val kv[3];
    int rc = mkey_encode_prefix(pv, 2, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    sql_kv_for_write(s, 1); /* the row after the last one is ours to write */
    if (!rc) rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 1, 1, &it, e);
    sql_kv_for_write(s, 0);
    *out = 1;
    if (!rc) rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
    if (rc == 1) {
        rc = mkey_decode(k, kl, kv, 3, &n, &sc, e);
        if (!rc && (n != 3 || kv[2].type != MKEY_INT))
            rc = merr_set(e, MERR_CORRUPT, "table %s: bad rowid key", t->name);
        if (!rc && kv[2].i == INT64_MAX) rc = merr_set(e, MERR_TOOBIG, "rowid space exhausted");
        if (!rc) *out = kv[2].i + 1;
    }
    if (it) s->ops->iter_close(it);
    mbuf_free(&lo);
    mbuf_free(&hi);
    mbuf_free(&sc);
    return rc;
}

/* Runs the row through the scratch table: NOT NULL, CHECK, INTEGER PRIMARY
 * KEY type, with SQLite's own messages. Returns SQLITE_OK, SQLITE_DONE when
 * OR IGNORE dropped it, or an error with the message in vt. */
static int scratch_check(sql_session *s, sql_table *t, sqlite3_vtab *vt, int mode,
                         sqlite3_value **vals, const mkey_val *ipkval)
{
    int which = mode == SQLITE_IGNORE ? 1 : 0;
    if (!t->chk[which]) {
        mbuf q = MBUF_INIT;
        mbuf_printf(&q, "INSERT %sINTO \"%s\" VALUES(", which ? "OR IGNORE " : "", t->name);
        for (int i = 0; i < t->ncols; i++) mbuf_printf(&q, "%s?", i ? "," : "");
        mbuf_printf(&q, ") RETURNING 1");
        mbuf_append_u8(&q, 0);
        int prc = sqlite3_prepare_v2(s->scratch, (const char *)q.data, -1, &t->chk[which], NULL);
        mbuf_free(&q);
        if (prc != SQLITE_OK) return wfail(vt, SQLITE_ERROR, "%s", sqlite3_errmsg(s->scratch));
    }
    sqlite3_stmt *st = t->chk[which];
    for (int i = 0; i < t->ncols; i++) {
        if (i == t->ipk && ipkval)
            sql_val_bind(st, i + 1, ipkval);
        else
            sqlite3_bind_value(st, i + 1, vals[i]);
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        while (sqlite3_step(st) == SQLITE_ROW) {
        }
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        /* OR IGNORE dropped it */
    } else {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return wfail(vt, rc == SQLITE_CONSTRAINT ? SQLITE_CONSTRAINT : SQLITE_MISMATCH, "%s",
                     sqlite3_errmsg(s->scratch));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!t->chk_del) {
        char *q = sqlite3_mprintf("DELETE FROM \"%w\"", t->name);
        if (!q || sqlite3_prepare_v2(s->scratch, q, -1, &t->chk_del, NULL) != SQLITE_OK) {
            sqlite3_free(q);
            return wfail(vt, SQLITE_ERROR, "%s", sqlite3_errmsg(s->scratch));
        }
        sqlite3_free(q);
    }
    sqlite3_step(t->chk_del);
    sqlite3_reset(t->chk_del);
    return rc;
}

/* OR REPLACE puts a NOT NULL column's default in place of a NULL (SQLite's
 * REPLACE conflict resolution for NOT NULL). Returns vals, or a new array
 * (*sub, each value owned) with the defaults in; NULL when out of memory. */
static sqlite3_value **replace_nulls(sql_session *s, const sql_table *t, sqlite3_value **vals,
                                     sqlite3_value ***sub)
{
    *sub = NULL;
    for (int i = 0; i < t->ncols; i++) {
        const sql_column *c = &t->cols[i];
        if (!c->notnull || !c->dflt_sql || sqlite3_value_type(vals[i]) != SQLITE_NULL) continue;
        if (!*sub) {
            *sub = calloc((size_t)t->ncols, sizeof(**sub));
            if (!*sub) return NULL;
            for (int k = 0; k < t->ncols; k++)
                if (!((*sub)[k] = sqlite3_value_dup(vals[k]))) return NULL;
        }
        char *q = sqlite3_mprintf("SELECT (%s)", c->dflt_sql);
        sqlite3_stmt *st = NULL;
        if (q && sqlite3_prepare_v2(s->scratch, q, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            sqlite3_value *d = sqlite3_value_dup(sqlite3_column_value(st, 0));
            if (d) {
                sqlite3_value_free((*sub)[i]);
                (*sub)[i] = d;
            }
        }
        sqlite3_finalize(st);
        sqlite3_free(q);
    }
    return *sub ? *sub : vals;
}

static void free_values(sqlite3_value **v, int n)
{
    for (int i = 0; v && i < n; i++) sqlite3_value_free(v[i]);
    free(v);
}

int sql_vtab_update(sqlite3_vtab *vt, int argc, sqlite3_value **argv, sqlite3_int64 *out_rowid)
{
    mvtab *v = (mvtab *)vt;
    sql_session *s = v->s;
    sql_table *t = sql_find_table_id(s, v->tid);
    mbuf oldkey = MBUF_INIT, newkey = MBUF_INIT;
    sqlite3_value **nv = NULL;
    mkey_val *cv = NULL;
    char *msg = NULL;
    merr e = {0};
    int rc = 0, src = SQLITE_OK;
    uint64_t mark = 0;
    sqlite3_value **sub = NULL;
    if (!t) return SQLITE_ERROR;
    if (!s->txn) return wfail(vt, SQLITE_ERROR, "%s", "meridian: no transaction");
    int mode = sqlite3_vtab_on_conflict(s->db);

    /* The key of the row being replaced or deleted. */
    if (sqlite3_value_type(argv[0]) != SQLITE_NULL) {
        sqlite3_int64 h = sqlite3_value_int64(argv[0]);
        if (t->rowid) {
            mkey_val kv[3] = {mkey_int(t->id, 0), mkey_int(SQL_PRIMARY_INDEX, 0), mkey_int(h, 0)};
            rc = mkey_encode(kv, 3, &oldkey);
        } else if (h < 1 || (size_t)h > s->nhandles) {
            return wfail(vt, SQLITE_ERROR, "%s", "meridian: stale row handle");
        } else {
            rc = mbuf_append(&oldkey, s->handles[h - 1].data, s->handles[h - 1].len);
        }
        if (rc) goto fail;
    }
    rc = s->ops->savepoint(s->txn, &mark, &e);
    if (rc) goto fail;
    if (argc == 1) {
        rc = delete_row(s, t, oldkey.data, oldkey.len, &e);
        if (rc) goto fail;
        goto done;
    }
    /* INSERT or UPDATE: the new row's values, rowid and key. */
    nv = calloc((size_t)t->ncols + 1, sizeof(*nv));
    cv = calloc((size_t)t->ncols + 1, sizeof(*cv));
    if (!nv || !cv) {
        rc = MERR_NOMEM;
        goto fail;
    }
    int64_t rowid = 0;
    mkey_val ipkv;
    const mkey_val *ipkp = NULL;
    if (t->rowid) {
        sqlite3_value *given = t->ipk >= 0 ? argv[2 + t->ipk] : argv[1];
        if (sqlite3_value_type(given) == SQLITE_NULL && oldkey.len && t->ipk >= 0) {
            /* UPDATE ... SET <INTEGER PRIMARY KEY> = NULL, as SQLite */
            src = wfail(vt, SQLITE_MISMATCH, "%s", "datatype mismatch");
            goto out;
        }
        if (sqlite3_value_type(given) == SQLITE_NULL) {
            rc = next_rowid(s, t, &rowid, &e);
            if (rc) goto fail;
            ipkv = mkey_int(rowid, 0);
            ipkp = &ipkv;
        } else if (t->ipk < 0) {
            sqlite3_value *d = sqlite3_value_dup(given);
            int ty = d ? sqlite3_value_numeric_type(d) : SQLITE_NULL;
            rowid = sqlite3_value_int64(d);
            sqlite3_value_free(d);
            if (ty != SQLITE_INTEGER) {
                src = wfail(vt, SQLITE_MISMATCH, "%s", "datatype mismatch");
                goto out;
            }
        }
    }
    sqlite3_value **vals = &argv[2];
    if (mode == SQLITE_REPLACE && !(vals = replace_nulls(s, t, vals, &sub))) goto nomem;
    src = scratch_check(s, t, vt, mode, vals, ipkp);
    if (src == SQLITE_DONE) {
        src = SQLITE_OK;
        goto out;
    }
    if (src != SQLITE_OK) goto out;
    for (int i = 0; i < t->ncols; i++) {
        if (i == t->ipk && ipkp) {
            cv[i] = *ipkp;
            continue;
        }
        nv[i] = sqlite3_value_dup(vals[i]);
        if (!nv[i]) goto nomem;
        cv[i] = sql_apply_affinity(t->cols[i].aff, nv[i]);
    }
    if (t->ipk >= 0) rowid = cv[t->ipk].i;
    for (int i = 0; i < t->npk && !t->rowid; i++)
        if (cv[t->pk[i]].type == MKEY_NULL) {
            char *c = cols_list(t, &t->pk[i], 1);
            src = wfail(vt, SQLITE_CONSTRAINT, "NOT NULL constraint failed: %s", c);
            free(c);
            goto out;
        }
    rc = sql_row_key_vals(t, cv, rowid, &newkey, 0);
    if (rc) goto fail;
    if (oldkey.len) {
        rc = delete_row(s, t, oldkey.data, oldkey.len, &e);
        if (rc) goto fail;
    }
    int outcome;
    mbuf conflict = MBUF_INIT;
    /* An upsert clause applies to the INSERT's rows only, not to its own
     * nested UPDATE (which runs with s->upsert cleared). */
    rc = insert_row(s, t, cv, rowid, &newkey, mode, &outcome, &msg, &conflict, &e);
    if (!rc && (outcome == INS_UPSERT || outcome == INS_UPSERT_ROWID)) {
        src = upsert_update(s, t, vt, &conflict, &argv[2], cv, outcome == INS_UPSERT);
        mbuf_free(&conflict);
        goto out;
    }
    mbuf_free(&conflict);
    if (rc) goto fail;
    if (outcome == INS_IGNORED) {
        rc = s->ops->rollback_to(s->txn, mark, &e);
        if (rc) goto fail;
        goto out;
    }
    if (outcome == INS_CONFLICT) {
        src = wfail(vt, SQLITE_CONSTRAINT, "UNIQUE constraint failed: %s", msg);
        goto out;
    }
    if (!oldkey.len) {
        if (t->rowid)
            *out_rowid = rowid;
        else if (sql_handle_new(s, &newkey, out_rowid))
            goto nomem;
    }
done:
    goto out;
nomem:
    rc = merr_set(&e, MERR_NOMEM, "out of memory");
fail:
    if (!e.code) merr_set(&e, rc, "%s", merr_str(rc));
    src = wfail(vt, rc == MERR_NOMEM ? SQLITE_NOMEM : SQLITE_ERROR, "%s", merr_msg(&e));
    if (rc == MERR_ABORTED || rc == MERR_RETRY) s->stmt_rollback_txn = SQL_RB_CONFLICT;
out:
    /* OR FAIL keeps the statement's earlier rows; OR ROLLBACK ends the
     * transaction (the session acts on these after the statement). */
    if (src == SQLITE_CONSTRAINT && mode == SQLITE_FAIL) s->stmt_keep = 1;
    if (src == SQLITE_CONSTRAINT && mode == SQLITE_ROLLBACK && !s->stmt_rollback_txn)
        s->stmt_rollback_txn = SQL_RB_CONSTRAINT;
    free_values(sub, t->ncols);
    if (nv)
        for (int i = 0; i < t->ncols; i++) sqlite3_value_free(nv[i]);
    free(nv);
    free(cv);
    free(msg);
    mbuf_free(&oldkey);
    mbuf_free(&newkey);
    return src;
}

int sql_index_backfill(sql_session *s, sql_table *t, sql_index *ix, size_t limit, mbuf *from,
                       int *done, merr *e)
{
    mkey_val pv[2] = {mkey_int(t->id, 0), mkey_int(SQL_PRIMARY_INDEX, 0)};
    mbuf lo = MBUF_INIT, hi = MBUF_INIT, rk = MBUF_INIT, ik = MBUF_INIT, iv = MBUF_INIT;
    mbuf pk = MBUF_INIT, fk = MBUF_INIT, fv = MBUF_INIT;
    sql_kv_iter *it = NULL;
    sql_row r;
    size_t n = 0;
    int rc = sql_row_init(&r, t);
    if (!rc)
        rc = from && from->len ? mbuf_append(&lo, from->data, from->len)
                               : mkey_encode_prefix(pv, 2, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (!rc) rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 0, limit, &it, e);
    while (!rc) {
        const uint8_t *k, *v;
        size_t kl, vl;
        int uf;
        rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
        if (rc <= 0) break;
        n++;
        mbuf_reset(&rk);
        rc = mbuf_append(&rk, k, kl);
        if (!rc) rc = sql_row_decode(t, k, kl, v, vl, &r, e);
        if (!rc) rc = sql_index_entry(t, ix, r.cv, r.rowid, &rk, &ik, &iv, &uf);
        if (!rc && uf) {
            rc = sql_index_prefix(t, ix, r.cv, &pk);
            if (!rc) rc = probe(s, &pk, &fk, &fv, e);
            /* This row's own entry (a write since the index was added made
             * it) is fine; another row's is a duplicate. */
            if (!rc && fk.len && (fv.len != rk.len || memcmp(fv.data, rk.data, rk.len) != 0)) {
                char *c = cols_list(t, ix->cols, ix->ncols);
                rc = merr_set(e, MERR_EXISTS, "UNIQUE constraint failed: %s", c);
                free(c);
            }
        }
        if (!rc) rc = s->ops->put(s->txn, ik.data, ik.len, iv.data, iv.len, e);
    }
    if (!rc && from) {
        /* Resume just past the last row: the smallest key above it. */
        mbuf_reset(from);
        if (n) rc = mbuf_append(from, rk.data, rk.len) || mbuf_append_u8(from, 0) ? MERR_NOMEM : 0;
    }
    if (done) *done = !limit || n < limit;
    if (it) s->ops->iter_close(it);
    sql_row_free(&r);
    mbuf_free(&lo);
    mbuf_free(&hi);
    mbuf_free(&rk);
    mbuf_free(&ik);
    mbuf_free(&iv);
    mbuf_free(&pk);
    mbuf_free(&fk);
    mbuf_free(&fv);
    return rc < 0 ? rc : 0;
}
