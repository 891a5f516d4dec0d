/* The server side of the session protocol: rpc handlers on the loop thread,
 * one worker thread per session running its executor (threading and flow
 * control: session_service.h; wire: proto/session.proto, docs/client.md).
 *
 * A request's life: handler (loop) copies the payload into a job and queues
 * it on the session -> worker runs it, encoding the reply into the job ->
 * rpc_node_post(finish) -> the loop replies and frees the job. Streamed rows
 * take a detour per batch: worker encodes -> post(send_batch) -> the loop
 * sends or, out of credit, waits for on_writable -> signals the worker. */
#include "server/session_service.h"
#include "server/session_wire.h"

#include "common/log.h"
#include "common/mtime.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "session"
/* A batch's first row waits at most this long for company (checked when the
 * next row comes). */
#define SESSION_BATCH_LINGER_NS (50 * MTIME_MS)

enum { J_PREPARE, J_EXEC, J_CLOSE_STMT, J_SET, J_CLOSE };
enum { B_NONE, B_POSTED, B_SENT };

typedef struct ssession ssession;

typedef struct sjob {
    struct sjob *next;
    int kind;
    ssession *ss;
    rpc_req *req; /* NULL for service-initiated closes */
    uint8_t *payload;
    size_t len;
    uint64_t seq;
    int canceled;    /* guarded by ss->mu */
    int batch_state; /* guarded by ss->mu */
    int waiting;     /* loop thread: counted in batches_waiting */
    mbuf out;        /* batch, then reply payload */
    int code;        /* rpc-level error (MERR_*) */
    char msg[128];
} sjob;

typedef struct sstmt {
    struct sstmt *next;
    uint64_t id;
    void *stmt;
} sstmt;

struct ssession {
    session_service *svc;
    ssession *next; /* service table (loop thread) */
    uint64_t id;
    void *ctx; /* executor context (worker) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sjob *head, *tail;    /* queue (mu) */
    uint64_t cancel_upto; /* mu */
    int ctx_ready;        /* mu: cancel may touch ctx */
    sjob *running;        /* mu: the job the worker runs now */
    sstmt *stmts;         /* worker */
    uint64_t next_stmt;
    int64_t last_used_ns; /* loop */
};

struct session_service {
    rpc_node *node;
    const session_executor *ex;
    session_service_config cfg;
    ssession *sessions; /* loop thread */
    uint32_t nsessions; /* loop thread: linked sessions (the limit counts these) */
    uint64_t next_id;
    int closed;
    pthread_mutex_t mu; /* stats and the live-worker count */
    pthread_cond_t cv;
    int workers;
    session_service_stats st;
};

static const char *methods[] = {"session.open",       "session.prepare", "session.exec",
                                "session.close_stmt", "session.cancel",  "session.set",
                                "session.close"};

void session_service_config_defaults(session_service_config *c)
{
    memset(c, 0, sizeof(*c));
    c->cluster_id = "";
    c->batch_rows = 256;
    c->batch_bytes = 256 * 1024;
    c->idle_timeout_ns = 3600 * MTIME_S;
    c->max_sessions = 1024;
}

static void stat_add(session_service *s, uint64_t *field, int64_t d)
{
    pthread_mutex_lock(&s->mu);
    *field += (uint64_t)d;
    pthread_mutex_unlock(&s->mu);
}

