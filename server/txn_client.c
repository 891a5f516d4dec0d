/* The remote sql/kv.h implementation (see txn_client.h): connection and
 * failover, the retrying call, begin/get/put/del/savepoints/commit. */
#include "server/txn_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/mtime.h"
#include "server/txn_client_int.h"
#include "timesvc/hlc.h"

#define TC_ATTEMPT_NS (10LL * MTIME_S) /* one rpc; a lock wait longer than this is re-asked */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- connection ---- */

/* Switches to host's connection, opening one if none is kept: following a
 * NOT_LEADER hint to another range's leaseholder and back costs no new
 * connection. evict: the current one failed, close it first. */
static int tc_switch(txn_client *c, const char *host, int evict, merr *e)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; evict && i < c->nconns; i++) {
        if (c->conns[i].rpc != c->rpc) continue;
        cli_rpc_close(c->rpc);
        c->conns[i] = c->conns[--c->nconns];
        break;
    }
    c->rpc = NULL;
    if (host != c->cur) snprintf(c->cur, sizeof(c->cur), "%s", host);
    for (int i = 0; i < c->nconns; i++)
        if (!strcmp(c->conns[i].host, c->cur)) c->rpc = c->conns[i].rpc;
    int rc = 0;
    if (!c->rpc && (rc = cli_rpc_open(c->cur, c->certs_dir, "root", &c->rpc, e)) == 0) {
        if (c->nconns == TC_MAX_CONNS) { /* drop the oldest */
            cli_rpc_close(c->conns[0].rpc);
            memmove(&c->conns[0], &c->conns[1], (TC_MAX_CONNS - 1) * sizeof(c->conns[0]));
            c->nconns--;
        }
        snprintf(c->conns[c->nconns].host, sizeof(c->conns[0].host), "%s", c->cur);
        c->conns[c->nconns++].rpc = c->rpc;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int tc_connect(txn_client *c, const char *host, merr *e)
{
    return tc_switch(c, host, 0, e);
}

void txn_client_set_write_limit(txn_client *c, size_t bytes)
{
    c->write_limit = bytes;
}

int txn_client_open(const char *hosts_csv, const char *certs_dir, txn_client **out, merr *e)
{
    txn_client *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    c->timeout_ns = 30 * MTIME_S;
    pthread_mutex_init(&c->mu, NULL);
    txn_routes_init(&c->routes);
    for (const char *p = hosts_csv ? hosts_csv : ""; *p && c->nhosts < TC_MAX_HOSTS;) {
        size_t l = strcspn(p, ",");
        if (l && l < sizeof(c->hosts[0]))
            snprintf(c->hosts[c->nhosts++], sizeof(c->hosts[0]), "%.*s", (int)l, p);
        p += l;
        if (*p == ',') p++;
    }
    int rc = 0;
    if (c->nhosts == 0) {
        rc = merr_set(e, MERR_INVALID, "no hosts given");
        goto err;
    }
    if (certs_dir && !(c->certs_dir = strdup(certs_dir))) {
        rc = merr_set(e, MERR_NOMEM, "out of memory");
        goto err;
    }
    c->next = c->nhosts > 1 ? 1 : 0;
    snprintf(c->home, sizeof(c->home), "%s", c->hosts[0]);
    if ((rc = tc_connect(c, c->hosts[0], e))) goto err;
    *out = c;
    return 0;
err:
    pthread_mutex_destroy(&c->mu);
    free(c->certs_dir);
    free(c);
    return rc;
}

void txn_client_close(txn_client *c)
{
    if (!c) return;
    for (int i = 0; i < c->nconns; i++) cli_rpc_close(c->conns[i].rpc);
    txn_routes_free(&c->routes);
    mbuf_free(&c->cancel_rollback);
    pthread_mutex_destroy(&c->mu);
    free(c->certs_dir);
    free(c);
}

void txn_client_cancel(txn_client *c)
{
    atomic_store(&c->canceled, 1);
    pthread_mutex_lock(&c->mu);
    if (c->rpc && c->cancel_rollback.len)
        (void)cli_rpc_send(c->rpc, "txn.Rollback", c->cancel_rollback.data, c->cancel_rollback.len,
                           2 * MTIME_S);
    else if (c->rpc)
        cli_rpc_interrupt(c->rpc);
    tc_local_wake(c);
    pthread_mutex_unlock(&c->mu);
}

void txn_client_clear_cancel(txn_client *c)
{
    atomic_store(&c->canceled, 0);
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nconns; i++) cli_rpc_clear_interrupt(c->conns[i].rpc);
    pthread_mutex_unlock(&c->mu);
}

