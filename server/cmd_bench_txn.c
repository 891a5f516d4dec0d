/* `meridian bench txn`: read-write transactions against a running cluster,
 * phase by phase. Each phase runs C client threads (one txn_client each)
 * for D doing read-modify-write transactions and reports throughput and the
 * p50/p99 latency of the whole transaction and of its commit:
 *
 *   1-range   two keys in one range: one Paxos write at commit
 *   2-range   one key on each side of a split: two-phase commit
 *
 * then the 2-range/1-range latency ratios. The split (at BENCH_SPLIT) is
 * made first through range.Split, as `debug split` does; splitting at a key
 * that already starts a range is a no-op, so runs repeat.
 *
 * More phases: add a row to `phases` below (a name and a body that runs one
 * transaction for worker w). Snapshot-read phases live in
 * cmd_bench_txn_reads.c and are appended the same way. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/histogram.h"
#include "common/log.h"
#include "common/mtime.h"
#include "proto/range.pb-c.h"
#include "server/commands.h"
#include "server/kv_cli.h"
#include "server/txn_client.h"

#define BENCH_PREFIX "benchtxn/"
#define BENCH_SPLIT  BENCH_PREFIX "m" /* left: BENCH_PREFIX "a/...", right: "z/..." */

typedef struct worker worker;

/* One transaction of a phase for worker w: 0 committed, or an error
 * (MERR_ABORTED: retried by the caller with the same priority). commit_ns
 * gets the time spent in commit. */
typedef int (*phase_fn)(worker *w, int64_t *commit_ns, merr *e);

typedef struct phase {
    const char *name, *what;
    phase_fn run;
} phase;

typedef struct start_line {
    atomic_int ready;    /* workers warmed up */
    atomic_llong end_ns; /* set once every worker is ready: the measured run */
} start_line;

struct worker {
    const phase *ph;
    int id;
    const char *hosts, *certs_dir;
    start_line *sl;
    txn_client *c;
    mhist txn, commit; /* per worker: merged at the end */
    uint64_t ok, aborts, errors;
    char err[160]; /* the first error that was not an abort */
};

/* Reads key (a decimal counter, absent = 0) and writes it back plus one. */
static int incr(sql_kv_txn *t, const char *key, merr *e)
{
    const sql_kv_ops *ops = txn_client_kv_ops();
    mbuf v = MBUF_INIT;
    size_t kl = strlen(key);
    int rc = ops->get(t, (const uint8_t *)key, kl, &v, e);
    long long n = 0;
    if (rc == 0 && v.len && v.len < 32) {
        char s[32];
        memcpy(s, v.data, v.len);
        s[v.len] = 0;
        n = atoll(s);
    }
    mbuf_free(&v);
    if (rc && rc != MERR_NOTFOUND) return rc;
    char out[32];
    int ol = snprintf(out, sizeof(out), "%lld", n + 1);
    return ops->put(t, (const uint8_t *)key, kl, (const uint8_t *)out, (size_t)ol, e);
}

/* A transaction incrementing k1 then k2; k1 is the anchor (coordinator). */
static int rmw2(worker *w, const char *k1, const char *k2, int64_t *commit_ns, merr *e)
{
    const sql_kv_ops *ops = txn_client_kv_ops();
    sql_kv_txn *t = NULL;
    int rc = ops->begin(w->c, 0, &t, e);
    if (rc) return rc;
    if ((rc = incr(t, k1, e)) || (rc = incr(t, k2, e))) {
        ops->rollback(t);
        return rc;
    }
    int64_t t0 = mtime_mono_ns();
    rc = ops->commit(t, e); /* frees t */
    *commit_ns = mtime_mono_ns() - t0;
    return rc;
}

/* --anchor-right: the anchor (first key, coordinator, record) is on the
 * right of the split, in the range that does not start at "". Set before
 * the workers start, only read by them. */
static int anchor_right;

static int run_one_range(worker *w, int64_t *commit_ns, merr *e)
{
    char k1[64], k2[64];
    char side = anchor_right ? 'z' : 'a';
    snprintf(k1, sizeof(k1), BENCH_PREFIX "%c/%04d/x", side, w->id);
    snprintf(k2, sizeof(k2), BENCH_PREFIX "%c/%04d/y", side, w->id);
    return rmw2(w, k1, k2, commit_ns, e);
}

static int run_two_ranges(worker *w, int64_t *commit_ns, merr *e)
{
    char k1[64], k2[64];
    snprintf(k1, sizeof(k1), BENCH_PREFIX "%c/%04d/x", anchor_right ? 'z' : 'a', w->id);
    snprintf(k2, sizeof(k2), BENCH_PREFIX "%c/%04d/y", anchor_right ? 'a' : 'z', w->id);
    return rmw2(w, k1, k2, commit_ns, e);
}

