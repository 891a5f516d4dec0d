/* rpc over real loopback sockets: request/response under load (IPv4, IPv6,
 * a client node), unknown methods, deadlines, cancellation, streams with
 * flow control, peer up/down events. */
#include "harness.h"
#include "common/mtime.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static rpc_node *a, *b;
static char addr_b[64];

static int setup(void **state)
{
    (void)state;
    th_opts oa = {.id = 1, .listen = "127.0.0.1:0"};
    th_opts ob = {.id = 2, .listen = "127.0.0.1:0"};
    a = th_start(&oa);
    b = th_start(&ob);
    if (!a || !b) return -1;
    th_addr(b, 0, addr_b, sizeof(addr_b));
    char addr_a[64];
    th_addr(a, 0, addr_a, sizeof(addr_a));
    th_add_peer(a, 2, addr_b);
    th_add_peer(b, 1, addr_a);
    th_handle(b, "echo", th_echo, NULL);
    th_handle(a, "echo", th_echo, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rpc_node_stop(a);
    rpc_node_stop(b);
    return 0;
}

/* ---- load ---- */

#define LOAD_CALLS 4000

struct load {
    rpc_node *n;
    uint64_t to;
    th_cond done;
    int bad;
    uint32_t vals[LOAD_CALLS];
};

static void load_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    uint32_t *slot = arg;
    struct load *l = (struct load *)((char *)(slot - *slot) - offsetof(struct load, vals));
    uint32_t v;
    if (code || len != 4 || (memcpy(&v, p, 4), v != *slot)) {
        fprintf(stderr, "bad reply code=%d msg=%s len=%zu\n", code, msg ? msg : "", len);
        l->bad++;
    }
    th_cond_add(&l->done, 1);
}

static void load_start(void *arg)
{
    struct load *l = arg;
    /* Every call in flight at once: ids, batching and the hash table work. */
    for (uint32_t i = 0; i < LOAD_CALLS; i++) {
        l->vals[i] = i;
        int64_t dl = th_now_us() + 20 * 1000000LL;
        if (rpc_node_call(l->n, l->to, "echo", &l->vals[i], 4, dl, load_reply, &l->vals[i], NULL))
            l->bad++;
    }
}

static void test_request_response_under_load(void **state)
{
    (void)state;
    static struct load la, lb;
    memset(&la, 0, sizeof(la));
    memset(&lb, 0, sizeof(lb));
    la.n = a, la.to = 2;
    lb.n = b, lb.to = 1;
    th_cond_init(&la.done);
    th_cond_init(&lb.done);
    rpc_metrics ma0, ma1;
    th_metrics(a, &ma0);
    /* Both directions at once. */
    assert_int_equal(rpc_node_post(a, load_start, &la), 0);
    assert_int_equal(rpc_node_post(b, load_start, &lb), 0);
    assert_true(th_cond_wait(&la.done, LOAD_CALLS));
    assert_true(th_cond_wait(&lb.done, LOAD_CALLS));
    assert_int_equal(la.bad, 0);
    assert_int_equal(lb.bad, 0);
    th_metrics(a, &ma1);
    assert_int_equal(ma1.calls_ok - ma0.calls_ok, LOAD_CALLS);
    assert_int_equal(ma1.calls_failed - ma0.calls_failed, 0);
    rpc_peer_metrics pm;
    th_peer_metrics(a, 2, &pm);
    /* a sent LOAD_CALLS requests to b and LOAD_CALLS replies to b's calls. */
    assert_true(pm.msgs_out >= 2 * LOAD_CALLS);
    assert_true(pm.msgs_in >= 2 * LOAD_CALLS);
    assert_true(pm.bytes_out > pm.msgs_out * 4);
    assert_int_equal(ma1.queue_bytes, 0);
    assert_true(ma1.queue_bytes_max > 0);
}

