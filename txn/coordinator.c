/* The 2PC coordinator state machine, which also runs the single-range fast
 * path (a commit with no other participant). Diagram and rules in twopc.h.
 *
 * Same shape as participant.c: event -> kind, the transition table lists the
 * legal next states of every (state, kind), handlers validate before they
 * change anything, and a refused event leaves the machine as it was. */
#include "txn/twopc.h"
#include "txn/twopc_int.h"

#include <assert.h>
#include <string.h>

enum {
    K_COMMIT,
    K_VOTE_YES,
    K_VOTE_NO,
    K_QUERY,
    K_CH_COMMIT,
    K_CH_ABORT,
    K_TT_NOW,
    K_TIMEOUT,
    K_ABORT,
    K_N
};

static const char *const KIND_NAME[K_N] = {
    "COMMIT",        "VOTE(yes)", "VOTE(no)", "STATUS_QUERY", "CHOSEN(commit)",
    "CHOSEN(abort)", "TT_NOW",    "TIMEOUT",  "ABORT",
};

#define ACT   TWOPC_BIT(TXN_COORD_ACTIVE)
#define COLL  TWOPC_BIT(TXN_COORD_COLLECTING)
#define LOG   TWOPC_BIT(TXN_COORD_LOGGING)
#define CWAIT TWOPC_BIT(TXN_COORD_COMMIT_WAIT)
#define CED   TWOPC_BIT(TXN_COORD_COMMITTED)
#define AING  TWOPC_BIT(TXN_COORD_ABORTING)
#define AED   TWOPC_BIT(TXN_COORD_ABORTED)
#define ABND  TWOPC_BIT(TXN_COORD_ABANDONED)

/* Legal next states per (state, event kind); 0 = the event is refused. */
static const unsigned LEGAL[TXN_COORD_NSTATES][K_N] = {
    /*            COMMIT VOTE_YES VOTE_NO QUERY CH_COMMIT CH_ABORT TT_NOW TIMEOUT ABORT */
    [TXN_COORD_ACTIVE] = {COLL | LOG | AING | AED, ACT, AING, AING, CWAIT, AED, ACT, AING | ABND,
                          AING | ABND},
    [TXN_COORD_COLLECTING] = {COLL, COLL | LOG, AING, COLL | LOG, 0, 0, COLL, AING, AING},
    [TXN_COORD_LOGGING] = {LOG, LOG, 0, LOG, CWAIT | CED, 0, LOG, LOG, 0},
    [TXN_COORD_COMMIT_WAIT] = {CWAIT, CWAIT, 0, CWAIT, CWAIT, 0, CWAIT | CED, CWAIT, 0},
    [TXN_COORD_COMMITTED] = {CED, CED, 0, CED, CED, 0, CED, CED, 0},
    [TXN_COORD_ABORTING] = {AING, AING, AING, AING, 0, AED, AING, AING, AING},
    [TXN_COORD_ABORTED] = {AED, AED, AED, AED, 0, AED, AED, AED, AED},
    [TXN_COORD_ABANDONED] = {AING, AING, AING, AING, 0, AED, ABND, ABND, ABND},
};

const char *txn_coord_state_name(txn_coord_state s)
{
    static const char *const n[] = {"ACTIVE",    "COLLECTING", "LOGGING", "COMMIT_WAIT",
                                    "COMMITTED", "ABORTING",   "ABORTED", "ABANDONED"};
    return (unsigned)s < TXN_COORD_NSTATES ? n[s] : "?";
}

void txn_coord_init(txn_coord *c, txn_id txn, uint64_t self, uint64_t epoch, bool leader)
{
    memset(c, 0, sizeof(*c));
    c->txn = txn;
    c->self = self;
    c->epoch = epoch;
    c->leader = leader;
    c->st = TXN_COORD_ACTIVE;
}