void session_service_stats_get(session_service *s, session_service_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

static void job_free(sjob *j)
{
    free(j->payload);
    mbuf_free(&j->out);
    free(j);
}

/* ---- loop side: replies and batches ---- */

static void finish_cb(void *arg)
{
    sjob *j = arg;
    if (j->req) {
        if (j->code)
            rpc_reply(j->req, j->code, j->msg, NULL, 0);
        else
            rpc_reply(j->req, 0, NULL, j->out.data, j->out.len);
    }
    job_free(j);
}

static void batch_signal(sjob *j, int canceled)
{
    pthread_mutex_lock(&j->ss->mu);
    j->batch_state = B_SENT;
    if (canceled) j->canceled = 1;
    pthread_cond_broadcast(&j->ss->cv);
    pthread_mutex_unlock(&j->ss->mu);
}

static void set_waiting(sjob *j, int w)
{
    if (j->waiting == w) return;
    j->waiting = w;
    stat_add(j->ss->svc, &j->ss->svc->st.batches_waiting, w ? 1 : -1);
}

static void try_send_batch(sjob *j)
{
    pthread_mutex_lock(&j->ss->mu);
    int pending = j->batch_state == B_POSTED;
    pthread_mutex_unlock(&j->ss->mu);
    if (!pending) return;
    int rc = rpc_stream_send(j->req, j->out.data, j->out.len);
    if (rc == MERR_BUSY && !j->req->canceled) {
        set_waiting(j, 1);
        return; /* on_writable calls us again */
    }
    set_waiting(j, 0);
    if (!rc) stat_add(j->ss->svc, &j->ss->svc->st.batches_sent, 1);
    batch_signal(j, rc != 0);
}

static void on_writable(void *arg, rpc_req *req)
{
    try_send_batch(arg);
}

static void send_batch_cb(void *arg)
{
    try_send_batch(arg);
}

static void on_req_cancel(void *arg, rpc_req *req)
{
    sjob *j = arg;
    ssession *ss = j->ss;
    set_waiting(j, 0);
    pthread_mutex_lock(&ss->mu);
    j->canceled = 1;
    j->batch_state = B_SENT;
    /* Interrupt only this job: another one may be running. */
    if (ss->ctx_ready && ss->running == j) ss->svc->ex->cancel(ss->ctx);
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
}

/* ---- worker side ---- */

static int job_canceled(sjob *j)
{
    pthread_mutex_lock(&j->ss->mu);
    int c = j->canceled || (j->kind == J_EXEC && j->seq <= j->ss->cancel_upto);
    pthread_mutex_unlock(&j->ss->mu);
    return c;
}

/* Hands the encoded batch in j->out to the loop and waits until the stream
 * took it. Returns 0, or -1 when the caller is gone. */
static int worker_send_batch(sjob *j)
{
    ssession *ss = j->ss;
    pthread_mutex_lock(&ss->mu);
    j->batch_state = B_POSTED;
    pthread_mutex_unlock(&ss->mu);
    if (rpc_node_post(ss->svc->node, send_batch_cb, j)) return -1;
    pthread_mutex_lock(&ss->mu);
    while (j->batch_state == B_POSTED) pthread_cond_wait(&ss->cv, &ss->mu);
    int gone = j->canceled;
    pthread_mutex_unlock(&ss->mu);
    mbuf_reset(&j->out);
    return gone ? -1 : 0;
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
                if (worker_send_batch(j)) break;
            }
            continue;
        }
        /* Done or failed: the rows before the end go out first, as SQLite
         * hands them out before reporting an error. */
        if (b.nrows) {
            if (swire_batch_encode(&b, first, &j->out)) goto oom;
            first = 0;
            worker_send_batch(j);
        }
        if (rc == SEXEC_DONE)
            res->rows_affected = ex->changes(ss->ctx);
        else
            res->err = err;
        break;
    }
    if (job_canceled(j) && !res->err) {
        err->code = SEXEC_INTERRUPT;
        snprintf(err->msg, sizeof(err->msg), "interrupted");
        err->offset = -1;
        res->err = err;
    }
    res->columns_stmt = first ? stmt : NULL;
    stat_add(svc, &svc->st.rows_sent, (int64_t)res->rows);
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
    stat_add(ss->svc, &ss->svc->st.execs, 1);
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
    pthread_mutex_destroy(&ss->mu);
    pthread_cond_destroy(&ss->cv);
    free(ss);
    pthread_mutex_lock(&svc->mu);
    svc->workers--;
    svc->st.sessions_open--;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
}

