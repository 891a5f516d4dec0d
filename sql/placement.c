/* ALTER TABLE ... SET/RESET PLACEMENT and SHOW PLACEMENT (placement.h). */
#include "sql/placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/auth.h"
#include "sql/cluster.h"

enum { P_SET = 1, P_RESET, P_SHOW };

struct sql_placement {
    int kind;
    char *table; /* NULL: SHOW for every policy */
    int64_t replicas;
    char *regions, *lead_region, *survive;
};

int sql_policy_min_key(mbuf *out)
{
    mkey_val v = mkey_int(SQL_FIRST_TABLE_ID, 0);
    mbuf_reset(out);
    return mkey_encode_prefix(&v, 1, out) ? MERR_NOMEM : 0;
}

int sql_placement_is(const char *sql)
{
    size_t pos = 0;
    sql_tok a = sql_lex(sql, &pos), b = sql_lex(sql, &pos);
    if (sql_tok_is(&a, "SHOW")) return sql_tok_is(&b, "PLACEMENT");
    if (!sql_tok_is(&a, "ALTER") || !sql_tok_is(&b, "TABLE")) return 0;
    sql_tok name = sql_lex(sql, &pos), verb = sql_lex(sql, &pos), what = sql_lex(sql, &pos);
    return (name.kind == 'w' || name.kind == 'q') &&
           (sql_tok_is(&verb, "SET") || sql_tok_is(&verb, "RESET")) &&
           sql_tok_is(&what, "PLACEMENT");
}

void sql_placement_free(sql_placement *p)
{
    if (!p) return;
    free(p->table);
    free(p->regions);
    free(p->lead_region);
    free(p->survive);
    free(p);
}

static int expected(const char *sql, const sql_tok *t, const char *what, merr *e)
{
    if (!t->kind) return merr_set(e, MERR_INVALID, "%s expected at the end of the statement", what);
    return merr_set(e, MERR_INVALID, "%s expected at offset %ld, near \"%.*s\"", what,
                    (long)(t->p - sql), (int)(t->n > 20 ? 20 : t->n), t->p);
}

/* A string literal ('..' with '' inside), a word or a number, as text. */
static char *value_text(const sql_tok *t)
{
    if (t->kind == 'w' || t->kind == 'n') return strndup(t->p, t->n);
    if (t->kind != 's' || t->n < 2) return NULL;
    char *out = malloc(t->n);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 1; i + 1 < t->n; i++) {
        out[o++] = t->p[i];
        if (t->p[i] == '\'' && t->p[i + 1] == '\'') i++;
    }
    out[o] = 0;
    return out;
}

/* ( name = value [, ...] ) */
static int options(const char *sql, size_t *pos, sql_placement *p, merr *e)
{
    sql_tok t = sql_lex(sql, pos);
    if (t.kind != 'p' || t.p[0] != '(') return expected(sql, &t, "'('", e);
    for (;;) {
        sql_tok k = sql_lex(sql, pos), eq = sql_lex(sql, pos), v = sql_lex(sql, pos);
        char **slot = sql_tok_is(&k, "regions")       ? &p->regions
                      : sql_tok_is(&k, "lead_region") ? &p->lead_region
                      : sql_tok_is(&k, "survive")     ? &p->survive
                                                      : NULL;
        if (!slot && !sql_tok_is(&k, "replicas"))
            return expected(sql, &k, "replicas, regions, lead_region or survive", e);
        if (eq.kind != 'p' || eq.p[0] != '=') return expected(sql, &eq, "'='", e);
        if (!slot) {
            char *end = NULL;
            long long n = v.kind == 'n' ? strtoll(v.p, &end, 10) : 0;
            if (v.kind != 'n' || end != v.p + v.n) return expected(sql, &v, "a number", e);
            p->replicas = n;
        } else {
            if (v.kind != 's' && v.kind != 'w') return expected(sql, &v, "a string", e);
            free(*slot);
            if (!(*slot = value_text(&v))) return merr_set(e, MERR_NOMEM, "out of memory");
        }
        t = sql_lex(sql, pos);
        if (t.kind == 'p' && t.p[0] == ')') return 0;
        if (t.kind != 'p' || t.p[0] != ',') return expected(sql, &t, "',' or ')'", e);
    }
}

