/* Shared state of the transaction simulator (issue 8): txn_sim.c drives the
 * run (CLI, event loop, nemesis, final checks), txn_sim_range.c runs the
 * ranges (log, leader with lock table and 2PC machines, replicas with safe
 * time and MVCC versions, invariants), txn_sim_client.c runs the clients
 * (bank and list-append workloads) and records the Jepsen histories.
 *
 * The replicated log of a range is modelled abstractly, as in
 * tests/unit/txn/test_twopc_sim.c: a sequence of chosen records; a proposal
 * is chosen some time after it was made if the leader still leads and
 * reaches a majority; at a failover every proposal in flight is either
 * chosen or lost. Paxos itself is paxos_sim's job; here the subject is the
 * transaction layer on top, so the log only needs Paxos's contract.
 *
 * txn_sim_replica.c runs the replicas; txn_sim_gc.c collects coordinators'
 * transaction records as the node does
 * (server/txn_2pc_gc.c, with the pure rules of txn/txnrec.h). */
#ifndef MERIDIAN_TESTS_SIM_TXN_SIM_H
#define MERIDIAN_TESTS_SIM_TXN_SIM_H

#include "sim/sim.h"
#include "tests/jepsen/jp_history.h"
#include "txn/lock.h"
#include "txn/safetime.h"
#include "txn/twopc.h"

#include <stdbool.h>
#include <stdint.h>

#define TS_MAX_NODES   5
#define TS_MAX_RANGES  6
#define TS_MAX_KEYS    64 /* bank accounts + lists */
#define TS_MAX_OPKEYS  4  /* keys of one list-append transaction */
#define TS_MAX_ITEMS   2048
#define TS_MS          1000000LL /* simulated time is in ns */
#define TS_MAX_RETRIES 40

enum {
    TS_EV_NET = 1,  /* message delivery (sim_net) */
    TS_EV_CHOOSE,   /* a = range, b = epoch: the head proposal is chosen */
    TS_EV_REPL,     /* a = range: followers catch up */
    TS_EV_TT,       /* a = range, b = txn: commit-wait check */
    TS_EV_TICK,     /* a = range: machine timeouts, closed timestamps */
    TS_EV_CLIENT,   /* node = client: start the next op or attempt */
    TS_EV_CTIMEOUT, /* node = client, a = op sequence: the client gives up */
    TS_EV_NEMESIS,
    TS_EV_STRONG, /* a = range, ptr = ts_strong: a leader's strong read waited out its ts */
};

/* Protocol breakers for --inject: each breaks one rule, and a run with it
 * must be caught by the checkers. */
typedef enum ts_inject {
    TS_INJ_NONE = 0,
    TS_INJ_SKIP_COMMIT_WAIT, /* the coordinator reveals a commit before tt_after(s) */
    TS_INJ_NO_READ_LOCKS,    /* reads take no shared locks */
    TS_INJ_EARLY_SAFE_TIME,  /* replicas ignore in-doubt transactions in safe time */
    /* A new leader retakes only the write locks of a prepared txn (the
     * contract before the sim found it wrong; see reacquire()). */
    TS_INJ_REACQUIRE_WRITES_ONLY,
    /* Record GC (txn_sim_gc.c) breaking one rule of txn/txnrec.h: */
    TS_INJ_GC_IGNORE_DEADLINE,   /* collect before the client's commit deadline passed */
    TS_INJ_GC_IGNORE_ACKS,       /* collect before every participant acknowledged */
    TS_INJ_GC_NO_DEADLINE_CHECK, /* take a commit request past its deadline */
    /* A leader's strong read takes its ts without raising last_assigned, so a
     * later write of the range may land at or below what the read saw. */
    TS_INJ_STRONG_NO_BUMP,
} ts_inject;

typedef enum ts_msg_type {
    M_LOCK = 1,   /* client -> leader: lock (and read) a key */
    M_LOCK_REPLY, /* leader -> client */
    M_PREPARE,    /* client -> participant leader */
    M_COMMIT,     /* client -> coordinator leader */
    M_ABORT,      /* client -> leader: give up this attempt */
    M_VOTE,       /* participant -> coordinator */
    M_DECISION,   /* coordinator -> participant */
    M_QUERY,      /* participant -> coordinator */
    M_REPLY,      /* coordinator -> client: outcome */
    M_SNAP,       /* client -> any replica: read key at ts once safe; ts 0: strong, at
                     the leader, which picks ts (outcome ABORTED: not settled, pick one) */
    M_SNAP_REPLY, /* replica -> client */
    M_ACK,        /* participant -> coordinator: the decision is logged here */
} ts_msg_type;