void txn_client_set_next_priority(txn_client *c, uint64_t prio)
{
    c->next_prio = prio;
}

uint64_t txn_client_priority(const sql_kv_txn *t)
{
    return t->prio;
}

void txn_client_set_timeout(txn_client *c, int64_t ns)
{
    c->timeout_ns = ns > 0 ? ns : 30 * MTIME_S;
}

void txn_client_set_deadline(txn_client *c, int64_t deadline_us)
{
    /* The caller's clock is Unix time; calls measure monotonic time. */
    c->stmt_deadline_ns =
        deadline_us ? mtime_mono_ns() + (deadline_us * 1000 - mtime_real_ns()) : 0;
}

/* ---- calls ---- */

static const Meridian__Kv__Error *err_of(const ProtobufCMessage *m, int *aborted)
{
    *aborted = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &meridian__txn__get_response__descriptor) {
        *aborted = ((const Meridian__Txn__GetResponse *)m)->aborted;
        return ((const Meridian__Txn__GetResponse *)m)->error;
    }
    if (d == &meridian__txn__scan_response__descriptor) {
        *aborted = ((const Meridian__Txn__ScanResponse *)m)->aborted;
        return ((const Meridian__Txn__ScanResponse *)m)->error;
    }
    if (d == &meridian__txn__commit_response__descriptor) {
        *aborted = ((const Meridian__Txn__CommitResponse *)m)->aborted;
        return ((const Meridian__Txn__CommitResponse *)m)->error;
    }
    *aborted = ((const Meridian__Txn__RollbackResponse *)m)->aborted;
    return ((const Meridian__Txn__RollbackResponse *)m)->error;
}

/* Moves on to the next seed host; after a full round, backs off a little. */
static int next_host(txn_client *c, merr *e)
{
    int rc = tc_switch(c, c->hosts[c->next], 1, e);
    snprintf(c->home, sizeof(c->home), "%s", c->cur);
    c->next = (c->next + 1) % c->nhosts;
    if (c->next == 0) sleep_ms(100);
    return rc;
}

/* To the leaseholder the cache knows for `to`, if it is not the current
 * host; if it cannot be reached, forget it and stay. */
static int tc_route(txn_client *c, const tc_to *to, merr *e)
{
    const char *lead = !to            ? NULL
                       : to->klen     ? txn_routes_for_key(&c->routes, to->key, to->klen)
                       : to->range_id ? txn_routes_for_range(&c->routes, to->range_id)
                                      : NULL;
    if (!lead || !strcmp(lead, c->cur)) return 0;
    char prev[sizeof(c->cur)];
    snprintf(prev, sizeof(prev), "%s", c->cur);
    merr ce = {0};
    if (tc_connect(c, lead, &ce) == 0) return 0;
    if (to->klen)
        txn_routes_forget_key(&c->routes, to->key, to->klen);
    else
        txn_routes_forget_range(&c->routes, to->range_id);
    return tc_connect(c, prev, e);
}

static void tc_forget(txn_client *c, const tc_to *to)
{
    if (!to) return;
    if (to->klen)
        txn_routes_forget_key(&c->routes, to->key, to->klen);
    else if (to->range_id)
        txn_routes_forget_range(&c->routes, to->range_id);
}

/* A read answered by the leaseholder of its range: remember where it is. */
static void tc_learn(txn_client *c, const ProtobufCMessage *m)
{
    const ProtobufCBinaryData *s, *e;
    uint64_t id;
    if (m->descriptor == &meridian__txn__get_response__descriptor) {
        const Meridian__Txn__GetResponse *g = (const Meridian__Txn__GetResponse *)m;
        if (!g->leaseholder) return;
        s = &g->range_start, e = &g->range_end, id = g->range_id;
    } else if (m->descriptor == &meridian__txn__scan_response__descriptor) {
        const Meridian__Txn__ScanResponse *g = (const Meridian__Txn__ScanResponse *)m;
        if (!g->leaseholder) return;
        s = &g->range_start, e = &g->range_end, id = g->range_id;
    } else {
        return;
    }
    if (id) (void)txn_routes_learn(&c->routes, id, s->data, s->len, e->data, e->len, c->cur);
}

