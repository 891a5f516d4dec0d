/* Merging a range replica into its left neighbour through both Paxos logs
 * (design: docs/ranges.md; model: CockroachDB's Subsume).
 *
 *   1. FREEZE in the RIGHT range's log (proposed by its leaseholder): every
 *      replica marks its store frozen at that slot (storage/range_freeze.c)
 *      and from then on refuses every write, in log order, so all replicas
 *      of the right range hold the same data forever after. Refused while
 *      2PC intents are prepared (their participant state would be lost) or
 *      if the generation moved. Applying it again answers the first slot.
 *   2. MERGE {right id, generations, freeze slot} in the LEFT range's log.
 *      Each replica of the left applies it once its local replica of the
 *      right has applied the freeze: until then the left's later entries
 *      stall (kept in memory, retried on ticks; not snapshotted away). Then
 *      range_merge absorbs the right store (crash-atomic), the left's span
 *      and generation grow, and the right replica and its log group go.
 *      Deterministic refusals (the generations, the freeze slot, adjacency)
 *      turn the entry into a no-op everywhere.
 * Crash safety: before range_merge commits, a restart replays MERGE from the
 * left's log; after it, range_open of the left deletes a leftover right
 * store, and replica_merge_cleanup drops a right replica already restored.
 * A right range that froze but whose merge never applied stays frozen (no
 * writes lost) until a merge of it is retried (server/node_merge.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "server/range_cmd.h"
#include "server/replica.h"
#include "server/replica_int.h"

#define MOD "replica"

/* Tests: MERIDIAN_TESTING_MERGE_CRASH=before|after kills the process just
 * before range_merge (right frozen, nothing absorbed) or just after it
 * (absorbed, the right replica and its log group not yet dropped). */
static void crash_point(const char *where)
{
    const char *v = getenv("MERIDIAN_TESTING_MERGE_CRASH");
    if (v && strcmp(v, where) == 0) {
        MLOG_W(MOD, "testing: crashing in the middle of a merge", "at=%s", where);
        abort();
    }
}

uint64_t replica_absorbed(replica *r)
{
    return r->absorbed;
}

uint64_t replica_frozen(replica *r)
{
    return r->frozen;
}

static int count_intent(void *arg, const range_intent *it)
{
    (void)it;
    ++*(size_t *)arg;
    return 0;
}

int replica_apply_freeze(replica *r, const range_cmd *c, uint64_t slot, uint64_t id)
{
    range_meta m;
    if (range_get_meta(r->store, &m)) return MERR_IO;
    if (r->frozen) {
        /* A retried freeze: the first one stands. */
        int rc = slot > m.applied ? replica_apply_noop(r, slot) : 0;
        replica_finish_cmd(r, id, 0, NULL, r->frozen);
        return rc;
    }
    if (slot <= m.applied) return 0; /* replayed: the store says it never froze */
    size_t nint = 0;
    range_list_intents(r->store, count_intent, &nint, NULL);
    if (m.generation != c->expected_gen || nint) {
        int rc = replica_apply_noop(r, slot);
        replica_finish_cmd(r, id, MERR_BUSY,
                           nint ? "freeze refused: prepared transactions are pending"
                                : "freeze refused: the range changed since it was proposed",
                           0);
        return rc;
    }
    int rc = range_freeze(r->store, slot);
    if (rc) return rc;
    r->frozen = slot;
    MLOG_I(MOD, "range frozen for a merge", "range=%" PRIu64 " slot=%" PRIu64, r->range_id, slot);
    replica_finish_cmd(r, id, 0, NULL, slot);
    return 0;
}

