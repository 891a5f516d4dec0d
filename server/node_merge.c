/* Merging ranges from the node: the coordinator of server/replica_merge.c's
 * protocol (docs/ranges.md).
 *
 * range.Merge {key} at the leaseholder of the range L holding key:
 *   1. find L's right neighbour R on this node (same voters required: a
 *      merge needs every replica of L to hold a replica of R);
 *   2. freeze R through its log: here if this node holds R's lease, else
 *      with range.Freeze at R's leader (it answers the freeze slot and R's
 *      generation; a retried freeze answers the first slot again);
 *   3. wait until every replica of R applied the freeze (range.FrozenAt,
 *      polled): a replica of L applies MERGE only once its replica of R
 *      froze, and R's group is gone once its replicas merged, so a lagging
 *      replica could never catch the freeze up later (CockroachDB waits the
 *      same way). A node down blocks the merge; R stays frozen meanwhile;
 *   4. propose MERGE in L's log and answer once it applied here;
 *   5. the directory forgets R (node_ranges_forget).
 * A crash or a refusal between 2 and 3 leaves R frozen, with no write lost.
 * Every MERGE_TICK_MS this node retries the merge of every frozen range
 * whose left neighbour it leads, so R is merged (and serves again through
 * L) without anyone asking. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mtime.h"
#include "proto/range.pb-c.h"
#include "server/kv_service.h"
#include "server/node_int.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD           "merge"
#define MERGE_WAIT    (10 * MTIME_S)
#define MERGE_TICK_MS 2000
#define MERGE_POLL_MS 200

struct node_merge {
    node *n;
    uv_timer_t timer;
    int stopped, refs, inflight;
    uint64_t merges;
};

typedef struct merge_ctx {
    node_merge *nm;
    rpc_req *req; /* NULL: a local caller (done) or the retry timer */
    void (*done)(void *arg, int code, const char *msg);
    void *done_arg;
    uint64_t left_id, right_id, right_gen, freeze_slot;
    uint8_t *key;
    size_t klen;
    /* the client's expectation (MergeRequest.right_range_id, right_start) */
    uint64_t want_right;
    uint8_t *want_start;
    size_t want_slen;
    int already; /* that merge had happened: answered, not counted again */
    int dry_run; /* only say which two ranges would merge */
    /* step 3: polling the right's replicas */
    uv_timer_t timer;
    int timer_on, asked, frozen_ok;
    int64_t wait_until; /* monotonic */
    char lagging[128];  /* why the last round was not ready */
} merge_ctx;

static host *H(node_merge *nm)
{
    return &nm->n->host;
}

static void unref(node_merge *nm)
{
    if (--nm->refs == 0 && nm->stopped) free(nm);
}

static void ctx_free(merge_ctx *c)
{
    node_merge *nm = c->nm;
    free(c->key);
    free(c->want_start);
    free(c);
    unref(nm);
}

static void on_ctx_closed(uv_handle_t *hd)
{
    ctx_free(hd->data);
}

static void merge_reply(merge_ctx *c, int code, const char *msg)
{
    node_merge *nm = c->nm;
    replica *l = nm->stopped ? NULL : host_find(H(nm), c->left_id);
    if (!code && !c->already) {
        nm->merges++;
        if (!nm->stopped) node_ranges_forget(nm->n, c->right_id);
        MLOG_I(MOD, "ranges merged", "range=%" PRIu64 " absorbed=%" PRIu64, c->left_id,
               c->right_id);
    }
    if (c->req) {
        Meridian__Range__MergeResponse resp = MERIDIAN__RANGE__MERGE_RESPONSE__INIT;
        Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
        range_desc_pb d, de;
        if (code) {
            kv_fill_error(H(nm), l, &err, code, msg, &de);
            resp.error = &err;
        } else if (l) {
            range_desc_fill(l, &d);
            resp.merged = &d.d;
        }
        pb_reply(c->req, &resp.base);
    } else if (c->done) {
        c->done(c->done_arg, code, msg);
    } else if (code) {
        MLOG_D(MOD, "merge retry failed", "range=%" PRIu64 " error=\"%s\"", c->left_id,
               msg ? msg : merr_str(code));
    }
    nm->inflight--;
    if (c->timer_on)
        uv_close((uv_handle_t *)&c->timer, on_ctx_closed);
    else
        ctx_free(c);
}

