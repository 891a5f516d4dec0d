/* rpc integration test helpers (see harness.h). */
#include "harness.h"
#include "common/mtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void th_cond_init(th_cond *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->n = 0;
}

void th_cond_add(th_cond *c, int64_t d)
{
    pthread_mutex_lock(&c->mu);
    c->n += d;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int64_t th_cond_get(th_cond *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t v = c->n;
    pthread_mutex_unlock(&c->mu);
    return v;
}

int th_cond_wait(th_cond *c, int64_t target)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += TH_TIMEOUT_S;
    pthread_mutex_lock(&c->mu);
    int ok = 1;
    while (c->n < target) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts)) {
            ok = c->n >= target;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int64_t th_now_us(void)
{
    return mtime_real_ns() / 1000;
}

rpc_node *th_start(const th_opts *o)
{
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = o->id;
    cfg.cluster_id = o->cluster ? o->cluster : "test";
    cfg.listen_addr = o->listen;
    cfg.locality = o->locality ? o->locality : "";
    cfg.faults = o->faults;
    cfg.fault_admin = !o->no_fault_admin;
    if (o->max_frame) cfg.max_frame = o->max_frame;
    if (o->send_queue_max) cfg.send_queue_max = o->send_queue_max;
    cfg.fault_seed = o->seed ? o->seed : 1;
    if (o->handshake_timeout_ns) cfg.handshake_timeout_ns = o->handshake_timeout_ns;
    cfg.backoff_initial_ns = 20 * MTIME_MS;
    cfg.backoff_max_ns = 200 * MTIME_MS;
    rpc_node *n = NULL;
    merr e = {0};
    if (rpc_node_start(&cfg, &n, &e)) {
        fprintf(stderr, "th_start: %s\n", merr_msg(&e));
        return NULL;
    }
    return n;
}

void th_addr(rpc_node *n, int v6, char *buf, size_t cap)
{
    snprintf(buf, cap, v6 ? "[::1]:%d" : "127.0.0.1:%d", rpc_node_port(n));
}

struct op {
    rpc_node *n;
    uint64_t id;
    const char *s;
    rpc_handler_fn fn;
    void *arg;
    const void *p;
    size_t len;
    int clear;
    uint64_t seed;
    int rc;
    rpc_metrics *m;
    rpc_peer_metrics *pm;
};

static void op_add_peer(void *a)
{
    struct op *o = a;
    o->rc = rpc_node_add_peer(o->n, o->id, o->s);
}

int th_add_peer(rpc_node *n, uint64_t id, const char *addr)
{
    struct op o = {.n = n, .id = id, .s = addr};
    rpc_node_run_sync(n, op_add_peer, &o);
    return o.rc;
}

static void op_handle(void *a)
{
    struct op *o = a;
    o->rc = rpc_node_handle(o->n, o->s, o->fn, o->arg);
}

int th_handle(rpc_node *n, const char *method, rpc_handler_fn fn, void *arg)
{
    struct op o = {.n = n, .s = method, .fn = fn, .arg = arg};
    rpc_node_run_sync(n, op_handle, &o);
    return o.rc;
}

static void op_oneway(void *a)
{
    struct op *o = a;
    o->rc = rpc_node_oneway(o->n, o->id, o->s, o->p, o->len);
}

int th_oneway(rpc_node *n, uint64_t to, const char *method, const void *p, size_t len)
{
    struct op o = {.n = n, .id = to, .s = method, .p = p, .len = len};
    rpc_node_run_sync(n, op_oneway, &o);
    return o.rc;
}

static void op_faults(void *a)
{
    struct op *o = a;
    merr e = {0};
    if (o->seed) rpc_node_faults_seed(o->n, o->seed);
    o->rc = rpc_node_faults(o->n, o->s, o->clear, &e);
}

int th_faults(rpc_node *n, const char *spec, int clear, uint64_t seed)
{
    struct op o = {.n = n, .s = spec, .clear = clear, .seed = seed};
    rpc_node_run_sync(n, op_faults, &o);
    return o.rc;
}

static void op_metrics(void *a)
{
    struct op *o = a;
    const rpc_metrics *m = rpc_node_metrics(o->n);
    if (o->m) {
        *o->m = *m;
        o->m->peers = NULL;
        o->m->npeers = 0;
    }
    if (o->pm) {
        memset(o->pm, 0, sizeof(*o->pm));
        for (size_t i = 0; i < m->npeers; i++)
            if (m->peers[i].node_id == o->id) *o->pm = m->peers[i];
    }
}

void th_metrics(rpc_node *n, rpc_metrics *out)
{
    struct op o = {.n = n, .m = out};
    rpc_node_run_sync(n, op_metrics, &o);
}

void th_peer_metrics(rpc_node *n, uint64_t peer, rpc_peer_metrics *out)
{
    struct op o = {.n = n, .id = peer, .pm = out};
    rpc_node_run_sync(n, op_metrics, &o);
}

struct call_ctx {
    struct op o;
    int64_t deadline;
    th_result *res;
    th_cond done;
    int64_t start;
};

static void call_done(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    struct call_ctx *c = arg;
    c->res->code = code;
    snprintf(c->res->msg, sizeof(c->res->msg), "%s", msg ? msg : "");
    c->res->len = len < sizeof(c->res->payload) ? len : sizeof(c->res->payload);
    if (len) memcpy(c->res->payload, p, c->res->len);
    c->res->rtt_ns = mtime_mono_ns() - c->start;
    th_cond_add(&c->done, 1);
}

static void op_call(void *a)
{
    struct call_ctx *c = a;
    c->start = mtime_mono_ns();
    c->o.rc =
        rpc_node_call(c->o.n, c->o.id, c->o.s, c->o.p, c->o.len, c->deadline, call_done, c, NULL);
}

int th_call(rpc_node *n, uint64_t to, const char *method, const void *p, size_t len,
            int64_t deadline_us, th_result *res)
{
    struct call_ctx c = {.o = {.n = n, .id = to, .s = method, .p = p, .len = len},
                         .deadline = deadline_us,
                         .res = res};
    memset(res, 0, sizeof(*res));
    th_cond_init(&c.done);
    rpc_node_run_sync(n, op_call, &c);
    if (c.o.rc) return c.o.rc;
    if (!th_cond_wait(&c.done, 1)) {
        fprintf(stderr, "th_call: no reply within %d s\n", TH_TIMEOUT_S);
        abort();
    }
    return 0;
}

void th_echo(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, 0, NULL, req->payload, req->len);
}

void th_recorder_init(th_recorder *r)
{
    memset(r, 0, sizeof(*r));
    th_cond_init(&r->count);
    pthread_mutex_init(&r->mu, NULL);
}

void th_recorder_free(th_recorder *r)
{
    free(r->seq);
}

void th_record(void *arg, rpc_req *req)
{
    th_recorder *r = arg;
    uint32_t v = 0;
    if (req->len >= 4) memcpy(&v, req->payload, 4);
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->seq = realloc(r->seq, r->cap * sizeof(*r->seq));
    }
    r->seq[r->n++] = v;
    r->last_from = req->from;
    pthread_mutex_unlock(&r->mu);
    th_cond_add(&r->count, 1);
}
