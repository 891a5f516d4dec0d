/* Output formats of the shell: aligned tables with a row count, CSV and TSV
 * (header row, then rows), JSON (one array of objects per statement) and
 * line mode (column = value). */
#include "client/shell.h"

#include <stdlib.h>
#include <string.h>

static const char *names[] = {"table", "csv", "tsv", "json", "line"};

int shell_format_parse(const char *s, shell_format *out)
{
    for (int i = 0; i < 5; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (shell_format)i;
            return 0;
        }
    return -1;
}

const char *shell_format_name(shell_format f)
{
    return names[f];
}

/* A value as text for table/csv/tsv/line: NULL as "NULL" in tables, empty in
 * CSV/TSV; blobs as \x hex (Postgres bytea style). Caller frees. */
static char *cell(meridian_stmt *st, int i, shell_format fmt)
{
    int t = meridian_column_type(st, i);
    if (t == MERIDIAN_NULL) return strdup(fmt == SHELL_TABLE || fmt == SHELL_LINE ? "NULL" : "");
    if (t == MERIDIAN_BLOB) {
        const unsigned char *b = meridian_column_blob(st, i);
        int n = meridian_column_bytes(st, i);
        char *s = malloc((size_t)n * 2 + 3);
        if (!s) return NULL;
        strcpy(s, "\\x");
        for (int k = 0; k < n; k++) snprintf(s + 2 + k * 2, 3, "%02x", b[k]);
        return s;
    }
    const char *txt = meridian_column_text(st, i);
    return strdup(txt ? txt : "");
}

static void put_csv(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void put_tsv(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\t')
            fputs("\\t", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '\\')
            fputs("\\\\", f);
        else
            fputc(*s, f);
    }
}

static void put_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Display width: UTF-8 code points, not bytes. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

static void pad(FILE *f, size_t n)
{
    while (n--) fputc(' ', f);
}

int shell_out_begin(shell_out *o, shell_format fmt, FILE *f, meridian_stmt *st)
{
    memset(o, 0, sizeof(*o));
    o->fmt = fmt;
    o->f = f;
    o->ncols = meridian_column_count(st);
    if (!o->ncols) return 0;
    o->names = calloc((size_t)o->ncols, sizeof(char *));
    if (!o->names) return -1;
    for (int i = 0; i < o->ncols; i++) {
        const char *n = meridian_column_name(st, i);
        if (!(o->names[i] = strdup(n ? n : ""))) return -1;
    }
    if (fmt == SHELL_CSV || fmt == SHELL_TSV) {
        for (int i = 0; i < o->ncols; i++) {
            if (i) fputc(fmt == SHELL_CSV ? ',' : '\t', f);
            if (fmt == SHELL_CSV)
                put_csv(f, o->names[i]);
            else
                put_tsv(f, o->names[i]);
        }
        fputc('\n', f);
    } else if (fmt == SHELL_JSON) {
        fputc('[', f);
    }
    return 0;
}

int shell_out_row(shell_out *o, meridian_stmt *st)
{
    FILE *f = o->f;
    if (o->fmt == SHELL_TABLE) {
        if ((o->nrows + 1) * (size_t)o->ncols > o->cap) {
            size_t cap = o->cap ? o->cap * 2 : (size_t)o->ncols * 64;
            char **c = realloc(o->cells, cap * sizeof(char *));
            if (!c) return -1;
            o->cells = c;
            o->cap = cap;
        }
        for (int i = 0; i < o->ncols; i++)
            if (!(o->cells[o->nrows * (size_t)o->ncols + (size_t)i] = cell(st, i, o->fmt)))
                return -1;
        o->nrows++;
        return 0;
    }
    if (o->fmt == SHELL_JSON) {
        fputs(o->nrows ? ",\n {" : "\n {", f);
        for (int i = 0; i < o->ncols; i++) {
            if (i) fputs(", ", f);
            put_json_str(f, o->names[i]);
            fputs(": ", f);
            int t = meridian_column_type(st, i);
            if (t == MERIDIAN_NULL) {
                fputs("null", f);
            } else if (t == MERIDIAN_INTEGER || t == MERIDIAN_FLOAT) {
                fputs(meridian_column_text(st, i), f);
            } else {
                char *s = cell(st, i, o->fmt);
                if (!s) return -1;
                put_json_str(f, s);
                free(s);
            }
        }
        fputc('}', f);
        o->nrows++;
        return 0;
    }
    if (o->fmt == SHELL_LINE && o->nrows) fputc('\n', f);
    for (int i = 0; i < o->ncols; i++) {
        char *s = cell(st, i, o->fmt);
        if (!s) return -1;
        if (o->fmt == SHELL_LINE) {
            fprintf(f, "%s = %s\n", o->names[i], s);
        } else {
            if (i) fputc(o->fmt == SHELL_CSV ? ',' : '\t', f);
            if (o->fmt == SHELL_CSV)
                put_csv(f, s);
            else
                put_tsv(f, s);
        }
        free(s);
    }
    if (o->fmt == SHELL_CSV || o->fmt == SHELL_TSV) fputc('\n', f);
    o->nrows++;
    return 0;
}

static void print_table(shell_out *o)
{
    FILE *f = o->f;
    size_t *w = calloc((size_t)o->ncols, sizeof(size_t));
    if (!w) return;
    for (int i = 0; i < o->ncols; i++) {
        w[i] = width(o->names[i]);
        for (size_t r = 0; r < o->nrows; r++) {
            size_t cw = width(o->cells[r * (size_t)o->ncols + (size_t)i]);
            if (cw > w[i]) w[i] = cw;
        }
    }
    for (int i = 0; i < o->ncols; i++) {
        fprintf(f, "%s %s", i ? " |" : "", o->names[i]);
        if (i + 1 < o->ncols) pad(f, w[i] - width(o->names[i]));
    }
    fputc('\n', f);
    for (int i = 0; i < o->ncols; i++) {
        fputs(i ? "-+-" : "-", f);
        for (size_t k = 0; k < w[i]; k++) fputc('-', f);
    }
    fputs("-\n", f);
    for (size_t r = 0; r < o->nrows; r++) {
        for (int i = 0; i < o->ncols; i++) {
            const char *s = o->cells[r * (size_t)o->ncols + (size_t)i];
            fprintf(f, "%s %s", i ? " |" : "", s);
            if (i + 1 < o->ncols) pad(f, w[i] - width(s));
        }
        fputc('\n', f);
    }
    fprintf(f, "(%zu row%s)\n", o->nrows, o->nrows == 1 ? "" : "s");
    free(w);
}

void shell_out_end(shell_out *o)
{
    if (o->ncols) {
        if (o->fmt == SHELL_TABLE) print_table(o);
        if (o->fmt == SHELL_JSON) fputs(o->nrows ? "\n]\n" : "]\n", o->f);
    }
    for (size_t k = 0; k < o->nrows * (size_t)o->ncols && o->cells; k++) free(o->cells[k]);
    free(o->cells);
    for (int i = 0; o->names && i < o->ncols; i++) free(o->names[i]);
    free(o->names);
    memset(o, 0, sizeof(*o));
}
