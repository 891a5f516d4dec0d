/* Transactions on a real cluster through txn_client (server/txn_client.h),
 * driven by txn_test.sh, which starts and stops the nodes:
 *
 *   txn_test contract HOSTS      the sql/kv.h contract, wound-wait, idle timeout
 *   txn_test counter HOSTS T N   T threads x N increments of one counter
 *   txn_test bank HOSTS T N      T threads x N transfers; snapshot audits
 *   txn_test sql HOSTS           a SQL session over the cluster
 *   txn_test rawcommit HOSTS F   one txn.Commit sent twice: the same answer;
 *                                (id, priority, ts) saved in F
 *   txn_test recommit HOSTS F    the same commit again (after a failover):
 *                                still the same answer, from the record
 *
 * Prints "ok ..." lines; exits 1 at the first failed check. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "proto/txn.pb-c.h"
#include "server/cli_rpc.h"
#include "server/txn_client.h"
#include "sql/session.h"
#include "txn_rpc.h"

static const char *hosts;
static const sql_kv_ops *ops;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static txn_client *open_client(void)
{
    txn_client *c;
    merr e = {0};
    CHECK(txn_client_open(hosts, NULL, &c, &e) == 0, "%s", e.msg);
    return c;
}

static sql_kv_txn *begin(txn_client *c, unsigned flags)
{
    sql_kv_txn *t;
    merr e = {0};
    CHECK(ops->begin(c, flags, &t, &e) == 0, "%s", e.msg);
    return t;
}

static void put_s(sql_kv_txn *t, const char *k, const char *v)
{
    merr e = {0};
    CHECK(ops->put(t, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v), &e) == 0, "%s",
          e.msg);
}

/* The value of k as a string ("" and rc MERR_NOTFOUND when absent). */
static int get_s(sql_kv_txn *t, const char *k, char *out, size_t cap, merr *e)
{
    mbuf v = MBUF_INIT;
    int rc = ops->get(t, (const uint8_t *)k, strlen(k), &v, e);
    snprintf(out, cap, "%.*s", rc ? 0 : (int)v.len, rc ? "" : (const char *)v.data);
    mbuf_free(&v);
    return rc;
}

/* "k=v,k=v" of a scan. */
static int scan_s(sql_kv_txn *t, const char *lo, const char *hi, int reverse, size_t limit,
                  char *out, size_t cap, merr *e)
{
    sql_kv_iter *it;
    int rc = ops->scan(t, (const uint8_t *)lo, strlen(lo), (const uint8_t *)hi, hi ? strlen(hi) : 0,
                       reverse, limit, &it, e);
    if (rc) return rc;
    size_t n = 0;
    out[0] = 0;
    const uint8_t *k, *v;
    size_t kl, vl;
    while ((rc = ops->iter_next(it, &k, &kl, &v, &vl, e)) == 1)
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s=%.*s", n ? "," : "", (int)kl,
                              (const char *)k, (int)vl, (const char *)v);
    ops->iter_close(it);
    return rc < 0 ? rc : 0;
}

static void commit_ok(sql_kv_txn *t)
{
    merr e = {0};
    CHECK(ops->commit(t, &e) == 0, "%s", e.msg);
}

/* ---- contract ---- */

