/* Sessions and statements: classifies each statement (query, DDL,
 * transaction control), keeps the session's KV transaction, gives every
 * statement atomicity with a KV savepoint, and keeps the catalog current by
 * checking the schema version in every transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/backoff.h"
#include "common/mtime.h"
#include "sql/asof.h"
#include "sql/auth.h"
#include "sql/ddl.h"
#include "sql/placement.h"
#include "sql/session.h"
#include "sql/session_int.h"
#include "sql/sql_int.h"

int sql_session_open(const sql_kv_ops *ops, void *kv_ctx, sql_session **out, merr *e)
{
    sql_session *s = calloc(1, sizeof(*s));
    if (!s) return merr_set(e, MERR_NOMEM, "session: out of memory");
    s->ops = ops;
    s->kv = kv_ctx;
    s->catalog_dirty = 1;
    s->err_offset = -1;
    if (sqlite3_open(":memory:", &s->db) != SQLITE_OK ||
        sqlite3_open(":memory:", &s->scratch) != SQLITE_OK || sql_vtab_register(s) ||
        sql_sysview_register(s, s->db) || sql_sysview_register(s, s->scratch) ||
        sql_asof_register(s, s->db) || sql_asof_register(s, s->scratch)) {
        sql_session_close(s);
        return merr_set(e, MERR_INTERNAL, "session: cannot open SQLite");
    }
    /* Every gateway must agree on what a statement means: no double-quoted
     * string literals, no file attachments. */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    sqlite3_limit(s->db, SQLITE_LIMIT_ATTACHED, 0);
    /* Nobody, admin or not, may rewrite the connection's schema behind the
     * catalog (writable_schema, sqlite_dbpage): a table name pointed at
     * another table's id would read it under the wrong privileges. */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    snprintf(s->user, sizeof(s->user), "root");
    sql_auth_install(s);
    *out = s;
    return 0;
}

static void handles_reset(sql_session *s)
{
    for (size_t i = 0; i < s->nhandles; i++) mbuf_free(&s->handles[i]);
    s->nhandles = 0;
    if (s->nslots) memset(s->hslots, 0, s->nslots * sizeof(*s->hslots));
}

static void sp_clear(sql_session *s)
{
    for (size_t i = 0; i < s->nsp; i++) free(s->sp[i].name);
    s->nsp = 0;
    s->sp_began = 0;
}

/* Ends the session's transaction. One that rolled back or failed after a
 * statement that changes the catalog may have changed the schema the
 * session loaded, so the catalog reloads; any other leaves it as it was (a
 * concurrent change shows in the version the next transaction reads), and
 * a retry after a conflict does not pay a reload. */
static int txn_end(sql_session *s, int commit, merr *e)
{
    int rc = 0;
    if (!s->txn) return 0;
    if (commit) sql_placement_before_commit(s);
    if (commit) {
        rc = s->ops->commit(s->txn, e);
    } else {
        s->ops->rollback(s->txn);
    }
    sql_placement_txn_done(s, !rc && commit);
    if ((rc || !commit) && s->txn_catalog) s->catalog_dirty = 1;
    s->txn = NULL;
    s->txn_catalog = 0;
    s->explicit_txn = 0;
    s->txn_asof = 0;
    s->txn_read_only = 0;
    s->txn_stmts = 0;
    handles_reset(s);
    sp_clear(s);
    return rc;
}

void sql_session_close(sql_session *s)
{
    if (!s) return;
    txn_end(s, 0, NULL);
    for (size_t i = 0; i < s->ntables; i++) sql_table_free(s->tables[i]);
    free(s->tables);
    sqlite3_close(s->db);
    sqlite3_close(s->scratch);
    handles_reset(s);
    free(s->handles);
    free(s->hslots);
    free(s->sp);
    free(s->drop_pol);
    sql_auth_cache_free(s);
    free(s);
}

int sql_session_in_txn(const sql_session *s)
{
    return s->explicit_txn;
}

static int progress(void *arg)
{
    sql_session *s = arg;
    if (s->expired && s->expired(s->expired_arg)) {
        s->stopped = MERR_TIMEOUT;
        return 1;
    }
    return 0;
}

void sql_session_set_deadline(sql_session *s, int (*expired)(void *arg), void *arg)
{
    s->expired = expired;
    s->expired_arg = arg;
    sqlite3_progress_handler(s->db, expired ? 1000 : 0, expired ? progress : NULL, s);
}