static void *worker_main(void *arg)
{
    ssession *ss = arg;
    for (;;) {
        pthread_mutex_lock(&ss->mu);
        while (!ss->head) pthread_cond_wait(&ss->cv, &ss->mu);
        sjob *j = ss->head;
        ss->head = j->next;
        if (!ss->head) ss->tail = NULL;
        ss->running = j;
        pthread_mutex_unlock(&ss->mu);
        int kind = j->kind;
        switch (kind) {
        case J_PREPARE: run_prepare(j); break;
        case J_EXEC: run_exec(j); break;
        default: run_simple(j); break;
        }
        pthread_mutex_lock(&ss->mu);
        ss->running = NULL;
        pthread_mutex_unlock(&ss->mu);
        /* The reply goes out on the loop; if the node is stopping, nobody
         * is left to answer (rpc ends the call with MERR_CLOSED). */
        if (rpc_node_post(ss->svc->node, finish_cb, j)) job_free(j);
        if (kind == J_CLOSE) break;
    }
    session_free_worker_side(ss);
    return NULL;
}

static void enqueue(ssession *ss, sjob *j)
{
    pthread_mutex_lock(&ss->mu);
    if (ss->tail)
        ss->tail->next = j;
    else
        ss->head = j;
    ss->tail = j;
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
}

/* ---- handlers (loop thread) ---- */

