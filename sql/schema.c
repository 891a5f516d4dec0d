/* Loading the catalog into a session: replays each descriptor's SQL into a
 * fresh scratch SQLite database, reads tables, columns and indexes back with
 * PRAGMAs (so SQLite's parser and affinity rules decide everything), then
 * (re)creates the user connection's virtual tables and views. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/record.h"
#include "sql/auth.h"
#include "sql/sql_int.h"

/* SQLite's column affinity rules (datatype3.html, section 3.1). */
static char affinity_of(const char *type)
{
    if (!type || !*type) return 'A';
    if (strcasestr(type, "INT")) return 'D';
    if (strcasestr(type, "CHAR") || strcasestr(type, "CLOB") || strcasestr(type, "TEXT"))
        return 'B';
    if (strcasestr(type, "BLOB")) return 'A';
    if (strcasestr(type, "REAL") || strcasestr(type, "FLOA") || strcasestr(type, "DOUB"))
        return 'E';
    return 'C';
}

void sql_table_free(sql_table *t)
{
    if (!t) return;
    for (int i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        free(t->cols[i].type);
        free(t->cols[i].coll);
        sqlite3_value_free(t->cols[i].dflt);
        free(t->cols[i].dflt_sql);
    }
    free(t->cols);
    for (int i = 0; i < t->nidx; i++) {
        free(t->idx[i].name);
        free(t->idx[i].cols);
        free(t->idx[i].desc);
    }
    free(t->idx);
    free(t->pk);
    free(t->pkdesc);
    free(t->name);
    sqlite3_finalize(t->chk[0]);
    sqlite3_finalize(t->chk[1]);
    sqlite3_finalize(t->chk_del);
    free(t);
}

sql_table *sql_find_table_id(sql_session *s, uint32_t id)
{
    for (size_t i = 0; i < s->ntables; i++)
        if (s->tables[i]->id == id) return s->tables[i];
    return NULL;
}

sql_table *sql_find_table(sql_session *s, const char *name)
{
    for (size_t i = 0; i < s->ntables; i++)
        if (sqlite3_stricmp(s->tables[i]->name, name) == 0) return s->tables[i];
    return NULL;
}

static char *xstrdup(const unsigned char *s)
{
    return strdup(s ? (const char *)s : "");
}

/* Reads the key columns of an index (PRAGMA index_xinfo). */
static int index_cols(sqlite3 *db, const char *iname, int **cols, uint8_t **desc, int *n, merr *e)
{
    char *q = sqlite3_mprintf("PRAGMA index_xinfo(\"%w\")", iname);
    sqlite3_stmt *st = NULL;
    int rc = 0, cnt = 0;
    *cols = calloc(MKEY_MAX_COLS, sizeof(int));
    *desc = calloc(MKEY_MAX_COLS, 1);
    if (!q || !*cols || !*desc) return merr_set(e, MERR_NOMEM, "out of memory");
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        rc = merr_set(e, MERR_INTERNAL, "index %s: %s", iname, sqlite3_errmsg(db));
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (!sqlite3_column_int(st, 5)) continue; /* not a key column */
        int cid = sqlite3_column_int(st, 1);
        const char *coll = (const char *)sqlite3_column_text(st, 4);
        if (cid < 0) {
            rc = merr_set(e, MERR_UNSUPPORTED, "index %s: indexes on expressions are not supported",
                          iname);
            goto out;
        }
        if (coll && sqlite3_stricmp(coll, "BINARY") != 0) {
            rc = merr_set(e, MERR_UNSUPPORTED,
                          "index %s: collation %s on a key column is not supported yet", iname,
                          coll);
            goto out;
        }
        if (cnt == MKEY_MAX_COLS - 2) {
            rc = merr_set(e, MERR_TOOBIG, "index %s: too many columns", iname);
            goto out;
        }
        (*cols)[cnt] = cid;
        (*desc)[cnt] = (uint8_t)sqlite3_column_int(st, 3);
        cnt++;
    }
    *n = cnt;
out:
    sqlite3_finalize(st);
    sqlite3_free(q);
    return rc;
}

