/* The apply path of a range replica (replica.h): the chosen DATA entries of
 * an update, decoded and applied to the range store in one storage
 * transaction per run of batches, range commands (split, merge, freeze)
 * applied alone in log order, and each proposal this replica made completed:
 * answered early (replica_write_early), refused (the span moved, the range
 * froze) or handed to commit-wait. */
#include "server/replica.h"
#include "server/replica_int.h"

#include <inttypes.h>
#include <stdlib.h>

#include "common/log.h"
#include "server/host.h"
#include "server/put_stages.h"
#include "server/range_cmd.h"
#include "timesvc/hlc.h"

#define MOD "replica"

struct replica_wait {
    pending_write *p;
};

void replica_commit_waited(replica_wait *w, int status)
{
    pending_write *p = w->p;
    stage_record(STAGE_CWAIT, p->t_applied);
    stage_record(STAGE_TOTAL, p->t_prop);
    if (status)
        p->cb(p->arg, status, "commit-wait failed: clock cannot be trusted", 0);
    else
        p->cb(p->arg, 0, NULL, p->ts);
    free(p);
    free(w);
}

/* The storage batches of one update's chosen DATA slots, decoded, up to the
 * next split/merge command (which is applied on its own, in log order). */
typedef struct apply_set {
    range_batch *b;
    uint64_t *slots, *ids;
    uint8_t
        *refused; /* 1: a key outside the span (the range split under it); 2: frozen; 3: a CLOSE */
    range_batch_decoded *dec;
    size_t n, cap;
} apply_set;

static void apply_set_free(apply_set *as)
{
    for (size_t i = 0; i < as->n; i++) range_batch_decoded_free(&as->dec[i]);
    free(as->b);
    free(as->slots);
    free(as->ids);
    free(as->refused);
    free(as->dec);
}

static int apply_set_grow(apply_set *as)
{
    if (as->n < as->cap) return 0;
    size_t cap = as->cap ? as->cap * 2 : 32;
    range_batch *nb = realloc(as->b, cap * sizeof(*nb));
    if (nb) as->b = nb;
    uint64_t *ns = realloc(as->slots, cap * sizeof(*ns));
    if (ns) as->slots = ns;
    uint64_t *ni = realloc(as->ids, cap * sizeof(*ni));
    if (ni) as->ids = ni;
    uint8_t *nr = realloc(as->refused, cap);
    if (nr) as->refused = nr;
    range_batch_decoded *nd = realloc(as->dec, cap * sizeof(*nd));
    if (nd) as->dec = nd;
    if (!nb || !ns || !ni || !nr || !nd) return MERR_NOMEM;
    as->cap = cap;
    return 0;
}

/* 1 if every key the batch writes lies in r's span. A write proposed before
 * a split and chosen after it may not: every replica then applies it as a
 * no-op (the same decision everywhere, since all share the span). */
static int batch_fits(replica *r, const range_batch *b)
{
    for (size_t i = 0; i < b->nwrites; i++)
        if (!replica_contains(r, b->writes[i].key, b->writes[i].klen)) return 0;
    for (size_t i = 0; i < b->nprepares; i++)
        for (size_t j = 0; j < b->prepares[i].nwrites; j++)
            if (!replica_contains(r, b->prepares[i].writes[j].key, b->prepares[i].writes[j].klen))
                return 0;
    return 1;
}

/* Feeds the applied timestamps into the node's HLC. A leaseholder's ts can
 * be ahead of true time by its clock error (up to 2ε before commit-wait ends);
 * a lease handed off early (transfer) lets the next leaseholder stamp writes
 * while those are still ahead of its own clock. Without this, its later
 * writes got lower timestamps and strong reads kept returning the older
 * value (docs/jepsen.md finding 2). */
static void replica_observe_applied(replica *r, const range_batch *b, size_t n)
{
    hlc_ts top = 0;
    for (size_t i = 0; i < n; i++)
        if (b[i].ts > top) top = b[i].ts;
    merr e = {0};
    if (hlc_observe(&r->h->hlc, top, &e))
        MLOG_W(MOD, "cannot store the clock mark past an applied timestamp",
               "range=%" PRIu64 " error=\"%s\"", r->range_id, e.msg);
}

/* Completes proposal p (taken off the pending list): a refusal, or the
 * commit-wait that then answers the caller. */
static void complete_applied(replica *r, pending_write *p, const range_batch *b, int refused)
{
    if (refused == 2) {
        p->cb(p->arg, MERR_RETRY, "the range froze for a merge before the write applied", 0);
        free(p);
        return;
    }
    if (refused == 1) {
        p->cb(p->arg, MERR_RANGE, "the range split before the write applied: retry", 0);
        free(p);
        return;
    }
    p->ts = b->ts;
    if (p->no_wait) { /* a 2PC prepare or abort reveals no commit: no commit-wait */
        p->cb(p->arg, 0, NULL, p->ts);
        free(p);
        return;
    }
    stage_record(STAGE_CHOSEN, p->t_prop);
    p->t_applied = stage_now();
    replica_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        p->cb(p->arg, MERR_NOMEM, "out of memory", 0);
        free(p);
        return;
    }
    w->p = p;
    /* Spanner's commit-wait: nobody hears of the commit before ts has
     * certainly passed everywhere. */
    if (host_commit_wait(r->h, hlc_physical_ns(b->ts), w)) replica_commit_waited(w, MERR_CLOCK);
}

