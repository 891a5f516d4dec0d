/* 2PC participant: every transition of the table (legal ones move as the
 * diagram says, illegal ones are refused without a change), the prepare
 * timestamp rule, timeouts, idempotency, bad input and failover replay. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/twopc.h"

#define TXN   77
#define SELF  5
#define COORD 9
#define EPOCH 3

static txn_out out;
static merr err;

static const txn_action *find(txn_action_type t)
{
    for (size_t i = 0; i < out.n; i++)
        if (out.a[i].type == t) return &out.a[i];
    return NULL;
}

static int count(txn_action_type t)
{
    int n = 0;
    for (size_t i = 0; i < out.n; i++) n += out.a[i].type == t;
    return n;
}

static txn_event ev_prepare(txn_ts hlc_now, txn_ts last_assigned)
{
    return (txn_event){.type = TXN_EV_PREPARE,
                       .clk = {.hlc_now = hlc_now, .last_assigned = last_assigned},
                       .coord = COORD,
                       .reads_epoch = EPOCH};
}

static txn_record rec_of(txn_rec_type t, txn_ts ts)
{
    txn_record r;
    memset(&r, 0, sizeof(r));
    r.type = t;
    r.txn = TXN;
    r.ts = ts;
    r.coord = COORD;
    return r;
}

static int chosen(txn_part *p, txn_rec_type t, txn_ts ts)
{
    txn_record r = rec_of(t, ts);
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r};
    return txn_part_step(p, &ev, &out, &err);
}

static int decide(txn_part *p, txn_event_type type, txn_outcome o, txn_ts ts)
{
    txn_event ev = {.type = type, .outcome = o, .ts = ts};
    return txn_part_step(p, &ev, &out, &err);
}

static int simple(txn_part *p, txn_event_type type)
{
    txn_event ev = {.type = type};
    return txn_part_step(p, &ev, &out, &err);
}

/* Drives a fresh leader participant into state st (prepare ts 151). */
static void drive(txn_part *p, txn_part_state st)
{
    txn_part_init(p, TXN, SELF, EPOCH, true);
    txn_event prep = ev_prepare(100, 150);
    switch (st) {
    case TXN_PART_ACTIVE: break;
    case TXN_PART_PREPARING: assert_int_equal(txn_part_step(p, &prep, &out, &err), 0); break;
    case TXN_PART_PREPARED:
        drive(p, TXN_PART_PREPARING);
        assert_int_equal(chosen(p, TXN_REC_PREPARE, 151), 0);
        break;
    case TXN_PART_COMMITTING:
        drive(p, TXN_PART_PREPARED);
        assert_int_equal(decide(p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 160), 0);
        break;
    case TXN_PART_ABORTING:
        drive(p, TXN_PART_PREPARED);
        assert_int_equal(decide(p, TXN_EV_DECISION, TXN_OUTCOME_ABORTED, 0), 0);
        break;
    case TXN_PART_COMMITTED:
        drive(p, TXN_PART_COMMITTING);
        assert_int_equal(chosen(p, TXN_REC_COMMIT, 160), 0);
        break;
    case TXN_PART_ABORTED: assert_int_equal(simple(p, TXN_EV_TIMEOUT), 0); break;
    default: fail();
    }
    assert_int_equal(p->st, st);
}

static void test_commit_path_and_prepare_ts(void **state)
{
    (void)state;
    txn_part p;
    txn_part_init(&p, TXN, SELF, EPOCH, true);
    txn_event prep = ev_prepare(100, 150);
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), 0);
    assert_int_equal(p.st, TXN_PART_PREPARING);
    /* Strictly above every assigned ts, not below the HLC. */
    assert_true(p.prepare_ts == 151);
    assert_non_null(find(TXN_ACT_MARK_PREPARED));
    assert_true(find(TXN_ACT_ASSIGNED_TS)->ts == 151);
    assert_non_null(find(TXN_ACT_PROPOSE));
    assert_int_equal(out.rec.type, TXN_REC_PREPARE);
    assert_true(out.rec.ts == 151 && out.rec.coord == COORD && out.rec.txn == TXN);
    assert_null(find(TXN_ACT_SEND_VOTE)); /* no vote before the record is chosen */

    assert_int_equal(chosen(&p, TXN_REC_PREPARE, 151), 0);
    assert_int_equal(p.st, TXN_PART_PREPARED);
    assert_true(txn_part_in_doubt(&p));
    const txn_action *v = find(TXN_ACT_SEND_VOTE);
    assert_non_null(v);
    assert_true(v->yes && v->ts == 151 && v->to == COORD);

    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 160), 0);
    assert_int_equal(p.st, TXN_PART_COMMITTING);
    assert_int_equal(out.rec.type, TXN_REC_COMMIT);
    assert_true(out.rec.ts == 160);
    assert_true(find(TXN_ACT_ASSIGNED_TS)->ts == 160);
    assert_null(find(TXN_ACT_RELEASE_LOCKS)); /* not before the outcome is logged */

    assert_int_equal(chosen(&p, TXN_REC_COMMIT, 160), 0);
    assert_int_equal(p.st, TXN_PART_COMMITTED);
    assert_false(txn_part_in_doubt(&p));
    assert_true(find(TXN_ACT_APPLY)->ts == 160);
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));

    /* The HLC wins when it is ahead of what was assigned. */
    txn_part_init(&p, TXN, SELF, EPOCH, true);
    prep = ev_prepare(500, 150);
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), 0);
    assert_true(p.prepare_ts == 500);
}

