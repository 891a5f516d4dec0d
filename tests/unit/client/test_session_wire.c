/* The session protocol's server-side codec (server/session_wire.c) and the
 * SQLite test executor, without a network: round trips, garbage input, and
 * the executor's cancel and failed-transaction rules. */
#include "proto/session.pb-c.h"
#include "server/session_exec_sqlite.h"
#include "server/session_wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_peek_session(void **state)
{
    (void)state;
    Meridian__Session__ExecRequest req = MERIDIAN__SESSION__EXEC_REQUEST__INIT;
    req.session_id = 77;
    req.seq = 9;
    req.sql = (char *)"SELECT 1";
    uint8_t buf[256];
    size_t n = meridian__session__exec_request__pack(&req, buf);
    uint64_t id, seq;
    assert_int_equal(swire_peek_session(buf, n, &id, &seq), 0);
    assert_true(id == 77 && seq == 9);
    /* Prepare has a string as field 2: not a seq. */
    Meridian__Session__PrepareRequest p = MERIDIAN__SESSION__PREPARE_REQUEST__INIT;
    p.session_id = 5;
    p.sql = (char *)"x";
    n = meridian__session__prepare_request__pack(&p, buf);
    assert_int_equal(swire_peek_session(buf, n, &id, &seq), 0);
    assert_true(id == 5 && seq == 0);
    /* Garbage, truncation, no session id: errors, never a crash. */
    const uint8_t bad1[] = {0x08};
    const uint8_t bad2[] = {0x12, 0x7f, 0x01};
    const uint8_t bad3[] = {0x0f, 0x01};
    const uint8_t none[] = {0x10, 0x01};
    assert_int_equal(swire_peek_session(bad1, sizeof(bad1), &id, &seq), MERR_CORRUPT);
    assert_int_equal(swire_peek_session(bad2, sizeof(bad2), &id, &seq), MERR_CORRUPT);
    assert_int_equal(swire_peek_session(bad3, sizeof(bad3), &id, &seq), MERR_CORRUPT);
    assert_int_equal(swire_peek_session(none, sizeof(none), &id, &seq), MERR_CORRUPT);
    assert_int_equal(swire_peek_session(NULL, 0, &id, &seq), MERR_CORRUPT);
}

static void test_exec_decode_values(void **state)
{
    (void)state;
    Meridian__Session__Value v[5];
    Meridian__Session__Value *pv[5];
    for (int i = 0; i < 5; i++) {
        Meridian__Session__Value init = MERIDIAN__SESSION__VALUE__INIT;
        v[i] = init;
        pv[i] = &v[i];
    }
    v[0].v_case = MERIDIAN__SESSION__VALUE__V_I, v[0].i = -5;
    v[1].v_case = MERIDIAN__SESSION__VALUE__V_D, v[1].d = 0.25;
    v[2].v_case = MERIDIAN__SESSION__VALUE__V_TEXT, v[2].text = (char *)"héllo";
    v[3].v_case = MERIDIAN__SESSION__VALUE__V_BLOB, v[3].blob.data = (uint8_t *)"\0\1",
    v[3].blob.len = 2;
    v[4].v_case = MERIDIAN__SESSION__VALUE__V_NULL, v[4].null = 1;
    Meridian__Session__ExecRequest req = MERIDIAN__SESSION__EXEC_REQUEST__INIT;
    req.session_id = 1;
    req.stmt_id = 3;
    req.params = pv;
    req.n_params = 5;
    uint8_t buf[256];
    size_t n = meridian__session__exec_request__pack(&req, buf);
    swire_exec e;
    assert_int_equal(swire_exec_decode(buf, n, &e), 0);
    assert_int_equal(e.nparams, 5);
    assert_true(e.stmt_id == 3);
    assert_int_equal(e.params[0].type, SEXEC_INT);
    assert_true(e.params[0].i == -5);
    assert_int_equal(e.params[1].type, SEXEC_FLOAT);
    assert_int_equal(e.params[2].type, SEXEC_TEXT);
    assert_int_equal(e.params[2].len, strlen("héllo"));
    assert_int_equal(e.params[3].type, SEXEC_BLOB);
    assert_memory_equal(e.params[3].p, "\0\1", 2);
    assert_int_equal(e.params[4].type, SEXEC_NULL);
    swire_exec_free(&e);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(swire_exec_decode(junk, sizeof(junk), &e), MERR_CORRUPT);
    swire_open o;
    assert_int_equal(swire_open_decode(junk, sizeof(junk), &o), MERR_CORRUPT);
    swire_prepare pr;
    assert_int_equal(swire_prepare_decode(junk, sizeof(junk), &pr), MERR_CORRUPT);
    session_settings st;
    assert_int_equal(swire_set_decode(junk, sizeof(junk), &st), MERR_CORRUPT);
    uint64_t id;
    assert_int_equal(swire_close_stmt_decode(junk, sizeof(junk), &id), MERR_CORRUPT);
}

