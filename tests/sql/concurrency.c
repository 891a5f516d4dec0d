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
 *  backfill   CREATE INDEX on a populated table spread over ranges while
 *             sessions insert and update rows; writes go on after it too.
 *             Then a scan through the index must give exactly what a
 *             scan of the table gives. The backfill is online: a third
 *             session sees the index write-only, counts the writes that
 *             commit until it sees it write-only again, then opens the
 *             nodes' backfill gate (MERIDIAN_TESTING_BACKFILL_GATE, a file
 *             the backfill waits for), so writes provably committed
 *             during the backfill without racing it.
 *
 *   sql_concurrency MERIDIAN_BIN HOSTS [SESSIONS INCREMENTS ROUNDS]
 *
 * Prints one line per check and "N passed, M failed". */
#include <inttypes.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- CREATE INDEX with concurrent writes ---- */

#define BF_ROWS 1000

typedef struct bfw {
    pthread_t th;
    int idx;
    atomic_int *stop;
    atomic_int committed;
    int failed;
} bfw;

/* Runs one autocommit write, retrying lost conflicts. */
static int write_retry(meridian *db, const char *sql, int64_t a, int64_t b)
{
    int rc = 0;
    for (int t = 0; t < MAX_RETRIES; t++) {
        rc = update(db, sql, a, b);
        if (rc == 0 || !meridian_error_retryable(db)) break;
    }
    return rc;
}

static void *bf_writer(void *arg)
{
    bfw *w = arg;
    meridian *db = connect_db();
    if (!db) {
        w->failed++;
        return NULL;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->idx + 1);
    for (int64_t n = 0; !atomic_load(w->stop); n++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int rc;
        if (n % 2 == 0) /* new rows above the loaded ones, one stride per writer */
            rc = write_retry(db, "INSERT INTO bf(id, k) VALUES (?1, ?2)",
                             BF_ROWS + 1 + n * 2 + w->idx, (int64_t)(rng % 1000));
        else /* move an existing row to another k: its index entry moves */
            rc = write_retry(db, "UPDATE bf SET k = ?1 WHERE id = ?2", (int64_t)(rng % 1000),
                             1 + (int64_t)(rng >> 20) % BF_ROWS);
        if (rc) {
            fprintf(stderr, "backfill writer %d: %s\n", w->idx, meridian_errmsg(db));
            w->failed++;
        } else {
            atomic_fetch_add(&w->committed, 1);
        }
    }
    meridian_close(db);
    return NULL;
}

static int total_writes(bfw *w, int n)
{
    int t = 0;
    for (int i = 0; i < n; i++) t += atomic_load(&w[i].committed);
    return t;
}

/* Polls until the writers have done `want` more writes than `from` (the
 * hang guard is generous: the machine may be slow, never wrong). */