/* A message: fixed header plus `nitems` list items (read results). */
typedef struct ts_msg {
    int type;
    int range;      /* the range it is for (or from, for replies) */
    int from_range; /* VOTE, QUERY: the sender's range */
    int client;
    uint64_t seq; /* client's request sequence: stale replies are ignored */
    txn_id txn;
    txn_ts prio;
    int slot; /* key */
    int mode; /* LOCK: TXN_LOCK_S / TXN_LOCK_X */
    int want_read;
    int coord_here; /* LOCK: this range coordinates the txn */
    int coord;      /* PREPARE: coordinator range */
    int yes;
    int outcome; /* txn_outcome; LOCK_REPLY/REPLY: COMMITTED = ok, ABORTED = refused */
    txn_ts ts;
    uint64_t epoch; /* LOCK_REPLY: leader epoch; PREPARE/COMMIT: reads epoch */
    int nparts;     /* COMMIT */
    int parts[TS_MAX_RANGES];
    uint64_t deadline_us; /* COMMIT: the client's commit deadline (its clock, µs) */
    txn_ts ver_ts;        /* LOCK_REPLY: ts of the version read */
    int nitems;
    int64_t items[];
} ts_msg;

typedef struct ts_ver {
    txn_ts ts;
    int64_t v;
} ts_ver;

/* A key's versions, ts increasing. Bank: each version is a balance. List:
 * each version is one appended element, so the list at t is every element
 * up to t. */
typedef struct ts_vers {
    ts_ver *v;
    size_t n, cap;
} ts_vers;

typedef struct ts_snapreq {
    int client;
    uint64_t seq;
    int slot;
    txn_ts t;
} ts_snapreq;

/* A strong read a leader took a timestamp for, waiting for it to pass
 * (commit-wait) before the answer goes out from that leader's replica. */
typedef struct ts_strong {
    ts_snapreq q;
    int rep;
    uint64_t crashes; /* s->crashes when taken: a crash since forgets the wait */
} ts_strong;

typedef struct ts_replica {
    int node;
    size_t applied; /* log records applied */
    txn_safe safe;
    ts_vers keys[TS_MAX_KEYS];
    ts_snapreq *parked; /* reads waiting for safe time */
    size_t nparked, capparked;
} ts_replica;

enum { R_TXN = 1, R_CLOSE, R_GC };

typedef struct ts_logrec {
    int kind;
    txn_record r; /* R_TXN; R_GC: r.txn is the txn whose record is deleted */
    txn_ts closed;
    int dup;              /* R_TXN: the range already knew this outcome (skipped by replicas) */
    uint64_t deadline_us; /* R_TXN commit/abort at the coordinator: kept until (µs) */
} ts_logrec;

/* A coordinator range's transaction record (what txn_rec_value holds in the
 * node) and the leader's GC bookkeeping for it, by txn id. */
typedef struct ts_rec {
    uint8_t logged;    /* a commit or abort record was chosen here */
    uint8_t abort;     /* ... an abort */
    uint8_t collected; /* its GC record was chosen: the record is gone */
    uint8_t proposed;  /* leader: a GC record is in flight (this epoch) */
    uint64_t deadline_us;
    txn_ts s;
    int nparts;
    int parts[TXN_MAX_PARTS];
    uint8_t acked[TS_MAX_RANGES + 1]; /* leader: participant logged the outcome */
    int64_t told;                     /* leader: decisions last sent */
} ts_rec;

/* A parked lock request at a leader, found again by its tag. */
typedef struct ts_parked {
    uint64_t tag;
    txn_id txn;
    int client;
    uint64_t seq;
    int slot;
    int want_read;
} ts_parked;

/* The leader's view of one txn in this range. */
typedef struct ts_mach {
    bool coord;
    txn_part p;
    txn_coord c;
    int64_t last_activity;
    uint64_t deadline_us; /* coordinator: from the commit request, 0 = none came */
} ts_mach;

