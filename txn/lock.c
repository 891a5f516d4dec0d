/* The lock table: wound-wait decisions over point and range locks (rules and
 * costs in lock.h, records and indexes in lock_index.h).
 *
 * Every public operation first reserves all the memory it may need (output
 * arrays, scratch, hash growth, new records), then decides, then mutates, so
 * an error never leaves the table half-changed. */
#include "txn/lock.h"
#include "txn/lock_index.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define LT_DEFAULT_MAX_ENTRIES 1000000
#define LT_DEFAULT_MAX_KEY     (64 * 1024)

struct txn_lock_table {
    txn_lock_config cfg;
    lt_hmap points; /* point objects by key */
    lt_hmap txns;   /* transactions by id */
    lt_tree ptree;  /* point objects in key order, for range requests */
    lt_tree rtree;  /* range objects */
    size_t n_entries, n_waiting, n_objects;
    uint64_t seq, wounds;
    uint32_t epoch; /* stamps marks, so "seen" needs no clearing */
    /* scratch, kept between calls */
    lt_obj **objs;
    size_t n_objs, cap_objs;
    lt_entry **cands;
    size_t n_cands, cap_cands;
};

txn_span txn_span_point(const void *key, size_t len)
{
    return (txn_span){.kind = TXN_SPAN_POINT, .start = key, .start_len = len};
}

txn_span txn_span_range(const void *start, size_t start_len, const void *end, size_t end_len)
{
    return (txn_span){.kind = TXN_SPAN_RANGE,
                      .start = start,
                      .start_len = start_len,
                      .end = end,
                      .end_len = end_len};
}

txn_span txn_span_to_end(const void *start, size_t start_len)
{
    return (txn_span){.kind = TXN_SPAN_TO_END, .start = start, .start_len = start_len};
}

const char *txn_lock_mode_name(txn_lock_mode m)
{
    return m == TXN_LOCK_S ? "S" : m == TXN_LOCK_X ? "X" : "?";
}

void txn_lock_out_init(txn_lock_out *o)
{
    memset(o, 0, sizeof(*o));
}

void txn_lock_out_free(txn_lock_out *o)
{
    free(o->wounded);
    free(o->granted);
    memset(o, 0, sizeof(*o));
}

static void out_reset(txn_lock_out *o)
{
    o->status = TXN_LOCK_GRANTED;
    o->waits_for = 0;
    o->n_wounded = 0;
    o->n_granted = 0;
}

/* Grows *p (elements of size sz) to hold at least want. */
static int grow(void **p, size_t *cap, size_t want, size_t sz)
{
    if (*cap >= want) return 0;
    size_t n = *cap ? *cap : 8;
    while (n < want) n *= 2;
    void *q = realloc(*p, n * sz);
    if (!q) return MERR_NOMEM;
    *p = q;
    *cap = n;
    return 0;
}

int txn_lock_table_new(const txn_lock_config *cfg, txn_lock_table **out)
{
    txn_lock_table *lt = calloc(1, sizeof(*lt));
    if (!lt) return MERR_NOMEM;
    if (cfg) lt->cfg = *cfg;
    if (!lt->cfg.max_entries) lt->cfg.max_entries = LT_DEFAULT_MAX_ENTRIES;
    if (!lt->cfg.max_key_len) lt->cfg.max_key_len = LT_DEFAULT_MAX_KEY;
    if (lt_hmap_init(&lt->points, 64) || lt_hmap_init(&lt->txns, 64)) goto err;
    *out = lt;
    return 0;
err:
    lt_hmap_free(&lt->points);
    lt_hmap_free(&lt->txns);
    free(lt);
    return MERR_NOMEM;
}

static void obj_free(lt_obj *o)
{
    free(o->buf);
    free(o);
}

void txn_lock_table_free(txn_lock_table *lt)
{
    if (!lt) return;
    /* Every entry hangs off its transaction; objects die with their last entry. */
    for (size_t i = 0; i < lt->txns.nb; i++) {
        lt_hnode *n = lt->txns.b[i];
        while (n) {
            lt_hnode *next = n->next;
            lt_txn *t = (lt_txn *)n;
            lt_entry *en = t->head;
            while (en) {
                lt_entry *tn = en->tnext;
                if (--en->obj->n_entries == 0) obj_free(en->obj);
                free(en);
                en = tn;
            }
            free(t);
            n = next;
        }
    }
    lt_hmap_free(&lt->points);
    lt_hmap_free(&lt->txns);
    free(lt->objs);
    free(lt->cands);
    free(lt);
}

