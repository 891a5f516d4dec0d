/* Row and index entry encoding for one table (docs/sql.md, "Encoding"):
 *
 *   row:            (table, 1, pk...)            -> record of non-key columns
 *   index:          (table, index, cols..., pk...) -> empty
 *   unique index:   (table, index, cols...)        -> the row's key
 *                   (when a column is NULL it takes the non-unique form, as
 *                    NULLs never conflict)
 *
 * Rowid tables (no PRIMARY KEY, or an INTEGER PRIMARY KEY) use the integer
 * rowid as their single key column. */
#include <stdlib.h>
#include <string.h>

#include "sql/record.h"
#include "sql/row.h"

int sql_row_key_vals(const sql_table *t, const mkey_val *cv, int64_t rowid, mbuf *out, int prefix)
{
    mkey_val v[MKEY_MAX_COLS];
    size_t n = 0;
    v[n++] = mkey_int(t->id, 0);
    v[n++] = mkey_int(SQL_PRIMARY_INDEX, 0);
    if (t->rowid) {
        v[n++] = mkey_int(rowid, 0);
    } else {
        for (int i = 0; i < t->npk; i++) {
            v[n] = cv[t->pk[i]];
            v[n++].desc = t->pkdesc[i];
        }
    }
    mbuf_reset(out);
    return prefix ? mkey_encode_prefix(v, n, out) : mkey_encode(v, n, out);
}

int sql_row_record(const sql_table *t, const mkey_val *cv, mbuf *out)
{
    sql_rec_field *f = calloc((size_t)t->ncols + 1, sizeof(*f));
    size_t n = 0;
    if (!f) return MERR_NOMEM;
    for (int i = 0; i < t->ncols; i++) {
        if (t->cols[i].keypos >= 0) continue;
        f[n].col = (uint32_t)i;
        f[n++].v = cv[i];
    }
    mbuf_reset(out);
    int rc = sql_rec_encode(f, n, out);
    free(f);
    return rc;
}

int sql_index_entry(const sql_table *t, const sql_index *ix, const mkey_val *cv, int64_t rowid,
                    const mbuf *rowkey, mbuf *key, mbuf *val, int *unique_form)
{
    mkey_val v[MKEY_MAX_COLS];
    size_t n = 0;
    int has_null = 0;
    if (2 + ix->ncols + t->npk > MKEY_MAX_COLS) return MERR_TOOBIG; /* refused at CREATE */
    v[n++] = mkey_int(t->id, 0);
    v[n++] = mkey_int(ix->id, 0);
    for (int j = 0; j < ix->ncols; j++) {
        v[n] = cv[ix->cols[j]];
        v[n].desc = ix->desc[j];
        if (v[n].type == MKEY_NULL) has_null = 1;
        n++;
    }
    mbuf_reset(key);
    mbuf_reset(val);
    *unique_form = ix->unique && !has_null;
    if (*unique_form) {
        int rc = mkey_encode(v, n, key);
        return rc ? rc : mbuf_append(val, rowkey->data, rowkey->len);
    }
    if (t->rowid) {
        v[n++] = mkey_int(rowid, 0);
    } else {
        for (int i = 0; i < t->npk; i++) {
            v[n] = cv[t->pk[i]];
            v[n++].desc = t->pkdesc[i];
        }
    }
    return mkey_encode(v, n, key);
}

int sql_index_prefix(const sql_table *t, const sql_index *ix, const mkey_val *cv, mbuf *out)
{
    mkey_val v[MKEY_MAX_COLS];
    size_t n = 0;
    v[n++] = mkey_int(t->id, 0);
    v[n++] = mkey_int(ix->id, 0);
    for (int j = 0; j < ix->ncols; j++) {
        v[n] = cv[ix->cols[j]];
        v[n++].desc = ix->desc[j];
    }
    mbuf_reset(out);
    return mkey_encode_prefix(v, n, out);
}

int sql_index_row_key(const sql_table *t, const sql_index *ix, const uint8_t *key, size_t klen,
                      const uint8_t *val, size_t vlen, mbuf *rowkey, mbuf *scratch, merr *e)
{
    mkey_val kv[MKEY_MAX_COLS];
    size_t n;
    mbuf_reset(rowkey);
    if (vlen) return mbuf_append(rowkey, val, vlen) ? merr_set(e, MERR_NOMEM, "out of memory") : 0;
    int rc = mkey_decode(key, klen, kv, MKEY_MAX_COLS, &n, scratch, e);
    if (rc) return rc;
    if (n != (size_t)(2 + ix->ncols + t->npk))
        return merr_set(e, MERR_CORRUPT, "index %s: entry has %zu columns", ix->name, n);
    mkey_val *pk = &kv[2 + ix->ncols];
    pk[-2] = mkey_int(t->id, 0);
    pk[-1] = mkey_int(SQL_PRIMARY_INDEX, 0);
    return mkey_encode(pk - 2, (size_t)t->npk + 2, rowkey) ? merr_set(e, MERR_CORRUPT, "bad key")
                                                           : 0;
}

int sql_row_decode(const sql_table *t, const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen, sql_row *r, merr *e)
{
    size_t n, nf;
    int rc = mkey_decode(key, klen, r->kv, MKEY_MAX_COLS, &n, &r->kscratch, e);
    if (rc) return rc;
    if (n != (size_t)(2 + t->npk) || r->kv[0].type != MKEY_INT || r->kv[0].i != t->id ||
        r->kv[1].type != MKEY_INT || r->kv[1].i != SQL_PRIMARY_INDEX ||
        (t->rowid && r->kv[2].type != MKEY_INT))
        return merr_set(e, MERR_CORRUPT, "table %s: malformed row key", t->name);
    rc = sql_rec_decode(val, vlen, r->f, (size_t)t->ncols, &nf, e);
    if (rc) {
        if (!e) return MERR_CORRUPT;
        e->code = MERR_CORRUPT;
        return merr_wrap(e, "table %s", t->name);
    }
    r->rowid = t->rowid ? r->kv[2].i : 0;
    size_t fi = 0;
    for (int i = 0; i < t->ncols; i++) {
        const sql_column *c = &t->cols[i];
        if (c->keypos >= 0) {
            r->cv[i] = r->kv[2 + c->keypos];
            r->cv[i].desc = 0;
            continue;
        }
        while (fi < nf && r->f[fi].col < (uint32_t)i) fi++;
        if (fi < nf && r->f[fi].col == (uint32_t)i)
            r->cv[i] = r->f[fi].v;
        else
            r->cv[i] = c->dflt ? c->dflt_val : mkey_null(0);
    }
    if (nf && r->f[nf - 1].col >= (uint32_t)t->ncols)
        return merr_set(e, MERR_CORRUPT, "table %s: record has unknown column", t->name);
    return 0;
}

int sql_row_init(sql_row *r, const sql_table *t)
{
    memset(r, 0, sizeof(*r));
    r->cv = calloc((size_t)t->ncols + 1, sizeof(*r->cv));
    r->f = calloc((size_t)t->ncols + 1, sizeof(*r->f));
    return r->cv && r->f ? 0 : MERR_NOMEM;
}

void sql_row_free(sql_row *r)
{
    free(r->cv);
    free(r->f);
    mbuf_free(&r->kscratch);
    mbuf_free(&r->key);
    mbuf_free(&r->val);
    memset(r, 0, sizeof(*r));
}
