/* `meridian bench ranges --count N [--duration D]`: what idle ranges cost.
 *
 * One node in-process (an rpc endpoint on 127.0.0.1, a host on a temporary
 * store) gets N one-voter ranges over disjoint spans, created the way range 1
 * is bootstrapped (replica_create + campaign). Once every group is quiet (no
 * replica left in the tick set) it measures for D: resident memory
 * (/proc/self/status VmRSS), CPU (getrusage user+sys over wall time, as % of
 * one core) and open file descriptors, in total and per range. Issue #9's
 * target: 10,000 idle ranges under 1 GiB and under 5% of a core. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/cli.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mtime.h"
#include "rpc/rpc.h"
#include "server/commands.h"
#include "server/host.h"
#include "server/replica.h"

typedef struct br {
    rpc_node *rpc;
    host h;
    int open;
    char dir[256];
    int64_t next, count; /* ranges created so far / wanted */
    size_t awake, quiet_leaders;
    size_t probed, probed_ok; /* loop thread */
    merr e;
    int rc;
} br;

static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && sscanf(line + n, ": %ld kB", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        if (de->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n - 1; /* the one opendir holds */
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static void open_host(void *arg)
{
    br *b = arg;
    host_config hc = {.store_dir = b->dir, .node_id = 1};
    tt_config_default(&hc.clock);
    hc.clock.source = TT_SOURCE_STATIC;
    hc.clock.static_uncertainty_ns = 1000000;
    b->rc = host_open(&b->h, b->rpc, &hc, &b->e);
    b->open = 1; /* host_close also cleans up a half-open host */
}

/* Creates up to 100 ranges per call, so the loop serves its timers between. */
static void create_some(void *arg)
{
    br *b = arg;
    paxos_members g = {.nvoters = 1, .voters = {1}};
    for (int k = 0; k < 100 && b->next < b->count && !b->rc; k++, b->next++) {
        char s[32], t[32];
        /* Disjoint spans [b%08d, b%08d+1); ids from 2 (range 1 is the node's own). */
        snprintf(s, sizeof(s), "b%08" PRId64, b->next);
        snprintf(t, sizeof(t), "b%08" PRId64, b->next + 1);
        range_desc d = {.range_id = (uint64_t)b->next + 2,
                        .generation = 1,
                        .start = (const uint8_t *)s,
                        .start_len = strlen(s),
                        .end = (const uint8_t *)t,
                        .end_len = strlen(t)};
        replica *r;
        if ((b->rc = replica_create(&b->h, &d, &g, &r, &b->e))) break;
        if ((b->rc = host_add(&b->h, r))) {
            replica_free(r);
            merr_set(&b->e, b->rc, "out of memory");
            break;
        }
        replica_campaign(r); /* one voter: it elects itself at once */
    }
}

static void count_quiet(void *arg)
{
    br *b = arg;
    b->awake = host_awake_count(&b->h);
    b->quiet_leaders = 0;
    for (size_t i = 0; i < b->h.nreps; i++) {
        paxos_group *g = replica_group(b->h.reps[i]);
        b->quiet_leaders += paxos_get_role(g) == PAXOS_LEADER && paxos_get_quiesced(g);
    }
}

/* After the idle spell: one write to every range, through lease on demand
 * (a quiet leader's lease lapsed) and a reopen of its closed store, then
 * read back. Proves the ranges were asleep, not gone. */
typedef struct probe {
    br *b;
    replica *r;
    char key[32];
} probe;

static void probe_written(void *arg, int code, const char *msg, uint64_t ts)
{
    probe *p = arg;
    (void)msg;
    (void)ts;
    if (code == 0) {
        uint8_t *v = NULL;
        size_t vlen = 0;
        range *st = replica_store(p->r);
        if (st &&
            range_get(st, (const uint8_t *)p->key, strlen(p->key), RANGE_TS_MAX, &v, &vlen, NULL) ==
                0 &&
            vlen == 2 && memcmp(v, "ok", 2) == 0)
            p->b->probed_ok++;
        free(v);
    }
    p->b->probed++;
    free(p);
}

static void probe_lease(void *arg, int code)
{
    probe *p = arg;
    merr e = {0};
    range_write w = {.key = (const uint8_t *)p->key,
                     .klen = strlen(p->key),
                     .val = (const uint8_t *)"ok",
                     .vlen = 2};
    if (code || replica_write(p->r, &w, 1, mtime_mono_ns() + 30 * MTIME_S, probe_written, p, &e))
        probe_written(p, code ? code : e.code, NULL, 0);
}

static void probe_all(void *arg)
{
    br *b = arg;
    for (size_t i = 0; i < b->h.nreps; i++) {
        probe *p = calloc(1, sizeof(*p));
        if (!p) {
            b->probed++;
            continue;
        }
        p->b = b;
        p->r = b->h.reps[i];
        snprintf(p->key, sizeof(p->key), "b%08" PRIu64 "/probe", replica_id(p->r) - 2);
        int rc = replica_lease_wait(p->r, 0, probe_lease, p);
        if (rc == 0)
            probe_lease(p, 0);
        else if (rc < 0)
            probe_written(p, rc, NULL, 0);
    }
}

static void count_probed(void *arg)
{
    (void)arg;
}

static void close_host(void *arg)
{
    br *b = arg;
    if (b->open) host_close(&b->h);
    b->open = 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cmd_bench_ranges(int argc, char **argv)
{
    int64_t count = 1000, duration = 10 * MTIME_S;
    const char *parent = NULL;
    const cli_flag flags[] = {
        {"count", CLI_INT, &count, "N", "idle ranges on the node (default 1000)"},
        {"duration", CLI_DURATION, &duration, NULL, "how long to measure them idle (default 10s)"},
        {"dir", CLI_STR, &parent, "DIR",
         "where the temporary store goes (default $TMPDIR or /tmp)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[--count N] [--duration D]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || count < 1 || count > 1000000 || duration <= 0) {
        fprintf(stderr, "%s: 1 <= --count <= 1000000, --duration > 0\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    if (!parent) parent = getenv("TMPDIR");
    if (!parent || !*parent) parent = "/tmp";
    mlog_set_level(MLOG_WARN); /* one "replica" line per range would drown the figures */
    br *b = calloc(1, sizeof(*b));
    if (!b) return 1;
    b->count = count;
    snprintf(b->dir, sizeof(b->dir), "%s/meridian-bench-ranges-XXXXXX", parent);
    if (!mkdtemp(b->dir)) {
        fprintf(stderr, "%s: cannot create a directory under %s\n", argv[0], parent);
        free(b);
        return 1;
    }
    rc = 1;
    rpc_config rc_cfg;
    rpc_config_defaults(&rc_cfg);
    rc_cfg.node_id = 1;
    rc_cfg.cluster_id = "bench-ranges";
    rc_cfg.listen_addr = "127.0.0.1:0";
    long rss0 = status_kib("VmRSS"), fd0 = open_fds();
    if (rpc_node_start(&rc_cfg, &b->rpc, &b->e)) {
        fprintf(stderr, "%s: rpc: %s\n", argv[0], b->e.msg);
        goto out;
    }
    rpc_node_run_sync(b->rpc, open_host, b);
    if (b->rc) {
        fprintf(stderr, "%s: host: %s\n", argv[0], b->e.msg);
        goto out;
    }
    printf("creating %" PRId64 " ranges in %s\n", count, b->dir);
    int64_t t0 = mtime_mono_ns(), last = t0;
    while (b->next < count && !b->rc) {
        rpc_node_run_sync(b->rpc, create_some, b);
        /* Every REPLICA_OPEN_IDLE_MAX new ranges, let them go quiet (and
         * close their stores) before creating more: creation holds a store
         * open, and 10,000 at once would pass the fd limit. */
        if (b->next % REPLICA_OPEN_IDLE_MAX < 100) {
            for (int i = 0; i < 600; i++) { /* a hang guard: 60 s */
                rpc_node_run_sync(b->rpc, count_quiet, b);
                if (b->awake == 0) break;
                sleep_ms(100);
            }
        }
        int64_t now = mtime_mono_ns();
        if (now - last >= MTIME_S || b->next == count) {
            last = now;
            rpc_node_run_sync(b->rpc, count_quiet, b);
            printf("  %7" PRId64 " ranges  %6.1fs  rss=%ld MiB  fds=%ld  quiet=%zu\n", b->next,
                   (double)(now - t0) / 1e9, status_kib("VmRSS") / 1024, open_fds(),
                   b->quiet_leaders);
            fflush(stdout);
        }
    }
    if (b->rc) {
        fprintf(stderr, "%s: range %" PRId64 ": %s\n", argv[0], b->next + 2, b->e.msg);
        goto out;
    }
    double create_s = (double)(mtime_mono_ns() - t0) / 1e9;
    /* Quiet: every leader went quiet and nothing is ticked any more. The
     * limit only guards a hang (quiescence takes 20 ticks, 1 s). */
    int64_t q0 = mtime_mono_ns();
    for (;;) {
        rpc_node_run_sync(b->rpc, count_quiet, b);
        if (b->awake == 0 && b->quiet_leaders == (size_t)count) break;
        if (mtime_mono_ns() - q0 > 120 * MTIME_S) {
            fprintf(stderr, "%s: still %zu awake, %zu of %" PRId64 " quiet after 120 s\n", argv[0],
                    b->awake, b->quiet_leaders, count);
            goto out;
        }
        sleep_ms(100);
    }
    printf("all %" PRId64 " quiet after %.1fs (created in %.1fs, %.0f ranges/s)\n", count,
           (double)(mtime_mono_ns() - q0) / 1e9, create_s, (double)count / create_s);
    int64_t w0 = mtime_mono_ns(), c0 = cpu_ns();
    sleep_ms((int)(duration / MTIME_MS));
    int64_t w1 = mtime_mono_ns(), c1 = cpu_ns();
    rpc_node_run_sync(b->rpc, count_quiet, b);
    long rss_held = status_kib("VmRSS");
    malloc_trim(0); /* what the ranges use, not what malloc kept from creating them */
    long rss = status_kib("VmRSS"), fds = open_fds();
    double cpu = 100.0 * (double)(c1 - c0) / (double)(w1 - w0);
    printf("idle %" PRId64 " ranges for %.1fs:\n", count, (double)(w1 - w0) / 1e9);
    printf("  rss  %8.1f MiB  (%.1f KiB per range; %.1f MiB before the node started;"
           " %.1f MiB before malloc_trim)\n",
           (double)rss / 1024, (double)(rss - rss0) / (double)count, (double)rss0 / 1024,
           (double)rss_held / 1024);
    printf("  cpu  %8.2f %% of one core  (%.4f %% per 1k ranges)\n", cpu,
           cpu * 1000 / (double)count);
    printf("  fds  %8ld  (%.2f per range)\n", fds, (double)(fds - fd0) / (double)count);
    printf("  awake replicas at the end: %zu\n", b->awake);
    printf("target (issue #9, at 10k ranges): rss < 1024 MiB, cpu < 5%%\n");
    rpc_node_run_sync(b->rpc, probe_all, b);
    for (int i = 0; i < 1200; i++) {                /* a hang guard: 120 s */
        rpc_node_run_sync(b->rpc, count_probed, b); /* a barrier: reads below are loop-ordered */
        if (b->probed == (size_t)count) break;
        sleep_ms(100);
    }
    printf("woke every range with one write: %zu of %" PRId64 " written and read back\n",
           b->probed_ok, count);
    if (b->probed_ok != (size_t)count) goto out;
    rc = 0;
out:
    if (b->rpc) {
        rpc_node_run_sync(b->rpc, close_host, b);
        rpc_node_stop(b->rpc);
    }
    merr e = {0};
    if (mfs_remove_tree(b->dir, &e))
        fprintf(stderr, "%s: cannot remove %s\n", argv[0], merr_msg(&e));
    free(b);
    return rc;
}
