/* The harness's transactional workloads (see jh_run.h): SQL over libmeridian,
 * each worker its own connection with failover across every node.
 *
 * bank: table jp_bank(id, balance), `accounts` rows of `balance` each.
 *   transfer: BEGIN; read both balances; if the source has enough, write
 *   both; COMMIT. Not enough money is a `fail` (nothing was written).
 *   balances: a snapshot of every account, either one SELECT on its own (a
 *   read-only, lock-free snapshot transaction) or BEGIN; two SELECTs over
 *   the two halves of the table; COMMIT (a read-write transaction whose reads
 *   lock), so read skew across statements is caught too.
 * list-append: table jp_la(k, v TEXT), v a comma-separated list. A txn is 1
 *   to 4 micro-ops on the live keys: appends of unique values (UPDATE ... v
 *   || ',' || x, or INSERT when the key has no row yet) and reads of whole
 *   lists (no row: nil). A few keys are live at a time and each retires after
 *   ops_per_key txns, as for register, so lists stay short.
 *
 * Outcomes, as Jepsen needs them: COMMIT answered OK is `ok`; COMMIT
 * answered ABORT (the transaction certainly did not commit), or any failure
 * before COMMIT (writes are buffered in the session until COMMIT), is
 * `fail`; any other COMMIT failure (timeout, lost connection, unavailable,
 * internal) is `info`. A read-only transaction that fails is `fail`. The
 * connection is dropped after an `info` or when a ROLLBACK does not bring the
 * session back to idle, so no later statement runs in a half-known state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/keycodec.h"
#include "common/mtime.h"
#include "include/meridian.h"
#include "tests/jepsen/jh_run.h"

/* sql/sql_int.h SQL_PRIMARY_INDEX: the index id of every table's rows. */
#define JH_SQL_PRIMARY_INDEX 1

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_BANK_GET,
    S_BANK_SET,
    S_BANK_ALL,
    S_BANK_LO,
    S_BANK_HI,
    S_LA_GET,
    S_LA_APPEND,
    S_LA_INSERT,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SELECT balance FROM jp_bank WHERE id = ?",
    "UPDATE jp_bank SET balance = ? WHERE id = ?",
    "SELECT id, balance FROM jp_bank ORDER BY id",
    "SELECT id, balance FROM jp_bank WHERE id < ? ORDER BY id",
    "SELECT id, balance FROM jp_bank WHERE id >= ? ORDER BY id",
    "SELECT v FROM jp_la WHERE k = ?",
    "UPDATE jp_la SET v = v || ',' || ? WHERE k = ?",
    "INSERT INTO jp_la (v, k) VALUES (?, ?)",
};

struct jh_sqlconn {
    meridian *db;
    meridian_stmt *st[S_COUNT];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void jh_sql_close(jh_worker *w)
{
    jh_sqlconn *c = w->sql;
    if (!c) return;
    for (int i = 0; i < S_COUNT; i++) meridian_finalize(c->st[i]);
    meridian_close(c->db);
    free(c);
    w->sql = NULL;
}

/* Opens w's connection if it has none: every node, starting at a different
 * one per worker to spread the sessions. 0, or -1 with why set. */
static int conn(jh_worker *w, merr *why)
{
    if (w->sql) return 0;
    jh_run *r = w->run;
    char ci[JH_MAX_NODES * 72 + 128];
    size_t l = (size_t)snprintf(ci, sizeof(ci), "hosts=");
    for (int i = 0; i < r->nhosts; i++)
        l += (size_t)snprintf(ci + l, sizeof(ci) - l, "%s%s", i ? "," : "",
                              r->hosts[(w->idx + i) % r->nhosts]);
    snprintf(ci + l, sizeof(ci) - l, " connect_timeout=2s statement_timeout=%" PRId64 "ms",
             (int64_t)(r->op_timeout_ns / MTIME_MS));
    jh_sqlconn *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(why, MERR_NOMEM, "out of memory"), -1;
    if (meridian_open(ci, &c->db) != MERIDIAN_OK) {
        merr_set(why, MERR_UNAVAILABLE, "connect: %s",
                 c->db ? meridian_errmsg(c->db) : "out of memory");
        meridian_close(c->db);
        free(c);
        return -1;
    }
    w->sql = c;
    return 0;
}

/* Prepares statement i on first use (later failovers re-prepare it). */
static meridian_stmt *stmt(jh_worker *w, int i, merr *why)
{
    jh_sqlconn *c = w->sql;
    if (!c->st[i] && meridian_prepare(c->db, stmt_sql[i], -1, &c->st[i], NULL) != MERIDIAN_OK) {
        merr_set(why, MERR_UNAVAILABLE, "prepare %s: %s", stmt_sql[i], meridian_errmsg(c->db));
        c->st[i] = NULL;
    }
    return c->st[i];
}

/* Rows of a statement: ints of each column, in order. */
typedef struct rows {
    int64_t *v;
    size_t n, cap;
    char *text; /* the first column of the last row, as text (list-append) */
    int nrows;
} rows;

static int rows_push(rows *o, int64_t x)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int64_t *nv = realloc(o->v, cap * sizeof(*nv));
        if (!nv) return -1;
        o->v = nv;
        o->cap = cap;
    }
    o->v[o->n++] = x;
    return 0;
}

