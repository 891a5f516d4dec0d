/* storage/range_mvcc.c: MVCC point reads and writes (apply a log slot's
 * batch: versions, prepared-transaction records and their resolution), with
 * the stats kept exact inside the same transactions. */
#include "storage/range_int.h"

#include <stdlib.h>
#include <string.h>

/* RANGE_TS_MAX ("latest") maps to INT64_MAX: every version qualifies. */
sqlite3_int64 range_read_ts(uint64_t t)
{
    return range_ts_sql(t);
}

int range_check_read(range *r, uint64_t t)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    if (t == 0) return merr_set(&r->err, MERR_INVALID, "read at timestamp 0");
    if (t < r->gc_horizon)
        return merr_set(&r->err, MERR_INVALID,
                        "read at %llu is below the GC horizon %llu: versions may be gone",
                        (unsigned long long)t, (unsigned long long)r->gc_horizon);
    return 0;
}

int range_get(range *r, const uint8_t *key, size_t klen, uint64_t t, uint8_t **val, size_t *vlen,
              uint64_t *ts_out)
{
    int rc = range_check_read(r, t);
    if (rc) return rc;
    if (!range_in_span(r, key, klen)) return merr_set(&r->err, MERR_RANGE, "get: key outside span");
    sqlite3_stmt *s = range_stmt(r, RS_GET);
    if (!s) return r->err.code;
    range_bind_bytes(s, 1, key, klen);
    sqlite3_bind_int64(s, 2, range_read_ts(t));
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_type(s, 1) == SQLITE_NULL)) {
        sqlite3_reset(s);
        return MERR_NOTFOUND;
    }
    if (rc != SQLITE_ROW) {
        rc = range_sqlerr(r, rc, "get");
        sqlite3_reset(s);
        return rc;
    }
    size_t n = (size_t)sqlite3_column_bytes(s, 1);
    uint8_t *copy = NULL;
    if (n) {
        if (!(copy = malloc(n))) {
            sqlite3_reset(s);
            return merr_set(&r->err, MERR_NOMEM, "get");
        }
        memcpy(copy, sqlite3_column_blob(s, 1), n);
    }
    if (ts_out) *ts_out = range_ts_from_sql(sqlite3_column_int64(s, 0));
    sqlite3_reset(s);
    *val = copy;
    *vlen = n;
    return 0;
}

int range_put_version(range *r, const uint8_t *key, size_t klen, uint64_t ts, const uint8_t *val,
                      size_t vlen, int del)
{
    int rc;
    sqlite3_stmt *s = range_stmt(r, RS_LATEST);
    if (!s) return r->err.code;
    range_bind_bytes(s, 1, key, klen);
    rc = sqlite3_step(s);
    int have = rc == SQLITE_ROW;
    if (!have && rc != SQLITE_DONE) return range_sqlerr(r, rc, "put: latest");
    uint64_t lts = have ? range_ts_from_sql(sqlite3_column_int64(s, 0)) : 0;
    int64_t llen = have ? sqlite3_column_int64(s, 1) : 0;
    int ltomb = have ? sqlite3_column_int(s, 2) : 1;
    sqlite3_reset(s);

    int64_t nb = (int64_t)klen + (del ? 0 : (int64_t)vlen) + 8;
    range_stats d = {0};
    int fresh = !have || ts > lts;
    if (!have || ts >= lts) {
        /* The new version becomes the newest (or replaces the newest). */
        if (have && !ltomb) {
            d.live_keys--;
            d.live_bytes -= (int64_t)klen + llen;
        }
        if (!del) {
            d.live_keys++;
            d.live_bytes += (int64_t)klen + (int64_t)vlen;
        }
        if (have && ts == lts) {
            d.total_bytes -= (int64_t)klen + llen + 8;
        } else {
            d.versions++;
        }
        d.total_bytes += nb;
    } else {
        /* An older version slotted in below the newest: liveness unchanged. */
        s = range_stmt(r, RS_EXACT);
        if (!s) return r->err.code;
        range_bind_bytes(s, 1, key, klen);
        sqlite3_bind_int64(s, 2, range_ts_sql(ts));
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            d.total_bytes -= (int64_t)klen + sqlite3_column_int64(s, 0) + 8;
        } else if (rc == SQLITE_DONE) {
            d.versions++;
            fresh = 1;
        } else {
            return range_sqlerr(r, rc, "put: exact");
        }
        sqlite3_reset(s);
        d.total_bytes += nb;
    }
    s = range_stmt(r, fresh ? RS_PUT_NEW : RS_PUT);
    if (!s) return r->err.code;
    range_bind_bytes(s, 1, key, klen);
    sqlite3_bind_int64(s, 2, range_ts_sql(ts));
    if (del)
        sqlite3_bind_null(s, 3);
    else
        range_bind_bytes(s, 3, val, vlen);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return range_sqlerr(r, rc, "put");
    if (mlocal_is(key, klen)) return 0; /* range-local keys are not the range's data */
    r->stats.live_keys += d.live_keys;
    r->stats.live_bytes += d.live_bytes;
    r->stats.total_bytes += d.total_bytes;
    r->stats.versions += d.versions;
    return 0;
}

