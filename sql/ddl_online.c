/* Online CREATE INDEX: F1's "Online, Asynchronous Schema Change in F1"
 * (Rae et al., VLDB 2013) adapted to a schema version every transaction
 * reads under a lock (docs/sql.md, "Online CREATE INDEX").
 *
 *   absent --(txn 1: add WRITE_ONLY, bump)--> WRITE_ONLY
 *   WRITE_ONLY --(batches: backfill rows [from, from+N))--> WRITE_ONLY
 *   WRITE_ONLY --(txn 3: PUBLIC, bump)--> PUBLIC
 *   WRITE_ONLY --(failure: delete entries in batches, then drop, bump)--> absent
 *
 * Txn 1 is the DDL statement itself (ddl.c); this file runs the rest. Each
 * batch is a short transaction of its own, so writers wait on the schema
 * version only for the two version bumps, never for the backfill. A batch
 * reads the version like any transaction: if a DDL changed it, the session
 * reloads the catalog and the batch finds its index again by id (or stops:
 * someone dropped it). Writers keep a WRITE_ONLY index (vtab_write.c) and
 * every committed transaction ran at the newest version, so after the last
 * batch every row has its entry and no entry lacks a row. */
#include <stdlib.h>
#include <string.h>

#include "common/backoff.h"
#include "common/mtime.h"
#include "sql/ddl.h"
#include "sql/session.h"

#define BF_BATCH_DEFAULT 500
/* Retries of one batch that lost a conflict (a writer on its rows, a range
 * split), with the session's backoff: 10 ms doubling to 1 s. */
#define BF_RETRIES    16
#define BF_RETRY_BASE (10 * MTIME_MS)
#define BF_RETRY_MAX  MTIME_S

static int (*g_hook)(void *arg);
static void *g_hook_arg;
static size_t g_batch = BF_BATCH_DEFAULT;

void sql_ddl_set_backfill_hook(int (*fn)(void *arg), void *arg)
{
    g_hook = fn;
    g_hook_arg = arg;
}

void sql_ddl_set_backfill_batch(size_t rows)
{
    g_batch = rows ? rows : BF_BATCH_DEFAULT;
}

typedef struct bf {
    uint32_t tid, iid;
    const char *name;
    mbuf from; /* the next row key to backfill; empty: the first */
    int done;
    mbuf next; /* where the running batch ends: from once it committed */
    int next_done;
} bf;

/* Why the statement must stop between batches, or 0. */
static int stop_reason(sql_session *s, merr *e)
{
    int why = __atomic_load_n(&s->stopped, __ATOMIC_SEQ_CST);
    if (why != MERR_CANCELED && s->expired && s->expired(s->expired_arg)) why = MERR_TIMEOUT;
    if (why != MERR_CANCELED && why != MERR_TIMEOUT) return 0;
    return merr_set(e, why, "%s", why == MERR_TIMEOUT ? "statement timeout" : "canceled");
}

/* Runs fn in a transaction of its own, retrying lost conflicts. While
 * `bounded`, the statement's deadline and cancel end the retries too. */
static int run_txn(sql_session *s, int (*fn)(sql_session *, bf *, merr *), bf *b, int bounded,
                   merr *e)
{
    for (int attempt = 0;; attempt++) {
        int rc = sql_txn_begin(s, e);
        if (!rc) rc = fn(s, b, e);
        if (!rc) rc = sql_txn_end(s, 1, e);
        if (rc) sql_txn_end(s, 0, NULL);
        if ((rc != MERR_ABORTED && rc != MERR_RETRY) || attempt + 1 >= BF_RETRIES ||
            (bounded && stop_reason(s, NULL)))
            return rc;
        mbackoff_retry_sleep(attempt, BF_RETRY_BASE, BF_RETRY_MAX);
        merr_clear(e);
    }
}

/* The index in the catalog the transaction loaded, or NULL. */
static sql_index *find_index(sql_session *s, const bf *b, sql_table **t)
{
    *t = sql_find_table_id(s, b->tid);
    for (int k = 0; *t && k < (*t)->nidx; k++)
        if ((*t)->idx[k].id == b->iid) return &(*t)->idx[k];
    return NULL;
}

static int gone(const bf *b, merr *e)
{
    return merr_set(e, MERR_INVALID,
                    "CREATE INDEX %s: the index or its table was dropped while it was built",
                    b->name);
}

static int batch(sql_session *s, bf *b, merr *e)
{
    sql_table *t;
    sql_index *ix = find_index(s, b, &t);
    if (!ix || !ix->write_only) return gone(b, e);
    mbuf_reset(&b->next);
    if (mbuf_append(&b->next, b->from.data, b->from.len))
        return merr_set(e, MERR_NOMEM, "out of memory");
    return sql_index_backfill(s, t, ix, g_batch, &b->next, &b->next_done, e);
}

