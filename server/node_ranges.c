/* Many ranges per node: splitting on request, range-id allocation, and the
 * range directory (docs/ranges.md).
 *
 * range.Split {key}: the leaseholder of the range holding key allocates a
 * new range id from range 1, then proposes the split through the range's
 * log (server/replica_split.c) and answers with both descriptors.
 *
 * range.AllocId: range 1's leaseholder reads the counter
 * "\x00sys/range-id-counter", writes counter + 1 through Paxos and only then
 * answers, one allocation at a time: ids are never handed out twice, even
 * across leaseholder changes (the same scheme as node ids, node_cluster.c).
 *
 * The directory: one descriptor per range in range 1 at "\x00sys/range/" +
 * the range id (u64 big-endian). Keyed by id, not by end key, so each
 * leaseholder writes only its own entry (a split changes the left's end:
 * an end-keyed layout would need a delete and an insert by two writers).
 * The ranges themselves are authoritative; the directory is a cache that
 * may lag. Every DIR_TICK_MS each node compares the descriptors of the ranges
 * it leads with what its replica of range 1 holds and writes the ones that
 * differ, in one write, through range 1's leaseholder (cheap when equal).
 * Readers (dir.Scan, dir.Lookup) resolve overlapping entries of a
 * not-yet-refreshed directory by generation (placement/route_cache.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "placement/route_cache.h"
#include "proto/range.pb-c.h"
#include "server/kv_service.h"
#include "server/node_int.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD         "ranges"
#define DIR_TICK_MS 2000
#define DIR_WRITES  64 /* descriptors per directory write */
#define SPLIT_WAIT  (10 * MTIME_S)

static const uint8_t KEY_RANGE_COUNTER[] = "\x00sys/range-id-counter";
#define KEY_RANGE_COUNTER_LEN (sizeof(KEY_RANGE_COUNTER) - 1)
static const uint8_t DIR_PREFIX[] = "\x00sys/range/";
#define DIR_PREFIX_LEN (sizeof(DIR_PREFIX) - 1)
#define DIR_KEY_LEN    (DIR_PREFIX_LEN + 8)

struct node_ranges {
    node *n;
    uv_timer_t timer;
    int timer_on, stopped, refs;
    int allocating;   /* range 1's leaseholder: an allocation is being written */
    int dir_inflight; /* a directory write is out */
    int nudge;        /* a peer came (back) up: wake the quiet groups led here */
    uint64_t splits, dir_writes;
    /* Ranges merged away whose directory entries are still to delete. */
    uint64_t forget[DIR_WRITES];
    size_t nforget;
};

static host *H(node_ranges *nr)
{
    return &nr->n->host;
}

static void unref(node_ranges *nr)
{
    if (--nr->refs == 0 && nr->stopped) free(nr);
}

static void dir_key(uint64_t id, uint8_t out[DIR_KEY_LEN])
{
    memcpy(out, DIR_PREFIX, DIR_PREFIX_LEN);
    mbe64_put(out + DIR_PREFIX_LEN, id);
}

/* Where range 1's leader listens (NULL: unknown or this node). */
static uint64_t range1_leader(node_ranges *nr)
{
    replica *r1 = host_find(H(nr), NODE_GENESIS_RANGE);
    uint64_t l = r1 ? replica_leader_hint(r1) : 0;
    return l == H(nr)->node_id ? 0 : l;
}

/* ---- range-id allocation ---- */

typedef void (*alloc_cb)(void *arg, int code, const char *msg, uint64_t id);

typedef struct alloc_ctx {
    node_ranges *nr;
    alloc_cb cb;
    void *arg;
    uint64_t id;
    uint8_t val[8];
} alloc_ctx;

static void on_counter_written(void *arg, int code, const char *msg, uint64_t ts)
{
    alloc_ctx *a = arg;
    (void)ts;
    a->nr->allocating = 0;
    a->cb(a->arg, code, msg, code ? 0 : a->id);
    unref(a->nr);
    free(a);
}

