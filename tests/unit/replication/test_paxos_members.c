/* Multi-Paxos core: membership changes through the log (learner, promote,
 * remove; one at a time; recovered by a new leader) and snapshot catch-up. */
#include "tests/unit/replication/paxos_harness.h"

#define TICK 50000000LL

static int config_op(tc *c, int node, int op, paxos_node_id who)
{
    paxos_event ev = {0};
    ev.type = PAXOS_EV_CONFIG;
    ev.now = tc_tt(c, node);
    ev.op = op;
    ev.node = who;
    return tc_step(c, node, &ev);
}

static void test_quorum_intersection_rule(void **state)
{
    (void)state;
    paxos_members a = {3, 0, {1, 2, 3}, {0}};
    paxos_members b = {4, 0, {1, 2, 3, 4}, {0}};
    paxos_members c5 = {5, 0, {1, 2, 3, 4, 5}, {0}};
    paxos_members d = {3, 0, {3, 4, 5}, {0}};
    assert_true(paxos_members_quorums_intersect(&a, &b));   /* one voter added */
    assert_true(paxos_members_quorums_intersect(&b, &c5));  /* one more */
    assert_false(paxos_members_quorums_intersect(&a, &c5)); /* two at once: {1,2} vs {3,4,5} */
    assert_false(paxos_members_quorums_intersect(&a, &d));
}

static void test_learner_promote_remove(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 4, 3);
    tc_campaign(&c, 1);
    assert_int_equal(tc_propose(&c, 1, 1, "one"), 0);
    tc_run(&c, 2, TICK);
    /* Node 4 is no member yet: it does not campaign and gets nothing. */
    assert_int_equal(paxos_get_chosen(c.g[4]), 0);
    assert_int_equal(config_op(&c, 1, PAXOS_PROMOTE, 4), MERR_INVALID);
    assert_int_equal(config_op(&c, 1, PAXOS_ADD_LEARNER, 4), 0);
    /* One change at a time. */
    assert_int_equal(config_op(&c, 1, PAXOS_REMOVE, 2), MERR_BUSY);
    assert_int_equal(config_op(&c, 2, PAXOS_REMOVE, 3), MERR_NOT_LEADER);
    tc_run(&c, 4, TICK);
    paxos_members m;
    paxos_get_members(c.g[1], &m, NULL);
    assert_true(paxos_members_is_learner(&m, 4));
    assert_false(paxos_members_is_voter(&m, 4));
    /* The learner caught up through the log. */
    assert_true(tc_has(&c, 4, 1));
    assert_int_equal(config_op(&c, 1, PAXOS_ADD_LEARNER, 4), MERR_EXISTS);
    /* A learner never counts: with 2 and 3 cut off nothing is chosen. */
    c.cut[1][2] = c.cut[1][3] = 1;
    uint64_t chosen = paxos_get_chosen(c.g[1]);
    assert_int_equal(tc_propose(&c, 1, 2, "two"), 0);
    tc_run(&c, 2, TICK);
    assert_int_equal(paxos_get_chosen(c.g[1]), chosen);
    c.cut[1][2] = c.cut[1][3] = 0;
    tc_run(&c, 8, TICK); /* lost accepts are resent after a heartbeat shows the stall */
    assert_true(tc_has(&c, 4, 2));
    assert_int_equal(config_op(&c, 1, PAXOS_PROMOTE, 4), 0);
    tc_run(&c, 3, TICK);
    paxos_get_members(c.g[4], &m, NULL);
    assert_int_equal(m.nvoters, 4);
    assert_true(paxos_members_is_voter(&m, 4));
    assert_int_equal(config_op(&c, 1, PAXOS_REMOVE, 1), MERR_INVALID); /* transfer first */
    assert_int_equal(config_op(&c, 1, PAXOS_REMOVE, 2), 0);
    tc_run(&c, 3, TICK);
    paxos_get_members(c.g[3], &m, NULL);
    assert_int_equal(m.nvoters, 3);
    assert_false(paxos_members_is_voter(&m, 2));
    /* The new majority {1,3,4} commits without node 2. */
    paxos_group_free(c.g[2]);
    c.g[2] = NULL;
    assert_int_equal(tc_propose(&c, 1, 3, "three"), 0);
    tc_run(&c, 3, TICK);
    assert_true(tc_has(&c, 4, 3));
    assert_true(tc_has(&c, 3, 3));
    tc_free(&c);
}

