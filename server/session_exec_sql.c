/* The session executor over Meridian's SQL layer (session_exec_sql.h): maps
 * the session_executor table onto sql/session.h and turns MERR_* failures
 * into the protocol's SQLite-like errors.
 *
 * Cancel is an atomic flag the statement's deadline hook polls (every 1000
 * SQLite VM steps), not only sqlite3_interrupt: an interrupt that lands just
 * before a statement starts is forgotten by SQLite, the flag is not (reset()
 * clears it; the service calls reset() before it checks for cancellation,
 * so no cancel slips between the two).
 *
 * Failed transactions. The protocol says that after a retryable abort inside
 * BEGIN the transaction is TXN_FAILED until the client says ROLLBACK (or
 * COMMIT/END, which then roll back), so a client that keeps sending the rest
 * of its transaction does not see later statements run in autocommit. The
 * SQL layer has already left the transaction when it reports the abort; this
 * file keeps the FAILED mark.
 *
 * Every session is in a process-wide list (reg_mu) with what the
 * meridian_sessions view shows: id, user, when it opened, the statement it
 * runs or ran last and whether it is running. */
#include "server/session_exec_sql.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "sql/session.h"

typedef struct sx_ctx {
    session_exec_sql_config *cfg;
    sql_session *s; /* made at the first statement (worker thread) */
    void *kv;       /* the session's own KV context (cfg->kv_open), or NULL */
    atomic_int cancel;
    _Atomic(void *) cancel_kv; /* c->kv once made: what sx_cancel may reach */
    int failed_txn;
    uint64_t changes;
    session_settings st;
    /* the registry (reg_mu) */
    struct sx_ctx *reg_prev, *reg_next;
    uint64_t id;
    char user[64];
    int64_t opened_ms;
    char *stmt_text;        /* the statement running, or the last one run */
    const void *stmt_shown; /* whose text stmt_text is (worker only) */
    int running, in_txn;
    int64_t deadline_us; /* the running statement's (0 = none) */
} sx_ctx;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static sx_ctx *reg_head;

