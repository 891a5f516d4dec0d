/* The Multi-Paxos core: one replica of one Paxos group as a pure state machine.
 *
 * paxos_step(group, &event, &update) is the only way state changes. It does no
 * I/O, reads no clock and draws no randomness of its own (election timeouts are
 * randomised from cfg.seed with a PRNG kept inside the group, so a run replays
 * exactly). Model: etcd-io/raft's Step/Ready, cowsql/raft's raft_step; the
 * protocol is Lamport's "Paxos Made Simple" §3 (Multi-Paxos) with the leases of
 * Spanner §4.1 and Chandra et al. "Paxos Made Live". docs/replication.md has the
 * whole protocol, the lease argument and the durability rules.
 *
 * Durability contract (the caller's side):
 *  - update.hs_changed / update.persist[] / update.truncate_upto must be written
 *    to the log store, then fsynced; when that is durable the caller steps
 *    PAXOS_EV_PERSISTED with seq = update.persist_seq (or a later one).
 *  - The core itself holds back every outgoing message whose meaning depends on
 *    that state being durable (promises, accepted acknowledgements, lease grants,
 *    snapshot acks) and emits it only from the step that receives the matching
 *    PERSISTED event. So the caller may send update.msgs[] at once, always.
 *    Persist updates in the order they were produced: a later one may
 *    overwrite a slot an earlier one wrote.
 *  - update.chosen[] are handed out in slot order, exactly once, and only once
 *    they are durable in the local log, so a restart never finds an applied
 *    slot whose logged value is older than what was applied.
 *
 * Invariants: a replica promises ballot b only if b >= every ballot it promised
 * before (persisted), accepts (s, b, v) only if b >= promised; a leader proposes
 * at most one value per slot per ballot; one membership change in flight at a
 * time, proposed only when every lower slot is chosen, and no slot above an
 * unchosen change is proposed; a leader has promised its own ballot. */
#ifndef MERIDIAN_REPLICATION_PAXOS_H
#define MERIDIAN_REPLICATION_PAXOS_H

#include <stddef.h>
#include <stdint.h>

#define PAXOS_MAX_NODES 9

typedef uint32_t paxos_node_id; /* 0 means "none" */

/* A ballot orders leaderships: by round, then by node id (unique per node). */
typedef struct paxos_ballot {
    uint64_t round;
    paxos_node_id node;
} paxos_ballot;

int paxos_ballot_cmp(paxos_ballot a, paxos_ballot b);

/* A TrueTime interval: the true time is within [earliest, latest] (ns). */
typedef struct paxos_tt {
    int64_t earliest;
    int64_t latest;
} paxos_tt;

/* Voters decide; learners receive the log but never count in a quorum. */
typedef struct paxos_members {
    uint32_t nvoters;
    uint32_t nlearners;
    paxos_node_id voters[PAXOS_MAX_NODES];
    paxos_node_id learners[PAXOS_MAX_NODES];
} paxos_members;

int paxos_members_is_voter(const paxos_members *m, paxos_node_id n);
int paxos_members_is_learner(const paxos_members *m, paxos_node_id n);
/* Every two majorities of a and b share a voter. */
int paxos_members_quorums_intersect(const paxos_members *a, const paxos_members *b);

typedef enum paxos_entry_type {
    PAXOS_ENTRY_EMPTY = 0, /* slot not accepted (a hole) */
    PAXOS_ENTRY_NOOP = 1,  /* fills a hole found by a new leader */
    PAXOS_ENTRY_DATA = 2,  /* a batch of client proposals (paxos_batch_*) */
    PAXOS_ENTRY_CONFIG = 3 /* a membership (paxos_members_encode) */
} paxos_entry_type;

/* One slot of the log. `ballot` is the ballot the value was accepted in. */
typedef struct paxos_entry {
    uint64_t slot;
    paxos_ballot ballot;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
} paxos_entry;