static int kind_of(const txn_event *ev, int *kind, merr *e)
{
    switch (ev->type) {
    case TXN_EV_COMMIT: *kind = K_COMMIT; return 0;
    case TXN_EV_VOTE: *kind = ev->yes ? K_VOTE_YES : K_VOTE_NO; return 0;
    case TXN_EV_STATUS_QUERY: *kind = K_QUERY; return 0;
    case TXN_EV_CHOSEN:
        if (ev->rec->type == TXN_REC_PREPARE)
            return merr_set(e, MERR_PROTOCOL, "coordinator: a coordinator logs no prepare");
        *kind = ev->rec->type == TXN_REC_COMMIT ? K_CH_COMMIT : K_CH_ABORT;
        return 0;
    case TXN_EV_TT_NOW: *kind = K_TT_NOW; return 0;
    case TXN_EV_TIMEOUT: *kind = K_TIMEOUT; return 0;
    case TXN_EV_ABORT: *kind = K_ABORT; return 0;
    default:
        return merr_set(e, MERR_PROTOCOL, "coordinator: %s is a participant event",
                        txn_event_name(ev->type));
    }
}

static bool is_part(const txn_coord *c, uint64_t r)
{
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i] == r) return true;
    return false;
}

static txn_coord_vote *heard(txn_coord *c, uint64_t r)
{
    for (size_t i = 0; i < c->n_heard; i++)
        if (c->heard[i].range == r) return &c->heard[i];
    return NULL;
}

/* Notes a vote; MERR_TOOBIG when too many ranges spoke, MERR_PROTOCOL when
 * a range changes its vote. */
static int note_vote(txn_coord *c, uint64_t r, bool yes, txn_ts ts, merr *e)
{
    txn_coord_vote *v = heard(c, r);
    if (v) {
        if (v->yes != yes)
            return merr_set(e, MERR_PROTOCOL, "range %llu changed its vote", (unsigned long long)r);
        return 0;
    }
    if (c->n_heard == TXN_MAX_PARTS)
        return merr_set(e, MERR_TOOBIG, "more than %d ranges voted", TXN_MAX_PARTS);
    c->heard[c->n_heard++] = (txn_coord_vote){.range = r, .yes = yes, .ts = ts};
    return 0;
}

static void send_decision(txn_out *out, uint64_t to, txn_outcome o, txn_ts ts)
{
    txn_action *a = twopc_push(out, TXN_ACT_SEND_DECISION);
    a->to = to;
    a->outcome = o;
    a->ts = o == TXN_OUTCOME_COMMITTED ? ts : 0;
}

static void reply(txn_coord *c, txn_out *out, txn_outcome o)
{
    if (!c->commit_asked) return;
    txn_action *a = twopc_push(out, TXN_ACT_REPLY_CLIENT);
    a->outcome = o;
    a->ts = o == TXN_OUTCOME_COMMITTED ? c->s : 0;
}

/* The record of a decision, naming whom to tell: the participants and any
 * other range that spoke up. */
static void propose_decision(txn_coord *c, txn_out *out, txn_rec_type type)
{
    twopc_propose(out, type, c->txn, type == TXN_REC_COMMIT ? c->s : 0, c->self);
    txn_record *r = &out->rec;
    for (size_t i = 0; i < c->n_parts; i++) r->parts[r->n_parts++] = c->parts[i];
    for (size_t i = 0; i < c->n_heard && r->n_parts < TXN_MAX_PARTS; i++)
        if (!is_part(c, c->heard[i].range)) r->parts[r->n_parts++] = c->heard[i].range;
}

static void start_abort(txn_coord *c, txn_out *out)
{
    c->st = TXN_COORD_ABORTING;
    propose_decision(c, out, TXN_REC_ABORT);
}

static void to_aborted(txn_coord *c, txn_out *out)
{
    c->st = TXN_COORD_ABORTED;
    if (!c->leader) return;
    twopc_push(out, TXN_ACT_RELEASE_LOCKS);
    reply(c, out, TXN_OUTCOME_ABORTED);
    for (size_t i = 0; i < c->n_parts; i++) send_decision(out, c->parts[i], TXN_OUTCOME_ABORTED, 0);
    for (size_t i = 0; i < c->n_heard; i++)
        if (!is_part(c, c->heard[i].range))
            send_decision(out, c->heard[i].range, TXN_OUTCOME_ABORTED, 0);
}

/* Aborting in ACTIVE. With nobody to tell, nothing is logged (the common
 * case: a wounded or forgotten transaction costs no Paxos write). Once some
 * participant spoke, the abort is logged before anyone hears of it. */
static void give_up(txn_coord *c, txn_out *out)
{
    if (c->n_heard) {
        start_abort(c, out);
        return;
    }
    c->st = TXN_COORD_ABANDONED;
    twopc_push(out, TXN_ACT_RELEASE_LOCKS);
}