static void test_ipv6_and_client_node(void **state)
{
    (void)state;
    th_opts o6 = {.id = 6, .listen = "[::1]:0"};
    rpc_node *n6 = th_start(&o6);
    if (!n6) {
        skip(); /* no IPv6 loopback on this machine */
        return;
    }
    th_handle(n6, "echo", th_echo, NULL);
    char addr6[64];
    th_addr(n6, 1, addr6, sizeof(addr6));
    assert_non_null(strstr(addr6, "[::1]:"));
    /* A client (node id 0, no listener) uses the same transport. */
    th_opts oc = {.id = 0};
    rpc_node *client = th_start(&oc);
    assert_non_null(client);
    assert_int_equal(th_add_peer(client, 6, addr6), 0);
    th_result r;
    for (int i = 0; i < 50; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof(msg), "v6-%d", i);
        assert_int_equal(th_call(client, 6, "echo", msg, (size_t)len, 0, &r), 0);
        assert_int_equal(r.code, 0);
        assert_int_equal(r.len, (size_t)len);
        assert_memory_equal(r.payload, msg, (size_t)len);
    }
    rpc_peer_metrics pm;
    th_peer_metrics(n6, 0, &pm); /* clients aggregate under node 0 */
    assert_true(pm.msgs_in >= 50);
    rpc_node_stop(client);
    rpc_node_stop(n6);
}

static void test_unknown_method_keeps_connection(void **state)
{
    (void)state;
    th_result r;
    rpc_metrics m0, m1;
    th_metrics(a, &m0);
    assert_int_equal(th_call(a, 2, "no.such.method", "x", 1, 0, &r), 0);
    assert_int_equal(r.code, MERR_UNSUPPORTED);
    assert_non_null(strstr(r.msg, "no.such.method"));
    assert_int_equal(th_call(a, 2, "echo", "ok", 2, 0, &r), 0);
    assert_int_equal(r.code, 0);
    th_metrics(a, &m1);
    assert_int_equal(m1.conns_closed, m0.conns_closed);
    assert_int_equal(m1.conns_dialed, m0.conns_dialed);
}

static void noop(void *arg)
{
    (void)arg;
}

static void run_sync_from_loop(void *arg)
{
    *(int *)arg = rpc_node_run_sync(a, noop, NULL);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    int rc = 0;
    rpc_node_run_sync(a, run_sync_from_loop, &rc);
    assert_int_equal(rc, MERR_INVALID); /* refused instead of a deadlock */
    th_result r;
    assert_int_equal(th_call(a, 77, "echo", "x", 1, 0, &r), MERR_NOTFOUND);
    assert_int_equal(th_add_peer(a, 9, "not-an-address"), MERR_INVALID);
    assert_int_equal(th_add_peer(a, 9, "[::1"), MERR_INVALID);
    assert_int_equal(th_add_peer(a, 9, "127.0.0.1:99999"), MERR_INVALID);
    assert_int_equal(th_add_peer(a, 0, "127.0.0.1:1"), MERR_INVALID);
    assert_int_equal(th_oneway(a, 2, "", "x", 1), MERR_INVALID);
}

/* ---- deadlines and cancellation ---- */

struct slow {
    th_cond got, canceled;
    int64_t deadline_seen;
    rpc_req *held;
};

static void slow_cancel(void *arg, rpc_req *req)
{
    struct slow *s = arg;
    (void)req;
    th_cond_add(&s->canceled, 1);
}

/* Holds the request unanswered until the test releases it. */
static void slow_handler(void *arg, rpc_req *req)
{
    struct slow *s = arg;
    s->deadline_seen = req->deadline_us;
    s->held = req;
    rpc_req_on_cancel(req, slow_cancel, s);
    th_cond_add(&s->got, 1);
}

static void release_held(void *arg)
{
    struct slow *s = arg;
    if (s->held) rpc_reply(s->held, 0, NULL, "late", 4); /* caller gave up: sends nothing */
    s->held = NULL;
}