static void test_batch_encoding(void **state)
{
    (void)state;
    session_executor ex;
    session_exec_sqlite(&ex, NULL);
    session_settings s = {0};
    sexec_error err = {0};
    void *ctx = NULL, *stmt = NULL;
    size_t tail = 0;
    assert_int_equal(ex.open(ex.arg, "u", &s, &ctx, &err), 0);
    const char *sql = "SELECT 1 AS a, 'two' AS b, x'03' AS c, NULL AS d, 2.5 AS e";
    assert_int_equal(ex.prepare(ctx, sql, strlen(sql), &stmt, &tail, &err), 0);
    assert_int_equal(tail, strlen(sql));
    swire_batch b;
    swire_batch_init(&b, &ex, stmt);
    assert_int_equal(ex.step(stmt, &err), SEXEC_ROW);
    assert_int_equal(swire_batch_add_row(&b), 0);
    mbuf out = MBUF_INIT;
    assert_int_equal(swire_batch_encode(&b, 1, &out), 0);
    Meridian__Session__RowBatch *m = meridian__session__row_batch__unpack(NULL, out.len, out.data);
    assert_non_null(m);
    assert_int_equal(m->n_columns, 5);
    assert_string_equal(m->columns[1]->name, "b");
    assert_int_equal(m->n_rows, 1);
    assert_int_equal(m->rows[0]->n_values, 5);
    assert_true(m->rows[0]->values[0]->i == 1);
    assert_string_equal(m->rows[0]->values[1]->text, "two");
    assert_int_equal(m->rows[0]->values[2]->blob.len, 1);
    assert_int_equal(m->rows[0]->values[3]->v_case, MERIDIAN__SESSION__VALUE__V_NULL);
    assert_true(m->rows[0]->values[4]->d == 2.5);
    meridian__session__row_batch__free_unpacked(m, NULL);
    mbuf_free(&out);
    swire_batch_free(&b);
    ex.finalize(stmt);
    ex.close(ctx);
}

/* A reply of all defaults packs to zero bytes: encoding it into an empty
 * buffer must not do arithmetic on its NULL data (UBSan; found by
 * fuzz_session_wire). */
static void test_empty_reply_into_empty_buffer(void **state)
{
    (void)state;
    mbuf out = MBUF_INIT;
    assert_int_equal(swire_status_encode(NULL, 0, &out), 0);
    assert_int_equal(out.len, 0);
    mbuf_free(&out);
}

static void test_executor_rules(void **state)
{
    (void)state;
    session_executor ex;
    session_exec_sqlite(&ex, ":memory:");
    session_settings s = {0};
    sexec_error err = {0};
    void *ctx = NULL, *stmt = NULL;
    size_t tail = 0;
    assert_int_equal(ex.open(ex.arg, "u", &s, &ctx, &err), 0);
    /* Cancel set before a statement starts is not lost... */
    const char *loop = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                       "SELECT count(*) FROM c";
    assert_int_equal(ex.prepare(ctx, loop, strlen(loop), &stmt, &tail, &err), 0);
    ex.reset(stmt);
    ex.cancel(ctx, 1);
    assert_int_equal(ex.step(stmt, &err), SEXEC_INTERRUPT);
    /* ...and reset clears it for the next run. */
    ex.reset(stmt);
    ex.finalize(stmt);
    const char *one = "SELECT 1";
    assert_int_equal(ex.prepare(ctx, one, strlen(one), &stmt, &tail, &err), 0);
    ex.reset(stmt);
    assert_int_equal(ex.step(stmt, &err), SEXEC_ROW);
    ex.finalize(stmt);
    /* Only blanks: no statement. */
    assert_int_equal(ex.prepare(ctx, "  ", 2, &stmt, &tail, &err), 0);
    assert_null(stmt);
    assert_int_equal(ex.txn_state(ctx), SEXEC_TXN_IDLE);
    ex.close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_session),   cmocka_unit_test(test_exec_decode_values),
        cmocka_unit_test(test_batch_encoding), cmocka_unit_test(test_empty_reply_into_empty_buffer),
        cmocka_unit_test(test_executor_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
