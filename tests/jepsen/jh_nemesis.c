/* The harness's nemesis (see jh_run.h): faults on the real processes of a
 * cluster started by deploy/local-cluster.sh.
 *
 *   kill      local-cluster.sh kill DIR I (kill -9), later restart DIR I
 *   pause     SIGSTOP to the node's pid, later SIGCONT
 *             (kill and pause pick range 1's leaseholder half the time)
 *   partition rpc fault injection through `meridian debug faults` on nodes
 *             started with --testing-fault-admin: one node cut off both ways,
 *             the leaseholder cut off, one node's traffic lost one way, or a
 *             random minority cut off from the majority
 *   clock-skew      restart a node with --testing-clock-skew inside its own
 *             (widened) bound: nothing may break
 *   clock-skew-big  the same beyond the maximum clock uncertainty: the node
 *             must refuse rather than misbehave; its refusals are counted
 *             from its log
 *   disk-full create STORE/TESTING_DISK_FULL on a node started with
 *             --testing-disk-faults: its log writes fail with ENOSPC until
 *             the file goes; a node whose replica stopped is restarted
 *   split     `meridian debug split` at keys inside the workload's live
 *             key space, 1-3 per event (jh_nemesis_ranges.c)
 *   leader-transfer  `meridian debug transfer-lease` of random ranges
 *             (range 1 half the time) to another voter, 1-3 per event
 *   merge     `meridian debug merge` of ranges whose end lies inside the
 *             workload's key space, 1-3 per event (with split: after it in
 *             each round, so there are boundaries to remove)
 *
 * One fault at a time, each healed before the next, so a majority of range
 * 1's voters is always up and the cluster must stay available between
 * faults. The schedule (which fault, which node, how long) comes from a
 * PRNG seeded with --seed; kinds go round in a shuffled order so every
 * enabled class runs early, and the run does not end before each ran once.
 * Events are written to the history as comments with their times. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/mtime.h"
#include "tests/jepsen/jh_run.h"

extern char **environ;

static const char *const fault_names[JH_F_COUNT] = {
    "kill",      "pause",  "isolate",         "isolate-leader",
    "one-way",   "halves", "clock-skew",      "clock-skew-big",
    "disk-full", "split",  "leader-transfer", "netns-partition",
    "merge",
};

const char *jh_fault_name(jh_fault f)
{
    return f < JH_F_COUNT ? fault_names[f] : "?";
}

#define PARTITIONS                                                                                 \
    ((1u << JH_F_ISOLATE) | (1u << JH_F_LEADER) | (1u << JH_F_ONEWAY) | (1u << JH_F_HALVES))

int jh_nemesis_parse(const char *spec, unsigned *kinds)
{
    *kinds = 0;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "none")) continue;
        if (!strcmp(t, "kill"))
            *kinds |= 1u << JH_F_KILL;
        else if (!strcmp(t, "pause"))
            *kinds |= 1u << JH_F_PAUSE;
        else if (!strcmp(t, "partition"))
            *kinds |= PARTITIONS;
        else if (!strcmp(t, "all"))
            *kinds |= PARTITIONS | (1u << JH_F_KILL) | (1u << JH_F_PAUSE);
        else if (!strcmp(t, "clock-skew"))
            *kinds |= 1u << JH_F_SKEW;
        else if (!strcmp(t, "clock-skew-big"))
            *kinds |= 1u << JH_F_SKEW_BIG;
        else if (!strcmp(t, "disk-full"))
            *kinds |= 1u << JH_F_DISK;
        else if (!strcmp(t, "split"))
            *kinds |= 1u << JH_F_SPLIT;
        else if (!strcmp(t, "leader-transfer"))
            *kinds |= 1u << JH_F_TRANSFER;
        else if (!strcmp(t, "netns-partition"))
            *kinds |= 1u << JH_F_NETNS;
        else if (!strcmp(t, "merge"))
            *kinds |= 1u << JH_F_MERGE;
        else
            return MERR_INVALID;
    }
    return 0;
}

/* ---- the cluster file ---- */

