/* Replica writes, one node in-process, one one-voter range on a temporary
 * store, as `bench ranges`:
 *  - replica_write_early (kv.Write's path): the caller is answered once the
 *    write is chosen and commit-waited, before this replica applies it, and
 *    the apply still lands in the same loop callback. A plain replica_write
 *    answers only after the apply (its callers may read the store in the
 *    callback).
 *  - A log write that completes while the clock cannot be trusted is not
 *    lost: the core hears of it once the clock answers, and the write
 *    completes (a one-voter range 1 once stalled for good so).
 *  - The empty copy of range 1 a joining node makes, outside range 1's
 *    voters and with nothing applied, is a placeholder: no key's home. */
#define _XOPEN_SOURCE 700
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mtime.h"
#include "rpc/rpc.h"
#include "server/host.h"
#include "server/replica.h"

typedef struct fx {
    rpc_node *rpc;
    host h;
    int open, rc, leading;
    replica *r;
    char dir[256];
    merr e;
} fx;

typedef struct probe {
    fx *f;
    const char *key;
    int done, code, seen; /* seen: the key was in the store when cb ran */
} probe;

static int in_store(fx *f, const char *key)
{
    uint8_t *v = NULL;
    size_t vl = 0;
    int rc = range_get(replica_store(f->r), (const uint8_t *)key, strlen(key), RANGE_TS_MAX, &v,
                       &vl, NULL);
    free(v);
    return rc == 0;
}

static void open_host(void *arg)
{
    fx *f = arg;
    host_config hc = {.store_dir = f->dir, .node_id = 1};
    tt_config_default(&hc.clock);
    hc.clock.source = TT_SOURCE_STATIC;
    /* A tiny ε: commit-wait (2ε) is over long before the log's fsync, so
     * the early answer runs inside the apply step, not from a timer. */
    hc.clock.static_uncertainty_ns = 1000;
    f->rc = host_open(&f->h, f->rpc, &hc, &f->e);
    f->open = 1;
    if (f->rc) return;
    paxos_members g = {.nvoters = 1, .voters = {1}};
    range_desc d = {.range_id = 2,
                    .generation = 1,
                    .start = (const uint8_t *)"a",
                    .start_len = 1,
                    .end = (const uint8_t *)"b",
                    .end_len = 1};
    if ((f->rc = replica_create(&f->h, &d, &g, &f->r, &f->e))) return;
    if ((f->rc = host_add(&f->h, f->r))) {
        replica_free(f->r);
        f->r = NULL;
        return;
    }
    replica_campaign(f->r); /* one voter: it elects itself at once */
}

static void check_lease(void *arg)
{
    fx *f = arg;
    f->leading = replica_is_leaseholder(f->r);
}

static void on_written(void *arg, int code, const char *msg, uint64_t ts)
{
    probe *p = arg;
    (void)msg;
    (void)ts;
    p->code = code;
    p->seen = in_store(p->f, p->key);
    p->done = 1;
}

static probe early_p, plain_p;

static void write_both(void *arg)
{
    fx *f = arg;
    range_write w1 = {
        .key = (const uint8_t *)"a1", .klen = 2, .val = (const uint8_t *)"x", .vlen = 1};
    range_write w2 = {
        .key = (const uint8_t *)"a2", .klen = 2, .val = (const uint8_t *)"y", .vlen = 1};
    int64_t dl = mtime_mono_ns() + 30 * MTIME_S;
    if (replica_write_early(f->r, &w1, 1, dl, on_written, &early_p, &f->e))
        early_p.done = 1, early_p.code = -1;
    if (replica_write(f->r, &w2, 1, dl, on_written, &plain_p, &f->e))
        plain_p.done = 1, plain_p.code = -1;
}

static int after_seen;

static void read_back(void *arg)
{
    fx *f = arg;
    after_seen = in_store(f, "a1") && in_store(f, "a2");
}

static void close_host(void *arg)
{
    fx *f = arg;
    if (f->open) host_close(&f->h);
    f->open = 0;
}

static void barrier(void *arg)
{
    (void)arg;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) ? -1 : 0;
}

static fx *fx_open(void)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/meridian-early-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = 1;
    cfg.cluster_id = "test-early";
    cfg.listen_addr = "127.0.0.1:0";
    assert_int_equal(rpc_node_start(&cfg, &f->rpc, &f->e), 0);
    rpc_node_run_sync(f->rpc, open_host, f);
    assert_int_equal(f->rc, 0);
    /* Hang guards only: poll for the lease, then for both answers. */
    for (int i = 0; i < 3000 && !f->leading; i++) {
        rpc_node_run_sync(f->rpc, check_lease, f);
        if (!f->leading) sleep_ms(10);
    }
    assert_true(f->leading);
    return f;
}

