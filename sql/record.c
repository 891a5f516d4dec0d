/* Record encoding of a row's non-key columns (format in record.h) and the
 * SQLite <-> key-codec value conversions the virtual table needs. */
#include "sql/record.h"

#include <string.h>

int sql_rec_encode(const sql_rec_field *fields, size_t n, mbuf *out)
{
    size_t start = out->len;
    int rc = mbuf_append_u8(out, SQL_REC_FORMAT);
    for (size_t i = 0; i < n && !rc; i++) {
        const sql_rec_field *f = &fields[i];
        if (i > 0 && f->col <= fields[i - 1].col) {
            rc = MERR_INVALID;
            break;
        }
        if (f->v.type > MKEY_BLOB) {
            rc = MERR_INVALID;
            break;
        }
        rc = mbuf_append_varint(out, ((uint64_t)f->col << 3) | f->v.type);
        if (rc) break;
        switch (f->v.type) {
        case MKEY_INT: {
            uint64_t u = (uint64_t)f->v.i;
            rc = mbuf_append_varint(out, (u << 1) ^ (uint64_t)(f->v.i >> 63));
            break;
        }
        case MKEY_REAL: {
            uint64_t bits;
            memcpy(&bits, &f->v.d, 8);
            rc = mbuf_append_u64be(out, bits);
            break;
        }
        case MKEY_TEXT:
        case MKEY_BLOB:
            rc = mbuf_append_varint(out, f->v.n);
            if (!rc && f->v.n) rc = mbuf_append(out, f->v.p, f->v.n);
            break;
        default: break;
        }
    }
    if (rc) out->len = start;
    return rc;
}

int sql_rec_decode(const uint8_t *rec, size_t len, sql_rec_field *fields, size_t max, size_t *n,
                   merr *e)
{
    mreader r;
    uint8_t fmt;
    size_t k = 0;
    int64_t last = -1;
    mreader_init(&r, rec, len);
    if (mreader_u8(&r, &fmt) || fmt != SQL_REC_FORMAT)
        return merr_set(e, MERR_CORRUPT, "record: bad format byte");
    while (mreader_left(&r)) {
        uint64_t tag, u;
        if (mreader_varint(&r, &tag)) return merr_set(e, MERR_CORRUPT, "record: truncated tag");
        uint64_t col = tag >> 3;
        unsigned type = (unsigned)(tag & 7);
        if (col > UINT32_MAX || (int64_t)col <= last)
            return merr_set(e, MERR_CORRUPT, "record: column ids out of order");
        if (type > MKEY_BLOB) return merr_set(e, MERR_CORRUPT, "record: unknown type %u", type);
        if (k == max) return merr_set(e, MERR_TOOBIG, "record: more than %zu fields", max);
        sql_rec_field *f = &fields[k];
        memset(f, 0, sizeof(*f));
        f->col = (uint32_t)col;
        f->v.type = (uint8_t)type;
        switch (type) {
        case MKEY_INT:
            if (mreader_varint(&r, &u)) return merr_set(e, MERR_CORRUPT, "record: truncated int");
            f->v.i = (int64_t)((u >> 1) ^ (0 - (u & 1)));
            break;
        case MKEY_REAL:
            if (mreader_u64be(&r, &u)) return merr_set(e, MERR_CORRUPT, "record: truncated real");
            memcpy(&f->v.d, &u, 8);
            break;
        case MKEY_TEXT:
        case MKEY_BLOB:
            if (mreader_varint(&r, &u) || u > mreader_left(&r) ||
                mreader_bytes(&r, (size_t)u, &f->v.p))
                return merr_set(e, MERR_CORRUPT, "record: truncated text/blob");
            f->v.n = (size_t)u;
            break;
        default: break;
        }
        last = (int64_t)col;
        k++;
    }
    *n = k;
    return 0;
}

mkey_val sql_val_from_sqlite(sqlite3_value *v, int desc)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return mkey_int(sqlite3_value_int64(v), desc);
    case SQLITE_FLOAT: return mkey_real(sqlite3_value_double(v), desc);
    case SQLITE_TEXT: {
        const unsigned char *p = sqlite3_value_text(v);
        return mkey_text(p ? p : (const unsigned char *)"", (size_t)sqlite3_value_bytes(v), desc);
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_value_blob(v);
        return mkey_blob(p ? p : "", (size_t)sqlite3_value_bytes(v), desc);
    }
    default: return mkey_null(desc);
    }
}

void sql_val_result(sqlite3_context *ctx, const mkey_val *v)
{
    switch (v->type) {
    case MKEY_INT: sqlite3_result_int64(ctx, v->i); break;
    case MKEY_REAL: sqlite3_result_double(ctx, v->d); break;
    case MKEY_TEXT:
        sqlite3_result_text(ctx, (const char *)v->p, (int)v->n, SQLITE_TRANSIENT);
        break;
    case MKEY_BLOB: sqlite3_result_blob(ctx, v->p, (int)v->n, SQLITE_TRANSIENT); break;
    default: sqlite3_result_null(ctx); break;
    }
}

int sql_val_bind(sqlite3_stmt *st, int i, const mkey_val *v)
{
    switch (v->type) {
    case MKEY_INT: return sqlite3_bind_int64(st, i, v->i);
    case MKEY_REAL: return sqlite3_bind_double(st, i, v->d);
    case MKEY_TEXT:
        return sqlite3_bind_text(st, i, (const char *)v->p, (int)v->n, SQLITE_TRANSIENT);
    case MKEY_BLOB: return sqlite3_bind_blob(st, i, v->p, (int)v->n, SQLITE_TRANSIENT);
    default: return sqlite3_bind_null(st, i);
    }
}

/* A value as a column of affinity aff stores it (datatype3.html §3);
 * v is a private copy that the result may point into. */
mkey_val sql_apply_affinity(char aff, sqlite3_value *v)
{
    int ty = sqlite3_value_type(v);
    if (aff == 'B' && (ty == SQLITE_INTEGER || ty == SQLITE_FLOAT)) {
        const unsigned char *p = sqlite3_value_text(v);
        return mkey_text(p ? p : (const unsigned char *)"", (size_t)sqlite3_value_bytes(v), 0);
    }
    if (aff >= 'C' && ty == SQLITE_TEXT) ty = sqlite3_value_numeric_type(v);
    mkey_val out = sql_val_from_sqlite(v, 0);
    if (aff == 'E' && out.type == MKEY_INT) return mkey_real((double)out.i, 0);
    if ((aff == 'C' || aff == 'D') && out.type == MKEY_REAL) {
        /* SQLite keeps a REAL as INTEGER when it converts exactly (and within
         * ±2^51, where SQLite trusts the conversion). */
        double d = out.d;
        if (d >= -2251799813685248.0 && d < 2251799813685248.0 && d == (double)(int64_t)d)
            return mkey_int((int64_t)d, 0);
    }
    return out;
}
