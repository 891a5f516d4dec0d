/* Internal structures shared by the SQL layer's modules: the in-session
 * catalog (tables, columns, indexes as loaded from the KV catalog), the
 * session, and the functions the modules call on each other. Not a public
 * header: the API is sql/session.h. */
#ifndef MERIDIAN_SQL_INT_H
#define MERIDIAN_SQL_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/keycodec.h"
#include "common/sqllex.h"
#include "sql/kv.h"

/* Key layout (docs/sql.md): every key is a keycodec tuple starting with a
 * table id. Table ids below SQL_FIRST_TABLE_ID are reserved for the system;
 * the catalog lives under table id SQL_SYS_TABLE. */
#define SQL_SYS_TABLE      0
#define SQL_SYS_VERSION    1 /* (0, 1) -> u64 schema version */
#define SQL_SYS_NEXT_ID    2 /* (0, 2) -> u64 next table id */
#define SQL_SYS_DESC       3 /* (0, 3, name) -> descriptor */
#define SQL_FIRST_TABLE_ID 100
#define SQL_PRIMARY_INDEX  1 /* index id of every table's rows */

/* Why a statement ends its transaction (sql_session.stmt_rollback_txn): a
 * lost conflict (reported as MERR_ABORTED, the client retries) or an
 * ON CONFLICT ROLLBACK constraint failure (a plain constraint error, as
 * SQLite reports it: nothing to retry). */
#define SQL_RB_CONFLICT   1
#define SQL_RB_CONSTRAINT 2

/* Object kinds in the catalog. */
enum { SQL_OBJ_TABLE = 1, SQL_OBJ_VIEW = 2 };

/* Index states of an online CREATE INDEX (docs/sql.md, "Online CREATE
 * INDEX"; F1's schema change states without DELETE_ONLY): a WRITE_ONLY index
 * is kept by every write, unique ones enforced, but no read uses it; PUBLIC
 * is an ordinary index. Stored descriptors without a state are PUBLIC. */
enum { SQL_IDX_PUBLIC = 0, SQL_IDX_WRITE_ONLY = 1 };

/* A persisted index entry of a descriptor: ids survive renames. */
typedef struct sql_desc_index {
    uint32_t id;
    char *name;
    char *sql; /* CREATE INDEX text; NULL for indexes SQLite makes itself */
    int state; /* SQL_IDX_* */
} sql_desc_index;

/* What the catalog stores per object: the SQL that creates it (SQLite
 * reparses it on load) plus the ids SQLite does not know about. */
typedef struct sql_desc {
    int kind;
    uint32_t id;
    uint32_t next_index_id;
    char *name;
    char *sql;
    sql_desc_index *idx;
    size_t nidx;
} sql_desc;

typedef struct sql_column {
    char *name;
    char *type; /* declared type, as written */
    char *coll; /* collation name */
    int notnull;
    int binary;          /* collation is BINARY: key order matches SQL order */
    char aff;            /* 'A' blob/none, 'B' text, 'C' numeric, 'D' integer, 'E' real */
    int keypos;          /* position in the primary key (0-based) or -1 */
    sqlite3_value *dflt; /* constant default for rows stored before ADD COLUMN */
    mkey_val dflt_val;   /* ... with the column's affinity (points into dflt) */
    char *dflt_sql;      /* DEFAULT expression text, for INSERTs that omit the column */
} sql_column;

typedef struct sql_index {
    uint32_t id;
    char *name;
    int unique;
    int ncols;      /* indexed columns */
    int *cols;      /* column numbers */
    uint8_t *desc;  /* per column */
    int write_only; /* SQL_IDX_WRITE_ONLY: maintained, never read */
} sql_index;

