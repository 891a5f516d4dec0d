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
} sql_ddl_info;

/* Rejects DDL we do not support (MERR_UNSUPPORTED) and fills info. */
int sql_ddl_inspect(const char *sql, sql_ddl_info *info, merr *e);
void sql_ddl_info_free(sql_ddl_info *info);
/* Runs one DDL statement in the session's current transaction. */
int sql_ddl_exec(sql_session *s, const char *sql, const sql_ddl_info *info, merr *e);

#endif
