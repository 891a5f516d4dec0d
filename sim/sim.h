/* meridian_sim: the pieces of a deterministic simulation (DESIGN.md §3; model:
 * FoundationDB's Sim2, raft's raft_fixture). One thread, simulated time that
 * jumps to the next event, and every random choice drawn from one seeded PRNG,
 * so a seed replays the same run bit for bit.
 *
 *  - sim_rng:   xoshiro256** seeded by splitmix64.
 *  - sim_queue: events ordered by (time, insertion sequence) — ties break by
 *               insertion order, never by pointer values.
 *  - sim_net:   message delivery with latency (so reordering), drops,
 *               duplicates, symmetric and one-way partitions.
 *  - sim_disk:  a durable key/value image plus unsynced writes; sync completes
 *               after a latency; a crash loses every write not yet synced.
 *  - sim_clock: a node clock whose error stays inside ±eps (drift and skew),
 *               and the TrueTime interval derived from it.
 *  - sim_trace: a ring of the last events (printed on failure) and a running
 *               hash of all of them (to check that a seed replays). */
#ifndef MERIDIAN_SIM_SIM_H
#define MERIDIAN_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>

/* ---- PRNG ---- */
typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
uint64_t sim_rng_below(sim_rng *r, uint64_t n);            /* [0, n); n > 0 */
int64_t sim_rng_range(sim_rng *r, int64_t lo, int64_t hi); /* [lo, hi] */
int sim_rng_chance(sim_rng *r, double p);                  /* 1 with probability p */

/* ---- event queue ---- */
typedef struct sim_event {
    int64_t at;
    uint64_t seq;
    int kind;
    int node;
    uint64_t a, b;
    void *ptr; /* owned by the event; freed by the handler or sim_queue_free */
} sim_event;

typedef struct sim_queue {
    sim_event *heap;
    size_t n, cap;
    uint64_t seq;
} sim_queue;

void sim_queue_init(sim_queue *q);
void sim_queue_free(sim_queue *q); /* frees remaining events' ptr with free() */
int sim_queue_push(sim_queue *q, int64_t at, int kind, int node, uint64_t a, uint64_t b, void *ptr);
int sim_queue_pop(sim_queue *q, sim_event *out); /* 1 popped, 0 empty */

/* ---- network ---- */
#define SIM_MAX_NODES 16

typedef struct sim_net {
    int nodes;
    sim_rng *rng;
    sim_queue *q;
    int kind; /* queue event kind for deliveries */
    int64_t lat_min, lat_max;
    double drop, dup;
    uint8_t cut[SIM_MAX_NODES][SIM_MAX_NODES]; /* cut[a][b]: a -> b is down */
    uint64_t sent, delivered, dropped;
} sim_net;

/* A delivery event: node = receiver, a = sender, ptr = bytes, b = length. */
void sim_net_init(sim_net *n, int nodes, sim_rng *rng, sim_queue *q, int kind);
/* Copies the bytes. Returns 0 or MERR_NOMEM. */
int sim_net_send(sim_net *n, int64_t now, int from, int to, const void *p, size_t len);
/* Is a -> b up (checked again at delivery: in-flight messages die in a cut)? */
int sim_net_up(const sim_net *n, int from, int to);
void sim_net_cut(sim_net *n, int from, int to, int down); /* one way */
void sim_net_isolate(sim_net *n, int node, int down);     /* both ways, all peers */
void sim_net_heal(sim_net *n);

/* ---- disk ---- */
typedef struct sim_rec {
    uint64_t k1, k2;
    uint32_t len;
    uint8_t *data; /* NULL + del=1 for a delete-range op */
    uint64_t k2hi;
    int del;
    uint64_t batch; /* pending ops: 0 = not yet part of a sync */
} sim_rec;

typedef struct sim_disk {
    sim_rec *dur; /* durable image, sorted by (k1, k2) */
    size_t ndur, capdur;
    sim_rec *pend; /* writes not yet durable, in order */
    size_t npend, cappend;
    uint64_t batch;
    int64_t sync_min, sync_max; /* sync latency */
    uint64_t syncs, bytes;
} sim_disk;

void sim_disk_init(sim_disk *d, int64_t sync_min, int64_t sync_max);
void sim_disk_free(sim_disk *d);
int sim_disk_put(sim_disk *d, uint64_t k1, uint64_t k2, const void *p, uint32_t len);
int sim_disk_del(sim_disk *d, uint64_t k1, uint64_t k2lo, uint64_t k2hi); /* inclusive */
/* Starts a sync of every write so far: returns its batch id and sets *done_at. */
uint64_t sim_disk_sync(sim_disk *d, sim_rng *r, int64_t now, int64_t *done_at);
/* The sync `batch` finished: its writes become durable. */
void sim_disk_sync_done(sim_disk *d, uint64_t batch);
/* Power loss: every write not durable is gone. */
void sim_disk_crash(sim_disk *d);
/* Durable lookups. */
const sim_rec *sim_disk_get(const sim_disk *d, uint64_t k1, uint64_t k2);
/* Index of the first durable record with key >= (k1, k2). */
size_t sim_disk_lower(const sim_disk *d, uint64_t k1, uint64_t k2);

/* ---- clock ---- */
typedef struct sim_clock {
    int64_t eps;  /* the bound the node believes in */
    int64_t off0; /* offset (local - true) at t0 */
    int64_t t0;
    int64_t drift_ppm;
} sim_clock;

void sim_clock_init(sim_clock *c, int64_t eps, sim_rng *r, int64_t now);
int64_t sim_clock_offset(const sim_clock *c, int64_t now);
int64_t sim_clock_local(const sim_clock *c, int64_t now);
/* [local - eps, local + eps], which always contains `now`. */
void sim_clock_tt(const sim_clock *c, int64_t now, int64_t *earliest, int64_t *latest);
/* New drift (and sometimes a step of the offset), still inside ±eps. */
void sim_clock_perturb(sim_clock *c, sim_rng *r, int64_t now, int64_t max_drift_ppm);

/* ---- trace ---- */
#define SIM_TRACE_KEEP 64
#define SIM_TRACE_LINE 200

typedef struct sim_trace {
    char lines[SIM_TRACE_KEEP][SIM_TRACE_LINE];
    uint64_t n;
    uint64_t hash; /* FNV-1a over every line */
    int echo;      /* print every line to stdout (--verbose) */
} sim_trace;

void sim_trace_init(sim_trace *t, int echo);
void sim_trace_add(sim_trace *t, int64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints the last k lines to stderr. */
void sim_trace_dump(const sim_trace *t, int k);

/* Parses "A-B" or "N" into [lo, hi]; returns 0 or MERR_INVALID. */
int sim_parse_range(const char *s, uint64_t *lo, uint64_t *hi);

#endif
