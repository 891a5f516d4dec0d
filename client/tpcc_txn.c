/* The five TPC-C transactions (spec clause 2.4 to 2.8): their input data
 * and their SQL, run through the tpcc_driver so every database gets the same
 * statements. A terminal prepares all statements once per connection. */
#include "client/tpcc_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    /* New-Order */
    S_W_TAX,
    S_D_NEXT,
    S_D_UPD_NEXT,
    S_C_NO,
    S_O_INS,
    S_NO_INS,
    S_I_SEL,
    S_S_SEL,
    S_S_UPD,
    S_OL_INS,
    /* Payment */
    S_W_UPD_YTD,
    S_W_SEL,
    S_D_UPD_YTD,
    S_D_SEL,
    S_C_BY_NAME,
    S_C_PAY,
    S_C_DATA,
    S_C_UPD_PAY,
    S_C_UPD_PAY_BC,
    S_H_INS,
    /* Order-Status */
    S_C_OS,
    S_O_LAST,
    S_OL_OS,
    /* Delivery */
    S_NO_MIN,
    S_NO_DEL,
    S_O_CID,
    S_O_UPD_CARRIER,
    S_OL_UPD_DEL,
    S_OL_SUM,
    S_C_UPD_DEL,
    /* Stock-Level */
    S_D_NEXT_SL,
    S_SL,
    S_COUNT
};

_Static_assert(S_COUNT <= TPCC_NSTMTS, "raise TPCC_NSTMTS");

#define CUST_KEY " WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?"