static int run_contract(void)
{
    txn_client *c = open_client(), *c2 = open_client();
    merr e = {0};
    char buf[4096];
    /* Setup: a committed base. */
    sql_kv_txn *t = begin(c, 0);
    put_s(t, "c/a", "1");
    put_s(t, "c/b", "2");
    put_s(t, "c/d", "4");
    commit_ok(t);

    /* Read-your-own-writes, overwrite, delete, scans merging the buffer. */
    t = begin(c, 0);
    CHECK(get_s(t, "c/a", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "1"), "got %s", buf);
    put_s(t, "c/a", "10");
    put_s(t, "c/c", "3");
    merr de = {0};
    CHECK(ops->del(t, (const uint8_t *)"c/b", 3, &de) == 0, "%s", de.msg);
    CHECK(get_s(t, "c/a", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "10"), "ryow %s", buf);
    CHECK(get_s(t, "c/b", buf, sizeof(buf), &e) == MERR_NOTFOUND, "deleted key visible");
    CHECK(get_s(t, "c/zz", buf, sizeof(buf), &e) == MERR_NOTFOUND, "absent key found");
    CHECK(scan_s(t, "c/", "c0", 0, 0, buf, sizeof(buf), &e) == 0 &&
              !strcmp(buf, "c/a=10,c/c=3,c/d=4"),
          "scan %s (%s)", buf, e.msg);
    CHECK(scan_s(t, "c/", "c0", 1, 2, buf, sizeof(buf), &e) == 0 && !strcmp(buf, "c/d=4,c/c=3"),
          "reverse limited scan %s", buf);
    CHECK(scan_s(t, "c/b", NULL, 0, 1, buf, sizeof(buf), &e) == 0 && !strcmp(buf, "c/c=3"),
          "scan to the end %s", buf);
    /* The iterator keeps the state of scan() time. */
    sql_kv_iter *it;
    CHECK(ops->scan(t, (const uint8_t *)"c/", 2, (const uint8_t *)"c0", 2, 0, 0, &it, &e) == 0,
          "%s", e.msg);
    put_s(t, "c/b", "late");
    const uint8_t *k, *v;
    size_t kl, vl, n = 0;
    while (ops->iter_next(it, &k, &kl, &v, &vl, &e) == 1) n++;
    ops->iter_close(it);
    CHECK(n == 3, "iterator saw a later write (%zu rows)", n);

    /* Savepoints: marks nest; rollback_to undoes later writes only. */
    uint64_t m1, m2;
    CHECK(ops->savepoint(t, &m1, &e) == 0, "%s", e.msg);
    put_s(t, "c/e", "5");
    CHECK(ops->savepoint(t, &m2, &e) == 0, "%s", e.msg);
    put_s(t, "c/a", "100");
    CHECK(ops->rollback_to(t, m2, &e) == 0, "%s", e.msg);
    CHECK(get_s(t, "c/a", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "10"), "after m2 %s", buf);
    CHECK(get_s(t, "c/e", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "5"), "e %s", buf);
    CHECK(ops->rollback_to(t, m1, &e) == 0, "%s", e.msg);
    CHECK(get_s(t, "c/e", buf, sizeof(buf), &e) == MERR_NOTFOUND, "e survived rollback_to");
    /* Uncommitted writes are invisible to a snapshot reader. */
    sql_kv_txn *ro = begin(c2, SQL_KV_READ_ONLY);
    CHECK(get_s(ro, "c/c", buf, sizeof(buf), &e) == MERR_NOTFOUND, "dirty read %s", buf);
    CHECK(ops->put(ro, (const uint8_t *)"c/x", 3, (const uint8_t *)"1", 1, &e) == MERR_INVALID,
          "a read-only transaction wrote");
    commit_ok(ro);
    commit_ok(t);
    t = begin(c2, 0);
    CHECK(scan_s(t, "c/", "c0", 0, 0, buf, sizeof(buf), &e) == 0 &&
              !strcmp(buf, "c/a=10,c/b=late,c/c=3,c/d=4"),
          "after commit %s", buf);
    commit_ok(t);
    printf("ok read-your-own-writes, scans, savepoints, commit\n");

    /* Rollback: nothing is written; its locks go at once (an older writer
     * would otherwise wait for them). */
    t = begin(c, 0);
    CHECK(get_s(t, "c/d", buf, sizeof(buf), &e) == 0, "%s", e.msg);
    put_s(t, "c/d", "rolled back");
    ops->rollback(t);
    t = begin(c2, 0);
    CHECK(get_s(t, "c/d", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "4"), "rollback wrote %s",
          buf);
    commit_ok(t);
    t = begin(c, 0);
    CHECK(ops->put(t, (const uint8_t *)"\x00sys", 4, (const uint8_t *)"x", 1, &e) == MERR_INVALID,
          "a system key was accepted");
    ops->rollback(t);
    printf("ok rollback\n");

    /* Wound-wait: an older writer wounds a younger reader; the reader's
     * next request is refused as aborted, and its retry (same priority)
     * commits. */
    sql_kv_txn *old = begin(c, 0);
    txn_client_set_next_priority(c2, txn_client_priority(old) + 1000);
    sql_kv_txn *young = begin(c2, 0);
    CHECK(get_s(young, "c/a", buf, sizeof(buf), &e) == 0, "%s", e.msg);
    CHECK(get_s(old, "c/b", buf, sizeof(buf), &e) == 0, "%s", e.msg);
    CHECK(ops->alive(young, &e) == 0, "a live transaction called aborted: %s", e.msg);
    put_s(old, "c/a", "old");
    commit_ok(old); /* wounds young, which held S on c/a */
    /* txn.Check sees the wound without touching anything (the SQL layer
     * asks it before reporting a statement error in a transaction). */
    int rc = ops->alive(young, &e);
    CHECK(rc == MERR_ABORTED, "txn.Check missed the wound: %d %s", rc, e.msg);
    rc = get_s(young, "c/b", buf, sizeof(buf), &e);
    CHECK(rc == MERR_ABORTED, "wounded transaction read on: %d %s", rc, e.msg);
    uint64_t prio = txn_client_priority(young);
    ops->rollback(young);
    txn_client_set_next_priority(c2, prio);
    young = begin(c2, 0);
    CHECK(txn_client_priority(young) == prio, "retry lost its priority");
    CHECK(get_s(young, "c/a", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "old"), "retry read %s",
          buf);
    commit_ok(young);
    printf("ok wound-wait\n");

    /* A read for writing (sql_kv_ops.lock_for_write: the rows an UPDATE
     * finds) locks X at once: an older transaction reading the same key
     * wounds it, where two shared reads would both have gone on and met
     * only at commit. */
    old = begin(c, 0);
    txn_client_set_next_priority(c2, txn_client_priority(old) + 1000);
    young = begin(c2, 0);
    ops->lock_for_write(young, 1);
    CHECK(get_s(young, "fw/k", buf, sizeof(buf), &e) == MERR_NOTFOUND, "%s", e.msg);
    ops->lock_for_write(young, 0);
    CHECK(get_s(old, "fw/k", buf, sizeof(buf), &e) == MERR_NOTFOUND, "older read: %s", e.msg);
    rc = ops->alive(young, &e);
    CHECK(rc == MERR_ABORTED, "a read for writing held no exclusive lock: %d", rc);
    ops->rollback(young);
    commit_ok(old);
    /* Off again: a plain read shares. */
    old = begin(c, 0);
    txn_client_set_next_priority(c2, txn_client_priority(old) + 1000);
    young = begin(c2, 0);
    CHECK(get_s(young, "fw/k", buf, sizeof(buf), &e) == MERR_NOTFOUND, "%s", e.msg);
    CHECK(get_s(old, "fw/k", buf, sizeof(buf), &e) == MERR_NOTFOUND, "older read: %s", e.msg);
    CHECK(ops->alive(young, &e) == 0, "shared reads conflicted: %s", e.msg);
    ops->rollback(young);
    commit_ok(old);
    printf("ok reads for writing lock exclusively\n");

    /* Phantoms: a scan locks the key range, absent keys included, so an
     * older transaction inserting into it wounds the younger scanner. */
    old = begin(c, 0);
    txn_client_set_next_priority(c2, txn_client_priority(old) + 1000);
    young = begin(c2, 0);
    CHECK(scan_s(young, "ph/", "ph0", 0, 0, buf, sizeof(buf), &e) == 0 && !buf[0], "%s", e.msg);
    put_s(old, "ph/new", "1");
    commit_ok(old);
    rc = get_s(young, "c/a", buf, sizeof(buf), &e);
    CHECK(rc == MERR_ABORTED, "an insert into a scanned range did not conflict: %d", rc);
    ops->rollback(young);
    printf("ok scans lock key ranges (no phantoms)\n");

    /* Many rows: scans run over several pages, forward and reverse, merged
     * with buffered writes. */
    t = begin(c, 0);
    for (int i = 0; i < 2500; i++) {
        char mk[16];
        snprintf(mk, sizeof(mk), "m/%05d", i);
        put_s(t, mk, "x");
    }
    commit_ok(t);
    t = begin(c, 0);
    CHECK(ops->del(t, (const uint8_t *)"m/01500", 7, &e) == 0, "%s", e.msg);
    put_s(t, "m/01500a", "y");
    for (int rev = 0; rev < 2; rev++) {
        CHECK(ops->scan(t, (const uint8_t *)"m/", 2, (const uint8_t *)"m0", 2, rev, 0, &it, &e) ==
                  0,
              "%s", e.msg);
        char prev[32] = "", first[32] = "";
        n = 0;
        int sorted = 1;
        while ((rc = ops->iter_next(it, &k, &kl, &v, &vl, &e)) == 1) {
            char cur[32];
            snprintf(cur, sizeof(cur), "%.*s", (int)kl, (const char *)k);
            if (n && (rev ? strcmp(cur, prev) >= 0 : strcmp(cur, prev) <= 0)) sorted = 0;
            if (!n) snprintf(first, sizeof(first), "%s", cur);
            snprintf(prev, sizeof(prev), "%s", cur);
            n++;
        }
        ops->iter_close(it);
        CHECK(rc == 0 && n == 2500 && sorted, "paged scan: %zu rows, sorted %d (%s)", n, sorted,
              e.msg);
        CHECK(!strcmp(first, rev ? "m/02499" : "m/00000"), "first row %s", first);
    }
    CHECK(scan_s(t, "m/01499", "m0", 0, 3, buf, sizeof(buf), &e) == 0 &&
              !strcmp(buf, "m/01499=x,m/01500a=y,m/01501=x"),
          "limited scan over buffered writes: %s", buf);
    commit_ok(t);
    printf("ok scans over several pages\n");

    /* The read cache (server/txn_rcache.h): a read inside a span this
     * transaction read before, under a lock at least as strong, makes no
     * round trip and sees what the leaseholder saw, merged with the
     * buffered writes; a read for writing after a shared one goes to the
     * leaseholder (it takes X). Counted by the requests the client sends. */
    t = begin(c, 0);
    uint64_t n0 = txn_client_calls(c), h0 = txn_client_cache_hits(c);
    CHECK(scan_s(t, "c/", "c0", 0, 0, buf, sizeof(buf), &e) == 0 &&
              !strcmp(buf, "c/a=old,c/b=late,c/c=3,c/d=4"),
          "scan %s", buf);
    uint64_t n1 = txn_client_calls(c);
    CHECK(n1 > n0, "the first scan sent nothing");
    CHECK(get_s(t, "c/c", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "3"), "cached get %s", buf);
    CHECK(get_s(t, "c/bb", buf, sizeof(buf), &e) == MERR_NOTFOUND, "absent key inside the span");
    CHECK(scan_s(t, "c/b", "c/d", 1, 0, buf, sizeof(buf), &e) == 0 &&
              !strcmp(buf, "c/c=3,c/b=late"),
          "cached reverse scan %s", buf);
    put_s(t, "c/c", "33");
    CHECK(scan_s(t, "c/a", "c/d", 0, 2, buf, sizeof(buf), &e) == 0 &&
              !strcmp(buf, "c/a=old,c/b=late"),
          "cached limited scan %s", buf);
    CHECK(scan_s(t, "c/c", "c/d", 0, 0, buf, sizeof(buf), &e) == 0 && !strcmp(buf, "c/c=33"),
          "cached scan under a buffered write %s", buf);
    CHECK(txn_client_calls(c) == n1, "reads inside a read span sent %" PRIu64 " requests",
          txn_client_calls(c) - n1);
    CHECK(txn_client_cache_hits(c) - h0 == 5, "cache hits %" PRIu64, txn_client_cache_hits(c) - h0);
    ops->lock_for_write(t, 1);
    CHECK(get_s(t, "c/b", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "late"), "%s", e.msg);
    CHECK(txn_client_calls(c) == n1 + 1, "a read for writing did not go to the leaseholder");
    CHECK(get_s(t, "c/b", buf, sizeof(buf), &e) == 0 && !strcmp(buf, "late"), "%s", e.msg);
    ops->lock_for_write(t, 0);
    CHECK(get_s(t, "c0", buf, sizeof(buf), &e) == MERR_NOTFOUND, "%s", e.msg);
    CHECK(txn_client_calls(c) == n1 + 2, "X read again, or a read outside the spans: %" PRIu64,
          txn_client_calls(c) - n1);
    ops->rollback(t);
    printf("ok reads inside a locked span are answered without a round trip\n");

    /* Idle timeout: a transaction whose client went quiet loses its locks
     * (a younger writer, which waits for them, then commits) and its late
     * commit is refused. */
    sql_kv_txn *idle = begin(c, 0);
    CHECK(get_s(idle, "c/d", buf, sizeof(buf), &e) == 0, "%s", e.msg);
    /* The writer waits until the idle transaction's locks are gone (a
     * leadership change would abort it instead: then it retries). */
    for (int tries = 0;; tries++) {
        t = begin(c2, 0);
        put_s(t, "c/d", "after idle");
        rc = ops->commit(t, &e);
        if (rc != MERR_ABORTED || tries == 5) break;
    }
    CHECK(rc == 0, "writer after idle: %s", e.msg);
    put_s(idle, "c/d", "late");
    rc = ops->commit(idle, &e);
    CHECK(rc == MERR_ABORTED, "late commit accepted: %d %s", rc, e.msg);
    printf("ok idle transaction loses its locks; late commit refused\n");
    txn_client_close(c);
    txn_client_close(c2);
    return 0;
}

