/* rpc internals shared by node.c (loop, thread, registries, metrics),
 * conn.c (sockets, handshake, framing, faults, peers) and call.c (calls,
 * server requests, streams, deadlines). Not for use outside rpc/. */
#ifndef MERIDIAN_RPC_INTERNAL_H
#define MERIDIAN_RPC_INTERNAL_H

#include "rpc/frame.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"

#include <pthread.h>
#include <uv.h>

#define MOD "rpc"

/* Min-heap of timed items (call deadlines, delayed frames). */
typedef struct rpc_heap_item {
    int64_t at;   /* monotonic ns */
    size_t idx;   /* position, SIZE_MAX when not in the heap */
    uint64_t seq; /* ties break by insertion order (keeps delayed frames FIFO) */
} rpc_heap_item;

typedef struct rpc_heap {
    rpc_heap_item **a;
    size_t n, cap;
    uint64_t seq;
} rpc_heap;

int rpc_heap_push(rpc_heap *h, rpc_heap_item *it);
void rpc_heap_remove(rpc_heap *h, rpc_heap_item *it);
rpc_heap_item *rpc_heap_top(rpc_heap *h);
void rpc_heap_free(rpc_heap *h);

typedef struct rpc_conn rpc_conn;
typedef struct rpc_peer rpc_peer;
typedef struct rpc_call rpc_call;
typedef struct rpc_sreq rpc_sreq;

/* Connection states:
 *   CONNECTING --tcp connected--> HANDSHAKE --reply accepted--> READY
 *   (acceptor)          HANDSHAKE --valid Handshake--> READY
 *   any --error/EOF/refusal/stop--> CLOSING --uv close cb--> freed
 * With TLS, HANDSHAKE has two halves: the TLS handshake (tls_done = 0: only
 * TLS records move, no frame is encrypted or decoded), then the rpc
 * Handshake/HandshakeReply inside the TLS session. */
enum conn_state { CONN_CONNECTING, CONN_HANDSHAKE, CONN_READY, CONN_CLOSING };

struct rpc_conn {
    rpc_node *node;
    uint64_t cid;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    int state;
    int outbound;
    rpc_peer *peer; /* outbound only; NULL once the peer moved on */
    uint64_t remote_id;
    char remote_region[RPC_REGION_MAX];
    char remote_addr[128];
    rpc_decoder dec;
    rpc_arena arena;
    mbuf hs;   /* handshake frames: written before anything else */
    mbuf out;  /* application frames waiting for the next flush */
    mbuf wbuf; /* the bytes of the write in flight */
    int writing, dirty, close_after_write;
    size_t wbuf_plain; /* application bytes in the write in flight (queue gauges) */
    int close_code;    /* with close_after_write: why, once the write is out */
    char close_reason[300];
    tls_sess *tls;  /* NULL on a plaintext connection */
    int tls_done;   /* TLS handshake finished, peer certificate verified */
    int tls_failed; /* the session is dead: only its alert may still go out */
    int plain_peer; /* TLS expected, plaintext met (or the reverse): refusal only */
    int seen_bytes; /* the first bytes from the peer have been looked at */
    /* Who the peer is: from its verified certificate on TLS connections,
     * from its claimed node id on insecure ones (peer_verified = 0). */
    char peer_user[TLS_USER_MAX];
    int peer_is_node, peer_verified;
    int peer_anon;       /* TLS without a client certificate: session.* only */
    int inbound_counted; /* counted in m.inbound_open (max_inbound) */
    int stream_waiters;  /* some sreq has queue_wait set */
    rpc_conn *next_dirty;
    rpc_conn *prev, *next;
    rpc_call *calls;         /* outgoing calls answered on this connection */
    rpc_sreq *sreqs;         /* incoming requests not yet answered */
    int64_t last_release_ns; /* delayed frames keep TCP order unless reordered */
    int64_t created_ns;      /* for the handshake timeout */
    rpc_peer_metrics *pm;
};

enum peer_state { PEER_IDLE, PEER_CONNECTING, PEER_READY, PEER_BACKOFF };

struct rpc_peer {
    rpc_node *node;
    uint64_t id;
    /* A gateway: `id` is only the caller's local handle for an address, so
     * the remote's node id is not checked (clients, `meridian init`). */
    int any_id;
    char addr[128];
    int state;
    rpc_conn *conn;
    rpc_backoff backoff;
    uv_timer_t timer;
    merr last_err;
    rpc_peer *next;
};

struct rpc_call {
    rpc_heap_item hi; /* deadline */
    uint64_t id;
    rpc_conn *conn;
    rpc_call *cprev, *cnext; /* conn->calls */
    rpc_call *hnext;         /* hash chain */
    rpc_reply_fn cb;
    rpc_item_fn item;
    void *arg;
    int stream;
    uint32_t window;
    uint32_t ungranted; /* consumed items whose credit is not yet sent back */
};

struct rpc_sreq {
    rpc_req pub;
    rpc_conn *conn; /* NULL once the connection is gone */
    uint64_t id;
    rpc_sreq *prev, *next;
    uint32_t credit;
    int queue_wait; /* refused for a full connection queue: on_writable on drain */
    rpc_req_fn on_writable;
    void *w_arg;
    rpc_req_fn on_cancel;
    void *c_arg;
    rpc_sreq *free_next;
};

