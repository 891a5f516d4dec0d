/* In-memory multi-version KV store with optimistic serializable transactions:
 * the reference implementation of sql/kv.h (see kv_mem.h for the model). */
#include "sql/kv_mem.h"

#include <stdlib.h>
#include <string.h>

typedef struct kvm_blob {
    uint8_t *p;
    size_t n;
} kvm_blob;

typedef struct kvm_ver {
    uint64_t ts;
    int del;
    kvm_blob val;
} kvm_ver;

typedef struct kvm_ent {
    kvm_blob key;
    kvm_ver *v;
    size_t nv, cv;
} kvm_ent;

typedef struct kvm_commit {
    uint64_t ts;
    kvm_blob *keys;
    size_t n;
} kvm_commit;

struct sql_kv_mem {
    kvm_ent *ents;
    size_t n, cap;
    uint64_t clock; /* stamp of the newest commit */
    kvm_commit *log;
    size_t nlog, caplog;
    sql_kv_mem_stats st;
};

typedef struct kvm_op {
    kvm_blob key, val;
    int del;
} kvm_op;

typedef struct kvm_range {
    kvm_blob lo, hi;
    int hi_inf;
} kvm_range;

struct sql_kv_txn {
    sql_kv_mem *m;
    uint64_t start;
    int read_only; /* no writes, so no read set: it always commits */
    kvm_op *ops;
    size_t nops, capops;
    kvm_blob *reads;
    size_t nreads, capreads;
    kvm_range *ranges;
    size_t nranges, capranges;
};

typedef struct kvm_row {
    kvm_blob key, val;
} kvm_row;

struct sql_kv_iter {
    kvm_row *rows;
    size_t n, cap, pos;
};

static int blob_dup(kvm_blob *b, const uint8_t *p, size_t n)
{
    b->p = malloc(n ? n : 1);
    if (!b->p) return MERR_NOMEM;
    if (n) memcpy(b->p, p, n);
    b->n = n;
    return 0;
}

/* Grows a dynamic array of `size`-byte elements to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * size);
    if (!p) return MERR_NOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Index of the first entry with key >= (p, n). */
static size_t lower_bound(const sql_kv_mem *m, const uint8_t *p, size_t n)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mbytes_cmp(m->ents[mid].key.p, m->ents[mid].key.n, p, n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const kvm_ver *visible(const kvm_ent *e, uint64_t ts)
{
    for (size_t i = e->nv; i > 0; i--)
        if (e->v[i - 1].ts <= ts) return &e->v[i - 1];
    return NULL;
}

int sql_kv_mem_open(sql_kv_mem **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : MERR_NOMEM;
}

void sql_kv_mem_close(sql_kv_mem *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->ents[i].key.p);
        for (size_t j = 0; j < m->ents[i].nv; j++) free(m->ents[i].v[j].val.p);
        free(m->ents[i].v);
    }
    free(m->ents);
    for (size_t i = 0; i < m->nlog; i++) {
        for (size_t j = 0; j < m->log[i].n; j++) free(m->log[i].keys[j].p);
        free(m->log[i].keys);
    }
    free(m->log);
    free(m);
}

sql_kv_mem_stats sql_kv_mem_get_stats(const sql_kv_mem *m)
{
    return m->st;
}

void sql_kv_mem_reset_stats(sql_kv_mem *m)
{
    memset(&m->st, 0, sizeof(m->st));
}

size_t sql_kv_mem_live_keys(const sql_kv_mem *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        const kvm_ver *v = visible(&m->ents[i], m->clock);
        if (v && !v->del) n++;
    }
    return n;
}

static int blob_has(const kvm_blob *b, const char *needle, size_t nl)
{
    for (size_t i = 0; b->p && i + nl <= b->n; i++)
        if (!memcmp(b->p + i, needle, nl)) return 1;
    return 0;
}