/* ---- counter: lost updates ---- */

typedef struct worker {
    int id, n;
    long commits, aborts;
    pthread_t th;
} worker;

static long get_long(sql_kv_txn *t, const char *k, int *rc, merr *e)
{
    char buf[64];
    *rc = get_s(t, k, buf, sizeof(buf), e);
    if (*rc == MERR_NOTFOUND) *rc = 0;
    return atol(buf);
}

static void *counter_worker(void *arg)
{
    worker *w = arg;
    txn_client *c = open_client();
    for (int i = 0; i < w->n; i++) {
        uint64_t prio = 0;
        for (;;) {
            txn_client_set_next_priority(c, prio);
            sql_kv_txn *t = begin(c, 0);
            prio = txn_client_priority(t);
            merr e = {0};
            int rc;
            long v = get_long(t, "counter", &rc, &e);
            if (!rc) {
                char s[32];
                snprintf(s, sizeof(s), "%ld", v + 1);
                put_s(t, "counter", s);
                rc = ops->commit(t, &e);
            } else {
                ops->rollback(t);
            }
            if (rc == 0) break;
            CHECK(rc == MERR_ABORTED || rc == MERR_RETRY, "increment failed: %s", e.msg);
            w->aborts++;
        }
        w->commits++;
    }
    txn_client_close(c);
    return NULL;
}

