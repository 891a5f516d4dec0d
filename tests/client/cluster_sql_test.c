/* Statement limits on a real cluster, through libmeridian as users call it
 * (cluster_sql_test.sh starts and stops the nodes):
 *
 *   timeout HOST     statement_timeout cuts a recursive CTE and a big join
 *                    over a table with a clear error; the session goes on
 *   interrupt HOST   meridian_interrupt from another thread cancels a
 *                    running statement (seen running in meridian_sessions)
 *   lockwait HOST [WATCH]  ... and one whose commit waits for a lock held
 *                    by an older transaction (seen waiting in
 *                    meridian_transactions through gateway WATCH, another
 *                    node: the view is cluster-wide): the waiter is
 *                    released, the older transaction commits, the canceled
 *                    write is gone
 *   scan HOST        prints count(*) of the table `big` that `timeout`
 *                    made (the script counts the rpc messages it took)
 *   stuck HOST CMD   with the other nodes down (no quorum), a write with
 *                    statement_timeout=2s fails; CMD (the script) checks
 *                    the gateway's worker is free and restores the quorum;
 *                    then the same session answers SELECT 1
 *
 * Waits poll a condition with a generous limit that only guards hangs. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "include/meridian.h"

#define BIG_ROWS 5000
#define HANG_S   60

static int fails;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static meridian *connect(const char *host, const char *opts)
{
    char ci[512];
    snprintf(ci, sizeof(ci), "hosts=%s connect_timeout=10s %s", host, opts ? opts : "");
    meridian *db = NULL;
    if (meridian_open(ci, &db)) {
        fprintf(stderr, "cannot connect to %s: %s\n", host, meridian_errmsg(db));
        exit(2);
    }
    return db;
}

static int exec(meridian *db, const char *sql)
{
    char *msg = NULL;
    int rc = meridian_exec(db, sql, NULL, NULL, &msg);
    if (rc) fprintf(stderr, "  (%s: %s)\n", sql, msg ? msg : "?");
    meridian_free(msg);
    return rc;
}

/* The first column of the first row as an integer; -1 on error. */
static int64_t one(meridian *db, const char *sql)
{
    meridian_stmt *st = NULL;
    int64_t v = -1;
    if (meridian_prepare(db, sql, -1, &st, NULL) == MERIDIAN_OK && st &&
        meridian_step(st) == MERIDIAN_ROW)
        v = meridian_column_int64(st, 0);
    else
        fprintf(stderr, "  (%s: %s)\n", sql, meridian_errmsg(db));
    meridian_finalize(st);
    return v;
}

static void setup_big(meridian *db)
{
    if (one(db, "SELECT count(*) FROM meridian_tables WHERE name = 'big'") == 1) return;
    CHECK(exec(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)") == 0, "create big");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO big SELECT x, 'row ' || x FROM (WITH RECURSIVE c(x) AS (SELECT 1 "
             "UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT x FROM c)",
             BIG_ROWS);
    CHECK(exec(db, sql) == 0, "fill big");
}

static const char *LONG_CTE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                              "WHERE x < 1000000000) SELECT count(*) FROM c";

static int test_timeout(const char *host)
{
    meridian *db = connect(host, NULL);
    setup_big(db); /* without a timeout: how long it takes is no concern here */
    meridian_close(db);
    db = connect(host, "statement_timeout=1s");
    const char *cases[] = {LONG_CTE, "SELECT count(*) FROM big a, big b WHERE a.v < b.v"};
    for (int i = 0; i < 2; i++) {
        double t0 = now_s();
        int64_t v = one(db, cases[i]);
        CHECK(v == -1 && meridian_errcode(db) == MERIDIAN_INTERRUPT,
              "statement %d: want MERIDIAN_INTERRUPT, got %lld / %d %s", i, (long long)v,
              meridian_errcode(db), meridian_errmsg(db));
        CHECK(strstr(meridian_errmsg(db), "statement timeout") != NULL, "a clear message: %s",
              meridian_errmsg(db));
        CHECK(now_s() - t0 < HANG_S, "statement %d was not cut", i);
        /* The session stays, with its data (checked under a generous limit:
         * counting the rows may take over 1 s on a loaded machine). */
        CHECK(meridian_set_option(db, "statement_timeout", "60s") == MERIDIAN_OK, "set: %s",
              meridian_errmsg(db));
        CHECK(one(db, "SELECT count(*) FROM big") == BIG_ROWS, "session usable after timeout");
        CHECK(meridian_set_option(db, "statement_timeout", "1s") == MERIDIAN_OK, "set: %s",
              meridian_errmsg(db));
    }
    meridian_close(db);
    return fails;
}

typedef struct runner {
    meridian *db;
    const char *sql;
    int rc;
    char msg[256];
} runner;

static void *run_stmt(void *arg)
{
    runner *r = arg;
    char *msg = NULL;
    r->rc = meridian_exec(r->db, r->sql, NULL, NULL, &msg);
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
    meridian_free(msg);
    return NULL;
}

/* Polls sql on watcher until it yields a positive count. */
static int wait_count(meridian *watcher, const char *sql)
{
    for (int i = 0; i < HANG_S * 20; i++) {
        if (one(watcher, sql) > 0) return 1;
        pause_ms(50);
    }
    return 0;
}

