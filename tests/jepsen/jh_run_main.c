/* jp_run: runs one Jepsen-style workload against a running cluster while
 * the nemesis injects faults, and writes the history (see jh_run.h and
 * docs/jepsen.md "The harness"). tests/jepsen/run wraps it: it starts the
 * cluster, calls this, stops every process and runs jp_check.
 *
 * Phases: clients and nemesis run for --duration (and until each enabled
 * fault class ran once); every fault is healed (dead nodes restarted, paused
 * ones resumed, rpc faults cleared); the clients stop; the harness waits for
 * a leaseholder to answer; the workload's final reads run. The summary
 * (op counts by outcome, faults, recovery time) goes to stdout.
 *
 * Exit status: 0 when the history is complete, 1 when the run could not
 * finish it (the cluster could not be healed or did not recover, recording
 * failed), 2 on usage errors. */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/mtime.h"
#include "tests/jepsen/jh_run.h"

static volatile sig_atomic_t interrupted;
static jh_run *signalled_run; /* whose final reads a signal stops */

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (signalled_run) atomic_store(&signalled_run->interrupted, 1); /* lock-free: safe here */
}

int jh_invoke(jh_worker *w, jp_op *op, merr *e)
{
    op->process = w->process;
    op->type = JP_INVOKE;
    op->time = mtime_mono_ns();
    int rc = jp_recorder_add(w->run->rec, op, e);
    if (rc) atomic_store(&w->run->record_failed, 1);
    return rc;
}

int jh_complete(jh_worker *w, jp_op *op, merr *e)
{
    op->process = w->process;
    op->time = mtime_mono_ns();
    int rc = jp_recorder_add(w->run->rec, op, e);
    if (rc) {
        atomic_store(&w->run->record_failed, 1);
        return rc;
    }
    int t = op->type == JP_OK ? JH_STAT_OK : op->type == JP_FAIL ? JH_STAT_FAIL : JH_STAT_INFO;
    atomic_fetch_add(&w->run->stats[op->f][t], 1);
    /* Jepsen: a process with an unknown outcome cannot go on. */
    if (op->type == JP_INFO) w->process = atomic_fetch_add(&w->run->next_process, 1);
    return 0;
}

static void *worker_main(void *arg)
{
    jh_worker *w = arg;
    while (!atomic_load(&w->run->stop) && !interrupted) {
        merr e = {0};
        if (w->run->wl->op(w, &e)) {
            fprintf(stderr, "jp_run: client %d: %s\n", w->idx, merr_msg(&e));
            break;
        }
    }
    return NULL;
}

typedef struct nemesis_arg {
    jh_run *run;
    jh_nemesis_opts opts;
    jh_nemesis_stats st;
} nemesis_arg;

static void *nemesis_main(void *arg)
{
    nemesis_arg *n = arg;
    merr e = {0};
    if (jh_nemesis_run(&n->run->cluster, &n->opts, n->run->rec, &interrupted, &n->st, &e))
        fprintf(stderr, "jp_run: nemesis: %s\n", merr_msg(&e));
    return NULL;
}

/* Waits until a strong read is answered; returns how long it took, or -1. */
static int64_t wait_recovered(jh_worker *w, int64_t limit_ns)
{
    int64_t t0 = mtime_mono_ns();
    while (!interrupted && mtime_mono_ns() - t0 < limit_ns) {
        int found;
        char val[16];
        merr why = {0};
        if (jh_kv_get(w->cl, "jp/probe", mtime_mono_ns() + 2 * MTIME_S, &found, val, sizeof(val),
                      &why) == JH_OK)
            return mtime_mono_ns() - t0;
    }
    return -1;
}

