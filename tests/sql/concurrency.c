/* Serializability of concurrent SQL sessions on a real cluster, through
 * libmeridian (one connection per thread):
 *
 *  counters   N sessions each run M read-modify-write increments (SELECT the
 *             value, UPDATE it to value + 1, in an explicit transaction,
 *             retried on retryable errors) on a few counters whose rows
 *             sit in different ranges. Afterwards each counter must equal
 *             the increments that committed: a lost update shows as less.
 *  write-skew Two doctors on call; two sessions each read both rows, wait
 *             until the other has read too, then take their own doctor off
 *             call if the other is still on call, and commit. Serializable:
 *             never both commit (at least one doctor stays on call). Each
 *             doctor's row is in its own range, so the commit is 2PC.
 *
 *   sql_concurrency MERIDIAN_BIN HOSTS [SESSIONS INCREMENTS ROUNDS]
 *
 * Prints one line per check and "N passed, M failed". */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/meridian.h"
#include "tsplit.h"

#define COUNTERS    4
#define MAX_RETRIES 200

static const char *g_hosts;
static int g_pass, g_fail;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "ok" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    ok ? g_pass++ : g_fail++;
}

static meridian *connect_db(void)
{
    char ci[1024];
    snprintf(ci, sizeof(ci), "hosts=%s connect_timeout=30s application_name=concurrency", g_hosts);
    meridian *db = NULL;
    if (meridian_open(ci, &db) != MERIDIAN_OK) {
        fprintf(stderr, "connect: %s\n", meridian_errmsg(db));
        meridian_close(db);
        return NULL;
    }
    return db;
}

static int exec(meridian *db, const char *sql)
{
    char *msg = NULL;
    int rc = meridian_exec(db, sql, NULL, NULL, &msg);
    if (rc) fprintf(stderr, "%s: %s\n", sql, msg ? msg : meridian_errstr(rc));
    meridian_free(msg);
    return rc;
}

/* The first column of the first row as an integer; rc in *rc. */
static int64_t scalar(meridian *db, const char *sql, int64_t arg, int *rc)
{
    meridian_stmt *st = NULL;
    int64_t v = -1;
    *rc = meridian_prepare(db, sql, -1, &st, NULL);
    if (*rc) return -1;
    if (arg >= 0) meridian_bind_int64(st, 1, arg);
    int s = meridian_step(st);
    if (s == MERIDIAN_ROW) {
        v = meridian_column_int64(st, 0);
        s = meridian_step(st);
    }
    *rc = s == MERIDIAN_DONE ? 0 : s;
    meridian_finalize(st);
    return v;
}

static int update(meridian *db, const char *sql, int64_t a, int64_t b)
{
    meridian_stmt *st = NULL;
    int rc = meridian_prepare(db, sql, -1, &st, NULL);
    if (rc) return rc;
    meridian_bind_int64(st, 1, a);
    meridian_bind_int64(st, 2, b);
    rc = meridian_step(st);
    meridian_finalize(st);
    return rc == MERIDIAN_DONE ? 0 : rc;
}

/* ---- counters ---- */

typedef struct incr {
    pthread_t th;
    int idx, increments;
    int committed[COUNTERS], unknown[COUNTERS];
    int retries, failed;
    int64_t which;
} incr;

/* One increment as a read-modify-write: the UPDATE writes the value read,
 * so an increment lost to a concurrent one would show in the total. */
static int incr_txn(meridian *db, void *arg)
{
    incr *w = arg;
    int rc;
    int64_t n = scalar(db, "SELECT n FROM ctr WHERE id = ?1", w->which, &rc);
    if (rc) return rc;
    return update(db, "UPDATE ctr SET n = ?1 WHERE id = ?2", n + 1, w->which);
}

static void *incr_main(void *arg)
{
    incr *w = arg;
    meridian *db = connect_db();
    if (!db) {
        w->failed = w->increments;
        return NULL;
    }
    for (int i = 0; i < w->increments; i++) {
        int c = (w->idx + i) % COUNTERS;
        w->which = c * 10; /* ids 0, 10, 20, 30: one range each */
        int rc = meridian_run_in_txn(db, incr_txn, w, MAX_RETRIES);
        if (rc == MERIDIAN_OK) {
            w->committed[c]++;
        } else if (rc == MERIDIAN_UNAVAILABLE) {
            w->unknown[c]++; /* the commit may or may not have happened */
        } else {
            fprintf(stderr, "increment %d of session %d: %s\n", i, w->idx, meridian_errmsg(db));
            w->failed++;
        }
    }
    meridian_close(db);
    return NULL;
}