static void to_committed(txn_coord *c, txn_out *out)
{
    c->st = TXN_COORD_COMMITTED;
    reply(c, out, TXN_OUTCOME_COMMITTED);
    for (size_t i = 0; i < c->n_parts; i++)
        send_decision(out, c->parts[i], TXN_OUTCOME_COMMITTED, c->s);
    twopc_push(out, TXN_ACT_RELEASE_LOCKS);
}

/* All yes: s >= every prepare ts, >= tt latest at the commit request,
 * > every ts this leader assigned, >= its HLC. Commit-wait starts now, in
 * parallel with the Paxos write of the decision. */
static void decide(txn_coord *c, const txn_clock *clk, txn_out *out)
{
    txn_ts s = txn_ts_max(c->min_s, txn_ts_next(clk));
    for (size_t i = 0; i < c->n_parts; i++) s = txn_ts_max(s, heard(c, c->parts[i])->ts);
    c->s = s;
    c->st = TXN_COORD_LOGGING;
    twopc_push(out, TXN_ACT_ASSIGNED_TS)->ts = s;
    propose_decision(c, out, TXN_REC_COMMIT);
    twopc_push(out, TXN_ACT_COMMIT_WAIT)->ts = s;
}

/* In COLLECTING (or right at the commit request): abort on any no, decide
 * once every participant said yes, else keep waiting. */
static void tally(txn_coord *c, const txn_clock *clk, txn_out *out)
{
    size_t yes = 0;
    for (size_t i = 0; i < c->n_heard; i++) {
        if (!c->heard[i].yes || !is_part(c, c->heard[i].range)) {
            /* A no, or a range prepared for a txn that does not list it. */
            start_abort(c, out);
            return;
        }
        yes++;
    }
    if (yes == c->n_parts)
        decide(c, clk, out);
    else
        c->st = TXN_COORD_COLLECTING;
}

static int on_commit(txn_coord *c, const txn_event *ev, txn_out *out, merr *e)
{
    if (c->st == TXN_COORD_ABANDONED) {
        /* Refuse, but only once the refusal is durable. */
        c->commit_asked = true;
        start_abort(c, out);
        return 0;
    }
    if (c->st != TXN_COORD_ACTIVE) {
        c->commit_asked = true;
        /* Same txn id, same answer: a decided txn answers again; otherwise
         * the reply comes when it is decided. */
        if (c->st == TXN_COORD_COMMITTED) reply(c, out, TXN_OUTCOME_COMMITTED);
        if (c->st == TXN_COORD_ABORTED) reply(c, out, TXN_OUTCOME_ABORTED);
        return 0;
    }
    if (ev->n_parts > TXN_MAX_PARTS)
        return merr_set(e, MERR_TOOBIG, "%zu participants, at most %d", ev->n_parts, TXN_MAX_PARTS);
    if (ev->n_parts && !ev->parts) return merr_set(e, MERR_INVALID, "participant list is NULL");
    size_t extra = 0;
    for (size_t i = 0; i < ev->n_parts; i++) {
        uint64_t r = ev->parts[i];
        if (!r || r == c->self)
            return merr_set(e, MERR_INVALID, "participant %llu is not another range",
                            (unsigned long long)r);
        for (size_t j = 0; j < i; j++)
            if (ev->parts[j] == r)
                return merr_set(e, MERR_INVALID, "participant %llu listed twice",
                                (unsigned long long)r);
    }
    for (size_t i = 0; i < c->n_heard; i++) {
        bool listed = false;
        for (size_t j = 0; j < ev->n_parts; j++) listed |= ev->parts[j] == c->heard[i].range;
        extra += !listed;
    }
    if (ev->n_parts + extra > TXN_MAX_PARTS)
        return merr_set(e, MERR_TOOBIG, "too many ranges to notify");

    c->commit_asked = true;
    if (ev->reads_epoch && ev->reads_epoch != c->epoch) {
        /* The read locks died with an earlier leader: refuse. */
        to_aborted(c, out);
        return 0;
    }
    memcpy(c->parts, ev->parts, ev->n_parts * sizeof(*c->parts));
    c->n_parts = ev->n_parts;
    c->min_s = txn_ts_max(ev->clk.tt_latest, txn_ts_next(&ev->clk));
    twopc_push(out, TXN_ACT_MARK_PREPARED); /* our own write locks stay till the end */
    tally(c, &ev->clk, out);
    return 0;
}