/* On range 1's leaseholder: the next id, durable before cb hears of it. */
static void alloc_local(node_ranges *nr, replica *r1, alloc_cb cb, void *arg)
{
    if (nr->allocating) {
        cb(arg, MERR_BUSY, "another range id is being allocated: retry", 0);
        return;
    }
    uint8_t *val = NULL;
    size_t vlen = 0;
    uint64_t last = NODE_GENESIS_RANGE; /* range 1 exists from the start */
    if (range_get(replica_store(r1), KEY_RANGE_COUNTER, KEY_RANGE_COUNTER_LEN, RANGE_TS_MAX, &val,
                  &vlen, NULL) == 0 &&
        vlen == 8)
        last = mbe64_get(val);
    free(val);
    alloc_ctx *a = calloc(1, sizeof(*a));
    if (!a) {
        cb(arg, MERR_NOMEM, "out of memory", 0);
        return;
    }
    *a = (alloc_ctx){.nr = nr, .cb = cb, .arg = arg, .id = last + 1};
    mbe64_put(a->val, a->id);
    range_write w = {
        .key = KEY_RANGE_COUNTER, .klen = KEY_RANGE_COUNTER_LEN, .val = a->val, .vlen = 8};
    merr e = {0};
    nr->allocating = 1;
    nr->refs++;
    if (replica_write(r1, &w, 1, mtime_mono_ns() + SPLIT_WAIT, on_counter_written, a, &e)) {
        nr->allocating = 0;
        nr->refs--;
        free(a);
        cb(arg, e.code, e.msg, 0);
    }
}

static void on_alloc_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    alloc_ctx *a = arg;
    Meridian__Range__AllocIdResponse *r =
        code ? NULL : meridian__range__alloc_id_response__unpack(NULL, len, p);
    if (code)
        a->cb(a->arg, code, msg, 0);
    else if (!r)
        a->cb(a->arg, MERR_PROTOCOL, "undecodable AllocIdResponse", 0);
    else if (r->error)
        a->cb(a->arg,
              r->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER ? MERR_NOT_LEADER
                                                                     : MERR_UNAVAILABLE,
              r->error->message, 0);
    else
        a->cb(a->arg, 0, NULL, r->range_id);
    if (r) meridian__range__alloc_id_response__free_unpacked(r, NULL);
    unref(a->nr);
    free(a);
}

typedef struct alloc_wait {
    node_ranges *nr;
    alloc_cb cb;
    void *arg;
} alloc_wait;

static void on_r1_lease(void *arg, int code)
{
    alloc_wait *w = arg;
    replica *r1 = w->nr->stopped ? NULL : host_find(H(w->nr), NODE_GENESIS_RANGE);
    if (code || !r1 || !replica_is_leaseholder(r1))
        w->cb(w->arg, MERR_UNAVAILABLE, "range 1's lease did not come back: retry", 0);
    else
        alloc_local(w->nr, r1, w->cb, w->arg);
    unref(w->nr);
    free(w);
}

static void alloc_id(node_ranges *nr, alloc_cb cb, void *arg)
{
    replica *r1 = host_find(H(nr), NODE_GENESIS_RANGE);
    if (r1 && replica_is_lease_owner(r1) && !replica_is_leaseholder(r1)) {
        /* A quiet range 1 let its lease lapse: renew it, then allocate. */
        alloc_wait *w = calloc(1, sizeof(*w));
        if (!w) {
            cb(arg, MERR_NOMEM, "out of memory", 0);
            return;
        }
        *w = (alloc_wait){nr, cb, arg};
        nr->refs++;
        int rc = replica_lease_wait(r1, 0, on_r1_lease, w);
        if (rc != 1) on_r1_lease(w, rc);
        return;
    }
    if (r1 && replica_is_leaseholder(r1)) {
        alloc_local(nr, r1, cb, arg);
        return;
    }
    uint64_t leader = range1_leader(nr);
    alloc_ctx *a = leader ? calloc(1, sizeof(*a)) : NULL;
    if (!a) {
        cb(arg, MERR_UNAVAILABLE, "range 1 has no known leaseholder: retry", 0);
        return;
    }
    *a = (alloc_ctx){.nr = nr, .cb = cb, .arg = arg};
    Meridian__Range__AllocIdRequest q = MERIDIAN__RANGE__ALLOC_ID_REQUEST__INIT;
    uint8_t *buf = NULL;
    size_t len;
    int64_t deadline = mtime_real_ns() / 1000 + SPLIT_WAIT / 1000;
    int rc = pb_pack(&q.base, &buf, &len);
    if (!rc)
        rc = rpc_node_call(nr->n->rpc, leader, "range.AllocId", buf, len, deadline, on_alloc_reply,
                           a, NULL);
    free(buf);
    if (rc) {
        free(a);
        cb(arg, MERR_UNAVAILABLE, "cannot reach range 1's leaseholder: retry", 0);
        return;
    }
    nr->refs++;
}

