/* The differential harness (diff.h): renders every result row as typed text
 * ("i:5", "r:2.5", "t:abc", "b:00ff", "n") and compares the two sides. */
#include "diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef diff_rows result;

static void res_free(result *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->rows[i]);
    free(r->rows);
    memset(r, 0, sizeof(*r));
}

void diff_render(FILE *f, int type, int64_t i, double r, const void *p, int n)
{
    switch (type) {
    case SQLITE_INTEGER: fprintf(f, "i:%lld", (long long)i); break;
    case SQLITE_FLOAT: fprintf(f, "r:%.17g", r); break;
    case SQLITE_TEXT: fprintf(f, "t:%.*s", n, (const char *)p); break;
    case SQLITE_BLOB:
        fprintf(f, "b:");
        for (int k = 0; k < n; k++) fprintf(f, "%02x", ((const unsigned char *)p)[k]);
        break;
    default: fprintf(f, "n");
    }
}

static void render_value(sqlite3_value *v, FILE *f)
{
    /* Only the accessor of the value's own type: others may convert it. */
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: diff_render(f, SQLITE_INTEGER, sqlite3_value_int64(v), 0, NULL, 0); break;
    case SQLITE_FLOAT: diff_render(f, SQLITE_FLOAT, 0, sqlite3_value_double(v), NULL, 0); break;
    case SQLITE_TEXT: {
        const unsigned char *p = sqlite3_value_text(v);
        diff_render(f, SQLITE_TEXT, 0, 0, p, sqlite3_value_bytes(v));
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_value_blob(v);
        diff_render(f, SQLITE_BLOB, 0, 0, p, sqlite3_value_bytes(v));
        break;
    }
    default: diff_render(f, SQLITE_NULL, 0, 0, NULL, 0);
    }
}

void diff_rows_add(diff_rows *r, char *row)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->rows = realloc(r->rows, r->cap * sizeof(char *));
    }
    r->rows[r->n++] = row;
}

static void add_row(result *r, int ncol, sqlite3_value *(*col)(void *, int), void *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (int i = 0; i < ncol; i++) {
        if (i) fputs(" | ", f);
        render_value(col(st, i), f);
    }
    fclose(f);
    diff_rows_add(r, buf);
}

static sqlite3_value *oracle_col(void *st, int i)
{
    return sqlite3_column_value(st, i);
}

static sqlite3_value *meridian_col(void *st, int i)
{
    return sql_column_value(st, i);
}

static void run_oracle(sqlite3 *db, const char *sql, result *r)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", sqlite3_errmsg(db));
        return;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        add_row(r, sqlite3_column_count(st), oracle_col, st);
    if (rc != SQLITE_DONE) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", sqlite3_errmsg(db));
        for (size_t i = 0; i < r->n; i++) free(r->rows[i]);
        r->n = 0;
    }
    sqlite3_finalize(st);
}

static void run_meridian(sql_session *s, const char *sql, result *r)
{
    sql_stmt *st = NULL;
    merr e = {0};
    int rc = sql_prepare(s, sql, &st, NULL, &e);
    if (rc) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", merr_msg(&e));
        return;
    }
    if (!st) return;
    while ((rc = sql_step(st, &e)) == 1) add_row(r, sql_column_count(st), meridian_col, st);
    if (rc < 0) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", merr_msg(&e));
        for (size_t i = 0; i < r->n; i++) free(r->rows[i]);
        r->n = 0;
    }
    if (sql_finalize(st, &e) && !r->failed) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", merr_msg(&e));
    }
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A top-level ORDER BY (outside parentheses) fixes the row order. */
static int has_order_by(const char *sql)
{
    int depth = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '(') depth++;
        if (*p == ')') depth--;
        if (*p == '\'') {
            p = strchr(p + 1, '\'');
            if (!p) return 0;
            continue;
        }
        if (depth == 0 && strncasecmp(p, "ORDER BY", 8) == 0) return 1;
    }
    return 0;
}

int diff_open(diff_ctx *d)
{
    memset(d, 0, sizeof(*d));
    merr e = {0};
    if (sqlite3_open(":memory:", &d->oracle) != SQLITE_OK) return -1;
    sqlite3_db_config(d->oracle, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config(d->oracle, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    if (sql_kv_mem_open(&d->kv)) return -1;
    if (sql_session_open(&sql_kv_mem_ops, d->kv, &d->s, &e)) {
        fprintf(stderr, "session: %s\n", merr_msg(&e));
        return -1;
    }
    return 0;
}

int diff_open_side(diff_ctx *d, diff_side_fn side, void *side_arg)
{
    memset(d, 0, sizeof(*d));
    if (sqlite3_open(":memory:", &d->oracle) != SQLITE_OK) return -1;
    sqlite3_db_config(d->oracle, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config(d->oracle, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    d->side = side;
    d->side_arg = side_arg;
    return 0;
}

void diff_close(diff_ctx *d)
{
    if (d->s) sql_session_close(d->s);
    if (d->kv) sql_kv_mem_close(d->kv);
    sqlite3_close(d->oracle);
    memset(d, 0, sizeof(*d));
}

int diff_run(diff_ctx *d, const char *sql)
{
    result a = {0}, b = {0};
    int bad = 0;
    if (getenv("SQL_TRACE")) fprintf(stderr, "%s;\n", sql);
    run_oracle(d->oracle, sql, &a);
    if (d->side)
        d->side(d->side_arg, sql, &b);
    else
        run_meridian(d->s, sql, &b);
    d->statements++;
    d->rows += a.n;
    if (a.failed != b.failed || (a.failed && !d->unordered && strcmp(a.err, b.err) != 0)) {
        bad = 1;
    } else if (!a.failed) {
        if (d->unordered || !has_order_by(sql)) {
            if (a.n > 1) qsort(a.rows, a.n, sizeof(char *), cmpstr);
            if (b.n > 1) qsort(b.rows, b.n, sizeof(char *), cmpstr);
        }
        bad = a.n != b.n;
        for (size_t i = 0; !bad && i < a.n; i++) bad = strcmp(a.rows[i], b.rows[i]) != 0;
    }
    if (bad) {
        fprintf(stderr, "MISMATCH at %s\n  sql: %s\n", d->where, sql);
        fprintf(stderr, "  sqlite:   %s%s (%zu rows)\n", a.failed ? "error: " : "ok", a.err, a.n);
        for (size_t i = 0; i < a.n && i < 30; i++) fprintf(stderr, "    %s\n", a.rows[i]);
        fprintf(stderr, "  meridian: %s%s (%zu rows)\n", b.failed ? "error: " : "ok", b.err, b.n);
        for (size_t i = 0; i < b.n && i < 30; i++) fprintf(stderr, "    %s\n", b.rows[i]);
    }
    res_free(&a);
    res_free(&b);
    return bad ? -1 : 0;
}

int diff_run_script(diff_ctx *d, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    char *stmt = NULL;
    size_t len = 0, lineno = 0, start = 0;
    int failures = 0;
    if (!f) return -1;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (strncmp(line, "--", 2) == 0) continue;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == ' ' || line[n - 1] == '\r')) n--;
        if (!n && !len) continue;
        if (!len) start = lineno;
        stmt = realloc(stmt, len + n + 2);
        memcpy(stmt + len, line, n);
        len += n;
        stmt[len++] = '\n';
        stmt[len] = 0;
        if (n && line[n - 1] == ';') {
            snprintf(d->where, sizeof(d->where), "%s:%zu", path, start);
            if (diff_run(d, stmt)) failures++;
            len = 0;
        }
    }
    free(stmt);
    fclose(f);
    return failures;
}