static const char *const sql[S_COUNT] = {
    [S_W_TAX] = "SELECT w_tax FROM warehouse WHERE w_id = ?",
    [S_D_NEXT] = "SELECT d_tax, d_next_o_id FROM district WHERE d_w_id = ? AND d_id = ?",
    [S_D_UPD_NEXT] = "UPDATE district SET d_next_o_id = ? WHERE d_w_id = ? AND d_id = ?",
    [S_C_NO] = "SELECT c_discount, c_last, c_credit FROM customer" CUST_KEY,
    [S_O_INS] = "INSERT INTO orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, "
                "o_ol_cnt, o_all_local) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
    [S_NO_INS] = "INSERT INTO new_order (no_o_id, no_d_id, no_w_id) VALUES (?, ?, ?)",
    [S_I_SEL] = "SELECT i_price, i_name, i_data FROM item WHERE i_id = ?",
    [S_S_SEL] = "SELECT s_quantity, s_data, s_dist_01, s_dist_02, s_dist_03, s_dist_04, "
                "s_dist_05, s_dist_06, s_dist_07, s_dist_08, s_dist_09, s_dist_10 FROM stock "
                "WHERE s_w_id = ? AND s_i_id = ?",
    [S_S_UPD] = "UPDATE stock SET s_quantity = ?, s_ytd = s_ytd + ?, s_order_cnt = s_order_cnt "
                "+ 1, s_remote_cnt = s_remote_cnt + ? WHERE s_w_id = ? AND s_i_id = ?",
    [S_OL_INS] = "INSERT INTO order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, "
                 "ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info) "
                 "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
    [S_W_UPD_YTD] = "UPDATE warehouse SET w_ytd = w_ytd + ? WHERE w_id = ?",
    [S_W_SEL] = "SELECT w_name, w_street_1, w_street_2, w_city, w_state, w_zip FROM warehouse "
                "WHERE w_id = ?",
    [S_D_UPD_YTD] = "UPDATE district SET d_ytd = d_ytd + ? WHERE d_w_id = ? AND d_id = ?",
    [S_D_SEL] = "SELECT d_name, d_street_1, d_street_2, d_city, d_state, d_zip FROM district "
                "WHERE d_w_id = ? AND d_id = ?",
    [S_C_BY_NAME] = "SELECT c_id FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_last = ? "
                    "ORDER BY c_first",
    [S_C_PAY] = "SELECT c_first, c_middle, c_last, c_street_1, c_street_2, c_city, c_state, "
                "c_zip, c_phone, c_since, c_credit, c_credit_lim, c_discount, c_balance "
                "FROM customer" CUST_KEY,
    [S_C_DATA] = "SELECT c_data FROM customer" CUST_KEY,
    [S_C_UPD_PAY] = "UPDATE customer SET c_balance = c_balance - ?, c_ytd_payment = "
                    "c_ytd_payment + ?, c_payment_cnt = c_payment_cnt + 1" CUST_KEY,
    [S_C_UPD_PAY_BC] = "UPDATE customer SET c_balance = c_balance - ?, c_ytd_payment = "
                       "c_ytd_payment + ?, c_payment_cnt = c_payment_cnt + 1, c_data = ?" CUST_KEY,
    [S_H_INS] = "INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, "
                "h_amount, h_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [S_C_OS] = "SELECT c_balance, c_first, c_middle, c_last FROM customer" CUST_KEY,
    [S_O_LAST] = "SELECT o_id, o_carrier_id, o_entry_d FROM orders WHERE o_w_id = ? AND o_d_id "
                 "= ? AND o_c_id = ? ORDER BY o_id DESC LIMIT 1",
    [S_OL_OS] = "SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d FROM "
                "order_line WHERE ol_w_id = ? AND ol_d_id = ? AND ol_o_id = ?",
    [S_NO_MIN] = "SELECT no_o_id FROM new_order WHERE no_w_id = ? AND no_d_id = ? ORDER BY "
                 "no_o_id LIMIT 1",
    [S_NO_DEL] = "DELETE FROM new_order WHERE no_w_id = ? AND no_d_id = ? AND no_o_id = ?",
    [S_O_CID] = "SELECT o_c_id FROM orders WHERE o_w_id = ? AND o_d_id = ? AND o_id = ?",
    [S_O_UPD_CARRIER] = "UPDATE orders SET o_carrier_id = ? WHERE o_w_id = ? AND o_d_id = ? "
                        "AND o_id = ?",
    [S_OL_UPD_DEL] = "UPDATE order_line SET ol_delivery_d = ? WHERE ol_w_id = ? AND ol_d_id = ? "
                     "AND ol_o_id = ?",
    [S_OL_SUM] = "SELECT SUM(ol_amount) FROM order_line WHERE ol_w_id = ? AND ol_d_id = ? AND "
                 "ol_o_id = ?",
    [S_C_UPD_DEL] = "UPDATE customer SET c_balance = c_balance + ?, c_delivery_cnt = "
                    "c_delivery_cnt + 1" CUST_KEY,
    [S_D_NEXT_SL] = "SELECT d_next_o_id FROM district WHERE d_w_id = ? AND d_id = ?",
    [S_SL] = "SELECT COUNT(DISTINCT s_i_id) FROM order_line, stock WHERE ol_w_id = ? AND "
             "ol_d_id = ? AND ol_o_id < ? AND ol_o_id >= ? AND s_w_id = ? AND s_i_id = ol_i_id "
             "AND s_quantity < ?",
};

int tpcc_terminal_prepare(tpcc_terminal *t)
{
    for (int i = 0; i < S_COUNT; i++) {
        if (t->db.d->prepare(t->db.c, sql[i], &t->st[i])) {
            fprintf(stderr, "tpcc: prepare %s: %s\n", sql[i], t->db.d->errmsg(t->db.c));
            return MERR_INVALID;
        }
    }
    return 0;
}

void tpcc_terminal_finish(tpcc_terminal *t)
{
    for (int i = 0; i < S_COUNT; i++) {
        if (t->st[i]) t->db.d->finalize(t->st[i]);
        t->st[i] = NULL;
    }
    tpcc_db_close(&t->db);
}

/* Resets statement id, binds the arguments that fmt lists ('i' int, 'd'
 * double, 's' text) and steps once: TPCC_ROW, TPCC_DONE or an error. */