typedef struct alloc_req {
    node_ranges *nr;
    rpc_req *req;
} alloc_req;

static void reply_alloc(void *arg, int code, const char *msg, uint64_t id)
{
    alloc_req *q = arg;
    Meridian__Range__AllocIdResponse resp = MERIDIAN__RANGE__ALLOC_ID_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    if (code) {
        replica *r1 = host_find(H(q->nr), NODE_GENESIS_RANGE);
        kv_fill_error(H(q->nr), r1, &err, code, msg, NULL);
        resp.error = &err;
    }
    resp.range_id = id;
    pb_reply(q->req, &resp.base);
    free(q);
}

static void on_alloc(void *arg, rpc_req *req)
{
    node_ranges *nr = arg;
    replica *r1 = host_find(H(nr), NODE_GENESIS_RANGE);
    alloc_req *q = calloc(1, sizeof(*q));
    if (!q) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    *q = (alloc_req){nr, req};
    if (!r1)
        reply_alloc(q, MERR_NOTFOUND, "no replica of range 1 on this node", 0);
    else if (!replica_is_lease_owner(r1))
        reply_alloc(q, MERR_NOT_LEADER, "not range 1's leaseholder", 0);
    else
        alloc_id(nr, reply_alloc, q); /* renews a lapsed lease first */
}

/* ---- range.Split ---- */

typedef struct split_ctx {
    node_ranges *nr;
    rpc_req *req;                                       /* NULL: a local caller */
    void (*done)(void *arg, int code, const char *msg); /* ... told here */
    void *done_arg;
    uint64_t range_id, new_id;
    uint8_t *key;
    size_t klen;
} split_ctx;

static void split_reply(split_ctx *c, int code, const char *msg)
{
    if (!c->req) {
        c->done(c->done_arg, code, msg);
        node_ranges *nr = c->nr;
        free(c->key);
        free(c);
        unref(nr);
        return;
    }
    Meridian__Range__SplitResponse resp = MERIDIAN__RANGE__SPLIT_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    range_desc_pb dl, dr, de;
    replica *l = c->nr->stopped ? NULL : host_find(H(c->nr), c->range_id);
    replica *r = c->nr->stopped ? NULL : host_find(H(c->nr), c->new_id);
    if (code) {
        kv_fill_error(H(c->nr), l, &err, code, msg, &de);
        resp.error = &err;
    } else {
        if (l) range_desc_fill(l, &dl), resp.left = &dl.d;
        if (r) range_desc_fill(r, &dr), resp.right = &dr.d;
    }
    pb_reply(c->req, &resp.base);
    node_ranges *nr = c->nr;
    free(c->key);
    free(c);
    unref(nr);
}

static void on_split_applied(void *arg, int code, const char *msg, uint64_t ts)
{
    split_ctx *c = arg;
    (void)ts;
    if (!code) {
        c->nr->splits++;
        MLOG_I(MOD, "range split", "range=%" PRIu64 " new_range=%" PRIu64, c->range_id, c->new_id);
    }
    split_reply(c, code, msg);
}

static void on_id(void *arg, int code, const char *msg, uint64_t id)
{
    split_ctx *c = arg;
    if (code || c->nr->stopped) {
        split_reply(c, code ? code : MERR_CLOSED, code ? msg : "node stopping");
        return;
    }
    c->new_id = id;
    replica *r = host_find(H(c->nr), c->range_id);
    merr e = {0};
    if (!r) {
        split_reply(c, MERR_NOTFOUND, "the range left this node");
    } else if (replica_split(r, c->key, c->klen, id, mtime_mono_ns() + SPLIT_WAIT, on_split_applied,
                             c, &e)) {
        split_reply(c, e.code, e.msg);
    }
}

static void split_start(split_ctx *c);
static void on_split_lease(void *arg, int code);

static void on_split(void *arg, rpc_req *req)
{
    node_ranges *nr = arg;
    Meridian__Range__SplitRequest *q =
        meridian__range__split_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable SplitRequest", NULL, 0);
        return;
    }
    split_ctx *c = calloc(1, sizeof(*c));
    if (c) c->key = malloc(q->key.len ? q->key.len : 1);
    if (!c || !c->key) {
        if (c) free(c);
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        meridian__range__split_request__free_unpacked(q, NULL);
        return;
    }
    c->nr = nr;
    c->req = req;
    nr->refs++;
    memcpy(c->key, q->key.data, q->key.len);
    c->klen = q->key.len;
    meridian__range__split_request__free_unpacked(q, NULL);
    split_start(c);
}

