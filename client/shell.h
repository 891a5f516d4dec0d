/* The Meridian shell (`meridian sql`): an interactive SQL prompt with line
 * editing and history (libedit), dot-commands and output formats, and a
 * non-interactive mode for -e and standard input. It is a plain libmeridian
 * application: everything goes through include/meridian.h. */
#ifndef MERIDIAN_CLIENT_SHELL_H
#define MERIDIAN_CLIENT_SHELL_H

#include "include/meridian.h"

#include <stdint.h>
#include <stdio.h>

/* `meridian sql [flags]`: returns the exit status. */
int shell_main(int argc, char **argv);

/* ---- result formatting (shell_fmt.c) ---- */

typedef enum shell_format {
    SHELL_TABLE = 0,
    SHELL_CSV,
    SHELL_TSV,
    SHELL_JSON,
    SHELL_LINE,
} shell_format;

/* "table", "csv", "tsv", "json", "line"; returns 0 or -1. */
int shell_format_parse(const char *s, shell_format *out);
const char *shell_format_name(shell_format f);

/* One statement's result on its way out. Table output is buffered (column
 * widths need every row); the others stream row by row. */
typedef struct shell_out {
    shell_format fmt;
    FILE *f;
    int ncols;
    char **names;
    char **cells; /* table: nrows * ncols strings */
    size_t nrows, cap;
} shell_out;

int shell_out_begin(shell_out *o, shell_format fmt, FILE *f, meridian_stmt *st);
int shell_out_row(shell_out *o, meridian_stmt *st);
/* Prints what is buffered, the row count (table), and frees. */
void shell_out_end(shell_out *o);

#endif