typedef struct ts_range {
    int id; /* 1..R, also the 2PC range id */
    int nrep;
    ts_replica rep[TS_MAX_NODES];
    int leader_rep; /* index in rep[] */
    uint64_t epoch;
    ts_logrec *log;
    size_t nlog, caplog;
    ts_logrec *pend;
    size_t npend, cappend;
    /* leader state, rebuilt at failover */
    txn_lock_table *lt;
    txn_ts last_assigned;
    ts_mach **m; /* by txn id */
    size_t capm;
    ts_parked *parked;
    size_t nparked, capparked;
    uint64_t next_tag;
    /* canonical state at choose time (the oracle for the invariants) */
    ts_vers canon[TS_MAX_KEYS];
    txn_ts max_read_s[TS_MAX_KEYS]; /* greatest s of a committed txn that read the key */
    txn_ts strong_max; /* greatest ts a leader's strong read took here (ever, any leader) */
    uint8_t *outcome;  /* by txn id: outcome logged in this range */
    size_t capout;
    ts_rec *rec; /* by txn id: records of the txns this range coordinates */
    size_t caprec;
} ts_range;

/* What the sim knows of a txn attempt (the "client buffer" that the
 * records stand for: a prepare or commit record carries the range's writes). */
typedef struct ts_write {
    int slot;
    int64_t v;
} ts_write;

typedef struct ts_read {
    int slot;
    txn_ts ver_ts;
} ts_read;

typedef struct ts_txn {
    int client;
    txn_ts prio;
    int coord;
    ts_write w[2 * TS_MAX_OPKEYS];
    int nw;
    ts_read rd[2 * TS_MAX_OPKEYS];
    int nrd;
    int committed; /* outcome decided (oracle) */
    txn_ts s;
    int told; /* what its client was told: 1 committed (at s), 2 aborted */
    uint64_t deadline_us;
} ts_txn;

typedef enum ts_cstate { C_IDLE = 0, C_LOCKING, C_COMMITTING, C_SNAP, C_BACKOFF } ts_cstate;

typedef struct ts_step {
    int slot;
    int mode;
    int read;
} ts_step;

typedef struct ts_client {
    int id;
    int bank; /* workload: 1 bank, 0 list-append */
    int64_t process;
    ts_cstate st;
    uint64_t seq;   /* request sequence */
    uint64_t opseq; /* operation sequence (timeouts) */
    int64_t op_start;
    int64_t commit_start; /* the commit request was first sent (it is resent) */
    jp_op op;             /* the invocation being run */
    /* read-write attempt */
    txn_id txn;
    txn_ts prio;
    int attempts;
    ts_step steps[3 * TS_MAX_OPKEYS];
    int nsteps, cur;
    uint64_t epoch[TS_MAX_RANGES + 1]; /* first lock epoch per range, 0 = untouched */
    int64_t readv[TS_MAX_KEYS];        /* bank: balances read */
    int64_t *readl[TS_MAX_KEYS];       /* list: the list read */
    size_t nreadl[TS_MAX_KEYS];
    int has_read[TS_MAX_KEYS];
    /* snapshot read */
    txn_ts snap_t; /* 0 while the leader of the first key's range picks it */
    int64_t snap_start;
    int snap_pending;
    int snap_slots[TS_MAX_KEYS];
    int nsnap;
    int ops_done;
} ts_client;

typedef struct ts_node {
    int up;
    sim_clock clock;
} ts_node;

typedef struct ts_sim {
    uint64_t seed;
    int nodes, ranges, nclients;
    ts_inject inject;
    int invariants; /* check invariants during the run (off: leave it to the checkers) */
    /* --close-rule-tt: closed timestamps as the node makes them
     * (server/replica_close.c): targets tt.earliest, never counted as
     * assigned; every stamp is >= tt.latest (the node's hlc_now(latest)). */
    int close_tt;
    int gc; /* collect transaction records (txn_sim_gc.c) */
    sim_rng rng;
    sim_queue q;
    sim_net net;
    sim_trace tr;
    int64_t now;
    int64_t eps;
    uint64_t step;
    int failed;
    char why[512];
    int calm;                       /* no faults, no new ops */
    int isolated;                   /* the node the nemesis cut off, 0 = none */
    ts_node node[TS_MAX_NODES + 1]; /* node 0: the clients' host */
    ts_range rg[TS_MAX_RANGES + 1];
    int naccts, nlists; /* bank slots 0..naccts-1, list slots after */
    int64_t initial;    /* per account */
    ts_client *cl;
    ts_txn *txns; /* by txn id */
    size_t ntxns, captxns;
    int64_t next_val;
    jp_history hbank, hlist;
    /* counts */
    uint64_t commits, aborts, retries, infos, snaps, snaps_ok, follower_reads, failovers, crashes,
        wounds;
    uint64_t strong_settled, strong_busy;        /* leader-picked snapshot ts: taken; refused */
    uint64_t gc_collected, gc_refused, gc_stale; /* records deleted; late commits refused;
                                                    late answers a decided participant ignored */
} ts_sim;

