/* Randomized end-to-end test of the 2PC machines: one transaction over a
 * coordinator range and 1-4 participant ranges, each range a Paxos log plus a
 * leader machine. The network loses, duplicates and reorders messages;
 * leaders fail over (a new replica replays the log, or the old leader comes
 * back), and proposals in flight at a failover are either chosen or lost;
 * timers fire at random. A calm phase follows in which nothing is lost, so
 * the transaction must finish. Checks:
 *  - agreement: every range that decided has the coordinator's outcome, and
 *    committed participants use the coordinator's s, which is >= every
 *    prepare ts in their logs;
 *  - commit-wait: the client reply and the commit decisions leave only when
 *    true time is past s;
 *  - every machine accepts every event it gets (no MERR_PROTOCOL);
 *  - a follower replaying each log ends where the leader did;
 *  - safe time: each range tracks its closed timestamp (advanced by the
 *    leader with txn_closed_next) and its in-doubt transactions; at no
 *    moment before a range applied the commit may its safe time reach s,
 *    or a snapshot read at s there would have missed the commit.
 * Seeds 1..2000 by default; MERIDIAN_TWOPC_SEEDS=A-B sweeps by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/safetime.h"
#include "txn/twopc.h"

static uint64_t rng_state, cur_seed;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("seed %llu: ", (unsigned long long)cur_seed);                              \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

#define TXN    500
#define EPS    5 /* clock uncertainty */
#define MAXR   5 /* range 1 coordinates; 2..MAXR participate */
#define MAXLOG 32
#define MAXMSG 512

typedef struct range {
    bool is_coord;
    txn_part p;
    txn_coord c;
    uint64_t epoch;
    int skew;
    txn_ts last_assigned;
    txn_record log[MAXLOG];
    int nlog;
    txn_record pending[MAXLOG];
    int npending;
    bool waiting_tt;      /* coordinator asked for a TT_NOW */
    txn_safe safe;        /* this range's safe time (closed ts survives failover) */
    bool applied;         /* the commit record is chosen here */
    txn_ts max_unapplied; /* greatest safe time seen before applied */
} range;

typedef struct msg {
    int to; /* range index */
    txn_event_type type;
    uint64_t from;
    bool yes;
    txn_outcome outcome;
    txn_ts ts;
} msg;

static range R[MAXR + 1];
static int nr; /* ranges 1..nr */
static msg Q[MAXMSG];
static int nq;
static txn_ts now_t; /* true time */
static int replied;
static txn_outcome reply_outcome;
static txn_ts reply_ts;

static txn_clock clk(const range *r)
{
    txn_ts local = now_t + (txn_ts)r->skew;
    return (txn_clock){.hlc_now = local,
                       .last_assigned = r->last_assigned,
                       .tt_earliest = now_t - EPS,
                       .tt_latest = now_t + EPS};
}

static void send(int to, txn_event_type type, uint64_t from, bool yes, txn_outcome o, txn_ts ts)
{
    if (nq == MAXMSG) return; /* a full network drops */
    Q[nq++] = (msg){.to = to, .type = type, .from = from, .yes = yes, .outcome = o, .ts = ts};
}

static void act(int ri, const txn_out *out)
{
    range *r = &R[ri];
    for (size_t i = 0; i < out->n; i++) {
        const txn_action *a = &out->a[i];
        switch (a->type) {
        case TXN_ACT_PROPOSE:
            CHECK(r->npending < MAXLOG, "too many proposals");
            r->pending[r->npending++] = out->rec;
            break;
        case TXN_ACT_SEND_VOTE:
            send((int)a->to, TXN_EV_VOTE, (uint64_t)ri, a->yes, 0, a->ts);
            break;
        case TXN_ACT_STATUS_QUERY:
            send((int)a->to, TXN_EV_STATUS_QUERY, (uint64_t)ri, true, 0, a->ts);
            break;
        case TXN_ACT_SEND_DECISION:
            /* Commit-wait: nobody hears of a commit before s has passed. */
            if (a->outcome == TXN_OUTCOME_COMMITTED)
                CHECK(now_t > a->ts, "decision sent at %llu, s %llu", (unsigned long long)now_t,
                      (unsigned long long)a->ts);
            send((int)a->to, TXN_EV_DECISION, (uint64_t)ri, false, a->outcome, a->ts);
            break;
        case TXN_ACT_REPLY_CLIENT:
            if (a->outcome == TXN_OUTCOME_COMMITTED)
                CHECK(now_t > a->ts, "client told at %llu, s %llu", (unsigned long long)now_t,
                      (unsigned long long)a->ts);
            CHECK(!replied || (reply_outcome == a->outcome && reply_ts == a->ts),
                  "client got two different answers");
            replied = 1;
            reply_outcome = a->outcome;
            reply_ts = a->ts;
            break;
        case TXN_ACT_COMMIT_WAIT: r->waiting_tt = true; break;
        case TXN_ACT_ASSIGNED_TS:
            if (a->ts > r->last_assigned) r->last_assigned = a->ts;
            break;
        default: break; /* locks and apply: no lock table here */
        }
    }
}

