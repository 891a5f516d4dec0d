/* TPC-C for `meridian tpcc init|run|check` (docs/tpcc.md, TPC-C standard
 * specification revision 5.11).
 *
 * One workload, several databases: everything the workload says to a database
 * goes through a tpcc_driver, a table of function pointers (connect, exec,
 * prepare/bind/step/column, begin/commit/rollback, "is this error worth a
 * retry"). Two drivers exist: libmeridian (tpcc_driver_meridian) and libpq
 * (tpcc_driver_pg), so Meridian and PostgreSQL run the very same SQL, the same
 * random choices and the same measurement code.
 *
 * SQL is written once, in the common subset of SQLite's dialect (Meridian's)
 * and PostgreSQL's: `?` placeholders (the libpq driver rewrites them to $n),
 * no RETURNING (SQLite refuses it on virtual tables, which Meridian's tables
 * are), no FOR UPDATE (isolation comes from the transaction instead). */
#ifndef MERIDIAN_CLIENT_TPCC_H
#define MERIDIAN_CLIENT_TPCC_H

#include "common/err.h"

#include <stdint.h>

/* ---- the driver abstraction ---- */

typedef struct tpcc_conn tpcc_conn; /* defined by each driver */
typedef struct tpcc_stmt tpcc_stmt;

#define TPCC_ROW  1 /* step: a row is ready */
#define TPCC_DONE 0 /* step: no more rows */

/* Every call returns 0 (or TPCC_ROW) on success and a negative MERR_* code on
 * failure, with the database's message in tpcc_conn's error (drv->errmsg).
 * Statements follow SQLite's model: reset, bind (1-based), step until DONE.
 * A connection runs one statement at a time (as libmeridian and libpq do):
 * the workload steps every statement to DONE or resets it before the next. */
typedef struct tpcc_driver {
    const char *name; /* "libmeridian", "libpq (PostgreSQL)" */
    int (*connect)(const char *target, const char *isolation, tpcc_conn **c, merr *e);
    void (*close)(tpcc_conn *c);
    /* Runs SQL (one or more statements) without results. */
    int (*exec)(tpcc_conn *c, const char *sql);
    int (*prepare)(tpcc_conn *c, const char *sql, tpcc_stmt **st);
    int (*reset)(tpcc_stmt *st); /* stops it and keeps the bindings */
    int (*bind_int)(tpcc_stmt *st, int idx, int64_t v);
    int (*bind_double)(tpcc_stmt *st, int idx, double v);
    int (*bind_text)(tpcc_stmt *st, int idx, const char *s);
    int (*bind_null)(tpcc_stmt *st, int idx);
    int (*step)(tpcc_stmt *st); /* TPCC_ROW, TPCC_DONE or < 0 */
    int (*column_null)(tpcc_stmt *st, int i);
    int64_t (*column_int)(tpcc_stmt *st, int i);
    double (*column_double)(tpcc_stmt *st, int i);
    const char *(*column_text)(tpcc_stmt *st, int i); /* valid until the next step */
    /* Rows changed by the statement that last finished on c. */
    int64_t (*changes)(tpcc_conn *c);
    void (*finalize)(tpcc_stmt *st);
    /* read_only: Order-Status and Stock-Level only read (2.6, 2.8): BEGIN
     * READ ONLY on both systems (Meridian: one lock-free snapshot). */
    int (*begin)(tpcc_conn *c, int read_only);
    int (*commit)(tpcc_conn *c);
    int (*rollback)(tpcc_conn *c);
    /* 1 when the last error may go away if the transaction runs again
     * (serialization failure, deadlock, wound, lost gateway). */
    int (*retryable)(tpcc_conn *c);
    const char *(*errmsg)(tpcc_conn *c);
} tpcc_driver;

extern const tpcc_driver tpcc_driver_meridian;
extern const tpcc_driver tpcc_driver_pg;

/* ---- random numbers and data generation (clause 2.1.6, 4.3.2) ---- */

typedef struct tpcc_rng {
    uint64_t s;
} tpcc_rng;

/* NURand's C constants (2.1.6.1): C_LOAD for the population, C_RUN for the
 * measurement, with C_RUN's c_last constant obeying the delta rule. */
typedef struct tpcc_consts {
    int c_last;  /* A = 255 */
    int c_id;    /* A = 1023 */
    int ol_i_id; /* A = 8191 */
} tpcc_consts;