static void split_start(split_ctx *c)
{
    node_ranges *nr = c->nr;
    replica *r = c->klen ? host_find_key(H(nr), c->key, c->klen) : NULL;
    if (c->klen == 0 || c->klen > RANGE_KEY_MAX || c->key[0] == 0x00) {
        split_reply(c, MERR_INVALID,
                    "split keys are 1 to 65536 bytes and not system keys (0x00...: range 1)");
        return;
    }
    if (!r) {
        split_reply(c, MERR_NOTFOUND, "no replica of that range on this node");
        return;
    }
    c->range_id = replica_id(r);
    const uint8_t *st, *en;
    size_t sl, el;
    replica_span(r, &st, &sl, &en, &el);
    if (sl == c->klen && memcmp(st, c->key, sl) == 0) {
        /* Already split there (a retry whose first answer was lost): the
         * same outcome again, so retrying a split is safe. */
        c->new_id = c->range_id;
        c->range_id = 0;
        for (size_t i = 0; i < H(nr)->nreps; i++) {
            replica_span(H(nr)->reps[i], &st, &sl, &en, &el);
            if (el == c->klen && memcmp(en, c->key, el) == 0)
                c->range_id = replica_id(H(nr)->reps[i]);
        }
        split_reply(c, 0, NULL);
        return;
    }
    /* A quiet group's leader lets its lease lapse: renew it first (the
     * placement driver splits ranges nobody is writing to right now). */
    int lw = replica_lease_wait(r, 0, on_split_lease, c);
    if (lw == 1) return;
    on_split_lease(c, lw);
}

static void on_split_lease(void *arg, int code)
{
    split_ctx *c = arg;
    replica *r = c->nr->stopped ? NULL : host_find(H(c->nr), c->range_id);
    if (code || !r || !replica_is_leaseholder(r)) {
        split_reply(c, MERR_NOT_LEADER, "this replica does not hold the lease");
        return;
    }
    alloc_id(c->nr, on_id, c);
}

int node_ranges_split(node *n, const uint8_t *key, size_t klen,
                      void (*done)(void *arg, int code, const char *msg), void *arg)
{
    node_ranges *nr = n->ranges;
    split_ctx *c = nr ? calloc(1, sizeof(*c)) : NULL;
    if (c) c->key = malloc(klen ? klen : 1);
    if (!c || !c->key) {
        if (c) free(c);
        return MERR_NOMEM;
    }
    *c = (split_ctx){.nr = nr, .done = done, .done_arg = arg, .key = c->key, .klen = klen};
    memcpy(c->key, key, klen);
    nr->refs++;
    split_start(c);
    return 0;
}

/* ---- the directory: readers ---- */

typedef struct dir_rows {
    Meridian__Meta__RangeDescriptor **v;
    size_t n, cap;
    int oom;
} dir_rows;

static int dir_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t ts)
{
    dir_rows *d = arg;
    (void)key, (void)klen, (void)ts;
    Meridian__Meta__RangeDescriptor *m = meridian__meta__range_descriptor__unpack(NULL, vlen, val);
    if (!m) return 0; /* a damaged entry is a miss, not an error: the cache refills */
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        Meridian__Meta__RangeDescriptor **nv = realloc(d->v, cap * sizeof(*nv));
        if (!nv) {
            meridian__meta__range_descriptor__free_unpacked(m, NULL);
            d->oom = 1;
            return 1;
        }
        d->v = nv;
        d->cap = cap;
    }
    d->v[d->n++] = m;
    return 0;
}

