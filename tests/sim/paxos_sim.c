/* paxos_sim: the deterministic Multi-Paxos simulator (issue 5).
 *
 *   paxos_sim --seed N [--steps M] [--nodes 3|5] [--groups G] [--verbose]
 *   paxos_sim --seeds A-B [...]            sweep; stops at the first failure
 *   paxos_sim --seeds A-B --replay-check   run each seed twice, compare traces
 *
 * One process runs every node over meridian_sim's network, disks and clocks,
 * with random client proposals, crashes and restarts, partitions, drops,
 * duplicates, clock skew inside ε, membership changes, leadership transfers and
 * snapshots. After every event it checks the invariants (paxos_sim_node.c);
 * after M events it heals every fault and requires that each group elects a
 * leaseholder, commits a fresh proposal and brings every member up to date
 * within 60 s of simulated time. A failure prints the seed, the invariant and
 * the last events; the same seed always replays the same run. */
#include "tests/sim/paxos_sim.h"

#include "common/cli.h"
#include "common/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAL_BOUND_NS (60LL * 1000000000LL)

static uint64_t new_prop(ps_sim *s, int gi)
{
    if (s->nprops == s->capprops) {
        uint64_t nc = s->capprops ? s->capprops * 2 : 256;
        ps_prop *np = realloc(s->props, nc * sizeof(*np));
        if (!np) return 0;
        s->props = np;
        s->capprops = nc;
    }
    s->props[s->nprops].slot = 0;
    s->props[s->nprops].group = gi;
    s->props[s->nprops].probe = 0;
    s->props[s->nprops].dropped = 0;
    return ++s->nprops;
}

static void propose(ps_sim *s, int n, int gi, uint64_t id)
{
    uint8_t payload[24];
    uint32_t len = 8 + (uint32_t)sim_rng_below(&s->rng, 16);
    for (uint32_t i = 0; i < len; i++) payload[i] = (uint8_t)sim_rng_next(&s->rng);
    paxos_event ev = {0};
    ev.type = PAXOS_EV_PROPOSE;
    ev.now = ps_tt(s, n);
    ev.id = id;
    ev.data = payload;
    ev.len = len;
    int rc = ps_step(s, n, gi, &ev);
    sim_trace_add(&s->tr, s->now, "n%d g%d propose %" PRIu64 " -> %s", n, gi, id, merr_name(rc));
}

static int random_up_node(ps_sim *s)
{
    int n = 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->nodes);
    return s->node[n].up ? n : 0;
}

static void on_client(ps_sim *s)
{
    int gi = (int)sim_rng_below(&s->rng, (uint64_t)s->groups);
    /* Idle stretches (one second in three) let groups quiesce. */
    int idle = (s->now / 1000000000LL) % 3 == 2;
    if (!idle) {
        int n = ps_leader_of(s, gi);
        if (!n || sim_rng_chance(&s->rng, 0.1)) n = random_up_node(s);
        uint64_t id = new_prop(s, gi);
        if (n && id) propose(s, n, gi, id);
    }
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, 2000000, 40000000), PS_EV_CLIENT, 0, 0, 0,
                   NULL);
}

static void membership_op(ps_sim *s, int gi)
{
    int l = ps_leader_of(s, gi);
    if (!l) return;
    paxos_members c, m;
    paxos_get_members(s->node[l].g[gi], &c, &m);
    paxos_event ev = {0};
    ev.type = PAXOS_EV_CONFIG;
    ev.now = ps_tt(s, l);
    if (m.nlearners) {
        ev.op = PAXOS_PROMOTE;
        ev.node = m.learners[0];
    } else {
        paxos_node_id spare[PS_MAX_NODES];
        int nspare = 0;
        for (int n = 1; n <= s->nodes; n++)
            if (!paxos_members_is_voter(&m, (paxos_node_id)n)) spare[nspare++] = (paxos_node_id)n;
        uint32_t minv = s->nodes >= 5 ? 3 : 2;
        if (nspare && (m.nvoters <= minv || sim_rng_chance(&s->rng, 0.5))) {
            ev.op = PAXOS_ADD_LEARNER;
            ev.node = spare[sim_rng_below(&s->rng, (uint64_t)nspare)];
        } else if (m.nvoters > minv) {
            paxos_node_id v;
            do v = m.voters[sim_rng_below(&s->rng, m.nvoters)];
            while (v == (paxos_node_id)l);
            ev.op = PAXOS_REMOVE;
            ev.node = v;
        } else {
            return;
        }
    }
    int rc = ps_step(s, l, gi, &ev);
    if (rc == 0) s->config_changes++;
    sim_trace_add(&s->tr, s->now, "n%d g%d config op=%d node=%u -> %s", l, gi, ev.op, ev.node,
                  merr_name(rc));
}

