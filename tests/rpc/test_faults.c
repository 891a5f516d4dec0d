/* Fault injection over real sockets does exactly what it claims: drop (the
 * exact messages the seeded PRNG picks), duplicate, reorder, delay and the
 * region latency matrix, one-way and two-way partitions, the admin message,
 * and a bad configuration refused. Checked by counters and ordering; the
 * only timing checks are lower bounds (injected latency is at least what
 * was asked). */
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
static th_recorder rec_a, rec_b;

static int setup(void **state)
{
    (void)state;
    th_opts oa = {.id = 1, .listen = "127.0.0.1:0", .locality = "region=us,zone=1"};
    th_opts ob = {.id = 2, .listen = "127.0.0.1:0", .locality = "region=eu,zone=1"};
    a = th_start(&oa);
    b = th_start(&ob);
    if (!a || !b) return -1;
    char addr[64];
    th_addr(b, 0, addr, sizeof(addr));
    th_add_peer(a, 2, addr);
    th_addr(a, 0, addr, sizeof(addr));
    th_add_peer(b, 1, addr);
    th_recorder_init(&rec_a);
    th_recorder_init(&rec_b);
    th_handle(a, "rec", th_record, &rec_a);
    th_handle(b, "rec", th_record, &rec_b);
    th_handle(a, "echo", th_echo, NULL);
    th_handle(b, "echo", th_echo, NULL);
    /* Connect both ways before any fault, so handshakes draw nothing. */
    th_result r;
    th_call(a, 2, "echo", "w", 1, 0, &r);
    th_call(b, 1, "echo", "w", 1, 0, &r);
    return r.code;
}

static int teardown(void **state)
{
    (void)state;
    rpc_node_stop(a);
    rpc_node_stop(b);
    th_recorder_free(&rec_a);
    th_recorder_free(&rec_b);
    return 0;
}

static void reset_rec(th_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    r->n = 0;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->count.mu);
    r->count.n = 0;
    pthread_mutex_unlock(&r->count.mu);
}

/* Sends seq first..first+n-1 as one-way "rec" messages from `from` to `to`. */
static void send_seq(rpc_node *from, uint64_t to, uint32_t first, uint32_t n)
{
    for (uint32_t i = first; i < first + n; i++)
        assert_int_equal(th_oneway(from, to, "rec", &i, 4), 0);
}

/* Clears faults on `from` and sends a barrier message; TCP order means once
 * the barrier arrived, everything sent before it has arrived or is gone. */
static void barrier(rpc_node *from, uint64_t to, th_recorder *r, int64_t expect_before)
{
    assert_int_equal(th_faults(from, "", 1, 0), 0);
    uint32_t mark = 0xFFFFFFFFu;
    assert_int_equal(th_oneway(from, to, "rec", &mark, 4), 0);
    assert_true(th_cond_wait(&r->count, expect_before + 1));
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->n, (size_t)expect_before + 1);
    assert_int_equal(r->seq[r->n - 1], mark);
    r->n--;
    pthread_mutex_unlock(&r->mu);
}

static void test_drop_exactly_what_the_prng_picks(void **state)
{
    (void)state;
    reset_rec(&rec_b);
    const char *spec = "peer=2,drop=0.4";
    assert_int_equal(th_faults(a, spec, 1, 4242), 0);
    send_seq(a, 2, 0, 1000);
    /* Replay the same decisions offline. */
    rpc_faults f;
    rpc_faults_init(&f, 4242);
    assert_int_equal(rpc_faults_parse(&f, spec, NULL), 0);
    uint32_t expect[1000];
    size_t ne = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        rpc_fault_verdict v;
        rpc_faults_out(&f, 2, "us", "eu", &v);
        if (!v.dropped) expect[ne++] = i;
    }
    rpc_faults_free(&f);
    assert_true(ne > 450 && ne < 750);
    barrier(a, 2, &rec_b, (int64_t)ne);
    for (size_t i = 0; i < ne; i++) assert_int_equal(rec_b.seq[i], expect[i]);
    rpc_metrics m;
    th_metrics(a, &m);
    assert_int_equal(m.fault_dropped, 1000 - ne);
}

static void test_duplicate(void **state)
{
    (void)state;
    reset_rec(&rec_b);
    assert_int_equal(th_faults(a, "peer=2,dup=1", 1, 0), 0);
    send_seq(a, 2, 0, 100);
    barrier(a, 2, &rec_b, 200);
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(rec_b.seq[2 * i], i);
        assert_int_equal(rec_b.seq[2 * i + 1], i);
    }
}

