/* merge_sim: a deterministic simulation of splits and merges under load with
 * crashes (issue 9), over the real range stores (storage/: range_split,
 * range_freeze, range_merge, recovery at open) and the real route cache.
 *
 *   merge_sim --seed N [--steps M] [--verbose]
 *   merge_sim --seeds A-B [--steps M]     sweep; stops at the first failure
 *
 * Three nodes each hold a replica of every range. The Paxos logs are
 * abstracted to one chosen sequence of commands per range (what the real
 * logs agree on); each node applies them at its own pace, in the order the
 * replica layer does (server/replica_split.c, server/replica_merge.c):
 * writes (refused once the range froze, or outside its span after a split),
 * SPLIT, FREEZE, and MERGE, which waits until the node's own replica of the
 * right range froze. A merge's coordinator freezes the right range, waits
 * until every replica of it froze (range.FrozenAt), then logs MERGE in the
 * left range's log; it may forget a merge half-way (a crash), and a later
 * retry freezes again (the first freeze slot stands) and finishes. Nodes
 * crash (every handle closed, stores reopened at restart) and lag.
 *
 * Checked after every step: every node decides every log entry the same way
 * (applied or refused); a node's replicas never overlap; the directory (the
 * most advanced report of every range, resolved by generation as
 * placement/route_cache.h does) covers the key space exactly once. At the
 * end, with every node caught up: all nodes hold the same ranges, and a read
 * of every key through each node's ranges finds exactly the last
 * acknowledged write (no acknowledged write lost, none seen twice). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cli.h"
#include "placement/route_cache.h"
#include "sim/sim.h"
#include "storage/range.h"

#define NODES            3
#define MAXR             48
#define NKEYS            200
#define MAXLOG           4096
#define SPLIT_RANGES_MAX 16

typedef enum { C_WRITE, C_SPLIT, C_FREEZE, C_MERGE } ckind;

typedef struct cmd {
    ckind k;
    char key[8];
    uint64_t ts, val;
    uint64_t new_id, gen, right_id, lgen, rgen, fslot;
    int outcome; /* -1 undecided, 0 refused/no-op, 1 took effect */
} cmd;

typedef struct rlog {
    cmd v[MAXLOG];
    size_t n;
} rlog;

typedef struct simnode {
    int up;
    char dir[256];
    range *rep[MAXR];
} simnode;

typedef struct sim {
    sim_rng rng;
    simnode node[NODES];
    rlog *log[MAXR];
    uint64_t next_id, ts;
    int pending; /* a merge under way: 0 none */
    uint64_t pl, pr, pfslot;
    uint64_t acked[NKEYS]; /* last acknowledged value per key (0: none) */
    uint64_t acked_ts[NKEYS];
    int verbose, failed;
    char why[512];
    uint64_t merges, splits, writes, crashes;
} sim;

static void fail(sim *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
}

static void path_of(sim *s, int n, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/r%" PRIu64 ".db", s->node[n].dir, id);
}

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return route_keycmp(a, al, b, bl);
}

static int contains(range *r, const char *key)
{
    range_meta m;
    range_get_meta(r, &m);
    size_t kl = strlen(key);
    if (keycmp((const uint8_t *)key, kl, m.start, m.start_len) < 0) return 0;
    return !m.end_len || keycmp((const uint8_t *)key, kl, m.end, m.end_len) < 0;
}

static uint64_t frozen(range *r)
{
    uint64_t f = 0;
    range_frozen_at(r, &f);
    return f;
}

static int noop(range *r, uint64_t slot)
{
    range_batch b = {0};
    return range_apply(r, &b, slot, NULL);
}

/* Decides entry i of range id the same way on every node, or fails. */
static void decide(sim *s, uint64_t id, size_t i, int outcome)
{
    cmd *c = &s->log[id]->v[i];
    if (c->outcome < 0) {
        c->outcome = outcome;
        if (c->k == C_WRITE && outcome == 1) {
            int k = atoi(c->key + 1);
            if (c->ts > s->acked_ts[k]) s->acked_ts[k] = c->ts, s->acked[k] = c->val;
        }
    } else if (c->outcome != outcome) {
        fail(s, "range %" PRIu64 " entry %zu: nodes decided it differently", id, i);
    }
}

