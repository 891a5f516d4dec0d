/* System views: eponymous virtual tables that show the catalog to SQL.
 *
 *   meridian_tables(name, table_id, type, sql)     every table and view, read
 *                                                  from the KV catalog in the
 *                                                  statement's transaction
 *   meridian_indexes(table_name, name, index_id, is_unique, columns)
 *                                                  every secondary index
 *
 * Both are small: rows are materialised at xFilter and SQLite filters them.
 * Cluster views (meridian_ranges, meridian_nodes, ...) belong here once the
 * node exposes that state. */
#include <stdlib.h>
#include <string.h>

#include "sql/sql_int.h"

typedef struct sys_val {
    int is_int;
    int64_t i;
    char *s; /* NULL: SQL NULL (when !is_int) */
} sys_val;

typedef struct sys_vtab {
    sqlite3_vtab base;
    sql_session *s;
    int which; /* 0 tables, 1 indexes */
} sys_vtab;

typedef struct sys_cursor {
    sqlite3_vtab_cursor base;
    sys_val *vals;
    int ncols;
    size_t nrows, cap, pos;
} sys_cursor;

static const char *const sys_schema[2] = {
    "CREATE TABLE x(name TEXT, table_id INTEGER, type TEXT, sql TEXT)",
    "CREATE TABLE x(table_name TEXT, name TEXT, index_id INTEGER, is_unique INTEGER, columns TEXT)",
};

static int sys_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **out, char **err)
{
    sys_vtab *v;
    int which = strcmp(argv[0], "meridian_indexes") == 0;
    if (sqlite3_declare_vtab(db, sys_schema[which]) != SQLITE_OK) return SQLITE_ERROR;
    v = sqlite3_malloc(sizeof(*v));
    if (!v) return SQLITE_NOMEM;
    memset(v, 0, sizeof(*v));
    v->s = aux;
    v->which = which;
    *out = &v->base;
    return SQLITE_OK;
}

static int sys_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

static int sys_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    info->estimatedCost = 1000;
    info->estimatedRows = 100;
    return SQLITE_OK;
}

static int sys_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    sys_cursor *c = sqlite3_malloc(sizeof(*c));
    if (!c) return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    c->ncols = ((sys_vtab *)vt)->which ? 5 : 4;
    *out = &c->base;
    return SQLITE_OK;
}

static void sys_clear(sys_cursor *c)
{
    for (size_t i = 0; i < c->nrows * (size_t)c->ncols; i++) free(c->vals[i].s);
    free(c->vals);
    c->vals = NULL;
    c->nrows = c->cap = c->pos = 0;
}

static int sys_close(sqlite3_vtab_cursor *cur)
{
    sys_clear((sys_cursor *)cur);
    sqlite3_free(cur);
    return SQLITE_OK;
}

/* Appends a row; strings are copied (NULL stays NULL). */
static int sys_row(sys_cursor *c, const sys_val *row)
{
    if (c->nrows == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        sys_val *p = realloc(c->vals, nc * (size_t)c->ncols * sizeof(*p));
        if (!p) return MERR_NOMEM;
        c->vals = p;
        c->cap = nc;
    }
    sys_val *dst = &c->vals[c->nrows * (size_t)c->ncols];
    for (int i = 0; i < c->ncols; i++) {
        dst[i] = row[i];
        dst[i].s = row[i].s ? strdup(row[i].s) : NULL;
    }
    c->nrows++;
    return 0;
}

static int sys_filter(sqlite3_vtab_cursor *cur, int idxnum, const char *idxstr, int argc,
                      sqlite3_value **argv)
{
    sys_cursor *c = (sys_cursor *)cur;
    sys_vtab *v = (sys_vtab *)cur->pVtab;
    sql_session *s = v->s;
    merr e = {0};
    int rc = 0;
    sys_clear(c);
    if (v->which == 0) {
        sql_desc *d = NULL;
        size_t nd = 0;
        if (!s->txn) return SQLITE_ERROR;
        rc = sql_catalog_read(s, &d, &nd, &e);
        for (size_t i = 0; i < nd; i++) {
            sys_val row[4] = {{0, 0, d[i].name},
                              {d[i].kind == SQL_OBJ_TABLE, d[i].id, NULL},
                              {0, 0, d[i].kind == SQL_OBJ_TABLE ? "table" : "view"},
                              {0, 0, d[i].sql}};
            if (!rc) rc = sys_row(c, row);
            sql_desc_free(&d[i]);
        }
        free(d);
    } else {
        for (size_t i = 0; i < s->ntables && !rc; i++) {
            const sql_table *t = s->tables[i];
            for (int k = 0; k < t->nidx && !rc; k++) {
                const sql_index *ix = &t->idx[k];
                mbuf cols = MBUF_INIT;
                for (int j = 0; j < ix->ncols; j++)
                    mbuf_printf(&cols, "%s%s%s", j ? ", " : "", t->cols[ix->cols[j]].name,
                                ix->desc[j] ? " DESC" : "");
                mbuf_append_u8(&cols, 0);
                sys_val row[5] = {{0, 0, t->name},
                                  {0, 0, ix->name},
                                  {1, ix->id, NULL},
                                  {1, ix->unique, NULL},
                                  {0, 0, (char *)cols.data}};
                rc = sys_row(c, row);
                mbuf_free(&cols);
            }
        }
    }
    if (rc) {
        sqlite3_free(cur->pVtab->zErrMsg);
        cur->pVtab->zErrMsg = sqlite3_mprintf("%s", merr_msg(&e));
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

static int sys_next(sqlite3_vtab_cursor *cur)
{
    ((sys_cursor *)cur)->pos++;
    return SQLITE_OK;
}

static int sys_eof(sqlite3_vtab_cursor *cur)
{
    sys_cursor *c = (sys_cursor *)cur;
    return c->pos >= c->nrows;
}

static int sys_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i)
{
    sys_cursor *c = (sys_cursor *)cur;
    const sys_val *v = &c->vals[c->pos * (size_t)c->ncols + (size_t)i];
    if (v->is_int)
        sqlite3_result_int64(ctx, v->i);
    else if (v->s)
        sqlite3_result_text(ctx, v->s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_result_null(ctx);
    return SQLITE_OK;
}

static int sys_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    *out = (sqlite3_int64)((sys_cursor *)cur)->pos + 1;
    return SQLITE_OK;
}

/* xCreate NULL: eponymous-only, no CREATE VIRTUAL TABLE needed (or allowed). */
static const sqlite3_module sys_module = {
    .iVersion = 1,
    .xConnect = sys_connect,
    .xBestIndex = sys_best_index,
    .xDisconnect = sys_disconnect,
    .xDestroy = sys_disconnect,
    .xOpen = sys_open,
    .xClose = sys_close,
    .xFilter = sys_filter,
    .xNext = sys_next,
    .xEof = sys_eof,
    .xColumn = sys_column,
    .xRowid = sys_rowid,
};

int sql_sysview_register(sql_session *s, sqlite3 *db)
{
    if (sqlite3_create_module(db, "meridian_tables", &sys_module, s) != SQLITE_OK ||
        sqlite3_create_module(db, "meridian_indexes", &sys_module, s) != SQLITE_OK)
        return MERR_INTERNAL;
    return 0;
}
