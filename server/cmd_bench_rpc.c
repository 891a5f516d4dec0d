/* `meridian bench rpc`: ping-pong between two rpc nodes over loopback (two
 * loops on two threads, real TCP), at 1 and 64 requests in flight (or the
 * --inflight given), printing requests/s and p50/p99 round-trip latency.
 * Every call carries a deadline, as real callers' do. --tls runs the same
 * over mutual TLS 1.3 with certificates minted for the run. */
#include "common/cli.h"
#include "common/log.h"
#include "common/mtime.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"
#include "rpc/tls_cert.h"
#include "server/commands.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_MAX_SAMPLES (8u << 20)

typedef struct bench_run {
    rpc_node *client;
    int64_t inflight, size, duration_ns;
    uint8_t *payload;
    int64_t start_ns, end_ns, last_ns;
    int64_t *samples;
    size_t nsamples;
    uint64_t done, errors, outstanding;
    int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
} bench_run;

static void bench_echo(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, 0, NULL, req->payload, req->len);
}

static void bench_issue(bench_run *r);

static void bench_finish(bench_run *r)
{
    r->last_ns = mtime_mono_ns();
    pthread_mutex_lock(&r->mu);
    r->finished = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* The start time of a call rides in its callback argument: no allocation. */
static void bench_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    bench_run *r = *(bench_run **)arg;
    int64_t now = mtime_mono_ns();
    int64_t started = ((int64_t *)arg)[1];
    (void)p, (void)len;
    r->outstanding--;
    if (code) {
        if (r->errors++ == 0) MLOG_W("bench", "call failed", "err=\"%s\"", msg ? msg : "");
    } else {
        r->done++;
        if (r->nsamples < BENCH_MAX_SAMPLES) r->samples[r->nsamples++] = now - started;
    }
    ((int64_t *)arg)[1] = now;
    if (now >= r->end_ns) r->stopping = 1;
    if (!r->stopping) {
        int64_t dl = mtime_real_ns() / 1000 + 10 * 1000000LL;
        if (rpc_node_call(r->client, 2, "ping", r->payload, (size_t)r->size, dl, bench_reply, arg,
                          NULL) == 0) {
            r->outstanding++;
            return;
        }
        r->errors++;
    }
    free(arg);
    if (r->outstanding == 0) bench_finish(r);
}

static void bench_issue(bench_run *r)
{
    for (int64_t i = 0; i < r->inflight; i++) {
        int64_t *slot = malloc(2 * sizeof(int64_t));
        if (!slot) break;
        *(bench_run **)slot = r;
        slot[1] = mtime_mono_ns();
        int64_t dl = mtime_real_ns() / 1000 + 10 * 1000000LL;
        if (rpc_node_call(r->client, 2, "ping", r->payload, (size_t)r->size, dl, bench_reply, slot,
                          NULL)) {
            free(slot);
            r->errors++;
            continue;
        }
        r->outstanding++;
    }
    if (r->outstanding == 0) bench_finish(r);
}