/* Binds up to two integers (the first as text when a_text: list-append
 * values, so every list is stored as text), runs
 * statement i to the end and collects its rows. Returns MERIDIAN_OK or the
 * error code (why set). */
static int run(jh_worker *w, int i, int nargs, int64_t a, int64_t b, int a_text, rows *out,
               merr *why)
{
    meridian_stmt *st = stmt(w, i, why);
    if (!st) return meridian_errcode(w->sql->db) ? meridian_errcode(w->sql->db) : MERIDIAN_ERROR;
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, a);
    if (nargs >= 1) a_text ? meridian_bind_text(st, 1, buf, -1) : meridian_bind_int64(st, 1, a);
    if (nargs >= 2) meridian_bind_int64(st, 2, b);
    int rc;
    while ((rc = meridian_step(st)) == MERIDIAN_ROW) {
        if (!out) continue;
        int nc = meridian_column_count(st);
        out->nrows++;
        for (int col = 0; col < nc; col++)
            if (rows_push(out, meridian_column_int64(st, col))) {
                meridian_reset(st);
                return merr_set(why, MERR_NOMEM, "out of memory"), MERIDIAN_NOMEM;
            }
        if (meridian_column_type(st, 0) != MERIDIAN_NULL) {
            free(out->text);
            out->text = strdup(meridian_column_text(st, 0));
        }
    }
    if (rc == MERIDIAN_DONE) return MERIDIAN_OK;
    merr_set(why, MERR_UNAVAILABLE, "%s: %s (%d)", stmt_sql[i], meridian_errmsg(w->sql->db), rc);
    meridian_reset(st);
    return rc;
}

/* After a failure before COMMIT: ends the transaction, or drops the
 * connection if the session did not come back to idle. */
static void rollback(jh_worker *w)
{
    merr ignore = {0};
    if (!w->sql) return;
    if (meridian_txn_state(w->sql->db) != MERIDIAN_TXN_IDLE)
        run(w, S_ROLLBACK, 0, 0, 0, 0, NULL, &ignore);
    if (meridian_txn_state(w->sql->db) != MERIDIAN_TXN_IDLE) jh_sql_close(w);
}

/* COMMIT and what its answer means for the history. */
static jp_type commit(jh_worker *w, merr *why)
{
    int rc = run(w, S_COMMIT, 0, 0, 0, 0, NULL, why);
    if (rc == MERIDIAN_OK) return JP_OK;
    if (rc == MERIDIAN_ABORT) { /* the server says it did not commit */
        rollback(w);
        return JP_FAIL;
    }
    jh_sql_close(w); /* unknown outcome: start afresh */
    return JP_INFO;
}

/* BEGIN, checked: a statement that ran in autocommit would not be part of
 * the transaction. */
static int begin(jh_worker *w, merr *why)
{
    int rc = run(w, S_BEGIN, 0, 0, 0, 0, NULL, why);
    if (rc == MERIDIAN_OK && meridian_txn_state(w->sql->db) != MERIDIAN_TXN_OPEN) {
        merr_set(why, MERR_INTERNAL, "BEGIN left the session not in a transaction");
        rc = MERIDIAN_INTERNAL;
    }
    return rc;
}