/* Applies the next entry of range id on node n: 1 applied, 0 nothing to do
 * or stalled (a MERGE waiting for the right replica to freeze). */
static int apply_one(sim *s, int n, uint64_t id)
{
    simnode *nd = &s->node[n];
    range *r = nd->rep[id];
    if (!r || !s->log[id]) return 0;
    range_meta m;
    range_get_meta(r, &m);
    uint64_t slot = m.applied + 1;
    if (slot > s->log[id]->n) return 0;
    cmd *c = &s->log[id]->v[slot - 1];
    int rc = 0, took = 0;
    uint64_t fz = frozen(r);
    switch (c->k) {
    case C_WRITE:
        if (!fz && contains(r, c->key)) {
            range_write w = {(const uint8_t *)c->key, strlen(c->key), (const uint8_t *)&c->val,
                             sizeof(c->val), 0};
            range_batch b = {.ts = c->ts, .writes = &w, .nwrites = 1};
            rc = range_apply(r, &b, slot, NULL);
            took = 1;
        } else {
            rc = noop(r, slot);
        }
        break;
    case C_SPLIT: {
        int inside = contains(r, c->key) &&
                     keycmp((const uint8_t *)c->key, strlen(c->key), m.start, m.start_len) != 0;
        if (fz || m.generation != c->gen || !inside) {
            rc = noop(r, slot);
            break;
        }
        char p[300];
        path_of(s, n, c->new_id, p, sizeof(p));
        rc = range_split(r, (const uint8_t *)c->key, strlen(c->key), c->new_id, p, slot);
        merr e = {0};
        range *right = NULL;
        if (!rc) rc = range_open(p, NULL, &right, &e);
        if (!rc) rc = range_reset_applied(right); /* its own log starts at slot 1 */
        if (!rc) nd->rep[c->new_id] = right, took = 1;
        break;
    }
    case C_FREEZE:
        if (!fz && m.generation == c->gen) {
            rc = range_freeze(r, slot);
            took = 1;
        } else {
            rc = noop(r, slot);
        }
        break;
    case C_MERGE: {
        if (m.generation != c->lgen || fz) {
            rc = noop(r, slot);
            break;
        }
        range *rr = nd->rep[c->right_id];
        if (!rr || !frozen(rr)) return 0; /* stalled until it froze here */
        range_meta rm;
        range_get_meta(rr, &rm);
        int adjacent = m.end_len && keycmp(m.end, m.end_len, rm.start, rm.start_len) == 0;
        if (frozen(rr) != c->fslot || rm.generation != c->rgen || !adjacent) {
            rc = noop(r, slot);
            break;
        }
        nd->rep[c->right_id] = NULL;
        rc = range_merge(r, rr, slot);
        took = 1;
        break;
    }
    }
    if (rc) {
        fail(s, "node %d range %" PRIu64 " slot %" PRIu64 ": %s", n, id, slot, range_err(r)->msg);
        return 0;
    }
    decide(s, id, slot - 1, took);
    return 1;
}

static rlog *log_of(sim *s, uint64_t id)
{
    if (!s->log[id]) s->log[id] = calloc(1, sizeof(rlog));
    return s->log[id];
}

static void append(sim *s, uint64_t id, cmd c)
{
    rlog *l = log_of(s, id);
    if (l->n == MAXLOG) return;
    c.outcome = -1;
    l->v[l->n++] = c;
}

static int caught_up(sim *s, uint64_t id);

/* Appends c to range id's log from node n; a proposer that had applied the
 * whole log applies it at once, as a leaseholder does. */
static void propose(sim *s, int n, uint64_t id, cmd c)
{
    int lead = n >= 0 && caught_up(s, id) == n;
    append(s, id, c);
    if (lead) apply_one(s, n, id);
}

