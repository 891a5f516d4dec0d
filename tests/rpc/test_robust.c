/* rpc under bad input and failure, over real sockets: floods of garbage
 * bytes, undecodable, oversized, truncated and out-of-order frames, a peer
 * of another cluster or protocol version, the wrong node at an address, a
 * peer that never reads (bounded send queue), and a peer process killed and
 * restarted (reconnect with backoff). The node must log, close that one
 * connection, keep serving, and never crash or leak (ASan build). */
#include "harness.h"
#include "common/mtime.h"
#include "proto/rpc.pb-c.h"
#include "rpc/frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

extern char **environ;

static rpc_node *a, *b;
static char addr_b[64];
static pid_t child = -1; /* the peer process, killed by teardown if a test failed */

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    th_opts oa = {.id = 1, .listen = "127.0.0.1:0"};
    th_opts ob = {.id = 2, .listen = "127.0.0.1:0", .max_frame = 1 << 20};
    a = th_start(&oa);
    b = th_start(&ob);
    if (!a || !b) return -1;
    th_addr(b, 0, addr_b, sizeof(addr_b));
    th_add_peer(a, 2, addr_b);
    th_handle(b, "echo", th_echo, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    rpc_node_stop(a);
    rpc_node_stop(b);
    return 0;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = TH_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_write(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;
    while (n) {
        ssize_t w = write(fd, q, n);
        if (w <= 0) return; /* the server closed on us: expected */
        q += w;
        n -= (size_t)w;
    }
}

/* Reads until the server closes; fails the test on a receive timeout. */
static void expect_closed(int fd)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno == ECONNRESET)) break;
        assert_true(r > 0); /* r < 0 with EAGAIN: the server kept it open */
    }
    close(fd);
}

static void still_serving(void)
{
    th_result r;
    assert_int_equal(th_call(a, 2, "echo", "ok", 2, 0, &r), 0);
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.payload, "ok", 2);
}

static uint64_t frame_errors(rpc_node *n)
{
    rpc_metrics m;
    th_metrics(n, &m);
    return m.frame_errors;
}

static void test_garbage_flood(void **state)
{
    (void)state;
    uint64_t fe0 = frame_errors(b);
    static uint8_t junk[1 << 20];
    rpc_rng rng;
    rpc_rng_seed(&rng, 12345);
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < sizeof(junk); i += 8) {
            uint64_t v = rpc_rng_next(&rng);
            memcpy(junk + i, &v, 8);
        }
        if (round & 1) junk[0] = junk[1] = 0; /* plausible small lengths too */
        int fd = raw_connect(rpc_node_port(b));
        raw_write(fd, junk, sizeof(junk));
        expect_closed(fd);
        still_serving();
    }
    assert_true(frame_errors(b) >= fe0 + 8);
}

static void send_frame(int fd, const void *body, uint32_t n)
{
    uint8_t hdr[4];
    mbe32_put(hdr, n);
    raw_write(fd, hdr, 4);
    raw_write(fd, body, n);
}

static void test_malformed_frames_close_connection(void **state)
{
    (void)state;
    uint64_t fe0 = frame_errors(b);
    /* Undecodable body with a valid length. */
    int fd = raw_connect(rpc_node_port(b));
    send_frame(fd, "\xff\xff\xff\xff\xff", 5);
    expect_closed(fd);
    /* Oversized: refused from the header alone (b's limit is 1 MiB). */
    fd = raw_connect(rpc_node_port(b));
    uint8_t hdr[4];
    mbe32_put(hdr, (2u << 20));
    raw_write(fd, hdr, 4);
    expect_closed(fd);
    /* Before the handshake a frame may not be big at all: refused from the
     * header alone, though under b's 1 MiB limit (no waiting for a body). */
    fd = raw_connect(rpc_node_port(b));
    mbe32_put(hdr, (1u << 20) - 1);
    raw_write(fd, hdr, 4);
    expect_closed(fd);
    /* Zero-length frame. */
    fd = raw_connect(rpc_node_port(b));
    mbe32_put(hdr, 0);
    raw_write(fd, hdr, 4);
    expect_closed(fd);
    /* Truncated: half a frame, then the writer hangs up. */
    fd = raw_connect(rpc_node_port(b));
    mbe32_put(hdr, 100);
    raw_write(fd, hdr, 4);
    raw_write(fd, "abcdefghij", 10);
    shutdown(fd, SHUT_WR);
    expect_closed(fd);
    /* A well-formed REQUEST before any handshake. */
    fd = raw_connect(rpc_node_port(b));
    mbuf out = MBUF_INIT;
    rpc_env env = {.kind = RPC_KIND_REQUEST, .id = 1, .method = "echo"};
    assert_int_equal(rpc_env_encode(&env, 0, &out, NULL), 0);
    raw_write(fd, out.data, out.len);
    mbuf_free(&out);
    expect_closed(fd);
    assert_int_equal(frame_errors(b), fe0 + 6);
    still_serving();
}