int tc_call(txn_client *c, const char *method, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *desc, const tc_to *to, ProtobufCMessage **out,
            merr *e)
{
    int rc = tc_route(c, to, e);
    if (rc) return rc;
    c->calls++;
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return merr_set(e, MERR_NOMEM, "out of memory");
    protobuf_c_message_pack(req, buf);
    int64_t deadline = mtime_mono_ns() + c->timeout_ns;
    rc = merr_set(e, MERR_TIMEOUT, "%s: no leaseholder answered in time", method);
    /* Reads may be cut short by a cancel; commits and rollbacks never are
     * (a commit is resolved by a rollback instead: txn_client_cancel). */
    int reads = !strcmp(method, "txn.Get") || !strcmp(method, "txn.Scan");
    int rollback = !strcmp(method, "txn.Rollback");
    int not_found = 0; /* RANGE_NOT_FOUND answers in a row */
    /* The statement's deadline bounds every call but a rollback (it cleans
     * up after a statement cut short, on its own budget). A read cut short
     * is a cancel, as the client's own deadline would make it; a commit's
     * outcome is unknown. */
    if (c->stmt_deadline_ns && c->stmt_deadline_ns < deadline && !rollback) {
        deadline = c->stmt_deadline_ns;
        rc = reads ? merr_set(e, MERR_CANCELED, "%s: statement timeout", method)
                   : merr_set(e, MERR_TIMEOUT, "%s: statement timeout: its outcome is unknown",
                              method);
    }
    while (mtime_mono_ns() < deadline) {
        mbuf reply = MBUF_INIT;
        merr ce = {0};
        int64_t left = deadline - mtime_mono_ns();
        if (reads && atomic_load(&c->canceled)) {
            rc = merr_set(e, MERR_CANCELED, "%s: canceled", method);
            break;
        }
        int64_t tmo = left < TC_ATTEMPT_NS ? left : TC_ATTEMPT_NS;
        int crc = tc_rpc(c, method, buf, len, tmo, reads, &reply, &ce);
        if (crc) {
            mbuf_free(&reply);
            if (crc == MERR_INVALID || crc == MERR_UNSUPPORTED || crc == MERR_PROTOCOL ||
                crc == MERR_CANCELED) {
                rc = crc;
                *e = ce;
                break;
            }
            /* Unreachable, stopping, or a timeout: try the next node (a
             * retried request is safe: reads re-lock, commits are
             * idempotent by transaction id). */
            if (crc == MERR_TIMEOUT) continue;
            if (next_host(c, e)) {
                rc = e->code;
                break;
            }
            continue;
        }
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, reply.len, reply.data);
        mbuf_free(&reply);
        if (!m) {
            rc = merr_set(e, MERR_PROTOCOL, "%s: undecodable reply from %s", method, c->cur);
            break;
        }
        int aborted;
        const Meridian__Kv__Error *err = err_of(m, &aborted);
        if (aborted) {
            rc = merr_set(e, MERR_ABORTED, "transaction aborted: %s",
                          err && err->message ? err->message : "retry it");
            protobuf_c_message_free_unpacked(m, NULL);
            break;
        }
        if (!err) {
            tc_learn(c, m);
            *out = m;
            rc = 0;
            break;
        }
        int kind = err->kind;
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", err->message ? err->message : "");
        char hint[128] = "";
        if (err->leader_address) snprintf(hint, sizeof(hint), "%s", err->leader_address);
        protobuf_c_message_free_unpacked(m, NULL);
        if (kind != MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND) not_found = 0;
        if (kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER ||
            kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND)
            tc_forget(c, to); /* the cache was wrong: the reply of where it is teaches it */
        if (kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER) {
            if (hint[0] && strcmp(hint, c->cur)) {
                if ((rc = tc_connect(c, hint, e))) break;
            } else {
                sleep_ms(50); /* an election is running */
            }
        } else if (kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND) {
            /* A rollback naming a range that no seed host holds any more
             * (merged away: its locks went with it) has nothing left to
             * release; asking round again would only spend its budget. */
            if (rollback && ++not_found >= c->nhosts) {
                rc = merr_set(e, MERR_NOTFOUND, "%s: %s", method, msg);
                break;
            }
            if (next_host(c, e)) {
                rc = e->code;
                break;
            }
        } else if (kind == MERIDIAN__KV__ERROR_KIND__UNAVAILABLE ||
                   kind == MERIDIAN__KV__ERROR_KIND__CLOCK_UNCERTAIN) {
            sleep_ms(50);
        } else {
            rc = merr_set(e,
                          kind == MERIDIAN__KV__ERROR_KIND__INVALID          ? MERR_INVALID
                          : kind == MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH ? MERR_RANGE
                                                                             : MERR_INTERNAL,
                          "%s: %s", method, msg);
            break;
        }
        rc = merr_set(e, MERR_TIMEOUT, "%s: %s", method, msg);
    }
    free(buf);
    return rc;
}