static void on_nemesis(ps_sim *s)
{
    if (s->healing) return;
    int what = (int)sim_rng_below(&s->rng, 13);
    int a = 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->nodes);
    int b = 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->nodes);
    int gi = (int)sim_rng_below(&s->rng, (uint64_t)s->groups);
    switch (what) {
    case 0:
        sim_net_isolate(&s->net, a, 1);
        sim_trace_add(&s->tr, s->now, "nemesis: isolate n%d", a);
        break;
    case 1:
        if (a != b) sim_net_cut(&s->net, a, b, 1);
        sim_trace_add(&s->tr, s->now, "nemesis: cut n%d -> n%d", a, b);
        break;
    case 2:
    case 3:
        sim_net_heal(&s->net);
        sim_trace_add(&s->tr, s->now, "nemesis: heal network");
        break;
    case 4:
        s->net.drop = (double)sim_rng_below(&s->rng, 20) / 100.0;
        s->net.dup = (double)sim_rng_below(&s->rng, 10) / 100.0;
        sim_trace_add(&s->tr, s->now, "nemesis: drop=%.2f dup=%.2f", s->net.drop, s->net.dup);
        break;
    case 5:
        if (s->node[a].up) ps_crash_and_restart(s, a);
        break;
    case 10:
        if (s->node[a].up) {
            /* A stalled leader still believes in its lease when it wakes:
             * the lease checks see it at every step meanwhile. */
            s->node[a].paused_until = s->now + sim_rng_range(&s->rng, 50000000, 4000000000LL);
            sim_trace_add(&s->tr, s->now, "nemesis: pause n%d for %.3fs", a,
                          (double)(s->node[a].paused_until - s->now) / 1e9);
        }
        break;
    case 6:
        sim_clock_perturb(&s->node[a].clock, &s->rng, s->now, 200);
        sim_trace_add(&s->tr, s->now, "nemesis: clock n%d offset=%" PRId64 "ns", a,
                      sim_clock_offset(&s->node[a].clock, s->now));
        break;
    case 7:
    case 8: membership_op(s, gi); break;
    case 9: {
        int l = ps_leader_of(s, gi);
        if (!l) break;
        paxos_event ev = {0};
        ev.type = PAXOS_EV_TRANSFER;
        ev.now = ps_tt(s, l);
        ev.node = (paxos_node_id)b;
        int rc = ps_step(s, l, gi, &ev);
        if (rc == 0) s->transfers++;
        sim_trace_add(&s->tr, s->now, "n%d g%d transfer to n%d -> %s", l, gi, b, merr_name(rc));
        break;
    }
    default:
        if (s->node[a].up) ps_take_snapshot(s, a, gi);
        break;
    }
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, 100000000, 800000000), PS_EV_NEMESIS, 0,
                   0, 0, NULL);
}

void ps_crash_and_restart(ps_sim *s, int n)
{
    ps_node_crash(s, n);
    s->crashes++;
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, 1000000, 3000000000LL), PS_EV_RESTART, n,
                   0, 0, NULL);
    sim_trace_add(&s->tr, s->now, "nemesis: crash n%d", n);
}

static void on_tick(ps_sim *s, int n)
{
    ps_node *nd = &s->node[n];
    /* A clock error may swing anywhere inside ±eps between two readings; the
     * lease math must hold for every such swing, so make them frequent. */
    if (sim_rng_chance(&s->rng, s->clock_jump)) sim_clock_perturb(&nd->clock, &s->rng, s->now, 200);
    for (int gi = 0; gi < s->groups && !s->failed; gi++) {
        paxos_event ev = {0};
        ev.type = PAXOS_EV_TICK;
        ev.now = ps_tt(s, n);
        ps_step(s, n, gi, &ev);
    }
    if (nd->up && (s->step & 1)) /* node-level liveness, shared by all groups */
        for (int m = 1; m <= s->nodes; m++)
            if (m != n) sim_net_send(&s->net, s->now, n, m, "L", 1);
    if (nd->up) {
        int64_t at =
            s->now + PS_TICK_NS + sim_rng_range(&s->rng, -PS_TICK_NS / 10, PS_TICK_NS / 10);
        sim_queue_push(&s->q, at, PS_EV_TICK, n, 0, nd->inc, NULL);
    }
}

