/* Differential testing of Meridian's SQL layer against SQLite itself: the
 * same statements run on a plain in-memory SQLite database (the oracle) and
 * on a Meridian session over the in-memory KV; results must be identical. */
#ifndef MERIDIAN_TESTS_SQL_DIFF_H
#define MERIDIAN_TESTS_SQL_DIFF_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sql/kv_mem.h"
#include "sql/session.h"

/* One side's result: rows rendered as typed text, or an error. */
typedef struct diff_rows {
    int failed;
    char err[512];
    char **rows;
    size_t n, cap;
} diff_rows;

/* A Meridian side other than the in-process session (a real cluster through
 * libmeridian): runs sql and fills r (diff_rows_add, diff_render). */
typedef void (*diff_side_fn)(void *arg, const char *sql, diff_rows *r);

typedef struct diff_ctx {
    sqlite3 *oracle;
    diff_side_fn side; /* NULL: the in-process session s */
    void *side_arg;
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
/* The oracle against side(side_arg, ...) instead of a kv_mem session. */
int diff_open_side(diff_ctx *d, diff_side_fn side, void *side_arg);
void diff_close(diff_ctx *d);
/* Runs one statement on both sides. Returns 0 if they agree; otherwise
 * prints both results and returns -1. Rows are compared in order when the
 * statement has a top-level ORDER BY, sorted otherwise. */
int diff_run(diff_ctx *d, const char *sql);
/* Runs a script file statement by statement (a statement ends at a line
 * ending in ';'; lines starting with "--" are comments). Returns the number
 * of mismatches, or -1 if the file cannot be read. */
int diff_run_script(diff_ctx *d, const char *path);

/* Renders one value as typed text ("i:5", "r:2.5", "t:abc", "b:00ff", "n")
 * to f; type is SQLITE_INTEGER etc. */
void diff_render(FILE *f, int type, int64_t i, double r, const void *p, int n);
/* Appends a rendered row (takes ownership of row, a malloc'd string). */
void diff_rows_add(diff_rows *r, char *row);

#endif
