/* storage/range_batch.c: the byte encoding of a range_batch, so replication
 * can carry one log slot's effects as an opaque log-entry payload.
 *
 *   version u8 (=1) | ts u64 | nwrites varint | write*
 *   | nprepares varint | prepare* | nresolves varint | resolve* | crc32c u32
 *   write   := flags u8 (1 = delete) key [val]
 *   prepare := txn prepare_ts u64 coord nwrites varint write* nspans varint (key end)*
 *   resolve := txn commit_ts u64
 *   bytes   := varint length + bytes
 * The crc covers everything before it. Decoding never trusts a count: every
 * element takes at least one byte, so counts are bounded by what is left. */
#include "storage/range_int.h"

#include "common/crc32c.h"

#include <stdlib.h>
#include <string.h>

static int put_bytes(mbuf *b, const void *p, size_t n)
{
    return mbuf_append_varint(b, n) || mbuf_append(b, p, n);
}

static int put_write(mbuf *b, const range_write *w)
{
    if (mbuf_append_u8(b, w->del ? 1 : 0) || put_bytes(b, w->key, w->klen)) return MERR_NOMEM;
    if (!w->del && put_bytes(b, w->val, w->vlen)) return MERR_NOMEM;
    return 0;
}

int range_batch_encode(const range_batch *bt, mbuf *out)
{
    size_t start = out->len;
    int bad = mbuf_append_u8(out, 1) || mbuf_append_u64be(out, bt->ts) ||
              mbuf_append_varint(out, bt->nwrites);
    for (size_t i = 0; i < bt->nwrites && !bad; i++) bad = put_write(out, &bt->writes[i]);
    bad = bad || mbuf_append_varint(out, bt->nprepares);
    for (size_t i = 0; i < bt->nprepares && !bad; i++) {
        const range_intent *it = &bt->prepares[i];
        bad = put_bytes(out, it->txn, it->txn_len) || mbuf_append_u64be(out, it->prepare_ts) ||
              put_bytes(out, it->coord, it->coord_len) || mbuf_append_varint(out, it->nwrites);
        for (size_t j = 0; j < it->nwrites && !bad; j++) bad = put_write(out, &it->writes[j]);
        bad = bad || mbuf_append_varint(out, it->nspans);
        for (size_t j = 0; j < it->nspans && !bad; j++)
            bad = put_bytes(out, it->spans[j].key, it->spans[j].klen) ||
                  put_bytes(out, it->spans[j].end, it->spans[j].elen);
    }
    bad = bad || mbuf_append_varint(out, bt->nresolves);
    for (size_t i = 0; i < bt->nresolves && !bad; i++)
        bad = put_bytes(out, bt->resolves[i].txn, bt->resolves[i].txn_len) ||
              mbuf_append_u64be(out, bt->resolves[i].commit_ts);
    if (!bad) bad = mbuf_append_u32be(out, crc32c(0, out->data + start, out->len - start));
    if (bad) {
        out->len = start;
        return MERR_NOMEM;
    }
    return 0;
}

/* Totals found by the counting pass; the fill pass uses the arrays. */
typedef struct decode_ctx {
    size_t nw, ns, np, nr; /* totals */
    range_write *w;        /* fill: all writes (batch's, then intents') */
    range_span *s;
    range_intent *p;
    range_resolve *r;
    size_t iw, is; /* fill cursors */
} decode_ctx;

static int get_bytes(mreader *rd, const uint8_t **p, size_t *n)
{
    uint64_t l;
    if (mreader_varint(rd, &l) || l > mreader_left(rd)) return MERR_CORRUPT;
    *n = (size_t)l;
    return mreader_bytes(rd, *n, p);
}

static int get_count(mreader *rd, size_t *n)
{
    uint64_t c;
    if (mreader_varint(rd, &c) || c > mreader_left(rd)) return MERR_CORRUPT;
    *n = (size_t)c;
    return 0;
}