void sql_session_set_unstop(sql_session *s, void (*fn)(void *arg), void *arg)
{
    s->unstop = fn;
    s->unstop_arg = arg;
}

void sql_session_set_cluster(sql_session *s, const sql_cluster_ops *ops, void *ctx)
{
    s->cluster = ops;
    s->cluster_ctx = ctx;
}

void sql_session_set_read_only(sql_session *s, int on)
{
    s->read_only = on != 0;
}

void sql_session_cancel(sql_session *s)
{
    __atomic_store_n(&s->stopped, MERR_CANCELED, __ATOMIC_SEQ_CST);
    sqlite3_interrupt(s->db);
}

/* Reloads the catalog if another transaction changed the schema (or ours
 * failed). Reading the version also puts it in the read set, so a
 * concurrent DDL makes this transaction fail at commit. */
static int check_schema(sql_session *s, merr *e)
{
    uint64_t v;
    int rc = sql_catalog_version(s, &v, e);
    if (rc) return rc;
    int stale = v != s->version || s->catalog_dirty;
    if (stale) rc = sql_catalog_load(s, e);
    /* Users and grants change the version too: reload them with it. */
    if (!rc && (stale || !s->auth)) rc = sql_auth_load(s, e);
    return rc;
}

static int txn_begin(sql_session *s, unsigned flags, merr *e)
{
    if (s->read_only) flags |= SQL_KV_READ_ONLY;
    int rc = s->ops->begin(s->kv, flags, &s->txn, e);
    if (rc) return rc;
    rc = check_schema(s, e);
    if (rc) txn_end(s, 0, NULL);
    return rc;
}

int sql_txn_begin(sql_session *s, merr *e)
{
    return txn_begin(s, 0, e);
}

int sql_txn_end(sql_session *s, int commit, merr *e)
{
    return txn_end(s, commit, e);
}

/* A read-only transaction AS OF SYSTEM TIME at; the catalog it loads is the
 * one of that time (a table made later does not exist there). */
static int txn_begin_at(sql_session *s, const sql_kv_at *at, merr *e)
{
    int rc = s->ops->begin_at(s->kv, at, &s->txn, e);
    if (!rc && (rc = check_schema(s, e))) txn_end(s, 0, NULL);
    if (rc) {
        s->catalog_dirty = 1;
        if (e && strncmp(e->msg, "AS OF", 5)) {
            merr m = *e;
            merr_set(e, rc, "AS OF SYSTEM TIME: %s", m.msg[0] ? m.msg : merr_str(rc));
        }
        return rc;
    }
    s->txn_asof = 1;
    return 0;
}

/* Refusals that must come before the statement touches the transaction
 * (a failed statement undoes its writes back to its savepoint). */
static int stmt_refuse(sql_stmt *st, merr *e)
{
    sql_session *s = st->s;
    if (st->asof && s->txn)
        return merr_set(e, MERR_INVALID,
                        "AS OF SYSTEM TIME cannot be used inside an open transaction (give it "
                        "in BEGIN ... AS OF SYSTEM TIME instead)");
    if (s->txn_asof && !sql_stmt_readonly(st))
        return merr_set(e, MERR_INVALID,
                        "cannot write in a read-only AS OF SYSTEM TIME transaction");
    if (s->txn_read_only && !sql_stmt_readonly(st))
        return merr_set(e, MERR_INVALID, "cannot write in a READ ONLY transaction");
    return 0;
}

static int stmt_begin(sql_stmt *st, merr *e)
{
    sql_session *s = st->s;
    int rc = 0;
    st->autocommit = !s->txn;
    if (s->explicit_txn) s->txn_stmts++;
    /* A statement on its own that only reads is a read-only transaction: a
     * snapshot read that never aborts (and takes no locks in the cluster). */
    if (!s->txn && st->asof)
        rc = txn_begin_at(s, &st->at, e);
    else if (!s->txn)
        rc = txn_begin(s, st->st && sqlite3_stmt_readonly(st->st) ? SQL_KV_READ_ONLY : 0, e);
    else if (s->catalog_dirty)
        rc = check_schema(s, e);
    if (!rc) rc = s->ops->savepoint(s->txn, &st->mark, e);
    s->stmt_rollback_txn = 0;
    __atomic_store_n(&s->stopped, 0, __ATOMIC_SEQ_CST);
    s->stmt_keep = 0;
    st->started = 1;
    return rc;
}

