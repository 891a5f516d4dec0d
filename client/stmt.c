/* libmeridian statements: prepare, bind, step through streamed row batches,
 * read columns with SQLite's conversions, reset/finalize, meridian_exec and
 * the retrying transaction helper. */
#include "client/internal.h"

#include "common/backoff.h"
#include "common/cli.h"
#include "common/mtime.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Meridian__Session__Value PValue;

static void free_value(PValue *v)
{
    if (v->v_case == MERIDIAN__SESSION__VALUE__V_TEXT) free(v->text);
    if (v->v_case == MERIDIAN__SESSION__VALUE__V_BLOB) free(v->blob.data);
    PValue init = MERIDIAN__SESSION__VALUE__INIT;
    *v = init;
}

static void free_columns(meridian_stmt *st)
{
    for (int i = 0; i < st->ncols; i++) {
        free(st->col_names[i]);
        free(st->col_types[i]);
        if (st->conv) free(st->conv[i]);
    }
    free(st->col_names);
    free(st->col_types);
    free(st->conv);
    st->col_names = st->col_types = st->conv = NULL;
    st->ncols = 0;
}

static int set_columns(meridian_stmt *st, Meridian__Session__Column **cols, size_t n)
{
    free_columns(st);
    if (!n) return 0;
    st->col_names = calloc(n, sizeof(char *));
    st->col_types = calloc(n, sizeof(char *));
    st->conv = calloc(n, sizeof(char *));
    if (!st->col_names || !st->col_types || !st->conv) goto oom;
    st->ncols = (int)n;
    for (size_t i = 0; i < n; i++) {
        st->col_names[i] = strdup(cols[i]->name ? cols[i]->name : "");
        st->col_types[i] = strdup(cols[i]->decltype ? cols[i]->decltype : "");
        if (!st->col_names[i] || !st->col_types[i]) goto oom;
    }
    return 0;
oom:
    free_columns(st);
    return client_err(st->db, MERIDIAN_NOMEM, 0, "out of memory");
}

/* Drops received rows and the result; the stream must be over. */
static void drop_rows(meridian_stmt *st)
{
    while (st->head) {
        cbatch *b = st->head;
        st->head = b->next;
        meridian__session__row_batch__free_unpacked(b->msg, NULL);
        free(b);
    }
    st->tail = NULL;
    if (st->cur) {
        meridian__session__row_batch__free_unpacked(st->cur->msg, NULL);
        free(st->cur);
        st->cur = NULL;
    }
    st->crow = NULL;
    if (st->result) meridian__session__exec_result__free_unpacked(st->result, NULL);
    st->result = NULL;
    free(st->end_msg);
    st->end_msg = NULL;
    for (int i = 0; st->conv && i < st->ncols; i++) {
        free(st->conv[i]);
        st->conv[i] = NULL;
    }
}

/* Compiles st->sql in the current session. */
static int server_prepare(meridian_stmt *st, uint32_t *tail)
{
    meridian *db = st->db;
    int rc, none = 0;
    if ((rc = client_check_idle(db, st))) return rc;
    for (int attempt = 0;; attempt++) {
        if ((rc = client_ensure_session(db))) return rc;
        Meridian__Session__PrepareRequest req = MERIDIAN__SESSION__PREPARE_REQUEST__INIT;
        req.session_id = db->session_id;
        req.sql = st->sql;
        uint8_t *resp = NULL;
        size_t len = 0;
        int in_txn = db->txn != MERIDIAN_TXN_IDLE;
        rc = client_call(db, "session.prepare", &req.base, &resp, &len, &none);
        /* Preparing has no effects: outside a transaction a lost gateway
         * costs nothing but a new session elsewhere. */
        if (rc == MERIDIAN_UNAVAILABLE && !in_txn && attempt < db->nhosts) continue;
        if (rc) return rc;
        Meridian__Session__PrepareReply *r =
            meridian__session__prepare_reply__unpack(NULL, len, resp);
        free(resp);
        if (!r) return client_err(db, MERIDIAN_PROTOCOL, 0, "undecodable prepare reply");
        client_txn_from(db, r->txn);
        rc = client_err_from(db, r->error);
        if (!rc) {
            st->stmt_id = r->stmt_id;
            st->gen = db->gen;
            *tail = r->tail;
            if (r->stmt_id) {
                rc = set_columns(st, r->columns, r->n_columns);
                if (!st->params || st->nparams != (int)r->param_count) {
                    free(st->params);
                    st->nparams = (int)r->param_count;
                    st->params = calloc((size_t)st->nparams + 1, sizeof(PValue));
                    if (!st->params) rc = client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
                    for (int i = 0; !rc && i < st->nparams; i++) {
                        PValue init = MERIDIAN__SESSION__VALUE__INIT;
                        st->params[i] = init;
                    }
                }
            }
        }
        meridian__session__prepare_reply__free_unpacked(r, NULL);
        return rc;
    }
}