static void on_merged(void *arg, int code, const char *msg, uint64_t ts)
{
    (void)ts;
    merge_reply(arg, code, msg);
}

static void propose_merge(merge_ctx *c)
{
    replica *l = host_find(H(c->nm), c->left_id);
    merr e = {0};
    if (!l) {
        merge_reply(c, MERR_NOTFOUND, "the left range left this node");
    } else if (replica_merge(l, c->right_id, c->right_gen, c->freeze_slot,
                             mtime_mono_ns() + MERGE_WAIT, on_merged, c, &e)) {
        merge_reply(c, e.code, e.msg);
    }
}

static void wait_round(merge_ctx *c);

static void on_poll(uv_timer_t *t)
{
    merge_ctx *c = t->data;
    if (c->nm->stopped)
        merge_reply(c, MERR_CLOSED, "node stopping");
    else
        wait_round(c);
}

/* One reply of a round is in: when all are, merge or poll again. */
static void round_answer(merge_ctx *c, uint64_t nid, int ok)
{
    if (!ok) {
        c->frozen_ok = 0;
        snprintf(c->lagging, sizeof(c->lagging),
                 "the replica of range %" PRIu64 " on node %" PRIu64
                 " has not applied its freeze yet (the range stays frozen: retry)",
                 c->right_id, nid);
    }
    if (--c->asked > 0) return;
    if (c->frozen_ok) {
        propose_merge(c);
        return;
    }
    if (mtime_mono_ns() > c->wait_until || c->nm->stopped) {
        merge_reply(c, MERR_BUSY, c->lagging);
        return;
    }
    if (!c->timer_on) {
        uv_timer_init(rpc_node_loop(c->nm->n->rpc), &c->timer);
        c->timer.data = c;
        c->timer_on = 1;
    }
    uv_timer_start(&c->timer, on_poll, MERGE_POLL_MS, 0);
}

typedef struct poll_call {
    merge_ctx *c;
    uint64_t nid;
} poll_call;

static void on_frozen_at(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    poll_call *pc = arg;
    (void)msg;
    Meridian__Range__FreezeResponse *r =
        code ? NULL : meridian__range__freeze_response__unpack(NULL, len, p);
    /* A replica already gone merged it there (an earlier attempt applied). */
    int ok = r && (r->error ? r->error->kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND
                            : r->freeze_slot == pc->c->freeze_slot);
    if (r) meridian__range__freeze_response__free_unpacked(r, NULL);
    round_answer(pc->c, pc->nid, ok);
    free(pc);
}

/* Asks every voter of the right range whether it applied the freeze. */
static void wait_round(merge_ctx *c)
{
    replica *rr = host_find(H(c->nm), c->right_id);
    if (!rr) {
        merge_reply(c, MERR_RANGE, "the right range left this node");
        return;
    }
    paxos_members cm, lm;
    paxos_get_members(replica_group(rr), &cm, &lm);
    c->asked = 1; /* held until every call went out */
    c->frozen_ok = 1;
    Meridian__Range__FreezeRequest q = MERIDIAN__RANGE__FREEZE_REQUEST__INIT;
    q.range_id = c->right_id;
    uint8_t *buf = NULL;
    size_t len = 0;
    int prc = pb_pack(&q.base, &buf, &len);
    for (uint32_t i = 0; i < cm.nvoters; i++) {
        uint64_t nid = cm.voters[i];
        c->asked++;
        if (nid == H(c->nm)->node_id) {
            round_answer(c, nid, replica_frozen(rr) == c->freeze_slot);
            continue;
        }
        poll_call *pc = prc ? NULL : malloc(sizeof(*pc));
        int64_t deadline = mtime_real_ns() / 1000 + 2 * MTIME_S / 1000;
        if (pc) *pc = (poll_call){c, nid};
        if (!pc || rpc_node_call(c->nm->n->rpc, nid, "range.FrozenAt", buf, len, deadline,
                                 on_frozen_at, pc, NULL)) {
            free(pc);
            round_answer(c, nid, 0);
        }
    }
    free(buf);
    round_answer(c, 0, 1);
}

