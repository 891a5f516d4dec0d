/* Deterministic simulation basics: the PRNG, the event queue (a binary heap
 * ordered by time then insertion sequence), the trace and small parsers. */
#include "sim/sim.h"

#include "common/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

uint64_t sim_rng_below(sim_rng *r, uint64_t n)
{
    return n ? sim_rng_next(r) % n : 0;
}

int64_t sim_rng_range(sim_rng *r, int64_t lo, int64_t hi)
{
    if (hi <= lo) return lo;
    return lo + (int64_t)sim_rng_below(r, (uint64_t)(hi - lo) + 1);
}

int sim_rng_chance(sim_rng *r, double p)
{
    if (p <= 0) return 0;
    return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0) < p;
}

void sim_queue_init(sim_queue *q)
{
    memset(q, 0, sizeof(*q));
}

void sim_queue_free(sim_queue *q)
{
    for (size_t i = 0; i < q->n; i++) free(q->heap[i].ptr);
    free(q->heap);
    memset(q, 0, sizeof(*q));
}

static int before(const sim_event *a, const sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

int sim_queue_push(sim_queue *q, int64_t at, int kind, int node, uint64_t a, uint64_t b, void *ptr)
{
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 256;
        sim_event *nh = realloc(q->heap, nc * sizeof(*nh));
        if (!nh) return MERR_NOMEM;
        q->heap = nh;
        q->cap = nc;
    }
    sim_event e = {at, ++q->seq, kind, node, a, b, ptr};
    size_t i = q->n++;
    while (i > 0 && before(&e, &q->heap[(i - 1) / 2])) {
        q->heap[i] = q->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->heap[i] = e;
    return 0;
}

int sim_queue_pop(sim_queue *q, sim_event *out)
{
    if (!q->n) return 0;
    *out = q->heap[0];
    sim_event last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && before(&q->heap[c + 1], &q->heap[c])) c++;
        if (!before(&q->heap[c], &last)) break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->n) q->heap[i] = last;
    return 1;
}

void sim_trace_init(sim_trace *t, int echo)
{
    memset(t, 0, sizeof(*t));
    t->hash = 0xcbf29ce484222325ULL;
    t->echo = echo;
}

void sim_trace_add(sim_trace *t, int64_t now, const char *fmt, ...)
{
    char *line = t->lines[t->n % SIM_TRACE_KEEP];
    int k = snprintf(line, SIM_TRACE_LINE, "%10.6f ", (double)now / 1e9);
    va_list ap;
    va_start(ap, fmt);
    if (k > 0 && k < SIM_TRACE_LINE) vsnprintf(line + k, (size_t)(SIM_TRACE_LINE - k), fmt, ap);
    va_end(ap);
    for (const char *p = line; *p; p++) {
        t->hash ^= (uint8_t)*p;
        t->hash *= 0x100000001b3ULL;
    }
    t->n++;
    if (t->echo) printf("%s\n", line);
}

void sim_trace_dump(const sim_trace *t, int k)
{
    uint64_t from = t->n > (uint64_t)k ? t->n - (uint64_t)k : 0;
    if (t->n > SIM_TRACE_KEEP && from < t->n - SIM_TRACE_KEEP) from = t->n - SIM_TRACE_KEEP;
    for (uint64_t i = from; i < t->n; i++) fprintf(stderr, "  %s\n", t->lines[i % SIM_TRACE_KEEP]);
}

int sim_parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
    char *end;
    if (!s || !*s) return MERR_INVALID;
    unsigned long long a = strtoull(s, &end, 10), b;
    if (end == s) return MERR_INVALID;
    if (*end == '-') {
        const char *p = end + 1;
        b = strtoull(p, &end, 10);
        if (end == p || *end || b < a) return MERR_INVALID;
    } else if (*end) {
        return MERR_INVALID;
    } else {
        b = a;
    }
    *lo = a;
    *hi = b;
    return 0;
}
