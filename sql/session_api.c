/* The statement accessors and sql_exec (sql/session.h), over the statement
 * object of sql/session_int.h. */
#include "sql/session_int.h"

sql_stmt_kind sql_stmt_get_kind(sql_stmt *st)
{
    return st->kind == K_PLACEMENT ? SQL_STMT_DDL : (sql_stmt_kind)st->kind;
}

int sql_stmt_readonly(sql_stmt *st)
{
    if (st->kind == K_DDL || st->kind == K_AUTH) return 0;
    return st->st ? sqlite3_stmt_readonly(st->st) : 1;
}

int sql_session_error_offset(const sql_session *s)
{
    return s->err_offset;
}

uint64_t sql_session_changes(const sql_session *s)
{
    return (uint64_t)sqlite3_changes64(s->db);
}

sqlite3_stmt *sql_stmt_handle(sql_stmt *st)
{
    return st->st;
}

int sql_column_count(sql_stmt *st)
{
    return st->st ? sqlite3_column_count(st->st) : 0;
}
const char *sql_column_name(sql_stmt *st, int i)
{
    return sqlite3_column_name(st->st, i);
}
int sql_column_type(sql_stmt *st, int i)
{
    return sqlite3_column_type(st->st, i);
}
int64_t sql_column_int64(sql_stmt *st, int i)
{
    return sqlite3_column_int64(st->st, i);
}
double sql_column_double(sql_stmt *st, int i)
{
    return sqlite3_column_double(st->st, i);
}
const unsigned char *sql_column_text(sql_stmt *st, int i)
{
    return sqlite3_column_text(st->st, i);
}
const void *sql_column_blob(sql_stmt *st, int i)
{
    return sqlite3_column_blob(st->st, i);
}
int sql_column_bytes(sql_stmt *st, int i)
{
    return sqlite3_column_bytes(st->st, i);
}
sqlite3_value *sql_column_value(sql_stmt *st, int i)
{
    return sqlite3_column_value(st->st, i);
}

int sql_exec(sql_session *s, const char *sql, sql_row_fn fn, void *arg, merr *e)
{
    const char *p = sql;
    while (p && *p) {
        sql_stmt *st;
        const char *tail;
        int rc = sql_prepare(s, p, &st, &tail, e);
        if (rc) return rc;
        if (!st) break;
        while ((rc = sql_step(st, e)) == 1) {
            if (fn && fn(arg, st)) {
                sql_finalize(st, NULL);
                return merr_set(e, MERR_CANCELED, "canceled by the row callback");
            }
        }
        int frc = sql_finalize(st, rc ? NULL : e);
        if (rc) return rc;
        if (frc) return frc;
        p = tail;
    }
    return 0;
}
