/* `meridian clock`: asks the time service what time it is — the interval
 * [earliest, latest], its half width ε, the source and its status — once, or
 * once a second with --watch. Operators use it to check a node's clock before
 * starting it; tests use it against the deploy/chrony pair. */
#include "common/cli.h"
#include "common/log.h"
#include "common/mtime.h"
#include "server/commands.h"
#include "timesvc/hlc.h"
#include "timesvc/tt_uv.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct clock_cmd {
    uv_loop_t loop;
    tt_clock clock;
    tt_chrony chrony;
    tt_kernel kernel;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    const char *source;
    int json, watch;
    int64_t count, printed;
    int64_t interval_ns;
    int last_ok;
    int chrony_started, kernel_started;
} clock_cmd;

static void fmt_time(int64_t ns, char *buf, size_t cap)
{
    time_t s = (time_t)(ns / 1000000000);
    int64_t frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        s--;
    }
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64 "Z", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_reading(clock_cmd *cc)
{
    tt_interval iv;
    merr e = {0};
    int rc = tt_now(&cc->clock, &iv, &e);
    cc->last_ok = rc == 0;
    char now[48], earliest[48], latest[48];
    fmt_time(iv.now_ns, now, sizeof(now));
    fmt_time(iv.earliest_ns, earliest, sizeof(earliest));
    fmt_time(iv.latest_ns, latest, sizeof(latest));
    const tt_source_state *src = &cc->clock.src;
    const tt_sample *s = &src->last_good;
    if (cc->json) {
        printf("{\"time\":\"%s\",\"earliest\":\"%s\",\"latest\":\"%s\",\"now_ns\":%" PRId64
               ",\"earliest_ns\":%" PRId64 ",\"latest_ns\":%" PRId64 ",\"epsilon_ns\":%" PRId64
               ",\"epsilon_ms\":%.6f,\"status\":\"%s\",\"source_status\":\"%s\","
               "\"source\":\"%s\",\"age_ns\":%" PRId64 ",\"max_uncertainty_ns\":%" PRId64,
               now, earliest, latest, iv.now_ns, iv.earliest_ns, iv.latest_ns, iv.epsilon_ns,
               (double)iv.epsilon_ns / 1e6, tt_status_name(iv.status),
               tt_status_name(iv.source_status), cc->source, iv.age_ns,
               cc->clock.cfg.max_uncertainty_ns);
        if (src->have_good) {
            printf(",\"offset_ns\":%" PRId64 ",\"root_delay_ns\":%" PRId64
                   ",\"root_dispersion_ns\":%" PRId64 ",\"stratum\":%d,\"reference\":",
                   s->offset_ns, s->root_delay_ns, s->root_dispersion_ns, s->stratum);
            json_str(stdout, s->ref_name);
        }
        printf(",\"ok\":%s,\"error\":", rc ? "false" : "true");
        if (rc)
            json_str(stdout, merr_msg(&e));
        else if (src->last_failed)
            json_str(stdout, src->last_error); /* serving, but the source is silent */
        else
            printf("null");
        printf("}\n");
    } else {
        char eps[32], age[32];
        cli_format_duration(iv.epsilon_ns, eps, sizeof(eps));
        cli_format_duration(iv.age_ns, age, sizeof(age));
        printf("%s ±%s [%s, %s] status=%s source=%s age=%s", now, eps, earliest, latest,
               tt_status_name(iv.status), cc->source, age);
        if (rc) printf(" error=\"%s\"", merr_msg(&e));
        printf("\n");
    }
    fflush(stdout);
    cc->printed++;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish(clock_cmd *cc)
{
    uv_timer_stop(&cc->tick);
    uv_signal_stop(&cc->sigint);
    uv_signal_stop(&cc->sigterm);
    if (cc->chrony_started && !cc->chrony.stopping) tt_chrony_stop(&cc->chrony, NULL);
    if (cc->kernel_started) {
        cc->kernel_started = 0;
        tt_kernel_stop(&cc->kernel, NULL);
    }
    /* The poller closes its own handles; the rest go here. */
    if (!uv_is_closing((uv_handle_t *)&cc->tick)) uv_close((uv_handle_t *)&cc->tick, NULL);
    if (!uv_is_closing((uv_handle_t *)&cc->sigint)) uv_close((uv_handle_t *)&cc->sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&cc->sigterm)) uv_close((uv_handle_t *)&cc->sigterm, NULL);
}

static void after_print(clock_cmd *cc)
{
    if (!cc->watch || (cc->count > 0 && cc->printed >= cc->count)) finish(cc);
}

static void on_chrony(tt_chrony *c, int rc, const char *msg)
{
    clock_cmd *cc = c->data;
    (void)rc;
    (void)msg;
    print_reading(cc);
    after_print(cc);
}

static void on_tick(uv_timer_t *t)
{
    clock_cmd *cc = t->data;
    print_reading(cc);
    after_print(cc);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    finish(s->data);
}