/* txn_sim.c */
void ts_fail(ts_sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_clk(ts_sim *s, int node, txn_clock *c, txn_ts last_assigned);
int ts_send(ts_sim *s, int from, int to, const ts_msg *m);
int ts_range_of(const ts_sim *s, int slot);

/* txn_sim_replica.c */
int ts_grow(void **p, size_t *cap, size_t need, size_t size); /* zero-filled growth */
int ts_vers_push(ts_vers *v, txn_ts ts, int64_t x);
size_t ts_vers_count(const ts_vers *v, txn_ts t); /* versions at or below t */
/* Reads slot at t from a replica: bank value, or the list into items. */
size_t ts_vers_read(const ts_vers *v, txn_ts t, int64_t *items, size_t max);
int ts_is_bank(const ts_sim *s, int slot);
/* Applies the range's chosen records up to n, then serves parked reads. */
void ts_replica_apply_upto(ts_sim *s, ts_range *r, ts_replica *p, size_t n);
void ts_replica_on_snap(ts_sim *s, ts_range *r, int node, const ts_msg *m);
/* Answers q from replica p at q->t (checked against the range's chosen versions). */
void ts_replica_serve(ts_sim *s, ts_range *r, ts_replica *p, const ts_snapreq *q);
void ts_range_repl(ts_sim *s, int range);

/* txn_sim_range.c */
int ts_range_init(ts_sim *s, ts_range *r, int id);
void ts_range_free(ts_range *r);
int ts_leader_node(const ts_sim *s, int range);
void ts_range_on_msg(ts_sim *s, int node, const ts_msg *m);
void ts_range_choose(ts_sim *s, int range, uint64_t epoch);
void ts_range_tt(ts_sim *s, int range, txn_id txn);
void ts_range_tick(ts_sim *s, int range);
/* TS_EV_STRONG: the strong read's ts has passed; it is answered. */
void ts_range_strong_done(ts_sim *s, int range, ts_strong *w);
void ts_range_failover(ts_sim *s, int range, int to_rep);
/* Proposes lr through the range's log (chosen later, or lost at a failover). */
void ts_range_propose(ts_sim *s, ts_range *r, const ts_logrec *lr);

/* txn_sim_gc.c */
ts_rec *ts_rec_get(ts_sim *s, ts_range *r, txn_id t); /* NULL: out of memory */
/* log_append: a record was chosen at range r (the oracle's checks). */
void ts_gc_logged(ts_sim *s, ts_range *r, ts_logrec *lr);
/* The leader's tick: tells participants again, proposes deletions. */
void ts_gc_tick(ts_sim *s, ts_range *r);
/* A new leader: acks and proposals in flight are forgotten. */
void ts_gc_failover(ts_range *r);
void ts_gc_on_ack(ts_sim *s, ts_range *r, const ts_msg *m);
/* After a DECISION at a participant: acknowledged once logged here. */
void ts_gc_ack_decision(ts_sim *s, ts_range *r, const ts_msg *m);
/* A commit request nobody here remembers, past its deadline: refused
 * (answered "unknown"); 1 if refused. */
int ts_gc_commit_refused(ts_sim *s, ts_range *r, const ts_msg *m);
/* A participant refused an answer: 1 if that is a late answer about a
 * collected record to a participant that already knows the outcome. */
int ts_gc_stale_answer(ts_sim *s, txn_id t);

/* txn_sim_client.c */
void ts_client_init(ts_sim *s, ts_client *c, int id, int bank);
void ts_client_free(ts_client *c);
void ts_client_on_event(ts_sim *s, ts_client *c);
void ts_client_on_timeout(ts_sim *s, ts_client *c, uint64_t opseq);
void ts_client_on_msg(ts_sim *s, ts_client *c, const ts_msg *m);
ts_txn *ts_txn_get(ts_sim *s, txn_id id);
/* The final snapshot of every account, after the calm phase. */
int ts_final_read(ts_sim *s);

#endif
