/* Multi-Paxos core: election, phase 1/2, recovery of accepted values, no-op
 * hole filling, batching, durability gating of promises and accepts. */
#include "tests/unit/replication/paxos_harness.h"

#define TICK 50000000LL

static void test_elect_and_commit(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    assert_int_equal(tc_campaign(&c, 1), 0);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_LEADER);
    assert_int_equal(paxos_get_leader(c.g[2]), 0); /* learns it from the first accept */
    assert_int_equal(tc_propose(&c, 1, 11, "alpha"), 0);
    tc_deliver(&c);
    /* The leader knows it chosen; followers learn it from the next commit point. */
    assert_true(tc_has(&c, 1, 11));
    tc_run(&c, 3, TICK);
    for (int n = 1; n <= 3; n++) {
        assert_true(tc_has(&c, n, 11));
        assert_int_equal(paxos_get_chosen(c.g[n]), paxos_get_chosen(c.g[1]));
        assert_int_equal(paxos_get_leader(c.g[n]), 1);
    }
    /* Non-leaders refuse proposals and name no error other than NOT_LEADER. */
    assert_int_equal(tc_propose(&c, 2, 12, "x"), MERR_NOT_LEADER);
    tc_free(&c);
}

static void test_batching_and_window(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) {
        paxos_group_free(c.g[i]);
        c.cfg[i].window = 2;
        c.cfg[i].max_batch = 3;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    tc_campaign(&c, 1);
    uint64_t base = paxos_get_last(c.g[1]);
    /* Nothing is delivered: the window of 2 slots fills, the rest waits. */
    for (uint64_t id = 1; id <= 12; id++) assert_int_equal(tc_propose(&c, 1, id, "v"), 0);
    assert_true(paxos_get_last(c.g[1]) - paxos_get_chosen(c.g[1]) <= 2);
    /* The first proposal got a slot alone; the next ones waited and batch. */
    tc_deliver(&c);
    uint64_t slots = paxos_get_last(c.g[1]) - base;
    assert_true(slots < 12); /* batched */
    tc_run(&c, 2, TICK);
    for (uint64_t id = 1; id <= 12; id++) assert_true(tc_has(&c, 2, id));
    tc_free(&c);
}

/* Proposals with hold wait for a FLUSH and then share one slot (the node
 * holds the writes of one event-loop round this way). */
static void test_hold_then_flush_shares_a_slot(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    tc_deliver(&c);
    uint64_t base = paxos_get_last(c.g[1]);
    for (uint64_t id = 21; id <= 24; id++) {
        paxos_event ev = {.type = PAXOS_EV_PROPOSE, .now = tc_tt(&c, 1), .id = id, .hold = 1};
        ev.data = (const uint8_t *)"h"; /* the harness keeps 64 bytes of a value */
        ev.len = 1;
        assert_int_equal(tc_step(&c, 1, &ev), 0);
    }
    assert_int_equal(paxos_get_last(c.g[1]), base); /* no slot yet */
    paxos_event fl = {.type = PAXOS_EV_FLUSH, .now = tc_tt(&c, 1)};
    assert_int_equal(tc_step(&c, 1, &fl), 0);
    assert_int_equal(paxos_get_last(c.g[1]), base + 1); /* all four in one slot */
    tc_deliver(&c);
    for (uint64_t id = 21; id <= 24; id++) assert_true(tc_has(&c, 1, id));
    tc_run(&c, 5, TICK);
    for (uint64_t id = 21; id <= 24; id++) assert_true(tc_has(&c, 2, id));
    /* A follower ignores FLUSH. */
    fl.now = tc_tt(&c, 2);
    assert_int_equal(tc_step(&c, 2, &fl), 0);
    tc_free(&c);
}

/* Proposals still queued (no slot yet) when the leader is deposed are
 * reported as dropped — they can never be chosen — and never show up later. */
static void test_dropped_proposals_reported(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    for (int i = 1; i <= 3; i++) {
        paxos_group_free(c.g[i]);
        c.cfg[i].window = 1;
        c.cfg[i].max_batch = 1;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, NULL, &c.g[i]), 0);
    }
    tc_campaign(&c, 1);
    tc_run(&c, 2, TICK);
    c.cut[1][2] = c.cut[1][3] = 1; /* the first proposal's slot never gets chosen */
    for (uint64_t id = 1; id <= 3; id++) assert_int_equal(tc_propose(&c, 1, id, "p"), 0);
    tc_drop_all(&c);
    c.now += 4000000000LL;
    tc_campaign(&c, 2); /* its prepare deposes node 1 */
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_FOLLOWER);
    assert_int_equal(c.ndropped[1], 2);
    assert_true(c.dropped[1][0] == 2 && c.dropped[1][1] == 3);
    memset(c.cut, 0, sizeof(c.cut));
    tc_run(&c, 4, TICK);
    assert_false(tc_has(&c, 2, 2));
    assert_false(tc_has(&c, 2, 3));
    tc_free(&c);
}