/* The right replica merged away: out of the host, its log group dropped. */
static void retire(replica *rr)
{
    host *h = rr->h;
    uint64_t id = rr->range_id;
    char path[4200];
    replica_range_path(h, id, path, sizeof(path));
    host_remove(h, rr);
    replica_free(rr);
    range_destroy(path, NULL); /* gone already unless a crash left it */
    merr e = {0};
    logstore_batch *b = logstore_batch_new(host_batch_id(h));
    if (b && logstore_batch_drop(b, id) == 0) {
        if (logstore_write(h->ls, b, &e))
            MLOG_W(MOD, "merge: cannot drop the right group's log",
                   "range=%" PRIu64 " error=\"%s\"", id, e.msg);
    } else if (b) {
        logstore_batch_free(b);
    }
    MLOG_I(MOD, "merged range retired", "range=%" PRIu64, id);
}

static int starts_at_end(replica *l, replica *rr)
{
    return l->end_len && l->end_len == rr->start_len && !memcmp(l->end, rr->start, l->end_len);
}

int replica_apply_merge(replica *l, const range_cmd *c, uint64_t slot, uint64_t id)
{
    host *h = l->h;
    range_meta m;
    if (range_get_meta(l->store, &m)) return MERR_IO;
    replica *rr = host_find(h, c->right_id);
    if (slot <= m.applied) {
        /* Replayed after the store absorbed the right: finish its cleanup. */
        if (rr && rr->frozen && replica_contains(l, rr->start, rr->start_len)) retire(rr);
        replica_finish_cmd(l, id, 0, NULL, 0);
        return 0;
    }
    if (m.generation != c->left_gen || l->frozen) {
        int rc = replica_apply_noop(l, slot);
        replica_finish_cmd(l, id, MERR_RANGE, "merge refused: the left range changed", 0);
        return rc;
    }
    /* The same replica sets are required, so the right replica is here;
     * wait until it applied the freeze (and is not mid-snapshot). */
    if (!rr || !rr->frozen || rr->job || rr->broken) return REPLICA_STALLED;
    range *rs = replica_store(rr);
    range_meta rm;
    if (!rs || range_get_meta(rs, &rm)) return REPLICA_STALLED;
    if (rr->frozen != c->right_applied || rm.generation != c->right_gen || !starts_at_end(l, rr)) {
        int rc = replica_apply_noop(l, slot);
        replica_finish_cmd(l, id, MERR_RANGE, "merge refused: the right range changed", 0);
        return rc;
    }
    crash_point("before");
    rr->store = NULL; /* range_merge consumes the handle, also on failure */
    int rc = range_merge(l->store, rs, slot);
    if (rc) {
        rr->broken = 1; /* its store is intact on disk; a restart reopens it */
        return rc;
    }
    crash_point("after");
    free(l->start);
    free(l->end);
    l->start = l->end = NULL;
    if ((rc = replica_set_span(l))) return rc;
    l->span_ns = mtime_mono_ns();
    MLOG_I(MOD, "range merged", "range=%" PRIu64 " absorbed=%" PRIu64, l->range_id, c->right_id);
    l->absorbed = c->right_id;
    retire(rr);
    replica_finish_cmd(l, id, 0, NULL, 0);
    return 0;
}

/* ---- entries stalled behind a MERGE ---- */

static int stall_keep(replica *r, const paxos_entry *en, size_t n)
{
    size_t add = 0;
    for (size_t i = 0; i < n; i++) add += en[i].type == PAXOS_ENTRY_DATA;
    if (!add) return 0;
    paxos_entry *v = realloc(r->stall, (r->nstall + add) * sizeof(*v));
    if (!v) return MERR_NOMEM;
    r->stall = v;
    for (size_t i = 0; i < n; i++) {
        if (en[i].type != PAXOS_ENTRY_DATA) continue;
        paxos_entry *d = &r->stall[r->nstall];
        *d = en[i];
        d->data = malloc(en[i].len ? en[i].len : 1);
        if (!d->data) return MERR_NOMEM;
        if (en[i].len) memcpy(d->data, en[i].data, en[i].len);
        r->nstall++;
    }
    return 0;
}

