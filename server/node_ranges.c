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
#include "server/node_ranges_int.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD "ranges"

static const uint8_t KEY_RANGE_COUNTER[] = "\x00sys/range-id-counter";
#define KEY_RANGE_COUNTER_LEN (sizeof(KEY_RANGE_COUNTER) - 1)

host *nr_host(node_ranges *nr)
{
    return &nr->n->host;
}

void nr_unref(node_ranges *nr)
{
    if (--nr->refs == 0 && nr->stopped) free(nr);
}

uint64_t nr_range1_leader(node_ranges *nr)
{
    replica *r1 = host_find(nr_host(nr), NODE_GENESIS_RANGE);
    uint64_t l = r1 ? replica_leader_hint(r1) : 0;
    return l == nr_host(nr)->node_id ? 0 : l;
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
    nr_unref(a->nr);
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
    nr_unref(a->nr);
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
    replica *r1 = w->nr->stopped ? NULL : host_find(nr_host(w->nr), NODE_GENESIS_RANGE);
    if (code || !r1 || !replica_is_leaseholder(r1))
        w->cb(w->arg, MERR_UNAVAILABLE, "range 1's lease did not come back: retry", 0);
    else
        alloc_local(w->nr, r1, w->cb, w->arg);
    nr_unref(w->nr);
    free(w);
}

static void alloc_id(node_ranges *nr, alloc_cb cb, void *arg)
{
    replica *r1 = host_find(nr_host(nr), NODE_GENESIS_RANGE);
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
    uint64_t leader = nr_range1_leader(nr);
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
        replica *r1 = host_find(nr_host(q->nr), NODE_GENESIS_RANGE);
        kv_fill_error(nr_host(q->nr), r1, &err, code, msg, NULL);
        resp.error = &err;
    }
    resp.range_id = id;
    pb_reply(q->req, &resp.base);
    free(q);
}

static void on_alloc(void *arg, rpc_req *req)
{
    node_ranges *nr = arg;
    replica *r1 = host_find(nr_host(nr), NODE_GENESIS_RANGE);
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
        nr_unref(nr);
        return;
    }
    Meridian__Range__SplitResponse resp = MERIDIAN__RANGE__SPLIT_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    range_desc_pb dl, dr, de;
    replica *l = c->nr->stopped ? NULL : host_find(nr_host(c->nr), c->range_id);
    replica *r = c->nr->stopped ? NULL : host_find(nr_host(c->nr), c->new_id);
    if (code) {
        kv_fill_error(nr_host(c->nr), l, &err, code, msg, &de);
        resp.error = &err;
    } else {
        if (l) range_desc_fill(l, &dl), resp.left = &dl.d;
        if (r) range_desc_fill(r, &dr), resp.right = &dr.d;
    }
    pb_reply(c->req, &resp.base);
    node_ranges *nr = c->nr;
    free(c->key);
    free(c);
    nr_unref(nr);
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
    replica *r = host_find(nr_host(c->nr), c->range_id);
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
    if (q->key.len) memcpy(c->key, q->key.data, q->key.len); /* an empty key has no data */
    c->klen = q->key.len;
    meridian__range__split_request__free_unpacked(q, NULL);
    split_start(c);
}

static void split_start(split_ctx *c)
{
    node_ranges *nr = c->nr;
    replica *r = c->klen ? host_find_key(nr_host(nr), c->key, c->klen) : NULL;
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
        for (size_t i = 0; i < nr_host(nr)->nreps; i++) {
            replica_span(nr_host(nr)->reps[i], &st, &sl, &en, &el);
            if (el == c->klen && memcmp(en, c->key, el) == 0)
                c->range_id = replica_id(nr_host(nr)->reps[i]);
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
    replica *r = c->nr->stopped ? NULL : host_find(nr_host(c->nr), c->range_id);
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

/* ---- waking quiet groups for returning replicas ---- */

static void on_nudged(void *arg, int code, const char *msg, uint64_t ts)
{
    (void)code, (void)msg, (void)ts;
    nr_unref(arg);
}

/* A quiesced group sends nothing, so a replica that was down (and so missed,
 * say, a SPLIT) would not hear of the slots it lacks until the next write.
 * An empty write through every quiet group this node leads brings them
 * back: its ACCEPT shows the returning replica what it is missing. */
static void nudge_quiet_groups(node_ranges *nr)
{
    host *h = nr_host(nr);
    for (size_t i = 0; i < h->nreps; i++) {
        replica *r = h->reps[i];
        if (!paxos_get_quiesced(replica_group(r)) || !replica_is_lease_owner(r)) continue;
        merr e = {0};
        nr->refs++;
        if (replica_write(r, NULL, 0, mtime_mono_ns() + SPLIT_WAIT, on_nudged, nr, &e)) nr->refs--;
    }
}

/* Nudges after a peer comes up: one per dir tick. A returning node accepts
 * connections before it has restored every replica, and a message for a
 * group it does not host yet is dropped; a quiet group then stays quiet, and
 * a replica that missed, say, a SPLIT's commit never applies it (a
 * cluster_ranges failure on a loaded machine: the one nudge came 0.3 s
 * before the node's replicas were back). */
#define NUDGE_TICKS 4

static void on_peer(void *arg, uint64_t node_id, int up)
{
    node_ranges *nr = arg;
    (void)node_id;
    /* Not at once: the peer may still be restoring its replicas. */
    if (up) nr->nudge = NUDGE_TICKS;
}

static void on_dir_tick(uv_timer_t *t)
{
    node_ranges *nr = t->data;
    if (nr->n->state != NODE_SERVING) return;
    if (nr->nudge > 0) {
        nr->nudge--;
        nudge_quiet_groups(nr);
    }
    nr_dir_refresh(nr);
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
    rpc_node_handle(n->rpc, "dir.Scan", nr_on_dir_scan, nr);
    rpc_node_handle(n->rpc, "dir.Lookup", nr_on_dir_lookup, nr);
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
    nr_unref(hd->data);
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
