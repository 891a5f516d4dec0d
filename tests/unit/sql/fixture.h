/* The SQL unit tests' fixture: a session over the in-memory KV
 * (sql/kv_mem.h) and helpers that run statements and fail the test with
 * the statement and its error. Used with cmocka's setup/teardown. */
#ifndef MERIDIAN_TESTS_SQL_FIXTURE_H
#define MERIDIAN_TESTS_SQL_FIXTURE_H

#include "sql/kv_mem.h"
#include "sql/session.h"

/* Rows of a query as "a|b;c|d;" (NULL for SQL NULL). */
typedef struct out {
    char buf[4096];
} out;

typedef struct fx {
    sql_kv_mem *kv;
    sql_session *s;
} fx;

/* sql_exec row callback that appends to an out. */
int collect(void *arg, sql_stmt *st);
/* Runs sql, which must succeed. */
void ok(sql_session *s, const char *sql);
/* Runs a query that must succeed; its rows, in o->buf. */
const char *q(sql_session *s, const char *sql, out *o);
/* Runs sql, which must fail with code (0: any) and a message holding msg
 * (if set). */
void err(sql_session *s, const char *sql, int code, const char *msg);
/* *state = an fx with a fresh KV and one session on it. */
int setup(void **state);
int teardown(void **state);

#endif