/* Ends a statement: commits an autocommit one; on failure undoes its writes. */
static int stmt_end(sql_stmt *st, int ok, merr *e)
{
    sql_session *s = st->s;
    st->done = 1;
    if (!s->txn) return 0;
    if (s->stmt_rollback_txn) return txn_end(s, 0, NULL);
    if (ok || s->stmt_keep) return st->autocommit ? txn_end(s, 1, e) : 0;
    if (st->autocommit) return txn_end(s, 0, NULL);
    merr ignore = {0};
    if (s->ops->rollback_to(s->txn, st->mark, &ignore)) return txn_end(s, 0, NULL);
    if (st->kind == K_DDL || st->kind == K_AUTH) s->catalog_dirty = 1;
    return 0;
}

/* BEGIN, COMMIT, ROLLBACK [TO], SAVEPOINT, RELEASE, SET TRANSACTION: run by
 * the session itself (run_control), naming no table. */
static int is_control(int kind)
{
    return kind != K_QUERY && kind != K_DDL && kind != K_AUTH && kind != K_PLACEMENT;
}

static int classify(const char *text, sql_stmt *st, merr *e)
{
    size_t pos = 0;
    sql_tok t = sql_lex(text, &pos);
    st->kind = K_QUERY;
    if (sql_tok_is(&t, "BEGIN")) {
        /* BEGIN [TRANSACTION | WORK] [READ ONLY | READ WRITE]: a read-only
         * transaction reads one snapshot without locks (PostgreSQL's
         * spelling; SQLite's DEFERRED etc. are still taken and ignored). */
        st->kind = K_BEGIN;
        size_t p2 = pos;
        sql_tok x = sql_lex(text, &p2);
        if (sql_tok_is(&x, "TRANSACTION") || sql_tok_is(&x, "WORK")) x = sql_lex(text, &p2);
        if (sql_tok_is(&x, "READ")) {
            sql_tok y = sql_lex(text, &p2);
            if (sql_tok_is(&y, "ONLY"))
                st->read_only = 1;
            else if (!sql_tok_is(&y, "WRITE"))
                return merr_set(e, MERR_INVALID, "BEGIN READ: want READ ONLY or READ WRITE");
            st->rw_off = (size_t)(x.p - text);
            st->rw_len = (size_t)(y.p + y.n - x.p);
        }
    } else if (sql_tok_is(&t, "COMMIT") || sql_tok_is(&t, "END")) {
        st->kind = K_COMMIT;
    } else if (sql_tok_is(&t, "ROLLBACK")) {
        st->kind = K_ROLLBACK;
        sql_tok x = sql_lex(text, &pos);
        if (sql_tok_is(&x, "TRANSACTION")) x = sql_lex(text, &pos);
        if (sql_tok_is(&x, "TO")) {
            st->kind = K_ROLLBACK_TO;
            x = sql_lex(text, &pos);
            if (sql_tok_is(&x, "SAVEPOINT")) x = sql_lex(text, &pos);
            st->spname = sql_tok_name(&x);
        }
    } else if (sql_tok_is(&t, "SAVEPOINT") || sql_tok_is(&t, "RELEASE")) {
        st->kind = sql_tok_is(&t, "SAVEPOINT") ? K_SAVEPOINT : K_RELEASE;
        sql_tok x = sql_lex(text, &pos);
        if (st->kind == K_RELEASE && sql_tok_is(&x, "SAVEPOINT")) x = sql_lex(text, &pos);
        st->spname = sql_tok_name(&x);
    } else if (sql_tok_is(&t, "SET")) {
        size_t p2 = pos;
        sql_tok x = sql_lex(text, &p2);
        if (sql_tok_is(&x, "TRANSACTION")) st->kind = K_SET_TXN;
    } else if (sql_auth_is(text)) {
        st->kind = K_AUTH;
    } else if (sql_placement_is(text)) {
        st->kind = K_PLACEMENT;
    } else if (sql_tok_is(&t, "CREATE") || sql_tok_is(&t, "DROP") || sql_tok_is(&t, "ALTER")) {
        st->kind = K_DDL;
        return sql_ddl_inspect(text, &st->ddl, e);
    } else if (sql_tok_is(&t, "ATTACH") || sql_tok_is(&t, "DETACH") || sql_tok_is(&t, "VACUUM") ||
               sql_tok_is(&t, "REINDEX")) {
        return merr_set(e, MERR_UNSUPPORTED, "%.*s is not supported", (int)t.n, t.p);
    }
    return 0;
}