static void stmt_unlink(meridian_stmt *st)
{
    for (meridian_stmt **pp = &st->db->stmts; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            return;
        }
}

static void stmt_free(meridian_stmt *st)
{
    for (int i = 0; st->params && i < st->nparams; i++) free_value(&st->params[i]);
    free(st->params);
    free_columns(st);
    free(st->sql);
    free(st);
}

static meridian_stmt *stmt_new(meridian *db, const char *sql, size_t n)
{
    meridian_stmt *st = calloc(1, sizeof(*st));
    if (!st) return NULL;
    st->db = db;
    st->sql = malloc(n + 1);
    if (!st->sql) {
        free(st);
        return NULL;
    }
    memcpy(st->sql, sql, n);
    st->sql[n] = 0;
    st->sql_len = n;
    st->next = db->stmts;
    db->stmts = st;
    return st;
}

int meridian_prepare(meridian *db, const char *sql, int nbytes, meridian_stmt **out,
                     const char **tail)
{
    if (out) *out = NULL;
    if (!db || !sql || !out) return MERIDIAN_MISUSE;
    size_t n = nbytes < 0 ? strlen(sql) : (size_t)nbytes;
    meridian_stmt *st = stmt_new(db, sql, n);
    if (!st) return client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
    uint32_t used = 0;
    int rc = server_prepare(st, &used);
    if (rc || !st->stmt_id) {
        stmt_unlink(st);
        stmt_free(st);
        if (tail) *tail = sql + (rc ? 0 : (used <= n ? used : n));
        return rc;
    }
    if (used > n) used = (uint32_t)n;
    /* Keep only this statement's text for a re-prepare after failover. */
    st->sql[used] = 0;
    st->sql_len = used;
    if (tail) *tail = sql + used;
    *out = st;
    client_ok(db);
    return 0;
}

int meridian_bind_parameter_count(meridian_stmt *st)
{
    return st ? st->nparams : 0;
}

static PValue *param(meridian_stmt *st, int idx, int *rc)
{
    *rc = 0;
    if (!st) {
        *rc = MERIDIAN_MISUSE;
        return NULL;
    }
    if (st->state == ST_RUNNING) {
        *rc = client_err(st->db, MERIDIAN_MISUSE, 0, "bind on a running statement: reset it");
        return NULL;
    }
    if (idx < 1 || idx > st->nparams) {
        *rc = client_err(st->db, MERIDIAN_RANGE, 0, "bind index %d out of range (1..%d)", idx,
                         st->nparams);
        return NULL;
    }
    free_value(&st->params[idx - 1]);
    return &st->params[idx - 1];
}

int meridian_bind_int64(meridian_stmt *st, int idx, int64_t v)
{
    int rc;
    PValue *p = param(st, idx, &rc);
    if (p) p->v_case = MERIDIAN__SESSION__VALUE__V_I, p->i = v;
    return rc;
}

int meridian_bind_double(meridian_stmt *st, int idx, double v)
{
    int rc;
    PValue *p = param(st, idx, &rc);
    if (p) p->v_case = MERIDIAN__SESSION__VALUE__V_D, p->d = v;
    return rc;
}

