/* 2PC coordinator: the single-range fast path, two-phase commit, the commit
 * timestamp rules, commit-wait (also overlapping the Paxos write), aborts,
 * presumed abort, idempotent commit, every transition of the table, bad
 * input and failover replay. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/twopc.h"

#define TXN   42
#define SELF  1
#define EPOCH 7

static txn_out out;
static merr err;
static const uint64_t PARTS[2] = {2, 3};

static const txn_action *find(txn_action_type t)
{
    for (size_t i = 0; i < out.n; i++)
        if (out.a[i].type == t) return &out.a[i];
    return NULL;
}

static const txn_action *decision_to(uint64_t r)
{
    for (size_t i = 0; i < out.n; i++)
        if (out.a[i].type == TXN_ACT_SEND_DECISION && out.a[i].to == r) return &out.a[i];
    return NULL;
}

static int commit(txn_coord *c, size_t n, txn_ts hlc, txn_ts assigned, txn_ts latest)
{
    txn_event ev = {.type = TXN_EV_COMMIT,
                    .clk = {.hlc_now = hlc, .last_assigned = assigned, .tt_latest = latest},
                    .parts = PARTS,
                    .n_parts = n,
                    .reads_epoch = EPOCH};
    return txn_coord_step(c, &ev, &out, &err);
}

static int vote(txn_coord *c, uint64_t from, bool yes, txn_ts ts)
{
    txn_event ev = {.type = TXN_EV_VOTE, .from = from, .yes = yes, .ts = ts};
    return txn_coord_step(c, &ev, &out, &err);
}

static int query(txn_coord *c, uint64_t from, txn_ts ts)
{
    txn_event ev = {.type = TXN_EV_STATUS_QUERY, .from = from, .ts = ts};
    return txn_coord_step(c, &ev, &out, &err);
}

static int chosen_rec(txn_coord *c, const txn_record *r)
{
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = r};
    return txn_coord_step(c, &ev, &out, &err);
}

/* The record just proposed comes back chosen. */
static int chosen_last(txn_coord *c)
{
    txn_record r = out.rec;
    return chosen_rec(c, &r);
}

static int tt_now(txn_coord *c, txn_ts earliest, txn_ts latest)
{
    txn_event ev = {.type = TXN_EV_TT_NOW, .clk = {.tt_earliest = earliest, .tt_latest = latest}};
    return txn_coord_step(c, &ev, &out, &err);
}

static int simple(txn_coord *c, txn_event_type t)
{
    txn_event ev = {.type = t};
    return txn_coord_step(c, &ev, &out, &err);
}

static void test_single_range_fast_path(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 0, 100, 120, 500), 0);
    assert_int_equal(c.st, TXN_COORD_LOGGING);
    assert_true(c.s == 500); /* tt_now().latest dominates */
    assert_true(find(TXN_ACT_ASSIGNED_TS)->ts == 500);
    assert_int_equal(out.rec.type, TXN_REC_COMMIT);
    assert_true(out.rec.ts == 500 && out.rec.n_parts == 0);
    assert_true(find(TXN_ACT_COMMIT_WAIT)->ts == 500);
    assert_null(find(TXN_ACT_REPLY_CLIENT));
    txn_record rec = out.rec;

    /* Commit-wait not over yet: wait again. */
    assert_int_equal(tt_now(&c, 450, 550), 0);
    assert_int_equal(c.st, TXN_COORD_LOGGING);
    assert_true(find(TXN_ACT_COMMIT_WAIT)->ts == 500);
    assert_int_equal(chosen_rec(&c, &rec), 0);
    assert_int_equal(c.st, TXN_COORD_COMMIT_WAIT);
    assert_true(find(TXN_ACT_APPLY)->ts == 500);
    assert_null(find(TXN_ACT_RELEASE_LOCKS));
    assert_int_equal(tt_now(&c, 500, 600), 0); /* earliest == s is not after s */
    assert_int_equal(c.st, TXN_COORD_COMMIT_WAIT);
    assert_null(find(TXN_ACT_REPLY_CLIENT));
    assert_int_equal(tt_now(&c, 501, 601), 0);
    assert_int_equal(c.st, TXN_COORD_COMMITTED);
    const txn_action *r = find(TXN_ACT_REPLY_CLIENT);
    assert_non_null(r);
    assert_true(r->outcome == TXN_OUTCOME_COMMITTED && r->ts == 500);
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));

    /* s is strictly above every assigned ts, and not below the HLC. */
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 0, 100, 900, 500), 0);
    assert_true(c.s == 901);
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 0, 1000, 900, 500), 0);
    assert_true(c.s == 1000);
}