int sql_kv_mem_contains(const sql_kv_mem *m, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i < m->n; i++) {
        if (blob_has(&m->ents[i].key, needle, nl)) return 1;
        for (size_t j = 0; j < m->ents[i].nv; j++)
            if (blob_has(&m->ents[i].v[j].val, needle, nl)) return 1;
    }
    return 0;
}

static int kvm_begin(void *ctx, unsigned flags, sql_kv_txn **out, merr *e)
{
    sql_kv_mem *m = ctx;
    sql_kv_txn *t = calloc(1, sizeof(*t));
    if (!t) return merr_set(e, MERR_NOMEM, "kv begin: out of memory");
    t->m = m;
    t->start = m->clock;
    t->read_only = (flags & SQL_KV_READ_ONLY) != 0;
    m->st.begins++;
    if (t->read_only) m->st.ro_begins++;
    *out = t;
    return 0;
}

/* Timestamps here are commit stamps: there is no wall clock, so only a
 * stamp (from read_ts), now ('-0s') or the newest (follower) can be asked. */
static int kvm_begin_at(void *ctx, const sql_kv_at *at, sql_kv_txn **out, merr *e)
{
    sql_kv_mem *m = ctx;
    uint64_t ts = m->clock;
    if (at->kind == SQL_KV_AT_TS) {
        if (at->ts > m->clock)
            return merr_set(e, MERR_INVALID, "read timestamp %llu is in the future (now: %llu)",
                            (unsigned long long)at->ts, (unsigned long long)m->clock);
        ts = at->ts;
    } else if (at->kind == SQL_KV_AT_UNIX || (at->kind == SQL_KV_AT_AGO && at->ago_us)) {
        return merr_set(e, MERR_UNSUPPORTED,
                        "the in-memory store has no wall clock: use a timestamp from "
                        "meridian_now(), '-0s' or follower_read_timestamp()");
    }
    int rc = kvm_begin(ctx, SQL_KV_READ_ONLY, out, e);
    if (!rc) (*out)->start = ts;
    return rc;
}

static int kvm_read_ts(sql_kv_txn *t, uint64_t *ts, merr *e)
{
    if (!t->read_only)
        return merr_set(e, MERR_UNSUPPORTED, "a read-write transaction has no snapshot timestamp");
    *ts = t->start;
    return 0;
}

static void txn_free(sql_kv_txn *t)
{
    for (size_t i = 0; i < t->nops; i++) {
        free(t->ops[i].key.p);
        free(t->ops[i].val.p);
    }
    free(t->ops);
    for (size_t i = 0; i < t->nreads; i++) free(t->reads[i].p);
    free(t->reads);
    for (size_t i = 0; i < t->nranges; i++) {
        free(t->ranges[i].lo.p);
        free(t->ranges[i].hi.p);
    }
    free(t->ranges);
    free(t);
}

static int kvm_get(sql_kv_txn *t, const uint8_t *key, size_t klen, mbuf *val, merr *e)
{
    t->m->st.gets++;
    if (!t->read_only) {
        if (grow((void **)&t->reads, &t->capreads, t->nreads, sizeof(kvm_blob)) ||
            blob_dup(&t->reads[t->nreads], key, klen))
            return merr_set(e, MERR_NOMEM, "kv get: out of memory");
        t->nreads++;
    }
    mbuf_reset(val);
    for (size_t i = t->nops; i > 0; i--) {
        const kvm_op *op = &t->ops[i - 1];
        if (mbytes_cmp(op->key.p, op->key.n, key, klen) == 0) {
            if (op->del) return MERR_NOTFOUND;
            return mbuf_append(val, op->val.p, op->val.n) ? merr_set(e, MERR_NOMEM, "kv get") : 0;
        }
    }
    size_t i = lower_bound(t->m, key, klen);
    if (i == t->m->n || mbytes_cmp(t->m->ents[i].key.p, t->m->ents[i].key.n, key, klen) != 0)
        return MERR_NOTFOUND;
    const kvm_ver *v = visible(&t->m->ents[i], t->start);
    if (!v || v->del) return MERR_NOTFOUND;
    return mbuf_append(val, v->val.p, v->val.n) ? merr_set(e, MERR_NOMEM, "kv get") : 0;
}