static void counters(meridian *db, const char *bin, int sessions, int increments)
{
    int rc = exec(db, "CREATE TABLE ctr(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)") ||
             exec(db, "INSERT INTO ctr VALUES (0, 0), (10, 0), (20, 0), (30, 0)");
    check(rc == 0, "counters: table made");
    int64_t tid = tsplit_table_id(db, "ctr");
    int split = tid >= 0 && !tsplit_at(bin, g_hosts, tid, 5) && !tsplit_at(bin, g_hosts, tid, 15) &&
                !tsplit_at(bin, g_hosts, tid, 25);
    check(split, "counters: each counter in its own range");
    incr *ws = calloc((size_t)sessions, sizeof(*ws));
    for (int i = 0; i < sessions; i++) {
        ws[i].idx = i;
        ws[i].increments = increments;
        pthread_create(&ws[i].th, NULL, incr_main, &ws[i]);
    }
    int committed[COUNTERS] = {0}, unknown[COUNTERS] = {0}, failed = 0;
    for (int i = 0; i < sessions; i++) {
        pthread_join(ws[i].th, NULL);
        for (int c = 0; c < COUNTERS; c++) {
            committed[c] += ws[i].committed[c];
            unknown[c] += ws[i].unknown[c];
        }
        failed += ws[i].failed;
    }
    free(ws);
    check(failed == 0, "counters: every increment committed or was retried to the end (%d gave up)",
          failed);
    int64_t total = 0;
    for (int c = 0; c < COUNTERS; c++) {
        int64_t n = scalar(db, "SELECT n FROM ctr WHERE id = ?1", c * 10, &rc);
        total += n;
        check(rc == 0 && n >= committed[c] && n <= committed[c] + unknown[c],
              "counters: counter %d = %" PRId64 ", committed increments %d (+%d unknown)", c, n,
              committed[c], unknown[c]);
    }
    printf("info: %d sessions x %d increments, %" PRId64 " counted\n", sessions, increments, total);
}

/* ---- write skew ---- */

typedef struct doctor {
    pthread_t th;
    int id;
    pthread_barrier_t *read_both;
    int committed, saw_other;
    char err[256];
} doctor;

static void *doctor_main(void *arg)
{
    doctor *d = arg;
    meridian *db = connect_db();
    int rc = db ? exec(db, "BEGIN") : -1;
    int on_call = -1;
    if (!rc) on_call = (int)scalar(db, "SELECT count(*) FROM doctors WHERE on_call = 1", -1, &rc);
    /* Both have read both rows before either writes: the interleaving that
     * lets both go off call under snapshot isolation. Wait even after an
     * error, or the other session waits forever. */
    pthread_barrier_wait(d->read_both);
    if (!rc && on_call == 2) {
        d->saw_other = 1;
        rc = update(db, "UPDATE doctors SET on_call = ?1 WHERE id = ?2", 0, d->id);
    }
    if (!rc) rc = exec(db, "COMMIT");
    if (rc == 0 && d->saw_other) d->committed = 1;
    if (rc && db) {
        snprintf(d->err, sizeof(d->err), "%s", meridian_errmsg(db));
        meridian_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    meridian_close(db);
    return NULL;
}

static void write_skew(meridian *db, const char *bin, int rounds)
{
    int rc = exec(db, "CREATE TABLE doctors(id INTEGER PRIMARY KEY, on_call INTEGER NOT NULL)");
    int64_t tid = tsplit_table_id(db, "doctors");
    check(!rc && tid >= 0 && !tsplit_at(bin, g_hosts, tid, 2),
          "write-skew: doctors 1 and 2 in different ranges");
    int both = 0, one = 0, none = 0;
    for (int r = 0; r < rounds; r++) {
        if (exec(db, "INSERT OR REPLACE INTO doctors VALUES (1, 1), (2, 1)")) {
            check(0, "write-skew: reset round %d", r);
            return;
        }
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 2);
        doctor d[2] = {{.id = 1, .read_both = &bar}, {.id = 2, .read_both = &bar}};
        for (int i = 0; i < 2; i++) pthread_create(&d[i].th, NULL, doctor_main, &d[i]);
        for (int i = 0; i < 2; i++) pthread_join(d[i].th, NULL);
        pthread_barrier_destroy(&bar);
        int64_t left = scalar(db, "SELECT count(*) FROM doctors WHERE on_call = 1", -1, &rc);
        int n = d[0].committed + d[1].committed;
        both += n == 2;
        one += n == 1;
        none += n == 0;
        check(rc == 0 && n < 2 && left >= 1 && left == 2 - n,
              "write-skew round %d: %d of 2 went off call, %" PRId64 " still on call%s%s", r, n,
              left, d[0].err[0] || d[1].err[0] ? "; aborted: " : "",
              d[0].err[0] ? d[0].err : d[1].err);
    }
    check(both == 0, "write-skew: never both committed (%d rounds: one %d, none %d)", rounds, one,
          none);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MERIDIAN_BIN HOSTS [SESSIONS INCREMENTS ROUNDS]\n", argv[0]);
        return 2;
    }
    g_hosts = argv[2];
    int sessions = argc > 3 ? atoi(argv[3]) : 6, increments = argc > 4 ? atoi(argv[4]) : 10;
    int rounds = argc > 5 ? atoi(argv[5]) : 10;
    meridian *db = connect_db();
    if (!db) return 1;
    counters(db, argv[1], sessions, increments);
    write_skew(db, argv[1], rounds);
    meridian_close(db);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