static void dir_serve(node_ranges *nr, rpc_req *req, int lookup)
{
    Meridian__Range__DirRequest *q =
        meridian__range__dir_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable DirRequest", NULL, 0);
        return;
    }
    Meridian__Range__DirResponse resp = MERIDIAN__RANGE__DIR_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    dir_rows rows = {0};
    route_cache rc;
    route_cache_init(&rc);
    Meridian__Meta__RangeDescriptor **out = NULL;
    char **addrs = NULL;
    replica *r1 = host_find(H(nr), NODE_GENESIS_RANGE);
    int code = 0;
    const char *why = NULL;
    if (!r1) {
        code = MERR_NOTFOUND;
        why = "no replica of range 1 (the directory) on this node";
    } else {
        uint8_t end[DIR_PREFIX_LEN];
        memcpy(end, DIR_PREFIX, DIR_PREFIX_LEN);
        end[DIR_PREFIX_LEN - 1]++; /* "/" + 1: just past every directory key */
        code = range_scan(replica_store(r1), DIR_PREFIX, DIR_PREFIX_LEN, end, DIR_PREFIX_LEN,
                          RANGE_TS_MAX, 0, 0, dir_row, &rows, NULL);
        if (rows.oom) code = MERR_NOMEM;
        for (size_t i = 0; !code && i < rows.n; i++) {
            const Meridian__Meta__RangeDescriptor *d = rows.v[i];
            if (route_cache_update(&rc, d->range_id, d->generation, d->start_key.data,
                                   d->start_key.len, d->end_key.data, d->end_key.len,
                                   d->leader_node_id) < 0)
                code = MERR_NOMEM;
        }
        if (code) why = "cannot read the directory";
    }
    size_t from = 0, to = rc.n;
    if (!code && lookup) {
        from = route_cache_seek(&rc, q->key.data, q->key.len);
        if (q->limit && to - from > q->limit) to = from + q->limit;
    }
    if (!code && to > from) {
        out = calloc(to - from, sizeof(*out));
        addrs = calloc(to - from, sizeof(*addrs));
        if (!out || !addrs) code = MERR_NOMEM, why = "out of memory";
    }
    for (size_t i = from; !code && i < to; i++) {
        /* The winning descriptor of each cached span, with its replicas. */
        for (size_t j = 0; j < rows.n; j++)
            if (rows.v[j]->range_id == rc.v[i].range_id &&
                rows.v[j]->generation == rc.v[i].generation)
                out[resp.n_ranges] = rows.v[j];
        const char *a = rc.v[i].leader ? host_peer_addr(H(nr), rc.v[i].leader) : NULL;
        addrs[resp.n_ranges++] = (char *)(a ? a : "");
    }
    resp.ranges = out;
    resp.leader_addresses = addrs;
    resp.n_leader_addresses = resp.n_ranges;
    if (code) {
        kv_fill_error(H(nr), NULL, &err, code, why, NULL);
        resp.error = &err;
        resp.n_ranges = resp.n_leader_addresses = 0;
    }
    pb_reply(req, &resp.base);
    free(out);
    free(addrs);
    for (size_t i = 0; i < rows.n; i++)
        meridian__meta__range_descriptor__free_unpacked(rows.v[i], NULL);
    free(rows.v);
    route_cache_free(&rc);
    meridian__range__dir_request__free_unpacked(q, NULL);
}

static void on_dir_scan(void *arg, rpc_req *req)
{
    dir_serve(arg, req, 0);
}

static void on_dir_lookup(void *arg, rpc_req *req)
{
    dir_serve(arg, req, 1);
}

/* ---- the directory: writers ---- */

typedef struct dir_write {
    node_ranges *nr;
    size_t n, ndel; /* the first ndel entries are deletes of nr->forget[] */
    uint8_t keys[DIR_WRITES][DIR_KEY_LEN];
    uint8_t *vals[DIR_WRITES];
    size_t vlens[DIR_WRITES];
} dir_write;

static void dir_write_free(dir_write *w)
{
    for (size_t i = 0; i < w->n; i++) free(w->vals[i]);
    free(w);
}

static void dir_done(node_ranges *nr, int code, const char *msg)
{
    nr->dir_inflight = 0;
    if (code)
        MLOG_D(MOD, "directory write failed", "error=\"%s\"", msg ? msg : merr_str(code));
    else
        nr->dir_writes++;
}

/* The deletes of w are written: those ids are forgotten for good. */
static void forgotten(node_ranges *nr, dir_write *w, int code)
{
    if (code || !w->ndel || nr->stopped) return;
    size_t left = 0;
    for (size_t i = 0; i < nr->nforget; i++) {
        int done = 0;
        for (size_t j = 0; j < w->ndel; j++)
            done |= mbe64_get(w->keys[j] + DIR_PREFIX_LEN) == nr->forget[i];
        if (!done) nr->forget[left++] = nr->forget[i];
    }
    nr->nforget = left;
}