static int test_interrupt(const char *host)
{
    meridian *db = connect(host, "application_name=victim");
    meridian *watcher = connect(host, NULL);
    runner r = {.db = db, .sql = LONG_CTE};
    pthread_t th;
    pthread_create(&th, NULL, run_stmt, &r);
    CHECK(wait_count(watcher, "SELECT count(*) FROM meridian_sessions WHERE application_name = "
                              "'victim' AND state = 'running' AND statement LIKE 'WITH%'"),
          "the statement never showed as running");
    meridian_interrupt(db);
    pthread_join(th, NULL);
    CHECK(r.rc == MERIDIAN_INTERRUPT, "want MERIDIAN_INTERRUPT, got %d %s", r.rc, r.msg);
    CHECK(one(db, "SELECT 6 * 7") == 42, "session usable after interrupt");
    meridian_close(watcher);
    meridian_close(db);
    return fails;
}

static int test_lockwait(const char *host, const char *watch)
{
    meridian *older = connect(host, NULL), *younger = connect(host, NULL);
    meridian *watcher = connect(watch, NULL);
    exec(older, "DROP TABLE IF EXISTS lw");
    CHECK(exec(older, "CREATE TABLE lw(a INTEGER PRIMARY KEY, b TEXT)") == 0, "create lw");
    CHECK(exec(older, "INSERT INTO lw VALUES (1, 'orig')") == 0, "insert");
    /* The older transaction reads the row: a shared lock it keeps. */
    CHECK(exec(older, "BEGIN") == 0, "begin");
    CHECK(one(older, "SELECT count(*) FROM lw WHERE a = 1 AND b = 'orig'") == 1, "older reads");
    /* The younger one's write must wait for it (wound-wait: younger waits). */
    runner r = {.db = younger, .sql = "UPDATE lw SET b = 'younger' WHERE a = 1"};
    pthread_t th;
    pthread_create(&th, NULL, run_stmt, &r);
    CHECK(wait_count(watcher, "SELECT count(*) FROM meridian_transactions WHERE waiting = 1"),
          "the younger write never waited for the lock");
    double t0 = now_s();
    meridian_interrupt(younger);
    pthread_join(th, NULL);
    CHECK(r.rc == MERIDIAN_INTERRUPT, "want MERIDIAN_INTERRUPT, got %d %s", r.rc, r.msg);
    CHECK(now_s() - t0 < HANG_S, "the waiter was not released");
    /* Released at the leaseholder too: nothing waits any more. */
    CHECK(one(watcher, "SELECT count(*) FROM meridian_transactions WHERE waiting = 1") == 0,
          "a request still waits at the leaseholder");
    CHECK(exec(older, "UPDATE lw SET b = 'older' WHERE a = 1") == 0, "older writes");
    CHECK(exec(older, "COMMIT") == 0, "older commits");
    CHECK(one(younger, "SELECT count(*) FROM lw WHERE b = 'older'") == 1,
          "the canceled write is gone and the older one is there");
    CHECK(exec(younger, "UPDATE lw SET b = 'again' WHERE a = 1") == 0, "younger goes on");
    meridian_close(watcher);
    meridian_close(younger);
    meridian_close(older);
    return fails;
}

static int test_scan(const char *host)
{
    meridian *db = connect(host, NULL);
    printf("%lld\n", (long long)one(db, "SELECT count(*) FROM big WHERE v IS NOT NULL"));
    meridian_close(db);
    return fails;
}

static int test_stuck(const char *host, const char *after)
{
    meridian *db = connect(host, "statement_timeout=2s");
    double t0 = now_s();
    int rc = exec(db, "INSERT INTO big VALUES (-1, 'stuck')");
    CHECK(rc != 0, "a write without a quorum cannot succeed");
    fprintf(stderr, "  stuck write: %s (after %.3f s)\n", meridian_errmsg(db), now_s() - t0);
    CHECK(strstr(meridian_errmsg(db), "statement timeout") != NULL,
          "the write ended by its statement_timeout, got: %s", meridian_errmsg(db));
    /* The script checks the gateway's worker let go of the write, then
     * brings the quorum back (every statement, even SELECT 1, reads the
     * catalog's schema version from the KV). */
    CHECK(system(after) == 0, "%s failed", after);
    /* The same session runs its next statement: neither stuck behind the
     * write nor hit by the write's cancel landing late. */
    CHECK(meridian_set_option(db, "statement_timeout", "60s") == MERIDIAN_OK, "set option: %s",
          meridian_errmsg(db));
    CHECK(one(db, "SELECT 1") == 1, "the session serves again after the stuck write");
    meridian_close(db);
    return fails;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s timeout|interrupt|lockwait|scan|stuck HOST [CMD|WATCH]\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[2];
    if (!strcmp(argv[1], "timeout")) return test_timeout(host) ? 1 : 0;
    if (!strcmp(argv[1], "interrupt")) return test_interrupt(host) ? 1 : 0;
    if (!strcmp(argv[1], "lockwait")) return test_lockwait(host, argc > 3 ? argv[3] : host) ? 1 : 0;
    if (!strcmp(argv[1], "scan")) return test_scan(host) ? 1 : 0;
    if (!strcmp(argv[1], "stuck")) return test_stuck(host, argc > 3 ? argv[3] : "true") ? 1 : 0;
    fprintf(stderr, "unknown test %s\n", argv[1]);
    return 2;
}
