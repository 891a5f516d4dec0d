/* txn_sim: the deterministic transaction simulator (issue 8).
 *
 *   txn_sim --seed N [--steps M] [--nodes 3|5] [--ranges R] [--verbose]
 *   txn_sim --seeds A-B [...]             sweep; stops at the first failure
 *   txn_sim --seeds A-B --replay-check    run each seed twice, compare traces
 *   txn_sim --seeds A-B --inject BUG --expect-anomaly
 *   txn_sim --seeds A-B --inject BUG --expect-violation
 *                                         the checkers must catch BUG
 *   txn_sim ... --no-gc                   keep every transaction record
 *
 * One thread runs N nodes and R ranges (txn_sim_range.c) with bank and
 * list-append clients (txn_sim_client.c) over meridian_sim's network (loss,
 * duplicates, reordering, partitions) and clocks (skew and drift inside
 * ±eps), with leader crashes and failovers. Half the snapshot reads take
 * their timestamp from the leader of their first range, as the node's
 * strong reads do (txn_sim_range.c strong_read), the rest from the client. After M events every
 * fault is healed, the clients finish, and one last snapshot reads every account. Then the
 * histories go to the Jepsen checkers: Elle list-append with real-time edges (strict
 * serializability: no G0, G1a, G1b, G1c, G-single, G2, no real-time cycle) and bank (every snapshot
 * and the final read sum to the fixed total). Invariants are checked during the run as well
 * (txn_sim_range.c). Coordinators collect transaction records as the node
 * does (txn_sim_gc.c) unless --no-gc. A failure prints the seed and the last events; the
 * same seed replays the same run. */
#include "tests/sim/txn_sim.h"

#include "common/cli.h"
#include "common/err.h"
#include "tests/jepsen/jp_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALM_BOUND_NS (60LL * 1000000000LL)

void ts_fail(ts_sim *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
}

void ts_clk(ts_sim *s, int node, txn_clock *c, txn_ts last_assigned)
{
    int64_t e, l;
    sim_clock_tt(&s->node[node].clock, s->now, &e, &l);
    c->hlc_now = (txn_ts)sim_clock_local(&s->node[node].clock, s->now);
    if (s->close_tt && c->hlc_now < (txn_ts)l) c->hlc_now = (txn_ts)l;
    c->last_assigned = last_assigned;
    c->tt_earliest = (txn_ts)e;
    c->tt_latest = (txn_ts)l;
}

int ts_send(ts_sim *s, int from, int to, const ts_msg *m)
{
    if (from && !s->node[from].up) return 0; /* a dead node says nothing */
    size_t len = sizeof(ts_msg) + (size_t)m->nitems * sizeof(int64_t);
    return sim_net_send(&s->net, s->now, from, to, m, len);
}

int ts_range_of(const ts_sim *s, int slot)
{
    return 1 + slot % s->ranges;
}

/* ---- nemesis ---- */

static int down_node(const ts_sim *s)
{
    for (int n = 1; n <= s->nodes; n++)
        if (!s->node[n].up) return n;
    return 0;
}

/* Moves the range's leadership to a replica on an up node other than
 * `avoid`, if there is one. */
static void move_leader(ts_sim *s, int ri, int avoid)
{
    ts_range *r = &s->rg[ri];
    int cand[TS_MAX_NODES], nc = 0;
    for (int i = 0; i < r->nrep; i++)
        if (i != r->leader_rep && s->node[r->rep[i].node].up && r->rep[i].node != avoid)
            cand[nc++] = i;
    if (nc) ts_range_failover(s, ri, cand[sim_rng_below(&s->rng, (uint64_t)nc)]);
}