static void test_deadline(void **state)
{
    (void)state;
    static struct slow s;
    memset(&s, 0, sizeof(s));
    th_cond_init(&s.got);
    th_cond_init(&s.canceled);
    th_handle(b, "slow", slow_handler, &s);
    rpc_metrics m0, m1;
    th_metrics(a, &m0);
    th_result r;
    int64_t dl = th_now_us() + 150 * 1000;
    assert_int_equal(th_call(a, 2, "slow", "x", 1, dl, &r), 0);
    assert_int_equal(r.code, MERR_TIMEOUT);
    /* The deadline travelled in the envelope, unchanged. */
    assert_true(th_cond_wait(&s.got, 1));
    assert_int_equal(s.deadline_seen, dl);
    /* The client told the server it gave up. */
    assert_true(th_cond_wait(&s.canceled, 1));
    th_metrics(a, &m1);
    assert_int_equal(m1.calls_timed_out - m0.calls_timed_out, 1);
    rpc_node_run_sync(b, release_held, &s);
    /* The connection still works after the late reply was dropped. */
    assert_int_equal(th_call(a, 2, "echo", "y", 1, 0, &r), 0);
    assert_int_equal(r.code, 0);
    /* A deadline far in the future is just "no hurry". */
    assert_int_equal(th_call(a, 2, "echo", "f", 1, INT64_MAX, &r), 0);
    assert_int_equal(r.code, 0);
    /* A request already past its deadline is answered without the handler. */
    int64_t got_before = th_cond_get(&s.got);
    assert_int_equal(th_call(a, 2, "slow", "x", 1, th_now_us() - 1000, &r), 0);
    assert_int_equal(r.code, MERR_TIMEOUT);
    assert_int_equal(th_cond_get(&s.got), got_before);
}

struct cancel_ctx {
    rpc_node *n;
    uint64_t id;
    th_cond done;
    int code;
};

static void cancel_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    struct cancel_ctx *c = arg;
    (void)msg, (void)p, (void)len;
    c->code = code;
    th_cond_add(&c->done, 1);
}

static void cancel_start(void *arg)
{
    struct cancel_ctx *c = arg;
    if (rpc_node_call(c->n, 2, "slow", "x", 1, 0, cancel_reply, c, &c->id)) c->code = 999;
}

static void cancel_now(void *arg)
{
    struct cancel_ctx *c = arg;
    assert_int_equal(rpc_node_cancel(c->n, c->id), 0);
    assert_int_equal(rpc_node_cancel(c->n, c->id), MERR_NOTFOUND); /* only once */
}

static void test_cancel(void **state)
{
    (void)state;
    static struct slow s;
    memset(&s, 0, sizeof(s));
    th_cond_init(&s.got);
    th_cond_init(&s.canceled);
    th_handle(b, "slow", slow_handler, &s);
    static struct cancel_ctx c;
    memset(&c, 0, sizeof(c));
    c.n = a;
    th_cond_init(&c.done);
    rpc_node_run_sync(a, cancel_start, &c);
    assert_true(th_cond_wait(&s.got, 1)); /* the server has it */
    assert_int_equal(th_cond_get(&c.done), 0);
    rpc_node_run_sync(a, cancel_now, &c);
    assert_true(th_cond_wait(&c.done, 1));
    assert_int_equal(c.code, MERR_CANCELED);
    assert_true(th_cond_wait(&s.canceled, 1));
    rpc_node_run_sync(b, release_held, &s);
}

/* ---- streams ---- */

#define STREAM_ITEMS  200
#define STREAM_WINDOW 8
#define ITEM_SIZE     1000

struct scan {
    rpc_req *req;
    uint32_t next;
    th_cond blocked;
    int done;
};

static void scan_pump(void *arg, rpc_req *req)
{
    struct scan *s = arg;
    uint8_t item[ITEM_SIZE];
    while (s->next < STREAM_ITEMS) {
        memset(item, (int)(s->next & 0xff), sizeof(item));
        memcpy(item, &s->next, 4);
        int rc = rpc_stream_send(req, item, sizeof(item));
        if (rc == MERR_BUSY) {
            th_cond_add(&s->blocked, 1);
            return; /* on_writable resumes */
        }
        if (rc) break;
        s->next++;
    }
    s->done = 1;
    rpc_reply(req, 0, NULL, NULL, 0);
}

static void scan_handler(void *arg, rpc_req *req)
{
    struct scan *s = arg;
    assert_true(req->stream);
    s->req = req;
    rpc_stream_on_writable(req, scan_pump, s);
    scan_pump(s, req);
}