/* A change waits until every slot below it is chosen (then it is computed
 * from the config that governs its slot); meanwhile no new slot is assigned. */
static void test_change_waits_for_lower_slots(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 4, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 2, TICK);
    c.cut[1][2] = c.cut[1][3] = 1;
    assert_int_equal(tc_propose(&c, 1, 1, "in flight"), 0);
    uint64_t last = paxos_get_last(c.g[1]);
    assert_true(paxos_get_chosen(c.g[1]) < last);
    assert_int_equal(config_op(&c, 1, PAXOS_ADD_LEARNER, 4), 0); /* queued */
    assert_int_equal(config_op(&c, 1, PAXOS_REMOVE, 2), MERR_BUSY);
    assert_int_equal(tc_propose(&c, 1, 2, "held back"), 0);
    assert_int_equal(paxos_get_last(c.g[1]), last);
    tc_drop_all(&c);
    c.cut[1][2] = c.cut[1][3] = 0;
    tc_run(&c, 8, TICK);
    paxos_members m;
    paxos_get_members(c.g[2], &m, NULL);
    assert_true(paxos_members_is_learner(&m, 4));
    assert_true(tc_has(&c, 2, 1));
    assert_true(tc_has(&c, 2, 2));
    /* The change sits right after the slot that was in flight. */
    int at = -1;
    for (int i = 0; i < c.napplied[2]; i++)
        if (c.applied[2][i].type == PAXOS_ENTRY_CONFIG) at = (int)c.applied[2][i].slot;
    assert_int_equal(at, (int)last + 1);
    tc_free(&c);
}

/* Promoting a learner that is behind would stall the new quorum: refused. */
static void test_promote_requires_caught_up(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 4, 3);
    tc_campaign(&c, 1);
    assert_int_equal(config_op(&c, 1, PAXOS_ADD_LEARNER, 4), 0);
    tc_run(&c, 3, TICK);
    c.cut[1][4] = 1;
    assert_int_equal(tc_propose(&c, 1, 1, "x"), 0);
    tc_run(&c, 3, TICK);
    assert_int_equal(config_op(&c, 1, PAXOS_PROMOTE, 4), MERR_RETRY);
    c.cut[1][4] = 0;
    tc_run(&c, 4, TICK);
    assert_int_equal(config_op(&c, 1, PAXOS_PROMOTE, 4), 0);
    tc_free(&c);
}

/* The leader dies right after a change reached one follower: the next leader
 * recovers the change and it takes effect — the group never forgets it. */
static void test_change_survives_leader_crash(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 4, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 2, TICK);
    c.cut[1][3] = c.cut[1][4] = 1;
    c.cut[2][1] = 1;
    assert_int_equal(config_op(&c, 1, PAXOS_ADD_LEARNER, 4), 0);
    tc_deliver(&c);
    paxos_members m;
    paxos_get_members(c.g[2], &m, NULL);
    assert_false(paxos_members_is_learner(&m, 4)); /* accepted, not chosen */
    paxos_get_members(c.g[2], NULL, &m);
    assert_true(paxos_members_is_learner(&m, 4)); /* but in its log */
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    memset(c.cut, 0, sizeof(c.cut));
    c.now += 4000000000LL;
    tc_campaign(&c, 3);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    tc_run(&c, 4, TICK);
    paxos_get_members(c.g[3], &m, NULL);
    assert_true(paxos_members_is_learner(&m, 4));
    paxos_get_members(c.g[4], &m, NULL);
    assert_true(paxos_members_is_learner(&m, 4));
    tc_free(&c);
}

static void add_voter(tc *c, int leader, paxos_node_id who)
{
    assert_int_equal(config_op(c, leader, PAXOS_ADD_LEARNER, who), 0);
    tc_run(c, 4, TICK);
    assert_int_equal(config_op(c, leader, PAXOS_PROMOTE, who), 0);
    tc_run(c, 4, TICK);
}