int replica_wait_past(replica *r, uint64_t ts, replica_write_cb cb, void *arg)
{
    /* A pending_write of its own, on no list: replica_commit_waited answers
     * it as it answers an applied write (no put stages: t_prop is 0). */
    pending_write *p = calloc(1, sizeof(*p));
    replica_wait *w = p ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        free(p);
        return MERR_NOMEM;
    }
    p->ts = ts;
    p->cb = cb;
    p->arg = arg;
    w->p = p;
    if (host_commit_wait(r->h, hlc_physical_ns(ts), w)) replica_commit_waited(w, MERR_CLOCK);
    return 0;
}

static pending_write *find_pending(replica *r, uint64_t id)
{
    for (pending_write *p = r->pending; p; p = p->next)
        if (p->id == id) return p;
    return NULL;
}

/* Applies the set in one storage transaction (one commit instead of one per
 * proposal), starts the commit-wait of the writes this replica proposed,
 * and empties the set. Early writes (replica_write_early) are completed and
 * their answers flushed to the sockets first: every entry of the set is
 * chosen, so it is committed whatever this replica's apply does (a failed
 * apply stops the replica, and a restart replays the log from its store). */
static int apply_flush(replica *r, apply_set *as)
{
    int early = 0;
    for (size_t i = 0; i < as->n; i++) {
        pending_write *p = find_pending(r, as->ids[i]);
        if (!p || !p->early) continue;
        if (!early) replica_observe_applied(r, as->b, as->n); /* before any answer */
        early = 1;
        complete_applied(r, replica_take_pending(r, p->id), &as->b[i], as->refused[i]);
    }
    if (early) host_flush_replies(r->h);
    int64_t t0 = stage_now();
    int rc = as->n ? range_apply_many(r->store, as->b, as->slots, as->n, NULL) : 0;
    if (as->n) stage_record(STAGE_APPLY, t0);
    if (!rc && as->n && !early) replica_observe_applied(r, as->b, as->n);
    for (size_t i = 0; !rc && i < as->n; i++) {
        r->h->applied_entries++;
        replica_safe_applied(r, &as->b[i], as->refused[i] == 3);
        pending_write *p = replica_take_pending(r, as->ids[i]);
        if (p) complete_applied(r, p, &as->b[i], as->refused[i]);
    }
    for (size_t i = 0; i < as->n; i++) range_batch_decoded_free(&as->dec[i]);
    as->n = 0;
    return rc;
}

static int apply_entry(replica *r, apply_set *as, const paxos_entry *en)
{
    paxos_batch_iter it;
    int rc = paxos_batch_iter_init(&it, en->data, en->len);
    if (rc) return rc;
    uint32_t idx = 0;
    uint64_t id;
    const uint8_t *data;
    uint32_t len;
    while ((rc = paxos_batch_next(&it, &id, &data, &len)) == 1) {
        if (++idx > REPLICA_MAX_PER_SLOT) return MERR_CORRUPT;
        range_cmd c;
        if ((rc = range_cmd_decode(data, len, &c))) return rc;
        if (c.kind != RANGE_CMD_BATCH && c.kind != RANGE_CMD_CLOSE) {
            /* Everything before the command first, then the command alone. */
            r->doubt_clean = 0; /* the span changes: so may the intents */
            if ((rc = apply_flush(r, as))) return rc;
            if ((rc = replica_apply_cmd(r, &c, replica_composite(en->slot, idx), id))) return rc;
            continue;
        }
        if ((rc = apply_set_grow(as))) return rc;
        if (c.kind == RANGE_CMD_CLOSE) {
            /* An empty batch at the closed ts: applied (and counted) in
             * log order like any write (replica_close.c). */
            as->dec[as->n] = (range_batch_decoded){{0}, NULL};
            as->b[as->n] = (range_batch){.ts = c.closed};
            as->refused[as->n] = 3;
        } else if ((rc = range_batch_decode(data, len, &as->dec[as->n]))) {
            return rc;
        } else {
            as->b[as->n] = as->dec[as->n].batch;
            /* A frozen range takes nothing more: its state is what the merge
             * absorbs (replica_merge.c). */
            as->refused[as->n] = r->frozen ? 2 : !batch_fits(r, &as->b[as->n]);
        }
        if (as->refused[as->n] == 1 || as->refused[as->n] == 2) as->b[as->n] = (range_batch){0};
        as->slots[as->n] = replica_composite(en->slot, idx);
        as->ids[as->n] = id;
        as->n++;
    }
    return rc;
}

/* Applies every proposal of the chosen DATA entries, in log order. */
int replica_apply_entries(replica *r, const paxos_entry *en, size_t n, size_t *done,
                          uint64_t *bad_slot)
{
    apply_set as = {0};
    int rc = 0;
    size_t i = 0;
    for (; i < n && !rc; i++) {
        if (en[i].type != PAXOS_ENTRY_DATA) continue; /* no-ops; configs live in the core */
        *bad_slot = en[i].slot;
        rc = apply_entry(r, &as, &en[i]);
        if (rc == REPLICA_STALLED) break; /* as was flushed before the command */
    }
    *done = i;
    if (!rc) rc = apply_flush(r, &as);
    apply_set_free(&as);
    return rc;
}
