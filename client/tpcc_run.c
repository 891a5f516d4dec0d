/* `meridian tpcc run`: terminals (one connection and thread each) running
 * the 45/43/4/4/4 mix for a duration, with or without the spec's keying and
 * think times (5.2.5), and what they measured: tpmC, throughput and latency
 * per transaction type (common/histogram.h), retries and aborts, live each
 * second and at the end.
 *
 * Response time is measured from the first attempt's BEGIN to the COMMIT that
 * succeeded, retries included: that is what the user waits for (5.5.1). A
 * transaction that fails retryably is rolled back and run again with the
 * same input, up to TPCC_MAX_RETRIES times; then it counts as aborted.
 * SIGINT or SIGTERM ends the measurement early; the report covers the time
 * measured so far. */
#include "client/tpcc_int.h"
#include "common/histogram.h"
#include "common/mtime.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct runner runner;

typedef struct worker {
    runner *R;
    tpcc_terminal t;
    pthread_t th;
    int started;
    /* Guarded by mu: the reporter reads them every second. */
    pthread_mutex_t mu;
    mhist lat[TPCC_NTYPES];
    mhist interval; /* every type, since the last live line */
    uint64_t done[TPCC_NTYPES];
    uint64_t rolled_back, skipped, retries, aborts, errors;
} worker;

struct runner {
    const tpcc_opts *o;
    worker *w;
    int n;
    int64_t start;
    _Atomic int64_t end; /* moved earlier by an interrupt */
    atomic_int stop;
    atomic_int errors_printed;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast at stop: wakes sleeping terminals */
};

/* Set by SIGINT / SIGTERM during a run; the reporter, awake at least once a
 * second, ends the measurement there. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* 5.2.5.2 / 5.2.5.4: keying times and mean think times in seconds. */
static const double keying_s[TPCC_NTYPES] = {18, 3, 2, 2, 2};
static const double think_s[TPCC_NTYPES] = {12, 12, 10, 5, 5};

/* Sleeps until the monotonic deadline or the end of the run. */
static void sleep_until(runner *R, int64_t deadline)
{
    struct timespec ts = {.tv_sec = deadline / MTIME_S, .tv_nsec = deadline % MTIME_S};
    pthread_mutex_lock(&R->mu);
    while (!atomic_load(&R->stop) && !interrupted && mtime_mono_ns() < deadline)
        pthread_cond_timedwait(&R->cv, &R->mu, &ts);
    pthread_mutex_unlock(&R->mu);
}

static void report_error(runner *R, worker *w, const tpcc_input *in, int rc)
{
    if (atomic_fetch_add(&R->errors_printed, 1) < 5)
        fprintf(stderr, "tpcc: %s failed (%s): %s\n", tpcc_txn_names[in->type], merr_name(rc),
                w->t.db.d->errmsg(w->t.db.c));
}

