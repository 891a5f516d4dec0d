/* Two-phase commit over Paxos groups (Spanner §4.2.1): the pure state
 * machines of a participant and of the coordinator of one transaction.
 *
 * A machine lives on every replica of its range. Chosen Paxos records
 * (TXN_EV_CHOSEN) drive it everywhere; the other events are handled by the
 * leader only (a follower answers MERR_NOT_LEADER). Each step returns actions
 * for the caller to carry out: propose a record, send a message, reply to the
 * client, start commit-wait, apply the writes, release the locks. Clocks come
 * in with the event (txn_clock), so the cores read none.
 *
 * Timestamps (txn_ts, HLC values) and the argument for them:
 *  - a participant's prepare ts p > every ts its leader assigned before, and
 *    p >= the leader's HLC;
 *  - the coordinator's commit ts s >= every p, s >= tt_now().latest when the
 *    commit request arrived, s > every ts the coordinator leader assigned, and
 *    s >= its HLC;
 *  - commit-wait: nobody learns of the commit (client reply, lock release,
 *    decision to participants) before tt_after(s), i.e. s is in the past
 *    everywhere. So a transaction that starts after this one's reply gets a
 *    larger timestamp: external consistency (docs/transactions.md).
 *
 * Failover: a new leader rebuilds a machine by replaying the chosen records
 * (txn_*_init as follower, then TXN_EV_CHOSEN for each), then calls
 * txn_*_become_leader(), which re-issues what the old leader may not have
 * finished. What was never logged (an ACTIVE participant, a coordinator still
 * collecting votes) is lost; the transaction then aborts: presumed abort,
 * made durable by an abort record before it is announced.
 *
 * Idempotency: every message may come twice; a repeated commit request gets
 * the same answer (same s, or aborted); a commit request for a transaction
 * that already aborted (client went away, locks released) is refused.
 *
 * Limits: TXN_MAX_PARTS participants per transaction besides the
 * coordinator (a larger transaction gets MERR_TOOBIG). */
#ifndef MERIDIAN_TXN_TWOPC_H
#define MERIDIAN_TXN_TWOPC_H

#include "common/err.h"
#include "txn/lock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TXN_MAX_PARTS   64
#define TXN_MAX_ACTIONS (TXN_MAX_PARTS + 8)

typedef enum txn_outcome {
    TXN_OUTCOME_UNKNOWN = 0,
    TXN_OUTCOME_COMMITTED = 1,
    TXN_OUTCOME_ABORTED = 2,
} txn_outcome;

/* A record replicated through a range's Paxos log. */
typedef enum txn_rec_type {
    TXN_REC_PREPARE = 1, /* participant: voted yes at ts = prepare ts, holds its read and
                            write locks (the caller's record names both sets of spans) */
    TXN_REC_COMMIT = 2,  /* coordinator: decision at ts = s; participant: outcome */
    TXN_REC_ABORT = 3,
} txn_rec_type;

typedef struct txn_record {
    txn_rec_type type;
    txn_id txn;
    txn_ts ts;
    uint64_t coord; /* PREPARE: the coordinator's range */
    /* COMMIT/ABORT at the coordinator: the participants to tell. */
    size_t n_parts;
    uint64_t parts[TXN_MAX_PARTS];
} txn_record;

/* The leader's clocks when it handles an event; fill what the event needs. */
typedef struct txn_clock {
    txn_ts hlc_now;       /* the leader's HLC reading */
    txn_ts last_assigned; /* greatest ts the leader ever assigned */
    txn_ts tt_earliest;   /* tt_now(), as HLC values */
    txn_ts tt_latest;
} txn_clock;

typedef enum txn_event_type {
    TXN_EV_PREPARE = 1,  /* participant: commit message of the client (write locks held) */
    TXN_EV_COMMIT,       /* coordinator: the client's commit request */
    TXN_EV_CHOSEN,       /* a record of this txn was chosen in this range's log */
    TXN_EV_VOTE,         /* coordinator: a participant voted (yes with its prepare ts, or no) */
    TXN_EV_DECISION,     /* participant: the coordinator's decision (outcome, ts) */
    TXN_EV_STATUS_QUERY, /* coordinator: a prepared participant asks (ts = its prepare ts) */
    TXN_EV_STATUS_REPLY, /* participant: the answer (outcome may be UNKNOWN) */
    TXN_EV_TT_NOW,       /* coordinator: a fresh tt_now() for commit-wait */
    TXN_EV_TIMEOUT,      /* the caller's timer for the current state fired */
    TXN_EV_ABORT,        /* local abort: wounded, or the client aborts */
} txn_event_type;

