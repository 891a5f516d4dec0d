/* A hand-driven cluster of Paxos cores for the unit tests: the test decides
 * which messages are delivered or dropped, when writes become durable and what
 * each node's clock reads. Header-only; every test file includes it once. */
#ifndef MERIDIAN_TESTS_UNIT_REPLICATION_PAXOS_HARNESS_H
#define MERIDIAN_TESTS_UNIT_REPLICATION_PAXOS_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "replication/paxos.h"

#define TC_MAX 6
#define TC_EPS 5000000LL /* 5 ms */

typedef struct tc_applied {
    uint64_t slot;
    uint8_t type;
    uint32_t len;
    uint8_t data[64];
} tc_applied;

typedef struct tc {
    int n;
    paxos_group *g[TC_MAX + 1];
    paxos_config cfg[TC_MAX + 1];
    paxos_members genesis;
    int64_t now;                  /* true time */
    int64_t off[TC_MAX + 1];      /* clock offset per node */
    int auto_persist;             /* ack every persist at once */
    uint64_t pending[TC_MAX + 1]; /* highest un-acked persist seq */
    paxos_msg *q;
    size_t nq, capq;
    int cut[TC_MAX + 1][TC_MAX + 1]; /* drop a -> b */
    tc_applied applied[TC_MAX + 1][256];
    int napplied[TC_MAX + 1];
    int installs[TC_MAX + 1];
    int fail_installs; /* report the next installs as failed (disk full) */
    uint64_t dropped[TC_MAX + 1][64];
    int ndropped[TC_MAX + 1];
    size_t last_nmsgs; /* messages emitted by the last step (before queueing) */
} tc;

static inline paxos_tt tc_tt(tc *c, int node)
{
    paxos_tt t = {c->now + c->off[node] - TC_EPS, c->now + c->off[node] + TC_EPS};
    return t;
}

static inline void tc_init(tc *c, int n, int nvoters)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->auto_persist = 1;
    c->now = 1000000000000LL;
    c->genesis.nvoters = (uint32_t)nvoters;
    for (int i = 0; i < nvoters; i++) c->genesis.voters[i] = (paxos_node_id)(i + 1);
    for (int i = 1; i <= n; i++) {
        paxos_config_default(&c->cfg[i], 7, (paxos_node_id)i);
        c->cfg[i].seed = 42;
        c->cfg[i].quiesce_ticks = 0;
        assert_int_equal(paxos_group_new(&c->cfg[i], &c->genesis, NULL, &c->g[i]), 0);
    }
}

static inline void tc_free(tc *c)
{
    for (int i = 1; i <= c->n; i++) paxos_group_free(c->g[i]);
    for (size_t i = 0; i < c->nq; i++) paxos_msg_free(&c->q[i]);
    free(c->q);
}

static inline int tc_step(tc *c, int node, paxos_event *ev);

static inline void tc_handle(tc *c, int node, paxos_update *u)
{
    c->last_nmsgs = u->nmsgs;
    for (size_t i = 0; i < u->nmsgs; i++) {
        if (c->nq == c->capq) {
            c->capq = c->capq ? c->capq * 2 : 64;
            c->q = realloc(c->q, c->capq * sizeof(*c->q));
            assert_non_null(c->q);
        }
        c->q[c->nq++] = u->msgs[i];
        memset(&u->msgs[i], 0, sizeof(u->msgs[i]));
    }
    for (size_t i = 0; i < u->nchosen; i++) {
        tc_applied *a = &c->applied[node][c->napplied[node]++];
        assert_true(c->napplied[node] < 256);
        a->slot = u->chosen[i].slot;
        a->type = u->chosen[i].type;
        a->len = u->chosen[i].len < 64 ? u->chosen[i].len : 64;
        if (a->len) memcpy(a->data, u->chosen[i].data, a->len);
    }
    if (u->persist_seq) c->pending[node] = u->persist_seq;
    for (size_t i = 0; i < u->ndropped && c->ndropped[node] < 64; i++)
        c->dropped[node][c->ndropped[node]++] = u->dropped[i];
    if (u->has_install) {
        paxos_event ev = {0};
        ev.type = PAXOS_EV_SNAPSHOT_INSTALLED;
        ev.now = tc_tt(c, node);
        ev.slot = u->install.slot;
        if (c->fail_installs) {
            c->fail_installs--;
            ev.slot = 0;
        } else {
            c->installs[node]++;
            c->napplied[node] = 0; /* the state machine is replaced */
        }
        paxos_update_free(u);
        assert_int_equal(tc_step(c, node, &ev), 0);
        return;
    }
    paxos_update_free(u);
}