static void fx_close(fx *f)
{
    rpc_node_run_sync(f->rpc, close_host, f);
    rpc_node_stop(f->rpc);
    assert_int_equal(nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(f);
}

static void test_early_answer_precedes_apply(void **state)
{
    (void)state;
    fx *f = fx_open();
    early_p = (probe){.f = f, .key = "a1"};
    plain_p = (probe){.f = f, .key = "a2"};
    rpc_node_run_sync(f->rpc, write_both, f);
    for (int i = 0; i < 3000 && !(early_p.done && plain_p.done); i++) {
        sleep_ms(10);
        rpc_node_run_sync(f->rpc, barrier, f); /* loop-ordered reads of the probes */
    }
    assert_true(early_p.done && plain_p.done);
    assert_int_equal(early_p.code, 0);
    assert_int_equal(plain_p.code, 0);
    assert_false(early_p.seen); /* answered before the apply */
    assert_true(plain_p.seen);  /* answered after it */
    rpc_node_run_sync(f->rpc, read_back, f);
    assert_true(after_seen); /* and the early write is applied all the same */
    fx_close(f);
}

/* ---- a persist completing while the clock cannot be trusted ---- */

static probe late_p;
static uint64_t persists_at_write, persists_now;

/* Proposes, then takes the clock's trust away in the same loop callback: the
 * log write completes (a later loop round) while tt_now fails. */
static void write_then_distrust(void *arg)
{
    fx *f = arg;
    range_write w = {
        .key = (const uint8_t *)"a3", .klen = 2, .val = (const uint8_t *)"z", .vlen = 1};
    persists_at_write = f->h.persists;
    if (replica_write(f->r, &w, 1, mtime_mono_ns() + 60 * MTIME_S, on_written, &late_p, &f->e))
        late_p.done = 1, late_p.code = -1;
    replica_flush(f->r); /* the slot and its log write now, not at the end of the round */
    f->h.clock.cfg.max_uncertainty_ns = 1; /* ε above it: tt_now fails (UNKNOWN) */
}

static void read_persists(void *arg)
{
    fx *f = arg;
    persists_now = f->h.persists;
}

static void trust_again(void *arg)
{
    fx *f = arg;
    f->h.clock.cfg.max_uncertainty_ns = TT_DEFAULT_MAX_UNCERTAINTY_NS;
}

static void test_persist_while_clock_untrusted(void **state)
{
    (void)state;
    fx *f = fx_open();
    late_p = (probe){.f = f, .key = "a3"};
    rpc_node_run_sync(f->rpc, write_then_distrust, f);
    assert_false(late_p.done);
    /* Hang guard: the log write completes while the clock is distrusted. */
    for (int i = 0; i < 3000 && persists_now <= persists_at_write; i++) {
        sleep_ms(10);
        rpc_node_run_sync(f->rpc, read_persists, f);
    }
    assert_true(persists_now > persists_at_write);
    assert_false(late_p.done); /* no answer without a clock (commit-wait needs one) */
    rpc_node_run_sync(f->rpc, trust_again, f);
    for (int i = 0; i < 3000 && !late_p.done; i++) {
        sleep_ms(10);
        rpc_node_run_sync(f->rpc, barrier, f);
    }
    assert_true(late_p.done); /* without the kept completion: never */
    assert_int_equal(late_p.code, 0);
    assert_true(late_p.seen);
    fx_close(f);
}

/* ---- the empty copy of range 1 a joining node makes ---- */

static int ph_placeholder, ph_found_other, ph_found_r2, ph_found_member;

/* Range 1 as a joiner makes it: the genesis descriptor (the whole key
 * space), genesis voters that are not this node, nothing applied. Then the
 * same with this node a voter (as the genesis node's). */
static void add_range1(void *arg)
{
    fx *f = arg;
    paxos_members g = {.nvoters = 1, .voters = {7}};
    range_desc d = {.range_id = 1, .generation = 1};
    replica *r1 = NULL;
    if (replica_create(&f->h, &d, &g, &r1, &f->e) || host_add(&f->h, r1)) {
        f->rc = -1;
        return;
    }
    ph_placeholder = replica_placeholder(r1);
    /* No home for a key of its (genesis) span, and none for range 2's keys. */
    ph_found_other = host_find_key(&f->h, (const uint8_t *)"z", 1) != NULL;
    ph_found_r2 = host_find_key(&f->h, (const uint8_t *)"a1", 2) == f->r;
    if (replica_destroy(&f->h, r1, &f->e)) {
        f->rc = -1;
        return;
    }
    paxos_members me = {.nvoters = 1, .voters = {1}};
    if (replica_create(&f->h, &d, &me, &r1, &f->e) || host_add(&f->h, r1)) {
        f->rc = -1;
        return;
    }
    ph_found_member =
        host_find_key(&f->h, (const uint8_t *)"z", 1) == r1 && !replica_placeholder(r1);
    host_remove(&f->h, r1);
    replica_free(r1);
}

static void test_join_copy_of_range1_is_a_placeholder(void **state)
{
    (void)state;
    fx *f = fx_open();
    rpc_node_run_sync(f->rpc, add_range1, f);
    if (f->rc) fail_msg("range 1: %s", f->e.msg);
    assert_true(ph_placeholder);
    assert_false(ph_found_other); /* it used to answer for every key */
    assert_true(ph_found_r2);
    assert_true(ph_found_member); /* a member's range 1 is range 1 */
    fx_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_answer_precedes_apply),
        cmocka_unit_test(test_persist_while_clock_untrusted),
        cmocka_unit_test(test_join_copy_of_range1_is_a_placeholder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