static ssession *find_session(session_service *svc, uint64_t id)
{
    for (ssession *s = svc->sessions; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

static void unlink_session(session_service *svc, ssession *ss)
{
    for (ssession **pp = &svc->sessions; *pp; pp = &(*pp)->next)
        if (*pp == ss) {
            *pp = ss->next;
            svc->nsessions--;
            return;
        }
}

static sjob *job_new(ssession *ss, int kind, rpc_req *req)
{
    sjob *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->kind = kind;
    j->ss = ss;
    j->req = req;
    if (req && req->len) {
        j->payload = malloc(req->len);
        if (!j->payload) {
            free(j);
            return NULL;
        }
        memcpy(j->payload, req->payload, req->len);
        j->len = req->len;
    }
    return j;
}

static void close_session(session_service *svc, ssession *ss, rpc_req *req)
{
    unlink_session(svc, ss);
    pthread_mutex_lock(&ss->mu);
    ss->cancel_upto = UINT64_MAX;
    if (ss->ctx_ready) svc->ex->cancel(ss->ctx);
    if (ss->running) {
        /* A worker waiting for stream credit must not wait any longer. */
        ss->running->canceled = 1;
        ss->running->batch_state = B_SENT;
        pthread_cond_broadcast(&ss->cv);
    }
    pthread_mutex_unlock(&ss->mu);
    sjob *j = job_new(ss, J_CLOSE, req);
    if (!j) {
        /* Cannot even queue the close: leave the session to its worker,
         * which exits on the next close. Out of memory is not recoverable
         * here; answer the caller at least. */
        if (req) rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    enqueue(ss, j);
}

/* Sessions whose client vanished without closing (crash, network loss) are
 * reaped when a new one opens: no timer needed, and idle ones cost nothing
 * but memory meanwhile. */
static void reap_idle(session_service *svc, int64_t now)
{
    ssession *s = svc->sessions;
    while (s) {
        ssession *next = s->next;
        pthread_mutex_lock(&s->mu);
        int idle = !s->head && !s->running; /* a long statement is not idle */
        pthread_mutex_unlock(&s->mu);
        if (idle && now - s->last_used_ns > svc->cfg.idle_timeout_ns) {
            MLOG_I(MOD, "reaping idle session", "session=%llu", (unsigned long long)s->id);
            close_session(svc, s, NULL);
        }
        s = next;
    }
}

static void executor_open(ssession *ss, const swire_open *in, sexec_error *err, int *rc)
{
    *rc = ss->svc->ex->open(ss->svc->ex->arg, in->user, &in->settings, &ss->ctx, err);
}

static void h_open(void *arg, rpc_req *req)
{
    session_service *svc = arg;
    swire_open in;
    sexec_error err = {.offset = -1};
    mbuf out = MBUF_INIT;
    if (swire_open_decode(req->payload, req->len, &in)) {
        rpc_reply(req, MERR_CORRUPT, "undecodable session open request", NULL, 0);
        return;
    }
    reap_idle(svc, mtime_mono_ns());
    ssession *ss = NULL;
    int rc = 0;
    if (in.protocol_version != SESSION_PROTOCOL_VERSION) {
        err.code = SEXEC_ERROR;
        snprintf(err.msg, sizeof(err.msg),
                 "session protocol version %u not supported (this server speaks %u)",
                 in.protocol_version, SESSION_PROTOCOL_VERSION);
    } else if (in.cluster_id[0] && svc->cfg.cluster_id[0] &&
               strcmp(in.cluster_id, svc->cfg.cluster_id)) {
        err.code = SEXEC_ERROR;
        snprintf(err.msg, sizeof(err.msg),
                 "cluster id mismatch: asked for '%.100s', this is '%.100s'", in.cluster_id,
                 svc->cfg.cluster_id);
    } else if (svc->nsessions >= svc->cfg.max_sessions) {
        err.code = SEXEC_BUSY;
        err.retryable = 1;
        snprintf(err.msg, sizeof(err.msg), "too many sessions (%u)", svc->cfg.max_sessions);
    } else if (!(ss = calloc(1, sizeof(*ss)))) {
        rc = MERR_NOMEM;
    } else {
        /* The executor opens on the loop: open is cheap for every executor
         * we have (no I/O beyond creating a handle), and the session must
         * exist before we can answer with its id. */
        ss->svc = svc;
        pthread_mutex_init(&ss->mu, NULL);
        pthread_cond_init(&ss->cv, NULL);
        executor_open(ss, &in, &err, &rc);
        if (!rc && pthread_create(&ss->thread, NULL, worker_main, ss) == 0) {
            pthread_detach(ss->thread);
            ss->ctx_ready = 1;
            ss->id = ++svc->next_id;
            ss->last_used_ns = mtime_mono_ns();
            ss->next = svc->sessions;
            svc->sessions = ss;
            svc->nsessions++;
            pthread_mutex_lock(&svc->mu);
            svc->workers++;
            svc->st.sessions_open++;
            svc->st.sessions_total++;
            pthread_mutex_unlock(&svc->mu);
            MLOG_D(MOD, "session opened", "session=%llu user=%s", (unsigned long long)ss->id,
                   in.user);
        } else {
            if (!rc) {
                svc->ex->close(ss->ctx);
                err.code = SEXEC_NOMEM;
                snprintf(err.msg, sizeof(err.msg), "cannot start a session thread");
            }
            pthread_mutex_destroy(&ss->mu);
            pthread_cond_destroy(&ss->cv);
            free(ss);
            ss = NULL;
            rc = 0;
        }
    }
    swire_open_free(&in);
    if (rc) {
        rpc_reply(req, rc, "out of memory", NULL, 0);
        return;
    }
    if (swire_open_reply_encode(ss ? ss->id : 0, svc->cfg.cluster_id, svc->ex->name,
                                ss ? NULL : &err, &out)) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    rpc_reply(req, 0, NULL, out.data, out.len);
    mbuf_free(&out);
}

static ssession *req_session(session_service *svc, rpc_req *req, uint64_t *seq)
{
    uint64_t id = 0;
    if (swire_peek_session(req->payload, req->len, &id, seq)) {
        rpc_reply(req, MERR_CORRUPT, "undecodable session request", NULL, 0);
        return NULL;
    }
    ssession *ss = find_session(svc, id);
    if (!ss) {
        rpc_reply(req, MERR_NOTFOUND, "no such session (closed, expired or another server's)", NULL,
                  0);
        return NULL;
    }
    ss->last_used_ns = mtime_mono_ns();
    return ss;
}

static void h_queued(session_service *svc, rpc_req *req, int kind)
{
    uint64_t seq = 0;
    ssession *ss = req_session(svc, req, &seq);
    if (!ss) return;
    if (kind == J_EXEC && !req->stream) {
        rpc_reply(req, MERR_INVALID, "session.exec must be called as a stream", NULL, 0);
        return;
    }
    if (kind == J_CLOSE) {
        close_session(svc, ss, req);
        return;
    }
    sjob *j = job_new(ss, kind, req);
    if (!j) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    j->seq = seq;
    if (kind == J_EXEC) {
        rpc_req_on_cancel(req, on_req_cancel, j);
        rpc_stream_on_writable(req, on_writable, j);
    }
    enqueue(ss, j);
}

static void h_prepare(void *arg, rpc_req *req)
{
    h_queued(arg, req, J_PREPARE);
}
static void h_exec(void *arg, rpc_req *req)
{
    h_queued(arg, req, J_EXEC);
}
static void h_close_stmt(void *arg, rpc_req *req)
{
    h_queued(arg, req, J_CLOSE_STMT);
}
static void h_set(void *arg, rpc_req *req)
{
    h_queued(arg, req, J_SET);
}
static void h_close(void *arg, rpc_req *req)
{
    h_queued(arg, req, J_CLOSE);
}

static void h_cancel(void *arg, rpc_req *req)
{
    session_service *svc = arg;
    uint64_t seq = 0;
    ssession *ss = req_session(svc, req, &seq);
    if (!ss) return;
    pthread_mutex_lock(&ss->mu);
    if (seq > ss->cancel_upto) ss->cancel_upto = seq;
    sjob *r = ss->running;
    if (ss->ctx_ready && r && r->kind == J_EXEC && r->seq <= seq) svc->ex->cancel(ss->ctx);
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    stat_add(svc, &svc->st.cancels, 1);
    mbuf out = MBUF_INIT;
    if (swire_status_encode(NULL, SEXEC_TXN_IDLE, &out)) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    rpc_reply(req, 0, NULL, out.data, out.len);
    mbuf_free(&out);
}

static void h_closed(void *arg, rpc_req *req)
{
    (void)arg;
    if (!req->oneway) rpc_reply(req, MERR_CLOSED, "session service is shutting down", NULL, 0);
}

typedef struct reg_ctx {
    session_service *svc;
    int rc;
} reg_ctx;

static void do_register(void *arg)
{
    reg_ctx *r = arg;
    rpc_handler_fn fns[] = {h_open, h_prepare, h_exec, h_close_stmt, h_cancel, h_set, h_close};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && !r->rc; i++)
        r->rc = rpc_node_handle(r->svc->node, methods[i], fns[i], r->svc);
}

int session_service_register(rpc_node *n, const session_executor *exec,
                             const session_service_config *cfg, session_service **out, merr *e)
{
    session_service *svc = calloc(1, sizeof(*svc));
    if (!svc) return merr_set(e, MERR_NOMEM, "out of memory");
    svc->node = n;
    svc->ex = exec;
    if (cfg)
        svc->cfg = *cfg;
    else
        session_service_config_defaults(&svc->cfg);
    if (!svc->cfg.cluster_id) svc->cfg.cluster_id = "";
    if (!svc->cfg.batch_rows) svc->cfg.batch_rows = 256;
    if (!svc->cfg.batch_bytes) svc->cfg.batch_bytes = 256 * 1024;
    pthread_mutex_init(&svc->mu, NULL);
    pthread_cond_init(&svc->cv, NULL);
    reg_ctx r = {svc, 0};
    /* Callable from the loop thread (a node wiring its services) or from
     * another thread (tests, before clients connect). */
    int rc = rpc_node_run_sync(n, do_register, &r);
    if (rc == MERR_INVALID) {
        do_register(&r);
        rc = 0;
    }
    if (rc || r.rc) {
        pthread_mutex_destroy(&svc->mu);
        pthread_cond_destroy(&svc->cv);
        free(svc);
        return merr_set(e, rc ? rc : r.rc, "register session methods: %s",
                        merr_str(rc ? rc : r.rc));
    }
    *out = svc;
    return 0;
}

static void do_shutdown(void *arg)
{
    session_service *svc = arg;
    svc->closed = 1;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        rpc_node_handle(svc->node, methods[i], h_closed, NULL);
    while (svc->sessions) close_session(svc, svc->sessions, NULL);
}

void session_service_free(session_service *svc)
{
    if (!svc) return;
    rpc_node_run_sync(svc->node, do_shutdown, svc);
    pthread_mutex_lock(&svc->mu);
    while (svc->workers > 0) pthread_cond_wait(&svc->cv, &svc->mu);
    pthread_mutex_unlock(&svc->mu);
    pthread_mutex_destroy(&svc->mu);
    pthread_cond_destroy(&svc->cv);
    free(svc);
}