static void step_range(int ri, const txn_event *ev)
{
    range *r = &R[ri];
    txn_out out;
    merr e = {0};
    int rc = r->is_coord ? txn_coord_step(&r->c, ev, &out, &e) : txn_part_step(&r->p, ev, &out, &e);
    CHECK(rc == 0, "range %d refused %s: %s", ri, txn_event_name(ev->type), e.msg);
    act(ri, &out);
}

/* What a chosen record does to safe time. */
static void note_chosen(range *r, const txn_record *rec)
{
    if (rec->type == TXN_REC_PREPARE) {
        CHECK(txn_safe_prepared(&r->safe, TXN, rec->ts) == 0, "two prepare timestamps");
        return;
    }
    if (rec->type == TXN_REC_COMMIT) r->applied = true;
    for (size_t i = 0; i < r->safe.n; i++)
        if (r->safe.doubt[i].txn == TXN) {
            CHECK(txn_safe_decided(&r->safe, TXN, r->safe.doubt[i].prepare_ts) == 0, "decided");
            break;
        }
}

/* The leader closes timestamps up to its earliest bound, below every
 * proposal in flight; what it closed counts as assigned. */
static void close_ts(range *r)
{
    bool have = false;
    txn_ts min_pending = 0;
    for (int i = 0; i < r->npending; i++) {
        if (r->pending[i].type == TXN_REC_ABORT) continue;
        if (!have || r->pending[i].ts < min_pending) min_pending = r->pending[i].ts;
        have = true;
    }
    txn_ts c = txn_closed_next(r->safe.closed, now_t - EPS, have, min_pending);
    txn_safe_close(&r->safe, c);
    if (c > r->last_assigned) r->last_assigned = c;
}

static void choose_one(int ri)
{
    range *r = &R[ri];
    if (!r->npending) return;
    txn_record rec = r->pending[0];
    memmove(&r->pending[0], &r->pending[1], sizeof(rec) * (size_t)--r->npending);
    CHECK(r->nlog < MAXLOG, "log full");
    r->log[r->nlog++] = rec;
    note_chosen(r, &rec);
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[r->nlog - 1]};
    step_range(ri, &ev);
}

/* A new leader: proposals in flight are chosen or lost, then either a fresh
 * replica replays the log or the old leader (which saw everything) returns. */
