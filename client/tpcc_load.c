/* `meridian tpcc init`: the nine TPC-C tables and their initial population
 * (spec clause 1.3 for the layout, 4.3.3.1 for the rows), plus helpers the
 * other tpcc files share.
 *
 * The population is cut into units (10 000 items, 10 000 stock rows of a
 * warehouse, one district with its customers, history, orders, order lines
 * and new orders) that loader threads, one connection each, take in turn.
 * Rows go in as multi-row INSERTs of literal values, each its own autocommit
 * statement: one round trip per ~100 rows, and a failed batch can simply run
 * again. A progress bar with the load rate goes to stderr. */
#include "client/tpcc_int.h"
#include "common/buf.h"
#include "common/mtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- shared helpers ---- */

int tpcc_db_open(const tpcc_opts *o, tpcc_db *db)
{
    merr e = {0};
    db->d = o->drv;
    db->c = NULL;
    if (o->drv->connect(o->target, o->isolation, &db->c, &e)) {
        fprintf(stderr, "tpcc: %s\n", merr_msg(&e));
        return e.code;
    }
    return 0;
}

void tpcc_db_close(tpcc_db *db)
{
    if (db->c) db->d->close(db->c);
    db->c = NULL;
}

int tpcc_db_exec(tpcc_db *db, const char *sql, const char *what)
{
    int rc = db->d->exec(db->c, sql);
    if (rc) fprintf(stderr, "tpcc: %s: %s\n", what, db->d->errmsg(db->c));
    return rc;
}

void tpcc_timestamp(char buf[32])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

int tpcc_meta_read(tpcc_db *db, int *warehouses, tpcc_consts *load)
{
    tpcc_stmt *st = NULL;
    int rc = db->d->prepare(db->c, "SELECT warehouses, c_last, c_id, ol_i_id FROM tpcc_meta", &st);
    if (rc) goto err;
    if ((rc = db->d->step(st)) != TPCC_ROW) {
        if (rc == TPCC_DONE) rc = MERR_NOTFOUND;
        goto err;
    }
    *warehouses = (int)db->d->column_int(st, 0);
    load->c_last = (int)db->d->column_int(st, 1);
    load->c_id = (int)db->d->column_int(st, 2);
    load->ol_i_id = (int)db->d->column_int(st, 3);
    db->d->finalize(st);
    return 0;
err:
    fprintf(stderr, "tpcc: reading tpcc_meta (did `tpcc init` run?): %s\n",
            rc == MERR_NOTFOUND ? "empty" : db->d->errmsg(db->c));
    db->d->finalize(st);
    return rc ? rc : MERR_NOTFOUND;
}

/* ---- schema (clause 1.3) ---- */

