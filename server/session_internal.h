/* Internals of the session service shared by its loop side
 * (session_service.c: handlers, replies, stream sends, lifecycle) and its
 * worker side (session_worker.c: running a session's jobs on its thread).
 * Locking: ssession.mu guards a session's queue, the running job, cancel
 * marks and each job's batch handshake; session_service.mu guards the stats
 * and the live-worker count; everything else belongs to one thread as
 * marked. */
#ifndef MERIDIAN_SERVER_SESSION_INTERNAL_H
#define MERIDIAN_SERVER_SESSION_INTERNAL_H

#include "common/backoff.h"
#include "common/buf.h"
#include "common/mtime.h"
#include "server/session_service.h"

#include <pthread.h>
#include <stdatomic.h>

/* A batch's first row waits at most this long for company (checked when the
 * next row comes). */
#define SESSION_BATCH_LINGER_NS (50 * MTIME_MS)

enum { J_PREPARE, J_EXEC, J_CLOSE_STMT, J_SET, J_CLOSE, J_AUTH };
/* A session's login state (session_auth.c): the SCRAM exchange's steps. */
enum { SA_DONE = 0, SA_WANT_FIRST, SA_WANT_FINAL, SA_FAILED };
enum { B_NONE, B_POSTED, B_SENT };

typedef struct ssession ssession;

typedef struct sjob {
    struct sjob *next;
    int kind;
    ssession *ss;
    rpc_req *req; /* NULL for service-initiated closes */
    uint8_t *payload;
    size_t len;
    uint64_t seq;
    int canceled;    /* guarded by ss->mu */
    int send_rc;     /* guarded by ss->mu: how the last batch send ended */
    int batch_state; /* guarded by ss->mu */
    int waiting;     /* loop thread: counted in batches_waiting */
    mbuf out;        /* batch, then reply payload */
    int code;        /* rpc-level error (MERR_*) */
    char msg[128];
    int64_t deadline_us; /* the caller's (statement_timeout), Unix µs; 0 = none */
} sjob;

typedef struct sstmt {
    struct sstmt *next;
    uint64_t id;
    void *stmt;
} sstmt;

struct ssession {
    session_service *svc;
    ssession *next; /* service table (loop thread) */
    uint64_t id;
    void *ctx; /* executor context (worker) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sjob *head, *tail;    /* queue (mu) */
    uint64_t cancel_upto; /* mu */
    int ctx_ready;        /* mu: cancel may touch ctx */
    sjob *running;        /* mu: the job the worker runs now */
    sstmt *stmts;         /* worker */
    uint64_t next_stmt;
    int64_t last_used_ns;       /* loop */
    atomic_int auth_state;      /* SA_*: the worker writes, the loop reads */
    char user[64];              /* the user the session runs as */
    char peer[128];             /* the client's address: backoff key */
    struct scram_server *scram; /* worker: the exchange in progress */
};

struct session_service {
    rpc_node *node;
    const session_executor *ex;
    session_service_config cfg;
    ssession *sessions; /* loop thread */
    uint32_t nsessions; /* loop thread: linked sessions (the limit counts these) */
    uint64_t next_id;
    int closed;
    pthread_mutex_t mu; /* stats and the live-worker count */
    pthread_cond_t cv;
    int workers;
    session_service_stats st;
    mbackoff backoff;      /* mu: failed logins per user@address */
    uint8_t decoy_key[32]; /* decoy verifiers for unknown users */
};

void session_stat_add(session_service *s, uint64_t *field, int64_t d);
void session_job_free(sjob *j);
/* Loop side, run through rpc_node_post by the worker. */
void session_finish_cb(void *arg);
void session_send_batch_cb(void *arg);
/* session_auth.c. Loop: who the session runs as, and whether it must log
 * in first; 0, or an error for the open reply. */
int session_auth_open(session_service *svc, rpc_req *req, const char *claimed, const char *method,
                      ssession *ss, sexec_error *err);
/* Worker: one session.auth step. */
void session_run_auth(sjob *j);
/* The session's worker thread. */
void *session_worker_main(void *arg);

#endif