static void on_frozen(void *arg, int code, const char *msg, uint64_t slot)
{
    merge_ctx *c = arg;
    if (code || c->nm->stopped) {
        merge_reply(c, code ? code : MERR_CLOSED, code ? msg : "node stopping");
        return;
    }
    c->freeze_slot = slot;
    replica *rr = host_find(H(c->nm), c->right_id);
    if (!c->right_gen && rr) c->right_gen = replica_generation(rr); /* frozen: it stays */
    c->wait_until = mtime_mono_ns() + MERGE_WAIT;
    wait_round(c);
}

static void on_freeze_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    merge_ctx *c = arg;
    Meridian__Range__FreezeResponse *r =
        code ? NULL : meridian__range__freeze_response__unpack(NULL, len, p);
    if (!code && !r) code = MERR_PROTOCOL, msg = "undecodable FreezeResponse";
    if (!code && r->error)
        code = r->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER ? MERR_NOT_LEADER : MERR_BUSY,
        msg = r->error->message;
    if (!code) c->right_gen = r->generation;
    char m[256];
    snprintf(m, sizeof(m), "freeze of range %" PRIu64 ": %s", c->right_id,
             msg ? msg : merr_str(code));
    on_frozen(c, code, code ? m : NULL, code ? 0 : r->freeze_slot);
    if (r) meridian__range__freeze_response__free_unpacked(r, NULL);
}

static void on_right_lease(void *arg, int code)
{
    merge_ctx *c = arg;
    replica *rr = c->nm->stopped ? NULL : host_find(H(c->nm), c->right_id);
    merr e = {0};
    if (code || !rr || !replica_is_leaseholder(rr))
        merge_reply(c, MERR_NOT_LEADER, "the right range's lease did not come back: retry");
    else if (replica_freeze(rr, mtime_mono_ns() + MERGE_WAIT, on_frozen, c, &e))
        merge_reply(c, e.code, e.msg);
}

/* Freezes the right range: locally if its lease is here, else at its leader. */
static void freeze_right(merge_ctx *c, replica *rr)
{
    if (replica_is_lease_owner(rr)) {
        int rc = replica_lease_wait(rr, 0, on_right_lease, c);
        if (rc != 1) on_right_lease(c, rc);
        return;
    }
    uint64_t leader = replica_leader_hint(rr);
    if (!leader || leader == H(c->nm)->node_id) {
        merge_reply(c, MERR_UNAVAILABLE, "the right range has no known leaseholder: retry");
        return;
    }
    Meridian__Range__FreezeRequest q = MERIDIAN__RANGE__FREEZE_REQUEST__INIT;
    q.range_id = c->right_id;
    uint8_t *buf = NULL;
    size_t len;
    int64_t deadline = mtime_real_ns() / 1000 + MERGE_WAIT / 1000;
    int rc = pb_pack(&q.base, &buf, &len);
    if (!rc)
        rc = rpc_node_call(c->nm->n->rpc, leader, "range.Freeze", buf, len, deadline,
                           on_freeze_reply, c, NULL);
    free(buf);
    if (rc) merge_reply(c, MERR_UNAVAILABLE, "cannot reach the right range's leaseholder: retry");
}

