/* The SQLite test/bootstrap executor (session_exec_sqlite.h). Cancel is an
 * atomic flag polled by a progress handler rather than sqlite3_interrupt:
 * SQLite forgets an interrupt that lands just before a statement starts, the
 * flag does not (reset() clears it, and the service calls reset() before it
 * checks for cancellation, so no cancel slips between the two). */
#include "server/session_exec_sqlite.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct sq_ctx {
    sqlite3 *db;
    atomic_int cancel;
    int failed_txn;    /* a retryable abort ended the transaction */
    int pending_abort; /* meridian_test_abort fired in the current step */
    int64_t aborts;    /* how many it fired in this session */
    session_settings st;
    char user[64];
} sq_ctx;

typedef struct sq_stmt {
    sq_ctx *c;
    sqlite3_stmt *s;
} sq_stmt;

static void set_err(sexec_error *e, int code, const char *msg, int offset)
{
    e->code = code;
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    e->offset = offset;
    e->retryable = 0;
}

static void db_err(sq_ctx *c, int rc, sexec_error *e)
{
    set_err(e, rc & 0xff, sqlite3_errmsg(c->db), sqlite3_error_offset(c->db));
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) e->retryable = 1;
}

static int progress(void *arg)
{
    sq_ctx *c = arg;
    return atomic_load(&c->cancel);
}

static void fn_test_abort(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    sq_ctx *c = sqlite3_user_data(cx);
    int64_t k = sqlite3_value_int64(argv[0]);
    if (c->aborts < k) {
        c->aborts++;
        c->pending_abort = 1;
        sqlite3_result_error(cx, "transaction aborted by a conflict (injected, retry it)", -1);
        sqlite3_result_error_code(cx, SQLITE_ABORT);
        return;
    }
    sqlite3_result_int64(cx, c->aborts);
}

static void fn_setting(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    sq_ctx *c = sqlite3_user_data(cx);
    const char *n = (const char *)sqlite3_value_text(argv[0]);
    if (!n) {
        sqlite3_result_null(cx);
    } else if (!strcmp(n, "read_only")) {
        sqlite3_result_int(cx, c->st.read_only);
    } else if (!strcmp(n, "max_staleness_ms")) {
        sqlite3_result_int64(cx, (sqlite3_int64)c->st.max_staleness_ms);
    } else if (!strcmp(n, "application_name")) {
        sqlite3_result_text(cx, c->st.application_name, -1, SQLITE_TRANSIENT);
    } else if (!strcmp(n, "user")) {
        sqlite3_result_text(cx, c->user, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_result_error(cx, "unknown setting", -1);
    }
}

static int sq_set(void *ctx, const session_settings *s, sexec_error *err)
{
    sq_ctx *c = ctx;
    c->st = *s;
    /* query_only is the closest SQLite has to a read-only transaction. */
    int rc = sqlite3_exec(c->db, s->read_only ? "PRAGMA query_only=1" : "PRAGMA query_only=0", NULL,
                          NULL, NULL);
    if (rc) db_err(c, rc, err);
    return rc ? err->code : 0;
}

static int sq_open(void *arg, const char *user, const session_settings *s, void **out,
                   sexec_error *err)
{
    const char *path = arg;
    int shared = path && strcmp(path, ":memory:");
    sq_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, SEXEC_NOMEM, "out of memory", -1);
        return SEXEC_NOMEM;
    }
    snprintf(c->user, sizeof(c->user), "%s", user ? user : "");
    int rc =
        sqlite3_open_v2(shared ? path : ":memory:", &c->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc) {
        set_err(err, SEXEC_ERROR, c->db ? sqlite3_errmsg(c->db) : "cannot open database", -1);
        goto err;
    }
    sqlite3_extended_result_codes(c->db, 0);
    if (shared) {
        sqlite3_busy_timeout(c->db, 5000);
        sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    }
    sqlite3_progress_handler(c->db, 1000, progress, c);
    sqlite3_create_function(c->db, "meridian_test_abort", 1, SQLITE_UTF8, c, fn_test_abort, NULL,
                            NULL);
    sqlite3_create_function(c->db, "meridian_setting", 1, SQLITE_UTF8, c, fn_setting, NULL, NULL);
    if (sq_set(c, s, err)) goto err;
    *out = c;
    return 0;
