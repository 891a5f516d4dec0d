/* Row and index entry encoding for a table of the session catalog (row.c). */
#ifndef MERIDIAN_SQL_ROW_H
#define MERIDIAN_SQL_ROW_H

#include "sql/record.h"
#include "sql/sql_int.h"

/* A decoded row: cv[i] is column i (text/blob point into key/val buffers or
 * the table's default values). */
typedef struct sql_row {
    mkey_val kv[MKEY_MAX_COLS];
    mbuf kscratch;
    sql_rec_field *f;
    mkey_val *cv;
    int64_t rowid;
    mbuf key, val; /* owned copies when the row was fetched by get */
} sql_row;

int sql_row_init(sql_row *r, const sql_table *t);
void sql_row_free(sql_row *r);
/* Decodes a row stored under key -> val. MERR_CORRUPT for anything malformed. */
int sql_row_decode(const sql_table *t, const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen, sql_row *r, merr *e);
/* The row key for column values cv (rowid for rowid tables); with prefix set,
 * the scan prefix that also covers SQL-equal values of other types. */
int sql_row_key_vals(const sql_table *t, const mkey_val *cv, int64_t rowid, mbuf *out, int prefix);
/* The record of the non-key columns. */
int sql_row_record(const sql_table *t, const mkey_val *cv, mbuf *out);
/* An index entry for a row; *unique_form says the key holds only the indexed
 * columns (a unique index without NULLs) and the value is the row key. */
int sql_index_entry(const sql_table *t, const sql_index *ix, const mkey_val *cv, int64_t rowid,
                    const mbuf *rowkey, mbuf *key, mbuf *val, int *unique_form);
/* The scan prefix of an index's indexed columns (uniqueness probes). */
int sql_index_prefix(const sql_table *t, const sql_index *ix, const mkey_val *cv, mbuf *out);
/* The row key an index entry points at. */
int sql_index_row_key(const sql_table *t, const sql_index *ix, const uint8_t *key, size_t klen,
                      const uint8_t *val, size_t vlen, mbuf *rowkey, mbuf *scratch, merr *e);

#endif