static void dispatch(ps_sim *s, sim_event *e)
{
    ps_node *nd = e->node >= 1 && e->node <= s->nodes ? &s->node[e->node] : NULL;
    if (nd && nd->up && s->now < nd->paused_until &&
        (e->kind == PS_EV_TICK || e->kind == PS_EV_NET || e->kind == PS_EV_SYNC)) {
        /* The process is stalled: it handles this when it wakes up. */
        if (sim_queue_push(&s->q, nd->paused_until, e->kind, e->node, e->a, e->b, e->ptr))
            free(e->ptr);
        e->ptr = NULL;
        return;
    }
    switch (e->kind) {
    case PS_EV_TICK:
        if (nd && nd->up && e->b == nd->inc) on_tick(s, e->node);
        break;
    case PS_EV_NET:
        if (nd && nd->up && sim_net_up(&s->net, (int)e->a, e->node))
            ps_on_net(s, e->node, (int)e->a, e->ptr, (size_t)e->b);
        break;
    case PS_EV_SYNC:
        if (nd && nd->up && e->b == nd->inc) ps_on_sync(s, e->node, e->a, e->ptr);
        break;
    case PS_EV_CRASH:
        if (nd && nd->up && e->a == nd->inc && !s->healing) ps_crash_and_restart(s, e->node);
        break;
    case PS_EV_RESTART:
        if (nd && !nd->up) {
            sim_trace_add(&s->tr, s->now, "restart n%d", e->node);
            ps_node_start(s, e->node, 0);
        }
        break;
    case PS_EV_CLIENT:
        if (!s->healing) on_client(s);
        break;
    case PS_EV_NEMESIS: on_nemesis(s); break;
    }
    free(e->ptr);
    e->ptr = NULL;
}

/* The groups' members that are up have applied everything acked and a probe. */
static int group_settled(ps_sim *s, int gi)
{
    int l = ps_leader_of(s, gi);
    ps_global *gl = &s->glob[gi];
    if (!l || !gl->probe_done || !paxos_lease_valid(s->node[l].g[gi], ps_tt(s, l))) return 0;
    paxos_members c;
    paxos_get_members(s->node[l].g[gi], &c, NULL);
    uint64_t need = gl->acked_slot > gl->probe_slot ? gl->acked_slot : gl->probe_slot;
    for (int n = 1; n <= s->nodes; n++) {
        if (!paxos_members_is_voter(&c, (paxos_node_id)n) &&
            !paxos_members_is_learner(&c, (paxos_node_id)n))
            continue;
        if (s->node[n].app[gi].applied < need) return 0;
    }
    return 1;
}

static void heal_and_check_liveness(ps_sim *s)
{
    s->healing = 1;
    sim_net_heal(&s->net);
    sim_trace_add(&s->tr, s->now, "== heal: all faults end ==");
    for (int n = 1; n <= s->nodes; n++) {
        if (!s->node[n].up) ps_node_start(s, n, 0);
        s->node[n].paused_until = 0;
    }
    int64_t deadline = s->now + HEAL_BOUND_NS, next_probe = s->now;
    sim_event e;
    while (!s->failed) {
        int settled = 1;
        for (int gi = 0; gi < s->groups; gi++) settled &= group_settled(s, gi);
        if (settled) return;
        if (s->now >= deadline) break;
        if (s->now >= next_probe) {
            next_probe = s->now + 100000000;
            for (int gi = 0; gi < s->groups; gi++) {
                int l = ps_leader_of(s, gi);
                if (s->glob[gi].probe_done || !l) continue;
                uint64_t id = new_prop(s, gi);
                if (!id) continue;
                s->props[id - 1].probe = 1;
                propose(s, l, gi, id);
            }
        }
        if (!sim_queue_pop(&s->q, &e)) break;
        s->now = e.at;
        dispatch(s, &e);
        ps_check(s);
    }
    if (s->failed) return;
    for (int gi = 0; gi < s->groups; gi++) {
        if (group_settled(s, gi)) continue;
        int l = ps_leader_of(s, gi);
        for (int n = 1; n <= s->nodes; n++) {
            paxos_group *g = s->node[n].g[gi];
            if (!g) continue;
            paxos_members c, m;
            paxos_get_members(g, &c, &m);
            paxos_ballot b = paxos_get_ballot(g);
            sim_trace_add(&s->tr, s->now,
                          "state n%d g%d: %s promised=%" PRIu64 ".%u first=%" PRIu64
                          " chosen=%" PRIu64 " applied=%" PRIu64 " last=%" PRIu64
                          " voters=%u/%u (committed/newest) up=%d",
                          n, gi, paxos_role_name(paxos_get_role(g)), b.round, b.node,
                          paxos_get_first(g), paxos_get_chosen(g), paxos_get_applied(g),
                          paxos_get_last(g), c.nvoters, m.nvoters, s->node[n].up);
        }
        ps_fail(s,
                "liveness: g%d not settled 60s after healing (leader n%d, probe %s, acked up to "
                "%" PRIu64 ")",
                gi, l, s->glob[gi].probe_done ? "chosen" : "not chosen", s->glob[gi].acked_slot);
        return;
    }
}