static long read_ro(txn_client *c, const char *k)
{
    sql_kv_txn *t = begin(c, SQL_KV_READ_ONLY);
    merr e = {0};
    int rc;
    long v = get_long(t, k, &rc, &e);
    CHECK(rc == 0, "%s", e.msg);
    commit_ok(t);
    return v;
}

static int run_counter(int nthreads, int n)
{
    txn_client *c = open_client();
    long before = read_ro(c, "counter");
    worker w[16] = {0};
    for (int i = 0; i < nthreads; i++) {
        w[i].id = i, w[i].n = n;
        pthread_create(&w[i].th, NULL, counter_worker, &w[i]);
    }
    long commits = 0, aborts = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        commits += w[i].commits;
        aborts += w[i].aborts;
    }
    long after = read_ro(c, "counter");
    CHECK(after - before == commits, "counter moved %ld for %ld commits", after - before, commits);
    printf("ok no lost update: %ld increments committed (%ld aborts retried)\n", commits, aborts);
    txn_client_close(c);
    return 0;
}

/* ---- bank: serializability, audited by snapshot reads ---- */

#define ACCOUNTS 8
#define BALANCE  100

static volatile int bank_done;

static void acct_key(int i, char *k)
{
    snprintf(k, 16, "acct/%d", i);
}