static void on_left_lease(void *arg, int code)
{
    merge_ctx *c = arg;
    replica *l = c->nm->stopped ? NULL : host_find(H(c->nm), c->left_id);
    if (code || !l || !replica_is_leaseholder(l)) {
        merge_reply(c, MERR_NOT_LEADER, "this replica does not hold the lease");
        return;
    }
    const uint8_t *st, *en;
    size_t sl, el;
    replica_span(l, &st, &sl, &en, &el);
    if (c->want_right) {
        int ends_there = el == c->want_slen && memcmp(en, c->want_start, el) == 0;
        int covers = !el || mbytes_cmp(en, el, c->want_start, c->want_slen) > 0;
        if (covers && replica_absorbed(l) == c->want_right) {
            /* An earlier attempt merged them (its answer was lost). */
            c->right_id = c->want_right;
            c->already = 1;
            merge_reply(c, 0, NULL);
            return;
        }
        replica *rn = ends_there ? replica_right_neighbour(l) : NULL;
        if (!ends_there || (rn && replica_id(rn) != c->want_right)) {
            merge_reply(c, MERR_INVALID,
                        "the ranges changed since the merge was asked (see debug ranges); "
                        "nothing merged");
            return;
        }
    }
    if (!el) {
        merge_reply(c, MERR_INVALID, "the last range has no right neighbour");
        return;
    }
    replica *rr = replica_right_neighbour(l);
    merr e = {0};
    if (!rr) {
        merge_reply(c, MERR_BUSY,
                    "no replica of the right neighbour on this node: the replica sets differ");
        return;
    }
    if (c->dry_run && c->req) {
        Meridian__Range__MergeResponse resp = MERIDIAN__RANGE__MERGE_RESPONSE__INIT;
        range_desc_pb dl, dr;
        range_desc_fill(l, &dl);
        range_desc_fill(rr, &dr);
        resp.left = &dl.d;
        resp.right = &dr.d;
        pb_reply(c->req, &resp.base);
        c->req = NULL;
        c->already = 1;
        merge_reply(c, 0, NULL); /* frees c; nothing to count */
        return;
    }
    if (replica_merge_ready(l, rr, &e)) {
        merge_reply(c, e.code, e.msg);
        return;
    }
    c->right_id = replica_id(rr);
    freeze_right(c, rr);
}

static void merge_start(merge_ctx *c)
{
    node_merge *nm = c->nm;
    replica *l = c->left_id ? host_find(H(nm), c->left_id)
                 : c->klen  ? host_find_key(H(nm), c->key, c->klen)
                            : NULL;
    if (!l) {
        merge_reply(c, MERR_NOTFOUND, "no replica of that range on this node");
        return;
    }
    c->left_id = replica_id(l);
    if (replica_frozen(l)) {
        merge_reply(c, MERR_BUSY, "the range is frozen for a merge into its own left neighbour");
        return;
    }
    /* A quiet group's leader lets its lease lapse: renew it first. */
    int rc = replica_lease_wait(l, 0, on_left_lease, c);
    if (rc != 1) on_left_lease(c, rc);
}

static merge_ctx *ctx_new(node_merge *nm, const uint8_t *key, size_t klen)
{
    merge_ctx *c = calloc(1, sizeof(*c));
    if (c) c->key = malloc(klen ? klen : 1);
    if (!c || !c->key) {
        free(c);
        return NULL;
    }
    if (klen) memcpy(c->key, key, klen);
    c->klen = klen;
    c->nm = nm;
    nm->refs++;
    nm->inflight++;
    return c;
}

static void on_merge(void *arg, rpc_req *req)
{
    node_merge *nm = arg;
    Meridian__Range__MergeRequest *q =
        meridian__range__merge_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable MergeRequest", NULL, 0);
        return;
    }
    merge_ctx *c = ctx_new(nm, q->key.data, q->key.len);
    if (c) c->dry_run = q->dry_run;
    if (c && q->right_range_id) {
        c->want_right = q->right_range_id;
        c->want_start = malloc(q->right_start.len ? q->right_start.len : 1);
        if (c->want_start && q->right_start.len) /* an empty start has no data */
            memcpy(c->want_start, q->right_start.data, q->right_start.len);
        c->want_slen = q->right_start.len;
        if (!c->want_start) {
            nm->inflight--;
            ctx_free(c);
            c = NULL;
        }
    }
    meridian__range__merge_request__free_unpacked(q, NULL);
    if (!c) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    c->req = req;
    if (c->klen == 0 || c->klen > RANGE_KEY_MAX) {
        merge_reply(c, MERR_INVALID, "merge keys are 1 to 65536 bytes");
        return;
    }
    merge_start(c);
}

int node_merge_range(node *n, uint64_t left_id, void (*done)(void *arg, int code, const char *msg),
                     void *arg)
{
    node_merge *nm = n->merge;
    merge_ctx *c = nm ? ctx_new(nm, NULL, 0) : NULL;
    if (!c) return MERR_NOMEM;
    c->left_id = left_id;
    c->done = done;
    c->done_arg = arg;
    merge_start(c);
    return 0;
}

typedef struct remote_merge {
    void (*done)(void *arg, int code, const char *msg);
    void *arg;
} remote_merge;

