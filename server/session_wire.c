/* protobuf <-> C structs for the server side of the session protocol
 * (session_wire.h). Unpacked messages stay alive inside the decoded structs
 * so strings and blobs are borrowed, not copied. */
#include "server/session_wire.h"

#include "proto/session.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Meridian__Session__Value PValue;
typedef Meridian__Session__Column PColumn;
typedef Meridian__Session__Error PError;

static int pack_into(const ProtobufCMessage *m, mbuf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0) return 0; /* all defaults; out->data may be NULL (no NULL + 0) */
    if (mbuf_reserve(out, n)) return MERR_NOMEM;
    protobuf_c_message_pack(m, out->data + out->len);
    out->len += n;
    return 0;
}

static void settings_from(const Meridian__Session__Settings *p, session_settings *s)
{
    memset(s, 0, sizeof(*s));
    if (!p) return;
    s->read_only = p->read_only;
    s->max_staleness_ms = p->max_staleness_ms;
    snprintf(s->application_name, sizeof(s->application_name), "%s",
             p->application_name ? p->application_name : "");
    snprintf(s->default_format, sizeof(s->default_format), "%s",
             p->default_format ? p->default_format : "");
}

static void error_to(const sexec_error *e, PError *p)
{
    p->code = e->code;
    p->message = (char *)e->msg;
    p->offset = e->offset;
    p->retryable = e->retryable != 0;
}

int swire_open_decode(const uint8_t *p, size_t len, swire_open *out)
{
    memset(out, 0, sizeof(*out));
    Meridian__Session__OpenRequest *m = meridian__session__open_request__unpack(NULL, len, p);
    if (!m) return MERR_CORRUPT;
    out->msg = m;
    out->protocol_version = m->protocol_version;
    out->cluster_id = m->cluster_id;
    out->user = m->user;
    out->auth_method = m->auth_method;
    settings_from(m->settings, &out->settings);
    return 0;
}

void swire_open_free(swire_open *o)
{
    if (o->msg) meridian__session__open_request__free_unpacked(o->msg, NULL);
    o->msg = NULL;
}

int swire_open_reply_encode(uint64_t session_id, const char *cluster_id, const char *executor,
                            const sexec_error *err, mbuf *out)
{
    return swire_open_reply_encode_auth(session_id, cluster_id, executor, err, 0, out);
}

int swire_auth_decode(const uint8_t *p, size_t len, const char **message, void **msg)
{
    Meridian__Session__AuthRequest *m = meridian__session__auth_request__unpack(NULL, len, p);
    if (!m) return MERR_CORRUPT;
    *msg = m;
    *message = m->message;
    return 0;
}

void swire_auth_free(void *msg)
{
    if (msg) meridian__session__auth_request__free_unpacked(msg, NULL);
}

int swire_auth_reply_encode(const sexec_error *err, const char *message, int done, mbuf *out)
{
    Meridian__Session__AuthReply r = MERIDIAN__SESSION__AUTH_REPLY__INIT;
    PError pe = MERIDIAN__SESSION__ERROR__INIT;
    r.message = (char *)(message ? message : "");
    r.done = done != 0;
    if (err) {
        error_to(err, &pe);
        r.error = &pe;
    }
    return pack_into(&r.base, out);
}

int swire_open_reply_encode_auth(uint64_t session_id, const char *cluster_id, const char *executor,
                                 const sexec_error *err, int auth_required, mbuf *out)
{
    Meridian__Session__OpenReply r = MERIDIAN__SESSION__OPEN_REPLY__INIT;
    r.auth_required = auth_required != 0;
    PError pe = MERIDIAN__SESSION__ERROR__INIT;
    r.session_id = session_id;
    r.protocol_version = SESSION_PROTOCOL_VERSION;
    r.cluster_id = (char *)cluster_id;
    r.server_version = (char *)"meridian";
    r.executor = (char *)executor;
    if (err) {
        error_to(err, &pe);
        r.error = &pe;
    }
    return pack_into(&r.base, out);
}

