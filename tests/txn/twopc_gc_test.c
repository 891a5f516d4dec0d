/* Transaction record GC on a real cluster (server/txn_2pc_gc.c), driven by
 * twopc_gc_test.sh, which starts and stops the nodes:
 *
 *   twopc_gc_test burst HOSTS N [MS] split at gc/m, then N two-range
 *                                    read-modify-write transactions whose
 *                                    commit deadline is MS (2000) ahead
 *   twopc_gc_test rawcommit HOSTS F  one two-range txn.Commit (deadline 2 s
 *                                    ahead) sent twice: the same answer;
 *                                    the request and its ts saved in F
 *   twopc_gc_test recommit HOSTS F   the same bytes again (after GC): the
 *                                    same answer
 *   twopc_gc_test late HOSTS         an unknown commit past its deadline is
 *                                    refused (not aborted, not run); one
 *                                    with a deadline too far ahead is bad input
 *   twopc_gc_test keep HOSTS F KEY   a two-range commit anchored at KEY
 *                                    (deadline 60 s: kept), saved in F
 *   twopc_gc_test again HOSTS F      the commit of F retried (following
 *                                    leaseholders) gets the same ts
 *
 * Prints "ok ..." lines; exits 1 at the first failed check. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mtime.h"
#include "proto/range.pb-c.h"
#include "proto/txn.pb-c.h"
#include "server/cli_rpc.h"
#include "server/kv_cli.h"
#include "server/txn_client.h"
#include "txn_rpc.h"

static const char *hosts;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static Meridian__Kv__Error *err_split(ProtobufCMessage *m)
{
    return ((Meridian__Range__SplitResponse *)m)->error;
}

static void split(const char *key)
{
    kv_client c;
    merr e = {0};
    ProtobufCMessage *out = NULL;
    CHECK(kv_client_open(&c, hosts, NULL, 60 * MTIME_S, &e) == 0, "%s", e.msg);
    c.call_timeout_ns = 15 * MTIME_S;
    Meridian__Range__SplitRequest q = MERIDIAN__RANGE__SPLIT_REQUEST__INIT;
    q.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    CHECK(kv_client_call(&c, "range.Split", &q.base, &meridian__range__split_response__descriptor,
                         err_split, &out, &e) == 0,
          "split: %s", e.msg);
    protobuf_c_message_free_unpacked(out, NULL);
    kv_client_close(&c);
}

static int incr(const sql_kv_ops *ops, sql_kv_txn *t, const char *k, merr *e)
{
    mbuf v = MBUF_INIT;
    int rc = ops->get(t, (const uint8_t *)k, strlen(k), &v, e);
    char s[32] = "0";
    if (rc == 0 && v.len < sizeof(s)) memcpy(s, v.data, v.len), s[v.len] = 0;
    mbuf_free(&v);
    if (rc && rc != MERR_NOTFOUND) return rc;
    char o[32];
    int ol = snprintf(o, sizeof(o), "%lld", atoll(s) + 1);
    return ops->put(t, (const uint8_t *)k, strlen(k), (const uint8_t *)o, (size_t)ol, e);
}

static int run_burst(int n, int64_t timeout_ms)
{
    split("gc/m");
    const sql_kv_ops *ops = txn_client_kv_ops();
    txn_client *c;
    merr e = {0};
    CHECK(txn_client_open(hosts, NULL, &c, &e) == 0, "%s", e.msg);
    txn_client_set_timeout(c, timeout_ms * MTIME_MS); /* the commit deadline */
    int done = 0;
    for (int i = 0, tries = 0; done < n && tries < 50 * n; tries++) {
        char a[32], z[32];
        snprintf(a, sizeof(a), "gc/a/%d", i);
        snprintf(z, sizeof(z), "gc/z/%d", i);
        sql_kv_txn *t;
        CHECK(ops->begin(c, 0, &t, &e) == 0, "%s", e.msg);
        int rc = incr(ops, t, a, &e);
        if (!rc) rc = incr(ops, t, z, &e);
        if (rc) {
            ops->rollback(t);
            continue; /* the new range's first lease, a timeout: again */
        }
        if (ops->commit(t, &e) == 0) done++, i++;
    }
    txn_client_close(c);
    CHECK(done == n, "only %d of %d two-range transactions committed: %s", done, n, e.msg);
    printf("ok %d two-range transactions committed\n", n);
    return 0;
}