void replica_stall_free(replica *r)
{
    for (size_t i = 0; i < r->nstall; i++) free(r->stall[i].data);
    free(r->stall);
    r->stall = NULL;
    r->nstall = 0;
}

/* Applies the stalled entries that can go now; 0, or an apply error. */
static int stall_drain(replica *r, uint64_t *bad_slot)
{
    size_t done = 0;
    int rc = replica_apply_entries(r, r->stall, r->nstall, &done, bad_slot);
    if (rc != REPLICA_STALLED) {
        replica_stall_free(r);
        return rc;
    }
    for (size_t i = 0; i < done; i++) free(r->stall[i].data);
    memmove(r->stall, r->stall + done, (r->nstall - done) * sizeof(*r->stall));
    r->nstall -= done;
    return 0;
}

int replica_apply_or_stall(replica *r, const paxos_entry *en, size_t n, uint64_t *bad_slot)
{
    if (r->nstall) {
        if (stall_keep(r, en, n)) return MERR_NOMEM;
        return stall_drain(r, bad_slot);
    }
    size_t done = 0;
    int rc = replica_apply_entries(r, en, n, &done, bad_slot);
    if (rc != REPLICA_STALLED) return rc;
    MLOG_I(MOD, "merge waits for the right replica to freeze", "range=%" PRIu64, r->range_id);
    return stall_keep(r, en + done, n - done);
}

void replica_stall_retry(replica *r)
{
    if (r->broken) return;
    replica_store_ensure(r);
    uint64_t bad = 0;
    if (r->broken || !stall_drain(r, &bad)) return;
    MLOG_E(MOD, "apply failed: replica stops", "range=%" PRIu64 " slot<=%" PRIu64 " error=\"%s\"",
           r->range_id, bad, range_err(r->store)->msg);
    r->broken = 1;
}

/* ---- proposing ---- */

static int same_voters(replica *a, replica *b)
{
    paxos_members ca, la, cb, lb;
    paxos_get_members(a->g, &ca, &la);
    paxos_get_members(b->g, &cb, &lb);
    if (memcmp(&ca, &la, sizeof(ca)) || memcmp(&cb, &lb, sizeof(cb))) return 0; /* in flight */
    if (ca.nvoters != cb.nvoters || ca.nlearners || cb.nlearners) return 0;
    for (uint32_t i = 0; i < ca.nvoters; i++) {
        int found = 0;
        for (uint32_t j = 0; j < cb.nvoters; j++) found |= ca.voters[i] == cb.voters[j];
        if (!found) return 0;
    }
    return 1;
}

replica *replica_right_neighbour(replica *l)
{
    host *h = l->h;
    for (size_t i = 0; i < h->nreps; i++)
        if (h->reps[i] != l && starts_at_end(l, h->reps[i])) return h->reps[i];
    return NULL;
}

int replica_freeze(replica *r, int64_t deadline_ns, replica_write_cb cb, void *arg, merr *e)
{
    if (r->broken)
        return merr_set(e, MERR_UNAVAILABLE, "range %" PRIu64 " is stopped", r->range_id);
    if (!replica_is_leaseholder(r))
        return merr_set(e, MERR_NOT_LEADER, "not the leaseholder of range %" PRIu64, r->range_id);
    if (!r->frozen) {
        size_t nint = 0;
        range *st = replica_store(r); /* an idle replica's store may be closed */
        if (!st) return merr_set(e, MERR_UNAVAILABLE, "range %" PRIu64 " is stopped", r->range_id);
        range_list_intents(st, count_intent, &nint, NULL);
        if (nint)
            return merr_set(e, MERR_BUSY, "range %" PRIu64 " has %zu prepared transactions",
                            r->range_id, nint);
    }
    mbuf enc = MBUF_INIT;
    int rc = range_cmd_encode_freeze(replica_generation(r), &enc);
    if (!rc)
        rc = replica_propose(r, enc.data, enc.len, 0, deadline_ns, cb, arg, e);
    else
        merr_set(e, rc, "cannot encode the freeze");
    mbuf_free(&enc);
    return rc;
}

