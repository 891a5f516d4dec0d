/* `meridian bench paxos`: CPU cost of the Multi-Paxos core. Three replicas of
 * each group run in-process; every message goes through the wire codec; every
 * persist is acknowledged at once (no disk: this measures the core, not fsync).
 * Clients submit proposals in bursts of --inflight and wait until the leader
 * has applied them. Without --batch/--window it runs the core unbatched and
 * unpipelined (1 proposal per slot, 1 slot in flight) and then batched and
 * pipelined (64/64), and prints the ratio. */
#include "common/cli.h"
#include "common/err.h"
#include "common/mtime.h"
#include "replication/paxos.h"
#include "replication/paxos_codec.h"
#include "server/commands.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BP_NODES 3

typedef struct bp_wire {
    uint8_t *p;
    size_t len;
} bp_wire;

typedef struct bp {
    paxos_group *g[BP_NODES + 1];
    bp_wire *q;
    size_t head, n, cap;
    int64_t now;
    uint64_t applied_props, msgs, bytes, slots;
    int err;
} bp;

static paxos_tt bp_tt(bp *b)
{
    paxos_tt t = {b->now - 1000000, b->now + 1000000};
    return t;
}

static void bp_step(bp *b, int node, paxos_event *ev);

static void bp_handle(bp *b, int node, paxos_update *u)
{
    for (size_t i = 0; i < u->nmsgs; i++) {
        bp_wire w;
        if (paxos_msg_encode(&u->msgs[i], &w.p, &w.len)) {
            b->err = MERR_NOMEM;
            continue;
        }
        if (b->n == b->cap) {
            size_t nc = b->cap ? b->cap * 2 : 1024;
            bp_wire *nq = malloc(nc * sizeof(*nq));
            if (!nq) {
                free(w.p);
                b->err = MERR_NOMEM;
                continue;
            }
            for (size_t k = 0; k < b->n; k++) nq[k] = b->q[(b->head + k) % b->cap];
            free(b->q);
            b->q = nq;
            b->head = 0;
            b->cap = nc;
        }
        b->q[(b->head + b->n++) % b->cap] = w;
        b->msgs++;
        b->bytes += w.len;
    }
    if (node == 1)
        for (size_t i = 0; i < u->nchosen; i++) {
            if (u->chosen[i].type != PAXOS_ENTRY_DATA) continue;
            b->slots++;
            paxos_batch_iter it;
            uint64_t id;
            const uint8_t *d;
            uint32_t len;
            if (paxos_batch_iter_init(&it, u->chosen[i].data, u->chosen[i].len)) continue;
            while (paxos_batch_next(&it, &id, &d, &len) == 1) b->applied_props++;
        }
    uint64_t seq = u->persist_seq;
    paxos_update_free(u);
    if (seq) { /* "fsync" done at once */
        paxos_event ev = {0};
        ev.type = PAXOS_EV_PERSISTED;
        ev.now = bp_tt(b);
        ev.seq = seq;
        bp_step(b, node, &ev);
    }
}

static void bp_step(bp *b, int node, paxos_event *ev)
{
    paxos_update u;
    paxos_update_init(&u);
    int rc = paxos_step(b->g[node], ev, &u);
    if (rc && rc != MERR_NOT_LEADER) b->err = rc;
    bp_handle(b, node, &u);
}

static void bp_deliver(bp *b)
{
    while (b->n && !b->err) {
        bp_wire w = b->q[b->head];
        b->head = (b->head + 1) % b->cap;
        b->n--;
        paxos_msg m;
        merr e = {0};
        if (paxos_msg_decode(w.p, w.len, &m, &e) == 0) {
            paxos_event ev = {0};
            ev.type = PAXOS_EV_MESSAGE;
            ev.now = bp_tt(b);
            ev.msg = &m;
            bp_step(b, (int)m.to, &ev);
            paxos_msg_free(&m);
        } else {
            b->err = MERR_CORRUPT;
        }
        free(w.p);
    }
}

