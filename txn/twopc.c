/* Pieces shared by the 2PC participant and coordinator: names for logs and
 * errors, timestamp helpers, and the action list. */
#include "txn/twopc.h"
#include "txn/twopc_int.h"

#include <assert.h>
#include <string.h>

txn_ts txn_ts_max(txn_ts a, txn_ts b)
{
    return a > b ? a : b;
}

txn_ts txn_ts_next(const txn_clock *clk)
{
    return txn_ts_max(clk->hlc_now, clk->last_assigned + 1);
}

const char *txn_event_name(txn_event_type t)
{
    switch (t) {
    case TXN_EV_PREPARE: return "PREPARE";
    case TXN_EV_COMMIT: return "COMMIT";
    case TXN_EV_CHOSEN: return "CHOSEN";
    case TXN_EV_VOTE: return "VOTE";
    case TXN_EV_DECISION: return "DECISION";
    case TXN_EV_STATUS_QUERY: return "STATUS_QUERY";
    case TXN_EV_STATUS_REPLY: return "STATUS_REPLY";
    case TXN_EV_TT_NOW: return "TT_NOW";
    case TXN_EV_TIMEOUT: return "TIMEOUT";
    case TXN_EV_ABORT: return "ABORT";
    }
    return "UNKNOWN";
}

const char *txn_action_name(txn_action_type t)
{
    switch (t) {
    case TXN_ACT_PROPOSE: return "PROPOSE";
    case TXN_ACT_SEND_VOTE: return "SEND_VOTE";
    case TXN_ACT_SEND_DECISION: return "SEND_DECISION";
    case TXN_ACT_STATUS_QUERY: return "STATUS_QUERY";
    case TXN_ACT_REPLY_CLIENT: return "REPLY_CLIENT";
    case TXN_ACT_COMMIT_WAIT: return "COMMIT_WAIT";
    case TXN_ACT_APPLY: return "APPLY";
    case TXN_ACT_RELEASE_LOCKS: return "RELEASE_LOCKS";
    case TXN_ACT_MARK_PREPARED: return "MARK_PREPARED";
    case TXN_ACT_REACQUIRE_LOCKS: return "REACQUIRE_LOCKS";
    case TXN_ACT_ASSIGNED_TS: return "ASSIGNED_TS";
    }
    return "UNKNOWN";
}

const char *txn_outcome_name(txn_outcome o)
{
    switch (o) {
    case TXN_OUTCOME_UNKNOWN: return "unknown";
    case TXN_OUTCOME_COMMITTED: return "committed";
    case TXN_OUTCOME_ABORTED: return "aborted";
    }
    return "?";
}

void twopc_out_reset(txn_out *out)
{
    out->n = 0;
}

txn_action *twopc_push(txn_out *out, txn_action_type t)
{
    /* TXN_MAX_ACTIONS covers one message per participant plus a handful. */
    assert(out->n < TXN_MAX_ACTIONS);
    txn_action *a = &out->a[out->n++];
    memset(a, 0, sizeof(*a));
    a->type = t;
    return a;
}

void twopc_propose(txn_out *out, txn_rec_type type, txn_id txn, txn_ts ts, uint64_t coord)
{
    memset(&out->rec, 0, offsetof(txn_record, parts));
    out->rec.type = type;
    out->rec.txn = txn;
    out->rec.ts = ts;
    out->rec.coord = coord;
    out->rec.n_parts = 0;
    twopc_push(out, TXN_ACT_PROPOSE)->ts = ts;
}

int twopc_check_record(const txn_event *ev, txn_id txn, merr *e)
{
    const txn_record *r = ev->rec;
    if (!r) return merr_set(e, MERR_INVALID, "CHOSEN without a record");
    if (r->txn != txn)
        return merr_set(e, MERR_INVALID, "record of txn %llu given to txn %llu",
                        (unsigned long long)r->txn, (unsigned long long)txn);
    if (r->type != TXN_REC_PREPARE && r->type != TXN_REC_COMMIT && r->type != TXN_REC_ABORT)
        return merr_set(e, MERR_INVALID, "unknown record type %d", (int)r->type);
    if (r->n_parts > TXN_MAX_PARTS)
        return merr_set(e, MERR_INVALID, "record lists %zu participants", r->n_parts);
    return 0;
}
