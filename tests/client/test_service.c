/* The session service seen from the wire and from its owner: malformed and
 * out-of-place requests get clear errors (never a crash), refused opens,
 * the session limit, idle sessions reaped, and shutting the service down
 * while a statement streams to a reader that stopped reading. */
#include "tests/client/harness.h"

#include "include/meridian.h"
#include "proto/session.pb-c.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ---- a raw rpc client ---- */

typedef struct raw {
    rpc_node *node;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, code;
    char msg[256];
    uint8_t resp[4096];
    size_t len;
    const char *method;
    const uint8_t *req;
    size_t req_len;
    int stream, rc;
} raw;

static void raw_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    raw *r = arg;
    pthread_mutex_lock(&r->mu);
    r->code = code;
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
    r->len = len < sizeof(r->resp) ? len : sizeof(r->resp);
    if (r->len) memcpy(r->resp, p, r->len);
    r->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int raw_item(void *arg, const uint8_t *p, size_t len)
{
    return 1;
}

static void raw_start(void *arg)
{
    raw *r = arg;
    if (r->stream)
        r->rc = rpc_node_call_stream(r->node, 1, r->method, r->req, r->req_len, 0, 4, raw_item,
                                     raw_reply, r, NULL);
    else
        r->rc = rpc_node_call(r->node, 1, r->method, r->req, r->req_len, 0, raw_reply, r, NULL);
}

static void add_peer_cb(void *arg)
{
    void **a = arg;
    rpc_node_add_peer(a[0], 1, a[1]);
}

static void raw_open(raw *r, const char *addr)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    merr e = {0};
    assert_int_equal(rpc_node_start(&cfg, &r->node, &e), 0);
    void *a[2] = {r->node, (void *)addr};
    assert_int_equal(rpc_node_run_sync(r->node, add_peer_cb, a), 0);
}