struct reader {
    rpc_node *n;
    uint64_t id;
    uint32_t got, granted, max_outstanding;
    int bad, end_code;
    th_cond items, end;
};

static int reader_item(void *arg, const uint8_t *p, size_t len)
{
    struct reader *r = arg;
    uint32_t v;
    memcpy(&v, p, 4);
    if (len != ITEM_SIZE || v != r->got) r->bad++;
    r->got++;
    if (r->got - r->granted > r->max_outstanding) r->max_outstanding = r->got - r->granted;
    th_cond_add(&r->items, 1);
    return 0; /* a slow reader: hold every item until the test grants */
}

static void reader_end(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    struct reader *r = arg;
    (void)msg, (void)p, (void)len;
    r->end_code = code;
    th_cond_add(&r->end, 1);
}

static void reader_start(void *arg)
{
    struct reader *r = arg;
    int rc = rpc_node_call_stream(r->n, 2, "scan", NULL, 0, 0, STREAM_WINDOW, reader_item,
                                  reader_end, r, &r->id);
    if (rc) r->bad = 1000;
}

static void reader_grant(void *arg)
{
    struct reader *r = arg;
    uint32_t k = r->got - r->granted;
    if (k) {
        r->granted += k;
        rpc_node_stream_grant(r->n, r->id, k);
    }
}

static void test_stream_flow_control(void **state)
{
    (void)state;
    static struct scan s;
    memset(&s, 0, sizeof(s));
    th_cond_init(&s.blocked);
    th_handle(b, "scan", scan_handler, &s);
    static struct reader r;
    memset(&r, 0, sizeof(r));
    r.n = a;
    th_cond_init(&r.items);
    th_cond_init(&r.end);
    rpc_metrics mb0;
    th_metrics(b, &mb0);
    rpc_node_run_sync(a, reader_start, &r);
    /* The sender fills the window and then stops: it is blocked, and the
     * reader holds exactly the window. */
    assert_true(th_cond_wait(&s.blocked, 1));
    assert_true(th_cond_wait(&r.items, STREAM_WINDOW));
    rpc_metrics mb1;
    th_metrics(b, &mb1);
    assert_int_equal(mb1.stream_items_out - mb0.stream_items_out, STREAM_WINDOW);
    assert_true(mb1.stream_blocked > mb0.stream_blocked);
    /* A round trip to b proves b sent nothing more while no credit came. */
    th_result tr;
    assert_int_equal(th_call(a, 2, "echo", "z", 1, 0, &tr), 0);
    assert_int_equal(th_cond_get(&r.items), STREAM_WINDOW);
    /* Now the reader catches up, repeatedly, until the stream ends. */
    while (th_cond_get(&r.end) == 0) {
        int64_t have = th_cond_get(&r.items);
        rpc_node_run_sync(a, reader_grant, &r);
        if (have < STREAM_ITEMS)
            assert_true(th_cond_wait(&r.items, have + 1));
        else
            assert_true(th_cond_wait(&r.end, 1));
    }
    assert_int_equal(r.end_code, 0);
    assert_int_equal(r.got, STREAM_ITEMS);
    assert_int_equal(r.bad, 0);
    /* The reader never had more than a window outstanding, so the sender
     * never had more than a window of items buffered or in flight. */
    assert_true(r.max_outstanding <= STREAM_WINDOW);
}

/* ---- peers ---- */

struct peer_events {
    th_cond up, down;
};

static void on_peer(void *arg, uint64_t id, int up)
{
    struct peer_events *p = arg;
    (void)id;
    th_cond_add(up ? &p->up : &p->down, 1);
}

static void set_on_peer(void *arg)
{
    void **v = arg;
    rpc_node_on_peer(v[0], on_peer, v[1]);
}

