/* Paxos simulator: one node = Paxos cores for every group + a simulated disk
 * (the log store: hard state, entries, truncation) + a simulated clock + a
 * durable state machine. Handles each paxos_update the way the real node must
 * (persist, fsync in batches across groups, ack with PERSISTED, send, apply,
 * install snapshots) and checks the invariants as entries are applied. */
#include "tests/sim/paxos_sim.h"

#include "common/err.h"
#include "replication/paxos_codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ps_fail(ps_sim *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
}

paxos_tt ps_tt(ps_sim *s, int n)
{
    paxos_tt t;
    sim_clock_tt(&s->node[n].clock, s->now, &t.earliest, &t.latest);
    return t;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static uint64_t entry_hash(const paxos_entry *e)
{
    uint64_t h = mix(0x1234, e->type);
    for (uint32_t i = 0; i < e->len; i++) h = mix(h, e->data[i]);
    return h;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static paxos_config node_config(ps_sim *s, int n, int gi)
{
    paxos_config c;
    paxos_config_default(&c, (uint64_t)gi + 100, (paxos_node_id)n);
    c.seed = s->seed * 7919 + (uint64_t)n * 131 + (uint64_t)gi;
    c.window = 16;
    c.max_batch = 4;
    c.max_msg_entries = 8;
    c.snapshot_chunk = 3;  /* tiny, so snapshots stream in several chunks */
    c.snapshot_window = 2; /* some in flight: gaps, resends and go-back under loss */
    c.quiesce_ticks = 20;
    c.lease_ns = s->lease_ns;
    c.election_ticks = s->election_ticks;
    return c;
}

static void schedule_tick(ps_sim *s, int n)
{
    int64_t at = s->now + PS_TICK_NS + sim_rng_range(&s->rng, -PS_TICK_NS / 10, PS_TICK_NS / 10);
    sim_queue_push(&s->q, at, PS_EV_TICK, n, 0, s->node[n].inc, NULL);
}

void ps_node_start(ps_sim *s, int n, int fresh)
{
    ps_node *nd = &s->node[n];
    nd->up = 1;
    nd->inc++;
    nd->syncing = 0;
    memset(nd->written, 0, sizeof(nd->written));
    for (int gi = 0; gi < s->groups; gi++) {
        paxos_config c = node_config(s, n, gi);
        int rc;
        if (fresh) {
            rc = paxos_group_new(&c, &s->genesis, NULL, &nd->g[gi]);
        } else {
            paxos_restore rs;
            memset(&rs, 0, sizeof(rs));
            const sim_rec *hs = sim_disk_get(&nd->disk, (uint64_t)gi, 0);
            if (hs && hs->len == 12) {
                rs.promised.round = get_u64(hs->data);
                rs.promised.node = get_u32(hs->data + 8);
            }
            ps_app *a = &nd->app[gi];
            uint8_t snap[16];
            if (a->snap_slot) {
                rs.snap_slot = a->snap_slot;
                rs.snap_members = a->snap_members;
                put_u64(snap, a->snap_slot);
                put_u64(snap + 8, a->snap_hash);
                rs.snap_data = snap;
                rs.snap_len = 16;
            }
            size_t i = sim_disk_lower(&nd->disk, (uint64_t)gi, 1), k = 0;
            size_t cnt = 0;
            while (i + cnt < nd->disk.ndur && nd->disk.dur[i + cnt].k1 == (uint64_t)gi) cnt++;
            /* As the server does (replica_restore), half the time the core
             * gets one slot less than the state machine applied, and applies
             * that slot again: the replica's chosen prefix comes back below
             * what it last reported to its leader, and its copy of the slot
             * may carry an older ballot than the leader's. */
            if (a->applied > a->snap_slot && cnt && nd->disk.dur[i + cnt - 1].k2 >= a->applied &&
                sim_rng_chance(&s->rng, 0.5)) {
                a->applied--;
                a->hash = a->applied == a->snap_slot ? a->snap_hash
                          : a->applied               ? s->glob[gi].prefix[a->applied]
                                                     : 0;
            }
            rs.applied = a->applied;
            paxos_entry *ents = calloc(cnt ? cnt : 1, sizeof(*ents));
            for (; ents && k < cnt; k++) {
                const sim_rec *r = &nd->disk.dur[i + k];
                ents[k].slot = r->k2;
                ents[k].ballot.round = get_u64(r->data);
                ents[k].ballot.node = get_u32(r->data + 8);
                ents[k].type = r->data[12];
                ents[k].len = r->len - 13;
                ents[k].data = r->len > 13 ? r->data + 13 : NULL;
            }
            rs.entries = ents;
            rs.nentries = cnt;
            rc = ents ? paxos_group_new(&c, &s->genesis, &rs, &nd->g[gi]) : MERR_NOMEM;
            free(ents);
        }
        if (rc) ps_fail(s, "n%d g%d: start failed: %s", n, gi, merr_str(rc));
    }
    schedule_tick(s, n);
}

void ps_node_free(ps_sim *s, int n)
{
    for (int gi = 0; gi < s->groups; gi++) {
        paxos_group_free(s->node[n].g[gi]);
        s->node[n].g[gi] = NULL;
    }
}

void ps_node_crash(ps_sim *s, int n)
{
    ps_node_free(s, n);
    sim_disk_crash(&s->node[n].disk);
    s->node[n].up = 0;
    s->node[n].paused_until = 0;
    s->node[n].inc++;
}

static void start_sync(ps_sim *s, int n)
{
    ps_node *nd = &s->node[n];
    uint64_t *seqs = malloc(sizeof(uint64_t) * PS_MAX_GROUPS);
    if (!seqs) return ps_fail(s, "out of memory");
    memcpy(seqs, nd->written, sizeof(uint64_t) * PS_MAX_GROUPS);
    int64_t at;
    uint64_t batch = sim_disk_sync(&nd->disk, &s->rng, s->now, &at);
    /* a = batch, b = incarnation; the seqs ride along */
    seqs[PS_MAX_GROUPS - 1] = batch;
    nd->syncing = 1;
    sim_queue_push(&s->q, at, PS_EV_SYNC, n, batch, nd->inc, seqs);
}

static void check_config(ps_sim *s, int gi, const paxos_entry *e)
{
    paxos_members m;
    if (paxos_members_decode(e->data, e->len, &m)) return ps_fail(s, "g%d: bad config value", gi);
    ps_global *gl = &s->glob[gi];
    if (!paxos_members_quorums_intersect(&gl->cfg, &m))
        return ps_fail(s, "g%d: config at slot %" PRIu64 " has a majority disjoint from the last",
                       gi, e->slot);
    int changed = 0;
    for (uint32_t i = 0; i < m.nvoters; i++)
        changed += !paxos_members_is_voter(&gl->cfg, m.voters[i]);
    for (uint32_t i = 0; i < gl->cfg.nvoters; i++)
        changed += !paxos_members_is_voter(&m, gl->cfg.voters[i]);
    if (changed > 1) return ps_fail(s, "g%d: config changed %d voters at once", gi, changed);
    gl->cfg = m;
}

static void apply(ps_sim *s, int n, int gi, const paxos_entry *e)
{
    ps_app *a = &s->node[n].app[gi];
    ps_global *gl = &s->glob[gi];
    if (e->slot != a->applied + 1)
        return ps_fail(s, "n%d g%d: applied slot %" PRIu64 " after %" PRIu64, n, gi, e->slot,
                       a->applied);
    uint64_t eh = entry_hash(e);
    if (e->slot <= gl->n) {
        if (gl->ehash[e->slot] != eh)
            return ps_fail(s, "n%d g%d: chosen value of slot %" PRIu64 " changed", n, gi, e->slot);
    } else {
        if (e->slot != gl->n + 1) return ps_fail(s, "g%d: oracle gap at %" PRIu64, gi, e->slot);
        uint64_t *ne = realloc(gl->ehash, (e->slot + 1) * sizeof(*ne));
        if (ne) gl->ehash = ne;
        uint64_t *np = realloc(gl->prefix, (e->slot + 1) * sizeof(*np));
        if (np) gl->prefix = np;
        if (!ne || !np) return ps_fail(s, "out of memory");
        gl->ehash[e->slot] = eh;
        gl->prefix[e->slot] = mix(gl->n ? gl->prefix[gl->n] : 0, eh);
        gl->n = e->slot;
        if (e->type == PAXOS_ENTRY_CONFIG) check_config(s, gi, e);
        if (e->type == PAXOS_ENTRY_DATA) {
            paxos_batch_iter it;
            uint64_t id;
            const uint8_t *d;
            uint32_t len;
            if (paxos_batch_iter_init(&it, e->data, e->len)) return ps_fail(s, "bad batch");
            int r;
            while ((r = paxos_batch_next(&it, &id, &d, &len)) == 1) {
                if (id == 0 || id > s->nprops || s->props[id - 1].group != gi)
                    return ps_fail(s, "g%d: unknown proposal %" PRIu64, gi, id);
                if (s->props[id - 1].slot)
                    return ps_fail(s, "g%d: proposal %" PRIu64 " chosen twice", gi, id);
                if (s->props[id - 1].dropped)
                    return ps_fail(s, "g%d: proposal %" PRIu64 " chosen after being dropped", gi,
                                   id);
                s->props[id - 1].slot = e->slot;
                if (s->props[id - 1].probe && !gl->probe_done) {
                    gl->probe_done = 1;
                    gl->probe_slot = e->slot;
                }
            }
            if (r < 0) return ps_fail(s, "bad batch");
        }
    }
    a->applied = e->slot;
    a->hash = gl->prefix[e->slot];
    /* A leader applying a proposal is what acknowledges it to the client. */
    if (e->type == PAXOS_ENTRY_DATA && paxos_get_role(s->node[n].g[gi]) == PAXOS_LEADER) {
        gl->acked_slot = e->slot > gl->acked_slot ? e->slot : gl->acked_slot;
        gl->acked++;
    }
}

static int handle(ps_sim *s, int n, int gi, paxos_update *u);

static int install(ps_sim *s, int n, int gi, paxos_install *in)
{
    ps_app *a = &s->node[n].app[gi];
    ps_global *gl = &s->glob[gi];
    if (in->len != 16) return ps_fail(s, "n%d g%d: bad snapshot", n, gi), -1;
    uint64_t slot = get_u64(in->data), h = get_u64(in->data + 8);
    if (slot != in->slot || slot > gl->n || gl->prefix[slot] != h)
        return ps_fail(s, "n%d g%d: snapshot at %" PRIu64 " disagrees with the chosen log", n, gi,
                       slot),
               -1;
    if (slot <= a->applied) return ps_fail(s, "n%d g%d: snapshot behind applied", n, gi), -1;
    paxos_event ev = {0};
    ev.type = PAXOS_EV_SNAPSHOT_INSTALLED;
    ev.now = ps_tt(s, n);
    if (sim_rng_chance(&s->rng, 0.1)) { /* the install failed (disk full): say so */
        sim_trace_add(&s->tr, s->now, "n%d g%d install snapshot %" PRIu64 " FAILED", n, gi, slot);
        return ps_step(s, n, gi, &ev);
    }
    a->applied = slot;
    a->hash = h;
    a->snap_slot = slot;
    a->snap_hash = h;
    a->snap_members = in->members;
    s->installs++;
    sim_trace_add(&s->tr, s->now, "n%d g%d install snapshot %" PRIu64, n, gi, slot);
    ev.slot = slot;
    return ps_step(s, n, gi, &ev);
}

int ps_take_snapshot(ps_sim *s, int n, int gi)
{
    ps_app *a = &s->node[n].app[gi];
    paxos_group *g = s->node[n].g[gi];
    if (!g || a->applied <= a->snap_slot || a->applied < paxos_get_first(g)) return 0;
    uint8_t data[16];
    put_u64(data, a->applied);
    put_u64(data + 8, a->hash);
    paxos_event ev = {0};
    ev.type = PAXOS_EV_SNAPSHOT_TAKEN;
    ev.now = ps_tt(s, n);
    ev.slot = a->applied;
    ev.data = data;
    ev.len = 16;
    uint64_t slot = a->applied;
    int rc = ps_step(s, n, gi, &ev);
    if (rc == 0) {
        /* the membership in force after the snapshot slot, as the core has it */
        uint64_t ss;
        paxos_get_snapshot(g, &ss, &a->snap_members);
        a->snap_slot = slot;
        a->snap_hash = get_u64(data + 8);
        s->snapshots++;
        sim_trace_add(&s->tr, s->now, "n%d g%d snapshot at %" PRIu64, n, gi, slot);
    }
    return rc;
}

static int handle(ps_sim *s, int n, int gi, paxos_update *u)
{
    ps_node *nd = &s->node[n];
    /* 1. the log store: hard state, entries, truncation — then fsync */
    if (u->hs_changed) {
        if (paxos_ballot_cmp(u->promised, s->glob[gi].max_promised) > 0)
            s->glob[gi].max_promised = u->promised;
        uint8_t hs[12]; /* round (8) + node (4) */
        put_u64(hs, u->promised.round);
        put_u32(hs + 8, u->promised.node);
        sim_disk_put(&nd->disk, (uint64_t)gi, 0, hs, 12);
    }
    for (size_t i = 0; i < u->npersist; i++) {
        const paxos_entry *e = &u->persist[i];
        uint8_t *b = malloc(13 + e->len);
        if (!b) return ps_fail(s, "out of memory"), -1;
        put_u64(b, e->ballot.round);
        put_u32(b + 8, e->ballot.node);
        b[12] = e->type;
        if (e->len) memcpy(b + 13, e->data, e->len);
        sim_disk_put(&nd->disk, (uint64_t)gi, e->slot, b, 13 + e->len);
        free(b);
    }
    if (u->truncate_upto) sim_disk_del(&nd->disk, (uint64_t)gi, 1, u->truncate_upto);
    if (u->persist_seq) {
        nd->written[gi] = u->persist_seq;
        if (!nd->syncing) start_sync(s, n);
        /* The worst moment to lose power: writes issued, fsync not done. */
        if (!s->healing && sim_rng_chance(&s->rng, s->crash_in_sync))
            sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, 0, nd->disk.sync_min),
                           PS_EV_CRASH, n, nd->inc, 0, NULL);
    }
    /* 2. messages, through the real codec */
    for (size_t i = 0; i < u->nmsgs; i++) {
        const paxos_msg *m = &u->msgs[i];
        uint8_t *p;
        size_t len;
        if (paxos_msg_encode(m, &p, &len)) return ps_fail(s, "encode failed"), -1;
        sim_net_send(&s->net, s->now, n, (int)m->to, p, len);
        free(p);
        if (m->type == PAXOS_MSG_PREPARE) s->elections++;
    }
    /* 3. proposals the core gave up: they must never be chosen */
    for (size_t i = 0; i < u->ndropped; i++) {
        uint64_t id = u->dropped[i];
        if (id == 0 || id > s->nprops) return ps_fail(s, "dropped an unknown proposal"), -1;
        if (s->props[id - 1].slot)
            return ps_fail(s, "n%d g%d: dropped proposal %" PRIu64 " that was chosen", n, gi, id),
                   -1;
        s->props[id - 1].dropped = 1;
    }
    /* 4. chosen entries, in order */
    for (size_t i = 0; i < u->nchosen && !s->failed; i++) apply(s, n, gi, &u->chosen[i]);
    /* 5. a complete snapshot to install */
    if (u->has_install && !s->failed) {
        paxos_install in = u->install;
        u->install.data = NULL;
        u->has_install = 0;
        install(s, n, gi, &in);
        free(in.data);
    }
    if (u->want_snapshot && !s->failed) ps_take_snapshot(s, n, gi);
    return 0;
}

