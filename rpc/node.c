/* rpc node: the loop thread, the thread-safe post queue, handler and peer
 * registries, fault and metrics entry points, and the timer heap. */
#include "rpc/internal.h"
#include "common/addr.h"
#include "common/log.h"
#include "proto/rpc.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- heap ---- */

static int heap_less(const rpc_heap_item *a, const rpc_heap_item *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_swap(rpc_heap *h, size_t i, size_t j)
{
    rpc_heap_item *t = h->a[i];
    h->a[i] = h->a[j];
    h->a[j] = t;
    h->a[i]->idx = i;
    h->a[j]->idx = j;
}

static void heap_up(rpc_heap *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(h->a[i], h->a[p])) break;
        heap_swap(h, i, p);
        i = p;
    }
}

static void heap_down(rpc_heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && heap_less(h->a[l], h->a[m])) m = l;
        if (r < h->n && heap_less(h->a[r], h->a[m])) m = r;
        if (m == i) break;
        heap_swap(h, i, m);
        i = m;
    }
}

int rpc_heap_push(rpc_heap *h, rpc_heap_item *it)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        rpc_heap_item **na = realloc(h->a, cap * sizeof(*na));
        if (!na) return MERR_NOMEM;
        h->a = na;
        h->cap = cap;
    }
    it->seq = h->seq++;
    it->idx = h->n;
    h->a[h->n++] = it;
    heap_up(h, it->idx);
    return 0;
}

void rpc_heap_remove(rpc_heap *h, rpc_heap_item *it)
{
    size_t i = it->idx;
    if (i == SIZE_MAX || i >= h->n || h->a[i] != it) return;
    it->idx = SIZE_MAX;
    h->n--;
    if (i == h->n) return;
    h->a[i] = h->a[h->n];
    h->a[i]->idx = i;
    heap_down(h, i);
    heap_up(h, i);
}

rpc_heap_item *rpc_heap_top(rpc_heap *h)
{
    return h->n ? h->a[0] : NULL;
}

void rpc_heap_free(rpc_heap *h)
{
    free(h->a);
    memset(h, 0, sizeof(*h));
}

/* ---- addresses ---- */

int rpc_addr_parse(const char *s, struct sockaddr_storage *ss)
{
    /* One parser for every address flag and peer (common/addr.h); port 0 is
     * allowed because listeners use it to pick a free port. */
    return maddr_parse_listen(s, ss, NULL);
}

/* ---- registries ---- */

const rpc_handler *node_find_handler(rpc_node *n, const char *method)
{
    for (size_t i = 0; i < n->nhandlers; i++)
        if (!strcmp(n->handlers[i].method, method)) return &n->handlers[i];
    return NULL;
}

int rpc_node_handle(rpc_node *n, const char *method, rpc_handler_fn fn, void *arg)
{
    if (!method || !method[0] || !fn) return MERR_INVALID;
    for (size_t i = 0; i < n->nhandlers; i++) {
        if (!strcmp(n->handlers[i].method, method)) {
            n->handlers[i].fn = fn;
            n->handlers[i].arg = arg;
            return 0;
        }
    }
    rpc_handler *nh = realloc(n->handlers, (n->nhandlers + 1) * sizeof(*nh));
    if (!nh) return MERR_NOMEM;
    n->handlers = nh;
    char *m = strdup(method);
    if (!m) return MERR_NOMEM;
    n->handlers[n->nhandlers++] = (rpc_handler){m, fn, arg};
    return 0;
}

/* ---- calls to this node's own handlers ---- */

typedef struct local_req {
    rpc_req req;
    rpc_transport t;
    rpc_node *n;
    rpc_reply_fn cb;
    void *arg;
    char method[64];
    size_t len;
    uint8_t payload[];
} local_req;

static int local_reply(rpc_transport *t, rpc_req *req, int code, const char *msg,
                       const void *payload, size_t len)
{
    (void)t;
    local_req *l = (local_req *)req;
    l->cb(l->arg, code, msg, payload, len);
    free(l);
    return 0;
}

/* Nobody cancels a local request: its caller waits for the answer or
 * abandons it (and then ignores it). */
static void local_on_cancel(rpc_transport *t, rpc_req *req, rpc_req_fn fn, void *arg)
{
    (void)t, (void)req, (void)fn, (void)arg;
}