/* A value accepted by a minority and never known chosen is recovered by the
 * next leader: it must re-propose it (it may have been chosen). */
static void test_recovery_of_accepted_value(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 1, TICK);
    /* Node 1's accept reaches node 2 only; node 1 then dies before any commit. */
    c.cut[1][3] = 1;
    assert_int_equal(tc_propose(&c, 1, 77, "precious"), 0);
    uint64_t slot = paxos_get_last(c.g[1]);
    /* Deliver only the accept to node 2 (and its reply back to node 1 is lost). */
    c.cut[2][1] = 1;
    tc_deliver(&c);
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    c.cut[1][3] = c.cut[2][1] = 0;
    /* Node 3 has never seen the value; it campaigns and learns it from node 2. */
    c.now += 4000000000LL; /* past any lease */
    assert_int_equal(tc_campaign(&c, 3), 0);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    tc_run(&c, 2, TICK);
    assert_true(paxos_get_chosen(c.g[3]) >= slot);
    assert_true(tc_has(&c, 3, 77));
    assert_true(tc_has(&c, 2, 77));
    tc_free(&c);
}

/* Slot k+1 accepted but slot k a hole: the new leader fills the hole with a
 * no-op rather than leaving the log blocked. */
static void test_noop_fills_hole(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    tc_run(&c, 1, TICK);
    uint64_t first = paxos_get_last(c.g[1]) + 1;
    /* Slot `first` goes nowhere; slot first+1 reaches node 2. */
    c.cut[1][2] = c.cut[1][3] = 1;
    assert_int_equal(tc_propose(&c, 1, 1, "lost"), 0);
    tc_deliver(&c);
    c.cut[1][2] = 0;
    c.cut[2][1] = 1;
    /* Force the second proposal into its own slot: make the leader send only it. */
    assert_int_equal(tc_propose(&c, 1, 2, "kept"), 0);
    /* The leader re-sends from node 2's next; node 2 receives slots >= first.
     * Drop the first slot's entry by letting node 2 see only the later one. */
    for (size_t i = 0; i < c.nq; i++) {
        paxos_msg *m = &c.q[i];
        if (m->type != PAXOS_MSG_ACCEPT) continue;
        uint32_t k = 0;
        for (uint32_t j = 0; j < m->nentries; j++) {
            if (m->entries[j].slot == first) {
                free(m->entries[j].data);
                continue;
            }
            m->entries[k++] = m->entries[j];
        }
        m->nentries = k;
    }
    tc_deliver(&c);
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    c.cut[2][1] = 0;
    c.now += 4000000000LL;
    assert_int_equal(tc_campaign(&c, 3), 0);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    tc_run(&c, 2, TICK);
    int saw_noop = 0;
    for (int i = 0; i < c.napplied[3]; i++)
        if (c.applied[3][i].slot == first) {
            assert_int_equal(c.applied[3][i].type, PAXOS_ENTRY_NOOP);
            saw_noop = 1;
        }
    assert_true(saw_noop);
    assert_true(tc_has(&c, 3, 2));
    assert_false(tc_has(&c, 3, 1));
    tc_free(&c);
}

/* A promise (and an accepted ack) leaves only after the state it vouches for
 * is durable: the PERSISTED event releases it. */
static void test_durability_gates_promise_and_accepted(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    c.auto_persist = 0;
    paxos_event ev = {0};
    ev.type = PAXOS_EV_CAMPAIGN;
    ev.now = tc_tt(&c, 1);
    tc_step(&c, 1, &ev);
    /* Node 1's own promise is held too: prepares go out, nothing else yet. */
    for (size_t i = 0; i < c.nq; i++) assert_int_equal(c.q[i].type, PAXOS_MSG_PREPARE);
    tc_persist(&c, 1);
    tc_deliver(&c); /* prepares reach 2 and 3 */
    assert_int_equal(c.nq, 0);
    assert_true(c.pending[2] > 0);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_CANDIDATE);
    /* Node 2 makes its promise durable: now (and only now) it is sent. */
    tc_persist(&c, 2);
    assert_int_equal(c.nq, 1);
    assert_int_equal(c.q[0].type, PAXOS_MSG_PROMISE);
    tc_deliver(&c);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_LEADER);
    tc_persist(&c, 1);
    tc_deliver(&c);
    assert_int_equal(tc_propose(&c, 1, 5, "v"), 0);
    tc_deliver(&c);            /* accepts reach 2 and 3 */
    assert_int_equal(c.nq, 0); /* no ACCEPTED before fsync */
    tc_persist(&c, 3);
    assert_true(c.nq >= 1);
    for (size_t i = 0; i < c.nq; i++) assert_int_equal(c.q[i].from, 3);
    tc_deliver(&c);
    /* Leader's own log not durable yet: chosen needs two durable copies, and
     * the leader applies only what its own disk holds. */
    assert_false(tc_has(&c, 1, 5));
    tc_persist(&c, 1);
    assert_true(tc_has(&c, 1, 5));
    /* A PERSISTED for a sequence never handed out is a caller bug. */
    ev.type = PAXOS_EV_PERSISTED;
    ev.seq = 1000000;
    paxos_update u;
    paxos_update_init(&u);
    assert_int_equal(paxos_step(c.g[2], &ev, &u), MERR_INVALID);
    paxos_update_free(&u);
    tc_free(&c);
}