static int q(tpcc_terminal *t, int id, const char *fmt, ...)
{
    const tpcc_driver *d = t->db.d;
    tpcc_stmt *st = t->st[id];
    int rc = d->reset(st);
    va_list ap;
    va_start(ap, fmt);
    for (int i = 1; !rc && fmt[i - 1]; i++) {
        switch (fmt[i - 1]) {
        case 'i': rc = d->bind_int(st, i, va_arg(ap, int)); break;
        case 'd': rc = d->bind_double(st, i, va_arg(ap, double)); break;
        case 's': rc = d->bind_text(st, i, va_arg(ap, const char *)); break;
        default: rc = MERR_INVALID;
        }
    }
    va_end(ap);
    return rc ? rc : d->step(st);
}

/* A statement expected to return exactly one row: read, then end it. */
#define ONE_ROW(rc)                                                                                \
    do {                                                                                           \
        if ((rc) == TPCC_DONE) rc = MERR_NOTFOUND;                                                 \
        if ((rc) != TPCC_ROW) goto err;                                                            \
    } while (0)
#define END(t, id) (t)->db.d->reset((t)->st[id])
#define EXPECT_DONE(rc)                                                                            \
    do {                                                                                           \
        if ((rc) != TPCC_DONE) goto err;                                                           \
    } while (0)

/* Clause 2.5.2.2 / 2.6.2.2: among the customers with that last name, sorted
 * by first name, the one at position ceil(n / 2). */
static int customer_by_name(tpcc_terminal *t, int w, int d, const char *last, int *c_id)
{
    static const int max = TPCC_CUSTOMERS;
    int ids[TPCC_CUSTOMERS], n = 0;
    int rc = q(t, S_C_BY_NAME, "iis", w, d, last);
    while (rc == TPCC_ROW) {
        if (n < max) ids[n++] = (int)t->db.d->column_int(t->st[S_C_BY_NAME], 0);
        rc = t->db.d->step(t->st[S_C_BY_NAME]);
    }
    if (rc < 0) return rc;
    if (!n) return MERR_NOTFOUND;
    *c_id = ids[(n - 1) / 2];
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    const int *x = a, *y = b;
    return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : (x[1] > y[1]) - (x[1] < y[1]);
}

void tpcc_input_draw(tpcc_terminal *t, tpcc_txn_type type, tpcc_input *in)
{
    tpcc_rng *r = &t->rng;
    int W = t->warehouses;
    memset(in, 0, sizeof *in);
    in->type = type;
    in->w_id = t->w_id;
    in->d_id = (int)tpcc_rand(r, 1, TPCC_DISTRICTS);
    in->c_w_id = in->w_id;
    in->c_d_id = in->d_id;
    in->c_id = (int)tpcc_nurand(r, 1023, 1, TPCC_CUSTOMERS, t->run.c_id);
    switch (type) {
    case TPCC_NEW_ORDER: { /* 2.4.1 */
        in->ol_cnt = (int)tpcc_rand(r, 5, 15);
        in->rbk = tpcc_rand(r, 1, 100) == 1;
        int line[15][3];
        for (int i = 0; i < in->ol_cnt; i++) {
            line[i][0] = (int)tpcc_nurand(r, 8191, 1, TPCC_ITEMS, t->run.ol_i_id);
            line[i][1] = in->w_id;
            if (W > 1 && tpcc_rand(r, 1, 100) == 1) /* 1% from a remote warehouse */
                do line[i][1] = (int)tpcc_rand(r, 1, W);
                while (line[i][1] == in->w_id);
            line[i][2] = (int)tpcc_rand(r, 1, 10);
        }
        /* The last item of a 1% order is unused: the transaction rolls back. */
        if (in->rbk) line[in->ol_cnt - 1][0] = TPCC_ITEMS + 1;
        /* Items in id order so concurrent New-Orders lock stock rows in the
         * same order (fewer deadlocks); the unused id sorts last. */
        qsort(line, (size_t)in->ol_cnt, sizeof line[0], cmp_line);
        for (int i = 0; i < in->ol_cnt; i++) {
            in->i_ids[i] = line[i][0];
            in->supply_w[i] = line[i][1];
            in->qty[i] = line[i][2];
        }
        break;
    }
    case TPCC_PAYMENT:                            /* 2.5.1 */
        if (W > 1 && tpcc_rand(r, 1, 100) > 85) { /* 15% through a remote warehouse */
            do in->c_w_id = (int)tpcc_rand(r, 1, W);
            while (in->c_w_id == in->w_id);
            in->c_d_id = (int)tpcc_rand(r, 1, TPCC_DISTRICTS);
        }
        /* 60% of Payment and Order-Status go by last name */
        __attribute__((fallthrough));
    case TPCC_ORDER_STATUS:
        if (tpcc_rand(r, 1, 100) <= 60)
            tpcc_last_name((int)tpcc_nurand(r, 255, 0, 999, t->run.c_last), in->c_last);
        in->h_amount = (double)tpcc_rand(r, 100, 500000) / 100.0;
        break;
    case TPCC_DELIVERY: in->carrier = (int)tpcc_rand(r, 1, 10); break;
    case TPCC_STOCK_LEVEL:
        in->d_id = t->d_id;
        in->threshold = (int)tpcc_rand(r, 10, 20);
        break;
    default: break;
    }
}