/* Connects before an op is invoked; a cluster that cannot be reached yet
 * costs a short pause, not a recorded op. 1 if connected. */
static int ready(jh_worker *w)
{
    merr why = {0};
    if (conn(w, &why) == 0) return 1;
    sleep_ms(100);
    return 0;
}

/* Runs setup statements with a few retries (the cluster just started). */
static int setup(jh_worker *w, const char *sql, merr *e)
{
    merr why = {0};
    for (int attempt = 0; attempt < 60; attempt++) {
        if (conn(w, &why) == 0) {
            char *msg = NULL;
            int rc = meridian_exec(w->sql->db, sql, NULL, NULL, &msg);
            merr_set(&why, MERR_UNAVAILABLE, "%s: %s", sql, msg ? msg : meridian_errstr(rc));
            meridian_free(msg);
            if (rc == MERIDIAN_OK) return 0;
            /* "already exists" or a duplicate key after a failed attempt: that
             * attempt committed (each setup statement is all or nothing). */
            if (rc == MERIDIAN_ERROR || rc == MERIDIAN_CONSTRAINT) {
                if (attempt > 0) return 0;
                break;
            }
            rollback(w);
        }
        sleep_ms(500);
    }
    return merr_set(e, MERR_UNAVAILABLE, "setup: %s", why.msg);
}

/* ---- bank ---- */

int jh_bank_setup(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    int rc = setup(w, "CREATE TABLE jp_bank (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)", e);
    if (rc) return rc;
    size_t cap = (size_t)r->accounts * 48 + 64, l = 0;
    char *sql = malloc(cap);
    if (!sql) return merr_set(e, MERR_NOMEM, "out of memory");
    l += (size_t)snprintf(sql, cap, "INSERT INTO jp_bank (id, balance) VALUES ");
    for (int i = 0; i < r->accounts; i++)
        l +=
            (size_t)snprintf(sql + l, cap - l, "%s(%d, %" PRId64 ")", i ? ", " : "", i, r->balance);
    rc = setup(w, sql, e);
    free(sql);
    return rc;
}

/* One snapshot of every balance, recorded. final: always the one-SELECT
 * form, retried (the verdict needs an ok final read). */
static int bank_read(jh_worker *w, int final, merr *e)
{
    jh_run *r = w->run;
    if (!final && !ready(w)) return 0;
    int two = !final && rpc_rng_next(&w->rng) % 2;
    jp_op op = {.f = JP_F_BALANCES, .v1 = {.kind = JP_V_LIST}};
    int rc = jh_invoke(w, &op, e);
    if (rc) return rc;
    merr why = {0};
    rows o = {0};
    int st = conn(w, &why) ? MERIDIAN_UNAVAILABLE : MERIDIAN_OK;
    if (st == MERIDIAN_OK && !two) {
        st = run(w, S_BANK_ALL, 0, 0, 0, 0, &o, &why);
        op.type = st == MERIDIAN_OK ? JP_OK : JP_FAIL;
    } else if (st == MERIDIAN_OK) {
        int64_t half = r->accounts / 2;
        st = begin(w, &why);
        if (st == MERIDIAN_OK) st = run(w, S_BANK_LO, 1, half, 0, 0, &o, &why);
        if (st == MERIDIAN_OK) st = run(w, S_BANK_HI, 1, half, 0, 0, &o, &why);
        if (st == MERIDIAN_OK) {
            /* The reads are what counts; a commit that failed afterwards
             * does not make them untrue, but they are kept only when the
             * transaction committed, as for every other txn. */
            op.type = commit(w, &why) == JP_OK ? JP_OK : JP_FAIL;
        } else {
            rollback(w);
            op.type = JP_FAIL;
        }
    } else {
        op.type = JP_FAIL;
    }
    if (op.type == JP_OK) op.v1 = (jp_val){.kind = JP_V_LIST, .items = o.v, .n = o.n};
    if (final && op.type == JP_OK && o.n >= 2 && atomic_exchange(&r->testing_bug, 0))
        o.v[1]++; /* the harness's self-test: money from nowhere */
    rc = jh_complete(w, &op, e);
    free(o.v);
    free(o.text);
    if (final && op.type != JP_OK) fprintf(stderr, "jp_run: final read failed: %s\n", why.msg);
    return rc;
}

