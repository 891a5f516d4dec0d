/* `meridian bench sql`: SQL statements against a running cluster through
 * libmeridian, as an application runs them: C connections, each on its own
 * thread with prepared statements, for D. It makes and fills its own table
 * (bench_sql), prints ops/s once a second, and at the end ops/s, the latency
 * distribution (p50/p90/p99/p999), errors and retries; --svg draws
 * throughput and latency over time.
 *
 * Workloads: point-select (by primary key), insert (new rows), update (one
 * row by key), mixed (80% point-select, 10% update, 10% insert), scan (100
 * consecutive rows). A write that fails retryably (a lost conflict) is
 * retried, up to 10 times, and counted; its latency includes the retries.
 *
 * compare runs point-select, update and scan on the cluster and then the
 * same statements, with the same number of connections, on a local SQLite
 * file (WAL, synchronous=FULL: every commit durable, as a Meridian commit
 * is), each phase for the full duration, and prints the ratios
 * Meridian/SQLite of throughput and latency: what distribution costs. */
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/histogram.h"
#include "common/mtime.h"
#include "common/svgplot.h"
#include "include/meridian.h"
#include "server/commands.h"

#define PLOT_MAX    3600
#define MAX_RETRIES 10
#define SCAN_ROWS   100

enum { W_POINT, W_INSERT, W_UPDATE, W_MIXED, W_SCAN, W_COMPARE, W_COUNT };
static const char *const workloads[] = {"point-select", "insert", "update",
                                        "mixed",        "scan",   "compare"};

/* The statements, by op; SQLite runs the very same text. */
static const char *const stmt_sql[4] = {
    "SELECT v FROM bench_sql WHERE id = ?1",
    "INSERT INTO bench_sql(id, k, v) VALUES (?1, ?1 % 1000, 'inserted')",
    "UPDATE bench_sql SET v = 'updated ' || ?1, k = k + 1 WHERE id = ?1",
    "SELECT count(*), max(v) FROM bench_sql WHERE id BETWEEN ?1 AND ?1 + 99"};
#define CREATE_SQL "CREATE TABLE IF NOT EXISTS bench_sql(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)"

typedef struct bench {
    const char *host;
    const char *lite_path; /* non-NULL: run on this SQLite file instead */
    int workload;
    int64_t rows, concurrency, end_ns;
    int64_t next_id; /* inserts: ids from here on, one stride per thread */
    pthread_mutex_t mu;
    mhist hist, sec; /* mu */
    uint64_t ok, errors, retries;
    char first_error[256];
} bench;

typedef struct worker {
    bench *b;
    int idx;
    pthread_t th;
    uint64_t rng;
} worker;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17; /* xorshift64 */
    return *s;
}

static meridian *connect_to(const char *host, char *err, size_t cap)
{
    char ci[512];
    snprintf(ci, sizeof(ci), "hosts=%s connect_timeout=10s application_name=bench", host);
    meridian *db = NULL;
    if (meridian_open(ci, &db)) {
        snprintf(err, cap, "%s", meridian_errmsg(db));
        meridian_close(db);
        return NULL;
    }
    return db;
}

/* Runs one prepared statement to its end. */
static int run(meridian_stmt *st)
{
    int rc;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW) {
    }
    meridian_reset(st);
    return rc == MERIDIAN_DONE ? 0 : rc;
}

/* One connection: to the cluster, or to the local SQLite file. */
typedef struct conn {
    meridian *db;
    sqlite3 *lite;
    meridian_stmt *st[4];
    sqlite3_stmt *lst[4];
} conn;

static void conn_close(conn *c)
{
    for (int i = 0; i < 4; i++) {
        meridian_finalize(c->st[i]);
        sqlite3_finalize(c->lst[i]);
    }
    meridian_close(c->db);
    sqlite3_close(c->lite);
    memset(c, 0, sizeof(*c));
}