int sql_placement_parse(const char *sql, sql_placement **out, size_t *end, merr *e)
{
    size_t pos = 0;
    int rc = 0;
    sql_placement *p = calloc(1, sizeof(*p));
    *out = NULL;
    if (!p) return merr_set(e, MERR_NOMEM, "out of memory");
    p->replicas = 3;
    sql_tok a = sql_lex(sql, &pos);
    if (sql_tok_is(&a, "SHOW")) {
        p->kind = P_SHOW;
        sql_lex(sql, &pos); /* PLACEMENT */
        size_t save = pos;
        sql_tok f = sql_lex(sql, &pos);
        if (sql_tok_is(&f, "FOR")) {
            sql_tok t = sql_lex(sql, &pos), name = sql_lex(sql, &pos);
            if (!sql_tok_is(&t, "TABLE")) rc = expected(sql, &t, "TABLE", e);
            if (!rc && !(p->table = sql_tok_name(&name)))
                rc = expected(sql, &name, "a table name", e);
        } else {
            pos = save;
        }
    } else {
        sql_lex(sql, &pos); /* TABLE */
        sql_tok name = sql_lex(sql, &pos), verb = sql_lex(sql, &pos);
        sql_lex(sql, &pos); /* PLACEMENT */
        p->kind = sql_tok_is(&verb, "SET") ? P_SET : P_RESET;
        if (!(p->table = sql_tok_name(&name))) rc = expected(sql, &name, "a table name", e);
        if (!rc && p->kind == P_SET) rc = options(sql, &pos, p, e);
    }
    if (!rc) {
        size_t save = pos;
        sql_tok t = sql_lex(sql, &pos);
        if (t.kind == 'p' && t.p[0] == ';')
            save = pos;
        else if (t.kind)
            rc = expected(sql, &t, "the end of the statement", e);
        *end = save;
    }
    if (rc) {
        sql_placement_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int sql_placement_show_sql(const sql_placement *p, char **out, merr *e)
{
    *out = NULL;
    if (p->kind != P_SHOW) return 0;
    char *q = p->table ? sqlite3_mprintf("SELECT * FROM meridian_placement WHERE table_name = %Q "
                                         "ORDER BY name",
                                         p->table)
                       : sqlite3_mprintf("SELECT * FROM meridian_placement ORDER BY name");
    if (!q) return merr_set(e, MERR_NOMEM, "out of memory");
    *out = strdup(q);
    sqlite3_free(q);
    return *out ? 0 : merr_set(e, MERR_NOMEM, "out of memory");
}

int sql_placement_exec(sql_session *s, const sql_placement *p, merr *e)
{
    const char *what = p->kind == P_SET ? "SET PLACEMENT" : "RESET PLACEMENT";
    if (s->explicit_txn)
        return merr_set(e, MERR_INVALID,
                        "ALTER TABLE ... %s cannot run inside a transaction: it takes effect "
                        "at once and cannot be rolled back",
                        what);
    if (!sql_auth_is_admin(s))
        return merr_set(e, MERR_INVALID, "permission denied: %s needs ADMIN", what);
    const sql_cluster_ops *o = s->cluster;
    if (!o || !o->policy_set || !o->policy_rm)
        return merr_set(e, MERR_UNSUPPORTED,
                        "placement is not available: no cluster behind this session");
    const sql_table *t = sql_find_table(s, p->table);
    if (!t) return merr_set(e, MERR_INVALID, "no such table: %s", p->table);
    char name[32];
    snprintf(name, sizeof(name), "table.%u", t->id);
    if (p->kind == P_RESET) {
        int rc = o->policy_rm(s->cluster_ctx, name, e);
        /* A table without a policy already is what RESET asks for. */
        if (rc == MERR_INVALID && strstr(e->msg, "no policy named")) {
            merr_clear(e);
            rc = 0;
        }
        return rc;
    }
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    mkey_val v = mkey_int(t->id, 0);
    int rc = mkey_encode_prefix(&v, 1, &lo);
    if (!rc) rc = mkey_encode_prefix(&v, 1, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (rc) {
        rc = merr_set(e, MERR_NOMEM, "out of memory");
    } else {
        sql_cluster_policy pol = {.name = name,
                                  .start = lo.data,
                                  .start_len = lo.len,
                                  .end = hi.data,
                                  .end_len = hi.len,
                                  .replicas = p->replicas,
                                  .regions = p->regions ? p->regions : "",
                                  .lead_region = p->lead_region ? p->lead_region : "",
                                  .survive = p->survive ? p->survive : "zone"};
        char warn[256] = "";
        rc = o->policy_set(s->cluster_ctx, &pol, warn, sizeof(warn), e);
    }
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc;
}

/* ---- DROP TABLE: the table's policy goes with it ---- */

int sql_placement_table_dropped(sql_session *s, uint32_t tid, merr *e)
{
    if (s->ndrop_pol == s->capdrop_pol) {
        size_t nc = s->capdrop_pol ? s->capdrop_pol * 2 : 4;
        uint32_t *p = realloc(s->drop_pol, nc * sizeof(*p));
        if (!p) return merr_set(e, MERR_NOMEM, "out of memory");
        s->drop_pol = p;
        s->capdrop_pol = nc;
    }
    s->drop_pol[s->ndrop_pol++] = tid;
    return 0;
}

/* Keeps only the dropped tables that are still gone as the transaction
 * ends (a ROLLBACK TO may have undone a DROP TABLE). */
void sql_placement_before_commit(sql_session *s)
{
    if (!s->ndrop_pol) return;
    sql_desc *d = NULL;
    size_t nd = 0, k = 0;
    if (sql_catalog_read(s, &d, &nd, NULL)) {
        s->ndrop_pol = 0; /* unsure: keep the policies (harmless: ids are never reused) */
        return;
    }
    for (size_t i = 0; i < s->ndrop_pol; i++) {
        int live = 0;
        for (size_t j = 0; j < nd; j++)
            live |= d[j].kind == SQL_OBJ_TABLE && d[j].id == s->drop_pol[i];
        if (!live) s->drop_pol[k++] = s->drop_pol[i];
    }
    s->ndrop_pol = k;
    for (size_t j = 0; j < nd; j++) sql_desc_free(&d[j]);
    free(d);
}

/* A dropped table's placement policy ("table.<id>", as SET names it) lives
 * in the cluster, outside transactions: it goes once the drop committed. A
 * failure leaves a policy over keys no table will use again (table ids are
 * never reused), so it does not fail the committed statement. */
void sql_placement_txn_done(sql_session *s, int committed)
{
    const sql_cluster_ops *o = s->cluster;
    for (size_t i = 0; committed && o && o->policy_rm && i < s->ndrop_pol; i++) {
        char name[32];
        merr ignore = {0};
        snprintf(name, sizeof(name), "table.%u", s->drop_pol[i]);
        o->policy_rm(s->cluster_ctx, name, &ignore);
    }
    s->ndrop_pol = 0;
}
