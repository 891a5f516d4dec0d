/* DDL: CREATE/DROP TABLE, CREATE/DROP INDEX, CREATE/DROP VIEW, ALTER TABLE
 * (ADD COLUMN, RENAME TO, RENAME COLUMN) and CREATE TABLE ... AS SELECT.
 *
 * The statement runs first in the scratch database, so SQLite parses and
 * validates it and rewrites whatever it touches (a rename updates indexes and
 * views). The scratch schema afterwards is the new truth: every object's
 * descriptor is rebuilt from it, keeping table and index ids by name, and
 * written to the KV in the current transaction with a bumped schema version.
 * Dropped objects lose their data; new indexes are backfilled; the session
 * then reloads its catalog. All of it is in one KV transaction, so DDL
 * commits or rolls back with everything else — except CREATE INDEX on its
 * own on a populated table, which only adds the index WRITE_ONLY here and
 * is backfilled online after the commit (ddl_online.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/auth.h"
#include "sql/ddl.h"
#include "sql/placement.h"
#include "sql/record.h"
#include "sql/row.h"
#include "sql/vtab.h"

typedef struct newidx {
    uint32_t tid, iid;
    int write_only; /* added WRITE_ONLY: the online backfill follows the commit */
} newidx;

/* *has = 1 when table tid stores at least one row. */
static int table_has_rows(sql_session *s, uint32_t tid, int *has, merr *e)
{
    mkey_val pv[2] = {mkey_int(tid, 0), mkey_int(SQL_PRIMARY_INDEX, 0)};
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    sql_kv_iter *it = NULL;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc = mkey_encode_prefix(pv, 2, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (!rc) rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 0, 1, &it, e);
    if (!rc) rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
    *has = rc == 1;
    if (it) s->ops->iter_close(it);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc < 0 ? rc : 0;
}

static int idx_number_match(const char *a, const char *b)
{
    /* SQLite names its own indexes sqlite_autoindex_<table>_<n>; a renamed
     * table keeps <n>. */
    const char *pa = strrchr(a, '_'), *pb = strrchr(b, '_');
    return pa && pb && strcmp(pa, pb) == 0;
}

static char *dupz(const unsigned char *s)
{
    return s ? strdup((const char *)s) : NULL;
}

/* Builds the descriptors of the scratch schema and writes the differences.
 * With online, an index added to a table that has rows starts WRITE_ONLY. */