static int local_post(rpc_transport *t, rpc_post_fn fn, void *arg)
{
    return rpc_node_post(((local_req *)t->impl)->n, fn, arg);
}

static const rpc_transport_ops local_ops = {
    .reply = local_reply, .on_cancel = local_on_cancel, .post = local_post};

int rpc_node_call_local(rpc_node *n, const char *method, const void *payload, size_t len,
                        int64_t deadline_us, const char *peer_user, int peer_is_node,
                        rpc_reply_fn cb, void *arg)
{
    const rpc_handler *h = node_find_handler(n, method);
    if (!h) {
        cb(arg, MERR_UNSUPPORTED, "no such method", NULL, 0);
        return 0;
    }
    local_req *l = malloc(sizeof(*l) + (len ? len : 1));
    if (!l) return MERR_NOMEM;
    memset(l, 0, sizeof(*l));
    l->t.ops = &local_ops;
    l->t.impl = l;
    l->n = n, l->cb = cb, l->arg = arg, l->len = len;
    snprintf(l->method, sizeof(l->method), "%s", method);
    if (len) memcpy(l->payload, payload, len);
    l->req.t = &l->t;
    l->req.from = peer_is_node ? n->cfg.node_id : 0;
    l->req.method = l->method;
    l->req.payload = l->payload;
    l->req.len = len;
    l->req.deadline_us = deadline_us;
    l->req.peer_user = peer_user ? peer_user : "";
    l->req.peer_is_node = peer_is_node;
    l->req.peer_verified = 1;
    l->req.peer_addr = "local";
    l->req.impl = l;
    h->fn(h->arg, &l->req);
    return 0;
}

const char *rpc_node_method(rpc_node *n, size_t i)
{
    return i < n->nhandlers ? n->handlers[i].method : NULL;
}

rpc_peer *node_find_peer(rpc_node *n, uint64_t id)
{
    for (rpc_peer *p = n->peers; p; p = p->next)
        if (p->id == id) return p;
    return NULL;
}

static int add_peer(rpc_node *n, uint64_t id, const char *addr, int any_id)
{
    struct sockaddr_storage ss;
    if (id == 0 || rpc_addr_parse(addr, &ss) || strlen(addr) >= sizeof(((rpc_peer *)0)->addr))
        return MERR_INVALID;
    rpc_peer *p = node_find_peer(n, id);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p) return MERR_NOMEM;
        p->node = n;
        p->id = id;
        p->state = PEER_IDLE;
        rpc_backoff_init(&p->backoff, n->cfg.backoff_initial_ns, n->cfg.backoff_max_ns);
        uv_timer_init(&n->loop, &p->timer);
        p->timer.data = p;
        p->next = n->peers;
        n->peers = p;
    }
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->any_id = any_id;
    return 0;
}

int rpc_node_add_peer(rpc_node *n, uint64_t id, const char *addr)
{
    return add_peer(n, id, addr, 0);
}

int rpc_node_add_gateway(rpc_node *n, uint64_t handle, const char *addr)
{
    return add_peer(n, handle, addr, 1);
}

struct uv_loop_s *rpc_node_loop(rpc_node *n)
{
    return &n->loop;
}

int rpc_node_set_identity(rpc_node *n, uint64_t node_id, const char *cluster_id)
{
    if (!cluster_id || strlen(cluster_id) >= sizeof(n->cluster_id)) return MERR_INVALID;
    if (n->cfg.node_id != 0 && n->cfg.node_id != node_id) return MERR_INVALID;
    if (n->cluster_id[0] && strcmp(n->cluster_id, cluster_id) != 0) return MERR_INVALID;
    n->cfg.node_id = node_id;
    snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", cluster_id);
    return 0;
}

int rpc_node_peer_error(rpc_node *n, uint64_t id, merr *out)
{
    rpc_peer *p = node_find_peer(n, id);
    if (!p) return merr_set(out, MERR_NOTFOUND, "unknown peer %llu", (unsigned long long)id);
    *out = p->last_err;
    return out->code;
}

int rpc_node_peer_is_up(rpc_node *n, uint64_t id)
{
    rpc_peer *p = node_find_peer(n, id);
    return p && p->state == PEER_READY;
}

