/* Latency histogram: log-linear buckets (HDR-histogram-like), fixed size, no
 * allocation, mergeable.
 *
 * Values are unsigned integers, by convention nanoseconds. Values below 2^7
 * each get an exact bucket; above that every power-of-two range [2^k, 2^k+1)
 * is split into 128 equal buckets, so a bucket is at most 1/128 of its lower
 * edge wide. Quantiles report the middle of the bucket holding the value of
 * that rank (clamped to the recorded min and max), so a reported quantile is
 * within MHIST_REL_ERR (1/256, 0.39%) of the exact order statistic. Buckets
 * cover 0 .. 2^42-1 ns (about 73 minutes); larger values count in the last
 * bucket and are reported as the true max.
 *
 * Not thread-safe: keep one histogram per thread and mhist_merge() them. */
#ifndef MERIDIAN_COMMON_HISTOGRAM_H
#define MERIDIAN_COMMON_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define MHIST_SUB_BITS 7  /* 128 buckets per power of two */
#define MHIST_MAX_BITS 42 /* values up to 2^42 - 1 ns are bucketed exactly */
#define MHIST_NBUCKETS ((MHIST_MAX_BITS - MHIST_SUB_BITS + 1) << MHIST_SUB_BITS)
#define MHIST_REL_ERR  (1.0 / 256)

typedef struct mhist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t sum;      /* saturates at UINT64_MAX (584 years of nanoseconds) */
    uint64_t overflow; /* values >= 2^MHIST_MAX_BITS (also in the last bucket) */
    uint64_t buckets[MHIST_NBUCKETS];
} mhist;

void mhist_init(mhist *h);
void mhist_reset(mhist *h);
void mhist_record(mhist *h, uint64_t v);
/* Records v as n observations. */
void mhist_record_n(mhist *h, uint64_t v, uint64_t n);
/* dst += src: the result is the histogram of both sets of observations. */
void mhist_merge(mhist *dst, const mhist *src);

uint64_t mhist_count(const mhist *h);
uint64_t mhist_min(const mhist *h); /* 0 when empty */
uint64_t mhist_max(const mhist *h);
double mhist_mean(const mhist *h); /* 0 when empty */
/* The value of rank ceil(q * count) (nearest rank; q in [0, 1], clamped),
 * within MHIST_REL_ERR. 0 when empty. q = 0 gives min, q = 1 gives max. */
uint64_t mhist_quantile(const mhist *h, double q);

/* Writes one line, e.g.
 *   n=1000 min=1.2us mean=3.4us p50=3.1us p90=5.0us p99=9.9us p999=12.1us max=12.5us
 * Returns what snprintf returns. */
int mhist_summary(const mhist *h, char *buf, size_t len);
/* Formats a nanosecond value with a unit (ns, us, ms, s); returns snprintf's. */
int mhist_fmt_ns(uint64_t ns, char *buf, size_t len);

#endif