static int read_columns(sqlite3 *db, sql_table *t, merr *e)
{
    char *q = sqlite3_mprintf("PRAGMA table_xinfo(\"%w\")", t->name);
    sqlite3_stmt *st = NULL;
    int rc = 0, cap = 0;
    if (!q || sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        rc = merr_set(e, MERR_INTERNAL, "table %s: %s", t->name, sqlite3_errmsg(db));
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (t->ncols == cap) {
            cap = cap ? cap * 2 : 8;
            sql_column *p = realloc(t->cols, (size_t)cap * sizeof(*p));
            if (!p) {
                rc = merr_set(e, MERR_NOMEM, "out of memory");
                goto out;
            }
            t->cols = p;
        }
        sql_column *c = &t->cols[t->ncols];
        memset(c, 0, sizeof(*c));
        t->ncols++;
        c->keypos = -1;
        c->name = xstrdup(sqlite3_column_text(st, 1));
        c->type = xstrdup(sqlite3_column_text(st, 2));
        c->notnull = sqlite3_column_int(st, 3);
        c->aff = affinity_of(c->type);
        if (sqlite3_column_int(st, 6) != 0) {
            rc = merr_set(e, MERR_UNSUPPORTED, "table %s: generated columns are not supported",
                          t->name);
            goto out;
        }
        const char *coll = NULL;
        sqlite3_table_column_metadata(db, "main", t->name, c->name, NULL, &coll, NULL, NULL, NULL);
        c->coll = strdup(coll ? coll : "BINARY");
        c->binary = sqlite3_stricmp(c->coll, "BINARY") == 0;
        if (sqlite3_column_int(st, 5) > 0 && t->ipk == -2)
            t->ipk = t->ncols - 1;
        else if (sqlite3_column_int(st, 5) > 0)
            t->ipk = -3; /* several PK columns */
        const char *dflt = (const char *)sqlite3_column_text(st, 4);
        if (dflt) {
            c->dflt_sql = strdup(dflt);
            /* Rows written before ADD COLUMN lack the field; SQLite only
             * allows constant defaults there, so evaluating once is exact. */
            char *dq = sqlite3_mprintf("SELECT %s", dflt);
            sqlite3_stmt *ds = NULL;
            if (dq && sqlite3_prepare_v2(db, dq, -1, &ds, NULL) == SQLITE_OK &&
                sqlite3_step(ds) == SQLITE_ROW)
                c->dflt = sqlite3_value_dup(sqlite3_column_value(ds, 0));
            /* SQLite applies the column's affinity when it reads a missing
             * field's default (DEFAULT '7' in an INTEGER column reads 7). */
            if (c->dflt) {
                /* ...and a numeric literal in an untyped column gets NUMERIC
                 * (DEFAULT 4.0 reads 4), as SQLite's valueFromExpr does. */
                int num = sqlite3_value_type(c->dflt) == SQLITE_INTEGER ||
                          sqlite3_value_type(c->dflt) == SQLITE_FLOAT;
                c->dflt_val = sql_apply_affinity(c->aff == 'A' && num ? 'C' : c->aff, c->dflt);
            }
            sqlite3_finalize(ds);
            sqlite3_free(dq);
        }
        if (!c->name || !c->type || !c->coll) {
            rc = merr_set(e, MERR_NOMEM, "out of memory");
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    sqlite3_free(q);
    return rc;
}

/* Builds a table from the scratch schema; index ids come from the desc. */
static int build_table(sqlite3 *db, const sql_desc *d, sql_table **out, merr *e)
{
    sql_table *t = calloc(1, sizeof(*t));
    sqlite3_stmt *st = NULL;
    char *q = NULL;
    int rc = 0, have_pk = 0;
    if (!t || !(t->name = strdup(d->name))) {
        free(t);
        return merr_set(e, MERR_NOMEM, "out of memory");
    }
    t->id = d->id;
    t->ipk = -2;
    rc = read_columns(db, t, e);
    if (rc) goto err;
    t->idx = calloc(d->nidx + 1, sizeof(*t->idx));
    q = sqlite3_mprintf("PRAGMA index_list(\"%w\")", t->name);
    if (!t->idx || !q) {
        rc = merr_set(e, MERR_NOMEM, "out of memory");
        goto err;
    }
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        rc = merr_set(e, MERR_INTERNAL, "table %s: %s", t->name, sqlite3_errmsg(db));
        goto err;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *iname = (const char *)sqlite3_column_text(st, 1);
        const char *origin = (const char *)sqlite3_column_text(st, 3);
        if (sqlite3_column_int(st, 4)) {
            rc =
                merr_set(e, MERR_UNSUPPORTED, "index %s: partial indexes are not supported", iname);
            goto err;
        }
        if (origin && strcmp(origin, "pk") == 0) {
            rc = index_cols(db, iname, &t->pk, &t->pkdesc, &t->npk, e);
            if (rc) goto err;
            have_pk = 1;
            t->pk_order = t->nidx;
            continue;
        }
        const sql_desc_index *di = NULL;
        for (size_t i = 0; i < d->nidx; i++)
            if (sqlite3_stricmp(d->idx[i].name, iname) == 0) di = &d->idx[i];
        if (!di || (size_t)t->nidx >= d->nidx) {
            rc = merr_set(e, MERR_CORRUPT, "catalog: index %s has no id", iname);
            goto err;
        }
        sql_index *ix = &t->idx[t->nidx++];
        ix->id = di->id;
        ix->write_only = di->state == SQL_IDX_WRITE_ONLY;
        ix->unique = sqlite3_column_int(st, 2);
        ix->name = strdup(iname);
        rc = index_cols(db, iname, &ix->cols, &ix->desc, &ix->ncols, e);
        if (rc) goto err;
    }
    for (int k = 0; k < t->nidx; k++)
        if (2 + t->idx[k].ncols + (have_pk ? t->npk : 1) > MKEY_MAX_COLS) {
            rc = merr_set(e, MERR_TOOBIG, "index %s: too many columns with the primary key",
                          t->idx[k].name);
            goto err;
        }
    if (have_pk) {
        t->rowid = 0;
        t->ipk = -1;
        for (int i = 0; i < t->npk; i++) t->cols[t->pk[i]].keypos = i;
    } else {
        /* No PRIMARY KEY, or an INTEGER PRIMARY KEY: keyed by the rowid. */
        t->rowid = 1;
        t->ipk = t->ipk >= 0 ? t->ipk : -1;
        t->npk = 1;
        t->pk = calloc(1, sizeof(int));
        t->pkdesc = calloc(1, 1);
        if (!t->pk || !t->pkdesc) {
            rc = merr_set(e, MERR_NOMEM, "out of memory");
            goto err;
        }
        t->pk[0] = t->ipk;
        if (t->ipk >= 0) t->cols[t->ipk].keypos = 0;
    }
    sqlite3_finalize(st);
    sqlite3_free(q);
    *out = t;
    return 0;
err:
    sqlite3_finalize(st);
    sqlite3_free(q);
    sql_table_free(t);
    return rc;
}

static int exec_scratch(sqlite3 *db, const char *sql, merr *e)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    int rc =
        merr_set(e, MERR_CORRUPT, "catalog: cannot replay \"%s\": %s", sql, msg ? msg : "error");
    sqlite3_free(msg);
    return rc;
}

