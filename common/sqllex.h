/* A tiny SQL tokenizer for statement classification (common/sqllex.c):
 * the gateway classifies statements before SQLite parses them (sql/), and
 * the client library tells a statement that could commit from one that
 * cannot (client/conn.c). Works on NUL-terminated text. */
#ifndef MERIDIAN_COMMON_SQLLEX_H
#define MERIDIAN_COMMON_SQLLEX_H

#include <stddef.h>

typedef struct sql_tok {
    const char *p;
    size_t n;
    int kind; /* 'w' word, 'q' quoted identifier, 's' string, 'n' number, 'p' punct, 0 end */
} sql_tok;
/* Next token at or after *pos (skipping space and comments). */
sql_tok sql_lex(const char *sql, size_t *pos);
int sql_tok_is(const sql_tok *t, const char *word);
/* An identifier token's name, unquoted (malloc'd). */
char *sql_tok_name(const sql_tok *t);

#endif