int swire_prepare_decode(const uint8_t *p, size_t len, swire_prepare *out)
{
    memset(out, 0, sizeof(*out));
    Meridian__Session__PrepareRequest *m = meridian__session__prepare_request__unpack(NULL, len, p);
    if (!m) return MERR_CORRUPT;
    out->msg = m;
    out->sql = m->sql;
    return 0;
}

void swire_prepare_free(swire_prepare *o)
{
    if (o->msg) meridian__session__prepare_request__free_unpacked(o->msg, NULL);
    o->msg = NULL;
}

/* Columns of stmt as protobuf structs; *cols and *ptrs freed by the caller. */
static int columns_of(const session_executor *ex, void *stmt, PColumn **cols, PColumn ***ptrs,
                      size_t *n)
{
    int nc = ex->column_count(stmt);
    *cols = NULL;
    *ptrs = NULL;
    *n = 0;
    if (nc <= 0) return 0;
    *cols = calloc((size_t)nc, sizeof(PColumn));
    *ptrs = calloc((size_t)nc, sizeof(PColumn *));
    if (!*cols || !*ptrs) {
        free(*cols);
        free(*ptrs);
        return MERR_NOMEM;
    }
    for (int i = 0; i < nc; i++) {
        PColumn init = MERIDIAN__SESSION__COLUMN__INIT;
        (*cols)[i] = init;
        const char *name = ex->column_name(stmt, i);
        const char *dt = ex->column_decltype ? ex->column_decltype(stmt, i) : NULL;
        (*cols)[i].name = (char *)(name ? name : "");
        (*cols)[i].decltype = (char *)(dt ? dt : "");
        (*ptrs)[i] = &(*cols)[i];
    }
    *n = (size_t)nc;
    return 0;
}

int swire_prepare_reply_encode(const swire_prepare_reply *r, mbuf *out)
{
    Meridian__Session__PrepareReply m = MERIDIAN__SESSION__PREPARE_REPLY__INIT;
    PError pe = MERIDIAN__SESSION__ERROR__INIT;
    PColumn *cols = NULL, **ptrs = NULL;
    size_t nc = 0;
    m.stmt_id = r->stmt_id;
    m.tail = r->tail;
    m.txn = (Meridian__Session__TxnState)r->txn;
    if (r->err) {
        error_to(r->err, &pe);
        m.error = &pe;
    }
    if (r->stmt) {
        if (columns_of(r->ex, r->stmt, &cols, &ptrs, &nc)) return MERR_NOMEM;
        m.columns = ptrs;
        m.n_columns = nc;
        m.param_count = (uint32_t)r->ex->param_count(r->stmt);
        m.read_only = r->ex->stmt_readonly(r->stmt) != 0;
    }
    int rc = pack_into(&m.base, out);
    free(cols);
    free(ptrs);
    return rc;
}

int swire_exec_decode(const uint8_t *p, size_t len, swire_exec *out)
{
    memset(out, 0, sizeof(*out));
    Meridian__Session__ExecRequest *m = meridian__session__exec_request__unpack(NULL, len, p);
    if (!m) return MERR_CORRUPT;
    out->msg = m;
    out->stmt_id = m->stmt_id;
    out->sql = m->sql ? m->sql : "";
    if (m->n_params) {
        out->params = calloc(m->n_params, sizeof(sexec_value));
        if (!out->params) {
            swire_exec_free(out);
            return MERR_NOMEM;
        }
    }
    out->nparams = m->n_params;
    for (size_t i = 0; i < m->n_params; i++) {
        const PValue *v = m->params[i];
        sexec_value *o = &out->params[i];
        switch (v->v_case) {
        case MERIDIAN__SESSION__VALUE__V_I:
            o->type = SEXEC_INT;
            o->i = v->i;
            break;
        case MERIDIAN__SESSION__VALUE__V_D:
            o->type = SEXEC_FLOAT;
            o->d = v->d;
            break;
        case MERIDIAN__SESSION__VALUE__V_TEXT:
            o->type = SEXEC_TEXT;
            o->p = v->text;
            o->len = strlen(v->text);
            break;
        case MERIDIAN__SESSION__VALUE__V_BLOB:
            o->type = SEXEC_BLOB;
            o->p = v->blob.data;
            o->len = v->blob.len;
            break;
        default: o->type = SEXEC_NULL; break;
        }
    }
    return 0;
}