int jh_cluster_load(jh_cluster *c, merr *e)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/nodes", c->dir);
    FILE *f = fopen(path, "r");
    if (!f) return merr_set(e, MERR_NOTFOUND, "%s: %s", path, strerror(errno));
    int n = 0, rc = 0;
    char line[1024];
    while (fgets(line, sizeof(line), f) && n < JH_MAX_NODES) {
        jh_node *d = &c->nodes[n];
        char http[64];
        if (sscanf(line, "%d %d %63s %63s %511s", &d->idx, &d->pid, d->rpc, http, d->store) != 5)
            continue;
        snprintf(path, sizeof(path), "%s/IDENTITY", d->store);
        mbuf id = MBUF_INIT;
        rc = mfs_read_all(path, 4096, &id, e);
        const char *p = NULL;
        if (!rc && !mbuf_append_u8(&id, 0)) p = strstr((const char *)id.data, "node_id=");
        d->id = p ? strtoull(p + 8, NULL, 10) : 0;
        mbuf_free(&id);
        if (!rc && !d->id) rc = merr_set(e, MERR_CORRUPT, "%s: no node_id", path);
        if (rc) break;
        n++;
    }
    fclose(f);
    if (!rc && n < 1) rc = merr_set(e, MERR_INVALID, "%s/nodes lists no node", c->dir);
    c->netns_prefix[0] = '\0';
    snprintf(path, sizeof(path), "%s/netns", c->dir);
    FILE *ns = fopen(path, "r"); /* "PREFIX SUBNET" in netns mode */
    if (ns) {
        if (fscanf(ns, "%31s", c->netns_prefix) != 1) c->netns_prefix[0] = '\0';
        fclose(ns);
    }
    c->n = rc ? 0 : n;
    return rc;
}

/* ---- running tools ---- */

static int tool_env(jh_cluster *c, char *const argv[], const char *start_flags, char *out,
                    size_t cap);

/* Runs argv with stdout to out (if given, NUL-terminated) or the log, stderr
 * to the log. Returns the exit status, or -1 if it could not run. */
int jh_tool(jh_cluster *c, char *const argv[], char *out, size_t cap)
{
    return tool_env(c, argv, NULL, out, cap);
}

/* jh_tool with MERIDIAN_START_FLAGS set to start_flags (NULL: inherited). */
static int tool_env(jh_cluster *c, char *const argv[], const char *start_flags, char *out,
                    size_t cap)
{
    int pfd[2] = {-1, -1};
    if (out && pipe2(pfd, O_CLOEXEC)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out ? pfd[1] : c->log_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, c->log_fd, 2);
    pid_t pid;
    char **envp = environ, *own[256], flags[1024];
    if (start_flags) { /* environ, with MERIDIAN_START_FLAGS replaced */
        size_t n = 0;
        for (char **p = environ; *p && n + 2 < sizeof(own) / sizeof(own[0]); p++)
            if (strncmp(*p, "MERIDIAN_START_FLAGS=", 21)) own[n++] = *p;
        snprintf(flags, sizeof(flags), "MERIDIAN_START_FLAGS=%s", start_flags);
        own[n++] = flags;
        own[n] = NULL;
        envp = own;
    }
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (out) {
        close(pfd[1]);
        size_t n = 0;
        ssize_t k;
        while (!rc && n + 1 < cap && (k = read(pfd[0], out + n, cap - 1 - n)) > 0) n += (size_t)k;
        out[n] = '\0';
        close(pfd[0]);
    }
    if (rc) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lc(jh_cluster *c, const char *cmd, int idx)
{
    char i[16];
    snprintf(i, sizeof(i), "%d", idx);
    char *argv[] = {"/bin/bash", (char *)c->lc, (char *)cmd, (char *)c->dir, i, NULL};
    return jh_tool(c, argv, NULL, 0);
}

static int faults(jh_cluster *c, const jh_node *d, const char *spec)
{
    char *argv[] = {(char *)c->bin, "debug",   "faults", "--insecure", "--host",
                    (char *)d->rpc, "--clear", "--spec", (char *)spec, NULL};
    return jh_tool(c, argv, NULL, 0);
}

/* The index into c->nodes of range 1's leaseholder, or -1. */
static int leader(jh_cluster *c)
{
    char out[64];
    char *argv[] = {"/bin/bash", (char *)c->lc, "leader", (char *)c->dir, NULL};
    if (jh_tool(c, argv, out, sizeof(out)) != 0) return -1;
    int idx = atoi(out);
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].idx == idx) return i;
    return -1;
}