err:
    sqlite3_close(c->db);
    free(c);
    return err->code ? err->code : SEXEC_ERROR;
}

/* The word at *p (letters only), case-insensitively equal to w: moves past it. */
static int word_is(const char *s, size_t len, size_t *p, const char *w)
{
    size_t i = *p;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    size_t n = strlen(w);
    if (len - i < n || strncasecmp(s + i, w, n)) return 0;
    if (i + n < len && ((s[i + n] | 0x20) >= 'a' && (s[i + n] | 0x20) <= 'z')) return 0;
    *p = i + n;
    return 1;
}

/* The gateway takes BEGIN [TRANSACTION | WORK] READ ONLY | READ WRITE (sql/
 * session.c), SQLite does not: a copy with those two words blanked out (the
 * same length, so offsets hold), or NULL when there is nothing to blank. */
static char *blank_read_mode(const char *sql, size_t len)
{
    size_t p = 0, from;
    if (!word_is(sql, len, &p, "BEGIN")) return NULL;
    if (!word_is(sql, len, &p, "TRANSACTION")) (void)word_is(sql, len, &p, "WORK");
    from = p;
    if (!word_is(sql, len, &p, "READ") ||
        (!word_is(sql, len, &p, "ONLY") && !word_is(sql, len, &p, "WRITE")))
        return NULL;
    char *c = malloc(len + 1);
    if (!c) return NULL;
    memcpy(c, sql, len);
    c[len] = 0;
    memset(c + from, ' ', p - from);
    return c;
}

static int sq_prepare(void *ctx, const char *sql, size_t len, void **out, size_t *tail,
                      sexec_error *err)
{
    sq_ctx *c = ctx;
    sqlite3_stmt *s = NULL;
    const char *end = sql;
    *out = NULL;
    if (len > INT32_MAX) {
        set_err(err, SEXEC_ERROR, "statement too long", -1);
        return SEXEC_ERROR;
    }
    char *blanked = blank_read_mode(sql, len);
    const char *src = blanked ? blanked : sql;
    end = src;
    int rc = sqlite3_prepare_v2(c->db, src, (int)len, &s, &end);
    *tail = (size_t)(end - src);
    free(blanked);
    if (rc) {
        db_err(c, rc, err);
        return err->code;
    }
    if (!s) return 0;
    sq_stmt *st = calloc(1, sizeof(*st));
    if (!st) {
        sqlite3_finalize(s);
        set_err(err, SEXEC_NOMEM, "out of memory", -1);
        return SEXEC_NOMEM;
    }
    st->c = c;
    st->s = s;
    *out = st;
    return 0;
}

static int sq_param_count(void *stmt)
{
    return sqlite3_bind_parameter_count(((sq_stmt *)stmt)->s);
}
static int sq_readonly(void *stmt)
{
    return sqlite3_stmt_readonly(((sq_stmt *)stmt)->s);
}

