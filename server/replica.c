/* A range replica: a Paxos group applying to a range store (see replica.h). */
#include "server/replica.h"
#include "server/replica_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/localkey.h"
#include "common/log.h"
#include "common/mtime.h"
#include "server/put_stages.h"
#include "server/range_cmd.h"
#include "timesvc/hlc.h"

#define MOD "replica"

/* ---- encodings of the durable state ---- */

/* Length of one paxos_members encoding at p (0: malformed). */
static size_t members_len(const uint8_t *p, size_t n)
{
    if (n < 1) return 0;
    size_t at = 1 + 4 * (size_t)p[0];
    if (n < at + 1) return 0;
    at += 1 + 4 * (size_t)p[at];
    return at <= n ? at : 0;
}

int replica_encode_hardstate(const paxos_ballot *b, const paxos_members *genesis,
                             uint64_t snap_slot, const paxos_members *snap_members, mbuf *out)
{
    uint8_t *mem = NULL, *smem = NULL;
    uint32_t mlen = 0, slen = 0;
    int rc = paxos_members_encode(genesis, &mem, &mlen);
    if (!rc && snap_slot) rc = paxos_members_encode(snap_members, &smem, &slen);
    if (!rc) rc = mbuf_append_u64be(out, b->round);
    if (!rc) rc = mbuf_append_u32be(out, b->node);
    if (!rc) rc = mbuf_append(out, mem, mlen);
    if (!rc && snap_slot) rc = mbuf_append_u64be(out, snap_slot);
    if (!rc && snap_slot) rc = mbuf_append(out, smem, slen);
    free(mem);
    free(smem);
    return rc;
}

int replica_decode_hardstate(const uint8_t *p, size_t n, paxos_ballot *b, paxos_members *genesis,
                             uint64_t *snap_slot, paxos_members *snap_members)
{
    mreader r;
    mreader_init(&r, p, n);
    uint32_t node;
    if (mreader_u64be(&r, &b->round) || mreader_u32be(&r, &node)) return MERR_CORRUPT;
    b->node = node;
    size_t gl = members_len(p + r.pos, mreader_left(&r));
    if (!gl) return MERR_CORRUPT;
    int rc = paxos_members_decode(p + r.pos, gl, genesis);
    if (rc) return rc;
    r.pos += gl;
    *snap_slot = 0;
    *snap_members = *genesis;
    if (!mreader_left(&r)) return 0; /* no snapshot yet (or a store from before snapshots) */
    if (mreader_u64be(&r, snap_slot)) return MERR_CORRUPT;
    return paxos_members_decode(p + r.pos, mreader_left(&r), snap_members);
}

uint64_t replica_composite(uint64_t slot, uint32_t idx)
{
    return (slot << 8) | idx;
}

/* ---- accessors ---- */

uint64_t replica_id(const replica *r)
{
    return r->range_id;
}
range *replica_store(replica *r)
{
    replica_store_ensure(r); /* an idle replica's store may be closed */
    return r->store;
}
paxos_group *replica_group(replica *r)
{
    return r->g;
}

int replica_placeholder(replica *r)
{
    if (replica_id(r) != 1 || paxos_get_applied(r->g) != 0) return 0;
    uint64_t snap = 0;
    paxos_get_snapshot(r->g, &snap, NULL);
    if (snap) return 0;
    paxos_members m;
    paxos_get_members(r->g, &m, NULL);
    paxos_node_id self = (paxos_node_id)r->h->node_id;
    for (uint32_t i = 0; i < m.nvoters; i++)
        if (m.voters[i] == self) return 0;
    for (uint32_t i = 0; i < m.nlearners; i++)
        if (m.learners[i] == self) return 0;
    return 1;
}

int replica_contains(replica *r, const uint8_t *key, size_t klen)
{
    /* A range-local key (a transaction record) is where its anchor is. */
    if (mlocal_is(key, klen))
        return mlocal_in_span(key, klen, r->start, r->start_len, r->end, r->end_len);
    size_t n = klen < r->start_len ? klen : r->start_len;
    int c = n ? memcmp(key, r->start, n) : 0;
    if (c < 0 || (c == 0 && klen < r->start_len)) return 0;
    if (r->end_len == 0) return 1;
    n = klen < r->end_len ? klen : r->end_len;
    c = n ? memcmp(key, r->end, n) : 0;
    return c < 0 || (c == 0 && klen < r->end_len);
}