static int wait_writes(bfw *w, int n, int from, int want)
{
    for (int i = 0; i < 6000; i++) {
        if (total_writes(w, n) >= from + want) return 1;
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    return 0;
}

/* All rows of a query rendered as "a|b;..." (NULL on error). */
static char *rows_of(meridian *db, const char *sql)
{
    meridian_stmt *st = NULL;
    if (meridian_prepare(db, sql, -1, &st, NULL) != MERIDIAN_OK) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW) {
        for (int i = 0; i < meridian_column_count(st); i++) {
            const char *t = meridian_column_text(st, i);
            fprintf(f, "%s%s", i ? "|" : "", t ? t : "NULL");
        }
        fputc(';', f);
    }
    fclose(f);
    meridian_finalize(st);
    if (rc != MERIDIAN_DONE) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The third session: watches bf_k's state while CREATE INDEX runs. */
typedef struct bfo {
    bfw *w;
    const char *gate;
    int seen;   /* saw write-only twice, writes committed in between */
    int writes; /* ... that many */
} bfo;

static int bf_state_is(meridian *db, const char *want)
{
    char *r = rows_of(db, "SELECT state FROM meridian_indexes WHERE name = 'bf_k'");
    char expect[32];
    snprintf(expect, sizeof(expect), "%s;", want);
    int is = r && strcmp(r, expect) == 0;
    free(r);
    return is;
}

static void *bf_observer(void *arg)
{
    bfo *o = arg;
    meridian *db = connect_db();
    int wo = 0;
    for (int i = 0; db && i < 6000 && !(wo = bf_state_is(db, "write-only")); i++)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    int from = total_writes(o->w, 2);
    if (wo && wait_writes(o->w, 2, from, 10) && bf_state_is(db, "write-only")) {
        o->seen = 1;
        o->writes = total_writes(o->w, 2) - from;
    }
    FILE *f = fopen(o->gate, "w"); /* whatever happened: let the backfill go on */
    if (f) fclose(f);
    meridian_close(db);
    return NULL;
}

static void backfill(meridian *db, const char *bin)
{
    char sql[256];
    int rc = exec(db, "CREATE TABLE bf(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
    snprintf(sql, sizeof(sql),
             "INSERT INTO bf SELECT x, x %% 97, 'row' FROM (WITH RECURSIVE c(x) AS (SELECT 1 "
             "UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT x FROM c)",
             BF_ROWS);
    if (!rc) rc = exec(db, sql);
    int64_t tid = tsplit_table_id(db, "bf");
    int split = tid >= 0;
    for (int at = BF_ROWS / 4; split && at < BF_ROWS; at += BF_ROWS / 4)
        split = !tsplit_at(bin, g_hosts, tid, at);
    check(!rc && split, "backfill: %d rows over four ranges", BF_ROWS);
    atomic_int stop = 0;
    bfw w[2];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 2; i++) {
        w[i].idx = i;
        w[i].stop = &stop;
        pthread_create(&w[i].th, NULL, bf_writer, &w[i]);
    }
    check(wait_writes(w, 2, 0, 10), "backfill: writers running before CREATE INDEX");
    int before = total_writes(w, 2);
    const char *gate = getenv("MERIDIAN_TESTING_BACKFILL_GATE");
    bfo obs = {w, gate, 0, 0};
    pthread_t oth;
    if (gate) pthread_create(&oth, NULL, bf_observer, &obs);
    rc = -1;
    for (int t = 0; t < MAX_RETRIES && rc; t++) {
        rc = exec(db, "CREATE INDEX bf_k ON bf(k)");
        if (rc && !meridian_error_retryable(db)) break;
    }
    int during = total_writes(w, 2) - before;
    check(rc == 0, "backfill: CREATE INDEX while writing (%d writes committed meanwhile)", during);
    if (gate) {
        pthread_join(oth, NULL);
        check(obs.seen, "backfill: %d writes committed while bf_k was write-only (online)",
              obs.writes);
    } else {
        printf("info: no MERIDIAN_TESTING_BACKFILL_GATE: online progress not checked\n");
    }
    /* Writes after the index exists must maintain it. */
    check(wait_writes(w, 2, total_writes(w, 2), 20), "backfill: writers go on after it");
    atomic_store(&stop, 1);
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i].th, NULL);
        failed += w[i].failed;
    }
    check(failed == 0, "backfill: every write committed (%d failed)", failed);
    /* The planner picks the index for k, and the table scan for +k. */
    char *plan = rows_of(db, "EXPLAIN QUERY PLAN SELECT id, k FROM bf WHERE k BETWEEN -1 AND 1000");
    char *tplan =
        rows_of(db, "EXPLAIN QUERY PLAN SELECT id, k FROM bf WHERE +k BETWEEN -1 AND 1000");
    check(plan && tplan && strcmp(plan, tplan) != 0,
          "backfill: k is looked up through the index (%s), +k scans the table (%s)",
          plan ? plan : "no plan", tplan ? tplan : "no plan");
    free(plan);
    free(tplan);
    char *via_index = rows_of(db, "SELECT id, k FROM bf WHERE k BETWEEN -1 AND 1000 ORDER BY id");
    char *via_table = rows_of(db, "SELECT id, k FROM bf WHERE +k BETWEEN -1 AND 1000 ORDER BY id");
    int n = (int)scalar(db, "SELECT count(*) FROM bf", -1, &rc);
    int entries = 0;
    for (const char *p = via_index; p && *p; p++) entries += *p == ';';
    check(via_index && via_table && !strcmp(via_index, via_table) && entries == n && n > BF_ROWS,
          "backfill: index == table (%d rows, %d through the index)", n, entries);
    free(via_index);
    free(via_table);
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
    /* "no-backfill" skips the slowest scenario when iterating by hand. */
    if (argc <= 6 || strcmp(argv[6], "no-backfill"))
        backfill(db, argv[1]);
    else
        printf("info: backfill skipped (no-backfill)\n");
    meridian_close(db);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