static void *terminal_main(void *arg)
{
    worker *w = arg;
    runner *R = w->R;
    tpcc_deck deck;
    tpcc_deck_init(&deck, &w->t.rng);
    int consecutive_errors = 0;
    while (!atomic_load(&R->stop)) {
        tpcc_input in;
        tpcc_txn_type type = tpcc_deck_draw(&deck, &w->t.rng);
        tpcc_input_draw(&w->t, type, &in);
        if (R->o->wait) sleep_until(R, mtime_mono_ns() + (int64_t)(keying_s[type] * 1e9));
        if (atomic_load(&R->stop)) break;
        int64_t t0 = mtime_mono_ns();
        tpcc_outcome out;
        int rc, tries = 0;
        for (;;) {
            rc = tpcc_txn_run(&w->t, &in, &out);
            if (rc != MERR_RETRY || tries >= TPCC_MAX_RETRIES || atomic_load(&R->stop)) break;
            tries++;
            /* Jittered backoff: 1 ms doubling, at most ~64 ms, so colliding
             * terminals do not collide again in lockstep. */
            int64_t cap = MTIME_MS << (tries < 7 ? tries - 1 : 6);
            sleep_until(R, mtime_mono_ns() + tpcc_rand(&w->t.rng, cap / 2, cap));
        }
        int64_t t1 = mtime_mono_ns();
        if (t1 > atomic_load(&R->end)) break; /* finished after the measurement interval */
        pthread_mutex_lock(&w->mu);
        w->retries += (uint64_t)tries;
        if (rc == 0) {
            w->done[type]++;
            w->rolled_back += (uint64_t)out.rolled_back;
            w->skipped += (uint64_t)out.skipped;
            mhist_record(&w->lat[type], (uint64_t)(t1 - t0));
            mhist_record(&w->interval, (uint64_t)(t1 - t0));
        } else if (rc == MERR_RETRY) {
            w->aborts++;
        } else {
            w->errors++;
        }
        pthread_mutex_unlock(&w->mu);
        if (rc && rc != MERR_RETRY) {
            report_error(R, w, &in, rc);
            /* A dead connection fails every transaction: stop this terminal
             * rather than spin. */
            if (++consecutive_errors >= 10) break;
        } else {
            consecutive_errors = 0;
        }
        if (R->o->wait) {
            double think = -log(tpcc_rand_unit(&w->t.rng)) * think_s[type];
            if (think > 10 * think_s[type]) think = 10 * think_s[type];
            sleep_until(R, mtime_mono_ns() + (int64_t)(think * 1e9));
        }
    }
    return NULL;
}

typedef struct totals {
    mhist lat[TPCC_NTYPES], all, interval;
    uint64_t done[TPCC_NTYPES], rolled_back, skipped, retries, aborts, errors;
} totals;

/* Sums every worker into T; moves each worker's interval histogram out. */
static void collect(runner *R, totals *T)
{
    memset(T, 0, sizeof *T);
    for (int t = 0; t < TPCC_NTYPES; t++) mhist_init(&T->lat[t]);
    mhist_init(&T->all);
    mhist_init(&T->interval);
    for (int i = 0; i < R->n; i++) {
        worker *w = &R->w[i];
        pthread_mutex_lock(&w->mu);
        for (int t = 0; t < TPCC_NTYPES; t++) {
            mhist_merge(&T->lat[t], &w->lat[t]);
            mhist_merge(&T->all, &w->lat[t]);
            T->done[t] += w->done[t];
        }
        mhist_merge(&T->interval, &w->interval);
        mhist_reset(&w->interval);
        T->rolled_back += w->rolled_back;
        T->skipped += w->skipped;
        T->retries += w->retries;
        T->aborts += w->aborts;
        T->errors += w->errors;
        pthread_mutex_unlock(&w->mu);
    }
}

static const char *ms(uint64_t ns, char *buf)
{
    snprintf(buf, 16, "%.1f", (double)ns / 1e6);
    return buf;
}

static void print_final(runner *R, const totals *T, double secs)
{
    const tpcc_opts *o = R->o;
    double tpmc = (double)T->done[TPCC_NEW_ORDER] * 60.0 / secs;
    char a[16], b[16], c[16], d[16];
    printf("\nTPC-C through %s: %d warehouse(s), %d terminal(s), %.1f s measured, %s\n",
           o->drv->name, o->warehouses, R->n, secs,
           o->wait ? "with keying and think times (5.2.5)"
                   : "NO keying/think times: as fast as possible (not a spec-compliant result)");
    printf("tpmC: %.1f", tpmc);
    if (o->wait)
        printf("   efficiency: %.1f%% of %.2f tpmC/warehouse",
               100 * tpmc / (TPCC_TPMC_PER_WH * o->warehouses), TPCC_TPMC_PER_WH);
    printf("\n%-13s %9s %9s %8s %8s %8s %8s   (latency in ms)\n", "transaction", "count", "tx/s",
           "p50", "p90", "p99", "max");
    uint64_t total = 0;
    for (int t = 0; t < TPCC_NTYPES; t++) {
        const mhist *h = &T->lat[t];
        total += T->done[t];
        printf("%-13s %9llu %9.1f %8s %8s %8s %8s\n", tpcc_txn_names[t],
               (unsigned long long)T->done[t], (double)T->done[t] / secs,
               ms(mhist_quantile(h, 0.5), a), ms(mhist_quantile(h, 0.9), b),
               ms(mhist_quantile(h, 0.99), c), ms(mhist_max(h), d));
    }
    printf("%-13s %9llu %9.1f %8s %8s %8s %8s\n", "all", (unsigned long long)total,
           (double)total / secs, ms(mhist_quantile(&T->all, 0.5), a),
           ms(mhist_quantile(&T->all, 0.9), b), ms(mhist_quantile(&T->all, 0.99), c),
           ms(mhist_max(&T->all), d));
    printf("new-order rolled back by design (1%%, counted in tpmC): %llu\n",
           (unsigned long long)T->rolled_back);
    printf("skipped delivery districts (no new order): %llu\n", (unsigned long long)T->skipped);
    printf("retries: %llu   aborts (gave up after %d retries): %llu   errors: %llu\n",
           (unsigned long long)T->retries, TPCC_MAX_RETRIES, (unsigned long long)T->aborts,
           (unsigned long long)T->errors);
}

