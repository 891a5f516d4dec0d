/* The parser of the user, role and privilege statements (sql/auth.h).
 * SQLite knows none of them, so the session intercepts them by their first
 * words, as it does DDL, and this file reads the rest with the tokenizer. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/auth.h"

typedef struct P {
    const char *sql;
    size_t pos;
    merr *e;
} P;

static sql_tok next(P *p)
{
    return sql_lex(p->sql, &p->pos);
}

static sql_tok peek(P *p)
{
    size_t save = p->pos;
    sql_tok t = next(p);
    p->pos = save;
    return t;
}

static int accept(P *p, const char *w)
{
    sql_tok t = peek(p);
    if (!sql_tok_is(&t, w)) return 0;
    next(p);
    return 1;
}

static int fail(P *p, const char *want, sql_tok t)
{
    if (!t.kind) return merr_set(p->e, MERR_INVALID, "syntax error: expected %s at the end", want);
    return merr_set(p->e, MERR_INVALID, "syntax error: expected %s near \"%.*s\"", want, (int)t.n,
                    t.p);
}

static int expect(P *p, const char *w)
{
    sql_tok t = next(p);
    return sql_tok_is(&t, w) ? 0 : fail(p, w, t);
}

/* A user, role or table name: a word or a quoted identifier. */
static int name(P *p, const char *what, char *out)
{
    sql_tok t = next(p);
    if (t.kind != 'w' && t.kind != 'q') return fail(p, what, t);
    char *n = sql_tok_name(&t);
    if (!n) return merr_set(p->e, MERR_NOMEM, "out of memory");
    size_t len = strlen(n);
    int bad = len == 0 || len >= SQL_NAME_MAX;
    for (size_t i = 0; i < len; i++)
        bad |= iscntrl((unsigned char)n[i]) || n[i] == ',' || n[i] == '=';
    if (bad) {
        free(n);
        return merr_set(p->e, MERR_INVALID,
                        "invalid %s: 1 to %d characters, no control characters, ',' or '='", what,
                        SQL_NAME_MAX - 1);
    }
    memcpy(out, n, len + 1);
    free(n);
    return 0;
}

/* PASSWORD 'p' | PASSWORD NULL (after an optional WITH). */
static int password(P *p, sql_auth_stmt *a, int required)
{
    accept(p, "WITH");
    if (!accept(p, "PASSWORD")) return required ? fail(p, "PASSWORD", peek(p)) : 0;
    a->set_password = 1;
    sql_tok t = next(p);
    if (sql_tok_is(&t, "NULL")) return 0;
    if (t.kind != 's' || t.n < 2 || t.p[t.n - 1] != '\'')
        return fail(p, "a password string ('...') or NULL", t);
    a->password = malloc(t.n);
    if (!a->password) return merr_set(p->e, MERR_NOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 1; i + 1 < t.n; i++) {
        a->password[o++] = t.p[i];
        if (t.p[i] == '\'') i++; /* '' is one quote */
    }
    a->password[o] = 0;
    if (!o) return merr_set(p->e, MERR_INVALID, "empty password: use PASSWORD NULL for none");
    return 0;
}

static const struct {
    const char *w;
    unsigned bit;
} privs[] = {{"SELECT", SQL_PRIV_SELECT}, {"INSERT", SQL_PRIV_INSERT}, {"UPDATE", SQL_PRIV_UPDATE},
             {"DELETE", SQL_PRIV_DELETE}, {"CREATE", SQL_PRIV_CREATE}, {"ALL", SQL_PRIV_ALL},
             {"ADMIN", SQL_PRIV_ADMIN}};

static unsigned priv_bit(const sql_tok *t)
{
    for (size_t i = 0; i < sizeof(privs) / sizeof(privs[0]); i++)
        if (sql_tok_is(t, privs[i].w)) return privs[i].bit;
    return 0;
}

/* GRANT/REVOKE's body after the verb: privileges ON object, or a role. */
static int grant_body(P *p, sql_auth_stmt *a, int grant)
{
    size_t save = p->pos;
    sql_tok t = next(p), u = peek(p);
    unsigned bit = priv_bit(&t);
    int is_priv = bit && ((u.kind == 'p' && *u.p == ',') || sql_tok_is(&u, "ON") ||
                          sql_tok_is(&u, "PRIVILEGES"));
    const char *to = grant ? "TO" : "FROM";
    int rc;
    if (!is_priv && bit) return fail(p, "ON", u); /* GRANT SELECT TO x: no role is named so */
    if (!is_priv) {
        p->pos = save;
        a->kind = grant ? SQL_AUTH_GRANT_ROLE : SQL_AUTH_REVOKE_ROLE;
        if ((rc = name(p, "role name", a->role)) || (rc = expect(p, to))) return rc;
        return name(p, "user name", a->name);
    }
    a->kind = grant ? SQL_AUTH_GRANT : SQL_AUTH_REVOKE;
    a->privs = bit;
    if (bit == SQL_PRIV_ALL) accept(p, "PRIVILEGES");
    while ((u = peek(p)).kind == 'p' && *u.p == ',') {
        next(p);
        t = next(p);
        if (!(bit = priv_bit(&t)))
            return fail(p, "a privilege (SELECT, INSERT, UPDATE, DELETE, CREATE, ALL, ADMIN)", t);
        a->privs |= bit;
    }
    if ((rc = expect(p, "ON"))) return rc;
    t = peek(p);
    if (t.kind == 'p' && *t.p == '*') {
        next(p);
        snprintf(a->object, sizeof(a->object), SQL_AUTH_OBJ_DB);
    } else if (accept(p, "DATABASE")) {
        snprintf(a->object, sizeof(a->object), SQL_AUTH_OBJ_DB);
    } else {
        accept(p, "TABLE");
        if ((rc = name(p, "TABLE name, DATABASE or *", a->object))) return rc;
        if (a->privs & SQL_PRIV_ADMIN)
            return merr_set(p->e, MERR_INVALID,
                            "ADMIN is granted ON DATABASE (or *), not on a table");
    }
    if ((rc = expect(p, to))) return rc;
    return name(p, grant ? "grantee" : "user or role", a->name);
}