typedef enum paxos_msg_type {
    PAXOS_MSG_NONE = 0,
    PAXOS_MSG_PREVOTE = 1,         /* "would you promise this ballot?" (no state change) */
    PAXOS_MSG_PREVOTE_REPLY = 2,   /* flags & PAXOS_F_REJECT when refused */
    PAXOS_MSG_PREPARE = 3,         /* phase 1a: ballot, slot = first open slot */
    PAXOS_MSG_PROMISE = 4,         /* phase 1b: accepted entries >= slot, commit */
    PAXOS_MSG_ACCEPT = 5,          /* phase 2a: entries, commit point */
    PAXOS_MSG_ACCEPTED = 6,        /* phase 2b: slot = contiguous match in ballot */
    PAXOS_MSG_HEARTBEAT = 7,       /* commit point, lease renewal */
    PAXOS_MSG_HEARTBEAT_REPLY = 8, /* slot = match */
    PAXOS_MSG_REJECT = 9,          /* ballot = the higher ballot promised */
    PAXOS_MSG_SNAPSHOT = 10,       /* one chunk: slot = index, offset, data */
    PAXOS_MSG_SNAPSHOT_REPLY = 11, /* offset acked; slot = installed index */
    PAXOS_MSG_TIMEOUT_NOW = 12,    /* leadership transfer: campaign now */
    PAXOS_MSG_TYPE_MAX = 12
} paxos_msg_type;

#define PAXOS_F_REJECT     0x01u /* replies: refused */
#define PAXOS_F_QUIESCE    0x02u /* heartbeat: leader goes quiet */
#define PAXOS_F_BEHIND     0x04u /* reject: the candidate is behind my snapshot */
#define PAXOS_F_TRANSFER   0x08u /* prepare: the old leader (aux) released its lease */
#define PAXOS_F_LAST_CHUNK 0x10u /* snapshot: last chunk */
#define PAXOS_F_RESEND     0x20u /* snapshot reply: a chunk came out of order; resend from offset */
#define PAXOS_F_ALL        0x3fu

/* A wire message as the core sees it; proto/paxos.proto is its encoding
 * (replication/paxos_codec.h). The message owns entries and data. */
typedef struct paxos_msg {
    uint8_t type;
    uint32_t flags;
    uint64_t group;
    paxos_node_id from;
    paxos_node_id to;
    paxos_ballot ballot;
    uint64_t slot;
    uint64_t commit;
    int64_t lease_start;  /* the leader's tt.earliest when it sent; echoed back */
    uint64_t lease_epoch; /* bumped when a leader releases its lease */
    paxos_node_id aux;    /* PREPARE+TRANSFER: the releasing leader */
    uint64_t offset;      /* snapshot chunk offset */
    uint64_t total;       /* snapshot size */
    paxos_members members;
    paxos_entry *entries;
    uint32_t nentries;
    uint8_t *data;
    uint32_t len;
} paxos_msg;

void paxos_msg_free(paxos_msg *m);
/* Deep copy; returns 0 or MERR_NOMEM. */
int paxos_msg_copy(paxos_msg *dst, const paxos_msg *src);
const char *paxos_msg_type_name(int type);

typedef struct paxos_config {
    uint64_t group_id;
    paxos_node_id self;
    int heartbeat_ticks;      /* leader heartbeat period */
    int election_ticks;       /* base; a follower waits [base, 2*base) */
    int64_t lease_ns;         /* leader lease length (default 3 s) */
    uint32_t window;          /* slots in flight beyond the chosen prefix */
    uint32_t max_batch;       /* proposals per slot */
    uint32_t max_batch_bytes; /* bytes per slot value (a single bigger one still goes) */
    uint32_t max_msg_entries; /* entries per ACCEPT */
    uint32_t snapshot_chunk;  /* bytes per snapshot chunk */
    uint32_t snapshot_window; /* chunks in flight to one follower (a stream over a long
                                 link is not one chunk per round trip) */
    int quiesce_ticks;        /* idle ticks before a leader goes quiet (0: never) */
    uint64_t seed;            /* election-timeout randomisation */
} paxos_config;

/* Fills the defaults above (lease 3 s, window 64 ...). */
void paxos_config_default(paxos_config *cfg, uint64_t group, paxos_node_id self);

