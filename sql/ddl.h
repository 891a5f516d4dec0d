/* DDL interception (ddl.c). */
#ifndef MERIDIAN_SQL_DDL_H
#define MERIDIAN_SQL_DDL_H

#include "sql/sql_int.h"

/* What the tokenizer learns about a DDL statement before SQLite runs it. */
typedef struct sql_ddl_info {
    char *ctas_table;              /* CREATE TABLE name AS <select> */
    size_t ctas_select;            /* offset of <select> in the statement text; 0 = none */
    char *rename_from, *rename_to; /* ALTER TABLE a RENAME TO b */
    char *add_table;               /* ALTER TABLE a ADD [COLUMN] ... */
    char *create_index;            /* CREATE [UNIQUE] INDEX [IF NOT EXISTS] name */
    /* Online CREATE INDEX (ddl_online.c): in `online` the caller says the
     * statement runs on its own (autocommit), so an index on a populated
     * table is added WRITE_ONLY and bf_tid/bf_iid name it for the backfill
     * that follows the commit (bf_iid 0: nothing to backfill). */
    int online;
    uint32_t bf_tid, bf_iid;
} sql_ddl_info;

/* Rejects DDL we do not support (MERR_UNSUPPORTED) and fills info. */
int sql_ddl_inspect(const char *sql, sql_ddl_info *info, merr *e);
void sql_ddl_info_free(sql_ddl_info *info);
/* Refusals that need the catalog (checked at prepare, as SQLite's own). */
int sql_ddl_refuse(sql_session *s, const sql_ddl_info *info, merr *e);
/* Runs one DDL statement in the session's current transaction. */
int sql_ddl_exec(sql_session *s, const char *sql, sql_ddl_info *info, merr *e);

/* ddl_online.c: after the transaction that added index bf_iid WRITE_ONLY
 * committed, backfills it in batches (each its own transaction) and makes
 * it PUBLIC; on any failure removes it again. No transaction is open
 * before or after. */
int sql_ddl_online_index(sql_session *s, const sql_ddl_info *info, merr *e);

#endif
