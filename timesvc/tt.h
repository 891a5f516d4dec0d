/* TrueTime-style interval clock (Spanner §3, DESIGN.md §4, docs/time.md).
 *
 * tt_now() answers "what time is it" with an interval [earliest, latest] that
 * contains true time, or an error when the node cannot vouch for one. The bound
 * is computed the way AWS ClockBound does from chronyd's tracking data:
 *
 *   ε = |offset| + root_dispersion + root_delay/2 + max_drift × age
 *
 * where age is the time since the source last updated its estimate. The
 * interval is centred on this node's (possibly skewed) system clock reading.
 *
 * Layout: tt_compute() is the pure core — readings and the latest source
 * sample come in as arguments, nothing is read inside. tt_clock wraps it with a
 * small table of clock readers (tt_clock_ops) so the simulator can give each
 * node its own skewed, drifting clock; sources (tt_chrony.h, or the simulator)
 * push samples into the clock with tt_clock_feed().
 *
 * Threading: a tt_clock belongs to one thread (the node's event loop), like
 * the rest of a node's state; other threads ask through the loop.
 *
 * Status (a state per reading, not sticky):
 *   SYNCHRONIZED  the source answers, says it is synchronised, updated lately
 *   FREE_RUNNING  the source stopped answering, lost sync or went stale; the
 *                 bound still holds because ε keeps growing with age
 *   STATIC        no time daemon: a configured fixed ε
 *   UNKNOWN       no sample yet, or ε > max_uncertainty: cannot vouch, and
 *                 tt_now() fails with MERR_CLOCK rather than guess. */
#ifndef MERIDIAN_TIMESVC_TT_H
#define MERIDIAN_TIMESVC_TT_H

#include "common/err.h"

#include <stdint.h>

typedef enum tt_status {
    TT_UNKNOWN = 0,
    TT_SYNCHRONIZED = 1,
    TT_FREE_RUNNING = 2,
    TT_STATIC = 3,
} tt_status;

typedef enum tt_source_kind {
    TT_SOURCE_CHRONY = 0, /* samples pushed by tt_chrony (or a simulator) */
    TT_SOURCE_STATIC = 1, /* fixed ε, no samples */
    TT_SOURCE_KERNEL = 2, /* samples pushed by tt_kernel (adjtimex) */
} tt_source_kind;

const char *tt_source_name(tt_source_kind k);

#define TT_DEFAULT_MAX_DRIFT_PPM      50.0
#define TT_DEFAULT_MAX_UNCERTAINTY_NS (500LL * 1000 * 1000)
#define TT_DEFAULT_STATIC_UNCERTAINTY (100LL * 1000 * 1000)
#define TT_DEFAULT_STALE_AFTER_NS     (2LL * 1000 * 1000 * 1000)

typedef struct tt_config {
    tt_source_kind source;
    double max_drift_ppm;          /* worst-case drift of the local oscillator */
    int64_t max_uncertainty_ns;    /* ε above this: cannot vouch (MERR_CLOCK) */
    int64_t static_uncertainty_ns; /* ε of the static source */
    /* The source counts as stale (FREE_RUNNING) once its estimate is older
     * than stale_after + 3 × its own update interval, or once it has not
     * answered for stale_after. */
    int64_t stale_after_ns;
    int64_t skew_ns; /* added to every reading: lets tests skew one node */
} tt_config;

/* Fills in the defaults above (chrony source, no skew). */
void tt_config_default(tt_config *cfg);
/* Checks a configuration; returns 0 or MERR_INVALID with a message. */
int tt_config_check(const tt_config *cfg, merr *e);

/* One reading of the time source (chronyd's tracking report). */
typedef struct tt_sample {
    int64_t ref_real_ns;        /* when the source last updated (Unix ns) */
    int64_t offset_ns;          /* system clock error as the source sees it */
    int64_t root_delay_ns;      /* round trip to the stratum-1 reference */
    int64_t root_dispersion_ns; /* accumulated error bound to the reference */
    int64_t update_interval_ns; /* the source's recent update interval */
    int synchronized;           /* the source says it is synchronised */
    int stratum;
    char ref_name[64]; /* "127.0.0.1", for display */
} tt_sample;