static int start_workers(runner *R, int W, const tpcc_consts *load)
{
    const tpcc_opts *o = R->o;
    tpcc_rng seeder;
    tpcc_rng_seed(&seeder, o->seed ? o->seed : (uint64_t)mtime_real_ns());
    tpcc_consts run;
    tpcc_consts_run(&seeder, load, &run);
    for (int i = 0; i < R->n; i++) {
        worker *w = &R->w[i];
        w->R = R;
        pthread_mutex_init(&w->mu, NULL);
        for (int t = 0; t < TPCC_NTYPES; t++) mhist_init(&w->lat[t]);
        mhist_init(&w->interval);
        /* 2.8.1.1 / 5.2.2: terminal i serves warehouse (i mod W) + 1, and
         * Stock-Level on district ((i / W) mod 10) + 1. */
        w->t.warehouses = W;
        w->t.w_id = i % W + 1;
        w->t.d_id = (i / W) % TPCC_DISTRICTS + 1;
        w->t.run = run;
        tpcc_rng_seed(&w->t.rng, tpcc_rng_next(&seeder));
        if (tpcc_db_open(o, &w->t.db) || tpcc_terminal_prepare(&w->t)) return MERR_UNAVAILABLE;
    }
    R->start = mtime_mono_ns();
    atomic_store(&R->end, R->start + o->duration);
    for (int i = 0; i < R->n; i++) {
        if (pthread_create(&R->w[i].th, NULL, terminal_main, &R->w[i])) return MERR_NOMEM;
        R->w[i].started = 1;
    }
    return 0;
}