static int check_write(range *r, const range_write *w, const char *what)
{
    if (!w->key && w->klen) return merr_set(&r->err, MERR_INVALID, "%s: NULL key", what);
    if (w->klen > RANGE_KEY_MAX || (!w->del && w->vlen > RANGE_VALUE_MAX))
        return merr_set(&r->err, MERR_TOOBIG, "%s: key or value too big", what);
    if (!range_in_span(r, w->key, w->klen))
        return merr_set(&r->err, MERR_RANGE, "%s: key outside range %llu", what,
                        (unsigned long long)r->range_id);
    return 0;
}

static int validate(range *r, const range_batch *b)
{
    int rc;
    if (b->nwrites && (rc = range_check_ts(r, b->ts, "write")) != 0) return rc;
    for (size_t i = 0; i < b->nwrites; i++)
        if ((rc = check_write(r, &b->writes[i], "apply")) != 0) return rc;
    for (size_t i = 0; i < b->nprepares; i++) {
        const range_intent *it = &b->prepares[i];
        if (!it->txn_len) return merr_set(&r->err, MERR_INVALID, "prepare: empty txn id");
        if ((rc = range_check_ts(r, it->prepare_ts, "prepare")) != 0) return rc;
        for (size_t j = 0; j < it->nwrites; j++)
            if ((rc = check_write(r, &it->writes[j], "prepare")) != 0) return rc;
        for (size_t j = 0; j < it->nspans; j++) {
            const range_span *sp = &it->spans[j];
            if (sp->klen > RANGE_KEY_MAX || sp->elen > RANGE_KEY_MAX ||
                (sp->elen && mbytes_cmp(sp->key, sp->klen, sp->end, sp->elen) >= 0))
                return merr_set(&r->err, MERR_INVALID, "prepare: bad span");
        }
    }
    for (size_t i = 0; i < b->nresolves; i++)
        if (b->resolves[i].commit_ts &&
            (rc = range_check_ts(r, b->resolves[i].commit_ts, "commit")))
            return rc;
    return 0;
}

static int add_intent(range *r, const range_intent *it)
{
    sqlite3_stmt *s = range_stmt(r, RS_INTENT_PUT);
    if (!s) return r->err.code;
    range_bind_bytes(s, 1, it->txn, it->txn_len);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)it->prepare_ts);
    range_bind_bytes(s, 3, it->coord, it->coord_len);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return range_sqlerr(r, rc, "prepare (duplicate txn id?)");
    int64_t seq = 0;
    for (size_t j = 0; j < it->nwrites + it->nspans; j++) {
        s = range_stmt(r, RS_INTENT_ITEM_PUT);
        if (!s) return r->err.code;
        range_bind_bytes(s, 1, it->txn, it->txn_len);
        sqlite3_bind_int64(s, 2, seq++);
        if (j < it->nwrites) {
            const range_write *w = &it->writes[j];
            sqlite3_bind_int(s, 3, w->del ? 1 : 0);
            range_bind_bytes(s, 4, w->key, w->klen);
            /* Bound every time: a statement keeps its last binding, and a
             * delete's would point into a log entry freed since. */
            if (w->del)
                sqlite3_bind_null(s, 5);
            else
                range_bind_bytes(s, 5, w->val, w->vlen);
        } else {
            const range_span *sp = &it->spans[j - it->nwrites];
            sqlite3_bind_int(s, 3, 2);
            range_bind_bytes(s, 4, sp->key, sp->klen);
            range_bind_bytes(s, 5, sp->end, sp->elen);
        }
        rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) return range_sqlerr(r, rc, "prepare item");
    }
    return 0;
}