/* ---- events ---- */

void jh_note(jh_cluster *c, jp_recorder *rec, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    int64_t now = mtime_mono_ns();
    char line[600];
    int n = snprintf(line, sizeof(line), "%" PRId64 " nemesis %s", now, text);
    if (rec) jp_recorder_comment(rec, line, NULL);
    if (n > 0) {
        dprintf(c->log_fd, "jp_run: %s\n", line);
    }
}

/* Sleeps ns in short slices, returning early once *stop is set. */
void jh_nap(int64_t ns, volatile sig_atomic_t *stop)
{
    int64_t until = mtime_mono_ns() + ns;
    for (int64_t now; !(stop && *stop) && (now = mtime_mono_ns()) < until;) {
        int64_t s = until - now < 100 * MTIME_MS ? until - now : 100 * MTIME_MS;
        struct timespec ts = {0, s};
        nanosleep(&ts, NULL);
    }
}

static int64_t between(rpc_rng *g, int64_t lo, int64_t hi)
{
    return hi > lo ? lo + (int64_t)(rpc_rng_next(g) % (uint64_t)(hi - lo)) : lo;
}

int jh_partition_cut(jh_cluster *c, jh_fault f, rpc_rng *g, int side[], const char **how,
                     char *what, size_t wcap)
{
    int n = c->n;
    if (n < 2) return -1;
    for (int i = 0; i < n; i++) side[i] = 0; /* 1: the cut-off side */
    int x = (int)(rpc_rng_next(g) % (uint64_t)n);
    if (f == JH_F_LEADER) {
        int l = leader(c);
        if (l >= 0) x = l; /* no leaseholder right now: any node will do */
    }
    if (f == JH_F_HALVES) {
        int order[JH_MAX_NODES];
        for (int i = 0; i < n; i++) order[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(rpc_rng_next(g) % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < n / 2; i++) side[order[i]] = 1;
    } else {
        side[x] = 1;
    }
    *how = "both";
    if (f == JH_F_ONEWAY) *how = rpc_rng_next(g) % 2 ? "out" : "in";
    size_t wl = (size_t)snprintf(what, wcap, "%s:", jh_fault_name(f));
    for (int i = 0; i < n; i++)
        if (side[i] && wl < wcap)
            wl += (size_t)snprintf(what + wl, wcap - wl, " %d", c->nodes[i].idx);
    if (f == JH_F_ONEWAY && wl < wcap)
        snprintf(what + wl, wcap - wl, " (%s)",
                 !strcmp(*how, "out") ? "sends lost" : "hears nothing");
    return 0;
}

int jh_partition_specs(jh_cluster *c, jh_fault f, rpc_rng *g, char spec[][JH_SPEC_MAX], char *what,
                       size_t wcap)
{
    int side[JH_MAX_NODES];
    const char *how;
    if (jh_partition_cut(c, f, g, side, &how, what, wcap)) return -1;
    int n = c->n;
    for (int i = 0; i < n; i++) {
        size_t l = 0;
        spec[i][0] = '\0';
        for (int j = 0; j < n; j++) {
            if (side[i] == side[j]) continue;
            /* One-way: only the cut-off node drops, in one direction. */
            if (f == JH_F_ONEWAY && !side[i]) continue;
            l += (size_t)snprintf(spec[i] + l, JH_SPEC_MAX - l, "%speer=%" PRIu64 ",partition=%s",
                                  l ? ";" : "", c->nodes[j].id, how);
            if (l >= JH_SPEC_MAX) return -1;
        }
    }
    return 0;
}

static int heal_faults(jh_cluster *c, jh_nemesis_stats *st)
{
    int bad = 0;
    for (int i = 0; i < c->n; i++)
        if (faults(c, &c->nodes[i], "") != 0) bad++;
    if (st) st->errors += bad;
    return bad;
}

static int pid_alive(int pid)
{
    if (kill(pid, 0) != 0) return 0;
    char path[64], stat[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');
    char state = 0;
    long threads = 1; /* field 20 of proc(5) */
    if (!p ||
        sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %ld",
               &state, &threads) < 1)
        return 1;
    /* A zombie is dead, but not while its other threads still exit ("Zl"):
     * they hold its sockets, so a restart on its ports would fail, and
     * local-cluster.sh still calls it running. */
    return !(state == 'Z' && threads <= 1);
}

/* ---- clock and disk faults ---- */

#define DEFAULT_START_FLAGS "--insecure --clock-source static --static-uncertainty 1ms"
#define SKEW_BOUND_MS       50 /* clock-skew: the skewed node's own bound */

/* Stops node d cleanly (SIGTERM; SIGKILL after 15 s). 0 once it is gone. */
static int stop_node(jh_cluster *c, const jh_node *d)
{
    if (!pid_alive(d->pid)) return 0;
    kill(d->pid, SIGCONT);
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 150 && pid_alive(d->pid); i++) jh_nap(100 * MTIME_MS, NULL);
    return pid_alive(d->pid) ? lc(c, "kill", d->idx) : 0;
}