static void test_two_phase_commit(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 2, 100, 120, 500), 0);
    assert_int_equal(c.st, TXN_COORD_COLLECTING);
    assert_non_null(find(TXN_ACT_MARK_PREPARED));
    assert_null(find(TXN_ACT_PROPOSE));
    assert_int_equal(vote(&c, 2, true, 700), 0);
    assert_int_equal(c.st, TXN_COORD_COLLECTING);
    assert_int_equal(vote(&c, 2, true, 700), 0); /* a repeat changes nothing */
    assert_int_equal(c.st, TXN_COORD_COLLECTING);
    assert_int_equal(vote(&c, 3, true, 650), 0);
    assert_int_equal(c.st, TXN_COORD_LOGGING);
    /* s >= every prepare ts and >= tt latest at the commit request. */
    assert_true(c.s == 700);
    assert_int_equal(out.rec.n_parts, 2);
    assert_int_equal(chosen_last(&c), 0);
    assert_int_equal(tt_now(&c, 701, 800), 0);
    assert_int_equal(c.st, TXN_COORD_COMMITTED);
    assert_true(decision_to(2)->outcome == TXN_OUTCOME_COMMITTED && decision_to(2)->ts == 700);
    assert_true(decision_to(3)->ts == 700);
    assert_true(find(TXN_ACT_REPLY_CLIENT)->ts == 700);

    /* Same txn id, same answer. */
    assert_int_equal(commit(&c, 2, 5000, 5000, 5000), 0);
    assert_true(find(TXN_ACT_REPLY_CLIENT)->ts == 700);
    assert_int_equal(c.st, TXN_COORD_COMMITTED);
    /* A participant that missed the decision hears it again. */
    assert_int_equal(query(&c, 3, 650), 0);
    assert_true(decision_to(3)->ts == 700);
    assert_int_equal(vote(&c, 2, true, 700), 0);
    assert_true(decision_to(2)->ts == 700);
}

static void test_commit_wait_overlaps_logging(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 0, 100, 120, 500), 0);
    txn_record rec = out.rec;
    assert_int_equal(tt_now(&c, 600, 700), 0); /* s already in the past */
    assert_int_equal(c.st, TXN_COORD_LOGGING);
    assert_null(find(TXN_ACT_REPLY_CLIENT)); /* but not logged yet */
    assert_int_equal(chosen_rec(&c, &rec), 0);
    assert_int_equal(c.st, TXN_COORD_COMMITTED);
    assert_non_null(find(TXN_ACT_APPLY));
    assert_non_null(find(TXN_ACT_REPLY_CLIENT));
}

static void test_vote_no_aborts(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 2, 100, 120, 500), 0);
    assert_int_equal(vote(&c, 2, true, 700), 0);
    assert_int_equal(vote(&c, 3, false, 0), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    assert_int_equal(out.rec.n_parts, 2);
    assert_null(find(TXN_ACT_REPLY_CLIENT)); /* not before the abort is logged */
    assert_int_equal(chosen_last(&c), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTED);
    assert_true(find(TXN_ACT_REPLY_CLIENT)->outcome == TXN_OUTCOME_ABORTED);
    assert_true(decision_to(2)->outcome == TXN_OUTCOME_ABORTED);
    assert_non_null(decision_to(3));
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));
    assert_int_equal(commit(&c, 2, 1, 1, 1), 0); /* a retry hears the same */
    assert_true(find(TXN_ACT_REPLY_CLIENT)->outcome == TXN_OUTCOME_ABORTED);
}

static void test_missing_vote_times_out(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 2, 100, 120, 500), 0);
    assert_int_equal(vote(&c, 2, true, 700), 0);
    assert_int_equal(simple(&c, TXN_EV_TIMEOUT), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(simple(&c, TXN_EV_TIMEOUT), 0); /* propose again */
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    assert_int_equal(chosen_last(&c), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTED);
    /* The late vote is answered with the outcome. */
    assert_int_equal(vote(&c, 3, true, 710), 0);
    assert_true(decision_to(3)->outcome == TXN_OUTCOME_ABORTED);
}