/* Totals over a sweep, to show what the seeds exercised. */
typedef struct ps_totals {
    uint64_t elections, crashes, configs, transfers, snapshots, installs, proposals, chosen;
    double sim_seconds;
} ps_totals;

static int run_seed(uint64_t seed, uint64_t steps, int nodes, int groups, int verbose,
                    uint64_t *hash, ps_totals *tot)
{
    ps_sim *s = calloc(1, sizeof(*s));
    if (!s) return 2;
    s->seed = seed;
    s->nodes = nodes;
    s->groups = groups;
    sim_rng_seed(&s->rng, seed);
    sim_queue_init(&s->q);
    sim_trace_init(&s->tr, verbose);
    sim_net_init(&s->net, nodes + 1, &s->rng, &s->q, PS_EV_NET);
    s->net.lat_max = sim_rng_range(&s->rng, 1000000, 30000000);
    s->eps = sim_rng_range(&s->rng, 1000000, 20000000);
    s->lease_ns = sim_rng_chance(&s->rng, 0.5) ? 3000000000LL
                                               : sim_rng_range(&s->rng, 200000000, 3000000000LL);
    s->election_ticks = (int)sim_rng_range(&s->rng, 3, 10);
    s->crash_in_sync = (double)sim_rng_below(&s->rng, 4) / 1000.0;
    s->clock_jump = (double)sim_rng_below(&s->rng, 6) / 100.0;
    s->net.lat_min = sim_rng_range(&s->rng, 100000, 1000000);
    s->genesis.nvoters = 3;
    for (uint32_t i = 0; i < 3; i++) s->genesis.voters[i] = i + 1;
    for (int gi = 0; gi < groups; gi++) s->glob[gi].cfg = s->genesis;
    for (int n = 1; n <= nodes; n++) {
        s->node[n].id = n;
        sim_disk_init(&s->node[n].disk, 100000, sim_rng_range(&s->rng, 200000, 8000000));
        sim_clock_init(&s->node[n].clock, s->eps, &s->rng, 0);
        ps_node_start(s, n, 1);
    }
    sim_queue_push(&s->q, 10000000, PS_EV_CLIENT, 0, 0, 0, NULL);
    sim_queue_push(&s->q, 500000000, PS_EV_NEMESIS, 0, 0, 0, NULL);
    sim_event e;
    for (s->step = 0; s->step < steps && !s->failed; s->step++) {
        if (!sim_queue_pop(&s->q, &e)) break;
        s->now = e.at;
        dispatch(s, &e);
        ps_check(s);
    }
    if (!s->failed) heal_and_check_liveness(s);
    int rc = s->failed ? 1 : 0;
    *hash = s->tr.hash;
    if (tot) {
        tot->elections += s->elections;
        tot->crashes += s->crashes;
        tot->configs += s->config_changes;
        tot->transfers += s->transfers;
        tot->snapshots += s->snapshots;
        tot->installs += s->installs;
        tot->proposals += s->nprops;
        for (uint64_t i = 0; i < s->nprops; i++) tot->chosen += s->props[i].slot != 0;
        tot->sim_seconds += (double)s->now / 1e9;
    }
    if (s->failed) {
        fprintf(stderr, "paxos_sim: seed %" PRIu64 " FAILED at step %" PRIu64 " (t=%.3fs): %s\n",
                seed, s->step, (double)s->now / 1e9, s->why);
        fprintf(stderr, "last events:\n");
        sim_trace_dump(&s->tr, 40);
        fprintf(stderr,
                "replay: paxos_sim --seed %" PRIu64 " --steps %" PRIu64
                " --nodes %d --groups %d --verbose\n",
                seed, steps, nodes, groups);
    } else if (verbose) {
        printf("seed %" PRIu64 ": ok, t=%.1fs elections=%" PRIu64 " crashes=%" PRIu64
               " configs=%" PRIu64 " transfers=%" PRIu64 " snapshots=%" PRIu64 " installs=%" PRIu64
               " proposals=%" PRIu64 " hash=%016" PRIx64 "\n",
               seed, (double)s->now / 1e9, s->elections, s->crashes, s->config_changes,
               s->transfers, s->snapshots, s->installs, s->nprops, s->tr.hash);
    }
    for (int n = 1; n <= nodes; n++) {
        ps_node_free(s, n);
        sim_disk_free(&s->node[n].disk);
    }
    for (int gi = 0; gi < groups; gi++) {
        free(s->glob[gi].ehash);
        free(s->glob[gi].prefix);
    }
    free(s->props);
    sim_queue_free(&s->q);
    free(s);
    return rc;
}

