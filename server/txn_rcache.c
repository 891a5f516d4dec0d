/* The read cache of a read-write transaction (see txn_rcache.h). */
#include "server/txn_rcache.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

void tc_rcache_init(tc_rcache *c)
{
    memset(c, 0, sizeof(*c));
}

static void span_free(tc_rspan *s)
{
    free(s->mem);
    free(s->rows);
    memset(s, 0, sizeof(*s));
}

void tc_rcache_free(tc_rcache *c)
{
    for (int i = 0; i < TC_RCACHE_SPANS; i++) span_free(&c->s[i]);
    c->n = c->next = 0;
    c->bytes = 0;
}

void tc_rcache_put(tc_rcache *c, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                   int x, const tc_rrow *rows, size_t n, int rev)
{
    if (mbytes_cmp(lo, lolen, hi, hilen) >= 0 || n > TC_RCACHE_SPAN_ROWS) return;
    size_t bytes = lolen + hilen;
    for (size_t i = 0; i < n; i++) bytes += rows[i].klen + rows[i].vlen;
    if (bytes > TC_RCACHE_BYTES) return;
    /* Room: the oldest spans go until this one fits. */
    tc_rspan *slot = &c->s[c->next];
    if (slot->mem) {
        c->bytes -= slot->bytes;
        span_free(slot);
        c->n--;
    }
    for (int i = 1; c->bytes + bytes > TC_RCACHE_BYTES && i < TC_RCACHE_SPANS; i++) {
        tc_rspan *old = &c->s[(c->next + i) % TC_RCACHE_SPANS];
        if (!old->mem) continue;
        c->bytes -= old->bytes;
        span_free(old);
        c->n--;
    }
    uint8_t *mem = malloc(bytes ? bytes : 1);
    tc_rrow *r = n ? malloc(n * sizeof(*r)) : NULL;
    if (!mem || (n && !r)) {
        free(mem);
        free(r);
        return;
    }
    uint8_t *p = mem;
    memcpy(p, lo, lolen);
    slot->lo = p, slot->lolen = lolen, p += lolen;
    memcpy(p, hi, hilen);
    slot->hi = p, slot->hilen = hilen, p += hilen;
    for (size_t i = 0; i < n; i++) {
        const tc_rrow *in = &rows[rev ? n - 1 - i : i];
        if (in->klen) memcpy(p, in->key, in->klen);
        r[i].key = p, r[i].klen = in->klen, p += in->klen;
        if (in->vlen) memcpy(p, in->val, in->vlen);
        r[i].val = p, r[i].vlen = in->vlen, p += in->vlen;
    }
    slot->mem = mem;
    slot->rows = r;
    slot->nrows = n;
    slot->x = x != 0;
    slot->bytes = bytes;
    c->bytes += bytes;
    c->n++;
    c->next = (c->next + 1) % TC_RCACHE_SPANS;
}

void tc_rcache_put_key(tc_rcache *c, const uint8_t *key, size_t klen, int x, int found,
                       const uint8_t *val, size_t vlen)
{
    /* [key, key + 0x00): the key alone. */
    mbuf hi = MBUF_INIT;
    if (mbuf_append(&hi, key, klen) || mbuf_append_u8(&hi, 0)) {
        mbuf_free(&hi);
        return;
    }
    tc_rrow r = {key, val, klen, vlen};
    tc_rcache_put(c, key, klen, hi.data, hi.len, x, found ? &r : NULL, found ? 1 : 0, 0);
    mbuf_free(&hi);
}

/* The first row of s with key >= k. */
static size_t lower_bound(const tc_rspan *s, const uint8_t *k, size_t kl)
{
    size_t lo = 0, hi = s->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mbytes_cmp(s->rows[mid].key, s->rows[mid].klen, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The newest span under a lock at least as strong as need_x that holds
 * [lo, hi), or with point set, the key lo alone (hi unused). Newest first:
 * a later read of a span is the one that took X. */
static const tc_rspan *covering(const tc_rcache *c, const uint8_t *lo, size_t lolen,
                                const uint8_t *hi, size_t hilen, int point, int need_x)
{
    for (int i = 1; i <= TC_RCACHE_SPANS; i++) {
        const tc_rspan *s = &c->s[(c->next - i + TC_RCACHE_SPANS) % TC_RCACHE_SPANS];
        if (!s->mem || (need_x && !s->x) || mbytes_cmp(s->lo, s->lolen, lo, lolen) > 0) continue;
        if (point ? mbytes_cmp(lo, lolen, s->hi, s->hilen) < 0
                  : mbytes_cmp(hi, hilen, s->hi, s->hilen) <= 0)
            return s;
    }
    return NULL;
}

const tc_rspan *tc_rcache_span(tc_rcache *c, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                               size_t hilen, int need_x, size_t *first, size_t *end)
{
    const tc_rspan *s = covering(c, lo, lolen, hi, hilen, 0, need_x);
    if (s) {
        *first = lower_bound(s, lo, lolen);
        *end = lower_bound(s, hi, hilen);
    }
    return s;
}

int tc_rcache_get(tc_rcache *c, const uint8_t *key, size_t klen, int need_x, const uint8_t **val,
                  size_t *vlen)
{
    const tc_rspan *s = covering(c, key, klen, NULL, 0, 1, need_x);
    if (!s) return -1;
    size_t j = lower_bound(s, key, klen);
    if (j == s->nrows || mbytes_cmp(s->rows[j].key, s->rows[j].klen, key, klen)) return 0;
    *val = s->rows[j].val;
    *vlen = s->rows[j].vlen;
    return 1;
}