/* Restarts node d with the cluster's flags plus extra (NULL: none). */
static int restart_with(jh_cluster *c, const jh_node *d, const char *extra)
{
    char i[16], flags[1024];
    snprintf(i, sizeof(i), "%d", d->idx);
    snprintf(flags, sizeof(flags), "%s %s", c->start_flags ? c->start_flags : DEFAULT_START_FLAGS,
             extra ? extra : "");
    char *argv[] = {"/bin/bash", (char *)c->lc, "restart", (char *)c->dir, i, NULL};
    return tool_env(c, argv, flags, NULL, 0);
}

static void log_path(const jh_node *d, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/logs/meridian.log", d->store);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n < 0 ? 0 : n;
}

/* Lines of path from byte `from` on that contain any of pats. */
static int count_lines(const char *path, long from, const char *const *pats, int npats)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    char line[4096];
    if (fseek(f, from, SEEK_SET) == 0)
        while (fgets(line, sizeof(line), f))
            for (int i = 0; i < npats; i++)
                if (strstr(line, pats[i])) {
                    n++;
                    break;
                }
    fclose(f);
    return n;
}

/* What a node logs when it will not hand out or accept a timestamp because
 * of its clock (timesvc: MERR_CLOCK; txn: a read timestamp ahead of it). */
static const char *const clock_refusal[] = {"cannot vouch", "in the future", "CLOCK",
                                            "clock offset"};
static const char *const disk_failure[] = {"log store write failed", "cannot persist"};
static const char *const replica_stopped[] = {"replica stops"};

/* Makes node d range 1's leaseholder if it can: a skewed clock matters most
 * where timestamps and leases are decided. While another node holds the
 * lease, that node is paused for longer than a lease (4 s), at most three
 * times, so the lease moves (to d or to a third node). Returns whether d
 * holds it. */
static int steer_lease(jh_cluster *c, const jh_node *d, jp_recorder *rec,
                       volatile sig_atomic_t *stop, jh_nemesis_stats *st)
{
    for (int attempt = 0; attempt < 6 && !(stop && *stop); attempt++) {
        merr e = {0};
        int l = jh_cluster_load(c, &e) ? -1 : leader(c);
        if (l >= 0 && c->nodes[l].idx == d->idx) return 1;
        if (attempt == 5) break;
        if (l < 0) { /* an election is running */
            jh_nap(1 * MTIME_S, stop);
            continue;
        }
        jh_node *o = &c->nodes[l];
        jh_note(c, rec, "pause leaseholder %d for 4s to move the lease", o->idx);
        if (kill(o->pid, SIGSTOP) != 0) st->errors++;
        jh_nap(4 * MTIME_S, NULL); /* never leave it stopped */
        if (kill(o->pid, SIGCONT) != 0) st->errors++;
        jh_nap(1 * MTIME_S, stop);
    }
    return 0;
}

/* clock-skew / clock-skew-big on node d: restart it skewed, try to make it
 * the leaseholder, hold, restart it with a true clock. */