static int lite_open(const char *path, sqlite3 **out, char *err, size_t cap)
{
    /* The busy timeout first: a worker opening while another one writes
     * waits for the lock in its PRAGMAs too (it failed at once before). */
    if (sqlite3_open(path, out) != SQLITE_OK || sqlite3_busy_timeout(*out, 10000) != SQLITE_OK ||
        sqlite3_exec(*out, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, NULL) !=
            SQLITE_OK) {
        snprintf(err, cap, "%s: %s", path, sqlite3_errmsg(*out));
        return -1;
    }
    return 0;
}

static int conn_open(const bench *b, conn *c, char *err, size_t cap)
{
    memset(c, 0, sizeof(*c));
    if (b->lite_path) {
        if (lite_open(b->lite_path, &c->lite, err, cap)) goto fail;
        for (int i = 0; i < 4; i++)
            if (sqlite3_prepare_v2(c->lite, stmt_sql[i], -1, &c->lst[i], NULL) != SQLITE_OK) {
                snprintf(err, cap, "%s", sqlite3_errmsg(c->lite));
                goto fail;
            }
        return 0;
    }
    if (!(c->db = connect_to(b->host, err, cap))) goto fail;
    for (int i = 0; i < 4; i++)
        if (meridian_prepare(c->db, stmt_sql[i], -1, &c->st[i], NULL)) {
            snprintf(err, cap, "%s", meridian_errmsg(c->db));
            goto fail;
        }
    return 0;
fail:
    conn_close(c);
    return -1;
}

/* Runs statement op with ?1 = id to its end: 0, or an error with
 * *retryable set when running it again may work. */
static int conn_run(conn *c, int op, int64_t id, int *retryable, char *err, size_t cap)
{
    if (c->lite) {
        sqlite3_stmt *s = c->lst[op];
        sqlite3_bind_int64(s, 1, id);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        }
        sqlite3_reset(s);
        if (rc == SQLITE_DONE) return 0;
        *retryable = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
        snprintf(err, cap, "%s", sqlite3_errmsg(c->lite));
        return rc;
    }
    meridian_bind_int64(c->st[op], 1, id);
    int rc = run(c->st[op]);
    if (rc) {
        *retryable = meridian_error_retryable(c->db);
        snprintf(err, cap, "%s", meridian_errmsg(c->db));
    }
    return rc;
}

static void record(bench *b, int64_t ns, int rc, int retries, const char *err)
{
    pthread_mutex_lock(&b->mu);
    b->retries += (uint64_t)retries;
    if (rc == 0) {
        b->ok++;
        mhist_record(&b->hist, (uint64_t)ns);
        mhist_record(&b->sec, (uint64_t)ns);
    } else {
        b->errors++;
        if (!b->first_error[0]) snprintf(b->first_error, sizeof(b->first_error), "%s", err);
    }
    pthread_mutex_unlock(&b->mu);
}

static void *work(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    char err[256] = "";
    conn c;
    if (conn_open(b, &c, err, sizeof(err))) {
        record(b, 0, 1, 0, err);
        return NULL;
    }
    int64_t seq = 0;
    while (mtime_mono_ns() < b->end_ns) {
        int op = b->workload;
        if (op == W_MIXED) {
            uint64_t r = rnd(&w->rng) % 10;
            op = r < 8 ? W_POINT : r < 9 ? W_UPDATE : W_INSERT;
        }
        int64_t id;
        if (op == W_INSERT)
            id = b->next_id + (seq++) * b->concurrency + w->idx;
        else if (op == W_SCAN)
            id = 1 + (int64_t)(rnd(&w->rng) %
                               (uint64_t)(b->rows > SCAN_ROWS ? b->rows - SCAN_ROWS : 1));
        else
            id = 1 + (int64_t)(rnd(&w->rng) % (uint64_t)b->rows);
        int64_t t0 = mtime_mono_ns();
        int rc, tries = 0;
        for (;;) {
            int retryable = 0;
            rc = conn_run(&c, op == W_SCAN ? 3 : op, id, &retryable, err, sizeof(err));
            if (rc == 0 || !retryable || tries == MAX_RETRIES) break;
            tries++;
        }
        record(b, mtime_mono_ns() - t0, rc, tries, err);
    }
    conn_close(&c);
    return NULL;
}