static int sync_catalog(sql_session *s, const char *old_name, const char *new_name, int online,
                        newidx **added, size_t *nadded, merr *e)
{
    sql_desc *old = NULL;
    size_t nold = 0, na = 0;
    sqlite3_stmt *st = NULL, *ist = NULL;
    int rc = sql_catalog_read(s, &old, &nold, e);
    int *seen = calloc(nold + 1, sizeof(int));
    newidx *add = calloc(256, sizeof(*add));
    mbuf a = MBUF_INIT, b = MBUF_INIT;
    if (rc) goto out;
    if (!seen || !add) {
        rc = merr_set(e, MERR_NOMEM, "out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(s->scratch,
                           "SELECT type, name, sql FROM sqlite_schema WHERE type IN "
                           "('table','view') AND name NOT LIKE 'sqlite_%'",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->scratch,
                           "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND "
                           "tbl_name = ?1 ORDER BY name",
                           -1, &ist, NULL) != SQLITE_OK) {
        rc = merr_set(e, MERR_INTERNAL, "ddl: %s", sqlite3_errmsg(s->scratch));
        goto out;
    }
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        sql_desc d = {0};
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *lookup = name;
        if (new_name && old_name && sqlite3_stricmp(name, new_name) == 0) lookup = old_name;
        d.kind =
            strcmp((const char *)sqlite3_column_text(st, 0), "view") ? SQL_OBJ_TABLE : SQL_OBJ_VIEW;
        d.name = dupz(sqlite3_column_text(st, 1));
        d.sql = dupz(sqlite3_column_text(st, 2));
        sql_desc *prev = NULL;
        for (size_t i = 0; i < nold; i++)
            if (sqlite3_stricmp(old[i].name, lookup) == 0 && old[i].kind == d.kind) {
                prev = &old[i];
                seen[i] = 1;
            }
        d.next_index_id = prev ? prev->next_index_id : SQL_PRIMARY_INDEX + 1;
        if (prev)
            d.id = prev->id;
        else if (d.kind == SQL_OBJ_TABLE)
            rc = sql_catalog_next_id(s, &d.id, e);
        if (!rc && d.kind == SQL_OBJ_TABLE) {
            sqlite3_bind_text(ist, 1, name, -1, SQLITE_TRANSIENT);
            d.idx = calloc(64, sizeof(*d.idx));
            if (!d.idx) rc = merr_set(e, MERR_NOMEM, "out of memory");
            while (!rc && sqlite3_step(ist) == SQLITE_ROW) {
                if (d.nidx == 64) {
                    rc = merr_set(e, MERR_TOOBIG, "table %s: too many indexes", name);
                    break;
                }
                sql_desc_index *x = &d.idx[d.nidx++];
                x->name = dupz(sqlite3_column_text(ist, 0));
                x->sql = dupz(sqlite3_column_text(ist, 1));
                int auto_ = strncmp(x->name, "sqlite_autoindex_", 17) == 0;
                for (size_t j = 0; prev && j < prev->nidx && !x->id; j++) {
                    const char *pn = prev->idx[j].name;
                    int pauto = strncmp(pn, "sqlite_autoindex_", 17) == 0;
                    if (auto_ ? (pauto && idx_number_match(pn, x->name))
                              : sqlite3_stricmp(pn, x->name) == 0) {
                        x->id = prev->idx[j].id;
                        x->state = prev->idx[j].state;
                    }
                }
                if (!x->id) {
                    int has = 0;
                    x->id = d.next_index_id++;
                    if (prev && online && !auto_) rc = table_has_rows(s, d.id, &has, e);
                    if (has) x->state = SQL_IDX_WRITE_ONLY;
                    if (prev && na < 256) add[na++] = (newidx){d.id, x->id, has};
                }
            }
            sqlite3_reset(ist);
        }
        mbuf_reset(&a);
        mbuf_reset(&b);
        if (!rc && prev) rc = sql_desc_encode(prev, &a);
        if (!rc) rc = sql_desc_encode(&d, &b);
        int changed = !prev || a.len != b.len || memcmp(a.data, b.data, a.len) != 0 ||
                      strcmp(prev->name, d.name) != 0;
        if (!rc && changed) {
            if (prev && strcmp(prev->name, d.name) != 0) rc = sql_catalog_del(s, prev->name, e);
            if (!rc) rc = sql_catalog_put(s, &d, e);
            /* Indexes that disappeared lose their entries. */
            for (size_t j = 0; prev && j < prev->nidx && !rc; j++) {
                int kept = 0;
                for (size_t k = 0; k < d.nidx; k++) kept |= d.idx[k].id == prev->idx[j].id;
                if (!kept) rc = sql_delete_prefix(s, d.id, prev->idx[j].id, e);
            }
        }
        sql_desc_free(&d);
    }
    for (size_t i = 0; i < nold && !rc; i++) {
        if (seen[i]) continue;
        rc = sql_catalog_del(s, old[i].name, e);
        if (!rc && old[i].kind == SQL_OBJ_TABLE) rc = sql_delete_prefix(s, old[i].id, -1, e);
        if (!rc && old[i].kind == SQL_OBJ_TABLE) rc = sql_placement_table_dropped(s, old[i].id, e);
    }
out:
    sqlite3_finalize(st);
    sqlite3_finalize(ist);
    for (size_t i = 0; i < nold; i++) sql_desc_free(&old[i]);
    free(old);
    free(seen);
    mbuf_free(&a);
    mbuf_free(&b);
    if (rc) {
        free(add);
        return rc;
    }
    *added = add;
    *nadded = na;
    return 0;
}

/* Steps past "IF NOT EXISTS" when it comes next. */
static void skip_if_not_exists(const char *sql, size_t *pos)
{
    size_t save = *pos;
    sql_tok x = sql_lex(sql, pos);
    if (sql_tok_is(&x, "IF")) {
        sql_lex(sql, pos);
        sql_lex(sql, pos);
    } else {
        *pos = save;
    }
}

/* Reads "name" or "schema.name" at pos; returns the unqualified name. */
static char *read_name(const char *sql, size_t *pos)
{
    sql_tok t = sql_lex(sql, pos);
    size_t save = *pos;
    sql_tok dot = sql_lex(sql, pos);
    if (dot.kind == 'p' && dot.p[0] == '.') {
        t = sql_lex(sql, pos);
    } else {
        *pos = save;
    }
    return sql_tok_name(&t);
}

