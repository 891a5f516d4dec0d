/* INSERT rewriting for DEFAULT values.
 *
 * SQLite hands a virtual table NULL for every column an INSERT leaves out
 * and never evaluates the declared DEFAULT, so an omitted column could not
 * be told from an explicit NULL. Before preparing an INSERT whose column list
 * omits columns that have defaults, the session rewrites
 *
 *     INSERT INTO t(a) <source> [RETURNING ...]
 * to  INSERT INTO t(a, d1, d2) SELECT *, (dflt1), (dflt2) FROM (<source>) [RETURNING ...]
 *
 * and DEFAULT VALUES to VALUES((dflt1), ...). Defaults are evaluated per row,
 * as SQLite does. Errors in the original statement are reported from the
 * scratch database first, so messages stay SQLite's. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_int.h"

/* Position of a top-level (not parenthesised) keyword at or after pos. */
static const char *find_top(const char *sql, size_t pos, const char *word, const char *next)
{
    int depth = 0;
    for (;;) {
        sql_tok t = sql_lex(sql, &pos);
        if (!t.kind) return NULL;
        if (t.kind == 'p' && t.p[0] == '(') depth++;
        if (t.kind == 'p' && t.p[0] == ')') depth--;
        if (depth == 0 && sql_tok_is(&t, word)) {
            if (!next) return t.p;
            size_t p2 = pos;
            sql_tok n = sql_lex(sql, &p2);
            if (sql_tok_is(&n, next)) return t.p;
        }
    }
}

int sql_insert_rewrite(sql_session *s, const char *sql, char **out)
{
    size_t pos = 0;
    char *name = NULL;
    char **listed = NULL;
    size_t nlisted = 0;
    mbuf q = MBUF_INIT;
    int rc = 0;
    *out = NULL;
    sql_tok t = sql_lex(sql, &pos);
    if (!sql_tok_is(&t, "INSERT") && !sql_tok_is(&t, "REPLACE")) return 0;
    if (sql_tok_is(&t, "INSERT")) {
        t = sql_lex(sql, &pos);
        if (sql_tok_is(&t, "OR")) {
            sql_lex(sql, &pos);
            t = sql_lex(sql, &pos);
        }
    } else {
        t = sql_lex(sql, &pos);
    }
    if (!sql_tok_is(&t, "INTO")) return 0;
    t = sql_lex(sql, &pos);
    size_t save = pos;
    sql_tok dot = sql_lex(sql, &pos);
    if (dot.kind == 'p' && dot.p[0] == '.')
        t = sql_lex(sql, &pos);
    else
        pos = save;
    name = sql_tok_name(&t);
    sql_table *tab = name ? sql_find_table(s, name) : NULL;
    if (!tab) goto out;
    const char *head_end = sql + pos;
    save = pos;
    t = sql_lex(sql, &pos);
    if (sql_tok_is(&t, "AS")) { /* alias: keep it in the head */
        sql_lex(sql, &pos);
        head_end = sql + pos;
        save = pos;
        t = sql_lex(sql, &pos);
    }
    int default_values = sql_tok_is(&t, "DEFAULT");
    if (!default_values && !(t.kind == 'p' && t.p[0] == '(')) goto out; /* every column given */
    if (!default_values) {
        listed = calloc((size_t)tab->ncols + 64, sizeof(char *));
        if (!listed) goto nomem;
        for (;;) {
            sql_tok c = sql_lex(sql, &pos);
            if (!c.kind) goto out;
            if (c.kind == 'p' && c.p[0] == ')') break;
            if (c.kind == 'p') continue;
            if (nlisted == (size_t)tab->ncols + 63) goto out;
            listed[nlisted++] = sql_tok_name(&c);
        }
    }
    mbuf cols = MBUF_INIT, exprs = MBUF_INIT;
    int nd = 0;
    for (int i = 0; i < tab->ncols; i++) {
        const sql_column *c = &tab->cols[i];
        int given = 0;
        for (size_t j = 0; j < nlisted; j++)
            if (listed[j] && sqlite3_stricmp(listed[j], c->name) == 0) given = 1;
        if (given || !c->dflt_sql) continue;
        char *ident = sqlite3_mprintf("\"%w\"", c->name);
        mbuf_printf(&cols, "%s%s", nd ? ", " : "", ident);
        mbuf_printf(&exprs, "%s(%s)", nd ? ", " : "", c->dflt_sql);
        sqlite3_free(ident);
        nd++;
    }
    mbuf_append_u8(&cols, 0);
    mbuf_append_u8(&exprs, 0);
    if (nd == 0) {
        mbuf_free(&cols);
        mbuf_free(&exprs);
        goto out;
    }
    if (default_values) {
        sql_lex(sql, &pos); /* VALUES */
        mbuf_append(&q, sql, (size_t)(head_end - sql));
        mbuf_printf(&q, "(%s) VALUES(%s)%s", (char *)cols.data, (char *)exprs.data, sql + pos);
    } else {
        /* head "(listed" + ", defaults) SELECT *, exprs FROM (" source ")" tail */
        const char *src = sql + pos;
        const char *ret = find_top(sql, pos, "RETURNING", NULL);
        if (find_top(sql, pos, "ON", "CONFLICT")) {
            mbuf_free(&cols);
            mbuf_free(&exprs);
            goto out; /* UPSERT: SQLite reports it unsupported on virtual tables */
        }
        size_t srclen = ret ? (size_t)(ret - src) : strlen(src);
        while (srclen && (src[srclen - 1] == ';' || src[srclen - 1] == ' ' ||
                          src[srclen - 1] == '\n' || src[srclen - 1] == '\t'))
            srclen--;
        const char *close = sql + pos - 1; /* the ')' of the column list */
        mbuf_append(&q, sql, (size_t)(close - sql));
        mbuf_printf(&q, ", %s) SELECT *, %s FROM (%.*s) %s", (char *)cols.data, (char *)exprs.data,
                    (int)srclen, src, ret ? ret : "");
    }
    mbuf_free(&cols);
    mbuf_free(&exprs);
    if (mbuf_append_u8(&q, 0)) goto nomem;
    *out = (char *)q.data;
    q.data = NULL;
    goto out;
nomem:
    rc = MERR_NOMEM;
out:
    (void)save;
    for (size_t j = 0; j < nlisted; j++) free(listed[j]);
    free(listed);
    free(name);
    mbuf_free(&q);
    return rc;
}