static void on_nemesis(ts_sim *s)
{
    if (s->calm) return;
    int what = (int)sim_rng_below(&s->rng, 10);
    int a = 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->nodes);
    int b = 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->nodes);
    int ri = 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->ranges);
    switch (what) {
    case 0: /* crash a node (one at a time); its ranges fail over */
        if (down_node(s) || s->isolated) break;
        s->node[a].up = 0;
        s->crashes++;
        sim_trace_add(&s->tr, s->now, "nemesis: crash n%d", a);
        for (int r = 1; r <= s->ranges; r++)
            if (ts_leader_node(s, r) == a) move_leader(s, r, a);
        for (int r = 1; r <= s->ranges; r++)
            for (int i = 0; i < s->rg[r].nrep; i++)
                if (s->rg[r].rep[i].node == a) s->rg[r].rep[i].nparked = 0;
        break;
    case 1: {
        int d = down_node(s);
        if (!d) break;
        s->node[d].up = 1;
        sim_trace_add(&s->tr, s->now, "nemesis: restart n%d", d);
        break;
    }
    case 2: /* leadership transfer */
        sim_trace_add(&s->tr, s->now, "nemesis: move leader of r%d", ri);
        move_leader(s, ri, 0);
        break;
    case 3: /* isolate a node; its ranges fail over to the majority side */
        if (s->isolated || down_node(s)) break;
        s->isolated = a;
        sim_net_isolate(&s->net, a, 1);
        sim_trace_add(&s->tr, s->now, "nemesis: isolate n%d", a);
        for (int r = 1; r <= s->ranges; r++)
            if (ts_leader_node(s, r) == a) move_leader(s, r, a);
        break;
    case 4:
        if (a != b) sim_net_cut(&s->net, a, b, 1);
        sim_trace_add(&s->tr, s->now, "nemesis: cut n%d -> n%d", a, b);
        break;
    case 5:
    case 6:
        sim_net_heal(&s->net);
        s->isolated = 0;
        sim_trace_add(&s->tr, s->now, "nemesis: heal");
        break;
    case 7:
        s->net.drop = (double)sim_rng_below(&s->rng, 10) / 100.0;
        s->net.dup = (double)sim_rng_below(&s->rng, 10) / 100.0;
        sim_trace_add(&s->tr, s->now, "nemesis: drop=%.2f dup=%.2f", s->net.drop, s->net.dup);
        break;
    default:
        sim_clock_perturb(&s->node[a].clock, &s->rng, s->now, 200);
        sim_trace_add(&s->tr, s->now, "nemesis: clock of n%d offset %" PRId64, a,
                      sim_clock_offset(&s->node[a].clock, s->now));
        break;
    }
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, 50 * TS_MS, 400 * TS_MS), TS_EV_NEMESIS,
                   0, 0, 0, NULL);
}

static void dispatch(ts_sim *s, sim_event *e)
{
    switch (e->kind) {
    case TS_EV_NET: {
        const ts_msg *m = e->ptr;
        if (e->node == 0) {
            if (m->client >= 0 && m->client < s->nclients)
                ts_client_on_msg(s, &s->cl[m->client], m);
        } else if (s->node[e->node].up) {
            ts_range_on_msg(s, e->node, m);
        }
        free(e->ptr);
        break;
    }
    case TS_EV_CHOOSE: ts_range_choose(s, (int)e->a, e->b); break;
    case TS_EV_REPL: ts_range_repl(s, (int)e->a); break;
    case TS_EV_TT: ts_range_tt(s, (int)e->a, e->b); break;
    case TS_EV_TICK: ts_range_tick(s, (int)e->a); break;
    case TS_EV_CLIENT: ts_client_on_event(s, &s->cl[e->node]); break;
    case TS_EV_CTIMEOUT: ts_client_on_timeout(s, &s->cl[e->node], e->a); break;
    case TS_EV_NEMESIS: on_nemesis(s); break;
    case TS_EV_STRONG: ts_range_strong_done(s, (int)e->a, e->ptr); break;
    default: free(e->ptr); break;
    }
}

static int all_idle(const ts_sim *s)
{
    for (int i = 0; i < s->nclients; i++)
        if (s->cl[i].st != C_IDLE) return 0;
    for (int r = 1; r <= s->ranges; r++)
        for (int i = 0; i < s->rg[r].nrep; i++)
            if (s->rg[r].rep[i].safe.n) return 0;
    return 1;
}