static void iter_free(sql_kv_iter *it)
{
    if (!it) return;
    for (size_t i = 0; i < it->n; i++) free(it->rows[i].key.p);
    free(it->rows);
    free(it);
}

/* Position of key in the sorted rows (or where it would go); *found set. */
static size_t rows_find(const sql_kv_iter *it, const uint8_t *p, size_t n, int *found)
{
    size_t lo = 0, hi = it->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = mbytes_cmp(it->rows[mid].key.p, it->rows[mid].key.n, p, n);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* One allocation holds a row's key and value. */
static int row_make(kvm_row *r, const kvm_blob *k, const kvm_blob *v)
{
    uint8_t *p = malloc(k->n + v->n + 1);
    if (!p) return MERR_NOMEM;
    memcpy(p, k->p, k->n);
    if (v->n) memcpy(p + k->n, v->p, v->n);
    r->key.p = p;
    r->key.n = k->n;
    r->val.p = p + k->n;
    r->val.n = v->n;
    return 0;
}

static int in_range(const uint8_t *k, size_t kn, const uint8_t *lo, size_t lon, const uint8_t *hi,
                    size_t hin, int hi_inf)
{
    return mbytes_cmp(k, kn, lo, lon) >= 0 && (hi_inf || mbytes_cmp(k, kn, hi, hin) < 0);
}

static int kvm_scan(sql_kv_txn *t, const uint8_t *lo, size_t lon, const uint8_t *hi, size_t hin,
                    int reverse, size_t limit, sql_kv_iter **out, merr *e)
{
    sql_kv_mem *m = t->m;
    int hi_inf = hi == NULL;
    m->st.scans++;
    sql_kv_iter *it = calloc(1, sizeof(*it));
    if (!it) goto nomem;
    if (!t->read_only) {
        if (grow((void **)&t->ranges, &t->capranges, t->nranges, sizeof(kvm_range))) goto nomem;
        kvm_range *rg = &t->ranges[t->nranges];
        memset(rg, 0, sizeof(*rg));
        if (blob_dup(&rg->lo, lo, lon) || blob_dup(&rg->hi, hi, hi_inf ? 0 : hin)) {
            free(rg->lo.p);
            goto nomem;
        }
        rg->hi_inf = hi_inf;
        t->nranges++;
    }
    for (size_t i = lower_bound(m, lo, lon); i < m->n; i++) {
        const kvm_ent *en = &m->ents[i];
        if (!hi_inf && mbytes_cmp(en->key.p, en->key.n, hi, hin) >= 0) break;
        const kvm_ver *v = visible(en, t->start);
        if (!v || v->del) continue;
        if (grow((void **)&it->rows, &it->cap, it->n, sizeof(kvm_row))) goto nomem;
        if (row_make(&it->rows[it->n], &en->key, &v->val)) goto nomem;
        it->n++;
    }
    /* Overlay the buffered writes, in the order they were made. */
    for (size_t i = 0; i < t->nops; i++) {
        const kvm_op *op = &t->ops[i];
        if (!in_range(op->key.p, op->key.n, lo, lon, hi, hin, hi_inf)) continue;
        int found;
        size_t pos = rows_find(it, op->key.p, op->key.n, &found);
        if (found) {
            free(it->rows[pos].key.p);
            if (op->del) {
                memmove(&it->rows[pos], &it->rows[pos + 1], (it->n - pos - 1) * sizeof(kvm_row));
                it->n--;
                continue;
            }
        } else {
            if (op->del) continue;
            if (grow((void **)&it->rows, &it->cap, it->n, sizeof(kvm_row))) goto nomem;
            memmove(&it->rows[pos + 1], &it->rows[pos], (it->n - pos) * sizeof(kvm_row));
            it->n++;
        }
        if (row_make(&it->rows[pos], &op->key, &op->val)) {
            memmove(&it->rows[pos], &it->rows[pos + 1], (it->n - pos - 1) * sizeof(kvm_row));
            it->n--;
            goto nomem;
        }
    }
    if (reverse) {
        for (size_t i = 0; i < it->n / 2; i++) {
            kvm_row tmp = it->rows[i];
            it->rows[i] = it->rows[it->n - 1 - i];
            it->rows[it->n - 1 - i] = tmp;
        }
    }
    if (limit && it->n > limit) {
        for (size_t i = limit; i < it->n; i++) free(it->rows[i].key.p);
        it->n = limit;
    }
    m->st.rows += it->n;
    *out = it;
    return 0;
nomem:
    iter_free(it);
    return merr_set(e, MERR_NOMEM, "kv scan: out of memory");
}

static int kvm_iter_next(sql_kv_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                         size_t *vlen, merr *e)
{
    (void)e;
    if (it->pos >= it->n) return 0;
    kvm_row *r = &it->rows[it->pos++];
    *key = r->key.p;
    *klen = r->key.n;
    *val = r->val.p;
    *vlen = r->val.n;
    return 1;
}

static int add_op(sql_kv_txn *t, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  int del, merr *e)
{
    if (t->read_only) return merr_set(e, MERR_INVALID, "kv write in a read-only transaction");
    if (grow((void **)&t->ops, &t->capops, t->nops, sizeof(kvm_op)))
        return merr_set(e, MERR_NOMEM, "kv write: out of memory");
    kvm_op *op = &t->ops[t->nops];
    memset(op, 0, sizeof(*op));
    if (blob_dup(&op->key, key, klen)) return merr_set(e, MERR_NOMEM, "kv write: out of memory");
    if (blob_dup(&op->val, val, del ? 0 : vlen)) {
        free(op->key.p);
        return merr_set(e, MERR_NOMEM, "kv write: out of memory");
    }
    op->del = del;
    t->nops++;
    return 0;
}

static int kvm_put(sql_kv_txn *t, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   merr *e)
{
    t->m->st.puts++;
    return add_op(t, key, klen, val, vlen, 0, e);
}

static int kvm_del(sql_kv_txn *t, const uint8_t *key, size_t klen, merr *e)
{
    t->m->st.dels++;
    return add_op(t, key, klen, NULL, 0, 1, e);
}

static int kvm_savepoint(sql_kv_txn *t, uint64_t *mark, merr *e)
{
    (void)e;
    *mark = t->nops;
    return 0;
}

static int kvm_rollback_to(sql_kv_txn *t, uint64_t mark, merr *e)
{
    if (mark > t->nops) return merr_set(e, MERR_INVALID, "kv rollback_to: bad mark");
    while (t->nops > mark) {
        t->nops--;
        free(t->ops[t->nops].key.p);
        free(t->ops[t->nops].val.p);
    }
    return 0;
}

/* Did a commit after our snapshot write something we read? */
static int conflicts(const sql_kv_txn *t)
{
    const sql_kv_mem *m = t->m;
    for (size_t c = m->nlog; c > 0 && m->log[c - 1].ts > t->start; c--) {
        const kvm_commit *cm = &m->log[c - 1];
        for (size_t k = 0; k < cm->n; k++) {
            const kvm_blob *key = &cm->keys[k];
            for (size_t r = 0; r < t->nreads; r++)
                if (mbytes_cmp(key->p, key->n, t->reads[r].p, t->reads[r].n) == 0) return 1;
            for (size_t r = 0; r < t->nranges; r++) {
                const kvm_range *rg = &t->ranges[r];
                if (in_range(key->p, key->n, rg->lo.p, rg->lo.n, rg->hi.p, rg->hi.n, rg->hi_inf))
                    return 1;
            }
        }
    }
    return 0;
}

/* Installs one write as a version at ts (a later write of the same key in the
 * same commit replaces the earlier one). Takes ownership of op's buffers. */
static int apply_op(sql_kv_mem *m, kvm_op *op, uint64_t ts)
{
    size_t i = lower_bound(m, op->key.p, op->key.n);
    if (i == m->n || mbytes_cmp(m->ents[i].key.p, m->ents[i].key.n, op->key.p, op->key.n) != 0) {
        if (op->del) return 0;
        if (grow((void **)&m->ents, &m->cap, m->n, sizeof(kvm_ent))) return MERR_NOMEM;
        memmove(&m->ents[i + 1], &m->ents[i], (m->n - i) * sizeof(kvm_ent));
        memset(&m->ents[i], 0, sizeof(kvm_ent));
        if (blob_dup(&m->ents[i].key, op->key.p, op->key.n)) {
            memmove(&m->ents[i], &m->ents[i + 1], (m->n - i) * sizeof(kvm_ent));
            return MERR_NOMEM;
        }
        m->n++;
    }
    kvm_ent *en = &m->ents[i];
    if (en->nv && en->v[en->nv - 1].ts == ts) {
        free(en->v[en->nv - 1].val.p);
        en->nv--;
    }
    if (grow((void **)&en->v, &en->cv, en->nv, sizeof(kvm_ver))) return MERR_NOMEM;
    en->v[en->nv].ts = ts;
    en->v[en->nv].del = op->del;
    en->v[en->nv].val = op->val;
    op->val.p = NULL;
    en->nv++;
    return 0;
}

static int kvm_txn_commit(sql_kv_txn *t, merr *e)
{
    sql_kv_mem *m = t->m;
    int rc = 0;
    if (t->nops == 0) goto out; /* read-only: its snapshot is consistent */
    if (conflicts(t)) {
        m->st.aborts++;
        rc =
            merr_set(e, MERR_ABORTED, "transaction aborted: a concurrent commit changed its reads");
        goto out;
    }
    if (grow((void **)&m->log, &m->caplog, m->nlog, sizeof(kvm_commit))) goto nomem;
    kvm_commit *cm = &m->log[m->nlog];
    cm->keys = calloc(t->nops, sizeof(kvm_blob));
    if (!cm->keys) goto nomem;
    uint64_t ts = m->clock + 1;
    for (size_t i = 0; i < t->nops; i++) {
        if (apply_op(m, &t->ops[i], ts)) {
            /* Memory ran out halfway: the store stays readable but this commit
             * is partial; report it loudly (tests only, never in production). */
            rc = merr_set(e, MERR_NOMEM, "kv commit: out of memory");
        }
        cm->keys[i] = t->ops[i].key;
        t->ops[i].key.p = NULL;
    }
    cm->n = t->nops;
    cm->ts = ts;
    m->nlog++;
    m->clock = ts;
    m->st.commits++;
out:
    txn_free(t);
    return rc;
nomem:
    txn_free(t);
    return merr_set(e, MERR_NOMEM, "kv commit: out of memory");
}

static void kvm_rollback(sql_kv_txn *t)
{
    txn_free(t);
}

const sql_kv_ops sql_kv_mem_ops = {
    .begin = kvm_begin,
    .get = kvm_get,
    .scan = kvm_scan,
    .iter_next = kvm_iter_next,
    .iter_close = iter_free,
    .put = kvm_put,
    .del = kvm_del,
    .savepoint = kvm_savepoint,
    .rollback_to = kvm_rollback_to,
    .commit = kvm_txn_commit,
    .rollback = kvm_rollback,
    .begin_at = kvm_begin_at,
    .read_ts = kvm_read_ts,
};