static int on_vote(txn_coord *c, int kind, const txn_event *ev, txn_out *out, merr *e)
{
    bool yes = kind != K_VOTE_NO;
    if (!ev->from) return merr_set(e, MERR_INVALID, "vote from range 0");
    int rc;
    switch (c->st) {
    case TXN_COORD_ACTIVE:
        if ((rc = note_vote(c, ev->from, yes, ev->ts, e))) return rc;
        /* A no, or an in-doubt participant asking about a transaction we
         * never got a commit request for: presumed abort. */
        if (!yes || kind == K_QUERY) start_abort(c, out);
        return 0;
    case TXN_COORD_COLLECTING:
        if (!is_part(c, ev->from))
            return merr_set(e, MERR_PROTOCOL, "vote from range %llu, not a participant",
                            (unsigned long long)ev->from);
        if ((rc = note_vote(c, ev->from, yes, ev->ts, e))) return rc;
        tally(c, &ev->clk, out);
        return 0;
    case TXN_COORD_LOGGING:
    case TXN_COORD_COMMIT_WAIT:
    case TXN_COORD_COMMITTED:
        if (!is_part(c, ev->from))
            return merr_set(e, MERR_PROTOCOL, "vote from range %llu, not a participant",
                            (unsigned long long)ev->from);
        if (c->st == TXN_COORD_COMMITTED) send_decision(out, ev->from, TXN_OUTCOME_COMMITTED, c->s);
        return 0; /* otherwise it hears the outcome once commit-wait is over */
    case TXN_COORD_ABANDONED:
        if ((rc = note_vote(c, ev->from, yes, ev->ts, e))) return rc;
        start_abort(c, out); /* log the abort, then answer */
        return 0;
    case TXN_COORD_ABORTING:
        if (!heard(c, ev->from) && !is_part(c, ev->from) && c->n_heard < TXN_MAX_PARTS)
            c->heard[c->n_heard++] = (txn_coord_vote){.range = ev->from, .yes = yes};
        return 0;
    default: /* ABORTED */ send_decision(out, ev->from, TXN_OUTCOME_ABORTED, 0); return 0;
    }
}

static int on_chosen(txn_coord *c, int kind, const txn_record *r, txn_out *out)
{
    if (kind == K_CH_ABORT) {
        if (c->st == TXN_COORD_ABORTED) return 0;
        if (c->st == TXN_COORD_ACTIVE) { /* replay */
            memcpy(c->parts, r->parts, r->n_parts * sizeof(*c->parts));
            c->n_parts = r->n_parts;
        }
        to_aborted(c, out);
        return 0;
    }
    if (c->st == TXN_COORD_COMMIT_WAIT || c->st == TXN_COORD_COMMITTED) return 0; /* repeat */
    if (c->st == TXN_COORD_ACTIVE) {                                              /* replay */
        c->s = r->ts;
        memcpy(c->parts, r->parts, r->n_parts * sizeof(*c->parts));
        c->n_parts = r->n_parts;
    }
    /* Every replica applies our range's writes once the decision is chosen;
     * nobody is told before commit-wait ends. */
    twopc_push(out, TXN_ACT_APPLY)->ts = c->s;
    if (c->st == TXN_COORD_LOGGING && c->waited) {
        to_committed(c, out);
        return 0;
    }
    bool was_active = c->st == TXN_COORD_ACTIVE;
    c->st = TXN_COORD_COMMIT_WAIT;
    if (c->leader && was_active) twopc_push(out, TXN_ACT_COMMIT_WAIT)->ts = c->s;
    return 0;
}

static int on_tt_now(txn_coord *c, const txn_event *ev, txn_out *out, merr *e)
{
    if (ev->clk.tt_earliest > ev->clk.tt_latest)
        return merr_set(e, MERR_INVALID, "tt interval with earliest after latest");
    if (c->st != TXN_COORD_LOGGING && c->st != TXN_COORD_COMMIT_WAIT) return 0;
    /* tt_after(s): s has certainly passed, everywhere. */
    bool after = ev->clk.tt_earliest > c->s;
    if (!after) {
        twopc_push(out, TXN_ACT_COMMIT_WAIT)->ts = c->s;
        return 0;
    }
    if (c->st == TXN_COORD_LOGGING)
        c->waited = true; /* finish when the decision is chosen */
    else
        to_committed(c, out);
    return 0;
}