int cmd_clock(int argc, char **argv)
{
    const char *source = "chrony", *host = "127.0.0.1", *sock = NULL, *chronyc = "chronyc";
    int64_t port = 323, count = 0;
    tt_config cfg;
    tt_config_default(&cfg);
    int json = 0, watch = 0;
    const cli_flag flags[] = {
        {"source", CLI_STR, &source, "chrony|static|kernel", "where the bound comes from (chrony)"},
        {"chrony-host", CLI_STR, &host, "HOST", "chronyd command address (127.0.0.1)"},
        {"chrony-port", CLI_INT, &port, "PORT", "chronyd command port (323)"},
        {"chrony-socket", CLI_STR, &sock, "PATH", "chronyd unix command socket (needs root)"},
        {"chronyc", CLI_STR, &chronyc, "PATH", "chronyc program (chronyc on PATH)"},
        {"max-uncertainty", CLI_DURATION, &cfg.max_uncertainty_ns, NULL,
         "above this ε the node cannot vouch for time (500ms)"},
        {"static-uncertainty", CLI_DURATION, &cfg.static_uncertainty_ns, NULL,
         "ε of the static source (100ms)"},
        {"max-drift", CLI_DOUBLE, &cfg.max_drift_ppm, "PPM",
         "worst-case oscillator drift (50 ppm)"},
        {"json", CLI_BOOL, &json, NULL, "one JSON object per line"},
        {"watch", CLI_BOOL, &watch, NULL, "print once a second until interrupted"},
        {"count", CLI_INT, &count, "N", "with --watch, stop after N readings"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(source, "chrony") == 0) {
        cfg.source = TT_SOURCE_CHRONY;
    } else if (strcmp(source, "static") == 0) {
        cfg.source = TT_SOURCE_STATIC;
    } else if (strcmp(source, "kernel") == 0) {
        cfg.source = TT_SOURCE_KERNEL;
    } else {
        fprintf(stderr, "%s: --source must be chrony, static or kernel, not '%s'\n", argv[0],
                source);
        return CLI_EXIT_USAGE;
    }
    if (count < 0) {
        fprintf(stderr, "%s: --count must not be negative\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    clock_cmd cc; /* every handle in it is closed before this function returns */
    memset(&cc, 0, sizeof(cc));
    cc.source = source;
    cc.json = json;
    cc.watch = watch;
    cc.count = count;
    merr e = {0};
    if (tt_clock_init(&cc.clock, &cfg, NULL, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
        return CLI_EXIT_USAGE;
    }
    uv_loop_init(&cc.loop);
    uv_timer_init(&cc.loop, &cc.tick);
    cc.tick.data = &cc;
    uv_signal_init(&cc.loop, &cc.sigint);
    uv_signal_init(&cc.loop, &cc.sigterm);
    cc.sigint.data = cc.sigterm.data = &cc;
    uv_signal_start(&cc.sigint, on_signal, SIGINT);
    uv_signal_start(&cc.sigterm, on_signal, SIGTERM);
    if (cfg.source == TT_SOURCE_STATIC) {
        /* tt_clock_init has warned that nothing checks this clock */
        uv_timer_start(&cc.tick, on_tick, 0, 1000);
    } else if (cfg.source == TT_SOURCE_KERNEL) {
        if (tt_kernel_start(&cc.kernel, &cc.loop, &cc.clock, 1000 * MTIME_MS, &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
            finish(&cc);
            uv_run(&cc.loop, UV_RUN_DEFAULT);
            uv_loop_close(&cc.loop);
            return 1;
        }
        cc.kernel_started = 1;
        uv_timer_start(&cc.tick, on_tick, 0, 1000);
    } else {
        tt_chrony_config ccfg;
        tt_chrony_config_default(&ccfg);
        ccfg.chronyc = chronyc;
        ccfg.host = host;
        ccfg.port = (int)port;
        ccfg.socket_path = sock;
        if (port <= 0 || port > 65535 ||
            tt_chrony_start(&cc.chrony, &cc.loop, &cc.clock, &ccfg, on_chrony, &e)) {
            if (!e.code) merr_set(&e, MERR_INVALID, "bad --chrony-port %" PRId64, port);
            fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
            finish(&cc);
            uv_run(&cc.loop, UV_RUN_DEFAULT);
            uv_loop_close(&cc.loop);
            return CLI_EXIT_USAGE;
        }
        cc.chrony.data = &cc;
        cc.chrony_started = 1;
    }
    uv_run(&cc.loop, UV_RUN_DEFAULT);
    uv_walk(&cc.loop, close_walk, NULL);
    uv_run(&cc.loop, UV_RUN_DEFAULT);
    uv_loop_close(&cc.loop);
    /* Watching ends on a signal or a count: success. One reading: 0 only if
     * the node could vouch for the time. */
    if (watch) return 0;
    return cc.last_ok ? 0 : 1;
}

/* ---- `meridian bench clock` ----
 * What time costs: tt_now() and hlc_now() per call, one fsync of the HLC
 * high-water mark, and how long commit-wait really waits against the ideal
 * 2ε for a range of ε (a timerfd, so sub-millisecond waits stay short). */

typedef struct bench_wait {
    uv_loop_t loop;
    tt_clock clock;
    tt_waiter w;
    int64_t started;
    int64_t waited;
    int status;
} bench_wait;

static void bench_wait_done(tt_waiter *w, int status)
{
    bench_wait *b = w->data;
    b->status = status;
    b->waited = mtime_mono_ns() - b->started;
}

static int bench_commit_wait(int64_t eps, int64_t waits, double *mean_ns, double *max_ns)
{
    bench_wait b;
    memset(&b, 0, sizeof(b));
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.source = TT_SOURCE_STATIC;
    cfg.static_uncertainty_ns = eps;
    merr e = {0};
    if (tt_clock_init(&b.clock, &cfg, NULL, &e)) return -1;
    uv_loop_init(&b.loop);
    tt_waiter_init(&b.loop, &b.clock, &b.w, &e);
    b.w.data = &b;
    double sum = 0, mx = 0;
    int rc = 0;
    for (int64_t i = 0; i < waits; i++) {
        tt_interval iv;
        tt_now(&b.clock, &iv, &e);
        b.started = mtime_mono_ns();
        b.status = 1;
        if (tt_wait_after(&b.w, iv.latest_ns, bench_wait_done, &e)) {
            rc = -1;
            break;
        }
        uv_run(&b.loop, UV_RUN_DEFAULT);
        if (b.status != 0) {
            rc = -1;
            break;
        }
        sum += (double)b.waited;
        if ((double)b.waited > mx) mx = (double)b.waited;
    }
    tt_waiter_close(&b.w, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    *mean_ns = waits ? sum / (double)waits : 0;
    *max_ns = mx;
    return rc;
}

int cmd_bench_clock(int argc, char **argv)
{
    int64_t iters = 2000000, waits = 20, syncs = 50;
    const char *dir = "/tmp";
    const cli_flag flags[] = {
        {"iterations", CLI_INT, &iters, "N", "calls of tt_now and hlc_now (2000000)"},
        {"waits", CLI_INT, &waits, "N", "commit-waits per ε (20)"},
        {"fsyncs", CLI_INT, &syncs, "N", "high-water-mark saves to time (50)"},
        {"dir", CLI_STR, &dir, "PATH", "folder for the high-water-mark file (/tmp)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || iters <= 0 || waits <= 0 || syncs <= 0) {
        fprintf(stderr, "%s: counts must be positive and there are no arguments\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    /* The bench's static clocks are deliberate: no "static source" warnings. */
    mlog_set_level(MLOG_ERROR);
    merr e = {0};
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.source = TT_SOURCE_STATIC;
    cfg.static_uncertainty_ns = 1000000;
    tt_clock clock;
    tt_clock_init(&clock, &cfg, NULL, &e);
    tt_interval iv;
    int64_t sink = 0, t0 = mtime_mono_ns();
    for (int64_t i = 0; i < iters; i++) {
        tt_now(&clock, &iv, &e);
        sink += iv.epsilon_ns;
    }
    double tt_ns = (double)(mtime_mono_ns() - t0) / (double)iters;

    hlc h;
    hlc_config hc;
    hlc_config_default(&hc);
    hlc_init(&h, &hc, NULL, &e);
    hlc_ts ts;
    t0 = mtime_mono_ns();
    for (int64_t i = 0; i < iters; i++) {
        if (hlc_now(&h, mtime_real_ns(), &ts, &e)) return 1;
        sink += (int64_t)(ts & 1);
    }
    double hlc_ns = (double)(mtime_mono_ns() - t0) / (double)iters;

    char path[512];
    snprintf(path, sizeof(path), "%s/meridian-bench-hlc.%d", dir, (int)getpid());
    hlc_file_store fs;
    hlc_store_ops ops;
    if (hlc_file_store_init(&fs, path, &ops, &e)) goto fail;
    t0 = mtime_mono_ns();
    for (int64_t i = 0; i < syncs; i++)
        if (ops.save(ops.ctx, (hlc_ts)i, &e)) goto fail;
    double save_ns = (double)(mtime_mono_ns() - t0) / (double)syncs;
    unlink(path);

    printf("tt_now (static source):   %8.1f ns/call\n", tt_ns);
    printf("hlc_now (no store):       %8.1f ns/call\n", hlc_ns);
    printf("high-water mark save:     %8.1f us/save (write+fsync+rename+fsync dir, in %s)\n",
           save_ns / 1e3, dir);
    printf("commit-wait (wait for s = latest; ideal 2ε):\n");
    static const int64_t eps[] = {20000, 50000, 100000, 1000000, 5000000, 20000000};
    for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
        double mean, mx;
        if (bench_commit_wait(eps[i], waits, &mean, &mx)) {
            fprintf(stderr, "%s: commit-wait failed\n", argv[0]);
            return 1;
        }
        printf("  ε %7.3f ms: mean %8.3f ms, max %8.3f ms, mean/2ε %.2f\n", (double)eps[i] / 1e6,
               mean / 1e6, mx / 1e6, mean / (2.0 * (double)eps[i]));
    }
    return sink == 42 ? 0 : 0;
fail:
    fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
    unlink(path);
    return 1;
}
