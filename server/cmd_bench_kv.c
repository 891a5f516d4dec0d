/* `meridian bench kv`: durable puts against a running cluster, C requests in
 * flight from one client endpoint, for D. Prints ops/s and the latency
 * distribution, once a second while it runs and in full at the end. The
 * leaseholder is found first (NOT_LEADER hints), so every put measures one
 * replicated, fsynced, commit-waited write, not a redirect. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/histogram.h"
#include "common/log.h"
#include "common/svgplot.h"
#include <math.h>
#include "common/mtime.h"
#include "proto/kv.pb-c.h"
#include "rpc/rpc.h"
#include "proto/node.pb-c.h"
#include "server/cli_rpc.h"
#include "server/commands.h"

typedef struct bench {
    rpc_node *rpc;
    int64_t concurrency, value_size;
    int64_t end_ns;
    uint8_t *value;
    uint64_t next_key;
    mhist hist; /* loop thread */
    mhist sec;  /* this second's latencies, for the plot */
    uint64_t ok, errors, redirects;
    int inflight;
    char leader[128];
    uint64_t leader_handle; /* a new rpc handle per address: a handle keeps its connection */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} bench;

typedef struct op {
    bench *b;
    int64_t start_ns;
} op;

static void issue(bench *b);

static void finish_if_idle(bench *b)
{
    if (b->inflight) return;
    pthread_mutex_lock(&b->mu);
    b->done = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void on_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    op *o = arg;
    bench *b = o->b;
    (void)msg;
    b->inflight--;
    int64_t now = mtime_mono_ns();
    int good = 0;
    if (!code) {
        Meridian__Kv__WriteResponse *r = meridian__kv__write_response__unpack(NULL, len, p);
        if (r && !r->error) good = 1;
        if (r && r->error && r->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER &&
            r->error->leader_address && r->error->leader_address[0]) {
            /* Leadership moved during the run: follow it. */
            rpc_node_add_gateway(b->rpc, ++b->leader_handle, r->error->leader_address);
            b->redirects++;
        }
        if (r) meridian__kv__write_response__free_unpacked(r, NULL);
    }
    if (good) {
        b->ok++;
        mhist_record(&b->hist, (uint64_t)(now - o->start_ns));
        mhist_record(&b->sec, (uint64_t)(now - o->start_ns));
    } else {
        b->errors++;
    }
    free(o);
    if (now < b->end_ns)
        issue(b);
    else
        finish_if_idle(b);
}

static void issue(bench *b)
{
    op *o = malloc(sizeof(*o));
    if (!o) return;
    o->b = b;
    char key[32];
    int kl = snprintf(key, sizeof(key), "bench/%012" PRIu64, b->next_key++);
    Meridian__Kv__Mutation m = MERIDIAN__KV__MUTATION__INIT, *mp = &m;
    m.key.data = (uint8_t *)key;
    m.key.len = (size_t)kl;
    m.value.data = b->value;
    m.value.len = (size_t)b->value_size;
    Meridian__Kv__WriteRequest q = MERIDIAN__KV__WRITE_REQUEST__INIT;
    q.mutations = &mp;
    q.n_mutations = 1;
    uint8_t buf[512];
    size_t need = meridian__kv__write_request__get_packed_size(&q);
    uint8_t *pb = need <= sizeof(buf) ? buf : malloc(need);
    if (!pb) {
        free(o);
        return;
    }
    meridian__kv__write_request__pack(&q, pb);
    o->start_ns = mtime_mono_ns();
    int64_t deadline = mtime_real_ns() / 1000 + 10 * 1000000;
    if (rpc_node_call(b->rpc, b->leader_handle, "kv.Write", pb, need, deadline, on_reply, o,
                      NULL) == 0)
        b->inflight++;
    else
        free(o), b->errors++;
    if (pb != buf) free(pb);
    if (!b->inflight) finish_if_idle(b);
}

static void start_all(void *arg)
{
    bench *b = arg;
    for (int64_t i = 0; i < b->concurrency; i++) issue(b);
}

typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, code;
    char hint[128];
    int is_leader;
} probe;

