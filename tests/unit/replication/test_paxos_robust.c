/* Multi-Paxos core under hostile input: random (well-typed but meaningless)
 * messages and events thrown at replicas in every role. Each step must return
 * 0 or a clear error code, never crash, and leave the replica's internal
 * invariants intact (the harness runs paxos_check after every step). */
#include "tests/unit/replication/paxos_harness.h"

#define TICK 50000000LL

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void random_msg(tc *c, uint64_t *x, paxos_msg *m, int to)
{
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)(1 + rnd(x) % PAXOS_MSG_TYPE_MAX);
    m->flags = (uint32_t)(rnd(x) & PAXOS_F_ALL);
    m->group = 7;
    m->to = (paxos_node_id)to;
    do m->from = (paxos_node_id)(1 + rnd(x) % 4); /* node 4 is no member */
    while (m->from == (paxos_node_id)to);
    paxos_ballot b = paxos_get_ballot(c->g[to]);
    m->ballot.round = b.round + rnd(x) % 3 - (b.round ? 1 : 0);
    m->ballot.node = (paxos_node_id)(1 + rnd(x) % 4);
    uint64_t last = paxos_get_last(c->g[to]);
    m->slot = last + rnd(x) % 8 - (last > 4 ? 4 : 0);
    m->commit = last + rnd(x) % 8 - (last > 4 ? 4 : 0);
    m->lease_start = tc_tt(c, to).earliest - (int64_t)(rnd(x) % 1000000000);
    m->lease_epoch = rnd(x) % 4;
    m->aux = (paxos_node_id)(rnd(x) % 4);
    m->total = rnd(x) % 40;
    m->offset = rnd(x) % 48;
    m->members.nvoters = (uint32_t)(rnd(x) % 4);
    for (uint32_t i = 0; i < m->members.nvoters; i++) m->members.voters[i] = 1 + i;
    m->len = (uint32_t)(rnd(x) % 12);
    m->data = malloc(m->len + 1);
    for (uint32_t i = 0; i < m->len; i++) m->data[i] = (uint8_t)rnd(x);
    m->nentries = (uint32_t)(rnd(x) % 4);
    m->entries = calloc(m->nentries + 1, sizeof(*m->entries));
    for (uint32_t i = 0; i < m->nentries; i++) {
        paxos_entry *e = &m->entries[i];
        e->slot = m->slot + i + (rnd(x) % 3 == 0);
        if (e->slot == 0) e->slot = 1;
        e->ballot = m->ballot;
        e->type = (uint8_t)(1 + rnd(x) % 3);
        e->len = (uint32_t)(rnd(x) % 10);
        e->data = malloc(e->len + 1);
        for (uint32_t k = 0; k < e->len; k++) e->data[k] = (uint8_t)rnd(x);
        if (e->type == PAXOS_ENTRY_CONFIG && rnd(x) % 2) { /* sometimes a valid one */
            free(e->data);
            paxos_members pm = {2 + (uint32_t)(rnd(x) % 2), 0, {1, 2, 3}, {0}};
            paxos_members_encode(&pm, &e->data, &e->len);
        }
    }
}

static void test_random_messages_never_break_invariants(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 20; round++) {
        tc c;
        tc_init(&c, 3, 3);
        tc_campaign(&c, 1 + round % 3);
        tc_run(&c, 2, TICK);
        for (int i = 0; i < 400; i++) {
            int to = 1 + (int)(rnd(&x) % 3);
            paxos_msg m;
            random_msg(&c, &x, &m, to);
            paxos_event ev = {0};
            ev.type = PAXOS_EV_MESSAGE;
            ev.now = tc_tt(&c, to);
            ev.msg = &m;
            int rc = tc_step(&c, to, &ev);
            assert_true(rc == 0 || rc == MERR_INVALID);
            paxos_msg_free(&m);
            if (i % 7 == 0) {
                c.now += TICK;
                tc_tick(&c, to);
            }
            if (i % 11 == 0) tc_propose(&c, to, (uint64_t)i + 1, "p");
            if (i % 13 == 0)
                tc_deliver(&c); /* the real peers answer too */
            else
                tc_drop_all(&c);
        }
        tc_free(&c);
    }
}

/* Events with out-of-range arguments are refused with a code. */
static void test_bad_events_refused(void **state)
{
    (void)state;
    tc c;
    tc_init(&c, 3, 3);
    tc_campaign(&c, 1);
    paxos_event ev = {0};
    ev.now = tc_tt(&c, 1);
    ev.type = PAXOS_EV_PROPOSE;
    ev.len = 5; /* but no data */
    assert_int_equal(tc_step(&c, 1, &ev), MERR_INVALID);
    ev.type = PAXOS_EV_CONFIG;
    ev.op = 99;
    ev.node = 2;
    assert_int_equal(tc_step(&c, 1, &ev), MERR_INVALID);
    ev.op = PAXOS_ADD_LEARNER;
    ev.node = 0;
    assert_int_equal(tc_step(&c, 1, &ev), MERR_INVALID);
    ev.type = PAXOS_EV_SNAPSHOT_INSTALLED;
    ev.slot = 3;
    assert_int_equal(tc_step(&c, 2, &ev), MERR_INVALID); /* nothing being installed */
    ev.type = PAXOS_EV_SNAPSHOT_TAKEN;
    ev.slot = 1000; /* beyond applied */
    assert_int_equal(tc_step(&c, 1, &ev), MERR_INVALID);
    ev.type = PAXOS_EV_TRANSFER;
    ev.node = 3;
    assert_int_equal(tc_step(&c, 2, &ev), MERR_NOT_LEADER);
    assert_int_equal(tc_leader(&c), 1);
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_messages_never_break_invariants),
        cmocka_unit_test(test_bad_events_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