/* Reads two balances (by gets, or by one locking range scan), moves an
 * amount between them. 0, or the error of the attempt. */
static int transfer(sql_kv_txn *t, int a, int b, long amount, int by_scan, merr *e)
{
    long bal[ACCOUNTS] = {0};
    int rc = 0;
    char ka[16], kb[16], s[32];
    acct_key(a, ka);
    acct_key(b, kb);
    if (by_scan) {
        sql_kv_iter *it;
        if ((rc = ops->scan(t, (const uint8_t *)"acct/", 5, (const uint8_t *)"acct0", 5, 0, 0, &it,
                            e)))
            return rc;
        const uint8_t *k, *v;
        size_t kl, vl;
        while ((rc = ops->iter_next(it, &k, &kl, &v, &vl, e)) == 1) {
            char tmp[32], kk[32];
            snprintf(kk, sizeof(kk), "%.*s", (int)kl, (const char *)k);
            int i = atoi(kk + 5);
            snprintf(tmp, sizeof(tmp), "%.*s", (int)vl, (const char *)v);
            if (i >= 0 && i < ACCOUNTS) bal[i] = atol(tmp);
        }
        ops->iter_close(it);
        if (rc < 0) return rc;
    } else {
        bal[a] = get_long(t, ka, &rc, e);
        if (!rc) bal[b] = get_long(t, kb, &rc, e);
        if (rc) return rc;
    }
    snprintf(s, sizeof(s), "%ld", bal[a] - amount);
    if ((rc = ops->put(t, (const uint8_t *)ka, strlen(ka), (const uint8_t *)s, strlen(s), e)))
        return rc;
    snprintf(s, sizeof(s), "%ld", bal[b] + amount);
    return ops->put(t, (const uint8_t *)kb, strlen(kb), (const uint8_t *)s, strlen(s), e);
}