/* What a clock knows about its source: the last good sample, when it was
 * taken by our own clocks, and how the last query went. */
typedef struct tt_source_state {
    int have_good;              /* last_good is valid */
    tt_sample last_good;        /* latest sample that said "synchronised" */
    int64_t good_taken_real_ns; /* raw CLOCK_REALTIME when it was taken */
    int64_t good_taken_mono_ns; /* CLOCK_MONOTONIC when it was taken */
    int64_t last_ok_mono_ns;    /* last query that returned a sample */
    int last_synchronized;      /* that sample said synchronised */
    int have_answer;            /* some query ever answered */
    int last_failed;            /* the latest query failed */
    char last_error[160];       /* why, for display */
} tt_source_state;

/* The answer to "what time is it". */
typedef struct tt_interval {
    int64_t now_ns;      /* centre: this node's (skewed) clock reading */
    int64_t earliest_ns; /* now - ε: true time is not before this */
    int64_t latest_ns;   /* now + ε: true time is not after this */
    int64_t epsilon_ns;  /* half width */
    int64_t age_ns;      /* age of the source's estimate (0 for static) */
    tt_status status;
    tt_status source_status; /* status before the max-uncertainty check */
} tt_interval;

const char *tt_status_name(tt_status s);

/* The pure core. Computes the interval from raw readings of CLOCK_REALTIME
 * and CLOCK_MONOTONIC (without skew; the skew comes from cfg) and the source
 * state. Always fills *out (for display). Returns 0, or MERR_CLOCK with a
 * message when the node cannot vouch for the interval (out->status UNKNOWN). */
int tt_compute(const tt_config *cfg, const tt_source_state *src, int64_t real_ns, int64_t mono_ns,
               tt_interval *out, merr *e);

/* Records a successful query of the source (pure; readings as arguments). */
void tt_source_record(tt_source_state *src, const tt_sample *s, int64_t real_ns, int64_t mono_ns);
/* Records a failed query (the last good sample keeps ageing). */
void tt_source_record_failure(tt_source_state *src, const char *why);

/* ---- the clock: the core plus its side effects ---- */

/* Clock readers. The OS table reads CLOCK_REALTIME/CLOCK_MONOTONIC; the
 * simulator supplies its own per node. */
typedef struct tt_clock_ops {
    int64_t (*real_ns)(void *ctx);
    int64_t (*mono_ns)(void *ctx);
    void *ctx;
} tt_clock_ops;

extern const tt_clock_ops tt_os_clock_ops;

typedef struct tt_clock {
    tt_config cfg;
    tt_clock_ops ops;
    tt_source_state src;
} tt_clock;

/* ops NULL: the OS clocks. Returns 0 or MERR_INVALID (bad config). */
int tt_clock_init(tt_clock *c, const tt_config *cfg, const tt_clock_ops *ops, merr *e);
void tt_clock_feed(tt_clock *c, const tt_sample *s);
void tt_clock_feed_failure(tt_clock *c, const char *why);

/* The interval, or MERR_CLOCK when the node cannot vouch for it. */
int tt_now(tt_clock *c, tt_interval *out, merr *e);
/* Like tt_now() but never fails: for display and diagnostics only. */
void tt_read(tt_clock *c, tt_interval *out, merr *e);
/* 1 if t has certainly passed (earliest > t), 0 if not, MERR_CLOCK. */
int tt_after(tt_clock *c, int64_t t_ns, merr *e);
/* 1 if t has certainly not arrived (latest < t), 0 if not, MERR_CLOCK. */
int tt_before(tt_clock *c, int64_t t_ns, merr *e);

#endif