static void test_reorder(void **state)
{
    (void)state;
    reset_rec(&rec_b);
    assert_int_equal(th_faults(a, "peer=2,reorder=0.3,hold=30ms", 1, 77), 0);
    send_seq(a, 2, 0, 200);
    assert_int_equal(th_faults(a, "", 1, 0), 0);
    assert_true(th_cond_wait(&rec_b.count, 200));
    /* Every message exactly once, but not in the order sent. */
    static int seen[200];
    memset(seen, 0, sizeof(seen));
    int inversions = 0;
    pthread_mutex_lock(&rec_b.mu);
    assert_int_equal(rec_b.n, 200);
    for (size_t i = 0; i < rec_b.n; i++) {
        assert_true(rec_b.seq[i] < 200);
        seen[rec_b.seq[i]]++;
        if (i && rec_b.seq[i] < rec_b.seq[i - 1]) inversions++;
    }
    pthread_mutex_unlock(&rec_b.mu);
    for (int i = 0; i < 200; i++) assert_int_equal(seen[i], 1);
    assert_true(inversions > 0);
    rpc_metrics m;
    th_metrics(a, &m);
    assert_true(m.fault_reordered > 0);
}

static void test_latency_matrix_and_delay(void **state)
{
    (void)state;
    th_result r;
    rpc_metrics m0, m1;
    /* us -> eu 25 ms one way, configured on both sides: a round trip is at
     * least 50 ms. Same-region traffic would not be delayed. */
    assert_int_equal(th_faults(a, "latency=us:eu:25ms", 1, 0), 0);
    assert_int_equal(th_faults(b, "latency=us:eu:25ms", 1, 0), 0);
    th_metrics(a, &m0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_call(a, 2, "echo", "l", 1, 0, &r), 0);
        assert_int_equal(r.code, 0);
        assert_true(r.rtt_ns >= 50 * MTIME_MS);
    }
    th_metrics(a, &m1);
    assert_int_equal(m1.fault_delayed - m0.fault_delayed, 3); /* one per request */
    /* A region pair not in the matrix: no delay. */
    assert_int_equal(th_faults(a, "latency=us:ap:25ms", 1, 0), 0);
    assert_int_equal(th_faults(b, "", 1, 0), 0);
    th_metrics(a, &m0);
    assert_int_equal(th_call(a, 2, "echo", "l", 1, 0, &r), 0);
    th_metrics(a, &m1);
    assert_int_equal(m1.fault_delayed, m0.fault_delayed);
    /* Fixed delay plus jitter keeps TCP order. */
    reset_rec(&rec_b);
    assert_int_equal(th_faults(a, "peer=2,delay=20ms,jitter=10ms", 1, 5), 0);
    int64_t t0 = mtime_mono_ns();
    send_seq(a, 2, 0, 50);
    assert_true(th_cond_wait(&rec_b.count, 50));
    assert_true(mtime_mono_ns() - t0 >= 20 * MTIME_MS);
    for (uint32_t i = 0; i < 50; i++) assert_int_equal(rec_b.seq[i], i);
    assert_int_equal(th_faults(a, "", 1, 0), 0);
}