static void failover(int ri)
{
    range *r = &R[ri];
    int fresh = rn(2);
    int keep = 0;
    txn_record chosen[MAXLOG];
    for (int i = 0; i < r->npending; i++)
        if (rn(2)) chosen[keep++] = r->pending[i];
    r->npending = 0;
    r->waiting_tt = false;
    r->epoch++;
    if (fresh) {
        /* A new replica: its in-doubt set comes from the log. */
        txn_ts closed = r->safe.closed;
        txn_safe_free(&r->safe);
        txn_safe_init(&r->safe);
        txn_safe_close(&r->safe, closed);
        for (int i = 0; i < r->nlog; i++) note_chosen(r, &r->log[i]);
    }
    txn_out out;
    merr e = {0};
    if (r->is_coord) {
        if (fresh) {
            txn_coord_init(&r->c, TXN, (uint64_t)ri, r->epoch, false);
            for (int i = 0; i < r->nlog; i++) {
                txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[i]};
                CHECK(txn_coord_step(&r->c, &ev, &out, &e) == 0, "replay: %s", e.msg);
            }
        } else {
            txn_coord_become_follower(&r->c);
        }
    } else {
        if (fresh) {
            txn_part_init(&r->p, TXN, (uint64_t)ri, r->epoch, false);
            for (int i = 0; i < r->nlog; i++) {
                txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[i]};
                CHECK(txn_part_step(&r->p, &ev, &out, &e) == 0, "replay: %s", e.msg);
            }
        } else {
            txn_part_become_follower(&r->p);
        }
    }
    /* The survivors of the old term get chosen before the new leader leads. */
    for (int i = 0; i < keep; i++) {
        r->log[r->nlog++] = chosen[i];
        note_chosen(r, &chosen[i]);
        txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[r->nlog - 1]};
        int rc = r->is_coord ? txn_coord_step(&r->c, &ev, &out, &e)
                             : txn_part_step(&r->p, &ev, &out, &e);
        CHECK(rc == 0, "chosen at failover: %s", e.msg);
    }
    for (int i = 0; i < r->nlog; i++)
        if (r->log[i].ts > r->last_assigned) r->last_assigned = r->log[i].ts;
    /* Sometimes a short term of another leader came in between and closed
     * timestamps up to now. */
    if (rn(2)) close_ts(r);
    if (r->is_coord)
        txn_coord_become_leader(&r->c, r->epoch, &out);
    else
        txn_part_become_leader(&r->p, r->epoch, &out);
    act(ri, &out);
}

static void deliver(int qi)
{
    msg m = Q[qi];
    Q[qi] = Q[--nq];
    range *r = &R[m.to];
    uint64_t parts[MAXR];
    txn_event ev = {.type = m.type,
                    .clk = clk(r),
                    .from = m.from,
                    .yes = m.yes,
                    .outcome = m.outcome,
                    .ts = m.ts};
    if (m.type == TXN_EV_PREPARE) ev.coord = 1;
    if (m.type == TXN_EV_COMMIT) {
        for (int i = 2; i <= nr; i++) parts[i - 2] = (uint64_t)i;
        ev.parts = parts;
        ev.n_parts = (size_t)(nr - 1);
    }
    step_range(m.to, &ev);
}

static bool final_state(const range *r)
{
    if (r->is_coord) return r->c.st == TXN_COORD_COMMITTED || r->c.st == TXN_COORD_ABORTED;
    return r->p.st == TXN_PART_COMMITTED || r->p.st == TXN_PART_ABORTED;
}

static void client_sends(void)
{
    for (int i = 2; i <= nr; i++) send(i, TXN_EV_PREPARE, 0, false, 0, 0);
    send(1, TXN_EV_COMMIT, 0, false, 0, 0);
}

/* One random step; calm = no loss, no duplicates, no failovers. */
static void random_step(bool calm)
{
    now_t += 1 + rn(3);
    unsigned what = rn(100);
    int ri = 1 + (int)rn((unsigned)nr);
    if (what < 40 && nq) {
        int qi = (int)rn((unsigned)nq);
        if (!calm && rn(10) == 0)
            Q[qi] = Q[--nq]; /* lost */
        else {
            if (!calm && rn(20) == 0)
                send(Q[qi].to, Q[qi].type, Q[qi].from, Q[qi].yes, Q[qi].outcome,
                     Q[qi].ts); /* duplicated */
            deliver(qi);
        }
    } else if (what < 65) {
        choose_one(ri);
    } else if (what < 80) {
        if (R[1].waiting_tt) {
            R[1].waiting_tt = false;
            txn_event ev = {.type = TXN_EV_TT_NOW, .clk = clk(&R[1])};
            step_range(1, &ev);
        }
    } else if (what < (calm ? 88u : 86u)) {
        txn_event ev = {.type = TXN_EV_TIMEOUT, .clk = clk(&R[ri])};
        step_range(ri, &ev);
    } else if (what < 90) {
        if (!calm) failover(ri);
    } else if (what < 92) {
        send(1, TXN_EV_COMMIT, 0, false, 0, 0); /* the client retries */
    } else if (what < 97) {
        close_ts(&R[ri]);
    }
    for (int i = 1; i <= nr; i++) {
        txn_ts st = txn_safe_time(&R[i].safe);
        if (!R[i].applied && st > R[i].max_unapplied) R[i].max_unapplied = st;
    }
}