static int tt_of(replica *r, paxos_tt *out)
{
    tt_interval tt;
    if (host_now(r->h, &tt, NULL)) return MERR_CLOCK;
    out->earliest = tt.earliest_ns;
    out->latest = tt.latest_ns;
    return 0;
}

int replica_is_leaseholder(replica *r)
{
    paxos_tt now;
    if (r->broken || tt_of(r, &now)) return 0;
    return paxos_lease_valid(r->g, now);
}

int replica_settled_at(replica *r, uint64_t ts)
{
    paxos_tt now;
    if (r->broken || tt_of(r, &now)) return 0;
    /* The lease must outlast ts itself, which the HLC may have put a little
     * past this node's latest bound: a successor's writes all lie above the
     * end of this lease. */
    int64_t phys = hlc_physical_ns(ts);
    if (phys > now.latest) now.latest = phys;
    if (!paxos_lease_valid(r->g, now)) return 0;
    return !r->pending && !paxos_get_queued(r->g) &&
           paxos_get_applied(r->g) == paxos_get_last(r->g);
}

uint64_t replica_leader_hint(replica *r)
{
    return paxos_get_leader(r->g);
}

/* ---- the update: persist, send, apply ---- */

static void fail_pending(replica *r, int code, const char *msg)
{
    while (r->pending) {
        pending_write *p = r->pending;
        r->pending = p->next;
        if (!r->pending) r->pending_tail = NULL; /* before cb: it may write again */
        p->cb(p->arg, code, msg, 0);
        free(p);
    }
}

pending_write *replica_take_pending(replica *r, uint64_t id)
{
    /* Oldest first: writes are applied in the order they were proposed, so
     * the match is nearly always the head (a newest-first list made every
     * apply walk all writes in flight). */
    pending_write *prev = NULL;
    for (pending_write *p = r->pending; p; prev = p, p = p->next) {
        if (p->id != id) continue;
        if (prev)
            prev->next = p->next;
        else
            r->pending = p->next;
        if (r->pending_tail == p) r->pending_tail = prev;
        return p;
    }
    return NULL;
}

/* Orphans. The core reports a proposal dropped only while it is queued; one
 * that already had a slot when this replica lost the lead (a pause, a
 * partition, a higher ballot) may still be chosen by the next leader, or
 * that slot may get another value, and then its id is never applied.
 * Writes with no deadline (2PC records, snapshot barriers, keep-alives)
 * would then wait for ever, and a pending write's timestamp holds back
 * every snapshot read above it (tx2_min_pending). So: on losing the lead,
 * mark the pending writes and note the log's last slot, which is at least
 * every slot the old leader gave out; once the applied slot passes it,
 * every slot they could have been chosen in is decided (leaders re-propose
 * a recovered value in its own slot, never elsewhere), and the orphans
 * still pending were (but for a snapshot install) not chosen: they fail as
 * an expired deadline does, outcome unknown. */
static void note_lead(replica *r)
{
    int leads = paxos_get_role(r->g) == PAXOS_LEADER;
    paxos_ballot b = paxos_get_ballot(r->g);
    if (r->led && (!leads || paxos_ballot_cmp(b, r->led_ballot) != 0) && r->pending) {
        for (pending_write *p = r->pending; p; p = p->next) p->orphan = 1;
        uint64_t last = paxos_get_last(r->g);
        if (last > r->orphans_upto) r->orphans_upto = last;
    }
    r->led = leads;
    if (leads) r->led_ballot = b;
}

