/* rpc calls: outgoing requests (ids, deadlines, cancellation, streamed
 * replies with credit) and incoming requests (method dispatch, replies,
 * stream sending). Runs on the loop thread only.
 *
 * Call lifecycle: rpc_node_call() queues a REQUEST and registers the call
 * (hash by id, the connection's list, the deadline heap). Exactly one of
 * RESPONSE / STREAM_END, deadline, cancel or connection loss ends it, and
 * the reply callback runs once, after the call is unregistered (so the
 * callback may start new calls). A late RESPONSE for a finished call is
 * ignored. */
#include "rpc/internal.h"
#include "common/log.h"
#include "common/mtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- outgoing calls ---- */

static rpc_call *call_find(rpc_node *n, uint64_t id)
{
    for (rpc_call *c = n->buckets[id & (RPC_CALL_BUCKETS - 1)]; c; c = c->hnext)
        if (c->id == id) return c;
    return NULL;
}

static void call_release(rpc_node *n, rpc_call *call)
{
    rpc_call **pp = &n->buckets[call->id & (RPC_CALL_BUCKETS - 1)];
    while (*pp && *pp != call) pp = &(*pp)->hnext;
    if (*pp) *pp = call->hnext;
    rpc_conn *c = call->conn;
    if (call->cprev)
        call->cprev->cnext = call->cnext;
    else if (c && c->calls == call)
        c->calls = call->cnext;
    if (call->cnext) call->cnext->cprev = call->cprev;
    rpc_heap_remove(&n->deadlines, &call->hi);
    memset(call, 0, sizeof(*call));
    call->hnext = n->free_calls;
    n->free_calls = call;
}

static void call_finish(rpc_node *n, rpc_call *call, int code, const char *msg,
                        const uint8_t *payload, size_t len)
{
    rpc_reply_fn cb = call->cb;
    void *arg = call->arg;
    if (code == 0)
        n->m.calls_ok++;
    else
        n->m.calls_failed++;
    call_release(n, call);
    cb(arg, code, code && (!msg || !msg[0]) ? merr_str(code) : msg, payload, len);
}

static void arm_deadline_timer(rpc_node *n)
{
    rpc_heap_item *top = rpc_heap_top(&n->deadlines);
    if (!top) {
        uv_timer_stop(&n->deadline_timer);
        return;
    }
    int64_t wait = top->at - mtime_mono_ns();
    uv_timer_start(&n->deadline_timer, call_deadline_timer_cb,
                   wait > 0 ? (uint64_t)((wait + 999999) / 1000000) : 0, 0);
}

static void send_cancel(rpc_call *call)
{
    if (!call->conn || call->conn->state != CONN_READY) return;
    rpc_env env = {.kind = RPC_KIND_CANCEL, .id = call->id};
    (void)conn_send(call->conn, &env); /* best effort: the server may be gone */
}

void call_deadline_timer_cb(uv_timer_t *t)
{
    rpc_node *n = t->data;
    int64_t now = mtime_mono_ns();
    rpc_heap_item *top;
    while ((top = rpc_heap_top(&n->deadlines)) && top->at <= now) {
        rpc_call *call = (rpc_call *)top;
        n->m.calls_timed_out++;
        send_cancel(call);
        call_finish(n, call, MERR_TIMEOUT, "deadline exceeded", NULL, 0);
    }
    arm_deadline_timer(n);
}

