/* Load-median sampler (pd_loadkey.h). */
#include "placement/pd_loadkey.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

/* splitmix64: a tiny seeded generator, so the sampler stays pure. */
static uint64_t next_rand(pd_loadkey *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void pd_loadkey_init(pd_loadkey *s, uint64_t seed)
{
    s->rng = seed;
    pd_loadkey_roll(s);
}

void pd_loadkey_roll(pd_loadkey *s)
{
    s->seen = 0;
    s->n = 0;
}

static void put(pd_loadkey *s, uint32_t i, const uint8_t *key, size_t len)
{
    if (len > PD_LOADKEY_KEY_MAX) len = PD_LOADKEY_KEY_MAX;
    memcpy(s->key[i], key, len);
    s->len[i] = (uint16_t)len;
    s->at[i] = s->seen;
}

void pd_loadkey_add(pd_loadkey *s, const uint8_t *key, size_t len)
{
    if (!len) return;
    s->seen++;
    if (s->n < PD_LOADKEY_SAMPLES) {
        put(s, s->n++, key, len);
        return;
    }
    /* Algorithm R: the seen-th request replaces a sample with probability
     * SAMPLES/seen, which keeps every request equally likely to be held. */
    uint64_t j = next_rand(s) % s->seen;
    if (j < PD_LOADKEY_SAMPLES) put(s, (uint32_t)j, key, len);
}

static int cmp(const pd_loadkey *s, uint8_t a, uint8_t b)
{
    return mbytes_cmp(s->key[a], s->len[a], s->key[b], s->len[b]);
}

size_t pd_loadkey_median(const pd_loadkey *s, const uint8_t *start, size_t slen, const uint8_t *end,
                         size_t elen, uint8_t *out)
{
    uint8_t idx[PD_LOADKEY_SAMPLES];
    uint32_t m = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (mbytes_cmp(s->key[i], s->len[i], start, slen) < 0) continue;
        if (elen && mbytes_cmp(s->key[i], s->len[i], end, elen) >= 0) continue;
        /* Insertion sort: at most PD_LOADKEY_SAMPLES keys, once a heartbeat. */
        uint32_t j = m++;
        for (; j > 0 && cmp(s, idx[j - 1], (uint8_t)i) > 0; j--) idx[j] = idx[j - 1];
        idx[j] = (uint8_t)i;
    }
    if (m < PD_LOADKEY_MIN_SAMPLES) return 0;
    /* A split at sorted key i puts samples [0, i) left: only the first of a
     * run of equal keys is a candidate, and never the lowest (nothing would
     * go left), so a candidate is above the lowest sample, hence above start. */
    uint32_t best = 0, best_gap = m;
    for (uint32_t i = 1; i < m; i++) {
        if (cmp(s, idx[i - 1], idx[i]) == 0) continue;
        uint32_t gap = 2 * i > m ? 2 * i - m : m - 2 * i;
        if (gap < best_gap) best = i, best_gap = gap;
    }
    uint32_t small = best < m - best ? best : m - best;
    if (!best || 4 * small < m) return 0;
    /* The halves of the window must each send load both ways: a hot spot
     * that moves (sequential inserts) has its early requests left of the
     * median and its late ones right of it, and a split there relieves
     * nothing; the next window's load would all go to one side. */
    uint32_t n[2] = {0, 0}, left[2] = {0, 0};
    for (uint32_t i = 0; i < m; i++) {
        int late = s->at[idx[i]] > s->seen / 2;
        n[late]++;
        left[late] += i < best;
    }
    for (int h = 0; h < 2; h++) {
        uint32_t sm = left[h] < n[h] - left[h] ? left[h] : n[h] - left[h];
        if (8 * sm < n[h]) return 0;
    }
    memcpy(out, s->key[idx[best]], s->len[idx[best]]);
    return s->len[idx[best]];
}

size_t pd_loadkey_window(pd_loadkey **s, double qps, double sample_qps, uint64_t seed,
                         const uint8_t *start, size_t slen, const uint8_t *end, size_t elen,
                         uint8_t *out)
{
    if (!(sample_qps > 0) || qps < sample_qps) {
        free(*s);
        *s = NULL;
        return 0;
    }
    if (!*s) {
        if ((*s = malloc(sizeof(**s)))) pd_loadkey_init(*s, seed);
        return 0;
    }
    size_t n = pd_loadkey_median(*s, start, slen, end, elen, out);
    pd_loadkey_roll(*s);
    return n;
}
