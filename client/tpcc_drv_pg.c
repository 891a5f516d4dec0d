/* The TPC-C driver over libpq, so the same workload measures PostgreSQL.
 *
 * Statements are server-side prepared (PQprepare) with `?` rewritten to $n;
 * parameters travel as text and PostgreSQL infers their types from the
 * context, which keeps NUMERIC columns exact. A result is fetched whole by
 * PQexecPrepared and stepped through locally: every TPC-C statement returns
 * at most a few dozen rows. Retryable: SQLSTATE 40001 (serialization
 * failure) and 40P01 (deadlock detected), the two errors PostgreSQL's manual
 * tells applications to retry. */
#include "client/tpcc.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_MAX_PARAMS 16

struct tpcc_conn {
    PGconn *pg;
    int nstmts; /* names the prepared statements s1, s2, ... */
    int retryable;
    int64_t changes;
    char msg[512];
};

struct tpcc_stmt {
    tpcc_conn *c;
    char name[16];
    int nparams;
    char *vals[PG_MAX_PARAMS];
    char buf[PG_MAX_PARAMS][32]; /* numbers are formatted here */
    char *text[PG_MAX_PARAMS];   /* copies of text parameters */
    PGresult *res;
    int row, nrows, done;
};

/* Records res's error (or the connection's) and returns the MERR code. */
static int fail(tpcc_conn *c, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    c->retryable = state && (!strcmp(state, "40001") || !strcmp(state, "40P01"));
    const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
    snprintf(c->msg, sizeof c->msg, "%s%s%s", state ? state : "", state ? ": " : "",
             m && *m ? m : "unknown error");
    size_t n = strlen(c->msg);
    while (n && c->msg[n - 1] == '\n') c->msg[--n] = 0;
    return c->retryable ? MERR_RETRY : MERR_INTERNAL;
}

static int pg_exec(tpcc_conn *c, const char *sql)
{
    PGresult *res = PQexec(c->pg, sql);
    int st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fail(c, res);
    else
        c->changes = atoll(PQcmdTuples(res));
    PQclear(res);
    return rc;
}

/* Notices ("there is no transaction in progress" after a COMMIT that failed
 * and ended the transaction) are expected and would garble the report. */
static void pg_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int pg_connect(const char *target, const char *isolation, tpcc_conn **out, merr *e)
{
    tpcc_conn *c = calloc(1, sizeof *c);
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    c->pg = PQconnectdb(target);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        merr_set(e, MERR_UNAVAILABLE, "connect %s: %s", target, PQerrorMessage(c->pg));
        goto err;
    }
    PQsetNoticeProcessor(c->pg, pg_quiet, NULL);
    char sql[128];
    /* TPC-C wants serializable-like isolation (3.4); Meridian gives
     * serializable, so PostgreSQL gets the same unless asked otherwise. */
    snprintf(sql, sizeof sql,
             "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL %s; "
             "SET client_min_messages = warning",
             isolation ? isolation : "serializable");
    if (pg_exec(c, sql)) {
        merr_set(e, MERR_INVALID, "isolation %s: %s", isolation, c->msg);
        goto err;
    }
    *out = c;
    return 0;
err:
    PQfinish(c->pg);
    free(c);
    return e->code;
}

static void pg_close(tpcc_conn *c)
{
    if (!c) return;
    PQfinish(c->pg);
    free(c);
}