/* A restarted replica restores promised ballot and accepted entries and
 * refuses to promise anyone for one lease (it may have granted one). */
static void test_restart_restores_and_blocks(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    assert_int_equal(tc_propose(&c, 1, 9, "durable"), 0);
    tc_run(&c, 2, TICK);
    paxos_ballot b = paxos_get_ballot(c.g[2]);
    paxos_entry e = {0};
    e.slot = paxos_get_chosen(c.g[2]);
    e.ballot = b;
    e.type = PAXOS_ENTRY_NOOP;
    paxos_restore rs = {0};
    rs.promised = b;
    rs.entries = &e;
    rs.nentries = 1;
    rs.applied = 0;
    paxos_group *g;
    /* A log that lost entries the state machine applied is corrupt. */
    rs.applied = e.slot + 5;
    assert_int_equal(paxos_group_new(&c.cfg[2], &c.genesis, &rs, &g), MERR_CORRUPT);
    rs.applied = 0;
    assert_int_equal(paxos_group_new(&c.cfg[2], &c.genesis, &rs, &g), 0);
    assert_int_equal(paxos_ballot_cmp(paxos_get_ballot(g), b), 0);
    assert_int_equal(paxos_get_last(g), e.slot);
    paxos_group_free(c.g[2]);
    c.g[2] = g;
    /* Leader 1 goes away; node 3 campaigns. Node 2 (just restarted) refuses. */
    paxos_group_free(c.g[1]);
    c.g[1] = NULL;
    c.now += 4000000000LL;
    tc_tick(&c, 2); /* first event after restart: the block starts now */
    tc_campaign(&c, 3);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_CANDIDATE);
    c.now += 3100000000LL + 2 * TC_EPS;
    tc_campaign(&c, 3);
    assert_int_equal(paxos_get_role(c.g[3]), PAXOS_LEADER);
    tc_free(&c);
}

/* A follower that restarts knows less than it told the leader: its chosen
 * prefix comes back at the state machine's applied slot (the server takes
 * one off, to re-apply the last slot idempotently), and its copy of that
 * slot carries the old leader's ballot, so its replies to the new leader
 * report a lower match than before. The leader must believe the lower
 * figure and resend from there; keeping the higher one, it resent only
 * what lay above it, the follower never learned the slot in between
 * chosen, and stayed behind for good (txn_2pc_crash caught a replica 22
 * slots behind its leader, heartbeats flowing). */
static void test_restarted_follower_behind_its_reported_match(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    assert_int_equal(tc_propose(&c, 1, 1, "under-1"), 0);
    tc_run(&c, 3, TICK);
    paxos_ballot b1 = paxos_get_ballot(c.g[1]);
    uint64_t s1 = paxos_get_chosen(c.g[1]);
    assert_true(tc_has(&c, 1, 1));
    assert_int_equal(paxos_get_chosen(c.g[1]), s1);
    /* Node 2 takes over; node 1 follows and reports its match in ballot 2. */
    paxos_event ev = {0};
    ev.type = PAXOS_EV_TRANSFER;
    ev.now = tc_tt(&c, 1);
    ev.node = 2;
    assert_int_equal(tc_step(&c, 1, &ev), 0);
    tc_deliver(&c);
    tc_run(&c, 3, TICK);
    assert_int_equal(tc_leader(&c), 2);
    paxos_ballot b2 = paxos_get_ballot(c.g[2]);
    assert_int_equal(paxos_get_chosen(c.g[1]), s1);
    /* Node 1 restarts: every slot it has was accepted in ballot 1 (node 2
     * re-proposed nothing: all was chosen), and its store says slot s1 was
     * the last one touched, so it comes back with chosen = s1 - 1. */
    paxos_entry ents[256];
    size_t n = 0;
    for (int i = 0; i < c.napplied[1]; i++) {
        tc_applied *a = &c.applied[1][i];
        memset(&ents[n], 0, sizeof(ents[n]));
        ents[n].slot = a->slot;
        ents[n].ballot = b1;
        ents[n].type = a->type;
        ents[n].data = a->data;
        ents[n].len = a->len;
        n++;
    }
    assert_int_equal(ents[n - 1].slot, s1);
    paxos_restore rs = {0};
    rs.promised = b2;
    rs.entries = ents;
    rs.nentries = n;
    rs.applied = s1 - 1;
    paxos_group *g;
    assert_int_equal(paxos_group_new(&c.cfg[1], &c.genesis, &rs, &g), 0);
    paxos_group_free(c.g[1]);
    c.g[1] = g;
    c.napplied[1] = (int)(s1 - 1);
    /* A new write, and the group goes on as usual: node 1 must catch up. */
    assert_int_equal(tc_propose(&c, 2, 2, "under-2"), 0);
    tc_run(&c, 20, TICK);
    assert_true(tc_has(&c, 2, 2));
    assert_int_equal(paxos_get_chosen(c.g[1]), paxos_get_chosen(c.g[2]));
    assert_true(tc_has(&c, 1, 2));
    tc_free(&c);
}