static void test_votes_before_commit_request(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(vote(&c, 3, true, 650), 0);
    assert_int_equal(vote(&c, 2, true, 800), 0);
    assert_int_equal(c.st, TXN_COORD_ACTIVE);
    assert_int_equal(commit(&c, 2, 100, 120, 500), 0);
    assert_int_equal(c.st, TXN_COORD_LOGGING);
    assert_true(c.s == 800);

    /* A range that voted but is not in the commit's list: abort, tell it. */
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(vote(&c, 4, true, 650), 0);
    assert_int_equal(commit(&c, 2, 100, 120, 500), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(out.rec.n_parts, 3);
    assert_int_equal(chosen_last(&c), 0);
    assert_non_null(decision_to(4));
}

static void test_presumed_abort_on_query(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    /* A prepared participant asks about a txn we never got a commit for. */
    assert_int_equal(query(&c, 2, 650), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    assert_int_equal(commit(&c, 2, 100, 120, 500), 0); /* arrives late */
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(out.n, 0);
    txn_record r;
    memset(&r, 0, sizeof(r));
    r.type = TXN_REC_ABORT;
    r.txn = TXN;
    assert_int_equal(chosen_rec(&c, &r), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTED);
    assert_true(find(TXN_ACT_REPLY_CLIENT)->outcome == TXN_OUTCOME_ABORTED);
    assert_non_null(decision_to(2));

    /* While collecting, a query counts as a yes vote with its prepare ts. */
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(commit(&c, 1, 100, 120, 500), 0);
    assert_int_equal(query(&c, 2, 900), 0);
    assert_int_equal(c.st, TXN_COORD_LOGGING);
    assert_true(c.s == 900);
}

static void test_client_gone(void **state)
{
    (void)state;
    txn_coord c;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(simple(&c, TXN_EV_TIMEOUT), 0);
    /* Nobody to tell: locks go, nothing is logged. */
    assert_int_equal(c.st, TXN_COORD_ABANDONED);
    assert_int_equal(out.n, 1);
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));
    assert_int_equal(simple(&c, TXN_EV_TIMEOUT), 0);
    assert_int_equal(out.n, 0);
    /* A late commit is refused, once the refusal is logged: a later leader
     * knowing nothing could otherwise still commit it. */
    assert_int_equal(commit(&c, 0, 100, 120, 500), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    assert_null(find(TXN_ACT_REPLY_CLIENT));
    assert_int_equal(chosen_last(&c), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTED);
    assert_true(find(TXN_ACT_REPLY_CLIENT)->outcome == TXN_OUTCOME_ABORTED);
    assert_int_equal(commit(&c, 0, 100, 120, 500), 0); /* and again: same answer */
    assert_true(find(TXN_ACT_REPLY_CLIENT)->outcome == TXN_OUTCOME_ABORTED);

    /* A vote reaching an abandoned coordinator: log, then answer. */
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(simple(&c, TXN_EV_ABORT), 0);
    assert_int_equal(c.st, TXN_COORD_ABANDONED);
    assert_int_equal(vote(&c, 2, true, 10), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_null(decision_to(2));
    assert_int_equal(chosen_last(&c), 0);
    assert_true(decision_to(2)->outcome == TXN_OUTCOME_ABORTED);

    /* Giving up after some participant spoke logs the abort at once. */
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    assert_int_equal(vote(&c, 2, true, 10), 0);
    assert_int_equal(simple(&c, TXN_EV_TIMEOUT), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);

    /* Read locks taken under another leader: refused at once. */
    txn_coord_init(&c, TXN, SELF, EPOCH + 1, true);
    assert_int_equal(commit(&c, 0, 100, 120, 500), 0);
    assert_int_equal(c.st, TXN_COORD_ABORTED);
    assert_true(find(TXN_ACT_REPLY_CLIENT)->outcome == TXN_OUTCOME_ABORTED);
}

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    txn_coord c, before;
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    uint64_t bad[3] = {2, 2, 3};
    txn_event ev = {.type = TXN_EV_COMMIT, .parts = bad, .n_parts = 2};
    memcpy(&before, &c, sizeof(c));
    assert_int_equal(txn_coord_step(&c, &ev, &out, &err), MERR_INVALID);
    assert_non_null(strstr(err.msg, "twice"));
    bad[1] = SELF;
    assert_int_equal(txn_coord_step(&c, &ev, &out, &err), MERR_INVALID);
    bad[1] = 0;
    assert_int_equal(txn_coord_step(&c, &ev, &out, &err), MERR_INVALID);
    ev.parts = NULL;
    assert_int_equal(txn_coord_step(&c, &ev, &out, &err), MERR_INVALID);
    ev.n_parts = TXN_MAX_PARTS + 1;
    assert_int_equal(txn_coord_step(&c, &ev, &out, &err), MERR_TOOBIG);
    assert_memory_equal(&c, &before, sizeof(c));
    assert_int_equal(out.n, 0);

    assert_int_equal(commit(&c, 2, 100, 120, 500), 0);
    memcpy(&before, &c, sizeof(c));
    assert_int_equal(vote(&c, 9, true, 1), MERR_PROTOCOL); /* not a participant */
    assert_int_equal(vote(&c, 0, true, 1), MERR_INVALID);
    assert_int_equal(vote(&c, 2, true, 700), 0);
    memcpy(&before, &c, sizeof(c));
    assert_int_equal(vote(&c, 2, false, 0), MERR_PROTOCOL); /* changed its vote */
    assert_non_null(strstr(err.msg, "changed"));
    assert_memory_equal(&c, &before, sizeof(c));
    txn_record r;
    memset(&r, 0, sizeof(r));
    r.type = TXN_REC_PREPARE;
    r.txn = TXN;
    assert_int_equal(chosen_rec(&c, &r), MERR_PROTOCOL);
    assert_int_equal(tt_now(&c, 10, 5), MERR_INVALID);
    assert_int_equal(simple(&c, TXN_EV_PREPARE), MERR_PROTOCOL);
    assert_int_equal(simple(&c, (txn_event_type)0), MERR_PROTOCOL);
    assert_memory_equal(&c, &before, sizeof(c));

    /* Too many ranges heard before the commit request. */
    txn_coord_init(&c, TXN, SELF, EPOCH, true);
    for (uint64_t i = 0; i < TXN_MAX_PARTS; i++) assert_int_equal(vote(&c, 100 + i, true, 1), 0);
    assert_int_equal(vote(&c, 999, true, 1), MERR_TOOBIG);
    assert_int_equal(commit(&c, 2, 1, 1, 1), MERR_TOOBIG); /* too many to tell */
    assert_int_equal(c.st, TXN_COORD_ACTIVE);
}

/* Drives a fresh leader coordinator (participants 2 and 3) into state st. */
static void drive(txn_coord *c, txn_coord_state st)
{
    txn_coord_init(c, TXN, SELF, EPOCH, true);
    switch (st) {
    case TXN_COORD_ACTIVE: break;
    case TXN_COORD_COLLECTING: assert_int_equal(commit(c, 2, 100, 120, 500), 0); break;
    case TXN_COORD_LOGGING:
        drive(c, TXN_COORD_COLLECTING);
        assert_int_equal(vote(c, 2, true, 600), 0);
        assert_int_equal(vote(c, 3, true, 600), 0);
        break;
    case TXN_COORD_COMMIT_WAIT:
        drive(c, TXN_COORD_LOGGING);
        assert_int_equal(chosen_last(c), 0);
        break;
    case TXN_COORD_COMMITTED:
        drive(c, TXN_COORD_COMMIT_WAIT);
        assert_int_equal(tt_now(c, 601, 700), 0);
        break;
    case TXN_COORD_ABORTING:
        drive(c, TXN_COORD_COLLECTING);
        assert_int_equal(vote(c, 2, false, 0), 0);
        break;
    case TXN_COORD_ABORTED:
        drive(c, TXN_COORD_ABORTING);
        assert_int_equal(chosen_last(c), 0);
        break;
    case TXN_COORD_ABANDONED: assert_int_equal(simple(c, TXN_EV_TIMEOUT), 0); break;
    default: fail();
    }
    assert_int_equal(c->st, st);
}

/* Expected legality, independent of coordinator.c. Columns: COMMIT,
 * VOTE(yes), VOTE(no), STATUS_QUERY, CHOSEN(commit), CHOSEN(abort), TT_NOW,
 * TIMEOUT, ABORT. */
static const int EXPECT[TXN_COORD_NSTATES][9] = {
    [TXN_COORD_ACTIVE] = {1, 1, 1, 1, 1, 1, 1, 1, 1},
    [TXN_COORD_COLLECTING] = {1, 1, 1, 1, 0, 0, 1, 1, 1},
    [TXN_COORD_LOGGING] = {1, 1, 0, 1, 1, 0, 1, 1, 0},
    [TXN_COORD_COMMIT_WAIT] = {1, 1, 0, 1, 1, 0, 1, 1, 0},
    [TXN_COORD_COMMITTED] = {1, 1, 0, 1, 1, 0, 1, 1, 0},
    [TXN_COORD_ABORTING] = {1, 1, 1, 1, 0, 1, 1, 1, 1},
    [TXN_COORD_ABORTED] = {1, 1, 1, 1, 0, 1, 1, 1, 1},
    [TXN_COORD_ABANDONED] = {1, 1, 1, 1, 0, 1, 1, 1, 1},
};

static int step_kind(txn_coord *c, int k)
{
    txn_record r;
    memset(&r, 0, sizeof(r));
    r.txn = TXN;
    r.ts = 600;
    switch (k) {
    case 0: return commit(c, 2, 100, 120, 500);
    case 1: return vote(c, 3, true, 600);
    case 2: return vote(c, 3, false, 0);
    case 3: return query(c, 3, 600);
    case 4: r.type = TXN_REC_COMMIT; return chosen_rec(c, &r);
    case 5: r.type = TXN_REC_ABORT; return chosen_rec(c, &r);
    case 6: return tt_now(c, 601, 700);
    case 7: return simple(c, TXN_EV_TIMEOUT);
    default: return simple(c, TXN_EV_ABORT);
    }
}

static void test_every_transition(void **state)
{
    (void)state;
    for (int s = 0; s < TXN_COORD_NSTATES; s++)
        for (int k = 0; k < 9; k++) {
            txn_coord c, before;
            drive(&c, (txn_coord_state)s);
            memcpy(&before, &c, sizeof(c));
            int rc = step_kind(&c, k);
            if (EXPECT[s][k]) {
                if (rc)
                    fail_msg("state %s kind %d refused: %s", txn_coord_state_name(s), k, err.msg);
            } else {
                if (rc != MERR_PROTOCOL)
                    fail_msg("state %s kind %d: want PROTOCOL, got %d", txn_coord_state_name(s), k,
                             rc);
                assert_memory_equal(&c, &before, sizeof(c));
                assert_int_equal(out.n, 0);
            }
        }
}

static void test_failover_replay(void **state)
{
    (void)state;
    /* The old leader decides, the decision is chosen, then it dies before
     * commit-wait ends: nobody was told. */
    txn_coord old;
    drive(&old, TXN_COORD_LOGGING);
    txn_record dec = out.rec;
    assert_int_equal(chosen_rec(&old, &dec), 0);

    txn_coord f;
    txn_coord_init(&f, TXN, SELF, EPOCH, false);
    assert_int_equal(chosen_rec(&f, &dec), 0);
    assert_int_equal(f.st, TXN_COORD_COMMIT_WAIT);
    assert_true(find(TXN_ACT_APPLY)->ts == 600); /* followers apply too */
    assert_int_equal(out.n, 1);
    assert_int_equal(simple(&f, TXN_EV_TIMEOUT), MERR_NOT_LEADER);
    txn_coord_become_leader(&f, EPOCH + 1, &out);
    assert_true(find(TXN_ACT_ASSIGNED_TS)->ts == 600);
    assert_true(find(TXN_ACT_COMMIT_WAIT)->ts == 600);
    assert_int_equal(tt_now(&f, 601, 700), 0);
    assert_int_equal(f.st, TXN_COORD_COMMITTED);
    assert_true(decision_to(2)->ts == 600 && decision_to(3)->ts == 600);
    assert_null(find(TXN_ACT_REPLY_CLIENT));     /* that client asked the old leader */
    assert_int_equal(commit(&f, 2, 1, 1, 1), 0); /* its retry */
    assert_true(find(TXN_ACT_REPLY_CLIENT)->ts == 600);

    /* An abort record replays to ABORTED; the new leader tells everyone. */
    txn_coord a;
    drive(&a, TXN_COORD_ABORTING);
    txn_record ab = out.rec;
    txn_coord_init(&a, TXN, SELF, EPOCH, false);
    assert_int_equal(chosen_rec(&a, &ab), 0);
    assert_int_equal(a.st, TXN_COORD_ABORTED);
    assert_int_equal(out.n, 0);
    txn_coord_become_leader(&a, EPOCH + 1, &out);
    assert_true(decision_to(2)->outcome == TXN_OUTCOME_ABORTED);
    assert_non_null(decision_to(3));

    /* Undecided work of an earlier term is aborted, never re-timestamped. */
    drive(&a, TXN_COORD_LOGGING);
    txn_coord_become_follower(&a);
    txn_coord_become_leader(&a, EPOCH + 1, &out);
    assert_int_equal(a.st, TXN_COORD_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    drive(&a, TXN_COORD_COLLECTING);
    txn_coord_become_follower(&a);
    txn_coord_become_leader(&a, EPOCH + 1, &out);
    assert_int_equal(a.st, TXN_COORD_ABORTING);
    assert_string_equal(txn_coord_state_name(a.st), "ABORTING");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_range_fast_path),
        cmocka_unit_test(test_two_phase_commit),
        cmocka_unit_test(test_commit_wait_overlaps_logging),
        cmocka_unit_test(test_vote_no_aborts),
        cmocka_unit_test(test_missing_vote_times_out),
        cmocka_unit_test(test_votes_before_commit_request),
        cmocka_unit_test(test_presumed_abort_on_query),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_every_transition),
        cmocka_unit_test(test_failover_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