static ps_promises *promises_of(ps_sim *s, int gi, paxos_ballot b, int add)
{
    for (unsigned i = 0; i < 64; i++)
        if (s->prom[gi][i].mask && paxos_ballot_cmp(s->prom[gi][i].b, b) == 0)
            return &s->prom[gi][i];
    if (!add) return NULL;
    ps_promises *p = &s->prom[gi][s->promn[gi]++ % 64];
    p->b = b;
    p->mask = 0;
    return p;
}

/* A new leader must hold promises from a majority of the newest config any
 * replica has applied: phase 1 walks the chain of configs up to it. This holds
 * for a ballot nobody has promised to exceed (every config was chosen in a
 * lower ballot, so its quorum met the promisers). A stale ballot whose
 * promises were delayed may "win" later but can never get anything accepted. */
static void check_new_leader(ps_sim *s, int n, int gi)
{
    paxos_ballot b = paxos_get_ballot(s->node[n].g[gi]);
    if (paxos_ballot_cmp(b, s->glob[gi].max_promised) < 0) return;
    ps_promises *p = promises_of(s, gi, b, 0);
    uint32_t mask = (p ? p->mask : 0) | (1u << n);
    paxos_node_id ids[PS_MAX_NODES];
    size_t k = 0;
    for (int i = 1; i <= s->nodes; i++)
        if (mask & (1u << i)) ids[k++] = (paxos_node_id)i;
    const paxos_members *m = &s->glob[gi].cfg;
    uint32_t c = 0;
    for (uint32_t i = 0; i < m->nvoters; i++)
        for (size_t j = 0; j < k; j++) c += ids[j] == m->voters[i];
    if (c < m->nvoters / 2 + 1)
        ps_fail(s, "g%d: n%d leads ballot %" PRIu64 ".%u without a majority of the current config",
                gi, n, b.round, b.node);
}