int replica_merge(replica *l, uint64_t right_id, uint64_t right_gen, uint64_t freeze_slot,
                  int64_t deadline_ns, replica_write_cb cb, void *arg, merr *e)
{
    if (l->broken)
        return merr_set(e, MERR_UNAVAILABLE, "range %" PRIu64 " is stopped", l->range_id);
    if (!replica_is_leaseholder(l))
        return merr_set(e, MERR_NOT_LEADER, "not the leaseholder of range %" PRIu64, l->range_id);
    if (l->frozen) return merr_set(e, MERR_BUSY, "range %" PRIu64 " is frozen itself", l->range_id);
    replica *rr = host_find(l->h, right_id);
    if (!rr || !starts_at_end(l, rr))
        return merr_set(e, MERR_RANGE, "range %" PRIu64 " is not the right neighbour here",
                        right_id);
    if (!same_voters(l, rr))
        return merr_set(e, MERR_BUSY,
                        "ranges %" PRIu64 " and %" PRIu64 " have different replica sets "
                        "(or a membership change in flight)",
                        l->range_id, right_id);
    mbuf enc = MBUF_INIT;
    int rc = range_cmd_encode_merge(right_id, replica_generation(l), right_gen, freeze_slot, &enc);
    if (!rc)
        rc = replica_propose(l, enc.data, enc.len, 0, deadline_ns, cb, arg, e);
    else
        merr_set(e, rc, "cannot encode the merge");
    mbuf_free(&enc);
    return rc;
}

int replica_merge_ready(replica *l, replica *rr, merr *e)
{
    if (!same_voters(l, rr))
        return merr_set(e, MERR_BUSY,
                        "ranges %" PRIu64 " and %" PRIu64 " have different replica sets "
                        "(or a membership change in flight): make them equal first",
                        l->range_id, rr->range_id);
    /* A frozen range serves nothing until every replica froze and the merge
     * applied: do not start while a replica's node is known to be down. */
    paxos_members c, x;
    paxos_get_members(rr->g, &c, &x);
    for (uint32_t i = 0; i < c.nvoters; i++)
        if (!host_node_live(l->h, c.voters[i]))
            return merr_set(e, MERR_BUSY, "node %" PRIu64 " (a replica) is down: merge later",
                            (uint64_t)c.voters[i]);
    return 0;
}

/* 1 if rr is the right side of a merge l applied: frozen, inside l's span,
 * and l's generation moved past it. */
static int merged_into(replica *l, replica *rr)
{
    return l != rr && rr->frozen && replica_contains(l, rr->start, rr->start_len) &&
           replica_generation(l) > replica_generation(rr);
}

void replica_merge_cleanup_into(replica *l)
{
    host *h = l->h;
    for (size_t i = 0; i < h->nreps; i++) {
        replica *rr = h->reps[i];
        if (!merged_into(l, rr)) continue;
        MLOG_W(MOD, "dropping the right side of a merge a snapshot brought",
               "range=%" PRIu64 " merged_into=%" PRIu64, rr->range_id, l->range_id);
        retire(rr);
        i = (size_t)-1; /* the array changed: look again from the start */
    }
}

void replica_merge_cleanup(host *h)
{
    for (size_t i = 0; i < h->nreps; i++) {
        replica *rr = h->reps[i];
        if (!rr->frozen) continue;
        for (size_t j = 0; j < h->nreps; j++) {
            replica *l = h->reps[j];
            if (!merged_into(l, rr)) continue;
            MLOG_W(MOD, "dropping the right side of a finished merge",
                   "range=%" PRIu64 " merged_into=%" PRIu64, rr->range_id, l->range_id);
            retire(rr);
            i--;
            break;
        }
    }
}