static void on_remote_merge(void *arg, int code, const char *msg, const uint8_t *buf, size_t len)
{
    remote_merge *rm = arg;
    Meridian__Range__MergeResponse *r =
        code ? NULL : meridian__range__merge_response__unpack(NULL, len, buf);
    if (!code && !r) code = MERR_PROTOCOL, msg = "undecodable MergeResponse";
    if (r && r->error) code = MERR_UNAVAILABLE, msg = r->error->message;
    rm->done(rm->arg, code, msg);
    if (r) meridian__range__merge_response__free_unpacked(r, NULL);
    free(rm);
}

int node_merge_at(node *n, uint64_t leader, uint64_t left_id, const uint8_t *start, size_t slen,
                  void (*done)(void *arg, int code, const char *msg), void *arg)
{
    if (leader == n->host.node_id) return node_merge_range(n, left_id, done, arg);
    static const uint8_t sys_key = 0x00; /* range 1 starts at "": a key inside it */
    Meridian__Range__MergeRequest q = MERIDIAN__RANGE__MERGE_REQUEST__INIT;
    q.key = slen ? (ProtobufCBinaryData){slen, (uint8_t *)start}
                 : (ProtobufCBinaryData){1, (uint8_t *)&sys_key};
    remote_merge *rm = malloc(sizeof(*rm));
    if (!rm) return MERR_NOMEM;
    *rm = (remote_merge){done, arg};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = pb_pack(&q.base, &buf, &len);
    int64_t deadline = mtime_real_ns() / 1000 + 2 * MERGE_WAIT / 1000;
    if (!rc)
        rc = rpc_node_call(n->rpc, leader, "range.Merge", buf, len, deadline, on_remote_merge, rm,
                           NULL);
    free(buf);
    if (rc) free(rm);
    return rc;
}

/* ---- range.Freeze ---- */

typedef struct freeze_req {
    node_merge *nm;
    rpc_req *req;
    uint64_t range_id;
} freeze_req;

static void freeze_reply(freeze_req *f, int code, const char *msg, uint64_t slot)
{
    Meridian__Range__FreezeResponse resp = MERIDIAN__RANGE__FREEZE_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    replica *r = f->nm->stopped ? NULL : host_find(H(f->nm), f->range_id);
    if (code) {
        kv_fill_error(H(f->nm), r, &err, code, msg, NULL);
        resp.error = &err;
    } else {
        resp.freeze_slot = slot;
        resp.generation = r ? replica_generation(r) : 0;
    }
    pb_reply(f->req, &resp.base);
    node_merge *nm = f->nm;
    free(f);
    unref(nm);
}

static void on_freeze_applied(void *arg, int code, const char *msg, uint64_t slot)
{
    freeze_reply(arg, code, msg, slot);
}

static void on_freeze_lease(void *arg, int code)
{
    freeze_req *f = arg;
    replica *r = f->nm->stopped ? NULL : host_find(H(f->nm), f->range_id);
    merr e = {0};
    if (code || !r || !replica_is_leaseholder(r))
        freeze_reply(f, MERR_NOT_LEADER, "this replica does not hold the lease", 0);
    else if (replica_freeze(r, mtime_mono_ns() + MERGE_WAIT, on_freeze_applied, f, &e))
        freeze_reply(f, e.code, e.msg, 0);
}

/* range.FrozenAt: this node's replica's freeze slot (0: not frozen). */
static void on_frozen_at_req(void *arg, rpc_req *req)
{
    node_merge *nm = arg;
    Meridian__Range__FreezeRequest *q =
        meridian__range__freeze_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable FreezeRequest", NULL, 0);
        return;
    }
    replica *r = host_find(H(nm), q->range_id);
    meridian__range__freeze_request__free_unpacked(q, NULL);
    Meridian__Range__FreezeResponse resp = MERIDIAN__RANGE__FREEZE_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    if (!r) {
        kv_fill_error(H(nm), NULL, &err, MERR_NOTFOUND, "no replica of that range here", NULL);
        resp.error = &err;
    } else {
        resp.freeze_slot = replica_frozen(r);
        resp.generation = replica_generation(r);
    }
    pb_reply(req, &resp.base);
}