static int sq_bind(void *stmt, int idx, const sexec_value *v, sexec_error *err)
{
    sq_stmt *st = stmt;
    int rc;
    switch (v->type) {
    case SEXEC_INT: rc = sqlite3_bind_int64(st->s, idx, v->i); break;
    case SEXEC_FLOAT: rc = sqlite3_bind_double(st->s, idx, v->d); break;
    case SEXEC_TEXT:
        rc = sqlite3_bind_text64(st->s, idx, v->p, v->len, SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    case SEXEC_BLOB:
        rc = sqlite3_bind_blob64(st->s, idx, v->p ? v->p : "", v->len, SQLITE_TRANSIENT);
        break;
    default: rc = sqlite3_bind_null(st->s, idx); break;
    }
    if (rc) db_err(st->c, rc, err);
    return rc ? err->code : 0;
}

/* ROLLBACK, or COMMIT/END (which can only roll back an aborted transaction). */
static int ends_txn(sqlite3_stmt *s)
{
    const char *p = sqlite3_sql(s);
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p && (!strncasecmp(p, "rollback", 8) || !strncasecmp(p, "commit", 6) ||
                 !strncasecmp(p, "end", 3));
}

static int sq_step(void *stmt, sexec_error *err)
{
    sq_stmt *st = stmt;
    sq_ctx *c = st->c;
    if (c->failed_txn) {
        if (ends_txn(st->s)) {
            c->failed_txn = 0;
            return SEXEC_DONE;
        }
        set_err(err, SEXEC_ABORT,
                "current transaction is aborted, statements ignored until ROLLBACK", -1);
        return SEXEC_ABORT;
    }
    c->pending_abort = 0;
    int rc = sqlite3_step(st->s);
    if (rc == SQLITE_ROW) return SEXEC_ROW;
    if (rc == SQLITE_DONE) return SEXEC_DONE;
    db_err(c, rc, err);
    if (rc == SQLITE_INTERRUPT || atomic_load(&c->cancel)) {
        set_err(err, SEXEC_INTERRUPT, "interrupted", -1);
        return SEXEC_INTERRUPT;
    }
    if (c->pending_abort) {
        err->code = SEXEC_ABORT;
        err->retryable = 1;
        if (!sqlite3_get_autocommit(c->db)) {
            sqlite3_reset(st->s);
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            c->failed_txn = 1;
        }
    }
    return err->code;
}

static int sq_column_count(void *stmt)
{
    return sqlite3_column_count(((sq_stmt *)stmt)->s);
}
static const char *sq_column_name(void *stmt, int i)
{
    return sqlite3_column_name(((sq_stmt *)stmt)->s, i);
}
static const char *sq_column_decltype(void *stmt, int i)
{
    return sqlite3_column_decltype(((sq_stmt *)stmt)->s, i);
}

static void sq_column_value(void *stmt, int i, sexec_value *out)
{
    sqlite3_stmt *s = ((sq_stmt *)stmt)->s;
    memset(out, 0, sizeof(*out));
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER:
        out->type = SEXEC_INT;
        out->i = sqlite3_column_int64(s, i);
        break;
    case SQLITE_FLOAT:
        out->type = SEXEC_FLOAT;
        out->d = sqlite3_column_double(s, i);
        break;
    case SQLITE_TEXT:
        out->type = SEXEC_TEXT;
        out->p = sqlite3_column_text(s, i);
        out->len = (size_t)sqlite3_column_bytes(s, i);
        break;
    case SQLITE_BLOB:
        out->type = SEXEC_BLOB;
        out->p = sqlite3_column_blob(s, i);
        out->len = (size_t)sqlite3_column_bytes(s, i);
        break;
    default: out->type = SEXEC_NULL; break;
    }
}

static void sq_reset(void *stmt)
{
    sq_stmt *st = stmt;
    sqlite3_reset(st->s);
    sqlite3_clear_bindings(st->s);
    atomic_store(&st->c->cancel, 0);
}

static void sq_finalize(void *stmt)
{
    sq_stmt *st = stmt;
    sqlite3_finalize(st->s);
    free(st);
}

static uint64_t sq_changes(void *ctx)
{
    return (uint64_t)sqlite3_changes64(((sq_ctx *)ctx)->db);
}
static void sq_cancel(void *ctx, int on)
{
    atomic_store(&((sq_ctx *)ctx)->cancel, on);
}

static int sq_txn_state(void *ctx)
{
    sq_ctx *c = ctx;
    if (c->failed_txn) return SEXEC_TXN_FAILED;
    return sqlite3_get_autocommit(c->db) ? SEXEC_TXN_IDLE : SEXEC_TXN_OPEN;
}

static void sq_close(void *ctx)
{
    sq_ctx *c = ctx;
    sqlite3_close_v2(c->db);
    free(c);
}

void session_exec_sqlite(session_executor *ex, const char *path)
{
    memset(ex, 0, sizeof(*ex));
    ex->name = "sqlite-test";
    ex->arg = (void *)path;
    ex->open = sq_open;
    ex->prepare = sq_prepare;
    ex->param_count = sq_param_count;
    ex->stmt_readonly = sq_readonly;
    ex->bind = sq_bind;
    ex->step = sq_step;
    ex->column_count = sq_column_count;
    ex->column_name = sq_column_name;
    ex->column_decltype = sq_column_decltype;
    ex->column_value = sq_column_value;
    ex->reset = sq_reset;
    ex->finalize = sq_finalize;
    ex->changes = sq_changes;
    ex->cancel = sq_cancel;
    ex->txn_state = sq_txn_state;
    ex->set = sq_set;
    ex->close = sq_close;
}
