/* The statement object shared by sql/session.c (prepare, step, control
 * statements) and sql/session_api.c (accessors, sql_exec). Private to sql/. */
#ifndef MERIDIAN_SQL_SESSION_INT_H
#define MERIDIAN_SQL_SESSION_INT_H

#include "sql/auth.h"
#include "sql/ddl.h"
#include "sql/session.h"
#include "sql/sql_int.h"

enum stmt_kind {
    K_QUERY = SQL_STMT_QUERY,
    K_DDL = SQL_STMT_DDL,
    K_BEGIN = SQL_STMT_BEGIN,
    K_COMMIT = SQL_STMT_COMMIT,
    K_ROLLBACK = SQL_STMT_ROLLBACK,
    K_SAVEPOINT = SQL_STMT_SAVEPOINT,
    K_RELEASE = SQL_STMT_RELEASE,
    K_ROLLBACK_TO = SQL_STMT_ROLLBACK_TO,
    K_AUTH = SQL_STMT_AUTH,
    K_SET_TXN = SQL_STMT_SET_TXN,
    K_PLACEMENT = 100 /* sql/placement.h; reported as DDL */
};

struct sql_stmt {
    sql_session *s;
    int kind;
    sqlite3_stmt *st;
    char *text;
    char *spname;
    sql_ddl_info ddl;
    sql_auth_stmt auth;
    struct sql_placement *place;
    int started, done, autocommit;
    int returned_rows, retries;
    sql_upsert *upsert;
    uint64_t mark;
    int asof;      /* AS OF SYSTEM TIME `at` was given (sql/asof.h) */
    int read_only; /* BEGIN ... READ ONLY */
    /* BEGIN's READ ONLY / READ WRITE: where it is in the text (SQLite, which
     * finds the statement's end, does not know it: it is blanked out). */
    size_t rw_off, rw_len;
    sql_wtargets wt; /* the tables it writes (sql_note_write_target) */
    sql_kv_at at;
};

#endif
