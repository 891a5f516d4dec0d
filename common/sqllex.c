/* A tiny SQL tokenizer: enough to classify statements (BEGIN, CREATE TABLE,
 * CREATE TABLE ... AS SELECT, INSERT ... column lists) before SQLite parses
 * them for real. It never fails: unknown bytes are one-character punctuation,
 * unterminated strings run to the end. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/sqllex.h"

static void skip_space(const char *s, size_t *pos)
{
    for (;;) {
        while (s[*pos] && isspace((unsigned char)s[*pos])) (*pos)++;
        if (s[*pos] == '-' && s[*pos + 1] == '-') {
            while (s[*pos] && s[*pos] != '\n') (*pos)++;
        } else if (s[*pos] == '/' && s[*pos + 1] == '*') {
            const char *end = strstr(s + *pos + 2, "*/");
            *pos = end ? (size_t)(end - s) + 2 : strlen(s);
        } else {
            return;
        }
    }
}

/* Runs to the closing quote q; a doubled quote is an escaped one. */
static size_t quoted_end(const char *s, size_t i, char q)
{
    i++;
    while (s[i]) {
        if (s[i] == q) {
            if (q != ']' && s[i + 1] == q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i++;
    }
    return i;
}

sql_tok sql_lex(const char *sql, size_t *pos)
{
    sql_tok t = {sql + *pos, 0, 0};
    skip_space(sql, pos);
    size_t i = *pos;
    t.p = sql + i;
    char c = sql[i];
    if (!c) return t;
    if (isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80) {
        while (isalnum((unsigned char)sql[i]) || sql[i] == '_' || sql[i] == '$' ||
               (unsigned char)sql[i] >= 0x80)
            i++;
        t.kind = 'w';
    } else if (isdigit((unsigned char)c)) {
        while (isalnum((unsigned char)sql[i]) || sql[i] == '.') i++;
        t.kind = 'n';
    } else if (c == '\'') {
        i = quoted_end(sql, i, '\'');
        t.kind = 's';
    } else if (c == '"' || c == '`') {
        i = quoted_end(sql, i, c);
        t.kind = 'q';
    } else if (c == '[') {
        i = quoted_end(sql, i, ']');
        t.kind = 'q';
    } else {
        i++;
        t.kind = 'p';
    }
    t.n = i - *pos;
    *pos = i;
    return t;
}

int sql_tok_is(const sql_tok *t, const char *word)
{
    return t->kind == 'w' && strlen(word) == t->n && strncasecmp(t->p, word, t->n) == 0;
}

char *sql_tok_name(const sql_tok *t)
{
    if (t->kind == 'w') return strndup(t->p, t->n);
    if (t->kind != 'q' || t->n < 2) return NULL;
    char q = t->p[0] == '[' ? ']' : t->p[0];
    char *out = malloc(t->n);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 1; i + 1 < t->n; i++) {
        out[o++] = t->p[i];
        if (t->p[i] == q && q != ']' && t->p[i + 1] == q) i++;
    }
    out[o] = 0;
    return out;
}
