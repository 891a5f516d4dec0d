/* `meridian bench txn-reads`: lock-free snapshot reads (bounded staleness)
 * against a running cluster, C client threads for D, first spread over every
 * host given (each thread's first seed is one of them, so followers serve at
 * their safe time, server/replica_close.c), then all sent to the range's
 * leaseholder; prints reads/s and latency of each and the ratio. With
 * --leader-only only the second phase runs; --svg draws reads/s second by
 * second for both. The keys are written first (one transaction) and read
 * back from every host before timing starts, each host serving the read
 * itself, so every replica has closed past them. Meant to be folded into
 * `meridian bench txn`. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/histogram.h"
#include "common/mtime.h"
#include "common/svgplot.h"
#include "server/commands.h"
#include "server/txn_client.h"
#include "sql/kv.h"

#define TR_MAX_HOSTS 16
#define TR_MAX_SECS  600 /* seconds of a phase the plot shows */

typedef struct tr_phase {
    char hosts[TR_MAX_HOSTS][128];
    int nhosts;
    const char *certs_dir;
    int64_t nkeys, staleness_ns, start_ns, end_ns;
    /* results, under mu */
    pthread_mutex_t mu;
    mhist hist;
    uint64_t ok, errors, absent;
    uint64_t per_sec[TR_MAX_SECS]; /* reads done in each second of the phase */
    char err[512];                 /* the last error (merr message size) */
} tr_phase;

typedef struct tr_worker {
    tr_phase *p;
    int idx;
} tr_worker;

static void key_of(int64_t i, char *out, size_t cap)
{
    snprintf(out, cap, "bench/reads/%06" PRId64, i);
}

/* The seeds for worker idx: its own host first, then the rest. */
static void seeds_for(const tr_phase *p, int idx, char *out, size_t cap)
{
    size_t n = 0;
    for (int j = 0; j < p->nhosts && n < cap; j++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", j ? "," : "",
                              p->hosts[(idx + j) % p->nhosts]);
}

static void *worker(void *arg)
{
    tr_worker *w = arg;
    tr_phase *p = w->p;
    const sql_kv_ops *ops = txn_client_kv_ops();
    char seeds[TR_MAX_HOSTS * 130];
    seeds_for(p, w->idx, seeds, sizeof(seeds));
    txn_client *c = NULL;
    merr e = {0};
    mhist h;
    mhist_init(&h);
    uint64_t ok = 0, errors = 0, absent = 0;
    static _Thread_local uint64_t sec[TR_MAX_SECS]; /* large: off the stack */
    memset(sec, 0, sizeof(sec));
    if (txn_client_open(seeds, p->certs_dir, &c, &e) ||
        txn_client_set_read_mode(c, TXN_CLIENT_READ_BOUNDED, (uint64_t)(p->staleness_ns / MTIME_US),
                                 0)) {
        pthread_mutex_lock(&p->mu);
        snprintf(p->err, sizeof(p->err), "%s", e.msg[0] ? e.msg : "bad read mode");
        p->errors++;
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    uint64_t rnd = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->idx + 1);
    mbuf v = MBUF_INIT;
    while (mtime_mono_ns() < p->end_ns) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        char key[48];
        key_of((int64_t)(rnd % (uint64_t)p->nkeys), key, sizeof(key));
        sql_kv_txn *t = NULL;
        int64_t t0 = mtime_mono_ns();
        int rc = ops->begin(c, SQL_KV_READ_ONLY, &t, &e);
        if (!rc) rc = ops->get(t, (const uint8_t *)key, strlen(key), &v, &e);
        if (t) ops->rollback(t);
        if (rc == 0 || rc == MERR_NOTFOUND) { /* absent: a snapshot before the keys */
            int64_t t1 = mtime_mono_ns(), i = (t1 - p->start_ns) / MTIME_S;
            ok++;
            absent += rc != 0;
            mhist_record(&h, (uint64_t)(t1 - t0));
            if (i >= 0 && i < TR_MAX_SECS) sec[i]++;
        } else {
            errors++;
            pthread_mutex_lock(&p->mu);
            snprintf(p->err, sizeof(p->err), "%s", e.msg);
            pthread_mutex_unlock(&p->mu);
        }
    }
    mbuf_free(&v);
    txn_client_close(c);
    pthread_mutex_lock(&p->mu);
    mhist_merge(&p->hist, &h);
    for (int i = 0; i < TR_MAX_SECS; i++) p->per_sec[i] += sec[i];
    p->ok += ok;
    p->errors += errors;
    p->absent += absent;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Runs one phase; returns reads/s (0 when nothing succeeded). */
