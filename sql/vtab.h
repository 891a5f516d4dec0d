/* Shared between the virtual table's read side (vtab.c) and write side
 * (vtab_write.c). */
#ifndef MERIDIAN_SQL_VTAB_H
#define MERIDIAN_SQL_VTAB_H

#include "sql/row.h"
#include "sql/sql_int.h"

typedef struct mvtab {
    sqlite3_vtab base;
    sql_session *s;
    uint32_t tid;
} mvtab;

typedef struct mcursor {
    sqlite3_vtab_cursor base;
    sql_kv_iter *it;
    int eof;
    int slot;     /* 0: primary rows; k: secondary index k-1 */
    int covering; /* index-only: no row fetch */
    mkey_val pkv[MKEY_MAX_COLS];
    sql_row row;
    mbuf ikscratch;
    sqlite3_value *conv[MKEY_MAX_COLS + 2]; /* converted constraint values */
    int nconv;
} mcursor;

int sql_vtab_update(sqlite3_vtab *vt, int argc, sqlite3_value **argv, sqlite3_int64 *rowid);
/* A rowid handle for a primary-key table's row key, valid until the
 * transaction ends. */
int sql_handle_new(sql_session *s, const mbuf *key, sqlite3_int64 *out);

#endif