static int64_t scalar(meridian *db, const char *sql)
{
    meridian_stmt *st = NULL;
    int64_t v = -1;
    if (meridian_prepare(db, sql, -1, &st, NULL) == MERIDIAN_OK && st &&
        meridian_step(st) == MERIDIAN_ROW)
        v = meridian_column_int64(st, 0);
    meridian_finalize(st);
    return v;
}

/* The statement filling ids lo..hi (OR IGNORE: rows an earlier run left
 * stay as they are). */
static void fill_sql(char *sql, size_t cap, int64_t lo, int64_t hi)
{
    snprintf(sql, cap,
             "INSERT OR IGNORE INTO bench_sql SELECT x, x %% 1000, 'row ' || x FROM (WITH "
             "RECURSIVE c(x) AS (SELECT %" PRId64 " UNION ALL SELECT x + 1 FROM c WHERE x < "
             "%" PRId64 ") SELECT x FROM c)",
             lo, hi);
}

/* The same table and rows in the local SQLite file, in one transaction. */
static int setup_lite(const bench *b, const char *cmd)
{
    char err[512], sql[384];
    sqlite3 *db = NULL;
    int rc = lite_open(b->lite_path, &db, err, sizeof(err));
    if (!rc) rc = sqlite3_exec(db, CREATE_SQL "; BEGIN", NULL, NULL, NULL);
    if (!rc) {
        fill_sql(sql, sizeof(sql), 1, b->rows);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (!rc) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc && db) snprintf(err, sizeof(err), "%s: %s", b->lite_path, sqlite3_errmsg(db));
    if (rc) fprintf(stderr, "%s: setting up SQLite: %s\n", cmd, err);
    sqlite3_close(db);
    return rc ? 1 : 0;
}

/* Makes bench_sql with ids 1..rows (adding what is missing) and sets the
 * first id inserts use. */
static int setup(bench *b, const char *cmd)
{
    char err[256];
    meridian *db = connect_to(b->host, err, sizeof(err));
    if (!db) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 1;
    }
    char *msg = NULL;
    int rc = meridian_exec(db, CREATE_SQL, NULL, NULL, &msg);
    for (int64_t lo = 1; !rc && lo <= b->rows; lo += 1000) {
        char sql[384];
        fill_sql(sql, sizeof(sql), lo, lo + 999 < b->rows ? lo + 999 : b->rows);
        meridian_free(msg);
        msg = NULL;
        rc = meridian_exec(db, sql, NULL, NULL, &msg);
    }
    if (rc) {
        fprintf(stderr, "%s: setting up bench_sql: %s\n", cmd, msg ? msg : meridian_errstr(rc));
        meridian_free(msg);
        meridian_close(db);
        return 1;
    }
    int64_t max = scalar(db, "SELECT max(id) FROM bench_sql");
    b->next_id = (max > b->rows ? max : b->rows) + 1;
    meridian_close(db);
    return 0;
}

static void write_plot(const char *path, const bench *b, const double *t, const double *ops,
                       const double *p50, const double *p99, size_t n)
{
    char title[160];
    snprintf(title, sizeof(title), "meridian bench sql: %s, %" PRId64 " connections",
             workloads[b->workload], b->concurrency);
    svgplot p = {.title = title,
                 .x_label = "seconds",
                 .y_label = "statements/s",
                 .y2_label = "latency (ms)",
                 .x = t,
                 .n = n};
    p.series[0] = (svgplot_series){"statements/s", ops, 0};
    p.series[1] = (svgplot_series){"p50", p50, 1};
    p.series[2] = (svgplot_series){"p99", p99, 1};
    p.nseries = 3;
    merr e = {0};
    if (svgplot_write(&p, path, &e))
        fprintf(stderr, "bench sql: plot: %s\n", e.msg);
    else
        printf("plot written to %s\n", path);
}

/* What one phase measured. */
typedef struct phase_result {
    double rate; /* statements/s */
    uint64_t ok, errors, p50, p99;
} phase_result;

/* Runs b->workload with b->concurrency threads for duration, printing
 * progress once a second and a total line (prefixed with label when
 * given); svg (may be NULL) gets the plot. */