static int pg_prepare(tpcc_conn *c, const char *sql, tpcc_stmt **out)
{
    tpcc_stmt *s = calloc(1, sizeof *s);
    size_t n = strlen(sql);
    char *q = malloc(n * 3 + 1); /* each '?' becomes at most "$NN" */
    if (!s || !q) goto nomem;
    char *w = q;
    for (const char *p = sql; *p; p++) {
        if (*p == '?') {
            if (s->nparams == PG_MAX_PARAMS) {
                snprintf(c->msg, sizeof c->msg, "more than %d parameters", PG_MAX_PARAMS);
                free(q);
                free(s);
                return MERR_INVALID;
            }
            w += sprintf(w, "$%d", ++s->nparams);
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    s->c = c;
    snprintf(s->name, sizeof s->name, "s%d", ++c->nstmts);
    PGresult *res = PQprepare(c->pg, s->name, q, 0, NULL);
    free(q);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        int rc = fail(c, res);
        PQclear(res);
        free(s);
        return rc;
    }
    PQclear(res);
    *out = s;
    return 0;
nomem:
    free(q);
    free(s);
    return MERR_NOMEM;
}

static int pg_reset(tpcc_stmt *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->row = s->nrows = s->done = 0;
    return 0;
}

static int bind_slot(tpcc_stmt *s, int i)
{
    if (i < 1 || i > s->nparams) {
        snprintf(s->c->msg, sizeof s->c->msg, "parameter %d out of range", i);
        return MERR_INVALID;
    }
    free(s->text[i - 1]);
    s->text[i - 1] = NULL;
    return 0;
}

static int pg_bind_int(tpcc_stmt *s, int i, int64_t v)
{
    if (bind_slot(s, i)) return MERR_INVALID;
    snprintf(s->buf[i - 1], sizeof s->buf[0], "%lld", (long long)v);
    s->vals[i - 1] = s->buf[i - 1];
    return 0;
}

static int pg_bind_double(tpcc_stmt *s, int i, double v)
{
    if (bind_slot(s, i)) return MERR_INVALID;
    snprintf(s->buf[i - 1], sizeof s->buf[0], "%.17g", v);
    s->vals[i - 1] = s->buf[i - 1];
    return 0;
}

static int pg_bind_text(tpcc_stmt *s, int i, const char *v)
{
    if (bind_slot(s, i)) return MERR_INVALID;
    if (!(s->text[i - 1] = strdup(v))) return MERR_NOMEM;
    s->vals[i - 1] = s->text[i - 1];
    return 0;
}

static int pg_bind_null(tpcc_stmt *s, int i)
{
    if (bind_slot(s, i)) return MERR_INVALID;
    s->vals[i - 1] = NULL;
    return 0;
}

static int pg_step(tpcc_stmt *s)
{
    if (s->done) return TPCC_DONE;
    if (!s->res) {
        s->res = PQexecPrepared(s->c->pg, s->name, s->nparams, (const char *const *)s->vals, NULL,
                                NULL, 0);
        int st = PQresultStatus(s->res);
        if (st == PGRES_COMMAND_OK) {
            s->c->changes = atoll(PQcmdTuples(s->res));
            s->done = 1;
            return TPCC_DONE;
        }
        if (st != PGRES_TUPLES_OK) {
            int rc = fail(s->c, s->res);
            pg_reset(s);
            return rc;
        }
        s->nrows = PQntuples(s->res);
        s->c->changes = 0;
        s->row = -1;
    }
    if (++s->row < s->nrows) return TPCC_ROW;
    s->done = 1;
    return TPCC_DONE;
}

static int pg_column_null(tpcc_stmt *s, int i)
{
    return PQgetisnull(s->res, s->row, i);
}

static int64_t pg_column_int(tpcc_stmt *s, int i)
{
    return atoll(PQgetvalue(s->res, s->row, i));
}

static double pg_column_double(tpcc_stmt *s, int i)
{
    return atof(PQgetvalue(s->res, s->row, i));
}

static const char *pg_column_text(tpcc_stmt *s, int i)
{
    return PQgetvalue(s->res, s->row, i);
}

static int64_t pg_changes(tpcc_conn *c)
{
    return c->changes;
}

static void pg_finalize(tpcc_stmt *s)
{
    if (!s) return;
    pg_reset(s);
    for (int i = 0; i < PG_MAX_PARAMS; i++) free(s->text[i]);
    /* The server-side statement dies with the session; deallocating each one
     * would cost a round trip for nothing. */
    free(s);
}

static int pg_begin(tpcc_conn *c, int read_only)
{
    return pg_exec(c, read_only ? "BEGIN READ ONLY" : "BEGIN");
}

static int pg_commit(tpcc_conn *c)
{
    /* A COMMIT of a failed transaction "succeeds" as a rollback: catch it. */
    PGresult *res = PQexec(c->pg, "COMMIT");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fail(c, res);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(c->msg, sizeof c->msg, "commit ended as %s", PQcmdStatus(res));
        c->retryable = 0;
        rc = MERR_ABORTED;
    }
    PQclear(res);
    return rc;
}

static int pg_rollback(tpcc_conn *c)
{
    int r = c->retryable;
    char msg[sizeof c->msg];
    memcpy(msg, c->msg, sizeof msg);
    int rc = pg_exec(c, "ROLLBACK");
    if (!rc) {
        c->retryable = r;
        memcpy(c->msg, msg, sizeof msg);
    }
    return rc;
}

static int pg_retryable(tpcc_conn *c)
{
    return c->retryable;
}

static const char *pg_errmsg(tpcc_conn *c)
{
    return c->msg;
}

const tpcc_driver tpcc_driver_pg = {
    .name = "libpq (PostgreSQL)",
    .connect = pg_connect,
    .close = pg_close,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .reset = pg_reset,
    .bind_int = pg_bind_int,
    .bind_double = pg_bind_double,
    .bind_text = pg_bind_text,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .column_null = pg_column_null,
    .column_int = pg_column_int,
    .column_double = pg_column_double,
    .column_text = pg_column_text,
    .changes = pg_changes,
    .finalize = pg_finalize,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .retryable = pg_retryable,
    .errmsg = pg_errmsg,
};
