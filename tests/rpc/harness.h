/* Helpers for rpc integration tests: start nodes, run things on a node's
 * loop thread and wait for the result, wait on conditions with a generous
 * timeout that only guards against hangs, an echo handler and a recorder of
 * one-way messages. */
#ifndef MERIDIAN_TESTS_RPC_HARNESS_H
#define MERIDIAN_TESTS_RPC_HARNESS_H

#include "rpc/rpc.h"

#include <pthread.h>
#include <stdint.h>

#define TH_TIMEOUT_S 30

/* A counter threads can wait on. */
typedef struct th_cond {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t n;
} th_cond;

void th_cond_init(th_cond *c);
void th_cond_add(th_cond *c, int64_t d);
int64_t th_cond_get(th_cond *c);
/* Waits until n >= target; returns 1, or 0 after TH_TIMEOUT_S. */
int th_cond_wait(th_cond *c, int64_t target);

typedef struct th_opts {
    uint64_t id;
    const char *cluster, *listen, *locality, *faults;
    size_t max_frame, send_queue_max;
    uint64_t seed;
    int64_t handshake_timeout_ns;
    int no_fault_admin;
} th_opts;

rpc_node *th_start(const th_opts *o);
/* "127.0.0.1:PORT" (or "[::1]:PORT") of a started node. */
void th_addr(rpc_node *n, int v6, char *buf, size_t cap);

int th_add_peer(rpc_node *n, uint64_t id, const char *addr);
int th_handle(rpc_node *n, const char *method, rpc_handler_fn fn, void *arg);
int th_oneway(rpc_node *n, uint64_t to, const char *method, const void *p, size_t len);
int th_faults(rpc_node *n, const char *spec, int clear, uint64_t seed);
/* Copies the node's counters (peers dropped). */
void th_metrics(rpc_node *n, rpc_metrics *out);
/* The per-peer counters of `peer` as seen by n (zeros if none). */
void th_peer_metrics(rpc_node *n, uint64_t peer, rpc_peer_metrics *out);

typedef struct th_result {
    int code;
    char msg[512];
    uint8_t payload[256];
    size_t len;
    int64_t rtt_ns;
} th_result;

/* A call run on n's loop; waits for the reply. Returns the synchronous rc of
 * rpc_node_call (0 means res holds the reply). */
int th_call(rpc_node *n, uint64_t to, const char *method, const void *p, size_t len,
            int64_t deadline_us, th_result *res);

/* Handler "echo": replies with the request payload. */
void th_echo(void *arg, rpc_req *req);

/* Records one-way messages whose payload is a uint32 sequence number. */
typedef struct th_recorder {
    th_cond count;
    pthread_mutex_t mu;
    uint32_t *seq;
    size_t n, cap;
    uint64_t last_from;
} th_recorder;

void th_recorder_init(th_recorder *r);
void th_recorder_free(th_recorder *r);
void th_record(void *arg, rpc_req *req);

int64_t th_now_us(void);

#endif
