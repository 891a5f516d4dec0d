/* libmeridian: the embeddable C client of Meridian (docs/client.md).
 *
 * It feels like SQLite's API on purpose: open a connection, prepare, bind,
 * step, read columns, finalize. Underneath, a connection holds one session
 * on a gateway node, spoken over Meridian's rpc protocol from a private
 * network thread; every function here blocks until its answer arrives.
 *
 * Thread-safety: a connection (meridian*) and its statements belong to one
 * thread at a time; use one connection per thread. The one exception is
 * meridian_interrupt(), which any thread may call while another thread runs
 * a statement on the connection. Different connections are independent.
 *
 * Failover: meridian_open takes several seed hosts. When the connection to
 * the current gateway dies, the statement in flight fails with
 * MERIDIAN_UNAVAILABLE; meridian_error_retryable() is 1 unless the statement
 * could have committed (COMMIT, or a write outside a transaction: its outcome
 * is unknown, and retrying could apply it twice); the session and
 * any open transaction are gone; the next statement opens a new session on
 * the next reachable host. Prepared statements are re-prepared there
 * transparently.
 *
 * Strings returned by the library stay valid until the next call on the same
 * object (as in SQLite).
 *
 * Process-wide effects of meridian_open: SIGPIPE is ignored (a gateway that
 * hangs up must fail a statement, not kill the application), and Meridian's
 * internal logging is off unless MERIDIAN_LOG_LEVEL (debug, info, warn, ...)
 * is set in the environment. */
#ifndef MERIDIAN_H
#define MERIDIAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MERIDIAN_BUILDING_LIBRARY)
#define MERIDIAN_API __attribute__((visibility("default")))
#else
#define MERIDIAN_API
#endif

typedef struct meridian meridian;
typedef struct meridian_stmt meridian_stmt;

/* Result codes: SQLite's primary codes where they mean the same thing. */
#define MERIDIAN_OK          0
#define MERIDIAN_ERROR       1 /* SQL error (syntax, missing table, ...) */
#define MERIDIAN_INTERNAL    2
#define MERIDIAN_ABORT       4 /* transaction aborted (see meridian_error_retryable) */
#define MERIDIAN_BUSY        5 /* another statement of this connection is running */
#define MERIDIAN_NOMEM       7
#define MERIDIAN_READONLY    8  /* a write in a read-only session */
#define MERIDIAN_INTERRUPT   9  /* canceled by meridian_interrupt */
#define MERIDIAN_PROTOCOL    15 /* the server said something we do not understand */
#define MERIDIAN_TOOBIG      18 /* a value or row too big to send */
#define MERIDIAN_AUTH        23 /* authentication failed, or permission denied */
#define MERIDIAN_CONSTRAINT  19
#define MERIDIAN_MISUSE      21  /* API used wrongly (NULL handle, bad option, ...) */
#define MERIDIAN_RANGE       25  /* bind or column index out of range */
#define MERIDIAN_ROW         100 /* meridian_step has a row */
#define MERIDIAN_DONE        101 /* meridian_step finished */
#define MERIDIAN_UNAVAILABLE 200 /* no gateway reachable / connection lost */

/* Column types: the same numbers as SQLite's. */
#define MERIDIAN_INTEGER 1
#define MERIDIAN_FLOAT   2
#define MERIDIAN_TEXT    3
#define MERIDIAN_BLOB    4
#define MERIDIAN_NULL    5

/* Transaction state of the session, reported by every response. */
#define MERIDIAN_TXN_IDLE   0 /* autocommit */
#define MERIDIAN_TXN_OPEN   1 /* between BEGIN and COMMIT/ROLLBACK */
#define MERIDIAN_TXN_FAILED 2 /* aborted: only ROLLBACK is accepted */

MERIDIAN_API const char *meridian_libversion(void);
/* "unavailable" for MERIDIAN_UNAVAILABLE, ... */
MERIDIAN_API const char *meridian_errstr(int code);

/* Opens a connection. conninfo is "key=value" pairs separated by spaces:
 *   hosts=127.0.0.1:26257,[::1]:26258   seed gateways, tried in order (required)
 *   user=root                           session user (default "root")
 *   connect_timeout=5s                  per host (default 5s)
 *   cluster=ID                          refuse gateways of another cluster
 *   read_only=on|off, max_staleness=10s, application_name=NAME,
 *   statement_timeout=30s                (session options, see set_option)
 *   certs_dir=DIR                       TLS (secure clusters): DIR/ca.crt, and
 *                                       DIR/client.USER.crt/.key if present
 *   password=SECRET                     SCRAM-SHA-256 login (TLS only; or the
 *                                       environment's MERIDIAN_PASSWORD)
 *   insecure=on                         an --insecure cluster: no TLS, no login
 * A value may be single-quoted ('a b', \' and \\ escaped), as libpq's. A
 * password is never sent over plaintext: without certs_dir, open refuses
 * it unless insecure=on (which skips authentication altogether).
 * *db is set even on failure (unless out of memory) so meridian_errmsg can
 * tell why; close it with meridian_close either way. */
MERIDIAN_API int meridian_open(const char *conninfo, meridian **db);
/* Ends the session and frees the connection. Statements not finalized are
 * finalized. NULL is a no-op. */
MERIDIAN_API int meridian_close(meridian *db);

