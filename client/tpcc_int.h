/* Internals shared by the TPC-C tool's files (tpcc_load.c, tpcc_txn.c,
 * tpcc_run.c, tpcc_check.c): a connection bundled with its driver, the
 * schema, and the run's per-connection state. */
#ifndef MERIDIAN_CLIENT_TPCC_INT_H
#define MERIDIAN_CLIENT_TPCC_INT_H

#include "client/tpcc.h"

#include <stdio.h>

typedef struct tpcc_db {
    const tpcc_driver *d;
    tpcc_conn *c;
} tpcc_db;

int tpcc_db_open(const tpcc_opts *o, tpcc_db *db);
void tpcc_db_close(tpcc_db *db);
/* Runs SQL that returns no rows; on failure prints "what: message". */
int tpcc_db_exec(tpcc_db *db, const char *sql, const char *what);

/* "YYYY-MM-DD HH:MM:SS" in UTC, what both SQLite and PostgreSQL read. */
void tpcc_timestamp(char buf[32]);

/* The C_LOAD constants and the warehouse count, which init stores in
 * tpcc_meta so that run can pick valid C_RUN constants (2.1.6.1). */
int tpcc_meta_read(tpcc_db *db, int *warehouses, tpcc_consts *load);

/* Writes the per-second series of a run (n points each) as an SVG picture:
 * throughput on top, latency below (tpcc_svg.c). */
int tpcc_svg_write(const char *path, const char *title, int n, const double *tpmc,
                   const double *p50, const double *p90, const double *p99);

/* ---- the five transactions (tpcc_txn.c) ---- */

#define TPCC_NSTMTS 40

typedef struct tpcc_terminal {
    tpcc_db db;
    tpcc_stmt *st[TPCC_NSTMTS];
    tpcc_rng rng;
    tpcc_consts run; /* C_RUN */
    int warehouses;
    int w_id, d_id; /* home warehouse; district for Stock-Level (2.8.1.1) */
} tpcc_terminal;

/* What one transaction did, beyond commit or not. */
typedef struct tpcc_outcome {
    int rolled_back; /* New-Order's 1% unused item: rolled back by design */
    int skipped;     /* Delivery: districts with no new order */
} tpcc_outcome;

int tpcc_terminal_prepare(tpcc_terminal *t);
void tpcc_terminal_finish(tpcc_terminal *t);

/* Input data of one transaction, drawn before its first attempt so that a
 * retry runs the very same transaction (5.2.5.x: a retried transaction is
 * still the same business transaction). */
typedef struct tpcc_input {
    tpcc_txn_type type;
    int w_id, d_id, c_w_id, c_d_id, c_id;
    char c_last[16]; /* by name when c_last[0] */
    int ol_cnt, rbk; /* New-Order */
    int i_ids[15], supply_w[15], qty[15];
    double h_amount; /* Payment */
    int carrier;     /* Delivery */
    int threshold;   /* Stock-Level */
} tpcc_input;

void tpcc_input_draw(tpcc_terminal *t, tpcc_txn_type type, tpcc_input *in);
/* Runs one attempt inside BEGIN ... COMMIT/ROLLBACK: 0 on commit (or New-
 * Order's designed rollback, flagged in out), a negative MERR code otherwise
 * (the driver says whether it is retryable; the transaction is rolled back). */
int tpcc_txn_run(tpcc_terminal *t, const tpcc_input *in, tpcc_outcome *out);

#endif