/* Runs events until done() or the bound; 0 if done. */
static int run_until(ts_sim *s, int (*done)(const ts_sim *), int64_t bound)
{
    sim_event e;
    while (!s->failed && !done(s)) {
        if (s->now > bound || !sim_queue_pop(&s->q, &e)) return -1;
        s->now = e.at;
        dispatch(s, &e);
        s->step++;
    }
    return s->failed ? -1 : 0;
}

static int final_done(const ts_sim *s)
{
    return s->cl[0].st == C_IDLE;
}

/* Appends the first lines of a checker's explanation to the failure. */
static void note_report(ts_sim *s, const char *name, const jp_report *r)
{
    if (r->verdict == JP_VALID) return;
    size_t len = strlen(s->why), n = r->text.len;
    const char *nl = memchr(r->text.data, '\n', n);
    if (nl) n = (size_t)(nl - (const char *)r->text.data);
    snprintf(s->why + len, sizeof(s->why) - len, "; %s %s: %.*s", name, jp_verdict_name(r->verdict),
             (int)(n > 300 ? 300 : n), (const char *)r->text.data);
}

/* Runs the checkers: 0 if both histories are valid, 3 if one is not. */
static int check_histories(ts_sim *s, int quiet)
{
    merr e = {0};
    if (jp_history_index(&s->hbank, &e) || jp_history_index(&s->hlist, &e)) {
        ts_fail(s, "history: %s", e.msg);
        return 1;
    }
    jp_report rb, rl;
    jp_report_init(&rb);
    jp_report_init(&rl);
    jp_bank_opts bo = {.has_total = 1, .total = s->initial * s->naccts};
    jp_elle_opts eo = {0}; /* with real-time edges: strict serializability */
    int ret = 0;
    if (jp_check_bank(&s->hbank, &bo, &rb, &e) || jp_check_list_append(&s->hlist, &eo, &rl, &e)) {
        ts_fail(s, "checker: %s", e.msg);
        ret = 1;
    } else if (rb.verdict != JP_VALID || rl.verdict != JP_VALID) {
        ts_fail(s, "checkers found anomalies");
        note_report(s, "bank", &rb);
        note_report(s, "list-append", &rl);
        if (!quiet)
            fprintf(stderr, "bank:\n%.*s\nlist-append:\n%.*s\n",
                    (int)(rb.text.len > 4000 ? 4000 : rb.text.len), (const char *)rb.text.data,
                    (int)(rl.text.len > 4000 ? 4000 : rl.text.len), (const char *)rl.text.data);
        ret = 3;
    }
    jp_report_free(&rb);
    jp_report_free(&rl);
    return ret;
}

typedef struct ts_opts {
    uint64_t steps;
    int nodes, ranges, verbose, invariants, close_tt, gc;
    ts_inject inject;
} ts_opts;

typedef struct ts_totals {
    uint64_t commits, aborts, retries, infos, snaps, snaps_ok, follower_reads, failovers, crashes,
        wounds, gc_collected, gc_refused, gc_stale, strong_settled, strong_busy;
    double sim_seconds;
} ts_totals;

/* 0 passed, 1 failed (s->why says why), 2 out of memory, 3 the checkers
 * found an anomaly in the histories. */
