/* Scan iterators of the remote KV (txn_client.h): remote rows, fetched in
 * pages from the leaseholder (which locks each page's span), merged with a
 * copy of the transaction's buffered writes taken when scan() was called. */
#include <stdlib.h>
#include <string.h>

#include "server/txn_client_int.h"

#define TC_PAGE 1000 /* rows per page (the server's maximum) */

typedef struct tc_row {
    uint8_t *key, *val;
    size_t klen, vlen;
    int del;
} tc_row;

struct sql_kv_iter {
    sql_kv_txn *t;
    int reverse;
    int for_write; /* the transaction's lock_for_write when the scan began */
    size_t limit, emitted;
    tc_row *loc; /* buffered writes in the span, ascending, newest per key */
    size_t nloc, lpos, ndel;
    mbuf lo, hi; /* what is left of the remote span */
    int to_end, remote_more;
    Meridian__Txn__ScanResponse *page;
    size_t ppos;
    /* A page from the transaction's read cache: page points at lpage, whose
     * rows are copies in lmem (the cache may drop its span meanwhile). */
    Meridian__Txn__ScanResponse lpage;
    Meridian__Kv__KeyValue *lkv, **lkvp;
    uint8_t *lmem;
};

static void page_free(sql_kv_iter *it)
{
    if (it->page && it->page != &it->lpage) protobuf_c_message_free_unpacked(&it->page->base, NULL);
    free(it->lkv);
    free(it->lkvp);
    free(it->lmem);
    it->lkv = NULL, it->lkvp = NULL, it->lmem = NULL;
    it->page = NULL;
}

void tc_iter_close(sql_kv_iter *it)
{
    if (!it) return;
    for (size_t i = 0; i < it->nloc; i++) free(it->loc[i].key);
    free(it->loc);
    mbuf_free(&it->lo);
    mbuf_free(&it->hi);
    page_free(it);
    free(it);
}

static int in_span(const sql_kv_iter *it, const uint8_t *k, size_t kn)
{
    return mbytes_cmp(k, kn, it->lo.data, it->lo.len) >= 0 &&
           (it->to_end || mbytes_cmp(k, kn, it->hi.data, it->hi.len) < 0);
}