static int start_call(rpc_node *n, uint64_t to, const char *method, const void *payload, size_t len,
                      int64_t deadline_us, uint32_t window, rpc_item_fn item, rpc_reply_fn cb,
                      void *arg, uint64_t *call_id)
{
    if (n->stopping) return MERR_CLOSED;
    if (!method || !method[0] || !cb) return MERR_INVALID;
    int rc = 0;
    rpc_conn *c = conn_for_peer(n, to, &rc);
    if (!c) return rc;
    rpc_call *call = n->free_calls;
    if (call)
        n->free_calls = call->hnext;
    else if (!(call = calloc(1, sizeof(*call))))
        return MERR_NOMEM;
    memset(call, 0, sizeof(*call));
    call->hi.idx = SIZE_MAX;
    call->id = n->next_call_id++;
    rpc_env env = {.kind = RPC_KIND_REQUEST,
                   .id = call->id,
                   .method = method,
                   .deadline_us = deadline_us,
                   .payload = payload,
                   .payload_len = len,
                   .credit = window};
    rc = conn_send(c, &env);
    if (rc) {
        call->hnext = n->free_calls;
        n->free_calls = call;
        return rc;
    }
    call->conn = c;
    call->cb = cb;
    call->item = item;
    call->arg = arg;
    call->stream = window > 0;
    call->window = window;
    call->cnext = c->calls;
    if (c->calls) c->calls->cprev = call;
    c->calls = call;
    rpc_call **b = &n->buckets[call->id & (RPC_CALL_BUCKETS - 1)];
    call->hnext = *b;
    *b = call;
    if (deadline_us > 0) {
        /* Absolute wall-clock deadline -> monotonic, clamped so a far-future
         * deadline cannot overflow (a year is "never" for a call). */
        int64_t left_us = deadline_us - now_real_us();
        if (left_us > 365LL * 24 * 3600 * 1000000) left_us = 365LL * 24 * 3600 * 1000000;
        call->hi.at = mtime_mono_ns() + left_us * 1000;
        if (rpc_heap_push(&n->deadlines, &call->hi) == 0 && call->hi.idx == 0)
            arm_deadline_timer(n);
    }
    n->m.calls_started++;
    if (call_id) *call_id = call->id;
    return 0;
}

int rpc_node_call(rpc_node *n, uint64_t to, const char *method, const void *payload, size_t len,
                  int64_t deadline_us, rpc_reply_fn cb, void *arg, uint64_t *call_id)
{
    return start_call(n, to, method, payload, len, deadline_us, 0, NULL, cb, arg, call_id);
}

int rpc_node_call_stream(rpc_node *n, uint64_t to, const char *method, const void *payload,
                         size_t len, int64_t deadline_us, uint32_t window, rpc_item_fn item,
                         rpc_reply_fn end, void *arg, uint64_t *call_id)
{
    if (!item) return MERR_INVALID;
    return start_call(n, to, method, payload, len, deadline_us,
                      window ? window : n->cfg.stream_window, item, end, arg, call_id);
}

int rpc_node_oneway(rpc_node *n, uint64_t to, const char *method, const void *payload, size_t len)
{
    if (n->stopping) return MERR_CLOSED;
    if (!method || !method[0]) return MERR_INVALID;
    int rc = 0;
    rpc_conn *c = conn_for_peer(n, to, &rc);
    if (!c) return rc;
    rpc_env env = {
        .kind = RPC_KIND_ONEWAY, .method = method, .payload = payload, .payload_len = len};
    return conn_send(c, &env);
}

int rpc_node_cancel(rpc_node *n, uint64_t call_id)
{
    rpc_call *call = call_find(n, call_id);
    if (!call) return MERR_NOTFOUND;
    n->m.calls_canceled++;
    send_cancel(call);
    call_finish(n, call, MERR_CANCELED, "canceled by the caller", NULL, 0);
    return 0;
}

static void send_credit(rpc_call *call, uint32_t items)
{
    if (!items || !call->conn || call->conn->state != CONN_READY) return;
    rpc_env env = {.kind = RPC_KIND_STREAM_CREDIT, .id = call->id, .credit = items};
    (void)conn_send(call->conn, &env);
}

int rpc_node_stream_grant(rpc_node *n, uint64_t call_id, uint32_t items)
{
    rpc_call *call = call_find(n, call_id);
    if (!call || !call->stream) return MERR_NOTFOUND;
    send_credit(call, items);
    return 0;
}

