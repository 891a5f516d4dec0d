/* The 2PC participant state machine (diagram and rules in twopc.h).
 *
 * txn_part_step() maps the event to a kind, looks the (state, kind) pair up
 * in the transition table — which lists every legal next state — and runs
 * the handler. An illegal pair is refused with MERR_PROTOCOL before anything
 * changes; handlers validate their input before they touch the machine. */
#include "txn/twopc.h"
#include "txn/twopc_int.h"

#include <assert.h>
#include <string.h>

enum {
    K_PREPARE,
    K_CH_PREPARE,
    K_CH_COMMIT,
    K_CH_ABORT,
    K_DEC_COMMIT,
    K_DEC_ABORT,
    K_DEC_UNKNOWN,
    K_TIMEOUT,
    K_ABORT,
    K_N
};

static const char *const KIND_NAME[K_N] = {
    "PREPARE",         "CHOSEN(prepare)", "CHOSEN(commit)", "CHOSEN(abort)", "DECISION(commit)",
    "DECISION(abort)", "STATUS(unknown)", "TIMEOUT",        "ABORT",
};

#define ACT  TWOPC_BIT(TXN_PART_ACTIVE)
#define PING TWOPC_BIT(TXN_PART_PREPARING)
#define PED  TWOPC_BIT(TXN_PART_PREPARED)
#define CING TWOPC_BIT(TXN_PART_COMMITTING)
#define AING TWOPC_BIT(TXN_PART_ABORTING)
#define CED  TWOPC_BIT(TXN_PART_COMMITTED)
#define AED  TWOPC_BIT(TXN_PART_ABORTED)

/* Legal next states per (state, event kind); 0 = the event is refused. */
static const unsigned LEGAL[TXN_PART_NSTATES][K_N] = {
    /*              PREPARE     CH_PREP  CH_COMMIT CH_ABORT DEC_COMMIT DEC_ABORT DEC_UNK TIMEOUT
       ABORT */
    [TXN_PART_ACTIVE] = {PING | AED, PED, 0, AED, 0, AED, ACT, AED, AED},
    [TXN_PART_PREPARING] = {PING, PED, 0, AED, 0, AING, PING, PING, AING},
    [TXN_PART_PREPARED] = {PED, PED, CED, AED, CING, AING, PED, PED, 0},
    [TXN_PART_COMMITTING] = {CING, CING, CED, 0, CING, 0, CING, CING, 0},
    [TXN_PART_ABORTING] = {AING, AING, 0, AED, 0, AING, AING, AING, AING},
    [TXN_PART_COMMITTED] = {CED, CED, CED, 0, CED, 0, CED, CED, 0},
    [TXN_PART_ABORTED] = {AED, AED, 0, AED, 0, AED, AED, AED, AED},
};

const char *txn_part_state_name(txn_part_state s)
{
    static const char *const n[] = {"ACTIVE",   "PREPARING", "PREPARED", "COMMITTING",
                                    "ABORTING", "COMMITTED", "ABORTED"};
    return (unsigned)s < TXN_PART_NSTATES ? n[s] : "?";
}

void txn_part_init(txn_part *p, txn_id txn, uint64_t self, uint64_t epoch, bool leader)
{
    memset(p, 0, sizeof(*p));
    p->txn = txn;
    p->self = self;
    p->epoch = epoch;
    p->leader = leader;
    p->st = TXN_PART_ACTIVE;
}

bool txn_part_in_doubt(const txn_part *p)
{
    /* From the chosen prepare until the chosen outcome; ABORTING counts too,
     * since its prepare record may be chosen before the abort. */
    return p->st == TXN_PART_PREPARED || p->st == TXN_PART_COMMITTING ||
           (p->st == TXN_PART_ABORTING && p->prepare_ts);
}

static int kind_of(const txn_event *ev, int *kind, merr *e)
{
    switch (ev->type) {
    case TXN_EV_PREPARE: *kind = K_PREPARE; return 0;
    case TXN_EV_CHOSEN:
        *kind = ev->rec->type == TXN_REC_PREPARE  ? K_CH_PREPARE
                : ev->rec->type == TXN_REC_COMMIT ? K_CH_COMMIT
                                                  : K_CH_ABORT;
        return 0;
    case TXN_EV_DECISION:
    case TXN_EV_STATUS_REPLY:
        if (ev->outcome == TXN_OUTCOME_COMMITTED)
            *kind = K_DEC_COMMIT;
        else if (ev->outcome == TXN_OUTCOME_ABORTED)
            *kind = K_DEC_ABORT;
        else if (ev->type == TXN_EV_STATUS_REPLY && ev->outcome == TXN_OUTCOME_UNKNOWN)
            *kind = K_DEC_UNKNOWN;
        else
            return merr_set(e, MERR_INVALID, "decision without an outcome");
        return 0;
    case TXN_EV_TIMEOUT: *kind = K_TIMEOUT; return 0;
    case TXN_EV_ABORT: *kind = K_ABORT; return 0;
    default:
        return merr_set(e, MERR_PROTOCOL, "participant: %s is a coordinator event",
                        txn_event_name(ev->type));
    }
}