static int run_txn_stmt(range *r, int id, const uint8_t *txn, size_t len)
{
    sqlite3_stmt *s = range_stmt(r, id);
    if (!s) return r->err.code;
    range_bind_bytes(s, 1, txn, len);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : range_sqlerr(r, rc, "resolve");
}

static int resolve(range *r, const range_resolve *res)
{
    sqlite3_stmt *s = range_stmt(r, RS_INTENT_GET);
    if (!s) return r->err.code;
    range_bind_bytes(s, 1, res->txn, res->txn_len);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    /* Nothing prepared: resolved before (an outcome re-proposed by a new
     * leader, a decision delivered twice). Same outcome, nothing to do. */
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) return range_sqlerr(r, rc, "resolve");
    if (res->commit_ts) {
        /* The statement over intent_items stays open while versions are
         * written: a different table, so SQLite allows it. */
        s = range_stmt(r, RS_INTENT_ITEMS);
        if (!s) return r->err.code;
        range_bind_bytes(s, 1, res->txn, res->txn_len);
        mbuf k = MBUF_INIT, v = MBUF_INIT;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            int kind = sqlite3_column_int(s, 0);
            if (kind == 2) continue;
            mbuf_reset(&k);
            mbuf_reset(&v);
            if (mbuf_append(&k, sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1)) ||
                mbuf_append(&v, sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2))) {
                rc = merr_set(&r->err, MERR_NOMEM, "resolve");
                break;
            }
            if ((rc = range_put_version(r, k.data, k.len, res->commit_ts, v.data, v.len,
                                        kind == 1)) != 0)
                break;
        }
        sqlite3_reset(s);
        mbuf_free(&k);
        mbuf_free(&v);
        if (rc == SQLITE_DONE)
            rc = 0;
        else if (rc > 0)
            rc = range_sqlerr(r, rc, "resolve items");
        if (rc) return rc;
    }
    if ((rc = run_txn_stmt(r, RS_INTENT_ITEMS_DEL, res->txn, res->txn_len)) != 0) return rc;
    return run_txn_stmt(r, RS_INTENT_DEL, res->txn, res->txn_len);
}

/* The effects of one batch inside an open transaction (no applied update). */
static int apply_effects(range *r, const range_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->nwrites && !rc; i++) {
        const range_write *w = &b->writes[i];
        rc = range_put_version(r, w->key, w->klen, b->ts, w->val, w->vlen, w->del);
    }
    for (size_t i = 0; i < b->nprepares && !rc; i++) rc = add_intent(r, &b->prepares[i]);
    for (size_t i = 0; i < b->nresolves && !rc; i++) rc = resolve(r, &b->resolves[i]);
    return rc;
}

int range_apply_many(range *r, const range_batch *b, const uint64_t *slots, size_t n,
                     size_t *napplied)
{
    if (napplied) *napplied = 0;
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    uint64_t last = r->applied;
    size_t todo = 0;
    for (size_t i = 0; i < n; i++) {
        if (slots[i] <= last) continue; /* applied before: skipped */
        if (slots[i] > (uint64_t)INT64_MAX)
            return merr_set(&r->err, MERR_INVALID, "slot out of range");
        int rc = validate(r, &b[i]);
        if (rc) return rc;
        last = slots[i];
        todo++;
    }
    if (!todo) return 0;
    int rc = range_begin(r);
    if (rc) return rc;
    last = r->applied;
    for (size_t i = 0; i < n && !rc; i++)
        if (slots[i] > last) {
            rc = apply_effects(r, &b[i]);
            last = slots[i];
        }
    uint64_t old_applied = r->applied;
    if (!rc) {
        r->applied = last;
        rc = range_meta_save(r);
    }
    if (!rc) rc = range_commit(r);
    if (rc) {
        merr saved = r->err;
        range_rollback(r);
        /* The in-memory stats moved with the failed writes: reload them. */
        r->applied = old_applied;
        if (!r->corrupt) range_meta_load(r);
        r->err = saved;
    } else if (napplied) {
        *napplied = todo;
    }
    return rc;
}

int range_apply(range *r, const range_batch *b, uint64_t slot, int *skipped)
{
    size_t done = 0;
    int rc = range_apply_many(r, b, &slot, 1, &done);
    if (!rc && skipped) *skipped = done == 0;
    return rc;
}