int sql_ddl_inspect(const char *sql, sql_ddl_info *info, merr *e)
{
    size_t pos = 0;
    memset(info, 0, sizeof(*info));
    sql_tok t = sql_lex(sql, &pos);
    if (sql_tok_is(&t, "CREATE")) {
        t = sql_lex(sql, &pos);
        if (sql_tok_is(&t, "TEMP") || sql_tok_is(&t, "TEMPORARY"))
            return merr_set(e, MERR_UNSUPPORTED, "temporary objects are not supported");
        if (sql_tok_is(&t, "VIRTUAL") || sql_tok_is(&t, "TRIGGER"))
            return merr_set(e, MERR_UNSUPPORTED, "CREATE %.*s is not supported", (int)t.n, t.p);
        if (sql_tok_is(&t, "UNIQUE")) t = sql_lex(sql, &pos);
        if (sql_tok_is(&t, "INDEX")) {
            skip_if_not_exists(sql, &pos);
            info->create_index = read_name(sql, &pos);
            return 0;
        }
        if (!sql_tok_is(&t, "TABLE")) return 0;
        skip_if_not_exists(sql, &pos);
        char *name = read_name(sql, &pos);
        sql_tok x = sql_lex(sql, &pos);
        if (name && sql_tok_is(&x, "AS")) {
            info->ctas_table = name;
            /* An offset, not a pointer: inspect sees the caller's text (the
             * statements after this one too), exec the statement alone. */
            info->ctas_select = (size_t)(x.p + x.n - sql);
            return 0;
        }
        free(name);
    } else if (sql_tok_is(&t, "ALTER")) {
        sql_lex(sql, &pos); /* TABLE */
        char *name = read_name(sql, &pos);
        sql_tok x = sql_lex(sql, &pos);
        if (sql_tok_is(&x, "DROP")) {
            free(name);
            return merr_set(e, MERR_UNSUPPORTED, "ALTER TABLE DROP COLUMN is not supported yet");
        }
        if (sql_tok_is(&x, "ADD")) {
            info->add_table = name;
            return 0;
        }
        if (sql_tok_is(&x, "RENAME")) {
            size_t save = pos;
            sql_tok y = sql_lex(sql, &pos);
            if (sql_tok_is(&y, "TO")) {
                info->rename_from = name;
                info->rename_to = read_name(sql, &pos);
                return 0;
            }
            pos = save;
        }
        free(name);
    }
    return 0;
}

void sql_ddl_info_free(sql_ddl_info *info)
{
    free(info->ctas_table);
    free(info->rename_from);
    free(info->rename_to);
    free(info->add_table);
    free(info->create_index);
    memset(info, 0, sizeof(*info));
}

/* Copies one stored row of t into its scratch table, so that ALTER TABLE
 * ADD COLUMN sees a non-empty table and applies SQLite's checks for them
 * (a NOT NULL column needs a default; CHECKs hold for the default). */
static int sample_row(sql_session *s, sql_table *t, merr *e)
{
    mkey_val pv[2] = {mkey_int(t->id, 0), mkey_int(SQL_PRIMARY_INDEX, 0)};
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    sql_kv_iter *it = NULL;
    sqlite3_stmt *st = NULL;
    sql_row r;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc = sql_row_init(&r, t);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (!rc) rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 0, 1, &it, e);
    if (!rc) rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
    int have = rc == 1;
    if (have) rc = sql_row_decode(t, k, kl, v, vl, &r, e);
    if (rc == 0 && have) {
        mbuf q = MBUF_INIT;
        mbuf_printf(&q, "INSERT INTO \"%s\" VALUES(", t->name);
        for (int i = 0; i < t->ncols; i++) mbuf_printf(&q, "%s?", i ? "," : "");
        mbuf_printf(&q, ")");
        mbuf_append_u8(&q, 0);
        if (sqlite3_prepare_v2(s->scratch, (const char *)q.data, -1, &st, NULL) == SQLITE_OK) {
            for (int i = 0; i < t->ncols; i++) sql_val_bind(st, i + 1, &r.cv[i]);
            if (t->ipk >= 0) sqlite3_bind_int64(st, t->ipk + 1, r.rowid);
            sqlite3_step(st);
        }
        sqlite3_finalize(st);
        mbuf_free(&q);
    }
    if (it) s->ops->iter_close(it);
    sql_row_free(&r);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc < 0 ? rc : 0;
}