typedef enum paxos_role {
    PAXOS_FOLLOWER = 0,
    PAXOS_PRECANDIDATE = 1, /* asking for pre-votes; no ballot bumped */
    PAXOS_CANDIDATE = 2,    /* phase 1 in progress */
    PAXOS_LEADER = 3
} paxos_role;

typedef enum paxos_event_type {
    PAXOS_EV_MESSAGE = 1,
    PAXOS_EV_TICK = 2,
    PAXOS_EV_PROPOSE = 3,
    PAXOS_EV_PERSISTED = 4,
    PAXOS_EV_SNAPSHOT_TAKEN = 5,     /* the state machine made a snapshot at slot */
    PAXOS_EV_SNAPSHOT_INSTALLED = 6, /* update.install is durable; slot 0: it failed */
    PAXOS_EV_CONFIG = 7,             /* request one membership change */
    PAXOS_EV_TRANSFER = 8,           /* hand leadership to node */
    PAXOS_EV_LIVENESS = 9,           /* node-level heartbeat from node arrived */
    PAXOS_EV_CAMPAIGN = 10,          /* start an election now (tests, bootstrap) */
    PAXOS_EV_RENEW = 11,             /* leader: leave quiescence, ask for lease grants now */
    PAXOS_EV_FLUSH = 12              /* leader: give slots to proposals held back (hold) */
} paxos_event_type;

typedef enum paxos_config_op {
    PAXOS_ADD_LEARNER = 1,
    PAXOS_PROMOTE = 2, /* learner -> voter; the learner must be caught up */
    PAXOS_REMOVE = 3   /* a voter or learner; not the leader itself */
} paxos_config_op;

typedef struct paxos_event {
    int type;
    paxos_tt now; /* every event carries the node's TrueTime interval */
    const paxos_msg *msg;
    /* PROPOSE */
    uint64_t id;
    const uint8_t *data;
    uint32_t len;
    /* PERSISTED: seq; SNAPSHOT_TAKEN/INSTALLED: slot (+ data/len, members) */
    uint64_t seq;
    uint64_t slot;
    const paxos_members *members;
    /* CONFIG: op + node; TRANSFER, LIVENESS: node */
    int op;
    paxos_node_id node;
    /* PROPOSE: only queue it; a FLUSH (or a PROPOSE without hold) gives the
     * queue slots. Proposals held through one event-loop round share a slot:
     * one log record, accept, ack and apply for all of them. */
    int hold;
} paxos_event;

/* A snapshot to install (follower) — complete, owned by the update. */
typedef struct paxos_install {
    uint64_t slot;
    paxos_members members;
    uint8_t *data;
    uint32_t len;
} paxos_install;

typedef struct paxos_update {
    /* To persist, then ack with PAXOS_EV_PERSISTED(persist_seq). */
    uint64_t persist_seq; /* 0: nothing to persist */
    int hs_changed;
    paxos_ballot promised;
    paxos_entry *persist; /* owned; overwrite these slots */
    size_t npersist;
    uint64_t truncate_upto; /* entries <= this may be deleted (0: none) */
    /* To send. Owned. */
    paxos_msg *msgs;
    size_t nmsgs;
    /* Newly chosen, in order, exactly once. Owned. */
    paxos_entry *chosen;
    size_t nchosen;
    /* Follower: a complete snapshot arrived; install, then step
     * PAXOS_EV_SNAPSHOT_INSTALLED with its slot. */
    int has_install;
    paxos_install install;
    /* The log behind the applied point has grown past what we like to keep:
     * the state machine should take a snapshot (a hint). */
    int want_snapshot;
    /* Proposals this replica discarded before they got a slot (it stopped
     * leading): they will never be chosen, so clients may retry them at once.
     * (Proposals that got a slot may still be chosen by the next leader.) */
    uint64_t *dropped;
    size_t ndropped;
    size_t cap_msgs, cap_persist, cap_chosen;
} paxos_update;

void paxos_update_init(paxos_update *u);
void paxos_update_free(paxos_update *u); /* frees and re-inits */

typedef struct paxos_group paxos_group;