int meridian_bind_text(meridian_stmt *st, int idx, const char *s, int n)
{
    int rc;
    if (!s) return meridian_bind_null(st, idx);
    PValue *p = param(st, idx, &rc);
    if (!p) return rc;
    size_t len = n < 0 ? strlen(s) : (size_t)n;
    if (!(p->text = malloc(len + 1))) return client_err(st->db, MERIDIAN_NOMEM, 0, "out of memory");
    memcpy(p->text, s, len);
    p->text[len] = 0;
    p->v_case = MERIDIAN__SESSION__VALUE__V_TEXT;
    return 0;
}

int meridian_bind_blob(meridian_stmt *st, int idx, const void *b, int n)
{
    int rc;
    if (n < 0) return st ? client_err(st->db, MERIDIAN_MISUSE, 0, "negative blob size") : 1;
    PValue *p = param(st, idx, &rc);
    if (!p) return rc;
    p->blob.data = malloc(n ? (size_t)n : 1);
    if (!p->blob.data) return client_err(st->db, MERIDIAN_NOMEM, 0, "out of memory");
    if (n) memcpy(p->blob.data, b, (size_t)n);
    p->blob.len = (size_t)n;
    p->v_case = MERIDIAN__SESSION__VALUE__V_BLOB;
    return 0;
}

int meridian_bind_null(meridian_stmt *st, int idx)
{
    int rc;
    PValue *p = param(st, idx, &rc);
    if (p) p->v_case = MERIDIAN__SESSION__VALUE__V_NULL, p->null = 1;
    return rc;
}

int meridian_clear_bindings(meridian_stmt *st)
{
    if (!st) return MERIDIAN_MISUSE;
    for (int i = 0; i < st->nparams; i++) free_value(&st->params[i]);
    return 0;
}

/* Ends whatever run is going on and forgets its rows. */
static void stop_run(meridian_stmt *st)
{
    meridian *db = st->db;
    if (st->state == ST_RUNNING) client_stream_cancel(st);
    pthread_mutex_lock(&db->mu);
    if (db->running == st) {
        db->running = NULL;
        db->inflight_seq = 0;
    }
    pthread_mutex_unlock(&db->mu);
    drop_rows(st);
    st->state = ST_IDLE;
}

static int start_run(meridian_stmt *st)
{
    meridian *db = st->db;
    int rc, none = 0;
    if ((rc = client_check_idle(db, st))) return rc;
    for (int attempt = 0;; attempt++) {
        int in_txn = db->txn != MERIDIAN_TXN_IDLE;
        if ((rc = client_ensure_session(db))) return rc;
        uint32_t tail = 0;
        if (!st->adhoc && st->gen != db->gen && (rc = server_prepare(st, &tail))) return rc;
        Meridian__Session__ExecRequest req = MERIDIAN__SESSION__EXEC_REQUEST__INIT;
        PValue *ptrs[st->nparams + 1];
        for (int i = 0; i < st->nparams; i++) {
            ptrs[i] = &st->params[i];
            if (ptrs[i]->v_case == MERIDIAN__SESSION__VALUE__V__NOT_SET) {
                ptrs[i]->v_case = MERIDIAN__SESSION__VALUE__V_NULL;
                ptrs[i]->null = 1;
            }
        }
        req.session_id = db->session_id;
        req.seq = ++db->seq;
        req.stmt_id = st->adhoc ? 0 : st->stmt_id;
        req.sql = st->adhoc ? st->sql : (char *)"";
        req.params = ptrs;
        req.n_params = (size_t)st->nparams;
        st->seq = req.seq;
        pthread_mutex_lock(&db->mu);
        db->running = st;
        db->inflight_seq = req.seq;
        pthread_mutex_unlock(&db->mu);
        st->state = ST_RUNNING;
        st->may_commit = client_may_commit(st->sql, db->txn);
        rc = client_stream_start(st, &req.base, &none);
        if (!rc) return 0;
        st->state = ST_IDLE;
        pthread_mutex_lock(&db->mu);
        db->running = NULL;
        db->inflight_seq = 0;
        pthread_mutex_unlock(&db->mu);
        /* Never sent: nothing ran, so outside a transaction another gateway
         * may take it. */
        if (!(none && !in_txn && attempt < db->nhosts)) return rc;
    }
}

