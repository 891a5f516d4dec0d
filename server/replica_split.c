/* Splitting a range replica through its Paxos log (design: docs/ranges.md).
 *
 * The leaseholder proposes SPLIT {key, new range id, expected generation,
 * the parent's voters} (server/range_cmd.h). Every replica applies it at the
 * same log position, deterministically:
 *   1. the entry is a no-op if the range's generation moved on or the key is
 *      no longer strictly inside the span (the proposer hears MERR_RANGE);
 *   2. a voter of the new group records the group's hard state (genesis =
 *      the voters in the command) in the log store, if not there yet;
 *   3. range_split at the entry's slot (crash-atomic in storage/);
 *   4. the new group starts from that hard state and the split-off store
 *      (replica_restore resets the store's inherited applied counter, since
 *      the new group's log starts over at slot 1).
 * A crash anywhere leaves either no right store (the split is re-applied
 * from the parent's log, whose replay re-delivers it: the parent's applied
 * counter does not cover it yet) or a right store plus hard state (restored
 * at the next start like any group). A node that is not a voter of the
 * parent (a learner) drops the right store: placement adds it later.
 * The parent's leaseholder campaigns for the new group at once, so the new
 * range's lease starts on the same node; the others wait for it. */
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

void replica_finish_cmd(replica *r, uint64_t id, int code, const char *msg, uint64_t val)
{
    pending_write *p = replica_take_pending(r, id);
    if (!p) return;
    p->cb(p->arg, code, msg, val);
    free(p);
}

static void finish(replica *r, uint64_t id, int code, const char *msg)
{
    replica_finish_cmd(r, id, code, msg, 0);
}

int replica_apply_noop(replica *r, uint64_t slot)
{
    range_batch empty = {0};
    return range_apply(r->store, &empty, slot, NULL);
}

static int voter_in(const range_cmd *c, uint64_t node)
{
    for (size_t i = 0; i < c->nvoters; i++)
        if (c->voters[i] == node) return 1;
    return 0;
}

/* Records the new group's genesis durably, unless it is there already. */
static int record_genesis(host *h, const range_cmd *c, merr *e)
{
    mbuf hs = MBUF_INIT;
    int rc = logstore_hardstate(h->ls, c->new_range_id, &hs);
    mbuf_free(&hs);
    if (rc != MERR_NOTFOUND) return rc;
    paxos_members g;
    memset(&g, 0, sizeof(g));
    for (size_t i = 0; i < c->nvoters; i++) g.voters[g.nvoters++] = c->voters[i];
    paxos_ballot zero = {0, 0};
    rc = replica_encode_hardstate(&zero, &g, 0, NULL, &hs);
    logstore_batch *b = logstore_batch_new(host_batch_id(h));
    if (!rc) rc = b ? logstore_batch_hardstate(b, c->new_range_id, hs.data, hs.len) : MERR_NOMEM;
    mbuf_free(&hs);
    if (!rc) return logstore_write(h->ls, b, e);
    if (b) logstore_batch_free(b);
    return merr_set(e, rc, "cannot record the new group");
}

/* Tests: MERIDIAN_TESTING_SPLIT_CRASH=before|after kills the process just
 * before range_split (the new group's hard state recorded, no store yet) or
 * just after it (a store still carrying the parent's applied counter, no
 * group started), to prove recovery from both windows. */
static void crash_point(const char *where)
{
    const char *v = getenv("MERIDIAN_TESTING_SPLIT_CRASH");
    if (v && strcmp(v, where) == 0) {
        MLOG_W(MOD, "testing: crashing in the middle of a split", "at=%s", where);
        abort();
    }
}

