/* libFuzzer target: the server's session protocol codec (server/session_wire.h).
 * The first byte picks a request decoder (open, prepare, exec, close-stmt,
 * set, the session-id peek) that gets the rest of the input as a hostile
 * message; mode 6 instead drives the reply encoders with a fake executor
 * whose columns and row values come from the input, and checks the packed
 * RowBatch / replies unpack to the same values. Seeds:
 * tests/fuzz/corpus/fuzz_session_wire/. */
#include "proto/session.pb-c.h"
#include "server/session_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- a fake executor over the input bytes ---- */
typedef struct fake_stmt {
    int ncols;
    char names[8][16];
    sexec_value vals[8];
    char text[8][32];
} fake_stmt;

static int f_param_count(void *s)
{
    return ((fake_stmt *)s)->ncols;
}
static int f_readonly(void *s)
{
    (void)s;
    return 1;
}
static int f_column_count(void *s)
{
    return ((fake_stmt *)s)->ncols;
}
static const char *f_column_name(void *s, int i)
{
    return ((fake_stmt *)s)->names[i];
}
static const char *f_decltype(void *s, int i)
{
    return i & 1 ? NULL : "TEXT";
}
static void f_column_value(void *s, int i, sexec_value *out)
{
    *out = ((fake_stmt *)s)->vals[i];
}

static const session_executor fake_ex = {
    .param_count = f_param_count,
    .stmt_readonly = f_readonly,
    .column_count = f_column_count,
    .column_name = f_column_name,
    .column_decltype = f_decltype,
    .column_value = f_column_value,
};

static size_t take(const uint8_t **p, size_t *n, void *out, size_t want)
{
    size_t k = *n < want ? *n : want;
    memset(out, 0, want);
    if (k) memcpy(out, *p, k);
    *p += k;
    *n -= k;
    return k;
}

static void fill_row(fake_stmt *st, const uint8_t **p, size_t *n)
{
    for (int i = 0; i < st->ncols; i++) {
        uint8_t t = 0;
        take(p, n, &t, 1);
        sexec_value *v = &st->vals[i];
        memset(v, 0, sizeof *v);
        v->type = (sexec_type)(t % 5);
        switch (v->type) {
        case SEXEC_INT: take(p, n, &v->i, sizeof v->i); break;
        case SEXEC_FLOAT: take(p, n, &v->d, sizeof v->d); break;
        case SEXEC_TEXT: {
            size_t l = (size_t)(t >> 3) % 32;
            take(p, n, st->text[i], l);
            st->text[i][31] = 0;
            for (size_t k = 0; k < 31; k++)
                if (!st->text[i][k]) st->text[i][k] = 'x'; /* SQL text: no NULs */
            st->text[i][l < 31 ? l : 31] = 0;
            v->p = st->text[i];
            v->len = strlen(st->text[i]);
            break;
        }
        case SEXEC_BLOB:
            v->len = (size_t)(t >> 3) % 32;
            v->p = v->len <= *n ? *p : NULL;
            if (!v->p) v->len = 0;
            *p += v->len;
            *n -= v->len;
            break;
        default: break;
        }
    }
}

static int same_value(const sexec_value *a, const Meridian__Session__Value *b)
{
    switch (a->type) {
    case SEXEC_INT: return b->v_case == MERIDIAN__SESSION__VALUE__V_I && b->i == a->i;
    case SEXEC_FLOAT:
        return b->v_case == MERIDIAN__SESSION__VALUE__V_D && memcmp(&b->d, &a->d, sizeof a->d) == 0;
    case SEXEC_TEXT: return b->v_case == MERIDIAN__SESSION__VALUE__V_TEXT && !strcmp(b->text, a->p);
    case SEXEC_BLOB:
        return b->v_case == MERIDIAN__SESSION__VALUE__V_BLOB && b->blob.len == a->len &&
               (!a->len || !memcmp(b->blob.data, a->p, a->len));
    default: return b->v_case == MERIDIAN__SESSION__VALUE__V_NULL;
    }
}