static const char *const schema[] = {
    "CREATE TABLE warehouse (w_id INTEGER NOT NULL PRIMARY KEY, w_name VARCHAR(10), "
    "w_street_1 VARCHAR(20), w_street_2 VARCHAR(20), w_city VARCHAR(20), w_state CHAR(2), "
    "w_zip CHAR(9), w_tax DECIMAL(4,4), w_ytd DECIMAL(12,2))",
    "CREATE TABLE district (d_id INTEGER NOT NULL, d_w_id INTEGER NOT NULL, d_name VARCHAR(10), "
    "d_street_1 VARCHAR(20), d_street_2 VARCHAR(20), d_city VARCHAR(20), d_state CHAR(2), "
    "d_zip CHAR(9), d_tax DECIMAL(4,4), d_ytd DECIMAL(12,2), d_next_o_id INTEGER, "
    "PRIMARY KEY (d_w_id, d_id))",
    "CREATE TABLE customer (c_id INTEGER NOT NULL, c_d_id INTEGER NOT NULL, "
    "c_w_id INTEGER NOT NULL, c_first VARCHAR(16), c_middle CHAR(2), c_last VARCHAR(16), "
    "c_street_1 VARCHAR(20), c_street_2 VARCHAR(20), c_city VARCHAR(20), c_state CHAR(2), "
    "c_zip CHAR(9), c_phone CHAR(16), c_since TIMESTAMP, c_credit CHAR(2), "
    "c_credit_lim DECIMAL(12,2), c_discount DECIMAL(4,4), c_balance DECIMAL(12,2), "
    "c_ytd_payment DECIMAL(12,2), c_payment_cnt INTEGER, c_delivery_cnt INTEGER, "
    "c_data VARCHAR(500), PRIMARY KEY (c_w_id, c_d_id, c_id))",
    "CREATE INDEX customer_name ON customer (c_w_id, c_d_id, c_last, c_first)",
    "CREATE TABLE history (h_c_id INTEGER, h_c_d_id INTEGER, h_c_w_id INTEGER, h_d_id INTEGER, "
    "h_w_id INTEGER, h_date TIMESTAMP, h_amount DECIMAL(6,2), h_data VARCHAR(24))",
    "CREATE TABLE new_order (no_o_id INTEGER NOT NULL, no_d_id INTEGER NOT NULL, "
    "no_w_id INTEGER NOT NULL, PRIMARY KEY (no_w_id, no_d_id, no_o_id))",
    "CREATE TABLE orders (o_id INTEGER NOT NULL, o_d_id INTEGER NOT NULL, "
    "o_w_id INTEGER NOT NULL, o_c_id INTEGER, o_entry_d TIMESTAMP, o_carrier_id INTEGER, "
    "o_ol_cnt INTEGER, o_all_local INTEGER, PRIMARY KEY (o_w_id, o_d_id, o_id))",
    "CREATE INDEX orders_customer ON orders (o_w_id, o_d_id, o_c_id, o_id)",
    "CREATE TABLE order_line (ol_o_id INTEGER NOT NULL, ol_d_id INTEGER NOT NULL, "
    "ol_w_id INTEGER NOT NULL, ol_number INTEGER NOT NULL, ol_i_id INTEGER, "
    "ol_supply_w_id INTEGER, ol_delivery_d TIMESTAMP, ol_quantity INTEGER, "
    "ol_amount DECIMAL(6,2), ol_dist_info CHAR(24), "
    "PRIMARY KEY (ol_w_id, ol_d_id, ol_o_id, ol_number))",
    "CREATE TABLE item (i_id INTEGER NOT NULL PRIMARY KEY, i_im_id INTEGER, i_name VARCHAR(24), "
    "i_price DECIMAL(5,2), i_data VARCHAR(50))",
    "CREATE TABLE stock (s_i_id INTEGER NOT NULL, s_w_id INTEGER NOT NULL, s_quantity INTEGER, "
    "s_dist_01 CHAR(24), s_dist_02 CHAR(24), s_dist_03 CHAR(24), s_dist_04 CHAR(24), "
    "s_dist_05 CHAR(24), s_dist_06 CHAR(24), s_dist_07 CHAR(24), s_dist_08 CHAR(24), "
    "s_dist_09 CHAR(24), s_dist_10 CHAR(24), s_ytd INTEGER, s_order_cnt INTEGER, "
    "s_remote_cnt INTEGER, s_data VARCHAR(50), PRIMARY KEY (s_w_id, s_i_id))",
    /* Not a TPC-C table: what run needs to know about the load. */
    "CREATE TABLE tpcc_meta (id INTEGER NOT NULL PRIMARY KEY, warehouses INTEGER, "
    "c_last INTEGER, c_id INTEGER, ol_i_id INTEGER)",
};

static const char *const tables[] = {"warehouse", "district",   "customer", "history", "new_order",
                                     "orders",    "order_line", "item",     "stock",   "tpcc_meta"};

/* ---- population ---- */

typedef enum unit_kind { U_ITEMS, U_WAREHOUSE, U_STOCK, U_DISTRICT } unit_kind;

typedef struct unit {
    unit_kind kind;
    int w, k; /* warehouse; chunk (items, stock) or district */
} unit;

