/* Multi-Paxos core: leases under clock skew, pre-vote, check-quorum step-down,
 * leadership transfer and quiescence. */
#include "tests/unit/replication/paxos_harness.h"

#define TICK 50000000LL
#define MS   1000000LL

/* The old leader is cut off; a rival keeps campaigning every millisecond.
 * At no true time may both hold a valid lease, for either direction of skew. */
static void lease_handover(int64_t leader_off, int64_t others_off)
{
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) { /* heartbeat every tick: the last one goes at cut_at */
        paxos_group_free(c.g[i]);
        c.cfg[i].heartbeat_ticks = 1;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    c.off[1] = leader_off;
    c.off[2] = c.off[3] = others_off;
    tc_campaign(&c, 1);
    tc_run(&c, 4, TICK);
    assert_true(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    int64_t cut_at = c.now;
    for (int i = 1; i <= 3; i++)
        for (int j = 1; j <= 3; j++) c.cut[i][j] = (i == 1 || j == 1) && i != j;
    int64_t old_end = 0, new_start = 0;
    for (int i = 0; i < 5000 && !new_start; i++) {
        c.now += MS;
        int v1 = paxos_lease_valid(c.g[1], tc_tt(&c, 1));
        if (!v1 && !old_end) old_end = c.now;
        if (paxos_get_role(c.g[3]) != PAXOS_LEADER) {
            paxos_event ev = {0};
            ev.type = PAXOS_EV_CAMPAIGN;
            ev.now = tc_tt(&c, 3);
            tc_step(&c, 3, &ev);
        } else {
            tc_tick(&c, 3);
        }
        tc_deliver(&c);
        int v3 = paxos_lease_valid(c.g[3], tc_tt(&c, 3));
        assert_false(v1 && v3);
        if (v3) new_start = c.now;
    }
    assert_true(old_end > 0 && new_start > old_end);
    /* With steady clocks the margins are exact: the leader stops trusting its
     * lease 2ε before (sent + lease) — its own uncertainty — and the acceptors
     * promise again only 2ε after (received + lease) — theirs. Either margin
     * alone keeps leases apart; both are needed once clock errors may swing
     * anywhere inside ±ε between two readings. */
    int64_t lease = c.cfg[1].lease_ns;
    assert_true(old_end > cut_at + lease - 2 * TC_EPS - MS);
    assert_true(old_end <= cut_at + lease - 2 * TC_EPS + MS);
    assert_true(new_start >= cut_at + lease + 2 * TC_EPS);
    tc_free(&c);
}

static void test_lease_no_overlap_leader_fast(void **state)
{
    (void)state;
    lease_handover(TC_EPS * 9 / 10, -TC_EPS * 9 / 10);
}

static void test_lease_no_overlap_leader_slow(void **state)
{
    (void)state;
    lease_handover(-TC_EPS * 9 / 10, TC_EPS * 9 / 10);
}

/* A candidate can win on others' promises while its own acceptor still
 * protects the old lease (its clock error swung): it must then promise its own
 * ballot before accepting in it, or it could later promise a lower one. */
static void test_leader_promises_own_ballot(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 5, 5);
    for (int i = 1; i <= 5; i++) {
        paxos_group_free(c.g[i]);
        c.cfg[i].heartbeat_ticks = 1;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    c.off[3] = TC_EPS * 9 / 10;
    tc_campaign(&c, 1);
    tc_run(&c, 3, TICK);
    int64_t last_grant = c.now;
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    c.off[3] = -TC_EPS * 9 / 10; /* node 3's block now lasts 3.8ε past the lease */
    c.now = last_grant + c.cfg[3].lease_ns + 2 * TC_EPS + MS;
    tc_campaign(&c, 3);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    assert_int_equal(paxos_ballot_cmp(paxos_get_ballot(c.g[3]), paxos_get_ballot(c.g[2])), 0);
    tc_free(&c);
}

/* A lease needs a majority of grants and a leader that has applied what was
 * chosen before it led; a follower never has one. */
static void test_lease_needs_quorum(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    c.cut[2][1] = c.cut[3][1] = 1; /* no replies reach the candidate */
    tc_campaign(&c, 1);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_CANDIDATE);
    c.cut[2][1] = 0; /* promises from 2 now get through */
    tc_campaign(&c, 1);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_LEADER);
    c.cut[2][1] = 1; /* but no grant (accept/heartbeat reply) comes back */
    tc_run(&c, 4, TICK);
    assert_false(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    c.cut[2][1] = 0;
    tc_run(&c, 2, TICK);
    assert_true(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    assert_false(paxos_lease_valid(c.g[2], tc_tt(&c, 2)));
    tc_free(&c);
}

/* An isolated replica keeps timing out but, asking for pre-votes first, never
 * bumps its ballot; when it returns it does not depose the healthy leader. */
static void test_prevote_protects_leader(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) { /* a lease too short to protect anything */
        paxos_group_free(c.g[i]);
        c.cfg[i].lease_ns = TICK / 5;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    tc_campaign(&c, 1);
    tc_run(&c, 3, TICK);
    paxos_ballot b = paxos_get_ballot(c.g[1]);
    for (int i = 1; i <= 3; i++) c.cut[3][i] = c.cut[i][3] = 1;
    c.cut[3][3] = 0;
    tc_run(&c, 100, TICK); /* several election timeouts */
    assert_int_not_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    assert_int_equal(paxos_ballot_cmp(paxos_get_ballot(c.g[3]), b), 0);
    for (int i = 1; i <= 3; i++) c.cut[3][i] = c.cut[i][3] = 0;
    tc_run(&c, 40, TICK);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_LEADER);
    assert_int_equal(paxos_ballot_cmp(paxos_get_ballot(c.g[1]), b), 0);
    assert_int_equal(paxos_get_leader(c.g[3]), 1);
    assert_int_equal(tc_propose(&c, 1, 3, "still here"), 0);
    tc_run(&c, 3, TICK); /* followers learn the commit point with the next heartbeat */
    assert_true(tc_has(&c, 3, 3));
    tc_free(&c);
}

