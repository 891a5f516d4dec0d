/* The SQL session: Meridian's SQL front end for one client connection.
 *
 * A session owns an in-memory SQLite connection in which every user table is
 * a virtual table over the transactional KV (sql/kv.h), so SQLite's parser,
 * planner and executor run the whole dialect over Meridian's storage. DDL is
 * intercepted and stored in the KV catalog; BEGIN/COMMIT/ROLLBACK map to KV
 * transactions; a statement outside BEGIN is its own transaction.
 *
 *     sql_session *s;
 *     sql_session_open(&sql_kv_mem_ops, kv, &s, &e);
 *     sql_exec(s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)", NULL, NULL, &e);
 *     sql_stmt *st;
 *     sql_prepare(s, "SELECT a, b FROM t WHERE a > ?1", &st, NULL, &e);
 *     sqlite3_bind_int(sql_stmt_handle(st), 1, 10);
 *     while (sql_step(st, &e) == 1) ... sql_column_int64(st, 0) ...
 *     sql_finalize(st);
 *
 * Errors come back as a negative MERR_* code with SQLite's message in `e`:
 * MERR_INVALID for bad SQL and constraint violations, MERR_UNSUPPORTED for
 * SQL Meridian does not run yet, MERR_ABORTED when a transaction lost a
 * conflict at commit (retry it). A session is used by one thread at a time. */
#ifndef MERIDIAN_SQL_SESSION_H
#define MERIDIAN_SQL_SESSION_H

#include <sqlite3.h>
#include <stdint.h>

#include "common/err.h"
#include "sql/cluster.h"
#include "sql/kv.h"

typedef struct sql_session sql_session;
typedef struct sql_stmt sql_stmt;

int sql_session_open(const sql_kv_ops *ops, void *kv_ctx, sql_session **out, merr *e);
/* Rolls back an open transaction and frees everything. */
void sql_session_close(sql_session *s);
/* 1 inside BEGIN ... COMMIT. */
int sql_session_in_txn(const sql_session *s);

/* Statement deadlines and cancellation. While a statement runs, SQLite calls
 * `expired(arg)` every few thousand virtual-machine steps; when it returns
 * nonzero the statement stops with MERR_TIMEOUT and its writes are undone.
 * The caller owns the clock (a deadline check, a cancel flag), so tests need
 * no real time. NULL turns it off. sql_session_cancel() may be called from
 * another thread: the running statement stops with MERR_CANCELED. */
/* Read-only sessions: every transaction begins SQL_KV_READ_ONLY (snapshot
 * reads that never abort); writes and DDL fail with MERR_INVALID. Takes
 * effect at the next transaction. */
void sql_session_set_read_only(sql_session *s, int on);

/* The cluster views' hook (sql/cluster.h); ops and ctx must outlive the
 * session. Without it those views fail with "not available". */
void sql_session_set_cluster(sql_session *s, const sql_cluster_ops *ops, void *ctx);

void sql_session_set_deadline(sql_session *s, int (*expired)(void *arg), void *arg);
void sql_session_cancel(sql_session *s);
/* Optional: fn(arg) lifts the statement's deadline and cancel from the
 * edge's KV, for work that must finish after the statement was stopped
 * (an online CREATE INDEX removing its unfinished index). */
void sql_session_set_unstop(sql_session *s, void (*fn)(void *arg), void *arg);

/* Online CREATE INDEX (docs/sql.md), for tests only: fn(arg) runs before
 * each backfill batch (no transaction open); nonzero stops the backfill as
 * a gateway dying there would (the index stays WRITE_ONLY). Rows per batch
 * (0: the default, 500). Process-wide: set them before sessions run. */
void sql_ddl_set_backfill_hook(int (*fn)(void *arg), void *arg);
void sql_ddl_set_backfill_batch(size_t rows);

/* Prepares the first statement of sql; *tail (may be NULL) gets the rest.
 * *out is NULL when sql holds only space and comments. */
int sql_prepare(sql_session *s, const char *sql, sql_stmt **out, const char **tail, merr *e);
/* 1: a row is ready; 0: done; <0: error (the statement's writes are undone;
 * outside BEGIN its transaction is rolled back). */
int sql_step(sql_stmt *st, merr *e);
/* Finishes the statement (a statement not stepped to the end counts as
 * done) and frees it. Returns 0 or the commit error of an autocommit
 * statement cut short. */
int sql_finalize(sql_stmt *st, merr *e);
/* The SQLite statement, for binding parameters; NULL for DDL and BEGIN/COMMIT. */
sqlite3_stmt *sql_stmt_handle(sql_stmt *st);

int sql_column_count(sql_stmt *st);
const char *sql_column_name(sql_stmt *st, int i);
/* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL. */
int sql_column_type(sql_stmt *st, int i);
int64_t sql_column_int64(sql_stmt *st, int i);
double sql_column_double(sql_stmt *st, int i);
const unsigned char *sql_column_text(sql_stmt *st, int i);
const void *sql_column_blob(sql_stmt *st, int i);
int sql_column_bytes(sql_stmt *st, int i);
sqlite3_value *sql_column_value(sql_stmt *st, int i);

/* What a statement is (the session classifies each one before running it). */
typedef enum sql_stmt_kind {
    SQL_STMT_QUERY = 0, /* SELECT, INSERT, UPDATE, DELETE, ... */
    SQL_STMT_DDL,
    SQL_STMT_BEGIN,
    SQL_STMT_COMMIT, /* COMMIT or END */
    SQL_STMT_ROLLBACK,
    SQL_STMT_SAVEPOINT,
    SQL_STMT_RELEASE,
    SQL_STMT_ROLLBACK_TO,
    SQL_STMT_AUTH,   /* CREATE USER, GRANT, ... (sql/auth.h) */
    SQL_STMT_SET_TXN /* SET TRANSACTION AS OF SYSTEM TIME ... (sql/asof.h) */
} sql_stmt_kind;
sql_stmt_kind sql_stmt_get_kind(sql_stmt *st);
/* 1 when running the statement cannot change data or schema (queries that
 * only read, and transaction control, as sqlite3_stmt_readonly says). */
int sql_stmt_readonly(sql_stmt *st);
/* Makes a statement ready to run again and clears its bindings. A statement
 * cut short first finishes as sql_finalize would (an autocommit one
 * commits); returns 0 or that commit's error. */
int sql_reset(sql_stmt *st, merr *e);
/* Byte offset (from the start of the text given to sql_prepare) of the
 * token the last failed sql_prepare complained about, or -1. */
int sql_session_error_offset(const sql_session *s);
/* Rows changed by the last INSERT/UPDATE/DELETE (sqlite3_changes). */
uint64_t sql_session_changes(const sql_session *s);

/* The session user (docs/security.md). With enforce, every statement is
 * checked against the user's privileges (root and ADMIN users pass);
 * without, as on insecure nodes, nothing is checked. */
void sql_session_set_user(sql_session *s, const char *user, int enforce);
/* A login's SCRAM verifier ("" when the user has no password); *found = 0
 * for an unknown user or a role. Runs its own read-only transaction. */
int sql_session_user_verifier(sql_session *s, const char *user, char *verifier, size_t cap,
                              int *found, merr *e);

/* Called for every result row; nonzero stops sql_exec with MERR_CANCELED. */
typedef int (*sql_row_fn)(void *arg, sql_stmt *st);
/* Runs every statement of sql in turn, stopping at the first error. */
int sql_exec(sql_session *s, const char *sql, sql_row_fn fn, void *arg, merr *e);

#endif