void node_ranges_forget(node *n, uint64_t range_id)
{
    node_ranges *nr = n->ranges;
    if (!nr || nr->nforget == DIR_WRITES) return; /* a stale entry is only clutter */
    nr->forget[nr->nforget++] = range_id;
}

static void on_dir_written(void *arg, int code, const char *msg, uint64_t ts)
{
    dir_write *w = arg;
    (void)ts;
    node_ranges *nr = w->nr;
    dir_done(nr, code, msg);
    forgotten(nr, w, code);
    dir_write_free(w);
    unref(nr);
}

static void on_dir_remote(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    dir_write *w = arg;
    Meridian__Kv__WriteResponse *r =
        code ? NULL : meridian__kv__write_response__unpack(NULL, len, p);
    if (!code && (!r || r->error)) code = MERR_UNAVAILABLE;
    if (!code || !msg) msg = r && r->error ? r->error->message : msg;
    node_ranges *nr = w->nr;
    dir_done(nr, code, msg);
    forgotten(nr, w, code);
    if (r) meridian__kv__write_response__free_unpacked(r, NULL);
    dir_write_free(w);
    unref(nr);
}

/* Sends w to range 1's leaseholder (this node's replica, or over rpc). */
static void dir_send(node_ranges *nr, dir_write *w)
{
    replica *r1 = host_find(H(nr), NODE_GENESIS_RANGE);
    merr e = {0};
    nr->dir_inflight = 1;
    nr->refs++;
    if (replica_lease_check(r1)) {
        range_write ws[DIR_WRITES];
        for (size_t i = 0; i < w->n; i++)
            ws[i] = (range_write){.key = w->keys[i],
                                  .klen = DIR_KEY_LEN,
                                  .val = w->vals[i],
                                  .vlen = w->vlens[i],
                                  .del = i < w->ndel};
        if (replica_write(r1, ws, w->n, mtime_mono_ns() + SPLIT_WAIT, on_dir_written, w, &e) == 0)
            return;
    } else {
        Meridian__Kv__Mutation ms[DIR_WRITES], *mp[DIR_WRITES];
        for (size_t i = 0; i < w->n; i++) {
            meridian__kv__mutation__init(&ms[i]);
            ms[i].key = (ProtobufCBinaryData){DIR_KEY_LEN, w->keys[i]};
            ms[i].value = (ProtobufCBinaryData){w->vlens[i], w->vals[i]};
            ms[i].is_delete = i < w->ndel;
            mp[i] = &ms[i];
        }
        Meridian__Kv__RangeTarget t = MERIDIAN__KV__RANGE_TARGET__INIT;
        t.range_id = NODE_GENESIS_RANGE;
        Meridian__Kv__WriteRequest q = MERIDIAN__KV__WRITE_REQUEST__INIT;
        q.target = &t;
        q.mutations = mp;
        q.n_mutations = w->n;
        uint8_t *buf = NULL;
        size_t len;
        uint64_t leader = range1_leader(nr);
        int64_t deadline = mtime_real_ns() / 1000 + SPLIT_WAIT / 1000;
        int rc = leader ? pb_pack(&q.base, &buf, &len) : MERR_UNAVAILABLE;
        if (!rc)
            rc = rpc_node_call(nr->n->rpc, leader, "kv.Write", buf, len, deadline, on_dir_remote, w,
                               NULL);
        free(buf);
        if (rc == 0) return;
    }
    nr->dir_inflight = 0;
    nr->refs--;
    dir_write_free(w);
}

/* Writes the descriptors of the ranges this node leads that the directory
 * (as this node's replica of range 1 has it) does not hold yet. */
static void dir_refresh(node_ranges *nr)
{
    host *h = H(nr);
    replica *r1 = host_find(h, NODE_GENESIS_RANGE);
    if (nr->stopped || nr->dir_inflight || !r1) return;
    dir_write *w = calloc(1, sizeof(*w));
    if (!w) return;
    w->nr = nr;
    for (size_t i = 0; i < nr->nforget; i++) {
        /* Deleted once by whoever merged; a later range never reuses the id. */
        dir_key(nr->forget[i], w->keys[w->n++]);
        w->ndel++;
    }
    for (size_t i = 0; i < h->nreps && w->n < DIR_WRITES; i++) {
        replica *r = h->reps[i];
        if (!replica_is_lease_owner(r)) continue;
        range_desc_pb dp;
        range_desc_fill(r, &dp);
        uint8_t *val = NULL;
        size_t plen = 0;
        if (pb_pack(&dp.d.base, &val, &plen)) break;
        dir_key(replica_id(r), w->keys[w->n]);
        uint8_t *cur = NULL;
        size_t clen = 0;
        int same = range_get(replica_store(r1), w->keys[w->n], DIR_KEY_LEN, RANGE_TS_MAX, &cur,
                             &clen, NULL) == 0 &&
                   clen == plen && memcmp(cur, val, plen) == 0;
        free(cur);
        if (same) {
            free(val);
            continue;
        }
        w->vals[w->n] = val;
        w->vlens[w->n++] = plen;
    }
    if (!w->n) {
        free(w);
        return;
    }
    dir_send(nr, w);
}