/* The proposer of range id: an up node whose replica applied its whole log
 * (a leaseholder applied everything before it serves). -1: none. */
static int caught_up(sim *s, uint64_t id)
{
    for (int n = 0; n < NODES; n++) {
        range *r = s->node[n].rep[id];
        if (!s->node[n].up || !r || !s->log[id]) continue;
        range_meta m;
        range_get_meta(r, &m);
        if (m.applied == s->log[id]->n) return n;
    }
    return -1;
}

/* The range holding key at node n, or 0. */
static uint64_t holder(sim *s, int n, const char *key)
{
    for (uint64_t id = 1; id < MAXR; id++)
        if (s->node[n].rep[id] && contains(s->node[n].rep[id], key)) return id;
    return 0;
}

static void op_write(sim *s)
{
    int k = (int)sim_rng_below(&s->rng, NKEYS);
    cmd c = {.k = C_WRITE, .ts = ++s->ts, .val = s->ts};
    snprintf(c.key, sizeof(c.key), "k%03d", k);
    int n = (int)sim_rng_below(&s->rng, NODES);
    if (!s->node[n].up) return;
    uint64_t id = holder(s, n, c.key);
    if (id) propose(s, n, id, c), s->writes++;
}

static void op_split(sim *s)
{
    size_t count = 0;
    for (uint64_t id = 1; id < MAXR; id++) count += s->log[id] != NULL;
    if (count >= SPLIT_RANGES_MAX || s->next_id + 1 >= MAXR) return;
    cmd c = {.k = C_SPLIT};
    snprintf(c.key, sizeof(c.key), "k%03d", (int)sim_rng_below(&s->rng, NKEYS));
    int n = (int)sim_rng_below(&s->rng, NODES);
    if (!s->node[n].up) return;
    uint64_t id = holder(s, n, c.key);
    if (!id || caught_up(s, id) != n) return;
    range_meta m;
    range_get_meta(s->node[n].rep[id], &m);
    c.gen = m.generation;
    c.new_id = ++s->next_id;
    log_of(s, c.new_id);
    propose(s, n, id, c);
    s->splits++;
}

/* Starts a merge of a random range with its right neighbour: FREEZE. */
static void op_merge_start(sim *s, uint64_t left)
{
    int n = caught_up(s, left);
    if (n < 0 || s->pending) return;
    range_meta m;
    range_get_meta(s->node[n].rep[left], &m);
    if (!m.end_len) return;
    uint64_t right = 0;
    for (uint64_t id = 1; id < MAXR && !right; id++) {
        range *r = s->node[n].rep[id];
        if (!r || id == left) continue;
        range_meta rm;
        range_get_meta(r, &rm);
        if (keycmp(rm.start, rm.start_len, m.end, m.end_len) == 0) right = id;
    }
    int rn = right ? caught_up(s, right) : -1;
    if (rn < 0) return;
    cmd c = {.k = C_FREEZE};
    range_meta rm;
    range_get_meta(s->node[rn].rep[right], &rm);
    c.gen = rm.generation;
    propose(s, rn, right, c);
    s->pending = 1, s->pl = left, s->pr = right, s->pfslot = 0;
}

/* The coordinator's next step: learn the freeze slot, wait for every
 * replica of the right range to freeze, then MERGE in the left's log. */