static void on_probe(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    probe *pr = arg;
    (void)msg;
    pthread_mutex_lock(&pr->mu);
    pr->code = code;
    if (!code) {
        Meridian__Kv__GetResponse *r = meridian__kv__get_response__unpack(NULL, len, p);
        if (r && !r->error)
            pr->is_leader = 1;
        else if (r && r->error->leader_address)
            snprintf(pr->hint, sizeof(pr->hint), "%s", r->error->leader_address);
        if (r) meridian__kv__get_response__free_unpacked(r, NULL);
    }
    pr->done = 1;
    pthread_cond_signal(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
}

typedef struct probe_call {
    bench *b;
    probe *pr;
} probe_call;

static void send_probe(void *arg)
{
    probe_call *pc = arg;
    static uint8_t key[] = "bench/probe";
    Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
    q.key.data = key;
    q.key.len = sizeof(key) - 1;
    uint8_t buf[64];
    size_t n = meridian__kv__get_request__pack(&q, buf);
    int64_t deadline = mtime_real_ns() / 1000 + 5 * 1000000;
    if (rpc_node_call(pc->b->rpc, pc->b->leader_handle, "kv.Get", buf, n, deadline, on_probe,
                      pc->pr, NULL))
        on_probe(pc->pr, MERR_UNAVAILABLE, NULL, NULL, 0);
}

typedef struct gw {
    bench *b;
    const char *addr;
} gw;

static void set_gateway(void *arg)
{
    gw *g = arg;
    rpc_node_add_gateway(g->b->rpc, ++g->b->leader_handle, g->addr);
}

/* The i-th (mod count) address of a "h:p,h:p" list, into out. */
static void nth_host(const char *hosts, int i, char *out, size_t cap)
{
    int n = 1;
    for (const char *p = hosts; *p; p++) n += *p == ',';
    i %= n;
    const char *p = hosts;
    while (i-- > 0) p = strchr(p, ',') + 1;
    size_t l = strcspn(p, ",");
    snprintf(out, cap, "%.*s", (int)l, p);
}

/* Points the LEADER handle at the leaseholder, following hints; without a
 * hint, the next address of hosts. */
static int find_leader(bench *b, const char *hosts)
{
    char host[sizeof(b->leader)];
    nth_host(hosts, 0, host, sizeof(host));
    snprintf(b->leader, sizeof(b->leader), "%s", host);
    for (int attempt = 0; attempt < 50; attempt++) {
        gw g = {b, b->leader};
        rpc_node_run_sync(b->rpc, set_gateway, &g);
        probe pr = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        probe_call pc = {b, &pr};
        rpc_node_run_sync(b->rpc, send_probe, &pc);
        pthread_mutex_lock(&pr.mu);
        while (!pr.done) pthread_cond_wait(&pr.cv, &pr.mu);
        pthread_mutex_unlock(&pr.mu);
        if (pr.is_leader) return 0;
        if (pr.hint[0]) {
            snprintf(b->leader, sizeof(b->leader), "%s", pr.hint);
        } else {
            nth_host(hosts, attempt + 1, host, sizeof(host));
            snprintf(b->leader, sizeof(b->leader), "%s", host);
        }
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    return MERR_UNAVAILABLE;
}

typedef struct snap {
    bench *b;
    uint64_t ok, errors;
    mhist *copy;
    mhist *sec; /* takes and resets the per-second histogram */
} snap;

static void take_snap(void *arg)
{
    snap *s = arg;
    s->ok = s->b->ok;
    s->errors = s->b->errors;
    if (s->copy) *s->copy = s->b->hist;
    if (s->sec) {
        *s->sec = s->b->sec;
        mhist_reset(&s->b->sec);
    }
}

#define PLOT_MAX 3600

static void write_plot(const char *path, const double *t, const double *ops, const double *p50,
                       const double *p99, size_t n, int64_t conc)
{
    char title[128];
    snprintf(title, sizeof(title), "meridian bench kv: durable puts, %" PRId64 " in flight", conc);
    svgplot p = {.title = title,
                 .x_label = "seconds",
                 .y_label = "puts/s",
                 .y2_label = "latency (ms)",
                 .x = t,
                 .n = n};
    p.series[0] = (svgplot_series){"puts/s", ops, 0};
    p.series[1] = (svgplot_series){"p50", p50, 1};
    p.series[2] = (svgplot_series){"p99", p99, 1};
    p.nseries = 3;
    merr e = {0};
    if (svgplot_write(&p, path, &e))
        fprintf(stderr, "bench kv: plot: %s\n", e.msg);
    else
        printf("plot written to %s\n", path);
}

static void print_line(const char *label, double secs, uint64_t ops, uint64_t errs, const mhist *h)
{
    char p50[32], p99[32], p999[32], mean[32];
    mhist_fmt_ns(mhist_quantile(h, 0.50), p50, sizeof(p50));
    mhist_fmt_ns(mhist_quantile(h, 0.99), p99, sizeof(p99));
    mhist_fmt_ns(mhist_quantile(h, 0.999), p999, sizeof(p999));
    mhist_fmt_ns((uint64_t)mhist_mean(h), mean, sizeof(mean));
    printf("%-8s %6.1fs %10.0f ops/s  ok=%-9" PRIu64 " err=%-6" PRIu64
           " mean=%-9s p50=%-9s p99=%-9s p999=%s\n",
           label, secs, secs > 0 ? (double)ops / secs : 0, ops, errs, mean, p50, p99, p999);
    fflush(stdout);
}

/* The leaseholder's clock bound: every put waits out ~2ε of commit-wait, so
 * a latency figure means little without the ε it was measured with. */
static void print_clock(const char *addr)
{
    merr e = {0};
    Meridian__Node__StatusResponse *st = (Meridian__Node__StatusResponse *)cli_rpc_ask(
        addr, NULL, "node.Status", &meridian__node__status_response__descriptor, 3 * MTIME_S, &e);
    if (!st) {
        printf("clock: unknown (%s)\n", e.msg);
        return;
    }
    char eps[32];
    mhist_fmt_ns(st->clock_epsilon_ns > 0 ? (uint64_t)st->clock_epsilon_ns : 0, eps, sizeof(eps));
    printf("clock: source %s, epsilon %s now (commit-wait ~2x that)\n",
           st->clock_source && st->clock_source[0] ? st->clock_source : "?",
           st->clock_epsilon_ns < 0 ? "untrusted" : eps);
    protobuf_c_message_free_unpacked(&st->base, NULL);
}

int cmd_bench_kv(int argc, char **argv)
{
    const char *host = NULL;
    int64_t concurrency = 64, duration = 10 * MTIME_S, value_size = 100;
    int insecure = 0;
    const char *svg = NULL;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]", "nodes of the cluster (required)"},
        {"svg", CLI_STR, &svg, "FILE", "also draw throughput and latency over time as SVG"},
        {"concurrency", CLI_INT, &concurrency, NULL, "puts in flight (default 64)"},
        {"duration", CLI_DURATION, &duration, NULL, "how long (default 10s)"},
        {"value-size", CLI_SIZE, &value_size, NULL, "bytes per value (default 100)"},
        {"insecure", CLI_BOOL, &insecure, NULL, "the cluster runs --insecure (required for now)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc =
        cli_parse(argv[0], "--host HOST:PORT --insecure [flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (!host || npos || concurrency < 1 || concurrency > 4096 || value_size > (1 << 20) ||
        !insecure) {
        fprintf(stderr,
                "%s: need --host and --insecure; 1 <= --concurrency <= 4096; "
                "--value-size <= 1MiB\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    if (mlog_min_level < MLOG_WARN) mlog_set_level(MLOG_WARN); /* the table is the output */
    bench b = {.concurrency = concurrency, .value_size = value_size};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    mhist_init(&b.hist);
    mhist_init(&b.sec);
    static double pt[PLOT_MAX], pops[PLOT_MAX], p50s[PLOT_MAX], p99s[PLOT_MAX];
    size_t np = 0;
    b.value = malloc((size_t)value_size + 1);
    memset(b.value, 'v', (size_t)value_size);
    b.next_key = (uint64_t)mtime_real_ns(); /* fresh keys every run */
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    merr e = {0};
    if (rpc_node_start(&cfg, &b.rpc, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    if (find_leader(&b, host)) {
        fprintf(stderr, "%s: no leaseholder found through %s\n", argv[0], host);
        rpc_node_stop(b.rpc);
        return 1;
    }
    printf("bench kv: durable puts to %s (leaseholder), concurrency %" PRId64 ", value %" PRId64
           " B, %.0fs\n",
           b.leader, concurrency, value_size, (double)duration / 1e9);
    print_clock(b.leader);
    int64_t t0 = mtime_mono_ns();
    b.end_ns = t0 + duration;
    rpc_node_run_sync(b.rpc, start_all, &b);
    uint64_t last_ok = 0;
    int64_t last_t = t0;
    for (;;) {
        pthread_mutex_lock(&b.mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        while (!b.done && pthread_cond_timedwait(&b.cv, &b.mu, &until) == 0) {
        }
        int fin = b.done;
        pthread_mutex_unlock(&b.mu);
        if (fin) break;
        mhist sec;
        snap s = {&b, 0, 0, NULL, &sec};
        rpc_node_run_sync(b.rpc, take_snap, &s);
        int64_t now = mtime_mono_ns();
        if (np < PLOT_MAX) {
            pt[np] = (double)(now - t0) / 1e9;
            pops[np] = (double)(s.ok - last_ok) / ((double)(now - last_t) / 1e9);
            p50s[np] = mhist_count(&sec) ? (double)mhist_quantile(&sec, 0.5) / 1e6 : NAN;
            p99s[np] = mhist_count(&sec) ? (double)mhist_quantile(&sec, 0.99) / 1e6 : NAN;
            np++;
        }
        printf("%-8s %6.1fs %10.0f ops/s (this second)\n", "progress", (double)(now - t0) / 1e9,
               (double)(s.ok - last_ok) / ((double)(now - last_t) / 1e9));
        fflush(stdout);
        last_ok = s.ok;
        last_t = now;
    }
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    mhist h;
    snap s = {&b, 0, 0, &h, NULL};
    rpc_node_run_sync(b.rpc, take_snap, &s);
    print_line("total", secs, s.ok, s.errors, &h);
    if (svg && np > 1) write_plot(svg, pt, pops, p50s, p99s, np, concurrency);
    rpc_node_stop(b.rpc);
    free(b.value);
    return s.ok > 0 ? 0 : 1;
}