static int bank_transfer(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    if (!ready(w)) return 0;
    int64_t from = (int64_t)(rpc_rng_next(&w->rng) % (uint64_t)r->accounts);
    int64_t to = (int64_t)(rpc_rng_next(&w->rng) % (uint64_t)(r->accounts - 1));
    if (to >= from) to++;
    int64_t amount = 1 + (int64_t)(rpc_rng_next(&w->rng) % 5);
    jp_op op = {.f = JP_F_TRANSFER, .key = from, .key2 = to, .v1 = {.kind = JP_V_INT, .i = amount}};
    int rc = jh_invoke(w, &op, e);
    if (rc) return rc;
    merr why = {0};
    rows a = {0}, b = {0};
    int st = begin(w, &why);
    if (st == MERIDIAN_OK) st = run(w, S_BANK_GET, 1, from, 0, 0, &a, &why);
    if (st == MERIDIAN_OK) st = run(w, S_BANK_GET, 1, to, 0, 0, &b, &why);
    if (st == MERIDIAN_OK && (a.n != 1 || b.n != 1)) st = MERIDIAN_ERROR; /* no such account */
    if (st == MERIDIAN_OK && a.v[0] < amount) {
        op.type = JP_FAIL; /* insufficient funds: nothing written */
        rollback(w);
    } else if (st == MERIDIAN_OK) {
        st = run(w, S_BANK_SET, 2, a.v[0] - amount, from, 0, NULL, &why);
        if (st == MERIDIAN_OK) st = run(w, S_BANK_SET, 2, b.v[0] + amount, to, 0, NULL, &why);
        if (st == MERIDIAN_OK) {
            op.type = commit(w, &why);
        } else {
            rollback(w);
            op.type = JP_FAIL;
        }
    } else {
        rollback(w);
        op.type = JP_FAIL;
    }
    free(a.v), free(a.text), free(b.v), free(b.text);
    return jh_complete(w, &op, e);
}

int jh_bank_op(jh_worker *w, merr *e)
{
    /* Reads are a quarter of the ops: enough snapshots to catch a broken
     * total soon after it happens. */
    if (rpc_rng_next(&w->rng) % 4 == 0) return bank_read(w, 0, e);
    return bank_transfer(w, e);
}

int jh_bank_final(jh_worker *w, merr *e)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (atomic_load(&w->run->interrupted)) return merr_set(e, MERR_CANCELED, "interrupted");
        uint64_t before = atomic_load(&w->run->stats[JP_F_BALANCES][JH_STAT_OK]);
        int rc = bank_read(w, 1, e);
        if (rc) return rc;
        if (atomic_load(&w->run->stats[JP_F_BALANCES][JH_STAT_OK]) > before) break;
        sleep_ms(1000);
    }
    return 0;
}

/* ---- list-append ---- */

int jh_la_setup(jh_worker *w, merr *e)
{
    return setup(w, "CREATE TABLE jp_la (k INTEGER PRIMARY KEY, v TEXT NOT NULL)", e);
}

/* Parses "1,2,3" into a list. A token that is not a positive integer
 * becomes -1, a value nobody appends, so a corrupt list is an anomaly for
 * the checker rather than a harness error. */
static void parse_list(const char *s, jp_val *out)
{
    *out = (jp_val){.kind = JP_V_LIST};
    size_t cap = 0;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char tok[32] = "";
        if (len < sizeof(tok)) memcpy(tok, s, len), tok[len] = '\0';
        char *end;
        long long v = strtoll(tok, &end, 10);
        if (!tok[0] || *end || v <= 0) v = -1;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(out->items, cap * sizeof(*nv));
            if (!nv) return; /* a shorter list: the checker will say so */
            out->items = nv;
        }
        out->items[out->n++] = v;
        s = comma ? comma + 1 : s + len;
    }
}

