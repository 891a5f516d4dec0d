/* The "meridian" SQLite virtual table module, read side: declaring a table's
 * shape, planning (xBestIndex turns key and index constraints into key-range
 * scans), and cursors over the KV iterator. Writes are in vtab_write.c.
 *
 * Plans never set `omit`: SQLite re-checks every constraint, so a scan only
 * needs to return a superset of the matching rows. That keeps comparisons
 * with affinity or collation subtleties correct — where the key order cannot
 * be trusted (a non-BINARY collation, a numeric value from another column
 * compared with a text column) the scan simply widens. */
#include <stdlib.h>
#include <string.h>

#include "sql/record.h"
#include "sql/row.h"
#include "sql/vtab.h"

#define NOMINAL_ROWS 100000.0

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **err)
{
    sql_session *s = aux;
    sql_table *t = argc >= 4 ? sql_find_table_id(s, (uint32_t)strtoul(argv[3], NULL, 10)) : NULL;
    if (!t) {
        *err = sqlite3_mprintf("meridian: unknown table");
        return SQLITE_ERROR;
    }
    mbuf d = MBUF_INIT;
    int rc = mbuf_append_str(&d, "CREATE TABLE x(");
    for (int i = 0; i < t->ncols && !rc; i++) {
        char *c = sqlite3_mprintf("%s\"%w\" %s COLLATE \"%w\"", i ? ", " : "", t->cols[i].name,
                                  t->cols[i].type, t->cols[i].coll);
        rc = c ? mbuf_append_str(&d, c) : MERR_NOMEM;
        sqlite3_free(c);
    }
    if (!rc) rc = mbuf_append(&d, ")", 2);
    if (rc || sqlite3_declare_vtab(db, (const char *)d.data) != SQLITE_OK) {
        *err = sqlite3_mprintf("meridian: cannot declare %s", t->name);
        mbuf_free(&d);
        return SQLITE_ERROR;
    }
    mbuf_free(&d);
    sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
    mvtab *v = sqlite3_malloc(sizeof(*v));
    if (!v) return SQLITE_NOMEM;
    memset(v, 0, sizeof(*v));
    v->s = s;
    v->tid = t->id;
    *out = &v->base;
    return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* The key columns of plan slot 0 (primary) or k (secondary index k-1),
 * including the primary key columns that follow an index's own. */
static int slot_cols(const sql_table *t, int slot, int *cols, uint8_t *desc, int *nseek)
{
    int n = 0;
    if (slot > 0) {
        const sql_index *ix = &t->idx[slot - 1];
        for (int j = 0; j < ix->ncols; j++) {
            cols[n] = ix->cols[j];
            desc[n++] = ix->desc[j];
        }
    }
    *nseek = slot > 0 ? n : t->npk;
    for (int j = 0; j < t->npk; j++) {
        cols[n] = t->pk[j];
        desc[n++] = t->pkdesc[j];
    }
    return n;
}

static int col_match(const sql_table *t, int keycol, int icol)
{
    if (keycol == icol) return 1;
    return t->rowid && (keycol == -1 || keycol == t->ipk) && (icol == -1 || icol == t->ipk);
}

static int col_binary(const sql_table *t, int c)
{
    return c < 0 || t->cols[c].binary;
}

typedef struct plan {
    int slot, neq, lo, hi, rev, ordered, covering;
    int eqc[MKEY_MAX_COLS];
    int loc, hic;
    char flags[MKEY_MAX_COLS + 3];
    double cost, rows;
    int unique;
} plan;

static int op_is_eq(int op)
{
    return op == SQLITE_INDEX_CONSTRAINT_EQ || op == SQLITE_INDEX_CONSTRAINT_IS;
}

static void plan_slot(const sql_table *t, sqlite3_index_info *info, int slot, plan *p)
{
    int cols[2 * MKEY_MAX_COLS];
    uint8_t desc[2 * MKEY_MAX_COLS];
    int nseek, ncols = slot_cols(t, slot, cols, desc, &nseek);
    memset(p, 0, sizeof(*p));
    p->slot = slot;
    p->loc = p->hic = -1;
    int all_eq = 1;
    char used[512] = {0}; /* an index may name a column twice: use each constraint once */
    for (int j = 0; j < nseek; j++) {
        if (!col_binary(t, cols[j])) break;
        int found = -1;
        for (int i = 0; i < info->nConstraint && i < 512 && found < 0; i++) {
            const struct sqlite3_index_constraint *c = &info->aConstraint[i];
            if (c->usable && !used[i] && op_is_eq(c->op) && col_match(t, cols[j], c->iColumn) &&
                sqlite3_stricmp(sqlite3_vtab_collation(info, i), "BINARY") == 0)
                found = i;
        }
        if (found < 0) break;
        used[found] = 1;
        if (info->aConstraint[found].op == SQLITE_INDEX_CONSTRAINT_IS) all_eq = 0;
        p->eqc[p->neq++] = found;
    }
    if (p->neq < nseek && col_binary(t, cols[p->neq])) {
        for (int i = 0; i < info->nConstraint && i < 512; i++) {
            const struct sqlite3_index_constraint *c = &info->aConstraint[i];
            if (!c->usable || used[i] || !col_match(t, cols[p->neq], c->iColumn) ||
                sqlite3_stricmp(sqlite3_vtab_collation(info, i), "BINARY") != 0)
                continue;
            if ((c->op == SQLITE_INDEX_CONSTRAINT_GT || c->op == SQLITE_INDEX_CONSTRAINT_GE) &&
                p->loc < 0) {
                p->loc = i;
                p->lo = c->op == SQLITE_INDEX_CONSTRAINT_GE ? 1 : 2;
            }
            if ((c->op == SQLITE_INDEX_CONSTRAINT_LT || c->op == SQLITE_INDEX_CONSTRAINT_LE) &&
                p->hic < 0) {
                p->hic = i;
                p->hi = c->op == SQLITE_INDEX_CONSTRAINT_LE ? 1 : 2;
            }
        }
    }
    int unique = slot == 0 || t->idx[slot - 1].unique;
    p->unique = unique && all_eq && p->neq == nseek;
    if (p->unique) {
        p->rows = 1;
    } else {
        p->rows = NOMINAL_ROWS;
        for (int j = 0; j < p->neq; j++) p->rows /= 10;
        if (p->lo) p->rows /= 4;
        if (p->hi) p->rows /= 4;
        if (p->rows < 2) p->rows = 2;
    }
    /* A secondary index costs a row fetch per entry on top of the scan,
     * unless it covers every column the statement uses (index-only scan). */
    if (slot > 0) {
        p->covering = t->ncols < 64;
        for (int c = 0; c < t->ncols && p->covering; c++) {
            if (!(info->colUsed & ((sqlite3_uint64)1 << c))) continue;
            int in = 0;
            for (int j = 0; j < ncols; j++) in |= cols[j] == c;
            p->covering = in;
        }
    }
    p->cost = (slot ? (p->covering ? 1.5 : 3.0) : 1.0) * p->rows + (slot ? 2.0 : 1.0);
    /* ORDER BY: the scan's order is the key order from some column at or
     * before the first non-equality column, all terms in one direction. */
    if (info->nOrderBy > 0) {
        for (int start = 0; start <= p->neq && !p->ordered; start++) {
            int rev = -1, ok = start + info->nOrderBy <= ncols;
            for (int k = 0; k < info->nOrderBy && ok; k++) {
                int kc = cols[start + k];
                int r = (info->aOrderBy[k].desc != 0) != (desc[start + k] != 0);
                if (!col_match(t, kc, info->aOrderBy[k].iColumn) || !col_binary(t, kc) ||
                    (rev >= 0 && r != rev))
                    ok = 0;
                rev = r;
            }
            if (ok) {
                p->ordered = 1;
                p->rev = rev;
            }
        }
        if (!p->ordered && p->rows > 1) p->cost += p->rows * 0.5; /* the sort SQLite adds */
    }
}

static int vt_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    mvtab *v = (mvtab *)vt;
    sql_table *t = sql_find_table_id(v->s, v->tid);
    if (!t) return SQLITE_ERROR;
    plan best, cur;
    plan_slot(t, info, 0, &best);
    for (int k = 0; k < t->nidx; k++) {
        if (t->idx[k].write_only) continue; /* still being backfilled: incomplete */
        plan_slot(t, info, k + 1, &cur);
        if (cur.cost < best.cost) best = cur;
    }
    int arg = 1;
    char *f = best.flags;
    for (int j = 0; j < best.neq; j++) {
        int i = best.eqc[j];
        sqlite3_value *rhs = NULL;
        int konst = sqlite3_vtab_rhs_value(info, i, &rhs) == SQLITE_OK;
        info->aConstraintUsage[i].argvIndex = arg++;
        *f++ = info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_IS ? (konst ? 'I' : 'i')
                                                                     : (konst ? 'E' : 'e');
    }
    for (int side = 0; side < 2; side++) {
        int i = side ? best.hic : best.loc;
        if (i < 0) continue;
        sqlite3_value *rhs = NULL;
        info->aConstraintUsage[i].argvIndex = arg++;
        *f++ = sqlite3_vtab_rhs_value(info, i, &rhs) == SQLITE_OK ? 'C' : 'c';
    }
    /* LIMIT/OFFSET go to the scan only when nothing else filters or sorts
     * after it: every other constraint is re-checked by SQLite (we never
     * omit), and an unconsumed ORDER BY needs all rows. */
    int only_limits = info->nOrderBy == 0 || best.ordered;
    for (int i = 0; i < info->nConstraint; i++)
        if (info->aConstraint[i].op != SQLITE_INDEX_CONSTRAINT_LIMIT &&
            info->aConstraint[i].op != SQLITE_INDEX_CONSTRAINT_OFFSET)
            only_limits = 0;
    for (int i = 0; i < info->nConstraint && only_limits; i++) {
        if (!info->aConstraint[i].usable) continue;
        info->aConstraintUsage[i].argvIndex = arg++;
        *f++ = info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_LIMIT ? 'L' : 'O';
    }
    *f = 0;
    info->idxNum = best.slot | (best.neq << 8) | (best.lo << 16) | (best.hi << 18) |
                   (best.rev << 20) | (best.covering << 21);
    info->idxStr = sqlite3_mprintf("%s", best.flags);
    info->needToFreeIdxStr = 1;
    info->orderByConsumed = best.ordered;
    info->estimatedCost = best.cost;
    info->estimatedRows = (sqlite3_int64)best.rows;
    if (best.unique) info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
    return info->idxStr ? SQLITE_OK : SQLITE_NOMEM;
}