/* ---- spans ---- */

/* Checks a request span and gives its internal form. *empty is set for
 * [a,a), which locks nothing. A point's end is left unset: points are looked
 * up by key and queried through their object, whose end is materialised. */
static int span_in(const txn_lock_table *lt, const txn_span *in, lt_span *sp, bool *empty, merr *e)
{
    *empty = false;
    memset(sp, 0, sizeof(*sp));
    if (in->start_len && !in->start) return merr_set(e, MERR_INVALID, "span start is NULL");
    if (in->start_len > lt->cfg.max_key_len)
        return merr_set(e, MERR_TOOBIG, "key of %zu bytes exceeds the %zu-byte limit",
                        in->start_len, lt->cfg.max_key_len);
    sp->s = in->start;
    sp->slen = in->start_len;
    switch (in->kind) {
    case TXN_SPAN_POINT: return 0;
    case TXN_SPAN_TO_END: sp->inf = true; return 0;
    case TXN_SPAN_RANGE:
        if (in->end_len && !in->end) return merr_set(e, MERR_INVALID, "span end is NULL");
        if (in->end_len > lt->cfg.max_key_len)
            return merr_set(e, MERR_TOOBIG, "key of %zu bytes exceeds the %zu-byte limit",
                            in->end_len, lt->cfg.max_key_len);
        sp->e = in->end;
        sp->elen = in->end_len;
        int c = lt_key_cmp(sp->s, sp->slen, sp->e, sp->elen);
        if (c > 0) return merr_set(e, MERR_INVALID, "span start is after its end");
        *empty = c == 0;
        return 0;
    }
    return merr_set(e, MERR_INVALID, "unknown span kind %d", (int)in->kind);
}

static lt_obj *obj_new(const lt_span *sp, bool point)
{
    lt_obj *o = calloc(1, sizeof(*o));
    if (!o) return NULL;
    size_t elen = point ? sp->slen + 1 : (sp->inf ? 0 : sp->elen);
    o->buf = malloc(sp->slen + elen + 1);
    if (!o->buf) {
        free(o);
        return NULL;
    }
    if (sp->slen) memcpy(o->buf, sp->s, sp->slen);
    o->point = point;
    o->sp.s = o->buf;
    o->sp.slen = sp->slen;
    if (point) {
        /* k's successor k||0x00 shares the bytes of k. */
        o->buf[sp->slen] = 0;
        o->sp.e = o->buf;
        o->sp.elen = sp->slen + 1;
    } else if (sp->inf) {
        o->sp.inf = true;
    } else {
        if (sp->elen) memcpy(o->buf + sp->slen, sp->e, sp->elen);
        o->sp.e = o->buf + sp->slen;
        o->sp.elen = sp->elen;
    }
    o->hn.h = lt_hash_bytes(sp->s, sp->slen);
    return o;
}

static lt_obj *point_find(const txn_lock_table *lt, const uint8_t *k, size_t klen)
{
    uint64_t h = lt_hash_bytes(k, klen);
    for (lt_hnode *n = lt_hmap_chain(&lt->points, h); n; n = n->next) {
        lt_obj *o = (lt_obj *)n;
        if (n->h == h && lt_key_cmp(o->sp.s, o->sp.slen, k, klen) == 0) return o;
    }
    return NULL;
}

static lt_txn *txn_find(const txn_lock_table *lt, txn_id id)
{
    uint64_t h = lt_hash_u64(id);
    for (lt_hnode *n = lt_hmap_chain(&lt->txns, h); n; n = n->next)
        if (((lt_txn *)n)->id == id) return (lt_txn *)n;
    return NULL;
}

/* ---- overlap queries into lt->objs ---- */

static int push_obj(void *ctx, lt_obj *o)
{
    txn_lock_table *lt = ctx;
    assert(lt->n_objs < lt->cap_objs);
    lt->objs[lt->n_objs++] = o;
    return 0;
}