static void raw_close(raw *r)
{
    rpc_node_stop(r->node);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* A call; returns the rpc code of the reply. */
static int raw_call(raw *r, const char *method, const void *p, size_t len, int stream)
{
    r->done = 0;
    r->method = method;
    r->req = p;
    r->req_len = len;
    r->stream = stream;
    assert_int_equal(rpc_node_run_sync(r->node, raw_start, r), 0);
    assert_int_equal(r->rc, 0);
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    return r->code;
}

static uint64_t raw_session(raw *r, uint32_t version, Meridian__Session__OpenReply **out)
{
    Meridian__Session__OpenRequest req = MERIDIAN__SESSION__OPEN_REQUEST__INIT;
    req.protocol_version = version;
    req.user = (char *)"raw";
    uint8_t buf[256];
    size_t n = meridian__session__open_request__pack(&req, buf);
    assert_int_equal(raw_call(r, "session.open", buf, n, 0), 0);
    Meridian__Session__OpenReply *rep =
        meridian__session__open_reply__unpack(NULL, r->len, r->resp);
    assert_non_null(rep);
    uint64_t id = rep->session_id;
    if (out)
        *out = rep;
    else
        meridian__session__open_reply__free_unpacked(rep, NULL);
    return id;
}

static void test_bad_requests(void **state)
{
    (void)state;
    ch_server s;
    assert_int_equal(ch_server_start(&s, 1, "", NULL, 0), 0);
    raw r;
    raw_open(&r, s.addr);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    const char *methods[] = {"session.open",   "session.prepare", "session.close_stmt",
                             "session.cancel", "session.set",     "session.close"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        assert_int_equal(raw_call(&r, methods[i], junk, sizeof(junk), 0), MERR_CORRUPT);
    assert_int_equal(raw_call(&r, "session.exec", junk, sizeof(junk), 1), MERR_CORRUPT);
    /* Another protocol version: refused with a reason. */
    Meridian__Session__OpenReply *rep = NULL;
    assert_true(raw_session(&r, 99, &rep) == 0);
    assert_non_null(rep->error);
    assert_non_null(strstr(rep->error->message, "protocol version 99"));
    meridian__session__open_reply__free_unpacked(rep, NULL);
    /* A session nobody opened. */
    Meridian__Session__PrepareRequest pr = MERIDIAN__SESSION__PREPARE_REQUEST__INIT;
    pr.session_id = 424242;
    pr.sql = (char *)"SELECT 1";
    uint8_t buf[256];
    size_t n = meridian__session__prepare_request__pack(&pr, buf);
    assert_int_equal(raw_call(&r, "session.prepare", buf, n, 0), MERR_NOTFOUND);
    assert_non_null(strstr(r.msg, "no such session"));
    /* exec must be a stream; an unknown prepared statement is an error. */
    uint64_t id = raw_session(&r, 1, NULL);
    assert_true(id != 0);
    Meridian__Session__ExecRequest ex = MERIDIAN__SESSION__EXEC_REQUEST__INIT;
    ex.session_id = id;
    ex.stmt_id = 99;
    n = meridian__session__exec_request__pack(&ex, buf);
    assert_int_equal(raw_call(&r, "session.exec", buf, n, 0), MERR_INVALID);
    assert_int_equal(raw_call(&r, "session.exec", buf, n, 1), 0);
    Meridian__Session__ExecResult *res =
        meridian__session__exec_result__unpack(NULL, r.len, r.resp);
    assert_non_null(res);
    assert_non_null(res->error);
    assert_int_equal(res->error->code, MERIDIAN_MISUSE);
    assert_non_null(strstr(res->error->message, "unknown prepared statement"));
    meridian__session__exec_result__free_unpacked(res, NULL);
    raw_close(&r);
    ch_server_stop(&s);
}

static int past(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec > *(int64_t *)arg;
}

static void start_with(ch_server *s, uint32_t max_sessions, int64_t idle_ns, size_t max_frame)
{
    memset(s, 0, sizeof(*s));
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.listen_addr = "127.0.0.1:0";
    cfg.node_id = 1;
    if (max_frame) cfg.max_frame = max_frame;
    merr e = {0};
    assert_int_equal(rpc_node_start(&cfg, &s->node, &e), 0);
    session_exec_sqlite(&s->ex, NULL);
    session_service_config sc;
    session_service_config_defaults(&sc);
    sc.max_sessions = max_sessions;
    sc.idle_timeout_ns = idle_ns;
    assert_int_equal(session_service_register(s->node, &s->ex, &sc, &s->svc, &e), 0);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", rpc_node_port(s->node));
}

static void test_session_limit(void **state)
{
    (void)state;
    ch_server s;
    start_with(&s, 2, 3600 * 1000000000LL, 0);
    char ci[256];
    ch_conninfo(ci, sizeof(ci), s.addr, NULL);
    meridian *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(meridian_open(ci, &a), 0);
    assert_int_equal(meridian_open(ci, &b), 0);
    assert_int_equal(meridian_open(ci, &c), MERIDIAN_BUSY);
    assert_non_null(strstr(meridian_errmsg(c), "too many sessions"));
    meridian_close(c);
    meridian_close(b); /* frees a place */
    session_service_stats st;
    session_service_stats_get(s.svc, &st);
    assert_int_equal(st.sessions_total, 2);
    assert_int_equal(meridian_open(ci, &c), 0);
    meridian_close(a);
    meridian_close(c);
    ch_server_stop(&s);
}

static int one_open(void *arg)
{
    session_service_stats st;
    session_service_stats_get(arg, &st);
    return st.sessions_open == 1;
}

static void test_idle_reaping(void **state)
{
    (void)state;
    ch_server s;
    int64_t idle = 50 * 1000000LL;
    start_with(&s, 100, idle, 0);
    char ci[256];
    ch_conninfo(ci, sizeof(ci), s.addr, NULL);
    meridian *a = NULL, *c = NULL;
    assert_int_equal(meridian_open(ci, &a), 0);
    assert_int_equal(meridian_exec(a, "CREATE TEMP TABLE x(y)", NULL, NULL, NULL), 0);
    /* Once a was idle past the timeout, the next open reaps it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t deadline = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + idle;
    assert_true(ch_wait(past, &deadline));
    assert_int_equal(meridian_open(ci, &c), 0);
    assert_true(ch_wait(one_open, s.svc)); /* a's worker ends soon after */
    /* a's session is gone: its next statement fails retryably, the one
     * after gets a new session (without the temp table). */
    assert_int_equal(meridian_exec(a, "SELECT * FROM x", NULL, NULL, NULL), MERIDIAN_UNAVAILABLE);
    assert_int_equal(meridian_error_retryable(a), 1);
    assert_int_equal(meridian_exec(a, "SELECT 1", NULL, NULL, NULL), MERIDIAN_OK);
    assert_int_equal(meridian_exec(a, "SELECT * FROM x", NULL, NULL, NULL), MERIDIAN_ERROR);
    meridian_close(a);
    meridian_close(c);
    ch_server_stop(&s);
}

static void test_row_too_big(void **state)
{
    (void)state;
    ch_server s;
    start_with(&s, 10, 3600 * 1000000000LL, 1 << 20);
    char ci[256];
    ch_conninfo(ci, sizeof(ci), s.addr, NULL);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), 0);
    meridian_stmt *st = NULL;
    /* The first row fits, the second does not fit in a 1 MiB frame. */
    assert_int_equal(meridian_prepare(db, "SELECT zeroblob(10) UNION ALL SELECT zeroblob(2000000)",
                                      -1, &st, NULL),
                     0);
    int rc, rows = 0;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW) rows++;
    assert_int_equal(rc, MERIDIAN_TOOBIG);
    assert_non_null(strstr(meridian_errmsg(db), "too big"));
    assert_int_equal(rows, 1);
    meridian_finalize(st);
    /* The session is fine afterwards. */
    assert_int_equal(meridian_exec(db, "SELECT 1", NULL, NULL, NULL), MERIDIAN_OK);
    meridian_close(db);
    ch_server_stop(&s);
}