static void on_stream_item(rpc_node *n, rpc_conn *c, const rpc_env *env)
{
    rpc_call *call = call_find(n, env->id);
    if (!call || call->conn != c || !call->stream) return;
    uint64_t id = call->id;
    int consumed = call->item(call->arg, env->payload, env->payload_len);
    call = call_find(n, id); /* the item callback may have canceled it */
    if (!call || !consumed) return;
    /* Credit goes back in batches of half a window: fewer frames, and the
     * sender still never stalls while the reader keeps up. */
    if (++call->ungranted >= (call->window + 1) / 2) {
        send_credit(call, call->ungranted);
        call->ungranted = 0;
    }
}

void call_conn_gone(rpc_conn *c, int code, const char *msg)
{
    rpc_node *n = c->node;
    while (c->calls) call_finish(n, c->calls, code, msg, NULL, 0);
    rpc_sreq *s = c->sreqs;
    c->sreqs = NULL;
    while (s) {
        rpc_sreq *next = s->next;
        s->prev = s->next = NULL;
        s->conn = NULL;
        s->pub.canceled = 1;
        if (s->on_cancel) s->on_cancel(s->c_arg, &s->pub);
        s = next;
    }
}

void call_free_all(rpc_node *n)
{
    while (n->free_calls) {
        rpc_call *c = n->free_calls;
        n->free_calls = c->hnext;
        free(c);
    }
    while (n->free_sreqs) {
        rpc_sreq *s = n->free_sreqs;
        n->free_sreqs = s->free_next;
        free(s);
    }
}

/* ---- incoming requests ---- */