static void bench_start(void *arg)
{
    bench_run *r = arg;
    r->start_ns = mtime_mono_ns();
    r->end_ns = r->start_ns + r->duration_ns;
    bench_issue(r);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted-sample percentile (until common/histogram.h lands). */
static int64_t pct(const int64_t *s, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return s[i < n ? i : n - 1];
}

static void warm(void *arg)
{
    bench_run *r = arg;
    r->end_ns = 0;
}

static int bench_one(rpc_node *client, int64_t inflight, int64_t size, int64_t duration_ns,
                     int64_t *samples, int quiet)
{
    bench_run r;
    memset(&r, 0, sizeof(r));
    r.client = client;
    r.inflight = inflight;
    r.size = size;
    r.duration_ns = duration_ns;
    r.samples = samples;
    r.payload = calloc(1, (size_t)size + 1);
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    rpc_node_run_sync(client, warm, &r);
    if (rpc_node_post(client, bench_start, &r)) return 1;
    pthread_mutex_lock(&r.mu);
    while (!r.finished) pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    double secs = (double)(r.last_ns - r.start_ns) / 1e9;
    qsort(samples, r.nsamples, sizeof(int64_t), cmp_i64);
    if (!quiet)
        printf("inflight=%-4lld requests=%-9llu errors=%-3llu req/s=%-10.0f p50=%.1fus p99=%.1fus "
               "p99.9=%.1fus\n",
               (long long)inflight, (unsigned long long)r.done, (unsigned long long)r.errors,
               (double)r.done / secs, (double)pct(samples, r.nsamples, 0.50) / 1e3,
               (double)pct(samples, r.nsamples, 0.99) / 1e3,
               (double)pct(samples, r.nsamples, 0.999) / 1e3);
    fflush(stdout);
    free(r.payload);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    return r.errors ? 1 : 0;
}

static void add_peer(void *arg)
{
    void **v = arg;
    *(int *)v[2] = rpc_node_add_peer(v[0], 2, v[1]);
}

/* A CA and one node certificate in a fresh temporary directory. */
static int bench_certs(char *dir, char *ca, char *cert, char *key, merr *e)
{
    char cakey[PATH_MAX];
    snprintf(dir, 64, "/tmp/meridian-bench-XXXXXX");
    if (!mkdtemp(dir)) return merr_set(e, MERR_IO, "cannot create a temporary directory");
    snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
    const char *hosts[] = {"127.0.0.1", "::1"};
    tls_cert_opts o = {.not_before = -3600, .not_after = TLS_CERT_DAY};
    int rc = tls_certs_paths(dir, NULL, ca, cert, key, e);
    if (!rc) rc = tls_cert_create_ca(ca, cakey, &o, e);
    if (!rc) rc = tls_cert_create(ca, cakey, TLS_NODE_CN, hosts, 2, 1, cert, key, &o, e);
    return rc;
}

static void bench_rm_certs(const char *dir, const char *ca, const char *cert, const char *key)
{
    char cakey[PATH_MAX];
    snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
    unlink(ca), unlink(cert), unlink(key), unlink(cakey);
    rmdir(dir);
}

static void add_handler(void *arg)
{
    rpc_node_handle(arg, "ping", bench_echo, NULL);
}

int cmd_bench_rpc(int argc, char **argv)
{
    int64_t duration = 3 * MTIME_S, inflight = 0, size = 16;
    int v6 = 0, tls = 0;
    const cli_flag flags[] = {
        {"tls", CLI_BOOL, &tls, NULL, "mutual TLS 1.3 (certificates minted for the run)"},
        {"duration", CLI_DURATION, &duration, "D", "time per run (default 3s)"},
        {"inflight", CLI_INT, &inflight, "N", "requests in flight (default: runs 1 and 64)"},
        {"size", CLI_SIZE, &size, "B", "request and reply payload bytes (default 16)"},
        {"ipv6", CLI_BOOL, &v6, NULL, "use [::1] instead of 127.0.0.1"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[--duration D] [--inflight N] [--size B] [--ipv6] [--tls]", flags,
                       argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || duration <= 0 || inflight < 0 || inflight > 100000 || size < 0 ||
        size > (16 << 20)) {
        fprintf(stderr, "%s: bad arguments (see --help)\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    mlog_set_level(MLOG_WARN);
    rpc_config cs, cc;
    rpc_config_defaults(&cs);
    cs.node_id = 2;
    cs.cluster_id = "bench";
    cs.listen_addr = v6 ? "[::1]:0" : "127.0.0.1:0";
    rpc_config_defaults(&cc);
    cc.node_id = 1;
    cc.cluster_id = "bench";
    rpc_node *server = NULL, *client = NULL;
    merr e = {0};
    char dir[64] = "", ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    if (tls) {
        if (bench_certs(dir, ca, cert, key, &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
            if (dir[0]) bench_rm_certs(dir, ca, cert, key);
            return 1;
        }
        cs.tls_ca = cc.tls_ca = ca;
        cs.tls_cert = cc.tls_cert = cert;
        cs.tls_key = cc.tls_key = key;
    }
    rc = rpc_node_start(&cs, &server, &e);
    if (!rc) rc = rpc_node_start(&cc, &client, &e);
    if (tls) bench_rm_certs(dir, ca, cert, key); /* loaded: no longer needed */
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
        rpc_node_stop(server);
        return 1;
    }
    char addr[64];
    snprintf(addr, sizeof(addr), v6 ? "[::1]:%d" : "127.0.0.1:%d", rpc_node_port(server));
    int prc = 0;
    void *pv[3] = {client, addr, &prc};
    rpc_node_run_sync(client, add_peer, pv);
    rpc_node_run_sync(server, add_handler, server);
    int64_t *samples = malloc(BENCH_MAX_SAMPLES * sizeof(int64_t));
    if (!samples || prc) {
        fprintf(stderr, "%s: setup failed\n", argv[0]);
        rc = 1;
        goto out;
    }
    char dbuf[32];
    cli_format_duration(duration, dbuf, sizeof(dbuf));
    printf("rpc ping-pong over %s%s, payload %lld B each way, %s per run, 2 nodes on 2 loop "
           "threads\n",
           v6 ? "[::1]" : "127.0.0.1", tls ? " with TLS 1.3" : "", (long long)size, dbuf);
    bench_one(client, 1, size, 200 * MTIME_MS, samples, 1); /* warm up: connect, caches */
    rc = 0;
    if (inflight) {
        rc |= bench_one(client, inflight, size, duration, samples, 0);
    } else {
        rc |= bench_one(client, 1, size, duration, samples, 0);
        rc |= bench_one(client, 64, size, duration, samples, 0);
    }
out:
    free(samples);
    rpc_node_stop(client);
    rpc_node_stop(server);
    return rc;
}