static void fail_orphans(replica *r)
{
    if (!r->orphans_upto || paxos_get_applied(r->g) < r->orphans_upto) return;
    r->orphans_upto = 0;
    pending_write *keep = NULL, *keep_tail = NULL, *lost = NULL, *lost_tail = NULL;
    for (pending_write *p = r->pending, *next; p; p = next) {
        next = p->next;
        p->next = NULL;
        pending_write **head = p->orphan ? &lost : &keep,
                      **tail = p->orphan ? &lost_tail : &keep_tail;
        if (*tail)
            (*tail)->next = p;
        else
            *head = p;
        *tail = p;
    }
    r->pending = keep; /* before the callbacks: they may write again */
    r->pending_tail = keep_tail;
    while (lost) {
        pending_write *p = lost;
        lost = p->next;
        /* Ambiguous on purpose, as a deadline's expiry: after a snapshot
         * install the applied slot jumps, and an orphan chosen inside it
         * was never seen applied here. Callers treat it as "unknown". */
        p->cb(p->arg, MERR_TIMEOUT,
              "the leader changed: the write may or may not have been applied", 0);
        free(p);
    }
}

static void handle_update(replica *r, paxos_update *u)
{
    host *h = r->h;
    note_lead(r);
    if (u->nchosen || u->has_install || u->want_snapshot) replica_store_ensure(r);
    if (u->has_install) r->doubt_clean = 0; /* a new store: its intents are read again */
    host_wake(h, r);                        /* it did something: tick it until it is quiet again */
    /* Messages first (paxos.h: they never depend on this update's persist):
     * a leader's ACCEPTs then travel while its own log write is queued, so
     * the followers' fsyncs start one thread hand-off sooner. */
    for (size_t i = 0; i < u->nmsgs; i++) host_send(h, &u->msgs[i]);
    if (u->persist_seq) {
        uint64_t bid = host_batch_id(h);
        logstore_batch *b = logstore_batch_new(bid);
        int rc = b ? 0 : MERR_NOMEM;
        /* A truncation means a new snapshot: its slot and membership go into
         * the hard state in the same atomic batch (replica_int.h). */
        if (!rc && (u->hs_changed || u->truncate_upto)) {
            mbuf hs = MBUF_INIT;
            paxos_ballot promised = u->hs_changed ? u->promised : paxos_get_ballot(r->g);
            uint64_t snap_slot;
            paxos_members snap_members;
            paxos_get_snapshot(r->g, &snap_slot, &snap_members);
            rc = replica_encode_hardstate(&promised, &r->genesis, snap_slot, &snap_members, &hs);
            if (!rc) rc = logstore_batch_hardstate(b, r->range_id, hs.data, hs.len);
            mbuf_free(&hs);
        }
        for (size_t i = 0; !rc && i < u->npersist; i++) {
            const paxos_entry *en = &u->persist[i];
            mbuf v = MBUF_INIT;
            rc = mbuf_append_u8(&v, en->type);
            if (!rc) rc = mbuf_append_u32be(&v, en->ballot.node);
            if (!rc) rc = mbuf_append(&v, en->data, en->len);
            if (!rc)
                rc =
                    logstore_batch_entry(b, r->range_id, en->slot, en->ballot.round, v.data, v.len);
            mbuf_free(&v);
        }
        if (!rc && u->truncate_upto)
            rc = logstore_batch_truncate(b, r->range_id, u->truncate_upto + 1);
        if (!rc) {
            rc = host_persist(h, r, b, bid, u->persist_seq);
            if (!rc) r->inflight++;
        } else if (b)
            logstore_batch_free(b);
        if (rc) {
            /* Without durability this acceptor must not answer: stop it. */
            MLOG_E(MOD, "cannot persist", "range=%" PRIu64 " error=%s", r->range_id, merr_str(rc));
            r->broken = 1;
        }
    }
    for (size_t i = 0; i < u->nchosen; i++) r->log_bytes += u->chosen[i].len + 32;
    uint64_t bad_slot = 0;
    if (u->nchosen && !r->broken && replica_apply_or_stall(r, u->chosen, u->nchosen, &bad_slot)) {
        MLOG_E(MOD, "apply failed: replica stops",
               "range=%" PRIu64 " slot<=%" PRIu64 " error=\"%s\"", r->range_id, bad_slot,
               range_err(r->store)->msg);
        r->broken = 1;
        fail_pending(r, MERR_IO, "apply failed on the leader");
    }
    for (size_t i = 0; i < u->ndropped; i++) {
        pending_write *p = replica_take_pending(r, u->dropped[i]);
        if (!p) continue;
        p->cb(p->arg, MERR_RETRY, "leadership changed before the write got a slot", 0);
        free(p);
    }
    if (!r->broken) fail_orphans(r);
    int want_snapshot = u->want_snapshot, chose = u->nchosen > 0;
    if (u->has_install && !r->broken) {
        paxos_install in = u->install;
        u->install.data = NULL; /* ours now */
        u->has_install = 0;
        paxos_update_free(u);
        replica_install(r, &in);
        free(in.data);
        return;
    }
    paxos_update_free(u);
    if (chose || want_snapshot) replica_maybe_snapshot(r, want_snapshot);
}