/* Overlays one buffered write on the local snapshot. */
static int overlay(sql_kv_iter *it, const tc_op *op, size_t *cap)
{
    size_t lo = 0, hi = it->nloc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mbytes_cmp(it->loc[mid].key, it->loc[mid].klen, op->key, op->klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int found = lo < it->nloc && !mbytes_cmp(it->loc[lo].key, it->loc[lo].klen, op->key, op->klen);
    uint8_t *mem = malloc(op->klen + op->vlen + 1);
    if (!mem) return MERR_NOMEM;
    memcpy(mem, op->key, op->klen);
    if (op->vlen) memcpy(mem + op->klen, op->val, op->vlen);
    if (found) {
        free(it->loc[lo].key);
    } else {
        if (it->nloc == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            tc_row *n = realloc(it->loc, nc * sizeof(*n));
            if (!n) {
                free(mem);
                return MERR_NOMEM;
            }
            it->loc = n;
            *cap = nc;
        }
        memmove(&it->loc[lo + 1], &it->loc[lo], (it->nloc - lo) * sizeof(*it->loc));
        it->nloc++;
    }
    it->loc[lo] = (tc_row){mem, mem + op->klen, op->klen, op->vlen, op->del};
    return 0;
}

/* The rest of the remote span as a page from the read cache span s (rows
 * [a, b) lie in it): the whole span is known, so nothing more is remote. */
static int cached_page(sql_kv_iter *it, const tc_rspan *s, size_t a, size_t b, merr *e)
{
    page_free(it);
    size_t n = b - a, bytes = 0;
    for (size_t i = a; i < b; i++) bytes += s->rows[i].klen + s->rows[i].vlen;
    it->lkv = calloc(n ? n : 1, sizeof(*it->lkv));
    it->lkvp = calloc(n ? n : 1, sizeof(*it->lkvp));
    it->lmem = malloc(bytes ? bytes : 1);
    if (!it->lkv || !it->lkvp || !it->lmem) return merr_set(e, MERR_NOMEM, "out of memory");
    uint8_t *p = it->lmem;
    for (size_t i = 0; i < n; i++) {
        const tc_rrow *r = &s->rows[it->reverse ? b - 1 - i : a + i];
        Meridian__Kv__KeyValue *kv = &it->lkv[i];
        meridian__kv__key_value__init(kv);
        memcpy(p, r->key, r->klen);
        kv->key.data = p, kv->key.len = r->klen, p += r->klen;
        if (r->vlen) memcpy(p, r->val, r->vlen);
        kv->value.data = p, kv->value.len = r->vlen, p += r->vlen;
        it->lkvp[i] = kv;
    }
    meridian__txn__scan_response__init(&it->lpage);
    it->lpage.rows = it->lkvp;
    it->lpage.n_rows = n;
    it->page = &it->lpage;
    it->ppos = 0;
    it->remote_more = 0;
    it->t->c->hits++;
    return 0;
}

/* A page the leaseholder answered: the span it covers (what it locked)
 * goes to the transaction's read cache. */
static void remember(sql_kv_iter *it, const Meridian__Txn__ScanResponse *r, int x)
{
    const uint8_t *lo = it->lo.data, *hi = it->hi.data;
    size_t lolen = it->lo.len, hilen = it->hi.len;
    if (!it->reverse && r->more)
        hi = r->resume.data, hilen = r->resume.len;
    else if (it->to_end)
        return; /* no upper bound to name */
    if (it->reverse && r->more) lo = r->resume.data, lolen = r->resume.len;
    if (r->n_rows > TC_RCACHE_SPAN_ROWS) return; /* too big to keep */
    tc_rrow small[16], *rows = r->n_rows <= 16 ? small : malloc(r->n_rows * sizeof(*rows));
    if (!rows) return;
    for (size_t i = 0; i < r->n_rows; i++)
        rows[i] = (tc_rrow){r->rows[i]->key.data, r->rows[i]->value.data, r->rows[i]->key.len,
                            r->rows[i]->value.len};
    tc_rcache_put(&it->t->rc, lo, lolen, hi, hilen, x, rows, r->n_rows, it->reverse);
    if (rows != small) free(rows);
}

/* Fetches the next page of the remote span. */
static int fetch(sql_kv_iter *it, merr *e)
{
    sql_kv_txn *t = it->t;
    if (!t->ro && !it->to_end) {
        size_t a, b;
        const tc_rspan *s = tc_rcache_span(&t->rc, it->lo.data, it->lo.len, it->hi.data, it->hi.len,
                                           it->for_write, &a, &b);
        if (s) return cached_page(it, s, a, b, e);
    }
    Meridian__Txn__TxnMeta meta;
    tc_meta(t, &meta);
    Meridian__Txn__ScanRequest q = MERIDIAN__TXN__SCAN_REQUEST__INIT;
    q.txn = &meta;
    q.start_key.data = it->lo.data, q.start_key.len = it->lo.len;
    q.end_key.data = it->hi.data, q.end_key.len = it->hi.len;
    q.to_end = it->to_end;
    q.reverse = it->reverse;
    /* Enough rows for the rest of the limit, however many the buffered
     * deletes hide: fewer rows read is fewer rows locked. */
    size_t want = it->limit ? it->limit - it->emitted + it->ndel : TC_PAGE;
    q.limit = (uint32_t)(want < TC_PAGE ? want : TC_PAGE);
    tc_read_fill(t, &q.snapshot, &q.read_ts, &q.read_mode, &q.staleness_us, &q.any_replica);
    q.for_write = it->for_write;
    ProtobufCMessage *m = NULL;
    int rc = tc_go_home(t, e);
    /* A forward scan by its start key; a reverse one (its range is the one
     * below the exclusive end) and one any replica may serve go as before. */
    tc_to to = {.key = it->lo.data, .klen = it->reverse || q.any_replica ? 0 : it->lo.len};
    if (!rc)
        rc = tc_call(t->c, "txn.Scan", &q.base, &meridian__txn__scan_response__descriptor, &to, &m,
                     e);
    if (rc) {
        if (rc == MERR_ABORTED) t->aborted = 1;
        return rc;
    }
    Meridian__Txn__ScanResponse *r = (Meridian__Txn__ScanResponse *)m;
    if (t->ro && !t->read_ts) t->read_ts = r->read_ts;
    if (!t->ro && (rc = tc_epoch(t, r->range_id, r->lock_epoch, e))) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    if (!t->ro) remember(it, r, q.for_write);
    page_free(it);
    it->page = r;
    it->ppos = 0;
    it->remote_more = r->more;
    if (r->more) {
        mbuf *b = it->reverse ? &it->hi : &it->lo;
        mbuf_reset(b);
        if (mbuf_append(b, r->resume.data, r->resume.len))
            return merr_set(e, MERR_NOMEM, "out of memory");
        if (it->reverse) it->to_end = 0;
    }
    return 0;
}

int tc_scan(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
            int reverse, size_t limit, sql_kv_iter **out, merr *e)
{
    if (t->aborted) return merr_set(e, MERR_ABORTED, "transaction aborted");
    sql_kv_iter *it = calloc(1, sizeof(*it));
    if (!it) return merr_set(e, MERR_NOMEM, "out of memory");
    it->t = t;
    it->reverse = reverse;
    it->for_write = !t->ro && t->for_write;
    it->limit = limit;
    it->to_end = hi == NULL;
    int rc = 0;
    if ((lolen && mbuf_append(&it->lo, lo, lolen)) ||
        (hi && hilen && mbuf_append(&it->hi, hi, hilen)))
        goto nomem;
    size_t cap = 0;
    for (size_t i = 0; i < t->nops; i++) {
        if (!in_span(it, t->ops[i].key, t->ops[i].klen)) continue;
        if (overlay(it, &t->ops[i], &cap)) goto nomem;
    }
    for (size_t i = 0; i < it->nloc; i++) it->ndel += it->loc[i].del;
    it->remote_more =
        it->to_end || mbytes_cmp(it->lo.data, it->lo.len, it->hi.data, it->hi.len) < 0;
    if (!t->ro && it->remote_more) {
        /* The range is named by the scan's first user key. */
        static const uint8_t first[] = {0x01};
        int low = mbytes_cmp(it->lo.data, it->lo.len, first, 1) < 0;
        if (tc_anchor(t, low ? first : it->lo.data, low ? 1 : it->lo.len)) goto nomem;
        t->touched = 1;
    }
    /* The first page now, so errors (aborted, unreachable) show at scan(). */
    if (it->remote_more && (rc = fetch(it, e))) {
        tc_iter_close(it);
        return rc;
    }
    *out = it;
    return 0;
nomem:
    tc_iter_close(it);
    return merr_set(e, MERR_NOMEM, "out of memory");
}

int tc_iter_next(sql_kv_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                 size_t *vlen, merr *e)
{
    for (;;) {
        if (it->limit && it->emitted >= it->limit) return 0;
        while ((!it->page || it->ppos >= it->page->n_rows) && it->remote_more) {
            int rc = fetch(it, e);
            if (rc) return rc;
        }
        const Meridian__Kv__KeyValue *r =
            it->page && it->ppos < it->page->n_rows ? it->page->rows[it->ppos] : NULL;
        const tc_row *l = NULL;
        if (it->lpos < it->nloc) l = &it->loc[it->reverse ? it->nloc - 1 - it->lpos : it->lpos];
        if (!r && !l) return 0;
        int c = !r ? 1 : !l ? -1 : mbytes_cmp(r->key.data, r->key.len, l->key, l->klen);
        if (r && l && it->reverse) c = -c;
        if (c < 0) { /* the remote row comes first */
            it->ppos++;
            *key = r->key.data, *klen = r->key.len;
            *val = r->value.data, *vlen = r->value.len;
        } else { /* the buffered write comes first, or replaces the row */
            if (c == 0) it->ppos++;
            it->lpos++;
            if (l->del) continue;
            *key = l->key, *klen = l->klen;
            *val = l->val, *vlen = l->vlen;
        }
        it->emitted++;
        return 1;
    }
}