/* A statement that came with AS OF SYSTEM TIME: only reads may have it
 * (a query is checked again once SQLite says whether it writes). */
static int asof_accept(sql_session *s, sql_stmt *st, const sql_kv_at *at, merr *e)
{
    if (!s->ops->begin_at)
        return merr_set(e, MERR_UNSUPPORTED, "AS OF SYSTEM TIME is not supported by this store");
    if (st->kind != K_QUERY && st->kind != K_BEGIN && st->kind != K_SET_TXN)
        return merr_set(e, MERR_INVALID,
                        "AS OF SYSTEM TIME: only SELECT, BEGIN and SET TRANSACTION read in the "
                        "past; this statement writes or controls a transaction");
    st->asof = 1;
    st->at = *at;
    return 0;
}

/* SET TRANSACTION AS OF SYSTEM TIME <expr> (the clause already blanked):
 * nothing else may follow TRANSACTION. */
static int prepare_set_txn(sql_stmt *st, const char *src, const char **rest, merr *e)
{
    size_t pos = 0;
    sql_lex(src, &pos); /* SET */
    sql_lex(src, &pos); /* TRANSACTION */
    size_t end = pos;
    sql_tok t = sql_lex(src, &end);
    if (!st->asof || (t.kind && !(t.kind == 'p' && *t.p == ';')))
        return merr_set(e, MERR_UNSUPPORTED,
                        "SET TRANSACTION: only SET TRANSACTION AS OF SYSTEM TIME <expr> is "
                        "supported");
    *rest = src + end;
    st->text = strndup(src, end);
    return st->text ? 0 : merr_set(e, MERR_NOMEM, "out of memory");
}

/* User, role and grant statements: parsed here; SHOW becomes a query over
 * the session's cached users and grants; the text kept is redacted. */
static int prepare_auth(sql_session *s, sql_stmt *st, const char *text, const char **rest, merr *e)
{
    size_t end = 0;
    int rc = sql_auth_parse(text, &st->auth, &end, e);
    if (rc) return rc;
    *rest = text + end;
    char *one = strndup(text, end);
    st->text = one ? sql_auth_redact(one) : NULL;
    free(one);
    if (!st->text) return merr_set(e, MERR_NOMEM, "out of memory");
    if (st->auth.kind != SQL_AUTH_SHOW_USERS && st->auth.kind != SQL_AUTH_SHOW_GRANTS) return 0;
    char *q = NULL;
    if ((rc = sql_auth_show_sql(s, &st->auth, &q, e))) return rc;
    st->kind = K_QUERY;
    if (sqlite3_prepare_v2(s->db, q, -1, &st->st, NULL) != SQLITE_OK)
        rc = merr_set(e, MERR_INTERNAL, "SHOW: %s", sqlite3_errmsg(s->db));
    free(q);
    return rc;
}

/* SET/RESET PLACEMENT run at sql_step; SHOW becomes a query. */
static int prepare_placement(sql_session *s, sql_stmt *st, const char *text, const char **rest,
                             merr *e)
{
    size_t end = 0;
    char *q = NULL;
    int rc = sql_placement_parse(text, &st->place, &end, e);
    if (!rc) rc = sql_placement_show_sql(st->place, &q, e);
    *rest = text + end;
    if (!rc && !(st->text = strndup(text, end))) rc = merr_set(e, MERR_NOMEM, "out of memory");
    if (!rc && q) {
        st->kind = K_QUERY;
        if (sqlite3_prepare_v2(s->db, q, -1, &st->st, NULL) != SQLITE_OK)
            rc = merr_set(e, MERR_INTERNAL, "SHOW PLACEMENT: %s", sqlite3_errmsg(s->db));
    }
    free(q);
    return rc;
}

void sql_session_set_user(sql_session *s, const char *user, int enforce)
{
    snprintf(s->user, sizeof(s->user), "%s", user && *user ? user : "root");
    s->auth_enforce = enforce != 0;
}

int sql_session_user_verifier(sql_session *s, const char *user, char *verifier, size_t cap,
                              int *found, merr *e)
{
    return sql_auth_lookup(s, user, verifier, cap, found, e);
}