static void test_partitions(void **state)
{
    (void)state;
    th_result r;
    rpc_metrics m0, m1;
    /* One-way: a cannot reach b, b still reaches a. */
    reset_rec(&rec_a);
    reset_rec(&rec_b);
    assert_int_equal(th_faults(a, "peer=2,partition=out", 1, 0), 0);
    th_metrics(a, &m0);
    send_seq(a, 2, 0, 10);
    send_seq(b, 1, 100, 10);
    assert_true(th_cond_wait(&rec_a.count, 10));
    th_metrics(a, &m1);
    assert_int_equal(m1.fault_partitioned - m0.fault_partitioned, 10);
    assert_int_equal(th_call(a, 2, "echo", "p", 1, th_now_us() + 100000, &r), 0);
    assert_int_equal(r.code, MERR_TIMEOUT);
    /* Two-way: b's messages to a are now dropped on arrival as well. */
    assert_int_equal(th_faults(a, "peer=2,partition=both", 1, 0), 0);
    th_metrics(a, &m0);
    send_seq(b, 1, 200, 10);
    assert_int_equal(th_call(b, 1, "echo", "p", 1, th_now_us() + 100000, &r), 0);
    assert_int_equal(r.code, MERR_TIMEOUT);
    /* 10 one-way, the request, and the CANCEL b sent when it timed out
     * (which may still be on its way: wait for it). */
    int64_t until = mtime_mono_ns() + TH_TIMEOUT_S * MTIME_S;
    do {
        th_metrics(a, &m1);
    } while (m1.fault_in_blocked - m0.fault_in_blocked < 12 && mtime_mono_ns() < until);
    assert_int_equal(m1.fault_in_blocked - m0.fault_in_blocked, 12);
    /* Healed: both directions work, nothing from the partition leaked. */
    assert_int_equal(th_faults(a, "", 1, 0), 0);
    assert_int_equal(th_call(a, 2, "echo", "h", 1, 0, &r), 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(th_call(b, 1, "echo", "h", 1, 0, &r), 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(th_cond_get(&rec_b.count), 0);
    assert_int_equal(th_cond_get(&rec_a.count), 10);
    for (uint32_t i = 0; i < 10; i++) assert_int_equal(rec_a.seq[i], 100 + i);
}

static void test_admin_message(void **state)
{
    (void)state;
    uint8_t *msg;
    size_t len;
    th_result r;
    /* b tells a, over rpc, to duplicate everything a sends to b (the reply
     * to this very call included; the second copy is ignored). */
    assert_int_equal(rpc_fault_msg_encode("peer=2,dup=1", 1, 9, &msg, &len), 0);
    assert_int_equal(th_call(b, 1, RPC_METHOD_FAULTS, msg, len, 0, &r), 0);
    free(msg);
    assert_int_equal(r.code, 0);
    rpc_metrics m0, m1;
    th_metrics(a, &m0);
    reset_rec(&rec_b);
    send_seq(a, 2, 0, 5);
    th_metrics(a, &m1);
    assert_int_equal(m1.fault_duplicated - m0.fault_duplicated, 5);
    /* A bad spec is refused with a clear error and changes nothing. */
    assert_int_equal(rpc_fault_msg_encode("peer=2,drop=7", 0, 0, &msg, &len), 0);
    assert_int_equal(th_call(b, 1, RPC_METHOD_FAULTS, msg, len, 0, &r), 0);
    free(msg);
    assert_int_equal(r.code, MERR_INVALID);
    assert_non_null(strstr(r.msg, "drop"));
    /* Garbage payload. */
    assert_int_equal(th_call(b, 1, RPC_METHOD_FAULTS, "\xff\xff\xff", 3, 0, &r), 0);
    assert_int_equal(r.code, MERR_CORRUPT);
    barrier(a, 2, &rec_b, 10);
    /* A node not configured for fault admin does not know the method. */
    th_opts o = {.id = 5, .listen = "127.0.0.1:0", .no_fault_admin = 1};
    rpc_node *x = th_start(&o);
    assert_non_null(x);
    char addr[64];
    th_addr(x, 0, addr, sizeof(addr));
    th_add_peer(b, 5, addr);
    assert_int_equal(rpc_fault_msg_encode("drop=1", 1, 0, &msg, &len), 0);
    assert_int_equal(th_call(b, 5, RPC_METHOD_FAULTS, msg, len, 0, &r), 0);
    free(msg);
    assert_int_equal(r.code, MERR_UNSUPPORTED);
    rpc_node_stop(x);
}

static void test_bad_config_refused(void **state)
{
    (void)state;
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = 9;
    cfg.listen_addr = "127.0.0.1:0";
    cfg.faults = "peer=2,drop=2";
    rpc_node *n = NULL;
    merr e = {0};
    assert_int_equal(rpc_node_start(&cfg, &n, &e), MERR_INVALID);
    assert_null(n);
    assert_non_null(strstr(e.msg, "drop"));
    cfg.faults = NULL;
    cfg.listen_addr = "localhost:x";
    assert_int_equal(rpc_node_start(&cfg, &n, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "listen"));
    /* A good configured spec is live from the start. */
    cfg.listen_addr = "127.0.0.1:0";
    cfg.faults = "peer=*,partition=out";
    assert_int_equal(rpc_node_start(&cfg, &n, &e), 0);
    char addr[64];
    th_addr(b, 0, addr, sizeof(addr));
    th_add_peer(n, 2, addr);
    rpc_metrics m;
    uint32_t x = 1;
    th_oneway(n, 2, "rec", &x, 4);
    th_metrics(n, &m);
    assert_int_equal(m.fault_partitioned, 1);
    rpc_node_stop(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_exactly_what_the_prng_picks),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_latency_matrix_and_delay),
        cmocka_unit_test(test_partitions),
        cmocka_unit_test(test_admin_message),
        cmocka_unit_test(test_bad_config_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