static int vt_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    mvtab *v = (mvtab *)vt;
    sql_table *t = sql_find_table_id(v->s, v->tid);
    mcursor *c = sqlite3_malloc(sizeof(*c));
    if (!c || !t) {
        sqlite3_free(c);
        return SQLITE_NOMEM;
    }
    memset(c, 0, sizeof(*c));
    if (sql_row_init(&c->row, t)) {
        sql_row_free(&c->row);
        sqlite3_free(c);
        return SQLITE_NOMEM;
    }
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static void cur_reset(mcursor *c)
{
    mvtab *v = (mvtab *)c->base.pVtab;
    if (c->it) v->s->ops->iter_close(c->it);
    c->it = NULL;
    for (int i = 0; i < c->nconv; i++) sqlite3_value_free(c->conv[i]);
    c->nconv = 0;
    c->eof = 1;
}

static int vt_close(sqlite3_vtab_cursor *cur)
{
    mcursor *c = (mcursor *)cur;
    cur_reset(c);
    sql_row_free(&c->row);
    mbuf_free(&c->ikscratch);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int vt_fail(sqlite3_vtab *vt, const merr *e)
{
    /* A read that lost a conflict (wounded, or its snapshot is gone) ends the
     * transaction as a failed write does: the statement reports MERR_ABORTED
     * and the client retries the whole transaction. */
    if (e->code == MERR_ABORTED || e->code == MERR_RETRY)
        ((mvtab *)vt)->s->stmt_rollback_txn = SQL_RB_CONFLICT;
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("%s", merr_msg(e));
    return e->code == MERR_NOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
}

/* An index-only row: the columns the statement uses come from the index
 * entry (and the row key it carries); the others stay NULL, unread. */
static int cover_row(mcursor *c, const sql_table *t, const sql_index *ix, const uint8_t *k,
                     size_t kl, const uint8_t *v, size_t vl, merr *e)
{
    size_t n, np;
    const mkey_val *pk;
    int rc = mkey_decode(k, kl, c->row.kv, MKEY_MAX_COLS, &n, &c->row.kscratch, e);
    if (rc) return rc;
    if (n != (size_t)(2 + ix->ncols + (vl ? 0 : t->npk)))
        return merr_set(e, MERR_CORRUPT, "index %s: entry has %zu columns", ix->name, n);
    mbuf_reset(&c->row.key);
    if (vl) { /* unique form: the value is the row key */
        rc = mkey_decode(v, vl, c->pkv, MKEY_MAX_COLS, &np, &c->ikscratch, e);
        if (rc) return rc;
        if (np != (size_t)(2 + t->npk))
            return merr_set(e, MERR_CORRUPT, "index %s: bad row key", ix->name);
        pk = &c->pkv[2];
        if (mbuf_append(&c->row.key, v, vl)) return merr_set(e, MERR_NOMEM, "out of memory");
    } else {
        pk = &c->row.kv[2 + ix->ncols];
        rc = sql_index_row_key(t, ix, k, kl, v, vl, &c->row.key, &c->ikscratch, e);
        if (rc) return rc;
    }
    for (int i = 0; i < t->ncols; i++) c->row.cv[i] = mkey_null(0);
    for (int j = 0; j < ix->ncols; j++) {
        c->row.cv[ix->cols[j]] = c->row.kv[2 + j];
        c->row.cv[ix->cols[j]].desc = 0;
    }
    for (int i = 0; i < t->npk; i++) {
        if (t->pk[i] < 0) continue;
        c->row.cv[t->pk[i]] = pk[i];
        c->row.cv[t->pk[i]].desc = 0;
    }
    if (t->rowid) {
        if (pk[0].type != MKEY_INT)
            return merr_set(e, MERR_CORRUPT, "index %s: bad rowid", ix->name);
        c->row.rowid = pk[0].i;
    }
    return 0;
}

static int vt_next(sqlite3_vtab_cursor *cur)
{
    mcursor *c = (mcursor *)cur;
    mvtab *v = (mvtab *)cur->pVtab;
    sql_session *s = v->s;
    sql_table *t = sql_find_table_id(s, v->tid);
    const uint8_t *k, *val;
    size_t kl, vl;
    merr e = {0};
    if (!t) return SQLITE_ERROR;
    int rc = s->ops->iter_next(c->it, &k, &kl, &val, &vl, &e);
    if (rc < 0) return vt_fail(cur->pVtab, &e);
    if (rc == 0) {
        c->eof = 1;
        return SQLITE_OK;
    }
    if (c->slot > 0 && c->covering) {
        rc = cover_row(c, t, &t->idx[c->slot - 1], k, kl, val, vl, &e);
        if (rc) return vt_fail(cur->pVtab, &e);
        c->eof = 0;
        return SQLITE_OK;
    }
    if (c->slot > 0) {
        const sql_index *ix = &t->idx[c->slot - 1];
        rc = sql_index_row_key(t, ix, k, kl, val, vl, &c->row.key, &c->ikscratch, &e);
        if (!rc) {
            int fw = sql_stmt_writes(s, t->name); /* an UPDATE/DELETE's rows: X at once */
            if (fw) sql_kv_for_write(s, 1);
            rc = s->ops->get(s->txn, c->row.key.data, c->row.key.len, &c->row.val, &e);
            if (fw) sql_kv_for_write(s, 0);
            if (rc == MERR_NOTFOUND)
                rc = merr_set(&e, MERR_CORRUPT, "index %s: entry without a row", ix->name);
        }
        if (rc) return vt_fail(cur->pVtab, &e);
        k = c->row.key.data;
        kl = c->row.key.len;
        val = c->row.val.data;
        vl = c->row.val.len;
    } else {
        mbuf_reset(&c->row.key);
        if (mbuf_append(&c->row.key, k, kl)) return SQLITE_NOMEM;
    }
    rc = sql_row_decode(t, k, kl, val, vl, &c->row, &e);
    if (rc) return vt_fail(cur->pVtab, &e);
    c->eof = 0;
    return SQLITE_OK;
}

/* Applies the comparison affinity SQLite would apply to a constraint value
 * against column `col`; returns 0 if the key order cannot be trusted for it
 * (the scan then ignores the constraint). */
static int convert_arg(mcursor *c, const sql_table *t, int col, sqlite3_value *in, char flag,
                       mkey_val *out)
{
    char aff = col < 0 ? 'D' : t->cols[col].aff;
    int type = sqlite3_value_type(in);
    int konst = flag == 'E' || flag == 'I' || flag == 'C';
    if (aff >= 'C' && type == SQLITE_TEXT) {
        sqlite3_value *d = sqlite3_value_dup(in);
        if (!d) return 0;
        c->conv[c->nconv++] = d;
        sqlite3_value_numeric_type(d);
        *out = sql_val_from_sqlite(d, 0);
        return 1;
    }
    if (aff < 'C' && (type == SQLITE_INTEGER || type == SQLITE_FLOAT)) {
        if (!konst) return 0; /* another column may impose numeric affinity */
        if (aff == 'B') {
            sqlite3_value *d = sqlite3_value_dup(in);
            if (!d) return 0;
            c->conv[c->nconv++] = d;
            sqlite3_value_text(d);
            *out = mkey_text(sqlite3_value_text(d), (size_t)sqlite3_value_bytes(d), 0);
            return 1;
        }
    }
    *out = sql_val_from_sqlite(in, 0);
    return 1;
}

static int vt_filter(sqlite3_vtab_cursor *cur, int idxnum, const char *idxstr, int argc,
                     sqlite3_value **argv)
{
    mcursor *c = (mcursor *)cur;
    mvtab *v = (mvtab *)cur->pVtab;
    sql_session *s = v->s;
    sql_table *t = sql_find_table_id(s, v->tid);
    int cols[2 * MKEY_MAX_COLS];
    uint8_t desc[2 * MKEY_MAX_COLS];
    mkey_val kv[MKEY_MAX_COLS + 3];
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    merr e = {0};
    int nseek, rc = 0;
    cur_reset(c);
    if (!t) return SQLITE_ERROR;
    if (!s->txn) {
        sqlite3_free(cur->pVtab->zErrMsg);
        cur->pVtab->zErrMsg = sqlite3_mprintf("meridian: no transaction");
        return SQLITE_ERROR;
    }
    c->slot = idxnum & 0xff;
    int neq = (idxnum >> 8) & 0xff, lok = (idxnum >> 16) & 3, hik = (idxnum >> 18) & 3;
    int rev = (idxnum >> 20) & 1;
    c->covering = (idxnum >> 21) & 1;
    if (c->slot > t->nidx || neq > MKEY_MAX_COLS - 3 || argc < neq + !!lok + !!hik)
        return SQLITE_ERROR;
    slot_cols(t, c->slot, cols, desc, &nseek);
    size_t n = 0;
    kv[n++] = mkey_int(t->id, 0);
    kv[n++] = mkey_int(c->slot ? t->idx[c->slot - 1].id : SQL_PRIMARY_INDEX, 0);
    int usable = 1, empty = 0, a = 0;
    for (int j = 0; j < neq; j++, a++) {
        mkey_val x;
        if (!usable || !convert_arg(c, t, cols[j], argv[a], idxstr[a], &x)) {
            usable = 0;
            continue;
        }
        if (x.type == MKEY_NULL && (idxstr[a] == 'e' || idxstr[a] == 'E')) empty = 1;
        x.desc = desc[j];
        kv[n++] = x;
    }
    rc = mkey_encode_prefix(kv, n, &lo);
    if (!rc) rc = mkey_encode_prefix(kv, n, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    for (int side = 0; side < 2 && !rc && usable; side++) {
        int kind = side ? hik : lok;
        if (!kind) continue;
        mkey_val x;
        int ai = a++;
        if (!convert_arg(c, t, cols[neq], argv[ai], idxstr[ai], &x)) continue;
        if (x.type == MKEY_NULL) empty = 1;
        x.desc = desc[neq];
        kv[n] = x;
        /* SQL lower bounds are key-order upper bounds on a DESC column. */
        int upper = side ^ (desc[neq] != 0);
        enum mkey_bound_kind bk =
            upper ? (kind == 1 ? MKEY_LE : MKEY_LT) : (kind == 1 ? MKEY_GE : MKEY_GT);
        mbuf *dst = upper ? &hi : &lo;
        mbuf_reset(dst);
        rc = mkey_bound(kv, n + 1, bk, dst);
    }
    if (rc) {
        rc = merr_set(&e, rc, "bad scan bound");
        goto out;
    }
    if (empty) goto out;
    /* Pushed-down LIMIT/OFFSET (see vt_best_index): the scan needs at most
     * limit + offset rows; SQLite still applies both itself. */
    int64_t lim = -1, off = 0;
    for (int ai = 0; ai < argc && idxstr[ai]; ai++) {
        if (idxstr[ai] == 'L') lim = sqlite3_value_int64(argv[ai]);
        if (idxstr[ai] == 'O' && sqlite3_value_int64(argv[ai]) > 0)
            off = sqlite3_value_int64(argv[ai]);
    }
    size_t limit = lim >= 0 && lim < INT32_MAX && off < INT32_MAX ? (size_t)(lim + off) : 0;
    if (lim == 0) goto out; /* LIMIT 0: nothing */
    /* The rows an UPDATE or DELETE finds (and an INSERT's reads of its own
     * table) are locked for writing at once (sql/kv.h lock_for_write). */
    int fw = sql_stmt_writes(s, t->name);
    if (fw) sql_kv_for_write(s, 1);
    rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, rev, limit, &c->it, &e);
    if (fw) sql_kv_for_write(s, 0);
out:
    mbuf_free(&lo);
    mbuf_free(&hi);
    if (rc) return vt_fail(cur->pVtab, &e);
    if (!c->it) return SQLITE_OK; /* eof */
    return vt_next(cur);
}

static int vt_eof(sqlite3_vtab_cursor *cur)
{
    return ((mcursor *)cur)->eof;
}

static int vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i)
{
    mcursor *c = (mcursor *)cur;
    sql_val_result(ctx, &c->row.cv[i]);
    return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    mcursor *c = (mcursor *)cur;
    mvtab *v = (mvtab *)cur->pVtab;
    sql_table *t = sql_find_table_id(v->s, v->tid);
    if (!t) return SQLITE_ERROR;
    if (t->rowid) {
        *out = c->row.rowid;
        return SQLITE_OK;
    }
    return sql_handle_new(v->s, &c->row.key, out) ? SQLITE_NOMEM : SQLITE_OK;
}

static const sqlite3_module meridian_module = {
    .iVersion = 1,
    .xCreate = vt_connect,
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_disconnect,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
    .xUpdate = sql_vtab_update,
};

int sql_vtab_register(sql_session *s)
{
    return sqlite3_create_module(s->db, "meridian", &meridian_module, s) == SQLITE_OK
               ? 0
               : MERR_INTERNAL;
}