static void step_now(replica *r, paxos_event *ev)
{
    paxos_update u;
    paxos_update_init(&u);
    paxos_step(r->g, ev, &u);
    handle_update(r, &u);
}

/* The completions kept while the clock could not be trusted, at now. */
static void step_late(replica *r, paxos_tt now)
{
    if (r->late_persisted && !r->broken) {
        paxos_event ev = {.type = PAXOS_EV_PERSISTED, .seq = r->late_persisted, .now = now};
        r->late_persisted = 0;
        step_now(r, &ev);
    }
    if (r->late_install && !r->broken) {
        paxos_event ev = {
            .type = PAXOS_EV_SNAPSHOT_INSTALLED, .slot = r->late_install_slot, .now = now};
        r->late_install = 0;
        step_now(r, &ev);
    }
}

void replica_step(replica *r, paxos_event *ev)
{
    if (r->broken) return;
    if (tt_of(r, &ev->now)) {
        /* No trustworthy time: do nothing rather than guess. A message or a
         * tick comes again; a local completion does not, and the core
         * would wait for it for ever (a one-voter range 1 stalled for good
         * when its persist completed before the new node's clock had been
         * compared with its first peer): it is kept for later. */
        if (ev->type == PAXOS_EV_PERSISTED && ev->seq > r->late_persisted)
            r->late_persisted = ev->seq;
        else if (ev->type == PAXOS_EV_SNAPSHOT_INSTALLED)
            r->late_install = 1, r->late_install_slot = ev->slot;
        if (r->late_persisted || r->late_install) host_wake(r->h, r); /* ticks retry */
        return;
    }
    step_late(r, ev->now);
    if (r->broken) return;
    step_now(r, ev);
    replica_lease_poll(r, 0);
}

void replica_on_msg(replica *r, const paxos_msg *m)
{
    paxos_event ev = {.type = PAXOS_EV_MESSAGE, .msg = m};
    replica_step(r, &ev);
}

void replica_tick(replica *r)
{
    if (r->nstall) replica_stall_retry(r);
    paxos_event ev = {.type = PAXOS_EV_TICK};
    replica_step(r, &ev);
    replica_close_tick(r);
}

void replica_liveness(replica *r, uint64_t node)
{
    paxos_event ev = {.type = PAXOS_EV_LIVENESS, .node = (paxos_node_id)node};
    replica_step(r, &ev);
}

void replica_campaign(replica *r)
{
    paxos_event ev = {.type = PAXOS_EV_CAMPAIGN};
    replica_step(r, &ev);
}

void replica_persisted(replica *r, uint64_t seq, int status)
{
    if (r->inflight) r->inflight--;
    if (status == MERR_NOSPACE || (status && r->broken == REPLICA_PAUSED)) {
        fail_pending(r, status, "log store write failed: no space");
        replica_pause_for_disk(r, status);
        return;
    }
    if (!status) r->retry_backoff_ns = 0;
    if (status) {
        MLOG_E(MOD, "log store write failed: replica stops", "range=%" PRIu64 " error=%s",
               r->range_id, merr_str(status));
        r->broken = 1;
        fail_pending(r, status, "log store write failed");
        return;
    }
    paxos_event ev = {.type = PAXOS_EV_PERSISTED, .seq = seq};
    replica_step(r, &ev);
}

