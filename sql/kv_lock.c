/* The serializing KV wrapper (kv_lock.h): every call takes the wrapper's
 * mutex around the inner call. Transactions and iterators are wrapped so
 * each carries the lock it needs. */
#include "sql/kv_lock.h"

#include <pthread.h>
#include <stdlib.h>

struct sql_kv_lock {
    const sql_kv_ops *ops;
    void *ctx;
    pthread_mutex_t mu;
};

struct sql_kv_txn {
    sql_kv_lock *l;
    sql_kv_txn *in;
};

struct sql_kv_iter {
    sql_kv_lock *l;
    sql_kv_iter *in;
};

int sql_kv_lock_open(const sql_kv_ops *ops, void *ctx, sql_kv_lock **out, merr *e)
{
    sql_kv_lock *l = calloc(1, sizeof(*l));
    if (!l) return merr_set(e, MERR_NOMEM, "out of memory");
    l->ops = ops;
    l->ctx = ctx;
    pthread_mutex_init(&l->mu, NULL);
    *out = l;
    return 0;
}

void sql_kv_lock_close(sql_kv_lock *l)
{
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

#define LOCKED(l, call)                                                                            \
    do {                                                                                           \
        pthread_mutex_lock(&(l)->mu);                                                              \
        call;                                                                                      \
        pthread_mutex_unlock(&(l)->mu);                                                            \
    } while (0)

static int lk_begin(void *kv_ctx, unsigned flags, sql_kv_txn **out, merr *e)
{
    sql_kv_lock *l = kv_ctx;
    sql_kv_txn *t = calloc(1, sizeof(*t));
    int rc;
    if (!t) return merr_set(e, MERR_NOMEM, "out of memory");
    t->l = l;
    LOCKED(l, rc = l->ops->begin(l->ctx, flags, &t->in, e));
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int lk_get(sql_kv_txn *t, const uint8_t *key, size_t klen, mbuf *val, merr *e)
{
    int rc;
    LOCKED(t->l, rc = t->l->ops->get(t->in, key, klen, val, e));
    return rc;
}

static int lk_scan(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                   int reverse, size_t limit, sql_kv_iter **out, merr *e)
{
    sql_kv_iter *it = calloc(1, sizeof(*it));
    int rc;
    if (!it) return merr_set(e, MERR_NOMEM, "out of memory");
    it->l = t->l;
    LOCKED(t->l, rc = t->l->ops->scan(t->in, lo, lolen, hi, hilen, reverse, limit, &it->in, e));
    if (rc) {
        free(it);
        return rc;
    }
    *out = it;
    return 0;
}

static int lk_iter_next(sql_kv_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                        size_t *vlen, merr *e)
{
    int rc;
    LOCKED(it->l, rc = it->l->ops->iter_next(it->in, key, klen, val, vlen, e));
    return rc;
}

static void lk_iter_close(sql_kv_iter *it)
{
    if (!it) return;
    LOCKED(it->l, it->l->ops->iter_close(it->in));
    free(it);
}

static int lk_put(sql_kv_txn *t, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  merr *e)
{
    int rc;
    LOCKED(t->l, rc = t->l->ops->put(t->in, key, klen, val, vlen, e));
    return rc;
}

static int lk_del(sql_kv_txn *t, const uint8_t *key, size_t klen, merr *e)
{
    int rc;
    LOCKED(t->l, rc = t->l->ops->del(t->in, key, klen, e));
    return rc;
}

static int lk_savepoint(sql_kv_txn *t, uint64_t *mark, merr *e)
{
    int rc;
    LOCKED(t->l, rc = t->l->ops->savepoint(t->in, mark, e));
    return rc;
}

static int lk_rollback_to(sql_kv_txn *t, uint64_t mark, merr *e)
{
    int rc;
    LOCKED(t->l, rc = t->l->ops->rollback_to(t->in, mark, e));
    return rc;
}

static int lk_commit(sql_kv_txn *t, merr *e)
{
    int rc;
    LOCKED(t->l, rc = t->l->ops->commit(t->in, e));
    free(t);
    return rc;
}

static void lk_rollback(sql_kv_txn *t)
{
    LOCKED(t->l, t->l->ops->rollback(t->in));
    free(t);
}

static int lk_begin_at(void *kv_ctx, const sql_kv_at *at, sql_kv_txn **out, merr *e)
{
    sql_kv_lock *l = kv_ctx;
    if (!l->ops->begin_at)
        return merr_set(e, MERR_UNSUPPORTED, "AS OF SYSTEM TIME is not supported by this store");
    sql_kv_txn *t = calloc(1, sizeof(*t));
    int rc;
    if (!t) return merr_set(e, MERR_NOMEM, "out of memory");
    t->l = l;
    LOCKED(l, rc = l->ops->begin_at(l->ctx, at, &t->in, e));
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int lk_read_ts(sql_kv_txn *t, uint64_t *ts, merr *e)
{
    int rc;
    if (!t->l->ops->read_ts)
        return merr_set(e, MERR_UNSUPPORTED, "this store has no snapshot timestamps");
    LOCKED(t->l, rc = t->l->ops->read_ts(t->in, ts, e));
    return rc;
}

const sql_kv_ops sql_kv_lock_ops = {
    .begin = lk_begin,
    .get = lk_get,
    .scan = lk_scan,
    .iter_next = lk_iter_next,
    .iter_close = lk_iter_close,
    .put = lk_put,
    .del = lk_del,
    .savepoint = lk_savepoint,
    .rollback_to = lk_rollback_to,
    .commit = lk_commit,
    .rollback = lk_rollback,
    .begin_at = lk_begin_at,
    .read_ts = lk_read_ts,
};