void rpc_node_on_peer(rpc_node *n, rpc_peer_fn fn, void *arg)
{
    n->on_peer = fn;
    n->on_peer_arg = arg;
}

void node_notify_peer(rpc_node *n, uint64_t id, int up)
{
    MLOG_I(MOD, up ? "peer up" : "peer down", "node=%llu peer=%llu",
           (unsigned long long)n->cfg.node_id, (unsigned long long)id);
    if (n->on_peer) n->on_peer(n->on_peer_arg, id, up);
}

double node_jitter(rpc_node *n)
{
    if (n->cfg.jitter) return n->cfg.jitter(n->cfg.jitter_arg);
    return rpc_rng_double(&n->jitter_rng);
}

/* ---- metrics ---- */

rpc_peer_metrics *node_peer_metrics(rpc_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->npms; i++)
        if (n->pms[i]->node_id == id) return n->pms[i];
    rpc_peer_metrics **np = realloc(n->pms, (n->npms + 1) * sizeof(*np));
    if (!np) return NULL;
    n->pms = np;
    rpc_peer_metrics *pm = calloc(1, sizeof(*pm));
    if (!pm) return NULL;
    pm->node_id = id;
    n->pms[n->npms++] = pm;
    return pm;
}

void node_queue_add(rpc_node *n, rpc_conn *c, int64_t delta)
{
    n->m.queue_bytes = (uint64_t)((int64_t)n->m.queue_bytes + delta);
    if (n->m.queue_bytes > n->m.queue_bytes_max) n->m.queue_bytes_max = n->m.queue_bytes;
    if (c->pm) c->pm->queue_bytes = (uint64_t)((int64_t)c->pm->queue_bytes + delta);
}

const rpc_metrics *rpc_node_metrics(rpc_node *n)
{
    rpc_peer_metrics *np = realloc(n->m.peers, (n->npms ? n->npms : 1) * sizeof(*np));
    if (np) {
        n->m.peers = np;
        for (size_t i = 0; i < n->npms; i++) np[i] = *n->pms[i];
        n->m.npeers = n->npms;
    }
    return &n->m;
}

int rpc_metrics_render(rpc_node *n, mbuf *out)
{
    const rpc_metrics *m = rpc_node_metrics(n);
    unsigned long long id = (unsigned long long)n->cfg.node_id;
    int rc = 0;
#define C(name, field, help)                                                                       \
    rc |=                                                                                          \
        mbuf_printf(out,                                                                           \
                    "# HELP meridian_rpc_" name " " help "\n# TYPE meridian_rpc_" name             \
                    " %s\nmeridian_rpc_" name "{node=\"%llu\"} %llu\n",                            \
                    strstr(name, "queue_bytes") || strstr(name, "_inbound") ? "gauge" : "counter", \
                    id, (unsigned long long)m->field)
    C("connections_dialed_total", conns_dialed, "outbound connections opened");
    C("connections_accepted_total", conns_accepted, "inbound connections accepted");
    C("connections_closed_total", conns_closed, "connections closed");
    C("connections_up_total", conns_up, "handshakes completed");
    C("handshakes_refused_total", handshakes_refused, "handshakes refused either way");
    C("handshake_timeouts_total", handshake_timeouts, "connections closed for a slow handshake");
    C("frame_errors_total", frame_errors, "connections closed for a malformed frame");
    C("reconnects_total", reconnects, "redials after backoff");
    C("calls_started_total", calls_started, "calls sent");
    C("calls_ok_total", calls_ok, "calls answered successfully");
    C("calls_failed_total", calls_failed, "calls ended with an error");
    C("calls_timed_out_total", calls_timed_out, "calls past their deadline");
    C("calls_canceled_total", calls_canceled, "calls canceled by the caller");
    C("busy_rejections_total", busy_rejections, "sends refused by a full queue");
    C("unknown_methods_total", unknown_methods, "requests for unregistered methods");
    C("connections_over_limit_total", conns_over_limit,
      "inbound connections refused: --max-connections reached");
    C("connections_inbound", inbound_open, "inbound connections open now");
    C("anonymous_refused_total", anon_refused,
      "calls outside session.* from clients without a certificate");
    C("internal_refused_total", internal_refused,
      "calls outside session.* from SQL users' client certificates (root excepted)");
    C("fault_dropped_total", fault_dropped, "messages dropped by fault injection");
    C("fault_partitioned_total", fault_partitioned, "messages dropped by a partition (out)");
    C("fault_in_blocked_total", fault_in_blocked, "messages dropped by a partition (in)");
    C("fault_duplicated_total", fault_duplicated, "messages duplicated");
    C("fault_delayed_total", fault_delayed, "messages delayed");
    C("fault_reordered_total", fault_reordered, "messages held back to reorder");
    C("stream_items_total", stream_items_out, "stream items sent");
    C("stream_blocked_total", stream_blocked, "stream sends refused for lack of credit");
    C("stream_queue_waits_total", stream_queue_waits,
      "stream sends deferred until the connection's send queue drained");
    C("queue_bytes", queue_bytes, "bytes buffered for sending");
    C("queue_bytes_max", queue_bytes_max, "most bytes ever buffered for sending");
#undef C
    static const char *names[] = {"messages_out_total", "bytes_out_total", "messages_in_total",
                                  "bytes_in_total", "peer_queue_bytes"};
    for (int k = 0; k < 5; k++) {
        rc |=
            mbuf_printf(out, "# TYPE meridian_rpc_%s %s\n", names[k], k == 4 ? "gauge" : "counter");
        for (size_t i = 0; i < m->npeers; i++) {
            const rpc_peer_metrics *p = &m->peers[i];
            uint64_t v[5] = {p->msgs_out, p->bytes_out, p->msgs_in, p->bytes_in, p->queue_bytes};
            rc |= mbuf_printf(out, "meridian_rpc_%s{node=\"%llu\",peer=\"%llu\"} %llu\n", names[k],
                              id, (unsigned long long)p->node_id, (unsigned long long)v[k]);
        }
    }
    return rc ? MERR_NOMEM : 0;
}

