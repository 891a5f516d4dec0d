/* The server side of the session protocol: rpc handlers on the loop thread,
 * one worker thread per session running its executor (threading and flow
 * control: session_service.h; wire: proto/session.proto, docs/client.md).
 *
 * A request's life: handler (loop) copies the payload into a job and queues
 * it on the session -> worker runs it, encoding the reply into the job ->
 * rpc_node_post(finish) -> the loop replies and frees the job. Streamed rows
 * take a detour per batch: worker encodes -> post(send_batch) -> the loop
 * sends or, out of credit, waits for on_writable -> signals the worker. */
#include "server/session_internal.h"
#include "server/session_wire.h"

#include "common/log.h"
#include "common/mtime.h"

#include <openssl/rand.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "session"

static const char *methods[] = {"session.open",       "session.prepare", "session.exec",
                                "session.close_stmt", "session.cancel",  "session.set",
                                "session.close",      "session.auth"};

void session_service_config_defaults(session_service_config *c)
{
    memset(c, 0, sizeof(*c));
    c->cluster_id = "";
    c->batch_rows = 256;
    c->batch_bytes = 256 * 1024;
    c->idle_timeout_ns = 3600 * MTIME_S;
    c->max_sessions = 1024;
    c->auth_backoff_base_ns = 250 * MTIME_MS;
    c->auth_backoff_max_ns = 30 * MTIME_S;
}

void session_stat_add(session_service *s, uint64_t *field, int64_t d)
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

void session_job_free(sjob *j)
{
    free(j->payload);
    mbuf_free(&j->out);
    free(j);
}

/* ---- loop side: replies and batches ---- */

void session_finish_cb(void *arg)
{
    sjob *j = arg;
    if (j->req) {
        if (j->code)
            rpc_reply(j->req, j->code, j->msg, NULL, 0);
        else
            rpc_reply(j->req, 0, NULL, j->out.data, j->out.len);
    }
    session_job_free(j);
}

static void batch_signal(sjob *j, int rc)
{
    pthread_mutex_lock(&j->ss->mu);
    j->batch_state = B_SENT;
    j->send_rc = rc;
    /* A batch too big for a frame fails the statement, not the call. */
    if (rc && rc != MERR_TOOBIG) j->canceled = 1;
    pthread_cond_broadcast(&j->ss->cv);
    pthread_mutex_unlock(&j->ss->mu);
}

static void set_waiting(sjob *j, int w)
{
    if (j->waiting == w) return;
    j->waiting = w;
    session_stat_add(j->ss->svc, &j->ss->svc->st.batches_waiting, w ? 1 : -1);
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
    if (!rc) session_stat_add(j->ss->svc, &j->ss->svc->st.batches_sent, 1);
    batch_signal(j, rc);
}

static void on_writable(void *arg, rpc_req *req)
{
    try_send_batch(arg);
}

void session_send_batch_cb(void *arg)
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
    if (ss->ctx_ready && ss->running == j) ss->svc->ex->cancel(ss->ctx, 1);
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
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
    if (ss->ctx_ready) svc->ex->cancel(ss->ctx, 1);
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
    *rc = ss->svc->ex->open(ss->svc->ex->arg, ss->user, &in->settings, &ss->ctx, err);
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
        if (session_auth_open(svc, req, in.user, in.auth_method, ss, &err) == 0)
            executor_open(ss, &in, &err, &rc);
        else
            rc = 0, ss->ctx = NULL;
        if (!err.code && !rc && pthread_create(&ss->thread, NULL, session_worker_main, ss) == 0) {
            pthread_detach(ss->thread);
            ss->ctx_ready = 1;
            ss->id = ++svc->next_id;
            if (svc->ex->session_id) svc->ex->session_id(ss->ctx, ss->id);
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
                   ss->user);
        } else {
            if (!rc && !err.code) {
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
    int auth_required = ss && atomic_load(&ss->auth_state) != SA_DONE;
    if (rc) {
        rpc_reply(req, rc, "out of memory", NULL, 0);
        return;
    }
    if (swire_open_reply_encode_auth(ss ? ss->id : 0, svc->cfg.cluster_id, svc->ex->name,
                                     ss ? NULL : &err, auth_required, &out)) {
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
    if (kind != J_AUTH && atomic_load(&ss->auth_state) != SA_DONE) {
        rpc_reply(req, MERR_INVALID, "the session has not logged in (session.auth)", NULL, 0);
        return;
    }
    sjob *j = job_new(ss, kind, req);
    if (!j) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    j->seq = seq;
    j->deadline_us = req->deadline_us;
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
static void h_auth(void *arg, rpc_req *req)
{
    h_queued(arg, req, J_AUTH);
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
    if (ss->ctx_ready && r && r->kind == J_EXEC && r->seq <= seq) svc->ex->cancel(ss->ctx, 1);
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    session_stat_add(svc, &svc->st.cancels, 1);
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
    rpc_handler_fn fns[] = {h_open,   h_prepare, h_exec,  h_close_stmt,
                            h_cancel, h_set,     h_close, h_auth};
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
    if (!svc->cfg.auth_backoff_base_ns) svc->cfg.auth_backoff_base_ns = 250 * MTIME_MS;
    if (!svc->cfg.auth_backoff_max_ns) svc->cfg.auth_backoff_max_ns = 30 * MTIME_S;
    mbackoff_init(&svc->backoff, svc->cfg.auth_backoff_base_ns, svc->cfg.auth_backoff_max_ns);
    if (RAND_bytes(svc->decoy_key, sizeof(svc->decoy_key)) != 1) {
        free(svc);
        return merr_set(e, MERR_INTERNAL, "no randomness for the session service");
    }
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