int ps_step(ps_sim *s, int n, int gi, paxos_event *ev)
{
    paxos_group *g = s->node[n].g[gi];
    if (!g || s->failed) return 0;
    paxos_update u;
    paxos_update_init(&u);
    if (ev->type == PAXOS_EV_MESSAGE && ev->msg->type == PAXOS_MSG_PROMISE)
        promises_of(s, gi, ev->msg->ballot, 1)->mask |= 1u << ev->msg->from;
    int was_leader = paxos_get_role(g) == PAXOS_LEADER;
    int rc = paxos_step(g, ev, &u);
    if (!was_leader && paxos_get_role(g) == PAXOS_LEADER) check_new_leader(s, n, gi);
    char why[160];
    if (paxos_check(g, why, sizeof(why))) ps_fail(s, "n%d g%d: %s", n, gi, why);
    if (rc == MERR_NOMEM || rc == MERR_INTERNAL || rc == MERR_CORRUPT)
        ps_fail(s, "n%d g%d: paxos_step: %s", n, gi, merr_str(rc));
    handle(s, n, gi, &u);
    paxos_update_free(&u);
    return rc;
}

void ps_on_sync(ps_sim *s, int n, uint64_t batch, const uint64_t *seqs)
{
    ps_node *nd = &s->node[n];
    sim_disk_sync_done(&nd->disk, batch);
    nd->syncing = 0;
    for (int gi = 0; gi < s->groups && !s->failed; gi++) {
        if (!seqs[gi]) continue;
        paxos_event ev = {0};
        ev.type = PAXOS_EV_PERSISTED;
        ev.now = ps_tt(s, n);
        ev.seq = seqs[gi];
        ps_step(s, n, gi, &ev);
    }
    if (nd->up && nd->disk.npend && !nd->syncing) start_sync(s, n);
}

