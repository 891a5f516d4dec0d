/* libmeridian internals shared by client/conn.c (connections, sessions,
 * calls, failover) and client/stmt.c (statements and rows).
 *
 * Threads: the application thread calls the API and blocks; the rpc node's
 * loop thread runs reply and stream callbacks. They meet under db->mu: the
 * loop fills in call results and row batches and signals db->cv; the
 * application waits on it. meridian_interrupt may come from a third thread
 * and only reads db->inflight_seq under mu before posting a cancel. */
#ifndef MERIDIAN_CLIENT_INTERNAL_H
#define MERIDIAN_CLIENT_INTERNAL_H

#define MERIDIAN_BUILDING_LIBRARY 1
#include "include/meridian.h"

#include "common/buf.h"
#include "common/err.h"
#include "proto/session.pb-c.h"
#include "rpc/rpc.h"

#include <pthread.h>
#include <stdint.h>

#define CLIENT_PROTOCOL_VERSION 1
#define CLIENT_MAX_HOSTS        16
#define CLIENT_STREAM_WINDOW    4 /* row batches in flight or buffered per statement */

typedef struct cbatch {
    struct cbatch *next;
    Meridian__Session__RowBatch *msg;
} cbatch;

struct meridian_stmt {
    meridian *db;
    meridian_stmt *next; /* db->stmts */
    char *sql;           /* this statement's text, for re-prepare after failover */
    size_t sql_len;
    uint64_t stmt_id; /* server's id in session generation gen */
    uint64_t gen;
    int adhoc; /* meridian_exec: sent as text, prepared and finalized server-side */
    int nparams;
    Meridian__Session__Value *params; /* nparams; text/blob owned (malloc) */
    int ncols;
    char **col_names, **col_types;
    /* execution */
    enum { ST_IDLE, ST_RUNNING, ST_DONE } state;
    uint64_t seq, call_id;
    cbatch *head, *tail; /* received, not yet read (db->mu) */
    int ended;           /* db->mu: the end callback ran */
    int end_code;        /* rpc code of the end */
    int64_t deadline_us; /* the running call's (statement_timeout; 0 = none) */
    char *end_msg;
    Meridian__Session__ExecResult *result;
    cbatch *cur; /* batch being read */
    size_t row;  /* next row of cur */
    Meridian__Session__Row *crow;
    char **conv;       /* per column: text converted from a number (freed per row) */
    uint32_t consumed; /* adhoc: bytes of sql the statement took */
    int may_commit;    /* the running execution could commit (client_may_commit) */
};

struct meridian {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rpc_node *node;
    char *hosts[CLIENT_MAX_HOSTS];
    int nhosts, cur;
    char user[64], cluster[128];
    char password[256];   /* wiped at close */
    char certs_dir[1024]; /* "" = plaintext */
    int insecure;
    int64_t connect_timeout_ns;
    int read_only;
    uint64_t max_staleness_ms;
    int64_t stmt_timeout_ns; /* 0 = none */
    char app_name[64];
    /* session */
    uint64_t session_id, gen;
    int connected;
    int txn;
    int64_t changes;
    /* last error */
    int errcode, erroffset, retryable;
    char errmsg[1024];
    /* statements */
    meridian_stmt *stmts;
    meridian_stmt *running; /* the statement whose stream is open */
    uint64_t seq;
    uint64_t inflight_seq;    /* mu: exec that meridian_interrupt targets, 0 = none */
    uint64_t interrupted_seq; /* mu: the last exec meridian_interrupt asked to stop */
};

/* Error helpers: set db's error and return the code. */
int client_err(meridian *db, int code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void client_ok(meridian *db);
/* From a protocol Error (NULL = success). Returns the code. */
int client_err_from(meridian *db, const Meridian__Session__Error *e);
/* After an rpc-level failure (connection lost, unknown session...): marks
 * the session gone and moves to the next host. Returns MERIDIAN_UNAVAILABLE
 * (retryable) or another code. */
/* A call failed at the rpc level. may_have_committed: the lost request
 * could have committed (client_may_commit); then a lost connection is
 * reported with its outcome unknown and not retryable, so that nobody
 * (meridian_run_in_txn included) applies a transaction twice. */
int client_rpc_failed(meridian *db, int rpc_code, const char *msg, int may_have_committed);
/* Whether executing sql (NUL-terminated; its first keyword) in transaction
 * state txn could commit: COMMIT, END or RELEASE, or, outside a transaction,
 * anything but a read or a transaction-control statement that commits
 * nothing. */
int client_may_commit(const char *sql, int txn);

/* conninfo.c: parses conninfo into db (hosts, user, password, TLS, options);
 * sets one session option. Both return 0 or a MERIDIAN_* code with db's
 * error set. */
int client_parse_conninfo(meridian *db, const char *conninfo);
int client_set_option(meridian *db, const char *name, const char *value);

/* Makes sure a session exists (opening one on the next reachable host). */
int client_ensure_session(meridian *db);
/* A blocking call on the session's gateway: *resp (malloc'd) on success.
 * Returns 0 or a MERIDIAN_* code with db's error set. *sent_nothing is 1
 * when the request never left (peer known down): safe to retry elsewhere. */
int client_call(meridian *db, const char *method, const ProtobufCMessage *req, uint8_t **resp,
                size_t *len, int *sent_nothing);

/* Statement streams (stmt.c uses them; conn.c implements). Starts the exec
 * stream for st with the request; 0 or a code (sent_nothing as above). */
int client_stream_start(meridian_stmt *st, const ProtobufCMessage *req, int *sent_nothing);
/* Returns one credit for a consumed batch. */
void client_stream_grant(meridian_stmt *st);
/* Cancels the open stream of st and waits until its callbacks are done. */
void client_stream_cancel(meridian_stmt *st);

void client_txn_from(meridian *db, int txn);
/* Sends a request to host without waiting for (or reading) the answer. */
void client_call_async(meridian *db, const char *method, const ProtobufCMessage *req, int host);
/* MERIDIAN_BUSY (db's error set) when a statement other than except still
 * has a stream open: the session runs requests in order, so anything sent
 * now would wait behind it, and it waits for us to read. */
int client_check_idle(meridian *db, meridian_stmt *except);

#endif