/* ---- waking quiet groups for returning replicas ---- */

static void on_nudged(void *arg, int code, const char *msg, uint64_t ts)
{
    (void)code, (void)msg, (void)ts;
    unref(arg);
}

/* A quiesced group sends nothing, so a replica that was down (and so missed,
 * say, a SPLIT) would not hear of the slots it lacks until the next write.
 * An empty write through every quiet group this node leads brings them
 * back: its ACCEPT shows the returning replica what it is missing. */
static void nudge_quiet_groups(node_ranges *nr)
{
    host *h = H(nr);
    for (size_t i = 0; i < h->nreps; i++) {
        replica *r = h->reps[i];
        if (!paxos_get_quiesced(replica_group(r)) || !replica_is_lease_owner(r)) continue;
        merr e = {0};
        nr->refs++;
        if (replica_write(r, NULL, 0, mtime_mono_ns() + SPLIT_WAIT, on_nudged, nr, &e)) nr->refs--;
    }
}

static void on_peer(void *arg, uint64_t node_id, int up)
{
    node_ranges *nr = arg;
    (void)node_id;
    /* Not at once: the peer may still be restoring its replicas. */
    if (up) nr->nudge = 1;
}

static void on_dir_tick(uv_timer_t *t)
{
    node_ranges *nr = t->data;
    if (nr->n->state != NODE_SERVING) return;
    if (nr->nudge) {
        nr->nudge = 0;
        nudge_quiet_groups(nr);
    }
    dir_refresh(nr);
}

/* ---- lifecycle ---- */

int node_ranges_start(node *n, merr *e)
{
    node_ranges *nr = calloc(1, sizeof(*nr));
    if (!nr) return merr_set(e, MERR_NOMEM, "out of memory");
    nr->n = n;
    nr->refs = 1;
    rpc_node_handle(n->rpc, "range.Split", on_split, nr);
    rpc_node_handle(n->rpc, "range.AllocId", on_alloc, nr);
    rpc_node_handle(n->rpc, "dir.Scan", on_dir_scan, nr);
    rpc_node_handle(n->rpc, "dir.Lookup", on_dir_lookup, nr);
    rpc_node_on_peer(n->rpc, on_peer, nr);
    uv_timer_init(rpc_node_loop(n->rpc), &nr->timer);
    nr->timer.data = nr;
    nr->timer_on = 1;
    uv_timer_start(&nr->timer, on_dir_tick, DIR_TICK_MS / 4, DIR_TICK_MS);
    n->ranges = nr;
    return 0;
}

static void on_timer_closed(uv_handle_t *hd)
{
    unref(hd->data);
}

static void on_stopped(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, MERR_UNAVAILABLE, "the node is stopping", NULL, 0);
}

void node_ranges_stop(node *n)
{
    node_ranges *nr = n->ranges;
    if (!nr) return;
    n->ranges = NULL;
    nr->stopped = 1;
    rpc_node_on_peer(n->rpc, NULL, NULL);
    const char *methods[] = {"range.Split", "range.AllocId", "dir.Scan", "dir.Lookup"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        rpc_node_handle(n->rpc, methods[i], on_stopped, NULL);
    uv_timer_stop(&nr->timer);
    uv_close((uv_handle_t *)&nr->timer, on_timer_closed); /* drops the first reference */
}

void node_ranges_metrics_render(node *n, mbuf *out)
{
    node_ranges *nr = n->ranges;
    if (!nr) return;
    mbuf_printf(out,
                "# TYPE meridian_range_splits_total counter\n"
                "meridian_range_splits_total %" PRIu64 "\n"
                "# TYPE meridian_directory_writes_total counter\n"
                "meridian_directory_writes_total %" PRIu64 "\n",
                nr->splits, nr->dir_writes);
}