int sql_prepare(sql_session *s, const char *sql, sql_stmt **out, const char **tail, merr *e)
{
    size_t pos = 0;
    const char *rest = NULL;
    sqlite3_stmt *probe = NULL;
    sql_stmt *st = NULL;
    char *blanked = NULL;
    sql_kv_at at;
    int rc = 0;
    *out = NULL;
    s->err_offset = -1;
    sql_tok first = sql_lex(sql, &pos);
    /* Empty statements before this one: SQLite would skip them and run what
     * follows, which must be classified (a DDL statement must not reach
     * the session's own SQLite as a query). */
    while (first.kind == 'p' && first.n == 1 && first.p[0] == ';') first = sql_lex(sql, &pos);
    if (!first.kind) {
        if (tail) *tail = sql + pos;
        return 0;
    }
    /* AS OF SYSTEM TIME, which SQLite does not parse, is blanked out with
     * spaces: offsets into src are offsets into the caller's text. */
    if ((rc = sql_asof_strip(first.p, &blanked, &at, e))) return rc;
    const char *src = blanked ? blanked : first.p;
    st = calloc(1, sizeof(*st));
    if (!st) {
        free(blanked);
        return merr_set(e, MERR_NOMEM, "out of memory");
    }
    st->s = s;
    rc = classify(src, st, e);
    if (rc) goto err;
    /* Prepare against a current catalog (outside a transaction: peek) or,
     * AS OF SYSTEM TIME, the catalog of that time (a table dropped since).
     * A statement that names no table (BEGIN, COMMIT, SAVEPOINT, ...)
     * needs none: no read of the catalog's version for it, which would
     * cost every transaction's BEGIN a round trip. */
    if (!s->txn && !(is_control(st->kind) && !blanked)) {
        rc = blanked && s->ops->begin_at ? txn_begin_at(s, &at, e)
                                         : txn_begin(s, SQL_KV_READ_ONLY, e);
        if (rc) goto err;
        txn_end(s, 0, NULL);
        s->catalog_dirty = 0;
    } else if (s->txn && s->catalog_dirty && (rc = check_schema(s, e))) {
        goto err;
    }
    if (sql_auth_user_missing(s)) {
        rc = merr_set(e, MERR_INVALID, "permission denied: user %s does not exist", s->user);
        goto err;
    }
    /* The scratch database has the same schema, so it finds the statement's
     * end and reports syntax errors exactly as SQLite does. */
    sqlite3 *parser = s->scratch;
    int had_asof = blanked != NULL;
    if (!rc && st->rw_len) { /* BEGIN ... READ ONLY: SQLite sees a plain BEGIN */
        if (!blanked && !(blanked = strdup(first.p))) rc = merr_set(e, MERR_NOMEM, "out of memory");
        if (!rc) memset(blanked + st->rw_off, ' ', st->rw_len);
        src = blanked;
    }
    if (!rc && st->kind == K_DDL) rc = sql_ddl_refuse(s, &st->ddl, e);
    if (rc) goto err;
    if (had_asof && (rc = asof_accept(s, st, &at, e))) goto err;
    if (st->kind == K_SET_TXN) {
        if ((rc = prepare_set_txn(st, src, &rest, e))) goto err;
        goto done;
    }
    if (st->kind == K_PLACEMENT) {
        if ((rc = prepare_placement(s, st, src, &rest, e))) goto err;
        goto done;
    }
    if (st->kind == K_AUTH) {
        rc = prepare_auth(s, st, src, &rest, e);
        if (rc) goto err;
        goto done;
    }
    s->auth_msg[0] = 0;
    if (sqlite3_prepare_v2(parser, src, -1, &probe, &rest) != SQLITE_OK) {
        int off = sqlite3_error_offset(parser);
        if (off >= 0) s->err_offset = (int)(first.p - sql) + off;
        rc = merr_set(e, MERR_INVALID, "%s", sqlite3_errmsg(parser));
        goto err;
    }
    if (!rest) rest = src + strlen(src);
    st->text = strndup(src, (size_t)(rest - src));
    if (!st->text) {
        rc = merr_set(e, MERR_NOMEM, "out of memory");
        goto err;
    }
    if (st->kind == K_QUERY) {
        char *re = NULL, *stripped = NULL;
        sqlite3_finalize(probe);
        probe = NULL;
        rc = sql_upsert_parse(st->text, &stripped, &st->upsert);
        if (rc) {
            rc = merr_set(e, rc, "out of memory");
            goto err;
        }
        if (stripped) {
            free(st->text);
            st->text = stripped;
        }
        rc = sql_insert_rewrite(s, st->text, &re);
        if (rc) {
            rc = merr_set(e, rc, "%s", re ? re : "cannot rewrite INSERT");
            free(re);
            goto err;
        }
        memset(&s->prep_wt, 0, sizeof(s->prep_wt));
        if (sqlite3_prepare_v2(s->db, re ? re : st->text, -1, &probe, NULL) != SQLITE_OK) {
            /* Offsets into a rewritten INSERT would point at the wrong text. */
            int off = re || st->upsert ? -1 : sqlite3_error_offset(s->db);
            if (off >= 0) s->err_offset = (int)(first.p - sql) + off;
            rc = merr_set(e, MERR_INVALID, "%s",
                          s->auth_msg[0] ? s->auth_msg : sqlite3_errmsg(s->db));
            free(re);
            goto err;
        }
        free(re);
        st->st = probe;
        st->wt = s->prep_wt;
        probe = NULL;
        if (st->asof && !sqlite3_stmt_readonly(st->st)) {
            rc = merr_set(e, MERR_INVALID,
                          "AS OF SYSTEM TIME: this statement writes; only reads can be made "
                          "in the past");
            goto err;
        }
    }
    sqlite3_finalize(probe);
done:
    if (tail) *tail = first.p + (rest - src);
    free(blanked);
    *out = st;
    return 0;
err:
    free(blanked);
    sqlite3_finalize(probe);
    sqlite3_finalize(st->st); /* a query refused after SQLite prepared it */
    sql_upsert_free(st->upsert);
    sql_ddl_info_free(&st->ddl);
    sql_auth_stmt_free(&st->auth);
    sql_placement_free(st->place);
    free(st->text);
    free(st->spname);
    free(st);
    return rc;
}