void sql_upsert_free(sql_upsert *u)
{
    if (!u) return;
    for (int i = 0; i < u->ntarget; i++) free(u->target[i]);
    free(u->target);
    free(u->set_sql);
    free(u->where_sql);
    sqlite3_finalize(u->stmt);
    free(u);
}

int sql_upsert_parse(const char *sql, char **stripped, sql_upsert **out)
{
    size_t pos = 0;
    *stripped = NULL;
    *out = NULL;
    sql_tok t = sql_lex(sql, &pos);
    if (!sql_tok_is(&t, "INSERT") && !sql_tok_is(&t, "REPLACE")) return 0;
    const char *on = find_top(sql, pos, "ON", "CONFLICT");
    if (!on) return 0;
    sql_upsert *u = calloc(1, sizeof(*u));
    if (!u) return MERR_NOMEM;
    pos = (size_t)(on - sql);
    sql_lex(sql, &pos); /* ON */
    sql_lex(sql, &pos); /* CONFLICT */
    size_t save = pos;
    t = sql_lex(sql, &pos);
    if (t.kind == 'p' && t.p[0] == '(') { /* the conflict target's columns */
        u->target = calloc(MKEY_MAX_COLS, sizeof(char *));
        if (!u->target) goto nomem;
        int depth = 1;
        while (depth > 0) {
            t = sql_lex(sql, &pos);
            if (!t.kind) goto unsupported;
            if (t.kind == 'p' && t.p[0] == '(') depth++;
            if (t.kind == 'p' && t.p[0] == ')') depth--;
            if (depth == 1 && (t.kind == 'w' || t.kind == 'q') && !sql_tok_is(&t, "COLLATE") &&
                !sql_tok_is(&t, "ASC") && !sql_tok_is(&t, "DESC")) {
                if (u->ntarget == MKEY_MAX_COLS) goto unsupported;
                if (!(u->target[u->ntarget++] = sql_tok_name(&t))) goto nomem;
            }
        }
        save = pos;
        t = sql_lex(sql, &pos);
        if (sql_tok_is(&t, "WHERE")) goto unsupported; /* partial-index targets */
    }
    if (!sql_tok_is(&t, "DO")) goto unsupported;
    t = sql_lex(sql, &pos);
    const char *end;
    /* RETURNING would show the row SQLite passed to xUpdate, not the one
     * the upsert kept or updated: leave those statements to SQLite's error. */
    if (find_top(sql, pos, "RETURNING", NULL)) goto unsupported;
    if (sql_tok_is(&t, "NOTHING")) {
        end = t.p + t.n;
    } else if (sql_tok_is(&t, "UPDATE")) {
        t = sql_lex(sql, &pos);
        if (!sql_tok_is(&t, "SET")) goto unsupported;
        u->update = 1;
        const char *body = sql + pos;
        if (find_top(sql, pos, "ON", "CONFLICT")) goto unsupported; /* several clauses */
        const char *where = find_top(sql, pos, "WHERE", NULL);
        end = sql + strlen(sql);
        while (end > body && (end[-1] == ';' || isspace((unsigned char)end[-1]))) end--;
        const char *set_end = where ? where : end;
        u->set_sql = strndup(body, (size_t)(set_end - body));
        if (where) u->where_sql = strndup(where + 5, (size_t)(end - where - 5));
        if (!u->set_sql || (where && !u->where_sql)) goto nomem;
    } else {
        goto unsupported;
    }
    (void)save;
    size_t head = (size_t)(on - sql);
    char *s = malloc(head + strlen(end) + 2);
    if (!s) goto nomem;
    memcpy(s, sql, head);
    s[head] = ' ';
    strcpy(s + head + 1, end);
    *stripped = s;
    *out = u;
    return 0;
unsupported:
    /* Leave the statement alone: SQLite reports what it does not support. */
    sql_upsert_free(u);
    return 0;
nomem:
    sql_upsert_free(u);
    return MERR_NOMEM;
}