/* ---- transactions ---- */

static int key_ok(const uint8_t *key, size_t klen, merr *e)
{
    if (klen == 0 || klen > 65536 || key[0] == 0x00)
        return merr_set(e, MERR_INVALID, "keys are 1 to 65536 bytes and do not start with 0x00");
    return 0;
}

void tc_meta(sql_kv_txn *t, Meridian__Txn__TxnMeta *m)
{
    meridian__txn__txn_meta__init(m);
    m->id = t->id;
    m->priority = t->prio;
    if (t->nlocks) {
        m->lock_epoch = t->locks[0].epoch;
        m->lock_range = t->locks[0].range_id;
        m->locks = t->lockp;
        m->n_locks = t->nlocks;
    }
}

int tc_epoch(sql_kv_txn *t, uint64_t range_id, uint64_t epoch, merr *e)
{
    if (!epoch) return 0;
    for (size_t i = 0; i < t->nlocks; i++) {
        if (t->locks[i].range_id != range_id) continue;
        if (t->locks[i].epoch == epoch) return 0;
        t->aborted = 1;
        return merr_set(e, MERR_ABORTED,
                        "transaction aborted: its range's lock table changed (lease moved)");
    }
    if (t->nlocks == TC_MAX_LOCKS) {
        t->aborted = 1;
        return merr_set(e, MERR_TOOBIG, "a transaction may lock in at most %d ranges",
                        TC_MAX_LOCKS);
    }
    meridian__txn__range_lock__init(&t->locks[t->nlocks]);
    t->locks[t->nlocks].range_id = range_id;
    t->locks[t->nlocks].epoch = epoch;
    t->lockp[t->nlocks] = &t->locks[t->nlocks];
    t->nlocks++;
    return 0;
}

int tc_anchor(sql_kv_txn *t, const uint8_t *key, size_t klen)
{
    if (t->anchor.len) return 0;
    return mbuf_append(&t->anchor, key, klen);
}

int txn_client_set_read_mode(txn_client *c, int mode, uint64_t staleness_us, uint64_t at_ts)
{
    if (mode < TXN_CLIENT_READ_STRONG || mode > TXN_CLIENT_READ_AT ||
        (mode == TXN_CLIENT_READ_AT && !at_ts))
        return MERR_INVALID;
    c->read_mode = mode;
    c->staleness_us = staleness_us;
    c->read_at = at_ts;
    return 0;
}

const char *txn_client_current_host(const txn_client *c)
{
    return c->cur;
}

uint64_t txn_client_calls(const txn_client *c)
{
    return c->calls;
}

uint64_t txn_client_cache_hits(const txn_client *c)
{
    return c->hits;
}

uint64_t txn_client_read_ts(const sql_kv_txn *t)
{
    return t->read_ts;
}

int tc_go_home(sql_kv_txn *t, merr *e)
{
    txn_client *c = t->c;
    if (!t->ro || t->read_mode == TXN_CLIENT_READ_STRONG || !strcmp(c->cur, c->home)) return 0;
    if (tc_connect(c, c->home, e) == 0) return 0;
    /* Home is unreachable: the next call fails over among the seeds. */
    return next_host(c, e);
}

void tc_read_fill(const sql_kv_txn *t, protobuf_c_boolean *snapshot, uint64_t *read_ts,
                  Meridian__Txn__ReadMode *mode, uint64_t *staleness_us,
                  protobuf_c_boolean *any_replica)
{
    *snapshot = t->ro;
    if (!t->ro) return;
    *any_replica = t->read_mode != TXN_CLIENT_READ_STRONG;
    if (t->read_ts) { /* later reads of the transaction: its snapshot */
        *read_ts = t->read_ts;
        *mode = MERIDIAN__TXN__READ_MODE__READ_AT;
        return;
    }
    *mode = (Meridian__Txn__ReadMode)t->read_mode;
    *staleness_us = t->staleness_us;
    if (t->read_mode == TXN_CLIENT_READ_AT) *read_ts = t->read_at;
}

