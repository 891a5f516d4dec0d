/* Per-key exponential backoff of failed attempts (backoff.h). */
#include "common/backoff.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/mtime.h"

void mbackoff_init(mbackoff *b, int64_t base_ns, int64_t max_ns)
{
    memset(b, 0, sizeof(*b));
    b->base_ns = base_ns;
    b->max_ns = max_ns;
}

static mbackoff_entry *find(const mbackoff *b, const char *key)
{
    for (int i = 0; i < MBACKOFF_SLOTS; i++)
        if (b->e[i].failures && !strncmp(b->e[i].key, key, MBACKOFF_KEY_MAX - 1))
            return (mbackoff_entry *)&b->e[i];
    return NULL;
}

int64_t mbackoff_check(mbackoff *b, const char *key, int64_t now_ns)
{
    mbackoff_entry *e = find(b, key);
    if (!e || now_ns >= e->until_ns) return 0;
    b->refused_total++;
    return e->until_ns - now_ns;
}

int64_t mbackoff_fail(mbackoff *b, const char *key, int64_t now_ns)
{
    mbackoff_entry *e = find(b, key);
    b->failures_total++;
    if (!e) {
        /* A free slot, or the one whose wait ended longest ago. */
        e = &b->e[0];
        for (int i = 0; i < MBACKOFF_SLOTS; i++) {
            if (!b->e[i].failures) {
                e = &b->e[i];
                break;
            }
            if (b->e[i].until_ns < e->until_ns) e = &b->e[i];
        }
        memset(e, 0, sizeof(*e));
        snprintf(e->key, sizeof(e->key), "%s", key);
    }
    if (e->failures < UINT32_MAX) e->failures++;
    int64_t wait = b->base_ns;
    for (uint32_t i = 1; i < e->failures && wait < b->max_ns; i++) wait *= 2;
    if (wait > b->max_ns) wait = b->max_ns;
    e->until_ns = now_ns + wait;
    return wait;
}

void mbackoff_ok(mbackoff *b, const char *key)
{
    mbackoff_entry *e = find(b, key);
    if (e) memset(e, 0, sizeof(*e));
}

uint32_t mbackoff_failures(const mbackoff *b, const char *key)
{
    const mbackoff_entry *e = find(b, key);
    return e ? e->failures : 0;
}

int64_t mbackoff_retry_ns(int attempt, int64_t base_ns, int64_t max_ns, uint64_t seed)
{
    if (attempt < 0) attempt = 0;
    int64_t d = base_ns;
    for (int i = 0; i < attempt && d < max_ns; i++) d *= 2;
    if (d > max_ns) d = max_ns;
    if (d < 2) return d;
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    return d / 2 + (int64_t)(x % (uint64_t)(d - d / 2));
}

void mbackoff_retry_sleep(int attempt, int64_t base_ns, int64_t max_ns)
{
    int64_t ns = mbackoff_retry_ns(attempt, base_ns, max_ns, (uint64_t)mtime_mono_ns());
    struct timespec ts = {ns / MTIME_S, ns % MTIME_S};
    while (nanosleep(&ts, &ts) != 0) {
    }
}
