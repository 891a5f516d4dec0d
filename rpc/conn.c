/* rpc connections: dialing and accepting, the handshake, reading frames,
 * batching writes, fault injection on the way out, and peer reconnects with
 * backoff. Runs on the loop thread only.
 *
 * Write path: conn_send() encodes a frame straight into conn->out and marks
 * the connection dirty; uv_check (after poll) and uv_prepare (before poll,
 * for frames queued by timers) handles flush every dirty connection with one
 * uv_write, so all frames produced in one loop iteration share a syscall. While a write is in
 * flight new frames keep collecting in `out`; send_queue_max bounds out + in-flight bytes. */
#include "rpc/internal.h"
#include "common/log.h"
#include "common/mtime.h"
#include "proto/rpc.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rpc_delayed {
    rpc_heap_item hi;
    uint64_t cid;
    size_t len;
    uint8_t data[];
} rpc_delayed;

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static rpc_conn *conn_new(rpc_node *n, int outbound)
{
    rpc_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    if (n->tls && tls_sess_new(n->tls, !outbound, &c->tls)) {
        free(c);
        return NULL;
    }
    c->node = n;
    c->cid = n->next_cid++;
    c->outbound = outbound;
    uv_tcp_init(&n->loop, &c->tcp);
    c->tcp.data = c;
    c->wreq.data = c;
    c->creq.data = c;
    c->created_ns = mtime_mono_ns();
    rpc_decoder_init(&c->dec, n->cfg.max_frame < RPC_HANDSHAKE_FRAME_MAX ? n->cfg.max_frame
                                                                         : RPC_HANDSHAKE_FRAME_MAX);
    rpc_arena_init(&c->arena);
    c->next = n->conns;
    if (n->conns) n->conns->prev = c;
    n->conns = c;
    return c;
}

rpc_conn *conn_by_cid(rpc_node *n, uint64_t cid)
{
    for (rpc_conn *c = n->conns; c; c = c->next)
        if (c->cid == cid) return c;
    return NULL;
}

void conn_mark_dirty(rpc_conn *c)
{
    if (c->dirty) return;
    c->dirty = 1;
    c->next_dirty = c->node->dirty;
    c->node->dirty = c;
}