/* Phase 1 walks the chain of configs: a candidate that only knows {1,2,3}
 * while the group grew to {1..5} must win a majority of every config it
 * recovers — {2,3} is a majority of {1,2,3} but not of {1..5}. */
static void test_phase1_quorum_chain(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 5, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 2, TICK);
    for (int i = 1; i <= 5; i++) c.cut[3][i] = c.cut[i][3] = i != 3;
    add_voter(&c, 1, 4);
    add_voter(&c, 1, 5);
    paxos_members m;
    paxos_get_members(c.g[2], &m, NULL);
    assert_int_equal(m.nvoters, 5);
    paxos_get_members(c.g[3], &m, NULL);
    assert_int_equal(m.nvoters, 3); /* node 3 saw none of it */
    assert_int_equal(tc_propose(&c, 1, 50, "chosen by 1,4,5 or 1,2,4,5"), 0);
    tc_run(&c, 3, TICK);
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    c.now += 4000000000LL;
    /* 3 reaches only 2: a majority of its own old config, not of the newer ones. */
    c.cut[3][2] = c.cut[2][3] = 0;
    tc_campaign(&c, 3);
    assert_int_not_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    /* With 4 reachable too it holds a majority of every config in the chain. */
    c.cut[3][4] = c.cut[4][3] = 0;
    tc_campaign(&c, 3);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    tc_run(&c, 4, TICK);
    assert_true(tc_has(&c, 3, 50));
    paxos_get_members(c.g[3], &m, NULL);
    assert_int_equal(m.nvoters, 5);
    tc_free(&c);
}

/* A stale, never-chosen CONFIG from an old ballot lingers in a replica's log
 * and leaves it out; its committed config still has it. It must still
 * campaign (else a group can lose every eligible candidate); leading, it
 * drives the recovered change to chosen and then steps down. */
static void test_stale_config_does_not_silence_a_voter(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    paxos_members without2 = {2, 0, {1, 3}, {0}};
    paxos_entry e = {0};
    e.slot = 1;
    e.ballot.round = 1;
    e.ballot.node = 1;
    e.type = PAXOS_ENTRY_CONFIG;
    assert_int_equal(paxos_members_encode(&without2, &e.data, &e.len), 0);
    paxos_restore rs = {0};
    rs.promised = e.ballot;
    rs.entries = &e;
    rs.nentries = 1;
    /* Nodes 1 and 2 accepted it (so a new leader must re-propose it). */
    for (int n = 1; n <= 2; n++) {
        paxos_group_free(c.g[n]);
        assert_int_equal(paxos_group_new(&c.cfg[n], &c.genesis, &rs, &c.g[n]), 0);
    }
    free(e.data);
    /* Only node 2 may time out: the others never tick. */
    int campaigned = 0;
    paxos_members m = {0};
    for (int i = 0; i < 200 && m.nvoters != 2; i++) {
        c.now += TICK;
        tc_tick(&c, 2);
        campaigned |= paxos_get_role(c.g[2]) != PAXOS_FOLLOWER;
        tc_deliver(&c);
        paxos_get_members(c.g[2], &m, NULL);
    }
    assert_true(campaigned);
    /* Only node 2 ticks, so it led: long enough to get the change chosen (it
     * may do so within one round of messages), then it stepped down. */
    paxos_get_members(c.g[2], &m, NULL);
    assert_int_equal(m.nvoters, 2);
    assert_false(paxos_members_is_voter(&m, 2));
    assert_int_not_equal(paxos_get_role(c.g[2]), PAXOS_LEADER);
    tc_run(&c, 100, TICK);
    int l = tc_leader(&c);
    assert_true(l == 1 || l == 3);
    paxos_get_members(c.g[l == 1 ? 3 : 1], &m, NULL);
    assert_int_equal(m.nvoters, 2);
    tc_free(&c);
}

/* Three nodes with 4-byte snapshot chunks (window chunks in flight); node 1
 * leads and chooses 20 proposals while node 3 is cut off. */