static int run_seed(uint64_t seed, const ts_opts *o, uint64_t *hash, ts_totals *tot, int quiet,
                    char *why, size_t whylen)
{
    ts_sim *s = calloc(1, sizeof(*s));
    if (!s) return 2;
    s->seed = seed;
    s->nodes = o->nodes;
    s->ranges = o->ranges;
    s->inject = o->inject;
    s->invariants = o->invariants;
    s->close_tt = o->close_tt;
    s->gc = o->gc;
    s->isolated = 0;
    sim_rng_seed(&s->rng, seed);
    sim_queue_init(&s->q);
    sim_trace_init(&s->tr, o->verbose);
    sim_net_init(&s->net, s->nodes + 1, &s->rng, &s->q, TS_EV_NET);
    s->net.lat_min = sim_rng_range(&s->rng, 50000, 300000);
    s->net.lat_max = sim_rng_range(&s->rng, 1000000, 5000000);
    s->eps = sim_rng_range(&s->rng, 1, 8) * TS_MS;
    s->naccts = 2 * s->ranges;
    s->nlists = 2 * s->ranges;
    s->initial = 100;
    s->nclients = 10;
    s->now = 1000000000LL; /* timestamps stay positive under skew */
    jp_history_init(&s->hbank);
    jp_history_init(&s->hlist);
    for (int n = 0; n <= s->nodes; n++) {
        s->node[n].up = 1;
        sim_clock_init(&s->node[n].clock, s->eps, &s->rng, s->now);
    }
    int rc = 0;
    for (int r = 1; r <= s->ranges && !rc; r++) {
        rc = ts_range_init(s, &s->rg[r], r);
        sim_queue_push(&s->q, s->now + TS_MS, TS_EV_TICK, 0, (uint64_t)r, 0, NULL);
        sim_queue_push(&s->q, s->now + TS_MS, TS_EV_REPL, 0, (uint64_t)r, 0, NULL);
    }
    s->cl = calloc((size_t)s->nclients, sizeof(ts_client));
    if (rc || !s->cl) ts_fail(s, "out of memory");
    for (int i = 0; i < s->nclients && !s->failed; i++) ts_client_init(s, &s->cl[i], i, i % 2 == 0);
    sim_queue_push(&s->q, s->now + 200 * TS_MS, TS_EV_NEMESIS, 0, 0, 0, NULL);

    sim_event e;
    for (; s->step < o->steps && !s->failed; s->step++) {
        if (!sim_queue_pop(&s->q, &e)) break;
        s->now = e.at;
        dispatch(s, &e);
    }
    /* Calm: heal everything, let the clients finish, then read the total. */
    if (!s->failed) {
        s->calm = 1;
        sim_net_heal(&s->net);
        s->isolated = 0;
        s->net.drop = s->net.dup = 0;
        for (int n = 1; n <= s->nodes; n++) s->node[n].up = 1;
        sim_trace_add(&s->tr, s->now, "calm");
        if (run_until(s, all_idle, s->now + CALM_BOUND_NS) && !s->failed)
            ts_fail(s, "clients or in-doubt transactions did not finish in the calm phase");
    }
    if (!s->failed && (ts_final_read(s) || run_until(s, final_done, s->now + CALM_BOUND_NS)) &&
        !s->failed)
        ts_fail(s, "the final read did not finish");
    int checked = s->failed ? 1 : check_histories(s, quiet);
    int ret = s->failed ? (checked == 3 ? 3 : 1) : 0;
    *hash = s->tr.hash;
    snprintf(why, whylen, "%s", s->why);
    if (tot) {
        tot->commits += s->commits;
        tot->aborts += s->aborts;
        tot->retries += s->retries;
        tot->infos += s->infos;
        tot->snaps += s->snaps;
        tot->snaps_ok += s->snaps_ok;
        tot->follower_reads += s->follower_reads;
        tot->failovers += s->failovers;
        tot->crashes += s->crashes;
        tot->wounds += s->wounds;
        tot->gc_collected += s->gc_collected;
        tot->gc_refused += s->gc_refused;
        tot->gc_stale += s->gc_stale;
        tot->strong_settled += s->strong_settled;
        tot->strong_busy += s->strong_busy;
        tot->sim_seconds += (double)(s->now - 1000000000LL) / 1e9;
    }
    if (s->failed && !quiet) {
        fprintf(stderr, "txn_sim: seed %" PRIu64 " FAILED at step %" PRIu64 " (t=%.3fs): %s\n",
                seed, s->step, (double)s->now / 1e9, s->why);
        fprintf(stderr, "last events:\n");
        sim_trace_dump(&s->tr, 40);
        fprintf(stderr,
                "replay: txn_sim --seed %" PRIu64 " --steps %" PRIu64
                " --nodes %d --ranges %d%s%s --verbose\n",
                seed, o->steps, o->nodes, o->ranges, o->gc ? "" : " --no-gc",
                o->close_tt ? " --close-rule-tt" : "");
    } else if (o->verbose) {
        printf("seed %" PRIu64 ": %s, t=%.1fs commits=%" PRIu64 " aborts=%" PRIu64 " info=%" PRIu64
               " snapshots=%" PRIu64 " failovers=%" PRIu64 " hash=%016" PRIx64 "\n",
               seed, s->failed ? s->why : "ok", (double)s->now / 1e9, s->commits, s->aborts,
               s->infos, s->snaps, s->failovers, s->tr.hash);
    }
    for (int i = 0; i < s->nclients && s->cl; i++) ts_client_free(&s->cl[i]);
    free(s->cl);
    for (int r = 1; r <= s->ranges; r++) ts_range_free(&s->rg[r]);
    free(s->txns);
    jp_history_free(&s->hbank);
    jp_history_free(&s->hlist);
    sim_queue_free(&s->q);
    free(s);
    return ret;
}

