/* The checkers of the Jepsen-style suite: each reads a history (jp_history.h)
 * and says whether it is consistent with what Meridian promises.
 *
 *  register     linearizability of single registers (read, write, cas), per
 *               key: Wing & Gong's search with Lowe's memoization;
 *  list-append  Elle (Kingsbury & Alvaro): version orders from reads of
 *               lists, a ww/wr/rw/real-time dependency graph, cycles
 *               classified as Adya's G0, G1c, G-single, G2, plus G1a, G1b,
 *               lost appends and real-time (strict serializability) cycles;
 *  rw-register  the same graph for read/write registers, with version
 *               orders inferred only partly;
 *  bank         snapshot reads see the fixed total, no negative balances;
 *  set          every acknowledged insert is in the final read.
 *
 * Each checker fills a jp_report: a verdict, the anomaly classes it found
 * (with counts) and a human explanation naming the operations by line.
 * A checker returns a negative MERR_* only when it cannot judge the history
 * (out of memory, a history that breaks the workload's preconditions such as
 * duplicate appended values); anomalies are not errors. */
#ifndef MERIDIAN_TESTS_JEPSEN_JP_CHECK_H
#define MERIDIAN_TESTS_JEPSEN_JP_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "tests/jepsen/jp_history.h"

/* Exit statuses of jp_check follow the verdict. */
typedef enum jp_verdict { JP_VALID = 0, JP_INVALID = 1, JP_UNKNOWN = 2 } jp_verdict;

typedef enum jp_anomaly {
    JP_A_NONLINEAR,     /* register: no linearization exists */
    JP_A_G0,            /* write cycle (ww edges only) */
    JP_A_G1A,           /* aborted read */
    JP_A_G1B,           /* intermediate read */
    JP_A_G1C,           /* circular information flow (ww + wr, >=1 wr) */
    JP_A_GSINGLE,       /* exactly one anti-dependency (rw) edge */
    JP_A_G2,            /* two or more rw edges */
    JP_A_REALTIME,      /* a cycle that needs a real-time edge */
    JP_A_SESSION,       /* a cycle that needs a process-order edge */
    JP_A_INCOMPATIBLE,  /* two reads of a key that are not prefixes of one another */
    JP_A_DUPLICATE,     /* an element read twice in one list / set read */
    JP_A_LOST,          /* acknowledged write absent from a later read */
    JP_A_GARBAGE,       /* a read value nobody wrote */
    JP_A_INTERNAL,      /* a txn's read disagrees with its own earlier ops */
    JP_A_UNEXPECTED,    /* set: an element never (successfully) inserted */
    JP_A_WRONG_TOTAL,   /* bank: a read whose sum is not the total */
    JP_A_NEGATIVE,      /* bank: a negative balance */
    JP_A_RECOVERED,     /* set: an indeterminate insert that did happen (fine) */
    JP_A_INDETERMINATE, /* set: an ok insert concurrent with the final read (fine) */
    JP_A__COUNT
} jp_anomaly;

typedef struct jp_report {
    jp_verdict verdict;
    size_t count[JP_A__COUNT]; /* how many of each class were found */
    mbuf text;                 /* the explanation, one finding a line */
} jp_report;

void jp_report_init(jp_report *r);
void jp_report_free(jp_report *r);
const char *jp_anomaly_name(jp_anomaly a);
const char *jp_verdict_name(jp_verdict v);
/* Records an anomaly: counts it, appends "<class>: <text>\n" and (unless the
 * class is informational: RECOVERED, INDETERMINATE) makes the verdict INVALID. */
void jp_report_add(jp_report *r, jp_anomaly a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Makes the verdict UNKNOWN (unless already INVALID) and explains why. */
void jp_report_unknown(jp_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 if the class was found at least once. */
int jp_report_has(const jp_report *r, jp_anomaly a);

/* ---- register ---- */

typedef struct jp_register_opts {
    /* Search bounds: beyond them the key's verdict is UNKNOWN. 0 = default. */
    uint64_t max_steps;     /* default 5,000,000 per key */
    size_t max_cache_bytes; /* default 512 MiB per key */
    size_t max_ops_per_key; /* default 100,000 */
} jp_register_opts;

/* Every key's read/write/cas operations must be linearizable against a
 * register starting at nil. Fail ops are ignored; info ops and pending
 * invocations may take effect any time after their invocation, or never. */
int jp_check_register(const jp_history *h, const jp_register_opts *o, jp_report *r, merr *e);

/* ---- list-append (Elle) ---- */

typedef struct jp_elle_opts {
    int no_realtime;         /* skip real-time edges: check serializability only */
    int process_order;       /* add process-order edges (strong session
                                serializability; implied by real time) */
    size_t max_cycle_starts; /* edges tried per SCC and class; default 256 */
} jp_elle_opts;

int jp_check_list_append(const jp_history *h, const jp_elle_opts *o, jp_report *r, merr *e);

/* ---- rw-register (Elle) ---- */

/* Txns of [r K V] / [w K V], written values unique per key. Version orders
 * are inferred only partly (nil first, writes follow reads, a txn's own
 * successive writes), so fewer cycles are visible than with list-append;
 * what is reported is certain. Same classes, plus G1a, G1b, garbage and
 * internal. */
int jp_check_rw_register(const jp_history *h, const jp_elle_opts *o, jp_report *r, merr *e);

/* ---- bank ---- */

typedef struct jp_bank_opts {
    int has_total; /* else the total is taken from the earliest ok read */
    int64_t total;
    int negative_ok; /* the workload allows negative balances */
} jp_bank_opts;

int jp_check_bank(const jp_history *h, const jp_bank_opts *o, jp_report *r, merr *e);

/* ---- set ---- */

/* The final read is the ok `members` read invoked last. Lost: ok inserts that
 * completed before it was invoked and are absent. Unexpected: members never
 * inserted, or whose insert failed. Recovered: info inserts present. */
int jp_check_set(const jp_history *h, jp_report *r, merr *e);

#endif