/* ---- faults ---- */

int rpc_node_faults(rpc_node *n, const char *spec, int clear, merr *e)
{
    if (clear) rpc_faults_clear(&n->faults);
    int rc = rpc_faults_parse(&n->faults, spec, e);
    if (rc) return rc;
    MLOG_I(MOD, "faults set", "node=%llu spec=\"%s\" clear=%d", (unsigned long long)n->cfg.node_id,
           spec ? spec : "", clear);
    return 0;
}

void rpc_node_faults_seed(rpc_node *n, uint64_t seed)
{
    rpc_rng_seed(&n->faults.rng, seed);
}

int rpc_fault_msg_encode(const char *spec, int clear, uint64_t seed, uint8_t **out, size_t *len)
{
    Meridian__Rpc__FaultSpec fs = MERIDIAN__RPC__FAULT_SPEC__INIT;
    fs.spec = (char *)(spec ? spec : "");
    fs.clear = clear != 0;
    fs.seed = seed;
    *len = meridian__rpc__fault_spec__get_packed_size(&fs);
    *out = malloc(*len ? *len : 1);
    if (!*out) return MERR_NOMEM;
    meridian__rpc__fault_spec__pack(&fs, *out);
    return 0;
}

static void faults_handler(void *arg, rpc_req *req)
{
    rpc_node *n = arg;
    merr e = {0};
    Meridian__Rpc__FaultSpec *fs = meridian__rpc__fault_spec__unpack(NULL, req->len, req->payload);
    if (!fs) {
        merr_set(&e, MERR_CORRUPT, "undecodable FaultSpec");
    } else {
        if (fs->seed) rpc_node_faults_seed(n, fs->seed);
        rpc_node_faults(n, fs->spec, fs->clear, &e);
        meridian__rpc__fault_spec__free_unpacked(fs, NULL);
    }
    if (e.code) MLOG_W(MOD, "fault admin refused", "err=\"%s\"", merr_msg(&e));
    if (!req->oneway) rpc_reply(req, e.code, e.code ? merr_msg(&e) : NULL, NULL, 0);
}

/* ---- loop thread and post queue ---- */

