/* The chrony source without chronyd: the `chronyc -c tracking` parser on real
 * and broken output, and the poller driving real child processes — fake
 * chronyc scripts that answer, fail, print garbage or hang (and get killed by
 * PID when they do). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "timesvc/tt_uv.h"

#define MS (1000LL * 1000)

static const char GOOD[] = "7F000001,127.0.0.1,2,1795667829.131296384,-0.000001190,"
                           "-0.000000001,0.000001009,-1.972,0.002,2.480,0.000006005,"
                           "0.000007248,0.3,Normal\n";
static const char UNSYNC[] = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,"
                             "0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n";

static void test_parse_good(void **state)
{
    (void)state;
    tt_sample s;
    merr e = {0};
    assert_int_equal(tt_chrony_parse_tracking(GOOD, strlen(GOOD), &s, &e), 0);
    assert_int_equal(s.ref_real_ns, 1795667829131296384LL); /* every digit kept */
    assert_int_equal(s.offset_ns, -1190);
    assert_int_equal(s.root_delay_ns, 6005);
    assert_int_equal(s.root_dispersion_ns, 7248);
    assert_int_equal(s.update_interval_ns, 300 * MS);
    assert_int_equal(s.stratum, 2);
    assert_int_equal(s.synchronized, 1);
    assert_string_equal(s.ref_name, "127.0.0.1");
    /* without the newline, and with leap-second announcements */
    assert_int_equal(tt_chrony_parse_tracking(GOOD, strlen(GOOD) - 1, &s, &e), 0);
    char leap[sizeof(GOOD) + 16];
    snprintf(leap, sizeof(leap), "%.*sInsert second", (int)(strlen(GOOD) - 7), GOOD);
    assert_int_equal(tt_chrony_parse_tracking(leap, strlen(leap), &s, &e), 0);
    assert_int_equal(s.synchronized, 1);

    assert_int_equal(tt_chrony_parse_tracking(UNSYNC, strlen(UNSYNC), &s, &e), 0);
    assert_int_equal(s.synchronized, 0);
    assert_int_equal(s.root_delay_ns, 1000 * MS);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "\n",
        "506 Cannot talk to daemon\n",
        "7F000001,127.0.0.1,2,1795667829.1,-0.1,0,0,0,0,0,0.1,0.1,0.3\n", /* 13 */
        "7F000001,127.0.0.1,2,1795667829.1,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal,x\n",
        "7F000001,127.0.0.1,2,1795667829.1,-0.1,0,0,0,0,0,0.1,0.1,0.3,Sideways\n",
        "7F000001,127.0.0.1,x,1795667829.1,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,99,1795667829.1,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,2,179566782x,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,2,1795667829.1,,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,2,1795667829.1,-0.1,0,0,0,0,0,-0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,2,1e9,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,2,99999999999999999999.1,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        /* 17956678129 s: passed the digit loop's bound, overflowed int64 ns (fuzz_timefmt) */
        "7F000001,127.0.0.1,2,17956678129,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\n",
        "7F000001,127.0.0.1,2,1795667829.1,-0.1,0,0,0,0,0,0.1,0.1,0.3,Normal\nmore\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tt_sample s;
        merr e = {0};
        assert_int_equal(tt_chrony_parse_tracking(bad[i], strlen(bad[i]), &s, &e), MERR_PROTOCOL);
        assert_non_null(strstr(e.msg, "chronyc"));
    }
    /* embedded NUL, oversized */
    tt_sample s;
    merr e = {0};
    assert_int_equal(tt_chrony_parse_tracking("7F\0001,", 6, &s, &e), MERR_PROTOCOL);
    static char big[4096];
    memset(big, ',', sizeof(big));
    assert_int_equal(tt_chrony_parse_tracking(big, sizeof(big), &s, &e), MERR_PROTOCOL);
}

/* ---- the poller against fake chronyc programs ---- */

static char dir[64];