static void encoders(const uint8_t *p, size_t n)
{
    fake_stmt st;
    memset(&st, 0, sizeof st);
    uint8_t hdr = 0;
    take(&p, &n, &hdr, 1);
    st.ncols = hdr % 9;
    for (int i = 0; i < st.ncols; i++) {
        take(&p, &n, st.names[i], 15);
        st.names[i][15] = 0;
    }
    swire_batch b;
    swire_batch_init(&b, &fake_ex, &st);
    /* Up to 4 rows; the last one's values are checked after unpacking. */
    int nrows = 1 + (hdr >> 4) % 4;
    for (int r = 0; r < nrows; r++) {
        fill_row(&st, &p, &n);
        if (swire_batch_add_row(&b)) abort();
    }
    mbuf out = MBUF_INIT;
    if (swire_batch_encode(&b, 1, &out)) abort();
    Meridian__Session__RowBatch *rb = meridian__session__row_batch__unpack(NULL, out.len, out.data);
    if (!rb) abort();
    if (rb->n_columns != (size_t)st.ncols || rb->n_rows != (size_t)nrows) abort();
    for (int i = 0; i < st.ncols; i++)
        if (strcmp(rb->columns[i]->name, st.names[i])) abort();
    const Meridian__Session__Row *last = rb->rows[nrows - 1];
    if (last->n_values != (size_t)st.ncols) abort();
    for (int i = 0; i < st.ncols; i++)
        if (!same_value(&st.vals[i], last->values[i])) abort();
    meridian__session__row_batch__free_unpacked(rb, NULL);
    swire_batch_free(&b);

    sexec_error err;
    memset(&err, 0, sizeof err);
    err.code = SEXEC_ERROR;
    err.offset = (int)hdr - 128;
    take(&p, &n, err.msg, sizeof err.msg - 1);
    for (size_t k = 0; k < sizeof err.msg - 1; k++)
        if (!err.msg[k]) err.msg[k] = '?';
    err.msg[(hdr * 7) % (sizeof err.msg)] = 0;

    mbuf_reset(&out);
    swire_prepare_reply pr = {.stmt_id = hdr,
                              .tail = hdr,
                              .txn = hdr % 3,
                              .err = (hdr & 1) ? &err : NULL,
                              .ex = &fake_ex,
                              .stmt = &st};
    if (swire_prepare_reply_encode(&pr, &out)) abort();
    Meridian__Session__PrepareReply *prr =
        meridian__session__prepare_reply__unpack(NULL, out.len, out.data);
    if (!prr || prr->n_columns != (size_t)st.ncols || prr->param_count != (uint32_t)st.ncols)
        abort();
    if ((hdr & 1) && (!prr->error || strcmp(prr->error->message, err.msg))) abort();
    meridian__session__prepare_reply__free_unpacked(prr, NULL);

    mbuf_reset(&out);
    swire_exec_result xr = {.err = (hdr & 2) ? &err : NULL,
                            .rows_affected = n,
                            .rows = 7,
                            .txn = hdr % 3,
                            .tail = 0,
                            .ex = &fake_ex,
                            .columns_stmt = (hdr & 4) ? &st : NULL};
    if (swire_exec_result_encode(&xr, &out)) abort();
    Meridian__Session__ExecResult *er =
        meridian__session__exec_result__unpack(NULL, out.len, out.data);
    if (!er || er->rows_affected != n) abort();
    meridian__session__exec_result__free_unpacked(er, NULL);

    mbuf_reset(&out);
    if (swire_status_encode(&err, hdr % 3, &out)) abort();
    mbuf_reset(&out);
    if (swire_open_reply_encode(hdr, st.ncols ? st.names[0] : "", "sqlite", &err, &out)) abort();
    mbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0] % 7;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (mode) {
    case 0: {
        swire_open o;
        if (swire_open_decode(p, n, &o) == 0) {
            if (!o.cluster_id || !o.user) abort();
            if (strnlen(o.settings.application_name, sizeof o.settings.application_name) ==
                sizeof o.settings.application_name)
                abort(); /* must stay terminated */
        }
        swire_open_free(&o);
        break;
    }
    case 1: {
        swire_prepare o;
        if (swire_prepare_decode(p, n, &o) == 0 && !o.sql) abort();
        swire_prepare_free(&o);
        break;
    }
    case 2: {
        swire_exec o;
        if (swire_exec_decode(p, n, &o) == 0) {
            if (!o.sql) abort();
            size_t sum = 0;
            for (size_t i = 0; i < o.nparams; i++) {
                const sexec_value *v = &o.params[i];
                if (v->type == SEXEC_TEXT || v->type == SEXEC_BLOB)
                    for (size_t k = 0; k < v->len; k++) sum += ((const uint8_t *)v->p)[k];
            }
            (void)sum;
        }
        swire_exec_free(&o);
        break;
    }
    case 3: {
        uint64_t id;
        (void)swire_close_stmt_decode(p, n, &id);
        break;
    }
    case 4: {
        session_settings s;
        if (swire_set_decode(p, n, &s) == 0 &&
            (strnlen(s.application_name, sizeof s.application_name) == sizeof s.application_name ||
             strnlen(s.default_format, sizeof s.default_format) == sizeof s.default_format))
            abort();
        break;
    }
    case 5: {
        uint64_t sid, seq;
        int rc = swire_peek_session(p, n, &sid, &seq);
        if (rc == 0 && sid == 0) abort();
        if (rc != 0 && rc != MERR_CORRUPT) abort();
        break;
    }
    default: encoders(p, n); break;
    }
    return 0;
}