static void test_peer_events_and_oneway(void **state)
{
    (void)state;
    th_opts o = {.id = 3, .listen = "127.0.0.1:0"};
    rpc_node *c = th_start(&o);
    assert_non_null(c);
    static th_recorder rec;
    th_recorder_init(&rec);
    th_handle(c, "rec", th_record, &rec);
    char addr_c[64];
    th_addr(c, 0, addr_c, sizeof(addr_c));
    static struct peer_events ev;
    th_cond_init(&ev.up);
    th_cond_init(&ev.down);
    void *args[2] = {a, &ev};
    rpc_node_run_sync(a, set_on_peer, args);
    assert_int_equal(th_add_peer(a, 3, addr_c), 0);
    /* Lazily dialed by the first message. */
    for (uint32_t i = 0; i < 100; i++) assert_int_equal(th_oneway(a, 3, "rec", &i, 4), 0);
    assert_true(th_cond_wait(&ev.up, 1));
    assert_true(th_cond_wait(&rec.count, 100));
    for (uint32_t i = 0; i < 100; i++) assert_int_equal(rec.seq[i], i); /* in order */
    assert_int_equal(rec.last_from, 1);
    rpc_node_stop(c);
    assert_true(th_cond_wait(&ev.down, 1));
    th_recorder_free(&rec);
}

/* ---- the transport interface and metrics rendering ---- */

static void upper_handler(void *arg, rpc_req *req)
{
    (void)arg;
    char out[64];
    size_t n = req->len < sizeof(out) ? req->len : sizeof(out);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(req->payload[i] >= 'a' && req->payload[i] <= 'z' ? req->payload[i] - 32
                                                                         : req->payload[i]);
    rpc_reply(req, 0, NULL, out, n);
}

struct via_t {
    th_cond done;
    int code;
    char got[64];
};

static void via_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    struct via_t *v = arg;
    (void)msg;
    v->code = code;
    if (p && len < sizeof(v->got)) memcpy(v->got, p, len);
    th_cond_add(&v->done, 1);
}

static void via_register(void *arg)
{
    rpc_transport *t = rpc_node_transport(b);
    *(int *)arg = t->ops->handle(t, "upper", upper_handler, NULL);
}

static void via_call(void *arg)
{
    rpc_transport *t = rpc_node_transport(a);
    if (t->ops->call(t, 2, "upper", "meridian", 8, 0, via_reply, arg, NULL))
        via_reply(arg, -999, NULL, NULL, 0);
}

static void test_transport_interface(void **state)
{
    (void)state;
    int rc = -1;
    rpc_node_run_sync(b, via_register, &rc);
    assert_int_equal(rc, 0);
    static struct via_t v;
    memset(&v, 0, sizeof(v));
    th_cond_init(&v.done);
    rpc_transport *t = rpc_node_transport(a);
    assert_int_equal(t->ops->post(t, via_call, &v), 0);
    assert_true(th_cond_wait(&v.done, 1));
    assert_int_equal(v.code, 0);
    assert_string_equal(v.got, "MERIDIAN");
}

struct render {
    mbuf out;
    int rc;
};

static void do_render(void *arg)
{
    struct render *r = arg;
    r->rc = rpc_metrics_render(a, &r->out);
}

static void test_metrics_render(void **state)
{
    (void)state;
    struct render r = {.out = MBUF_INIT};
    rpc_node_run_sync(a, do_render, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(mbuf_append_u8(&r.out, 0), 0);
    const char *txt = (const char *)r.out.data;
    assert_non_null(strstr(txt, "# TYPE meridian_rpc_calls_ok_total counter\n"));
    assert_non_null(strstr(txt, "meridian_rpc_connections_dialed_total{node=\"1\"} "));
    assert_non_null(strstr(txt, "# TYPE meridian_rpc_queue_bytes gauge\n"));
    const char *line = strstr(txt, "meridian_rpc_messages_out_total{node=\"1\",peer=\"2\"} ");
    assert_non_null(line);
    assert_true(strtoull(strchr(line, '}') + 2, NULL, 10) >= 2 * LOAD_CALLS);
    mbuf_free(&r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_response_under_load),
        cmocka_unit_test(test_ipv6_and_client_node),
        cmocka_unit_test(test_unknown_method_keeps_connection),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_stream_flow_control),
        cmocka_unit_test(test_peer_events_and_oneway),
        cmocka_unit_test(test_transport_interface),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
