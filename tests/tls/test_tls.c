/* TLS on the rpc transport over real loopback sockets: mutual TLS between
 * nodes of one CA works for calls, streams and large frames and tells
 * handlers who called; a peer with another CA's certificate, an expired
 * certificate, no certificate, a client certificate posing as a node, a
 * plaintext peer against a TLS node and a TLS peer against a plaintext node
 * are each refused with a clear reason at the caller, counted at the
 * refusing node, and no request reaches a handler. Certificates are minted
 * per run with rpc/tls_cert.h into a fresh temporary directory. */
#include "../rpc/harness.h"
#include "common/crc32c.h"
#include "common/mtime.h"
#include "rpc/tls.h"
#include "rpc/tls_cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static char dir[64];
static char p_ca[256], p_cakey[256], p_node[256], p_nodekey[256], p_cli[256], p_clikey[256];
static char p_ca2[256], p_ca2key[256], p_node2[256], p_node2key[256];
static char p_old[256], p_oldkey[256];
static char p_carol[256], p_carolkey[256];

static void path(char *out, const char *name)
{
    snprintf(out, 256, "%s/%s", dir, name);
}

static int make_certs(void)
{
    snprintf(dir, sizeof(dir), "/tmp/meridian-tls-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    path(p_ca, "ca.crt"), path(p_cakey, "ca.key"), path(p_node, "node.crt");
    path(p_nodekey, "node.key"), path(p_cli, "client.root.crt"), path(p_clikey, "client.root.key");
    path(p_ca2, "ca2.crt"), path(p_ca2key, "ca2.key"), path(p_node2, "node2.crt");
    path(p_node2key, "node2.key"), path(p_old, "old.crt"), path(p_oldkey, "old.key");
    path(p_carol, "client.carol.crt"), path(p_carolkey, "client.carol.key");
    const char *hosts[] = {"127.0.0.1", "::1", "localhost"};
    tls_cert_opts ok = {.not_before = -3600, .not_after = TLS_CERT_YEAR};
    tls_cert_opts expired = {.not_before = -2 * TLS_CERT_DAY, .not_after = -TLS_CERT_DAY};
    merr e = {0};
    if (tls_cert_create_ca(p_ca, p_cakey, &ok, &e) ||
        tls_cert_create(p_ca, p_cakey, TLS_NODE_CN, hosts, 3, 1, p_node, p_nodekey, &ok, &e) ||
        tls_cert_create(p_ca, p_cakey, "root", NULL, 0, 0, p_cli, p_clikey, &ok, &e) ||
        tls_cert_create(p_ca, p_cakey, "carol", NULL, 0, 0, p_carol, p_carolkey, &ok, &e) ||
        tls_cert_create_ca(p_ca2, p_ca2key, &ok, &e) ||
        tls_cert_create(p_ca2, p_ca2key, TLS_NODE_CN, hosts, 3, 1, p_node2, p_node2key, &ok, &e) ||
        tls_cert_create(p_ca, p_cakey, TLS_NODE_CN, hosts, 3, 1, p_old, p_oldkey, &expired, &e)) {
        fprintf(stderr, "make_certs: %s\n", merr_msg(&e));
        return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return make_certs();
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Long enough never to turn up by chance in ciphertext. */
#define CLUSTER "tls-test-cluster-7f3a9c"
#define METHOD  "tls-test.WhoAmI-method"

/* A node: ca/cert/key NULL = insecure; listen NULL = dial only. */
static rpc_node *start(uint64_t id, const char *listen, const char *ca, const char *cert,
                       const char *key)
{
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = id;
    cfg.cluster_id = CLUSTER;
    cfg.listen_addr = listen;
    cfg.tls_ca = ca;
    cfg.tls_cert = cert;
    cfg.tls_key = key;
    cfg.backoff_initial_ns = 20 * MTIME_MS;
    cfg.backoff_max_ns = 200 * MTIME_MS;
    rpc_node *n = NULL;
    merr e = {0};
    if (rpc_node_start(&cfg, &n, &e)) fprintf(stderr, "start: %s\n", merr_msg(&e));
    return n;
}

/* Records who called, then echoes. */
static struct who {
    pthread_mutex_t mu;
    int calls;
    char user[TLS_USER_MAX];
    int is_node, verified;
    uint64_t from;
} who = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void who_echo(void *arg, rpc_req *req)
{
    (void)arg;
    pthread_mutex_lock(&who.mu);
    who.calls++;
    snprintf(who.user, sizeof(who.user), "%s", req->peer_user);
    who.is_node = req->peer_is_node;
    who.verified = req->peer_verified;
    who.from = req->from;
    pthread_mutex_unlock(&who.mu);
    rpc_reply(req, 0, NULL, req->payload, req->len);
}

static int who_calls(void)
{
    pthread_mutex_lock(&who.mu);
    int n = who.calls;
    pthread_mutex_unlock(&who.mu);
    return n;
}

static rpc_node *server(const char *ca, const char *cert, const char *key, char *addr)
{
    rpc_node *s = start(2, "127.0.0.1:0", ca, cert, key);
    assert_non_null(s);
    th_handle(s, "who", who_echo, NULL);
    th_addr(s, 0, addr, 64);
    return s;
}

struct gw {
    rpc_node *n;
    uint64_t handle;
    const char *addr;
    int rc;
};

static void gw_add(void *arg)
{
    struct gw *g = arg;
    g->rc = rpc_node_add_gateway(g->n, g->handle, g->addr);
}

static void add_gateway(rpc_node *n, uint64_t handle, const char *addr)
{
    struct gw g = {n, handle, addr, 0};
    rpc_node_run_sync(n, gw_add, &g);
    assert_int_equal(g.rc, 0);
}

static void test_mutual_tls_identity(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    rpc_node *a = start(1, NULL, p_ca, p_node, p_nodekey);
    rpc_node *cl = start(0, NULL, p_ca, p_cli, p_clikey);
    assert_non_null(a);
    assert_non_null(cl);
    th_add_peer(a, 2, addr);
    th_result r;
    assert_int_equal(th_call(a, 2, "who", "hi", 2, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.payload, "hi", 2);
    assert_string_equal(who.user, "node");
    assert_int_equal(who.is_node, 1);
    assert_int_equal(who.verified, 1);
    assert_int_equal(who.from, 1);
    /* A client (node id 0) with a client certificate: its user name. */
    add_gateway(cl, 9, addr);
    assert_int_equal(th_call(cl, 9, "who", "yo", 2, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, 0);
    assert_string_equal(who.user, "root");
    assert_int_equal(who.is_node, 0);
    assert_int_equal(who.verified, 1);
    assert_int_equal(who.from, 0);
    rpc_node_stop(a);
    rpc_node_stop(cl);
    rpc_node_stop(s);
}

/* ---- large frames, many calls, streams ---- */

static void big_handler(void *arg, rpc_req *req)
{
    /* Replies with a frame of the requested size (payload: u32 size). */
    (void)arg;
    uint32_t n = 0;
    if (req->len >= 4) memcpy(&n, req->payload, 4);
    uint8_t *b = malloc(n ? n : 1);
    for (uint32_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 7 + 3);
    rpc_reply(req, 0, NULL, b, n);
    free(b);
}

static void crc_handler(void *arg, rpc_req *req)
{
    (void)arg;
    uint32_t c = crc32c(0, req->payload, req->len);
    rpc_reply(req, 0, NULL, &c, 4);
}

struct bigcall {
    rpc_node *n;
    uint32_t want;
    th_cond done;
    int code;
    size_t len;
    int pattern_ok;
};

static void big_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    struct bigcall *b = arg;
    (void)msg;
    b->code = code;
    b->len = len;
    b->pattern_ok = 1;
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(i * 7 + 3)) b->pattern_ok = 0;
    th_cond_add(&b->done, 1);
}

static void big_start(void *arg)
{
    struct bigcall *b = arg;
    if (rpc_node_call(b->n, 2, "big", &b->want, 4, th_now_us() + 20000000, big_reply, b, NULL))
        th_cond_add(&b->done, 1);
}

#define NSTREAM 200
struct scan {
    uint32_t next;
};

static void scan_pump(void *arg, rpc_req *req)
{
    struct scan *s = arg;
    while (s->next < NSTREAM) {
        if (rpc_stream_send(req, &s->next, 4)) return; /* out of credit: on_writable resumes */
        s->next++;
    }
    rpc_reply(req, 0, NULL, NULL, 0);
    free(s);
}

static void scan_handler(void *arg, rpc_req *req)
{
    (void)arg;
    struct scan *s = calloc(1, sizeof(*s));
    rpc_stream_on_writable(req, scan_pump, s);
    scan_pump(s, req);
}

struct reader {
    rpc_node *n;
    uint32_t got, bad;
    int code;
    th_cond done;
};

static int reader_item(void *arg, const uint8_t *p, size_t len)
{
    struct reader *r = arg;
    uint32_t v;
    if (len != 4 || (memcpy(&v, p, 4), v != r->got)) r->bad++;
    r->got++;
    return 1;
}

static void reader_end(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    struct reader *r = arg;
    (void)msg, (void)p, (void)len;
    r->code = code;
    th_cond_add(&r->done, 1);
}

static void reader_start(void *arg)
{
    struct reader *r = arg;
    if (rpc_node_call_stream(r->n, 2, "scan", NULL, 0, th_now_us() + 20000000, 4, reader_item,
                             reader_end, r, NULL))
        th_cond_add(&r->done, 1);
}

static void test_frames_and_streams_over_tls(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    th_handle(s, "big", big_handler, NULL);
    th_handle(s, "crc", crc_handler, NULL);
    th_handle(s, "scan", scan_handler, NULL);
    rpc_node *a = start(1, NULL, p_ca, p_node, p_nodekey);
    th_add_peer(a, 2, addr);
    /* 8 MiB request: many TLS records, reassembled into one frame. */
    size_t n = 8u << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 31 + (i >> 13));
    th_result r;
    assert_int_equal(th_call(a, 2, "crc", buf, n, th_now_us() + 20000000, &r), 0);
    assert_int_equal(r.code, 0);
    uint32_t want = crc32c(0, buf, n), got;
    memcpy(&got, r.payload, 4);
    assert_int_equal(got, want);
    free(buf);
    /* 6 MiB reply. */
    struct bigcall b = {.n = a, .want = 6u << 20};
    th_cond_init(&b.done);
    assert_int_equal(rpc_node_post(a, big_start, &b), 0);
    assert_true(th_cond_wait(&b.done, 1));
    assert_int_equal(b.code, 0);
    assert_int_equal(b.len, 6u << 20);
    assert_true(b.pattern_ok);
    /* A stream with a small window: credit frames flow back over TLS. */
    struct reader rd = {.n = a};
    th_cond_init(&rd.done);
    assert_int_equal(rpc_node_post(a, reader_start, &rd), 0);
    assert_true(th_cond_wait(&rd.done, 1));
    assert_int_equal(rd.code, 0);
    assert_int_equal(rd.got, NSTREAM);
    assert_int_equal(rd.bad, 0);
    rpc_metrics m;
    th_metrics(s, &m);
    assert_int_equal(m.queue_bytes, 0); /* the gauges balance with ciphertext writes */
    rpc_node_stop(a);
    rpc_node_stop(s);
}

/* ---- refusals ---- */

/* Dials the server from `c` (node id `id` > 0: a peer; 0: a gateway) and
 * expects the call to fail with MERR_PROTOCOL naming `why`; the handler
 * never runs and the server counts a refusal. */
static void expect_refused(rpc_node *s, rpc_node *c, uint64_t id, const char *addr, const char *why)
{
    assert_non_null(c);
    int calls0 = who_calls();
    rpc_metrics m0, m1;
    th_metrics(s, &m0);
    if (id)
        th_add_peer(c, 2, addr);
    else
        add_gateway(c, 2, addr);
    th_result r;
    assert_int_equal(th_call(c, 2, "who", "x", 1, th_now_us() + 10000000, &r), 0);
    if (r.code != MERR_PROTOCOL || !strstr(r.msg, why))
        fail_msg("want MERR_PROTOCOL with '%s', got %d: %s", why, r.code, r.msg);
    th_metrics(s, &m1);
    assert_true(m1.handshakes_refused > m0.handshakes_refused ||
                m1.conns_up == m0.conns_up); /* refused here or by the dialer */
    assert_int_equal(m1.conns_up, m0.conns_up);
    assert_int_equal(who_calls(), calls0);
}

static void test_other_ca_refused(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    /* Trusts CA2 and holds a CA2 certificate: it rejects the server's. */
    rpc_node *c = start(1, NULL, p_ca2, p_node2, p_node2key);
    expect_refused(s, c, 1, addr, "not signed by this cluster's CA");
    rpc_node_stop(c);
    /* Trusts our CA but holds a CA2 certificate: the server rejects it. */
    c = start(1, NULL, p_ca, p_node2, p_node2key);
    rpc_metrics m0, m1;
    th_metrics(s, &m0);
    expect_refused(s, c, 1, addr, "unknown ca");
    th_metrics(s, &m1);
    assert_true(m1.handshakes_refused > m0.handshakes_refused);
    rpc_node_stop(c);
    rpc_node_stop(s);
}

static void test_expired_refused(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    rpc_node *c = start(1, NULL, p_ca, p_old, p_oldkey);
    rpc_metrics m0, m1;
    th_metrics(s, &m0);
    expect_refused(s, c, 1, addr, "certificate expired");
    th_metrics(s, &m1);
    assert_true(m1.handshakes_refused > m0.handshakes_refused);
    rpc_node_stop(c);
    /* And a node serving an expired certificate is refused by its dialer. */
    rpc_node *old = server(p_ca, p_old, p_oldkey, addr);
    c = start(1, NULL, p_ca, p_node, p_nodekey);
    expect_refused(old, c, 1, addr, "certificate has expired");
    rpc_node_stop(c);
    rpc_node_stop(old);
    rpc_node_stop(s);
}

/* A client with no certificate (a CA only: a password user) completes TLS
 * but is anonymous: rpc refuses it every method outside session.*, whose
 * handlers see peer_anon and make it authenticate. It cannot claim a node id. */
static void session_echo(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, 0, NULL, req->peer_anon ? "anon" : "known", req->peer_anon ? 4 : 5);
}

/* cl, connected to the node at addr as gateway 9, reaches session.* only:
 * "who" is refused with a message holding why and its handler never runs;
 * session.test answers and saw the caller as `as` ("anon" or "known"). */
static void expect_session_only(rpc_node *cl, const char *addr, const char *why, const char *as)
{
    assert_non_null(cl);
    int before = who_calls();
    add_gateway(cl, 9, addr);
    th_result r;
    assert_int_equal(th_call(cl, 9, "who", "yo", 2, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, MERR_INVALID);
    assert_non_null(strstr(r.msg, why));
    assert_int_equal(who_calls(), before); /* the handler never ran */
    assert_int_equal(th_call(cl, 9, "session.test", "x", 1, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.payload, as, strlen(as));
}

static void test_no_cert_is_anonymous(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    th_handle(s, "session.test", session_echo, NULL);
    rpc_metrics m0, m1;
    th_metrics(s, &m0);
    int before = who_calls();
    rpc_node *cl = start(0, NULL, p_ca, NULL, NULL);
    expect_session_only(cl, addr, "without a client certificate may only open SQL sessions",
                        "anon");
    th_result r;
    th_metrics(s, &m1);
    assert_true(m1.anon_refused > m0.anon_refused);
    rpc_node_stop(cl);
    /* Without a certificate nobody can pose as a node. */
    rpc_node *fake = start(7, NULL, p_ca, NULL, NULL);
    th_add_peer(fake, 2, addr);
    assert_int_equal(th_call(fake, 2, "who", "hi", 2, th_now_us() + 3000000, &r), 0);
    assert_int_not_equal(r.code, 0);
    assert_int_equal(who_calls(), before);
    rpc_node_stop(fake);
    rpc_node_stop(s);
}

/* A SQL user's client certificate (carol, not root) opens SQL sessions and
 * nothing else: the node's internal methods (raw KV, transactions, ranges,
 * the address book) would go around the GRANTs its session checks. root,
 * the operator tools' identity, and nodes still reach them. */
static void test_sql_user_cert_is_session_only(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    th_handle(s, "session.test", session_echo, NULL);
    rpc_metrics m0, m1;
    th_metrics(s, &m0);
    rpc_node *cl = start(0, NULL, p_ca, p_carol, p_carolkey);
    expect_session_only(
        cl, addr, "internal to the cluster (nodes and the root user only); user carol", "known");
    th_result r;
    th_metrics(s, &m1);
    assert_int_equal(m1.internal_refused, m0.internal_refused + 1);
    rpc_node_stop(cl);
    /* root's certificate still reaches them. */
    rpc_node *rt = start(0, NULL, p_ca, p_cli, p_clikey);
    add_gateway(rt, 9, addr);
    assert_int_equal(th_call(rt, 9, "who", "yo", 2, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, 0);
    assert_string_equal(who.user, "root");
    rpc_node_stop(rt);
    rpc_node_stop(s);
}

/* A dialer checks that the node certificate lists the address it dialed. */
static void test_address_not_in_cert_refused(void **state)
{
    (void)state;
    char cert[256], key[256], addr[64];
    path(cert, "elsewhere.crt");
    path(key, "elsewhere.key");
    const char *hosts[] = {"10.9.9.9", "elsewhere.example"};
    tls_cert_opts ok = {.not_before = -3600, .not_after = TLS_CERT_DAY};
    merr e = {0};
    assert_int_equal(tls_cert_create(p_ca, p_cakey, TLS_NODE_CN, hosts, 2, 1, cert, key, &ok, &e),
                     0);
    rpc_node *s = server(p_ca, cert, key, addr);
    rpc_node *c = start(1, NULL, p_ca, p_node, p_nodekey);
    expect_refused(s, c, 1, addr, "does not list the address dialed");
    rpc_node_stop(c);
    rpc_node_stop(s);
    /* Over IPv6 the node certificate's ::1 SAN is what matters. */
    rpc_node *s6 = start(2, "[::1]:0", p_ca, p_node, p_nodekey);
    if (!s6) return; /* no IPv6 loopback here */
    th_handle(s6, "who", who_echo, NULL);
    th_addr(s6, 1, addr, sizeof(addr));
    c = start(1, NULL, p_ca, p_node, p_nodekey);
    th_add_peer(c, 2, addr);
    th_result r;
    assert_int_equal(th_call(c, 2, "who", "6", 1, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, 0);
    rpc_node_stop(c);
    rpc_node_stop(s6);
}

/* Rotation without restart: the server's expired certificate is replaced
 * on disk and reloaded; new connections succeed. A broken replacement is
 * refused and the working certificate stays. */
static void test_reload_certificates(void **state)
{
    (void)state;
    char cert[256], key[256], addr[64], cmd[1200];
    path(cert, "rot.crt");
    path(key, "rot.key");
    snprintf(cmd, sizeof(cmd), "cp -p %s %s && cp -p %s %s", p_old, cert, p_oldkey, key);
    assert_int_equal(system(cmd), 0);
    rpc_node *s = server(p_ca, cert, key, addr);
    rpc_node *c = start(1, NULL, p_ca, p_node, p_nodekey);
    expect_refused(s, c, 1, addr, "certificate has expired");
    snprintf(cmd, sizeof(cmd), "cp -p %s %s && cp -p %s %s", p_node, cert, p_nodekey, key);
    assert_int_equal(system(cmd), 0);
    merr e = {0};
    assert_int_equal(rpc_node_reload_tls(s, &e), 0);
    int64_t until = mtime_mono_ns() + TH_TIMEOUT_S * MTIME_S;
    th_result r = {.code = -1};
    while (mtime_mono_ns() < until) { /* the dialer may still be in backoff */
        if (th_call(c, 2, "who", "r", 1, th_now_us() + 10000000, &r) == 0 && r.code == 0) break;
        usleep(10000);
    }
    assert_int_equal(r.code, 0);
    /* A key that does not match: refused, the old pair stays in use. */
    snprintf(cmd, sizeof(cmd), "cp -p %s %s", p_clikey, key);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rpc_node_reload_tls(s, &e), MERR_INVALID);
    rpc_node_stop(c);
    c = start(1, NULL, p_ca, p_node, p_nodekey);
    th_add_peer(c, 2, addr);
    assert_int_equal(th_call(c, 2, "who", "r", 1, th_now_us() + 10000000, &r), 0);
    assert_int_equal(r.code, 0);
    rpc_node_stop(c);
    rpc_node_stop(s);
    /* Nothing to reload on an insecure node. */
    rpc_node *plain = start(3, NULL, NULL, NULL, NULL);
    assert_int_equal(rpc_node_reload_tls(plain, &e), MERR_INVALID);
    rpc_node_stop(plain);
}

static void test_client_cert_cannot_be_a_node(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    /* A client certificate claiming node id 5. */
    rpc_node *c = start(5, NULL, p_ca, p_cli, p_clikey);
    expect_refused(s, c, 5, addr, "cannot act as node 5");
    rpc_node_stop(c);
    /* A "node" serving a client certificate is refused by its dialer. */
    rpc_node *fake = server(p_ca, p_cli, p_clikey, addr);
    c = start(1, NULL, p_ca, p_node, p_nodekey);
    expect_refused(fake, c, 1, addr, "a client certificate cannot act as a node");
    rpc_node_stop(c);
    rpc_node_stop(fake);
    rpc_node_stop(s);
}

static void test_plaintext_mismatch_refused(void **state)
{
    (void)state;
    char addr[64];
    rpc_node *s = server(p_ca, p_node, p_nodekey, addr);
    /* An insecure client against a TLS node. */
    rpc_node *c = start(0, NULL, NULL, NULL, NULL);
    expect_refused(s, c, 0, addr, "requires TLS");
    rpc_node_stop(c);
    rpc_node_stop(s);
    /* A TLS node against an insecure one. */
    rpc_node *plain = server(NULL, NULL, NULL, addr);
    c = start(1, NULL, p_ca, p_node, p_nodekey);
    rpc_metrics m0, m1;
    th_metrics(plain, &m0);
    expect_refused(plain, c, 1, addr, "runs insecure");
    th_metrics(plain, &m1);
    assert_true(m1.handshakes_refused > m0.handshakes_refused);
    rpc_node_stop(c);
    rpc_node_stop(plain);
}

static void test_bad_tls_config(void **state)
{
    (void)state;
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.tls_ca = p_ca;
    cfg.tls_cert = p_node;
    cfg.tls_key = p_clikey; /* not the certificate's key */
    rpc_node *n = NULL;
    merr e = {0};
    assert_int_equal(rpc_node_start(&cfg, &n, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "does not belong to"));
    cfg.tls_key = "/nonexistent/node.key";
    assert_int_equal(rpc_node_start(&cfg, &n, &e), MERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "/nonexistent/node.key"));
    /* A key others can read is refused. */
    char loose[256];
    path(loose, "loose.key");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp %s %s && chmod 644 %s", p_nodekey, loose, loose);
    assert_int_equal(system(cmd), 0);
    cfg.tls_key = loose;
    assert_int_equal(rpc_node_start(&cfg, &n, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "chmod 600"));
    cfg.tls_key = NULL; /* half a configuration never falls back to plaintext */
    assert_int_equal(rpc_node_start(&cfg, &n, &e), MERR_INVALID);
    assert_null(n);
}

/* Raw TCP against a TLS node: a silent client and one sending a broken
 * TLS record are both closed (the handshake timeout and a TLS error), and
 * neither reaches a handler nor hangs the node. */
static int raw_connect(rpc_node *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(rpc_node_port(s))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = TH_TIMEOUT_S}; /* hang guard only */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until the node closes; returns 1 on EOF/reset, 0 on the hang guard. */
static int read_until_closed(int fd)
{
    char b[256];
    for (;;) {
        ssize_t r = read(fd, b, sizeof(b));
        if (r == 0) return 1;
        if (r < 0) return errno == ECONNRESET;
    }
}

static void test_raw_peers_closed(void **state)
{
    (void)state;
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = 2;
    cfg.listen_addr = "127.0.0.1:0";
    cfg.tls_ca = p_ca, cfg.tls_cert = p_node, cfg.tls_key = p_nodekey;
    cfg.handshake_timeout_ns = 300 * MTIME_MS;
    rpc_node *s = NULL;
    merr e = {0};
    assert_int_equal(rpc_node_start(&cfg, &s, &e), 0);
    th_handle(s, "who", who_echo, NULL);
    int calls0 = who_calls();
    rpc_metrics m0, m1;
    th_metrics(s, &m0);
    int silent = raw_connect(s);
    assert_true(read_until_closed(silent));
    close(silent);
    /* A TLS handshake record whose body is garbage. */
    int bad = raw_connect(s);
    const uint8_t junk[] = {0x16, 0x03, 0x01, 0x00, 0x08, 'g', 'a', 'r', 'b', 'a', 'g', 'e', '!'};
    assert_int_equal(write(bad, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    assert_true(read_until_closed(bad));
    close(bad);
    th_metrics(s, &m1);
    assert_true(m1.handshake_timeouts > m0.handshake_timeouts);
    assert_true(m1.handshakes_refused > m0.handshakes_refused);
    assert_int_equal(m1.conns_up, m0.conns_up);
    assert_int_equal(who_calls(), calls0);
    rpc_node_stop(s);
}

static void test_cert_files(void **state)
{
    (void)state;
    merr e = {0};
    mbuf line = MBUF_INIT;
    assert_int_equal(tls_cert_describe(p_old, &line, &e), 0);
    assert_non_null(strstr((char *)line.data, "EXPIRED"));
    mbuf_reset(&line);
    assert_int_equal(tls_cert_describe(p_node, &line, &e), 0);
    assert_non_null(strstr((char *)line.data, "hosts=127.0.0.1,::1,localhost"));
    mbuf_free(&line);
    /* Never replaced without overwrite; keys 0600. */
    tls_cert_opts o = {.not_before = -3600, .not_after = TLS_CERT_YEAR};
    assert_int_equal(tls_cert_create(p_ca, p_cakey, "root", NULL, 0, 0, p_cli, p_clikey, &o, &e),
                     MERR_EXISTS);
    struct stat st;
    assert_int_equal(stat(p_clikey, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A CA key that is not the CA's: refused by name. */
    char other[256];
    path(other, "x.crt");
    o.overwrite = 1;
    assert_int_equal(tls_cert_create(p_ca, p_ca2key, "x", NULL, 0, 0, other, other, &o, &e),
                     MERR_INVALID);
    assert_non_null(strstr(e.msg, "does not belong"));
    const char *bad_host[] = {"a,DNS:evil"};
    assert_int_equal(
        tls_cert_create(p_ca, p_cakey, TLS_NODE_CN, bad_host, 1, 1, other, other, &o, &e),
        MERR_INVALID);
    assert_int_equal(tls_cert_valid_user("root", &e), 0);
    assert_int_equal(tls_cert_valid_user("node", &e), MERR_INVALID);
    assert_int_equal(tls_cert_valid_user("../x", &e), MERR_INVALID);
    assert_int_equal(tls_cert_valid_user("", &e), MERR_INVALID);
}

/* ---- what travels on the wire ---- */

/* A one-connection TCP relay on its own thread that records every byte in
 * both directions, so a test can look at the wire. */
typedef struct relay {
    int lfd, port, target_port;
    pthread_t th;
    mbuf seen;
} relay;

static void *relay_main(void *arg)
{
    relay *r = arg;
    int a = accept(r->lfd, NULL, NULL);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(r->target_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (a < 0 || connect(b, (struct sockaddr *)&sa, sizeof(sa))) goto out;
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    uint8_t buf[65536];
    for (;;) {
        if (poll(p, 2, TH_TIMEOUT_S * 1000) <= 0) break;
        int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
        ssize_t n = read(p[from].fd, buf, sizeof(buf));
        if (n <= 0) break;
        mbuf_append(&r->seen, buf, (size_t)n);
        if (write(p[1 - from].fd, buf, (size_t)n) != n) break;
    }
out:
    if (a >= 0) close(a);
    close(b);
    return NULL;
}

static void relay_start(relay *r, int target_port)
{
    memset(r, 0, sizeof(*r));
    r->target_port = target_port;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(r->lfd, 1), 0);
    getsockname(r->lfd, (struct sockaddr *)&sa, &len);
    r->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&r->th, NULL, relay_main, r), 0);
}

static void relay_join(relay *r)
{
    pthread_join(r->th, NULL);
    close(r->lfd);
}

/* Runs one call through a relay; returns 1 if the marker, the method or the
 * cluster id were visible on the wire. */
static int wire_shows_secrets(int tls)
{
    char addr[64];
    rpc_node *s = tls ? server(p_ca, p_node, p_nodekey, addr) : server(NULL, NULL, NULL, addr);
    rpc_node *a = tls ? start(1, NULL, p_ca, p_node, p_nodekey) : start(1, NULL, NULL, NULL, NULL);
    relay r;
    relay_start(&r, rpc_node_port(s));
    char via[64];
    snprintf(via, sizeof(via), "127.0.0.1:%d", r.port);
    th_add_peer(a, 2, via);
    th_handle(s, METHOD, who_echo, NULL);
    static const char marker[] = "SECRET-MARKER-0123456789";
    th_result res;
    assert_int_equal(th_call(a, 2, METHOD, marker, sizeof(marker), th_now_us() + 10000000, &res),
                     0);
    assert_int_equal(res.code, 0);
    assert_memory_equal(res.payload, marker, sizeof(marker));
    rpc_node_stop(a); /* closes the connection: the relay ends */
    relay_join(&r);
    rpc_node_stop(s);
    int shown = memmem(r.seen.data, r.seen.len, marker, sizeof(marker) - 1) ||
                memmem(r.seen.data, r.seen.len, METHOD, strlen(METHOD)) ||
                memmem(r.seen.data, r.seen.len, CLUSTER, strlen(CLUSTER));
    mbuf_free(&r.seen);
    return shown;
}

static void test_nothing_in_clear_on_the_wire(void **state)
{
    (void)state;
    assert_true(wire_shows_secrets(0)); /* the probe sees plaintext when there is some */
    assert_false(wire_shows_secrets(1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_tls_identity),
        cmocka_unit_test(test_frames_and_streams_over_tls),
        cmocka_unit_test(test_other_ca_refused),
        cmocka_unit_test(test_expired_refused),
        cmocka_unit_test(test_no_cert_is_anonymous),
        cmocka_unit_test(test_sql_user_cert_is_session_only),
        cmocka_unit_test(test_client_cert_cannot_be_a_node),
        cmocka_unit_test(test_address_not_in_cert_refused),
        cmocka_unit_test(test_reload_certificates),
        cmocka_unit_test(test_plaintext_mismatch_refused),
        cmocka_unit_test(test_bad_tls_config),
        cmocka_unit_test(test_raw_peers_closed),
        cmocka_unit_test(test_cert_files),
        cmocka_unit_test(test_nothing_in_clear_on_the_wire),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