#define RAW_ANCHOR "gc/a/raw"

static size_t pack_anchored(uint64_t id, uint64_t prio, uint64_t deadline_us, const char *anchor,
                            uint8_t *buf)
{
    Meridian__Txn__TxnMeta meta = MERIDIAN__TXN__TXN_META__INIT;
    meta.id = id, meta.priority = prio;
    Meridian__Kv__Mutation m[2] = {MERIDIAN__KV__MUTATION__INIT, MERIDIAN__KV__MUTATION__INIT};
    Meridian__Kv__Mutation *mp[2] = {&m[0], &m[1]};
    m[0].key = (ProtobufCBinaryData){strlen(anchor), (uint8_t *)anchor};
    m[1].key = (ProtobufCBinaryData){8, (uint8_t *)"gc/z/raw"};
    m[0].value = m[1].value = (ProtobufCBinaryData){1, (uint8_t *)"v"};
    Meridian__Txn__CommitRequest q = MERIDIAN__TXN__COMMIT_REQUEST__INIT;
    q.txn = &meta, q.mutations = mp, q.n_mutations = 2;
    q.key = m[0].key;
    q.deadline_us = deadline_us;
    return meridian__txn__commit_request__pack(&q, buf);
}

static size_t pack_commit(uint64_t id, uint64_t prio, uint64_t deadline_us, uint8_t *buf)
{
    return pack_anchored(id, prio, deadline_us, RAW_ANCHOR, buf);
}

/* The commit's ts, retried while the answer is "try again" (a new range's
 * first lease); exits at an "aborted". */
static uint64_t commit_ts_at(uint64_t id, uint64_t prio, uint64_t deadline_us, const char *anchor)
{
    uint8_t buf[256];
    size_t len = pack_anchored(id, prio, deadline_us, anchor, buf);
    char last[160] = "";
    /* Polls with a 60 s hang guard: a replica of a range just merged away
     * answers "frozen, retry" until it is retired. */
    int64_t until = mtime_mono_ns() + 60 * MTIME_S;
    for (int attempt = 0; mtime_mono_ns() < until; attempt++) {
        if (attempt >= 10) nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
        Meridian__Txn__CommitResponse *r = txn_rpc_commit(hosts, buf, len, 30 * MTIME_S);
        CHECK(r, "no answer to the commit");
        CHECK(!r->aborted, "the commit was answered aborted: %s",
              r->error ? r->error->message : "");
        uint64_t ts = r->error ? 0 : r->commit_ts;
        if (r->error) snprintf(last, sizeof(last), "%.150s", r->error->message);
        meridian__txn__commit_response__free_unpacked(r, NULL);
        if (ts) return ts;
    }
    fprintf(stderr, "no commit ts; the last answer: %s\n", last);
    return 0;
}

static uint64_t commit_ts(uint64_t id, uint64_t prio, uint64_t deadline_us)
{
    return commit_ts_at(id, prio, deadline_us, RAW_ANCHOR);
}

/* Records are range-local (txn/txnrec.h): the script splits or merges the
 * anchor's range between `keep` and `again`, and the range that holds the
 * anchor then, whose leaseholder never saw the commit, answers from the
 * record it took over. */
static int run_keep(const char *file, const char *anchor)
{
    uint64_t id = ((uint64_t)mtime_real_ns() << 8) | 0x6b, prio = (uint64_t)mtime_real_ns() << 2;
    uint64_t dl = (uint64_t)(mtime_real_ns() / 1000) + 60000000;
    uint64_t ts = commit_ts_at(id, prio, dl, anchor);
    CHECK(ts, "the commit anchored at %s did not commit", anchor);
    FILE *f = fopen(file, "w");
    CHECK(f, "cannot write %s", file);
    fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", id, prio, dl, ts, anchor);
    fclose(f);
    printf("ok a two-range commit anchored at %s\n", anchor);
    return 0;
}

static int run_again(const char *file)
{
    uint64_t id, prio, dl, ts;
    char anchor[64];
    FILE *f = fopen(file, "r");
    CHECK(f && fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %63s", &id, &prio, &dl,
                      &ts, anchor) == 5,
          "bad %s", file);
    fclose(f);
    uint64_t ts2 = commit_ts_at(id, prio, dl, anchor);
    CHECK(ts2 == ts, "the retried commit answered ts %" PRIu64 ", first %" PRIu64, ts2, ts);
    printf("ok the retried commit anchored at %s gets the same ts\n", anchor);
    return 0;
}