/* Drops every table and view of the user connection (virtual tables keep
 * their data: xDestroy does not touch the KV). */
static int drop_user_objects(sqlite3 *db, merr *e)
{
    sqlite3_stmt *st = NULL;
    mbuf sql = MBUF_INIT;
    int rc = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT type, name FROM sqlite_schema WHERE type IN ('view','table') "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY type DESC",
                           -1, &st, NULL) != SQLITE_OK)
        return merr_set(e, MERR_INTERNAL, "schema: %s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *one = sqlite3_mprintf("DROP %s \"%w\";", sqlite3_column_text(st, 0),
                                    sqlite3_column_text(st, 1));
        if (!one || mbuf_append_str(&sql, one)) rc = merr_set(e, MERR_NOMEM, "out of memory");
        sqlite3_free(one);
    }
    sqlite3_finalize(st);
    if (!rc && sql.len) {
        char *msg = NULL;
        mbuf_append_u8(&sql, 0);
        if (sqlite3_exec(db, (const char *)sql.data, NULL, NULL, &msg) != SQLITE_OK)
            rc = merr_set(e, MERR_BUSY, "schema change: %s", msg ? msg : "error");
        sqlite3_free(msg);
    }
    mbuf_free(&sql);
    return rc;
}

static int catalog_load(sql_session *s, merr *e);

