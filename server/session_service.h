/* The server side of the client session protocol (proto/session.proto,
 * docs/client.md): rpc methods "session.*" on an rpc_node, each client
 * session bound to an executor through the small table below.
 *
 * Threading. Handlers run on the rpc loop thread and only decode, enqueue and
 * reply. Each session owns one worker thread that runs its requests in
 * arrival order, because one executor call (a single sqlite3_step over a
 * recursive CTE) can take unbounded time and must never stall the loop. Rows
 * go back in bounded batches: the worker hands a batch to the loop
 * (rpc_node_post) and waits until the stream accepted it, so with a stream
 * window of W batches a slow reader holds the server to W + 1 batches in
 * memory. Cancel is served on the loop at once: it calls the executor's
 * cancel (thread-safe, like sqlite3_interrupt) and marks earlier executions
 * canceled so one queued behind does not run. */
#ifndef MERIDIAN_SERVER_SESSION_SERVICE_H
#define MERIDIAN_SERVER_SESSION_SERVICE_H

#include "common/buf.h"
#include "common/err.h"
#include "rpc/rpc.h"

#include <stddef.h>
#include <stdint.h>

#define SESSION_PROTOCOL_VERSION 1

/* Result codes of executors: SQLite's primary codes, so the wire and the C
 * API speak one language. */
enum {
    SEXEC_OK = 0,
    SEXEC_ERROR = 1,
    SEXEC_INTERNAL = 2,
    SEXEC_ABORT = 4,
    SEXEC_BUSY = 5,
    SEXEC_NOMEM = 7,
    SEXEC_READONLY = 8,
    SEXEC_INTERRUPT = 9,
    SEXEC_TOOBIG = 18,
    SEXEC_AUTH = 23, /* authentication failed, permission denied (SQLITE_AUTH) */
    SEXEC_MISUSE = 21,
    SEXEC_RANGE = 25,
    SEXEC_ROW = 100,
    SEXEC_DONE = 101,
};

enum { SEXEC_TXN_IDLE = 0, SEXEC_TXN_OPEN = 1, SEXEC_TXN_FAILED = 2 };

typedef enum sexec_type {
    SEXEC_NULL = 0,
    SEXEC_INT = 1,
    SEXEC_FLOAT = 2,
    SEXEC_TEXT = 3,
    SEXEC_BLOB = 4,
} sexec_type;

/* A value; text/blob point at memory owned by whoever filled it in, valid
 * until the next call on the same statement. */
typedef struct sexec_value {
    sexec_type type;
    int64_t i;
    double d;
    const void *p;
    size_t len;
} sexec_value;

typedef struct sexec_error {
    int code; /* SEXEC_* */
    char msg[512];
    int offset;    /* byte offset in the statement, -1 = none */
    int retryable; /* retrying the transaction may succeed */
} sexec_error;

/* Whether a statement that stopped now stopped for its deadline (real-time
 * µs, 0 = none): past it, or within a few ms of it. The rpc layer, the KV
 * and the VM hook each hold a copy of the deadline on their own clocks and
 * timers, and the first to fire cancels the rest; without the slack a
 * timeout that fired a hair early was reported as "interrupted". */
int sexec_past_deadline(int64_t deadline_us);

typedef struct session_settings {
    int read_only;
    uint64_t max_staleness_ms;
    char application_name[64];
    char default_format[16];
} session_settings;

/* An executor: where a session's SQL runs. The bootstrap one is SQLite
 * (session_exec_sqlite.h); the distributed SQL layer provides the real one.
 * open runs on the rpc loop thread (the session must exist before the open
 * reply names it), so it must be quick: no network round trips; connect
 * lazily at the first prepare. Every other call except cancel happens on the
 * session's worker thread, one at a time; cancel may come from any thread
 * while another call runs. Functions
 * returning int return SEXEC_OK / SEXEC_ROW / SEXEC_DONE or an error code with
 * *err filled in. */