/* The table's descriptor and the position of the index in it. */
static int read_desc(sql_session *s, const bf *b, sql_desc *out, size_t *pos, merr *e)
{
    sql_desc *d = NULL;
    size_t nd = 0;
    int rc = sql_catalog_read(s, &d, &nd, e), found = 0;
    for (size_t i = 0; i < nd; i++) {
        if (!rc && !found && d[i].kind == SQL_OBJ_TABLE && d[i].id == b->tid) {
            for (size_t j = 0; j < d[i].nidx; j++)
                if (d[i].idx[j].id == b->iid) {
                    *pos = j;
                    found = 1;
                }
            if (found) {
                *out = d[i]; /* the caller frees it */
                continue;
            }
        }
        sql_desc_free(&d[i]);
    }
    free(d);
    if (rc) return rc;
    return found ? 0 : MERR_NOTFOUND;
}

static int publish(sql_session *s, bf *b, merr *e)
{
    sql_desc d;
    size_t j;
    int rc = read_desc(s, b, &d, &j, e);
    if (rc == MERR_NOTFOUND) return gone(b, e);
    if (rc) return rc;
    d.idx[j].state = SQL_IDX_PUBLIC;
    rc = sql_catalog_put(s, &d, e);
    if (!rc) rc = sql_catalog_bump(s, e);
    s->catalog_dirty = 1;
    sql_desc_free(&d);
    return rc;
}

/* Deletes up to a batch of the index's entries; done when none were left. */
static int unfill(sql_session *s, bf *b, merr *e)
{
    mkey_val pv[2] = {mkey_int(b->tid, 0), mkey_int(b->iid, 0)};
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    sql_kv_iter *it = NULL;
    size_t n = 0;
    int rc = mkey_encode_prefix(pv, 2, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (!rc) rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 0, g_batch, &it, e);
    while (!rc) {
        const uint8_t *k, *v;
        size_t kl, vl;
        rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
        if (rc <= 0) break;
        n++;
        rc = s->ops->del(s->txn, k, kl, e);
    }
    if (it) s->ops->iter_close(it);
    mbuf_free(&lo);
    mbuf_free(&hi);
    b->done = n < g_batch;
    return rc < 0 ? rc : 0;
}

/* Drops the descriptor with what writers added since the last unfill. */
static int drop(sql_session *s, bf *b, merr *e)
{
    sql_desc d;
    size_t j;
    int rc = read_desc(s, b, &d, &j, e);
    if (rc == MERR_NOTFOUND) return 0; /* dropped meanwhile, entries and all */
    if (rc) return rc;
    free(d.idx[j].name);
    free(d.idx[j].sql);
    memmove(&d.idx[j], &d.idx[j + 1], (d.nidx - j - 1) * sizeof(*d.idx));
    d.nidx--;
    rc = sql_catalog_put(s, &d, e);
    if (!rc) rc = sql_delete_prefix(s, b->tid, b->iid, e);
    if (!rc) rc = sql_catalog_bump(s, e);
    s->catalog_dirty = 1;
    sql_desc_free(&d);
    return rc;
}

/* Removes the unfinished index: its entries in batches while it is still
 * WRITE_ONLY (writers keep adding theirs), then the descriptor and the rest
 * in one transaction. Not bounded by the deadline: it is the way out. */
static int remove_index(sql_session *s, bf *b, merr *e)
{
    int rc = 0;
    b->done = 0;
    while (!rc && !b->done) rc = run_txn(s, unfill, b, 0, e);
    if (!rc) rc = run_txn(s, drop, b, 0, e);
    return rc;
}

int sql_ddl_online_index(sql_session *s, const sql_ddl_info *info, merr *e)
{
    bf b = {.tid = info->bf_tid,
            .iid = info->bf_iid,
            .name = info->create_index ? info->create_index : "?",
            .from = MBUF_INIT,
            .next = MBUF_INIT};
    int rc = 0;
    while (!rc && !b.done) {
        if (g_hook && g_hook(g_hook_arg)) {
            mbuf_free(&b.from);
            mbuf_free(&b.next);
            return merr_set(e, MERR_INTERNAL, "CREATE INDEX %s: backfill abandoned (test hook)",
                            b.name);
        }
        rc = stop_reason(s, e);
        if (!rc) rc = run_txn(s, batch, &b, 1, e);
        if (!rc) { /* committed: the next batch starts where it ended */
            mbuf t = b.from;
            b.from = b.next;
            b.next = t;
            b.done = b.next_done;
        }
    }
    if (!rc) rc = run_txn(s, publish, &b, 1, e);
    mbuf_free(&b.from);
    mbuf_free(&b.next);
    if (!rc) return 0;
    merr cause = {0}, why = {0};
    if (e) cause = *e;
    /* The way out runs even when the statement was stopped: without the
     * deadline (the catalog reload runs SQLite, which checks it) and, at
     * the edge, without the KV's deadline and cancel. */
    int (*expired)(void *) = s->expired;
    s->expired = NULL;
    if (s->unstop) s->unstop(s->unstop_arg);
    int rrc = remove_index(s, &b, &why);
    s->expired = expired;
    if (rrc) /* the user can finish the job */
        return merr_set(e, rc, "%s (the unfinished index %s remains: DROP INDEX %s; %s)",
                        cause.msg[0] ? cause.msg : merr_str(rc), b.name, b.name, merr_msg(&why));
    if (e) *e = cause;
    return rc;
}
