/* Differential testing of Meridian's SQL layer against SQLite itself: the
 * same statements run on a plain in-memory SQLite database (the oracle) and
 * on a Meridian session over the in-memory KV; results must be identical. */
#ifndef MERIDIAN_TESTS_SQL_DIFF_H
#define MERIDIAN_TESTS_SQL_DIFF_H

#include <sqlite3.h>
#include <stddef.h>

#include "sql/kv_mem.h"
#include "sql/session.h"

typedef struct diff_ctx {
    sqlite3 *oracle;
    sql_kv_mem *kv;
    sql_session *s;
    size_t statements, rows;
    char where[1200]; /* prefix for failure messages (file:line or seed) */
    int unordered;    /* compare every result as a multiset (ties in ORDER BY
                       * between SQL-equal values like 4 and 4.0 may go either way)
                       * and accept any error message when both sides fail (which
                       * row of an UPDATE conflicts first depends on the plan) */
} diff_ctx;

int diff_open(diff_ctx *d);
void diff_close(diff_ctx *d);
/* Runs one statement on both sides. Returns 0 if they agree; otherwise
 * prints both results and returns -1. Rows are compared in order when the
 * statement has a top-level ORDER BY, sorted otherwise. */
int diff_run(diff_ctx *d, const char *sql);

#endif
