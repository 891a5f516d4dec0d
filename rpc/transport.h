/* The transport interface the layers above code against (replication, txn,
 * placement, server), so the deterministic simulator can substitute an
 * in-memory network for the libuv one (rpc_node_transport() in rpc.h).
 *
 * Threading: every operation, and every callback, runs on the transport's
 * loop thread; post() is the one entry point other threads may use.
 * Semantics are at-most-once: a message may be lost (peer down, partition),
 * never delivered twice unless a test turns duplication on; a call always
 * ends in exactly one reply callback (a response, an error, MERR_TIMEOUT at
 * its deadline, MERR_CANCELED, or MERR_UNAVAILABLE when the peer is gone). */
#ifndef MERIDIAN_RPC_TRANSPORT_H
#define MERIDIAN_RPC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct rpc_transport rpc_transport;
typedef struct rpc_req rpc_req;

/* An incoming request or one-way message, handed to a handler. The payload
 * is borrowed until the handler returns (copy it to keep it). A REQUEST must
 * be answered exactly once with rpc_reply() (now or later, on the loop
 * thread); a one-way message must not be answered. */
struct rpc_req {
    rpc_transport *t;
    uint64_t from;      /* sender's node id (0: a client) */
    const char *method; /* valid until the handler returns */
    const uint8_t *payload;
    size_t len;
    int64_t deadline_us; /* absolute Unix microseconds from the caller; 0 = none */
    int oneway;
    int stream;   /* the caller opened a stream (rpc_stream_send) */
    int canceled; /* caller canceled or its connection is gone */
    /* Who sent it, for authorization. On a TLS connection from the
     * verified certificate (peer_verified = 1): a node certificate gives
     * peer_is_node = 1 and peer_user "node", a client certificate the user
     * name in its CN. Insecure: nothing is verified; peer_is_node is what
     * the peer claimed (node id != 0) and peer_user is "". */
    const char *peer_user;
    int peer_is_node, peer_verified;
    /* TLS without a client certificate (a password client): only methods
     * "session.*" reach handlers; the rest are refused in rpc. */
    int peer_anon;
    const char *peer_addr; /* the connection's remote address, for logs and backoff */
    void *impl;            /* the implementation's bookkeeping */
};

/* A call ended: code 0 and the reply payload, or a MERR_* code and a message
 * (from the remote handler, or local: timeout, cancel, unavailable). */
typedef void (*rpc_reply_fn)(void *arg, int code, const char *msg, const uint8_t *payload,
                             size_t len);
typedef void (*rpc_handler_fn)(void *arg, rpc_req *req);
/* Peer up (up = 1) after a successful handshake, down (0) when it is lost. */
typedef void (*rpc_peer_fn)(void *arg, uint64_t node_id, int up);
typedef void (*rpc_post_fn)(void *arg);
/* A stream item arrived: return 1 when consumed (credit goes back to the
 * sender automatically) or 0 to hold it (return credit later with
 * stream_grant). The sender never has more than `window` items unacked. */
typedef int (*rpc_item_fn)(void *arg, const uint8_t *payload, size_t len);
typedef void (*rpc_req_fn)(void *arg, rpc_req *req);

typedef struct rpc_transport_ops {
    /* Fire-and-forget message. 0, MERR_BUSY (send queue full),
     * MERR_UNAVAILABLE (peer in backoff), MERR_NOTFOUND (unknown peer). */
    int (*oneway)(rpc_transport *t, uint64_t to, const char *method, const void *payload,
                  size_t len);
    /* Request; cb runs exactly once unless this returns an error. deadline_us
     * is absolute Unix microseconds (0 = none). *call_id (may be NULL) names
     * the call for cancel(). */
    int (*call)(rpc_transport *t, uint64_t to, const char *method, const void *payload, size_t len,
                int64_t deadline_us, rpc_reply_fn cb, void *arg, uint64_t *call_id);
    /* Ends the call with MERR_CANCELED now and tells the server. */
    int (*cancel)(rpc_transport *t, uint64_t call_id);
    /* Registers (or replaces) the handler of a method. */
    int (*handle)(rpc_transport *t, const char *method, rpc_handler_fn fn, void *arg);
    /* Answers req (code 0 = success) and releases it. */
    int (*reply)(rpc_transport *t, rpc_req *req, int code, const char *msg, const void *payload,
                 size_t len);
    /* One subscriber for peer up/down events (replaces the previous one). */
    void (*on_peer)(rpc_transport *t, rpc_peer_fn fn, void *arg);
    /* Thread-safe: runs fn(arg) on the loop thread soon. */
    int (*post)(rpc_transport *t, rpc_post_fn fn, void *arg);

    /* Streams (scans, snapshots). A streamed call: items go to item(), the
     * end (STREAM_END or an error) to end(), exactly once. */
    int (*call_stream)(rpc_transport *t, uint64_t to, const char *method, const void *payload,
                       size_t len, int64_t deadline_us, uint32_t window, rpc_item_fn item,
                       rpc_reply_fn end, void *arg, uint64_t *call_id);
    int (*stream_grant)(rpc_transport *t, uint64_t call_id, uint32_t items);
    /* Server side: one item. 0, MERR_BUSY when the window is used up (wait
     * for on_writable), MERR_CANCELED when the caller is gone. The stream
     * ends with reply(). */
    int (*stream_send)(rpc_transport *t, rpc_req *req, const void *payload, size_t len);
    /* Called when the caller grants more credit. */
    void (*on_writable)(rpc_transport *t, rpc_req *req, rpc_req_fn fn, void *arg);
    /* Called once if the caller cancels or its connection drops; the request
     * must still be released with reply() (which then sends nothing). */
    void (*on_cancel)(rpc_transport *t, rpc_req *req, rpc_req_fn fn, void *arg);
} rpc_transport_ops;

struct rpc_transport {
    const rpc_transport_ops *ops;
    void *impl;
};

static inline int rpc_reply(rpc_req *req, int code, const char *msg, const void *payload,
                            size_t len)
{
    return req->t->ops->reply(req->t, req, code, msg, payload, len);
}

static inline int rpc_stream_send(rpc_req *req, const void *payload, size_t len)
{
    return req->t->ops->stream_send(req->t, req, payload, len);
}

static inline void rpc_stream_on_writable(rpc_req *req, rpc_req_fn fn, void *arg)
{
    req->t->ops->on_writable(req->t, req, fn, arg);
}

static inline void rpc_req_on_cancel(rpc_req *req, rpc_req_fn fn, void *arg)
{
    req->t->ops->on_cancel(req->t, req, fn, arg);
}

#endif