/* A leader that hears from no majority for an election timeout steps down;
 * the majority side elects a new leader once the old lease is over. */
static void test_leader_without_quorum_steps_down(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 3, TICK);
    for (int i = 2; i <= 3; i++) c.cut[1][i] = c.cut[i][1] = 1;
    tc_run(&c, 2 * c.cfg[1].election_ticks + 1, TICK);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_FOLLOWER);
    assert_false(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    assert_int_equal(tc_propose(&c, 1, 1, "x"), MERR_NOT_LEADER);
    tc_run(&c, 120, TICK); /* > lease: 2 or 3 takes over */
    int l = tc_leader(&c);
    assert_true(l == 2 || l == 3);
    tc_free(&c);
}

/* Transfer: the old leader catches the target up, gives its lease up and the
 * target takes over well before a lease would have run out. */
static void test_leadership_transfer(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 3, TICK);
    assert_int_equal(tc_propose(&c, 1, 1, "before"), 0);
    paxos_event ev = {0};
    ev.type = PAXOS_EV_TRANSFER;
    ev.now = tc_tt(&c, 1);
    ev.node = 9;
    assert_int_equal(tc_step(&c, 1, &ev), MERR_INVALID); /* not a voter */
    ev.node = 2;
    int64_t t0 = c.now;
    assert_int_equal(tc_step(&c, 1, &ev), 0);
    assert_false(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    assert_int_equal(tc_propose(&c, 1, 2, "during"), MERR_BUSY);
    for (int i = 0; i < 20 && !paxos_lease_valid(c.g[2], tc_tt(&c, 2)); i++) tc_run(&c, 1, TICK);
    assert_int_equal(tc_leader(&c), 2);
    assert_true(paxos_lease_valid(c.g[2], tc_tt(&c, 2)));
    assert_true(c.now - t0 < 3000 * MS);
    assert_true(tc_has(&c, 2, 1));
    assert_int_equal(tc_propose(&c, 2, 3, "after"), 0);
    tc_run(&c, 2, TICK);
    assert_true(tc_has(&c, 1, 3));
    tc_free(&c);
}

static size_t msgs_in_round(tc *c)
{
    size_t total = 0;
    c->now += TICK;
    for (int n = 1; n <= c->n; n++) {
        tc_tick(c, n);
        total += c->last_nmsgs;
    }
    tc_deliver(c);
    return total;
}

/* Idle groups go quiet; node liveness keeps followers from campaigning; a
 * proposal wakes the leader; without liveness a follower does campaign. */
static void test_quiescence(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) {
        paxos_group_free(c.g[i]);
        c.cfg[i].quiesce_ticks = 5;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    tc_campaign(&c, 1);
    tc_run(&c, 10, TICK);
    assert_true(paxos_get_quiesced(c.g[1]));
    assert_true(paxos_get_quiesced(c.g[2]));
    for (int r = 0; r < 60; r++) {
        assert_int_equal(msgs_in_round(&c), 0);
        for (int n = 2; n <= 3; n++) {
            paxos_event ev = {0};
            ev.type = PAXOS_EV_LIVENESS;
            ev.now = tc_tt(&c, n);
            ev.node = 1;
            tc_step(&c, n, &ev);
            ev.node = n == 2 ? 3 : 2;
            tc_step(&c, 1, &ev);
        }
    }
    assert_int_equal(tc_leader(&c), 1);
    assert_int_equal(paxos_get_role(c.g[2]), PAXOS_FOLLOWER);
    assert_int_equal(tc_propose(&c, 1, 1, "wake"), 0);
    assert_false(paxos_get_quiesced(c.g[1]));
    tc_run(&c, 2, TICK);
    assert_true(tc_has(&c, 2, 1));
    /* Quiet again, and now node 1's liveness stops reaching node 2. */
    tc_run(&c, 10, TICK);
    assert_true(paxos_get_quiesced(c.g[2]));
    int campaigned = 0;
    for (int r = 0; r < 60 && !campaigned; r++) {
        msgs_in_round(&c);
        campaigned =
            paxos_get_role(c.g[2]) != PAXOS_FOLLOWER || paxos_get_role(c.g[3]) != PAXOS_FOLLOWER;
    }
    assert_true(campaigned);
    tc_free(&c);
}