#define CHUNK 10000
/* A batch ends at 500 rows or 64 KiB of SQL, whichever comes first: few
 * enough commits that a synchronously replicated database is not bound by
 * commit latency, small enough for any gateway's frame limit. */
#define BATCH_ROWS  500
#define BATCH_BYTES 65536

typedef struct loader {
    const tpcc_opts *o;
    unit *units;
    int nunits;
    atomic_int next;
    atomic_llong rows;
    atomic_int failed;
    atomic_int finished; /* loader threads that ended */
    int tty;             /* stderr is a terminal: redraw the bar in place */
    tpcc_consts load;
    char now[32];
} loader;

/* One multi-row INSERT being built. */
typedef struct batch {
    tpcc_db *db;
    loader *l;
    const char *head; /* "INSERT INTO t (...) VALUES " */
    mbuf sql;
    int n;
} batch;

static int batch_flush(batch *b)
{
    if (!b->n) return 0;
    int rc = mbuf_append_u8(&b->sql, 0);
    for (int attempt = 0; !rc; attempt++) {
        rc = b->db->d->exec(b->db->c, (const char *)b->sql.data);
        if (!rc || !b->db->d->retryable(b->db->c) || attempt >= TPCC_MAX_RETRIES) break;
        usleep(10000u << (attempt < 6 ? attempt : 6));
        rc = 0;
    }
    if (rc) fprintf(stderr, "tpcc: load: %s\n", b->db->d->errmsg(b->db->c));
    atomic_fetch_add(&b->l->rows, b->n);
    mbuf_reset(&b->sql);
    b->n = 0;
    return rc;
}

/* Starts a row: "INSERT ... VALUES " or ", ". The caller prints the tuple. */
static void batch_row(batch *b)
{
    if (!b->n)
        mbuf_append_str(&b->sql, b->head);
    else
        mbuf_append_str(&b->sql, ",");
    b->n++;
}

static int batch_end_row(batch *b)
{
    return b->n >= BATCH_ROWS || b->sql.len >= BATCH_BYTES ? batch_flush(b) : 0;
}

static void address(tpcc_rng *r, char s1[21], char s2[21], char city[21], char st[3], char zip[10])
{
    tpcc_astring(r, 10, 20, s1);
    tpcc_astring(r, 10, 20, s2);
    tpcc_astring(r, 10, 20, city);
    st[0] = (char)('A' + tpcc_rand(r, 0, 25));
    st[1] = (char)('A' + tpcc_rand(r, 0, 25));
    st[2] = 0;
    tpcc_zip(r, zip);
}

static int load_items(batch *b, tpcc_rng *r, int chunk)
{
    char name[25], data[51];
    b->head = "INSERT INTO item (i_id, i_im_id, i_name, i_price, i_data) VALUES ";
    for (int i = chunk * CHUNK + 1; i <= (chunk + 1) * CHUNK; i++) {
        tpcc_astring(r, 14, 24, name);
        tpcc_data_original(r, data);
        batch_row(b);
        mbuf_printf(&b->sql, "(%d,%d,'%s',%.2f,'%s')", i, (int)tpcc_rand(r, 1, 10000), name,
                    tpcc_rand(r, 100, 10000) / 100.0, data);
        if (batch_end_row(b)) return MERR_INTERNAL;
    }
    return batch_flush(b);
}

static int load_warehouse(batch *b, tpcc_rng *r, int w)
{
    char name[11], s1[21], s2[21], city[21], st[3], zip[10];
    b->head = "INSERT INTO warehouse (w_id, w_name, w_street_1, w_street_2, w_city, w_state, "
              "w_zip, w_tax, w_ytd) VALUES ";
    tpcc_astring(r, 6, 10, name);
    address(r, s1, s2, city, st, zip);
    batch_row(b);
    mbuf_printf(&b->sql, "(%d,'%s','%s','%s','%s','%s','%s',%.4f,300000.00)", w, name, s1, s2, city,
                st, zip, tpcc_rand(r, 0, 2000) / 10000.0);
    if (batch_flush(b)) return MERR_INTERNAL;
    b->head = "INSERT INTO district (d_id, d_w_id, d_name, d_street_1, d_street_2, d_city, "
              "d_state, d_zip, d_tax, d_ytd, d_next_o_id) VALUES ";
    for (int d = 1; d <= TPCC_DISTRICTS; d++) {
        tpcc_astring(r, 6, 10, name);
        address(r, s1, s2, city, st, zip);
        batch_row(b);
        mbuf_printf(&b->sql, "(%d,%d,'%s','%s','%s','%s','%s','%s',%.4f,30000.00,%d)", d, w, name,
                    s1, s2, city, st, zip, tpcc_rand(r, 0, 2000) / 10000.0, TPCC_ORDERS + 1);
    }
    return batch_flush(b);
}