void replica_expire(replica *r, int64_t now_mono_ns)
{
    pending_write *last = NULL;
    for (pending_write **pp = &r->pending; *pp;) {
        pending_write *p = *pp;
        if (p->deadline_ns && now_mono_ns > p->deadline_ns) {
            *pp = p->next;
            if (r->pending_tail == p) r->pending_tail = last; /* before cb: it may write */
            p->cb(p->arg, MERR_TIMEOUT, "write timed out: it may or may not have been applied", 0);
            free(p);
        } else {
            last = p;
            pp = &p->next;
        }
    }
    r->pending_tail = last;
}

int replica_write(replica *r, const range_write *w, size_t n, int64_t deadline_ns,
                  replica_write_cb cb, void *arg, merr *e)
{
    if (r->broken)
        return merr_set(e, MERR_UNAVAILABLE, "range %" PRIu64 " is stopped", r->range_id);
    tt_interval tt;
    int rc = host_now(r->h, &tt, e);
    if (rc) return rc;
    paxos_tt now = {tt.earliest_ns, tt.latest_ns};
    if (!paxos_lease_valid(r->g, now)) {
        replica_lease_nudge(r); /* a quiet leader renews (a one-voter one at once) */
        if ((rc = host_now(r->h, &tt, e))) return rc;
        now = (paxos_tt){tt.earliest_ns, tt.latest_ns};
        if (!paxos_lease_valid(r->g, now))
            return merr_set(e, MERR_NOT_LEADER, "not the leaseholder of range %" PRIu64,
                            r->range_id);
    }
    for (size_t i = 0; i < n; i++)
        if (!replica_contains(r, w[i].key, w[i].klen))
            return merr_set(e, MERR_RANGE, "key outside range %" PRIu64, r->range_id);
    /* Empty writes (keep-alives, nudges) still go: their ACCEPTs bring a
     * lagging replica the freeze (they are refused at apply). */
    if (r->frozen && n)
        return merr_set(e, MERR_BUSY, "range %" PRIu64 " is frozen for a merge: retry",
                        r->range_id);
    replica_note_write(r, w, n);
    /* Spanner §4.1.2: s >= TT.now().latest, and above every timestamp this
     * node handed out (the HLC is strictly increasing). */
    hlc_ts ts;
    if ((rc = hlc_now(&r->h->hlc, tt.latest_ns, &ts, e))) return rc;
    range_batch b = {.ts = ts, .writes = w, .nwrites = n};
    mbuf enc = MBUF_INIT;
    if ((rc = range_batch_encode(&b, &enc))) {
        mbuf_free(&enc);
        return merr_set(e, rc, "cannot encode the write");
    }
    rc = replica_propose(r, enc.data, enc.len, ts, deadline_ns, cb, arg, e);
    mbuf_free(&enc);
    return rc;
}

int replica_write_early(replica *r, const range_write *w, size_t n, int64_t deadline_ns,
                        replica_write_cb cb, void *arg, merr *e)
{
    r->early_next = 1;
    int rc = replica_write(r, w, n, deadline_ns, cb, arg, e);
    r->early_next = 0;
    return rc;
}

static int propose(replica *r, const uint8_t *data, size_t len, uint64_t ts, int64_t deadline_ns,
                   int no_wait, replica_write_cb cb, void *arg, merr *e);

int replica_propose(replica *r, const uint8_t *data, size_t len, uint64_t ts, int64_t deadline_ns,
                    replica_write_cb cb, void *arg, merr *e)
{
    return propose(r, data, len, ts, deadline_ns, 0, cb, arg, e);
}

int replica_propose_unwaited(replica *r, const uint8_t *data, size_t len, uint64_t ts,
                             replica_write_cb cb, void *arg, merr *e)
{
    return propose(r, data, len, ts, 0, 1, cb, arg, e);
}