static void reg_add(sx_ctx *c)
{
    pthread_mutex_lock(&reg_mu);
    c->reg_next = reg_head;
    if (reg_head) reg_head->reg_prev = c;
    reg_head = c;
    pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(sx_ctx *c)
{
    pthread_mutex_lock(&reg_mu);
    if (c->reg_prev)
        c->reg_prev->reg_next = c->reg_next;
    else
        reg_head = c->reg_next;
    if (c->reg_next) c->reg_next->reg_prev = c->reg_prev;
    free(c->stmt_text);
    c->stmt_text = NULL;
    pthread_mutex_unlock(&reg_mu);
}

/* Marks the session running or not; text (NULL: keep the last one) is the
 * statement. */
static void reg_state(sx_ctx *c, const char *text, int running)
{
    char *copy = text ? strdup(text) : NULL;
    pthread_mutex_lock(&reg_mu);
    if (copy) {
        free(c->stmt_text);
        c->stmt_text = copy;
    }
    c->running = running;
    c->in_txn = c->failed_txn || (c->s && sql_session_in_txn(c->s));
    pthread_mutex_unlock(&reg_mu);
}

int session_exec_sql_sessions(const session_exec_sql_config *cfg, uint64_t node_id,
                              sql_cluster_emit_fn emit, void *sink)
{
    int rc = 0;
    pthread_mutex_lock(&reg_mu);
    for (sx_ctx *c = reg_head; c && !rc; c = c->reg_next) {
        if (c->cfg != cfg) continue;
        sql_cluster_session row = {
            .session_id = c->id,
            .node_id = node_id,
            .user = c->user,
            .application_name = c->st.application_name[0] ? c->st.application_name : NULL,
            .state = c->running  ? "running"
                     : c->in_txn ? "idle in transaction"
                                 : "idle",
            .statement = c->stmt_text,
            .started_at_ms = c->opened_ms,
        };
        rc = emit(sink, &row);
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

typedef struct sx_stmt {
    sx_ctx *c;
    sql_stmt *st;
    char *text; /* for meridian_sessions */
} sx_stmt;

static void set_err(sexec_error *e, int code, const char *msg, int offset)
{
    e->code = code;
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    e->offset = offset;
    e->retryable = 0;
}

/* MERR_* from the SQL layer -> a SQLite primary code. The SQL layer reports
 * bad SQL and constraint failures alike as MERR_INVALID with SQLite's own
 * message; every SQLite constraint message says "constraint failed". */
static int map_err(sx_ctx *c, sql_stmt *st, const merr *m, int offset, sexec_error *e)
{
    int code = SEXEC_ERROR;
    switch (m->code) {
    case MERR_NOMEM: code = SEXEC_NOMEM; break;
    case MERR_ABORTED:
    case MERR_RETRY: code = SEXEC_ABORT; break;
    case MERR_CANCELED:
    case MERR_TIMEOUT: code = SEXEC_INTERRUPT; break;
    case MERR_CORRUPT:
        code = 11; /* SQLITE_CORRUPT */
        break;
    case MERR_UNAVAILABLE:
        code = 200; /* MERIDIAN_UNAVAILABLE */
        break;
    case MERR_INTERNAL: code = SEXEC_INTERNAL; break;
    case MERR_INVALID:
        if (!strncmp(m->msg, "permission denied", 17))
            code = SEXEC_AUTH;
        else if (strstr(m->msg, "constraint failed"))
            code = 19; /* SQLITE_CONSTRAINT */
        else if (c->st.read_only && st && !sql_stmt_readonly(st))
            code = SEXEC_READONLY;
        break;
    default: break;
    }
    set_err(e, code, m->msg[0] ? m->msg : merr_str(m->code), offset);
    if (code == SEXEC_INTERRUPT) snprintf(e->msg, sizeof(e->msg), "interrupted");
    /* Retrying may succeed after a lost conflict or an unreachable range;
     * the SQL layer already ended the transaction in both cases. */
    e->retryable = code == SEXEC_ABORT || code == 200;
    return code;
}

static int expired(void *arg)
{
    return atomic_load(&((sx_ctx *)arg)->cancel);
}

static int sx_set(void *ctx, const session_settings *s, sexec_error *err)
{
    sx_ctx *c = ctx;
    (void)err;
    c->st = *s;
    if (c->s) sql_session_set_read_only(c->s, s->read_only);
    if (c->kv && c->cfg->kv_staleness) c->cfg->kv_staleness(c->kv, s->max_staleness_ms);
    return 0;
}

static void sx_set_deadline(void *ctx, int64_t deadline_us)
{
    sx_ctx *c = ctx;
    c->deadline_us = deadline_us;
    if (c->kv && c->cfg->kv_deadline) c->cfg->kv_deadline(c->kv, deadline_us);
}

/* The SQL layer's cleanup after a stopped statement (an online CREATE INDEX
 * removing its index) must still reach the cluster. */
static void sx_unstop(void *arg)
{
    sx_ctx *c = arg;
    if (c->kv && c->cfg->kv_deadline) c->cfg->kv_deadline(c->kv, 0);
    if (c->kv && c->cfg->kv_cancel) c->cfg->kv_cancel(c->kv, 0);
}

/* The SQL session, made on first use: with a per-session KV, making its
 * context may block (a client connecting), which open on the loop must not. */
static int ensure_session(sx_ctx *c, sexec_error *err)
{
    merr m = {0};
    if (c->s) return 0;
    void *kv = c->cfg->kv_ctx;
    if (c->cfg->kv_open) {
        if (c->cfg->kv_open(c->cfg->kv_ctx, &c->kv, &m)) return map_err(c, NULL, &m, -1, err);
        kv = c->kv;
        atomic_store(&c->cancel_kv, c->kv);
        if (c->cfg->kv_deadline) c->cfg->kv_deadline(c->kv, c->deadline_us);
        if (c->cfg->kv_staleness) c->cfg->kv_staleness(c->kv, c->st.max_staleness_ms);
    }
    if (sql_session_open(c->cfg->ops, kv, &c->s, &m)) return map_err(c, NULL, &m, -1, err);
    sql_session_set_deadline(c->s, expired, c);
    sql_session_set_unstop(c->s, sx_unstop, c);
    if (c->cfg->cluster) sql_session_set_cluster(c->s, c->cfg->cluster, c->cfg->cluster_ctx);
    sql_session_set_user(c->s, c->user, c->cfg->enforce_privileges);
    sql_session_set_read_only(c->s, c->st.read_only);
    return 0;
}

static int sx_open(void *arg, const char *user, const session_settings *s, void **out,
                   sexec_error *err)
{
    session_exec_sql_config *cfg = arg;
    if (!cfg->ops) {
        set_err(err, SEXEC_ERROR, cfg->refusal[0] ? cfg->refusal : "SQL is not available", -1);
        return SEXEC_ERROR;
    }
    sx_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, SEXEC_NOMEM, "out of memory", -1);
        return SEXEC_NOMEM;
    }
    c->cfg = cfg;
    c->st = *s;
    snprintf(c->user, sizeof(c->user), "%s", user && *user ? user : "root");
    c->opened_ms = mtime_real_ns() / MTIME_MS;
    reg_add(c);
    *out = c;
    return 0;
}

static int sx_prepare(void *ctx, const char *sql, size_t len, void **out, size_t *tail,
                      sexec_error *err)
{
    sx_ctx *c = ctx;
    merr m = {0};
    sql_stmt *st = NULL;
    const char *rest = NULL;
    int rc = 0;
    *out = NULL;
    *tail = 0;
    /* sql_prepare reads up to a NUL; the request's text need not end in one. */
    if ((rc = ensure_session(c, err))) return rc;
    char *text = strndup(sql, len);
    if (!text) {
        set_err(err, SEXEC_NOMEM, "out of memory", -1);
        return SEXEC_NOMEM;
    }
    if (sql_prepare(c->s, text, &st, &rest, &m)) {
        rc = map_err(c, NULL, &m, sql_session_error_offset(c->s), err);
        goto out;
    }
    *tail = rest ? (size_t)(rest - text) : len;
    if (st) {
        sx_stmt *x = calloc(1, sizeof(*x));
        size_t lead = strspn(text, " \t\r\n"); /* what is left of the previous statement */
        if (x) x->text = strndup(text + lead, *tail > lead ? *tail - lead : 0);
        if (!x || !x->text) {
            free(x);
            sql_finalize(st, NULL);
            rc = SEXEC_NOMEM;
            set_err(err, rc, "out of memory", -1);
            goto out;
        }
        x->c = c;
        x->st = st;
        *out = x;
    }
out:
    free(text);
    return rc;
}

static int sx_param_count(void *stmt)
{
    sqlite3_stmt *h = sql_stmt_handle(((sx_stmt *)stmt)->st);
    return h ? sqlite3_bind_parameter_count(h) : 0;
}

static int sx_readonly(void *stmt)
{
    return sql_stmt_readonly(((sx_stmt *)stmt)->st);
}

static int sx_bind(void *stmt, int idx, const sexec_value *v, sexec_error *err)
{
    sqlite3_stmt *h = sql_stmt_handle(((sx_stmt *)stmt)->st);
    int rc;
    if (!h) {
        set_err(err, SEXEC_RANGE, "column index out of range", -1);
        return SEXEC_RANGE;
    }
    switch (v->type) {
    case SEXEC_INT: rc = sqlite3_bind_int64(h, idx, v->i); break;
    case SEXEC_FLOAT: rc = sqlite3_bind_double(h, idx, v->d); break;
    case SEXEC_TEXT:
        rc = sqlite3_bind_text64(h, idx, v->p, v->len, SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    case SEXEC_BLOB:
        rc = sqlite3_bind_blob64(h, idx, v->p ? v->p : "", v->len, SQLITE_TRANSIENT);
        break;
    default: rc = sqlite3_bind_null(h, idx); break;
    }
    if (rc) set_err(err, rc & 0xff, sqlite3_errstr(rc), -1);
    return rc ? err->code : 0;
}

static int ends_txn(sql_stmt *st)
{
    sql_stmt_kind k = sql_stmt_get_kind(st);
    return k == SQL_STMT_COMMIT || k == SQL_STMT_ROLLBACK;
}

static int sx_step(void *stmt, sexec_error *err)
{
    sx_stmt *x = stmt;
    sx_ctx *c = x->c;
    merr m = {0};
    if (c->failed_txn) {
        if (ends_txn(x->st)) {
            c->failed_txn = 0;
            c->changes = 0;
            return SEXEC_DONE;
        }
        set_err(err, SEXEC_ABORT,
                "current transaction is aborted, statements ignored until ROLLBACK", -1);
        return SEXEC_ABORT;
    }
    if (atomic_load(&c->cancel)) {
        set_err(err, SEXEC_INTERRUPT, "interrupted", -1);
        return SEXEC_INTERRUPT;
    }
    int in_txn = sql_session_in_txn(c->s);
    /* The text is copied only when another statement runs (not per row). */
    reg_state(c, c->stmt_shown != x ? x->text : NULL, 1);
    c->stmt_shown = x;
    int rc = sql_step(x->st, &m);
    reg_state(c, NULL, 0);
    if (rc == 1) return SEXEC_ROW;
    if (rc == 0) {
        int dml = sql_stmt_get_kind(x->st) == SQL_STMT_QUERY && !sql_stmt_readonly(x->st);
        c->changes = dml ? sql_session_changes(c->s) : 0;
        return SEXEC_DONE;
    }
    /* Past the statement's deadline a failure is its timeout (the KV gave
     * up at the same deadline), as when the client's cancel arrives first. */
    int timed_out = sexec_past_deadline(c->deadline_us);
    if (atomic_load(&c->cancel) || timed_out) m.code = MERR_CANCELED;
    int code = map_err(c, x->st, &m, -1, err);
    if (timed_out) snprintf(err->msg, sizeof(err->msg), "statement timeout exceeded");
    if (code == SEXEC_ABORT && in_txn && !ends_txn(x->st)) {
        /* The layer has rolled back already when it reports an abort; make
         * sure, and hold the transaction FAILED until the client ends it. */
        if (sql_session_in_txn(c->s)) sql_exec(c->s, "ROLLBACK", NULL, NULL, NULL);
        c->failed_txn = 1;
    }
    return code;
}

static int sx_column_count(void *stmt)
{
    return sql_column_count(((sx_stmt *)stmt)->st);
}

static const char *sx_column_name(void *stmt, int i)
{
    return sql_column_name(((sx_stmt *)stmt)->st, i);
}

static const char *sx_column_decltype(void *stmt, int i)
{
    sqlite3_stmt *h = sql_stmt_handle(((sx_stmt *)stmt)->st);
    return h ? sqlite3_column_decltype(h, i) : NULL;
}

static void sx_column_value(void *stmt, int i, sexec_value *out)
{
    sql_stmt *st = ((sx_stmt *)stmt)->st;
    memset(out, 0, sizeof(*out));
    switch (sql_column_type(st, i)) {
    case SQLITE_INTEGER:
        out->type = SEXEC_INT;
        out->i = sql_column_int64(st, i);
        break;
    case SQLITE_FLOAT:
        out->type = SEXEC_FLOAT;
        out->d = sql_column_double(st, i);
        break;
    case SQLITE_TEXT:
        out->type = SEXEC_TEXT;
        out->p = sql_column_text(st, i);
        out->len = (size_t)sql_column_bytes(st, i);
        break;
    case SQLITE_BLOB:
        out->type = SEXEC_BLOB;
        out->p = sql_column_blob(st, i);
        out->len = (size_t)sql_column_bytes(st, i);
        break;
    default: out->type = SEXEC_NULL; break;
    }
}

static void sx_reset(void *stmt)
{
    sx_stmt *x = stmt;
    /* A statement cut short (a reader that stopped, a cancel) counts as
     * done, as sqlite3_reset does; its commit error has nobody to go to. */
    sql_reset(x->st, NULL);
    atomic_store(&x->c->cancel, 0);
    if (x->c->kv && x->c->cfg->kv_cancel) x->c->cfg->kv_cancel(x->c->kv, 0);
}

static void sx_finalize(void *stmt)
{
    sx_stmt *x = stmt;
    sql_finalize(x->st, NULL);
    if (x->c->stmt_shown == x) x->c->stmt_shown = NULL;
    free(x->text);
    free(x);
}

static uint64_t sx_changes(void *ctx)
{
    return ((sx_ctx *)ctx)->changes;
}

/* The flag, which the statement's deadline hook polls (c->s may be being
 * made on the worker right now), and the session KV's cancel for a
 * statement waiting in the KV. */
static void sx_cancel(void *ctx, int on)
{
    sx_ctx *c = ctx;
    atomic_store(&c->cancel, on);
    void *kv = atomic_load(&c->cancel_kv);
    if (kv && c->cfg->kv_cancel) c->cfg->kv_cancel(kv, on);
}

static int sx_txn_state(void *ctx)
{
    sx_ctx *c = ctx;
    if (c->failed_txn) return SEXEC_TXN_FAILED;
    return c->s && sql_session_in_txn(c->s) ? SEXEC_TXN_OPEN : SEXEC_TXN_IDLE;
}

static void sx_close(void *ctx)
{
    sx_ctx *c = ctx;
    reg_remove(c);
    sql_session_close(c->s);
    if (c->kv && c->cfg->kv_close) c->cfg->kv_close(c->kv);
    free(c);
}

static void sx_session_id(void *ctx, uint64_t id)
{
    pthread_mutex_lock(&reg_mu);
    ((sx_ctx *)ctx)->id = id;
    pthread_mutex_unlock(&reg_mu);
}

static int sx_user_verifier(void *ctx, const char *user, char *out, size_t cap, int *found,
                            sexec_error *err)
{
    sx_ctx *c = ctx;
    merr m = {0};
    int rc = ensure_session(c, err);
    if (rc) return rc;
    if (sql_session_user_verifier(c->s, user, out, cap, found, &m))
        return map_err(c, NULL, &m, -1, err);
    return 0;
}

void session_exec_sql(session_executor *ex, session_exec_sql_config *cfg)
{
    memset(ex, 0, sizeof(*ex));
    ex->name = "meridian-sql";
    ex->arg = cfg;
    ex->open = sx_open;
    ex->prepare = sx_prepare;
    ex->param_count = sx_param_count;
    ex->stmt_readonly = sx_readonly;
    ex->bind = sx_bind;
    ex->step = sx_step;
    ex->column_count = sx_column_count;
    ex->column_name = sx_column_name;
    ex->column_decltype = sx_column_decltype;
    ex->column_value = sx_column_value;
    ex->reset = sx_reset;
    ex->finalize = sx_finalize;
    ex->changes = sx_changes;
    ex->cancel = sx_cancel;
    ex->txn_state = sx_txn_state;
    ex->set = sx_set;
    ex->close = sx_close;
    ex->session_id = sx_session_id;
    ex->user_verifier = sx_user_verifier;
    ex->set_deadline = sx_set_deadline;
}