static void *bank_worker(void *arg)
{
    worker *w = arg;
    txn_client *c = open_client();
    unsigned seed = (unsigned)w->id * 7919u + 1;
    for (int i = 0; i < w->n; i++) {
        int a = rand_r(&seed) % ACCOUNTS, b = (a + 1 + rand_r(&seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        long amount = 1 + rand_r(&seed) % 10;
        uint64_t prio = 0;
        for (;;) {
            txn_client_set_next_priority(c, prio);
            sql_kv_txn *t = begin(c, 0);
            prio = txn_client_priority(t);
            merr e = {0};
            int rc = transfer(t, a, b, amount, i % 3 == 0, &e);
            if (rc == 0)
                rc = ops->commit(t, &e);
            else
                ops->rollback(t);
            if (rc == 0) break;
            CHECK(rc == MERR_ABORTED || rc == MERR_RETRY, "transfer failed: %s", e.msg);
            w->aborts++;
        }
        w->commits++;
    }
    txn_client_close(c);
    return NULL;
}

/* One read-only audit: by a scan, or by point reads at one snapshot. */
static void audit(txn_client *c, int by_scan)
{
    sql_kv_txn *t = begin(c, SQL_KV_READ_ONLY);
    merr e = {0};
    long sum = 0;
    int n = 0, rc = 0;
    if (by_scan) {
        sql_kv_iter *it;
        CHECK(ops->scan(t, (const uint8_t *)"acct/", 5, (const uint8_t *)"acct0", 5, 0, 0, &it,
                        &e) == 0,
              "%s", e.msg);
        const uint8_t *k, *v;
        size_t kl, vl;
        while ((rc = ops->iter_next(it, &k, &kl, &v, &vl, &e)) == 1) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "%.*s", (int)vl, (const char *)v);
            sum += atol(tmp);
            n++;
        }
        ops->iter_close(it);
        CHECK(rc == 0, "%s", e.msg);
    } else {
        for (int i = 0; i < ACCOUNTS; i++) {
            char k[16];
            acct_key(i, k);
            sum += get_long(t, k, &rc, &e);
            CHECK(rc == 0, "%s", e.msg);
            n++;
        }
    }
    commit_ok(t);
    CHECK(n == ACCOUNTS && sum == (long)ACCOUNTS * BALANCE,
          "audit (%s) saw %d accounts summing to %ld", by_scan ? "scan" : "gets", n, sum);
}

static void *bank_auditor(void *arg)
{
    long *audits = arg;
    txn_client *c = open_client();
    while (!bank_done) audit(c, (int)((*audits)++ % 2));
    txn_client_close(c);
    return NULL;
}

