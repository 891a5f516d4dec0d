/* `meridian demo`: a throwaway local cluster with the SQL shell on it.
 *
 * Starts N nodes with deploy/local-cluster.sh (which records every process
 * in DIR/nodes and stops them by PID), initialises the cluster, optionally
 * emulates three regions with the rpc fault layer's latency matrix and loads
 * an example dataset, then runs `meridian sql` on it: interactive on a
 * terminal, otherwise the SQL on standard input. When the shell exits, the
 * nodes are stopped and the demo's directory removed.
 *
 * Processes. The cluster script runs in its own session (setsid), so the
 * nodes never see the terminal's Ctrl-C, which belongs to the shell (it
 * cancels the running statement). This process ignores SIGINT and turns
 * SIGTERM/SIGHUP into "stop the shell, then clean up", so a demo killed
 * politely still leaves nothing behind. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/fsutil.h"
#include "server/commands.h"

#ifndef MERIDIAN_SOURCE_DIR
#define MERIDIAN_SOURCE_DIR "."
#endif

#define DEMO_MAX_NODES 9

/* us-east/us-west/europe-west, round trips 66/64/146 ms: one way is half. */
static const char *const global_regions = "us-east us-west europe-west";
static const char *const global_latency = "latency=us-east:us-west:33ms;"
                                          "latency=us-east:europe-west:32ms;"
                                          "latency=us-west:europe-west:73ms";

/* forward: the child may be stopped early (the shell, a dataset load); the
 * cluster scripts always run to their end, or a node started but not yet
 * recorded in DIR/nodes would outlive the demo. */
static volatile sig_atomic_t child_pid, stop_sig, forward;

static void on_stop_signal(int sig)
{
    stop_sig = sig;
    if (child_pid > 0 && forward) kill((pid_t)child_pid, SIGTERM);
}

/* Runs argv with stdin from in_fd / stdout to out_fd (-1: inherit), in a new
 * session when detach is set; returns its exit status (128+N if killed).
 * Once a stop signal came, only `always` commands (the cleanup) still run. */