static int run_savepoint(sql_stmt *st, merr *e)
{
    sql_session *s = st->s;
    int rc = 0;
    if (!st->spname) return merr_set(e, MERR_INVALID, "savepoint name missing");
    if (st->kind == K_SAVEPOINT) {
        if (!s->txn) {
            rc = txn_begin(s, 0, e);
            if (rc) return rc;
            s->explicit_txn = 1;
            s->sp_began = 1;
        }
        if (s->nsp == s->capsp) {
            size_t nc = s->capsp ? s->capsp * 2 : 8;
            void *p = realloc(s->sp, nc * sizeof(*s->sp));
            if (!p) return merr_set(e, MERR_NOMEM, "out of memory");
            s->sp = p;
            s->capsp = nc;
        }
        s->sp[s->nsp].name = strdup(st->spname);
        rc = s->ops->savepoint(s->txn, &s->sp[s->nsp].mark, e);
        s->nsp++;
        return rc;
    }
    size_t i = s->nsp;
    while (i > 0 && sqlite3_stricmp(s->sp[i - 1].name, st->spname) != 0) i--;
    if (i == 0) return merr_set(e, MERR_INVALID, "no such savepoint: %s", st->spname);
    i--;
    if (st->kind == K_ROLLBACK_TO) {
        rc = s->ops->rollback_to(s->txn, s->sp[i].mark, e);
        s->catalog_dirty = 1;
        while (s->nsp > i + 1) free(s->sp[--s->nsp].name);
        return rc;
    }
    while (s->nsp > i) free(s->sp[--s->nsp].name);
    if (s->nsp == 0 && s->sp_began) return txn_end(s, 1, e);
    return 0;
}