static int propose(replica *r, const uint8_t *data, size_t len, uint64_t ts, int64_t deadline_ns,
                   int no_wait, replica_write_cb cb, void *arg, merr *e)
{
    paxos_tt now;
    if (tt_of(r, &now)) return merr_set(e, MERR_CLOCK, "clock cannot be trusted");
    pending_write *p = calloc(1, sizeof(*p));
    if (!p) return merr_set(e, MERR_NOMEM, "out of memory");
    /* Ids are unique cluster-wide (node id in the top bits) so a proposal of
     * another leader never completes one of ours. */
    p->id = (r->h->node_id << 40) | ++r->next_prop;
    p->ts = ts;
    p->deadline_ns = deadline_ns;
    p->cb = cb;
    p->arg = arg;
    p->t_prop = stage_now();
    p->early = r->early_next;
    p->no_wait = no_wait;
    p->next = NULL;
    if (r->pending_tail)
        r->pending_tail->next = p;
    else
        r->pending = p;
    r->pending_tail = p;
    /* Held until the end of this loop round (host_flush_later), so writes
     * arriving together share one slot. */
    paxos_event ev = {
        .type = PAXOS_EV_PROPOSE, .id = p->id, .data = data, .len = (uint32_t)len, .hold = 1};
    ev.now = now;
    paxos_update u;
    paxos_update_init(&u);
    int rc = paxos_step(r->g, &ev, &u);
    if (rc) {
        replica_take_pending(r, p->id);
        free(p);
        handle_update(r, &u);
        return merr_set(e, rc, "proposal refused: %s", merr_str(rc));
    }
    handle_update(r, &u);
    if (host_flush_later(r->h, r->range_id)) replica_flush(r);
    return 0;
}

void replica_flush(replica *r)
{
    paxos_event ev = {.type = PAXOS_EV_FLUSH};
    if (r->broken || tt_of(r, &ev.now)) return; /* the next tick or ack flushes */
    paxos_update u;
    paxos_update_init(&u);
    paxos_step(r->g, &ev, &u);
    handle_update(r, &u);
}

int replica_hand_off(replica *r)
{
    if (paxos_get_role(r->g) != PAXOS_LEADER) return 0;
    paxos_members committed, latest;
    paxos_get_members(r->g, &committed, &latest);
    for (uint32_t i = 0; i < committed.nvoters; i++) {
        paxos_node_id to = committed.voters[i];
        if (to == r->h->node_id) continue;
        int rc = replica_transfer_lease(r, to);
        if (rc == MERR_CLOCK) return 0;
        if (rc == 0) return 1;
    }
    return 0;
}

int replica_transfer_lease(replica *r, uint64_t to)
{
    if (to == 0 || to > UINT32_MAX) return MERR_INVALID; /* node ids are 32-bit in Paxos */
    paxos_event ev = {.type = PAXOS_EV_TRANSFER, .node = (paxos_node_id)to};
    if (tt_of(r, &ev.now)) return MERR_CLOCK;
    paxos_update u;
    paxos_update_init(&u);
    int rc = paxos_step(r->g, &ev, &u);
    handle_update(r, &u);
    return rc;
}

int replica_draining(replica *r)
{
    if (r->pending) return 1;
    paxos_members committed, latest;
    paxos_get_members(r->g, &committed, &latest);
    /* Still leading a group that has other voters: the hand-off is not done. */
    return paxos_get_role(r->g) == PAXOS_LEADER && committed.nvoters > 1;
}

int replica_change_members(replica *r, int op, uint64_t node, merr *e)
{
    paxos_event ev = {.type = PAXOS_EV_CONFIG, .op = op, .node = (paxos_node_id)node};
    if (tt_of(r, &ev.now)) return merr_set(e, MERR_CLOCK, "clock cannot be trusted");
    paxos_update u;
    paxos_update_init(&u);
    int rc = paxos_step(r->g, &ev, &u);
    handle_update(r, &u);
    if (rc) return merr_set(e, rc, "membership change refused: %s", merr_str(rc));
    return 0;
}

/* ---- create, restore, free ---- */

void replica_range_path(host *h, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/r%" PRIu64 ".db", h->ranges_dir, id);
}

int replica_set_span(replica *r)
{
    range_meta m;
    if (range_get_meta(r->store, &m)) return MERR_IO;
    r->start = malloc(m.start_len + 1);
    r->end = malloc(m.end_len + 1);
    if (!r->start || !r->end) return MERR_NOMEM;
    if (m.start_len) memcpy(r->start, m.start, m.start_len);
    if (m.end_len) memcpy(r->end, m.end, m.end_len);
    r->start_len = m.start_len;
    r->end_len = m.end_len;
    return 0;
}

