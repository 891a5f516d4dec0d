/* Test fixture for the placement schedulers: builds synthetic clusters and
 * runs the schedule → apply loop with invariant checks on every op. */
#ifndef MERIDIAN_TESTS_PD_FIXTURE_H
#define MERIDIAN_TESTS_PD_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>

#include "placement/pd_sched.h"

#define FX_S(x) ((int64_t)(x)*1000000000LL)
#define FX_MIB  (1024ULL * 1024ULL)
#define FX_GIB  (1024ULL * FX_MIB)

typedef struct fx {
    pd_cluster c;
    pd_settings s;
} fx;

/* A replica move or removal seen by fx_converge, to detect reversals. */
typedef struct fx_event {
    pd_op_kind kind;
    pd_range_id range;
    pd_node_id node;
    pd_node_id from; /* ADD_LEARNER: the replica it replaces */
} fx_event;

typedef struct fx_trace {
    fx_event *v;
    size_t n, cap;
    size_t ops;      /* ops applied in all */
    int reversals;   /* a replica re-added where one was removed, or vice versa */
    int readds;      /* a replica re-added on a node it was removed from */
    int leader_back; /* a lease handed back to a node it was taken from */
    int pair_back;   /* a move t → s after an earlier move s → t (any ranges) */
    int undo;        /* the exact reverse of an earlier move of the same range */
} fx_trace;

/* now = 1000 s, default settings. */
void fx_init(fx *f);
void fx_free(fx *f);
/* A live node with 1 TiB of capacity; ids are 1, 2, 3... */
pd_node_id fx_node(fx *f, const char *region, const char *zone);
/* Key "k%06d" of i, or the empty key when i < 0. */
void fx_key(pd_key *k, char *buf, int i);
/* A range [k(a), k(b)) (a or b < 0: open end) with the given voters; the
 * first voter leads. Returns its id. */
pd_range_id fx_range(fx *f, int a, int b, const pd_node_id *voters, int n, uint64_t size);
/* n ranges covering the whole key space, replica i of range j on node
 * (j + i * stride) % nodes — with nodes listed zone by zone, stride
 * n_nodes/rf gives zone-diverse placements. */
void fx_ranges(fx *f, int n, int rf, int stride, uint64_t size);
/* Moves time forward; nodes that were heartbeating keep heartbeating. */
void fx_advance(fx *f, int64_t ns);
/* Marks a node dead (silent for the dead timeout). */
void fx_kill(fx *f, pd_node_id id);
/* Replica and leader counts from the directory. */
int fx_replicas_on(const fx *f, pd_node_id id);
int fx_leaders_on(const fx *f, pd_node_id id);
/* Distinct zones among the replicas of a range. */
int fx_zones(const fx *f, const pd_range *r);
int fx_regions(const fx *f, const pd_range *r);

/* Runs pd_schedule, asserting success and the per-run invariants. */
void fx_schedule(fx *f, pd_ops *ops);
/* Asserts what must hold for any op list on this snapshot: one op per range,
 * no op on a range with one in flight, learners only on new nodes, never the
 * last voter removed, splits inside their range, at most max_moves moves. */
void fx_check_ops(const fx *f, const pd_ops *ops);
/* Applies every op (asserting each applies). */
void fx_apply(fx *f, const pd_ops *ops, fx_trace *t);
/* schedule → apply until a run proposes nothing; returns the number of runs
 * that proposed something (fails the test past max_runs). */
int fx_converge(fx *f, int max_runs, fx_trace *t);
void fx_trace_free(fx_trace *t);
/* How many ops of a kind (and reason, or -1 for any) a list holds. */
int fx_count(const pd_ops *ops, pd_op_kind kind, int reason);

#endif