void ps_on_net(ps_sim *s, int to, int from, const uint8_t *p, size_t len)
{
    if (len == 1 && p[0] == 'L') { /* node-level liveness */
        for (int gi = 0; gi < s->groups; gi++) {
            paxos_event ev = {0};
            ev.type = PAXOS_EV_LIVENESS;
            ev.now = ps_tt(s, to);
            ev.node = (paxos_node_id)from;
            ps_step(s, to, gi, &ev);
        }
        return;
    }
    paxos_msg m;
    merr e = {0};
    if (paxos_msg_decode(p, len, &m, &e)) return ps_fail(s, "decode: %s", merr_msg(&e));
    int gi = (int)m.group - 100;
    if (gi < 0 || gi >= s->groups) {
        paxos_msg_free(&m);
        return ps_fail(s, "message for unknown group %" PRIu64, m.group);
    }
    sim_trace_add(&s->tr, s->now,
                  "n%d<-n%d g%d %s b=%" PRIu64 ".%u s=%" PRIu64 " c=%" PRIu64 " n=%u f=%x", to,
                  from, gi, paxos_msg_type_name(m.type), m.ballot.round, m.ballot.node, m.slot,
                  m.commit, m.nentries, m.flags);
    paxos_event ev = {0};
    ev.type = PAXOS_EV_MESSAGE;
    ev.now = ps_tt(s, to);
    ev.msg = &m;
    int rc = ps_step(s, to, gi, &ev);
    if (rc == MERR_INVALID) ps_fail(s, "n%d rejected a well-formed message as invalid", to);
    paxos_msg_free(&m);
}