static double run_phase(tr_phase *p, const char *name, int64_t concurrency, int64_t duration)
{
    mhist_init(&p->hist);
    p->ok = p->errors = p->absent = 0;
    p->err[0] = 0;
    memset(p->per_sec, 0, sizeof(p->per_sec));
    pthread_t *th = calloc((size_t)concurrency, sizeof(*th));
    tr_worker *ws = calloc((size_t)concurrency, sizeof(*ws));
    if (!th || !ws) {
        free(th);
        free(ws);
        return 0;
    }
    int64_t t0 = mtime_mono_ns();
    p->start_ns = t0;
    p->end_ns = t0 + duration;
    int64_t started = 0;
    for (int64_t i = 0; i < concurrency; i++) {
        ws[i] = (tr_worker){p, (int)i};
        if (pthread_create(&th[i], NULL, worker, &ws[i]) == 0) started++;
    }
    for (int64_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    double rate = (double)p->ok / secs;
    printf("%-12s %10.0f reads/s  p50 %7.3f ms  p99 %7.3f ms  (%" PRIu64 " reads, %" PRIu64
           " absent, %" PRIu64 " errors, %d host%s)\n",
           name, rate, (double)mhist_quantile(&p->hist, 0.5) / 1e6,
           (double)mhist_quantile(&p->hist, 0.99) / 1e6, p->ok, p->absent, p->errors, p->nhosts,
           p->nhosts == 1 ? "" : "s");
    if (p->errors && p->err[0]) printf("%-12s last error: %s\n", "", p->err);
    fflush(stdout);
    free(th);
    free(ws);
    return p->ok ? rate : 0;
}

/* Writes key 0 again (same value): the range's last write is fresh, so the
 * leaseholder closes past it and then serves bounded reads from its safe
 * time for the next `staleness`, as in the phase before. Without it the
 * second phase would start that much closer to the moment its safe time is
 * too old and every read takes a barrier write. */
static int touch(const char *host, const char *certs_dir, merr *e)
{
    const sql_kv_ops *ops = txn_client_kv_ops();
    txn_client *c = NULL;
    sql_kv_txn *t = NULL;
    char key[48];
    key_of(0, key, sizeof(key));
    int rc = txn_client_open(host, certs_dir, &c, e);
    if (!rc) rc = ops->begin(c, 0, &t, e);
    if (!rc) rc = ops->put(t, (const uint8_t *)key, strlen(key), (const uint8_t *)"value", 5, e);
    if (!rc)
        rc = ops->commit(t, e);
    else if (t)
        ops->rollback(t);
    txn_client_close(c);
    return rc;
}

/* Reads/s second by second of both phases (NULL: a phase that did not run). */
static void write_plot(const char *path, const uint64_t *spread, const uint64_t *lead, int64_t secs,
                       int nhosts, int64_t conc)
{
    static double x[TR_MAX_SECS], ys[TR_MAX_SECS], yl[TR_MAX_SECS];
    size_t n = secs < TR_MAX_SECS ? (size_t)secs : TR_MAX_SECS;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)(i + 1);
        ys[i] = spread ? (double)spread[i] : 0;
        yl[i] = (double)lead[i];
    }
    char title[160], sname[64];
    snprintf(title, sizeof(title),
             "meridian bench txn-reads: bounded-staleness reads, concurrency %" PRId64, conc);
    snprintf(sname, sizeof(sname), "%d replicas", nhosts);
    svgplot pl = {
        .title = title, .x_label = "second of the phase", .y_label = "reads/s", .x = x, .n = n};
    if (spread) pl.series[pl.nseries++] = (svgplot_series){sname, ys, 0};
    pl.series[pl.nseries++] = (svgplot_series){"leaseholder alone", yl, 0};
    merr e = {0};
    if (svgplot_write(&pl, path, &e))
        fprintf(stderr, "bench txn-reads: plot: %s\n", e.msg);
    else
        printf("plot written to %s\n", path);
}

/* Writes the keys, then reads one strongly: the client ends up at the
 * leaseholder, whose address goes into leader. */
static int prepare(tr_phase *p, const char *hosts, char *leader, size_t cap, merr *e)
{
    const sql_kv_ops *ops = txn_client_kv_ops();
    txn_client *c = NULL;
    sql_kv_txn *t = NULL;
    int rc = txn_client_open(hosts, p->certs_dir, &c, e);
    if (!rc) rc = ops->begin(c, 0, &t, e);
    for (int64_t i = 0; !rc && i < p->nkeys; i++) {
        char key[48];
        key_of(i, key, sizeof(key));
        rc = ops->put(t, (const uint8_t *)key, strlen(key), (const uint8_t *)"value", 5, e);
    }
    if (!rc)
        rc = ops->commit(t, e);
    else if (t)
        ops->rollback(t);
    t = NULL;
    mbuf v = MBUF_INIT;
    if (!rc) rc = ops->begin(c, SQL_KV_READ_ONLY, &t, e);
    if (!rc) rc = ops->get(t, (const uint8_t *)"bench/reads/000000", 18, &v, e);
    if (t) ops->rollback(t);
    if (!rc) snprintf(leader, cap, "%s", txn_client_current_host(c));
    if (c) txn_client_close(c);
    /* Every host serves the keys at its safe time before timing starts,
     * itself: a read it sends on to the leaseholder (its safe time is
     * behind) leaves the client there (a hang guard of 30 s per host, not
     * a timing claim). */
    for (int i = 0; !rc && i < p->nhosts; i++) {
        int64_t until = mtime_mono_ns() + 30 * MTIME_S;
        if ((rc = txn_client_open(p->hosts[i], p->certs_dir, &c, e))) break;
        rc = txn_client_set_read_mode(c, TXN_CLIENT_READ_BOUNDED,
                                      (uint64_t)(p->staleness_ns / MTIME_US), 0);
        for (int found = 0; !rc && !found;) {
            t = NULL;
            rc = ops->begin(c, SQL_KV_READ_ONLY, &t, e);
            if (!rc) rc = ops->get(t, (const uint8_t *)"bench/reads/000000", 18, &v, e);
            if (t) ops->rollback(t);
            found = rc == 0 && !strcmp(txn_client_current_host(c), p->hosts[i]);
            if (rc == MERR_NOTFOUND || (!rc && !found)) {
                rc = mtime_mono_ns() < until ? 0 : MERR_TIMEOUT;
                if (!rc) {
                    struct timespec ts = {0, 20 * 1000000L}; /* poll, not spin */
                    nanosleep(&ts, NULL);
                }
            }
        }
        if (rc == MERR_TIMEOUT) merr_set(e, rc, "%s never served the keys", p->hosts[i]);
        txn_client_close(c);
    }
    mbuf_free(&v);
    return rc;
}