/* Collects the objects overlapping o's span (o itself included when it is in
 * the table). Capacity was reserved: every object fits. */
static void query(txn_lock_table *lt, const lt_obj *o)
{
    lt->n_objs = 0;
    if (o->point) {
        lt_obj *same = point_find(lt, o->sp.s, o->sp.slen);
        if (same) push_obj(lt, same);
    } else {
        lt_tree_overlaps(&lt->ptree, &o->sp, push_obj, lt);
    }
    lt_tree_overlaps(&lt->rtree, &o->sp, push_obj, lt);
}

static int reserve_query(txn_lock_table *lt)
{
    return grow((void **)&lt->objs, &lt->cap_objs, lt->n_objects + 1, sizeof(*lt->objs));
}

/* The verdict on a request by (id, prio) in `mode` against the entries of
 * lt->objs, ignoring the requester's own entries. */
typedef struct lt_verdict {
    bool blocked;
    bool has_oldest;
    txn_id oldest; /* the oldest blocker */
    txn_ts oldest_prio;
} lt_verdict;

static void judge(txn_lock_table *lt, txn_id id, txn_ts prio, uint8_t mode, txn_lock_out *wound,
                  lt_verdict *v)
{
    memset(v, 0, sizeof(*v));
    for (size_t i = 0; i < lt->n_objs; i++) {
        for (lt_entry *en = lt->objs[i]->head; en; en = en->onext) {
            lt_txn *o = en->txn;
            if (o->id == id) continue;
            if (en->mode == TXN_LOCK_S && mode == TXN_LOCK_S) continue;
            bool older = txn_prio_older(o->prio, o->id, prio, id);
            if (!en->granted && !older) continue; /* younger waiters queue behind us */
            v->blocked = true;
            if (!v->has_oldest || txn_prio_older(o->prio, o->id, v->oldest_prio, v->oldest)) {
                v->has_oldest = true;
                v->oldest = o->id;
                v->oldest_prio = o->prio;
            }
            if (wound && en->granted && !older && !o->wounded && !o->prepared &&
                o->mark != lt->epoch) {
                o->mark = lt->epoch; /* report each victim once */
                wound->wounded[wound->n_wounded++] = o->id;
            }
        }
    }
}

/* ---- linking ---- */

static void entry_link(txn_lock_table *lt, lt_entry *en)
{
    lt_obj *o = en->obj;
    lt_txn *t = en->txn;
    en->oprev = NULL;
    en->onext = o->head;
    if (o->head) o->head->oprev = en;
    o->head = en;
    o->n_entries++;
    en->tprev = NULL;
    en->tnext = t->head;
    if (t->head) t->head->tprev = en;
    t->head = en;
    if (en->granted)
        t->n_granted++;
    else {
        t->n_waiting++;
        lt->n_waiting++;
    }
    lt->n_entries++;
}

static void obj_insert(txn_lock_table *lt, lt_obj *o)
{
    if (o->point) {
        lt_hmap_put(&lt->points, &o->hn);
        lt_tree_insert(&lt->ptree, o);
    } else {
        lt_tree_insert(&lt->rtree, o);
    }
    lt->n_objects++;
}

static void obj_remove(txn_lock_table *lt, lt_obj *o)
{
    if (o->point) {
        lt_hmap_del(&lt->points, &o->hn);
        lt_tree_remove(&lt->ptree, o);
    } else {
        lt_tree_remove(&lt->rtree, o);
    }
    lt->n_objects--;
    obj_free(o);
}

/* Unlinks and frees an entry, and its object when it was the last. */
static void entry_drop(txn_lock_table *lt, lt_entry *en)
{
    lt_obj *o = en->obj;
    lt_txn *t = en->txn;
    if (en->oprev)
        en->oprev->onext = en->onext;
    else
        o->head = en->onext;
    if (en->onext) en->onext->oprev = en->oprev;
    if (en->tprev)
        en->tprev->tnext = en->tnext;
    else
        t->head = en->tnext;
    if (en->tnext) en->tnext->tprev = en->tprev;
    if (en->granted)
        t->n_granted--;
    else {
        t->n_waiting--;
        lt->n_waiting--;
    }
    lt->n_entries--;
    if (--o->n_entries == 0) obj_remove(lt, o);
    free(en);
}