static int run_phase(bench *b, int64_t duration, const char *label, const char *svg,
                     phase_result *res)
{
    static double pt[PLOT_MAX], pops[PLOT_MAX], p50s[PLOT_MAX], p99s[PLOT_MAX];
    size_t np = 0;
    b->ok = b->errors = b->retries = 0;
    b->first_error[0] = 0;
    mhist_reset(&b->hist);
    mhist_reset(&b->sec);
    worker *ws = calloc((size_t)b->concurrency, sizeof(*ws));
    if (!ws) return 1;
    int64_t t0 = mtime_mono_ns();
    b->end_ns = t0 + duration;
    int64_t started = 0;
    for (; started < b->concurrency; started++) {
        ws[started] = (worker){.b = b, .idx = (int)started};
        ws[started].rng = (uint64_t)mtime_real_ns() ^ ((uint64_t)started * 0x9e3779b97f4a7c15ULL);
        if (!ws[started].rng) ws[started].rng = 1;
        if (pthread_create(&ws[started].th, NULL, work, &ws[started])) break;
    }
    uint64_t last_ok = 0;
    int64_t last_t = t0;
    while (mtime_mono_ns() < b->end_ns) {
        int64_t next = last_t + MTIME_S, now = mtime_mono_ns();
        if (next > b->end_ns) next = b->end_ns;
        if (next > now) {
            struct timespec ts = {(next - now) / MTIME_S, (long)((next - now) % MTIME_S)};
            nanosleep(&ts, NULL);
        }
        now = mtime_mono_ns();
        pthread_mutex_lock(&b->mu);
        uint64_t ok = b->ok, errs = b->errors;
        mhist sec = b->sec;
        mhist_reset(&b->sec);
        pthread_mutex_unlock(&b->mu);
        double rate = (double)(ok - last_ok) / ((double)(now - last_t) / 1e9);
        if (np < PLOT_MAX) {
            pt[np] = (double)(now - t0) / 1e9;
            pops[np] = rate;
            p50s[np] = mhist_count(&sec) ? (double)mhist_quantile(&sec, 0.5) / 1e6 : NAN;
            p99s[np] = mhist_count(&sec) ? (double)mhist_quantile(&sec, 0.99) / 1e6 : NAN;
            np++;
        }
        char p50[32];
        mhist_fmt_ns(mhist_quantile(&sec, 0.5), p50, sizeof(p50));
        printf("progress %6.1fs %10.0f stmts/s (this second)  p50=%-9s errors=%" PRIu64 "\n",
               (double)(now - t0) / 1e9, rate, p50, errs);
        fflush(stdout);
        last_ok = ok;
        last_t = now;
    }
    for (int64_t i = 0; i < started; i++) pthread_join(ws[i].th, NULL);
    free(ws);
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    char q[4][32];
    const double qs[4] = {0.5, 0.9, 0.99, 0.999};
    for (int i = 0; i < 4; i++) mhist_fmt_ns(mhist_quantile(&b->hist, qs[i]), q[i], sizeof(q[i]));
    *res = (phase_result){.rate = secs > 0 ? (double)b->ok / secs : 0,
                          .ok = b->ok,
                          .errors = b->errors,
                          .p50 = mhist_quantile(&b->hist, 0.5),
                          .p99 = mhist_quantile(&b->hist, 0.99)};
    printf("%s%stotal    %6.1fs %10.0f stmts/s  ok=%" PRIu64 " errors=%" PRIu64 " retries=%" PRIu64
           "  p50=%s p90=%s p99=%s p999=%s\n",
           label ? label : "", label ? " " : "", secs, res->rate, b->ok, b->errors, b->retries,
           q[0], q[1], q[2], q[3]);
    if (b->first_error[0]) printf("first error: %s\n", b->first_error);
    if (svg && np > 1) write_plot(svg, b, pt, pops, p50s, p99s, np);
    fflush(stdout);
    return 0;
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

/* compare: each of point-select, update and scan on the cluster, then on
 * SQLite; a line per phase and the ratios. */
static int run_compare(bench *b, int64_t duration, const char *lite, const char *cmd)
{
    static const int ops[3] = {W_POINT, W_UPDATE, W_SCAN};
    char tmpl[] = "/tmp/meridian-bench-sqlite-XXXXXX";
    char path[sizeof(tmpl) + 16];
    int own = !lite;
    if (own) {
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "%s: mkdtemp: %s\n", cmd, strerror(errno));
            return 1;
        }
        snprintf(path, sizeof(path), "%s/bench.db", tmpl);
        lite = path;
    }
    b->lite_path = lite;
    int rc = setup_lite(b, cmd);
    phase_result r[3][2];
    for (int i = 0; !rc && i < 3; i++)
        for (int side = 0; side < 2; side++) {
            char label[64];
            snprintf(label, sizeof(label), "phase %s %s", workloads[ops[i]],
                     side ? "sqlite" : "meridian");
            b->workload = ops[i];
            b->lite_path = side ? lite : NULL;
            run_phase(b, duration, label, NULL, &r[i][side]);
        }
    b->lite_path = NULL;
    for (int i = 0; !rc && i < 3; i++)
        printf("ratio %s meridian/sqlite: throughput=%.4g p50=%.4g p99=%.4g\n", workloads[ops[i]],
               ratio(r[i][0].rate, r[i][1].rate), ratio((double)r[i][0].p50, (double)r[i][1].p50),
               ratio((double)r[i][0].p99, (double)r[i][1].p99));
    if (own) {
        /* The database and its WAL files. */
        const char *sfx[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            char f[sizeof(path) + 8];
            snprintf(f, sizeof(f), "%s%s", path, sfx[i]);
            unlink(f);
        }
        rmdir(tmpl);
    }
    for (int i = 0; !rc && i < 3; i++)
        if (!r[i][0].ok || !r[i][1].ok) rc = 1;
    return rc;
}