static void on_conn_closed(uv_handle_t *h)
{
    rpc_conn *c = h->data;
    rpc_node *n = c->node;
    if (c->dirty) {
        for (rpc_conn **pp = &n->dirty; *pp; pp = &(*pp)->next_dirty) {
            if (*pp == c) {
                *pp = c->next_dirty;
                break;
            }
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    node_queue_add(n, c, -(int64_t)c->out.len);
    rpc_decoder_free(&c->dec);
    rpc_arena_destroy(&c->arena);
    mbuf_free(&c->hs);
    mbuf_free(&c->out);
    mbuf_free(&c->wbuf);
    tls_sess_free(c->tls);
    free(c);
}

static void on_backoff(uv_timer_t *t);

/* A clean close by the other side is news, not a warning. */
static const char eof_reason[] = "closed by the remote side";

void conn_close(rpc_conn *c, int code, const char *reason)
{
    rpc_node *n = c->node;
    if (c->state == CONN_CLOSING) return;
    int was_ready = c->state == CONN_READY;
    c->state = CONN_CLOSING;
    n->m.conns_closed++;
    if (c->inbound_counted) n->m.inbound_open--;
    if (code == MERR_CLOSED || reason == eof_reason)
        MLOG(code == MERR_CLOSED ? MLOG_DEBUG : MLOG_INFO, MOD, "connection closed",
             "node=%llu conn=%llu remote=%s reason=\"%s\"", (unsigned long long)n->cfg.node_id,
             (unsigned long long)c->cid, c->remote_addr, reason);
    else
        MLOG_W(MOD, "connection closed", "node=%llu conn=%llu remote=%s peer=%llu reason=\"%s\"",
               (unsigned long long)n->cfg.node_id, (unsigned long long)c->cid, c->remote_addr,
               (unsigned long long)c->remote_id, reason);
    rpc_peer *p = c->peer;
    if (p && p->conn == c) {
        /* Peer state first: the peer-down subscriber may send right away. */
        p->conn = NULL;
        if (code != MERR_CLOSED) merr_set(&p->last_err, code, "%s", reason);
        if (!n->stopping) {
            int64_t d = rpc_backoff_next(&p->backoff, node_jitter(n));
            p->state = PEER_BACKOFF;
            uv_timer_start(&p->timer, on_backoff, (uint64_t)((d + 999999) / 1000000), 0);
        } else {
            p->state = PEER_IDLE;
        }
        if (was_ready) node_notify_peer(n, p->id, 0);
    }
    char msg[MERR_MSG_MAX];
    snprintf(msg, sizeof(msg), "connection to %s lost: %s", c->remote_addr, reason);
    call_conn_gone(c, code == MERR_PROTOCOL ? MERR_PROTOCOL : MERR_UNAVAILABLE, msg);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- writing ---- */

static void conn_flush(rpc_conn *c);
static int conn_plain_fill(rpc_conn *c);

static void on_write(uv_write_t *req, int status)
{
    rpc_conn *c = req->data;
    c->writing = 0;
    node_queue_add(c->node, c, -(int64_t)c->wbuf_plain);
    c->wbuf_plain = 0;
    mbuf_reset(&c->wbuf);
    if (c->wbuf.cap > (1u << 20)) mbuf_free(&c->wbuf); /* do not pin a burst's memory */
    if (status < 0) {
        if (status != UV_ECANCELED) conn_close(c, MERR_UNAVAILABLE, uv_strerror(status));
        return;
    }
    /* Close once the refusal (or a TLS alert still in the session) is out. */
    if (c->close_after_write && !c->hs.len &&
        !(c->tls && !c->plain_peer && tls_sess_pending(c->tls))) {
        conn_close(c, c->close_code ? c->close_code : MERR_PROTOCOL,
                   c->close_reason[0] ? c->close_reason : "handshake refused");
        return;
    }
    conn_flush(c);
    /* Hysteresis: streams held back by a full queue go on at half of it. */
    if (c->stream_waiters && c->state == CONN_READY &&
        c->out.len + c->wbuf.len <= c->node->cfg.stream_queue_max / 2)
        call_conn_drained(c);
}

static void conn_flush(rpc_conn *c)
{
    if (c->writing || c->state == CONN_CLOSING || c->state == CONN_CONNECTING) return;
    if (c->tls && !c->plain_peer) {
        /* TLS: everything sendable is encrypted into wbuf in one go. */
        int rc = conn_tls_fill(c);
        if (rc) {
            node_queue_add(c->node, c, -(int64_t)c->wbuf_plain);
            c->wbuf_plain = 0;
            mbuf_reset(&c->wbuf);
            conn_close(c, rc, "TLS: cannot encrypt");
            return;
        }
        if (!c->wbuf.len) return;
    } else if (!conn_plain_fill(c)) {
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    c->writing = 1;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc) {
        c->writing = 0;
        node_queue_add(c->node, c, -(int64_t)c->wbuf_plain);
        c->wbuf_plain = 0;
        mbuf_reset(&c->wbuf);
        conn_close(c, MERR_UNAVAILABLE, uv_strerror(rc));
    }
}

/* Plaintext: the next buffer (handshake frames first) becomes wbuf by a
 * swap, no copy. Returns 0 when there is nothing to send. */
static int conn_plain_fill(rpc_conn *c)
{
    mbuf *src;
    if (c->hs.len)
        src = &c->hs;
    else if (c->state == CONN_READY && c->out.len)
        src = &c->out;
    else
        return 0;
    mbuf t = c->wbuf;
    c->wbuf = *src;
    *src = t;
    c->wbuf_plain = src == &c->out ? c->wbuf.len : 0;
    return 1;
}

void conn_flush_dirty(rpc_node *n)
{
    while (n->dirty) {
        rpc_conn *c = n->dirty;
        n->dirty = c->next_dirty;
        c->dirty = 0;
        c->next_dirty = NULL;
        conn_flush(c);
    }
}

static int conn_append(rpc_conn *c, const rpc_env *env)
{
    size_t before = c->out.len;
    merr e = {0};
    int rc = rpc_env_encode(env, c->node->cfg.max_frame, &c->out, &e);
    if (rc) return rc;
    size_t n = c->out.len - before;
    if (c->pm) {
        c->pm->msgs_out++;
        c->pm->bytes_out += n;
    }
    node_queue_add(c->node, c, (int64_t)n);
    conn_mark_dirty(c);
    return 0;
}

static void arm_delay_timer(rpc_node *n)
{
    rpc_heap_item *top = rpc_heap_top(&n->delayed);
    if (!top) return;
    int64_t wait = top->at - mtime_mono_ns();
    uv_timer_start(&n->delay_timer, conn_delay_timer_cb,
                   wait > 0 ? (uint64_t)((wait + 999999) / 1000000) : 0, 0);
}

void conn_delay_timer_cb(uv_timer_t *t)
{
    rpc_node *n = t->data;
    int64_t now = mtime_mono_ns();
    rpc_heap_item *top;
    while ((top = rpc_heap_top(&n->delayed)) && top->at <= now) {
        rpc_delayed *d = (rpc_delayed *)top;
        rpc_heap_remove(&n->delayed, top);
        rpc_conn *c = conn_by_cid(n, d->cid);
        if (c && c->state == CONN_READY && mbuf_append(&c->out, d->data, d->len) == 0) {
            if (c->pm) {
                c->pm->msgs_out++;
                c->pm->bytes_out += d->len;
            }
            node_queue_add(n, c, (int64_t)d->len);
            conn_mark_dirty(c);
        }
        free(d);
    }
    arm_delay_timer(n);
}

void conn_free_delayed(rpc_node *n)
{
    for (size_t i = 0; i < n->delayed.n; i++) free(n->delayed.a[i]);
    n->delayed.n = 0;
}

static int conn_send_delayed(rpc_conn *c, const rpc_env *env, int64_t at)
{
    mbuf tmp = MBUF_INIT;
    merr e = {0};
    int rc = rpc_env_encode(env, c->node->cfg.max_frame, &tmp, &e);
    if (rc) return rc;
    rpc_delayed *d = malloc(sizeof(*d) + tmp.len);
    if (!d) {
        mbuf_free(&tmp);
        return MERR_NOMEM;
    }
    d->cid = c->cid;
    d->len = tmp.len;
    memcpy(d->data, tmp.data, tmp.len);
    mbuf_free(&tmp);
    d->hi.at = at;
    if (rpc_heap_push(&c->node->delayed, &d->hi)) {
        free(d);
        return MERR_NOMEM;
    }
    arm_delay_timer(c->node);
    return 0;
}

/* The slow path when faults are configured (fault.h decides, we apply). */
static int conn_send_faulty(rpc_conn *c, const rpc_env *env)
{
    rpc_node *n = c->node;
    rpc_fault_verdict v;
    rpc_faults_out(&n->faults, c->remote_id, n->region, c->remote_region, &v);
    if (v.partitioned) {
        n->m.fault_partitioned++;
        return 0; /* lost like on a cut link: the sender cannot tell */
    }
    if (v.dropped) {
        n->m.fault_dropped++;
        return 0;
    }
    if (v.copies > 1) n->m.fault_duplicated++;
    if (v.delay_ns <= 0) {
        for (int i = 0; i < v.copies; i++) {
            int rc = conn_append(c, env);
            if (rc) return rc;
        }
        return 0;
    }
    n->m.fault_delayed++;
    int64_t at = mtime_mono_ns() + v.delay_ns;
    if (v.reordered) {
        n->m.fault_reordered++;
    } else {
        /* TCP does not reorder: jitter stretches gaps, it never swaps. */
        if (at < c->last_release_ns) at = c->last_release_ns;
        c->last_release_ns = at;
    }
    for (int i = 0; i < v.copies; i++) {
        int rc = conn_send_delayed(c, env, at);
        if (rc) return rc;
    }
    return 0;
}

int conn_send(rpc_conn *c, const rpc_env *env)
{
    rpc_node *n = c->node;
    if (c->state == CONN_CLOSING) return MERR_UNAVAILABLE;
    if (c->out.len + c->wbuf.len + env->payload_len + 64 > n->cfg.send_queue_max) {
        n->m.busy_rejections++;
        return MERR_BUSY;
    }
    if (rpc_faults_active(&n->faults)) return conn_send_faulty(c, env);
    return conn_append(c, env);
}

/* ---- handshake ---- */

static int queue_handshake_env(rpc_conn *c, int kind, const void *msg, size_t len)
{
    rpc_env env = {.kind = kind, .payload = msg, .payload_len = len};
    merr e = {0};
    int rc = rpc_env_encode(&env, c->node->cfg.max_frame, &c->hs, &e);
    if (!rc) conn_mark_dirty(c);
    return rc;
}

static int send_handshake(rpc_conn *c)
{
    rpc_node *n = c->node;
    Meridian__Rpc__Handshake hs = MERIDIAN__RPC__HANDSHAKE__INIT;
    hs.protocol_version = RPC_PROTOCOL_VERSION;
    hs.node_id = n->cfg.node_id;
    hs.cluster_id = n->cluster_id;
    hs.address = n->listen;
    hs.locality = n->locality;
    uint8_t buf[1024];
    size_t len = meridian__rpc__handshake__get_packed_size(&hs);
    if (len > sizeof(buf)) return MERR_TOOBIG;
    meridian__rpc__handshake__pack(&hs, buf);
    return queue_handshake_env(c, RPC_KIND_HANDSHAKE, buf, len);
}

static void send_handshake_reply(rpc_conn *c, int accepted, const char *reason)
{
    rpc_node *n = c->node;
    Meridian__Rpc__HandshakeReply r = MERIDIAN__RPC__HANDSHAKE_REPLY__INIT;
    r.accepted = accepted;
    r.reason = (char *)(reason ? reason : "");
    if (!c->plain_peer) { /* an unauthenticated peer learns nothing about the cluster */
        r.node_id = n->cfg.node_id;
        r.cluster_id = n->cluster_id;
        r.locality = n->locality;
        r.address = n->listen;
    }
    uint8_t buf[2048];
    size_t len = meridian__rpc__handshake_reply__get_packed_size(&r);
    if (len <= sizeof(buf)) meridian__rpc__handshake_reply__pack(&r, buf);
    if (len > sizeof(buf) || queue_handshake_env(c, RPC_KIND_HANDSHAKE_REPLY, buf, len)) {
        conn_close(c, MERR_INTERNAL, "cannot encode handshake reply");
        return;
    }
    if (!accepted) c->close_after_write = 1;
}

void conn_refuse(rpc_conn *c, const char *reason)
{
    c->node->m.handshakes_refused++;
    MLOG_W(MOD, "handshake refused", "node=%llu remote=%s reason=\"%s\"",
           (unsigned long long)c->node->cfg.node_id, c->remote_addr, reason);
    send_handshake_reply(c, 0, reason);
    if (c->close_after_write) {
        c->close_code = MERR_PROTOCOL;
        snprintf(c->close_reason, sizeof(c->close_reason), "refused: %s", reason);
    }
}

void conn_close_after_flush(rpc_conn *c, int code, const char *reason)
{
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    if (c->writing || (c->tls && tls_sess_pending(c->tls))) {
        c->close_after_write = 1;
        conn_mark_dirty(c);
    } else {
        conn_close(c, code, c->close_reason);
    }
}

/* Acceptor side: validate the dialer's Handshake and answer. */
static void on_handshake(rpc_conn *c, const rpc_env *env)
{
    rpc_node *n = c->node;
    char reason[512];
    Meridian__Rpc__Handshake *hs =
        meridian__rpc__handshake__unpack(NULL, env->payload_len, env->payload);
    if (!hs) {
        conn_close(c, MERR_CORRUPT, "undecodable handshake");
        return;
    }
    if (hs->protocol_version != RPC_PROTOCOL_VERSION) {
        snprintf(reason, sizeof(reason), "incompatible protocol version %u (this node speaks %u)",
                 hs->protocol_version, RPC_PROTOCOL_VERSION);
        conn_refuse(c, reason);
    } else if (hs->cluster_id[0] && n->cluster_id[0] && strcmp(hs->cluster_id, n->cluster_id)) {
        snprintf(reason, sizeof(reason),
                 "cluster id mismatch: peer is in '%.100s', this node in '%.100s'", hs->cluster_id,
                 n->cluster_id);
        conn_refuse(c, reason);
    } else if (c->tls && hs->node_id != 0 && !c->peer_is_node) {
        snprintf(reason, sizeof(reason),
                 "a client certificate (user '%.64s') cannot act as node %llu: nodes need a "
                 "node certificate",
                 c->peer_user, (unsigned long long)hs->node_id);
        conn_refuse(c, reason);
    } else {
        c->remote_id = hs->node_id;
        if (!c->tls) c->peer_is_node = hs->node_id != 0; /* claimed, not verified */
        rpc_locality_region(hs->locality, c->remote_region, sizeof(c->remote_region));
        c->pm = node_peer_metrics(n, c->remote_id);
        c->state = CONN_READY;
        c->dec.max_frame = n->cfg.max_frame;
        n->m.conns_up++;
        send_handshake_reply(c, 1, NULL);
        MLOG_D(MOD, "inbound handshake ok", "node=%llu peer=%llu remote=%s region=%s",
               (unsigned long long)n->cfg.node_id, (unsigned long long)c->remote_id, c->remote_addr,
               c->remote_region);
    }
    meridian__rpc__handshake__free_unpacked(hs, NULL);
}

/* Dialer side: the acceptor's verdict, and our own checks of who answered. */
static void on_handshake_reply(rpc_conn *c, const rpc_env *env)
{
    rpc_node *n = c->node;
    char reason[700];
    Meridian__Rpc__HandshakeReply *r =
        meridian__rpc__handshake_reply__unpack(NULL, env->payload_len, env->payload);
    if (!r) {
        conn_close(c, MERR_CORRUPT, "undecodable handshake reply");
        return;
    }
    reason[0] = 0;
    if (!r->accepted)
        snprintf(reason, sizeof(reason), "peer refused the handshake: %.500s", r->reason);
    else if (c->plain_peer)
        snprintf(reason, sizeof(reason),
                 "%s answered without TLS (is it running --insecure?); this endpoint requires TLS",
                 c->remote_addr);
    else if (r->cluster_id[0] && n->cluster_id[0] && strcmp(r->cluster_id, n->cluster_id))
        snprintf(reason, sizeof(reason),
                 "cluster id mismatch: peer is in '%.100s', this node in '%.100s'", r->cluster_id,
                 n->cluster_id);
    /* Gateways (rpc_node_add_gateway) and clients (node id 0) reach nodes by
     * address and know no node ids: their peer ids are local handles. */
    else if (c->peer && !c->peer->any_id && n->cfg.node_id != 0 && r->node_id != c->peer->id)
        snprintf(reason, sizeof(reason), "%s is node %llu, expected node %llu", c->remote_addr,
                 (unsigned long long)r->node_id, (unsigned long long)c->peer->id);
    if (reason[0]) {
        n->m.handshakes_refused++;
        MLOG_W(MOD, "handshake failed", "node=%llu remote=%s reason=\"%s\"",
               (unsigned long long)n->cfg.node_id, c->remote_addr, reason);
        meridian__rpc__handshake_reply__free_unpacked(r, NULL);
        conn_close(c, MERR_PROTOCOL, reason);
        return;
    }
    rpc_locality_region(r->locality, c->remote_region, sizeof(c->remote_region));
    meridian__rpc__handshake_reply__free_unpacked(r, NULL);
    c->state = CONN_READY;
    c->dec.max_frame = n->cfg.max_frame;
    n->m.conns_up++;
    rpc_peer *p = c->peer;
    if (p) {
        p->state = PEER_READY;
        rpc_backoff_reset(&p->backoff);
        merr_clear(&p->last_err);
        node_notify_peer(n, p->id, 1);
    }
    if (c->state == CONN_READY) conn_mark_dirty(c); /* frames queued while dialing */
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rpc_conn *c = h->data;
    uint8_t *p;
    size_t cap;
    (void)suggested;
    if (c->tls) {
        /* Ciphertext is consumed by the read callback that follows at once,
         * so one buffer serves every connection of the loop. */
        *buf = uv_buf_init((char *)c->node->rxbuf, RPC_RXBUF);
        return;
    }
    if (rpc_decoder_space(&c->dec, 64 * 1024, &p, &cap)) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to on_read */
        return;
    }
    *buf = uv_buf_init((char *)p, (unsigned)(cap > UINT32_MAX ? UINT32_MAX : cap));
}

/* Decodes and dispatches every whole frame buffered. */
void conn_on_bytes(rpc_conn *c)
{
    rpc_node *n = c->node;
    while (c->state != CONN_CLOSING) {
        const uint8_t *p;
        size_t len;
        merr e = {0};
        int r = rpc_decoder_next(&c->dec, &p, &len, &e);
        if (r == 0) return;
        rpc_env env;
        if (r > 0) r = rpc_env_decode(p, len, &c->arena, &env, &e);
        if (r < 0) {
            n->m.frame_errors++;
            conn_close(c, r, merr_msg(&e));
            rpc_arena_reset(&c->arena);
            return;
        }
        if (c->pm) {
            c->pm->msgs_in++;
            c->pm->bytes_in += len + RPC_FRAME_HEADER;
        }
        if (env.kind == RPC_KIND_HANDSHAKE && !c->outbound && c->state == CONN_HANDSHAKE &&
            !c->close_after_write) {
            on_handshake(c, &env);
        } else if (env.kind == RPC_KIND_HANDSHAKE_REPLY && c->outbound &&
                   c->state == CONN_HANDSHAKE) {
            on_handshake_reply(c, &env);
        } else if (c->state != CONN_READY || env.kind == RPC_KIND_HANDSHAKE ||
                   env.kind == RPC_KIND_HANDSHAKE_REPLY) {
            char why[96];
            snprintf(why, sizeof(why), "unexpected %s frame before/after the handshake",
                     rpc_kind_name(env.kind));
            n->m.frame_errors++;
            conn_close(c, MERR_PROTOCOL, why);
        } else if (rpc_faults_active(&n->faults) &&
                   rpc_faults_in_blocked(&n->faults, c->remote_id)) {
            n->m.fault_in_blocked++;
        } else {
            call_on_frame(c, &env);
        }
        rpc_arena_reset(&c->arena);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    rpc_conn *c = s->data;
    if (c->state == CONN_CLOSING) return;
    if (nread < 0) {
        if (c->tls && !c->tls_done && !c->plain_peer && nread == UV_EOF) {
            conn_close(c, MERR_UNAVAILABLE, "closed by the remote side during the TLS handshake");
            return;
        }
        merr e = {0};
        if (nread == UV_EOF && rpc_decoder_finish(&c->dec, &e)) {
            c->node->m.frame_errors++;
            conn_close(c, MERR_CORRUPT, merr_msg(&e));
        } else {
            conn_close(c, MERR_UNAVAILABLE, nread == UV_EOF ? eof_reason : uv_strerror((int)nread));
        }
        return;
    }
    if (nread == 0) return;
    if (c->tls) {
        conn_tls_on_read(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    rpc_decoder_commit(&c->dec, (size_t)nread);
    if (c->close_after_write) return; /* refused: the peer's bytes no longer matter */
    if (!c->seen_bytes && !c->outbound) {
        c->seen_bytes = 1;
        /* 0x16 0x03 opens a TLS ClientHello; as a frame length it would be
         * over 350 MB, so no plaintext peer within max_frame starts so. */
        if (nread >= 2 && (uint8_t)buf->base[0] == 0x16 && (uint8_t)buf->base[1] == 0x03 &&
            c->node->cfg.max_frame < 0x16030000u) {
            c->plain_peer = 1;
            conn_refuse(c, "this node runs insecure (--insecure) and the peer spoke TLS; start "
                           "both sides with certificates or both with --insecure");
            return;
        }
    }
    conn_on_bytes(c);
}

/* ---- accepting and dialing ---- */

static void fill_remote_addr(rpc_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            snprintf(c->remote_addr, sizeof(c->remote_addr), "[%s]:%d", ip, port);
            return;
        }
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(c->remote_addr, sizeof(c->remote_addr), "%s:%d", ip, port);
}

void conn_on_accept(uv_stream_t *server, int status)
{
    rpc_node *n = server->data;
    if (status < 0) {
        MLOG_W(MOD, "accept failed", "err=%s", uv_strerror(status));
        return;
    }
    rpc_conn *c = conn_new(n, 0);
    if (!c) {
        MLOG_E(MOD, "accept: out of memory", "node=%llu", (unsigned long long)n->cfg.node_id);
        return;
    }
    c->state = CONN_HANDSHAKE;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc) {
        conn_close(c, MERR_IO, uv_strerror(rc));
        return;
    }
    n->m.conns_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    fill_remote_addr(c);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        conn_close(c, MERR_IO, uv_strerror(rc));
        return;
    }
    if (n->cfg.max_inbound && n->m.inbound_open >= n->cfg.max_inbound) {
        /* Said in plaintext before any TLS: a TLS dialer reads and reports
         * a plaintext refusal (conn_tls.c), and we learn nothing from it. */
        char why[160];
        n->m.conns_over_limit++;
        c->plain_peer = 1;
        snprintf(why, sizeof(why),
                 "too many connections: this node takes %u at once (--max-connections); "
                 "retry later or use another node",
                 n->cfg.max_inbound);
        conn_refuse(c, why);
        return;
    }
    c->inbound_counted = 1;
    n->m.inbound_open++;
}

static void on_connect(uv_connect_t *req, int status)
{
    rpc_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        char why[256];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(status));
        conn_close(c, MERR_UNAVAILABLE, why);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = CONN_HANDSHAKE;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        conn_close(c, MERR_IO, uv_strerror(rc));
        return;
    }
    if (c->tls) {
        conn_tls_start(c); /* the Handshake queued at dial time waits for TLS */
        return;
    }
    conn_mark_dirty(c); /* the Handshake queued at dial time */
}

