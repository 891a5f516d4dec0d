/* Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014;
 * DESIGN.md §4, docs/time.md).
 *
 * A timestamp is 64 bits: physical microseconds since the Unix epoch in the
 * upper 52 bits, a logical counter in the lower 12.
 *
 *   63                                            12 11          0
 *   +-----------------------------------------------+-------------+
 *   |   physical time, µs since 1970 (52 bits)      | logical (12)|
 *   +-----------------------------------------------+-------------+
 *
 * 52 bits of µs last until the year 2112; microseconds match what SQLite and
 * the log format print, and 4096 timestamps per µs is far above any commit
 * rate, so when the counter does overflow it simply carries into the physical
 * part (the clock runs 1 µs ahead of the wall, which is harmless). Because the
 * packing is plain integer order, comparison is integer comparison and the
 * big-endian encoding sorts under memcmp in the same order.
 *
 * Rules: hlc_now() is strictly increasing on a node, also across a restart: a
 * high-water mark (a timestamp above everything handed out) is persisted with
 * fsync through hlc_store_ops before any timestamp reaches it, and a restarted
 * clock starts at the stored mark. hlc_update() advances the clock past a
 * received timestamp, unless that timestamp is beyond our clock's latest bound
 * plus max_offset — then it is rejected with MERR_CLOCK, so a single bad peer
 * cannot drag every clock in the cluster forward without limit. */
#ifndef MERIDIAN_TIMESVC_HLC_H
#define MERIDIAN_TIMESVC_HLC_H

#include "common/err.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t hlc_ts;

#define HLC_LOGICAL_BITS 12
#define HLC_LOGICAL_MAX  ((1u << HLC_LOGICAL_BITS) - 1)
#define HLC_PHYS_MAX_US  ((UINT64_C(1) << (64 - HLC_LOGICAL_BITS)) - 1)
#define HLC_ENCODED_LEN  8
#define HLC_FORMAT_MAX   40 /* "2026-11-26T04:31:03.123456Z+4095" and a NUL */

static inline hlc_ts hlc_make(uint64_t phys_us, uint32_t logical)
{
    return (phys_us << HLC_LOGICAL_BITS) | (logical & HLC_LOGICAL_MAX);
}
static inline uint64_t hlc_physical_us(hlc_ts t)
{
    return t >> HLC_LOGICAL_BITS;
}
static inline uint32_t hlc_logical(hlc_ts t)
{
    return (uint32_t)(t & HLC_LOGICAL_MAX);
}
/* Nanoseconds since the epoch of the physical part (what commit-wait waits on). */
static inline int64_t hlc_physical_ns(hlc_ts t)
{
    return (int64_t)hlc_physical_us(t) * 1000;
}
static inline int hlc_cmp(hlc_ts a, hlc_ts b)
{
    return a < b ? -1 : a > b;
}

/* Big-endian, so memcmp order == numeric order. */
void hlc_encode(hlc_ts t, uint8_t out[HLC_ENCODED_LEN]);
hlc_ts hlc_decode(const uint8_t in[HLC_ENCODED_LEN]);
/* Decodes exactly 8 bytes; MERR_CORRUPT for any other length. */
int hlc_decode_buf(const void *p, size_t n, hlc_ts *out, merr *e);

/* "2026-11-26T04:31:03.123456Z+5" (UTC; "+N" is the logical counter). Returns
 * the length, or MERR_TOOBIG if cap is too small. */
int hlc_format(hlc_ts t, char *buf, size_t cap);
/* Parses what hlc_format prints; "+N" may be left out (logical 0). Strict:
 * anything else is MERR_INVALID with a message. */
int hlc_parse(const char *s, hlc_ts *out, merr *e);

/* Where the high-water mark lives. load returns MERR_NOTFOUND when nothing
 * was ever stored (a brand new node); save must be durable (fsync) when it
 * returns 0. */