static int run_rawcommit(const char *file)
{
    uint64_t id = ((uint64_t)mtime_real_ns() << 8) | 0xa5, prio = (uint64_t)mtime_real_ns() << 2;
    uint64_t dl = (uint64_t)(mtime_real_ns() / 1000) + 2000000;
    uint64_t ts1 = commit_ts(id, prio, dl), ts2 = commit_ts(id, prio, dl);
    CHECK(ts1 && ts1 == ts2, "retried commit answered %" PRIu64 " then %" PRIu64, ts1, ts2);
    FILE *f = fopen(file, "w");
    CHECK(f, "cannot write %s", file);
    fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", id, prio, dl, ts1);
    fclose(f);
    printf("ok a retried two-range commit gets the same answer\n");
    return 0;
}

static int run_recommit(const char *file)
{
    uint64_t id, prio, dl, ts;
    FILE *f = fopen(file, "r");
    CHECK(f && fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &id, &prio, &dl, &ts) == 4,
          "bad %s", file);
    fclose(f);
    uint8_t buf[256];
    size_t len = pack_commit(id, prio, dl, buf);
    Meridian__Txn__CommitResponse *r = txn_rpc_commit(hosts, buf, len, 30 * MTIME_S);
    CHECK(r, "no answer to the retried commit");
    CHECK(!r->aborted, "after GC the commit was answered aborted");
    /* The leaseholder still remembers the transaction: the same ts. (A new
     * one would refuse it: `late` checks that answer.) */
    CHECK(!r->error && r->commit_ts == ts,
          "after GC the commit answered ts %" PRIu64 " (%s), first %" PRIu64, r->commit_ts,
          r->error ? r->error->message : "", ts);
    printf("ok after GC a retried commit gets the same commit ts\n");
    meridian__txn__commit_response__free_unpacked(r, NULL);
    return 0;
}

static int run_late(void)
{
    uint8_t buf[256];
    uint64_t id = ((uint64_t)mtime_real_ns() << 8) | 0x3c, prio = (uint64_t)mtime_real_ns() << 2;
    uint64_t now_us = (uint64_t)(mtime_real_ns() / 1000);
    Meridian__Txn__CommitResponse *r =
        txn_rpc_commit(hosts, buf, pack_commit(id, prio, now_us - 1000000, buf), 30 * MTIME_S);
    CHECK(r && r->error && !r->aborted && !r->commit_ts,
          "a commit past its deadline was not refused");
    CHECK(strstr(r->error->message, "deadline"), "refused for another reason: %s",
          r->error->message);
    meridian__txn__commit_response__free_unpacked(r, NULL);
    printf("ok an unknown commit past its deadline is refused, not aborted or run\n");
    r = txn_rpc_commit(hosts, buf, pack_commit(id + 1, prio, now_us + 3600ULL * 1000000, buf),
                       30 * MTIME_S);
    CHECK(r && r->error && r->error->kind == MERIDIAN__KV__ERROR_KIND__INVALID && !r->commit_ts,
          "a deadline an hour ahead was accepted");
    meridian__txn__commit_response__free_unpacked(r, NULL);
    printf("ok a deadline an hour ahead is bad input\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s burst|rawcommit|recommit|late HOSTS [N|FILE]\n", argv[0]);
        return 2;
    }
    hosts = argv[2];
    if (!strcmp(argv[1], "burst") && argc > 3)
        return run_burst(atoi(argv[3]), argc > 4 ? atoll(argv[4]) : 2000);
    if (!strcmp(argv[1], "rawcommit") && argc > 3) return run_rawcommit(argv[3]);
    if (!strcmp(argv[1], "recommit") && argc > 3) return run_recommit(argv[3]);
    if (!strcmp(argv[1], "late")) return run_late();
    if (!strcmp(argv[1], "keep") && argc > 4) return run_keep(argv[3], argv[4]);
    if (!strcmp(argv[1], "again") && argc > 3) return run_again(argv[3]);
    fprintf(stderr, "unknown test %s\n", argv[1]);
    return 2;
}
