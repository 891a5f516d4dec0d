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

int sql_upsert_strip(const char *sql, char **out)
{
    size_t pos = 0;
    *out = NULL;
    sql_tok t = sql_lex(sql, &pos);
    if (!sql_tok_is(&t, "INSERT") && !sql_tok_is(&t, "REPLACE")) return 0;
    const char *on = find_top(sql, pos, "ON", "CONFLICT");
    if (!on) return 0;
    /* ON CONFLICT [(target) [WHERE ...]] DO NOTHING */
    pos = (size_t)(on - sql);
    const char *end = NULL;
    int depth = 0;
    for (;;) {
        sql_tok x = sql_lex(sql, &pos);
        if (!x.kind) return 0;
        if (x.kind == 'p' && x.p[0] == '(') depth++;
        if (x.kind == 'p' && x.p[0] == ')') depth--;
        if (depth == 0 && sql_tok_is(&x, "DO")) {
            sql_tok y = sql_lex(sql, &pos);
            if (!sql_tok_is(&y, "NOTHING")) return 0; /* DO UPDATE: not supported */
            end = y.p + y.n;
            break;
        }
    }
    /* A second upsert clause is not ours to handle. */
    if (find_top(sql, (size_t)(end - sql), "ON", "CONFLICT")) return 0;
    size_t head = (size_t)(on - sql);
    size_t n = head + strlen(end);
    char *s = malloc(n + 2);
    if (!s) return MERR_NOMEM;
    memcpy(s, sql, head);
    s[head] = ' ';
    strcpy(s + head + 1, end);
    *out = s;
    return 0;
}