/* Durable state handed back on restart (what the log store holds). */
typedef struct paxos_restore {
    paxos_ballot promised;
    uint64_t snap_slot; /* 0: no snapshot */
    paxos_members snap_members;
    const uint8_t *snap_data;
    uint32_t snap_len;
    uint64_t applied; /* the state machine's durable applied slot */
    const paxos_entry *entries;
    size_t nentries;
} paxos_restore;

/* A fresh replica of a new group whose initial voters are `members` (every
 * replica of a new group must start with the same list), or a restarted one
 * when `rs` is not NULL. Returns 0 or a MERR code. */
int paxos_group_new(const paxos_config *cfg, const paxos_members *members, const paxos_restore *rs,
                    paxos_group **out);
void paxos_group_free(paxos_group *g);

/* Returns 0, MERR_NOT_LEADER (PROPOSE/CONFIG/TRANSFER on a non-leader),
 * MERR_BUSY (a change already in flight / transfer pending), MERR_INVALID
 * (bad event or config op), MERR_NOMEM. The update is appended to even on error
 * (it never loses earlier output). */
int paxos_step(paxos_group *g, const paxos_event *ev, paxos_update *u);

/* True when this replica holds a lease valid for every true time up to now's
 * latest bound and has applied everything chosen before its leadership began:
 * it may serve reads locally and assign timestamps. */
int paxos_lease_valid(const paxos_group *g, paxos_tt now);

/* Read-only views. */
paxos_role paxos_get_role(const paxos_group *g);
paxos_node_id paxos_get_leader(const paxos_group *g); /* best known, 0 if none */
paxos_ballot paxos_get_ballot(const paxos_group *g);  /* promised */
uint64_t paxos_get_chosen(const paxos_group *g);      /* chosen prefix */
uint64_t paxos_get_applied(const paxos_group *g);     /* handed out */
uint64_t paxos_get_last(const paxos_group *g);
size_t paxos_get_queued(const paxos_group *g);  /* proposals waiting for a slot */
uint64_t paxos_get_first(const paxos_group *g); /* first slot still in the log */
/* Leader only: the slot up to which `id` has acknowledged our log or
 * snapshot in this ballot (0: not yet, or not leader). */
uint64_t paxos_get_peer_match(const paxos_group *g, paxos_node_id id);
int paxos_get_quiesced(const paxos_group *g);
/* The membership in force after the chosen prefix, and the newest in the log. */
void paxos_get_members(const paxos_group *g, paxos_members *committed, paxos_members *latest);
/* The lease this acceptor last granted: to whom (UINT32_MAX: "nobody", the
 * block after a restart) and until when (its own tt.latest at the grant +
 * lease). For simulators checking the lease argument. */
void paxos_get_grant(const paxos_group *g, paxos_node_id *to, int64_t *until);
/* Checks the replica's internal invariants (log window, ballots, durability of
 * applied slots, config index, leader state). 0, or MERR_INTERNAL with the
 * broken rule in `why`. For simulators and tests. */
int paxos_check(const paxos_group *g, char *why, size_t cap);
/* The latest snapshot's slot and the membership in force after it. */
void paxos_get_snapshot(const paxos_group *g, uint64_t *slot, paxos_members *members);
const char *paxos_role_name(paxos_role r);

/* Batches: a DATA slot value is [varint n]{[u64 id][varint len][bytes]}*n. */
typedef struct paxos_batch_iter {
    const uint8_t *p;
    size_t len, pos;
    uint64_t left;
} paxos_batch_iter;
int paxos_batch_iter_init(paxos_batch_iter *it, const uint8_t *data, size_t len);
/* 1 and fills id/data/len; 0 at the end; MERR_CORRUPT on a malformed batch. */
int paxos_batch_next(paxos_batch_iter *it, uint64_t *id, const uint8_t **data, uint32_t *len);

/* Membership values: [u8 nvoters][u32 ids][u8 nlearners][u32 ids]. */
int paxos_members_encode(const paxos_members *m, uint8_t **out, uint32_t *len);
int paxos_members_decode(const uint8_t *p, size_t len, paxos_members *m);

#endif