int cmd_bench_sql(int argc, char **argv)
{
    const char *host = NULL, *workload = "point-select", *svg = NULL, *lite = NULL;
    int64_t concurrency = 8, duration = 10 * MTIME_S, rows = 1000;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]", "gateway nodes (required)"},
        {"workload", CLI_STR, &workload, "NAME",
         "point-select (default), insert, update, mixed, scan or compare"},
        {"concurrency", CLI_INT, &concurrency, NULL, "connections, one thread each (default 8)"},
        {"duration", CLI_DURATION, &duration, NULL,
         "how long (default 10s; compare: for each of its six phases)"},
        {"rows", CLI_INT, &rows, NULL, "rows bench_sql starts with (default 1000)"},
        {"svg", CLI_STR, &svg, "FILE", "also draw throughput and latency over time as SVG"},
        {"sqlite", CLI_STR, &lite, "FILE",
         "compare: the SQLite file to use (default: a temporary one, removed after)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT [flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    int wl = 0;
    while (wl < W_COUNT && strcmp(workload, workloads[wl])) wl++;
    if (!host || npos || wl == W_COUNT || concurrency < 1 || concurrency > 1024 ||
        rows < SCAN_ROWS || rows > 100000000 || duration <= 0) {
        fprintf(stderr,
                "%s: need --host; --workload point-select|insert|update|mixed|scan|compare; "
                "1 <= --concurrency <= 1024; %d <= --rows <= 100000000; --duration > 0\n",
                argv[0], SCAN_ROWS);
        return CLI_EXIT_USAGE;
    }
    bench b = {.host = host, .workload = wl, .rows = rows, .concurrency = concurrency};
    pthread_mutex_init(&b.mu, NULL);
    mhist_init(&b.hist);
    mhist_init(&b.sec);
    if (setup(&b, argv[0])) return 1;
    printf("bench sql: %s through %s, %" PRId64 " connections, %" PRId64 " rows, %.0fs\n",
           workloads[wl], host, concurrency, rows, (double)duration / 1e9);
    fflush(stdout);
    phase_result res;
    if (wl == W_COMPARE)
        rc = run_compare(&b, duration, lite, argv[0]);
    else
        rc = run_phase(&b, duration, NULL, svg, &res) || res.ok == 0;
    pthread_mutex_destroy(&b.mu);
    return rc ? 1 : 0;
}
