/* System views: eponymous virtual tables that show the catalog and the
 * cluster to SQL.
 *
 *   meridian_tables       every table and view of the catalog
 *   meridian_indexes      every secondary index
 *   meridian_nodes        every node: address, locality, state, counts
 *   meridian_ranges       one row per (range, table) overlap (table_name
 *                         NULL for a range holding no table's keys)
 *   meridian_sessions     the SQL sessions of the gateway node
 *   meridian_transactions the transactions every node's leased ranges know
 *   meridian_placement    the cluster's placement policies (table_name set
 *                         when a policy covers exactly one table's keys)
 *
 * All are small: rows are materialised at xFilter and SQLite filters them.
 * The cluster views get their rows through the session's sql_cluster_ops
 * (sql/cluster.h), so nothing here knows how the node finds them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/keycodec.h"
#include "sql/auth.h"
#include "sql/cluster.h"
#include "sql/sql_int.h"

typedef struct sys_val {
    int is_int; /* 2: a REAL in d */
    int64_t i;
    char *s; /* NULL: SQL NULL (when !is_int) */
    double d;
} sys_val;

typedef struct sys_vtab {
    sqlite3_vtab base;
    sql_session *s;
    int which; /* index in sys_views */
} sys_vtab;

typedef struct sys_cursor {
    sqlite3_vtab_cursor base;
    sys_val *vals;
    int ncols;
    size_t nrows, cap, pos;
} sys_cursor;

enum { V_TABLES, V_INDEXES, V_NODES, V_RANGES, V_SESSIONS, V_TXNS, V_PLACEMENT, V_COUNT };

static const struct {
    const char *name;
    int ncols;
    const char *schema;
} sys_views[V_COUNT] = {
    {"meridian_tables", 4, "CREATE TABLE x(name TEXT, table_id INTEGER, type TEXT, sql TEXT)"},
    {"meridian_indexes", 6,
     "CREATE TABLE x(table_name TEXT, name TEXT, index_id INTEGER, is_unique INTEGER, "
     "columns TEXT, state TEXT)"},
    {"meridian_nodes", 10,
     "CREATE TABLE x(node_id INTEGER, address TEXT, region TEXT, zone TEXT, state TEXT, "
     "ranges INTEGER, leases INTEGER, uptime_s REAL, clock_source TEXT, clock_epsilon_us "
     "INTEGER)"},
    {"meridian_ranges", 10,
     "CREATE TABLE x(range_id INTEGER, table_name TEXT, start_key TEXT, end_key TEXT, "
     "generation INTEGER, replicas TEXT, leader_node INTEGER, keys INTEGER, bytes INTEGER, "
     "applied INTEGER)"},
    {"meridian_sessions", 7,
     "CREATE TABLE x(session_id INTEGER, node_id INTEGER, user TEXT, application_name TEXT, "
     "state TEXT, statement TEXT, started_at TEXT)"},
    {"meridian_transactions", 8,
     "CREATE TABLE x(txn_id TEXT, node_id INTEGER, range_id INTEGER, priority INTEGER, "
     "state TEXT, waiting INTEGER, age_ms INTEGER, idle_ms INTEGER)"},
    {"meridian_placement", 8,
     "CREATE TABLE x(name TEXT, table_name TEXT, start_key TEXT, end_key TEXT, replicas INTEGER, "
     "regions TEXT, lead_region TEXT, survive TEXT)"},
};

