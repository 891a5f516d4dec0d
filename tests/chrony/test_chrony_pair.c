/* Integration: timesvc against a real chronyd pair on loopback.
 *
 * Each test starts its own master + node (deploy/chrony/chrony-pair.sh) in a
 * temp folder on free loopback ports, and kills both by PID in teardown, also
 * when an assertion fails, and from a SIGALRM guard if the test hangs.
 *   argv[1] = chrony-pair.sh, argv[2] = the meridian binary. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timesvc/tt_uv.h"

#define MS (1000LL * 1000)

static const char *script, *meridian;
static char dir[64];
static int master_port, master_cmdport, node_cmdport;
static volatile pid_t pids[2]; /* master, node */

/* ---- the pair ---- */

static int is_chronyd(pid_t pid)
{
    char path[64], comm[32] = {0}, stat[256] = {0};
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (!fgets(comm, sizeof(comm), f)) comm[0] = 0;
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f) return 0;
    if (!fgets(stat, sizeof(stat), f)) stat[0] = 0;
    fclose(f);
    /* a zombie nobody reaped is as good as gone */
    char *rp = strrchr(stat, ')');
    if (rp && rp[1] == ' ' && rp[2] == 'Z') return 0;
    return strncmp(comm, "chronyd", 7) == 0;
}

/* Kills one daemon by PID: TERM, then KILL if it lingers. Async-signal-safe
 * enough for the alarm guard (kill, usleep, open/read via stdio aside). */
static void kill_pid(pid_t pid)
{
    if (pid <= 0 || !is_chronyd(pid)) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 300 && is_chronyd(pid); i++) usleep(10000);
    if (is_chronyd(pid)) kill(pid, SIGKILL);
    for (int i = 0; i < 300 && is_chronyd(pid); i++) usleep(10000);
}

static void kill_all(void)
{
    for (int i = 1; i >= 0; i--) {
        kill_pid(pids[i]);
        pids[i] = 0;
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "chrony_pair: hang guard fired; killing chronyd by PID\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    kill_all();
    _exit(1);
}

static int free_udp_ports(int *ports, int n)
{
    int fds[8];
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) ||
            getsockname(fds[i], (struct sockaddr *)&a, &len))
            return -1;
        ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n; i++) close(fds[i]);
    return 0;
}