static void vote(txn_part *p, txn_out *out, bool yes)
{
    txn_action *a = twopc_push(out, TXN_ACT_SEND_VOTE);
    a->to = p->coord;
    a->yes = yes;
    a->ts = yes ? p->prepare_ts : 0;
}

static void propose_pending(txn_part *p, txn_out *out)
{
    switch (p->st) {
    case TXN_PART_PREPARING:
        twopc_propose(out, TXN_REC_PREPARE, p->txn, p->prepare_ts, p->coord);
        break;
    case TXN_PART_COMMITTING:
        twopc_propose(out, TXN_REC_COMMIT, p->txn, p->commit_ts, p->coord);
        break;
    case TXN_PART_ABORTING: twopc_propose(out, TXN_REC_ABORT, p->txn, 0, p->coord); break;
    default: break;
    }
}

static void to_aborted(txn_part *p, txn_out *out)
{
    p->st = TXN_PART_ABORTED;
    if (!p->leader) return;
    twopc_push(out, TXN_ACT_RELEASE_LOCKS);
    /* A coordinator waiting for our vote learns "no" now, not by timeout. */
    if (p->prepare_asked) vote(p, out, false);
}

static int on_prepare(txn_part *p, const txn_event *ev, txn_out *out, merr *e)
{
    if (p->st != TXN_PART_ACTIVE) {
        /* A repeat: say again what we said (or will say once chosen). */
        if (!p->coord) p->coord = ev->coord;
        if (p->st == TXN_PART_ABORTING || p->st == TXN_PART_ABORTED)
            vote(p, out, false);
        else if (p->st != TXN_PART_PREPARING)
            vote(p, out, true);
        p->prepare_asked = true;
        return 0;
    }
    if (!ev->coord) return merr_set(e, MERR_INVALID, "PREPARE without a coordinator");
    p->coord = ev->coord;
    p->prepare_asked = true;
    if (ev->reads_epoch && ev->reads_epoch != p->epoch) {
        /* The read locks were taken under another leader and are gone:
         * what was read may have changed, so this transaction cannot commit. */
        to_aborted(p, out);
        return 0;
    }
    p->prepare_ts = txn_ts_next(&ev->clk);
    p->st = TXN_PART_PREPARING;
    twopc_push(out, TXN_ACT_MARK_PREPARED);
    twopc_push(out, TXN_ACT_ASSIGNED_TS)->ts = p->prepare_ts;
    propose_pending(p, out);
    return 0;
}

static int on_chosen(txn_part *p, int kind, const txn_record *r, txn_out *out, merr *e)
{
    switch (kind) {
    case K_CH_PREPARE:
        if (p->st != TXN_PART_ACTIVE && p->st != TXN_PART_PREPARING) return 0; /* late repeat */
        p->prepare_ts = r->ts;
        p->coord = r->coord;
        bool replayed = p->st == TXN_PART_ACTIVE;
        p->st = TXN_PART_PREPARED;
        if (p->leader) {
            if (replayed) {
                /* Proposed by an earlier leader: its locks (read and
                 * write) died with it. */
                twopc_push(out, TXN_ACT_REACQUIRE_LOCKS);
                twopc_push(out, TXN_ACT_MARK_PREPARED);
            }
            vote(p, out, true);
        }
        return 0;
    case K_CH_COMMIT:
        if (p->st == TXN_PART_COMMITTED) return 0;
        if (r->ts < p->prepare_ts)
            return merr_set(e, MERR_PROTOCOL, "commit ts %llu below prepare ts %llu",
                            (unsigned long long)r->ts, (unsigned long long)p->prepare_ts);
        p->commit_ts = r->ts;
        p->st = TXN_PART_COMMITTED;
        twopc_push(out, TXN_ACT_APPLY)->ts = r->ts; /* every replica applies */
        if (p->leader) twopc_push(out, TXN_ACT_RELEASE_LOCKS);
        return 0;
    default: /* K_CH_ABORT */
        if (p->st == TXN_PART_ABORTED) return 0;
        to_aborted(p, out);
        return 0;
    }
}