static void write_script(const char *name, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/meridian-chronyc-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    write_script("good", "printf '%s\\n' \"$*\" > \"$(dirname \"$0\")/args\"\n"
                         "printf '7F000001,127.0.0.1,2,%s,-0.000001190,0,0,0,0,0,0.000006005,"
                         "0.000007248,0.3,Normal\\n' \"$(date +%s.%N)\"");
    write_script("fail", "echo '506 Cannot talk to daemon'; exit 1");
    write_script("garbage", "echo 'hello, world'");
    write_script("unsync", "echo '00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,"
                           "0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised'");
    write_script("hang", "echo $$ > \"$(dirname \"$0\")/hang.pid\"; exec sleep 60");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct poll_run {
    uv_loop_t loop;
    tt_clock clock;
    tt_chrony chrony;
    uv_timer_t guard;
    int want, results, closed;
    int codes[16];
    char msgs[16][200];
} poll_run;

static void on_closed(tt_chrony *c)
{
    poll_run *r = c->data;
    r->closed = 1;
}

static void on_result(tt_chrony *c, int rc, const char *msg)
{
    poll_run *r = c->data;
    if (r->results < 16) {
        r->codes[r->results] = rc;
        snprintf(r->msgs[r->results], sizeof(r->msgs[0]), "%s", msg ? msg : "");
    }
    if (++r->results == r->want) {
        uv_timer_stop(&r->guard);
        uv_close((uv_handle_t *)&r->guard, NULL);
        tt_chrony_stop(c, on_closed);
    }
}

static void on_guard(uv_timer_t *t)
{
    poll_run *r = t->data;
    uv_close((uv_handle_t *)&r->guard, NULL);
    tt_chrony_stop(&r->chrony, on_closed);
}

/* Runs the poller with program `prog` until `want` results arrived. */
static void run_poller(poll_run *r, const char *prog, int want, const char *sock)
{
    memset(r, 0, sizeof(*r));
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, prog);
    uv_loop_init(&r->loop);
    tt_config cfg;
    tt_config_default(&cfg);
    merr e = {0};
    assert_int_equal(tt_clock_init(&r->clock, &cfg, NULL, &e), 0);
    tt_chrony_config cc;
    tt_chrony_config_default(&cc);
    cc.chronyc = path;
    cc.port = 11125;
    cc.socket_path = sock;
    cc.interval_ns = 5 * MS;
    cc.timeout_ns = 300 * MS;
    assert_int_equal(tt_chrony_start(&r->chrony, &r->loop, &r->clock, &cc, on_result, &e), 0);
    r->chrony.data = r;
    r->want = want;
    uv_timer_init(&r->loop, &r->guard);
    r->guard.data = r;
    uv_timer_start(&r->guard, on_guard, 20000, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->closed, 1);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    assert_int_equal(r->results, want);
}

static void read_file(const char *name, char *buf, size_t cap)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

static void test_poller_feeds_clock(void **state)
{
    (void)state;
    poll_run r;
    run_poller(&r, "good", 3, NULL);
    for (int i = 0; i < 3; i++) assert_int_equal(r.codes[i], 0);
    tt_interval iv;
    merr e = {0};
    assert_int_equal(tt_now(&r.clock, &iv, &e), 0);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);
    assert_true(iv.epsilon_ns >= 1190 + 7248 + 3003);
    assert_true(iv.epsilon_ns < 1 * MS);
    assert_int_equal(r.chrony.queries, 3);
    char args[256];
    read_file("args", args, sizeof(args));
    assert_string_equal(args, "-n -c -h 127.0.0.1 -p 11125 tracking\n");

    run_poller(&r, "good", 1, "/run/test/chronyd.sock");
    read_file("args", args, sizeof(args));
    assert_string_equal(args, "-n -c -h /run/test/chronyd.sock tracking\n");
}

