/* Simulated correct systems that produce histories, and anomaly injectors,
 * so the checkers can be tested on many random histories: a history from a
 * correct system must be judged valid; the same history with one injected
 * anomaly must be judged invalid.
 *
 * The simulation is a single-threaded, seeded loop over client processes.
 * Each operation is invoked, later takes effect atomically at one instant
 * (its linearization point) against an in-memory serial system, later
 * completes — or fails without effect, or ends indeterminate (info) having
 * taken effect or not. Info retires the process id (as in Jepsen: a process
 * with an unknown outcome cannot go on). Appended, written and inserted
 * values are unique, which the injectors rely on. */
#ifndef MERIDIAN_TESTS_JEPSEN_JP_SIM_H
#define MERIDIAN_TESTS_JEPSEN_JP_SIM_H

#include <stdint.h>

#include "common/err.h"
#include "tests/jepsen/jp_history.h"

typedef struct jp_sim_opts {
    uint64_t seed;
    int processes; /* concurrent clients (default 5) */
    int ops;       /* operations invoked in all (default 100) */
    int keys;      /* registers, lists or accounts (default 3) */
    double p_info; /* chance an operation ends indeterminate (default 0) */
    double p_fail; /* chance an operation fails without effect (default 0) */
    int64_t total; /* bank: money in the system (default 100) */
} jp_sim_opts;

/* Each fills a fresh, indexed history (jp_history_free it). */
int jp_sim_register(const jp_sim_opts *o, jp_history *h, merr *e);
int jp_sim_list_append(const jp_sim_opts *o, jp_history *h, merr *e);
/* Txns of [r K V] / [w K V] with unique written values. */
int jp_sim_rw_register(const jp_sim_opts *o, jp_history *h, merr *e);
/* Transfers and snapshot reads; the last operation is a final read. */
int jp_sim_bank(const jp_sim_opts *o, jp_history *h, merr *e);
/* Inserts and reads; the last operation is a final read after all others. */
int jp_sim_set(const jp_sim_opts *o, jp_history *h, merr *e);

/* Injectors: change h in place so that it certainly breaks the model, and
 * return 0, or MERR_NOTFOUND if this history has no place for the anomaly.
 * `seed` picks among the candidates. */
/* register: an ok read returns a value overwritten by an op that had
 * completed before the read was invoked (or nil after a completed write). */
int jp_inject_stale_read(jp_history *h, uint64_t seed);
/* list-append: an acknowledged append vanishes from every read. */
int jp_inject_lost_append(jp_history *h, uint64_t seed);
/* list-append: a read misses an append acknowledged before it began. */
int jp_inject_stale_list_read(jp_history *h, uint64_t seed);
/* rw-register: a txn whose write was read by another is marked failed. */
int jp_inject_aborted_read(jp_history *h, uint64_t seed);
/* rw-register: a txn's first read of a key returns nil although a write to
 * it had been acknowledged before the txn began. */
int jp_inject_stale_nil_read(jp_history *h, uint64_t seed);
/* bank: one balance of one read is off by one. */
int jp_inject_bank_skew(jp_history *h, uint64_t seed);
/* set: an acknowledged insert vanishes from the final read. */
int jp_inject_lost_insert(jp_history *h, uint64_t seed);

#endif