static void config_for(host *h, uint64_t range_id, paxos_config *cfg)
{
    paxos_config_default(cfg, range_id, (paxos_node_id)h->node_id);
    /* Different seeds per node and group, so elections do not tie forever. */
    cfg->seed = (h->node_id * 0x9e3779b97f4a7c15ULL) ^ (range_id * 0xbf58476d1ce4e5b9ULL) ^
                (uint64_t)mtime_mono_ns();
    cfg->max_batch = REPLICA_MAX_PER_SLOT;
    /* A short window makes proposals that arrive while it is full share the
     * next slot (one ACCEPT, one log record, one apply commit for many); a
     * long one gives every proposal its own slot under load. */
    cfg->window = REPLICA_WINDOW;
}

int replica_create(host *h, const range_desc *d, const paxos_members *genesis, replica **out,
                   merr *e)
{
    replica *r = calloc(1, sizeof(*r));
    if (!r) return merr_set(e, MERR_NOMEM, "out of memory");
    r->h = h;
    r->range_id = d->range_id;
    r->genesis = *genesis;
    r->span_ns = mtime_mono_ns();
    char path[4200];
    replica_range_path(h, d->range_id, path, sizeof(path));
    int rc = range_create(path, d, NULL, &r->store, e);
    if (rc) goto err;
    if ((rc = replica_set_span(r))) goto err;
    /* The genesis membership is durable before the group says anything. */
    mbuf hs = MBUF_INIT;
    paxos_ballot zero = {0, 0};
    rc = replica_encode_hardstate(&zero, genesis, 0, NULL, &hs);
    logstore_batch *b = logstore_batch_new(host_batch_id(h));
    if (!rc) rc = b ? logstore_batch_hardstate(b, d->range_id, hs.data, hs.len) : MERR_NOMEM;
    mbuf_free(&hs);
    if (!rc)
        rc = logstore_write(h->ls, b, e);
    else if (b)
        logstore_batch_free(b);
    if (rc) goto err;
    paxos_config cfg;
    config_for(h, d->range_id, &cfg);
    if ((rc = paxos_group_new(&cfg, genesis, NULL, &r->g))) {
        merr_set(e, rc, "paxos group: %s", merr_str(rc));
        goto err;
    }
    *out = r;
    return 0;
err:
    replica_free(r);
    return rc;
}

typedef struct restore_ctx {
    paxos_entry *ents;
    size_t n, cap;
} restore_ctx;

static int collect_entry(void *arg, uint64_t slot, uint64_t ballot, const uint8_t *val, size_t n)
{
    restore_ctx *c = arg;
    if (n < 5) return MERR_CORRUPT;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        paxos_entry *ne = realloc(c->ents, cap * sizeof(*ne));
        if (!ne) return MERR_NOMEM;
        c->ents = ne;
        c->cap = cap;
    }
    paxos_entry *en = &c->ents[c->n];
    en->slot = slot;
    en->ballot.round = ballot;
    en->type = val[0];
    en->ballot.node = mbe32_get(val + 1);
    en->len = (uint32_t)(n - 5);
    en->data = malloc(en->len ? en->len : 1);
    if (!en->data) return MERR_NOMEM;
    if (en->len) memcpy(en->data, val + 5, en->len);
    c->n++;
    return 0;
}

