/* Fault injection and reconnect backoff: the pure decision parts.
 *
 * A node's rpc_faults holds rules per destination peer (or for every peer)
 * and a latency matrix by region; rpc_faults_out() decides, for one outgoing
 * message, whether it is dropped, duplicated, delayed or held back so later
 * messages overtake it (reordered). All randomness comes from a seeded PRNG
 * (splitmix64) held in the struct, so a run is reproducible from its seed and
 * a test can replay the exact decisions. No clocks, no I/O: the connection
 * code applies the verdict.
 *
 * Text form (configuration, admin message "rpc.faults", docs/rpc.md):
 *   clause (';' clause)*
 *   clause  = rule | "latency=" REGION ":" REGION ":" DURATION   (both ways)
 *   rule    = item (',' item)*, items: peer=N|* drop=P dup=P reorder=P
 *             hold=DUR delay=DUR jitter=DUR partition=out|in|both
 * e.g. "peer=2,drop=0.1,delay=5ms,jitter=1ms;latency=us-east:eu-west:40ms". */
#ifndef MERIDIAN_RPC_FAULT_H
#define MERIDIAN_RPC_FAULT_H

#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rpc_rng {
    uint64_t s;
} rpc_rng;

void rpc_rng_seed(rpc_rng *r, uint64_t seed);
uint64_t rpc_rng_next(rpc_rng *r);
double rpc_rng_double(rpc_rng *r); /* uniform in [0, 1) */

/* Exponential backoff with jitter: attempt k waits base_k = min(max,
 * initial * 2^k), jittered to [base_k/2, base_k) by a value in [0, 1) the
 * caller supplies (from an injectable source), so two nodes that lost each
 * other do not redial in lockstep. */
typedef struct rpc_backoff {
    int64_t initial_ns, max_ns;
    unsigned attempt;
} rpc_backoff;

void rpc_backoff_init(rpc_backoff *b, int64_t initial_ns, int64_t max_ns);
int64_t rpc_backoff_next(rpc_backoff *b, double jitter01);
void rpc_backoff_reset(rpc_backoff *b);

#define RPC_FAULT_ANY_PEER          UINT64_MAX
#define RPC_REGION_MAX              32
#define RPC_REORDER_HOLD_DEFAULT_NS (10 * 1000000LL)

typedef struct rpc_fault_rule {
    uint64_t peer;             /* node id, or RPC_FAULT_ANY_PEER */
    double drop, dup, reorder; /* probabilities in [0, 1] */
    int64_t delay_ns, jitter_ns, hold_ns;
    int block_out, block_in; /* partition: drop everything sent / received */
} rpc_fault_rule;

typedef struct rpc_fault_latency {
    char from[RPC_REGION_MAX], to[RPC_REGION_MAX];
    int64_t ns; /* one-way */
} rpc_fault_latency;

typedef struct rpc_faults {
    rpc_fault_rule *rules;
    size_t nrules;
    rpc_fault_latency *lat;
    size_t nlat;
    rpc_rng rng;
} rpc_faults;

typedef struct rpc_fault_verdict {
    int partitioned; /* dropped by a partition */
    int dropped;     /* dropped by the drop probability */
    int copies;      /* 1, or 2 when duplicated; 0 when dropped */
    int reordered;   /* held back by hold_ns so later messages overtake it */
    int64_t delay_ns;
} rpc_fault_verdict;

void rpc_faults_init(rpc_faults *f, uint64_t seed);
void rpc_faults_free(rpc_faults *f);
void rpc_faults_clear(rpc_faults *f); /* rules and latencies; keeps the PRNG */
/* Adds or replaces the rule for rule->peer. Validates probabilities. */
int rpc_faults_set_rule(rpc_faults *f, const rpc_fault_rule *rule, merr *e);
/* Sets the one-way latency from region `from` to `to`. */
int rpc_faults_set_latency(rpc_faults *f, const char *from, const char *to, int64_t ns, merr *e);
/* Parses the text form and applies it clause by clause; on error nothing of
 * that clause is applied and e says which clause failed. */
int rpc_faults_parse(rpc_faults *f, const char *spec, merr *e);
/* Any rule or latency configured? Lets the hot path skip everything. */
int rpc_faults_active(const rpc_faults *f);
/* Decides the fate of one message to `peer`. Regions may be "" (unknown). */
void rpc_faults_out(rpc_faults *f, uint64_t peer, const char *my_region, const char *peer_region,
                    rpc_fault_verdict *v);
/* Is every message received from `peer` to be dropped? */
int rpc_faults_in_blocked(const rpc_faults *f, uint64_t peer);
/* The rule that applies to peer (its own, else the wildcard), or NULL. */
const rpc_fault_rule *rpc_faults_rule(const rpc_faults *f, uint64_t peer);

/* Extracts R from a locality "region=R,zone=Z" ("" when absent). */
void rpc_locality_region(const char *locality, char *out, size_t cap);

#endif