static void skew_fault(jh_cluster *c, jh_fault f, jh_node *d, const char *role, int64_t hold,
                       rpc_rng *g, jp_recorder *rec, volatile sig_atomic_t *stop,
                       jh_nemesis_stats *st)
{
    int big = f == JH_F_SKEW_BIG;
    /* Within: below the node's own (widened) bound, so TrueTime still holds.
     * Beyond: past the 500 ms maximum uncertainty and the HLC's max offset,
     * while the node believes its 1 ms bound. */
    int64_t ms = big ? between(g, 600, 2000) : between(g, 10, SKEW_BOUND_MS - 5);
    const char *sign = rpc_rng_next(g) % 2 ? "-" : "";
    char extra[160], logf[600];
    if (big)
        snprintf(extra, sizeof(extra), "--testing-clock-skew %s%" PRId64 "ms", sign, ms);
    else
        snprintf(extra, sizeof(extra),
                 "--static-uncertainty %dms --testing-clock-skew %s%" PRId64 "ms", SKEW_BOUND_MS,
                 sign, ms);
    log_path(d, logf, sizeof(logf));
    jh_note(c, rec, "start %s node %d%s: %s", jh_fault_name(f), d->idx, role, extra);
    if (stop_node(c, d) != 0) st->errors++;
    long from = file_size(logf);
    if (restart_with(c, d, extra) != 0) st->errors++;
    c->skewed[d->idx % JH_MAX_NODES] = 1;
    int led = steer_lease(c, d, rec, stop, st);
    st->skew_led += led;
    jh_note(c, rec, "%s: node %d %s range 1's lease", jh_fault_name(f), d->idx,
            led ? "holds" : "did not get");
    jh_nap(hold, stop);
    int refusals = count_lines(logf, from, clock_refusal, 4);
    merr e = {0};
    if (jh_cluster_load(c, &e) == 0) { /* the new pid */
        for (int i = 0; i < c->n; i++)
            if (c->nodes[i].idx == d->idx) d = &c->nodes[i];
    }
    if (stop_node(c, d) != 0) st->errors++;
    int rc = restart_with(c, d, NULL);
    if (rc != 0) st->errors++;
    c->skewed[d->idx % JH_MAX_NODES] = 0;
    if (big) st->clock_refusals += refusals;
    jh_note(c, rec, "end %s: node %d restarted with a true clock%s; %d clock refusals logged",
            jh_fault_name(f), d->idx, rc ? " (FAILED)" : "", refusals);
}

/* disk-full on node d: its log writes fail with ENOSPC for the hold. */
static void disk_fault(jh_cluster *c, jh_node *d, const char *role, int64_t hold, jp_recorder *rec,
                       volatile sig_atomic_t *stop, jh_nemesis_stats *st)
{
    char flag[600], logf[600];
    snprintf(flag, sizeof(flag), "%s/TESTING_DISK_FULL", d->store);
    log_path(d, logf, sizeof(logf));
    long from = file_size(logf);
    jh_note(c, rec, "start disk-full node %d%s (pid %d)", d->idx, role, d->pid);
    int fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        st->errors++;
    else
        close(fd);
    jh_nap(hold, stop);
    int alive = pid_alive(d->pid);
    if (unlink(flag) != 0 && errno != ENOENT) st->errors++;
    int failures = count_lines(logf, from, disk_failure, 2);
    int stopped = count_lines(logf, from, replica_stopped, 1);
    st->disk_failures += failures;
    const char *what = "still serving";
    int rc = 0;
    if (!alive) {
        st->disk_crashes++;
        what = "CRASHED, restarted";
        rc = lc(c, "restart", d->idx);
    } else if (stopped) {
        /* A replica that stopped after a failed write (other than no
         * space, which it retries by itself: replica_retry.c): a restart
         * recovers it from what is durable. */
        st->disk_restarts++;
        what = "replica stopped, restarted";
        if (stop_node(c, d) != 0) st->errors++;
        rc = restart_with(c, d, NULL);
    }
    if (rc != 0) st->errors++;
    jh_note(c, rec, "end disk-full: node %d has room again; %d failed log writes logged; %s%s",
            d->idx, failures, what, rc ? " (FAILED)" : "");
}