static void test_abort_paths(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    assert_true(txn_part_in_doubt(&p)); /* until the abort is chosen */
    assert_int_equal(chosen(&p, TXN_REC_ABORT, 0), 0);
    assert_int_equal(p.st, TXN_PART_ABORTED);
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));
    assert_null(find(TXN_ACT_SEND_VOTE)); /* the coordinator decided: no vote */

    /* Abort decided while ACTIVE: nothing to log. */
    drive(&p, TXN_PART_ACTIVE);
    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_ABORTED, 0), 0);
    assert_int_equal(p.st, TXN_PART_ABORTED);
    assert_int_equal(out.n, 1);
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));

    /* Local abort while the prepare is in flight: no yes vote ever goes. */
    drive(&p, TXN_PART_PREPARING);
    assert_int_equal(simple(&p, TXN_EV_ABORT), 0);
    assert_int_equal(p.st, TXN_PART_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);
    assert_int_equal(chosen(&p, TXN_REC_PREPARE, 151), 0); /* chosen first: ignored */
    assert_int_equal(p.st, TXN_PART_ABORTING);
    assert_null(find(TXN_ACT_SEND_VOTE));
    assert_int_equal(chosen(&p, TXN_REC_ABORT, 0), 0);
    const txn_action *v = find(TXN_ACT_SEND_VOTE);
    assert_non_null(v);
    assert_false(v->yes);
}

static void test_client_gone_and_late_commit_refused(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_ACTIVE);
    assert_int_equal(simple(&p, TXN_EV_TIMEOUT), 0);
    assert_int_equal(p.st, TXN_PART_ABORTED);
    assert_non_null(find(TXN_ACT_RELEASE_LOCKS));
    txn_event prep = ev_prepare(100, 150);
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), 0);
    assert_int_equal(p.st, TXN_PART_ABORTED);
    const txn_action *v = find(TXN_ACT_SEND_VOTE);
    assert_non_null(v);
    assert_false(v->yes);
    assert_true(v->to == COORD);
    assert_null(find(TXN_ACT_PROPOSE));
}

static void test_reads_from_another_epoch_vote_no(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_ACTIVE);
    txn_event prep = ev_prepare(100, 150);
    prep.reads_epoch = EPOCH - 1; /* locks taken under the previous leader */
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), 0);
    assert_int_equal(p.st, TXN_PART_ABORTED);
    assert_false(find(TXN_ACT_SEND_VOTE)->yes);
    /* No reads here at all (reads_epoch 0) is fine. */
    drive(&p, TXN_PART_ACTIVE);
    prep.reads_epoch = 0;
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), 0);
    assert_int_equal(p.st, TXN_PART_PREPARING);
}

static void test_repeats_are_idempotent(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_PREPARED);
    txn_event prep = ev_prepare(900, 900);
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), 0);
    assert_int_equal(p.st, TXN_PART_PREPARED);
    assert_true(find(TXN_ACT_SEND_VOTE)->ts == 151); /* same vote, same ts */
    assert_null(find(TXN_ACT_PROPOSE));
    assert_int_equal(chosen(&p, TXN_REC_PREPARE, 151), 0);
    assert_int_equal(out.n, 0);

    drive(&p, TXN_PART_COMMITTING);
    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 160), 0);
    assert_int_equal(out.n, 0);
    /* A different commit ts contradicts what we know. */
    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 161), MERR_PROTOCOL);
    assert_int_equal(p.st, TXN_PART_COMMITTING);
    assert_int_equal(out.n, 0);
    drive(&p, TXN_PART_COMMITTED);
    assert_int_equal(chosen(&p, TXN_REC_COMMIT, 160), 0);
    assert_int_equal(out.n, 0); /* applied once */
}

static void test_commit_below_prepare_refused(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_PREPARED);
    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 150), MERR_PROTOCOL);
    assert_non_null(strstr(err.msg, "below prepare"));
    assert_int_equal(p.st, TXN_PART_PREPARED);
    assert_int_equal(chosen(&p, TXN_REC_COMMIT, 100), MERR_PROTOCOL);
    assert_int_equal(p.st, TXN_PART_PREPARED);
    /* Equal to the prepare ts is allowed. */
    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 151), 0);
}