/* A replica restored without ever having promised a ballot (a group born
 * of a split, restored from its genesis) cannot have granted a lease: it
 * promises at once, with no lease-long block. */
static void test_restart_never_promised_does_not_block(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    paxos_restore rs = {0};
    for (int i = 1; i <= 3; i++) {
        paxos_group *g;
        assert_int_equal(paxos_group_new(&c.cfg[i], &c.genesis, &rs, &g), 0);
        paxos_group_free(c.g[i]);
        c.g[i] = g;
    }
    tc_tick(&c, 2);
    tc_tick(&c, 3);
    tc_campaign(&c, 1);
    assert_int_equal(paxos_get_role(c.g[1]), PAXOS_LEADER);
    tc_free(&c);
}

static void test_bad_input_rejected(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    paxos_update u;
    paxos_update_init(&u);
    paxos_event ev = {0};
    ev.type = 99;
    assert_int_equal(paxos_step(c.g[1], &ev, &u), MERR_INVALID);
    ev.type = PAXOS_EV_MESSAGE;
    assert_int_equal(paxos_step(c.g[1], &ev, &u), MERR_INVALID); /* no message */
    paxos_msg m = {0};
    m.type = PAXOS_MSG_ACCEPT;
    m.group = 8; /* wrong group */
    m.from = 2;
    m.to = 1;
    ev.msg = &m;
    assert_int_equal(paxos_step(c.g[1], &ev, &u), MERR_INVALID);
    m.group = 7;
    m.to = 3; /* not for us */
    assert_int_equal(paxos_step(c.g[1], &ev, &u), MERR_INVALID);
    m.to = 1;
    m.type = 200;
    assert_int_equal(paxos_step(c.g[1], &ev, &u), MERR_INVALID);
    paxos_update_free(&u);
    paxos_config bad = c.cfg[1];
    bad.window = 0;
    paxos_group *g;
    assert_int_equal(paxos_group_new(&bad, &c.genesis, NULL, &g), MERR_INVALID);
    paxos_members none = {0};
    assert_int_equal(paxos_group_new(&c.cfg[1], &none, NULL, &g), MERR_INVALID);
    /* Batches and member lists that lie about their lengths are corrupt. */
    paxos_batch_iter it;
    uint64_t id;
    const uint8_t *d;
    uint32_t len;
    const uint8_t lying[] = {2, 0, 0, 0, 0, 0, 0, 0, 1, 50, 'x'};
    assert_int_equal(paxos_batch_iter_init(&it, lying, sizeof(lying)), 0);
    assert_int_equal(paxos_batch_next(&it, &id, &d, &len), MERR_CORRUPT);
    paxos_members pm;
    const uint8_t badm[] = {3, 0, 0, 0, 1};
    assert_int_equal(paxos_members_decode(badm, sizeof(badm), &pm), MERR_CORRUPT);
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elect_and_commit),
        cmocka_unit_test(test_batching_and_window),
        cmocka_unit_test(test_dropped_proposals_reported),
        cmocka_unit_test(test_recovery_of_accepted_value),
        cmocka_unit_test(test_noop_fills_hole),
        cmocka_unit_test(test_durability_gates_promise_and_accepted),
        cmocka_unit_test(test_restart_restores_and_blocks),
        cmocka_unit_test(test_restarted_follower_behind_its_reported_match),
        cmocka_unit_test(test_restart_never_promised_does_not_block),
        cmocka_unit_test(test_bad_input_rejected),
        cmocka_unit_test(test_hold_then_flush_shares_a_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
