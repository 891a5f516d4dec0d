/* rpc: the libuv TCP transport of a node (DESIGN.md §1, docs/rpc.md).
 *
 * An rpc_node owns one uv loop on its own thread. It listens (IPv4 or IPv6),
 * dials peers lazily by node id, runs the handshake (protocol version, node
 * id, cluster id, address, locality), and carries framed protobuf Envelopes:
 * requests with deadlines and cancellation, one-way messages, streamed
 * replies with credit-based flow control. Faults (drop, delay, duplicate,
 * reorder, partitions, a region latency matrix) can be injected per node.
 *
 * Threading: rpc_node_start/stop, rpc_node_post and rpc_node_run_sync may be
 * called from any thread (run_sync never from the loop thread itself).
 * Everything else, and every callback, belongs to the loop thread: call it
 * from a handler, a callback, or a function given to post.
 *
 * I/O layering: socket bytes go to conn_on_bytes() which feeds the frame
 * decoder; outgoing frames collect in a per-connection buffer that
 * conn_flush() hands to the socket. With TLS (rpc_config.tls_*), a TLS 1.3
 * session over memory BIOs sits between those two points and the socket
 * (rpc/tls.h, rpc/conn_tls.c, docs/security.md). */
#ifndef MERIDIAN_RPC_RPC_H
#define MERIDIAN_RPC_RPC_H

#include "common/buf.h"
#include "common/err.h"
#include "rpc/fault.h"
#include "rpc/transport.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rpc_node rpc_node;

typedef struct rpc_config {
    uint64_t node_id;        /* 0 for a client */
    const char *cluster_id;  /* "" = not yet initialised (accepts any) */
    const char *listen_addr; /* "127.0.0.1:0", "[::1]:7000"; NULL = do not listen */
    const char *locality;    /* "region=us-east,zone=a" */
    size_t max_frame;        /* default 64 MiB */
    size_t send_queue_max;   /* bytes queued per connection before MERR_BUSY; 64 MiB */
    int64_t backoff_initial_ns, backoff_max_ns; /* reconnect; 50 ms .. 5 s */
    uint32_t stream_window;                     /* default stream credit, items; 16 */
    /* Bytes queued on a connection past which a stream item waits even
     * with credit: rpc_stream_send answers MERR_BUSY and the stream's
     * on_writable runs once the socket drained the queue to half of it.
     * Credit alone is the peer's word; this bounds what a peer that grants
     * much and reads little makes the node buffer (per connection). 4 MiB. */
    size_t stream_queue_max;
    /* A connection (either side) that has not completed its handshake this
     * long after it was opened is closed; 10 s. */
    int64_t handshake_timeout_ns;
    uint64_t fault_seed; /* PRNG seed for fault decisions and jitter */
    const char *faults;  /* initial fault spec (fault.h), NULL = none */
    /* Serve the "rpc.faults" admin method (tests, chaos runs). Off by
     * default: fault injection over the network is not for production. */
    int fault_admin;
    /* Jitter source for reconnect backoff, values in [0, 1); NULL = the
     * seeded PRNG. Tests inject a fixed one. Called on the loop thread. */
    double (*jitter)(void *arg);
    void *jitter_arg;
    /* TLS: the cluster CA and this endpoint's certificate and key (PEM
     * files). All NULL = insecure (plaintext, nothing authenticated). With
     * TLS every connection is mutual TLS 1.3 against the CA, a peer that
     * claims a node id must hold a node certificate, and plaintext peers
     * are refused (docs/security.md). */
    const char *tls_ca, *tls_cert, *tls_key;
    /* Inbound connections open at once; one more is refused with a
     * HandshakeReply that says why, then closed. 0 = no limit. */
    uint32_t max_inbound;
} rpc_config;

void rpc_config_defaults(rpc_config *c);

/* Creates the node, binds its listener (so the port is known on return) and
 * starts the loop thread. */
int rpc_node_start(const rpc_config *cfg, rpc_node **out, merr *e);
/* Stops the loop (pending calls end with MERR_CLOSED), joins the thread and
 * frees the node. Not from the loop thread. */
void rpc_node_stop(rpc_node *n);

/* Thread-safe (not from the loop thread): rereads the CA, certificate and
 * key files given at start. New connections use them; open ones keep
 * theirs. On any error the old ones stay in use. MERR_INVALID on an
 * insecure node. */
int rpc_node_reload_tls(rpc_node *n, merr *e);

uint64_t rpc_node_id(const rpc_node *n);
int rpc_node_port(const rpc_node *n); /* bound port, 0 when not listening */
rpc_transport *rpc_node_transport(rpc_node *n);

/* Thread-safe: queue fn(arg) to run on the loop thread. MERR_CLOSED once
 * the node is stopping (fn will not run). */
int rpc_node_post(rpc_node *n, rpc_post_fn fn, void *arg);
/* Thread-safe (not from the loop thread): post and wait until fn returned. */
int rpc_node_run_sync(rpc_node *n, rpc_post_fn fn, void *arg);

/* ---- loop-thread API ---- */

/* Registers where node `id` listens ("host:port", "[v6]:port"). Replaces a
 * previous address (the next connection uses it). */
int rpc_node_add_peer(rpc_node *n, uint64_t id, const char *addr);
/* Registers an address reached through a local handle without checking the
 * remote's node id: how clients and `meridian init` reach a node they know
 * only by address. Calls to `handle` go there. */