int sql_upsert_sql(const sql_table *t, const sql_upsert *u, char **out)
{
    mbuf q = MBUF_INIT;
    mbuf_printf(&q, "UPDATE \"%s\" SET ", t->name);
    for (int part = 0; part < 2; part++) {
        const char *src = part ? u->where_sql : u->set_sql;
        if (!src) break;
        if (part) {
            mbuf_printf(&q, " AND (");
        }
        size_t pos = 0, last = 0;
        for (;;) {
            size_t before = pos;
            sql_tok tk = sql_lex(src, &pos);
            (void)before;
            if (!tk.kind) break;
            if (sql_tok_is(&tk, "excluded")) {
                size_t p2 = pos;
                sql_tok dot = sql_lex(src, &p2);
                sql_tok col = sql_lex(src, &p2);
                char *name = dot.kind == 'p' && dot.p[0] == '.' ? sql_tok_name(&col) : NULL;
                int ci = -1;
                for (int i = 0; name && i < t->ncols; i++)
                    if (sqlite3_stricmp(t->cols[i].name, name) == 0) ci = i;
                free(name);
                if (ci >= 0) {
                    mbuf_append(&q, src + last, (size_t)(tk.p - src) - last);
                    mbuf_printf(&q, "?%d", ci + 1);
                    pos = p2;
                    last = p2;
                    continue;
                }
            }
        }
        mbuf_append_str(&q, src + last);
        if (part) mbuf_printf(&q, ")");
        if (!part) {
            /* the row: by rowid, or by its primary key values */
            if (t->rowid) {
                mbuf_printf(&q, " WHERE rowid = ?%d", t->ncols + 1);
            } else {
                for (int i = 0; i < t->npk; i++) {
                    char *c = sqlite3_mprintf("\"%w\"", t->cols[t->pk[i]].name);
                    mbuf_printf(&q, "%s%s IS ?%d", i ? " AND " : " WHERE ", c, t->ncols + 1 + i);
                    sqlite3_free(c);
                }
            }
        }
    }
    if (mbuf_append_u8(&q, 0)) {
        mbuf_free(&q);
        return MERR_NOMEM;
    }
    *out = (char *)q.data;
    return 0;
}