int tpcc_run(const tpcc_opts *o)
{
    runner R = {.o = o};
    totals *T = calloc(1, sizeof *T);
    FILE *csv = NULL;
    double *series = NULL; /* per second: tpmC, p50, p90, p99 (ms), for --svg */
    int rc = 1, W = 0, nsec = 0, handlers = 0;
    tpcc_consts load;
    pthread_mutex_init(&R.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&R.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!T) goto out;
    {
        tpcc_db db;
        if (tpcc_db_open(o, &db)) goto out;
        int bad = tpcc_meta_read(&db, &W, &load);
        tpcc_db_close(&db);
        if (bad) goto out;
    }
    if (o->warehouses > W) {
        fprintf(stderr, "tpcc: %d warehouse(s) asked, only %d loaded\n", o->warehouses, W);
        goto out;
    }
    W = o->warehouses;
    R.n = o->concurrency > 0 ? o->concurrency : (o->wait ? 10 * W : 4);
    if (!(R.w = calloc((size_t)R.n, sizeof *R.w))) goto out;
    if (o->csv && !(csv = fopen(o->csv, "w"))) {
        fprintf(stderr, "tpcc: %s: cannot write\n", o->csv);
        goto out;
    }
    int maxsec = (int)((o->duration + MTIME_S - 1) / MTIME_S);
    if (o->svg && !(series = calloc((size_t)maxsec * 4, sizeof *series))) goto out;
    struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers = 1;
    if (csv) fprintf(csv, "second,tpmc,tps,p50_ms,p90_ms,p99_ms,retries,aborts,errors\n");
    if (start_workers(&R, W, &load)) {
        atomic_store(&R.stop, 1);
        goto join;
    }
    uint64_t prev_no = 0, prev_all = 0;
    for (int sec = 1;; sec++) {
        int64_t at = R.start + sec * MTIME_S;
        if (at > atomic_load(&R.end)) at = atomic_load(&R.end);
        sleep_until(&R, at);
        if (interrupted) { /* end the measurement now */
            int64_t now = mtime_mono_ns();
            if (now < at) at = now;
            atomic_store(&R.end, at);
        }
        collect(&R, T);
        uint64_t all = 0;
        for (int t = 0; t < TPCC_NTYPES; t++) all += T->done[t];
        double span = (double)(at - (R.start + (sec - 1) * MTIME_S)) / 1e9;
        if (span < 1e-3) span = 1e-3;
        double tpmc = (double)(T->done[TPCC_NEW_ORDER] - prev_no) * 60 / span;
        double tps = (double)(all - prev_all) / span;
        char a[16], b[16], c[16];
        if (!o->quiet)
            printf("%4ds  tpmC %9.1f  %8.1f tx/s  p50 %7s ms  p90 %7s ms  p99 %7s ms  retries "
                   "%llu  aborts %llu  errors %llu\n",
                   sec, tpmc, tps, ms(mhist_quantile(&T->interval, 0.5), a),
                   ms(mhist_quantile(&T->interval, 0.9), b),
                   ms(mhist_quantile(&T->interval, 0.99), c), (unsigned long long)T->retries,
                   (unsigned long long)T->aborts, (unsigned long long)T->errors);
        fflush(stdout);
        if (csv)
            fprintf(csv, "%d,%.1f,%.1f,%.3f,%.3f,%.3f,%llu,%llu,%llu\n", sec, tpmc, tps,
                    mhist_quantile(&T->interval, 0.5) / 1e6,
                    mhist_quantile(&T->interval, 0.9) / 1e6,
                    mhist_quantile(&T->interval, 0.99) / 1e6, (unsigned long long)T->retries,
                    (unsigned long long)T->aborts, (unsigned long long)T->errors);
        if (series && nsec < maxsec) {
            series[nsec] = tpmc;
            series[maxsec + nsec] = mhist_quantile(&T->interval, 0.5) / 1e6;
            series[2 * maxsec + nsec] = mhist_quantile(&T->interval, 0.9) / 1e6;
            series[3 * maxsec + nsec] = mhist_quantile(&T->interval, 0.99) / 1e6;
            nsec++;
        }
        prev_no = T->done[TPCC_NEW_ORDER];
        prev_all = all;
        if (at >= atomic_load(&R.end)) break;
    }
    pthread_mutex_lock(&R.mu);
    atomic_store(&R.stop, 1);
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
    rc = 0;
join:
    pthread_mutex_lock(&R.mu);
    atomic_store(&R.stop, 1);
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
    for (int i = 0; i < R.n; i++)
        if (R.w[i].started) pthread_join(R.w[i].th, NULL);
    if (!rc) {
        collect(&R, T);
        print_final(&R, T, (double)(atomic_load(&R.end) - R.start) / 1e9);
        if (T->errors) rc = 1;
        if (series) {
            char title[256];
            snprintf(title, sizeof title, "TPC-C through %s: %d warehouse(s), %d terminal(s)%s",
                     o->drv->name, W, R.n, o->wait ? "" : ", no keying/think times");
            if (tpcc_svg_write(o->svg, title, nsec, series, series + maxsec, series + 2 * maxsec,
                               series + 3 * maxsec)) {
                fprintf(stderr, "tpcc: %s: cannot write\n", o->svg);
                rc = 1;
            }
        }
    }
    for (int i = 0; i < R.n; i++) {
        tpcc_terminal_finish(&R.w[i].t);
        pthread_mutex_destroy(&R.w[i].mu);
    }
out:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (csv) fclose(csv);
    free(series);
    free(R.w);
    free(T);
    pthread_cond_destroy(&R.cv);
    pthread_mutex_destroy(&R.mu);
    return rc;
}