int rpc_node_add_gateway(rpc_node *n, uint64_t handle, const char *addr);
/* The node's libuv loop, for other services that run on the loop thread
 * (admin HTTP, timers of the layers above). */
struct uv_loop_s *rpc_node_loop(rpc_node *n);
/* Gives an uninitialised node (id 0, no cluster) its identity once the
 * cluster is initialised; later handshakes carry it. MERR_INVALID when it
 * would change an identity already set. */
int rpc_node_set_identity(rpc_node *n, uint64_t node_id, const char *cluster_id);
int rpc_node_handle(rpc_node *n, const char *method, rpc_handler_fn fn, void *arg);
/* The name of the i-th method with a handler (registration order), NULL past
 * the last: lets a harness (tests/fuzz/fuzz_service.c) drive every method a
 * node serves without a list of its own. Loop thread. */
const char *rpc_node_method(rpc_node *n, size_t i);
void rpc_node_on_peer(rpc_node *n, rpc_peer_fn fn, void *arg);
int rpc_node_oneway(rpc_node *n, uint64_t to, const char *method, const void *payload, size_t len);
/* Hands every frame queued so far to the sockets now instead of at the end of
 * the loop iteration (loop thread only): for an answer that should not wait
 * for the rest of the callback that produced it. */
void rpc_node_flush(rpc_node *n);
int rpc_node_call(rpc_node *n, uint64_t to, const char *method, const void *payload, size_t len,
                  int64_t deadline_us, rpc_reply_fn cb, void *arg, uint64_t *call_id);
int rpc_node_cancel(rpc_node *n, uint64_t call_id);
/* A request to this node's own handler of `method`, without a socket: the
 * handler runs now (loop thread) on a copy of payload, as if from a caller
 * authenticated as peer_user (a node when peer_is_node); cb runs exactly
 * once when it answers (maybe later: a handler may park the request), or now
 * with MERR_UNSUPPORTED when no handler is registered. Plain requests only:
 * the handler must not stream. 0 or MERR_NOMEM (cb does not run). */
int rpc_node_call_local(rpc_node *n, const char *method, const void *payload, size_t len,
                        int64_t deadline_us, const char *peer_user, int peer_is_node,
                        rpc_reply_fn cb, void *arg);
/* Last handshake/connection error with peer `id` (code 0 when none). */
int rpc_node_peer_error(rpc_node *n, uint64_t id, merr *out);
int rpc_node_peer_is_up(rpc_node *n, uint64_t id);

/* Streamed calls and the server side of streams: see transport.h
 * (rpc_item_fn, rpc_stream_send, rpc_stream_on_writable, rpc_req_on_cancel). */
int rpc_node_call_stream(rpc_node *n, uint64_t to, const char *method, const void *payload,
                         size_t len, int64_t deadline_us, uint32_t window, rpc_item_fn item,
                         rpc_reply_fn end, void *arg, uint64_t *call_id);
int rpc_node_stream_grant(rpc_node *n, uint64_t call_id, uint32_t items);

/* ---- faults ---- */

/* Applies a fault spec on top of the current one (clear=1: replace it). */
int rpc_node_faults(rpc_node *n, const char *spec, int clear, merr *e);
void rpc_node_faults_seed(rpc_node *n, uint64_t seed);
/* Admin method served when cfg.fault_admin is set: payload = FaultSpec
 * (proto/rpc.proto). Without it the method is unknown (MERR_UNSUPPORTED). */
#define RPC_METHOD_FAULTS "rpc.faults"
/* The one client certificate user that may call the node's internal methods
 * (everything but session.*): the operator tools' identity (`meridian debug
 * ...`, `node status`, `init` use client.root.crt), as SQL's superuser. */
#define RPC_ADMIN_USER "root"
/* Builds a FaultSpec payload for that method (caller frees *out). */
int rpc_fault_msg_encode(const char *spec, int clear, uint64_t seed, uint8_t **out, size_t *len);

/* ---- metrics ---- */

typedef struct rpc_peer_metrics {
    uint64_t node_id; /* 0 aggregates clients */
    uint64_t msgs_out, bytes_out, msgs_in, bytes_in;
    uint64_t queue_bytes; /* currently buffered for sending */
} rpc_peer_metrics;

typedef struct rpc_metrics {
    uint64_t conns_dialed, conns_accepted, conns_closed, conns_up;
    uint64_t handshakes_refused, handshake_timeouts, frame_errors, reconnects;
    uint64_t calls_started, calls_ok, calls_failed, calls_timed_out, calls_canceled;
    uint64_t busy_rejections, unknown_methods;
    uint64_t fault_dropped, fault_partitioned, fault_duplicated, fault_delayed, fault_reordered,
        fault_in_blocked;
    uint64_t stream_items_out, stream_blocked;
    uint64_t stream_queue_waits;           /* stream sends deferred by a full connection queue */
    uint64_t queue_bytes, queue_bytes_max; /* all connections now / ever */
    uint64_t anon_refused;                 /* calls of certificate-less clients outside session.* */
    uint64_t internal_refused;             /* calls of SQL users' certificates outside session.* */
    uint64_t conns_over_limit, inbound_open; /* max_inbound refusals; inbound now */
    rpc_peer_metrics *peers;                 /* owned by the node; loop thread */
    size_t npeers;
} rpc_metrics;

/* The node's counters (peers points into the node: read on the loop thread). */
const rpc_metrics *rpc_node_metrics(rpc_node *n);
/* Appends Prometheus text exposition of the metrics to out. */
int rpc_metrics_render(rpc_node *n, mbuf *out);

#endif