/* The statement's own statement_timeout ended it: the session lives on. */
static int stmt_timed_out(meridian *db)
{
    char d[32];
    cli_format_duration(db->stmt_timeout_ns, d, sizeof(d));
    return client_err(db, MERIDIAN_INTERRUPT, 0, "statement timeout (%s) exceeded", d);
}

/* The stream ended: report the result. */
static int finish_run(meridian_stmt *st)
{
    meridian *db = st->db;
    int rc;
    pthread_mutex_lock(&db->mu);
    if (db->running == st) {
        db->running = NULL;
        db->inflight_seq = 0;
    }
    int asked = st->seq && db->interrupted_seq == st->seq;
    pthread_mutex_unlock(&db->mu);
    st->state = ST_DONE;
    /* Our deadline passed: the call ends timed out here, or canceled when
     * the gateway's copy of the deadline fired first (within a few ms). */
    int past = st->deadline_us && mtime_real_ns() / 1000 + 20000 >= st->deadline_us;
    if ((st->end_code == MERR_TIMEOUT || (st->end_code == MERR_CANCELED && past)) &&
        db->stmt_timeout_ns) {
        rc = stmt_timed_out(db); /* our own deadline, not a lost gateway */
    } else if (st->end_code) {
        rc = client_rpc_failed(db, st->end_code, st->end_msg, st->may_commit);
    } else {
        Meridian__Session__ExecResult *r = st->result;
        client_txn_from(db, r->txn);
        if (r->n_columns && !st->ncols) set_columns(st, r->columns, r->n_columns);
        st->consumed = r->tail;
        rc = client_err_from(db, r->error);
        if (!rc) db->changes = (int64_t)r->rows_affected;
        /* The gateway stopped it at the deadline we gave it (a KV call
         * bounded by the same deadline gave up first) and named it an
         * interrupt: to the caller it is its statement timeout. */
        if (rc == MERIDIAN_INTERRUPT && past && db->stmt_timeout_ns && !asked)
            rc = stmt_timed_out(db);
    }
    drop_rows(st);
    return rc ? rc : MERIDIAN_DONE;
}

int meridian_step(meridian_stmt *st)
{
    if (!st) return MERIDIAN_MISUSE;
    meridian *db = st->db;
    if (st->state == ST_DONE) st->state = ST_IDLE; /* as SQLite: step after DONE reruns */
    if (st->state == ST_IDLE) {
        int rc = start_run(st);
        if (rc) return rc;
    }
    for (int i = 0; st->conv && i < st->ncols; i++) {
        free(st->conv[i]);
        st->conv[i] = NULL;
    }
    for (;;) {
        if (st->cur && st->row < st->cur->msg->n_rows) {
            st->crow = st->cur->msg->rows[st->row++];
            client_ok(db);
            return MERIDIAN_ROW;
        }
        pthread_mutex_lock(&db->mu);
        while (!st->head && !st->ended) pthread_cond_wait(&db->cv, &db->mu);
        cbatch *next = st->head;
        if (next) {
            st->head = next->next;
            if (!st->head) st->tail = NULL;
        }
        pthread_mutex_unlock(&db->mu);
        if (st->cur) {
            meridian__session__row_batch__free_unpacked(st->cur->msg, NULL);
            free(st->cur);
            st->cur = NULL;
            client_stream_grant(st);
        }
        st->crow = NULL;
        if (!next) return finish_run(st);
        st->cur = next;
        st->row = 0;
        if (next->msg->n_columns && !st->ncols &&
            set_columns(st, next->msg->columns, next->msg->n_columns))
            return MERIDIAN_NOMEM;
    }
}

