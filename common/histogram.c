/* Log-linear latency histogram (see histogram.h). */
#include "common/histogram.h"

#include <stdio.h>
#include <string.h>

#define SUB   (1u << MHIST_SUB_BITS)
#define LIMIT (1ULL << MHIST_MAX_BITS)

/* Bucket of v: v itself below SUB, else 128 linear buckets per octave. */
static size_t bucket_of(uint64_t v)
{
    if (v >= LIMIT) return MHIST_NBUCKETS - 1;
    if (v < SUB) return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - MHIST_SUB_BITS;
    return (size_t)(shift + 1) * SUB + (size_t)((v >> shift) - SUB);
}

/* Lowest value of bucket b and its width. */
static void bucket_range(size_t b, uint64_t *lo, uint64_t *width)
{
    if (b < SUB) {
        *lo = b;
        *width = 1;
        return;
    }
    unsigned shift = (unsigned)(b / SUB) - 1;
    *lo = (uint64_t)(SUB + b % SUB) << shift;
    *width = 1ULL << shift;
}

void mhist_init(mhist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void mhist_reset(mhist *h)
{
    mhist_init(h);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t s;
    return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

void mhist_record_n(mhist *h, uint64_t v, uint64_t n)
{
    if (!n) return;
    h->buckets[bucket_of(v)] += n;
    h->count += n;
    if (v >= LIMIT) h->overflow += n;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    uint64_t add;
    h->sum = __builtin_mul_overflow(v, n, &add) ? UINT64_MAX : sat_add(h->sum, add);
}

void mhist_record(mhist *h, uint64_t v)
{
    mhist_record_n(h, v, 1);
}

void mhist_merge(mhist *dst, const mhist *src)
{
    if (!src->count) return;
    for (size_t b = 0; b < MHIST_NBUCKETS; b++) dst->buckets[b] += src->buckets[b];
    dst->count += src->count;
    dst->overflow += src->overflow;
    dst->sum = sat_add(dst->sum, src->sum);
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t mhist_count(const mhist *h)
{
    return h->count;
}

uint64_t mhist_min(const mhist *h)
{
    return h->count ? h->min : 0;
}

uint64_t mhist_max(const mhist *h)
{
    return h->max;
}

double mhist_mean(const mhist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0;
}

uint64_t mhist_quantile(const mhist *h, double q)
{
    if (!h->count) return 0;
    if (!(q > 0)) return h->min; /* also NaN */
    if (q >= 1) return h->max;
    /* nearest rank: the smallest r with r >= q * count, at least 1 */
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want) rank++;
    if (rank < 1) rank = 1;
    if (rank > h->count) rank = h->count;
    uint64_t seen = 0;
    for (size_t b = 0; b < MHIST_NBUCKETS; b++) {
        seen += h->buckets[b];
        if (seen < rank) continue;
        if (b == MHIST_NBUCKETS - 1 && h->overflow) return h->max;
        uint64_t lo, width;
        bucket_range(b, &lo, &width);
        uint64_t v = lo + width / 2;
        if (v < h->min) v = h->min;
        if (v > h->max) v = h->max;
        return v;
    }
    return h->max; /* unreachable: the buckets sum to count */
}

int mhist_fmt_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 1000) return snprintf(buf, len, "%lluns", (unsigned long long)ns);
    if (ns < 1000000) return snprintf(buf, len, "%.3gus", (double)ns / 1e3);
    if (ns < 1000000000) return snprintf(buf, len, "%.3gms", (double)ns / 1e6);
    return snprintf(buf, len, "%.4gs", (double)ns / 1e9);
}

int mhist_summary(const mhist *h, char *buf, size_t len)
{
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    static const char *names[] = {"p50", "p90", "p99", "p999"};
    char v[7][32];
    mhist_fmt_ns(mhist_min(h), v[0], sizeof(v[0]));
    mhist_fmt_ns((uint64_t)(mhist_mean(h) + 0.5), v[1], sizeof(v[1]));
    for (int k = 0; k < 4; k++) mhist_fmt_ns(mhist_quantile(h, qs[k]), v[2 + k], sizeof(v[0]));
    mhist_fmt_ns(mhist_max(h), v[6], sizeof(v[6]));
    return snprintf(buf, len, "n=%llu min=%s mean=%s %s=%s %s=%s %s=%s %s=%s max=%s",
                    (unsigned long long)h->count, v[0], v[1], names[0], v[2], names[1], v[3],
                    names[2], v[4], names[3], v[5], v[6]);
}