static void test_in_doubt_asks_the_coordinator(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_PREPARED);
    assert_int_equal(simple(&p, TXN_EV_TIMEOUT), 0);
    const txn_action *q = find(TXN_ACT_STATUS_QUERY);
    assert_non_null(q);
    assert_true(q->to == COORD && q->ts == 151);
    assert_int_equal(decide(&p, TXN_EV_STATUS_REPLY, TXN_OUTCOME_UNKNOWN, 0), 0);
    assert_int_equal(p.st, TXN_PART_PREPARED);
    assert_int_equal(out.n, 0);
    assert_int_equal(decide(&p, TXN_EV_STATUS_REPLY, TXN_OUTCOME_COMMITTED, 170), 0);
    assert_int_equal(p.st, TXN_PART_COMMITTING);
    /* Timeouts while a proposal is pending propose it again. */
    assert_int_equal(simple(&p, TXN_EV_TIMEOUT), 0);
    assert_int_equal(out.rec.type, TXN_REC_COMMIT);
    assert_true(out.rec.ts == 170);
}

static void test_bad_input(void **state)
{
    (void)state;
    txn_part p;
    drive(&p, TXN_PART_PREPARED);
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = NULL};
    assert_int_equal(txn_part_step(&p, &ev, &out, &err), MERR_INVALID);
    txn_record r = rec_of(TXN_REC_COMMIT, 200);
    r.txn = TXN + 1;
    ev.rec = &r;
    assert_int_equal(txn_part_step(&p, &ev, &out, &err), MERR_INVALID);
    r = rec_of((txn_rec_type)9, 200);
    assert_int_equal(txn_part_step(&p, &ev, &out, &err), MERR_INVALID);
    assert_int_equal(decide(&p, TXN_EV_DECISION, TXN_OUTCOME_UNKNOWN, 0), MERR_INVALID);
    assert_int_equal(simple(&p, TXN_EV_VOTE), MERR_PROTOCOL); /* a coordinator event */
    assert_int_equal(simple(&p, (txn_event_type)99), MERR_PROTOCOL);
    assert_int_equal(txn_part_step(&p, NULL, &out, &err), MERR_INVALID);
    assert_int_equal(p.st, TXN_PART_PREPARED);
    drive(&p, TXN_PART_ACTIVE);
    txn_event prep = ev_prepare(1, 1);
    prep.coord = 0;
    assert_int_equal(txn_part_step(&p, &prep, &out, &err), MERR_INVALID);
    assert_int_equal(p.st, TXN_PART_ACTIVE);
}

/* Expected legality, written out independently of participant.c's table:
 * 1 = accepted, 0 = refused with MERR_PROTOCOL. Columns: PREPARE,
 * CHOSEN(prepare), CHOSEN(commit), CHOSEN(abort), DECISION(commit),
 * DECISION(abort), STATUS(unknown), TIMEOUT, ABORT. */
static const int EXPECT[TXN_PART_NSTATES][9] = {
    [TXN_PART_ACTIVE] = {1, 1, 0, 1, 0, 1, 1, 1, 1},
    [TXN_PART_PREPARING] = {1, 1, 0, 1, 0, 1, 1, 1, 1},
    [TXN_PART_PREPARED] = {1, 1, 1, 1, 1, 1, 1, 1, 0},
    [TXN_PART_COMMITTING] = {1, 1, 1, 0, 1, 0, 1, 1, 0},
    [TXN_PART_ABORTING] = {1, 1, 0, 1, 0, 1, 1, 1, 1},
    [TXN_PART_COMMITTED] = {1, 1, 1, 0, 1, 0, 1, 1, 0},
    [TXN_PART_ABORTED] = {1, 1, 0, 1, 0, 1, 1, 1, 1},
};

static int step_kind(txn_part *p, int k)
{
    switch (k) {
    case 0: {
        txn_event prep = ev_prepare(100, 150);
        return txn_part_step(p, &prep, &out, &err);
    }
    case 1: return chosen(p, TXN_REC_PREPARE, 151);
    case 2: return chosen(p, TXN_REC_COMMIT, 160);
    case 3: return chosen(p, TXN_REC_ABORT, 0);
    case 4: return decide(p, TXN_EV_DECISION, TXN_OUTCOME_COMMITTED, 160);
    case 5: return decide(p, TXN_EV_DECISION, TXN_OUTCOME_ABORTED, 0);
    case 6: return decide(p, TXN_EV_STATUS_REPLY, TXN_OUTCOME_UNKNOWN, 0);
    case 7: return simple(p, TXN_EV_TIMEOUT);
    default: return simple(p, TXN_EV_ABORT);
    }
}