int meridian_reset(meridian_stmt *st)
{
    if (!st) return MERIDIAN_MISUSE;
    stop_run(st);
    return 0;
}

int meridian_finalize(meridian_stmt *st)
{
    if (!st) return MERIDIAN_OK;
    meridian *db = st->db;
    stop_run(st);
    if (!st->adhoc && st->stmt_id && st->gen == db->gen && db->connected) {
        /* Not waited for: finalize keeps the statement's error (as SQLite
         * does), and the session may be busy streaming another statement. */
        Meridian__Session__CloseStmtRequest req = MERIDIAN__SESSION__CLOSE_STMT_REQUEST__INIT;
        req.session_id = db->session_id;
        req.stmt_id = st->stmt_id;
        client_call_async(db, "session.close_stmt", &req.base, db->cur);
    }
    stmt_unlink(st);
    stmt_free(st);
    return MERIDIAN_OK;
}

/* ---- columns ---- */

int meridian_column_count(meridian_stmt *st)
{
    return st ? st->ncols : 0;
}

const char *meridian_column_name(meridian_stmt *st, int i)
{
    return st && i >= 0 && i < st->ncols ? st->col_names[i] : NULL;
}

const char *meridian_column_decltype(meridian_stmt *st, int i)
{
    return st && i >= 0 && i < st->ncols && st->col_types[i][0] ? st->col_types[i] : NULL;
}

static const PValue *col(meridian_stmt *st, int i)
{
    /* Both bounds: a server sending more values than columns must not
     * index past the per-column buffers. */
    if (!st || !st->crow || i < 0 || i >= st->ncols || (size_t)i >= st->crow->n_values) return NULL;
    return st->crow->values[i];
}

int meridian_column_type(meridian_stmt *st, int i)
{
    const PValue *v = col(st, i);
    switch (v ? v->v_case : 0) {
    case MERIDIAN__SESSION__VALUE__V_I: return MERIDIAN_INTEGER;
    case MERIDIAN__SESSION__VALUE__V_D: return MERIDIAN_FLOAT;
    case MERIDIAN__SESSION__VALUE__V_TEXT: return MERIDIAN_TEXT;
    case MERIDIAN__SESSION__VALUE__V_BLOB: return MERIDIAN_BLOB;
    default: return MERIDIAN_NULL;
    }
}

int64_t meridian_column_int64(meridian_stmt *st, int i)
{
    const PValue *v = col(st, i);
    switch (v ? v->v_case : 0) {
    case MERIDIAN__SESSION__VALUE__V_I: return v->i;
    case MERIDIAN__SESSION__VALUE__V_D: return (int64_t)v->d;
    case MERIDIAN__SESSION__VALUE__V_TEXT: return strtoll(v->text, NULL, 10);
    default: return 0;
    }
}

double meridian_column_double(meridian_stmt *st, int i)
{
    const PValue *v = col(st, i);
    switch (v ? v->v_case : 0) {
    case MERIDIAN__SESSION__VALUE__V_I: return (double)v->i;
    case MERIDIAN__SESSION__VALUE__V_D: return v->d;
    case MERIDIAN__SESSION__VALUE__V_TEXT: return strtod(v->text, NULL);
    default: return 0.0;
    }
}

const char *meridian_column_text(meridian_stmt *st, int i)
{
    const PValue *v = col(st, i);
    char buf[64];
    switch (v ? v->v_case : 0) {
    case MERIDIAN__SESSION__VALUE__V_TEXT: return v->text;
    case MERIDIAN__SESSION__VALUE__V_I: snprintf(buf, sizeof(buf), "%" PRId64, v->i); break;
    case MERIDIAN__SESSION__VALUE__V_D: snprintf(buf, sizeof(buf), "%.17g", v->d); break;
    case MERIDIAN__SESSION__VALUE__V_BLOB:
        /* As SQLite: the bytes, NUL-terminated. */
        if (!st->conv[i] && (st->conv[i] = malloc(v->blob.len + 1))) {
            if (v->blob.len) memcpy(st->conv[i], v->blob.data, v->blob.len);
            st->conv[i][v->blob.len] = 0;
        }
        return st->conv[i];
    default: return NULL;
    }
    if (!st->conv[i]) st->conv[i] = strdup(buf);
    return st->conv[i];
}