int ps_leader_of(ps_sim *s, int gi)
{
    int best = 0;
    paxos_ballot bb = {0, 0};
    for (int n = 1; n <= s->nodes; n++) {
        paxos_group *g = s->node[n].g[gi];
        if (!s->node[n].up || !g || paxos_get_role(g) != PAXOS_LEADER) continue;
        if (!best || paxos_ballot_cmp(paxos_get_ballot(g), bb) > 0) {
            best = n;
            bb = paxos_get_ballot(g);
        }
    }
    return best;
}

/* The premise of the lease argument: while L believes its lease valid, a
 * majority of voters (of every config L counts) will not promise anyone else
 * (a node that is down promises nothing; a restarted one blocks everyone). */
static int lease_protected(ps_sim *s, int gi, int l, const paxos_members *m)
{
    uint32_t prot = 0;
    for (uint32_t i = 0; i < m->nvoters; i++) {
        int a = (int)m->voters[i];
        paxos_group *g = a <= s->nodes ? s->node[a].g[gi] : NULL;
        if (!s->node[a].up || !g) {
            prot++;
            continue;
        }
        paxos_node_id to;
        int64_t until;
        paxos_get_grant(g, &to, &until);
        if ((to == (paxos_node_id)l || to == UINT32_MAX) && ps_tt(s, a).earliest <= until) prot++;
    }
    return prot >= m->nvoters / 2 + 1;
}