static void snapshot_setup(tc *c, uint32_t window)
{
    tc_init(c, 3, 3);
    for (int i = 1; i <= 3; i++) {
        paxos_group_free(c->g[i]);
        c->cfg[i].snapshot_chunk = 4;
        c->cfg[i].snapshot_window = window;
        assert_int_equal(paxos_group_new(&c->cfg[i], &c->genesis, NULL, &c->g[i]), 0);
    }
    tc_campaign(c, 1);
    c->cut[1][3] = c->cut[3][1] = 1;
    for (uint64_t id = 1; id <= 20; id++) {
        assert_int_equal(tc_propose(c, 1, id, "payload"), 0);
        tc_run(c, 1, TICK);
    }
    tc_run(c, 2, TICK);
}

/* A replica behind the truncation point gets the snapshot in chunks, installs
 * it, then continues from the log. */
static void test_snapshot_catch_up(void **state)
{
    (void)state;
    tc c;
    snapshot_setup(&c, 16);
    uint64_t at = paxos_get_applied(c.g[1]);
    assert_true(at >= 5);
    const uint8_t snap[] = "state-machine-image"; /* 20 bytes: 5 chunks */
    paxos_event ev = {0};
    ev.type = PAXOS_EV_SNAPSHOT_TAKEN;
    ev.now = tc_tt(&c, 1);
    ev.slot = at + 1; /* not applied yet: refused */
    ev.data = snap;
    ev.len = sizeof(snap);
    assert_int_equal(tc_step(&c, 1, &ev), MERR_INVALID);
    ev.slot = at;
    assert_int_equal(tc_step(&c, 1, &ev), 0);
    assert_int_equal(paxos_get_first(c.g[1]), at + 1);
    uint64_t s;
    paxos_get_snapshot(c.g[1], &s, NULL);
    assert_int_equal(s, at);
    c.cut[1][3] = c.cut[3][1] = 0;
    c.fail_installs = 1; /* the first install fails: nothing is lost, it is resent */
    tc_run(&c, 20, TICK);
    assert_int_equal(c.fail_installs, 0);
    assert_int_equal(c.installs[3], 1);
    assert_true(paxos_get_applied(c.g[3]) >= at);
    assert_int_equal(paxos_get_first(c.g[3]), at + 1);
    /* Then the log: a new proposal reaches node 3 the ordinary way. */
    assert_int_equal(tc_propose(&c, 1, 99, "after"), 0);
    tc_run(&c, 3, TICK);
    assert_true(tc_has(&c, 3, 99));
    assert_int_equal(paxos_get_chosen(c.g[3]), paxos_get_chosen(c.g[1]));
    /* An install ack for a snapshot nobody sent is refused. */
    ev.type = PAXOS_EV_SNAPSHOT_INSTALLED;
    ev.slot = 12345;
    paxos_update u;
    paxos_update_init(&u);
    assert_int_equal(paxos_step(c.g[3], &ev, &u), MERR_INVALID);
    paxos_update_free(&u);
    tc_free(&c);
}

/* The snapshot stream keeps snapshot_window chunks in flight, not one per
 * round trip; a lost chunk makes the follower ask for a resend from what it
 * has (once, however many chunks were in flight past the gap), and the
 * stream completes. */