static lt_entry *own_granted(const lt_obj *o, const lt_txn *t)
{
    if (!o || !t) return NULL;
    for (lt_entry *en = o->head; en; en = en->onext)
        if (en->txn == t && en->granted) return en;
    return NULL;
}

/* A fresh stamp for marks. On wrap-around every mark is cleared so that a
 * record untouched for 2^32 operations cannot look already seen. */
static uint32_t next_epoch(txn_lock_table *lt)
{
    if (++lt->epoch == 0) {
        for (size_t i = 0; i < lt->txns.nb; i++)
            for (lt_hnode *n = lt->txns.b[i]; n; n = n->next) {
                lt_txn *t = (lt_txn *)n;
                t->mark = 0;
                for (lt_entry *en = t->head; en; en = en->tnext) en->mark = 0;
            }
        lt->epoch = 1;
    }
    return lt->epoch;
}

/* ---- acquire ---- */

int txn_lock_acquire(txn_lock_table *lt, const txn_lock_req *req, txn_lock_out *out, merr *e)
{
    out_reset(out);
    if (req->mode != TXN_LOCK_S && req->mode != TXN_LOCK_X)
        return merr_set(e, MERR_INVALID, "unknown lock mode %d", (int)req->mode);
    lt_span sp;
    bool empty;
    int rc = span_in(lt, &req->span, &sp, &empty, e);
    if (rc) return rc;
    bool point = req->span.kind == TXN_SPAN_POINT;

    lt_txn *t = txn_find(lt, req->txn);
    if (t) {
        if (t->prio != req->prio)
            return merr_set(e, MERR_INVALID, "txn %llu asked with priority %llu, earlier with %llu",
                            (unsigned long long)req->txn, (unsigned long long)req->prio,
                            (unsigned long long)t->prio);
        if (t->wounded)
            return merr_set(e, MERR_ABORTED, "txn %llu was wounded by an older transaction",
                            (unsigned long long)req->txn);
        if (t->prepared)
            return merr_set(e, MERR_INVALID, "txn %llu is prepared and takes no new locks",
                            (unsigned long long)req->txn);
    }
    if (empty) return 0; /* [a,a) locks nothing */

    lt_obj *o = point ? point_find(lt, sp.s, sp.slen) : lt_tree_find(&lt->rtree, &sp);
    lt_entry *own = own_granted(o, t);
    if (own && own->mode >= req->mode) return 0;

    /* Reserve everything before deciding, so nothing below can fail. */
    lt_txn *nt = NULL;
    lt_obj *no = NULL;
    lt_entry *en = NULL;
    rc = MERR_NOMEM;
    if (reserve_query(lt) || lt_hmap_reserve(&lt->txns) || lt_hmap_reserve(&lt->points) ||
        grow((void **)&out->wounded, &out->cap_wounded, lt->txns.n + 1, sizeof(txn_id)))
        goto err;
    if (!o && !(no = obj_new(&sp, point))) goto err;
    next_epoch(lt);
    query(lt, o ? o : no);
    lt_verdict v;
    judge(lt, req->txn, req->prio, (uint8_t)req->mode, out, &v);

    if (!v.blocked && own) {
        /* An upgrade with no one in the way: in place, no new entry. */
        own->mode = (uint8_t)req->mode;
        return 0;
    }
    if (lt->n_entries >= lt->cfg.max_entries) {
        rc = merr_set(e, MERR_BUSY, "lock table full (%zu entries)", lt->n_entries);
        goto err;
    }
    if (!t && !(nt = calloc(1, sizeof(*nt)))) goto err;
    if (!(en = calloc(1, sizeof(*en)))) goto err;

    /* Commit. */
    if (nt) {
        nt->id = req->txn;
        nt->prio = req->prio;
        nt->hn.h = lt_hash_u64(req->txn);
        lt_hmap_put(&lt->txns, &nt->hn);
        t = nt;
    }
    if (no) {
        obj_insert(lt, no);
        o = no;
    }
    for (size_t i = 0; i < out->n_wounded; i++) {
        lt_txn *w = txn_find(lt, out->wounded[i]);
        w->wounded = true;
        lt->wounds++;
    }
    en->obj = o;
    en->txn = t;
    en->mode = (uint8_t)req->mode;
    en->tag = req->tag;
    en->seq = ++lt->seq;
    en->granted = !v.blocked;
    entry_link(lt, en);
    if (v.blocked) {
        out->status = TXN_LOCK_WAITING;
        out->waits_for = v.oldest;
    }
    return 0;
err:
    out->n_wounded = 0;
    if (no) obj_free(no);
    free(nt);
    free(en);
    if (rc == MERR_NOMEM) merr_set(e, MERR_NOMEM, "lock table: out of memory");
    return rc;
}