static void op_merge_step(sim *s)
{
    if (!s->pending) return;
    int rn = caught_up(s, s->pr), ln = caught_up(s, s->pl);
    if (rn < 0 || ln < 0) return;
    range *rr = s->node[rn].rep[s->pr];
    if (!s->pfslot) {
        s->pfslot = frozen(rr);
        if (!s->pfslot) s->pending = 0; /* refused (the range changed): give up */
        return;
    }
    range_meta lm, rm;
    range_get_meta(s->node[ln].rep[s->pl], &lm);
    range_get_meta(rr, &rm);
    /* As replica_merge: the left must still end where the right starts. */
    if (!lm.end_len || keycmp(lm.end, lm.end_len, rm.start, rm.start_len) != 0 ||
        frozen(s->node[ln].rep[s->pl])) {
        s->pending = 0;
        return;
    }
    for (int n = 0; n < NODES; n++) {
        if (!s->node[n].up) return; /* wait */
        range *x = s->node[n].rep[s->pr];
        if (x && frozen(x) != s->pfslot) return;
        if (!x) {
            /* No replica of the right range: fine only if it merged there
             * already (the holder of its start key is newer); a node that
             * has not applied the split creating it must catch up first. */
            char k[64] = {0};
            memcpy(k, rm.start, rm.start_len < 63 ? rm.start_len : 63);
            uint64_t h = holder(s, n, k);
            range_meta hm;
            if (!h) return;
            range_get_meta(s->node[n].rep[h], &hm);
            if (hm.generation <= rm.generation) return;
        }
    }
    cmd c = {.k = C_MERGE,
             .right_id = s->pr,
             .lgen = lm.generation,
             .rgen = rm.generation,
             .fslot = s->pfslot};
    propose(s, ln, s->pl, c);
    s->pending = 0;
    s->merges++;
}

/* Retry: a frozen range whose merge was forgotten is merged again. */
static void op_redrive(sim *s)
{
    if (s->pending) return;
    for (uint64_t id = 1; id < MAXR; id++) {
        int n = caught_up(s, id);
        if (n < 0 || !frozen(s->node[n].rep[id])) continue;
        range_meta rm;
        range_get_meta(s->node[n].rep[id], &rm);
        for (uint64_t l = 1; l < MAXR; l++) {
            range *x = s->node[n].rep[l];
            if (!x || l == id) continue;
            range_meta lm;
            range_get_meta(x, &lm);
            if (lm.end_len && keycmp(lm.end, lm.end_len, rm.start, rm.start_len) == 0) {
                op_merge_start(s, l);
                return;
            }
        }
    }
}

static void crash(sim *s, int n)
{
    for (uint64_t id = 0; id < MAXR; id++) {
        if (s->node[n].rep[id]) range_close(s->node[n].rep[id]);
        s->node[n].rep[id] = NULL;
    }
    s->node[n].up = 0;
    s->crashes++;
}

static void restart(sim *s, int n)
{
    for (uint64_t id = 1; id < MAXR; id++) {
        char p[300];
        path_of(s, n, id, p, sizeof(p));
        if (access(p, F_OK)) continue;
        merr e = {0};
        range_opts o = {.no_create = 1};
        if (range_open(p, &o, &s->node[n].rep[id], &e))
            fail(s, "node %d: reopening range %" PRIu64 ": %s", n, id, e.msg);
    }
    s->node[n].up = 1;
}

/* A node's replicas never overlap; the directory covers the key space once. */
static void check(sim *s)
{
    route_cache dir;
    route_cache_init(&dir);
    for (uint64_t id = 1; id < MAXR && !s->failed; id++) {
        range *best = NULL;
        uint64_t best_applied = 0;
        for (int n = 0; n < NODES; n++) {
            range *r = s->node[n].rep[id];
            if (!r || !s->node[n].up) continue;
            range_meta m;
            range_get_meta(r, &m);
            if (!best || m.applied > best_applied) best = r, best_applied = m.applied;
            for (uint64_t j = id + 1; j < MAXR; j++) {
                range *o = s->node[n].rep[j];
                if (!o) continue;
                range_meta om;
                range_get_meta(o, &om);
                range_get_meta(r, &m);
                int before = m.end_len && keycmp(m.end, m.end_len, om.start, om.start_len) <= 0;
                int after = om.end_len && keycmp(om.end, om.end_len, m.start, m.start_len) <= 0;
                if (!before && !after)
                    fail(s, "node %d: ranges %" PRIu64 " and %" PRIu64 " overlap", n, id, j);
            }
        }
        if (!best) continue;
        range_meta m;
        range_get_meta(best, &m);
        if (route_cache_update(&dir, id, m.generation, m.start, m.start_len, m.end, m.end_len, 0) <
            0)
            fail(s, "route cache: out of memory");
    }
    if (!s->failed && !route_cache_complete(&dir))
        fail(s, "the directory does not cover the key space exactly once (%zu entries)", dir.n);
    route_cache_free(&dir);
}