static void test_every_transition(void **state)
{
    (void)state;
    for (int s = 0; s < TXN_PART_NSTATES; s++)
        for (int k = 0; k < 9; k++) {
            txn_part p;
            drive(&p, (txn_part_state)s);
            txn_part before;
            memcpy(&before, &p, sizeof(p));
            int rc = step_kind(&p, k);
            if (EXPECT[s][k]) {
                if (rc)
                    fail_msg("state %s kind %d refused: %s", txn_part_state_name(s), k, err.msg);
            } else {
                if (rc != MERR_PROTOCOL)
                    fail_msg("state %s kind %d: want PROTOCOL, got %d", txn_part_state_name(s), k,
                             rc);
                assert_memory_equal(&p, &before, sizeof(p));
                assert_int_equal(out.n, 0);
                assert_non_null(strstr(err.msg, "not allowed"));
            }
        }
}

static void test_follower_replay_and_failover(void **state)
{
    (void)state;
    /* The old leader logs a prepare record, then dies. */
    txn_part old;
    drive(&old, TXN_PART_PREPARING);
    txn_record prep_rec = out.rec;

    /* A follower applies the chosen log: it knows the txn is in doubt. */
    txn_part f;
    txn_part_init(&f, TXN, SELF, EPOCH, false);
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &prep_rec};
    assert_int_equal(txn_part_step(&f, &ev, &out, &err), 0);
    assert_int_equal(f.st, TXN_PART_PREPARED);
    assert_int_equal(out.n, 0); /* followers send nothing */
    assert_true(txn_part_in_doubt(&f));
    assert_true(f.prepare_ts == 151 && f.coord == COORD);
    assert_int_equal(simple(&f, TXN_EV_TIMEOUT), MERR_NOT_LEADER);

    /* It becomes leader: takes its read and write locks again and asks. */
    txn_part_become_leader(&f, EPOCH + 1, &out);
    assert_non_null(find(TXN_ACT_REACQUIRE_LOCKS));
    assert_non_null(find(TXN_ACT_MARK_PREPARED));
    assert_true(find(TXN_ACT_STATUS_QUERY)->to == COORD);
    assert_int_equal(decide(&f, TXN_EV_STATUS_REPLY, TXN_OUTCOME_COMMITTED, 180), 0);
    txn_record commit_rec = out.rec;
    ev.rec = &commit_rec;
    assert_int_equal(txn_part_step(&f, &ev, &out, &err), 0);
    assert_int_equal(f.st, TXN_PART_COMMITTED);
    assert_true(find(TXN_ACT_APPLY)->ts == 180);

    /* Another follower replays both records and ends the same way. */
    txn_part g;
    txn_part_init(&g, TXN, SELF, EPOCH, false);
    ev.rec = &prep_rec;
    assert_int_equal(txn_part_step(&g, &ev, &out, &err), 0);
    ev.rec = &commit_rec;
    assert_int_equal(txn_part_step(&g, &ev, &out, &err), 0);
    assert_int_equal(g.st, TXN_PART_COMMITTED);
    assert_true(g.commit_ts == 180);
    assert_true(find(TXN_ACT_APPLY)->ts == 180);
    assert_null(find(TXN_ACT_RELEASE_LOCKS));

    /* A leader that lost and regained leadership while PREPARING says no:
     * its prepare ts belongs to an earlier term. */
    txn_part h;
    drive(&h, TXN_PART_PREPARING);
    txn_part_become_follower(&h);
    txn_part_become_leader(&h, EPOCH + 2, &out);
    assert_int_equal(h.st, TXN_PART_ABORTING);
    assert_int_equal(out.rec.type, TXN_REC_ABORT);

    /* COMMITTING on a new leader: reacquire and log the outcome again. */
    drive(&h, TXN_PART_COMMITTING);
    txn_part_become_follower(&h);
    txn_part_become_leader(&h, EPOCH + 2, &out);
    assert_non_null(find(TXN_ACT_REACQUIRE_LOCKS));
    assert_int_equal(out.rec.type, TXN_REC_COMMIT);
    assert_int_equal(count(TXN_ACT_PROPOSE), 1);
    assert_string_equal(txn_part_state_name(h.st), "COMMITTING");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_path_and_prepare_ts),
        cmocka_unit_test(test_abort_paths),
        cmocka_unit_test(test_client_gone_and_late_commit_refused),
        cmocka_unit_test(test_reads_from_another_epoch_vote_no),
        cmocka_unit_test(test_repeats_are_idempotent),
        cmocka_unit_test(test_commit_below_prepare_refused),
        cmocka_unit_test(test_in_doubt_asks_the_coordinator),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_every_transition),
        cmocka_unit_test(test_follower_replay_and_failover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