/* Rebuilding the schema drops and creates tables: not the user's doing, so
 * the authorizer (auth.c) is off meanwhile. */
int sql_catalog_load(sql_session *s, merr *e)
{
    sqlite3_set_authorizer(s->db, NULL, NULL);
    int rc = catalog_load(s, e);
    sql_auth_install(s);
    return rc;
}

static int catalog_load(sql_session *s, merr *e)
{
    sql_desc *d = NULL;
    size_t nd = 0, nt = 0;
    sqlite3 *scratch = NULL;
    sql_table **tables = NULL;
    uint64_t version;
    int rc = sql_catalog_version(s, &version, e);
    if (!rc) rc = sql_catalog_read(s, &d, &nd, e);
    if (rc) return rc;
    tables = calloc(nd + 1, sizeof(*tables));
    if (!tables || sqlite3_open(":memory:", &scratch) != SQLITE_OK ||
        sql_sysview_register(s, scratch) || sql_asof_register(s, scratch)) {
        rc = merr_set(e, MERR_NOMEM, "schema: cannot open scratch database");
        goto err;
    }
    for (int pass = 0; pass < 2 && !rc; pass++) { /* tables first, then views */
        for (size_t i = 0; i < nd && !rc; i++) {
            if ((pass == 0) != (d[i].kind == SQL_OBJ_TABLE)) continue;
            rc = exec_scratch(scratch, d[i].sql, e);
            for (size_t j = 0; j < d[i].nidx && !rc; j++)
                if (d[i].idx[j].sql) rc = exec_scratch(scratch, d[i].idx[j].sql, e);
        }
    }
    for (size_t i = 0; i < nd && !rc; i++)
        if (d[i].kind == SQL_OBJ_TABLE && !(rc = build_table(scratch, &d[i], &tables[nt], e))) nt++;
    if (rc) goto err;
    rc = drop_user_objects(s->db, e);
    if (rc) goto err;
    for (size_t i = 0; i < s->ntables; i++) sql_table_free(s->tables[i]);
    free(s->tables);
    sqlite3_close(s->scratch);
    s->tables = tables;
    s->ntables = nt;
    s->scratch = scratch;
    tables = NULL;
    scratch = NULL;
    for (size_t i = 0; i < 2 * nd && !rc; i++) { /* virtual tables, then views */
        const sql_desc *o = &d[i % nd];
        if ((i < nd) != (o->kind == SQL_OBJ_TABLE)) continue;
        char *q =
            o->kind == SQL_OBJ_TABLE
                ? sqlite3_mprintf("CREATE VIRTUAL TABLE \"%w\" USING meridian(%u)", o->name, o->id)
                : sqlite3_mprintf("%s", o->sql);
        char *msg = NULL;
        if (!q || sqlite3_exec(s->db, q, NULL, NULL, &msg) != SQLITE_OK)
            rc = merr_set(e, MERR_INTERNAL, "schema: %s: %s", o->name, msg ? msg : "no memory");
        sqlite3_free(msg);
        sqlite3_free(q);
    }
    if (rc) goto err;
    s->version = version;
    s->catalog_dirty = 0;
    for (size_t i = 0; i < nd; i++) sql_desc_free(&d[i]);
    free(d);
    return 0;
err:
    s->catalog_dirty = 1;
    for (size_t i = 0; i < nt; i++) sql_table_free(tables ? tables[i] : NULL);
    free(tables);
    sqlite3_close(scratch);
    for (size_t i = 0; i < nd; i++) sql_desc_free(&d[i]);
    free(d);
    return rc;
}