static rpc_conn *conn_dial(rpc_peer *p)
{
    rpc_node *n = p->node;
    struct sockaddr_storage ss;
    if (rpc_addr_parse(p->addr, &ss)) return NULL;
    rpc_conn *c = conn_new(n, 1);
    if (!c) return NULL;
    c->peer = p;
    c->remote_id = p->id;
    c->pm = node_peer_metrics(n, p->id);
    snprintf(c->remote_addr, sizeof(c->remote_addr), "%s", p->addr);
    if (c->tls && tls_sess_expect_addr(c->tls, p->addr)) {
        conn_close(c, MERR_INVALID, "TLS: cannot check the peer's address");
        return NULL;
    }
    c->state = CONN_CONNECTING;
    p->conn = c;
    p->state = PEER_CONNECTING;
    n->m.conns_dialed++;
    if (send_handshake(c)) {
        conn_close(c, MERR_INTERNAL, "cannot encode handshake");
        return NULL;
    }
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect);
    if (rc) {
        char why[256];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(rc));
        conn_close(c, MERR_UNAVAILABLE, why);
        return NULL;
    }
    return c;
}

static void on_backoff(uv_timer_t *t)
{
    rpc_peer *p = t->data;
    if (p->node->stopping || p->state != PEER_BACKOFF) return;
    p->state = PEER_IDLE;
    p->node->m.reconnects++;
    conn_dial(p); /* redial now so peer-up is noticed without traffic */
}

void conn_sweep_timer_cb(uv_timer_t *t)
{
    rpc_node *n = t->data;
    int64_t now = mtime_mono_ns();
    for (rpc_conn *c = n->conns; c; c = c->next) {
        if (c->state != CONN_CONNECTING && c->state != CONN_HANDSHAKE) continue;
        if (now - c->created_ns < n->cfg.handshake_timeout_ns) continue;
        n->m.handshake_timeouts++;
        conn_close(c, MERR_TIMEOUT, "no completed handshake within the handshake timeout");
    }
}

rpc_conn *conn_for_peer(rpc_node *n, uint64_t id, int *rc)
{
    rpc_peer *p = node_find_peer(n, id);
    if (!p) {
        *rc = MERR_NOTFOUND;
        return NULL;
    }
    switch (p->state) {
    case PEER_READY:
    case PEER_CONNECTING: return p->conn;
    case PEER_BACKOFF: *rc = MERR_UNAVAILABLE; return NULL;
    default: break;
    }
    rpc_conn *c = conn_dial(p);
    if (!c) *rc = MERR_UNAVAILABLE;
    return c;
}
