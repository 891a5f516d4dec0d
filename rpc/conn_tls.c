/* TLS on rpc connections: the glue between a connection's socket and its
 * tls_sess (rpc/tls.h). Runs on the loop thread only.
 *
 * Reading: ciphertext from the socket goes into the session; while the TLS
 * handshake runs nothing else happens; once it completes (and the peer's
 * certificate verified) plaintext is decrypted straight into the frame
 * decoder and dispatched by conn_on_bytes(), as on a plaintext connection.
 * Writing: conn_flush() asks conn_tls_fill() to encrypt the rpc handshake
 * frames and, once READY, the batched application frames, and writes the
 * resulting ciphertext with one uv_write: the batching of conn.c is kept.
 *
 * Mismatched peers get a clear refusal instead of garbage: a TLS acceptor
 * whose peer starts with anything but a TLS record answers with a plaintext
 * HandshakeReply refusal (so an insecure client learns why), and a TLS
 * dialer whose peer answers in plaintext decodes that answer as frames,
 * accepting nothing but a refusal. */
#include "rpc/internal.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

#define TLS_RECORD_HANDSHAKE 0x16

static void tls_fail(rpc_conn *c, const char *reason)
{
    rpc_node *n = c->node;
    n->m.handshakes_refused++;
    MLOG_W(MOD, "TLS handshake failed", "node=%llu remote=%s %s=\"%s\"",
           (unsigned long long)n->cfg.node_id, c->remote_addr, c->outbound ? "dialed" : "accepted",
           reason);
    c->tls_failed = 1;
    mbuf_reset(&c->hs); /* our rpc Handshake never leaves unencrypted or unverified */
    /* Let our alert reach the peer so it can say why, then close. */
    conn_close_after_flush(c, MERR_PROTOCOL, reason);
}

void conn_tls_start(rpc_conn *c)
{
    merr e = {0};
    if (tls_sess_handshake(c->tls, &e) < 0) {
        tls_fail(c, merr_msg(&e));
        return;
    }
    conn_mark_dirty(c); /* the ClientHello */
}

/* The TLS handshake completed: who is the peer, and may it be here? */
static int tls_verified(rpc_conn *c)
{
    char why[512];
    int prc = tls_sess_peer(c->tls, c->peer_user, sizeof(c->peer_user), &c->peer_is_node);
    if (prc == MERR_NOTFOUND && !c->outbound) {
        /* A client without a certificate: anonymous until a session
         * authenticates it; call.c lets it reach session.* only. */
        c->peer_anon = 1;
    } else if (prc) {
        tls_fail(c, "TLS: the peer certificate has no common name");
        return -1;
    } else {
        c->peer_verified = 1;
    }
    if (c->outbound && !c->peer_is_node) {
        /* We dial nodes only; a client certificate must not pose as one. */
        snprintf(why, sizeof(why),
                 "TLS: %s presented a client certificate (user '%s'), not a node certificate",
                 c->remote_addr, c->peer_user);
        tls_fail(c, why);
        return -1;
    }
    c->tls_done = 1;
    MLOG_D(MOD, "TLS established", "node=%llu remote=%s peer_user=%s",
           (unsigned long long)c->node->cfg.node_id, c->remote_addr, c->peer_user);
    conn_mark_dirty(c); /* the rpc Handshake queued at dial time */
    return 0;
}

/* The peer does not speak TLS. An acceptor refuses in plaintext; a dialer
 * reads the peer's plaintext answer (its refusal names the reason). */
static void plain_peer(rpc_conn *c, const uint8_t *p, size_t n)
{
    c->plain_peer = 1;
    if (!c->outbound) {
        conn_refuse(c, "this node requires TLS and the peer spoke plaintext; give the peer "
                       "certificates (--certs-dir) instead of --insecure");
        return;
    }
    mbuf_reset(&c->hs); /* our Handshake is never sent in plaintext */
    if (rpc_decoder_feed(&c->dec, p, n)) {
        conn_close(c, MERR_NOMEM, "out of memory");
        return;
    }
    conn_on_bytes(c);
}