/* The WRITE_ONLY index named name, if any: a backfill that did not finish. */
static const sql_index *unfinished_index(sql_session *s, const char *name)
{
    for (size_t i = 0; name && i < s->ntables; i++)
        for (int k = 0; k < s->tables[i]->nidx; k++)
            if (s->tables[i]->idx[k].write_only &&
                sqlite3_stricmp(s->tables[i]->idx[k].name, name) == 0)
                return &s->tables[i]->idx[k];
    return NULL;
}

int sql_ddl_refuse(sql_session *s, const sql_ddl_info *info, merr *e)
{
    /* SQLite would say "already exists" (or, IF NOT EXISTS, nothing) about
     * an index nobody can use: say what it is and what to do. */
    if (unfinished_index(s, info->create_index))
        return merr_set(e, MERR_EXISTS,
                        "index %s exists unfinished (write-only: its CREATE INDEX did not "
                        "complete); DROP INDEX %s first",
                        info->create_index, info->create_index);
    return 0;
}

int sql_ddl_exec(sql_session *s, const char *sql, sql_ddl_info *info, merr *e)
{
    newidx *added = NULL;
    size_t nadded = 0;
    char *msg = NULL;
    int rc;
    info->bf_tid = info->bf_iid = 0;
    rc = sql_ddl_refuse(s, info, e);
    if (rc) return rc;
    sql_table *sample = info->add_table ? sql_find_table(s, info->add_table) : NULL;
    if (sample) {
        rc = sample_row(s, sample, e);
        if (rc) return rc;
    }
    sql_auth_ddl(s, 1);
    int xrc = sqlite3_exec(s->scratch, sql, NULL, NULL, &msg);
    sql_auth_ddl(s, 0);
    if (sample && xrc == SQLITE_OK) {
        char *q = sqlite3_mprintf("DELETE FROM \"%w\"", sample->name);
        sqlite3_exec(s->scratch, q, NULL, NULL, NULL);
        sqlite3_free(q);
    }
    if (xrc != SQLITE_OK) {
        rc = merr_set(e, MERR_INVALID, "%s",
                      s->auth_msg[0] ? s->auth_msg
                      : msg          ? msg
                                     : sqlite3_errmsg(s->scratch));
        sqlite3_free(msg);
        s->catalog_dirty = 1;
        return rc;
    }
    s->catalog_dirty = 1; /* the scratch db is ahead of the session until reloaded */
    rc = sync_catalog(s, info->rename_from, info->rename_to, info->online && info->create_index,
                      &added, &nadded, e);
    if (!rc) rc = sql_catalog_bump(s, e);
    if (!rc) rc = sql_catalog_load(s, e);
    for (size_t i = 0; i < nadded && !rc; i++) {
        sql_table *t = sql_find_table_id(s, added[i].tid);
        if (added[i].write_only) { /* one per CREATE INDEX: online is only set there */
            info->bf_tid = added[i].tid;
            info->bf_iid = added[i].iid;
            continue;
        }
        for (int k = 0; t && k < t->nidx && !rc; k++)
            if (t->idx[k].id == added[i].iid)
                rc = sql_index_backfill(s, t, &t->idx[k], 0, NULL, NULL, e);
    }
    free(added);
    /* Grants stay with a name, not a table: a renamed table's old grants
     * go, or they would apply to the next table of that name. */
    if (!rc && info->rename_from && info->rename_to &&
        sqlite3_stricmp(info->rename_from, info->rename_to))
        snprintf(s->auth_dropped, sizeof(s->auth_dropped), "%s", info->rename_from);
    if (!rc) rc = sql_auth_after_ddl(s, e);
    if (!rc && info->ctas_table && info->ctas_select <= strlen(sql)) {
        char *q =
            sqlite3_mprintf("INSERT INTO \"%w\" %s", info->ctas_table, sql + info->ctas_select);
        s->auth_msg[0] = 0;
        if (!q || sqlite3_exec(s->db, q, NULL, NULL, &msg) != SQLITE_OK)
            rc = merr_set(e, MERR_INVALID, "%s",
                          s->auth_msg[0] ? s->auth_msg
                          : msg          ? msg
                                         : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        sqlite3_free(q);
    }
    return rc;
}