/* The phases, in order. The ratio line compares "2-range" with "1-range". */
static const phase phases[] = {
    {"1-range", "read-modify-write of 2 keys in one range", run_one_range},
    {"2-range", "read-modify-write of 1 key in each of 2 ranges (2PC)", run_two_ranges},
    /* snapshot reads: cmd_bench_txn_reads.c adds its phase here */
};
#define NPHASES (sizeof(phases) / sizeof(phases[0]))

static void sleep_1ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    /* Warm-up, not measured: connections, and the first request to a range
     * just split (its lease) can take seconds. */
    int64_t warm_end = mtime_mono_ns() + 60 * MTIME_S;
    for (int rc = MERR_ABORTED; rc == MERR_ABORTED && mtime_mono_ns() < warm_end;) {
        merr e = {0};
        int64_t ignored;
        rc = w->ph->run(w, &ignored, &e);
    }
    atomic_fetch_add(&w->sl->ready, 1);
    while (!atomic_load(&w->sl->end_ns)) sleep_1ms();
    int64_t end_ns = atomic_load(&w->sl->end_ns);
    uint64_t prio = 0; /* a retried transaction keeps its first priority */
    while (mtime_mono_ns() < end_ns) {
        merr e = {0};
        int64_t t0 = mtime_mono_ns(), commit_ns = 0;
        if (prio) txn_client_set_next_priority(w->c, prio);
        int rc = w->ph->run(w, &commit_ns, &e);
        int64_t t1 = mtime_mono_ns();
        if (rc == 0) {
            w->ok++;
            prio = 0;
            mhist_record(&w->txn, (uint64_t)(t1 - t0));
            mhist_record(&w->commit, (uint64_t)commit_ns);
        } else if (rc == MERR_ABORTED) {
            w->aborts++;
            if (!prio) prio = ((uint64_t)mtime_real_ns() / 1000) << 12; /* about its start */
        } else {
            w->errors++;
            prio = 0;
            if (!w->err[0]) snprintf(w->err, sizeof(w->err), "%.150s", e.msg[0] ? e.msg : "error");
        }
    }
    return NULL;
}

typedef struct result {
    double secs;
    uint64_t ok, aborts, errors;
    mhist txn, commit;
    char err[160];
} result;

static int run_phase(const phase *ph, const char *hosts, const char *certs_dir, int64_t conc,
                     int64_t duration, result *res)
{
    worker *ws = calloc((size_t)conc, sizeof(*ws));
    pthread_t *th = calloc((size_t)conc, sizeof(*th));
    int rc = ws && th ? 0 : MERR_NOMEM;
    start_line sl;
    atomic_init(&sl.ready, 0);
    atomic_init(&sl.end_ns, 0);
    int64_t n = 0;
    for (; !rc && n < conc; n++) {
        worker *w = &ws[n];
        merr e = {0};
        *w = (worker){.ph = ph, .id = (int)n, .hosts = hosts, .certs_dir = certs_dir, .sl = &sl};
        mhist_init(&w->txn);
        mhist_init(&w->commit);
        if ((rc = txn_client_open(hosts, certs_dir, &w->c, &e))) {
            fprintf(stderr, "bench txn: %s\n", e.msg);
            break;
        }
        if (pthread_create(&th[n], NULL, worker_main, w)) {
            txn_client_close(w->c);
            rc = MERR_NOMEM;
            break;
        }
    }
    while (atomic_load(&sl.ready) < n) sleep_1ms();
    int64_t t0 = mtime_mono_ns();
    atomic_store(&sl.end_ns, t0 + duration);
    *res = (result){0};
    mhist_init(&res->txn);
    mhist_init(&res->commit);
    for (int64_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        txn_client_close(ws[i].c);
        res->ok += ws[i].ok;
        res->aborts += ws[i].aborts;
        res->errors += ws[i].errors;
        mhist_merge(&res->txn, &ws[i].txn);
        mhist_merge(&res->commit, &ws[i].commit);
        if (!res->err[0] && ws[i].err[0]) memcpy(res->err, ws[i].err, sizeof(res->err));
    }
    res->secs = (double)(mtime_mono_ns() - t0) / 1e9;
    free(ws);
    free(th);
    return rc;
}