int replica_restore(host *h, uint64_t range_id, replica **out, merr *e)
{
    replica *r = calloc(1, sizeof(*r));
    if (!r) return merr_set(e, MERR_NOMEM, "out of memory");
    r->h = h;
    r->range_id = range_id;
    r->span_ns = mtime_mono_ns();
    restore_ctx c = {0};
    mbuf hs = MBUF_INIT, snap = MBUF_INIT;
    char path[4200];
    replica_range_path(h, range_id, path, sizeof(path));
    range_opts o = {.no_create = 1};
    int rc = range_open(path, &o, &r->store, e);
    if (rc) goto err;
    if ((rc = replica_set_span(r))) goto err;
    paxos_restore rs;
    memset(&rs, 0, sizeof(rs));
    if ((rc = logstore_hardstate(h->ls, range_id, &hs)) ||
        (rc = replica_decode_hardstate(hs.data, hs.len, &rs.promised, &r->genesis, &rs.snap_slot,
                                       &rs.snap_members))) {
        merr_set(e, rc, "range %" PRIu64 ": hard state unreadable", range_id);
        goto err;
    }
    if ((rc = logstore_scan(h->ls, range_id, 0, UINT64_MAX, collect_entry, &c, e))) goto err;
    range_meta m;
    range_get_meta(r->store, &m);
    if ((rc = range_frozen_at(r->store, &r->frozen))) {
        merr_set(e, rc, "range %" PRIu64 ": %s", range_id, range_err(r->store)->msg);
        goto err;
    }
    if (rs.promised.round == 0 && c.n == 0 && rs.snap_slot == 0 && m.applied) {
        /* A group that never promised, accepted or installed anything has
         * applied nothing: a store with an applied counter is the right side
         * of a split (replica_split.c), still carrying its parent's slot. */
        if ((rc = range_reset_applied(r->store))) {
            merr_set(e, rc, "range %" PRIu64 ": %s", range_id, range_err(r->store)->msg);
            goto err;
        }
        range_get_meta(r->store, &m);
    }
    /* The store counts proposals (slot << 8 | index); hand the last slot it
     * touched back to the core so any proposal of it not yet applied is
     * applied now (range_apply skips the ones that were). */
    uint64_t slot = m.applied >> 8;
    rs.applied = slot ? slot - 1 : 0;
    if (rs.snap_slot) {
        /* The core's snapshot bytes live only in memory: rebuild them from
         * the store. The store holds at least the snapshot slot (it was made
         * durable before the log was truncated) and may be ahead of it; a
         * replica installing these bytes then skips the slots it already has
         * (the store's applied counter makes every apply idempotent). */
        uint64_t last = c.n ? c.ents[c.n - 1].slot : 0;
        if (rs.applied > last) rs.applied = last; /* a store installed past the log */
        if ((rc = replica_snap_blob(r->store, &snap, e))) goto err;
        if (snap.len > UINT32_MAX) {
            rc = merr_set(e, MERR_TOOBIG, "range %" PRIu64 ": snapshot over 4 GiB", range_id);
            goto err;
        }
        rs.snap_data = snap.data;
        rs.snap_len = (uint32_t)snap.len;
        r->snap_len = snap.len;
    }
    rs.entries = c.ents;
    rs.nentries = c.n;
    paxos_config cfg;
    config_for(h, range_id, &cfg);
    if ((rc = paxos_group_new(&cfg, &r->genesis, &rs, &r->g))) {
        merr_set(e, rc, "range %" PRIu64 ": cannot restart its group: %s", range_id, merr_str(rc));
        goto err;
    }
    MLOG_I(MOD, "replica restored",
           "range=%" PRIu64 " entries=%zu applied_slot=%" PRIu64 " snapshot_slot=%" PRIu64,
           range_id, c.n, slot, rs.snap_slot);
    *out = r;
    rc = 0;
    goto out;
err:
    replica_free(r);
out:
    for (size_t i = 0; i < c.n; i++) free(c.ents[i].data);
    free(c.ents);
    mbuf_free(&hs);
    mbuf_free(&snap);
    return rc;
}

void replica_free(replica *r)
{
    if (!r) return;
    fail_pending(r, MERR_CLOSED, "node stopping");
    replica_lease_fail_all(r, MERR_CLOSED);
    host_sleep(r->h, r);
    replica_snap_detach(r);
    replica_stall_free(r);
    if (r->g) paxos_group_free(r->g);
    if (r->store) range_close(r->store);
    txn_safe_free(&r->safe);
    free(r->lk);
    free(r->start);
    free(r->end);
    free(r);
}

uint64_t replica_newest_pending(replica *r)
{
    return r->pending_tail ? r->pending_tail->id : 0;
}

uint64_t replica_oldest_pending(replica *r)
{
    return r->pending ? r->pending->id : 0;
}