static void test_poller_failures(void **state)
{
    (void)state;
    poll_run r;
    merr e = {0};
    tt_interval iv;
    run_poller(&r, "fail", 2, NULL);
    assert_int_equal(r.codes[0], MERR_UNAVAILABLE);
    assert_non_null(strstr(r.msgs[0], "506 Cannot talk to daemon"));
    assert_int_equal(r.chrony.failures, 2);
    assert_int_equal(tt_now(&r.clock, &iv, &e), MERR_CLOCK);
    assert_non_null(strstr(e.msg, "Cannot talk to daemon"));

    run_poller(&r, "garbage", 1, NULL);
    assert_int_equal(r.codes[0], MERR_PROTOCOL);

    run_poller(&r, "unsync", 1, NULL);
    assert_int_equal(r.codes[0], 0);
    assert_int_equal(tt_now(&r.clock, &iv, &e), MERR_CLOCK);
    assert_int_equal(iv.status, TT_UNKNOWN);

    run_poller(&r, "does-not-exist", 1, NULL);
    assert_int_equal(r.codes[0], MERR_UNAVAILABLE);
    assert_non_null(strstr(r.msgs[0], "does-not-exist"));
}

/* chronyd that never answers: the child is killed by PID after the timeout
 * and the clock records why. */
static void test_poller_kills_hung_query(void **state)
{
    (void)state;
    poll_run r;
    run_poller(&r, "hang", 1, NULL);
    assert_int_equal(r.codes[0], MERR_TIMEOUT);
    assert_non_null(strstr(r.msgs[0], "no answer"));
    char buf[32];
    read_file("hang.pid", buf, sizeof(buf));
    pid_t pid = (pid_t)atoi(buf);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1); /* gone, and reaped */
    assert_int_equal(errno, ESRCH);
}

/* Stopping while a query is in flight kills that child and still closes. */
static void stop_now(uv_timer_t *t)
{
    poll_run *r = t->data;
    tt_chrony_stop(&r->chrony, on_closed);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_stop_mid_query(void **state)
{
    (void)state;
    poll_run r;
    memset(&r, 0, sizeof(r));
    char path[128];
    snprintf(path, sizeof(path), "%s/hang", dir);
    char pidfile[128];
    snprintf(pidfile, sizeof(pidfile), "%s/hang.pid", dir);
    unlink(pidfile);
    uv_loop_init(&r.loop);
    tt_config cfg;
    tt_config_default(&cfg);
    merr e = {0};
    assert_int_equal(tt_clock_init(&r.clock, &cfg, NULL, &e), 0);
    tt_chrony_config cc;
    tt_chrony_config_default(&cc);
    cc.chronyc = path;
    cc.timeout_ns = 60000 * MS;
    assert_int_equal(tt_chrony_start(&r.chrony, &r.loop, &r.clock, &cc, on_result, &e), 0);
    r.chrony.data = &r;
    uv_timer_init(&r.loop, &r.guard);
    r.guard.data = &r;
    uv_timer_start(&r.guard, stop_now, 200, 0);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.results, 0); /* a stop is not a result */
    assert_int_equal(uv_loop_close(&r.loop), 0);
    char buf[32];
    read_file("hang.pid", buf, sizeof(buf)); /* the child did start ... */
    assert_true(atoi(buf) > 0);
    assert_int_equal(kill((pid_t)atoi(buf), 0), -1); /* ... and is gone */
}

static void test_bad_config(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tt_clock clock;
    tt_config cfg;
    tt_config_default(&cfg);
    merr e = {0};
    assert_int_equal(tt_clock_init(&clock, &cfg, NULL, &e), 0);
    tt_chrony c;
    tt_chrony_config cc;
    tt_chrony_config_default(&cc);
    cc.port = 70000;
    assert_int_equal(tt_chrony_start(&c, &loop, &clock, &cc, NULL, &e), MERR_INVALID);
    tt_chrony_config_default(&cc);
    cc.socket_path = "relative.sock";
    assert_int_equal(tt_chrony_start(&c, &loop, &clock, &cc, NULL, &e), MERR_INVALID);
    tt_chrony_config_default(&cc);
    cc.host = "-x";
    assert_int_equal(tt_chrony_start(&c, &loop, &clock, &cc, NULL, &e), MERR_INVALID);
    tt_chrony_config_default(&cc);
    cc.interval_ns = 0;
    assert_int_equal(tt_chrony_start(&c, &loop, &clock, &cc, NULL, &e), MERR_INVALID);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_poller_feeds_clock),
        cmocka_unit_test(test_poller_failures),
        cmocka_unit_test(test_poller_kills_hung_query),
        cmocka_unit_test(test_stop_mid_query),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
