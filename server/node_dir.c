/* The range directory (docs/ranges.md, node_ranges.c's header comment):
 * readers (dir.Scan, dir.Lookup) resolving overlaps by generation, and the
 * periodic refresh writing the descriptors of the ranges led here (and the
 * deletes of ranges merged away) through range 1's leaseholder. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "placement/route_cache.h"
#include "proto/range.pb-c.h"
#include "server/dir.h"
#include "server/kv_service.h"
#include "server/node_int.h"
#include "server/node_ranges_int.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD "ranges"

static const uint8_t DIR_PREFIX[DIR_PREFIX_LEN + 1] = "\x00sys/range/";

static void dir_key(uint64_t id, uint8_t out[DIR_KEY_LEN])
{
    memcpy(out, DIR_PREFIX, DIR_PREFIX_LEN);
    mbe64_put(out + DIR_PREFIX_LEN, id);
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

/* Reads the directory from this node's replica of range 1 into rows and a
 * route cache resolving overlaps by generation. 0, or a code with why. */
static int dir_load(host *h, dir_rows *rows, route_cache *rc, const char **why)
{
    replica *r1 = host_find(h, NODE_GENESIS_RANGE);
    if (!r1) {
        *why = "no replica of range 1 (the directory) on this node";
        return MERR_NOTFOUND;
    }
    uint8_t end[DIR_PREFIX_LEN];
    memcpy(end, DIR_PREFIX, DIR_PREFIX_LEN);
    end[DIR_PREFIX_LEN - 1]++; /* "/" + 1: just past every directory key */
    int code = range_scan(replica_store(r1), DIR_PREFIX, DIR_PREFIX_LEN, end, DIR_PREFIX_LEN,
                          RANGE_TS_MAX, 0, 0, dir_row, rows, NULL);
    if (rows->oom) code = MERR_NOMEM;
    for (size_t i = 0; !code && i < rows->n; i++) {
        const Meridian__Meta__RangeDescriptor *d = rows->v[i];
        if (route_cache_update(rc, d->range_id, d->generation, d->start_key.data, d->start_key.len,
                               d->end_key.data, d->end_key.len, d->leader_node_id) < 0)
            code = MERR_NOMEM;
    }
    if (code) *why = "cannot read the directory";
    return code;
}

static void dir_rows_free(dir_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        meridian__meta__range_descriptor__free_unpacked(rows->v[i], NULL);
    free(rows->v);
}

uint64_t dir_range_of(host *h, const uint8_t *key, size_t klen, uint64_t *leader)
{
    dir_rows rows = {0};
    route_cache rc;
    route_cache_init(&rc);
    const char *why = NULL;
    uint64_t id = 0;
    *leader = 0;
    if (dir_load(h, &rows, &rc, &why) == 0) {
        const route_entry *e = route_cache_lookup(&rc, key, klen);
        if (e) id = e->range_id, *leader = e->leader;
    }
    route_cache_free(&rc);
    dir_rows_free(&rows);
    return id;
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
    const char *why = NULL;
    int code = dir_load(nr_host(nr), &rows, &rc, &why);
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
        const char *a = rc.v[i].leader ? host_peer_addr(nr_host(nr), rc.v[i].leader) : NULL;
        addrs[resp.n_ranges++] = (char *)(a ? a : "");
    }
    resp.ranges = out;
    resp.leader_addresses = addrs;
    resp.n_leader_addresses = resp.n_ranges;
    if (code) {
        kv_fill_error(nr_host(nr), NULL, &err, code, why, NULL);
        resp.error = &err;
        resp.n_ranges = resp.n_leader_addresses = 0;
    }
    pb_reply(req, &resp.base);
    free(out);
    free(addrs);
    dir_rows_free(&rows);
    route_cache_free(&rc);
    meridian__range__dir_request__free_unpacked(q, NULL);
}

void nr_on_dir_scan(void *arg, rpc_req *req)
{
    dir_serve(arg, req, 0);
}

void nr_on_dir_lookup(void *arg, rpc_req *req)
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
    nr_unref(nr);
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
    nr_unref(nr);
}

/* Sends w to range 1's leaseholder (this node's replica, or over rpc). */
static void dir_send(node_ranges *nr, dir_write *w)
{
    replica *r1 = host_find(nr_host(nr), NODE_GENESIS_RANGE);
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
        uint64_t leader = nr_range1_leader(nr);
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
void nr_dir_refresh(node_ranges *nr)
{
    host *h = nr_host(nr);
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