static int new_order(tpcc_terminal *t, const tpcc_input *in, tpcc_outcome *out)
{
    const tpcc_driver *d = t->db.d;
    int w = in->w_id, dd = in->d_id, all_local = 1;
    char now[32];
    tpcc_timestamp(now);
    for (int i = 0; i < in->ol_cnt; i++) all_local &= in->supply_w[i] == w;
    int rc = q(t, S_W_TAX, "i", w);
    ONE_ROW(rc);
    double w_tax = d->column_double(t->st[S_W_TAX], 0);
    END(t, S_W_TAX);
    rc = q(t, S_D_NEXT, "ii", w, dd);
    ONE_ROW(rc);
    double d_tax = d->column_double(t->st[S_D_NEXT], 0);
    int o_id = (int)d->column_int(t->st[S_D_NEXT], 1);
    END(t, S_D_NEXT);
    EXPECT_DONE(rc = q(t, S_D_UPD_NEXT, "iii", o_id + 1, w, dd));
    rc = q(t, S_C_NO, "iii", w, dd, in->c_id);
    ONE_ROW(rc);
    double discount = d->column_double(t->st[S_C_NO], 0);
    END(t, S_C_NO);
    EXPECT_DONE(rc = q(t, S_O_INS, "iiiisii", o_id, dd, w, in->c_id, now, in->ol_cnt, all_local));
    EXPECT_DONE(rc = q(t, S_NO_INS, "iii", o_id, dd, w));
    double total = 0;
    for (int i = 0; i < in->ol_cnt; i++) {
        int item = in->i_ids[i], sw = in->supply_w[i], qty = in->qty[i];
        rc = q(t, S_I_SEL, "i", item);
        if (rc == TPCC_DONE && in->rbk && i == in->ol_cnt - 1) {
            /* 2.4.2.3: "Item number is not valid": roll back, by design. */
            out->rolled_back = 1;
            return d->rollback(t->db.c);
        }
        ONE_ROW(rc);
        double price = d->column_double(t->st[S_I_SEL], 0);
        int i_orig = strstr(d->column_text(t->st[S_I_SEL], 2), "ORIGINAL") != NULL;
        END(t, S_I_SEL);
        rc = q(t, S_S_SEL, "ii", sw, item);
        ONE_ROW(rc);
        tpcc_stmt *s = t->st[S_S_SEL];
        int s_qty = (int)d->column_int(s, 0);
        int s_orig = strstr(d->column_text(s, 1), "ORIGINAL") != NULL;
        char dist[25];
        snprintf(dist, sizeof dist, "%s", d->column_text(s, 1 + dd));
        END(t, S_S_SEL);
        s_qty = s_qty >= qty + 10 ? s_qty - qty : s_qty - qty + 91; /* 2.4.2.2 */
        EXPECT_DONE(rc = q(t, S_S_UPD, "iiiii", s_qty, qty, sw != w, sw, item));
        double amount = qty * price;
        total += amount;
        (void)(i_orig && s_orig); /* brand-generic: shown on the terminal only */
        EXPECT_DONE(
            rc = q(t, S_OL_INS, "iiiiiiids", o_id, dd, w, i + 1, item, sw, qty, amount, dist));
    }
    (void)(total * (1 - discount) * (1 + w_tax + d_tax)); /* displayed, not stored */
    return d->commit(t->db.c);
err:
    return rc;
}