static int on_decision(txn_part *p, int kind, const txn_event *ev, txn_out *out, merr *e)
{
    if (kind == K_DEC_UNKNOWN) return 0; /* ask again at the next timeout */
    if (kind == K_DEC_COMMIT) {
        if (p->st != TXN_PART_PREPARED) {
            if (ev->ts != p->commit_ts)
                return merr_set(e, MERR_PROTOCOL, "commit at %llu, earlier at %llu",
                                (unsigned long long)ev->ts, (unsigned long long)p->commit_ts);
            return 0; /* a repeat */
        }
        if (ev->ts < p->prepare_ts)
            return merr_set(e, MERR_PROTOCOL, "commit ts %llu below prepare ts %llu",
                            (unsigned long long)ev->ts, (unsigned long long)p->prepare_ts);
        p->commit_ts = ev->ts;
        p->st = TXN_PART_COMMITTING;
        /* s goes into our log: keep our own timestamps above it. */
        twopc_push(out, TXN_ACT_ASSIGNED_TS)->ts = ev->ts;
        propose_pending(p, out);
        return 0;
    }
    switch (p->st) {
    case TXN_PART_ACTIVE:
        p->prepare_asked = false; /* the coordinator decided: no vote needed */
        to_aborted(p, out);
        return 0;
    case TXN_PART_PREPARING:
    case TXN_PART_PREPARED:
        p->prepare_asked = false; /* the coordinator decided: no vote needed */
        p->st = TXN_PART_ABORTING;
        propose_pending(p, out);
        return 0;
    default: return 0; /* already aborting or aborted */
    }
}

static int on_timeout(txn_part *p, txn_out *out)
{
    switch (p->st) {
    case TXN_PART_ACTIVE: to_aborted(p, out); return 0; /* the client went away */
    case TXN_PART_PREPARED: {
        /* In doubt and nobody told us: ask the coordinator's group. */
        txn_action *a = twopc_push(out, TXN_ACT_STATUS_QUERY);
        a->to = p->coord;
        a->ts = p->prepare_ts;
        return 0;
    }
    default: propose_pending(p, out); return 0; /* a proposal may have been lost */
    }
}

static int on_abort(txn_part *p, txn_out *out)
{
    if (p->st == TXN_PART_ACTIVE) {
        to_aborted(p, out);
    } else if (p->st == TXN_PART_PREPARING) {
        /* No vote has gone out yet, so we may still say no. */
        p->st = TXN_PART_ABORTING;
        propose_pending(p, out);
    }
    return 0;
}

int txn_part_step(txn_part *p, const txn_event *ev, txn_out *out, merr *e)
{
    twopc_out_reset(out);
    if (!ev) return merr_set(e, MERR_INVALID, "no event");
    int rc = 0, kind = 0;
    if (ev->type == TXN_EV_CHOSEN && (rc = twopc_check_record(ev, p->txn, e))) return rc;
    if ((rc = kind_of(ev, &kind, e))) return rc;
    if (!p->leader && ev->type != TXN_EV_CHOSEN)
        return merr_set(e, MERR_NOT_LEADER, "participant of txn %llu: %s on a follower",
                        (unsigned long long)p->txn, KIND_NAME[kind]);
    unsigned legal = LEGAL[p->st][kind];
    if (!legal)
        return merr_set(e, MERR_PROTOCOL, "participant of txn %llu: %s not allowed in %s",
                        (unsigned long long)p->txn, KIND_NAME[kind], txn_part_state_name(p->st));

    txn_part before;
    memcpy(&before, p, sizeof(before));
    switch (kind) {
    case K_PREPARE: rc = on_prepare(p, ev, out, e); break;
    case K_CH_PREPARE:
    case K_CH_COMMIT:
    case K_CH_ABORT: rc = on_chosen(p, kind, ev->rec, out, e); break;
    case K_DEC_COMMIT:
    case K_DEC_ABORT:
    case K_DEC_UNKNOWN: rc = on_decision(p, kind, ev, out, e); break;
    case K_TIMEOUT: rc = on_timeout(p, out); break;
    default: rc = on_abort(p, out); break;
    }
    if (rc) {
        memcpy(p, &before, sizeof(before)); /* padding too: callers may compare bytes */
        twopc_out_reset(out);
        return rc;
    }
    assert(legal & TWOPC_BIT(p->st));
    return 0;
}

void txn_part_become_leader(txn_part *p, uint64_t epoch, txn_out *out)
{
    twopc_out_reset(out);
    p->leader = true;
    p->epoch = epoch;
    switch (p->st) {
    case TXN_PART_PREPARED:
        twopc_push(out, TXN_ACT_REACQUIRE_LOCKS);
        twopc_push(out, TXN_ACT_MARK_PREPARED);
        on_timeout(p, out); /* ask the coordinator rather than wait */
        break;
    case TXN_PART_PREPARING:
        /* Our prepare record was not chosen, so a leader in between knew
         * nothing of this txn: our read locks were gone and others may have
         * written what we read. Our prepare ts also dates from an earlier
         * term. Say no: no vote has gone out, so aborting is allowed. */
        p->st = TXN_PART_ABORTING;
        propose_pending(p, out);
        break;
    case TXN_PART_COMMITTING:
        /* The outcome is known; make sure it gets logged. */
        twopc_push(out, TXN_ACT_REACQUIRE_LOCKS);
        propose_pending(p, out);
        break;
    case TXN_PART_ABORTING: propose_pending(p, out); break;
    default: break;
    }
}

void txn_part_become_follower(txn_part *p)
{
    p->leader = false;
}
