/* A small application embedding libmeridian: connects to the gateways given
 * on the command line, creates a table, inserts with bound parameters inside
 * a retrying transaction, and prints a query's rows.
 *
 *   cc embed.c $(pkg-config --cflags --libs meridian) -o embed
 *   ./embed 127.0.0.1:26257[,127.0.0.1:26258]
 */
#include <meridian.h>

#include <stdio.h>

static int insert_rows(meridian *db, void *arg)
{
    (void)arg;
    meridian_stmt *st = NULL;
    int rc = meridian_prepare(db, "INSERT INTO fruit(name, price) VALUES (?, ?)", -1, &st, NULL);
    const char *names[] = {"apple", "banana", "cherry"};
    const double prices[] = {0.5, 0.25, 3.0};
    for (int i = 0; !rc && i < 3; i++) {
        meridian_reset(st);
        meridian_bind_text(st, 1, names[i], -1);
        meridian_bind_double(st, 2, prices[i]);
        if (meridian_step(st) != MERIDIAN_DONE) rc = meridian_errcode(db);
    }
    meridian_finalize(st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s HOST:PORT[,HOST:PORT...]\n", argv[0]);
        return 2;
    }
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo), "hosts=%s user=example application_name=embed", argv[1]);
    meridian *db = NULL;
    if (meridian_open(conninfo, &db) != MERIDIAN_OK) {
        fprintf(stderr, "connect: %s\n", meridian_errmsg(db));
        meridian_close(db);
        return 1;
    }
    char *err = NULL;
    if (meridian_exec(db, "CREATE TABLE IF NOT EXISTS fruit(name TEXT PRIMARY KEY, price REAL)",
                      NULL, NULL, &err) != MERIDIAN_OK) {
        fprintf(stderr, "create: %s\n", err);
        meridian_free(err);
        meridian_close(db);
        return 1;
    }
    if (meridian_run_in_txn(db, insert_rows, NULL, 5) != MERIDIAN_OK) {
        fprintf(stderr, "insert: %s\n", meridian_errmsg(db));
        meridian_close(db);
        return 1;
    }
    meridian_stmt *st = NULL;
    if (meridian_prepare(db, "SELECT name, price FROM fruit WHERE price < ? ORDER BY name", -1, &st,
                         NULL) != MERIDIAN_OK) {
        fprintf(stderr, "prepare: %s\n", meridian_errmsg(db));
        meridian_close(db);
        return 1;
    }
    meridian_bind_double(st, 1, 1.0);
    int rc;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW)
        printf("%s %.2f\n", meridian_column_text(st, 0), meridian_column_double(st, 1));
    if (rc != MERIDIAN_DONE) fprintf(stderr, "query: %s\n", meridian_errmsg(db));
    meridian_finalize(st);
    meridian_close(db);
    return rc == MERIDIAN_DONE ? 0 : 1;
}