static rpc_sreq *sreq_find(rpc_conn *c, uint64_t id)
{
    for (rpc_sreq *s = c->sreqs; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

static void sreq_release(rpc_node *n, rpc_sreq *s)
{
    if (s->conn) {
        if (s->prev)
            s->prev->next = s->next;
        else
            s->conn->sreqs = s->next;
        if (s->next) s->next->prev = s->prev;
    }
    s->free_next = n->free_sreqs;
    n->free_sreqs = s;
}

static void answer_error(rpc_conn *c, uint64_t id, int code, const char *msg)
{
    rpc_env env = {.kind = RPC_KIND_RESPONSE, .id = id, .error_code = code, .error_msg = msg};
    (void)conn_send(c, &env);
}

static void on_request(rpc_node *n, rpc_conn *c, const rpc_env *env)
{
    int oneway = env->kind == RPC_KIND_ONEWAY;
    const rpc_handler *h = node_find_handler(n, env->method);
    if (!h) {
        n->m.unknown_methods++;
        MLOG_D(MOD, "unknown method", "method=%s from=%llu", env->method,
               (unsigned long long)c->remote_id);
        if (!oneway) {
            char msg[256];
            snprintf(msg, sizeof(msg), "unknown method '%.200s'", env->method);
            answer_error(c, env->id, MERR_UNSUPPORTED, msg);
        }
        return;
    }
    if (c->peer_anon && strncmp(env->method, "session.", 8) != 0) {
        /* Without a certificate a client is nobody until its SQL session
         * authenticates it; nothing else of the node is its business. */
        n->m.anon_refused++;
        if (!oneway)
            answer_error(c, env->id, MERR_INVALID,
                         "permission denied: a connection without a client certificate may only "
                         "open SQL sessions");
        return;
    }
    if (c->peer_verified && !c->peer_is_node && strncmp(env->method, "session.", 8) != 0 &&
        strcmp(c->peer_user, RPC_ADMIN_USER) != 0) {
        /* A SQL user's client certificate: its privileges are SQL's (its
         * session checks its GRANTs). The node's own methods (raw KV,
         * transactions, ranges, placement, the address book) would go
         * around them: only nodes and the operator tools' root reach them. */
        n->m.internal_refused++;
        if (!oneway) {
            char msg[320];
            snprintf(msg, sizeof(msg),
                     "permission denied: '%.120s' is internal to the cluster (nodes and the %s "
                     "user only); user %.64s may open SQL sessions",
                     env->method, RPC_ADMIN_USER, c->peer_user);
            answer_error(c, env->id, MERR_INVALID, msg);
        }
        return;
    }
    if (!oneway && env->deadline_us > 0 && env->deadline_us <= now_real_us()) {
        answer_error(c, env->id, MERR_TIMEOUT, "deadline passed before the request was handled");
        return;
    }
    rpc_sreq *s = n->free_sreqs;
    if (s)
        n->free_sreqs = s->free_next;
    else if (!(s = malloc(sizeof(*s)))) {
        if (!oneway) answer_error(c, env->id, MERR_NOMEM, "server out of memory");
        return;
    }
    memset(s, 0, sizeof(*s));
    s->pub.t = &n->transport;
    s->pub.from = c->remote_id;
    s->pub.peer_user = c->peer_user;
    s->pub.peer_is_node = c->peer_is_node;
    s->pub.peer_verified = c->peer_verified;
    s->pub.peer_anon = c->peer_anon;
    s->pub.peer_addr = c->remote_addr;
    s->pub.method = env->method;
    s->pub.payload = env->payload;
    s->pub.len = env->payload_len;
    s->pub.deadline_us = env->deadline_us;
    s->pub.oneway = oneway;
    s->pub.stream = !oneway && env->credit > 0;
    s->pub.impl = s;
    s->id = env->id;
    s->credit = env->credit;
    if (oneway) {
        h->fn(h->arg, &s->pub);
        sreq_release(n, s);
        return;
    }
    s->conn = c;
    s->next = c->sreqs;
    if (c->sreqs) c->sreqs->prev = s;
    c->sreqs = s;
    h->fn(h->arg, &s->pub);
}

void call_on_frame(rpc_conn *c, const rpc_env *env)
{
    rpc_node *n = c->node;
    rpc_call *call;
    rpc_sreq *s;
    switch (env->kind) {
    case RPC_KIND_REQUEST:
    case RPC_KIND_ONEWAY: on_request(n, c, env); break;
    case RPC_KIND_RESPONSE:
    case RPC_KIND_STREAM_END:
        call = call_find(n, env->id);
        if (call && call->conn == c)
            call_finish(n, call, env->error_code, env->error_msg, env->payload, env->payload_len);
        break;
    case RPC_KIND_STREAM: on_stream_item(n, c, env); break;
    case RPC_KIND_CANCEL:
        s = sreq_find(c, env->id);
        if (s && !s->pub.canceled) {
            s->pub.canceled = 1;
            if (s->on_cancel) s->on_cancel(s->c_arg, &s->pub);
        }
        break;
    case RPC_KIND_STREAM_CREDIT:
        s = sreq_find(c, env->id);
        if (s && !s->pub.canceled) {
            /* Saturate: a peer's credit is its word, not a counter to wrap. */
            s->credit = env->credit > UINT32_MAX - s->credit ? UINT32_MAX : s->credit + env->credit;
            if (s->on_writable) s->on_writable(s->w_arg, &s->pub);
        }
        break;
    default: break;
    }
}

static int uv_reply(rpc_transport *t, rpc_req *req, int code, const char *msg, const void *payload,
                    size_t len)
{
    rpc_node *n = t->impl;
    rpc_sreq *s = req->impl;
    if (req->oneway) return MERR_INVALID; /* released by the dispatcher */
    int rc = 0;
    if (s->conn && !req->canceled) {
        rpc_env env = {.kind = req->stream ? RPC_KIND_STREAM_END : RPC_KIND_RESPONSE,
                       .id = s->id,
                       .error_code = code,
                       .error_msg = msg,
                       .payload = payload,
                       .payload_len = len};
        rc = conn_send(s->conn, &env);
        if (rc == MERR_TOOBIG)
            answer_error(s->conn, s->id, MERR_TOOBIG, "reply exceeds the maximum frame size");
    }
    sreq_release(n, s);
    return rc;
}

static int uv_stream_send(rpc_transport *t, rpc_req *req, const void *payload, size_t len)
{
    (void)t;
    rpc_sreq *s = req->impl;
    if (!req->stream) return MERR_INVALID;
    if (req->canceled || !s->conn) return MERR_CANCELED;
    if (s->credit == 0) {
        s->conn->node->m.stream_blocked++;
        return MERR_BUSY;
    }
    rpc_conn *c = s->conn;
    size_t queued = c->out.len + c->wbuf.len;
    /* An empty queue takes any item, so one bigger than the limit still goes. */
    int rc = queued && queued + len > c->node->cfg.stream_queue_max ? MERR_BUSY : 0;
    if (!rc) {
        rpc_env env = {
            .kind = RPC_KIND_STREAM, .id = s->id, .payload = payload, .payload_len = len};
        rc = conn_send(c, &env);
    }
    if (rc == MERR_BUSY) {
        s->queue_wait = c->stream_waiters = 1;
        c->node->m.stream_queue_waits++;
    }
    if (rc) return rc;
    s->credit--;
    s->conn->node->m.stream_items_out++;
    return 0;
}

void call_conn_drained(rpc_conn *c)
{
    /* One at a time from the list head, rescanning after each: a callback
     * may end requests (the list changes). One that fills the queue again
     * sets stream_waiters, and the rest wait for the next drain. */
    c->stream_waiters = 0;
    for (;;) {
        rpc_sreq *s = c->sreqs;
        while (s && !s->queue_wait) s = s->next;
        if (!s || c->stream_waiters) break;
        s->queue_wait = 0;
        if (s->on_writable && !s->pub.canceled) s->on_writable(s->w_arg, &s->pub);
    }
}

static void uv_on_writable(rpc_transport *t, rpc_req *req, rpc_req_fn fn, void *arg)
{
    (void)t;
    rpc_sreq *s = req->impl;
    s->on_writable = fn;
    s->w_arg = arg;
}

static void uv_on_cancel(rpc_transport *t, rpc_req *req, rpc_req_fn fn, void *arg)
{
    (void)t;
    rpc_sreq *s = req->impl;
    s->on_cancel = fn;
    s->c_arg = arg;
}

/* ---- the transport table (transport.h) ---- */

static int t_oneway(rpc_transport *t, uint64_t to, const char *method, const void *p, size_t n)
{
    return rpc_node_oneway(t->impl, to, method, p, n);
}

static int t_call(rpc_transport *t, uint64_t to, const char *method, const void *p, size_t n,
                  int64_t deadline_us, rpc_reply_fn cb, void *arg, uint64_t *call_id)
{
    return rpc_node_call(t->impl, to, method, p, n, deadline_us, cb, arg, call_id);
}

static int t_cancel(rpc_transport *t, uint64_t call_id)
{
    return rpc_node_cancel(t->impl, call_id);
}

static int t_handle(rpc_transport *t, const char *method, rpc_handler_fn fn, void *arg)
{
    return rpc_node_handle(t->impl, method, fn, arg);
}

static void t_on_peer(rpc_transport *t, rpc_peer_fn fn, void *arg)
{
    rpc_node_on_peer(t->impl, fn, arg);
}

static int t_post(rpc_transport *t, rpc_post_fn fn, void *arg)
{
    return rpc_node_post(t->impl, fn, arg);
}

static int t_call_stream(rpc_transport *t, uint64_t to, const char *method, const void *p, size_t n,
                         int64_t deadline_us, uint32_t window, rpc_item_fn item, rpc_reply_fn end,
                         void *arg, uint64_t *call_id)
{
    return rpc_node_call_stream(t->impl, to, method, p, n, deadline_us, window, item, end, arg,
                                call_id);
}

static int t_stream_grant(rpc_transport *t, uint64_t call_id, uint32_t items)
{
    return rpc_node_stream_grant(t->impl, call_id, items);
}

const rpc_transport_ops rpc_uv_transport_ops = {
    .oneway = t_oneway,
    .call = t_call,
    .cancel = t_cancel,
    .handle = t_handle,
    .reply = uv_reply,
    .on_peer = t_on_peer,
    .post = t_post,
    .call_stream = t_call_stream,
    .stream_grant = t_stream_grant,
    .stream_send = uv_stream_send,
    .on_writable = uv_on_writable,
    .on_cancel = uv_on_cancel,
};