int bench_txn_reads_run(int argc, char **argv)
{
    const char *hosts = NULL, *certs_dir = NULL, *svg = NULL;
    int64_t concurrency = 8, duration = 5 * MTIME_S, nkeys = 1000, staleness = 10 * MTIME_S;
    int leader_only = 0, insecure = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &hosts, "H[,H2,H3]", "the nodes holding replicas (all are read from)"},
        {"concurrency", CLI_INT, &concurrency, "C", "client threads (default 8)"},
        {"duration", CLI_DURATION, &duration, "D", "per phase (default 5s)"},
        {"keys", CLI_INT, &nkeys, "N", "keys written first and read at random (default 1000)"},
        {"staleness", CLI_DURATION, &staleness, "S", "bounded staleness (default 10s)"},
        {"leader-only", CLI_BOOL, &leader_only, NULL, "only the leaseholder phase"},
        {"svg", CLI_STR, &svg, "FILE", "also draw reads/s second by second as SVG"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS with the root client certificate"},
        {"insecure", CLI_BOOL, &insecure, NULL, "an --insecure cluster"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host H[,H2,H3] [--concurrency C] [--duration D] [--leader-only]",
                       flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (!hosts || npos || concurrency < 1 || concurrency > 1024 || nkeys < 1 || nkeys > 1000000 ||
        duration <= 0 || staleness <= 0 || (!certs_dir && !insecure)) {
        fprintf(stderr,
                "%s: --host is required, --concurrency 1..1024, --keys 1..1000000, positive "
                "--duration and --staleness, and --certs-dir or --insecure\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    static tr_phase p; /* large: off the stack */
    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.mu, NULL);
    p.certs_dir = certs_dir;
    p.nkeys = nkeys;
    p.staleness_ns = staleness;
    for (const char *s = hosts; *s && p.nhosts < TR_MAX_HOSTS;) {
        size_t l = strcspn(s, ",");
        if (l && l < sizeof(p.hosts[0]))
            snprintf(p.hosts[p.nhosts++], sizeof(p.hosts[0]), "%.*s", (int)l, s);
        s += l + (s[l] == ',');
    }
    char leader[128] = "";
    merr e = {0};
    if (p.nhosts == 0 || prepare(&p, hosts, leader, sizeof(leader), &e)) {
        fprintf(stderr, "%s: cannot write the keys: %s\n", argv[0], e.msg);
        return 1;
    }
    printf("bench txn-reads: bounded-staleness (%.1fs) snapshot reads of %" PRId64
           " keys, concurrency %" PRId64 ", %.1fs per phase; leaseholder %s\n",
           (double)staleness / 1e9, nkeys, concurrency, (double)duration / 1e9, leader);
    fflush(stdout); /* the keys are in: timing starts (scripts watch for this line) */
    double spread = 0;
    int nall = p.nhosts;
    static uint64_t spread_sec[TR_MAX_SECS];
    if (!leader_only) {
        spread = run_phase(&p, "replicas", concurrency, duration);
        memcpy(spread_sec, p.per_sec, sizeof(spread_sec));
    }
    snprintf(p.hosts[0], sizeof(p.hosts[0]), "%s", leader);
    p.nhosts = 1;
    if (touch(leader, certs_dir, &e)) {
        fprintf(stderr, "%s: cannot write before the leaseholder phase: %s\n", argv[0], e.msg);
        return 1;
    }
    double lead = run_phase(&p, "leaseholder", concurrency, duration);
    if (!leader_only && lead > 0)
        printf("ratio        %.2fx (%d replicas vs the leaseholder alone)\n", spread / lead, nall);
    if (svg && duration >= 2 * MTIME_S)
        write_plot(svg, leader_only ? NULL : spread_sec, p.per_sec, duration / MTIME_S, nall,
                   concurrency);
    pthread_mutex_destroy(&p.mu);
    return lead > 0 && (leader_only || spread > 0) ? 0 : 1;
}