static int run(uint32_t batch, uint32_t window, int64_t proposals, int64_t inflight, int64_t size,
               double *rate)
{
    bp b;
    memset(&b, 0, sizeof(b));
    b.now = 1000000000000LL;
    paxos_members m = {BP_NODES, 0, {1, 2, 3}, {0}};
    for (int i = 1; i <= BP_NODES; i++) {
        paxos_config c;
        paxos_config_default(&c, 1, (paxos_node_id)i);
        c.max_batch = batch;
        c.window = window;
        c.quiesce_ticks = 0;
        if (paxos_group_new(&c, &m, NULL, &b.g[i])) return MERR_NOMEM;
    }
    paxos_event ev = {0};
    ev.type = PAXOS_EV_CAMPAIGN;
    ev.now = bp_tt(&b);
    bp_step(&b, 1, &ev);
    bp_deliver(&b);
    uint8_t *payload = calloc(1, (size_t)size + 1);
    uint64_t id = 0, snap_every = 20000, last_snap = 0;
    int64_t t0 = mtime_mono_ns();
    while ((int64_t)b.applied_props < proposals && !b.err && payload) {
        for (int64_t k = 0; k < inflight; k++) {
            paxos_event p = {0};
            p.type = PAXOS_EV_PROPOSE;
            p.now = bp_tt(&b);
            p.id = ++id;
            p.data = payload;
            p.len = (uint32_t)size;
            bp_step(&b, 1, &p);
        }
        b.now += 1000000;
        for (int n = 1; n <= BP_NODES; n++) { /* heartbeats carry the commit point */
            paxos_event t = {0};
            t.type = PAXOS_EV_TICK;
            t.now = bp_tt(&b);
            bp_step(&b, n, &t);
        }
        bp_deliver(&b);
        if (b.applied_props - last_snap > snap_every) { /* keep the log window bounded */
            last_snap = b.applied_props;
            for (int n = 1; n <= BP_NODES; n++) {
                paxos_event s = {0};
                s.type = PAXOS_EV_SNAPSHOT_TAKEN;
                s.now = bp_tt(&b);
                s.slot = paxos_get_applied(b.g[n]);
                bp_step(&b, n, &s);
            }
        }
    }
    int64_t dt = mtime_mono_ns() - t0;
    int rc = b.err;
    *rate = dt > 0 ? (double)b.applied_props * 1e9 / (double)dt : 0;
    printf("  batch=%-3u window=%-3u  %9.0f proposals/s  %6.2f proposals/slot  %5.2f msgs/proposal"
           "  %.0f B/proposal on the wire\n",
           batch, window, *rate, b.slots ? (double)b.applied_props / (double)b.slots : 0,
           b.applied_props ? (double)b.msgs / (double)b.applied_props : 0,
           b.applied_props ? (double)b.bytes / (double)b.applied_props : 0);
    free(payload);
    for (size_t k = 0; k < b.n; k++) free(b.q[(b.head + k) % b.cap].p);
    free(b.q);
    for (int i = 1; i <= BP_NODES; i++) paxos_group_free(b.g[i]);
    return rc;
}

int cmd_bench_paxos(int argc, char **argv)
{
    int64_t proposals = 200000, inflight = 256, size = 100, batch = 0, window = 0;
    const cli_flag flags[] = {
        {"proposals", CLI_INT, &proposals, "N", "proposals to commit per run (default 200000)"},
        {"inflight", CLI_INT, &inflight, "N", "proposals submitted per burst (default 256)"},
        {"size", CLI_SIZE, &size, "BYTES", "payload per proposal (default 100)"},
        {"batch", CLI_INT, &batch, "N", "proposals per slot (default: compare 1 and 64)"},
        {"window", CLI_INT, &window, "N", "slots in flight (default: compare 1 and 64)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || proposals <= 0 || inflight <= 0 || size < 0 || size > (1 << 20) || batch < 0 ||
        window < 0 || batch > 100000 || window > 100000) {
        fprintf(stderr, "%s: bad arguments (see --help)\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    printf("paxos core, 3 replicas in one process, codec on, persistence acked at once, "
           "%" PRId64 " B payload, bursts of %" PRId64 "\n",
           size, inflight);
    double r1, r2;
    if (batch || window) {
        rc = run(batch ? (uint32_t)batch : 64, window ? (uint32_t)window : 64, proposals, inflight,
                 size, &r1);
    } else {
        rc = run(1, 1, proposals, inflight, size, &r1);
        if (!rc) rc = run(64, 64, proposals, inflight, size, &r2);
        if (!rc && r1 > 0) printf("  batched+pipelined / unbatched: %.1fx\n", r2 / r1);
    }
    if (rc) {
        fprintf(stderr, "%s: failed: %s\n", argv[0], merr_str(rc));
        return 1;
    }
    return 0;
}