static void print_result(const phase *ph, const result *r)
{
    char tp50[32], tp99[32], cp50[32], cp99[32];
    mhist_fmt_ns(mhist_quantile(&r->txn, 0.50), tp50, sizeof(tp50));
    mhist_fmt_ns(mhist_quantile(&r->txn, 0.99), tp99, sizeof(tp99));
    mhist_fmt_ns(mhist_quantile(&r->commit, 0.50), cp50, sizeof(cp50));
    mhist_fmt_ns(mhist_quantile(&r->commit, 0.99), cp99, sizeof(cp99));
    printf("%-8s %6.1fs %9.1f txn/s  ok=%-8" PRIu64 " aborted=%-6" PRIu64 " err=%-5" PRIu64
           " txn p50=%-9s p99=%-9s commit p50=%-9s p99=%s\n",
           ph->name, r->secs, r->secs > 0 ? (double)r->ok / r->secs : 0, r->ok, r->aborts,
           r->errors, tp50, tp99, cp50, cp99);
    if (r->err[0]) printf("%-8s first error: %s\n", ph->name, r->err);
    fflush(stdout);
}

static Meridian__Kv__Error *err_split(ProtobufCMessage *m)
{
    return ((Meridian__Range__SplitResponse *)m)->error;
}

/* Splits at BENCH_SPLIT so the 2-range phase spans two ranges. */
static int make_split(const char *hosts, const char *certs_dir, merr *e)
{
    kv_client c;
    ProtobufCMessage *out = NULL;
    int rc = kv_client_open(&c, hosts, certs_dir, 60 * MTIME_S, e);
    c.call_timeout_ns = 15 * MTIME_S; /* as `debug split`: a range id, then the apply */
    if (!rc) {
        Meridian__Range__SplitRequest q = MERIDIAN__RANGE__SPLIT_REQUEST__INIT;
        q.key = (ProtobufCBinaryData){strlen(BENCH_SPLIT), (uint8_t *)BENCH_SPLIT};
        rc = kv_client_call(&c, "range.Split", &q.base,
                            &meridian__range__split_response__descriptor, err_split, &out, e);
    }
    if (out) protobuf_c_message_free_unpacked(out, NULL);
    kv_client_close(&c);
    return rc;
}

static double ratio(const mhist *a, const mhist *b, double q)
{
    uint64_t x = mhist_quantile(a, q), y = mhist_quantile(b, q);
    return y ? (double)x / (double)y : 0;
}

int cmd_bench_txn(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t concurrency = 4, duration = 10 * MTIME_S;
    int insecure = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]", "nodes of the cluster (required)"},
        {"concurrency", CLI_INT, &concurrency, NULL,
         "client threads per phase, each with its own keys (default 4)"},
        {"duration", CLI_DURATION, &duration, NULL, "how long each phase runs (default 10s)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"anchor-right", CLI_BOOL, &anchor_right, NULL,
         "first key (coordinator) on the right of the split (default: left)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc =
        cli_parse(argv[0], "--host HOST:PORT --insecure [flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (!host || npos || concurrency < 1 || concurrency > 256 || duration <= 0 ||
        !certs_dir == !insecure) {
        fprintf(stderr,
                "%s: need --host, and --certs-dir DIR or --insecure; 1 <= --concurrency <= 256; "
                "--duration > 0\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    if (mlog_min_level < MLOG_WARN) mlog_set_level(MLOG_WARN); /* the table is the output */
    merr e = {0};
    if (make_split(host, certs_dir, &e)) {
        fprintf(stderr, "%s: split at %s: %s\n", argv[0], BENCH_SPLIT, e.msg);
        return 1;
    }
    printf("bench txn: %s, concurrency %" PRId64 ", %.1fs per phase\n", host, concurrency,
           (double)duration / 1e9);
    for (size_t i = 0; i < NPHASES; i++) printf("phase %-8s %s\n", phases[i].name, phases[i].what);
    fflush(stdout);
    static result res[NPHASES];
    int ok = 1;
    for (size_t i = 0; i < NPHASES; i++) {
        if (run_phase(&phases[i], host, certs_dir, concurrency, duration, &res[i])) ok = 0;
        print_result(&phases[i], &res[i]);
        if (!res[i].ok) ok = 0;
    }
    if (ok)
        printf("ratio 2-range/1-range: commit p50 %.2f p99 %.2f, txn p50 %.2f p99 %.2f\n",
               ratio(&res[1].commit, &res[0].commit, 0.5),
               ratio(&res[1].commit, &res[0].commit, 0.99), ratio(&res[1].txn, &res[0].txn, 0.5),
               ratio(&res[1].txn, &res[0].txn, 0.99));
    return ok ? 0 : 1;
}