static int run_control(sql_stmt *st, merr *e)
{
    sql_session *s = st->s;
    int rc;
    switch (st->kind) {
    case K_BEGIN:
        if (s->explicit_txn)
            return merr_set(e, MERR_INVALID, "cannot start a transaction within a transaction");
        rc = st->asof ? txn_begin_at(s, &st->at, e)
                      : txn_begin(s, st->read_only ? SQL_KV_READ_ONLY : 0, e);
        if (!rc) s->explicit_txn = 1, s->txn_read_only = st->read_only;
        return rc;
    case K_SET_TXN:
        if (!s->explicit_txn)
            return merr_set(e, MERR_INVALID,
                            "SET TRANSACTION AS OF SYSTEM TIME outside a transaction (use "
                            "BEGIN ... AS OF SYSTEM TIME or SELECT ... AS OF SYSTEM TIME)");
        if (s->txn_stmts || s->nsp)
            return merr_set(e, MERR_INVALID,
                            "SET TRANSACTION AS OF SYSTEM TIME must come first in the "
                            "transaction");
        /* Nothing was read or written yet: begin again, in the past. If
         * that fails the transaction goes on as it was begun. */
        txn_end(s, 0, NULL);
        rc = txn_begin_at(s, &st->at, e);
        if (rc && !txn_begin(s, 0, NULL)) s->explicit_txn = 1;
        if (!rc) s->explicit_txn = 1;
        return rc;
    case K_COMMIT:
        if (!s->explicit_txn)
            return merr_set(e, MERR_INVALID, "cannot commit - no transaction is active");
        return txn_end(s, 1, e);
    case K_ROLLBACK:
        if (!s->explicit_txn)
            return merr_set(e, MERR_INVALID, "cannot rollback - no transaction is active");
        return txn_end(s, 0, e);
    default: return run_savepoint(st, e);
    }
}

/* How often a statement on its own is rerun after losing a conflict or
 * meeting a range mid-split, before the abort reaches the client. The
 * backoff between runs (10 ms doubling to 1 s, about 2 s in all) outlasts
 * a split's lock-table drain on a loaded node; rerunning at once would only
 * meet the same split again. The statement timeout still bounds it all. */
#define SQL_AUTO_RETRIES  8
#define SQL_RETRY_BASE_NS (10 * MTIME_MS)
#define SQL_RETRY_MAX_NS  MTIME_S

/* 1 when the statement, on its own (autocommit) and having shown no row,
 * failed with rc retryably and runs again: it is reset for the rerun after
 * the backoff. Sessions run on worker threads, so the pause blocks no loop. */
static int auto_retry(sql_stmt *st, int rc, merr *e)
{
    sql_session *s = st->s;
    if ((rc != MERR_ABORTED && rc != MERR_RETRY) || !st->autocommit || st->returned_rows ||
        st->retries >= SQL_AUTO_RETRIES || (s->expired && s->expired(s->expired_arg)))
        return 0;
    mbackoff_retry_sleep(st->retries, SQL_RETRY_BASE_NS, SQL_RETRY_MAX_NS);
    st->retries++;
    st->started = st->done = 0;
    if (st->st) sqlite3_reset(st->st);
    if (e) merr_clear(e);
    return 1;
}

void sql_note_write_target(sql_session *s, const char *table)
{
    sql_wtargets *w = &s->prep_wt;
    for (int i = 0; i < w->n; i++)
        if (!sqlite3_stricmp(w->name[i], table)) return;
    if (w->n == SQL_WT_MAX) {
        w->all = 1; /* locking more for writing is only stricter */
        return;
    }
    snprintf(w->name[w->n++], sizeof(w->name[0]), "%s", table);
}

int sql_stmt_writes(const sql_session *s, const char *table)
{
    const sql_wtargets *w = s->run_wt;
    if (!w) return 0;
    if (w->all) return 1;
    for (int i = 0; i < w->n; i++)
        if (!sqlite3_stricmp(w->name[i], table)) return 1;
    return 0;
}

void sql_kv_for_write(sql_session *s, int on)
{
    if (s->txn && s->ops->lock_for_write) s->ops->lock_for_write(s->txn, on);
}

/* A statement error inside a read-write transaction that the KV says can
 * no longer commit is the lost conflict it really is (sql/kv.h, alive):
 * retryable, and retried on its own like any abort. Else the error stands. */
static int lost_conflict(sql_session *s, merr *e)
{
    merr ae = {0};
    if (!s->txn || !s->ops->alive || s->ops->alive(s->txn, &ae) != MERR_ABORTED)
        return MERR_INVALID;
    char was[sizeof(ae.msg)];
    snprintf(was, sizeof(was), "%s", e ? e->msg : "");
    s->stmt_rollback_txn = SQL_RB_CONFLICT; /* the transaction ends, as for any lost conflict */
    return merr_set(e, MERR_ABORTED, "transaction aborted: %s (the statement had failed: %s)",
                    ae.msg, was);
}

