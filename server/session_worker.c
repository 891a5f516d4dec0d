/* The worker side of the session service: each session's thread takes its
 * jobs in order and runs them against the executor, streaming rows through
 * the loop side batch by batch (session_service.h explains why a thread). */
#include "server/session_internal.h"
#include "server/session_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_SLACK_US 20000 /* 20 ms */

int sexec_past_deadline(int64_t deadline_us)
{
    return deadline_us && mtime_real_ns() / 1000 + DEADLINE_SLACK_US >= deadline_us;
}

static int job_canceled(sjob *j)
{
    pthread_mutex_lock(&j->ss->mu);
    int c = j->canceled || (j->kind == J_EXEC && j->seq <= j->ss->cancel_upto);
    pthread_mutex_unlock(&j->ss->mu);
    return c;
}

/* Hands the encoded batch in j->out to the loop and waits until the stream
 * took it. Returns 0, MERR_TOOBIG (larger than a frame), or -1 when the
 * caller is gone. */
static int worker_send_batch(sjob *j)
{
    ssession *ss = j->ss;
    pthread_mutex_lock(&ss->mu);
    j->batch_state = B_POSTED;
    pthread_mutex_unlock(&ss->mu);
    if (rpc_node_post(ss->svc->node, session_send_batch_cb, j)) return -1;
    pthread_mutex_lock(&ss->mu);
    while (j->batch_state == B_POSTED) pthread_cond_wait(&ss->cv, &ss->mu);
    int rc = j->canceled ? -1 : j->send_rc;
    pthread_mutex_unlock(&ss->mu);
    mbuf_reset(&j->out);
    return rc;
}