/* Injects fault f, holds it, heals it. */
static void one_fault(jh_cluster *c, jh_fault f, const jh_nemesis_opts *o, rpc_rng *g,
                      jp_recorder *rec, volatile sig_atomic_t *stop, jh_nemesis_stats *st)
{
    merr e = {0};
    if (jh_cluster_load(c, &e)) { /* pids change at restarts */
        jh_note(c, rec, "error: %s", e.msg);
        st->errors++;
        return;
    }
    int64_t hold = between(g, o->hold_min_ns, o->hold_max_ns);
    if (f == JH_F_NETNS) { /* below the process: jh_netns.c */
        st->count[f]++;
        jh_netns_fault(c, hold, g, rec, stop, st);
        return;
    }
    if (f == JH_F_SPLIT || f == JH_F_TRANSFER || f == JH_F_MERGE) { /* ranges, not nodes */
        st->count[f]++;
        jh_ranges_fault(c, f, o, hold, g, rec, stop, st);
        return;
    }
    int i = (int)(rpc_rng_next(g) % (uint64_t)c->n);
    /* Clock and disk faults matter on a node that holds range 1: its voters
     * are the first three nodes local-cluster.sh starts. */
    if (f >= JH_F_SKEW && c->n > 3) i %= 3;
    const char *role = "";
    if ((f == JH_F_KILL || f == JH_F_PAUSE || f >= JH_F_SKEW) && rpc_rng_next(g) % 2) {
        /* Half the time the leaseholder: losing it is what tests the lease
         * hand-over, and a random pick would hit it only 1/N of the time. */
        int l = leader(c);
        if (l >= 0) i = l, role = " (leaseholder)";
    }
    jh_node *d = &c->nodes[i];
    st->count[f]++;
    if (f == JH_F_KILL) {
        jh_note(c, rec, "start kill node %d%s (pid %d)", d->idx, role, d->pid);
        if (lc(c, "kill", d->idx) != 0) st->errors++;
        jh_nap(hold, stop);
        int rc = lc(c, "restart", d->idx);
        if (rc != 0) st->errors++;
        jh_note(c, rec, "end kill: node %d restarted%s", d->idx, rc ? " (FAILED)" : "");
    } else if (f == JH_F_SKEW || f == JH_F_SKEW_BIG) {
        skew_fault(c, f, d, role, hold, g, rec, stop, st);
    } else if (f == JH_F_DISK) {
        disk_fault(c, d, role, hold, rec, stop, st);
    } else if (f == JH_F_PAUSE) {
        jh_note(c, rec, "start pause node %d%s (pid %d)", d->idx, role, d->pid);
        if (kill(d->pid, SIGSTOP) != 0) st->errors++;
        jh_nap(hold, stop);
        if (kill(d->pid, SIGCONT) != 0) st->errors++;
        jh_note(c, rec, "end pause: node %d resumed", d->idx);
    } else {
        char spec[JH_MAX_NODES][JH_SPEC_MAX], what[256];
        if (jh_partition_specs(c, f, g, spec, what, sizeof(what))) {
            st->count[f]--;
            return;
        }
        jh_note(c, rec, "start partition %s", what);
        for (int j = 0; j < c->n; j++)
            if (spec[j][0] && faults(c, &c->nodes[j], spec[j]) != 0) st->errors++;
        jh_nap(hold, stop);
        heal_faults(c, st);
        jh_note(c, rec, "end partition: healed");
    }
}

void jh_shuffle_round(int *classes, int n, rpc_rng *g)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rpc_rng_next(g) % (uint64_t)(i + 1));
        int t = classes[i];
        classes[i] = classes[j];
        classes[j] = t;
    }
    /* split before merge: a merge only removes boundaries inside the key
     * space, and without this a round could start with nothing to merge
     * (and a short run never merge at all). */
    int si = -1, mi = -1;
    for (int k = 0; k < n; k++) {
        if (classes[k] == JH_F_SPLIT) si = k;
        if (classes[k] == JH_F_MERGE) mi = k;
    }
    if (mi >= 0 && si > mi) classes[si] = JH_F_MERGE, classes[mi] = JH_F_SPLIT;
}