static int load_stock(batch *b, tpcc_rng *r, int w, int chunk)
{
    char dist[10][25], data[51];
    b->head = "INSERT INTO stock (s_i_id, s_w_id, s_quantity, s_dist_01, s_dist_02, s_dist_03, "
              "s_dist_04, s_dist_05, s_dist_06, s_dist_07, s_dist_08, s_dist_09, s_dist_10, "
              "s_ytd, s_order_cnt, s_remote_cnt, s_data) VALUES ";
    for (int i = chunk * CHUNK + 1; i <= (chunk + 1) * CHUNK; i++) {
        for (int k = 0; k < 10; k++) tpcc_astring(r, 24, 24, dist[k]);
        tpcc_data_original(r, data);
        batch_row(b);
        mbuf_printf(&b->sql, "(%d,%d,%d", i, w, (int)tpcc_rand(r, 10, 100));
        for (int k = 0; k < 10; k++) mbuf_printf(&b->sql, ",'%s'", dist[k]);
        mbuf_printf(&b->sql, ",0,0,0,'%s')", data);
        if (batch_end_row(b)) return MERR_INTERNAL;
    }
    return batch_flush(b);
}

static int load_customers(batch *b, tpcc_rng *r, int w, int d)
{
    char first[17], last[16], s1[21], s2[21], city[21], st[3], zip[10], phone[17], data[501];
    const char *now = b->l->now;
    b->head = "INSERT INTO customer (c_id, c_d_id, c_w_id, c_first, c_middle, c_last, "
              "c_street_1, c_street_2, c_city, c_state, c_zip, c_phone, c_since, c_credit, "
              "c_credit_lim, c_discount, c_balance, c_ytd_payment, c_payment_cnt, "
              "c_delivery_cnt, c_data) VALUES ";
    for (int c = 1; c <= TPCC_CUSTOMERS; c++) {
        tpcc_astring(r, 8, 16, first);
        /* 4.3.3.1: the first 1000 customers take every name once, the rest
         * NURand(255, 0, 999) with C_LOAD. */
        tpcc_last_name(c <= 1000 ? c - 1 : (int)tpcc_nurand(r, 255, 0, 999, b->l->load.c_last),
                       last);
        address(r, s1, s2, city, st, zip);
        tpcc_nstring(r, 16, 16, phone);
        tpcc_astring(r, 300, 500, data);
        batch_row(b);
        mbuf_printf(&b->sql,
                    "(%d,%d,%d,'%s','OE','%s','%s','%s','%s','%s','%s','%s','%s','%s',50000.00,"
                    "%.4f,-10.00,10.00,1,0,'%s')",
                    c, d, w, first, last, s1, s2, city, st, zip, phone, now,
                    tpcc_rand(r, 1, 10) == 1 ? "BC" : "GC", tpcc_rand(r, 0, 5000) / 10000.0, data);
        if (batch_end_row(b)) return MERR_INTERNAL;
    }
    if (batch_flush(b)) return MERR_INTERNAL;
    b->head = "INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, "
              "h_amount, h_data) VALUES ";
    for (int c = 1; c <= TPCC_CUSTOMERS; c++) {
        tpcc_astring(r, 12, 24, data);
        batch_row(b);
        mbuf_printf(&b->sql, "(%d,%d,%d,%d,%d,'%s',10.00,'%s')", c, d, w, d, w, now, data);
        if (batch_end_row(b)) return MERR_INTERNAL;
    }
    return batch_flush(b);
}