const void *meridian_column_blob(meridian_stmt *st, int i)
{
    const PValue *v = col(st, i);
    if (v && v->v_case == MERIDIAN__SESSION__VALUE__V_BLOB)
        return v->blob.len ? v->blob.data : NULL;
    return meridian_column_text(st, i);
}

int meridian_column_bytes(meridian_stmt *st, int i)
{
    const PValue *v = col(st, i);
    if (!v) return 0;
    if (v->v_case == MERIDIAN__SESSION__VALUE__V_BLOB) return (int)v->blob.len;
    if (v->v_case == MERIDIAN__SESSION__VALUE__V_NULL) return 0;
    const char *t = meridian_column_text(st, i);
    return t ? (int)strlen(t) : 0;
}

/* ---- exec and transactions ---- */

void meridian_free(void *p)
{
    free(p);
}

int meridian_exec(meridian *db, const char *sql, meridian_callback cb, void *arg, char **errmsg)
{
    if (errmsg) *errmsg = NULL;
    if (!db || !sql) return MERIDIAN_MISUSE;
    size_t len = strlen(sql), off = 0;
    int rc = 0;
    while (off < len && !rc) {
        meridian_stmt *st = stmt_new(db, sql + off, len - off);
        if (!st) {
            rc = client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
            break;
        }
        st->adhoc = 1;
        char **vals = NULL;
        int step;
        while ((step = meridian_step(st)) == MERIDIAN_ROW) {
            if (!cb) continue;
            if (!vals && !(vals = calloc((size_t)st->ncols + 1, sizeof(char *)))) {
                rc = client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
                break;
            }
            for (int i = 0; i < st->ncols; i++) vals[i] = (char *)meridian_column_text(st, i);
            if (cb(arg, st->ncols, vals, st->col_names)) {
                rc = client_err(db, MERIDIAN_ABORT, 0, "query aborted by the callback");
                break;
            }
        }
        free(vals);
        if (!rc && step != MERIDIAN_DONE) rc = step;
        size_t used = st->consumed;
        meridian_finalize(st); /* keeps db's error */
        if (rc) {
            /* Offsets count from the start of the whole text. */
            if (db->erroffset >= 0) db->erroffset += (int)off;
            break;
        }
        if (!used) break; /* nothing but blanks and comments left */
        off += used;
    }
    if (rc && errmsg) *errmsg = strdup(meridian_errmsg(db));
    if (!rc) client_ok(db);
    return rc;
}

int meridian_run_in_txn(meridian *db, meridian_txn_fn fn, void *arg, int max_retries)
{
    if (!db || !fn || max_retries < 0) return MERIDIAN_MISUSE;
    for (int attempt = 0;; attempt++) {
        int rc = meridian_exec(db, "BEGIN", NULL, NULL, NULL);
        if (!rc) rc = fn(db, arg);
        if (!rc) rc = meridian_exec(db, "COMMIT", NULL, NULL, NULL);
        if (!rc) return 0;
        int retry = meridian_error_retryable(db);
        int code = meridian_errcode(db);
        char msg[sizeof(db->errmsg)];
        memcpy(msg, db->errmsg, sizeof(msg));
        int off = db->erroffset;
        if (db->txn != MERIDIAN_TXN_IDLE) meridian_exec(db, "ROLLBACK", NULL, NULL, NULL);
        /* Report fn's error, not the rollback's. */
        db->errcode = code ? code : rc;
        memcpy(db->errmsg, msg, sizeof(msg));
        db->erroffset = off;
        db->retryable = retry;
        if (!retry || attempt >= max_retries) return db->errcode;
        mbackoff_retry_sleep(attempt, 10 * MTIME_MS, MTIME_S);
    }
}