typedef struct sql_table {
    uint32_t id;
    char *name;
    int ncols;
    sql_column *cols;
    int rowid; /* 1: keyed by an integer rowid (no PK or INTEGER PRIMARY KEY) */
    int ipk;   /* the INTEGER PRIMARY KEY column or -1 */
    int npk;   /* primary key columns (rowid tables: 1, the rowid) */
    int *pk;   /* column numbers; rowid tables: {ipk} or {-1} */
    uint8_t *pkdesc;
    int nidx;
    sql_index *idx;        /* secondary indexes, in SQLite's constraint-check order */
    int pk_order;          /* the primary key is checked before idx[pk_order] */
    sqlite3_stmt *chk[2];  /* scratch INSERT ... RETURNING: [0] abort, [1] ignore */
    sqlite3_stmt *chk_del; /* empties the scratch table again */
} sql_table;

struct sql_upsert;
/* The tables a statement writes (INSERT, UPDATE, DELETE), as SQLite's
 * authorizer names them while it prepares the statement. Its reads of them
 * lock for writing (sql_kv_ops.lock_for_write). all: more than fit. */
#define SQL_WT_MAX 8
typedef struct sql_wtargets {
    int n, all;
    char name[SQL_WT_MAX][64];
} sql_wtargets;

typedef struct sql_session {
    const sql_kv_ops *ops;
    void *kv;
    sqlite3 *db;      /* user-facing connection: virtual tables and views */
    sqlite3 *scratch; /* the same schema as ordinary empty tables: parser, checks */
    sql_kv_txn *txn;
    int explicit_txn;
    int catalog_dirty; /* reload before the next statement */
    uint64_t version;  /* schema version the loaded catalog reflects */
    sql_table **tables;
    size_t ntables;
    sql_desc *views;
    size_t nviews;
    mbuf *handles; /* rowid handles of primary-key tables: handle-1 -> row key */
    size_t nhandles, caphandles;
    uint32_t *hslots; /* open-addressing hash: row key -> handle, so a row
                       * keeps one rowid (SQLite de-duplicates OR scans by it) */
    size_t nslots;
    int stmt_rollback_txn;      /* the statement ends the transaction: SQL_RB_* */
    int stmt_keep;              /* OR FAIL: a failing statement keeps its earlier rows */
    struct sql_upsert *upsert;  /* the running INSERT's ON CONFLICT clause */
    sql_wtargets prep_wt;       /* write targets of the statement being prepared */
    const sql_wtargets *run_wt; /* ... of the running one (NULL: none runs) */
    struct sql_sp {
        char *name;
        uint64_t mark;
    } * sp; /* open SAVEPOINTs, innermost last */
    size_t nsp, capsp;
    int sp_began;           /* the outermost SAVEPOINT began the transaction */
    int read_only;          /* sql_session_set_read_only */
    int txn_asof;           /* the transaction reads AS OF SYSTEM TIME (read-only) */
    int txn_read_only;      /* BEGIN READ ONLY: a snapshot, no locks, no writes */
    unsigned txn_stmts;     /* statements run in the explicit transaction */
    int txn_catalog;        /* the transaction ran DDL, GRANT-like or placement statements */
    int (*expired)(void *); /* statement deadline check, or NULL */
    void *expired_arg;
    void (*unstop)(void *); /* sql_session_set_unstop */
    void *unstop_arg;
    int stopped;    /* why the running statement was interrupted: MERR_TIMEOUT/CANCELED */
    int err_offset; /* of the last failed sql_prepare, or -1 */
    merr err;
    const struct sql_cluster_ops *cluster; /* system views' hook, or NULL */
    void *cluster_ctx;
    /* Authorization (auth.c): the session user, whether privileges are
     * enforced (secure nodes), the cached users and grants, and the reason
     * of the authorizer's last denial. */
    char user[64];
    int auth_enforce;
    struct sql_auth_cache *auth;
    char auth_msg[256];
    char auth_created[64], auth_dropped[64];
    uint32_t *drop_pol; /* tables dropped in the transaction: their policies go at commit */
    size_t ndrop_pol, capdrop_pol;
} sql_session;

/* Notes a table the statement being prepared writes (auth.c's authorizer). */
void sql_note_write_target(sql_session *s, const char *table);
/* Whether the running statement writes table (name). */
int sql_stmt_writes(const sql_session *s, const char *table);
/* Turns the KV's lock_for_write on or off (nothing when it lacks it or no
 * transaction is open). */
void sql_kv_for_write(sql_session *s, int on);