void swire_exec_free(swire_exec *o)
{
    free(o->params);
    o->params = NULL;
    if (o->msg) meridian__session__exec_request__free_unpacked(o->msg, NULL);
    o->msg = NULL;
}

int swire_exec_result_encode(const swire_exec_result *r, mbuf *out)
{
    Meridian__Session__ExecResult m = MERIDIAN__SESSION__EXEC_RESULT__INIT;
    PError pe = MERIDIAN__SESSION__ERROR__INIT;
    PColumn *cols = NULL, **ptrs = NULL;
    size_t nc = 0;
    if (r->err) {
        error_to(r->err, &pe);
        m.error = &pe;
    }
    m.rows_affected = r->rows_affected;
    m.rows = r->rows;
    m.txn = (Meridian__Session__TxnState)r->txn;
    m.tail = r->tail;
    if (r->columns_stmt) {
        if (columns_of(r->ex, r->columns_stmt, &cols, &ptrs, &nc)) return MERR_NOMEM;
        m.columns = ptrs;
        m.n_columns = nc;
    }
    int rc = pack_into(&m.base, out);
    free(cols);
    free(ptrs);
    return rc;
}

int swire_close_stmt_decode(const uint8_t *p, size_t len, uint64_t *stmt_id)
{
    Meridian__Session__CloseStmtRequest *m =
        meridian__session__close_stmt_request__unpack(NULL, len, p);
    if (!m) return MERR_CORRUPT;
    *stmt_id = m->stmt_id;
    meridian__session__close_stmt_request__free_unpacked(m, NULL);
    return 0;
}

int swire_set_decode(const uint8_t *p, size_t len, session_settings *out)
{
    Meridian__Session__SetRequest *m = meridian__session__set_request__unpack(NULL, len, p);
    if (!m) return MERR_CORRUPT;
    settings_from(m->settings, out);
    meridian__session__set_request__free_unpacked(m, NULL);
    return 0;
}

int swire_status_encode(const sexec_error *err, int txn, mbuf *out)
{
    Meridian__Session__Status m = MERIDIAN__SESSION__STATUS__INIT;
    PError pe = MERIDIAN__SESSION__ERROR__INIT;
    if (err) {
        error_to(err, &pe);
        m.error = &pe;
    }
    m.txn = (Meridian__Session__TxnState)txn;
    return pack_into(&m.base, out);
}

int swire_peek_session(const uint8_t *p, size_t len, uint64_t *session_id, uint64_t *seq)
{
    mreader r;
    mreader_init(&r, p, len);
    *session_id = 0;
    *seq = 0;
    while (mreader_left(&r)) {
        uint64_t key, v;
        const uint8_t *skip;
        if (mreader_varint(&r, &key)) return MERR_CORRUPT;
        switch (key & 7) {
        case 0:
            if (mreader_varint(&r, &v)) return MERR_CORRUPT;
            if (key >> 3 == 1) *session_id = v;
            if (key >> 3 == 2) *seq = v;
            break;
        case 1:
            if (mreader_bytes(&r, 8, &skip)) return MERR_CORRUPT;
            break;
        case 2:
            if (mreader_varint(&r, &v) || v > mreader_left(&r) ||
                mreader_bytes(&r, (size_t)v, &skip))
                return MERR_CORRUPT;
            break;
        case 5:
            if (mreader_bytes(&r, 4, &skip)) return MERR_CORRUPT;
            break;
        default: return MERR_CORRUPT;
        }
    }
    return *session_id ? 0 : MERR_CORRUPT;
}

