/* The SQL unit tests' fixture (fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/sql/fixture.h"

int collect(void *arg, sql_stmt *st)
{
    out *o = arg;
    size_t len = strlen(o->buf);
    for (int i = 0; i < sql_column_count(st); i++) {
        const unsigned char *t = sql_column_text(st, i);
        len += (size_t)snprintf(o->buf + len, sizeof(o->buf) - len, "%s%s", i ? "|" : "",
                                t ? (const char *)t : "NULL");
    }
    snprintf(o->buf + len, sizeof(o->buf) - len, ";");
    return 0;
}

void ok(sql_session *s, const char *sql)
{
    merr e = {0};
    int rc = sql_exec(s, sql, NULL, NULL, &e);
    if (rc) fail_msg("%s: %s", sql, merr_msg(&e));
}

const char *q(sql_session *s, const char *sql, out *o)
{
    merr e = {0};
    o->buf[0] = 0;
    int rc = sql_exec(s, sql, collect, o, &e);
    if (rc) fail_msg("%s: %s", sql, merr_msg(&e));
    return o->buf;
}

void err(sql_session *s, const char *sql, int code, const char *msg)
{
    merr e = {0};
    int rc = sql_exec(s, sql, NULL, NULL, &e);
    if (code ? rc != code : rc == 0)
        fail_msg("%s: got %d (%s), want %d", sql, rc, merr_msg(&e), code);
    if (msg && !strstr(merr_msg(&e), msg))
        fail_msg("%s: message \"%s\" lacks \"%s\"", sql, e.msg, msg);
}

int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    merr e = {0};
    assert_int_equal(sql_kv_mem_open(&f->kv), 0);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &f->s, &e), 0);
    *state = f;
    return 0;
}

int teardown(void **state)
{
    fx *f = *state;
    sql_session_close(f->s);
    sql_kv_mem_close(f->kv);
    free(f);
    return 0;
}