/* One txn of micro-ops on the keys given (nmops of them), recorded. */
static int la_txn(jh_worker *w, jp_mop *m, size_t nmops, int final, merr *e)
{
    jp_op op = {.f = JP_F_TXN, .mops = m, .nmops = nmops};
    int rc = jh_invoke(w, &op, e);
    if (rc) return rc;
    merr why = {0};
    int st = conn(w, &why) ? MERIDIAN_UNAVAILABLE : MERIDIAN_OK;
    if (st == MERIDIAN_OK) st = begin(w, &why);
    for (size_t i = 0; i < nmops && st == MERIDIAN_OK; i++) {
        if (m[i].kind == JP_MOP_R) {
            rows o = {0};
            st = run(w, S_LA_GET, 1, m[i].key, 0, 0, &o, &why);
            if (st == MERIDIAN_OK && o.nrows == 0)
                m[i].val = (jp_val){.kind = JP_V_NIL};
            else if (st == MERIDIAN_OK)
                parse_list(o.text, &m[i].val);
            free(o.v);
            free(o.text);
        } else {
            st = run(w, S_LA_APPEND, 2, m[i].val.i, m[i].key, 1, NULL, &why);
            if (st == MERIDIAN_OK && meridian_changes(w->sql->db) == 0)
                st = run(w, S_LA_INSERT, 2, m[i].val.i, m[i].key, 1, NULL, &why);
        }
    }
    if (st == MERIDIAN_OK) {
        op.type = commit(w, &why);
    } else {
        rollback(w);
        op.type = JP_FAIL;
    }
    if (final && w->run->testing_bug && op.type == JP_OK && m[0].val.kind == JP_V_LIST &&
        m[0].val.n && atomic_exchange(&w->run->testing_bug, 0)) {
        /* The harness's self-test: a value nobody appended (garbage read). */
        m[0].val.items[m[0].val.n - 1] = -7;
    }
    if (op.type != JP_OK) /* reads are known only for committed txns */
        for (size_t i = 0; i < nmops; i++)
            if (m[i].kind == JP_MOP_R) {
                jp_val_free(&m[i].val);
                m[i].val = (jp_val){.kind = JP_V_NONE};
            }
    rc = jh_complete(w, &op, e);
    for (size_t i = 0; i < nmops; i++) jp_val_free(&m[i].val);
    if (final && op.type != JP_OK) fprintf(stderr, "jp_run: final read failed: %s\n", why.msg);
    return rc;
}

int jh_la_op(jh_worker *w, merr *e)
{
    if (!ready(w)) return 0;
    size_t nmops = 1 + rpc_rng_next(&w->rng) % 4;
    jp_mop m[4];
    for (size_t i = 0; i < nmops; i++) {
        int64_t k = jh_live_key(w);
        if (rpc_rng_next(&w->rng) % 2)
            m[i] = (jp_mop){.kind = JP_MOP_APPEND,
                            .key = k,
                            .val = {.kind = JP_V_INT, .i = jh_next_value(w->run)}};
        else
            m[i] = (jp_mop){.kind = JP_MOP_R, .key = k, .val = {.kind = JP_V_NONE}};
    }
    return la_txn(w, m, nmops, 0, e);
}

int jh_la_final(jh_worker *w, merr *e)
{
    int64_t max = jh_max_key(w->run);
    for (int64_t k = 0; k <= max; k++) {
        for (int attempt = 0; attempt < 3; attempt++) {
            if (atomic_load(&w->run->interrupted)) return merr_set(e, MERR_CANCELED, "interrupted");
            uint64_t before = atomic_load(&w->run->stats[JP_F_TXN][JH_STAT_OK]);
            jp_mop m = {.kind = JP_MOP_R, .key = k, .val = {.kind = JP_V_NONE}};
            int rc = la_txn(w, &m, 1, 1, e);
            if (rc) return rc;
            if (atomic_load(&w->run->stats[JP_F_TXN][JH_STAT_OK]) > before) break;
            sleep_ms(1000);
        }
    }
    return 0;
}

/* ---- --split ---- */

