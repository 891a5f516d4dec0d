/* SQL conformance on a real cluster whose tables span many ranges: every
 * script of tests/sql/scripts runs statement by statement against SQLite (the
 * oracle) and against a Meridian cluster through libmeridian; results must
 * be identical (diff.h). After each CREATE TABLE the new table's key space
 * is split at row-key boundaries (`meridian debug split --key`, run in the
 * background while the statements go on, a few at a time), so scans,
 * joins, index lookups and writes cross ranges, commit through 2PC and
 * meet ranges splitting under them; the caller may also set a small
 * range.max_bytes so the placement driver splits as rows arrive.
 *
 *   sql_conform_cluster MERIDIAN_BIN HOSTS SCRIPT_DIR [SPLITS_PER_TABLE]
 *
 * Prints "N scripts, M statements compared, S splits" and exits 0 when
 * nothing differed. Between scripts it drops what the script left, so
 * each starts from an empty schema as in the oracle. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#include "diff.h"
#include "include/meridian.h"
#include "tsplit.h"
/* Row keys to split each table at: small ints sit between the rows the
 * scripts insert, so most multi-row tables end up in several ranges. */
static const int64_t split_at[] = {3, 6, 20, 150};

#define MAX_TXN_STMTS 64

typedef struct cluster {
    const char *bin, *hosts;
    meridian *db;
    int splits_per_table;
    size_t splits, split_failures, retries;
    int running;              /* `debug split` processes not yet reaped */
    char *txn[MAX_TXN_STMTS]; /* the open transaction's statements, BEGIN first */
    int txn_failed[MAX_TXN_STMTS];
    size_t ntxn;
} cluster;

#define MAX_RUNNING_SPLITS 3

/* Reaps finished splits; with block, waits for at least one. */
static void reap(cluster *c, int block)
{
    int status;
    pid_t pid;
    while (c->running > 0 && (pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0) {
        c->running--;
        block = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            c->splits++;
        else
            c->split_failures++;
    }
}

static void run_once(cluster *c, const char *sql, diff_rows *r)
{
    meridian_stmt *st = NULL;
    if (meridian_prepare(c->db, sql, -1, &st, NULL) != MERIDIAN_OK) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", meridian_errmsg(c->db));
        return;
    }
    if (!st) return;
    int rc;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (int i = 0; i < meridian_column_count(st); i++) {
            if (i) fputs(" | ", f);
            /* libmeridian's type codes are SQLite's. */
            int t = meridian_column_type(st, i);
            const void *p = t == MERIDIAN_TEXT   ? (const void *)meridian_column_text(st, i)
                            : t == MERIDIAN_BLOB ? meridian_column_blob(st, i)
                                                 : NULL;
            diff_render(f, t, t == MERIDIAN_INTEGER ? meridian_column_int64(st, i) : 0,
                        t == MERIDIAN_FLOAT ? meridian_column_double(st, i) : 0, p,
                        p ? meridian_column_bytes(st, i) : 0);
        }
        fclose(f);
        diff_rows_add(r, buf);
    }
    if (rc != MERIDIAN_DONE) {
        r->failed = 1;
        snprintf(r->err, sizeof(r->err), "%s", meridian_errmsg(c->db));
        for (size_t i = 0; i < r->n; i++) free(r->rows[i]);
        r->n = 0;
    }
    meridian_finalize(st);
}

static void rows_clear(diff_rows *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->rows[i]);
    free(r->rows);
    memset(r, 0, sizeof(*r));
}

/* Replays the open transaction's statements (from its BEGIN) after a
 * retryable abort, as a client retries a whole transaction; 0 when every
 * one ran as the first time (their results were compared then). */
static int replay(cluster *c)
{
    meridian_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < c->ntxn; i++) {
        diff_rows r = {0};
        run_once(c, c->txn[i], &r);
        int failed = r.failed;
        rows_clear(&r);
        if (failed != c->txn_failed[i]) return -1;
    }
    return 0;
}

#define MAX_TRIES 12

/* A retryable failure (a lost conflict, locks gone with a lease while a
 * range split, a participant's lock table draining for a split) changed
 * nothing: the client runs the statement again, or, inside BEGIN, the
 * whole transaction so far and then the statement (docs/client.md), after
 * an exponential backoff as meridian_run_txn does: a split takes seconds
 * on a loaded machine, and retrying at once only meets the same split.
 * Retries are counted. */
static void run_remote(cluster *c, const char *sql, diff_rows *r)
{
    int in_txn = meridian_txn_state(c->db) == MERIDIAN_TXN_OPEN;
    for (int tries = 0;; tries++) {
        run_once(c, sql, r);
        if (!r->failed || tries == MAX_TRIES || !meridian_error_retryable(c->db)) break;
        c->retries++;
        rows_clear(r);
        long ms = 10L << (tries < 7 ? tries : 7); /* 10 ms .. 1.28 s */
        nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
        if (in_txn && replay(c)) {
            snprintf(r->err, sizeof(r->err), "replaying the transaction after an abort diverged");
            r->failed = 1;
            return;
        }
    }
    /* Keep the open transaction's statements for a replay. */
    if (meridian_txn_state(c->db) != MERIDIAN_TXN_OPEN) {
        for (size_t i = 0; i < c->ntxn; i++) free(c->txn[i]);
        c->ntxn = 0;
    } else if (c->ntxn < MAX_TXN_STMTS) {
        c->txn_failed[c->ntxn] = r->failed;
        c->txn[c->ntxn++] = strdup(sql);
    }
}