static int parse_inject(const char *v, ts_inject *out)
{
    static const char *const names[] = {"none",
                                        "skip-commit-wait",
                                        "no-read-locks",
                                        "early-safe-time",
                                        "reacquire-writes-only",
                                        "gc-ignore-deadline",
                                        "gc-ignore-acks",
                                        "gc-no-deadline-check",
                                        "strong-no-bump"};
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (!strcmp(v, names[i])) {
            *out = (ts_inject)i;
            return 0;
        }
    return MERR_INVALID;
}

int main(int argc, char **argv)
{
    int64_t seed = -1, steps = 20000, nodes = 3, ranges = 3;
    const char *seeds = NULL, *inject = "none";
    int verbose = 0, replay = 0, npos = 0, done = 0, expect = 0, expect_v = 0, noinv = 0;
    int close_tt = 0, no_gc = 0;
    const cli_flag flags[] = {
        {"seed", CLI_INT, &seed, "N", "run one seed"},
        {"seeds", CLI_STR, &seeds, "A-B", "sweep seeds A..B (inclusive)"},
        {"steps", CLI_INT, &steps, "M", "events per seed before healing (default 20000)"},
        {"nodes", CLI_INT, &nodes, "N", "nodes, 3 or 5 (default 3)"},
        {"ranges", CLI_INT, &ranges, "R", "ranges, 2..6 (default 3)"},
        {"verbose", CLI_BOOL, &verbose, NULL, "print every event"},
        {"replay-check", CLI_BOOL, &replay, NULL, "run each seed twice and compare traces"},
        {"inject", CLI_STR, &inject, "BUG",
         "break one rule: skip-commit-wait, no-read-locks, early-safe-time, "
         "reacquire-writes-only, gc-ignore-deadline, gc-ignore-acks, gc-no-deadline-check"},
        {"close-rule-tt", CLI_BOOL, &close_tt, NULL,
         "close as the node does: at tt.earliest, not counted as assigned; stamps >= tt.latest"},
        {"no-invariants", CLI_BOOL, &noinv, NULL, "leave the verdict to the history checkers"},
        {"no-gc", CLI_BOOL, &no_gc, NULL, "never collect transaction records"},
        {"expect-anomaly", CLI_BOOL, &expect, NULL,
         "exit 0 only if the checkers reject some seed's history (implies --no-invariants)"},
        {"expect-violation", CLI_BOOL, &expect_v, NULL,
         "exit 0 only if some seed breaks an invariant or fails the checkers"},
        {0},
    };
    int st = cli_parse("txn_sim", "[flags]", flags, argc, argv, &npos, &done);
    if (done) return st;
    uint64_t lo, hi;
    if (seeds) {
        if (sim_parse_range(seeds, &lo, &hi)) {
            fprintf(stderr, "txn_sim: --seeds wants A-B, got %s\n", seeds);
            return CLI_EXIT_USAGE;
        }
    } else if (seed >= 0) {
        lo = hi = (uint64_t)seed;
    } else {
        fprintf(stderr, "txn_sim: give --seed N or --seeds A-B\n");
        return CLI_EXIT_USAGE;
    }
    ts_opts o = {.steps = (uint64_t)steps,
                 .nodes = (int)nodes,
                 .ranges = (int)ranges,
                 .verbose = verbose && lo == hi,
                 .invariants = !noinv && !expect,
                 .close_tt = close_tt,
                 .gc = !no_gc};
    expect |= expect_v;
    if ((nodes != 3 && nodes != 5) || ranges < 2 || ranges > TS_MAX_RANGES || steps < 0) {
        fprintf(stderr, "txn_sim: --nodes must be 3 or 5, --ranges 2..%d\n", TS_MAX_RANGES);
        return CLI_EXIT_USAGE;
    }
    if (parse_inject(inject, &o.inject)) {
        fprintf(stderr, "txn_sim: unknown --inject %s\n", inject);
        return CLI_EXIT_USAGE;
    }
    uint64_t passed = 0, failed = 0;
    ts_totals tot;
    memset(&tot, 0, sizeof(tot));
    for (uint64_t sd = lo; sd <= hi; sd++) {
        uint64_t h1, h2;
        char why[512];
        int rc = run_seed(sd, &o, &h1, &tot, expect, why, sizeof(why));
        if (rc == 2 || (rc && !expect)) return 1;
        if (rc == 3 || (rc == 1 && expect_v)) {
            failed++;
            printf("txn_sim: seed %" PRIu64 " caught the injected %s: %s\n", sd, inject, why);
            break;
        }
        if (rc) { /* an injected bug must be caught by the checkers, not crash the sim */
            fprintf(stderr, "txn_sim: seed %" PRIu64 " failed outside the checkers: %s\n", sd, why);
            return 1;
        }
        if (replay) {
            rc = run_seed(sd, &o, &h2, NULL, 1, why, sizeof(why));
            if (rc || h1 != h2) {
                fprintf(stderr,
                        "txn_sim: seed %" PRIu64 " did not replay: trace hash %016" PRIx64
                        " then %016" PRIx64 "\n",
                        sd, h1, h2);
                return 1;
            }
        }
        passed++;
        if (sd == UINT64_MAX) break;
    }
    printf("txn_sim: %" PRIu64 " seeds passed (%" PRIu64 "-%" PRIu64 ", %d nodes, %d ranges, "
           "%" PRId64 " steps each%s%s)\n",
           passed, lo, hi, (int)nodes, (int)ranges, steps, replay ? ", each replayed" : "",
           o.inject ? ", with an injected bug" : "");
    printf("  simulated %.0fs: %" PRIu64 " commits, %" PRIu64 " aborts (%" PRIu64
           " retried, %" PRIu64 " wounds), %" PRIu64 " indeterminate, %" PRIu64
           " snapshot reads (%" PRIu64 " ok; %" PRIu64 " key reads served by followers; %" PRIu64
           " timestamps picked by a settled leader, %" PRIu64 " refused), %" PRIu64
           " failovers, %" PRIu64 " crashes\n",
           tot.sim_seconds, tot.commits, tot.aborts, tot.retries, tot.wounds, tot.infos, tot.snaps,
           tot.snaps_ok, tot.follower_reads, tot.strong_settled, tot.strong_busy, tot.failovers,
           tot.crashes);
    if (o.gc)
        printf("  record GC: %" PRIu64 " records collected, %" PRIu64
               " late commits refused, %" PRIu64 " late answers ignored by decided participants\n",
               tot.gc_collected, tot.gc_refused, tot.gc_stale);
    if (expect && !failed) {
        fprintf(stderr,
                "txn_sim: the injected %s went unnoticed in seeds %" PRIu64 "-%" PRIu64 "\n",
                inject, lo, hi);
        return 1;
    }
    return 0;
}