static int payment(tpcc_terminal *t, const tpcc_input *in)
{
    const tpcc_driver *d = t->db.d;
    int w = in->w_id, dd = in->d_id, cw = in->c_w_id, cd = in->c_d_id, c = in->c_id;
    char now[32], w_name[11], d_name[11], h_data[25];
    tpcc_timestamp(now);
    int rc;
    EXPECT_DONE(rc = q(t, S_W_UPD_YTD, "di", in->h_amount, w));
    rc = q(t, S_W_SEL, "i", w);
    ONE_ROW(rc);
    snprintf(w_name, sizeof w_name, "%s", d->column_text(t->st[S_W_SEL], 0));
    END(t, S_W_SEL);
    EXPECT_DONE(rc = q(t, S_D_UPD_YTD, "dii", in->h_amount, w, dd));
    rc = q(t, S_D_SEL, "ii", w, dd);
    ONE_ROW(rc);
    snprintf(d_name, sizeof d_name, "%s", d->column_text(t->st[S_D_SEL], 0));
    END(t, S_D_SEL);
    if (in->c_last[0] && (rc = customer_by_name(t, cw, cd, in->c_last, &c))) goto err;
    rc = q(t, S_C_PAY, "iii", cw, cd, c);
    ONE_ROW(rc);
    int bad_credit = !strcmp(d->column_text(t->st[S_C_PAY], 10), "BC");
    END(t, S_C_PAY);
    if (bad_credit) { /* 2.5.2.2: prepend the payment to C_DATA, keep 500 chars */
        rc = q(t, S_C_DATA, "iii", cw, cd, c);
        ONE_ROW(rc);
        char data[501];
        int n =
            snprintf(data, sizeof data, "%d %d %d %d %d %.2f | ", c, cd, cw, dd, w, in->h_amount);
        snprintf(data + n, sizeof data - (size_t)n, "%s", d->column_text(t->st[S_C_DATA], 0));
        END(t, S_C_DATA);
        EXPECT_DONE(
            rc = q(t, S_C_UPD_PAY_BC, "ddsiii", in->h_amount, in->h_amount, data, cw, cd, c));
    } else {
        EXPECT_DONE(rc = q(t, S_C_UPD_PAY, "ddiii", in->h_amount, in->h_amount, cw, cd, c));
    }
    snprintf(h_data, sizeof h_data, "%s    %s", w_name, d_name);
    EXPECT_DONE(rc = q(t, S_H_INS, "iiiiisds", c, cd, cw, dd, w, now, in->h_amount, h_data));
    return d->commit(t->db.c);
err:
    return rc;
}

static int order_status(tpcc_terminal *t, const tpcc_input *in)
{
    const tpcc_driver *d = t->db.d;
    int w = in->w_id, dd = in->d_id, c = in->c_id, rc;
    if (in->c_last[0] && (rc = customer_by_name(t, w, dd, in->c_last, &c))) goto err;
    rc = q(t, S_C_OS, "iii", w, dd, c);
    ONE_ROW(rc);
    END(t, S_C_OS);
    rc = q(t, S_O_LAST, "iii", w, dd, c);
    if (rc == TPCC_ROW) {
        int o_id = (int)d->column_int(t->st[S_O_LAST], 0);
        END(t, S_O_LAST);
        rc = q(t, S_OL_OS, "iii", w, dd, o_id);
        while (rc == TPCC_ROW) rc = d->step(t->st[S_OL_OS]);
    }
    /* A customer may have no order yet (1/3000 at load): nothing to show. */
    EXPECT_DONE(rc);
    return d->commit(t->db.c);
err:
    return rc;
}