typedef struct rpc_post_item {
    rpc_post_fn fn;
    void *arg;
    struct rpc_post_item *next;
} rpc_post_item;

typedef struct rpc_handler {
    char *method;
    rpc_handler_fn fn;
    void *arg;
} rpc_handler;

#define RPC_CALL_BUCKETS 4096

struct rpc_node {
    rpc_config cfg;
    char cluster_id[128], locality[128], listen[128], region[RPC_REGION_MAX];
    uv_loop_t loop;
    uv_async_t async;
    uv_check_t check;     /* flushes writes queued by I/O callbacks (after poll) */
    uv_prepare_t prepare; /* flushes writes queued by timers and write callbacks */
    uv_timer_t deadline_timer, delay_timer, sweep_timer;
    uv_tcp_t listener;
    int listening, port;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    rpc_post_item *post_head, *post_tail;
    int post_closed;
    int stopping;
    rpc_transport transport;
    rpc_handler *handlers;
    size_t nhandlers;
    rpc_peer *peers;
    rpc_conn *conns;
    rpc_conn *dirty;
    rpc_call *buckets[RPC_CALL_BUCKETS];
    uint64_t next_call_id, next_cid;
    rpc_heap deadlines, delayed;
    rpc_faults faults;
    rpc_rng jitter_rng;
    rpc_metrics m;
    rpc_peer_metrics **pms; /* stable pointers; m.peers is a copy made on read */
    size_t npms;
    rpc_peer_fn on_peer;
    void *on_peer_arg;
    rpc_call *free_calls;
    rpc_sreq *free_sreqs;
    tls_ctx *tls;       /* NULL = insecure; new connections use the current one */
    char *tls_files[3]; /* ca, cert, key: reread by rpc_node_reload_tls */
    uint8_t *rxbuf;     /* TLS: ciphertext lands here, decrypted into the decoder */
};

#define RPC_RXBUF 65536

/* node.c */
const rpc_handler *node_find_handler(rpc_node *n, const char *method);
rpc_peer_metrics *node_peer_metrics(rpc_node *n, uint64_t id);
rpc_peer *node_find_peer(rpc_node *n, uint64_t id);
void node_notify_peer(rpc_node *n, uint64_t id, int up);
double node_jitter(rpc_node *n);
/* Parses "1.2.3.4:port" or "[v6]:port" (numeric addresses only). */
int rpc_addr_parse(const char *s, struct sockaddr_storage *ss);
/* Updates the queue depth gauges after buffered bytes changed by delta. */
void node_queue_add(rpc_node *n, rpc_conn *c, int64_t delta);

/* conn.c */
void conn_on_accept(uv_stream_t *server, int status);
/* The ready-or-connecting connection to peer `id` (dialing lazily), or NULL
 * with a code in *rc (MERR_NOTFOUND, MERR_UNAVAILABLE during backoff). */
rpc_conn *conn_for_peer(rpc_node *n, uint64_t id, int *rc);
/* Queues one application frame (faults applied). 0, MERR_BUSY, MERR_TOOBIG. */
int conn_send(rpc_conn *c, const rpc_env *env);
void conn_close(rpc_conn *c, int code, const char *reason);
void conn_flush_dirty(rpc_node *n);
void conn_delay_timer_cb(uv_timer_t *t);
/* Closes connections that did not finish their handshake in time. */
void conn_sweep_timer_cb(uv_timer_t *t);
rpc_conn *conn_by_cid(rpc_node *n, uint64_t cid);
void conn_free_delayed(rpc_node *n);
void conn_mark_dirty(rpc_conn *c);
/* Decodes and dispatches every whole frame in the decoder. */
void conn_on_bytes(rpc_conn *c);
/* Refuses the peer's rpc Handshake with a reason, then closes. */
void conn_refuse(rpc_conn *c, const char *reason);
/* Closes once the bytes queued for the socket are out (a refusal or alert
 * the peer should read), with code and reason for the calls and the log. */
void conn_close_after_flush(rpc_conn *c, int code, const char *reason);

/* conn_tls.c */
/* Dialer: TCP is up, send the ClientHello. */
void conn_tls_start(rpc_conn *c);
/* Ciphertext (or the first bytes of a plaintext peer) from the socket. */
void conn_tls_on_read(rpc_conn *c, const uint8_t *p, size_t n);
/* Encrypts what may be sent now (rpc handshake frames, then application
 * frames once READY) and moves the ciphertext to c->wbuf. */
int conn_tls_fill(rpc_conn *c);

/* call.c */
void call_on_frame(rpc_conn *c, const rpc_env *env);
/* The connection is gone: fail its calls, cancel its server requests. */
void call_conn_gone(rpc_conn *c, int code, const char *msg);
/* The connection's send queue drained: streams waiting on it go on. */
void call_conn_drained(rpc_conn *c);
void call_deadline_timer_cb(uv_timer_t *t);
void call_free_all(rpc_node *n);
extern const rpc_transport_ops rpc_uv_transport_ops;

static inline int64_t now_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