int sql_step(sql_stmt *st, merr *e)
{
    sql_session *s = st->s;
    int rc;
    if (st->done) return 0;
    if (st->kind == K_PLACEMENT) {
        st->done = 1;
        s->txn_catalog = 1;
        return sql_placement_exec(s, st->place, e);
    }
    if (is_control(st->kind)) {
        st->done = 1;
        return run_control(st, e);
    }
    for (;;) {
        if (!st->started) {
            if ((rc = stmt_refuse(st, e))) return rc; /* the transaction is untouched */
            rc = stmt_begin(st, e);
            if (rc) {
                stmt_end(st, 0, NULL);
                return rc;
            }
        }
        if (st->kind == K_DDL || st->kind == K_AUTH) {
            s->txn_catalog = 1;
            st->ddl.online = st->autocommit; /* CREATE INDEX on its own: online */
            rc = st->kind == K_DDL ? sql_ddl_exec(s, st->text, &st->ddl, e)
                                   : sql_auth_exec(s, &st->auth, e);
            if (rc)
                stmt_end(st, 0, NULL);
            else
                rc = stmt_end(st, 1, e);
            /* DDL on its own that lost a conflict (a range split under it,
             * a concurrent writer) runs again as a query would: the next
             * transaction reloads the catalog the failed one left dirty. */
            if (auto_retry(st, rc, e)) continue;
            /* The index is in, WRITE_ONLY: backfill it (its batches retry
             * on their own; the statement does not run again). */
            if (!rc && st->kind == K_DDL && st->ddl.bf_iid)
                rc = sql_ddl_online_index(s, &st->ddl, e);
            return rc;
        }
        s->upsert = st->upsert;
        s->auth_msg[0] = 0;
        s->run_wt = &st->wt;
        int src = sqlite3_step(st->st);
        s->run_wt = NULL;
        s->upsert = NULL;
        if (src == SQLITE_ROW) {
            st->returned_rows = 1;
            return 1;
        }
        if (src == SQLITE_DONE) {
            rc = stmt_end(st, 1, e);
            /* A statement on its own that lost a conflict at commit and has
             * shown nothing yet simply runs again, in a new transaction. */
            /* Not when it was canceled meanwhile (a commit stopped waiting
             * for a lock is aborted): the deadline hook would not see a
             * cancel in a short statement. */
            if (auto_retry(st, rc, e)) continue;
            return rc;
        }
        int stopped = __atomic_exchange_n(&s->stopped, 0, __ATOMIC_SEQ_CST);
        if (src == SQLITE_INTERRUPT && stopped)
            rc = merr_set(e, stopped, "%s",
                          stopped == MERR_TIMEOUT ? "statement timeout" : "canceled");
        else
            rc = merr_set(e, s->stmt_rollback_txn == SQL_RB_CONFLICT ? MERR_ABORTED : MERR_INVALID,
                          "%s", s->auth_msg[0] ? s->auth_msg : sqlite3_errmsg(s->db));
        if (rc == MERR_INVALID) rc = lost_conflict(s, e);
        sqlite3_reset(st->st);
        /* OR FAIL on its own commits the rows before the failing one: if
         * that commit fails, its error is the statement's (the client must
         * not take the constraint error as "earlier rows kept"). */
        merr ce = {0};
        if (stmt_end(st, 0, &ce) && ce.code) {
            rc = ce.code;
            if (e) *e = ce;
        }
        /* Lost a conflict before commit (a read wounded, locks gone with a
         * lease): on its own and with nothing shown, it reruns too. */
        if (auto_retry(st, rc, e)) continue;
        return rc;
    }
}

int sql_finalize(sql_stmt *st, merr *e)
{
    int rc = 0;
    if (!st) return 0;
    if (st->started && !st->done) {
        sqlite3_reset(st->st);
        rc = stmt_end(st, 1, e);
    }
    sqlite3_finalize(st->st);
    sql_upsert_free(st->upsert);
    sql_ddl_info_free(&st->ddl);
    sql_auth_stmt_free(&st->auth);
    sql_placement_free(st->place);
    free(st->text);
    free(st->spname);
    free(st);
    return rc;
}

int sql_reset(sql_stmt *st, merr *e)
{
    int rc = 0;
    if (st->started && !st->done) {
        if (st->st) sqlite3_reset(st->st);
        rc = stmt_end(st, 1, e);
    }
    if (st->st) {
        sqlite3_reset(st->st);
        sqlite3_clear_bindings(st->st);
    }
    st->started = st->done = st->returned_rows = st->retries = 0;
    return rc;
}