/* After every step: at most one valid lease per group at this true time, and
 * each valid one protected by a majority of acceptors. */
void ps_check(ps_sim *s)
{
    for (int gi = 0; gi < s->groups && !s->failed; gi++) {
        int holders = 0, first = 0;
        for (int n = 1; n <= s->nodes; n++) {
            paxos_group *g = s->node[n].g[gi];
            if (!s->node[n].up || !g || !paxos_lease_valid(g, ps_tt(s, n))) continue;
            paxos_members c, l;
            paxos_get_members(g, &c, &l);
            if (!lease_protected(s, gi, n, &c) || !lease_protected(s, gi, n, &l)) {
                ps_fail(s, "g%d: n%d holds a lease no majority protects", gi, n);
                break;
            }
            /* Lease reads are linearizable: a leaseholder's state machine has
             * every write any leader acknowledged. */
            if (s->node[n].app[gi].applied < s->glob[gi].acked_slot) {
                ps_fail(s, "g%d: leaseholder n%d has applied %" PRIu64 " < acked slot %" PRIu64, gi,
                        n, s->node[n].app[gi].applied, s->glob[gi].acked_slot);
                break;
            }
            if (holders++) {
                ps_fail(s, "g%d: two valid leases at once (n%d and n%d)", gi, first, n);
                break;
            }
            first = n;
        }
    }
}
