/* `meridian tpcc check`: the spec's consistency conditions 1 to 4 (clause
 * 3.3.2.1 to 3.3.2.4), each over every warehouse / district, computed with
 * a handful of aggregate queries rather than one query per district.
 *
 *   1. W_YTD = sum(D_YTD) per warehouse
 *   2. D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID) per district
 *   3. max(NO_O_ID) - min(NO_O_ID) + 1 = number of NEW-ORDER rows per district
 *   4. sum(O_OL_CNT) = number of ORDER-LINE rows per district
 *
 * Money is compared to the cent: SQLite keeps DECIMAL as binary floating
 * point, so sums may differ from the exact value by far less than that. */
#include "client/tpcc_int.h"

#include <math.h>
#include <stdlib.h>

typedef struct dist {
    int64_t next_o_id, max_o_id, max_no, min_no, count_no, sum_ol_cnt, count_ol;
    int seen_no;
} dist;

/* Runs sql and calls fn for each row; returns 0 or the driver's error. */
static int each_row(tpcc_db *db, const char *sql, void (*fn)(tpcc_db *, tpcc_stmt *, void *),
                    void *arg)
{
    tpcc_stmt *st = NULL;
    int rc = db->d->prepare(db->c, sql, &st);
    while (!rc && (rc = db->d->step(st)) == TPCC_ROW) {
        fn(db, st, arg);
        rc = 0;
    }
    if (rc < 0) fprintf(stderr, "tpcc: check: %s: %s\n", sql, db->d->errmsg(db->c));
    if (st) db->d->finalize(st);
    return rc < 0 ? rc : 0;
}

typedef struct ctx {
    int W;
    dist *d; /* [(w - 1) * 10 + (d - 1)] */
    double *w_ytd, *sum_d_ytd;
    int field; /* which dist field the current query fills */
} ctx;

static dist *at(ctx *c, int64_t w, int64_t d)
{
    if (w < 1 || w > c->W || d < 1 || d > TPCC_DISTRICTS) return NULL;
    return &c->d[(w - 1) * TPCC_DISTRICTS + (d - 1)];
}

static void row_w(tpcc_db *db, tpcc_stmt *st, void *arg)
{
    ctx *c = arg;
    int64_t w = db->d->column_int(st, 0);
    if (w >= 1 && w <= c->W) {
        c->w_ytd[w - 1] = db->d->column_double(st, 1);
        c->sum_d_ytd[w - 1] = db->d->column_double(st, 2);
    }
}

static void row_d(tpcc_db *db, tpcc_stmt *st, void *arg)
{
    ctx *c = arg;
    dist *x = at(c, db->d->column_int(st, 0), db->d->column_int(st, 1));
    if (!x) return;
    switch (c->field) {
    case 0: x->next_o_id = db->d->column_int(st, 2); break;
    case 1:
        x->max_o_id = db->d->column_int(st, 2);
        x->sum_ol_cnt = db->d->column_int(st, 3);
        break;
    case 2:
        x->seen_no = 1;
        x->max_no = db->d->column_int(st, 2);
        x->min_no = db->d->column_int(st, 3);
        x->count_no = db->d->column_int(st, 4);
        break;
    case 3: x->count_ol = db->d->column_int(st, 2); break;
    }
}