static int apply_split(replica *r, const range_cmd *c, uint64_t slot, uint64_t id)
{
    host *h = r->h;
    range_meta m;
    if (range_get_meta(r->store, &m)) return MERR_IO;
    int fresh = slot > m.applied;
    int voter = voter_in(c, h->node_id);
    merr e = {0};
    char path[4200];
    replica_range_path(h, c->new_range_id, path, sizeof(path));
    if (fresh) {
        int inside = c->key[0] != 0x00 && replica_contains(r, c->key, c->klen) &&
                     !(c->klen == r->start_len && memcmp(c->key, r->start, c->klen) == 0);
        if (m.generation != c->expected_gen || !inside || host_find(h, c->new_range_id) ||
            r->frozen) {
            int rc = replica_apply_noop(r, slot);
            finish(r, id, MERR_RANGE, "split refused: the range changed since it was proposed");
            return rc;
        }
        if (voter && record_genesis(h, c, &e)) {
            MLOG_E(MOD, "split: cannot record the new group", "range=%" PRIu64 " error=\"%s\"",
                   c->new_range_id, e.msg);
            return e.code ? e.code : MERR_IO;
        }
        crash_point("before");
        int rc = range_split(r->store, c->key, c->klen, c->new_range_id, path, slot);
        if (rc) return rc;
        crash_point("after");
        free(r->start);
        free(r->end);
        r->start = r->end = NULL;
        if ((rc = replica_set_span(r))) return rc;
        r->span_ns = mtime_mono_ns();
        if (!voter) range_destroy(path, NULL);
        MLOG_I(MOD, "range split", "range=%" PRIu64 " new_range=%" PRIu64 " key_len=%zu",
               r->range_id, c->new_range_id, c->klen);
    }
    if (voter && !host_find(h, c->new_range_id)) {
        replica *child = NULL;
        int rc = replica_restore(h, c->new_range_id, &child, &e);
        if (rc == MERR_NOTFOUND) {
            /* Replay of a split whose right side merged away since. */
        } else if (rc) {
            MLOG_E(MOD, "split: cannot start the new group", "range=%" PRIu64 " error=\"%s\"",
                   c->new_range_id, e.msg);
        } else if (host_add(h, child)) {
            replica_free(child);
        } else if (fresh && replica_is_leaseholder(r)) {
            replica_campaign(child);
        }
    }
    finish(r, id, 0, NULL);
    return 0;
}

int replica_apply_cmd(replica *r, const range_cmd *c, uint64_t slot, uint64_t id)
{
    if (c->kind == RANGE_CMD_SPLIT) return apply_split(r, c, slot, id);
    if (c->kind == RANGE_CMD_FREEZE) return replica_apply_freeze(r, c, slot, id);
    return replica_apply_merge(r, c, slot, id);
}

static int count_intent(void *arg, const range_intent *it)
{
    (void)it;
    ++*(size_t *)arg;
    return 0;
}

int replica_split(replica *r, const uint8_t *key, size_t klen, uint64_t new_id, int64_t deadline_ns,
                  replica_write_cb cb, void *arg, merr *e)
{
    if (r->broken)
        return merr_set(e, MERR_UNAVAILABLE, "range %" PRIu64 " is stopped", r->range_id);
    if (!replica_is_leaseholder(r))
        return merr_set(e, MERR_NOT_LEADER, "not the leaseholder of range %" PRIu64, r->range_id);
    if (r->frozen)
        return merr_set(e, MERR_BUSY, "range %" PRIu64 " is frozen for a merge", r->range_id);
    if (!klen || key[0] == 0x00)
        return merr_set(e, MERR_INVALID, "system keys (0x00...) always stay in range 1");
    if (!replica_contains(r, key, klen) ||
        (klen == r->start_len && memcmp(key, r->start, klen) == 0))
        return merr_set(e, MERR_RANGE, "split key not strictly inside range %" PRIu64, r->range_id);
    paxos_members committed, latest;
    paxos_get_members(r->g, &committed, &latest);
    if (committed.nvoters != latest.nvoters || committed.nlearners != latest.nlearners ||
        memcmp(committed.voters, latest.voters, sizeof(latest.voters)))
        return merr_set(e, MERR_BUSY, "a membership change of range %" PRIu64 " is in flight",
                        r->range_id);
    /* Prepared 2PC intents pin the range: their participant state would be
     * cut in two. Refuse; the caller retries once they resolved. */
    size_t nint = 0;
    /* replica_store(): an idle range's store may be closed (host.c). */
    range *st = replica_store(r);
    if (!st) return merr_set(e, MERR_UNAVAILABLE, "range %" PRIu64 " is stopped", r->range_id);
    range_list_intents(st, count_intent, &nint, NULL);
    if (nint)
        return merr_set(e, MERR_BUSY, "range %" PRIu64 " has %zu prepared transactions",
                        r->range_id, nint);
    range_meta m;
    if (range_get_meta(st, &m)) return merr_set(e, MERR_IO, "cannot read the range's meta");
    mbuf enc = MBUF_INIT;
    int rc = range_cmd_encode_split(key, klen, new_id, m.generation, committed.voters,
                                    committed.nvoters, &enc);
    if (!rc)
        rc = replica_propose(r, enc.data, enc.len, 0, deadline_ns, cb, arg, e);
    else
        merr_set(e, rc, "cannot encode the split");
    mbuf_free(&enc);
    return rc;
}

uint64_t replica_generation(replica *r)
{
    range_meta m;
    /* Asked by requests for any range, idle ones too: their store may be
     * closed (host.c puts idle stores to sleep past 64 ranges). */
    range *st = replica_store(r);
    return !st || range_get_meta(st, &m) ? 0 : m.generation;
}

void replica_span(replica *r, const uint8_t **start, size_t *slen, const uint8_t **end,
                  size_t *elen)
{
    *start = r->start;
    *slen = r->start_len;
    *end = r->end;
    *elen = r->end_len;
}
