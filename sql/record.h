/* Row values: the compact record that stores a row's non-key columns, and
 * conversions between SQLite values and key-codec values.
 *
 * Record format (docs/sql.md): a format byte (1), then one field per stored
 * column in increasing column-id order:
 *
 *     varint tag = column_id << 3 | type      (type: enum mkey_type)
 *     INT:  zigzag varint      REAL: 8 bytes, IEEE bits big-endian
 *     TEXT/BLOB: varint length, bytes          NULL: nothing more
 *
 * Column ids are a column's ordinal in the table and never change (columns are
 * only ever added at the end), so ALTER TABLE ADD COLUMN rewrites no row: an
 * old record simply lacks the new id and readers supply the column's default.
 * A NULL costs one byte. The decoder trusts nothing: any truncation, unknown
 * type, out-of-order id or trailing byte is MERR_CORRUPT. */
#ifndef MERIDIAN_SQL_RECORD_H
#define MERIDIAN_SQL_RECORD_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/keycodec.h"

#define SQL_REC_FORMAT 1

typedef struct sql_rec_field {
    uint32_t col;
    mkey_val v; /* desc is ignored */
} sql_rec_field;

/* Appends the record of fields[0..n), which must have strictly increasing
 * column ids. MERR_INVALID otherwise (or for a bad type), MERR_NOMEM. */
int sql_rec_encode(const sql_rec_field *fields, size_t n, mbuf *out);

/* Decodes a record; text/blob fields point into `rec`. At most max fields;
 * MERR_CORRUPT (message in e) for malformed input, MERR_TOOBIG past max. */
int sql_rec_decode(const uint8_t *rec, size_t len, sql_rec_field *fields, size_t max, size_t *n,
                   merr *e);

/* A SQLite value as a key-codec value (text/blob point into the sqlite3_value,
 * valid while it is unchanged). */
mkey_val sql_val_from_sqlite(sqlite3_value *v, int desc);
/* The value a column of affinity aff ('A' blob/none, 'B' text, 'C' numeric,
 * 'D' integer, 'E' real) stores for v, which must be a private copy (it may
 * be converted in place and the result may point into it). */
mkey_val sql_apply_affinity(char aff, sqlite3_value *v);
/* Sets a function/column result from a key-codec value (copies bytes). */
void sql_val_result(sqlite3_context *ctx, const mkey_val *v);
/* Binds a key-codec value to a statement parameter (copies bytes). */
int sql_val_bind(sqlite3_stmt *st, int i, const mkey_val *v);

#endif