static int run_script(const char *cmd)
{
    pid_t p = fork();
    if (p == 0) {
        execl("/bin/bash", "bash", script, cmd, dir, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static pid_t read_pid(const char *who)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s/chronyd.pid", dir, who);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1) pid = 0;
    fclose(f);
    return pid;
}

static int pair_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/meridian-chrony-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    int ports[3];
    if (free_udp_ports(ports, 3)) return -1;
    master_port = ports[0];
    master_cmdport = ports[1];
    node_cmdport = ports[2];
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", master_port);
    setenv("MASTER_PORT", buf, 1);
    snprintf(buf, sizeof(buf), "%d", master_cmdport);
    setenv("MASTER_CMDPORT", buf, 1);
    snprintf(buf, sizeof(buf), "%d", node_cmdport);
    setenv("NODE_CMDPORT", buf, 1);
    int rc = run_script("start");
    pids[0] = read_pid("master");
    pids[1] = read_pid("node");
    if (rc != 0 || pids[0] <= 0 || pids[1] <= 0) {
        fprintf(stderr, "chrony-pair.sh start failed (exit %d)\n", rc);
        kill_all();
        return -1;
    }
    return 0;
}

static int pair_teardown(void **state)
{
    (void)state;
    kill_all();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a clock polling the node chronyd ---- */

typedef struct rig {
    uv_loop_t loop;
    tt_clock clock;
    tt_chrony chrony;
    int results;
} rig;

static void on_result(tt_chrony *c, int rc, const char *msg)
{
    (void)rc;
    (void)msg;
    ((rig *)c->data)->results++;
}

static void rig_start(rig *r, int64_t max_unc, const char *sock)
{
    memset(r, 0, sizeof(*r));
    uv_loop_init(&r->loop);
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.max_uncertainty_ns = max_unc;
    merr e = {0};
    assert_int_equal(tt_clock_init(&r->clock, &cfg, NULL, &e), 0);
    tt_chrony_config cc;
    tt_chrony_config_default(&cc);
    cc.port = node_cmdport;
    cc.socket_path = sock;
    cc.interval_ns = 100 * MS;
    cc.timeout_ns = 1000 * MS;
    assert_int_equal(tt_chrony_start(&r->chrony, &r->loop, &r->clock, &cc, on_result, &e), 0);
    r->chrony.data = r;
}

static void rig_stop(rig *r)
{
    tt_chrony_stop(&r->chrony, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
}

typedef int (*pred_fn)(rig *r, const tt_interval *iv, int rc);

/* Runs the loop until pred holds after a query, or the hang guard expires. */
static int wait_for(rig *r, pred_fn pred, int timeout_s, tt_interval *iv)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_s * 1000000000ULL;
    int seen = r->results;
    while (uv_hrtime() < deadline) {
        uv_run(&r->loop, UV_RUN_ONCE);
        if (r->results == seen) continue;
        seen = r->results;
        merr e = {0};
        int rc = tt_now(&r->clock, iv, &e);
        if (pred(r, iv, rc)) return 1;
    }
    return 0;
}

static int synced_1ms(rig *r, const tt_interval *iv, int rc)
{
    (void)r;
    return rc == 0 && iv->status == TT_SYNCHRONIZED && iv->epsilon_ns < 1 * MS;
}
static int free_running(rig *r, const tt_interval *iv, int rc)
{
    (void)r;
    (void)rc;
    return iv->source_status == TT_FREE_RUNNING;
}
static int cannot_vouch(rig *r, const tt_interval *iv, int rc)
{
    (void)r;
    return rc == MERR_CLOCK && iv->status == TT_UNKNOWN;
}
static int daemon_gone(rig *r, const tt_interval *iv, int rc)
{
    return rc == 0 && iv->status == TT_FREE_RUNNING && r->clock.src.last_failed;
}
static int any_result(rig *r, const tt_interval *iv, int rc)
{
    (void)r;
    (void)iv;
    (void)rc;
    return 1;
}

/* Runs `meridian clock --json ARGS` once; returns its exit status and line. */
static int meridian_clock(const char *args, char *line, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' clock --json %s 2>/dev/null", meridian, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    line[0] = 0;
    if (!fgets(line, (int)cap, p)) line[0] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static long long json_int(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *p = strstr(line, k);
    assert_non_null(p);
    return atoll(p + strlen(k));
}

/* The master goes away: the node's estimate ages, ε grows, the status goes
 * FREE_RUNNING while the node still serves; with a small maximum it then
 * cannot vouch for time any more. */
static void test_synchronized_then_master_lost(void **state)
{
    (void)state;
    rig r;
    tt_interval iv;
    char line[2048], args[128];
    rig_start(&r, TT_DEFAULT_MAX_UNCERTAINTY_NS, NULL);
    assert_true(wait_for(&r, synced_1ms, 30, &iv));
    printf("synchronized: epsilon %.3f us, age %.3f s\n", (double)iv.epsilon_ns / 1e3,
           (double)iv.age_ns / 1e9);

    snprintf(args, sizeof(args), "--chrony-port %d", node_cmdport);
    assert_int_equal(meridian_clock(args, line, sizeof(line)), 0);
    printf("meridian clock: %s", line);
    assert_non_null(strstr(line, "\"status\":\"SYNCHRONIZED\""));
    assert_true(json_int(line, "epsilon_ns") < 1 * MS);

    assert_int_equal(run_script("stop-master"), 0);
    pids[0] = 0;
    assert_true(wait_for(&r, free_running, 30, &iv));
    merr e = {0};
    assert_int_equal(tt_now(&r.clock, &iv, &e), 0); /* still vouched for */
    int64_t e1 = iv.epsilon_ns;
    assert_true(wait_for(&r, any_result, 10, &iv));
    int64_t e2 = iv.epsilon_ns;
    assert_true(wait_for(&r, any_result, 10, &iv));
    assert_int_equal(iv.status, TT_FREE_RUNNING);
    assert_true(e2 > e1 && iv.epsilon_ns > e2);
    printf("master lost: FREE_RUNNING, epsilon %.3f -> %.3f -> %.3f us\n", (double)e1 / 1e3,
           (double)e2 / 1e3, (double)iv.epsilon_ns / 1e3);

    /* A maximum just above the current ε: growth takes ε past it. */
    r.clock.cfg.max_uncertainty_ns = iv.epsilon_ns + 200 * 1000;
    assert_true(wait_for(&r, cannot_vouch, 30, &iv));
    assert_int_equal(tt_now(&r.clock, &iv, &e), MERR_CLOCK);
    assert_non_null(strstr(e.msg, "cannot vouch"));
    assert_int_equal(tt_after(&r.clock, 0, &e), MERR_CLOCK);
    printf("%s\n", e.msg);

    snprintf(args, sizeof(args), "--chrony-port %d --max-uncertainty 1us", node_cmdport);
    assert_int_equal(meridian_clock(args, line, sizeof(line)), 1);
    assert_non_null(strstr(line, "\"status\":\"UNKNOWN\""));
    assert_non_null(strstr(line, "\"source_status\":\"FREE_RUNNING\""));
    assert_non_null(strstr(line, "\"ok\":false"));
    rig_stop(&r);
}

/* The node's own chronyd dies (queries over its unix socket fail): the
 * clock keeps ageing its last sample and says why. */
static void test_node_daemon_killed(void **state)
{
    (void)state;
    rig r;
    tt_interval iv;
    char sock[128], args[256], line[2048];
    snprintf(sock, sizeof(sock), "%s/node/chronyd.sock", dir);
    rig_start(&r, 500 * MS, sock);
    assert_true(wait_for(&r, synced_1ms, 30, &iv));

    snprintf(args, sizeof(args), "--chrony-socket %s", sock);
    assert_int_equal(meridian_clock(args, line, sizeof(line)), 0);
    assert_non_null(strstr(line, "\"status\":\"SYNCHRONIZED\""));

    pid_t node = pids[1];
    assert_int_equal(kill(node, SIGKILL), 0);
    assert_true(wait_for(&r, daemon_gone, 30, &iv));
    int64_t e1 = iv.epsilon_ns;
    assert_true(wait_for(&r, any_result, 10, &iv));
    assert_true(iv.epsilon_ns > e1);
    assert_true(strlen(r.clock.src.last_error) > 0);
    printf("node chronyd killed: %s; epsilon %.3f us and growing\n", r.clock.src.last_error,
           (double)iv.epsilon_ns / 1e3);
    rig_stop(&r);
}

static int have_program(const char *name)
{
    const char *path = getenv("PATH");
    char buf[512];
    const char *extra[] = {"/usr/sbin", "/sbin", "/usr/local/sbin"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(buf, sizeof(buf), "%s/%s", extra[i], name);
        if (access(buf, X_OK) == 0) return 1;
    }
    while (path && *path) {
        const char *c = strchr(path, ':');
        size_t n = c ? (size_t)(c - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
        if (access(buf, X_OK) == 0) return 1;
        path = c ? c + 1 : NULL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s chrony-pair.sh meridian\n", argv[0]);
        return 2;
    }
    script = argv[1];
    meridian = argv[2];
    if (!have_program("chronyd") || !have_program("chronyc")) {
        printf("chronyd/chronyc not installed: skipping\n");
        return 77;
    }
    /* chronyd refuses to start unless root ("Not superuser"), even with -x. */
    if (geteuid() != 0) {
        printf("chronyd needs root and we are uid %d: skipping\n", (int)geteuid());
        return 77;
    }
    signal(SIGALRM, on_alarm);
    alarm(140); /* below the ctest timeout, so the guard (not ctest) kills */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_synchronized_then_master_lost, pair_setup,
                                        pair_teardown),
        cmocka_unit_test_setup_teardown(test_node_daemon_killed, pair_setup, pair_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kill_all();
    return rc;
}