int jh_nemesis_run(jh_cluster *c, const jh_nemesis_opts *o, jp_recorder *rec,
                   volatile sig_atomic_t *stop, jh_nemesis_stats *st, merr *e)
{
    rpc_rng g;
    rpc_rng_seed(&g, o->seed ^ 0x6e656d65736973ULL); /* "nemesis": apart from the clients' */
    unsigned kinds = o->kinds;
    if ((kinds & (1u << JH_F_NETNS)) && !c->netns_prefix[0])
        snprintf(st->netns_skipped, sizeof(st->netns_skipped),
                 "the cluster is not in network namespaces (tests/jepsen/run puts it there "
                 "when the machine allows: root, ip, iptables, ip netns add)");
    if ((kinds & (1u << JH_F_NETNS)) &&
        (st->netns_skipped[0] ||
         jh_netns_probe(getenv("PATH"), st->netns_skipped, sizeof(st->netns_skipped)))) {
        /* Said in the history, the log and the summary; the others still run. */
        jh_note(c, rec, "netns-partition skipped: %s", st->netns_skipped);
        kinds &= ~(1u << JH_F_NETNS);
    }
    if (!kinds) {
        jh_nap(o->end_ns - mtime_mono_ns(), stop);
        return 0;
    }
    /* Partition variants go round in their own shuffled cycle. */
    jh_fault parts[JH_F_COUNT];
    int nparts = 0, pnext = 0;
    for (int f = JH_F_ISOLATE; f <= JH_F_HALVES; f++)
        if (kinds & (1u << f)) parts[nparts++] = (jh_fault)f;
    /* A round: kill, pause, one partition, the clock and disk faults (the
     * enabled ones), shuffled. Classes are fault numbers; JH_F_COUNT stands
     * for "the next partition". */
    int classes[JH_F_COUNT], nclasses = 0;
    if (kinds & (1u << JH_F_KILL)) classes[nclasses++] = JH_F_KILL;
    if (kinds & (1u << JH_F_PAUSE)) classes[nclasses++] = JH_F_PAUSE;
    if (nparts) classes[nclasses++] = JH_F_COUNT;
    for (int f = JH_F_SKEW; f < JH_F_COUNT; f++)
        if (kinds & (1u << f)) classes[nclasses++] = f;
    int rounds = 0;
    while (!*stop && (mtime_mono_ns() < o->end_ns || rounds == 0)) {
        jh_shuffle_round(classes, nclasses, &g);
        for (int k = 0; k < nclasses && !*stop; k++) {
            jh_nap(between(&g, o->quiet_min_ns, o->quiet_max_ns), stop);
            if (*stop || (rounds > 0 && mtime_mono_ns() >= o->end_ns)) break;
            jh_fault f = (jh_fault)classes[k];
            if (f == JH_F_COUNT) {
                if (pnext == 0)
                    for (int i = nparts - 1; i > 0; i--) {
                        int j = (int)(rpc_rng_next(&g) % (uint64_t)(i + 1));
                        jh_fault t = parts[i];
                        parts[i] = parts[j];
                        parts[j] = t;
                    }
                f = parts[pnext];
                pnext = (pnext + 1) % nparts;
            }
            one_fault(c, f, o, &g, rec, stop, st);
        }
        rounds++;
    }
    (void)e;
    return 0;
}

int jh_nemesis_heal_all(jh_cluster *c, jp_recorder *rec, jh_nemesis_stats *st, merr *e)
{
    int rc = jh_cluster_load(c, e);
    if (rc) return rc;
    int bad = 0;
    for (int i = 0; i < c->n; i++) {
        jh_node *d = &c->nodes[i];
        char flag[600];
        snprintf(flag, sizeof(flag), "%s/TESTING_DISK_FULL", d->store);
        unlink(flag); /* the disk has room again */
        if (pid_alive(d->pid)) {
            kill(d->pid, SIGCONT);
            if (c->skewed[d->idx % JH_MAX_NODES]) { /* interrupted mid-skew: a true clock */
                if (stop_node(c, d) != 0 || restart_with(c, d, NULL) != 0) bad++;
                c->skewed[d->idx % JH_MAX_NODES] = 0;
            }
        } else if (lc(c, "restart", d->idx) != 0) {
            bad++;
        }
    }
    if (!bad && jh_cluster_load(c, e)) return e->code;
    /* A node just restarted may take a moment to serve the admin method. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (!heal_faults(c, NULL)) break;
        if (attempt == 4) bad++;
        jh_nap(500 * MTIME_MS, NULL);
    }
    if (st) st->errors += bad;
    jh_note(c, rec, "heal all%s", bad ? " (FAILED)" : "");
    return bad ? merr_set(e, MERR_UNAVAILABLE, "could not heal the cluster (see the log)") : 0;
}