static int tc_begin(void *ctx, unsigned flags, sql_kv_txn **out, merr *e)
{
    txn_client *c = ctx;
    sql_kv_txn *t = calloc(1, sizeof(*t));
    if (!t) return merr_set(e, MERR_NOMEM, "out of memory");
    t->c = c;
    t->ro = (flags & SQL_KV_READ_ONLY) != 0;
    if (t->ro)
        t->read_mode = c->read_mode, t->staleness_us = c->staleness_us, t->read_at = c->read_at;
    while (t->id == 0) {
        if (getrandom(&t->id, sizeof(t->id), 0) != (ssize_t)sizeof(t->id)) {
            free(t);
            return merr_set(e, MERR_IO, "getrandom: %s", strerror(errno));
        }
    }
    /* Priority: the first start time, as an HLC-shaped value (µs << 12). */
    t->prio = c->next_prio ? c->next_prio : ((uint64_t)mtime_real_ns() / 1000) << 12;
    c->next_prio = 0;
    *out = t;
    return 0;
}

static void txn_free(sql_kv_txn *t)
{
    for (size_t i = 0; i < t->nops; i++) {
        free(t->ops[i].key);
        free(t->ops[i].val);
    }
    free(t->ops);
    mbuf_free(&t->anchor);
    tc_rcache_free(&t->rc);
    free(t);
}