/* ---- release ---- */

static int push_cands(void *ctx, lt_obj *o);

typedef struct cand_ctx {
    txn_lock_table *lt;
    lt_txn *leaving;
} cand_ctx;

/* Waiters of others that may be unblocked once the leaving entries go. */
static int push_cands(void *ctx, lt_obj *o)
{
    cand_ctx *c = ctx;
    txn_lock_table *lt = c->lt;
    for (lt_entry *en = o->head; en; en = en->onext) {
        if (en->granted || en->txn == c->leaving || en->txn->wounded) continue;
        if (en->mark == lt->epoch) continue;
        en->mark = lt->epoch;
        assert(lt->n_cands < lt->cap_cands);
        lt->cands[lt->n_cands++] = en;
    }
    return 0;
}

static int cand_cmp(const void *a, const void *b)
{
    const lt_entry *x = *(lt_entry *const *)a, *y = *(lt_entry *const *)b;
    if (x->txn != y->txn)
        return txn_prio_older(x->txn->prio, x->txn->id, y->txn->prio, y->txn->id) ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Grants what the departure of t's entries (all, or only its waits) allows. */
static int remove_entries(txn_lock_table *lt, txn_id id, bool waits_only, txn_lock_out *out)
{
    out_reset(out);
    lt_txn *t = txn_find(lt, id);
    if (!t) return 0;
    if (reserve_query(lt) ||
        grow((void **)&lt->cands, &lt->cap_cands, lt->n_waiting + 1, sizeof(*lt->cands)) ||
        grow((void **)&out->granted, &out->cap_granted, lt->n_waiting + 1, sizeof(txn_lock_grant)))
        return MERR_NOMEM;

    next_epoch(lt);
    lt->n_cands = 0;
    cand_ctx cc = {lt, t};
    for (lt_entry *en = t->head; en; en = en->tnext) {
        if (waits_only && en->granted) continue;
        query(lt, en->obj);
        for (size_t i = 0; i < lt->n_objs; i++) push_cands(&cc, lt->objs[i]);
    }
    for (lt_entry *en = t->head, *next; en; en = next) {
        next = en->tnext;
        if (!waits_only || !en->granted) entry_drop(lt, en);
    }
    if (!t->head && !(waits_only && (t->wounded || t->prepared))) {
        lt_hmap_del(&lt->txns, &t->hn);
        free(t);
    }

    /* Oldest first: a grant never unblocks anyone, and nobody is blocked by
     * a younger waiter, so one pass in priority order is complete. */
    qsort(lt->cands, lt->n_cands, sizeof(*lt->cands), cand_cmp);
    for (size_t i = 0; i < lt->n_cands; i++) {
        lt_entry *c = lt->cands[i];
        query(lt, c->obj);
        lt_verdict v;
        judge(lt, c->txn->id, c->txn->prio, c->mode, NULL, &v);
        if (v.blocked) continue;
        out->granted[out->n_granted++] =
            (txn_lock_grant){.txn = c->txn->id, .tag = c->tag, .mode = (txn_lock_mode)c->mode};
        lt_entry *own = own_granted(c->obj, c->txn);
        if (own) {
            /* An upgrade comes true: the held entry takes the stronger mode. */
            if (c->mode > own->mode) own->mode = c->mode;
            entry_drop(lt, c);
        } else {
            c->granted = 1;
            c->txn->n_waiting--;
            c->txn->n_granted++;
            lt->n_waiting--;
        }
    }
    return 0;
}

int txn_lock_release_all(txn_lock_table *lt, txn_id txn, txn_lock_out *out)
{
    return remove_entries(lt, txn, false, out);
}

int txn_lock_cancel_waits(txn_lock_table *lt, txn_id txn, txn_lock_out *out)
{
    return remove_entries(lt, txn, true, out);
}

int txn_lock_set_prepared(txn_lock_table *lt, txn_id txn)
{
    lt_txn *t = txn_find(lt, txn);
    if (!t) return MERR_NOTFOUND;
    if (t->wounded) return MERR_ABORTED;
    if (t->n_waiting) return MERR_INVALID;
    t->prepared = true;
    return 0;
}

/* ---- introspection ---- */

typedef struct visit_ctx {
    txn_lock_visit_fn fn;
    void *ctx;
} visit_ctx;

static int visit_obj(void *ctx, lt_obj *o)
{
    visit_ctx *vc = ctx;
    txn_span span = {.start = o->sp.s, .start_len = o->sp.slen};
    if (o->point)
        span.kind = TXN_SPAN_POINT;
    else if (o->sp.inf)
        span.kind = TXN_SPAN_TO_END;
    else {
        span.kind = TXN_SPAN_RANGE;
        span.end = o->sp.e;
        span.end_len = o->sp.elen;
    }
    for (lt_entry *en = o->head; en; en = en->onext) {
        txn_lock_info info = {.txn = en->txn->id,
                              .prio = en->txn->prio,
                              .mode = (txn_lock_mode)en->mode,
                              .granted = en->granted,
                              .span = span,
                              .tag = en->tag};
        vc->fn(vc->ctx, &info);
    }
    return 0;
}

int txn_lock_visit(const txn_lock_table *lt, const txn_span *span, txn_lock_visit_fn fn, void *ctx)
{
    lt_span sp;
    bool empty;
    int rc = span_in(lt, span, &sp, &empty, NULL);
    if (rc) return rc;
    if (empty) return 0;
    visit_ctx vc = {fn, ctx};
    if (span->kind == TXN_SPAN_POINT) {
        lt_obj *o = point_find(lt, sp.s, sp.slen);
        if (o) visit_obj(&vc, o);
        /* The ranges containing k: query with k's own successor as the end. */
        uint8_t small[64];
        uint8_t *buf = sp.slen < sizeof(small) ? small : malloc(sp.slen + 1);
        if (!buf) return MERR_NOMEM;
        if (sp.slen) memcpy(buf, sp.s, sp.slen);
        buf[sp.slen] = 0;
        lt_span ps = {.s = sp.s, .slen = sp.slen, .e = buf, .elen = sp.slen + 1};
        lt_tree_overlaps(&lt->rtree, &ps, visit_obj, &vc);
        if (buf != small) free(buf);
        return 0;
    }
    lt_tree_overlaps(&lt->ptree, &sp, visit_obj, &vc);
    lt_tree_overlaps(&lt->rtree, &sp, visit_obj, &vc);
    return 0;
}

void txn_lock_get_stats(const txn_lock_table *lt, txn_lock_stats *st)
{
    st->entries = lt->n_entries;
    st->waiting = lt->n_waiting;
    st->objects = lt->n_objects;
    st->txns = lt->txns.n;
    st->ranges = lt->rtree.n;
    st->wounds = lt->wounds;
}

int txn_lock_txn_get(const txn_lock_table *lt, txn_id txn, txn_lock_txn_info *info)
{
    const lt_txn *t = txn_find(lt, txn);
    if (!t) return MERR_NOTFOUND;
    info->prio = t->prio;
    info->granted = t->n_granted;
    info->waiting = t->n_waiting;
    info->wounded = t->wounded;
    info->prepared = t->prepared;
    return 0;
}

int txn_lock_check(const txn_lock_table *lt)
{
    if (lt_tree_check(&lt->ptree) || lt_tree_check(&lt->rtree)) return MERR_INTERNAL;
    if (lt->ptree.n + lt->rtree.n != lt->n_objects || lt->points.n != lt->ptree.n)
        return MERR_INTERNAL;
    return 0;
}