typedef struct session_executor {
    const char *name;
    void *arg; /* passed to open */
    int (*open)(void *arg, const char *user, const session_settings *s, void **ctx,
                sexec_error *err);
    /* Compiles the first statement of sql[0..len); *tail = bytes consumed;
     * *stmt = NULL when there was only whitespace or comments. */
    int (*prepare)(void *ctx, const char *sql, size_t len, void **stmt, size_t *tail,
                   sexec_error *err);
    int (*param_count)(void *stmt);
    int (*stmt_readonly)(void *stmt);
    int (*bind)(void *stmt, int idx /* 1-based */, const sexec_value *v, sexec_error *err);
    int (*step)(void *stmt, sexec_error *err); /* SEXEC_ROW / SEXEC_DONE / error */
    int (*column_count)(void *stmt);
    const char *(*column_name)(void *stmt, int i);
    const char *(*column_decltype)(void *stmt, int i); /* may be NULL */
    void (*column_value)(void *stmt, int i, sexec_value *out);
    /* Rewinds after a run (or a canceled one) and clears bindings. */
    void (*reset)(void *stmt);
    void (*finalize)(void *stmt);
    uint64_t (*changes)(void *ctx); /* rows changed by the last statement */
    /* on=1: interrupt what runs now (any thread, under the session's mutex);
     * on=0: forget an interrupt that came after its job ended (the worker,
     * as it starts the next job, so a late cancel never hits the next one). */
    void (*cancel)(void *ctx, int on);
    int (*txn_state)(void *ctx); /* SEXEC_TXN_* */
    int (*set)(void *ctx, const session_settings *s, sexec_error *err);
    void (*close)(void *ctx);
    /* Optional (loop thread, right after open): the session's id, for
     * executors that list their sessions (the meridian_sessions view). */
    void (*session_id)(void *ctx, uint64_t id);
    /* Optional (password logins): the SCRAM verifier of user ("" when it
     * has no password), *found = 0 for unknown users. Worker thread. */
    int (*user_verifier)(void *ctx, const char *user, char *out, size_t cap, int *found,
                         sexec_error *err);
    /* Optional (worker, before each exec): the statement's deadline (Unix
     * µs, 0 = none), which every KV call the statement makes must respect. */
    void (*set_deadline)(void *ctx, int64_t deadline_us);
} session_executor;

typedef struct session_service session_service;

typedef struct session_service_config {
    const char *cluster_id;  /* "" accepts any client */
    uint32_t batch_rows;     /* rows per stream item; 256 */
    size_t batch_bytes;      /* soft byte cap per item; 256 KiB */
    int64_t idle_timeout_ns; /* sessions idle this long are reaped; 1 h */
    uint32_t max_sessions;   /* 1024 */
    /* Secure node: sessions are authenticated (a client certificate's user,
     * or SCRAM-SHA-256 for clients without one); 0 takes the claimed user. */
    int secure;
    int64_t auth_backoff_base_ns, auth_backoff_max_ns; /* failed logins: 250 ms .. 30 s */
} session_service_config;

void session_service_config_defaults(session_service_config *c);

/* Registers the "session.*" methods on n (call on n's loop thread, or before
 * any client can connect, via rpc_node_run_sync). exec must outlive the
 * service. */
int session_service_register(rpc_node *n, const session_executor *exec,
                             const session_service_config *cfg, session_service **out, merr *e);
/* Closes every session (interrupting running statements) and frees the
 * service. From any thread but the loop's, while n still runs. */
void session_service_free(session_service *s);

/* Counters, readable from any thread (tests, metrics). */
typedef struct session_service_stats {
    uint64_t sessions_open, sessions_total;
    uint64_t execs, rows_sent, batches_sent;
    uint64_t batches_waiting; /* a worker waits for stream credit now */
    uint64_t cancels;
    uint64_t jobs_running;                           /* sessions whose worker runs a request now */
    uint64_t auth_ok, auth_failures, auth_throttled; /* password logins */
} session_service_stats;
void session_service_stats_get(session_service *s, session_service_stats *out);
/* Prometheus text of the counters (sessions, logins), for /metrics. */
int session_service_metrics_render(session_service *s, mbuf *out);

#endif