static int run_bank(int nthreads, int n)
{
    txn_client *c = open_client();
    sql_kv_txn *t = begin(c, 0);
    for (int i = 0; i < ACCOUNTS; i++) {
        char k[16];
        acct_key(i, k);
        put_s(t, k, "100");
    }
    commit_ok(t);
    worker w[16] = {0};
    long audits = 0;
    pthread_t aud;
    pthread_create(&aud, NULL, bank_auditor, &audits);
    for (int i = 0; i < nthreads; i++) {
        w[i].id = i, w[i].n = n;
        pthread_create(&w[i].th, NULL, bank_worker, &w[i]);
    }
    long commits = 0, aborts = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        commits += w[i].commits;
        aborts += w[i].aborts;
    }
    bank_done = 1;
    pthread_join(aud, NULL);
    audit(c, 0);
    audit(c, 1);
    printf("ok bank: %ld transfers (%ld aborts retried), total kept in %ld audits\n", commits,
           aborts, audits + 2);
    txn_client_close(c);
    return 0;
}

/* ---- SQL over the cluster ---- */

static int first_col(void *arg, sql_stmt *st)
{
    snprintf(arg, 256, "%s", sql_column_text(st, 0) ? (const char *)sql_column_text(st, 0) : "");
    return 0;
}

static void sql_ok(sql_session *s, const char *q, char *out)
{
    merr e = {0};
    CHECK(sql_exec(s, q, out ? first_col : NULL, out, &e) == 0, "%s: %s", q, e.msg);
}

static int run_sql(void)
{
    txn_client *c1 = open_client(), *c2 = open_client();
    sql_session *s1, *s2;
    merr e = {0};
    CHECK(sql_session_open(txn_client_kv_ops(), c1, &s1, &e) == 0, "%s", e.msg);
    CHECK(sql_session_open(txn_client_kv_ops(), c2, &s2, &e) == 0, "%s", e.msg);
    char out[256] = "";
    sql_ok(s1, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INTEGER)", NULL);
    sql_ok(s1, "INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)", NULL);
    sql_ok(s1, "SELECT sum(n) FROM t", out);
    CHECK(!strcmp(out, "60"), "sum %s", out);
    CHECK(sql_exec(s1, "INSERT INTO t VALUES (1, 'dup', 0)", NULL, NULL, &e) == MERR_INVALID,
          "duplicate key accepted");
    sql_ok(s1, "BEGIN", NULL);
    sql_ok(s1, "UPDATE t SET n = n + 1 WHERE id = 2", NULL);
    sql_ok(s1, "DELETE FROM t WHERE id = 3", NULL);
    sql_ok(s1, "COMMIT", NULL);
    /* An UPDATE of one row by its key: one request (the row read for
     * writing); deleting the old row and probing its key again are answered
     * by the transaction's read cache. */
    sql_ok(s1, "BEGIN", NULL);
    sql_ok(s1, "SELECT n FROM t WHERE id = 1", out);
    uint64_t before = txn_client_calls(c1);
    sql_ok(s1, "UPDATE t SET n = n + 5 WHERE id = 1", NULL);
    CHECK(txn_client_calls(c1) - before == 1, "an UPDATE of one row sent %" PRIu64 " requests",
          txn_client_calls(c1) - before);
    sql_ok(s1, "SELECT n FROM t WHERE id = 1", out);
    CHECK(!strcmp(out, "15"), "updated row %s", out);
    sql_ok(s1, "ROLLBACK", NULL);
    /* Another session, through another client: the catalog and rows are in
     * the cluster, not in the first session. */
    sql_ok(s2,
           "SELECT group_concat(id || ':' || name || ':' || n, ',') FROM (SELECT * FROM t "
           "ORDER BY id)",
           out);
    CHECK(!strcmp(out, "1:a:10,2:b:21"), "second session saw %s", out);
    sql_ok(s2, "SELECT count(*) FROM t WHERE id >= 2", out);
    CHECK(!strcmp(out, "1"), "range count %s", out);
    /* A read-only session: snapshot reads through the cluster, no writes. */
    sql_session_set_read_only(s2, 1);
    sql_ok(s2, "SELECT sum(n) FROM t", out);
    CHECK(!strcmp(out, "31"), "read-only sum %s", out);
    CHECK(sql_exec(s2, "INSERT INTO t VALUES (9, 'z', 0)", NULL, NULL, &e) == MERR_INVALID,
          "a read-only session wrote");
    sql_session_close(s1);
    sql_session_close(s2);
    txn_client_close(c1);
    txn_client_close(c2);
    printf("ok SQL: CREATE TABLE, INSERT, UPDATE, DELETE, SELECT, read-only session\n");
    return 0;
}