typedef struct hlc_store_ops {
    int (*load)(void *ctx, hlc_ts *hw, merr *e);
    int (*save)(void *ctx, hlc_ts hw, merr *e);
    void *ctx;
} hlc_store_ops;

#define HLC_DEFAULT_MAX_OFFSET_NS (500LL * 1000 * 1000)
#define HLC_DEFAULT_WINDOW_NS     (2LL * 1000 * 1000 * 1000)

typedef struct hlc_config {
    int64_t max_offset_ns; /* how far past our latest a received ts may be */
    /* How far ahead of the clock each stored high-water mark is: one fsync
     * per window while timestamps are handed out; after a crash the clock
     * restarts up to one window ahead of the wall (hlc_restart_wait_ns). */
    int64_t window_ns;
} hlc_config;

typedef struct hlc {
    hlc_config cfg;
    hlc_store_ops store; /* save NULL: no persistence (tests, tools) */
    hlc_ts last;         /* largest timestamp handed out or received */
    hlc_ts durable_hw;   /* stored: every timestamp handed out is below it */
    hlc_ts restored_hw;  /* the mark found at start (0 if none) */
    uint64_t sync_saves; /* marks stored inside hlc_now/hlc_update (fsync on the caller) */
} hlc;

void hlc_config_default(hlc_config *cfg);
/* Loads the high-water mark if there is a store. A corrupt mark is an error
 * (MERR_CORRUPT), never silently zero: that would break monotonicity. */
int hlc_init(hlc *h, const hlc_config *cfg, const hlc_store_ops *store, merr *e);
/* A new timestamp, strictly above every earlier one; phys_ns is the wall
 * clock reading (tt_interval.now_ns). May persist a new mark (one fsync). */
int hlc_now(hlc *h, int64_t phys_ns, hlc_ts *out, merr *e);
/* Observes a received timestamp: afterwards hlc_now() returns larger ones.
 * latest_ns is our clock's upper bound (tt_interval.latest_ns). out may be
 * NULL; it gets the clock's new value. */
int hlc_update(hlc *h, hlc_ts received, int64_t latest_ns, hlc_ts *out, merr *e);
/* Observes the timestamp of an entry this node applied from the replicated
 * log. Unlike hlc_update there is no max_offset check: the entry is chosen
 * whatever we think of its clock, and a replica that later leads the range
 * must stamp above it or MVCC would order newer writes under older ones.
 * (A clock far off is caught by the offset check, not here.) */
int hlc_observe(hlc *h, hlc_ts applied, merr *e);
/* How long the wall clock still needs to pass the previous run's mark (0 once
 * it has): a restarted node waits this out before it takes leases, so that
 * its timestamps are not ahead of real time. */
int64_t hlc_restart_wait_ns(const hlc *h, int64_t phys_ns);

/* Off-loop renewal (hlc_keeper in hlc_uv.h uses these): the mark to store
 * next so that hlc_now() never has to fsync itself — once the clock is within
 * half a window of the durable mark — or 0 if none is due. */
hlc_ts hlc_renew_target(const hlc *h, int64_t phys_ns);
/* A mark was stored durably (off the caller's thread); never lowers it. */
void hlc_renewed(hlc *h, hlc_ts hw);

/* A high-water mark file: 16 bytes, "MHLC", the mark (big-endian), CRC-32C.
 * Saved as write tmp + fsync + rename + fsync(dir), so a crash leaves the old
 * or the new mark, never a torn one. Saves may come from several threads (the
 * keeper's worker and a fallback on the loop); they are serialised, and a mark
 * lower than one already stored is never written over it. */
typedef struct hlc_file_store {
    char path[512];
    pthread_mutex_t mu;
    hlc_ts stored; /* the highest mark stored by this process */
    uint64_t saves;
} hlc_file_store;

int hlc_file_store_init(hlc_file_store *fs, const char *path, hlc_store_ops *ops, merr *e);
void hlc_file_store_destroy(hlc_file_store *fs);

#endif