static int get_writes(mreader *rd, decode_ctx *c, size_t n, int fill)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t flags;
        range_write w = {0};
        if (mreader_u8(rd, &flags) || flags > 1 || get_bytes(rd, &w.key, &w.klen))
            return MERR_CORRUPT;
        w.del = flags;
        if (!w.del && get_bytes(rd, &w.val, &w.vlen)) return MERR_CORRUPT;
        if (fill) c->w[c->iw++] = w;
    }
    if (!fill) c->nw += n;
    return 0;
}

static int walk(mreader *rd, decode_ctx *c, range_batch *b, int fill)
{
    uint8_t ver;
    uint64_t ts;
    size_t n;
    if (mreader_u8(rd, &ver) || ver != 1 || mreader_u64be(rd, &ts) || get_count(rd, &n))
        return MERR_CORRUPT;
    if (fill) {
        b->ts = ts;
        b->writes = c->w + c->iw;
        b->nwrites = n;
    }
    if (get_writes(rd, c, n, fill)) return MERR_CORRUPT;
    if (get_count(rd, &n)) return MERR_CORRUPT;
    if (!fill) c->np = n;
    for (size_t i = 0; i < n; i++) {
        range_intent it = {0};
        size_t nw, ns;
        if (get_bytes(rd, &it.txn, &it.txn_len) || mreader_u64be(rd, &it.prepare_ts) ||
            get_bytes(rd, &it.coord, &it.coord_len) || get_count(rd, &nw))
            return MERR_CORRUPT;
        it.writes = fill ? c->w + c->iw : NULL;
        it.nwrites = nw;
        if (get_writes(rd, c, nw, fill) || get_count(rd, &ns)) return MERR_CORRUPT;
        it.spans = fill ? c->s + c->is : NULL;
        it.nspans = ns;
        for (size_t j = 0; j < ns; j++) {
            range_span sp;
            if (get_bytes(rd, &sp.key, &sp.klen) || get_bytes(rd, &sp.end, &sp.elen))
                return MERR_CORRUPT;
            if (fill) c->s[c->is++] = sp;
        }
        if (!fill) c->ns += ns;
        if (fill) c->p[i] = it;
    }
    if (get_count(rd, &n)) return MERR_CORRUPT;
    if (!fill) c->nr = n;
    for (size_t i = 0; i < n; i++) {
        range_resolve rs;
        if (get_bytes(rd, &rs.txn, &rs.txn_len) || mreader_u64be(rd, &rs.commit_ts))
            return MERR_CORRUPT;
        if (fill) c->r[i] = rs;
    }
    if (fill) {
        b->prepares = c->p;
        b->nprepares = c->np;
        b->resolves = c->r;
        b->nresolves = c->nr;
    }
    return mreader_left(rd) == 0 ? 0 : MERR_CORRUPT;
}

int range_batch_decode(const uint8_t *p, size_t len, range_batch_decoded *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 4 || crc32c(0, p, len - 4) != mbe32_get(p + len - 4)) return MERR_CORRUPT;
    decode_ctx c = {0};
    mreader rd;
    mreader_init(&rd, p, len - 4);
    if (walk(&rd, &c, &out->batch, 0)) return MERR_CORRUPT;
    /* One block for all arrays; counts were bounded by the input size. */
    size_t sz = (c.nw + 1) * sizeof(range_write) + (c.ns + 1) * sizeof(range_span) +
                (c.np + 1) * sizeof(range_intent) + (c.nr + 1) * sizeof(range_resolve);
    uint8_t *mem = calloc(1, sz);
    if (!mem) return MERR_NOMEM;
    c.w = (range_write *)mem;
    c.p = (range_intent *)(c.w + c.nw + 1);
    c.r = (range_resolve *)(c.p + c.np + 1);
    c.s = (range_span *)(c.r + c.nr + 1);
    mreader_init(&rd, p, len - 4);
    if (walk(&rd, &c, &out->batch, 1)) {
        free(mem);
        memset(out, 0, sizeof(*out));
        return MERR_CORRUPT;
    }
    out->mem = mem;
    return 0;
}

void range_batch_decoded_free(range_batch_decoded *d)
{
    free(d->mem);
    memset(d, 0, sizeof(*d));
}