/* The last error of the connection (MERIDIAN_OK after a success). */
MERIDIAN_API int meridian_errcode(meridian *db);
MERIDIAN_API const char *meridian_errmsg(meridian *db);
/* Byte offset in the statement text the last error points at, or -1. */
MERIDIAN_API int meridian_error_offset(meridian *db);
/* 1 when retrying the transaction may succeed (conflict, lost gateway). */
MERIDIAN_API int meridian_error_retryable(meridian *db);
/* MERIDIAN_TXN_* after the last response. */
MERIDIAN_API int meridian_txn_state(meridian *db);
/* Rows inserted, updated or deleted by the last statement. */
MERIDIAN_API int64_t meridian_changes(meridian *db);
/* "host:port" of the gateway the session lives on, or NULL when none. */
MERIDIAN_API const char *meridian_host(meridian *db);

/* Session options, by name: "read_only" ("on"/"off"), "max_staleness"
 * (duration like "10s", "0" = strong reads: with it, every read-only
 * transaction, e.g. a SELECT outside BEGIN, reads a snapshot at most that
 * stale, served by the replica on the session's gateway when its safe time
 * allows, so it does not see writes newer than that, its own included),
 * "application_name",
 * "statement_timeout" (a statement still running or streaming after this
 * long fails with MERIDIAN_INTERRUPT; "0" = none). Applied to the live
 * session at once and kept for sessions opened after a failover. */
MERIDIAN_API int meridian_set_option(meridian *db, const char *name, const char *value);

/* Compiles the first statement of sql (nbytes < 0: up to the NUL). *stmt is
 * NULL when sql holds only blanks or comments; *tail (may be NULL) points
 * after the statement. */
MERIDIAN_API int meridian_prepare(meridian *db, const char *sql, int nbytes, meridian_stmt **stmt,
                                  const char **tail);
MERIDIAN_API int meridian_bind_parameter_count(meridian_stmt *stmt);
/* Parameters are numbered from 1; text and blobs are copied. n < 0 for
 * text: up to the NUL. */
MERIDIAN_API int meridian_bind_int64(meridian_stmt *stmt, int idx, int64_t v);
MERIDIAN_API int meridian_bind_double(meridian_stmt *stmt, int idx, double v);
MERIDIAN_API int meridian_bind_text(meridian_stmt *stmt, int idx, const char *s, int n);
MERIDIAN_API int meridian_bind_blob(meridian_stmt *stmt, int idx, const void *p, int n);
MERIDIAN_API int meridian_bind_null(meridian_stmt *stmt, int idx);
MERIDIAN_API int meridian_clear_bindings(meridian_stmt *stmt);
/* MERIDIAN_ROW, MERIDIAN_DONE or an error code. Rows arrive in batches with
 * flow control: a reader that stops stepping holds the server to a few
 * batches. Only one statement per connection runs at a time: stepping
 * another while one still has rows pending fails with MERIDIAN_BUSY. */
MERIDIAN_API int meridian_step(meridian_stmt *stmt);
/* Stops a running statement (unread rows are dropped) so it can run again. */
MERIDIAN_API int meridian_reset(meridian_stmt *stmt);
MERIDIAN_API int meridian_finalize(meridian_stmt *stmt);

MERIDIAN_API int meridian_column_count(meridian_stmt *stmt);
MERIDIAN_API const char *meridian_column_name(meridian_stmt *stmt, int i);
MERIDIAN_API const char *meridian_column_decltype(meridian_stmt *stmt, int i);
/* Of the current row; conversions follow SQLite's rules. */
MERIDIAN_API int meridian_column_type(meridian_stmt *stmt, int i);
MERIDIAN_API int64_t meridian_column_int64(meridian_stmt *stmt, int i);
MERIDIAN_API double meridian_column_double(meridian_stmt *stmt, int i);
MERIDIAN_API const char *meridian_column_text(meridian_stmt *stmt, int i);
MERIDIAN_API const void *meridian_column_blob(meridian_stmt *stmt, int i);
MERIDIAN_API int meridian_column_bytes(meridian_stmt *stmt, int i);

/* Runs every statement of sql in order; cb (may be NULL) gets each row as
 * text (NULL for SQL NULL) and returns 0 to go on, non-zero to stop
 * (MERIDIAN_ABORT). On error *errmsg (if errmsg) is a copy to free with
 * meridian_free. */
typedef int (*meridian_callback)(void *arg, int ncols, char **values, char **names);
MERIDIAN_API int meridian_exec(meridian *db, const char *sql, meridian_callback cb, void *arg,
                               char **errmsg);
MERIDIAN_API void meridian_free(void *p);

/* Runs fn inside BEGIN ... COMMIT; when fn or COMMIT fails with a retryable
 * error, rolls back, waits (exponential backoff with jitter, 10 ms .. 1 s)
 * and runs it again, at most max_retries more times. fn returns MERIDIAN_OK
 * or an error code (use meridian_errcode); a non-retryable error rolls back
 * and is returned. */
typedef int (*meridian_txn_fn)(meridian *db, void *arg);
MERIDIAN_API int meridian_run_in_txn(meridian *db, meridian_txn_fn fn, void *arg, int max_retries);

/* Thread-safe: cancels the statement running on db (it fails with
 * MERIDIAN_INTERRUPT). No effect when nothing runs. */
MERIDIAN_API void meridian_interrupt(meridian *db);

#ifdef __cplusplus
}
#endif

#endif