static int on_timeout(txn_coord *c, txn_out *out)
{
    switch (c->st) {
    case TXN_COORD_ACTIVE: give_up(c, out); return 0;         /* the client went away */
    case TXN_COORD_COLLECTING: start_abort(c, out); return 0; /* a vote never came */
    case TXN_COORD_LOGGING: propose_decision(c, out, TXN_REC_COMMIT); return 0;
    case TXN_COORD_ABORTING: propose_decision(c, out, TXN_REC_ABORT); return 0;
    case TXN_COORD_COMMIT_WAIT: twopc_push(out, TXN_ACT_COMMIT_WAIT)->ts = c->s; return 0;
    default: return 0;
    }
}

int txn_coord_step(txn_coord *c, const txn_event *ev, txn_out *out, merr *e)
{
    twopc_out_reset(out);
    if (!ev) return merr_set(e, MERR_INVALID, "no event");
    int rc = 0, kind = 0;
    if (ev->type == TXN_EV_CHOSEN && (rc = twopc_check_record(ev, c->txn, e))) return rc;
    if ((rc = kind_of(ev, &kind, e))) return rc;
    if (!c->leader && ev->type != TXN_EV_CHOSEN)
        return merr_set(e, MERR_NOT_LEADER, "coordinator of txn %llu: %s on a follower",
                        (unsigned long long)c->txn, KIND_NAME[kind]);
    unsigned legal = LEGAL[c->st][kind];
    if (!legal)
        return merr_set(e, MERR_PROTOCOL, "coordinator of txn %llu: %s not allowed in %s",
                        (unsigned long long)c->txn, KIND_NAME[kind], txn_coord_state_name(c->st));

    /* The machine is a few KiB; copying it makes "refused = unchanged" hold
     * without care in every handler. */
    txn_coord before;
    memcpy(&before, c, sizeof(before));
    switch (kind) {
    case K_COMMIT: rc = on_commit(c, ev, out, e); break;
    case K_VOTE_YES:
    case K_VOTE_NO:
    case K_QUERY: rc = on_vote(c, kind, ev, out, e); break;
    case K_CH_COMMIT:
    case K_CH_ABORT: rc = on_chosen(c, kind, ev->rec, out); break;
    case K_TT_NOW: rc = on_tt_now(c, ev, out, e); break;
    case K_TIMEOUT: rc = on_timeout(c, out); break;
    default: /* K_ABORT */
        if (c->st == TXN_COORD_ACTIVE)
            give_up(c, out);
        else if (c->st == TXN_COORD_COLLECTING)
            start_abort(c, out);
        break;
    }
    if (rc) {
        memcpy(c, &before, sizeof(before)); /* padding too: callers may compare bytes */
        twopc_out_reset(out);
        return rc;
    }
    assert(legal & TWOPC_BIT(c->st));
    return 0;
}

void txn_coord_become_leader(txn_coord *c, uint64_t epoch, txn_out *out)
{
    twopc_out_reset(out);
    c->leader = true;
    c->epoch = epoch;
    switch (c->st) {
    case TXN_COORD_COMMIT_WAIT:
        /* Decided and logged: finish the wait (maybe long over) and tell. */
        twopc_push(out, TXN_ACT_ASSIGNED_TS)->ts = c->s;
        twopc_push(out, TXN_ACT_COMMIT_WAIT)->ts = c->s;
        break;
    case TXN_COORD_ABORTED:
        /* The old leader may have died before telling anyone. */
        for (size_t i = 0; i < c->n_parts; i++)
            send_decision(out, c->parts[i], TXN_OUTCOME_ABORTED, 0);
        break;
    case TXN_COORD_COLLECTING:
    case TXN_COORD_LOGGING:
        /* Undecided or unlogged work of an earlier term: a leader in between
         * knew nothing of it (our locks were gone) and may have closed
         * timestamps above the s we picked. Nothing was revealed: abort. */
        start_abort(c, out);
        break;
    case TXN_COORD_ABORTING: propose_decision(c, out, TXN_REC_ABORT); break;
    default: break;
    }
}

void txn_coord_become_follower(txn_coord *c)
{
    c->leader = false;
}