static void test_oversized_from_a_node(void **state)
{
    (void)state;
    size_t big = 2u << 20;
    uint8_t *p = calloc(1, big);
    th_result r;
    /* a's limit is 64 MiB, b's 1 MiB: b closes the connection, a's call
     * fails, and after the backoff the two talk again. */
    assert_int_equal(th_call(a, 2, "echo", p, big, 0, &r), 0);
    assert_int_equal(r.code, MERR_UNAVAILABLE);
    int64_t until = mtime_mono_ns() + TH_TIMEOUT_S * MTIME_S;
    int rc;
    while ((rc = th_call(a, 2, "echo", "ok", 2, 0, &r)) == MERR_UNAVAILABLE &&
           mtime_mono_ns() < until)
        usleep(1000);
    assert_int_equal(rc, 0);
    assert_int_equal(r.code, 0);
    /* A sender refuses to build a frame over its own limit. */
    char addr_a[64];
    th_addr(a, 0, addr_a, sizeof(addr_a));
    th_add_peer(b, 1, addr_a);
    assert_int_equal(th_call(b, 1, "echo", p, big, 0, &r), MERR_TOOBIG);
    free(p);
}

static void test_handshake_version_mismatch(void **state)
{
    (void)state;
    Meridian__Rpc__Handshake hs = MERIDIAN__RPC__HANDSHAKE__INIT;
    hs.protocol_version = 99;
    hs.node_id = 42;
    hs.cluster_id = "test";
    uint8_t body[256];
    size_t n = meridian__rpc__handshake__pack(&hs, body);
    rpc_env env = {.kind = RPC_KIND_HANDSHAKE, .payload = body, .payload_len = n};
    mbuf out = MBUF_INIT;
    assert_int_equal(rpc_env_encode(&env, 0, &out, NULL), 0);
    int fd = raw_connect(rpc_node_port(b));
    raw_write(fd, out.data, out.len);
    mbuf_free(&out);
    /* The refusal comes back as a HandshakeReply, then the close. */
    rpc_decoder d;
    rpc_decoder_init(&d, 0);
    const uint8_t *f = NULL;
    size_t fl = 0;
    int got = 0;
    while (!got) {
        uint8_t buf[512];
        ssize_t r = read(fd, buf, sizeof(buf));
        assert_true(r > 0);
        rpc_decoder_feed(&d, buf, (size_t)r);
        got = rpc_decoder_next(&d, &f, &fl, NULL);
    }
    rpc_arena ar;
    rpc_arena_init(&ar);
    rpc_env re;
    assert_int_equal(rpc_env_decode(f, fl, &ar, &re, NULL), 0);
    assert_int_equal(re.kind, RPC_KIND_HANDSHAKE_REPLY);
    Meridian__Rpc__HandshakeReply *rep =
        meridian__rpc__handshake_reply__unpack(NULL, re.payload_len, re.payload);
    assert_non_null(rep);
    assert_false(rep->accepted);
    assert_non_null(strstr(rep->reason, "incompatible protocol version 99"));
    meridian__rpc__handshake_reply__free_unpacked(rep, NULL);
    rpc_arena_destroy(&ar);
    rpc_decoder_free(&d);
    expect_closed(fd);
}

static rpc_node *peer_err_node;

static void get_peer_error(void *arg)
{
    rpc_node_peer_error(peer_err_node, 2, arg);
}

static void test_cluster_mismatch_and_wrong_node(void **state)
{
    (void)state;
    th_opts o = {.id = 7, .cluster = "another-cluster"};
    rpc_node *x = th_start(&o);
    assert_non_null(x);
    th_add_peer(x, 2, addr_b);
    rpc_metrics m0, m1;
    th_metrics(b, &m0);
    th_result r;
    assert_int_equal(th_call(x, 2, "echo", "x", 1, 0, &r), 0);
    assert_int_equal(r.code, MERR_PROTOCOL);
    assert_non_null(strstr(r.msg, "cluster id mismatch"));
    th_metrics(b, &m1);
    /* At least one refusal: the dialer's backoff may have redialled once more. */
    assert_true(m1.handshakes_refused - m0.handshakes_refused >= 1);
    /* The layers above can ask why the peer is unreachable. */
    merr pe = {0};
    peer_err_node = x;
    rpc_node_run_sync(x, get_peer_error, &pe);
    assert_int_equal(pe.code, MERR_PROTOCOL);
    assert_non_null(strstr(pe.msg, "cluster id mismatch"));
    rpc_node_stop(x);
    /* a thinks node 5 lives at b's address: b answers as node 2. */
    th_add_peer(a, 5, addr_b);
    assert_int_equal(th_call(a, 5, "echo", "x", 1, 0, &r), 0);
    assert_int_equal(r.code, MERR_PROTOCOL);
    assert_non_null(strstr(r.msg, "is node 2, expected node 5"));
}