/* ---- a lying gateway: valid session, garbage afterwards ---- */

static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x07};

static void fake_open(void *arg, rpc_req *req)
{
    Meridian__Session__OpenReply r = MERIDIAN__SESSION__OPEN_REPLY__INIT;
    r.session_id = 1;
    uint8_t buf[64];
    size_t n = meridian__session__open_reply__pack(&r, buf);
    rpc_reply(req, 0, NULL, buf, n);
}

static void fake_garbage(void *arg, rpc_req *req)
{
    if (req->stream) rpc_stream_send(req, garbage, sizeof(garbage));
    rpc_reply(req, 0, NULL, garbage, sizeof(garbage));
}

static void fake_register(void *arg)
{
    rpc_node *n = arg;
    rpc_node_handle(n, "session.open", fake_open, NULL);
    rpc_node_handle(n, "session.prepare", fake_garbage, NULL);
    rpc_node_handle(n, "session.exec", fake_garbage, NULL);
    rpc_node_handle(n, "session.set", fake_garbage, NULL);
    rpc_node_handle(n, "session.close", fake_garbage, NULL);
}

static void test_garbage_from_gateway(void **state)
{
    (void)state;
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.listen_addr = "127.0.0.1:0";
    cfg.node_id = 1;
    rpc_node *n = NULL;
    merr e = {0};
    assert_int_equal(rpc_node_start(&cfg, &n, &e), 0);
    assert_int_equal(rpc_node_run_sync(n, fake_register, n), 0);
    char addr[64], ci[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_node_port(n));
    ch_conninfo(ci, sizeof(ci), addr, NULL);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), 0);
    meridian_stmt *st = NULL;
    assert_int_equal(meridian_prepare(db, "SELECT 1", -1, &st, NULL), MERIDIAN_PROTOCOL);
    assert_non_null(strstr(meridian_errmsg(db), "undecodable"));
    assert_null(st);
    assert_int_equal(meridian_set_option(db, "read_only", "on"), MERIDIAN_PROTOCOL);
    /* A garbage row batch and result: the statement fails, nothing breaks;
     * a gateway that lies is left for the next one. */
    int rc = meridian_exec(db, "SELECT 1", NULL, NULL, NULL);
    assert_true(rc == MERIDIAN_UNAVAILABLE || rc == MERIDIAN_PROTOCOL);
    assert_non_null(strstr(meridian_errmsg(db), "undecodable"));
    meridian_close(db);
    rpc_node_stop(n);
}

static int waiting(void *arg)
{
    session_service_stats st;
    session_service_stats_get(arg, &st);
    return st.batches_waiting > 0;
}

static void test_shutdown_while_streaming(void **state)
{
    (void)state;
    ch_server s;
    assert_int_equal(ch_server_start(&s, 1, "", NULL, 8), 0);
    char ci[256];
    ch_conninfo(ci, sizeof(ci), s.addr, NULL);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), 0);
    meridian_stmt *st = NULL;
    assert_int_equal(meridian_prepare(db,
                                      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                      "FROM c) SELECT x FROM c",
                                      -1, &st, NULL),
                     0);
    assert_int_equal(meridian_step(st), MERIDIAN_ROW);
    assert_true(ch_wait(waiting, s.svc));
    /* The worker waits for credit that will never come; shutting down must
     * not wait for it. */
    session_service_free(s.svc);
    s.svc = NULL;
    int rc;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW) {
    }
    assert_int_not_equal(rc, MERIDIAN_DONE);
    meridian_finalize(st);
    meridian_close(db);
    ch_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_session_limit),
        cmocka_unit_test(test_idle_reaping),
        cmocka_unit_test(test_row_too_big),
        cmocka_unit_test(test_garbage_from_gateway),
        cmocka_unit_test(test_shutdown_while_streaming),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
