/* Encoding and decoding of the session protocol's messages for the server
 * (proto/session.proto): the one place the session service touches protobuf,
 * so the service and the executors see plain C structs. Decoded strings and
 * values are owned by the decoded struct until its _free. */
#ifndef MERIDIAN_SERVER_SESSION_WIRE_H
#define MERIDIAN_SERVER_SESSION_WIRE_H

#include "common/buf.h"
#include "server/session_service.h"

typedef struct swire_open {
    uint32_t protocol_version;
    char *cluster_id, *user;
    char *auth_method; /* "scram-sha-256" or "" */
    session_settings settings;
    void *msg;
} swire_open;

typedef struct swire_prepare {
    char *sql;
    void *msg;
} swire_prepare;

typedef struct swire_prepare_reply {
    uint64_t stmt_id;
    uint32_t tail;
    int txn;
    const sexec_error *err;
    const session_executor *ex; /* with stmt: columns, params, read-only */
    void *stmt;
} swire_prepare_reply;

typedef struct swire_exec {
    uint64_t stmt_id;
    const char *sql;
    sexec_value *params;
    size_t nparams;
    void *msg;
} swire_exec;

typedef struct swire_exec_result {
    const sexec_error *err;
    uint64_t rows_affected, rows;
    int txn;
    uint32_t tail;
    const session_executor *ex;
    void *columns_stmt; /* columns go in the result when no batch carried them */
} swire_exec_result;

/* Rows are packed one by one as they are stepped (values are only valid
 * until the next step), so a batch is a byte buffer, not a tree. */
typedef struct swire_batch {
    const session_executor *ex;
    void *stmt;
    mbuf rows;
    size_t nrows, bytes;
} swire_batch;

int swire_open_decode(const uint8_t *p, size_t len, swire_open *out);
void swire_open_free(swire_open *o);
int swire_open_reply_encode(uint64_t session_id, const char *cluster_id, const char *executor,
                            const sexec_error *err, mbuf *out);
/* The same with OpenReply.auth_required. */
int swire_open_reply_encode_auth(uint64_t session_id, const char *cluster_id, const char *executor,
                                 const sexec_error *err, int auth_required, mbuf *out);
/* session.auth: the SCRAM message of an AuthRequest (borrowed from *msg,
 * freed with swire_auth_free), and the reply. */
int swire_auth_decode(const uint8_t *p, size_t len, const char **message, void **msg);
void swire_auth_free(void *msg);
int swire_auth_reply_encode(const sexec_error *err, const char *message, int done, mbuf *out);
int swire_prepare_decode(const uint8_t *p, size_t len, swire_prepare *out);
void swire_prepare_free(swire_prepare *o);
int swire_prepare_reply_encode(const swire_prepare_reply *r, mbuf *out);
int swire_exec_decode(const uint8_t *p, size_t len, swire_exec *out);
void swire_exec_free(swire_exec *o);
int swire_exec_result_encode(const swire_exec_result *r, mbuf *out);
int swire_close_stmt_decode(const uint8_t *p, size_t len, uint64_t *stmt_id);
int swire_set_decode(const uint8_t *p, size_t len, session_settings *out);
int swire_status_encode(const sexec_error *err, int txn, mbuf *out);
/* Fields 1 (session id) and 2 (seq, when a varint) of any session request,
 * without decoding the rest. */
int swire_peek_session(const uint8_t *p, size_t len, uint64_t *session_id, uint64_t *seq);

void swire_batch_init(swire_batch *b, const session_executor *ex, void *stmt);
int swire_batch_add_row(swire_batch *b);
/* Encodes a RowBatch (with the columns when first) into out. */
int swire_batch_encode(swire_batch *b, int first, mbuf *out);
void swire_batch_reset(swire_batch *b);
void swire_batch_free(swire_batch *b);

#endif
