/* libFuzzer target: the SQL path of one in-process session (sql/session.h)
 * over the in-memory KV (sql/kv_mem.h). The input is SQL text, run after a
 * small fixed schema (a table with a secondary index and a few rows) so that
 * mutated queries reach the virtual tables. Budgets keep every input fast: a
 * statement deadline (sql_session_set_deadline counts VM step callbacks), a
 * cap on statements per input and on rows per statement, and a SQLite heap
 * limit so zeroblob(1e9) is an error, not an OOM report. Bad SQL must come
 * back as an error code with a message, never a crash, hang, leak or
 * sanitizer report. Dictionary: tests/fuzz/fuzz_sql.dict. Seeds:
 * tests/fuzz/corpus/fuzz_sql/. */
#include "sql/kv_mem.h"
#include "sql/session.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TICKS      64 /* deadline callbacks (each a few thousand VM steps) */
#define MAX_STATEMENTS 32
#define MAX_ROWS       2000

static const char setup[] =
    "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);"
    "CREATE INDEX t_b ON t(b);"
    "CREATE TABLE u(k TEXT PRIMARY KEY, v BLOB);"
    "INSERT INTO t VALUES (1, 'one', 1.5), (2, 'two', NULL), (3, NULL, -0.0);"
    "INSERT INTO u VALUES ('x', x'00ff'), ('y', NULL);";

typedef struct budget {
    int ticks;
    size_t rows;
} budget;

static int expired(void *arg)
{
    budget *b = arg;
    return ++b->ticks > MAX_TICKS;
}

static int known_error(int rc)
{
    return rc == MERR_INVALID || rc == MERR_UNSUPPORTED || rc == MERR_ABORTED ||
           rc == MERR_TIMEOUT || rc == MERR_NOMEM || rc == MERR_TOOBIG || rc == MERR_CANCELED ||
           rc == MERR_CORRUPT || rc == MERR_NOTFOUND || rc == MERR_EXISTS || rc == MERR_BUSY ||
           rc == MERR_RANGE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        once = 1;
        sqlite3_hard_heap_limit64(64 << 20);
    }
    if (size > 4096) return 0;
    char *sql = malloc(size + 1);
    if (!sql) return 0;
    memcpy(sql, data, size);
    sql[size] = 0;

    sql_kv_mem *kv = NULL;
    sql_session *s = NULL;
    merr e = {0};
    if (sql_kv_mem_open(&kv)) abort();
    if (sql_session_open(&sql_kv_mem_ops, kv, &s, &e)) abort();
    budget b = {0, 0};
    if (sql_exec(s, setup, NULL, NULL, &e)) abort(); /* the fixed schema must work */
    sql_session_set_deadline(s, expired, &b);

    const char *p = sql;
    for (int n = 0; n < MAX_STATEMENTS && p && *p; n++) {
        sql_stmt *st = NULL;
        const char *tail = NULL;
        memset(&e, 0, sizeof e);
        b.ticks = 0;
        int rc = sql_prepare(s, p, &st, &tail, &e);
        if (rc) {
            if (!known_error(rc) || !e.msg[0]) abort();
            break; /* as sql_exec: stop at the first error */
        }
        if (tail == p) break; /* no progress */
        p = tail;
        if (!st) continue;
        size_t rows = 0;
        int src;
        while ((src = sql_step(st, &e)) == 1 && ++rows < MAX_ROWS) {
            int nc = sql_column_count(st);
            for (int i = 0; i < nc; i++) {
                (void)sql_column_name(st, i);
                switch (sql_column_type(st, i)) {
                case SQLITE_TEXT: (void)strlen((const char *)sql_column_text(st, i)); break;
                case SQLITE_BLOB: {
                    const uint8_t *bl = sql_column_blob(st, i);
                    int bn = sql_column_bytes(st, i);
                    if (bn > 0 && bl) (void)bl[bn - 1];
                    break;
                }
                default: (void)sql_column_int64(st, i); break;
                }
            }
        }
        if (src < 0 && (!known_error(src) || !e.msg[0])) abort();
        merr fe = {0};
        int frc = sql_finalize(st, &fe);
        if (frc && !known_error(frc)) abort();
        if (src < 0) break;
    }
    sql_session_close(s);
    sql_kv_mem_close(kv);
    free(sql);
    return 0;
}
