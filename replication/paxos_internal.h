/* Private state of a Paxos replica, shared by the paxos_*.c files only.
 *
 * Role transitions (paxos.c, paxos_leader.c):
 *
 *   FOLLOWER --election timeout--> PRECANDIDATE --majority of pre-votes-->
 *   CANDIDATE --promises from a majority of every config in the chain--> LEADER
 *   any role --higher ballot seen / lost quorum (check-quorum)--> FOLLOWER
 *   FOLLOWER --TIMEOUT_NOW from the leader--> CANDIDATE (no pre-vote)
 */
#ifndef MERIDIAN_REPLICATION_PAXOS_INTERNAL_H
#define MERIDIAN_REPLICATION_PAXOS_INTERNAL_H

#include "replication/paxos.h"

/* One slot in memory. pseq: the persist sequence that wrote it (durable once
 * persisted_seq >= pseq). */
typedef struct paxos_slot {
    paxos_entry e;
    uint64_t pseq;
} paxos_slot;

/* A message waiting for its state to be durable. */
typedef struct paxos_held {
    uint64_t seq;
    paxos_msg m;
} paxos_held;

/* A client proposal waiting for a slot. */
typedef struct paxos_prop {
    uint64_t id;
    uint8_t *data;
    uint32_t len;
} paxos_prop;

/* Leader's view of one peer. */
typedef struct paxos_peer {
    paxos_node_id id;
    uint64_t match;    /* all slots <= match accepted in our ballot (or chosen) */
    uint64_t next;     /* next slot to send */
    uint64_t sent_hb;  /* match at the last resend, to detect a stall */
    int active;        /* heard from since the last check-quorum */
    int64_t ack_start; /* newest lease_start echoed back in our ballot/epoch */
    int promised;      /* candidate: promise received */
    int prevoted;
    /* snapshot streaming */
    int snap_sending;
    uint64_t snap_offset; /* acknowledged bytes */
    uint64_t snap_sent;   /* bytes sent (snap_offset..snap_sent are in flight) */
    uint64_t snap_back;   /* the offset of the last go-back, +1 (0: none) */
    int snap_stall;
} paxos_peer;

struct paxos_group {
    paxos_config cfg;
    paxos_role role;
    paxos_node_id leader;
    paxos_ballot promised; /* in memory; durable once persisted */
    paxos_ballot ballot;   /* our ballot when candidate/leader */
    uint64_t rng;

    /* log window: slots [base, base + n) */
    uint64_t base;
    paxos_slot *log;
    size_t n, cap;
    uint64_t *cfgs; /* sorted slots in the window holding CONFIG values */
    size_t ncfgs, capcfgs;
    uint64_t chosen;  /* every slot <= chosen is chosen and known */
    uint64_t applied; /* handed out in update.chosen */

    /* snapshot: the state at snap_slot (members after it) */
    uint64_t snap_slot;
    paxos_members snap_members;
    uint8_t *snap_data;
    uint32_t snap_len;
    /* receiving a snapshot */
    uint8_t *rx_data;
    uint64_t rx_slot, rx_len, rx_total;
    paxos_members rx_members;
    paxos_ballot rx_ballot;
    int rx_installing;

    /* persistence */
    uint64_t pseq;      /* last sequence handed out */
    uint64_t persisted; /* last sequence acknowledged */
    paxos_held *held;
    size_t nheld, capheld;
    int need_persist_hs;

    /* timers (ticks) */
    int elapsed; /* since we last heard from a leader / campaigned */
    int timeout; /* randomised election timeout */
    int hb_elapsed;
    int cq_elapsed; /* check-quorum */
    int idle;       /* leader: ticks without work */
    int quiesced;
    int restarted; /* block promises for one lease after a restart */
    paxos_tt now;  /* of the event being handled */

    /* leases: what we granted as an acceptor */
    paxos_node_id grant_to;
    uint64_t grant_epoch;
    int64_t grant_until; /* our tt.latest at the grant + lease */
    /* as a leader */
    uint64_t lease_epoch;
    int64_t lease_floor; /* acks for requests sent before this are ignored */
    uint64_t start_slot; /* first slot proposed in our ballot */