static inline void tc_persist(tc *c, int node)
{
    while (c->pending[node]) {
        paxos_event ev = {0};
        ev.type = PAXOS_EV_PERSISTED;
        ev.now = tc_tt(c, node);
        ev.seq = c->pending[node];
        c->pending[node] = 0;
        paxos_update u;
        paxos_update_init(&u);
        assert_int_equal(paxos_step(c->g[node], &ev, &u), 0);
        tc_handle(c, node, &u);
    }
}

static inline int tc_step(tc *c, int node, paxos_event *ev)
{
    paxos_update u;
    paxos_update_init(&u);
    int rc = paxos_step(c->g[node], ev, &u);
    char why[160];
    if (paxos_check(c->g[node], why, sizeof(why))) fail_msg("node %d: %s", node, why);
    tc_handle(c, node, &u);
    if (c->auto_persist) tc_persist(c, node);
    return rc;
}

static inline int tc_tick(tc *c, int node)
{
    paxos_event ev = {0};
    ev.type = PAXOS_EV_TICK;
    ev.now = tc_tt(c, node);
    return tc_step(c, node, &ev);
}

/* Delivers queued messages (in order) until none is left; returns how many. */
static inline int tc_deliver(tc *c)
{
    int k = 0;
    while (c->nq) {
        paxos_msg m = c->q[0];
        memmove(c->q, c->q + 1, (c->nq - 1) * sizeof(*c->q));
        c->nq--;
        if (m.to >= 1 && (int)m.to <= c->n && c->g[m.to] && !c->cut[m.from][m.to]) {
            paxos_event ev = {0};
            ev.type = PAXOS_EV_MESSAGE;
            ev.now = tc_tt(c, (int)m.to);
            ev.msg = &m;
            assert_int_equal(tc_step(c, (int)m.to, &ev), 0);
            k++;
        }
        paxos_msg_free(&m);
    }
    return k;
}

static inline void tc_drop_all(tc *c)
{
    for (size_t i = 0; i < c->nq; i++) paxos_msg_free(&c->q[i]);
    c->nq = 0;
}

static inline int tc_campaign(tc *c, int node)
{
    paxos_event ev = {0};
    ev.type = PAXOS_EV_CAMPAIGN;
    ev.now = tc_tt(c, node);
    int rc = tc_step(c, node, &ev);
    tc_deliver(c);
    return rc;
}

static inline int tc_propose(tc *c, int node, uint64_t id, const char *s)
{
    paxos_event ev = {0};
    ev.type = PAXOS_EV_PROPOSE;
    ev.now = tc_tt(c, node);
    ev.id = id;
    ev.data = (const uint8_t *)s;
    ev.len = (uint32_t)strlen(s);
    return tc_step(c, node, &ev);
}

/* Ticks every live node k times, delivering after each round. */
static inline void tc_run(tc *c, int k, int64_t tick_ns)
{
    for (int i = 0; i < k; i++) {
        c->now += tick_ns;
        for (int n = 1; n <= c->n; n++)
            if (c->g[n]) tc_tick(c, n);
        tc_deliver(c);
    }
}

/* Does node's applied log hold a DATA batch containing proposal `id`? */
static inline int tc_has(tc *c, int node, uint64_t id)
{
    for (int i = 0; i < c->napplied[node]; i++) {
        tc_applied *a = &c->applied[node][i];
        if (a->type != PAXOS_ENTRY_DATA) continue;
        paxos_batch_iter it;
        uint64_t pid;
        const uint8_t *d;
        uint32_t len;
        if (paxos_batch_iter_init(&it, a->data, a->len)) continue;
        while (paxos_batch_next(&it, &pid, &d, &len) == 1)
            if (pid == id) return 1;
    }
    return 0;
}

static inline int tc_leader(tc *c)
{
    for (int n = 1; n <= c->n; n++)
        if (c->g[n] && paxos_get_role(c->g[n]) == PAXOS_LEADER) return n;
    return 0;
}

#endif