static int load_orders(batch *b, tpcc_rng *r, int w, int d)
{
    static const int first_new = TPCC_ORDERS - TPCC_NEW_ORDERS + 1; /* 2101 */
    int perm[TPCC_CUSTOMERS], ol_cnt[TPCC_ORDERS + 1];
    char dist[25];
    const char *now = b->l->now;
    tpcc_permutation(r, perm, TPCC_CUSTOMERS);
    b->head = "INSERT INTO orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, "
              "o_ol_cnt, o_all_local) VALUES ";
    for (int o = 1; o <= TPCC_ORDERS; o++) {
        ol_cnt[o] = (int)tpcc_rand(r, 5, 15);
        batch_row(b);
        mbuf_printf(&b->sql, "(%d,%d,%d,%d,'%s',", o, d, w, perm[o - 1], now);
        if (o < first_new)
            mbuf_printf(&b->sql, "%d,%d,1)", (int)tpcc_rand(r, 1, 10), ol_cnt[o]);
        else
            mbuf_printf(&b->sql, "NULL,%d,1)", ol_cnt[o]);
        if (batch_end_row(b)) return MERR_INTERNAL;
    }
    if (batch_flush(b)) return MERR_INTERNAL;
    b->head = "INSERT INTO order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, "
              "ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info) VALUES ";
    for (int o = 1; o <= TPCC_ORDERS; o++) {
        for (int n = 1; n <= ol_cnt[o]; n++) {
            tpcc_astring(r, 24, 24, dist);
            batch_row(b);
            mbuf_printf(&b->sql, "(%d,%d,%d,%d,%d,%d,", o, d, w, n,
                        (int)tpcc_rand(r, 1, TPCC_ITEMS), w);
            if (o < first_new)
                mbuf_printf(&b->sql, "'%s',5,0.00,'%s')", now, dist);
            else
                mbuf_printf(&b->sql, "NULL,5,%.2f,'%s')", tpcc_rand(r, 1, 999999) / 100.0, dist);
            if (batch_end_row(b)) return MERR_INTERNAL;
        }
    }
    if (batch_flush(b)) return MERR_INTERNAL;
    b->head = "INSERT INTO new_order (no_o_id, no_d_id, no_w_id) VALUES ";
    for (int o = first_new; o <= TPCC_ORDERS; o++) {
        batch_row(b);
        mbuf_printf(&b->sql, "(%d,%d,%d)", o, d, w);
        if (batch_end_row(b)) return MERR_INTERNAL;
    }
    return batch_flush(b);
}

static void *loader_main(void *arg)
{
    loader *l = arg;
    tpcc_db db;
    if (tpcc_db_open(l->o, &db)) {
        atomic_store(&l->failed, 1);
        atomic_fetch_add(&l->finished, 1);
        return NULL;
    }
    batch b = {.db = &db, .l = l};
    mbuf_init(&b.sql);
    for (;;) {
        if (atomic_load(&l->failed)) break;
        int i = atomic_fetch_add(&l->next, 1);
        if (i >= l->nunits) break;
        const unit *u = &l->units[i];
        tpcc_rng r;
        /* Seeded per unit: the same seed loads the same data whatever the
         * number of loader threads. */
        tpcc_rng_seed(&r, l->o->seed * 1000003 + (uint64_t)i + 1);
        int rc = 0;
        switch (u->kind) {
        case U_ITEMS: rc = load_items(&b, &r, u->k); break;
        case U_WAREHOUSE: rc = load_warehouse(&b, &r, u->w); break;
        case U_STOCK: rc = load_stock(&b, &r, u->w, u->k); break;
        case U_DISTRICT:
            rc = load_customers(&b, &r, u->w, u->k);
            if (!rc) rc = load_orders(&b, &r, u->w, u->k);
            break;
        }
        if (rc) atomic_store(&l->failed, 1);
    }
    mbuf_free(&b.sql);
    tpcc_db_close(&db);
    atomic_fetch_add(&l->finished, 1);
    return NULL;
}