void swire_batch_init(swire_batch *b, const session_executor *ex, void *stmt)
{
    memset(b, 0, sizeof(*b));
    b->ex = ex;
    b->stmt = stmt;
}

int swire_batch_add_row(swire_batch *b)
{
    int nc = b->ex->column_count(b->stmt);
    PValue vals[16], *ptrs[16];
    PValue *v = vals;
    PValue **pp = ptrs;
    if (nc > 16) {
        v = calloc((size_t)nc, sizeof(PValue));
        pp = calloc((size_t)nc, sizeof(PValue *));
        if (!v || !pp) goto oom;
    }
    size_t bytes = 0;
    for (int i = 0; i < nc; i++) {
        PValue init = MERIDIAN__SESSION__VALUE__INIT;
        sexec_value sv;
        v[i] = init;
        pp[i] = &v[i];
        b->ex->column_value(b->stmt, i, &sv);
        switch (sv.type) {
        case SEXEC_INT:
            v[i].v_case = MERIDIAN__SESSION__VALUE__V_I;
            v[i].i = sv.i;
            break;
        case SEXEC_FLOAT:
            v[i].v_case = MERIDIAN__SESSION__VALUE__V_D;
            v[i].d = sv.d;
            break;
        case SEXEC_TEXT:
            v[i].v_case = MERIDIAN__SESSION__VALUE__V_TEXT;
            v[i].text = (char *)(sv.p ? sv.p : "");
            break;
        case SEXEC_BLOB:
            v[i].v_case = MERIDIAN__SESSION__VALUE__V_BLOB;
            v[i].blob.data = (uint8_t *)sv.p;
            v[i].blob.len = sv.len;
            break;
        default:
            v[i].v_case = MERIDIAN__SESSION__VALUE__V_NULL;
            v[i].null = 1;
            break;
        }
        bytes += sv.len + 8;
    }
    Meridian__Session__Row row = MERIDIAN__SESSION__ROW__INIT;
    row.values = pp;
    row.n_values = (size_t)nc;
    size_t n = meridian__session__row__get_packed_size(&row);
    /* RowBatch field 2 (rows), length-delimited. */
    if (mbuf_append_u8(&b->rows, (2 << 3) | 2) || mbuf_append_varint(&b->rows, n) ||
        mbuf_reserve(&b->rows, n))
        goto oom;
    meridian__session__row__pack(&row, b->rows.data + b->rows.len);
    b->rows.len += n;
    b->nrows++;
    b->bytes += bytes;
    if (v != vals) {
        free(v);
        free(pp);
    }
    return 0;
oom:
    if (v != vals) {
        free(v);
        free(pp);
    }
    return MERR_NOMEM;
}

int swire_batch_encode(swire_batch *b, int first, mbuf *out)
{
    if (first) {
        Meridian__Session__RowBatch m = MERIDIAN__SESSION__ROW_BATCH__INIT;
        PColumn *cols = NULL, **ptrs = NULL;
        size_t nc = 0;
        if (columns_of(b->ex, b->stmt, &cols, &ptrs, &nc)) return MERR_NOMEM;
        m.columns = ptrs;
        m.n_columns = nc;
        int rc = pack_into(&m.base, out);
        free(cols);
        free(ptrs);
        if (rc) return rc;
    }
    return b->rows.len ? mbuf_append(out, b->rows.data, b->rows.len) : 0;
}

void swire_batch_reset(swire_batch *b)
{
    mbuf_reset(&b->rows);
    b->nrows = 0;
    b->bytes = 0;
}

void swire_batch_free(swire_batch *b)
{
    mbuf_free(&b->rows);
}