int tpcc_check(const tpcc_opts *o)
{
    tpcc_db db = {0};
    int W = o->warehouses, failures = 0, rc = 1;
    ctx c = {.W = W};
    c.d = calloc((size_t)W * TPCC_DISTRICTS, sizeof *c.d);
    c.w_ytd = calloc((size_t)W, sizeof *c.w_ytd);
    c.sum_d_ytd = calloc((size_t)W, sizeof *c.sum_d_ytd);
    if (!c.d || !c.w_ytd || !c.sum_d_ytd) goto out;
    for (int i = 0; i < W; i++) c.w_ytd[i] = c.sum_d_ytd[i] = NAN;
    if (tpcc_db_open(o, &db)) goto out;
    /* One read-only snapshot for all queries: the conditions hold at a point
     * in time, also while a run goes on. */
    if (tpcc_db_exec(&db, "BEGIN", "check")) goto out;
    if (each_row(&db,
                 "SELECT w_id, w_ytd, (SELECT SUM(d_ytd) FROM district WHERE d_w_id = w_id) "
                 "FROM warehouse",
                 row_w, &c))
        goto out;
    static const char *const q[] = {
        "SELECT d_w_id, d_id, d_next_o_id FROM district",
        "SELECT o_w_id, o_d_id, MAX(o_id), SUM(o_ol_cnt) FROM orders GROUP BY o_w_id, o_d_id",
        ("SELECT no_w_id, no_d_id, MAX(no_o_id), MIN(no_o_id), COUNT(*) FROM new_order "
         "GROUP BY no_w_id, no_d_id"),
        "SELECT ol_w_id, ol_d_id, COUNT(*) FROM order_line GROUP BY ol_w_id, ol_d_id",
    };
    for (c.field = 0; c.field < 4; c.field++)
        if (each_row(&db, q[c.field], row_d, &c)) goto out;
    tpcc_db_exec(&db, "COMMIT", "check");

    int fail1 = 0, fail2 = 0, fail3 = 0, fail4 = 0;
    for (int w = 1; w <= W; w++) {
        double a = c.w_ytd[w - 1], b = c.sum_d_ytd[w - 1];
        if (isnan(a) || isnan(b) || fabs(a - b) >= 0.005) {
            if (fail1++ < 5)
                fprintf(stderr, "condition 1: warehouse %d: W_YTD %.2f != sum(D_YTD) %.2f\n", w, a,
                        b);
        }
        for (int d = 1; d <= TPCC_DISTRICTS; d++) {
            dist *x = at(&c, w, d);
            /* An empty NEW-ORDER table of a district satisfies 2 and 3 for
             * the NEW-ORDER part (3.3.2.2: "if there are rows"). */
            if (x->next_o_id - 1 != x->max_o_id || (x->seen_no && x->max_no != x->max_o_id)) {
                if (fail2++ < 5)
                    fprintf(stderr,
                            "condition 2: w %d d %d: D_NEXT_O_ID-1 %lld, max(O_ID) %lld, "
                            "max(NO_O_ID) %lld\n",
                            w, d, (long long)x->next_o_id - 1, (long long)x->max_o_id,
                            x->seen_no ? (long long)x->max_no : -1LL);
            }
            if (x->seen_no && x->max_no - x->min_no + 1 != x->count_no) {
                if (fail3++ < 5)
                    fprintf(stderr,
                            "condition 3: w %d d %d: max-min+1 = %lld, NEW-ORDER rows %lld\n", w, d,
                            (long long)(x->max_no - x->min_no + 1), (long long)x->count_no);
            }
            if (x->sum_ol_cnt != x->count_ol || !x->count_ol) {
                if (fail4++ < 5)
                    fprintf(stderr,
                            "condition 4: w %d d %d: sum(O_OL_CNT) %lld, ORDER-LINE rows %lld\n", w,
                            d, (long long)x->sum_ol_cnt, (long long)x->count_ol);
            }
        }
    }
    const int f[4] = {fail1, fail2, fail3, fail4};
    for (int i = 0; i < 4; i++) {
        printf("consistency condition %d (3.3.2.%d): %s", i + 1, i + 1, f[i] ? "FAILED" : "ok");
        if (f[i]) printf(" (%d %s)", f[i], i ? "districts" : "warehouses");
        printf("\n");
        failures += f[i];
    }
    rc = failures ? 1 : 0;
out:
    tpcc_db_close(&db);
    free(c.d);
    free(c.w_ytd);
    free(c.sum_d_ytd);
    return rc;
}