static void on_async(uv_async_t *a)
{
    rpc_node *n = a->data;
    pthread_mutex_lock(&n->mu);
    rpc_post_item *it = n->post_head;
    n->post_head = n->post_tail = NULL;
    pthread_mutex_unlock(&n->mu);
    while (it) {
        rpc_post_item *next = it->next;
        it->fn(it->arg);
        free(it);
        it = next;
    }
}

static void on_check(uv_check_t *c)
{
    conn_flush_dirty(c->data);
}

static void on_prepare(uv_prepare_t *p)
{
    conn_flush_dirty(p->data);
}

void rpc_node_flush(rpc_node *n)
{
    conn_flush_dirty(n);
}

int rpc_node_post(rpc_node *n, rpc_post_fn fn, void *arg)
{
    rpc_post_item *it = malloc(sizeof(*it));
    if (!it) return MERR_NOMEM;
    it->fn = fn;
    it->arg = arg;
    it->next = NULL;
    pthread_mutex_lock(&n->mu);
    if (n->post_closed) {
        pthread_mutex_unlock(&n->mu);
        free(it);
        return MERR_CLOSED;
    }
    if (n->post_tail)
        n->post_tail->next = it;
    else
        n->post_head = it;
    n->post_tail = it;
    uv_async_send(&n->async);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

struct sync_call {
    rpc_post_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void sync_trampoline(void *arg)
{
    struct sync_call *s = arg;
    s->fn(s->arg);
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int rpc_node_run_sync(rpc_node *n, rpc_post_fn fn, void *arg)
{
    /* Waiting on the loop from the loop would never return. */
    if (n->thread_started && pthread_equal(pthread_self(), n->thread)) return MERR_INVALID;
    struct sync_call s = {.fn = fn, .arg = arg, .done = 0};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int rc = rpc_node_post(n, sync_trampoline, &s);
    if (!rc) {
        pthread_mutex_lock(&s.mu);
        while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
    }
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return rc;
}

static void *loop_thread(void *arg)
{
    rpc_node *n = arg;
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return NULL;
}

void rpc_config_defaults(rpc_config *c)
{
    memset(c, 0, sizeof(*c));
    c->cluster_id = "";
    c->locality = "";
    c->max_frame = RPC_MAX_FRAME_DEFAULT;
    c->send_queue_max = 64u << 20;
    c->backoff_initial_ns = 50 * 1000000LL;
    c->backoff_max_ns = 5 * 1000000000LL;
    c->stream_window = 16;
    c->stream_queue_max = 4u << 20;
    c->handshake_timeout_ns = 10 * 1000000000LL;
    c->fault_seed = 1;
}

uint64_t rpc_node_id(const rpc_node *n)
{
    return n->cfg.node_id;
}

int rpc_node_port(const rpc_node *n)
{
    return n->port;
}

rpc_transport *rpc_node_transport(rpc_node *n)
{
    return &n->transport;
}

static int node_listen(rpc_node *n, merr *e)
{
    struct sockaddr_storage ss;
    if (rpc_addr_parse(n->listen, &ss))
        return merr_set(e, MERR_INVALID, "bad listen address '%s' (want IP:PORT or [IPv6]:PORT)",
                        n->listen);
    uv_tcp_init(&n->loop, &n->listener);
    n->listener.data = n;
    n->listening = 1;
    int rc = uv_tcp_bind(&n->listener, (struct sockaddr *)&ss, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&n->listener, 256, conn_on_accept);
    if (rc) return merr_set(e, MERR_IO, "listen on %s: %s", n->listen, uv_strerror(rc));
    int len = sizeof(ss);
    uv_tcp_getsockname(&n->listener, (struct sockaddr *)&ss, &len);
    n->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void close_cb_noop(uv_handle_t *h)
{
    (void)h;
}

/* Runs on the loop thread: closes every handle so uv_run returns. */
static void node_shutdown(void *arg)
{
    rpc_node *n = arg;
    n->stopping = 1;
    pthread_mutex_lock(&n->mu);
    n->post_closed = 1;
    pthread_mutex_unlock(&n->mu);
    on_async(&n->async); /* accepted posts still run, in order */
    for (rpc_conn *c = n->conns; c; c = c->next) conn_close(c, MERR_CLOSED, "node stopping");
    for (rpc_peer *p = n->peers; p; p = p->next) uv_close((uv_handle_t *)&p->timer, close_cb_noop);
    if (n->listening) uv_close((uv_handle_t *)&n->listener, close_cb_noop);
    uv_close((uv_handle_t *)&n->async, close_cb_noop);
    uv_close((uv_handle_t *)&n->check, close_cb_noop);
    uv_close((uv_handle_t *)&n->prepare, close_cb_noop);
    uv_close((uv_handle_t *)&n->deadline_timer, close_cb_noop);
    uv_close((uv_handle_t *)&n->delay_timer, close_cb_noop);
    uv_close((uv_handle_t *)&n->sweep_timer, close_cb_noop);
}

static void node_free(rpc_node *n)
{
    call_free_all(n);
    conn_free_delayed(n);
    while (n->peers) {
        rpc_peer *p = n->peers;
        n->peers = p->next;
        free(p);
    }
    for (size_t i = 0; i < n->nhandlers; i++) free(n->handlers[i].method);
    free(n->handlers);
    for (size_t i = 0; i < n->npms; i++) free(n->pms[i]);
    free(n->pms);
    free(n->m.peers);
    rpc_heap_free(&n->deadlines);
    rpc_heap_free(&n->delayed);
    rpc_faults_free(&n->faults);
    tls_ctx_free(n->tls);
    for (int i = 0; i < 3; i++) free(n->tls_files[i]);
    free(n->rxbuf);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

int rpc_node_start(const rpc_config *cfg, rpc_node **out, merr *e)
{
    *out = NULL;
    rpc_node *n = calloc(1, sizeof(*n));
    if (!n) return merr_set(e, MERR_NOMEM, "rpc node: out of memory");
    n->cfg = *cfg;
    rpc_config d;
    rpc_config_defaults(&d);
    if (!n->cfg.max_frame) n->cfg.max_frame = d.max_frame;
    if (!n->cfg.send_queue_max) n->cfg.send_queue_max = d.send_queue_max;
    if (n->cfg.backoff_initial_ns <= 0) n->cfg.backoff_initial_ns = d.backoff_initial_ns;
    if (n->cfg.backoff_max_ns <= 0) n->cfg.backoff_max_ns = d.backoff_max_ns;
    if (!n->cfg.stream_window) n->cfg.stream_window = d.stream_window;
    if (!n->cfg.stream_queue_max) n->cfg.stream_queue_max = d.stream_queue_max;
    if (n->cfg.handshake_timeout_ns <= 0) n->cfg.handshake_timeout_ns = d.handshake_timeout_ns;
    snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", cfg->cluster_id ? cfg->cluster_id : "");
    snprintf(n->locality, sizeof(n->locality), "%s", cfg->locality ? cfg->locality : "");
    snprintf(n->listen, sizeof(n->listen), "%s", cfg->listen_addr ? cfg->listen_addr : "");
    n->cfg.cluster_id = n->cluster_id;
    n->cfg.locality = n->locality;
    n->cfg.listen_addr = cfg->listen_addr ? n->listen : NULL;
    n->cfg.faults = NULL;
    n->cfg.tls_ca = n->cfg.tls_cert = n->cfg.tls_key = NULL; /* loaded below, not kept */
    rpc_locality_region(n->locality, n->region, sizeof(n->region));
    n->transport.ops = &rpc_uv_transport_ops;
    n->transport.impl = n;
    n->next_call_id = 1;
    n->next_cid = 1;
    pthread_mutex_init(&n->mu, NULL);
    rpc_faults_init(&n->faults, cfg->fault_seed);
    rpc_rng_seed(&n->jitter_rng, cfg->fault_seed ^ 0x5DEECE66DULL);
    int rc = 0;
    if (cfg->tls_ca || cfg->tls_cert || cfg->tls_key) {
        /* Half a TLS configuration is a mistake, never a quiet fallback to
         * plaintext. */
        if ((rc = tls_ctx_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, &n->tls, e))) goto err_free;
        n->tls_files[0] = strdup(cfg->tls_ca);
        n->tls_files[1] = cfg->tls_cert ? strdup(cfg->tls_cert) : NULL;
        n->tls_files[2] = cfg->tls_key ? strdup(cfg->tls_key) : NULL;
        n->rxbuf = malloc(RPC_RXBUF);
        if (!n->rxbuf || !n->tls_files[0] || (cfg->tls_cert && !n->tls_files[1]) ||
            (cfg->tls_key && !n->tls_files[2])) {
            rc = merr_set(e, MERR_NOMEM, "rpc node: out of memory");
            goto err_free;
        }
    }
    rc = uv_loop_init(&n->loop);
    if (rc) {
        merr_set(e, MERR_IO, "uv_loop_init: %s", uv_strerror(rc));
        goto err_free;
    }
    uv_async_init(&n->loop, &n->async, on_async);
    n->async.data = n;
    uv_check_init(&n->loop, &n->check);
    n->check.data = n;
    uv_check_start(&n->check, on_check);
    uv_prepare_init(&n->loop, &n->prepare);
    n->prepare.data = n;
    uv_prepare_start(&n->prepare, on_prepare);
    uv_timer_init(&n->loop, &n->deadline_timer);
    n->deadline_timer.data = n;
    uv_timer_init(&n->loop, &n->delay_timer);
    n->delay_timer.data = n;
    uv_timer_init(&n->loop, &n->sweep_timer);
    n->sweep_timer.data = n;
    {
        /* Check a few times per timeout; at most once per second. */
        uint64_t every = (uint64_t)(n->cfg.handshake_timeout_ns / 4000000);
        if (every < 1) every = 1;
        if (every > 1000) every = 1000;
        uv_timer_start(&n->sweep_timer, conn_sweep_timer_cb, every, every);
    }
    if (cfg->faults && (rc = rpc_faults_parse(&n->faults, cfg->faults, e)) != 0) goto err_loop;
    if (cfg->fault_admin && (rc = rpc_node_handle(n, RPC_METHOD_FAULTS, faults_handler, n)) != 0) {
        merr_set(e, rc, "register %s", RPC_METHOD_FAULTS);
        goto err_loop;
    }
    if (n->cfg.listen_addr && (rc = node_listen(n, e)) != 0) goto err_loop;
    if (pthread_create(&n->thread, NULL, loop_thread, n)) {
        rc = merr_set(e, MERR_INTERNAL, "rpc: cannot start the loop thread");
        goto err_loop;
    }
    n->thread_started = 1;
    MLOG_I(MOD, "node started", "node=%llu listen=%s port=%d cluster=%s locality=%s tls=%s",
           (unsigned long long)n->cfg.node_id, n->listen[0] ? n->listen : "-", n->port,
           n->cluster_id, n->locality, n->tls ? "on" : "off (insecure)");
    *out = n;
    return 0;
err_loop:
    node_shutdown(n);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
err_free:
    node_free(n);
    return rc;
}

struct tls_swap {
    rpc_node *n;
    tls_ctx *ctx;
};

static void tls_swap_on_loop(void *arg)
{
    struct tls_swap *s = arg;
    tls_ctx *old = s->n->tls;
    s->n->tls = s->ctx;
    s->ctx = old;
}

int rpc_node_reload_tls(rpc_node *n, merr *e)
{
    if (!n->tls) return merr_set(e, MERR_INVALID, "this node runs insecure: no TLS to reload");
    /* Files are read here, on the caller's thread: the loop only swaps. */
    struct tls_swap s = {.n = n};
    int rc = tls_ctx_new(n->tls_files[0], n->tls_files[1], n->tls_files[2], &s.ctx, e);
    if (rc) return rc;
    if ((rc = rpc_node_run_sync(n, tls_swap_on_loop, &s))) {
        tls_ctx_free(s.ctx);
        return merr_set(e, rc, "rpc node is stopping");
    }
    /* Open sessions hold their own reference to the old context. */
    tls_ctx_free(s.ctx);
    MLOG_I(MOD, "TLS certificates reloaded", "node=%llu cert=%s",
           (unsigned long long)n->cfg.node_id, n->tls_files[1] ? n->tls_files[1] : "(none)");
    return 0;
}

void rpc_node_stop(rpc_node *n)
{
    if (!n) return;
    if (rpc_node_post(n, node_shutdown, n) == 0) pthread_join(n->thread, NULL);
    int rc = uv_loop_close(&n->loop);
    if (rc) MLOG_E(MOD, "loop not closed cleanly", "err=%s", uv_strerror(rc));
    node_free(n);
}
