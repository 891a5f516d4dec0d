/* The TPC-C driver over libmeridian (include/meridian.h): a thin mapping,
 * since tpcc_driver was modelled on the same SQLite-like statement API. */
#include "client/tpcc.h"
#include "include/meridian.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tpcc_conn {
    meridian *db;
    int retryable;
    char msg[512];
};

struct tpcc_stmt {
    tpcc_conn *c;
    meridian_stmt *st;
};

static int fail(tpcc_conn *c)
{
    c->retryable = meridian_error_retryable(c->db);
    snprintf(c->msg, sizeof c->msg, "%s", meridian_errmsg(c->db));
    return c->retryable ? MERR_RETRY : MERR_INTERNAL;
}

static int m_connect(const char *target, const char *isolation, tpcc_conn **out, merr *e)
{
    (void)isolation; /* Meridian's read-write transactions are always serializable */
    tpcc_conn *c = calloc(1, sizeof *c);
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    char conninfo[1024];
    /* A generous statement timeout: a wedged gateway must end the run with an
     * error, not hang it. */
    snprintf(conninfo, sizeof conninfo, "hosts=%s connect_timeout=5s statement_timeout=60s",
             target);
    if (meridian_open(conninfo, &c->db) != MERIDIAN_OK) {
        merr_set(e, MERR_UNAVAILABLE, "connect %s: %s", target,
                 c->db ? meridian_errmsg(c->db) : "out of memory");
        meridian_close(c->db);
        free(c);
        return e->code;
    }
    *out = c;
    return 0;
}

static void m_close(tpcc_conn *c)
{
    if (!c) return;
    meridian_close(c->db);
    free(c);
}

static int m_exec(tpcc_conn *c, const char *sql)
{
    return meridian_exec(c->db, sql, NULL, NULL, NULL) == MERIDIAN_OK ? 0 : fail(c);
}

static int m_prepare(tpcc_conn *c, const char *sql, tpcc_stmt **out)
{
    tpcc_stmt *s = calloc(1, sizeof *s);
    if (!s) return MERR_NOMEM;
    s->c = c;
    if (meridian_prepare(c->db, sql, -1, &s->st, NULL) != MERIDIAN_OK) {
        free(s);
        return fail(c);
    }
    *out = s;
    return 0;
}

static int m_reset(tpcc_stmt *s)
{
    return meridian_reset(s->st) == MERIDIAN_OK ? 0 : fail(s->c);
}

static int m_bind_int(tpcc_stmt *s, int i, int64_t v)
{
    return meridian_bind_int64(s->st, i, v) == MERIDIAN_OK ? 0 : fail(s->c);
}

static int m_bind_double(tpcc_stmt *s, int i, double v)
{
    return meridian_bind_double(s->st, i, v) == MERIDIAN_OK ? 0 : fail(s->c);
}

static int m_bind_text(tpcc_stmt *s, int i, const char *v)
{
    return meridian_bind_text(s->st, i, v, -1) == MERIDIAN_OK ? 0 : fail(s->c);
}

static int m_bind_null(tpcc_stmt *s, int i)
{
    return meridian_bind_null(s->st, i) == MERIDIAN_OK ? 0 : fail(s->c);
}

static int m_step(tpcc_stmt *s)
{
    int rc = meridian_step(s->st);
    if (rc == MERIDIAN_ROW) return TPCC_ROW;
    if (rc == MERIDIAN_DONE) return TPCC_DONE;
    return fail(s->c);
}

static int m_column_null(tpcc_stmt *s, int i)
{
    return meridian_column_type(s->st, i) == MERIDIAN_NULL;
}

static int64_t m_column_int(tpcc_stmt *s, int i)
{
    return meridian_column_int64(s->st, i);
}

static double m_column_double(tpcc_stmt *s, int i)
{
    return meridian_column_double(s->st, i);
}

static const char *m_column_text(tpcc_stmt *s, int i)
{
    const char *t = meridian_column_text(s->st, i);
    return t ? t : "";
}

static int64_t m_changes(tpcc_conn *c)
{
    return meridian_changes(c->db);
}

static void m_finalize(tpcc_stmt *s)
{
    if (!s) return;
    meridian_finalize(s->st);
    free(s);
}

static int m_begin(tpcc_conn *c, int read_only)
{
    return m_exec(c, read_only ? "BEGIN READ ONLY" : "BEGIN");
}

static int m_commit(tpcc_conn *c)
{
    return m_exec(c, "COMMIT");
}

static int m_rollback(tpcc_conn *c)
{
    /* Keep the error that made us roll back: that is the one to report. */
    int r = c->retryable;
    char msg[sizeof c->msg];
    memcpy(msg, c->msg, sizeof msg);
    int rc = meridian_exec(c->db, "ROLLBACK", NULL, NULL, NULL) == MERIDIAN_OK ? 0 : fail(c);
    if (!rc) {
        c->retryable = r;
        memcpy(c->msg, msg, sizeof msg);
    }
    return rc;
}

static int m_retryable(tpcc_conn *c)
{
    return c->retryable;
}

static const char *m_errmsg(tpcc_conn *c)
{
    return c->msg;
}

const tpcc_driver tpcc_driver_meridian = {
    .name = "libmeridian",
    .connect = m_connect,
    .close = m_close,
    .exec = m_exec,
    .prepare = m_prepare,
    .reset = m_reset,
    .bind_int = m_bind_int,
    .bind_double = m_bind_double,
    .bind_text = m_bind_text,
    .bind_null = m_bind_null,
    .step = m_step,
    .column_null = m_column_null,
    .column_int = m_column_int,
    .column_double = m_column_double,
    .column_text = m_column_text,
    .changes = m_changes,
    .finalize = m_finalize,
    .begin = m_begin,
    .commit = m_commit,
    .rollback = m_rollback,
    .retryable = m_retryable,
    .errmsg = m_errmsg,
};