void conn_tls_on_read(rpc_conn *c, const uint8_t *p, size_t n)
{
    merr e = {0};
    if (c->close_after_write || c->tls_failed) return;
    if (!c->seen_bytes) {
        c->seen_bytes = 1;
        /* Record types 20..23 open every TLS byte stream; a plaintext frame
         * starts with the high byte of its length (0..4 for <= 64 MiB). */
        if ((!c->outbound && p[0] != TLS_RECORD_HANDSHAKE) ||
            (c->outbound && (p[0] < 0x14 || p[0] > 0x17))) {
            plain_peer(c, p, n);
            return;
        }
    }
    if (c->plain_peer) {
        if (rpc_decoder_feed(&c->dec, p, n)) {
            conn_close(c, MERR_NOMEM, "out of memory");
            return;
        }
        conn_on_bytes(c);
        return;
    }
    if (tls_sess_feed(c->tls, p, n)) {
        conn_close(c, MERR_NOMEM, "out of memory");
        return;
    }
    if (!c->tls_done) {
        int r = tls_sess_handshake(c->tls, &e);
        if (r < 0) {
            tls_fail(c, merr_msg(&e));
            return;
        }
        if (tls_sess_pending(c->tls)) conn_mark_dirty(c);
        if (r == 0 || tls_verified(c)) return;
    }
    while (c->state != CONN_CLOSING && !c->close_after_write) {
        uint8_t *dst;
        size_t cap;
        if (rpc_decoder_space(&c->dec, 16 * 1024, &dst, &cap)) {
            conn_close(c, MERR_NOMEM, "out of memory");
            return;
        }
        int r = tls_sess_read(c->tls, dst, cap, &e);
        if (r == 0) break;
        if (r == MERR_CLOSED) {
            conn_close(c, MERR_UNAVAILABLE, "closed by the remote side (TLS close)");
            return;
        }
        if (r < 0) {
            /* TLS 1.3: a client learns that its certificate was refused
             * only now, from the alert that answers its first bytes. */
            tls_fail(c, merr_msg(&e));
            return;
        }
        rpc_decoder_commit(&c->dec, (size_t)r);
        conn_on_bytes(c);
    }
    if (c->state != CONN_CLOSING && tls_sess_pending(c->tls)) conn_mark_dirty(c);
}

/* Encrypts in slices, draining the write BIO after each, so the BIO never
 * holds more than a slice: a memory BIO keeps its largest size forever, and
 * a 64 MiB burst must not pin 64 MiB per connection. */
static int encrypt_into_wbuf(rpc_conn *c, const uint8_t *p, size_t n, merr *e)
{
    const size_t slice = 256 * 1024;
    while (n) {
        size_t k = n < slice ? n : slice;
        int rc = tls_sess_write(c->tls, p, k, e);
        if (rc) return rc;
        if (tls_sess_drain(c->tls, &c->wbuf)) return merr_set(e, MERR_NOMEM, "out of memory");
        p += k;
        n -= k;
    }
    return 0;
}

int conn_tls_fill(rpc_conn *c)
{
    merr e = {0};
    size_t plain = 0;
    int rc = 0;
    /* Whatever the session already produced (handshake records, alerts)
     * goes first. */
    if (tls_sess_drain(c->tls, &c->wbuf)) return MERR_NOMEM;
    if (c->tls_done && !c->tls_failed) {
        if (c->hs.len) {
            rc = encrypt_into_wbuf(c, c->hs.data, c->hs.len, &e);
            mbuf_reset(&c->hs);
        }
        if (!rc && c->state == CONN_READY && c->out.len) {
            rc = encrypt_into_wbuf(c, c->out.data, c->out.len, &e);
            plain = c->out.len;
            mbuf_reset(&c->out);
            /* Do not pin a burst's memory (the plaintext path swaps buffers). */
            if (c->out.cap > (1u << 20)) mbuf_free(&c->out);
        }
        if (rc) MLOG_W(MOD, "TLS write failed", "remote=%s err=\"%s\"", c->remote_addr, e.msg);
    }
    c->wbuf_plain = plain;
    return rc;
}