static void print_summary(jh_run *r, const char *nemesis, int64_t secs_ns, nemesis_arg *n,
                          int64_t recovery_ns)
{
    printf("workload %s\nnemesis %s\nseed %" PRIu64 "\nnodes %d\nclients %d\n", r->wl->name,
           nemesis, r->seed, r->cluster.n, r->clients);
    printf("run_seconds %.1f\n", (double)secs_ns / 1e9);
    uint64_t total = 0;
    for (int f = 0; f <= JP_F_MEMBERS; f++) {
        uint64_t ok = atomic_load(&r->stats[f][JH_STAT_OK]);
        uint64_t fail = atomic_load(&r->stats[f][JH_STAT_FAIL]);
        uint64_t info = atomic_load(&r->stats[f][JH_STAT_INFO]);
        if (!(ok + fail + info)) continue;
        total += ok + fail + info;
        printf("ops %s ok=%" PRIu64 " fail=%" PRIu64 " info=%" PRIu64 "\n", jp_fn_name((jp_fn)f),
               ok, fail, info);
    }
    printf("ops_total %" PRIu64 "\nfaults", total);
    for (int f = 0; f < JH_F_COUNT; f++)
        printf(" %s=%d", jh_fault_name((jh_fault)f), n->st.count[f]);
    printf(" tool_errors=%d\n", n->st.errors);
    printf("nemesis_effects skewed_leaseholder=%d clock_refusals=%d disk_failures=%d "
           "disk_crashes=%d disk_restarts=%d\n",
           n->st.skew_led, n->st.clock_refusals, n->st.disk_failures, n->st.disk_crashes,
           n->st.disk_restarts);
    if (n->st.netns_skipped[0]) printf("netns_partition skipped: %s\n", n->st.netns_skipped);
    if (n->opts.kinds & ((1u << JH_F_SPLIT) | (1u << JH_F_TRANSFER) | (1u << JH_F_MERGE)))
        printf("nemesis_ranges splits=%d splits_refused=%d transfers=%d transfers_refused=%d "
               "merges=%d merges_refused=%d merges_idle=%d\n",
               n->st.splits, n->st.splits_refused, n->st.transfers, n->st.transfers_refused,
               n->st.merges, n->st.merges_refused, n->st.merges_idle);
    if (recovery_ns >= 0)
        printf("recovery_seconds %.2f\n", (double)recovery_ns / 1e9);
    else
        printf("recovery_seconds never\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *cluster = NULL, *lc = NULL, *bin = getenv("MERIDIAN_BIN"), *history = NULL;
    const char *workload = NULL, *nemesis = "none";
    int64_t duration = 20 * MTIME_S, seed = 1, clients = 5, keys = 3, ops_per_key = 200;
    int64_t accounts = 8, balance = 100, split = 0;
    int64_t op_timeout = 5 * MTIME_S, quiet_max = 3 * MTIME_S, hold_max = 6 * MTIME_S;
    int testing_bug = 0;
    const cli_flag flags[] = {
        {"cluster", CLI_STR, &cluster, "DIR", "the local-cluster.sh folder (DIR/nodes)"},
        {"local-cluster", CLI_STR, &lc, "PATH", "deploy/local-cluster.sh"},
        {"meridian", CLI_STR, &bin, "PATH", "the meridian binary (default $MERIDIAN_BIN)"},
        {"history", CLI_STR, &history, "FILE", "where the history goes"},
        {"workload", CLI_STR, &workload, "W", "register|set|bank|list-append"},
        {"nemesis", CLI_STR, &nemesis, "N",
         "none|kill|pause|partition|all|clock-skew|clock-skew-big|disk-full|split|"
         "leader-transfer|netns-partition|merge, or a list"},
        {"duration", CLI_DURATION, &duration, NULL, "how long clients run (default 20s)"},
        {"seed", CLI_INT, &seed, NULL, "seeds the schedule and the clients' choices"},
        {"clients", CLI_INT, &clients, NULL, "client threads (default 5)"},
        {"keys", CLI_INT, &keys, NULL, "register: keys in use at once (default 3)"},
        {"ops-per-key", CLI_INT, &ops_per_key, NULL,
         "register, list-append: picks of a key before it retires (200)"},
        {"accounts", CLI_INT, &accounts, NULL, "bank: accounts (default 8)"},
        {"balance", CLI_INT, &balance, NULL, "bank: each account's first balance (default 100)"},
        {"split", CLI_INT, &split, NULL,
         "bank, list-append: pre-split the table into N ranges (needs `meridian debug split`)"},
        {"op-timeout", CLI_DURATION, &op_timeout, NULL, "give an op up after this (default 5s)"},
        {"quiet-max", CLI_DURATION, &quiet_max, NULL, "longest gap between faults (3s; min 1/3)"},
        {"hold-max", CLI_DURATION, &hold_max, NULL, "longest fault (6s; min 1/3 of it)"},
        {"testing-bug", CLI_BOOL, &testing_bug, NULL,
         "record one wrong final read (checks that a bad history fails the run)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--cluster DIR --local-cluster PATH --history FILE --workload W",
                       flags, argc, argv, &npos, &done);
    if (done) return rc;
    jh_run run = {0};
    unsigned kinds = 0;
    if (!cluster || !lc || !bin || !history || !workload || npos ||
        !(run.wl = jh_workload_find(workload)) || jh_nemesis_parse(nemesis, &kinds) ||
        clients < 1 || clients > 256 || keys < 1 || ops_per_key < 1 || duration < 0 ||
        accounts < 2 || accounts > 100000 || balance < 0 || split < 0 || split > 1000 ||
        op_timeout <= 0 || quiet_max <= 0 || hold_max <= 0) {
        fprintf(stderr,
                "%s: need --cluster, --local-cluster, --meridian (or MERIDIAN_BIN), --history,\n"
                "  --workload %s, --nemesis none|kill|pause|partition|all; 1 <= --clients <= 256\n",
                argv[0], jh_workload_names());
        return CLI_EXIT_USAGE;
    }
    if (mlog_min_level < MLOG_ERROR) mlog_set_level(MLOG_ERROR);
    signalled_run = &run;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    merr e = {0};
    run.cluster = (jh_cluster){.dir = cluster,
                               .lc = lc,
                               .bin = bin,
                               .log_fd = 2,
                               .start_flags = getenv("MERIDIAN_START_FLAGS")};
    run.clients = (int)clients;
    run.seed = (uint64_t)seed;
    run.op_timeout_ns = op_timeout;
    run.final_timeout_ns = 30 * MTIME_S;
    run.keys = (int)keys;
    run.ops_per_key = (int)ops_per_key;
    run.accounts = (int)accounts;
    run.balance = balance;
    atomic_init(&run.testing_bug, testing_bug);
    atomic_init(&run.next_process, clients);
    atomic_init(&run.stop, 0);
    atomic_init(&run.record_failed, 0);
    jh_worker *ws = calloc((size_t)clients, sizeof(*ws));
    pthread_t *th = calloc((size_t)clients, sizeof(*th));
    int started = 0, status = 1;
    pthread_t nt;
    int nemesis_started = 0;
    nemesis_arg nem = {.run = &run};
    int64_t t0 = mtime_mono_ns(), recovery = -1;
    if (!ws || !th) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        goto out;
    }
    if (jh_cluster_load(&run.cluster, &e) || jh_workload_init(&run, &e) ||
        jp_recorder_open(history, &run.rec, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        goto out;
    }
    for (int i = 0; i < run.cluster.n; i++) run.hosts[i] = run.cluster.nodes[i].rpc;
    run.nhosts = run.cluster.n;
    for (int i = 0; i < clients; i++) {
        jh_worker *w = &ws[i];
        *w = (jh_worker){.run = &run, .idx = i, .process = i};
        rpc_rng_seed(&w->rng, (uint64_t)seed * 1000003u + (uint64_t)i);
        if (jh_client_open(run.hosts, run.nhosts, (uint64_t)seed + (uint64_t)i, &w->cl, &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg);
            goto out;
        }
    }
    if (run.wl->setup && run.wl->setup(&ws[0], &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        goto out;
    }
    if (!strcmp(run.wl->name, "bank")) printf("bank_total %" PRId64 "\n", accounts * balance);
    /* The split and merge nemeses need the table's id for row keys: look it
     * up now, from this thread, before the workers share the connections. */
    if ((kinds & ((1u << JH_F_SPLIT) | (1u << JH_F_MERGE))) && jh_table_id(&ws[0], &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        goto out;
    }
    if (split > 0 && jh_split(&ws[0], (int)split, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        goto out;
    }
    char note[256];
    snprintf(note, sizeof(note),
             "jp_run workload=%s nemesis=%s seed=%" PRId64 " clients=%" PRId64
             " nodes=%d start=%" PRId64,
             workload, nemesis, seed, clients, run.cluster.n, t0);
    jp_recorder_comment(run.rec, note, NULL);
    t0 = mtime_mono_ns();
    nem.opts = (jh_nemesis_opts){.kinds = kinds,
                                 .seed = (uint64_t)seed,
                                 .end_ns = t0 + duration,
                                 .quiet_min_ns = quiet_max / 3,
                                 .quiet_max_ns = quiet_max,
                                 .hold_min_ns = hold_max / 3,
                                 .hold_max_ns = hold_max,
                                 .split_point = jh_split_point,
                                 .key_space = jh_key_space,
                                 .run = &run};
    for (; started < clients; started++)
        if (pthread_create(&th[started], NULL, worker_main, &ws[started])) break;
    if (started < clients) {
        fprintf(stderr, "%s: cannot start client threads\n", argv[0]);
        goto stop;
    }
    if (pthread_create(&nt, NULL, nemesis_main, &nem)) {
        fprintf(stderr, "%s: cannot start the nemesis\n", argv[0]);
        goto stop;
    }
    nemesis_started = 1;
    pthread_join(nt, NULL);
stop:
    if (jh_nemesis_heal_all(&run.cluster, run.rec, &nem.st, &e))
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
    atomic_store(&run.stop, 1);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    int64_t secs = mtime_mono_ns() - t0;
    if (!nemesis_started || started < clients || interrupted || atomic_load(&run.record_failed))
        goto summary;
    recovery = wait_recovered(&ws[0], 60 * MTIME_S);
    snprintf(note, sizeof(note), "%" PRId64 " recovered after %.2fs", mtime_mono_ns(),
             recovery >= 0 ? (double)recovery / 1e9 : -1.0);
    jp_recorder_comment(run.rec, note, NULL);
    if (recovery < 0) {
        fprintf(stderr, "%s: no leaseholder answered within 60 s of healing\n", argv[0]);
    }
    ws[0].process = atomic_fetch_add(&run.next_process, 1);
    if (run.wl->final(&ws[0], &e))
        fprintf(stderr, "%s: final reads: %s\n", argv[0], e.msg);
    else if (recovery >= 0 && !nem.st.errors)
        status = 0;
summary:
    print_summary(&run, nemesis, secs, &nem, recovery);
out:
    for (int i = 0; ws && i < clients; i++) {
        jh_sql_close(&ws[i]);
        jh_client_close(ws[i].cl);
    }
    if (run.rec && jp_recorder_close(run.rec, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        status = 1;
    }
    jh_workload_free(&run);
    free(ws);
    free(th);
    return status;
}