static void test_send_queue_bounded(void **state)
{
    (void)state;
    /* A listener that accepts at the TCP level and never reads or answers
     * the handshake: every frame stays queued at the sender. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    th_opts o = {.id = 8, .send_queue_max = 64 * 1024};
    rpc_node *x = th_start(&o);
    assert_non_null(x);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    th_add_peer(x, 50, addr);
    static uint8_t payload[1000];
    int ok = 0, rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = th_oneway(x, 50, "m", payload, sizeof(payload));
        if (!rc) ok++;
    }
    assert_int_equal(rc, MERR_BUSY);
    assert_true(ok >= 50 && ok <= 64);
    rpc_metrics m;
    th_metrics(x, &m);
    assert_true(m.queue_bytes <= 64 * 1024);
    assert_int_equal(m.busy_rejections, 1);
    rpc_node_stop(x);
    close(lfd);
}

static void test_handshake_timeout(void **state)
{
    (void)state;
    /* Acceptor side: a client that connects and says nothing is dropped. */
    th_opts o = {.id = 9, .listen = "127.0.0.1:0", .handshake_timeout_ns = 200 * MTIME_MS};
    rpc_node *x = th_start(&o);
    assert_non_null(x);
    int fd = raw_connect(rpc_node_port(x));
    expect_closed(fd);
    rpc_metrics m;
    th_metrics(x, &m);
    assert_int_equal(m.handshake_timeouts, 1);
    /* Dialer side: a listener that never answers the handshake. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    th_add_peer(x, 60, addr);
    th_result r;
    assert_int_equal(th_call(x, 60, "echo", "x", 1, 0, &r), 0);
    assert_int_equal(r.code, MERR_UNAVAILABLE);
    assert_non_null(strstr(r.msg, "handshake timeout"));
    rpc_node_stop(x);
    close(lfd);
}

/* ---- a peer process killed and restarted ---- */

struct peer_events {
    th_cond up, down;
};

static void on_peer(void *arg, uint64_t id, int up)
{
    struct peer_events *p = arg;
    if (id == 3) th_cond_add(up ? &p->up : &p->down, 1);
}

static void set_on_peer(void *arg)
{
    rpc_node_on_peer(a, on_peer, arg);
}

static pid_t spawn_peer(const char *listen)
{
    char *argv[] = {(char *)RPC_PEER_BIN, "3", (char *)listen, "test", NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, RPC_PEER_BIN, NULL, NULL, argv, environ), 0);
    child = pid;
    return pid;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

/* The child registers "echo" just after it starts listening, so a handshake
 * can beat the registration: call until the handler answers (hang guard). */
static void call_until_ok(const char *payload, th_result *r)
{
    int64_t until = mtime_mono_ns() + TH_TIMEOUT_S * MTIME_S;
    while (mtime_mono_ns() < until) {
        if (th_call(a, 3, "echo", payload, 1, 0, r) == 0 && r->code == 0) return;
        usleep(2000);
    }
    fail_msg("peer 3 never answered echo: code %d %s", r->code, r->msg);
}

static void test_peer_process_restart(void **state)
{
    (void)state;
    static struct peer_events ev;
    th_cond_init(&ev.up);
    th_cond_init(&ev.down);
    rpc_node_run_sync(a, set_on_peer, &ev);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    th_add_peer(a, 3, addr);
    pid_t pid = spawn_peer(addr);
    th_result r;
    /* Until the child listens, calls fail (refused, then backoff). */
    int64_t until = mtime_mono_ns() + TH_TIMEOUT_S * MTIME_S;
    while (th_cond_get(&ev.up) == 0 && mtime_mono_ns() < until) {
        if (th_call(a, 3, "echo", "1", 1, 0, &r) == 0 && r.code == 0) break;
        usleep(2000);
    }
    assert_true(th_cond_wait(&ev.up, 1));
    call_until_ok("1", &r);
    rpc_metrics m0, m1;
    th_metrics(a, &m0);
    /* Kill it: the connection drops, the layer above hears peer-down. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    child = -1;
    assert_true(th_cond_wait(&ev.down, 1));
    assert_false(th_call(a, 3, "echo", "2", 1, 0, &r) == 0 && r.code == 0);
    /* Restart on the same address: backoff redials and the peer comes back
     * with no traffic needed. */
    pid = spawn_peer(addr);
    assert_true(th_cond_wait(&ev.up, 2));
    call_until_ok("3", &r);
    th_metrics(a, &m1);
    assert_true(m1.reconnects > m0.reconnects);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    child = -1;
    assert_true(th_cond_wait(&ev.down, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_flood),
        cmocka_unit_test(test_malformed_frames_close_connection),
        cmocka_unit_test(test_oversized_from_a_node),
        cmocka_unit_test(test_handshake_version_mismatch),
        cmocka_unit_test(test_cluster_mismatch_and_wrong_node),
        cmocka_unit_test(test_send_queue_bounded),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_peer_process_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