/* Lease on demand: a quiet leader's lease lapses (liveness does not renew
 * it); RENEW wakes it with one heartbeat round whose replies are ordinary
 * grants, so the lease is back one round trip later and nobody campaigned. */
static void test_renew_after_quiet(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) {
        paxos_group_free(c.g[i]);
        c.cfg[i].quiesce_ticks = 5;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    tc_campaign(&c, 1);
    tc_run(&c, 10, TICK);
    assert_true(paxos_get_quiesced(c.g[1]));
    paxos_ballot b0 = paxos_get_ballot(c.g[2]);
    /* Idle for more than a lease, liveness flowing both ways. */
    for (int r = 0; r < 80; r++) {
        assert_int_equal(msgs_in_round(&c), 0);
        for (int n = 2; n <= 3; n++) {
            paxos_event ev = {0};
            ev.type = PAXOS_EV_LIVENESS;
            ev.now = tc_tt(&c, n);
            ev.node = 1;
            tc_step(&c, n, &ev);
            ev.now = tc_tt(&c, 1);
            ev.node = (paxos_node_id)n;
            tc_step(&c, 1, &ev);
        }
    }
    assert_int_equal(tc_leader(&c), 1);
    assert_false(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    /* Only a leader renews. */
    paxos_event ev = {0};
    ev.type = PAXOS_EV_RENEW;
    ev.now = tc_tt(&c, 2);
    assert_int_equal(tc_step(&c, 2, &ev), MERR_NOT_LEADER);
    ev.now = tc_tt(&c, 1);
    assert_int_equal(tc_step(&c, 1, &ev), 0);
    assert_false(paxos_get_quiesced(c.g[1]));
    assert_true(c.nq >= 2); /* a heartbeat to each follower */
    assert_false(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    tc_deliver(&c);
    assert_true(paxos_lease_valid(c.g[1], tc_tt(&c, 1)));
    assert_int_equal(paxos_ballot_cmp(paxos_get_ballot(c.g[2]), b0), 0);
    tc_free(&c);
}

/* A follower that missed the leader's QUIESCE heartbeat (a lost message, a
 * restart) is not quiet: its election timer runs, and campaigning forgets
 * the leader. The quiet leader rejects its pre-votes; unless it also wakes,
 * the follower never hears of it again while the group is idle, and answers
 * every client "not the leader, leader unknown" (cluster_merge hung so: all
 * clients asked that node, so no write ever woke the group). */
static void test_prevote_wakes_quiet_leader(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) {
        paxos_group_free(c.g[i]);
        c.cfg[i].quiesce_ticks = 5;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    tc_campaign(&c, 1);
    tc_run(&c, 10, TICK);
    assert_true(paxos_get_quiesced(c.g[3]));
    /* A write; every follower accepts it, node 3 then hears nothing more. */
    assert_int_equal(tc_propose(&c, 1, 7, "w"), 0);
    tc_deliver(&c);
    c.cut[1][3] = 1;
    for (int r = 0; r < 10 && !paxos_get_quiesced(c.g[1]); r++) msgs_in_round(&c);
    assert_true(paxos_get_quiesced(c.g[1]));
    assert_false(paxos_get_quiesced(c.g[3]));
    assert_false(tc_has(&c, 3, 7));
    c.cut[1][3] = 0;
    /* Liveness flows (the nodes are up), the group stays idle. */
    int learned = 0;
    for (int r = 0; r < 200 && !learned; r++) {
        msgs_in_round(&c);
        for (int n = 1; n <= 3; n++)
            for (int m = 1; m <= 3; m++) {
                if (n == m) continue;
                paxos_event ev = {0};
                ev.type = PAXOS_EV_LIVENESS;
                ev.now = tc_tt(&c, n);
                ev.node = (paxos_node_id)m;
                tc_step(&c, n, &ev);
            }
        learned = paxos_get_leader(c.g[3]) == 1 && tc_has(&c, 3, 7);
    }
    assert_true(learned);
    assert_int_equal(tc_leader(&c), 1); /* the leader was not deposed */
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_no_overlap_leader_fast),
        cmocka_unit_test(test_lease_no_overlap_leader_slow),
        cmocka_unit_test(test_lease_needs_quorum),
        cmocka_unit_test(test_leader_promises_own_ballot),
        cmocka_unit_test(test_prevote_protects_leader),
        cmocka_unit_test(test_leader_without_quorum_steps_down),
        cmocka_unit_test(test_leadership_transfer),
        cmocka_unit_test(test_quiescence),
        cmocka_unit_test(test_renew_after_quiet),
        cmocka_unit_test(test_prevote_wakes_quiet_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