static int run(char *const argv[], int in_fd, int out_fd, int detach, int always)
{
    /* SIGTERM/SIGHUP wait until child_pid names the child, so the handler
     * either sees it or has already set stop_sig, which we check here. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop, &old);
    if (stop_sig && !always) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 128 + stop_sig;
    }
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (detach) setsid();
        if (in_fd >= 0) dup2(in_fd, 0);
        if (out_fd >= 0) dup2(out_fd, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "meridian demo: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid > 0 ? pid : 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) return 127;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    child_pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The repository root: $MERIDIAN_HOME, the build tree's parent
 * (build/server/meridian), or the source dir this binary was built from. */
static int find_root(const char *self, char *out, size_t cap)
{
    const char *env = getenv("MERIDIAN_HOME");
    char cand[3][PATH_MAX + 8];
    int n = 0;
    if (env) snprintf(cand[n++], sizeof(cand[0]), "%.*s", PATH_MAX - 1, env);
    const char *slash = strrchr(self, '/');
    if (slash && slash - self < PATH_MAX - 1)
        snprintf(cand[n++], sizeof(cand[0]), "%.*s/../..", (int)(slash - self), self);
    snprintf(cand[n++], sizeof(cand[0]), "%.*s", PATH_MAX - 1, MERIDIAN_SOURCE_DIR);
    for (int i = 0; i < n; i++) {
        char probe[sizeof(cand[0]) + 32], real[PATH_MAX];
        snprintf(probe, sizeof(probe), "%.*s/deploy/local-cluster.sh", PATH_MAX, cand[i]);
        if (access(probe, R_OK) == 0 && realpath(cand[i], real) && strlen(real) < cap) {
            memcpy(out, real, strlen(real) + 1);
            return 0;
        }
    }
    return -1;
}

/* "H1,H2,..." from DIR/nodes ("I PID RPC HTTP STORE" lines); also shows
 * them on stderr. Returns the number of nodes. */
static int read_nodes(const char *dir, char *hosts, size_t cap, int verbose)
{
    char path[PATH_MAX + 16], line[PATH_MAX + 256];
    snprintf(path, sizeof(path), "%s/nodes", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    size_t len = 0;
    hosts[0] = 0;
    while (fgets(line, sizeof(line), f)) {
        int idx, pid;
        char rpc[128], http[128];
        if (sscanf(line, "%d %d %127s %127s", &idx, &pid, rpc, http) != 4) continue;
        if (verbose)
            fprintf(stderr, "  node %d  pid %d  sql/rpc %s  http %s\n", idx, pid, rpc, http);
        len += (size_t)snprintf(hosts + len, cap - len, "%s%s", n ? "," : "", rpc);
        if (len >= cap) break;
        n++;
    }
    fclose(f);
    return n;
}

static void demo_stop(const char *script, const char *dir)
{
    char *argv[] = {"bash", (char *)script, "stop", (char *)dir, NULL};
    int null = open("/dev/null", O_WRONLY);
    run(argv, -1, null, 0, 1);
    if (null >= 0) close(null);
    merr e = {0};
    if (mfs_remove_tree(dir, &e))
        fprintf(stderr, "meridian demo: cannot remove %s\n", merr_msg(&e));
}

int cmd_demo(int argc, char **argv)
{
    int64_t nodes = 3;
    int global = 0;
    const char *dataset = NULL, *format = "table";
    const cli_flag flags[] = {
        {"nodes", CLI_INT, &nodes, "N", "nodes to start (default 3)"},
        {"global", CLI_BOOL, &global, NULL,
         "three regions (us-east, us-west, europe-west) with emulated WAN latency"},
        {"dataset", CLI_STR, &dataset, "NAME", "load examples/datasets/NAME.sql first"},
        {"format", CLI_STR, &format, "FMT", "the shell's output: table|csv|tsv|json|line"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[--nodes N] [--global] [--dataset NAME] [--format FMT]", flags,
                       argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || nodes < 1 || nodes > DEMO_MAX_NODES) {
        fprintf(stderr, "%s: --nodes takes 1..%d, and no arguments\n", argv[0], DEMO_MAX_NODES);
        return CLI_EXIT_USAGE;
    }
    char self[PATH_MAX], root[PATH_MAX], script[PATH_MAX + 32], data[PATH_MAX + 64];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0) {
        fprintf(stderr, "%s: cannot find my own binary\n", argv[0]);
        return 1;
    }
    self[sl] = 0;
    if (find_root(self, root, sizeof(root))) {
        fprintf(stderr,
                "%s: cannot find deploy/local-cluster.sh (set MERIDIAN_HOME to the "
                "source tree)\n",
                argv[0]);
        return 1;
    }
    snprintf(script, sizeof(script), "%s/deploy/local-cluster.sh", root);
    if (dataset) {
        if (strchr(dataset, '/')) {
            fprintf(stderr, "%s: --dataset takes a name, not a path\n", argv[0]);
            return CLI_EXIT_USAGE;
        }
        snprintf(data, sizeof(data), "%s/examples/datasets/%s.sql", root, dataset);
        if (access(data, R_OK)) {
            fprintf(stderr, "%s: no dataset '%s' (%s)\n", argv[0], dataset, data);
            return CLI_EXIT_USAGE;
        }
    }
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/meridian-demo.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", argv[0], dir, strerror(errno));
        return 1;
    }

    signal(SIGINT, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    /* The script and the shell's .demo commands read these. */
    char startflags[512];
    const char *base = getenv("MERIDIAN_START_FLAGS");
    snprintf(startflags, sizeof(startflags), "%s%s",
             base ? base : "--insecure --clock-source static --static-uncertainty 1ms",
             global ? " --testing-fault-admin" : "");
    setenv("MERIDIAN_BIN", self, 1);
    setenv("MERIDIAN_START_FLAGS", startflags, 1);
    if (global) setenv("MERIDIAN_REGIONS", global_regions, 1);
    setenv("MERIDIAN_DEMO_CTL", script, 1);
    setenv("MERIDIAN_DEMO_DIR", dir, 1);

    int status = 1;
    char outpath[PATH_MAX + 32], nstr[8], hosts[2048];
    snprintf(outpath, sizeof(outpath), "%s/cluster.out", dir);
    snprintf(nstr, sizeof(nstr), "%d", (int)nodes);
    fprintf(stderr, "Starting a %d-node local cluster%s in %s ...\n", (int)nodes,
            global ? " over three emulated regions" : "", dir);
    int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *start_argv[] = {"bash", script, "start", dir, nstr, NULL};
    rc = run(start_argv, -1, out, 1, 0);
    if (out >= 0) close(out);
    if (rc || stop_sig) {
        fprintf(stderr, "%s: the cluster did not start (logs were in %s)\n", argv[0], dir);
        goto out;
    }
    if (read_nodes(dir, hosts, sizeof(hosts), 1) != (int)nodes) {
        fprintf(stderr, "%s: the cluster script recorded no nodes\n", argv[0]);
        goto out;
    }
    if (global) {
        char hs[2048];
        snprintf(hs, sizeof(hs), "%s", hosts);
        char *save = NULL;
        for (char *h = strtok_r(hs, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
            char *fa[] = {self, "debug",      "faults", "--host",
                          h,    "--insecure", "--spec", (char *)global_latency,
                          NULL};
            int null = open("/dev/null", O_WRONLY);
            rc = run(fa, -1, null, 0, 0);
            if (null >= 0) close(null);
            if (rc) {
                fprintf(stderr, "%s: cannot set the latency matrix on %s\n", argv[0], h);
                goto out;
            }
        }
        fprintf(stderr, "Regions: us-east, us-west, europe-west (round trips 66/64/146 ms)\n");
    }
    if (dataset) {
        int in = open(data, O_RDONLY);
        int null = open("/dev/null", O_WRONLY);
        char *la[] = {self, "sql", "--host", hosts, NULL};
        forward = 1;
        rc = in < 0 ? 1 : run(la, in, null, 0, 0);
        forward = 0;
        if (in >= 0) close(in);
        if (null >= 0) close(null);
        if (rc || stop_sig) {
            fprintf(stderr, "%s: loading dataset '%s' failed\n", argv[0], dataset);
            goto out;
        }
        fprintf(stderr, "Loaded dataset '%s'.\n", dataset);
    }
    if (isatty(0))
        fprintf(stderr, "The cluster goes away when you leave the shell. Try .demo nodes, "
                        ".demo kill N, .demo restart N.\n");
    char *sh[] = {self, "sql", "--host", hosts, "--format", (char *)format, NULL};
    forward = 1;
    status = run(sh, -1, -1, 0, 0);
    forward = 0;
out:
    demo_stop(script, dir);
    return stop_sig ? 128 + stop_sig : status;
}