typedef struct seen {
    sim *s;
    int n;
    int count[NKEYS];
    uint64_t val[NKEYS];
} seen;

static int see(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
               uint64_t ts)
{
    seen *x = arg;
    (void)ts;
    char k[8] = {0};
    if (klen != 4 || vlen != sizeof(uint64_t)) return 0;
    memcpy(k, key, 4);
    int i = atoi(k + 1);
    x->count[i]++;
    memcpy(&x->val[i], val, sizeof(uint64_t));
    return 0;
}

/* Every node caught up: same ranges everywhere, every key read exactly once
 * with its last acknowledged value. */
static void final_check(sim *s)
{
    for (int n = 0; n < NODES; n++)
        if (!s->node[n].up) restart(s, n);
    s->pending = 0;
    for (int round = 0; round < 100000 && !s->failed; round++) {
        int any = 0;
        for (int n = 0; n < NODES; n++)
            for (uint64_t id = 1; id < MAXR; id++) any |= apply_one(s, n, id);
        if (!any) break;
    }
    check(s);
    for (int n = 0; n < NODES && !s->failed; n++) {
        seen x;
        memset(&x, 0, sizeof(x));
        for (uint64_t id = 1; id < MAXR; id++) {
            range *r = s->node[n].rep[id];
            if ((r != NULL) != (s->node[0].rep[id] != NULL))
                fail(s, "nodes 0 and %d disagree on range %" PRIu64, n, id);
            if (r) range_scan(r, NULL, 0, NULL, 0, RANGE_TS_MAX, 0, 0, see, &x, NULL);
        }
        for (int k = 0; k < NKEYS && !s->failed; k++) {
            if (x.count[k] > 1) fail(s, "node %d: key k%03d read %d times", n, k, x.count[k]);
            if (s->acked[k] && (!x.count[k] || x.val[k] != s->acked[k]))
                fail(s,
                     "node %d: key k%03d lost its acknowledged value %" PRIu64
                     " (read %d times, %" PRIu64 ")",
                     n, k, s->acked[k], x.count[k], x.val[k]);
            if (!s->acked[k] && x.count[k])
                fail(s, "node %d: key k%03d has a value nobody wrote", n, k);
        }
    }
}