static void on_freeze(void *arg, rpc_req *req)
{
    node_merge *nm = arg;
    Meridian__Range__FreezeRequest *q =
        meridian__range__freeze_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable FreezeRequest", NULL, 0);
        return;
    }
    freeze_req *f = calloc(1, sizeof(*f));
    if (!f) {
        meridian__range__freeze_request__free_unpacked(q, NULL);
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    *f = (freeze_req){nm, req, q->range_id};
    meridian__range__freeze_request__free_unpacked(q, NULL);
    nm->refs++;
    replica *r = host_find(H(nm), f->range_id);
    if (!r) {
        freeze_reply(f, MERR_NOTFOUND, "no replica of that range on this node", 0);
        return;
    }
    /* Only a merge's right-hand range is frozen, and nothing merges the
     * range that starts the key space into a left neighbour: frozen, it
     * (range 1, the directory's) would refuse every request for good. */
    const uint8_t *st, *en;
    size_t sl, el;
    replica_span(r, &st, &sl, &en, &el);
    if (sl == 0) {
        freeze_reply(f, MERR_INVALID,
                     "the first range of the key space has no left neighbour: "
                     "it is never frozen for a merge",
                     0);
        return;
    }
    int rc = replica_lease_wait(r, 0, on_freeze_lease, f);
    if (rc != 1) on_freeze_lease(f, rc);
}

/* ---- finishing merges left half-way ---- */

static void on_tick(uv_timer_t *t)
{
    node_merge *nm = t->data;
    host *h = H(nm);
    if (nm->n->state != NODE_SERVING || nm->inflight) return;
    for (size_t i = 0; i < h->nreps; i++) {
        replica *rr = h->reps[i];
        if (!replica_frozen(rr)) continue;
        const uint8_t *st, *en;
        size_t sl, el;
        replica_span(rr, &st, &sl, &en, &el);
        for (size_t j = 0; j < h->nreps; j++) {
            replica *l = h->reps[j];
            const uint8_t *ls, *le;
            size_t lsl, lel;
            replica_span(l, &ls, &lsl, &le, &lel);
            if (l == rr || lel != sl || memcmp(le, st, sl) || !replica_is_lease_owner(l)) continue;
            MLOG_I(MOD, "finishing the merge of a frozen range", "range=%" PRIu64 " into=%" PRIu64,
                   replica_id(rr), replica_id(l));
            node_merge_range(nm->n, replica_id(l), NULL, NULL);
            return; /* one at a time */
        }
    }
}

/* ---- lifecycle ---- */

int node_merge_start(node *n, merr *e)
{
    node_merge *nm = calloc(1, sizeof(*nm));
    if (!nm) return merr_set(e, MERR_NOMEM, "out of memory");
    nm->n = n;
    nm->refs = 1;
    rpc_node_handle(n->rpc, "range.Merge", on_merge, nm);
    rpc_node_handle(n->rpc, "range.Freeze", on_freeze, nm);
    rpc_node_handle(n->rpc, "range.FrozenAt", on_frozen_at_req, nm);
    uv_timer_init(rpc_node_loop(n->rpc), &nm->timer);
    nm->timer.data = nm;
    uv_timer_start(&nm->timer, on_tick, MERGE_TICK_MS, MERGE_TICK_MS);
    n->merge = nm;
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

void node_merge_stop(node *n)
{
    node_merge *nm = n->merge;
    if (!nm) return;
    n->merge = NULL;
    nm->stopped = 1;
    rpc_node_handle(n->rpc, "range.Merge", on_stopped, NULL);
    rpc_node_handle(n->rpc, "range.Freeze", on_stopped, NULL);
    rpc_node_handle(n->rpc, "range.FrozenAt", on_stopped, NULL);
    uv_timer_stop(&nm->timer);
    uv_close((uv_handle_t *)&nm->timer, on_timer_closed); /* drops the first reference */
}

void node_merge_metrics_render(node *n, mbuf *out)
{
    node_merge *nm = n->merge;
    if (!nm) return;
    mbuf_printf(out,
                "# TYPE meridian_range_merges_total counter\n"
                "meridian_range_merges_total %" PRIu64 "\n",
                nm->merges);
}