static void run_seed(uint64_t seed)
{
    cur_seed = rng_state = seed;
    memset(R, 0, sizeof(R));
    nq = 0;
    replied = 0;
    now_t = 1000;
    nr = 2 + (int)rn(MAXR - 1);
    for (int i = 1; i <= nr; i++) {
        R[i].is_coord = i == 1;
        R[i].epoch = 1;
        R[i].skew = (int)rn(2 * EPS + 1) - EPS;
        R[i].last_assigned = 900 + rn(300);
        if (i == 1)
            txn_coord_init(&R[i].c, TXN, 1, 1, true);
        else
            txn_part_init(&R[i].p, TXN, (uint64_t)i, 1, true);
    }
    client_sends();
    for (int s = 0; s < 300; s++) random_step(false);
    int s = 0;
    for (;; s++) {
        bool done = !nq;
        for (int i = 1; i <= nr; i++) done = done && final_state(&R[i]) && !R[i].npending;
        if (done) break;
        CHECK(s < 20000, "not finished in the calm phase");
        random_step(true);
    }

    /* Agreement, timestamps, and followers that replay the logs. */
    bool commit = R[1].c.st == TXN_COORD_COMMITTED;
    txn_ts sc = R[1].c.s;
    if (replied) CHECK((reply_outcome == TXN_OUTCOME_COMMITTED) == commit, "client misinformed");
    if (replied && commit) CHECK(reply_ts == sc, "client told another s");
    for (int i = 1; i <= nr; i++) {
        range *r = &R[i];
        txn_out out;
        merr e = {0};
        bool f_commit;
        if (i == 1) {
            txn_coord f;
            txn_coord_init(&f, TXN, 1, 99, false);
            for (int k = 0; k < r->nlog; k++) {
                txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[k]};
                CHECK(txn_coord_step(&f, &ev, &out, &e) == 0, "follower replay: %s", e.msg);
            }
            f_commit = f.st == TXN_COORD_COMMIT_WAIT || f.st == TXN_COORD_COMMITTED;
        } else {
            CHECK((r->p.st == TXN_PART_COMMITTED) == commit, "range %d: %s, coordinator %s", i,
                  txn_part_state_name(r->p.st), txn_coord_state_name(R[1].c.st));
            if (commit) CHECK(r->p.commit_ts == sc, "range %d committed at another ts", i);
            txn_part f;
            txn_part_init(&f, TXN, (uint64_t)i, 99, false);
            for (int k = 0; k < r->nlog; k++) {
                if (commit && r->log[k].type == TXN_REC_PREPARE)
                    CHECK(r->log[k].ts <= sc, "s below a prepare ts");
                txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[k]};
                CHECK(txn_part_step(&f, &ev, &out, &e) == 0, "follower replay: %s", e.msg);
            }
            f_commit = f.st == TXN_PART_COMMITTED;
        }
        CHECK(f_commit == commit, "a follower of range %d disagrees", i);
        if (commit)
            CHECK(r->max_unapplied < sc, "range %d was safe up to %llu before applying s %llu", i,
                  (unsigned long long)r->max_unapplied, (unsigned long long)sc);
        txn_safe_free(&r->safe);
    }
}

static void test_random_failures(void **state)
{
    (void)state;
    unsigned long long a = 1, b = 2000;
    const char *env = getenv("MERIDIAN_TWOPC_SEEDS");
    if (env && sscanf(env, "%llu-%llu", &a, &b) != 2) fail_msg("MERIDIAN_TWOPC_SEEDS wants A-B");
    int commits = 0;
    for (unsigned long long s = a; s <= b; s++) {
        run_seed(s);
        commits += R[1].c.st == TXN_COORD_COMMITTED;
    }
    print_message("2pc sim: seeds %llu-%llu: %d committed, %llu aborted\n", a, b, commits,
                  b - a + 1 - (unsigned long long)commits);
    /* Both outcomes must occur, or the sweep tested little. */
    assert_true(commits > 0);
    assert_true((unsigned long long)commits < b - a + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