static int run_seed(uint64_t seed, uint64_t steps, int verbose, char *why, size_t cap)
{
    sim *s = calloc(1, sizeof(*s));
    if (!s) return 2;
    sim_rng_seed(&s->rng, seed);
    s->verbose = verbose;
    s->next_id = 1;
    char base[] = "/tmp/meridian-merge-sim-XXXXXX";
    if (!mkdtemp(base)) {
        free(s);
        return 2;
    }
    range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
    log_of(s, 1);
    for (int n = 0; n < NODES; n++) {
        snprintf(s->node[n].dir, sizeof(s->node[n].dir), "%s/n%d", base, n);
        if (mkdir(s->node[n].dir, 0700)) fail(s, "mkdir %s", s->node[n].dir);
        char p[300];
        path_of(s, n, 1, p, sizeof(p));
        merr e = {0};
        if (range_create(p, &d, NULL, &s->node[n].rep[1], &e)) fail(s, "create: %s", e.msg);
        s->node[n].up = 1;
    }
    for (uint64_t step = 0; step < steps && !s->failed; step++) {
        uint64_t x = sim_rng_below(&s->rng, 100);
        int n = (int)sim_rng_below(&s->rng, NODES);
        int downs = 0;
        for (int i = 0; i < NODES; i++) downs += !s->node[i].up;
        if (x < 30) {
            op_write(s);
        } else if (x < 35) {
            op_split(s);
        } else if (x < 42) {
            op_merge_start(s, 1 + sim_rng_below(&s->rng, s->next_id));
        } else if (x < 54) {
            op_merge_step(s);
        } else if (x < 55) {
            s->pending = 0; /* the coordinator crashed */
        } else if (x < 57) {
            op_redrive(s);
        } else if (x < 58) {
            if (s->node[n].up && downs == 0 && sim_rng_below(&s->rng, 3) == 0) crash(s, n);
        } else if (x < 62) {
            if (!s->node[n].up) restart(s, n);
        } else if (s->node[n].up) {
            /* A node applies some entries of one range (lagging is normal). */
            uint64_t id = 1 + sim_rng_below(&s->rng, s->next_id);
            for (int t = 0; t < 4 && s->node[n].rep[id] && caught_up(s, id) == n; t++)
                id = 1 + sim_rng_below(&s->rng, s->next_id); /* prefer one it lags in */
            int k = (int)sim_rng_below(&s->rng, 12);
            while (k-- > 0) apply_one(s, n, id);
        }
        if (!s->failed) check(s);
        if (s->failed && verbose) fprintf(stderr, "step %" PRIu64 "\n", step);
    }
    if (!s->failed) final_check(s);
    int rc = s->failed;
    if (rc) snprintf(why, cap, "%s", s->why);
    if (verbose || rc)
        printf("seed %" PRIu64 ": %s writes=%" PRIu64 " splits=%" PRIu64 " merges=%" PRIu64
               " crashes=%" PRIu64 "\n",
               seed, rc ? "FAILED" : "ok", s->writes, s->splits, s->merges, s->crashes);
    for (int n = 0; n < NODES; n++)
        for (uint64_t id = 0; id < MAXR; id++)
            if (s->node[n].rep[id]) range_close(s->node[n].rep[id]);
    for (uint64_t id = 0; id < MAXR; id++) free(s->log[id]);
    char cmdline[400];
    snprintf(cmdline, sizeof(cmdline), "rm -rf '%s'", base);
    if (system(cmdline) != 0) rc = rc ? rc : 2;
    free(s);
    return rc;
}

int main(int argc, char **argv)
{
    int64_t seed = -1, steps = 3000;
    const char *seeds = NULL;
    int verbose = 0, npos = 0, done = 0;
    const cli_flag flags[] = {
        {"seed", CLI_INT, &seed, "N", "run one seed"},
        {"seeds", CLI_STR, &seeds, "A-B", "sweep seeds A..B (inclusive)"},
        {"steps", CLI_INT, &steps, "M", "events per seed (default 3000)"},
        {"verbose", CLI_BOOL, &verbose, NULL, "print a line per seed"},
        {0},
    };
    int st = cli_parse("merge_sim", "[flags]", flags, argc, argv, &npos, &done);
    if (done) return st;
    uint64_t lo, hi;
    if (seeds) {
        if (sim_parse_range(seeds, &lo, &hi)) {
            fprintf(stderr, "merge_sim: --seeds wants A-B, got %s\n", seeds);
            return CLI_EXIT_USAGE;
        }
    } else if (seed >= 0) {
        lo = hi = (uint64_t)seed;
    } else {
        fprintf(stderr, "merge_sim: give --seed N or --seeds A-B\n");
        return CLI_EXIT_USAGE;
    }
    if (steps < 0) return CLI_EXIT_USAGE;
    for (uint64_t sd = lo; sd <= hi; sd++) {
        char why[512] = "";
        int rc = run_seed(sd, (uint64_t)steps, verbose, why, sizeof(why));
        if (rc) {
            printf("merge_sim: seed %" PRIu64 " failed: %s\n(replay: merge_sim --seed %" PRIu64
                   " --steps %" PRId64 ")\n",
                   sd, why, sd, steps);
            return 1;
        }
    }
    printf("merge_sim: seeds %" PRIu64 "-%" PRIu64 " passed\n", lo, hi);
    return 0;
}