static void test_snapshot_window(void **state)
{
    (void)state;
    tc c;
    snapshot_setup(&c, 3);
    uint64_t at = paxos_get_applied(c.g[1]);
    const uint8_t snap[] = "state-machine-image-of-36-bytes-long"; /* 37 bytes: 10 chunks */
    paxos_event ev = {0};
    ev.type = PAXOS_EV_SNAPSHOT_TAKEN;
    ev.now = tc_tt(&c, 1);
    ev.slot = at;
    ev.data = snap;
    ev.len = sizeof(snap);
    assert_int_equal(tc_step(&c, 1, &ev), 0);
    c.cut[1][3] = c.cut[3][1] = 0;
    int most = 0, most_after = 0, dropped = 0, resends = 0;
    for (int round = 0; round < 400 && !c.installs[3]; round++) {
        int inflight = 0;
        for (size_t i = 0; i < c.nq; i++) {
            paxos_msg *m = &c.q[i];
            if (m->type == PAXOS_MSG_SNAPSHOT && m->to == 3) inflight++;
            if (m->type == PAXOS_MSG_SNAPSHOT_REPLY && (m->flags & PAXOS_F_RESEND)) resends++;
        }
        if (!dropped && inflight > most) most = inflight;
        if (dropped && inflight > most_after) most_after = inflight;
        for (size_t i = 0; i < c.nq && !dropped; i++) {
            if (c.q[i].type != PAXOS_MSG_SNAPSHOT || c.q[i].to != 3 || c.q[i].offset != 4) continue;
            paxos_msg_free(&c.q[i]); /* the second chunk is lost */
            memmove(&c.q[i], &c.q[i + 1], (c.nq - i - 1) * sizeof(*c.q));
            c.nq--;
            dropped = 1;
        }
        if (!c.nq) { /* time passes; what the ticks send stays queued */
            c.now += TICK;
            for (int n = 1; n <= 3; n++) tc_tick(&c, n);
            continue;
        }
        paxos_msg m = c.q[0]; /* one message at a time, in order */
        memmove(c.q, c.q + 1, (c.nq - 1) * sizeof(*c.q));
        c.nq--;
        if (c.g[m.to]) {
            paxos_event d = {0};
            d.type = PAXOS_EV_MESSAGE;
            d.now = tc_tt(&c, (int)m.to);
            d.msg = &m;
            assert_int_equal(tc_step(&c, (int)m.to, &d), 0);
        }
        paxos_msg_free(&m);
    }
    assert_int_equal(most, 3); /* the window */
    /* After the go-back, resent chunks may overtake ones still on the way. */
    assert_true(most_after <= 2 * 3);
    assert_true(dropped);
    assert_true(resends >= 1);
    assert_int_equal(c.installs[3], 1);
    uint64_t s3;
    paxos_get_snapshot(c.g[3], &s3, NULL);
    assert_int_equal(s3, at);
    assert_int_equal(paxos_get_first(c.g[3]), at + 1);
    tc_free(&c);
}

/* A candidate whose open slots are inside someone's snapshot cannot count that
 * replica's promise (it could not report those slots): without another
 * promiser it does not win, and the more current replica leads instead. */
static void test_candidate_behind_snapshot_not_promised(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    c.cut[1][3] = c.cut[3][1] = 1;
    for (uint64_t id = 1; id <= 5; id++) {
        assert_int_equal(tc_propose(&c, 1, id, "v"), 0);
        tc_run(&c, 1, TICK);
    }
    tc_run(&c, 3, TICK);
    for (int n = 1; n <= 2; n++) {
        paxos_event ev = {0};
        ev.type = PAXOS_EV_SNAPSHOT_TAKEN;
        ev.now = tc_tt(&c, n);
        ev.slot = paxos_get_applied(c.g[n]);
        ev.data = (const uint8_t *)"s";
        ev.len = 1;
        assert_int_equal(tc_step(&c, n, &ev), 0);
    }
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    c.cut[1][3] = c.cut[3][1] = 0;
    c.now += 4000000000LL;
    tc_campaign(&c, 3);
    assert_int_not_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    /* Node 2, which has the snapshot, can lead and brings 3 up to date. */
    tc_campaign(&c, 2);
    assert_int_equal(paxos_get_role(c.g[2]), PAXOS_LEADER);
    tc_run(&c, 10, TICK);
    assert_int_equal(c.installs[3], 1);
    assert_int_equal(paxos_get_chosen(c.g[3]), paxos_get_chosen(c.g[2]));
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quorum_intersection_rule),
        cmocka_unit_test(test_learner_promote_remove),
        cmocka_unit_test(test_promote_requires_caught_up),
        cmocka_unit_test(test_change_waits_for_lower_slots),
        cmocka_unit_test(test_change_survives_leader_crash),
        cmocka_unit_test(test_phase1_quorum_chain),
        cmocka_unit_test(test_stale_config_does_not_silence_a_voter),
        cmocka_unit_test(test_snapshot_catch_up),
        cmocka_unit_test(test_snapshot_window),
        cmocka_unit_test(test_candidate_behind_snapshot_not_promised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