typedef struct txn_event {
    txn_event_type type;
    txn_clock clk;
    uint64_t from;         /* VOTE, STATUS_QUERY: the participant's range */
    bool yes;              /* VOTE */
    txn_outcome outcome;   /* DECISION, STATUS_REPLY */
    txn_ts ts;             /* VOTE, STATUS_QUERY: prepare ts; DECISION, STATUS_REPLY: s */
    const txn_record *rec; /* CHOSEN */
    const uint64_t *parts; /* COMMIT: the other participants' ranges */
    size_t n_parts;        /* COMMIT */
    uint64_t coord;        /* PREPARE: the coordinator's range */
    uint64_t reads_epoch;  /* PREPARE, COMMIT: leader epoch the read locks were taken
                              in (0: no reads here); another epoch lost them */
} txn_event;

typedef enum txn_action_type {
    TXN_ACT_PROPOSE = 1,     /* propose out->rec through Paxos */
    TXN_ACT_SEND_VOTE,       /* to the coordinator `to`: yes (ts) or no */
    TXN_ACT_SEND_DECISION,   /* to participant `to`: outcome (and ts) */
    TXN_ACT_STATUS_QUERY,    /* to the coordinator's group `to`: what became of it? (ts) */
    TXN_ACT_REPLY_CLIENT,    /* outcome (and ts) */
    TXN_ACT_COMMIT_WAIT,     /* step TXN_EV_TT_NOW once tt_after(ts) holds */
    TXN_ACT_APPLY,           /* apply this range's writes at ts (every replica) */
    TXN_ACT_RELEASE_LOCKS,   /* txn_lock_release_all */
    TXN_ACT_MARK_PREPARED,   /* txn_lock_set_prepared: no longer woundable */
    TXN_ACT_REACQUIRE_LOCKS, /* new leader: take the prepared txn's read (S) and write (X)
                                locks again: its s is not known yet and may exceed any
                                ts this leader assigns, so a write to what it read must
                                wait for its outcome (found by tests/sim/txn_sim) */
    TXN_ACT_ASSIGNED_TS,     /* the leader assigned ts: raise last_assigned */
} txn_action_type;

typedef struct txn_action {
    txn_action_type type;
    uint64_t to;
    bool yes;
    txn_outcome outcome;
    txn_ts ts;
} txn_action;

typedef struct txn_out {
    size_t n;
    txn_action a[TXN_MAX_ACTIONS];
    txn_record rec; /* valid when an action is TXN_ACT_PROPOSE */
} txn_out;

/* ---- participant ----
 *
 *            PREPARE                  CHOSEN(prepare)
 *   ACTIVE ----------> PREPARING ------------------> PREPARED
 *     |                    |  DECISION(abort)           |  DECISION(commit, s)
 *     | TIMEOUT (client    |  or local ABORT            |  or STATUS_REPLY(commit)
 *     | gone), ABORT,      v                            v
 *     | DECISION(abort) ABORTING <-- DECISION(abort) COMMITTING
 *     |                    |   or STATUS_REPLY(abort)   |
 *     |                    | CHOSEN(abort)              | CHOSEN(commit)
 *     v                    v                            v
 *   ABORTED <--------------+                        COMMITTED
 *
 * PREPARED waits for the coordinator; on TIMEOUT it asks (STATUS_QUERY). A
 * follower replaying the log goes ACTIVE -> PREPARED -> COMMITTED/ABORTED
 * directly on CHOSEN records. PREPARE in ABORTED answers "no": a late commit
 * of a transaction whose locks timed out is refused. */
typedef enum txn_part_state {
    TXN_PART_ACTIVE = 0,
    TXN_PART_PREPARING,
    TXN_PART_PREPARED,
    TXN_PART_COMMITTING,
    TXN_PART_ABORTING,
    TXN_PART_COMMITTED,
    TXN_PART_ABORTED,
    TXN_PART_NSTATES
} txn_part_state;

typedef struct txn_part {
    txn_id txn;
    uint64_t self;  /* this range */
    uint64_t coord; /* coordinator range, once known */
    uint64_t epoch; /* leader epoch (ballot) this machine's leader serves in */
    bool leader;
    bool prepare_asked; /* a PREPARE came: the coordinator expects a vote */
    txn_part_state st;
    txn_ts prepare_ts, commit_ts;
} txn_part;