static void progress(const loader *l, long long expect, int64_t t0, int final)
{
    long long rows = atomic_load(&l->rows);
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    double frac = rows >= expect ? 1.0 : (double)rows / (double)expect;
    char bar[41];
    int fill = (int)(frac * 40);
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    fprintf(stderr, "%s[%s] %3.0f%% %lld rows %.0f rows/s %.1fs%s", l->tty ? "\r" : "", bar,
            frac * 100, rows, secs > 0 ? rows / secs : 0, secs, final || !l->tty ? "\n" : "");
}

int tpcc_init(const tpcc_opts *o)
{
    tpcc_db db = {0};
    loader l = {.o = o};
    pthread_t *th = NULL;
    int nth = o->concurrency > 0 ? o->concurrency : 1, started = 0, rc = 1;
    if (tpcc_db_open(o, &db)) return 1;
    char sql[4096];
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", tables[i]);
        if (tpcc_db_exec(&db, sql, "drop")) goto out;
    }
    for (size_t i = 0; i < sizeof schema / sizeof *schema; i++)
        if (tpcc_db_exec(&db, schema[i], "schema")) goto out;

    tpcc_rng r;
    tpcc_rng_seed(&r, o->seed);
    tpcc_consts_load(&r, &l.load);
    tpcc_timestamp(l.now);
    int W = o->warehouses;
    l.units = calloc((size_t)(10 + W * 21), sizeof *l.units);
    if (!l.units) goto out;
    /* Biggest units first, so the threads finish together. */
    for (int w = 1; w <= W; w++)
        for (int d = 1; d <= TPCC_DISTRICTS; d++) l.units[l.nunits++] = (unit){U_DISTRICT, w, d};
    for (int w = 1; w <= W; w++)
        for (int k = 0; k < TPCC_ITEMS / CHUNK; k++) l.units[l.nunits++] = (unit){U_STOCK, w, k};
    for (int k = 0; k < TPCC_ITEMS / CHUNK; k++) l.units[l.nunits++] = (unit){U_ITEMS, 0, k};
    for (int w = 1; w <= W; w++) l.units[l.nunits++] = (unit){U_WAREHOUSE, w, 0};
    /* Order lines average 10 per order. */
    long long expect =
        TPCC_ITEMS + (long long)W * (1 + TPCC_DISTRICTS + TPCC_ITEMS +
                                     TPCC_DISTRICTS * (TPCC_CUSTOMERS * 2LL + TPCC_ORDERS * 11LL +
                                                       TPCC_NEW_ORDERS));
    int64_t t0 = mtime_mono_ns();
    if (!(th = calloc((size_t)nth, sizeof *th))) goto out;
    for (; started < nth; started++)
        if (pthread_create(&th[started], NULL, loader_main, &l)) break;
    l.tty = isatty(2);
    for (int tick = 0; atomic_load(&l.finished) < started; tick++) {
        if (!o->quiet && (l.tty || tick % 10 == 0)) progress(&l, expect, t0, 0);
        usleep(200000);
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (!o->quiet) progress(&l, atomic_load(&l.rows), t0, 1);
    if (started < nth || atomic_load(&l.failed)) {
        fprintf(stderr, "tpcc: init failed\n");
        goto out;
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO tpcc_meta (id, warehouses, c_last, c_id, ol_i_id) VALUES "
             "(1, %d, %d, %d, %d)",
             W, l.load.c_last, l.load.c_id, l.load.ol_i_id);
    if (tpcc_db_exec(&db, sql, "meta")) goto out;
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    printf("loaded %d warehouse(s): %lld rows in %.1f s (%.0f rows/s) with %d connection(s)\n", W,
           (long long)atomic_load(&l.rows), secs, atomic_load(&l.rows) / secs, nth);
    rc = 0;
out:
    free(th);
    free(l.units);
    tpcc_db_close(&db);
    return rc;
}