/* ---- idempotent commit, by raw rpc ---- */

/* Sends one txn.Commit (id, prio: put raw/k=v) to whichever host answers as
 * leaseholder; returns its commit timestamp, or 0. */
static uint64_t raw_commit(uint64_t id, uint64_t prio)
{
    Meridian__Txn__TxnMeta meta = MERIDIAN__TXN__TXN_META__INIT;
    meta.id = id, meta.priority = prio;
    Meridian__Kv__Mutation m = MERIDIAN__KV__MUTATION__INIT, *mp = &m;
    m.key.data = (uint8_t *)"raw/k", m.key.len = 5;
    m.value.data = (uint8_t *)"v", m.value.len = 1;
    Meridian__Txn__CommitRequest q = MERIDIAN__TXN__COMMIT_REQUEST__INIT;
    q.txn = &meta, q.mutations = &mp, q.n_mutations = 1;
    uint8_t buf[256];
    size_t len = meridian__txn__commit_request__pack(&q, buf);
    int64_t deadline = mtime_mono_ns() + 30 * MTIME_S;
    while (mtime_mono_ns() < deadline) {
        Meridian__Txn__CommitResponse *r =
            txn_rpc_commit(hosts, buf, len, deadline - mtime_mono_ns());
        uint64_t ts = r && !r->error && !r->aborted ? r->commit_ts : 0;
        CHECK(!r || !r->aborted, "a retried commit was refused: %s",
              r->error ? r->error->message : "");
        if (r) meridian__txn__commit_response__free_unpacked(r, NULL);
        if (ts || !r) return ts;
    }
    return 0;
}

static int run_rawcommit(const char *file)
{
    uint64_t id = ((uint64_t)mtime_real_ns() << 8) | 0x5a, prio = (uint64_t)mtime_real_ns() << 2;
    uint64_t ts1 = raw_commit(id, prio), ts2 = raw_commit(id, prio);
    CHECK(ts1 && ts1 == ts2, "retried commit answered %" PRIu64 " then %" PRIu64, ts1, ts2);
    FILE *f = fopen(file, "w");
    CHECK(f, "cannot write %s", file);
    fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", id, prio, ts1);
    fclose(f);
    printf("ok a retried commit gets the same answer\n");
    return 0;
}

static int run_recommit(const char *file)
{
    uint64_t id, prio, ts;
    FILE *f = fopen(file, "r");
    CHECK(f && fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64, &id, &prio, &ts) == 3, "bad %s", file);
    fclose(f);
    uint64_t again = raw_commit(id, prio);
    CHECK(again == ts, "after failover the commit answered %" PRIu64 ", first %" PRIu64, again, ts);
    printf("ok a commit retried at a new leaseholder gets the same answer\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s contract|counter|bank|sql HOSTS [THREADS N]\n", argv[0]);
        return 2;
    }
    hosts = argv[2];
    ops = txn_client_kv_ops();
    int nthreads = argc > 3 ? atoi(argv[3]) : 4, n = argc > 4 ? atoi(argv[4]) : 20;
    if (nthreads < 1 || nthreads > 16) nthreads = 4;
    if (!strcmp(argv[1], "contract")) return run_contract();
    if (!strcmp(argv[1], "counter")) return run_counter(nthreads, n);
    if (!strcmp(argv[1], "bank")) return run_bank(nthreads, n);
    if (!strcmp(argv[1], "sql")) return run_sql();
    if (!strcmp(argv[1], "rawcommit") && argc > 3) return run_rawcommit(argv[3]);
    if (!strcmp(argv[1], "recommit") && argc > 3) return run_recommit(argv[3]);
    fprintf(stderr, "unknown test %s\n", argv[1]);
    return 2;
}