static sstmt *stmt_find(ssession *ss, uint64_t id)
{
    for (sstmt *s = ss->stmts; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

static void stmt_drop(ssession *ss, uint64_t id)
{
    for (sstmt **pp = &ss->stmts; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            sstmt *s = *pp;
            *pp = s->next;
            ss->svc->ex->finalize(s->stmt);
            free(s);
            return;
        }
    }
}

static void run_prepare(sjob *j)
{
    ssession *ss = j->ss;
    const session_executor *ex = ss->svc->ex;
    swire_prepare in;
    swire_prepare_reply r = {0};
    sexec_error err = {0};
    void *stmt = NULL;
    if (swire_prepare_decode(j->payload, j->len, &in)) {
        j->code = MERR_CORRUPT;
        snprintf(j->msg, sizeof(j->msg), "undecodable prepare request");
        return;
    }
    size_t tail = 0;
    int rc = ex->prepare(ss->ctx, in.sql, strlen(in.sql), &stmt, &tail, &err);
    r.tail = (uint32_t)tail;
    if (rc) {
        r.err = &err;
    } else if (stmt) {
        sstmt *s = calloc(1, sizeof(*s));
        if (!s) {
            ex->finalize(stmt);
            err.code = SEXEC_NOMEM;
            snprintf(err.msg, sizeof(err.msg), "out of memory");
            err.offset = -1;
            r.err = &err;
        } else {
            s->id = ++ss->next_stmt;
            s->stmt = stmt;
            s->next = ss->stmts;
            ss->stmts = s;
            r.stmt_id = s->id;
            r.stmt = stmt;
            r.ex = ex;
        }
    }
    r.txn = ex->txn_state(ss->ctx);
    swire_prepare_free(&in);
    if (swire_prepare_reply_encode(&r, &j->out)) j->code = MERR_NOMEM;
}

/* Runs stmt to completion, streaming rows. Fills res. */
static void too_big(sexec_error *err, swire_exec_result *res)
{
    err->code = SEXEC_TOOBIG;
    snprintf(err->msg, sizeof(err->msg),
             "result row too big to send (larger than the maximum frame)");
    err->offset = -1;
    err->retryable = 0;
    res->err = err;
}

static void exec_stmt(sjob *j, void *stmt, swire_exec_result *res, sexec_error *err)
{
    ssession *ss = j->ss;
    session_service *svc = ss->svc;
    const session_executor *ex = svc->ex;
    swire_batch b;
    swire_batch_init(&b, ex, stmt);
    int first = 1, rc;
    int64_t started = 0; /* when the batch's first row was stepped */
    uint32_t limit = 1;  /* rows in the next batch */
    while (!job_canceled(j)) {
        rc = ex->step(stmt, err);
        if (rc == SEXEC_ROW) {
            if ((rc = swire_batch_add_row(&b))) goto oom;
            res->rows++;
            int64_t now = mtime_mono_ns();
            if (b.nrows == 1) started = now;
            if (b.nrows >= limit || b.bytes >= svc->cfg.batch_bytes ||
                now - started >= SESSION_BATCH_LINGER_NS) {
                /* Like TCP slow start: the first row goes out alone, so a
                 * query whose next rows are slow in coming still shows it,
                 * then batches double up to batch_rows. */
                limit = limit * 2 < svc->cfg.batch_rows ? limit * 2 : svc->cfg.batch_rows;
                if (swire_batch_encode(&b, first, &j->out)) goto oom;
                swire_batch_reset(&b);
                first = 0;
                int sr = worker_send_batch(j);
                if (sr == MERR_TOOBIG) too_big(err, res);
                if (sr) break;
            }
            continue;
        }
        /* Done or failed: the rows before the end go out first, as SQLite
         * hands them out before reporting an error. */
        if (b.nrows) {
            if (swire_batch_encode(&b, first, &j->out)) goto oom;
            first = 0;
            if (worker_send_batch(j) == MERR_TOOBIG && rc == SEXEC_DONE) {
                too_big(err, res);
                break;
            }
        }
        if (rc == SEXEC_DONE)
            res->rows_affected = ex->changes(ss->ctx);
        else
            res->err = err;
        break;
    }
    if (job_canceled(j) && !res->err) {
        err->code = SEXEC_INTERRUPT;
        err->offset = -1;
        res->err = err;
    }
    /* An interrupt past the job's deadline is its timeout, whichever copy
     * of the deadline fired (the executor's may not have been set yet for
     * a session's first statement). */
    if (res->err == err && err->code == SEXEC_INTERRUPT)
        snprintf(err->msg, sizeof(err->msg), "%s",
                 sexec_past_deadline(j->deadline_us) ? "statement timeout exceeded"
                                                     : "interrupted");
    res->columns_stmt = first ? stmt : NULL;
    session_stat_add(svc, &svc->st.rows_sent, (int64_t)res->rows);
    swire_batch_free(&b);
    ex->reset(stmt);
    return;
oom:
    swire_batch_free(&b);
    err->code = SEXEC_NOMEM;
    snprintf(err->msg, sizeof(err->msg), "out of memory");
    err->offset = -1;
    res->err = err;
    ex->reset(stmt);
}

static void run_exec(sjob *j)
{
    ssession *ss = j->ss;
    const session_executor *ex = ss->svc->ex;
    swire_exec in;
    swire_exec_result res = {0};
    sexec_error err = {.offset = -1};
    void *adhoc = NULL, *stmt = NULL;
    session_stat_add(ss->svc, &ss->svc->st.execs, 1);
    if (swire_exec_decode(j->payload, j->len, &in)) {
        j->code = MERR_CORRUPT;
        snprintf(j->msg, sizeof(j->msg), "undecodable exec request");
        return;
    }
    res.ex = ex;
    if (in.stmt_id) {
        sstmt *s = stmt_find(ss, in.stmt_id);
        if (!s) {
            err.code = SEXEC_MISUSE;
            snprintf(err.msg, sizeof(err.msg), "unknown prepared statement %llu",
                     (unsigned long long)in.stmt_id);
            res.err = &err;
            goto out;
        }
        stmt = s->stmt;
    } else {
        size_t tail = 0;
        if (ex->prepare(ss->ctx, in.sql, strlen(in.sql), &adhoc, &tail, &err)) {
            res.err = &err;
            goto out;
        }
        res.tail = (uint32_t)tail;
        stmt = adhoc;
        if (!stmt) goto out; /* only blanks or comments */
    }
    ex->reset(stmt);
    for (size_t i = 0; i < in.nparams; i++) {
        if (ex->bind(stmt, (int)i + 1, &in.params[i], &err)) {
            res.err = &err;
            goto out;
        }
    }
    exec_stmt(j, stmt, &res, &err);
out:
    res.txn = ex->txn_state(ss->ctx);
    if (swire_exec_result_encode(&res, &j->out)) j->code = MERR_NOMEM;
    if (adhoc) ex->finalize(adhoc);
    swire_exec_free(&in);
}

static void run_simple(sjob *j)
{
    ssession *ss = j->ss;
    const session_executor *ex = ss->svc->ex;
    sexec_error err = {.offset = -1};
    int failed = 0;
    if (j->kind == J_CLOSE_STMT) {
        uint64_t id;
        if (swire_close_stmt_decode(j->payload, j->len, &id)) goto bad;
        stmt_drop(ss, id);
    } else if (j->kind == J_SET) {
        session_settings st;
        if (swire_set_decode(j->payload, j->len, &st)) goto bad;
        failed = ex->set(ss->ctx, &st, &err) != 0;
    }
    if (swire_status_encode(failed ? &err : NULL, ss->ctx ? ex->txn_state(ss->ctx) : 0, &j->out))
        j->code = MERR_NOMEM;
    return;
bad:
    j->code = MERR_CORRUPT;
    snprintf(j->msg, sizeof(j->msg), "undecodable request");
}

static void session_free_worker_side(ssession *ss)
{
    session_service *svc = ss->svc;
    while (ss->stmts) stmt_drop(ss, ss->stmts->id);
    pthread_mutex_lock(&ss->mu);
    ss->ctx_ready = 0;
    pthread_mutex_unlock(&ss->mu);
    if (ss->ctx) svc->ex->close(ss->ctx);
    free(ss->scram);
    pthread_mutex_destroy(&ss->mu);
    pthread_cond_destroy(&ss->cv);
    free(ss);
    pthread_mutex_lock(&svc->mu);
    svc->workers--;
    svc->st.sessions_open--;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
}

void *session_worker_main(void *arg)
{
    ssession *ss = arg;
    for (;;) {
        pthread_mutex_lock(&ss->mu);
        while (!ss->head) pthread_cond_wait(&ss->cv, &ss->mu);
        sjob *j = ss->head;
        ss->head = j->next;
        if (!ss->head) ss->tail = NULL;
        /* A cancel meant for the previous job that landed after it ended
         * must not stop this one (its own cancel comes after this line). */
        if (ss->ctx_ready) ss->svc->ex->cancel(ss->ctx, 0);
        ss->running = j;
        pthread_mutex_unlock(&ss->mu);
        session_stat_add(ss->svc, &ss->svc->st.jobs_running, 1);
        int kind = j->kind;
        /* Every job runs under its caller's deadline (statement_timeout),
         * never under the previous job's. */
        const session_executor *ex = ss->svc->ex;
        if (ex->set_deadline && ss->ctx) ex->set_deadline(ss->ctx, j->deadline_us);
        switch (kind) {
        case J_PREPARE: run_prepare(j); break;
        case J_EXEC: run_exec(j); break;
        case J_AUTH: session_run_auth(j); break;
        default: run_simple(j); break;
        }
        pthread_mutex_lock(&ss->mu);
        ss->running = NULL;
        pthread_mutex_unlock(&ss->mu);
        session_stat_add(ss->svc, &ss->svc->st.jobs_running, -1);
        /* The reply goes out on the loop; if the node is stopping, nobody
         * is left to answer (rpc ends the call with MERR_CLOSED). */
        if (rpc_node_post(ss->svc->node, session_finish_cb, j)) session_job_free(j);
        if (kind == J_CLOSE) break;
    }
    session_free_worker_side(ss);
    return NULL;
}