static int tc_get(sql_kv_txn *t, const uint8_t *key, size_t klen, mbuf *val, merr *e)
{
    int rc = key_ok(key, klen, e);
    if (rc) return rc;
    if (t->aborted) return merr_set(e, MERR_ABORTED, "transaction aborted");
    mbuf_reset(val);
    for (size_t i = t->nops; i > 0; i--) { /* read-your-own-writes */
        const tc_op *op = &t->ops[i - 1];
        if (mbytes_cmp(op->key, op->klen, key, klen)) continue;
        if (op->del) return MERR_NOTFOUND;
        return mbuf_append(val, op->val, op->vlen) ? merr_set(e, MERR_NOMEM, "out of memory") : 0;
    }
    if (!t->ro) { /* read before under a lock that still holds: no round trip */
        const uint8_t *cv;
        size_t cl;
        int h = tc_rcache_get(&t->rc, key, klen, t->for_write, &cv, &cl);
        if (h >= 0) t->c->hits++;
        if (h == 0) return MERR_NOTFOUND;
        if (h == 1) return mbuf_append(val, cv, cl) ? merr_set(e, MERR_NOMEM, "out of memory") : 0;
    }
    Meridian__Txn__TxnMeta meta;
    tc_meta(t, &meta);
    Meridian__Txn__GetRequest q = MERIDIAN__TXN__GET_REQUEST__INIT;
    q.txn = &meta;
    q.key.data = (uint8_t *)key, q.key.len = klen;
    tc_read_fill(t, &q.snapshot, &q.read_ts, &q.read_mode, &q.staleness_us, &q.any_replica);
    q.for_write = !t->ro && t->for_write;
    if ((rc = tc_go_home(t, e))) return rc;
    if (!t->ro) {
        if (tc_anchor(t, key, klen)) return merr_set(e, MERR_NOMEM, "out of memory");
        t->touched = 1;
    }
    ProtobufCMessage *m = NULL;
    /* A read any replica may serve starts at home (tc_go_home), not at the leaseholder. */
    tc_to to = {.key = key, .klen = q.any_replica ? 0 : klen};
    if ((rc = tc_call(t->c, "txn.Get", &q.base, &meridian__txn__get_response__descriptor, &to, &m,
                      e))) {
        if (rc == MERR_ABORTED) t->aborted = 1;
        return rc;
    }
    Meridian__Txn__GetResponse *r = (Meridian__Txn__GetResponse *)m;
    if (t->ro && !t->read_ts) t->read_ts = r->read_ts;
    if (!t->ro) rc = tc_epoch(t, r->range_id, r->lock_epoch, e);
    if (!rc && !t->ro)
        tc_rcache_put_key(&t->rc, key, klen, q.for_write, r->found, r->value.data, r->value.len);
    if (!rc && !r->found) rc = MERR_NOTFOUND;
    if (!rc && mbuf_append(val, r->value.data, r->value.len))
        rc = merr_set(e, MERR_NOMEM, "out of memory");
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int add_op(sql_kv_txn *t, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  int del, merr *e)
{
    if (t->ro) return merr_set(e, MERR_INVALID, "kv write in a read-only transaction");
    int rc = key_ok(key, klen, e);
    if (rc) return rc;
    size_t add = klen + (del ? 0 : vlen) + sizeof(tc_op);
    if (t->c->write_limit && t->op_bytes + add > t->c->write_limit)
        return merr_set(e, MERR_TOOBIG,
                        "session memory limit: this transaction's writes pass %zu bytes "
                        "(--max-session-memory); write in smaller transactions",
                        t->c->write_limit);
    if (t->nops == t->capops) {
        size_t cap = t->capops ? t->capops * 2 : 16;
        tc_op *ops = realloc(t->ops, cap * sizeof(*ops));
        if (!ops) return merr_set(e, MERR_NOMEM, "out of memory");
        t->ops = ops;
        t->capops = cap;
    }
    tc_op *op = &t->ops[t->nops];
    op->key = malloc(klen);
    op->val = malloc(del || !vlen ? 1 : vlen);
    if (!op->key || !op->val || tc_anchor(t, key, klen)) {
        free(op->key);
        free(op->val);
        return merr_set(e, MERR_NOMEM, "out of memory");
    }
    memcpy(op->key, key, klen);
    if (!del && vlen) memcpy(op->val, val, vlen);
    op->klen = klen;
    op->vlen = del ? 0 : vlen;
    op->del = del;
    t->nops++;
    t->op_bytes += add;
    return 0;
}

static int tc_put(sql_kv_txn *t, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  merr *e)
{
    return add_op(t, key, klen, val, vlen, 0, e);
}

static int tc_del(sql_kv_txn *t, const uint8_t *key, size_t klen, merr *e)
{
    return add_op(t, key, klen, NULL, 0, 1, e);
}

static int tc_savepoint(sql_kv_txn *t, uint64_t *mark, merr *e)
{
    (void)e;
    *mark = t->nops;
    return 0;
}

static int tc_rollback_to(sql_kv_txn *t, uint64_t mark, merr *e)
{
    if (mark > t->nops) return merr_set(e, MERR_INVALID, "kv rollback_to: bad mark");
    while (t->nops > mark) {
        t->nops--;
        t->op_bytes -= t->ops[t->nops].klen + t->ops[t->nops].vlen + sizeof(tc_op);
        free(t->ops[t->nops].key);
        free(t->ops[t->nops].val);
    }
    return 0;
}

static void send_rollback(sql_kv_txn *t)
{
    if (!t->touched || !t->anchor.len) return;
    Meridian__Txn__TxnMeta meta;
    tc_meta(t, &meta);
    Meridian__Txn__RollbackRequest q = MERIDIAN__TXN__ROLLBACK_REQUEST__INIT;
    q.txn = &meta;
    q.key.data = t->anchor.data, q.key.len = t->anchor.len;
    /* Best effort: locks left behind go when the idle timeout ends them. */
    int64_t saved = t->c->timeout_ns;
    t->c->timeout_ns = 2 * MTIME_S;
    /* Every range holding locks (by id), or the anchor's when none is known. */
    for (size_t i = 0; i < (t->nlocks ? t->nlocks : 1); i++) {
        q.range_id = t->nlocks ? t->locks[i].range_id : 0;
        tc_to to = {.key = q.range_id ? NULL : t->anchor.data,
                    .klen = q.range_id ? 0 : t->anchor.len,
                    .range_id = q.range_id};
        ProtobufCMessage *m = NULL;
        merr e = {0};
        if (tc_call(t->c, "txn.Rollback", &q.base, &meridian__txn__rollback_response__descriptor,
                    &to, &m, &e) == 0)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    t->c->timeout_ns = saved;
}

/* sql_kv_ops.alive: txn.Check at every range holding t's locks. A range
 * that says aborted makes it MERR_ABORTED; anything else (unreachable,
 * moved) is not evidence, and the caller keeps the error it had. */
static int tc_alive(sql_kv_txn *t, merr *e)
{
    if (t->ro || !t->nlocks) return 0;
    Meridian__Txn__TxnMeta meta;
    tc_meta(t, &meta);
    Meridian__Txn__RollbackRequest q = MERIDIAN__TXN__ROLLBACK_REQUEST__INIT;
    q.txn = &meta;
    int64_t saved = t->c->timeout_ns;
    t->c->timeout_ns = 2 * MTIME_S; /* an error path: a short budget */
    int rc = 0;
    for (size_t i = 0; i < t->nlocks && !rc; i++) {
        q.range_id = t->locks[i].range_id;
        tc_to to = {.range_id = q.range_id};
        ProtobufCMessage *m = NULL;
        merr ce = {0};
        if (tc_call(t->c, "txn.Check", &q.base, &meridian__txn__rollback_response__descriptor, &to,
                    &m, &ce) == 0)
            protobuf_c_message_free_unpacked(m, NULL);
        else if (ce.code == MERR_ABORTED)
            rc = merr_set(e, MERR_ABORTED, "%s", ce.msg);
    }
    t->c->timeout_ns = saved;
    return rc;
}

static void tc_lock_for_write(sql_kv_txn *t, int on)
{
    t->for_write = on;
}

/* Packs t's txn.Rollback into c->cancel_rollback. */
static int rollback_request(sql_kv_txn *t)
{
    Meridian__Txn__TxnMeta meta;
    tc_meta(t, &meta);
    Meridian__Txn__RollbackRequest q = MERIDIAN__TXN__ROLLBACK_REQUEST__INIT;
    q.txn = &meta;
    q.key.data = t->anchor.data, q.key.len = t->anchor.len;
    size_t n = protobuf_c_message_get_packed_size(&q.base);
    pthread_mutex_lock(&t->c->mu);
    mbuf *b = &t->c->cancel_rollback;
    mbuf_reset(b);
    int rc = mbuf_reserve(b, n) ? MERR_NOMEM : 0;
    if (!rc) b->len = protobuf_c_message_pack(&q.base, b->data);
    pthread_mutex_unlock(&t->c->mu);
    return rc;
}

/* Orders buffered writes by key, newest last among equal keys. */
static int op_order(const void *a, const void *b)
{
    const tc_op *x = *(const tc_op *const *)a, *y = *(const tc_op *const *)b;
    int c = mbytes_cmp(x->key, x->klen, y->key, y->klen);
    return c ? c : x < y ? -1 : x > y ? 1 : 0;
}

static int tc_commit(sql_kv_txn *t, merr *e)
{
    int rc = 0;
    tc_op **by = NULL;
    Meridian__Kv__Mutation *ms = NULL, **mp = NULL;
    if (t->ro) goto out; /* a snapshot is consistent: nothing to check */
    if (t->aborted) {
        send_rollback(t);
        rc = merr_set(e, MERR_ABORTED, "transaction aborted: retry it");
        goto out;
    }
    if (t->nops == 0 && !t->touched) goto out;
    /* The last write of each key wins. */
    by = malloc((t->nops ? t->nops : 1) * sizeof(*by));
    ms = calloc(t->nops ? t->nops : 1, sizeof(*ms));
    mp = calloc(t->nops ? t->nops : 1, sizeof(*mp));
    if (!by || !ms || !mp) {
        rc = merr_set(e, MERR_NOMEM, "out of memory");
        send_rollback(t);
        goto out;
    }
    for (size_t i = 0; i < t->nops; i++) by[i] = &t->ops[i];
    qsort(by, t->nops, sizeof(*by), op_order);
    size_t n = 0;
    for (size_t i = 0; i < t->nops; i++) {
        if (i + 1 < t->nops &&
            !mbytes_cmp(by[i]->key, by[i]->klen, by[i + 1]->key, by[i + 1]->klen))
            continue;
        meridian__kv__mutation__init(&ms[n]);
        ms[n].key.data = by[i]->key, ms[n].key.len = by[i]->klen;
        ms[n].value.data = by[i]->val, ms[n].value.len = by[i]->vlen;
        ms[n].is_delete = by[i]->del;
        mp[n] = &ms[n];
        n++;
    }
    Meridian__Txn__TxnMeta meta;
    tc_meta(t, &meta);
    Meridian__Txn__CommitRequest q = MERIDIAN__TXN__COMMIT_REQUEST__INIT;
    q.txn = &meta;
    q.mutations = mp;
    q.n_mutations = n;
    q.key.data = t->anchor.data, q.key.len = t->anchor.len;
    /* tc_call retries the same bytes until this (and never after it): the
     * coordinator keeps the outcome for retries until then. */
    int64_t left = t->c->timeout_ns;
    if (t->c->stmt_deadline_ns && t->c->stmt_deadline_ns - mtime_mono_ns() < left)
        left = t->c->stmt_deadline_ns - mtime_mono_ns();
    q.deadline_us = (uint64_t)((mtime_real_ns() + (left > 0 ? left : 0)) / 1000);
    if (atomic_load(&t->c->canceled)) { /* canceled before it could commit */
        send_rollback(t);
        rc = merr_set(e, MERR_CANCELED, "canceled");
        goto out;
    }
    /* What txn_client_cancel sends while the commit waits for locks. */
    if ((rc = rollback_request(t))) {
        send_rollback(t);
        rc = merr_set(e, rc, "out of memory");
        goto out;
    }
    ProtobufCMessage *m = NULL;
    tc_to to = {.key = t->anchor.data, .klen = t->anchor.len};
    rc = tc_call(t->c, "txn.Commit", &q.base, &meridian__txn__commit_response__descriptor, &to, &m,
                 e);
    pthread_mutex_lock(&t->c->mu);
    mbuf_reset(&t->c->cancel_rollback);
    pthread_mutex_unlock(&t->c->mu);
    if (rc == 0) protobuf_c_message_free_unpacked(m, NULL);
    /* A commit refused outright (its range split or merged under it, or
     * aborted) leaves the read locks it took in other ranges, the schema
     * version's in range 1 among them: release them now rather than after
     * the idle timeout, which every DDL would wait out (X on that key). Not
     * after a timeout: the outcome is unknown there, the record decides. */
    if (rc == MERR_RANGE || rc == MERR_ABORTED || rc == MERR_INVALID) send_rollback(t);
out:
    free(by);
    free(ms);
    free(mp);
    txn_free(t);
    return rc;
}

static void tc_rollback(sql_kv_txn *t)
{
    if (!t->ro) send_rollback(t);
    txn_free(t);
}

/* AS OF SYSTEM TIME (sql/kv.h begin_at) as a read mode of this one
 * transaction; the serving replica checks the ts against its clock (in the
 * future, older than the retention window: server/txn_snapshot.c). */
static int tc_begin_at(void *ctx, const sql_kv_at *at, sql_kv_txn **out, merr *e)
{
    int rc = tc_begin(ctx, SQL_KV_READ_ONLY, out, e);
    if (rc) return rc;
    sql_kv_txn *t = *out;
    t->staleness_us = 0;
    switch (at->kind) {
    case SQL_KV_AT_TS: t->read_mode = TXN_CLIENT_READ_AT, t->read_at = at->ts; break;
    case SQL_KV_AT_UNIX:
        /* Every commit of that microsecond: the highest logical count. */
        t->read_mode = TXN_CLIENT_READ_AT;
        t->read_at = at->unix_us > HLC_PHYS_MAX_US ? 0 : hlc_make(at->unix_us, HLC_LOGICAL_MAX);
        break;
    case SQL_KV_AT_AGO:
        t->read_mode = at->ago_us ? TXN_CLIENT_READ_EXACT : TXN_CLIENT_READ_STRONG;
        t->staleness_us = at->ago_us;
        break;
    case SQL_KV_AT_FOLLOWER:
        t->read_mode = TXN_CLIENT_READ_BOUNDED;
        t->staleness_us = TC_FOLLOWER_BOUND_US;
        break;
    default: t->read_mode = -1; break;
    }
    if (t->read_mode < 0 || (t->read_mode == TXN_CLIENT_READ_AT && !t->read_at)) {
        txn_free(t);
        *out = NULL;
        return merr_set(e, MERR_INVALID, "bad read timestamp");
    }
    return 0;
}

static int tc_read_ts(sql_kv_txn *t, uint64_t *ts, merr *e)
{
    if (!t->ro)
        return merr_set(e, MERR_UNSUPPORTED, "a read-write transaction has no snapshot timestamp");
    if (!t->read_ts)
        return merr_set(e, MERR_INVALID, "no snapshot timestamp before the first read");
    *ts = t->read_ts;
    return 0;
}

static const sql_kv_ops tc_ops = {
    .begin = tc_begin,
    .get = tc_get,
    .scan = tc_scan,
    .iter_next = tc_iter_next,
    .iter_close = tc_iter_close,
    .put = tc_put,
    .del = tc_del,
    .savepoint = tc_savepoint,
    .rollback_to = tc_rollback_to,
    .commit = tc_commit,
    .rollback = tc_rollback,
    .alive = tc_alive,
    .lock_for_write = tc_lock_for_write,
    .begin_at = tc_begin_at,
    .read_ts = tc_read_ts,
};

const sql_kv_ops *txn_client_kv_ops(void)
{
    return &tc_ops;
}