/* "CREATE TABLE [IF NOT EXISTS] name ..." -> name (unquoted), or 0. */
static int created_table(const char *sql, char *name, size_t cap)
{
    while (*sql == ' ' || *sql == '\n') sql++;
    if (strncasecmp(sql, "CREATE TABLE ", 13)) return 0;
    sql += 13;
    if (!strncasecmp(sql, "IF NOT EXISTS ", 14)) sql += 14;
    size_t n = 0;
    if (*sql == '"') sql++;
    while (sql[n] && !strchr(" (\"\n;", sql[n]) && n + 1 < cap) n++;
    memcpy(name, sql, n);
    name[n] = 0;
    return n > 0;
}

/* Runs the statement; after a CREATE TABLE that worked (outside BEGIN, so
 * the catalog has the table id), splits the new table. */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Statements slower than this are named on stdout (where the time goes). */
#define SLOW_S 2.0

static void run_and_split(void *arg, const char *sql, diff_rows *r)
{
    cluster *c = arg;
    double t0 = now_s();
    reap(c, 0);
    /* Splits finish before a transaction starts: a split under a
     * transaction's locks aborts it (retried, but each retry costs). */
    const char *p = sql;
    while (*p == ' ' || *p == '\n') p++;
    if (!strncasecmp(p, "BEGIN", 5))
        while (c->running > 0) reap(c, 1);
    run_remote(c, sql, r);
    double took = now_s() - t0;
    if (took > SLOW_S) printf("slow: %.1f s: %.100s\n", took, sql);
    char name[128];
    if (r->failed || !created_table(sql, name, sizeof(name)) ||
        meridian_txn_state(c->db) != MERIDIAN_TXN_IDLE)
        return;
    int64_t tid = tsplit_table_id(c->db, name);
    if (tid < 0) return;
    int n = c->splits_per_table;
    if (n > (int)(sizeof(split_at) / sizeof(split_at[0])))
        n = (int)(sizeof(split_at) / sizeof(split_at[0]));
    for (int i = 0; i < n; i++) {
        while (c->running >= MAX_RUNNING_SPLITS) reap(c, 1);
        if (tsplit_start(c->bin, c->hosts, tid, split_at[i]) > 0)
            c->running++;
        else
            c->split_failures++;
    }
}

/* Drops what a script left on both sides (views first). */
static int drop_all(diff_ctx *d, cluster *c)
{
    sqlite3_stmt *st = NULL;
    const char *q = "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') AND "
                    "name NOT LIKE 'sqlite_%' ORDER BY type = 'table'";
    if (sqlite3_prepare_v2(d->oracle, q, -1, &st, NULL) != SQLITE_OK) return -1;
    char *names[512];
    int views[512], n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 512) {
        views[n] = !strcmp((const char *)sqlite3_column_text(st, 0), "view");
        names[n++] = strdup((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    int bad = 0;
    meridian_exec(c->db, "ROLLBACK", NULL, NULL, NULL); /* a script may end inside BEGIN */
    for (size_t i = 0; i < c->ntxn; i++) free(c->txn[i]);
    c->ntxn = 0;
    sqlite3_exec(d->oracle, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < n; i++) {
        char sql[256];
        snprintf(sql, sizeof(sql), "DROP %s \"%s\"", views[i] ? "VIEW" : "TABLE", names[i]);
        if (diff_run(d, sql)) bad++;
        free(names[i]);
    }
    return bad;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MERIDIAN_BIN HOSTS SCRIPT_DIR [SPLITS_PER_TABLE]\n", argv[0]);
        return 2;
    }
    cluster c = {.bin = argv[1], .hosts = argv[2], .splits_per_table = 3};
    if (argc > 4) c.splits_per_table = atoi(argv[4]);
    char ci[1024];
    snprintf(ci, sizeof(ci), "hosts=%s connect_timeout=30s application_name=conform", c.hosts);
    if (meridian_open(ci, &c.db) != MERIDIAN_OK) {
        fprintf(stderr, "connect %s: %s\n", c.hosts, meridian_errmsg(c.db));
        return 1;
    }
    DIR *dir = opendir(argv[3]);
    if (!dir) {
        fprintf(stderr, "%s: cannot open\n", argv[3]);
        return 1;
    }
    char *names[256];
    size_t nn = 0, nstmt = 0;
    struct dirent *de;
    while ((de = readdir(dir)) && nn < 256) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".sql") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, nn, sizeof(char *), cmp_names);
    int failures = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", argv[3], names[i]);
        diff_ctx d;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        size_t splits0 = c.splits;
        if (diff_open_side(&d, run_and_split, &c)) return 1;
        int f = diff_run_script(&d, path);
        if (f < 0) {
            fprintf(stderr, "%s: cannot read\n", path);
            f = 1;
        }
        f += drop_all(&d, &c);
        if (f) fprintf(stderr, "%s: %d mismatches\n", names[i], f);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%s: %zu statements, %zu splits, %.1f s\n", names[i], d.statements,
               c.splits - splits0,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        fflush(stdout);
        failures += f;
        nstmt += d.statements;
        diff_close(&d);
        free(names[i]);
    }
    while (c.running > 0) reap(&c, 1);
    meridian_close(c.db);
    printf("%zu scripts, %zu statements compared, %zu splits (%zu failed), %zu retried, %d "
           "mismatches\n",
           nn, nstmt, c.splits, c.split_failures, c.retries, failures);
    return failures || !nn ? 1 : 0;
}