/* The table's id from the catalog view, over w's connection. */
static int table_id(jh_worker *w, const char *table, int64_t *id, merr *e)
{
    if (conn(w, e)) return -1;
    meridian_stmt *st = NULL;
    if (meridian_prepare(w->sql->db, "SELECT table_id FROM meridian_tables WHERE name = ?1", -1,
                         &st, NULL) != MERIDIAN_OK)
        return merr_set(e, MERR_UNAVAILABLE, "meridian_tables: %s", meridian_errmsg(w->sql->db));
    meridian_bind_text(st, 1, table, -1);
    int rc = meridian_step(st);
    if (rc == MERIDIAN_ROW) *id = meridian_column_int64(st, 0);
    meridian_finalize(st);
    if (rc != MERIDIAN_ROW) return merr_set(e, MERR_NOTFOUND, "table %s not in the catalog", table);
    return 0;
}

int jh_row_key_hex(int64_t tid, int64_t at, char *hex, size_t cap)
{
    mkey_val v[3] = {mkey_int(tid, 0), mkey_int(JH_SQL_PRIMARY_INDEX, 0), mkey_int(at, 0)};
    mbuf k = MBUF_INIT;
    int rc = mkey_encode(v, 3, &k);
    if (!rc && jh_hex(k.data, k.len, hex, cap)) rc = MERR_TOOBIG;
    mbuf_free(&k);
    return rc ? -1 : 0;
}

int jh_table_span(int64_t tid, jh_keyspan *sp)
{
    mkey_val v[2] = {mkey_int(tid, 0), mkey_int(JH_SQL_PRIMARY_INDEX, 0)};
    mbuf k = MBUF_INIT;
    int rc = mkey_encode_prefix(v, 2, &k);
    if (!rc && k.len < JH_KEY_MAX) {
        memcpy(sp->lo, k.data, k.len);
        sp->lo_len = k.len;
        rc = mkey_prefix_end(&k); /* every row key of the index is below */
    } else if (!rc) {
        rc = MERR_TOOBIG;
    }
    if (!rc && k.len > JH_KEY_MAX) rc = MERR_TOOBIG;
    if (!rc) {
        memcpy(sp->hi, k.data, k.len);
        sp->hi_len = k.len;
    }
    mbuf_free(&k);
    return rc ? -1 : 0;
}

int jh_table_id(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    int bank = !strcmp(r->wl->name, "bank");
    if (!bank && strcmp(r->wl->name, "list-append")) return 0; /* no table */
    return table_id(w, bank ? "jp_bank" : "jp_la", &r->table_id, e);
}

int jh_split(jh_worker *w, int n, merr *e)
{
    jh_run *r = w->run;
    jh_cluster *c = &r->cluster;
    int bank = !strcmp(r->wl->name, "bank");
    if (!bank && strcmp(r->wl->name, "list-append"))
        return merr_set(e, MERR_INVALID, "--split: only bank and list-append have a table");
    char out[4096];
    char *help[] = {(char *)c->bin, "debug", "split", "--help", NULL};
    if (jh_tool(c, help, out, sizeof(out)) != 0) {
        printf("split unsupported\n");
        fprintf(stderr,
                "jp_run: --split %d: this meridian has no `debug split`: the run is single-range\n",
                n);
        return 0;
    }
    /* Split points spread over the accounts, or over the first list-append
     * key windows. A row's key is (table id, primary index, integer key) in
     * the key codec (docs/sql.md, sql/row.c). */
    const char *table = bank ? "jp_bank" : "jp_la";
    if (!r->table_id && jh_table_id(w, e)) return -1;
    int64_t span = bank ? r->accounts : (int64_t)r->keys * 4;
    for (int i = 1; i < n; i++) {
        int64_t at = span * i / n;
        char hex[2 + 2 * 64 + 1];
        if (jh_row_key_hex(r->table_id, at, hex, sizeof(hex)))
            return merr_set(e, MERR_NOMEM, "cannot encode the row key of %" PRId64, at);
        char *argv[] = {(char *)c->bin,      "debug", "split", "--insecure", "--host",
                        (char *)r->hosts[0], "--key", hex,     NULL};
        if (jh_tool(c, argv, NULL, 0) != 0)
            return merr_set(e, MERR_UNAVAILABLE,
                            "meridian debug split of %s at %" PRId64 " failed (see the log)", table,
                            at);
    }
    printf("split %d\n", n);
    return 0;
}