int main(int argc, char **argv)
{
    int64_t seed = -1, steps = 20000, nodes = 3, groups = 3;
    const char *seeds = NULL;
    int verbose = 0, replay = 0, npos = 0, done = 0;
    const cli_flag flags[] = {
        {"seed", CLI_INT, &seed, "N", "run one seed"},
        {"seeds", CLI_STR, &seeds, "A-B", "sweep seeds A..B (inclusive)"},
        {"steps", CLI_INT, &steps, "M", "events per seed before healing (default 20000)"},
        {"nodes", CLI_INT, &nodes, "N", "nodes, 3..7 (default 3)"},
        {"groups", CLI_INT, &groups, "G", "Paxos groups, 1..8 (default 3)"},
        {"verbose", CLI_BOOL, &verbose, NULL, "print every event"},
        {"replay-check", CLI_BOOL, &replay, NULL, "run each seed twice and compare traces"},
        {0},
    };
    int st = cli_parse("paxos_sim", "[flags]", flags, argc, argv, &npos, &done);
    if (done) return st;
    uint64_t lo, hi;
    if (seeds) {
        if (sim_parse_range(seeds, &lo, &hi)) {
            fprintf(stderr, "paxos_sim: --seeds wants A-B, got %s\n", seeds);
            return CLI_EXIT_USAGE;
        }
    } else if (seed >= 0) {
        lo = hi = (uint64_t)seed;
    } else {
        fprintf(stderr, "paxos_sim: give --seed N or --seeds A-B\n");
        return CLI_EXIT_USAGE;
    }
    if (nodes < 3 || nodes > PS_MAX_NODES || groups < 1 || groups > PS_MAX_GROUPS || steps < 0) {
        fprintf(stderr, "paxos_sim: --nodes must be 3..%d, --groups 1..%d\n", PS_MAX_NODES,
                PS_MAX_GROUPS);
        return CLI_EXIT_USAGE;
    }
    uint64_t passed = 0;
    ps_totals tot;
    memset(&tot, 0, sizeof(tot));
    for (uint64_t sd = lo; sd <= hi; sd++) {
        uint64_t h1, h2;
        int rc =
            run_seed(sd, (uint64_t)steps, (int)nodes, (int)groups, verbose && lo == hi, &h1, &tot);
        if (rc) return 1;
        if (replay) {
            rc = run_seed(sd, (uint64_t)steps, (int)nodes, (int)groups, 0, &h2, NULL);
            if (rc || h1 != h2) {
                fprintf(stderr,
                        "paxos_sim: seed %" PRIu64 " did not replay: trace hash %016" PRIx64
                        " then %016" PRIx64 "\n",
                        sd, h1, h2);
                return 1;
            }
        }
        passed++;
        if (sd == UINT64_MAX) break;
    }
    printf("paxos_sim: %" PRIu64 " seeds passed (%" PRIu64 "-%" PRIu64 ", %d nodes, %d groups, "
           "%" PRId64 " steps each%s)\n",
           passed, lo, hi, (int)nodes, (int)groups, steps, replay ? ", each replayed" : "");
    printf("  simulated %.0fs: %" PRIu64 " prepare msgs, %" PRIu64 " crashes, %" PRIu64
           " membership changes, %" PRIu64 " transfers, %" PRIu64 " snapshots taken, %" PRIu64
           " installed, %" PRIu64 " of %" PRIu64 " proposals chosen\n",
           tot.sim_seconds, tot.elections, tot.crashes, tot.configs, tot.transfers, tot.snapshots,
           tot.installs, tot.chosen, tot.proposals);
    return 0;
}