void txn_part_init(txn_part *p, txn_id txn, uint64_t self, uint64_t epoch, bool leader);
/* Returns 0 with actions in *out, or an error with *out empty and *p
 * unchanged: MERR_PROTOCOL (event not allowed in this state, or contradicting
 * what is known), MERR_NOT_LEADER, MERR_INVALID (malformed event). */
int txn_part_step(txn_part *p, const txn_event *ev, txn_out *out, merr *e);
/* This replica now leads in `epoch`: re-issue what an old leader left. */
void txn_part_become_leader(txn_part *p, uint64_t epoch, txn_out *out);
void txn_part_become_follower(txn_part *p);
const char *txn_part_state_name(txn_part_state s);
/* The txn is prepared but undecided here (it holds back safe time). */
bool txn_part_in_doubt(const txn_part *p);

/* ---- coordinator ----
 *
 *          COMMIT (others)           all votes yes: pick s, PROPOSE(commit),
 *   ACTIVE ---------------> COLLECTING ----------------------------------+
 *     |  \                      |  vote no, TIMEOUT, ABORT               |
 *     |   \ COMMIT (no others: single-range fast path) --------------+   |
 *     |    \                    v                                    v   v
 *     |     `-- vote no, -----> ABORTING                           LOGGING
 *     |         query        ^     | CHOSEN(abort)                   | CHOSEN(commit)
 *     | TIMEOUT, ABORT       |     v                                 v
 *     +---> ABANDONED -------+   ABORTED                       COMMIT_WAIT
 *           (nothing heard)  COMMIT, vote,                           | TT_NOW after s
 *                            query                                   v
 *                                                                COMMITTED
 *
 * Commit-wait starts when s is picked, overlapping the Paxos write; the
 * client, the participants and the lock table hear of the commit only in
 * COMMITTED. Likewise nobody hears "aborted" before an abort record is
 * chosen: otherwise a later leader, knowing nothing, could still commit. A
 * transaction given up before anyone asked (client gone, wounded) is
 * ABANDONED: locks released, nothing logged, nobody told; whoever asks later
 * makes it log the abort first. A participant asking about a transaction the
 * coordinator never got a commit request for causes an abort (presumed
 * abort). One exception needs no record: a commit request whose read locks
 * were taken under an earlier leader epoch is refused at once, since every
 * later leader refuses it too. */
typedef enum txn_coord_state {
    TXN_COORD_ACTIVE = 0,
    TXN_COORD_COLLECTING,
    TXN_COORD_LOGGING,
    TXN_COORD_COMMIT_WAIT,
    TXN_COORD_COMMITTED,
    TXN_COORD_ABORTING,
    TXN_COORD_ABORTED,
    TXN_COORD_ABANDONED,
    TXN_COORD_NSTATES
} txn_coord_state;

typedef struct txn_coord_vote {
    uint64_t range;
    bool yes;
    txn_ts ts;
} txn_coord_vote;

typedef struct txn_coord {
    txn_id txn;
    uint64_t self;
    uint64_t epoch;
    bool leader;
    bool commit_asked; /* the client asked to commit: it gets a reply */
    bool waited;       /* commit-wait already over (TT_NOW came before CHOSEN) */
    txn_coord_state st;
    txn_ts min_s; /* lower bound from the commit request: tt latest, assigned */
    txn_ts s;
    size_t n_parts;
    uint64_t parts[TXN_MAX_PARTS];
    size_t n_heard; /* votes and queries, also those before the commit request */
    txn_coord_vote heard[TXN_MAX_PARTS];
} txn_coord;

void txn_coord_init(txn_coord *c, txn_id txn, uint64_t self, uint64_t epoch, bool leader);
int txn_coord_step(txn_coord *c, const txn_event *ev, txn_out *out, merr *e);
void txn_coord_become_leader(txn_coord *c, uint64_t epoch, txn_out *out);
void txn_coord_become_follower(txn_coord *c);
const char *txn_coord_state_name(txn_coord_state s);

/* ---- shared ---- */

const char *txn_event_name(txn_event_type t);
const char *txn_action_name(txn_action_type t);
const char *txn_outcome_name(txn_outcome o);
/* max(a, b) and "a timestamp strictly above every assigned one, not below
 * the clock": max(hlc_now, last_assigned + 1). */
txn_ts txn_ts_max(txn_ts a, txn_ts b);
txn_ts txn_ts_next(const txn_clock *clk);

#endif