int sql_auth_is(const char *sql)
{
    size_t pos = 0;
    sql_tok a = sql_lex(sql, &pos), b = sql_lex(sql, &pos);
    if (sql_tok_is(&a, "GRANT") || sql_tok_is(&a, "REVOKE")) return 1;
    if (sql_tok_is(&a, "CREATE") || sql_tok_is(&a, "DROP"))
        return sql_tok_is(&b, "USER") || sql_tok_is(&b, "ROLE");
    if (sql_tok_is(&a, "ALTER")) return sql_tok_is(&b, "USER");
    if (sql_tok_is(&a, "SHOW")) return sql_tok_is(&b, "GRANTS") || sql_tok_is(&b, "USERS");
    return 0;
}

int sql_auth_parse(const char *sql, sql_auth_stmt *a, size_t *end, merr *e)
{
    P p = {sql, 0, e};
    int rc = 0;
    memset(a, 0, sizeof(*a));
    sql_tok v = next(&p), w = next(&p);
    if (sql_tok_is(&v, "CREATE") && sql_tok_is(&w, "USER")) {
        a->kind = SQL_AUTH_CREATE_USER;
        if (!(rc = name(&p, "user name", a->name))) rc = password(&p, a, 0);
    } else if (sql_tok_is(&v, "ALTER") && sql_tok_is(&w, "USER")) {
        a->kind = SQL_AUTH_ALTER_USER;
        if (!(rc = name(&p, "user name", a->name))) rc = password(&p, a, 1);
    } else if (sql_tok_is(&v, "DROP") && sql_tok_is(&w, "USER")) {
        a->kind = SQL_AUTH_DROP_USER;
        rc = name(&p, "user name", a->name);
    } else if (sql_tok_is(&v, "CREATE") && sql_tok_is(&w, "ROLE")) {
        a->kind = SQL_AUTH_CREATE_ROLE;
        rc = name(&p, "role name", a->name);
    } else if (sql_tok_is(&v, "DROP") && sql_tok_is(&w, "ROLE")) {
        a->kind = SQL_AUTH_DROP_ROLE;
        rc = name(&p, "role name", a->name);
    } else if (sql_tok_is(&v, "GRANT") || sql_tok_is(&v, "REVOKE")) {
        p.pos = (size_t)(w.p - sql); /* w is the body's first token */
        rc = grant_body(&p, a, sql_tok_is(&v, "GRANT"));
    } else if (sql_tok_is(&v, "SHOW") && sql_tok_is(&w, "USERS")) {
        a->kind = SQL_AUTH_SHOW_USERS;
    } else if (sql_tok_is(&v, "SHOW") && sql_tok_is(&w, "GRANTS")) {
        a->kind = SQL_AUTH_SHOW_GRANTS;
        if (accept(&p, "FOR")) rc = name(&p, "user or role name", a->name);
    } else {
        rc = merr_set(e, MERR_INVALID, "not a user, role or privilege statement");
    }
    if (!rc) {
        sql_tok t = next(&p);
        if (t.kind == 'p' && *t.p == ';')
            *end = p.pos;
        else if (!t.kind)
            *end = p.pos;
        else
            rc = fail(&p, "the end of the statement", t);
    }
    if (rc) sql_auth_stmt_free(a);
    return rc;
}

void sql_auth_stmt_free(sql_auth_stmt *a)
{
    if (a->password) {
        OPENSSL_cleanse(a->password, strlen(a->password));
        free(a->password);
    }
    a->password = NULL;
}

char *sql_auth_redact(const char *sql)
{
    char *out = strdup(sql);
    if (!out) return NULL;
    size_t pos = 0;
    int after_pw = 0;
    for (;;) {
        sql_tok t = sql_lex(out, &pos);
        if (!t.kind) break;
        if (after_pw && t.kind == 's') {
            /* Keep the length of the text: overwrite inside the quotes. */
            for (size_t i = 1; i + 1 < t.n; i++) ((char *)t.p)[i] = '*';
        }
        after_pw = sql_tok_is(&t, "PASSWORD");
    }
    return out;
}