/* Reads one txn's items into ws/sps, copying bytes into *store. */
static int load_items(range *r, sqlite3_stmt *items, mbuf *store, range_write **ws, size_t *nw,
                      range_span **sps, size_t *ns)
{
    size_t cw = 0, cs = 0;
    int rc;
    while ((rc = sqlite3_step(items)) == SQLITE_ROW)
        sqlite3_column_int(items, 0) == 2 ? cs++ : cw++;
    if (rc != SQLITE_DONE) return range_sqlerr(r, rc, "list intents");
    *ws = calloc(cw + 1, sizeof(**ws));
    *sps = calloc(cs + 1, sizeof(**sps));
    size_t *off = calloc(2 * (cw + cs) + 2, sizeof(*off));
    if (!*ws || !*sps || !off) {
        free(off);
        return merr_set(&r->err, MERR_NOMEM, "list intents");
    }
    /* Column pointers die at the next step, so bytes go to `store`; item
     * pointers are fixed once `store` stops growing. */
    size_t w = 0, sp = 0, i = 0;
    sqlite3_reset(items);
    while ((rc = sqlite3_step(items)) == SQLITE_ROW && w + sp < cw + cs) {
        int kind = sqlite3_column_int(items, 0);
        size_t kl = (size_t)sqlite3_column_bytes(items, 1);
        size_t vl = (size_t)sqlite3_column_bytes(items, 2);
        off[i++] = store->len;
        if (mbuf_append(store, sqlite3_column_blob(items, 1), kl)) goto nomem;
        off[i++] = store->len;
        if (mbuf_append(store, sqlite3_column_blob(items, 2), vl)) goto nomem;
        if (kind == 2) {
            (*sps)[sp].klen = kl;
            (*sps)[sp++].elen = vl;
        } else {
            (*ws)[w].klen = kl;
            (*ws)[w].vlen = vl;
            (*ws)[w++].del = kind == 1;
        }
    }
    /* Rows were read in seq order; replay that order to fix pointers. */
    sqlite3_reset(items);
    size_t iw = 0, is = 0;
    for (size_t j = 0; j < w + sp && sqlite3_step(items) == SQLITE_ROW; j++) {
        const uint8_t *k = store->data + off[2 * j], *v = store->data + off[2 * j + 1];
        if (sqlite3_column_int(items, 0) == 2) {
            (*sps)[is].key = k;
            (*sps)[is++].end = v;
        } else {
            (*ws)[iw].key = k;
            (*ws)[iw++].val = v;
        }
    }
    free(off);
    *nw = w;
    *ns = sp;
    return 0;
nomem:
    free(off);
    return merr_set(&r->err, MERR_NOMEM, "list intents");
}

int range_list_intents(range *r, range_intent_fn fn, void *arg, size_t *nout)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    sqlite3_stmt *s = NULL, *items = NULL;
    size_t n = 0;
    int rc = sqlite3_prepare_v2(r->db, "SELECT txn, prepare_ts, coord FROM intents ORDER BY txn",
                                -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            r->db, "SELECT kind, key, val FROM intent_items WHERE txn = ?1 ORDER BY seq", -1,
            &items, NULL);
    if (rc != SQLITE_OK) {
        rc = range_sqlerr(r, rc, "list intents");
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        range_intent it = {0};
        it.txn = sqlite3_column_blob(s, 0);
        it.txn_len = (size_t)sqlite3_column_bytes(s, 0);
        it.prepare_ts = (uint64_t)sqlite3_column_int64(s, 1);
        it.coord = sqlite3_column_blob(s, 2);
        it.coord_len = (size_t)sqlite3_column_bytes(s, 2);
        sqlite3_reset(items);
        range_bind_bytes(items, 1, it.txn, it.txn_len);
        mbuf store = MBUF_INIT;
        range_write *ws = NULL;
        range_span *sps = NULL;
        rc = load_items(r, items, &store, &ws, &it.nwrites, &sps, &it.nspans);
        it.writes = ws;
        it.spans = sps;
        int stop = rc ? 1 : fn(arg, &it);
        if (!rc) n++;
        free(ws);
        free(sps);
        mbuf_free(&store);
        if (rc) goto out;
        if (stop) break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : range_sqlerr(r, rc, "list intents");
out:
    if (nout) *nout = n;
    sqlite3_finalize(items);
    sqlite3_finalize(s);
    return rc;
}