    /* leader */
    paxos_peer peers[2 * PAXOS_MAX_NODES];
    size_t npeers;
    paxos_prop *props;
    size_t nprops, capprops;
    uint64_t *dropped; /* ids of discarded proposals, moved to the next update */
    size_t ndropped, capdropped;
    int cfg_op; /* a membership change waiting for every lower slot to be chosen */
    paxos_node_id cfg_node;
    paxos_node_id transfer_to;
    int transfer_released; /* lease given up, TIMEOUT_NOW sent */
    int transfer_elapsed;
    uint64_t promise_max; /* candidate: highest slot seen in promises */
    uint64_t max_round;   /* highest round seen anywhere */
    /* candidate: best accepted value per slot from promises, slots from rec_base */
    paxos_entry *rec;
    size_t nrec;
    uint64_t rec_base;
    paxos_node_id xfer_from; /* candidate: campaigning on a transfer from */
    uint64_t xfer_epoch;
};

/* paxos.c */
int paxos_emit(paxos_group *g, paxos_update *u, const paxos_msg *m, int durable);
int paxos_emit_new(paxos_group *g, paxos_update *u, int type, paxos_node_id to, paxos_msg *m);
uint64_t paxos_persist_begin(paxos_group *g, paxos_update *u);
int paxos_persist_slot(paxos_group *g, paxos_update *u, paxos_slot *s);
void paxos_become_follower(paxos_group *g, paxos_ballot b, paxos_node_id leader);
void paxos_reset_timeout(paxos_group *g);
int paxos_deliver_local(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_advance_apply(paxos_group *g, paxos_update *u);

/* paxos_log.c */
paxos_slot *paxos_log_get(paxos_group *g, uint64_t slot);
int paxos_log_extend(paxos_group *g, uint64_t slot);
uint64_t paxos_log_last(const paxos_group *g);
void paxos_log_truncate_front(paxos_group *g, uint64_t upto);
void paxos_log_truncate_back(paxos_group *g, uint64_t after);
int paxos_log_set(paxos_group *g, uint64_t slot, paxos_ballot b, int type, const uint8_t *data,
                  uint32_t len);
void paxos_members_at(const paxos_group *g, uint64_t slot, paxos_members *m);
int paxos_config_pending(const paxos_group *g, uint64_t *slot);
int paxos_entry_copy(paxos_entry *dst, const paxos_entry *src);
void paxos_entry_free(paxos_entry *e);
int paxos_push_entry(paxos_entry **arr, size_t *n, size_t *cap, const paxos_entry *e);
int paxos_quorum(const paxos_members *m, const paxos_node_id *ids, size_t n);

/* paxos_acceptor.c */
int paxos_on_prevote(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_prepare(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_accept(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_heartbeat(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_snapshot(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_snapshot_installed(paxos_group *g, uint64_t slot, paxos_update *u);
int paxos_lease_blocks(const paxos_group *g, const paxos_msg *m);
void paxos_learn_commit(paxos_group *g, paxos_ballot b, uint64_t commit);

/* paxos_leader.c */
int paxos_campaign(paxos_group *g, int prevote, int transfer, paxos_update *u);
int paxos_may_campaign(const paxos_group *g);
int paxos_on_prevote_reply(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_promise(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_accepted(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_on_snapshot_reply(paxos_group *g, const paxos_msg *m, paxos_update *u);
int paxos_leader_tick(paxos_group *g, paxos_update *u);
int paxos_leader_propose(paxos_group *g, const paxos_event *ev, paxos_update *u);
int paxos_leader_config(paxos_group *g, const paxos_event *ev, paxos_update *u);
int paxos_leader_config_ready(paxos_group *g, paxos_update *u);
int paxos_leader_transfer(paxos_group *g, paxos_node_id to, paxos_update *u);
int paxos_leader_flush(paxos_group *g, paxos_update *u);
int paxos_leader_self_persisted(paxos_group *g, paxos_update *u);
paxos_peer *paxos_peer_find(paxos_group *g, paxos_node_id id);
int paxos_send_accepts(paxos_group *g, paxos_peer *p, paxos_update *u);
/* (Re)starts p's snapshot stream from its acknowledged offset, filling the
 * window (paxos_leader.c). */
int paxos_send_snapshot_chunk(paxos_group *g, paxos_peer *p, paxos_update *u);
void paxos_self_grant(paxos_group *g);
int paxos_send_accepts_all(paxos_group *g, paxos_update *u);
void paxos_peers_sync(paxos_group *g);
void paxos_leader_wake(paxos_group *g);
int paxos_leader_renew(paxos_group *g, paxos_update *u);

#endif