static int delivery(tpcc_terminal *t, const tpcc_input *in, tpcc_outcome *out)
{
    const tpcc_driver *d = t->db.d;
    int w = in->w_id, rc;
    char now[32];
    tpcc_timestamp(now);
    for (int dd = 1; dd <= TPCC_DISTRICTS; dd++) {
        rc = q(t, S_NO_MIN, "ii", w, dd);
        if (rc == TPCC_DONE) { /* 2.7.4.2: no outstanding order: skip */
            out->skipped++;
            continue;
        }
        ONE_ROW(rc);
        int o_id = (int)d->column_int(t->st[S_NO_MIN], 0);
        END(t, S_NO_MIN);
        EXPECT_DONE(rc = q(t, S_NO_DEL, "iii", w, dd, o_id));
        if (d->changes(t->db.c) != 1) { /* taken by a concurrent Delivery */
            out->skipped++;
            continue;
        }
        rc = q(t, S_O_CID, "iii", w, dd, o_id);
        ONE_ROW(rc);
        int c = (int)d->column_int(t->st[S_O_CID], 0);
        END(t, S_O_CID);
        EXPECT_DONE(rc = q(t, S_O_UPD_CARRIER, "iiii", in->carrier, w, dd, o_id));
        EXPECT_DONE(rc = q(t, S_OL_UPD_DEL, "siii", now, w, dd, o_id));
        rc = q(t, S_OL_SUM, "iii", w, dd, o_id);
        ONE_ROW(rc);
        double sum = d->column_double(t->st[S_OL_SUM], 0);
        END(t, S_OL_SUM);
        EXPECT_DONE(rc = q(t, S_C_UPD_DEL, "diii", sum, w, dd, c));
    }
    return d->commit(t->db.c);
err:
    return rc;
}

static int stock_level(tpcc_terminal *t, const tpcc_input *in)
{
    const tpcc_driver *d = t->db.d;
    int w = in->w_id, dd = in->d_id;
    int rc = q(t, S_D_NEXT_SL, "ii", w, dd);
    ONE_ROW(rc);
    int next = (int)d->column_int(t->st[S_D_NEXT_SL], 0);
    END(t, S_D_NEXT_SL);
    rc = q(t, S_SL, "iiiiii", w, dd, next, next - 20, w, in->threshold);
    ONE_ROW(rc);
    END(t, S_SL);
    return d->commit(t->db.c);
err:
    return rc;
}

int tpcc_txn_run(tpcc_terminal *t, const tpcc_input *in, tpcc_outcome *out)
{
    memset(out, 0, sizeof *out);
    int rc = t->db.d->begin(t->db.c, in->type == TPCC_ORDER_STATUS || in->type == TPCC_STOCK_LEVEL);
    if (!rc) {
        switch (in->type) {
        case TPCC_NEW_ORDER: rc = new_order(t, in, out); break;
        case TPCC_PAYMENT: rc = payment(t, in); break;
        case TPCC_ORDER_STATUS: rc = order_status(t, in); break;
        case TPCC_DELIVERY: rc = delivery(t, in, out); break;
        case TPCC_STOCK_LEVEL: rc = stock_level(t, in); break;
        default: rc = MERR_INVALID;
        }
    }
    if (rc == MERR_NOTFOUND) /* our own finding: say so instead of a stale message */
        fprintf(stderr, "tpcc: %s: a row the spec guarantees is missing\n",
                tpcc_txn_names[in->type]);
    if (rc) {
        /* The statement that failed may still hold its result: end every
         * one, then roll back (the driver keeps the original error). */
        for (int i = 0; i < S_COUNT; i++) t->db.d->reset(t->st[i]);
        t->db.d->rollback(t->db.c);
    }
    return rc < 0 ? rc : rc ? MERR_INTERNAL : 0;
}