void tpcc_rng_seed(tpcc_rng *r, uint64_t seed);
uint64_t tpcc_rng_next(tpcc_rng *r);
/* Uniform in [lo, hi], both included. */
int64_t tpcc_rand(tpcc_rng *r, int64_t lo, int64_t hi);
/* Uniform in (0, 1]. */
double tpcc_rand_unit(tpcc_rng *r);
/* NURand(A, x, y) = (((random(0, A) | random(x, y)) + C) % (y - x + 1)) + x */
int64_t tpcc_nurand(tpcc_rng *r, int a, int64_t x, int64_t y, int c);
/* Random C_LOAD constants. */
void tpcc_consts_load(tpcc_rng *r, tpcc_consts *c);
/* Random C_RUN constants for a database loaded with `load`: the c_last
 * constant differs from load's by a delta in [65, 119], not 96 nor 112. */
void tpcc_consts_run(tpcc_rng *r, const tpcc_consts *load, tpcc_consts *run);
/* 1 when run's c_last constant is a valid C_RUN for load's (2.1.6.1). */
int tpcc_consts_valid(const tpcc_consts *load, const tpcc_consts *run);
/* The customer last name of number n in [0, 999] from its three digits as
 * syllables (4.3.2.3): 371 -> "PRICALLYOUGHT". buf holds >= 16 bytes. */
void tpcc_last_name(int n, char *buf);
/* Random alphanumeric a-string / digit n-string of length in [lo, hi]; buf
 * holds hi + 1 bytes. */
void tpcc_astring(tpcc_rng *r, int lo, int hi, char *buf);
void tpcc_nstring(tpcc_rng *r, int lo, int hi, char *buf);
/* I_DATA / S_DATA (4.3.3.1): an a-string of [26, 50]; 10% of them carry
 * "ORIGINAL" at a random position. Returns 1 when ORIGINAL was put in. */
int tpcc_data_original(tpcc_rng *r, char *buf);
/* Zip code: 4 random digits then "11111". buf holds 10 bytes. */
void tpcc_zip(tpcc_rng *r, char *buf);
/* A random permutation of 1..n into out[0..n-1] (O_C_ID at load). */
void tpcc_permutation(tpcc_rng *r, int *out, int n);

/* ---- the transaction mix ---- */

typedef enum tpcc_txn_type {
    TPCC_NEW_ORDER,
    TPCC_PAYMENT,
    TPCC_ORDER_STATUS,
    TPCC_DELIVERY,
    TPCC_STOCK_LEVEL,
    TPCC_NTYPES
} tpcc_txn_type;

extern const char *const tpcc_txn_names[TPCC_NTYPES];

/* A shuffled deck of 100 cards, 45/43/4/4/4 (5.2.4.2: the mix as a deck,
 * reshuffled when used up). */
typedef struct tpcc_deck {
    uint8_t cards[100];
    int next;
} tpcc_deck;

void tpcc_deck_init(tpcc_deck *d, tpcc_rng *r);
tpcc_txn_type tpcc_deck_draw(tpcc_deck *d, tpcc_rng *r);

/* ---- scale (clause 1.2 / 4.3.3.1) ---- */

#define TPCC_ITEMS       100000
#define TPCC_DISTRICTS   10
#define TPCC_CUSTOMERS   3000 /* per district */
#define TPCC_ORDERS      3000 /* per district at load */
#define TPCC_NEW_ORDERS  900  /* the last 900 orders of each district */
#define TPCC_TPMC_PER_WH 12.86
#define TPCC_MAX_RETRIES 20

/* ---- the commands ---- */

typedef struct tpcc_opts {
    const tpcc_driver *drv;
    const char *target;    /* libmeridian conninfo or libpq URL */
    const char *isolation; /* PostgreSQL only; NULL: serializable */
    int warehouses;
    int concurrency;  /* connections (init: loader threads) */
    int64_t duration; /* ns (run) */
    int wait;         /* keying and think times (run) */
    uint64_t seed;    /* 0: from the clock */
    int quiet;        /* no progress / live lines */
    const char *csv;  /* run: per-second series to this file, or NULL */
    const char *svg;  /* run: throughput and latency over time, or NULL */
} tpcc_opts;

/* Each returns 0 on success, 1 when the work failed (a check condition, a
 * non-retryable error), with messages on stderr. */
int tpcc_init(const tpcc_opts *o);
int tpcc_run(const tpcc_opts *o);
int tpcc_check(const tpcc_opts *o);

#endif