/* catalog.c */
void sql_desc_free(sql_desc *d);
int sql_desc_encode(const sql_desc *d, mbuf *out);
int sql_desc_decode(const uint8_t *p, size_t n, sql_desc *d, merr *e);
int sql_catalog_version(sql_session *s, uint64_t *v, merr *e);
int sql_catalog_read(sql_session *s, sql_desc **out, size_t *n, merr *e);
int sql_catalog_put(sql_session *s, const sql_desc *d, merr *e);
int sql_catalog_del(sql_session *s, const char *name, merr *e);
int sql_catalog_next_id(sql_session *s, uint32_t *id, merr *e);
int sql_catalog_bump(sql_session *s, merr *e);
/* Rebuilds the session's scratch db, tables and virtual tables from the
 * catalog as the current transaction sees it. */
int sql_catalog_load(sql_session *s, merr *e);
void sql_table_free(sql_table *t);
sql_table *sql_find_table_id(sql_session *s, uint32_t id);
sql_table *sql_find_table(sql_session *s, const char *name);
int sql_delete_prefix(sql_session *s, uint32_t tid, int64_t iid, merr *e);

/* session.c: begin (reading the schema version, reloading the catalog when
 * it changed) and end a read-write transaction of the session's own, for
 * work spanning several transactions (online CREATE INDEX). */
int sql_txn_begin(sql_session *s, merr *e);
int sql_txn_end(sql_session *s, int commit, merr *e);

/* vtab.c */
int sql_vtab_register(sql_session *s);
/* sysview.c: meridian_tables, meridian_indexes and the cluster views (on the user connection, and
 * on the scratch one so statements that use them parse there too) */
int sql_sysview_register(sql_session *s, sqlite3 *db);
/* 1 when name is one of the system views (meridian_tables, ...). */
int sql_sysview_is(const char *name);
/* Key of a table's primary index for a row (vals: all columns; rowid used
 * for rowid tables). */
int sql_row_key(const sql_table *t, sqlite3_value **vals, int64_t rowid, mbuf *out);
/* CREATE INDEX backfill: adds the entries of index ix for t's rows from key
 * *from on (from NULL or empty: the first row), at most limit rows (0: all).
 * *from gets the key to resume at, *done whether the table ended (either
 * may be NULL). Idempotent; for a unique index another row's entry is a
 * duplicate (MERR_EXISTS, SQLite's message). */
int sql_index_backfill(sql_session *s, sql_table *t, sql_index *ix, size_t limit, mbuf *from,
                       int *done, merr *e);

/* insert.c: *out gets a rewritten INSERT that supplies omitted defaults, or
 * NULL when the statement needs none. */
int sql_insert_rewrite(sql_session *s, const char *sql, char **out);
/* An INSERT's upsert clause, which SQLite does not run on virtual tables:
 * the session strips it and xUpdate applies it on a uniqueness conflict. */
typedef struct sql_upsert {
    int update;    /* DO UPDATE; else DO NOTHING */
    char **target; /* conflict target column names; none: any conflict */
    int ntarget;
    char *set_sql;      /* DO UPDATE SET <this> */
    char *where_sql;    /* DO UPDATE ... WHERE <this>, or NULL */
    sqlite3_stmt *stmt; /* the nested UPDATE, prepared at the first conflict */
} sql_upsert;
/* If sql is an INSERT with one ON CONFLICT clause we can run, *stripped gets
 * the statement without it and *u the clause; otherwise both stay NULL. */
int sql_upsert_parse(const char *sql, char **stripped, sql_upsert **u);
void sql_upsert_free(sql_upsert *u);
/* The nested UPDATE that applies DO UPDATE to one row of t: parameters
 * ?1..?ncols are the excluded row, then the row's rowid or key columns. */
int sql_upsert_sql(const struct sql_table *t, const sql_upsert *u, char **out);

/* asof.c: meridian_now() (and its alias cluster_logical_timestamp()) on db. */
int sql_asof_register(sql_session *s, sqlite3 *db);

/* The tokenizer (sql_lex, sql_tok_is, sql_tok_name) is common/sqllex.h. */

#endif