static int sys_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **out, char **err)
{
    sys_vtab *v;
    int which = 0;
    while (which < V_COUNT - 1 && strcmp(argv[0], sys_views[which].name)) which++;
    if (sqlite3_declare_vtab(db, sys_views[which].schema) != SQLITE_OK) return SQLITE_ERROR;
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
    c->ncols = sys_views[((sys_vtab *)vt)->which].ncols;
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

/* ---- cluster views ---- */

typedef struct cl_sink {
    sql_session *s;
    sys_cursor *c;
    int which;
} cl_sink;

static sys_val v_int(int64_t i)
{
    return (sys_val){1, i, NULL, 0};
}

static sys_val v_text(const char *t)
{
    return (sys_val){0, 0, (char *)t, 0};
}

/* Keys are bytes: printable ASCII as it is, the rest as \xNN; an empty key
 * is the open end of the key space. */
static void key_text(const uint8_t *k, size_t n, int is_end, mbuf *out)
{
    mbuf_reset(out);
    if (n == 0) mbuf_printf(out, "%s", is_end ? "+inf" : "-inf");
    for (size_t i = 0; i < n; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
            mbuf_append_u8(out, k[i]);
        else
            mbuf_printf(out, "\\x%02x", k[i]);
    }
    mbuf_append_u8(out, 0);
}

static int bytes_lt(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    return c < 0 || (c == 0 && an < bn);
}

/* 1 when [start, end) holds some key of table tid: keys (tid, ...) lie in
 * [prefix, prefix_end). */
static int range_has_table(const sql_cluster_range *r, uint32_t tid, mbuf *p)
{
    mkey_val v = mkey_int(tid, 0);
    mbuf_reset(p);
    if (mkey_encode_prefix(&v, 1, p)) return 0;
    size_t plen = p->len;
    int below_end = r->end_len == 0 || bytes_lt(p->data, plen, r->end, r->end_len);
    if (mkey_prefix_end(p)) return 0;
    return below_end && bytes_lt(r->start, r->start_len, p->data, p->len);
}

static int emit_range(cl_sink *k, const sql_cluster_range *r)
{
    mbuf st = MBUF_INIT, en = MBUF_INIT, p = MBUF_INIT;
    key_text(r->start, r->start_len, 0, &st);
    key_text(r->end, r->end_len, 1, &en);
    sys_val row[10] = {v_int((int64_t)r->range_id),
                       v_text(NULL),
                       v_text((char *)st.data),
                       v_text((char *)en.data),
                       v_int((int64_t)r->generation),
                       v_text(r->replicas),
                       r->leader_node ? v_int((int64_t)r->leader_node) : v_text(NULL),
                       v_int(r->keys),
                       v_int(r->bytes),
                       v_int((int64_t)r->applied)};
    int rc = 0, any = 0;
    if (!st.data || !en.data) rc = MERR_NOMEM;
    for (size_t i = 0; i < k->s->ntables && !rc; i++) {
        const sql_table *t = k->s->tables[i];
        if (!range_has_table(r, t->id, &p)) continue;
        row[1] = v_text(t->name);
        rc = sys_row(k->c, row);
        any = 1;
    }
    if (!rc && !any) rc = sys_row(k->c, row);
    mbuf_free(&st);
    mbuf_free(&en);
    mbuf_free(&p);
    return rc;
}

/* The table whose whole key span [prefix, prefix_end) p covers, or NULL. */
static const char *policy_table(sql_session *s, const sql_cluster_policy *p, mbuf *b)
{
    for (size_t i = 0; i < s->ntables; i++) {
        mkey_val v = mkey_int(s->tables[i]->id, 0);
        mbuf_reset(b);
        if (mkey_encode_prefix(&v, 1, b)) return NULL;
        if (b->len != p->start_len || memcmp(b->data, p->start, b->len) != 0) continue;
        if (mkey_prefix_end(b)) return NULL;
        if (b->len == p->end_len && memcmp(b->data, p->end, b->len) == 0) return s->tables[i]->name;
    }
    return NULL;
}

static int emit_policy(cl_sink *k, const sql_cluster_policy *p)
{
    mbuf st = MBUF_INIT, en = MBUF_INIT, b = MBUF_INIT;
    key_text(p->start, p->start_len, 0, &st);
    key_text(p->end, p->end_len, 1, &en);
    int rc = !st.data || !en.data ? MERR_NOMEM : 0;
    if (!rc) {
        sys_val row[8] = {v_text(p->name),
                          v_text(policy_table(k->s, p, &b)),
                          v_text((char *)st.data),
                          v_text((char *)en.data),
                          v_int(p->replicas),
                          v_text(p->regions && *p->regions ? p->regions : NULL),
                          v_text(p->lead_region && *p->lead_region ? p->lead_region : NULL),
                          v_text(p->survive)};
        rc = sys_row(k->c, row);
    }
    mbuf_free(&st);
    mbuf_free(&en);
    mbuf_free(&b);
    return rc;
}

static int cl_emit(void *arg, const void *row)
{
    cl_sink *k = arg;
    switch (k->which) {
    case V_NODES: {
        const sql_cluster_node *n = row;
        sys_val out[10] = {
            v_int((int64_t)n->node_id), v_text(n->address), v_text(n->region), v_text(n->zone),
            v_text(n->state),           v_text(NULL),       v_text(NULL),      v_text(NULL),
            v_text(n->clock_source),    v_text(NULL)};
        if (n->has_stats) {
            out[5] = v_int(n->ranges);
            out[6] = v_int(n->leases);
            out[7] = (sys_val){2, 0, NULL, n->uptime_s};
        }
        if (n->has_epsilon) out[9] = v_int(n->clock_epsilon_us);
        return sys_row(k->c, out);
    }
    case V_RANGES: return emit_range(k, row);
    case V_PLACEMENT: return emit_policy(k, row);
    case V_SESSIONS: {
        const sql_cluster_session *x = row;
        char at[64] = "";
        time_t secs = (time_t)(x->started_at_ms / 1000);
        struct tm tm;
        if (gmtime_r(&secs, &tm))
            snprintf(at, sizeof(at), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(x->started_at_ms % 1000));
        /* Statement text carries literals: a non-admin sees only its own. */
        int mine = sql_auth_is_admin(k->s) || (x->user && !strcasecmp(x->user, k->s->user));
        sys_val out[7] = {v_int((int64_t)x->session_id),
                          v_int((int64_t)x->node_id),
                          v_text(x->user),
                          v_text(x->application_name),
                          v_text(x->state),
                          v_text(mine ? x->statement : NULL),
                          v_text(at[0] ? at : NULL)};
        return sys_row(k->c, out);
    }
    default: {
        const sql_cluster_txn *t = row;
        /* Ids are random 64-bit values: hex text, as logs print them. */
        char id[24];
        snprintf(id, sizeof(id), "%016" PRIx64, t->txn_id);
        sys_val out[8] = {v_text(id),
                          v_int((int64_t)t->node_id),
                          v_int((int64_t)t->range_id),
                          v_int((int64_t)t->priority),
                          v_text(t->state),
                          v_int(t->waiting),
                          v_int(t->age_ms),
                          v_int(t->idle_ms)};
        return sys_row(k->c, out);
    }
    }
}

int sql_sysview_is(const char *name)
{
    for (int i = 0; i < V_COUNT; i++)
        if (!strcasecmp(name, sys_views[i].name)) return 1;
    return 0;
}

static int cluster_rows(sql_session *s, sys_cursor *c, int which, merr *e)
{
    const sql_cluster_ops *o = s->cluster;
    int (*fn)(void *, sql_cluster_emit_fn, void *, merr *) = !o                    ? NULL
                                                             : which == V_NODES    ? o->nodes
                                                             : which == V_RANGES   ? o->ranges
                                                             : which == V_SESSIONS ? o->sessions
                                                             : which == V_PLACEMENT
                                                                 ? o->policies
                                                                 : o->transactions;
    if (!fn)
        return merr_set(e, MERR_UNSUPPORTED, "%s is not available: no cluster behind this session",
                        sys_views[which].name);
    cl_sink k = {s, c, which};
    int rc = fn(s->cluster_ctx, cl_emit, &k, e);
    if (rc == MERR_NOMEM && !e->msg[0]) merr_set(e, rc, "out of memory");
    return rc;
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
    if (v->which >= V_NODES) {
        rc = cluster_rows(s, c, v->which, &e);
    } else if (v->which == V_TABLES) {
        sql_desc *d = NULL;
        size_t nd = 0;
        if (!s->txn) return SQLITE_ERROR;
        rc = sql_catalog_read(s, &d, &nd, &e);
        for (size_t i = 0; i < nd; i++) {
            sys_val row[4] = {v_text(d[i].name), v_int(d[i].id),
                              v_text(d[i].kind == SQL_OBJ_TABLE ? "table" : "view"),
                              v_text(d[i].sql)};
            if (d[i].kind != SQL_OBJ_TABLE) row[1] = v_text(NULL);
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
                sys_val row[6] = {v_text(t->name),
                                  v_text(ix->name),
                                  v_int(ix->id),
                                  v_int(ix->unique),
                                  v_text((char *)cols.data),
                                  v_text(ix->write_only ? "write-only" : "public")};
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
    if (v->is_int == 2)
        sqlite3_result_double(ctx, v->d);
    else if (v->is_int)
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
    for (int i = 0; i < V_COUNT; i++)
        if (sqlite3_create_module(db, sys_views[i].name, &sys_module, s) != SQLITE_OK)
            return MERR_INTERNAL;
    return 0;
}
